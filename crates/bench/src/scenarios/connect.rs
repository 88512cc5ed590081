//! Handshakes per second: connect, authenticate, receive the welcome, close.

use std::time::Instant;

use anyhow::Context;

use futures_util::{StreamExt, stream};

use crate::client;
use crate::report::Report;
use crate::setup::{Target, TargetArgs};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Handshakes in all.
    #[arg(long, default_value_t = 5000)]
    pub connections: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Users the handshakes take turns at. Few users means many sockets
    /// of one user open at once (reads of the same account share a row);
    /// as many users as handshakes means every one reads its own.
    #[arg(long, default_value_t = 10)]
    pub users: usize,
    /// Connect with API keys (made through the REST API) instead of tokens.
    #[arg(long)]
    pub api_keys: bool,
    /// The target is the bare reference: no users to make, no welcome to
    /// wait for (a handshake and a close).
    #[arg(long, conflicts_with = "api_keys")]
    pub bare: bool,
    /// The server's pids (comma-separated for several processes), to
    /// report their CPU per handshake.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Quiet topics every user is a member of (each with a few old
    /// messages already delivered): what a returning client follows.
    #[arg(long, default_value_t = 0, conflicts_with = "bare")]
    pub topics: usize,
}

pub async fn run(target: &TargetArgs, args: Args) -> anyhow::Result<Report> {
    // The bare reference has no store: its runs need no database or secret.
    let t = match args.bare {
        true => None,
        false => Some(Target::open(target).await?),
    };
    let users = match &t {
        Some(t) => t.users("c", args.users.max(1), false).await?,
        None => vec![],
    };
    for n in 0..args.topics {
        let t = t.as_ref().context("--topics needs the store")?;
        let owner = &users[0].0;
        let topic = t.topic(owner, &format!("q{n}"), &users).await?;
        // Old messages everyone already has: the topic is quiet, not empty.
        for text in ["old 1", "old 2", "old 3"] {
            t.store.publish(topic.id, owner, text).await?;
        }
        let delivered: Vec<_> = users
            .iter()
            .map(|(user, _)| {
                let cursor = domain::store::Cursor::Channel {
                    channel_id: topic.id,
                    user_id: user.id,
                };
                (cursor, 3)
            })
            .collect();
        t.store.advance_cursors(&delivered).await?;
    }
    let mut credentials: Vec<String> = if args.bare {
        vec!["none".into()]
    } else {
        users.into_iter().map(|(_, token)| token).collect()
    };
    if args.api_keys {
        let http = reqwest::Client::new();
        for credential in &mut credentials {
            let created: serde_json::Value = http
                .post(format!("{}/api/keys/", target.api))
                .bearer_auth(&*credential)
                .json(&serde_json::json!({"name": "bench"}))
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            *credential = created["key"]
                .as_str()
                .context("the API answered without a key")?
                .to_owned();
        }
    }
    let server_cpu = crate::report::ServerCpu::start(&args.server_pid);
    let started = Instant::now();
    let results: Vec<anyhow::Result<()>> = stream::iter(0..args.connections)
        .map(|i| {
            let url = target.ws_url(i, &credentials[i % credentials.len()]);
            let source = target.source(i);
            async move {
                let mut ws = client::connect(&url, source, args.bare).await?;
                ws.close(None).await?;
                Ok(())
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let elapsed = started.elapsed();
    let failed = results.iter().filter(|r| r.is_err()).count();
    let mut out = Report::new("connect");
    out.set("connections", args.connections)
        .set(
            "credential",
            if args.bare {
                "none (bare)"
            } else if args.api_keys {
                "api key"
            } else {
                "token"
            },
        )
        .set("concurrency", args.concurrency)
        .set("users", if args.bare { 0 } else { args.users.max(1) })
        .set("topics_per_user", args.topics)
        .set("failed", failed)
        .rate(
            "handshakes_per_s",
            (args.connections - failed) as u64,
            elapsed,
        )
        .set("seconds", (elapsed.as_secs_f64() * 1000.0).round() / 1000.0);
    if let Some(seconds) = server_cpu.and_then(|cpu| cpu.seconds()) {
        let handshakes = (args.connections - failed).max(1) as f64;
        out.set(
            "server_cpu_us_per_handshake",
            (seconds * 1e6 / handshakes).round(),
        );
    }
    Ok(out)
}
