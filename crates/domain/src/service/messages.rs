//! Publishing and reading messages, in topics and direct conversations.

use super::{Core, ServiceError};
use crate::events::Event;
use crate::model::{Actor, Message, StoredMessage, Topic, User};
use crate::names::Target;
use crate::store::Announcement;

/// A stored message and how its publisher names the channel.
#[derive(Debug, Clone)]
pub struct Published {
    pub message: StoredMessage,
    /// The topic name, or `@peer` for a direct message.
    pub label: String,
}

impl Published {
    pub fn as_message(&self) -> Message {
        self.message.labelled(self.label.clone())
    }
}

impl Core {
    fn check_content(&self, content: &str) -> Result<(), ServiceError> {
        if content.is_empty() {
            return Err(ServiceError::Invalid {
                field: "content",
                message: "must not be empty".into(),
            });
        }
        if content.len() > self.limits.max_content_bytes {
            return Err(ServiceError::TooLarge(format!(
                "content is {} bytes; the limit is {}",
                content.len(),
                self.limits.max_content_bytes
            )));
        }
        Ok(())
    }

    /// Publishes to a topic, or to a user when the target names one.
    pub async fn publish(
        &self,
        actor: &Actor,
        target: &Target,
        content: &str,
    ) -> Result<Published, ServiceError> {
        self.check_content(content)?;
        let name = match target {
            Target::User(name) => return self.publish_direct(actor, name.as_str(), content).await,
            Target::Name(name) => name,
        };
        if let Some(topic) = self.topics.get(name.as_str()) {
            match self.publish_topic(actor, &topic, content).await {
                // Nothing was stored: the topic is gone (ids are never
                // reused, so a new topic by that name has another), so look
                // the name up afresh.
                Err(ServiceError::NotFound(_)) => {
                    self.topics.remove(name.as_str());
                }
                done => return done,
            }
        }
        match self.store.topic(name).await? {
            Some(topic) => {
                self.topics.insert(topic.name.clone(), topic.clone());
                self.publish_topic(actor, &topic, content).await
            }
            None => self.publish_direct(actor, name, content).await,
        }
    }

    pub async fn publish_topic(
        &self,
        actor: &Actor,
        topic: &Topic,
        content: &str,
    ) -> Result<Published, ServiceError> {
        self.check_content(content)?;
        if topic.private && !self.store.is_member(topic.id, actor.id).await? {
            return Err(ServiceError::Forbidden(
                "only members may publish to a private topic",
            ));
        }
        let label = topic.name.clone();
        let announce = Announcement {
            bus: self.bus.clone(),
            event: Box::new(move |message| Event::TopicMessage {
                topic: label,
                message: message.clone(),
            }),
        };
        let message = self
            .store
            .publish_announced(topic.id, actor, content, Some(announce))
            .await?;
        Ok(Published {
            message,
            label: topic.name.clone(),
        })
    }

    async fn publish_direct(
        &self,
        actor: &Actor,
        username: &str,
        content: &str,
    ) -> Result<Published, ServiceError> {
        let (peer, channel) = self.direct(actor, username).await?;
        let to = peer.id;
        let announce = Announcement {
            bus: self.bus.clone(),
            event: Box::new(move |message| Event::DirectMessage {
                to,
                message: message.clone(),
            }),
        };
        let message = self
            .store
            .publish_announced(channel, actor, content, Some(announce))
            .await?;
        Ok(Published {
            message,
            label: format!("@{}", peer.username),
        })
    }

    /// The peer and the conversation with them, created on first use.
    async fn direct(&self, actor: &Actor, username: &str) -> Result<(User, i64), ServiceError> {
        self.directs
            .get_or_try((actor.id, username.to_owned()), || async {
                let peer = self.peer(actor, username).await?;
                let channel = self.store.direct_channel(actor.id, peer.id).await?;
                Ok((peer, channel))
            })
            .await
    }

    async fn peer(&self, actor: &Actor, username: &str) -> Result<User, ServiceError> {
        let peer = self
            .store
            .user_by_name(username)
            .await?
            .ok_or(ServiceError::NotFound("topic or user"))?;
        if peer.id == actor.id {
            return Err(ServiceError::Invalid {
                field: "topic_name",
                message: "cannot send a direct message to yourself".into(),
            });
        }
        Ok(peer)
    }

    fn history_limit(&self, limit: Option<i64>) -> Result<i64, ServiceError> {
        match limit.unwrap_or(100) {
            n if (1..=self.limits.max_history).contains(&n) => Ok(n),
            _ => Err(ServiceError::Invalid {
                field: "limit",
                message: format!("must be between 1 and {}", self.limits.max_history),
            }),
        }
    }

    fn check_after(after: Option<i64>) -> Result<i64, ServiceError> {
        match after.unwrap_or(0) {
            n if n >= 0 => Ok(n),
            _ => Err(ServiceError::Invalid {
                field: "after",
                message: "must be 0 or more".into(),
            }),
        }
    }

    /// A topic's messages after `after`, oldest first.
    pub async fn topic_history(
        &self,
        actor: &Actor,
        name: &str,
        after: Option<i64>,
        limit: Option<i64>,
    ) -> Result<Vec<Message>, ServiceError> {
        let (after, limit) = (Self::check_after(after)?, self.history_limit(limit)?);
        let topic = self.readable_topic(actor, name).await?;
        let messages = self
            .store
            .messages_after(topic.id, after, limit, None)
            .await?;
        Ok(messages
            .iter()
            .map(|m| m.labelled(topic.name.clone()))
            .collect())
    }

    /// The conversation between `actor` and `username`, oldest first.
    pub async fn direct_history(
        &self,
        actor: &Actor,
        username: &str,
        after: Option<i64>,
        limit: Option<i64>,
    ) -> Result<Vec<Message>, ServiceError> {
        let (after, limit) = (Self::check_after(after)?, self.history_limit(limit)?);
        let peer = self.peer(actor, username).await?;
        let Some(channel) = self.store.find_direct_channel(actor.id, peer.id).await? else {
            return Ok(Vec::new());
        };
        let messages = self
            .store
            .messages_after(channel, after, limit, None)
            .await?;
        let label = format!("@{}", peer.username);
        Ok(messages.iter().map(|m| m.labelled(label.clone())).collect())
    }
}
