//! Topics, their members and their messages.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use domain::model::{Member, Message, Topic};
use domain::names::{TopicName, Username};
use domain::paging::{Page, PageRequest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{DEFAULT_PAGE_SIZE, PageParams};
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{AuthUser, Json, Path, Query};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/topics/", get(list).post(create))
        .route("/api/topics/{name}/", get(show).delete(remove))
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
    /// Only messages with a greater seq.
    pub after: Option<i64>,
    /// At most this many (1 to 1000, default 100).
    pub limit: Option<i64>,
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
}

impl History {
    pub fn new(results: Vec<Message>, limit: Option<i64>) -> Self {
        let full = i64::try_from(results.len()).unwrap_or(i64::MAX) >= limit.unwrap_or(100);
        let next_after = if full {
            results.last().map(|m| m.seq)
        } else {
            None
        };
        Self {
            results: results
                .into_iter()
                .map(|message| Pushed { message })
                .collect(),
            next_after,
        }
    }
}

/// Creates a topic; the caller owns it and is its first member.
#[utoipa::path(post, path = "/api/topics/", tag = "topics", request_body = NewTopic, security(("bearer" = [])),
    responses((status = 201, body = Topic), (status = 409, description = "name taken"), (status = 422)))]
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
#[utoipa::path(get, path = "/api/topics/", tag = "topics", params(PageParams), security(("bearer" = [])),
    responses((status = 200, body = Page<Topic>), (status = 400)))]
pub async fn list(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Query(params): Query<PageParams>,
) -> Result<Json<Page<Topic>>, ApiError> {
    let page = PageRequest::new(params.page, params.page_size, DEFAULT_PAGE_SIZE)?;
    Ok(Json(state.core.topics_page(&actor, page).await?))
}

#[utoipa::path(get, path = "/api/topics/{name}/", tag = "topics", security(("bearer" = [])),
    responses((status = 200, body = Topic), (status = 403), (status = 404)))]
pub async fn show(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Path(name): Path<TopicName>,
) -> Result<Json<Topic>, ApiError> {
    Ok(Json(state.core.readable_topic(&actor, &name).await?))
}

/// Deletes a topic with its messages (owner or admin).
#[utoipa::path(delete, path = "/api/topics/{name}/", tag = "topics", security(("bearer" = [])),
    responses((status = 204), (status = 403), (status = 404)))]
pub async fn remove(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Path(name): Path<TopicName>,
) -> Result<StatusCode, ApiError> {
    state.core.delete_topic(&actor, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/topics/{name}/members/", tag = "topics", security(("bearer" = [])),
    responses((status = 200, body = [Member]), (status = 403), (status = 404)))]
pub async fn members(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Path(name): Path<TopicName>,
) -> Result<Json<Vec<Member>>, ApiError> {
    Ok(Json(state.core.members(&actor, &name).await?))
}

/// Joins a public topic (yourself), invites into a private one (members),
/// or adds anyone (admins). 201 when added, 200 when already a member.
#[utoipa::path(post, path = "/api/topics/{name}/members/", tag = "topics", request_body = NewMember,
    security(("bearer" = [])),
    responses((status = 201, body = Membership), (status = 200, body = Membership), (status = 403), (status = 404)))]
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
#[utoipa::path(delete, path = "/api/topics/{name}/members/{username}/", tag = "topics", security(("bearer" = [])),
    responses((status = 204), (status = 403), (status = 404)))]
pub async fn remove_member(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Path((name, username)): Path<(TopicName, Username)>,
) -> Result<StatusCode, ApiError> {
    state.core.remove_member(&actor, &name, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Messages after `after`, oldest first.
#[utoipa::path(get, path = "/api/topics/{name}/messages/", tag = "topics", params(HistoryParams),
    security(("bearer" = [])), responses((status = 200, body = History), (status = 403), (status = 404)))]
pub async fn history(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Path(name): Path<TopicName>,
    Query(params): Query<HistoryParams>,
) -> Result<Json<History>, ApiError> {
    let results = state
        .core
        .topic_history(&actor, &name, params.after, params.limit)
        .await?;
    Ok(Json(History::new(results, params.limit)))
}

/// Publishes server-side, as the `message` action does.
#[utoipa::path(post, path = "/api/topics/{name}/messages/", tag = "topics", request_body = NewMessage,
    security(("bearer" = [])),
    responses((status = 201, body = Pushed), (status = 403), (status = 404), (status = 413), (status = 422)))]
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
