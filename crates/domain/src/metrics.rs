//! The core's metrics: what is stored and committed, the bus, logins and
//! token checks. Names and HELP live here, once; hot paths hold handles
//! registered up front rather than looking names up per event.

use metrics::{
    Counter, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram,
    histogram,
};

/// Adds HELP text for every family the core records.
pub fn describe() {
    describe_counter!(
        "tidings_messages_stored_total",
        "Messages committed to the store (topic and direct)."
    );
    describe_counter!(
        "tidings_notifications_stored_total",
        "Notifications created (each reaches every subscriber of its tag)."
    );
    describe_histogram!(
        "tidings_commit_batch_size",
        "Publishes written by one group commit."
    );
    describe_histogram!(
        "tidings_commit_duration_seconds",
        Unit::Seconds,
        "Time one group commit took, from the first write to the commit."
    );
    describe_histogram!(
        "tidings_commit_held_back_seconds",
        Unit::Seconds,
        "Time a group commit waited for sessions far behind to catch up (publisher backpressure)."
    );
    describe_counter!(
        "tidings_bus_published_total",
        "Events this process published on the bus."
    );
    describe_counter!(
        "tidings_bus_publish_failures_total",
        "Bus publishes that failed (the events were delivered locally and gateways resync)."
    );
    describe_counter!(
        "tidings_bus_received_total",
        "Events this process received from the bus."
    );
    describe_counter!(
        "tidings_bus_reconnects_total",
        "Times the bus subscription was lost and made again."
    );
    describe_counter!(
        "tidings_bus_resyncs_total",
        "Resync requests received from the bus (each makes every session of a gateway read what it missed from the store)."
    );
    describe_gauge!(
        "tidings_db_pool_connections",
        "Read-pool connections to the store, by state (in_use, idle)."
    );
    describe_counter!(
        "tidings_logins_total",
        "Password logins, by outcome (ok, wrong_credentials, throttled)."
    );
    describe_counter!(
        "tidings_auth_failures_total",
        "Requests and handshakes refused for their token, by reason (missing, expired, invalid, wrong_type, unknown_user)."
    );
    describe_counter!(
        "tidings_messages_pruned_total",
        "Messages removed by retention."
    );
    // Counts show as 0 before the first event, so alerts, rates and
    // dashboards have a series to work on.
    for family in [
        "tidings_messages_stored_total",
        "tidings_notifications_stored_total",
        "tidings_bus_publish_failures_total",
        "tidings_bus_reconnects_total",
        "tidings_bus_resyncs_total",
        "tidings_messages_pruned_total",
    ] {
        counter!(family).increment(0);
    }
}

/// Commit-path handles, registered once.
#[derive(Clone)]
pub(crate) struct CommitMetrics {
    pub stored: Counter,
    pub batch: Histogram,
    pub duration: Histogram,
    pub held_back: Histogram,
}

impl Default for CommitMetrics {
    fn default() -> Self {
        Self {
            stored: counter!("tidings_messages_stored_total"),
            batch: histogram!("tidings_commit_batch_size"),
            duration: histogram!("tidings_commit_duration_seconds"),
            held_back: histogram!("tidings_commit_held_back_seconds"),
        }
    }
}

/// Counts a refused token by why it was refused.
pub fn auth_failure(reason: &'static str) {
    counter!("tidings_auth_failures_total", "reason" => reason).increment(1);
}

/// Counts a password login by its outcome.
pub(crate) fn login(outcome: &'static str) {
    counter!("tidings_logins_total", "outcome" => outcome).increment(1);
}

/// Counts messages retention removed.
pub(crate) fn pruned(messages: u64) {
    counter!("tidings_messages_pruned_total").increment(messages);
}
