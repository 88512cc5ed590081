//! The Redis bus losing its subscription: `CLIENT KILL TYPE pubsub` cuts
//! every pub/sub connection on the server, so this runs alone in its own
//! test binary.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::time::Duration;

use domain::bus::{Bus, Delivery};
use domain::events::{Event, Key};

#[path = "common/redis_bus.rs"]
mod redis_bus;
use redis_bus::{bus, inbox, next_event};

#[tokio::test]
async fn a_killed_subscription_reconnects_and_asks_for_a_resync() {
    let prefix = format!("faults{}", std::process::id());
    let (Some(api), Some(gateway)) = (bus(&prefix).await, bus(&prefix).await) else {
        return;
    };
    let mut rx = gateway.subscribe();
    gateway.watch(Key::Tag(5)).await;
    let url = std::env::var("TIDINGS_TEST_REDIS_URL").unwrap();
    let killed = domain::testing::kill_redis_pubsub(&url).await;
    assert!(killed >= 1);
    // The next delivery is the resync, after which events flow again.
    loop {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Delivery::Resync => break,
            Delivery::Event(_) => {}
        }
    }
    api.publish(inbox(0, 1)).await.unwrap();
    // The notification's own `seq` is not part of its JSON; the event's is.
    let on_tag = Event::Notification {
        notification: domain::model::Notification {
            id: 1,
            tag: 5,
            message: "m".into(),
            timestamp: 0,
            seq: 0,
        },
        seq: 1,
    };
    api.publish(on_tag.clone()).await.unwrap();
    assert_eq!(next_event(&mut rx).await, on_tag);
}
