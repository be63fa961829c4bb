//! What the use cases tell an observer as things happen (issue 27): the end of every run and every logon
//! attempt. `roster serve` counts them for `GET /metrics` (`roster_server::Metrics`); elsewhere (the CLI,
//! the tests) nobody listens ([`NoObserver`]).
//!
//! The interface is narrow on purpose: plain values, no HTTP and no metrics crate, and nothing that names a
//! user, a directory server or a secret, so that no metric label can carry one.

use crate::error::{AppError, ErrorKind};
use roster_core::plan::ReportCounts;
use roster_store::RunKind;
use std::time::Duration;

/// Hears about runs and logons. Both methods are called on the task that did the work: keep them quick
/// (count, don't wait).
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// A preview or a sync ended, however it ended.
    fn run_finished(&self, run: &RunFinished);
    /// A logon attempt was answered.
    fn logon(&self, method: LogonMethod, outcome: LogonOutcome);
}

/// The observer of a [`crate::Roster`] that was given none.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl Observer for NoObserver {
    fn run_finished(&self, _run: &RunFinished) {}
    fn logon(&self, _method: LogonMethod, _outcome: LogonOutcome) {}
}

/// A run that ended.
#[derive(Debug, Clone)]
pub struct RunFinished {
    pub kind: RunKind,
    pub outcome: RunEnd,
    /// How it read the directory; `None` for a run that ended before its read said (a failed read, a
    /// run of one user).
    pub read_mode: Option<ReadMode>,
    /// From the run's start (recorded as running) to its end (recorded).
    pub duration: Duration,
    /// Directory entries read, whole or in part.
    pub entries_read: u64,
    /// What an applied sync did to the users; `None` for a preview and for a run that applied nothing
    /// because it failed, was cancelled or was stopped by the deletion guard.
    pub applied: Option<ReportCounts>,
}

/// How a run ended, as its recorded status says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    Succeeded,
    Failed,
    Cancelled,
    /// Stopped by the deletion guard (a sync): nothing applied, waiting for an approval.
    Stopped,
}

impl RunEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            RunEnd::Succeeded => "succeeded",
            RunEnd::Failed => "failed",
            RunEnd::Cancelled => "cancelled",
            RunEnd::Stopped => "stopped",
        }
    }

    pub(crate) fn of<T>(result: &Result<T, AppError>) -> RunEnd {
        match result {
            Ok(_) => RunEnd::Succeeded,
            Err(e) => match e.kind() {
                ErrorKind::Guarded => RunEnd::Stopped,
                ErrorKind::Cancelled => RunEnd::Cancelled,
                _ => RunEnd::Failed,
            },
        }
    }
}

/// How a run read the directory (full, or incremental since the last run): the store's, as runs record it.
pub use roster_store::ReadMode;

/// How someone tried to log on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogonMethod {
    /// A password, checked against the user's Argon2id hash.
    PasswordLocal,
    /// A password, checked by the directory.
    PasswordDirectory,
    /// A password for a name that is no user's, or one refused before the name was looked up (an empty
    /// password, a throttled account): whether it would have been local or directory is not known.
    Password,
    /// A Kerberos ticket (HTTP Negotiate).
    Kerberos,
}

impl LogonMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            LogonMethod::PasswordLocal => "password_local",
            LogonMethod::PasswordDirectory => "password_directory",
            LogonMethod::Password => "password",
            LogonMethod::Kerberos => "kerberos",
        }
    }
}

/// How a logon attempt was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogonOutcome {
    Accepted,
    /// A wrong or empty password, an unknown name, a departed user, a refused Kerberos principal.
    Rejected,
    /// The right password, but the user lacks the `log_on` privilege.
    NotAllowed,
    /// Refused without a check: the account is throttled or locked after failed logons.
    Throttled,
    /// The directory couldn't check the password or the account.
    Unavailable,
    /// Too many password checks waiting (`AP014-busy`).
    Busy,
    /// Anything else (the database failed…).
    Error,
}

impl LogonOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            LogonOutcome::Accepted => "accepted",
            LogonOutcome::Rejected => "rejected",
            LogonOutcome::NotAllowed => "not_allowed",
            LogonOutcome::Throttled => "throttled",
            LogonOutcome::Unavailable => "unavailable",
            LogonOutcome::Busy => "busy",
            LogonOutcome::Error => "error",
        }
    }

    pub(crate) fn of<T>(result: &Result<T, AppError>) -> LogonOutcome {
        match result {
            Ok(_) => LogonOutcome::Accepted,
            Err(AppError::LogonFailed | AppError::EmptyPassword) => LogonOutcome::Rejected,
            Err(AppError::LogonNotAllowed) => LogonOutcome::NotAllowed,
            Err(AppError::Busy { .. }) => LogonOutcome::Busy,
            Err(AppError::DirectoryUnavailableAtLogon | AppError::DirectoryLogonUnavailable(_)) => {
                LogonOutcome::Unavailable
            }
            Err(_) => LogonOutcome::Error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_follow_the_errors() {
        assert_eq!(
            LogonOutcome::of::<()>(&Err(AppError::LogonFailed)),
            LogonOutcome::Rejected
        );
        assert_eq!(
            LogonOutcome::of::<()>(&Err(AppError::Busy {
                retry_after_seconds: 1
            })),
            LogonOutcome::Busy
        );
        assert_eq!(
            LogonOutcome::of::<()>(&Err(AppError::DirectoryUnavailableAtLogon)),
            LogonOutcome::Unavailable
        );
        assert_eq!(
            RunEnd::of::<()>(&Err(AppError::RunFailed {
                run_id: 1,
                code: "AP019-deletion-guard",
                kind: ErrorKind::Guarded,
                message: String::new(),
            })),
            RunEnd::Stopped
        );
        assert_eq!(
            RunEnd::of::<()>(&Err(AppError::RunCancelled { by: "x".into() })),
            RunEnd::Cancelled
        );
        assert_eq!(RunEnd::of::<()>(&Ok(())), RunEnd::Succeeded);
    }
}
