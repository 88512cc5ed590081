//! Event fan-out between the processes that change state (api, gateways)
//! and the gateways that push it to sockets.
//!
//! Publishing happens after the store commit, so the store is always the
//! truth and the bus is only a doorbell with the payload attached: a
//! gateway that may have missed events is told to [`Delivery::Resync`] and
//! fills the gap from the store.

pub mod holds;
mod local;
mod redis;

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::broadcast;

pub use local::LocalBus;
pub use redis::RedisBus;

use crate::events::{Event, Key};
use crate::fan_out_lag::FanOutLag;

/// What a bus subscriber receives.
#[derive(Debug, Clone)]
pub enum Delivery {
    Event(Arc<Event>),
    /// Events may have been lost (a broken Redis link, a lagging receiver):
    /// re-read delivery state from the store.
    Resync,
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("the bus is unavailable: {0}")]
    Unavailable(String),
    #[error("REDIS_URL is not a Redis URL: {0}")]
    InvalidUrl(String),
}

#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Sends an event to every interested gateway, this process included.
    async fn publish(&self, event: Event) -> Result<(), BusError>;

    /// Sends `events` in order. A bus across the network sends them in
    /// one round trip: a commit of hundreds of direct messages is one
    /// request, not hundreds.
    async fn publish_all(&self, events: Vec<Event>) -> Result<(), BusError> {
        for event in events {
            self.publish(event).await?;
        }
        Ok(())
    }

    /// A receiver of everything this process has declared interest in.
    fn subscribe(&self) -> broadcast::Receiver<Delivery>;

    /// Starts receiving events routed on `key` (a no-op in-process).
    async fn watch(&self, _key: Key) {}

    /// Stops receiving events routed on `key`.
    async fn unwatch(&self, _key: Key) {}

    /// Readiness: can events be exchanged right now?
    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }

    /// Holds this process's commits for other processes' sessions far
    /// behind, and tells them when its own are (see `holds.rs`); a no-op
    /// in-process, where one writer already waits for every session.
    fn share_holds(&self, _lag: Arc<FanOutLag>) {}

    /// A short name for logs and `/readyz`.
    fn name(&self) -> &'static str;
}

/// The bus shared by everything in a process.
pub type SharedBus = Arc<dyn Bus>;
