//! The handshake: find the token (path, query or header), check it, and
//! only then upgrade. A refusal is an HTTP 401 with a JSON body.

use std::collections::HashMap;

use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header::AUTHORIZATION};
use axum::response::Response;
use domain::service::{AuthFailure, Authenticated};

use crate::GatewayState;
use crate::session::Session;

/// `GET /ws`, `GET /ws/notifications/`: token in `?token=` or the header.
pub async fn by_query_or_header(
    State(state): State<GatewayState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(ops::bearer);
    let token = query.get("token").map(String::as_str).or(bearer);
    accept(state, token, upgrade).await
}

/// `GET /{token}`.
pub async fn by_path(
    State(state): State<GatewayState>,
    Path(token): Path<String>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    accept(state, Some(&token), upgrade).await
}

async fn accept(
    state: GatewayState,
    token: Option<&str>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    // Before the check: a revocation from now on is either seen by the
    // check or recorded for the session (see `revocations.rs`).
    let mark = state.hub.revocations.mark();
    let authenticated = match authenticate(&state, token).await {
        Ok(found) => {
            metrics::counter!("ws_handshakes_total", "outcome" => "ok").increment(1);
            found
        }
        Err(Refusal::Unauthorized(message)) => {
            metrics::counter!("ws_handshakes_total", "outcome" => "unauthorized").increment(1);
            return ops::error_response(StatusCode::UNAUTHORIZED, "unauthorized", message);
        }
        // Not the token's fault: a 401 would make clients throw it away.
        Err(Refusal::Unavailable) => {
            metrics::counter!("ws_handshakes_total", "outcome" => "unavailable").increment(1);
            return ops::error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the store is unreachable; try again shortly",
            );
        }
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(_) => {
            return ops::error_response(
                StatusCode::UPGRADE_REQUIRED,
                "upgrade_required",
                "this endpoint speaks WebSocket only",
            );
        }
    };
    let config = &state.config;
    // Taken before the upgrade completes, so shutdown cannot miss a
    // session that is just starting.
    let tracked = state.sessions.token();
    upgrade
        .read_buffer_size(config.read_buffer_bytes)
        .write_buffer_size(config.write_buffer_bytes)
        // The hard cap sits above the protocol limit so an oversized frame
        // is read, measured and answered with 1009 rather than an I/O error.
        .max_message_size(config.max_frame_bytes.saturating_mul(4))
        .max_frame_size(config.max_frame_bytes.saturating_mul(4))
        .on_upgrade(move |socket| async move {
            Session::start(state, authenticated, mark, socket).await;
            drop(tracked);
        })
}

/// Why a handshake is refused.
enum Refusal {
    /// The credential: 401.
    Unauthorized(&'static str),
    /// The store could not be asked: 503.
    Unavailable,
}

async fn authenticate(state: &GatewayState, token: Option<&str>) -> Result<Authenticated, Refusal> {
    match state.core.authenticate(&state.keys, token).await {
        Ok(found) => Ok(found),
        Err(AuthFailure::Refused(domain::service::Refusal::WrongType)) => Err(
            Refusal::Unauthorized("only an access token or an API key opens a socket"),
        ),
        Err(AuthFailure::Refused(refusal)) => Err(Refusal::Unauthorized(refusal.message())),
        Err(AuthFailure::Service(err)) => {
            tracing::error!(%err, "store failure during handshake");
            Err(Refusal::Unavailable)
        }
    }
}
