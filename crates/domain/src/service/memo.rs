//! A small bounded map for facts that never change once they exist (a
//! topic's id and privacy, a direct conversation's peer): reading them
//! once saves store reads on every message. When full it starts over
//! rather than tracking recency; a miss only costs the read it saves.
//! Callers that miss the same key at the same moment (the first burst of a
//! new conversation) resolve it once, not once each.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

pub(super) struct Memo<K, V> {
    entries: Mutex<HashMap<K, V>>,
    /// One gate per key being resolved; later callers wait at it.
    resolving: Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>,
    limit: usize,
}

impl<K: Eq + Hash + Clone, V: Clone> Memo<K, V> {
    pub fn new(limit: usize) -> Self {
        Self {
            entries: Mutex::default(),
            resolving: Mutex::default(),
            limit,
        }
    }

    /// The value of `key`, from `resolve` on a miss; concurrent misses of
    /// one key wait for the first instead of resolving it again. Errors
    /// are not remembered.
    pub async fn get_or_try<E, F>(&self, key: K, resolve: impl FnOnce() -> F) -> Result<V, E>
    where
        F: std::future::Future<Output = Result<V, E>>,
    {
        if let Some(found) = self.get(&key) {
            return Ok(found);
        }
        let gate = Arc::clone(self.gates().entry(key.clone()).or_default());
        let result = {
            let _turn = gate.lock().await;
            match self.get(&key) {
                Some(found) => Ok(found),
                None => {
                    let resolved = resolve().await;
                    if let Ok(value) = &resolved {
                        self.insert(key.clone(), value.clone());
                    }
                    resolved
                }
            }
        };
        let mut gates = self.gates();
        // Only the map and this caller hold the gate: nobody waits at it.
        if gates.get(&key).is_some_and(|g| Arc::strong_count(g) <= 2) {
            gates.remove(&key);
        }
        result
    }

    fn gates(&self) -> std::sync::MutexGuard<'_, HashMap<K, Arc<tokio::sync::Mutex<()>>>> {
        self.resolving.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.lock().get(key).cloned()
    }

    pub fn insert(&self, key: K, value: V) {
        let mut entries = self.lock();
        if entries.len() >= self.limit {
            entries.clear();
        }
        entries.insert(key, value);
    }

    pub fn remove<Q>(&self, key: &Q)
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.lock().remove(key);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, V>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::Memo;

    #[tokio::test]
    async fn concurrent_misses_resolve_once_and_errors_are_not_kept() {
        let memo: Arc<Memo<u8, u32>> = Arc::new(Memo::new(10));
        let calls = Arc::new(AtomicUsize::new(0));
        let failed: Result<u32, &str> = memo.get_or_try(1, || async { Err("store down") }).await;
        assert_eq!(failed, Err("store down"));
        let waiters: Vec<_> = (0..50)
            .map(|_| {
                let (memo, calls) = (memo.clone(), calls.clone());
                tokio::spawn(async move {
                    memo.get_or_try(1, || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, &str>(7)
                    })
                    .await
                })
            })
            .collect();
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), Ok(7));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(memo.gates().is_empty());
    }
}
