//! The store contract: one async fn per behaviour, each run on a fresh
//! SQLite file and on a fresh PostgreSQL database (when
//! `TIDINGS_TEST_DATABASE_URL` is set).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use domain::model::{Actor, StoredMessage};
use domain::names::{TopicName, Username};
use domain::paging::PageRequest;
use domain::store::{AuditFilter, ChannelKind, Cursor, Store, StoreError};
use domain::testing::TestStore;

#[macro_use]
#[path = "common/contract.rs"]
mod contract;

contract!(
    users_are_created_and_found,
    duplicate_usernames_conflict,
    users_and_topics_share_one_namespace,
    private_topics_are_listed_only_to_members,
    topic_pages_count_and_order,
    seqs_start_at_one_and_have_no_gaps,
    concurrent_publishes_get_distinct_consecutive_seqs,
    commits_wait_while_sessions_are_far_behind,
    one_batch_over_many_channels_moves_each_by_its_own_count,
    one_commit_of_many_channels_keeps_each_message_whole,
    a_refused_publish_does_not_fail_its_batch,
    a_batch_that_fails_leaves_nothing_and_the_next_one_commits,
    history_can_leave_out_the_readers_own_messages,
    joining_starts_delivery_after_the_last_message,
    direct_channels_are_symmetric_and_named_by_peer,
    a_conversation_begun_from_both_sides_at_once_is_one,
    conversations_are_resolved_by_name_in_one_batch,
    batches_resolving_the_same_conversations_at_once_make_each_once,
    a_conversation_whose_peer_is_deleted_takes_no_more_messages,
    cursors_only_move_forward,
    a_flush_of_many_cursors_moves_each_forward_only,
    deleting_a_topic_frees_its_name_and_messages,
    inbox_holds_notifications_since_subscribing,
    inbox_flags_and_filters,
    read_all_is_a_watermark_that_explicit_marks_override,
    ended_subscriptions_keep_what_they_brought,
    notification_backlog_follows_the_subscription_cursor,
    audit_records_old_and_new_values,
    tag_and_subscription_lifecycle,
    ids_are_never_reused,
    inbox_counts_agree_with_pages_across_tags_and_states,
    snapshots_of_many_users_come_from_one_read,
    token_checks_of_many_tokens_come_from_one_read,
    an_opening_reads_what_a_token_check_and_a_snapshot_read,
    stream_heads_are_the_newest_seqs,
);

async fn stream_heads_are_the_newest_seqs(db: &TestStore) {
    use domain::store::Stream;
    let alice = user(db, "alice").await;
    let news = db
        .create_topic(&alice, &topic_name("news"), false)
        .await
        .unwrap();
    let quiet = db
        .create_topic(&alice, &topic_name("quiet"), false)
        .await
        .unwrap();
    for text in ["one", "two", "three"] {
        db.publish(news.id, &alice, text).await.unwrap();
    }
    let tag = db.create_tag(&alice, "deploys").await.unwrap();
    let asked = [
        Stream::Channel(news.id),
        Stream::Channel(quiet.id),
        Stream::Tag(tag.id),
        Stream::Channel(999_999),
    ];
    let heads = db.stream_heads(&asked).await.unwrap();
    assert_eq!(heads.get(&asked[0]), Some(&3));
    assert_eq!(heads.get(&asked[1]), Some(&0));
    assert_eq!(heads.get(&asked[2]), Some(&0));
    assert_eq!(heads.get(&asked[3]), None, "no such channel");
    assert_eq!(
        db.stream_heads(&[Stream::Tag(tag.id)]).await.unwrap().len(),
        1,
        "tags alone"
    );
    assert!(db.stream_heads(&[]).await.unwrap().is_empty());
}

/// Alice logs out of her session "alice-old", `bob` is disabled and
/// `carol` deleted; tokens in each state a check tells apart, in this
/// order: alice's logged-out session, another of hers, hers with no
/// session, bob's, carol's, and one of a user who never was.
async fn tokens_in_every_state(
    db: &Store,
    alice: &Actor,
    bob: &Actor,
    carol: &Actor,
) -> Vec<(i64, String)> {
    let far = domain::time::now_millis() + 3_600_000;
    db.revoke_session(None, alice.id, "alice-old", far)
        .await
        .unwrap();
    db.update_account(alice, bob.id, Some(false), None)
        .await
        .unwrap();
    db.delete_account(alice, carol.id).await.unwrap();
    vec![
        (alice.id, "alice-old".to_owned()),
        (alice.id, "alice-new".to_owned()),
        (alice.id, String::new()),
        (bob.id, String::new()),
        (carol.id, String::new()),
        (999_999, String::new()),
    ]
}

async fn token_checks_of_many_tokens_come_from_one_read(db: &TestStore) {
    let alice = user(db, "alice").await;
    let bob = user(db, "bob").await;
    let carol = user(db, "carol").await;
    let asked = tokens_in_every_state(db, &alice, &bob, &carol).await;
    let found = db.token_accounts(&asked).await.unwrap();
    let revoked = |key: &(i64, String)| found.get(key).map(|f| f.session_revoked);
    assert_eq!(revoked(&asked[0]), Some(true), "a logged-out session");
    assert_eq!(revoked(&asked[1]), Some(false), "another session of hers");
    assert_eq!(revoked(&asked[2]), Some(false), "no session named");
    assert_eq!(found[&asked[0]].account.user.username, "alice");
    assert!(
        !found[&asked[3]].account.is_active,
        "bob is disabled, not gone"
    );
    assert!(!found.contains_key(&asked[4]), "carol is deleted");
    assert!(!found.contains_key(&asked[5]), "no such user");
    for key in &asked {
        let alone = db.token_accounts(std::slice::from_ref(key)).await.unwrap();
        assert_eq!(alone.get(key), found.get(key), "{key:?} alone");
    }
    assert!(db.token_accounts(&[]).await.unwrap().is_empty());
}

async fn an_opening_reads_what_a_token_check_and_a_snapshot_read(db: &TestStore) {
    let alice = user(db, "alice").await;
    let bob = user(db, "bob").await;
    let carol = user(db, "carol").await;
    let dave = user(db, "dave").await;
    let news = db
        .create_topic(&alice, &topic_name("news"), false)
        .await
        .unwrap();
    db.direct_channel(alice.id, bob.id).await.unwrap();
    db.direct_channel(alice.id, carol.id).await.unwrap();
    let tag = db.create_tag(&alice, "deploys").await.unwrap();
    db.subscribe(&alice, alice.id, tag.id).await.unwrap();
    db.subscribe(&alice, bob.id, tag.id).await.unwrap();
    db.publish(news.id, &alice, "one").await.unwrap();
    let mut asked = tokens_in_every_state(db, &alice, &bob, &carol).await;
    let daves = (dave.id, "dave".to_owned());
    asked.push(daves.clone());
    let found = db.openings(&asked).await.unwrap();
    let accounts = db.token_accounts(&asked).await.unwrap();
    let users: Vec<i64> = asked.iter().map(|(user, _)| *user).collect();
    let snapshots = db.session_snapshots(&users).await.unwrap();
    for key in &asked {
        let opening = found.get(key);
        assert_eq!(
            opening.map(|o| &o.account),
            accounts.get(key),
            "{key:?}: the token check"
        );
        if let Some(opening) = opening {
            let snapshot = snapshots.get(&key.0).cloned().unwrap_or_default();
            assert_eq!(opening.snapshot, snapshot, "{key:?}: the snapshot");
        }
        let alone = db.openings(std::slice::from_ref(key)).await.unwrap();
        assert_eq!(alone.get(key), opening, "{key:?} alone");
    }
    let alices = &found[&asked[1]].snapshot;
    assert_eq!(
        (alices.memberships.len(), alices.subscriptions.len()),
        (2, 1),
        "news and the conversation with bob (carol's went with her), and the tag"
    );
    assert!(found[&asked[0]].account.session_revoked);
    assert_eq!(
        found[&daves].snapshot,
        Default::default(),
        "dave has nothing to deliver"
    );
    assert!(!found.contains_key(&asked[4]), "carol is deleted");
    assert!(db.openings(&[]).await.unwrap().is_empty());
}

/// A user's memberships, as a socket reads them.
async fn memberships(store: &Store, user_id: i64) -> Vec<domain::store::Membership> {
    let mut found = store.session_snapshots(&[user_id]).await.unwrap();
    found.remove(&user_id).unwrap_or_default().memberships
}

/// A user's memberships of one channel (one, or none).
async fn memberships_in(
    store: &Store,
    user_id: i64,
    channel_id: i64,
) -> Vec<domain::store::Membership> {
    let mut found = memberships(store, user_id).await;
    found.retain(|m| m.channel_id == channel_id);
    found
}

async fn snapshots_of_many_users_come_from_one_read(db: &TestStore) {
    let alice = user(db, "alice").await;
    let bob = user(db, "bob").await;
    let carol = user(db, "carol").await;
    let news = db
        .create_topic(&alice, &topic_name("news"), false)
        .await
        .unwrap();
    let team = db
        .create_topic(&bob, &topic_name("team"), true)
        .await
        .unwrap();
    let direct = db.direct_channel(alice.id, bob.id).await.unwrap();
    let tag = db.create_tag(&alice, "deploys").await.unwrap();
    let other = db.create_tag(&alice, "alerts").await.unwrap();
    let kept = db.subscribe(&alice, alice.id, tag.id).await.unwrap();
    let ended = db.subscribe(&alice, alice.id, other.id).await.unwrap();
    db.end_subscription(&alice, &ended).await.unwrap();
    db.advance_cursors(&[(
        Cursor::Channel {
            channel_id: news.id,
            user_id: alice.id,
        },
        0,
    )])
    .await
    .unwrap();
    db.publish(news.id, &alice, "one").await.unwrap();
    db.advance_cursors(&[(
        Cursor::Channel {
            channel_id: news.id,
            user_id: alice.id,
        },
        1,
    )])
    .await
    .unwrap();

    let found = db
        .session_snapshots(&[alice.id, bob.id, carol.id])
        .await
        .unwrap();
    let alices = &found[&alice.id];
    let labels: Vec<(String, i64)> = alices
        .memberships
        .iter()
        .map(|m| (m.label(), m.delivered_seq))
        .collect();
    let mut expected = vec![
        (news.id, ("news".to_owned(), 1)),
        (direct, ("@bob".to_owned(), 0)),
    ];
    expected.sort();
    assert_eq!(
        labels,
        expected.into_iter().map(|(_, l)| l).collect::<Vec<_>>()
    );
    assert_eq!(
        alices.subscriptions.len(),
        1,
        "an ended subscription is left out"
    );
    assert_eq!(
        (alices.subscriptions[0].id, alices.subscriptions[0].tag_id),
        (kept.id, tag.id)
    );
    let bobs: Vec<String> = found[&bob.id]
        .memberships
        .iter()
        .map(|m| m.label())
        .collect();
    let mut expected = vec![(team.id, "team".to_owned()), (direct, "@alice".to_owned())];
    expected.sort();
    assert_eq!(
        bobs,
        expected.into_iter().map(|(_, l)| l).collect::<Vec<_>>()
    );
    assert!(found[&bob.id].subscriptions.is_empty());
    assert!(
        !found.contains_key(&carol.id),
        "nothing to deliver to carol"
    );
    // Each user alone reads the same as in company.
    for who in [alice.id, bob.id] {
        let alone = db.session_snapshots(&[who]).await.unwrap();
        assert_eq!(alone[&who], found[&who]);
    }
    assert!(db.session_snapshots(&[]).await.unwrap().is_empty());
}

async fn user(store: &Store, name: &str) -> Actor {
    store
        .create_user(None, &Username::parse(name).unwrap(), "hash", false)
        .await
        .unwrap()
        .into()
}

async fn admin(store: &Store, name: &str) -> Actor {
    store
        .create_user(None, &Username::parse(name).unwrap(), "hash", true)
        .await
        .unwrap()
        .into()
}

fn topic_name(name: &str) -> TopicName {
    TopicName::parse(name).unwrap()
}

fn page(page: u32, page_size: u32) -> PageRequest {
    PageRequest { page, page_size }
}

async fn users_are_created_and_found(db: &TestStore) {
    let alice = db
        .create_user(None, &Username::parse("alice").unwrap(), "h1", true)
        .await
        .unwrap();
    assert!(alice.is_admin);
    assert_eq!(db.user_by_id(alice.id).await.unwrap(), Some(alice.clone()));
    assert_eq!(db.user_by_name("alice").await.unwrap(), Some(alice.clone()));
    assert_eq!(
        db.user_by_name("Alice").await.unwrap(),
        None,
        "names are case-sensitive"
    );
    let (found, hash) = db.credentials("alice").await.unwrap().unwrap();
    assert_eq!((found.user, hash.as_str()), (alice, "h1"));
    assert!(found.is_active);
    assert_eq!(found.generation, 0);
    assert_eq!(db.user_count().await.unwrap(), 1);
}

async fn duplicate_usernames_conflict(db: &TestStore) {
    user(db, "bob").await;
    let again = db
        .create_user(None, &Username::parse("bob").unwrap(), "h", false)
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(db.user_count().await.unwrap(), 1);
}

async fn users_and_topics_share_one_namespace(db: &TestStore) {
    let alice = user(db, "alice").await;
    let clash = db.create_topic(&alice, &topic_name("alice"), false).await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
    db.create_topic(&alice, &topic_name("news"), false)
        .await
        .unwrap();
    let clash = db
        .create_user(None, &Username::parse("news").unwrap(), "h", false)
        .await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))), "{clash:?}");
}

async fn private_topics_are_listed_only_to_members(db: &TestStore) {
    let alice = user(db, "alice").await;
    let bob = user(db, "bob").await;
    let secret = db
        .create_topic(&alice, &topic_name("secret"), true)
        .await
        .unwrap();
    db.create_topic(&alice, &topic_name("public"), false)
        .await
        .unwrap();
    assert_eq!(secret.owner.as_deref(), Some("alice"));
    assert!(
        db.is_member(secret.id, alice.id).await.unwrap(),
        "the creator is a member"
    );
    let names = |p: domain::paging::Page<domain::model::Topic>| {
        p.results.into_iter().map(|t| t.name).collect::<Vec<_>>()
    };
    assert_eq!(
        names(db.topics_page(&bob, page(1, 10)).await.unwrap()),
        ["public"]
    );
    assert_eq!(
        names(db.topics_page(&alice, page(1, 10)).await.unwrap()),
        ["public", "secret"]
    );
    db.join_topic(&alice, &secret, bob.id, "bob").await.unwrap();
    assert_eq!(db.topics_page(&bob, page(1, 10)).await.unwrap().count, 2);
}

async fn topic_pages_count_and_order(db: &TestStore) {
    let alice = user(db, "alice").await;
    for n in ["t3", "t1", "t5", "t2", "t4"] {
        db.create_topic(&alice, &topic_name(n), false)
            .await
            .unwrap();
    }
    let second = db.topics_page(&alice, page(2, 2)).await.unwrap();
    assert_eq!((second.count, second.page, second.page_size), (5, 2, 2));
    assert_eq!(
        second
            .results
            .iter()
            .map(|t| t.name.as_str())
            .collect::<Vec<_>>(),
        ["t3", "t4"]
    );
    assert_eq!(
        db.topics_page(&alice, page(3, 2))
            .await
            .unwrap()
            .results
            .len(),
        1
    );
    assert!(
        db.topics_page(&alice, page(4, 2))
            .await
            .unwrap()
            .results
            .is_empty()
    );
}

async fn seqs_start_at_one_and_have_no_gaps(db: &TestStore) {
    let alice = user(db, "alice").await;
    let topic = db
        .create_topic(&alice, &topic_name("news"), false)
        .await
        .unwrap();
    for i in 1..=5 {
        let m = db
            .publish(topic.id, &alice, &format!("m{i}"))
            .await
            .unwrap();
        assert_eq!((m.seq, m.sender.as_str()), (i, "alice"));
    }
    let after_two = db.messages_after(topic.id, 2, 10, None).await.unwrap();
    assert_eq!(
        after_two.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    assert_eq!(after_two[0].content, "m3");
    assert_eq!(
        db.messages_after(topic.id, 0, 2, None).await.unwrap().len(),
        2
    );
    assert_eq!(db.topic("news").await.unwrap().unwrap().last_seq, 5);
    assert!(matches!(
        db.publish(9999, &alice, "x").await,
        Err(StoreError::NotFound)
    ));
}

async fn concurrent_publishes_get_distinct_consecutive_seqs(db: &TestStore) {
    let alice = user(db, "alice").await;
    let topic = db
        .create_topic(&alice, &topic_name("busy"), false)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (store, alice) = (db.store.clone(), alice.clone());
            tokio::spawn(async move {
                for i in 0..25 {
                    store
                        .publish(topic.id, &alice, &i.to_string())
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let seqs: Vec<i64> = db
        .messages_after(topic.id, 0, 1000, None)
        .await
        .unwrap()
        .iter()
        .map(|m| m.seq)
        .collect();
    assert_eq!(seqs, (1..=100).collect::<Vec<_>>());
}

/// While a session says it is far behind, the writer commits nothing; the
/// publish waiting meanwhile lands, with its seq, once it has caught up.
async fn commits_wait_while_sessions_are_far_behind(db: &TestStore) {
    let alice = user(db, "alice").await;
    let topic = db
        .create_topic(&alice, &topic_name("flood"), false)
        .await
        .unwrap();
    db.publish(topic.id, &alice, "before").await.unwrap();
    let lag = std::sync::Arc::clone(db.store.fan_out_lag());
    let ticket = lag.add();
    let publish = tokio::spawn({
        let (store, alice) = (db.store.clone(), alice.clone());
        async move { store.publish(topic.id, &alice, "held").await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !publish.is_finished(),
        "committed while a session was behind"
    );
    assert_eq!(
        db.messages_after(topic.id, 0, 10, None)
            .await
            .unwrap()
            .len(),
        1
    );
    lag.remove(ticket);
    let held = tokio::time::timeout(std::time::Duration::from_secs(5), publish)
        .await
        .expect("committed once the session caught up")
        .unwrap()
        .unwrap();
    assert_eq!(held.seq, 2);
}

/// Publishes queued together over channels with different counts (1, 2,
/// 7 and 130 in one go, more than one `INSERT` takes) are stored in as few
/// batches as the writer takes: each channel's seqs go on from where it
/// was, by exactly its own count, with no gap. (A count too small would
/// collide with a stored seq, and the batch would be retried one publish
/// at a time.) What each publisher is told it stored, id included, is the
/// row that was stored.
async fn one_batch_over_many_channels_moves_each_by_its_own_count(db: &TestStore) {
    let alice = user(db, "alice").await;
    let mut topics = vec![];
    for name in ["one", "two", "seven", "thirty"] {
        let topic = db
            .create_topic(&alice, &topic_name(name), false)
            .await
            .unwrap();
        // A head start, so a reservation that ignored where a channel was
        // would collide with what is stored.
        db.publish(topic.id, &alice, "before").await.unwrap();
        topics.push(topic.id);
    }
    let counts = [1, 2, 7, 130];
    let mut publishes = vec![];
    for round in 0..130 {
        for (topic, count) in topics.iter().zip(counts) {
            if round < count {
                let (store, alice, topic) = (db.store.clone(), alice.clone(), *topic);
                publishes
                    .push(async move { store.publish(topic, &alice, &round.to_string()).await });
            }
        }
    }
    let told: Vec<StoredMessage> = futures_util::future::join_all(publishes)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for (topic, count) in topics.iter().zip(counts) {
        let stored = db.messages_after(*topic, 0, 1000, None).await.unwrap();
        for message in told.iter().filter(|m| m.channel_id == *topic) {
            let row = stored.iter().find(|row| row.id == message.id);
            assert_eq!(
                row.map(|row| (row.seq, &row.content)),
                Some((message.seq, &message.content)),
                "message {} as its publisher was told",
                message.id
            );
        }
        let seqs: Vec<i64> = stored.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, (1..=count + 1).collect::<Vec<i64>>(), "topic {topic}");
        let mut contents: Vec<i64> = stored[1..]
            .iter()
            .map(|m| m.content.parse().unwrap())
            .collect();
        contents.sort_unstable();
        assert_eq!(contents, (0..count).collect::<Vec<i64>>());
    }
}

/// A publish the database refuses (PostgreSQL keeps no NUL in text; the
/// service refuses it before it gets here, so this goes around the
/// service) fails alone: the rest of its batch, queued before and after it
/// in one go, is stored in queue order.
async fn a_refused_publish_does_not_fail_its_batch(db: &TestStore) {
    let alice = user(db, "alice").await;
    let topic = db
        .create_topic(&alice, &topic_name("mixed"), false)
        .await
        .unwrap();
    let mut receipts = Vec::new();
    for i in 0..101 {
        let content = if i == 50 {
            "bad\0".to_owned()
        } else {
            format!("m{i}")
        };
        receipts.push(
            db.queue_publish(topic.id, &alice, content, None)
                .await
                .unwrap(),
        );
    }
    let mut stored = Vec::new();
    for (i, receipt) in receipts.into_iter().enumerate() {
        match receipt.committed().await {
            Ok(message) => stored.push(message.content),
            Err(err) => assert_eq!(i, 50, "only the bad publish may fail: {err}"),
        }
    }
    let good: Vec<String> = (0..101)
        .filter(|&i| i != 50)
        .map(|i| format!("m{i}"))
        .collect();
    match db.url.starts_with("postgres") {
        true => assert_eq!(stored, good),
        false => assert_eq!(stored.len(), 101),
    }
    let kept: Vec<String> = db
        .messages_after(topic.id, 0, 1000, None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.content)
        .filter(|c| !c.contains('\0'))
        .collect();
    assert_eq!(kept, good, "stored in queue order");
}

/// A publish whose sender is gone (a foreign key both databases enforce)
/// fails its batch's first attempt mid-transaction, after seqs were
/// reserved. Nothing of that attempt may stay: the others are stored one
/// by one with consecutive seqs from 1, and later batches commit as usual.
async fn a_batch_that_fails_leaves_nothing_and_the_next_one_commits(db: &TestStore) {
    let alice = user(db, "alice").await;
    let topic = db
        .create_topic(&alice, &topic_name("mixed"), false)
        .await
        .unwrap();
    let ghost = Actor {
        id: 999_999,
        ..alice.clone()
    };
    let mut receipts = Vec::new();
    for i in 0..150 {
        let sender = if i == 120 { &ghost } else { &alice };
        receipts.push(
            db.queue_publish(topic.id, sender, format!("m{i}"), None)
                .await
                .unwrap(),
        );
    }
    let mut failed = Vec::new();
    for (i, receipt) in receipts.into_iter().enumerate() {
        if receipt.committed().await.is_err() {
            failed.push(i);
        }
    }
    assert_eq!(failed, vec![120], "only the ghost's publish fails");
    for i in 150..160 {
        db.publish(topic.id, &alice, &format!("m{i}"))
            .await
            .unwrap();
    }
    let kept = db.messages_after(topic.id, 0, 1000, None).await.unwrap();
    let expected: Vec<String> = (0..160)
        .filter(|&i| i != 120)
        .map(|i| format!("m{i}"))
        .collect();
    assert_eq!(
        kept.iter().map(|m| m.content.clone()).collect::<Vec<_>>(),
        expected
    );
    assert_eq!(
        kept.iter().map(|m| m.seq).collect::<Vec<_>>(),
        (1..=159).collect::<Vec<_>>(),
        "no seq reserved by the failed attempt is lost"
    );
}

/// Hundreds of publishes at once share commits: more than one insert's
/// worth per channel, two channels and a missing one in the same batch, and
/// contents that look like SQL, parameters or JSON.
async fn one_commit_of_many_channels_keeps_each_message_whole(db: &TestStore) {
    let alice = user(db, "alice").await;
    let mut topics = vec![];
    for name in ["left", "right"] {
        let topic = db
            .create_topic(&alice, &topic_name(name), false)
            .await
            .unwrap();
        topics.push(topic.id);
    }
    // Also what a batch's JSON encoding must carry through: escapes,
    // control characters, text that looks like an escape, astral planes.
    let tricky = [
        "'); DROP TABLE messages; --",
        "$1 ?2 :x",
        "ünï\"cödé\"",
        "",
        "back\\slash \\u0041 \\n\n\t\r\u{1}\u{1f}\u{7f}",
        "😀 𝄞 \u{2028}\u{2029} {\"i\": 0}",
    ];
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let (store, alice) = (db.store.clone(), alice.clone());
            let channel = if i % 50 == 49 { 999_999 } else { topics[i % 2] };
            let content = format!("{i}:{}", tricky[i % tricky.len()]);
            tokio::spawn(async move {
                let stored = store.publish(channel, &alice, &content).await;
                (channel, content, stored)
            })
        })
        .collect();
    let mut by_channel: std::collections::HashMap<i64, Vec<(i64, String)>> = Default::default();
    for task in tasks {
        let (channel, content, stored) = task.await.unwrap();
        if channel == 999_999 {
            assert!(matches!(stored, Err(StoreError::NotFound)), "{stored:?}");
            continue;
        }
        let stored = stored.unwrap();
        assert_eq!((stored.channel_id, &stored.content), (channel, &content));
        by_channel
            .entry(channel)
            .or_default()
            .push((stored.seq, content));
    }
    for channel in topics {
        let mut sent = by_channel.remove(&channel).unwrap();
        sent.sort();
        let kept: Vec<(i64, String)> = db
            .messages_after(channel, 0, 1000, None)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.seq, m.content))
            .collect();
        assert!(sent.len() > 100);
        assert_eq!(kept, sent);
        assert_eq!(
            kept.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
            (1..=sent.len() as i64).collect::<Vec<_>>()
        );
    }
}

async fn history_can_leave_out_the_readers_own_messages(db: &TestStore) {
    let alice = user(db, "alice").await;
    let bob = user(db, "bob").await;
    let topic = db
        .create_topic(&alice, &topic_name("chat"), false)
        .await
        .unwrap();
    db.publish(topic.id, &alice, "a1").await.unwrap();
    db.publish(topic.id, &bob, "b1").await.unwrap();
    db.publish(topic.id, &alice, "a2").await.unwrap();
    let for_bob = db
        .messages_after(topic.id, 0, 10, Some(bob.id))
        .await
        .unwrap();
    assert_eq!(for_bob.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 3]);
}

async fn joining_starts_delivery_after_the_last_message(db: &TestStore) {
    let alice = user(db, "alice").await;
    let bob = user(db, "bob").await;
    let topic = db
        .create_topic(&alice, &topic_name("news"), false)
        .await
        .unwrap();
    db.publish(topic.id, &alice, "before").await.unwrap();
    assert_eq!(
        db.join_topic(&bob, &topic, bob.id, "bob").await.unwrap(),
        Some(1)
    );
    assert_eq!(
        db.join_topic(&bob, &topic, bob.id, "bob").await.unwrap(),
        None,
        "already a member"
    );
    assert_eq!(db.delivered_seq(topic.id, bob.id).await.unwrap(), Some(1));
    let members: Vec<String> = db
        .members(topic.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.username)
        .collect();
    assert_eq!(members, ["alice", "bob"]);
    assert!(db.leave_topic(&bob, &topic, bob.id, "bob").await.unwrap());
    assert!(!db.leave_topic(&bob, &topic, bob.id, "bob").await.unwrap());
    assert!(!db.is_member(topic.id, bob.id).await.unwrap());
}

async fn direct_channels_are_symmetric_and_named_by_peer(db: &TestStore) {
    let alice = user(db, "alice").await;
    let bob = user(db, "bob").await;
    assert_eq!(
        db.find_direct_channel(alice.id, bob.id).await.unwrap(),
        None
    );
    let ab = db.direct_channel(alice.id, bob.id).await.unwrap();
    assert_eq!(db.direct_channel(bob.id, alice.id).await.unwrap(), ab);
    assert_eq!(
        db.find_direct_channel(bob.id, alice.id).await.unwrap(),
        Some(ab)
    );
    db.publish(ab, &alice, "hi").await.unwrap();
    let bobs = memberships(db, bob.id).await;
    assert_eq!(bobs.len(), 1);
    assert_eq!(
        bobs[0].kind,
        ChannelKind::Direct {
            peer: "alice".into()
        }
    );
    assert_eq!(
        (bobs[0].label(), bobs[0].delivered_seq),
        ("@alice".to_string(), 0)
    );
}

async fn cursors_only_move_forward(db: &TestStore) {
    let alice = user(db, "alice").await;
    let topic = db
        .create_topic(&alice, &topic_name("news"), false)
        .await
        .unwrap();
    let cursor = Cursor::Channel {
        channel_id: topic.id,
        user_id: alice.id,
    };
    db.advance_cursors(&[(cursor, 7)]).await.unwrap();
    db.advance_cursors(&[(cursor, 3)]).await.unwrap();
    assert_eq!(db.delivered_seq(topic.id, alice.id).await.unwrap(), Some(7));
    let topics = memberships(db, alice.id).await;
    assert_eq!(
        (topics[0].label(), topics[0].delivered_seq),
        ("news".to_string(), 7)
    );
}

/// More cursors than one statement takes, of both kinds, some of them
/// behind where they already are.
async fn a_flush_of_many_cursors_moves_each_forward_only(db: &TestStore) {
    let root = admin(db, "root").await;
    let alice = user(db, "alice").await;
    let mut channels = vec![];
    for i in 0..700 {
        let topic = db
            .create_topic(&alice, &topic_name(&format!("t{i}")), false)
            .await
            .unwrap();
        channels.push(topic.id);
    }
    let mut subs = vec![];
    for i in 0..3 {
        let tag = db.create_tag(&root, &format!("tag{i}")).await.unwrap();
        subs.push(db.subscribe(&alice, alice.id, tag.id).await.unwrap().id);
    }
    let channel = |channel_id| Cursor::Channel {
        channel_id,
        user_id: alice.id,
    };
    db.advance_cursors(&[
        (channel(channels[0]), 50),
        (Cursor::Subscription { id: subs[0] }, 50),
    ])
    .await
    .unwrap();
    let mut flush: Vec<(Cursor, i64)> = channels
        .iter()
        .enumerate()
        .map(|(i, &id)| (channel(id), i as i64 + 1))
        .collect();
    flush.extend(subs.iter().map(|&id| (Cursor::Subscription { id }, 9)));
    db.advance_cursors(&flush).await.unwrap();
    assert_eq!(
        db.delivered_seq(channels[0], alice.id).await.unwrap(),
        Some(50)
    );
    for (i, &id) in channels.iter().enumerate().skip(1) {
        assert_eq!(
            db.delivered_seq(id, alice.id).await.unwrap(),
            Some(i as i64 + 1)
        );
    }
    let seqs: Vec<i64> = db
        .tag_subscriptions(alice.id)
        .await
        .unwrap()
        .iter()
        .map(|s| s.delivered_seq)
        .collect();
    assert_eq!(seqs.iter().filter(|&&s| s == 50).count(), 1);
    assert_eq!(seqs.iter().filter(|&&s| s == 9).count(), 2);
}

async fn deleting_a_topic_frees_its_name_and_messages(db: &TestStore) {
    let alice = user(db, "alice").await;
    let topic = db
        .create_topic(&alice, &topic_name("gone"), false)
        .await
        .unwrap();
    db.publish(topic.id, &alice, "x").await.unwrap();
    db.delete_topic(&alice, &topic).await.unwrap();
    assert_eq!(db.topic("gone").await.unwrap(), None);
    assert!(
        db.messages_after(topic.id, 0, 10, None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(memberships(db, alice.id).await.is_empty());
    db.create_user(None, &Username::parse("gone").unwrap(), "h", false)
        .await
        .unwrap();
}

async fn inbox_holds_notifications_since_subscribing(db: &TestStore) {
    let root = admin(db, "root").await;
    let alice = user(db, "alice").await;
    let bob = user(db, "bob").await;
    let tag = db.create_tag(&root, "news").await.unwrap();
    db.create_notification(&root, tag.id, "before")
        .await
        .unwrap();
    db.subscribe(&alice, alice.id, tag.id).await.unwrap();
    let n = db
        .create_notification(&root, tag.id, "after")
        .await
        .unwrap();
    assert_eq!(n.seq, 2);
    let inbox = db.inbox_page(alice.id, None, page(1, 20)).await.unwrap();
    assert_eq!(inbox.count, 1);
    assert_eq!(
        (
            inbox.results[0].id,
            inbox.results[0].notification.message.as_str()
        ),
        (n.id, "after")
    );
    assert!(!inbox.results[0].is_read);
    assert_eq!(
        db.inbox_page(bob.id, None, page(1, 20))
            .await
            .unwrap()
            .count,
        0
    );
    assert_eq!(
        db.inbox_item(bob.id, n.id).await.unwrap(),
        None,
        "not bob's"
    );
}

async fn inbox_flags_and_filters(db: &TestStore) {
    let root = admin(db, "root").await;
    let alice = user(db, "alice").await;
    let tag = db.create_tag(&root, "news").await.unwrap();
    db.subscribe(&alice, alice.id, tag.id).await.unwrap();
    let mut ids = vec![];
    for i in 0..5 {
        ids.push(
            db.create_notification(&root, tag.id, &format!("n{i}"))
                .await
                .unwrap()
                .id,
        );
    }
    let newest_first = db.inbox_page(alice.id, None, page(1, 3)).await.unwrap();
    assert_eq!(
        newest_first
            .results
            .iter()
            .map(|i| i.id)
            .collect::<Vec<_>>(),
        [ids[4], ids[3], ids[2]]
    );
    let item = db.inbox_item(alice.id, ids[0]).await.unwrap().unwrap();
    let read = db
        .update_inbox_item(&alice, &item, Some(true), None)
        .await
        .unwrap();
    assert!(read.is_read);
    let item = db.inbox_item(alice.id, ids[1]).await.unwrap().unwrap();
    db.update_inbox_item(&alice, &item, None, Some(true))
        .await
        .unwrap();
    assert_eq!(
        db.inbox_item(alice.id, ids[1]).await.unwrap(),
        None,
        "deleted items are gone from view"
    );
    assert_eq!(
        db.inbox_page(alice.id, None, page(1, 20))
            .await
            .unwrap()
            .count,
        4
    );
    assert_eq!(
        db.inbox_page(alice.id, Some(true), page(1, 20))
            .await
            .unwrap()
            .count,
        3
    );
    let read_only = db
        .inbox_page(alice.id, Some(false), page(1, 20))
        .await
        .unwrap();
    assert_eq!(
        read_only.results.iter().map(|i| i.id).collect::<Vec<_>>(),
        [ids[0]]
    );
}

async fn read_all_is_a_watermark_that_explicit_marks_override(db: &TestStore) {
    let root = admin(db, "root").await;
    let alice = user(db, "alice").await;
    let tag = db.create_tag(&root, "news").await.unwrap();
    db.subscribe(&alice, alice.id, tag.id).await.unwrap();
    let first = db.create_notification(&root, tag.id, "1").await.unwrap();
    let second = db.create_notification(&root, tag.id, "2").await.unwrap();
    assert_eq!(db.read_all(&alice).await.unwrap(), (2, second.id));
    assert_eq!(db.read_all(&alice).await.unwrap(), (0, second.id));
    let item = db.inbox_item(alice.id, first.id).await.unwrap().unwrap();
    assert!(item.is_read);
    db.update_inbox_item(&alice, &item, Some(false), None)
        .await
        .unwrap();
    assert!(
        !db.inbox_item(alice.id, first.id)
            .await
            .unwrap()
            .unwrap()
            .is_read
    );
    db.create_notification(&root, tag.id, "3").await.unwrap();
    assert_eq!(
        db.inbox_page(alice.id, Some(true), page(1, 20))
            .await
            .unwrap()
            .count,
        2
    );
}

async fn ended_subscriptions_keep_what_they_brought(db: &TestStore) {
    let root = admin(db, "root").await;
    let alice = user(db, "alice").await;
    let tag = db.create_tag(&root, "news").await.unwrap();
    let sub = db.subscribe(&alice, alice.id, tag.id).await.unwrap();
    db.create_notification(&root, tag.id, "kept").await.unwrap();
    db.end_subscription(&alice, &sub).await.unwrap();
    db.create_notification(&root, tag.id, "missed")
        .await
        .unwrap();
    let inbox = db.inbox_page(alice.id, None, page(1, 20)).await.unwrap();
    assert_eq!(
        inbox
            .results
            .iter()
            .map(|i| i.notification.message.as_str())
            .collect::<Vec<_>>(),
        ["kept"]
    );
    assert!(db.subscriptions(Some(alice.id)).await.unwrap().is_empty());
    let again = db.subscribe(&alice, alice.id, tag.id).await.unwrap();
    assert_ne!(again.id, sub.id);
    db.create_notification(&root, tag.id, "new").await.unwrap();
    assert_eq!(
        db.inbox_page(alice.id, None, page(1, 20))
            .await
            .unwrap()
            .count,
        2
    );
}

async fn notification_backlog_follows_the_subscription_cursor(db: &TestStore) {
    let root = admin(db, "root").await;
    let alice = user(db, "alice").await;
    let tag = db.create_tag(&root, "news").await.unwrap();
    let sub = db.subscribe(&alice, alice.id, tag.id).await.unwrap();
    for i in 0..3 {
        db.create_notification(&root, tag.id, &i.to_string())
            .await
            .unwrap();
    }
    db.advance_cursors(&[(Cursor::Subscription { id: sub.id }, 1)])
        .await
        .unwrap();
    let subs = db.tag_subscriptions(alice.id).await.unwrap();
    assert_eq!((subs[0].tag_id, subs[0].delivered_seq), (tag.id, 1));
    let backlog = db
        .notifications_after(alice.id, tag.id, 1, 100)
        .await
        .unwrap();
    assert_eq!(
        backlog
            .iter()
            .map(|i| i.notification.seq)
            .collect::<Vec<_>>(),
        [2, 3]
    );
}

async fn audit_records_old_and_new_values(db: &TestStore) {
    let root = admin(db, "root").await;
    let tag = db.create_tag(&root, "news").await.unwrap();
    db.subscribe(&root, root.id, tag.id).await.unwrap();
    let n = db
        .create_notification(&root, tag.id, "hello")
        .await
        .unwrap();
    let item = db.inbox_item(root.id, n.id).await.unwrap().unwrap();
    db.update_inbox_item(&root, &item, Some(true), None)
        .await
        .unwrap();
    let filter = AuditFilter {
        resource: Some("inbox_item".into()),
        actor: None,
    };
    let entries = db.audit_page(&filter, page(1, 10)).await.unwrap();
    assert_eq!(entries.count, 1);
    let entry = &entries.results[0];
    assert_eq!(
        (entry.actor.as_deref(), entry.action.as_str()),
        (Some("root"), "update")
    );
    assert_eq!(
        entry.changes,
        serde_json::json!({"is_read": {"old": false, "new": true}})
    );
    let all = db
        .audit_page(&AuditFilter::default(), page(1, 50))
        .await
        .unwrap();
    let resources: Vec<&str> = all
        .results
        .iter()
        .rev()
        .map(|e| e.resource.as_str())
        .collect();
    assert_eq!(
        resources,
        ["user", "tag", "subscription", "notification", "inbox_item"]
    );
    let by_actor = AuditFilter {
        resource: None,
        actor: Some("nobody".into()),
    };
    assert_eq!(
        db.audit_page(&by_actor, page(1, 10)).await.unwrap().count,
        0
    );
}

async fn tag_and_subscription_lifecycle(db: &TestStore) {
    let root = admin(db, "root").await;
    let alice = user(db, "alice").await;
    let tag = db.create_tag(&root, "news").await.unwrap();
    assert!(matches!(
        db.create_tag(&root, "news").await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(db.tags().await.unwrap(), vec![tag.clone()]);
    let sub = db.subscribe(&root, alice.id, tag.id).await.unwrap();
    assert_eq!((sub.user, sub.tag), (alice.id, tag.id));
    assert!(matches!(
        db.subscribe(&root, alice.id, tag.id).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        db.subscribe(&root, alice.id, 999).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(db.subscriptions(None).await.unwrap(), vec![sub.clone()]);
    assert_eq!(db.subscription(sub.id).await.unwrap(), Some(sub));
    let kept = db.create_notification(&root, tag.id, "kept").await.unwrap();
    db.delete_tag(&root, tag.id).await.unwrap();
    assert!(db.tags().await.unwrap().is_empty());
    assert!(db.subscriptions(None).await.unwrap().is_empty());
    assert!(matches!(
        db.delete_tag(&root, tag.id).await,
        Err(StoreError::NotFound)
    ));
    // What the tag brought stays in the inbox; it takes nothing new.
    let inbox = db.inbox_page(alice.id, None, page(1, 20)).await.unwrap();
    assert_eq!(inbox.count, 1);
    assert_eq!(inbox.results[0].notification.id, kept.id);
    assert!(matches!(
        db.create_notification(&root, tag.id, "late").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        db.subscribe(&root, alice.id, tag.id).await,
        Err(StoreError::NotFound)
    ));
    // Its name is free again, under a new id.
    let again = db.create_tag(&root, "news").await.unwrap();
    assert!(again.id > tag.id);
}

/// Ids are never handed out twice, not even the newest one's after it is
/// deleted (SQLite would, without AUTOINCREMENT).
async fn ids_are_never_reused(db: &TestStore) {
    let root = admin(db, "root").await;
    let first = db
        .create_topic(&root, &topic_name("first"), false)
        .await
        .unwrap();
    db.delete_topic(&root, &first).await.unwrap();
    let second = db
        .create_topic(&root, &topic_name("second"), false)
        .await
        .unwrap();
    assert!(second.id > first.id, "{} after {}", second.id, first.id);
    let tag = db.create_tag(&root, "t").await.unwrap();
    db.delete_tag(&root, tag.id).await.unwrap();
    assert!(db.create_tag(&root, "u").await.unwrap().id > tag.id);
    // So the audit log never names two topics by one id.
    let topics = AuditFilter {
        resource: Some("topic".into()),
        ..AuditFilter::default()
    };
    let audit = db.audit_page(&topics, page(1, 100)).await.unwrap();
    let created: Vec<&str> = audit
        .results
        .iter()
        .filter(|e| e.action == "create")
        .map(|e| e.resource_id.as_str())
        .collect();
    assert_eq!(created.len(), 2);
    assert_ne!(created[0], created[1]);
}

async fn inbox_counts_agree_with_pages_across_tags_and_states(db: &TestStore) {
    let root = admin(db, "root").await;
    let alice = user(db, "alice").await;
    let news = db.create_tag(&root, "news").await.unwrap();
    let ops = db.create_tag(&root, "ops").await.unwrap();
    db.subscribe(&alice, alice.id, news.id).await.unwrap();
    db.subscribe(&alice, alice.id, ops.id).await.unwrap();
    let mut ids = vec![];
    for i in 0..6 {
        let tag = if i % 2 == 0 { news.id } else { ops.id };
        ids.push(
            db.create_notification(&root, tag, &i.to_string())
                .await
                .unwrap()
                .id,
        );
    }
    let item = |id| async move { db.inbox_item(alice.id, id).await.unwrap().unwrap() };
    db.update_inbox_item(&alice, &item(ids[0]).await, None, Some(true))
        .await
        .unwrap();
    db.read_all(&alice).await.unwrap();
    db.update_inbox_item(&alice, &item(ids[1]).await, Some(false), None)
        .await
        .unwrap();
    let late = db
        .create_notification(&root, ops.id, "late")
        .await
        .unwrap()
        .id;
    for (filter, expected) in [
        (None, vec![late, ids[5], ids[4], ids[3], ids[2], ids[1]]),
        (Some(true), vec![late, ids[1]]),
        (Some(false), vec![ids[5], ids[4], ids[3], ids[2]]),
    ] {
        let all = db.inbox_page(alice.id, filter, page(1, 100)).await.unwrap();
        assert_eq!(all.count, expected.len() as i64, "{filter:?}");
        assert_eq!(
            all.results.iter().map(|i| i.id).collect::<Vec<_>>(),
            expected,
            "{filter:?}"
        );
        let second = db.inbox_page(alice.id, filter, page(2, 1)).await.unwrap();
        assert_eq!(
            second.results.iter().map(|i| i.id).collect::<Vec<_>>(),
            expected[1..2].to_vec()
        );
    }
}

/// Both peers writing first at the same moment, many times over: one
/// conversation, both of them members, whichever creation won.
async fn a_conversation_begun_from_both_sides_at_once_is_one(db: &TestStore) {
    for round in 0..10 {
        let a = user(db, &format!("a{round}")).await;
        let b = user(db, &format!("b{round}")).await;
        let attempts: Vec<_> = (0..8)
            .map(|i| {
                let store = db.store.clone();
                let (from, to) = if i % 2 == 0 {
                    (a.id, b.id)
                } else {
                    (b.id, a.id)
                };
                tokio::spawn(async move { store.direct_channel(from, to).await })
            })
            .collect();
        let mut ids = vec![];
        for attempt in attempts {
            ids.push(attempt.await.unwrap().unwrap());
        }
        assert!(ids.iter().all(|id| *id == ids[0]), "round {round}: {ids:?}");
        for member in [a.id, b.id] {
            let direct = memberships_in(db, member, ids[0]).await;
            assert_eq!(direct.len(), 1, "round {round}: {member} is a member once");
            assert_eq!(direct[0].delivered_seq, 0);
        }
    }
}

/// One batch of `(sender, peer name)`: a conversation that exists, new
/// ones (one asked from both sides), a name nobody has, a deleted user
/// and the sender's own name. Each new conversation is made once, with
/// both users as members from seq 0, and asking again answers the same.
async fn conversations_are_resolved_by_name_in_one_batch(db: &TestStore) {
    let admin = user(db, "admin").await;
    let alice = user(db, "alice").await;
    let bob = user(db, "bob").await;
    let carol = user(db, "carol").await;
    let dave = user(db, "dave").await;
    db.delete_account(&admin, dave.id).await.unwrap();
    let existing = db.direct_channel(alice.id, bob.id).await.unwrap();
    let asks: Vec<(i64, String)> = [
        (alice.id, "bob"),
        (alice.id, "carol"),
        (carol.id, "alice"),
        (bob.id, "carol"),
        (alice.id, "nobody"),
        (alice.id, "dave"),
        (alice.id, "alice"),
    ]
    .into_iter()
    .map(|(sender, name)| (sender, name.to_owned()))
    .collect();
    let found = db.direct_conversations(&asks).await.unwrap();
    let answer = |sender: i64, name: &str| found.get(&(sender, name.to_owned())).cloned();
    let (peer, channel) = answer(alice.id, "bob").unwrap();
    assert_eq!(
        (peer.id, peer.username.as_str(), channel),
        (bob.id, "bob", existing)
    );
    let (peer, alice_carol) = answer(alice.id, "carol").unwrap();
    assert_eq!(peer.id, carol.id);
    let (peer, carol_alice) = answer(carol.id, "alice").unwrap();
    assert_eq!((peer.id, carol_alice), (alice.id, alice_carol));
    let (peer, bob_carol) = answer(bob.id, "carol").unwrap();
    assert_eq!(peer.id, carol.id);
    assert_ne!(bob_carol, alice_carol);
    assert_eq!(
        found.len(),
        4,
        "nobody, a deleted user and oneself are left out"
    );
    for (channel, members) in [
        (alice_carol, [alice.id, carol.id]),
        (bob_carol, [bob.id, carol.id]),
    ] {
        assert_eq!(
            db.find_direct_channel(members[0], members[1])
                .await
                .unwrap(),
            Some(channel)
        );
        for member in members {
            let direct = memberships_in(db, member, channel).await;
            assert_eq!(direct.len(), 1, "{member} is a member of {channel} once");
            assert_eq!(direct[0].delivered_seq, 0);
        }
    }
    let again = db.direct_conversations(&asks).await.unwrap();
    assert_eq!(
        again
            .into_iter()
            .map(|(k, (u, c))| (k, u.id, c))
            .collect::<std::collections::BTreeSet<_>>(),
        found.into_iter().map(|(k, (u, c))| (k, u.id, c)).collect()
    );
}

/// Batches asking for the same new conversations from both sides at the
/// same moment (two processes' first messages): one conversation each.
async fn batches_resolving_the_same_conversations_at_once_make_each_once(db: &TestStore) {
    for round in 0..5 {
        let mut users = Vec::new();
        for i in 0..6 {
            users.push(user(db, &format!("r{round}u{i}")).await);
        }
        // Every ordered pair, split over four batches in different orders.
        let asks: Vec<(i64, String)> = users
            .iter()
            .flat_map(|a| {
                users
                    .iter()
                    .filter(move |b| b.id != a.id)
                    .map(move |b| (a.id, b.username.clone()))
            })
            .collect();
        let batches: Vec<_> = (0..4)
            .map(|n| {
                let store = db.store.clone();
                let mut mine: Vec<_> = asks.iter().skip(n).step_by(2).cloned().collect();
                if n % 2 == 1 {
                    mine.reverse();
                }
                tokio::spawn(async move { store.direct_conversations(&mine).await })
            })
            .collect();
        let mut ids = std::collections::HashMap::new();
        for batch in batches {
            for ((sender, _), (peer, channel)) in batch.await.unwrap().unwrap() {
                let pair = (sender.min(peer.id), sender.max(peer.id));
                assert_eq!(
                    *ids.entry(pair).or_insert(channel),
                    channel,
                    "round {round}: {pair:?}"
                );
            }
        }
        assert_eq!(ids.len(), 15, "round {round}: every pair resolved");
        for member in &users {
            for (&(a, b), channel) in &ids {
                let expected = usize::from(a == member.id || b == member.id);
                let count = memberships_in(db, member.id, *channel).await.len();
                assert_eq!(count, expected, "round {round}: {} in {channel}", member.id);
            }
        }
    }
}

/// A publish to a conversation one of whose users is gone reserves
/// nothing and stores nothing, in the same batch as publishes that land,
/// and a topic is untouched by the rule.
async fn a_conversation_whose_peer_is_deleted_takes_no_more_messages(db: &TestStore) {
    let admin = user(db, "admin").await;
    let alice = user(db, "alice").await;
    let bob = user(db, "bob").await;
    let carol = user(db, "carol").await;
    let news = db
        .create_topic(&alice, &topic_name("news"), false)
        .await
        .unwrap();
    let with_bob = db.direct_channel(alice.id, bob.id).await.unwrap();
    let with_carol = db.direct_channel(alice.id, carol.id).await.unwrap();
    db.publish(with_bob, &alice, "before").await.unwrap();
    db.delete_account(&admin, bob.id).await.unwrap();
    let receipts = vec![
        db.queue_publish(with_bob, &alice, "after".into(), None)
            .await
            .unwrap(),
        db.queue_publish(with_carol, &alice, "to carol".into(), None)
            .await
            .unwrap(),
        db.queue_publish(news.id, &alice, "to news".into(), None)
            .await
            .unwrap(),
    ];
    let mut outcomes = Vec::new();
    for receipt in receipts {
        outcomes.push(receipt.committed().await.map(|m| (m.content, m.seq)));
    }
    assert!(
        matches!(outcomes[0], Err(StoreError::NotFound)),
        "{:?}",
        outcomes[0]
    );
    assert_eq!(outcomes[1].as_ref().ok(), Some(&("to carol".to_owned(), 1)));
    assert_eq!(outcomes[2].as_ref().ok(), Some(&("to news".to_owned(), 1)));
    let kept: Vec<(String, i64)> = db
        .messages_after(with_bob, 0, 10, None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.content, m.seq))
        .collect();
    assert_eq!(kept, vec![("before".to_owned(), 1)]);
}
