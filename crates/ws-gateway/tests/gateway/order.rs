//! One socket's pipelined publishes keep the order they were sent in: in
//! the acks, in the seqs, in what every subscriber receives and in history.

use serde_json::json;

use crate::burst::{Targets, expect_history_in_send_order, expect_in_send_order, publish_rounds};
use crate::helpers::{TestGateway, on_both_stores};

on_both_stores!(
    pipelined_topic_and_direct_publishes_keep_send_order,
    a_refused_publish_among_pipelined_ones_fails_alone,
);

async fn pipelined_topic_and_direct_publishes_keep_send_order(app: &TestGateway) {
    let (alice, alice_token) = app.user("alice").await;
    let (_, bob_token) = app.user("bob").await;
    let (_, carol_token) = app.user("carol").await;
    app.topic(&alice, "alpha", false).await;
    app.topic(&alice, "beta", true).await;
    for name in ["bob", "carol"] {
        let user = app.db.user_by_name(name).await.unwrap().unwrap();
        let beta = domain::names::TopicName::parse("beta").unwrap();
        app.core.add_member(&alice, &beta, &user).await.unwrap();
    }
    let mut subscribers = Vec::new();
    for token in [&bob_token, &carol_token] {
        let mut ws = app.connect(token).await;
        for topic in ["alpha", "beta"] {
            let reply = ws
                .request(json!({"action":"subscribe","topic_name":topic}))
                .await;
            assert_eq!(reply["type"], "subscribed");
        }
        subscribers.push(ws);
    }
    let mut publisher = app.connect(&alice_token).await;
    let targets = Targets {
        public: "alpha".into(),
        private: "beta".into(),
        direct: "@bob".into(),
    };
    let sent = publish_rounds(&mut publisher, &targets).await;
    let [bob, carol] = &mut subscribers[..] else {
        unreachable!()
    };
    expect_in_send_order(bob, &sent, |target| {
        Some(if target == "@bob" { "@alice" } else { target }.to_owned())
    })
    .await;
    expect_in_send_order(carol, &sent, |target| {
        (target != "@bob").then(|| target.to_owned())
    })
    .await;
    expect_history_in_send_order(&app.api, &alice_token, &sent).await;
}

/// A publish with text one store cannot keep (NUL) is refused with
/// `invalid_field`, in its place among pipelined publishes, and costs its
/// neighbours nothing.
async fn a_refused_publish_among_pipelined_ones_fails_alone(app: &TestGateway) {
    let (alice, alice_token) = app.user("alice").await;
    app.topic(&alice, "alpha", false).await;
    let mut ws = app.connect(&alice_token).await;
    for n in 0..100 {
        let content = if n == 50 {
            "bad\u{0}".to_owned()
        } else {
            format!("m{n}")
        };
        ws.send(json!({"action":"message","topic_name":"alpha","content":content,"ref":n}))
            .await;
    }
    let mut seq = 0;
    for n in 0..100 {
        let reply = ws.recv().await;
        assert_eq!(reply["ref"], n);
        if n == 50 {
            assert_eq!(reply["code"], "invalid_field", "{reply}");
        } else {
            seq += 1;
            assert_eq!(
                (reply["type"].as_str(), reply["seq"].as_i64()),
                (Some("ack"), Some(seq))
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_publishes_in_flight_never_starve_the_sessions_own_reads() {
    publishes_in_flight_never_starve_the_sessions_own_reads(domain::testing::Flavor::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_publishes_in_flight_never_starve_the_sessions_own_reads() {
    publishes_in_flight_never_starve_the_sessions_own_reads(domain::testing::Flavor::Postgres)
        .await;
}

/// On a store with two read connections, a socket pipelines publishes to
/// a private topic (each one's membership check reads the store) while
/// people it never talked to send it direct messages (each new
/// conversation makes the session itself read the store). Publishes
/// waiting on the store must not hold the connections the session's own
/// read needs: every publish is acknowledged and every direct message
/// delivered, and nothing is closed with 1011.
async fn publishes_in_flight_never_starve_the_sessions_own_reads(flavor: domain::testing::Flavor) {
    const PEERS: usize = 40;
    const TOTAL: usize = 3000;
    let Some(db) = domain::testing::TestStore::fresh_with_pool(flavor, Some(2)).await else {
        return;
    };
    // The publish limit is not what is tested: lifted, so a slow run is
    // not refused for the rate it sends at.
    let config = tidings_gateway::GatewayConfig {
        publish_rate: 1_000_000,
        publish_burst: 1_000_000,
        ..Default::default()
    };
    let Some(app) = TestGateway::spawn_on(db, config).await else {
        return;
    };
    let (alice, alice_token) = app.user("alice").await;
    app.topic(&alice, "inner", true).await;
    let mut peers = Vec::new();
    for n in 0..PEERS {
        peers.push(app.user(&format!("peer{n}")).await.0);
    }
    let mut ws = app.connect(&alice_token).await;
    let core = app.core.clone();
    let writers = tokio::spawn(async move {
        let to_alice = domain::names::Target::parse("@alice").unwrap();
        for peer in peers {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            core.publish(&peer, &to_alice, "hello").await.unwrap();
        }
    });
    for n in 0..TOTAL {
        ws.send(json!({"action":"message","topic_name":"inner","content":format!("m{n}"),"ref":n}))
            .await;
    }
    let (mut acked, mut greeted) = (0, 0);
    while acked < TOTAL || greeted < PEERS {
        let frame = ws.recv().await;
        match frame["type"].as_str() {
            Some("ack") => {
                assert_eq!(frame["ref"], acked, "{frame}");
                acked += 1;
            }
            Some("message") => {
                assert_eq!(frame["content"], "hello", "{frame}");
                greeted += 1;
            }
            _ => panic!("unexpected {frame}"),
        }
    }
    writers.await.unwrap();
    ws.expect_quiet().await;
}
