//! Publisher backpressure from the fan-out.
//!
//! A publish is cheap to accept and dear to deliver: one stored row becomes
//! a frame for every subscriber. When publishers outrun what this process
//! can deliver, every session's queue grows at once; left alone, each one
//! would reach its limit and be closed as a slow consumer (4008), though
//! its client reads everything it is sent, and thousands of reconnects and
//! catch-up reads would follow on a process already out of CPU. Instead,
//! sessions far behind on a readable socket are counted here, and the
//! group-commit writer waits for the count to fall back to zero before its
//! next commit: publishers wait for their acks (their sockets stop being
//! read once their pipelines are full), and subscribers keep their sockets.
//!
//! A session whose own peer stops reading is not counted (it is a slow
//! consumer, closed at its limit as before), and the writer never waits
//! longer than its cap at a time, so one stuck session cannot hold every
//! publisher back.
//!
//! Nor for long, however often: holding is for the process to catch up,
//! and it has [`HOLD_BUDGET`] from the moment a session first falls behind
//! until none is. A session that stays behind longer is not waiting for
//! the process but for its client (one that reads a trickle, each write
//! waiting too little to count as stalled): counted, it held every commit
//! of the process, on every topic, for the cap, commit after commit, until
//! it caught up (five publishes to another topic took 50 s). Past the
//! budget this process neither waits for its own sessions nor holds the
//! others, until every session has caught up (or been closed as a slow
//! consumer); then the budget starts afresh.
//!
//! Processes that share topics over a bus also hold for each other: a
//! gateway whose sessions fall behind says so on the bus (see
//! `bus/holds.rs`), and every other process's writer waits for it as for
//! its own sessions. Otherwise the publishers of one gateway would go on
//! filling the queues of another's subscribers until they overflowed. A
//! hold from elsewhere is a lease: it ends when released, or when it is
//! not renewed in time, so a gateway that dies holding holds nobody for
//! long.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// How long this process's sessions may hold commits back, from the moment
/// one falls behind until none is.
pub const HOLD_BUDGET: Duration = Duration::from_secs(2);

#[derive(Debug, Default)]
pub struct FanOutLag {
    /// Sessions far behind on a socket that takes what it is sent.
    lagging: AtomicUsize,
    /// When the sessions counted now began to be (the first of them fell
    /// behind while none was); `None` while none is.
    behind_since: Mutex<Option<Instant>>,
    /// Entries in `remote`, read before taking its lock.
    remote_count: AtomicUsize,
    /// Other processes holding, by origin, with the end of their lease.
    remote: Mutex<HashMap<u64, Instant>>,
    /// Woken when `lagging` falls to zero or a hold from elsewhere ends.
    caught_up: Notify,
    /// Woken when `lagging` rises from zero (for whoever tells others).
    fell_behind: Notify,
}

impl FanOutLag {
    /// A session fell far behind.
    pub fn add(&self) {
        if self.lagging.fetch_add(1, Ordering::AcqRel) == 0 {
            *self.behind_since() = Some(Instant::now());
            self.fell_behind.notify_one();
        }
    }

    /// A session counted by [`add`](Self::add) caught up, stopped reading or
    /// ended.
    pub fn remove(&self) {
        if self.lagging.fetch_sub(1, Ordering::AcqRel) == 1 {
            // Under the lock, so a session falling behind meanwhile keeps
            // the start it set (or sets it after this).
            let mut since = self.behind_since();
            if self.lagging() == 0 {
                *since = None;
            }
            drop(since);
            self.caught_up.notify_waiters();
        }
    }

    fn behind_since(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.behind_since.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this process's sessions hold commits back now: some are
    /// behind, within [`HOLD_BUDGET`] of the first; and until when.
    fn holding_until(&self, now: Instant) -> Option<Instant> {
        if self.lagging() == 0 {
            return None;
        }
        let until = (*self.behind_since())? + HOLD_BUDGET;
        (until > now).then_some(until)
    }

    /// Sessions are behind and their budget is spent: they wait for their
    /// clients, not for the process.
    #[cfg(test)]
    fn overdue(&self) -> bool {
        self.lagging() > 0 && self.holding_until(Instant::now()).is_none()
    }

    /// Sessions of this process counted now.
    pub fn lagging(&self) -> usize {
        self.lagging.load(Ordering::Acquire)
    }

    /// Other processes whose holds have not ended (an expired lease is
    /// counted until a wait notices it).
    pub fn remote_holds(&self) -> usize {
        self.remote_count.load(Ordering::Acquire)
    }

    /// Process `origin` holds for `lease` from now, or renews its hold.
    pub fn hold_from(&self, origin: u64, lease: Duration) {
        let mut remote = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        remote.insert(origin, Instant::now() + lease);
        self.remote_count.store(remote.len(), Ordering::Release);
    }

    /// Process `origin` caught up.
    pub fn release_from(&self, origin: u64) {
        let mut remote = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        if remote.remove(&origin).is_some() {
            self.remote_count.store(remote.len(), Ordering::Release);
            drop(remote);
            self.caught_up.notify_waiters();
        }
    }

    /// Waits until this process's sessions fall behind (within their
    /// budget); returns at once if they are now.
    pub async fn fell_behind(&self) {
        while self.holding_until(Instant::now()).is_none() {
            self.fell_behind.notified().await;
        }
    }

    /// Waits until this process's sessions have caught up or spent their
    /// budget, or for at most `within`; whether they no longer hold.
    pub async fn caught_up_within(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let caught_up = self.caught_up.notified();
            tokio::pin!(caught_up);
            caught_up.as_mut().enable();
            let Some(until) = self.holding_until(Instant::now()) else {
                return true;
            };
            if tokio::time::timeout_at(until.min(deadline), caught_up)
                .await
                .is_err()
                && Instant::now() >= deadline
            {
                return self.holding_until(Instant::now()).is_none();
            }
        }
    }

    /// The end of the latest lease from elsewhere, forgetting leases that
    /// have run out; `None` when no other process holds.
    fn held_until(&self, now: Instant) -> Option<Instant> {
        if self.remote_holds() == 0 {
            return None;
        }
        let mut remote = self.remote.lock().unwrap_or_else(|e| e.into_inner());
        remote.retain(|_, until| *until > now);
        self.remote_count.store(remote.len(), Ordering::Release);
        remote.values().max().copied()
    }

    /// Waits until no session is counted and no other process holds, for
    /// at most `cap`; how long it waited, if it had to.
    pub async fn wait(&self, cap: Duration) -> Option<Duration> {
        let started = Instant::now();
        if self.holding_until(started).is_none() && self.remote_holds() == 0 {
            return None;
        }
        let deadline = started + cap;
        loop {
            let caught_up = self.caught_up.notified();
            tokio::pin!(caught_up);
            // Registered before the counts are read again: a wake-up
            // between the read and the wait is not missed.
            caught_up.as_mut().enable();
            let now = Instant::now();
            let (here, elsewhere) = (self.holding_until(now), self.held_until(now));
            if here.is_none() && elsewhere.is_none() || now >= deadline {
                return Some(started.elapsed());
            }
            // A lease or a budget that runs out wakes no one: look again
            // when it does.
            let wake = [here, elsewhere, Some(deadline)]
                .into_iter()
                .flatten()
                .min();
            let _ = tokio::time::timeout_at(wake.unwrap_or(deadline), caught_up).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn nothing_counted_means_no_wait() {
        let lag = FanOutLag::default();
        assert_eq!(lag.wait(Duration::from_secs(60)).await, None);
        lag.add();
        lag.remove();
        assert_eq!(lag.wait(Duration::from_secs(60)).await, None);
    }

    #[tokio::test]
    async fn waits_until_the_last_session_catches_up() {
        let lag = Arc::new(FanOutLag::default());
        lag.add();
        lag.add();
        let waiting = tokio::spawn({
            let lag = Arc::clone(&lag);
            async move { lag.wait(Duration::from_secs(60)).await }
        });
        tokio::task::yield_now().await;
        lag.remove();
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "one session is still behind");
        lag.remove();
        let waited = waiting.await.expect("the wait ends");
        assert!(waited.is_some_and(|w| w < Duration::from_secs(60)));
    }

    #[tokio::test]
    async fn a_session_that_never_catches_up_holds_no_longer_than_the_cap() {
        let lag = FanOutLag::default();
        lag.add();
        let cap = Duration::from_millis(50);
        let waited = tokio::time::timeout(Duration::from_secs(60), lag.wait(cap))
            .await
            .expect("the cap ends the wait");
        assert!(waited.is_some_and(|w| w >= cap));
        assert_eq!(lag.lagging(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_from_elsewhere_holds_until_released() {
        let lag = Arc::new(FanOutLag::default());
        lag.hold_from(7, Duration::from_secs(30));
        let waiting = tokio::spawn({
            let lag = Arc::clone(&lag);
            async move { lag.wait(Duration::from_secs(60)).await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiting.is_finished(), "process 7 still holds");
        lag.release_from(7);
        let waited = waiting.await.expect("the wait ends");
        assert_eq!(waited, Some(Duration::from_secs(5)));
        assert_eq!(lag.remote_holds(), 0);
        assert_eq!(lag.wait(Duration::from_secs(60)).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_not_renewed_runs_out() {
        let lag = FanOutLag::default();
        lag.hold_from(7, Duration::from_secs(1));
        lag.hold_from(8, Duration::from_secs(2));
        // Renewed at 1.5 s, process 8 holds until 3.5 s; 7 has run out.
        let renew = async {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            lag.hold_from(8, Duration::from_secs(2));
        };
        let (waited, ()) = tokio::join!(lag.wait(Duration::from_secs(60)), renew);
        assert_eq!(waited, Some(Duration::from_millis(3500)));
        assert_eq!(lag.remote_holds(), 0, "run-out leases are forgotten");
    }

    #[tokio::test(start_paused = true)]
    async fn own_sessions_and_other_processes_both_hold() {
        let lag = Arc::new(FanOutLag::default());
        lag.add();
        lag.hold_from(7, Duration::from_secs(10));
        let waiting = tokio::spawn({
            let lag = Arc::clone(&lag);
            async move { lag.wait(Duration::from_secs(60)).await }
        });
        tokio::time::sleep(Duration::from_millis(500)).await;
        lag.release_from(7);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!waiting.is_finished(), "a session here is still behind");
        lag.hold_from(7, Duration::from_secs(10));
        lag.remove();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!waiting.is_finished(), "process 7 holds again");
        lag.release_from(7);
        let waited = waiting.await.expect("the wait ends");
        assert_eq!(waited, Some(Duration::from_secs(6)));
    }

    /// Sessions behind for longer than the budget wait for their clients:
    /// commits go ahead, and no hold is announced, until every session has
    /// caught up; then the budget starts afresh.
    #[tokio::test(start_paused = true)]
    async fn sessions_behind_past_the_budget_hold_nothing_until_all_catch_up() {
        let lag = Arc::new(FanOutLag::default());
        lag.add();
        assert!(!lag.overdue());
        let cap = Duration::from_secs(60);
        assert_eq!(lag.wait(cap).await, Some(HOLD_BUDGET));
        assert!(lag.overdue());
        assert_eq!(lag.wait(cap).await, None, "the budget is spent");
        lag.add();
        assert_eq!(lag.wait(cap).await, None, "a second one joins the first");
        let announcing = tokio::spawn({
            let lag = Arc::clone(&lag);
            async move { lag.fell_behind().await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!announcing.is_finished(), "nothing to announce");
        lag.remove();
        lag.remove();
        assert!(!lag.overdue());
        lag.add();
        announcing.await.expect("behind again, within a new budget");
        assert_eq!(
            lag.wait(Duration::from_secs(1)).await,
            Some(Duration::from_secs(1))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_from_elsewhere_is_capped_too() {
        let lag = FanOutLag::default();
        lag.hold_from(7, Duration::from_secs(600));
        assert_eq!(
            lag.wait(Duration::from_secs(10)).await,
            Some(Duration::from_secs(10))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn falling_behind_and_catching_up_are_announced() {
        let lag = Arc::new(FanOutLag::default());
        let watcher = tokio::spawn({
            let lag = Arc::clone(&lag);
            async move {
                lag.fell_behind().await;
                let early = lag.caught_up_within(Duration::from_secs(1)).await;
                let later = lag.caught_up_within(Duration::from_secs(10)).await;
                (early, later)
            }
        });
        tokio::time::sleep(Duration::from_secs(1)).await;
        lag.add();
        tokio::time::sleep(Duration::from_secs(3)).await;
        lag.remove();
        assert_eq!(watcher.await.expect("the watcher ends"), (false, true));
    }
}
