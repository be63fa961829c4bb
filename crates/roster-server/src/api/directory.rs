//! The directory settings.

use crate::auth::Authenticated;
use crate::error::{ApiResult, ErrorBody, Input};
use crate::router::AppState;
use axum::Json;
use axum::extract::{Query, State};
use roster_core::directory::DirectorySettings;

/// The directory settings (the password is never shown; `password_set` says whether one is stored).
#[utoipa::path(get, tag = "directory", path = "/api/v1/directory", responses((status = 200, body = roster_app::DirectorySettingsView)))]
pub(crate) async fn get_directory(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Json<roster_app::DirectorySettingsView>> {
    Ok(Json(roster.directory_settings(&caller).await?))
}

/// Replace the directory settings; leave out `password` to keep the stored one.
#[utoipa::path(put, tag = "directory", path = "/api/v1/directory", request_body = DirectorySettings, responses((status = 200, body = roster_app::DirectorySettingsView), (status = 400, body = ErrorBody)))]
pub(crate) async fn put_directory(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    Input(Json(settings)): Input<Json<DirectorySettings>>,
) -> ApiResult<Json<roster_app::DirectorySettingsView>> {
    Ok(Json(
        roster.set_directory_settings(&caller, settings).await?,
    ))
}

/// The domains on the directory's server, for choosing `domains` (IceWarp; other types answer
/// `DI023-listing-unsupported`).
#[utoipa::path(get, tag = "directory", path = "/api/v1/directory/domains", responses((status = 200, body = Vec<roster_app::DirectoryDomain>), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn get_domains(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Json<Vec<roster_app::DirectoryDomain>>> {
    Ok(Json(roster.directory_domains(&caller).await?))
}

/// What `GET /api/v1/directory/groups` may be asked.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct GroupsQuery {
    /// Only groups whose name or address (DN for Active Directory) contains this, ignoring case.
    search: Option<String>,
}

/// The groups on the directory's server, for choosing `groups` (IceWarp, Kerio Connect, Active
/// Directory; other types answer `DI023-listing-unsupported`).
#[utoipa::path(get, tag = "directory", path = "/api/v1/directory/groups", params(GroupsQuery), responses((status = 200, body = Vec<roster_app::DirectoryGroup>), (status = 400, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub(crate) async fn get_groups(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    Input(Query(q)): Input<Query<GroupsQuery>>,
) -> ApiResult<Json<Vec<roster_app::DirectoryGroup>>> {
    Ok(Json(
        roster
            .directory_groups(&caller, q.search.as_deref())
            .await?,
    ))
}
