//! Directory runs as [`crate::Store`] records them: what starts one, how it ends, and how it is listed.

use crate::Actor;
use roster_core::Timestamp;
use roster_core::plan::{ReportCounts, ReportLine};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    Preview,
    Sync,
}

impl RunKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Preview => "preview",
            RunKind::Sync => "sync",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    /// The process that ran it stopped without finishing it (its heartbeat went stale).
    Abandoned,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Abandoned => "abandoned",
        }
    }

    pub(crate) fn parse(raw: &str) -> RunStatus {
        match raw {
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            _ => RunStatus::Abandoned,
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewRun {
    pub kind: RunKind,
    /// `api`, `cli`, …
    pub triggered_by: String,
    pub actor: Actor,
    pub directory_type: String,
}

/// A run as listed at `GET /api/v1/directory/runs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunSummary {
    pub id: i64,
    pub kind: RunKind,
    pub triggered_by: String,
    pub actor: String,
    pub directory_type: String,
    pub status: RunStatus,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub entries_read: i64,
    pub counts: Option<ReportCounts>,
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RunOutcome<'a> {
    pub status: RunStatus,
    pub entries_read: i64,
    pub counts: Option<ReportCounts>,
    pub error: Option<String>,
    pub lines: &'a [ReportLine],
}
