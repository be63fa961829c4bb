// Users and their archive folders: the built-in administrator, creating, changing and deleting users by
// hand (details, privileges and folder rights, authentication method, local password), the credentials
// logon checks, and folders with their message counts. Also the row helpers the other concerns share
// for users (`load_users`, `insert_emails`, …). Included by `store.rs`.

const USER_COLUMNS: &str =
    "id, name, full_name, auth, builtin_admin, dir_source, dir_id, dir_dn, created_at, updated_at, departed_at, privileges";

/// A user's privileges as `users.privileges` holds them (migration 0013 on SQLite, 0014 on PostgreSQL):
/// their names sorted and separated by commas, '' for none.
fn encode_privileges(privileges: &BTreeSet<Privilege>) -> String {
    let mut names: Vec<&str> = privileges.iter().map(|p| p.as_str()).collect();
    names.sort_unstable();
    names.join(",")
}

fn decode_privileges(raw: &str) -> Result<BTreeSet<Privilege>> {
    roster_core::privileges::parse_privilege_list(raw)
        .map_err(|e| StoreError::Invalid(format!("a user's privileges {raw:?}: {e}")))
}

fn parse_auth(raw: &str) -> Result<AuthMethod> {
    AuthMethod::parse(raw).ok_or_else(|| StoreError::Invalid(format!("authentication method {raw:?}")))
}

/// A stored name, by the rules it was stored under: a name from before a rule was added (issue 19: no path
/// separators) must still load, or no user would.
fn parse_name(raw: &str) -> Result<UserName> {
    UserName::parse_existing(raw).map_err(|e| StoreError::Invalid(e.to_string()))
}

/// A stored address, likewise (issue 19 lowered the limit from 320 bytes to 254).
fn parse_email(raw: &str) -> Result<EmailAddress> {
    EmailAddress::parse_existing(raw).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn link_from(source: Option<String>, id: Option<String>, dn: Option<String>) -> Option<DirectoryLink> {
    match (source, id) {
        (Some(source), Some(id)) => Some(DirectoryLink { source, id, dn }),
        _ => None,
    }
}

fn user_from_row(row: &<Db as sqlx::Database>::Row) -> Result<User> {
    let link = link_from(row.try_get("dir_source")?, row.try_get("dir_id")?, row.try_get("dir_dn")?);
    Ok(User {
        id: row.try_get("id")?,
        name: parse_name(&row.try_get::<String, _>("name")?)?,
        full_name: row.try_get("full_name")?,
        emails: Vec::new(),
        auth: parse_auth(&row.try_get::<String, _>("auth")?)?,
        privileges: decode_privileges(&row.try_get::<String, _>("privileges")?)?,
        folders: Vec::new(),
        directory_id: link.as_ref().map(|l| l.id.clone()),
        directory: link,
        builtin_admin: row.try_get("builtin_admin")?,
        created_at: Timestamp(row.try_get("created_at")?),
        updated_at: Timestamp(row.try_get("updated_at")?),
        departed_at: row.try_get::<Option<i64>, _>("departed_at")?.map(Timestamp),
    })
}

fn rights_from(read: bool, write: bool, delete: bool) -> BTreeSet<FolderRight> {
    let mut r = BTreeSet::new();
    if read {
        r.insert(FolderRight::Read);
    }
    if write {
        r.insert(FolderRight::Write);
    }
    if delete {
        r.insert(FolderRight::Delete);
    }
    r
}

/// Loads users with their addresses, privileges and folder access, in the order of `ids`.
async fn load_users(conn: &mut Conn, ids: &[i64]) -> Result<Vec<User>> {
    let mut by_id: HashMap<i64, User> = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let mut q = QueryBuilder::<Db>::new(format!("SELECT {USER_COLUMNS} FROM users WHERE id IN ("));
        push_in_list(&mut q, chunk.iter().copied());
        for row in q.build().fetch_all(&mut *conn).await? {
            let u = user_from_row(&row)?;
            by_id.insert(u.id, u);
        }
        let mut q = QueryBuilder::<Db>::new(
            "SELECT user_id, address FROM user_emails WHERE user_id IN (",
        );
        push_in_list(&mut q, chunk.iter().copied());
        q.push(" ORDER BY user_id, position");
        for row in q.build().fetch_all(&mut *conn).await? {
            let uid: i64 = row.try_get("user_id")?;
            if let Some(u) = by_id.get_mut(&uid) {
                u.emails.push(parse_email(&row.try_get::<String, _>("address")?)?);
            }
        }
        let mut q = QueryBuilder::<Db>::new(
            "SELECT a.user_id, a.folder_id, f.name, a.can_read, a.can_write, a.can_delete \
             FROM folder_access a JOIN folders f ON f.id = a.folder_id WHERE a.user_id IN (",
        );
        push_in_list(&mut q, chunk.iter().copied());
        q.push(" ORDER BY a.user_id, f.name, a.folder_id");
        for row in q.build().fetch_all(&mut *conn).await? {
            let uid: i64 = row.try_get("user_id")?;
            if let Some(u) = by_id.get_mut(&uid) {
                u.folders.push(FolderAccess {
                    folder_id: row.try_get("folder_id")?,
                    folder: row.try_get("name")?,
                    rights: rights_from(
                        row.try_get("can_read")?,
                        row.try_get("can_write")?,
                        row.try_get("can_delete")?,
                    ),
                });
            }
        }
    }
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

async fn load_user(conn: &mut Conn, id: i64) -> Result<User> {
    load_users(conn, &[id])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| StoreError::NotFound(format!("user #{id}")))
}

async fn user_id_by_name(conn: &mut Conn, name: &UserName) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar::<Db, i64>("SELECT id FROM users WHERE name_key = $1")
        .bind(name.key())
        .fetch_optional(&mut *conn)
        .await?)
}

/// Fails with a message naming the owner if another user holds one of the addresses.
async fn check_addresses_free(conn: &mut Conn, emails: &[EmailAddress], except: i64) -> Result<()> {
    for chunk in emails.chunks(CHUNK) {
        let mut q = QueryBuilder::<Db>::new(
            "SELECT e.address, u.name FROM user_emails e JOIN users u ON u.id = e.user_id WHERE e.user_id <> ",
        );
        q.push_bind(except);
        q.push(" AND e.address_key IN (");
        push_in_list(&mut q, chunk.iter().map(EmailAddress::key));
        if let Some(row) = q.build().fetch_optional(&mut *conn).await? {
            return Err(StoreError::DuplicateEmail {
                address: row.try_get("address")?,
                owner: row.try_get("name")?,
            });
        }
    }
    Ok(())
}

/// Inserts addresses for many users; `rows` are (user id, addresses).
async fn insert_emails(conn: &mut Conn, rows: &[(i64, &[EmailAddress])]) -> Result<()> {
    let flat: Vec<(i64, i64, &EmailAddress)> = rows
        .iter()
        .flat_map(|(uid, emails)| {
            emails
                .iter()
                .enumerate()
                .map(move |(pos, e)| (*uid, i64::try_from(pos).unwrap_or(i64::MAX), e))
        })
        .collect();
    for chunk in flat.chunks(CHUNK) {
        let mut q = QueryBuilder::<Db>::new("INSERT INTO user_emails (address_key, user_id, address, position) ");
        q.push_values(chunk, |mut b, (uid, pos, e)| {
            b.push_bind(e.key())
                .push_bind(*uid)
                .push_bind(e.as_str().to_owned())
                .push_bind(*pos);
        });
        q.build().execute(&mut *conn).await.map_err(duplicate_email)?;
    }
    Ok(())
}

/// An insert of addresses that failed on the unique address key: some address already has an owner.
fn duplicate_email(e: sqlx::Error) -> StoreError {
    match StoreError::from_sqlx(e) {
        StoreError::Database(m) if m.to_lowercase().contains("unique") || m.contains("duplicate key") => {
            StoreError::DuplicateEmail { address: "(one of the addresses)".into(), owner: "another user".into() }
        }
        other => other,
    }
}

async fn set_privileges_row(conn: &mut Conn, id: i64, privileges: &BTreeSet<Privilege>) -> Result<()> {
    sqlx::query::<Db>("UPDATE users SET privileges = $1 WHERE id = $2")
        .bind(encode_privileges(privileges))
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Creates own folders and the owner's access to them; `rows` are (user id, folder name).
async fn insert_own_folders(
    conn: &mut Conn,
    rows: &[(i64, String)],
    rights: &BTreeSet<FolderRight>,
    now: Timestamp,
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let first = alloc_ids(conn, "next_folder_id", rows.len()).await?;
    let with_ids: Vec<(i64, i64, &String)> = rows
        .iter()
        .zip(first..)
        .map(|((uid, name), fid)| (fid, *uid, name))
        .collect();
    for chunk in with_ids.chunks(CHUNK) {
        let mut q = QueryBuilder::<Db>::new("INSERT INTO folders (id, name, owner_user_id, message_count, created_at) ");
        q.push_values(chunk, |mut b, (fid, uid, name)| {
            b.push_bind(*fid).push_bind((*name).clone()).push_bind(*uid).push_bind(0_i64).push_bind(now.0);
        });
        q.build().execute(&mut *conn).await?;
    }
    if !rights.is_empty() {
        let (r, w, d) = (
            rights.contains(&FolderRight::Read),
            rights.contains(&FolderRight::Write),
            rights.contains(&FolderRight::Delete),
        );
        for chunk in with_ids.chunks(CHUNK) {
            let mut q = QueryBuilder::<Db>::new("INSERT INTO folder_access (user_id, folder_id, can_read, can_write, can_delete) ");
            q.push_values(chunk, |mut b, (fid, uid, _)| {
                b.push_bind(*uid).push_bind(*fid).push_bind(r).push_bind(w).push_bind(d);
            });
            q.build().execute(&mut *conn).await?;
        }
    }
    Ok(())
}

fn folder_from_row(row: &<Db as sqlx::Database>::Row) -> Result<Folder> {
    Ok(Folder {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        owner: row.try_get("owner")?,
        message_count: row.try_get("message_count")?,
        created_at: Timestamp(row.try_get("created_at")?),
        orphaned_at: row.try_get::<Option<i64>, _>("orphaned_at")?.map(Timestamp),
    })
}

const FOLDER_SELECT: &str = "SELECT f.id, f.name, u.name AS owner, f.message_count, f.created_at, f.orphaned_at \
     FROM folders f LEFT JOIN users u ON u.id = f.owner_user_id";

async fn ensure_admin(store: &ThisStore, password_hash: &str, now: Timestamp) -> Result<bool> {
    let mut tx = store.pool.begin().await?;
    // Write first: two processes starting at once then serialize here instead of both seeing no admin.
    bump_version(&mut tx).await?;
    let exists: Option<i64> =
        sqlx::query_scalar::<Db, i64>("SELECT id FROM users WHERE builtin_admin = TRUE")
            .fetch_optional(&mut *tx)
            .await?;
    if exists.is_some() {
        return Ok(false);
    }
    let admin = UserName::admin();
    if user_id_by_name(&mut tx, &admin).await?.is_some() {
        return Err(StoreError::DuplicateUserName(admin.to_string()));
    }
    let id = alloc_ids(&mut tx, "next_user_id", 1).await?;
    sqlx::query::<Db>(
        "INSERT INTO users (id, name, name_key, name_skeleton, full_name, auth, password_hash, builtin_admin, created_at, updated_at) \
         VALUES ($1, $2, $3, $7, $4, 'local', $5, TRUE, $6, $6)",
    )
    .bind(id)
    .bind(admin.as_str().to_owned())
    .bind(admin.key())
    .bind("Administrator")
    .bind(password_hash.to_owned())
    .bind(now.0)
    .bind(roster_core::names::stored_skeleton(&admin.key()))
    .execute(&mut *tx)
    .await?;
    let all: BTreeSet<Privilege> = Privilege::ALL.into_iter().collect();
    set_privileges_row(&mut tx, id, &all).await?;
    let rights: BTreeSet<FolderRight> = FolderRight::ALL.into_iter().collect();
    insert_own_folders(&mut tx, &[(id, admin.to_string())], &rights, now).await?;
    write_audit(&mut tx, &Actor("roster".into()), "user.create", admin.as_str(), "built-in administrator created", now).await?;
    tx.commit().await?;
    Ok(true)
}

async fn list_users(store: &ThisStore, offset: i64, limit: i64) -> Result<Page<User>> {
    let mut conn = store.pool.acquire().await?;
    let total: i64 = sqlx::query_scalar::<Db, i64>("SELECT COUNT(*) FROM users")
        .fetch_one(&mut *conn)
        .await?;
    let ids: Vec<i64> =
        sqlx::query_scalar::<Db, i64>("SELECT id FROM users ORDER BY name_key LIMIT $1 OFFSET $2")
            .bind(limit)
            .bind(offset)
            .fetch_all(&mut *conn)
            .await?;
    Ok(Page { items: load_users(&mut conn, &ids).await?, total })
}

/// Users whose name, full name or an address contains `search` (ignoring case; `%` and `_` are
/// themselves), in name order: the console's search, done by the database for 100,000 users.
async fn search_users(store: &ThisStore, search: &str, offset: i64, limit: i64) -> Result<Page<User>> {
    let pattern = contains_pattern(&search.trim().to_lowercase());
    // One scan: the page and the number of matches together (a window over the matches). Only a page
    // past the end, which has no rows to carry the count, counts again.
    let mut conn = store.pool.acquire().await?;
    let rows = sqlx::query::<Db>(
        "SELECT u.id, COUNT(*) OVER () AS total FROM users u \
         WHERE (u.name_key LIKE $1 ESCAPE '\\' OR lower(u.full_name) LIKE $1 ESCAPE '\\' \
         OR EXISTS (SELECT 1 FROM user_emails e WHERE e.user_id = u.id AND e.address_key LIKE $1 ESCAPE '\\')) \
         ORDER BY u.name_key LIMIT $2 OFFSET $3",
    )
    .bind(&pattern)
    .bind(limit)
    .bind(offset)
    .fetch_all(&mut *conn)
    .await?;
    let mut ids = Vec::with_capacity(rows.len());
    let mut total: i64 = 0;
    for row in &rows {
        ids.push(row.try_get::<i64, _>("id")?);
        total = row.try_get::<i64, _>("total")?;
    }
    if rows.is_empty() && offset > 0 {
        total = sqlx::query_scalar::<Db, i64>(
            "SELECT COUNT(*) FROM users u WHERE (u.name_key LIKE $1 ESCAPE '\\' OR lower(u.full_name) LIKE $1 ESCAPE '\\' \
             OR EXISTS (SELECT 1 FROM user_emails e WHERE e.user_id = u.id AND e.address_key LIKE $1 ESCAPE '\\'))",
        )
        .bind(&pattern)
        .fetch_one(&mut *conn)
        .await?;
    }
    Ok(Page { items: load_users(&mut conn, &ids).await?, total })
}

async fn get_user(store: &ThisStore, name: &UserName) -> Result<Option<User>> {
    let mut conn = store.pool.acquire().await?;
    match user_id_by_name(&mut conn, name).await? {
        Some(id) => Ok(load_users(&mut conn, &[id]).await?.into_iter().next()),
        None => Ok(None),
    }
}

async fn get_user_by_id(store: &ThisStore, id: i64) -> Result<Option<User>> {
    let mut conn = store.pool.acquire().await?;
    Ok(load_users(&mut conn, &[id]).await?.into_iter().next())
}

async fn credentials(store: &ThisStore, name: &UserName) -> Result<Option<Credentials>> {
    let mut conn = store.pool.acquire().await?;
    let row = sqlx::query::<Db>(
        "SELECT u.id, u.name, u.auth, u.password_hash, u.dir_source, u.dir_id, u.dir_dn, u.departed_at, \
         u.privileges FROM users u WHERE u.name_key = $1",
    )
    .bind(name.key())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some(Credentials {
        user_id: row.try_get("id")?,
        name: parse_name(&row.try_get::<String, _>("name")?)?,
        auth: parse_auth(&row.try_get::<String, _>("auth")?)?,
        password_hash: row.try_get("password_hash")?,
        can_log_on: decode_privileges(&row.try_get::<String, _>("privileges")?)?.contains(&Privilege::LogOn),
        link: link_from(row.try_get("dir_source")?, row.try_get("dir_id")?, row.try_get("dir_dn")?),
        departed: row.try_get::<Option<i64>, _>("departed_at")?.is_some(),
    }))
}

async fn create_user(store: &ThisStore, user: &NewUserRecord, actor: &Actor, now: Timestamp) -> Result<User> {
    let mut tx = store.pool.begin().await?;
    bump_version(&mut tx).await?;
    if user_id_by_name(&mut tx, &user.name).await?.is_some() {
        return Err(StoreError::DuplicateUserName(user.name.to_string()));
    }
    check_addresses_free(&mut tx, &user.emails, -1).await?;
    let id = alloc_ids(&mut tx, "next_user_id", 1).await?;
    sqlx::query::<Db>(
        "INSERT INTO users (id, name, name_key, name_skeleton, full_name, auth, password_hash, builtin_admin, created_at, updated_at) \
         VALUES ($1, $2, $3, $8, $4, $5, $6, FALSE, $7, $7)",
    )
    .bind(id)
    .bind(user.name.as_str().to_owned())
    .bind(user.name.key())
    .bind(user.full_name.clone())
    .bind(user.auth.as_str())
    .bind(user.password_hash.clone())
    .bind(now.0)
    .bind(roster_core::names::stored_skeleton(&user.name.key()))
    .execute(&mut *tx)
    .await?;
    insert_emails(&mut tx, &[(id, &user.emails)]).await?;
    set_privileges_row(&mut tx, id, &user.privileges).await?;
    insert_own_folders(&mut tx, &[(id, user.name.to_string())], &user.own_folder_rights, now).await?;
    let details = format!(
        "created by hand; authentication {}; privileges [{}]",
        user.auth.as_str(),
        user.privileges.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
    );
    write_audit(&mut tx, actor, "user.create", user.name.as_str(), &details, now).await?;
    let created = load_user(&mut tx, id).await?;
    tx.commit().await?;
    Ok(created)
}

async fn update_user(store: &ThisStore, id: i64, patch: &UserPatch, actor: &Actor, now: Timestamp) -> Result<User> {
    let mut tx = store.pool.begin().await?;
    bump_version(&mut tx).await?;
    let before = load_user(&mut tx, id).await?;
    let mut what = Vec::new();
    if let Some(full_name) = &patch.full_name {
        sqlx::query::<Db>("UPDATE users SET full_name = $1, updated_at = $2 WHERE id = $3")
            .bind(full_name.clone())
            .bind(now.0)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        what.push(format!("full name {:?} -> {:?}", before.full_name, full_name));
    }
    if let Some(emails) = &patch.emails {
        let emails = roster_core::names::dedup_emails(emails.iter().cloned());
        check_addresses_free(&mut tx, &emails, id).await?;
        sqlx::query::<Db>("DELETE FROM user_emails WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        insert_emails(&mut tx, &[(id, &emails)]).await?;
        sqlx::query::<Db>("UPDATE users SET updated_at = $1 WHERE id = $2")
            .bind(now.0)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        what.push(format!(
            "addresses [{}]",
            emails.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    write_audit(&mut tx, actor, "user.update", before.name.as_str(), &what.join("; "), now).await?;
    let after = load_user(&mut tx, id).await?;
    tx.commit().await?;
    Ok(after)
}

async fn delete_user(store: &ThisStore, id: i64, actor: &Actor, now: Timestamp) -> Result<DeletedUser> {
    let mut tx = store.pool.begin().await?;
    bump_version(&mut tx).await?;
    let user = load_user(&mut tx, id).await?;
    if user.builtin_admin {
        return Err(StoreError::BuiltinAdmin("deleted"));
    }
    let folder_kept = delete_user_rows(&mut tx, id, now).await?;
    let details = if folder_kept {
        "deleted; the archive folder holds messages and is kept"
    } else {
        "deleted, with its empty archive folder"
    };
    write_audit(&mut tx, actor, "user.delete", user.name.as_str(), details, now).await?;
    tx.commit().await?;
    Ok(DeletedUser { name: user.name, folder_kept })
}

async fn set_privileges(
    store: &ThisStore,
    id: i64,
    privileges: &BTreeSet<Privilege>,
    folders: Option<&[(i64, BTreeSet<FolderRight>)]>,
    actor: &Actor,
    now: Timestamp,
) -> Result<User> {
    let mut tx = store.pool.begin().await?;
    bump_version(&mut tx).await?;
    let user = load_user(&mut tx, id).await?;
    if user.builtin_admin {
        return Err(StoreError::BuiltinAdmin("demoted: it always has every right"));
    }
    set_privileges_row(&mut tx, id, privileges).await?;
    let mut details = format!(
        "privileges [{}]",
        privileges.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
    );
    for (folder_id, rights) in folders.unwrap_or_default() {
        let folder_name: Option<String> = sqlx::query_scalar::<Db, String>("SELECT name FROM folders WHERE id = $1")
            .bind(*folder_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(folder_name) = folder_name else {
            return Err(StoreError::NotFound(format!("folder #{folder_id}")));
        };
        sqlx::query::<Db>("DELETE FROM folder_access WHERE user_id = $1 AND folder_id = $2")
            .bind(id)
            .bind(*folder_id)
            .execute(&mut *tx)
            .await?;
        if !rights.is_empty() {
            sqlx::query::<Db>(
                "INSERT INTO folder_access (user_id, folder_id, can_read, can_write, can_delete) VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(*folder_id)
            .bind(rights.contains(&FolderRight::Read))
            .bind(rights.contains(&FolderRight::Write))
            .bind(rights.contains(&FolderRight::Delete))
            .execute(&mut *tx)
            .await?;
        }
        details.push_str(&format!(
            "; folder {folder_name} (#{folder_id}) [{}]",
            rights.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    sqlx::query::<Db>("UPDATE users SET updated_at = $1 WHERE id = $2")
        .bind(now.0)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    write_audit(&mut tx, actor, "user.privileges", user.name.as_str(), &details, now).await?;
    let after = load_user(&mut tx, id).await?;
    tx.commit().await?;
    Ok(after)
}

async fn set_auth(store: &ThisStore, id: i64, auth: AuthMethod, actor: &Actor, now: Timestamp) -> Result<User> {
    let mut tx = store.pool.begin().await?;
    bump_version(&mut tx).await?;
    let user = load_user(&mut tx, id).await?;
    if user.builtin_admin {
        return Err(StoreError::BuiltinAdmin("switched away from its local password"));
    }
    sqlx::query::<Db>("UPDATE users SET auth = $1, updated_at = $2 WHERE id = $3")
        .bind(auth.as_str())
        .bind(now.0)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if auth != user.auth {
        sqlx::query::<Db>("DELETE FROM sessions WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
    }
    write_audit(&mut tx, actor, "user.auth", user.name.as_str(), &format!("authentication {} -> {}", user.auth.as_str(), auth.as_str()), now).await?;
    let after = load_user(&mut tx, id).await?;
    tx.commit().await?;
    Ok(after)
}

async fn set_password_hash(store: &ThisStore, id: i64, hash: &str, actor: &Actor, now: Timestamp) -> Result<()> {
    let mut tx = store.pool.begin().await?;
    bump_version(&mut tx).await?;
    let user = load_user(&mut tx, id).await?;
    sqlx::query::<Db>("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
        .bind(hash.to_owned())
        .bind(now.0)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    // A new password ends the sessions opened with the old one.
    sqlx::query::<Db>("DELETE FROM sessions WHERE user_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    write_audit(&mut tx, actor, "user.password", user.name.as_str(), "local password set; sessions ended", now).await?;
    tx.commit().await?;
    Ok(())
}

async fn list_folders(store: &ThisStore) -> Result<Vec<Folder>> {
    let mut conn = store.pool.acquire().await?;
    let rows = sqlx::query::<Db>(sqlx::AssertSqlSafe(format!("{FOLDER_SELECT} ORDER BY f.name, f.id")))
        .fetch_all(&mut *conn)
        .await?;
    rows.iter().map(folder_from_row).collect()
}

async fn get_folder(store: &ThisStore, id: i64) -> Result<Option<Folder>> {
    let mut conn = store.pool.acquire().await?;
    let row = sqlx::query::<Db>(sqlx::AssertSqlSafe(format!("{FOLDER_SELECT} WHERE f.id = $1")))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(folder_from_row).transpose()
}

async fn set_message_count(store: &ThisStore, id: i64, count: i64, actor: &Actor, now: Timestamp) -> Result<Folder> {
    if count < 0 {
        return Err(StoreError::Invalid("a message count can't be negative".into()));
    }
    // No version bump: the archive sets counts all the time, and a bump would make every sync that
    // runs meanwhile fail as stale. A plan's folder decisions are taken again at the apply instead
    // (`delete_user_rows`, `AppliedPlan`).
    let mut tx = store.pool.begin().await?;
    let done = sqlx::query::<Db>("UPDATE folders SET message_count = $1 WHERE id = $2")
        .bind(count)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound(format!("folder #{id}")));
    }
    write_audit(&mut tx, actor, "folder.message_count", &format!("folder #{id}"), &format!("message count {count}"), now).await?;
    let row = sqlx::query::<Db>(sqlx::AssertSqlSafe(format!("{FOLDER_SELECT} WHERE f.id = $1")))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
    let folder = folder_from_row(&row)?;
    tx.commit().await?;
    Ok(folder)
}
