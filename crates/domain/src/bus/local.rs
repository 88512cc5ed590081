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
}

impl LocalBus {
    /// `capacity` bounds how far the slowest receiver may fall behind
    /// before it is told to resync.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity.max(16));
        Self { sender }
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
        Ok(())
    }

    fn subscribe(&self) -> broadcast::Receiver<Delivery> {
        self.sender.subscribe()
    }

    fn name(&self) -> &'static str {
        "local"
    }
}
