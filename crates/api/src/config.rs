//! Settings of the REST API.

use std::net::SocketAddr;

use clap::Args;
use ops::settings::Secret;

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

    /// Password of the `admin` created on an empty store (generated and printed once if unset).
    #[arg(long, env = "TIDINGS_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<Secret>,
}

/// What handlers need of the settings.
#[derive(Debug, Clone, Default)]
pub struct ApiConfig {
    pub open_registration: bool,
    pub trust_forwarded_for: bool,
    /// Origins allowed by CORS; empty: no CORS headers at all.
    pub cors_origins: Vec<String>,
}

impl From<&ApiArgs> for ApiConfig {
    fn from(args: &ApiArgs) -> Self {
        Self {
            open_registration: args.open_registration,
            trust_forwarded_for: args.trust_forwarded_for,
            cors_origins: args.cors_origins.clone(),
        }
    }
}
