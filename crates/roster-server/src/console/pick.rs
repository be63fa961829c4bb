//! The domain and group pickers of Directory Services: what the directory's server has (IceWarp and
//! Kerio Connect: domains and groups; Active Directory: groups, searchable), with the selected ones
//! checked; "Use these" stores the choice in the settings, through the same use case as the form.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::auth::{self, AdminConsole};
use super::layout;
use crate::router::AppState;

#[derive(Debug, Deserialize)]
pub(crate) struct PickQuery {
    #[serde(default)]
    search: String,
}

/// `domains` or `groups`: the settings key the picker fills.
fn key(what: &str) -> Option<&'static str> {
    match what {
        "domains" => Some("domains"),
        "groups" => Some("groups"),
        _ => None,
    }
}

/// What is stored for `key` now.
async fn selected(roster: &AppState, console: &auth::Console, key: &str) -> Vec<String> {
    roster
        .directory_settings(&console.caller)
        .await
        .ok()
        .and_then(|v| serde_json::to_value(&v.settings).ok())
        .and_then(|v| v.get(key).cloned())
        .and_then(|v| serde_json::from_value::<Vec<String>>(v).ok())
        .unwrap_or_default()
}

pub(crate) async fn page(
    State(roster): State<AppState>,
    AdminConsole(console): AdminConsole,
    Path(what): Path<String>,
    Query(q): Query<PickQuery>,
) -> Response {
    let Some(key) = key(&what) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let chosen = selected(&roster, &console, key).await;
    let is_chosen = |value: &str| chosen.iter().any(|c| c.eq_ignore_ascii_case(value));
    // (value stored, name shown, detail)
    let listed: Result<Vec<(String, String, String)>, roster_app::AppError> = if key == "domains" {
        roster.directory_domains(&console.caller).await.map(|ds| {
            ds.into_iter()
                .filter(|d| {
                    q.search.is_empty() || d.name.to_lowercase().contains(&q.search.to_lowercase())
                })
                .map(|d| (d.name.clone(), d.name, format!("{} accounts", d.accounts)))
                .collect()
        })
    } else {
        let search = Some(q.search.as_str()).filter(|s| !s.trim().is_empty());
        roster
            .directory_groups(&console.caller, search)
            .await
            .map(|gs| {
                gs.into_iter()
                    .map(|g| (g.address.clone(), g.name, g.address))
                    .collect()
            })
    };
    let title = format!("Choose {key} from the server");
    let body = match listed {
        Err(e) => html! {
            (layout::error(&e.to_string()))
            p { a href="/directory" { "Back to Directory Services" } }
        },
        Ok(items) => html! {
            form method="get" class="search" role="search" {
                label for="search" { "Search" }
                input id="search" name="search" type="search" value=(q.search);
                button type="submit" { "Search" }
            }
            form method="post" class="card" {
                (layout::csrf(&console))
                @if items.is_empty() { (layout::notice("Nothing found.")) }
                @for (value, name, detail) in &items {
                    label class="check" {
                        input type="checkbox" name=(format!("v:{value}")) checked[is_chosen(value)];
                        " " strong { (name) } " " small { (detail) }
                    }
                }
                @for value in chosen.iter().filter(|c| !items.iter().any(|(v, _, _)| v.eq_ignore_ascii_case(c))) {
                    // Selected but not listed (another search, or gone from the server): kept unless unchecked.
                    label class="check" {
                        input type="checkbox" name=(format!("v:{value}")) checked;
                        " " (value) " " small { "(selected; not in this list)" }
                    }
                }
                p class="help" { "None checked: no restriction by " (key) "." }
                button type="submit" class="primary" { "Use these" }
            }
        },
    };
    layout::page(&console, &title, body).into_response()
}

pub(crate) async fn save(
    State(roster): State<AppState>,
    AdminConsole(console): AdminConsole,
    Path(what): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !auth::csrf_ok(&console, form.get("csrf").map(String::as_str)) {
        return auth::csrf_refused();
    }
    let Some(key) = key(&what) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut values: Vec<String> = form
        .keys()
        .filter_map(|k| k.strip_prefix("v:"))
        .map(str::to_owned)
        .collect();
    values.sort();
    let stored = match roster.directory_settings(&console.caller).await {
        Ok(v) => v,
        Err(e) => {
            return layout::page(
                &console,
                "Directory Services",
                layout::error(&e.to_string()),
            )
            .into_response();
        }
    };
    let mut json = serde_json::to_value(&stored.settings).unwrap_or_default();
    if let Some(object) = json.as_object_mut() {
        object.insert(key.to_owned(), serde_json::Value::from(values));
    }
    let result = match serde_json::from_value(json) {
        Ok(settings) => roster
            .set_directory_settings(&console.caller, settings)
            .await
            .map(drop),
        Err(e) => Err(roster_app::AppError::Invalid(e.to_string())),
    };
    match result {
        Ok(()) => Redirect::to("/directory?saved=1").into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            layout::page(
                &console,
                "Directory Services",
                layout::error(&e.to_string()),
            ),
        )
            .into_response(),
    }
}
