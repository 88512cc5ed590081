//! The Redis bus against a real Redis (`TIDINGS_TEST_REDIS_URL`). The
//! connection-killing test lives in `bus_redis_faults.rs`, a separate test
//! binary, so it cannot cut these tests' connections mid-way.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use domain::bus::Bus;
use domain::events::Key;

#[path = "common/redis_bus.rs"]
mod redis_bus;
use redis_bus::{bus, inbox, next_event};

fn prefix() -> String {
    format!("t{}", uuid_like())
}

fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
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

#[tokio::test]
async fn a_batch_arrives_whole_and_in_order() {
    let prefix = prefix();
    let (Some(api), Some(gateway)) = (bus(&prefix).await, bus(&prefix).await) else {
        return;
    };
    let mut rx = gateway.subscribe();
    gateway.watch(Key::User(1)).await;
    gateway.watch(Key::User(2)).await;
    let batch: Vec<_> = (0..50).map(|i| inbox(1 + i % 2, i)).collect();
    api.publish_all(batch.clone()).await.unwrap();
    for expected in batch {
        assert_eq!(next_event(&mut rx).await, expected);
    }
}
