//! One module per scenario; each returns a [`Report`](crate::report::Report).

pub mod backlog;
pub mod connect;
pub mod fanout;
pub mod idle;
pub mod inbox;
pub mod nats;
pub mod notify;
pub mod topics;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Runs the future `make` builds on a thread of its own, with a one-thread
/// runtime. A publisher's acks then come in as they arrive, instead of
/// waiting behind a thousand subscriber tasks: with a cap on messages in
/// flight, a late ack would throttle the publisher and measure the tool.
pub async fn on_own_thread<F, Fut, T>(make: F) -> anyhow::Result<T>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
    T: Send + 'static,
{
    let (done, result) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("bench-publisher".into())
        .spawn(move || {
            let outcome = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| runtime.block_on(make()));
            let _ = done.send(outcome);
        })?;
    result.await?
}

/// One sender's share of a total rate, and where in the period its sends
/// fall: many senders at the same rate spread their sends over the period
/// rather than all sending at once.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// 0: as fast as the window allows.
    per_second: u64,
    /// 0 to 1: how far into a period the first send comes.
    phase: f64,
}

impl Pace {
    /// Sender `index` of `senders` that together send `rate` messages per
    /// second (0: unpaced).
    pub fn share(rate: u64, senders: usize, index: usize) -> Self {
        let senders = senders.max(1);
        let per_second = if rate == 0 {
            0
        } else {
            (rate / senders as u64).max(1)
        };
        Self {
            per_second,
            phase: index as f64 / senders as f64,
        }
    }

    /// The ticker, made on the runtime that will poll it, or none when
    /// unpaced. Ticks missed while the window was full are sent in a burst
    /// once it frees, so the offered rate stays the one asked for.
    pub fn ticker(self) -> Option<tokio::time::Interval> {
        (self.per_second > 0).then(|| {
            let period = Duration::from_secs_f64(1.0 / self.per_second as f64);
            let first = tokio::time::Instant::now() + period.mul_f64(self.phase.clamp(0.0, 1.0));
            let mut interval = tokio::time::interval_at(first, period);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            interval
        })
    }
}

/// A progress bar over a shared counter, refreshed by its own task.
pub fn progress(label: &str, total: u64, counter: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    let bar = ProgressBar::new(total);
    let style =
        ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar.set_message(label.to_owned());
    tokio::spawn(async move {
        loop {
            let done = counter.load(Ordering::Relaxed);
            bar.set_position(done.min(total));
            if done >= total {
                bar.finish_and_clear();
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}
