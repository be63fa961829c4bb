//! The audit log: who changed what and when, newest first, filterable by words.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::auth::AdminConsole;
use super::layout;
use crate::router::AppState;

const PAGE: i64 = 100;

#[derive(Debug, Deserialize)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    offset: i64,
}

pub(crate) async fn list(
    State(roster): State<AppState>,
    AdminConsole(console): AdminConsole,
    Query(q): Query<AuditQuery>,
) -> Response {
    let offset = q.offset.max(0);
    let page = match roster.audit_log(&console.caller, offset, PAGE).await {
        Ok(p) => p,
        Err(e) => {
            return layout::page(&console, "Audit log", layout::error(&e.to_string()))
                .into_response();
        }
    };
    let needle = q.q.trim().to_lowercase();
    let shown: Vec<_> = page
        .items
        .iter()
        .filter(|e| {
            needle.is_empty()
                || [&e.actor, &e.action, &e.target, &e.details]
                    .iter()
                    .any(|f| f.to_lowercase().contains(&needle))
        })
        .collect();
    let query = if q.q.is_empty() {
        String::new()
    } else {
        format!("q={}", super::url_encode(&q.q))
    };
    let body = html! {
        form method="get" action="/audit" class="search" role="search" {
            label for="q" { "Filter this page" }
            input id="q" name="q" type="search" value=(q.q) placeholder="who, what or which user";
            button type="submit" { "Filter" }
        }
        table class="list" {
            thead { tr {
                th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" }
                th scope="col" { "Which" } th scope="col" { "Details" }
            } }
            tbody {
                @for e in &shown {
                    tr { td { (layout::when(e.at)) } td { (e.actor) } td { (e.action) } td { (e.target) } td { (e.details) } }
                }
            }
        }
        (layout::pager("/audit", &query, offset, PAGE, page.total))
    };
    layout::page(&console, "Audit log", body).into_response()
}
