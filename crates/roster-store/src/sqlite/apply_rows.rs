// How a synchronization's apply writes users' rows on SQLite: statement by statement, or in multi-row
// statements of `CHUNK` rows (SQLite runs them in process, so a statement costs no round trip). The apply
// itself (`apply_plan`, sql/sync.rs) is the backends' common code; PostgreSQL's counterparts of these
// functions are in postgres/apply_rows.rs. Included by sqlite.rs after sql/store.rs.

/// Nothing to say on SQLite: the apply's connection doesn't enforce foreign keys at all (`apply_connection`).
async fn mark_apply(_conn: &mut Conn) -> Result<()> {
    Ok(())
}

/// Deletes these users and every row that refers to them, a statement per table for up to [`CHUNK`] users
/// at a time (one statement per row made deleting 50,000 users take ten times as long as creating them).
/// Returns the users whose folder was kept because it holds messages.
async fn delete_users_rows(conn: &mut Conn, ids: &[i64], now: Timestamp) -> Result<BTreeSet<i64>> {
    // Each statement decides on the folder rows as they are when it runs, not on counts read before:
    // on PostgreSQL (read committed) the archive may file a message into a folder between a SELECT and a
    // DELETE, and a folder with messages must never be deleted. So: delete the owned folders that are
    // empty now, then orphan whichever owned folders are left (they had messages at that moment).
    //
    // The rows that the foreign keys' ON DELETE actions would remove are deleted here as well, because
    // the apply connection doesn't enforce foreign keys (sqlite.rs, `apply_connection`).
    let mut kept = BTreeSet::new();
    for chunk in ids.chunks(CHUNK) {
        let mut q = QueryBuilder::<Db>::new("DELETE FROM folders WHERE message_count = 0 AND owner_user_id IN (");
        push_in_list(&mut q, chunk.iter().copied());
        q.push(" RETURNING id");
        let deleted_folders: Vec<i64> = q.build_query_scalar::<i64>().fetch_all(&mut *conn).await?;
        if !deleted_folders.is_empty() {
            // Anyone's access to a deleted folder goes with it.
            let mut q = QueryBuilder::<Db>::new("DELETE FROM folder_access WHERE folder_id IN (");
            push_in_list(&mut q, deleted_folders);
            q.build().execute(&mut *conn).await?;
        }
        // The owned folders left had messages when the DELETE ran; nobody but this transaction changes
        // their owners, so these are exactly the folders the UPDATE below orphans.
        let mut q = QueryBuilder::<Db>::new("SELECT owner_user_id FROM folders WHERE owner_user_id IN (");
        push_in_list(&mut q, chunk.iter().copied());
        let owners: Vec<i64> = q.build_query_scalar::<i64>().fetch_all(&mut *conn).await?;
        if !owners.is_empty() {
            let mut q = QueryBuilder::<Db>::new("UPDATE folders SET owner_user_id = NULL, orphaned_at = ");
            q.push_bind(now.0);
            q.push(" WHERE owner_user_id IN (");
            push_in_list(&mut q, owners.iter().copied());
            q.build().execute(&mut *conn).await?;
            kept.extend(owners);
        }
        for table in ["user_emails", "folder_access", "sessions"] {
            let mut q = QueryBuilder::<Db>::new(format!("DELETE FROM {table} WHERE user_id IN ("));
            push_in_list(&mut q, chunk.iter().copied());
            q.build().execute(&mut *conn).await?;
        }
        let mut q = QueryBuilder::<Db>::new("DELETE FROM users WHERE id IN (");
        push_in_list(&mut q, chunk.iter().copied());
        q.build().execute(&mut *conn).await?;
    }
    Ok(kept)
}


/// Writes the plan's updates to existing users: renames (through a temporary key, so that swaps never
/// collide), links, full names, reactivations, and the own folder's name after a rename.
async fn update_users_rows(conn: &mut Conn, updates: &[roster_core::plan::UserUpdate], now: Timestamp) -> Result<()> {
    for u in updates.iter().filter(|u| u.name.is_some()) {
        sqlx::query::<Db>("UPDATE users SET name_key = $1 WHERE id = $2")
            .bind(format!("\u{1}renaming:{}", u.user_id))
            .bind(u.user_id)
            .execute(&mut *conn)
            .await?;
    }
    for u in updates {
        let mut q = QueryBuilder::<Db>::new("UPDATE users SET updated_at = ");
        q.push_bind(now.0);
        q.push(", dir_source = ").push_bind(u.link.source.clone());
        q.push(", dir_id = ").push_bind(u.link.id.clone());
        q.push(", dir_dn = ").push_bind(u.link.dn.clone());
        if let Some(name) = &u.name {
            q.push(", name = ").push_bind(name.as_str().to_owned());
            q.push(", name_key = ").push_bind(name.key());
            q.push(", name_skeleton = ").push_bind(roster_core::names::stored_skeleton(&name.key()));
            // The own folder is named after the user.
            sqlx::query::<Db>("UPDATE folders SET name = $1 WHERE owner_user_id = $2 AND name = $3")
                .bind(name.as_str().to_owned())
                .bind(u.user_id)
                .bind(u.old_name.as_str().to_owned())
                .execute(&mut *conn)
                .await?;
        }
        if let Some(full_name) = &u.full_name {
            q.push(", full_name = ").push_bind(full_name.clone());
        }
        if u.reactivate {
            q.push(", departed_at = NULL");
        }
        q.push(" WHERE id = ").push_bind(u.user_id);
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Inserts the plan's new users with the ids given, and these privileges (`encode_privileges`'s form);
/// the apply derives their other rows from the ids.
async fn insert_users_rows(
    conn: &mut Conn,
    with_ids: &[(i64, &roster_core::plan::NewUser)],
    privileges: &str,
    now: Timestamp,
) -> Result<()> {
    for chunk in with_ids.chunks(CHUNK) {
        let mut q = QueryBuilder::<Db>::new(
            "INSERT INTO users (id, name, name_key, name_skeleton, full_name, auth, builtin_admin, dir_source, dir_id, dir_dn, created_at, updated_at, privileges) ",
        );
        q.push_values(chunk, |mut b, (id, n)| {
            let key = n.name.key();
            let skeleton = roster_core::names::stored_skeleton(&key);
            b.push_bind(*id)
                .push_bind(n.name.as_str().to_owned())
                .push_bind(key)
                .push_bind(skeleton)
                .push_bind(n.full_name.clone())
                // Constants as SQL: a bound string is a copy per row.
                .push("'directory'")
                .push("FALSE")
                .push_bind(n.link.source.clone())
                .push_bind(n.link.id.clone())
                .push_bind(n.link.dn.clone())
                .push_bind(now.0)
                .push_bind(now.0)
                .push_bind(privileges.to_owned());
        });
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Inserts these address rows (new and updated users' addresses).
async fn insert_sync_emails(conn: &mut Conn, rows: &[crate::sync::AddressRow<'_>]) -> Result<()> {
    for chunk in rows.chunks(CHUNK) {
        let mut q = QueryBuilder::<Db>::new("INSERT INTO user_emails (address_key, user_id, address, position) ");
        q.push_values(chunk, |mut b, r| {
            b.push_bind(r.key.clone()).push_bind(r.user_id).push_bind(r.address.to_owned()).push_bind(r.position);
        });
        q.build().execute(&mut *conn).await.map_err(duplicate_email)?;
    }
    Ok(())
}
