// How a synchronization's apply writes users' rows on PostgreSQL: in bulk, a statement for up to
// `BULK_ROWS` rows whose values travel as one array per column (`UNNEST`), instead of a statement per
// user or a multi-row `VALUES` list of bound values. Every statement is a round trip to the server, and a
// `VALUES` list of 1000 rows is 10,000 bound parameters that the server parses one by one; an array is
// one parameter. The apply itself (`apply_plan`, sql/sync.rs) is the backends' common code; SQLite's
// counterparts of these functions are in sqlite/apply_rows.rs. Included by postgres.rs after sql/store.rs.

/// Rows per bulk statement. The arrays of one statement are encoded whole in memory before they are sent,
/// so this bounds that copy (about 2 MB at 10,000 users) at any N, while a statement per 10,000 rows
/// makes the round trips negligible.
const BULK_ROWS: usize = 10_000;

/// Tells the reference triggers (migration 0012) that this transaction is a synchronization's apply: the
/// rows it writes refer to users it inserts in the same transaction, and it deletes the rows that refer to
/// the users and folders it deletes itself (`delete_users_rows`), so the triggers leave its rows alone,
/// as SQLite's apply connection leaves foreign keys unenforced. `SET LOCAL`: until the commit or rollback.
async fn mark_apply(conn: &mut Conn) -> Result<()> {
    sqlx::query::<Db>("SET LOCAL roster.apply_plan = 'on'").execute(&mut *conn).await?;
    Ok(())
}

/// Deletes these users and every row that refers to them, a statement per table for up to [`BULK_ROWS`]
/// users at a time, their ids in one array. Returns the users whose folder was kept because it holds
/// messages.
async fn delete_users_rows(conn: &mut Conn, ids: &[i64], now: Timestamp) -> Result<BTreeSet<i64>> {
    // Each statement decides on the folder rows as they are when it runs, not on counts read before: in
    // read committed, the archive may file a message into a folder between a SELECT and a DELETE, and a
    // folder with messages must never be deleted. So: delete the owned folders that are empty now, then
    // orphan whichever owned folders are left (they had messages at that moment).
    //
    // The rows that refer to a deleted user or folder are deleted here, not by the reference triggers,
    // which leave the apply's transaction alone (`mark_apply`) and would work row by row.
    let mut kept = BTreeSet::new();
    for chunk in ids.chunks(BULK_ROWS) {
        let deleted_folders: Vec<i64> = sqlx::query_scalar::<Db, i64>(
            "DELETE FROM folders WHERE message_count = 0 AND owner_user_id = ANY($1) RETURNING id",
        )
        .bind(chunk)
        .fetch_all(&mut *conn)
        .await?;
        if !deleted_folders.is_empty() {
            // Anyone's access to a deleted folder goes with it.
            sqlx::query::<Db>("DELETE FROM folder_access WHERE folder_id = ANY($1)")
                .bind(&deleted_folders)
                .execute(&mut *conn)
                .await?;
        }
        // The owned folders left had messages when the DELETE ran; nobody but this transaction changes
        // their owners (it holds the user database version), so these are exactly the folders the UPDATE
        // below orphans.
        let owners: Vec<i64> = sqlx::query_scalar::<Db, i64>("SELECT owner_user_id FROM folders WHERE owner_user_id = ANY($1)")
            .bind(chunk)
            .fetch_all(&mut *conn)
            .await?;
        if !owners.is_empty() {
            sqlx::query::<Db>("UPDATE folders SET owner_user_id = NULL, orphaned_at = $1 WHERE owner_user_id = ANY($2)")
                .bind(now.0)
                .bind(&owners)
                .execute(&mut *conn)
                .await?;
            kept.extend(owners);
        }
        for table in ["user_emails", "folder_access", "sessions"] {
            sqlx::query::<Db>(sqlx::AssertSqlSafe(format!("DELETE FROM {table} WHERE user_id = ANY($1)")))
                .bind(chunk)
                .execute(&mut *conn)
                .await?;
        }
        sqlx::query::<Db>("DELETE FROM users WHERE id = ANY($1)").bind(chunk).execute(&mut *conn).await?;
    }
    Ok(kept)
}

/// Writes the plan's updates to existing users: renames, links, full names, reactivations, and the own
/// folder's name after a rename.
async fn update_users_rows(conn: &mut Conn, updates: &[roster_core::plan::UserUpdate], now: Timestamp) -> Result<()> {
    // Every renamed user first takes a temporary key, so that swaps (a -> b, b -> a), within one statement
    // or across two, never collide: PostgreSQL checks a unique index row by row, not at the end of the
    // statement.
    let renamed: Vec<i64> = updates.iter().filter(|u| u.name.is_some()).map(|u| u.user_id).collect();
    for chunk in renamed.chunks(BULK_ROWS) {
        sqlx::query::<Db>("UPDATE users SET name_key = chr(1) || 'renaming:' || id WHERE id = ANY($1)")
            .bind(chunk)
            .execute(&mut *conn)
            .await?;
    }
    for chunk in updates.chunks(BULK_ROWS) {
        let mut ids = Vec::with_capacity(chunk.len());
        let mut sources = Vec::with_capacity(chunk.len());
        let mut dir_ids = Vec::with_capacity(chunk.len());
        let mut dns = Vec::with_capacity(chunk.len());
        let mut names = Vec::with_capacity(chunk.len());
        let mut keys = Vec::with_capacity(chunk.len());
        let mut skeletons = Vec::with_capacity(chunk.len());
        let mut full_names = Vec::with_capacity(chunk.len());
        let mut reactivate = Vec::with_capacity(chunk.len());
        for u in chunk {
            ids.push(u.user_id);
            sources.push(u.link.source.as_str());
            dir_ids.push(u.link.id.as_str());
            dns.push(u.link.dn.as_deref());
            names.push(u.name.as_ref().map(UserName::as_str));
            let key = u.name.as_ref().map(UserName::key);
            skeletons.push(key.as_deref().and_then(roster_core::names::stored_skeleton));
            keys.push(key);
            full_names.push(u.full_name.as_deref());
            reactivate.push(u.reactivate);
        }
        // A column the plan leaves alone (`None`) keeps its value; the skeleton goes with the name.
        sqlx::query::<Db>(
            "UPDATE users AS u SET updated_at = $1, dir_source = t.dir_source, dir_id = t.dir_id, dir_dn = t.dir_dn, \
             name = COALESCE(t.name, u.name), name_key = COALESCE(t.name_key, u.name_key), \
             name_skeleton = CASE WHEN t.name IS NULL THEN u.name_skeleton ELSE t.name_skeleton END, \
             full_name = COALESCE(t.full_name, u.full_name), \
             departed_at = CASE WHEN t.reactivate THEN NULL ELSE u.departed_at END \
             FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], \
             $9::text[], $10::boolean[]) \
             AS t(id, dir_source, dir_id, dir_dn, name, name_key, name_skeleton, full_name, reactivate) \
             WHERE u.id = t.id",
        )
        .bind(now.0)
        .bind(&ids)
        .bind(&sources)
        .bind(&dir_ids)
        .bind(&dns)
        .bind(&names)
        .bind(&keys)
        .bind(&skeletons)
        .bind(&full_names)
        .bind(&reactivate)
        .execute(&mut *conn)
        .await?;
    }
    // The own folder is named after the user.
    let renames: Vec<(i64, &str, &str)> = updates
        .iter()
        .filter_map(|u| u.name.as_ref().map(|n| (u.user_id, n.as_str(), u.old_name.as_str())))
        .collect();
    for chunk in renames.chunks(BULK_ROWS) {
        let owners: Vec<i64> = chunk.iter().map(|r| r.0).collect();
        let names: Vec<&str> = chunk.iter().map(|r| r.1).collect();
        let old_names: Vec<&str> = chunk.iter().map(|r| r.2).collect();
        sqlx::query::<Db>(
            "UPDATE folders AS f SET name = t.name \
             FROM UNNEST($1::bigint[], $2::text[], $3::text[]) AS t(owner, name, old_name) \
             WHERE f.owner_user_id = t.owner AND f.name = t.old_name",
        )
        .bind(&owners)
        .bind(&names)
        .bind(&old_names)
        .execute(&mut *conn)
        .await?;
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
    let mut copy = CopyIn::begin(
        conn,
        "COPY users (id, name, name_key, name_skeleton, full_name, auth, builtin_admin, dir_source, dir_id, dir_dn, \
         created_at, updated_at, privileges) FROM STDIN",
    )
    .await?;
    for (id, n) in with_ids {
        let key = n.name.key();
        let row = copy.row();
        row.int(*id);
        row.text(n.name.as_str());
        row.text(&key);
        row.text_or_null(roster_core::names::stored_skeleton(&key).as_deref());
        row.text(&n.full_name);
        row.text("directory");
        row.boolean(false);
        row.text(&n.link.source);
        row.text(&n.link.id);
        row.text_or_null(n.link.dn.as_deref());
        row.int(now.0);
        row.int(now.0);
        row.text(privileges);
        copy.end_row().await?;
    }
    copy.finish().await?;
    Ok(())
}

/// Inserts these address rows (new and updated users' addresses).
async fn insert_sync_emails(conn: &mut Conn, rows: &[crate::sync::AddressRow<'_>]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut copy = CopyIn::begin(conn, "COPY user_emails (address_key, user_id, address, position) FROM STDIN").await?;
    for r in rows {
        let row = copy.row();
        row.text(&r.key);
        row.int(r.user_id);
        row.text(r.address);
        row.int(r.position);
        copy.end_row().await?;
    }
    copy.finish().await.map_err(duplicate_email)?;
    Ok(())
}

/// Bytes of `COPY` data sent at a time: the memory a copy takes at any N, and few enough messages.
const COPY_BUFFER: usize = 1 << 20;

/// A `COPY … FROM STDIN` in PostgreSQL's text format, its rows written into a buffer and sent a buffer at
/// a time. `COPY` is the server's bulk load: no statement to parse or plan per row or per batch, and the
/// rows go into the table's pages in batches.
struct CopyIn<'c> {
    copy: sqlx::postgres::PgCopyIn<&'c mut sqlx::PgConnection>,
    row: CopyRow,
    /// For the debug line `finish` logs (sqlx logs no `COPY`): the statement, when it began, its rows.
    statement: &'static str,
    started: std::time::Instant,
    rows: usize,
}

impl<'c> CopyIn<'c> {
    async fn begin(conn: &'c mut sqlx::PgConnection, statement: &'static str) -> Result<CopyIn<'c>> {
        let started = std::time::Instant::now();
        Ok(CopyIn {
            copy: conn.copy_in_raw(statement).await?,
            row: CopyRow { buf: Vec::with_capacity(COPY_BUFFER) },
            statement,
            started,
            rows: 0,
        })
    }

    /// The row being written: its fields in the statement's column order, then [`CopyIn::end_row`].
    fn row(&mut self) -> &mut CopyRow {
        &mut self.row
    }

    async fn end_row(&mut self) -> Result<()> {
        // Each field ended with a tab; the row ends with a newline instead.
        if let Some(last) = self.row.buf.last_mut() {
            *last = b'\n';
        }
        self.rows += 1;
        if self.row.buf.len() >= COPY_BUFFER {
            self.copy.send(self.row.buf.as_slice()).await?;
            self.row.buf.clear();
        }
        Ok(())
    }

    /// Sends the rest and ends the copy; a row the server refused (a unique key taken) fails here.
    async fn finish(mut self) -> std::result::Result<u64, sqlx::Error> {
        if !self.row.buf.is_empty() {
            self.copy.send(self.row.buf.as_slice()).await?;
        }
        let copied = self.copy.finish().await?;
        // As sqlx logs its statements (the benchmark's phase split reads these lines).
        tracing::debug!(
            summary = ?format!("{} …", self.statement.split_whitespace().take(3).collect::<Vec<_>>().join(" ")),
            db.statement = self.statement,
            rows = self.rows,
            elapsed_secs = self.started.elapsed().as_secs_f64(),
            "statement"
        );
        Ok(copied)
    }
}

/// One row's fields in `COPY`'s text format: tab-separated, `\N` for NULL, and a backslash, tab, newline
/// or carriage return inside a value escaped with a backslash.
struct CopyRow {
    buf: Vec<u8>,
}

impl CopyRow {
    fn text(&mut self, value: &str) {
        for b in value.bytes() {
            match b {
                b'\\' => self.buf.extend_from_slice(b"\\\\"),
                b'\t' => self.buf.extend_from_slice(b"\\t"),
                b'\n' => self.buf.extend_from_slice(b"\\n"),
                b'\r' => self.buf.extend_from_slice(b"\\r"),
                other => self.buf.push(other),
            }
        }
        self.buf.push(b'\t');
    }

    fn text_or_null(&mut self, value: Option<&str>) {
        match value {
            Some(v) => self.text(v),
            None => self.buf.extend_from_slice(b"\\N\t"),
        }
    }

    fn int(&mut self, value: i64) {
        use std::io::Write as _;
        // Writing into a Vec can't fail.
        let _ = write!(self.buf, "{value}\t");
    }

    fn boolean(&mut self, value: bool) {
        self.buf.extend_from_slice(if value { b"t\t" } else { b"f\t" });
    }
}
