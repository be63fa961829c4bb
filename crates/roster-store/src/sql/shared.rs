// What every concern's SQL uses: the connection type, the chunk size of multi-row statements, `IN` lists,
// and the counters in `meta` (the user database version and the id counters). Included by `store.rs`.

type Conn = <Db as sqlx::Database>::Connection;

/// Rows per multi-row statement: well under both SQLite's and PostgreSQL's bound-parameter limits.
const CHUNK: usize = 1000;

/// Appends `v1, v2, …)` as bound values: the tail of an `IN (` list.
fn push_in_list<T>(q: &mut QueryBuilder<Db>, values: impl IntoIterator<Item = T>)
where
    T: for<'q> sqlx::Encode<'q, Db> + sqlx::Type<Db>,
{
    let mut sep = q.separated(", ");
    for v in values {
        sep.push_bind(v);
    }
    q.push(")");
}

/// A `LIKE … ESCAPE '\\'` pattern for "contains `text`": `%`, `_` and `\\` stand for themselves.
fn contains_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// Bumps the user database version. Every transaction that changes users starts with it: the write
/// takes the write lock at once (no SQLite lock upgrade later), and `apply_plan` uses the version to
/// notice that the users changed since its snapshot.
async fn bump_version(conn: &mut Conn) -> Result<i64> {
    Ok(sqlx::query_scalar::<Db, i64>(
        "UPDATE meta SET value = value + 1 WHERE key = 'user_db_version' RETURNING value",
    )
    .fetch_one(&mut *conn)
    .await?)
}

/// The user database version, as [`bump_version`] left it.
async fn read_version(conn: &mut Conn) -> Result<i64> {
    Ok(sqlx::query_scalar::<Db, i64>("SELECT value FROM meta WHERE key = 'user_db_version'")
        .fetch_one(&mut *conn)
        .await?)
}

/// Reserves `n` consecutive ids from a counter in `meta`; returns the first.
async fn alloc_ids(conn: &mut Conn, counter: &'static str, n: usize) -> Result<i64> {
    let n = i64::try_from(n).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let next: i64 = sqlx::query_scalar::<Db, i64>(
        "UPDATE meta SET value = value + $1 WHERE key = $2 RETURNING value",
    )
    .bind(n)
    .bind(counter)
    .fetch_one(&mut *conn)
    .await?;
    Ok(next - n)
}
