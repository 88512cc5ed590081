//! Delivery order for one channel, without I/O.
//!
//! Live events reach a session from the bus, and commits that land
//! together can be announced out of order; the store has every seq. A
//! [`Sequencer`] decides, for each live item, whether to write it now, drop
//! it as a duplicate, hold it until the seqs before it arrive, or have the
//! gap filled from the store. It also keeps the two positions a session
//! tracks: how far it wrote, and how far the client provably received (see
//! [`proof`](super::proof)); only the second is saved as a cursor.
//!
//! The session does the writing and the store reads; everything here is
//! plain state, tested below.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

/// Live items held per channel while waiting for a missing seq; past this
/// the gap is filled from the store at once.
pub const MAX_HELD: usize = 256;
/// How long a gap may stay open before the store fills it.
pub const GAP_WAIT: Duration = Duration::from_millis(200);

/// How far a stream of seqs was written, and how far it was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    written: i64,
    confirmed: i64,
}

impl Position {
    /// Starts after `seq`, which the client already has.
    pub fn after(seq: i64) -> Self {
        Self {
            written: seq,
            confirmed: seq,
        }
    }

    pub fn written(&self) -> i64 {
        self.written
    }

    pub fn confirmed(&self) -> i64 {
        self.confirmed
    }

    /// Everything up to `seq` has been written (never moves back).
    pub fn advance(&mut self, seq: i64) {
        self.written = self.written.max(seq);
    }

    /// The client has everything up to `seq`; whether that is news.
    pub fn confirm(&mut self, seq: i64) -> bool {
        let moved = seq > self.confirmed;
        self.confirmed = self.confirmed.max(seq);
        moved
    }

    /// How far it was written, when that is beyond what was received.
    pub fn unconfirmed(&self) -> Option<i64> {
        (self.written > self.confirmed).then_some(self.written)
    }
}

/// What to do with a live item.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The next seq: write it (nothing held follows it).
    Write,
    /// It completed a run: write what [`Sequencer::next_ready`] yields.
    Ready,
    /// Already written: drop it.
    Duplicate,
    /// Ahead of a missing seq: held for now.
    Held,
    /// Too much is held: fill the gap from the store.
    Fill,
}

#[derive(Debug)]
pub struct Sequencer<T> {
    position: Position,
    held: BTreeMap<i64, T>,
    /// Since when something has been held.
    held_since: Option<Instant>,
}

impl<T> Sequencer<T> {
    pub fn after(seq: i64) -> Self {
        Self {
            position: Position::after(seq),
            held: BTreeMap::new(),
            held_since: None,
        }
    }

    pub fn position(&self) -> &Position {
        &self.position
    }

    pub fn position_mut(&mut self) -> &mut Position {
        &mut self.position
    }

    /// A live item at `seq`. The item is made and `now` asked only when it
    /// is held: the next seq, the usual case, is written from the caller's
    /// borrowed frame (a clock read per delivered frame and socket was a
    /// twentieth of fan-out CPU, and a clone of the shared frame bumps a
    /// counter every core writes to).
    pub fn offer(
        &mut self,
        seq: i64,
        item: impl FnOnce() -> T,
        now: impl FnOnce() -> Instant,
    ) -> Verdict {
        let written = self.position.written;
        if seq <= written {
            return Verdict::Duplicate;
        }
        if seq == written + 1 && self.held.is_empty() {
            self.position.written = seq;
            return Verdict::Write;
        }
        self.held.insert(seq, item());
        if seq == written + 1 {
            return Verdict::Ready;
        }
        self.held_since.get_or_insert_with(now);
        if self.held.len() > MAX_HELD {
            Verdict::Fill
        } else {
            Verdict::Held
        }
    }

    /// Takes `seq` if it is the next one and nothing is held (what
    /// [`offer`](Self::offer) answers with [`Verdict::Write`]); `false`
    /// changes nothing.
    pub fn take_in_turn(&mut self, seq: i64) -> bool {
        let next = seq == self.position.written + 1 && self.held.is_empty();
        if next {
            self.position.written = seq;
        }
        next
    }

    /// The next held item in line, if it is here; held items the store
    /// already filled in are dropped on the way.
    pub fn next_ready(&mut self) -> Option<T> {
        let written = self.position.written;
        while let Some(entry) = self.held.first_entry() {
            if *entry.key() <= written {
                entry.remove();
                continue;
            }
            if *entry.key() != written + 1 {
                return None;
            }
            self.position.written += 1;
            let item = entry.remove();
            if self.held.is_empty() {
                self.held_since = None;
            }
            return Some(item);
        }
        self.held_since = None;
        None
    }

    /// Something is held back, waiting for a gap to fill.
    pub fn holding(&self) -> bool {
        self.held_since.is_some()
    }

    /// A gap has stayed open too long: time to read the store.
    pub fn stale(&self, now: Instant) -> bool {
        self.held_since
            .is_some_and(|since| now.saturating_duration_since(since) >= GAP_WAIT)
    }
}

#[cfg(test)]
mod tests {
    use super::{GAP_WAIT, MAX_HELD, Position, Sequencer, Verdict};
    use tokio::time::Instant;

    fn drain(s: &mut Sequencer<&'static str>) -> Vec<&'static str> {
        std::iter::from_fn(|| s.next_ready()).collect()
    }

    #[test]
    fn the_next_seq_is_written_at_once() {
        let mut s = Sequencer::after(3);
        assert_eq!(s.offer(4, || "d", Instant::now), Verdict::Write);
        assert_eq!(s.position().written(), 4);
    }

    #[test]
    fn only_the_next_seq_is_taken_in_turn() {
        let now = Instant::now();
        let mut s = Sequencer::after(3);
        assert!(!s.take_in_turn(3));
        assert!(!s.take_in_turn(5));
        assert!(s.take_in_turn(4));
        assert_eq!(s.position().written(), 4);
        // Something held: the gap is the sequencer's to close.
        assert_eq!(s.offer(6, || "f", || now), Verdict::Held);
        assert!(!s.take_in_turn(5));
        assert_eq!(s.position().written(), 4);
        assert_eq!(s.offer(5, || "e", || now), Verdict::Ready);
        assert_eq!(drain(&mut s), ["e", "f"]);
    }

    #[test]
    fn old_seqs_are_duplicates() {
        let mut s = Sequencer::after(3);
        assert_eq!(s.offer(3, || "c", Instant::now), Verdict::Duplicate);
        assert_eq!(s.offer(1, || "a", Instant::now), Verdict::Duplicate);
        assert_eq!(s.position().written(), 3);
    }

    #[test]
    fn reordered_seqs_are_held_then_written_in_order() {
        let now = Instant::now();
        let mut s = Sequencer::after(0);
        assert_eq!(s.offer(3, || "c", || now), Verdict::Held);
        assert_eq!(s.offer(2, || "b", || now), Verdict::Held);
        assert_eq!(s.offer(3, || "c again", || now), Verdict::Held);
        assert_eq!(s.offer(1, || "a", || now), Verdict::Ready);
        assert_eq!(drain(&mut s), ["a", "b", "c again"]);
        assert_eq!(s.position().written(), 3);
        assert!(!s.stale(now + GAP_WAIT));
        assert_eq!(s.offer(4, || "d", || now), Verdict::Write);
    }

    #[test]
    fn a_gap_goes_stale_and_what_the_store_filled_is_dropped() {
        let now = Instant::now();
        let mut s = Sequencer::after(0);
        assert_eq!(s.offer(2, || "b", || now), Verdict::Held);
        assert_eq!(s.offer(4, || "d", || now), Verdict::Held);
        assert!(!s.stale(now + GAP_WAIT / 2));
        assert!(s.stale(now + GAP_WAIT));
        // The store wrote 1 to 3.
        s.position_mut().advance(3);
        assert_eq!(drain(&mut s), ["d"]);
        assert_eq!(s.position().written(), 4);
        assert!(!s.stale(now + GAP_WAIT));
    }

    #[test]
    fn too_much_held_asks_for_the_store() {
        let now = Instant::now();
        let mut s = Sequencer::after(0);
        for seq in 2..(2 + MAX_HELD as i64) {
            assert_eq!(s.offer(seq, || "x", || now), Verdict::Held);
        }
        assert_eq!(s.offer(1000, || "y", || now), Verdict::Fill);
    }

    #[test]
    fn received_trails_written_and_never_moves_back() {
        let mut p = Position::after(5);
        assert_eq!(p.unconfirmed(), None);
        p.advance(9);
        p.advance(7);
        assert_eq!(p.unconfirmed(), Some(9));
        assert!(p.confirm(8));
        assert!(!p.confirm(6));
        assert_eq!((p.confirmed(), p.unconfirmed()), (8, Some(9)));
        assert!(p.confirm(9));
        assert_eq!(p.unconfirmed(), None);
    }
}
