//! Two processes over one PostgreSQL database and one Redis, as api and
//! gateways run: sessions far behind in one hold the other's commits back
//! (see `fan_out_lag.rs` and `bus/holds.rs`). Each "process" is a core of
//! its own (own store pool, own group-commit writer, own Redis bus); the
//! test stands in for the session that is behind, as the gateway's hub
//! would count it.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::sync::Arc;
use std::time::Duration;

use domain::bus::RedisBus;
use domain::model::Actor;
use domain::names::TopicName;
use domain::service::{Core, Limits};
use domain::store::Store;
use domain::testing::TestStore;

#[path = "common/redis_bus.rs"]
#[allow(dead_code)] // shared with the bus tests; only `bus` is used here
mod redis_bus;

/// Longer than a hold's lease, shorter than the writer's cap (10 s).
const PATIENCE: Duration = Duration::from_secs(5);

/// A second process's core over `db`, on its own Redis bus.
async fn process(db: &TestStore, prefix: &str) -> Option<Arc<Core>> {
    let bus = redis_bus::bus(prefix).await?;
    let store = Store::connect(&db.url, 2).await.unwrap();
    Some(Core::new(store, bus as Arc<RedisBus>, Limits::default()))
}

struct Pair {
    _db: TestStore,
    prefix: String,
    a: Arc<Core>,
    b: Arc<Core>,
    alice: Actor,
    topic: domain::model::Topic,
}

async fn pair() -> Option<Pair> {
    let db = TestStore::postgres().await?;
    let prefix = format!("holds{}", uuid::Uuid::new_v4().simple());
    let (a, b) = (process(&db, &prefix).await?, process(&db, &prefix).await?);
    let alice: Actor = domain::testing::user(&db, "alice", false).await.into();
    let name = TopicName::parse("flood").unwrap();
    let topic = a.create_topic(&alice, &name, false).await.unwrap();
    Some(Pair {
        _db: db,
        prefix,
        a,
        b,
        alice,
        topic,
    })
}

/// Waits until `core` has heard a hold from elsewhere.
async fn hears_a_hold(core: &Core) {
    tokio::time::timeout(PATIENCE, async {
        while core.fan_out_lag().remote_holds() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the hold crossed Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_behind_holds_the_others_commits_until_it_catches_up() {
    let Some(p) = pair().await else { return };
    p.a.publish_topic(&p.alice, &p.topic, "before")
        .await
        .unwrap();
    let ticket = p.b.fan_out_lag().add();
    hears_a_hold(&p.a).await;
    let held = tokio::spawn({
        let (a, alice, topic) = (Arc::clone(&p.a), p.alice.clone(), p.topic.clone());
        async move { a.publish_topic(&alice, &topic, "held").await }
    });
    // Past the lease: the hold is renewed while B stays behind.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        !held.is_finished(),
        "A committed while B's sessions were far behind"
    );
    p.b.fan_out_lag().remove(ticket);
    let published = tokio::time::timeout(PATIENCE, held)
        .await
        .expect("A commits once B has caught up")
        .unwrap()
        .unwrap();
    assert_eq!(published.message.seq, 2);
    assert_eq!(p.a.fan_out_lag().remote_holds(), 0, "B released its hold");
    assert_eq!(p.b.fan_out_lag().remote_holds(), 0, "A never held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_dies_holding_holds_nobody_for_long() {
    let Some(p) = pair().await else { return };
    // What a process says when its sessions fall behind, and then nothing:
    // it died before renewing or releasing.
    let url = std::env::var("TIDINGS_TEST_REDIS_URL").unwrap();
    let mut redis = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let hold = serde_json::json!({"origin": 42, "lease_ms": 1000}).to_string();
    let _: i64 = redis::cmd("PUBLISH")
        .arg(format!("{}:hold", p.prefix))
        .arg(hold)
        .query_async(&mut redis)
        .await
        .unwrap();
    hears_a_hold(&p.a).await;
    let published = tokio::time::timeout(PATIENCE, p.a.publish_topic(&p.alice, &p.topic, "after"))
        .await
        .expect("the lease ran out well before the writer's cap")
        .unwrap();
    assert_eq!(published.message.seq, 1);
    assert_eq!(p.a.fan_out_lag().remote_holds(), 0);
}

/// A session of B's that falls behind over and over, each time catching
/// up within the budget (its client reads slower than its topic goes, and
/// catches up whenever publishers are held), holds A's commits for its
/// own allowance and then for a small share of the time, not for as long
/// as it keeps falling behind (6.09 s of 8 without the allowance, 2.90 s
/// with it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_that_keeps_falling_behind_holds_the_others_for_its_allowance() {
    use domain::fan_out_lag::{HoldAllowance, USER_HOLD_BUDGET};
    use std::time::Instant;
    let Some(p) = pair().await else { return };
    let run = Duration::from_secs(8);
    let behind = tokio::spawn({
        let lag = Arc::clone(p.b.fan_out_lag());
        async move {
            let mut allowance = HoldAllowance::default();
            let started = Instant::now();
            // Behind for 150 ms of every 200.
            while started.elapsed() < run {
                let ticket = allowance.may_hold().then(|| lag.add());
                tokio::time::sleep(Duration::from_millis(150)).await;
                if let Some(ticket) = ticket {
                    allowance.pay(lag.remove(ticket));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    });
    hears_a_hold(&p.a).await;
    let (started, mut held) = (Instant::now(), Duration::ZERO);
    while started.elapsed() < run {
        let publish = Instant::now();
        p.a.publish_topic(&p.alice, &p.topic, "x").await.unwrap();
        let took = publish.elapsed();
        // A commit held back waits for B's session to catch up.
        if took >= Duration::from_millis(50) {
            held += took;
        }
    }
    behind.await.unwrap();
    assert!(
        held >= USER_HOLD_BUDGET / 2,
        "A was held for the session's allowance: {held:?}"
    );
    assert!(
        held < USER_HOLD_BUDGET * 2,
        "then for a small share of the time, not 150 ms of every 200: {held:?} of {run:?}"
    );
}
