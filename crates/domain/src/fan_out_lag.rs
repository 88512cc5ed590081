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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Debug, Default)]
pub struct FanOutLag {
    /// Sessions far behind on a socket that takes what it is sent.
    lagging: AtomicUsize,
    /// Woken when `lagging` falls to zero.
    caught_up: Notify,
}

impl FanOutLag {
    /// A session fell far behind.
    pub fn add(&self) {
        self.lagging.fetch_add(1, Ordering::AcqRel);
    }

    /// A session counted by [`add`](Self::add) caught up, stopped reading or
    /// ended.
    pub fn remove(&self) {
        if self.lagging.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.caught_up.notify_waiters();
        }
    }

    /// Sessions counted now.
    pub fn lagging(&self) -> usize {
        self.lagging.load(Ordering::Acquire)
    }

    /// Waits until no session is counted, for at most `cap`; how long it
    /// waited, if it had to.
    pub async fn wait(&self, cap: Duration) -> Option<Duration> {
        if self.lagging() == 0 {
            return None;
        }
        let started = tokio::time::Instant::now();
        let deadline = started + cap;
        loop {
            let caught_up = self.caught_up.notified();
            tokio::pin!(caught_up);
            // Registered before the count is read again: a wake-up between
            // the read and the wait is not missed.
            caught_up.as_mut().enable();
            if self.lagging() == 0 || tokio::time::timeout_at(deadline, caught_up).await.is_err() {
                return Some(started.elapsed());
            }
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
}
