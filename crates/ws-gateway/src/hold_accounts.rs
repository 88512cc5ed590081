//! Each user's allowance of holding publishers back (see the domain's
//! `fan_out_lag.rs`), shared by the user's sessions on this process.
//!
//! A session of its own would buy a fresh allowance with every socket: a
//! client that falls behind could reconnect after its 4008, or open ten
//! sockets, and hold every publisher of the process again. So the
//! allowance is the user's, and it is remembered after the user's last
//! socket closes, until it has been regained in full.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use domain::fan_out_lag::HoldAllowance;

/// Users remembered before the first look for allowances to forget.
const FIRST_SWEEP: usize = 1024;

#[derive(Debug)]
pub struct HoldAccounts {
    accounts: Mutex<Accounts>,
}

#[derive(Debug)]
struct Accounts {
    by_user: HashMap<i64, Arc<Mutex<HoldAllowance>>>,
    /// Past this many users, forget those with no session and nothing
    /// left to regain; then twice what is left. A sweep is a pass over
    /// the map, so its cost is spread over as many new users as it had.
    sweep_at: usize,
}

impl Default for HoldAccounts {
    fn default() -> Self {
        Self {
            accounts: Mutex::new(Accounts {
                by_user: HashMap::new(),
                sweep_at: FIRST_SWEEP,
            }),
        }
    }
}

impl HoldAccounts {
    /// `user_id`'s allowance, for one more of its sessions.
    pub fn of(&self, user_id: i64) -> Arc<Mutex<HoldAllowance>> {
        let mut accounts = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        if accounts.by_user.len() >= accounts.sweep_at {
            accounts.by_user.retain(|_, allowance| {
                Arc::strong_count(allowance) > 1
                    || !allowance
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .settled()
            });
            accounts.sweep_at = (accounts.by_user.len() * 2).max(FIRST_SWEEP);
        }
        Arc::clone(accounts.by_user.entry(user_id).or_default())
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        self.accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .by_user
            .len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    #[test]
    fn a_users_sessions_share_one_allowance() {
        let accounts = HoldAccounts::default();
        let (first, second, other) = (accounts.of(1), accounts.of(1), accounts.of(2));
        assert!(Arc::ptr_eq(&first, &second));
        assert!(!Arc::ptr_eq(&first, &other));
    }

    /// An allowance is remembered while a session has it, or while it has
    /// something left to regain; the others are forgotten as users come.
    #[tokio::test(start_paused = true)]
    async fn allowances_are_forgotten_once_unused_and_regained() {
        let accounts = HoldAccounts::default();
        let in_use = accounts.of(-1);
        accounts.of(-2).lock().unwrap().pay(Duration::from_secs(1));
        for user in 2..FIRST_SWEEP as i64 {
            drop(accounts.of(user));
        }
        assert_eq!(accounts.remembered(), FIRST_SWEEP);
        drop(accounts.of(0));
        assert_eq!(
            accounts.remembered(),
            3,
            "in use, still regaining, the new one"
        );
        tokio::time::sleep(Duration::from_secs(60)).await;
        for user in 0..2 * FIRST_SWEEP as i64 {
            drop(accounts.of(user));
        }
        assert!(
            accounts.remembered() < 2 * FIRST_SWEEP,
            "regained in full and forgotten"
        );
        assert!(Arc::ptr_eq(&in_use, &accounts.of(-1)), "still in use");
    }
}
