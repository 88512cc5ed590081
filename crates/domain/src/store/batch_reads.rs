//! Connections of their own for the reads the service batches (a token's
//! account, a socket's snapshot, both at once, stream heads: see the service's
//! `batch.rs`), and the peers and conversations of direct messages.
//!
//! Each of those reads has one statement under way at a time, so a pooled
//! connection bought nothing and cost the pool's checks around every
//! statement: sqlx pings a connection as it goes back to the pool (and on
//! PostgreSQL before it is handed out), which is two more hand-offs to
//! SQLite's worker thread, or two more round trips to PostgreSQL, per
//! statement. A held connection is only a lock.

use sqlx::any::{AnyArguments, AnyConnectOptions, AnyRow};
use sqlx::query::QueryAs;
use sqlx::{Any, FromRow};

use super::writer::Held;
use super::{Backend, StoreError, connection_lost};

/// One connection per kind of batched read, opened on first use.
#[derive(Debug)]
pub(super) struct BatchReads {
    pub tokens: Held,
    pub snapshots: Held,
    pub openings: Held,
    pub heads: Held,
    pub conversations: Held,
}

impl BatchReads {
    pub fn new(options: &AnyConnectOptions, backend: Backend) -> Self {
        Self {
            tokens: Held::lazy(options.clone(), backend),
            snapshots: Held::lazy(options.clone(), backend),
            openings: Held::lazy(options.clone(), backend),
            heads: Held::lazy(options.clone(), backend),
            conversations: Held::lazy(options.clone(), backend),
        }
    }

    pub async fn close(&self) {
        for held in [
            &self.tokens,
            &self.snapshots,
            &self.openings,
            &self.heads,
            &self.conversations,
        ] {
            held.close().await;
        }
    }
}

/// Runs `query` on `held`. A connection found broken is replaced on its
/// next use, and the error says the read may be tried again (see
/// [`StoreError::is_transient`]).
pub(super) async fn fetch_all<'q, O>(
    held: &Held,
    query: QueryAs<'q, Any, O, AnyArguments<'q>>,
) -> Result<Vec<O>, StoreError>
where
    O: Send + Unpin + for<'r> FromRow<'r, AnyRow>,
{
    let mut conn = held.lock().await?;
    let rows = query.fetch_all(&mut *conn).await;
    if let Err(err) = &rows
        && connection_lost(err)
    {
        held.discard();
    }
    Ok(rows?)
}
