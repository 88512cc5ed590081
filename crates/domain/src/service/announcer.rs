//! The one post-commit path for messages: every commit's messages become
//! events on the bus, in commit order.
//!
//! The announcer runs beside the group-commit writer that feeds it, on the
//! writer's thread: on the shared runtime its turn came after the sessions
//! the last fan-out woke, and on a thread of its own each commit cost one
//! more wake-up before subscribers heard of it. Commits go to the bus one
//! after another, but a pipelining bus (Redis) has several commits' events
//! under way at once. A bus failure does not undo a commit: gateways fill
//! gaps from the store.

use futures_util::StreamExt;
use tokio::sync::mpsc;

use crate::bus::{BusError, SharedBus};
use crate::events::Event;
use crate::log_throttle::LogThrottle;
use crate::model::Audience;
use crate::store::Committed;

/// Announces what `feed` delivers until every sender is gone.
pub(super) async fn run(mut feed: mpsc::Receiver<Vec<Committed>>, bus: SharedBus) {
    let mut under_way = futures_util::stream::FuturesOrdered::new();
    loop {
        tokio::select! {
            commit = feed.recv() => match commit {
                // Polled in the order pushed, so their events go out in order.
                Some(commit) => {
                    let bus = bus.clone();
                    let events = commit.into_iter().map(event).collect();
                    under_way.push_back(async move { bus.publish_all(events).await });
                }
                None => break,
            },
            Some(result) = under_way.next(), if !under_way.is_empty() => {
                if let Err(err) = result {
                    not_published(&err);
                }
            }
        }
    }
    while under_way.next().await.is_some() {}
}

/// While the bus is away every commit's events fail to go out.
static NOT_PUBLISHED: LogThrottle = LogThrottle::new();

/// Logs events the bus did not take, at most once a second.
pub(super) fn not_published(err: &BusError) {
    if let Some(left_out) = NOT_PUBLISHED.admit() {
        tracing::warn!(%err, left_out, "events not published; gateways will catch up from the store");
    }
}

fn event(committed: Committed) -> Event {
    let message = committed.message;
    match committed.audience {
        Audience::Topic { name } => Event::TopicMessage {
            topic: name,
            message,
        },
        Audience::Direct { to } => Event::DirectMessage { to, message },
    }
}
