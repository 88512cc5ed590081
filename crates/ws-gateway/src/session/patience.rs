//! What a session does when it needs the store and the database is away.
//!
//! An outage (a restart, a failover, a cut link) lasts seconds, and a
//! session needs the store during one when it catches up, rechecks its
//! credential or reloads its memberships, as every session does at once
//! after a resync. Closing with 1011 then sent every client into handshakes
//! that failed the same way, and into a reconnect storm once the database
//! was back. The session waits for the store instead, as its publishes do:
//! it does nothing else meanwhile, so nothing is delivered out of order,
//! and it gives up (1011) only after [`PATIENCE`].

use std::future::Future;
use std::time::Duration;

use domain::service::ServiceError;
use tokio::time::Instant;

use super::{End, close};

/// How long a session waits for a database that is away.
const PATIENCE: Duration = Duration::from_secs(10);
/// The first pause between attempts, doubled up to [`LONGEST_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(50);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

/// Runs `read` until it answers, again while the store is away (for up to
/// [`PATIENCE`]); any other failure, or the end of patience, closes the
/// socket with 1011, its failure logged as met `during` what.
pub(super) async fn patiently<T, F, Fut>(during: &'static str, mut read: F) -> Result<T, End>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ServiceError>>,
{
    let deadline = Instant::now() + PATIENCE;
    let mut pause = FIRST_PAUSE;
    loop {
        match read().await {
            Ok(value) => return Ok(value),
            Err(err) if err.is_outage() && Instant::now() + pause < deadline => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(LONGEST_PAUSE);
            }
            Err(err) => {
                crate::error::store_failure(during, &err);
                return Err(End::Close(close::INTERNAL, "internal error; reconnect"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use domain::store::StoreError;

    use super::*;

    fn away() -> ServiceError {
        ServiceError::Store(StoreError::Unavailable("no answer".into()))
    }

    #[tokio::test(start_paused = true)]
    async fn waits_out_an_outage_and_takes_the_answer() {
        let calls = AtomicUsize::new(0);
        let answer = patiently("a test", || async {
            match calls.fetch_add(1, Ordering::Relaxed) {
                0..3 => Err(away()),
                _ => Ok(7),
            }
        })
        .await;
        assert!(matches!(answer, Ok(7)), "{answer:?}");
        assert_eq!(calls.load(Ordering::Relaxed), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refusal_closes_at_once() {
        let calls = AtomicUsize::new(0);
        let answer: Result<(), End> = patiently("a test", || async {
            calls.fetch_add(1, Ordering::Relaxed);
            Err(ServiceError::Internal("refused"))
        })
        .await;
        assert!(matches!(answer, Err(End::Close(close::INTERNAL, _))));
        assert_eq!(calls.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn an_outage_longer_than_its_patience_closes() {
        let start = Instant::now();
        let answer: Result<(), End> = patiently("a test", || async { Err(away()) }).await;
        assert!(matches!(answer, Err(End::Close(close::INTERNAL, _))));
        let waited = start.elapsed();
        assert!(
            waited > PATIENCE - 2 * LONGEST_PAUSE && waited <= PATIENCE,
            "{waited:?}"
        );
    }
}
