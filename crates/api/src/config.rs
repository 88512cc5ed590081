//! Settings of the REST API.

use std::net::SocketAddr;

use std::time::Duration;

use clap::Args;
use domain::model::Retention;
use ops::settings::{Secret, parse_duration};

#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// Where the REST API listens.
    #[arg(long, env = "TIDINGS_API_ADDR", default_value = "0.0.0.0:8000")]
    pub api_addr: SocketAddr,

    /// Let anyone create an account with POST /api/users/ (else admins only).
    #[arg(long, env = "TIDINGS_OPEN_REGISTRATION", default_value_t = false)]
    pub open_registration: bool,

    /// Take the client's address for login throttling from the last
    /// `X-Forwarded-For` entry (set this only behind a proxy that appends it, like the bundled nginx.conf).
    #[arg(long, env = "TIDINGS_TRUST_FORWARDED_FOR", default_value_t = false)]
    pub trust_forwarded_for: bool,

    /// Web origins allowed to call the API from a browser (CORS), comma-separated, e.g.
    /// `https://app.example.com`; `*` allows any. Off when unset.
    #[arg(long, env = "TIDINGS_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,

    /// Where the web console opens its sockets: a path on the console's own
    /// origin (`/ws`, behind the bundled nginx.conf), `:PORT/PATH` on the
    /// console's host name, or an absolute `ws(s)://` URL. Default: `/ws`
    /// (the all-in-one: its own gateway's port).
    #[arg(long, env = "TIDINGS_PUBLIC_WS_URL")]
    pub public_ws_url: Option<String>,

    /// Messages older than this are removed (e.g. `30d`), in every topic
    /// and direct conversation without a limit of its own. Default: kept.
    #[arg(long, env = "TIDINGS_RETENTION_MAX_AGE", value_parser = parse_duration)]
    pub retention_max_age: Option<Duration>,

    /// Messages kept per topic and direct conversation, newest first,
    /// where the topic has no limit of its own. Default: all.
    #[arg(long, env = "TIDINGS_RETENTION_MAX_COUNT", value_parser = clap::value_parser!(i64).range(1..))]
    pub retention_max_count: Option<i64>,

    /// How often this process removes what retention lets go.
    #[arg(long, env = "TIDINGS_PRUNE_EVERY", default_value = "60s", value_parser = parse_duration)]
    pub prune_every: Duration,

    /// Password of the `admin` created on an empty store (generated and printed once if unset).
    #[arg(long, env = "TIDINGS_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<Secret>,
}

/// What handlers need of the settings.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    pub open_registration: bool,
    pub trust_forwarded_for: bool,
    /// Origins allowed by CORS; empty: no CORS headers at all.
    pub cors_origins: Vec<String>,
    /// Where the console's sockets go (see [`ApiArgs::public_ws_url`]).
    pub public_ws_url: String,
    /// The server's default retention.
    pub retention: Retention,
    /// How often the pruner runs.
    pub prune_every: Duration,
}

impl From<&ApiArgs> for ApiConfig {
    fn from(args: &ApiArgs) -> Self {
        Self {
            open_registration: args.open_registration,
            trust_forwarded_for: args.trust_forwarded_for,
            cors_origins: args.cors_origins.clone(),
            public_ws_url: args
                .public_ws_url
                .clone()
                .unwrap_or_else(|| "/ws".to_owned()),
            retention: Retention {
                max_age_secs: args
                    .retention_max_age
                    .map(|age| i64::try_from(age.as_secs().max(1)).unwrap_or(i64::MAX)),
                max_count: args.retention_max_count,
            },
            prune_every: args.prune_every.max(Duration::from_millis(100)),
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            open_registration: false,
            trust_forwarded_for: false,
            cors_origins: vec![],
            public_ws_url: "/ws".to_owned(),
            retention: Retention::default(),
            prune_every: Duration::from_secs(60),
        }
    }
}
