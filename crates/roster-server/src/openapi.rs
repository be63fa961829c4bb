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
use utoipa::openapi::schema::{Discriminator, Object, ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder, Schema};

#[derive(OpenApi)]
#[openapi(
    modifiers(&ApiConventions),
    // Every operation names its area with `tag = "..."` in its `#[utoipa::path]`: a generated client
    // groups operations by tag (one module per area).
    tags(
        (name = "sessions", description = "Logging on (a password or Negotiate) and off."),
        (name = "users", description = "Users, their passwords, logon methods and logon throttle, and the caller's own account."),
        (name = "privileges", description = "A user's privileges and the defaults new users get."),
        (name = "folders", description = "The archive's folders."),
        (name = "directory", description = "The directory settings, and the domains and groups on its server."),
        (name = "runs", description = "Previews and syncs of the directory, and their reports."),
        (name = "audit", description = "The audit log.")
    ),
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
        // utoipa misses the `rename` that `directory_types!` passes as a macro fragment (it tags the
        // variants `Ldap`, …): the names are the kinds' own.
        let kinds: Vec<(&str, &str)> = roster_core::directory::DirectoryKind::ALL
            .iter()
            .map(|kind| (kind.schema_name(), kind.name()))
            .collect();
        discriminate(&mut components.schemas, "DirectorySettings", "type", &kinds);
        discriminate_extension(
            &mut components.schemas,
            "DirectorySettingsView",
            "DirectorySettings",
        );
        discriminate(&mut components.schemas, "GuardLimit", "limit", &[]);
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

/// A serde internally tagged enum, as utoipa derives it, is `oneOf` inline objects (a unit or struct
/// variant: the tag and the fields) and `allOf` a reference and an inline object holding the tag (a
/// newtype variant). Generators (openapi-python-client) can't parse the latter, and can't tell the
/// variants apart without a discriminator. This makes `union` a `oneOf` of references to one named object
/// schema per variant, each with its own `tag` property (an enum of its one value) and every field,
/// flattened structs included, as real properties; and a `discriminator` on `tag` mapping each value to
/// its schema. A newtype variant's schema keeps its type's name (`LdapSettings`), now with the tag; a
/// unit or struct variant's is the union's name and the tag's value (`DirectorySettingsNone`).
/// `values`: the tag's value of a newtype variant by its type's schema name, where utoipa gets it wrong.
fn discriminate(schemas: &mut Schemas, union: &str, tag: &str, values: &[(&str, &str)]) {
    let Some(RefOr::T(Schema::OneOf(one_of))) = schemas.get(union) else {
        return;
    };
    let mut one_of = one_of.clone();
    let mut variants = Vec::new();
    for item in &one_of.items {
        let Some((value, named)) = tag_value(schemas, item, tag) else {
            // Not the shape this knows: leave the union as it is rather than describe it wrongly.
            return;
        };
        let value = named
            .as_deref()
            .and_then(|named| values.iter().find(|(schema, _)| *schema == named))
            .map_or(value, |(_, value)| (*value).to_owned());
        let name = named.unwrap_or_else(|| format!("{union}{}", pascal_case(&value)));
        let Some(mut object) = flattened(schemas, item, 0) else {
            return;
        };
        if let Some(RefOr::T(Schema::Object(named))) = schemas.get(&name) {
            object.description = object.description.or_else(|| named.description.clone());
        }
        set_tag(&mut object, tag, &value);
        variants.push((value, name, object));
    }
    let mut discriminator = Discriminator::new(tag);
    one_of.items.clear();
    for (value, name, object) in variants {
        one_of
            .items
            .push(Ref::from_schema_name(name.clone()).into());
        discriminator
            .mapping
            .insert(value, format!("#/components/schemas/{name}"));
        schemas.insert(name, Schema::Object(object).into());
    }
    one_of.discriminator = Some(discriminator);
    schemas.insert(union.to_owned(), Schema::OneOf(one_of).into());
}

/// A struct that flattens the tagged union `union` and adds its own fields (`DirectorySettingsView`),
/// which utoipa derives as `allOf` the union and an object, becomes a discriminated union of its own: per
/// variant of `union` (already [`discriminate`]d), `<variant>View` with the variant's properties and the
/// struct's own.
fn discriminate_extension(schemas: &mut Schemas, extension: &str, union: &str) {
    let Some(RefOr::T(Schema::AllOf(all))) = schemas.get(extension) else {
        return;
    };
    let description = all.description.clone();
    let mut own = Object::new();
    for part in &all.items {
        match part {
            RefOr::Ref(r) if r.ref_location.ends_with(&format!("/{union}")) => {}
            part => match flattened(schemas, part, 0) {
                Some(object) => merge(&mut own, object),
                None => return,
            },
        }
    }
    let Some(RefOr::T(Schema::OneOf(base))) = schemas.get(union) else {
        return;
    };
    let Some(base_discriminator) = &base.discriminator else {
        return;
    };
    let mut one_of = base.clone();
    one_of.description = description;
    let mut discriminator = Discriminator::new(base_discriminator.property_name.clone());
    let mut views = Vec::new();
    one_of.items.clear();
    for item in &base.items {
        let RefOr::Ref(r) = item else {
            return;
        };
        let Some((value, _)) = base_discriminator
            .mapping
            .iter()
            .find(|(_, location)| **location == r.ref_location)
        else {
            return;
        };
        let Some(variant) = schema_name(r) else {
            return;
        };
        let Some(RefOr::T(Schema::Object(object))) = schemas.get(variant) else {
            return;
        };
        let mut view = object.clone();
        merge(&mut view, own.clone());
        let name = format!("{variant}View");
        one_of
            .items
            .push(Ref::from_schema_name(name.clone()).into());
        discriminator
            .mapping
            .insert(value.clone(), format!("#/components/schemas/{name}"));
        views.push((name, view));
    }
    for (name, view) in views {
        schemas.insert(name, Schema::Object(view).into());
    }
    one_of.discriminator = Some(discriminator);
    schemas.insert(extension.to_owned(), Schema::OneOf(one_of).into());
}

/// A variant's tag value, and the name of the type it wraps (a newtype variant).
fn tag_value(
    schemas: &Schemas,
    item: &RefOr<Schema>,
    tag: &str,
) -> Option<(String, Option<String>)> {
    match item {
        RefOr::T(Schema::Object(object)) => single_enum(object, tag).map(|v| (v, None)),
        RefOr::T(Schema::AllOf(all)) => {
            let mut value = None;
            let mut named = None;
            for part in &all.items {
                match part {
                    RefOr::Ref(r) => {
                        let name = schema_name(r)?;
                        schemas.get(name)?;
                        named = Some(name.to_owned());
                    }
                    RefOr::T(Schema::Object(object)) => {
                        value = value.or_else(|| single_enum(object, tag));
                    }
                    RefOr::T(_) => return None,
                }
            }
            value.map(|v| (v, named))
        }
        RefOr::Ref(_) | RefOr::T(_) => None,
    }
}

/// The one value of an object's `tag` property (`enum: [value]`).
fn single_enum(object: &Object, tag: &str) -> Option<String> {
    let Some(RefOr::T(Schema::Object(property))) = object.properties.get(tag) else {
        return None;
    };
    match property.enum_values.as_deref() {
        Some([serde_json::Value::String(value)]) => Some(value.clone()),
        _ => None,
    }
}

fn schema_name(r: &Ref) -> Option<&str> {
    r.ref_location.strip_prefix("#/components/schemas/")
}

/// One object with the properties and required fields of a schema that serde flattens into its parent:
/// an object, a reference to one, or `allOf` those. `None` for anything else.
fn flattened(schemas: &Schemas, schema: &RefOr<Schema>, depth: usize) -> Option<Object> {
    if depth > 8 {
        return None;
    }
    match schema {
        RefOr::T(Schema::Object(object)) => {
            let mut flat = Object::with_type(Type::Object);
            flat.description = object.description.clone();
            merge(&mut flat, object.clone());
            Some(flat)
        }
        RefOr::Ref(r) => flattened(schemas, schemas.get(schema_name(r)?)?, depth + 1),
        RefOr::T(Schema::AllOf(all)) => {
            let mut flat = Object::with_type(Type::Object);
            flat.description = all.description.clone();
            for part in &all.items {
                let part = flattened(schemas, part, depth + 1)?;
                merge(&mut flat, part);
            }
            Some(flat)
        }
        RefOr::T(_) => None,
    }
}

/// `from`'s properties and required fields added to `into`.
fn merge(into: &mut Object, from: Object) {
    for (name, property) in from.properties {
        into.properties.insert(name, property);
    }
    for name in from.required {
        if !into.required.contains(&name) {
            into.required.push(name);
        }
    }
}

/// The tag as the variant's own required property, first among the required.
fn set_tag(object: &mut Object, tag: &str, value: &str) {
    object.properties.insert(
        tag.to_owned(),
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some([value]))
            .into(),
    );
    object.required.retain(|name| name != tag);
    object.required.insert(0, tag.to_owned());
}

/// `active-directory` → `ActiveDirectory`, `count` → `Count`.
fn pascal_case(value: &str) -> String {
    value
        .split(['-', '_'])
        .flat_map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
        })
        .collect()
}
