//! What every Tidings server process shares, so the all-in-one, `api` and
//! `ws-gateway` start, report and stop the same way.
//!
//! - [`settings`]: the flags (with env fallbacks) common to every process.
//! - [`boot`]: store, bus, keys and the first admin, from settings.
//! - [`health`]: `/healthz`, `/readyz`, `/metrics` and request metrics.
//! - [`http1`]: the HTTP/1.1 server, with a bound on request heads.
//! - [`logs`]: tracing output, human or JSON.
//! - [`shutdown`]: SIGTERM / ctrl-c as a future and a broadcast.
//! - [`warmup`]: listening (and saying what is missing) before the store
//!   and the bus answer.
#![forbid(unsafe_code)]

pub mod boot;
pub mod health;
pub mod http1;
pub mod logs;
pub mod metrics;
pub mod settings;
pub mod shutdown;
pub mod warmup;

/// The allocator every server process uses (each binary installs it with
/// `#[global_allocator]`): a handshake or a delivery makes many small,
/// short-lived allocations across threads, where glibc's malloc spent a
/// tenth of the CPU (see docs/BENCHMARKS.md).
pub use mimalloc::MiMalloc as Allocator;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The token of an `Authorization: Bearer <token>` header value; the
/// scheme is case-insensitive (RFC 9110), as clients write it either way.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The error body every HTTP surface uses: `{"error":{"code","message"}}`.
pub fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let body = serde_json::json!({ "error": { "code": code, "message": message.into() } });
    (status, Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for header in ["Bearer abc", "bearer abc", "BEARER  abc ", " Bearer abc"] {
            assert_eq!(super::bearer(header), Some("abc"), "{header:?}");
        }
        for header in ["Basic abc", "Bearer", "Bearer ", "Bearerabc", ""] {
            assert_eq!(super::bearer(header), None, "{header:?}");
        }
    }
}
