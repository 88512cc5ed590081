//! The process-wide Prometheus recorder and the families every process
//! has: HTTP requests, the process itself (RSS, file descriptors, CPU),
//! the store's pool. Each family gets HELP text where it is defined.

use std::sync::OnceLock;

use domain::service::Core;
use metrics::{Unit, describe_counter, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds, from 50 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 10.0,
];

/// Buckets for counts of things (a commit's publishes).
const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0,
];

struct Installed {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

fn installed() -> &'static Installed {
    static INSTALLED: OnceLock<Installed> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_size".into()), SIZE_BUCKETS))
            .unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        // Fails only if another recorder was installed first; the handle
        // then renders this (empty) one, which is still valid output.
        let _ = metrics::set_global_recorder(recorder);
        // HELP goes to the recorder installed above: describe after it.
        let process = metrics_process::Collector::default();
        process.describe();
        describe();
        domain::metrics::describe();
        Installed { handle, process }
    })
}

/// Installs the recorder (once) and describes the shared families; call
/// before recording anything.
pub fn install() {
    installed();
}

fn describe() {
    describe_counter!(
        "http_requests_total",
        "HTTP requests answered, by method, route template and status."
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer an HTTP request, by method, route template and status."
    );
}

/// The text exposition, after sampling the process and the pool.
pub fn render(core: &Core) -> String {
    let installed = installed();
    installed.process.collect();
    let (in_use, idle) = core.pool_connections();
    gauge!("tidings_db_pool_connections", "state" => "in_use").set(in_use as f64);
    gauge!("tidings_db_pool_connections", "state" => "idle").set(idle as f64);
    installed.handle.render()
}
