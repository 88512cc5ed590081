//! Log output through `tracing`: human-readable by default, one JSON
//! object per line with `LOG_FORMAT=json`. `RUST_LOG` filters as usual.
//! Logs go to stderr so that command output (tokens, passwords) on stdout
//! stays clean for scripts.

use tracing_subscriber::EnvFilter;

use crate::settings::LogFormat;

/// Installs the global subscriber; later calls (tests) are no-ops.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
