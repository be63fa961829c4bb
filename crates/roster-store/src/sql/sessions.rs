// Logon sessions, stored by the hash of their token. Included by `store.rs`.

async fn create_session(store: &ThisStore, token_hash: &str, user_id: i64, now: Timestamp, expires_at: Timestamp) -> Result<()> {
    let mut conn = store.pool.acquire().await?;
    sqlx::query::<Db>("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(token_hash.to_owned())
        .bind(user_id)
        .bind(now.0)
        .bind(expires_at.0)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn purge_expired_sessions(store: &ThisStore, now: Timestamp) -> Result<u64> {
    let mut conn = store.pool.acquire().await?;
    Ok(sqlx::query::<Db>("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(now.0)
        .execute(&mut *conn)
        .await?
        .rows_affected())
}

async fn session_user(store: &ThisStore, token_hash: &str, now: Timestamp) -> Result<Option<User>> {
    let mut conn = store.pool.acquire().await?;
    let row: Option<(i64, i64)> = sqlx::query_as::<Db, (i64, i64)>(
        "SELECT user_id, expires_at FROM sessions WHERE token_hash = $1",
    )
    .bind(token_hash.to_owned())
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some((uid, expires)) if expires > now.0 => Ok(load_users(&mut conn, &[uid]).await?.into_iter().next()),
        Some(_) => {
            sqlx::query::<Db>("DELETE FROM sessions WHERE token_hash = $1")
                .bind(token_hash.to_owned())
                .execute(&mut *conn)
                .await?;
            Ok(None)
        }
        None => Ok(None),
    }
}

async fn delete_session(store: &ThisStore, token_hash: &str) -> Result<()> {
    let mut conn = store.pool.acquire().await?;
    sqlx::query::<Db>("DELETE FROM sessions WHERE token_hash = $1")
        .bind(token_hash.to_owned())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

// Logon throttling (issue 20): an account's failed logons in a row, keyed by the name as typed.

async fn logon_throttle(store: &ThisStore, name_key: &str) -> Result<Option<ThrottleState>> {
    let mut conn = store.pool.acquire().await?;
    let row: Option<(i64, i64, Option<i64>)> = sqlx::query_as::<Db, (i64, i64, Option<i64>)>(
        "SELECT failures, last_failure_at, locked_until FROM logon_throttle WHERE name_key = $1",
    )
    .bind(name_key.to_owned())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|(failures, last, locked)| {
        Ok(ThrottleState {
            failures: u32::try_from(failures).map_err(|e| StoreError::Invalid(format!("logon failures: {e}")))?,
            last_failure_at: Timestamp(last),
            locked_until: locked.map(Timestamp),
        })
    })
    .transpose()
}

async fn set_logon_throttle(store: &ThisStore, name_key: &str, state: &ThrottleState) -> Result<()> {
    let mut conn = store.pool.acquire().await?;
    sqlx::query::<Db>(
        "INSERT INTO logon_throttle (name_key, failures, last_failure_at, locked_until) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (name_key) DO UPDATE SET failures = $2, last_failure_at = $3, locked_until = $4",
    )
    .bind(name_key.to_owned())
    .bind(i64::from(state.failures))
    .bind(state.last_failure_at.0)
    .bind(state.locked_until.map(|t| t.0))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn clear_logon_throttle(store: &ThisStore, name_key: &str) -> Result<bool> {
    let mut conn = store.pool.acquire().await?;
    let cleared = sqlx::query::<Db>("DELETE FROM logon_throttle WHERE name_key = $1")
        .bind(name_key.to_owned())
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(cleared > 0)
}
