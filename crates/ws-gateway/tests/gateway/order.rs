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
