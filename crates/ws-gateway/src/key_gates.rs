//! One turn at a time per key for changes to what the bus routes here.
//!
//! Whether a key is routed to this gateway changes when its first session
//! registers (subscribe) and when its last one leaves (unsubscribe). Each
//! change is a decision on the registry followed by a round trip to the
//! bus, and two of them on one key must reach the bus in the order they
//! were decided: a socket that closed just as another opened could
//! otherwise have its unsubscribe land after the newcomer's subscribe,
//! leaving a watched key that nothing is routed on. A session that
//! registers on a key whose subscription is still under way waits for it
//! too, so no session reads its starting point before its events flow.

use std::sync::{Arc, Mutex};

use domain::events::Key;
use foldhash::HashMap;
use tokio::sync::OwnedMutexGuard;

type Gate = Arc<tokio::sync::Mutex<()>>;

#[derive(Default)]
pub struct KeyGates {
    gates: Mutex<HashMap<Key, Gate>>,
}

/// A key's turn; the next one on that key starts when this is dropped.
pub struct Turn<'a> {
    gates: &'a KeyGates,
    key: Key,
    guard: Option<OwnedMutexGuard<()>>,
}

impl KeyGates {
    /// Waits for `key`'s turn.
    pub async fn turn(&self, key: Key) -> Turn<'_> {
        let gate = Arc::clone(self.lock().entry(key).or_default());
        let guard = gate.lock_owned().await;
        Turn {
            gates: self,
            key,
            guard: Some(guard),
        }
    }

    /// Keys with a turn taken or waited for (for tests).
    pub fn busy(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Gate>> {
        self.gates.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        // Released under the map's lock: nobody can be taking a clone of
        // the gate meanwhile, so one only the map holds is forgotten.
        let mut gates = self.gates.lock();
        self.guard.take();
        if gates
            .get(&self.key)
            .is_some_and(|gate| Arc::strong_count(gate) == 1)
        {
            gates.remove(&self.key);
        }
    }
}
