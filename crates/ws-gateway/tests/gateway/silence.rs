//! "Delivered" means received: a client that goes silent (stops reading
//! and answering, like a phone put to sleep) and is dropped gets, on its
//! next connection without `since`, every frame written after its last
//! sign of life.

use std::time::Duration;

use domain::testing::Flavor;
use tidings_gateway::GatewayConfig;

use crate::helpers::{Client, PATIENCE, TestGateway};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_dropped_and_misses_nothing_on_sqlite() {
    a_silent_client_is_dropped_and_misses_nothing(Flavor::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_dropped_and_misses_nothing_on_postgres() {
    a_silent_client_is_dropped_and_misses_nothing(Flavor::Postgres).await;
}

async fn a_silent_client_is_dropped_and_misses_nothing(flavor: Flavor) {
    let config = GatewayConfig {
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(400),
        ..GatewayConfig::default()
    };
    let Some(app) = TestGateway::spawn_with(flavor, config).await else {
        return;
    };
    let (alice, _) = app.user("alice").await;
    let (bob, bob_token) = app.user("bob").await;
    let topic = app.topic(&alice, "news", false).await;
    let name = domain::names::TopicName::parse("news").unwrap();
    app.core.subscribe(&bob, &name).await.unwrap();
    let mut silent = app.connect(&bob_token).await;
    for n in 1..=5 {
        app.core
            .publish_topic(&alice, &topic, &format!("m{n}"))
            .await
            .unwrap();
        assert_eq!(silent.recv().await["seq"], n);
    }
    // Bob stops reading and answering pings; the server goes on writing
    // into his socket until it gives up on him.
    const TOTAL: i64 = 100;
    for n in 6..=TOTAL {
        app.core
            .publish_topic(&alice, &topic, &format!("m{n}"))
            .await
            .unwrap();
    }
    until_let_go(&app, "the silent client was never dropped").await;
    // What sat unread in his socket dies with it.
    drop(silent);

    let mut again = app.connect(&bob_token).await;
    let seqs = seqs_through(&mut again, TOTAL).await;
    let first = seqs[0];
    assert!(first <= 6, "skipped {first}: frames 6.. were never read");
    assert_eq!(seqs, (first..=TOTAL).collect::<Vec<_>>());
    again.expect_quiet().await;
}

/// A client that stops reading while large frames flow fills its socket,
/// and every write to it waits. The session must still let go of it, and
/// the next connection must get everything from the last frame it proved
/// it read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_a_flood_is_let_go_and_misses_nothing() {
    let config = GatewayConfig {
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(400),
        // Room for every event: no queue overflow kicks it first, so only
        // a bounded write can free it.
        outbound_queue: 4096,
        ..GatewayConfig::default()
    };
    let Some(app) = TestGateway::spawn_with(Flavor::Sqlite, config).await else {
        return;
    };
    let (alice, _) = app.user("alice").await;
    let (bob, bob_token) = app.user("bob").await;
    let topic = app.topic(&alice, "firehose", false).await;
    let name = domain::names::TopicName::parse("firehose").unwrap();
    app.core.subscribe(&bob, &name).await.unwrap();
    let stuck = app.connect(&bob_token).await;
    // Far more than the kernel buffers of a loopback socket hold.
    let body = "x".repeat(16 * 1024);
    const TOTAL: i64 = 3000;
    for _ in 0..TOTAL {
        app.core.publish_topic(&alice, &topic, &body).await.unwrap();
    }
    until_let_go(
        &app,
        "a session blocked writing to a client that reads nothing was never let go",
    )
    .await;
    drop(stuck);

    let mut again = app.connect(&bob_token).await;
    let seqs = seqs_through(&mut again, TOTAL).await;
    assert_eq!(seqs, (1..=TOTAL).collect::<Vec<_>>());
    again.expect_quiet().await;
}

/// Waits until the gateway has let go of every session (no key watched).
async fn until_let_go(app: &TestGateway, failure: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while app.hub.watched_keys() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "{failure}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The seqs of the frames `client` receives, up to and including `last`.
async fn seqs_through(client: &mut Client, last: i64) -> Vec<i64> {
    let mut seqs = vec![];
    while seqs.last() != Some(&last) {
        seqs.push(client.recv().await["seq"].as_i64().unwrap());
    }
    seqs
}
