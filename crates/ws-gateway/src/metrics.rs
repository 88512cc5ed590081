//! The gateway's metrics, registered once so the hot path only bumps
//! atomics instead of looking names up per frame.

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};

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
        }
    }
}
