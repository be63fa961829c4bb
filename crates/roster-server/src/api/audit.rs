//! The audit log.

use crate::api::{AuditEntryPage, LIST_DEFAULT, PageOf, PageQuery};
use crate::auth::Authenticated;
use crate::error::{ApiResult, Input};
use crate::router::AppState;
use axum::Json;
use axum::extract::{Query, State};
use roster_app::AuditFilter;
use serde::Deserialize;

/// A page of the audit log, and which lines: each text given must occur in its field (ignoring the case
/// of ASCII letters); absent or empty, it doesn't filter.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditQuery {
    /// How many lines to skip (0 or more; default 0).
    #[serde(default)]
    pub offset: i64,
    /// How many lines at most: 1 to 1,000 (default 100).
    pub limit: Option<i64>,
    /// Who: lines whose actor contains this (`alice`, `cli:`).
    pub actor: Option<String>,
    /// What: lines whose action contains this (`user.privileges`, `logon`).
    pub action: Option<String>,
    /// Which: lines whose target contains this (a user name, `run #12`).
    pub target: Option<String>,
}

/// The audit log, newest first, filtered by who, what and which.
#[utoipa::path(get, tag = "audit", path = "/api/v1/audit", params(AuditQuery), responses((status = 200, body = AuditEntryPage)))]
pub(crate) async fn audit_log(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    Input(Query(q)): Input<Query<AuditQuery>>,
) -> ApiResult<Json<AuditEntryPage>> {
    let (offset, limit) = PageQuery {
        offset: q.offset,
        limit: q.limit,
    }
    .window(LIST_DEFAULT, roster_app::PAGE_MAX);
    let filter = AuditFilter {
        actor: q.actor,
        action: q.action,
        target: q.target,
    };
    let page = roster
        .search_audit_log(&caller, &filter, offset, limit)
        .await?;
    Ok(Json(PageOf {
        items: page.items,
        total: page.total,
        offset,
        limit,
    }))
}
