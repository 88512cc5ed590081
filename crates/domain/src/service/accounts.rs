//! Users and passwords: who a token names, logins and new accounts.
//!
//! Password hashing is deliberately slow (argon2id), so it runs on the
//! blocking pool, and at most one hash per core at a time: a flood of
//! logins queues here instead of taking every thread the rest of the
//! service needs.

use std::net::IpAddr;
use std::sync::LazyLock;

use tokio::time::Instant;

use super::{Core, ServiceError};
use crate::auth::{hash_password, verify_password};
use crate::model::{Account, Actor, User};
use crate::names::Username;

/// Checked against when the username is unknown, so a wrong username
/// costs as long as a wrong password and reveals nothing.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_password("not a password").unwrap_or_default());

impl Core {
    /// The user named `username`.
    pub async fn user_named(&self, username: &Username) -> Result<User, ServiceError> {
        self.store
            .user_by_name(username.as_str())
            .await?
            .ok_or(ServiceError::NotFound("user"))
    }

    /// The user whose password this is; `None` for a wrong username or
    /// password alike. Failures are throttled per username and per client
    /// `address` ([`ServiceError::Throttled`] says how long to wait).
    pub async fn check_password(
        &self,
        username: &str,
        password: String,
        address: Option<IpAddr>,
    ) -> Result<Option<Account>, ServiceError> {
        super::storable("username", username)?;
        if let Err(wait) = self.logins.attempt(username, address, Instant::now()) {
            crate::metrics::login("throttled");
            return Err(ServiceError::Throttled(wait));
        }
        let account = self.verify(username, password).await?;
        match &account {
            Some(account) if !account.is_active => {
                crate::metrics::login("disabled");
                return Err(ServiceError::Unauthorized("this account is disabled"));
            }
            Some(_) => {
                crate::metrics::login("ok");
                self.logins.succeeded(username, address, Instant::now());
            }
            None => crate::metrics::login("wrong_credentials"),
        }
        Ok(account)
    }

    async fn verify(
        &self,
        username: &str,
        password: String,
    ) -> Result<Option<Account>, ServiceError> {
        let found = self.store.credentials(username).await?;
        let hash = found
            .as_ref()
            .map_or_else(|| DUMMY_HASH.clone(), |(_, hash)| hash.clone());
        let ok = self
            .hashing(move || Ok(verify_password(&password, &hash)))
            .await?;
        Ok(found.filter(|_| ok).map(|(account, _)| account))
    }

    /// Creates an account (the caller has checked who may).
    pub async fn create_user(
        &self,
        actor: Option<&Actor>,
        username: &Username,
        password: String,
        is_admin: bool,
    ) -> Result<User, ServiceError> {
        let hash = self.hashing(move || hash_password(&password)).await?;
        Ok(self
            .store
            .create_user(actor, username, &hash, is_admin)
            .await?)
    }

    /// How many accounts exist (an empty store gets its first admin).
    pub async fn user_count(&self) -> Result<i64, ServiceError> {
        Ok(self.store.user_count().await?)
    }

    /// Runs password work on the blocking pool, one job per core at most.
    pub(super) async fn hashing<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, crate::auth::AuthError> + Send + 'static,
    ) -> Result<T, ServiceError> {
        let _turn = self
            .hashers
            .acquire()
            .await
            .map_err(|_| ServiceError::Internal("password hashing has stopped"))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| ServiceError::Internal("password hashing failed"))?
            .map_err(|_| ServiceError::Internal("password hashing failed"))
    }
}
