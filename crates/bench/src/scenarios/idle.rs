//! Idle sockets: open C connections (spread over 127.0.0.x source
//! addresses), hold them, and read the server's resident memory per socket.

use std::time::Duration;

use futures_util::{StreamExt, stream};

use crate::client;
use crate::report::{Report, rss_kib};
use crate::setup::{Target, TargetArgs};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Sockets to open (one process holds at most its open-file limit).
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Distinct users the sockets belong to.
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// The server's pid, to read its memory.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// How long to hold the sockets open before measuring.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub hold: Duration,
}

pub async fn run(target: &TargetArgs, args: Args) -> anyhow::Result<Report> {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let t = Target::open(target).await?;
    let users = t.users("i", args.users.max(1), false).await?;
    let before = args.server_pid.and_then(rss_kib);
    let sockets: Vec<client::Ws> = stream::iter(0..args.connections)
        .map(|i| {
            let (url, source) = (
                t.args.ws_url(i, &users[i % users.len()].1),
                t.args.source(i),
            );
            async move { client::connect(&url, source, false).await }
        })
        .buffer_unordered(128)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    tokio::time::sleep(args.hold).await;
    let after = args.server_pid.and_then(rss_kib);
    let mut out = Report::new("idle");
    out.set("connections", sockets.len());
    if let (Some(before), Some(after)) = (before, after) {
        let per_socket =
            (after.saturating_sub(before)) as f64 * 1024.0 / sockets.len().max(1) as f64;
        out.set("server_rss_before_kib", before)
            .set("server_rss_after_kib", after)
            .set("bytes_per_socket", per_socket.round());
    }
    drop(sockets);
    Ok(out)
}
