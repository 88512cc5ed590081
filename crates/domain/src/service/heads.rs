//! Whether a session has anything to catch up on, read in batches (see
//! `batch.rs`): a socket that opens, or resyncs after a bus outage, asks
//! for the newest seq of every channel and tag it follows, and reads the
//! backlog of only those that moved past its position. A client with
//! twenty quiet topics costs one batched read instead of twenty.
//!
//! The session asks after it started watching those streams, so whatever
//! is committed after the read arrives as a live event.

use std::collections::HashMap;

use super::delivery::busy_retry;
use super::{Core, ServiceError};
use crate::store::{Store, Stream};

pub(super) type HeadReader = super::batch::Batcher<Stream, i64>;

pub(super) fn reader(store: Store) -> HeadReader {
    HeadReader::new(move |streams: Vec<Stream>| {
        let store = store.clone();
        async move { busy_retry(|| store.stream_heads(&streams)).await }
    })
}

impl Core {
    /// The newest seq of each of `streams`; one that is gone is absent.
    pub async fn stream_heads(
        &self,
        streams: &[Stream],
    ) -> Result<HashMap<Stream, i64>, ServiceError> {
        let reads = streams.iter().map(|stream| self.heads.get(*stream));
        let found = futures_util::future::try_join_all(reads).await?;
        Ok(streams
            .iter()
            .zip(found)
            .filter_map(|(stream, head)| Some((*stream, head?)))
            .collect())
    }
}
