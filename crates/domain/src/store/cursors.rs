//! Delivery cursors: how far the gateway has written each member's
//! channels and each subscriber's tags to a socket. They are advanced in
//! batches (a cursor only moves forward), never once per frame.

use super::{Store, StoreError};

/// One cursor position to persist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cursor {
    /// `memberships (channel_id, user_id)`.
    Channel { channel_id: i64, user_id: i64 },
    /// `subscriptions (id)`.
    Subscription { id: i64 },
}

impl Store {
    /// Moves each cursor forward to its seq (never back) in one transaction.
    pub async fn advance_cursors(&self, cursors: &[(Cursor, i64)]) -> Result<(), StoreError> {
        if cursors.is_empty() {
            return Ok(());
        }
        let mut tx = self.write.begin().await?;
        for &(cursor, seq) in cursors {
            let query = match cursor {
                Cursor::Channel { channel_id, user_id } => sqlx::query(
                    "UPDATE memberships SET delivered_seq = $3 \
                     WHERE channel_id = $1 AND user_id = $2 AND delivered_seq < $3",
                )
                .bind(channel_id)
                .bind(user_id),
                Cursor::Subscription { id } => sqlx::query(
                    "UPDATE subscriptions SET delivered_seq = $2 WHERE id = $1 AND delivered_seq < $2",
                )
                .bind(id),
            };
            query.bind(seq).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
