//! The REST API under `/api/v1` (JSON), with its OpenAPI document at `/api/v1/openapi.json`.
//!
//! Handlers only translate HTTP to [`roster_app::Roster`] calls and back: authorization, validation and
//! auditing live in the app, so the CLI gets exactly the same behaviour.

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use roster_app::{AppError, Caller, ErrorKind, Roster};
use roster_core::directory::DirectorySettings;
use roster_core::plan::ReportLine;
use roster_core::privileges::DefaultPrivileges;
use roster_core::user::{AuditEntry, AuthMethod, Folder, User};
use roster_store::{RunKind, RunSummary};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::OpenApi;

pub type AppState = Arc<Roster>;

/// The whole HTTP application.
pub fn router(roster: AppState) -> Router {
    let api = Router::new()
        .route("/sessions", post(create_session))
        .route("/sessions/current", axum::routing::delete(delete_session))
        .route("/me", get(me))
        .route("/me/password", put(change_own_password))
        .route("/users", get(list_users).post(create_user))
        .route(
            "/users/{name}",
            get(get_user).patch(update_user).delete(delete_user),
        )
        .route("/users/{name}/privileges", put(set_privileges))
        .route("/users/{name}/auth", put(set_auth))
        .route("/users/{name}/password", put(set_password))
        .route("/folders", get(list_folders))
        .route("/folders/{folder}/message-count", put(set_message_count))
        .route(
            "/privileges/defaults",
            get(get_default_privileges).put(set_default_privileges),
        )
        .route("/audit", get(audit_log))
        .route("/directory", get(get_directory).put(put_directory))
        .route("/directory/preview", post(preview))
        .route("/directory/sync", post(sync))
        .route("/directory/runs", get(list_runs))
        .route("/directory/runs/{id}", get(get_run))
        .route("/openapi.json", get(openapi))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed);
    Router::new()
        .route("/", get(home))
        .nest("/api/v1", api)
        .with_state(roster)
}

// ---- errors ---------------------------------------------------------------------------------------

/// `{"error": {"code": "...", "message": "...", "field": "..."}}`
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable and greppable, e.g. `AP001-logon-failed`.
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

pub struct ApiError(AppError);

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.0.kind() {
            ErrorKind::BadRequest => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(code = self.0.code(), error = %self.0, "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.0.code().to_owned(),
                message: self.0.to_string(),
                field: self.0.field().map(str::to_owned),
            },
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        if let Some(seconds) = self.0.retry_after_seconds() {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

fn bad_request(code: &str, message: String) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message,
                field: None,
            },
        }),
    )
        .into_response()
}

/// JSON bodies whose rejection is answered in our error format, not axum's plain text.
pub struct JsonBody<T>(pub T);

impl<S, T> axum::extract::FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(JsonBody(v)),
            Err(rejection) => Err(bad_request("HT001-invalid-json", rejection.body_text())),
        }
    }
}

async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        Json(ErrorBody {
            error: ErrorDetail {
                code: "HT003-method-not-allowed".into(),
                message: "this endpoint does not take that HTTP method; see /api/v1/openapi.json"
                    .into(),
                field: None,
            },
        }),
    )
        .into_response()
}

/// Path parameters whose rejection is answered in our error format.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(rejection) => Err(bad_request("HT004-invalid-path", rejection.body_text())),
        }
    }
}

/// Query strings whose rejection is answered in our error format.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(ApiQuery(v)),
            Err(rejection) => Err(bad_request("HT005-invalid-query", rejection.body_text())),
        }
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(ErrorBody {
            error: ErrorDetail {
                code: "HT002-no-such-endpoint".into(),
                message: "no such API endpoint; see /api/v1/openapi.json".into(),
                field: None,
            },
        }),
    )
        .into_response()
}

// ---- authentication -------------------------------------------------------------------------------

/// The caller, from `Authorization: Bearer <token>`.
pub struct Authenticated(pub Caller);

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers).ok_or(ApiError(AppError::Unauthenticated))?;
        Ok(Authenticated(state.authenticate_token(token).await?))
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

type ApiResult<T> = Result<T, ApiError>;

// ---- handlers -------------------------------------------------------------------------------------

async fn home() -> Html<&'static str> {
    Html(include_str!("home.html"))
}

/// No `Debug`: it holds a password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogonRequest {
    pub name: String,
    pub password: String,
}

/// Log on with a user name and password (local or directory); returns a bearer token.
#[utoipa::path(post, path = "/api/v1/sessions", request_body = LogonRequest,
    responses((status = 201, body = roster_app::Session), (status = 401, body = ErrorBody), (status = 400, body = ErrorBody)))]
async fn create_session(
    State(roster): State<AppState>,
    JsonBody(req): JsonBody<LogonRequest>,
) -> ApiResult<(StatusCode, Json<roster_app::Session>)> {
    Ok((
        StatusCode::CREATED,
        Json(roster.logon(&req.name, &req.password).await?),
    ))
}

/// Log off: the token stops working.
#[utoipa::path(delete, path = "/api/v1/sessions/current", responses((status = 204)))]
async fn delete_session(
    State(roster): State<AppState>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let token = bearer(&headers).ok_or(ApiError(AppError::Unauthenticated))?;
    roster.logout(token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's own details.
#[utoipa::path(get, path = "/api/v1/me", responses((status = 200, body = User), (status = 401, body = ErrorBody)))]
async fn me(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Json<User>> {
    match &caller {
        Caller::User(u) => Ok(Json(roster.get_user(&caller, u.name.as_str()).await?)),
        Caller::Local(_) => Err(ApiError(AppError::Unauthenticated)),
    }
}

/// No `Debug`: it holds a password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
}

/// Change one's own local password (needs `change_password`).
#[utoipa::path(put, path = "/api/v1/me/password", request_body = ChangePasswordRequest, responses((status = 204), (status = 403, body = ErrorBody)))]
async fn change_own_password(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(req): JsonBody<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    roster
        .change_own_password(&caller, &req.current_password, &req.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// How many items to skip (0 or more; default 0).
    #[serde(default)]
    pub offset: i64,
    /// How many items at most: 1 to 1,000 for lists (default 100), 1 to 100,000 for a run's report
    /// lines (default 10,000). The response gives the offset and limit that were applied.
    pub limit: Option<i64>,
}

impl PageQuery {
    /// The window that is applied, which the response echoes: a client that pages by `offset += limit`
    /// must not skip what a clamped limit left out.
    fn window(&self, default: i64, max: i64) -> (i64, i64) {
        (
            self.offset.max(0),
            self.limit.unwrap_or(default).clamp(1, max),
        )
    }
}

/// Lists: users, runs, the audit log (at most `roster_app::PAGE_MAX`).
const LIST_DEFAULT: i64 = 100;
/// A run's report lines: one page is usually the whole report (at most `roster_app::RUN_LINES_MAX`).
const LINES_DEFAULT: i64 = 10_000;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PageOf<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub offset: i64,
    pub limit: i64,
}

/// List users, ordered by name (administrators only).
#[utoipa::path(get, path = "/api/v1/users", params(PageQuery), responses((status = 200, body = PageOf<User>), (status = 403, body = ErrorBody)))]
async fn list_users(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<PageOf<User>>> {
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
#[utoipa::path(post, path = "/api/v1/users", request_body = roster_app::NewUserInput, responses((status = 201, body = User), (status = 409, body = ErrorBody)))]
async fn create_user(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(input): JsonBody<roster_app::NewUserInput>,
) -> ApiResult<(StatusCode, Json<User>)> {
    Ok((
        StatusCode::CREATED,
        Json(roster.create_user(&caller, input).await?),
    ))
}

/// One user (administrators, or the user themselves).
#[utoipa::path(get, path = "/api/v1/users/{name}", params(("name" = String, Path, description = "The user's name (matched case-insensitively)")), responses((status = 200, body = User), (status = 404, body = ErrorBody)))]
async fn get_user(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<User>> {
    Ok(Json(roster.get_user(&caller, &name).await?))
}

/// Change a user's full name or addresses.
#[utoipa::path(patch, path = "/api/v1/users/{name}", params(("name" = String, Path, description = "The user's name (matched case-insensitively)")), request_body = roster_app::UserUpdateInput, responses((status = 200, body = User)))]
async fn update_user(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(name): ApiPath<String>,
    JsonBody(input): JsonBody<roster_app::UserUpdateInput>,
) -> ApiResult<Json<User>> {
    Ok(Json(roster.update_user(&caller, &name, input).await?))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeletedUserBody {
    pub name: String,
    /// The archive folder held messages and was kept.
    pub folder_kept: bool,
}

/// Delete a user; a folder that holds messages is kept.
#[utoipa::path(delete, path = "/api/v1/users/{name}", params(("name" = String, Path, description = "The user's name (matched case-insensitively)")), responses((status = 200, body = DeletedUserBody), (status = 403, body = ErrorBody)))]
async fn delete_user(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<DeletedUserBody>> {
    let d = roster.delete_user(&caller, &name).await?;
    Ok(Json(DeletedUserBody {
        name: d.name.to_string(),
        folder_kept: d.folder_kept,
    }))
}

/// Set a user's global privileges and folder access.
#[utoipa::path(put, path = "/api/v1/users/{name}/privileges", params(("name" = String, Path, description = "The user's name (matched case-insensitively)")), request_body = roster_app::PrivilegesInput, responses((status = 200, body = User)))]
async fn set_privileges(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(name): ApiPath<String>,
    JsonBody(input): JsonBody<roster_app::PrivilegesInput>,
) -> ApiResult<Json<User>> {
    Ok(Json(roster.set_privileges(&caller, &name, input).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthRequest {
    pub auth: AuthMethod,
}

/// Switch a user between a local password and the directory password.
#[utoipa::path(put, path = "/api/v1/users/{name}/auth", params(("name" = String, Path, description = "The user's name (matched case-insensitively)")), request_body = AuthRequest, responses((status = 200, body = User)))]
async fn set_auth(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(name): ApiPath<String>,
    JsonBody(req): JsonBody<AuthRequest>,
) -> ApiResult<Json<User>> {
    Ok(Json(roster.set_auth(&caller, &name, req.auth).await?))
}

/// No `Debug`: it holds a password.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    pub password: String,
}

/// Set a user's local password (administrators).
#[utoipa::path(put, path = "/api/v1/users/{name}/password", params(("name" = String, Path, description = "The user's name (matched case-insensitively)")), request_body = PasswordRequest, responses((status = 204)))]
async fn set_password(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(name): ApiPath<String>,
    JsonBody(req): JsonBody<PasswordRequest>,
) -> ApiResult<StatusCode> {
    roster.set_password(&caller, &name, &req.password).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Archive folders (a non-administrator sees the folders they have access to).
#[utoipa::path(get, path = "/api/v1/folders", responses((status = 200, body = Vec<Folder>)))]
async fn list_folders(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Json<Vec<Folder>>> {
    Ok(Json(roster.list_folders(&caller).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageCountRequest {
    pub count: i64,
}

/// Set a folder's message count (there is no mail store yet; this makes the deletion rules testable).
#[utoipa::path(put, path = "/api/v1/folders/{folder}/message-count", params(("folder" = String, Path, description = "The folder's name, or its id when several folders share the name")), request_body = MessageCountRequest, responses((status = 200, body = Folder)))]
async fn set_message_count(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(folder): ApiPath<String>,
    JsonBody(req): JsonBody<MessageCountRequest>,
) -> ApiResult<Json<Folder>> {
    Ok(Json(
        roster
            .set_message_count(&caller, &folder, req.count)
            .await?,
    ))
}

/// The privileges given to users created by synchronization.
#[utoipa::path(get, path = "/api/v1/privileges/defaults", responses((status = 200, body = DefaultPrivileges)))]
async fn get_default_privileges(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Json<DefaultPrivileges>> {
    Ok(Json(roster.default_privileges(&caller).await?))
}

#[utoipa::path(put, path = "/api/v1/privileges/defaults", request_body = DefaultPrivileges, responses((status = 200, body = DefaultPrivileges)))]
async fn set_default_privileges(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(defaults): JsonBody<DefaultPrivileges>,
) -> ApiResult<Json<DefaultPrivileges>> {
    Ok(Json(
        roster.set_default_privileges(&caller, defaults).await?,
    ))
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/v1/audit", params(PageQuery), responses((status = 200, body = PageOf<AuditEntry>)))]
async fn audit_log(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<PageOf<AuditEntry>>> {
    let (offset, limit) = q.window(LIST_DEFAULT, roster_app::PAGE_MAX);
    let page = roster.audit_log(&caller, offset, limit).await?;
    Ok(Json(PageOf {
        items: page.items,
        total: page.total,
        offset,
        limit,
    }))
}

/// The directory settings (the password is never shown; `password_set` says whether one is stored).
#[utoipa::path(get, path = "/api/v1/directory", responses((status = 200, body = serde_json::Value)))]
async fn get_directory(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(roster.directory_settings(&caller).await?))
}

/// Replace the directory settings; leave out `password` to keep the stored one.
#[utoipa::path(put, path = "/api/v1/directory", request_body = DirectorySettings, responses((status = 200, body = serde_json::Value), (status = 400, body = ErrorBody)))]
async fn put_directory(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    JsonBody(settings): JsonBody<DirectorySettings>,
) -> ApiResult<Json<serde_json::Value>> {
    Ok(Json(
        roster.set_directory_settings(&caller, settings).await?,
    ))
}

/// Test Settings: what Synchronize now would do. Commits nothing.
#[utoipa::path(post, path = "/api/v1/directory/preview", responses((status = 200, body = roster_app::RunReport), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn preview(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Json<roster_app::RunReport>> {
    Ok(Json(run_detached(roster, caller, RunKind::Preview).await?))
}

/// Synchronize now: applies the plan in one transaction.
#[utoipa::path(post, path = "/api/v1/directory/sync", responses((status = 200, body = roster_app::RunReport), (status = 409, body = ErrorBody), (status = 503, body = ErrorBody)))]
async fn sync(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
) -> ApiResult<Json<roster_app::RunReport>> {
    Ok(Json(run_detached(roster, caller, RunKind::Sync).await?))
}

/// Runs in its own task: a client that disconnects mid-run doesn't cut the run off half-recorded.
async fn run_detached(
    roster: AppState,
    caller: Caller,
    kind: RunKind,
) -> Result<roster_app::RunReport, ApiError> {
    tokio::spawn(async move { roster.run_directory(&caller, kind, "api", &()).await })
        .await
        .map_err(|e| ApiError(AppError::Internal(format!("the run's task failed: {e}"))))?
        .map_err(ApiError)
}

/// Every preview and sync, newest first.
#[utoipa::path(get, path = "/api/v1/directory/runs", params(PageQuery), responses((status = 200, body = PageOf<RunSummary>)))]
async fn list_runs(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<PageOf<RunSummary>>> {
    let (offset, limit) = q.window(LIST_DEFAULT, roster_app::PAGE_MAX);
    let page = roster.list_runs(&caller, offset, limit).await?;
    Ok(Json(PageOf {
        items: page.items,
        total: page.total,
        offset,
        limit,
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunDetail {
    pub run: RunSummary,
    pub lines: PageOf<ReportLine>,
}

/// One run with its report lines (paged: `offset`, `limit`).
#[utoipa::path(get, path = "/api/v1/directory/runs/{id}", params(("id" = i64, Path, description = "The run's id"), PageQuery), responses((status = 200, body = RunDetail)))]
async fn get_run(
    State(roster): State<AppState>,
    Authenticated(caller): Authenticated,
    ApiPath(id): ApiPath<i64>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<RunDetail>> {
    let (offset, limit) = q.window(LINES_DEFAULT, roster_app::RUN_LINES_MAX);
    let (run, lines) = roster.get_run(&caller, id, offset, limit).await?;
    Ok(Json(RunDetail {
        run,
        lines: PageOf {
            items: lines.items,
            total: lines.total,
            offset,
            limit,
        },
    }))
}

#[derive(OpenApi)]
#[openapi(
    modifiers(&ApiConventions),
    info(
        title = "Roster API",
        description = "Users, privileges and directory synchronization of the email archive."
    ),
    paths(
        create_session,
        delete_session,
        me,
        change_own_password,
        list_users,
        create_user,
        get_user,
        update_user,
        delete_user,
        set_privileges,
        set_auth,
        set_password,
        list_folders,
        set_message_count,
        get_default_privileges,
        set_default_privileges,
        audit_log,
        get_directory,
        put_directory,
        preview,
        sync,
        list_runs,
        get_run
    ),
    components(schemas(
        ErrorBody,
        ErrorDetail,
        LogonRequest,
        User,
        Folder,
        AuditEntry,
        DefaultPrivileges,
        roster_app::Session,
        roster_app::NewUserInput,
        roster_app::UserUpdateInput,
        roster_app::PrivilegesInput,
        roster_app::RunReport,
        RunSummary,
        ReportLine,
        DirectorySettings
    ))
)]
pub struct ApiDoc;

/// What every operation shares, added to the document in one place rather than on each handler: the bearer
/// token (all but logging on and the document itself need one), and the error body that any failure
/// answers with (401 without a valid token, 400 for invalid input, 403, 404, 409, 503 and 500 by the
/// failure's kind; the codes are in the body).
struct ApiConventions;

impl utoipa::Modify for ApiConventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder, Schema};
        const SCHEME: &str = "bearer";
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token from POST /api/v1/sessions"))
                    .build(),
            ),
        );
        openapi.security = Some(vec![SecurityRequirement::new(SCHEME, Vec::<String>::new())]);
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        // `Unsupported` only catches the planned types so that they get a clear refusal; it is not a type a
        // client can choose.
        if let Some(RefOr::T(Schema::OneOf(settings))) =
            components.schemas.get_mut("DirectorySettings")
        {
            settings.items.retain(|variant| {
                let RefOr::T(Schema::Object(object)) = variant else {
                    return true;
                };
                !matches!(
                    object.properties.get("type"),
                    Some(RefOr::T(Schema::Object(tag)))
                        if tag.enum_values.as_ref().is_some_and(|v| v.iter().any(|v| v == "unsupported"))
                )
            });
        }
        // The settings' `type` tag sits beside their fields (`allOf`), so the `additionalProperties: false`
        // that `deny_unknown_fields` puts on each would make every valid body fail a schema validator.
        // The server refuses unknown keys itself, with the key's name.
        for name in ["LdapSettings", "LdifSettings"] {
            if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(name) {
                object.additional_properties = None;
            }
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            let public = path == "/api/v1/sessions";
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                let responses = &mut operation.responses.responses;
                if public {
                    // Logging on needs no token.
                    operation.security = Some(vec![SecurityRequirement::default()]);
                } else {
                    responses
                        .entry("401".to_owned())
                        .or_insert_with(|| error("no valid bearer token").into());
                }
                responses.entry("default".to_owned()).or_insert_with(|| {
                    error("any other failure, with a stable code in the body").into()
                });
            }
        }
    }
}

async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
