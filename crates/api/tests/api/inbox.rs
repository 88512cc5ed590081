//! Tags, subscriptions, notifications, the inbox and the audit log.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, code, on_both_stores};

on_both_stores!(
    tags_are_admin_only,
    subscription_rules,
    notifications_reach_subscribers_only,
    inbox_items_are_private_to_their_owner,
    inbox_paging_filter_and_read_all,
    audit_log_is_admin_only_and_records_changes,
);

async fn tag(app: &TestApp, name: &str) -> i64 {
    let (status, tag) = app
        .post("/api/tags/", &app.admin, json!({"name": name}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{tag}");
    tag["id"].as_i64().unwrap()
}

async fn notify(app: &TestApp, tag: i64, message: &str) -> Value {
    let (status, n) = app
        .post(
            "/api/notifications/",
            &app.admin,
            json!({"tag": tag, "message": message}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{n}");
    n
}

async fn tags_are_admin_only(app: &TestApp) {
    let (_, alice) = app.user("alice").await;
    assert_eq!(
        app.post("/api/tags/", &alice, json!({"name":"x"})).await.0,
        StatusCode::FORBIDDEN
    );
    let id = tag(app, "news").await;
    assert_eq!(
        app.post("/api/tags/", &app.admin, json!({"name":"news"}))
            .await
            .0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        app.post("/api/tags/", &app.admin, json!({"name":"  "}))
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (_, tags) = app.get("/api/tags/", &alice).await;
    assert_eq!(tags, json!([{"id": id, "name": "news"}]));
    assert_eq!(
        app.delete(&format!("/api/tags/{id}/"), &alice).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete(&format!("/api/tags/{id}/"), &app.admin).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&format!("/api/tags/{id}/"), &app.admin).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post(
            "/api/notifications/",
            &alice,
            json!({"tag": id, "message":"x"})
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
}

async fn subscription_rules(app: &TestApp) {
    let (alice_user, alice) = app.user("alice").await;
    let (bob_user, bob) = app.user("bob").await;
    let news = tag(app, "news").await;
    let (status, sub) = app
        .post("/api/subscriptions/", &alice, json!({"tag": news}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{sub}");
    assert_eq!(
        (sub["user"].as_i64(), sub["tag"].as_i64()),
        (Some(alice_user.id), Some(news))
    );
    assert_eq!(
        app.post("/api/subscriptions/", &alice, json!({"tag": news}))
            .await
            .0,
        StatusCode::CONFLICT
    );
    let (status, _) = app
        .post(
            "/api/subscriptions/",
            &alice,
            json!({"user": bob_user.id, "tag": news}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a user subscribes only themselves"
    );
    let (status, bob_sub) = app
        .post(
            "/api/subscriptions/",
            &app.admin,
            json!({"user": bob_user.id, "tag": news}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        app.post("/api/subscriptions/", &alice, json!({"tag": 9999}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    let (_, mine) = app.get("/api/subscriptions/", &alice).await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    let (_, all) = app.get("/api/subscriptions/", &app.admin).await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    let (_, filtered) = app
        .get(
            &format!("/api/subscriptions/?user={}", bob_user.id),
            &app.admin,
        )
        .await;
    assert_eq!(filtered[0]["user"], bob_user.id);
    let bob_sub_path = format!("/api/subscriptions/{}/", bob_sub["id"]);
    assert_eq!(
        app.delete(&bob_sub_path, &alice).await.0,
        StatusCode::NOT_FOUND,
        "not hers"
    );
    assert_eq!(
        app.delete(&bob_sub_path, &bob).await.0,
        StatusCode::NO_CONTENT
    );
}

async fn notifications_reach_subscribers_only(app: &TestApp) {
    let (_, alice) = app.user("alice").await;
    let (_, bob) = app.user("bob").await;
    let news = tag(app, "news").await;
    app.post("/api/subscriptions/", &alice, json!({"tag": news}))
        .await;
    let n = notify(app, news, "hello").await;
    assert_eq!(
        (n["tag"].as_i64(), n["message"].as_str()),
        (Some(news), Some("hello"))
    );
    let (_, inbox) = app.get("/api/notifications/", &alice).await;
    assert_eq!(inbox["count"], 1);
    let item = &inbox["results"][0];
    assert_eq!(
        (
            item["id"].clone(),
            item["notification"].clone(),
            item["is_read"].clone()
        ),
        (n["id"].clone(), n.clone(), json!(false))
    );
    assert_eq!(app.get("/api/notifications/", &bob).await.1["count"], 0);
    assert_eq!(
        app.post(
            "/api/notifications/",
            &app.admin,
            json!({"tag": 999, "message":"x"})
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.post("/api/notifications/", &app.admin, json!({"tag": news}))
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

async fn inbox_items_are_private_to_their_owner(app: &TestApp) {
    let (_, alice) = app.user("alice").await;
    let (_, bob) = app.user("bob").await;
    let news = tag(app, "news").await;
    app.post("/api/subscriptions/", &alice, json!({"tag": news}))
        .await;
    let id = notify(app, news, "for alice").await["id"].as_i64().unwrap();
    let path = format!("/api/notifications/{id}/");
    let (status, err) = app.patch(&path, &bob, json!({"is_read": true})).await;
    assert_eq!((status, code(&err)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, item) = app.patch(&path, &alice, json!({"is_read": true})).await;
    assert_eq!(
        (status, item["is_read"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let (status, _) = app.patch(&path, &alice, json!({"is_deleted": true})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.get("/api/notifications/", &alice).await.1["count"],
        0,
        "deleted items leave the list"
    );
    assert_eq!(
        app.patch(&path, &alice, json!({"is_read": false})).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.patch(&path, &alice, json!({"is_read": "yes"})).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

async fn inbox_paging_filter_and_read_all(app: &TestApp) {
    let (_, alice) = app.user("alice").await;
    let news = tag(app, "news").await;
    app.post("/api/subscriptions/", &alice, json!({"tag": news}))
        .await;
    let mut ids = vec![];
    for i in 0..7 {
        ids.push(
            notify(app, news, &format!("n{i}")).await["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let (_, page) = app
        .get("/api/notifications/?page=2&page_size=3", &alice)
        .await;
    assert_eq!(
        (
            page["count"].as_i64(),
            page["page"].as_i64(),
            page["page_size"].as_i64()
        ),
        (Some(7), Some(2), Some(3))
    );
    let got: Vec<i64> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, [ids[3], ids[2], ids[1]], "newest first");
    let (_, last) = app
        .get("/api/notifications/?page=3&page_size=3", &alice)
        .await;
    assert_eq!(last["results"].as_array().unwrap().len(), 1);
    let (_, empty) = app
        .get("/api/notifications/?page=4&page_size=3", &alice)
        .await;
    assert_eq!(empty["results"], json!([]));
    app.patch(
        &format!("/api/notifications/{}/", ids[0]),
        &alice,
        json!({"is_read": true}),
    )
    .await;
    assert_eq!(
        app.get("/api/notifications/?unread=true", &alice).await.1["count"],
        6
    );
    assert_eq!(
        app.get("/api/notifications/?unread=false", &alice).await.1["count"],
        1
    );
    assert_eq!(
        app.get("/api/notifications/?page_size=101", &alice).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        app.get("/api/notifications/?unread=maybe", &alice).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (status, body) = app
        .post("/api/notifications/read-all/", &alice, json!({}))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"updated": 6})));
    assert_eq!(
        app.get("/api/notifications/?unread=true", &alice).await.1["count"],
        0
    );
}

async fn audit_log_is_admin_only_and_records_changes(app: &TestApp) {
    let (_, alice) = app.user("alice").await;
    app.post("/api/topics/", &alice, json!({"name":"t"})).await;
    let news = tag(app, "news").await;
    app.post("/api/subscriptions/", &alice, json!({"tag": news}))
        .await;
    let id = notify(app, news, "x").await["id"].as_i64().unwrap();
    app.patch(
        &format!("/api/notifications/{id}/"),
        &alice,
        json!({"is_read": true}),
    )
    .await;
    assert_eq!(
        app.get("/api/audit/", &alice).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, log) = app.get("/api/audit/?resource=inbox_item", &app.admin).await;
    assert_eq!(status, StatusCode::OK);
    let entry = &log["results"][0];
    assert_eq!(
        (entry["actor"].as_str(), entry["action"].as_str()),
        (Some("alice"), Some("update"))
    );
    assert_eq!(
        entry["changes"],
        json!({"is_read": {"old": false, "new": true}})
    );
    let (_, topics) = app
        .get("/api/audit/?resource=topic&actor=alice", &app.admin)
        .await;
    assert_eq!(topics["count"], 1);
    assert_eq!(
        topics["results"][0]["changes"]["name"],
        json!({"old": null, "new": "t"})
    );
    let (_, all) = app.get("/api/audit/?page_size=2", &app.admin).await;
    assert!(all["count"].as_i64().unwrap() >= 6);
    assert_eq!(all["results"].as_array().unwrap().len(), 2);
}
