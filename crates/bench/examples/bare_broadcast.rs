//! The bare reference for benchmarks: a minimal tokio-tungstenite
//! broadcast server with no authentication, no store and no rules. Every
//! text frame it receives is stamped with a global seq, acknowledged to its
//! sender and broadcast to everyone else, serialized once and written with
//! the same feed-then-flush batching Tidings uses. What Tidings does on top
//! of this (auth, storage, ordering per topic, cursors) is what the
//! comparison measures.
//!
//! `cargo run --release -p bench --example bare_broadcast -- 127.0.0.1:5100`

use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

type Frame = (u64, Utf8Bytes);

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:5100".into());
    let listener = TcpListener::bind(&addr).await?;
    println!("bare broadcast server on ws://{}", listener.local_addr()?);
    let (tx, _) = broadcast::channel::<Frame>(65_536);
    let seq = Arc::new(Mutex::new(0u64));
    let mut next_id = 0;
    loop {
        let (stream, _) = listener.accept().await?;
        next_id += 1;
        tokio::spawn(connection(stream, next_id, tx.clone(), seq.clone()));
    }
}

async fn connection(
    stream: TcpStream,
    id: u64,
    tx: broadcast::Sender<Frame>,
    seq: Arc<Mutex<u64>>,
) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (mut sink, mut stream) = ws.split();
    let mut rx = tx.subscribe();
    loop {
        tokio::select! {
            incoming = stream.next() => {
                let Some(Ok(Message::Text(text))) = incoming else { return };
                let content = text.split("\"content\":\"").nth(1).and_then(|c| c.split('"').next()).unwrap_or("");
                // Stamp and send under one lock so seqs go out in order.
                let n = {
                    let mut seq = seq.lock().unwrap_or_else(|e| e.into_inner());
                    *seq += 1;
                    let frame = format!(
                        r#"{{"type":"message","id":{0},"topic":"bare","seq":{0},"from":"bare","content":"{content}"}}"#,
                        *seq
                    );
                    let _ = tx.send((id, frame.into()));
                    *seq
                };
                let ack = format!(r#"{{"type":"ack","id":{n},"topic":"bare","seq":{n}}}"#);
                if sink.send(Message::Text(ack.into())).await.is_err() { return }
            }
            frame = rx.recv() => {
                let mut next = frame;
                loop {
                    match next {
                        Ok((from, bytes)) if from != id => {
                            if sink.feed(Message::Text(bytes)).await.is_err() { return }
                        }
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                    match rx.try_recv() {
                        Ok(more) => next = Ok(more),
                        Err(_) => break,
                    }
                }
                if sink.flush().await.is_err() { return }
            }
        }
    }
}
