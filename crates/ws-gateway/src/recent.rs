//! The last messages of each topic this process delivers, as the hub
//! handed them out, so that a session catching up on what it just missed
//! reads them here instead of from the store.
//!
//! Sessions fall behind together: a burst that outruns a loaded machine's
//! clients closes hundreds of them as slow consumers at once, and each
//! reconnect asked the store for the same thousands of rows. On SQLite
//! every row crossed from a database thread to the session on its own and
//! was serialized again per session, about ten times a live delivery's
//! CPU, so the catch-ups starved the fan-out they fell behind on and more
//! sessions fell behind. From here a catch-up is the frames the live
//! fan-out already built.
//!
//! A topic's record holds consecutive seqs only. Messages of one topic
//! are numbered without gaps, so a seq that does not follow the last one
//! (an event the bus lost, events out of order) starts the record over,
//! and the hub empties every record when it resyncs. What the records do
//! not reach, the store serves as before. The hub writes the record
//! before it hands an event to sessions: a session that registered too
//! late to be handed one finds it here (see [`Recent::after`]).
//!
//! Memory is bounded by a budget shared by every topic: the oldest
//! message of the process goes first, whichever topic it belongs to.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;
use foldhash::HashMap;

/// Messages older than this are left to the store. It keeps what
/// retention removed (the pruner runs once a minute by default) from
/// being served for longer than a live subscriber could have received it,
/// and frees a quiet process's memory.
pub const MAX_AGE_MS: i64 = 30_000;
/// What a record costs beside its frame (the entry and its place in the
/// eviction order).
const ENTRY_BYTES: usize = 96;

/// One message as every subscriber of its topic gets it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub seq: i64,
    pub sender_id: i64,
    /// Commit time (ms since the epoch).
    pub created_at: i64,
    pub frame: Bytes,
}

impl Recorded {
    fn cost(&self) -> usize {
        self.frame.len() + ENTRY_BYTES
    }
}

pub struct Recent {
    inner: Mutex<Inner>,
    budget: usize,
}

#[derive(Default)]
struct Inner {
    topics: HashMap<i64, VecDeque<Recorded>>,
    /// Every record in the order written: (topic, seq, created_at). An
    /// entry whose topic was started over or forgotten since is skipped
    /// when it comes up.
    order: VecDeque<(i64, i64, i64)>,
    /// The cost of what `topics` holds.
    bytes: usize,
}

impl Recent {
    /// Records that together cost at most `budget` bytes; 0 keeps none.
    pub fn new(budget: usize) -> Self {
        Self {
            inner: Mutex::default(),
            budget,
        }
    }

    /// Adds the next message of `channel_id`, starting the topic's record
    /// over if it does not follow the last one.
    pub fn record(&self, channel_id: i64, message: Recorded, now_ms: i64) {
        self.record_all([(channel_id, message)], now_ms);
    }

    /// [`record`](Self::record) for each (topic, message), in order, under
    /// one lock: the hub records a whole run at once.
    pub fn record_all(&self, messages: impl IntoIterator<Item = (i64, Recorded)>, now_ms: i64) {
        let mut inner = self.lock();
        let inner = &mut *inner;
        for (channel_id, message) in messages {
            if message.cost() > self.budget {
                continue;
            }
            let ring = inner.topics.entry(channel_id).or_default();
            if ring.back().is_some_and(|last| last.seq + 1 != message.seq) {
                inner.bytes -= ring.iter().map(Recorded::cost).sum::<usize>();
                ring.clear();
            }
            inner.bytes += message.cost();
            inner
                .order
                .push_back((channel_id, message.seq, message.created_at));
            ring.push_back(message);
        }
        inner.evict(self.budget, now_ms);
    }

    /// Up to `limit` messages of `channel_id` after seq `after`, oldest
    /// first, if the record holds the very next one; `None` sends the
    /// caller to the store. Whatever the hub hands out after this call
    /// reaches every session already watching the topic, so one that
    /// reads the record to its end and then takes live events misses
    /// nothing.
    pub fn after(
        &self,
        channel_id: i64,
        after: i64,
        limit: usize,
        now_ms: i64,
    ) -> Option<Vec<Recorded>> {
        let inner = self.lock();
        let ring = inner.topics.get(&channel_id)?;
        let first = ring.front()?.seq;
        let last = ring.back()?.seq;
        if after + 1 < first || after >= last {
            return None;
        }
        let start = usize::try_from(after + 1 - first).ok()?;
        if too_old(ring[start].created_at, now_ms) {
            return None;
        }
        Some(ring.range(start..).take(limit).cloned().collect())
    }

    /// Drops a topic's record (no session here watches it any more).
    pub fn forget(&self, channel_id: i64) {
        let mut inner = self.lock();
        if let Some(ring) = inner.topics.remove(&channel_id) {
            inner.bytes -= ring.iter().map(Recorded::cost).sum::<usize>();
        }
    }

    /// Drops every record: events may have been lost.
    pub fn clear(&self) {
        *self.lock() = Inner::default();
    }

    /// What the records cost now, in bytes.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    /// Lets go of the oldest records while over `budget` or too old.
    fn evict(&mut self, budget: usize, now_ms: i64) {
        while let Some(&(channel_id, seq, created_at)) = self.order.front() {
            if self.bytes <= budget && !too_old(created_at, now_ms) {
                return;
            }
            self.order.pop_front();
            let Some(ring) = self.topics.get_mut(&channel_id) else {
                continue;
            };
            if ring.front().is_some_and(|m| m.seq == seq) {
                if let Some(gone) = ring.pop_front() {
                    self.bytes -= gone.cost();
                }
                if ring.is_empty() {
                    self.topics.remove(&channel_id);
                }
            }
        }
    }
}

fn too_old(created_at: i64, now_ms: i64) -> bool {
    created_at < now_ms - MAX_AGE_MS
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const NOW: i64 = 1_000_000;

    fn message(seq: i64) -> Recorded {
        Recorded {
            seq,
            sender_id: 1,
            created_at: NOW,
            frame: Bytes::from(format!("m{seq:03}")),
        }
    }

    fn seqs(found: Option<Vec<Recorded>>) -> Option<Vec<i64>> {
        found.map(|messages| messages.iter().map(|m| m.seq).collect())
    }

    #[test]
    fn serves_what_follows_a_position_it_holds_and_nothing_else() {
        let recent = Recent::new(1 << 20);
        for seq in 5..=9 {
            recent.record(1, message(seq), NOW);
        }
        assert_eq!(seqs(recent.after(1, 4, 10, NOW)), Some(vec![5, 6, 7, 8, 9]));
        assert_eq!(seqs(recent.after(1, 6, 2, NOW)), Some(vec![7, 8]));
        // Before the record starts, at its end, past it, another topic: the store.
        assert_eq!(seqs(recent.after(1, 3, 10, NOW)), None);
        assert_eq!(seqs(recent.after(1, 9, 10, NOW)), None);
        assert_eq!(seqs(recent.after(1, 12, 10, NOW)), None);
        assert_eq!(seqs(recent.after(2, 4, 10, NOW)), None);
    }

    #[test]
    fn a_gap_or_a_step_back_starts_the_record_over() {
        let recent = Recent::new(1 << 20);
        for seq in [1, 2, 3, 5, 6] {
            recent.record(1, message(seq), NOW);
        }
        assert_eq!(seqs(recent.after(1, 2, 10, NOW)), None);
        assert_eq!(seqs(recent.after(1, 4, 10, NOW)), Some(vec![5, 6]));
        recent.record(1, message(4), NOW);
        assert_eq!(seqs(recent.after(1, 4, 10, NOW)), None);
        assert_eq!(seqs(recent.after(1, 3, 10, NOW)), Some(vec![4]));
        assert_eq!(recent.bytes(), message(4).cost());
    }

    #[test]
    fn the_oldest_message_of_any_topic_goes_first_when_over_budget() {
        let cost = message(1).cost();
        let recent = Recent::new(cost * 4);
        recent.record(1, message(1), NOW);
        recent.record(2, message(1), NOW);
        recent.record(1, message(2), NOW);
        recent.record(2, message(2), NOW);
        recent.record(1, message(3), NOW);
        // Topic 1's first message was the oldest of all.
        assert_eq!(seqs(recent.after(1, 0, 10, NOW)), None);
        assert_eq!(seqs(recent.after(1, 1, 10, NOW)), Some(vec![2, 3]));
        assert_eq!(seqs(recent.after(2, 0, 10, NOW)), Some(vec![1, 2]));
        assert_eq!(recent.bytes(), cost * 4);
        // A topic started over leaves stale places in the order, skipped.
        recent.record(2, message(7), NOW);
        recent.record(2, message(8), NOW);
        assert_eq!(seqs(recent.after(1, 1, 10, NOW)), Some(vec![2, 3]));
        assert_eq!(seqs(recent.after(2, 6, 10, NOW)), Some(vec![7, 8]));
        assert_eq!(recent.bytes(), cost * 4);
    }

    #[test]
    fn keeps_a_bounded_age_and_forgets_on_request() {
        let recent = Recent::new(1 << 20);
        for seq in 1..=3 {
            recent.record(1, message(seq), NOW);
        }
        // Once the oldest it needs is too old, the store serves it.
        let later = NOW + MAX_AGE_MS + 1;
        assert_eq!(seqs(recent.after(1, 1, 5, later)), None);
        let fresh = Recorded {
            created_at: later,
            ..message(4)
        };
        recent.record(1, fresh, later);
        assert_eq!(recent.bytes(), message(4).cost());
        assert_eq!(seqs(recent.after(1, 3, 5, later)), Some(vec![4]));
        recent.forget(1);
        assert_eq!(seqs(recent.after(1, 3, 5, later)), None);
        assert_eq!(recent.bytes(), 0);
        recent.record(2, message(1), NOW);
        recent.record(2, message(2), NOW);
        recent.clear();
        assert_eq!(seqs(recent.after(2, 1, 5, NOW)), None);
        // A budget of nothing keeps nothing.
        let none = Recent::new(0);
        none.record(1, message(1), NOW);
        none.record(1, message(2), NOW);
        assert_eq!(seqs(none.after(1, 1, 5, NOW)), None);
    }
}
