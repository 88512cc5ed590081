//! Topics and direct messages over sockets, with their rules.

use serde_json::json;

use crate::helpers::{TestGateway, on_both_stores};

on_both_stores!(
    subscribe_publish_ack_and_no_echo,
    private_topics_refuse_outsiders,
    a_member_invites_and_the_invitee_hears_at_once,
    direct_messages_both_ways,
    every_socket_of_a_user_receives,
    unsubscribe_stops_delivery,
    closed_sockets_leave_no_hub_entries,
    a_topic_deleted_elsewhere_is_not_published_to,
    a_deleted_user_gets_no_more_direct_messages,
);

async fn subscribe_publish_ack_and_no_echo(app: &TestGateway) {
    let (alice, alice_token) = app.user("alice").await;
    let (_, bob_token) = app.user("bob").await;
    app.topic(&alice, "news", false).await;
    let mut alice_ws = app.connect(&alice_token).await;
    let mut bob = app.connect(&bob_token).await;
    let reply = bob
        .request(json!({"action":"suscribe","topic_name":"news"}))
        .await;
    assert_eq!(
        (
            reply["type"].as_str(),
            reply["topic"].as_str(),
            reply["seq"].as_i64()
        ),
        (Some("subscribed"), Some("news"), Some(0))
    );
    let ack = alice_ws
        .request(json!({"action":"message","topic_name":"news","content":"hello"}))
        .await;
    assert_eq!(
        (
            ack["type"].as_str(),
            ack["topic"].as_str(),
            ack["seq"].as_i64()
        ),
        (Some("ack"), Some("news"), Some(1))
    );
    let pushed = bob.recv().await;
    assert_eq!(pushed["type"], "message");
    assert_eq!(
        (
            pushed["topic"].as_str(),
            pushed["from"].as_str(),
            pushed["content"].as_str()
        ),
        (Some("news"), Some("alice"), Some("hello"))
    );
    assert_eq!(
        (pushed["seq"].clone(), pushed["id"].clone()),
        (ack["seq"].clone(), ack["id"].clone())
    );
    assert!(pushed["ts"].as_str().unwrap().ends_with('Z'));
    alice_ws.expect_quiet().await;
    let missing = bob
        .request(json!({"action":"subscribe","topic_name":"nothing"}))
        .await;
    assert_eq!(missing["code"], "not_found");
    let unknown = bob
        .request(json!({"action":"message","topic_name":"nothing","content":"x"}))
        .await;
    assert_eq!(unknown["code"], "not_found");
}

async fn private_topics_refuse_outsiders(app: &TestGateway) {
    let (alice, _) = app.user("alice").await;
    let (bob_user, bob_token) = app.user("bob").await;
    app.user("carol").await;
    let secret = app.topic(&alice, "secret", true).await;
    let mut bob = app.connect(&bob_token).await;
    for frame in [
        json!({"action":"subscribe","topic_name":"secret"}),
        json!({"action":"subscribe","topic_name":"secret","since":0}),
        json!({"action":"message","topic_name":"secret","content":"let me in"}),
        json!({"action":"invite","topic_name":"secret","username":"carol"}),
        json!({"action":"invite","topic_name":"secret","username":"bob"}),
    ] {
        let reply = bob.request(frame.clone()).await;
        assert_eq!(
            (reply["type"].as_str(), reply["code"].as_str()),
            (Some("error"), Some("forbidden")),
            "{frame}"
        );
    }
    assert!(!app.db.is_member(secret.id, bob_user.id).await.unwrap());
}

async fn a_member_invites_and_the_invitee_hears_at_once(app: &TestGateway) {
    let (alice, alice_token) = app.user("alice").await;
    let (_, bob_token) = app.user("bob").await;
    app.topic(&alice, "secret", true).await;
    let mut alice_ws = app.connect(&alice_token).await;
    let mut bob = app.connect(&bob_token).await;
    let ok = alice_ws
        .request(json!({"action":"invite","topic_name":"secret","username":"bob"}))
        .await;
    assert_eq!(ok["type"], "ok");
    let invited = bob.recv().await;
    assert_eq!(
        (
            invited["type"].as_str(),
            invited["topic"].as_str(),
            invited["by"].as_str()
        ),
        (Some("invited"), Some("secret"), Some("alice"))
    );
    alice_ws
        .request(json!({"action":"message","topic_name":"secret","content":"welcome"}))
        .await;
    assert_eq!(bob.recv().await["content"], "welcome");
    let reply = bob
        .request(json!({"action":"message","topic_name":"secret","content":"thanks"}))
        .await;
    assert_eq!(reply["type"], "ack");
    assert_eq!(alice_ws.recv().await["content"], "thanks");
    let nobody = alice_ws
        .request(json!({"action":"invite","topic_name":"secret","username":"ghost"}))
        .await;
    assert_eq!(nobody["code"], "not_found");
}

async fn direct_messages_both_ways(app: &TestGateway) {
    let (_, alice_token) = app.user("alice").await;
    let (_, bob_token) = app.user("bob").await;
    let mut alice = app.connect(&alice_token).await;
    let mut bob = app.connect(&bob_token).await;
    let ack = alice
        .request(json!({"action":"message","topic_name":"@bob","content":"hi bob"}))
        .await;
    assert_eq!(
        (
            ack["type"].as_str(),
            ack["topic"].as_str(),
            ack["seq"].as_i64()
        ),
        (Some("ack"), Some("@bob"), Some(1))
    );
    let got = bob.recv().await;
    assert_eq!(
        (
            got["topic"].as_str(),
            got["from"].as_str(),
            got["content"].as_str()
        ),
        (Some("@alice"), Some("alice"), Some("hi bob"))
    );
    // A bare username works too.
    let ack = bob
        .request(json!({"action":"message","topic_name":"alice","content":"hi alice"}))
        .await;
    assert_eq!(
        (ack["topic"].as_str(), ack["seq"].as_i64()),
        (Some("@alice"), Some(2))
    );
    let got = alice.recv().await;
    assert_eq!(
        (got["topic"].as_str(), got["seq"].as_i64()),
        (Some("@bob"), Some(2))
    );
    alice.expect_quiet().await;
    bob.expect_quiet().await;
    let to_self = alice
        .request(json!({"action":"message","topic_name":"@alice","content":"me"}))
        .await;
    assert_eq!(to_self["code"], "invalid_field");
}

async fn every_socket_of_a_user_receives(app: &TestGateway) {
    let (alice, _) = app.user("alice").await;
    let (_, bob_token) = app.user("bob").await;
    app.topic(&alice, "news", false).await;
    let mut phone = app.connect(&bob_token).await;
    let mut laptop = app.connect(&bob_token).await;
    phone
        .request(json!({"action":"subscribe","topic_name":"news"}))
        .await;
    let topic = app.db.topic("news").await.unwrap().unwrap();
    app.core
        .publish_topic(&alice, &topic, "to both")
        .await
        .unwrap();
    assert_eq!(phone.recv().await["content"], "to both");
    assert_eq!(laptop.recv().await["content"], "to both");
}

async fn unsubscribe_stops_delivery(app: &TestGateway) {
    let (alice, _) = app.user("alice").await;
    let (_, bob_token) = app.user("bob").await;
    app.topic(&alice, "news", false).await;
    let mut bob = app.connect(&bob_token).await;
    bob.request(json!({"action":"subscribe","topic_name":"news"}))
        .await;
    let reply = bob
        .request(json!({"action":"unsubscribe","topic_name":"news"}))
        .await;
    assert_eq!(
        (reply["type"].as_str(), reply["topic"].as_str()),
        (Some("unsubscribed"), Some("news"))
    );
    let topic = app.db.topic("news").await.unwrap().unwrap();
    app.core
        .publish_topic(&alice, &topic, "unheard")
        .await
        .unwrap();
    bob.expect_quiet().await;
    let again = bob
        .request(json!({"action":"unsubscribe","topic_name":"news"}))
        .await;
    assert_eq!(again["code"], "not_subscribed");
}

async fn closed_sockets_leave_no_hub_entries(app: &TestGateway) {
    let (alice, alice_token) = app.user("alice").await;
    app.topic(&alice, "news", false).await;
    let mut first = app.connect(&alice_token).await;
    let mut second = app.connect(&alice_token).await;
    first
        .request(json!({"action":"subscribe","topic_name":"news"}))
        .await;
    assert!(
        app.hub.watched_keys() >= 2,
        "the user and the topic are watched"
    );
    for ws in [&mut first, &mut second] {
        ws.send(json!({"action":"disconnect"})).await;
        assert_eq!(ws.closed().await.0, 1000);
    }
    // The close frame is sent after the session has left the hub.
    assert_eq!(app.hub.watched_keys(), 0);
}

/// Publishers remember topics by name. A topic deleted behind this
/// process's back is noticed at the next publish; one deleted and created
/// again as private takes none of the old topic's messages or rules.
/// PostgreSQL never reuses an id, so there the deletion may come from
/// another instance; SQLite serves one process, which deletes through the
/// same core that remembers.
async fn a_topic_deleted_elsewhere_is_not_published_to(app: &TestGateway) {
    let (alice, alice_token) = app.user("alice").await;
    let (carol, _) = app.user("carol").await;
    let mut ws = app.connect(&alice_token).await;
    let gone = app.topic(&alice, "gone", false).await;
    let to_gone = json!({"action":"message","topic_name":"gone","content":"x"});
    assert_eq!(ws.request(to_gone.clone()).await["type"], "ack");
    app.db.delete_topic(&alice, &gone).await.unwrap();
    assert_eq!(ws.request(to_gone).await["code"], "not_found");

    let old = app.topic(&alice, "news", false).await;
    let to_news = json!({"action":"message","topic_name":"news","content":"first"});
    assert_eq!(ws.request(to_news.clone()).await["type"], "ack");
    if app.db.url.starts_with("postgres") {
        app.db.delete_topic(&alice, &old).await.unwrap();
    } else {
        let news = domain::names::TopicName::parse("news").unwrap();
        app.core.delete_topic(&alice, &news).await.unwrap();
    }
    let name = domain::names::TopicName::parse("news").unwrap();
    let new = app.db.create_topic(&carol, &name, true).await.unwrap();
    assert_eq!(ws.request(to_news).await["code"], "forbidden");
    let kept = app.db.messages_after(new.id, 0, 10, None).await.unwrap();
    assert!(kept.is_empty());
}

/// A conversation the sender's process remembers does not outlive its
/// peer: once the peer is deleted, a direct message to them is refused as
/// it is by a process that never saw the conversation.
async fn a_deleted_user_gets_no_more_direct_messages(app: &TestGateway) {
    let (_, alice_token) = app.user("alice").await;
    let (bob, _) = app.user("bob").await;
    let (_, admin) = app.user_with("admin", true).await;
    let mut alice = app.connect(&alice_token).await;
    let ack = alice
        .request(json!({"action":"message","topic_name":"@bob","content":"one"}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let (status, _) = app
        .rest(
            reqwest::Method::DELETE,
            &format!("/api/users/{}/", bob.id),
            &admin,
            json!({}),
        )
        .await;
    assert_eq!(status, 204);
    for target in ["@bob", "bob"] {
        let refused = alice
            .request(json!({"action":"message","topic_name":target,"content":"two"}))
            .await;
        assert_eq!(refused["code"], "not_found", "{target}: {refused}");
    }
}
