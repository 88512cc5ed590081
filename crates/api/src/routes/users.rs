//! Accounts.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch, post};
use domain::model::{User, UserRecord};
use domain::names::Username;
use domain::paging::{Page, PageRequest};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{DEFAULT_PAGE_SIZE, PageParams};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{AuthUser, Json, MaybeAuthUser, Path, Query};

use domain::service::PASSWORD_LEN;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users/", get(list).post(create))
        .route("/api/users/me/", get(me))
        .route("/api/users/me/password/", post(change_password))
        .route("/api/users/{id}/", patch(update).delete(remove))
        .route("/api/users/{id}/password/", post(reset_password))
}

#[derive(Deserialize, ToSchema)]
pub struct NewUser {
    username: String,
    password: String,
    #[serde(default)]
    is_admin: bool,
}

/// Creates an account: admins always; anyone when open registration is on
/// (but only an admin creates admins).
#[utoipa::path(post, path = "/api/users/", tag = "users", operation_id = "users_create",
    summary = "Create a user",
    request_body(content = NewUser, example = json!({"username": "alice", "password": "correct horse battery"})),
    security((), ("bearer" = [])),
    responses((status = 201, body = User, example = json!({"id": 2, "username": "alice", "is_admin": false})),
        (status = 403, description = "not allowed to create this account"), (status = 409, description = "name taken"), (status = 422)))]
pub async fn create(
    State(state): State<AppState>,
    MaybeAuthUser(actor): MaybeAuthUser,
    Json(body): Json<NewUser>,
) -> Result<(StatusCode, Json<User>), ApiError> {
    let by_admin = actor.as_ref().is_some_and(|a| a.is_admin);
    let self_service = state.config.open_registration && !body.is_admin;
    if !by_admin && !self_service {
        return Err(match actor {
            None if !state.config.open_registration => {
                ApiError::Unauthorized("an admin token is required".into())
            }
            _ => ApiError::Forbidden("only an admin may create this account".into()),
        });
    }
    let username = Username::parse(body.username)?;
    if !PASSWORD_LEN.contains(&body.password.len()) {
        return Err(ApiError::Unprocessable(
            "password: must be 8 to 1024 bytes".into(),
        ));
    }
    let user = state
        .core
        .create_user(actor.as_ref(), &username, body.password, body.is_admin)
        .await?;
    Ok((StatusCode::CREATED, Json(user)))
}

/// The caller's own account.
#[utoipa::path(get, path = "/api/users/me/", tag = "users", operation_id = "users_me", summary = "Show the caller's account", security(("bearer" = [])),
    responses((status = 200, body = User, example = json!({"id": 2, "username": "alice", "is_admin": false}))))]
pub async fn me(AuthUser(actor): AuthUser) -> Json<User> {
    Json(User {
        id: actor.id,
        username: actor.username,
        is_admin: actor.is_admin,
    })
}

#[derive(Deserialize, ToSchema)]
pub struct UserPatch {
    is_active: Option<bool>,
    is_admin: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordReset {
    new: String,
}

#[derive(Deserialize, ToSchema)]
pub struct PasswordChange {
    old: String,
    new: String,
}

/// Every account, by id, with whether it is active (admins).
#[utoipa::path(get, path = "/api/users/", tag = "users", operation_id = "users_list",
    summary = "List users (admins)", params(PageParams), security(("bearer" = [])),
    responses((status = 200, body = Page<UserRecord>, example = json!({"count": 1, "page": 1, "page_size": 20,
        "results": [{"id": 2, "username": "alice", "is_admin": false, "is_active": true, "created_at": "2026-11-26T09:30:00Z"}]})),
        (status = 403, description = "not an admin")))]
pub async fn list(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Query(params): Query<PageParams>,
) -> Result<Json<Page<UserRecord>>, ApiError> {
    let page = PageRequest::new(params.page, params.page_size, DEFAULT_PAGE_SIZE)?;
    Ok(Json(state.core.accounts(&actor, page).await?))
}

/// Disables or enables an account, or changes whether it is an admin
/// (admins, never on themselves). Disabling ends every credential the
/// account has, on every process; re-enabling does not bring them back.
#[utoipa::path(patch, path = "/api/users/{id}/", tag = "users", operation_id = "users_update",
    summary = "Disable, enable, promote or demote a user (admins)",
    params(("id" = i64, Path, description = "The user's id.", example = 2)),
    request_body(content = UserPatch, example = json!({"is_active": false})), security(("bearer" = [])),
    responses((status = 200, body = UserRecord, example = json!({"id": 2, "username": "alice", "is_admin": false, "is_active": false, "created_at": "2026-11-26T09:30:00Z"})),
        (status = 403, description = "not an admin, or the admin's own account"), (status = 404, description = "no such user")))]
pub async fn update(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Path(id): Path<i64>,
    Json(body): Json<UserPatch>,
) -> Result<Json<UserRecord>, ApiError> {
    Ok(Json(
        state
            .core
            .update_account(&actor, id, body.is_active, body.is_admin)
            .await?,
    ))
}

/// Deletes an account (admins, not their own): its memberships,
/// subscriptions and API keys go, its messages stay, its name stays taken,
/// and every credential it had stops working.
#[utoipa::path(delete, path = "/api/users/{id}/", tag = "users", operation_id = "users_delete",
    summary = "Delete a user (admins)",
    params(("id" = i64, Path, description = "The user's id.", example = 2)), security(("bearer" = [])),
    responses((status = 204, description = "deleted"),
        (status = 403, description = "not an admin, or the admin's own account"), (status = 404, description = "no such user")))]
pub async fn remove(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    state.core.delete_account(&actor, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the caller's password. Every token issued before stops working,
/// the one used here included (log in again); API keys keep working.
#[utoipa::path(post, path = "/api/users/me/password/", tag = "users", operation_id = "users_password",
    summary = "Change the caller's password",
    request_body(content = PasswordChange, example = json!({"old": "correct horse battery", "new": "battery staple horse"})),
    security(("bearer" = [])),
    responses((status = 204, description = "changed; log in again"), (status = 403, description = "the current password is wrong")))]
pub async fn change_password(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Json(body): Json<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    state
        .core
        .change_password(&actor, body.old, body.new)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sets another user's password (admins), for a user who lost theirs:
/// every token they had stops working and their sockets close with 4003;
/// their API keys keep working.
#[utoipa::path(post, path = "/api/users/{id}/password/", tag = "users", operation_id = "users_password_reset",
    summary = "Set a user's password (admins)",
    params(("id" = i64, Path, description = "The user's id.", example = 2)),
    request_body(content = PasswordReset, example = json!({"new": "battery staple horse"})),
    security(("bearer" = [])),
    responses((status = 204, description = "set; their tokens no longer work"),
        (status = 403, description = "not an admin"), (status = 404, description = "no such user")))]
pub async fn reset_password(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Path(id): Path<i64>,
    Json(body): Json<PasswordReset>,
) -> Result<StatusCode, ApiError> {
    state.core.reset_password(&actor, id, body.new).await?;
    Ok(StatusCode::NO_CONTENT)
}
