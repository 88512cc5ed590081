//! Users, tokens, errors and operations endpoints.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{PASSWORD, SECRET, TestApp, code, on_both_stores};

on_both_stores!(
    login_returns_tokens_that_open_the_api,
    wrong_password_and_unknown_user_are_401,
    refresh_gives_a_new_access_token,
    refresh_token_is_refused_as_access,
    expired_unsigned_and_forged_tokens_are_refused,
    admin_creates_users_and_names_are_unique,
    only_admins_create_users_unless_registration_is_open,
    malformed_bodies_are_4xx,
    unknown_routes_and_methods_are_json_errors,
    health_ready_metrics_and_openapi,
    tokens_are_not_cached_and_responses_carry_security_headers,
    the_bearer_scheme_is_case_insensitive,
    paths_answer_with_or_without_the_trailing_slash,
);

async fn paths_answer_with_or_without_the_trailing_slash(app: &TestApp) {
    for path in [
        "/api/users/me",
        "/api/users/me/",
        "/api/topics?page=1&page_size=5",
        "/api/openapi.json",
        "/healthz",
    ] {
        let (status, body) = app.get(path, &app.admin).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let (status, body) = app.get("/api/topics?page=0", &app.admin).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
        "the query survives the rewrite"
    );
}

async fn tokens_are_not_cached_and_responses_carry_security_headers(app: &TestApp) {
    app.user("alice").await;
    let login = app
        .client
        .post(format!("{}/api/token/", app.base))
        .json(&json!({"username":"alice","password":PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    assert_eq!(login.headers()["cache-control"], "no-store");
    let refresh: serde_json::Value = login.json().await.unwrap();
    let refreshed = app
        .client
        .post(format!("{}/api/token/refresh/", app.base))
        .json(&json!({"refresh": refresh["refresh"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), StatusCode::OK);
    assert_eq!(refreshed.headers()["cache-control"], "no-store");
    for path in ["/api/topics/", "/api/nowhere/", "/healthz"] {
        let response = app
            .client
            .get(format!("{}{path}", app.base))
            .bearer_auth(&app.admin)
            .send()
            .await
            .unwrap();
        let headers = response.headers();
        assert_eq!(headers["x-content-type-options"], "nosniff", "{path}");
        assert_eq!(headers["x-frame-options"], "DENY", "{path}");
        assert_eq!(headers["referrer-policy"], "no-referrer", "{path}");
    }
}

async fn the_bearer_scheme_is_case_insensitive(app: &TestApp) {
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let response = app
            .client
            .get(format!("{}/api/users/me/", app.base))
            .header("authorization", format!("{scheme} {}", app.admin))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
    }
    let response = app
        .client
        .get(format!("{}/api/users/me/", app.base))
        .header("authorization", format!("Basic {}", app.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

async fn login_returns_tokens_that_open_the_api(app: &TestApp) {
    app.user("alice").await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/token/",
            None,
            Some(json!({"username":"alice","password":PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = body["access"].as_str().unwrap();
    assert!(body["refresh"].is_string());
    let (status, me) = app.get("/api/users/me/", access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (me["username"].as_str(), me["is_admin"].as_bool()),
        (Some("alice"), Some(false))
    );
    assert!(me["id"].is_i64());
}

async fn wrong_password_and_unknown_user_are_401(app: &TestApp) {
    app.user("alice").await;
    for body in [
        json!({"username":"alice","password":"nope"}),
        json!({"username":"ghost","password":PASSWORD}),
    ] {
        let (status, err) = app
            .call(Method::POST, "/api/token/", None, Some(body))
            .await;
        assert_eq!(
            (status, code(&err)),
            (StatusCode::UNAUTHORIZED, "unauthorized")
        );
    }
    let (status, _) = app.call(Method::GET, "/api/users/me/", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn refresh_gives_a_new_access_token(app: &TestApp) {
    app.user("alice").await;
    let (_, pair) = app
        .call(
            Method::POST,
            "/api/token/",
            None,
            Some(json!({"username":"alice","password":PASSWORD})),
        )
        .await;
    let (status, body) = app
        .call(
            Method::POST,
            "/api/token/refresh/",
            None,
            Some(json!({"refresh": pair["refresh"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = app
        .get("/api/users/me/", body["access"].as_str().unwrap())
        .await;
    assert_eq!(status, StatusCode::OK);
    // An access token is not a refresh token.
    let (status, _) = app
        .call(
            Method::POST,
            "/api/token/refresh/",
            None,
            Some(json!({"refresh": pair["access"]})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

async fn refresh_token_is_refused_as_access(app: &TestApp) {
    app.user("alice").await;
    let (_, pair) = app
        .call(
            Method::POST,
            "/api/token/",
            None,
            Some(json!({"username":"alice","password":PASSWORD})),
        )
        .await;
    let (status, body) = app
        .get("/api/users/me/", pair["refresh"].as_str().unwrap())
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
}

async fn expired_unsigned_and_forged_tokens_are_refused(app: &TestApp) {
    let (user, _) = app.user("alice").await;
    let now = chrono_now();
    let claims = |exp: i64| json!({"sub":"alice","uid":user.id,"iat":now - 100,"exp":exp,"jti":"x","token_type":"access"});
    let sign =
        |claims: serde_json::Value, secret: &[u8]| domain::testing::forge_token(&claims, secret);
    let expired = sign(claims(now - 10), SECRET);
    let forged = sign(claims(now + 600), b"some-other-secret-of-32-bytes!!!");
    let valid = sign(claims(now + 600), SECRET);
    let payload = valid.split('.').nth(1).unwrap();
    let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    for token in [
        expired.as_str(),
        forged.as_str(),
        unsigned.as_str(),
        "garbage",
    ] {
        let (status, body) = app.get("/api/users/me/", token).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{token}"
        );
    }
    assert_eq!(app.get("/api/users/me/", &valid).await.0, StatusCode::OK);
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn admin_creates_users_and_names_are_unique(app: &TestApp) {
    let body = json!({"username":"bob","password":"long enough"});
    let (status, bob) = app.post("/api/users/", &app.admin, body.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{bob}");
    assert_eq!(
        (bob["username"].as_str(), bob["is_admin"].as_bool()),
        (Some("bob"), Some(false))
    );
    let (status, err) = app.post("/api/users/", &app.admin, body).await;
    assert_eq!((status, code(&err)), (StatusCode::CONFLICT, "conflict"));
    let (status, err) = app
        .post(
            "/api/users/",
            &app.admin,
            json!({"username":"b b","password":"long enough"}),
        )
        .await;
    assert_eq!(
        (status, code(&err)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_name")
    );
    let (status, _) = app
        .post(
            "/api/users/",
            &app.admin,
            json!({"username":"carl","password":"short"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // A topic name is taken for users too.
    app.post("/api/topics/", &app.admin, json!({"name":"news"}))
        .await;
    let (status, _) = app
        .post(
            "/api/users/",
            &app.admin,
            json!({"username":"news","password":"long enough"}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
}

async fn only_admins_create_users_unless_registration_is_open(app: &TestApp) {
    let (_, alice) = app.user("alice").await;
    let body = json!({"username":"mallory","password":"long enough"});
    let (status, err) = app.post("/api/users/", &alice, body.clone()).await;
    assert_eq!((status, code(&err)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, _) = app
        .call(Method::POST, "/api/users/", None, Some(body))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let open = TestApp::spawn_with(
        domain::testing::Flavor::Sqlite,
        tidings_api::ApiConfig {
            open_registration: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (status, _) = open
        .call(
            Method::POST,
            "/api/users/",
            None,
            Some(json!({"username":"eve","password":"long enough"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let admin_claim = json!({"username":"eve2","password":"long enough","is_admin":true});
    let (status, _) = open
        .call(Method::POST, "/api/users/", None, Some(admin_claim))
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "registration never grants admin"
    );
}

async fn malformed_bodies_are_4xx(app: &TestApp) {
    let url = format!("{}/api/topics/", app.base);
    let send = |body: &'static str, content_type: &'static str| {
        app.client
            .post(&url)
            .bearer_auth(&app.admin)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    assert_eq!(
        send("{not json", "application/json")
            .await
            .unwrap()
            .status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        send("{}", "application/json").await.unwrap().status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        send(r#"{"name":5}"#, "application/json")
            .await
            .unwrap()
            .status(),
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        send(r#"{"name":"x"}"#, "text/plain")
            .await
            .unwrap()
            .status(),
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let huge = format!(r#"{{"name":"{}"}}"#, "x".repeat(300 * 1024));
    let response = app
        .client
        .post(&url)
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let (status, _) = app.get("/api/topics/?page=abc", &app.admin).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

async fn unknown_routes_and_methods_are_json_errors(app: &TestApp) {
    let (status, body) = app.get("/api/nowhere/", &app.admin).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = app.call(Method::PUT, "/api/token/", None, None).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

async fn health_ready_metrics_and_openapi(app: &TestApp) {
    let (status, body) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(
        (status, body["store"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    let (status, doc) = app.call(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/token/",
        "/api/topics/{name}/messages/",
        "/api/notifications/{id}/",
        "/api/audit/",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from OpenAPI"
        );
    }
}

/// CORS is off unless origins are configured; then a browser on an
/// allowed origin gets its preflight answered, and others get nothing.
#[tokio::test]
async fn cors_allows_only_the_configured_origins() {
    let preflight = |app: &TestApp, origin: &'static str| {
        app.client
            .request(Method::OPTIONS, format!("{}/api/topics/", app.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let closed = TestApp::spawn(domain::testing::Flavor::Sqlite)
        .await
        .unwrap();
    let response = preflight(&closed, "https://app.example.com").await.unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    let config = tidings_api::ApiConfig {
        cors_origins: vec!["https://app.example.com".into()],
        ..Default::default()
    };
    let open = TestApp::spawn_with(domain::testing::Flavor::Sqlite, config)
        .await
        .unwrap();
    let response = preflight(&open, "https://app.example.com").await.unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let response = preflight(&open, "https://evil.example.net").await.unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let response = open
        .client
        .get(format!("{}/api/users/me/", open.base))
        .header("origin", "https://app.example.com")
        .bearer_auth(&open.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
}
