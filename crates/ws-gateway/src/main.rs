//! `ws-gateway`: the WebSocket gateway alone; run as many as you like.

use std::sync::Arc;

use clap::Parser;
use ops::settings::CommonArgs;
use ops::shutdown::Shutdown;
use ops::warmup::Switch;
use tidings_gateway::{GatewayArgs, GatewayConfig, GatewayState};

#[global_allocator]
static ALLOCATOR: ops::Allocator = ops::Allocator;

/// The Tidings WebSocket gateway.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    gateway: GatewayArgs,
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
    let listener = ops::boot::bind(cli.gateway.ws_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "WebSocket gateway listening");
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    let switch = Switch::default();
    let serving = tokio::spawn(tidings_gateway::serve_router(
        listener,
        switch.router(),
        shutdown.clone(),
        cli.common.header_timeout,
    ));
    let started = tokio::select! {
        started = ops::boot::standalone(&cli.common, "gateway", &switch) => started,
        () = shutdown.wait() => return Ok(serving.await??),
    };
    let (core, keys) = started?;
    let state = GatewayState::start(
        core.clone(),
        Arc::new(keys),
        GatewayConfig {
            header_timeout: cli.common.header_timeout,
            ..GatewayConfig::from(&cli.gateway)
        },
        shutdown,
    )?;
    switch.ready(tidings_gateway::router(state.clone()));
    let served = serving.await;
    tidings_gateway::finish(&state).await;
    core.close().await;
    Ok(served??)
}
