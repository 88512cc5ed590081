//! What a socket starts from: its user's memberships and subscriptions,
//! read for many users in one round trip.

use std::collections::HashMap;

use super::{ChannelKind, Membership, Store, StoreError, TagSubscription, batch_reads, in_list};

/// A user's memberships (by channel) and active subscriptions (by id),
/// each with its delivery cursor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionSnapshot {
    pub memberships: Vec<Membership>,
    pub subscriptions: Vec<TagSubscription>,
}

/// One row of either kind: a membership (`kind` 0) or a subscription (1).
#[derive(sqlx::FromRow)]
pub(super) struct SnapshotRow {
    pub user_id: i64,
    pub kind: i64,
    /// The channel (membership) or the subscription's id.
    id: i64,
    name: Option<String>,
    peer: Option<String>,
    delivered_seq: i64,
    tag_id: i64,
}

impl SnapshotRow {
    /// Adds this row to its user's snapshot.
    pub(super) fn add_to(self, snapshots: &mut HashMap<i64, SessionSnapshot>) {
        let snapshot = snapshots.entry(self.user_id).or_default();
        if self.kind == 0 {
            let kind = match (self.name, self.peer) {
                (Some(name), _) => ChannelKind::Topic { name },
                (None, Some(peer)) => ChannelKind::Direct { peer },
                // A conversation whose other side is gone.
                (None, None) => return,
            };
            snapshot.memberships.push(Membership {
                channel_id: self.id,
                kind,
                delivered_seq: self.delivered_seq,
            });
        } else {
            snapshot.subscriptions.push(TagSubscription {
                id: self.id,
                tag_id: self.tag_id,
                delivered_seq: self.delivered_seq,
            });
        }
    }
}

/// The statement's two halves, the memberships of users matching
/// `members` and the subscriptions of users matching `subscribers` (each
/// the right-hand side of a condition on the user's id), every row ending
/// with the columns `extra` (for a statement that reads more than
/// snapshots).
///
/// A conversation's peer is looked up only for direct channels, in a
/// subquery behind `CASE`: as a `LEFT JOIN` on the channel's members, both
/// SQLite and PostgreSQL visited every member of each topic the user is in
/// (PostgreSQL every membership in the store) before the join's condition
/// on the channel's kind threw them away, so a handshake cost as much as
/// the user's largest topic (1,435 against 4,400 handshakes/s for members
/// of one 5,000-member topic).
pub(super) fn snapshot_selects(members: &str, subscribers: &str, extra: &str) -> String {
    format!(
        "SELECT m.user_id, CAST(0 AS BIGINT) AS kind, m.channel_id AS id, c.name, \
                CASE WHEN c.kind = 'direct' THEN \
                    (SELECT peer.username FROM memberships other \
                     JOIN users peer ON peer.id = other.user_id \
                     WHERE other.channel_id = c.id AND other.user_id <> m.user_id LIMIT 1) \
                END AS peer, \
                m.delivered_seq, CAST(0 AS BIGINT) AS tag_id{extra} \
         FROM memberships m JOIN channels c ON c.id = m.channel_id \
         WHERE m.user_id {members} \
         UNION ALL \
         SELECT s.user_id, CAST(1 AS BIGINT), s.id, NULL, NULL, s.delivered_seq, s.tag_id{extra} \
         FROM subscriptions s WHERE s.user_id {subscribers} AND s.end_seq IS NULL"
    )
}

impl Store {
    /// The snapshots of `user_ids` (each at most once), in one statement.
    /// A user with neither memberships nor subscriptions is absent.
    pub async fn session_snapshots(
        &self,
        user_ids: &[i64],
    ) -> Result<HashMap<i64, SessionSnapshot>, StoreError> {
        if user_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let (members, subscribers) = (
            in_list(self.backend, 1, user_ids.len()),
            in_list(self.backend, user_ids.len() + 1, user_ids.len()),
        );
        let sql = format!(
            "{} ORDER BY 1, 2, 3",
            snapshot_selects(
                &format!("IN ({members})"),
                &format!("IN ({subscribers})"),
                ""
            )
        );
        let mut query = sqlx::query_as::<_, SnapshotRow>(&sql);
        for id in user_ids.iter().chain(user_ids) {
            query = query.bind(*id);
        }
        let rows = batch_reads::fetch_all(&self.batch_reads.snapshots, query).await?;
        let mut snapshots: HashMap<i64, SessionSnapshot> = HashMap::new();
        for row in rows {
            row.add_to(&mut snapshots);
        }
        Ok(snapshots)
    }
}
