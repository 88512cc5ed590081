//! Redis going away and coming back, with a `redis-server` of the test's
//! own on a free port, killed and restarted: a gateway keeps serving its
//! own sockets, `/readyz` answers 503 at once, and live delivery across
//! gateways resumes within seconds of Redis returning, with nothing lost.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::cut_proxy::CuttableProxy;
use crate::delivery::connect;
use crate::own_redis::OwnRedis;
use crate::processes::{binary, free_port, start_logged};
use crate::ws_client::Client;

/// How soon live delivery must resume once Redis is back.
const RESUME: Duration = Duration::from_secs(5);

pub(crate) async fn readyz(base: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{base}/readyz"))
        .timeout(Duration::from_millis(1500))
        .send()
        .await
        .expect("/readyz answers within 1.5 s whatever is down");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

async fn publish(ws: &mut Client, content: &str) -> i64 {
    let ack = ws
        .request(json!({"action":"message","topic_name":"feed","content":content}))
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    ack["seq"].as_i64().unwrap()
}

/// A cluster whose Redis is the test's own (to kill and restart); `None`
/// (skipped) without PostgreSQL and Redis, except under CI.
async fn cluster_with_own_redis() -> Option<(OwnRedis, Cluster)> {
    cluster_with_own_redis_configured(&[]).await
}

/// Like [`cluster_with_own_redis`], with `gateway_env` set on both gateways.
pub(crate) async fn cluster_with_own_redis_configured(
    gateway_env: &[(&'static str, &str)],
) -> Option<(OwnRedis, Cluster)> {
    if std::env::var_os("TIDINGS_TEST_REDIS_URL").is_none() {
        assert!(std::env::var_os("CI").is_none(), "CI must provide Redis");
        return None; // the Cluster would be skipped anyway
    }
    let redis = OwnRedis::start().await;
    let cluster = Cluster::start_configured(Some(redis.url()), gateway_env).await?;
    Some((redis, cluster))
}

/// Waits (up to [`RESUME`]) for `/readyz` at `base` to answer 503; returns
/// its body.
async fn until_unready(base: &str) -> Value {
    let deadline = tokio::time::Instant::now() + RESUME;
    loop {
        let (status, body) = readyz(base).await;
        if status == 503 {
            return body;
        }
        assert!(tokio::time::Instant::now() < deadline, "/readyz still 200");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The next message within `limit`, or `None`.
async fn next_message(ws: &mut Client, limit: Duration) -> Option<Value> {
    let frame = tokio::time::timeout(limit, ws.recv()).await.ok()?;
    assert_eq!(frame["type"], "message", "{frame}");
    Some(frame)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_keeps_local_delivery_and_recovers_within_seconds() {
    let Some((mut redis, cluster)) = cluster_with_own_redis().await else {
        return;
    };
    let (_, alice) = cluster.user("alice", false).await;
    let (_, bob) = cluster.user("bob", false).await;
    let (_, carol) = cluster.user("carol", false).await;
    cluster
        .rest(Method::POST, "/api/topics/", &alice, json!({"name":"feed"}))
        .await;
    let mut publisher = connect(&cluster.gateways[0], &alice).await;
    let mut near = connect(&cluster.gateways[0], &bob).await;
    let mut far = connect(&cluster.gateways[1], &carol).await;
    for ws in [&mut near, &mut far] {
        let reply = ws
            .request(json!({"action":"subscribe","topic_name":"feed"}))
            .await;
        assert_eq!(reply["type"], "subscribed");
    }
    assert_eq!(publish(&mut publisher, "before").await, 1);
    for ws in [&mut near, &mut far] {
        assert_eq!(ws.recv().await["seq"], 1);
    }

    redis.kill().await;
    let gateway_a = format!("http://{}", cluster.gateways[0]);
    let body = until_unready(&gateway_a).await;
    assert_ne!(body["bus"]["status"], "ok", "{body}");
    // Published during the outage: stored, acknowledged, and live on the
    // publisher's own gateway.
    for n in 2..=6 {
        assert_eq!(publish(&mut publisher, &format!("during {n}")).await, n);
        let frame = next_message(&mut near, RESUME)
            .await
            .expect("the publisher's own gateway delivers during the outage");
        assert_eq!(frame["seq"], n);
    }

    redis.restart().await;
    // The far gateway catches up from the store, in order, soon.
    for n in 2..=6 {
        let frame = next_message(&mut far, RESUME)
            .await
            .unwrap_or_else(|| panic!("seq {n} reached the far gateway within 5 s"));
        assert_eq!(frame["seq"], n);
    }
    // And live delivery works again across gateways.
    let deadline = tokio::time::Instant::now() + RESUME;
    let seq = loop {
        let seq = publish(&mut publisher, "after").await;
        assert_eq!(next_message(&mut near, RESUME).await.unwrap()["seq"], seq);
        if let Some(frame) = next_message(&mut far, Duration::from_millis(500)).await {
            assert_eq!(frame["seq"], seq);
            break seq;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "live delivery across gateways did not resume within 5 s"
        );
        // Caught up from the store on the next resync instead: take it.
        let frame = next_message(&mut far, RESUME).await.unwrap();
        assert_eq!(frame["seq"], seq);
    };
    assert!(seq >= 7);
    let (status, _) = readyz(&gateway_a).await;
    assert_eq!(status, 200);
    near.expect_quiet().await;
    far.expect_quiet().await;
}

/// A gateway started while its Redis is unreachable listens anyway, says
/// why in `/readyz` and in its log, and becomes ready once Redis answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_started_without_redis_listens_and_says_why() {
    let _turn = crate::processes::one_at_a_time().await;
    let Some(db) = domain::testing::TestStore::postgres().await else {
        return;
    };
    let logs = tempfile::tempdir().unwrap();
    let log: PathBuf = logs.path().join("gateway.log");
    let (ws_port, redis_port) = (free_port(), free_port());
    let _gateway = start_logged(
        binary("ws-gateway"),
        &[
            ("DATABASE_URL", db.url.clone()),
            ("REDIS_URL", format!("redis://127.0.0.1:{redis_port}")),
            ("JWT_SECRET", crate::cluster::SECRET.to_owned()),
            ("TIDINGS_WS_ADDR", format!("127.0.0.1:{ws_port}")),
        ],
        &log,
    );
    let base = format!("http://127.0.0.1:{ws_port}");
    // Listening at once: /healthz is 200 while /readyz names the bus.
    let mut answered = None;
    for _ in 0..100 {
        if let Ok(response) = reqwest::get(format!("{base}/healthz")).await {
            answered = Some(response.status().as_u16());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(answered, Some(200));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = readyz(&base).await;
        assert_eq!(status, 503);
        if body["bus"].is_string() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("dependency=\"bus\"") || text.contains("dependency=bus"),
        "{text}"
    );
    assert!(text.to_lowercase().contains("refused"), "{text}");

    let _redis = OwnRedis::start_on(redis_port).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while readyz(&base).await.0 != 200 {
        assert!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// With the database unreachable a handshake is 503, not 401 (the token
/// is fine), REST answers 503 within seconds and `/readyz` within one; all
/// of it recovers when the database is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_503_everywhere_and_recovers() {
    let _turn = crate::processes::one_at_a_time().await;
    let (Some(db), Some(redis_url)) = (
        domain::testing::TestStore::postgres().await,
        std::env::var("TIDINGS_TEST_REDIS_URL").ok(),
    ) else {
        return;
    };
    let (proxy, proxied) = CuttableProxy::to(&db.url).await;
    let logs = tempfile::tempdir().unwrap();
    let (api_port, ws_port) = (free_port(), free_port());
    let env = |key: &'static str, port: u16| {
        vec![
            ("DATABASE_URL", proxied.clone()),
            ("REDIS_URL", redis_url.clone()),
            ("TIDINGS_REDIS_PREFIX", format!("dbcut{ws_port}")),
            ("JWT_SECRET", crate::cluster::SECRET.to_owned()),
            (key, format!("127.0.0.1:{port}")),
        ]
    };
    let _api = start_logged(
        binary("api"),
        &env("TIDINGS_API_ADDR", api_port),
        &logs.path().join("api.log"),
    );
    let _gateway = start_logged(
        binary("ws-gateway"),
        &env("TIDINGS_WS_ADDR", ws_port),
        &logs.path().join("ws.log"),
    );
    let (api, ws) = (
        format!("http://127.0.0.1:{api_port}"),
        format!("127.0.0.1:{ws_port}"),
    );
    crate::processes::wait_ready(&api).await;
    crate::processes::wait_ready(&format!("http://{ws}")).await;
    let user = domain::testing::user(&db, "alice", false).await;
    let keys = domain::auth::JwtKeys::new(
        crate::cluster::SECRET.as_bytes(),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    )
    .unwrap();
    let token = keys.issue(&user, domain::auth::TokenType::Access).unwrap();
    connect(&ws, &token).await;

    proxy.cut();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(4))
        .build()
        .unwrap();
    let handshake = client
        .get(format!("http://{ws}/ws?token={token}"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .expect("the handshake is answered within seconds");
    assert_eq!(
        handshake.status().as_u16(),
        503,
        "not 401: the token is fine"
    );
    let me = client
        .get(format!("{api}/api/users/me/"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("REST answers within seconds");
    assert_eq!(me.status().as_u16(), 503);
    for base in [api.clone(), format!("http://{ws}")] {
        let (status, body) = readyz(&base).await;
        assert_eq!(status, 503, "{base}: {body}");
        assert_ne!(body["store"], "ok", "{body}");
    }
    // A hundred requests at once all fail the same way; the log says so
    // once a second, not a hundred times.
    let flood = (0..100).map(|_| {
        client
            .get(format!("{api}/api/users/me/"))
            .bearer_auth(&token)
            .send()
    });
    for response in futures_util::future::join_all(flood).await {
        assert_eq!(response.unwrap().status().as_u16(), 503);
    }
    let log = std::fs::read_to_string(logs.path().join("api.log")).unwrap();
    let lines = log.matches("store failure").count();
    assert!(
        (1..=5).contains(&lines),
        "{lines} lines for 101 failures:\n{log}"
    );

    proxy.mend();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    for base in [api.clone(), format!("http://{ws}")] {
        while readyz(&base).await.0 != 200 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{base} never recovered"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    connect(&ws, &token).await;
    let me = client
        .get(format!("{api}/api/users/me/"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status().as_u16(), 200);
}

/// A revocation made while Redis is down never reaches the gateways as an
/// event. Once Redis is back every gateway resyncs, and a resync asks the
/// store whether each socket's credential still works: the socket that
/// used the old password closes with 4003, its neighbour lives on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_changed_during_a_redis_outage_closes_its_sockets_once_redis_is_back() {
    let Some((mut redis, cluster)) = cluster_with_own_redis().await else {
        return;
    };
    let (_, alice) = cluster.user("alice", false).await;
    let (_, bob) = cluster.user("bob", false).await;
    let mut alice_ws = connect(&cluster.gateways[1], &alice).await;
    let mut bob_ws = connect(&cluster.gateways[1], &bob).await;

    redis.kill().await;
    until_unready(&format!("http://{}", cluster.gateways[1])).await;
    cluster
        .change_password(&alice, "a brand new password")
        .await;
    redis.restart().await;

    let closed = tokio::time::timeout(RESUME, alice_ws.closed())
        .await
        .expect("the socket with the dead credential closes within 5 s of Redis returning");
    assert_eq!(closed.0, 4003, "{closed:?}");
    let reply = bob_ws
        .request(json!({"type":"notifications_list","page":1}))
        .await;
    assert_eq!(reply["type"], "notifications_list", "{reply}");
}
