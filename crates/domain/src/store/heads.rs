//! How far channels and tags have got: their newest seq, for many at once.

use std::collections::HashMap;

use super::{Store, StoreError, batch_reads, in_list};

/// A stream a session delivers: a channel's messages or a tag's
/// notifications.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Channel(i64),
    Tag(i64),
}

#[derive(sqlx::FromRow)]
struct HeadRow {
    kind: i64,
    id: i64,
    last_seq: i64,
}

impl Store {
    /// The newest seq of each stream, in one statement (a channel that is
    /// gone is absent).
    pub async fn stream_heads(
        &self,
        streams: &[Stream],
    ) -> Result<HashMap<Stream, i64>, StoreError> {
        let channels: Vec<i64> = streams
            .iter()
            .filter_map(|s| match s {
                Stream::Channel(id) => Some(*id),
                Stream::Tag(_) => None,
            })
            .collect();
        let tags: Vec<i64> = streams
            .iter()
            .filter_map(|s| match s {
                Stream::Tag(id) => Some(*id),
                Stream::Channel(_) => None,
            })
            .collect();
        let mut parts = Vec::new();
        if !channels.is_empty() {
            parts.push(format!(
                "SELECT CAST(0 AS BIGINT) AS kind, id, last_seq FROM channels WHERE id IN ({})",
                in_list(self.backend, 1, channels.len())
            ));
        }
        if !tags.is_empty() {
            parts.push(format!(
                "SELECT CAST(1 AS BIGINT) AS kind, id, last_seq FROM tags WHERE id IN ({})",
                in_list(self.backend, channels.len() + 1, tags.len())
            ));
        }
        if parts.is_empty() {
            return Ok(HashMap::new());
        }
        let sql = parts.join(" UNION ALL ");
        let mut query = sqlx::query_as::<_, HeadRow>(&sql);
        for id in channels.iter().chain(&tags) {
            query = query.bind(*id);
        }
        let rows = batch_reads::fetch_all(&self.batch_reads.heads, query).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let stream = if row.kind == 0 {
                    Stream::Channel(row.id)
                } else {
                    Stream::Tag(row.id)
                };
                (stream, row.last_seq)
            })
            .collect())
    }
}
