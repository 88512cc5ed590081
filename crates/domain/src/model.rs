//! The records clients see, in the exact shape of the documented protocol.
//!
//! Store rows convert into these; REST bodies and WebSocket frames serialize
//! them directly, so both surfaces show one shape.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::time::{as_rfc3339, as_rfc3339_option};

/// A user as shown to clients (never with the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub is_admin: bool,
}

/// A user with what decides whether their credentials are good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub user: User,
    /// Off: every request and handshake with this user's credentials is
    /// refused, and logging in too.
    pub is_active: bool,
    /// Stamped into tokens; moved on by a password change or a disable.
    pub generation: i64,
    pub created_at: i64,
}

/// A user as an admin sees them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UserRecord {
    pub id: i64,
    pub username: String,
    pub is_admin: bool,
    pub is_active: bool,
    #[serde(with = "as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

impl From<Account> for UserRecord {
    fn from(account: Account) -> Self {
        Self {
            id: account.user.id,
            username: account.user.username,
            is_admin: account.user.is_admin,
            is_active: account.is_active,
            created_at: account.created_at,
        }
    }
}

/// An API key as listed: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    /// The user it acts as.
    pub user: i64,
    #[serde(with = "as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// When it was last used (written at most once a minute); `null` if never.
    #[serde(with = "as_rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<i64>,
}

/// Who is doing something: the subject of every authorization check and
/// the actor of every audit entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub id: i64,
    pub username: String,
    pub is_admin: bool,
}

impl From<User> for Actor {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            username: user.username,
            is_admin: user.is_admin,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Topic {
    pub id: i64,
    pub name: String,
    pub private: bool,
    /// The owner's username; `null` once the owner is gone.
    pub owner: Option<String>,
    #[serde(with = "as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// This topic's own retention; what it leaves `null` falls back to
    /// the server's default.
    pub retention: Retention,
    /// The newest message's seq (0 when empty). Not part of the REST shape.
    #[serde(skip)]
    pub last_seq: i64,
}

/// How long a channel keeps its messages: a message goes once it is older
/// than `max_age_secs` or more than `max_count` newer ones follow it. A
/// limit left `null` is the server's default (which may be none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Retention {
    /// Seconds a message is kept.
    #[schema(example = 2_592_000)]
    pub max_age_secs: Option<i64>,
    /// Messages kept, newest first.
    #[schema(example = 10_000)]
    pub max_count: Option<i64>,
}

impl Retention {
    /// Each limit this one leaves unset, taken from `default`.
    pub fn or(self, default: Retention) -> Retention {
        Retention {
            max_age_secs: self.max_age_secs.or(default.max_age_secs),
            max_count: self.max_count.or(default.max_count),
        }
    }

    /// Keeps everything forever.
    pub fn is_unlimited(&self) -> bool {
        self.max_age_secs.is_none() && self.max_count.is_none()
    }
}

/// Messages `from..=to` of a channel that retention removed before this
/// reader got them: what follows starts after `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Pruned {
    pub from: i64,
    pub to: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Member {
    pub username: String,
    #[serde(with = "as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub joined_at: i64,
}

/// A stored message, before it is labelled for a reader.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    pub id: i64,
    pub channel_id: i64,
    pub seq: i64,
    pub sender_id: i64,
    pub sender: String,
    pub content: String,
    pub created_at: i64,
}

/// Who hears about a stored message: a topic's members, or the other
/// side of a direct conversation. The store carries it through a commit
/// untouched, so whoever announces commits knows where each one goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    Topic { name: String },
    Direct { to: i64 },
}

/// A message as pushed and as listed in history: direct messages carry
/// `"topic":"@peer"` from the reader's side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Message {
    pub id: i64,
    pub topic: String,
    pub seq: i64,
    pub from: String,
    pub content: String,
    #[serde(with = "as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub ts: i64,
}

impl StoredMessage {
    pub fn labelled(&self, topic: impl Into<String>) -> Message {
        Message {
            id: self.id,
            topic: topic.into(),
            seq: self.seq,
            from: self.sender.clone(),
            content: self.content.clone(),
            ts: self.created_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Tag {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Subscription {
    pub id: i64,
    pub user: i64,
    pub tag: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Notification {
    pub id: i64,
    pub tag: i64,
    pub message: String,
    #[serde(with = "as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub timestamp: i64,
    /// Position in the tag's gap-free sequence; used for delivery only.
    #[serde(skip)]
    pub seq: i64,
}

/// One notification in one user's inbox. Its `id` is the notification's id:
/// a user holds each notification at most once, so the pair is the identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct InboxItem {
    pub id: i64,
    pub notification: Notification,
    pub is_read: bool,
    #[serde(with = "as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(with = "as_rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: i64,
    /// The acting username; `null` for the system (start-up, CLI).
    pub actor: Option<String>,
    pub resource: String,
    pub resource_id: String,
    pub action: String,
    /// `{"field": {"old": …, "new": …}}` for each changed field.
    #[schema(value_type = Object)]
    pub changes: serde_json::Value,
}
