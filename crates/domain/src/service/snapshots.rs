//! Session snapshots read in batches.
//!
//! Every socket that opens reads its user's memberships and subscriptions.
//! Read one by one, a burst of handshakes (clients coming back after a
//! restart, a balancer moving traffic) costs a store round trip per
//! socket, and on SQLite each round trip is two thread hand-offs to its
//! worker and back: most of a handshake's CPU. So reads that arrive while
//! others are under way wait for the next statement, which serves them
//! all, as a group commit does for writes. A read that arrives alone goes
//! out at once.
//!
//! Batching only ever delays a read, never moves it earlier: a snapshot is
//! still read after its session started watching the user's events, so a
//! membership added meanwhile is either in the snapshot or announced.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::delivery::busy_retry;
use super::{Core, ServiceError};
use crate::store::{SessionSnapshot, Store, StoreError};

/// Users per statement at most (well below every backend's bind limit).
const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<SessionSnapshot, ServiceError>>;

/// The queue of snapshot reads and the task that batches them.
pub(super) struct SnapshotReader {
    queue: OnceLock<mpsc::UnboundedSender<(i64, Reply)>>,
    store: Store,
    /// Shared with every other delivery read (see `delivery.rs`).
    slots: Arc<Semaphore>,
}

impl SnapshotReader {
    pub(super) fn new(store: Store, slots: Arc<Semaphore>) -> Self {
        Self {
            queue: OnceLock::new(),
            store,
            slots,
        }
    }

    async fn read(&self, user_id: i64) -> Result<SessionSnapshot, ServiceError> {
        let stopped = || ServiceError::Internal("snapshot reads have stopped");
        // Started on first use, inside the runtime; it ends with the core.
        let queue = self.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(batch(self.store.clone(), self.slots.clone(), receiver));
            sender
        });
        let (reply, answer) = oneshot::channel();
        queue.send((user_id, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Takes whatever is queued when a delivery slot frees up, and reads it in
/// one statement; as many statements run at once as there are slots.
async fn batch(
    store: Store,
    slots: Arc<Semaphore>,
    mut queue: mpsc::UnboundedReceiver<(i64, Reply)>,
) {
    while let Some(first) = queue.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let mut waiting = vec![first];
        while waiting.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => waiting.push(next),
                Err(_) => break,
            }
        }
        let store = store.clone();
        tokio::spawn(async move {
            answer(&store, waiting).await;
            drop(slot);
        });
    }
}

async fn answer(store: &Store, waiting: Vec<(i64, Reply)>) {
    let mut users: Vec<i64> = waiting.iter().map(|(user, _)| *user).collect();
    users.sort_unstable();
    users.dedup();
    match busy_retry(|| store.session_snapshots(&users)).await {
        Ok(mut found) => {
            let mut replies: HashMap<i64, Vec<Reply>> = HashMap::new();
            for (user, reply) in waiting {
                replies.entry(user).or_default().push(reply);
            }
            for (user, replies) in replies {
                let snapshot = found.remove(&user).unwrap_or_default();
                for reply in replies {
                    let _ = reply.send(Ok(snapshot.clone()));
                }
            }
        }
        Err(err) => {
            // One failure, told to everyone who waited on it.
            let message = err.to_string();
            for (_, reply) in waiting {
                let _ = reply.send(Err(ServiceError::Store(StoreError::Unavailable(
                    message.clone(),
                ))));
            }
        }
    }
}

impl Core {
    /// `user_id`'s memberships and subscriptions with their cursors, read
    /// together with those of other sockets opening at the same time.
    pub async fn session_snapshot(&self, user_id: i64) -> Result<SessionSnapshot, ServiceError> {
        self.snapshots.read(user_id).await
    }
}
