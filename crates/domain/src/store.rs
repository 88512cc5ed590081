//! The one persistence layer, on SQLite or PostgreSQL.
//!
//! Both backends run the same SQL through sqlx's `Any` driver, so there is
//! one implementation to test and no drift between two. What differs lives
//! in `migrations/{sqlite,postgres}` and in [`Store::connect`]. SQL never
//! leaves this module: callers get model types and [`StoreError`].
//!
//! SQLite allows one writer at a time; rather than retrying `SQLITE_BUSY`
//! we give it a single write connection (see [`writer`]), so writers queue
//! in-process while readers proceed in parallel on WAL snapshots.

mod audit;
mod batch_reads;
mod channels;
mod conversations;
mod credentials;
mod cursors;
mod group_commit;
mod heads;
mod heap;
mod inbox;
mod inbox_page;
mod openings;
mod outcomes;
mod retention;
mod snapshots;
mod tags;
mod users;
mod writer;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{Any, AnyPool, Executor};

pub use audit::{AuditFilter, Changes};
pub use channels::{ChannelKind, Membership};
pub use channels::{QueueSlot, Receipt};
pub use credentials::{KeyAccount, TokenAccount};
pub use cursors::Cursor;
pub use group_commit::Committed;
pub use heads::Stream;
pub use openings::Opening;
pub use retention::{Backlog, RetainedChannel};
pub use snapshots::SessionSnapshot;
pub use tags::TagSubscription;

type Tx<'a> = sqlx::Transaction<'a, Any>;

/// Which database a [`Store`] talks to, from the scheme of its URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("{0} already exists")]
    Conflict(String),
    #[error("DATABASE_URL must start with sqlite: or postgres://")]
    UnsupportedUrl,
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

impl StoreError {
    /// Worth trying a read again: the pool could not hand out a connection
    /// in time (the database may be slow opening connections under load
    /// rather than gone), or the connection broke (the database restarted
    /// or dropped it) and the next attempt gets a new one. Not when the
    /// database answered and refused.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Database(err) => {
                matches!(err, sqlx::Error::PoolTimedOut) || connection_lost(err)
            }
            _ => false,
        }
    }
}

/// Whether `err` means the connection is gone rather than that a statement
/// was refused: an I/O or protocol failure, or PostgreSQL's last word on a
/// connection it ends (SQLSTATE class 57, an administrator's
/// `pg_terminate_backend` or a shutdown; class 08, connection exceptions).
pub(crate) fn connection_lost(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("57") || code.starts_with("08")),
        _ => false,
    }
}

/// Turns a unique-key violation into `Conflict(what)`; anything else stays
/// a database error.
fn conflict(what: &str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
    move |err| match &err {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(what.to_owned())
        }
        _ => StoreError::Database(err),
    }
}

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    read: AnyPool,
    /// Connections of their own for the batched reads.
    batch_reads: Arc<batch_reads::BatchReads>,
    write: writer::Writes,
    backend: Backend,
    /// The group-commit writer's queue, feed and thread.
    writer: group_commit::Writer,
}

impl Store {
    /// Connects and applies pending migrations.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        let store = Self::connect_only(url, max_connections).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects without migrating (for `tidings migrate` and readiness).
    pub async fn connect_only(url: &str, max_connections: u32) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let max_connections = max_connections.max(1);
        match backend {
            Backend::Postgres => {
                // One connection first, so a failure says why (refused, DNS,
                // authentication, timeout); the pool would only report
                // that it timed out waiting.
                let probe = writer::connect(&options(url)?, backend).await?;
                let _ = sqlx::Connection::close(probe).await;
                // Every connection opened now and kept: opened on demand,
                // the first burst after a start (every client reconnecting,
                // 200 conversations begun at once) paid for a dozen new
                // server processes, starting and filling their caches on
                // the same cores, and every message waited 400 ms.
                let pool = pool_options(max_connections)
                    .min_connections(max_connections)
                    .connect_with(options(url)?)
                    .await?;
                // The group-commit writer holds its own connection, opened
                // from its own thread on first use; other writes run
                // concurrently from the pool.
                let held = writer::Held::lazy(options(url)?, backend);
                let writer =
                    group_commit::spawn(Arc::new(held), backend).map_err(sqlx::Error::Io)?;
                Ok(Self {
                    read: pool.clone(),
                    batch_reads: Arc::new(batch_reads::BatchReads::new(&options(url)?, backend)),
                    write: writer::Writes::Pool(pool),
                    backend,
                    writer,
                })
            }
            Backend::Sqlite => {
                let dir =
                    sqlite_file(url).and_then(|f| f.parent().map(std::path::Path::to_path_buf));
                if let Some(dir) = dir.filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(sqlx::Error::Io)?;
                }
                if let Some(file) = sqlite_file(url) {
                    create_private(&file).map_err(sqlx::Error::Io)?;
                }
                let url = sqlite_url(url);
                // An embedded database has no connection to lose: a ping
                // before every checkout would only add a round trip to
                // SQLite's worker thread.
                let sqlite_pool = |n| pool_options(n).test_before_acquire(false);
                let write = Arc::new(writer::Held::open(options(&url)?, backend).await?);
                let read = sqlite_pool(max_connections)
                    .after_connect(|conn, _| Box::pin(async move { sqlite_pragmas(conn).await }))
                    .connect_with(options(&url)?)
                    .await?;
                let writer =
                    group_commit::spawn(write.clone(), backend).map_err(sqlx::Error::Io)?;
                Ok(Self {
                    read,
                    batch_reads: Arc::new(batch_reads::BatchReads::new(&options(&url)?, backend)),
                    write: writer::Writes::Held(write),
                    backend,
                    writer,
                })
            }
        }
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.writer().await?;
        match self.backend {
            Backend::Postgres => {
                sqlx::migrate!("../../migrations/postgres")
                    .run(&mut *conn)
                    .await?
            }
            Backend::Sqlite => {
                // Rebuilding a table (SQLite's way to change one) drops the
                // old one, which with foreign keys on would cascade into
                // every child row; the pragma is a no-op inside the
                // transaction each migration runs in, so it is set around
                // them, and the keys are checked before they are back on.
                conn.execute("PRAGMA foreign_keys = OFF").await?;
                let migrated = sqlx::migrate!("../../migrations/sqlite")
                    .run(&mut *conn)
                    .await;
                let dangling = sqlx::query("PRAGMA foreign_key_check")
                    .fetch_all(&mut *conn)
                    .await;
                conn.execute("PRAGMA foreign_keys = ON").await?;
                migrated?;
                if !dangling?.is_empty() {
                    return Err(StoreError::Unavailable(
                        "the migrated database has dangling foreign keys".into(),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every commit's announced messages from now on, in commit order; `None`
    /// when someone else already listens (there is one announcer per store).
    pub fn commit_feed(&self) -> Option<tokio::sync::mpsc::Receiver<Vec<Committed>>> {
        let (sender, receiver) = tokio::sync::mpsc::channel(group_commit::FEED_BACKLOG);
        self.writer.feed.set(sender).ok().map(|()| receiver)
    }

    /// Where this process's sessions say they are far behind; the
    /// group-commit writer holds commits back while any is (see
    /// [`FanOutLag`](crate::fan_out_lag::FanOutLag)).
    pub fn fan_out_lag(&self) -> &Arc<crate::fan_out_lag::FanOutLag> {
        &self.writer.lag
    }

    /// Runs `task` on the group-commit writer's thread. Work that follows
    /// every commit (announcing it) then starts the moment the commit
    /// lands: on the shared runtime it waited behind the sessions the last
    /// fan-out woke, and a thread of its own cost a wake-up per commit.
    pub fn spawn_beside_writer(
        &self,
        task: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        self.writer.thread.spawn(task);
    }

    /// How many connections reads share.
    pub fn read_connections(&self) -> usize {
        self.read.options().get_max_connections() as usize
    }

    /// The read pool's connections: (in use, idle).
    pub fn pool_connections(&self) -> (usize, usize) {
        let (size, idle) = (self.read.size() as usize, self.read.num_idle());
        (size.saturating_sub(idle), idle)
    }

    /// A round trip to the database, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    /// Runs one statement of administration (`CREATE DATABASE`, tests).
    pub async fn execute_raw(&self, sql: &str) -> Result<(), StoreError> {
        sqlx::raw_sql(sql)
            .execute(&mut *self.writer().await?)
            .await?;
        Ok(())
    }

    /// A connection to write on; writes on SQLite take turns on one.
    async fn writer(&self) -> Result<writer::WriteConnection, StoreError> {
        self.write.connection().await
    }

    /// Runs a big periodic write on the group-commit writer's thread when
    /// writes take turns on one connection (SQLite). Every commit waits
    /// while another write holds that connection, and a write run from the
    /// shared runtime holds it across each of its awaits, resumed only
    /// behind the sessions the last fan-out woke. From the writer's own
    /// thread it runs as soon as the database answers. PostgreSQL's other
    /// writes have connections of their own and run where they are.
    async fn beside_commits<T: Send + 'static>(
        &self,
        write: impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        match self.write {
            writer::Writes::Pool(_) => write.await,
            writer::Writes::Held(_) => self.writer.thread.spawn(write).await.map_err(|err| {
                StoreError::Unavailable(format!("the writer's thread dropped a write: {err}"))
            })?,
        }
    }

    pub async fn close(&self) {
        self.write.close().await;
        self.batch_reads.close().await;
        self.read.close().await;
    }
}

fn pool_options(max_connections: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max_connections)
        // A database that is down answers 503 within about this long,
        // rather than holding requests.
        .acquire_timeout(Duration::from_secs(2))
}

fn options(url: &str) -> Result<AnyConnectOptions, StoreError> {
    Ok(AnyConnectOptions::from_str(url)?)
}

/// The file of a `sqlite://PATH` URL (`None` for other URLs and memory).
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| std::path::PathBuf::from(path))
}

/// Creates the file when missing unless the URL already picks a mode.
fn sqlite_url(url: &str) -> String {
    if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    }
}

/// Creates the database file readable by its owner only (SQLite gives its
/// WAL and shared-memory files the same mode); an existing file is left
/// as it is.
fn create_private(file: &std::path::Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(file) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(err) => Err(err),
    }
}

/// WAL lets readers run beside the writer. FULL sync makes a commit
/// durable across a power cut, not only a process crash, which is what an
/// ack promises; the group commit shares each fsync among every publish
/// waiting at that moment (see `docs/BENCHMARKS.md` for its cost).
async fn sqlite_pragmas(conn: &mut sqlx::AnyConnection) -> Result<(), sqlx::Error> {
    for pragma in [
        "PRAGMA journal_mode = WAL",
        "PRAGMA synchronous = FULL",
        "PRAGMA foreign_keys = ON",
        "PRAGMA busy_timeout = 10000",
    ] {
        conn.execute(pragma).await?;
    }
    heap::keep_freed_memory(conn).await;
    Ok(())
}

/// The bind parameters of a multi-row `VALUES` list: `rows` tuples of
/// `columns` each. SQLite gets plain `?`: it looks a numbered parameter's
/// name up by scanning a list, so a statement with hundreds of `$n` costs
/// time quadratic in their number to bind.
fn values_list(backend: Backend, rows: usize, columns: usize) -> String {
    use std::fmt::Write;
    // Written into one string: a publish commit builds this for each batch,
    // and a string per parameter and per row was a tenth of its writer's time.
    let mut list = String::with_capacity(rows * columns * 6);
    for r in 0..rows {
        list.push_str(if r == 0 { "(" } else { ", (" });
        for c in 1..=columns {
            if c > 1 {
                list.push_str(", ");
            }
            match backend {
                Backend::Sqlite => list.push('?'),
                Backend::Postgres => {
                    let _ = write!(list, "${}", r * columns + c);
                }
            }
        }
        list.push(')');
    }
    list
}

/// The bind parameters of an `IN (…)` list of `count` values whose first is
/// the statement's parameter number `first` (plain `?` for SQLite, as in
/// [`values_list`]).
fn in_list(backend: Backend, first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| match backend {
            Backend::Sqlite => "?".to_owned(),
            Backend::Postgres => format!("${n}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Flags are stored as 0/1 (see the migrations).
fn flag(value: bool) -> i64 {
    i64::from(value)
}

#[cfg(test)]
mod tests {
    use super::{Backend, sqlite_file, values_list};
    use std::path::PathBuf;

    #[test]
    fn numbers_postgres_parameters_across_rows() {
        assert_eq!(
            values_list(Backend::Postgres, 2, 3),
            "($1, $2, $3), ($4, $5, $6)"
        );
        assert_eq!(values_list(Backend::Sqlite, 2, 2), "(?, ?), (?, ?)");
    }

    #[test]
    fn finds_the_sqlite_file() {
        assert_eq!(
            sqlite_file("sqlite://tidings.db"),
            Some(PathBuf::from("tidings.db"))
        );
        assert_eq!(
            sqlite_file("sqlite:///var/lib/t.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/t.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://x/y"), None);
    }
}
