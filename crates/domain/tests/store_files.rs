//! The embedded store's files: private to their owner from the start.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[cfg(unix)]
#[tokio::test]
async fn a_new_sqlite_database_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let db = domain::testing::TestStore::sqlite().await;
    domain::testing::user(&db, "alice", false).await;
    let file = domain::store::sqlite_file(&db.url).unwrap();
    let dir = file.parent().unwrap().to_owned();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", path.display());
    }
}

/// A database made before ids were kept from reuse is migrated without
/// losing a row: rebuilding its tables must not cascade into their children.
#[tokio::test]
async fn upgrading_an_existing_sqlite_database_keeps_every_row() {
    use sqlx::Connection;
    let (_dir, url, mut conn) = database_before(3).await;
    for statement in [
        "INSERT INTO users (id, username, password_hash, created_at) VALUES (1, 'alice', 'h', 0), (2, 'bob', 'h', 0)",
        "INSERT INTO names (name) VALUES ('alice'), ('bob'), ('news')",
        "INSERT INTO channels (id, kind, name, owner_id, last_seq, created_at) VALUES (1, 'topic', 'news', 1, 2, 0)",
        "INSERT INTO memberships (channel_id, user_id, joined_at, delivered_seq) VALUES (1, 1, 0, 2), (1, 2, 0, 1)",
        "INSERT INTO messages (channel_id, seq, sender_id, content, created_at) VALUES (1, 1, 1, 'one', 0), (1, 2, 1, 'two', 0)",
        "INSERT INTO tags (id, name, last_seq, created_at) VALUES (1, 'alerts', 1, 0)",
        "INSERT INTO subscriptions (user_id, tag_id, start_seq, delivered_seq, created_at) VALUES (2, 1, 0, 0, 0)",
        "INSERT INTO notifications (id, tag_id, seq, message, created_at) VALUES (1, 1, 1, 'hi', 0)",
        "INSERT INTO inbox_state (user_id, notification_id, is_read, updated_at) VALUES (2, 1, 1, 0)",
        "INSERT INTO audit_log (created_at, actor, resource, resource_id, action, changes) VALUES (0, 'alice', 'topic', '1', 'create', '{}')",
    ] {
        sqlx::query(statement).execute(&mut conn).await.unwrap();
    }
    let tables = [
        "users",
        "channels",
        "memberships",
        "messages",
        "tags",
        "subscriptions",
        "notifications",
        "inbox_state",
        "audit_log",
    ];
    let mut before = Vec::new();
    for table in tables {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        before.push(n);
    }
    conn.close().await.unwrap();

    let store = domain::store::Store::connect(&url, 1).await.unwrap();
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    for (table, expected) in tables.iter().zip(before) {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, expected, "{table}");
    }
    let bob = store.session_snapshots(&[2]).await.unwrap()[&2]
        .memberships
        .clone();
    assert_eq!((bob.len(), bob[0].delivered_seq), (1, 1));
    let inbox = store
        .inbox_page(
            2,
            None,
            domain::paging::PageRequest::new(Some(1), Some(10), 10).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!((inbox.count, inbox.results[0].is_read), (1, true));
    let alice: domain::model::Actor = store.user_by_id(1).await.unwrap().unwrap().into();
    let news = store.topic("news").await.unwrap().unwrap();
    store.delete_topic(&alice, &news).await.unwrap();
    let name = domain::names::TopicName::parse("later").unwrap();
    assert!(store.create_topic(&alice, &name, false).await.unwrap().id > news.id);
}

/// Rebuilding `messages` (to check its keys at commit) keeps its
/// AUTOINCREMENT counter: ids of messages deleted before the upgrade are
/// not handed out again, though no row holds them any more.
#[tokio::test]
async fn upgrading_keeps_the_ids_of_deleted_messages_from_coming_back() {
    use sqlx::Connection;
    let (_dir, url, mut conn) = database_before(6).await;
    for statement in [
        "INSERT INTO users (id, username, password_hash, created_at) VALUES (1, 'alice', 'h', 0)",
        "INSERT INTO names (name) VALUES ('alice'), ('news')",
        "INSERT INTO channels (id, kind, name, owner_id, last_seq, created_at) VALUES (1, 'topic', 'news', 1, 3, 0)",
        "INSERT INTO messages (channel_id, seq, sender_id, content, created_at) VALUES (1, 1, 1, 'one', 0), (1, 2, 1, 'two', 0), (1, 3, 1, 'three', 0)",
        "DELETE FROM messages WHERE seq > 1",
    ] {
        sqlx::query(statement).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();

    let store = domain::store::Store::connect(&url, 1).await.unwrap();
    let alice: domain::model::Actor = store.user_by_id(1).await.unwrap().unwrap().into();
    let news = store.topic("news").await.unwrap().unwrap();
    let kept = store.messages_after(news.id, 0, 10, None).await.unwrap();
    assert_eq!(
        kept.iter().map(|m| (m.id, m.seq)).collect::<Vec<_>>(),
        [(1, 1)]
    );
    let next = store
        .queue_publish(news.id, &alice, "four".into(), None)
        .await
        .unwrap()
        .committed()
        .await
        .unwrap();
    assert_eq!((next.id, next.seq), (4, 4), "ids 2 and 3 stay unused");
}

/// Conversations of users deleted before conversations could be closed
/// are closed by the upgrade: nothing more is stored in them, while one
/// whose users are both there takes messages as before.
#[tokio::test]
async fn upgrading_closes_the_conversations_of_users_deleted_before() {
    use sqlx::Connection;
    let (_dir, url, mut conn) = database_before(7).await;
    for statement in [
        "INSERT INTO users (id, username, password_hash, created_at) VALUES (1, 'alice', 'h', 0), (2, 'bob', 'h', 0), (3, 'carol', 'h', 0)",
        "INSERT INTO names (name) VALUES ('alice'), ('bob'), ('carol')",
        "INSERT INTO channels (id, kind, direct_key, private, last_seq, created_at) VALUES (1, 'direct', '1:2', 1, 1, 0), (2, 'direct', '1:3', 1, 0, 0)",
        "INSERT INTO memberships (channel_id, user_id, joined_at, delivered_seq) VALUES (1, 1, 0, 1), (2, 1, 0, 0), (2, 3, 0, 0)",
        "INSERT INTO messages (channel_id, seq, sender_id, content, created_at) VALUES (1, 1, 1, 'before', 0)",
        "UPDATE users SET deleted_at = 1, is_active = 0 WHERE id = 2",
    ] {
        sqlx::query(statement).execute(&mut conn).await.unwrap();
    }
    conn.close().await.unwrap();

    let store = domain::store::Store::connect(&url, 1).await.unwrap();
    let alice: domain::model::Actor = store.user_by_id(1).await.unwrap().unwrap().into();
    let to = |channel_id: i64, content: &str| {
        let (store, alice, content) = (store.clone(), alice.clone(), content.to_owned());
        async move {
            store
                .queue_publish(channel_id, &alice, content, None)
                .await
                .unwrap()
                .committed()
                .await
        }
    };
    assert!(matches!(
        to(1, "to bob").await,
        Err(domain::store::StoreError::NotFound)
    ));
    assert_eq!(to(2, "to carol").await.unwrap().seq, 1);
    let kept = store.messages_after(1, 0, 10, None).await.unwrap();
    assert_eq!(
        kept.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(),
        ["before"]
    );
}

/// A SQLite database in a temporary directory, migrated up to (not
/// including) `version`, with foreign keys on as the server has them.
async fn database_before(version: i64) -> (tempfile::TempDir, String, sqlx::SqliteConnection) {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("old.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("PRAGMA foreign_keys = ON")
        .execute(&mut conn)
        .await
        .unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../migrations/sqlite");
    let mut migrator = sqlx::migrate::Migrator::new(path).await.unwrap();
    migrator.migrations = migrator
        .migrations
        .iter()
        .filter(|m| m.version < version)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    migrator.run(&mut conn).await.unwrap();
    (dir, url, conn)
}
