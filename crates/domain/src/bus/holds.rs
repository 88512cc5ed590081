//! Holds shared between processes: how a gateway whose sessions fall
//! behind holds back the commits of every other process on the bus (see
//! [`FanOutLag`]).
//!
//! A process tells the others on one channel (`{prefix}:hold`): a hold,
//! renewed while its sessions stay behind, and a release when they catch
//! up. A hold is a lease, so a lost release or a process that dies
//! holding costs the others at most [`LEASE`]. Each process carries a
//! random origin and ignores its own messages (its writer already waits
//! for its own sessions).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::fan_out_lag::FanOutLag;

/// How long a hold lasts unless renewed.
pub const LEASE: Duration = Duration::from_secs(1);
/// How often a hold is renewed: a renewal can be late, or lost, without
/// the lease running out under a process still behind.
pub const RENEW: Duration = Duration::from_millis(250);

/// One process's side of the exchange.
#[derive(Debug)]
pub struct Holds {
    origin: u64,
    /// Set once a core runs over this bus.
    lag: OnceLock<Arc<FanOutLag>>,
}

/// What travels on the hold channel.
#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct HoldMessage {
    pub origin: u64,
    /// How long the hold lasts from its arrival; 0 releases it.
    pub lease_ms: u64,
}

impl Holds {
    pub fn new() -> Self {
        Self {
            origin: rand::random(),
            lag: OnceLock::new(),
        }
    }

    pub fn channel(prefix: &str) -> String {
        format!("{prefix}:hold")
    }

    /// Starts taking part with `lag`; `false` if it already does (one
    /// store's lag per process).
    pub fn share(&self, lag: Arc<FanOutLag>) -> bool {
        self.lag.set(lag).is_ok()
    }

    /// The message that holds the others (`true`) or releases them.
    pub fn message(&self, holding: bool) -> String {
        let message = HoldMessage {
            origin: self.origin,
            lease_ms: if holding { LEASE.as_millis() as u64 } else { 0 },
        };
        serde_json::to_string(&message).unwrap_or_default()
    }

    /// A message from the hold channel: another process holds or releases.
    pub fn receive(&self, payload: &[u8]) {
        let Some(lag) = self.lag.get() else { return };
        let Ok(message) = serde_json::from_slice::<HoldMessage>(payload) else {
            tracing::warn!("ignored an undecodable hold");
            return;
        };
        if message.origin == self.origin {
            return;
        }
        match message.lease_ms {
            0 => lag.release_from(message.origin),
            // A lease longer than ours is somebody's mistake, not a reason
            // to stall this process.
            ms => lag.hold_from(message.origin, Duration::from_millis(ms).min(LEASE * 10)),
        }
    }
}

impl Default for Holds {
    fn default() -> Self {
        Self::new()
    }
}

/// Tells the others while this process's sessions are behind, through
/// `send` (one message; a failure is retried at the next renewal), until
/// `send` says the bus is gone.
pub async fn announce<F, Fut>(lag: Arc<FanOutLag>, holds: Arc<Holds>, mut send: F)
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Option<()>>,
{
    loop {
        lag.fell_behind().await;
        metrics::counter!("tidings_fan_out_holds_announced_total").increment(1);
        loop {
            if send(holds.message(true)).await.is_none() {
                return;
            }
            if lag.caught_up_within(RENEW).await {
                break;
            }
        }
        if send(holds.message(false)).await.is_none() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_ignores_its_own_holds_and_honours_others() {
        let lag = Arc::new(FanOutLag::default());
        let here = Holds::new();
        assert!(here.share(Arc::clone(&lag)));
        assert!(!here.share(Arc::default()), "one lag per process");
        here.receive(here.message(true).as_bytes());
        assert_eq!(lag.remote_holds(), 0);
        let there = Holds::new();
        here.receive(there.message(true).as_bytes());
        assert_eq!(lag.remote_holds(), 1);
        here.receive(b"{not json");
        here.receive(there.message(false).as_bytes());
        assert_eq!(lag.remote_holds(), 0);
    }

    #[test]
    fn messages_say_who_and_for_how_long() {
        let holds = Holds::new();
        let hold: HoldMessage = serde_json::from_str(&holds.message(true)).expect("a hold decodes");
        assert_eq!(hold.origin, holds.origin);
        assert_eq!(hold.lease_ms, 1000);
        let release: HoldMessage =
            serde_json::from_str(&holds.message(false)).expect("a release decodes");
        assert_eq!(release.lease_ms, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_process_behind_holds_renews_and_releases() {
        let lag = Arc::new(FanOutLag::default());
        let holds = Arc::new(Holds::new());
        let (sent, mut received) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(announce(Arc::clone(&lag), holds, move |message| {
            let sent = sent.clone();
            async move { sent.send(message).ok() }
        }));
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(received.try_recv().is_err(), "nobody behind, nothing said");
        let ticket = lag.add();
        tokio::time::sleep(Duration::from_millis(600)).await;
        lag.remove(ticket);
        tokio::time::sleep(Duration::from_millis(10)).await;
        let said: Vec<u64> = std::iter::from_fn(|| received.try_recv().ok())
            .map(|m| {
                serde_json::from_str::<HoldMessage>(&m)
                    .map(|m| m.lease_ms)
                    .unwrap_or(u64::MAX)
            })
            .collect();
        // At 0, 250 and 500 ms a hold, then the release.
        assert_eq!(said, [1000, 1000, 1000, 0]);
    }
}
