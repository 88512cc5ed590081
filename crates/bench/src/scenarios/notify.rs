//! Notifications: a tag with N subscribers, K of them online. Each
//! notification is created through the REST API; we time the request and
//! the moment the last online subscriber has it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, stream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::client;
use crate::report::{self, Report};
use crate::setup::{Target, TargetArgs};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Subscribers of the tag.
    #[arg(long, default_value_t = 100_000)]
    pub subscribers: usize,
    /// How many of them are connected.
    #[arg(long, default_value_t = 1000)]
    pub online: usize,
    /// Notifications to create, one after another.
    #[arg(long, default_value_t = 20)]
    pub notifications: usize,
}

pub async fn run(target: &TargetArgs, args: Args) -> anyhow::Result<Report> {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let t = Target::open(target).await?;
    let admin = t.users("a", 1, true).await?.remove(0);
    let tag = t
        .store
        .create_tag(&admin.0, &format!("b{}tag", t.run))
        .await?;
    let created = Arc::new(AtomicU64::new(0));
    let bar = super::progress("setup", args.subscribers as u64, created.clone());
    let mut online = vec![];
    for chunk in 0..args.subscribers.div_ceil(1000) {
        let n = 1000.min(args.subscribers - chunk * 1000);
        let users = t.users(&format!("n{chunk}x"), n, false).await?;
        for (user, token) in users {
            t.store.subscribe(&admin.0, user.id, tag.id).await?;
            if online.len() < args.online {
                online.push(token);
            }
        }
        created.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
    }
    bar.abort();

    let (tx, mut rx) = mpsc::unbounded_channel::<(u64, Instant)>();
    let sockets: Vec<client::Ws> = stream::iter(online.iter().enumerate())
        .map(|(i, token)| {
            let (url, source) = (t.args.ws_url(i, token), t.args.source(i));
            async move { client::connect(&url, source, false).await }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    for mut ws in sockets {
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = ws.next().await {
                if let Message::Text(text) = message
                    && text.contains("\"type\":\"notification\"")
                    && let Some(id) = client::field(&text, "\"id\":")
                {
                    let _ = tx.send((id, Instant::now()));
                }
            }
        });
    }

    let http = reqwest::Client::new();
    let mut create = report::histogram();
    let mut everyone = report::histogram();
    let mut missing = 0;
    for i in 0..args.notifications {
        let started = Instant::now();
        let response = http
            .post(format!("{}/api/notifications/", t.args.api))
            .bearer_auth(&admin.1)
            .json(&serde_json::json!({"tag": tag.id, "message": format!("bench {i}")}))
            .send()
            .await?;
        let took = started.elapsed();
        anyhow::ensure!(
            response.status().as_u16() == 201,
            "create failed: {}",
            response.status()
        );
        let body: serde_json::Value = response.json().await?;
        let id = body["id"].as_u64().unwrap_or_default();
        create.record(took.as_micros() as u64)?;
        let mut have: HashMap<u64, usize> = HashMap::new();
        let deadline = started + Duration::from_secs(10);
        let mut last = started;
        while have.get(&id).copied().unwrap_or(0) < args.online {
            let Ok(Some((got, at))) = tokio::time::timeout_at(deadline.into(), rx.recv()).await
            else {
                break;
            };
            *have.entry(got).or_default() += 1;
            if got == id {
                last = at;
            }
        }
        missing += args.online - have.get(&id).copied().unwrap_or(0).min(args.online);
        everyone.record(last.duration_since(started).as_micros() as u64)?;
    }
    let mut out = Report::new("notify");
    out.set("subscribers", args.subscribers)
        .set("online", args.online)
        .set("notifications", args.notifications)
        .latency("create_", &create)
        .latency("all_online_", &everyone)
        .set("missing", missing);
    Ok(out)
}
