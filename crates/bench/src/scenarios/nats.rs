//! The fan-out scenario against nats-server's WebSocket listener, a second
//! reference: core NATS (no storage, no auth here) speaking its own text
//! protocol. Payloads carry the seq and send time (`<seq>|<nanos>|pad`),
//! since NATS stamps neither. NATS has no per-message ack; the publisher
//! keeps at most `window` messages unconfirmed by sending a `PING` after
//! every half window and counting the `PONG`s (the server answers in order,
//! after handling what came before).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Ws};
use crate::report::{self, Integrity};

pub const SUBJECT: &str = "fanout";

/// Reads `INFO`, says `CONNECT` (and `SUB` for subscribers), and waits for
/// the `PONG` that proves the server took them.
pub async fn handshake(ws: &mut Ws, subscribe: bool) -> anyhow::Result<()> {
    let mut ops = String::from("CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\n");
    if subscribe {
        ops.push_str(&format!("SUB {SUBJECT} 1\r\n"));
    }
    ops.push_str("PING\r\n");
    ws.send(Message::Binary(ops.into_bytes().into())).await?;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .context("no PONG from nats-server")?
            .context("closed during the handshake")??;
        if text_of(&message).contains("PONG") {
            return Ok(());
        }
    }
}

fn text_of(message: &Message) -> &str {
    match message {
        Message::Text(text) => text.as_str(),
        Message::Binary(bytes) => std::str::from_utf8(bytes).unwrap_or(""),
        _ => "",
    }
}

pub struct Received {
    pub integrity: Integrity,
    pub latency: Histogram<u64>,
    /// When the last delivery arrived ([`client::now_nanos`]).
    pub last: Option<u64>,
}

/// Reads `MSG` operations until `total` seqs arrived or 10 s of silence.
pub async fn receive(mut ws: Ws, total: u64, delivered: Arc<AtomicU64>) -> Received {
    let mut got = Received {
        integrity: Integrity::default(),
        latency: report::histogram(),
        last: None,
    };
    let mut carry = String::new();
    let mut unreported = 0;
    while got.integrity.received < total {
        let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await
        else {
            break;
        };
        carry.push_str(text_of(&message));
        let now = client::now_nanos();
        let (payloads, used, pings) = parse(&carry);
        for (seq, sent) in payloads {
            got.integrity.record(seq);
            let _ = got.latency.record(now.saturating_sub(sent) / 1000);
            got.last = Some(now);
            unreported += 1;
        }
        for _ in 0..pings {
            let _ = ws.send(Message::Binary(b"PONG\r\n".to_vec().into())).await;
        }
        carry.drain(..used);
        if unreported >= 100 {
            delivered.fetch_add(unreported, Ordering::Relaxed);
            unreported = 0;
        }
    }
    delivered.fetch_add(unreported, Ordering::Relaxed);
    got
}

/// The `(seq, sent)` of every whole `MSG` in `buffer`, how many bytes
/// they (and any other whole operations) took, and how many `PING`s came.
/// Each `MSG` is `MSG <subject> <sid> <bytes>\r\n<payload>\r\n`.
fn parse(buffer: &str) -> (Vec<(u64, u64)>, usize, usize) {
    let (mut payloads, mut used, mut pings) = (vec![], 0, 0);
    let mut rest = buffer;
    while let Some(line_end) = rest.find("\r\n") {
        let line = &rest[..line_end];
        let op_len = match line
            .strip_prefix("MSG ")
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(len) => {
                let start = line_end + 2;
                if rest.len() < start + len + 2 {
                    break;
                }
                let mut fields = rest[start..start + len].split('|');
                if let (Some(Ok(seq)), Some(Ok(sent))) = (
                    fields.next().map(str::parse::<u64>),
                    fields.next().map(str::parse::<u64>),
                ) {
                    payloads.push((seq, sent));
                }
                start + len + 2
            }
            None => {
                pings += usize::from(line == "PING");
                line_end + 2
            }
        };
        used += op_len;
        rest = &rest[op_len..];
    }
    (payloads, used, pings)
}

/// Publishes seqs `first + 1 ..= first + messages`, at most `window`
/// unconfirmed, at `pace` (unpaced: as fast as confirmations allow).
pub async fn publish(
    ws: Ws,
    first: u64,
    messages: u64,
    window: usize,
    payload: usize,
    pace: super::Pace,
) -> anyhow::Result<()> {
    let half = (window / 2).max(1);
    let (mut sink, mut stream) = ws.split();
    let permits = Arc::new(Semaphore::new(half * 2));
    let pongs = {
        let permits = permits.clone();
        let expected = messages.div_ceil(half as u64);
        tokio::spawn(async move {
            let mut seen = 0;
            while seen < expected {
                match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
                    Ok(Some(Ok(message))) => {
                        let pongs = text_of(&message).matches("PONG").count() as u64;
                        seen += pongs;
                        permits.add_permits(pongs as usize * half);
                    }
                    other => anyhow::bail!("publisher stream ended early: {other:?}"),
                }
            }
            Ok(())
        })
    };
    let mut tick = pace.ticker();
    let pad = "x".repeat(payload);
    for n in 1..=messages {
        if let Some(tick) = tick.as_mut() {
            tick.tick().await;
        }
        permits.acquire().await?.forget();
        let body = format!("{}|{}|{pad}", first + n, client::now_nanos());
        let mut op = format!("PUB {SUBJECT} {}\r\n{body}\r\n", body.len());
        if n % half as u64 == 0 || n == messages {
            op.push_str("PING\r\n");
        }
        sink.send(Message::Binary(op.into_bytes().into())).await?;
    }
    pongs.await?
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_whole_messages_and_keeps_the_partial_rest() {
        let buffer = "MSG fanout 1 9\r\n1|100|xxx\r\nPING\r\nMSG fanout 1 9\r\n2|200|xxx\r\nMSG fanout 1 9\r\n3|3";
        let (payloads, used, pings) = super::parse(buffer);
        assert_eq!(payloads, [(1, 100), (2, 200)]);
        assert_eq!(pings, 1);
        assert_eq!(&buffer[used..], "MSG fanout 1 9\r\n3|3");
    }
}
