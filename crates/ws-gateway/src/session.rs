//! One WebSocket connection, from welcome to close.
//!
//! `run` is a `select!` over the socket, the hub queue, timers and
//! shutdown. The parts:
//! - [`connection`]: socket I/O, feed and flush, the frame counters;
//! - [`sequencer`]: what to do with each live event, without I/O;
//! - [`proof`]: what the client provably received, without I/O;
//! - [`delivery`]: tracking channels and tags, catch-up from the store;
//! - [`credential`]: whether the credential it opened with still works;
//! - [`actions`]: client frames;
//! - [`registration`]: its place in the hub, from the handshake on.
//!
//! Received positions are saved in batches through the
//! [`CursorBook`](crate::cursors).

mod actions;
mod connection;
mod credential;
mod delivery;
mod outbox;
mod patience;
mod proof;
mod registration;
mod sequencer;
mod spares;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
// Keys are server-assigned ids: a fast hash, not SipHash (a measurable
// share of each delivery's CPU).
use domain::events::Key;
use domain::model::Actor;
use domain::protocol::ServerFrame;
use domain::service::{Authenticated, Credential};
use domain::store::SessionSnapshot;
use foldhash::HashMap;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tungstenite::Message;

use crate::GatewayState;
use crate::hub::{Outbound, SessionHandle, SessionId};
use crate::rate::TokenBucket;
use crate::user_sockets::Seat;

pub use connection::Socket;
pub use registration::Registration;

/// How many queued events one wake-up handles (at least) before flushing.
const BATCH: usize = 256;
/// Publishes one socket may have waiting for their commit; beyond that the
/// socket is not read until acks go out (backpressure, not buffering).
const MAX_IN_FLIGHT: usize = 256;
/// How often a session hands its delivery positions to the cursor book.
const CURSOR_EVERY: Duration = Duration::from_millis(250);

/// What a publish comes back with: its `ref`, and stored or why not. A
/// frame refused outright while publishes are under way waits here too,
/// already answered, so its error goes out in its place behind their acks.
pub(crate) type Answer = (
    Option<serde_json::Value>,
    Result<domain::service::Published, domain::protocol::FrameError>,
);

/// Publishes under way (and refusals behind them), answered in the order
/// they were sent.
pub(crate) type Pending = futures_util::stream::FuturesOrdered<
    std::pin::Pin<Box<dyn std::future::Future<Output = Answer> + Send>>,
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
    pub const PROTOCOL_ERROR: u16 = 1002;
    pub const INVALID_DATA: u16 = 1007;
    pub const TOO_BIG: u16 = 1009;
    pub const INTERNAL: u16 = 1011;
    pub const TOKEN_EXPIRED: u16 = 4001;
    pub const REVOKED: u16 = 4003;
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
    frame: Bytes,
}

/// A tag subscription this session delivers, and how far. Notifications
/// of a tag are not held: any gap is read from the store at once.
struct TrackedTag {
    subscription_id: i64,
    position: sequencer::Position,
    dirty: bool,
}

/// What the handshake found: who the socket is, and for a token, the
/// user's snapshot, read after its events were watched.
pub struct Admitted {
    pub authenticated: Authenticated,
    pub snapshot: Option<SessionSnapshot>,
    /// The socket's place in its user's count (with a limit set).
    pub seat: Option<Seat>,
}

pub struct Session {
    state: GatewayState,
    actor: Actor,
    id: SessionId,
    /// What clients and logs call this session (unique across gateways).
    name: String,
    handle: SessionHandle,
    conn: connection::Connection,
    channels: HashMap<i64, Tracked>,
    tags: HashMap<i64, TrackedTag>,
    bucket: TokenBucket,
    /// Pings sent, and what each proves once answered.
    proofs: proof::Proofs,
    /// What the socket opened with: a revocation of it closes with 4003.
    credential: Credential,
    /// Where the gateway's record of revocations stood before the
    /// credential was checked.
    revocation_mark: u64,
    /// Frames were written since the last ping.
    unproven: bool,
    /// A confirmed position moved since the cursor book was last told.
    unsaved: bool,
    /// Resolves once the last publish read is queued for commit.
    turn: Option<tokio::sync::oneshot::Receiver<()>>,
    /// Held for the session's life: its user's count goes down as it ends.
    _seat: Option<Seat>,
}

/// What a session starts from.
///
/// An idle socket's memory is mostly its task, and a task is as big as
/// everything its future holds at its largest await. An async fn holds
/// its arguments for as long as it runs, beside whatever they were moved
/// into, so these reach [`Session::start`] boxed and are freed once the
/// session has them. For the same reason the rare paths (opening, a
/// client's frame, an ack, an event off the fast path, catch-up, closing)
/// are boxed where they are awaited, and `run` holds only the small ones.
pub struct Opening {
    pub state: GatewayState,
    pub registration: Registration,
    pub admitted: Admitted,
    /// Where the hub's record of revocations stood before the credential
    /// was checked.
    pub revocation_mark: u64,
    pub socket: Socket,
    /// What the handshake wrote and the socket has not sent (its 101).
    pub unsent: Vec<u8>,
}

/// What [`Session::run`] starts from, besides the session.
struct Beginning {
    /// The handshake watched the user already.
    watching: bool,
    /// The user's memberships and subscriptions, read by the handshake.
    snapshot: Option<SessionSnapshot>,
    /// When the credential runs out (ms).
    expires_at: Option<i64>,
}

impl Session {
    /// Runs a connection to its end.
    pub async fn start(opening: Box<Opening>) {
        // Built by a plain fn: locals of this one would keep their room in
        // the task after being moved into the session.
        let (mut session, mut receiver, beginning) = Session::new(*opening);
        let metrics = Arc::clone(session.state.hub.metrics());
        metrics.connections.increment(1.0);
        tracing::debug!(user = %session.actor.username, session = %session.name, "socket opened");
        let end = session.run(&mut receiver, beginning).await;
        let (code, reason) = match &end {
            End::Close(code, reason) => (*code, *reason),
            End::Gone => (0, "the peer went away"),
        };
        Box::pin(session.finish(end)).await;
        metrics.connections.decrement(1.0);
        tracing::debug!(user = %session.actor.username, session = %session.name, code, reason, "socket closed");
    }

    fn new(opening: Opening) -> (Self, mpsc::UnboundedReceiver<Outbound>, Beginning) {
        let Opening {
            state,
            mut registration,
            admitted,
            revocation_mark,
            socket,
            unsent,
        } = opening;
        let Admitted {
            authenticated:
                Authenticated {
                    actor,
                    credential,
                    expires_at,
                },
            snapshot,
            seat,
        } = admitted;
        let watching = registration.take_over();
        let Registration {
            id,
            handle,
            receiver,
            ..
        } = registration;
        let bucket = TokenBucket::new(state.config.publish_rate, state.config.publish_burst);
        let name = state.hub.session_name(id);
        let conn = connection::Connection::new(
            (socket, unsent),
            Arc::clone(&handle.backlog),
            Arc::clone(state.hub.metrics()),
            state.config.idle_timeout,
            state.config.write_buffer_bytes,
        );
        let session = Session {
            state,
            actor,
            id,
            name,
            handle,
            conn,
            channels: HashMap::default(),
            tags: HashMap::default(),
            bucket,
            proofs: proof::Proofs::default(),
            credential,
            revocation_mark,
            unproven: false,
            unsaved: false,
            turn: None,
            _seat: seat,
        };
        let beginning = Beginning {
            watching,
            snapshot,
            expires_at,
        };
        (session, receiver, beginning)
    }

    async fn run(
        &mut self,
        receiver: &mut mpsc::UnboundedReceiver<Outbound>,
        beginning: Beginning,
    ) -> End {
        let Beginning {
            watching,
            snapshot,
            expires_at,
        } = beginning;
        if let Err(end) = Box::pin(self.open(watching, snapshot)).await {
            return end;
        }
        let mut clock = Clock::new(&self.state.config, expires_at);
        // One timer for everything periodic (cursors, gap checks, pings,
        // idle and token expiry): every timer in the select is polled on
        // every wake-up, and wake-ups happen per burst of frames. It runs
        // every `period` while there is something to do, and a session at
        // rest sleeps until its next ping or the end of its token: four
        // wake-ups a second per idle socket cost a third of a core at
        // 19,000 sockets.
        let period = CURSOR_EVERY.min(clock.ping_interval);
        let tick = tokio::time::sleep(period);
        tokio::pin!(tick);
        let mut resting = false;
        let mut pending = Pending::new();
        let (kick, shutdown) = (Arc::clone(&self.handle.kick), self.state.shutdown.clone());
        // Built once, not per wake-up: a fresh watch subscription or
        // notification for every frame delivered would cost more than the frame.
        let (shutting_down, kicked) = (shutdown.wait(), kick.notified());
        tokio::pin!(shutting_down, kicked);
        loop {
            let mut ticked = false;
            let step = tokio::select! {
                () = &mut shutting_down => {
                    Box::pin(self.drain(&mut pending)).await;
                    Err(End::Close(close::GOING_AWAY, "server shutting down"))
                }
                () = &mut kicked => {
                    self.state.hub.metrics().slow_consumers.increment(1);
                    Err(End::Close(close::SLOW_CONSUMER, "slow consumer; reconnect to catch up"))
                }
                incoming = self.conn.next(), if pending.len() < MAX_IN_FLIGHT => {
                    clock.last_heard = Instant::now();
                    Box::pin(self.on_incoming(incoming, &mut pending)).await
                }
                Some(answer) = pending.next(), if !pending.is_empty() => {
                    Box::pin(self.on_answers(answer, &mut pending)).await
                }
                Some(out) = receiver.recv() => self.on_batch(out, receiver).await,
                () = &mut tick => {
                    let now = Instant::now();
                    let step = self.on_tick(now, &mut clock).await;
                    resting = self.conn.settle() && self.at_rest();
                    let next = if resting {
                        clock.next_ping.min(clock.expiry)
                    } else {
                        now + period
                    };
                    tick.as_mut().reset(next);
                    ticked = true;
                    step
                }
            };
            if let Err(end) = step {
                return end;
            }
            // Anything but the timer may have left work for it.
            if resting && !ticked {
                resting = false;
                tick.as_mut().reset(Instant::now() + period);
            }
            if let Err(end) = self.conn.flush().await {
                return end;
            }
        }
    }

    /// The periodic chores: token expiry, idle peers, pings, cursors,
    /// counters and stale gaps.
    async fn on_tick(&mut self, now: Instant, clock: &mut Clock) -> Result<(), End> {
        if now >= clock.expiry {
            return Err(End::Close(close::TOKEN_EXPIRED, "token expired"));
        }
        let due = now >= clock.next_ping;
        if due && clock.last_heard.elapsed() > clock.idle_timeout {
            return Err(End::Gone);
        }
        self.note_cursors();
        self.conn.report_tally();
        // A ping goes out on schedule, and sooner while written frames wait
        // for their proof.
        if due {
            clock.next_ping = now + clock.ping_interval;
        }
        if due || (self.unproven && !self.proofs.awaiting()) {
            self.ping().await?;
        }
        self.fill_stale_gaps().await
    }

    /// Answers every publish already read before closing for shutdown: an
    /// acknowledged publish is stored, and a stored one is acknowledged.
    async fn drain(&mut self, pending: &mut Pending) {
        // Its queue is no longer handled: commits must not wait for it.
        self.handle.backlog.end();
        let (shutdown, grace) = (
            self.state.shutdown.clone(),
            self.state.config.shutdown_timeout,
        );
        let acked = async {
            while let Some((reference, result)) = pending.next().await {
                self.on_published(reference, result).await?;
            }
            self.conn.flush().await
        };
        let acked = tokio::select! {
            acked = acked => acked.is_ok(),
            () = shutdown.past(grace) => false,
        };
        if !acked {
            tracing::debug!(session = self.id, "socket gone before its last acks");
        }
    }

    /// Nothing for the timer to do before the next ping: positions handed
    /// to the cursor book, everything written proven, no gap held open.
    fn at_rest(&self) -> bool {
        !self.unsaved && !self.unproven && !self.channels.values().any(|t| t.order.holding())
    }

    /// (stream, written, confirmed) for every channel and tag, for logs.
    fn positions(&self) -> Vec<(proof::Stream, i64, i64)> {
        let channels = self.channels.iter().map(|(&id, t)| {
            let p = t.order.position();
            (proof::Stream::Channel(id), p.written(), p.confirmed())
        });
        let tags = self.tags.iter().map(|(&id, t)| {
            (
                proof::Stream::Tag(id),
                t.position.written(),
                t.position.confirmed(),
            )
        });
        channels.chain(tags).collect()
    }

    /// Sends a ping that proves, once answered, everything written so far.
    async fn ping(&mut self) -> Result<(), End> {
        let payload = self.proofs.ping(self.written());
        self.unproven = false;
        self.conn.ping(&payload).await
    }

    /// Registers interest, then reads the store, then says welcome and
    /// replays the backlog: anything published meanwhile is queued by the
    /// hub and deduplicated by seq, so nothing falls between the two. A
    /// revocation that went by between the handshake's check and the
    /// registration closes the socket here. A token's handshake watched
    /// the user and read the `snapshot` already (`watching`).
    async fn open(&mut self, watching: bool, snapshot: Option<SessionSnapshot>) -> Result<(), End> {
        if !watching {
            self.watch(Key::User(self.actor.id)).await;
        }
        self.revoked_since_check().await?;
        self.load(snapshot).await?;
        tracing::debug!(session = %self.name, positions = ?self.positions(), "delivering from");
        let welcome = ServerFrame::Welcome {
            user: self.actor.username.clone(),
            session: self.name.clone(),
        };
        self.conn.send(&welcome, None).await?;
        self.catch_up_all().await?;
        self.conn.flush().await
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
        incoming: Option<Result<Message, tungstenite::Error>>,
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
                self.refuse(error, None, pending).await
            }
            // Pongs are queued by the socket itself and go out with the next flush.
            Some(Ok(Message::Ping(_))) => Ok(()),
            Some(Ok(Message::Pong(payload))) => {
                let proven = self.proofs.pong(&payload);
                self.confirm(proven);
                Ok(())
            }
            // A read never yields a raw frame.
            Some(Ok(Message::Frame(_))) => Ok(()),
        }
    }

    async fn watch(&mut self, key: Key) {
        self.state.hub.watch(key, self.id, &self.handle).await;
    }

    async fn unwatch(&mut self, key: Key) {
        self.state.hub.unwatch(key, self.id).await;
    }

    /// Leaves the hub, closes the socket, and saves what the client received.
    ///
    /// When the whole process is going away, every session closes at once:
    /// leaving the hub (a Redis round trip per key) and saving this
    /// session's cursors on its own would put hundreds of closes in a queue
    /// behind each other, while the process saves every noted cursor in
    /// one batch once the last session is done anyway.
    async fn finish(&mut self, end: End) {
        self.handle.backlog.end();
        let exiting = self.state.shutdown.triggered();
        if !exiting {
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
        }
        let answered = match end {
            End::Close(code, reason) => {
                let shutdown = &self.state.shutdown;
                // A slow consumer answers as late as any client may be
                // silent before it is dropped.
                let config = &self.state.config;
                let waits = (config.idle_timeout, config.shutdown_timeout);
                self.conn
                    .close_handshake(code, reason, shutdown, waits)
                    .await
            }
            End::Gone => false,
        };
        if answered {
            // The client's close frame comes after everything we wrote
            // before ours: it has all of it.
            let written = self.written();
            self.confirm(written);
        }
        tracing::debug!(session = %self.name, answered, positions = ?self.positions(), "delivered up to");
        // Saved before the socket closes: a client that reconnects once it
        // sees the end of this one starts where this one stopped.
        self.note_cursors();
        self.conn.report_tally();
        if !exiting {
            self.state.cursors.flush(&self.state.core).await;
        }
        self.conn.shut().await;
    }
}

/// How a failed read ends the session: a frame over the hard cap is
/// answered with 1009, a text frame that is not UTF-8 with 1007, a frame
/// that breaks the WebSocket protocol with 1002 and what it broke (a
/// hand-written client learns more from that than from a dropped
/// connection); anything else means the peer is gone.
fn read_error(err: tungstenite::Error) -> End {
    use tungstenite::error::{CapacityError, Error};
    match err {
        Error::Capacity(CapacityError::MessageTooLong { .. } | CapacityError::TooManyHeaders) => {
            End::Close(close::TOO_BIG, "frame too large")
        }
        Error::Utf8(_) => End::Close(close::INVALID_DATA, "text frames must be UTF-8"),
        Error::Protocol(violation) => match broken_rule(&violation) {
            Some(rule) => End::Close(close::PROTOCOL_ERROR, rule),
            None => End::Gone,
        },
        _ => End::Gone,
    }
}

/// The rule of RFC 6455 a client's frame broke, as a close reason; `None`
/// for a protocol error that is not the client's frame (a reset peer).
fn broken_rule(violation: &tungstenite::error::ProtocolError) -> Option<&'static str> {
    use tungstenite::error::ProtocolError as P;
    Some(match violation {
        P::UnmaskedFrameFromClient => "client frames must be masked",
        P::NonZeroReservedBits => "reserved bits must be zero",
        P::InvalidOpcode(_) | P::UnknownControlFrameType(_) | P::UnknownDataFrameType(_) => {
            "unknown opcode"
        }
        P::ControlFrameTooBig => "control frames carry at most 125 bytes",
        P::FragmentedControlFrame => "control frames must not be fragmented",
        P::UnexpectedContinueFrame | P::ExpectedFragment(_) => "fragments out of order",
        P::InvalidCloseSequence => "invalid close frame",
        P::ResetWithoutClosingHandshake | P::ReceivedAfterClosing | P::SendAfterClosing => {
            return None;
        }
        _ => "WebSocket protocol error",
    })
}

/// The session's deadlines.
struct Clock {
    /// When the token runs out.
    expiry: Instant,
    next_ping: Instant,
    last_heard: Instant,
    ping_interval: Duration,
    idle_timeout: Duration,
}

impl Clock {
    fn new(config: &crate::GatewayConfig, expires_at: Option<i64>) -> Self {
        Self {
            expiry: deadline(expires_at),
            next_ping: Instant::now() + config.ping_interval,
            last_heard: Instant::now(),
            ping_interval: config.ping_interval,
            idle_timeout: config.idle_timeout,
        }
    }
}

/// When a token with this `exp` (seconds) runs out.
/// When a token expires; an API key never does (a century is never here).
fn deadline(exp: Option<i64>) -> Instant {
    const NEVER: Duration = Duration::from_secs(100 * 365 * 24 * 3600);
    let left = exp.map_or(NEVER, |exp| {
        Duration::from_secs(exp.saturating_sub(chrono_now_secs()).max(0) as u64).min(NEVER)
    });
    Instant::now() + left
}

fn chrono_now_secs() -> i64 {
    domain::time::now_millis() / 1000
}
