//! The peer and the conversation a direct message names, resolved in
//! batches (see `batch.rs` and the store's `conversations.rs`): when many
//! senders a process does not remember write at once (after a restart, or
//! when many conversations begin together), one read answers all of them
//! and one statement creates the conversations that are new.

use super::delivery::busy_retry;
use crate::model::User;
use crate::store::Store;

pub(super) type ConversationReader = super::batch::Batcher<(i64, String), (User, i64)>;

pub(super) fn reader(store: Store) -> ConversationReader {
    ConversationReader::new(move |asks: Vec<(i64, String)>| {
        let store = store.clone();
        async move { busy_retry(|| store.direct_conversations(&asks)).await }
    })
}
