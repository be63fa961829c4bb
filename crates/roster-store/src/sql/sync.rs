// A synchronization's reads and writes of users: the snapshot the planner works from, the user database
// version that tells whether it is stale, and `apply_plan`, which applies a plan in one transaction.
// `delete_user_rows` is here because deleting departed users is the apply's main work; deleting a user by
// hand (`users.rs`) uses it too. How the apply writes rows is the backend's (`delete_users_rows`,
// `update_users_rows`, `insert_users_rows`, `insert_sync_emails`, `mark_apply`): sqlite/apply_rows.rs and
// postgres/apply_rows.rs. Included by `store.rs`.

/// Deletes a user: an own folder with messages stays without an owner, an empty one goes.
async fn delete_user_rows(conn: &mut Conn, id: i64, now: Timestamp) -> Result<bool> {
    let kept = delete_users_rows(conn, &[id], now).await?;
    Ok(kept.contains(&id))
}

/// The columns a [`CurrentUser`] is read from (without its addresses), for a `WHERE` and `ORDER BY u.id`.
const CURRENT_USERS: &str = "SELECT u.id, u.name, u.full_name, u.auth, u.builtin_admin, u.dir_source, u.dir_id, u.dir_dn, \
     u.departed_at, COALESCE(f.message_count, 0) AS messages \
     FROM users u LEFT JOIN folders f ON f.owner_user_id = u.id";

fn current_user(row: &<Db as sqlx::Database>::Row) -> Result<CurrentUser> {
    Ok(CurrentUser {
        departed_at: row.try_get::<Option<i64>, _>("departed_at")?.map(Timestamp),
        id: row.try_get("id")?,
        name: parse_name(&row.try_get::<String, _>("name")?)?,
        full_name: row.try_get("full_name")?,
        emails: Vec::new(),
        auth: parse_auth(&row.try_get::<String, _>("auth")?)?,
        link: link_from(row.try_get("dir_source")?, row.try_get("dir_id")?, row.try_get("dir_dn")?),
        builtin_admin: row.try_get("builtin_admin")?,
        folder_messages: row.try_get("messages")?,
    })
}

/// Gives each of `users` (in id order) its addresses from `rows` (`user_id, address`, in the order of
/// `user_id, position`): both lists are walked side by side instead of indexed, and each user gets a list
/// of exactly its addresses.
async fn attach_emails(
    mut rows: futures_util::stream::BoxStream<'_, std::result::Result<<Db as sqlx::Database>::Row, sqlx::Error>>,
    users: &mut [CurrentUser],
) -> Result<()> {
    let mut owner = users.iter_mut().peekable();
    let mut pending: Vec<EmailAddress> = Vec::new();
    let mut pending_for: Option<i64> = None;
    loop {
        let row = rows.try_next().await?;
        let uid: Option<i64> = row.as_ref().map(|r| r.try_get("user_id")).transpose()?;
        if pending_for.is_some() && uid != pending_for {
            while let Some(u) = owner.next_if(|u| Some(u.id) <= pending_for) {
                if Some(u.id) == pending_for {
                    // Not `mem::take`: that would keep the scratch list's spare capacity.
                    u.emails = Vec::with_capacity(pending.len());
                    u.emails.append(&mut pending);
                }
            }
            pending.clear();
        }
        let (Some(row), Some(uid)) = (row, uid) else { break };
        pending_for = Some(uid);
        pending.push(parse_email(&row.try_get::<String, _>("address")?)?);
    }
    Ok(())
}

async fn snapshot(store: &ThisStore) -> Result<Snapshot> {
    // One read transaction, so the users, addresses and version belong together.
    let mut tx = store.pool.begin().await?;
    let version = read_version(&mut tx).await?;
    // Streamed, not fetched whole: at 100,000 users the rows alone would hold more than 100 MB. Sized
    // exactly: a vector grown by doubling would hold up to twice the users' memory.
    let count: i64 = sqlx::query_scalar::<Db, i64>("SELECT COUNT(*) FROM users").fetch_one(&mut *tx).await?;
    let mut users: Vec<CurrentUser> = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    {
        let mut rows = sqlx::query::<Db>(sqlx::AssertSqlSafe(format!("{CURRENT_USERS} ORDER BY u.id"))).fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            users.push(current_user(&row)?);
        }
    }
    let rows = sqlx::query::<Db>("SELECT user_id, address FROM user_emails ORDER BY user_id, position").fetch(&mut *tx);
    attach_emails(rows, &mut users).await?;
    tx.commit().await?;
    Ok(Snapshot { version, users })
}

/// The most keys [`snapshot_touched`] looks users up by; a larger change loads every user (its read
/// took a while anyway, and one statement's bound values are limited).
const TOUCHED_KEYS_LIMIT: usize = 4 * CHUNK;

/// The users a change can touch ([`roster_core::plan::Touched::touches`], in SQL), by the indexes on the
/// link, the name key, the skeleton and the address key: the cost follows the size of the change.
async fn snapshot_touched(store: &ThisStore, touched: &roster_core::plan::Touched) -> Result<Snapshot> {
    if touched.len() > TOUCHED_KEYS_LIMIT {
        return snapshot(store).await;
    }
    let mut tx = store.pool.begin().await?;
    let version = read_version(&mut tx).await?;
    let mut ids = QueryBuilder::<Db>::new("SELECT id FROM users WHERE FALSE");
    if !touched.link_ids.is_empty() {
        ids.push(" OR (dir_source = ").push_bind(touched.source.clone()).push(" AND dir_id IN (");
        push_in_list(&mut ids, touched.link_ids.iter().cloned());
        ids.push(")");
    }
    // A name that is its own skeleton has none stored: look the skeletons up among the keys too.
    for list in [&touched.name_keys, &touched.skeletons] {
        if !list.is_empty() {
            ids.push(" OR name_key IN (");
            push_in_list(&mut ids, list.iter().cloned());
        }
    }
    if !touched.skeletons.is_empty() {
        ids.push(" OR name_skeleton IN (");
        push_in_list(&mut ids, touched.skeletons.iter().cloned());
    }
    if !touched.address_keys.is_empty() {
        ids.push(" OR id IN (SELECT user_id FROM user_emails WHERE address_key IN (");
        push_in_list(&mut ids, touched.address_keys.iter().cloned());
        ids.push(")");
    }
    let mut ids: Vec<i64> = ids.build_query_scalar::<i64>().fetch_all(&mut *tx).await?;
    ids.sort_unstable();
    ids.dedup();
    let mut users: Vec<CurrentUser> = Vec::with_capacity(ids.len());
    let mut addresses: Vec<(i64, String)> = Vec::new();
    for chunk in ids.chunks(CHUNK) {
        let mut q = QueryBuilder::<Db>::new(CURRENT_USERS);
        q.push(" WHERE u.id IN (");
        push_in_list(&mut q, chunk.iter().copied());
        q.push(" ORDER BY u.id");
        for row in q.build().fetch_all(&mut *tx).await? {
            users.push(current_user(&row)?);
        }
        let mut q = QueryBuilder::<Db>::new("SELECT user_id, address FROM user_emails WHERE user_id IN (");
        push_in_list(&mut q, chunk.iter().copied());
        q.push(" ORDER BY user_id, position");
        addresses.extend(q.build_query_as::<(i64, String)>().fetch_all(&mut *tx).await?);
    }
    tx.commit().await?;
    // The chunks are in id order, so the addresses are in the order `attach_emails` walks them.
    let mut by_user: HashMap<i64, Vec<EmailAddress>> = HashMap::new();
    for (user_id, address) in addresses {
        by_user.entry(user_id).or_default().push(parse_email(&address)?);
    }
    for user in &mut users {
        if let Some(emails) = by_user.remove(&user.id) {
            user.emails = emails;
        }
    }
    Ok(Snapshot { version, users })
}

/// How many users are linked to entries of `source`.
async fn count_linked(store: &ThisStore, source: &str) -> Result<u64> {
    let n: i64 = sqlx::query_scalar::<Db, i64>(
        "SELECT COUNT(*) FROM users WHERE dir_source = $1 AND dir_id IS NOT NULL",
    )
    .bind(source.to_owned())
    .fetch_one(&store.pool)
    .await?;
    Ok(u64::try_from(n).unwrap_or(0))
}

async fn user_db_version(store: &ThisStore) -> Result<i64> {
    let mut conn = store.pool.acquire().await?;
    read_version(&mut conn).await
}

/// A test hook: milliseconds the apply waits, inside its transaction, before it commits.
const APPLY_DELAY_VARIABLE: &str = "ROSTER_TEST_APPLY_DELAY_MS";

#[allow(clippy::too_many_arguments)]
async fn apply_plan(
    store: &ThisStore,
    run_id: i64,
    expected_version: i64,
    changes: &PlannedChanges,
    defaults: &DefaultPrivileges,
    record: &mut RunRecord,
    actor: &Actor,
    now: Timestamp,
) -> Result<AppliedPlan> {
    let mut conn = apply_connection(store).await?;
    let mut tx = sqlx::Acquire::begin(&mut conn).await?;
    let version = bump_version(&mut tx).await?;
    if version != expected_version + 1 {
        return Err(StoreError::StaleSnapshot);
    }
    // A run that another process declared dead must not apply behind its back, nor one that an
    // administrator asked to cancel. The run's row stays locked until the commit, which records the outcome:
    // a cancel that comes now waits, then finds the run finished (the commit wins).
    let claimed = sqlx::query::<Db>(
        "UPDATE sync_runs SET phase = 'applying', heartbeat_at = $1 WHERE id = $2 AND status = 'running' \
         AND cancel_requested_at IS NULL",
    )
    .bind(now.0)
    .bind(run_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        let row = sqlx::query::<Db>("SELECT status, cancel_requested_by FROM sync_runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&mut *tx)
            .await?;
        let by = match &row {
            Some(row) if row.try_get::<String, _>("status")? == "running" => {
                row.try_get::<Option<String>, _>("cancel_requested_by")?
            }
            _ => None,
        };
        return Err(match by {
            Some(by) => StoreError::CancelRequested { run_id, by },
            None => StoreError::RunNotRunning(run_id),
        });
    }
    // The rows written below refer to users this transaction inserts, or go with users it deletes: the
    // backend may leave their references unchecked (SQLite's apply connection doesn't enforce foreign
    // keys; PostgreSQL's reference triggers skip this transaction).
    mark_apply(&mut tx).await?;
    // Order matters for the unique constraints: free names and addresses before anyone takes them.
    let mut applied = AppliedPlan::default();
    let deleted: Vec<i64> = changes.delete.iter().map(|d| d.user_id).collect();
    let kept = delete_users_rows(&mut tx, &deleted, now).await?;
    for d in &changes.delete {
        let kept = kept.contains(&d.user_id);
        if kept != d.keep_folder {
            applied.folders_decided_at_apply.push((d.user_id, kept));
        }
    }
    // Suspensions (a grace period is set): the users stay, marked departed.
    let suspended: Vec<i64> = changes.suspend.iter().map(|s| s.user_id).collect();
    for chunk in suspended.chunks(CHUNK) {
        let mut q = QueryBuilder::<Db>::new("UPDATE users SET departed_at = ");
        q.push_bind(now.0).push(", updated_at = ").push_bind(now.0).push(" WHERE id IN (");
        push_in_list(&mut q, chunk.iter().copied());
        q.build().execute(&mut *tx).await?;
    }
    let new_emails: Vec<i64> = changes.update.iter().filter(|u| u.emails.is_some()).map(|u| u.user_id).collect();
    for chunk in new_emails.chunks(CHUNK) {
        let mut q = QueryBuilder::<Db>::new("DELETE FROM user_emails WHERE user_id IN (");
        push_in_list(&mut q, chunk.iter().copied());
        q.build().execute(&mut *tx).await?;
    }
    // Renames go through a temporary key so that swaps (a -> b, b -> a) never collide. How the rows are
    // written is the backend's (`update_users_rows`, `insert_users_rows`, `insert_sync_emails`): SQLite's
    // statements run in process, PostgreSQL's are sent in bulk (postgres/apply_rows.rs).
    update_users_rows(&mut tx, &changes.update, now).await?;
    if !changes.create.is_empty() {
        let first = alloc_ids(&mut tx, "next_user_id", changes.create.len()).await?;
        // In the order of their name keys: see `new_users_in_key_order`.
        let keyed = crate::sync::new_users_in_key_order(&changes.create);
        let with_ids: Vec<(i64, &roster_core::plan::NewUser)> = (first..).zip(keyed.iter().map(|(_, u)| *u)).collect();
        drop(keyed);
        insert_users_rows(&mut tx, &with_ids, &encode_privileges(&defaults.privileges), now).await?;
        // The new users hold the ids first.. (the counter was moved past them in this transaction):
        // their own folders and access to them are derived from those rows by the database, without a
        // bound value per row. (`COPY` of the same rows from here was measured too: no faster on
        // PostgreSQL, BENCHMARKS.md, issue 26.)
        let after = first + i64::try_from(with_ids.len()).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let folder_first = alloc_ids(&mut tx, "next_folder_id", with_ids.len()).await?;
        sqlx::query::<Db>(
            "INSERT INTO folders (id, name, owner_user_id, message_count, created_at) \
             SELECT id + $1, name, id, 0, $2 FROM users WHERE id >= $3 AND id < $4",
        )
        .bind(folder_first - first)
        .bind(now.0)
        .bind(first)
        .bind(after)
        .execute(&mut *tx)
        .await?;
        let rights = &defaults.own_folder;
        if !rights.is_empty() {
            sqlx::query::<Db>(
                "INSERT INTO folder_access (user_id, folder_id, can_read, can_write, can_delete) \
                 SELECT id, id + $1, $2, $3, $4 FROM users WHERE id >= $5 AND id < $6",
            )
            .bind(folder_first - first)
            .bind(rights.contains(&FolderRight::Read))
            .bind(rights.contains(&FolderRight::Write))
            .bind(rights.contains(&FolderRight::Delete))
            .bind(first)
            .bind(after)
            .execute(&mut *tx)
            .await?;
        }
        let emails = crate::sync::addresses_in_key_order(with_ids.iter().map(|(id, n)| (*id, n.emails.as_slice())));
        insert_sync_emails(&mut tx, &emails).await?;
    }
    let updated_emails = crate::sync::addresses_in_key_order(
        changes.update.iter().filter_map(|u| u.emails.as_ref().map(|e| (u.user_id, e.as_slice()))),
    );
    insert_sync_emails(&mut tx, &updated_emails).await?;
    write_audit(
        &mut tx,
        actor,
        "directory.sync",
        &format!("run #{run_id}"),
        &format!(
            "applied: {} created, {} updated, {} deleted, {} suspended; each user's line is in the run's report",
            changes.create.len(),
            changes.update.len(),
            changes.delete.len(),
            changes.suspend.len()
        ),
        now,
    )
    .await?;
    if let Some(stopped) = record.approves {
        mark_approved(&mut tx, stopped, run_id, actor, now).await?;
    }
    // Fault-injection tests only (issue 27): hold the transaction open, its users written and not yet
    // committed, so that a test can kill the process in the middle of an apply. Unset, nothing waits.
    if let Some(ms) = std::env::var(APPLY_DELAY_VARIABLE)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        tracing::warn!(ms, "{APPLY_DELAY_VARIABLE} is set: the apply waits before its commit");
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    // The run's outcome and report, in the same transaction: the users applied and the run that says so
    // are committed together or not at all.
    correct_report_for_folders_decided_at_apply(
        &applied.folders_decided_at_apply,
        changes,
        &record.deleted_lines,
        &mut record.counts,
        &mut record.lines,
    );
    record_outcome(
        &mut tx,
        run_id,
        &record.succeeded(),
        now,
    )
    .await?;
    tx.commit().await?;
    finish_apply_connection(conn).await;
    Ok(applied)
}
