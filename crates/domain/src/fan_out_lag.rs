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
//! Nor one user's sessions for much of the time: each session pays for
//! the holding it takes part in, split with the others behind with it,
//! out of its user's allowance, regained slowly (see [`HoldAllowance`]).
//! A client that reads slower than its topic goes, but catches up
//! whenever publishers are held, is behind a moment at a time, within the
//! process's budget every time; it set the pace of every publisher of the
//! process until its allowance ran out.
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

/// How much holding one user's sessions may cost before none of them is
/// counted (see [`HoldAllowance`]).
pub const USER_HOLD_BUDGET: Duration = HOLD_BUDGET;

/// A user regains its [`USER_HOLD_BUDGET`] at one second in this many: one
/// user's sessions alone can hold publishers back for about this share of
/// the time, in the long run.
const REFILL: u32 = 10;

#[derive(Debug, Default)]
pub struct FanOutLag {
    /// Sessions far behind on a socket that takes what it is sent; changed
    /// only under `holding`'s lock, read without it.
    lagging: AtomicUsize,
    /// Since when the counted sessions hold, and what holding has cost each.
    holding: Mutex<Holding>,
    /// Entries in `remote`, read before taking its lock.
    remote_count: AtomicUsize,
    /// Other processes holding, by origin, with the end of their lease.
    remote: Mutex<HashMap<u64, Instant>>,
    /// Woken when `lagging` falls to zero or a hold from elsewhere ends.
    caught_up: Notify,
    /// Woken when `lagging` rises from zero (for whoever tells others).
    fell_behind: Notify,
}

/// The clock of this process's holding.
#[derive(Debug, Default)]
struct Holding {
    /// When the sessions counted now began to be (the first of them fell
    /// behind while none was); `None` while none is.
    since: Option<Instant>,
    /// Holding so far per counted session: every stretch of holding split
    /// evenly between the sessions counted during it. What one session
    /// cost is the growth of this between its [`Ticket`] and its removal:
    /// one session alone pays for all of its holding, one of 5,000 behind
    /// together a five-thousandth.
    per_session: Duration,
    /// When `per_session` was brought up to date.
    at: Option<Instant>,
}

impl Holding {
    /// Brings `per_session` up to `now`, with `lagging` counted since `at`.
    fn advance(&mut self, now: Instant, lagging: usize) {
        if let (Some(since), Some(at), Ok(lagging @ 1..)) =
            (self.since, self.at, u32::try_from(lagging))
        {
            let end = now.min(since + HOLD_BUDGET);
            if end > at {
                self.per_session += (end - at) / lagging;
            }
        }
        self.at = Some(now);
    }
}

/// A session counted in [`FanOutLag`], and where the holding clock stood
/// when it was; given back to [`FanOutLag::remove`].
#[derive(Debug)]
pub struct Ticket(Duration);

impl FanOutLag {
    /// A session fell far behind.
    pub fn add(&self) -> Ticket {
        let now = Instant::now();
        let mut holding = self.holding();
        let lagging = self.lagging();
        holding.advance(now, lagging);
        if lagging == 0 {
            holding.since = Some(now);
        }
        self.lagging.store(lagging + 1, Ordering::Release);
        let ticket = Ticket(holding.per_session);
        drop(holding);
        if lagging == 0 {
            self.fell_behind.notify_one();
        }
        ticket
    }

    /// A session counted by [`add`](Self::add) caught up, stopped reading or
    /// ended; what its holding cost, its share of the time spent holding
    /// while it was counted.
    pub fn remove(&self, ticket: Ticket) -> Duration {
        let mut holding = self.holding();
        let lagging = self.lagging();
        holding.advance(Instant::now(), lagging);
        let cost = holding.per_session.saturating_sub(ticket.0);
        self.lagging
            .store(lagging.saturating_sub(1), Ordering::Release);
        if lagging <= 1 {
            holding.since = None;
            drop(holding);
            self.caught_up.notify_waiters();
        }
        cost
    }

    fn holding(&self) -> std::sync::MutexGuard<'_, Holding> {
        self.holding.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether this process's sessions hold commits back now: some are
    /// behind, within [`HOLD_BUDGET`] of the first; and until when.
    fn holding_until(&self, now: Instant) -> Option<Instant> {
        if self.lagging() == 0 {
            return None;
        }
        let until = self.holding().since? + HOLD_BUDGET;
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

/// What holding publishers back has cost one user's sessions lately, and
/// whether they may hold again.
///
/// A session that falls behind whenever its topic's publishers run, and
/// catches up whenever they are held (its client reads slower than the
/// topic goes, but reads), is behind for a moment at a time, each time
/// well within [`HOLD_BUDGET`]: counted every time, it set the pace of
/// every publisher of the process. So each session pays for the holding
/// it takes part in (its [`Ticket`]'s cost, its share when others are
/// behind with it) out of its user's allowance, and once the user's
/// sessions have spent [`USER_HOLD_BUDGET`] none is counted: they wait for
/// their clients like any slow consumer, and are closed with 4008 if they
/// fall past their limit. The allowance is regained at one second in ten
/// (`REFILL`). It is the user's, not the socket's, so neither many
/// sockets nor reconnecting after a 4008 buys more of it. When the
/// process itself cannot keep up, thousands of sessions fall behind
/// together and each pays a sliver, so holding still paces publishers
/// then.
#[derive(Debug)]
pub struct HoldAllowance {
    /// Holding paid for and not yet regained; past the budget after a
    /// long hold, repaid before the user's sessions are counted again.
    spent: Duration,
    /// When `spent` was last brought up to date.
    at: Instant,
}

impl Default for HoldAllowance {
    fn default() -> Self {
        Self {
            spent: Duration::ZERO,
            at: Instant::now(),
        }
    }
}

impl HoldAllowance {
    /// Whether the user's sessions may be counted as far behind now.
    pub fn may_hold(&mut self) -> bool {
        self.regain(Instant::now());
        self.spent < USER_HOLD_BUDGET
    }

    /// Pays for holding that cost `cost` (see [`FanOutLag::remove`]).
    pub fn pay(&mut self, cost: Duration) {
        self.regain(Instant::now());
        self.spent += cost;
    }

    /// Everything paid has been regained: nothing left to remember.
    pub fn settled(&mut self) -> bool {
        self.regain(Instant::now());
        self.spent.is_zero()
    }

    fn regain(&mut self, now: Instant) {
        let regained = now.saturating_duration_since(self.at) / REFILL;
        self.spent = self.spent.saturating_sub(regained);
        self.at = now;
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
        let ticket = lag.add();
        lag.remove(ticket);
        assert_eq!(lag.wait(Duration::from_secs(60)).await, None);
    }

    #[tokio::test]
    async fn waits_until_the_last_session_catches_up() {
        let lag = Arc::new(FanOutLag::default());
        let (first, second) = (lag.add(), lag.add());
        let waiting = tokio::spawn({
            let lag = Arc::clone(&lag);
            async move { lag.wait(Duration::from_secs(60)).await }
        });
        tokio::task::yield_now().await;
        lag.remove(first);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "one session is still behind");
        lag.remove(second);
        let waited = waiting.await.expect("the wait ends");
        assert!(waited.is_some_and(|w| w < Duration::from_secs(60)));
    }

    #[tokio::test]
    async fn a_session_that_never_catches_up_holds_no_longer_than_the_cap() {
        let lag = FanOutLag::default();
        let _behind = lag.add();
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
        let ticket = lag.add();
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
        lag.remove(ticket);
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
        let first = lag.add();
        assert!(!lag.overdue());
        let cap = Duration::from_secs(60);
        assert_eq!(lag.wait(cap).await, Some(HOLD_BUDGET));
        assert!(lag.overdue());
        assert_eq!(lag.wait(cap).await, None, "the budget is spent");
        let second = lag.add();
        assert_eq!(lag.wait(cap).await, None, "a second one joins the first");
        let announcing = tokio::spawn({
            let lag = Arc::clone(&lag);
            async move { lag.fell_behind().await }
        });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!announcing.is_finished(), "nothing to announce");
        lag.remove(first);
        lag.remove(second);
        assert!(!lag.overdue());
        let _again = lag.add();
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
        let ticket = lag.add();
        tokio::time::sleep(Duration::from_secs(3)).await;
        lag.remove(ticket);
        assert_eq!(watcher.await.expect("the watcher ends"), (false, true));
    }

    /// Holding is paid for by the sessions behind during it, split evenly:
    /// alone a session pays for all of it, with three others a quarter,
    /// and nothing past the process's budget.
    #[tokio::test(start_paused = true)]
    async fn holding_is_paid_for_by_the_sessions_behind_during_it() {
        let lag = FanOutLag::default();
        let alone = lag.add();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let others: Vec<Ticket> = (0..3).map(|_| lag.add()).collect();
        tokio::time::sleep(Duration::from_millis(400)).await;
        for ticket in others {
            assert_eq!(lag.remove(ticket), Duration::from_millis(100));
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
        // 400 ms alone, a quarter of 400 with the others, then alone again
        // to the end of the budget at 2 s; nothing after it.
        assert_eq!(lag.remove(alone), Duration::from_millis(400 + 100 + 1200));
    }

    /// A session behind a moment at a time, each time caught up within the
    /// process's budget, is counted until its user has paid for the
    /// allowance; then only as often as it is regained.
    #[tokio::test(start_paused = true)]
    async fn a_session_that_keeps_falling_behind_runs_out_of_holding() {
        let lag = FanOutLag::default();
        let mut allowance = HoldAllowance::default();
        let mut counted_for = Duration::ZERO;
        let run = Duration::from_secs(60);
        let started = Instant::now();
        while started.elapsed() < run {
            if allowance.may_hold() {
                let ticket = lag.add();
                tokio::time::sleep(Duration::from_millis(150)).await;
                allowance.pay(lag.remove(ticket));
                counted_for += Duration::from_millis(150);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // The budget, and a tenth of the time regained (and one stretch
        // begun with a little left).
        let most = USER_HOLD_BUDGET + run / REFILL;
        assert!(
            counted_for <= most + Duration::from_millis(150) && counted_for >= most / 2,
            "counted for {counted_for:?} of {run:?}"
        );
        assert_eq!(lag.lagging(), 0);
        assert!(!allowance.settled());
        tokio::time::sleep(USER_HOLD_BUDGET * REFILL * 2).await;
        assert!(allowance.settled(), "regained in time");
    }

    /// Many sessions behind together each pay a sliver: a process that
    /// cannot keep up goes on holding its publishers.
    #[tokio::test(start_paused = true)]
    async fn sessions_behind_together_keep_holding() {
        let lag = FanOutLag::default();
        let mut users: Vec<HoldAllowance> = (0..1000).map(|_| HoldAllowance::default()).collect();
        for _ in 0..100 {
            let mut tickets = vec![];
            for allowance in &mut users {
                assert!(allowance.may_hold(), "still within its budget");
                tickets.push(lag.add());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            for (allowance, ticket) in users.iter_mut().zip(tickets) {
                allowance.pay(lag.remove(ticket));
            }
        }
        assert_eq!(lag.lagging(), 0);
    }
}
