//! Where writes get their connection.
//!
//! sqlx's pool pings every connection handed back to it, from a task it
//! spawns, and the next checkout waits for both. On a loaded server that
//! hand-over took most of a publish commit's time (5–7 ms of 9). SQLite
//! takes one writer at a time anyway, so its writes share one connection
//! held behind a fair async lock, and taking it is only a lock. PostgreSQL
//! runs its other writes concurrently from the pool, and its group-commit
//! writer holds a connection of its own the same way.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use sqlx::any::AnyConnectOptions;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, ConnectOptions, Connection};
use tokio::sync::{Mutex, OwnedMappedMutexGuard, OwnedMutexGuard};

use super::{Backend, StoreError};

/// The source of write connections.
#[derive(Clone, Debug)]
pub(super) enum Writes {
    Pool(AnyPool),
    Held(Arc<Held>),
}

impl Writes {
    pub async fn connection(&self) -> Result<WriteConnection, StoreError> {
        match self {
            Self::Pool(pool) => Ok(WriteConnection::Pooled(pool.acquire().await?)),
            Self::Held(held) => Ok(WriteConnection::Held(held.lock().await?)),
        }
    }

    pub async fn close(&self) {
        match self {
            Self::Pool(pool) => pool.close().await,
            Self::Held(held) => held.close().await,
        }
    }
}

/// One connection that writers take in turn, in the order they asked.
pub(super) struct Held {
    options: AnyConnectOptions,
    backend: Backend,
    slot: Arc<Mutex<Option<AnyConnection>>>,
    /// Set by a holder that saw the connection fail; the next holder opens
    /// a new one.
    broken: AtomicBool,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Held")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Held {
    /// Opens the connection now, so a bad URL fails at start-up.
    pub async fn open(options: AnyConnectOptions, backend: Backend) -> Result<Self, StoreError> {
        let conn = connect(&options, backend).await?;
        Ok(Self {
            options,
            backend,
            slot: Arc::new(Mutex::new(Some(conn))),
            broken: AtomicBool::new(false),
        })
    }

    /// Connects on first use, from whichever runtime first locks it (a
    /// network connection belongs to the runtime that opened it).
    pub fn lazy(options: AnyConnectOptions, backend: Backend) -> Self {
        Self {
            options,
            backend,
            slot: Arc::new(Mutex::new(None)),
            broken: AtomicBool::new(false),
        }
    }

    pub async fn lock(&self) -> Result<HeldConnection, StoreError> {
        let mut slot = self.slot.clone().lock_owned().await;
        if self.broken.swap(false, Ordering::AcqRel) {
            *slot = None;
        }
        if slot.is_none() {
            *slot = Some(connect(&self.options, self.backend).await?);
        }
        OwnedMutexGuard::try_map(slot, Option::as_mut)
            .map_err(|_| StoreError::Unavailable("no write connection".into()))
    }

    /// Drops the connection after the current holder is done with it.
    pub fn discard(&self) {
        self.broken.store(true, Ordering::Release);
    }

    pub async fn close(&self) {
        if let Some(conn) = self.slot.lock().await.take() {
            let _ = conn.close().await;
        }
    }
}

/// As long as the pool waits for a connection, so a database that does not
/// answer fails the writes waiting on it (503) within about 2 s instead of
/// hanging them.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

pub(super) async fn connect(
    options: &AnyConnectOptions,
    backend: Backend,
) -> Result<AnyConnection, StoreError> {
    let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
        .await
        .map_err(|_| StoreError::Unavailable("no answer from the database".into()))??;
    if backend == Backend::Sqlite {
        super::sqlite_pragmas(&mut conn).await?;
    }
    Ok(conn)
}

pub(super) type HeldConnection = OwnedMappedMutexGuard<Option<AnyConnection>, AnyConnection>;

/// A connection to write on, pooled or held; dropping it hands it back.
pub(super) enum WriteConnection {
    Pooled(PoolConnection<Any>),
    Held(HeldConnection),
}

impl Deref for WriteConnection {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match self {
            Self::Pooled(conn) => conn,
            Self::Held(conn) => conn,
        }
    }
}

impl DerefMut for WriteConnection {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match self {
            Self::Pooled(conn) => conn,
            Self::Held(conn) => conn,
        }
    }
}
