//! The OpenAPI document at `/api/v1/openapi.json`, generated from the handlers, and the patch-up that adds
//! what every operation shares.

// The handlers are named without their module in `paths(...)`: utoipa would tag each operation with the
// Rust module path it was named by (`crate::api::users`), which is no name for a client to see.
use crate::api::{
    audit::*, directory::*, folders::*, negotiate::*, privileges::*, runs::*, sessions::*, users::*,
};
use crate::error::{ErrorBody, ErrorDetail};
use axum::Json;
use roster_app::RunSummary;
use roster_core::directory::DirectorySettings;
use roster_core::plan::ReportLine;
use roster_core::privileges::DefaultPrivileges;
use roster_core::user::{AuditEntry, Folder, User};
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder, Schema};

#[derive(OpenApi)]
#[openapi(
    modifiers(&ApiConventions),
    info(
        title = "Roster API",
        description = "Users, privileges and directory synchronization of the email archive."
    ),
    paths(
        create_session,
        negotiate,
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
        logon_throttle,
        clear_logon_throttle,
        set_password,
        list_folders,
        set_message_count,
        get_default_privileges,
        set_default_privileges,
        audit_log,
        get_directory,
        put_directory,
        get_domains,
        get_groups,
        preview,
        sync,
        sync_user,
        list_runs,
        get_run,
        cancel_run,
        approve_run
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
        roster_app::RunStarted,
        RunSummary,
        ReportLine,
        DirectorySettings
    ))
)]
struct ApiDoc;

pub(crate) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// The security scheme's name in the document.
const BEARER: &str = "bearer";

/// What every operation shares, added to the document in one place rather than on each handler: the bearer
/// token (all but logging on and the document itself need one), and the error body that any failure
/// answers with (401 without a valid token, 400 for invalid input, 403, 404, 409, 503 and 500 by the
/// failure's kind; the codes are in the body).
struct ApiConventions;

impl utoipa::Modify for ApiConventions {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A token from POST /api/v1/sessions"))
                    .build(),
            ),
        );
        openapi.security = Some(vec![SecurityRequirement::new(BEARER, Vec::<String>::new())]);
        drop_unsupported_directory_type(&mut components.schemas);
        allow_tagged_settings_fields(&mut components.schemas);
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
                        .or_insert_with(|| error_response("no valid bearer token").into());
                }
                responses.entry("default".to_owned()).or_insert_with(|| {
                    error_response("any other failure, with a stable code in the body").into()
                });
            }
        }
    }
}

/// The document's named schemas.
type Schemas = std::collections::BTreeMap<String, RefOr<Schema>>;

/// A response with the error body.
fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("ErrorBody")))
                .build(),
        )
        .build()
}

/// `Unsupported` only catches the planned directory types so that they get a clear refusal; it is not a
/// type a client can choose.
fn drop_unsupported_directory_type(schemas: &mut Schemas) {
    if let Some(RefOr::T(Schema::OneOf(settings))) = schemas.get_mut("DirectorySettings") {
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
}

fn allow_tagged_settings_fields(schemas: &mut Schemas) {
    for kind in roster_core::directory::DirectoryKind::ALL {
        match schemas.get_mut(kind.schema_name()) {
            Some(RefOr::T(Schema::Object(object))) => object.additional_properties = None,
            // A type that flattens the shared mapping is `allOf` its schema and its own fields.
            Some(RefOr::T(Schema::AllOf(all))) => {
                for part in &mut all.items {
                    if let RefOr::T(Schema::Object(object)) = part {
                        object.additional_properties = None;
                    }
                }
            }
            Some(_) | None => {}
        }
    }
}
