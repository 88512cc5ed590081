//! Whose credential this is, and whether it still works: access tokens
//! and API keys on every request and handshake, and everything that takes
//! a credential back (password change, disable, delete, revoking a login,
//! deleting a key), each told to every process over the bus so sockets
//! that used it close with 4003.
//!
//! A check is one store round trip (the account row, with the session's
//! revocation folded in), the same single read a request already made
//! to find its user: a revocation holds on every process the moment it
//! commits, with no cache to invalidate.

use sha2::{Digest, Sha256};

use super::{Core, ServiceError, admin_only};
use crate::auth::{AuthError, Claims, JwtKeys, TokenType, hash_password, verify_password};
use crate::events::{Event, Revocation};
use crate::model::{Account, Actor, ApiKey, UserRecord};
use crate::paging::{Page, PageRequest};
use crate::store::TokenAccount;
use crate::time::now_millis;

/// What API keys start with; a bearer with it is looked up as a key.
pub const KEY_PREFIX: &str = "tdk_";
/// `last_used_at` is written at most this often per key.
const TOUCH_EVERY_MS: i64 = 60_000;

/// The credential a request or socket came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    Token {
        generation: i64,
        sid: Option<String>,
    },
    Key {
        id: i64,
    },
}

impl Credential {
    /// Whether `revocation` kills this credential.
    pub fn is_revoked_by(&self, revocation: &Revocation) -> bool {
        match (self, revocation) {
            (_, Revocation::Account) => true,
            (Self::Token { generation, .. }, Revocation::TokensBefore { generation: now }) => {
                generation < now
            }
            (Self::Token { sid: Some(sid), .. }, Revocation::Session { sid: dead }) => sid == dead,
            (Self::Key { id }, Revocation::Key { id: dead }) => id == dead,
            _ => false,
        }
    }
}

/// Who a good credential speaks for.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub actor: Actor,
    pub credential: Credential,
    /// When the token expires (seconds since the epoch); `None` for keys.
    pub expires_at: Option<i64>,
}

/// Why a credential was refused; each is a 401 (and its message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Invalid,
    Expired,
    WrongType,
    /// Revoked, superseded by a password change, or the account disabled.
    Revoked,
    UnknownUser,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Self::Missing => "an access token or API key is required",
            Self::Invalid => "the token is not valid",
            Self::Expired => "the token has expired",
            Self::WrongType => "a refresh token cannot be used here",
            Self::Revoked => "the credential was revoked",
            Self::UnknownUser => "the credential's user no longer exists",
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Invalid => "invalid",
            Self::Expired => "expired",
            Self::WrongType => "wrong_type",
            Self::Revoked => "revoked",
            Self::UnknownUser => "unknown_user",
        }
    }
}

/// A credential check's outcome: refused (401) or the store failed (503).
#[derive(Debug)]
pub enum AuthFailure {
    Refused(Refusal),
    Service(ServiceError),
}

impl From<ServiceError> for AuthFailure {
    fn from(err: ServiceError) -> Self {
        Self::Service(err)
    }
}

impl From<crate::store::StoreError> for AuthFailure {
    fn from(err: crate::store::StoreError) -> Self {
        Self::Service(err.into())
    }
}

fn refuse<T>(refusal: Refusal) -> Result<T, AuthFailure> {
    crate::metrics::auth_failure(refusal.reason());
    Err(AuthFailure::Refused(refusal))
}

/// A new API key and the hash that is stored.
fn new_key() -> (String, String) {
    let key = format!("{KEY_PREFIX}{}", crate::auth::random_secret(40));
    let hash = key_hash(&key);
    (key, hash)
}

fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A token's claims, with JWT failures named.
fn claims(keys: &JwtKeys, token: &str, kind: TokenType) -> Result<Claims, AuthFailure> {
    keys.verify(token, kind).map_err(|err| {
        AuthFailure::Refused(match err {
            AuthError::Expired => Refusal::Expired,
            AuthError::WrongType(_) => Refusal::WrongType,
            _ => Refusal::Invalid,
        })
    })
}

/// A bearer credential as far as it can be checked without the store.
#[derive(Debug)]
pub enum Bearer<'a> {
    /// An access token with a good signature, not expired.
    Token(Claims),
    /// What looks like an API key.
    Key(&'a str),
}

impl Bearer<'_> {
    /// The user a token names (a key's user is known only to the store).
    pub fn user_id(&self) -> Option<i64> {
        match self {
            Self::Token(claims) => Some(claims.uid),
            Self::Key(_) => None,
        }
    }
}

/// Everything about a bearer that needs no store: present, and for a
/// token, signed by us, unexpired and an access token.
pub fn check_bearer<'a>(
    keys: &JwtKeys,
    bearer: Option<&'a str>,
) -> Result<Bearer<'a>, AuthFailure> {
    let Some(bearer) = bearer.filter(|b| !b.is_empty()) else {
        return refuse(Refusal::Missing);
    };
    if bearer.starts_with(KEY_PREFIX) {
        return Ok(Bearer::Key(bearer));
    }
    claims(keys, bearer, TokenType::Access).map(Bearer::Token)
}

/// Whether the store's `found` account still honours a token with these
/// claims.
pub(super) fn admit(
    claims: Claims,
    found: Option<TokenAccount>,
) -> Result<Authenticated, AuthFailure> {
    let Some(found) = found else {
        return refuse(Refusal::UnknownUser);
    };
    let account = found.account;
    if found.session_revoked || !account.is_active || claims.generation != account.generation {
        return refuse(Refusal::Revoked);
    }
    Ok(Authenticated {
        actor: account.user.into(),
        credential: Credential::Token {
            generation: claims.generation,
            sid: claims.sid,
        },
        expires_at: Some(claims.exp),
    })
}

impl Core {
    /// Checks a bearer credential (an access token or an API key) against
    /// the store as it is now.
    pub async fn authenticate(
        &self,
        keys: &JwtKeys,
        bearer: Option<&str>,
    ) -> Result<Authenticated, AuthFailure> {
        match check_bearer(keys, bearer)? {
            Bearer::Key(key) => self.authenticate_key(key).await,
            Bearer::Token(claims) => {
                let found = self
                    .token_account(claims.uid, claims.sid.as_deref().unwrap_or(""))
                    .await?;
                admit(claims, found)
            }
        }
    }

    /// Whether a credential a socket opened with still works, as the store
    /// says now: for a gateway that may have missed its revocation (the bus
    /// was down, or its record of recent revocations does not reach back
    /// far enough).
    pub async fn credential_is_live(
        &self,
        user_id: i64,
        credential: &Credential,
    ) -> Result<bool, ServiceError> {
        Ok(match credential {
            Credential::Token { generation, sid } => self
                .token_account(user_id, sid.as_deref().unwrap_or(""))
                .await?
                .is_some_and(|found| {
                    !found.session_revoked
                        && found.account.is_active
                        && found.account.generation == *generation
                }),
            Credential::Key { id } => self
                .store
                .key_owner(*id)
                .await?
                .is_some_and(|account| account.is_active && account.user.id == user_id),
        })
    }

    pub(super) async fn authenticate_key(&self, key: &str) -> Result<Authenticated, AuthFailure> {
        let Some(found) = self.store.key_account(&key_hash(key)).await? else {
            return refuse(Refusal::Revoked);
        };
        if !found.account.is_active {
            return refuse(Refusal::Revoked);
        }
        let now = now_millis();
        if found
            .last_used_at
            .is_none_or(|at| now.saturating_sub(at) >= TOUCH_EVERY_MS)
        {
            // Off the request's path; a lost touch only makes the time older.
            let (store, id) = (self.store.clone(), found.key_id);
            tokio::spawn(async move {
                if let Err(err) = store.touch_key(id, now).await {
                    tracing::debug!(%err, "could not note an API key's use");
                }
            });
        }
        Ok(Authenticated {
            actor: found.account.user.into(),
            credential: Credential::Key { id: found.key_id },
            expires_at: None,
        })
    }

    /// Logs in: checks the password (throttled) and opens a login session.
    pub async fn log_in(
        &self,
        keys: &JwtKeys,
        username: &str,
        password: String,
        address: Option<std::net::IpAddr>,
    ) -> Result<Option<crate::auth::Session>, ServiceError> {
        let Some(account) = self.check_password(username, password, address).await? else {
            return Ok(None);
        };
        Ok(Some(
            keys.issue_session(&account.user, account.generation)
                .map_err(|_| ServiceError::Internal("could not sign a token"))?,
        ))
    }

    /// A new access token from a refresh token whose session and
    /// generation are still good.
    pub async fn refresh(&self, keys: &JwtKeys, refresh: &str) -> Result<String, AuthFailure> {
        let claims = claims(keys, refresh, TokenType::Refresh)?;
        let account = self.live_session(&claims).await?;
        keys.issue_access(&account.user, account.generation, claims.sid)
            .map_err(|_| AuthFailure::Service(ServiceError::Internal("could not sign a token")))
    }

    /// Ends the login session of a refresh token: it and every access
    /// token minted from it stop working, on every process.
    pub async fn revoke_refresh(&self, keys: &JwtKeys, refresh: &str) -> Result<(), AuthFailure> {
        let claims = claims(keys, refresh, TokenType::Refresh)?;
        let account = self.live_session(&claims).await?;
        let sid = claims.sid.unwrap_or(claims.jti);
        let actor: Actor = account.user.into();
        self.store
            .revoke_session(
                Some(&actor),
                actor.id,
                &sid,
                claims.exp.saturating_mul(1000),
            )
            .await?;
        self.revoked(actor.id, Revocation::Session { sid }).await;
        Ok(())
    }

    async fn live_session(&self, claims: &Claims) -> Result<Account, AuthFailure> {
        let sid = claims.sid.as_deref().unwrap_or(&claims.jti);
        let Some(found) = self.token_account(claims.uid, sid).await? else {
            return refuse(Refusal::UnknownUser);
        };
        if found.session_revoked
            || !found.account.is_active
            || claims.generation != found.account.generation
        {
            return refuse(Refusal::Revoked);
        }
        Ok(found.account)
    }

    /// Changes the caller's password; every token issued before stops
    /// working (the caller's too: log in again), API keys live on.
    pub async fn change_password(
        &self,
        actor: &Actor,
        old: String,
        new: String,
    ) -> Result<(), ServiceError> {
        let (_, hash) = self
            .store
            .credentials(&actor.username)
            .await?
            .ok_or(ServiceError::NotFound("user"))?;
        let good = self
            .hashing(move || Ok(verify_password(&old, &hash)))
            .await?;
        if !good {
            return Err(ServiceError::Forbidden("the current password is wrong"));
        }
        self.set_password(Some(actor), actor.id, new).await
    }

    /// Sets a password (the caller checked who may) and ends every token
    /// issued before.
    pub async fn set_password(
        &self,
        actor: Option<&Actor>,
        user_id: i64,
        password: String,
    ) -> Result<(), ServiceError> {
        check_password_length(&password)?;
        let hash = self.hashing(move || hash_password(&password)).await?;
        let generation = self.store.set_password(actor, user_id, &hash).await?;
        self.revoked(user_id, Revocation::TokensBefore { generation })
            .await;
        Ok(())
    }

    /// Sets another user's password (admins): the way back in for a user
    /// who lost theirs. Their tokens stop working; their API keys do not.
    pub async fn reset_password(
        &self,
        actor: &Actor,
        user_id: i64,
        password: String,
    ) -> Result<(), ServiceError> {
        admin_only(actor)?;
        self.set_password(Some(actor), user_id, password).await
    }

    /// Every live account, by id (admins).
    pub async fn accounts(
        &self,
        actor: &Actor,
        page: PageRequest,
    ) -> Result<Page<UserRecord>, ServiceError> {
        admin_only(actor)?;
        let page = self.store.accounts_page(page).await?;
        Ok(Page {
            count: page.count,
            page: page.page,
            page_size: page.page_size,
            results: page.results.into_iter().map(Into::into).collect(),
        })
    }

    /// Enables, disables, promotes or demotes an account (admins; never
    /// themselves, so an admin cannot lock the last door behind them).
    pub async fn update_account(
        &self,
        actor: &Actor,
        id: i64,
        is_active: Option<bool>,
        is_admin: Option<bool>,
    ) -> Result<UserRecord, ServiceError> {
        admin_only(actor)?;
        if id == actor.id && (is_active == Some(false) || is_admin == Some(false)) {
            return Err(ServiceError::Forbidden(
                "an admin cannot disable or demote themselves",
            ));
        }
        let (account, disabled) = self
            .store
            .update_account(actor, id, is_active, is_admin)
            .await
            .map_err(not_found("user"))?;
        if disabled {
            self.revoked(id, Revocation::Account).await;
        }
        Ok(account.into())
    }

    /// Deletes an account (admins, not themselves).
    pub async fn delete_account(&self, actor: &Actor, id: i64) -> Result<(), ServiceError> {
        admin_only(actor)?;
        if id == actor.id {
            return Err(ServiceError::Forbidden("an admin cannot delete themselves"));
        }
        self.store
            .delete_account(actor, id)
            .await
            .map_err(not_found("user"))?;
        self.revoked(id, Revocation::Account).await;
        Ok(())
    }

    /// A new API key for `user` (the caller's own unless an admin names
    /// another). The key is in the answer and nowhere else.
    pub async fn create_key(
        &self,
        actor: &Actor,
        name: &str,
        user: Option<i64>,
    ) -> Result<(ApiKey, String), ServiceError> {
        super::storable("name", name)?;
        if name.trim().is_empty() || name.len() > 100 {
            return Err(ServiceError::Invalid {
                field: "name",
                message: "must be 1 to 100 bytes".into(),
            });
        }
        let user_id = user.unwrap_or(actor.id);
        if user_id != actor.id && !actor.is_admin {
            return Err(ServiceError::Forbidden(
                "only an admin may create keys for others",
            ));
        }
        let (key, hash) = new_key();
        let stored = self
            .store
            .create_key(actor, user_id, name, &hash)
            .await
            .map_err(not_found("user"))?;
        Ok((stored, key))
    }

    /// The caller's keys; every key for an admin.
    pub async fn keys(&self, actor: &Actor) -> Result<Vec<ApiKey>, ServiceError> {
        let owner = (!actor.is_admin).then_some(actor.id);
        Ok(self.store.keys(owner).await?)
    }

    /// Deletes a key (its user or an admin); sockets using it close.
    pub async fn delete_key(&self, actor: &Actor, id: i64) -> Result<(), ServiceError> {
        let owner = (!actor.is_admin).then_some(actor.id);
        let user_id = self
            .store
            .delete_key(actor, id, owner)
            .await
            .map_err(not_found("API key"))?;
        self.revoked(user_id, Revocation::Key { id }).await;
        Ok(())
    }

    /// Tells every process; sockets that used the credential close.
    async fn revoked(&self, user_id: i64, revocation: Revocation) {
        self.announce(Event::Revoked {
            user_id,
            revocation,
        })
        .await;
    }
}

/// Password length bounds, in bytes.
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=1024;

fn check_password_length(password: &str) -> Result<(), ServiceError> {
    if PASSWORD_LEN.contains(&password.len()) {
        Ok(())
    } else {
        Err(ServiceError::Invalid {
            field: "password",
            message: "must be 8 to 1024 bytes".into(),
        })
    }
}

fn not_found(what: &'static str) -> impl Fn(crate::store::StoreError) -> ServiceError {
    move |err| match err {
        crate::store::StoreError::NotFound => ServiceError::NotFound(what),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revocation_kills_only_what_it_names() {
        let token = Credential::Token {
            generation: 2,
            sid: Some("s1".into()),
        };
        let key = Credential::Key { id: 7 };
        assert!(token.is_revoked_by(&Revocation::Account));
        assert!(key.is_revoked_by(&Revocation::Account));
        assert!(token.is_revoked_by(&Revocation::TokensBefore { generation: 3 }));
        assert!(!token.is_revoked_by(&Revocation::TokensBefore { generation: 2 }));
        assert!(!key.is_revoked_by(&Revocation::TokensBefore { generation: 3 }));
        assert!(token.is_revoked_by(&Revocation::Session { sid: "s1".into() }));
        assert!(!token.is_revoked_by(&Revocation::Session { sid: "s2".into() }));
        assert!(key.is_revoked_by(&Revocation::Key { id: 7 }));
        assert!(!key.is_revoked_by(&Revocation::Key { id: 8 }));
    }

    #[test]
    fn keys_are_long_random_and_stored_as_a_hash() {
        let (a, hash) = new_key();
        let (b, _) = new_key();
        assert!(a.starts_with(KEY_PREFIX) && a.len() >= 40 && a != b);
        assert_eq!(hash, key_hash(&a));
        assert!(!hash.contains(&a[KEY_PREFIX.len()..]));
    }
}
