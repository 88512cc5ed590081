//! Scale-out over real processes: the `api` binary and two `ws-gateway`
//! binaries on PostgreSQL and Redis, and all of it behind a real nginx
//! using the project's `nginx.conf`. Needs `TIDINGS_TEST_DATABASE_URL` and
//! `TIDINGS_TEST_REDIS_URL` (required under CI, skipped elsewhere).
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[path = "../common/ws_client.rs"]
#[allow(dead_code)] // shared with the gateway tests, which use all of it
mod ws_client;

#[path = "../common/burst.rs"]
mod burst;

mod cluster;
mod compose;
mod credentials;
mod cut_proxy;
mod own_redis;
mod processes;
mod traffic;

mod crash;
mod database_cut;
mod delivery;
mod disk_full;
mod faults;
mod frozen;
mod logs;
mod metrics;
mod nginx;
mod outages;
mod shutdown;
