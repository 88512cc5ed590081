//! SIGTERM under traffic, on the real binaries: every socket is closed
//! with 1001, every stored publish was acknowledged and every
//! acknowledged one stored, every delivery position is saved, and the
//! process exits cleanly without a failed cursor save.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use domain::auth::{JwtKeys, TokenType};
use domain::model::User;
use domain::store::Store;
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::process::Child;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::cluster::{Cluster, SECRET};
use crate::delivery::connect;
use crate::processes::{
    binary, free_port, start_logged, start_logged_file_limited, terminate, wait_ready,
};
use crate::ws_client::Client;

pub(crate) const PUBLISHERS: usize = 20;
pub(crate) const LISTENER_USERS: usize = 10;
const SOCKETS_PER_LISTENER: usize = 18;
/// Each publisher's messages; more than it can send before the signal.
const PER_PUBLISHER: usize = 1000;
pub(crate) const TOPIC: &str = "stream";
/// Twenty publishers flat out outrun 180 listening sockets read by this
/// test process (more than the default 4,096 frames behind), and the
/// gateway would rightly close them with 4008. Shutdown is what is tested
/// here, so the listeners get room to lag.
pub(crate) const ROOMY_QUEUE: (&str, &str) = ("TIDINGS_OUTBOUND_QUEUE", "1000000");

/// The all-in-one on SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_the_all_in_one_loses_and_repeats_nothing() {
    let _turn = crate::processes::one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let (url, users) = sqlite_with_users(&dir).await;
    let log = dir.path().join("tidings.log");
    let (child, api, ws) = all_in_one(&url, &log).await;
    let outcome = traffic_then_sigterm(child, &ws, &api, &users).await;
    let store = Store::connect(&url, 2).await.unwrap();
    outcome.check(&store, &users).await;
    assert_clean_log(&std::fs::read_to_string(&log).unwrap());
}

/// A SQLite database in `dir` with the test's users; its URL.
pub(crate) async fn sqlite_with_users(dir: &tempfile::TempDir) -> (String, Users) {
    let url = format!("sqlite://{}", dir.path().join("tidings.db").display());
    let store = Store::connect(&url, 2).await.unwrap();
    let users = Users::create(&store).await;
    store.close().await;
    (url, users)
}

/// Starts the all-in-one on the SQLite database at `url`, its stderr
/// written to `log`, with room for listeners to lag; once ready, the
/// process, its api's base URL and its gateway's address.
pub(crate) async fn all_in_one(url: &str, log: &std::path::Path) -> (Child, String, String) {
    all_in_one_with(url, log, &[], None).await
}

/// Like [`all_in_one`], with `extra_env` set and its files kept under
/// `file_limit` bytes if given (see [`start_logged_file_limited`]).
pub(crate) async fn all_in_one_with(
    url: &str,
    log: &std::path::Path,
    extra_env: &[(&'static str, &str)],
    file_limit: Option<u64>,
) -> (Child, String, String) {
    let (api_port, ws_port) = (free_port(), free_port());
    let mut env = vec![
        ("DATABASE_URL", url.to_owned()),
        ("JWT_SECRET", SECRET.to_owned()),
        ("TIDINGS_API_ADDR", format!("127.0.0.1:{api_port}")),
        ("TIDINGS_WS_ADDR", format!("127.0.0.1:{ws_port}")),
        (ROOMY_QUEUE.0, ROOMY_QUEUE.1.to_owned()),
    ];
    env.extend(extra_env.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let child = match file_limit {
        None => start_logged(binary("tidings"), &env, log),
        Some(bytes) => start_logged_file_limited(binary("tidings"), &env, log, bytes),
    };
    let api = format!("http://127.0.0.1:{api_port}");
    wait_ready(&api).await;
    (child, api, format!("127.0.0.1:{ws_port}"))
}

/// A `ws-gateway` of a cluster on PostgreSQL and Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_a_gateway_loses_and_repeats_nothing() {
    let redis = std::env::var("TIDINGS_TEST_REDIS_URL").ok();
    let Some(mut cluster) = Cluster::start_configured(redis, &[ROOMY_QUEUE]).await else {
        return;
    };
    let users = Users::create(&cluster.db).await;
    let gateway = cluster.children.remove(1);
    let outcome =
        traffic_then_sigterm(gateway, &cluster.gateways[0].clone(), &cluster.api, &users).await;
    outcome.check(&cluster.db, &users).await;
    assert_clean_log(&cluster.log(1));
}

/// The api, with REST publishes in flight: each one is answered 201 and
/// stored, or neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_the_api_answers_every_stored_publish() {
    let Some(mut cluster) = Cluster::start().await else {
        return;
    };
    let users = Users::create(&cluster.db).await;
    create_topic(&cluster.api, &users).await;
    let api = cluster.api.clone();
    let mut tasks = Vec::new();
    for (n, token) in users.publishers.iter().enumerate() {
        let (api, token) = (api.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut created = BTreeSet::new();
            for i in 0..PER_PUBLISHER {
                let content = format!("p{n} #{i}");
                let sent = client
                    .post(format!("{api}/api/topics/{TOPIC}/messages/"))
                    .bearer_auth(&token)
                    .json(&json!({ "content": content }))
                    .send()
                    .await;
                match sent {
                    Ok(response) if response.status().as_u16() == 201 => {
                        created.insert(content);
                    }
                    // Refused or cut off by the shutdown: stop here.
                    _ => break,
                }
            }
            (n, created)
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let api_process = cluster.children.remove(0);
    let status = exit_of(api_process).await;
    assert!(status.success(), "the api exited with {status}");
    let mut acked = HashMap::new();
    for task in tasks {
        let (n, created) = task.await.unwrap();
        acked.insert(n, created);
    }
    let stored = stored_by_publisher(&cluster.db, &users).await;
    for n in 0..PUBLISHERS {
        let acked = &acked[&n];
        assert!(
            !acked.is_empty(),
            "publisher {n} published before the signal"
        );
        assert_eq!(&stored[&n], acked, "publisher {n}: stored = answered 201");
    }
    assert_clean_log(&cluster.log(0));
}

/// The test's users and their tokens.
pub(crate) struct Users {
    pub publishers: Vec<String>,
    pub publisher_ids: Vec<i64>,
    /// Each listener's id and token.
    pub listeners: Vec<(i64, String)>,
}

impl Users {
    pub async fn create(store: &Store) -> Self {
        let keys = JwtKeys::new(
            SECRET.as_bytes(),
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        )
        .unwrap();
        let token = |user: &User| keys.issue(user, TokenType::Access).unwrap();
        let mut users = Users {
            publishers: vec![],
            publisher_ids: vec![],
            listeners: vec![],
        };
        for n in 0..PUBLISHERS {
            let user = domain::testing::user(store, &format!("p{n}"), false).await;
            users.publishers.push(token(&user));
            users.publisher_ids.push(user.id);
        }
        for n in 0..LISTENER_USERS {
            let user = domain::testing::user(store, &format!("l{n}"), false).await;
            users.listeners.push((user.id, token(&user)));
        }
        users
    }
}

/// Created by a listener: a publisher that created it would be a member
/// and receive the others' messages.
pub(crate) async fn create_topic(api: &str, users: &Users) {
    let response = reqwest::Client::new()
        .request(Method::POST, format!("{api}/api/topics/"))
        .bearer_auth(&users.listeners[0].1)
        .json(&json!({ "name": TOPIC }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
}

/// What the clients saw.
struct Outcome {
    /// Per publisher, the contents acknowledged.
    acked: Vec<BTreeSet<String>>,
    /// Per listener user, the highest seq any of its sockets received.
    received: HashMap<i64, i64>,
}

impl Outcome {
    async fn check(&self, store: &Store, users: &Users) {
        let stored = stored_by_publisher(store, users).await;
        for (n, acked) in self.acked.iter().enumerate() {
            assert!(
                !acked.is_empty(),
                "publisher {n} published before the signal"
            );
            assert_eq!(&stored[&n], acked, "publisher {n}: stored = acknowledged");
        }
        let topic = store.topic(TOPIC).await.unwrap().unwrap();
        for (user, received) in &self.received {
            let saved = store.delivered_seq(topic.id, *user).await.unwrap();
            assert_eq!(
                saved,
                Some(*received),
                "listener {user}: the saved position is what its sockets received"
            );
        }
    }
}

pub(crate) async fn stored_by_publisher(
    store: &Store,
    users: &Users,
) -> HashMap<usize, BTreeSet<String>> {
    let mut stored: HashMap<usize, BTreeSet<String>> =
        (0..PUBLISHERS).map(|n| (n, BTreeSet::new())).collect();
    for message in stored_messages(store).await {
        let n = users
            .publisher_ids
            .iter()
            .position(|&id| id == message.sender_id)
            .unwrap();
        stored.get_mut(&n).unwrap().insert(message.content);
    }
    stored
}

/// Every message stored in the test's topic, by seq.
pub(crate) async fn stored_messages(store: &Store) -> Vec<domain::model::StoredMessage> {
    let topic = store.topic(TOPIC).await.unwrap().unwrap();
    let mut stored = Vec::new();
    loop {
        let after = stored
            .last()
            .map_or(0, |m: &domain::model::StoredMessage| m.seq);
        let page = store
            .messages_after(topic.id, after, 1000, None)
            .await
            .unwrap();
        if page.is_empty() {
            return stored;
        }
        stored.extend(page);
    }
}

/// 200 sockets, 20 of them publishing flat out, then SIGTERM.
async fn traffic_then_sigterm(child: Child, gateway: &str, api: &str, users: &Users) -> Outcome {
    create_topic(api, users).await;
    let mut listeners = Vec::new();
    for (user, token) in &users.listeners {
        for _ in 0..SOCKETS_PER_LISTENER {
            let mut ws = connect(gateway, token).await;
            let reply = ws
                .request(json!({"action":"subscribe","topic_name":TOPIC}))
                .await;
            assert_eq!(reply["type"], "subscribed");
            listeners.push(tokio::spawn(listen(*user, ws)));
        }
    }
    let mut publishers = Vec::new();
    for (n, token) in users.publishers.iter().enumerate() {
        let ws = connect(gateway, token).await;
        publishers.push(tokio::spawn(publish(n, ws)));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let status = exit_of(child).await;
    assert!(status.success(), "the process exited with {status}");
    let mut acked = vec![BTreeSet::new(); PUBLISHERS];
    for task in publishers {
        let (n, set) = task.await.unwrap();
        acked[n] = set;
    }
    let mut received: HashMap<i64, i64> = HashMap::new();
    for task in listeners {
        let (user, last) = task.await.unwrap();
        let best = received.entry(user).or_default();
        *best = (*best).max(last);
    }
    Outcome { acked, received }
}

/// SIGTERM, then the exit status (within a bound).
async fn exit_of(mut child: Child) -> std::process::ExitStatus {
    terminate(&child);
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the process exits after SIGTERM")
        .unwrap()
}

/// Sends publishes without waiting for acks while reading acks; returns
/// the acknowledged contents once the server has closed with 1001.
async fn publish(n: usize, ws: Client) -> (usize, BTreeSet<String>) {
    let (acked, end) = publish_pipelined(n, ws, PER_PUBLISHER).await;
    let code = match end {
        Ok(Some(Ok(Message::Close(frame)))) => frame.map(|f| u16::from(f.code)),
        other => panic!("publisher {n}: expected acks then a close, got {other:?}"),
    };
    assert_eq!(code, Some(1001), "publisher {n}");
    (n, acked.iter().map(|i| format!("p{n} #{i}")).collect())
}

/// How a publisher's socket ended: what came instead of an ack, or the
/// 30 s of silence.
pub(crate) type Ending = Result<Option<Result<Message, WsError>>, tokio::time::error::Elapsed>;

/// Publisher `n` sends `count` messages (`p{n} #{i}`, with `ref` i)
/// without waiting for acks while it reads them; the indexes
/// acknowledged, and what came instead of the next ack (or a rate limit).
pub(crate) async fn publish_pipelined(
    n: usize,
    ws: Client,
    count: usize,
) -> (BTreeSet<usize>, Ending) {
    let (mut sink, mut stream) = ws.socket.split();
    let sender = tokio::spawn(async move {
        for i in 0..count {
            let frame = json!({"action":"message","topic_name":TOPIC,"content":format!("p{n} #{i}"),"ref":i});
            if sink
                .send(Message::Text(frame.to_string().into()))
                .await
                .is_err()
            {
                break;
            }
            if i % 20 == 19 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        sink
    });
    let mut acked = BTreeSet::new();
    let end = loop {
        match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                if frame["type"] == "ack" {
                    acked.insert(frame["ref"].as_u64().unwrap() as usize);
                } else {
                    assert_eq!(frame["code"], "rate_limited", "{frame}");
                }
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            other => break other,
        }
    };
    let _ = sender.await;
    (acked, end)
}

/// Reads messages until the server closes with 1001; returns the user and
/// the last seq received.
async fn listen(user: i64, mut ws: Client) -> (i64, i64) {
    let mut last = 0;
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                let frame: Value = serde_json::from_str(&text).unwrap();
                let seq = frame["seq"].as_i64().unwrap();
                assert_eq!(seq, last + 1, "listener {user}: in order, nothing skipped");
                last = seq;
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                assert_eq!(frame.map(|f| u16::from(f.code)), Some(1001));
                // Answer the close, as a client does.
                ws.until_end().await;
                return (user, last);
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("listener {user}: expected messages then a close, got {other:?}"),
        }
    }
}

fn assert_clean_log(log: &str) {
    for bad in ["could not save delivery cursors", "panicked", "ERROR"] {
        assert!(!log.contains(bad), "the log says {bad:?}:\n{log}");
    }
}
