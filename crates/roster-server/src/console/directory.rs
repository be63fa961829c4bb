//! Directory Services: the type selector and the chosen type's form (the seeds' labels, a line of help
//! each), Default Privileges, and the two buttons: Test Settings (a preview, nothing committed) and
//! Synchronize now. Both start a run and open its page, which shows its progress and then its report.
//! With automatic deletion on, Synchronize now starts a test first, whose page says how many users the
//! sync would delete and asks; the sync starts only when the form sends that number back.
//! An error of a failed run that belongs to a field (a refused password, an unreachable server) is shown
//! next to that field when the page is opened from the run.

use std::collections::{BTreeSet, HashMap};

use axum::Form;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use roster_app::RunKind;
use roster_core::directory::{DirectoryKind, DirectorySettings};
use roster_core::privileges::DefaultPrivileges;
use roster_core::{FolderRight, Privilege};
use serde::Deserialize;

use super::auth::{self, AdminConsole, Console};
use super::forms::{self, Input};
use super::layout;
use crate::router::AppState;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct PageQuery {
    /// The type to show a form for (the selector); default: the stored one.
    #[serde(rename = "type")]
    kind: Option<String>,
    saved: Option<String>,
    /// A failed run whose error is shown at its field.
    run: Option<i64>,
}

/// The settings key a failed run's error belongs to, by its code.
fn field_of_error(code: &str) -> Option<&'static str> {
    Some(match code.split('-').next().unwrap_or_default() {
        "DI004" | "DI028" => "server",
        "DI005" => "ca_file",
        "DI007" | "DI019" | "DI026" => "password",
        "DI012" => "base_dn",
        "DI024" | "DI025" => "imap_server",
        _ => return None,
    })
}

fn kind_named(name: &str) -> Option<DirectoryKind> {
    DirectoryKind::ALL
        .iter()
        .copied()
        .find(|k| k.name() == name)
}

struct FormState<'a> {
    kind: DirectoryKind,
    /// The values shown: the stored settings' JSON, or what was just submitted.
    values: serde_json::Value,
    password_set: bool,
    /// An error and the field it belongs to (`None`: the whole form).
    error: Option<(Option<&'a str>, String)>,
}

fn value_text(values: &serde_json::Value, key: &str) -> String {
    match values.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|i| i.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn settings_form(console: &Console, state: &FormState<'_>) -> Markup {
    let field_error = |key: &str| match &state.error {
        Some((Some(k), message)) if *k == key => Some(message.clone()),
        _ => None,
    };
    html! {
        form method="post" action="/directory" class="card settings" novalidate {
            (layout::csrf(console))
            input type="hidden" name="type" value=(state.kind.name());
            @if let Some((None, message)) = &state.error { (layout::error(message)) }
            @for field in forms::fields(state.kind) {
                @let id = format!("f-{}", field.key);
                @let help_id = format!("h-{}", field.key);
                @let error = field_error(field.key);
                @let error_id = format!("e-{}", field.key);
                // The help and, when there is one, the error are the field's description.
                @let described = if error.is_some() { format!("{help_id} {error_id}") } else { help_id.clone() };
                @let invalid = error.is_some().then_some("true");
                div class=(if error.is_some() { "field invalid" } else { "field" }) {
                    @match field.input {
                        Input::Checkbox => {
                            label class="check" for=(id) {
                                input id=(id) type="checkbox" name=(field.key) value="on"
                                    checked[state.values.get(field.key).and_then(|v| v.as_bool()).unwrap_or(false)]
                                    aria-describedby=(described) aria-invalid=[invalid];
                                " " (field.label)
                            }
                        }
                        Input::Select(options) => {
                            label for=(id) { (field.label) }
                            select id=(id) name=(field.key) aria-describedby=(described) aria-invalid=[invalid] {
                                @let current = value_text(&state.values, field.key);
                                @for (value, text) in options {
                                    option value=(value) selected[current == *value] { (text) }
                                }
                            }
                        }
                        Input::Lines => {
                            label for=(id) { (field.label) }
                            textarea id=(id) name=(field.key) rows="3" aria-describedby=(described) aria-invalid=[invalid] { (value_text(&state.values, field.key)) }
                        }
                        Input::Password => {
                            label for=(id) { (field.label) }
                            input id=(id) type="password" name=(field.key) autocomplete="new-password"
                                placeholder=(if state.password_set { "stored: leave empty to keep it" } else { "" })
                                aria-describedby=(described) aria-invalid=[invalid];
                        }
                        Input::Number => {
                            label for=(id) { (field.label) }
                            input id=(id) type="number" min="0" name=(field.key) value=(value_text(&state.values, field.key)) aria-describedby=(described) aria-invalid=[invalid];
                        }
                        Input::Text => {
                            label for=(id) { (field.label) }
                            input id=(id) type="text" name=(field.key) value=(value_text(&state.values, field.key)) aria-describedby=(described) aria-invalid=[invalid];
                        }
                    }
                    p class="help" id=(help_id) { (field.help) }
                    @if forms::pickable(state.kind, field.key) {
                        p { a href=(format!("/directory/pick/{}", field.key)) { "Choose " (field.key) " from the server…" } }
                    }
                    @if let Some(message) = error {
                        p class="error field-error" id=(error_id) role="alert" { (message) }
                    }
                }
            }
            button type="submit" class="primary" { "Save settings" }
        }
    }
}

fn defaults_form(console: &Console, defaults: &DefaultPrivileges) -> Markup {
    html! {
        details class="card" id="default-privileges" {
            summary { "Default Privileges..." }
            form method="post" action="/directory/defaults" {
                (layout::csrf(console))
                p class="help" { "What a user created by synchronization gets." }
                fieldset {
                    legend { "Privileges" }
                    @for p in Privilege::ALL {
                        label class="check" {
                            input type="checkbox" name=(format!("p-{}", p.as_str())) checked[defaults.privileges.contains(&p)];
                            " " (p.as_str())
                        }
                    }
                }
                fieldset {
                    legend { "Access to their own archive folder" }
                    @for r in FolderRight::ALL {
                        label class="check" {
                            input type="checkbox" name=(format!("r-{}", r.as_str())) checked[defaults.own_folder.contains(&r)];
                            " " (r.as_str())
                        }
                    }
                }
                button type="submit" { "Save default privileges" }
            }
        }
    }
}

async fn render(
    roster: &AppState,
    console: &Console,
    state: Option<FormState<'_>>,
    selected: Option<DirectoryKind>,
    notice: Option<&str>,
    run_error: Option<(String, String)>,
) -> Markup {
    let stored = roster.directory_settings(&console.caller).await.ok();
    let stored_kind = stored.as_ref().and_then(|v| v.settings.kind());
    let kind = state
        .as_ref()
        .map(|s| s.kind)
        .or(selected)
        .or(stored_kind)
        .unwrap_or(DirectoryKind::Ldap);
    let owned_error;
    let state = match state {
        Some(s) => s,
        None => {
            let same = stored_kind == Some(kind);
            let values = match (&stored, same) {
                (Some(v), true) => serde_json::to_value(&v.settings).unwrap_or_default(),
                _ => serde_json::json!({"type": kind.name()}),
            };
            owned_error = run_error.clone();
            FormState {
                kind,
                password_set: same
                    && stored
                        .as_ref()
                        .and_then(|v| v.password_set)
                        .unwrap_or(false),
                values,
                error: owned_error
                    .as_ref()
                    .map(|(code, message)| (field_of_error(code), message.clone())),
            }
        }
    };
    let defaults = roster
        .default_privileges(&console.caller)
        .await
        .unwrap_or_default();
    let configured = stored_kind.is_some();
    layout::page(
        console,
        "Directory Services",
        html! {
            @if let Some(n) = notice { (layout::notice(n)) }
            form method="get" action="/directory" class="type-select" {
                label for="type" { "Directory service type" }
                select id="type" name="type" data-autosubmit {
                    @for (k, label) in forms::kinds() {
                        option value=(k.name()) selected[k == kind] { (label) }
                    }
                }
                button type="submit" { "Show its settings" }
            }
            @if stored_kind.is_some_and(|k| k != kind) {
                (layout::notice("Saving these settings replaces the stored ones of another type."))
            }
            (settings_form(console, &state))
            (defaults_form(console, &defaults))
            div class="card actions" {
                form method="post" action="/directory/preview" {
                    (layout::csrf(console))
                    button type="submit" disabled[!configured] { "Test Settings" }
                    span class="help" { "Reads the directory and shows what Synchronize now would do; commits nothing." }
                }
                form method="post" action="/directory/sync" {
                    (layout::csrf(console))
                    button type="submit" class="primary" disabled[!configured] { "Synchronize now" }
                    span class="help" { "Applies the changes. With automatic deletion on, a test shows first how many users would be deleted, and asks." }
                }
            }
        },
    )
}

pub(crate) async fn page(
    State(roster): State<AppState>,
    AdminConsole(console): AdminConsole,
    Query(q): Query<PageQuery>,
) -> Response {
    let selected = q.kind.as_deref().and_then(kind_named);
    let run_error = match q.run {
        Some(id) => match roster.get_run(&console.caller, id, 0, 1).await {
            Ok((run, _)) => run.error.map(|e| (run.error_code.unwrap_or_default(), e)),
            Err(_) => None,
        },
        None => None,
    };
    let notice = q.saved.as_ref().map(|_| "Settings saved.");
    render(&roster, &console, None, selected, notice, run_error)
        .await
        .into_response()
}

pub(crate) async fn save(
    State(roster): State<AppState>,
    AdminConsole(console): AdminConsole,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !auth::csrf_ok(&console, form.get("csrf").map(String::as_str)) {
        return auth::csrf_refused();
    }
    let Some(kind) = form.get("type").and_then(|t| kind_named(t)) else {
        return (StatusCode::BAD_REQUEST, "unknown directory type").into_response();
    };
    let refused = |values: serde_json::Value, key: Option<&'static str>, message: String| {
        let roster = roster.clone();
        let console = &console;
        async move {
            let state = FormState {
                kind,
                values,
                password_set: false,
                error: Some((key, message)),
            };
            (
                StatusCode::BAD_REQUEST,
                render(&roster, console, Some(state), Some(kind), None, None).await,
            )
                .into_response()
        }
    };
    let json = match forms::to_json(kind, &form) {
        Ok(json) => json,
        Err((key, message)) => {
            let shown = serde_json::to_value(&form).unwrap_or_default();
            return refused(shown, Some(key), message).await;
        }
    };
    let settings: DirectorySettings = match serde_json::from_value(json.clone()) {
        Ok(s) => s,
        Err(e) => return refused(json, None, e.to_string()).await,
    };
    match roster
        .set_directory_settings(&console.caller, settings)
        .await
    {
        Ok(_) => Redirect::to(&format!("/directory?type={}&saved=1", kind.name())).into_response(),
        Err(e) => {
            let key = e.field().and_then(|k| {
                forms::fields(kind)
                    .into_iter()
                    .map(|f| f.key)
                    .find(|f| *f == k)
            });
            refused(json, key, e.to_string()).await
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct RunForm {
    csrf: Option<String>,
    /// Given by the confirmation on a test's page: the number of deletions the user saw and agreed to.
    confirm_deletions: Option<String>,
    /// The test whose page the button was on.
    from_preview: Option<i64>,
}

async fn start(roster: &AppState, console: &Console, kind: RunKind) -> Response {
    start_then(roster, console, kind, "").await
}

/// Starts a run and opens its page (with `query`).
async fn start_then(roster: &AppState, console: &Console, kind: RunKind, query: &str) -> Response {
    match roster
        .start_directory_run(&console.caller, kind, "console")
        .await
    {
        Ok(started) => Redirect::to(&format!("/runs/{}{query}", started.run_id)).into_response(),
        Err(e) => (
            StatusCode::CONFLICT,
            render(
                roster,
                console,
                None,
                None,
                None,
                Some((e.code().to_owned(), e.to_string())),
            )
            .await,
        )
            .into_response(),
    }
}

pub(crate) async fn preview(
    State(roster): State<AppState>,
    AdminConsole(console): AdminConsole,
    Form(f): Form<RunForm>,
) -> Response {
    if !auth::csrf_ok(&console, f.csrf.as_deref()) {
        return auth::csrf_refused();
    }
    start(&roster, &console, RunKind::Preview).await
}

pub(crate) async fn sync(
    State(roster): State<AppState>,
    AdminConsole(console): AdminConsole,
    Form(f): Form<RunForm>,
) -> Response {
    if !auth::csrf_ok(&console, f.csrf.as_deref()) {
        return auth::csrf_refused();
    }
    let deletes = roster
        .directory_settings(&console.caller)
        .await
        .map(|v| v.settings.delete_users())
        .unwrap_or(false);
    // With deletion on, a sync is confirmed on a test's page first: its report says how many go, and the
    // form sends that number back. A form that doesn't (a browser that ignored `required`) is sent back
    // to the test's page.
    if deletes {
        let Some(preview) = f.from_preview else {
            return start_then(&roster, &console, RunKind::Preview, "?confirm=1").await;
        };
        let shown = match roster.get_run(&console.caller, preview, 0, 1).await {
            Ok((run, _)) if run.kind == RunKind::Preview => {
                run.counts.map(|c| c.deleted.to_string())
            }
            _ => None,
        };
        if shown.is_none() || shown != f.confirm_deletions {
            return Redirect::to(&format!("/runs/{preview}?confirm=1")).into_response();
        }
    }
    start(&roster, &console, RunKind::Sync).await
}

pub(crate) async fn save_defaults(
    State(roster): State<AppState>,
    AdminConsole(console): AdminConsole,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !auth::csrf_ok(&console, form.get("csrf").map(String::as_str)) {
        return auth::csrf_refused();
    }
    let privileges: BTreeSet<Privilege> = Privilege::ALL
        .into_iter()
        .filter(|p| form.contains_key(&format!("p-{}", p.as_str())))
        .collect();
    let own_folder: BTreeSet<FolderRight> = FolderRight::ALL
        .into_iter()
        .filter(|r| form.contains_key(&format!("r-{}", r.as_str())))
        .collect();
    match roster
        .set_default_privileges(
            &console.caller,
            DefaultPrivileges {
                privileges,
                own_folder,
            },
        )
        .await
    {
        Ok(_) => Redirect::to("/directory?saved=1#default-privileges").into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            render(
                &roster,
                &console,
                None,
                None,
                None,
                Some((e.code().to_owned(), e.to_string())),
            )
            .await,
        )
            .into_response(),
    }
}
