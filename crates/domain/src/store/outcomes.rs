//! Commits whose answer was lost. On PostgreSQL a group commit is one
//! statement sent over the network; when the connection fails after it
//! went out, the statement may have committed or not, and the writer
//! cannot tell from the error. Answering `internal` then would tell a
//! publisher its message failed when subscribers may already be reading
//! it, and a publisher that tries again would store it twice.
//!
//! So every commit also records what it stored under a token the writer
//! picked (`publish_outcomes`, in the same statement). After a failure the
//! writer reconnects and claims the token itself: if the claim goes in,
//! the commit never landed, and now never can (its own insert of the token
//! would conflict); if the token is there, the commit landed and its row
//! says what it stored, exactly as its answer would have. A commit still
//! running on the server holds its token's row, so the claim waits for it
//! to end either way. A notification's transaction is settled the same
//! way, by the lock it took and the id it reserved. SQLite runs in the
//! process: its commits have no answer to lose.

use std::time::Duration;

use tokio::time::Instant;

use super::writer::Held;
use super::{Backend, Store, StoreError};
use crate::time::now_millis;

/// How long the writer keeps asking before it gives up and answers
/// `internal` (the database is still away). Publishes wait behind it, as
/// they would wait for a commit.
const RESOLVE_FOR: Duration = Duration::from_secs(5);
/// The pause between attempts while the database does not answer.
const RETRY_EVERY: Duration = Duration::from_millis(250);
/// Outcomes are needed for [`RESOLVE_FOR`]; the pruner removes them after
/// this long.
const KEEP_FOR_MILLIS: i64 = 10 * 60 * 1000;

/// A commit's token: random, so writers of different processes never
/// share one.
pub(super) fn token() -> i64 {
    rand::random()
}

/// What became of a commit whose answer was lost.
pub(super) enum Resolved {
    /// It landed; its recorded outcome.
    Stored(String),
    /// It did not, and now cannot.
    NotStored,
    /// The database did not answer in time.
    Unknown(StoreError),
}

/// Asks, on fresh connections, until the database answers or
/// [`RESOLVE_FOR`] runs out.
pub(super) async fn resolve(connection: &Held, token: i64, now: i64) -> Resolved {
    let asked = until_answered(|| async {
        // The connection that lost the answer (or the last attempt's) goes.
        connection.discard();
        ask(connection, token, now).await
    })
    .await;
    match asked {
        Ok(Some(outcome)) => Resolved::Stored(outcome),
        Ok(None) => Resolved::NotStored,
        Err(err) => {
            connection.discard();
            Resolved::Unknown(err)
        }
    }
}

/// Runs `attempt` until it answers, pausing between failures, for at most
/// [`RESOLVE_FOR`]; the last failure if none answered.
async fn until_answered<T, F, A>(mut attempt: F) -> Result<T, StoreError>
where
    F: FnMut() -> A,
    A: std::future::Future<Output = Result<T, StoreError>>,
{
    let deadline = Instant::now() + RESOLVE_FOR;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let err = match tokio::time::timeout(left, attempt()).await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(err)) => err,
            Err(_) => StoreError::Unavailable("no answer from the database".into()),
        };
        if Instant::now() + RETRY_EVERY >= deadline {
            return Err(err);
        }
        tokio::time::sleep(RETRY_EVERY).await;
    }
}

/// Whether an error may hide a commit that landed: the database did not
/// answer it (a broken connection), rather than answering with a refusal.
pub(super) fn answer_lost(err: &StoreError) -> bool {
    matches!(err, StoreError::Database(err) if !matches!(err, sqlx::Error::Database(_)))
}

/// Claims the token: `None` if the claim went in (or an earlier claim of
/// ours did, whose answer was lost too), else the commit's outcome.
async fn ask(connection: &Held, token: i64, now: i64) -> Result<Option<String>, StoreError> {
    let mut conn = connection.lock().await?;
    let claimed = sqlx::query(
        "INSERT INTO publish_outcomes (token, created_at) VALUES ($1, $2) \
         ON CONFLICT (token) DO NOTHING",
    )
    .bind(token)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if claimed == 1 {
        return Ok(None);
    }
    let (outcome,): (Option<String>,) =
        sqlx::query_as("SELECT outcome FROM publish_outcomes WHERE token = $1")
            .bind(token)
            .fetch_one(&mut *conn)
            .await?;
    Ok(outcome)
}

impl Store {
    /// Whether notification `id`, whose commit's answer was lost, was
    /// stored. Its transaction took the row lock of the notifications'
    /// counter; taking it too waits for that transaction to end if it is
    /// still running on the server, so the answer read after is final.
    pub(super) async fn notification_landed(&self, id: i64) -> Result<bool, StoreError> {
        until_answered(|| async {
            let mut conn = self.writer().await?;
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::query("SELECT value FROM counters WHERE name = 'notifications' FOR UPDATE")
                .execute(&mut *tx)
                .await?;
            let found: Option<i64> =
                sqlx::query_scalar("SELECT id FROM notifications WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            tx.commit().await?;
            Ok(found.is_some())
        })
        .await
    }

    /// Removes the outcomes of commits older than ten minutes; the rows
    /// removed.
    pub async fn forget_publish_outcomes(&self) -> Result<u64, StoreError> {
        if self.backend != Backend::Postgres {
            return Ok(0);
        }
        let mut conn = self.writer().await?;
        Ok(
            sqlx::query("DELETE FROM publish_outcomes WHERE created_at < $1")
                .bind(now_millis() - KEEP_FOR_MILLIS)
                .execute(&mut *conn)
                .await?
                .rows_affected(),
        )
    }
}
