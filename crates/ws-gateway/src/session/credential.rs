//! Whether the credential a socket opened with still works, beyond the
//! revocations the hub hands the session (`Event::Revoked`): those that
//! went by before the session registered, and those lost with the bus.

use super::patience::patiently;
use super::{End, Session, close};

impl Session {
    /// Closes with 4003 if a revocation of this socket's credential went
    /// by between the handshake's check and the session's registration.
    pub(super) async fn revoked_since_check(&mut self) -> Result<(), End> {
        let revocations = &self.state.hub.revocations;
        match revocations.since(self.revocation_mark, self.actor.id) {
            Some(seen) if seen.iter().any(|r| self.credential.is_revoked_by(r)) => {
                Err(End::Close(close::REVOKED, "credential revoked"))
            }
            Some(_) => Ok(()),
            // The record no longer reaches back to the check.
            None => self.recheck_credential().await,
        }
    }

    /// Asks the store whether the credential still works; closes with 4003
    /// if not. After a resync, events (a revocation among them) may have
    /// been lost.
    pub(super) async fn recheck_credential(&mut self) -> Result<(), End> {
        let (core, me, credential) = (&self.state.core, self.actor.id, &self.credential);
        let live = patiently("a credential's recheck", || {
            core.credential_is_live(me, credential)
        })
        .await?;
        if live {
            Ok(())
        } else {
            Err(End::Close(close::REVOKED, "credential revoked"))
        }
    }
}
