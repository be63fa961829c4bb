//! PostgreSQL, for several Roster instances sharing one user database.

use crate::{Result, StoreError};
use sqlx::postgres::PgPoolOptions;
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
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(15))
            .connect(url)
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

/// Connection errors may quote the URL, and the URL may hold a password.
fn redact(message: &str, url: &str) -> String {
    message.replace(url, "(the database URL)")
}

include!("sql/store.rs");
