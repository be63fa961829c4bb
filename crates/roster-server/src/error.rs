//! The API's error answers: `{"error": {"code", "message", "field"}}` with a stable code, and the status
//! the failure's kind calls for.

use crate::auth;
use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use roster_app::{AppError, ErrorKind};
use serde::Serialize;

/// `{"error": {"code": "...", "message": "...", "field": "..."}}`
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct ErrorDetail {
    /// Stable and greppable, e.g. `AP001-logon-failed`.
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Every failure a handler answers with.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// A use case refused or failed; its kind gives the status.
    App(AppError),
    /// The request never reached a use case.
    Http(HttpError),
}

/// What the HTTP layer itself refuses, each with a stable `HT…` code.
#[derive(Debug)]
pub(crate) enum HttpError {
    /// The body is not JSON, or not the JSON this endpoint takes (axum's explanation).
    InvalidJson(String),
    NoSuchEndpoint,
    MethodNotAllowed,
    /// A path parameter doesn't parse (axum's explanation).
    InvalidPath(String),
    /// The query string doesn't parse (axum's explanation).
    InvalidQuery(String),
    /// The body is longer than [`BODY_LIMIT_BYTES`].
    BodyTooLarge,
    /// The request's head (the target and the headers) is longer than [`crate::listen::HEAD_LIMIT_BYTES`].
    HeadTooLarge,
    /// Too many logon attempts from this client address (`limits.rs`).
    TooManyLogons {
        retry_after_seconds: u64,
    },
    /// `/api/v1/sessions/negotiate` on a server started without `--keytab`.
    SingleSignOnDisabled,
    /// `/api/v1/sessions/negotiate` without (or with an unreadable) `Authorization: Negotiate` token.
    NegotiateRequired,
    /// The Kerberos ticket was not accepted; the short reason (clock skew, wrong key…), the details
    /// are in the server's log.
    TicketRejected(&'static str),
}

/// The largest request body read (axum's default, set explicitly so the error message can name it).
pub(crate) const BODY_LIMIT_BYTES: usize = 2 << 20;

impl HttpError {
    fn status(&self) -> StatusCode {
        match self {
            HttpError::InvalidJson(_) | HttpError::InvalidPath(_) | HttpError::InvalidQuery(_) => {
                StatusCode::BAD_REQUEST
            }
            HttpError::NoSuchEndpoint => StatusCode::NOT_FOUND,
            HttpError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            HttpError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            HttpError::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            HttpError::TooManyLogons { .. } => StatusCode::TOO_MANY_REQUESTS,
            HttpError::SingleSignOnDisabled => StatusCode::NOT_FOUND,
            HttpError::NegotiateRequired | HttpError::TicketRejected(_) => StatusCode::UNAUTHORIZED,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            HttpError::InvalidJson(_) => "HT001-invalid-json",
            HttpError::NoSuchEndpoint => "HT002-no-such-endpoint",
            HttpError::MethodNotAllowed => "HT003-method-not-allowed",
            HttpError::InvalidPath(_) => "HT004-invalid-path",
            HttpError::InvalidQuery(_) => "HT005-invalid-query",
            HttpError::BodyTooLarge => "HT006-body-too-large",
            HttpError::TooManyLogons { .. } => "HT007-too-many-logons",
            HttpError::SingleSignOnDisabled => "HT008-single-sign-on-disabled",
            HttpError::NegotiateRequired => "HT009-negotiate-required",
            HttpError::TicketRejected(_) => "HT010-ticket-rejected",
            HttpError::HeadTooLarge => "HT011-head-too-large",
        }
    }

    fn message(self) -> String {
        match self {
            HttpError::InvalidJson(m) | HttpError::InvalidPath(m) | HttpError::InvalidQuery(m) => m,
            HttpError::NoSuchEndpoint => "no such API endpoint; see /api/v1/openapi.json".into(),
            HttpError::MethodNotAllowed => {
                "this endpoint does not take that HTTP method; see /api/v1/openapi.json".into()
            }
            HttpError::BodyTooLarge => format!(
                "the request body is larger than {} MiB, the most the server reads",
                BODY_LIMIT_BYTES >> 20
            ),
            HttpError::HeadTooLarge => format!(
                "the request's target and headers are longer than {} KiB, the most the server reads; send a shorter URL and fewer or shorter headers (a browser: clear this site's cookies)",
                crate::listen::HEAD_LIMIT_BYTES >> 10
            ),
            HttpError::TooManyLogons {
                retry_after_seconds,
            } => format!(
                "too many logon attempts from your address; try again in {retry_after_seconds} seconds"
            ),
            HttpError::SingleSignOnDisabled => "single sign-on is not enabled on this server: start it with `roster serve --keytab FILE` (a keytab holding the key of HTTP/<this host's name>)".into(),
            HttpError::NegotiateRequired => "log on with Kerberos: send `Authorization: Negotiate <token>` (browsers do for sites they are told to trust for it; curl: --negotiate -u :)".into(),
            HttpError::TicketRejected(why) => format!(
                "the Kerberos ticket was not accepted ({why}); the server's log says more, and `roster sso check` checks the keytab"
            ),
        }
    }
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError::App(e)
    }
}

impl From<HttpError> for ApiError {
    fn from(e: HttpError) -> Self {
        ApiError::Http(e)
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        // axum gives 413 for a body over the limit (and 415/422 for other failures, which we have always
        // answered 400 with this code).
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            HttpError::BodyTooLarge.into()
        } else {
            HttpError::InvalidJson(rejection.body_text()).into()
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        HttpError::InvalidPath(rejection.body_text()).into()
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        HttpError::InvalidQuery(rejection.body_text()).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // A refusal for load says when to come back (RFC 9110 `Retry-After`).
        let retry_after = match &self {
            ApiError::App(e) => e.retry_after_seconds(),
            ApiError::Http(HttpError::TooManyLogons {
                retry_after_seconds,
            }) => Some(*retry_after_seconds),
            ApiError::Http(_) => None,
        };
        let (status, detail) = match self {
            ApiError::App(e) => {
                let status = match e.kind() {
                    ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
                    ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
                    ErrorKind::Forbidden => StatusCode::FORBIDDEN,
                    ErrorKind::NotFound => StatusCode::NOT_FOUND,
                    ErrorKind::Conflict | ErrorKind::Cancelled | ErrorKind::Guarded => {
                        StatusCode::CONFLICT
                    }
                    ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
                    ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                };
                if status == StatusCode::INTERNAL_SERVER_ERROR {
                    tracing::error!(code = e.code(), error = %e, "request failed");
                }
                let detail = ErrorDetail {
                    code: e.code().to_owned(),
                    message: e.to_string(),
                    field: e.field().map(str::to_owned),
                };
                (status, detail)
            }
            ApiError::Http(e) => {
                let status = e.status();
                let detail = ErrorDetail {
                    code: e.code().to_owned(),
                    message: e.message(),
                    field: None,
                };
                (status, detail)
            }
        };
        let mut response = (status, Json(ErrorBody { error: detail })).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(auth::CHALLENGE),
            );
        }
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// Any axum extractor, its rejection answered in the API's error format rather than axum's plain text:
/// `Input(Json(body))`, `Input(Path(name))`, `Input(Query(page))`. The `From` impls above give each
/// rejection its code.
pub(crate) struct Input<E>(pub E);

impl<S, E> FromRequestParts<S> for Input<E>
where
    E: FromRequestParts<S>,
    ApiError: From<E::Rejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Input(E::from_request_parts(parts, state).await?))
    }
}

impl<S, E> FromRequest<S> for Input<E>
where
    E: FromRequest<S>,
    ApiError: From<E::Rejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        Ok(Input(E::from_request(req, state).await?))
    }
}
