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

use std::time::Duration;

use axum::Router;
use hyper::Request;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use ops::shutdown::Shutdown;
use tokio::net::TcpListener;
use tower::ServiceExt;

use crate::hold::{Hold, HoldingStream};

/// Serves `app` on `listener` until `shutdown` (see [`ops::http1::serve`]),
/// every request with its connection's hold. Upgraded sockets outlive
/// this: see [`finish`](crate::finish).
pub async fn serve_router(
    listener: TcpListener,
    app: Router,
    shutdown: Shutdown,
    header_timeout: Duration,
) -> std::io::Result<()> {
    ops::http1::serve(listener, shutdown, header_timeout, move |tcp, _peer| {
        // Every request of the connection can reach its stream's hold.
        let hold = Hold::default();
        let io = TokioIo::new(HoldingStream::new(tcp, hold.clone()));
        let service = app
            .clone()
            .map_request(move |mut request: Request<Incoming>| {
                request.extensions_mut().insert(hold.clone());
                request
            });
        (io, TowerToHyperService::new(service))
    })
    .await
}
