//! One WebSocket connection, from welcome to close.
//!
//! `run` is a `select!` over the socket, the hub queue, timers and
//! shutdown. Frames are fed to the socket as they come and flushed once per
//! wake-up, so a burst costs one syscall, not one per frame. Delivery state
//! (how far each channel and tag has been written, and how far the client
//! provably received, see [`proof`]) lives here; the store's copy of the
//! received positions is refreshed in batches through the
//! [`CursorBook`](crate::cursors).

mod actions;
mod delivery;
mod proof;
mod sequencer;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
// Keys are server-assigned ids: a fast hash, not SipHash (a measurable
// share of each delivery's CPU).
use domain::events::Key;
use domain::model::Actor;
use domain::protocol::ServerFrame;
use foldhash::HashMap;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::GatewayState;
use crate::hub::{Outbound, SessionHandle, SessionId};
use crate::rate::TokenBucket;

/// How many queued events one wake-up handles (at least) before flushing.
const BATCH: usize = 256;
/// Publishes one socket may have waiting for their commit; beyond that the
/// socket is not read until acks go out (backpressure, not buffering).
const MAX_IN_FLIGHT: usize = 256;
/// How often a session hands its delivery positions to the cursor book.
const CURSOR_EVERY: Duration = Duration::from_millis(250);
/// One flush in this many records the delivery latency (a sample keeps the
/// histogram cheap at millions of deliveries per second).
const LATENCY_SAMPLE: u64 = 16;
/// How long a closing session waits for the client's close frame, which
/// proves it read everything before ours.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// How long a session shutting down waits for its publishes to commit.
const DRAIN_WAIT: Duration = Duration::from_secs(10);

/// Publishes under way, acknowledged in the order they were sent.
pub(crate) type Pending = futures_util::stream::FuturesOrdered<
    std::pin::Pin<
        Box<
            dyn std::future::Future<
                    Output = (
                        Option<serde_json::Value>,
                        Result<domain::service::Published, domain::service::ServiceError>,
                    ),
                > + Send,
        >,
    >,
>;

/// Why a session ends.
#[derive(Debug)]
pub enum End {
    /// Close with this code and reason.
    Close(u16, &'static str),
    /// The peer is gone; nothing to send.
    Gone,
}

pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL: u16 = 1011;
    pub const TOKEN_EXPIRED: u16 = 4001;
    pub const SLOW_CONSUMER: u16 = 4008;
}

/// A channel this session delivers, and how far.
struct Tracked {
    label: String,
    order: sequencer::Sequencer<Held>,
    /// The confirmed position moved since the cursor book was last told.
    dirty: bool,
}

/// A live message frame held back until the seqs before it arrive.
struct Held {
    sender_id: i64,
    created_at: i64,
    frame: Utf8Bytes,
}

/// A tag subscription this session delivers, and how far. Notifications
/// of a tag are not held: any gap is read from the store at once.
struct TrackedTag {
    subscription_id: i64,
    position: sequencer::Position,
    dirty: bool,
}

pub struct Session {
    state: GatewayState,
    actor: Actor,
    id: SessionId,
    handle: SessionHandle,
    /// One task reads and writes the socket, so it is never split (a
    /// split socket takes a lock on every read and write).
    socket: WebSocket,
    channels: HashMap<i64, Tracked>,
    tags: HashMap<i64, TrackedTag>,
    bucket: TokenBucket,
    /// Frames fed since the last flush, by kind (messages, notifications, other).
    unflushed: [u64; 3],
    /// Commit time of the oldest message fed since the last flush.
    oldest_unflushed: Option<i64>,
    flushes: u64,
    /// Frames written since the counters were last updated.
    tally: [u64; 3],
    /// Something (a frame, a ping, an automatic pong) awaits a flush.
    needs_flush: bool,
    /// Pings sent, and what each proves once answered.
    proofs: proof::Proofs,
    /// Frames were written since the last ping.
    unproven: bool,
    /// A confirmed position moved since the cursor book was last told.
    unsaved: bool,
    /// Resolves once the last publish read is queued for commit.
    turn: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl Session {
    /// Runs a connection to its end.
    pub async fn start(state: GatewayState, actor: Actor, expires_at: i64, socket: WebSocket) {
        let limit = state.config.outbound_queue.max(1);
        let (queue, mut receiver) = mpsc::unbounded_channel();
        let handle = SessionHandle::new(queue, limit);
        let bucket = TokenBucket::new(state.config.publish_rate, state.config.publish_burst);
        let id = state.hub.next_session_id();
        let mut session = Session {
            state,
            actor,
            id,
            handle,
            socket,
            channels: HashMap::default(),
            tags: HashMap::default(),
            bucket,
            unflushed: [0; 3],
            oldest_unflushed: None,
            flushes: 0,
            tally: [0; 3],
            needs_flush: false,
            proofs: proof::Proofs::default(),
            unproven: false,
            unsaved: false,
            turn: None,
        };
        let metrics = session.state.hub.metrics().clone();
        metrics.connections.increment(1.0);
        let end = session.run(&mut receiver, expires_at).await;
        session.finish(end).await;
        metrics.connections.decrement(1.0);
    }

    async fn run(
        &mut self,
        receiver: &mut mpsc::UnboundedReceiver<Outbound>,
        expires_at: i64,
    ) -> End {
        if let Err(end) = self.open().await {
            return end;
        }
        let config = self.state.config.clone();
        let expiry = deadline(expires_at);
        // One timer for everything periodic (cursors, gap checks, pings,
        // idle and token expiry): every timer in the select is polled on
        // every wake-up, and wake-ups happen per burst of frames.
        let mut tick = tokio::time::interval(CURSOR_EVERY.min(config.ping_interval));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut next_ping = Instant::now() + config.ping_interval;
        let mut last_heard = Instant::now();
        let mut pending = Pending::new();
        let kick = Arc::clone(&self.handle.kick);
        let shutdown = self.state.shutdown.clone();
        // Built once, not per wake-up: a fresh watch subscription or
        // notification for every frame delivered would cost more than the frame.
        let shutting_down = shutdown.wait();
        let kicked = kick.notified();
        tokio::pin!(shutting_down, kicked);
        loop {
            let step = tokio::select! {
                () = &mut shutting_down => {
                    self.drain(&mut pending).await;
                    Err(End::Close(close::GOING_AWAY, "server shutting down"))
                }
                () = &mut kicked => {
                    self.state.hub.metrics().slow_consumers.increment(1);
                    Err(End::Close(close::SLOW_CONSUMER, "slow consumer; reconnect to catch up"))
                }
                incoming = self.socket.next(), if pending.len() < MAX_IN_FLIGHT => {
                    last_heard = Instant::now();
                    // A ping read here is answered by a pong the next flush sends.
                    self.needs_flush = true;
                    self.on_incoming(incoming, &mut pending).await
                }
                Some((reference, result)) = pending.next(), if !pending.is_empty() => {
                    self.on_published(reference, result).await
                }
                Some(out) = receiver.recv() => self.on_batch(out, receiver).await,
                now = tick.tick() => {
                    if now >= expiry {
                        Err(End::Close(close::TOKEN_EXPIRED, "token expired"))
                    } else if now >= next_ping && last_heard.elapsed() > config.idle_timeout {
                        Err(End::Gone)
                    } else {
                        self.note_cursors();
                        self.report_tally();
                        // A ping goes out on schedule, and sooner while
                        // written frames wait for their proof.
                        let due = now >= next_ping;
                        let pinged = if due || (self.unproven && !self.proofs.awaiting()) {
                            if due {
                                next_ping = now + config.ping_interval;
                            }
                            self.ping().await
                        } else {
                            Ok(())
                        };
                        match pinged {
                            Ok(()) => self.fill_stale_gaps().await,
                            gone => gone,
                        }
                    }
                }
            };
            if let Err(end) = step {
                return end;
            }
            if let Err(end) = self.flush().await {
                return end;
            }
        }
    }

    /// Answers every publish already read before closing for shutdown: an
    /// acknowledged publish is stored, and a stored one is acknowledged.
    async fn drain(&mut self, pending: &mut Pending) {
        let acked = tokio::time::timeout(DRAIN_WAIT, async {
            while let Some((reference, result)) = pending.next().await {
                self.on_published(reference, result).await?;
            }
            self.flush().await
        });
        if let Ok(Err(_)) | Err(_) = acked.await {
            tracing::debug!(session = self.id, "socket gone before its last acks");
        }
    }

    /// Sends a ping that proves, once answered, everything written so far.
    async fn ping(&mut self) -> Result<(), End> {
        let payload = self.proofs.ping(self.written());
        self.unproven = false;
        self.needs_flush = true;
        self.socket
            .feed(Message::Ping(bytes::Bytes::copy_from_slice(&payload)))
            .await
            .map_err(|_| End::Gone)
    }

    /// Registers interest, then reads the store, then says welcome and
    /// replays the backlog: anything published meanwhile is queued by the
    /// hub and deduplicated by seq, so nothing falls between the two.
    async fn open(&mut self) -> Result<(), End> {
        self.watch(Key::User(self.actor.id)).await;
        self.load().await?;
        let welcome = ServerFrame::Welcome {
            user: self.actor.username.clone(),
            session: self.id.to_string(),
        };
        self.send(&welcome, None).await?;
        self.catch_up_all().await?;
        self.flush().await
    }

    /// Handles one queued run of events and whatever else is already waiting.
    async fn on_batch(
        &mut self,
        first: Outbound,
        receiver: &mut mpsc::UnboundedReceiver<Outbound>,
    ) -> Result<(), End> {
        let mut handled = 0;
        let mut next = Some(first);
        while let Some(out) = next.take() {
            handled += match &out {
                Outbound::Events(run) => run.len(),
                Outbound::Resync => 1,
            };
            self.on_outbound(out).await?;
            if handled < BATCH {
                next = receiver.try_recv().ok();
            }
        }
        self.handle.handled(handled);
        Ok(())
    }

    async fn on_incoming(
        &mut self,
        incoming: Option<Result<Message, axum::Error>>,
        pending: &mut Pending,
    ) -> Result<(), End> {
        let max = self.state.config.max_frame_bytes;
        match incoming {
            None | Some(Ok(Message::Close(_))) => Err(End::Gone),
            Some(Err(err)) => Err(read_error(err)),
            Some(Ok(Message::Text(text))) if text.len() > max => {
                Err(End::Close(close::TOO_BIG, "frame too large"))
            }
            Some(Ok(Message::Binary(bytes))) if bytes.len() > max => {
                Err(End::Close(close::TOO_BIG, "frame too large"))
            }
            Some(Ok(Message::Text(text))) => self.on_text(text.as_str(), pending).await,
            Some(Ok(Message::Binary(_))) => {
                let error = domain::protocol::FrameError::new(
                    domain::protocol::ErrorCode::BadJson,
                    "frames are JSON text; binary frames are not accepted",
                );
                self.send(&ServerFrame::error(&error), None).await
            }
            // Pongs are queued by the socket itself and go out with the next flush.
            Some(Ok(Message::Ping(_))) => Ok(()),
            Some(Ok(Message::Pong(payload))) => {
                let proven = self.proofs.pong(&payload);
                self.confirm(proven);
                Ok(())
            }
        }
    }

    async fn watch(&mut self, key: Key) {
        self.state.hub.watch(key, self.id, &self.handle).await;
    }

    async fn unwatch(&mut self, key: Key) {
        self.state.hub.unwatch(key, self.id).await;
    }

    /// Feeds one frame (not yet flushed).
    async fn send(
        &mut self,
        frame: &ServerFrame,
        reference: Option<&serde_json::Value>,
    ) -> Result<(), End> {
        let kind = match frame {
            ServerFrame::Message(_) => 0,
            ServerFrame::Notification { .. } => 1,
            _ => 2,
        };
        self.feed(Utf8Bytes::from(frame.to_json(reference)), kind)
            .await
    }

    async fn feed(&mut self, text: Utf8Bytes, kind: usize) -> Result<(), End> {
        self.unflushed[kind] += 1;
        self.needs_flush = true;
        self.socket
            .feed(Message::Text(text))
            .await
            .map_err(|_| End::Gone)
    }

    /// Writes what was fed, then records metrics and cursors for it.
    async fn flush(&mut self) -> Result<(), End> {
        if !std::mem::take(&mut self.needs_flush) {
            return Ok(());
        }
        // A peer that reads nothing fills its window and the flush would
        // wait forever, where no timer or kick is heard: give it as long
        // as a silent peer gets.
        let flushed = tokio::time::timeout(self.state.config.idle_timeout, self.socket.flush());
        match flushed.await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return Err(End::Gone),
        }
        let unflushed = std::mem::take(&mut self.unflushed);
        for (total, now) in self.tally.iter_mut().zip(unflushed) {
            *total += now;
        }
        self.flushes += 1;
        if let Some(committed) = self.oldest_unflushed.take()
            && self.flushes % LATENCY_SAMPLE == 1
        {
            let lag_ms = domain::time::now_millis().saturating_sub(committed).max(0);
            let metrics = self.state.hub.metrics();
            metrics
                .delivery_latency
                .record(Duration::from_millis(lag_ms as u64).as_secs_f64());
        }
        Ok(())
    }

    /// Adds this session's frame counts to the shared counters (batched:
    /// shared atomics bumped per frame would bounce between cores).
    fn report_tally(&mut self) {
        let [messages, notifications, other] = std::mem::take(&mut self.tally);
        let metrics = self.state.hub.metrics();
        metrics.frames_out_messages.increment(messages);
        metrics.frames_out_notifications.increment(notifications);
        metrics.frames_out_other.increment(other);
        metrics.deliveries.increment(messages + notifications);
    }

    /// Leaves the hub, closes the socket, and saves what the client received.
    async fn finish(&mut self, end: End) {
        let keys: Vec<Key> = self
            .channels
            .keys()
            .map(|&c| Key::Channel(c))
            .chain(self.tags.keys().map(|&t| Key::Tag(t)))
            .chain([Key::User(self.actor.id)])
            .collect();
        for key in keys {
            self.unwatch(key).await;
        }
        if let End::Close(code, reason) = end {
            let frame = CloseFrame {
                code,
                reason: Utf8Bytes::from_static(reason),
            };
            let sent =
                tokio::time::timeout(CLOSE_WAIT, self.socket.send(Message::Close(Some(frame))));
            if matches!(sent.await, Ok(Ok(()))) && self.close_answered().await {
                // The client's close frame comes after everything we wrote
                // before ours: it has all of it.
                let written = self.written();
                self.confirm(written);
            }
        }
        // Saved before the socket closes: a client that reconnects once it
        // sees the end of this one starts where this one stopped.
        self.note_cursors();
        self.report_tally();
        self.state.cursors.flush(&self.state.core.store).await;
        let _ = tokio::time::timeout(CLOSE_WAIT, self.socket.close()).await;
    }

    /// Reads until the client answers our close frame (or goes away, or
    /// takes too long); whether it answered.
    async fn close_answered(&mut self) -> bool {
        let answered = tokio::time::timeout(CLOSE_WAIT, async {
            loop {
                match self.socket.next().await {
                    Some(Ok(Message::Close(_))) => return true,
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return false,
                }
            }
        });
        answered.await.unwrap_or(false)
    }
}

/// How a failed read ends the session: a frame over the hard cap is
/// answered with 1009; anything else means the peer is gone.
fn read_error(err: axum::Error) -> End {
    use tungstenite::error::{CapacityError, Error};
    let inner = err.into_inner();
    match inner.downcast_ref::<Error>() {
        Some(Error::Capacity(
            CapacityError::MessageTooLong { .. } | CapacityError::TooManyHeaders,
        )) => End::Close(close::TOO_BIG, "frame too large"),
        _ => End::Gone,
    }
}

/// When a token with this `exp` (seconds) runs out.
fn deadline(exp: i64) -> Instant {
    let left = exp.saturating_sub(chrono_now_secs()).max(0);
    Instant::now() + Duration::from_secs(left as u64)
}

fn chrono_now_secs() -> i64 {
    domain::time::now_millis() / 1000
}
