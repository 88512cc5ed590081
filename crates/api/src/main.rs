//! `api`: the REST API alone, for deployments that scale gateways apart.

use std::sync::Arc;

use clap::Parser;
use ops::settings::CommonArgs;
use ops::shutdown::Shutdown;
use tidings_api::{ApiArgs, ApiConfig, AppState};

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
    let (core, keys) = ops::boot::standalone(&cli.common, "api").await?;
    if let Some(password) = ops::boot::ensure_admin(&core, cli.api.admin_password.as_ref()).await? {
        println!("created user `admin` with password: {password}");
    }
    let state = AppState {
        core,
        keys: Arc::new(keys),
        config: Arc::new(ApiConfig::from(&cli.api)),
    };
    let listener = ops::boot::bind(cli.api.api_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "REST API listening");
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    tidings_api::serve(listener, tidings_api::router(state.clone()), shutdown).await?;
    state.core.close().await;
    Ok(())
}
