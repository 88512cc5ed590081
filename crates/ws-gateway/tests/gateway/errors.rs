//! Every error code, each leaving the socket open, with `ref` echoed and
//! in its place among the answers to pipelined publishes.

use domain::testing::Flavor;
use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{TestGateway, on_both_stores};

on_both_stores!(
    bad_frames_get_their_codes_and_the_socket_survives,
    bad_frames_among_pipelined_publishes_cost_them_nothing,
);

async fn bad_frames_get_their_codes_and_the_socket_survives(app: &TestGateway) {
    let (root, _) = app.user("root").await;
    let (_, token) = app.user("alice").await;
    app.topic(&root, "news", false).await;
    let mut ws = app.connect(&token).await;
    ws.send_text("{not json".into()).await;
    let reply = ws.recv().await;
    assert_eq!(
        (reply["type"].as_str(), reply["code"].as_str()),
        (Some("error"), Some("bad_json"))
    );
    assert!(reply.get("ref").is_none());
    let cases = [
        (json!({"action":"dance"}), "unknown_action"),
        (json!({"topic_name":"news"}), "missing_field"),
        (json!({"action":"subscribe"}), "missing_field"),
        (
            json!({"action":"subscribe","topic_name":42}),
            "invalid_field",
        ),
        (
            json!({"action":"subscribe","topic_name":"news","since":"x"}),
            "invalid_field",
        ),
        (
            json!({"action":"subscribe","topic_name":"no spaces"}),
            "invalid_name",
        ),
        (
            json!({"action":"message","topic_name":"news","content":""}),
            "invalid_field",
        ),
        (
            json!({"action":"message","topic_name":"news","content": "x".repeat(16 * 1024 + 1)}),
            "too_large",
        ),
        (json!({"action":"mark_read","id":999}), "not_found"),
        (
            json!({"action":"unsubscribe","topic_name":"news"}),
            "not_subscribed",
        ),
        (
            json!({"action":"notifications_list","page":0}),
            "invalid_field",
        ),
    ];
    for (frame, code) in cases {
        let reply = ws.request(frame.clone()).await;
        assert_eq!(
            (reply["type"].as_str(), reply["code"].as_str()),
            (Some("error"), Some(code)),
            "{frame}"
        );
        assert!(reply["message"].is_string());
    }
    let numeric = {
        ws.send(json!({"action":"dance","ref":7})).await;
        ws.recv().await
    };
    assert_eq!(numeric["ref"], 7);
    let ok = ws
        .request(json!({"action":"subscribe","topic_name":"news"}))
        .await;
    assert_eq!(ok["type"], "subscribed", "the socket is still fine");
}

/// What a frame of [`bad_frames_among_pipelined_publishes_cost_them_nothing`]
/// must be answered with.
enum Answer {
    /// Acked, and delivered with this content.
    Stored(String),
    /// Refused with this code; `ref` echoed when the frame could carry one.
    Refused(&'static str, bool),
    /// Answered with a frame of this type.
    Replied(&'static str),
}

/// Bad frames of every kind, and other actions, sent among good publishes
/// without waiting for any answer: each is answered in its place, the good
/// ones are acked with consecutive seqs, and a subscriber receives exactly
/// those, in the order they were sent.
async fn bad_frames_among_pipelined_publishes_cost_them_nothing(app: &TestGateway) {
    let (root, _) = app.user("root").await;
    let (_, alice_token) = app.user("alice").await;
    let (_, bob_token) = app.user("bob").await;
    app.topic(&root, "alpha", false).await;
    app.topic(&root, "secret", true).await;
    let mut bob = app.connect(&bob_token).await;
    let subscribed = bob
        .request(json!({"action":"subscribe","topic_name":"alpha"}))
        .await;
    assert_eq!(subscribed["type"], "subscribed");
    let mut alice = app.connect(&alice_token).await;
    let publish = |n: usize, topic: &str, content: Value| {
        json!({"action":"message","topic_name":topic,"content":content,"ref":n}).to_string()
    };
    let mut answers = Vec::new();
    for n in 0..300 {
        let content = format!("m{n}");
        let (frame, answer) = match n % 14 {
            0 => ("{not json".to_owned(), Answer::Refused("bad_json", false)),
            1 => (
                json!({"action":"dance","ref":n}).to_string(),
                Answer::Refused("unknown_action", true),
            ),
            2 => (
                json!({"action":"message","topic_name":"alpha","ref":n}).to_string(),
                Answer::Refused("missing_field", true),
            ),
            3 => (
                publish(n, "alpha", json!(5)),
                Answer::Refused("invalid_field", true),
            ),
            4 => (
                publish(n, "no spaces", json!(content)),
                Answer::Refused("invalid_name", true),
            ),
            5 => (
                publish(n, "secret", json!(content)),
                Answer::Refused("forbidden", true),
            ),
            6 => (
                publish(n, "nowhere", json!(content)),
                Answer::Refused("not_found", true),
            ),
            7 => (
                publish(n, "alpha", json!("x".repeat(16 * 1024 + 1))),
                Answer::Refused("too_large", true),
            ),
            8 => (
                publish(n, "alpha", json!(format!("nul\u{0}{n}"))),
                Answer::Refused("invalid_field", true),
            ),
            9 => (
                json!({"action":"mark_read","id":999_999,"ref":n}).to_string(),
                Answer::Refused("not_found", true),
            ),
            10 => (
                json!({"action":"notifications_list","ref":n}).to_string(),
                Answer::Replied("notifications_list"),
            ),
            11 => {
                let frame = Message::Binary(b"{}".to_vec().into());
                alice.socket.send(frame).await.unwrap();
                answers.push(Answer::Refused("bad_json", false));
                continue;
            }
            _ => (publish(n, "alpha", json!(content)), Answer::Stored(content)),
        };
        alice.send_text(frame).await;
        answers.push(answer);
    }
    let mut stored = Vec::new();
    for (n, answer) in answers.into_iter().enumerate() {
        let reply = alice.recv().await;
        match answer {
            Answer::Stored(content) => {
                stored.push(content);
                assert_eq!(
                    (reply["type"].as_str(), &reply["ref"], reply["seq"].as_u64()),
                    (Some("ack"), &json!(n), Some(stored.len() as u64)),
                    "frame {n}: {reply}"
                );
            }
            Answer::Refused(code, echoed) => {
                assert_eq!(
                    (reply["type"].as_str(), reply["code"].as_str()),
                    (Some("error"), Some(code)),
                    "frame {n}: {reply}"
                );
                let reference = if echoed { json!(n) } else { Value::Null };
                assert_eq!(reply["ref"], reference, "frame {n}: {reply}");
            }
            Answer::Replied(kind) => {
                assert_eq!(
                    (reply["type"].as_str(), &reply["ref"]),
                    (Some(kind), &json!(n)),
                    "frame {n}: {reply}"
                );
            }
        }
    }
    for (i, content) in stored.iter().enumerate() {
        let message = bob.recv().await;
        assert_eq!(
            (message["type"].as_str(), message["content"].as_str()),
            (Some("message"), Some(content.as_str())),
            "delivery {i}: {message}"
        );
        assert_eq!(message["seq"], i + 1, "delivery {i}");
    }
    let still = alice
        .request(json!({"action":"subscribe","topic_name":"alpha"}))
        .await;
    assert_eq!(still["type"], "subscribed", "the socket is still fine");
}

/// Frames that break the WebSocket protocol itself (RFC 6455), each on a
/// socket of its own: the server closes that socket with 1002 and a
/// reason, and goes on serving everyone else.
#[tokio::test]
async fn protocol_violations_close_with_1002_and_the_server_serves_on() {
    let app = TestGateway::spawn(Flavor::Sqlite).await.unwrap();
    let (alice, alice_token) = app.user("alice").await;
    let (_, bob_token) = app.user("bob").await;
    let topic = app.topic(&alice, "news", false).await;
    let mut bystander = app.connect(&bob_token).await;
    let subscribed = bystander
        .request(json!({"action":"subscribe","topic_name":"news"}))
        .await;
    assert_eq!(subscribed["type"], "subscribed");
    const MASK: [u8; 4] = [1, 2, 3, 4];
    let long_ping = [&[0x89, 0xfe, 0, 126][..], &MASK, &[0; 126]].concat();
    let cases: [(&str, Vec<u8>); 7] = [
        ("an unmasked frame", vec![0x81, 2, b'{', b'}']),
        ("a reserved bit", [&[0xc1, 0x80][..], &MASK].concat()),
        ("a reserved opcode", [&[0x83, 0x80][..], &MASK].concat()),
        ("a control frame over 125 bytes", long_ping),
        ("a fragmented ping", [&[0x09, 0x80][..], &MASK].concat()),
        (
            "a continuation with nothing to continue",
            [&[0x80, 0x80][..], &MASK].concat(),
        ),
        ("HTTP after the upgrade", b"GET / HTTP/1.1\r\n\r\n".to_vec()),
    ];
    for (what, bytes) in cases {
        let mut ws = app.connect(&alice_token).await;
        let MaybeTlsStream::Plain(tcp) = ws.socket.get_mut() else {
            unreachable!("the test gateway speaks plain TCP")
        };
        tcp.write_all(&bytes).await.unwrap();
        let (code, reason) = ws.closed().await;
        assert_eq!(code, 1002, "{what}: closed with {code} {reason:?}");
        assert!(!reason.is_empty(), "{what}: a reason is given");
    }
    app.core
        .publish_topic(&alice, &topic, "still here")
        .await
        .unwrap();
    let message = bystander.recv().await;
    assert_eq!(
        (&message["type"], &message["content"]),
        (&json!("message"), &json!("still here"))
    );
}
