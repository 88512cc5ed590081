//! A publish whose commit reached PostgreSQL but whose answer never came
//! back. A proxy between the store and the database passes everything,
//! until the publish's statement goes by: then it either lets the
//! statement reach the database and swallows the answer (the commit
//! lands, the store's connection breaks), or drops the statement (nothing
//! lands). In both cases the store's answer must be the truth: the
//! message acknowledged with its seq when it was stored, an error when it
//! was not, never an error for a stored message.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use domain::model::Actor;
use domain::names::TopicName;
use domain::store::Store;
use domain::testing::{Flavor, TestStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to the next publish statement it sees.
const PASS: u8 = 0;
const SWALLOW_ANSWER: u8 = 1;
const DROP_STATEMENT: u8 = 2;

/// The trapped message's content, which its statement carries (the
/// statement's text goes only with a connection's first publish).
const MARK: &[u8] = b"trapped";

#[tokio::test]
async fn a_commit_whose_answer_was_lost_is_acknowledged_when_it_landed() {
    let Some((db, store, trap)) = through_trap().await else {
        return;
    };
    let (alice, topic) = alice_and_topic(&db).await;
    assert_eq!(store.publish(topic, &alice, "one").await.unwrap().seq, 1);
    trap.store(SWALLOW_ANSWER, Ordering::Release);
    let message = store.publish(topic, &alice, "trapped").await;
    assert_eq!(trap.load(Ordering::Acquire), PASS, "the trap was sprung");
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
    trap.store(DROP_STATEMENT, Ordering::Release);
    let refused = store.publish(topic, &alice, "trapped").await;
    assert_eq!(trap.load(Ordering::Acquire), PASS, "the trap was sprung");
    assert!(refused.is_err(), "not stored, so not acknowledged");
    assert_eq!(store.publish(topic, &alice, "three").await.unwrap().seq, 2);
    assert_eq!(contents(&db, topic).await, ["one", "three"]);
}

/// A fresh PostgreSQL database, a store reaching it through the trap
/// (its own writer), and the trap's switch.
async fn through_trap() -> Option<(TestStore, Store, Arc<AtomicU8>)> {
    let db = TestStore::fresh(Flavor::Postgres).await?;
    let (at, slash) = (db.url.rfind('@').unwrap(), db.url.rfind('/').unwrap());
    let upstream = db.url[at + 1..slash].to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let trap = Arc::new(AtomicU8::new(PASS));
    let switch = Arc::clone(&trap);
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(&upstream).await.unwrap();
            tokio::spawn(relay(client, server, Arc::clone(&switch)));
        }
    });
    let url = format!("{}127.0.0.1:{port}{}", &db.url[..=at], &db.url[slash..]);
    let store = Store::connect(&url, 2).await.unwrap();
    Some((db, store, trap))
}

/// Passes bytes both ways; springs the trap on the first client chunk
/// that carries the trapped message.
async fn relay(client: TcpStream, server: TcpStream, trap: Arc<AtomicU8>) {
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
        let sprung =
            buf[..n].windows(MARK.len()).any(|w| w == MARK) && trap.load(Ordering::Acquire) != PASS;
        if sprung && trap.swap(PASS, Ordering::AcqRel) == DROP_STATEMENT {
            break; // neither side hears of it
        }
        if server_write.write_all(&buf[..n]).await.is_err() {
            break;
        }
        if sprung {
            // The statement is on its way and the server answers into the
            // void: it commits, the client sees its connection end.
            let _ = cut_tx.send(true);
            tokio::time::sleep(Duration::from_secs(1)).await;
            break;
        }
    }
    answers.abort();
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
/// than ten minutes and keeps the rest.
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
    assert_eq!(db.forget_publish_outcomes().await.unwrap(), 1);
    assert_eq!(db.forget_publish_outcomes().await.unwrap(), 0);
}
