//! A session's queue as the hub and the session both keep count of it.
//!
//! The hub adds the events it queues, the session takes away the events it
//! handled. Past its limit the session is a slow consumer. Past half of it,
//! on a socket that takes what it is sent, the session is far behind
//! because this process cannot deliver as fast as publishers publish, and
//! it is counted in the process's [`FanOutLag`], which holds commits back
//! until it has handled all but a quarter. A session waiting for its peer
//! to read is not counted: that peer is slow, not the process.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use domain::fan_out_lag::FanOutLag;

#[derive(Debug)]
pub struct Backlog {
    /// Events queued and not yet handled.
    events: AtomicUsize,
    /// The most events that may be queued before the session is a slow
    /// consumer.
    limit: usize,
    /// The session waits for its peer to read.
    stalled: AtomicBool,
    /// Counted in `lag`.
    counted: AtomicBool,
    lag: Arc<FanOutLag>,
}

impl Backlog {
    pub fn new(limit: usize, lag: Arc<FanOutLag>) -> Self {
        Self {
            events: AtomicUsize::new(0),
            limit,
            stalled: AtomicBool::new(false),
            counted: AtomicBool::new(false),
            lag,
        }
    }

    /// Counts `events` more queued; `false`, counting nothing, when that
    /// would take the queue past its limit (the session is a slow consumer).
    pub fn offer(&self, events: usize) -> bool {
        let limit = self.limit;
        let queued = self.events.fetch_add(events, Ordering::Relaxed) + events;
        if queued > limit {
            self.events.fetch_sub(events, Ordering::Relaxed);
            self.uncount();
            return false;
        }
        if queued > limit / 2 {
            if self.stalled.load(Ordering::Relaxed) {
                self.uncount();
            } else if !self.counted.swap(true, Ordering::AcqRel) {
                self.lag.add();
            }
        }
        true
    }

    /// The session handled `events` queued events.
    pub fn handled(&self, events: usize) {
        let left = self
            .events
            .fetch_sub(events, Ordering::Relaxed)
            .saturating_sub(events);
        if left <= self.limit / 4 {
            self.uncount();
        }
    }

    /// The session waits for its peer to read (`true`), or no longer.
    pub fn stalled(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::Relaxed);
        if stalled {
            self.uncount();
        }
    }

    /// The session is ending: whatever it has queued holds nobody back.
    pub fn end(&self) {
        self.stalled.store(true, Ordering::Relaxed);
        self.uncount();
    }

    #[cfg(test)]
    fn events(&self) -> usize {
        self.events.load(Ordering::Relaxed)
    }

    fn uncount(&self) {
        // Read first: the usual case changes nothing and writes nothing.
        if self.counted.load(Ordering::Relaxed) && self.counted.swap(false, Ordering::AcqRel) {
            self.lag.remove();
        }
    }
}

impl Drop for Backlog {
    fn drop(&mut self) {
        self.uncount();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backlog() -> (Arc<FanOutLag>, Backlog) {
        let lag = Arc::new(FanOutLag::default());
        (Arc::clone(&lag), Backlog::new(100, lag))
    }

    #[test]
    fn far_behind_is_counted_until_mostly_handled() {
        let (lag, backlog) = backlog();
        assert!(backlog.offer(50));
        assert_eq!(lag.lagging(), 0, "half the limit is not far behind");
        assert!(backlog.offer(10));
        assert_eq!(lag.lagging(), 1);
        assert!(backlog.offer(10));
        assert_eq!(lag.lagging(), 1, "counted once");
        backlog.handled(40);
        assert_eq!(lag.lagging(), 1, "30 left is more than a quarter");
        backlog.handled(5);
        assert_eq!(lag.lagging(), 0);
        assert_eq!(backlog.events(), 25);
    }

    #[test]
    fn a_stalled_peer_holds_nobody_back() {
        let (lag, backlog) = backlog();
        assert!(backlog.offer(60));
        assert_eq!(lag.lagging(), 1);
        backlog.stalled(true);
        assert_eq!(lag.lagging(), 0);
        assert!(backlog.offer(10));
        assert_eq!(lag.lagging(), 0, "still stalled");
        backlog.stalled(false);
        assert!(backlog.offer(1));
        assert_eq!(lag.lagging(), 1, "reading again, and still far behind");
    }

    #[test]
    fn overflow_counts_nothing_and_lets_go() {
        let (lag, backlog) = backlog();
        assert!(backlog.offer(90));
        assert_eq!(lag.lagging(), 1);
        assert!(!backlog.offer(20));
        assert_eq!(backlog.events(), 90);
        assert_eq!(
            lag.lagging(),
            0,
            "a slow consumer is closed, not waited for"
        );
    }

    #[test]
    fn an_ending_session_lets_go() {
        let (lag, backlog) = backlog();
        assert!(backlog.offer(60));
        backlog.end();
        assert_eq!(lag.lagging(), 0);
        assert!(backlog.offer(10));
        assert_eq!(lag.lagging(), 0);
        let (lag, backlog) = self::backlog();
        assert!(backlog.offer(60));
        drop(backlog);
        assert_eq!(lag.lagging(), 0);
    }
}
