//! Notifications and the inbox. Every change of an item's state is
//! announced to all of its owner's sockets, so every device agrees.

use super::{Core, ServiceError, admin_only};
use crate::events::{Event, InboxChange};
use crate::model::{Actor, InboxItem, Notification};
use crate::paging::{Page, PageRequest};

impl Core {
    pub async fn create_notification(
        &self,
        actor: &Actor,
        tag_id: i64,
        message: &str,
    ) -> Result<Notification, ServiceError> {
        admin_only(actor)?;
        super::storable("message", message)?;
        if message.is_empty() {
            return Err(ServiceError::Invalid {
                field: "message",
                message: "must not be empty".into(),
            });
        }
        if message.len() > self.limits.max_content_bytes {
            return Err(ServiceError::TooLarge(format!(
                "message is limited to {} bytes",
                self.limits.max_content_bytes
            )));
        }
        let notification = self
            .store
            .create_notification(actor, tag_id, message)
            .await
            .map_err(|e| match e {
                crate::store::StoreError::NotFound => ServiceError::NotFound("tag"),
                other => other.into(),
            })?;
        metrics::counter!("tidings_notifications_stored_total").increment(1);
        self.announce(Event::Notification {
            seq: notification.seq,
            notification: notification.clone(),
        })
        .await;
        Ok(notification)
    }

    pub async fn inbox(
        &self,
        actor: &Actor,
        unread: Option<bool>,
        page: PageRequest,
    ) -> Result<Page<InboxItem>, ServiceError> {
        Ok(self.store.inbox_page(actor.id, unread, page).await?)
    }

    /// Sets an item's flags. Another user's item is simply not found.
    pub async fn update_inbox_item(
        &self,
        actor: &Actor,
        id: i64,
        is_read: Option<bool>,
        is_deleted: Option<bool>,
    ) -> Result<InboxItem, ServiceError> {
        let item = self
            .store
            .inbox_item(actor.id, id)
            .await?
            .ok_or(ServiceError::NotFound("notification"))?;
        let updated = self
            .store
            .update_inbox_item(actor, &item, is_read, is_deleted)
            .await?;
        let change = match (is_deleted, is_read) {
            (Some(true), _) => Some(InboxChange::Deleted),
            (_, Some(read)) if read != item.is_read => Some(if read {
                InboxChange::Read
            } else {
                InboxChange::Unread
            }),
            _ => None,
        };
        if let Some(change) = change {
            self.announce(Event::Inbox {
                user_id: actor.id,
                id,
                change,
            })
            .await;
        }
        Ok(updated)
    }

    pub async fn read_all(&self, actor: &Actor) -> Result<i64, ServiceError> {
        let (updated, up_to) = self.store.read_all(actor).await?;
        if updated > 0 {
            self.announce(Event::Inbox {
                user_id: actor.id,
                id: up_to,
                change: InboxChange::ReadAll,
            })
            .await;
        }
        Ok(updated)
    }
}
