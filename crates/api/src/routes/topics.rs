//! Topics, their members and their messages.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use domain::model::{Member, Message, Retention, Topic};
use domain::names::{TopicName, Username};
use domain::paging::{Page, PageRequest};
use domain::service::{HistoryPage, HistorySlice};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{DEFAULT_PAGE_SIZE, PageParams};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{AuthUser, Json, Path, Query};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/topics/", get(list).post(create))
        .route(
            "/api/topics/{name}/",
            get(show).patch(update).delete(remove),
        )
        .route("/api/topics/{name}/members/", get(members).post(add_member))
        .route(
            "/api/topics/{name}/members/{username}/",
            delete(remove_member),
        )
        .route("/api/topics/{name}/messages/", get(history).post(publish))
}

#[derive(Deserialize, ToSchema)]
pub struct NewTopic {
    name: String,
    #[serde(default)]
    private: bool,
}

#[derive(Deserialize, ToSchema)]
pub struct NewMember {
    #[schema(value_type = String)]
    username: Username,
}

#[derive(Serialize, ToSchema)]
pub struct Membership {
    topic: String,
    username: String,
}

#[derive(Deserialize, ToSchema)]
pub struct NewMessage {
    content: String,
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct HistoryParams {
    /// Only messages with a greater seq, oldest first (default 0: from the
    /// start). Not with `before`.
    #[param(example = 0, minimum = 0)]
    pub after: Option<i64>,
    /// Instead of `after` (giving both is a 422): the newest messages with
    /// a smaller seq (still oldest first), for scrolling back; any number
    /// above the newest seq, such as 9007199254740991, reads the newest page.
    #[param(example = 9007199254740991_i64, minimum = 1)]
    pub before: Option<i64>,
    /// At most this many (1 to 1000, default 100).
    #[param(example = 100, minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

impl HistoryParams {
    pub fn slice(&self) -> Result<HistorySlice, ApiError> {
        Ok(HistorySlice::parse(self.after, self.before)?)
    }
}

/// A message in the shape of the WebSocket `message` push.
#[derive(Serialize, ToSchema)]
#[serde(tag = "type", rename = "message")]
pub struct Pushed {
    #[serde(flatten)]
    message: Message,
}

/// A slice of history and where the next one starts.
#[derive(Serialize, ToSchema)]
pub struct History {
    results: Vec<Pushed>,
    /// Pass as `after` for the next slice; `null` when this was the last.
    next_after: Option<i64>,
    /// Pass as `before` for the slice before this one; `null` when this
    /// slice starts at the beginning of what is kept.
    prev_before: Option<i64>,
    /// The oldest seq still kept: retention removed everything before it
    /// (1 when it removed nothing).
    first_seq: i64,
}

impl History {
    pub fn new(page: HistoryPage, limit: Option<i64>) -> Self {
        let HistoryPage {
            messages,
            first_seq,
        } = page;
        let full = i64::try_from(messages.len()).unwrap_or(i64::MAX) >= limit.unwrap_or(100);
        let next_after = if full {
            messages.last().map(|m| m.seq)
        } else {
            None
        };
        let prev_before = messages
            .first()
            .map(|m| m.seq)
            .filter(|&seq| seq > first_seq);
        Self {
            results: messages
                .into_iter()
                .map(|message| Pushed { message })
                .collect(),
            next_after,
            prev_before,
            first_seq,
        }
    }
}

/// A topic's own retention limits; `null` (or absent) uses the server's
/// default for that limit.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TopicChanges {
    retention: Retention,
}

/// Creates a topic; the caller owns it and is its first member.
#[utoipa::path(post, path = "/api/topics/", tag = "topics", operation_id = "topics_create",
    summary = "Create a topic", request_body(content = NewTopic, example = json!({"name": "news", "private": false})), security(("bearer" = [])),
    responses((status = 201, body = Topic, example = json!({"id": 1, "name": "news", "private": false, "owner": "alice", "created_at": "2026-11-26T09:30:00Z", "retention": {"max_age_secs": null, "max_count": null}})), (status = 409, description = "name taken"), (status = 422)))]
pub async fn create(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Json(body): Json<NewTopic>,
) -> Result<(StatusCode, Json<Topic>), ApiError> {
    let name = TopicName::parse(body.name)?;
    Ok((
        StatusCode::CREATED,
        Json(state.core.create_topic(&actor, &name, body.private).await?),
    ))
}

/// Public topics and the private ones the caller belongs to, by name.
#[utoipa::path(get, path = "/api/topics/", tag = "topics", operation_id = "topics_list",
    summary = "List topics", params(PageParams), security(("bearer" = [])),
    responses((status = 200, body = Page<Topic>, example = json!({"count": 1, "page": 1, "page_size": 20, "results": [{"id": 1, "name": "news", "private": false, "owner": "alice", "created_at": "2026-11-26T09:30:00Z", "retention": {"max_age_secs": null, "max_count": null}}]}))))]
pub async fn list(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Query(params): Query<PageParams>,
) -> Result<Json<Page<Topic>>, ApiError> {
    let page = PageRequest::new(params.page, params.page_size, DEFAULT_PAGE_SIZE)?;
    Ok(Json(state.core.topics_page(&actor, page).await?))
}

#[utoipa::path(get, path = "/api/topics/{name}/", tag = "topics", operation_id = "topics_get",
    summary = "Show a topic", params(("name" = String, Path, description = "The topic's name.", example = "news")), security(("bearer" = [])),
    responses((status = 200, body = Topic, example = json!({"id": 1, "name": "news", "private": false, "owner": "alice", "created_at": "2026-11-26T09:30:00Z", "retention": {"max_age_secs": null, "max_count": null}})), (status = 403, description = "private, and the caller is not a member"),
        (status = 404, description = "no such topic")))]
pub async fn show(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Path(name): Path<TopicName>,
) -> Result<Json<Topic>, ApiError> {
    Ok(Json(state.core.readable_topic(&actor, &name).await?))
}

/// Sets a topic's retention (owner or admin). Pruning follows within the
/// server's prune interval.
#[utoipa::path(patch, path = "/api/topics/{name}/", tag = "topics", operation_id = "topics_update",
    summary = "Change a topic's retention", params(("name" = String, Path, description = "The topic's name.", example = "news")),
    request_body(content = TopicChanges, example = json!({"retention": {"max_age_secs": 604800, "max_count": null}})), security(("bearer" = [])),
    responses((status = 200, body = Topic, example = json!({"id": 1, "name": "news", "private": false, "owner": "alice", "created_at": "2026-11-26T09:30:00Z", "retention": {"max_age_secs": 604800, "max_count": null}})),
        (status = 403, description = "neither the owner nor an admin"), (status = 404, description = "no such topic"), (status = 422)))]
pub async fn update(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Path(name): Path<TopicName>,
    Json(body): Json<TopicChanges>,
) -> Result<Json<Topic>, ApiError> {
    Ok(Json(
        state
            .core
            .set_retention(&actor, &name, body.retention)
            .await?,
    ))
}

/// Deletes a topic with its messages (owner or admin).
#[utoipa::path(delete, path = "/api/topics/{name}/", tag = "topics", operation_id = "topics_delete",
    summary = "Delete a topic", params(("name" = String, Path, description = "The topic's name.", example = "news")), security(("bearer" = [])),
    responses((status = 204, description = "deleted"), (status = 403, description = "neither the owner nor an admin"), (status = 404, description = "no such topic")))]
pub async fn remove(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Path(name): Path<TopicName>,
) -> Result<StatusCode, ApiError> {
    state.core.delete_topic(&actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/topics/{name}/members/", tag = "topics", operation_id = "topics_members_list",
    summary = "List a topic's members", params(("name" = String, Path, description = "The topic's name.", example = "news")), security(("bearer" = [])),
    responses((status = 200, body = [Member], example = json!([{"username": "alice", "joined_at": "2026-11-26T09:30:00Z"}])),
        (status = 403, description = "private, and the caller is not a member"), (status = 404, description = "no such topic")))]
pub async fn members(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Path(name): Path<TopicName>,
) -> Result<Json<Vec<Member>>, ApiError> {
    Ok(Json(state.core.members(&actor, &name).await?))
}

/// Joins a public topic (yourself), invites into a private one (members),
/// or adds anyone (admins). 201 when added, 200 when already a member.
#[utoipa::path(post, path = "/api/topics/{name}/members/", tag = "topics", operation_id = "topics_members_add",
    summary = "Join a topic, or add a member", params(("name" = String, Path, description = "The topic's name.", example = "news")),
    request_body(content = NewMember, example = json!({"username": "alice"})), security(("bearer" = [])),
    responses((status = 201, body = Membership, example = json!({"topic": "news", "username": "alice"})),
        (status = 200, body = Membership, description = "already a member", example = json!({"topic": "news", "username": "alice"})),
        (status = 403, description = "not allowed to add this user"), (status = 404, description = "no such topic or user")))]
pub async fn add_member(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Path(name): Path<TopicName>,
    Json(body): Json<NewMember>,
) -> Result<(StatusCode, Json<Membership>), ApiError> {
    let user = state.core.user_named(&body.username).await?;
    let (topic, added) = state.core.add_member(&actor, &name, &user).await?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(Membership {
            topic: topic.name,
            username: user.username,
        }),
    ))
}

/// Removes a member: themselves, the owner, or an admin.
#[utoipa::path(delete, path = "/api/topics/{name}/members/{username}/", tag = "topics", operation_id = "topics_members_delete",
    summary = "Leave a topic, or remove a member",
    params(("name" = String, Path, description = "The topic's name.", example = "news"), ("username" = String, Path, description = "The member.", example = "alice")), security(("bearer" = [])),
    responses((status = 204, description = "removed"), (status = 403, description = "not allowed to remove this member"),
        (status = 404, description = "no such topic or member")))]
pub async fn remove_member(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Path((name, username)): Path<(TopicName, Username)>,
) -> Result<StatusCode, ApiError> {
    state.core.remove_member(&actor, &name, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Messages after `after` (or the newest before `before`), oldest first.
#[utoipa::path(get, path = "/api/topics/{name}/messages/", tag = "topics", operation_id = "topics_messages_list",
    summary = "Read a topic's history", params(("name" = String, Path, description = "The topic's name.", example = "news"), HistoryParams), security(("bearer" = [])),
    responses((status = 200, body = History, example = json!({"results": [{"type": "message", "id": 7, "topic": "news", "seq": 3, "from": "alice", "content": "hello", "ts": "2026-11-26T09:30:00Z"}], "next_after": null, "prev_before": 2, "first_seq": 1})),
        (status = 403, description = "private, and the caller is not a member"), (status = 404, description = "no such topic")))]
pub async fn history(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Path(name): Path<TopicName>,
    Query(params): Query<HistoryParams>,
) -> Result<Json<History>, ApiError> {
    let results = state
        .core
        .topic_history(&actor, &name, params.slice()?, params.limit)
        .await?;
    Ok(Json(History::new(results, params.limit)))
}

/// Publishes server-side, as the `message` action does.
#[utoipa::path(post, path = "/api/topics/{name}/messages/", tag = "topics", operation_id = "topics_messages_create",
    summary = "Publish to a topic", params(("name" = String, Path, description = "The topic's name.", example = "news")),
    request_body(content = NewMessage, example = json!({"content": "hello"})), security(("bearer" = [])),
    responses((status = 201, body = Pushed, example = json!({"type": "message", "id": 7, "topic": "news", "seq": 3, "from": "alice", "content": "hello", "ts": "2026-11-26T09:30:00Z"})),
        (status = 403, description = "private, and the caller is not a member"), (status = 404, description = "no such topic"),
        (status = 413, description = "content over the size limit"), (status = 422)))]
pub async fn publish(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Path(name): Path<TopicName>,
    Json(body): Json<NewMessage>,
) -> Result<(StatusCode, Json<Pushed>), ApiError> {
    let topic = state.core.find_topic(&name).await?;
    let published = state
        .core
        .publish_topic(&actor, &topic, &body.content)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Pushed {
            message: published.as_message(),
        }),
    ))
}
