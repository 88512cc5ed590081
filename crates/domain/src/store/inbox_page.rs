//! Inbox pages that stay fast however many notifications a user holds.
//!
//! A user's inbox is a handful of ranges (one per subscription) over the
//! tags' sequences. Counting is arithmetic on those ranges, corrected by
//! the user's few explicit `inbox_state` rows; a page is, per range, a
//! reverse walk of the `(tag_id, seq)` index that stops after
//! `offset + limit` rows, merged by id (ids are handed out in commit order,
//! so within a tag seq order is id order).

use super::inbox::ItemRow;
use super::{Store, StoreError, flag};
use crate::model::InboxItem;
use crate::paging::{Page, PageRequest};

/// One subscription's share of the inbox: seqs in `(start_seq, end_seq]`.
#[derive(sqlx::FromRow)]
struct Range {
    tag_id: i64,
    start_seq: i64,
    end_seq: i64,
}

/// The explicit state rows inside one range.
#[derive(sqlx::FromRow)]
struct Overrides {
    deleted: i64,
    explicit_read: i64,
    overridden_below_watermark: i64,
}

/// Explicitly marked, else read when at or below the read-all watermark.
const READ: &str = "COALESCE((SELECT st.is_read FROM inbox_state st \
     WHERE st.user_id = $1 AND st.notification_id = n.id), CASE WHEN n.id <= $5 THEN 1 ELSE 0 END)";

impl Store {
    /// Newest first; `unread` filters on the read flag.
    pub async fn inbox_page(
        &self,
        user_id: i64,
        unread: Option<bool>,
        page: PageRequest,
    ) -> Result<Page<InboxItem>, StoreError> {
        let ranges: Vec<Range> = sqlx::query_as(
            "SELECT s.tag_id, s.start_seq, COALESCE(s.end_seq, t.last_seq) AS end_seq \
             FROM subscriptions s JOIN tags t ON t.id = s.tag_id WHERE s.user_id = $1",
        )
        .bind(user_id)
        .fetch_all(&self.read)
        .await?;
        let watermark: i64 = sqlx::query_scalar("SELECT read_watermark FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_optional(&self.read)
            .await?
            .unwrap_or(0);
        let want_read = unread.map(|unread| flag(!unread));
        let mut count = 0;
        let mut items = Vec::new();
        for range in ranges.iter().filter(|r| r.end_seq > r.start_seq) {
            count += self.range_count(user_id, range, watermark, unread).await?;
            // Correlated lookups rather than a join keep the index walk
            // visible to the planner: PostgreSQL cannot estimate how many
            // rows survive a join filter and would sort the whole range.
            let filter = if want_read.is_some() {
                format!("AND {READ} = $6")
            } else {
                String::new()
            };
            let rows: Vec<ItemRow> = sqlx::query_as(&format!(
                "SELECT n.id, n.tag_id, n.seq, n.message, n.created_at, {READ} AS is_read \
                 FROM notifications n \
                 WHERE n.tag_id = $2 AND n.seq > $3 AND n.seq <= $4 \
                 AND NOT EXISTS (SELECT 1 FROM inbox_state d \
                     WHERE d.user_id = $1 AND d.notification_id = n.id AND d.is_deleted = 1) \
                 {filter} ORDER BY n.seq DESC LIMIT $7"
            ))
            .bind(user_id)
            .bind(range.tag_id)
            .bind(range.start_seq)
            .bind(range.end_seq)
            .bind(watermark)
            .bind(want_read.unwrap_or(0))
            .bind(page.offset() + page.limit())
            .fetch_all(&self.read)
            .await?;
            items.extend(rows.into_iter().map(InboxItem::from));
        }
        items.sort_unstable_by_key(|item| std::cmp::Reverse(item.id));
        let results = items
            .into_iter()
            .skip(page.offset() as usize)
            .take(page.limit() as usize)
            .collect();
        Ok(Page::new(page, count, results))
    }

    /// How many items of one range the page's filter keeps.
    async fn range_count(
        &self,
        user_id: i64,
        range: &Range,
        watermark: i64,
        unread: Option<bool>,
    ) -> Result<i64, StoreError> {
        let o: Overrides = sqlx::query_as(
            "SELECT \
               COALESCE(SUM(CASE WHEN st.is_deleted = 1 THEN 1 ELSE 0 END), 0) AS deleted, \
               COALESCE(SUM(CASE WHEN st.is_deleted = 0 AND st.is_read = 1 THEN 1 ELSE 0 END), 0) AS explicit_read, \
               COALESCE(SUM(CASE WHEN n.id <= $5 AND (st.is_deleted = 1 OR st.is_read IS NOT NULL) \
                            THEN 1 ELSE 0 END), 0) AS overridden_below_watermark \
             FROM inbox_state st JOIN notifications n ON n.id = st.notification_id \
             WHERE st.user_id = $1 AND n.tag_id = $2 AND n.seq > $3 AND n.seq <= $4",
        )
        .bind(user_id)
        .bind(range.tag_id)
        .bind(range.start_seq)
        .bind(range.end_seq)
        .bind(watermark)
        .fetch_one(&self.read)
        .await?;
        let visible = range.end_seq - range.start_seq - o.deleted;
        let Some(unread) = unread else {
            return Ok(visible);
        };
        // Read by the watermark: those at or below it with no explicit state.
        let below: i64 = if watermark > 0 {
            sqlx::query_scalar(
                "SELECT COUNT(*) FROM notifications \
                 WHERE tag_id = $1 AND seq > $2 AND seq <= $3 AND id <= $4",
            )
            .bind(range.tag_id)
            .bind(range.start_seq)
            .bind(range.end_seq)
            .bind(watermark)
            .fetch_one(&self.read)
            .await?
        } else {
            0
        };
        let read = o.explicit_read + below - o.overridden_below_watermark;
        Ok(if unread { visible - read } else { read })
    }
}
