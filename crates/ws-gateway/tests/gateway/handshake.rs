//! Every way to present a token, and every refusal.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{Bytes, Message};

use crate::helpers::{Client, SECRET, TestGateway, on_both_stores};

on_both_stores!(
    each_token_form_opens_a_socket,
    bad_tokens_get_401_and_no_upgrade,
    refused_handshakes_leave_nothing_watched,
    disconnect_closes_normally,
    a_frame_sent_with_the_request_is_read,
    the_101_leaves_with_the_welcome,
    clients_gone_before_the_upgrade_leave_nothing_watched
);

async fn each_token_form_opens_a_socket(app: &TestGateway) {
    let (_, token) = app.user("alice").await;
    for url in [
        format!("{}/{token}", app.ws),
        format!("{}/ws?token={token}", app.ws),
        format!("{}/ws/notifications/?token={token}", app.ws),
    ] {
        let mut client = Client::open(&url).await;
        let welcome = client.recv().await;
        assert_eq!(
            (welcome["type"].as_str(), welcome["user"].as_str()),
            (Some("welcome"), Some("alice"))
        );
        assert!(welcome["session"].is_string());
    }
    // The header's scheme is case-insensitive.
    for scheme in ["Bearer", "bearer"] {
        let mut request = format!("{}/ws", app.ws).into_client_request().unwrap();
        request.headers_mut().insert(
            "Authorization",
            format!("{scheme} {token}").parse().unwrap(),
        );
        let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let mut client = Client { socket };
        assert_eq!(client.recv().await["type"], "welcome", "{scheme}");
    }
}

async fn refused(url: String) -> (u16, serde_json::Value) {
    match tokio_tungstenite::connect_async(url).await {
        Err(WsError::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            (
                response.status().as_u16(),
                serde_json::from_slice(&body).unwrap_or_default(),
            )
        }
        Ok(_) => panic!("the handshake should have been refused"),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

async fn bad_tokens_get_401_and_no_upgrade(app: &TestGateway) {
    let (alice, _) = app.user("alice").await;
    let now = domain::time::now_millis() / 1000;
    let claims = |exp: i64, kind: &str| json!({"sub":"alice","uid":alice.id,"iat":now - 100,"exp":exp,"jti":"j","token_type":kind});
    let sign =
        |claims: serde_json::Value, secret: &[u8]| domain::testing::forge_token(&claims, secret);
    let valid = sign(claims(now + 600, "access"), SECRET);
    let payload = valid.split('.').nth(1).unwrap().to_owned();
    let cases = [
        ("missing", format!("{}/ws", app.ws)),
        ("malformed", format!("{}/ws?token=not-a-jwt", app.ws)),
        (
            "expired",
            format!(
                "{}/ws?token={}",
                app.ws,
                sign(claims(now - 5, "access"), SECRET)
            ),
        ),
        (
            "forged",
            format!(
                "{}/ws?token={}",
                app.ws,
                sign(
                    claims(now + 600, "access"),
                    b"another-secret-that-is-32-bytes!"
                )
            ),
        ),
        (
            "alg none",
            format!(
                "{}/ws?token=eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.",
                app.ws
            ),
        ),
        (
            "refresh",
            format!("{}/{}", app.ws, sign(claims(now + 600, "refresh"), SECRET)),
        ),
    ];
    for (what, url) in cases {
        let (status, body) = refused(url).await;
        assert_eq!(status, 401, "{what}");
        assert_eq!(body["error"]["code"], "unauthorized", "{what}: {body}");
    }
}

async fn disconnect_closes_normally(app: &TestGateway) {
    let (_, token) = app.user("alice").await;
    let mut client = app.connect(&token).await;
    client.send(json!({"action":"disconnect"})).await;
    assert_eq!(client.closed().await.0, 1000);
}

/// A signed token names its user before the store is asked, and the
/// handshake watches that user's events first: every way the handshake
/// can still fail must let go of them.
async fn refused_handshakes_leave_nothing_watched(app: &TestGateway) {
    let (admin, _) = app.user_with("root", true).await;
    let (bob, bob_token) = app.user("bob").await;
    let (carol, carol_token) = app.user("carol").await;
    let (_, alice_token) = app.user("alice").await;
    app.db
        .update_account(&admin, bob.id, Some(false), None)
        .await
        .unwrap();
    app.db.delete_account(&admin, carol.id).await.unwrap();
    for (what, token) in [("disabled", &bob_token), ("deleted", &carol_token)] {
        let (status, body) = refused(format!("{}/ws?token={token}", app.ws)).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert_eq!(app.hub.watched_keys(), 0, "{what}");
    }
    // A good token on a request that is not a WebSocket upgrade.
    let plain = reqwest::get(format!(
        "{}/ws?token={alice_token}",
        app.ws.replacen("ws://", "http://", 1)
    ))
    .await
    .unwrap();
    assert_eq!(plain.status().as_u16(), 426);
    assert_eq!(app.hub.watched_keys(), 0, "not an upgrade");
    // And the same user's socket still opens and is watched while open.
    let client = app.connect(&alice_token).await;
    assert_eq!(app.hub.watched_keys(), 1);
    drop(client);
}

/// An upgrade request for `/ws?token=…`, as a client writes it.
fn upgrade_request(token: &str) -> String {
    format!(
        "GET /ws?token={token} HTTP/1.1\r\nHost: gateway\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// A masked client text frame (payload under 126 bytes).
fn client_text_frame(text: &str) -> Vec<u8> {
    let mask = [0x12, 0x34, 0x56, 0x78];
    let mut frame = vec![0x81, 0x80 | text.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// A client may send its first frame right behind the upgrade request,
/// in the same packet: the server reads it with the request and must hand
/// it to the session, not drop it.
async fn a_frame_sent_with_the_request_is_read(app: &TestGateway) {
    let (_, token) = app.user("alice").await;
    let address = app.ws.trim_start_matches("ws://").to_owned();
    let mut tcp = TcpStream::connect(&address).await.unwrap();
    let mut bytes = upgrade_request(&token).into_bytes();
    bytes.extend(client_text_frame(r#"{"action":"dance","ref":"first"}"#));
    tcp.write_all(&bytes).await.unwrap();
    // The response head, byte by byte, so no frame is read with it.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(tcp.read_u8().await.unwrap());
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let mut socket = WebSocketStream::from_raw_socket(tcp, Role::Client, None).await;
    let mut texts = Vec::new();
    let read = async {
        while texts.len() < 2 {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    texts.push(serde_json::from_str::<serde_json::Value>(&text).unwrap())
                }
                Some(Ok(_)) => continue,
                other => panic!("expected two frames, got {other:?}"),
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), read)
        .await
        .expect("no answer to the frame sent with the request");
    assert_eq!(texts[0]["type"], "welcome");
    assert_eq!(
        (&texts[1]["type"], &texts[1]["code"], &texts[1]["ref"]),
        (&json!("error"), &json!("unknown_action"), &json!("first"))
    );
    socket.send(Message::Ping(Bytes::new())).await.unwrap();
}

/// Clients that send an upgrade request and reset the connection at once:
/// the server may find out while writing its 101, during the upgrade, or
/// from the session's first read. Whichever it is, the user's events are
/// let go of.
async fn clients_gone_before_the_upgrade_leave_nothing_watched(app: &TestGateway) {
    let (_, token) = app.user("alice").await;
    let address = app.ws.trim_start_matches("ws://").to_owned();
    for _ in 0..20 {
        let mut tcp = TcpStream::connect(&address).await.unwrap();
        tcp.write_all(upgrade_request(&token).as_bytes())
            .await
            .unwrap();
        // Closing with a zero linger sends a reset instead of a FIN.
        tcp.set_zero_linger().unwrap();
        drop(tcp);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.hub.watched_keys() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.hub.watched_keys(), 0);
    // The server is still fine.
    let mut client = app.connect(&token).await;
    client.send(json!({"action":"disconnect"})).await;
    assert_eq!(client.closed().await.0, 1000);
}

/// The 101 is held until the welcome is written, and both leave in one
/// send: a client's first read after its request finds both (one segment
/// arrives whole), instead of a 101 alone and a second wake-up later.
async fn the_101_leaves_with_the_welcome(app: &TestGateway) {
    let (_, token) = app.user("alice").await;
    let address = app.ws.trim_start_matches("ws://").to_owned();
    let mut tcp = TcpStream::connect(&address).await.unwrap();
    tcp.write_all(upgrade_request(&token).as_bytes())
        .await
        .unwrap();
    let mut first = vec![0; 4096];
    let n = tcp.read(&mut first).await.unwrap();
    let text = String::from_utf8_lossy(&first[..n]);
    let (head, frames) = text.split_once("\r\n\r\n").expect("a whole response head");
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        frames.contains(r#""type":"welcome""#),
        "first read: {text:?}"
    );
}
