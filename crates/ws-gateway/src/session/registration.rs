//! A session's place in the hub, made before its socket is upgraded: the
//! handshake watches a token's user before the store read that checks the
//! token and reads the user's snapshot (see the domain's `openings.rs`).
//!
//! The handshake runs inside hyper's connection future, which hyper drops
//! when the client resets the connection mid-request: the handshake's
//! future is dropped at whatever `.await` it was on, and no code after it
//! runs. The watch is therefore held by a guard that lets go of it when
//! dropped, unless a session took it over.

use std::sync::Arc;

use domain::events::Key;
use tokio::sync::mpsc;

use crate::GatewayState;
use crate::hub::{Hub, Outbound, SessionHandle, SessionId};

pub struct Registration {
    pub(super) id: SessionId,
    pub(super) handle: SessionHandle,
    pub(super) receiver: mpsc::UnboundedReceiver<Outbound>,
    /// The user whose events are watched already.
    watched: Option<Watched>,
}

impl Registration {
    pub fn new(state: &GatewayState) -> Self {
        let limit = state.config.outbound_queue.max(1);
        let (queue, receiver) = mpsc::unbounded_channel();
        Self {
            id: state.hub.next_session_id(),
            handle: SessionHandle::new(queue, limit, Arc::clone(state.core.fan_out_lag())),
            receiver,
            watched: None,
        }
    }

    /// The session's holding of publishers is paid for from `user_id`'s
    /// allowance (see `hold_accounts.rs`).
    pub fn bill_holds_to(&self, state: &GatewayState, user_id: i64) {
        self.handle.backlog.bill_to(state.hold_accounts.of(user_id));
    }

    /// Routes `user_id`'s events here from now on. The guard is armed
    /// before the watch starts, so a handshake dropped halfway through it
    /// still lets go.
    pub async fn watch_user(&mut self, state: &GatewayState, user_id: i64) {
        let watched = self.watched.insert(Watched {
            hub: Arc::clone(&state.hub),
            key: Key::User(user_id),
            id: self.id,
            armed: true,
        });
        state.hub.watch(watched.key, self.id, &self.handle).await;
    }

    /// Undoes the watch of a handshake that did not become a session,
    /// before its refusal is answered.
    pub async fn abandon(mut self) {
        if let Some(mut watched) = self.watched.take() {
            watched.armed = false;
            watched.hub.unwatch(watched.key, watched.id).await;
        }
    }

    /// Hands the watch to the session, which lets go of it as it ends;
    /// whether the user is watched already.
    pub(super) fn take_over(&mut self) -> bool {
        self.watched.take().map(|mut w| w.armed = false).is_some()
    }
}

/// A watch on a key that a dropped handshake must let go of.
struct Watched {
    hub: Arc<Hub>,
    key: Key,
    id: SessionId,
    armed: bool,
}

impl Drop for Watched {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (hub, key, id) = (Arc::clone(&self.hub), self.key, self.id);
        // Dropped on the runtime (hyper's connection task); without one
        // the process is going away and the hub with it.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { hub.unwatch(key, id).await });
        }
    }
}
