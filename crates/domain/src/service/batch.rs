//! Store reads batched across callers, as group commit batches writes.
//!
//! Some reads come in bursts of the same shape for different keys: every
//! socket that opens reads its user's account and snapshot, and after a
//! restart every client opens one at once. Read one by one, each costs a
//! store round trip, and on SQLite a round trip is two thread hand-offs
//! to its worker and back: most of a handshake's CPU. So a read that
//! arrives while a statement is under way waits for the next one, which
//! serves everyone waiting. A read that arrives alone goes out at once.
//!
//! One statement is under way at a time for each kind of read. With
//! several, a storm of handshakes found a free one nearly every time and
//! went out two or three keys to a statement; what a statement costs (the
//! hand-offs, PostgreSQL's work per statement) is mostly per statement, not
//! per key, and one in flight makes the batches as large as the storm.
//!
//! Batching only ever delays a read, never moves it earlier, so a caller
//! sees the store as of some moment after it asked, as it would alone.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

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
}

impl<K, V> Batcher<K, V>
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// `read` answers many keys in one statement; a key it leaves out has
    /// nothing stored.
    pub(super) fn new<F, Fut>(read: F) -> Self
    where
        F: Fn(Vec<K>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Found<K, V>> + Send + 'static,
    {
        Self {
            queue: OnceLock::new(),
            read: Arc::new(move |keys| Box::pin(read(keys))),
        }
    }

    /// What is stored under `key`, read along with whatever else is asked
    /// for meanwhile.
    pub(super) async fn get(&self, key: K) -> Result<Option<V>, ServiceError> {
        let stopped = || ServiceError::Internal("batched reads have stopped");
        // Started on first use, inside the runtime; it ends with its owner.
        let queue = self.queue.get_or_init(|| {
            let (sender, receiver) = mpsc::unbounded_channel();
            tokio::spawn(run(self.read.clone(), receiver));
            sender
        });
        let (reply, answer) = oneshot::channel();
        queue.send((key, reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

/// Takes whatever is queued, reads it in one statement, and only then
/// looks at the queue again.
async fn run<K, V>(read: Read<K, V>, mut queue: mpsc::UnboundedReceiver<(K, Reply<V>)>)
where
    K: Eq + Hash + Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    while let Some(first) = queue.recv().await {
        let mut waiting = vec![first];
        while waiting.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(next) => waiting.push(next),
                Err(_) => break,
            }
        }
        answer(&read, waiting).await;
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tokio::sync::Notify;

    use super::*;

    /// A read that records the keys of each statement and holds the first
    /// until told to go on.
    fn gated_reader(statements: Arc<Mutex<Vec<Vec<u32>>>>, gate: Arc<Notify>) -> Batcher<u32, u32> {
        Batcher::new(move |mut keys: Vec<u32>| {
            let (statements, gate) = (statements.clone(), gate.clone());
            async move {
                keys.sort_unstable();
                let first = {
                    let mut statements = statements.lock().unwrap();
                    statements.push(keys.clone());
                    statements.len() == 1
                };
                if first {
                    gate.notified().await;
                }
                // Odd keys have nothing stored.
                Ok(keys
                    .into_iter()
                    .filter(|k| k % 2 == 0)
                    .map(|k| (k, k * 10))
                    .collect())
            }
        })
    }

    #[tokio::test]
    async fn reads_asked_while_one_is_under_way_share_the_next_statement() {
        let statements = Arc::new(Mutex::new(Vec::new()));
        let gate = Arc::new(Notify::new());
        let reader = Arc::new(gated_reader(statements.clone(), gate.clone()));
        let first = tokio::spawn({
            let reader = reader.clone();
            async move { reader.get(0).await }
        });
        while statements.lock().unwrap().is_empty() {
            tokio::task::yield_now().await;
        }
        // Asked while the first statement is held: 99 keys, one of them twice.
        let rest: Vec<_> = (1..100u32)
            .chain([7])
            .map(|key| {
                let reader = reader.clone();
                tokio::spawn(async move { (key, reader.get(key).await) })
            })
            .collect();
        // Every one of them queues before the first statement may finish.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        gate.notify_one();
        assert_eq!(first.await.unwrap().unwrap(), Some(0));
        for task in rest {
            let (key, found) = task.await.unwrap();
            let expected = (key % 2 == 0).then_some(key * 10);
            assert_eq!(found.unwrap(), expected, "key {key}");
        }
        let statements = statements.lock().unwrap();
        assert_eq!(statements.len(), 2, "one statement for all who waited");
        assert_eq!(statements[1], (1..100).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_failed_statement_fails_everyone_in_it_and_the_next_one_reads_again() {
        let calls = Arc::new(Mutex::new(0));
        let reader: Batcher<u32, u32> = Batcher::new({
            let calls = calls.clone();
            move |keys: Vec<u32>| {
                let calls = calls.clone();
                async move {
                    let call = {
                        let mut calls = calls.lock().unwrap();
                        *calls += 1;
                        *calls
                    };
                    if call == 1 {
                        return Err(StoreError::Unavailable("down".into()));
                    }
                    Ok(keys.into_iter().map(|k| (k, k)).collect())
                }
            }
        });
        assert!(reader.get(1).await.is_err());
        assert_eq!(reader.get(2).await.unwrap(), Some(2));
    }
}
