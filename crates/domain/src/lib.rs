//! The shared core of Tidings: everything the REST API and the WebSocket
//! gateway must agree on, and nothing that touches a socket.
//!
//! - [`names`]: usernames and topic names, parsed once at the edge.
//! - [`model`]: the records clients see (users, topics, messages, inbox).
//! - [`protocol`]: WebSocket client and server frames.
//! - [`events`]: what travels on the bus between api and gateways.
//! - [`auth`]: JWT issue/verify and password hashing.
//! - [`store`]: the one persistence layer, on SQLite or PostgreSQL.
//! - [`bus`]: event fan-out between processes (in-process or Redis).
//! - [`service`]: the operations and their authorization rules, shared by
//!   both surfaces.
#![forbid(unsafe_code)]

pub mod auth;
pub mod bus;
pub mod events;
pub mod fan_out_lag;
pub mod log_throttle;
pub mod metrics;
pub mod model;
pub mod names;
pub mod paging;
pub mod protocol;
pub mod service;
pub mod store;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod time;
