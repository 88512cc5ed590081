//! Request extractors whose failures speak the API's error format, and the
//! authenticated caller.

use axum::extract::{FromRequest, FromRequestParts};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use domain::model::Actor;

use crate::AppState;
use crate::error::ApiError;

/// `axum::Json` with bad bodies mapped to 400/413/415/422.
#[derive(FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct Json<T>(pub T);

impl<T: serde::Serialize> axum::response::IntoResponse for Json<T> {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self.0).into_response()
    }
}

/// `axum::extract::Query` with bad values mapped to 400.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct Query<T>(pub T);

/// `axum::extract::Path` with bad segments mapped to 404.
#[derive(FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct Path<T>(pub T);

/// The caller, from `Authorization: Bearer <access token or API key>`,
/// checked against the store as it is now: a revoked, superseded or
/// disabled credential is refused, and admin rights are current.
pub struct AuthUser(pub Actor);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let bearer = match parts.headers.get(AUTHORIZATION) {
            None => None,
            Some(header) => Some(header.to_str().ok().and_then(ops::bearer).ok_or_else(|| {
                domain::metrics::auth_failure("invalid");
                ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
            })?),
        };
        let found = state.core.authenticate(&state.keys, bearer).await?;
        Ok(Self(found.actor))
    }
}

/// The client's address, for throttling: the peer of the connection, or,
/// behind a proxy the API is told to trust (`TIDINGS_TRUST_FORWARDED_FOR`),
/// the address that proxy appended last to `X-Forwarded-For`.
pub struct ClientAddress(pub Option<std::net::IpAddr>);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if state.config.trust_forwarded_for
            && let Some(forwarded) = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|a| a.trim().parse().ok())
                .next_back()
        {
            return Ok(Self(Some(forwarded)));
        }
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|info| info.0.ip());
        Ok(Self(peer))
    }
}

/// Like [`AuthUser`] when a token is present, `None` when not.
pub struct MaybeAuthUser(pub Option<Actor>);

impl FromRequestParts<AppState> for MaybeAuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if parts.headers.contains_key(AUTHORIZATION) {
            Ok(Self(Some(
                AuthUser::from_request_parts(parts, state).await?.0,
            )))
        } else {
            Ok(Self(None))
        }
    }
}
