//! Gateway tests over real sockets, each on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

#[path = "../common/ws_client.rs"]
mod ws_client;

#[path = "../common/burst.rs"]
mod burst;

mod helpers;

mod credentials;
mod delivery;
mod errors;
mod handshake;
mod inbox;
mod limits;
mod order;
mod retention;
mod silence;
mod topics;
mod wscat;
