//! The user database behind one [`Store`] trait, with two implementations: SQLite (the embedded default, a
//! file in the data directory) and PostgreSQL (when several instances share the load).
//!
//! Both implementations are the same source (`queries.rs`, included twice with a different `Db` type), so
//! the SQL can't drift between them; the shared test suite runs on both. Every method is one transaction,
//! and every change writes its audit entry inside that transaction: a change without its audit line, or an
//! audit line without its change, can't exist.

mod error;
mod postgres;
mod sqlite;

use async_trait::async_trait;
use roster_core::plan::{CurrentUser, PlannedChanges, ReportCounts, ReportLine};
use roster_core::privileges::DefaultPrivileges;
use roster_core::user::{AuditEntry, AuthMethod, DirectoryLink, Folder, User};
use roster_core::{EmailAddress, FolderRight, Privilege, Timestamp, UserName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

pub use error::StoreError;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

pub type Result<T> = std::result::Result<T, StoreError>;

/// Who made a change, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

impl Actor {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user to create by hand (API or CLI).
#[derive(Debug, Clone)]
pub struct NewUserRecord {
    pub name: UserName,
    pub full_name: String,
    pub emails: Vec<EmailAddress>,
    pub auth: AuthMethod,
    /// Argon2id PHC string, for local users.
    pub password_hash: Option<String>,
    pub privileges: BTreeSet<Privilege>,
    pub own_folder_rights: BTreeSet<FolderRight>,
}

/// Changes to a user's details; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub full_name: Option<String>,
    pub emails: Option<Vec<EmailAddress>>,
}

/// What logon needs to know about a user, and nothing the API shows.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user_id: i64,
    pub name: UserName,
    pub auth: AuthMethod,
    pub password_hash: Option<String>,
    pub can_log_on: bool,
    pub link: Option<DirectoryLink>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedUser {
    pub name: UserName,
    /// The folder held messages and stays, without an owner.
    pub folder_kept: bool,
}

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

    fn parse(raw: &str) -> RunStatus {
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

/// What applying a plan decided that the plan could not know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedPlan {
    /// Deleted users whose archive folder was decided otherwise than planned, with whether it was kept.
    /// A message count doesn't make a snapshot stale (the archive files messages all the time), so the
    /// count may change between the plan and the apply; the store keeps or deletes the folder by its
    /// count at the apply, and the run's report follows it.
    pub folders_decided_at_apply: Vec<(i64, bool)>,
}

/// The users as the planner sees them, and the version of the user database they were read at.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub version: i64,
    pub users: Vec<CurrentUser>,
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

    /// Creates the built-in administrator if it doesn't exist; true if it was created.
    async fn ensure_admin(&self, password_hash: &str, now: Timestamp) -> Result<bool>;

    async fn list_users(&self, offset: i64, limit: i64) -> Result<Page<User>>;
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
    async fn list_audit(&self, offset: i64, limit: i64) -> Result<Page<AuditEntry>>;

    async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<()>;
    /// The user of a live session (expired sessions are removed and give `None`).
    async fn session_user(&self, token_hash: &str, now: Timestamp) -> Result<Option<User>>;
    async fn delete_session(&self, token_hash: &str) -> Result<()>;

    async fn snapshot(&self) -> Result<Snapshot>;
    /// The user database's version: it changes with every change to users, so a snapshot of an older
    /// version is stale.
    async fn user_db_version(&self) -> Result<i64>;
    /// Starts a run, or fails with [`StoreError::RunInProgress`]. A running run whose heartbeat is older
    /// than `stale_before` is marked abandoned first (its process died).
    async fn begin_run(&self, run: &NewRun, now: Timestamp, stale_before: Timestamp)
    -> Result<i64>;
    async fn heartbeat_run(&self, run_id: i64, entries_read: i64, now: Timestamp) -> Result<()>;
    /// Applies a plan in one transaction, if the user database is still at `expected_version`
    /// ([`StoreError::StaleSnapshot`] otherwise: plan again).
    async fn apply_plan(
        &self,
        run_id: i64,
        expected_version: i64,
        changes: &PlannedChanges,
        defaults: &DefaultPrivileges,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<AppliedPlan>;
    async fn finish_run(&self, run_id: i64, outcome: &RunOutcome<'_>, now: Timestamp)
    -> Result<()>;
    async fn list_runs(&self, offset: i64, limit: i64) -> Result<Page<RunSummary>>;
    async fn get_run(&self, id: i64) -> Result<Option<RunSummary>>;
    async fn run_lines(&self, id: i64, offset: i64, limit: i64) -> Result<Page<ReportLine>>;

    /// Checks the invariants the schema can't express; returns one line per problem (empty = consistent).
    async fn check_consistency(&self) -> Result<Vec<String>>;
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
