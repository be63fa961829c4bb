//! Who is calling. A request offers [`Credentials`]; the app turns them into a [`Caller`].
//!
//! Today the only credential is a bearer token from `POST /api/v1/sessions`. A web console's session cookie
//! and Kerberos `Negotiate` would be further [`Credentials`] variants (read in [`Credentials::from_headers`],
//! checked by a `Roster` call in [`Credentials::caller`], and a challenge in [`CHALLENGE`]); every handler
//! keeps taking an [`Authenticated`] caller and doesn't change.

use crate::error::ApiError;
use crate::router::AppState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use roster_app::{AppError, Caller, Roster};

/// The `WWW-Authenticate` challenge sent with every 401.
pub(crate) const CHALLENGE: &str = "Bearer";

/// What a request offers to prove who sends it.
pub(crate) enum Credentials<'a> {
    /// `Authorization: Bearer <token>`: a session's token.
    Bearer(&'a str),
}

impl<'a> Credentials<'a> {
    /// The credentials a request carries, if any.
    pub(crate) fn from_headers(headers: &'a HeaderMap) -> Option<Credentials<'a>> {
        bearer(headers).map(Credentials::Bearer)
    }

    /// The caller these credentials prove; `AP004-unauthenticated` if they prove nobody.
    pub(crate) async fn caller(self, roster: &Roster) -> Result<Caller, ApiError> {
        match self {
            Credentials::Bearer(token) => Ok(roster.authenticate_token(token).await?),
        }
    }
}

/// The caller, from the request's credentials; a request without any is answered 401.
pub(crate) struct Authenticated(pub Caller);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let credentials = Credentials::from_headers(&parts.headers)
            .ok_or(ApiError::App(AppError::Unauthenticated))?;
        Ok(Authenticated(credentials.caller(state).await?))
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .split_once(' ')
        // RFC 7235: the scheme name is case-insensitive ("bearer" and "BEARER" too).
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("Bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty())
}
