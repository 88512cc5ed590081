//! `/healthz`, `/readyz` and `/metrics`, the same on every process, plus
//! the request metrics and the request log (with tokens redacted).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use domain::service::Core;
use serde_json::json;

/// The three operational routes.
pub fn router(core: Arc<Core>) -> Router {
    crate::metrics::install();
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/readyz", get(ready))
        .route("/metrics", get(scrape))
        .with_state(core)
}

/// Samples what is read rather than counted (process, pool), then renders.
async fn scrape(State(core): State<Arc<Core>>) -> String {
    crate::metrics::render(&core)
}

/// How long `/readyz` waits for each dependency: it answers within this
/// whatever is down.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(900);

async fn ready(State(core): State<Arc<Core>>) -> Response {
    let timed_out = || format!("no answer within {} ms", PROBE_TIMEOUT.as_millis());
    let (store, bus) = tokio::join!(
        tokio::time::timeout(PROBE_TIMEOUT, core.ping_store()),
        tokio::time::timeout(PROBE_TIMEOUT, core.bus.ping()),
    );
    let store = store
        .map_err(|_| timed_out())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let bus = bus
        .map_err(|_| timed_out())
        .and_then(|r| r.map_err(|e| e.to_string()));
    let status = if store.is_ok() && bus.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let show = |r: Result<(), String>| r.err().unwrap_or_else(|| "ok".into());
    let body =
        json!({ "store": show(store), "bus": { "kind": core.bus.name(), "status": show(bus) } });
    (status, Json(body)).into_response()
}

/// Middleware: counts requests by route and status, times them, and logs
/// them by route template, so a token in a path or query never reaches a log.
pub async fn track(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    let labels = [
        ("method", method.to_string()),
        ("route", route.clone()),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels).record(elapsed.as_secs_f64());
    let elapsed_ms = elapsed.as_millis() as u64;
    // A socket's upgrade is logged with the socket, at debug: at thousands
    // of handshakes a second a line each would cost more than the check.
    if status == 101 {
        tracing::debug!(%method, %route, status, elapsed_ms, "request");
    } else {
        tracing::info!(%method, %route, status, elapsed_ms, "request");
    }
    response
}
