//! `tidings-bench`: drives a running Tidings (all-in-one, or api plus
//! gateways) through load scenarios and reports throughput, latency
//! percentiles and lost/duplicated/out-of-order counts, as a table and as
//! one JSON line.
//!
//! Setup (users, topics, tags, subscriptions) is written straight into the
//! store and tokens are minted with the signing secret, so a scenario with
//! 100,000 users does not spend an hour hashing passwords; everything
//! measured goes through the real REST API and real sockets.
#![forbid(unsafe_code)]

mod client;
mod plot;
mod report;
mod scenarios;
mod setup;
mod timeline;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(version, about = "Load scenarios against a running Tidings")]
struct Cli {
    #[command(flatten)]
    target: setup::TargetArgs,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// S subscribers on one topic, P publishers.
    Fanout(scenarios::fanout::Args),
    /// Many 1:1 conversations (direct messages).
    Topics(scenarios::topics::Args),
    /// A tag with N subscribers, K online; notifications created over REST.
    Notify(scenarios::notify::Args),
    /// Inbox pages for a user with many notifications.
    Inbox(scenarios::inbox::Args),
    /// A user misses M messages, then reconnects.
    Backlog(scenarios::backlog::Args),
    /// C idle sockets; server memory per socket.
    Idle(scenarios::idle::Args),
    /// Handshakes per second.
    Connect(scenarios::connect::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let report = match cli.scenario {
        Scenario::Fanout(args) => scenarios::fanout::run(&cli.target, args).await?,
        Scenario::Topics(args) => scenarios::topics::run(&cli.target, args).await?,
        Scenario::Notify(args) => scenarios::notify::run(&cli.target, args).await?,
        Scenario::Inbox(args) => scenarios::inbox::run(&cli.target, args).await?,
        Scenario::Backlog(args) => scenarios::backlog::run(&cli.target, args).await?,
        Scenario::Idle(args) => scenarios::idle::run(&cli.target, args).await?,
        Scenario::Connect(args) => scenarios::connect::run(&cli.target, args).await?,
    };
    report.print();
    Ok(())
}
