//! Accounts.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use domain::model::User;
use domain::names::Username;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{AuthUser, Json, MaybeAuthUser};

/// Password length bounds, in bytes.
pub const PASSWORD_LEN: std::ops::RangeInclusive<usize> = 8..=1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/users/", post(create))
        .route("/api/users/me/", get(me))
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
