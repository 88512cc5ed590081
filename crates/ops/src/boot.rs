//! Start-up shared by every process: from settings to a running core.

use std::sync::Arc;

use anyhow::Context;
use domain::auth::{JwtKeys, random_secret};
use domain::bus::{BusError, LocalBus, RedisBus, SharedBus};
use domain::names::Username;
use domain::service::{Core, Limits};
use domain::store::{Store, StoreError};
use std::time::Duration;

use crate::warmup::Switch;

use crate::settings::{CommonArgs, Secret};

/// Connects the store (migrating it) and the bus, trying each again until
/// it answers: one log line per attempt names the dependency and the cause
/// (refused, DNS, authentication, timeout), and `/readyz` says the same
/// meanwhile through `switch`. A setting that can never work (a URL of
/// the wrong kind, a failed migration) stops the start at once.
pub async fn core(args: &CommonArgs, switch: &Switch) -> anyhow::Result<Arc<Core>> {
    let store = retry("store", switch, || async {
        match Store::connect(&args.database_url, args.db_pool).await {
            Ok(store) => Ok(Ok(store)),
            Err(err @ (StoreError::UnsupportedUrl | StoreError::Migrate(_))) => Ok(Err(err)),
            Err(err) => Err(err),
        }
    })
    .await
    .with_context(|| format!("opening the store at {}", redact_url(&args.database_url)))?;
    let bus: SharedBus = match &args.redis_url {
        Some(url) => retry("bus", switch, || async {
            match RedisBus::connect(url.expose(), &args.redis_prefix, 65_536).await {
                Ok(bus) => Ok(Ok(bus)),
                Err(BusError::InvalidUrl(why)) => Ok(Err(BusError::InvalidUrl(why))),
                Err(err) => Err(err),
            }
        })
        .await
        .with_context(|| format!("connecting to Redis at {}", redact_url(url.expose())))?,
        None => Arc::new(LocalBus::default()),
    };
    let limits = Limits {
        max_content_bytes: args.max_content_bytes,
        ..Limits::default()
    };
    Ok(Core::new(store, bus, limits))
}

/// The first wait between attempts; it doubles up to [`MAX_RETRY_WAIT`].
const FIRST_RETRY_WAIT: Duration = Duration::from_millis(250);
const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);

/// Runs `attempt` until it connects. It answers `Ok(Ok(_))` when
/// connected, `Ok(Err(_))` for a failure that trying again cannot mend,
/// and `Err(_)` for one that it may.
async fn retry<T, E, F, Fut>(
    dependency: &'static str,
    switch: &Switch,
    mut attempt: F,
) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Result<T, E>, E>>,
{
    let mut wait = FIRST_RETRY_WAIT;
    let mut n = 0;
    loop {
        n += 1;
        match attempt().await {
            Ok(done) => {
                if done.is_ok() {
                    switch.connected(dependency);
                    if n > 1 {
                        tracing::info!(dependency, attempts = n, "connected");
                    }
                }
                return done;
            }
            Err(err) => {
                let cause = err.to_string();
                tracing::warn!(
                    dependency,
                    attempt = n,
                    %cause,
                    retry_in_ms = wait.as_millis() as u64,
                    "cannot reach the {dependency}; retrying"
                );
                switch.waiting(dependency, cause);
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(MAX_RETRY_WAIT);
            }
        }
    }
}

/// Signing keys from a secret, refusing a short one with a clear message.
pub fn keys(args: &CommonArgs, secret: &Secret) -> anyhow::Result<JwtKeys> {
    JwtKeys::new(
        secret.expose().as_bytes(),
        args.access_ttl,
        args.refresh_ttl,
    )
    .context("JWT_SECRET is too short: use at least 32 bytes (e.g. `openssl rand -hex 32`)")
}

/// Keys and core for a process that runs one role on its own (`api`,
/// `ws-gateway`): the secret must be given, since there is no local file
/// to keep a generated one beside and every instance must share it.
pub async fn standalone(
    args: &CommonArgs,
    role: &str,
    switch: &Switch,
) -> anyhow::Result<(Arc<Core>, JwtKeys)> {
    let secret = args
        .jwt_secret
        .as_ref()
        .with_context(|| format!("JWT_SECRET is required when the {role} runs on its own"))?;
    let keys = keys(args, secret)?;
    Ok((core(args, switch).await?, keys))
}

/// Listens on `addr`, naming it in the error.
pub async fn bind(addr: std::net::SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))
}

/// On an empty store, creates the `admin` user. Returns the password when
/// it was generated, so the caller can print it once.
pub async fn ensure_admin(
    core: &Core,
    password: Option<&Secret>,
) -> anyhow::Result<Option<String>> {
    if core.user_count().await? > 0 {
        return Ok(None);
    }
    let generated = password.is_none().then(|| random_secret(20));
    let plain = password
        .map(|p| p.expose().to_owned())
        .or_else(|| generated.clone())
        .unwrap_or_default();
    let admin = Username::parse("admin")?;
    match core.create_user(None, &admin, plain, true).await {
        Ok(_) => Ok(generated),
        // Another instance created it first.
        Err(domain::service::ServiceError::Conflict(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `scheme://user:password@host/...` with the password hidden.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_in_urls_are_hidden() {
        assert_eq!(
            super::redact_url("postgres://u:pw@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact_url("sqlite://t.db"), "sqlite://t.db");
    }
}
