//! The store's writers survive PostgreSQL dropping their connections (a
//! restart, a failover, an administrator's `pg_terminate_backend`). A
//! separate test binary, so cutting connections cannot touch other tests.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use domain::model::Actor;
use domain::names::{TopicName, Username};
use domain::testing::{Flavor, TestStore};

#[tokio::test]
async fn publishes_succeed_again_after_the_database_drops_every_connection() {
    let Some(db) = TestStore::fresh(Flavor::Postgres).await else {
        return;
    };
    let alice: Actor = db
        .create_user(None, &Username::parse("alice").unwrap(), "hash", false)
        .await
        .unwrap()
        .into();
    let topic = db
        .create_topic(&alice, &TopicName::parse("news").unwrap(), false)
        .await
        .unwrap();
    assert_eq!(db.publish(topic.id, &alice, "before").await.unwrap().seq, 1);
    db.execute_raw(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .await
    .unwrap();
    // The batch that finds its connection gone fails (the caller gets a
    // clear error); the writer then connects again.
    let mut stored = None;
    for _ in 0..5 {
        if let Ok(message) = db.publish(topic.id, &alice, "after").await {
            stored = Some(message);
            break;
        }
    }
    let message = stored.expect("a publish succeeds once the writer has reconnected");
    assert_eq!(message.seq, 2, "a failed batch leaves no gap in the seqs");
    let history = db.messages_after(topic.id, 0, 10, None).await.unwrap();
    assert_eq!(
        history
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>(),
        ["before", "after"]
    );
}

/// The reads every handshake makes (the token's account, the socket's
/// snapshot, the newest seqs of what it follows) run on connections of
/// their own, outside the pool and its checks. When the database drops
/// them, the first handshake after still gets its answers: the broken
/// connection is replaced and the read tried again, not failed.
#[tokio::test]
async fn handshake_reads_answer_at_once_after_the_database_drops_every_connection() {
    let Some(db) = TestStore::fresh(Flavor::Postgres).await else {
        return;
    };
    let core = db.core();
    let keys = domain::testing::keys();
    let alice = domain::testing::user(&db, "alice", false).await;
    let (account, _) = db.credentials(&alice.username).await.unwrap().unwrap();
    let token = keys
        .issue_session(&alice, account.generation)
        .unwrap()
        .access;
    let topic = db
        .create_topic(
            &alice.clone().into(),
            &TopicName::parse("news").unwrap(),
            false,
        )
        .await
        .unwrap();
    let stream = domain::store::Stream::Channel(topic.id);
    let handshake = || async {
        let who = core
            .authenticate(&keys, Some(&token))
            .await
            .map_err(|e| format!("{e:?}"))?;
        let snapshot = core
            .session_snapshot(who.actor.id)
            .await
            .map_err(|e| e.to_string())?;
        let heads = core
            .stream_heads(&[stream])
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((
            who.actor.id,
            snapshot.memberships.len(),
            heads.get(&stream).copied(),
        ))
    };
    let expected = (alice.id, 1, Some(0));
    assert_eq!(handshake().await, Ok(expected));
    for _ in 0..3 {
        db.execute_raw(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
        .await
        .unwrap();
        assert_eq!(handshake().await, Ok(expected));
    }
}
