//! Helpers shared by the Redis bus tests.

use std::sync::Arc;
use std::time::Duration;

use domain::bus::{Delivery, RedisBus};
use domain::events::{Event, InboxChange};
use tokio::sync::broadcast::Receiver;

/// A bus on `TIDINGS_TEST_REDIS_URL`, or `None` (skipped) without one.
pub async fn bus(prefix: &str) -> Option<Arc<RedisBus>> {
    let Ok(url) = std::env::var("TIDINGS_TEST_REDIS_URL") else {
        assert!(std::env::var_os("CI").is_none(), "CI must provide Redis");
        eprintln!("skipped: TIDINGS_TEST_REDIS_URL is not set");
        return None;
    };
    Some(RedisBus::connect(&url, prefix, 1024).await.unwrap())
}

/// The next event, skipping resync signals; fails after 5 s.
pub async fn next_event(rx: &mut Receiver<Delivery>) -> Event {
    loop {
        let delivery = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if let Delivery::Event(event) = delivery {
            return (*event).clone();
        }
    }
}

/// A small event routed to user `user_id`.
pub fn inbox(user_id: i64, id: i64) -> Event {
    Event::Inbox {
        user_id,
        id,
        change: InboxChange::Read,
    }
}
