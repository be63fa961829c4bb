//! The user database behind one [`Store`] trait, with two implementations: SQLite (the embedded default, a
//! file in the data directory) and PostgreSQL (when several instances share the load).
//!
//! Both implementations are the same source (`sql/store.rs` and the files it includes, one per concern,
//! included twice with a different `Db` type), so the SQL can't drift between them; the shared test suite
//! runs on both. Every method is one transaction, and every change writes its audit entry inside that
//! transaction: a change without its audit line, or an audit line without its change, can't exist.
//!
//! The types the trait takes and returns live with their concern (`users`, `runs`, `sync`) and are
//! re-exported here.

pub mod backup;
mod error;
mod lock;
mod postgres;
mod runs;
mod sqlite;
mod sync;
mod users;

use async_trait::async_trait;
use roster_core::plan::{PlannedChanges, ReportLine};
use roster_core::privileges::DefaultPrivileges;
use roster_core::throttle::ThrottleState;
use roster_core::user::{AuditEntry, AuthMethod, Folder, User};
use roster_core::{FolderRight, Privilege, Timestamp, UserName};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub use backup::{BackupInfo, BackupSummary, Companion, RestoreOptions, Restored};
pub use error::StoreError;
pub use lock::DataDirLock;
pub use postgres::PgStore;
pub use runs::{
    CancelOutcome, DIRECTORY_READ_STATE, NewRun, ReadMode, RunControl, RunKind, RunOutcome,
    RunPhase, RunRecord, RunStatus, RunSummary, ScheduleState,
};
pub use sqlite::SqliteStore;
pub use sync::{AppliedPlan, Snapshot};
pub use users::{Credentials, DeletedUser, NewUserRecord, UserPatch};

pub type Result<T> = std::result::Result<T, StoreError>;

/// Statements slower than this, and waits for a pooled connection longer than sqlx's threshold, are
/// logged at [`SLOW_LOG_LEVEL`]. sqlx logs them at WARN by default: on an ordinary sync or a burst of
/// logons that was hundreds of warnings that are not the administrator's business; at INFO they are
/// there for whoever looks into speed (`ROSTER_LOG=info`).
pub(crate) const SLOW_STATEMENT: std::time::Duration = std::time::Duration::from_secs(1);
pub(crate) const SLOW_LOG_LEVEL: log::LevelFilter = log::LevelFilter::Info;

/// Who made a change, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

impl Actor {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Which audit lines to list: each text given must occur in its field, ignoring the case of ASCII
/// letters (PostgreSQL also folds other letters; both match the text as written); an empty or absent
/// text doesn't filter. The default lists every line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Who: a user name, `cli:<os user>`, `schedule`…
    pub actor: Option<String>,
    /// What: `user.privileges`, `logon.failed`… (`user.` gives every change of a user).
    pub action: Option<String>,
    /// Which: a user name, `run #12`, a setting's key…
    pub target: Option<String>,
}

impl AuditFilter {
    /// The texts given, by column, without the empty ones.
    pub fn given(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("actor", &self.actor),
            ("action", &self.action),
            ("target", &self.target),
        ]
        .into_iter()
        .filter_map(|(column, text)| {
            text.as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| (column, t))
        })
    }

    /// Whether no text is given: every line.
    pub fn is_empty(&self) -> bool {
        self.given().next().is_none()
    }
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
}

/// The user database. Implementations: [`SqliteStore`], [`PgStore`].
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Closes the connections, waiting for each to finish what it is doing (a process's last call).
    async fn close(&self);

    /// Creates the built-in administrator if it doesn't exist; true if it was created.
    async fn ensure_admin(&self, password_hash: &str, now: Timestamp) -> Result<bool>;

    async fn list_users(&self, offset: i64, limit: i64) -> Result<Page<User>>;
    /// Users whose name, full name or an address contains `search`, ignoring case, in name order.
    async fn search_users(&self, search: &str, offset: i64, limit: i64) -> Result<Page<User>>;
    async fn get_user(&self, name: &UserName) -> Result<Option<User>>;
    async fn get_user_by_id(&self, id: i64) -> Result<Option<User>>;
    async fn credentials(&self, name: &UserName) -> Result<Option<Credentials>>;
    async fn create_user(
        &self,
        user: &NewUserRecord,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<User>;
    async fn update_user(
        &self,
        id: i64,
        patch: &UserPatch,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<User>;
    async fn delete_user(&self, id: i64, actor: &Actor, now: Timestamp) -> Result<DeletedUser>;
    /// Replaces the global privileges, and the folder rights where `folders` is given (folder id → rights;
    /// an empty set removes the access).
    async fn set_privileges(
        &self,
        id: i64,
        privileges: &BTreeSet<Privilege>,
        folders: Option<&[(i64, BTreeSet<FolderRight>)]>,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<User>;
    async fn set_auth(
        &self,
        id: i64,
        auth: AuthMethod,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<User>;
    /// Sets the local password hash; ends the user's other sessions.
    async fn set_password_hash(
        &self,
        id: i64,
        hash: &str,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<()>;

    async fn list_folders(&self) -> Result<Vec<Folder>>;
    async fn get_folder(&self, id: i64) -> Result<Option<Folder>>;
    async fn set_message_count(
        &self,
        id: i64,
        count: i64,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Folder>;

    async fn get_setting(&self, key: &str) -> Result<Option<String>>;
    /// Writes a setting and its audit entry (`details` must not hold a secret).
    async fn put_setting(
        &self,
        key: &str,
        value: &str,
        actor: &Actor,
        now: Timestamp,
        details: &str,
    ) -> Result<()>;
    async fn default_privileges(&self) -> Result<DefaultPrivileges>;

    async fn audit(
        &self,
        actor: &Actor,
        action: &str,
        target: &str,
        details: &str,
        now: Timestamp,
    ) -> Result<()>;
    /// The audit log, newest first.
    async fn list_audit(&self, offset: i64, limit: i64) -> Result<Page<AuditEntry>> {
        self.search_audit(&AuditFilter::default(), offset, limit)
            .await
    }
    /// The audit lines `filter` keeps, newest first; the filtering and the paging are the database's.
    async fn search_audit(
        &self,
        filter: &AuditFilter,
        offset: i64,
        limit: i64,
    ) -> Result<Page<AuditEntry>>;

    async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<()>;
    /// Removes the sessions expired at `now`; returns how many. (Not part of `create_session`: a logon
    /// would pay a write for it each time; the app calls it now and then.)
    async fn purge_expired_sessions(&self, now: Timestamp) -> Result<u64>;
    /// The user of a live session (expired sessions are removed and give `None`).
    async fn session_user(&self, token_hash: &str, now: Timestamp) -> Result<Option<User>>;
    async fn delete_session(&self, token_hash: &str) -> Result<()>;

    /// An account's failed logons in a row (issue 20), by the name as typed, case-folded.
    async fn logon_throttle(&self, name_key: &str) -> Result<Option<ThrottleState>>;
    async fn set_logon_throttle(&self, name_key: &str, state: &ThrottleState) -> Result<()>;
    /// Forgets an account's failed logons (a success, or an administrator); says whether there were any.
    async fn clear_logon_throttle(&self, name_key: &str) -> Result<bool>;

    async fn snapshot(&self) -> Result<Snapshot>;
    /// The users a change can touch ([`roster_core::plan::Touched::touches`]), with the version, for a
    /// run that read only what changed: planned with the touched scope, they give the plan the whole
    /// snapshot would. A large change loads everyone.
    async fn snapshot_touched(&self, touched: &roster_core::plan::Touched) -> Result<Snapshot>;
    /// How many users are linked to entries of the directory type `source`.
    async fn count_linked(&self, source: &str) -> Result<u64>;
    /// The user database's version: it changes with every change to users, so a snapshot of an older
    /// version is stale.
    async fn user_db_version(&self) -> Result<i64>;
    /// Starts a run, or fails with [`StoreError::RunInProgress`]. A running run whose heartbeat is older
    /// than `stale_before` is marked abandoned first (its process died).
    async fn begin_run(&self, run: &NewRun, now: Timestamp, stale_before: Timestamp)
    -> Result<i64>;
    /// Keeps a running run alive (its heartbeat, entries read so far and phase) and says whether it should
    /// go on: a cancel may have been requested from another process.
    async fn heartbeat_run(
        &self,
        run_id: i64,
        entries_read: i64,
        phase: RunPhase,
        now: Timestamp,
    ) -> Result<RunControl>;
    /// Asks a running run to stop ([`StoreError::RunFinished`] if it isn't running: too late), with its
    /// audit line. A run whose heartbeat is older than `stale_before` has no process left to stop it: it
    /// is recorded as cancelled at once.
    async fn request_cancel(
        &self,
        run_id: i64,
        actor: &Actor,
        now: Timestamp,
        stale_before: Timestamp,
    ) -> Result<CancelOutcome>;
    /// Applies a plan and records the run as succeeded with its report, in one transaction, if the user
    /// database is still at `expected_version` ([`StoreError::StaleSnapshot`] otherwise: plan again), the
    /// run is still running ([`StoreError::RunNotRunning`]) and no cancel was requested
    /// ([`StoreError::CancelRequested`]). `record` is corrected for the folders decided at the apply.
    #[allow(clippy::too_many_arguments)]
    async fn apply_plan(
        &self,
        run_id: i64,
        expected_version: i64,
        changes: &PlannedChanges,
        defaults: &DefaultPrivileges,
        record: &mut RunRecord,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<AppliedPlan>;
    /// Records how a run ended (a preview, a sync with nothing to apply, a failure, a cancellation).
    async fn finish_run(&self, run_id: i64, outcome: &RunOutcome<'_>, now: Timestamp)
    -> Result<()>;
    async fn list_runs(&self, offset: i64, limit: i64) -> Result<Page<RunSummary>>;
    async fn get_run(&self, id: i64) -> Result<Option<RunSummary>>;
    /// The scheduled sync's state, if a schedule is set.
    async fn schedule_state(&self) -> Result<Option<ScheduleState>>;
    /// Replaces it (the settings changed); `None` removes it.
    async fn set_schedule_state(&self, state: Option<&ScheduleState>) -> Result<()>;
    /// Moves the next due time from `expected_due` to `next_due`, with this failure count, if it is still
    /// `expected_due`: of several instances claiming one due run, exactly one gets `true`.
    async fn move_schedule(
        &self,
        expected_due: Timestamp,
        next_due: Timestamp,
        failures: i64,
    ) -> Result<bool>;
    /// The users a run stopped by the deletion guard would have deleted (`None` for any other run).
    async fn planned_deletions(&self, id: i64) -> Result<Option<Vec<i64>>>;
    async fn run_lines(&self, id: i64, offset: i64, limit: i64) -> Result<Page<ReportLine>>;

    /// Checks the invariants the schema can't express, and that no run is still marked running; returns one
    /// line per problem (empty = consistent). Every test that writes ends with it.
    async fn check_consistency(&self) -> Result<Vec<String>>;
    /// The invariants alone, with (SQLite) `PRAGMA integrity_check`: what `roster db check` reports on a
    /// live database, where a run may be running.
    async fn check_invariants(&self) -> Result<Vec<String>>;

    /// Writes a consistent copy of the database, with `companions` (files of the data directory a restore
    /// needs too: the secret key), to the new file `dest`, readable by its owner only (`backup.rs`).
    /// SQLite only: PostgreSQL answers [`StoreError::BackupUnsupported`] (pg_dump's job).
    async fn backup(
        &self,
        dest: &Path,
        companions: &[Companion],
        now: Timestamp,
    ) -> Result<BackupSummary>;
}

/// Where the user database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// `roster.db` in this directory (created if missing).
    Sqlite(PathBuf),
    Postgres(String),
}

impl StoreLocation {
    pub fn sqlite_file(data_dir: &Path) -> PathBuf {
        data_dir.join("roster.db")
    }
}

/// Opens (and migrates) the store.
pub async fn open(location: &StoreLocation) -> Result<std::sync::Arc<dyn Store>> {
    Ok(match location {
        StoreLocation::Sqlite(dir) => std::sync::Arc::new(SqliteStore::open(dir).await?),
        StoreLocation::Postgres(url) => std::sync::Arc::new(PgStore::open(url).await?),
    })
}
