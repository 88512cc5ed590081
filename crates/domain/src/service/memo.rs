//! A small bounded map for facts that never change once they exist (a
//! topic's id and privacy, a direct conversation's peer): reading them
//! once saves store reads on every message. When full it starts over
//! rather than tracking recency; a miss only costs the read it saves.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

pub(super) struct Memo<K, V> {
    entries: Mutex<HashMap<K, V>>,
    limit: usize,
}

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    pub fn new(limit: usize) -> Self {
        Self {
            entries: Mutex::default(),
            limit,
        }
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
