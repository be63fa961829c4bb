//! Directory settings, Test Settings (preview) and Synchronize now.
//!
//! A run is: read every entry (a failed or partial read ends the run before anything else happens), take a
//! snapshot of the users, plan (pure), and for a sync apply the plan in one transaction that checks the
//! snapshot is still current. The preview stops after planning. Both record the run and its report: a sync
//! that applies records it in the apply's transaction, so a crash can't leave applied users behind a run
//! that says otherwise.
//!
//! A run has a deadline, and an administrator can cancel it, from this process or another (the request is
//! stored; the run's heartbeat sees it). Either stops the run while it reads or plans, which changes
//! nothing; a sync that has begun to apply runs to its commit.

use crate::error::{AppError, Result};
use crate::observe::{ReadMode, RunEnd, RunFinished};
use crate::{Caller, Roster};
use roster_core::directory::DirectoryEntry;
use roster_core::directory::{DirectoryKind, DirectorySettings, GuardLimit, Secret, TypeSettings};
use roster_core::plan::{
    PlanOptions, PreparedEntries, ReportCounts, ReportLine, SyncPlan, plan_sync_prepared,
};
use roster_directory::{Connector, ReadProgress};
use roster_store::{
    Actor, NewRun, RunControl, RunKind, RunOutcome, RunRecord, RunStatus, RunSummary, StoreError,
};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::watch;
use tracing::Instrument;

/// Where a run is; the CLI's progress bar and `GET /api/v1/directory/runs/{id}` show it.
pub use roster_store::RunPhase as SyncPhase;

const SETTINGS_KEY: &str = "directory";
const PASSWORD_KEY: &str = "directory_password";
const PASSWORD_PURPOSE: &str = "roster:directory:password";
/// A running run whose heartbeat is older than this is taken to be dead (its process crashed).
const STALE_AFTER_SECONDS: i64 = 120;
/// How often a run records that it is alive (and how far it got), and looks for a cancel request made by
/// another process.
const HEARTBEAT_SECONDS: u64 = 5;
/// How long a run may take unless told otherwise ([`Roster::with_run_deadline`]): generous, since a first
/// sync of 100,000 users from a slow directory takes minutes, but a run that waits forever on a directory
/// that never answers (or on an LDIF "file" that is a pipe) must not hold the run slot until a restart.
pub const DEFAULT_RUN_DEADLINE_SECONDS: u64 = 3600;
/// How long stopping the server waits for its runs to record that they were stopped.
const STOP_WAIT_SECONDS: u64 = 60;

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
    /// For a preview whose plan the deletion guard would stop: Synchronize now would apply nothing and
    /// wait for an approval (a line at the top of the report says so too).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_guard: Option<GuardNotice>,
    /// One line per affected user (unchanged users are only counted).
    pub lines: Vec<ReportLine>,
    /// How the directory was read: `full` or `incremental` (absent for a run of one user).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_mode: Option<ReadMode>,
}

/// What the deletion guard says about a plan.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GuardNotice {
    /// The users the plan deletes, or suspends for the grace period.
    pub deletions: u64,
    /// Of them, the users it suspends.
    pub suspended: u64,
    /// The limit it passes.
    pub limit: GuardLimit,
}

/// A run started in the background ([`Roster::start_directory_run`]): follow it at
/// `GET /api/v1/directory/runs/{run_id}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RunStarted {
    pub run_id: i64,
    pub kind: RunKind,
    /// `running`.
    pub status: RunStatus,
}

/// Why a run of this process is asked to stop.
#[derive(Debug, Clone)]
enum Stop {
    /// Cancelled, by this administrator or by the server stopping.
    Cancelled(String),
    /// Another process took the run for dead (or cancelled it as such): it must not go on.
    Lost,
}

/// A run going on in this process: its progress, fresher than its heartbeat, and how to stop it.
#[derive(Debug)]
pub(crate) struct LiveRun {
    read: AtomicU64,
    phase: std::sync::Mutex<SyncPhase>,
    stop: watch::Sender<Option<Stop>>,
}

impl LiveRun {
    fn new() -> LiveRun {
        LiveRun {
            read: AtomicU64::new(0),
            phase: std::sync::Mutex::new(SyncPhase::Reading),
            stop: watch::Sender::new(None),
        }
    }

    fn phase(&self) -> SyncPhase {
        self.phase.lock().map_or(SyncPhase::Reading, |p| *p)
    }

    fn set_phase(&self, phase: SyncPhase) {
        if let Ok(mut p) = self.phase.lock() {
            *p = phase;
        }
    }

    fn entries_read(&self) -> u64 {
        self.read.load(Ordering::Relaxed)
    }

    /// The first reason given is the one the run is recorded with.
    fn stop(&self, why: Stop) {
        self.stop.send_if_modified(|s| {
            if s.is_none() {
                *s = Some(why);
                true
            } else {
                false
            }
        });
    }
}

/// The runs going on in this process, by id.
#[derive(Debug, Default)]
pub(crate) struct LiveRuns(std::sync::Mutex<HashMap<i64, Arc<LiveRun>>>);

impl LiveRuns {
    fn insert(&self, id: i64, run: Arc<LiveRun>) {
        if let Ok(mut runs) = self.0.lock() {
            runs.insert(id, run);
        }
    }

    fn get(&self, id: i64) -> Option<Arc<LiveRun>> {
        self.0.lock().ok().and_then(|runs| runs.get(&id).cloned())
    }

    fn remove(&self, id: i64) {
        if let Ok(mut runs) = self.0.lock() {
            runs.remove(&id);
        }
    }

    fn all(&self) -> Vec<Arc<LiveRun>> {
        self.0
            .lock()
            .map(|runs| runs.values().cloned().collect())
            .unwrap_or_default()
    }

    fn is_empty(&self) -> bool {
        self.0.lock().map(|runs| runs.is_empty()).unwrap_or(true)
    }
}

/// Takes a run off the live runs when its work ends, however it ends (its task dropped, too).
struct Registered<'a> {
    runs: &'a LiveRuns,
    id: i64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.runs.remove(self.id);
    }
}

/// A run recorded as running, not yet at work.
struct BegunRun {
    run_id: i64,
    kind: RunKind,
    settings: DirectorySettings,
    actor: Actor,
    live: Arc<LiveRun>,
    /// For an approval: the stopped run whose deletions it may apply.
    approves: Option<Approval>,
    /// A run for one user (`roster sync --user NAME`): only that user's entry is read and planned.
    only: Option<String>,
    /// When it was recorded as running (its duration, for the observer).
    started: std::time::Instant,
}

/// An approval of a run the deletion guard stopped: its id and the users its plan deleted (sorted).
#[derive(Debug, Clone)]
struct Approval {
    stopped: i64,
    deletions: Vec<i64>,
}

/// Passes a run's progress to its live record and to the front end's.
struct Tracker<'a> {
    live: &'a LiveRun,
    outer: &'a dyn SyncProgress,
}

impl Tracker<'_> {
    fn phase(&self, phase: SyncPhase) {
        self.live.set_phase(phase);
        self.outer.phase(phase);
    }

    fn read(&self, total: u64) {
        self.live.read.store(total, Ordering::Relaxed);
        self.outer.entries_read(total);
    }
}

impl ReadProgress for Tracker<'_> {
    fn entries_read(&self, total_so_far: u64) {
        self.read(total_so_far);
    }
}

/// A full read's progress that takes each page as it is read and prepares its entries for the plan
/// (rule 1's work on each entry, `PreparedEntries`) on a blocking thread, while the directory sends the
/// next page (issue 26, item 2): planning then starts the moment the last page is in, with that work
/// done. The pages move to the thread, so nothing is copied and the entries take no more memory than
/// they did. The read stays all or nothing: a read that fails drops what was prepared.
struct PreparingProgress<'a> {
    tracker: &'a Tracker<'a>,
    pages: std::sync::mpsc::Sender<Vec<DirectoryEntry>>,
    prepared: tokio::task::JoinHandle<PreparedEntries>,
}

impl<'a> PreparingProgress<'a> {
    fn start(tracker: &'a Tracker<'a>, run_id: i64) -> PreparingProgress<'a> {
        let (pages, arriving) = std::sync::mpsc::channel::<Vec<DirectoryEntry>>();
        let span = tracing::info_span!("prepare", run_id);
        let prepared = tokio::task::spawn_blocking(move || {
            let mut prepared = PreparedEntries::default();
            // Until the read ends and drops its end of the channel.
            for page in arriving {
                span.in_scope(|| prepared.add(page));
            }
            prepared
        });
        PreparingProgress {
            tracker,
            pages,
            prepared,
        }
    }

    /// The entries prepared from the pages handed over, once the read is over.
    async fn finish(self) -> Result<PreparedEntries> {
        let PreparingProgress {
            pages, prepared, ..
        } = self;
        drop(pages);
        prepared
            .await
            .map_err(|e| AppError::Internal(format!("preparing the entries failed: {e}")))
    }
}

impl ReadProgress for PreparingProgress<'_> {
    fn entries_read(&self, total_so_far: u64) {
        self.tracker.read(total_so_far);
    }

    fn page_read(&self, page: &mut Vec<DirectoryEntry>) {
        // The thread only ends when this end is dropped; should it have ended anyway, the page stays
        // with the read and is prepared with the rest at the end.
        // The read's vector keeps a page's room for the next page.
        let full = std::mem::replace(page, Vec::with_capacity(page.capacity()));
        if let Err(std::sync::mpsc::SendError(back)) = self.pages.send(full) {
            *page = back;
        }
    }
}

/// What stops a run's work before it applies anything: a cancel, another process taking the run for dead,
/// or the deadline.
struct StopSignals {
    run_id: i64,
    stop: watch::Receiver<Option<Stop>>,
    deadline: tokio::time::Instant,
    seconds: u64,
}

impl StopSignals {
    fn error(&self, why: &Stop) -> AppError {
        match why {
            Stop::Cancelled(by) => AppError::RunCancelled { by: by.clone() },
            Stop::Lost => AppError::Store(StoreError::RunNotRunning(self.run_id)),
        }
    }

    /// Runs `work` unless the run is stopped first; then `work` is dropped where it waits (a read cut
    /// off, a snapshot's read transaction rolled back), which changes nothing.
    async fn until_stopped<T>(&mut self, work: impl Future<Output = Result<T>>) -> Result<T> {
        let deadline = self.deadline;
        let seconds = self.seconds;
        let stop = &mut self.stop;
        let stopped = async move {
            let why = stop
                .wait_for(Option::is_some)
                .await
                .ok()
                .map(|r| (*r).clone());
            match why {
                Some(why) => why,
                // The sender lives as long as the run: never.
                None => std::future::pending().await,
            }
        };
        let why = tokio::select! {
            r = work => return r,
            () = tokio::time::sleep_until(deadline) => return Err(AppError::RunDeadline { seconds }),
            why = stopped => why,
        };
        match why {
            Some(why) => Err(self.error(&why)),
            None => Err(AppError::Internal("a run was stopped for no reason".into())),
        }
    }

    /// Whether the run may go on to apply its plan.
    fn check(&self) -> Result<()> {
        if tokio::time::Instant::now() >= self.deadline {
            return Err(AppError::RunDeadline {
                seconds: self.seconds,
            });
        }
        match &*self.stop.borrow() {
            Some(why) => Err(self.error(why)),
            None => Ok(()),
        }
    }
}

/// A run's work done: its report, and whether it is recorded already (a sync that applied records its
/// outcome in the apply's transaction).
struct Done {
    counts: ReportCounts,
    lines: Vec<ReportLine>,
    recorded: bool,
    read_mode: Option<ReadMode>,
    /// The read state to store when the run is recorded (a sync that wasn't stopped).
    read_state: Option<String>,
    /// What the deletion guard said: for a sync, that it stopped (nothing applied); for a preview, that
    /// the sync would stop.
    guard: Option<GuardStop>,
}

/// A plan the deletion guard stops.
struct GuardStop {
    notice: GuardNotice,
    /// The users it deletes, sorted: an approval must find the same ones.
    planned: Vec<i64>,
}

/// A plan, what it was made from, and what the guards need to know.
struct Planned {
    plan: SyncPlan,
    /// The user database version it was made from.
    version: i64,
    /// Warning lines for the top of the report: the read's notes (the scope it applied, what it left
    /// out) and, if entries have no stable id, what identifies them.
    header: Vec<ReportLine>,
    /// Users linked to this directory (the deletion guard's share is of these).
    linked: u64,
    read_mode: Option<ReadMode>,
    /// The directory's read state after this read (the cookie to read from next time).
    read_state: Option<String>,
}

/// The directory's read state, stored as JSON under `DIRECTORY_READ_STATE` with the run that read it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct ReadState {
    /// The incremental read's cookie, base64.
    cookie: String,
    /// The settings it belongs to (a hash): other settings, another scope, so a full read.
    settings: String,
    /// When the last full read was (ms), for the periodic full read.
    full_read_at: i64,
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
        let schedule = self.store.schedule_state().await?;
        Ok(DirectorySettingsView::of(settings, schedule))
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
                    "this directory type is not available in this version; use one of: none, {}",
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
        // The schedule starts again from now; a schedule left as it was keeps its next run.
        let previous_schedule = self.store.schedule_state().await?;
        let schedule = settings.schedule();
        let state = match (schedule.parsed(), &schedule.schedule) {
            (Ok(Some(parsed)), Some(text)) => match previous_schedule {
                Some(p) if p.schedule == *text => Some(p),
                _ => parsed
                    .next_after(now)
                    .map(|next_due| roster_store::ScheduleState {
                        schedule: text.clone(),
                        next_due,
                        failures: 0,
                    }),
            },
            _ => None,
        };
        self.store.set_schedule_state(state.as_ref()).await?;
        Ok(DirectorySettingsView::of(settings, state))
    }

    /// The domains on the directory's server, for the settings' picker (`roster directory domains`,
    /// `GET /api/v1/directory/domains`). A type without domains answers `DI023-listing-unsupported`.
    pub async fn directory_domains(&self, caller: &Caller) -> Result<Vec<DirectoryDomain>> {
        caller.require_admin("list the directory's domains")?;
        let settings = self
            .load_directory_settings()
            .await?
            .ok_or(AppError::NoDirectory)?;
        let directory = self.directory(&settings).await?;
        let domains = directory.listing("domains")?.domains().await?;
        Ok(domains
            .into_iter()
            .map(|d| DirectoryDomain {
                name: d.name,
                description: d.description,
                accounts: d.accounts,
            })
            .collect())
    }

    /// The groups on the directory's server, for the settings' picker (`roster directory groups`,
    /// `GET /api/v1/directory/groups`); with `search`, only those whose name or address (a DN for
    /// Active Directory) contains it, ignoring case.
    pub async fn directory_groups(
        &self,
        caller: &Caller,
        search: Option<&str>,
    ) -> Result<Vec<DirectoryGroup>> {
        caller.require_admin("list the directory's groups")?;
        let settings = self
            .load_directory_settings()
            .await?
            .ok_or(AppError::NoDirectory)?;
        let directory = self.directory(&settings).await?;
        let groups = directory.listing("groups")?.groups().await?;
        let needle = search.map(|s| s.trim().to_lowercase()).unwrap_or_default();
        Ok(groups
            .into_iter()
            .filter(|g| {
                needle.is_empty()
                    || g.name.to_lowercase().contains(&needle)
                    || g.address.to_lowercase().contains(&needle)
            })
            .map(|g| DirectoryGroup {
                address: g.address,
                name: g.name,
            })
            .collect())
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

    /// Test Settings (`kind = Preview`) or Synchronize now (`kind = Sync`), to the end: the CLI's way.
    pub async fn run_directory(
        &self,
        caller: &Caller,
        kind: RunKind,
        triggered_by: &str,
        progress: &dyn SyncProgress,
    ) -> Result<RunReport> {
        let run = self.begin_directory_run(caller, kind, triggered_by).await?;
        self.execute_run(run, progress).await
    }

    /// A run for one user (`roster sync --user NAME`, issue 26): that user's entry is read (by the link,
    /// else by name, within base and filter) and only that user's part of the plan is applied, with the
    /// same report, deletion guard and audit as any run. For a new hire who must log on now.
    pub async fn run_directory_for_user(
        &self,
        caller: &Caller,
        kind: RunKind,
        name: &str,
        triggered_by: &str,
        progress: &dyn SyncProgress,
    ) -> Result<RunReport> {
        let run = self
            .begin_user_run(caller, kind, name, triggered_by)
            .await?;
        self.execute_run(run, progress).await
    }

    /// [`Self::run_directory_for_user`] in a task of its own, answering at once (the API's way).
    pub async fn start_directory_run_for_user(
        self: &Arc<Self>,
        caller: &Caller,
        kind: RunKind,
        name: &str,
        triggered_by: &str,
    ) -> Result<RunStarted> {
        let run = self
            .begin_user_run(caller, kind, name, triggered_by)
            .await?;
        Ok(self.spawn_run(run))
    }

    async fn begin_user_run(
        &self,
        caller: &Caller,
        kind: RunKind,
        name: &str,
        triggered_by: &str,
    ) -> Result<BegunRun> {
        let name = name.trim();
        if name.is_empty() {
            return Err(AppError::Invalid(
                "give the user name to synchronize".into(),
            ));
        }
        let mut run = self
            .begin_directory_run(caller, kind, &format!("{triggered_by}, user {name}"))
            .await?;
        run.only = Some(name.to_owned());
        Ok(run)
    }

    /// Starts Test Settings or Synchronize now in a task of its own and answers at once, the API's way:
    /// the run goes on whether or not anyone waits for it (a client that disconnects doesn't stop it), and
    /// its outcome, a failure too, is recorded with it. What refuses a run before it exists (not an
    /// administrator, no directory, another run in progress) is answered here.
    pub async fn start_directory_run(
        self: &Arc<Self>,
        caller: &Caller,
        kind: RunKind,
        triggered_by: &str,
    ) -> Result<RunStarted> {
        let run = self.begin_directory_run(caller, kind, triggered_by).await?;
        Ok(self.spawn_run(run))
    }

    /// Runs a begun run in a task of its own; its outcome is recorded with it.
    fn spawn_run(self: &Arc<Self>, run: BegunRun) -> RunStarted {
        let started = RunStarted {
            run_id: run.run_id,
            kind: run.kind,
            status: RunStatus::Running,
        };
        let roster = Arc::clone(self);
        let span = tracing::info_span!("run", run_id = run.run_id);
        tokio::spawn(
            async move {
                if let Err(e) = roster.execute_run(run, &()).await {
                    tracing::warn!(code = e.code(), error = %e, "directory run failed");
                }
            }
            .instrument(span),
        );
        started
    }

    /// Approves a run the deletion guard stopped, to the end (`roster sync --approve ID`): reads the
    /// directory again and applies the new plan only if it deletes the same users as the stopped one
    /// (its other changes may differ); otherwise fails with [`AppError::ApprovalMismatch`] and applies
    /// nothing. The approval is recorded with the run that applies it, and in the audit log.
    pub async fn approve_run(
        &self,
        caller: &Caller,
        stopped: i64,
        triggered_by: &str,
        progress: &dyn SyncProgress,
    ) -> Result<RunReport> {
        let run = self.begin_approval(caller, stopped, triggered_by).await?;
        self.execute_run(run, progress).await
    }

    /// [`Roster::approve_run`] in a task of its own, the API's way (`POST .../runs/{id}/approve`).
    pub async fn start_approval(
        self: &Arc<Self>,
        caller: &Caller,
        stopped: i64,
        triggered_by: &str,
    ) -> Result<RunStarted> {
        let run = self.begin_approval(caller, stopped, triggered_by).await?;
        Ok(self.spawn_run(run))
    }

    /// Runs the scheduled sync if it is due (`roster serve` asks every few seconds): claims the due run
    /// first, so that of several instances on one database exactly one runs it, then runs it as the
    /// schedule (with the deletion guard in force, as any sync). Returns the run's id when it ran one.
    ///
    /// A run that fails is retried at a later slot of the schedule, never sooner: after n failures in a
    /// row, 2^(n-1) - 1 slots are skipped (at most 63), so a directory that stays down is asked less and
    /// less often. A run that can't start because another is in progress is tried at the next slot.
    pub async fn run_due_schedule(&self) -> Result<Option<i64>> {
        let Some(state) = self.store.schedule_state().await? else {
            return Ok(None);
        };
        let now = self.now();
        if now < state.next_due {
            return Ok(None);
        }
        let Some(schedule) = roster_core::directory::Schedule::parse(&state.schedule)
            .ok()
            .and_then(|s| {
                // Slots from now, never a slot in the past: after a long stop, one run, not a catch-up.
                let next = s.next_after(now)?;
                Some((s, next))
            })
        else {
            return Ok(None);
        };
        let (schedule, next) = schedule;
        if !self
            .store
            .move_schedule(state.next_due, next, state.failures)
            .await?
        {
            return Ok(None); // another instance took it
        }
        let started = self
            .begin_directory_run(&Caller::Schedule, RunKind::Sync, "schedule")
            .await;
        let run = match started {
            Ok(run) => run,
            Err(AppError::Store(StoreError::RunInProgress { .. })) => return Ok(None),
            Err(e) => return Err(e),
        };
        let run_id = run.run_id;
        let outcome = self.execute_run(run, &()).await;
        let failures = if outcome.is_ok() {
            0
        } else {
            state.failures.saturating_add(1)
        };
        // Back off by skipping slots after the one already set.
        let mut due = next;
        let skip = if failures > 0 {
            (1_i64 << (failures - 1).min(6)) - 1
        } else {
            0
        };
        for _ in 0..skip {
            match schedule.next_after(due) {
                Some(later) => due = later,
                None => break,
            }
        }
        self.store.move_schedule(next, due, failures).await?;
        if let Err(e) = outcome {
            tracing::warn!(run_id, code = e.code(), error = %e, "the scheduled sync failed");
        }
        Ok(Some(run_id))
    }

    /// Checks that `stopped` is a run the deletion guard stopped and nobody approved yet, and begins the
    /// sync that approves it.
    async fn begin_approval(
        &self,
        caller: &Caller,
        stopped: i64,
        triggered_by: &str,
    ) -> Result<BegunRun> {
        caller.require_admin("approve a directory synchronization")?;
        let run = self
            .store
            .get_run(stopped)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no run #{stopped}")))?;
        let deletions = match self.store.planned_deletions(stopped).await? {
            Some(d) if run.status == RunStatus::Stopped && run.approved_in_run.is_none() => d,
            _ => {
                return Err(AppError::Store(StoreError::NotApprovable {
                    run_id: stopped,
                }));
            }
        };
        let mut begun = self
            .begin_directory_run(
                caller,
                RunKind::Sync,
                &format!("{triggered_by}, approving run #{stopped}"),
            )
            .await?;
        begun.approves = Some(Approval { stopped, deletions });
        Ok(begun)
    }

    /// Checks that the run may start and records it as running.
    async fn begin_directory_run(
        &self,
        caller: &Caller,
        kind: RunKind,
        triggered_by: &str,
    ) -> Result<BegunRun> {
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
        let live = Arc::new(LiveRun::new());
        self.live_runs.insert(run_id, live.clone());
        Ok(BegunRun {
            run_id,
            kind,
            settings,
            actor,
            live,
            approves: None,
            only: None,
            started: std::time::Instant::now(),
        })
    }

    /// Does a begun run's work, records how it ended, and tells the observer.
    async fn execute_run(&self, run: BegunRun, progress: &dyn SyncProgress) -> Result<RunReport> {
        let (kind, started, live) = (run.kind, run.started, run.live.clone());
        let result = self.execute_and_record(run, progress).await;
        self.observer.run_finished(&RunFinished {
            kind,
            outcome: RunEnd::of(&result),
            read_mode: result.as_ref().ok().and_then(|r| r.read_mode),
            duration: started.elapsed(),
            entries_read: live.entries_read(),
            applied: match &result {
                Ok(report) if kind == RunKind::Sync => Some(report.counts),
                _ => None,
            },
        });
        result
    }

    /// Does a begun run's work and records how it ended.
    async fn execute_and_record(
        &self,
        run: BegunRun,
        progress: &dyn SyncProgress,
    ) -> Result<RunReport> {
        let BegunRun {
            run_id,
            kind,
            settings,
            actor,
            live,
            approves,
            only,
            started: _,
        } = run;
        let _registered = Registered {
            runs: &self.live_runs,
            id: run_id,
        };
        let tracker = Tracker {
            live: &live,
            outer: progress,
        };
        let mut signals = StopSignals {
            run_id,
            stop: live.stop.subscribe(),
            deadline: tokio::time::Instant::now() + self.run_deadline,
            seconds: self.run_deadline.as_secs(),
        };
        let result = {
            let heartbeat = self.heartbeat(run_id, &live);
            // The connector is made inside the recorded run: settings stored by an older version, or a
            // CA file that went away since `directory set`, fail a run that the history shows.
            let work = async {
                let directory = signals.until_stopped(self.directory(&settings)).await?;
                self.run_steps(
                    RunContext {
                        run_id,
                        kind,
                        settings: &settings,
                        directory: &directory,
                        tracker: &tracker,
                        actor: &actor,
                        approves: approves.as_ref(),
                        only: only.as_deref(),
                    },
                    &mut signals,
                )
                .await
            };
            tokio::pin!(heartbeat);
            tokio::select! {
                r = work => r,
                () = &mut heartbeat => Err(AppError::Internal("heartbeat ended".into())),
            }
        };
        let entries_read = live.entries_read();
        let entries_read_i = i64::try_from(entries_read).unwrap_or(i64::MAX);
        match result {
            Ok(Done {
                counts,
                lines,
                guard: Some(stop),
                ..
            }) if kind == RunKind::Sync => {
                let e = AppError::DeletionGuard {
                    run_id,
                    deletions: stop.notice.deletions,
                    suspended: stop.notice.suspended,
                    limit: stop.notice.limit,
                };
                let message = e.to_string();
                tracker.phase(SyncPhase::Recording);
                self.store
                    .finish_run(
                        run_id,
                        &RunOutcome {
                            status: RunStatus::Stopped,
                            entries_read: entries_read_i,
                            counts: Some(counts),
                            error: Some(message.clone()),
                            error_code: Some(e.code().to_owned()),
                            phase: SyncPhase::Planning,
                            lines: &lines,
                            planned_deletions: Some(&stop.planned),
                            read_mode: None,
                            read_state: None,
                        },
                        self.now(),
                    )
                    .instrument(tracing::info_span!("record", run_id))
                    .await?;
                Err(AppError::RunFailed {
                    run_id,
                    code: e.code(),
                    kind: e.kind(),
                    message,
                })
            }
            Ok(done) => {
                if !done.recorded {
                    tracker.phase(SyncPhase::Recording);
                    self.store
                        .finish_run(
                            run_id,
                            &RunOutcome {
                                status: RunStatus::Succeeded,
                                entries_read: entries_read_i,
                                counts: Some(done.counts),
                                error: None,
                                error_code: None,
                                phase: SyncPhase::Recording,
                                lines: &done.lines,
                                planned_deletions: None,
                                read_mode: done.read_mode,
                                read_state: done.read_state.as_deref(),
                            },
                            self.now(),
                        )
                        .instrument(tracing::info_span!("record", run_id))
                        .await?;
                }
                Ok(RunReport {
                    run_id,
                    kind,
                    preview: kind == RunKind::Preview,
                    directory_type: settings.type_name().to_owned(),
                    entries_read,
                    counts: done.counts,
                    deletion_guard: done.guard.map(|g| g.notice),
                    lines: done.lines,
                    read_mode: done.read_mode,
                })
            }
            Err(e) => {
                if matches!(
                    e,
                    AppError::RunDeadline { .. }
                        | AppError::RunCancelled { .. }
                        | AppError::Store(StoreError::RunNotRunning(_))
                ) {
                    // The read may have been cut off mid-operation: the next run starts on a new
                    // connection.
                    *self.directory_cache.lock().await = None;
                }
                let message = match &e {
                    AppError::Store(StoreError::StaleSnapshot) => "users were changed by someone else while the synchronization was being planned; nothing was applied; run it again".to_owned(),
                    other => {
                        let text = other.to_string();
                        if text.contains("nothing was changed") || text.contains("nothing was applied") {
                            text
                        } else {
                            format!("{text}; nothing was changed")
                        }
                    }
                };
                let code = e.code();
                let error_kind = e.kind();
                // A run that another process took for dead already has its final status: keep it.
                if !matches!(e, AppError::Store(StoreError::RunNotRunning(_))) {
                    self.store
                        .finish_run(
                            run_id,
                            &RunOutcome {
                                status: if matches!(e, AppError::RunCancelled { .. }) {
                                    RunStatus::Cancelled
                                } else {
                                    RunStatus::Failed
                                },
                                entries_read: entries_read_i,
                                counts: None,
                                error: Some(message.clone()),
                                error_code: Some(code.to_owned()),
                                phase: live.phase(),
                                lines: &[],
                                planned_deletions: None,
                                read_mode: None,
                                read_state: None,
                            },
                            self.now(),
                        )
                        .await?;
                }
                Err(AppError::RunFailed {
                    run_id,
                    code,
                    kind: error_kind,
                    message,
                })
            }
        }
    }

    async fn run_steps(&self, run: RunContext<'_>, signals: &mut StopSignals) -> Result<Done> {
        let RunContext {
            run_id,
            kind,
            settings,
            directory,
            tracker,
            actor,
            approves,
            only,
        } = run;
        // Reading and planning change nothing: a cancel or the deadline stops them where they are.
        let Planned {
            plan,
            version,
            header,
            linked,
            read_mode,
            read_state,
        } = signals
            .until_stopped(self.read_and_plan(run_id, settings, directory, tracker, only))
            .await?;
        let SyncPlan {
            changes,
            mut counts,
            mut lines,
            mut deleted_lines,
        } = plan;
        if !header.is_empty() {
            // Said once per run, not per entry, at the top: the scope the read applied, what it left
            // out, and whether renames can be followed.
            let shift = header.len();
            lines.splice(0..0, header);
            for at in &mut deleted_lines {
                at.line += shift;
            }
        }
        // A suspension is guarded like a deletion: it locks the user out, and a mistaken filter would
        // lock everyone out.
        let mut planned: Vec<i64> = changes
            .delete
            .iter()
            .map(|d| d.user_id)
            .chain(changes.suspend.iter().map(|s| s.user_id))
            .collect();
        planned.sort_unstable();
        let deletions = u64::try_from(planned.len()).unwrap_or(u64::MAX);
        let guard = match approves {
            // An approval applies the plan whatever its size, if it deletes the users approved.
            Some(approval) => {
                if approval.deletions != planned {
                    return Err(AppError::ApprovalMismatch {
                        stopped: approval.stopped,
                        difference: self
                            .deletions_difference(&approval.deletions, &changes)
                            .await?,
                    });
                }
                None
            }
            None => settings
                .deletion_guard()
                .judge(deletions, linked)
                .map(|limit| GuardStop {
                    notice: GuardNotice {
                        deletions,
                        suspended: u64::try_from(changes.suspend.len()).unwrap_or(u64::MAX),
                        limit,
                    },
                    planned,
                }),
        };
        if let Some(stop) = &guard {
            let reason = match kind {
                RunKind::Sync => format!(
                    "stopped by the deletion guard: this plan deletes {deletions} users{}, {}; nothing in this report was applied. If the deletions are intended, approve them: roster sync --approve {run_id}",
                    crate::error::suspended_note(stop.notice.suspended),
                    stop.notice.limit
                ),
                RunKind::Preview => format!(
                    "Synchronize now would stop here: this plan deletes {deletions} users{}, {}, so the deletion guard would apply nothing and wait for an administrator's approval (or raise max_deletions or max_deletions_percent)",
                    crate::error::suspended_note(stop.notice.suspended),
                    stop.notice.limit
                ),
            };
            insert_first_line(
                &mut lines,
                &mut deleted_lines,
                ReportLine {
                    user: format!("{deletions} deletions"),
                    action: roster_core::plan::ReportAction::Warning,
                    reason: reason.into(),
                    dn: None,
                },
            );
            // Stopped: nothing applied, so the next run must read the same changes again.
            return Ok(Done {
                counts,
                lines,
                recorded: false,
                guard,
                read_mode,
                read_state: None,
            });
        }
        // A preview never moves the read state on: the sync after it must read the same changes.
        let read_state = match kind {
            RunKind::Sync => read_state,
            RunKind::Preview => None,
        };
        if kind == RunKind::Sync && !changes.is_empty() {
            // Once the apply has begun, it runs to its commit (one transaction, seconds long): a cancel
            // that comes now is too late, and the deadline doesn't cut it off. The apply itself refuses a
            // run that someone asked (perhaps from another process) to cancel.
            signals.check()?;
            tracker.phase(SyncPhase::Applying);
            let defaults = self.store.default_privileges().await?;
            let mut record = RunRecord {
                entries_read: i64::try_from(tracker.live.entries_read()).unwrap_or(i64::MAX),
                counts,
                lines,
                deleted_lines,
                approves: approves.map(|a| a.stopped),
                read_mode,
                read_state,
            };
            // The report is corrected for the folders the store decided at the apply, and recorded with
            // the run, in the apply's transaction.
            self.store
                .apply_plan(
                    run_id,
                    version,
                    &changes,
                    &defaults,
                    &mut record,
                    actor,
                    self.now(),
                )
                .instrument(tracing::info_span!("apply", run_id))
                .await
                .map_err(|e| match e {
                    StoreError::CancelRequested { by, .. } => AppError::RunCancelled { by },
                    other => AppError::Store(other),
                })?;
            counts = record.counts;
            lines = record.lines;
            return Ok(Done {
                counts,
                lines,
                recorded: true,
                guard: None,
                read_mode,
                read_state: None,
            });
        }
        Ok(Done {
            counts,
            lines,
            recorded: false,
            guard: None,
            read_mode,
            read_state,
        })
    }

    /// What an approval's new plan deletes differently from the stopped run's, by user name where the
    /// user still exists.
    async fn deletions_difference(
        &self,
        approved: &[i64],
        changes: &roster_core::plan::PlannedChanges,
    ) -> Result<String> {
        let approved_set: std::collections::BTreeSet<i64> = approved.iter().copied().collect();
        let now: Vec<(i64, &roster_core::UserName)> = changes
            .delete
            .iter()
            .map(|d| (d.user_id, &d.name))
            .chain(changes.suspend.iter().map(|s| (s.user_id, &s.name)))
            .collect();
        let now_set: std::collections::BTreeSet<i64> = now.iter().map(|(id, _)| *id).collect();
        let added: Vec<String> = now
            .iter()
            .filter(|(id, _)| !approved_set.contains(id))
            .map(|(_, name)| name.to_string())
            .collect();
        const SHOWN: usize = 10;
        // Names are looked up only for the users the message shows: the rest are counted.
        let dropped_ids: Vec<i64> = approved
            .iter()
            .copied()
            .filter(|id| !now_set.contains(id))
            .collect();
        let mut dropped = Vec::with_capacity(dropped_ids.len().min(SHOWN));
        for id in dropped_ids.iter().take(SHOWN) {
            dropped.push(match self.store.get_user_by_id(*id).await? {
                Some(u) => u.name.to_string(),
                None => format!("user #{id} (gone since)"),
            });
        }
        let list = |names: &[String], total: usize| {
            let mut text = names
                .iter()
                .take(SHOWN)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            if total > SHOWN {
                text.push_str(&format!(" and {} more", total - SHOWN));
            }
            text
        };
        let mut parts = Vec::new();
        if !added.is_empty() {
            parts.push(format!(
                "it would now also delete {} user(s): {}",
                added.len(),
                list(&added, added.len())
            ));
        }
        if !dropped_ids.is_empty() {
            parts.push(format!(
                "it would no longer delete {} user(s): {}",
                dropped_ids.len(),
                list(&dropped, dropped_ids.len())
            ));
        }
        Ok(parts.join("; "))
    }

    /// Reads the directory and the users, and plans: the plan, the user database version it was made
    /// from, how many entries had no stable id and how many users are linked to the directory. A read
    /// that returned nobody while users are linked fails here ([`AppError::EmptyRead`]).
    async fn read_and_plan(
        &self,
        run_id: i64,
        settings: &DirectorySettings,
        directory: &Connector,
        tracker: &Tracker<'_>,
        only: Option<&str>,
    ) -> Result<Planned> {
        tracker.phase(SyncPhase::Reading);
        if let Some(name) = only {
            return self
                .read_and_plan_one(run_id, settings, directory, tracker, name)
                .await;
        }
        // Incremental (issue 26): with a stored cookie for these settings, younger than the periodic
        // full read, ask only for what changed; any doubt is a full read, and the report says why.
        let fingerprint = settings_fingerprint(settings)?;
        let schedule = settings.schedule();
        let full_every_ms = i64::try_from(
            schedule
                .full_read_every_seconds()
                .map_err(|e| AppError::InvalidSetting {
                    key: e.key.to_owned(),
                    message: e.to_string(),
                })?
                .saturating_mul(1000),
        )
        .unwrap_or(i64::MAX);
        let now = self.now();
        // Why a read that could have been incremental is full (`None`: no earlier read to continue
        // from, or incremental reads are off: nothing to say).
        let why_full: Option<String> = if !schedule.incremental() {
            None
        } else {
            match self.read_state().await? {
                None => None,
                Some(state) if state.settings != fingerprint => {
                    Some("the settings changed since the last read".to_owned())
                }
                Some(state) if now.0.saturating_sub(state.full_read_at) >= full_every_ms => {
                    Some("the periodic full read is due (full_read_every)".to_owned())
                }
                Some(state) => {
                    let cookie = base64::Engine::decode(
                        &base64::engine::general_purpose::STANDARD,
                        &state.cookie,
                    )
                    .unwrap_or_default();
                    match directory
                        .reader
                        .read_changes(Some(&cookie))
                        .instrument(tracing::info_span!("read", run_id, incremental = true))
                        .await?
                    {
                        roster_directory::Changes::Read(delta) => {
                            return self
                                .plan_changes(
                                    run_id,
                                    settings,
                                    directory,
                                    tracker,
                                    delta,
                                    ReadState {
                                        cookie: String::new(),
                                        settings: fingerprint,
                                        full_read_at: state.full_read_at,
                                    },
                                )
                                .await;
                        }
                        roster_directory::Changes::RefreshRequired(why)
                        | roster_directory::Changes::Unsupported(why) => Some(why),
                    }
                }
            }
        };
        // A full read. The cookie of now is taken first: a change made during the read is read again
        // next time, never missed.
        let cookie_now = if schedule.incremental() {
            match directory
                .reader
                .read_changes(None)
                .instrument(tracing::info_span!("read", run_id, cookie = true))
                .await?
            {
                roster_directory::Changes::Read(c) => Some(c.cookie),
                // No cookie to store: the next run reads everything too (and, with an older state
                // stored, says why when it asks for the changes since it).
                roster_directory::Changes::RefreshRequired(_)
                | roster_directory::Changes::Unsupported(_) => None,
            }
        } else {
            None
        };
        // The users are loaded while the directory is read: the read mostly waits for the server, and
        // loading 100,000 users takes about half a second of its own. Both run to the end even when the
        // other fails: a read cut off mid-page would leave the service connection mid-search, and the
        // error reported is then always the directory's, which is the one the administrator can act on.
        // The entries are prepared for the plan as their pages come (`PreparingProgress`).
        let preparing = PreparingProgress::start(tracker, run_id);
        let (fetched, snapshot) = tokio::join!(
            directory
                .reader
                .read_entries(&preparing)
                .instrument(tracing::info_span!("read", run_id)),
            self.store
                .snapshot()
                .instrument(tracing::info_span!("snapshot", run_id))
        );
        let prepared = preparing.finish().await?;
        let fetched = fetched?;
        let mut snapshot = snapshot?;
        tracker.read(fetched.entry_count());
        let mut header = read_header(&fetched);
        if let Some(why) = why_full {
            header.insert(
                0,
                read_mode_line(&format!("full read of every entry in scope: {why}")),
            );
        }
        tracker.phase(SyncPhase::Planning);
        // If someone changed users during the read, load them again: the plan must start from the users
        // as they are now, and the window in which another change makes it stale is only the planning.
        if self.store.user_db_version().await? != snapshot.version {
            snapshot = self
                .store
                .snapshot()
                .instrument(tracing::info_span!("snapshot", run_id, again = true))
                .await?;
        }
        let source = directory.kind.name();
        let linked = snapshot
            .users
            .iter()
            .filter(|u| u.link.as_ref().is_some_and(|l| l.source == source))
            .count();
        let linked = u64::try_from(linked).unwrap_or(u64::MAX);
        // Whatever the deletion guard's limits: an empty answer is a read that went wrong.
        if fetched.entry_count() == 0 && linked > 0 {
            return Err(AppError::EmptyRead {
                scope: settings
                    .configured()
                    .map(|(_, s)| s.read_scope())
                    .unwrap_or_default(),
                linked,
            });
        }
        let scope = roster_core::plan::PlanScope::All;
        let mut planned = self
            .plan(
                run_id,
                settings,
                source,
                scope,
                snapshot,
                prepared,
                fetched.entries,
                header,
                linked,
            )
            .await?;
        planned.read_mode = Some(ReadMode::Full);
        planned.read_state = cookie_now
            .map(|cookie| {
                serde_json::to_string(&ReadState {
                    cookie: base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        cookie,
                    ),
                    settings: fingerprint,
                    full_read_at: now.0,
                })
            })
            .transpose()
            .map_err(|e| AppError::Internal(e.to_string()))?;
        Ok(planned)
    }

    /// The stored read state, if any (an unreadable one is as none: a full read follows).
    async fn read_state(&self) -> Result<Option<ReadState>> {
        Ok(self
            .store
            .get_setting(roster_store::DIRECTORY_READ_STATE)
            .await?
            .and_then(|raw| serde_json::from_str(&raw).ok()))
    }

    /// Plans an incremental read: the changed entries, and the users whose entries the server said (or,
    /// in the present phase, let it be inferred) are gone. Only the users those touch are in the plan's
    /// scope; everyone else counts as seen and unchanged.
    async fn plan_changes(
        &self,
        run_id: i64,
        settings: &DirectorySettings,
        directory: &Connector,
        tracker: &Tracker<'_>,
        delta: roster_directory::ChangeRead,
        mut state: ReadState,
    ) -> Result<Planned> {
        tracker.read(u64::try_from(delta.changed.len()).unwrap_or(u64::MAX));
        tracker.phase(SyncPhase::Planning);
        let source = directory.kind.name();
        // The delete phase names what changed and what went: only the users those can touch are loaded
        // (`Touched`), so the run's cost follows the size of the change. The present phase names every
        // entry still there, and who went is whoever it doesn't name: that takes every linked user.
        let (snapshot, linked) = match &delta.present {
            None => {
                let touched = roster_core::plan::Touched::of(
                    source,
                    &delta.changed,
                    delta.deleted.iter().map(String::as_str),
                );
                let snapshot = self
                    .store
                    .snapshot_touched(&touched)
                    .instrument(tracing::info_span!(
                        "snapshot",
                        run_id,
                        touched = touched.len()
                    ))
                    .await?;
                (snapshot, self.store.count_linked(source).await?)
            }
            Some(_) => {
                let snapshot = self
                    .store
                    .snapshot()
                    .instrument(tracing::info_span!("snapshot", run_id))
                    .await?;
                let linked = snapshot
                    .users
                    .iter()
                    .filter(|u| u.link.as_ref().is_some_and(|l| l.source == source))
                    .count();
                (snapshot, u64::try_from(linked).unwrap_or(u64::MAX))
            }
        };
        let linked_ids: Vec<(i64, &str)> = snapshot
            .users
            .iter()
            .filter_map(|u| {
                u.link
                    .as_ref()
                    .filter(|l| l.source == source)
                    .map(|l| (u.id, l.id.as_str()))
            })
            .collect();
        let changed: std::collections::HashSet<&str> =
            delta.changed.iter().map(|e| e.id.as_str()).collect();
        let mut gone: std::collections::HashSet<&str> =
            delta.deleted.iter().map(String::as_str).collect();
        if let Some(present) = &delta.present {
            // The present phase names every entry still in scope: none at all while users are linked is
            // a read that went wrong, as for a full read.
            if present.is_empty() && delta.changed.is_empty() && linked > 0 {
                return Err(AppError::EmptyRead {
                    scope: settings
                        .configured()
                        .map(|(_, s)| s.read_scope())
                        .unwrap_or_default(),
                    linked,
                });
            }
            let present: std::collections::HashSet<&str> =
                present.iter().map(String::as_str).collect();
            gone.extend(
                linked_ids
                    .iter()
                    .map(|(_, id)| *id)
                    .filter(|id| !present.contains(id) && !changed.contains(id)),
            );
        }
        let in_scope: Vec<i64> = linked_ids
            .iter()
            .filter(|(_, id)| changed.contains(id) || gone.contains(id))
            .map(|(user, _)| *user)
            .collect();
        let gone_count = linked_ids
            .iter()
            .filter(|(_, id)| gone.contains(id))
            .count();
        let header = vec![read_mode_line(&format!(
            "incremental read: {} entries added or changed and {} linked users' entries gone since the last read ({}); everyone else is as before",
            delta.changed.len(),
            gone_count,
            delta.how
        ))];
        state.cookie =
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &delta.cookie);
        let entries = delta.changed;
        let mut planned = self
            .plan(
                run_id,
                settings,
                source,
                roster_core::plan::PlanScope::Only(in_scope),
                snapshot,
                PreparedEntries::default(),
                entries,
                header,
                linked,
            )
            .await?;
        planned.read_mode = Some(ReadMode::Incremental);
        planned.read_state =
            Some(serde_json::to_string(&state).map_err(|e| AppError::Internal(e.to_string()))?);
        Ok(planned)
    }

    /// A run for one user: the snapshot first (to find the user's link), then that one entry; the plan
    /// speaks for that user only ([`roster_core::plan::PlanScope::Only`]), so nobody else can be deleted
    /// or taken over, and an empty read is an answer (the user left), not a failed read.
    async fn read_and_plan_one(
        &self,
        run_id: i64,
        settings: &DirectorySettings,
        directory: &Connector,
        tracker: &Tracker<'_>,
        name: &str,
    ) -> Result<Planned> {
        let snapshot = self
            .store
            .snapshot()
            .instrument(tracing::info_span!("snapshot", run_id))
            .await?;
        let source = directory.kind.name();
        let key = roster_core::names::name_key(name.trim());
        let target = snapshot
            .users
            .iter()
            .find(|u| roster_core::names::name_key(u.name.as_str()) == key);
        let link = target
            .and_then(|u| u.link.as_ref())
            .filter(|l| l.source == source);
        let subject = roster_directory::LogonSubject {
            name: name.trim(),
            dn: link.and_then(|l| l.dn.as_deref()),
            id: link.map(|l| l.id.as_str()),
        };
        let fetched = directory
            .reader
            .read_user(&subject)
            .instrument(tracing::info_span!("read", run_id, user = name))
            .await?;
        tracker.read(u64::try_from(fetched.entries.len()).unwrap_or(u64::MAX));
        if target.is_none() && fetched.entries.is_empty() {
            return Err(AppError::NotFound(format!(
                "{name:?} is neither a Roster user nor a user in {}",
                settings
                    .configured()
                    .map(|(_, s)| s.read_scope())
                    .unwrap_or_default()
            )));
        }
        let mut header = read_header(&fetched);
        header.insert(
            0,
            ReportLine {
                user: name.trim().to_owned(),
                action: roster_core::plan::ReportAction::Warning,
                reason: format!(
                    "a run for this user only: {}; nobody else was read or changed",
                    match (fetched.entries.first(), link.is_some()) {
                        (Some(e), _) => format!("their entry is {}", e.dn),
                        (None, true) =>
                            "their entry is no longer in the directory's scope".to_owned(),
                        (None, false) => "no entry in the directory's scope".to_owned(),
                    }
                )
                .into(),
                dn: None,
            },
        );
        tracker.phase(SyncPhase::Planning);
        let linked = snapshot
            .users
            .iter()
            .filter(|u| u.link.as_ref().is_some_and(|l| l.source == source))
            .count();
        let scope = roster_core::plan::PlanScope::Only(target.map(|u| u.id).into_iter().collect());
        self.plan(
            run_id,
            settings,
            source,
            scope,
            snapshot,
            PreparedEntries::default(),
            fetched.entries,
            header,
            u64::try_from(linked).unwrap_or(u64::MAX),
        )
        .await
    }

    /// Plans the entries (`prepared` as they were read, then `more`) against the snapshot's users.
    #[allow(clippy::too_many_arguments)]
    async fn plan(
        &self,
        run_id: i64,
        settings: &DirectorySettings,
        source: &str,
        scope: roster_core::plan::PlanScope,
        snapshot: roster_store::Snapshot,
        prepared: PreparedEntries,
        more: Vec<DirectoryEntry>,
        header: Vec<ReportLine>,
        linked: u64,
    ) -> Result<Planned> {
        let options = PlanOptions {
            scope,
            source: source.to_owned(),
            delete_users: settings.delete_users(),
            // Checked when the settings were stored; settings stored by an older version fail the run.
            delete_after_seconds: settings.deletion_guard().delete_after_seconds().map_err(
                |e| AppError::InvalidSetting {
                    key: e.key.to_owned(),
                    message: e.to_string(),
                },
            )?,
            now: self.now(),
        };
        // Planning 100,000 users takes a moment of CPU: off the async workers, so the heartbeat and other
        // requests keep going.
        let users = snapshot.users;
        let span = tracing::info_span!("plan", run_id);
        let plan = tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                // `prepared`: the entries handed over as they were read; `more`: the rest, after them.
                let mut entries = prepared;
                entries.add(more);
                plan_sync_prepared(&users, entries, &options)
            })
        })
        .await
        .map_err(|e| AppError::Internal(format!("planning failed: {e}")))?;
        Ok(Planned {
            plan,
            version: snapshot.version,
            header,
            linked,
            read_mode: None,
            read_state: None,
        })
    }

    /// Keeps the run's heartbeat fresh while it works, so another process can tell it is alive, and
    /// stops the run when a cancel was asked for in the database (perhaps by another process) or another
    /// process took it for dead.
    async fn heartbeat(&self, run_id: i64, live: &LiveRun) {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(HEARTBEAT_SECONDS)).await;
            let n = i64::try_from(live.entries_read()).unwrap_or(i64::MAX);
            match self
                .store
                .heartbeat_run(run_id, n, live.phase(), self.now())
                .await
            {
                Ok(RunControl::Continue) => {}
                Ok(RunControl::CancelRequested { by }) => live.stop(Stop::Cancelled(by)),
                Ok(RunControl::NotRunning) => live.stop(Stop::Lost),
                Err(e) => {
                    tracing::warn!(run_id, error = %e, "couldn't record the run's heartbeat");
                }
            }
        }
    }

    /// Asks a running run to stop (`roster runs cancel`, `POST /api/v1/directory/runs/{id}/cancel`), with
    /// its audit line. A run of this process stops at once; a run of another process at its next
    /// heartbeat (within a few seconds). A run that has begun to commit its changes can't be stopped: the
    /// commit wins, and the request then fails with `ST014-run-finished`. Returns the run as it is now.
    pub async fn cancel_run(&self, caller: &Caller, id: i64) -> Result<RunSummary> {
        caller.require_admin("cancel a directory run")?;
        let actor = caller.actor();
        let now = self.now();
        self.store
            .request_cancel(id, &actor, now, now.plus_seconds(-STALE_AFTER_SECONDS))
            .await?;
        if let Some(live) = self.live_runs.get(id) {
            live.stop(Stop::Cancelled(actor.0.clone()));
        }
        let run = self
            .store
            .get_run(id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no run #{id}")))?;
        Ok(self.with_live_progress(run))
    }

    /// Stops the runs of this process (the server is stopping) and waits a while for them to record
    /// that: they are recorded as cancelled by `why`, except a sync already committing, which finishes.
    pub async fn stop_runs(&self, why: &str) {
        for live in self.live_runs.all() {
            live.stop(Stop::Cancelled(why.to_owned()));
        }
        let until = tokio::time::Instant::now() + std::time::Duration::from_secs(STOP_WAIT_SECONDS);
        while !self.live_runs.is_empty() && tokio::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// A running run of this process shows its progress as it is now, not as of its last heartbeat.
    fn with_live_progress(&self, mut run: RunSummary) -> RunSummary {
        if run.status == RunStatus::Running
            && let Some(live) = self.live_runs.get(run.id)
        {
            run.entries_read = run
                .entries_read
                .max(i64::try_from(live.entries_read()).unwrap_or(i64::MAX));
            run.phase = Some(live.phase());
        }
        run
    }

    pub async fn list_runs(
        &self,
        caller: &Caller,
        offset: i64,
        limit: i64,
    ) -> Result<roster_store::Page<RunSummary>> {
        caller.require_admin("see directory runs")?;
        let mut page = self
            .store
            .list_runs(offset.max(0), limit.clamp(1, crate::PAGE_MAX))
            .await?;
        page.items = page
            .items
            .into_iter()
            .map(|r| self.with_live_progress(r))
            .collect();
        Ok(page)
    }

    /// One run (with its live progress while it runs in this process) and a page of its report lines
    /// (none until it has finished).
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
        Ok((self.with_live_progress(run), lines))
    }
}

/// A domain on the directory's server (IceWarp), as the settings' `domains` take it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DirectoryDomain {
    pub name: String,
    pub description: String,
    /// Accounts of every type, as the server counts them.
    pub accounts: u64,
}

/// A group on the directory's server (IceWarp); `address` is what the settings' `groups` take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DirectoryGroup {
    pub address: String,
    pub name: String,
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
    /// With a `schedule`: when the next scheduled sync is due (`roster serve` runs it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_run_at: Option<roster_core::Timestamp>,
    /// Scheduled syncs that failed in a row (the next one waits longer: see the README).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_failures: Option<i64>,
}

impl DirectorySettingsView {
    fn of(
        settings: DirectorySettings,
        schedule: Option<roster_store::ScheduleState>,
    ) -> DirectorySettingsView {
        let password_set = settings
            .configured()
            .and_then(|(_, s)| s.secret_spec().map(|_| s.secret().is_some()));
        DirectorySettingsView {
            settings,
            password_set,
            next_run_at: schedule.as_ref().map(|s| s.next_due),
            scheduled_failures: schedule.map(|s| s.failures),
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
    keep_or_require_credential_file(kind, settings, previous)?;
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

/// The same rule for a file that stands in for the secret (Active Directory's keytab): left out, the
/// stored path is kept only for the same type and target, so that a keytab is never used against a
/// server it wasn't given for.
fn keep_or_require_credential_file(
    kind: DirectoryKind,
    settings: &mut dyn TypeSettings,
    previous: Option<&DirectorySettings>,
) -> Result<()> {
    let Some(spec) = settings.credential_file_spec() else {
        return Ok(());
    };
    let target = settings.secret_target();
    let invalid = |message: String| AppError::InvalidSetting {
        key: spec.key.to_owned(),
        message,
    };
    let Some(slot) = settings.credential_file_slot() else {
        return Err(AppError::Internal(format!(
            "the {kind} settings name a credential file but have no place for it"
        )));
    };
    if slot.is_some() {
        return Ok(());
    }
    let stored = previous
        .and_then(DirectorySettings::configured)
        .filter(|(previous_kind, _)| *previous_kind == kind)
        .and_then(|(_, p)| {
            p.credential_file()
                .map(|file| (p.secret_target(), file.clone()))
        });
    match stored {
        Some((stored_target, file)) if stored_target == target => {
            *slot = Some(file);
            Ok(())
        }
        Some(_) => Err(invalid(format!(
            "{} changed: give {} again",
            spec.bound_to, spec.what
        ))),
        None => Err(invalid(format!("give {}", spec.what))),
    }
}

/// The warning lines a read puts at the top of its run's report: the connector's notes, then, if some
/// entries have no stable id, what they are identified by.
fn read_header(fetched: &roster_directory::DirectoryRead) -> Vec<ReportLine> {
    let mut header: Vec<ReportLine> = fetched
        .notes
        .iter()
        .map(|note| ReportLine {
            user: "(directory)".into(),
            action: roster_core::plan::ReportAction::Warning,
            reason: note.clone().into(),
            dn: None,
        })
        .collect();
    if fetched.without_stable_id > 0 {
        let reason = match fetched.identified_by {
            Some(by) => format!(
                "these entries are identified by {by}: a rename on the server will look like a deleted user and a new one"
            ),
            None => "these entries have no stable id (entryUUID, GUID or nsUniqueId) and are identified by their DN: a rename or a move in the directory will look like a deleted user and a new one".to_owned(),
        };
        header.push(ReportLine {
            user: format!("{} entries", fetched.without_stable_id),
            action: roster_core::plan::ReportAction::Warning,
            reason: reason.into(),
            dn: None,
        });
    }
    header
}

/// What one run's steps work with.
struct RunContext<'a> {
    run_id: i64,
    kind: RunKind,
    settings: &'a DirectorySettings,
    directory: &'a Connector,
    tracker: &'a Tracker<'a>,
    actor: &'a Actor,
    approves: Option<&'a Approval>,
    only: Option<&'a str>,
}

/// The report's first line: how the directory was read, and why.
fn read_mode_line(text: &str) -> ReportLine {
    ReportLine {
        user: "(directory)".into(),
        action: roster_core::plan::ReportAction::Warning,
        reason: text.to_owned().into(),
        dn: None,
    }
}

/// What the read state belongs to: the settings as stored (never the password, which isn't serialized),
/// hashed. Other settings read another scope, so the cookie doesn't carry over.
fn settings_fingerprint(settings: &DirectorySettings) -> Result<String> {
    use sha2::Digest;
    let json = serde_json::to_vec(settings).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(sha2::Sha256::digest(&json)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Puts a line at the top of a report, keeping the deleted users' line numbers right.
fn insert_first_line(
    lines: &mut Vec<ReportLine>,
    deleted_lines: &mut [roster_core::plan::DeletedLine],
    line: ReportLine,
) {
    lines.insert(0, line);
    for at in deleted_lines {
        at.line += 1;
    }
}
