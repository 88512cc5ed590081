//! Idle sockets: open C connections (spread over 127.0.0.x source
//! addresses), hold them, and read the server's resident memory per socket.
//! With `--burst`, every socket first reads a burst of messages, so the
//! measure is what a socket keeps once it has been busy.

use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt, stream};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Ws};
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
    /// Messages published to a topic every user follows once the sockets
    /// are open; every socket reads them all before the hold.
    #[arg(long, default_value_t = 0)]
    pub burst: u64,
}

pub async fn run(target: &TargetArgs, args: Args) -> anyhow::Result<Report> {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let t = Target::open(target).await?;
    let users = t.users("i", args.users.max(1), false).await?;
    let burst = if args.burst > 0 {
        let owner = t.users("ip", 1, false).await?;
        let topic = t.topic(&owner[0].0, "idle", &users).await?;
        Some((owner[0].1.clone(), topic.name.clone()))
    } else {
        None
    };
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
    // The publisher's socket stays open too, but is not counted.
    let (sockets, publisher) = match &burst {
        Some((token, topic)) => {
            let url = t.args.ws_url(args.connections, token);
            let publisher = client::connect(&url, t.args.source(args.connections), false).await?;
            let (sockets, publisher) = read_burst(sockets, publisher, topic, args.burst).await?;
            (sockets, Some(publisher))
        }
        None => (sockets, None),
    };
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
    if args.burst > 0 {
        out.set("burst", args.burst);
    }
    drop((sockets, publisher));
    Ok(out)
}

/// Publishes `messages` to `topic` and waits until every socket has read
/// them all (and the publisher its acks); hands both back.
async fn read_burst(
    sockets: Vec<Ws>,
    mut publisher: Ws,
    topic: &str,
    messages: u64,
) -> anyhow::Result<(Vec<Ws>, Ws)> {
    let readers: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                let mut seen = 0;
                while seen < messages {
                    let next = tokio::time::timeout(Duration::from_secs(30), ws.next()).await;
                    match next {
                        Ok(Some(Ok(Message::Text(text)))) => {
                            seen += u64::from(client::delivery(&text).is_some());
                        }
                        Ok(Some(Ok(_))) => {}
                        other => anyhow::bail!("a socket stopped during the burst: {other:?}"),
                    }
                }
                anyhow::Ok(ws)
            })
        })
        .collect();
    for _ in 0..messages {
        let frame = format!(
            r#"{{"action":"message","topic_name":"{topic}","content":"{}"}}"#,
            client::stamped(32)
        );
        publisher.send(Message::Text(frame.into())).await?;
    }
    let mut acked = 0;
    while acked < messages {
        let next = tokio::time::timeout(Duration::from_secs(30), publisher.next())
            .await
            .context("no ack within 30 s")?;
        match next {
            Some(Ok(Message::Text(text))) if text.contains("\"error\"") => {
                anyhow::bail!("the server refused a message: {text}")
            }
            Some(Ok(Message::Text(text))) => acked += u64::from(text.contains("\"ack\"")),
            Some(Ok(_)) => {}
            other => anyhow::bail!("the publisher's socket ended: {other:?}"),
        }
    }
    let mut sockets = Vec::with_capacity(readers.len());
    for reader in readers {
        sockets.push(reader.await??);
    }
    Ok((sockets, publisher))
}
