//! Retention: the reads that respect it and the pruner's writes.
//!
//! A channel's `pruned_seq` marks where its history starts: every message
//! at or below it is gone. The pruner raises the mark in one short write,
//! then deletes below it a few hundred rows per transaction, so a publish
//! waits behind at most one small delete (SQLite has one writer) and never
//! behind a whole prune. Readers look at the mark *after* reading messages:
//! the mark rises before any row goes, so a hole a read finds below the
//! mark is pruning, never loss, and one above it cannot be pruning.

use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::Connection;

use super::audit::{Changes, record};
use super::{Store, StoreError};
use crate::model::{Actor, Pruned, Retention, StoredMessage, Topic};

/// Rows one delete transaction removes.
const DELETE_BATCH: i64 = 500;

/// Seqs one look for expired messages scans.
const AGE_SCAN: i64 = 1000;

/// What a reader catching up gets: the range retention took from under
/// it, if any, then the messages after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    pub pruned: Option<Pruned>,
    pub messages: Vec<StoredMessage>,
}

/// A channel with messages the pruner may have to remove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetainedChannel {
    pub id: i64,
    pub last_seq: i64,
    pub pruned_seq: i64,
    /// The lowest seq still stored.
    pub oldest_seq: i64,
    /// The channel's own limits (a direct conversation has none).
    pub retention: Retention,
}

#[derive(sqlx::FromRow)]
struct RetainedRow {
    id: i64,
    last_seq: i64,
    pruned_seq: i64,
    retain_age_secs: Option<i64>,
    retain_count: Option<i64>,
    oldest_seq: i64,
}

impl Store {
    /// Where a channel's history ends being pruned: messages at or below
    /// this seq are gone (0 when nothing is, or the channel is gone).
    pub async fn pruned_seq(&self, channel_id: i64) -> Result<i64, StoreError> {
        let mark: Option<i64> = sqlx::query_scalar("SELECT pruned_seq FROM channels WHERE id = $1")
            .bind(channel_id)
            .fetch_optional(&self.read)
            .await?;
        Ok(mark.unwrap_or(0))
    }

    /// Messages after `after`, oldest first, like `messages_after`, and
    /// the range below them that retention removed, if `after` is behind
    /// the channel's history. The mark is read only when the first message
    /// is not the very next seq: a contiguous read cannot have lost a thing.
    pub async fn backlog(
        &self,
        channel_id: i64,
        after: i64,
        limit: i64,
        skip_sender: Option<i64>,
    ) -> Result<Backlog, StoreError> {
        let messages = self
            .messages_after(channel_id, after, limit, skip_sender)
            .await?;
        if messages.first().is_some_and(|m| m.seq == after + 1) {
            return Ok(Backlog {
                pruned: None,
                messages,
            });
        }
        let mark = self.pruned_seq(channel_id).await?;
        if mark <= after {
            return Ok(Backlog {
                pruned: None,
                messages,
            });
        }
        // Rows at or below the mark that the read still saw are about to
        // go: leave them out, and read a full page past the mark instead.
        let messages = if messages.first().is_some_and(|m| m.seq <= mark) {
            self.messages_after(channel_id, mark, limit, skip_sender)
                .await?
        } else {
            messages
        };
        Ok(Backlog {
            pruned: Some(Pruned {
                from: after + 1,
                to: mark,
            }),
            messages,
        })
    }

    /// History after `after` for a reader who pages through it (REST),
    /// with the channel's pruning mark read after the messages.
    pub async fn history_after(
        &self,
        channel_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<(Vec<StoredMessage>, i64), StoreError> {
        let messages = self.messages_after(channel_id, after, limit, None).await?;
        let mark = self.pruned_seq(channel_id).await?;
        // Rows at or below the mark are on their way out: read past it.
        let messages = if messages.first().is_some_and(|m| m.seq <= mark) {
            self.messages_after(channel_id, mark, limit, None).await?
        } else {
            messages
        };
        Ok((messages, mark))
    }

    /// The newest `limit` messages below `before`, oldest first, with the
    /// channel's pruning mark read after them.
    pub async fn history_before(
        &self,
        channel_id: i64,
        before: i64,
        limit: i64,
    ) -> Result<(Vec<StoredMessage>, i64), StoreError> {
        let mut messages = self.messages_before(channel_id, before, limit).await?;
        let mark = self.pruned_seq(channel_id).await?;
        messages.retain(|m| m.seq > mark);
        Ok((messages, mark))
    }

    /// Channels with messages left, by id after `after_id`: the pruner's
    /// walk, a page at a time. Rows left below a mark by a prune that was
    /// stopped halfway show as `oldest_seq <= pruned_seq`.
    pub async fn retained_channels(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<RetainedChannel>, StoreError> {
        let rows: Vec<RetainedRow> = sqlx::query_as(
            "SELECT c.id, c.last_seq, c.pruned_seq, c.retain_age_secs, c.retain_count, \
             (SELECT MIN(m.seq) FROM messages m WHERE m.channel_id = c.id) AS oldest_seq \
             FROM channels c WHERE c.id > $1 AND EXISTS \
             (SELECT 1 FROM messages m WHERE m.channel_id = c.id) ORDER BY c.id LIMIT $2",
        )
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| RetainedChannel {
                id: r.id,
                last_seq: r.last_seq,
                pruned_seq: r.pruned_seq,
                oldest_seq: r.oldest_seq,
                retention: Retention {
                    max_age_secs: r.retain_age_secs,
                    max_count: r.retain_count,
                },
            })
            .collect())
    }

    /// The newest seq after `floor` of a message stored before `before`
    /// (Unix ms), or `floor` if none. Seqs are stamped in commit order, so
    /// expired messages are a prefix; the scan reads that prefix a window
    /// at a time and stops at the first window that is not all expired.
    pub async fn expired_through(
        &self,
        channel_id: i64,
        floor: i64,
        last_seq: i64,
        before: i64,
    ) -> Result<i64, StoreError> {
        let mut low = floor;
        while low < last_seq {
            let high = low + AGE_SCAN;
            let newest: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(seq) FROM messages WHERE channel_id = $1 AND seq > $2 AND seq <= $3 \
                 AND created_at < $4",
            )
            .bind(channel_id)
            .bind(low)
            .bind(high)
            .bind(before)
            .fetch_one(&self.read)
            .await?;
            match newest {
                Some(seq) if seq >= high => low = seq,
                Some(seq) => return Ok(seq),
                None => return Ok(low),
            }
        }
        Ok(low)
    }

    /// Removes a channel's messages up to `through`: raises the mark, then
    /// deletes in small transactions. Returns the rows deleted. Safe to run
    /// twice or from two processes at once: the mark only rises, and a
    /// delete of what is already gone deletes nothing.
    ///
    /// Once `stopping` is set it returns after the batch under way; the
    /// next pass finds the rows left below the mark and finishes.
    pub async fn prune(
        &self,
        channel_id: i64,
        through: i64,
        stopping: &AtomicBool,
    ) -> Result<u64, StoreError> {
        {
            let mut conn = self.writer().await?;
            sqlx::query("UPDATE channels SET pruned_seq = $2 WHERE id = $1 AND pruned_seq < $2")
                .bind(channel_id)
                .bind(through)
                .execute(&mut *conn)
                .await?;
        }
        let mut deleted = 0;
        loop {
            let batch = {
                let mut conn = self.writer().await?;
                sqlx::query(
                    "DELETE FROM messages WHERE channel_id = $1 AND seq IN \
                     (SELECT seq FROM messages WHERE channel_id = $1 AND seq <= $2 \
                      ORDER BY seq LIMIT $3)",
                )
                .bind(channel_id)
                .bind(through)
                .bind(DELETE_BATCH)
                .execute(&mut *conn)
                .await?
                .rows_affected()
            };
            deleted += batch;
            if batch < DELETE_BATCH as u64 || stopping.load(Ordering::Relaxed) {
                return Ok(deleted);
            }
            // Let the publishes queued behind this batch take their turn.
            tokio::task::yield_now().await;
        }
    }

    /// Sets a topic's own retention, audited.
    pub async fn set_retention(
        &self,
        actor: &Actor,
        topic: &Topic,
        retention: Retention,
    ) -> Result<(), StoreError> {
        let mut conn = self.writer().await?;
        let mut tx = conn.begin().await?;
        let updated = sqlx::query(
            "UPDATE channels SET retain_age_secs = $2, retain_count = $3 \
             WHERE id = $1 AND kind = 'topic'",
        )
        .bind(topic.id)
        .bind(retention.max_age_secs)
        .bind(retention.max_count)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        let old = topic.retention;
        let changes = Changes::new()
            .field(
                "retention_max_age_secs",
                old.max_age_secs,
                retention.max_age_secs,
            )
            .field("retention_max_count", old.max_count, retention.max_count);
        if !changes.is_empty() {
            record(&mut tx, Some(actor), "topic", topic.id, "update", changes).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
