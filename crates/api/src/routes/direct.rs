//! Direct-message history between the caller and one other user.

use axum::Router;
use axum::extract::State;
use axum::routing::get;

use super::topics::{History, HistoryParams};
use domain::names::Username;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::{AuthUser, Json, Path, Query};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/direct/{username}/messages/", get(history))
}

/// The conversation with `username`, oldest first; only its two users can
/// read it, since it is always the caller's own.
#[utoipa::path(get, path = "/api/direct/{username}/messages/", tag = "direct", operation_id = "direct_history",
    summary = "Read a direct conversation",
    params(("username" = String, Path, description = "The other user.", example = "bob"), HistoryParams), security(("bearer" = [])),
    responses((status = 200, body = History, example = json!({"results": [{"type": "message", "id": 7, "topic": "@bob", "seq": 3, "from": "alice", "content": "hello", "ts": "2026-11-26T09:30:00Z"}], "next_after": null, "prev_before": 2, "first_seq": 1})),
        (status = 404, description = "no such user")))]
pub async fn history(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Path(username): Path<Username>,
    Query(params): Query<HistoryParams>,
) -> Result<Json<History>, ApiError> {
    let results = state
        .core
        .direct_history(&actor, &username, params.slice()?, params.limit)
        .await?;
    Ok(Json(History::new(results, params.limit)))
}
