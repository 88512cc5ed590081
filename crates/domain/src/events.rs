//! What travels on the bus: one event per committed change that some
//! socket may need to hear about.
//!
//! Events carry everything delivery needs (the message text, the sender's
//! name, the seq), so the fan-out path never reads the store per recipient.
//! They serialize to JSON for the Redis bus. [`Event::key`] is the one place
//! that decides which routing key (and so which Redis channel) an event
//! travels on.

use serde::{Deserialize, Serialize};

use crate::model::{Notification, StoredMessage};

/// Who needs to hear about an event; a gateway listens on the keys of its
/// connected users, their channels and their tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Key {
    /// Every member of a topic.
    Channel(i64),
    /// Every socket of one user.
    User(i64),
    /// Every subscriber of a tag.
    Tag(i64),
    /// Every gateway: credential revocations. They are rare, and a gateway
    /// must hear of one even for a user it has no socket of yet: a
    /// handshake may have checked the credential just before it died.
    Credentials,
}

impl Key {
    /// The pub/sub channel name for this key.
    pub fn channel_name(&self, prefix: &str) -> String {
        match self {
            Key::Channel(id) => format!("{prefix}:channel:{id}"),
            Key::User(id) => format!("{prefix}:user:{id}"),
            Key::Tag(id) => format!("{prefix}:tag:{id}"),
            Key::Credentials => format!("{prefix}:credentials"),
        }
    }
}

/// How an inbox item changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InboxChange {
    Read,
    Unread,
    Deleted,
    /// Every item with an id up to `id` is read now.
    ReadAll,
}

/// Which of a user's credentials died.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Revocation {
    /// Every token issued before generation `generation` (a password
    /// change); API keys live on.
    TokensBefore { generation: i64 },
    /// Everything: the account was disabled or deleted.
    Account,
    /// One login session (a revoked refresh token and its access tokens).
    Session { sid: String },
    /// One API key.
    Key { id: i64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A message stored in a topic.
    TopicMessage {
        topic: String,
        message: StoredMessage,
    },
    /// A direct message stored; only `to` (not the sender) is told.
    DirectMessage { to: i64, message: StoredMessage },
    /// A notification stored for a tag's subscribers, at `seq` in its tag.
    Notification {
        notification: Notification,
        seq: i64,
    },
    /// `user_id` became a member of a topic; delivery starts after `from_seq`.
    Joined {
        user_id: i64,
        channel_id: i64,
        topic: String,
        from_seq: i64,
        invited_by: Option<String>,
    },
    /// `user_id` left a topic.
    Left { user_id: i64, channel_id: i64 },
    /// A topic and its memberships are gone.
    TopicDeleted { channel_id: i64 },
    /// `user_id` subscribed to a tag; delivery starts after `from_seq`.
    Subscribed {
        user_id: i64,
        subscription_id: i64,
        tag_id: i64,
        from_seq: i64,
    },
    /// `user_id` ended a subscription.
    Unsubscribed {
        user_id: i64,
        subscription_id: i64,
        tag_id: i64,
    },
    /// One of `user_id`'s inbox items changed state.
    Inbox {
        user_id: i64,
        id: i64,
        change: InboxChange,
    },
    /// Some of `user_id`'s credentials stopped working: sockets that
    /// opened with one close with 4003. Travels to every gateway
    /// ([`Key::Credentials`]), which hands it to the user's sockets.
    Revoked {
        user_id: i64,
        revocation: Revocation,
    },
}

impl Event {
    /// The routing key this event travels on.
    pub fn key(&self) -> Key {
        match self {
            Event::TopicMessage { message, .. } => Key::Channel(message.channel_id),
            Event::TopicDeleted { channel_id } => Key::Channel(*channel_id),
            Event::DirectMessage { to, .. } => Key::User(*to),
            Event::Notification { notification, .. } => Key::Tag(notification.tag),
            Event::Joined { user_id, .. }
            | Event::Left { user_id, .. }
            | Event::Subscribed { user_id, .. }
            | Event::Unsubscribed { user_id, .. }
            | Event::Inbox { user_id, .. } => Key::User(*user_id),
            Event::Revoked { .. } => Key::Credentials,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_json() {
        let event = Event::Inbox {
            user_id: 3,
            id: 9,
            change: InboxChange::Deleted,
        };
        let json = serde_json::to_string(&event).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&json).unwrap(), event);
        assert_eq!(event.key(), Key::User(3));
        assert_eq!(Key::Tag(4).channel_name("tidings"), "tidings:tag:4");
    }
}
