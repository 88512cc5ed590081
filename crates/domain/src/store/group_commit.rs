//! Group commit for publishes: one writer task takes every publish waiting
//! at that moment and stores them in one transaction, one `UPDATE` per
//! channel (reserving a run of seqs) and multi-row `INSERT`s. Each
//! publisher still waits for the commit that holds its message, so an ack
//! still means stored; under load, many acks share one fsync.

use std::collections::HashMap;

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use crate::model::{Actor, StoredMessage};
use crate::time::now_millis;

/// The most publishes one transaction takes.
const MAX_BATCH: usize = 512;
/// Rows per `INSERT` statement (5 parameters each).
const ROWS_PER_INSERT: usize = 100;

pub(super) struct PublishRequest {
    pub channel_id: i64,
    pub sender: Actor,
    pub content: String,
    pub reply: oneshot::Sender<Result<StoredMessage, StoreError>>,
}

/// Starts the writer; it ends when every sender is dropped.
pub(super) fn spawn(pool: AnyPool) -> mpsc::Sender<PublishRequest> {
    let (sender, receiver) = mpsc::channel(4 * MAX_BATCH);
    tokio::spawn(run(pool, receiver));
    sender
}

async fn run(pool: AnyPool, mut receiver: mpsc::Receiver<PublishRequest>) {
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

async fn write(
    pool: &AnyPool,
    batch: &[PublishRequest],
) -> Result<Vec<Result<StoredMessage, StoreError>>, StoreError> {
    let now = now_millis();
    let mut channels: Vec<i64> = Vec::new();
    let mut by_channel: HashMap<i64, Vec<usize>> = HashMap::new();
    for (i, request) in batch.iter().enumerate() {
        by_channel.entry(request.channel_id).or_insert_with(|| {
            channels.push(request.channel_id);
            Vec::new()
        });
        by_channel.entry(request.channel_id).or_default().push(i);
    }
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
                results[i] = Ok(StoredMessage {
                    id,
                    channel_id,
                    seq,
                    sender_id: request.sender.id,
                    sender: request.sender.username.clone(),
                    content: request.content.clone(),
                    created_at: now,
                });
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
