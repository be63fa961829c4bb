//! PostgreSQL, for several Roster instances sharing one user database.

use crate::{Result, StoreError};
use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

type Db = sqlx::Postgres;
type ThisStore = PgStore;
const BACKEND: &str = "postgres";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: sqlx::PgPool,
}

impl PgStore {
    pub async fn open(url: &str) -> Result<PgStore> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| {
                StoreError::Open(format!(
                    "can't connect to PostgreSQL: {}",
                    redact(&e.to_string(), url)
                ))
            })?
            .log_slow_statements(crate::SLOW_LOG_LEVEL, crate::SLOW_STATEMENT);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(15))
            .acquire_slow_level(crate::SLOW_LOG_LEVEL)
            .connect_with(options)
            .await
            .map_err(|e| {
                StoreError::Open(format!(
                    "can't connect to PostgreSQL: {}",
                    redact(&e.to_string(), url)
                ))
            })?;
        run_migrations(&MIGRATOR, &pool).await?;
        refold_keys(&pool).await?;
        Ok(PgStore { pool })
    }
}

/// The connection a synchronization applies its plan on: one of the pool's. (SQLite opens one of its own
/// with other settings; PostgreSQL checks foreign keys cheaply through its indexes.)
async fn apply_connection(store: &PgStore) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>> {
    Ok(store.pool.acquire().await?)
}

/// The apply's connection goes back to the pool.
async fn finish_apply_connection(conn: sqlx::pool::PoolConnection<sqlx::Postgres>) {
    drop(conn);
}

/// `Store::close`'s part before the pool closes: nothing on PostgreSQL (the server checkpoints).
async fn before_close(_store: &PgStore) {}

// The synchronization's hot paths, which `sql/store.rs` hands to the backend's own: PostgreSQL's are the
// shared SQL of `sql/sync.rs`.
use self::{
    apply_plan as backend_apply_plan, snapshot as backend_snapshot,
    snapshot_touched as backend_snapshot_touched,
};

/// `roster backup` copies the SQLite file; a PostgreSQL database is backed up with `pg_dump`.
async fn backup_database(
    _store: &PgStore,
    _dest: &std::path::Path,
    _companions: &[crate::Companion],
    _now: roster_core::Timestamp,
) -> Result<crate::BackupSummary> {
    Err(StoreError::BackupUnsupported)
}

/// PostgreSQL checks its own pages; there is no cheap equivalent of SQLite's integrity check (amcheck is
/// an extension an administrator installs).
async fn storage_problems(_store: &PgStore) -> Result<Vec<String>> {
    Ok(Vec::new())
}

/// Connection errors may quote the URL, and the URL may hold a password.
fn redact(message: &str, url: &str) -> String {
    message.replace(url, "(the database URL)")
}

include!("sql/store.rs");
include!("postgres/apply_rows.rs");

#[cfg(test)]
mod tests {
    use super::CopyRow;

    /// `COPY`'s text format reads a tab, a newline, a carriage return and a backslash as syntax, and `\N`
    /// as NULL: inside a value each is escaped (a sync can't bring the control characters, which the
    /// planner drops, but any other caller of the bulk writes could).
    #[test]
    fn copy_rows_escape_what_copy_reads_as_syntax() {
        let mut row = CopyRow { buf: Vec::new() };
        row.text("a\tb\nc\rd\\e");
        row.text("\\N");
        row.text_or_null(None);
        row.int(-42);
        row.boolean(true);
        assert_eq!(
            String::from_utf8(row.buf).ok().as_deref(),
            Some("a\\tb\\nc\\rd\\\\e\t\\\\N\t\\N\t-42\tt\t")
        );
    }
}
