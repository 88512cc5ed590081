//! Lean WebSocket clients: small buffers, a fixed source address, and a
//! frame scanner that reads `seq` and the embedded send time without a full
//! JSON parse (the client shares the CPU with the server).

use std::net::{IpAddr, SocketAddr};
use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use futures_util::StreamExt;
use memchr::memmem::Finder;
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

/// What the fan-out reads of a message frame.
#[derive(Debug, PartialEq, Eq)]
pub struct Delivery {
    pub seq: u64,
    /// The send time embedded by [`stamped`] or [`stamped_in_order`].
    pub sent: u64,
    /// The publisher and send index embedded by [`stamped_in_order`].
    pub origin: Option<(u64, u64)>,
}

static SEQ: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("\"seq\":"));
static CONTENT: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("\"content\":\""));
static MESSAGE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new("\"type\":\"message\""));

/// Reads a message frame in one pass: the seq, and the send time and
/// order its content carries. At 5,000 subscribers the tool reads
/// millions of frames a second on the cores the server uses, so this is
/// searched with prebuilt finders, once per field.
pub fn delivery(frame: &str) -> Option<Delivery> {
    let bytes = frame.as_bytes();
    // Servers write the type first; anything else is searched for.
    if !frame.starts_with("{\"type\":\"message\"") && MESSAGE.find(bytes).is_none() {
        return None;
    }
    let (seq, _) = number(&bytes[SEQ.find(bytes)? + SEQ.needle().len()..])?;
    let content = &bytes[CONTENT.find(bytes)? + CONTENT.needle().len()..];
    let (sent, used) = number(content)?;
    let origin = (|| {
        let rest = content.get(used..)?.strip_prefix(b"|")?;
        let (publisher, used) = number(rest)?;
        let (n, _) = number(rest.get(used..)?.strip_prefix(b".")?)?;
        Some((publisher, n))
    })();
    Some(Delivery { seq, sent, origin })
}

/// The decimal number `bytes` start with, and how many bytes it took.
fn number(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    let mut digits = 0;
    for &byte in bytes.iter().take_while(|b| b.is_ascii_digit()) {
        value = value.checked_mul(10)?.checked_add(u64::from(byte - b'0'))?;
        digits += 1;
    }
    (digits > 0).then_some((value, digits))
}

/// The integer after `key` (e.g. `"seq":`) in a frame.
pub fn field(frame: &str, key: &str) -> Option<u64> {
    let start = memchr::memmem::find(frame.as_bytes(), key.as_bytes())? + key.len();
    number(&frame.as_bytes()[start..]).map(|(n, _)| n)
}

/// The send time embedded in a message frame's content.
pub fn sent_at(frame: &str) -> Option<u64> {
    field(frame, "\"content\":\"")
}

/// Reads and drops what a connection still carries until the peer closes
/// it (or it breaks).
pub async fn until_closed(stream: &mut TcpStream) {
    use tokio::io::AsyncReadExt;
    let mut sink = [0u8; 1024];
    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
}

#[cfg(test)]
mod tests {
    use super::Delivery;

    #[test]
    fn scans_frames() {
        let frame = r#"{"type":"message","id":9,"topic":"t","seq":42,"from":"a","content":"1700|xx","ts":"…"}"#;
        assert_eq!(super::field(frame, "\"seq\":"), Some(42));
        assert_eq!(super::sent_at(frame), Some(1700));
        assert_eq!(super::field(frame, "\"nope\":"), None);
        assert_eq!(super::field(r#"{"seq":x}"#, "\"seq\":"), None);
        let too_big = r#"{"seq":99999999999999999999}"#;
        assert_eq!(super::field(too_big, "\"seq\":"), None);
        assert_eq!(
            super::delivery(frame),
            Some(Delivery {
                seq: 42,
                sent: 1700,
                origin: None
            })
        );
        let ordered = format!(
            r#"{{"seq":3,"type":"message","content":"{}"}}"#,
            super::stamped_in_order(4, 17, 3)
        );
        let scanned = super::delivery(&ordered).expect("a message");
        assert_eq!((scanned.seq, scanned.origin), (3, Some((4, 17))));
        assert!(scanned.sent > 0);
        let ack = r#"{"type":"ack","id":1,"topic":"t","seq":2}"#;
        assert_eq!(super::delivery(ack), None);
    }
}
