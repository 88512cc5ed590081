//! What a gateway reads to deliver: backlogs, cursors and where they are
//! saved (a user's memberships and subscriptions: `snapshots.rs`). No rules
//! apply here: a session only ever reads for its own user.
//!
//! These reads come in storms: after a Redis blip every session resyncs at
//! once, after a restart every client reconnects at once. Each read first
//! takes one of a few slots (one fewer than the read pool's connections),
//! so a storm queues here, without a deadline, instead of timing out in
//! the pool's queue and closing sockets with 1011. A read that still finds
//! the pool busy (connections slow to open under load) is tried again a
//! few times before the session gives up.

use super::{Core, ServiceError};
use crate::model::InboxItem;
use crate::store::{Backlog, Cursor, StoreError};

/// Attempts at a delivery read while the pool is busy.
const BUSY_ATTEMPTS: usize = 3;

/// Runs `read`, again while the pool reports itself busy or a connection
/// broke under it (reads are safe to repeat).
pub(super) async fn busy_retry<T, F, Fut>(mut read: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut attempt = 1;
    loop {
        match read().await {
            Err(err) if err.is_transient() && attempt < BUSY_ATTEMPTS => attempt += 1,
            done => return done,
        }
    }
}

impl Core {
    /// How far `user_id` has received `channel_id`; `None` when not a member.
    pub async fn delivered_seq(
        &self,
        channel_id: i64,
        user_id: i64,
    ) -> Result<Option<i64>, ServiceError> {
        let _slot = self.delivery_slot().await?;
        Ok(busy_retry(|| self.store.delivered_seq(channel_id, user_id)).await?)
    }

    /// A channel's messages after `after`, oldest first, leaving out the
    /// reader's own (`skip_sender`), and what retention took before them.
    pub async fn backlog(
        &self,
        channel_id: i64,
        after: i64,
        limit: i64,
        skip_sender: Option<i64>,
    ) -> Result<Backlog, ServiceError> {
        let _slot = self.delivery_slot().await?;
        Ok(busy_retry(|| self.store.backlog(channel_id, after, limit, skip_sender)).await?)
    }

    /// A tag's notifications after `after` still in `user_id`'s inbox.
    pub async fn notification_backlog(
        &self,
        user_id: i64,
        tag_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<InboxItem>, ServiceError> {
        let _slot = self.delivery_slot().await?;
        Ok(busy_retry(|| {
            self.store
                .notifications_after(user_id, tag_id, after, limit)
        })
        .await?)
    }

    async fn delivery_slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, ServiceError> {
        self.delivery_reads
            .acquire()
            .await
            .map_err(|_| ServiceError::Internal("delivery reads have stopped"))
    }

    /// Saves delivery cursors in one batch (positions never move back).
    pub async fn save_cursors(&self, cursors: &[(Cursor, i64)]) -> Result<(), ServiceError> {
        Ok(self.store.advance_cursors(cursors).await?)
    }

    /// The read pool's connections: (in use, idle), for `/metrics`.
    pub fn pool_connections(&self) -> (usize, usize) {
        self.store.pool_connections()
    }

    /// Readiness of the store: one round trip.
    pub async fn ping_store(&self) -> Result<(), ServiceError> {
        Ok(self.store.ping().await?)
    }

    /// Closes the store; call once nothing uses it any more.
    pub async fn close(&self) {
        self.store.close().await;
    }
}
