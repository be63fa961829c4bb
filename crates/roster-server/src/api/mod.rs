//! The handlers, one file per area. Each only turns the request into a `Roster` call and its answer into
//! JSON.

pub(crate) mod audit;
pub(crate) mod directory;
pub(crate) mod folders;
pub(crate) mod negotiate;
pub(crate) mod privileges;
pub(crate) mod runs;
pub(crate) mod sessions;
pub(crate) mod users;

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{Ref, RefOr, Schema};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
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
    pub(crate) fn window(&self, default: i64, max: i64) -> (i64, i64) {
        (
            self.offset.max(0),
            self.limit.unwrap_or(default).clamp(1, max),
        )
    }
}

/// Lists: users, runs, the audit log (at most `roster_app::PAGE_MAX`).
pub(crate) const LIST_DEFAULT: i64 = 100;
/// A run's report lines: one page is usually the whole report (at most `roster_app::RUN_LINES_MAX`).
pub(crate) const LINES_DEFAULT: i64 = 10_000;

/// One page of a list. Its schema is named after the item type (`UserPage` for `PageOf<User>`) and its
/// `items` refer to that type's schema, so that a generated client types them: the schema is written by
/// hand below because utoipa's derive inlines a generic parameter (an anonymous object per page). The
/// handlers name a page by its alias (`UserPage`), which is what the `#[utoipa::path]` macros see.
#[derive(Debug, Serialize)]
pub(crate) struct PageOf<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub offset: i64,
    pub limit: i64,
}

pub(crate) type UserPage = PageOf<roster_core::user::User>;
pub(crate) type RunSummaryPage = PageOf<roster_app::RunSummary>;
pub(crate) type AuditEntryPage = PageOf<roster_core::user::AuditEntry>;
pub(crate) type ReportLinePage = PageOf<roster_core::plan::ReportLine>;

impl<T: utoipa::ToSchema> utoipa::PartialSchema for PageOf<T> {
    fn schema() -> RefOr<Schema> {
        let count = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
                .description(Some(description))
        };
        ObjectBuilder::new()
            .description(Some(format!("A page of {}s.", T::name())))
            .property(
                "items",
                ArrayBuilder::new().items(Ref::from_schema_name(T::name())),
            )
            .required("items")
            .property("total", count("How many there are in all."))
            .required("total")
            .property("offset", count("The offset applied."))
            .required("offset")
            .property("limit", count("The limit applied."))
            .required("limit")
            .into()
    }
}

impl<T: utoipa::ToSchema> utoipa::ToSchema for PageOf<T> {
    fn name() -> Cow<'static, str> {
        Cow::Owned(format!("{}Page", T::name()))
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((T::name().into_owned(), T::schema()));
        T::schemas(schemas);
    }
}
