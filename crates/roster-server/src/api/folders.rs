//! Archive folders.

use crate::auth::Authenticated;
use crate::error::{ApiResult, Input};
use crate::router::AppState;
use axum::Json;
use axum::extract::{Path, State};
use roster_core::user::Folder;
use serde::Deserialize;

/// Archive folders (a non-administrator sees the folders they have access to).
#[utoipa::path(get, tag = "folders", path = "/api/v1/folders", responses((status = 200, body = Vec<Folder>)))]
pub(crate) async fn list_folders(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Json<Vec<Folder>>> {
    Ok(Json(roster.list_folders(&caller).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MessageCountRequest {
    pub count: i64,
}

/// Set a folder's message count (there is no mail store yet; this makes the deletion rules testable).
#[utoipa::path(put, tag = "folders", path = "/api/v1/folders/{folder}/message-count", params(("folder" = String, Path, description = "The folder's name, or its id when several folders share the name")), request_body = MessageCountRequest, responses((status = 200, body = Folder)))]
pub(crate) async fn set_message_count(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    Input(Path(folder)): Input<Path<String>>,
    Input(Json(req)): Input<Json<MessageCountRequest>>,
) -> ApiResult<Json<Folder>> {
    Ok(Json(
        roster
            .set_message_count(&caller, &folder, req.count)
            .await?,
    ))
}
