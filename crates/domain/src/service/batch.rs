//! Store reads batched across callers, as group commit batches writes.
//!
//! Some reads come in bursts of the same shape for different keys: every
//! socket that opens reads its user's account and snapshot, and after a
//! restart every client opens one at once. Read one by one, each costs a
//! store round trip, and on SQLite a round trip is two thread hand-offs
//! to its worker and back: most of a handshake's CPU. So a read that
//! arrives while others are under way waits for the next statement, which
//! serves everyone waiting. A read that arrives alone goes out at once.
//!
//! Batching only ever delays a read, never moves it earlier, so a caller
//! sees the store as of some moment after it asked, as it would alone.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use tokio::sync::{Semaphore, mpsc, oneshot};

use super::ServiceError;
use crate::store::StoreError;

/// Keys per statement at most (well below every backend's bind limit).
const MAX_BATCH: usize = 256;

type Found<K, V> = Result<HashMap<K, V>, StoreError>;
type Read<K, V> =
    Arc<dyn Fn(Vec<K>) -> Pin<Box<dyn Future<Output = Found<K, V>> + Send>> + Send + Sync>;
type Reply<V> = oneshot::Sender<Result<Option<V>, ServiceError>>;

/// A queue of reads by key and the task that batches them.
pub(super) struct Batcher<K, V> {
    queue: OnceLock<mpsc::UnboundedSender<(K, Reply<V>)>>,
    read: Read<K, V>,
    /// Statements under way at most: whatever queued meanwhile waits for
    /// a free one and goes out together.
    slots: Arc<Semaphore>,
}

impl<K, V> Batcher<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// `read` answers many keys in one statement; a key it leaves out has
    /// nothing stored.
    pub(super) fn new<F, Fut>(slots: Arc<Semaphore>, read: F) -> Self
    where
        F: Fn(Vec<K>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Found<K, V>> + Send + 'static,
    {
        Self {
            queue: OnceLock::new(),
            read: Arc::new(move |keys| Box::pin(read(keys))),
            slots,
        }
    }

    /// What is stored under `key`, read along with whatever else is asked
    /// for meanwhile.
    pub(super) async fn get(&self, key: K) -> Result<Option<V>, ServiceError> {
        let stopped = || ServiceError::Internal("batched reads have stopped");
        // Started on first use, inside the runtime; it ends with its owner.
        let queue = self.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(run(self.read.clone(), self.slots.clone(), receiver));
            sender
        });
        let (reply, answer) = oneshot::channel();
        queue.send((key, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Takes whatever is queued once a slot frees up, and reads it in one
/// statement; as many statements run at once as there are slots.
async fn run<K, V>(
    read: Read<K, V>,
    slots: Arc<Semaphore>,
    mut queue: mpsc::UnboundedReceiver<(K, Reply<V>)>,
) where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
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
        let read = read.clone();
        tokio::spawn(async move {
            answer(&read, waiting).await;
            drop(slot);
        });
    }
}

async fn answer<K, V>(read: &Read<K, V>, waiting: Vec<(K, Reply<V>)>)
where
    K: Eq + Hash + Clone,
    V: Clone,
{
    let keys: HashSet<K> = waiting.iter().map(|(key, _)| key.clone()).collect();
    match read(keys.into_iter().collect()).await {
        Ok(found) => {
            for (key, reply) in waiting {
                let _ = reply.send(Ok(found.get(&key).cloned()));
            }
        }
        Err(err) => {
            // One failure, told to everyone who waited on it.
            let message = err.to_string();
            for (_, reply) in waiting {
                let err = StoreError::Unavailable(message.clone());
                let _ = reply.send(Err(ServiceError::Store(err)));
            }
        }
    }
}
