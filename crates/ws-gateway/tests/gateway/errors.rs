//! Every error code, each leaving the socket open, with `ref` echoed.

use serde_json::json;

use crate::helpers::{TestGateway, on_both_stores};

on_both_stores!(bad_frames_get_their_codes_and_the_socket_survives);

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
