//! The embedded default: one SQLite file in the data directory, in WAL mode so that the CLI and a running
//! server can use it at the same time (readers never block, writers wait up to the busy timeout).
//!
//! Most of the store goes through sqlx (the SQL shared with PostgreSQL, `sql/store.rs`); a
//! synchronization's snapshot and apply go through SQLite's own API (`sqlite/native.rs` says why).

mod native;

use crate::{Result, StoreError};
use sqlx::ConnectOptions;
use sqlx::Connection as _;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

type Db = sqlx::Sqlite;
type ThisStore = SqliteStore;
const BACKEND: &str = "sqlite";

pub(crate) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
    /// The database file, which `native.rs` opens connections of its own to.
    path: PathBuf,
    /// The data directory's shared lock, held while the store is open: `roster restore` refuses a data
    /// directory a process holds it on (`lock.rs`).
    _lock: Option<std::sync::Arc<crate::DataDirLock>>,
    /// The checkpoints after applies that may still run (`native.rs`, `checkpoint_in_background`);
    /// `close` waits for them.
    pending_checkpoints: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl SqliteStore {
    /// Opens `roster.db` in `data_dir`, creating both if needed, and brings the schema up to date.
    pub async fn open(data_dir: &Path) -> Result<SqliteStore> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Open(format!(
                "can't create the data directory {}: {e}",
                data_dir.display()
            ))
        })?;
        let lock = crate::DataDirLock::shared(data_dir)?.map(std::sync::Arc::new);
        let path = crate::StoreLocation::sqlite_file(data_dir);
        check_header(&path)?;
        create_private(&path)?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .page_size(16384)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            .log_slow_statements(crate::SLOW_LOG_LEVEL, crate::SLOW_STATEMENT);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_slow_level(crate::SLOW_LOG_LEVEL)
            .acquire_timeout(Duration::from_secs(15))
            .connect_with(options)
            .await
            .map_err(|e| with_path(StoreError::from_sqlx(e), &path))?;
        run_migrations(&MIGRATOR, &pool)
            .await
            .map_err(|e| with_path(e, &path))?;
        refold_keys(&pool).await.map_err(|e| with_path(e, &path))?;
        Ok(SqliteStore {
            pool,
            path,
            _lock: lock,
            pending_checkpoints: std::sync::Arc::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// How long a statement waits for another connection's lock (another process's write) before it fails
/// with `ST007-database-locked`: the pool's connections and `native.rs`'s alike.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The page cache of the connection a synchronization applies its plan on, in KiB (negative, as SQLite takes
/// it): the default 2 MB holds about 125 pages of 16 KiB, so a first sync whose directory ids arrive in
/// random order (Active Directory's GUIDs) spilled index pages to the WAL and read them back for every
/// few hundred users. 16 MB took the apply of 100,000 such users from about 1.04 s to 0.90 s
/// (`cargo run --release -p roster-store --example apply_timing`); 32 and 64 MB gained nothing more.
const APPLY_CACHE_SIZE: i64 = -16000;

/// The connection a synchronization applies its plan on: a connection of its own, not the pool's, opened
/// for the apply and closed after it, so that its settings can't leak into other work. (`native.rs` opens
/// it through rusqlite with these settings; this sqlx one is what the shared `apply_plan` of
/// `sql/sync.rs` asks for, which SQLite doesn't call.)
///
/// Foreign keys are not enforced on it. With them, SQLite looks up the parent of every row the apply
/// inserts (a user for each address, privilege and folder, a user and a folder for each access row):
/// about 0.15–0.2 s of a first sync of 100,000 users, for rows that `apply_plan` derives from the users it
/// inserts in the same transaction. What the constraints would also do there, their `ON DELETE` actions,
/// `delete_user_rows` does explicitly, and the consistency check after every test runs
/// `PRAGMA foreign_key_check`. Statement journals (a multi-row statement's undo record) are kept in
/// memory rather than in a temporary file.
async fn apply_connection(store: &SqliteStore) -> Result<SqliteConnection> {
    let options = (*store.pool.connect_options())
        .clone()
        .foreign_keys(false)
        .pragma("cache_size", APPLY_CACHE_SIZE.to_string())
        .pragma("temp_store", "MEMORY");
    SqliteConnection::connect_with(&options)
        .await
        .map_err(StoreError::from_sqlx)
}

/// Closes the apply's connection rather than dropping it: its thread holds the tracing span of the last
/// statement it ran (the commit, in the apply's span) until it goes on to the next command, and a CLI sync
/// that ended first lost the span's close line (`apply{..}: close time.busy=..`, issue 18 item 9).
/// After the commit: a failure to close is logged, never reported as the apply's (it is committed).
async fn finish_apply_connection(conn: SqliteConnection) {
    if let Err(e) = conn.close().await {
        tracing::debug!(error = %e, "closing the apply's connection after its commit");
    }
}

// The synchronization's hot paths, which `sql/store.rs` hands to the backend's own: SQLite's go through
// rusqlite. `sql/sync.rs`'s versions of them (PostgreSQL's) are compiled here too, and unused.
use native::{
    apply_plan as backend_apply_plan, finish_checkpoints as before_close,
    snapshot as backend_snapshot, snapshot_touched as backend_snapshot_touched,
};

/// `Store::backup`: a consistent copy of the live database (`backup.rs`).
async fn backup_database(
    store: &SqliteStore,
    dest: &Path,
    companions: &[crate::Companion],
    now: roster_core::Timestamp,
) -> Result<crate::BackupSummary> {
    crate::backup::backup_sqlite(&store.pool, dest, companions, now).await
}

/// SQLite's own check of the file (pages, indexes against their tables, constraints), for
/// `check_invariants`.
async fn storage_problems(store: &SqliteStore) -> Result<Vec<String>> {
    let mut conn = store.pool.acquire().await?;
    crate::backup::integrity_problems(&mut conn)
        .await
        .map(|lines| {
            lines
                .into_iter()
                .map(|l| format!("SQLite's integrity check: {l}"))
                .collect()
        })
}

fn with_path(e: StoreError, path: &Path) -> StoreError {
    match e {
        StoreError::Corrupt { detail, .. } => StoreError::Corrupt {
            path: path.display().to_string(),
            detail,
        },
        other => other,
    }
}

/// A new database file is created empty, readable by its owner only, before SQLite opens it: it holds
/// password hashes and session tokens' hashes, and SQLite creates the WAL and shared-memory files with the
/// database file's permissions. The umask (often 022) would otherwise make all three world-readable. An
/// existing file keeps the permissions its administrator gave it.
fn create_private(path: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(StoreError::Open(format!(
            "can't create {}: {e}",
            path.display()
        ))),
    }
}

/// SQLite would only notice a foreign file at the first query, with a terse message: look first.
fn check_header(path: &Path) -> Result<()> {
    use std::io::Read;
    let Ok(mut f) = std::fs::File::open(path) else {
        return Ok(());
    };
    let mut header = [0_u8; 16];
    match f.read(&mut header) {
        Ok(0) => Ok(()),
        Ok(n) if n == 16 && &header == b"SQLite format 3\0" => Ok(()),
        Ok(_) => Err(StoreError::Corrupt {
            path: path.display().to_string(),
            detail: "it does not start with the SQLite header".into(),
        }),
        Err(e) => Err(StoreError::Open(format!(
            "can't read {}: {e}",
            path.display()
        ))),
    }
}

include!("sql/store.rs");
include!("sqlite/apply_rows.rs");

// SQLite doesn't call the shared `snapshot`, `snapshot_touched` and `apply_plan` (`native.rs` replaces
// them): naming them here keeps the compiler from reporting them, and what only they use, as dead code.
// PostgreSQL compiles the same code and uses it, so whatever neither backend uses is still reported.
const _: () = {
    let _ = (snapshot, snapshot_touched, apply_plan);
};

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use std::sync::{Arc, Mutex};

    /// Collects the formatted events of one test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Regression (issue 19, item 10): sqlx logged every statement slower than a second, and every slow
    /// wait for a pooled connection, at WARN: hundreds of warnings on ordinary syncs and logons.
    #[tokio::test(flavor = "current_thread")]
    async fn slow_statements_are_not_warnings() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        // Global, not per thread: sqlx runs SQLite statements, and logs them, on a worker thread of its own.
        // This is the only test in this binary.
        tracing::subscriber::set_global_default(subscriber).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path()).await.unwrap();
        // A statement that takes longer than SLOW_STATEMENT: count further until it does.
        let mut rows: i64 = 2_000_000;
        loop {
            let started = std::time::Instant::now();
            let _: i64 = sqlx::query_scalar(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $1) SELECT count(*) FROM c",
            )
            .bind(rows)
            .fetch_one(&store.pool)
            .await
            .unwrap();
            if started.elapsed() > crate::SLOW_STATEMENT + Duration::from_millis(200) {
                break;
            }
            rows *= 2;
            assert!(rows < 1 << 40, "no statement was slow");
        }
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(log.contains("slow statement"), "{log}");
        assert!(!log.contains("WARN"), "{log}");
        assert!(log.contains("INFO"), "{log}");
    }
}
