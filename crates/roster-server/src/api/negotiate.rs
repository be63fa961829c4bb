//! Single sign-on: `GET`/`POST /api/v1/sessions/negotiate` with HTTP Negotiate (RFC 4559). Without a
//! token it answers `401` with `WWW-Authenticate: Negotiate`; browsers that trust the site for it (and
//! `curl --negotiate -u :`) then send a SPNEGO token holding a Kerberos ticket for `HTTP/<host>`. The
//! ticket is accepted with the keytab given to `roster serve --keytab`, its client `user@REALM` is
//! mapped to a Roster user by the app (`Roster::logon_with_kerberos`), and the answer is a session like
//! a password logon's, with the console's cookie set and the mutual-authentication token returned.

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::{ApiError, ErrorBody, HttpError};
use crate::router::AppState;

/// The keytab's acceptor, put on the router (`Extension`) by `roster serve --keytab`.
#[derive(Debug, Clone)]
pub struct SingleSignOn {
    acceptor: roster_kerberos::Acceptor,
}

impl SingleSignOn {
    /// Reads the keytab (no network): a missing or unreadable file stops the server at start.
    pub fn from_keytab(
        path: &std::path::Path,
    ) -> Result<SingleSignOn, roster_kerberos::KerberosError> {
        Ok(SingleSignOn {
            acceptor: roster_kerberos::Acceptor::from_keytab(path)?,
        })
    }
}

/// The most a Negotiate header may carry: tickets with a large PAC (many groups) reach 12-48 KB.
const TOKEN_LIMIT: usize = 64 * 1024;

/// Why a Negotiate logon gave no session.
pub(crate) enum NegotiateFailure {
    /// The server was started without `--keytab`.
    Disabled,
    /// No (usable) `Authorization: Negotiate` token: the client should be challenged.
    NoToken,
    /// The token carried no ticket the keytab accepts; the problem in short (the log has the rest).
    Rejected(&'static str),
    /// A ticket was accepted, and the app refused its user (as a failed logon), with the
    /// mutual-authentication token.
    Refused(roster_app::AppError, Option<String>),
    Internal,
}

/// The session a request's Negotiate token gives, and the mutual-authentication token (base64).
pub(crate) async fn negotiated_session(
    roster: &roster_app::Roster,
    sso: Option<&SingleSignOn>,
    headers: &HeaderMap,
) -> Result<(roster_app::Session, Option<String>), NegotiateFailure> {
    let Some(sso) = sso else {
        return Err(NegotiateFailure::Disabled);
    };
    let Some(token) = negotiate_token(headers) else {
        return Err(NegotiateFailure::NoToken);
    };
    let acceptor = sso.acceptor.clone();
    let accepted = match tokio::task::spawn_blocking(move || acceptor.accept(&token)).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => {
            tracing::warn!(problem = e.problem().as_str(), error = %e, hint = e.hint(), "a Kerberos ticket was not accepted");
            return Err(NegotiateFailure::Rejected(e.problem().as_str()));
        }
        Err(e) => {
            tracing::error!(error = %e, "accepting a Kerberos ticket panicked");
            return Err(NegotiateFailure::Internal);
        }
    };
    let mutual = accepted.token.as_deref().map(|t| STANDARD.encode(t));
    match roster.logon_with_kerberos(&accepted.principal).await {
        Ok(session) => Ok((session, mutual)),
        Err(e) => Err(NegotiateFailure::Refused(e, mutual)),
    }
}

/// Log on with Kerberos (SPNEGO); see the module doc.
#[utoipa::path(get, tag = "sessions", path = "/api/v1/sessions/negotiate",
    responses((status = 201, body = roster_app::Session), (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn negotiate(
    State(roster): State<AppState>,
    sso: Option<Extension<Arc<SingleSignOn>>>,
    secure: Option<Extension<crate::SecureCookies>>,
    headers: HeaderMap,
) -> Response {
    let sso = sso.as_ref().map(|Extension(s)| s.as_ref());
    match negotiated_session(&roster, sso, &headers).await {
        Ok((session, mutual)) => {
            let cookie = crate::console::session_cookie(&session.token, secure.is_some());
            let mut response = (StatusCode::CREATED, Json(session)).into_response();
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, v);
            }
            if let Some(m) = mutual
                && let Ok(v) = HeaderValue::from_str(&format!("Negotiate {m}"))
            {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            response
        }
        Err(NegotiateFailure::Disabled) => {
            ApiError::from(HttpError::SingleSignOnDisabled).into_response()
        }
        Err(NegotiateFailure::NoToken) => challenge(
            ApiError::from(HttpError::NegotiateRequired).into_response(),
            None,
        ),
        Err(NegotiateFailure::Rejected(why)) => challenge(
            ApiError::from(HttpError::TicketRejected(why)).into_response(),
            None,
        ),
        Err(NegotiateFailure::Refused(e, mutual)) => {
            challenge(ApiError::from(e).into_response(), mutual)
        }
        Err(NegotiateFailure::Internal) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The token of `Authorization: Negotiate <base64>`, decoded; `None` if absent, empty or not base64.
fn negotiate_token(headers: &HeaderMap) -> Option<Vec<u8>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("negotiate") {
        return None;
    }
    let token = token.trim();
    if token.is_empty() || token.len() > TOKEN_LIMIT {
        return None;
    }
    STANDARD.decode(token).ok()
}

/// A 401 says `WWW-Authenticate: Negotiate` (with the server's token when there is one), not `Bearer`.
pub(crate) fn challenge(mut response: Response, token: Option<String>) -> Response {
    if response.status() == StatusCode::UNAUTHORIZED {
        let value = match token {
            Some(t) => format!("Negotiate {t}"),
            None => "Negotiate".to_owned(),
        };
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
    }
    response
}
