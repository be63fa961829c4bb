//! The routes of the whole HTTP application.

use crate::api::{audit, directory, folders, negotiate, privileges, runs, sessions, users};
use crate::error::{ApiError, BODY_LIMIT_BYTES, HttpError};
use crate::limits::{self, LogonLimiter, LogonLimits};
use crate::metrics::{self, Metrics};
use crate::{health, openapi};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use roster_app::Roster;
use std::sync::Arc;

/// What every handler gets: the use cases.
pub(crate) type AppState = Arc<Roster>;

/// The whole HTTP application: a home page, and the API under `/api/v1`.
///
/// A request head over [`crate::HEAD_LIMIT_BYTES`] is answered 431 with the error body; one over 2 MiB
/// (the read buffer `roster_server::serve` gives hyper) never gets here: hyper answers it 431 itself,
/// with an empty body that no setting or hook changes.
pub fn router(roster: Arc<Roster>) -> Router {
    router_with(roster, LogonLimits::default())
}

/// [`router`] with these limits on logon attempts per client address. The limit needs the client's
/// address: serve with `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn router_with(roster: Arc<Roster>, logon_limits: LogonLimits) -> Router {
    build(roster, logon_limits, None)
}

/// [`router_with`], counting into `metrics` and serving them at `GET /metrics`: HTTP requests by route
/// and status, and the per-address logon limit's refusals. The app counts runs and logons into the same
/// `metrics` when it was given them as its observer (`Roster::with_observer`), as `roster serve` does.
pub fn router_with_metrics(
    roster: Arc<Roster>,
    logon_limits: LogonLimits,
    metrics: Arc<Metrics>,
) -> Router {
    build(roster, logon_limits, Some(metrics))
}

fn build(roster: Arc<Roster>, logon_limits: LogonLimits, metrics: Option<Arc<Metrics>>) -> Router {
    let mut logon = post(sessions::create_session);
    if let Some(limiter) = LogonLimiter::new(logon_limits, metrics.clone()) {
        logon = logon.route_layer(axum::middleware::from_fn_with_state(
            limiter,
            limits::limit_logons,
        ));
    }
    let api = Router::new()
        .route("/sessions", logon)
        .route("/sessions/current", delete(sessions::delete_session))
        .route(
            "/sessions/negotiate",
            get(negotiate::negotiate).post(negotiate::negotiate),
        )
        .route("/me", get(users::me))
        .route("/me/password", put(users::change_own_password))
        .route("/users", get(users::list_users).post(users::create_user))
        .route(
            "/users/{name}",
            get(users::get_user)
                .patch(users::update_user)
                .delete(users::delete_user),
        )
        .route("/users/{name}/privileges", put(privileges::set_privileges))
        .route("/users/{name}/auth", put(users::set_auth))
        .route(
            "/users/{name}/logon-throttle",
            get(users::logon_throttle).delete(users::clear_logon_throttle),
        )
        .route("/users/{name}/password", put(users::set_password))
        .route("/folders", get(folders::list_folders))
        .route(
            "/folders/{folder}/message-count",
            put(folders::set_message_count),
        )
        .route(
            "/privileges/defaults",
            get(privileges::get_default_privileges).put(privileges::set_default_privileges),
        )
        .route("/audit", get(audit::audit_log))
        .route(
            "/directory",
            get(directory::get_directory).put(directory::put_directory),
        )
        .route("/directory/domains", get(directory::get_domains))
        .route("/directory/groups", get(directory::get_groups))
        .route("/directory/preview", post(runs::preview))
        .route("/directory/sync", post(runs::sync))
        .route("/directory/sync-user", post(runs::sync_user))
        .route("/directory/runs", get(runs::list_runs))
        .route("/directory/runs/{id}", get(runs::get_run))
        .route("/directory/runs/{id}/cancel", post(runs::cancel_run))
        .route("/directory/runs/{id}/approve", post(runs::approve_run))
        .route("/openapi.json", get(openapi::document))
        .fallback(no_such_endpoint)
        .method_not_allowed_fallback(method_not_allowed);
    // Operations (issue 27): outside the API and the console, without a session.
    let mut ops = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz));
    if let Some(metrics) = &metrics {
        ops = ops.merge(
            Router::new()
                .route("/metrics", get(metrics::serve_metrics))
                .with_state(metrics.clone()),
        );
    }
    let mut app = Router::new()
        .merge(crate::console::routes())
        .merge(ops)
        .nest("/api/v1", api)
        .fallback(not_found)
        // Around every route, the fallbacks too; inside the metrics' layer, which counts its 431s.
        .layer(axum::middleware::from_fn(crate::listen::limit_head));
    if let Some(metrics) = metrics {
        // Last, so that it wraps every route and the fallbacks, and sees each request's matched route.
        app = app.layer(axum::middleware::from_fn_with_state(
            metrics,
            metrics::count_requests,
        ));
    }
    app.layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .with_state(roster)
}

/// Outside `/api/v1`: the error body anywhere under `/api` (`/api/v2/...` too), a plain 404 elsewhere.
async fn not_found(uri: Uri) -> Response {
    let path = uri.path();
    if path == "/api" || path.starts_with("/api/") {
        no_such_endpoint().await.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

async fn no_such_endpoint() -> ApiError {
    HttpError::NoSuchEndpoint.into()
}

async fn method_not_allowed() -> ApiError {
    HttpError::MethodNotAllowed.into()
}
