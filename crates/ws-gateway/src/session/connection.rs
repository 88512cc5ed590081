//! The socket half of a session: frames are fed as they come and flushed
//! once per wake-up, so a burst costs one syscall, not one per frame (a
//! frame shared with other sockets is queued by reference: see
//! `outbox.rs`); the frame counts and the delivery latency sample ride
//! along with the flush.
//! Every write that waits on the peer is bounded in time, so a peer that
//! reads nothing cannot hold a session (or shutdown) forever.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use domain::protocol::ServerFrame;
use futures_util::{SinkExt, StreamExt};
use ops::shutdown::Shutdown;
use tokio::io::AsyncWrite;
use tokio_tungstenite::WebSocketStream;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tungstenite::{Message, Utf8Bytes};

use super::End;
use super::outbox::{MAX_SLICES, Outbox};
use crate::backlog::Backlog;
use crate::metrics::GatewayMetrics;

/// The socket as the upgrade hands it over (see `upgrade.rs`).
pub type Socket = WebSocketStream<tokio::net::TcpStream>;

/// One flush in this many records the delivery latency (a sample keeps the
/// histogram cheap at millions of deliveries per second).
const LATENCY_SAMPLE: u64 = 16;
/// Write buffer capacity a socket at rest may keep (a welcome, a ping).
const KEEP: usize = 1024;
/// Shared frames from this size on are queued by reference, smaller ones
/// copied: for a frame of a few hundred bytes the copy costs less than a
/// slice of its own in the kernel's copy (see `outbox.rs`).
const SHARE_FROM: usize = 1024;
/// How long a write may wait for the peer before the peer, not this
/// process, counts as the one behind (see `backlog.rs`): a client that
/// stops reading must not hold publishers back for longer.
const STALLED_AFTER: Duration = Duration::from_millis(500);
/// How long a closing session waits for the client's close frame, which
/// proves it read everything before ours.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

/// What a frame is, for the counters.
#[derive(Debug, Clone, Copy)]
pub(super) enum Kind {
    Message = 0,
    Notification = 1,
    Other = 2,
}

pub(super) struct Connection {
    /// One task reads and writes the socket, so it is never split (a
    /// split socket takes a lock on every read and write).
    socket: Socket,
    /// Frames this session sends, framed and not yet written. The
    /// WebSocket library only reads (and answers pings and closes): a
    /// frame fed through it costs a message conversion, a waker swap and a
    /// copy into its own buffer, a fifth of the CPU of a fan-out, where
    /// here it is a header and one copy of bytes serialized once for every
    /// recipient. Bytes are written only while the library has nothing
    /// buffered, and the socket is read only once these are all written,
    /// so the two never interleave within a frame.
    out: Outbox,
    /// Told while a write waits for the peer to read (see `backlog.rs`).
    backlog: Arc<Backlog>,
    /// Once `out` holds this much it is written before more is fed.
    write_buffer: usize,
    metrics: Arc<GatewayMetrics>,
    /// How long a flush may wait for a peer that does not read.
    write_timeout: Duration,
    /// Frames fed since the last flush, by [`Kind`].
    unflushed: [u64; 3],
    /// Commit time of the oldest message fed since the last flush.
    oldest_unflushed: Option<i64>,
    delivering_flushes: u64,
    /// Frames written since the counters were last updated.
    tally: [u64; 3],
    /// Something (a pong the library queued as it read) awaits a flush.
    needs_flush: bool,
    /// Bytes were written since [`settle`](Self::settle) last looked.
    wrote: bool,
}

impl Connection {
    /// `unsent` is what the handshake wrote and the socket has not sent
    /// (its 101, see `hold.rs`): it goes out in front of the first frames.
    pub fn new(
        (socket, unsent): (Socket, Vec<u8>),
        backlog: Arc<Backlog>,
        metrics: Arc<GatewayMetrics>,
        write_timeout: Duration,
        write_buffer: usize,
    ) -> Self {
        Self {
            needs_flush: !unsent.is_empty(),
            socket,
            out: Outbox::with_own(unsent),
            backlog,
            write_buffer: write_buffer.max(1),
            metrics,
            write_timeout,
            unflushed: [0; 3],
            oldest_unflushed: None,
            delivering_flushes: 0,
            tally: [0; 3],
            wrote: false,
        }
    }

    /// The next frame from the peer. Only called with nothing of ours
    /// unwritten: the library writes its pongs as it reads.
    pub async fn next(&mut self) -> Option<Result<Message, tungstenite::Error>> {
        debug_assert!(self.out.is_empty());
        let incoming = self.socket.next().await;
        // A ping read here is answered by a pong the next flush sends.
        self.needs_flush = true;
        incoming
    }

    /// Feeds one frame, serialized with `reference`.
    pub async fn send(
        &mut self,
        frame: &ServerFrame,
        reference: Option<&serde_json::Value>,
    ) -> Result<(), End> {
        let kind = match frame {
            ServerFrame::Message(_) => Kind::Message,
            ServerFrame::Notification { .. } => Kind::Notification,
            _ => Kind::Other,
        };
        self.make_room().await?;
        self.unflushed[kind as usize] += 1;
        let text = frame.to_json(reference);
        self.append(OpCode::Data(Data::Text), text.as_bytes());
        Ok(())
    }

    /// Feeds one text frame serialized for every recipient; `committed_at`
    /// (ms) dates a message or notification for the latency histogram.
    pub async fn feed(
        &mut self,
        text: &Bytes,
        kind: Kind,
        committed_at: Option<i64>,
    ) -> Result<(), End> {
        self.make_room().await?;
        self.buffer(text, kind, committed_at);
        Ok(())
    }

    /// Writes what is queued if the buffer is full.
    async fn make_room(&mut self) -> Result<(), End> {
        if !self.has_room() {
            self.write_out().await?;
        }
        Ok(())
    }

    /// Whether [`buffer`](Self::buffer) may be called without writing first.
    pub fn has_room(&self) -> bool {
        self.out.len() < self.write_buffer
    }

    /// [`feed`](Self::feed) without the wait: for callers that checked
    /// [`has_room`](Self::has_room).
    pub fn buffer(&mut self, text: &Bytes, kind: Kind, committed_at: Option<i64>) {
        self.unflushed[kind as usize] += 1;
        if let Some(at) = committed_at {
            self.oldest_unflushed.get_or_insert(at);
        }
        if text.len() < SHARE_FROM {
            self.append(OpCode::Data(Data::Text), text);
        } else {
            self.out
                .push_own(|out| header(OpCode::Data(Data::Text), text.len(), out));
            self.out.push_shared(text);
            self.needs_flush = true;
        }
    }

    /// Feeds a ping carrying `payload`. It goes out behind every frame fed
    /// before it, so its pong proves they were read.
    pub async fn ping(&mut self, payload: &[u8]) -> Result<(), End> {
        self.make_room().await?;
        self.append(OpCode::Control(Control::Ping), payload);
        Ok(())
    }

    /// Feeds a frame of this socket's own, copied.
    fn append(&mut self, opcode: OpCode, payload: &[u8]) {
        self.out.push_own(|out| {
            header(opcode, payload.len(), out);
            out.extend_from_slice(payload);
        });
        self.needs_flush = true;
    }

    /// Writes `out` to the socket, after whatever the library has buffered
    /// (a pong, which must not land inside one of our frames).
    async fn write_out(&mut self) -> Result<(), End> {
        let socket = &mut self.socket;
        on_peer(self.write_timeout, &self.backlog, |cx| {
            socket.poll_flush_unpin(cx).map_err(|_| End::Gone)
        })
        .await?;
        self.wrote |= !self.out.is_empty();
        let (socket, out) = (&mut self.socket, &mut self.out);
        let result = on_peer(self.write_timeout, &self.backlog, |cx| {
            while out.has_remaining() {
                let mut slices = [std::io::IoSlice::new(&[]); MAX_SLICES];
                let count = out.chunks_vectored(&mut slices);
                let io = Pin::new(socket.get_mut());
                match io.poll_write_vectored(cx, &slices[..count]) {
                    Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Err(End::Gone)),
                    Poll::Ready(Ok(n)) => out.advance(n),
                    Poll::Pending => return Poll::Pending,
                }
            }
            Poll::Ready(Ok(()))
        })
        .await;
        self.out.clear();
        result
    }

    /// Writes what was fed, then counts it.
    pub async fn flush(&mut self) -> Result<(), End> {
        if !std::mem::take(&mut self.needs_flush) {
            return Ok(());
        }
        self.write_out().await?;
        let unflushed = std::mem::take(&mut self.unflushed);
        for (total, now) in self.tally.iter_mut().zip(unflushed) {
            *total += now;
        }
        // Counted over flushes that carried deliveries, so the first one
        // is always sampled (ws_deliveries_total counts every one).
        if let Some(committed) = self.oldest_unflushed.take()
            && {
                self.delivering_flushes += 1;
                self.delivering_flushes % LATENCY_SAMPLE == 1
            }
        {
            let lag_ms = domain::time::now_millis().saturating_sub(committed).max(0);
            self.metrics
                .delivery_latency
                .record(Duration::from_millis(lag_ms as u64).as_secs_f64());
        }
        Ok(())
    }

    /// Whether the write queue lets the session rest, letting go of it
    /// if it is big and nothing was written since the last call (one
    /// timer period). The bytes themselves go back to the thread's spares
    /// after every complete write; what a burst leaves behind is the list
    /// of queued parts, which a socket at rest would otherwise keep for
    /// good. A busy socket keeps it, so a fan-out does not grow it again
    /// at every tick.
    pub fn settle(&mut self) -> bool {
        let wrote = std::mem::take(&mut self.wrote);
        if self.out.capacity() <= KEEP {
            return true;
        }
        if wrote || !self.out.is_empty() {
            return false;
        }
        self.out.release();
        true
    }

    /// Adds this connection's frame counts to the shared counters (batched:
    /// shared atomics bumped per frame would bounce between cores).
    pub fn report_tally(&mut self) {
        let [messages, notifications, other] = std::mem::take(&mut self.tally);
        let metrics = &self.metrics;
        metrics.frames_out_messages.increment(messages);
        metrics.frames_out_notifications.increment(notifications);
        metrics.frames_out_other.increment(other);
        metrics.deliveries.increment(messages + notifications);
    }

    /// Sends a close frame and reads until the client answers it (or goes
    /// away, or takes too long); whether it answered, which proves it read
    /// everything written before.
    ///
    /// Our close frame comes after everything the client has not read yet,
    /// up to the kernel's buffers at both ends (megabytes), and an answer
    /// that comes too late is a reconnect that gets all of it again. So a
    /// slow consumer is given `slow_wait`: ten seconds were not enough for
    /// a client sharing a loaded machine (a flood of 4 publishers to 5,000
    /// subscribers repeated 179,000 frames; none with a minute). A process
    /// shutting down gives every socket until `grace` after the signal, so
    /// a client that was far behind still reads its 1001, and one that
    /// reads nothing holds the exit no longer than its supervisor allows.
    pub async fn close_handshake(
        &mut self,
        code: u16,
        reason: &'static str,
        shutdown: &Shutdown,
        (slow_wait, grace): (Duration, Duration),
    ) -> bool {
        let frame = CloseFrame {
            code: code.into(),
            reason: Utf8Bytes::from_static(reason),
        };
        // Bounds on each step and on the whole: none but the grace once
        // the process stops, the slow wait on the whole for a slow
        // consumer, and 2 s a step for anyone else.
        let slow = code == super::close::SLOW_CONSUMER;
        let (step, whole) = match (shutdown.triggered(), slow) {
            (true, _) => (None, None),
            (false, true) => (None, Some(slow_wait)),
            (false, false) => (Some(CLOSE_WAIT), Some(2 * CLOSE_WAIT)),
        };
        let exchange = async {
            // Everything fed goes out before the close frame.
            self.needs_flush = true;
            if self.flush().await.is_err() {
                return false;
            }
            let socket = &mut self.socket;
            let talk = async {
                let send = socket.send(Message::Close(Some(frame)));
                if !matches!(within(step, send).await, Some(Ok(()))) {
                    return false;
                }
                let answer = async {
                    loop {
                        match socket.next().await {
                            Some(Ok(Message::Close(_))) => return true,
                            Some(Ok(_)) => continue,
                            Some(Err(_)) | None => return false,
                        }
                    }
                };
                within(step, answer).await.unwrap_or(false)
            };
            within(whole, talk).await.unwrap_or(false)
        };
        // Once the process stops, its grace bounds every close, however
        // long it was given before.
        tokio::select! {
            answered = exchange => answered,
            () = shutdown.past(grace) => false,
        }
    }

    /// Ends the connection.
    pub async fn shut(&mut self) {
        let _ = tokio::time::timeout(CLOSE_WAIT, SinkExt::close(&mut self.socket)).await;
    }
}

/// `work`'s result, or `None` once `limit` (if any) has passed.
async fn within<T>(limit: Option<Duration>, work: impl Future<Output = T>) -> Option<T> {
    match limit {
        Some(limit) => tokio::time::timeout(limit, work).await.ok(),
        None => Some(work.await),
    }
}

/// Writes the header of an unmasked frame (a server's) of `len` bytes.
fn header(opcode: OpCode, len: usize, out: &mut Vec<u8>) {
    let header = FrameHeader {
        opcode,
        ..FrameHeader::default()
    };
    // Writing into a Vec cannot fail.
    let _ = header.format(len as u64, out);
}

/// Drives a write that may wait on the peer. A peer that reads nothing
/// fills its window and the write would wait for good, while this session
/// hears no timer, kick or shutdown: the wait gets `limit`, as long as a
/// silent peer gets. The timer starts only once the socket has to wait,
/// so a write that goes straight through costs no clock read. A wait past
/// [`STALLED_AFTER`] tells the session's backlog that its peer is the slow
/// one, until the write goes through.
async fn on_peer(
    limit: Duration,
    backlog: &Backlog,
    mut poll: impl FnMut(&mut Context<'_>) -> Poll<Result<(), End>>,
) -> Result<(), End> {
    // One timer: first to the stall, then moved on to the deadline.
    let first = STALLED_AFTER.min(limit);
    let mut timer: Option<Pin<Box<tokio::time::Sleep>>> = None;
    let mut stalled = false;
    let result = std::future::poll_fn(|cx| match poll(cx) {
        Poll::Ready(result) => Poll::Ready(result),
        Poll::Pending => {
            let timer = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(first)));
            while timer.as_mut().poll(cx).is_ready() {
                if stalled {
                    return Poll::Ready(Err(End::Gone));
                }
                backlog.stalled(true);
                stalled = true;
                let deadline = timer.deadline() - first + limit;
                timer.as_mut().reset(deadline);
            }
            Poll::Pending
        }
    })
    .await;
    if stalled {
        backlog.stalled(false);
    }
    result
}
