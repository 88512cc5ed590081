//! The Tidings WebSocket gateway: authenticates sockets, runs client
//! actions, and pushes messages and notifications live and after an
//! absence, in order and without loss.
//!
//! - [`http1`]: the HTTP/1.1 server the handshakes arrive on.
//! - [`upgrade`]: the handshake (token in path, query or header).
//! - [`session`]: one connection's life.
//! - [`hub`]: local fan-out from the bus to sessions.
//! - [`cursors`]: batched persistence of delivery progress.
#![forbid(unsafe_code)]

pub mod backlog;
pub mod config;
pub mod cursors;
pub mod error;
pub mod hold;
pub mod hold_accounts;
pub mod http1;
pub mod hub;
pub mod key_gates;
pub mod metrics;
pub mod rate;
pub mod recent;
pub mod reorder;
pub mod revocations;
pub mod session;
pub mod upgrade;
pub mod user_sockets;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use domain::auth::JwtKeys;
use domain::service::Core;
use ops::shutdown::Shutdown;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

pub use http1::serve_router;

pub use config::{GatewayArgs, GatewayConfig};

use crate::cursors::CursorBook;
use crate::hold_accounts::HoldAccounts;
use crate::hub::Hub;
use crate::metrics::GatewayMetrics;
use crate::user_sockets::UserSockets;

/// How often delivery cursors are saved.
pub const CURSOR_FLUSH_EVERY: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct GatewayState {
    pub core: Arc<Core>,
    pub keys: Arc<JwtKeys>,
    pub config: Arc<GatewayConfig>,
    pub hub: Arc<Hub>,
    pub cursors: Arc<CursorBook>,
    pub shutdown: Shutdown,
    /// Every session, so shutdown can wait for each to finish its work.
    pub sessions: TaskTracker,
    /// Open sockets per user, against `max_sockets_per_user`.
    pub user_sockets: Arc<UserSockets>,
    /// Each user's allowance of holding publishers back.
    pub hold_accounts: Arc<HoldAccounts>,
}

impl GatewayState {
    /// Builds the state and starts the hub dispatcher and cursor flusher.
    pub fn start(
        core: Arc<Core>,
        keys: Arc<JwtKeys>,
        config: GatewayConfig,
        shutdown: Shutdown,
    ) -> std::io::Result<Self> {
        ops::metrics::install();
        crate::metrics::describe();
        let hub = Hub::new(
            core.bus.clone(),
            GatewayMetrics::default(),
            config.recent_bytes,
        );
        hub.spawn_dispatcher()?;
        let cursors = Arc::new(CursorBook::default());
        cursors.spawn_flusher(core.clone(), CURSOR_FLUSH_EVERY, shutdown.clone());
        let user_sockets = UserSockets::new(config.max_sockets_per_user);
        Ok(Self {
            core,
            keys,
            user_sockets,
            config: Arc::new(config),
            hub,
            cursors,
            shutdown,
            sessions: TaskTracker::new(),
            hold_accounts: Arc::default(),
        })
    }
}

pub fn router(state: GatewayState) -> Router {
    let sockets = Router::new()
        .route("/ws", get(upgrade::by_query_or_header))
        .route("/ws/", get(upgrade::by_query_or_header))
        .route("/ws/notifications/", get(upgrade::by_query_or_header))
        .route("/{token}", get(upgrade::by_path))
        .with_state(state.clone());
    sockets
        .merge(ops::health::router(state.core.clone()))
        .fallback(|| async {
            ops::error_response(StatusCode::NOT_FOUND, "not_found", "no such route")
        })
        .layer(axum::middleware::from_fn(ops::health::track))
}

/// Serves until shutdown, then waits for every session to finish (see
/// [`finish`]). Only after this returns may the store close.
pub async fn serve(listener: TcpListener, state: GatewayState) -> std::io::Result<()> {
    let (shutdown, header_timeout) = (state.shutdown.clone(), state.config.header_timeout);
    let result = serve_router(listener, router(state.clone()), shutdown, header_timeout).await;
    finish(&state).await;
    result
}

/// Waits for every session to finish: each acknowledges the publishes it
/// read, closes with 1001 and hands over how far its client got; then the
/// last cursors are saved.
pub async fn finish(state: &GatewayState) {
    state.sessions.close();
    state.sessions.wait().await;
    state.cursors.flush(&state.core).await;
}
