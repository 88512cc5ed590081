//! Group commit for publishes: one writer task takes every publish waiting
//! at that moment and stores them in one transaction, one `UPDATE`
//! (reserving a run of seqs in each channel) and multi-row `INSERT`s. Each
//! publisher still waits for the commit that holds its message, so an ack
//! still means stored; under load, many acks share one fsync.
//!
//! A publish may carry its [`Announcement`]: as soon as the commit lands,
//! the writer's announcer puts it on the bus, in seq order, while the
//! publisher hears back. Subscribers then do not wait for the publisher's
//! task to be scheduled again, which under load is the longest wait on the
//! way, and the next commit does not wait for the bus.

use std::collections::HashMap;
use std::sync::Arc;

use sqlx::Connection;
use tokio::sync::{mpsc, oneshot};

use super::writer::Held;
use super::{Backend, StoreError, values_list};
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
    pub event: Box<dyn FnOnce(&StoredMessage) -> Event + Send + Sync>,
}

/// Starts the writer on a thread of its own; it ends when every sender is
/// dropped.
///
/// On the shared runtime a commit's every round trip to the database woke
/// the writer behind the sessions a fan-out had just woken (often hundreds):
/// a commit of 0.3 ms of work took 3–9 ms. On its own thread, with its own
/// small runtime, the writer runs as soon as the database answers.
pub(super) fn spawn(
    connection: Arc<Held>,
    backend: Backend,
) -> std::io::Result<mpsc::Sender<PublishRequest>> {
    let (sender, receiver) = mpsc::channel(4 * MAX_BATCH);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("tidings-writer".into())
        .spawn(move || runtime.block_on(run(connection, backend, receiver)))?;
    Ok(sender)
}

async fn run(
    connection: Arc<Held>,
    backend: Backend,
    mut receiver: mpsc::Receiver<PublishRequest>,
) {
    // Beside the writer on its thread: a commit's events go out as soon as
    // it lands, without waiting for a turn on the shared runtime.
    let (announcer, announcements) = mpsc::channel(ANNOUNCE_BACKLOG);
    let announcing = tokio::spawn(announce(announcements));
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(request) => batch.push(request),
                Err(_) => break,
            }
        }
        match write(&connection, backend, &batch).await {
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
                // Whatever failed, the next batch starts on a fresh connection.
                connection.discard();
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
    // The runtime ends with this function: let the last events out first.
    drop(announcer);
    let _ = announcing.await;
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

/// Puts committed events on the bus in commit order, beside the writer:
/// the next commit does not wait for the bus, and a pipelining bus (Redis)
/// has several commits' events under way at once. A bus failure does not
/// undo the commit: gateways fill gaps from the store.
async fn announce(mut commits: mpsc::Receiver<Vec<(SharedBus, Event)>>) {
    use futures_util::StreamExt;
    let mut under_way = futures_util::stream::FuturesOrdered::new();
    loop {
        tokio::select! {
            commit = commits.recv() => match commit {
                // Polled in the order pushed, so their events go out in order.
                Some(events) => under_way.push_back(futures_util::future::join_all(
                    by_bus(events)
                        .into_iter()
                        .map(|(bus, events)| async move { bus.publish_all(events).await }),
                )),
                None => break,
            },
            Some(results) = under_way.next(), if !under_way.is_empty() => {
                for result in results {
                    if let Err(err) = result {
                        tracing::warn!(%err, "event not published; gateways will catch up from the store");
                    }
                }
            }
        }
    }
    while under_way.next().await.is_some() {}
}

/// A commit's events grouped by bus (there is one in practice), each group
/// in commit order.
fn by_bus(events: Vec<(SharedBus, Event)>) -> Vec<(SharedBus, Vec<Event>)> {
    let mut groups: Vec<(SharedBus, Vec<Event>)> = Vec::new();
    for (bus, event) in events {
        match groups.iter_mut().find(|(b, _)| Arc::ptr_eq(b, &bus)) {
            Some((_, group)) => group.push(event),
            None => groups.push((bus, vec![event])),
        }
    }
    groups
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

/// One transaction for the whole batch: one `UPDATE` reserves a run of
/// seqs in every channel, then multi-row `INSERT`s store the messages. A
/// statement per channel would make a batch spread over many conversations
/// cost a round trip per conversation.
async fn write(
    connection: &Held,
    backend: Backend,
    batch: &[PublishRequest],
) -> Result<Vec<Result<StoredMessage, StoreError>>, StoreError> {
    let now = now_millis();
    let (channels, by_channel) = by_channel(batch);
    let mut results: Vec<Result<StoredMessage, StoreError>> =
        batch.iter().map(|_| Err(StoreError::NotFound)).collect();
    let mut conn = connection.lock().await?;
    let mut tx = conn.begin().await?;
    let reserved = reserve(&mut tx, backend, &channels, &by_channel).await?;
    let mut rows: Vec<(usize, i64)> = Vec::with_capacity(batch.len());
    for channel_id in &channels {
        // A channel that is gone reserved nothing; its publishes stay NotFound.
        let Some(&last) = reserved.get(channel_id) else {
            continue;
        };
        let members = &by_channel[channel_id];
        let count = members.len() as i64;
        rows.extend(
            members
                .iter()
                .enumerate()
                .map(|(n, &i)| (i, last - count + 1 + n as i64)),
        );
    }
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let ids = insert(&mut tx, backend, chunk, batch, now).await?;
        for &(i, seq) in chunk {
            let request = &batch[i];
            let id = ids
                .get(&(request.channel_id, seq))
                .copied()
                .ok_or(StoreError::NotFound)?;
            results[i] = Ok(stored(request, id, seq, now));
        }
    }
    tx.commit().await?;
    Ok(results)
}

/// Moves each channel's `last_seq` past its publishes; returns the new
/// `last_seq` of every channel that exists.
async fn reserve(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    channels: &[i64],
    by_channel: &HashMap<i64, Vec<usize>>,
) -> Result<HashMap<i64, i64>, StoreError> {
    let sql = format!(
        "WITH v (id, n) AS (VALUES {}) \
         UPDATE channels SET last_seq = last_seq + (SELECT v.n FROM v WHERE v.id = channels.id) \
         WHERE id IN (SELECT v.id FROM v) RETURNING id, last_seq",
        values_list(backend, channels.len(), 2)
    );
    let mut query = sqlx::query_as::<_, (i64, i64)>(&sql);
    for channel_id in channels {
        query = query
            .bind(*channel_id)
            .bind(by_channel[channel_id].len() as i64);
    }
    Ok(query.fetch_all(&mut **tx).await?.into_iter().collect())
}

/// One multi-row insert; returns the new ids by channel and seq.
async fn insert(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    rows: &[(usize, i64)],
    batch: &[PublishRequest],
    now: i64,
) -> Result<HashMap<(i64, i64), i64>, StoreError> {
    let sql = format!(
        "INSERT INTO messages (channel_id, seq, sender_id, content, created_at) VALUES {} RETURNING channel_id, seq, id",
        values_list(backend, rows.len(), 5)
    );
    let mut query = sqlx::query_as::<_, (i64, i64, i64)>(&sql);
    for &(i, seq) in rows {
        let request = &batch[i];
        query = query
            .bind(request.channel_id)
            .bind(seq)
            .bind(request.sender.id)
            .bind(&request.content)
            .bind(now);
    }
    Ok(query
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .map(|(channel_id, seq, id)| ((channel_id, seq), id))
        .collect())
}
