// The schema: the migrations and the re-keying of names and addresses that run at open (each backend's
// `open` calls them), and the consistency check of the invariants the schema can't express, which every
// test that writes ends with. Included by `store.rs`.

/// Runs the embedded migrations, and turns "the database knows a migration we don't" into advice.
async fn run_migrations<'a, A>(migrator: &sqlx::migrate::Migrator, pool: A) -> Result<()>
where
    A: sqlx::Acquire<'a>,
    <A::Connection as std::ops::Deref>::Target: sqlx::migrate::Migrate,
{
    let known = migrator.iter().map(|m| m.version).max().unwrap_or(0);
    migrator.run(pool).await.map_err(|e| match e {
        sqlx::migrate::MigrateError::VersionMissing(found) => {
            StoreError::NewerSchema { found, known }
        }
        sqlx::migrate::MigrateError::Execute(inner) => StoreError::from_sqlx(inner),
        other => StoreError::Open(format!(
            "can't bring the database schema up to date: {other}"
        )),
    })
}

/// The version of [`roster_core::names::name_key`] that the stored `name_key` and `address_key` columns
/// were made with, in `meta` under `keys_folded` (absent: lowercase only, before 2026-11-24), and of
/// `name_skeleton` ([`roster_core::names::stored_skeleton`], from version 2).
const KEYS_FOLDED: i64 = 2;

/// Re-keys stored names and addresses once after `name_key` changed (it became a case folding: the
/// lowercase keys of a few letters, a word-final ς among them, differ). Runs at every open and does
/// nothing once `meta` says the keys are current. A name whose new key another user already holds (two
/// users the old keys told apart) keeps its old key and is logged: the store opens regardless, since
/// refusing to start would lock everyone out over a naming problem an administrator can fix by renaming.
async fn refold_keys(pool: &sqlx::Pool<Db>) -> Result<()> {
    let mut tx = pool.begin().await?;
    let folded: Option<i64> = sqlx::query_scalar::<Db, i64>("SELECT value FROM meta WHERE key = 'keys_folded'")
        .fetch_optional(&mut *tx)
        .await?;
    if folded.is_some_and(|v| v >= KEYS_FOLDED) {
        return Ok(());
    }
    let users: Vec<(i64, String, String)> =
        sqlx::query_as::<Db, (i64, String, String)>("SELECT id, name, name_key FROM users")
            .fetch_all(&mut *tx)
            .await?;
    let mut held: std::collections::HashSet<String> = users.iter().map(|(_, _, k)| k.clone()).collect();
    for (id, name, key) in &users {
        let new = roster_core::names::name_key(name);
        if new == *key {
            continue;
        }
        if held.contains(&new) {
            tracing::warn!(user = %name, "another user's name differs from this one only in case; rename one of them");
            continue;
        }
        sqlx::query::<Db>("UPDATE users SET name_key = $1 WHERE id = $2")
            .bind(&new)
            .bind(*id)
            .execute(&mut *tx)
            .await?;
        held.insert(new);
    }
    let addresses: Vec<(String, String)> =
        sqlx::query_as::<Db, (String, String)>("SELECT address_key, address FROM user_emails")
            .fetch_all(&mut *tx)
            .await?;
    let mut held: std::collections::HashSet<String> = addresses.iter().map(|(k, _)| k.clone()).collect();
    for (key, address) in &addresses {
        let new = roster_core::names::name_key(address);
        if new == *key {
            continue;
        }
        if held.contains(&new) {
            tracing::warn!(%address, "another user's address differs from this one only in case; change one of them");
            continue;
        }
        sqlx::query::<Db>("UPDATE user_emails SET address_key = $1 WHERE address_key = $2")
            .bind(&new)
            .bind(key)
            .execute(&mut *tx)
            .await?;
        held.insert(new);
    }
    // The skeletons, from the keys as they are now: only the names that aren't their own skeleton get one.
    let keys: Vec<(i64, String, Option<String>)> =
        sqlx::query_as::<Db, (i64, String, Option<String>)>("SELECT id, name_key, name_skeleton FROM users")
            .fetch_all(&mut *tx)
            .await?;
    for (id, key, stored) in keys {
        let skeleton = roster_core::names::stored_skeleton(&key);
        if skeleton != stored {
            sqlx::query::<Db>("UPDATE users SET name_skeleton = $1 WHERE id = $2")
                .bind(skeleton)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
    }
    // An upsert: several instances sharing a PostgreSQL database may start together and all re-key
    // (to the same keys); the later ones wait for the first and then update its row.
    sqlx::query::<Db>(
        "INSERT INTO meta (key, value) VALUES ('keys_folded', $1) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    )
    .bind(KEYS_FOLDED)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The invariants, and no run left running: what every test ends with. A run still marked running is not
/// a fault of the database (its process may be running it, or may have died, and the next run takes it for
/// dead), so `roster db check` leaves it out (`check_invariants`); a test's runs must all have ended.
async fn check_consistency(store: &ThisStore) -> Result<Vec<String>> {
    let mut problems = check_invariants(store).await?;
    let running: Vec<String> =
        sqlx::query_scalar::<Db, String>("SELECT CAST(id AS TEXT) FROM sync_runs WHERE status = 'running'")
            .fetch_all(&store.pool)
            .await?;
    if !running.is_empty() {
        problems.push(format!("runs still marked running: {}", running.join(", ")));
    }
    Ok(problems)
}

/// The invariants the schema can't express, and (SQLite) the file's own integrity: `roster db check`.
async fn check_invariants(store: &ThisStore) -> Result<Vec<String>> {
    // First: if the file itself is damaged, what follows may fail or mislead.
    let mut problems = storage_problems(store).await?;
    let mut conn = store.pool.acquire().await?;
    let checks: [(&str, &str); 5] = [
        ("users without an own archive folder", "SELECT u.name FROM users u WHERE NOT EXISTS (SELECT 1 FROM folders f WHERE f.owner_user_id = u.id)"),
        ("orphaned folders without messages", "SELECT name FROM folders WHERE owner_user_id IS NULL AND message_count = 0"),
        ("users whose name key doesn't match", "SELECT name FROM users WHERE name_key LIKE '\u{1}%'"),
        ("built-in administrators", "SELECT name FROM users WHERE builtin_admin = TRUE GROUP BY name HAVING COUNT(*) > 1"),
        ("half-linked users", "SELECT name FROM users WHERE (dir_source IS NULL) <> (dir_id IS NULL)"),
    ];
    for (what, sql) in checks {
        let names: Vec<String> = sqlx::query_scalar::<Db, String>(sql).fetch_all(&mut *conn).await?;
        if !names.is_empty() {
            problems.push(format!("{what}: {}", names.join(", ")));
        }
    }
    // SQLite applies a synchronization's plan without enforcing foreign keys (sqlite.rs,
    // `apply_connection`): a row that points at nothing is a bug there. PostgreSQL checks the references
    // of the rows a synchronization writes per statement, by triggers (migration 0012): looked at here
    // too, as every test ends with this. Named by the column and the values that refer to nothing (the
    // rows of a WITHOUT ROWID table have no rowid to name them by), so that an administrator can look them
    // up.
    if BACKEND == "postgres" {
        let references: [(&str, &str, &str); 4] = [
            ("user_emails", "user_id", "users"),
            ("folders", "owner_user_id", "users"),
            ("folder_access", "user_id", "users"),
            ("folder_access", "folder_id", "folders"),
        ];
        for (table, from, parent) in references {
            let values: Vec<String> = sqlx::query_scalar::<Db, String>(sqlx::AssertSqlSafe(format!(
                "SELECT DISTINCT CAST(c.{from} AS TEXT) FROM {table} c WHERE c.{from} IS NOT NULL \
                 AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.id = c.{from}) ORDER BY 1 LIMIT 20"
            )))
            .fetch_all(&mut *conn)
            .await?;
            if !values.is_empty() {
                problems.push(format!("{table} rows whose {from} refers to no {parent} row: {}", values.join(", ")));
            }
        }
    }
    if BACKEND == "sqlite" {
        let dangling: Vec<(String, String, i64)> = sqlx::query_as::<Db, (String, String, i64)>(
            "SELECT DISTINCT \"table\", \"parent\", fkid FROM pragma_foreign_key_check ORDER BY 1, 3",
        )
        .fetch_all(&mut *conn)
        .await?;
        for (table, parent, fkid) in dangling {
            let columns: Vec<(String, Option<String>)> = sqlx::query_as::<Db, (String, Option<String>)>(
                "SELECT \"from\", \"to\" FROM pragma_foreign_key_list($1) WHERE id = $2 ORDER BY seq",
            )
            .bind(&table)
            .bind(fkid)
            .fetch_all(&mut *conn)
            .await?;
            let [(from, Some(to))] = columns.as_slice() else {
                problems.push(format!("{table} rows refer to missing rows of {parent}"));
                continue;
            };
            if [&table, &parent, from, to].iter().any(|name| name.contains('"')) {
                problems.push(format!("{table} rows refer to missing rows of {parent}"));
                continue;
            }
            // Names from the schema itself (and without a quote), not from input.
            let values: Vec<String> = sqlx::query_scalar::<Db, String>(sqlx::AssertSqlSafe(format!(
                "SELECT DISTINCT CAST(c.\"{from}\" AS TEXT) FROM \"{table}\" c WHERE c.\"{from}\" IS NOT NULL \
                 AND NOT EXISTS (SELECT 1 FROM \"{parent}\" p WHERE p.\"{to}\" = c.\"{from}\") ORDER BY 1 LIMIT 20"
            )))
            .fetch_all(&mut *conn)
            .await?;
            problems.push(format!(
                "{table} rows whose {from} refers to no {parent} row: {}",
                values.join(", ")
            ));
        }
    }
    let keys: Vec<(String, String, Option<String>)> =
        sqlx::query_as::<Db, (String, String, Option<String>)>("SELECT name, name_key, name_skeleton FROM users")
            .fetch_all(&mut *conn)
            .await?;
    for (name, key, skeleton) in keys {
        if roster_core::names::name_key(&name) != key {
            problems.push(format!("user {name:?} has the stale name key {key:?}"));
        } else if roster_core::names::stored_skeleton(&key) != skeleton {
            problems.push(format!("user {name:?} has the stale name skeleton {skeleton:?}"));
        }
    }
    let keys: Vec<(String, String)> =
        sqlx::query_as::<Db, (String, String)>("SELECT address, address_key FROM user_emails")
            .fetch_all(&mut *conn)
            .await?;
    for (address, key) in keys {
        if roster_core::names::name_key(&address) != key {
            problems.push(format!("address {address:?} has the stale key {key:?}"));
        }
    }
    // `run_lines` finds line n in chunk n / LINES_PER_CHUNK: that holds only if a run's chunks are numbered
    // from 0 without gaps, every chunk but the last is full, and each holds the lines it says it does.
    {
        let mut rows = sqlx::query::<Db>(
            "SELECT run_id, chunk, line_count, lines, packed FROM sync_run_line_chunks ORDER BY run_id, chunk",
        )
        .fetch(&mut *conn);
        // (run, chunk, line count) of the chunk before.
        let mut previous: Option<(i64, i64, i64)> = None;
        while let Some(row) = rows.try_next().await? {
            let run: i64 = row.try_get("run_id")?;
            let chunk: i64 = row.try_get("chunk")?;
            let count: i64 = row.try_get("line_count")?;
            let expected = match previous {
                Some((r, c, n)) if r == run => {
                    if n != LINES_PER_CHUNK_I64 {
                        problems.push(format!("run #{run}: chunk {c} holds {n} lines but is not the run's last"));
                    }
                    c.saturating_add(1)
                }
                _ => 0,
            };
            if chunk != expected {
                problems.push(format!("run #{run}: report line chunk {chunk} where chunk {expected} was expected"));
            }
            if !(1..=LINES_PER_CHUNK_I64).contains(&count) {
                problems.push(format!("run #{run}: chunk {chunk} has a line count of {count}"));
            }
            match decode_lines(&row.try_get::<String, _>("lines")?, row.try_get::<Option<Vec<u8>>, _>("packed")?.as_deref()) {
                Ok(lines) if i64::try_from(lines.len()).ok() == Some(count) => {}
                Ok(lines) => problems.push(format!(
                    "run #{run}: chunk {chunk} says it holds {count} lines but holds {}",
                    lines.len()
                )),
                Err(e) => problems.push(format!("run #{run}: chunk {chunk}: {e}")),
            }
            previous = Some((run, chunk, count));
        }
    }
    // Every user's privileges read back (a value that doesn't would make the user unreadable).
    let mut admins = 0_usize;
    {
        let mut rows = sqlx::query_as::<Db, (String, String, bool)>(
            "SELECT name, privileges, builtin_admin FROM users WHERE privileges <> '' OR builtin_admin = TRUE",
        )
        .fetch(&mut *conn);
        while let Some((name, raw, builtin_admin)) = rows.try_next().await? {
            match decode_privileges(&raw) {
                Ok(privileges) if builtin_admin => {
                    admins += 1;
                    if privileges.len() != Privilege::ALL.len() {
                        problems.push("the built-in administrator lacks some privileges".into());
                    }
                }
                Ok(_) => {}
                Err(e) => problems.push(format!("user {name:?}: {e}")),
            }
        }
    }
    if admins != 1 {
        problems.push(format!("{admins} built-in administrators (expected 1)"));
    }
    Ok(problems)
}
