//! The gateway's metrics, registered once so the hot path only bumps
//! atomics instead of looking names up per frame.

use metrics::{
    Counter, Gauge, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram,
    gauge, histogram,
};

/// Adds HELP text for every family the gateway records.
pub fn describe() {
    describe_gauge!("ws_connections", "Open WebSocket connections.");
    describe_counter!(
        "ws_frames_in_total",
        "Client frames received, by action (invalid: could not be parsed)."
    );
    describe_counter!(
        "ws_frames_out_total",
        "Frames sent to clients, by type (message, notification, other)."
    );
    describe_counter!(
        "ws_deliveries_total",
        "Messages and notifications written to sockets (every one; the latency histogram samples)."
    );
    describe_histogram!(
        "ws_delivery_latency_seconds",
        Unit::Seconds,
        "From commit to the socket write, sampled: a session's first flush with deliveries, then one in 16."
    );
    describe_counter!(
        "ws_slow_consumer_closes_total",
        "Sockets closed with 4008 because the client fell too far behind."
    );
    describe_counter!(
        "ws_hold_allowance_spent_total",
        "Times a session fell far behind and held no publisher back, its user having spent its allowance of holding (a client slower than its topics)."
    );
    // Counted where sessions keep their queues, rarely: registered here,
    // so the family is scraped at 0 before the first.
    counter!("ws_hold_allowance_spent_total").increment(0);
    describe_counter!(
        "ws_resyncs_total",
        "Times the hub told every session to read what it missed from the store."
    );
    describe_counter!(
        "ws_reordered_total",
        "Live events that reached this gateway ahead of an earlier seq of their stream and waited for it (another process published late)."
    );
    describe_counter!(
        "ws_reorder_timeouts_total",
        "Gaps the gateway stopped waiting for after 200 ms (a seq lost or very late): what waited went on, and sessions read the gap from the store."
    );
    describe_counter!(
        "ws_catch_up_pages_total",
        "Pages of missed messages sessions read to catch up, by source (recent: the hub's record of the topic; store: the database, counted when it found any)."
    );
    describe_gauge!(
        "ws_recent_bytes",
        "Memory held by the records of recent topic messages that catch-ups read."
    );
    describe_counter!(
        "ws_handshakes_total",
        "WebSocket handshakes, by outcome (ok, unauthorized, too_many, unavailable)."
    );
}

/// Counts one client frame by its action.
pub fn frame_in(action: &'static str) {
    counter!("ws_frames_in_total", "type" => action).increment(1);
}

#[derive(Clone)]
pub struct GatewayMetrics {
    pub connections: Gauge,
    pub frames_out_messages: Counter,
    pub frames_out_notifications: Counter,
    pub frames_out_other: Counter,
    pub deliveries: Counter,
    pub delivery_latency: Histogram,
    pub slow_consumers: Counter,
    pub resyncs: Counter,
    pub reordered: Counter,
    pub reorder_timeouts: Counter,
    pub catch_up_recent: Counter,
    pub catch_up_store: Counter,
    pub recent_bytes: Gauge,
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self {
            connections: gauge!("ws_connections"),
            frames_out_messages: counter!("ws_frames_out_total", "type" => "message"),
            frames_out_notifications: counter!("ws_frames_out_total", "type" => "notification"),
            frames_out_other: counter!("ws_frames_out_total", "type" => "other"),
            deliveries: counter!("ws_deliveries_total"),
            delivery_latency: histogram!("ws_delivery_latency_seconds"),
            slow_consumers: counter!("ws_slow_consumer_closes_total"),
            resyncs: counter!("ws_resyncs_total"),
            reordered: counter!("ws_reordered_total"),
            reorder_timeouts: counter!("ws_reorder_timeouts_total"),
            catch_up_recent: counter!("ws_catch_up_pages_total", "source" => "recent"),
            catch_up_store: counter!("ws_catch_up_pages_total", "source" => "store"),
            recent_bytes: gauge!("ws_recent_bytes"),
        }
    }
}
