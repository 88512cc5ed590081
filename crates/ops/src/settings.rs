//! Settings every process takes. Each is a flag with an environment
//! fallback; secrets never print (`--help` hides their values, `Debug`
//! shows `***`).

use std::fmt;
use std::time::Duration;

use clap::{Args, ValueEnum};

/// A secret string: usable, but never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Parses `90s`, `15m`, `1h`, `7d`.
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw).map_err(|e| e.to_string())
}

#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// The store: sqlite://PATH or postgres://USER@HOST/DB.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://tidings.db",
        hide_env_values = true
    )]
    pub database_url: String,

    /// Connections in the store's pool.
    #[arg(long, env = "TIDINGS_DB_POOL", default_value_t = 8)]
    pub db_pool: u32,

    /// HS256 signing secret, at least 32 bytes; api and gateways must share it.
    #[arg(long, env = "JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<Secret>,

    /// Lifetime of access tokens.
    #[arg(long, env = "TIDINGS_ACCESS_TTL", default_value = "1h", value_parser = parse_duration)]
    pub access_ttl: Duration,

    /// Lifetime of refresh tokens.
    #[arg(long, env = "TIDINGS_REFRESH_TTL", default_value = "7d", value_parser = parse_duration)]
    pub refresh_ttl: Duration,

    /// Redis for events between instances (redis://HOST:PORT); in-process when unset.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<Secret>,

    /// Prefix of the Redis channel names, so several deployments can share one Redis.
    #[arg(long, env = "TIDINGS_REDIS_PREFIX", default_value = "tidings")]
    pub redis_prefix: String,

    /// Largest message content and notification text, in bytes.
    #[arg(long, env = "TIDINGS_MAX_CONTENT_BYTES", default_value_t = 16 * 1024)]
    pub max_content_bytes: usize,

    /// How long a connection may take to send a request's head (a REST
    /// request, a WebSocket handshake, a health check), and how long one
    /// idle between requests is kept.
    #[arg(long, env = "TIDINGS_HEADER_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// Log output: text for people, json for collectors.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}
