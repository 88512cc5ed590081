//! Errors that come in floods are logged at most once a second. During a
//! database outage every publish and every request fails the same way:
//! thousands of identical lines a second would fill a disk and bury the
//! one line that says what happened. The line that is written says how
//! many were left out before it.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use crate::time::now_millis;

/// One kind of flooding line.
pub struct LogThrottle {
    /// The second (since the epoch) of the last line written.
    second: AtomicI64,
    left_out: AtomicU64,
}

impl LogThrottle {
    pub const fn new() -> Self {
        Self {
            second: AtomicI64::new(i64::MIN),
            left_out: AtomicU64::new(0),
        }
    }

    /// `Some(lines left out since the last one)` when this line is to be
    /// written, `None` when it is left out.
    pub fn admit(&self) -> Option<u64> {
        self.admit_at(now_millis().div_euclid(1000))
    }

    fn admit_at(&self, now: i64) -> Option<u64> {
        let last = self.second.load(Ordering::Relaxed);
        if now != last
            && self
                .second
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.left_out.swap(0, Ordering::Relaxed));
        }
        self.left_out.fetch_add(1, Ordering::Relaxed);
        None
    }
}

impl Default for LogThrottle {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::LogThrottle;

    #[test]
    fn one_line_a_second_then_the_count_left_out() {
        let throttle = LogThrottle::new();
        assert_eq!(throttle.admit_at(10), Some(0));
        assert!((0..1000).all(|_| throttle.admit_at(10).is_none()));
        assert_eq!(throttle.admit_at(11), Some(1000));
        assert_eq!(throttle.admit_at(11), None);
        assert_eq!(throttle.admit_at(12), Some(1));
    }
}
