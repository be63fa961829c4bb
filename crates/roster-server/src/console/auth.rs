//! Who uses the console: a session cookie from the same logon as the API (`Roster::logon`), checked on
//! every request like a bearer token, and a CSRF token on every form that changes something.
//!
//! The cookie is `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page sends it) and
//! `Path=/`. The CSRF token is a hash of the session's token with a label of its own: a page of this
//! session can put it in its forms, another site can't know it, and it needs no storage.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use roster_app::Caller;
use sha2::{Digest, Sha256};

use super::layout;
use crate::router::AppState;

pub(crate) const COOKIE: &str = "roster_session";

/// A console request with a valid session.
pub(crate) struct Console {
    pub(crate) caller: Caller,
    pub(crate) csrf: String,
    /// The request's path, for the navigation's "you are here".
    pub(crate) path: String,
}

/// A console request of an administrator.
pub(crate) struct AdminConsole(pub(crate) Console);

/// The session token from the request's cookie, if any.
pub(crate) fn session_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// The CSRF token of a session.
pub(crate) fn csrf_token(session: &str) -> String {
    let digest = Sha256::digest(format!("roster-console-csrf\0{session}").as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a form's CSRF token is this session's (compared in constant time).
pub(crate) fn csrf_ok(console: &Console, given: Option<&str>) -> bool {
    let Some(given) = given else { return false };
    let (a, b) = (console.csrf.as_bytes(), given.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The answer to a form without this session's CSRF token.
pub(crate) fn csrf_refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        layout::bare(
            "Refused",
            "This form was not sent from a page of this session (its security token is missing or wrong). Go back, reload the page and try again.",
        ),
    )
        .into_response()
}

/// `Set-Cookie` for a new session.
pub(crate) fn session_cookie(token: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// `Set-Cookie` that ends the session in the browser.
pub(crate) fn cleared_cookie() -> String {
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0")
}

impl FromRequestParts<AppState> for Console {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let to_logon = || {
            let next = parts.uri.path();
            Redirect::to(&format!("/login?next={}", super::url_encode(next))).into_response()
        };
        let Some(token) = session_token(&parts.headers) else {
            return Err(to_logon());
        };
        match state.authenticate_token(token).await {
            Ok(caller) => Ok(Console {
                csrf: csrf_token(token),
                caller,
                path: parts.uri.path().to_owned(),
            }),
            Err(_) => Err(to_logon()),
        }
    }
}

impl FromRequestParts<AppState> for AdminConsole {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let console = Console::from_request_parts(parts, state).await?;
        if !console.caller.is_admin() {
            return Err((
                StatusCode::FORBIDDEN,
                layout::page(
                    &console,
                    "Not allowed",
                    layout::notice(
                        "This page is for administrators. Your own details are under My account.",
                    ),
                ),
            )
                .into_response());
        }
        Ok(AdminConsole(console))
    }
}
