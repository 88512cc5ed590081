//! `api`: the REST API alone, for deployments that scale gateways apart.

use std::sync::Arc;

use clap::Parser;
use ops::settings::CommonArgs;
use ops::shutdown::Shutdown;
use ops::warmup::Switch;
use tidings_api::{ApiArgs, ApiConfig, AppState};

#[global_allocator]
static ALLOCATOR: ops::Allocator = ops::Allocator;

/// The Tidings REST API.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    api: ApiArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    ops::logs::init(cli.common.log_format);
    // Before anything registers a metric: handles taken earlier would
    // count into the void.
    ops::metrics::install();
    // Listen first: until the store and Redis answer, /readyz says what
    // is missing (see ops::warmup).
    let listener = ops::boot::bind(cli.api.api_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "REST API listening");
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    let switch = Switch::default();
    let serving = tokio::spawn(tidings_api::serve(
        listener,
        switch.router(),
        shutdown.clone(),
        cli.common.header_timeout,
    ));
    let started = tokio::select! {
        started = ops::boot::standalone(&cli.common, "api", &switch) => started,
        () = shutdown.wait() => return Ok(serving.await??),
    };
    let (core, keys) = started?;
    if let Some(password) = ops::boot::ensure_admin(&core, cli.api.admin_password.as_ref()).await? {
        ops::logs::banner(
            cli.common.log_format,
            &format!("created user `admin` with password: {password}  (shown once)"),
        );
    }
    let config = Arc::new(ApiConfig::from(&cli.api));
    let pruner = tidings_api::spawn_pruner(core.clone(), &config, shutdown.clone());
    let state = AppState {
        core: core.clone(),
        keys: Arc::new(keys),
        config,
    };
    switch.ready(tidings_api::router(state));
    let served = serving.await;
    let _ = pruner.await;
    core.close().await;
    Ok(served??)
}
