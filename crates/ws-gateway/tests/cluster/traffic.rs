//! Traffic through a fault, on api + 2 gateways: publishers pipelining on
//! both gateways, listeners on both reading, while a test breaks something
//! (a database cut, a frozen process). Then the checks every such test
//! makes: every publish got one reply, in the order sent; what was
//! acknowledged is stored at the seq its ack named, and what was refused
//! is not; each publisher's messages are stored in its send order with
//! gap-free seqs; and every listener got every stored message once, in
//! order, on the socket it had all along.

use std::collections::BTreeMap;
use std::time::Duration;

use domain::store::Store;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::crash::{in_send_order, message};
use crate::delivery::connect;
use crate::shutdown::{TOPIC, Users, create_topic, stored_messages};
use crate::ws_client::Client;

/// The frame a publisher sends last; its reply closes the publisher's
/// account, since replies come in the order frames were sent.
const LAST_REF: &str = "last";
/// How long a reply or a listener's next message may take: longer than
/// any fault a test makes, so only a hang fails.
const PATIENCE: Duration = Duration::from_secs(30);

/// Each publish's reply: the seq acknowledged, or the error code.
pub(crate) type Reply = Result<i64, String>;
/// What a listener received: its number, then each (seq, content) in order.
type Received = (usize, Vec<(i64, String)>);

/// Publishers and listeners at work.
pub(crate) struct Traffic {
    publishers: Vec<JoinHandle<Vec<Reply>>>,
    listeners: Vec<JoinHandle<Received>>,
    stop: watch::Sender<bool>,
    last: watch::Sender<Option<i64>>,
}

/// What the traffic left, once checked.
pub(crate) struct Checked {
    /// Per publisher, each publish's reply in the order sent.
    pub replies: Vec<Vec<Reply>>,
    /// The last seq stored.
    pub last: i64,
}

impl Checked {
    pub fn refused(&self) -> usize {
        self.replies.iter().flatten().filter(|r| r.is_err()).count()
    }

    pub fn publishes(&self) -> usize {
        self.replies.iter().map(Vec::len).sum()
    }
}

impl Traffic {
    /// Creates the topic through `api`; subscribes every listener
    /// (taking `gateways` in turn) and starts `publishers` publishers (in
    /// turn too, the first on the first gateway).
    pub async fn start(api: &str, gateways: &[String], users: &Users, publishers: usize) -> Self {
        create_topic(api, users).await;
        let (last, last_rx) = watch::channel(None);
        let mut listeners = Vec::new();
        for (n, (_, token)) in users.listeners.iter().enumerate() {
            let mut ws = connect(&gateways[n % gateways.len()], token).await;
            let reply = ws
                .request(json!({"action":"subscribe","topic_name":TOPIC}))
                .await;
            assert_eq!(reply["type"], "subscribed", "{reply}");
            listeners.push(tokio::spawn(listen(n, ws, last_rx.clone())));
        }
        let (stop, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        for (n, token) in users.publishers[..publishers].iter().enumerate() {
            let ws = connect(&gateways[n % gateways.len()], token).await;
            tasks.push(tokio::spawn(publish_through(n, ws, stop_rx.clone())));
        }
        Self {
            publishers: tasks,
            listeners,
            stop,
            last,
        }
    }

    /// Stops publishing, waits for every reply and every listener, and
    /// checks them against the store; a refusal must carry one of
    /// `refusals`.
    pub async fn finish(self, db: &Store, refusals: &[&str]) -> Checked {
        self.stop.send(true).unwrap();
        let mut replies = Vec::new();
        for task in self.publishers {
            replies.push(task.await.unwrap());
        }
        let stored: BTreeMap<i64, String> = stored_messages(db)
            .await
            .into_iter()
            .map(|m| (m.seq, m.content))
            .collect();
        let (last, stored_at) = in_send_order(&stored);
        for (n, replies) in replies.iter().enumerate() {
            assert!(
                replies.last().is_some_and(Result::is_ok),
                "publisher {n}: acks again at the end"
            );
            for (i, reply) in replies.iter().enumerate() {
                match reply {
                    Ok(seq) => assert_eq!(
                        stored_at.get(&(n, i)),
                        Some(seq),
                        "publisher {n}: #{i} acknowledged as seq {seq}"
                    ),
                    Err(code) => {
                        assert!(
                            refusals.contains(&code.as_str()),
                            "publisher {n}: #{i}: {code}"
                        );
                        assert_eq!(
                            stored_at.get(&(n, i)),
                            None,
                            "publisher {n}: #{i} refused, yet stored"
                        );
                    }
                }
            }
        }
        self.last.send(Some(last)).unwrap();
        for task in self.listeners {
            let (n, received) = task.await.unwrap();
            let seqs: Vec<i64> = received.iter().map(|(seq, _)| *seq).collect();
            assert_eq!(
                seqs,
                (1..=last).collect::<Vec<_>>(),
                "listener {n}: every seq once, in order"
            );
            for (seq, content) in &received {
                assert_eq!(Some(content), stored.get(seq), "listener {n}: seq {seq}");
            }
        }
        Checked { replies, last }
    }
}

/// How many messages are stored now: a test's view of progress during a
/// fault, read from the store.
pub(crate) async fn stored_count(db: &Store) -> usize {
    stored_messages(db).await.len()
}

/// Publisher `n` pipelines `p{n} #{i}` (`ref` i, 2,000 a second) until
/// `stop`, then one last frame; each publish's reply in the order sent.
async fn publish_through(n: usize, ws: Client, mut stop: watch::Receiver<bool>) -> Vec<Reply> {
    let (mut sink, mut stream) = ws.socket.split();
    let sender = tokio::spawn(async move {
        let mut i = 0usize;
        while !*stop.borrow_and_update() {
            let frame = json!({"action":"message","topic_name":TOPIC,"content":format!("p{n} #{i}"),"ref":i});
            sink.send(Message::Text(frame.to_string().into()))
                .await
                .unwrap();
            i += 1;
            if i.is_multiple_of(10) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        let last = json!({"action":"notifications_list","ref":LAST_REF});
        sink.send(Message::Text(last.to_string().into()))
            .await
            .unwrap();
        (i, sink)
    });
    let mut replies = Vec::new();
    loop {
        let text = match tokio::time::timeout(PATIENCE, stream.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            other => panic!("publisher {n}: expected replies, got {other:?}"),
        };
        let frame: Value = serde_json::from_str(&text).unwrap();
        if frame["ref"] == LAST_REF {
            assert_eq!(frame["type"], "notifications_list", "{frame}");
            break;
        }
        assert_eq!(
            frame["ref"].as_u64(),
            Some(replies.len() as u64),
            "publisher {n}: replies in the order sent: {frame}"
        );
        replies.push(match frame["type"].as_str() {
            Some("ack") => Ok(frame["seq"].as_i64().unwrap()),
            Some("error") => Err(frame["code"].as_str().unwrap().to_owned()),
            _ => panic!("publisher {n}: {frame}"),
        });
    }
    let (sent, _sink) = sender.await.unwrap();
    assert_eq!(replies.len(), sent, "publisher {n}: one reply per publish");
    replies
}

/// Listener `n` reads messages until it has the seq `last` says (once the
/// test knows it); every (seq, content) received, in order. The socket
/// must not close.
async fn listen(n: usize, mut ws: Client, mut last: watch::Receiver<Option<i64>>) -> Received {
    let mut received: Vec<(i64, String)> = Vec::new();
    loop {
        let had = received.last().map_or(0, |(seq, _)| *seq);
        if last.borrow_and_update().is_some_and(|last| had >= last) {
            return (n, received);
        }
        tokio::select! {
            next = tokio::time::timeout(PATIENCE, ws.socket.next()) => match next {
                Ok(Some(Ok(Message::Text(text)))) => received.push(message(&text)),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                other => panic!("listener {n}: after seq {had}, got {other:?}"),
            },
            _ = last.changed() => {}
        }
    }
}
