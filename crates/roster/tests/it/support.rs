//! Shared test setup.

use roster_app::{AppError, Caller, Roster, RunReport, SessionPolicy};
use roster_core::Timestamp;
use roster_core::clock::ManualClock;
use roster_core::plan::ReportAction;
use roster_core::user::User;
use roster_directory::ConnectorFactory;
use roster_store::RunKind;
use roster_store::{PgStore, SqliteStore, Store};
use roster_testkit::TestPostgres;
use std::sync::Arc;

/// 2026-11-24T00:00:00Z: tests start from a fixed time and move it by hand.
pub const T0: Timestamp = Timestamp(1_795_478_400_000);

pub const ADMIN_PASSWORD: &str = "admin-pass-for-tests";

pub fn init() {
    roster_directory::install_crypto_provider();
}

/// A Roster on a fresh database, with a clock the test controls.
pub struct Env {
    pub roster: Arc<Roster>,
    pub store: Arc<dyn Store>,
    pub clock: Arc<ManualClock>,
    /// The data directory (the SQLite file and the secret key live here).
    pub dir: tempfile::TempDir,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Env {
    pub async fn new(backend: Backend) -> Env {
        init();
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = match backend {
            Backend::Sqlite => Arc::new(SqliteStore::open(dir.path()).await.unwrap()),
            Backend::Postgres => {
                let url = TestPostgres::shared()
                    .unwrap()
                    .create_database("roster")
                    .unwrap();
                Arc::new(PgStore::open(&url).await.unwrap())
            }
        };
        Env::with_store(store, dir).await
    }

    pub async fn sqlite() -> Env {
        Env::new(Backend::Sqlite).await
    }

    pub async fn with_store(store: Arc<dyn Store>, dir: tempfile::TempDir) -> Env {
        Env::build(store, dir, Arc::new(roster_directory::RealConnectors)).await
    }

    /// On SQLite, with these connectors instead of the real ones (a fake directory).
    pub async fn sqlite_with_connectors(connectors: Arc<dyn ConnectorFactory>) -> Env {
        Env::sqlite_observed(connectors, Arc::new(roster_app::observe::NoObserver)).await
    }

    /// [`Env::sqlite_with_connectors`], with `observer` hearing about runs and logons.
    pub async fn sqlite_observed(
        connectors: Arc<dyn ConnectorFactory>,
        observer: Arc<dyn roster_app::observe::Observer>,
    ) -> Env {
        init();
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(SqliteStore::open(dir.path()).await.unwrap());
        Env::build_observed(store, dir, connectors, observer).await
    }

    async fn build(
        store: Arc<dyn Store>,
        dir: tempfile::TempDir,
        connectors: Arc<dyn ConnectorFactory>,
    ) -> Env {
        Env::build_observed(
            store,
            dir,
            connectors,
            Arc::new(roster_app::observe::NoObserver),
        )
        .await
    }

    async fn build_observed(
        store: Arc<dyn Store>,
        dir: tempfile::TempDir,
        connectors: Arc<dyn ConnectorFactory>,
        observer: Arc<dyn roster_app::observe::Observer>,
    ) -> Env {
        let clock = Arc::new(ManualClock::new(T0));
        let secrets = roster_app::secrets::SecretBox::load(dir.path(), None).unwrap();
        let roster = Arc::new(
            Roster::new(
                store.clone(),
                clock.clone(),
                secrets,
                SessionPolicy { ttl_seconds: 3600 },
            )
            .with_connectors(connectors)
            .with_observer(observer),
        );
        roster.bootstrap(Some(ADMIN_PASSWORD)).await.unwrap();
        Env {
            roster,
            store,
            clock,
            dir,
        }
    }

    /// The administrator at the console (the CLI's caller).
    pub fn local_admin(&self) -> Caller {
        Caller::Local("test".into())
    }

    /// The database invariants hold: every test that writes ends with this.
    pub async fn check(&self) {
        let problems = self.store.check_consistency().await.unwrap();
        assert!(problems.is_empty(), "database inconsistent: {problems:#?}");
    }
}

/// Runs an async test body once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($body:ident) => {
        mod $body {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body($crate::support::Env::new($crate::support::Backend::Sqlite).await)
                    .await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$body($crate::support::Env::new($crate::support::Backend::Postgres).await)
                    .await;
            }
        }
    };
}

/// The deletion guard off, for tests about deletions themselves (the guard has its own tests, in
/// `deletion_guard`): any number and share of deletions applies.
pub fn unguarded() -> roster_core::directory::DeletionGuardSettings {
    roster_core::directory::DeletionGuardSettings {
        max_deletions: u64::MAX,
        max_deletions_percent: 100,
        ..Default::default()
    }
}

// ---- What the directory types' tests share: running, and looking at the users and the report ----

pub async fn run(env: &Env, kind: RunKind) -> Result<RunReport, AppError> {
    env.roster
        .run_directory(&env.local_admin(), kind, "test", &())
        .await
}

pub async fn sync(env: &Env) -> RunReport {
    run(env, RunKind::Sync)
        .await
        .unwrap_or_else(|e| panic!("sync failed: {e} ({})", e.code()))
}

pub async fn users(env: &Env) -> Vec<User> {
    env.store.list_users(0, 100_000).await.unwrap().items
}

/// The synchronized users' names (not the built-in admin), sorted.
pub async fn synced_names(env: &Env) -> Vec<String> {
    let mut names: Vec<String> = users(env)
        .await
        .into_iter()
        .filter(|u| !u.builtin_admin)
        .map(|u| u.name.to_string())
        .collect();
    names.sort();
    names
}

/// Every user and folder: "nothing changed" means this is equal.
pub async fn state(env: &Env) -> serde_json::Value {
    serde_json::json!({
        "users": users(env).await,
        "folders": env.store.list_folders().await.unwrap(),
    })
}

pub fn warnings(report: &RunReport) -> Vec<String> {
    report
        .lines
        .iter()
        .filter(|l| l.action == ReportAction::Warning)
        .map(|l| l.reason.to_string())
        .collect()
}

/// The code and message of a run that must have failed.
pub fn failed(result: Result<RunReport, AppError>) -> (&'static str, String) {
    match result {
        Err(AppError::RunFailed { code, message, .. }) => (code, message),
        other => panic!("expected a failed run, got {other:?}"),
    }
}
