//! Limits: frame size, publish rate, slow consumers, token expiry, shutdown.

use std::time::Duration;

use domain::auth::TokenType;
use domain::model::Actor;
use futures_util::StreamExt;
use serde_json::json;
use tidings_gateway::GatewayConfig;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::TestGateway;

async fn spawn(config: GatewayConfig) -> TestGateway {
    TestGateway::spawn_with(domain::testing::Flavor::Sqlite, config)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_oversized_frame_closes_with_1009() {
    let app = spawn(GatewayConfig::default()).await;
    let (_, token) = app.user("alice").await;
    let mut ws = app.connect(&token).await;
    ws.send_text(format!(
        r#"{{"action":"message","topic_name":"x","content":"{}"}}"#,
        "x".repeat(70 * 1024)
    ))
    .await;
    assert_eq!(ws.closed().await.0, 1009);
}

/// A text frame that is not UTF-8 closes with 1007 (invalid data).
#[tokio::test]
async fn a_text_frame_that_is_not_utf8_closes_with_1007() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
    use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};
    let app = spawn(GatewayConfig::default()).await;
    let (_, token) = app.user("alice").await;
    let mut ws = app.connect(&token).await;
    let header = FrameHeader {
        opcode: OpCode::Data(Data::Text),
        ..FrameHeader::default()
    };
    let frame = Frame::from_payload(header, vec![b'{', 0xff, 0xfe, b'}'].into());
    futures_util::SinkExt::send(
        &mut ws.socket,
        tokio_tungstenite::tungstenite::Message::Frame(frame),
    )
    .await
    .unwrap();
    assert_eq!(ws.closed().await.0, 1007);
}

/// A frame far over the limit is refused by the socket's reader itself
/// (before it is buffered whole), and still gets 1009.
#[tokio::test]
async fn a_frame_over_the_hard_cap_closes_with_1009() {
    let app = spawn(GatewayConfig::default()).await;
    let (_, token) = app.user("alice").await;
    let mut ws = app.connect(&token).await;
    ws.send_text("x".repeat(1024 * 1024)).await;
    assert_eq!(ws.closed().await.0, 1009);
}

#[tokio::test]
async fn publishing_too_fast_is_rate_limited() {
    let app = spawn(GatewayConfig {
        publish_rate: 0,
        publish_burst: 3,
        ..GatewayConfig::default()
    })
    .await;
    let (alice, token) = app.user("alice").await;
    app.topic(&alice, "news", false).await;
    let mut ws = app.connect(&token).await;
    for _ in 0..3 {
        let ack = ws
            .request(json!({"action":"message","topic_name":"news","content":"x"}))
            .await;
        assert_eq!(ack["type"], "ack");
    }
    let limited = ws
        .request(json!({"action":"message","topic_name":"news","content":"x"}))
        .await;
    assert_eq!(limited["code"], "rate_limited");
    assert_eq!(
        ws.request(json!({"action":"notifications_list"})).await["type"],
        "notifications_list"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_closed_with_4008_and_catches_up() {
    slow_consumer_catches_up(Duration::ZERO, Duration::ZERO).await;
}

/// A slow consumer reaches the close frame only after what it had not
/// read: answered many seconds later (past the ten a server once waited),
/// the answer still proves it read all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_that_answers_the_close_late_gets_nothing_twice() {
    slow_consumer_catches_up(Duration::ZERO, Duration::from_secs(12)).await;
}

/// After the 4008 the slow consumer still reads nothing for a while: what
/// was framed for it waits in full socket buffers, well past the two
/// seconds other closes get, and its close frame goes out behind it. Given
/// up on, the close would leave no proof of what was read, and the
/// reconnect would get it all again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_that_reads_late_gets_its_close_and_nothing_twice() {
    slow_consumer_catches_up(Duration::from_secs(5), Duration::ZERO).await;
}

/// Bob reads nothing until 1,000 big messages are stored and `read_after`
/// more, is closed with 4008, answers the close `answer_after` it arrives,
/// reconnects, and must end up with every seq once, in order.
async fn slow_consumer_catches_up(read_after: Duration, answer_after: Duration) {
    const TOTAL: i64 = 1000;
    let firehose = Firehose::start().await;
    let (mut slow, bob_token) = firehose.subscriber("bob").await;
    firehose.flood(TOTAL).await;
    tokio::time::sleep(read_after).await;
    // Only now does the slow client read: what was written, then the close.
    let (mut seqs, closed) = read_until(&mut slow, TOTAL).await;
    assert!(closed, "expected a 4008");
    let app = &firehose.app;
    tokio::time::sleep(answer_after).await;
    slow.until_end().await;
    assert!(
        (seqs.len() as i64) < TOTAL,
        "the slow consumer was cut off early"
    );
    let mut again = app.connect(&bob_token).await;
    while seqs.last() != Some(&TOTAL) {
        let frame = again.recv().await;
        seqs.push(frame["seq"].as_i64().unwrap());
    }
    assert_eq!(
        seqs,
        (1..=TOTAL).collect::<Vec<_>>(),
        "nothing lost, nothing twice"
    );
}

/// A session more than half full, on a socket that takes what it is sent,
/// holds the next commit back until it has caught up: publishers wait,
/// subscribers are not closed. The session here is the test, holding a
/// place in the real hub; the hub, bus, writer and store are the real ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_far_behind_holds_publishes_back_until_it_catches_up() {
    use std::sync::Arc;
    let app = spawn(GatewayConfig::default()).await;
    let (alice, _) = app.user("alice").await;
    let topic = app.topic(&alice, "flood", false).await;
    let (handle, _queue) = a_session_far_behind(&app, &alice, &topic).await;
    let held = tokio::spawn({
        let (core, alice, topic) = (Arc::clone(&app.core), alice.clone(), topic.clone());
        async move { core.publish_topic(&alice, &topic, "held").await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !held.is_finished(),
        "committed while a session was far behind"
    );
    handle.handled(5);
    let published = tokio::time::timeout(Duration::from_secs(5), held)
        .await
        .expect("committed once the session caught up")
        .unwrap()
        .unwrap();
    assert_eq!(published.message.seq, 6);
    assert_eq!(app.core.fan_out_lag().lagging(), 0);
}

/// A session that stays far behind (its client reads a trickle, or
/// nothing the socket notices) holds commits back for the budget once,
/// not for the writer's cap at every commit: publishers of another topic
/// go on. It held five publishes for 50 s before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_stays_behind_holds_back_once_for_the_budget() {
    use std::time::Instant;
    let (app, alice, slow_topic, other) = slow_and_other_topics().await;
    let (handle, _queue) = a_session_far_behind(&app, &alice, &slow_topic).await;
    let started = Instant::now();
    for n in 0..5 {
        app.core
            .publish_topic(&alice, &other, &n.to_string())
            .await
            .unwrap();
    }
    let took = started.elapsed();
    // The budget ran from when the session fell behind, a moment before
    // the first of these publishes.
    let budget = domain::fan_out_lag::HOLD_BUDGET;
    assert!(
        took >= budget / 2 && took < budget * 4,
        "held for the budget, once: {took:?}"
    );
    assert_eq!(app.core.fan_out_lag().lagging(), 1, "still behind");
    drop(handle);
}

/// A session whose client reads slower than its topic goes, but reads
/// everything it was sent whenever commits are held, falls behind and
/// catches up over and over, each time within the process's budget. It
/// holds commits back for its allowance, then for a small share of the
/// time: it used to set the pace of every publisher of the process. Here
/// another topic's publishes were held for 7.85 s of 8 before, 2.95 s now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_catches_up_only_when_held_spends_its_allowance() {
    use std::sync::Arc;
    use std::time::Instant;
    use tidings_gateway::hub::Outbound;
    let (app, alice, slow_topic, other) = slow_and_other_topics().await;
    let (handle, mut receiver) = a_session_watching(&app, &slow_topic).await;
    // The client: every 200 ms, everything it was sent.
    let backlog = Arc::clone(&handle.backlog);
    let client = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut events = 0;
            while let Ok(out) = receiver.try_recv() {
                if let Outbound::Events(run) = out {
                    events += run.len();
                }
            }
            backlog.handled(events);
        }
    });
    // Its topic's publisher, as fast as its commits go.
    let feeder = tokio::spawn({
        let (core, alice) = (Arc::clone(&app.core), alice.clone());
        async move {
            loop {
                let _ = core.publish_topic(&alice, &slow_topic, "x").await;
            }
        }
    });
    let run = Duration::from_secs(8);
    let started = Instant::now();
    let mut held = Duration::ZERO;
    while started.elapsed() < run {
        let publish = Instant::now();
        app.core.publish_topic(&alice, &other, "y").await.unwrap();
        let took = publish.elapsed();
        // A commit held back waits for the client's next read.
        if took >= Duration::from_millis(50) {
            held += took;
        }
    }
    feeder.abort();
    client.abort();
    let budget = domain::fan_out_lag::USER_HOLD_BUDGET;
    assert!(
        held >= budget / 2,
        "the session held for its allowance: {held:?}"
    );
    assert!(
        held < budget * 2,
        "then for a small share of the time, not the whole run: {held:?} of {run:?}"
    );
    drop(handle);
}

/// A user's sockets, opened with a token or an API key, pay for holding
/// publishers back from one allowance, so more sockets buy no more of it
/// (that it outlives a reconnect is `hold_accounts.rs`'s test).
#[tokio::test]
async fn a_users_sockets_share_one_allowance_of_holding() {
    use std::sync::Arc;
    let app = spawn(GatewayConfig::default()).await;
    let (alice, token) = app.user("alice").await;
    let (bob, bobs) = app.user("bob").await;
    let (status, created) = app
        .rest(
            reqwest::Method::POST,
            "/api/keys/",
            &token,
            json!({"name":"bot"}),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let _sockets = (
        app.connect(&token).await,
        app.connect(&key).await,
        app.connect(&bobs).await,
    );
    // The accounts' own, this look's, and one per session: alice's two,
    // bob's one.
    assert_eq!(Arc::strong_count(&app.hold_accounts.of(alice.id)), 4);
    assert_eq!(Arc::strong_count(&app.hold_accounts.of(bob.id)), 3);
}

/// A gateway with alice and two topics of hers, "slow" and "other".
async fn slow_and_other_topics() -> (
    TestGateway,
    Actor,
    domain::model::Topic,
    domain::model::Topic,
) {
    let app = spawn(GatewayConfig::default()).await;
    let (alice, _) = app.user("alice").await;
    let slow = app.topic(&alice, "slow", false).await;
    let other = app.topic(&alice, "other", false).await;
    (app, alice, slow, other)
}

/// A session of the test's own in the real hub, watching `topic`, with a
/// queue of 8: its handle, and the receiving end of its queue.
async fn a_session_watching(
    app: &TestGateway,
    topic: &domain::model::Topic,
) -> (
    tidings_gateway::hub::SessionHandle,
    tokio::sync::mpsc::UnboundedReceiver<tidings_gateway::hub::Outbound>,
) {
    let (queue, receiver) = tokio::sync::mpsc::unbounded_channel();
    let lag = std::sync::Arc::clone(app.core.fan_out_lag());
    let handle = tidings_gateway::hub::SessionHandle::new(queue, 8, lag);
    let key = domain::events::Key::Channel(topic.id);
    app.hub.watch(key, app.hub.next_session_id(), &handle).await;
    (handle, receiver)
}

/// [`a_session_watching`] `topic`, with five of alice's messages queued
/// and not handled: far behind, on a socket that (as far as the hub knows)
/// takes what it is sent. The receiving end of its queue is to be kept,
/// so the hub goes on pushing to it.
async fn a_session_far_behind(
    app: &TestGateway,
    alice: &Actor,
    topic: &domain::model::Topic,
) -> (
    tidings_gateway::hub::SessionHandle,
    tokio::sync::mpsc::UnboundedReceiver<tidings_gateway::hub::Outbound>,
) {
    let (handle, mut receiver) = a_session_watching(app, topic).await;
    for n in 0..5 {
        app.core
            .publish_topic(alice, topic, &n.to_string())
            .await
            .unwrap();
    }
    let mut queued = 0;
    while queued < 5 {
        match tokio::time::timeout(Duration::from_secs(10), receiver.recv()).await {
            Ok(Some(tidings_gateway::hub::Outbound::Events(run))) => queued += run.len(),
            other => panic!("expected the five messages, got {other:?}"),
        }
    }
    assert_eq!(app.core.fan_out_lag().lagging(), 1, "5 of 8 is far behind");
    (handle, receiver)
}

#[tokio::test]
async fn an_expired_token_closes_with_4001() {
    let app = spawn(GatewayConfig::default()).await;
    let (alice, _) = app.user("alice").await;
    let user = domain::model::User {
        id: alice.id,
        username: alice.username.clone(),
        is_admin: false,
    };
    let short = app
        .keys
        .issue_with_ttl(&user, 0, TokenType::Access, Duration::from_secs(1))
        .unwrap();
    let mut ws = app.connect(&short).await;
    let (code, reason) = ws.closed().await;
    assert_eq!((code, reason.as_str()), (4001, "token expired"));
}

/// Several subscribers of one topic fall behind together: three read
/// nothing until everything is stored, one reads all along. Each closed
/// with 4008 answers its close, waits for the end, reconnects and catches
/// up (from the gateway's memory of the topic while another session keeps
/// it watched, from the store otherwise), and every one of them ends up
/// with every seq once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumers_closed_together_each_catch_up_with_nothing_lost_or_twice() {
    const TOTAL: i64 = 1000;
    let firehose = Firehose::start().await;
    let mut readers = vec![];
    for n in 0..4 {
        readers.push(firehose.subscriber(&format!("reader{n}")).await);
    }
    let url = firehose.app.ws.clone();
    let (first, first_token) = readers.remove(0);
    let reading =
        tokio::spawn(async move { every_seq_once(first, &url, &first_token, TOTAL).await });
    firehose.flood(TOTAL).await;
    let every: Vec<i64> = (1..=TOTAL).collect();
    // Still connected, it keeps the topic watched (and its memory kept).
    let (seqs, _, _watching) = reading.await.unwrap();
    assert_eq!(seqs, every, "the reader that read all along");
    for (n, (client, token)) in readers.into_iter().enumerate() {
        let (seqs, closes, _) = every_seq_once(client, &firehose.app.ws, &token, TOTAL).await;
        assert!(closes > 0, "slow reader {n} was never closed");
        assert_eq!(seqs, every, "slow reader {n}: nothing lost, nothing twice");
    }
}

/// Reads message seqs until `last`; closed with 4008, answers the close,
/// waits for the end of the connection and reconnects, as a client should.
/// Returns the seqs, how many times it was closed, and the connection.
async fn every_seq_once(
    mut client: crate::helpers::Client,
    ws: &str,
    token: &str,
    last: i64,
) -> (Vec<i64>, usize, crate::helpers::Client) {
    let (mut seqs, mut closes) = (vec![], 0);
    loop {
        let (more, closed) = read_until(&mut client, last).await;
        seqs.extend(more);
        if !closed {
            break;
        }
        closes += 1;
        client.until_end().await;
        client = crate::helpers::Client::open(&format!("{ws}/ws?token={token}")).await;
    }
    (seqs, closes, client)
}

/// A slow consumer's close is waited for longer than others, but not
/// past shutdown: a stopping process gives an unanswered one its own
/// grace (2 s here), not the slow consumer's wait (a minute).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cuts_a_slow_consumers_wait_for_its_close_answer_short() {
    let firehose = Firehose::start().await;
    let (mut slow, _) = firehose.subscriber("bob").await;
    firehose.flood(1000).await;
    let (_, closed) = read_until(&mut slow, 1000).await;
    assert!(closed, "expected a 4008");
    let app = &firehose.app;
    // The library answers a close on the next read: read beneath it
    // instead, so the server waits for an answer that never comes.
    app.shutdown.trigger();
    let stopping = std::time::Instant::now();
    let mut raw = [0u8; 1024];
    loop {
        let read = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::io::AsyncReadExt::read(slow.socket.get_mut(), &mut raw),
        )
        .await
        .expect("the server ends the connection");
        if !matches!(read, Ok(n) if n > 0) {
            break;
        }
    }
    let waited = stopping.elapsed();
    assert!(
        waited < Duration::from_secs(6),
        "the connection outlived shutdown by {waited:?}"
    );
}

/// A client far behind when the process stops reads nothing for longer
/// than anyone else's close is waited for (2 s a step), then reads: it
/// gets everything written to it, in order, then its 1001, and the
/// position saved for it is the last seq it read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_a_client_far_behind_to_read_up_to_its_1001() {
    let firehose = Firehose::with(GatewayConfig {
        outbound_queue: 100_000,
        ..GatewayConfig::default()
    })
    .await;
    let (bob, mut late, _) = firehose.member("bob").await;
    // 3 MiB: more than the sockets' buffers hold.
    firehose.flood(200).await;
    firehose.app.shutdown.trigger();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut last = 0;
    let code = loop {
        match tokio::time::timeout(Duration::from_secs(10), late.socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
                if frame["type"] == "message" {
                    assert_eq!(frame["seq"], last + 1, "in order, nothing skipped");
                    last += 1;
                }
            }
            Ok(Some(Ok(Message::Close(frame)))) => break frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => {}
            other => panic!("expected messages then a close, got {other:?}"),
        }
    };
    assert_eq!(code, Some(1001));
    assert!(last > 0, "nothing was written before the close");
    late.until_end().await;
    let topic = firehose.topic.id;
    let mut saved = None;
    for _ in 0..50 {
        saved = firehose
            .app
            .core
            .delivered_seq(topic, bob.id)
            .await
            .unwrap();
        if saved == Some(last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(saved, Some(last), "the saved position is what it read");
}

#[tokio::test]
async fn shutdown_closes_every_socket_with_1001() {
    let app = spawn(GatewayConfig::default()).await;
    let (_, token) = app.user("alice").await;
    let mut first = app.connect(&token).await;
    let mut second = app.connect(&token).await;
    app.shutdown.trigger();
    assert_eq!(first.closed().await.0, 1001);
    assert_eq!(second.closed().await.0, 1001);
}

#[tokio::test]
async fn a_silent_peer_is_dropped() {
    let config = GatewayConfig {
        ping_interval: Duration::from_millis(50),
        idle_timeout: Duration::from_millis(200),
        ..GatewayConfig::default()
    };
    let app = spawn(config).await;
    let (_, token) = app.user("alice").await;
    let mut ws = app.connect(&token).await;
    // Not reading means not answering pings: the peer is silent.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = futures_util::StreamExt::next(&mut ws.socket).await {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "the server should have dropped the connection"
    );
}

#[tokio::test]
async fn an_answering_peer_is_kept() {
    let config = GatewayConfig {
        ping_interval: Duration::from_millis(50),
        idle_timeout: Duration::from_millis(200),
        ..GatewayConfig::default()
    };
    let app = spawn(config).await;
    let (_, token) = app.user("alice").await;
    let mut ws = app.connect(&token).await;
    // Reading answers each ping with a pong; after several idle timeouts
    // the socket still serves requests.
    let mut pings = 0;
    while pings < 10 {
        match futures_util::StreamExt::next(&mut ws.socket).await {
            Some(Ok(tokio_tungstenite::tungstenite::Message::Ping(_))) => pings += 1,
            other => panic!("expected pings, got {other:?}"),
        }
    }
    assert_eq!(
        ws.request(json!({"action":"notifications_list"})).await["type"],
        "notifications_list"
    );
}

/// A gateway whose sockets are slow consumers after 4 queued events, and
/// Alice's public topic "firehose".
struct Firehose {
    app: TestGateway,
    alice: domain::model::Actor,
    topic: domain::model::Topic,
}

impl Firehose {
    /// Sockets closed as slow consumers 4 messages behind, and a process
    /// that stops in 2 s.
    async fn start() -> Self {
        Self::with(GatewayConfig {
            outbound_queue: 4,
            shutdown_timeout: Duration::from_secs(2),
            ..GatewayConfig::default()
        })
        .await
    }

    async fn with(config: GatewayConfig) -> Self {
        let app = spawn(config).await;
        let (alice, _) = app.user("alice").await;
        let topic = app.topic(&alice, "firehose", false).await;
        Self { app, alice, topic }
    }

    /// A new user subscribed to the topic, connected; and its token.
    async fn subscriber(&self, name: &str) -> (crate::helpers::Client, String) {
        let (_, client, token) = self.member(name).await;
        (client, token)
    }

    /// [`subscriber`](Self::subscriber), with the user.
    async fn member(&self, name: &str) -> (Actor, crate::helpers::Client, String) {
        let (user, token) = self.app.user(name).await;
        let topic = domain::names::TopicName::parse("firehose").unwrap();
        self.app.core.subscribe(&user, &topic).await.unwrap();
        let client = self.app.connect(&token).await;
        (user, client, token)
    }

    /// Stores `count` messages of 16 KiB, more than a socket that reads
    /// nothing can buffer.
    async fn flood(&self, count: i64) {
        let body = "x".repeat(16 * 1024);
        for _ in 0..count {
            self.app
                .core
                .publish_topic(&self.alice, &self.topic, &body)
                .await
                .unwrap();
        }
    }
}

/// Reads message seqs until seq `last` or a close, which must be a 4008
/// (left unanswered); whether it was closed.
async fn read_until(client: &mut crate::helpers::Client, last: i64) -> (Vec<i64>, bool) {
    let mut seqs = vec![];
    while seqs.last() != Some(&last) {
        let next = tokio::time::timeout(Duration::from_secs(10), client.socket.next()).await;
        match next {
            Ok(Some(Ok(Message::Text(text)))) => {
                let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
                if frame["type"] == "message" {
                    seqs.push(frame["seq"].as_i64().unwrap());
                }
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                assert_eq!(frame.map(|f| u16::from(f.code)), Some(4008));
                return (seqs, true);
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("expected frames or a 4008, got {other:?}"),
        }
    }
    (seqs, false)
}

/// A connection that sends no request (none at all, half a request head,
/// or nothing more after a health check) is closed once the header
/// timeout passes; a WebSocket opened before it is not.
#[tokio::test]
async fn connections_without_a_request_are_closed_after_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn(GatewayConfig {
        header_timeout: Duration::from_millis(300),
        ..GatewayConfig::default()
    })
    .await;
    let (_, token) = app.user("alice").await;
    let mut ws = app.connect(&token).await;
    let address = app.ws.trim_start_matches("ws://").to_owned();
    let health = "GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n";
    for (what, sent) in [
        ("nothing", ""),
        (
            "half a request head",
            "GET /ws?token=abc HTTP/1.1\r\nHost: gat",
        ),
        ("a health check, then nothing", health),
    ] {
        let mut tcp = tokio::net::TcpStream::connect(&address).await.unwrap();
        tcp.write_all(sent.as_bytes()).await.unwrap();
        let mut received = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut received));
        let ended = read
            .await
            .unwrap_or_else(|_| panic!("{what}: still open after 10 s"));
        assert!(ended.is_ok(), "{what}: {ended:?}");
        let answered = String::from_utf8_lossy(&received);
        assert_eq!(
            answered.starts_with("HTTP/1.1 200"),
            sent == health,
            "{what}: {answered}"
        );
    }
    let reply = ws
        .request(json!({"action":"subscribe","topic_name":"news"}))
        .await;
    assert_eq!(
        reply["code"], "not_found",
        "the socket outlived the timeout"
    );
}

/// With `max_sockets_per_user`, one socket more than that is refused with
/// 429 and says why; another user is not affected, and once a socket has
/// closed its place is free again.
#[tokio::test]
async fn a_user_past_its_socket_limit_is_refused_with_429() {
    let app = spawn(GatewayConfig {
        max_sockets_per_user: 2,
        ..GatewayConfig::default()
    })
    .await;
    let (_, alice) = app.user("alice").await;
    let (_, bob) = app.user("bob").await;
    let mut first = app.connect(&alice).await;
    let _second = app.connect(&alice).await;
    let url = format!("{}/ws?token={alice}", app.ws);
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status().as_u16(), 429);
            let body: serde_json::Value =
                serde_json::from_slice(&response.body().clone().unwrap_or_default()).unwrap();
            assert_eq!(body["error"]["code"], "too_many_connections", "{body}");
        }
        other => panic!("a third socket was not refused: {other:?}"),
    }
    let _bob = app.connect(&bob).await;
    first.send(json!({"action":"disconnect"})).await;
    assert_eq!(first.closed().await.0, 1000);
    let mut admitted = None;
    for _ in 0..50 {
        if let Ok((mut socket, _)) = tokio_tungstenite::connect_async(url.as_str()).await {
            let welcome = socket.next().await;
            admitted = Some(welcome);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let welcome = admitted.expect("a place is free again once a socket has closed");
    assert!(
        matches!(&welcome, Some(Ok(Message::Text(text))) if text.contains("welcome")),
        "{welcome:?}"
    );
}

/// A token names its user by its signature, so a user at the limit is
/// refused before the store is asked: while another connection holds
/// PostgreSQL's `users` table, that user's handshake is still answered
/// 429 at once, while another user's waits for the store.
#[tokio::test]
async fn a_user_at_its_socket_limit_is_refused_without_a_store_read() {
    use sqlx::Connection;
    let Some(db) = domain::testing::TestStore::fresh(domain::testing::Flavor::Postgres).await
    else {
        return;
    };
    let url = db.url.clone();
    let config = GatewayConfig {
        max_sockets_per_user: 1,
        ..GatewayConfig::default()
    };
    let app = TestGateway::spawn_on(db, config).await.unwrap();
    let (_, alice) = app.user("alice").await;
    let (_, bob) = app.user("bob").await;
    let _first = app.connect(&alice).await;

    let mut holder = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut hold = holder.begin().await.unwrap();
    sqlx::query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *hold)
        .await
        .unwrap();
    let handshake = |token: &str| {
        let url = format!("{}/ws?token={token}", app.ws);
        async move { tokio_tungstenite::connect_async(url.as_str()).await }
    };
    let waiting = tokio::spawn(handshake(&bob));
    match tokio::time::timeout(Duration::from_secs(5), handshake(&alice)).await {
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
            assert_eq!(response.status().as_u16(), 429);
        }
        other => panic!("alice was not refused at once: {other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "bob's handshake did not wait for the store, so the check above proves nothing"
    );
    hold.rollback().await.unwrap();
    let admitted = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .expect("bob's handshake went on once the store was free")
        .unwrap();
    assert!(admitted.is_ok(), "{admitted:?}");
}
