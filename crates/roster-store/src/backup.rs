//! Backup and restore of the embedded SQLite database (`roster backup`, `roster restore`).
//!
//! A backup is one SQLite file: a copy of the database made with `VACUUM INTO`, plus two tables of its
//! own, `roster_backup` (what it is: the format, when it was made, by which version, at which schema
//! version) and `roster_backup_files` (the files of the data directory a restore needs besides the
//! database: the caller names them; Roster's binary puts the secret key there, so a restored directory
//! password can be decrypted). Those tables are what tells a Roster backup from any other file, and a
//! restore removes them from the restored database.
//!
//! **Why `VACUUM INTO`.** It runs in one read transaction of the live database, so the copy is the
//! database as of one instant, whatever the server writes meanwhile (in WAL mode writers go on; they don't
//! wait for it). SQLite's online backup API gives the same snapshot only when it copies every page in one
//! step; in steps, a write by another process restarts it. It would also need `unsafe` FFI on sqlx's raw
//! handle (the workspace denies `unsafe`), while `VACUUM INTO` is one SQL statement. At 100,000 users
//! (a 34 MiB database) `VACUUM INTO` takes 0.22 s, the backup API 0.12 s (sqlite3's `.backup`), both
//! sub-second; the copy is compacted, and not in WAL mode, so it is a single self-contained file.
//!
//! A restore copies the backup beside the database, takes the backup's own tables out of the copy (with
//! `secure_delete`, so the key doesn't linger in free pages), records a run that was running when the
//! backup was made as abandoned, writes the companion files, moves whatever
//! database, WAL, key… the data directory held into a `before-restore-<time>` directory, and only then
//! renames the copies into place. It holds the data directory's lock ([`crate::DataDirLock`])
//! exclusively throughout, so no Roster process uses the directory meanwhile.

use crate::lock::{DataDirLock, LOCK_FILE};
use crate::{Result, StoreError};
use roster_core::Timestamp;
use sqlx::Connection as _;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqliteSynchronous};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The backup file's format, in `roster_backup` under `format`. A restore refuses a later one.
pub const BACKUP_FORMAT: i64 = 1;

/// The database's file name in the data directory, and the files SQLite keeps beside it.
const DATABASE_FILE: &str = "roster.db";
const DATABASE_SIDE_FILES: [&str; 3] = ["roster.db-wal", "roster.db-shm", "roster.db-journal"];
/// Where a restore writes the database before it renames it into place.
const RESTORING_SUFFIX: &str = ".restoring";

/// A file of the data directory that a restore needs besides the database, carried in the backup.
#[derive(Clone, PartialEq, Eq)]
pub struct Companion {
    /// A plain file name in the data directory (no directory part), e.g. `secret.key`.
    pub name: String,
    pub contents: Vec<u8>,
}

/// Its contents may be a key: never shown.
impl std::fmt::Debug for Companion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Companion")
            .field("name", &self.name)
            .field("bytes", &self.contents.len())
            .finish()
    }
}

/// What `backup` wrote.
#[derive(Debug, Clone)]
pub struct BackupSummary {
    pub path: PathBuf,
    pub bytes: u64,
    pub users: i64,
    pub schema_version: i64,
}

/// What a backup file holds, as a restore reads it.
#[derive(Debug, Clone)]
pub struct BackupInfo {
    pub format: i64,
    pub created_at: Timestamp,
    /// The version of Roster that made it.
    pub roster_version: String,
    /// Its last database migration.
    pub schema_version: i64,
    pub users: i64,
    pub companions: Vec<Companion>,
}

#[derive(Debug, Clone, Copy)]
pub struct RestoreOptions {
    /// Replace a database the data directory already holds (it is kept aside, not deleted).
    pub force: bool,
    /// Names the directory the previous files are kept in.
    pub now: Timestamp,
}

#[derive(Debug, Clone)]
pub struct Restored {
    pub info: BackupInfo,
    pub database: PathBuf,
    /// Where the data directory's previous database and companion files went, if it had any.
    pub set_aside: Option<PathBuf>,
}

/// The last migration this version of Roster knows (SQLite).
pub fn known_schema_version() -> i64 {
    crate::sqlite::MIGRATOR
        .iter()
        .map(|m| m.version)
        .max()
        .unwrap_or(0)
}

/// A companion's name must be a plain file name that is none of the files a restore manages itself: a
/// backup file is input, and a name like `../x` must not write outside the data directory.
fn check_companion_name(name: &str) -> std::result::Result<(), String> {
    let plain = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
    let reserved = name.starts_with(DATABASE_FILE)
        || name == LOCK_FILE
        || name.starts_with("before-restore")
        || name.ends_with(RESTORING_SUFFIX);
    if plain && !reserved {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a file name a backup may carry into the data directory"
        ))
    }
}

fn failed(what: &str, path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::BackupFailed(format!("{what} {}: {e}", path.display()))
}

/// Creates `path` for writing, readable by its owner only; an existing file is an error.
fn create_new_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Makes a rename or a new file in `dir` durable.
fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| failed("can't sync the directory", dir, e))
}

// ---- backup -------------------------------------------------------------------------------------------

/// `roster backup`: see the module comment. `dest` must not exist; it is created readable by its owner
/// only, since it holds password hashes and whatever `companions` carry (the secret key). A failed backup
/// leaves no file behind.
pub(crate) async fn backup_sqlite(
    pool: &sqlx::SqlitePool,
    dest: &Path,
    companions: &[Companion],
    now: Timestamp,
) -> Result<BackupSummary> {
    for c in companions {
        check_companion_name(&c.name).map_err(StoreError::BackupFailed)?;
    }
    let dest = std::path::absolute(dest).map_err(|e| failed("can't resolve", dest, e))?;
    let Some(dest_text) = dest.to_str() else {
        return Err(StoreError::BackupFailed(format!(
            "{}: the backup file's name must be UTF-8",
            dest.display()
        )));
    };
    match create_new_private(&dest) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(StoreError::BackupFileExists(dest.display().to_string()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreError::NotFound(format!(
                "the directory {} for the backup file",
                dest.parent().unwrap_or(&dest).display()
            )));
        }
        Err(e) => return Err(failed("can't create", &dest, e)),
    }
    match write_backup(pool, &dest, dest_text, companions, now).await {
        Ok(summary) => Ok(summary),
        Err(e) => {
            // Ours: created above. Half a backup is worse than none.
            let _ = std::fs::remove_file(&dest);
            let _ = std::fs::remove_file(format!("{dest_text}-journal"));
            Err(e)
        }
    }
}

async fn write_backup(
    pool: &sqlx::SqlitePool,
    dest: &Path,
    dest_text: &str,
    companions: &[Companion],
    now: Timestamp,
) -> Result<BackupSummary> {
    // Into the empty file created above (VACUUM INTO takes a missing or an empty file), so it keeps the
    // permissions given there.
    sqlx::query("VACUUM INTO $1")
        .bind(dest_text)
        .execute(pool)
        .await
        .map_err(|e| {
            failed(
                "can't copy the database into",
                dest,
                StoreError::from_sqlx(e),
            )
        })?;
    let mut conn = SqliteConnection::connect_with(&file_options(dest))
        .await
        .map_err(|e| failed("can't open the copy", dest, StoreError::from_sqlx(e)))?;
    let result = describe_backup(&mut conn, companions, now).await;
    let _ = conn.close().await;
    let (users, schema_version) = result.map_err(|e| failed("can't complete", dest, e))?;
    std::fs::File::open(dest)
        .and_then(|f| f.sync_all())
        .map_err(|e| failed("can't sync", dest, e))?;
    if let Some(parent) = dest.parent() {
        sync_dir(parent)?;
    }
    let bytes = std::fs::metadata(dest)
        .map(|m| m.len())
        .map_err(|e| failed("can't read", dest, e))?;
    Ok(BackupSummary {
        path: dest.to_owned(),
        bytes,
        users,
        schema_version,
    })
}

/// A backup file opened for writing: a rollback journal (no WAL files beside it) and full syncs.
fn file_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Delete)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(false)
}

/// Adds the backup's own tables to the copy and checks it; returns its users and schema version.
async fn describe_backup(
    conn: &mut SqliteConnection,
    companions: &[Companion],
    now: Timestamp,
) -> Result<(i64, i64)> {
    let schema_version: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations")
            .fetch_one(&mut *conn)
            .await?;
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&mut *conn)
        .await?;
    let mut tx = conn.begin().await?;
    sqlx::query("CREATE TABLE roster_backup (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        .execute(&mut *tx)
        .await?;
    sqlx::query("CREATE TABLE roster_backup_files (name TEXT PRIMARY KEY, contents BLOB NOT NULL)")
        .execute(&mut *tx)
        .await?;
    let about = [
        ("format", BACKUP_FORMAT.to_string()),
        ("created_at", now.millis().to_string()),
        ("roster_version", env!("CARGO_PKG_VERSION").to_owned()),
        ("schema_version", schema_version.to_string()),
        ("users", users.to_string()),
    ];
    for (key, value) in about {
        sqlx::query("INSERT INTO roster_backup (key, value) VALUES ($1, $2)")
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
    }
    for c in companions {
        sqlx::query("INSERT INTO roster_backup_files (name, contents) VALUES ($1, $2)")
            .bind(&c.name)
            .bind(&c.contents)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    let problems = integrity_problems(conn).await?;
    if !problems.is_empty() {
        return Err(StoreError::Corrupt {
            path: "(the backup)".into(),
            detail: problems.join("; "),
        });
    }
    Ok((users, schema_version))
}

/// `PRAGMA integrity_check`: empty when the file is sound.
pub(crate) async fn integrity_problems(conn: &mut SqliteConnection) -> Result<Vec<String>> {
    let lines: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check(20)")
        .fetch_all(&mut *conn)
        .await?;
    Ok(lines.into_iter().filter(|l| l != "ok").collect())
}

// ---- inspect ------------------------------------------------------------------------------------------

/// Reads what a backup file holds, refusing a file that isn't a Roster backup ([`StoreError::NotABackup`]),
/// one made by a newer version ([`StoreError::BackupNewer`]) and a damaged one
/// ([`StoreError::BackupUnusable`]). Changes nothing in the file.
pub async fn inspect(file: &Path) -> Result<BackupInfo> {
    let shown = file.display().to_string();
    let not_a_backup = |detail: &str| StoreError::NotABackup {
        path: shown.clone(),
        detail: detail.to_owned(),
    };
    let unusable = |detail: String| StoreError::BackupUnusable {
        path: shown.clone(),
        detail,
    };
    // SQLite's header: the magic string, then (bytes 18 and 19) 2 for a database in WAL mode.
    let mut header = [0_u8; 20];
    let read = std::fs::File::open(file).and_then(|mut f| {
        if !f.metadata()?.is_file() {
            return Err(std::io::Error::other("it is not a regular file"));
        }
        f.read_exact(&mut header)
            .map(|()| header.len())
            .or_else(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    Ok(0)
                } else {
                    Err(e)
                }
            })
    });
    match read {
        Ok(20) if header.starts_with(b"SQLite format 3\0") => {}
        Ok(_) => return Err(not_a_backup("it is not an SQLite database")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(StoreError::NotFound(format!("the backup file {shown}")));
        }
        Err(e) => return Err(failed("can't read", file, e)),
    }
    // A backup is written with a rollback journal; the live database is in WAL mode (and its latest
    // changes may be in the WAL file beside it, which a copy of the database file alone lacks).
    if header.get(18..20) == Some(&[2, 2]) {
        return Err(not_a_backup(
            "it is a live database in WAL mode: it doesn't carry the secret key, and its latest changes may be in its -wal file",
        ));
    }
    // Immutable: read as it is, no locks, no journal, nothing written beside it.
    let options = SqliteConnectOptions::new()
        .filename(file)
        .read_only(true)
        .immutable(true);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| not_a_backup(&format!("SQLite can't read it: {e}")))?;
    let result = inspect_open(&mut conn, &not_a_backup, &unusable).await;
    let _ = conn.close().await;
    result
}

async fn inspect_open(
    conn: &mut SqliteConnection,
    not_a_backup: &(dyn Fn(&str) -> StoreError + Sync),
    unusable: &(dyn Fn(String) -> StoreError + Sync),
) -> Result<BackupInfo> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name IN ('roster_backup', 'roster_backup_files', '_sqlx_migrations', 'users')",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| not_a_backup(&format!("SQLite can't read it: {e}")))?;
    let has = |t: &str| tables.iter().any(|n| n == t);
    if !has("roster_backup") || !has("roster_backup_files") {
        return Err(if has("_sqlx_migrations") && has("users") {
            not_a_backup(
                "it is a Roster database, which doesn't carry the secret key; to use it anyway, stop Roster and copy it into the data directory as roster.db, with the secret.key it was used with",
            )
        } else {
            not_a_backup("an SQLite database without Roster's backup tables")
        });
    }
    let about: Vec<(String, String)> = sqlx::query_as("SELECT key, value FROM roster_backup")
        .fetch_all(&mut *conn)
        .await?;
    let number = |key: &str| -> Result<i64> {
        about
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse::<i64>().ok())
            .ok_or_else(|| not_a_backup(&format!("its {key} is missing")))
    };
    let format = number("format")?;
    if format > BACKUP_FORMAT {
        return Err(StoreError::BackupNewer {
            what: "backup format",
            found: format,
            known: BACKUP_FORMAT,
        });
    }
    let created_at = Timestamp(number("created_at")?);
    let roster_version = about
        .iter()
        .find(|(k, _)| k == "roster_version")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();

    // The migrations it has against the ones this version knows: a later one (a newer Roster), one that
    // differs (another build), or one that failed.
    let applied: Vec<(i64, Vec<u8>, bool)> =
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| not_a_backup(&format!("its migrations can't be read: {e}")))?;
    let known = known_schema_version();
    let schema_version = applied.iter().map(|(v, _, _)| *v).max().unwrap_or(0);
    for (version, checksum, success) in &applied {
        match crate::sqlite::MIGRATOR
            .iter()
            .find(|m| m.version == *version)
        {
            None => {
                return Err(StoreError::BackupNewer {
                    what: "database migration",
                    found: schema_version.max(*version),
                    known,
                });
            }
            Some(m) if m.checksum.as_ref() != checksum.as_slice() => {
                return Err(unusable(format!(
                    "its database migration {version} differs from this version's: it was made by another build of Roster"
                )));
            }
            Some(_) if !success => {
                return Err(unusable(format!(
                    "its database migration {version} had failed"
                )));
            }
            Some(_) => {}
        }
    }
    let problems = integrity_problems(conn).await?;
    if !problems.is_empty() {
        return Err(unusable(format!(
            "it is damaged (SQLite's integrity check: {})",
            problems.join("; ")
        )));
    }
    let companions: Vec<(String, Vec<u8>)> =
        sqlx::query_as("SELECT name, contents FROM roster_backup_files ORDER BY name")
            .fetch_all(&mut *conn)
            .await?;
    let companions = companions
        .into_iter()
        .map(|(name, contents)| {
            check_companion_name(&name).map_err(unusable)?;
            Ok(Companion { name, contents })
        })
        .collect::<Result<Vec<_>>>()?;
    let users: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&mut *conn)
        .await?;
    Ok(BackupInfo {
        format,
        created_at,
        roster_version,
        schema_version,
        users,
        companions,
    })
}

// ---- restore ------------------------------------------------------------------------------------------

/// `roster restore`: see the module comment. Refuses a data directory a Roster process uses
/// ([`StoreError::DataDirInUse`]) and, without `force`, one that holds a database
/// ([`StoreError::DatabaseExists`]). Nothing is deleted: the previous files go to
/// [`Restored::set_aside`].
pub async fn restore(file: &Path, data_dir: &Path, options: RestoreOptions) -> Result<Restored> {
    // The file first: a file that can't be restored leaves the data directory as it was (not even created).
    let info = inspect(file).await?;
    let _lock = DataDirLock::exclusive(data_dir)?;
    let database = data_dir.join(DATABASE_FILE);
    if database.exists() && !options.force {
        return Err(StoreError::DatabaseExists(data_dir.display().to_string()));
    }
    // The copies, written beside their final names first (left over from a restore that failed: ours).
    let staged_db = data_dir.join(format!("{DATABASE_FILE}{RESTORING_SUFFIX}"));
    let mut staged: Vec<(PathBuf, PathBuf)> = Vec::new();
    let result = async {
        stage_database(file, &staged_db, options.now).await?;
        staged.push((staged_db.clone(), database.clone()));
        for c in &info.companions {
            let path = data_dir.join(format!("{}{RESTORING_SUFFIX}", c.name));
            write_staged(&path, &c.contents)?;
            staged.push((path, data_dir.join(&c.name)));
        }
        sync_dir(data_dir)
    }
    .await;
    if let Err(e) = result {
        for path in [staged_db.clone()]
            .into_iter()
            .chain(staged.iter().map(|(p, _)| p.clone()))
        {
            let _ = std::fs::remove_file(&path);
        }
        return Err(e);
    }
    // Everything the restore replaces, and SQLite's files of the old database (a WAL left beside the new
    // database would be replayed into it), go aside together.
    let mut previous: Vec<&str> = vec![DATABASE_FILE];
    previous.extend(DATABASE_SIDE_FILES);
    previous.extend(info.companions.iter().map(|c| c.name.as_str()));
    let existing: Vec<&str> = previous
        .into_iter()
        .filter(|name| data_dir.join(name).symlink_metadata().is_ok())
        .collect();
    let set_aside = if existing.is_empty() {
        None
    } else {
        let aside = aside_dir(data_dir, options.now)?;
        for name in existing {
            std::fs::rename(data_dir.join(name), aside.join(name)).map_err(|e| {
                StoreError::BackupFailed(format!(
                    "can't move {} into {}: {e}; the files moved so far are there, and the restored copies are in {} with the suffix {RESTORING_SUFFIX}",
                    data_dir.join(name).display(),
                    aside.display(),
                    data_dir.display()
                ))
            })?;
        }
        sync_dir(&aside)?;
        Some(aside)
    };
    // The companions first: a database without its key would open with a new one.
    staged.rotate_left(1);
    for (from, to) in &staged {
        std::fs::rename(from, to).map_err(|e| failed("can't rename into place", from, e))?;
    }
    sync_dir(data_dir)?;
    Ok(Restored {
        info,
        database,
        set_aside,
    })
}

/// What a run that was running when the backup was made is recorded with once restored.
const ABANDONED_BY_RESTORE: &str = "the backup this database was restored from was made while the run was running; it applied nothing, since a synchronization's changes are committed together with its outcome";

/// Copies the backup to `staged` (readable by its owner only, whatever the backup's permissions), takes
/// the backup's own tables out of the copy, and records a run that was running when the backup was made as
/// abandoned: no process runs it in the restored data directory (the restore holds it alone), and left
/// running it would hold off every run until it looked dead.
async fn stage_database(file: &Path, staged: &Path, now: Timestamp) -> Result<()> {
    for stale in [
        staged.to_path_buf(),
        PathBuf::from(format!("{}-journal", staged.display())),
    ] {
        match std::fs::remove_file(&stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(failed("can't remove", &stale, e)),
        }
    }
    let mut from = std::fs::File::open(file).map_err(|e| failed("can't read", file, e))?;
    let mut to = create_new_private(staged).map_err(|e| failed("can't create", staged, e))?;
    std::io::copy(&mut from, &mut to)
        .and_then(|_| to.sync_all())
        .map_err(|e| failed("can't copy the backup to", staged, e))?;
    drop(to);
    let mut conn = SqliteConnection::connect_with(&file_options(staged))
        .await
        .map_err(|e| failed("can't open", staged, StoreError::from_sqlx(e)))?;
    let result = async {
        // Zeroes the pages the tables free: the key must not stay in the database file.
        sqlx::query("PRAGMA secure_delete = ON")
            .execute(&mut conn)
            .await?;
        let mut tx = conn.begin().await?;
        sqlx::query("DROP TABLE roster_backup")
            .execute(&mut *tx)
            .await?;
        sqlx::query("DROP TABLE roster_backup_files")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE sync_runs SET status = 'abandoned', finished_at = $1, error = $2 WHERE status = 'running'",
        )
        .bind(now.millis())
        .bind(ABANDONED_BY_RESTORE)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok::<(), sqlx::Error>(())
    }
    .await;
    let _ = conn.close().await;
    result.map_err(|e| failed("can't prepare", staged, StoreError::from_sqlx(e)))?;
    std::fs::File::open(staged)
        .and_then(|f| f.sync_all())
        .map_err(|e| failed("can't sync", staged, e))
}

fn write_staged(path: &Path, contents: &[u8]) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(failed("can't remove", path, e)),
    }
    let mut f = create_new_private(path).map_err(|e| failed("can't create", path, e))?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(|e| failed("can't write", path, e))
}

/// A new `before-restore-<UTC time>` directory in the data directory (`-2`, `-3`… if one exists).
fn aside_dir(data_dir: &Path, now: Timestamp) -> Result<PathBuf> {
    let stamp: String = now
        .to_rfc3339()
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    for n in 1..1000 {
        let name = if n == 1 {
            format!("before-restore-{stamp}Z")
        } else {
            format!("before-restore-{stamp}Z-{n}")
        };
        let path = data_dir.join(name);
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            builder.mode(0o700);
        }
        match builder.create(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(failed("can't create", &path, e)),
        }
    }
    Err(StoreError::BackupFailed(format!(
        "too many before-restore directories in {}; remove old ones",
        data_dir.display()
    )))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn a_companion_name_is_a_plain_file_name_the_restore_doesnt_manage() {
        for ok in ["secret.key", "a-b_c.1"] {
            assert!(check_companion_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "../secret.key",
            "/etc/passwd",
            "a/b",
            ".hidden",
            "roster.db",
            "roster.db-wal",
            "roster.lock",
            "before-restore-x",
            "secret.key.restoring",
        ] {
            assert!(check_companion_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_aside_directory_is_named_by_the_time_and_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        // 2026-12-02T18:38:28.123Z
        let now = Timestamp(1_796_236_708_123);
        let a = aside_dir(dir.path(), now).unwrap();
        let b = aside_dir(dir.path(), now).unwrap();
        assert_eq!(
            a.file_name().unwrap().to_str().unwrap(),
            format!(
                "before-restore-{}Z",
                now.to_rfc3339().get(..19).unwrap().replace(['-', ':'], "")
            )
        );
        assert_eq!(b, PathBuf::from(format!("{}-2", a.display())));
    }
}
