//! The operations of Tidings with their authorization rules, shared by the
//! REST API and the WebSocket gateway so both enforce the same rules and
//! publish the same events. Each operation: check, store, then publish.

mod accounts;
mod announcer;
mod batch;
mod conversations;
mod credentials;
mod delivery;
mod heads;
mod inbox;
mod memo;
mod messages;
mod openings;
mod retention;
mod snapshots;
mod tags;
mod throttle;
mod tokens;
mod topics;

use std::sync::Arc;

pub use credentials::{
    AuthFailure, Authenticated, Bearer, Credential, KEY_PREFIX, PASSWORD_LEN, Refusal, check_bearer,
};
pub use messages::{AtOnce, Checked, HistoryPage, HistorySlice, Published, Queued};
pub use retention::{PruneReport, check_limits};

use crate::bus::SharedBus;
use crate::events::Event;
use crate::store::{Store, StoreError};

/// Limits every surface applies the same way.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest message `content`, in bytes.
    pub max_content_bytes: usize,
    /// The largest history page.
    pub max_history: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_content_bytes: 16 * 1024,
            max_history: 1000,
        }
    }
}

/// The store, the bus and the limits: what every operation needs. The
/// store is private: the surfaces (REST, sockets) go through the
/// operations here, which hold the rules.
pub struct Core {
    store: Store,
    pub bus: SharedBus,
    pub limits: Limits,
    /// Resolved direct conversations, `(sender id, peer name)` to the peer
    /// and the conversation: a hit saves two store reads per direct message.
    directs: memo::Memo<(i64, String), (crate::model::User, i64)>,
    /// Topics by name, for publishing. A topic's id and privacy never
    /// change; one deleted meanwhile (here or by another process) makes the
    /// publish fail, and the name is then looked up afresh.
    topics: memo::Memo<String, crate::model::Topic>,
    /// Password hashes under way, one per core at most.
    hashers: tokio::sync::Semaphore,
    /// Failed logins per username and per client address.
    logins: throttle::LoginThrottle,
    /// Delivery reads under way; see [`Core::backlog`].
    delivery_reads: Arc<tokio::sync::Semaphore>,
    /// Session snapshots, read in batches.
    snapshots: snapshots::SnapshotReader,
    /// The accounts behind tokens, read in batches (see `tokens.rs`).
    tokens: tokens::TokenReader,
    /// Token checks with their snapshots, for sockets (`openings.rs`).
    openings: openings::OpeningReader,
    /// The newest seq of channels and tags, read in batches (`heads.rs`).
    heads: heads::HeadReader,
    /// Direct messages' peers and conversations, resolved in batches
    /// (`conversations.rs`) when `directs` does not have them.
    conversations: conversations::ConversationReader,
}

/// Entries each cache holds before starting over.
const CACHE_LIMIT: usize = 100_000;

impl Core {
    /// A core over `store` and `bus`. The first core over a store announces
    /// its commits (see [`announcer`]); there is one per process.
    pub fn new(store: Store, bus: SharedBus, limits: Limits) -> Arc<Self> {
        if let Some(feed) = store.commit_feed() {
            store.spawn_beside_writer(announcer::run(feed, bus.clone()));
        }
        bus.share_holds(Arc::clone(store.fan_out_lag()));
        // One read connection stays free for REST and readiness.
        let delivery_slots = store.read_connections().saturating_sub(1).max(1);
        let delivery_reads = Arc::new(tokio::sync::Semaphore::new(delivery_slots));
        Arc::new(Self {
            snapshots: snapshots::reader(store.clone()),
            tokens: tokens::reader(store.clone()),
            openings: openings::reader(store.clone()),
            heads: heads::reader(store.clone()),
            conversations: conversations::reader(store.clone()),
            store,
            bus,
            limits,
            directs: memo::Memo::new(CACHE_LIMIT),
            topics: memo::Memo::new(CACHE_LIMIT),
            hashers: tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
            logins: throttle::LoginThrottle::default(),
            delivery_reads,
        })
    }

    /// Where sessions far behind say so, to hold this process's commits
    /// back (see [`FanOutLag`](crate::fan_out_lag::FanOutLag)).
    pub fn fan_out_lag(&self) -> &Arc<crate::fan_out_lag::FanOutLag> {
        self.store.fan_out_lag()
    }

    /// Publishes after a commit. A bus failure does not undo the change:
    /// gateways fill gaps from the store when the bus comes back.
    async fn announce(&self, event: Event) {
        if let Err(err) = self.bus.publish(event).await {
            announcer::not_published(&err);
        }
    }
}

/// Why an operation was refused, named by outcome; each surface maps it to
/// its own status or error code in one place.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0} already exists")]
    Conflict(String),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    TooLarge(String),
    #[error("not a member of {0}")]
    NotSubscribed(String),
    #[error(transparent)]
    Store(StoreError),
    /// Too many failed attempts; the next is allowed after this long.
    #[error("too many attempts; retry in {} s", .0.as_secs().max(1))]
    Throttled(std::time::Duration),
    /// The credential is refused (a 401).
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Not the client's doing (a failed hashing task).
    #[error("{0}")]
    Internal(&'static str),
}

impl ServiceError {
    /// The store is away (unreachable, or a connection broke), rather than
    /// refusing: worth waiting for, since outages last seconds.
    pub fn is_outage(&self) -> bool {
        match self {
            ServiceError::Store(err) => {
                err.is_transient() || matches!(err, StoreError::Unavailable(_))
            }
            _ => false,
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ServiceError::NotFound("resource"),
            StoreError::Conflict(what) => ServiceError::Conflict(what),
            other => ServiceError::Store(other),
        }
    }
}

impl Core {
    /// The audit log, newest first (admins only).
    pub async fn audit_page(
        &self,
        actor: &crate::model::Actor,
        filter: &crate::store::AuditFilter,
        page: crate::paging::PageRequest,
    ) -> Result<crate::paging::Page<crate::model::AuditEntry>, ServiceError> {
        if !actor.is_admin {
            return Err(ServiceError::Forbidden(
                "only an admin may read the audit log",
            ));
        }
        for (field, value) in [("resource", &filter.resource), ("actor", &filter.actor)] {
            if let Some(value) = value {
                storable(field, value)?;
            }
        }
        Ok(self.store.audit_page(filter, page).await?)
    }
}

/// Refuses text that one of the stores cannot keep exactly. PostgreSQL
/// refuses NUL in text while SQLite keeps it; Rust strings are valid
/// UTF-8 already, so NUL is the one difference. Checked before anything
/// reaches a store, so both behave alike and a bad publish never joins a
/// group commit.
pub(crate) fn storable(field: &'static str, value: &str) -> Result<(), ServiceError> {
    if value.contains('\0') {
        return Err(ServiceError::Invalid {
            field,
            message: "must not contain NUL characters".into(),
        });
    }
    Ok(())
}

fn admin_only(actor: &crate::model::Actor) -> Result<(), ServiceError> {
    if actor.is_admin {
        Ok(())
    } else {
        Err(ServiceError::Forbidden("only an admin may do this"))
    }
}
