//! The web console and the browser client, embedded in the binary so the
//! all-in-one needs nothing beside it.
//!
//! `/` redirects to `/console/`; `/console/…` serves the console's files
//! from `crates/api/console/`; `/tidings.js` is the browser client module;
//! `/console/settings.json` tells the page where to open its socket, the
//! one thing the page cannot work out from its own address.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use rust_embed::Embed;

use crate::AppState;

/// The console's files. In debug builds they are read from disk on each
/// request, so editing them needs no rebuild; release builds carry them.
#[derive(Embed)]
#[folder = "console/"]
struct Files;

/// Scripts and styles from this origin only; sockets to any host, since
/// the gateway may listen on another port or name (`--public-ws-url`).
const POLICY: &str = "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; \
     style-src 'self'; script-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("console/") }))
        .route("/console", get(|| async { Redirect::to("console/") }))
        .route(
            "/console/",
            get(|headers: HeaderMap| async move { file("index.html", &headers) }),
        )
        .route("/console/settings.json", get(settings))
        .route(
            "/console/{*path}",
            get(
                |Path(path): Path<String>, headers: HeaderMap| async move { file(&path, &headers) },
            ),
        )
        .route(
            "/tidings.js",
            get(|headers: HeaderMap| async move { file("tidings.js", &headers) }),
        )
}

/// What the page needs from the server's settings.
#[derive(serde::Serialize)]
struct Settings<'a> {
    /// Where sockets go: an absolute `ws(s)://` URL, a path on the page's
    /// own origin (`/ws`), or `:PORT/PATH` on the page's host name.
    socket: &'a str,
}

async fn settings(State(state): State<AppState>) -> Response {
    let mut response = axum::Json(Settings {
        socket: &state.config.public_ws_url,
    })
    .into_response();
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// One embedded file, revalidated by its hash on every load, so a new
/// release is picked up at once and an unchanged file costs a 304.
fn file(path: &str, headers: &HeaderMap) -> Response {
    let Some(content) = Files::get(path) else {
        return ops::error_response(StatusCode::NOT_FOUND, "not_found", "no such file");
    };
    let etag = format!("\"{}\"", hex::encode(&content.metadata.sha256_hash()[..16]));
    let mut response = if headers
        .get(IF_NONE_MATCH)
        .is_some_and(|tag| tag.as_bytes() == etag.as_bytes())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        content.data.into_owned().into_response()
    };
    let response_headers = response.headers_mut();
    if let Ok(kind) = HeaderValue::from_str(content.metadata.mimetype()) {
        response_headers.insert(CONTENT_TYPE, kind);
    }
    if let Ok(tag) = HeaderValue::from_str(&etag) {
        response_headers.insert(ETAG, tag);
    }
    response_headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response_headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    response
}
