//! The Redis bus against a real Redis (`TIDINGS_TEST_REDIS_URL`). The
//! connection-killing test lives in `bus_redis_faults.rs`, a separate test
//! binary, so it cannot cut these tests' connections mid-way.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use domain::bus::{Bus, Delivery, RedisBus};
use domain::events::{Event, InboxChange, Key};
use tokio::sync::broadcast::Receiver;

async fn bus(prefix: &str) -> Option<Arc<RedisBus>> {
    let Ok(url) = std::env::var("TIDINGS_TEST_REDIS_URL") else {
        eprintln!("skipped: TIDINGS_TEST_REDIS_URL is not set");
        return None;
    };
    Some(RedisBus::connect(&url, prefix, 1024).await.unwrap())
}

fn prefix() -> String {
    format!("t{}", uuid_like())
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

async fn next_event(rx: &mut Receiver<Delivery>) -> Event {
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

fn inbox(user_id: i64, id: i64) -> Event {
    Event::Inbox {
        user_id,
        id,
        change: InboxChange::Read,
    }
}

#[tokio::test]
async fn events_reach_only_gateways_watching_their_key() {
    let prefix = prefix();
    let (Some(api), Some(gateway_a), Some(gateway_b)) =
        (bus(&prefix).await, bus(&prefix).await, bus(&prefix).await)
    else {
        return;
    };
    let mut a = gateway_a.subscribe();
    let mut b = gateway_b.subscribe();
    gateway_a.watch(Key::User(1)).await;
    gateway_b.watch(Key::User(2)).await;
    api.publish(inbox(1, 10)).await.unwrap();
    api.publish(inbox(2, 20)).await.unwrap();
    assert_eq!(next_event(&mut a).await, inbox(1, 10));
    assert_eq!(next_event(&mut b).await, inbox(2, 20));
    // After unwatching, A hears nothing more for user 1; a later event on
    // a watched key is the next thing it receives.
    gateway_a.unwatch(Key::User(1)).await;
    gateway_a.watch(Key::User(3)).await;
    api.publish(inbox(1, 11)).await.unwrap();
    api.publish(inbox(3, 30)).await.unwrap();
    assert_eq!(next_event(&mut a).await, inbox(3, 30));
    assert!(api.ping().await.is_ok());
    assert_eq!(api.name(), "redis");
}
