//! A WebSocket test client: typed frames, request/reply by `ref`, closes.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for a frame before failing.
pub const PATIENCE: Duration = Duration::from_secs(10);

pub struct Client {
    pub socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Client {
    pub async fn open(url: &str) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("handshake");
        Self { socket }
    }

    pub async fn send(&mut self, frame: Value) {
        self.socket
            .send(Message::Text(frame.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn send_text(&mut self, text: String) {
        self.socket.send(Message::Text(text.into())).await.unwrap();
    }

    /// The next text frame as JSON; fails the test after [`PATIENCE`].
    pub async fn recv(&mut self) -> Value {
        // One deadline for the frame, however many pings come first.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let next = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .expect("a frame in time");
            match next.expect("socket open").expect("frame") {
                Message::Text(text) => return serde_json::from_str(&text).unwrap(),
                Message::Close(frame) => panic!("closed: {frame:?}"),
                _ => continue,
            }
        }
    }

    /// Sends `frame` with a ref and returns the reply carrying that ref,
    /// failing on anything else in between.
    pub async fn request(&mut self, mut frame: Value) -> Value {
        frame["ref"] = json!("req");
        self.send(frame).await;
        let reply = self.recv().await;
        assert_eq!(
            reply["ref"], "req",
            "unexpected frame before the reply: {reply}"
        );
        reply
    }

    /// Proves nothing is queued for this socket: a round trip comes back
    /// first.
    pub async fn expect_quiet(&mut self) {
        let reply = self
            .request(json!({"action":"notifications_list","page_size":1}))
            .await;
        assert_eq!(reply["type"], "notifications_list");
    }

    /// Reads until the server closes; returns the close code and reason.
    /// Like any well-behaved client, it answers the close frame and reads
    /// on until the server ends the connection.
    pub async fn closed(&mut self) -> (u16, String) {
        let closed = loop {
            let next = tokio::time::timeout(PATIENCE, self.socket.next())
                .await
                .expect("a close in time");
            match next {
                Some(Ok(Message::Close(Some(frame)))) => {
                    break (u16::from(frame.code), frame.reason.to_string());
                }
                Some(Ok(Message::Close(None))) | None => {
                    break (u16::from(CloseCode::Status), String::new());
                }
                Some(Ok(_)) => continue,
                Some(Err(err)) => panic!("socket error before close: {err}"),
            }
        };
        self.until_end().await;
        closed
    }

    /// Reads (answering a close frame on the way) until the connection ends.
    pub async fn until_end(&mut self) {
        while let Ok(Some(Ok(_))) = tokio::time::timeout(PATIENCE, self.socket.next()).await {}
        // The library reports the end once the close handshake is done;
        // the server saves how far the client got after that, then closes
        // the connection, which is the end a reconnect must wait for.
        let until_closed = async {
            use tokio::io::AsyncReadExt;
            let mut sink = [0u8; 1024];
            while matches!(self.socket.get_mut().read(&mut sink).await, Ok(n) if n > 0) {}
        };
        let _ = tokio::time::timeout(PATIENCE, until_closed).await;
    }
}
