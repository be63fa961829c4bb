//! The embedded default: one SQLite file in the data directory, in WAL mode so that the CLI and a running
//! server can use it at the same time (readers never block, writers wait up to the busy timeout).

use crate::{Result, StoreError};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::path::{Path, PathBuf};
use std::time::Duration;

type Db = sqlx::Sqlite;
type ThisStore = SqliteStore;
const BACKEND: &str = "sqlite";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: sqlx::SqlitePool,
    path: PathBuf,
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
        let path = crate::StoreLocation::sqlite_file(data_dir);
        check_header(&path)?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .page_size(16384)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(15))
            .connect_with(options)
            .await
            .map_err(|e| with_path(StoreError::from_sqlx(e), &path))?;
        crate::postgres::run_migrations(&MIGRATOR, &pool)
            .await
            .map_err(|e| with_path(e, &path))?;
        Ok(SqliteStore { pool, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
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

include!("queries.rs");
