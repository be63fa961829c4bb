//! The one error type of Roster's use cases. Every variant has a stable code and an HTTP status, so the API
//! and the CLI (exit codes) report the same failure the same way.

use roster_directory::DirectoryError;
use roster_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Wrong password and unknown user alike: the answer must not tell them apart.
    #[error("the user name or password is wrong")]
    LogonFailed,
    #[error("the password is empty; enter your password")]
    EmptyPassword,
    #[error("you don't have the privilege to log on; ask your administrator")]
    LogonNotAllowed,
    #[error("you are not logged on, or your session has expired; log on again")]
    Unauthenticated,
    #[error("only an administrator may {0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// A new user name that looks like an existing user's (issue 19, item 11).
    #[error(
        "the user name {name} looks like the name of the existing user {existing} (the same Unicode TR39 skeleton), and could pass for it; choose another name"
    )]
    LookAlikeUserName { name: String, existing: String },
    #[error("{message}")]
    InvalidSetting { key: String, message: String },
    #[error(
        "this user logs on with the directory password, but the configured directory can't check passwords: {0}"
    )]
    DirectoryLogonUnavailable(String),
    #[error(
        "no directory is configured; set one with `roster directory set --file settings.toml` or PUT /api/v1/directory"
    )]
    NoDirectory,
    /// The directory failed while checking a logon. The details go to the log, not to the person logging
    /// on: they may not learn the directory's host names.
    #[error(
        "the directory could not check the password right now; try again later, or ask your administrator to look at Roster's log"
    )]
    DirectoryUnavailableAtLogon,
    #[error(transparent)]
    Directory(#[from] DirectoryError),
    #[error("{message} (run #{run_id})")]
    RunFailed {
        run_id: i64,
        code: &'static str,
        /// The failure's own kind: a setting at fault is the caller's to fix (400, exit code 2), an
        /// unreachable directory is not (503, exit code 5).
        kind: ErrorKind,
        message: String,
    },
    #[error(
        "the run did not finish within its deadline of {seconds} s and was stopped; nothing was changed. Check that the directory answers (an LDIF file must be a regular file, not a pipe), or raise the deadline (--run-deadline-seconds, ROSTER_RUN_DEADLINE_SECONDS)"
    )]
    RunDeadline { seconds: u64 },
    #[error("the run was cancelled by {by}; nothing was changed")]
    RunCancelled { by: String },
    /// A sync whose plan deletes more users than the deletion guard allows (issue 20): recorded as
    /// stopped, with its plan as the report, and nothing applied.
    #[error(
        "stopped by the deletion guard: this synchronization would delete {deletions} users{}, {limit}; nothing was applied, not even its other changes. See the plan with `roster runs show {run_id}`; if these deletions are intended, approve them with `roster sync --approve {run_id}` (POST /api/v1/directory/runs/{run_id}/approve), or raise max_deletions or max_deletions_percent in the directory settings",
        suspended_note(*.suspended)
    )]
    DeletionGuard {
        run_id: i64,
        deletions: u64,
        /// Of them, users suspended for the grace period rather than deleted at once.
        suspended: u64,
        limit: roster_core::directory::GuardLimit,
    },
    /// The read returned nobody while users are linked to the directory: a wrong base DN or filter, a
    /// renamed OU or a service account that lost its rights, never everybody leaving.
    #[error(
        "the directory returned no entries at all for {scope}, while {linked} users are linked to it; nobody was deleted or changed. Check the base DN and the filter, and that the service account may still read the users"
    )]
    EmptyRead { scope: String, linked: u64 },
    /// An approval whose new plan deletes other users than the stopped run's did.
    #[error(
        "the directory changed since run #{stopped} was stopped: {difference}; nothing was applied. Run `roster sync` again, and approve its new plan if it is right"
    )]
    ApprovalMismatch { stopped: i64, difference: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the encryption key for stored secrets is unusable: {0}")]
    SecretKey(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// `roster db check` found problems (it lists them).
    #[error(
        "the database check found {problems} problem(s), listed above. Stop Roster and keep a copy of the data directory, then restore the latest good backup (roster restore --force FILE) or report the problems"
    )]
    Inconsistent { problems: usize },
    /// Too many password checks are waiting (a flood of logons): come back later. Answered alike whatever
    /// the name, so it says nothing about which names exist.
    #[error("Roster is busy checking other passwords; try again in {retry_after_seconds} seconds")]
    Busy { retry_after_seconds: u64 },
}

/// " (N of them suspended …)" when a guarded plan suspends users rather than deleting them.
pub(crate) fn suspended_note(suspended: u64) -> String {
    if suspended == 0 {
        String::new()
    } else {
        format!(" ({suspended} of them suspended for the grace period rather than deleted at once)")
    }
}

/// How a failure should be answered, independent of the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    BadRequest,
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict,
    /// A directory or database we depend on failed or can't be reached.
    Unavailable,
    /// An administrator cancelled the run (or the server running it was stopped).
    Cancelled,
    /// The deletion guard stopped a sync: it waits for an administrator's approval.
    Guarded,
    Internal,
}

impl AppError {
    pub fn code(&self) -> &'static str {
        match self {
            AppError::LogonFailed => "AP001-logon-failed",
            AppError::EmptyPassword => "AP002-empty-password",
            AppError::LogonNotAllowed => "AP003-logon-not-allowed",
            AppError::Unauthenticated => "AP004-unauthenticated",
            AppError::Forbidden(_) => "AP005-forbidden",
            AppError::NotFound(_) => "AP006-not-found",
            AppError::Invalid(_) => "AP007-invalid",
            AppError::InvalidSetting { .. } => "AP008-invalid-setting",
            AppError::DirectoryLogonUnavailable(_) => "AP009-directory-logon-unavailable",
            AppError::NoDirectory => "AP010-no-directory",
            AppError::SecretKey(_) => "AP011-secret-key",
            AppError::Internal(_) => "AP012-internal",
            AppError::DirectoryUnavailableAtLogon => "AP013-directory-unavailable-at-logon",
            AppError::Busy { .. } => "AP014-busy",
            AppError::RunDeadline { .. } => "AP015-run-deadline",
            AppError::RunCancelled { .. } => "AP016-run-cancelled",
            AppError::LookAlikeUserName { .. } => "AP017-look-alike-user-name",
            AppError::DeletionGuard { .. } => "AP018-deletion-guard",
            AppError::EmptyRead { .. } => "AP019-empty-read",
            AppError::ApprovalMismatch { .. } => "AP020-approval-mismatch",
            AppError::Inconsistent { .. } => "AP021-database-inconsistent",
            AppError::RunFailed { code, .. } => code,
            AppError::Directory(e) => e.code(),
            AppError::Store(e) => e.code(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            AppError::LogonFailed | AppError::Unauthenticated => ErrorKind::Unauthenticated,
            AppError::EmptyPassword
            | AppError::Invalid(_)
            | AppError::InvalidSetting { .. }
            | AppError::NoDirectory => ErrorKind::BadRequest,
            AppError::LogonNotAllowed | AppError::Forbidden(_) => ErrorKind::Forbidden,
            AppError::NotFound(_) => ErrorKind::NotFound,
            AppError::LookAlikeUserName { .. } => ErrorKind::Conflict,
            AppError::DirectoryLogonUnavailable(_)
            | AppError::DirectoryUnavailableAtLogon
            | AppError::Busy { .. } => ErrorKind::Unavailable,
            AppError::RunFailed { kind, .. } => *kind,
            AppError::RunDeadline { .. } => ErrorKind::Unavailable,
            AppError::RunCancelled { .. } => ErrorKind::Cancelled,
            AppError::DeletionGuard { .. } => ErrorKind::Guarded,
            AppError::EmptyRead { .. } => ErrorKind::Unavailable,
            AppError::ApprovalMismatch { .. } => ErrorKind::Conflict,
            AppError::Directory(e) => {
                if matches!(
                    e,
                    DirectoryError::InvalidSettings { .. }
                        | DirectoryError::NotConfigured
                        | DirectoryError::UnsupportedType
                        | DirectoryError::ListingUnsupported { .. }
                ) {
                    ErrorKind::BadRequest
                } else if matches!(e, DirectoryError::AmbiguousUser { .. }) {
                    ErrorKind::Conflict
                } else {
                    ErrorKind::Unavailable
                }
            }
            AppError::Store(e) => match e {
                StoreError::DuplicateUserName(_)
                | StoreError::DuplicateEmail { .. }
                | StoreError::RunInProgress { .. }
                | StoreError::StaleSnapshot
                | StoreError::RunNotRunning(_)
                | StoreError::RunFinished { .. }
                | StoreError::NotApprovable { .. } => ErrorKind::Conflict,
                StoreError::CancelRequested { .. } => ErrorKind::Cancelled,
                StoreError::NotFound(_) => ErrorKind::NotFound,
                StoreError::BuiltinAdmin(_) => ErrorKind::Forbidden,
                StoreError::Locked
                | StoreError::RestoreInProgress(_)
                | StoreError::DiskFull(_)
                | StoreError::Unavailable(_) => ErrorKind::Unavailable,
                // Backup and restore (`roster backup`, `roster restore`): a file that can't be restored,
                // or a command that doesn't apply to PostgreSQL, is the caller's to fix; a file or data
                // directory in the way is a conflict.
                StoreError::NotABackup { .. }
                | StoreError::BackupUnusable { .. }
                | StoreError::BackupNewer { .. }
                | StoreError::BackupUnsupported => ErrorKind::BadRequest,
                StoreError::BackupFileExists(_)
                | StoreError::DataDirInUse(_)
                | StoreError::DatabaseExists(_) => ErrorKind::Conflict,
                StoreError::Corrupt { .. }
                | StoreError::NewerSchema { .. }
                | StoreError::Open(_)
                | StoreError::Database(_)
                | StoreError::Invalid(_)
                | StoreError::BackupFailed(_) => ErrorKind::Internal,
            },
            AppError::SecretKey(_) | AppError::Internal(_) | AppError::Inconsistent { .. } => {
                ErrorKind::Internal
            }
        }
    }

    /// For [`AppError::Busy`]: when to try again, in seconds (HTTP's `Retry-After`).
    pub fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            AppError::Busy {
                retry_after_seconds,
            } => Some(*retry_after_seconds),
            _ => None,
        }
    }

    /// The settings key at fault, when there is one, so a form can show the message next to it.
    pub fn field(&self) -> Option<&str> {
        match self {
            AppError::InvalidSetting { key, .. } => Some(key),
            AppError::Directory(DirectoryError::InvalidSettings { key, .. }) => Some(key),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, AppError>;
