//! Accounts and credentials: who may manage users, and that every
//! credential taken back (disable, delete, password change, logout, a
//! deleted key) stops working at once, while the others live on.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, code, on_both_stores};

on_both_stores!(
    only_admins_list_disable_and_delete_users,
    disabling_ends_every_credential_and_enabling_brings_none_back,
    a_password_change_ends_every_earlier_token_but_not_keys,
    only_admins_set_another_users_password,
    logging_out_ends_that_session_only,
    api_keys_act_as_their_user_until_deleted,
    a_deleted_user_loses_access_and_memberships_but_not_messages,
    credential_changes_are_audited,
);

async fn login(app: &TestApp, username: &str, password: &str) -> (StatusCode, Value) {
    app.call(
        Method::POST,
        "/api/token/",
        None,
        Some(json!({"username": username, "password": password})),
    )
    .await
}

/// An access and a refresh token of a fresh login.
async fn session(app: &TestApp, username: &str) -> (String, String) {
    let (status, body) = login(app, username, PASSWORD).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        body["access"].as_str().unwrap().to_owned(),
        body["refresh"].as_str().unwrap().to_owned(),
    )
}

async fn me(app: &TestApp, credential: &str) -> StatusCode {
    app.call(Method::GET, "/api/users/me/", Some(credential), None)
        .await
        .0
}

async fn new_key(app: &TestApp, token: &str, body: Value) -> (i64, String) {
    let (status, key) = app
        .call(Method::POST, "/api/keys/", Some(token), Some(body))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    (
        key["id"].as_i64().unwrap(),
        key["key"].as_str().unwrap().to_owned(),
    )
}

async fn only_admins_list_disable_and_delete_users(app: &TestApp) {
    let (_, alice) = app.user("alice").await;
    let (bob, _) = app.user("bob").await;
    let path = format!("/api/users/{}/", bob.id);
    let (status, _) = app
        .call(Method::GET, "/api/users/", Some(&alice), None)
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(
            Method::PATCH,
            &path,
            Some(&alice),
            Some(json!({"is_active": false})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(
            Method::PATCH,
            &path,
            Some(&alice),
            Some(json!({"is_admin": true})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.call(Method::DELETE, &path, Some(&alice), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Bob is untouched.
    let (status, page) = app
        .call(
            Method::GET,
            "/api/users/?page=1&page_size=10",
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let listed: Vec<(&str, bool)> = page["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["username"].as_str().unwrap(),
                u["is_active"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, [("admin", true), ("alice", true), ("bob", true)]);
    assert!(page["results"][0]["created_at"].is_string());
    // An admin promotes: the new admin's rights hold on their next request.
    let (status, promoted) = app
        .call(
            Method::PATCH,
            &path,
            Some(&app.admin),
            Some(json!({"is_admin": true})),
        )
        .await;
    assert_eq!(
        (status, promoted["is_admin"].as_bool()),
        (StatusCode::OK, Some(true))
    );
    let (bob_token, _) = session(app, "bob").await;
    let (status, body) = app
        .call(Method::GET, "/api/users/", Some(&bob_token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // An admin cannot lock themselves out.
    let (admin_id, _) = (page["results"][0]["id"].as_i64().unwrap(), ());
    let own = format!("/api/users/{admin_id}/");
    let (status, _) = app
        .call(
            Method::PATCH,
            &own,
            Some(&app.admin),
            Some(json!({"is_active": false})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app.call(Method::DELETE, &own, Some(&app.admin), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = app
        .call(
            Method::PATCH,
            "/api/users/999999/",
            Some(&app.admin),
            Some(json!({"is_active": false})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn disabling_ends_every_credential_and_enabling_brings_none_back(app: &TestApp) {
    let (alice, _) = app.user("alice").await;
    let (access, refresh) = session(app, "alice").await;
    let (_, key) = new_key(app, &access, json!({"name":"bot"})).await;
    assert_eq!(me(app, &access).await, StatusCode::OK);
    assert_eq!(me(app, &key).await, StatusCode::OK);
    let path = format!("/api/users/{}/", alice.id);
    let (status, user) = app
        .call(
            Method::PATCH,
            &path,
            Some(&app.admin),
            Some(json!({"is_active": false})),
        )
        .await;
    assert_eq!(
        (status, user["is_active"].as_bool()),
        (StatusCode::OK, Some(false))
    );
    assert_eq!(me(app, &access).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(app, &key).await, StatusCode::UNAUTHORIZED);
    let (status, body) = login(app, "alice", PASSWORD).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a disabled user logs in: {body}"
    );
    let (status, _) = app
        .call(
            Method::POST,
            "/api/token/refresh/",
            None,
            Some(json!({"refresh": refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Enabled again: new logins work, the old token does not come back;
    // the key does (keys die with a delete, not a disable).
    let (status, _) = app
        .call(
            Method::PATCH,
            &path,
            Some(&app.admin),
            Some(json!({"is_active": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me(app, &access).await, StatusCode::UNAUTHORIZED);
    let (fresh, _) = session(app, "alice").await;
    assert_eq!(me(app, &fresh).await, StatusCode::OK);
    assert_eq!(me(app, &key).await, StatusCode::OK);
}

async fn only_admins_set_another_users_password(app: &TestApp) {
    let (alice, _) = app.user("alice").await;
    let (_, bob) = app.user("bob").await;
    let (_, admin) = app.user_with("root", true).await;
    let (alice_token, _) = session(app, "alice").await;
    let (_, key) = new_key(app, &alice_token, json!({"name":"bot"})).await;
    let reset = |token: String, id: i64, new: &'static str| async move {
        app.call(
            Method::POST,
            &format!("/api/users/{id}/password/"),
            Some(&token),
            Some(json!({"new": new})),
        )
        .await
    };
    let (status, err) = reset(bob.clone(), alice.id, "bobs choice of password").await;
    assert_eq!((status, code(&err)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, _) = reset(alice_token.clone(), alice.id, "alice by herself").await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "users change theirs with the old one"
    );
    let (status, _) = reset(admin.clone(), alice.id, "short").await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = reset(admin.clone(), 999_999, "a password long enough").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        me(app, &alice_token).await,
        StatusCode::OK,
        "refusals change nothing"
    );
    assert_eq!(login(app, "alice", PASSWORD).await.0, StatusCode::OK);

    let (status, _) = reset(admin.clone(), alice.id, "set by the admin").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(me(app, &alice_token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login(app, "alice", PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(app, "alice", "set by the admin").await.0,
        StatusCode::OK
    );
    assert_eq!(me(app, &key).await, StatusCode::OK, "API keys live on");
    let (_, audit) = app.get("/api/audit/?resource=user", &admin).await;
    assert!(
        audit["results"].as_array().unwrap().iter().any(|entry| {
            entry["actor"] == "root"
                && entry["resource_id"] == json!(alice.id.to_string())
                && entry["changes"].get("password").is_some()
        }),
        "{audit}"
    );
}

async fn a_password_change_ends_every_earlier_token_but_not_keys(app: &TestApp) {
    app.user("alice").await;
    let (first, first_refresh) = session(app, "alice").await;
    let (second, _) = session(app, "alice").await;
    let (_, key) = new_key(app, &first, json!({"name":"bot"})).await;
    let change = |old: &str, new: &str| json!({"old": old, "new": new});
    let (status, _) = app
        .call(
            Method::POST,
            "/api/users/me/password/",
            Some(&first),
            Some(change("not the password", "a brand new password")),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a wrong current password");
    let (status, _) = app
        .call(
            Method::POST,
            "/api/users/me/password/",
            Some(&first),
            Some(change(PASSWORD, "short")),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        me(app, &first).await,
        StatusCode::OK,
        "refusals change nothing"
    );
    let (status, _) = app
        .call(
            Method::POST,
            "/api/users/me/password/",
            Some(&first),
            Some(change(PASSWORD, "a brand new password")),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(me(app, &first).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(app, &second).await, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .call(
            Method::POST,
            "/api/token/refresh/",
            None,
            Some(json!({"refresh": first_refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login(app, "alice", PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(app, "alice", "a brand new password").await.0,
        StatusCode::OK
    );
    assert_eq!(me(app, &key).await, StatusCode::OK, "keys live on");
}

async fn logging_out_ends_that_session_only(app: &TestApp) {
    app.user("alice").await;
    let (phone, phone_refresh) = session(app, "alice").await;
    let (laptop, laptop_refresh) = session(app, "alice").await;
    // An access token minted from the phone's refresh token belongs to it too.
    let (status, minted) = app
        .call(
            Method::POST,
            "/api/token/refresh/",
            None,
            Some(json!({"refresh": phone_refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let minted = minted["access"].as_str().unwrap().to_owned();
    let revoke = |refresh: &str| json!({"refresh": refresh});
    let (status, _) = app
        .call(
            Method::POST,
            "/api/token/revoke/",
            None,
            Some(revoke(&phone_refresh)),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(me(app, &phone).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(app, &minted).await, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .call(
            Method::POST,
            "/api/token/refresh/",
            None,
            Some(revoke(&phone_refresh)),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a refresh token used after revoke"
    );
    let (status, _) = app
        .call(
            Method::POST,
            "/api/token/revoke/",
            None,
            Some(revoke(&phone_refresh)),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked twice");
    assert_eq!(
        me(app, &laptop).await,
        StatusCode::OK,
        "the other session lives"
    );
    let (status, _) = app
        .call(
            Method::POST,
            "/api/token/refresh/",
            None,
            Some(revoke(&laptop_refresh)),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    // An access token is not a refresh token.
    let (status, _) = app
        .call(
            Method::POST,
            "/api/token/revoke/",
            None,
            Some(revoke(&laptop)),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn api_keys_act_as_their_user_until_deleted(app: &TestApp) {
    let (alice, alice_token) = app.user("alice").await;
    let (bob, bob_token) = app.user("bob").await;
    let (id, key) = new_key(app, &alice_token, json!({"name":"deploy bot"})).await;
    assert!(key.starts_with("tdk_") && key.len() > 40);
    let (status, who) = app
        .call(Method::GET, "/api/users/me/", Some(&key), None)
        .await;
    assert_eq!(
        (status, who["username"].as_str()),
        (StatusCode::OK, Some("alice"))
    );
    let (status, topic) = app
        .call(
            Method::POST,
            "/api/topics/",
            Some(&key),
            Some(json!({"name":"deploys"})),
        )
        .await;
    assert_eq!(
        (status, topic["owner"].as_str()),
        (StatusCode::CREATED, Some("alice"))
    );
    // Listed without the key, to its user only, with when it was last used
    // (noted off the request's path).
    let mut listed = Value::Null;
    for _ in 0..50 {
        listed = app
            .call(Method::GET, "/api/keys/", Some(&alice_token), None)
            .await
            .1;
        if listed[0]["last_used_at"].is_string() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
    }
    assert!(listed[0]["last_used_at"].is_string(), "{listed}");
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["name"], "deploy bot");
    assert_eq!(listed[0]["user"], alice.id);
    assert!(listed[0].get("key").is_none() && !listed.to_string().contains(&key));
    let (_, bobs) = app
        .call(Method::GET, "/api/keys/", Some(&bob_token), None)
        .await;
    assert_eq!(bobs, json!([]));
    // Someone else's key is not there to delete.
    let path = format!("/api/keys/{id}/");
    let (status, _) = app
        .call(Method::DELETE, &path, Some(&bob_token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(me(app, &key).await, StatusCode::OK);
    // Only admins make keys for others.
    let (status, _) = app
        .call(
            Method::POST,
            "/api/keys/",
            Some(&alice_token),
            Some(json!({"name":"x","user": bob.id})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, for_bob) = new_key(app, &app.admin, json!({"name":"bob's bot","user": bob.id})).await;
    let (_, who) = app
        .call(Method::GET, "/api/users/me/", Some(&for_bob), None)
        .await;
    assert_eq!(who["username"], "bob");
    // An admin sees every key; bob sees his own.
    let (_, all) = app
        .call(Method::GET, "/api/keys/", Some(&app.admin), None)
        .await;
    let owners: Vec<i64> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["user"].as_i64().unwrap())
        .collect();
    assert_eq!(owners, [alice.id, bob.id]);
    let (_, bobs) = app
        .call(Method::GET, "/api/keys/", Some(&bob_token), None)
        .await;
    assert_eq!(bobs.as_array().unwrap().len(), 1);
    // Deleted: dead at once; a made-up key never worked.
    let (status, _) = app
        .call(Method::DELETE, &path, Some(&alice_token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        me(app, &key).await,
        StatusCode::UNAUTHORIZED,
        "a deleted key is used"
    );
    assert_eq!(me(app, "tdk_made-up").await, StatusCode::UNAUTHORIZED);
    let (status, _) = app
        .call(
            Method::POST,
            "/api/keys/",
            Some(&alice_token),
            Some(json!({"name":""})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn a_deleted_user_loses_access_and_memberships_but_not_messages(app: &TestApp) {
    let (_, alice) = app.user("alice").await;
    let (bob, bob_token) = app.user("bob").await;
    let (_, key) = new_key(app, &bob_token, json!({"name":"bot"})).await;
    app.call(
        Method::POST,
        "/api/topics/",
        Some(&alice),
        Some(json!({"name":"news"})),
    )
    .await;
    let (status, _) = app
        .call(
            Method::POST,
            "/api/topics/news/members/",
            Some(&bob_token),
            Some(json!({"username":"bob"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = app
        .call(
            Method::POST,
            "/api/topics/news/messages/",
            Some(&bob_token),
            Some(json!({"content":"from bob"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, tag) = app
        .call(
            Method::POST,
            "/api/tags/",
            Some(&app.admin),
            Some(json!({"name":"deploys"})),
        )
        .await;
    let (status, _) = app
        .call(
            Method::POST,
            "/api/subscriptions/",
            Some(&bob_token),
            Some(json!({"tag": tag["id"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let path = format!("/api/users/{}/", bob.id);
    let (status, _) = app
        .call(Method::DELETE, &path, Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(me(app, &bob_token).await, StatusCode::UNAUTHORIZED);
    assert_eq!(me(app, &key).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        login(app, "bob", PASSWORD).await.0,
        StatusCode::UNAUTHORIZED
    );
    let (_, members) = app
        .call(Method::GET, "/api/topics/news/members/", Some(&alice), None)
        .await;
    let names: Vec<&str> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice"]);
    let (_, history) = app
        .call(
            Method::GET,
            "/api/topics/news/messages/",
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(history["results"][0]["from"], "bob");
    assert_eq!(history["results"][0]["content"], "from bob");
    let (_, subscriptions) = app
        .call(
            Method::GET,
            &format!("/api/subscriptions/?user={}", bob.id),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(subscriptions, json!([]), "their subscriptions go");
    // Gone from the list, the name stays taken, and twice is a 404.
    let (_, page) = app
        .call(Method::GET, "/api/users/", Some(&app.admin), None)
        .await;
    assert!(!page.to_string().contains("\"bob\""));
    let (status, _) = app
        .call(
            Method::POST,
            "/api/users/",
            Some(&app.admin),
            Some(json!({"username":"bob","password":"another password"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = app
        .call(Method::DELETE, &path, Some(&app.admin), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn credential_changes_are_audited(app: &TestApp) {
    let (alice, _) = app.user("alice").await;
    let (access, refresh) = session(app, "alice").await;
    let (key_id, _) = new_key(app, &access, json!({"name":"bot"})).await;
    app.call(
        Method::DELETE,
        &format!("/api/keys/{key_id}/"),
        Some(&access),
        None,
    )
    .await;
    app.call(
        Method::POST,
        "/api/token/revoke/",
        None,
        Some(json!({"refresh": refresh})),
    )
    .await;
    let (fresh, _) = session(app, "alice").await;
    app.call(
        Method::POST,
        "/api/users/me/password/",
        Some(&fresh),
        Some(json!({"old": PASSWORD, "new": "a brand new password"})),
    )
    .await;
    let path = format!("/api/users/{}/", alice.id);
    app.call(
        Method::PATCH,
        &path,
        Some(&app.admin),
        Some(json!({"is_active": false})),
    )
    .await;
    app.call(Method::DELETE, &path, Some(&app.admin), None)
        .await;
    let (_, log) = app
        .call(
            Method::GET,
            "/api/audit/?page_size=100",
            Some(&app.admin),
            None,
        )
        .await;
    let entries: Vec<(String, String, String)> = log["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or("-").to_owned(),
                e["resource"].as_str().unwrap().to_owned(),
                e["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for expected in [
        ("alice", "api_key", "create"),
        ("alice", "api_key", "delete"),
        ("alice", "token", "revoke"),
        ("alice", "user", "update"),
        ("admin", "user", "update"),
        ("admin", "user", "delete"),
    ] {
        let expected = (
            expected.0.to_owned(),
            expected.1.to_owned(),
            expected.2.to_owned(),
        );
        assert!(entries.contains(&expected), "{expected:?} in {entries:?}");
    }
    assert!(
        !log.to_string().contains(&refresh) && !log.to_string().contains("a brand new password"),
        "no secret in the audit log"
    );
}
