//! Hostile input: text one store could keep and the other could not (NUL)
//! is refused alike on both, with 422, wherever it enters, and nothing
//! else is lost to it.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, code, on_both_stores};

on_both_stores!(
    paging_bounds_hold_at_both_edges,
    nul_is_refused_everywhere_alike,
    failed_logins_are_throttled_per_username,
    a_concurrent_login_flood_is_cut_off,
);

/// Every paging and history bound of the OpenAPI document, just inside
/// (answered) and just outside (422 naming the field), on every kind of
/// long list: numbers a client controls never reach the store unchecked.
async fn paging_bounds_hold_at_both_edges(app: &TestApp) {
    let (_, alice) = app.user("alice").await;
    app.post("/api/topics/", &alice, json!({"name":"open"}))
        .await;
    let lists = [
        "/api/topics/",
        "/api/users/",
        "/api/notifications/",
        "/api/audit/",
    ];
    let pages = [
        ("page=1", true),
        ("page=4294967295", true),
        ("page=0", false),
        ("page=4294967296", false),
        ("page=-1", false),
        ("page_size=1", true),
        ("page_size=100", true),
        ("page_size=0", false),
        ("page_size=101", false),
    ];
    for list in lists {
        for (query, fine) in pages {
            let (status, body) = app.get(&format!("{list}?{query}"), &app.admin).await;
            if fine {
                assert_eq!(status, StatusCode::OK, "{list}?{query}: {body}");
            } else {
                assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{list}?{query}");
                let field = query.split('=').next().unwrap();
                let message = body["error"]["message"].as_str().unwrap();
                assert!(message.starts_with(field), "{list}?{query}: {message}");
            }
        }
    }
    for history in ["/api/topics/open/messages/", "/api/direct/alice/messages/"] {
        for (query, fine) in [
            ("limit=1", true),
            ("limit=1000", true),
            ("after=0", true),
            ("before=1", true),
            ("limit=0", false),
            ("limit=1001", false),
            ("after=-1", false),
            ("before=0", false),
            ("after=0&before=5", false),
        ] {
            let (status, _) = app.get(&format!("{history}?{query}"), &app.admin).await;
            let expected = if fine {
                StatusCode::OK
            } else {
                StatusCode::UNPROCESSABLE_ENTITY
            };
            assert_eq!(status, expected, "{history}?{query}");
        }
    }
}

/// Behind a trusted proxy each forwarded address has its own allowance.
#[tokio::test]
async fn behind_a_trusted_proxy_each_client_address_is_throttled_apart() {
    let config = tidings_api::ApiConfig {
        trust_forwarded_for: true,
        ..Default::default()
    };
    let app = TestApp::spawn_with(domain::testing::Flavor::Sqlite, config)
        .await
        .unwrap();
    // 30 failures at once, then the allowance refills at one a second:
    // spend it until refused.
    let mut refused = false;
    for n in 0..60 {
        let response = login(&app, &format!("u{n}"), "wrong password!", Some("10.0.0.1")).await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(n >= 30, "refused after only {n}");
            refused = true;
            break;
        }
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    assert!(refused, "10.0.0.1 was never throttled");
    let response = login(
        &app,
        "u99",
        "wrong password!",
        Some("198.51.100.7, 10.0.0.1"),
    )
    .await;
    assert_eq!(
        response.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the last hop counts"
    );
    let response = login(&app, "u99", "wrong password!", Some("10.0.0.2")).await;
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "another client may try"
    );
}

async fn nul_is_refused_everywhere_alike(app: &TestApp) {
    let (_, alice) = app.user("alice").await;
    app.post("/api/topics/", &alice, json!({"name":"open"}))
        .await;
    let (status, tag) = app
        .post("/api/tags/", &app.admin, json!({"name":"alerts"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let refused = [
        app.post(
            "/api/topics/open/messages/",
            &alice,
            json!({"content":"a\u{0}b"}),
        )
        .await,
        app.post(
            "/api/notifications/",
            &app.admin,
            json!({"message":"a\u{0}b","tag":tag["id"]}),
        )
        .await,
        app.call(
            Method::POST,
            "/api/token/",
            None,
            Some(json!({"username":"alice\u{0}","password":"whatever-password"})),
        )
        .await,
        app.get("/api/audit/?actor=%00", &app.admin).await,
        app.get("/api/audit/?resource=a%00", &app.admin).await,
    ];
    for (n, (status, body)) in refused.iter().enumerate() {
        assert_eq!(
            (*status, code(body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            "case {n}: {body}"
        );
    }
    // In a name (which has its own alphabet) the same is an invalid name:
    // in a path `invalid_name`, in a body field `invalid_field`.
    let names = [
        (app.get("/api/topics/%00/", &alice).await, "invalid_name"),
        (
            app.get("/api/topics/%00/messages/", &alice).await,
            "invalid_name",
        ),
        (
            app.get("/api/direct/a%00b/messages/", &alice).await,
            "invalid_name",
        ),
        (
            app.delete("/api/topics/open/members/bo%00b/", &alice).await,
            "invalid_name",
        ),
        (
            app.post(
                "/api/topics/open/members/",
                &alice,
                json!({"username":"a\u{0}"}),
            )
            .await,
            "invalid_field",
        ),
    ];
    for (n, ((status, body), expected)) in names.iter().enumerate() {
        assert_eq!(
            (*status, code(body)),
            (StatusCode::UNPROCESSABLE_ENTITY, *expected),
            "name case {n}: {body}"
        );
    }
    // Nothing of it was stored, and the topic still takes messages.
    let (status, _) = app
        .post(
            "/api/topics/open/messages/",
            &alice,
            json!({"content":"fine"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, history) = app.get("/api/topics/open/messages/", &alice).await;
    assert_eq!(history["results"].as_array().unwrap().len(), 1);
}

async fn login(
    app: &TestApp,
    username: &str,
    password: &str,
    forwarded: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .client
        .post(format!("{}/api/token/", app.base))
        .json(&json!({"username": username, "password": password}));
    if let Some(address) = forwarded {
        request = request.header("x-forwarded-for", address);
    }
    request.send().await.unwrap()
}

/// Wrong passwords for one username are throttled (10 at once), with 429
/// and `Retry-After`; other users from elsewhere still get in, and the
/// right password is refused too while the name is throttled.
async fn failed_logins_are_throttled_per_username(app: &TestApp) {
    app.user("alice").await;
    app.user("bob").await;
    for n in 0..10 {
        let response = login(app, "alice", "wrong password!", None).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {n}");
    }
    let response = login(app, "alice", crate::helpers::PASSWORD, None).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=10).contains(&wait), "Retry-After: {wait}");
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(code(&body), "rate_limited");
    let response = login(app, "bob", crate::helpers::PASSWORD, None).await;
    assert_eq!(response.status(), StatusCode::OK, "bob is not alice");
}

/// A flood of concurrent guesses from one address: once its allowance is
/// spent, the rest get 429 without costing a password hash each.
async fn a_concurrent_login_flood_is_cut_off(app: &TestApp) {
    let attempts = (0..100).map(|n| async move {
        login(app, &format!("user{n}"), "wrong password!", None)
            .await
            .status()
    });
    let statuses = futures_util::future::join_all(attempts).await;
    let throttled = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!(
        throttled, 70,
        "30 attempts per address at once: {statuses:?}"
    );
}
