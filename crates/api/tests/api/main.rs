//! REST API tests over real HTTP, each on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used)] // a failed unwrap is a failed test

mod helpers;

mod accounts;
mod credentials;
mod docs;
mod hostile;
mod inbox;
mod openapi;
mod topics;
