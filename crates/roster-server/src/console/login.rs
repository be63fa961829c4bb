//! Log on and log off.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::auth::{self, Console};
use super::layout;
use crate::router::AppState;

#[derive(Debug, Deserialize)]
pub(crate) struct Next {
    next: Option<String>,
}

/// Only a path of this site: never an absolute URL (an open redirect) or `//host`.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if n.starts_with('/') && !n.starts_with("//") && !n.contains('\\') => n.to_owned(),
        _ => "/".to_owned(),
    }
}

fn form(next: &str, name: &str, problem: Option<&str>, sso: bool) -> maud::Markup {
    layout::bare_with(
        "Log on",
        html! {
            @if let Some(p) = problem { (layout::error(p)) }
            @if sso {
                div class="card" {
                    a class="button primary" href={ "/login/sso?next=" (super::url_encode(next)) } { "Log on with Windows (single sign-on)" }
                    p class="help" { "Uses the account you are logged on to Windows with, if your browser is allowed to send it to this site." }
                }
            }
            form method="post" action="/login" class="card" {
                input type="hidden" name="next" value=(next);
                label for="name" { "User name" }
                input id="name" name="name" type="text" autocomplete="username" required autofocus value=(name);
                label for="password" { "Password" }
                input id="password" name="password" type="password" autocomplete="current-password" required;
                p class="help" { "Your Roster password, or your directory password if your account uses directory authentication." }
                button type="submit" class="primary" { "Log on" }
            }
        },
    )
}

type Sso = Option<axum::Extension<std::sync::Arc<crate::SingleSignOn>>>;

pub(crate) async fn page(
    headers: HeaderMap,
    State(roster): State<AppState>,
    sso: Sso,
    Query(q): Query<Next>,
) -> Response {
    // Already logged on: straight on.
    if let Some(token) = auth::session_token(&headers)
        && roster.authenticate_token(token).await.is_ok()
    {
        return Redirect::to(&safe_next(q.next.as_deref())).into_response();
    }
    form(&safe_next(q.next.as_deref()), "", None, sso.is_some()).into_response()
}

/// "Log on with Windows": HTTP Negotiate, then on to `next` with the session's cookie; without a ticket
/// (or with one refused) the logon form again, saying why.
pub(crate) async fn single_sign_on(
    headers: HeaderMap,
    State(roster): State<AppState>,
    sso: Sso,
    secure: Option<axum::Extension<crate::SecureCookies>>,
    Query(q): Query<Next>,
) -> Response {
    use crate::api::negotiate::{NegotiateFailure, challenge, negotiated_session};
    let next = safe_next(q.next.as_deref());
    let on = sso.is_some();
    let again =
        |status: StatusCode, why: &str| (status, form(&next, "", Some(why), on)).into_response();
    let sso = sso.as_ref().map(|axum::Extension(s)| s.as_ref());
    match negotiated_session(&roster, sso, &headers).await {
        Ok((session, _)) => (
            StatusCode::SEE_OTHER,
            [
                (
                    header::SET_COOKIE,
                    auth::session_cookie(&session.token, secure.is_some()),
                ),
                (header::LOCATION, next.clone()),
            ],
        )
            .into_response(),
        Err(NegotiateFailure::Disabled) => again(
            StatusCode::NOT_FOUND,
            "Single sign-on is not enabled on this server. Log on with your password.",
        ),
        Err(NegotiateFailure::NoToken) => challenge(
            again(
                StatusCode::UNAUTHORIZED,
                "Your browser sent no Windows (Kerberos) logon for this site: it may not be allowed to for this address, or you are not logged on to the domain. Log on with your password.",
            ),
            None,
        ),
        Err(NegotiateFailure::Rejected(why)) => challenge(
            again(
                StatusCode::UNAUTHORIZED,
                &format!(
                    "Your Windows logon was not accepted ({why}). Log on with your password, or ask your administrator to run `roster sso check`."
                ),
            ),
            None,
        ),
        Err(NegotiateFailure::Refused(e, _)) => again(StatusCode::UNAUTHORIZED, &e.to_string()),
        Err(NegotiateFailure::Internal) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

#[derive(Deserialize)]
pub(crate) struct LogonForm {
    name: String,
    password: String,
    next: Option<String>,
}

pub(crate) async fn submit(
    State(roster): State<AppState>,
    sso: Sso,
    secure: Option<axum::Extension<crate::SecureCookies>>,
    Form(f): Form<LogonForm>,
) -> Response {
    let next = safe_next(f.next.as_deref());
    match roster.logon(&f.name, &f.password).await {
        Ok(session) => (
            StatusCode::SEE_OTHER,
            [
                (
                    header::SET_COOKIE,
                    auth::session_cookie(&session.token, secure.is_some()),
                ),
                (header::LOCATION, next),
            ],
        )
            .into_response(),
        Err(e) => {
            let status = match e.kind() {
                roster_app::ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                roster_app::ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
                _ => StatusCode::UNAUTHORIZED,
            };
            (
                status,
                form(&next, &f.name, Some(&e.to_string()), sso.is_some()),
            )
                .into_response()
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct LogoffForm {
    csrf: Option<String>,
}

pub(crate) async fn logout(
    State(roster): State<AppState>,
    headers: HeaderMap,
    console: Console,
    Form(f): Form<LogoffForm>,
) -> Response {
    if !auth::csrf_ok(&console, f.csrf.as_deref()) {
        return auth::csrf_refused();
    }
    if let Some(token) = auth::session_token(&headers) {
        let _ = roster.logout(token).await;
    }
    (
        StatusCode::SEE_OTHER,
        [
            (header::SET_COOKIE, auth::cleared_cookie()),
            (header::LOCATION, "/login".to_owned()),
        ],
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_is_a_local_path_only() {
        assert_eq!(safe_next(Some("/users?x=1")), "/users?x=1");
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil",
            "users",
        ] {
            assert_eq!(safe_next(Some(bad)), "/", "{bad}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
