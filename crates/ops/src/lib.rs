//! What every Tidings server process shares, so the all-in-one, `api` and
//! `ws-gateway` start, report and stop the same way.
//!
//! - [`settings`]: the flags (with env fallbacks) common to every process.
//! - [`boot`]: store, bus, keys and the first admin, from settings.
//! - [`health`]: `/healthz`, `/readyz`, `/metrics` and request metrics.
//! - [`logs`]: tracing output, human or JSON.
//! - [`shutdown`]: SIGTERM / ctrl-c as a future and a broadcast.
#![forbid(unsafe_code)]

pub mod boot;
pub mod health;
pub mod logs;
pub mod settings;
pub mod shutdown;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The error body every HTTP surface uses: `{"error":{"code","message"}}`.
pub fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message.into() } });
    (status, Json(body)).into_response()
}
