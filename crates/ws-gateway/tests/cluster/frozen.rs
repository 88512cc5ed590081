//! Parts that stop answering without going away, under traffic, on api +
//! 2 gateways: a gateway frozen (SIGSTOP), Redis frozen, PostgreSQL gone
//! silent (a proxy that passes no byte). Nothing announces any of them: no
//! connection closes, no error comes back. Each lasts seconds and ends
//! (SIGCONT, the proxy resumes). The test checks what the rest of the
//! cluster does meanwhile, then everything [`Traffic`] checks: nothing
//! acknowledged lost, nothing refused, nothing skipped, repeated or
//! reordered on any socket.

use std::time::Duration;

use crate::cluster::Cluster;
use crate::outages::{cluster_with_own_redis_configured, readyz};
use crate::processes::signal;
use crate::shutdown::{ROOMY_QUEUE, Users};
use crate::traffic::{Traffic, stored_count};

/// Publishers, alternating between the gateways.
const PUBLISHERS: usize = 4;
const UNLIMITED: (&str, &str) = ("TIDINGS_PUBLISH_RATE", "1000000");
/// Traffic before the fault, and after it ends.
const BEFORE: Duration = Duration::from_secs(1);
const AFTER: Duration = Duration::from_secs(3);

/// The second gateway stops for 3 s with sockets, subscriptions and
/// database connections open. The first gateway's publishers are stored
/// and delivered meanwhile (whatever the frozen one had held lapses
/// within its one-second lease); the frozen gateway's own publishers and
/// listeners resume where they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_gateway_holds_no_one_back_and_its_sockets_miss_nothing() {
    let redis = std::env::var("TIDINGS_TEST_REDIS_URL").ok();
    let Some(cluster) = Cluster::start_configured(redis, &[ROOMY_QUEUE, UNLIMITED]).await else {
        return;
    };
    let users = Users::create(&cluster.db).await;
    let frozen = &cluster.children[2];
    let freeze = || signal(frozen, "STOP");
    let thaw = || signal(frozen, "CONT");
    let span = Duration::from_millis(1500);
    through_a_freeze(&cluster, &users, span, freeze, thaw).await;
}

/// Redis stops for 6 s, longer than a gateway waits before it pings an
/// idle subscription: publishes wait on nothing of Redis's (the store is
/// the record), each gateway keeps delivering its own, and once Redis
/// answers the gateways fill in each other's from the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_stops_no_publish_and_loses_nothing() {
    let Some((redis, cluster)) = cluster_with_own_redis_configured(&[ROOMY_QUEUE, UNLIMITED]).await
    else {
        return;
    };
    let users = Users::create(&cluster.db).await;
    let (freeze, thaw) = (|| redis.signal("STOP"), || redis.signal("CONT"));
    through_a_freeze(&cluster, &users, Duration::from_secs(3), freeze, thaw).await;
}

/// PostgreSQL stops answering for 5 s on every connection, old and new.
/// Publishes wait for it rather than fail: a commit sent into the silence
/// may yet land, so an error would be a guess (see `database_cut.rs` for
/// a database that does go away). `/readyz` says the store is not
/// answering meanwhile, and every publish is acknowledged once it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_database_delays_publishes_and_refuses_none() {
    let redis = std::env::var("TIDINGS_TEST_REDIS_URL").ok();
    let Some((cluster, proxy)) =
        Cluster::start_through_proxy(redis, &[ROOMY_QUEUE, UNLIMITED]).await
    else {
        return;
    };
    let users = Users::create(&cluster.db).await;
    let traffic = Traffic::start(&cluster.api, &cluster.gateways, &users, PUBLISHERS).await;
    tokio::time::sleep(BEFORE).await;
    proxy.stall();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The store, read around the proxy: nothing commits through it.
    let early = stored_count(&cluster.db).await;
    for gateway in &cluster.gateways {
        let (status, body) = readyz(&format!("http://{gateway}")).await;
        assert_eq!(status, 503, "{body}");
        assert!(
            body["store"].as_str().unwrap().contains("no answer"),
            "{body}"
        );
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(stored_count(&cluster.db).await, early, "the stall holds");
    proxy.resume();
    tokio::time::sleep(AFTER).await;
    finish_quietly(traffic, &cluster).await;
    for gateway in &cluster.gateways {
        let (status, body) = readyz(&format!("http://{gateway}")).await;
        assert_eq!(status, 200, "{body}");
    }
}

/// Traffic through a freeze of twice `span`: commits must go on through
/// it (the store has more messages `span` later than `span` in), and
/// [`finish_quietly`] checks what the clients saw once it has ended.
async fn through_a_freeze(
    cluster: &Cluster,
    users: &Users,
    span: Duration,
    freeze: impl FnOnce(),
    thaw: impl FnOnce(),
) {
    let traffic = Traffic::start(&cluster.api, &cluster.gateways, users, PUBLISHERS).await;
    tokio::time::sleep(BEFORE).await;
    freeze();
    tokio::time::sleep(span).await;
    let early = stored_count(&cluster.db).await;
    tokio::time::sleep(span).await;
    let late = stored_count(&cluster.db).await;
    thaw();
    assert!(late > early, "commits went on meanwhile ({early} → {late})");
    tokio::time::sleep(AFTER).await;
    finish_quietly(traffic, cluster).await;
}

/// Ends the traffic with no refusal allowed, and checks that no process
/// panicked or flooded its log (lines that repeat during a fault, such as
/// every commit's events failing to reach Redis, are throttled).
async fn finish_quietly(traffic: Traffic, cluster: &Cluster) {
    let checked = traffic.finish(&cluster.db, &[]).await;
    eprintln!("{} publishes, {} stored", checked.publishes(), checked.last);
    for n in 0..3 {
        let log = cluster.log(n);
        assert!(!log.contains("panicked"), "{log}");
        let lines = log.lines().count();
        assert!(lines < 100, "{lines} lines logged:\n{log}");
    }
}
