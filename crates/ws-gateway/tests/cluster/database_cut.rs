//! PostgreSQL cut under traffic, on api + 2 gateways: every process loses
//! its database for seconds while publishers pipeline and listeners on
//! both gateways read. Midway, every session is told to resync, so each
//! needs the store while it is away: it waits for it rather than close. Every publish gets one reply, in the order sent:
//! an ack for what was stored, an `internal` error for what was not, even
//! for a commit whose answer the cut took. What was acknowledged is
//! stored, in each publisher's send order, seqs stay gap-free, and every
//! listener gets every stored message once, in order, on the socket it
//! had all along.

use std::time::Duration;

use serde_json::json;

use crate::cluster::Cluster;
use crate::delivery::connect;
use crate::shutdown::{ROOMY_QUEUE, Users};
use crate::traffic::Traffic;

/// Publishers used (of the [`Users`]' twenty): enough to interleave in
/// every commit, few enough that the test process reads every reply.
const PUBLISHERS: usize = 4;
/// Traffic before the cut, the cut, and traffic after it.
const BEFORE: Duration = Duration::from_secs(1);
const CUT: Duration = Duration::from_secs(3);
const AFTER: Duration = Duration::from_secs(3);
/// What a gateway logs when a commit whose answer was lost turns out stored.
const LANDED: &str = "the batch whose answer was lost was stored";

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
    let traffic = Traffic::start(&cluster.api, &cluster.gateways, &users, PUBLISHERS).await;
    tokio::time::sleep(BEFORE).await;
    proxy.cut();
    let storm = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        refused_handshakes(&cluster.gateways[0], &users.listeners[0].1).await;
        cluster.resync().await;
    };
    tokio::join!(tokio::time::sleep(CUT), storm);
    proxy.mend();
    tokio::time::sleep(AFTER).await;
    let checked = traffic.finish(&cluster.db, &["internal"]).await;

    let logs: Vec<String> = (1..3).map(|n| cluster.log(n)).collect();
    assert!(
        logs.iter().any(|log| log.contains("a publish batch")),
        "the cut was felt by a commit"
    );
    for log in &logs {
        // Thousands of publishes and a hundred handshakes fail: their
        // lines are throttled.
        let lines = log.lines().count();
        assert!(lines < 100, "{lines} lines logged:\n{log}");
    }
    let lost_answers: usize = logs.iter().map(|log| log.matches(LANDED).count()).sum();
    eprintln!(
        "{} publishes, {} refused, {} stored; {lost_answers} commits whose answer \
         the cut took were found stored",
        checked.publishes(),
        checked.refused(),
        checked.last,
    );
    // A new socket opens too: its handshake reads the store.
    let mut ws = connect(&cluster.gateways[0], &users.publishers[0]).await;
    let inbox = ws.request(json!({"action":"notifications_list"})).await;
    assert_eq!(inbox["type"], "notifications_list", "{inbox}");
    for n in 0..3 {
        assert!(!cluster.log(n).contains("panicked"), "{}", cluster.log(n));
    }
}

/// A hundred sockets opened at once during the cut: each is refused with
/// 503 (the handshake reads the store), and none logs a line of its own.
async fn refused_handshakes(gateway: &str, token: &str) {
    let url = format!("ws://{gateway}/ws?token={token}");
    let attempts = (0..100).map(|_| tokio_tungstenite::connect_async(url.as_str()));
    for attempt in futures_util::future::join_all(attempts).await {
        match attempt {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 503, "{response:?}");
            }
            other => panic!("a handshake during the cut: {other:?}"),
        }
    }
}
