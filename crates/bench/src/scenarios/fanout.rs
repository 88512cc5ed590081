//! Fan-out: S subscriber sockets on one topic, P publishers sending as fast
//! as the server acknowledges (with at most `window` in flight each) or at
//! a fixed total rate. With `--bare` the target is the reference broadcast
//! server (`cargo run --release -p bench --example bare_broadcast`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;

use super::nats;
use crate::client::{self, Ws};
use crate::report::{self, Integrity, Report};
use crate::setup::{Target, TargetArgs};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Subscriber sockets.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Publisher sockets.
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Messages each publisher sends.
    #[arg(long, default_value_t = 2000)]
    pub messages: u64,
    /// Total messages per second across publishers; 0 sends as fast as acks allow.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Unacknowledged messages a publisher may have in flight.
    #[arg(long, default_value_t = 64)]
    pub window: usize,
    /// Padding bytes per message.
    #[arg(long, default_value_t = 32)]
    pub payload: usize,
    /// The target is the bare reference server (no auth, no store).
    #[arg(long)]
    pub bare: bool,
    /// The target is nats-server's WebSocket listener (core NATS, a second reference).
    #[arg(long, conflicts_with = "bare")]
    pub nats: bool,
    /// The server's pids (comma-separated for several processes), to
    /// report their CPU per delivery.
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
}

struct Received {
    integrity: Integrity,
    latency: Histogram<u64>,
    /// When the last delivery arrived, on the clock messages carry
    /// ([`client::now_nanos`]), read once per frame for its latency anyway.
    last: Option<u64>,
    /// Times this subscriber reconnected, as the protocol asks: closed as
    /// a slow consumer (4008), or cut off.
    reconnects: u64,
}

pub async fn run(target: &TargetArgs, args: Args) -> anyhow::Result<Report> {
    let (urls, topic_name, label) = if args.bare || args.nats {
        let urls: Vec<String> = (0..args.subscribers + args.publishers)
            .map(|i| format!("{}/", target.ws[i % target.ws.len()]))
            .collect();
        let label = if args.nats {
            "nats-server"
        } else {
            "bare reference"
        };
        (urls, "bare".to_owned(), label)
    } else {
        let t = Target::open(target).await?;
        let subs = t.users("s", args.subscribers, false).await?;
        let pubs = t.users("p", args.publishers, false).await?;
        // Owned by a subscriber: a topic's owner is a member and reads it,
        // and a publisher that did would also read every other publisher's
        // messages, uncounted, and could be closed as a slow consumer (this
        // tool does not reconnect publishers).
        let (owner, members) = match subs.split_first() {
            Some((first, rest)) => (&first.0, rest),
            None => (&pubs[0].0, &subs[..]),
        };
        let topic = t.topic(owner, "fanout", members).await?;
        let urls = subs
            .iter()
            .chain(&pubs)
            .enumerate()
            .map(|(i, (_, token))| t.args.ws_url(i, token))
            .collect();
        (urls, topic.name, "tidings")
    };
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let total = args.messages * args.publishers as u64;
    let delivered = Arc::new(AtomicU64::new(0));

    let subscribers: Vec<Ws> = stream::iter(urls[..args.subscribers].iter().enumerate())
        .map(|(i, url)| async move {
            let mut ws = client::connect(url, target.source(i), args.bare || args.nats).await?;
            if args.nats {
                nats::handshake(&mut ws, true).await?;
            }
            anyhow::Ok(ws)
        })
        // In order: subscriber i must reconnect as the user it opened as.
        .buffered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let receivers: Vec<_> = subscribers
        .into_iter()
        .enumerate()
        .map(|(i, ws)| {
            let delivered = delivered.clone();
            // Tidings subscribers come back after a 4008 and must then get
            // everything they missed; the references never send one.
            let rejoin = (!args.bare && !args.nats).then(|| (urls[i].clone(), target.source(i)));
            tokio::spawn(async move {
                if args.nats {
                    let got = nats::receive(ws, total, delivered).await;
                    Received {
                        integrity: got.integrity,
                        latency: got.latency,
                        last: got.last,
                        reconnects: 0,
                    }
                } else {
                    receive(ws, total, delivered, rejoin).await
                }
            })
        })
        .collect();

    let cpu_before = report::own_cpu_seconds();
    let server_cpu = report::ServerCpu::start(&args.server_pid);
    let started = client::now_nanos();
    let bar = super::progress(
        "delivered",
        total * args.subscribers as u64,
        delivered.clone(),
    );
    let mut publishers = vec![];
    for (i, url) in urls[args.subscribers..].iter().enumerate() {
        let (url, source) = (url.clone(), target.source(args.subscribers + i));
        let pace = super::Pace::share(args.rate, args.publishers, i);
        let (args, topic_name) = (args.clone(), topic_name.clone());
        publishers.push(super::on_own_thread(move || async move {
            let mut ws = client::connect(&url, source, args.bare || args.nats).await?;
            if args.nats {
                nats::handshake(&mut ws, false).await?;
                let first = i as u64 * args.messages;
                nats::publish(ws, first, args.messages, args.window, args.payload, pace).await?;
                // Core NATS acknowledges nothing per message: no ack latencies.
                return Ok(report::histogram());
            }
            publish(ws, topic_name, args, pace, i as u64).await
        }));
    }
    let mut acks = report::histogram();
    for publisher in futures_util::future::join_all(publishers).await {
        acks.add(&publisher?)?;
    }
    let mut integrity = vec![];
    let mut latency = report::histogram();
    let mut last = started;
    let mut reconnects = 0;
    for receiver in receivers {
        let got = receiver.await?;
        reconnects += got.reconnects;
        latency.add(&got.latency)?;
        last = last.max(got.last.unwrap_or(started));
        integrity.push(got.integrity);
    }
    bar.abort();
    let elapsed = Duration::from_nanos(last.saturating_sub(started));
    let cpu = report::own_cpu_seconds() - cpu_before;
    let server_cpu = server_cpu.and_then(|cpu| cpu.seconds());
    let deliveries: u64 = integrity.iter().map(|i| i.received).sum();
    let mut out = Report::new("fanout");
    out.set("target", label)
        .set("subscribers", args.subscribers)
        .set("publishers", args.publishers)
        .set("messages", total)
        .set("rate_target", args.rate)
        .set("deliveries", deliveries)
        .rate("deliveries_per_s", deliveries, elapsed)
        .rate("messages_per_s", total, elapsed)
        .latency("", &latency)
        .latency("ack_", &acks)
        .set("lost", integrity.iter().map(|i| i.lost(total)).sum::<u64>())
        .set(
            "duplicated",
            integrity.iter().map(|i| i.duplicated).sum::<u64>(),
        )
        .set(
            "out_of_order",
            integrity.iter().map(|i| i.out_of_order).sum::<u64>(),
        )
        .set(
            "against_send_order",
            integrity.iter().map(|i| i.against_send_order).sum::<u64>(),
        )
        .set("reconnects", reconnects)
        .set("seconds", (elapsed.as_secs_f64() * 1000.0).round() / 1000.0)
        .set(
            "client_cpu_percent",
            (cpu / elapsed.as_secs_f64().max(1e-9) * 100.0).round(),
        );
    if let Some(seconds) = server_cpu {
        let per_delivery = seconds * 1e6 / deliveries.max(1) as f64;
        out.set(
            "server_cpu_us_per_delivery",
            (per_delivery * 1000.0).round() / 1000.0,
        );
    }
    if let Some(path) = &target.plot {
        crate::plot::percentiles(path, "fan-out delivery latency", &[(label, &latency)])?;
    }
    Ok(out)
}

/// How long a subscriber waits with nothing arriving before it gives up
/// (checked once a period, so between one and two periods).
const QUIET: Duration = Duration::from_secs(10);

impl Received {
    /// Says why a receiver stopped short, with `BENCH_DEBUG` set.
    fn debug_end(&self, why: &str, total: u64) {
        if std::env::var_os("BENCH_DEBUG").is_some() {
            eprintln!(
                "receiver {why} after {} reconnects, {} received, missing {:?}",
                self.reconnects,
                self.integrity.received,
                self.integrity.missing(total)
            );
        }
    }
}

/// Reads message frames until every seq up to `total` arrived, or the
/// stream goes quiet for a whole [`QUIET`] period. Closed as a slow consumer or cut off, it
/// reconnects to `rejoin` (its own user's URL, source address) and reads on.
///
/// Silence is told by one timer checked when it fires, not a timeout per
/// frame: at millions of frames a second, a timer set and cancelled per
/// frame took a fifth of the tool's CPU, on cores the server shares.
async fn receive(
    mut ws: Ws,
    total: u64,
    delivered: Arc<AtomicU64>,
    rejoin: Option<(String, std::net::IpAddr)>,
) -> Received {
    let mut got = Received {
        integrity: Integrity::default(),
        latency: report::histogram(),
        last: None,
        reconnects: 0,
    };
    let mut unreported = 0;
    // Frames read, and how many there were when the timer last fired.
    let (mut frames, mut heard) = (0u64, 0u64);
    let quiet = tokio::time::sleep(QUIET);
    tokio::pin!(quiet);
    while got.integrity.received < total {
        let next = tokio::select! {
            biased;
            next = ws.next() => next,
            () = &mut quiet => {
                if frames == heard {
                    got.debug_end("went quiet", total);
                    break;
                }
                heard = frames;
                quiet.as_mut().reset(tokio::time::Instant::now() + QUIET);
                continue;
            }
        };
        frames += 1;
        // A 4008 asks for a reconnect; so does a connection that broke (a
        // slow consumer that did not read the close in time is cut off).
        let lost = match &next {
            Some(Ok(Message::Close(Some(close)))) => u16::from(close.code) == 4008,
            Some(Err(_)) => true,
            _ => false,
        };
        if lost && matches!(next, Some(Ok(Message::Close(_)))) {
            // The library queued the answer to the server's close as it read
            // it: sent, it proves everything before was read, and the next
            // connection starts right after (dropped unsent, the server
            // replays what it last wrote, as for a peer that vanished).
            let _ = tokio::time::timeout(QUIET, futures_util::SinkExt::flush(&mut ws)).await;
            // The server saves how far this connection got once it has the
            // answer, then ends it: a reconnect before that end may start
            // from the position saved before, and gets again what was
            // proven read. Wait for the end, as a browser's `close` event
            // does: the connection's, not the library's (which reports the
            // close handshake done, and nothing more to read, as soon as
            // its answer is sent).
            let _ = tokio::time::timeout(QUIET, client::until_closed(ws.get_mut())).await;
        }
        if lost
            && let Some((url, source)) = &rejoin
            && let Ok(again) = client::connect(url, *source, false).await
        {
            ws = again;
            got.reconnects += 1;
            continue;
        }
        let Some(Ok(message)) = next else {
            got.debug_end(&format!("ended: {next:?}"), total);
            break;
        };
        let Message::Text(text) = message else {
            continue;
        };
        let Some(delivery) = client::delivery(&text) else {
            continue;
        };
        let duplicates = got.integrity.duplicated;
        got.integrity.record(delivery.seq);
        if let (Some((publisher, n)), true) =
            (delivery.origin, got.integrity.duplicated == duplicates)
        {
            got.integrity.record_sent(publisher, n);
        }
        let now = client::now_nanos();
        got.last = Some(now);
        let _ = got.latency.record(now.saturating_sub(delivery.sent) / 1000);
        unreported += 1;
        if unreported == 100 {
            delivered.fetch_add(unreported, Ordering::Relaxed);
            unreported = 0;
        }
    }
    delivered.fetch_add(unreported, Ordering::Relaxed);
    got
}

/// Closes the publisher's window when the task reading acks ends.
struct CloseOnDrop(Arc<Semaphore>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Sends `messages` frames, never more than `window` unacknowledged;
/// returns how long each took to be acknowledged (acks come in order).
async fn publish(
    ws: Ws,
    topic: String,
    args: Args,
    pace: super::Pace,
    publisher: u64,
) -> anyhow::Result<Histogram<u64>> {
    let (mut sink, mut stream) = ws.split();
    let window = Arc::new(Semaphore::new(args.window.max(1)));
    let sent_at = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
    let acks = {
        let window = window.clone();
        let sent_at = sent_at.clone();
        let expected = args.messages;
        tokio::spawn(async move {
            // However this ends, the sending loop must not wait for room
            // that no ack will make.
            let _closes = CloseOnDrop(window.clone());
            let mut acked = 0;
            let mut waits = report::histogram();
            while acked < expected {
                match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
                    Ok(Some(Ok(Message::Text(text)))) if text.contains("\"ack\"") => {
                        acked += 1;
                        window.add_permits(1);
                        let sent = sent_at.lock().ok().and_then(|mut q| q.pop_front());
                        if let Some(sent) = sent {
                            let _ = waits.record(Instant::elapsed(&sent).as_micros() as u64);
                        }
                    }
                    Ok(Some(Ok(Message::Text(text)))) if text.contains("\"error\"") => {
                        anyhow::bail!("the server refused a message: {text}");
                    }
                    // Publishers do not read the topic, but a server may
                    // still close one (shutting down, say); this tool does
                    // not reconnect publishers.
                    Ok(Some(Ok(Message::Close(close)))) => {
                        anyhow::bail!(
                            "the server closed a publisher after {acked} acks: {close:?}"
                        );
                    }
                    Ok(Some(Ok(_))) => {}
                    other => anyhow::bail!("publisher stream ended early: {other:?}"),
                }
            }
            Ok(waits)
        })
    };
    let mut tick = pace.ticker();
    for n in 0..args.messages {
        if let Some(tick) = tick.as_mut() {
            tick.tick().await;
        }
        let Ok(room) = window.acquire().await else {
            // The acks stopped: their task says why.
            break;
        };
        room.forget();
        let frame = format!(
            r#"{{"action":"message","topic_name":"{topic}","content":"{}"}}"#,
            client::stamped_in_order(publisher, n, args.payload)
        );
        if let Ok(mut queue) = sent_at.lock() {
            queue.push_back(Instant::now());
        }
        futures_util::SinkExt::send(&mut sink, Message::Text(frame.into())).await?;
    }
    acks.await?
}
