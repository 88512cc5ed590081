//! Offline delivery: everything missed, oldest first, no gap, no duplicate.

use serde_json::{Value, json};

use crate::helpers::{Client, TestGateway, on_both_stores};

on_both_stores!(
    a_thousand_missed_messages_arrive_in_order_while_publishing_goes_on,
    since_replays_history,
    delivered_messages_are_not_delivered_again,
    missed_notifications_and_direct_messages_arrive_on_connect,
    reordered_events_are_delivered_in_seq_order,
    a_lost_event_is_filled_from_the_store,
    a_catch_up_of_what_was_just_missed_is_read_from_memory,
    a_catch_up_from_memory_ends_with_what_the_bus_lost,
    a_flush_returns_once_what_was_noted_is_stored,
    a_conversation_begun_after_a_socket_opened_arrives_whole,
);

/// Without memory for recent messages, the same catch-up reads the store:
/// the marked copies the bus carried are not what arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_memory_for_recent_messages_a_catch_up_reads_the_store() {
    let config = tidings_gateway::GatewayConfig {
        recent_bytes: 0,
        ..Default::default()
    };
    let app = TestGateway::spawn_with(domain::testing::Flavor::Sqlite, config)
        .await
        .unwrap();
    assert_eq!(just_missed(&app).await, ["q0", "q1", "q2"]);
}

/// Reads message frames until `last` and returns their seqs.
async fn seqs_until(client: &mut Client, last: i64) -> Vec<i64> {
    let mut seqs = vec![];
    while seqs.last() != Some(&last) {
        let frame = client.recv().await;
        if frame["type"] == "message" {
            seqs.push(frame["seq"].as_i64().unwrap());
        }
    }
    seqs
}

async fn a_thousand_missed_messages_arrive_in_order_while_publishing_goes_on(app: &TestGateway) {
    let (alice, _) = app.user("alice").await;
    let (bob, bob_token) = app.user("bob").await;
    let topic = app.topic(&alice, "firehose", false).await;
    app.core
        .subscribe(&bob, &domain::names::TopicName::parse("firehose").unwrap())
        .await
        .unwrap();
    for i in 0..1000 {
        app.core
            .publish_topic(&alice, &topic, &format!("offline {i}"))
            .await
            .unwrap();
    }
    let publisher = {
        let (core, alice, topic) = (app.core.clone(), alice.clone(), topic.clone());
        tokio::spawn(async move {
            for i in 0..200 {
                core.publish_topic(&alice, &topic, &format!("live {i}"))
                    .await
                    .unwrap();
            }
        })
    };
    let mut client = app.connect(&bob_token).await;
    let seqs = seqs_until(&mut client, 1200).await;
    publisher.await.unwrap();
    assert_eq!(
        seqs,
        (1..=1200).collect::<Vec<_>>(),
        "every message once, in order"
    );
    client.expect_quiet().await;
}

async fn since_replays_history(app: &TestGateway) {
    let (alice, _) = app.user("alice").await;
    let (_, bob_token) = app.user("bob").await;
    let topic = app.topic(&alice, "news", false).await;
    for i in 1..=5 {
        app.core
            .publish_topic(&alice, &topic, &format!("m{i}"))
            .await
            .unwrap();
    }
    let mut bob = app.connect(&bob_token).await;
    let reply = bob
        .request(json!({"action":"subscribe","topic_name":"news","since":2}))
        .await;
    assert_eq!(
        (reply["type"].as_str(), reply["seq"].as_i64()),
        (Some("subscribed"), Some(5))
    );
    let replayed: Vec<Value> = vec![bob.recv().await, bob.recv().await, bob.recv().await];
    let seqs: Vec<i64> = replayed
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 4, 5]);
    assert_eq!(replayed[0]["content"], "m3");
    bob.expect_quiet().await;
    app.core.publish_topic(&alice, &topic, "m6").await.unwrap();
    assert_eq!(bob.recv().await["seq"], 6);
}

async fn delivered_messages_are_not_delivered_again(app: &TestGateway) {
    let (alice, _) = app.user("alice").await;
    let (_, bob_token) = app.user("bob").await;
    let topic = app.topic(&alice, "news", false).await;
    let mut bob = app.connect(&bob_token).await;
    bob.request(json!({"action":"subscribe","topic_name":"news"}))
        .await;
    publish_news(app, &alice, &topic, 1..=3).await;
    read_then_leave(&mut bob, 3).await;
    app.core.publish_topic(&alice, &topic, "m4").await.unwrap();
    let mut again = app.connect(&bob_token).await;
    assert_eq!(again.recv().await["seq"], 4, "only what was missed");
    again.expect_quiet().await;
}

async fn missed_notifications_and_direct_messages_arrive_on_connect(app: &TestGateway) {
    let (root, _) = app.user_with("root", true).await;
    let (bob, bob_token) = app.user("bob").await;
    let tag = app.core.create_tag(&root, "alerts").await.unwrap();
    app.core.subscribe_tag(&bob, bob.id, tag.id).await.unwrap();
    let mut ids = vec![];
    for i in 0..3 {
        ids.push(
            app.core
                .create_notification(&root, tag.id, &format!("n{i}"))
                .await
                .unwrap()
                .id,
        );
    }
    let target = domain::names::Target::parse("@bob").unwrap();
    app.core.publish(&root, &target, "psst").await.unwrap();
    let mut client = app.connect(&bob_token).await;
    let mut notifications = vec![];
    let mut direct = None;
    while notifications.len() < 3 || direct.is_none() {
        let frame = client.recv().await;
        match frame["type"].as_str() {
            Some("notification") => notifications.push(frame["id"].as_i64().unwrap()),
            Some("message") => direct = Some(frame),
            _ => panic!("unexpected {frame}"),
        }
    }
    assert_eq!(notifications, ids);
    let direct = direct.unwrap();
    assert_eq!(
        (direct["topic"].as_str(), direct["content"].as_str()),
        (Some("@root"), Some("psst"))
    );
    client.expect_quiet().await;
}

/// Stores messages without announcing them, so a test decides what the
/// bus carries and in which order.
async fn store_quietly(
    app: &TestGateway,
    owner: &domain::model::Actor,
    topic: &domain::model::Topic,
    n: usize,
) -> Vec<domain::events::Event> {
    let mut events = vec![];
    for i in 0..n {
        let message = app
            .db
            .publish(topic.id, owner, &format!("q{i}"))
            .await
            .unwrap();
        events.push(domain::events::Event::TopicMessage {
            topic: topic.name.clone(),
            message,
        });
    }
    events
}

async fn reordered_events_are_delivered_in_seq_order(app: &TestGateway) {
    let (alice, _) = app.user("alice").await;
    let (_, bob_token) = app.user("bob").await;
    let topic = app.topic(&alice, "news", false).await;
    let mut bob = app.connect(&bob_token).await;
    bob.request(json!({"action":"subscribe","topic_name":"news"}))
        .await;
    let events = store_quietly(app, &alice, &topic, 3).await;
    for i in [2, 0, 1] {
        app.core.bus.publish(events[i].clone()).await.unwrap();
    }
    assert_eq!(seqs_until(&mut bob, 3).await, [1, 2, 3]);
    bob.expect_quiet().await;
}

async fn a_lost_event_is_filled_from_the_store(app: &TestGateway) {
    let (alice, _) = app.user("alice").await;
    let (_, bob_token) = app.user("bob").await;
    let topic = app.topic(&alice, "news", false).await;
    let mut bob = app.connect(&bob_token).await;
    bob.request(json!({"action":"subscribe","topic_name":"news"}))
        .await;
    let events = store_quietly(app, &alice, &topic, 3).await;
    // The event for seq 2 never travels.
    app.core.bus.publish(events[0].clone()).await.unwrap();
    app.core.bus.publish(events[2].clone()).await.unwrap();
    assert_eq!(seqs_until(&mut bob, 3).await, [1, 2, 3]);
    bob.expect_quiet().await;
}

async fn a_catch_up_of_what_was_just_missed_is_read_from_memory(app: &TestGateway) {
    assert_eq!(just_missed(app).await, ["bus 4", "bus 5", "bus 6"]);
}

/// Bob reads seqs 1-3 and leaves; 4-6 are stored and announced while
/// Carol keeps the topic watched on this gateway, the bus carrying copies
/// marked "bus N" (the store holds "qN"). Returns what Bob's catch-up on
/// reconnect delivers for 4-6, which tells where it was read from; checks
/// that it is those three only, in order, and that live delivery goes on.
async fn just_missed(app: &TestGateway) -> Vec<String> {
    let mut news = WatchedNews::start(app).await;
    news.publish(app, 1..=3).await;
    read_then_leave(&mut news.bob, 3).await;
    for event in store_quietly(app, &news.alice, &news.topic, 3).await {
        let domain::events::Event::TopicMessage { topic, mut message } = event else {
            unreachable!("store_quietly makes topic messages");
        };
        message.content = format!("bus {}", message.seq);
        let marked = domain::events::Event::TopicMessage { topic, message };
        app.core.bus.publish(marked).await.unwrap();
    }
    assert_eq!(seqs_until(&mut news.carol, 6).await, [1, 2, 3, 4, 5, 6]);
    let mut again = app.connect(&news.bob_token).await;
    let mut missed = vec![];
    for seq in 4..=6 {
        let frame = again.recv().await;
        assert_eq!(
            (frame["type"].as_str(), frame["seq"].as_i64()),
            (Some("message"), Some(seq))
        );
        missed.push(frame["content"].as_str().unwrap().to_owned());
    }
    again.expect_quiet().await;
    news.publish(app, 7..=7).await;
    assert_eq!(again.recv().await["seq"], 7, "live delivery goes on");
    missed
}

/// The record ends where the bus stopped: a message stored but never
/// announced (lost on the way, with no resync to say so) still reaches a
/// reconnecting client, after the recorded ones.
async fn a_catch_up_from_memory_ends_with_what_the_bus_lost(app: &TestGateway) {
    let mut news = WatchedNews::start(app).await;
    news.publish(app, 1..=1).await;
    read_then_leave(&mut news.bob, 1).await;
    news.publish(app, 2..=3).await;
    assert_eq!(seqs_until(&mut news.carol, 3).await, [1, 2, 3]);
    // Stored, never announced.
    store_quietly(app, &news.alice, &news.topic, 1).await;
    let mut again = app.connect(&news.bob_token).await;
    assert_eq!(seqs_until(&mut again, 4).await, [2, 3, 4]);
    again.expect_quiet().await;
}

/// Topic "news" of Alice's, with Carol subscribed and connected (she keeps
/// it watched on this gateway) and Bob connected and subscribed.
struct WatchedNews {
    alice: domain::model::Actor,
    topic: domain::model::Topic,
    carol: Client,
    bob: Client,
    bob_token: String,
}

impl WatchedNews {
    async fn start(app: &TestGateway) -> Self {
        let (alice, _) = app.user("alice").await;
        let (_, bob_token) = app.user("bob").await;
        let (carol, carol_token) = app.user("carol").await;
        let topic = app.topic(&alice, "news", false).await;
        let name = domain::names::TopicName::parse("news").unwrap();
        app.core.subscribe(&carol, &name).await.unwrap();
        let carol = app.connect(&carol_token).await;
        let mut bob = app.connect(&bob_token).await;
        bob.request(json!({"action":"subscribe","topic_name":"news"}))
            .await;
        Self {
            alice,
            topic,
            carol,
            bob,
            bob_token,
        }
    }

    /// Publishes "m{i}" for each i, stored and announced.
    async fn publish(&self, app: &TestGateway, range: std::ops::RangeInclusive<i64>) {
        publish_news(app, &self.alice, &self.topic, range).await;
    }
}

async fn publish_news(
    app: &TestGateway,
    alice: &domain::model::Actor,
    topic: &domain::model::Topic,
    range: std::ops::RangeInclusive<i64>,
) {
    for i in range {
        app.core
            .publish_topic(alice, topic, &format!("m{i}"))
            .await
            .unwrap();
    }
}

/// Reads seqs 1 to `last`, then leaves with a clean close.
async fn read_then_leave(client: &mut Client, last: i64) {
    assert_eq!(
        seqs_until(client, last).await,
        (1..=last).collect::<Vec<_>>()
    );
    client.send(json!({"action":"disconnect"})).await;
    assert_eq!(client.closed().await.0, 1000);
}

/// A session that ends flushes the cursor book before its socket closes,
/// while other sessions end and flush too: each flush must return only
/// once what was noted before it is in the store, or a client that
/// reconnects at once reads an older position and gets frames twice.
async fn a_flush_returns_once_what_was_noted_is_stored(app: &TestGateway) {
    use domain::store::Cursor;
    use std::sync::Arc;
    const USERS: usize = 48;
    const ROUNDS: i64 = 8;
    let (alice, _) = app.user("alice").await;
    let topic = app.topic(&alice, "cursors", false).await;
    let name = domain::names::TopicName::parse("cursors").unwrap();
    let mut members = vec![];
    for i in 0..USERS {
        let (user, _) = app.user(&format!("reader{i}")).await;
        app.core.subscribe(&user, &name).await.unwrap();
        members.push(user.id);
    }
    for n in 0..ROUNDS {
        app.core
            .publish_topic(&alice, &topic, &n.to_string())
            .await
            .unwrap();
    }
    let book = Arc::new(tidings_gateway::cursors::CursorBook::default());
    for seq in 1..=ROUNDS {
        let tasks: Vec<_> = members
            .iter()
            .map(|&user_id| {
                let (book, core) = (Arc::clone(&book), Arc::clone(&app.core));
                let cursor = Cursor::Channel {
                    channel_id: topic.id,
                    user_id,
                };
                tokio::spawn(async move {
                    book.note(cursor, seq);
                    book.flush(&core).await;
                    core.delivered_seq(topic.id, user_id).await.unwrap()
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), Some(seq), "flushed, yet not stored");
        }
    }
}

/// A direct conversation begun after a socket opened is new to that
/// socket from its first message, whatever the user's stored cursor says
/// (another of the user's devices may have moved it): the socket shows
/// all of it, in order.
async fn a_conversation_begun_after_a_socket_opened_arrives_whole(app: &TestGateway) {
    let (alice, _) = app.user("alice").await;
    let (bob, bob_token) = app.user("bob").await;
    let mut socket = app.connect(&bob_token).await;
    let channel = app.db.direct_channel(alice.id, bob.id).await.unwrap();
    for i in 0..3 {
        app.db
            .publish(channel, &alice, &format!("d{i}"))
            .await
            .unwrap();
    }
    // Another of bob's devices has shown those three.
    let cursor = domain::store::Cursor::Channel {
        channel_id: channel,
        user_id: bob.id,
    };
    app.db.advance_cursors(&[(cursor, 3)]).await.unwrap();
    let target = domain::names::Target::parse("@bob").unwrap();
    app.core.publish(&alice, &target, "d3").await.unwrap();
    assert_eq!(seqs_until(&mut socket, 4).await, [1, 2, 3, 4]);
    socket.expect_quiet().await;
}
