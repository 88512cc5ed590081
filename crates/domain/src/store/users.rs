//! Users and the shared name registry.

use sqlx::Connection;

use super::audit::{Changes, record};
use super::{Store, StoreError, Tx, conflict, flag};
use crate::model::{Actor, User};
use crate::names::Username;
use crate::time::now_millis;

#[derive(sqlx::FromRow)]
pub(super) struct UserRow {
    pub(super) id: i64,
    username: String,
    is_admin: i64,
}

impl From<UserRow> for User {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id,
            username: row.username,
            is_admin: row.is_admin != 0,
        }
    }
}

/// Claims `name` in the namespace users and topics share.
pub(super) async fn claim_name(tx: &mut Tx<'_>, name: &str) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO names (name) VALUES ($1)")
        .bind(name)
        .execute(&mut **tx)
        .await
        .map_err(conflict("name"))?;
    Ok(())
}

impl Store {
    pub async fn create_user(
        &self,
        actor: Option<&Actor>,
        username: &Username,
        password_hash: &str,
        is_admin: bool,
    ) -> Result<User, StoreError> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        claim_name(&mut tx, username.as_str()).await?;
        let user: User = sqlx::query_as::<_, UserRow>(
            "INSERT INTO users (username, password_hash, is_admin, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id, username, is_admin",
        )
        .bind(username.as_str())
        .bind(password_hash)
        .bind(flag(is_admin))
        .bind(now_millis())
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict("name"))?
        .into();
        let changes = Changes::new()
            .created("username", &user.username)
            .created("is_admin", user.is_admin);
        record(&mut tx, actor, "user", user.id, "create", changes).await?;
        tx.commit().await?;
        Ok(user)
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT id, username, is_admin FROM users WHERE id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(Into::into))
    }

    pub async fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT id, username, is_admin FROM users WHERE username = $1 AND deleted_at IS NULL",
        )
        .bind(username)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(Into::into))
    }

    pub async fn user_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.read)
            .await?)
    }
}
