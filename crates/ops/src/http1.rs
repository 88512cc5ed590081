//! Serving HTTP/1.1 with hyper's own connection type: one task per
//! connection, a bound on how long a request head may take, and a
//! graceful end.
//!
//! hyper closes a connection whose request head is not in within its
//! header timeout, but only with a timer to count it, which `axum::serve`
//! never gives it: a client that connected and sent nothing (or half a
//! request, or nothing after its last response) kept its file descriptor
//! for good, and 20,000 of them stop a process accepting.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use axum::response::Response;
use axum::serve::{Listener, ListenerExt};
use hyper::Request;
use hyper::body::Incoming;
use hyper::rt::{Read, Write};
use hyper::server::conn::http1;
use hyper_util::rt::TokioTimer;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::task::TaskTracker;

use crate::shutdown::Shutdown;

/// Serves `listener` until `shutdown`, with `TCP_NODELAY` on every socket,
/// then waits for requests under way (an idle keep-alive connection is
/// closed at once); upgraded connections outlive this. `connect` makes
/// each accepted socket, with its peer's address, into the connection's
/// IO and service. A connection that has not sent a whole request head
/// within `header_timeout` (of connecting, or of its last response) is
/// closed.
pub async fn serve<C, I, S>(
    listener: TcpListener,
    shutdown: Shutdown,
    header_timeout: Duration,
    mut connect: C,
) -> std::io::Result<()>
where
    C: FnMut(TcpStream, SocketAddr) -> (I, S),
    I: Read + Write + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response, Error = Infallible>
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    // Responses and frames are written whole and on purpose; Nagle's
    // algorithm would hold a lone one back until the previous one is
    // acknowledged (up to a delayed-ACK timeout).
    let mut listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "could not set TCP_NODELAY");
        }
    });
    let connections = TaskTracker::new();
    loop {
        // axum's listener waits out errors such as running out of file
        // descriptors rather than failing the server.
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.wait() => break,
        };
        let (io, service) = connect(tcp, peer);
        connections.spawn(connection(io, service, shutdown.clone(), header_timeout));
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Serves one connection's requests until it closes, is upgraded, or
/// shutdown asks it to finish the request under way and close.
async fn connection<I, S>(io: I, service: S, shutdown: Shutdown, header_timeout: Duration)
where
    I: Read + Write + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response, Error = Infallible> + Send,
    S::Future: Send + 'static,
{
    let served = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(served);
    let result = tokio::select! {
        result = served.as_mut() => result,
        () = shutdown.wait() => {
            served.as_mut().graceful_shutdown();
            served.await
        }
    };
    if let Err(err) = result {
        tracing::trace!(%err, "connection ended with an error");
    }
}
