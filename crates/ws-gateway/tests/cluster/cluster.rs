//! An api and two gateways sharing one PostgreSQL database and Redis.

use std::time::Duration;

use domain::auth::{JwtKeys, TokenType};
use domain::model::User;
use domain::testing::TestStore;
use tokio::process::Child;

use crate::cut_proxy::CuttableProxy;
use crate::processes::{binary, free_port, one_at_a_time, start_logged, wait_ready};

pub const SECRET: &str = "a-cluster-test-secret-that-is-long-enough";

pub struct Cluster {
    pub api: String,
    pub gateways: [String; 2],
    pub db: TestStore,
    pub redis_url: String,
    /// The prefix of this cluster's Redis channels.
    pub redis_prefix: String,
    pub keys: JwtKeys,
    /// The api, then the two gateways.
    pub children: Vec<Child>,
    /// Each child's stderr, in the same order.
    logs: tempfile::TempDir,
    /// Released once this cluster's processes are gone.
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Cluster {
    /// `None` (test skipped) without PostgreSQL and Redis, except under CI.
    pub async fn start() -> Option<Self> {
        Self::start_with(std::env::var("TIDINGS_TEST_REDIS_URL").ok()).await
    }

    /// Like [`Cluster::start`], on the Redis at `redis_url`.
    pub async fn start_with(redis_url: Option<String>) -> Option<Self> {
        Self::start_configured(redis_url, &[]).await
    }

    /// Like [`Cluster::start_with`], with `gateway_env` set on both gateways.
    pub async fn start_configured(
        redis_url: Option<String>,
        gateway_env: &[(&'static str, &str)],
    ) -> Option<Self> {
        let turn = one_at_a_time().await;
        let (db, redis_url) = Self::services(redis_url).await?;
        let database_url = db.url.clone();
        Some(Self::launch(turn, db, &database_url, redis_url, gateway_env).await)
    }

    /// Like [`Cluster::start_configured`], with every process reaching
    /// PostgreSQL through a proxy the test can cut.
    pub async fn start_through_proxy(
        redis_url: Option<String>,
        gateway_env: &[(&'static str, &str)],
    ) -> Option<(Self, CuttableProxy)> {
        let turn = one_at_a_time().await;
        let (db, redis_url) = Self::services(redis_url).await?;
        let (proxy, proxied) = CuttableProxy::to(&db.url).await;
        let cluster = Self::launch(turn, db, &proxied, redis_url, gateway_env).await;
        Some((cluster, proxy))
    }

    /// A fresh database and the Redis URL; `None` (test skipped) without
    /// them, except under CI.
    async fn services(redis_url: Option<String>) -> Option<(TestStore, String)> {
        let db = TestStore::postgres().await;
        let (Some(db), Some(redis_url)) = (db, redis_url) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must provide PostgreSQL and Redis"
            );
            eprintln!("skipped: needs TIDINGS_TEST_DATABASE_URL and TIDINGS_TEST_REDIS_URL");
            return None;
        };
        Some((db, redis_url))
    }

    /// Starts the api and both gateways on `database_url`.
    async fn launch(
        turn: tokio::sync::MutexGuard<'static, ()>,
        db: TestStore,
        database_url: &str,
        redis_url: String,
        gateway_env: &[(&'static str, &str)],
    ) -> Self {
        // Clusters of concurrent tests share one Redis: keep their channels apart.
        let prefix = format!(
            "cluster{}",
            std::process::id() as u64 * 1000 + u64::from(free_port())
        );
        let common = |addr_key: &'static str, port: u16| {
            vec![
                ("TIDINGS_REDIS_PREFIX", prefix.clone()),
                ("DATABASE_URL", database_url.to_owned()),
                ("REDIS_URL", redis_url.clone()),
                ("JWT_SECRET", SECRET.to_owned()),
                (addr_key, format!("127.0.0.1:{port}")),
            ]
        };
        let logs = tempfile::tempdir().unwrap();
        let log = |n: usize| logs.path().join(format!("{n}.log"));
        let (api_child, api_port) =
            start_ready("api", &log(0), |port| common("TIDINGS_API_ADDR", port)).await;
        let mut children = vec![api_child];
        let api = format!("http://127.0.0.1:{api_port}");
        let mut gateways = Vec::new();
        for n in [1, 2] {
            let (child, port) = start_ready("ws-gateway", &log(n), |port| {
                let mut env = common("TIDINGS_WS_ADDR", port);
                env.extend(gateway_env.iter().map(|(k, v)| (*k, (*v).to_owned())));
                env
            })
            .await;
            children.push(child);
            gateways.push(format!("127.0.0.1:{port}"));
        }
        let gateways = [gateways[0].clone(), gateways[1].clone()];
        let keys = JwtKeys::new(
            SECRET.as_bytes(),
            Duration::from_secs(3600),
            Duration::from_secs(3600),
        )
        .unwrap();
        Self {
            api,
            gateways,
            db,
            redis_url,
            redis_prefix: prefix,
            keys,
            children,
            logs,
            _turn: turn,
        }
    }

    /// Tells every process to resync from the store, as each does after
    /// losing its Redis subscription: every session rechecks its
    /// credential and reads what it may have missed.
    pub async fn resync(&self) {
        let client = redis::Client::open(self.redis_url.as_str()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let heard: i64 = redis::cmd("PUBLISH")
            .arg(format!("{}:resync", self.redis_prefix))
            .arg("")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(heard >= 2, "both gateways heard it");
    }

    /// What child `n` (0 the api, 1 and 2 the gateways) wrote to stderr.
    pub fn log(&self, n: usize) -> String {
        std::fs::read_to_string(self.logs.path().join(format!("{n}.log"))).unwrap_or_default()
    }

    /// A user and an access token.
    pub async fn user(&self, name: &str, admin: bool) -> (User, String) {
        let user = domain::testing::user(&self.db, name, admin).await;
        let token = self.keys.issue(&user, TokenType::Access).unwrap();
        (user, token)
    }

    /// Changes the password of the user `token` speaks for (from the test
    /// password), through the api.
    pub async fn change_password(&self, token: &str, new: &str) {
        self.rest(
            reqwest::Method::POST,
            "/api/users/me/password/",
            token,
            serde_json::json!({"old": domain::testing::TEST_PASSWORD, "new": new}),
        )
        .await;
    }

    pub async fn rest(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let response = reqwest::Client::new()
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap_or_default()
    }
}

/// Starts `binary` on a free port until it is ready and still running: a
/// port found free can be taken by another test before the child binds
/// it, and then readiness would be answered by that test's process.
async fn start_ready(
    binary_name: &str,
    log: &std::path::Path,
    env: impl Fn(u16) -> Vec<(&'static str, String)>,
) -> (Child, u16) {
    for _ in 0..5 {
        let port = free_port();
        let mut child = start_logged(binary(binary_name), &env(port), log);
        wait_ready(&format!("http://127.0.0.1:{port}")).await;
        if child.try_wait().unwrap().is_none() {
            return (child, port);
        }
    }
    panic!("{binary_name} could not keep a port");
}

impl Drop for Cluster {
    /// A failed test shows what its processes logged.
    fn drop(&mut self) {
        if std::thread::panicking() {
            for n in 0..3 {
                eprintln!(
                    "--- child {n} (0: api, 1 and 2: gateways) ---\n{}",
                    self.log(n)
                );
            }
        }
    }
}
