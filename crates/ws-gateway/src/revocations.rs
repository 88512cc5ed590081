//! The revocations this gateway heard of lately, numbered as they arrive.
//!
//! A handshake checks its credential in the store and only then registers
//! its session for the user's events. A revocation committed between the
//! two would reach no session here, and the socket would live on with a
//! dead credential. So a handshake takes the log's [`mark`](Revocations::mark)
//! before its check, and its session, once registered, looks here for
//! anything since. The hub records a revocation before it looks for
//! sessions to hand it to, and a session registers before it looks here:
//! whichever comes second sees the other.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use domain::events::Revocation;

/// How long a revocation is remembered: far longer than any handshake
/// takes between its check and its session's start.
const KEEP: Duration = Duration::from_secs(600);
/// The most revocations remembered, whatever their age.
const KEEP_AT_MOST: usize = 100_000;

#[derive(Default)]
pub struct Revocations {
    log: Mutex<Log>,
}

#[derive(Default)]
struct Log {
    /// The number the next revocation gets.
    next: u64,
    /// Revocations numbered below this were forgotten.
    forgotten_before: u64,
    entries: VecDeque<Entry>,
}

struct Entry {
    number: u64,
    at: Instant,
    user_id: i64,
    revocation: Revocation,
}

impl Revocations {
    /// Where the log stands: what is recorded from now on is "since" it.
    pub fn mark(&self) -> u64 {
        self.lock().next
    }

    pub fn record(&self, user_id: i64, revocation: &Revocation) {
        let now = Instant::now();
        let mut log = self.lock();
        let number = log.next;
        log.next += 1;
        log.entries.push_back(Entry {
            number,
            at: now,
            user_id,
            revocation: revocation.clone(),
        });
        while let Some(oldest) = log.entries.front() {
            let too_many = log.entries.len() > KEEP_AT_MOST;
            if !too_many && now.duration_since(oldest.at) <= KEEP {
                break;
            }
            log.forgotten_before = oldest.number + 1;
            log.entries.pop_front();
        }
    }

    /// `user_id`'s revocations recorded since `mark`; `None` when some of
    /// what was recorded since has been forgotten (ask the store instead).
    pub fn since(&self, mark: u64, user_id: i64) -> Option<Vec<Revocation>> {
        let log = self.lock();
        if mark < log.forgotten_before {
            return None;
        }
        Some(
            log.entries
                .iter()
                .filter(|e| e.number >= mark && e.user_id == user_id)
                .map(|e| e.revocation.clone())
                .collect(),
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_sees_what_was_recorded_for_its_user_after_its_mark() {
        let log = Revocations::default();
        log.record(1, &Revocation::Account);
        let mark = log.mark();
        assert_eq!(log.since(mark, 1), Some(vec![]), "before the mark");
        log.record(2, &Revocation::Key { id: 7 });
        log.record(1, &Revocation::TokensBefore { generation: 3 });
        assert_eq!(
            log.since(mark, 1),
            Some(vec![Revocation::TokensBefore { generation: 3 }])
        );
        assert_eq!(log.since(mark, 2), Some(vec![Revocation::Key { id: 7 }]));
        assert_eq!(log.since(mark, 3), Some(vec![]));
    }

    #[test]
    fn a_mark_older_than_what_is_remembered_gets_no_answer() {
        let log = Revocations::default();
        let mark = log.mark();
        for n in 0..=KEEP_AT_MOST {
            log.record(n as i64, &Revocation::Account);
        }
        assert_eq!(log.since(mark, 0), None, "the first was forgotten");
        assert!(log.since(log.mark(), 0).is_some());
    }
}
