//! The audit log, for admins.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use domain::model::AuditEntry;
use domain::paging::{Page, PageRequest};
use domain::store::AuditFilter;
use serde::Deserialize;

use super::DEFAULT_PAGE_SIZE;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{AuthUser, Json, Query};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/audit/", get(list))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct AuditParams {
    /// user, topic, membership, tag, subscription, notification, inbox_item, inbox.
    #[param(example = "topic")]
    resource: Option<String>,
    /// The acting username.
    #[param(example = "alice")]
    actor: Option<String>,
    /// The page, from 1.
    #[param(example = 1, minimum = 1, maximum = 4294967295_i64)]
    page: Option<i64>,
    /// Items per page, 1 to 100 (default 20).
    #[param(example = 20, minimum = 1, maximum = 100)]
    page_size: Option<i64>,
}

/// Newest first.
#[utoipa::path(get, path = "/api/audit/", tag = "audit", operation_id = "audit_list",
    summary = "List audit entries (admins)", params(AuditParams), security(("bearer" = [])),
    responses((status = 200, body = Page<AuditEntry>, example = json!({"count": 1, "page": 1, "page_size": 20, "results": [{"id": 12, "created_at": "2026-11-26T09:30:00Z", "actor": "alice", "resource": "topic", "resource_id": "1", "action": "create", "changes": {"name": {"old": null, "new": "news"}}}]})),
        (status = 403, description = "not an admin")))]
pub async fn list(
    State(state): State<AppState>,
    AuthUser(actor): AuthUser,
    Query(params): Query<AuditParams>,
) -> Result<Json<Page<AuditEntry>>, ApiError> {
    let page = PageRequest::new(params.page, params.page_size, DEFAULT_PAGE_SIZE)?;
    let filter = AuditFilter {
        resource: params.resource,
        actor: params.actor,
    };
    Ok(Json(state.core.audit_page(&actor, &filter, page).await?))
}
