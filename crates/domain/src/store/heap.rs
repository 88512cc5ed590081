//! Keeps SQLite's freed memory in the process instead of handing it back
//! to the kernel after every commit.
//!
//! SQLite allocates with the C library's `malloc`, and every SQLite
//! connection runs on a thread of its own, so with glibc each gets an
//! arena of its own. Each group commit frees a few blocks of well over
//! 64 KiB when its statements end (the page caches of the ephemeral
//! tables that `UPDATE ... FROM` and `RETURNING` use; a statement
//! journal, where one is kept). glibc then trims the arena's top
//! (`madvise(MADV_DONTNEED)`) whenever more than 128 KiB of it is free,
//! and the next commit faults the same pages back in, zeroed: one
//! `madvise` per commit on a 100-subscriber fan-out, with the faults after
//! it a fifth of the SQLite thread's time.
//!
//! glibc raises its trim threshold on its own, to twice the size of the
//! largest block it has handed out with `mmap` and then taken back (see
//! `mallopt(3)`, `M_MMAP_THRESHOLD`). So the first connection has SQLite
//! build and drop one 16 MiB blob: from then on an arena keeps up to
//! 32 MiB free before trimming. Other C libraries ignore it; it costs one
//! 16 MiB allocation, once per process.

use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::AnyConnection;

/// Above glibc's first `mmap` threshold (128 KiB) and at most its ceiling
/// for the dynamic one (32 MiB on 64-bit), which the trim threshold is
/// then twice of.
const BLOB_BYTES: i64 = 16 * 1024 * 1024;

static RAISED: AtomicBool = AtomicBool::new(false);

/// Runs once per process, on the first SQLite connection. A failure (a
/// SQLite built with a smaller `SQLITE_MAX_LENGTH`, say) costs only the
/// trims, so it is logged and the connection is used as it is.
pub(super) async fn keep_freed_memory(conn: &mut AnyConnection) {
    if RAISED.swap(true, Ordering::AcqRel) {
        return;
    }
    // `zeroblob` alone is never materialized; concatenating it is, into a
    // block of its own.
    let built = sqlx::query("SELECT length(zeroblob(?) || x'00')")
        .bind(BLOB_BYTES)
        .execute(conn)
        .await;
    if let Err(err) = built {
        tracing::debug!(error = %err, "could not raise the C allocator's trim threshold");
    }
}
