// Logon sessions, stored by the hash of their token. Included by `store.rs`.

async fn create_session(store: &ThisStore, token_hash: &str, user_id: i64, now: Timestamp, expires_at: Timestamp) -> Result<()> {
    let mut conn = store.pool.acquire().await?;
    sqlx::query::<Db>("DELETE FROM sessions WHERE expires_at <= $1")
        .bind(now.0)
        .execute(&mut *conn)
        .await?;
    sqlx::query::<Db>("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
        .bind(token_hash.to_owned())
        .bind(user_id)
        .bind(now.0)
        .bind(expires_at.0)
        .execute(&mut *conn)
        .await?;
    Ok(())
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
