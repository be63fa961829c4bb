//! Users and Privileges: the searchable, paginated list (the search and the paging are the database's),
//! and one user's details.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use roster_core::user::User;
use serde::Deserialize;

use super::auth::AdminConsole;
use super::layout;
use crate::router::AppState;

const PAGE: i64 = 50;

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    offset: i64,
}

fn state_of(user: &User) -> &'static str {
    match (
        &user.departed_at,
        user.privileges.contains(&roster_core::Privilege::LogOn),
    ) {
        (Some(_), _) => "suspended",
        (None, false) => "can't log on",
        (None, true) => "active",
    }
}

pub(crate) async fn list(
    State(roster): State<AppState>,
    AdminConsole(console): AdminConsole,
    Query(q): Query<ListQuery>,
) -> Response {
    let offset = q.offset.max(0);
    let page = match roster
        .search_users(&console.caller, &q.q, offset, PAGE)
        .await
    {
        Ok(page) => page,
        Err(e) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                layout::page(
                    &console,
                    "Users and Privileges",
                    layout::error(&e.to_string()),
                ),
            )
                .into_response();
        }
    };
    let query = if q.q.is_empty() {
        String::new()
    } else {
        format!("q={}", super::url_encode(&q.q))
    };
    let body = html! {
        p { a href="/users/new" class="button" { "Add a user" } }
        form method="get" action="/users" class="search" role="search" {
            label for="q" { "Search users" }
            input id="q" name="q" type="search" value=(q.q) placeholder="name, full name or address";
            button type="submit" { "Search" }
        }
        @if page.items.is_empty() {
            (layout::notice(if q.q.is_empty() { "No users yet." } else { "No user matches this search." }))
        } @else {
            table class="list" {
                thead { tr {
                    th scope="col" { "Name" } th scope="col" { "Full name" } th scope="col" { "Addresses" }
                    th scope="col" { "Authentication" } th scope="col" { "Directory" }
                    th scope="col" { "Privileges" } th scope="col" { "State" }
                } }
                tbody {
                    @for u in &page.items {
                        tr {
                            td { a href=(format!("/users/{}", super::url_encode(u.name.as_str()))) { (u.name.as_str()) } }
                            td { (u.full_name) }
                            td { @for (i, e) in u.emails.iter().enumerate() { @if i > 0 { br; } (e.as_str()) } }
                            td { (u.auth.as_str()) }
                            td { @if let Some(link) = &u.directory { (link.source) } @else { "—" } }
                            td { (privileges(u)) }
                            td { (state_of(u)) }
                        }
                    }
                }
            }
        }
        (layout::pager("/users", &query, offset, PAGE, page.total))
    };
    layout::page(&console, "Users and Privileges", body).into_response()
}

fn privileges(u: &User) -> String {
    u.privileges
        .iter()
        .map(|p| p.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn details(u: &User) -> Markup {
    html! {
        dl class="details" {
            dt { "Name" } dd { (u.name.as_str()) }
            dt { "Full name" } dd { (u.full_name) }
            dt { "Addresses" } dd { @for e in &u.emails { (e.as_str()) br; } }
            dt { "Authentication" } dd { (u.auth.as_str()) }
            dt { "Directory link" } dd {
                @if let Some(link) = &u.directory {
                    (link.source) " · " (link.id)
                    @if let Some(dn) = &link.dn { br; small { (dn) } }
                } @else { "none (a user created in Roster)" }
            }
            dt { "Privileges" } dd { (privileges(u)) }
            dt { "Folder access" } dd id="folder-access" {
                @for f in &u.folders {
                    (f.folder) ": " (f.rights.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")) br;
                }
                @if u.folders.is_empty() { "none" }
            }
            dt { "State" } dd { (state_of(u)) @if let Some(at) = u.departed_at { " since " (layout::when(at)) } }
            dt { "Created" } dd { (layout::when(u.created_at)) }
        }
    }
}

pub(crate) async fn show(
    State(roster): State<AppState>,
    AdminConsole(console): AdminConsole,
    Path(name): Path<String>,
) -> Response {
    match roster.get_user(&console.caller, &name).await {
        Ok(user) => layout::page(
            &console,
            &format!("User {}", user.name.as_str()),
            html! {
                p { a class="button" href=(format!("/users/{}/edit", super::url_encode(user.name.as_str()))) { "Edit " (user.name.as_str()) } }
                (details(&user))
            },
        )
        .into_response(),
        Err(e) => (
            StatusCode::NOT_FOUND,
            layout::page(&console, "User", layout::error(&e.to_string())),
        )
            .into_response(),
    }
}

/// My account: a user's own page (every user may see it).
pub(crate) async fn me(State(roster): State<AppState>, console: super::auth::Console) -> Response {
    let body = match &console.caller {
        roster_app::Caller::User(u) => {
            match roster.get_user(&console.caller, u.name.as_str()).await {
                Ok(user) => details(&user),
                Err(e) => layout::error(&e.to_string()),
            }
        }
        roster_app::Caller::Local(_) | roster_app::Caller::Schedule => {
            layout::notice("This session is not a user's.")
        }
    };
    layout::page(&console, "My account", body).into_response()
}
