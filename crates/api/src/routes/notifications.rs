//! Notifications (admins create them) and the caller's inbox.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use domain::model::{InboxItem, Notification};
use domain::paging::{Page, PageRequest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::DEFAULT_PAGE_SIZE;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{AuthUser, Json, Path, Query};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/notifications/", get(inbox).post(create))
        .route("/api/notifications/read-all/", post(read_all))
        .route("/api/notifications/{id}/", patch(update))
}

#[derive(Deserialize, ToSchema)]
pub struct NewNotification {
    message: String,
    tag: i64,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct InboxParams {
    page: Option<i64>,
    page_size: Option<i64>,
    /// `true`: unread only; `false`: read only.
    unread: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
pub struct ItemPatch {
    is_read: Option<bool>,
    is_deleted: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct Updated {
    updated: i64,
}

/// Sends a notification to every subscriber of the tag.
#[utoipa::path(post, path = "/api/notifications/", tag = "notifications", request_body = NewNotification,
    security(("bearer" = [])),
    responses((status = 201, body = Notification), (status = 403), (status = 404), (status = 422)))]
pub async fn create(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Json(body): Json<NewNotification>,
) -> Result<(StatusCode, Json<Notification>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(
            state
                .core
                .create_notification(&actor, body.tag, &body.message)
                .await?,
        ),
    ))
}

/// The caller's inbox, newest first, deleted items left out.
#[utoipa::path(get, path = "/api/notifications/", tag = "notifications", params(InboxParams),
    security(("bearer" = [])), responses((status = 200, body = Page<InboxItem>), (status = 400)))]
pub async fn inbox(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Query(params): Query<InboxParams>,
) -> Result<Json<Page<InboxItem>>, ApiError> {
    let page = PageRequest::new(params.page, params.page_size, DEFAULT_PAGE_SIZE)?;
    Ok(Json(state.core.inbox(&actor, params.unread, page).await?))
}

/// Marks an item read or unread, or deletes it (logically).
#[utoipa::path(patch, path = "/api/notifications/{id}/", tag = "notifications", request_body = ItemPatch,
    security(("bearer" = [])), responses((status = 200, body = InboxItem), (status = 404)))]
pub async fn update(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Path(id): Path<i64>,
    Json(body): Json<ItemPatch>,
) -> Result<Json<InboxItem>, ApiError> {
    Ok(Json(
        state
            .core
            .update_inbox_item(&actor, id, body.is_read, body.is_deleted)
            .await?,
    ))
}

#[utoipa::path(post, path = "/api/notifications/read-all/", tag = "notifications", security(("bearer" = [])),
    responses((status = 200, body = Updated)))]
pub async fn read_all(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
) -> Result<Json<Updated>, ApiError> {
    Ok(Json(Updated {
        updated: state.core.read_all(&actor).await?,
    }))
}
