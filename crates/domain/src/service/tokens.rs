//! The account behind a token, read in batches (see `batch.rs`): every
//! REST request and every handshake makes this read.
//!
//! Batching changes nothing about revocation: a batch is read after each
//! of its requests arrived, so a change committed before a request is
//! seen by it, as it would be by a read of its own.

use super::delivery::busy_retry;
use super::{Core, ServiceError};
use crate::store::{Store, TokenAccount};

pub(super) type TokenReader = super::batch::Batcher<(i64, String), TokenAccount>;

pub(super) fn reader(store: Store) -> TokenReader {
    TokenReader::new(move |tokens: Vec<(i64, String)>| {
        let store = store.clone();
        async move { busy_retry(|| store.token_accounts(&tokens)).await }
    })
}

impl Core {
    /// The live account `user_id` names, and whether the login session
    /// `sid` ("" for none) is revoked; `None` when the user is gone.
    pub(super) async fn token_account(
        &self,
        user_id: i64,
        sid: &str,
    ) -> Result<Option<TokenAccount>, ServiceError> {
        self.tokens.get((user_id, sid.to_owned())).await
    }
}
