//! Fresh, real databases for tests (feature `test-support`): a SQLite file
//! in a temporary directory, or a new PostgreSQL database on the server
//! named by `TIDINGS_TEST_DATABASE_URL`.

use std::ops::Deref;
use std::sync::LazyLock;

use crate::model::User;
use crate::names::Username;
use crate::store::Store;

/// The password of every user made by [`user`].
pub const TEST_PASSWORD: &str = "correct horse battery";

/// Hashed once: argon2 per test user would dominate the suite's run time.
static TEST_HASH: LazyLock<String> =
    LazyLock::new(|| crate::auth::hash_password(TEST_PASSWORD).expect("hash"));

/// Creates a user whose password is [`TEST_PASSWORD`].
pub async fn user(store: &Store, name: &str, admin: bool) -> User {
    let name = Username::parse(name).expect("a valid test username");
    store
        .create_user(None, &name, &TEST_HASH, admin)
        .await
        .expect("create a test user")
}

/// The signing secret of [`keys`], for tests that forge their own tokens.
pub const TEST_SECRET: &[u8] = b"a-test-signing-secret-of-32-byte";

/// Signing keys over [`TEST_SECRET`]: access tokens for an hour, refresh
/// tokens for a day.
pub fn keys() -> std::sync::Arc<crate::auth::JwtKeys> {
    let hour = std::time::Duration::from_secs(3600);
    std::sync::Arc::new(crate::auth::JwtKeys::new(TEST_SECRET, hour, 24 * hour).expect("test keys"))
}

/// A token signed with `secret` over hand-written `claims`, for tests that
/// try expired, forged or mistyped tokens.
pub fn forge_token(claims: &serde_json::Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("sign test claims")
}

/// Cuts every pub/sub connection the Redis server at `url` holds, as a
/// network failure would; returns how many were cut.
pub async fn kill_redis_pubsub(url: &str) -> i64 {
    let mut admin = redis::Client::open(url)
        .expect("a Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("connect to Redis");
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut admin)
        .await
        .expect("CLIENT KILL")
}

/// The environment variable naming the PostgreSQL server for tests.
pub const POSTGRES_ENV: &str = "TIDINGS_TEST_DATABASE_URL";

/// A migrated store that lives as long as this value.
pub struct TestStore {
    pub store: Store,
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Deref for TestStore {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

/// Which backend a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Sqlite,
    Postgres,
}

impl TestStore {
    /// A fresh store of `flavor`; `None` for PostgreSQL when no server is
    /// configured (the test then reports itself skipped).
    /// A core over this store with an in-process bus and default limits.
    pub fn core(&self) -> std::sync::Arc<crate::service::Core> {
        crate::service::Core::new(
            self.store.clone(),
            std::sync::Arc::new(crate::bus::LocalBus::default()),
            crate::service::Limits::default(),
        )
    }

    pub async fn fresh(flavor: Flavor) -> Option<Self> {
        Self::fresh_with_pool(flavor, None).await
    }

    /// Like [`TestStore::fresh`], with `pool` read connections instead of
    /// the default (a small pool makes starvation show at once).
    pub async fn fresh_with_pool(flavor: Flavor, pool: Option<u32>) -> Option<Self> {
        match flavor {
            Flavor::Sqlite => Some(Self::sqlite_with_pool(pool.unwrap_or(4)).await),
            Flavor::Postgres => Self::postgres_with_pool(pool.unwrap_or(5)).await,
        }
    }

    pub async fn sqlite() -> Self {
        Self::sqlite_with_pool(4).await
    }

    async fn sqlite_with_pool(pool: u32) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let url = format!("sqlite://{}", dir.path().join("tidings.db").display());
        let store = Store::connect(&url, pool).await.expect("SQLite store");
        Self {
            store,
            url,
            _dir: Some(dir),
        }
    }

    pub async fn postgres() -> Option<Self> {
        Self::postgres_with_pool(5).await
    }

    async fn postgres_with_pool(pool: u32) -> Option<Self> {
        let Ok(server) = std::env::var(POSTGRES_ENV) else {
            // A skipped test must not count as passed where the database
            // is meant to be there.
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must provide PostgreSQL ({POSTGRES_ENV})"
            );
            eprintln!("skipped: {POSTGRES_ENV} is not set");
            return None;
        };
        let name = format!("tidings_t_{}", uuid::Uuid::new_v4().simple());
        let admin = Store::connect_only(&server, 1)
            .await
            .expect("PostgreSQL server");
        admin
            .execute_raw(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        admin.close().await;
        let base = server.split('?').next().unwrap_or(&server);
        let url = match base.rfind('/') {
            Some(slash) if slash > "postgres://".len() => format!("{}/{name}", &base[..slash]),
            _ => format!("{base}/{name}"),
        };
        let store = Store::connect(&url, pool).await.expect("PostgreSQL store");
        Some(Self {
            store,
            url,
            _dir: None,
        })
    }
}
