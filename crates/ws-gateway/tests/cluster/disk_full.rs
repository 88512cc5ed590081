//! A full disk under the all-in-one, under traffic: its SQLite files may
//! not grow past a limit (`RLIMIT_FSIZE`, so writes fail as they would on
//! a full disk) while publishers pipeline and listeners read; then the
//! limit goes, as when space is freed. Publishes are refused with
//! `internal` and not stored meanwhile, nothing acknowledged is lost,
//! listeners get everything stored once, in order, on the sockets they
//! had, and the log says so once a second, not once per failed commit.

use std::time::Duration;

use domain::store::Store;

use crate::processes::{lift_file_limit, one_at_a_time};
use crate::shutdown::{all_in_one_with, sqlite_with_users};
use crate::traffic::Traffic;

const PUBLISHERS: usize = 4;
/// Where the files stop growing: past what the process writes at start
/// (the database and its write-ahead log), reached within seconds of
/// traffic.
const FILE_LIMIT: u64 = 1024 * 1024;
/// How long writes keep failing before space is freed, and traffic after.
const FULL: Duration = Duration::from_secs(2);
const AFTER: Duration = Duration::from_secs(2);
/// What the writer logs for a batch that was not stored.
const FAILED: &str = "a publish batch failed";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_publishes_loses_nothing_and_recovers() {
    let _turn = one_at_a_time().await;
    let dir = tempfile::tempdir().unwrap();
    let (url, users) = sqlite_with_users(&dir).await;
    let log_path = dir.path().join("tidings.log");
    let unlimited = [("TIDINGS_PUBLISH_RATE", "1000000")];
    let (child, api, ws) = all_in_one_with(&url, &log_path, &unlimited, Some(FILE_LIMIT)).await;
    let log = || std::fs::read_to_string(&log_path).unwrap();
    let traffic = Traffic::start(&api, &[ws], &users, PUBLISHERS).await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !log().contains(FAILED) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the files never filled:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(FULL).await;
    lift_file_limit(&child);
    tokio::time::sleep(AFTER).await;

    let store = Store::connect(&url, 2).await.unwrap();
    let checked = traffic.finish(&store, &["internal"]).await;
    eprintln!(
        "{} publishes, {} refused, {} stored",
        checked.publishes(),
        checked.refused(),
        checked.last
    );
    assert!(checked.refused() > 0, "some publishes met the full disk");
    let log = log();
    assert!(!log.contains("panicked"), "{log}");
    // A full disk refuses nothing about the publishes themselves: each
    // failed batch is answered whole, not retried item by item (which
    // multiplied the failing commits and their log lines).
    assert!(!log.contains("one by one"), "{log}");
    let lines = log.lines().count();
    assert!(lines < 50, "{lines} lines logged:\n{log}");
}
