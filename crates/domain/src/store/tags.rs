//! Tags and the users subscribed to them.
//!
//! A subscription records where in the tag's sequence it began (and, once
//! ended, where it stopped): together those bound which notifications sit in
//! the subscriber's inbox, so a notification is one row however many users
//! follow its tag.

use sqlx::Connection;

use super::audit::{Changes, record};
use super::{Store, StoreError, conflict};
use crate::model::{Actor, Subscription, Tag};
use crate::time::now_millis;

/// An active subscription with its delivery cursor, for the gateway.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TagSubscription {
    pub id: i64,
    pub tag_id: i64,
    pub delivered_seq: i64,
}

#[derive(sqlx::FromRow)]
struct SubscriptionRow {
    id: i64,
    user_id: i64,
    tag_id: i64,
}

impl From<SubscriptionRow> for Subscription {
    fn from(r: SubscriptionRow) -> Self {
        Self {
            id: r.id,
            user: r.user_id,
            tag: r.tag_id,
        }
    }
}

impl Store {
    pub async fn create_tag(&self, actor: &Actor, name: &str) -> Result<Tag, StoreError> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let id: i64 =
            sqlx::query_scalar("INSERT INTO tags (name, created_at) VALUES ($1, $2) RETURNING id")
                .bind(name)
                .bind(now_millis())
                .fetch_one(&mut *tx)
                .await
                .map_err(conflict("tag"))?;
        record(
            &mut tx,
            Some(actor),
            "tag",
            id,
            "create",
            Changes::new().created("name", name),
        )
        .await?;
        tx.commit().await?;
        Ok(Tag {
            id,
            name: name.to_owned(),
        })
    }

    pub async fn tags(&self) -> Result<Vec<Tag>, StoreError> {
        let rows: Vec<(i64, String)> =
            sqlx::query_as("SELECT id, name FROM tags WHERE deleted_at IS NULL ORDER BY name")
                .fetch_all(&self.read)
                .await?;
        Ok(rows
            .into_iter()
            .map(|(id, name)| Tag { id, name })
            .collect())
    }

    pub async fn tag(&self, id: i64) -> Result<Option<Tag>, StoreError> {
        let row: Option<(i64, String)> =
            sqlx::query_as("SELECT id, name FROM tags WHERE id = $1 AND deleted_at IS NULL")
                .bind(id)
                .fetch_optional(&self.read)
                .await?;
        Ok(row.map(|(id, name)| Tag { id, name }))
    }

    /// Deletes a tag softly: it takes no more notifications or
    /// subscriptions and its name is free again, while what it already
    /// brought stays in every inbox (its subscriptions end where it is).
    pub async fn delete_tag(&self, actor: &Actor, id: i64) -> Result<(), StoreError> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let name: String = sqlx::query_scalar(
            "UPDATE tags SET deleted_at = $2 WHERE id = $1 AND deleted_at IS NULL RETURNING name",
        )
        .bind(id)
        .bind(now_millis())
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        sqlx::query(
            "UPDATE subscriptions SET end_seq = (SELECT last_seq FROM tags WHERE tags.id = subscriptions.tag_id) \
             WHERE tag_id = $1 AND end_seq IS NULL",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        record(
            &mut tx,
            Some(actor),
            "tag",
            id,
            "delete",
            Changes::new().removed("name", name),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Subscribes `user_id` to `tag_id` from the tag's next notification on.
    pub async fn subscribe(
        &self,
        actor: &Actor,
        user_id: i64,
        tag_id: i64,
    ) -> Result<Subscription, StoreError> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let row: SubscriptionRow = sqlx::query_as(
            "INSERT INTO subscriptions (user_id, tag_id, start_seq, delivered_seq, created_at) \
             SELECT $1, id, last_seq, last_seq, $3 FROM tags WHERE id = $2 AND deleted_at IS NULL \
             RETURNING id, user_id, tag_id",
        )
        .bind(user_id)
        .bind(tag_id)
        .bind(now_millis())
        .fetch_optional(&mut *tx)
        .await
        .map_err(conflict("subscription"))?
        .ok_or(StoreError::NotFound)?;
        let changes = Changes::new()
            .created("user", user_id)
            .created("tag", tag_id);
        record(
            &mut tx,
            Some(actor),
            "subscription",
            row.id,
            "create",
            changes,
        )
        .await?;
        tx.commit().await?;
        Ok(row.into())
    }

    /// Active subscriptions, optionally of one user.
    pub async fn subscriptions(
        &self,
        user_id: Option<i64>,
    ) -> Result<Vec<Subscription>, StoreError> {
        let rows: Vec<SubscriptionRow> = sqlx::query_as(
            "SELECT id, user_id, tag_id FROM subscriptions \
             WHERE end_seq IS NULL AND ($1 IS NULL OR user_id = $1) ORDER BY id",
        )
        .bind(user_id)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    pub async fn subscription(&self, id: i64) -> Result<Option<Subscription>, StoreError> {
        let row: Option<SubscriptionRow> = sqlx::query_as(
            "SELECT id, user_id, tag_id FROM subscriptions WHERE id = $1 AND end_seq IS NULL",
        )
        .bind(id)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(Into::into))
    }

    /// Ends a subscription: what it already brought stays in the inbox.
    pub async fn end_subscription(
        &self,
        actor: &Actor,
        sub: &Subscription,
    ) -> Result<(), StoreError> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let ended = sqlx::query(
            "UPDATE subscriptions SET end_seq = (SELECT last_seq FROM tags WHERE tags.id = subscriptions.tag_id) \
             WHERE id = $1 AND end_seq IS NULL",
        )
        .bind(sub.id)
        .execute(&mut *tx)
        .await?;
        if ended.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let changes = Changes::new()
            .removed("user", sub.user)
            .removed("tag", sub.tag);
        record(
            &mut tx,
            Some(actor),
            "subscription",
            sub.id,
            "delete",
            changes,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// `user_id`'s active subscriptions with their delivery cursors.
    pub async fn tag_subscriptions(
        &self,
        user_id: i64,
    ) -> Result<Vec<TagSubscription>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT id, tag_id, delivered_seq FROM subscriptions \
             WHERE user_id = $1 AND end_seq IS NULL ORDER BY id",
        )
        .bind(user_id)
        .fetch_all(&self.read)
        .await?)
    }
}
