//! The audit log.

use crate::api::{LIST_DEFAULT, PageOf, PageQuery};
use crate::auth::Authenticated;
use crate::error::{ApiResult, Input};
use crate::router::AppState;
use axum::Json;
use axum::extract::{Query, State};
use roster_core::user::AuditEntry;

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/v1/audit", params(PageQuery), responses((status = 200, body = PageOf<AuditEntry>)))]
pub(crate) async fn audit_log(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    Input(Query(q)): Input<Query<PageQuery>>,
) -> ApiResult<Json<PageOf<AuditEntry>>> {
    let (offset, limit) = q.window(LIST_DEFAULT, roster_app::PAGE_MAX);
    let page = roster.audit_log(&caller, offset, limit).await?;
    Ok(Json(PageOf {
        items: page.items,
        total: page.total,
        offset,
        limit,
    }))
}
