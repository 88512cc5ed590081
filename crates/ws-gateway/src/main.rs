//! `ws-gateway`: the WebSocket gateway alone; run as many as you like.

use std::sync::Arc;

use clap::Parser;
use ops::settings::CommonArgs;
use ops::shutdown::Shutdown;
use tidings_gateway::{GatewayArgs, GatewayConfig, GatewayState};

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
    let (core, keys) = ops::boot::standalone(&cli.common, "gateway").await?;
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    let state = GatewayState::start(
        core.clone(),
        Arc::new(keys),
        GatewayConfig::from(&cli.gateway),
        shutdown,
    )?;
    let listener = ops::boot::bind(cli.gateway.ws_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "WebSocket gateway listening");
    tidings_gateway::serve(listener, state).await?;
    core.close().await;
    Ok(())
}
