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

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use redis::aio::{ConnectionManager, PubSubSink};
use tokio::sync::broadcast;

use super::{Bus, BusError, Delivery};
use crate::events::{Event, Key};

/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

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
}

impl RedisBus {
    /// Connects to `url` and starts the receiving task.
    pub async fn connect(url: &str, prefix: &str, capacity: usize) -> Result<Arc<Self>, BusError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let publisher = ConnectionManager::new(client.clone())
            .await
            .map_err(unavailable)?;
        let (sender, _) = broadcast::channel(capacity.max(16));
        let bus = Arc::new(Self {
            publisher,
            prefix: prefix.to_owned(),
            sender,
            subs: Arc::new(Mutex::new(Subscriptions {
                watched: HashSet::new(),
                sink: None,
            })),
            receiving: Arc::new(AtomicBool::new(false)),
            publish_failed: AtomicBool::new(false),
        });
        let (ready, subscribed) = tokio::sync::oneshot::channel();
        tokio::spawn(receive(client, Arc::downgrade(&bus), ready));
        match tokio::time::timeout(Duration::from_secs(10), subscribed).await {
            Ok(Ok(())) => Ok(bus),
            _ => Err(BusError::Unavailable("could not subscribe to Redis".into())),
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

    /// One pipeline of `PUBLISH`es, in order.
    async fn publish_all(&self, events: Vec<Event>) -> Result<(), BusError> {
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
        if result.is_err() {
            self.publish_failed.store(true, Ordering::Release);
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
        let mut conn = self.publisher.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map_err(unavailable)?;
        if !self.receiving.load(Ordering::Acquire) {
            return Err(BusError::Unavailable("not subscribed to Redis".into()));
        }
        Ok(())
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
    let mut backoff = Duration::from_millis(100);
    let mut first = true;
    loop {
        let Some(this) = bus.upgrade() else { return };
        match client.get_async_pubsub().await {
            Ok(pubsub) => {
                let (mut sink, mut stream) = pubsub.split();
                let keys: Vec<String> = {
                    let mut subs = this.lock();
                    subs.sink = Some(sink.clone());
                    subs.watched
                        .iter()
                        .map(|k| k.channel_name(&this.prefix))
                        .collect()
                };
                let mut channels = keys;
                channels.push(this.resync_channel());
                if sink.subscribe(&channels).await.is_ok() {
                    backoff = Duration::from_millis(100);
                    this.receiving.store(true, Ordering::Release);
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                    if !first {
                        tracing::info!("Redis is back; gateways resync from the store");
                        let _ = this.sender.send(Delivery::Resync);
                    }
                    first = false;
                    let resync = this.resync_channel();
                    let sender = this.sender.clone();
                    drop(this);
                    while let Some(message) = stream.next().await {
                        let delivery = if message.get_channel_name() == resync {
                            Delivery::Resync
                        } else {
                            match serde_json::from_slice::<Event>(message.get_payload_bytes()) {
                                Ok(event) => Delivery::Event(Arc::new(event)),
                                Err(err) => {
                                    tracing::warn!(%err, "ignored an undecodable event");
                                    continue;
                                }
                            }
                        };
                        let _ = sender.send(delivery);
                    }
                    let Some(this) = bus.upgrade() else { return };
                    this.receiving.store(false, Ordering::Release);
                    this.lock().sink = None;
                    tracing::warn!("lost the Redis subscription; reconnecting");
                    continue;
                }
                this.lock().sink = None;
            }
            Err(err) => tracing::warn!(%err, "cannot reach Redis; retrying"),
        }
        first = false;
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
