//! Directory runs as [`crate::Store`] records them: what starts one, how it ends, and how it is listed.

use crate::Actor;
use roster_core::Timestamp;
use roster_core::plan::{DeletedLine, ReportCounts, ReportLine};
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
    /// An administrator cancelled it (or the server running it was stopped) before it committed anything.
    Cancelled,
    /// Stopped by the deletion guard: its plan deleted more users than the settings allow without
    /// approval, and it applied nothing. Its report is the plan; an approval may apply it.
    Stopped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Abandoned => "abandoned",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Stopped => "stopped",
        }
    }

    pub(crate) fn parse(raw: &str) -> RunStatus {
        match raw {
            "running" => RunStatus::Running,
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            "stopped" => RunStatus::Stopped,
            _ => RunStatus::Abandoned,
        }
    }
}

/// How a run read the directory: everything in scope, or what changed since the last read (RFC 4533).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReadMode {
    Full,
    Incremental,
}

impl ReadMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadMode::Full => "full",
            ReadMode::Incremental => "incremental",
        }
    }

    pub(crate) fn parse(raw: &str) -> Option<ReadMode> {
        match raw {
            "full" => Some(ReadMode::Full),
            "incremental" => Some(ReadMode::Incremental),
            _ => None,
        }
    }
}

/// Where a run is: it reads the directory (and loads the users), plans, applies the plan (a sync with
/// changes only), and records its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunPhase {
    Reading,
    Planning,
    Applying,
    Recording,
}

impl RunPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            RunPhase::Reading => "reading",
            RunPhase::Planning => "planning",
            RunPhase::Applying => "applying",
            RunPhase::Recording => "recording",
        }
    }

    pub(crate) fn parse(raw: &str) -> Option<RunPhase> {
        match raw {
            "reading" => Some(RunPhase::Reading),
            "planning" => Some(RunPhase::Planning),
            "applying" => Some(RunPhase::Applying),
            "recording" => Some(RunPhase::Recording),
            _ => None,
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
    /// The stable code of the error that ended a failed or cancelled run (`AP015-run-deadline`…).
    pub error_code: Option<String>,
    /// Where the run is (while it runs) or was when it ended; absent for runs recorded before phases were.
    pub phase: Option<RunPhase>,
    /// When an administrator asked to cancel it, and who (the run stops at its next check).
    pub cancel_requested_at: Option<Timestamp>,
    pub cancel_requested_by: Option<String>,
    /// For a run stopped by the deletion guard: the run that applied it once an administrator approved.
    pub approved_in_run: Option<i64>,
    /// How it read the directory; absent for runs recorded before read modes were, and for runs that
    /// failed before their read said.
    pub read_mode: Option<ReadMode>,
}

/// How a run ended, as [`crate::Store::finish_run`] records it (a sync that applies a plan is recorded by
/// [`crate::Store::apply_plan`] instead, in the same transaction).
#[derive(Debug, Clone)]
pub struct RunOutcome<'a> {
    pub status: RunStatus,
    pub entries_read: i64,
    pub counts: Option<ReportCounts>,
    pub error: Option<String>,
    pub error_code: Option<String>,
    /// Where it ended: `recording` for a run that succeeded, else the phase it stopped in.
    pub phase: RunPhase,
    pub lines: &'a [ReportLine],
    /// For a run stopped by the deletion guard: the users its plan would delete, which an approval must
    /// find again.
    pub planned_deletions: Option<&'a [i64]>,
    pub read_mode: Option<ReadMode>,
    /// The directory's read state to store with the outcome (the incremental read's cookie), in the same
    /// transaction: under [`DIRECTORY_READ_STATE`] in the settings.
    pub read_state: Option<&'a str>,
}

/// The settings key of the directory's read state (the incremental read's cookie and what it belongs to).
pub const DIRECTORY_READ_STATE: &str = "directory_read_state";

/// A sync's report as planned, which [`crate::Store::apply_plan`] corrects for the folders it decided at
/// the apply (`roster_core::plan::correct_report_for_folders_decided_at_apply`) and records as the run's
/// outcome in the transaction that applies the plan: a crash can't leave applied users with a run that
/// says nothing was applied.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub entries_read: i64,
    pub counts: ReportCounts,
    pub lines: Vec<ReportLine>,
    /// Where each deleted user's line is in `lines` (the plan's `deleted_lines`, shifted by any line put
    /// before them).
    pub deleted_lines: Vec<DeletedLine>,
    /// The run stopped by the deletion guard whose plan this one applies (an approval): marked approved
    /// in the same transaction, once.
    pub approves: Option<i64>,
    pub read_mode: Option<ReadMode>,
    /// The read state to store in the apply's transaction (see [`RunOutcome::read_state`]).
    pub read_state: Option<String>,
}

impl RunRecord {
    /// The outcome an apply records with its commit: the run succeeded, with this record's report.
    pub fn succeeded(&self) -> RunOutcome<'_> {
        RunOutcome {
            status: RunStatus::Succeeded,
            entries_read: self.entries_read,
            counts: Some(self.counts),
            error: None,
            error_code: None,
            phase: RunPhase::Recording,
            lines: &self.lines,
            planned_deletions: None,
            read_mode: self.read_mode,
            read_state: self.read_state.as_deref(),
        }
    }
}

/// The scheduled sync's state (issue 20).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleState {
    /// The schedule as written in the settings it was computed from.
    pub schedule: String,
    /// When the next scheduled run is due.
    pub next_due: Timestamp,
    /// Scheduled runs that failed in a row.
    pub failures: i64,
}

/// What a run's heartbeat learned from the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunControl {
    /// Go on.
    Continue,
    /// An administrator asked to cancel the run (perhaps from another process).
    CancelRequested { by: String },
    /// The run is no longer running: another process took it for dead, or it was cancelled as such.
    NotRunning,
}

/// The answer to a cancel request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// Recorded: the process running it stops at its next check and records it as cancelled.
    Requested,
    /// Its process had already stopped (no heartbeat for too long): it is recorded as cancelled now.
    Cancelled,
}
