//! What a socket opening with an access token needs from the store, in one
//! statement for many sockets: the token's account (and whether its login
//! session is revoked) and the user's snapshot.
//!
//! A handshake made these two reads one after the other; each is batched,
//! but under a storm of handshakes the batches stay small (a read's round
//! trip is short next to the rest of a handshake), so nearly every
//! handshake paid two statements. On PostgreSQL a statement's cost is
//! mostly per statement, not per row.

use std::collections::HashMap;

use super::credentials::AccountRow;
use super::snapshots::{SnapshotRow, snapshot_selects};
use super::{SessionSnapshot, Store, StoreError, TokenAccount, batch_reads, in_list, values_list};

/// A token's account and its user's snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opening {
    pub account: TokenAccount,
    pub snapshot: SessionSnapshot,
}

/// A row of the statement: a snapshot row (`kind` 0 or 1, the account
/// columns empty) or a token's account (`kind` 2).
#[derive(sqlx::FromRow)]
struct OpeningRow {
    #[sqlx(flatten)]
    snapshot: SnapshotRow,
    username: Option<String>,
    is_admin: Option<i64>,
    is_active: Option<i64>,
    token_generation: Option<i64>,
    created_at: Option<i64>,
    sid: Option<String>,
    revoked: Option<i64>,
}

/// The account columns' place in a snapshot row.
const NO_ACCOUNT: &str = ", CAST(NULL AS TEXT) AS username, CAST(NULL AS BIGINT) AS is_admin, \
     CAST(NULL AS BIGINT) AS is_active, CAST(NULL AS BIGINT) AS token_generation, \
     CAST(NULL AS BIGINT) AS created_at, CAST(NULL AS TEXT) AS sid, CAST(NULL AS BIGINT) AS revoked";

impl OpeningRow {
    /// The account of a `kind` 2 row.
    fn account(self) -> Option<((i64, String), TokenAccount)> {
        let account = AccountRow {
            id: self.snapshot.user_id,
            username: self.username?,
            is_admin: self.is_admin?,
            is_active: self.is_active?,
            token_generation: self.token_generation?,
            created_at: self.created_at?,
        };
        let found = TokenAccount {
            account: account.into(),
            session_revoked: self.revoked? != 0,
        };
        Some(((self.snapshot.user_id, self.sid?), found))
    }
}

impl Store {
    /// For each `(user, sid)` token (`sid` "" for none), its account and
    /// its user's snapshot, as [`token_accounts`](Self::token_accounts) and
    /// [`session_snapshots`](Self::session_snapshots) would find them, in
    /// one statement. A token whose user is gone is absent.
    pub async fn openings(
        &self,
        tokens: &[(i64, String)],
    ) -> Result<HashMap<(i64, String), Opening>, StoreError> {
        if tokens.is_empty() {
            return Ok(HashMap::new());
        }
        // The users' rows are found by their ids listed again, not through
        // the token list: PostgreSQL reads a list of ids by index, where a
        // list referred to three times is materialized and joined by hash
        // in every branch, and this statement's cost is its plan's start-up
        // (one statement answers every handshake of a storm). About 40 %
        // fewer executions a second fit in a core that way (pgbench, four
        // tokens, one connection).
        let mut users: Vec<i64> = tokens.iter().map(|(user_id, _)| *user_id).collect();
        users.sort_unstable();
        users.dedup();
        let listed = |first| format!("IN ({})", in_list(self.backend, first, users.len()));
        let (members, subscribers) = (
            listed(2 * tokens.len() + 1),
            listed(2 * tokens.len() + users.len() + 1),
        );
        let sql = format!(
            "WITH t(user_id, sid) AS (VALUES {}) \
             SELECT u.id AS user_id, CAST(2 AS BIGINT) AS kind, CAST(0 AS BIGINT) AS id, \
                    CAST(NULL AS TEXT) AS name, CAST(NULL AS TEXT) AS peer, \
                    CAST(0 AS BIGINT) AS delivered_seq, CAST(0 AS BIGINT) AS tag_id, \
                    u.username, u.is_admin, u.is_active, u.token_generation, u.created_at, t.sid, \
                    CAST(CASE WHEN r.jti IS NULL THEN 0 ELSE 1 END AS BIGINT) AS revoked \
             FROM t JOIN users u ON u.id = t.user_id AND u.deleted_at IS NULL \
             LEFT JOIN revoked_tokens r ON r.jti = t.sid \
             UNION ALL {} \
             ORDER BY 1, 2, 3",
            values_list(self.backend, tokens.len(), 2),
            snapshot_selects(&members, &subscribers, NO_ACCOUNT),
        );
        let mut query = sqlx::query_as::<_, OpeningRow>(&sql);
        for (user_id, sid) in tokens {
            query = query.bind(*user_id).bind(sid.as_str());
        }
        for user_id in users.iter().chain(&users) {
            query = query.bind(*user_id);
        }
        let rows = batch_reads::fetch_all(&self.batch_reads.openings, query).await?;
        let mut snapshots: HashMap<i64, SessionSnapshot> = HashMap::new();
        let mut accounts = Vec::new();
        for row in rows {
            if row.snapshot.kind == 2 {
                accounts.extend(row.account());
            } else {
                row.snapshot.add_to(&mut snapshots);
            }
        }
        Ok(accounts
            .into_iter()
            .map(|(key, account)| {
                let snapshot = snapshots.get(&key.0).cloned().unwrap_or_default();
                (key, Opening { account, snapshot })
            })
            .collect())
    }
}
