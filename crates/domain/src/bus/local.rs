//! The in-process bus: one broadcast channel, for the all-in-one binary
//! (and any single process serving both roles).

use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::broadcast;

use super::{Bus, BusError, Delivery};
use crate::events::Event;

#[derive(Debug, Clone)]
pub struct LocalBus {
    sender: broadcast::Sender<Delivery>,
    /// Published here is received here: one count serves both families.
    published: metrics::Counter,
    received: metrics::Counter,
}

impl LocalBus {
    /// `capacity` bounds how far the slowest receiver may fall behind
    /// before it is told to resync.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(16));
        Self {
            sender,
            published: metrics::counter!("tidings_bus_published_total"),
            received: metrics::counter!("tidings_bus_received_total"),
        }
    }
}

impl Default for LocalBus {
    fn default() -> Self {
        Self::new(65_536)
    }
}

#[async_trait]
impl Bus for LocalBus {
    async fn publish(&self, event: Event) -> Result<(), BusError> {
        // No receiver (no gateway in this process yet) is not an error.
        let _ = self.sender.send(Delivery::Event(Arc::new(event)));
        self.published.increment(1);
        self.received.increment(1);
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<Delivery> {
        self.sender.subscribe()
    }

    fn name(&self) -> &'static str {
        "local"
    }
}
