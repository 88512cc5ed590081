//! Delivery cursors: how far the gateway has written each member's
//! channels and each subscriber's tags to a socket. They are advanced in
//! batches (a cursor only moves forward), never once per frame.

use sqlx::Connection;

use super::{Store, StoreError, values_list};

/// One cursor position to persist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cursor {
    /// `memberships (channel_id, user_id)`.
    Channel { channel_id: i64, user_id: i64 },
    /// `subscriptions (id)`.
    Subscription { id: i64 },
}

/// Cursors per `UPDATE` statement.
const ROWS_PER_UPDATE: usize = 300;

impl Store {
    /// Moves each cursor forward to its seq (never back) in one transaction,
    /// a few hundred cursors per statement: a flush covers every socket of
    /// the process and holds the write connection while it runs, so on
    /// SQLite it runs beside the commits it holds up.
    pub async fn advance_cursors(&self, cursors: &[(Cursor, i64)]) -> Result<(), StoreError> {
        let mut channels: Vec<[i64; 3]> = Vec::new();
        let mut subscriptions: Vec<[i64; 2]> = Vec::new();
        for &(cursor, seq) in cursors {
            match cursor {
                Cursor::Channel {
                    channel_id,
                    user_id,
                } => {
                    channels.push([channel_id, user_id, seq]);
                }
                Cursor::Subscription { id } => subscriptions.push([id, seq]),
            }
        }
        if cursors.is_empty() {
            return Ok(());
        }
        let store = self.clone();
        self.beside_commits(async move { store.write_cursors(channels, subscriptions).await })
            .await
    }

    async fn write_cursors(
        &self,
        channels: Vec<[i64; 3]>,
        subscriptions: Vec<[i64; 2]>,
    ) -> Result<(), StoreError> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        for chunk in channels.chunks(ROWS_PER_UPDATE) {
            let sql = format!(
                "WITH v (channel_id, user_id, seq) AS (VALUES {}) \
                 UPDATE memberships SET delivered_seq = v.seq FROM v \
                 WHERE memberships.channel_id = v.channel_id AND memberships.user_id = v.user_id \
                 AND memberships.delivered_seq < v.seq",
                values_list(self.backend, chunk.len(), 3)
            );
            bind_all(sqlx::query(&sql), chunk).execute(&mut *tx).await?;
        }
        for chunk in subscriptions.chunks(ROWS_PER_UPDATE) {
            let sql = format!(
                "WITH v (id, seq) AS (VALUES {}) \
                 UPDATE subscriptions SET delivered_seq = v.seq FROM v \
                 WHERE subscriptions.id = v.id AND subscriptions.delivered_seq < v.seq",
                values_list(self.backend, chunk.len(), 2)
            );
            bind_all(sqlx::query(&sql), chunk).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

fn bind_all<'q, const N: usize>(
    mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    rows: &[[i64; N]],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for row in rows {
        for &value in row {
            query = query.bind(value);
        }
    }
    query
}
