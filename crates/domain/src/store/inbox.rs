//! Notifications and each user's inbox.
//!
//! Creating a notification writes one row, whatever the size of its tag's
//! audience; a user's inbox is derived from their subscriptions' ranges.
//! Per-user state is sparse: `inbox_state` holds a row only for items a user
//! changed, and "read all" moves a watermark instead of touching every item.

use sqlx::Connection;

use super::audit::{Changes, record};
use super::{Backend, Store, StoreError, flag, outcomes};
use crate::model::{Actor, InboxItem, Notification};
use crate::time::now_millis;

/// The notifications in `$1`'s inbox, minus the ones it deleted.
const INBOX: &str = "FROM subscriptions s \
     JOIN notifications n ON n.tag_id = s.tag_id AND n.seq > s.start_seq \
          AND (s.end_seq IS NULL OR n.seq <= s.end_seq) \
     JOIN users u ON u.id = s.user_id \
     LEFT JOIN inbox_state st ON st.user_id = s.user_id AND st.notification_id = n.id \
     WHERE s.user_id = $1 AND COALESCE(st.is_deleted, 0) = 0";

/// Read unless the user said otherwise, or below the read-all watermark.
const IS_READ: &str = "COALESCE(st.is_read, CASE WHEN n.id <= u.read_watermark THEN 1 ELSE 0 END)";

#[derive(sqlx::FromRow)]
pub(super) struct ItemRow {
    id: i64,
    tag_id: i64,
    seq: i64,
    message: String,
    created_at: i64,
    is_read: i64,
}

impl From<ItemRow> for InboxItem {
    fn from(r: ItemRow) -> Self {
        Self {
            id: r.id,
            notification: Notification {
                id: r.id,
                tag: r.tag_id,
                message: r.message,
                timestamp: r.created_at,
                seq: r.seq,
            },
            is_read: r.is_read != 0,
            created_at: r.created_at,
        }
    }
}

fn item_select() -> String {
    format!("SELECT n.id, n.tag_id, n.seq, n.message, n.created_at, {IS_READ} AS is_read {INBOX}")
}

impl Store {
    /// Stores a notification for every current subscriber of the tag.
    pub async fn create_notification(
        &self,
        actor: &Actor,
        tag_id: i64,
        message: &str,
    ) -> Result<Notification, StoreError> {
        let now = now_millis();
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let seq: i64 = sqlx::query_scalar(
            "UPDATE tags SET last_seq = last_seq + 1 WHERE id = $1 AND deleted_at IS NULL RETURNING last_seq",
        )
        .bind(tag_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound)?;
        // Ids come from a locked counter so they are handed out in commit
        // order, which the read-all watermark relies on.
        let id: i64 = sqlx::query_scalar(
            "UPDATE counters SET value = value + 1 WHERE name = 'notifications' RETURNING value",
        )
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO notifications (id, tag_id, seq, message, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(id)
            .bind(tag_id)
            .bind(seq)
            .bind(message)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let changes = Changes::new()
            .created("tag", tag_id)
            .created("message", message);
        record(&mut tx, Some(actor), "notification", id, "create", changes).await?;
        if let Err(err) = tx.commit().await {
            // A retry of a notification said to have failed would reach
            // every subscriber twice: when the answer was lost, ask (on
            // another connection; this one is broken).
            drop(conn);
            let err = StoreError::from(err);
            let landed = self.backend == Backend::Postgres
                && outcomes::answer_lost(&err)
                && self.notification_landed(id).await.unwrap_or(false);
            if !landed {
                return Err(err);
            }
            tracing::warn!(
                id,
                "a notification whose commit's answer was lost was stored"
            );
        }
        Ok(Notification {
            id,
            tag: tag_id,
            message: message.to_owned(),
            timestamp: now,
            seq,
        })
    }

    /// One item of `user_id`'s inbox; `None` if it is not theirs or deleted.
    pub async fn inbox_item(&self, user_id: i64, id: i64) -> Result<Option<InboxItem>, StoreError> {
        let row: Option<ItemRow> = sqlx::query_as(&format!("{} AND n.id = $2", item_select()))
            .bind(user_id)
            .bind(id)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map(Into::into))
    }

    /// Changes an item's read and deleted flags.
    pub async fn update_inbox_item(
        &self,
        actor: &Actor,
        item: &InboxItem,
        is_read: Option<bool>,
        is_deleted: Option<bool>,
    ) -> Result<InboxItem, StoreError> {
        let read = is_read.unwrap_or(item.is_read);
        let deleted = is_deleted.unwrap_or(false);
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        sqlx::query(
            "INSERT INTO inbox_state (user_id, notification_id, is_read, is_deleted, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, notification_id) DO UPDATE \
             SET is_read = excluded.is_read, is_deleted = excluded.is_deleted, updated_at = excluded.updated_at",
        )
        .bind(actor.id)
        .bind(item.id)
        .bind(flag(read))
        .bind(flag(deleted))
        .bind(now_millis())
        .execute(&mut *tx)
        .await?;
        let changes =
            Changes::new()
                .field("is_read", item.is_read, read)
                .field("is_deleted", false, deleted);
        record(
            &mut tx,
            Some(actor),
            "inbox_item",
            format!("{}:{}", actor.id, item.id),
            "update",
            changes,
        )
        .await?;
        tx.commit().await?;
        Ok(InboxItem {
            is_read: read,
            ..item.clone()
        })
    }

    /// Marks every item read; returns how many were unread.
    /// Marks every item up to the newest notification read; returns how
    /// many were unread and that newest id (the new watermark).
    pub async fn read_all(&self, actor: &Actor) -> Result<(i64, i64), StoreError> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let unread: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) {INBOX} AND {IS_READ} = 0"))
            .bind(actor.id)
            .fetch_one(&mut *tx)
            .await?;
        let mark: i64 =
            sqlx::query_scalar("SELECT value FROM counters WHERE name = 'notifications'")
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query("UPDATE users SET read_watermark = $2 WHERE id = $1")
            .bind(actor.id)
            .bind(mark)
            .execute(&mut *tx)
            .await?;
        // Explicit "unread" marks below the new watermark give way to it.
        sqlx::query(
            "UPDATE inbox_state SET is_read = NULL WHERE user_id = $1 AND notification_id <= $2",
        )
        .bind(actor.id)
        .bind(mark)
        .execute(&mut *tx)
        .await?;
        if unread > 0 {
            let changes = Changes::new().field("unread", unread, 0);
            record(&mut tx, Some(actor), "inbox", actor.id, "read_all", changes).await?;
        }
        tx.commit().await?;
        Ok((unread, mark))
    }

    /// The tag's notifications after `after_seq` still in `user_id`'s inbox,
    /// oldest first: a subscription's offline backlog.
    pub async fn notifications_after(
        &self,
        user_id: i64,
        tag_id: i64,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<InboxItem>, StoreError> {
        let rows: Vec<ItemRow> = sqlx::query_as(&format!(
            "{} AND s.end_seq IS NULL AND n.tag_id = $2 AND n.seq > $3 ORDER BY n.seq LIMIT $4",
            item_select()
        ))
        .bind(user_id)
        .bind(tag_id)
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }
}
