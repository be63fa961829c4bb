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

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct PageOf<T> {
    pub items: Vec<T>,
    pub total: i64,
    pub offset: i64,
    pub limit: i64,
}
