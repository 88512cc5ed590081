//! Logs never carry message contents or tokens, even at `RUST_LOG=trace`.

use std::time::Duration;

use domain::auth::{JwtKeys, TokenType};
use serde_json::json;

use crate::delivery::connect;
use crate::processes::{binary, free_port, start_logged, terminate, wait_ready};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_logs_carry_no_contents_and_no_tokens() {
    let _turn = crate::processes::one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("tidings.db").display());
    let store = domain::store::Store::connect(&url, 1).await.unwrap();
    let alice = domain::testing::user(&store, "alice", false).await;
    let bob = domain::testing::user(&store, "bob", false).await;
    store.close().await;
    let keys = JwtKeys::new(
        crate::cluster::SECRET.as_bytes(),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    )
    .unwrap();
    let (alice_token, bob_token) = (
        keys.issue(&alice, TokenType::Access).unwrap(),
        keys.issue(&bob, TokenType::Access).unwrap(),
    );
    let (api_port, ws_port) = (free_port(), free_port());
    let log = dir.path().join("trace.log");
    let mut child = start_logged(
        binary("tidings"),
        &[
            ("DATABASE_URL", url),
            ("JWT_SECRET", crate::cluster::SECRET.to_owned()),
            ("TIDINGS_API_ADDR", format!("127.0.0.1:{api_port}")),
            ("TIDINGS_WS_ADDR", format!("127.0.0.1:{ws_port}")),
            ("RUST_LOG", "trace".to_owned()),
        ],
        &log,
    );
    let api = format!("http://127.0.0.1:{api_port}");
    wait_ready(&api).await;
    let gateway = format!("127.0.0.1:{ws_port}");
    let mut receiver = connect(&gateway, &bob_token).await;
    let mut sender = connect(&gateway, &alice_token).await;
    let secret = "a-content-nobody-may-log-7f3a";
    let ack = sender
        .request(json!({"action":"message","topic_name":"@bob","content":secret}))
        .await;
    assert_eq!(ack["type"], "ack");
    assert_eq!(receiver.recv().await["content"], secret);
    let response = reqwest::Client::new()
        .get(format!("{api}/api/direct/bob/messages/"))
        .bearer_auth(&alice_token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    terminate(&child);
    let _ = tokio::time::timeout(Duration::from_secs(30), child.wait()).await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().count() > 10, "trace logging is on: {text}");
    assert!(!text.contains(secret), "a message content was logged");
    for token in [&alice_token, &bob_token] {
        assert!(!text.contains(token.as_str()), "a token was logged");
    }
}
