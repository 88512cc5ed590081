//! Tags (admins manage them; everyone lists them).

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use domain::model::Tag;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{AuthUser, Json, Path};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/tags/", get(list).post(create))
        .route("/api/tags/{id}/", delete(remove))
}

#[derive(Deserialize, ToSchema)]
pub struct NewTag {
    name: String,
}

#[utoipa::path(post, path = "/api/tags/", tag = "tags", operation_id = "tags_create",
    summary = "Create a tag (admins)", request_body(content = NewTag, example = json!({"name": "deploys"})), security(("bearer" = [])),
    responses((status = 201, body = Tag, example = json!({"id": 1, "name": "deploys"})),
        (status = 403, description = "not an admin"), (status = 409, description = "name taken"), (status = 422)))]
pub async fn create(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Json(body): Json<NewTag>,
) -> Result<(StatusCode, Json<Tag>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(state.core.create_tag(&actor, &body.name).await?),
    ))
}

#[utoipa::path(get, path = "/api/tags/", tag = "tags", operation_id = "tags_list", summary = "List tags", security(("bearer" = [])),
    responses((status = 200, body = [Tag], example = json!([{"id": 1, "name": "deploys"}]))))]
pub async fn list(
    State(state): State<AppState>,
    AuthUser(_caller): AuthUser,
) -> Result<Json<Vec<Tag>>, ApiError> {
    Ok(Json(state.core.tags().await?))
}

/// Deletes a tag with its subscriptions and notifications.
#[utoipa::path(delete, path = "/api/tags/{id}/", tag = "tags", operation_id = "tags_delete",
    summary = "Delete a tag (admins)", params(("id" = i64, Path, description = "The tag's id.", example = 1)), security(("bearer" = [])),
    responses((status = 204, description = "deleted"), (status = 403, description = "not an admin"), (status = 404, description = "no such tag")))]
pub async fn remove(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state.core.delete_tag(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
