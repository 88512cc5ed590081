//! What the client provably received.
//!
//! A frame written to a socket may still die in a kernel buffer, on a
//! phone that went to sleep or behind a cut cable; counting it as delivered
//! would make the next connection skip it. TCP keeps order, so a pong that
//! answers a ping proves that every frame written before that ping arrived.
//! Each ping carries an id, and this book remembers, per ping, how far each
//! channel and tag had been written when it was sent. A pong moves the
//! confirmed positions to that snapshot; only confirmed positions are
//! saved as delivery cursors.
//!
//! Pure bookkeeping: the session decides when to ping and moves the bytes.

use std::collections::VecDeque;

/// A position the session delivers: a channel's seq or a tag's seq.
pub use domain::store::Stream;

/// Pings answered by no pong yet beyond this are forgotten, oldest first
/// (a later pong proves what they would have).
const MAX_OUTSTANDING: usize = 8;

#[derive(Debug, Default)]
pub struct Proofs {
    next_id: u64,
    /// Pings not yet answered, oldest first, each with what was written
    /// before it.
    outstanding: VecDeque<(u64, Vec<(Stream, i64)>)>,
}

impl Proofs {
    /// The payload of a ping sent after `written` (the positions that are
    /// ahead of what is confirmed).
    pub fn ping(&mut self, written: Vec<(Stream, i64)>) -> [u8; 8] {
        self.next_id += 1;
        if self.outstanding.len() == MAX_OUTSTANDING {
            // Its snapshot is older than every other, so the next pong
            // proves at least as much.
            self.outstanding.pop_front();
        }
        self.outstanding.push_back((self.next_id, written));
        self.next_id.to_be_bytes()
    }

    /// Whether a ping is waiting for its pong.
    pub fn awaiting(&self) -> bool {
        !self.outstanding.is_empty()
    }

    /// The positions a pong with `payload` proves: every snapshot up to the
    /// ping it answers (older pings were answered on the way, or their
    /// pongs were lost, which TCP order makes harmless). A pong that
    /// answers no ping of ours (unsolicited, or forged ahead) proves nothing.
    pub fn pong(&mut self, payload: &[u8]) -> Vec<(Stream, i64)> {
        let Ok(bytes) = <[u8; 8]>::try_from(payload) else {
            return Vec::new();
        };
        let id = u64::from_be_bytes(bytes);
        if !self.outstanding.iter().any(|(sent, _)| *sent == id) {
            return Vec::new();
        }
        let mut proven = Vec::new();
        while let Some((sent, _)) = self.outstanding.front()
            && *sent <= id
        {
            if let Some((_, snapshot)) = self.outstanding.pop_front() {
                proven.extend(snapshot);
            }
        }
        proven
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::{Proofs, Stream};

    const A: Stream = Stream::Channel(1);
    const T: Stream = Stream::Tag(7);

    #[test]
    fn a_pong_proves_what_was_written_before_its_ping() {
        let mut proofs = Proofs::default();
        let first = proofs.ping(vec![(A, 3)]);
        let second = proofs.ping(vec![(A, 5), (T, 2)]);
        assert!(proofs.awaiting());
        assert_eq!(proofs.pong(&first), vec![(A, 3)]);
        assert_eq!(proofs.pong(&second), vec![(A, 5), (T, 2)]);
        assert!(!proofs.awaiting());
    }

    #[test]
    fn a_later_pong_also_proves_earlier_pings() {
        let mut proofs = Proofs::default();
        proofs.ping(vec![(A, 3)]);
        let second = proofs.ping(vec![(T, 2)]);
        assert_eq!(proofs.pong(&second), vec![(A, 3), (T, 2)]);
        assert!(!proofs.awaiting());
    }

    #[test]
    fn foreign_and_repeated_pongs_prove_nothing() {
        let mut proofs = Proofs::default();
        let sent = proofs.ping(vec![(A, 3)]);
        assert!(proofs.pong(b"hello").is_empty());
        assert!(proofs.pong(&99u64.to_be_bytes()).is_empty());
        assert!(proofs.pong(&[]).is_empty());
        assert_eq!(proofs.pong(&sent), vec![(A, 3)]);
        assert!(proofs.pong(&sent).is_empty());
    }

    #[test]
    fn unanswered_pings_are_bounded() {
        let mut proofs = Proofs::default();
        let mut last = [0; 8];
        for seq in 1..=20 {
            last = proofs.ping(vec![(A, seq)]);
        }
        assert_eq!(proofs.outstanding.len(), super::MAX_OUTSTANDING);
        let proven = proofs.pong(&last);
        assert_eq!(proven.last(), Some(&(A, 20)));
        assert!(!proofs.awaiting());
    }
}
