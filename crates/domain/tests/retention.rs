//! Retention on both stores: the pruner removes a prefix of a channel's
//! history, readers are told where history starts instead of seeing a
//! gap, and seqs keep counting. Each test runs on a fresh SQLite file and
//! on a fresh PostgreSQL database (when `TIDINGS_TEST_DATABASE_URL` is set).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::sync::atomic::AtomicBool;

use domain::model::{Actor, Pruned, Retention, Topic};
use domain::names::{TopicName, Username};
use domain::service::ServiceError;
use domain::store::AuditFilter;
use domain::testing::TestStore;

#[macro_use]
#[path = "common/contract.rs"]
mod contract;

contract!(
    a_prune_removes_a_prefix_and_readers_are_told_where_history_starts,
    rows_left_below_the_mark_are_never_read_and_the_next_pass_deletes_them,
    count_and_age_limits_apply_with_a_topics_own_over_the_default,
    a_large_prune_goes_in_batches_while_publishes_keep_their_order,
    a_topics_retention_is_set_by_its_owner_or_an_admin,
);

static NOT_STOPPING: AtomicBool = AtomicBool::new(false);

async fn user(db: &TestStore, name: &str, admin: bool) -> Actor {
    db.create_user(None, &Username::parse(name).unwrap(), "hash", admin)
        .await
        .unwrap()
        .into()
}

async fn topic_with(db: &TestStore, owner: &Actor, name: &str, messages: i64) -> Topic {
    let topic = db
        .create_topic(owner, &TopicName::parse(name).unwrap(), false)
        .await
        .unwrap();
    let mut receipts = Vec::new();
    for i in 1..=messages {
        receipts.push(
            db.queue_publish(topic.id, owner, format!("m{i}"), None)
                .await
                .unwrap(),
        );
    }
    for receipt in receipts {
        receipt.committed().await.unwrap();
    }
    topic
}

fn seqs<'a>(messages: impl IntoIterator<Item = &'a domain::model::StoredMessage>) -> Vec<i64> {
    messages.into_iter().map(|m| m.seq).collect()
}

async fn a_prune_removes_a_prefix_and_readers_are_told_where_history_starts(db: &TestStore) {
    let alice = user(db, "alice", false).await;
    let topic = topic_with(db, &alice, "news", 10).await;
    assert_eq!(db.prune(topic.id, 4, &NOT_STOPPING).await.unwrap(), 4);
    assert_eq!(db.pruned_seq(topic.id).await.unwrap(), 4);

    let behind = db.backlog(topic.id, 1, 100, None).await.unwrap();
    assert_eq!(behind.pruned, Some(Pruned { from: 2, to: 4 }));
    assert_eq!(seqs(&behind.messages), (5..=10).collect::<Vec<_>>());
    let current = db.backlog(topic.id, 6, 100, None).await.unwrap();
    assert_eq!(current.pruned, None);
    assert_eq!(seqs(&current.messages), [7, 8, 9, 10]);
    // Leaving out the reader's own messages is not mistaken for pruning.
    let bob = user(db, "bob", false).await;
    db.publish(topic.id, &bob, "b").await.unwrap();
    db.publish(topic.id, &alice, "a").await.unwrap();
    let own_skipped = db.backlog(topic.id, 10, 100, Some(bob.id)).await.unwrap();
    assert_eq!(
        (own_skipped.pruned, seqs(&own_skipped.messages)),
        (None, vec![12])
    );

    let (after, mark) = db.history_after(topic.id, 0, 3).await.unwrap();
    assert_eq!((seqs(&after), mark), (vec![5, 6, 7], 4));
    let (before, _) = db.history_before(topic.id, 8, 10).await.unwrap();
    assert_eq!(seqs(&before), [5, 6, 7]);

    // Seqs keep counting from the newest, not from what is left.
    assert_eq!(db.publish(topic.id, &alice, "next").await.unwrap().seq, 13);
    // Pruning again to the same place, or behind it, changes nothing.
    assert_eq!(db.prune(topic.id, 4, &NOT_STOPPING).await.unwrap(), 0);
    assert_eq!(db.prune(topic.id, 2, &NOT_STOPPING).await.unwrap(), 0);
    assert_eq!(db.pruned_seq(topic.id).await.unwrap(), 4);
}

async fn rows_left_below_the_mark_are_never_read_and_the_next_pass_deletes_them(db: &TestStore) {
    let alice = user(db, "alice", false).await;
    let topic = topic_with(db, &alice, "news", 6).await;
    // A pruner stopped between raising the mark and deleting.
    db.execute_raw(&format!(
        "UPDATE channels SET pruned_seq = 3 WHERE id = {}",
        topic.id
    ))
    .await
    .unwrap();
    // History reads start after the mark.
    let (after, _) = db.history_after(topic.id, 1, 2).await.unwrap();
    assert_eq!(seqs(&after), [4, 5]);
    let (before, _) = db.history_before(topic.id, 100, 10).await.unwrap();
    assert_eq!(seqs(&before), [4, 5, 6]);
    // A backlog that reads on without a hole hands over what it found:
    // nothing is missing, so there is no range to announce.
    let whole = db.backlog(topic.id, 0, 100, None).await.unwrap();
    assert_eq!(
        (whole.pruned, seqs(&whole.messages)),
        (None, vec![1, 2, 3, 4, 5, 6])
    );
    // One with a hole below the mark announces the range.
    db.execute_raw(&format!(
        "DELETE FROM messages WHERE channel_id = {} AND seq = 1",
        topic.id
    ))
    .await
    .unwrap();
    let holed = db.backlog(topic.id, 0, 100, None).await.unwrap();
    assert_eq!(holed.pruned, Some(Pruned { from: 1, to: 3 }));
    assert_eq!(seqs(&holed.messages), [4, 5, 6]);

    let channels = db.retained_channels(0, 10).await.unwrap();
    assert_eq!(
        channels
            .iter()
            .map(|c| (c.id, c.oldest_seq, c.pruned_seq))
            .collect::<Vec<_>>(),
        [(topic.id, 2, 3)]
    );
    let report = db
        .core()
        .prune(Retention::default(), &NOT_STOPPING)
        .await
        .unwrap();
    assert_eq!((report.channels, report.messages), (0, 2));
    assert_eq!(db.retained_channels(0, 10).await.unwrap()[0].oldest_seq, 4);
}

async fn count_and_age_limits_apply_with_a_topics_own_over_the_default(db: &TestStore) {
    let admin = user(db, "root", true).await;
    let counted = topic_with(db, &admin, "counted", 30).await;
    let aged = topic_with(db, &admin, "aged", 12).await;
    let kept = topic_with(db, &admin, "kept", 12).await;
    let core = db.core();
    core.set_retention(
        &admin,
        &TopicName::parse("kept").unwrap(),
        Retention {
            max_age_secs: Some(3 * 3600),
            max_count: Some(1000),
        },
    )
    .await
    .unwrap();
    // The first 5 of "aged" and of "kept" were stored two hours ago.
    for topic in [&aged, &kept] {
        db.execute_raw(&format!(
            "UPDATE messages SET created_at = created_at - 7200000 \
             WHERE channel_id = {} AND seq <= 5",
            topic.id
        ))
        .await
        .unwrap();
    }
    let default = Retention {
        max_age_secs: Some(3600),
        max_count: Some(20),
    };
    let report = core.prune(default, &NOT_STOPPING).await.unwrap();
    assert_eq!((report.channels, report.messages), (2, 10 + 5));
    assert_eq!(db.pruned_seq(counted.id).await.unwrap(), 10);
    assert_eq!(db.pruned_seq(aged.id).await.unwrap(), 5);
    // "kept" set limits of its own, longer than the default's.
    assert_eq!(db.pruned_seq(kept.id).await.unwrap(), 0);
    let again = core.prune(default, &NOT_STOPPING).await.unwrap();
    assert_eq!((again.channels, again.messages), (0, 0));
    // Without any limit, nothing goes.
    let none = core
        .prune(Retention::default(), &NOT_STOPPING)
        .await
        .unwrap();
    assert_eq!(none.messages, 0);
    assert_eq!(
        seqs(&db.messages_after(kept.id, 0, 100, None).await.unwrap()).len(),
        12
    );
}

async fn a_large_prune_goes_in_batches_while_publishes_keep_their_order(db: &TestStore) {
    let alice = user(db, "alice", false).await;
    let topic = topic_with(db, &alice, "busy", 1300).await;
    let store = db.store.clone();
    let publisher = tokio::spawn({
        let alice = alice.clone();
        async move {
            let mut seqs = Vec::new();
            for i in 0..100 {
                let stored = store
                    .publish(topic.id, &alice, &format!("p{i}"))
                    .await
                    .unwrap();
                seqs.push(stored.seq);
            }
            seqs
        }
    });
    let deleted = db.prune(topic.id, 1200, &NOT_STOPPING).await.unwrap();
    let published = publisher.await.unwrap();
    assert_eq!(deleted, 1200);
    assert_eq!(published, (1301..=1400).collect::<Vec<_>>());
    let left = db.messages_after(topic.id, 0, 1000, None).await.unwrap();
    assert_eq!(seqs(&left), (1201..=1400).collect::<Vec<_>>());
}

async fn a_topics_retention_is_set_by_its_owner_or_an_admin(db: &TestStore) {
    let (alice, bob, admin) = (
        user(db, "alice", false).await,
        user(db, "bob", false).await,
        user(db, "root", true).await,
    );
    topic_with(db, &alice, "news", 0).await;
    let core = db.core();
    let name = TopicName::parse("news").unwrap();
    let week = Retention {
        max_age_secs: Some(604_800),
        max_count: None,
    };
    assert!(matches!(
        core.set_retention(&bob, &name, week).await,
        Err(ServiceError::Forbidden(_))
    ));
    let set = core.set_retention(&alice, &name, week).await.unwrap();
    assert_eq!(set.retention, week);
    assert_eq!(db.topic("news").await.unwrap().unwrap().retention, week);
    let count = Retention {
        max_age_secs: None,
        max_count: Some(50),
    };
    core.set_retention(&admin, &name, count).await.unwrap();
    assert_eq!(db.topic("news").await.unwrap().unwrap().retention, count);
    for bad in [
        Retention {
            max_age_secs: Some(0),
            max_count: None,
        },
        Retention {
            max_age_secs: None,
            max_count: Some(0),
        },
        Retention {
            max_age_secs: Some(-5),
            max_count: Some(-1),
        },
    ] {
        assert!(matches!(
            core.set_retention(&admin, &name, bad).await,
            Err(ServiceError::Invalid { .. })
        ));
    }
    assert!(matches!(
        core.set_retention(&admin, &TopicName::parse("nope").unwrap(), week)
            .await,
        Err(ServiceError::NotFound(_))
    ));
    let audit = db
        .audit_page(
            &AuditFilter {
                resource: Some("topic".into()),
                ..Default::default()
            },
            domain::paging::PageRequest::new(Some(1), Some(10), 10).unwrap(),
        )
        .await
        .unwrap();
    let updates: Vec<_> = audit
        .results
        .iter()
        .filter(|e| e.action == "update")
        .collect();
    assert_eq!(updates.len(), 2);
    assert_eq!(updates[0].actor.as_deref(), Some("root"));
    assert_eq!(
        updates[0].changes["retention_max_count"],
        serde_json::json!({"old": null, "new": 50})
    );
}
