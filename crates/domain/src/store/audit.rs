//! The audit log: written in the same transaction as the change it records,
//! so there is never a change without its entry or an entry without its
//! change.

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::{Store, StoreError, Tx};
use crate::model::{Actor, AuditEntry};
use crate::paging::{Page, PageRequest};
use crate::time::now_millis;

/// The fields a change touched, each with its old and new value.
#[derive(Debug, Default, Clone)]
pub struct Changes(Map<String, Value>);

impl Changes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `field` going from `old` to `new`; unchanged fields are skipped.
    pub fn field(mut self, field: &str, old: impl Serialize, new: impl Serialize) -> Self {
        let (old, new) = (json!(old), json!(new));
        if old != new {
            self.0
                .insert(field.to_owned(), json!({ "old": old, "new": new }));
        }
        self
    }

    /// A field that did not exist before (a create).
    pub fn created(self, field: &str, new: impl Serialize) -> Self {
        self.field(field, Value::Null, new)
    }

    /// A field that no longer exists (a delete).
    pub fn removed(self, field: &str, old: impl Serialize) -> Self {
        self.field(field, old, Value::Null)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Filters for `GET /api/audit/`.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    pub resource: Option<String>,
    pub actor: Option<String>,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    created_at: i64,
    actor: Option<String>,
    resource: String,
    resource_id: String,
    action: String,
    changes: String,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        Self {
            id: row.id,
            created_at: row.created_at,
            actor: row.actor,
            resource: row.resource,
            resource_id: row.resource_id,
            action: row.action,
            changes: serde_json::from_str(&row.changes).unwrap_or(Value::Null),
        }
    }
}

/// Appends one entry inside the caller's transaction.
pub(super) async fn record(
    tx: &mut Tx<'_>,
    actor: Option<&Actor>,
    resource: &str,
    resource_id: impl ToString,
    action: &str,
    changes: Changes,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_log (created_at, actor, resource, resource_id, action, changes) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(now_millis())
    .bind(actor.map(|a| a.username.clone()))
    .bind(resource)
    .bind(resource_id.to_string())
    .bind(action)
    .bind(Value::Object(changes.0).to_string())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Newest first.
    pub async fn audit_page(
        &self,
        filter: &AuditFilter,
        page: PageRequest,
    ) -> Result<Page<AuditEntry>, StoreError> {
        const WHERE: &str = "WHERE ($1 IS NULL OR resource = $1) AND ($2 IS NULL OR actor = $2)";
        let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM audit_log {WHERE}"))
            .bind(filter.resource.clone())
            .bind(filter.actor.clone())
            .fetch_one(&self.read)
            .await?;
        let rows: Vec<AuditRow> = sqlx::query_as(&format!(
            "SELECT id, created_at, actor, resource, resource_id, action, changes \
             FROM audit_log {WHERE} ORDER BY id DESC LIMIT $3 OFFSET $4"
        ))
        .bind(filter.resource.clone())
        .bind(filter.actor.clone())
        .bind(page.limit())
        .bind(page.offset())
        .fetch_all(&self.read)
        .await?;
        Ok(Page::new(
            page,
            count,
            rows.into_iter().map(Into::into).collect(),
        ))
    }
}
