//! Directory settings, Test Settings (preview) and Synchronize now.
//!
//! A run is: read every entry (a failed or partial read ends the run before anything else happens), take a
//! snapshot of the users, plan (pure), and for a sync apply the plan in one transaction that checks the
//! snapshot is still current. The preview stops after planning. Both record the run and its report.

use crate::error::{AppError, Result};
use crate::{Caller, Roster};
use roster_core::directory::{DirectoryKind, DirectorySettings, Secret, TypeSettings};
use roster_core::plan::{
    PlanOptions, ReportCounts, ReportLine, correct_report_for_folders_decided_at_apply, plan_sync,
};
use roster_directory::{Connector, ReadProgress};
use roster_store::{NewRun, RunKind, RunOutcome, RunStatus, RunSummary, StoreError};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicU64, Ordering};
use tracing::Instrument;

const SETTINGS_KEY: &str = "directory";
const PASSWORD_KEY: &str = "directory_password";
const PASSWORD_PURPOSE: &str = "roster:directory:password";
/// A running run whose heartbeat is older than this is taken to be dead (its process crashed).
const STALE_AFTER_SECONDS: i64 = 120;
const HEARTBEAT_SECONDS: u64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncPhase {
    Reading,
    Planning,
    Applying,
}

/// What a front end wants to hear while a run goes on (the CLI draws a progress bar).
pub trait SyncProgress: Send + Sync {
    fn phase(&self, _phase: SyncPhase) {}
    fn entries_read(&self, _total: u64) {}
}

impl SyncProgress for () {}

/// The answer of Test Settings and Synchronize now: the same shape for both.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunReport {
    pub run_id: i64,
    pub kind: RunKind,
    /// True for a preview: nothing was committed.
    pub preview: bool,
    pub directory_type: String,
    pub entries_read: u64,
    pub counts: ReportCounts,
    /// One line per affected user (unchanged users are only counted).
    pub lines: Vec<ReportLine>,
}

struct Counter<'a> {
    read: &'a AtomicU64,
    outer: &'a dyn SyncProgress,
}

impl ReadProgress for Counter<'_> {
    fn entries_read(&self, total_so_far: u64) {
        self.read.store(total_so_far, Ordering::Relaxed);
        self.outer.entries_read(total_so_far);
    }
}

impl Roster {
    /// The stored settings with the password decrypted, or `None` if no directory is configured.
    pub(crate) async fn load_directory_settings(&self) -> Result<Option<DirectorySettings>> {
        let Some(raw) = self.store.get_setting(SETTINGS_KEY).await? else {
            return Ok(None);
        };
        let mut settings: DirectorySettings = serde_json::from_str(&raw)
            .map_err(|e| AppError::Internal(format!("stored directory settings: {e}")))?;
        if matches!(settings, DirectorySettings::None) {
            return Ok(None);
        }
        if let Some(sealed) = self.store.get_setting(PASSWORD_KEY).await?
            && !sealed.is_empty()
        {
            let plain = self.secrets.open(PASSWORD_PURPOSE, &sealed)?;
            if let Some(slot) = settings
                .configured_mut()
                .and_then(|(_, typed)| typed.secret_slot())
            {
                *slot = Some(Secret::new(plain));
            }
        }
        Ok(Some(settings))
    }

    /// The settings as the API and CLI show them: everything but the password, and whether one is set.
    pub async fn directory_settings(&self, caller: &Caller) -> Result<DirectorySettingsView> {
        caller.require_admin("see the directory settings")?;
        let settings = self
            .load_directory_settings()
            .await?
            .unwrap_or(DirectorySettings::None);
        Ok(DirectorySettingsView::of(settings))
    }

    /// Replaces the directory settings. A missing password keeps the stored one (for the same type and
    /// target, see [`keep_or_require_secret`]).
    pub async fn set_directory_settings(
        &self,
        caller: &Caller,
        mut settings: DirectorySettings,
    ) -> Result<DirectorySettingsView> {
        caller.require_admin("change the directory settings")?;
        if matches!(settings, DirectorySettings::Unsupported) {
            return Err(AppError::InvalidSetting {
                key: "type".into(),
                message: format!(
                    "this directory type is not available in this version; use one of: none, {} (active-directory, icewarp and kerio are planned)",
                    DirectoryKind::ALL
                        .iter()
                        .map(|k| k.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        let previous = self.load_directory_settings().await?;
        let secret_given = match settings.configured_mut() {
            Some((kind, typed)) => {
                typed.validate().map_err(|e| AppError::InvalidSetting {
                    key: e.key.to_owned(),
                    message: e.to_string(),
                })?;
                keep_or_require_secret(kind, typed, previous.as_ref())?
            }
            None => false,
        };
        // Everything that can be checked without connecting is checked now (the CA file is read, the
        // filter's matching rules are looked at), so that a mistake shows here and not at the first run.
        // The connector made is cached for the runs and logons that follow; with no directory, the old
        // one (and its service connection) goes.
        if matches!(settings, DirectorySettings::None) {
            *self.directory_cache.lock().await = None;
        } else {
            self.directory(&settings).await?;
        }
        let json =
            serde_json::to_string(&settings).map_err(|e| AppError::Internal(e.to_string()))?;
        let sealed = match settings.secret() {
            Some(p) => self.secrets.seal(PASSWORD_PURPOSE, p.expose())?,
            None => String::new(),
        };
        let now = self.now();
        let actor = caller.actor();
        // The password first: a crash in between leaves the old settings with a new password, never
        // new settings that point at a server with a password meant for another.
        self.store
            .put_setting(
                PASSWORD_KEY,
                &sealed,
                &actor,
                now,
                if secret_given {
                    "directory password changed"
                } else {
                    "directory password kept"
                },
            )
            .await?;
        self.store
            .put_setting(SETTINGS_KEY, &json, &actor, now, &settings.describe())
            .await?;
        Ok(DirectorySettingsView::of(settings))
    }

    /// The connector for these settings, reused while they don't change (so is its service connection).
    pub(crate) async fn directory(&self, settings: &DirectorySettings) -> Result<Connector> {
        let mut hasher = Sha256::new();
        hasher.update(serde_json::to_vec(settings).map_err(|e| AppError::Internal(e.to_string()))?);
        hasher.update(settings.secret().map(Secret::expose).unwrap_or_default());
        let fingerprint: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut cache = self.directory_cache.lock().await;
        if let Some((fp, d)) = cache.as_ref()
            && *fp == fingerprint
        {
            return Ok(d.clone());
        }
        let d = self.connectors.connector(settings)?;
        *cache = Some((fingerprint, d.clone()));
        Ok(d)
    }

    /// Test Settings (`kind = Preview`) or Synchronize now (`kind = Sync`).
    pub async fn run_directory(
        &self,
        caller: &Caller,
        kind: RunKind,
        triggered_by: &str,
        progress: &dyn SyncProgress,
    ) -> Result<RunReport> {
        caller.require_admin("run a directory synchronization")?;
        let settings = self
            .load_directory_settings()
            .await?
            .ok_or(AppError::NoDirectory)?;
        let actor = caller.actor();
        let now = self.now();
        let run_id = self
            .store
            .begin_run(
                &NewRun {
                    kind,
                    triggered_by: triggered_by.to_owned(),
                    actor: actor.clone(),
                    directory_type: settings.type_name().to_owned(),
                },
                now,
                now.plus_seconds(-STALE_AFTER_SECONDS),
            )
            .await?;
        let read = AtomicU64::new(0);
        let result = {
            let heartbeat = self.heartbeat(run_id, &read);
            // The connector is made inside the recorded run: settings stored by an older version, or a
            // CA file that went away since `directory set`, fail a run that the history shows.
            let work = async {
                let directory = self.directory(&settings).await?;
                self.run_steps(run_id, kind, &settings, &directory, &read, progress, &actor)
                    .await
            };
            tokio::pin!(heartbeat);
            tokio::select! {
                r = work => r,
                () = &mut heartbeat => Err(AppError::Internal("heartbeat ended".into())),
            }
        };
        let entries_read = read.load(Ordering::Relaxed);
        let entries_read_i = i64::try_from(entries_read).unwrap_or(i64::MAX);
        match result {
            Ok((counts, lines)) => {
                self.store
                    .finish_run(
                        run_id,
                        &RunOutcome {
                            status: RunStatus::Succeeded,
                            entries_read: entries_read_i,
                            counts: Some(counts),
                            error: None,
                            lines: &lines,
                        },
                        self.now(),
                    )
                    .instrument(tracing::info_span!("record", run_id))
                    .await?;
                Ok(RunReport {
                    run_id,
                    kind,
                    preview: kind == RunKind::Preview,
                    directory_type: settings.type_name().to_owned(),
                    entries_read,
                    counts,
                    lines,
                })
            }
            Err(e) => {
                let message = match &e {
                    AppError::Store(StoreError::StaleSnapshot) => "users were changed by someone else while the synchronization was being planned; nothing was applied; run it again".to_owned(),
                    other => {
                        let text = other.to_string();
                        if text.contains("nothing was changed") {
                            text
                        } else {
                            format!("{text}; nothing was changed")
                        }
                    }
                };
                let code = e.code();
                let kind = e.kind();
                self.store
                    .finish_run(
                        run_id,
                        &RunOutcome {
                            status: RunStatus::Failed,
                            entries_read: entries_read_i,
                            counts: None,
                            error: Some(message.clone()),
                            lines: &[],
                        },
                        self.now(),
                    )
                    .await?;
                Err(AppError::RunFailed {
                    run_id,
                    code,
                    kind,
                    message,
                })
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_steps(
        &self,
        run_id: i64,
        kind: RunKind,
        settings: &DirectorySettings,
        directory: &Connector,
        read: &AtomicU64,
        progress: &dyn SyncProgress,
        actor: &roster_store::Actor,
    ) -> Result<(ReportCounts, Vec<ReportLine>)> {
        progress.phase(SyncPhase::Reading);
        let counter = Counter {
            read,
            outer: progress,
        };
        // The users are loaded while the directory is read: the read mostly waits for the server, and
        // loading 100,000 users takes about half a second of its own. Both run to the end even when the
        // other fails: a read cut off mid-page would leave the service connection mid-search, and the
        // error reported is then always the directory's, which is the one the administrator can act on.
        let (fetched, snapshot) = tokio::join!(
            directory
                .reader
                .read_entries(&counter)
                .instrument(tracing::info_span!("read", run_id)),
            self.store
                .snapshot()
                .instrument(tracing::info_span!("snapshot", run_id))
        );
        let fetched = fetched?;
        let mut snapshot = snapshot?;
        read.store(
            u64::try_from(fetched.entries.len()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        progress.entries_read(read.load(Ordering::Relaxed));
        let fetched_without_id = fetched.without_stable_id;
        progress.phase(SyncPhase::Planning);
        // If someone changed users during the read, load them again: the plan must start from the users
        // as they are now, and the window in which another change makes it stale is only the planning.
        if self.store.user_db_version().await? != snapshot.version {
            snapshot = self
                .store
                .snapshot()
                .instrument(tracing::info_span!("snapshot", run_id, again = true))
                .await?;
        }
        let options = PlanOptions {
            source: directory.kind.name().to_owned(),
            delete_users: settings.delete_users(),
        };
        // Planning 100,000 users takes a moment of CPU: off the async workers, so the heartbeat and other
        // requests keep going.
        let users = snapshot.users;
        let entries = fetched.entries;
        let span = tracing::info_span!("plan", run_id);
        let plan = tokio::task::spawn_blocking(move || {
            span.in_scope(|| plan_sync(&users, entries, &options))
        })
        .await
        .map_err(|e| AppError::Internal(format!("planning failed: {e}")))?;
        let mut counts = plan.counts;
        let mut lines = plan.lines;
        if kind == RunKind::Sync && !plan.changes.is_empty() {
            progress.phase(SyncPhase::Applying);
            let defaults = self.store.default_privileges().await?;
            let applied = self
                .store
                .apply_plan(
                    run_id,
                    snapshot.version,
                    &plan.changes,
                    &defaults,
                    actor,
                    self.now(),
                )
                .instrument(tracing::info_span!("apply", run_id))
                .await?;
            // The store decided some folders by their message count at the apply: the report follows.
            correct_report_for_folders_decided_at_apply(
                &applied.folders_decided_at_apply,
                &plan.changes,
                &plan.deleted_lines,
                &mut counts,
                &mut lines,
            );
        }
        if fetched_without_id > 0 {
            // Said once per run, not per entry: the administrator should know renames can't be followed.
            lines.insert(
                0,
                ReportLine {
                    user: format!("{fetched_without_id} entries"),
                    action: roster_core::plan::ReportAction::Warning,
                    reason: "these entries have no stable id (entryUUID, GUID or nsUniqueId) and are identified by their DN: a rename or a move in the directory will look like a deleted user and a new one".into(),
                    dn: None,
                },
            );
        }
        Ok((counts, lines))
    }

    /// Keeps the run's heartbeat fresh while it works, so another process can tell it is alive.
    async fn heartbeat(&self, run_id: i64, read: &AtomicU64) {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(HEARTBEAT_SECONDS)).await;
            let n = i64::try_from(read.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
            if let Err(e) = self.store.heartbeat_run(run_id, n, self.now()).await {
                tracing::warn!(run_id, error = %e, "couldn't record the run's heartbeat");
            }
        }
    }

    pub async fn list_runs(
        &self,
        caller: &Caller,
        offset: i64,
        limit: i64,
    ) -> Result<roster_store::Page<RunSummary>> {
        caller.require_admin("see directory runs")?;
        Ok(self
            .store
            .list_runs(offset.max(0), limit.clamp(1, crate::PAGE_MAX))
            .await?)
    }

    pub async fn get_run(
        &self,
        caller: &Caller,
        id: i64,
        offset: i64,
        limit: i64,
    ) -> Result<(RunSummary, roster_store::Page<ReportLine>)> {
        caller.require_admin("see directory runs")?;
        let run = self
            .store
            .get_run(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no run #{id}")))?;
        let lines = self
            .store
            .run_lines(id, offset.max(0), limit.clamp(1, crate::RUN_LINES_MAX))
            .await?;
        Ok((run, lines))
    }
}

/// The settings as shown: everything but the secret, and whether one is set (for the types that have
/// one).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DirectorySettingsView {
    #[serde(flatten)]
    pub settings: DirectorySettings,
    /// Whether the service password is stored (never the password itself); absent for types without one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password_set: Option<bool>,
}

impl DirectorySettingsView {
    fn of(settings: DirectorySettings) -> DirectorySettingsView {
        let password_set = settings
            .configured()
            .and_then(|(_, s)| s.secret_spec().map(|_| s.secret().is_some()));
        DirectorySettingsView {
            settings,
            password_set,
        }
    }
}

/// The rule for a type's service secret when its settings are replaced. Given, it is used (and must not
/// be empty: Roster never binds anonymously). Left out, the stored one is kept only for the same type and
/// the same target (`TypeSettings::secret_target`): otherwise pointing `server` elsewhere would send the
/// stored password there, in clear with `encryption = "none"`. Returns whether a new secret was given.
pub(crate) fn keep_or_require_secret(
    kind: DirectoryKind,
    settings: &mut dyn TypeSettings,
    previous: Option<&DirectorySettings>,
) -> Result<bool> {
    let Some(spec) = settings.secret_spec() else {
        return Ok(false);
    };
    let target = settings.secret_target();
    let invalid = |message: String| AppError::InvalidSetting {
        key: spec.key.to_owned(),
        message,
    };
    let Some(slot) = settings.secret_slot() else {
        return Err(AppError::Internal(format!(
            "the {kind} settings name a secret but have no place for it"
        )));
    };
    match slot {
        Some(given) if given.is_empty() => Err(invalid(format!(
            "the {} is empty: Roster never binds anonymously; give {}",
            spec.key, spec.what
        ))),
        Some(_) => Ok(true),
        None => {
            let stored = previous
                .and_then(DirectorySettings::configured)
                .filter(|(previous_kind, _)| *previous_kind == kind)
                .and_then(|(_, p)| p.secret().map(|secret| (p.secret_target(), secret)));
            match stored {
                Some((stored_target, secret)) if stored_target == target => {
                    *slot = Some(secret.clone());
                    Ok(false)
                }
                Some(_) => Err(invalid(format!(
                    "{} changed: give {} again",
                    spec.bound_to, spec.what
                ))),
                None => Err(invalid(format!("give {}", spec.what))),
            }
        }
    }
}
