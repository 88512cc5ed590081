//! Retention seen from a socket: a client behind what the pruner removed
//! is told with a `pruned` frame, then gets what is left in order; a live
//! client loses nothing while the pruner works under it.

use std::sync::atomic::AtomicBool;

use domain::model::{Retention, Topic};
use domain::names::TopicName;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Client, TestGateway, on_both_stores};

on_both_stores!(
    a_member_behind_retention_is_told_where_history_starts,
    since_behind_retention_gets_the_pruned_range_first,
    a_live_subscriber_loses_nothing_while_the_pruner_runs,
    rest_history_starts_at_first_seq_and_retention_is_the_owners,
);

const KEEP_TEN: Retention = Retention {
    max_age_secs: None,
    max_count: Some(10),
};

async fn publish(app: &TestGateway, topic: &Topic, owner: &domain::model::Actor, n: i64) {
    for i in 1..=n {
        app.core
            .publish_topic(owner, topic, &format!("m{i}"))
            .await
            .unwrap();
    }
}

async fn prune(app: &TestGateway) {
    app.core
        .prune(Retention::default(), &AtomicBool::new(false))
        .await
        .unwrap();
}

/// Reads frames until message `last`: the `pruned` ranges and message seqs
/// in the order they came.
async fn frames_until(client: &mut Client, last: i64) -> Vec<Value> {
    let mut seen = vec![];
    loop {
        let frame = client.recv().await;
        match frame["type"].as_str() {
            Some("pruned") => seen.push(json!({"pruned": [frame["from"], frame["to"]]})),
            Some("message") => {
                seen.push(frame["seq"].clone());
                if frame["seq"] == last {
                    return seen;
                }
            }
            _ => {}
        }
    }
}

fn expected(pruned: Option<(i64, i64)>, seqs: std::ops::RangeInclusive<i64>) -> Vec<Value> {
    pruned
        .map(|(from, to)| json!({"pruned": [from, to]}))
        .into_iter()
        .chain(seqs.map(|seq| json!(seq)))
        .collect()
}

async fn a_member_behind_retention_is_told_where_history_starts(app: &TestGateway) {
    let (alice, _) = app.user("alice").await;
    let (bob, bob_token) = app.user("bob").await;
    let topic = app.topic(&alice, "news", false).await;
    let name = TopicName::parse("news").unwrap();
    app.core.subscribe(&bob, &name).await.unwrap();
    publish(app, &topic, &alice, 30).await;
    app.core
        .set_retention(&alice, &name, KEEP_TEN)
        .await
        .unwrap();
    prune(app).await;

    let mut bob = app.connect(&bob_token).await;
    assert_eq!(
        frames_until(&mut bob, 30).await,
        expected(Some((1, 20)), 21..=30)
    );
    bob.expect_quiet().await;
}

async fn since_behind_retention_gets_the_pruned_range_first(app: &TestGateway) {
    let (alice, _) = app.user("alice").await;
    let (_, bob_token) = app.user("bob").await;
    let topic = app.topic(&alice, "news", false).await;
    let name = TopicName::parse("news").unwrap();
    publish(app, &topic, &alice, 30).await;
    app.core
        .set_retention(&alice, &name, KEEP_TEN)
        .await
        .unwrap();
    prune(app).await;

    let mut bob = app.connect(&bob_token).await;
    let reply = bob
        .request(json!({"action":"subscribe","topic_name":"news","since":5}))
        .await;
    assert_eq!(
        (reply["type"].as_str(), reply["seq"].as_i64()),
        (Some("subscribed"), Some(30))
    );
    assert_eq!(
        frames_until(&mut bob, 30).await,
        expected(Some((6, 20)), 21..=30)
    );
    // From inside what is kept, nothing is announced.
    let again = bob
        .request(json!({"action":"subscribe","topic_name":"news","since":27}))
        .await;
    assert_eq!(again["type"], "subscribed");
    assert_eq!(frames_until(&mut bob, 30).await, expected(None, 28..=30));
    bob.expect_quiet().await;
}

async fn a_live_subscriber_loses_nothing_while_the_pruner_runs(app: &TestGateway) {
    const SENT: i64 = 600;
    let (alice, _) = app.user("alice").await;
    let (_, bob_token) = app.user("bob").await;
    let topic = app.topic(&alice, "firehose", false).await;
    let mut bob = app.connect(&bob_token).await;
    let reply = bob
        .request(json!({"action":"subscribe","topic_name":"firehose"}))
        .await;
    assert_eq!(reply["type"], "subscribed");
    let keep_twenty = Retention {
        max_age_secs: None,
        max_count: Some(20),
    };
    let publisher = {
        let (core, alice, topic) = (app.core.clone(), alice.clone(), topic.clone());
        tokio::spawn(async move {
            for i in 1..=SENT {
                core.publish_topic(&alice, &topic, &format!("m{i}"))
                    .await
                    .unwrap();
            }
        })
    };
    let mut passes = 0;
    while !publisher.is_finished() {
        let report = app
            .core
            .prune(keep_twenty, &AtomicBool::new(false))
            .await
            .unwrap();
        passes += u64::from(report.messages > 0);
        tokio::task::yield_now().await;
    }
    publisher.await.unwrap();
    assert!(passes > 0, "the pruner ran while messages were published");
    // Everything arrives in publish order, each once; were the live path
    // ever to fall back on the store, the range it could not find would be
    // announced, never skipped silently.
    let mut next = 1;
    while next <= SENT {
        let frame = bob.recv().await;
        match frame["type"].as_str() {
            Some("message") => {
                assert_eq!(frame["seq"], next, "in order, nothing skipped");
                assert_eq!(frame["content"], format!("m{next}"));
                next += 1;
            }
            Some("pruned") => {
                assert_eq!(frame["from"], next, "a range announced where it starts");
                next = frame["to"].as_i64().unwrap() + 1;
            }
            other => panic!("unexpected frame {other:?}"),
        }
    }
    bob.expect_quiet().await;
}

async fn rest_history_starts_at_first_seq_and_retention_is_the_owners(app: &TestGateway) {
    let (alice, alice_token) = app.user("alice").await;
    let (_, bob_token) = app.user("bob").await;
    let topic = app.topic(&alice, "news", false).await;
    publish(app, &topic, &alice, 30).await;
    let body = json!({"retention": {"max_count": 10}});
    let (status, refused) = app
        .rest(Method::PATCH, "/api/topics/news/", &bob_token, body.clone())
        .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, changed) = app
        .rest(Method::PATCH, "/api/topics/news/", &alice_token, body)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        changed["retention"],
        json!({"max_age_secs": null, "max_count": 10})
    );
    for bad in [
        json!({"retention": {"max_count": 0}}),
        json!({"retention": {"max_age_secs": -1}}),
        json!({"retention": {"max_count": "ten"}}),
        json!({"retention": {"max_count": 5}, "private": true}),
    ] {
        let (status, _) = app
            .rest(
                Method::PATCH,
                "/api/topics/news/",
                &alice_token,
                bad.clone(),
            )
            .await;
        assert_eq!(status, 422, "{bad}");
    }
    prune(app).await;

    let history = |query: &'static str| {
        let token = bob_token.clone();
        async move {
            let (status, page) = app
                .rest(
                    Method::GET,
                    &format!("/api/topics/news/messages/?{query}"),
                    &token,
                    Value::Null,
                )
                .await;
            assert_eq!(status, 200);
            let seqs: Vec<i64> = page["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["seq"].as_i64().unwrap())
                .collect();
            (seqs, page)
        }
    };
    let (seqs, page) = history("after=0&limit=3").await;
    assert_eq!((seqs, &page["first_seq"]), (vec![21, 22, 23], &json!(21)));
    let (seqs, page) = history("before=25&limit=10").await;
    assert_eq!(seqs, [21, 22, 23, 24]);
    assert_eq!(page["prev_before"], Value::Null, "nothing kept before 21");
    let (seqs, page) = history("before=31&limit=5").await;
    assert_eq!(
        (seqs, &page["prev_before"]),
        (vec![26, 27, 28, 29, 30], &json!(26))
    );
}
