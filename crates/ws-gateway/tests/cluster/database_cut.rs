//! PostgreSQL cut under traffic, on api + 2 gateways: every process loses
//! its database for seconds while publishers pipeline and listeners on
//! both gateways read. Every publish gets one reply, in the order sent:
//! an ack for what was stored, an `internal` error for what was not, even
//! for a commit whose answer the cut took. What was acknowledged is
//! stored, in each publisher's send order, seqs stay gap-free, and every
//! listener gets every stored message once, in order, on the socket it
//! had all along.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::cluster::Cluster;
use crate::crash::{in_send_order, message};
use crate::delivery::connect;
use crate::shutdown::{ROOMY_QUEUE, TOPIC, Users, create_topic, stored_messages};
use crate::ws_client::Client;

/// Publishers used (of the [`Users`]' twenty): enough to interleave in
/// every commit, few enough that the test process reads every reply.
const PUBLISHERS: usize = 4;
/// Traffic before the cut, the cut, and traffic after it.
const BEFORE: Duration = Duration::from_secs(1);
const CUT: Duration = Duration::from_secs(3);
const AFTER: Duration = Duration::from_secs(3);
/// What a gateway logs when a commit whose answer was lost turns out stored.
const LANDED: &str = "the batch whose answer was lost was stored";
/// The frame a publisher sends last; its reply closes the publisher's
/// account, since replies come in the order frames were sent.
const LAST_REF: &str = "last";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_cut_under_traffic_loses_nothing_acknowledged_and_skips_nothing() {
    let redis = std::env::var("TIDINGS_TEST_REDIS_URL").ok();
    let unlimited = ("TIDINGS_PUBLISH_RATE", "1000000");
    let Some((cluster, proxy)) =
        Cluster::start_through_proxy(redis, &[ROOMY_QUEUE, unlimited]).await
    else {
        return;
    };
    let users = Users::create(&cluster.db).await;
    create_topic(&cluster.api, &users).await;
    let (last_tx, last_rx) = watch::channel(None);
    let mut listeners = Vec::new();
    for (n, (_, token)) in users.listeners.iter().enumerate() {
        let mut ws = connect(&cluster.gateways[n % 2], token).await;
        let reply = ws
            .request(json!({"action":"subscribe","topic_name":TOPIC}))
            .await;
        assert_eq!(reply["type"], "subscribed", "{reply}");
        listeners.push(tokio::spawn(listen(n, ws, last_rx.clone())));
    }
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut publishers = Vec::new();
    for (n, token) in users.publishers[..PUBLISHERS].iter().enumerate() {
        let ws = connect(&cluster.gateways[n % 2], token).await;
        publishers.push(tokio::spawn(publish_through(n, ws, stop_rx.clone())));
    }

    tokio::time::sleep(BEFORE).await;
    proxy.cut();
    tokio::time::sleep(CUT).await;
    proxy.mend();
    tokio::time::sleep(AFTER).await;
    stop_tx.send(true).unwrap();
    let mut replies = Vec::new();
    for task in publishers {
        replies.push(task.await.unwrap());
    }

    // The store, read around the proxy.
    let stored: BTreeMap<i64, String> = stored_messages(&cluster.db)
        .await
        .into_iter()
        .map(|m| (m.seq, m.content))
        .collect();
    let (last, stored_at) = in_send_order(&stored);
    let logs: Vec<String> = (1..3).map(|n| cluster.log(n)).collect();
    assert!(
        logs.iter().any(|log| log.contains("a publish batch")),
        "the cut was felt by a commit"
    );
    for log in &logs {
        // Thousands of publishes may fail: their lines are throttled.
        let lines = log.lines().count();
        assert!(lines < 100, "{lines} lines logged:\n{log}");
    }
    for (n, replies) in replies.iter().enumerate() {
        assert!(
            replies.last().is_some_and(Result::is_ok),
            "publisher {n}: acks again after the database came back"
        );
        for (i, reply) in replies.iter().enumerate() {
            match reply {
                Ok(seq) => assert_eq!(
                    stored_at.get(&(n, i)),
                    Some(seq),
                    "publisher {n}: #{i} acknowledged as seq {seq}"
                ),
                Err(code) => {
                    assert_eq!(code, "internal", "publisher {n}: #{i}");
                    assert_eq!(
                        stored_at.get(&(n, i)),
                        None,
                        "publisher {n}: #{i} refused, yet stored"
                    );
                }
            }
        }
    }
    let lost_answers: usize = logs.iter().map(|log| log.matches(LANDED).count()).sum();
    eprintln!(
        "{} publishes, {} refused, {last} stored; {lost_answers} commits whose answer \
         the cut took were found stored",
        replies.iter().map(Vec::len).sum::<usize>(),
        replies.iter().flatten().filter(|r| r.is_err()).count(),
    );

    last_tx.send(Some(last)).unwrap();
    for task in listeners {
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
    // A new socket opens too: its handshake reads the store.
    let mut ws = connect(&cluster.gateways[0], &users.publishers[0]).await;
    let inbox = ws.request(json!({"action":"notifications_list"})).await;
    assert_eq!(inbox["type"], "notifications_list", "{inbox}");
    for n in 0..3 {
        assert!(!cluster.log(n).contains("panicked"), "{}", cluster.log(n));
    }
}

/// Publisher `n` pipelines `p{n} #{i}` (`ref` i, 2,000 a second) until
/// `stop`, then one last frame; each publish's reply in the order sent:
/// the seq acknowledged, or the error code.
async fn publish_through(
    n: usize,
    ws: Client,
    mut stop: watch::Receiver<bool>,
) -> Vec<Result<i64, String>> {
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
        let next = tokio::time::timeout(Duration::from_secs(30), stream.next()).await;
        let text = match next {
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
async fn listen(
    n: usize,
    mut ws: Client,
    mut last: watch::Receiver<Option<i64>>,
) -> (usize, Vec<(i64, String)>) {
    let mut received: Vec<(i64, String)> = Vec::new();
    loop {
        let had = received.last().map_or(0, |(seq, _)| *seq);
        if last.borrow_and_update().is_some_and(|last| had >= last) {
            return (n, received);
        }
        tokio::select! {
            next = tokio::time::timeout(Duration::from_secs(30), ws.socket.next()) => match next {
                Ok(Some(Ok(Message::Text(text)))) => received.push(message(&text)),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                other => panic!("listener {n}: after seq {had}, got {other:?}"),
            },
            _ = last.changed() => {}
        }
    }
}
