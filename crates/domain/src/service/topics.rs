//! Topics and their members.
//!
//! The rules (docs/protocol.md): anyone reads and joins a public topic; only
//! members read, join or publish to a private one, and a member may bring
//! others in. Admins may read and manage every topic; to publish to a
//! private topic they, too, join it first.

use super::{Core, ServiceError};
use crate::events::Event;
use crate::model::{Actor, Member, Topic, User};
use crate::names::{TopicName, Username};

impl Core {
    /// Public topics and the private ones `actor` belongs to, by name.
    pub async fn topics_page(
        &self,
        actor: &Actor,
        page: crate::paging::PageRequest,
    ) -> Result<crate::paging::Page<Topic>, ServiceError> {
        Ok(self.store.topics_page(actor, page).await?)
    }

    pub async fn create_topic(
        &self,
        actor: &Actor,
        name: &TopicName,
        private: bool,
    ) -> Result<Topic, ServiceError> {
        let topic = self.store.create_topic(actor, name, private).await?;
        self.announce(Event::Joined {
            user_id: actor.id,
            channel_id: topic.id,
            topic: topic.name.clone(),
            from_seq: 0,
            invited_by: None,
        })
        .await;
        Ok(topic)
    }

    pub async fn find_topic(&self, name: &TopicName) -> Result<Topic, ServiceError> {
        self.store
            .topic(name.as_str())
            .await?
            .ok_or(ServiceError::NotFound("topic"))
    }

    /// The topic if `actor` may read it (history, details, members).
    pub async fn readable_topic(
        &self,
        actor: &Actor,
        name: &TopicName,
    ) -> Result<Topic, ServiceError> {
        let topic = self.find_topic(name).await?;
        if topic.private && !actor.is_admin && !self.store.is_member(topic.id, actor.id).await? {
            return Err(ServiceError::Forbidden(
                "this topic is private to its members",
            ));
        }
        Ok(topic)
    }

    pub async fn members(
        &self,
        actor: &Actor,
        name: &TopicName,
    ) -> Result<Vec<Member>, ServiceError> {
        let topic = self.find_topic(name).await?;
        if !actor.is_admin && !self.store.is_member(topic.id, actor.id).await? {
            return Err(ServiceError::Forbidden("only members see the member list"));
        }
        Ok(self.store.members(topic.id).await?)
    }

    pub async fn delete_topic(&self, actor: &Actor, name: &TopicName) -> Result<(), ServiceError> {
        let topic = self.find_topic(name).await?;
        if !actor.is_admin && topic.owner.as_deref() != Some(actor.username.as_str()) {
            return Err(ServiceError::Forbidden(
                "only the owner or an admin may delete a topic",
            ));
        }
        self.store.delete_topic(actor, &topic).await?;
        self.topics.remove(topic.name.as_str());
        self.announce(Event::TopicDeleted {
            channel_id: topic.id,
        })
        .await;
        Ok(())
    }

    /// Makes `user` a member: themselves into a public topic, a member
    /// inviting anyone into a private one, or an admin anyone anywhere.
    /// Returns the topic and whether `user` is newly a member.
    pub async fn add_member(
        &self,
        actor: &Actor,
        name: &TopicName,
        user: &User,
    ) -> Result<(Topic, bool), ServiceError> {
        let topic = self.find_topic(name).await?;
        let allowed = actor.is_admin
            || if topic.private {
                self.store.is_member(topic.id, actor.id).await?
            } else {
                user.id == actor.id
            };
        if !allowed {
            return Err(ServiceError::Forbidden(if topic.private {
                "only members may invite into a private topic"
            } else {
                "a public topic is joined by each user for themselves"
            }));
        }
        let Some(from_seq) = self
            .store
            .join_topic(actor, &topic, user.id, &user.username)
            .await?
        else {
            return Ok((topic, false));
        };
        let invited_by = (user.id != actor.id).then(|| actor.username.clone());
        self.announce(Event::Joined {
            user_id: user.id,
            channel_id: topic.id,
            topic: topic.name.clone(),
            from_seq,
            invited_by,
        })
        .await;
        Ok((topic, true))
    }

    /// `subscribe`: join a public topic, or confirm membership of a private one.
    pub async fn subscribe(&self, actor: &Actor, name: &TopicName) -> Result<Topic, ServiceError> {
        let topic = self.find_topic(name).await?;
        if topic.private && !self.store.is_member(topic.id, actor.id).await? {
            return Err(ServiceError::Forbidden(
                "this topic is private to its members",
            ));
        }
        if let Some(from_seq) = self
            .store
            .join_topic(actor, &topic, actor.id, &actor.username)
            .await?
        {
            self.announce(Event::Joined {
                user_id: actor.id,
                channel_id: topic.id,
                topic: topic.name.clone(),
                from_seq,
                invited_by: None,
            })
            .await;
        }
        Ok(topic)
    }

    /// Removes `username` from a topic: themselves, or by its owner or an admin.
    pub async fn remove_member(
        &self,
        actor: &Actor,
        name: &TopicName,
        username: &Username,
    ) -> Result<Topic, ServiceError> {
        let topic = self.find_topic(name).await?;
        let is_owner = topic.owner.as_deref() == Some(actor.username.as_str());
        if username.as_str() != actor.username && !is_owner && !actor.is_admin {
            return Err(ServiceError::Forbidden(
                "only the member, the owner or an admin may remove a member",
            ));
        }
        let user = self.user_named(username).await?;
        self.remove(actor, topic, user.id, &user.username).await
    }

    /// `unsubscribe`: `actor` leaves a topic.
    pub async fn leave(&self, actor: &Actor, name: &TopicName) -> Result<Topic, ServiceError> {
        let topic = self.find_topic(name).await?;
        self.remove(actor, topic, actor.id, &actor.username).await
    }

    async fn remove(
        &self,
        actor: &Actor,
        topic: Topic,
        user_id: i64,
        username: &str,
    ) -> Result<Topic, ServiceError> {
        if !self
            .store
            .leave_topic(actor, &topic, user_id, username)
            .await?
        {
            return Err(ServiceError::NotSubscribed(topic.name));
        }
        self.announce(Event::Left {
            user_id,
            channel_id: topic.id,
        })
        .await;
        Ok(topic)
    }
}
