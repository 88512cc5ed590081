//! Many 1:1 conversations: P pairs, each sender sending direct messages to
//! its peer; throughput and latency across all of them.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::client;
use crate::report::{self, Integrity, Report};
use crate::setup::{Target, TargetArgs};
use crate::timeline::Timeline;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Conversations.
    #[arg(long, default_value_t = 200)]
    pub pairs: usize,
    /// Messages per conversation.
    #[arg(long, default_value_t = 200)]
    pub messages: u64,
    /// Unacknowledged messages per sender.
    #[arg(long, default_value_t = 16)]
    pub window: usize,
    /// Messages per second across all senders (0: as fast as each
    /// sender's window allows). Latency at a set rate is what a user
    /// waits; at saturation it only says how full the windows are.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Where to write the deliveries of each 100 ms of the run (CSV: how
    /// many, how many over 50 ms, the slowest): when the tail came.
    #[arg(long)]
    pub timeline: Option<std::path::PathBuf>,
}

pub async fn run(target: &TargetArgs, args: Args) -> anyhow::Result<Report> {
    let t = Target::open(target).await?;
    let senders = t.users("ts", args.pairs, false).await?;
    let receivers = t.users("tr", args.pairs, false).await?;
    let mut readers = vec![];
    for (i, (_, token)) in receivers.iter().enumerate() {
        let mut ws = client::connect(&t.args.ws_url(i, token), t.args.source(i), false).await?;
        let expected = args.messages;
        let mut timeline = args.timeline.is_some().then(Timeline::default);
        readers.push(tokio::spawn(async move {
            let mut integrity = Integrity::default();
            let mut latency = report::histogram();
            while integrity.received < expected {
                let text = match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
                    Ok(Some(Ok(Message::Text(text)))) => text,
                    // Pings (the server proves receipt with them) and the like.
                    Ok(Some(Ok(_))) => continue,
                    _ => break,
                };
                if let (Some(seq), Some(sent)) =
                    (client::field(&text, "\"seq\":"), client::sent_at(&text))
                {
                    integrity.record(seq);
                    let now = client::now_nanos();
                    let micros = now.saturating_sub(sent) / 1000;
                    let _ = latency.record(micros);
                    if let Some(timeline) = &mut timeline {
                        timeline.record(now, micros);
                    }
                }
            }
            (integrity, latency, timeline, Instant::now())
        }));
    }
    let mut sockets = vec![];
    for (i, (_, token)) in senders.iter().enumerate() {
        sockets.push(
            client::connect(
                &t.args.ws_url(i, token),
                t.args.source(args.pairs + i),
                false,
            )
            .await?,
        );
    }
    // The clock starts once every socket is open: handshakes are the
    // `connect` scenario's business.
    let cpu_before = report::own_cpu_seconds();
    let started = Instant::now();
    let started_nanos = client::now_nanos();
    let mut writers = vec![];
    for (i, ws) in sockets.into_iter().enumerate() {
        let peer = receivers[i].0.username.clone();
        let (messages, window) = (args.messages, args.window.max(1) as u64);
        let pace = super::Pace::share(args.rate, args.pairs, i);
        writers.push(tokio::spawn(async move {
            let (mut sink, mut stream) = ws.split();
            let (mut sent, mut acked) = (0, 0);
            let mut tick = pace.ticker();
            let frame = || {
                let text = format!(
                    r#"{{"action":"message","topic_name":"@{peer}","content":"{}"}}"#,
                    client::stamped(16)
                );
                Message::Text(text.into())
            };
            while acked < messages {
                let may_send = sent < messages && sent - acked < window;
                let incoming = match tick.as_mut() {
                    Some(tick) => tokio::select! {
                        biased;
                        incoming = stream.next() => incoming,
                        _ = tick.tick(), if may_send => {
                            sink.send(frame()).await?;
                            sent += 1;
                            continue;
                        }
                    },
                    None => {
                        while sent < messages && sent - acked < window {
                            sink.send(frame()).await?;
                            sent += 1;
                        }
                        stream.next().await
                    }
                };
                match incoming {
                    Some(Ok(Message::Text(text))) if text.contains("\"ack\"") => acked += 1,
                    Some(Ok(Message::Text(text))) if text.contains("\"error\"") => {
                        anyhow::bail!("refused: {text}")
                    }
                    Some(Ok(_)) => {}
                    other => anyhow::bail!("sender stream ended: {other:?}"),
                }
            }
            anyhow::Ok(())
        }));
    }
    for writer in writers {
        writer.await??;
    }
    let mut latency = report::histogram();
    let (mut received, mut lost, mut duplicated, mut out_of_order) = (0, 0, 0, 0);
    let mut last = started;
    let mut timeline = Timeline::default();
    for reader in readers {
        let (integrity, h, steps, at) = reader.await?;
        latency.add(&h)?;
        if let Some(steps) = steps {
            timeline.merge(steps);
        }
        received += integrity.received;
        lost += integrity.lost(args.messages);
        duplicated += integrity.duplicated;
        out_of_order += integrity.out_of_order;
        last = last.max(at);
    }
    if let Some(path) = &args.timeline {
        timeline.write(path, started_nanos)?;
    }
    let elapsed = last.duration_since(started);
    let mut out = Report::new("topics");
    out.set("pairs", args.pairs)
        .set("rate_target", args.rate)
        .set("deliveries", received)
        .rate("deliveries_per_s", received, elapsed)
        .latency("", &latency)
        .set("lost", lost)
        .set("duplicated", duplicated)
        .set("out_of_order", out_of_order)
        .set("seconds", (elapsed.as_secs_f64() * 1000.0).round() / 1000.0)
        .set(
            "client_cpu_percent",
            ((report::own_cpu_seconds() - cpu_before) / elapsed.as_secs_f64().max(1e-9) * 100.0)
                .round(),
        );
    Ok(out)
}
