//! Changing users from the console: add, edit (full name, addresses, authentication, password of a local
//! user, privileges, folder access) and delete (saying what happens to the folder), and a user's own
//! password. Each form posts to a use case of `Roster`; its refusal is shown on the form.
//!
//! Folder access is edited without a script: each folder the user has access to is a group of
//! checkboxes (`fr-<folder id>-<right>`, with a hidden `folder-<folder id>` saying the group was on the
//! form), where unchecking every right removes the access, and one more group gives access to a folder
//! named by the administrator. Only the folders whose rights changed are sent, so access given
//! meanwhile by someone else to another folder stays.

use std::collections::{BTreeSet, HashMap};

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use roster_app::{FolderRightsInput, NewUserInput, PrivilegesInput, UserUpdateInput};
use roster_core::user::{AuthMethod, User};
use roster_core::{FolderRight, Privilege};

use super::auth::{self, AdminConsole, Console};
use super::layout;
use crate::router::AppState;

fn lines(text: Option<&String>) -> Vec<String> {
    text.map(|t| {
        t.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

fn checked_privileges(form: &HashMap<String, String>) -> BTreeSet<Privilege> {
    Privilege::ALL
        .into_iter()
        .filter(|p| form.contains_key(&format!("p-{}", p.as_str())))
        .collect()
}

fn checked_rights(form: &HashMap<String, String>, prefix: &str) -> BTreeSet<FolderRight> {
    FolderRight::ALL
        .into_iter()
        .filter(|r| form.contains_key(&format!("{prefix}-{}", r.as_str())))
        .collect()
}

/// The folder access the form asks for that differs from the user's: the changed folders (by id; an
/// empty set removes the access), and the folder to give access to, if one is named. A named folder
/// without a right checked is a form not filled in.
fn folder_changes(
    user: &User,
    form: &HashMap<String, String>,
) -> Result<Vec<FolderRightsInput>, String> {
    let mut changes: Vec<FolderRightsInput> = user
        .folders
        .iter()
        .filter(|a| form.contains_key(&format!("folder-{}", a.folder_id)))
        .filter_map(|a| {
            let rights = checked_rights(form, &format!("fr-{}", a.folder_id));
            (rights != a.rights).then(|| FolderRightsInput {
                folder: a.folder_id.to_string(),
                rights,
            })
        })
        .collect();
    if let Some(folder) = form
        .get("add_folder")
        .map(|f| f.trim())
        .filter(|f| !f.is_empty())
    {
        let rights = checked_rights(form, "add");
        if rights.is_empty() {
            return Err(format!(
                "Check the rights to give on the folder {folder:?} (read, write or delete)."
            ));
        }
        changes.push(FolderRightsInput {
            folder: folder.to_owned(),
            rights,
        });
    }
    Ok(changes)
}

fn rights_checkboxes(
    prefix: &str,
    checked: &BTreeSet<FolderRight>,
    described_by: Option<&str>,
) -> Markup {
    html! {
        span class="rights" {
            @for r in FolderRight::ALL {
                label class="check" {
                    input type="checkbox" name=(format!("{prefix}-{}", r.as_str())) checked[checked.contains(&r)] aria-describedby=[described_by];
                    " " (r.as_str())
                }
            }
        }
    }
}

/// The folder access part of the edit form.
fn folder_access(user: &User, form: &HashMap<String, String>) -> Markup {
    let shown = |id: i64, current: &BTreeSet<FolderRight>| {
        if form.is_empty() {
            current.clone()
        } else {
            checked_rights(form, &format!("fr-{id}"))
        }
    };
    let add_rights = if form.is_empty() {
        BTreeSet::from([FolderRight::Read])
    } else {
        checked_rights(form, "add")
    };
    html! {
        fieldset class="folders" id="folder-access" {
            legend { "Folder access" }
            @if user.builtin_admin {
                p class="help" { "The built-in administrator has every right on every folder." }
            } @else {
                @if user.folders.is_empty() {
                    p class="help" { "No access to any archive folder." }
                } @else {
                    p class="help" id="folders-help" { "Uncheck every right of a folder to remove the access." }
                    @for a in &user.folders {
                        fieldset class="folder" {
                            legend { "Folder " (a.folder) }
                            input type="hidden" name=(format!("folder-{}", a.folder_id)) value=(a.folder);
                            (rights_checkboxes(&format!("fr-{}", a.folder_id), &shown(a.folder_id, &a.rights), Some("folders-help")))
                        }
                    }
                }
                fieldset class="folder add" {
                    legend { "Give access to another folder" }
                    label for="add_folder" { "Folder" }
                    input id="add_folder" name="add_folder" type="text" value=(form.get("add_folder").cloned().unwrap_or_default()) aria-describedby="add-folder-help";
                    p class="help" id="add-folder-help" { "A user's name (their archive folder) or a folder's number; leave empty to give none." }
                    (rights_checkboxes("add", &add_rights, None))
                }
            }
        }
    }
}

fn user_form(
    console: &Console,
    action: &str,
    user: Option<&User>,
    form: &HashMap<String, String>,
    error: Option<&str>,
) -> Markup {
    let value = |key: &str, current: String| form.get(key).cloned().unwrap_or(current);
    let auth = value("auth", user.map_or("local", |u| u.auth.as_str()).to_owned());
    let privileges: BTreeSet<Privilege> = if form.is_empty() {
        user.map(|u| u.privileges.clone())
            .unwrap_or_else(|| BTreeSet::from([Privilege::LogOn]))
    } else {
        checked_privileges(form)
    };
    html! {
        @if let Some(e) = error { (layout::error(e)) }
        form method="post" action=(action) class="card" {
            (layout::csrf(console))
            @if user.is_none() {
                div class="field" {
                    label for="name" { "User name" }
                    input id="name" name="name" type="text" required value=(value("name", String::new()));
                }
            }
            div class="field" {
                label for="full_name" { "Full name" }
                input id="full_name" name="full_name" type="text" value=(value("full_name", user.map(|u| u.full_name.clone()).unwrap_or_default()));
            }
            div class="field" {
                label for="emails" { "Email addresses" }
                textarea id="emails" name="emails" rows="3" aria-describedby="emails-help" {
                    (value("emails", user.map(|u| u.emails.iter().map(|e| e.as_str()).collect::<Vec<_>>().join("\n")).unwrap_or_default()))
                }
                p class="help" id="emails-help" { "One per line." }
            }
            div class="field" {
                label for="auth" { "Authentication" }
                select id="auth" name="auth" {
                    option value="local" selected[auth == "local"] { "Roster password" }
                    option value="directory" selected[auth == "directory"] { "Directory Services" }
                }
            }
            div class="field" {
                label for="password" { "Password (Roster password only)" }
                input id="password" name="password" type="password" autocomplete="new-password"
                    placeholder=(if user.is_some() { "leave empty to keep it" } else { "" });
            }
            fieldset {
                legend { "Privileges" }
                @for p in Privilege::ALL {
                    label class="check" {
                        input type="checkbox" name=(format!("p-{}", p.as_str())) checked[privileges.contains(&p)];
                        " " (p.as_str())
                    }
                }
            }
            @if let Some(u) = user { (folder_access(u, form)) }
            button type="submit" class="primary" { (if user.is_some() { "Save" } else { "Add user" }) }
        }
    }
}

pub(crate) async fn new_page(AdminConsole(console): AdminConsole) -> Response {
    let body = user_form(&console, "/users/new", None, &HashMap::new(), None);
    layout::page(&console, "Add a user", body).into_response()
}

pub(crate) async fn create(
    State(roster): State<AppState>,
    AdminConsole(console): AdminConsole,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !auth::csrf_ok(&console, form.get("csrf").map(String::as_str)) {
        return auth::csrf_refused();
    }
    let input = NewUserInput {
        name: form.get("name").cloned().unwrap_or_default(),
        full_name: form.get("full_name").cloned().unwrap_or_default(),
        emails: lines(form.get("emails")),
        auth: if form.get("auth").map(String::as_str) == Some("directory") {
            AuthMethod::Directory
        } else {
            AuthMethod::Local
        },
        password: form.get("password").filter(|p| !p.is_empty()).cloned(),
        privileges: Some(checked_privileges(&form)),
    };
    match roster.create_user(&console.caller, input).await {
        Ok(user) => Redirect::to(&format!("/users/{}", super::url_encode(user.name.as_str())))
            .into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            layout::page(
                &console,
                "Add a user",
                user_form(&console, "/users/new", None, &form, Some(&e.to_string())),
            ),
        )
            .into_response(),
    }
}

pub(crate) async fn edit_page(
    State(roster): State<AppState>,
    AdminConsole(console): AdminConsole,
    Path(name): Path<String>,
) -> Response {
    match roster.get_user(&console.caller, &name).await {
        Ok(user) => edit_markup(&console, &user, &HashMap::new(), None).into_response(),
        Err(e) => (
            StatusCode::NOT_FOUND,
            layout::page(&console, "User", layout::error(&e.to_string())),
        )
            .into_response(),
    }
}

fn edit_markup(
    console: &Console,
    user: &User,
    form: &HashMap<String, String>,
    error: Option<&str>,
) -> Markup {
    let path = format!("/users/{}", super::url_encode(user.name.as_str()));
    layout::page(
        console,
        &format!("Edit {}", user.name.as_str()),
        html! {
            (user_form(console, &format!("{path}/edit"), Some(user), form, error))
            @if !user.builtin_admin {
                form method="post" action=(format!("{path}/delete")) class="card warn" {
                    (layout::csrf(console))
                    h2 { "Delete this user" }
                    p { "The user goes. Their archive folder stays if it holds mail (without an owner), and is deleted with them if it is empty." }
                    label class="check" { input type="checkbox" name="confirm" value="yes" required; " Delete " (user.name.as_str()) }
                    button type="submit" class="danger" { "Delete user" }
                }
            }
        },
    )
}

pub(crate) async fn update(
    State(roster): State<AppState>,
    AdminConsole(console): AdminConsole,
    Path(name): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !auth::csrf_ok(&console, form.get("csrf").map(String::as_str)) {
        return auth::csrf_refused();
    }
    let user = match roster.get_user(&console.caller, &name).await {
        Ok(u) => u,
        Err(e) => {
            return (
                StatusCode::NOT_FOUND,
                layout::page(&console, "User", layout::error(&e.to_string())),
            )
                .into_response();
        }
    };
    let auth = if form.get("auth").map(String::as_str) == Some("directory") {
        AuthMethod::Directory
    } else {
        AuthMethod::Local
    };
    // The form is read whole before anything changes.
    let folders = match folder_changes(&user, &form) {
        Ok(f) => f,
        Err(message) => {
            return (
                StatusCode::BAD_REQUEST,
                edit_markup(&console, &user, &form, Some(&message)),
            )
                .into_response();
        }
    };
    // Only what the form changed is sent: a save that leaves a field as it was writes no audit line for it.
    let full_name = form
        .get("full_name")
        .filter(|f| **f != user.full_name)
        .cloned();
    let emails = Some(lines(form.get("emails"))).filter(|e| {
        e.iter()
            .map(String::as_str)
            .ne(user.emails.iter().map(|a| a.as_str()))
    });
    let result = async {
        if full_name.is_some() || emails.is_some() {
            roster
                .update_user(
                    &console.caller,
                    &name,
                    UserUpdateInput { full_name, emails },
                )
                .await?;
        }
        if auth != user.auth {
            roster.set_auth(&console.caller, &name, auth).await?;
        }
        if let Some(password) = form.get("password").filter(|p| !p.is_empty()) {
            roster
                .set_password(&console.caller, &name, password)
                .await?;
        }
        let privileges = checked_privileges(&form);
        // Folders not sent keep their access (`PrivilegesInput::folders`).
        if privileges != user.privileges || !folders.is_empty() {
            roster
                .set_privileges(
                    &console.caller,
                    &name,
                    PrivilegesInput {
                        privileges,
                        folders,
                    },
                )
                .await?;
        }
        Ok::<(), roster_app::AppError>(())
    }
    .await;
    match result {
        Ok(()) => Redirect::to(&format!("/users/{}", super::url_encode(&name))).into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            edit_markup(&console, &user, &form, Some(&e.to_string())),
        )
            .into_response(),
    }
}

pub(crate) async fn delete(
    State(roster): State<AppState>,
    AdminConsole(console): AdminConsole,
    Path(name): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !auth::csrf_ok(&console, form.get("csrf").map(String::as_str)) {
        return auth::csrf_refused();
    }
    match roster.delete_user(&console.caller, &name).await {
        Ok(deleted) => layout::page(
            &console,
            "User deleted",
            layout::notice(&format!(
                "{} was deleted; {}",
                deleted.name.as_str(),
                if deleted.folder_kept {
                    "their folder holds mail and stays, without an owner."
                } else {
                    "their empty folder went with them."
                }
            )),
        )
        .into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            layout::page(&console, "User", layout::error(&e.to_string())),
        )
            .into_response(),
    }
}

/// My account: change my own password (with the `change_password` privilege).
pub(crate) async fn own_password(
    State(roster): State<AppState>,
    console: Console,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if !auth::csrf_ok(&console, form.get("csrf").map(String::as_str)) {
        return auth::csrf_refused();
    }
    let current = form.get("current").cloned().unwrap_or_default();
    let new = form.get("new").cloned().unwrap_or_default();
    let message = match roster
        .change_own_password(&console.caller, &current, &new)
        .await
    {
        Ok(()) => layout::notice("Your password was changed."),
        Err(e) => layout::error(&e.to_string()),
    };
    layout::page(&console, "My account", message).into_response()
}
