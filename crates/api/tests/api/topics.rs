//! Topics, members, history, direct messages: every rule tried both ways.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, code, on_both_stores};

on_both_stores!(
    create_get_and_list_topics,
    private_topics_are_forbidden_to_outsiders,
    only_owner_or_admin_deletes,
    membership_rules,
    history_pages_with_next_after,
    history_scrolls_back_with_before,
    publishing_rules_and_content_limits,
    direct_history_is_for_the_two_users_only,
    topic_list_paging_is_validated,
);

async fn create_get_and_list_topics(app: &TestApp) {
    let (_, alice) = app.user("alice").await;
    let (status, topic) = app
        .post("/api/topics/", &alice, json!({"name":"news"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{topic}");
    assert_eq!(
        (
            topic["name"].as_str(),
            topic["private"].as_bool(),
            topic["owner"].as_str()
        ),
        (Some("news"), Some(false), Some("alice"))
    );
    assert!(topic["created_at"].as_str().unwrap().ends_with('Z'));
    let (status, err) = app
        .post("/api/topics/", &alice, json!({"name":"news"}))
        .await;
    assert_eq!((status, code(&err)), (StatusCode::CONFLICT, "conflict"));
    let (status, err) = app
        .post("/api/topics/", &alice, json!({"name":"alice"}))
        .await;
    assert_eq!(
        (status, code(&err)),
        (StatusCode::CONFLICT, "conflict"),
        "a username is taken for topics"
    );
    let (status, got) = app.get("/api/topics/news/", &alice).await;
    assert_eq!((status, got), (StatusCode::OK, topic));
    let (status, err) = app.get("/api/topics/nothing/", &alice).await;
    assert_eq!((status, code(&err)), (StatusCode::NOT_FOUND, "not_found"));
    let (_, members) = app.get("/api/topics/news/members/", &alice).await;
    assert_eq!(members[0]["username"], "alice", "the creator is a member");
}

async fn private_topics_are_forbidden_to_outsiders(app: &TestApp) {
    let (_, alice) = app.user("alice").await;
    let (_, bob) = app.user("bob").await;
    app.post(
        "/api/topics/",
        &alice,
        json!({"name":"secret","private":true}),
    )
    .await;
    app.post(
        "/api/topics/secret/messages/",
        &alice,
        json!({"content":"psst"}),
    )
    .await;
    for path in [
        "/api/topics/secret/",
        "/api/topics/secret/messages/",
        "/api/topics/secret/members/",
    ] {
        let (status, err) = app.get(path, &bob).await;
        assert_eq!(
            (status, code(&err)),
            (StatusCode::FORBIDDEN, "forbidden"),
            "{path}"
        );
    }
    let (status, _) = app
        .post(
            "/api/topics/secret/messages/",
            &bob,
            json!({"content":"hi"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .post(
            "/api/topics/secret/members/",
            &bob,
            json!({"username":"bob"}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "no self-join into a private topic"
    );
    let (_, list) = app.get("/api/topics/", &bob).await;
    assert_eq!(list["count"], 0);
    // The admin may read it.
    assert_eq!(
        app.get("/api/topics/secret/messages/", &app.admin).await.0,
        StatusCode::OK
    );
}

async fn only_owner_or_admin_deletes(app: &TestApp) {
    let (_, alice) = app.user("alice").await;
    let (_, bob) = app.user("bob").await;
    app.post("/api/topics/", &alice, json!({"name":"a1"})).await;
    app.post("/api/topics/", &alice, json!({"name":"a2"})).await;
    let (status, _) = app.delete("/api/topics/a1/", &bob).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.delete("/api/topics/a1/", &alice).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete("/api/topics/a2/", &app.admin).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete("/api/topics/a2/", &app.admin).await.0,
        StatusCode::NOT_FOUND
    );
}

async fn membership_rules(app: &TestApp) {
    let (_, alice) = app.user("alice").await;
    let (_, bob) = app.user("bob").await;
    let (_, carol) = app.user("carol").await;
    app.post("/api/topics/", &alice, json!({"name":"pub"}))
        .await;
    app.post(
        "/api/topics/",
        &alice,
        json!({"name":"priv","private":true}),
    )
    .await;
    // Public: self-join only.
    let (status, body) = app
        .post("/api/topics/pub/members/", &bob, json!({"username":"bob"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        app.post("/api/topics/pub/members/", &bob, json!({"username":"bob"}))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        app.post(
            "/api/topics/pub/members/",
            &bob,
            json!({"username":"carol"})
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    // Private: a member invites; outsiders cannot.
    assert_eq!(
        app.post(
            "/api/topics/priv/members/",
            &carol,
            json!({"username":"bob"})
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.post(
            "/api/topics/priv/members/",
            &alice,
            json!({"username":"bob"})
        )
        .await
        .0,
        StatusCode::CREATED
    );
    assert_eq!(
        app.post(
            "/api/topics/priv/members/",
            &bob,
            json!({"username":"carol"})
        )
        .await
        .0,
        StatusCode::CREATED
    );
    assert_eq!(
        app.post(
            "/api/topics/priv/members/",
            &alice,
            json!({"username":"ghost"})
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
    // Removal: self, owner, admin; not another member.
    assert_eq!(
        app.delete("/api/topics/priv/members/alice/", &bob).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.delete("/api/topics/priv/members/carol/", &carol)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete("/api/topics/priv/members/bob/", &alice).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete("/api/topics/pub/members/bob/", &app.admin)
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete("/api/topics/pub/members/bob/", &bob).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, members) = app.get("/api/topics/priv/members/", &alice).await;
    assert_eq!(members.as_array().unwrap().len(), 1);
}

async fn history_pages_with_next_after(app: &TestApp) {
    let (_, alice) = app.user("alice").await;
    app.post("/api/topics/", &alice, json!({"name":"log"}))
        .await;
    for i in 1..=5 {
        let (status, m) = app
            .post(
                "/api/topics/log/messages/",
                &alice,
                json!({"content": format!("m{i}")}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        assert_eq!(
            (m["seq"].as_i64(), m["topic"].as_str(), m["from"].as_str()),
            (Some(i), Some("log"), Some("alice"))
        );
    }
    let (_, first) = app.get("/api/topics/log/messages/?limit=2", &alice).await;
    assert_eq!(first["results"].as_array().unwrap().len(), 2);
    assert_eq!(first["next_after"], 2);
    let (_, rest) = app
        .get("/api/topics/log/messages/?after=2&limit=10", &alice)
        .await;
    let seqs: Vec<i64> = rest["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 4, 5]);
    assert!(rest["next_after"].is_null());
    assert_eq!(rest["results"][0]["type"], "message");
    assert_eq!(
        app.get("/api/topics/log/messages/?limit=0", &alice).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        app.get("/api/topics/log/messages/?after=-1", &alice)
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
}

async fn history_scrolls_back_with_before(app: &TestApp) {
    let (alice_user, alice) = app.user("alice").await;
    let (bob_user, bob) = app.user("bob").await;
    app.post("/api/topics/", &alice, json!({"name":"log"}))
        .await;
    for i in 1..=5 {
        app.post(
            "/api/topics/log/messages/",
            &alice,
            json!({"content": format!("m{i}")}),
        )
        .await;
    }
    let seqs = |page: &serde_json::Value| -> Vec<i64> {
        page["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["seq"].as_i64().unwrap())
            .collect()
    };
    // Beyond the newest seq: the newest page, still oldest first.
    let (status, newest) = app
        .get(
            "/api/topics/log/messages/?before=9007199254740991&limit=2",
            &alice,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(seqs(&newest), [4, 5]);
    assert_eq!(newest["prev_before"], 4);
    let (_, older) = app
        .get("/api/topics/log/messages/?before=4&limit=2", &alice)
        .await;
    assert_eq!(seqs(&older), [2, 3]);
    let (_, oldest) = app
        .get("/api/topics/log/messages/?before=2&limit=2", &alice)
        .await;
    assert_eq!(seqs(&oldest), [1]);
    assert!(oldest["prev_before"].is_null(), "the start was reached");
    for bad in ["before=0", "before=-3", "after=1&before=4"] {
        let (status, err) = app
            .get(&format!("/api/topics/log/messages/?{bad}"), &alice)
            .await;
        assert_eq!(
            (status, code(&err)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            "{bad}"
        );
    }
    // Direct history scrolls back the same way, for the two users only.
    let channel = app
        .db
        .direct_channel(alice_user.id, bob_user.id)
        .await
        .unwrap();
    for i in 1..=3 {
        app.db
            .publish(channel, &alice_user.clone().into(), &format!("d{i}"))
            .await
            .unwrap();
    }
    let (status, direct) = app
        .get("/api/direct/alice/messages/?before=3&limit=1", &bob)
        .await;
    assert_eq!(status, StatusCode::OK, "{direct}");
    assert_eq!(seqs(&direct), [2]);
    assert_eq!(direct["results"][0]["content"], "d2");
    let (_, carol) = app.user("carol").await;
    let (_, nothing) = app
        .get("/api/direct/alice/messages/?before=3", &carol)
        .await;
    assert_eq!(nothing["results"], json!([]), "not carol's conversation");
}

async fn publishing_rules_and_content_limits(app: &TestApp) {
    let (_, alice) = app.user("alice").await;
    let (_, bob) = app.user("bob").await;
    app.post("/api/topics/", &alice, json!({"name":"open"}))
        .await;
    let (status, _) = app
        .post("/api/topics/open/messages/", &bob, json!({"content":"hi"}))
        .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "anyone publishes to a public topic"
    );
    let (_, members) = app.get("/api/topics/open/members/", &alice).await;
    assert_eq!(
        members.as_array().unwrap().len(),
        1,
        "publishing does not make a member"
    );
    assert_eq!(
        app.post("/api/topics/open/messages/", &bob, json!({"content":""}))
            .await
            .0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let big = "x".repeat(16 * 1024 + 1);
    let (status, err) = app
        .post("/api/topics/open/messages/", &bob, json!({"content": big}))
        .await;
    assert_eq!(
        (status, code(&err)),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );
    assert_eq!(
        app.post("/api/topics/none/messages/", &bob, json!({"content":"x"}))
            .await
            .0,
        StatusCode::NOT_FOUND
    );
}

async fn direct_history_is_for_the_two_users_only(app: &TestApp) {
    let (alice_user, alice) = app.user("alice").await;
    let (bob_user, bob) = app.user("bob").await;
    let (_, carol) = app.user("carol").await;
    let channel = app
        .db
        .direct_channel(alice_user.id, bob_user.id)
        .await
        .unwrap();
    app.db
        .publish(channel, &alice_user.clone().into(), "hello bob")
        .await
        .unwrap();
    app.db
        .publish(channel, &bob_user.into(), "hi alice")
        .await
        .unwrap();
    let (_, from_bob) = app.get("/api/direct/alice/messages/", &bob).await;
    let texts: Vec<&str> = from_bob["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["hello bob", "hi alice"]);
    assert_eq!(from_bob["results"][0]["topic"], "@alice");
    let (_, from_alice) = app.get("/api/direct/bob/messages/", &alice).await;
    assert_eq!(from_alice["results"][1]["topic"], "@bob");
    // Carol sees only her own (empty) conversations with either of them.
    let (status, theirs) = app.get("/api/direct/alice/messages/", &carol).await;
    assert_eq!(
        (status, theirs["results"].as_array().unwrap().len()),
        (StatusCode::OK, 0)
    );
    assert_eq!(
        app.get("/api/direct/ghost/messages/", &carol).await.0,
        StatusCode::NOT_FOUND
    );
    let _ = alice_user;
}

async fn topic_list_paging_is_validated(app: &TestApp) {
    let (_, alice) = app.user("alice").await;
    for i in 0..3 {
        app.post("/api/topics/", &alice, json!({"name": format!("t{i}")}))
            .await;
    }
    let (_, page) = app.get("/api/topics/?page=2&page_size=2", &alice).await;
    assert_eq!(
        (
            page["count"].as_i64(),
            page["page"].as_i64(),
            page["page_size"].as_i64()
        ),
        (Some(3), Some(2), Some(2))
    );
    assert_eq!(page["results"][0]["name"], "t2");
    // One status for every bad query parameter, paging or history alike.
    let bad = [
        "/api/topics/?page=0",
        "/api/topics/?page_size=101",
        "/api/topics/?page_size=0",
        "/api/topics/?page=x",
        "/api/topics/t0/messages/?limit=0",
        "/api/topics/t0/messages/?limit=x",
        "/api/topics/t0/messages/?after=-1",
        "/api/audit/?page=0",
    ];
    for path in bad {
        let (status, err) = app.get(path, &app.admin).await;
        assert_eq!(
            (status, code(&err)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            "{path}"
        );
    }
}
