//! Local fan-out: which sockets of this process want which events.
//!
//! One dispatcher task reads the bus, serializes each event's frame once,
//! and hands the same bytes to every interested session through bounded
//! queues. Events that are already waiting on the bus are taken together
//! and handed over as runs (consecutive events on one key, shared by every
//! session watching it), so a burst of N messages to S sockets costs S
//! queue pushes and wake-ups, not N x S. A session with too many events
//! queued is a slow consumer (it is closed with 4008 and catches up on
//! reconnect); sessions far behind on readable sockets hold commits back
//! instead (see `backlog.rs`); a lagging bus receiver makes every session
//! resync from the store. Registry entries are removed when their last session goes, and
//! the bus is told to stop routing that key.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use bytes::Bytes;
use domain::bus::{Delivery, SharedBus};
// Keys are server-assigned ids: a fast hash, not SipHash (a measurable
// share of each delivery's CPU).
use domain::events::{Event, InboxChange, Key};
use domain::fan_out_lag::FanOutLag;
use domain::protocol::ServerFrame;
use foldhash::HashMap;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::backlog::Backlog;
use crate::key_gates::KeyGates;
use crate::metrics::GatewayMetrics;
use crate::recent::{Recent, Recorded};
use crate::reorder::Reorder;
use crate::revocations::Revocations;

pub type SessionId = u64;

/// The most bus events the dispatcher takes in one go.
const MAX_DRAIN: usize = 256;

/// An event and, when it has one shape for every recipient, its frame.
#[derive(Debug)]
pub struct Routed {
    pub event: Arc<Event>,
    pub frame: Option<Bytes>,
}

/// What the hub hands a session.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// Consecutive events on one key, in bus order.
    Events(Arc<[Routed]>),
    /// Events may have been lost: re-read delivery state from the store.
    Resync,
}

/// How the hub reaches one session.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    /// Bounded by `backlog`, which counts events rather than runs.
    pub queue: mpsc::UnboundedSender<Outbound>,
    /// Events queued and not yet handled, up to the session's limit; the
    /// session subtracts what it handled.
    pub backlog: Arc<Backlog>,
    /// Woken when the queue overflowed: the session must close with 4008.
    pub kick: Arc<Notify>,
    /// A resync is queued and not yet started: another one would read the
    /// same again. Under a storm of bus failures, every session would
    /// otherwise queue one per failure and re-read the store over and over.
    pub resync_queued: Arc<AtomicBool>,
}

impl SessionHandle {
    pub fn new(queue: mpsc::UnboundedSender<Outbound>, limit: usize, lag: Arc<FanOutLag>) -> Self {
        Self {
            queue,
            backlog: Arc::new(Backlog::new(limit, lag)),
            kick: Arc::new(Notify::new()),
            resync_queued: Arc::default(),
        }
    }

    /// Called by the session as it starts a resync: a request from now on
    /// must be queued again, since this one may read too early for it.
    pub fn resync_started(&self) {
        self.resync_queued.store(false, Ordering::Release);
    }

    /// Called by the session once it has handled `events` queued events.
    pub fn handled(&self, events: usize) {
        self.backlog.handled(events);
    }
}

type Registry = HashMap<Key, HashMap<SessionId, SessionHandle>>;

pub struct Hub {
    registry: RwLock<Registry>,
    /// Every revocation heard lately, for sessions that registered after
    /// it went by (see `revocations.rs`).
    pub revocations: Revocations,
    /// The last messages of each topic watched here, for catch-ups.
    pub recent: Recent,
    /// Subscription changes on one key reach the bus in turn.
    gates: KeyGates,
    /// Keys whose last session left, for the dispatcher to forget where
    /// their streams stood (see `reorder.rs`).
    unwatched: Mutex<Vec<Key>>,
    next_id: AtomicU64,
    /// Random per process: session names are unique across gateways.
    instance: String,
    bus: SharedBus,
    /// Shared by every session (eight handles each would be 128 bytes of
    /// every socket's memory).
    metrics: Arc<GatewayMetrics>,
}

impl Hub {
    /// `recent_bytes` bounds the records of recent topic messages (see
    /// `recent.rs`).
    pub fn new(bus: SharedBus, metrics: GatewayMetrics, recent_bytes: usize) -> Arc<Self> {
        Arc::new(Self {
            registry: RwLock::default(),
            revocations: Revocations::default(),
            recent: Recent::new(recent_bytes),
            gates: KeyGates::default(),
            unwatched: Mutex::default(),
            next_id: AtomicU64::new(1),
            instance: domain::auth::random_secret(10).to_lowercase(),
            bus,
            metrics: Arc::new(metrics),
        })
    }

    pub fn next_session_id(&self) -> SessionId {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A session's name for clients and logs: `<process>-<n>`, unique
    /// across every gateway (the `n` alone repeats from one to the next).
    pub fn session_name(&self, id: SessionId) -> String {
        format!("{}-{id}", self.instance)
    }

    pub fn metrics(&self) -> &Arc<GatewayMetrics> {
        &self.metrics
    }

    /// Routes events on `key` to the session from now on: once this
    /// returns, the bus routes the key here (see `key_gates.rs`).
    pub async fn watch(&self, key: Key, id: SessionId, handle: &SessionHandle) {
        let _turn = self.gates.turn(key).await;
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
        let _turn = self.gates.turn(key).await;
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
            if let Key::Channel(channel_id) = key {
                self.recent.forget(channel_id);
            }
            self.unwatched
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(key);
            self.bus.unwatch(key).await;
        }
    }

    /// How many keys have at least one session (for tests and metrics).
    pub fn watched_keys(&self) -> usize {
        self.registry.read().map_or(0, |r| r.len())
    }

    /// Reads the bus on a thread of its own until the bus closes or the
    /// hub is dropped.
    ///
    /// On the shared runtime the dispatcher, woken once per commit, waited
    /// behind the sessions the previous fan-out had woken (a thousand of
    /// them): several milliseconds on every message's way. Its work is
    /// short and never waits on anything but the bus, so a thread of its
    /// own hands each commit on as soon as it lands.
    pub fn spawn_dispatcher(self: &Arc<Self>) -> std::io::Result<()> {
        let hub = Arc::downgrade(self);
        let receiver = self.bus.subscribe();
        // Its own clock: held events wait for a gap with a deadline.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()?;
        std::thread::Builder::new()
            .name("tidings-hub".into())
            .spawn(move || runtime.block_on(dispatch_until_closed(&hub, receiver)))?;
        Ok(())
    }

    /// Hands `events` (emptied) to the sessions watching their keys, as
    /// runs of consecutive events on one key.
    fn dispatch(&self, events: &mut Vec<Arc<Event>>) {
        if events.is_empty() {
            return;
        }
        // Recorded before the registry is read: a session that registers
        // too late to be handed one finds it in the record.
        for event in events.iter() {
            if let Event::Revoked {
                user_id,
                revocation,
            } = &**event
            {
                self.revocations.record(*user_id, revocation);
            }
        }
        let registry = self.registry.read().unwrap_or_else(|e| e.into_inner());
        let mut rest = events.as_slice();
        while let Some(first) = rest.first() {
            let key = sessions_key(first);
            let len = rest.iter().take_while(|e| sessions_key(e) == key).count();
            let (run, after) = rest.split_at(len);
            rest = after;
            let Some(sessions) = registry.get(&key) else {
                continue;
            };
            let run: Arc<[Routed]> = run
                .iter()
                .map(|event| Routed {
                    frame: shared_frame(event),
                    event: Arc::clone(event),
                })
                .collect();
            self.record(&run);
            for handle in sessions.values() {
                self.offer(handle, Outbound::Events(Arc::clone(&run)), run.len());
            }
        }
        drop(registry);
        events.clear();
    }

    /// Adds a run's topic messages to their topic's record, before any
    /// session is handed them (see `recent.rs`).
    fn record(&self, run: &[Routed]) {
        let messages = run
            .iter()
            .filter_map(|routed| match (&*routed.event, &routed.frame) {
                (Event::TopicMessage { message, .. }, Some(frame)) => Some((
                    message.channel_id,
                    Recorded {
                        seq: message.seq,
                        sender_id: message.sender_id,
                        created_at: message.created_at,
                        frame: frame.clone(),
                    },
                )),
                _ => None,
            });
        let mut messages = messages.peekable();
        if messages.peek().is_none() {
            return;
        }
        self.recent.record_all(messages, domain::time::now_millis());
        self.metrics.recent_bytes.set(self.recent.bytes() as f64);
    }

    fn resync_all(&self) {
        self.metrics.resyncs.increment(1);
        // Whatever was lost is missing from the records too.
        self.recent.clear();
        self.metrics.recent_bytes.set(0.0);
        let registry = self.registry.read().unwrap_or_else(|e| e.into_inner());
        let mut seen = std::collections::HashSet::new();
        for (id, handle) in registry.values().flat_map(|s| s.iter()) {
            if seen.insert(*id) && !handle.resync_queued.swap(true, Ordering::AcqRel) {
                self.offer(handle, Outbound::Resync, 1);
            }
        }
    }

    /// Queues `out` (worth `events` events) unless the session already
    /// has its limit queued; then it is kicked instead.
    fn offer(&self, handle: &SessionHandle, out: Outbound, events: usize) {
        if !handle.backlog.offer(events) {
            handle.kick.notify_one();
            return;
        }
        // A send fails only when the session is gone; it unregisters itself.
        let _ = handle.queue.send(out);
    }
}

/// The dispatcher thread's loop: takes every event waiting on the bus (up
/// to a bound), puts them in seq order (see `reorder.rs`) and hands them
/// to the hub, while the hub lives.
async fn dispatch_until_closed(hub: &Weak<Hub>, mut receiver: broadcast::Receiver<Delivery>) {
    let mut events = Vec::with_capacity(MAX_DRAIN);
    let mut order = Reorder::default();
    loop {
        let mut next = match order.deadline() {
            Some(deadline) => tokio::select! {
                biased;
                received = receiver.recv() => Some(received),
                () = tokio::time::sleep_until(deadline) => None,
            },
            None => Some(receiver.recv().await),
        };
        // Late, maybe: what is already waiting (the missing seq, say) is
        // taken before any gap is given up on.
        if next.is_none() {
            next = poll_now(&mut receiver);
        }
        // Only a live gateway is dispatched to; a dropped one ends the thread.
        let Some(hub) = hub.upgrade() else { return };
        let now = Instant::now();
        let unwatched =
            std::mem::take(&mut *hub.unwatched.lock().unwrap_or_else(|e| e.into_inner()));
        for key in unwatched {
            order.forget(key, &mut events);
        }
        // Take whatever else is already waiting, up to a bound.
        let (mut taken, mut held) = (0, 0);
        while let Some(received) = next.take() {
            match received {
                Ok(Delivery::Event(event)) => held += order.admit(event, now, &mut events),
                Ok(Delivery::Resync) => {
                    order.reset(&mut events);
                    hub.dispatch(&mut events);
                    hub.resync_all();
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "the hub fell behind the bus; sessions resync from the store"
                    );
                    order.reset(&mut events);
                    hub.dispatch(&mut events);
                    hub.resync_all();
                }
                Err(RecvError::Closed) => {
                    order.reset(&mut events);
                    hub.dispatch(&mut events);
                    return;
                }
            }
            taken += 1;
            if taken < MAX_DRAIN {
                next = poll_now(&mut receiver);
            }
        }
        let gave_up = order.expire(now, &mut events);
        if held + gave_up > 0 {
            hub.metrics.reordered.increment(held as u64);
            hub.metrics.reorder_timeouts.increment(gave_up as u64);
        }
        hub.dispatch(&mut events);
    }
}

/// What the bus has waiting now, if anything.
fn poll_now(receiver: &mut broadcast::Receiver<Delivery>) -> Option<Result<Delivery, RecvError>> {
    match receiver.try_recv() {
        Ok(delivery) => Some(Ok(delivery)),
        Err(TryRecvError::Empty) => None,
        Err(TryRecvError::Lagged(missed)) => Some(Err(RecvError::Lagged(missed))),
        Err(TryRecvError::Closed) => Some(Err(RecvError::Closed)),
    }
}

/// Which sessions get `event`: those watching its key, except that a
/// revocation, which reaches every gateway on one key, goes to its user's.
fn sessions_key(event: &Event) -> Key {
    match event {
        Event::Revoked { user_id, .. } => Key::User(*user_id),
        other => other.key(),
    }
}

/// The frame every recipient of `event` gets, serialized once.
fn shared_frame(event: &Event) -> Option<Bytes> {
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
            InboxChange::ReadAll => ServerFrame::ReadAll { up_to: *id },
        },
        _ => return None,
    };
    Some(Bytes::from(frame.to_json(None)))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use domain::bus::LocalBus;
    use domain::events::Revocation;

    use super::*;
    use crate::reorder::test_messages::{message, seqs};

    /// A hub with its dispatcher running on a local bus, and one session
    /// (id 1) watching `key`; `recent_bytes` is the record's budget.
    async fn watching(
        key: Key,
        recent_bytes: usize,
    ) -> (
        SharedBus,
        Arc<Hub>,
        SessionHandle,
        mpsc::UnboundedReceiver<Outbound>,
    ) {
        let bus: SharedBus = Arc::new(LocalBus::default());
        let hub = Hub::new(bus.clone(), GatewayMetrics::default(), recent_bytes);
        hub.spawn_dispatcher().unwrap();
        let (queue, received) = mpsc::unbounded_channel();
        let handle = SessionHandle::new(queue, 100, Arc::default());
        hub.watch(key, 1, &handle).await;
        (bus, hub, handle, received)
    }

    /// The next run the hub hands the session; fails after 5 s or on
    /// anything else.
    async fn next_run(received: &mut mpsc::UnboundedReceiver<Outbound>) -> Arc<[Routed]> {
        let out = tokio::time::timeout(Duration::from_secs(5), received.recv()).await;
        let Ok(Some(Outbound::Events(run))) = out else {
            panic!("{out:?}")
        };
        run
    }

    /// `(channel, seq)` of each message in the next run.
    async fn next_seqs(received: &mut mpsc::UnboundedReceiver<Outbound>) -> Vec<(i64, i64)> {
        seqs(next_run(received).await.iter().map(|routed| &*routed.event))
    }

    /// Topic messages are recorded for catch-ups by the time a session
    /// is handed them, only for topics watched here; a resync (events may
    /// be lost) and the last session leaving empty the record.
    #[tokio::test]
    async fn watched_topics_messages_are_recorded_until_a_resync_or_the_last_session_leaves() {
        let (bus, hub, _handle, mut received) = watching(Key::Channel(7), 1 << 20).await;
        for (channel_id, seq) in [(7, 1), (8, 1), (7, 2)] {
            bus.publish(message(channel_id, seq)).await.unwrap();
        }
        let mut handed = 0;
        while handed < 2 {
            handed += next_run(&mut received).await.len();
        }
        let now = domain::time::now_millis();
        let recorded = hub.recent.after(7, 0, 10, now).unwrap();
        assert_eq!(recorded.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2]);
        assert!(
            hub.recent.after(8, 0, 10, now).is_none(),
            "not watched here"
        );
        hub.resync_all();
        assert!(hub.recent.after(7, 0, 10, now).is_none());
        bus.publish(message(7, 3)).await.unwrap();
        bus.publish(message(7, 4)).await.unwrap();
        while hub.recent.after(7, 2, 10, now).is_none_or(|r| r.len() < 2) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        hub.unwatch(Key::Channel(7), 1).await;
        assert!(hub.recent.after(7, 2, 10, now).is_none());
        assert_eq!(hub.recent.bytes(), 0);
    }

    /// Another process's commit can reach the bus ahead of an earlier
    /// one: the hub hands sessions the topic's messages in seq order,
    /// and records them so, without any session reading the store.
    #[tokio::test]
    async fn messages_that_arrive_out_of_order_are_handed_on_in_order() {
        let (bus, hub, _handle, mut received) = watching(Key::Channel(7), 1 << 20).await;
        for seq in [1, 4, 5, 2, 3, 6] {
            bus.publish(message(7, seq)).await.unwrap();
        }
        let mut handed = vec![];
        while handed.len() < 6 {
            handed.extend(next_seqs(&mut received).await);
        }
        let expected: Vec<_> = (1..=6).map(|seq| (7, seq)).collect();
        assert_eq!(handed, expected);
        let recorded = hub
            .recent
            .after(7, 0, 10, domain::time::now_millis())
            .unwrap();
        assert_eq!(recorded.len(), 6, "the record holds them all, in order");
    }

    /// A key no longer watched gets no events over Redis: watched again,
    /// its stream starts where it resumes, and its next message is not
    /// held back waiting for the seqs that went by.
    #[tokio::test]
    async fn a_topic_watched_again_is_not_held_for_what_went_by() {
        let (bus, hub, handle, mut received) = watching(Key::Channel(7), 0).await;
        hub.watch(Key::Channel(8), 1, &handle).await;
        bus.publish(message(7, 1)).await.unwrap();
        assert_eq!(next_seqs(&mut received).await, [(7, 1)]);
        hub.unwatch(Key::Channel(7), 1).await;
        hub.watch(Key::Channel(7), 1, &handle).await;
        // Seqs 2 to 9 went by while nobody here watched.
        bus.publish(message(7, 10)).await.unwrap();
        bus.publish(message(8, 1)).await.unwrap();
        let mut handed = vec![];
        while !handed.contains(&(8, 1)) {
            handed.extend(next_seqs(&mut received).await);
        }
        assert_eq!(handed, [(7, 10), (8, 1)], "10 went out in its turn");
    }

    /// A revocation reaches every gateway on one key; the hub records it
    /// for sessions that register later and hands it to the user's
    /// sessions registered now.
    #[tokio::test]
    async fn a_revocation_is_recorded_and_handed_to_its_users_sessions() {
        let (bus, hub, _handle, mut received) = watching(Key::User(1), 0).await;
        let mark = hub.revocations.mark();
        let revoked = |user_id| Event::Revoked {
            user_id,
            revocation: Revocation::Session { sid: "s".into() },
        };
        for user_id in [2, 1] {
            bus.publish(revoked(user_id)).await.unwrap();
        }
        let run = next_run(&mut received).await;
        assert_eq!(run.len(), 1);
        assert_eq!(
            *run[0].event,
            revoked(1),
            "only user 1's, to user 1's session"
        );
        let session = Revocation::Session { sid: "s".into() };
        assert_eq!(hub.revocations.since(mark, 1), Some(vec![session.clone()]));
        assert_eq!(hub.revocations.since(mark, 2), Some(vec![session]));
    }

    /// What the hub asked of the bus, in the order the requests reached
    /// it. Redis's timing cannot be steered, so this bus stands in for it
    /// to make the slow request slow on purpose: `slow` delays subscribes
    /// or unsubscribes before they land.
    #[derive(Default)]
    struct Recording {
        requests: std::sync::Mutex<Vec<(&'static str, Key)>>,
        slow_subscribe: bool,
        slow_unsubscribe: bool,
    }

    impl Recording {
        fn requests(&self) -> Vec<(&'static str, Key)> {
            self.requests.lock().unwrap().clone()
        }
    }

    #[async_trait::async_trait]
    impl domain::bus::Bus for Recording {
        async fn publish(&self, _event: Event) -> Result<(), domain::bus::BusError> {
            Ok(())
        }

        fn subscribe(&self) -> broadcast::Receiver<Delivery> {
            broadcast::channel(16).1
        }

        async fn watch(&self, key: Key) {
            if self.slow_subscribe {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            self.requests.lock().unwrap().push(("subscribe", key));
        }

        async fn unwatch(&self, key: Key) {
            if self.slow_unsubscribe {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            self.requests.lock().unwrap().push(("unsubscribe", key));
        }

        fn name(&self) -> &'static str {
            "recording"
        }
    }

    fn session() -> SessionHandle {
        SessionHandle::new(mpsc::unbounded_channel().0, 100, Arc::default())
    }

    /// A socket closes (its unsubscribe is slow to go out) as another
    /// opens on the same key: the newcomer's subscribe must land after
    /// the unsubscribe, or the key would be watched with nothing routed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_key_left_and_watched_again_at_once_ends_subscribed() {
        let bus = Arc::new(Recording {
            slow_unsubscribe: true,
            ..Recording::default()
        });
        let hub = Hub::new(bus.clone(), GatewayMetrics::default(), 0);
        let key = Key::Channel(1);
        hub.watch(key, 1, &session()).await;
        let leaving = tokio::spawn({
            let hub = Arc::clone(&hub);
            async move { hub.unwatch(key, 1).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        hub.watch(key, 2, &session()).await;
        leaving.await.unwrap();
        assert_eq!(
            bus.requests(),
            [("subscribe", key), ("unsubscribe", key), ("subscribe", key)]
        );
        assert_eq!(hub.watched_keys(), 1);
        assert_eq!(hub.gates.busy(), 0, "no turn is left behind");
    }

    /// A second session on a key whose subscription is still under way
    /// waits for it: it must not read its starting point before its
    /// events flow.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_session_waits_for_the_first_ones_subscription() {
        let bus = Arc::new(Recording {
            slow_subscribe: true,
            ..Recording::default()
        });
        let hub = Hub::new(bus.clone(), GatewayMetrics::default(), 0);
        let key = Key::User(7);
        let first = tokio::spawn({
            let hub = Arc::clone(&hub);
            async move { hub.watch(key, 1, &session()).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        hub.watch(key, 2, &session()).await;
        assert_eq!(bus.requests(), [("subscribe", key)], "subscribed by then");
        first.await.unwrap();
    }
}
