//! SIGKILL under traffic, on the real binaries: no goodbye to anyone. What
//! was acknowledged is stored, each publisher's messages are stored in the
//! order it sent them, and every listener that reconnects gets everything
//! after what it had, with no gap, each seq with the content it had
//! before. Repeats are allowed (a crash can come between a write and the
//! save of its position) and counted.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use domain::store::Store;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::process::Child;
use tokio_tungstenite::tungstenite::Message;

use crate::cluster::Cluster;
use crate::delivery::connect;
use crate::shutdown::{
    LISTENER_USERS, PUBLISHERS, ROOMY_QUEUE, TOPIC, Users, all_in_one, create_topic,
    publish_pipelined, sqlite_with_users, stored_messages,
};
use crate::ws_client::Client;

/// Each publisher's messages: more than it sends before the kill.
const PER_PUBLISHER: usize = 20_000;
/// Traffic before the kill: long enough for positions to have been saved
/// (every 500 ms), so a position saved ahead of what a client had would
/// show as a skip.
const BEFORE_KILL: Duration = Duration::from_millis(1500);

/// The all-in-one on SQLite, killed and started again on the same file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_on_the_all_in_one_loses_nothing_acknowledged_and_skips_nothing() {
    let _turn = crate::processes::one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let (url, users) = sqlite_with_users(&dir).await;
    let (child, api, ws) = all_in_one(&url, &dir.path().join("first.log")).await;
    create_topic(&api, &users).await;
    let before = traffic_then_kill(child, &ws, &ws, &users).await;
    let (_again, _, ws) = all_in_one(&url, &dir.path().join("again.log")).await;
    let store = Store::connect(&url, 2).await.unwrap();
    before.check(&store, &users, &ws).await;
}

/// A gateway of api + 2 gateways on PostgreSQL and Redis: its clients
/// reconnect to the other gateway; the other's listeners never left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_on_a_gateway_loses_nothing_acknowledged_and_skips_nothing() {
    let redis = std::env::var("TIDINGS_TEST_REDIS_URL").ok();
    let Some(mut cluster) = Cluster::start_configured(redis, &[ROOMY_QUEUE]).await else {
        return;
    };
    let users = Users::create(&cluster.db).await;
    create_topic(&cluster.api, &users).await;
    let gateway = cluster.children.remove(1);
    let [killed, other] = cluster.gateways.clone();
    let before = traffic_then_kill(gateway, &killed, &other, &users).await;
    before.check(&cluster.db, &users, &other).await;
}

/// What the clients saw before the kill.
struct Before {
    /// Per publisher, the indexes acknowledged.
    acked: Vec<BTreeSet<usize>>,
    /// Per listener, every (seq, content) received, in the order received.
    received: Vec<Vec<(i64, String)>>,
}

/// Half the listeners on `killed`, half on `other` (the same, for a
/// single process), and every publisher on `killed`, flat out; then
/// SIGKILL to `child`, which serves `killed`.
async fn traffic_then_kill(mut child: Child, killed: &str, other: &str, users: &Users) -> Before {
    let mut listeners = Vec::new();
    for (n, (_, token)) in users.listeners.iter().enumerate() {
        let gateway = if n % 2 == 0 { killed } else { other };
        let mut ws = connect(gateway, token).await;
        let reply = ws
            .request(json!({"action":"subscribe","topic_name":TOPIC}))
            .await;
        assert_eq!(reply["type"], "subscribed");
        listeners.push(tokio::spawn(listen(ws, gateway != killed)));
    }
    let mut publishers = Vec::new();
    for (n, token) in users.publishers.iter().enumerate() {
        let ws = connect(killed, token).await;
        publishers.push(tokio::spawn(publish_until_cut(n, ws)));
    }
    tokio::time::sleep(BEFORE_KILL).await;
    child.kill().await.unwrap();
    let mut acked = vec![BTreeSet::new(); PUBLISHERS];
    for task in publishers {
        let (n, set) = task.await.unwrap();
        acked[n] = set;
    }
    let mut received = Vec::new();
    for task in listeners {
        received.push(task.await.unwrap());
    }
    Before { acked, received }
}

/// Pipelines publishes, reading acks, until the connection is cut; the
/// indexes acknowledged.
async fn publish_until_cut(n: usize, ws: Client) -> (usize, BTreeSet<usize>) {
    let (acked, end) = publish_pipelined(n, ws, PER_PUBLISHER).await;
    assert!(
        matches!(end, Ok(Some(Err(_)) | None)),
        "publisher {n}: expected acks until the kill, got {end:?}"
    );
    (n, acked)
}

/// Reads messages until the connection is cut (`kept`: until the stream
/// goes quiet, its gateway was not the one killed).
async fn listen(mut ws: Client, kept: bool) -> Vec<(i64, String)> {
    let limit = if kept {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(30)
    };
    let mut received = Vec::new();
    loop {
        match tokio::time::timeout(limit, ws.socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => received.push(message(&text)),
            Ok(Some(Ok(Message::Close(frame)))) => panic!("closed with {frame:?}"),
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) if !kept => return received,
            Err(_) if kept => return received,
            other => panic!("expected messages then the end, got {other:?}"),
        }
    }
}

/// A message frame's seq and content.
pub(crate) fn message(text: &str) -> (i64, String) {
    let frame: Value = serde_json::from_str(text).unwrap();
    assert_eq!(frame["type"], "message", "{frame}");
    let content = frame["content"].as_str().unwrap().to_owned();
    (frame["seq"].as_i64().unwrap(), content)
}

/// Publisher and index of a content `p{n} #{i}`.
pub(crate) fn origin(content: &str) -> (usize, usize) {
    let (n, i) = content
        .strip_prefix('p')
        .and_then(|rest| rest.split_once(" #"))
        .unwrap();
    (n.parse().unwrap(), i.parse().unwrap())
}

impl Before {
    /// Checks the store against the acks, then reconnects every listener
    /// to `gateway` and checks what it gets against what it had.
    async fn check(&self, store: &Store, users: &Users, gateway: &str) {
        let stored = stored_in_order(store).await;
        let (last, seqs) = in_send_order(&stored);
        let mut stored_by = vec![BTreeSet::new(); PUBLISHERS];
        for (n, i) in seqs.keys() {
            stored_by[*n].insert(*i);
        }
        for (n, acked) in self.acked.iter().enumerate() {
            assert!(!acked.is_empty(), "publisher {n} published before the kill");
            let lost: Vec<_> = acked.difference(&stored_by[n]).collect();
            assert!(
                lost.is_empty(),
                "publisher {n}: acknowledged, not stored: {lost:?}"
            );
        }
        let mut repeats = 0;
        for (n, before) in self.received.iter().enumerate() {
            let token = &users.listeners[n].1;
            let mut ws = connect(gateway, token).await;
            let had = before.last().map_or(0, |(seq, _)| *seq);
            let mut after = Vec::new();
            while after.last().map_or(had, |(seq, _)| *seq) < last {
                let next = tokio::time::timeout(Duration::from_secs(30), ws.socket.next()).await;
                match next {
                    Ok(Some(Ok(Message::Text(text)))) => after.push(message(&text)),
                    Ok(Some(Ok(_))) => {}
                    other => panic!("listener {n}: expected up to seq {last}, got {other:?}"),
                }
            }
            let first = after.first().map_or(had + 1, |(seq, _)| *seq);
            assert!(
                first <= had + 1,
                "listener {n}: had {had}, then got {first}"
            );
            repeats += (had + 1 - first) as usize;
            for (at, (seq, content)) in before.iter().chain(&after).enumerate() {
                assert_eq!(Some(content), stored.get(seq), "listener {n}: seq {seq}");
                let expected = if at < before.len() {
                    at as i64 + 1
                } else {
                    first + (at - before.len()) as i64
                };
                assert_eq!(*seq, expected, "listener {n}: in order, nothing skipped");
            }
        }
        eprintln!("{repeats} frames repeated over {LISTENER_USERS} listeners after the kill");
    }
}

/// Checks that `stored` (content by seq) is gap-free and holds each
/// publisher's messages in the order it sent them; the last seq, and each
/// message's seq by publisher and index.
pub(crate) fn in_send_order(
    stored: &BTreeMap<i64, String>,
) -> (i64, BTreeMap<(usize, usize), i64>) {
    let last = *stored.keys().last().expect("something was stored");
    assert_eq!(
        stored.keys().copied().collect::<Vec<_>>(),
        (1..=last).collect::<Vec<_>>(),
        "seqs are gap-free"
    );
    let mut seqs: BTreeMap<(usize, usize), i64> = BTreeMap::new();
    let mut sent_order: BTreeMap<usize, usize> = BTreeMap::new();
    for (seq, content) in stored {
        let (n, i) = origin(content);
        let before = sent_order.insert(n, i);
        assert!(
            before < Some(i),
            "publisher {n}: #{i} stored after #{before:?}"
        );
        seqs.insert((n, i), *seq);
    }
    (last, seqs)
}

/// Every stored message's content, by seq.
async fn stored_in_order(store: &Store) -> BTreeMap<i64, String> {
    let stored = stored_messages(store).await;
    stored.into_iter().map(|m| (m.seq, m.content)).collect()
}
