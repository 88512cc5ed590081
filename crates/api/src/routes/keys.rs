//! API keys: long-lived credentials for servers that publish or read as a
//! user. The key is shown once, when created; only its hash is stored.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use domain::model::ApiKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{AuthUser, Json, Path};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/keys/", get(list).post(create))
        .route("/api/keys/{id}/", delete(remove))
}

#[derive(Deserialize, ToSchema)]
pub struct NewKey {
    /// What the key is for (1 to 100 bytes).
    name: String,
    /// Admins: the user the key acts as (the caller when omitted).
    user: Option<i64>,
}

/// A new key: the only time `key` is shown.
#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    #[serde(flatten)]
    stored: ApiKey,
    /// Send as `Authorization: Bearer <key>`, or as the socket's token.
    key: String,
}

#[utoipa::path(post, path = "/api/keys/", tag = "keys", operation_id = "keys_create",
    summary = "Create an API key",
    request_body(content = NewKey, example = json!({"name": "deploy bot"})), security(("bearer" = [])),
    responses((status = 201, body = CreatedKey, example = json!({"id": 3, "name": "deploy bot", "user": 2,
            "created_at": "2026-11-26T09:30:00Z", "last_used_at": null, "key": "tdk_8Hq2…"})),
        (status = 403, description = "only admins create keys for others"), (status = 404, description = "no such user")))]
pub async fn create(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Json(body): Json<NewKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let (stored, key) = state.core.create_key(&actor, &body.name, body.user).await?;
    Ok((StatusCode::CREATED, Json(CreatedKey { stored, key })))
}

/// The caller's keys (every key, for an admin); never the keys themselves.
#[utoipa::path(get, path = "/api/keys/", tag = "keys", operation_id = "keys_list",
    summary = "List API keys", security(("bearer" = [])),
    responses((status = 200, body = [ApiKey], example = json!([{"id": 3, "name": "deploy bot", "user": 2,
        "created_at": "2026-11-26T09:30:00Z", "last_used_at": "2026-11-26T10:02:00Z"}]))))]
pub async fn list(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
) -> Result<Json<Vec<ApiKey>>, ApiError> {
    Ok(Json(state.core.keys(&actor).await?))
}

/// Deletes a key (its user or an admin); sockets opened with it close
/// with 4003, on every gateway.
#[utoipa::path(delete, path = "/api/keys/{id}/", tag = "keys", operation_id = "keys_delete",
    summary = "Delete an API key", params(("id" = i64, Path, description = "The key's id.", example = 3)),
    security(("bearer" = [])),
    responses((status = 204, description = "deleted"), (status = 404, description = "no such key of the caller's")))]
pub async fn remove(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state.core.delete_key(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
