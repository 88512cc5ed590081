//! Tags and subscriptions: admins manage tags; users subscribe themselves,
//! admins subscribe anyone.

use super::{Core, ServiceError, admin_only};
use crate::events::Event;
use crate::model::{Actor, Subscription, Tag};

/// The longest tag name, in characters.
pub const MAX_TAG_LEN: usize = 64;

impl Core {
    /// Every tag.
    pub async fn tags(&self) -> Result<Vec<Tag>, ServiceError> {
        Ok(self.store.tags().await?)
    }

    pub async fn create_tag(&self, actor: &Actor, name: &str) -> Result<Tag, ServiceError> {
        admin_only(actor)?;
        let name = name.trim();
        if name.is_empty()
            || name.chars().count() > MAX_TAG_LEN
            || name.chars().any(char::is_control)
        {
            return Err(ServiceError::Invalid {
                field: "name",
                message: format!("1 to {MAX_TAG_LEN} printable characters"),
            });
        }
        Ok(self.store.create_tag(actor, name).await?)
    }

    pub async fn delete_tag(&self, actor: &Actor, id: i64) -> Result<(), ServiceError> {
        admin_only(actor)?;
        self.store
            .delete_tag(actor, id)
            .await
            .map_err(|e| not_found(e, "tag"))
    }

    pub async fn subscribe_tag(
        &self,
        actor: &Actor,
        user_id: i64,
        tag_id: i64,
    ) -> Result<Subscription, ServiceError> {
        if user_id != actor.id {
            admin_only(actor)?;
            self.store
                .user_by_id(user_id)
                .await?
                .ok_or(ServiceError::NotFound("user"))?;
        }
        let sub = self
            .store
            .subscribe(actor, user_id, tag_id)
            .await
            .map_err(|e| not_found(e, "tag"))?;
        let from_seq = self
            .store
            .tag_subscriptions(user_id)
            .await?
            .into_iter()
            .find(|s| s.id == sub.id)
            .map_or(0, |s| s.delivered_seq);
        self.announce(Event::Subscribed {
            user_id,
            subscription_id: sub.id,
            tag_id,
            from_seq,
        })
        .await;
        Ok(sub)
    }

    /// Admins see every subscription (or one user's); users see their own.
    pub async fn list_subscriptions(
        &self,
        actor: &Actor,
        user: Option<i64>,
    ) -> Result<Vec<Subscription>, ServiceError> {
        let user = if actor.is_admin { user } else { Some(actor.id) };
        Ok(self.store.subscriptions(user).await?)
    }

    pub async fn end_subscription(&self, actor: &Actor, id: i64) -> Result<(), ServiceError> {
        let sub = self
            .store
            .subscription(id)
            .await?
            .ok_or(ServiceError::NotFound("subscription"))?;
        if sub.user != actor.id && !actor.is_admin {
            // Someone else's subscription: its id says nothing.
            return Err(ServiceError::NotFound("subscription"));
        }
        self.store.end_subscription(actor, &sub).await?;
        self.announce(Event::Unsubscribed {
            user_id: sub.user,
            subscription_id: sub.id,
            tag_id: sub.tag,
        })
        .await;
        Ok(())
    }
}

fn not_found(err: crate::store::StoreError, what: &'static str) -> ServiceError {
    match err {
        crate::store::StoreError::NotFound => ServiceError::NotFound(what),
        other => other.into(),
    }
}
