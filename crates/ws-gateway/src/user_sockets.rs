//! How many sockets each user has open on this process, for
//! `TIDINGS_MAX_SOCKETS_PER_USER`. A process holds about 20,000 sockets
//! (its open-file limit); without a bound per user, one account's token
//! could take every one of them from everyone else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// The open sockets of every user with any, under one limit.
#[derive(Debug)]
pub struct UserSockets {
    /// 0: no limit, and nothing is counted.
    limit: usize,
    open: Mutex<HashMap<i64, usize>>,
}

/// One socket's place in its user's count, given back when dropped: when
/// the session ends, or when a handshake admitted fails to become one.
#[derive(Debug)]
pub struct Seat {
    sockets: Arc<UserSockets>,
    user_id: i64,
}

/// The user has as many sockets open as one may: `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full {
    pub limit: usize,
}

impl UserSockets {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            limit,
            open: Mutex::default(),
        })
    }

    /// A seat for one more socket of `user_id`; none is needed without a
    /// limit.
    pub fn admit(self: &Arc<Self>, user_id: i64) -> Result<Option<Seat>, Full> {
        if self.limit == 0 {
            return Ok(None);
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(user_id).or_default();
        if *count >= self.limit {
            return Err(Full { limit: self.limit });
        }
        *count += 1;
        Ok(Some(Seat {
            sockets: Arc::clone(self),
            user_id,
        }))
    }
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut open = self.sockets.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.user_id) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.user_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn seats_are_counted_per_user_and_given_back_when_dropped() {
        let sockets = UserSockets::new(2);
        let first = sockets.admit(1).unwrap();
        let second = sockets.admit(1).unwrap();
        assert_eq!(sockets.admit(1).err(), Some(Full { limit: 2 }));
        let other = sockets.admit(2).unwrap();
        assert!(other.is_some(), "another user has seats of their own");
        drop(first);
        let again = sockets.admit(1).unwrap();
        assert!(again.is_some());
        drop((second, again, other));
        assert!(
            sockets.open.lock().unwrap().is_empty(),
            "nothing left behind"
        );
    }

    #[test]
    fn without_a_limit_nothing_is_counted() {
        let sockets = UserSockets::new(0);
        let seats: Vec<_> = (0..100).map(|_| sockets.admit(1).unwrap()).collect();
        assert!(seats.iter().all(Option::is_none));
        assert!(sockets.open.lock().unwrap().is_empty());
    }
}
