//! Notifications pushed live (also from REST) and inbox state kept in step
//! on every socket.

use reqwest::Method;
use serde_json::json;

use crate::helpers::{TestGateway, on_both_stores};

on_both_stores!(
    rest_notifications_are_pushed_live,
    inbox_actions_reach_every_socket,
    another_users_inbox_item_is_not_found_over_the_socket,
);

async fn rest_notifications_are_pushed_live(app: &TestGateway) {
    let (_, admin_token) = app.user_with("root", true).await;
    let (bob, bob_token) = app.user("bob").await;
    let (_, tag) = app
        .rest(
            Method::POST,
            "/api/tags/",
            &admin_token,
            json!({"name":"news"}),
        )
        .await;
    let (status, _) = app
        .rest(
            Method::POST,
            "/api/subscriptions/",
            &bob_token,
            json!({"tag": tag["id"]}),
        )
        .await;
    assert_eq!(status, 201);
    let mut ws = app.connect(&bob_token).await;
    let (status, created) = app
        .rest(
            Method::POST,
            "/api/notifications/",
            &admin_token,
            json!({"tag": tag["id"], "message":"hello"}),
        )
        .await;
    assert_eq!(status, 201);
    let pushed = ws.recv().await;
    assert_eq!(
        pushed,
        json!({"type":"notification","id": created["id"],"notification": created,"is_read": false})
    );
    let list = ws
        .request(json!({"type":"notifications_list","page":1,"page_size":5}))
        .await;
    assert_eq!(
        (list["count"].as_i64(), list["total_pages"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(list["results"][0]["id"], created["id"]);
    let _ = bob;
}

async fn inbox_actions_reach_every_socket(app: &TestGateway) {
    let (root, _) = app.user_with("root", true).await;
    let (bob, bob_token) = app.user("bob").await;
    let tag = app.core.create_tag(&root, "news").await.unwrap();
    app.core.subscribe_tag(&bob, bob.id, tag.id).await.unwrap();
    let first = app
        .core
        .create_notification(&root, tag.id, "one")
        .await
        .unwrap()
        .id;
    let second = app
        .core
        .create_notification(&root, tag.id, "two")
        .await
        .unwrap()
        .id;
    let mut phone = app.connect(&bob_token).await;
    let mut laptop = app.connect(&bob_token).await;
    for ws in [&mut phone, &mut laptop] {
        assert_eq!(ws.recv().await["id"], first);
        assert_eq!(ws.recv().await["id"], second);
    }
    let ok = phone
        .request(json!({"action":"mark_read","id": first}))
        .await;
    assert_eq!(ok["type"], "ok");
    assert_eq!(phone.recv().await, json!({"type":"read","id": first}));
    assert_eq!(laptop.recv().await, json!({"type":"read","id": first}));
    laptop.request(json!({"type":"deleted","id": second})).await;
    for ws in [&mut phone, &mut laptop] {
        assert_eq!(ws.recv().await, json!({"type":"delete","id": second}));
    }
    // A change made over REST reaches the sockets too.
    let (status, _) = app
        .rest(
            Method::PATCH,
            &format!("/api/notifications/{first}/"),
            &bob_token,
            json!({"is_read": false}),
        )
        .await;
    assert_eq!(status, 200);
    for ws in [&mut phone, &mut laptop] {
        assert_eq!(ws.recv().await, json!({"type":"unread","id": first}));
    }
    let list = laptop.request(json!({"action":"notifications_list"})).await;
    assert_eq!(list["count"], 1);
    assert_eq!(list["results"][0]["is_read"], false);
    // Read-all is one frame per socket, naming how far it reaches.
    let (status, _) = app
        .rest(
            Method::POST,
            "/api/notifications/read-all/",
            &bob_token,
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    for ws in [&mut phone, &mut laptop] {
        assert_eq!(ws.recv().await, json!({"type":"read_all","up_to": second}));
        ws.expect_quiet().await;
    }
}

async fn another_users_inbox_item_is_not_found_over_the_socket(app: &TestGateway) {
    let (root, _) = app.user_with("root", true).await;
    let (alice, alice_token) = app.user("alice").await;
    let (_, bob_token) = app.user("bob").await;
    let tag = app.core.create_tag(&root, "news").await.unwrap();
    app.core
        .subscribe_tag(&alice, alice.id, tag.id)
        .await
        .unwrap();
    let id = app
        .core
        .create_notification(&root, tag.id, "for alice")
        .await
        .unwrap()
        .id;
    let mut mallory = app.connect(&bob_token).await;
    for frame in [
        json!({"action":"mark_read","id": id}),
        json!({"action":"delete","id": id}),
    ] {
        let reply = mallory.request(frame.clone()).await;
        assert_eq!(reply["code"], "not_found", "{frame}");
    }
    let mut owner = app.connect(&alice_token).await;
    assert_eq!(owner.recv().await["id"], id, "still delivered, untouched");
    let list = owner.request(json!({"action":"notifications_list"})).await;
    assert_eq!(
        (
            list["count"].as_i64(),
            list["results"][0]["is_read"].as_bool()
        ),
        (Some(1), Some(false))
    );
}
