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
