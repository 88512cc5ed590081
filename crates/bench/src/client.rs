//! Lean WebSocket clients: small buffers, a fixed source address, and a
//! frame scanner that reads `seq` and the embedded send time without a full
//! JSON parse (the client shares the CPU with the server).

use std::net::{IpAddr, SocketAddr};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures_util::StreamExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

pub type Ws = WebSocketStream<TcpStream>;

/// Connects from `source` and, unless `bare`, waits for the welcome frame.
pub async fn connect(url: &str, source: IpAddr, bare: bool) -> anyhow::Result<Ws> {
    let authority = url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .context("bad URL")?;
    let addr: SocketAddr = tokio::net::lookup_host(authority)
        .await?
        .next()
        .context("no address")?;
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
    if !bare {
        let first = ws.next().await.context("closed before welcome")??;
        anyhow::ensure!(
            first.to_text().unwrap_or_default().contains("\"welcome\""),
            "no welcome: {first:?}"
        );
    }
    Ok(ws)
}

/// Nanoseconds since the epoch, the clock embedded in messages.
pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A message body carrying its send time: `"<nanos>|<padding>"`.
pub fn stamped(padding: usize) -> String {
    format!("{}|{}", now_nanos(), "x".repeat(padding))
}

/// A message body carrying its send time and its place in its
/// publisher's send order: `"<nanos>|<publisher>.<n>|<padding>"`.
pub fn stamped_in_order(publisher: u64, n: u64, padding: usize) -> String {
    format!("{}|{publisher}.{n}|{}", now_nanos(), "x".repeat(padding))
}

/// The publisher and send index embedded by [`stamped_in_order`].
pub fn send_order(frame: &str) -> Option<(u64, u64)> {
    let key = "\"content\":\"";
    let content = &frame[frame.find(key)? + key.len()..];
    let rest = &content[content.find('|')? + 1..];
    let (origin, _) = rest.split_once('|')?;
    let (publisher, n) = origin.split_once('.')?;
    Some((publisher.parse().ok()?, n.parse().ok()?))
}

/// The integer after `key` (e.g. `"seq":`) in a frame.
pub fn field(frame: &str, key: &str) -> Option<u64> {
    let start = frame.find(key)? + key.len();
    let digits: &str = &frame[start..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// The send time embedded in a message frame's content.
pub fn sent_at(frame: &str) -> Option<u64> {
    field(frame, "\"content\":\"")
}

#[cfg(test)]
mod tests {
    #[test]
    fn scans_frames() {
        let frame = r#"{"type":"message","id":9,"topic":"t","seq":42,"from":"a","content":"1700|xx","ts":"…"}"#;
        assert_eq!(super::field(frame, "\"seq\":"), Some(42));
        assert_eq!(super::sent_at(frame), Some(1700));
        assert_eq!(super::field(frame, "\"nope\":"), None);
        let ordered = format!(
            r#"{{"seq":3,"content":"{}"}}"#,
            super::stamped_in_order(4, 17, 3)
        );
        assert_eq!(super::send_order(&ordered), Some((4, 17)));
        assert_eq!(super::send_order(frame), None);
    }
}
