//! The gateway's HTTP server: HTTP/1.1 only, one task per connection.
//!
//! `axum::serve` speaks HTTP/1.1 and HTTP/2 on one port, so it reads the
//! first 24 bytes of every connection on their own to look for HTTP/2's
//! preface (a second `recv` for each handshake), and an upgraded socket
//! comes back wrapped in that look-ahead buffer behind a trait object,
//! which every later read and write of the session goes through. A
//! WebSocket handshake is HTTP/1.1, so the gateway serves HTTP/1.1 alone,
//! with hyper's own connection type: the request head is read in one
//! `recv`, and the upgrade hands back the plain `TcpStream` (see
//! `upgrade.rs`, and `hold.rs` for how its 101 leaves with the welcome).
//! Health and metrics are HTTP/1.1 as well.

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::serve::{Listener, ListenerExt};
use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use ops::shutdown::Shutdown;
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use crate::hold::{Hold, HoldingStream};

/// Serves `app` on `listener` until `shutdown`, with `TCP_NODELAY` on every
/// socket, then waits for requests under way (an idle keep-alive
/// connection is closed at once). Upgraded sockets outlive this: see
/// [`finish`](crate::finish). A connection that has not sent a whole
/// request head within `header_timeout` (of connecting, or of its last
/// response) is closed.
pub async fn serve_router(
    listener: TcpListener,
    app: Router,
    shutdown: Shutdown,
    header_timeout: Duration,
) -> std::io::Result<()> {
    // Frames are written in bursts and flushed on purpose; Nagle's
    // algorithm would hold a lone frame back until the previous one is
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
        let (tcp, _peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.wait() => break,
        };
        // Every request of the connection can reach its stream's hold.
        let hold = Hold::default();
        let io = TokioIo::new(HoldingStream::new(tcp, hold.clone()));
        let service = app
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(hold.clone());
                request
            });
        let service = TowerToHyperService::new(service);
        connections.spawn(connection(io, service, shutdown.clone(), header_timeout));
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

/// Serves one connection's requests until it closes, is upgraded, or
/// shutdown asks it to finish the request under way and close.
async fn connection<S>(
    io: TokioIo<HoldingStream>,
    service: S,
    shutdown: Shutdown,
    header_timeout: Duration,
) where
    S: hyper::service::Service<
            Request<Incoming>,
            Response = axum::response::Response,
            Error = Infallible,
        > + Send,
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
