//! Tokens and passwords, shared so the gateway checks tokens exactly as the
//! API issues them.
//!
//! Tokens are HS256 JWTs. Only HS256 is accepted on the way in, which shuts
//! out `alg: none` and algorithm-confusion tricks; a refresh token is
//! refused wherever an access token is needed.

use std::time::Duration;

use argon2::Argon2;
use argon2::password_hash::{
    PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, errors::ErrorKind};
use serde::{Deserialize, Serialize};

use crate::model::User;

/// The shortest `JWT_SECRET` accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenType {
    Access,
    Refresh,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The username.
    pub sub: String,
    /// The user id.
    pub uid: i64,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    pub token_type: TokenType,
    /// The user's credential generation when issued: a password change or
    /// a disable bumps it, and every older token stops working.
    #[serde(default)]
    pub generation: i64,
    /// The login session: the id of the refresh token this token came
    /// with or from. Revoking that refresh token ends the whole session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("JWT_SECRET must be at least {MIN_SECRET_LEN} bytes")]
    SecretTooShort,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid")]
    Invalid,
    #[error("a {0:?} token cannot be used here")]
    WrongType(TokenType),
    #[error("could not hash the password")]
    Hash,
}

/// Signing and verification keys with the token lifetimes.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    access_ttl: Duration,
    refresh_ttl: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys").field("secret", &"***").finish()
    }
}

impl JwtKeys {
    pub fn new(
        secret: &[u8],
        access_ttl: Duration,
        refresh_ttl: Duration,
    ) -> Result<Self, AuthError> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(AuthError::SecretTooShort);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            access_ttl,
            refresh_ttl,
        })
    }

    /// Issues a token of the given type with its configured lifetime, for
    /// a user whose credentials were never revoked (generation 0) and
    /// outside any login session: tests and benchmarks.
    pub fn issue(&self, user: &User, token_type: TokenType) -> Result<String, AuthError> {
        let ttl = match token_type {
            TokenType::Access => self.access_ttl,
            TokenType::Refresh => self.refresh_ttl,
        };
        self.issue_with_ttl(user, 0, token_type, ttl)
    }

    /// An access token outside any login session (`tidings token`).
    pub fn issue_with_ttl(
        &self,
        user: &User,
        generation: i64,
        token_type: TokenType,
        ttl: Duration,
    ) -> Result<String, AuthError> {
        self.sign(user, generation, token_type, ttl, uuid(), None)
    }

    /// A login: a refresh token and an access token that share its session.
    pub fn issue_session(&self, user: &User, generation: i64) -> Result<Session, AuthError> {
        let sid = uuid();
        Ok(Session {
            refresh: self.sign(
                user,
                generation,
                TokenType::Refresh,
                self.refresh_ttl,
                sid.clone(),
                Some(sid.clone()),
            )?,
            access: self.issue_access(user, generation, Some(sid))?,
        })
    }

    /// An access token in the session `sid` (from a refresh).
    pub fn issue_access(
        &self,
        user: &User,
        generation: i64,
        sid: Option<String>,
    ) -> Result<String, AuthError> {
        self.sign(
            user,
            generation,
            TokenType::Access,
            self.access_ttl,
            uuid(),
            sid,
        )
    }

    fn sign(
        &self,
        user: &User,
        generation: i64,
        token_type: TokenType,
        ttl: Duration,
        jti: String,
        sid: Option<String>,
    ) -> Result<String, AuthError> {
        let iat = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: user.username.clone(),
            uid: user.id,
            iat,
            exp: iat.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
            jti,
            token_type,
            generation,
            sid,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|_| AuthError::Invalid)
    }

    /// Checks signature, algorithm, expiry and type.
    pub fn verify(&self, token: &str, expected: TokenType) -> Result<Claims, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => {
                    crate::metrics::auth_failure("expired");
                    AuthError::Expired
                }
                _ => {
                    crate::metrics::auth_failure("invalid");
                    AuthError::Invalid
                }
            })?;
        if data.claims.token_type != expected {
            crate::metrics::auth_failure("wrong_type");
            return Err(AuthError::WrongType(data.claims.token_type));
        }
        Ok(data.claims)
    }
}

/// The two tokens of a login.
#[derive(Debug, Clone)]
pub struct Session {
    pub access: String,
    pub refresh: String,
}

fn uuid() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// argon2id with the crate's default (OWASP-recommended) parameters.
/// CPU-heavy: call it off the async runtime (`spawn_blocking`).
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|_| AuthError::Hash)
}

/// Constant-time comparison against a stored PHC string.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|hash| {
            Argon2::default()
                .verify_password(password.as_bytes(), &hash)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A random URL-safe string, for generated passwords and secrets.
pub fn random_secret(len: usize) -> String {
    use rand::Rng;
    use rand::distributions::Alphanumeric;
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> JwtKeys {
        JwtKeys::new(&[7; 32], Duration::from_secs(60), Duration::from_secs(600)).unwrap()
    }

    fn alice() -> User {
        User {
            id: 1,
            username: "alice".into(),
            is_admin: false,
        }
    }

    #[test]
    fn short_secrets_are_refused() {
        let err = JwtKeys::new(b"short", Duration::ZERO, Duration::ZERO).unwrap_err();
        assert_eq!(err, AuthError::SecretTooShort);
    }

    #[test]
    fn round_trip_and_type_check() {
        let keys = keys();
        let access = keys.issue(&alice(), TokenType::Access).unwrap();
        let claims = keys.verify(&access, TokenType::Access).unwrap();
        assert_eq!((claims.sub.as_str(), claims.uid), ("alice", 1));
        let refresh = keys.issue(&alice(), TokenType::Refresh).unwrap();
        assert_eq!(
            keys.verify(&refresh, TokenType::Access),
            Err(AuthError::WrongType(TokenType::Refresh))
        );
    }

    #[test]
    fn expired_wrongly_signed_and_unsigned_tokens_fail() {
        let keys = keys();
        let now = chrono::Utc::now().timestamp();
        let claims = Claims {
            sub: "alice".into(),
            uid: 1,
            iat: now - 20,
            exp: now - 10,
            jti: "j".into(),
            token_type: TokenType::Access,
            generation: 0,
            sid: None,
        };
        let expired = jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(&[7; 32]),
        )
        .unwrap();
        assert_eq!(
            keys.verify(&expired, TokenType::Access),
            Err(AuthError::Expired)
        );
        let other =
            JwtKeys::new(&[8; 32], Duration::from_secs(60), Duration::from_secs(60)).unwrap();
        let forged = other.issue(&alice(), TokenType::Access).unwrap();
        assert_eq!(
            keys.verify(&forged, TokenType::Access),
            Err(AuthError::Invalid)
        );
        // alg: none, with the same claims.
        let genuine = keys.issue(&alice(), TokenType::Access).unwrap();
        let payload = genuine.split('.').nth(1).unwrap();
        let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert_eq!(
            keys.verify(&unsigned, TokenType::Access),
            Err(AuthError::Invalid)
        );
    }

    #[test]
    fn passwords_verify_only_themselves() {
        let hash = hash_password("correct horse").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("x", "not a hash"));
    }
}
