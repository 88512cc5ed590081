//! A socket's handshake with an access token: the token's account and
//! the user's snapshot in one batched read (see `store/openings.rs`).
//!
//! The snapshot must be read after the session watches its user's events
//! (so a membership added meanwhile is in it or announced to it), and the
//! token's account is what says whose events those are. The token's
//! signature names the user without the store, so the gateway watches
//! that user first and then makes this one read: if the store refuses
//! the token, the watch is simply dropped.

use super::Core;
use super::credentials::{AuthFailure, Authenticated, Bearer, admit};
use super::delivery::busy_retry;
use crate::store::{Opening, SessionSnapshot, Store};

pub(super) type OpeningReader = super::batch::Batcher<(i64, String), Opening>;

pub(super) fn reader(store: Store) -> OpeningReader {
    OpeningReader::new(move |tokens: Vec<(i64, String)>| {
        let store = store.clone();
        async move { busy_retry(|| store.openings(&tokens)).await }
    })
}

impl Core {
    /// Checks `bearer` against the store as it is now and, for a token,
    /// reads its user's snapshot in the same statement; an API key's
    /// socket reads its snapshot once it knows its user.
    pub async fn open_socket(
        &self,
        bearer: Bearer<'_>,
    ) -> Result<(Authenticated, Option<SessionSnapshot>), AuthFailure> {
        match bearer {
            Bearer::Key(key) => Ok((self.authenticate_key(key).await?, None)),
            Bearer::Token(claims) => {
                let key = (claims.uid, claims.sid.clone().unwrap_or_default());
                let found = self.openings.get(key).await?;
                let (account, snapshot) = found.map(|o| (o.account, o.snapshot)).unzip();
                Ok((admit(claims, account)?, snapshot))
            }
        }
    }
}
