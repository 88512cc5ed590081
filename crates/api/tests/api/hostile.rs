//! Hostile input: text one store could keep and the other could not (NUL)
//! is refused alike on both, with 422, wherever it enters, and nothing
//! else is lost to it.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestApp, code, on_both_stores};

on_both_stores!(nul_is_refused_everywhere_alike);

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
        app.get("/api/topics/%00/", &alice).await,
        app.get("/api/topics/%00/messages/", &alice).await,
        app.get("/api/direct/a%00b/messages/", &alice).await,
        app.get("/api/audit/?actor=%00", &app.admin).await,
        app.get("/api/audit/?resource=a%00", &app.admin).await,
        app.delete("/api/topics/open/members/bo%00b/", &alice).await,
    ];
    for (n, (status, body)) in refused.iter().enumerate() {
        assert_eq!(
            (*status, code(body)),
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field"),
            "case {n}: {body}"
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
