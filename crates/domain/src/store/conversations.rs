//! Direct conversations: a channel per pair of users, named by its
//! `direct_key` ("low id:high id"), created with both as members the first
//! time either writes to the other.
//!
//! A direct message names its peer, so a process that does not remember
//! the conversation resolves the name first. Those resolutions come in
//! bursts: a restarted gateway's users all write again, and many
//! conversations may begin at once. One by one, each took three statements
//! (the peer, the conversation, its creation): 600 for 200 conversations
//! begun at once, each a round trip, and on SQLite each creation a turn on
//! the connection the group commits write on. [`Store::direct_conversations`]
//! resolves a batch in one read and creates what is missing in one more
//! statement (one transaction on SQLite).

use std::collections::HashMap;

use sqlx::Connection;

use super::users::UserRow;
use super::writer::WriteConnection;
use super::{Backend, Store, StoreError, batch_reads, values_list};
use crate::model::User;
use crate::time::now_millis;

pub(super) fn direct_key(a: i64, b: i64) -> String {
    format!("{}:{}", a.min(b), a.max(b))
}

/// A sender's peer by name, with their conversation if it exists.
#[derive(sqlx::FromRow)]
struct PeerRow {
    sender: i64,
    name: String,
    #[sqlx(flatten)]
    peer: UserRow,
    channel_id: Option<i64>,
}

/// How many times a creation is tried before giving up (see
/// [`Store::create_directs`]).
const CREATE_ATTEMPTS: usize = 3;

impl Store {
    /// The direct conversation between two users, if they ever talked.
    pub async fn find_direct_channel(&self, a: i64, b: i64) -> Result<Option<i64>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT id FROM channels WHERE direct_key = $1")
                .bind(direct_key(a, b))
                .fetch_optional(&self.read)
                .await?,
        )
    }

    /// The direct conversation between two users, created with both as
    /// members on first use.
    pub async fn direct_channel(&self, a: i64, b: i64) -> Result<i64, StoreError> {
        if let Some(id) = self.find_direct_channel(a, b).await? {
            return Ok(id);
        }
        self.create_directs(&[(a, b)])
            .await?
            .remove(&direct_key(a, b))
            .ok_or_else(|| not_created(&direct_key(a, b)))
    }

    /// For each `(sender id, peer name)`: the live user of that name and
    /// the conversation between the two, created with both as members if
    /// they never talked. A name no live user has, or the sender's own, is
    /// left out.
    pub async fn direct_conversations(
        &self,
        asks: &[(i64, String)],
    ) -> Result<HashMap<(i64, String), (User, i64)>, StoreError> {
        if asks.is_empty() {
            return Ok(HashMap::new());
        }
        // The key is written out for both stores (no `LEAST` in SQLite, no
        // two-argument `min` in PostgreSQL); the join uses its unique index.
        let sql = format!(
            "WITH ask(sender, name) AS (VALUES {}) \
             SELECT ask.sender, ask.name, u.id, u.username, u.is_admin, c.id AS channel_id \
             FROM ask JOIN users u ON u.username = ask.name AND u.deleted_at IS NULL \
             LEFT JOIN channels c ON c.direct_key = \
               CASE WHEN ask.sender < u.id \
                 THEN CAST(ask.sender AS TEXT) || ':' || CAST(u.id AS TEXT) \
                 ELSE CAST(u.id AS TEXT) || ':' || CAST(ask.sender AS TEXT) END \
             WHERE u.id <> ask.sender",
            values_list(self.backend, asks.len(), 2),
        );
        let mut query = sqlx::query_as::<_, PeerRow>(&sql);
        for (sender, name) in asks {
            query = query.bind(*sender).bind(name.as_str());
        }
        let rows = batch_reads::fetch_all(&self.batch_reads.conversations, query).await?;
        let mut missing: Vec<(i64, i64)> = rows
            .iter()
            .filter(|r| r.channel_id.is_none())
            .map(|r| (r.sender, r.peer.id))
            .collect();
        let created = match missing.is_empty() {
            true => HashMap::new(),
            false => {
                missing.sort_unstable_by_key(|&(a, b)| (a.min(b), a.max(b)));
                missing.dedup_by_key(|&mut (a, b)| (a.min(b), a.max(b)));
                self.create_directs(&missing).await?
            }
        };
        rows.into_iter()
            .map(|row| {
                let key = direct_key(row.sender, row.peer.id);
                let channel = match row.channel_id {
                    Some(id) => id,
                    None => *created.get(&key).ok_or_else(|| not_created(&key))?,
                };
                Ok(((row.sender, row.name), (row.peer.into(), channel)))
            })
            .collect()
    }

    /// Creates the conversations of `pairs` (each once, with both users as
    /// members) and answers every one's id by its key, including those
    /// that existed already.
    async fn create_directs(
        &self,
        pairs: &[(i64, i64)],
    ) -> Result<HashMap<String, i64>, StoreError> {
        let wanted: Vec<Wanted> = pairs
            .iter()
            .map(|&(a, b)| Wanted {
                direct_key: direct_key(a, b),
                low: a.min(b),
                high: a.max(b),
            })
            .collect();
        let mut conn = self.writer().await?;
        match self.backend {
            Backend::Postgres => create_directs_postgres(&mut conn, &wanted).await,
            Backend::Sqlite => create_directs_sqlite(&mut conn, &wanted).await,
        }
    }
}

#[derive(serde::Serialize)]
struct Wanted {
    direct_key: String,
    low: i64,
    high: i64,
}

/// One statement, so one round trip, whatever the number of
/// conversations; the pairs go as one JSON parameter, so its text never
/// changes and it is planned once per connection. Channels are inserted
/// in key order, so two batches creating some of the same conversations
/// take their locks in one order and never deadlock.
///
/// The statement reads `channels` as of its start, so when another
/// transaction creates the same conversation meanwhile (both peers writing
/// first at once, from two processes), the insert waits for it and does
/// nothing, and the id is not seen yet; the statement is then run again
/// for what is missing, and sees it.
const POSTGRES_CREATE: &str = "\
    WITH wanted AS ( \
      SELECT t.direct_key, t.low, t.high \
      FROM json_to_recordset($1::json) AS t(direct_key text, low bigint, high bigint)), \
    made AS ( \
      INSERT INTO channels (kind, direct_key, private, created_at) \
      SELECT 'direct', direct_key, 1, $2 FROM wanted ORDER BY direct_key \
      ON CONFLICT (direct_key) DO NOTHING RETURNING id, direct_key), \
    found AS ( \
      SELECT id, direct_key FROM made \
      UNION ALL \
      SELECT c.id, c.direct_key FROM channels c JOIN wanted w ON w.direct_key = c.direct_key), \
    joined AS ( \
      INSERT INTO memberships (channel_id, user_id, joined_at, delivered_seq) \
      SELECT found.id, member.user_id, $2, 0 \
      FROM found JOIN wanted w ON w.direct_key = found.direct_key \
      CROSS JOIN LATERAL (VALUES (w.low), (w.high)) AS member (user_id) \
      ON CONFLICT (channel_id, user_id) DO NOTHING) \
    SELECT direct_key, id FROM found";

async fn create_directs_postgres(
    conn: &mut WriteConnection,
    wanted: &[Wanted],
) -> Result<HashMap<String, i64>, StoreError> {
    let mut ids = HashMap::with_capacity(wanted.len());
    let mut left: Vec<&Wanted> = wanted.iter().collect();
    for _ in 0..CREATE_ATTEMPTS {
        let json = serde_json::to_string(&left)
            .map_err(|err| StoreError::Unavailable(format!("could not encode pairs: {err}")))?;
        let found: Vec<(String, i64)> = sqlx::query_as(POSTGRES_CREATE)
            .bind(json)
            .bind(now_millis())
            .fetch_all(&mut **conn)
            .await?;
        ids.extend(found);
        left.retain(|w| !ids.contains_key(&w.direct_key));
        if left.is_empty() {
            return Ok(ids);
        }
    }
    Err(not_created(&left[0].direct_key))
}

/// SQLite has no writing `WITH`; one transaction on the writer's
/// connection, which costs thread hand-offs there, not network round trips.
async fn create_directs_sqlite(
    conn: &mut WriteConnection,
    wanted: &[Wanted],
) -> Result<HashMap<String, i64>, StoreError> {
    let now = now_millis();
    let mut ids = HashMap::with_capacity(wanted.len());
    let mut tx = conn.begin().await?;
    for w in wanted {
        sqlx::query(
            "INSERT INTO channels (kind, direct_key, private, created_at) VALUES ('direct', $1, 1, $2) \
             ON CONFLICT (direct_key) DO NOTHING",
        )
        .bind(&w.direct_key)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let id: i64 = sqlx::query_scalar("SELECT id FROM channels WHERE direct_key = $1")
            .bind(&w.direct_key)
            .fetch_one(&mut *tx)
            .await?;
        for user in [w.low, w.high] {
            sqlx::query(
                "INSERT INTO memberships (channel_id, user_id, joined_at, delivered_seq) \
                 VALUES ($1, $2, $3, 0) ON CONFLICT (channel_id, user_id) DO NOTHING",
            )
            .bind(id)
            .bind(user)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        ids.insert(w.direct_key.clone(), id);
    }
    tx.commit().await?;
    Ok(ids)
}

fn not_created(key: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "the direct conversation {key} was neither created nor found"
    ))
}
