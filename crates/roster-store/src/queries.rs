// The Store implementation, written once for both backends. `sqlite.rs` and `postgres.rs` each include
// this file after defining `Db`, `ThisStore` (with a `pool` field) and `BACKEND`. Placeholders are `$1..$n`
// numbered in order of first appearance, which both SQLite and PostgreSQL read the same way.

use crate::{
    Actor, AppliedPlan, Credentials, DeletedUser, NewRun, NewUserRecord, Page, RunOutcome, RunStatus,
    RunSummary, Snapshot, Store, UserPatch,
};
use async_trait::async_trait;
use roster_core::plan::{CurrentUser, PlannedChanges, ReportAction, ReportCounts, ReportLine};
use roster_core::privileges::DefaultPrivileges;
use roster_core::user::{AuditEntry, AuthMethod, DirectoryLink, Folder, FolderAccess, User};
use roster_core::{EmailAddress, FolderRight, Privilege, Timestamp, UserName};
use futures_util::TryStreamExt;
use sqlx::{QueryBuilder, Row};
use std::collections::{BTreeSet, HashMap};

type Conn = <Db as sqlx::Database>::Connection;

/// Rows per multi-row statement: well under both SQLite's and PostgreSQL's bound-parameter limits.
const CHUNK: usize = 1000;

/// A run's report lines are stored this many to a row of `sync_run_line_chunks`, as one JSON array of
/// `[user, action, reason, dn or null]` arrays: one row per line made a first sync of 100,000 users write
/// 100,000 rows (11 MB). Line n of a run is line n % LINES_PER_CHUNK of chunk n / LINES_PER_CHUNK, so a page
/// reads only the chunks it overlaps. Migration 0002 chunks old runs by the same number: keep them in step.
const LINES_PER_CHUNK: usize = 1000;
/// The same, for arithmetic on line numbers (1000 fits any integer type).
const LINES_PER_CHUNK_I64: i64 = LINES_PER_CHUNK as i64;

/// Chunks per INSERT: few round trips, and no more than a few MB of JSON held at once.
const CHUNKS_PER_INSERT: usize = 50;

/// A report line as stored in a chunk: `[user, action, reason, dn or null]`.
type StoredLine = (String, ReportAction, String, Option<String>);

fn encode_lines(lines: &[ReportLine]) -> Result<String> {
    let stored: Vec<(&str, &str, &str, Option<&str>)> = lines
        .iter()
        .map(|l| (l.user.as_str(), l.action.as_str(), l.reason.as_ref(), l.dn.as_deref()))
        .collect();
    serde_json::to_string(&stored).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn decode_lines(json: &str) -> Result<Vec<ReportLine>> {
    let stored: Vec<StoredLine> = serde_json::from_str(json)
        .map_err(|e| StoreError::Invalid(format!("a run's report lines: {e}")))?;
    Ok(stored
        .into_iter()
        .map(|(user, action, reason, dn)| ReportLine { user, action, reason: reason.into(), dn })
        .collect())
}

const USER_COLUMNS: &str = "id, name, full_name, auth, builtin_admin, dir_source, dir_id, dir_dn, created_at, updated_at";

fn parse_auth(raw: &str) -> Result<AuthMethod> {
    AuthMethod::parse(raw).ok_or_else(|| StoreError::Invalid(format!("authentication method {raw:?}")))
}

fn parse_name(raw: &str) -> Result<UserName> {
    UserName::parse(raw).map_err(|e| StoreError::Invalid(e.to_string()))
}

fn parse_email(raw: &str) -> Result<EmailAddress> {
    EmailAddress::parse(raw).map_err(|e| StoreError::Invalid(e.to_string()))
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
        privileges: BTreeSet::new(),
        folders: Vec::new(),
        directory_id: link.as_ref().map(|l| l.id.clone()),
        directory: link,
        builtin_admin: row.try_get("builtin_admin")?,
        created_at: Timestamp(row.try_get("created_at")?),
        updated_at: Timestamp(row.try_get("updated_at")?),
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
            "SELECT user_id, privilege FROM user_privileges WHERE user_id IN (",
        );
        push_in_list(&mut q, chunk.iter().copied());
        for row in q.build().fetch_all(&mut *conn).await? {
            let uid: i64 = row.try_get("user_id")?;
            let p = Privilege::parse(&row.try_get::<String, _>("privilege")?)
                .map_err(|e| StoreError::Invalid(e.to_string()))?;
            if let Some(u) = by_id.get_mut(&uid) {
                u.privileges.insert(p);
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

/// The version of [`roster_core::names::name_key`] that the stored `name_key` and `address_key` columns
/// were made with, in `meta` under `keys_folded` (absent: lowercase only, before 2026-11-24).
const KEYS_FOLDED: i64 = 1;

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
        q.build().execute(&mut *conn).await.map_err(|e| match StoreError::from_sqlx(e) {
            StoreError::Database(m) if m.to_lowercase().contains("unique") || m.contains("duplicate key") => {
                StoreError::DuplicateEmail { address: "(one of the addresses)".into(), owner: "another user".into() }
            }
            other => other,
        })?;
    }
    Ok(())
}

async fn insert_privileges(conn: &mut Conn, rows: &[(i64, &BTreeSet<Privilege>)]) -> Result<()> {
    let flat: Vec<(i64, Privilege)> = rows
        .iter()
        .flat_map(|(uid, ps)| ps.iter().map(move |p| (*uid, *p)))
        .collect();
    for chunk in flat.chunks(CHUNK) {
        let mut q = QueryBuilder::<Db>::new("INSERT INTO user_privileges (user_id, privilege) ");
        q.push_values(chunk, |mut b, (uid, p)| {
            b.push_bind(*uid).push_bind(p.as_str());
        });
        q.build().execute(&mut *conn).await?;
    }
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

/// Deletes a user: an own folder with messages stays without an owner, an empty one goes.
async fn delete_user_rows(conn: &mut Conn, id: i64, now: Timestamp) -> Result<bool> {
    // Each step decides on the folder row as it is when the statement runs, not on a count read before:
    // on PostgreSQL (read committed) the archive may file a message into the folder between a SELECT
    // and a DELETE, and a folder with messages must never be deleted.
    //
    // The rows that the foreign keys' ON DELETE actions would remove are deleted here as well, because
    // SQLite's apply connection doesn't enforce foreign keys (sqlite.rs, `apply_connection`).
    let deleted_folder: Option<i64> = sqlx::query_scalar::<Db, i64>(
        "DELETE FROM folders WHERE owner_user_id = $1 AND message_count = 0 RETURNING id",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let kept = match deleted_folder {
        Some(folder) => {
            // Anyone's access to the folder goes with it.
            sqlx::query::<Db>("DELETE FROM folder_access WHERE folder_id = $1")
                .bind(folder)
                .execute(&mut *conn)
                .await?;
            0
        }
        None => sqlx::query::<Db>("UPDATE folders SET owner_user_id = NULL, orphaned_at = $1 WHERE owner_user_id = $2")
            .bind(now.0)
            .bind(id)
            .execute(&mut *conn)
            .await?
            .rows_affected(),
    };
    for sql in [
        "DELETE FROM user_emails WHERE user_id = $1",
        "DELETE FROM user_privileges WHERE user_id = $1",
        "DELETE FROM folder_access WHERE user_id = $1",
        "DELETE FROM sessions WHERE user_id = $1",
        "DELETE FROM users WHERE id = $1",
    ] {
        sqlx::query::<Db>(sql).bind(id).execute(&mut *conn).await?;
    }
    Ok(kept > 0)
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

fn run_from_row(row: &<Db as sqlx::Database>::Row) -> Result<RunSummary> {
    let kind = match row.try_get::<String, _>("kind")?.as_str() {
        "preview" => crate::RunKind::Preview,
        _ => crate::RunKind::Sync,
    };
    let counts: Option<String> = row.try_get("counts")?;
    Ok(RunSummary {
        id: row.try_get("id")?,
        kind,
        triggered_by: row.try_get("triggered_by")?,
        actor: row.try_get("actor")?,
        directory_type: row.try_get("directory_type")?,
        status: RunStatus::parse(&row.try_get::<String, _>("status")?),
        started_at: Timestamp(row.try_get("started_at")?),
        finished_at: row.try_get::<Option<i64>, _>("finished_at")?.map(Timestamp),
        entries_read: row.try_get("entries_read")?,
        counts: counts
            .map(|c| serde_json::from_str::<ReportCounts>(&c))
            .transpose()
            .map_err(|e| StoreError::Invalid(e.to_string()))?,
        error: row.try_get("error")?,
    })
}

const RUN_COLUMNS: &str = "id, kind, triggered_by, actor, directory_type, status, started_at, finished_at, entries_read, counts, error";

#[async_trait]
impl Store for ThisStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn ensure_admin(&self, password_hash: &str, now: Timestamp) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
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
            "INSERT INTO users (id, name, name_key, full_name, auth, password_hash, builtin_admin, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 'local', $5, TRUE, $6, $6)",
        )
        .bind(id)
        .bind(admin.as_str().to_owned())
        .bind(admin.key())
        .bind("Administrator")
        .bind(password_hash.to_owned())
        .bind(now.0)
        .execute(&mut *tx)
        .await?;
        let all: BTreeSet<Privilege> = Privilege::ALL.into_iter().collect();
        insert_privileges(&mut tx, &[(id, &all)]).await?;
        let rights: BTreeSet<FolderRight> = FolderRight::ALL.into_iter().collect();
        insert_own_folders(&mut tx, &[(id, admin.to_string())], &rights, now).await?;
        write_audit(&mut tx, &Actor("roster".into()), "user.create", admin.as_str(), "built-in administrator created", now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn list_users(&self, offset: i64, limit: i64) -> Result<Page<User>> {
        let mut conn = self.pool.acquire().await?;
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

    async fn get_user(&self, name: &UserName) -> Result<Option<User>> {
        let mut conn = self.pool.acquire().await?;
        match user_id_by_name(&mut conn, name).await? {
            Some(id) => Ok(load_users(&mut conn, &[id]).await?.into_iter().next()),
            None => Ok(None),
        }
    }

    async fn get_user_by_id(&self, id: i64) -> Result<Option<User>> {
        let mut conn = self.pool.acquire().await?;
        Ok(load_users(&mut conn, &[id]).await?.into_iter().next())
    }

    async fn credentials(&self, name: &UserName) -> Result<Option<Credentials>> {
        let mut conn = self.pool.acquire().await?;
        let row = sqlx::query::<Db>(
            "SELECT u.id, u.name, u.auth, u.password_hash, u.dir_source, u.dir_id, u.dir_dn, \
             EXISTS (SELECT 1 FROM user_privileges p WHERE p.user_id = u.id AND p.privilege = 'log_on') AS can_log_on \
             FROM users u WHERE u.name_key = $1",
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
            can_log_on: row.try_get("can_log_on")?,
            link: link_from(row.try_get("dir_source")?, row.try_get("dir_id")?, row.try_get("dir_dn")?),
        }))
    }

    async fn create_user(&self, user: &NewUserRecord, actor: &Actor, now: Timestamp) -> Result<User> {
        let mut tx = self.pool.begin().await?;
        bump_version(&mut tx).await?;
        if user_id_by_name(&mut tx, &user.name).await?.is_some() {
            return Err(StoreError::DuplicateUserName(user.name.to_string()));
        }
        check_addresses_free(&mut tx, &user.emails, -1).await?;
        let id = alloc_ids(&mut tx, "next_user_id", 1).await?;
        sqlx::query::<Db>(
            "INSERT INTO users (id, name, name_key, full_name, auth, password_hash, builtin_admin, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, FALSE, $7, $7)",
        )
        .bind(id)
        .bind(user.name.as_str().to_owned())
        .bind(user.name.key())
        .bind(user.full_name.clone())
        .bind(user.auth.as_str())
        .bind(user.password_hash.clone())
        .bind(now.0)
        .execute(&mut *tx)
        .await?;
        insert_emails(&mut tx, &[(id, &user.emails)]).await?;
        insert_privileges(&mut tx, &[(id, &user.privileges)]).await?;
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

    async fn update_user(&self, id: i64, patch: &UserPatch, actor: &Actor, now: Timestamp) -> Result<User> {
        let mut tx = self.pool.begin().await?;
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

    async fn delete_user(&self, id: i64, actor: &Actor, now: Timestamp) -> Result<DeletedUser> {
        let mut tx = self.pool.begin().await?;
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
        &self,
        id: i64,
        privileges: &BTreeSet<Privilege>,
        folders: Option<&[(i64, BTreeSet<FolderRight>)]>,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<User> {
        let mut tx = self.pool.begin().await?;
        bump_version(&mut tx).await?;
        let user = load_user(&mut tx, id).await?;
        if user.builtin_admin {
            return Err(StoreError::BuiltinAdmin("demoted: it always has every right"));
        }
        sqlx::query::<Db>("DELETE FROM user_privileges WHERE user_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        insert_privileges(&mut tx, &[(id, privileges)]).await?;
        let mut details = format!(
            "privileges [{}]",
            privileges.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
        );
        for (folder_id, rights) in folders.unwrap_or_default() {
            let exists: Option<i64> = sqlx::query_scalar::<Db, i64>("SELECT id FROM folders WHERE id = $1")
                .bind(*folder_id)
                .fetch_optional(&mut *tx)
                .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound(format!("folder #{folder_id}")));
            }
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
                "; folder #{folder_id} [{}]",
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

    async fn set_auth(&self, id: i64, auth: AuthMethod, actor: &Actor, now: Timestamp) -> Result<User> {
        let mut tx = self.pool.begin().await?;
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

    async fn set_password_hash(&self, id: i64, hash: &str, actor: &Actor, now: Timestamp) -> Result<()> {
        let mut tx = self.pool.begin().await?;
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

    async fn list_folders(&self) -> Result<Vec<Folder>> {
        let mut conn = self.pool.acquire().await?;
        let rows = sqlx::query::<Db>(sqlx::AssertSqlSafe(format!("{FOLDER_SELECT} ORDER BY f.name, f.id")))
            .fetch_all(&mut *conn)
            .await?;
        rows.iter().map(folder_from_row).collect()
    }

    async fn get_folder(&self, id: i64) -> Result<Option<Folder>> {
        let mut conn = self.pool.acquire().await?;
        let row = sqlx::query::<Db>(sqlx::AssertSqlSafe(format!("{FOLDER_SELECT} WHERE f.id = $1")))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(folder_from_row).transpose()
    }

    async fn set_message_count(&self, id: i64, count: i64, actor: &Actor, now: Timestamp) -> Result<Folder> {
        if count < 0 {
            return Err(StoreError::Invalid("a message count can't be negative".into()));
        }
        // No version bump: the archive sets counts all the time, and a bump would make every sync that
        // runs meanwhile fail as stale. A plan's folder decisions are taken again at the apply instead
        // (`delete_user_rows`, `AppliedPlan`).
        let mut tx = self.pool.begin().await?;
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

    async fn get_setting(&self, key: &str) -> Result<Option<String>> {
        let mut conn = self.pool.acquire().await?;
        Ok(sqlx::query_scalar::<Db, String>("SELECT value FROM settings WHERE key = $1")
            .bind(key.to_owned())
            .fetch_optional(&mut *conn)
            .await?)
    }

    async fn put_setting(&self, key: &str, value: &str, actor: &Actor, now: Timestamp, details: &str) -> Result<()> {
        let mut tx = self.pool.begin().await?;
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

    async fn default_privileges(&self) -> Result<DefaultPrivileges> {
        match self.get_setting("default_privileges").await? {
            Some(raw) => serde_json::from_str(&raw).map_err(|e| StoreError::Invalid(e.to_string())),
            None => Ok(DefaultPrivileges::default()),
        }
    }

    async fn audit(&self, actor: &Actor, action: &str, target: &str, details: &str, now: Timestamp) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        write_audit(&mut conn, actor, action, target, details, now).await
    }

    async fn list_audit(&self, offset: i64, limit: i64) -> Result<Page<AuditEntry>> {
        let mut conn = self.pool.acquire().await?;
        let total: i64 = sqlx::query_scalar::<Db, i64>("SELECT COUNT(*) FROM audit_log")
            .fetch_one(&mut *conn)
            .await?;
        let rows = sqlx::query::<Db>(
            "SELECT id, at, actor, action, target, details FROM audit_log ORDER BY id DESC LIMIT $1 OFFSET $2",
        )
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *conn)
        .await?;
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

    async fn create_session(&self, token_hash: &str, user_id: i64, now: Timestamp, expires_at: Timestamp) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
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

    async fn session_user(&self, token_hash: &str, now: Timestamp) -> Result<Option<User>> {
        let mut conn = self.pool.acquire().await?;
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

    async fn delete_session(&self, token_hash: &str) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query::<Db>("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash.to_owned())
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn snapshot(&self) -> Result<Snapshot> {
        // One read transaction, so the users, addresses and version belong together.
        let mut tx = self.pool.begin().await?;
        let version = read_version(&mut tx).await?;
        // Streamed, not fetched whole: at 100,000 users the rows alone would hold more than 100 MB. Sized
        // exactly: a vector grown by doubling would hold up to twice the users' memory.
        let count: i64 = sqlx::query_scalar::<Db, i64>("SELECT COUNT(*) FROM users").fetch_one(&mut *tx).await?;
        let mut users: Vec<CurrentUser> = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        {
            let mut rows = sqlx::query::<Db>(
                "SELECT u.id, u.name, u.full_name, u.auth, u.builtin_admin, u.dir_source, u.dir_id, u.dir_dn, \
                 COALESCE(f.message_count, 0) AS messages \
                 FROM users u LEFT JOIN folders f ON f.owner_user_id = u.id ORDER BY u.id",
            )
            .fetch(&mut *tx);
            while let Some(row) = rows.try_next().await? {
                let id: i64 = row.try_get("id")?;
                users.push(CurrentUser {
                    id,
                    name: parse_name(&row.try_get::<String, _>("name")?)?,
                    full_name: row.try_get("full_name")?,
                    emails: Vec::new(),
                    auth: parse_auth(&row.try_get::<String, _>("auth")?)?,
                    link: link_from(row.try_get("dir_source")?, row.try_get("dir_id")?, row.try_get("dir_dn")?),
                    builtin_admin: row.try_get("builtin_admin")?,
                    folder_messages: row.try_get("messages")?,
                });
            }
        }
        {
            // Both queries are in id order: walk the users alongside the addresses instead of indexing them,
            // and give each user a list of exactly its addresses.
            let mut rows = sqlx::query::<Db>("SELECT user_id, address FROM user_emails ORDER BY user_id, position")
                .fetch(&mut *tx);
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
        }
        tx.commit().await?;
        Ok(Snapshot { version, users })
    }

    async fn user_db_version(&self) -> Result<i64> {
        let mut conn = self.pool.acquire().await?;
        read_version(&mut conn).await
    }

    async fn begin_run(&self, run: &NewRun, now: Timestamp, stale_before: Timestamp) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        sqlx::query::<Db>(
            "UPDATE sync_runs SET status = 'abandoned', finished_at = $1, \
             error = 'the process running it stopped before it finished; nothing it had not committed was applied' \
             WHERE status = 'running' AND heartbeat_at < $2",
        )
        .bind(now.0)
        .bind(stale_before.0)
        .execute(&mut *tx)
        .await?;
        let id: Option<i64> = sqlx::query_scalar::<Db, i64>(
            "INSERT INTO sync_runs (kind, triggered_by, actor, directory_type, status, started_at, heartbeat_at) \
             VALUES ($1, $2, $3, $4, 'running', $5, $5) ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(run.kind.as_str())
        .bind(run.triggered_by.clone())
        .bind(run.actor.as_str().to_owned())
        .bind(run.directory_type.clone())
        .bind(now.0)
        .fetch_optional(&mut *tx)
        .await?;
        match id {
            Some(id) => {
                tx.commit().await?;
                Ok(id)
            }
            None => {
                let row = sqlx::query::<Db>(
                    "SELECT id, kind, actor, started_at, heartbeat_at FROM sync_runs WHERE status = 'running'",
                )
                .fetch_one(&mut *tx)
                .await?;
                let heartbeat_at: i64 = row.try_get("heartbeat_at")?;
                Err(StoreError::RunInProgress {
                    run_id: row.try_get("id")?,
                    kind: row.try_get("kind")?,
                    actor: row.try_get("actor")?,
                    started_at: Timestamp(row.try_get("started_at")?),
                    // Stale once heartbeat_at < stale_before, and stale_before moves with the clock.
                    dead_after: Timestamp(heartbeat_at.saturating_add(now.0.saturating_sub(stale_before.0))),
                })
            }
        }
    }

    async fn heartbeat_run(&self, run_id: i64, entries_read: i64, now: Timestamp) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query::<Db>("UPDATE sync_runs SET heartbeat_at = $1, entries_read = $2 WHERE id = $3 AND status = 'running'")
            .bind(now.0)
            .bind(entries_read)
            .bind(run_id)
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    async fn apply_plan(
        &self,
        run_id: i64,
        expected_version: i64,
        changes: &PlannedChanges,
        defaults: &DefaultPrivileges,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<AppliedPlan> {
        let mut conn = apply_connection(self).await?;
        let mut tx = sqlx::Acquire::begin(&mut conn).await?;
        let version = bump_version(&mut tx).await?;
        if version != expected_version + 1 {
            return Err(StoreError::StaleSnapshot);
        }
        // A run that another process declared dead must not apply behind its back.
        let status: Option<String> = sqlx::query_scalar::<Db, String>("SELECT status FROM sync_runs WHERE id = $1")
            .bind(run_id)
            .fetch_optional(&mut *tx)
            .await?;
        if status.as_deref() != Some("running") {
            return Err(StoreError::RunNotRunning(run_id));
        }
        // Order matters for the unique constraints: free names and addresses before anyone takes them.
        let mut applied = AppliedPlan::default();
        for d in &changes.delete {
            let kept = delete_user_rows(&mut tx, d.user_id, now).await?;
            if kept != d.keep_folder {
                applied.folders_decided_at_apply.push((d.user_id, kept));
            }
        }
        let new_emails: Vec<i64> = changes.update.iter().filter(|u| u.emails.is_some()).map(|u| u.user_id).collect();
        for chunk in new_emails.chunks(CHUNK) {
            let mut q = QueryBuilder::<Db>::new("DELETE FROM user_emails WHERE user_id IN (");
            push_in_list(&mut q, chunk.iter().copied());
            q.build().execute(&mut *tx).await?;
        }
        // Renames go through a temporary key so that swaps (a -> b, b -> a) never collide.
        for u in changes.update.iter().filter(|u| u.name.is_some()) {
            sqlx::query::<Db>("UPDATE users SET name_key = $1 WHERE id = $2")
                .bind(format!("\u{1}renaming:{}", u.user_id))
                .bind(u.user_id)
                .execute(&mut *tx)
                .await?;
        }
        for u in &changes.update {
            let mut q = QueryBuilder::<Db>::new("UPDATE users SET updated_at = ");
            q.push_bind(now.0);
            q.push(", dir_source = ").push_bind(u.link.source.clone());
            q.push(", dir_id = ").push_bind(u.link.id.clone());
            q.push(", dir_dn = ").push_bind(u.link.dn.clone());
            if let Some(name) = &u.name {
                q.push(", name = ").push_bind(name.as_str().to_owned());
                q.push(", name_key = ").push_bind(name.key());
                // The own folder is named after the user.
                sqlx::query::<Db>("UPDATE folders SET name = $1 WHERE owner_user_id = $2 AND name = $3")
                    .bind(name.as_str().to_owned())
                    .bind(u.user_id)
                    .bind(u.old_name.as_str().to_owned())
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(full_name) = &u.full_name {
                q.push(", full_name = ").push_bind(full_name.clone());
            }
            q.push(" WHERE id = ").push_bind(u.user_id);
            q.build().execute(&mut *tx).await?;
        }
        if !changes.create.is_empty() {
            let first = alloc_ids(&mut tx, "next_user_id", changes.create.len()).await?;
            let with_ids: Vec<(i64, &roster_core::plan::NewUser)> = (first..).zip(changes.create.iter()).collect();
            for chunk in with_ids.chunks(CHUNK) {
                let mut q = QueryBuilder::<Db>::new(
                    "INSERT INTO users (id, name, name_key, full_name, auth, builtin_admin, dir_source, dir_id, dir_dn, created_at, updated_at) ",
                );
                q.push_values(chunk, |mut b, (id, n)| {
                    b.push_bind(*id)
                        .push_bind(n.name.as_str().to_owned())
                        .push_bind(n.name.key())
                        .push_bind(n.full_name.clone())
                        // Constants as SQL: a bound string is a copy per row.
                        .push("'directory'")
                        .push("FALSE")
                        .push_bind(n.link.source.clone())
                        .push_bind(n.link.id.clone())
                        .push_bind(n.link.dn.clone())
                        .push_bind(now.0)
                        .push_bind(now.0);
                });
                q.build().execute(&mut *tx).await?;
            }
            // The new users hold the ids first.. (the counter was moved past them in this transaction):
            // their privileges, own folders and access to them are derived from those rows by the
            // database, without a bound value per row.
            let after = first + i64::try_from(with_ids.len()).map_err(|e| StoreError::Invalid(e.to_string()))?;
            for p in &defaults.privileges {
                sqlx::query::<Db>(
                    "INSERT INTO user_privileges (user_id, privilege) SELECT id, $1 FROM users WHERE id >= $2 AND id < $3",
                )
                .bind(p.as_str())
                .bind(first)
                .bind(after)
                .execute(&mut *tx)
                .await?;
            }
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
            let emails: Vec<(i64, &[EmailAddress])> = with_ids.iter().map(|(id, n)| (*id, n.emails.as_slice())).collect();
            insert_emails(&mut tx, &emails).await?;
        }
        let updated_emails: Vec<(i64, &[EmailAddress])> = changes
            .update
            .iter()
            .filter_map(|u| u.emails.as_ref().map(|e| (u.user_id, e.as_slice())))
            .collect();
        insert_emails(&mut tx, &updated_emails).await?;
        write_audit(
            &mut tx,
            actor,
            "directory.sync",
            &format!("run #{run_id}"),
            &format!(
                "applied: {} created, {} updated, {} deleted; each user's line is in the run's report",
                changes.create.len(),
                changes.update.len(),
                changes.delete.len()
            ),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(applied)
    }

    async fn finish_run(&self, run_id: i64, outcome: &RunOutcome<'_>, now: Timestamp) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let counts = outcome
            .counts
            .map(|c| serde_json::to_string(&c))
            .transpose()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        sqlx::query::<Db>(
            "UPDATE sync_runs SET status = $1, finished_at = $2, heartbeat_at = $2, entries_read = $3, counts = $4, error = $5 WHERE id = $6",
        )
        .bind(outcome.status.as_str())
        .bind(now.0)
        .bind(outcome.entries_read)
        .bind(counts)
        .bind(outcome.error.clone())
        .bind(run_id)
        .execute(&mut *tx)
        .await?;
        let chunks: Vec<(i64, &[ReportLine])> = (0_i64..).zip(outcome.lines.chunks(LINES_PER_CHUNK)).collect();
        for batch in chunks.chunks(CHUNKS_PER_INSERT) {
            let rows = batch
                .iter()
                .map(|(n, lines)| {
                    let count = i64::try_from(lines.len()).map_err(|e| StoreError::Invalid(e.to_string()))?;
                    Ok((*n, count, encode_lines(lines)?))
                })
                .collect::<Result<Vec<_>>>()?;
            let mut q = QueryBuilder::<Db>::new("INSERT INTO sync_run_line_chunks (run_id, chunk, line_count, lines) ");
            q.push_values(rows, |mut b, (n, count, json)| {
                b.push_bind(run_id).push_bind(n).push_bind(count).push_bind(json);
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_runs(&self, offset: i64, limit: i64) -> Result<Page<RunSummary>> {
        let mut conn = self.pool.acquire().await?;
        let total: i64 = sqlx::query_scalar::<Db, i64>("SELECT COUNT(*) FROM sync_runs")
            .fetch_one(&mut *conn)
            .await?;
        let rows = sqlx::query::<Db>(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM sync_runs ORDER BY id DESC LIMIT $1 OFFSET $2"
        )))
        .bind(limit)
        .bind(offset)
        .fetch_all(&mut *conn)
        .await?;
        Ok(Page { items: rows.iter().map(run_from_row).collect::<Result<_>>()?, total })
    }

    async fn get_run(&self, id: i64) -> Result<Option<RunSummary>> {
        let mut conn = self.pool.acquire().await?;
        let row = sqlx::query::<Db>(sqlx::AssertSqlSafe(format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE id = $1")))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    async fn run_lines(&self, id: i64, offset: i64, limit: i64) -> Result<Page<ReportLine>> {
        let mut conn = self.pool.acquire().await?;
        // PostgreSQL sums BIGINTs to a NUMERIC: cast back.
        let total: i64 = sqlx::query_scalar::<Db, i64>(
            "SELECT CAST(COALESCE(SUM(line_count), 0) AS BIGINT) FROM sync_run_line_chunks WHERE run_id = $1",
        )
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
        // A negative offset reads from the first line (as SQLite's OFFSET did); a limit below 1 reads nothing.
        let offset = offset.max(0);
        let end = offset.saturating_add(limit.max(0)).min(total);
        if end <= offset {
            return Ok(Page { items: Vec::new(), total });
        }
        // Only the chunks that hold lines offset..end.
        let rows = sqlx::query::<Db>(
            "SELECT chunk, lines FROM sync_run_line_chunks WHERE run_id = $1 AND chunk >= $2 AND chunk <= $3 ORDER BY chunk",
        )
        .bind(id)
        .bind(offset / LINES_PER_CHUNK_I64)
        .bind((end - 1) / LINES_PER_CHUNK_I64)
        .fetch_all(&mut *conn)
        .await?;
        let wanted = usize::try_from(end - offset).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mut items = Vec::with_capacity(wanted);
        for row in rows {
            let chunk: i64 = row.try_get("chunk")?;
            let lines = decode_lines(&row.try_get::<String, _>("lines")?)?;
            // The chunk starts at line chunk * LINES_PER_CHUNK; only the first chunk read starts before `offset`.
            let skip = usize::try_from(offset.saturating_sub(chunk.saturating_mul(LINES_PER_CHUNK_I64))).unwrap_or(0);
            let room = wanted.saturating_sub(items.len());
            items.extend(lines.into_iter().skip(skip).take(room));
        }
        Ok(Page { items, total })
    }

    async fn check_consistency(&self) -> Result<Vec<String>> {
        let mut conn = self.pool.acquire().await?;
        let mut problems = Vec::new();
        let checks: [(&str, &str); 6] = [
            ("users without an own archive folder", "SELECT u.name FROM users u WHERE NOT EXISTS (SELECT 1 FROM folders f WHERE f.owner_user_id = u.id)"),
            ("orphaned folders without messages", "SELECT name FROM folders WHERE owner_user_id IS NULL AND message_count = 0"),
            ("users whose name key doesn't match", "SELECT name FROM users WHERE name_key LIKE '\u{1}%'"),
            ("built-in administrators", "SELECT name FROM users WHERE builtin_admin = TRUE GROUP BY name HAVING COUNT(*) > 1"),
            ("half-linked users", "SELECT name FROM users WHERE (dir_source IS NULL) <> (dir_id IS NULL)"),
            ("runs still marked running", "SELECT CAST(id AS TEXT) FROM sync_runs WHERE status = 'running'"),
        ];
        for (what, sql) in checks {
            let names: Vec<String> = sqlx::query_scalar::<Db, String>(sql).fetch_all(&mut *conn).await?;
            if !names.is_empty() {
                problems.push(format!("{what}: {}", names.join(", ")));
            }
        }
        // SQLite applies a synchronization's plan without enforcing foreign keys (sqlite.rs,
        // `apply_connection`): a row that points at nothing is a bug there. PostgreSQL always enforces them.
        if BACKEND == "sqlite" {
            let dangling: Vec<(String, String)> = sqlx::query_as::<Db, (String, String)>(
                "SELECT \"table\" || ' row ' || COALESCE(CAST(rowid AS TEXT), '(without rowid)'), \"parent\" \
                 FROM pragma_foreign_key_check",
            )
            .fetch_all(&mut *conn)
            .await?;
            for (row, parent) in dangling {
                problems.push(format!("{row} refers to a missing row of {parent}"));
            }
        }
        let keys: Vec<(String, String)> = sqlx::query_as::<Db, (String, String)>("SELECT name, name_key FROM users")
            .fetch_all(&mut *conn)
            .await?;
        for (name, key) in keys {
            if roster_core::names::name_key(&name) != key {
                problems.push(format!("user {name:?} has the stale name key {key:?}"));
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
                "SELECT run_id, chunk, line_count, lines FROM sync_run_line_chunks ORDER BY run_id, chunk",
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
                match decode_lines(&row.try_get::<String, _>("lines")?) {
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
        let admin_privs: i64 = sqlx::query_scalar::<Db, i64>(
            "SELECT COUNT(*) FROM user_privileges p JOIN users u ON u.id = p.user_id WHERE u.builtin_admin = TRUE",
        )
        .fetch_one(&mut *conn)
        .await?;
        let admins: i64 = sqlx::query_scalar::<Db, i64>("SELECT COUNT(*) FROM users WHERE builtin_admin = TRUE")
            .fetch_one(&mut *conn)
            .await?;
        if admins != 1 {
            problems.push(format!("{admins} built-in administrators (expected 1)"));
        } else if admin_privs != i64::try_from(Privilege::ALL.len()).unwrap_or(0) {
            problems.push("the built-in administrator lacks some privileges".into());
        }
        Ok(problems)
    }
}
