//! Whether this instance can serve (`GET /readyz`, issue 27): the database answers, and how the last
//! directory run went. Asked by load balancers and monitoring without a session, so it says nothing that
//! needs one: no user or server names, no error messages (which may name a directory server), only the
//! last run's kind, status, times and error code.

use crate::Roster;
use crate::error::{AppError, Result};
use roster_store::{RunKind, RunStatus, StoreError};
use serde::Serialize;
use std::time::Duration;

/// How long the database may take to answer before the instance is taken as not ready: a probe must
/// answer well before a load balancer gives up on it (the pool itself would wait 15 s for a connection).
pub const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// The database answered.
#[derive(Debug, Clone, Serialize)]
pub struct Readiness {
    /// The newest directory run of any process on this database; `None` before the first.
    pub last_run: Option<LastRun>,
}

/// The newest directory run, as a probe may see it.
#[derive(Debug, Clone, Serialize)]
pub struct LastRun {
    pub id: i64,
    pub kind: RunKind,
    pub status: RunStatus,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: Option<String>,
    /// Seconds since it finished (or started, while it runs).
    pub age_seconds: i64,
    /// The stable code of what ended a failed, cancelled or stopped run.
    pub error_code: Option<String>,
}

impl Roster {
    /// One cheap query (the newest run), within [`READY_TIMEOUT`]; an error means the database can't be
    /// used. Anyone may ask: see the module's comment for what it shows.
    pub async fn readiness(&self) -> Result<Readiness> {
        let page = tokio::time::timeout(READY_TIMEOUT, self.store.list_runs(0, 1))
            .await
            .map_err(|_| {
                AppError::Store(StoreError::Database(format!(
                    "the database did not answer within {} s",
                    READY_TIMEOUT.as_secs()
                )))
            })??;
        let now = self.now();
        let last_run = page.items.into_iter().next().map(|run| {
            let at = run.finished_at.unwrap_or(run.started_at);
            LastRun {
                id: run.id,
                kind: run.kind,
                status: run.status,
                started_at: run.started_at.to_rfc3339(),
                finished_at: run.finished_at.map(|t| t.to_rfc3339()),
                age_seconds: (now.millis().saturating_sub(at.millis()) / 1000).max(0),
                error_code: run.error_code,
            }
        });
        Ok(Readiness { last_run })
    }
}
