// Settings (key → value, written with an audit line) and the audit log, with `write_audit`, which every
// change calls inside its own transaction. Included by `store.rs`.

async fn write_audit(
    conn: &mut Conn,
    actor: &Actor,
    action: &str,
    target: &str,
    details: &str,
    now: Timestamp,
) -> Result<()> {
    sqlx::query::<Db>(
        "INSERT INTO audit_log (at, actor, action, target, details) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(now.0)
    .bind(actor.as_str().to_owned())
    .bind(action.to_owned())
    .bind(target.to_owned())
    .bind(details.to_owned())
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn get_setting(store: &ThisStore, key: &str) -> Result<Option<String>> {
    let mut conn = store.pool.acquire().await?;
    Ok(sqlx::query_scalar::<Db, String>("SELECT value FROM settings WHERE key = $1")
        .bind(key.to_owned())
        .fetch_optional(&mut *conn)
        .await?)
}

async fn put_setting(store: &ThisStore, key: &str, value: &str, actor: &Actor, now: Timestamp, details: &str) -> Result<()> {
    let mut tx = store.pool.begin().await?;
    sqlx::query::<Db>(
        "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(key.to_owned())
    .bind(value.to_owned())
    .bind(now.0)
    .execute(&mut *tx)
    .await?;
    write_audit(&mut tx, actor, "setting.update", key, details, now).await?;
    tx.commit().await?;
    Ok(())
}

async fn default_privileges(store: &ThisStore) -> Result<DefaultPrivileges> {
    match get_setting(store, "default_privileges").await? {
        Some(raw) => serde_json::from_str(&raw).map_err(|e| StoreError::Invalid(e.to_string())),
        None => Ok(DefaultPrivileges::default()),
    }
}

async fn audit(store: &ThisStore, actor: &Actor, action: &str, target: &str, details: &str, now: Timestamp) -> Result<()> {
    let mut conn = store.pool.acquire().await?;
    write_audit(&mut conn, actor, action, target, details, now).await
}

/// Appends ` WHERE …` for the filter's texts (nothing for an empty filter): each one's column contains
/// it, both sides lowered by the database (SQLite lowers ASCII letters only, PostgreSQL by its locale),
/// so what was typed as written always matches.
fn push_audit_filter(q: &mut QueryBuilder<Db>, filter: &AuditFilter) {
    for (i, (column, text)) in filter.given().enumerate() {
        q.push(if i == 0 { " WHERE " } else { " AND " });
        q.push(format!("lower({column}) LIKE lower("));
        q.push_bind(contains_pattern(text));
        q.push(") ESCAPE '\\'");
    }
}

async fn search_audit(store: &ThisStore, filter: &AuditFilter, offset: i64, limit: i64) -> Result<Page<AuditEntry>> {
    let mut conn = store.pool.acquire().await?;
    let mut count = QueryBuilder::<Db>::new("SELECT COUNT(*) FROM audit_log");
    push_audit_filter(&mut count, filter);
    let total: i64 = count.build_query_scalar::<i64>().fetch_one(&mut *conn).await?;
    let mut page = QueryBuilder::<Db>::new("SELECT id, at, actor, action, target, details FROM audit_log");
    push_audit_filter(&mut page, filter);
    page.push(" ORDER BY id DESC LIMIT ");
    page.push_bind(limit);
    page.push(" OFFSET ");
    page.push_bind(offset);
    let rows = page.build().fetch_all(&mut *conn).await?;
    let items = rows
        .iter()
        .map(|r| {
            Ok(AuditEntry {
                id: r.try_get("id")?,
                at: Timestamp(r.try_get("at")?),
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                target: r.try_get("target")?,
                details: r.try_get("details")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Page { items, total })
}
