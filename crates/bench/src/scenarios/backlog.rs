//! Backlog: a member misses M messages while offline, then reconnects;
//! how long until the last one arrives?

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::client;
use crate::report::{Integrity, Report};
use crate::setup::{Target, TargetArgs};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Messages missed while offline.
    #[arg(long, default_value_t = 10_000)]
    pub messages: u64,
    /// Padding bytes per message.
    #[arg(long, default_value_t = 32)]
    pub payload: usize,
}

pub async fn run(target: &TargetArgs, args: Args) -> anyhow::Result<Report> {
    let t = Target::open(target).await?;
    let users = t.users("k", 2, false).await?;
    let (owner, reader) = (&users[0], &users[1]);
    let topic = t
        .topic(&owner.0, "backlog", std::slice::from_ref(reader))
        .await?;
    let body = "x".repeat(args.payload);
    for _ in 0..args.messages {
        t.store.publish(topic.id, &owner.0, &body).await?;
    }
    let started = Instant::now();
    let mut ws = client::connect(&t.args.ws_url(0, &reader.1), t.args.source(0), false).await?;
    let mut integrity = Integrity::default();
    while integrity.received < args.messages {
        let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(10), ws.next()).await
        else {
            break;
        };
        if let Message::Text(text) = message
            && let Some(seq) = client::field(&text, "\"seq\":")
        {
            integrity.record(seq);
        }
    }
    let elapsed = started.elapsed();
    let mut out = Report::new("backlog");
    out.set("missed", args.messages)
        .set("received", integrity.received)
        .set("drain_ms", elapsed.as_millis() as u64)
        .rate("messages_per_s", integrity.received, elapsed)
        .set("lost", integrity.lost(args.messages))
        .set("duplicated", integrity.duplicated)
        .set("out_of_order", integrity.out_of_order);
    Ok(out)
}
