//! Runs: the history of Test Settings and Synchronize now, one run's report (filterable by action), its
//! live progress while it runs (polled by `console.js`; without JavaScript the page refreshes itself),
//! and the Approve button of a run the deletion guard stopped.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use roster_app::{RunKind, RunStatus, RunSummary};
use roster_core::plan::ReportAction;
use serde::Deserialize;

use super::auth::{self, AdminConsole};
use super::layout;
use crate::router::AppState;

const PAGE: i64 = 50;
/// Report lines shown on a run's page.
const LINES: i64 = 5000;

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    offset: i64,
}

fn kind_label(kind: RunKind) -> &'static str {
    match kind {
        RunKind::Preview => "Test Settings",
        RunKind::Sync => "Synchronize now",
    }
}

fn counts_cell(run: &RunSummary) -> Markup {
    html! {
        @if let Some(c) = &run.counts {
            (c.created) " created, " (c.updated) " updated, " (c.deleted) " deleted, "
            (c.unchanged) " unchanged"
            @if c.conflicts > 0 { ", " (c.conflicts) " conflicts" }
            @if c.skipped > 0 { ", " (c.skipped) " skipped" }
        } @else { "—" }
    }
}

pub(crate) async fn list(
    State(roster): State<AppState>,
    AdminConsole(console): AdminConsole,
    Query(q): Query<ListQuery>,
) -> Response {
    let offset = q.offset.max(0);
    let page = match roster.list_runs(&console.caller, offset, PAGE).await {
        Ok(p) => p,
        Err(e) => {
            return layout::page(&console, "Runs", layout::error(&e.to_string())).into_response();
        }
    };
    let body = html! {
        @if page.items.is_empty() {
            (layout::notice("No runs yet: Test Settings and Synchronize now are on the Directory Services page."))
        } @else {
            table class="list" {
                thead { tr {
                    th scope="col" { "Run" } th scope="col" { "What" } th scope="col" { "Started" }
                    th scope="col" { "By" } th scope="col" { "Status" } th scope="col" { "Entries read" }
                    th scope="col" { "Counts" }
                } }
                tbody {
                    @for run in &page.items {
                        tr {
                            td { a href=(format!("/runs/{}", run.id)) aria-label=(format!("Run #{}", run.id)) { "#" (run.id) } }
                            td { (kind_label(run.kind)) }
                            td { (layout::when(run.started_at)) }
                            td { (run.actor) }
                            td class=(format!("status {}", run.status.as_str())) { (run.status.as_str()) }
                            td { (run.entries_read) }
                            td { (counts_cell(run)) }
                        }
                    }
                }
            }
        }
        (layout::pager("/runs", "", offset, PAGE, page.total))
    };
    layout::page(&console, "Runs", body).into_response()
}

#[derive(Debug, Deserialize)]
pub(crate) struct RunQuery {
    action: Option<String>,
    /// Set when Synchronize now opened this test to be confirmed (automatic deletion is on).
    confirm: Option<String>,
}

/// "1 user", "3 users".
pub(crate) fn users(n: u64) -> String {
    format!("{n} user{}", if n == 1 { "" } else { "s" })
}

const ACTIONS: [ReportAction; 10] = [
    ReportAction::Created,
    ReportAction::Updated,
    ReportAction::Renamed,
    ReportAction::Linked,
    ReportAction::Deleted,
    ReportAction::Suspended,
    ReportAction::Reactivated,
    ReportAction::Conflict,
    ReportAction::Skipped,
    ReportAction::Warning,
];

pub(crate) async fn show(
    State(roster): State<AppState>,
    AdminConsole(console): AdminConsole,
    Path(id): Path<i64>,
    Query(q): Query<RunQuery>,
) -> Response {
    let (run, lines) = match roster.get_run(&console.caller, id, 0, LINES).await {
        Ok(found) => found,
        Err(e) => {
            return (
                StatusCode::NOT_FOUND,
                layout::page(&console, "Run", layout::error(&e.to_string())),
            )
                .into_response();
        }
    };
    let running = run.status == RunStatus::Running;
    let filter = q.action.as_deref().filter(|a| !a.is_empty());
    let shown: Vec<_> = lines
        .items
        .iter()
        .filter(|l| filter.is_none_or(|a| l.action.as_str() == a))
        .collect();
    let deletions = run.counts.as_ref().map_or(0, |c| c.deleted);
    let confirming = q.confirm.is_some() && run.kind == RunKind::Preview;
    let body = html! {
        @if confirming {
            (layout::notice("Automatic deletion is on, so Synchronize now first tests the settings and shows what it would do. Nothing has been changed yet: confirm below once the test has finished."))
        }
        dl class="details" {
            dt { "What" } dd { (kind_label(run.kind)) @if run.kind == RunKind::Preview { " (nothing was committed)" } }
            dt { "Directory" } dd { (run.directory_type) }
            dt { "Started" } dd { (layout::when(run.started_at)) " by " (run.actor) }
            dt { "Status" } dd id="run-status" class=(format!("status {}", run.status.as_str())) { (run.status.as_str()) }
            @if let Some(f) = run.finished_at { dt { "Finished" } dd { (layout::when(f)) } }
            dt { "Entries read" } dd id="run-entries" { (run.entries_read) }
            @if let Some(phase) = run.phase { dt { "Phase" } dd id="run-phase" { (phase.as_str()) } }
            dt { "Counts" } dd { (counts_cell(&run)) }
            @if let Some(by) = run.approved_in_run {
                dt { "Deletion guard" } dd id="run-approved" { "Approved: applied by " a href=(format!("/runs/{by}")) { "run #" (by) } }
            }
        }
        @if running {
            div class="progress" data-run-progress=(format!("/runs/{id}/progress")) role="status" aria-live="polite" {
                "Running… the page updates by itself."
            }
            noscript { meta http-equiv="refresh" content="2"; }
        }
        @if let Some(error) = &run.error {
            (layout::error(error))
            @if run.status == RunStatus::Failed {
                p { a href=(format!("/directory?run={id}")) { "Open the settings, with this error at its field" } }
            }
        }
        @if run.status == RunStatus::Stopped && run.approved_in_run.is_none() {
            form method="post" action=(format!("/runs/{id}/approve")) class="card warn" {
                (layout::csrf(&console))
                h2 { "Approve the deletions" }
                p { "The deletion guard stopped this run: it would delete " (users(deletions)) ". Nothing was applied. If the deletions are intended, approve them: the directory is read again, and the plan is applied only if it deletes the same users." }
                label class="check" { input type="checkbox" name="confirm" value="yes" required; " Delete these " (users(deletions)) }
                button type="submit" class="danger" { "Approve" }
            }
        }
        @if run.kind == RunKind::Preview && run.status == RunStatus::Succeeded {
            form method="post" action="/directory/sync" class=(if deletions > 0 { "card warn" } else { "card" }) id="confirm-sync" {
                (layout::csrf(&console))
                input type="hidden" name="from_preview" value=(id);
                @if deletions > 0 {
                    h2 { "Confirm the deletions" }
                    p { "Synchronize now would delete " (users(deletions)) " (as this test shows)." }
                    label class="check" { input type="checkbox" name="confirm_deletions" value=(deletions) required; " Yes, delete " (users(deletions)) }
                } @else {
                    input type="hidden" name="confirm_deletions" value="0";
                    p { "Nothing is committed until you synchronize." }
                }
                button type="submit" class="primary" { "Synchronize now" }
            }
        }
        @if !running {
            h2 { "Report" }
            form method="get" class="filter" {
                label for="action" { "Show" }
                select id="action" name="action" {
                    option value="" { "every line" }
                    @for a in ACTIONS {
                        option value=(a.as_str()) selected[filter == Some(a.as_str())] { (a.as_str()) }
                    }
                }
                button type="submit" { "Filter" }
            }
            @if shown.is_empty() {
                (layout::notice("No lines."))
            } @else {
                table class="list report" {
                    thead { tr { th scope="col" { "User" } th scope="col" { "Action" } th scope="col" { "Reason" } } }
                    tbody {
                        @for line in &shown {
                            tr class=(line.action.as_str()) {
                                td { (line.user) } td { (line.action.as_str()) } td { (line.reason) }
                            }
                        }
                    }
                }
                @if lines.total > LINES { (layout::notice(&format!("The first {LINES} of {} lines; the API has the rest.", lines.total))) }
            }
        }
    };
    layout::page(&console, &format!("Run #{id}"), body).into_response()
}

/// The live part of a running run, as JSON for `console.js`.
pub(crate) async fn progress(
    State(roster): State<AppState>,
    AdminConsole(console): AdminConsole,
    Path(id): Path<i64>,
) -> Response {
    match roster.get_run(&console.caller, id, 0, 1).await {
        Ok((run, _)) => {
            let body = serde_json::json!({
                "status": run.status.as_str(),
                "running": run.status == RunStatus::Running,
                "phase": run.phase.map(|p| p.as_str()),
                "entries_read": run.entries_read,
            });
            let mut response = axum::Json(body).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => (StatusCode::NOT_FOUND, e.to_string()).into_response(),
    }
}

#[derive(Deserialize)]
pub(crate) struct ApproveForm {
    csrf: Option<String>,
}

pub(crate) async fn approve(
    State(roster): State<AppState>,
    AdminConsole(console): AdminConsole,
    Path(id): Path<i64>,
    Form(f): Form<ApproveForm>,
) -> Response {
    if !auth::csrf_ok(&console, f.csrf.as_deref()) {
        return auth::csrf_refused();
    }
    match roster.start_approval(&console.caller, id, "console").await {
        Ok(started) => Redirect::to(&format!("/runs/{}", started.run_id)).into_response(),
        Err(e) => (
            StatusCode::CONFLICT,
            layout::page(
                &console,
                &format!("Run #{id}"),
                layout::error(&e.to_string()),
            ),
        )
            .into_response(),
    }
}
