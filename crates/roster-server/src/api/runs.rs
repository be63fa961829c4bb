//! Runs: Test Settings (preview), Synchronize now, and the record of both.

use crate::api::{LINES_DEFAULT, LIST_DEFAULT, PageOf, PageQuery};
use crate::auth::Authenticated;
use crate::error::{ApiError, ApiResult, ErrorBody, Input};
use crate::router::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use roster_app::{AppError, Caller};
use roster_core::plan::ReportLine;
use roster_store::{RunKind, RunSummary};
use serde::Serialize;

/// Test Settings: what Synchronize now would do. Commits nothing.
#[utoipa::path(post, path = "/api/v1/directory/preview", responses((status = 200, body = roster_app::RunReport), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn preview(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Json<roster_app::RunReport>> {
    Ok(Json(run_detached(roster, caller, RunKind::Preview).await?))
}

/// Synchronize now: applies the plan in one transaction.
#[utoipa::path(post, path = "/api/v1/directory/sync", responses((status = 200, body = roster_app::RunReport), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn sync(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Json<roster_app::RunReport>> {
    Ok(Json(run_detached(roster, caller, RunKind::Sync).await?))
}

/// Runs in its own task: a client that disconnects mid-run doesn't cut the run off half-recorded.
async fn run_detached(
    roster: AppState,
    caller: Caller,
    kind: RunKind,
) -> Result<roster_app::RunReport, ApiError> {
    tokio::spawn(async move { roster.run_directory(&caller, kind, "api", &()).await })
        .await
        .map_err(|e| ApiError::App(AppError::Internal(format!("the run's task failed: {e}"))))?
        .map_err(ApiError::App)
}

/// Every preview and sync, newest first.
#[utoipa::path(get, path = "/api/v1/directory/runs", params(PageQuery), responses((status = 200, body = PageOf<RunSummary>)))]
pub(crate) async fn list_runs(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    Input(Query(q)): Input<Query<PageQuery>>,
) -> ApiResult<Json<PageOf<RunSummary>>> {
    let (offset, limit) = q.window(LIST_DEFAULT, roster_app::PAGE_MAX);
    let page = roster.list_runs(&caller, offset, limit).await?;
    Ok(Json(PageOf {
        items: page.items,
        total: page.total,
        offset,
        limit,
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct RunDetail {
    pub run: RunSummary,
    pub lines: PageOf<ReportLine>,
}

/// One run with its report lines (paged: `offset`, `limit`).
#[utoipa::path(get, path = "/api/v1/directory/runs/{id}", params(("id" = i64, Path, description = "The run's id"), PageQuery), responses((status = 200, body = RunDetail)))]
pub(crate) async fn get_run(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    Input(Path(id)): Input<Path<i64>>,
    Input(Query(q)): Input<Query<PageQuery>>,
) -> ApiResult<Json<RunDetail>> {
    let (offset, limit) = q.window(LINES_DEFAULT, roster_app::RUN_LINES_MAX);
    let (run, lines) = roster.get_run(&caller, id, offset, limit).await?;
    Ok(Json(RunDetail {
        run,
        lines: PageOf {
            items: lines.items,
            total: lines.total,
            offset,
            limit,
        },
    }))
}
