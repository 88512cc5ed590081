//! The real `wscat` client (npm) against the gateway: what the README
//! shows a user must work as shown.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;

use crate::helpers::{PATIENCE, TestGateway};

/// `wscat` prints frames it receives after the first as `> {json}`.
fn frame_of(line: &str) -> Option<Value> {
    serde_json::from_str(
        line.trim()
            .trim_start_matches("> ")
            .trim_start_matches("< "),
    )
    .ok()
}

#[tokio::test]
async fn wscat_subscribes_publishes_and_sees_errors() {
    if Command::new("wscat")
        .arg("--version")
        .output()
        .await
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "wscat must be installed in CI (npm install -g wscat)"
        );
        eprintln!("skipped: wscat is not installed");
        return;
    }
    let app = TestGateway::spawn(domain::testing::Flavor::Sqlite)
        .await
        .unwrap();
    let (alice, alice_token) = app.user("alice").await;
    app.topic(&alice, "news", false).await;
    let mut child = Command::new("wscat")
        .args([
            "--no-color",
            "-c",
            &format!("{}/ws?token={alice_token}", app.ws),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || loop {
        let line = tokio::time::timeout(PATIENCE, lines.next_line())
            .await
            .unwrap()
            .unwrap()
            .expect("wscat output");
        if let Some(frame) = frame_of(&line) {
            return frame;
        }
    };
    assert_eq!(next().await["type"], "welcome");
    stdin
        .write_all(b"{\"action\":\"subscribe\",\"topic_name\":\"news\",\"ref\":\"s\"}\n")
        .await
        .unwrap();
    assert_eq!(next().await["type"], "subscribed");
    stdin.write_all(b"{\"action\":\"message\",\"topic_name\":\"news\",\"content\":\"from wscat\",\"ref\":2}\n").await.unwrap();
    let ack = next().await;
    assert_eq!(
        (
            ack["type"].as_str(),
            ack["ref"].as_i64(),
            ack["seq"].as_i64()
        ),
        (Some("ack"), Some(2), Some(1))
    );
    stdin.write_all(b"this is not json\n").await.unwrap();
    assert_eq!(next().await["code"], "bad_json");
    let history = app
        .db
        .messages_after(app.db.topic("news").await.unwrap().unwrap().id, 0, 10, None)
        .await
        .unwrap();
    assert_eq!(history[0].content, "from wscat");
    drop(stdin);
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
}
