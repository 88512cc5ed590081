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
    #[param(example = 2)]
    user: Option<i64>,
}

#[utoipa::path(post, path = "/api/subscriptions/", tag = "subscriptions", operation_id = "subscriptions_create",
    summary = "Subscribe to a tag",
    request_body(content = NewSubscription, example = json!({"tag": 1})), security(("bearer" = [])),
    responses((status = 201, body = Subscription, example = json!({"id": 5, "user": 2, "tag": 1})),
        (status = 403, description = "only admins subscribe others"), (status = 404, description = "no such tag or user"),
        (status = 409, description = "already subscribed")))]
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
#[utoipa::path(get, path = "/api/subscriptions/", tag = "subscriptions", operation_id = "subscriptions_list",
    summary = "List subscriptions", params(ListParams), security(("bearer" = [])),
    responses((status = 200, body = [Subscription], example = json!([{"id": 5, "user": 2, "tag": 1}]))))]
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
#[utoipa::path(delete, path = "/api/subscriptions/{id}/", tag = "subscriptions", operation_id = "subscriptions_delete",
    summary = "Unsubscribe",
    params(("id" = i64, Path, description = "The subscription's id.", example = 5)), security(("bearer" = [])),
    responses((status = 204, description = "unsubscribed"), (status = 404, description = "no such subscription of the caller's")))]
pub async fn remove(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state.core.end_subscription(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
