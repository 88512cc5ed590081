//! Retention: a topic's own limits, and the pruner that applies them.
//!
//! The pruner walks the channels that still hold messages, a page at a
//! time, and for each works out the newest seq its limits let go: the
//! count limit from `last_seq` alone, the age limit by scanning the oldest
//! messages left. It then hands that seq to the store, which raises the
//! channel's mark and deletes below it in small batches (see
//! `store/retention.rs` for why publishing never waits long). Every
//! process that serves the API may prune; two pruning at once only repeat
//! each other's work.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{Core, ServiceError};
use crate::model::{Actor, Retention, Topic};
use crate::names::TopicName;
use crate::store::RetainedChannel;
use crate::time::now_millis;

/// Channels read per step of the walk.
const WALK_PAGE: i64 = 500;

/// The longest age a limit may name (100 years), so `now - age` cannot
/// overflow.
const MAX_AGE_SECS: i64 = 100 * 365 * 24 * 3600;

/// What one pass of the pruner did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Channels whose history now starts later.
    pub channels: u64,
    /// Messages deleted.
    pub messages: u64,
}

impl Core {
    /// Sets a topic's own retention (the owner or an admin); a limit left
    /// `None` falls back to the server's default.
    pub async fn set_retention(
        &self,
        actor: &Actor,
        name: &TopicName,
        retention: Retention,
    ) -> Result<Topic, ServiceError> {
        check_limits(retention)?;
        let topic = self.find_topic(name).await?;
        if !actor.is_admin && topic.owner.as_deref() != Some(actor.username.as_str()) {
            return Err(ServiceError::Forbidden(
                "only the owner or an admin may change a topic's retention",
            ));
        }
        self.store.set_retention(actor, &topic, retention).await?;
        self.topics.remove(topic.name.as_str());
        Ok(Topic { retention, ..topic })
    }

    /// One pass over every channel: removes what `default` and each
    /// topic's own limits let go. Once `stopping` is set, the pass ends
    /// after the delete under way.
    pub async fn prune(
        &self,
        default: Retention,
        stopping: &AtomicBool,
    ) -> Result<PruneReport, ServiceError> {
        let mut report = PruneReport::default();
        self.store.forget_publish_outcomes().await?;
        let mut after_id = 0;
        loop {
            let page = self.store.retained_channels(after_id, WALK_PAGE).await?;
            let Some(last) = page.last() else {
                return Ok(report);
            };
            after_id = last.id;
            for channel in page {
                if stopping.load(Ordering::Relaxed) {
                    return Ok(report);
                }
                let through = self.expired_through(&channel, default).await?;
                if through > channel.pruned_seq {
                    report.channels += 1;
                } else if channel.oldest_seq > channel.pruned_seq {
                    continue;
                }
                report.messages += self.store.prune(channel.id, through, stopping).await?;
            }
        }
    }

    /// The newest seq of `channel` its limits let go (its mark if none).
    async fn expired_through(
        &self,
        channel: &RetainedChannel,
        default: Retention,
    ) -> Result<i64, ServiceError> {
        let limits = channel.retention.or(default);
        let mut through = channel.pruned_seq;
        if limits.is_unlimited() {
            return Ok(through);
        }
        if let Some(count) = limits.max_count {
            through = through.max(channel.last_seq - count);
        }
        if let Some(age) = limits.max_age_secs {
            let before = now_millis() - age.clamp(0, MAX_AGE_SECS) * 1000;
            let expired = self
                .store
                .expired_through(
                    channel.id,
                    through.max(channel.oldest_seq - 1),
                    channel.last_seq,
                    before,
                )
                .await?;
            through = through.max(expired);
        }
        Ok(through)
    }

    /// Prunes every `every` until `stop` resolves; a pass under way then
    /// ends after its current delete. A failed pass is logged and tried
    /// again next time: nothing is lost by pruning late.
    pub async fn run_pruner(
        &self,
        default: Retention,
        every: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(stop);
        let stopping = AtomicBool::new(false);
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !stopping.load(Ordering::Relaxed) {
            tokio::select! {
                () = &mut stop => return,
                _ = ticks.tick() => {}
            }
            let started = std::time::Instant::now();
            let pass = self.prune(default, &stopping);
            tokio::pin!(pass);
            let done = tokio::select! {
                done = &mut pass => done,
                () = &mut stop => {
                    stopping.store(true, Ordering::Relaxed);
                    pass.await
                }
            };
            match done {
                Ok(report) if report.messages > 0 => {
                    crate::metrics::pruned(report.messages);
                    tracing::info!(
                        channels = report.channels,
                        messages = report.messages,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "pruned"
                    );
                }
                Ok(_) => {}
                Err(err) => tracing::warn!(%err, "pruning failed; trying again next time"),
            }
        }
    }
}

/// Limits must keep something: at least one message, at least a second.
pub fn check_limits(retention: Retention) -> Result<(), ServiceError> {
    if retention
        .max_age_secs
        .is_some_and(|age| !(1..=MAX_AGE_SECS).contains(&age))
    {
        return Err(ServiceError::Invalid {
            field: "max_age_secs",
            message: format!("must be between 1 and {MAX_AGE_SECS}"),
        });
    }
    if retention.max_count.is_some_and(|count| count < 1) {
        return Err(ServiceError::Invalid {
            field: "max_count",
            message: "must be 1 or more".into(),
        });
    }
    Ok(())
}
