//! Redis connections cut while publishing goes on: every subscriber still
//! ends up with every message, in order, once. The cuts go to a Redis of
//! the test's own: `CLIENT KILL` on the shared one would cut the tests
//! running beside it.

use reqwest::Method;
use serde_json::json;

use crate::cluster::Cluster;
use crate::delivery::connect;
use crate::own_redis::OwnRedis;
use crate::ws_client::Client;

const TOTAL: i64 = 200;

async fn all_messages(client: &mut Client) -> Vec<i64> {
    let mut seqs = vec![];
    while seqs.last() != Some(&TOTAL) {
        let frame = client.recv().await;
        seqs.push(frame["seq"].as_i64().unwrap());
    }
    seqs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_gateways_redis_subscriptions_loses_nothing() {
    let redis = OwnRedis::start().await;
    let Some(cluster) = Cluster::start_with(Some(redis.url())).await else {
        return;
    };
    let (_, alice) = cluster.user("alice", false).await;
    let (_, bob) = cluster.user("bob", false).await;
    let (_, carol) = cluster.user("carol", false).await;
    cluster
        .rest(Method::POST, "/api/topics/", &alice, json!({"name":"feed"}))
        .await;
    let mut on_a = connect(&cluster.gateways[0], &carol).await;
    let mut on_b = connect(&cluster.gateways[1], &bob).await;
    for client in [&mut on_a, &mut on_b] {
        client
            .request(json!({"action":"subscribe","topic_name":"feed"}))
            .await;
    }
    let api = cluster.api.clone();
    let publisher = tokio::spawn(async move {
        let client = reqwest::Client::new();
        for i in 1..=TOTAL {
            let response = client
                .post(format!("{api}/api/topics/feed/messages/"))
                .bearer_auth(&alice)
                .json(&json!({"content": format!("m{i}")}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 201);
        }
    });
    // Cut every pub/sub connection twice while the publisher runs.
    for _ in 0..2 {
        let first = on_b.recv().await["seq"].as_i64().unwrap();
        assert!(first >= 1);
        domain::testing::kill_redis_pubsub(&cluster.redis_url).await;
    }
    publisher.await.unwrap();
    let seen_by_carol = all_messages(&mut on_a).await;
    assert_eq!(seen_by_carol, (1..=TOTAL).collect::<Vec<_>>());
    // Bob already consumed two frames above; the rest must follow them exactly.
    let rest = all_messages(&mut on_b).await;
    let first_rest = rest[0];
    assert_eq!(rest, (first_rest..=TOTAL).collect::<Vec<_>>());
    assert_eq!(
        first_rest, 3,
        "no gap and no repeat after the two frames read before the cuts"
    );
    on_a.expect_quiet().await;
    on_b.expect_quiet().await;
}
