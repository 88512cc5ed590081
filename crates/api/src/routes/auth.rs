//! Tokens: log in with a password, refresh an access token.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use axum::http::HeaderValue;
use axum::http::header::CACHE_CONTROL;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{ClientAddress, Json};

pub fn router() -> Router<AppState> {
    // Tokens must not linger in caches between the client and us.
    Router::new()
        .route("/api/token/", post(login))
        .route("/api/token/refresh/", post(refresh))
        .route("/api/token/revoke/", post(revoke))
        .layer(SetResponseHeaderLayer::overriding(
            CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ))
}

#[derive(Deserialize, ToSchema)]
pub struct LoginBody {
    username: String,
    password: String,
}

#[derive(Serialize, ToSchema)]
pub struct TokenPair {
    access: String,
    refresh: String,
}

#[derive(Deserialize, ToSchema)]
pub struct RefreshBody {
    refresh: String,
}

#[derive(Serialize, ToSchema)]
pub struct AccessToken {
    access: String,
}

/// Exchanges a username and password for an access and a refresh token.
#[utoipa::path(post, path = "/api/token/", tag = "auth", operation_id = "token_create",
    summary = "Log in", request_body(content = LoginBody, example = json!({"username": "alice", "password": "correct horse battery"})),
    security(()),
    responses((status = 200, body = TokenPair, example = json!({"access": "eyJhbGciOiJIUzI1NiJ9.ACCESS.sig", "refresh": "eyJhbGciOiJIUzI1NiJ9.REFRESH.sig"})),
        (status = 401, description = "wrong username or password, or the account is disabled"),
        (status = 429, description = "too many failed attempts for this username or client address; see Retry-After")))]
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    Json(body): Json<LoginBody>,
) -> Result<Json<TokenPair>, ApiError> {
    let session = state
        .core
        .log_in(&state.keys, &body.username, body.password, address)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("wrong username or password".into()))?;
    Ok(Json(TokenPair {
        access: session.access,
        refresh: session.refresh,
    }))
}

/// Exchanges a refresh token for a new access token.
#[utoipa::path(post, path = "/api/token/refresh/", tag = "auth", operation_id = "token_refresh",
    summary = "Refresh an access token", request_body(content = RefreshBody, example = json!({"refresh": "eyJhbGciOiJIUzI1NiJ9.REFRESH.sig"})),
    security(()),
    responses((status = 200, body = AccessToken, example = json!({"access": "eyJhbGciOiJIUzI1NiJ9.ACCESS.sig"})),
        (status = 401, description = "invalid, expired or not a refresh token")))]
pub async fn refresh(
    State(state): State<AppState>,
    Json(body): Json<RefreshBody>,
) -> Result<Json<AccessToken>, ApiError> {
    Ok(Json(AccessToken {
        access: state.core.refresh(&state.keys, &body.refresh).await?,
    }))
}

/// Logs out: the refresh token, and every access token minted from it,
/// stop working on every process; sockets opened with them close with 4003.
#[utoipa::path(post, path = "/api/token/revoke/", tag = "auth", operation_id = "token_revoke",
    summary = "Revoke a refresh token", request_body(content = RefreshBody, example = json!({"refresh": "eyJhbGciOiJIUzI1NiJ9.REFRESH.sig"})),
    security(()),
    responses((status = 204, description = "revoked"),
        (status = 401, description = "invalid, expired, already revoked or not a refresh token")))]
pub async fn revoke(
    State(state): State<AppState>,
    Json(body): Json<RefreshBody>,
) -> Result<StatusCode, ApiError> {
    state
        .core
        .revoke_refresh(&state.keys, &body.refresh)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
