//! What makes a credential good or dead: accounts (active, deleted, their
//! token generation), revoked login sessions and API keys. Every check
//! is one round trip, so the database is the one truth every process sees
//! at once.

use std::collections::HashMap;

use sqlx::Connection;

use super::audit::{Changes, record};
use super::{Store, StoreError, batch_reads, flag, values_list};
use crate::model::{Account, Actor, ApiKey, User};
use crate::paging::{Page, PageRequest};
use crate::time::now_millis;

#[derive(sqlx::FromRow)]
pub(super) struct AccountRow {
    pub id: i64,
    pub username: String,
    pub is_admin: i64,
    pub is_active: i64,
    pub token_generation: i64,
    pub created_at: i64,
}

impl From<AccountRow> for Account {
    fn from(row: AccountRow) -> Self {
        Self {
            user: User {
                id: row.id,
                username: row.username,
                is_admin: row.is_admin != 0,
            },
            is_active: row.is_active != 0,
            generation: row.token_generation,
            created_at: row.created_at,
        }
    }
}

const ACCOUNT: &str = "u.id, u.username, u.is_admin, u.is_active, u.token_generation, u.created_at";

#[derive(sqlx::FromRow)]
struct TokenRow {
    #[sqlx(flatten)]
    account: AccountRow,
    sid: String,
    revoked: i64,
}

#[derive(sqlx::FromRow)]
struct CredentialRow {
    #[sqlx(flatten)]
    account: AccountRow,
    password_hash: String,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    key_id: i64,
    last_used_at: Option<i64>,
    #[sqlx(flatten)]
    account: AccountRow,
}

#[derive(sqlx::FromRow)]
struct ApiKeyRow {
    id: i64,
    name: String,
    user_id: i64,
    created_at: i64,
    last_used_at: Option<i64>,
}

impl From<ApiKeyRow> for ApiKey {
    fn from(row: ApiKeyRow) -> Self {
        Self {
            id: row.id,
            name: row.name,
            user: row.user_id,
            created_at: row.created_at,
            last_used_at: row.last_used_at,
        }
    }
}

/// What a token check found: the account, and whether the token's login
/// session was revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenAccount {
    pub account: Account,
    pub session_revoked: bool,
}

/// What an API key check found.
pub struct KeyAccount {
    pub key_id: i64,
    pub last_used_at: Option<i64>,
    pub account: Account,
}

impl Store {
    /// The live account and its password hash, for logging in.
    pub async fn credentials(
        &self,
        username: &str,
    ) -> Result<Option<(Account, String)>, StoreError> {
        let row: Option<CredentialRow> = sqlx::query_as(&format!(
            "SELECT {ACCOUNT}, u.password_hash FROM users u \
             WHERE u.username = $1 AND u.deleted_at IS NULL"
        ))
        .bind(username)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|r| (r.account.into(), r.password_hash)))
    }

    /// The accounts tokens name, each with whether the token's login
    /// session (`sid`, or "" for none) is revoked: one statement for many
    /// tokens (see the service's batched reads). A token whose user is
    /// gone is absent.
    pub async fn token_accounts(
        &self,
        tokens: &[(i64, String)],
    ) -> Result<HashMap<(i64, String), TokenAccount>, StoreError> {
        if tokens.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<TokenRow> = {
            let sql = format!(
                "SELECT {ACCOUNT}, t.column2 AS sid, \
                 CAST(CASE WHEN r.jti IS NULL THEN 0 ELSE 1 END AS BIGINT) AS revoked \
                 FROM (VALUES {}) AS t \
                 JOIN users u ON u.id = t.column1 AND u.deleted_at IS NULL \
                 LEFT JOIN revoked_tokens r ON r.jti = t.column2",
                values_list(self.backend, tokens.len(), 2)
            );
            let mut query = sqlx::query_as(&sql);
            for (user_id, sid) in tokens {
                query = query.bind(*user_id).bind(sid.as_str());
            }
            batch_reads::fetch_all(&self.batch_reads.tokens, query).await?
        };
        Ok(rows
            .into_iter()
            .map(|row| {
                let key = (row.account.id, row.sid);
                let found = TokenAccount {
                    account: row.account.into(),
                    session_revoked: row.revoked != 0,
                };
                (key, found)
            })
            .collect())
    }

    /// The account an API key (by its hash) acts for.
    pub async fn key_account(&self, key_hash: &str) -> Result<Option<KeyAccount>, StoreError> {
        let row: Option<KeyRow> = sqlx::query_as(&format!(
            "SELECT k.id AS key_id, k.last_used_at, {ACCOUNT} FROM api_keys k \
             JOIN users u ON u.id = k.user_id WHERE k.key_hash = $1 AND u.deleted_at IS NULL"
        ))
        .bind(key_hash)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(|r| KeyAccount {
            key_id: r.key_id,
            last_used_at: r.last_used_at,
            account: r.account.into(),
        }))
    }

    /// The account API key `id` acts for, while both exist.
    pub async fn key_owner(&self, id: i64) -> Result<Option<Account>, StoreError> {
        let row: Option<AccountRow> = sqlx::query_as(&format!(
            "SELECT {ACCOUNT} FROM api_keys k \
             JOIN users u ON u.id = k.user_id WHERE k.id = $1 AND u.deleted_at IS NULL"
        ))
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(Into::into))
    }

    /// Notes that a key was used (the caller decides how often).
    pub async fn touch_key(&self, id: i64, at: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(id)
            .bind(at)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    /// Live accounts by id.
    pub async fn accounts_page(&self, page: PageRequest) -> Result<Page<Account>, StoreError> {
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE deleted_at IS NULL")
            .fetch_one(&self.read)
            .await?;
        let rows: Vec<AccountRow> = sqlx::query_as(&format!(
            "SELECT {ACCOUNT} FROM users u WHERE u.deleted_at IS NULL ORDER BY u.id LIMIT $1 OFFSET $2"
        ))
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.read)
        .await?;
        Ok(Page::new(
            page,
            count,
            rows.into_iter().map(Into::into).collect(),
        ))
    }

    /// Sets `is_active` and `is_admin`. Disabling ends every credential
    /// the account has (its generation moves on, so re-enabling does not
    /// bring old tokens back). Returns the account and whether this change
    /// disabled it.
    pub async fn update_account(
        &self,
        actor: &Actor,
        id: i64,
        is_active: Option<bool>,
        is_admin: Option<bool>,
    ) -> Result<(Account, bool), StoreError> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let old: Account = sqlx::query_as::<_, AccountRow>(&format!(
            "SELECT {ACCOUNT} FROM users u WHERE u.id = $1 AND u.deleted_at IS NULL"
        ))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?
        .into();
        let active = is_active.unwrap_or(old.is_active);
        let admin = is_admin.unwrap_or(old.user.is_admin);
        let disabled = old.is_active && !active;
        let generation = old.generation + i64::from(disabled);
        sqlx::query(
            "UPDATE users SET is_active = $2, is_admin = $3, token_generation = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(flag(active))
        .bind(flag(admin))
        .bind(generation)
        .execute(&mut *tx)
        .await?;
        let changes = Changes::new()
            .field("is_active", old.is_active, active)
            .field("is_admin", old.user.is_admin, admin);
        if !changes.is_empty() {
            record(&mut tx, Some(actor), "user", id, "update", changes).await?;
        }
        tx.commit().await?;
        let account = Account {
            user: User {
                is_admin: admin,
                ..old.user
            },
            is_active: active,
            generation,
            created_at: old.created_at,
        };
        Ok((account, disabled))
    }

    /// Deletes an account softly: the row stays (their messages and the
    /// name stay), its memberships, subscriptions and keys go, and every
    /// credential dies.
    pub async fn delete_account(&self, actor: &Actor, id: i64) -> Result<(), StoreError> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let done = sqlx::query(
            "UPDATE users SET deleted_at = $2, is_active = 0, token_generation = token_generation + 1 \
             WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        // Their conversations take no more messages (see the group commit).
        sqlx::query(
            "UPDATE channels SET closed = 1 WHERE kind = 'direct' \
             AND id IN (SELECT channel_id FROM memberships WHERE user_id = $1)",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM memberships WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE subscriptions SET end_seq = (SELECT last_seq FROM tags WHERE tags.id = subscriptions.tag_id) \
             WHERE user_id = $1 AND end_seq IS NULL",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM api_keys WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        record(&mut tx, Some(actor), "user", id, "delete", Changes::new()).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Sets a password hash and moves the generation on: every token
    /// issued before stops working. Returns the new generation.
    pub async fn set_password(
        &self,
        actor: Option<&Actor>,
        id: i64,
        password_hash: &str,
    ) -> Result<i64, StoreError> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let generation: Option<i64> = sqlx::query_scalar(
            "UPDATE users SET password_hash = $2, token_generation = token_generation + 1 \
             WHERE id = $1 AND deleted_at IS NULL RETURNING token_generation",
        )
        .bind(id)
        .bind(password_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let generation = generation.ok_or(StoreError::NotFound)?;
        let changes = Changes::new().field("password", "***", "*** (changed)");
        record(&mut tx, actor, "user", id, "update", changes).await?;
        tx.commit().await?;
        Ok(generation)
    }

    /// Ends a login session until `expires_at` (when its tokens would
    /// have died anyway); sessions past that are forgotten here.
    pub async fn revoke_session(
        &self,
        actor: Option<&Actor>,
        user_id: i64,
        sid: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
            .bind(now_millis())
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES ($1, $2, $3) \
             ON CONFLICT (jti) DO NOTHING",
        )
        .bind(sid)
        .bind(user_id)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        // The session id is a credential's id, not a secret: the refresh
        // token itself never reaches the log.
        let changes = Changes::new().created("session", sid);
        record(&mut tx, actor, "token", user_id, "revoke", changes).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn create_key(
        &self,
        actor: &Actor,
        user_id: i64,
        name: &str,
        key_hash: &str,
    ) -> Result<ApiKey, StoreError> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let live: Option<i64> =
            sqlx::query_scalar("SELECT id FROM users WHERE id = $1 AND deleted_at IS NULL")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        live.ok_or(StoreError::NotFound)?;
        let key: ApiKey = sqlx::query_as::<_, ApiKeyRow>(
            "INSERT INTO api_keys (user_id, name, key_hash, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id, name, user_id, created_at, last_used_at",
        )
        .bind(user_id)
        .bind(name)
        .bind(key_hash)
        .bind(now_millis())
        .fetch_one(&mut *tx)
        .await?
        .into();
        let changes = Changes::new()
            .created("name", &key.name)
            .created("user", key.user);
        record(&mut tx, Some(actor), "api_key", key.id, "create", changes).await?;
        tx.commit().await?;
        Ok(key)
    }

    /// Keys by id: one user's, or everyone's.
    pub async fn keys(&self, user_id: Option<i64>) -> Result<Vec<ApiKey>, StoreError> {
        let rows: Vec<ApiKeyRow> = sqlx::query_as(
            "SELECT id, name, user_id, created_at, last_used_at FROM api_keys \
             WHERE ($1 IS NULL OR user_id = $1) ORDER BY id",
        )
        .bind(user_id)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// Deletes a key (of `owner` only, unless `None`); returns its user.
    pub async fn delete_key(
        &self,
        actor: &Actor,
        id: i64,
        owner: Option<i64>,
    ) -> Result<i64, StoreError> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let user_id: Option<i64> = sqlx::query_scalar(
            "DELETE FROM api_keys WHERE id = $1 AND ($2 IS NULL OR user_id = $2) RETURNING user_id",
        )
        .bind(id)
        .bind(owner)
        .fetch_optional(&mut *tx)
        .await?;
        let user_id = user_id.ok_or(StoreError::NotFound)?;
        record(
            &mut tx,
            Some(actor),
            "api_key",
            id,
            "delete",
            Changes::new(),
        )
        .await?;
        tx.commit().await?;
        Ok(user_id)
    }
}
