//! A synchronization's hot paths on SQLite, through SQLite's own API (rusqlite, on the same bundled SQLite
//! that sqlx links) on a blocking thread: the snapshot of every current user, the snapshot of the users a
//! change touches, and applying a plan. Everything else in the store goes through sqlx.
//!
//! Why (issue 26, item 1; figures in BENCHMARKS.md): sqlx's SQLite driver runs each connection on a worker
//! thread of its own and hands every row, and every statement's arguments, across a channel to the async
//! side. For the few rows of a logon that costs nothing that matters; for the 250,000 rows of a snapshot
//! of 100,000 users it took the snapshot to about eight times what the same queries take in the `sqlite3`
//! shell (median; 3.5 to 13 times), and a first sync's apply to 1.3 times SQLite's own floor for its rows.
//! Here the rows are read and written where SQLite produces and takes them, one prepared statement per row
//! shape: the snapshot within 1.01 times the shell's, the apply within 1.07 times the floor.
//!
//! The semantics are those of the shared SQL in `sql/sync.rs` (PostgreSQL's), which the store's contract
//! tests check on both backends: one transaction, applied only if the user database is still at the
//! snapshot's version and the run is still running and not asked to cancel; deleted users' folders decided
//! by their message count at the apply, and the report corrected for it; the audit line, the approval, the
//! run's outcome, report and read state in the same transaction. Where SQLite allows it more simply, the
//! statements differ: rows are written one prepared statement at a time rather than 1000 to a statement
//! (there is no round trip to save), and the folders are decided user by user (nothing else can write
//! while the apply holds SQLite's write lock, so no message can be filed between two of its statements).

use super::{
    APPLY_CACHE_SIZE, BUSY_TIMEOUT, CURRENT_USERS, LINES_PER_CHUNK, SqliteStore,
    TOUCHED_KEYS_LIMIT, encode_lines, link_from, parse_auth, parse_email, parse_name,
};
use crate::{Actor, AppliedPlan, Result, RunOutcome, RunRecord, Snapshot, StoreError};
use roster_core::plan::{
    CurrentUser, PlannedChanges, Touched, correct_report_for_folders_decided_at_apply,
};
use roster_core::privileges::DefaultPrivileges;
use roster_core::{EmailAddress, FolderRight, Timestamp};
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, Row, Transaction, TransactionBehavior, params,
};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

/// `Store::snapshot`: every current user with their addresses, in one read transaction with the version.
pub(super) async fn snapshot(store: &SqliteStore) -> Result<Snapshot> {
    let path = store.path.clone();
    on_blocking_thread(move || {
        let mut conn = open(&path, Use::Read)?;
        let tx = conn.transaction()?;
        let snapshot = read_all(&tx)?;
        tx.commit()?;
        Ok(snapshot)
    })
    .await
}

/// `Store::snapshot_touched`: the users a change can touch ([`Touched::touches`]), found by the indexes on
/// the link, the name key, the skeleton and the address key, so that the cost follows the change.
pub(super) async fn snapshot_touched(store: &SqliteStore, touched: &Touched) -> Result<Snapshot> {
    let path = store.path.clone();
    // A larger change loads every user, as the shared SQL does (its read took a while anyway).
    let touched = (touched.len() <= TOUCHED_KEYS_LIMIT).then(|| touched.clone());
    on_blocking_thread(move || {
        let mut conn = open(&path, Use::Read)?;
        let tx = conn.transaction()?;
        let snapshot = match &touched {
            Some(touched) => read_touched(&tx, touched)?,
            None => read_all(&tx)?,
        };
        tx.commit()?;
        Ok(snapshot)
    })
    .await
}

/// `Store::apply_plan` (see the module's comment for what it guarantees).
#[allow(clippy::too_many_arguments)]
pub(super) async fn apply_plan(
    store: &SqliteStore,
    run_id: i64,
    expected_version: i64,
    changes: &PlannedChanges,
    defaults: &DefaultPrivileges,
    record: &mut RunRecord,
    actor: &Actor,
    now: Timestamp,
) -> Result<AppliedPlan> {
    // The plan is borrowed, and a first sync's is tens of MB: copying it for a spawned blocking task would
    // cost time and peak memory. So the apply blocks this task where it is (its run's task has nothing else
    // to do meanwhile: even the heartbeat would wait for the write lock the apply holds), telling a
    // multi-threaded runtime to move its other tasks to another worker first.
    let mut apply = || {
        let mut conn = open(&store.path, Use::Apply)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let applied = apply_in(
            &tx,
            run_id,
            expected_version,
            changes,
            defaults,
            record,
            actor,
            now,
        )?;
        let started = Instant::now();
        tx.commit()?;
        logged("COMMIT", 0, started);
        Ok::<_, StoreError>(applied)
    };
    let applied = match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(apply),
        // A current-thread runtime (tests, tools) can't hand its tasks over: it waits for the apply.
        _ => apply(),
    }?;
    checkpoint_in_background(store);
    Ok(applied)
}

/// Copies what the apply committed from the WAL into the database file, on a blocking thread that nobody
/// waits for but [`Store::close`](crate::Store::close).
///
/// Why not at the commit, as SQLite would (`wal_autocheckpoint`, which the apply's connection turns off):
/// a first sync of 100,000 users commits about 60 MB of pages, and the checkpoint that SQLite runs inside
/// that commit (sync the WAL, copy every page into the file, sync the file) took about as long as writing
/// them, with the run waiting for it. The committed run needs none of it: readers find its pages in the
/// WAL. Here it overlaps with what follows the apply (the CLI prints the report meanwhile). A checkpoint
/// that fails is left to the next one (SQLite's, at any other connection's commit once the WAL is over
/// 1000 pages, or at the last connection's close): nothing is lost, the WAL only stays longer.
fn checkpoint_in_background(store: &SqliteStore) {
    let path = store.path.clone();
    let span = tracing::Span::current();
    let handle = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let started = Instant::now();
        let done = open(&path, Use::Checkpoint).and_then(|conn| {
            // Its row: busy (0 or 1), the WAL's pages, the pages copied.
            conn.query_row(CHECKPOINT, [], |r| r.get::<_, i64>(2))
                .map_err(StoreError::from)
        });
        match done {
            Ok(copied) => logged(CHECKPOINT, usize::try_from(copied).unwrap_or(0), started),
            Err(e) => tracing::warn!(
                error = %e,
                "the checkpoint after the apply failed; SQLite's next one will do it"
            ),
        }
    });
    let mut pending = store
        .pending_checkpoints
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // A server applies a run after run: only the checkpoints still going are kept for `close`.
    pending.retain(|h| !h.is_finished());
    pending.push(handle);
}

const CHECKPOINT: &str = "PRAGMA wal_checkpoint(PASSIVE)";

/// `Store::close`'s part on SQLite: waits for the checkpoints the applies started.
pub(super) async fn finish_checkpoints(store: &SqliteStore) {
    let pending = std::mem::take(
        &mut *store
            .pending_checkpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    for handle in pending {
        if let Err(e) = handle.await {
            tracing::warn!(error = %e, "the checkpoint after the apply stopped");
        }
    }
}

/// Runs `work` on tokio's blocking threads: the snapshot runs while the directory is read, on the same
/// task, so it must not block that task.
async fn on_blocking_thread<T: Send + 'static>(
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(work))
        .await
        .map_err(|e| StoreError::Database(format!("the database work stopped: {e}")))?
}

/// What a connection is opened for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Use {
    Read,
    Apply,
    /// `checkpoint_in_background`'s.
    Checkpoint,
}

/// A connection of its own to the store's file (which `SqliteStore::open` created and migrated), with the
/// pool's settings: the busy timeout, `synchronous = NORMAL` (the file is in WAL mode). The apply's
/// connection also doesn't enforce foreign keys and has a larger page cache (`sqlite.rs`, `APPLY_CACHE_SIZE`
/// and `apply_connection`, say why). Opened per call: it costs well under a millisecond, and its settings
/// can't leak into other work.
fn open(path: &Path, purpose: Use) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    match purpose {
        Use::Read => conn.pragma_update(None, "query_only", true)?,
        Use::Apply => {
            conn.pragma_update(None, "foreign_keys", false)?;
            conn.pragma_update(None, "cache_size", APPLY_CACHE_SIZE)?;
            conn.pragma_update(None, "temp_store", "MEMORY")?;
            // `checkpoint_in_background` does it after the commit, off the run's path.
            conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        }
        Use::Checkpoint => {}
    }
    Ok(conn)
}

/// Logs a statement (or the rows of one prepared statement) at DEBUG as it completes, with its time: what
/// sqlx logs for its statements, under `roster_store::sqlite`, which the benchmark's phase split reads.
fn logged(statement: &str, rows: usize, started: Instant) {
    // The fields are only computed when the event is enabled.
    tracing::debug!(
        summary = ?format!("{} …", statement.split_whitespace().take(4).collect::<Vec<_>>().join(" ")),
        db.statement = statement,
        rows,
        elapsed_secs = started.elapsed().as_secs_f64(),
        "statement"
    );
}

const READ_VERSION: &str = "SELECT value FROM meta WHERE key = 'user_db_version'";
const EMAILS_IN_ORDER: &str = "SELECT user_id, address FROM user_emails ORDER BY user_id, position";

/// Every current user, with the version they are at. In the caller's read transaction.
fn read_all(tx: &Transaction<'_>) -> Result<Snapshot> {
    let version: i64 = tx.query_row(READ_VERSION, [], |r| r.get(0))?;
    // Sized exactly: a vector grown by doubling would hold up to twice the users' memory.
    let count: i64 = tx.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?;
    let mut users: Vec<CurrentUser> = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let started = Instant::now();
    let sql = format!("{CURRENT_USERS} ORDER BY u.id");
    let mut stmt = tx.prepare(&sql)?;
    let columns = UserColumns::of(&stmt)?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        users.push(columns.user(row)?);
    }
    logged(&sql, users.len(), started);
    let started = Instant::now();
    let mut stmt = tx.prepare(EMAILS_IN_ORDER)?;
    let rows = stmt.query([])?;
    let n = attach_emails(rows, &mut users)?;
    logged(EMAILS_IN_ORDER, n, started);
    Ok(Snapshot { version, users })
}

/// The users `touched` can touch: by link, by name key (a name that is its own skeleton has none stored,
/// so the skeletons are looked up among the keys too), by stored skeleton, and by address key. The union
/// of the same conditions as `sql/sync.rs`'s `snapshot_touched`, one indexed lookup per key.
fn read_touched(tx: &Transaction<'_>, touched: &Touched) -> Result<Snapshot> {
    let version: i64 = tx.query_row(READ_VERSION, [], |r| r.get(0))?;
    let started = Instant::now();
    let mut ids: BTreeSet<i64> = BTreeSet::new();
    let mut collect =
        |sql: &str, keys: &mut dyn Iterator<Item = (&str, Option<&str>)>| -> Result<()> {
            let mut stmt = tx.prepare_cached(sql)?;
            for (first, second) in keys {
                let mut rows = match second {
                    Some(second) => stmt.query(params![first, second])?,
                    None => stmt.query(params![first])?,
                };
                while let Some(row) = rows.next()? {
                    ids.insert(row.get(0)?);
                }
            }
            Ok(())
        };
    collect(
        "SELECT id FROM users WHERE dir_source = ?1 AND dir_id = ?2",
        &mut touched
            .link_ids
            .iter()
            .map(|id| (touched.source.as_str(), Some(id.as_str()))),
    )?;
    collect(
        "SELECT id FROM users WHERE name_key = ?1",
        &mut touched
            .name_keys
            .iter()
            .chain(&touched.skeletons)
            .map(|k| (k.as_str(), None)),
    )?;
    collect(
        "SELECT id FROM users WHERE name_skeleton = ?1",
        &mut touched.skeletons.iter().map(|k| (k.as_str(), None)),
    )?;
    collect(
        "SELECT user_id FROM user_emails WHERE address_key = ?1",
        &mut touched.address_keys.iter().map(|k| (k.as_str(), None)),
    )?;
    let mut users: Vec<CurrentUser> = Vec::with_capacity(ids.len());
    let sql = format!("{CURRENT_USERS} WHERE u.id = ?1");
    let mut user_stmt = tx.prepare(&sql)?;
    let columns = UserColumns::of(&user_stmt)?;
    let mut email_stmt =
        tx.prepare("SELECT address FROM user_emails WHERE user_id = ?1 ORDER BY position")?;
    for id in ids {
        let mut rows = user_stmt.query(params![id])?;
        let Some(row) = rows.next()? else { continue };
        let mut user = columns.user(row)?;
        let mut rows = email_stmt.query(params![id])?;
        while let Some(row) = rows.next()? {
            user.emails.push(parse_email(text(row, 0)?)?);
        }
        users.push(user);
    }
    logged(&sql, users.len(), started);
    Ok(Snapshot { version, users })
}

/// Where each column of [`CURRENT_USERS`] is, found by name once per statement.
struct UserColumns {
    id: usize,
    name: usize,
    full_name: usize,
    auth: usize,
    builtin_admin: usize,
    dir_source: usize,
    dir_id: usize,
    dir_dn: usize,
    departed_at: usize,
    messages: usize,
}

impl UserColumns {
    fn of(stmt: &rusqlite::Statement<'_>) -> Result<UserColumns> {
        Ok(UserColumns {
            id: stmt.column_index("id")?,
            name: stmt.column_index("name")?,
            full_name: stmt.column_index("full_name")?,
            auth: stmt.column_index("auth")?,
            builtin_admin: stmt.column_index("builtin_admin")?,
            dir_source: stmt.column_index("dir_source")?,
            dir_id: stmt.column_index("dir_id")?,
            dir_dn: stmt.column_index("dir_dn")?,
            departed_at: stmt.column_index("departed_at")?,
            messages: stmt.column_index("messages")?,
        })
    }

    fn user(&self, row: &Row<'_>) -> Result<CurrentUser> {
        Ok(CurrentUser {
            departed_at: row.get::<_, Option<i64>>(self.departed_at)?.map(Timestamp),
            id: row.get(self.id)?,
            name: parse_name(text(row, self.name)?)?,
            full_name: row.get(self.full_name)?,
            emails: Vec::new(),
            auth: parse_auth(text(row, self.auth)?)?,
            link: link_from(
                row.get(self.dir_source)?,
                row.get(self.dir_id)?,
                row.get(self.dir_dn)?,
            ),
            builtin_admin: row.get(self.builtin_admin)?,
            folder_messages: row.get(self.messages)?,
        })
    }
}

/// A text column, borrowed from SQLite's row without a copy.
fn text<'r>(row: &'r Row<'_>, column: usize) -> Result<&'r str> {
    Ok(row.get_ref(column)?.as_str()?)
}

/// Gives each of `users` (in id order) its addresses from `rows` (`user_id, address`, in the order of
/// `user_id, position`): both lists are walked side by side, and each user gets a list of exactly its
/// addresses (not a vector grown by doubling). Returns the number of addresses read.
fn attach_emails(mut rows: rusqlite::Rows<'_>, users: &mut [CurrentUser]) -> Result<usize> {
    let mut owner = users.iter_mut().peekable();
    let mut pending: Vec<EmailAddress> = Vec::new();
    let mut pending_for: Option<i64> = None;
    let mut n = 0;
    loop {
        let row = rows.next()?;
        let uid: Option<i64> = row.map(|r| r.get(0)).transpose()?;
        if pending_for.is_some() && uid != pending_for {
            while let Some(u) = owner.next_if(|u| Some(u.id) <= pending_for) {
                if Some(u.id) == pending_for {
                    u.emails = Vec::with_capacity(pending.len());
                    u.emails.append(&mut pending);
                }
            }
            pending.clear();
        }
        let (Some(row), Some(uid)) = (row, uid) else {
            break;
        };
        pending_for = Some(uid);
        pending.push(parse_email(text(row, 1)?)?);
        n += 1;
    }
    Ok(n)
}

/// The apply, in the caller's write transaction (begun immediate: it holds the write lock from the start).
#[allow(clippy::too_many_arguments)]
fn apply_in(
    tx: &Transaction<'_>,
    run_id: i64,
    expected_version: i64,
    changes: &PlannedChanges,
    defaults: &DefaultPrivileges,
    record: &mut RunRecord,
    actor: &Actor,
    now: Timestamp,
) -> Result<AppliedPlan> {
    // The report's lines are encoded and compressed (a tenth of the apply's time at 100,000 new users) on
    // another thread while this one writes the users; the store has one writer, and after the read the
    // machine has a core to spare. Only if the apply decided a folder otherwise than planned does the
    // report change, and get encoded again.
    let (written, encoded) = std::thread::scope(|scope| {
        let encoding = scope.spawn(|| encode_chunks(&record.lines));
        let written = write_changes(
            tx,
            run_id,
            expected_version,
            changes,
            defaults,
            record.approves,
            actor,
            now,
        );
        let encoded = encoding
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (written, encoded)
    });
    let applied = written?;
    // The run's outcome and report, in the same transaction: the users applied and the run that says so
    // are committed together or not at all.
    correct_report_for_folders_decided_at_apply(
        &applied.folders_decided_at_apply,
        changes,
        &record.deleted_lines,
        &mut record.counts,
        &mut record.lines,
    );
    let chunks = if applied.folders_decided_at_apply.is_empty() {
        encoded?
    } else {
        encode_chunks(&record.lines)?
    };
    record_outcome(tx, run_id, &record.succeeded(), &chunks, now)?;
    Ok(applied)
}

/// A report's lines as `record_outcome` stores them: (line count, the chunk as `encode_lines` packs it).
fn encode_chunks(lines: &[roster_core::plan::ReportLine]) -> Result<Vec<(i64, Vec<u8>)>> {
    lines
        .chunks(LINES_PER_CHUNK)
        .map(|chunk| {
            let count =
                i64::try_from(chunk.len()).map_err(|e| StoreError::Invalid(e.to_string()))?;
            Ok((count, encode_lines(chunk)?))
        })
        .collect()
}

/// The apply's writes to the users and what belongs to them, its audit line and approval: everything
/// but the run's outcome and report.
#[allow(clippy::too_many_arguments)]
fn write_changes(
    tx: &Transaction<'_>,
    run_id: i64,
    expected_version: i64,
    changes: &PlannedChanges,
    defaults: &DefaultPrivileges,
    approves: Option<i64>,
    actor: &Actor,
    now: Timestamp,
) -> Result<AppliedPlan> {
    let version: i64 = tx.query_row(
        "UPDATE meta SET value = value + 1 WHERE key = 'user_db_version' RETURNING value",
        [],
        |r| r.get(0),
    )?;
    if version != expected_version + 1 {
        return Err(StoreError::StaleSnapshot);
    }
    claim_run(tx, run_id, now)?;
    // Order matters for the unique constraints: free names and addresses before anyone takes them.
    let mut applied = AppliedPlan::default();
    let kept = delete_users(tx, changes.delete.iter().map(|d| d.user_id), now)?;
    for d in &changes.delete {
        let kept = kept.contains(&d.user_id);
        if kept != d.keep_folder {
            applied.folders_decided_at_apply.push((d.user_id, kept));
        }
    }
    // Suspensions (a grace period is set): the users stay, marked departed.
    {
        let mut stmt =
            tx.prepare_cached("UPDATE users SET departed_at = ?1, updated_at = ?1 WHERE id = ?2")?;
        for s in &changes.suspend {
            stmt.execute(params![now.0, s.user_id])?;
        }
    }
    update_users(tx, changes, now)?;
    if !changes.create.is_empty() {
        create_users(tx, changes, defaults, now)?;
    }
    let started = Instant::now();
    let updated_emails = crate::sync::addresses_in_key_order(
        changes
            .update
            .iter()
            .filter_map(|u| u.emails.as_ref().map(|e| (u.user_id, e.as_slice()))),
    );
    insert_emails(tx, &updated_emails)?;
    logged(INSERT_EMAIL, updated_emails.len(), started);
    write_audit(
        tx,
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
    )?;
    if let Some(stopped) = approves {
        mark_approved(tx, stopped, run_id, actor, now)?;
    }
    // Fault-injection tests only (issue 27): hold the transaction open, its users written and not yet
    // committed, so that a test can kill the process in the middle of an apply. Unset, nothing waits.
    if let Some(ms) = std::env::var(super::APPLY_DELAY_VARIABLE)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        tracing::warn!(
            ms,
            "{} is set: the apply waits before its commit",
            super::APPLY_DELAY_VARIABLE
        );
        // On the blocking apply's own thread (`apply_plan`), which has nothing else to do.
        #[allow(clippy::disallowed_methods)]
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    Ok(applied)
}

/// A run that another process declared dead must not apply behind its back, nor one that an administrator
/// asked to cancel. The apply holds the write lock until its commit, which records the outcome: a cancel
/// that comes now waits, then finds the run finished (the commit wins).
fn claim_run(tx: &Transaction<'_>, run_id: i64, now: Timestamp) -> Result<()> {
    let claimed = tx.execute(
        "UPDATE sync_runs SET phase = 'applying', heartbeat_at = ?1 WHERE id = ?2 AND status = 'running' \
         AND cancel_requested_at IS NULL",
        params![now.0, run_id],
    )?;
    if claimed > 0 {
        return Ok(());
    }
    let row: Option<(String, Option<String>)> = tx
        .query_row(
            "SELECT status, cancel_requested_by FROM sync_runs WHERE id = ?1",
            params![run_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    Err(match row {
        Some((status, Some(by))) if status == "running" => {
            StoreError::CancelRequested { run_id, by }
        }
        _ => StoreError::RunNotRunning(run_id),
    })
}

/// Deletes these users and every row that refers to them (the apply's connection doesn't enforce foreign
/// keys, so their `ON DELETE` actions are done here), a statement per table for all of them: their ids go
/// into a temporary table first (in memory, `temp_store`). An owned folder without messages goes with its
/// owner, one with messages stays without an owner, decided by its count at the apply: nothing else can
/// write between these statements, since the apply holds SQLite's write lock. Returns the users whose
/// folder was kept.
fn delete_users(
    tx: &Transaction<'_>,
    ids: impl Iterator<Item = i64>,
    now: Timestamp,
) -> Result<BTreeSet<i64>> {
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS departing (id INTEGER PRIMARY KEY); DELETE FROM temp.departing;",
    )?;
    let mut n = 0;
    {
        let mut stmt =
            tx.prepare_cached("INSERT OR IGNORE INTO temp.departing (id) VALUES (?1)")?;
        for id in ids {
            n += stmt.execute(params![id])?;
        }
    }
    if n == 0 {
        return Ok(BTreeSet::new());
    }
    // Anyone's access to a folder that goes, then the folders that go.
    timed_execute(
        tx,
        "DELETE FROM folder_access WHERE folder_id IN (SELECT id FROM folders WHERE message_count = 0 \
         AND owner_user_id IN (SELECT id FROM temp.departing))",
        [],
    )?;
    timed_execute(
        tx,
        "DELETE FROM folders WHERE message_count = 0 AND owner_user_id IN (SELECT id FROM temp.departing)",
        [],
    )?;
    // The owned folders left hold messages: they stay, without an owner.
    let kept: BTreeSet<i64> = tx
        .prepare("SELECT owner_user_id FROM folders WHERE owner_user_id IN (SELECT id FROM temp.departing)")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    if !kept.is_empty() {
        timed_execute(
            tx,
            "UPDATE folders SET owner_user_id = NULL, orphaned_at = ?1 \
             WHERE owner_user_id IN (SELECT id FROM temp.departing)",
            params![now.0],
        )?;
    }
    for table in ["user_emails", "folder_access", "sessions"] {
        timed_execute(
            tx,
            &format!("DELETE FROM {table} WHERE user_id IN (SELECT id FROM temp.departing)"),
            [],
        )?;
    }
    timed_execute(
        tx,
        "DELETE FROM users WHERE id IN (SELECT id FROM temp.departing)",
        [],
    )?;
    Ok(kept)
}

/// Updates: addresses replaced, renames (through a temporary key, so that swaps never collide; the own
/// folder is named after its user), full names, links, reactivations.
fn update_users(tx: &Transaction<'_>, changes: &PlannedChanges, now: Timestamp) -> Result<()> {
    if changes.update.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    {
        let mut stmt = tx.prepare_cached("DELETE FROM user_emails WHERE user_id = ?1")?;
        for u in changes.update.iter().filter(|u| u.emails.is_some()) {
            stmt.execute(params![u.user_id])?;
        }
        let mut stmt = tx.prepare_cached("UPDATE users SET name_key = ?1 WHERE id = ?2")?;
        for u in changes.update.iter().filter(|u| u.name.is_some()) {
            stmt.execute(params![format!("\u{1}renaming:{}", u.user_id), u.user_id])?;
        }
    }
    // One statement for every shape of update: a NULL name or full name leaves the column as it is.
    const UPDATE: &str = "UPDATE users SET updated_at = ?1, dir_source = ?2, dir_id = ?3, dir_dn = ?4, \
         name = COALESCE(?5, name), name_key = COALESCE(?6, name_key), \
         name_skeleton = CASE WHEN ?5 IS NULL THEN name_skeleton ELSE ?7 END, \
         full_name = COALESCE(?8, full_name), departed_at = CASE WHEN ?9 THEN NULL ELSE departed_at END \
         WHERE id = ?10";
    let mut update = tx.prepare_cached(UPDATE)?;
    let mut rename_folder =
        tx.prepare_cached("UPDATE folders SET name = ?1 WHERE owner_user_id = ?2 AND name = ?3")?;
    for u in &changes.update {
        let key = u.name.as_ref().map(|n| n.key());
        let skeleton = key.as_deref().and_then(roster_core::names::stored_skeleton);
        update.execute(params![
            now.0,
            u.link.source,
            u.link.id,
            u.link.dn,
            u.name.as_ref().map(|n| n.as_str()),
            key,
            skeleton,
            u.full_name,
            u.reactivate,
            u.user_id,
        ])?;
        if let Some(name) = &u.name {
            rename_folder.execute(params![name.as_str(), u.user_id, u.old_name.as_str()])?;
        }
    }
    logged(UPDATE, changes.update.len(), started);
    Ok(())
}

const INSERT_USER: &str = "INSERT INTO users (id, name, name_key, name_skeleton, full_name, auth, builtin_admin, \
     dir_source, dir_id, dir_dn, created_at, updated_at, privileges) \
     VALUES (?1, ?2, ?3, ?4, ?5, 'directory', FALSE, ?6, ?7, ?8, ?9, ?9, ?10)";

/// New users, with their default privileges, own folders, access to them and addresses.
fn create_users(
    tx: &Transaction<'_>,
    changes: &PlannedChanges,
    defaults: &DefaultPrivileges,
    now: Timestamp,
) -> Result<()> {
    let n = i64::try_from(changes.create.len()).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let first = alloc_ids(tx, "next_user_id", n)?;
    let after = first + n;
    let keyed = crate::sync::new_users_in_key_order(&changes.create);
    // The address rows (each address keyed, all of them sorted by key) need nothing from the database but
    // the ids: another thread makes them while this one writes the users, their privileges and folders
    // (the store has one writer; after the read, the machine has a core to spare). At 100,000 users that
    // took the addresses' part of the apply from 0.14 s to 0.10 s and cost the users' part 0.01 s.
    std::thread::scope(|scope| {
        let address_rows = scope.spawn(|| {
            crate::sync::addresses_in_key_order(
                (first..)
                    .zip(&keyed)
                    .map(|(id, (_, u))| (id, u.emails.as_slice())),
            )
        });
        let written = insert_new_users(tx, &keyed, first, after, defaults, now);
        let rows = address_rows
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        written?;
        let started = Instant::now();
        insert_emails(tx, &rows)?;
        logged(INSERT_EMAIL, rows.len(), started);
        Ok(())
    })
}

/// The new users' rows, with the ids `first..after` in the order of `keyed`, and the rows derived from
/// them: default privileges, own folders and access to them.
fn insert_new_users(
    tx: &Transaction<'_>,
    keyed: &[(String, &roster_core::plan::NewUser)],
    first: i64,
    after: i64,
    defaults: &DefaultPrivileges,
    now: Timestamp,
) -> Result<()> {
    let started = Instant::now();
    let privileges = super::encode_privileges(&defaults.privileges);
    {
        let mut stmt = tx.prepare_cached(INSERT_USER)?;
        for (id, (key, u)) in (first..).zip(keyed) {
            let skeleton = roster_core::names::stored_skeleton(key);
            stmt.execute(params![
                id,
                u.name.as_str(),
                key,
                skeleton,
                u.full_name,
                u.link.source,
                u.link.id,
                u.link.dn,
                now.0,
                privileges,
            ])?;
        }
    }
    logged(INSERT_USER, keyed.len(), started);
    // The new users hold the ids first..after (the counter was moved past them in this transaction):
    // their own folders and access to them are derived from those rows by the database.
    let folder_first = alloc_ids(tx, "next_folder_id", after - first)?;
    timed_execute(
        tx,
        "INSERT INTO folders (id, name, owner_user_id, message_count, created_at) \
         SELECT id + ?1, name, id, 0, ?2 FROM users WHERE id >= ?3 AND id < ?4",
        params![folder_first - first, now.0, first, after],
    )?;
    let rights = &defaults.own_folder;
    if !rights.is_empty() {
        timed_execute(
            tx,
            "INSERT INTO folder_access (user_id, folder_id, can_read, can_write, can_delete) \
             SELECT id, id + ?1, ?2, ?3, ?4 FROM users WHERE id >= ?5 AND id < ?6",
            params![
                folder_first - first,
                rights.contains(&FolderRight::Read),
                rights.contains(&FolderRight::Write),
                rights.contains(&FolderRight::Delete),
                first,
                after,
            ],
        )?;
    }
    Ok(())
}

fn timed_execute(tx: &Transaction<'_>, sql: &str, params: impl rusqlite::Params) -> Result<usize> {
    let started = Instant::now();
    let n = tx.execute(sql, params)?;
    logged(sql, n, started);
    Ok(n)
}

/// Reserves `n` consecutive ids from a counter in `meta`; returns the first.
fn alloc_ids(tx: &Transaction<'_>, counter: &str, n: i64) -> Result<i64> {
    let next: i64 = tx.query_row(
        "UPDATE meta SET value = value + ?1 WHERE key = ?2 RETURNING value",
        params![n, counter],
        |r| r.get(0),
    )?;
    Ok(next - n)
}

const INSERT_EMAIL: &str =
    "INSERT INTO user_emails (address_key, user_id, address, position) VALUES (?1, ?2, ?3, ?4)";

/// Writes these address rows. An address another user holds is `DuplicateEmail`, as in
/// `sql/users.rs`'s `insert_emails`.
fn insert_emails(tx: &Transaction<'_>, rows: &[crate::sync::AddressRow<'_>]) -> Result<()> {
    let mut stmt = tx.prepare_cached(INSERT_EMAIL)?;
    for row in rows {
        stmt.execute(params![row.key, row.user_id, row.address, row.position])
            .map_err(|err| {
                // The address key is the table's primary key; a failing NOT NULL or CHECK stays what it is.
                match err.sqlite_error().map(|f| f.extended_code) {
                    Some(
                        rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                        | rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE,
                    ) => StoreError::DuplicateEmail {
                        address: "(one of the addresses)".into(),
                        owner: "another user".into(),
                    },
                    _ => StoreError::from(err),
                }
            })?;
    }
    Ok(())
}

fn write_audit(
    tx: &Transaction<'_>,
    actor: &Actor,
    action: &str,
    target: &str,
    details: &str,
    now: Timestamp,
) -> Result<()> {
    tx.execute(
        "INSERT INTO audit_log (at, actor, action, target, details) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![now.0, actor.as_str(), action, target, details],
    )?;
    Ok(())
}

/// Marks a stopped run approved by `run_id`, with its audit line: fails if it isn't a stopped run or was
/// approved already (by another administrator, a moment earlier).
fn mark_approved(
    tx: &Transaction<'_>,
    stopped: i64,
    run_id: i64,
    actor: &Actor,
    now: Timestamp,
) -> Result<()> {
    let marked = tx.execute(
        "UPDATE sync_runs SET approved_in_run = ?1 WHERE id = ?2 AND status = 'stopped' AND approved_in_run IS NULL",
        params![run_id, stopped],
    )?;
    if marked == 0 {
        return Err(StoreError::NotApprovable { run_id: stopped });
    }
    write_audit(
        tx,
        actor,
        "directory.run.approve",
        &format!("run #{stopped}"),
        &format!(
            "the deletions the deletion guard stopped were approved and applied by run #{run_id}"
        ),
        now,
    )
}

/// Writes a run's outcome, its read state and its report lines (`sql/runs.rs`'s `record_outcome`, whose
/// line chunks `run_lines` reads back).
fn record_outcome(
    tx: &Transaction<'_>,
    run_id: i64,
    outcome: &RunOutcome<'_>,
    chunks: &[(i64, Vec<u8>)],
    now: Timestamp,
) -> Result<()> {
    let json = |e: serde_json::Error| StoreError::Invalid(e.to_string());
    let counts = outcome
        .counts
        .map(|c| serde_json::to_string(&c))
        .transpose()
        .map_err(json)?;
    let planned_deletions = outcome
        .planned_deletions
        .map(serde_json::to_string)
        .transpose()
        .map_err(json)?;
    timed_execute(
        tx,
        "UPDATE sync_runs SET status = ?1, finished_at = ?2, heartbeat_at = ?2, entries_read = ?3, counts = ?4, error = ?5, \
         error_code = ?6, phase = ?7, planned_deletions = ?8, read_mode = ?10 WHERE id = ?9",
        params![
            outcome.status.as_str(),
            now.0,
            outcome.entries_read,
            counts,
            outcome.error,
            outcome.error_code,
            outcome.phase.as_str(),
            planned_deletions,
            run_id,
            outcome.read_mode.map(crate::ReadMode::as_str),
        ],
    )?;
    if let Some(state) = outcome.read_state {
        tx.execute(
            "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            params![crate::DIRECTORY_READ_STATE, state, now.0],
        )?;
    }
    const INSERT_CHUNK: &str = "INSERT INTO sync_run_line_chunks (run_id, chunk, line_count, lines, packed) \
         VALUES (?1, ?2, ?3, '', ?4)";
    let started = Instant::now();
    let mut stmt = tx.prepare_cached(INSERT_CHUNK)?;
    for (chunk, (count, packed)) in (0_i64..).zip(chunks) {
        stmt.execute(params![run_id, chunk, count, packed])?;
    }
    let n = chunks.len();
    logged(INSERT_CHUNK, n, started);
    Ok(())
}

impl From<rusqlite::Error> for StoreError {
    /// The same classes as `StoreError::from_sqlx` gives SQLite's codes: busy or locked, corrupt or not a
    /// database, disk full; a value that can't be read as its type is invalid.
    fn from(e: rusqlite::Error) -> StoreError {
        use rusqlite::ErrorCode;
        match &e {
            rusqlite::Error::SqliteFailure(failure, message) => {
                let detail = message.clone().unwrap_or_else(|| failure.to_string());
                match failure.code {
                    ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => StoreError::Locked,
                    ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => StoreError::Corrupt {
                        path: String::from("(the SQLite file)"),
                        detail,
                    },
                    ErrorCode::DiskFull => StoreError::DiskFull(detail),
                    _ => StoreError::Database(detail),
                }
            }
            rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..)
            | rusqlite::Error::Utf8Error(..)
            | rusqlite::Error::InvalidColumnType(..) => StoreError::Invalid(e.to_string()),
            _ => StoreError::Database(e.to_string()),
        }
    }
}

impl From<rusqlite::types::FromSqlError> for StoreError {
    fn from(e: rusqlite::types::FromSqlError) -> StoreError {
        StoreError::Invalid(e.to_string())
    }
}
