//! The Redis bus: events travel as JSON on pub/sub channels, one per
//! routing key (`tidings:channel:7`, `tidings:user:3`, `tidings:tag:2`), so
//! each gateway receives only what its own sockets need.
//!
//! Publishing goes through a [`ConnectionManager`] that reconnects by
//! itself. Receiving runs in one task that owns the pub/sub connection: it
//! reconnects with capped backoff, re-subscribes every watched key, and
//! then tells the hub to [`Delivery::Resync`] so sessions fill whatever
//! they missed from the store. A publish that failed (Redis away from the
//! publisher's side only) is followed, once Redis answers again, by a
//! message on the resync channel that makes every gateway do the same.
//!
//! Outages are short by policy, not by luck: every connection attempt and
//! every command gives up after a second, the first retry is immediate and
//! the backoff stops at a second, and an idle subscription is pinged, so a
//! dead link is noticed within seconds and Redis coming back is noticed
//! within about a second. While Redis is away, what this process publishes
//! still reaches its own sockets: events go straight to the local hub.
//!
//! The same subscription carries holds between processes (see `holds.rs`).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, PubSubSink};
use tokio::sync::broadcast;

use super::holds::{self, Holds};
use super::{Bus, BusError, Delivery};
use crate::events::{Event, Key};
use crate::fan_out_lag::FanOutLag;

/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How long a connection attempt or a command may take.
const TIMEOUT: Duration = Duration::from_secs(1);
/// How often an idle subscription is pinged (a cut link sends no FIN).
const KEEPALIVE: Duration = Duration::from_secs(5);

struct Subscriptions {
    watched: HashSet<Key>,
    /// The live pub/sub connection's command half, when connected.
    sink: Option<PubSubSink>,
}

pub struct RedisBus {
    publisher: ConnectionManager,
    prefix: String,
    sender: broadcast::Sender<Delivery>,
    subs: Arc<Mutex<Subscriptions>>,
    receiving: Arc<AtomicBool>,
    /// Set when a publish failed; cleared by announcing a resync.
    publish_failed: AtomicBool,
    holds: Arc<Holds>,
    /// This bus, for the task that announces holds (it must not keep the
    /// bus alive).
    me: Weak<RedisBus>,
    /// The bus's own runtime (see [`RedisBus::connect`]).
    runtime: tokio::runtime::Handle,
}

impl RedisBus {
    /// Connects to `url` and starts the receiving task, on a thread of
    /// the bus's own.
    ///
    /// On the shared runtime, the connections' tasks waited their turn
    /// behind thousands of busy sessions: under a flood, replies to
    /// publishes took more than their second, the publishes counted as
    /// failed (Redis had them), and each failure made every gateway resync
    /// every session from the store, on processes already out of CPU.
    pub async fn connect(url: &str, prefix: &str, capacity: usize) -> Result<Arc<Self>, BusError> {
        let client = redis::Client::open(url).map_err(|e| BusError::InvalidUrl(e.to_string()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        let (opened, bus) = tokio::sync::oneshot::channel();
        let prefix = prefix.to_owned();
        std::thread::Builder::new()
            .name("tidings-redis".into())
            .spawn(move || {
                let handle = runtime.handle().clone();
                runtime.block_on(async move {
                    match Self::open(client, prefix, capacity, handle).await {
                        Ok((bus, receiving)) => {
                            let _ = opened.send(Ok(bus));
                            // The thread lives as long as the bus.
                            let _ = receiving.await;
                        }
                        Err(err) => {
                            let _ = opened.send(Err(err));
                        }
                    }
                });
            })
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        bus.await
            .unwrap_or_else(|_| Err(BusError::Unavailable("the bus's thread ended".into())))
    }

    /// Connects, on the bus's own runtime; the bus and its receiving task.
    async fn open(
        client: redis::Client,
        prefix: String,
        capacity: usize,
        runtime: tokio::runtime::Handle,
    ) -> Result<(Arc<Self>, tokio::task::JoinHandle<()>), BusError> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(TIMEOUT)
            .set_response_timeout(TIMEOUT)
            // Delays of rand(0..50 ms × 2^n), at most a second, three
            // tries per command before it fails (and the next one tries again).
            .set_factor(50)
            .set_exponent_base(2)
            .set_max_delay(MAX_BACKOFF.as_millis() as u64)
            .set_number_of_retries(3);
        let publisher = ConnectionManager::new_with_config(client.clone(), config)
            .await
            .map_err(unavailable)?;
        let (sender, _) = broadcast::channel(capacity.max(16));
        let bus = Arc::new_cyclic(|me| Self {
            publisher,
            prefix,
            sender,
            subs: Arc::new(Mutex::new(Subscriptions {
                // Subscribed from the first connection on, before the bus
                // says it is ready (see `Key::Credentials`).
                watched: HashSet::from([Key::Credentials]),
                sink: None,
            })),
            receiving: Arc::new(AtomicBool::new(false)),
            publish_failed: AtomicBool::new(false),
            holds: Arc::new(Holds::new()),
            me: me.clone(),
            runtime,
        });
        let (ready, subscribed) = tokio::sync::oneshot::channel();
        let receiving = tokio::spawn(receive(client, Arc::downgrade(&bus), ready));
        match tokio::time::timeout(3 * TIMEOUT, subscribed).await {
            Ok(Ok(())) => Ok((bus, receiving)),
            _ => {
                receiving.abort();
                Err(BusError::Unavailable("could not subscribe to Redis".into()))
            }
        }
    }

    /// Hands events to this process's hub as if they came from Redis.
    fn deliver_locally(&self, events: &[Event]) {
        for event in events {
            let _ = self.sender.send(Delivery::Event(Arc::new(event.clone())));
        }
    }

    fn resync_channel(&self) -> String {
        format!("{}:resync", self.prefix)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Subscriptions> {
        self.subs.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn send(&self, channel: String, payload: String) -> redis::RedisResult<()> {
        let mut conn = self.publisher.clone();
        redis::cmd("PUBLISH")
            .arg(channel)
            .arg(payload)
            .query_async::<i64>(&mut conn)
            .await
            .map(|_| ())
    }
}

fn unavailable(err: redis::RedisError) -> BusError {
    BusError::Unavailable(err.to_string())
}

#[async_trait]
impl Bus for RedisBus {
    async fn publish(&self, event: Event) -> Result<(), BusError> {
        self.publish_all(vec![event]).await
    }

    /// One pipeline of `PUBLISH`es, in order. While Redis is away the
    /// events also go straight to this process's own hub, so its sockets
    /// keep getting what is published here (a repeat through Redis later
    /// is dropped by seq).
    async fn publish_all(&self, events: Vec<Event>) -> Result<(), BusError> {
        let away = !self.receiving.load(Ordering::Acquire);
        if away {
            self.deliver_locally(&events);
        }
        if self.publish_failed.load(Ordering::Acquire)
            && self
                .send(self.resync_channel(), String::new())
                .await
                .is_ok()
        {
            self.publish_failed.store(false, Ordering::Release);
        }
        let mut pipe = redis::pipe();
        for event in &events {
            let payload =
                serde_json::to_string(event).map_err(|e| BusError::Unavailable(e.to_string()))?;
            pipe.cmd("PUBLISH")
                .arg(event.key().channel_name(&self.prefix))
                .arg(payload)
                .ignore();
        }
        let mut conn = self.publisher.clone();
        let result = pipe.query_async::<()>(&mut conn).await;
        let count = events.len() as u64;
        if result.is_ok() {
            metrics::counter!("tidings_bus_published_total").increment(count);
        } else {
            metrics::counter!("tidings_bus_publish_failures_total").increment(count);
            self.publish_failed.store(true, Ordering::Release);
            if !away {
                self.deliver_locally(&events);
            }
        }
        result.map_err(unavailable)
    }

    fn subscribe(&self) -> broadcast::Receiver<Delivery> {
        self.sender.subscribe()
    }

    /// Returns once Redis confirmed the subscription (or, while
    /// disconnected, at once: the reconnection subscribes it and resyncs).
    async fn watch(&self, key: Key) {
        let sink = {
            let mut subs = self.lock();
            subs.watched.insert(key);
            subs.sink.clone()
        };
        if let Some(mut sink) = sink
            && let Err(err) = sink.subscribe(key.channel_name(&self.prefix)).await
        {
            tracing::warn!(%err, "subscribe failed; it is retried on reconnect");
        }
    }

    async fn unwatch(&self, key: Key) {
        let sink = {
            let mut subs = self.lock();
            subs.watched.remove(&key);
            subs.sink.clone()
        };
        if let Some(mut sink) = sink {
            let _ = sink.unsubscribe(key.channel_name(&self.prefix)).await;
        }
    }

    async fn ping(&self) -> Result<(), BusError> {
        if !self.receiving.load(Ordering::Acquire) {
            return Err(BusError::Unavailable("not subscribed to Redis".into()));
        }
        let mut conn = self.publisher.clone();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut conn);
        match tokio::time::timeout(TIMEOUT, ping).await {
            Ok(answer) => answer.map(|_| ()).map_err(unavailable),
            Err(_) => Err(BusError::Unavailable(
                "Redis did not answer within 1 s".into(),
            )),
        }
    }

    fn share_holds(&self, lag: Arc<FanOutLag>) {
        if !self.holds.share(Arc::clone(&lag)) {
            return;
        }
        let me = self.me.clone();
        let channel = Holds::channel(&self.prefix);
        // On the bus's runtime: a renewal must not wait behind sessions.
        self.runtime.spawn(holds::announce(
            lag,
            Arc::clone(&self.holds),
            move |message| {
                let (me, channel) = (me.clone(), channel.clone());
                async move {
                    let bus = me.upgrade()?;
                    if let Err(err) = bus.send(channel, message).await {
                        tracing::debug!(%err, "a hold was not announced; it is renewed shortly");
                    }
                    Some(())
                }
            },
        ));
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}

/// Owns the pub/sub connection for as long as the bus lives.
async fn receive(
    client: redis::Client,
    bus: std::sync::Weak<RedisBus>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    let mut ready = Some(ready);
    let mut backoff = Duration::ZERO;
    let mut first = true;
    loop {
        let Some(this) = bus.upgrade() else { return };
        match subscribe(&client, &this).await {
            Ok((sink, stream)) => {
                backoff = Duration::ZERO;
                this.receiving.store(true, Ordering::Release);
                if let Some(ready) = ready.take() {
                    let _ = ready.send(());
                }
                if !first {
                    tracing::info!("Redis is back; gateways resync from the store");
                    let _ = this.sender.send(Delivery::Resync);
                }
                first = false;
                let channels = Channels {
                    resync: this.resync_channel(),
                    hold: Holds::channel(&this.prefix),
                };
                let (sender, holds) = (this.sender.clone(), Arc::clone(&this.holds));
                drop(this);
                let why = pump(sink, stream, &channels, &sender, &holds, &bus).await;
                let Some(this) = bus.upgrade() else { return };
                this.receiving.store(false, Ordering::Release);
                this.lock().sink = None;
                metrics::counter!("tidings_bus_reconnects_total").increment(1);
                tracing::warn!(cause = %why, "lost the Redis subscription; reconnecting");
                continue;
            }
            Err(err) => {
                this.lock().sink = None;
                tracing::warn!(cause = %err, retry_in_ms = backoff.as_millis() as u64, "cannot reach Redis; live events from other processes wait, this process's own still flow");
            }
        }
        first = false;
        drop(this);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).clamp(Duration::from_millis(50), MAX_BACKOFF);
    }
}

/// Connects and subscribes to every watched key, within [`TIMEOUT`].
async fn subscribe(
    client: &redis::Client,
    bus: &RedisBus,
) -> Result<(PubSubSink, redis::aio::PubSubStream), String> {
    let attempt = async {
        let pubsub = client.get_async_pubsub().await.map_err(|e| e.to_string())?;
        let (mut sink, stream) = pubsub.split();
        let mut channels: Vec<String> = {
            let mut subs = bus.lock();
            subs.sink = Some(sink.clone());
            subs.watched
                .iter()
                .map(|k| k.channel_name(&bus.prefix))
                .collect()
        };
        channels.push(bus.resync_channel());
        channels.push(Holds::channel(&bus.prefix));
        sink.subscribe(&channels).await.map_err(|e| e.to_string())?;
        Ok((sink, stream))
    };
    tokio::time::timeout(TIMEOUT, attempt)
        .await
        .unwrap_or_else(|_| Err(format!("no answer within {} s", TIMEOUT.as_secs())))
}

/// The channels every process listens on besides its keys.
struct Channels {
    resync: String,
    hold: String,
}

/// Hands every message to the hub (holds to `holds`) until the
/// subscription breaks; pings it when idle so a cut link (no FIN, no RST)
/// is noticed too. Returns why it ended.
async fn pump(
    mut sink: PubSubSink,
    mut stream: redis::aio::PubSubStream,
    channels: &Channels,
    sender: &broadcast::Sender<Delivery>,
    holds: &Holds,
    bus: &Weak<RedisBus>,
) -> String {
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.reset();
    let received = metrics::counter!("tidings_bus_received_total");
    loop {
        tokio::select! {
            message = stream.next() => {
                let Some(message) = message else {
                    return "the connection closed".into();
                };
                keepalive.reset();
                let channel = message.get_channel_name();
                if channel == channels.hold {
                    holds.receive(message.get_payload_bytes());
                    continue;
                }
                let delivery = if channel == channels.resync {
                    metrics::counter!("tidings_bus_resyncs_total").increment(1);
                    Delivery::Resync
                } else {
                    match serde_json::from_slice::<Event>(message.get_payload_bytes()) {
                        Ok(event) => {
                            received.increment(1);
                            Delivery::Event(Arc::new(event))
                        }
                        Err(err) => {
                            tracing::warn!(%err, "ignored an undecodable event");
                            continue;
                        }
                    }
                };
                let _ = sender.send(delivery);
            }
            _ = keepalive.tick() => {
                if bus.strong_count() == 0 {
                    return "the bus is gone".into();
                }
                match tokio::time::timeout(TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(err)) => return err.to_string(),
                    Err(_) => return "no answer to a ping within 1 s".into(),
                }
            }
        }
    }
}
