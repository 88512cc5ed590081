//! Delivery cursors, collected from sessions and written in batches.
//!
//! Sessions note how far they have written; a background task persists the
//! latest position of each cursor every interval and once more at shutdown.
//! A crash can lose at most one interval of progress, which only means a
//! few frames are delivered twice after it (clients dedupe by `seq`).
//!
//! A session that ends flushes before its socket closes, so a client that
//! reconnects at once finds its position in the store. Flushes take turns:
//! a flush that found the book emptied by another one still being written
//! would return before that write landed, and a reconnect in between read
//! the position from before (a flood of 4,000 slow consumers closed
//! together got 10,260 frames twice on PostgreSQL).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::service::Core;
use domain::store::Cursor;

#[derive(Default)]
pub struct CursorBook {
    pending: Mutex<HashMap<Cursor, i64>>,
    /// Held while a batch is written: see the module's note.
    writing: tokio::sync::Mutex<()>,
}

impl CursorBook {
    /// Records that `cursor` reached `seq` (earlier positions are ignored).
    pub fn note(&self, cursor: Cursor, seq: i64) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let entry = pending.entry(cursor).or_insert(seq);
        *entry = (*entry).max(seq);
    }

    /// Writes what was noted since the last flush; once it returns,
    /// everything noted before it was called is in the store (or, if the
    /// store failed, noted again for the next flush).
    pub async fn flush(&self, core: &Core) {
        let _turn = self.writing.lock().await;
        let batch: Vec<(Cursor, i64)> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending.drain().collect()
        };
        if batch.is_empty() {
            return;
        }
        if let Err(err) = core.save_cursors(&batch).await {
            tracing::warn!(%err, cursors = batch.len(), "could not save delivery cursors; retrying");
            for (cursor, seq) in batch {
                self.note(cursor, seq);
            }
        }
    }

    /// Flushes every `every` until `shutdown`, then a last time.
    pub fn spawn_flusher(
        self: &Arc<Self>,
        core: Arc<Core>,
        every: Duration,
        shutdown: ops::shutdown::Shutdown,
    ) {
        let book = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = tick.tick() => book.flush(&core).await,
                    () = shutdown.wait() => break,
                }
            }
        });
    }
}
