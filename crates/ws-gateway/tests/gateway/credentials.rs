//! Credentials taken back while sockets are open: the sockets that used
//! the dead credential close with 4003, the others stay, and the dead
//! credential opens nothing more. API keys open sockets too.

use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Error as WsError;

use crate::helpers::{Client, TestGateway, on_both_stores};

on_both_stores!(
    a_password_change_closes_the_users_sockets_with_4003,
    an_api_key_opens_a_socket_until_it_is_deleted,
    logging_out_closes_that_sessions_sockets_only,
    disabling_closes_every_socket_of_the_user,
);

const PASSWORD: &str = domain::testing::TEST_PASSWORD;

/// The handshake's status: 101 when it upgrades.
async fn handshake(app: &TestGateway, credential: &str) -> (u16, Value) {
    match tokio_tungstenite::connect_async(format!("{}/ws?token={credential}", app.ws)).await {
        Ok(_) => (101, Value::Null),
        Err(WsError::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            (
                response.status().as_u16(),
                serde_json::from_slice(&body).unwrap_or_default(),
            )
        }
        Err(other) => panic!("{other}"),
    }
}

async fn login(app: &TestGateway, username: &str) -> (String, String) {
    let (status, body) = app
        .rest(
            Method::POST,
            "/api/token/",
            "",
            json!({"username": username, "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    (
        body["access"].as_str().unwrap().to_owned(),
        body["refresh"].as_str().unwrap().to_owned(),
    )
}

/// The socket still answers.
async fn alive(client: &mut Client) {
    let reply = client
        .request(json!({"type":"notifications_list","page":1}))
        .await;
    assert_eq!(reply["type"], "notifications_list", "{reply}");
}

async fn a_password_change_closes_the_users_sockets_with_4003(app: &TestGateway) {
    let (_, alice) = app.user("alice").await;
    let (_, bob) = app.user("bob").await;
    let mut first = app.connect(&alice).await;
    let mut second = app.connect(&alice).await;
    let mut bystander = app.connect(&bob).await;
    let (status, _) = app
        .rest(
            Method::POST,
            "/api/users/me/password/",
            &alice,
            json!({"old": PASSWORD, "new": "a brand new password"}),
        )
        .await;
    assert_eq!(status, 204);
    for socket in [&mut first, &mut second] {
        let (code, reason) = socket.closed().await;
        assert_eq!((code, reason.as_str()), (4003, "credential revoked"));
    }
    alive(&mut bystander).await;
    let (status, body) = handshake(app, &alice).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"]["message"], "the credential was revoked");
}

async fn an_api_key_opens_a_socket_until_it_is_deleted(app: &TestGateway) {
    let (alice, token) = app.user("alice").await;
    app.topic(&alice, "deploys", false).await;
    let (status, created) = app
        .rest(Method::POST, "/api/keys/", &token, json!({"name":"bot"}))
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let mut by_key = Client::open(&format!("{}/ws?token={key}", app.ws)).await;
    let welcome = by_key.recv().await;
    assert_eq!(
        (welcome["type"].as_str(), welcome["user"].as_str()),
        (Some("welcome"), Some("alice"))
    );
    let ack = by_key
        .request(json!({"action":"message","topic_name":"deploys","content":"v2 is out"}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let mut by_token = app.connect(&token).await;
    let path = format!("/api/keys/{}/", created["id"]);
    let (status, _) = app.rest(Method::DELETE, &path, &token, Value::Null).await;
    assert_eq!(status, 204);
    assert_eq!(by_key.closed().await.0, 4003);
    alive(&mut by_token).await;
    assert_eq!(handshake(app, &key).await.0, 401, "a deleted key");
    assert_eq!(handshake(app, "tdk_made-up").await.0, 401);
}

async fn logging_out_closes_that_sessions_sockets_only(app: &TestGateway) {
    app.user("alice").await;
    let (phone, phone_refresh) = login(app, "alice").await;
    let (laptop, _) = login(app, "alice").await;
    let mut on_phone = app.connect(&phone).await;
    let mut on_laptop = app.connect(&laptop).await;
    let (status, _) = app
        .rest(
            Method::POST,
            "/api/token/revoke/",
            "",
            json!({"refresh": phone_refresh}),
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(on_phone.closed().await.0, 4003);
    alive(&mut on_laptop).await;
    assert_eq!(handshake(app, &phone).await.0, 401);
    assert_eq!(handshake(app, &laptop).await.0, 101);
}

async fn disabling_closes_every_socket_of_the_user(app: &TestGateway) {
    let (alice, token) = app.user("alice").await;
    let (_, admin) = app.user_with("admin", true).await;
    let (_, created) = app
        .rest(Method::POST, "/api/keys/", &token, json!({"name":"bot"}))
        .await;
    let key = created["key"].as_str().unwrap().to_owned();
    let mut by_token = app.connect(&token).await;
    let mut by_key = Client::open(&format!("{}/ws?token={key}", app.ws)).await;
    assert_eq!(by_key.recv().await["type"], "welcome");
    let (status, _) = app
        .rest(
            Method::PATCH,
            &format!("/api/users/{}/", alice.id),
            &admin,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(by_token.closed().await.0, 4003);
    assert_eq!(by_key.closed().await.0, 4003);
    assert_eq!(handshake(app, &token).await.0, 401);
    assert_eq!(handshake(app, &key).await.0, 401);
}
