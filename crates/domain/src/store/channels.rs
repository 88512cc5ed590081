//! Topics, direct conversations, memberships and messages.
//!
//! A topic and a direct conversation are both a *channel*: a gap-free `seq`
//! bumped under the channel row's lock, so seqs commit in order, and one
//! membership row per member carrying its delivery cursor. A reconnecting
//! member's backlog is then one range scan on `messages (channel_id, seq)`.

use sqlx::Connection;

use super::audit::{Changes, record};
use super::users::claim_name;
use super::{Store, StoreError, conflict, flag};
use crate::model::{Actor, Audience, Member, Retention, StoredMessage, Topic};
use crate::names::TopicName;
use crate::paging::{Page, PageRequest};
use crate::time::now_millis;

/// A queued publish, resolved when its commit lands.
#[derive(Debug)]
pub struct Receipt(tokio::sync::oneshot::Receiver<Result<StoredMessage, StoreError>>);

impl Receipt {
    pub async fn committed(self) -> Result<StoredMessage, StoreError> {
        self.0.await.map_err(|_| writer_gone())?
    }
}

/// A reserved place in the commit queue (see [`Store::queue_slot`]).
pub struct QueueSlot<'a>(tokio::sync::mpsc::Permit<'a, super::group_commit::PublishRequest>);

impl QueueSlot<'_> {
    /// Queues a message as [`Store::queue_publish`] does.
    pub fn queue(
        self,
        channel_id: i64,
        sender: &Actor,
        content: String,
        audience: Option<Audience>,
    ) -> Receipt {
        let (request, receipt) = publish_request(channel_id, sender, content, audience);
        self.0.send(request);
        receipt
    }
}

fn publish_request(
    channel_id: i64,
    sender: &Actor,
    content: String,
    audience: Option<Audience>,
) -> (super::group_commit::PublishRequest, Receipt) {
    let (reply, stored) = tokio::sync::oneshot::channel();
    let request = super::group_commit::PublishRequest {
        channel_id,
        sender: sender.clone(),
        content,
        audience,
        reply,
    };
    (request, Receipt(stored))
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the store's writer has stopped".into())
}

/// What a membership is a membership of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelKind {
    Topic {
        name: String,
    },
    /// A direct conversation, named by the other participant.
    Direct {
        peer: String,
    },
}

/// One of a user's memberships with its delivery cursor, as the gateway
/// needs it at connect time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub channel_id: i64,
    pub kind: ChannelKind,
    pub delivered_seq: i64,
}

impl Membership {
    /// How this channel is named in frames sent to this member.
    pub fn label(&self) -> String {
        match &self.kind {
            ChannelKind::Topic { name } => name.clone(),
            ChannelKind::Direct { peer } => format!("@{peer}"),
        }
    }
}

#[derive(sqlx::FromRow)]
struct TopicRow {
    id: i64,
    name: String,
    private: i64,
    owner: Option<String>,
    created_at: i64,
    last_seq: i64,
    retain_age_secs: Option<i64>,
    retain_count: Option<i64>,
}

impl From<TopicRow> for Topic {
    fn from(r: TopicRow) -> Self {
        Self {
            id: r.id,
            name: r.name,
            private: r.private != 0,
            owner: r.owner,
            created_at: r.created_at,
            retention: Retention {
                max_age_secs: r.retain_age_secs,
                max_count: r.retain_count,
            },
            last_seq: r.last_seq,
        }
    }
}

const TOPIC_COLUMNS: &str = "c.id, c.name, c.private, u.username AS owner, c.created_at, c.last_seq, \
     c.retain_age_secs, c.retain_count \
     FROM channels c LEFT JOIN users u ON u.id = c.owner_id";

#[derive(sqlx::FromRow)]
struct MessageRow {
    id: i64,
    channel_id: i64,
    seq: i64,
    sender_id: i64,
    sender: String,
    content: String,
    created_at: i64,
}

impl From<MessageRow> for StoredMessage {
    fn from(r: MessageRow) -> Self {
        Self {
            id: r.id,
            channel_id: r.channel_id,
            seq: r.seq,
            sender_id: r.sender_id,
            sender: r.sender,
            content: r.content,
            created_at: r.created_at,
        }
    }
}

/// A message row with its sender's name, as history and backlogs read it.
const MESSAGES: &str = "SELECT m.id, m.channel_id, m.seq, m.sender_id, u.username AS sender, \
     m.content, m.created_at FROM messages m JOIN users u ON u.id = m.sender_id";

impl Store {
    /// Creates a topic; its creator becomes its owner and first member.
    pub async fn create_topic(
        &self,
        actor: &Actor,
        name: &TopicName,
        private: bool,
    ) -> Result<Topic, StoreError> {
        let now = now_millis();
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        claim_name(&mut tx, name.as_str()).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO channels (kind, name, private, owner_id, created_at) \
             VALUES ('topic', $1, $2, $3, $4) RETURNING id",
        )
        .bind(name.as_str())
        .bind(flag(private))
        .bind(actor.id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(conflict("name"))?;
        sqlx::query(
            "INSERT INTO memberships (channel_id, user_id, joined_at, delivered_seq) \
             VALUES ($1, $2, $3, 0)",
        )
        .bind(id)
        .bind(actor.id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let changes = Changes::new()
            .created("name", name.as_str())
            .created("private", private);
        record(&mut tx, Some(actor), "topic", id, "create", changes).await?;
        let membership = Changes::new()
            .created("topic", name.as_str())
            .created("user", &actor.username);
        record(
            &mut tx,
            Some(actor),
            "membership",
            format!("{id}:{}", actor.id),
            "create",
            membership,
        )
        .await?;
        tx.commit().await?;
        Ok(Topic {
            id,
            name: name.to_string(),
            private,
            owner: Some(actor.username.clone()),
            created_at: now,
            retention: Retention::default(),
            last_seq: 0,
        })
    }

    pub async fn topic(&self, name: &str) -> Result<Option<Topic>, StoreError> {
        let row: Option<TopicRow> = sqlx::query_as(&format!(
            "SELECT {TOPIC_COLUMNS} WHERE c.kind = 'topic' AND c.name = $1"
        ))
        .bind(name)
        .fetch_optional(&self.read)
        .await?;
        Ok(row.map(Into::into))
    }

    /// Public topics and the private ones `viewer` belongs to, by name.
    pub async fn topics_page(
        &self,
        viewer: &Actor,
        page: PageRequest,
    ) -> Result<Page<Topic>, StoreError> {
        const VISIBLE: &str = "c.kind = 'topic' AND (c.private = 0 OR EXISTS \
             (SELECT 1 FROM memberships m WHERE m.channel_id = c.id AND m.user_id = $1))";
        let count: i64 =
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM channels c WHERE {VISIBLE}"))
                .bind(viewer.id)
                .fetch_one(&self.read)
                .await?;
        let rows: Vec<TopicRow> = sqlx::query_as(&format!(
            "SELECT {TOPIC_COLUMNS} WHERE {VISIBLE} ORDER BY c.name LIMIT $2 OFFSET $3"
        ))
        .bind(viewer.id)
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.read)
        .await?;
        Ok(Page::new(
            page,
            count,
            rows.into_iter().map(Into::into).collect(),
        ))
    }

    /// Deletes a topic with its members and messages, freeing its name.
    pub async fn delete_topic(&self, actor: &Actor, topic: &Topic) -> Result<(), StoreError> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let deleted = sqlx::query("DELETE FROM channels WHERE id = $1 AND kind = 'topic'")
            .bind(topic.id)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM names WHERE name = $1")
            .bind(&topic.name)
            .execute(&mut *tx)
            .await?;
        let changes = Changes::new()
            .removed("name", &topic.name)
            .removed("private", topic.private);
        record(&mut tx, Some(actor), "topic", topic.id, "delete", changes).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn members(&self, channel_id: i64) -> Result<Vec<Member>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT u.username, m.joined_at FROM memberships m JOIN users u ON u.id = m.user_id \
             WHERE m.channel_id = $1 ORDER BY m.joined_at, u.username",
        )
        .bind(channel_id)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(username, joined_at)| Member {
                username,
                joined_at,
            })
            .collect())
    }

    pub async fn is_member(&self, channel_id: i64, user_id: i64) -> Result<bool, StoreError> {
        Ok(self.delivered_seq(channel_id, user_id).await?.is_some())
    }

    /// The member's delivery cursor, or `None` for a non-member.
    pub async fn delivered_seq(
        &self,
        channel_id: i64,
        user_id: i64,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT delivered_seq FROM memberships WHERE channel_id = $1 AND user_id = $2",
        )
        .bind(channel_id)
        .bind(user_id)
        .fetch_optional(&self.read)
        .await?)
    }

    /// Adds a member whose delivery starts after the topic's current last
    /// message. Returns the new cursor, or `None` if already a member.
    pub async fn join_topic(
        &self,
        actor: &Actor,
        topic: &Topic,
        user_id: i64,
        username: &str,
    ) -> Result<Option<i64>, StoreError> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let cursor: Option<i64> = sqlx::query_scalar(
            "INSERT INTO memberships (channel_id, user_id, joined_at, delivered_seq) \
             SELECT id, $2, $3, last_seq FROM channels WHERE id = $1 \
             ON CONFLICT (channel_id, user_id) DO NOTHING RETURNING delivered_seq",
        )
        .bind(topic.id)
        .bind(user_id)
        .bind(now_millis())
        .fetch_optional(&mut *tx)
        .await?;
        if cursor.is_some() {
            let changes = Changes::new()
                .created("topic", &topic.name)
                .created("user", username);
            record(
                &mut tx,
                Some(actor),
                "membership",
                format!("{}:{user_id}", topic.id),
                "create",
                changes,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(cursor)
    }

    /// Removes a member; `false` if they were not one.
    pub async fn leave_topic(
        &self,
        actor: &Actor,
        topic: &Topic,
        user_id: i64,
        username: &str,
    ) -> Result<bool, StoreError> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let gone = sqlx::query("DELETE FROM memberships WHERE channel_id = $1 AND user_id = $2")
            .bind(topic.id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        if gone {
            let changes = Changes::new()
                .removed("topic", &topic.name)
                .removed("user", username);
            record(
                &mut tx,
                Some(actor),
                "membership",
                format!("{}:{user_id}", topic.id),
                "delete",
                changes,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(gone)
    }

    /// Stores a message under the channel's next seq, announcing it to nobody.
    pub async fn publish(
        &self,
        channel_id: i64,
        sender: &Actor,
        content: &str,
    ) -> Result<StoredMessage, StoreError> {
        self.queue_publish(channel_id, sender, content.to_owned(), None)
            .await?
            .committed()
            .await
    }

    /// Queues a message for the next group commit and returns once it has
    /// its place: messages queued one after another are stored in that
    /// order. The [`Receipt`] resolves when the message is committed.
    pub async fn queue_publish(
        &self,
        channel_id: i64,
        sender: &Actor,
        content: String,
        audience: Option<Audience>,
    ) -> Result<Receipt, StoreError> {
        let (request, receipt) = publish_request(channel_id, sender, content, audience);
        self.writer
            .publisher
            .send(request)
            .await
            .map_err(|_| writer_gone())?;
        Ok(receipt)
    }

    /// A place in the commit queue when one is free right now, so a caller
    /// that has everything else at hand can queue without waiting (and
    /// without giving up what it would queue when there is none).
    pub fn queue_slot(&self) -> Result<Option<QueueSlot<'_>>, StoreError> {
        use tokio::sync::mpsc::error::TrySendError;
        match self.writer.publisher.try_reserve() {
            Ok(permit) => Ok(Some(QueueSlot(permit))),
            Err(TrySendError::Full(())) => Ok(None),
            Err(TrySendError::Closed(())) => Err(writer_gone()),
        }
    }

    /// Messages with `seq > after`, oldest first. With `skip_sender`, that
    /// user's own messages are left out (a member is never sent its own).
    pub async fn messages_after(
        &self,
        channel_id: i64,
        after: i64,
        limit: i64,
        skip_sender: Option<i64>,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let rows: Vec<MessageRow> = sqlx::query_as(&format!(
            "{MESSAGES} WHERE m.channel_id = $1 AND m.seq > $2 AND ($4 IS NULL OR m.sender_id <> $4) \
             ORDER BY m.seq LIMIT $3"
        ))
        .bind(channel_id)
        .bind(after)
        .bind(limit)
        .bind(skip_sender)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// The newest `limit` messages of a channel below `before`, oldest first.
    pub async fn messages_before(
        &self,
        channel_id: i64,
        before: i64,
        limit: i64,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let rows: Vec<MessageRow> = sqlx::query_as(&format!(
            "{MESSAGES} WHERE m.channel_id = $1 AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3"
        ))
        .bind(channel_id)
        .bind(before)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows.into_iter().rev().map(Into::into).collect())
    }
}
