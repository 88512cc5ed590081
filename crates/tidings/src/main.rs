//! `tidings`: the all-in-one server (REST API + WebSocket gateway on an
//! embedded SQLite store and an in-process bus) and its admin commands.
#![forbid(unsafe_code)]

mod cli;
mod secret;

use std::io::{IsTerminal, Read};
use std::sync::Arc;

use anyhow::Context;
use cli::{Cli, Command, UserCommand};
use domain::auth::{TokenType, hash_password, random_secret};
use domain::names::Username;
use domain::store::Store;
use ops::shutdown::Shutdown;
use ops::warmup::Switch;
use tidings_api::{ApiConfig, AppState};
use tidings_gateway::{GatewayConfig, GatewayState};

#[global_allocator]
static ALLOCATOR: ops::Allocator = ops::Allocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse_args();
    ops::logs::init(cli.common.log_format);
    // Before anything registers a metric: handles taken earlier would
    // count into the void.
    ops::metrics::install();
    match &cli.command {
        None | Some(Command::Serve) => serve(&cli).await,
        Some(Command::Openapi) => {
            println!("{}", tidings_api::openapi::document()?);
            Ok(())
        }
        Some(Command::Migrate) => {
            let store = Store::connect_only(&cli.common.database_url, 1).await?;
            store.migrate().await?;
            println!("migrations applied");
            Ok(())
        }
        Some(Command::User(UserCommand::Add { name, admin })) => add_user(&cli, name, *admin).await,
        Some(Command::User(UserCommand::Passwd { name })) => set_password(&cli, name).await,
        Some(Command::Token(args)) => {
            let keys = ops::boot::keys(&cli.common, &secret::resolve(&cli.common)?)?;
            let store = Store::connect(&cli.common.database_url, 1).await?;
            let (account, _) = store
                .credentials(&args.name)
                .await?
                .with_context(|| format!("no user named {}", args.name))?;
            println!(
                "{}",
                keys.issue_with_ttl(
                    &account.user,
                    account.generation,
                    TokenType::Access,
                    args.ttl
                )?
            );
            Ok(())
        }
    }
}

async fn serve(cli: &Cli) -> anyhow::Result<()> {
    let keys = Arc::new(ops::boot::keys(
        &cli.common,
        &secret::resolve(&cli.common)?,
    )?);
    // Listen first: until the store answers, /readyz says what is missing
    // (see ops::warmup).
    let api_listener = ops::boot::bind(cli.api.api_addr).await?;
    let ws_listener = ops::boot::bind(cli.gateway.ws_addr).await?;
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    let api_switch = Switch::default();
    let ws_switch = api_switch.sibling();
    let (api_addr, ws_addr) = (api_listener.local_addr()?, ws_listener.local_addr()?);
    let api_serving = tokio::spawn(tidings_api::serve(
        api_listener,
        api_switch.router(),
        shutdown.clone(),
        cli.common.header_timeout,
    ));
    let ws_serving = tokio::spawn(tidings_gateway::serve_router(
        ws_listener,
        ws_switch.router(),
        shutdown.clone(),
        cli.common.header_timeout,
    ));
    let core = tokio::select! {
        core = ops::boot::core(&cli.common, &api_switch) => core?,
        () = shutdown.wait() => {
            let _ = tokio::join!(api_serving, ws_serving);
            return Ok(());
        }
    };
    if let Some(password) = ops::boot::ensure_admin(&core, cli.api.admin_password.as_ref()).await? {
        ops::logs::banner(
            cli.common.log_format,
            &format!("created user `admin` with password: {password}  (shown once)"),
        );
    }
    let api_config = Arc::new(ApiConfig {
        // The console reaches this process's own gateway, on whatever
        // host name the browser used.
        public_ws_url: cli
            .api
            .public_ws_url
            .clone()
            .unwrap_or_else(|| format!(":{}/ws", ws_addr.port())),
        ..ApiConfig::from(&cli.api)
    });
    let pruner = tidings_api::spawn_pruner(core.clone(), &api_config, shutdown.clone());
    let api = AppState {
        core: core.clone(),
        keys: keys.clone(),
        config: api_config,
    };
    let gateway = GatewayState::start(
        core.clone(),
        keys,
        GatewayConfig {
            header_timeout: cli.common.header_timeout,
            ..GatewayConfig::from(&cli.gateway)
        },
        shutdown.clone(),
    )?;
    api_switch.ready(tidings_api::router(api));
    ws_switch.ready(tidings_gateway::router(gateway.clone()));
    // Printed once everything answers, so a script that waits for these
    // lines can use the service at once.
    let format = cli.common.log_format;
    ops::logs::banner(
        format,
        &format!("REST API:  http://{api_addr}/api/  (OpenAPI at /api/openapi.json)"),
    );
    ops::logs::banner(
        format,
        &format!("WebSocket: ws://{ws_addr}/ws?token=ACCESS_TOKEN"),
    );
    let (api_result, ws_result) = tokio::join!(api_serving, ws_serving);
    tidings_gateway::finish(&gateway).await;
    let _ = pruner.await;
    core.close().await;
    api_result?.context("REST API")?;
    ws_result?.context("WebSocket gateway")?;
    Ok(())
}

/// A password from stdin when piped (at least 8 bytes), else a generated one.
fn read_password() -> anyhow::Result<(String, bool)> {
    if std::io::stdin().is_terminal() {
        return Ok((random_secret(20), true));
    }
    let mut text = String::new();
    std::io::stdin().read_to_string(&mut text)?;
    let text = text.trim_end_matches(['\r', '\n']).to_owned();
    anyhow::ensure!(
        text.len() >= 8,
        "the password read from stdin must be at least 8 bytes"
    );
    Ok((text, false))
}

/// Sets a password through the core, so the revocation reaches the
/// processes that share its bus (Redis) and their sockets close.
async fn set_password(cli: &Cli, name: &str) -> anyhow::Result<()> {
    let (password, generated) = read_password()?;
    let core = ops::boot::core(&cli.common, &ops::warmup::Switch::default()).await?;
    let user = core
        .user_named(&Username::parse(name)?)
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    core.set_password(None, user.id, password.clone())
        .await
        .map_err(|err| anyhow::anyhow!("{err}"))?;
    println!(
        "password of `{}` set; their tokens no longer work",
        user.username
    );
    if generated {
        println!("password: {password}");
    }
    core.close().await;
    Ok(())
}

async fn add_user(cli: &Cli, name: &str, admin: bool) -> anyhow::Result<()> {
    let username = Username::parse(name)?;
    let (password, generated) = read_password()?;
    let store = Store::connect(&cli.common.database_url, 1).await?;
    let hash = tokio::task::spawn_blocking(move || hash_password(&password).map(|h| (h, password)))
        .await??;
    let user = store.create_user(None, &username, &hash.0, admin).await?;
    println!(
        "created user `{}` (id {}{})",
        user.username,
        user.id,
        if admin { ", admin" } else { "" }
    );
    if generated {
        println!("password: {}", hash.1);
    }
    Ok(())
}
