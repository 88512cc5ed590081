//! Local fan-out: which sockets of this process want which events.
//!
//! One dispatcher task reads the bus, serializes each event's frame once,
//! and hands the same bytes to every interested session through bounded
//! queues. A full queue marks its session a slow consumer (it is closed
//! with 4008 and catches up on reconnect); a lagging bus receiver makes
//! every session resync from the store. Registry entries are removed when
//! their last session goes, and the bus is told to stop routing that key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use axum::extract::ws::Utf8Bytes;
use domain::bus::{Delivery, SharedBus};
use domain::events::{Event, InboxChange, Key};
use domain::protocol::ServerFrame;
use tokio::sync::{Notify, broadcast, mpsc};

use crate::metrics::GatewayMetrics;

pub type SessionId = u64;

/// What the hub hands a session.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// An event and, when it has one shape for every recipient, its frame.
    Event {
        event: Arc<Event>,
        frame: Option<Utf8Bytes>,
    },
    /// Events may have been lost: re-read delivery state from the store.
    Resync,
}

/// How the hub reaches one session.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    pub queue: mpsc::Sender<Outbound>,
    /// Woken when the queue overflowed: the session must close with 4008.
    pub kick: Arc<Notify>,
}

type Registry = HashMap<Key, HashMap<SessionId, SessionHandle>>;

pub struct Hub {
    registry: RwLock<Registry>,
    next_id: AtomicU64,
    bus: SharedBus,
    metrics: GatewayMetrics,
}

impl Hub {
    pub fn new(bus: SharedBus, metrics: GatewayMetrics) -> Arc<Self> {
        Arc::new(Self {
            registry: RwLock::default(),
            next_id: AtomicU64::new(1),
            bus,
            metrics,
        })
    }

    pub fn next_session_id(&self) -> SessionId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn metrics(&self) -> &GatewayMetrics {
        &self.metrics
    }

    /// Routes events on `key` to the session from now on.
    pub async fn watch(&self, key: Key, id: SessionId, handle: &SessionHandle) {
        let first = {
            let mut registry = self.registry.write().unwrap_or_else(|e| e.into_inner());
            let sessions = registry.entry(key).or_default();
            sessions.insert(id, handle.clone());
            sessions.len() == 1
        };
        if first {
            self.bus.watch(key).await;
        }
    }

    /// Stops routing `key` to the session; forgets the key when unwatched.
    pub async fn unwatch(&self, key: Key, id: SessionId) {
        let last = {
            let mut registry = self.registry.write().unwrap_or_else(|e| e.into_inner());
            match registry.get_mut(&key) {
                Some(sessions) => {
                    sessions.remove(&id);
                    let empty = sessions.is_empty();
                    if empty {
                        registry.remove(&key);
                    }
                    empty
                }
                None => false,
            }
        };
        if last {
            self.bus.unwatch(key).await;
        }
    }

    /// How many keys have at least one session (for tests and metrics).
    pub fn watched_keys(&self) -> usize {
        self.registry.read().map_or(0, |r| r.len())
    }

    /// Reads the bus until it closes.
    pub fn spawn_dispatcher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let hub = Arc::clone(self);
        let mut receiver = hub.bus.subscribe();
        tokio::spawn(async move {
            loop {
                match receiver.recv().await {
                    Ok(Delivery::Event(event)) => hub.dispatch(event),
                    Ok(Delivery::Resync) => hub.resync_all(),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(
                            missed,
                            "the hub fell behind the bus; sessions resync from the store"
                        );
                        hub.resync_all();
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    }

    fn dispatch(&self, event: Arc<Event>) {
        let key = event.key();
        let frame = shared_frame(&event);
        let registry = self.registry.read().unwrap_or_else(|e| e.into_inner());
        let Some(sessions) = registry.get(&key) else {
            return;
        };
        for handle in sessions.values() {
            let out = Outbound::Event {
                event: Arc::clone(&event),
                frame: frame.clone(),
            };
            self.offer(handle, out);
        }
    }

    fn resync_all(&self) {
        self.metrics.resyncs.increment(1);
        let registry = self.registry.read().unwrap_or_else(|e| e.into_inner());
        let mut seen = std::collections::HashSet::new();
        for (id, handle) in registry.values().flat_map(|s| s.iter()) {
            if seen.insert(*id) {
                self.offer(handle, Outbound::Resync);
            }
        }
    }

    fn offer(&self, handle: &SessionHandle, out: Outbound) {
        if let Err(mpsc::error::TrySendError::Full(_)) = handle.queue.try_send(out) {
            handle.kick.notify_one();
        }
    }
}

/// The frame every recipient of `event` gets, serialized once.
fn shared_frame(event: &Event) -> Option<Utf8Bytes> {
    let frame = match event {
        Event::TopicMessage { topic, message } => {
            ServerFrame::Message(message.labelled(topic.clone()))
        }
        Event::DirectMessage { message, .. } => {
            ServerFrame::Message(message.labelled(format!("@{}", message.sender)))
        }
        Event::Notification { notification, .. } => ServerFrame::Notification {
            id: notification.id,
            notification: notification.clone(),
            is_read: false,
        },
        Event::Inbox { id, change, .. } => match change {
            InboxChange::Read => ServerFrame::Read { id: *id },
            InboxChange::Unread => ServerFrame::Unread { id: *id },
            InboxChange::Deleted => ServerFrame::Delete { id: *id },
            InboxChange::ReadAll => ServerFrame::ReadAll,
        },
        _ => return None,
    };
    Some(Utf8Bytes::from(frame.to_json(None)))
}
