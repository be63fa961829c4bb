//! `GET /healthz` and `GET /readyz` (issue 27), for load balancers, orchestrators and monitoring. Neither
//! needs a session; neither says anything that does (see `roster_app::Readiness`).

use crate::router::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// The process is up and serving HTTP: `200 ok`. It asks nothing else, so that a slow database doesn't
/// get a healthy process restarted.
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// The database answers (one cheap query, within `roster_app::READY_TIMEOUT`): `200` with the last
/// directory run's state and age; otherwise `503` saying so.
pub(crate) async fn readyz(State(roster): State<AppState>) -> Response {
    match roster.readiness().await {
        Ok(ready) => (
            StatusCode::OK,
            Json(json!({
                "status": "ready",
                "database": "ok",
                "last_run": ready.last_run,
            })),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(code = e.code(), error = %e, "not ready: the database can't be reached");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "not_ready",
                    "database": "unreachable",
                    "error": {
                        "code": e.code(),
                        "message": format!("the database can't be reached: {e}"),
                    },
                })),
            )
                .into_response()
        }
    }
}
