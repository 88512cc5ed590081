//! Subscriptions of users to tags.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use domain::model::Subscription;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{AuthUser, Json, Path, Query};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/subscriptions/", get(list).post(create))
        .route("/api/subscriptions/{id}/", delete(remove))
}

#[derive(Deserialize, ToSchema)]
pub struct NewSubscription {
    /// The subscriber; the caller when omitted. Only admins name others.
    user: Option<i64>,
    tag: i64,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ListParams {
    /// Admins: only this user's subscriptions.
    user: Option<i64>,
}

#[utoipa::path(post, path = "/api/subscriptions/", tag = "subscriptions", request_body = NewSubscription,
    security(("bearer" = [])),
    responses((status = 201, body = Subscription), (status = 403), (status = 404), (status = 409)))]
pub async fn create(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Json(body): Json<NewSubscription>,
) -> Result<(StatusCode, Json<Subscription>), ApiError> {
    let user = body.user.unwrap_or(actor.id);
    Ok((
        StatusCode::CREATED,
        Json(state.core.subscribe_tag(&actor, user, body.tag).await?),
    ))
}

/// Admins see all (or `?user=`); users see their own.
#[utoipa::path(get, path = "/api/subscriptions/", tag = "subscriptions", params(ListParams), security(("bearer" = [])),
    responses((status = 200, body = [Subscription])))]
pub async fn list(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Query(params): Query<ListParams>,
) -> Result<Json<Vec<Subscription>>, ApiError> {
    Ok(Json(
        state.core.list_subscriptions(&actor, params.user).await?,
    ))
}

/// Ends a subscription (its owner or an admin); what it brought stays in the inbox.
#[utoipa::path(delete, path = "/api/subscriptions/{id}/", tag = "subscriptions", security(("bearer" = [])),
    responses((status = 204), (status = 404)))]
pub async fn remove(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state.core.end_subscription(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
