//! Where the server is and how to prepare what a scenario needs.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use domain::auth::{JwtKeys, TokenType, hash_password};
use domain::model::{Actor, Topic, User};
use domain::names::{TopicName, Username};
use domain::store::Store;

#[derive(Debug, Clone, Args)]
pub struct TargetArgs {
    /// REST base URL.
    #[arg(
        long,
        env = "BENCH_API",
        default_value = "http://127.0.0.1:8000",
        global = true
    )]
    pub api: String,
    /// WebSocket base URL; repeat for several gateways (sockets are spread round-robin).
    #[arg(
        long = "ws",
        env = "BENCH_WS",
        default_value = "ws://127.0.0.1:5000",
        global = true,
        value_delimiter = ','
    )]
    pub ws: Vec<String>,
    /// The server's store, for setup.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://tidings.db",
        global = true
    )]
    pub database_url: String,
    /// The server's signing secret (default: the file beside the SQLite database).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<String>,
    /// Spread client sockets over this many source addresses 127.0.0.x.
    #[arg(long, default_value_t = 50, global = true)]
    pub source_addresses: u8,
    /// Where to write the latency plot (SVG), for scenarios that measure latency.
    #[arg(long, global = true)]
    pub plot: Option<std::path::PathBuf>,
}

static HASH: LazyLock<String> =
    LazyLock::new(|| hash_password("bench-password").unwrap_or_default());

/// A connected store, signing keys and a unique prefix for this run's names.
pub struct Target {
    pub args: TargetArgs,
    pub store: Store,
    pub keys: JwtKeys,
    pub run: String,
}

/// Where sockets go: no store needed, so runs against the references
/// work from any directory.
impl TargetArgs {
    /// The WebSocket URL of the `i`-th socket.
    pub fn ws_url(&self, i: usize, token: &str) -> String {
        let base = &self.ws[i % self.ws.len().max(1)];
        format!("{base}/ws?token={token}")
    }

    /// The source address of the `i`-th socket.
    pub fn source(&self, i: usize) -> std::net::IpAddr {
        let spread = usize::from(self.source_addresses.max(1));
        std::net::IpAddr::from([127, 0, 0, 1 + (i % spread) as u8])
    }
}

impl Target {
    pub async fn open(args: &TargetArgs) -> anyhow::Result<Arc<Self>> {
        let store = Store::connect_only(&args.database_url, 4)
            .await
            .context("opening the store")?;
        let secret = match &args.jwt_secret {
            Some(secret) => secret.clone(),
            None => {
                let db = domain::store::sqlite_file(&args.database_url)
                    .context("--jwt-secret is required")?;
                let mut name = db.file_name().unwrap_or_default().to_os_string();
                name.push(".secret");
                std::fs::read_to_string(db.with_file_name(name))
                    .context("reading the secret file")?
                    .trim()
                    .to_owned()
            }
        };
        let keys = JwtKeys::new(
            secret.as_bytes(),
            Duration::from_secs(24 * 3600),
            Duration::from_secs(3600),
        )?;
        let run = domain::auth::random_secret(6).to_lowercase();
        Ok(Arc::new(Self {
            args: args.clone(),
            store,
            keys,
            run,
        }))
    }

    /// `n` new users named `b<run><label><i>`, with access tokens.
    pub async fn users(
        &self,
        label: &str,
        n: usize,
        admin: bool,
    ) -> anyhow::Result<Vec<(Actor, String)>> {
        let mut users = Vec::with_capacity(n);
        for i in 0..n {
            let name = Username::parse(format!("b{}{label}{i}", self.run))?;
            let user: User = self.store.create_user(None, &name, &HASH, admin).await?;
            let token = self.keys.issue(&user, TokenType::Access)?;
            users.push((user.into(), token));
        }
        Ok(users)
    }

    /// A new public topic owned by `owner`, with `members` joined.
    pub async fn topic(
        &self,
        owner: &Actor,
        label: &str,
        members: &[(Actor, String)],
    ) -> anyhow::Result<Topic> {
        let name = TopicName::parse(format!("b{}{label}", self.run))?;
        let topic = self.store.create_topic(owner, &name, false).await?;
        for (member, _) in members {
            self.store
                .join_topic(owner, &topic, member.id, &member.username)
                .await?;
        }
        Ok(topic)
    }
}
