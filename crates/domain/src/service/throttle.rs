//! Login throttling: a token bucket per username and one per client
//! address. Every attempt takes a token from both before the password is
//! checked (so a flood of concurrent guesses cannot all slip through
//! before the first failure is counted), and a successful login gives its
//! tokens back: only failures use the allowance up.
//!
//! Pure bookkeeping over a clock the caller passes in, so the rules are
//! tested without waiting.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// How many failures a bucket allows at once, and how fast it refills.
#[derive(Debug, Clone, Copy)]
pub struct Allowance {
    pub burst: f64,
    pub per_second: f64,
}

/// Per username: 10 failures, then one more every 6 s.
pub const PER_USERNAME: Allowance = Allowance {
    burst: 10.0,
    per_second: 1.0 / 6.0,
};
/// Per client address: 30 failures, then one more per second.
pub const PER_ADDRESS: Allowance = Allowance {
    burst: 30.0,
    per_second: 1.0,
};
/// Buckets kept before full ones (which say nothing) are dropped.
const MAX_BUCKETS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Who {
    User(String),
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

#[derive(Debug)]
pub struct LoginThrottle {
    per_username: Allowance,
    per_address: Allowance,
    buckets: Mutex<HashMap<Who, Bucket>>,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(PER_USERNAME, PER_ADDRESS)
    }
}

impl LoginThrottle {
    pub fn new(per_username: Allowance, per_address: Allowance) -> Self {
        Self {
            per_username,
            per_address,
            buckets: Mutex::default(),
        }
    }

    /// Takes an attempt for `username` from `address`, or says how long to
    /// wait before the next one is allowed.
    pub fn attempt(
        &self,
        username: &str,
        address: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), Duration> {
        let keys = self.keys(username, address);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > MAX_BUCKETS {
            self.forget_full(&mut buckets, now);
        }
        let mut wait = Duration::ZERO;
        for (who, allowance) in &keys {
            let bucket = refilled(buckets.get(who), *allowance, now);
            if bucket.tokens < 1.0 {
                let missing = (1.0 - bucket.tokens) / allowance.per_second;
                wait = wait.max(Duration::from_secs_f64(missing));
            }
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        for (who, allowance) in keys {
            let mut bucket = refilled(buckets.get(&who), allowance, now);
            bucket.tokens -= 1.0;
            buckets.insert(who, bucket);
        }
        Ok(())
    }

    /// A successful login: its attempt does not count.
    pub fn succeeded(&self, username: &str, address: Option<IpAddr>, now: Instant) {
        let keys = self.keys(username, address);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        for (who, allowance) in keys {
            let mut bucket = refilled(buckets.get(&who), allowance, now);
            bucket.tokens = (bucket.tokens + 1.0).min(allowance.burst);
            buckets.insert(who, bucket);
        }
    }

    fn keys(&self, username: &str, address: Option<IpAddr>) -> Vec<(Who, Allowance)> {
        let mut keys = vec![(Who::User(username.to_owned()), self.per_username)];
        if let Some(address) = address {
            keys.push((Who::Address(address), self.per_address));
        }
        keys
    }

    fn forget_full(&self, buckets: &mut HashMap<Who, Bucket>, now: Instant) {
        buckets.retain(|who, bucket| {
            let allowance = match who {
                Who::User(_) => self.per_username,
                Who::Address(_) => self.per_address,
            };
            refilled(Some(bucket), allowance, now).tokens < allowance.burst
        });
    }
}

fn refilled(bucket: Option<&Bucket>, allowance: Allowance, now: Instant) -> Bucket {
    match bucket {
        None => Bucket {
            tokens: allowance.burst,
            at: now,
        },
        Some(bucket) => {
            let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
            Bucket {
                tokens: (bucket.tokens + elapsed * allowance.per_second).min(allowance.burst),
                at: now,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use tokio::time::Instant;

    use super::{Allowance, LoginThrottle};

    const ONE: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    const TWO: Option<IpAddr> = Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(
            Allowance {
                burst: 3.0,
                per_second: 1.0,
            },
            Allowance {
                burst: 5.0,
                per_second: 0.5,
            },
        )
    }

    #[test]
    fn a_username_gets_its_burst_then_waits_for_the_refill() {
        let (t, now) = (throttle(), Instant::now());
        for _ in 0..3 {
            assert_eq!(t.attempt("alice", ONE, now), Ok(()));
        }
        let wait = t.attempt("alice", TWO, now).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        assert_eq!(
            t.attempt("alice", TWO, now + Duration::from_secs(1)),
            Ok(())
        );
        assert_eq!(
            t.attempt("bob", ONE, now),
            Ok(()),
            "other names are not held up"
        );
    }

    #[test]
    fn an_address_is_throttled_across_usernames() {
        let (t, now) = (throttle(), Instant::now());
        for name in ["a", "b", "c", "d", "e"] {
            assert_eq!(t.attempt(name, ONE, now), Ok(()));
        }
        assert_eq!(t.attempt("f", ONE, now), Err(Duration::from_secs(2)));
        assert_eq!(t.attempt("f", TWO, now), Ok(()), "another address may try");
    }

    #[test]
    fn successes_give_their_attempt_back() {
        let (t, now) = (throttle(), Instant::now());
        for _ in 0..10 {
            assert_eq!(t.attempt("alice", ONE, now), Ok(()));
            t.succeeded("alice", ONE, now);
        }
    }

    #[test]
    fn a_refused_attempt_takes_nothing() {
        let (t, now) = (throttle(), Instant::now());
        for _ in 0..3 {
            t.attempt("alice", ONE, now).unwrap();
        }
        for _ in 0..10 {
            assert!(t.attempt("alice", ONE, now).is_err());
        }
        // The address spent 3 of its 5: two other names still pass.
        assert_eq!(t.attempt("b", ONE, now), Ok(()));
        assert_eq!(t.attempt("c", ONE, now), Ok(()));
        assert!(t.attempt("d", ONE, now).is_err());
    }
}
