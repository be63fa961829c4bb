//! The audit log: who changed what and when, newest first, filterable by who, what and which (each a
//! text the field contains; the database filters and pages).

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use roster_app::AuditFilter;
use serde::Deserialize;

use super::auth::AdminConsole;
use super::layout;
use crate::router::AppState;

const PAGE: i64 = 100;

/// The actions the log holds, offered as suggestions for the "What" field (any text works).
const ACTIONS: &[&str] = &[
    "user.",
    "user.create",
    "user.update",
    "user.privileges",
    "user.auth",
    "user.password",
    "user.delete",
    "logon",
    "logon.failed",
    "logon.locked",
    "logon.unlock",
    "directory.",
    "directory.sync",
    "directory.run.approve",
    "directory.run.cancel",
    "setting.update",
    "folder.message_count",
];

#[derive(Debug, Deserialize)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: String,
    #[serde(default)]
    offset: i64,
}

pub(crate) async fn list(
    State(roster): State<AppState>,
    AdminConsole(console): AdminConsole,
    Query(q): Query<AuditQuery>,
) -> Response {
    let offset = q.offset.max(0);
    let filter = AuditFilter {
        actor: Some(q.actor.clone()),
        action: Some(q.action.clone()),
        target: Some(q.target.clone()),
    };
    let page = match roster
        .search_audit_log(&console.caller, &filter, offset, PAGE)
        .await
    {
        Ok(p) => p,
        Err(e) => {
            return layout::page(&console, "Audit log", layout::error(&e.to_string()))
                .into_response();
        }
    };
    let query = filter
        .given()
        .map(|(key, text)| format!("{key}={}", super::url_encode(text)))
        .collect::<Vec<_>>()
        .join("&");
    let filtered = !filter.is_empty();
    let body = html! {
        form method="get" action="/audit" class="filter audit-filter" role="search" aria-label="Filter the audit log" {
            div class="field" {
                label for="actor" { "Who" }
                input id="actor" name="actor" type="search" value=(q.actor) aria-describedby="actor-help";
                p class="help" id="actor-help" { "A user name, cli:…" }
            }
            div class="field" {
                label for="action" { "What" }
                input id="action" name="action" type="search" value=(q.action) list="actions" aria-describedby="action-help";
                datalist id="actions" { @for a in ACTIONS { option value=(a) {} } }
                p class="help" id="action-help" { "user.privileges, logon.failed, user. for every change of users…" }
            }
            div class="field" {
                label for="target" { "Which" }
                input id="target" name="target" type="search" value=(q.target) aria-describedby="target-help";
                p class="help" id="target-help" { "The user or object changed: a name, run #12…" }
            }
            div class="field buttons" {
                button type="submit" class="primary" { "Filter" }
                @if filtered { a href="/audit" { "Show every line" } }
            }
        }
        p class="help" id="audit-count" role="status" {
            @if filtered {
                (page.total) (if page.total == 1 { " line matches" } else { " lines match" })
                " (each field contains what you typed, ignoring case)."
            } @else {
                (page.total) (if page.total == 1 { " line" } else { " lines" }) ", newest first."
            }
        }
        @if page.items.is_empty() {
            (layout::notice(if filtered { "No line matches this filter." } else { "The audit log is empty." }))
        } @else {
            table class="list" id="audit" {
                thead { tr {
                    th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" }
                    th scope="col" { "Which" } th scope="col" { "Details" }
                } }
                tbody {
                    @for e in &page.items {
                        tr { td class="when" { (layout::when(e.at)) } td { (e.actor) } td { (e.action) } td { (e.target) } td { (e.details) } }
                    }
                }
            }
        }
        (layout::pager("/audit", &query, offset, PAGE, page.total))
    };
    layout::page(&console, "Audit log", body).into_response()
}
