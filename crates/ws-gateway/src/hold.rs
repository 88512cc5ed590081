//! The handshake's `101 Switching Protocols` leaves with the welcome frame.
//!
//! hyper writes and flushes the 101 as soon as the handshake returns it,
//! and the session writes the welcome a moment later: two sends, and over
//! loopback or a fast network two wake-ups of the client, where one does.
//! The connection's stream is wrapped in a [`HoldingStream`]; a handshake
//! that is about to answer 101 tells its [`Hold`] (found in the request's
//! extensions), and what hyper writes from then on is kept instead of sent.
//! The session takes it back with the socket and writes it in front of its
//! first frames. Nothing else changes: every other answer (a 401, health,
//! metrics) is written as it always was, and hyper writes nothing after a
//! 101 since the connection is no longer HTTP.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Shared by a connection's stream and each of its requests.
#[derive(Debug, Clone, Default)]
pub struct Hold(Arc<AtomicBool>);

impl Hold {
    /// Keeps what is written from now on (the 101) for the session.
    pub fn hold_the_answer(&self) {
        self.0.store(true, Ordering::Release);
    }

    fn holding(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// A connection's stream that keeps what is written once held.
pub struct HoldingStream {
    stream: TcpStream,
    hold: Hold,
    held: Vec<u8>,
}

impl HoldingStream {
    pub fn new(stream: TcpStream, hold: Hold) -> Self {
        Self {
            stream,
            hold,
            held: Vec::new(),
        }
    }

    /// The stream, and what was written to it but not sent.
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.stream, self.held)
    }
}

impl AsyncRead for HoldingStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for HoldingStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.hold.holding() {
            self.held.extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.hold.holding() {
            let before = self.held.len();
            for buf in bufs {
                self.held.extend_from_slice(buf);
            }
            return Poll::Ready(Ok(self.held.len() - before));
        }
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
