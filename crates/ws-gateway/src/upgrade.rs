//! The handshake: find the token (path, query or header), check it, and
//! only then upgrade. A refusal is an HTTP 401 with a JSON body.
//!
//! The upgrade is answered here (tungstenite checks the request and
//! derives the accept key) rather than by axum's extractor, because the
//! session writes its frames to the socket itself (see
//! `session/connection.rs`) and axum's socket does not lend out its stream;
//! the upgraded connection is taken back as the `TcpStream` it was
//! accepted as, so the session's reads and writes go straight to it.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header::AUTHORIZATION};
use axum::response::Response;
use domain::service::{AuthFailure, check_bearer};
use hyper::upgrade::{OnUpgrade, Parts};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::{Role, WebSocketConfig};

use crate::GatewayState;
use crate::hold::{Hold, HoldingStream};
use crate::session::{Admitted, Opening, Registration, Session, Socket};
use crate::user_sockets::{Full, Seat};

/// `GET /ws`, `GET /ws/notifications/`: token in `?token=` or the header.
pub async fn by_query_or_header(
    State(state): State<GatewayState>,
    Query(query): Query<HashMap<String, String>>,
    request: Request,
) -> Response {
    let bearer = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(ops::bearer);
    let token = query
        .get("token")
        .map(String::as_str)
        .or(bearer)
        .map(str::to_owned);
    accept(state, token.as_deref(), request).await
}

/// `GET /{token}`.
pub async fn by_path(
    State(state): State<GatewayState>,
    Path(token): Path<String>,
    request: Request,
) -> Response {
    accept(state, Some(&token), request).await
}

async fn accept(state: GatewayState, token: Option<&str>, request: Request) -> Response {
    // Before the check: a revocation from now on is either seen by the
    // check or recorded for the session (see `revocations.rs`).
    let mark = state.hub.revocations.mark();
    let mut registration = Registration::new(&state);
    let admitted = match authenticate(&state, token, &mut registration).await {
        Ok(found) => {
            metrics::counter!("ws_handshakes_total", "outcome" => "ok").increment(1);
            found
        }
        Err(refusal) => {
            registration.abandon().await;
            return refused(refusal);
        }
    };
    let Some((response, upgrade)) = switch(request) else {
        registration.abandon().await;
        return ops::error_response(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            "this endpoint speaks WebSocket only",
        );
    };
    let hard_cap = state.config.max_frame_bytes.saturating_mul(4);
    let config = WebSocketConfig::default()
        .read_buffer_size(state.config.read_buffer_bytes)
        // The library writes only pongs and the close frame.
        .write_buffer_size(0)
        // The hard cap sits above the protocol limit so an oversized frame
        // is read, measured and answered with 1009 rather than an I/O error.
        .max_message_size(Some(hard_cap))
        .max_frame_size(Some(hard_cap));
    // Taken before the upgrade completes, so shutdown cannot miss a
    // session that is just starting.
    let tracked = state.sessions.token();
    // Boxed: what a task captures stays in it for as long as it runs,
    // beside the session it was moved into (see `Opening`).
    let admission = Box::new((state, registration, admitted, mark));
    tokio::spawn(async move {
        // In a block of its own: what it leaves behind must not keep its
        // room in the task for the session's whole life.
        let opening = {
            let upgraded = socket(upgrade, config).await;
            let (state, registration, admitted, revocation_mark) = *admission;
            let Some((socket, unsent)) = upgraded else {
                registration.abandon().await;
                return;
            };
            Box::new(Opening {
                state,
                registration,
                admitted,
                revocation_mark,
                socket,
                unsent,
            })
        };
        Session::start(opening).await;
        drop(tracked);
    });
    response
}

/// The upgraded connection as the plain `TcpStream` it was accepted as
/// (see `http1.rs`), with any bytes the client sent right behind its
/// request, and the 101 not sent yet; `None` if the client went away
/// during the upgrade.
async fn socket(upgrade: OnUpgrade, config: WebSocketConfig) -> Option<(Socket, Vec<u8>)> {
    let Ok(upgraded) = upgrade.await else {
        tracing::debug!("the client went away during the upgrade");
        return None;
    };
    let Parts { io, read_buf, .. } = match upgraded.downcast::<TokioIo<HoldingStream>>() {
        Ok(parts) => parts,
        Err(_) => {
            tracing::error!("upgraded a connection not served by `serve_router`");
            return None;
        }
    };
    let ((stream, unsent), config) = (io.into_inner().into_parts(), Some(config));
    let socket = if read_buf.is_empty() {
        WebSocketStream::from_raw_socket(stream, Role::Server, config).await
    } else {
        WebSocketStream::from_partially_read(stream, read_buf.to_vec(), Role::Server, config).await
    };
    Some((socket, unsent))
}

/// The 101 answer to a valid WebSocket request, and the connection it
/// hands over; `None` for anything else. The 101 is held for the welcome
/// (see `hold.rs`).
fn switch(request: Request) -> Option<(Response, OnUpgrade)> {
    let (mut parts, _body) = request.into_parts();
    let upgrade = parts.extensions.remove::<OnUpgrade>()?;
    let hold = parts.extensions.remove::<Hold>();
    let head = axum::http::Request::from_parts(parts, ());
    let response = tungstenite::handshake::server::create_response(&head).ok()?;
    if let Some(hold) = hold {
        hold.hold_the_answer();
    }
    Some((response.map(|()| Body::empty()), upgrade))
}

/// The answer to a refused handshake.
fn refused(refusal: Refusal) -> Response {
    match refusal {
        Refusal::Unauthorized(message) => {
            metrics::counter!("ws_handshakes_total", "outcome" => "unauthorized").increment(1);
            ops::error_response(StatusCode::UNAUTHORIZED, "unauthorized", message)
        }
        Refusal::TooMany(limit) => {
            metrics::counter!("ws_handshakes_total", "outcome" => "too_many").increment(1);
            ops::error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_connections",
                format!(
                    "this user has {limit} sockets open here, the most one may; close one first"
                ),
            )
        }
        // Not the token's fault: a 401 would make clients throw it away.
        Refusal::Unavailable => {
            metrics::counter!("ws_handshakes_total", "outcome" => "unavailable").increment(1);
            ops::error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the store is unreachable; try again shortly",
            )
        }
    }
}

/// Why a handshake is refused.
enum Refusal {
    /// The credential: 401.
    Unauthorized(&'static str),
    /// The user has this many sockets open here, the most allowed: 429.
    TooMany(usize),
    /// The store could not be asked: 503.
    Unavailable,
}

/// Checks the credential. For a token, whose signature names its user,
/// the user's seat is taken and its events are watched first: a user at
/// its socket limit is refused without asking the store, and the store
/// read that checks the token can bring the user's snapshot too. An API
/// key names its user only once the store has read it.
async fn authenticate(
    state: &GatewayState,
    token: Option<&str>,
    registration: &mut Registration,
) -> Result<Admitted, Refusal> {
    let bearer = check_bearer(&state.keys, token).map_err(refusal)?;
    let named = match bearer.user_id() {
        Some(user_id) => {
            let taken = seat(state, user_id)?;
            registration.bill_holds_to(state, user_id);
            registration.watch_user(state, user_id).await;
            Some(taken)
        }
        None => None,
    };
    let (authenticated, snapshot) = state.core.open_socket(bearer).await.map_err(refusal)?;
    let seat = match named {
        Some(taken) => taken,
        None => {
            registration.bill_holds_to(state, authenticated.actor.id);
            seat(state, authenticated.actor.id)?
        }
    };
    Ok(Admitted {
        authenticated,
        snapshot,
        seat,
    })
}

/// A place among `user_id`'s sockets on this gateway.
fn seat(state: &GatewayState, user_id: i64) -> Result<Option<Seat>, Refusal> {
    state
        .user_sockets
        .admit(user_id)
        .map_err(|Full { limit }| Refusal::TooMany(limit))
}

/// Why a credential the gateway could not admit was refused.
fn refusal(failure: AuthFailure) -> Refusal {
    match failure {
        AuthFailure::Refused(domain::service::Refusal::WrongType) => {
            Refusal::Unauthorized("only an access token or an API key opens a socket")
        }
        AuthFailure::Refused(refusal) => Refusal::Unauthorized(refusal.message()),
        AuthFailure::Service(err) => {
            crate::error::store_failure("a handshake", &err);
            Refusal::Unavailable
        }
    }
}
