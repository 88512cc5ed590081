//! Graceful shutdown: SIGTERM or ctrl-c flips one watch channel that every
//! server, socket and background task selects on.

use std::time::Instant;

use tokio::sync::watch;

/// A cloneable handle: `trigger` from anywhere, `wait` anywhere.
#[derive(Clone, Debug)]
pub struct Shutdown {
    /// When it was first triggered: what is left of a grace period is
    /// counted from there, not from whenever each task notices.
    sender: watch::Sender<Option<Instant>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self::new()
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Self {
            sender: watch::channel(None).0,
        }
    }

    pub fn trigger(&self) {
        self.sender.send_if_modified(|at| {
            let first = at.is_none();
            at.get_or_insert_with(Instant::now);
            first
        });
    }

    /// Whether shutdown has been triggered.
    pub fn triggered(&self) -> bool {
        self.sender.borrow().is_some()
    }

    /// Resolves once shutdown has been triggered.
    pub async fn wait(&self) {
        self.since().await;
    }

    /// Resolves once shutdown has been triggered, to when it was.
    pub async fn since(&self) -> Instant {
        let mut receiver = self.sender.subscribe();
        match receiver.wait_for(Option::is_some).await {
            Ok(at) => at.unwrap_or_else(Instant::now),
            // The sender lives in `self`: never closed while we wait.
            Err(_) => Instant::now(),
        }
    }

    /// Resolves `grace` after shutdown was triggered.
    pub async fn past(&self, grace: std::time::Duration) {
        let since = self.since().await;
        tokio::time::sleep_until((since + grace).into()).await;
    }

    /// Triggers on SIGTERM or ctrl-c.
    pub fn on_signals(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            signal().await;
            tracing::info!("shutdown signal received");
            this.trigger();
        });
    }
}

async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::Shutdown;

    /// Grace periods count from the first signal: a second one (a second
    /// ctrl-c, a test's drop) must not push the deadline back.
    #[tokio::test]
    async fn the_first_trigger_dates_the_shutdown() {
        let shutdown = Shutdown::new();
        assert!(!shutdown.triggered());
        shutdown.trigger();
        assert!(shutdown.triggered());
        let first = shutdown.since().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
        shutdown.trigger();
        assert_eq!(shutdown.since().await, first);
    }
}
