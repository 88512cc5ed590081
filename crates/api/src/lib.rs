//! The Tidings REST API: accounts and tokens, topics, direct history,
//! tags, subscriptions, the notification inbox and the audit log.
//!
//! [`router`] builds the whole API from an [`AppState`]; [`serve`] runs it
//! on a listener until shutdown, so tests and binaries start it the same way.
#![forbid(unsafe_code)]

pub mod config;
pub mod console;
pub mod error;
pub mod extract;
pub mod openapi;
pub mod routes;

use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::http::header::{REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
use axum::http::{HeaderValue, StatusCode};
use domain::auth::JwtKeys;
use domain::service::Core;
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use ops::shutdown::Shutdown;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_http::set_header::SetResponseHeaderLayer;

pub use config::{ApiArgs, ApiConfig};

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Everything a handler may use, passed explicitly.
#[derive(Clone)]
pub struct AppState {
    pub core: Arc<Core>,
    pub keys: Arc<JwtKeys>,
    pub config: Arc<ApiConfig>,
}

/// The whole REST API with its operational routes. Every `/api/` path
/// answers with or without its trailing slash.
pub fn router(state: AppState) -> Router {
    let cors = cors(&state.config.cors_origins);
    let routes = routes(state);
    let router = Router::new().fallback_service(
        tower::ServiceBuilder::new()
            .map_request(with_trailing_slash)
            .service(routes),
    );
    match cors {
        Some(cors) => router.layer(cors),
        None => router,
    }
}

/// CORS for the configured origins (`*`: any), or none at all. Tokens
/// travel in the `Authorization` header, never in cookies, so no
/// credentials mode is needed.
fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let origins: Vec<&String> = origins.iter().filter(|o| !o.trim().is_empty()).collect();
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o.trim() == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.trim().parse().ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                axum::http::Method::GET,
                axum::http::Method::POST,
                axum::http::Method::PATCH,
                axum::http::Method::DELETE,
            ])
            .allow_headers([
                axum::http::header::AUTHORIZATION,
                axum::http::header::CONTENT_TYPE,
            ])
            .max_age(std::time::Duration::from_secs(3600)),
    )
}

/// `/api/users/me` is `/api/users/me/` (the routes are declared with the
/// slash, as the protocol names them); the OpenAPI document keeps its name.
fn with_trailing_slash(mut request: axum::extract::Request) -> axum::extract::Request {
    let uri = request.uri();
    let path = uri.path();
    if !path.starts_with("/api/") || path.ends_with('/') || path.ends_with(".json") {
        return request;
    }
    let rewritten = match uri.query() {
        Some(query) => format!("{path}/?{query}"),
        None => format!("{path}/"),
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(path_and_query) = rewritten.parse() {
        parts.path_and_query = Some(path_and_query);
        if let Ok(uri) = axum::http::Uri::from_parts(parts) {
            *request.uri_mut() = uri;
        }
    }
    request
}

fn routes(state: AppState) -> Router {
    let api = Router::new()
        .merge(routes::auth::router())
        .merge(routes::users::router())
        .merge(routes::keys::router())
        .merge(routes::topics::router())
        .merge(routes::direct::router())
        .merge(routes::tags::router())
        .merge(routes::subscriptions::router())
        .merge(routes::notifications::router())
        .merge(routes::audit::router())
        .merge(openapi::router())
        .merge(console::router())
        .with_state(state.clone());
    api.merge(ops::health::router(state.core.clone()))
        .fallback(|| async {
            ops::error_response(StatusCode::NOT_FOUND, "not_found", "no such route")
        })
        .method_not_allowed_fallback(|| async {
            ops::error_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(ops::health::track))
        // The usual hardening headers: JSON is never sniffed as anything
        // else, framed, or given a referrer.
        .layer(SetResponseHeaderLayer::if_not_present(
            X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
}

/// Serves `router` on `listener` until `shutdown` fires, then lets
/// in-flight requests finish (see [`ops::http1::serve`], which also
/// closes connections that send no request head within `header_timeout`).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: Shutdown,
    header_timeout: std::time::Duration,
) -> std::io::Result<()> {
    ops::http1::serve(listener, shutdown, header_timeout, move |tcp, peer| {
        // The peer's address is kept for login throttling.
        let service = router
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        (TokioIo::new(tcp), TowerToHyperService::new(service))
    })
    .await
}

/// Runs the pruner with the configured retention until `shutdown` fires;
/// await the handle before closing the store.
pub fn spawn_pruner(
    core: Arc<Core>,
    config: &ApiConfig,
    shutdown: Shutdown,
) -> tokio::task::JoinHandle<()> {
    let (retention, every) = (config.retention, config.prune_every);
    tokio::spawn(async move {
        core.run_pruner(retention, every, async move { shutdown.wait().await })
            .await;
    })
}
