//! Group commit for publishes: one writer task takes every publish waiting
//! at that moment and stores them in one transaction, one `UPDATE` per
//! channel (reserving a run of seqs) and multi-row `INSERT`s. Each
//! publisher still waits for the commit that holds its message, so an ack
//! still means stored; under load, many acks share one fsync.
//!
//! A publish may carry its [`Announcement`]: as soon as the commit lands,
//! the writer's announcer puts it on the bus, in seq order, while the
//! publisher hears back. Subscribers then do not wait for the publisher's
//! task to be scheduled again, which under load is the longest wait on the
//! way, and the next commit does not wait for the bus.

use std::collections::HashMap;

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use crate::bus::SharedBus;
use crate::events::Event;
use crate::model::{Actor, StoredMessage};
use crate::time::now_millis;

/// The most publishes one transaction takes.
const MAX_BATCH: usize = 512;
/// Commits whose events may wait for the bus before the writer waits too.
const ANNOUNCE_BACKLOG: usize = 1024;
/// Rows per `INSERT` statement (5 parameters each).
const ROWS_PER_INSERT: usize = 100;

pub(super) struct PublishRequest {
    pub channel_id: i64,
    pub sender: Actor,
    pub content: String,
    pub announce: Option<Announcement>,
    pub reply: oneshot::Sender<Result<StoredMessage, StoreError>>,
}

/// The event that tells everyone about a stored message, and where to send it.
pub struct Announcement {
    pub bus: SharedBus,
    pub event: Box<dyn FnOnce(&StoredMessage) -> Event + Send>,
}

/// Starts the writer; it ends when every sender is dropped.
///
/// The writer runs on a thread of its own: on the shared runtime each of
/// its steps (begin, write, commit) would wait its turn behind every socket
/// being written, and an ack waits for all of them.
pub(super) fn spawn(pool: AnyPool) -> std::io::Result<mpsc::Sender<PublishRequest>> {
    let (sender, receiver) = mpsc::channel(4 * MAX_BATCH);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("tidings-commit".into())
        .spawn(move || runtime.block_on(run(pool, receiver)))?;
    Ok(sender)
}

async fn run(pool: AnyPool, mut receiver: mpsc::Receiver<PublishRequest>) {
    let (announcer, announcements) = mpsc::channel(ANNOUNCE_BACKLOG);
    tokio::spawn(announce(announcements));
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        match write(&pool, &batch).await {
            Ok(results) => {
                let events = events(&mut batch, &results);
                if !events.is_empty() {
                    let _ = announcer.send(events).await;
                }
                for (request, result) in batch.into_iter().zip(results) {
                    let _ = request.reply.send(result);
                }
            }
            Err(err) => {
                let text = err.to_string();
                tracing::error!(error = %text, publishes = batch.len(), "a publish batch failed");
                for request in batch {
                    let _ = request
                        .reply
                        .send(Err(StoreError::Unavailable(text.clone())));
                }
            }
        }
    }
}

/// The announcements of the messages just stored, in commit order.
fn events(
    batch: &mut [PublishRequest],
    results: &[Result<StoredMessage, StoreError>],
) -> Vec<(SharedBus, Event)> {
    batch
        .iter_mut()
        .zip(results)
        .filter_map(|(request, result)| {
            let announcement = request.announce.take()?;
            let message = result.as_ref().ok()?;
            Some((announcement.bus, (announcement.event)(message)))
        })
        .collect()
}

/// Puts committed events on the bus, one commit's worth at a time and in
/// order, beside the writer: the next commit does not wait for the bus. A
/// bus failure does not undo the commit: gateways fill gaps from the store.
async fn announce(mut commits: mpsc::Receiver<Vec<(SharedBus, Event)>>) {
    while let Some(events) = commits.recv().await {
        let publishes = events
            .into_iter()
            .map(|(bus, event)| async move { bus.publish(event).await });
        // Polled in order, so a pipelining bus (Redis) sends them in order.
        for result in futures_util::future::join_all(publishes).await {
            if let Err(err) = result {
                tracing::warn!(%err, "event not published; gateways will catch up from the store");
            }
        }
    }
}

/// The batch's requests by channel, channels in order of first appearance.
fn by_channel(batch: &[PublishRequest]) -> (Vec<i64>, HashMap<i64, Vec<usize>>) {
    let mut channels: Vec<i64> = Vec::new();
    let mut by_channel: HashMap<i64, Vec<usize>> = HashMap::new();
    for (i, request) in batch.iter().enumerate() {
        by_channel
            .entry(request.channel_id)
            .or_insert_with(|| {
                channels.push(request.channel_id);
                Vec::new()
            })
            .push(i);
    }
    (channels, by_channel)
}

fn stored(request: &PublishRequest, id: i64, seq: i64, now: i64) -> StoredMessage {
    StoredMessage {
        id,
        channel_id: request.channel_id,
        seq,
        sender_id: request.sender.id,
        sender: request.sender.username.clone(),
        content: request.content.clone(),
        created_at: now,
    }
}

async fn write(
    pool: &AnyPool,
    batch: &[PublishRequest],
) -> Result<Vec<Result<StoredMessage, StoreError>>, StoreError> {
    let now = now_millis();
    let (channels, by_channel) = by_channel(batch);
    let mut results: Vec<Result<StoredMessage, StoreError>> =
        batch.iter().map(|_| Err(StoreError::NotFound)).collect();
    let mut tx = pool.begin().await?;
    for channel_id in channels {
        let members = &by_channel[&channel_id];
        let count = members.len() as i64;
        let last: Option<i64> = sqlx::query_scalar(
            "UPDATE channels SET last_seq = last_seq + $2 WHERE id = $1 RETURNING last_seq",
        )
        .bind(channel_id)
        .bind(count)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(last) = last else { continue };
        let seqs: Vec<(usize, i64)> = members
            .iter()
            .enumerate()
            .map(|(n, &i)| (i, last - count + 1 + n as i64))
            .collect();
        for chunk in seqs.chunks(ROWS_PER_INSERT) {
            let ids = insert(&mut tx, chunk, batch, now).await?;
            for &(i, seq) in chunk {
                let request = &batch[i];
                let id = ids.get(&seq).copied().ok_or(StoreError::NotFound)?;
                results[i] = Ok(stored(request, id, seq, now));
            }
        }
    }
    tx.commit().await?;
    Ok(results)
}

/// One multi-row insert; returns the new ids by seq.
async fn insert(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rows: &[(usize, i64)],
    batch: &[PublishRequest],
    now: i64,
) -> Result<HashMap<i64, i64>, StoreError> {
    let values: Vec<String> = (0..rows.len())
        .map(|r| {
            let p = r * 5;
            format!(
                "(${}, ${}, ${}, ${}, ${})",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO messages (channel_id, seq, sender_id, content, created_at) VALUES {} RETURNING seq, id",
        values.join(", ")
    );
    let mut query = sqlx::query_as::<_, (i64, i64)>(&sql);
    for &(i, seq) in rows {
        let request = &batch[i];
        query = query
            .bind(request.channel_id)
            .bind(seq)
            .bind(request.sender.id)
            .bind(&request.content)
            .bind(now);
    }
    Ok(query.fetch_all(&mut **tx).await?.into_iter().collect())
}
