//! A socket's starting point: its user's memberships and subscriptions,
//! read in batches (see `batch.rs`).
//!
//! A snapshot is read after its session started watching the user's
//! events, and batching only delays the read, so a membership added
//! meanwhile is either in the snapshot or announced to the session.

use super::delivery::busy_retry;
use super::{Core, ServiceError};
use crate::store::{SessionSnapshot, Store};

pub(super) type SnapshotReader = super::batch::Batcher<i64, SessionSnapshot>;

pub(super) fn reader(store: Store) -> SnapshotReader {
    SnapshotReader::new(move |users: Vec<i64>| {
        let store = store.clone();
        async move { busy_retry(|| store.session_snapshots(&users)).await }
    })
}

impl Core {
    /// `user_id`'s memberships and subscriptions with their cursors, read
    /// together with those of other sockets opening at the same time.
    pub async fn session_snapshot(&self, user_id: i64) -> Result<SessionSnapshot, ServiceError> {
        Ok(self.snapshots.get(user_id).await?.unwrap_or_default())
    }
}
