//! Inbox pages for a user whose inbox holds N notifications.

use std::time::Instant;

use crate::report::{self, Report};
use crate::setup::{Target, TargetArgs};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Notifications in the user's inbox.
    #[arg(long, default_value_t = 100_000)]
    pub notifications: usize,
    /// Page requests to time.
    #[arg(long, default_value_t = 200)]
    pub requests: usize,
}

pub async fn run(target: &TargetArgs, args: Args) -> anyhow::Result<Report> {
    let t = Target::open(target).await?;
    let admin = t.users("a", 1, true).await?.remove(0);
    let reader = t.users("r", 1, false).await?.remove(0);
    let tag = t
        .store
        .create_tag(&admin.0, &format!("b{}inbox", t.run))
        .await?;
    t.store.subscribe(&admin.0, reader.0.id, tag.id).await?;
    for i in 0..args.notifications {
        t.store
            .create_notification(&admin.0, tag.id, &format!("n{i}"))
            .await?;
    }
    let http = reqwest::Client::new();
    let mut first = report::histogram();
    let mut unread = report::histogram();
    let mut deep = report::histogram();
    for i in 0..args.requests {
        for (query, histogram) in [
            ("page=1&page_size=20".to_owned(), &mut first),
            ("page=1&page_size=20&unread=true".to_owned(), &mut unread),
            (format!("page={}&page_size=20", 50 + i % 50), &mut deep),
        ] {
            let started = Instant::now();
            let response = http
                .get(format!("{}/api/notifications/?{query}", t.args.api))
                .bearer_auth(&reader.1)
                .send()
                .await?;
            anyhow::ensure!(
                response.status().is_success(),
                "inbox failed: {}",
                response.status()
            );
            let _ = response.bytes().await?;
            histogram.record(started.elapsed().as_micros() as u64)?;
        }
    }
    let mut out = Report::new("inbox");
    out.set("notifications", args.notifications)
        .set("requests", args.requests)
        .latency("first_page_", &first)
        .latency("unread_page_", &unread)
        .latency("deep_page_", &deep);
    Ok(out)
}
