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
    resource: Option<String>,
    /// The acting username.
    actor: Option<String>,
    page: Option<i64>,
    page_size: Option<i64>,
}

/// Newest first.
#[utoipa::path(get, path = "/api/audit/", tag = "audit", params(AuditParams), security(("bearer" = [])),
    responses((status = 200, body = Page<AuditEntry>), (status = 403)))]
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
