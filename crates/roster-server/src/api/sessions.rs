//! Logging on and off.

use crate::auth::Credentials;
use crate::error::{ApiError, ApiResult, ErrorBody, Input};
use crate::router::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use roster_app::AppError;
use serde::Deserialize;

/// No `Debug`: it holds a password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LogonRequest {
    pub name: String,
    pub password: String,
}

/// Log on with a user name and password (local or directory); returns a bearer token.
#[utoipa::path(post, tag = "sessions", path = "/api/v1/sessions", request_body = LogonRequest,
    responses((status = 201, body = roster_app::Session), (status = 401, body = ErrorBody), (status = 400, body = ErrorBody)))]
pub(crate) async fn create_session(
    State(roster): State<AppState>,
    Input(Json(req)): Input<Json<LogonRequest>>,
) -> ApiResult<(StatusCode, Json<roster_app::Session>)> {
    Ok((
        StatusCode::CREATED,
        Json(roster.logon(&req.name, &req.password).await?),
    ))
}

/// Log off: the token stops working. A token that is no live session answers 401.
#[utoipa::path(delete, tag = "sessions", path = "/api/v1/sessions/current", responses((status = 204)))]
pub(crate) async fn delete_session(
    State(roster): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    match Credentials::from_headers(&headers) {
        Some(Credentials::Bearer(token)) => roster.logout(token).await?,
        None => return Err(ApiError::App(AppError::Unauthenticated)),
    }
    Ok(StatusCode::NO_CONTENT)
}
