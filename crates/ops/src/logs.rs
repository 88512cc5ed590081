//! Log output through `tracing`: human-readable by default, one JSON
//! object per line with `LOG_FORMAT=json`. `RUST_LOG` filters as usual.
//! Logs go to stderr so that command output (tokens, passwords) on stdout
//! stays clean for scripts.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

use crate::settings::LogFormat;

/// A line for the person or script that started the process (where it
/// listens, a generated password), on stdout: plain text, or with
/// `LOG_FORMAT=json` one JSON object like every other line.
pub fn banner(format: LogFormat, message: &str) {
    match format {
        LogFormat::Text => println!("{message}"),
        LogFormat::Json => println!(
            "{}",
            serde_json::json!({
                "timestamp": domain::time::rfc3339(domain::time::now_millis()),
                "level": "INFO",
                "fields": { "message": message },
                "target": "banner",
            })
        ),
    }
}

/// Installs the global subscriber; later calls (tests) are no-ops.
pub fn init(format: LogFormat) {
    let mut filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Caps, added only where RUST_LOG asks for more (a directive would
    // otherwise raise a quieter setting): the WebSocket library logs every
    // frame's payload at trace level, and message contents and tokens never
    // reach a log line; PostgreSQL's notices ("relation … already exists,
    // skipping" on every start) are not news.
    let verbosity = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    let caps = [
        (LevelFilter::DEBUG, "tungstenite=debug"),
        (LevelFilter::DEBUG, "tokio_tungstenite=debug"),
        (LevelFilter::WARN, "sqlx::postgres::notice=warn"),
    ];
    for (cap, directive) in caps {
        if verbosity > cap
            && let Ok(directive) = directive.parse()
        {
            filter = filter.add_directive(directive);
        }
    }
    // Colour only for a person at a terminal, never into a file.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
