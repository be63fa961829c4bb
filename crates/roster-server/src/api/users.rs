//! Users: the caller's own account, and managing everyone's.

use crate::api::{LIST_DEFAULT, PageOf, PageQuery, UserPage};
use crate::auth::Authenticated;
use crate::error::{ApiError, ApiResult, ErrorBody, Input};
use crate::router::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use roster_app::{AppError, Caller};
use roster_core::user::{AuthMethod, User};
use serde::{Deserialize, Serialize};

/// The caller's own details.
#[utoipa::path(get, tag = "users", path = "/api/v1/me", responses((status = 200, body = User), (status = 401, body = ErrorBody)))]
pub(crate) async fn me(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Json<User>> {
    match &caller {
        Caller::User(u) => Ok(Json(roster.get_user(&caller, u.name.as_str()).await?)),
        Caller::Local(_) | Caller::Schedule => Err(ApiError::App(AppError::Unauthenticated)),
    }
}

/// No `Debug`: it holds a password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// Change one's own local password (needs `change_password`).
#[utoipa::path(put, tag = "users", path = "/api/v1/me/password", request_body = ChangePasswordRequest, responses((status = 204), (status = 403, body = ErrorBody)))]
pub(crate) async fn change_own_password(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    Input(Json(req)): Input<Json<ChangePasswordRequest>>,
) -> ApiResult<StatusCode> {
    roster
        .change_own_password(&caller, &req.current_password, &req.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// List users, ordered by name (administrators only).
#[utoipa::path(get, tag = "users", path = "/api/v1/users", params(PageQuery), responses((status = 200, body = UserPage), (status = 403, body = ErrorBody)))]
pub(crate) async fn list_users(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    Input(Query(q)): Input<Query<PageQuery>>,
) -> ApiResult<Json<UserPage>> {
    let (offset, limit) = q.window(LIST_DEFAULT, roster_app::PAGE_MAX);
    let page = roster.list_users(&caller, offset, limit).await?;
    Ok(Json(PageOf {
        items: page.items,
        total: page.total,
        offset,
        limit,
    }))
}

/// Create a user by hand.
#[utoipa::path(post, tag = "users", path = "/api/v1/users", request_body = roster_app::NewUserInput, responses((status = 201, body = User), (status = 409, body = ErrorBody)))]
pub(crate) async fn create_user(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    Input(Json(input)): Input<Json<roster_app::NewUserInput>>,
) -> ApiResult<(StatusCode, Json<User>)> {
    Ok((
        StatusCode::CREATED,
        Json(roster.create_user(&caller, input).await?),
    ))
}

/// One user (administrators, or the user themselves).
#[utoipa::path(get, tag = "users", path = "/api/v1/users/{name}", params(("name" = String, Path, description = "The user's name (matched case-insensitively)")), responses((status = 200, body = User), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_user(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    Input(Path(name)): Input<Path<String>>,
) -> ApiResult<Json<User>> {
    Ok(Json(roster.get_user(&caller, &name).await?))
}

/// Change a user's full name or addresses.
#[utoipa::path(patch, tag = "users", path = "/api/v1/users/{name}", params(("name" = String, Path, description = "The user's name (matched case-insensitively)")), request_body = roster_app::UserUpdateInput, responses((status = 200, body = User)))]
pub(crate) async fn update_user(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    Input(Path(name)): Input<Path<String>>,
    Input(Json(input)): Input<Json<roster_app::UserUpdateInput>>,
) -> ApiResult<Json<User>> {
    Ok(Json(roster.update_user(&caller, &name, input).await?))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct DeletedUserBody {
    pub name: String,
    /// The archive folder held messages and was kept.
    pub folder_kept: bool,
}

/// Delete a user; a folder that holds messages is kept.
#[utoipa::path(delete, tag = "users", path = "/api/v1/users/{name}", params(("name" = String, Path, description = "The user's name (matched case-insensitively)")), responses((status = 200, body = DeletedUserBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn delete_user(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    Input(Path(name)): Input<Path<String>>,
) -> ApiResult<Json<DeletedUserBody>> {
    let d = roster.delete_user(&caller, &name).await?;
    Ok(Json(DeletedUserBody {
        name: d.name.to_string(),
        folder_kept: d.folder_kept,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthRequest {
    pub auth: AuthMethod,
}

/// An account's failed logons in a row (issue 20), for any name, known or not.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct LogonThrottleView {
    /// Failed logons in a row since the last success (0: none).
    pub failures: u32,
    pub last_failure_at: Option<roster_core::Timestamp>,
    /// Locked until then (a right password is refused too).
    pub locked_until: Option<roster_core::Timestamp>,
}

/// Failed logons in a row for this name, and a lock if there is one.
#[utoipa::path(get, tag = "users", path = "/api/v1/users/{name}/logon-throttle", params(("name" = String, Path, description = "The name as typed at logon (case-insensitive; need not be a user)")), responses((status = 200, body = LogonThrottleView), (status = 403, body = ErrorBody)))]
pub(crate) async fn logon_throttle(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    Input(Path(name)): Input<Path<String>>,
) -> ApiResult<Json<LogonThrottleView>> {
    let state = roster.logon_throttle(&caller, &name).await?;
    Ok(Json(LogonThrottleView {
        failures: state.map_or(0, |s| s.failures),
        last_failure_at: state.map(|s| s.last_failure_at),
        locked_until: state.and_then(|s| s.locked_until),
    }))
}

/// Clear this name's failed logons and lock (audited): the user can log on at once.
#[utoipa::path(delete, tag = "users", path = "/api/v1/users/{name}/logon-throttle", params(("name" = String, Path, description = "The name as typed at logon")), responses((status = 204), (status = 403, body = ErrorBody)))]
pub(crate) async fn clear_logon_throttle(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    Input(Path(name)): Input<Path<String>>,
) -> ApiResult<StatusCode> {
    roster.clear_logon_throttle(&caller, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Switch a user between a local password and the directory password.
#[utoipa::path(put, tag = "users", path = "/api/v1/users/{name}/auth", params(("name" = String, Path, description = "The user's name (matched case-insensitively)")), request_body = AuthRequest, responses((status = 200, body = User)))]
pub(crate) async fn set_auth(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    Input(Path(name)): Input<Path<String>>,
    Input(Json(req)): Input<Json<AuthRequest>>,
) -> ApiResult<Json<User>> {
    Ok(Json(roster.set_auth(&caller, &name, req.auth).await?))
}

/// No `Debug`: it holds a password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordRequest {
    pub password: String,
}

/// Set a user's local password (administrators).
#[utoipa::path(put, tag = "users", path = "/api/v1/users/{name}/password", params(("name" = String, Path, description = "The user's name (matched case-insensitively)")), request_body = PasswordRequest, responses((status = 204)))]
pub(crate) async fn set_password(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    Input(Path(name)): Input<Path<String>>,
    Input(Json(req)): Input<Json<PasswordRequest>>,
) -> ApiResult<StatusCode> {
    roster.set_password(&caller, &name, &req.password).await?;
    Ok(StatusCode::NO_CONTENT)
}
