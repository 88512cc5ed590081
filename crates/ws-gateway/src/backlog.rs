//! A session's queue as the hub and the session both keep count of it.
//!
//! The hub adds the events it queues, the session takes away the events it
//! handled. Past its limit the session is a slow consumer. Past half of it,
//! on a socket that takes what it is sent, the session is far behind
//! because this process cannot deliver as fast as publishers publish, and
//! it is counted in the process's [`FanOutLag`], which holds commits back
//! until it has handled all but a quarter. A session waiting for its peer
//! to read is not counted: that peer is slow, not the process. Nor is one
//! whose user has spent its allowance of holding (see [`HoldAllowance`]),
//! until it has caught up and the allowance allows again.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use domain::fan_out_lag::{FanOutLag, HoldAllowance, Ticket};

#[derive(Debug)]
pub struct Backlog {
    /// Events queued and not yet handled.
    events: AtomicUsize,
    /// The most events that may be queued before the session is a slow
    /// consumer.
    limit: usize,
    /// The session waits for its peer to read.
    stalled: AtomicBool,
    /// Counted in `lag`: `ticket`'s state, read without its lock.
    counted: AtomicBool,
    /// Refused by `allowance` since the session last caught up: not asked
    /// again at every event while it stays behind.
    refused: AtomicBool,
    /// The session's place in `lag` while counted; taken only to count or
    /// uncount it.
    ticket: Mutex<Option<Ticket>>,
    /// The user's, shared with its other sessions here (see
    /// `hold_accounts.rs`); the session's own until it is billed to one.
    allowance: OnceLock<Arc<Mutex<HoldAllowance>>>,
    lag: Arc<FanOutLag>,
}

impl Backlog {
    pub fn new(limit: usize, lag: Arc<FanOutLag>) -> Self {
        Self {
            events: AtomicUsize::new(0),
            limit,
            stalled: AtomicBool::new(false),
            counted: AtomicBool::new(false),
            refused: AtomicBool::new(false),
            ticket: Mutex::new(None),
            allowance: OnceLock::new(),
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
            } else {
                self.count();
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
            if self.refused.load(Ordering::Relaxed) {
                self.refused.store(false, Ordering::Relaxed);
            }
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

    /// The session's holding is paid for from `allowance` (its user's)
    /// from now on; a session billed already stays with its first.
    pub fn bill_to(&self, allowance: Arc<Mutex<HoldAllowance>>) {
        let _ = self.allowance.set(allowance);
    }

    fn count(&self) {
        // Read first: while behind, every event queued comes here.
        if self.counted.load(Ordering::Acquire) || self.refused.load(Ordering::Relaxed) {
            return;
        }
        let mut ticket = lock(&self.ticket);
        if ticket.is_some() {
            return;
        }
        if lock(self.allowance()).may_hold() {
            *ticket = Some(self.lag.add());
            self.counted.store(true, Ordering::Release);
        } else {
            self.refused.store(true, Ordering::Relaxed);
            // Once per time behind, not per event.
            metrics::counter!("ws_hold_allowance_spent_total").increment(1);
        }
    }

    fn uncount(&self) {
        // Read first: the usual case changes nothing and writes nothing.
        if self.counted.load(Ordering::Acquire) {
            let mut ticket = lock(&self.ticket);
            if let Some(ticket) = ticket.take() {
                let cost = self.lag.remove(ticket);
                lock(self.allowance()).pay(cost);
            }
            self.counted.store(false, Ordering::Release);
        }
    }

    fn allowance(&self) -> &Mutex<HoldAllowance> {
        self.allowance.get_or_init(Arc::default)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
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

    /// A session that held the process for its whole budget alone has
    /// spent its allowance of holding: it is not counted again until it
    /// has caught up and regained some.
    #[tokio::test(start_paused = true)]
    async fn a_session_that_spent_its_allowance_is_not_counted_until_it_caught_up() {
        let (lag, backlog) = backlog();
        assert!(backlog.offer(60));
        assert_eq!(lag.lagging(), 1);
        tokio::time::sleep(domain::fan_out_lag::USER_HOLD_BUDGET).await;
        backlog.handled(60);
        assert_eq!(lag.lagging(), 0);
        assert!(backlog.offer(60));
        assert_eq!(lag.lagging(), 0, "its allowance is spent");
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        assert!(backlog.offer(1));
        assert_eq!(lag.lagging(), 0, "not asked again while it stays behind");
        backlog.handled(61);
        assert!(backlog.offer(60));
        assert_eq!(lag.lagging(), 1, "caught up, and regained");
    }

    /// Sessions billed to one allowance (one user's) share it: once one
    /// has spent it, another is not counted either, however new.
    #[tokio::test(start_paused = true)]
    async fn sessions_of_one_user_share_its_allowance() {
        let lag = Arc::new(FanOutLag::default());
        let allowance = Arc::new(Mutex::new(HoldAllowance::default()));
        let first = Backlog::new(100, Arc::clone(&lag));
        first.bill_to(Arc::clone(&allowance));
        assert!(first.offer(60));
        tokio::time::sleep(domain::fan_out_lag::USER_HOLD_BUDGET).await;
        drop(first);
        let again = Backlog::new(100, Arc::clone(&lag));
        again.bill_to(Arc::clone(&allowance));
        assert!(again.offer(60));
        assert_eq!(lag.lagging(), 0, "a new socket of the same user");
        let other = Backlog::new(100, Arc::clone(&lag));
        other.bill_to(Arc::new(Mutex::new(HoldAllowance::default())));
        assert!(other.offer(60));
        assert_eq!(lag.lagging(), 1, "another user has an allowance of its own");
    }
}
