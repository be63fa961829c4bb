//! Runs: Test Settings (preview), Synchronize now, and the record of both.

use crate::api::{LINES_DEFAULT, LIST_DEFAULT, PageOf, PageQuery, ReportLinePage, RunSummaryPage};
use crate::auth::Authenticated;
use crate::error::{ApiResult, ErrorBody, Input};
use crate::router::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use roster_app::Caller;
use roster_app::{RunKind, RunSummary};
use serde::Serialize;

/// Test Settings: what Synchronize now would do; commits nothing. Starts the run and answers 202 at once
/// with its id (and its address in `Location`); follow it at `GET /api/v1/directory/runs/{id}`. Refusals
/// that come before the run exists (403, 400 without a directory, 409 while another run is in progress)
/// answer synchronously.
#[utoipa::path(post, tag = "runs", path = "/api/v1/directory/preview", responses((status = 202, body = roster_app::RunStarted, headers(("Location" = String, description = "The run: /api/v1/directory/runs/{id}"))), (status = 409, body = ErrorBody)))]
pub(crate) async fn preview(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Response> {
    start(&roster, &caller, RunKind::Preview).await
}

/// Synchronize now: applies the plan in one transaction. Starts the run and answers 202 at once, like
/// the preview.
#[utoipa::path(post, tag = "runs", path = "/api/v1/directory/sync", responses((status = 202, body = roster_app::RunStarted, headers(("Location" = String, description = "The run: /api/v1/directory/runs/{id}"))), (status = 409, body = ErrorBody)))]
pub(crate) async fn sync(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Response> {
    start(&roster, &caller, RunKind::Sync).await
}

/// Which user `POST /api/v1/directory/sync-user` synchronizes.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SyncUserRequest {
    /// The user's name (a Roster user, or the name of an entry in the directory's scope).
    pub name: String,
    /// Test Settings for this user only: report, commit nothing.
    #[serde(default)]
    pub preview: bool,
}

/// Synchronize one user now: reads that user's entry (by their link, else by name, within the
/// settings' scope) and applies only their part of the plan, with the same report, deletion guard and
/// audit as a run. Answers 202 with the run, like Synchronize now.
#[utoipa::path(post, tag = "runs", path = "/api/v1/directory/sync-user", request_body = SyncUserRequest, responses((status = 202, body = roster_app::RunStarted, headers(("Location" = String, description = "The run: /api/v1/directory/runs/{id}"))), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn sync_user(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    crate::error::Input(Json(req)): crate::error::Input<Json<SyncUserRequest>>,
) -> ApiResult<Response> {
    let kind = if req.preview {
        RunKind::Preview
    } else {
        RunKind::Sync
    };
    let started = roster
        .start_directory_run_for_user(&caller, kind, &req.name, "api")
        .await?;
    Ok(accepted(started))
}

/// `202 Accepted` for a run started in the background, with its address in `Location`.
fn accepted(started: roster_app::RunStarted) -> Response {
    let location = format!("/api/v1/directory/runs/{}", started.run_id);
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(started),
    )
        .into_response()
}

/// The run goes on in a task of the server's (`Roster::start_directory_run`): a client that disconnects
/// doesn't stop it.
async fn start(roster: &AppState, caller: &Caller, kind: RunKind) -> ApiResult<Response> {
    let started = roster.start_directory_run(caller, kind, "api").await?;
    Ok(accepted(started))
}

/// Approve a sync that the deletion guard stopped (`status = stopped`): reads the directory again and
/// applies the new plan only if it deletes the same users as the stopped run's (its other changes may
/// differ); otherwise the new run fails with `AP020-approval-mismatch` and applies nothing. Answers 202
/// with the new run, like Synchronize now; 409 `ST016-not-approvable` for a run that wasn't stopped by
/// the guard or was approved already.
#[utoipa::path(post, tag = "runs", path = "/api/v1/directory/runs/{id}/approve", params(("id" = i64, Path, description = "The stopped run's id")), responses((status = 202, body = roster_app::RunStarted, headers(("Location" = String, description = "The new run: /api/v1/directory/runs/{id}"))), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn approve_run(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    Input(Path(id)): Input<Path<i64>>,
) -> ApiResult<Response> {
    let started = roster.start_approval(&caller, id, "api").await?;
    Ok(accepted(started))
}

/// Cancel a running run (this server's or another process's). It stops without changing anything; a
/// sync that is already committing its changes finishes, and the request then answers 409
/// `ST014-run-finished`. Answers 202 with the run as it is now: a run of this server is recorded as
/// `cancelled` at once, one of another process within a few seconds (follow it at
/// `GET /api/v1/directory/runs/{id}`).
#[utoipa::path(post, tag = "runs", path = "/api/v1/directory/runs/{id}/cancel", params(("id" = i64, Path, description = "The run's id")), responses((status = 202, body = RunSummary), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub(crate) async fn cancel_run(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    Input(Path(id)): Input<Path<i64>>,
) -> ApiResult<(StatusCode, Json<RunSummary>)> {
    Ok((
        StatusCode::ACCEPTED,
        Json(roster.cancel_run(&caller, id).await?),
    ))
}

/// Every preview and sync, newest first.
#[utoipa::path(get, tag = "runs", path = "/api/v1/directory/runs", params(PageQuery), responses((status = 200, body = RunSummaryPage)))]
pub(crate) async fn list_runs(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    Input(Query(q)): Input<Query<PageQuery>>,
) -> ApiResult<Json<RunSummaryPage>> {
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
    pub lines: ReportLinePage,
}

/// One run: its status (`running`, `succeeded`, `failed`, `abandoned`, `cancelled`), its phase and the
/// entries read so far while it runs, and once it has finished its counts, its error (message and code)
/// and its report lines (paged: `offset`, `limit`).
#[utoipa::path(get, tag = "runs", path = "/api/v1/directory/runs/{id}", params(("id" = i64, Path, description = "The run's id"), PageQuery), responses((status = 200, body = RunDetail)))]
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
