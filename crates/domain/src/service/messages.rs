//! Publishing and reading messages, in topics and direct conversations.

use std::sync::Arc;

use super::{Core, ServiceError};
use crate::model::{Actor, Audience, Message, StoredMessage, Topic, User};
use crate::names::{Target, TopicName, Username};
use crate::store::{Receipt, StoreError};

/// A stored message and how its publisher names the channel.
#[derive(Debug, Clone)]
pub struct Published {
    pub message: StoredMessage,
    /// The topic name, or `@peer` for a direct message.
    pub label: String,
}

/// A publish that passed its checks and is ready to queue.
#[derive(Debug)]
pub struct Checked {
    channel_id: i64,
    audience: Audience,
    label: String,
    content: String,
    /// The topic or the conversation came from the cache and may be gone
    /// since.
    cached: bool,
}

/// A publish with its place in the commit queue.
#[derive(Debug)]
pub struct Queued {
    receipt: Receipt,
    label: String,
    /// The content again, when the topic came from the cache: if the topic
    /// turns out gone, the name is resolved afresh and published to.
    retry: Option<String>,
}

/// What [`Core::queue_at_once`] did with a publish.
#[derive(Debug)]
pub enum AtOnce {
    /// Checked and queued.
    Queued(Queued),
    /// Checked and refused.
    Refused(ServiceError),
    /// Its checks or its place in the queue need a wait: the content back,
    /// for [`Core::check_publish`] and [`Core::queue_publish`].
    Wait(String),
}

/// How a queued publish ended.
enum Landed {
    Done(Result<Published, ServiceError>),
    /// Its cached topic was gone; the name must be resolved again.
    Gone {
        label: String,
        content: String,
    },
}

impl Published {
    pub fn as_message(&self) -> Message {
        self.message.labelled(self.label.clone())
    }
}

impl Core {
    fn check_content(&self, content: &str) -> Result<(), ServiceError> {
        super::storable("content", content)?;
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

    /// Publishes to a topic, or to a user when the target names one, and
    /// waits for the commit.
    pub async fn publish(
        &self,
        actor: &Actor,
        target: &Target,
        content: &str,
    ) -> Result<Published, ServiceError> {
        let checked = self
            .check_publish(actor, target, content.to_owned())
            .await?;
        let queued = self.queue_publish(actor, checked).await?;
        self.committed(actor, queued).await
    }

    /// Resolves the target and applies every rule, without queuing. Checks
    /// of one client may run concurrently; [`Core::queue_publish`] then
    /// fixes their order.
    pub async fn check_publish(
        &self,
        actor: &Actor,
        target: &Target,
        content: String,
    ) -> Result<Checked, ServiceError> {
        self.check_content(&content)?;
        let name = match target {
            Target::User(name) => return self.check_direct(actor, name.as_str(), content).await,
            Target::Name(name) => name,
        };
        if let Some(topic) = self.topics.get(name.as_str()) {
            return self.check_topic(actor, &topic, content, true).await;
        }
        // Read once for every publish that misses it at the same moment (a
        // pipelining client's first burst, every publisher after a start):
        // a read each would queue hundreds on the pool.
        let found = self
            .topics
            .get_or_try(name.as_str().to_owned(), || async {
                self.store.topic(name).await?.ok_or(NoTopic::Missing)
            })
            .await;
        match found {
            Ok(topic) => self.check_topic(actor, &topic, content, false).await,
            Err(NoTopic::Missing) => self.check_direct(actor, name, content).await,
            Err(NoTopic::Store(err)) => Err(err.into()),
        }
    }

    /// Queues a checked publish for the group commit. Publishes queued one
    /// after another get increasing seqs in that order.
    pub async fn queue_publish(
        &self,
        actor: &Actor,
        checked: Checked,
    ) -> Result<Queued, ServiceError> {
        let retry = checked.cached.then(|| checked.content.clone());
        let receipt = self
            .store
            .queue_publish(
                checked.channel_id,
                actor,
                checked.content,
                Some(checked.audience),
            )
            .await?;
        Ok(Queued {
            receipt,
            label: checked.label,
            retry,
        })
    }

    /// Checks and queues a publish at once when nothing in it needs the
    /// store: a public topic the cache knows, and room in the commit queue.
    /// That is nearly every publish of a busy topic, and it then needs no
    /// task of its own, which under a fan-out waited behind every session
    /// the last message woke before it even reached the queue.
    ///
    /// Queue only when nothing this client sent before is still waiting
    /// for its place: order is kept by queuing in turn.
    pub fn queue_at_once(&self, actor: &Actor, target: &Target, content: String) -> AtOnce {
        if let Err(err) = self.check_content(&content) {
            return AtOnce::Refused(err);
        }
        let Target::Name(name) = target else {
            return AtOnce::Wait(content);
        };
        let Some(topic) = self.topics.get(name.as_str()).filter(|t| !t.private) else {
            return AtOnce::Wait(content);
        };
        let slot = match self.store.queue_slot() {
            Ok(Some(slot)) => slot,
            Ok(None) => return AtOnce::Wait(content),
            Err(err) => return AtOnce::Refused(err.into()),
        };
        let retry = Some(content.clone());
        let audience = Audience::Topic {
            name: topic.name.clone(),
        };
        AtOnce::Queued(Queued {
            receipt: slot.queue(topic.id, actor, content, Some(audience)),
            label: topic.name,
            retry,
        })
    }

    /// Waits for a queued publish to commit.
    pub async fn committed(
        &self,
        actor: &Actor,
        queued: Queued,
    ) -> Result<Published, ServiceError> {
        match Self::landed(queued).await {
            Landed::Done(result) => result,
            Landed::Gone { label, content } => self.republish(actor, &label, &content).await,
        }
    }

    /// [`Core::committed`], for a caller that polls it beside its own reads
    /// of the store: waiting for the commit holds nothing, and the rare
    /// publish again (its topic was gone) runs as a task of its own, so it
    /// lets go of its connection even while the caller is busy elsewhere.
    pub async fn committed_apart(
        self: &Arc<Self>,
        actor: &Actor,
        queued: Queued,
    ) -> Result<Published, ServiceError> {
        match Self::landed(queued).await {
            Landed::Done(result) => result,
            Landed::Gone { label, content } => {
                let (core, actor) = (self.clone(), actor.clone());
                let again =
                    tokio::spawn(async move { core.republish(&actor, &label, &content).await });
                tokio_util::task::AbortOnDropHandle::new(again)
                    .await
                    .unwrap_or(Err(ServiceError::Internal("the publish stopped")))
            }
        }
    }

    async fn landed(queued: Queued) -> Landed {
        match (queued.receipt.committed().await, queued.retry) {
            (Ok(message), _) => Landed::Done(Ok(Published {
                message,
                label: queued.label,
            })),
            // Nothing was stored: the remembered topic is gone (ids are
            // never reused, so a new topic by that name has another).
            (Err(StoreError::NotFound), Some(content)) => Landed::Gone {
                label: queued.label,
                content,
            },
            (Err(err), _) => Landed::Done(Err(err.into())),
        }
    }

    /// Publishes to a name whose remembered topic or conversation was
    /// gone: looked up afresh, with its rules.
    async fn republish(
        &self,
        actor: &Actor,
        label: &str,
        content: &str,
    ) -> Result<Published, ServiceError> {
        match label.strip_prefix('@') {
            Some(peer) => self.directs.remove(&(actor.id, peer.to_owned())),
            None => self.topics.remove(label),
        }
        let target = Target::parse(label).map_err(|_| ServiceError::NotFound("topic or user"))?;
        Box::pin(self.publish(actor, &target, content)).await
    }

    /// Publishes to a known topic and waits for the commit.
    pub async fn publish_topic(
        &self,
        actor: &Actor,
        topic: &Topic,
        content: &str,
    ) -> Result<Published, ServiceError> {
        self.check_content(content)?;
        let checked = self
            .check_topic(actor, topic, content.to_owned(), false)
            .await?;
        let queued = self.queue_publish(actor, checked).await?;
        self.committed(actor, queued).await
    }

    async fn check_topic(
        &self,
        actor: &Actor,
        topic: &Topic,
        content: String,
        cached: bool,
    ) -> Result<Checked, ServiceError> {
        if topic.private && !self.store.is_member(topic.id, actor.id).await? {
            return Err(ServiceError::Forbidden(
                "only members may publish to a private topic",
            ));
        }
        Ok(Checked {
            channel_id: topic.id,
            audience: Audience::Topic {
                name: topic.name.clone(),
            },
            label: topic.name.clone(),
            content,
            cached,
        })
    }

    async fn check_direct(
        &self,
        actor: &Actor,
        username: &str,
        content: String,
    ) -> Result<Checked, ServiceError> {
        let (peer, channel_id) = self.direct(actor, username).await?;
        Ok(Checked {
            channel_id,
            audience: Audience::Direct { to: peer.id },
            label: format!("@{}", peer.username),
            content,
            // The commit takes nothing for a conversation whose peer is
            // gone (see `group_commit.rs`), and the peer is looked up again.
            cached: true,
        })
    }

    /// The peer and the conversation with them, created on first use.
    async fn direct(&self, actor: &Actor, username: &str) -> Result<(User, i64), ServiceError> {
        if username == actor.username {
            return Err(yourself());
        }
        self.directs
            .get_or_try((actor.id, username.to_owned()), || async {
                self.conversations
                    .get((actor.id, username.to_owned()))
                    .await?
                    .ok_or(ServiceError::NotFound("topic or user"))
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
            return Err(yourself());
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

    async fn history_slice(
        &self,
        channel: i64,
        slice: HistorySlice,
        limit: i64,
        label: &str,
    ) -> Result<HistoryPage, ServiceError> {
        let (messages, mark) = match slice {
            HistorySlice::After(after) => self.store.history_after(channel, after, limit).await?,
            HistorySlice::Before(before) => {
                self.store.history_before(channel, before, limit).await?
            }
        };
        Ok(HistoryPage {
            messages: messages.iter().map(|m| m.labelled(label)).collect(),
            first_seq: mark + 1,
        })
    }

    /// A slice of a topic's history, oldest first.
    pub async fn topic_history(
        &self,
        actor: &Actor,
        name: &TopicName,
        slice: HistorySlice,
        limit: Option<i64>,
    ) -> Result<HistoryPage, ServiceError> {
        let limit = self.history_limit(limit)?;
        let topic = self.readable_topic(actor, name).await?;
        self.history_slice(topic.id, slice, limit, &topic.name)
            .await
    }

    /// A slice of the conversation between `actor` and `username`, oldest
    /// first.
    pub async fn direct_history(
        &self,
        actor: &Actor,
        username: &Username,
        slice: HistorySlice,
        limit: Option<i64>,
    ) -> Result<HistoryPage, ServiceError> {
        let limit = self.history_limit(limit)?;
        let peer = self.peer(actor, username.as_str()).await?;
        let Some(channel) = self.store.find_direct_channel(actor.id, peer.id).await? else {
            return Ok(HistoryPage {
                messages: Vec::new(),
                first_seq: 1,
            });
        };
        let label = format!("@{}", peer.username);
        self.history_slice(channel, slice, limit, &label).await
    }
}

/// A slice of a channel's history, and where what retention left starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub messages: Vec<Message>,
    /// The oldest seq retention has not removed (1 when nothing was).
    pub first_seq: i64,
}

/// Which part of a history to read: forward from a position (catching up),
/// or backward from one (a reader scrolling back from the newest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistorySlice {
    /// Messages with a greater seq, oldest first.
    After(i64),
    /// The newest messages with a smaller seq, still oldest first.
    Before(i64),
}

impl HistorySlice {
    /// From `?after=` and `?before=`: at most one of them, neither negative;
    /// neither means from the start.
    pub fn parse(after: Option<i64>, before: Option<i64>) -> Result<Self, ServiceError> {
        let invalid = |field, message: &str| ServiceError::Invalid {
            field,
            message: message.into(),
        };
        match (after, before) {
            (Some(_), Some(_)) => Err(invalid("before", "give `after` or `before`, not both")),
            (Some(after), None) if after < 0 => Err(invalid("after", "must be 0 or more")),
            (None, Some(before)) if before < 1 => Err(invalid("before", "must be 1 or more")),
            (None, Some(before)) => Ok(Self::Before(before)),
            (after, None) => Ok(Self::After(after.unwrap_or(0))),
        }
    }
}

/// Why a name resolved to no topic.
enum NoTopic {
    /// No topic has it (it may name a user).
    Missing,
    Store(StoreError),
}

impl From<StoreError> for NoTopic {
    fn from(err: StoreError) -> Self {
        Self::Store(err)
    }
}

fn yourself() -> ServiceError {
    ServiceError::Invalid {
        field: "topic_name",
        message: "cannot send a direct message to yourself".into(),
    }
}
