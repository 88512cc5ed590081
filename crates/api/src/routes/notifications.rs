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
    /// The page, from 1.
    #[param(example = 1, minimum = 1, maximum = 4294967295_i64)]
    page: Option<i64>,
    /// Items per page, 1 to 100 (default 20).
    #[param(example = 20, minimum = 1, maximum = 100)]
    page_size: Option<i64>,
    /// `true`: unread only; `false`: read only.
    #[param(example = true)]
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
#[utoipa::path(post, path = "/api/notifications/", tag = "notifications", operation_id = "notifications_create",
    summary = "Send a notification to a tag (admins)",
    request_body(content = NewNotification, example = json!({"tag": 1, "message": "v2.3 is deployed"})), security(("bearer" = [])),
    responses((status = 201, body = Notification, example = json!({"id": 4, "tag": 1, "message": "v2.3 is deployed", "timestamp": "2026-11-26T09:30:00Z"})),
        (status = 403, description = "not an admin"), (status = 404, description = "no such tag"), (status = 422)))]
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
#[utoipa::path(get, path = "/api/notifications/", tag = "notifications", operation_id = "notifications_list",
    summary = "List the caller's inbox", params(InboxParams), security(("bearer" = [])),
    responses((status = 200, body = Page<InboxItem>, example = json!({"count": 1, "page": 1, "page_size": 20, "results": [{"id": 4, "notification": {"id": 4, "tag": 1, "message": "v2.3 is deployed", "timestamp": "2026-11-26T09:30:00Z"}, "is_read": false, "created_at": "2026-11-26T09:30:00Z"}]}))))]
pub async fn inbox(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Query(params): Query<InboxParams>,
) -> Result<Json<Page<InboxItem>>, ApiError> {
    let page = PageRequest::new(params.page, params.page_size, DEFAULT_PAGE_SIZE)?;
    Ok(Json(state.core.inbox(&actor, params.unread, page).await?))
}

/// Marks an item read or unread, or deletes it (logically).
#[utoipa::path(patch, path = "/api/notifications/{id}/", tag = "notifications", operation_id = "notifications_update",
    summary = "Mark an inbox item read or unread, or delete it",
    params(("id" = i64, Path, description = "The notification's id.", example = 4)),
    request_body(content = ItemPatch, example = json!({"is_read": true})), security(("bearer" = [])),
    responses((status = 200, body = InboxItem, example = json!({"id": 4, "notification": {"id": 4, "tag": 1, "message": "v2.3 is deployed", "timestamp": "2026-11-26T09:30:00Z"}, "is_read": true, "created_at": "2026-11-26T09:30:00Z"})),
        (status = 404, description = "not in the caller's inbox")))]
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

#[utoipa::path(post, path = "/api/notifications/read-all/", tag = "notifications", operation_id = "notifications_read_all",
    summary = "Mark the whole inbox read", security(("bearer" = [])),
    responses((status = 200, body = Updated, example = json!({"updated": 3}))))]
pub async fn read_all(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
) -> Result<Json<Updated>, ApiError> {
    Ok(Json(Updated {
        updated: state.core.read_all(&actor).await?,
    }))
}
