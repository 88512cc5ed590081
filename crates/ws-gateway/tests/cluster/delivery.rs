//! Messages, direct messages and notifications cross gateways through Redis.

use reqwest::Method;
use serde_json::json;

use crate::cluster::Cluster;
use crate::ws_client::Client;

pub async fn connect(gateway: &str, token: &str) -> Client {
    let mut client = Client::open(&format!("ws://{gateway}/ws?token={token}")).await;
    assert_eq!(client.recv().await["type"], "welcome");
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_published_anywhere_reaches_every_gateway_once_in_order() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let (_, admin) = cluster.user("root", true).await;
    let (_, alice) = cluster.user("alice", false).await;
    let (bob_user, bob) = cluster.user("bob", false).await;
    cluster
        .rest(Method::POST, "/api/topics/", &alice, json!({"name":"news"}))
        .await;
    let mut on_a = connect(&cluster.gateways[0], &alice).await;
    let mut on_b = connect(&cluster.gateways[1], &bob).await;
    assert_eq!(
        on_b.request(json!({"action":"subscribe","topic_name":"news"}))
            .await["type"],
        "subscribed"
    );
    for seq in 1..=50 {
        let ack = on_a
            .request(json!({"action":"message","topic_name":"news","content": format!("m{seq}")}))
            .await;
        assert_eq!(ack["seq"], seq);
    }
    for seq in 1..=50 {
        let frame = on_b.recv().await;
        assert_eq!(
            (frame["seq"].as_i64(), frame["topic"].as_str()),
            (Some(seq), Some("news"))
        );
    }
    on_a.request(json!({"action":"message","topic_name":"@bob","content":"across"}))
        .await;
    let direct = on_b.recv().await;
    assert_eq!(
        (direct["topic"].as_str(), direct["content"].as_str()),
        (Some("@alice"), Some("across"))
    );
    let tag = cluster
        .rest(Method::POST, "/api/tags/", &admin, json!({"name":"ops"}))
        .await;
    cluster
        .rest(
            Method::POST,
            "/api/subscriptions/",
            &admin,
            json!({"user": bob_user.id, "tag": tag["id"]}),
        )
        .await;
    let created = cluster
        .rest(
            Method::POST,
            "/api/notifications/",
            &admin,
            json!({"tag": tag["id"], "message":"deployed"}),
        )
        .await;
    let pushed = on_b.recv().await;
    assert_eq!(
        (pushed["type"].as_str(), pushed["id"].clone()),
        (Some("notification"), created["id"].clone())
    );
    on_b.expect_quiet().await;
    on_a.expect_quiet().await;
}

/// Pipelined publishes on gateway A, mixed over two topics and a direct
/// conversation, reach subscribers on both gateways in the order sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_publishes_keep_send_order_across_gateways() {
    use crate::burst::{
        Targets, expect_history_in_send_order, expect_in_send_order, publish_rounds,
    };
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let (_, alice) = cluster.user("alice", false).await;
    let (_, bob) = cluster.user("bob", false).await;
    let (_, carol) = cluster.user("carol", false).await;
    cluster
        .rest(
            Method::POST,
            "/api/topics/",
            &alice,
            json!({"name":"alpha"}),
        )
        .await;
    cluster
        .rest(
            Method::POST,
            "/api/topics/",
            &alice,
            json!({"name":"beta","private":true}),
        )
        .await;
    for name in ["bob", "carol"] {
        cluster
            .rest(
                Method::POST,
                "/api/topics/beta/members/",
                &alice,
                json!({"username":name}),
            )
            .await;
    }
    let mut on_b = connect(&cluster.gateways[1], &bob).await;
    let mut on_a = connect(&cluster.gateways[0], &carol).await;
    for ws in [&mut on_b, &mut on_a] {
        for topic in ["alpha", "beta"] {
            let reply = ws
                .request(json!({"action":"subscribe","topic_name":topic}))
                .await;
            assert_eq!(reply["type"], "subscribed");
        }
    }
    let mut publisher = connect(&cluster.gateways[0], &alice).await;
    let targets = Targets {
        public: "alpha".into(),
        private: "beta".into(),
        direct: "@bob".into(),
    };
    let sent = publish_rounds(&mut publisher, &targets).await;
    expect_in_send_order(&mut on_b, &sent, |target| {
        Some(if target == "@bob" { "@alice" } else { target }.to_owned())
    })
    .await;
    expect_in_send_order(&mut on_a, &sent, |target| {
        (target != "@bob").then(|| target.to_owned())
    })
    .await;
    expect_history_in_send_order(&cluster.api, &alice, &sent).await;
}

/// A client on gateway B goes silent (stops reading and answering) while
/// messages published on gateway A flow to it. Gateway B drops it; it
/// reconnects (to gateway A this time) without `since` and gets every
/// message it never read: positions move only past proven receipt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_misses_nothing_across_gateways() {
    let redis = std::env::var("TIDINGS_TEST_REDIS_URL").ok();
    let quick = [
        ("TIDINGS_PING_INTERVAL", "200ms"),
        ("TIDINGS_IDLE_TIMEOUT", "600ms"),
    ];
    let Some(cluster) = Cluster::start_configured(redis, &quick).await else {
        return;
    };
    let (_, alice) = cluster.user("alice", false).await;
    let (_, bob) = cluster.user("bob", false).await;
    cluster
        .rest(Method::POST, "/api/topics/", &alice, json!({"name":"news"}))
        .await;
    let mut publisher = connect(&cluster.gateways[0], &alice).await;
    let mut silent = connect(&cluster.gateways[1], &bob).await;
    let reply = silent
        .request(json!({"action":"subscribe","topic_name":"news"}))
        .await;
    assert_eq!(reply["type"], "subscribed");
    const TOTAL: i64 = 100;
    for n in 1..=TOTAL {
        let ack = publisher
            .request(json!({"action":"message","topic_name":"news","content":format!("m{n}")}))
            .await;
        assert_eq!(ack["seq"], n);
        if n <= 5 {
            assert_eq!(silent.recv().await["seq"], n);
        }
    }
    // Bob reads no more and answers no pings: B gives up on him (its
    // connection gauge says when). What sat unread dies with his socket.
    let metrics = format!("http://{}/metrics", cluster.gateways[1]);
    let deadline = tokio::time::Instant::now() + crate::ws_client::PATIENCE;
    loop {
        let text = reqwest::get(&metrics).await.unwrap().text().await.unwrap();
        if text.lines().any(|l| l == "ws_connections 0") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "B never dropped the silent client"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(silent);
    let mut again = connect(&cluster.gateways[0], &bob).await;
    let mut seqs = vec![];
    while seqs.last() != Some(&TOTAL) {
        seqs.push(again.recv().await["seq"].as_i64().unwrap());
    }
    let first = seqs[0];
    assert!(first <= 6, "skipped {first}: frames 6.. were never read");
    assert_eq!(seqs, (first..=TOTAL).collect::<Vec<_>>());
    again.expect_quiet().await;
}

/// One user's sockets on two gateways are welcomed with different session
/// names (each gateway counts from 1 on its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_names_never_repeat_across_gateways() {
    let Some(cluster) = Cluster::start().await else {
        return;
    };
    let (_, alice) = cluster.user("alice", false).await;
    let mut names = std::collections::HashSet::new();
    for gateway in cluster.gateways.iter().chain(cluster.gateways.iter()) {
        let mut client =
            crate::ws_client::Client::open(&format!("ws://{gateway}/ws?token={alice}")).await;
        let welcome = client.recv().await;
        let name = welcome["session"].as_str().unwrap().to_owned();
        assert!(names.insert(name.clone()), "{name} repeats");
    }
    assert_eq!(names.len(), 4);
}
