//! The database as a whole: a backup of it (`roster backup`) and its check (`roster db check`). A restore
//! replaces the database of a stopped data directory, so no `Roster` is running: it is the binary's, like
//! opening the store (`roster_store::backup::restore`).

use crate::error::{AppError, Result};
use crate::{Caller, Roster, RunStatus};
use roster_store::{BackupSummary, Companion};
use serde::Serialize;
use std::path::Path;

/// What `roster db check` found.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseCheck {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    pub users: i64,
    /// One line per broken invariant; empty when the database is consistent.
    pub problems: Vec<String>,
    /// What is worth knowing but not wrong (a run marked running).
    pub notes: Vec<String>,
}

impl Roster {
    /// Writes a consistent copy of the database with `companions` (the secret key) to the new file `dest`
    /// (SQLite; PostgreSQL answers `ST024-backup-unsupported`: pg_dump's job), and records it in the
    /// audit log, since the file holds password hashes and the key.
    pub async fn backup_database(
        &self,
        caller: &Caller,
        dest: &Path,
        companions: &[Companion],
    ) -> Result<BackupSummary> {
        caller.require_admin("back up the database")?;
        let summary = self.store.backup(dest, companions, self.now()).await?;
        let carried: Vec<&str> = companions.iter().map(|c| c.name.as_str()).collect();
        self.store
            .audit(
                &caller.actor(),
                "database.backup",
                &summary.path.display().to_string(),
                &format!(
                    "{} users, schema version {}, {} bytes; carries {}",
                    summary.users,
                    summary.schema_version,
                    summary.bytes,
                    if carried.is_empty() {
                        "no other file".to_owned()
                    } else {
                        carried.join(", ")
                    }
                ),
                self.now(),
            )
            .await?;
        Ok(summary)
    }

    /// The store's invariants (and, on SQLite, the file's integrity), and that the stored directory
    /// password can be decrypted with the key this process has: after a restore with the wrong key, or
    /// with ROSTER_SECRET_KEY set to another one, every run would fail on it.
    pub async fn check_database(&self, caller: &Caller) -> Result<DatabaseCheck> {
        caller.require_admin("check the database")?;
        let mut problems = self.store.check_invariants().await?;
        match self.load_directory_settings().await {
            Ok(_) => {}
            Err(AppError::SecretKey(detail)) => problems.push(format!(
                "the stored directory password can't be decrypted with the key in use (secret.key in the data directory, or ROSTER_SECRET_KEY): {detail}"
            )),
            Err(e) => problems.push(format!("the stored directory settings can't be read: {e}")),
        }
        let users = self.store.list_users(0, 1).await?.total;
        // At most one run is running (a unique index), and no later one can have started: the newest few.
        let notes = self
            .store
            .list_runs(0, 5)
            .await?
            .items
            .into_iter()
            .filter(|r| r.status == RunStatus::Running)
            .map(|r| {
                format!(
                    "run #{} (a {} started at {} by {}) is marked running: if no process runs it any more, the next run takes it for dead",
                    r.id,
                    r.kind.as_str(),
                    r.started_at,
                    r.actor
                )
            })
            .collect();
        Ok(DatabaseCheck {
            backend: self.store.backend(),
            users,
            problems,
            notes,
        })
    }
}
