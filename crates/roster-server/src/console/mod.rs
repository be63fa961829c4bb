//! The web console (issue 24), served by `roster serve` at `/`: server-rendered HTML (maud: markup
//! checked when the binary is compiled, every value escaped; no template files to keep in step, no Node
//! toolchain), one stylesheet and one small script embedded in the binary, pages that work without
//! JavaScript except the live progress of a run (which then refreshes the page instead).
//!
//! Security: a cookie session from the same logon as the API (`auth.rs`), a CSRF token in every form
//! that changes something, and on every console answer a Content-Security-Policy that allows only this
//! site's own script and style (no inline ones), `X-Frame-Options: DENY`, `nosniff` and no referrer.
//! Everything a page does goes through `Roster`, with the session's caller: the console can do nothing
//! the API can't, and checks nothing itself.

mod audit;
mod auth;
mod directory;
mod edit;
mod forms;
mod layout;
mod login;
mod pick;
mod runs;
mod users;

pub(crate) use auth::session_cookie;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::router::AppState;

const CSS: &str = include_str!("console.css");
const JS: &str = include_str!("console.js");

/// The console's routes, beside `/api/v1`.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login::page).post(login::submit))
        .route("/login/sso", get(login::single_sign_on))
        .route("/logout", post(login::logout))
        .route("/me", get(users::me))
        .route("/me/password", post(edit::own_password))
        .route("/users", get(users::list))
        .route("/users/new", get(edit::new_page).post(edit::create))
        .route("/users/{name}", get(users::show))
        .route(
            "/users/{name}/edit",
            get(edit::edit_page).post(edit::update),
        )
        .route("/users/{name}/delete", post(edit::delete))
        .route("/directory", get(directory::page).post(directory::save))
        .route("/directory/defaults", post(directory::save_defaults))
        .route("/directory/pick/{what}", get(pick::page).post(pick::save))
        .route("/directory/preview", post(directory::preview))
        .route("/directory/sync", post(directory::sync))
        .route("/runs", get(runs::list))
        .route("/runs/{id}", get(runs::show))
        .route("/runs/{id}/progress", get(runs::progress))
        .route("/runs/{id}/approve", post(runs::approve))
        .route("/audit", get(audit::list))
        .route("/static/console.css", get(css))
        .route("/static/console.js", get(js))
        .layer(axum::middleware::from_fn(security_headers))
}

/// Administrators start at the users, everyone else at their own page.
async fn home(console: auth::Console) -> Redirect {
    Redirect::to(if console.caller.is_admin() {
        "/users"
    } else {
        "/me"
    })
}

async fn css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], CSS).into_response()
}

async fn js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        JS,
    )
        .into_response()
}

async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Percent-encodes a path segment or query value.
pub(crate) fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
