//! Privileges: a user's, and the defaults given to users created by synchronization.

use crate::auth::Authenticated;
use crate::error::{ApiResult, Input};
use crate::router::AppState;
use axum::Json;
use axum::extract::{Path, State};
use roster_core::privileges::DefaultPrivileges;
use roster_core::user::User;

/// Set a user's global privileges and folder access.
#[utoipa::path(put, tag = "privileges", path = "/api/v1/users/{name}/privileges", params(("name" = String, Path, description = "The user's name (matched case-insensitively)")), request_body = roster_app::PrivilegesInput, responses((status = 200, body = User)))]
pub(crate) async fn set_privileges(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    Input(Path(name)): Input<Path<String>>,
    Input(Json(input)): Input<Json<roster_app::PrivilegesInput>>,
) -> ApiResult<Json<User>> {
    Ok(Json(roster.set_privileges(&caller, &name, input).await?))
}

/// The privileges given to users created by synchronization.
#[utoipa::path(get, tag = "privileges", path = "/api/v1/privileges/defaults", responses((status = 200, body = DefaultPrivileges)))]
pub(crate) async fn get_default_privileges(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Json<DefaultPrivileges>> {
    Ok(Json(roster.default_privileges(&caller).await?))
}

#[utoipa::path(put, tag = "privileges", path = "/api/v1/privileges/defaults", request_body = DefaultPrivileges, responses((status = 200, body = DefaultPrivileges)))]
pub(crate) async fn set_default_privileges(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    Input(Json(defaults)): Input<Json<DefaultPrivileges>>,
) -> ApiResult<Json<DefaultPrivileges>> {
    Ok(Json(
        roster.set_default_privileges(&caller, defaults).await?,
    ))
}
