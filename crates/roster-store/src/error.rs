//! Store errors. Each has a stable code (`code()`) that the API and the CLI show, so that a message can be
//! searched for and scripts can tell failures apart.

use roster_core::Timestamp;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a user named {0:?} already exists (user names are compared without regard to case)")]
    DuplicateUserName(String),
    #[error("the address {address} already belongs to user {owner}")]
    DuplicateEmail { address: String, owner: String },
    #[error("{0} not found")]
    NotFound(String),
    #[error("the built-in administrator can't be {0}")]
    BuiltinAdmin(&'static str),
    #[error(
        "another directory run (#{run_id}, a {kind} started {started_at} by {actor}) is in progress; wait for it to finish and try again. If the process running it was stopped, the run is taken for dead after {dead_after}, once it has been silent long enough"
    )]
    RunInProgress {
        run_id: i64,
        kind: String,
        actor: String,
        started_at: Timestamp,
        /// When its heartbeat will have been silent for long enough that the next run takes it for dead:
        /// an administrator whose run was killed learns when to try again, instead of guessing.
        dead_after: Timestamp,
    },
    #[error("the user database changed while the plan was made")]
    StaleSnapshot,
    #[error(
        "run #{0} is no longer running (another process took it for dead after its heartbeat stopped); nothing was applied; run it again"
    )]
    RunNotRunning(i64),
    #[error("run #{run_id} has already {status}; it can't be cancelled any more")]
    RunFinished { run_id: i64, status: &'static str },
    #[error("{by} asked to cancel run #{run_id}; nothing was applied")]
    CancelRequested { run_id: i64, by: String },
    #[error(
        "run #{run_id} is not a run stopped by the deletion guard, or it was approved already; nothing was applied (see roster runs show {run_id})"
    )]
    NotApprovable { run_id: i64 },
    #[error(
        "the database is locked by another process and stayed locked for too long; try again, and check that no other program holds it open"
    )]
    Locked,
    #[error(
        "the database file {path} is damaged or is not a Roster database ({detail}); restore it from a backup or move it away to start afresh"
    )]
    Corrupt { path: String, detail: String },
    #[error(
        "this database was written by a newer version of Roster (it has migration {found}, this version knows up to {known}); run that newer version, or restore a backup made by this one"
    )]
    NewerSchema { found: i64, known: i64 },
    #[error(
        "the database gave no connection in time ({0}): the PostgreSQL server may be down, restarting or overloaded, or another process holds the SQLite database; try again in a moment (Roster reconnects by itself)"
    )]
    Unavailable(String),
    #[error(
        "the disk holding the database is full ({0}); free space in the data directory (or the PostgreSQL server's disk) and run it again"
    )]
    DiskFull(String),
    #[error("can't open the database: {0}")]
    Open(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("invalid value in the database: {0}")]
    Invalid(String),
    #[error("{path} is not a Roster backup ({detail}); give a file made by `roster backup`")]
    NotABackup { path: String, detail: String },
    #[error("{path} is a Roster backup but can't be restored: {detail}")]
    BackupUnusable { path: String, detail: String },
    #[error(
        "this backup was made by a newer version of Roster (it has {what} {found}, this version knows up to {known}); restore it with that version or a later one"
    )]
    BackupNewer {
        what: &'static str,
        found: i64,
        known: i64,
    },
    #[error(
        "{0} already exists; a backup never overwrites a file: give a new name, or move the old file away"
    )]
    BackupFileExists(String),
    #[error(
        "a Roster process is using the data directory {0} (roster serve, or another roster command); stop it first (e.g. systemctl stop roster), then restore"
    )]
    DataDirInUse(String),
    #[error(
        "a restore is replacing the database in {0}; wait for `roster restore` to finish, then start again"
    )]
    RestoreInProgress(String),
    #[error(
        "the data directory {0} already holds a database; to replace it with the backup, give --force: the database and its secret key are then kept in a before-restore-… directory beside it, not deleted"
    )]
    DatabaseExists(String),
    #[error(
        "`roster backup` and `roster restore` copy the embedded SQLite database, and this Roster uses PostgreSQL: back it up with pg_dump (pg_dump --format=custom --file=roster.pgdump \"$ROSTER_DATABASE_URL\"), restore it with pg_restore, and keep ROSTER_SECRET_KEY with the dump (see the README, Backup and restore)"
    )]
    BackupUnsupported,
    #[error("backup or restore failed: {0}")]
    BackupFailed(String),
}

impl StoreError {
    /// The stable, greppable code.
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::DuplicateUserName(_) => "ST001-duplicate-user-name",
            StoreError::DuplicateEmail { .. } => "ST002-duplicate-email",
            StoreError::NotFound(_) => "ST003-not-found",
            StoreError::BuiltinAdmin(_) => "ST004-builtin-admin",
            StoreError::RunInProgress { .. } => "ST005-run-in-progress",
            StoreError::StaleSnapshot => "ST006-stale-snapshot",
            StoreError::Locked => "ST007-database-locked",
            StoreError::Corrupt { .. } => "ST008-database-corrupt",
            StoreError::NewerSchema { .. } => "ST009-database-newer",
            StoreError::Open(_) => "ST010-database-open",
            StoreError::Database(_) => "ST011-database",
            StoreError::Invalid(_) => "ST012-invalid-value",
            StoreError::RunNotRunning(_) => "ST013-run-not-running",
            StoreError::RunFinished { .. } => "ST014-run-finished",
            StoreError::CancelRequested { .. } => "ST015-cancel-requested",
            StoreError::NotApprovable { .. } => "ST016-not-approvable",
            StoreError::NotABackup { .. } => "ST017-not-a-backup",
            StoreError::BackupUnusable { .. } => "ST018-backup-unusable",
            StoreError::BackupNewer { .. } => "ST019-backup-newer",
            StoreError::BackupFileExists(_) => "ST020-backup-file-exists",
            StoreError::DataDirInUse(_) => "ST021-data-dir-in-use",
            StoreError::RestoreInProgress(_) => "ST022-restore-in-progress",
            StoreError::DatabaseExists(_) => "ST023-database-exists",
            StoreError::BackupUnsupported => "ST024-backup-unsupported",
            StoreError::BackupFailed(_) => "ST025-backup-failed",
            StoreError::DiskFull(_) => "ST026-disk-full",
            StoreError::Unavailable(_) => "ST027-database-unavailable",
        }
    }

    pub(crate) fn from_sqlx(e: sqlx::Error) -> StoreError {
        match &e {
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                // SQLite: 5 BUSY, 6 LOCKED (and extended codes 261, 517, 262); 26 NOTADB, 11 CORRUPT.
                if matches!(code.as_ref(), "5" | "6" | "261" | "517" | "262") {
                    return StoreError::Locked;
                }
                if matches!(code.as_ref(), "26" | "11") {
                    return StoreError::Corrupt {
                        path: String::from("(the SQLite file)"),
                        detail: db.message().to_owned(),
                    };
                }
                // SQLite 13 FULL; PostgreSQL 53100 disk_full.
                if matches!(code.as_ref(), "13" | "53100") {
                    return StoreError::DiskFull(db.message().to_owned());
                }
                // PostgreSQL: 55P03 lock_not_available, 40P01 deadlock
                if matches!(code.as_ref(), "55P03" | "40P01" | "40001") {
                    return StoreError::Locked;
                }
                StoreError::Database(db.message().to_owned())
            }
            sqlx::Error::PoolTimedOut => StoreError::Unavailable(
                "no connection free or possible within the pool's wait".into(),
            ),
            sqlx::Error::Io(io) => StoreError::Unavailable(io.to_string()),
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                StoreError::Invalid(e.to_string())
            }
            _ => StoreError::Database(e.to_string()),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::from_sqlx(e)
    }
}
