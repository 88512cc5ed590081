//! Start-up shared by every process: from settings to a running core.

use std::sync::Arc;

use anyhow::Context;
use domain::auth::{JwtKeys, random_secret};
use domain::bus::{LocalBus, RedisBus, SharedBus};
use domain::names::Username;
use domain::service::{Core, Limits};
use domain::store::Store;

use crate::settings::{CommonArgs, Secret};

/// Connects the store (migrating it) and the bus.
pub async fn core(args: &CommonArgs) -> anyhow::Result<Arc<Core>> {
    let store = Store::connect(&args.database_url, args.db_pool)
        .await
        .with_context(|| format!("opening the store at {}", redact_url(&args.database_url)))?;
    let bus: SharedBus = match &args.redis_url {
        Some(url) => RedisBus::connect(url.expose(), &args.redis_prefix, 65_536)
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
pub async fn standalone(args: &CommonArgs, role: &str) -> anyhow::Result<(Arc<Core>, JwtKeys)> {
    let secret = args
        .jwt_secret
        .as_ref()
        .with_context(|| format!("JWT_SECRET is required when the {role} runs on its own"))?;
    let keys = keys(args, secret)?;
    Ok((core(args).await?, keys))
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
