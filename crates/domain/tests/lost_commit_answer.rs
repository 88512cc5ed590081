//! A commit that reached PostgreSQL but whose answer never came back. A
//! proxy between the store and the database passes everything, until the
//! commit goes by (a publish's statement, a notification's `COMMIT`):
//! then it either lets it reach the database and swallows the answer (the
//! commit lands, the store's connection breaks), or drops it (nothing
//! lands). In both cases the store's answer must be the truth: the
//! message or notification returned when it was stored, an error when it
//! was not, never an error for something stored, which a caller would
//! send again.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::model::{Actor, Retention};
use domain::names::TopicName;
use domain::store::Store;
use domain::testing::{Flavor, TestStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to the next client chunk that carries its mark.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Trap {
    /// Lets it reach the database, and the client never hears back.
    SwallowAnswer,
    /// Neither side hears of it.
    DropIt,
}

/// The trap, once armed: what it does and the bytes that spring it.
type Armed = Arc<Mutex<Option<(Trap, &'static [u8])>>>;

/// The trapped message's content, which its statement carries (the
/// statement's text goes only with a connection's first publish).
const TRAPPED: &[u8] = b"trapped";
/// A transaction's end, as sqlx sends it.
const COMMIT: &[u8] = b"COMMIT";

#[tokio::test]
async fn a_commit_whose_answer_was_lost_is_acknowledged_when_it_landed() {
    let Some((db, store, trap)) = through_trap().await else {
        return;
    };
    let (alice, topic) = alice_and_topic(&db).await;
    assert_eq!(store.publish(topic, &alice, "one").await.unwrap().seq, 1);
    arm(&trap, Trap::SwallowAnswer, TRAPPED);
    let message = store.publish(topic, &alice, "trapped").await;
    assert!(sprung(&trap), "the trap was sprung");
    let message = message.expect("stored, so acknowledged");
    assert_eq!((message.seq, message.content.as_str()), (2, "trapped"));
    assert_eq!(
        contents(&db, topic).await,
        ["one", "trapped"],
        "stored once, with the seq acknowledged"
    );
    assert_eq!(store.publish(topic, &alice, "three").await.unwrap().seq, 3);
}

#[tokio::test]
async fn a_commit_that_never_reached_the_database_is_refused() {
    let Some((db, store, trap)) = through_trap().await else {
        return;
    };
    let (alice, topic) = alice_and_topic(&db).await;
    assert_eq!(store.publish(topic, &alice, "one").await.unwrap().seq, 1);
    arm(&trap, Trap::DropIt, TRAPPED);
    let refused = store.publish(topic, &alice, "trapped").await;
    assert!(sprung(&trap), "the trap was sprung");
    assert!(refused.is_err(), "not stored, so not acknowledged");
    assert_eq!(store.publish(topic, &alice, "three").await.unwrap().seq, 2);
    assert_eq!(contents(&db, topic).await, ["one", "three"]);
}

#[tokio::test]
async fn a_notification_whose_commit_answer_was_lost_is_returned_when_it_landed() {
    let Some((db, store, trap)) = through_trap().await else {
        return;
    };
    let (admin, reader, tag) = tag_with_reader(&db).await;
    store.create_notification(&admin, tag, "one").await.unwrap();
    arm(&trap, Trap::SwallowAnswer, COMMIT);
    let created = store.create_notification(&admin, tag, "two").await;
    assert!(sprung(&trap), "the trap was sprung");
    assert_eq!(created.expect("stored, so returned").message, "two");
    assert_eq!(inbox(&db, reader, tag).await, ["one", "two"], "stored once");
}

#[tokio::test]
async fn a_notification_whose_commit_never_reached_the_database_is_refused() {
    let Some((db, store, trap)) = through_trap().await else {
        return;
    };
    let (admin, reader, tag) = tag_with_reader(&db).await;
    store.create_notification(&admin, tag, "one").await.unwrap();
    arm(&trap, Trap::DropIt, COMMIT);
    let refused = store.create_notification(&admin, tag, "two").await;
    assert!(sprung(&trap), "the trap was sprung");
    assert!(refused.is_err(), "not stored, so refused");
    store.create_notification(&admin, tag, "two").await.unwrap();
    assert_eq!(inbox(&db, reader, tag).await, ["one", "two"]);
}

fn arm(trap: &Armed, what: Trap, mark: &'static [u8]) {
    *trap.lock().unwrap() = Some((what, mark));
}

fn sprung(trap: &Armed) -> bool {
    trap.lock().unwrap().is_none()
}

/// A fresh PostgreSQL database, a store reaching it through the trap
/// (its own writer), and the trap.
async fn through_trap() -> Option<(TestStore, Store, Armed)> {
    let db = TestStore::fresh(Flavor::Postgres).await?;
    let (at, slash) = (db.url.rfind('@').unwrap(), db.url.rfind('/').unwrap());
    let upstream = db.url[at + 1..slash].to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let trap = Armed::default();
    let armed = Arc::clone(&trap);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(&upstream).await.unwrap();
            tokio::spawn(relay(client, server, Arc::clone(&armed)));
        }
    });
    let url = format!("{}127.0.0.1:{port}{}", &db.url[..=at], &db.url[slash..]);
    let store = Store::connect(&url, 2).await.unwrap();
    Some((db, store, trap))
}

/// Passes bytes both ways; springs the trap, if armed, on the first
/// client chunk that carries its mark.
async fn relay(client: TcpStream, server: TcpStream, trap: Armed) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let (cut_tx, mut cut_rx) = tokio::sync::watch::channel(false);
    let answers = tokio::spawn(async move {
        let mut buf = vec![0; 64 * 1024];
        loop {
            tokio::select! {
                read = server_read.read(&mut buf) => match read {
                    Ok(0) | Err(_) => return,
                    Ok(n) => if client_write.write_all(&buf[..n]).await.is_err() { return },
                },
                // The client's side goes; the server's answer with it.
                _ = cut_rx.changed() => return,
            }
        }
    });
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match client_read.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let sprung = {
            let mut armed = trap.lock().unwrap();
            match *armed {
                Some((what, mark)) if buf[..n].windows(mark.len()).any(|w| w == mark) => {
                    *armed = None;
                    Some(what)
                }
                _ => None,
            }
        };
        if sprung == Some(Trap::DropIt) {
            break;
        }
        if server_write.write_all(&buf[..n]).await.is_err() {
            break;
        }
        if sprung == Some(Trap::SwallowAnswer) {
            // On its way, and the server answers into the void: it
            // commits, the client sees its connection end.
            let _ = cut_tx.send(true);
            tokio::time::sleep(Duration::from_secs(1)).await;
            break;
        }
    }
    answers.abort();
}

/// An admin, a user subscribed to a new tag, and the tag.
async fn tag_with_reader(db: &TestStore) -> (Actor, i64, i64) {
    let admin: Actor = domain::testing::user(db, "root", true).await.into();
    let reader = domain::testing::user(db, "reader", false).await;
    let tag = db.create_tag(&admin, "alerts").await.unwrap();
    db.subscribe(&admin, reader.id, tag.id).await.unwrap();
    (admin, reader.id, tag.id)
}

/// The tag's notifications in `user`'s inbox, oldest first.
async fn inbox(db: &TestStore, user: i64, tag: i64) -> Vec<String> {
    let items = db.notifications_after(user, tag, 0, 10).await.unwrap();
    items.into_iter().map(|i| i.notification.message).collect()
}

async fn alice_and_topic(db: &TestStore) -> (Actor, i64) {
    let alice: Actor = domain::testing::user(db, "alice", false).await.into();
    let topic = db
        .create_topic(&alice, &TopicName::parse("news").unwrap(), false)
        .await
        .unwrap();
    (alice, topic.id)
}

async fn contents(db: &TestStore, topic: i64) -> Vec<String> {
    let history = db.messages_after(topic, 0, 10, None).await.unwrap();
    history.into_iter().map(|m| m.content).collect()
}

/// Outcomes are needed for seconds: the pruner's pass removes those older
/// than ten minutes and keeps the rest, whatever the retention (none here).
#[tokio::test]
async fn old_commit_outcomes_are_forgotten() {
    let Some(db) = TestStore::fresh(Flavor::Postgres).await else {
        return;
    };
    let now = domain::time::now_millis();
    let eleven_minutes = 11 * 60 * 1000;
    db.execute_raw(&format!(
        "INSERT INTO publish_outcomes (token, created_at, outcome) VALUES \
         (1, {}, '[]'), (2, {now}, '[]')",
        now - eleven_minutes
    ))
    .await
    .unwrap();
    db.core()
        .prune(Retention::default(), &AtomicBool::new(false))
        .await
        .unwrap();
    // The pass took the old one and left the new one until it is old.
    assert_eq!(db.forget_publish_outcomes().await.unwrap(), 0);
    db.execute_raw(&format!(
        "UPDATE publish_outcomes SET created_at = created_at - {eleven_minutes}"
    ))
    .await
    .unwrap();
    assert_eq!(db.forget_publish_outcomes().await.unwrap(), 1);
}
