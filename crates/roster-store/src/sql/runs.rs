// Directory runs: beginning one (at most one runs at a time, across processes), its heartbeat, finishing
// it with its report, and reading runs and their report lines a page at a time. Included by `store.rs`.

/// A run's report lines are stored this many to a row of `sync_run_line_chunks`, as one JSON array of
/// `[user, action, reason, dn or null]` arrays (compressed: `encode_lines`): one row per line made a first sync of 100,000 users write
/// 100,000 rows (11 MB). Line n of a run is line n % LINES_PER_CHUNK of chunk n / LINES_PER_CHUNK, so a page
/// reads only the chunks it overlaps. Migration 0002 chunks old runs by the same number: keep them in step.
const LINES_PER_CHUNK: usize = 1000;
/// The same, for arithmetic on line numbers (1000 fits any integer type).
const LINES_PER_CHUNK_I64: i64 = LINES_PER_CHUNK as i64;

/// Chunks per INSERT: few round trips, and no more than a few MB of JSON held at once.
const CHUNKS_PER_INSERT: usize = 50;

/// A report line as stored in a chunk: `[user, action, reason, dn or null]`.
type StoredLine = (String, ReportAction, String, Option<String>);

/// A chunk's lines as stored since migration 0012 (SQLite) / 0013 (PostgreSQL): their JSON array,
/// compressed with LZ4 (block format, the uncompressed size in front), in `packed`; `lines` stays empty.
fn encode_lines(lines: &[ReportLine]) -> Result<Vec<u8>> {
    let stored: Vec<(&str, &str, &str, Option<&str>)> = lines
        .iter()
        .map(|l| (l.user.as_str(), l.action.as_str(), l.reason.as_ref(), l.dn.as_deref()))
        .collect();
    let json = serde_json::to_vec(&stored).map_err(|e| StoreError::Invalid(e.to_string()))?;
    Ok(lz4_flex::compress_prepend_size(&json))
}

/// The most a chunk's lines may take uncompressed: 1000 lines of a few KB each at the very most. A larger
/// size in front of a packed chunk means the row is damaged, and is refused before anything is allocated.
const MAX_CHUNK_JSON: usize = 64 << 20;

/// A chunk's lines from its row: `packed` when it is set, else the JSON in `lines` (chunks written before
/// migration 0012 / 0013).
fn decode_lines(lines: &str, packed: Option<&[u8]>) -> Result<Vec<ReportLine>> {
    let unpacked;
    let json: &[u8] = match packed {
        None => lines.as_bytes(),
        Some(packed) => {
            let damaged = |what: String| StoreError::Invalid(format!("a run's report lines: {what}"));
            let size = packed
                .first_chunk::<4>()
                .map(|b| u32::from_le_bytes(*b) as usize)
                .ok_or_else(|| damaged("the compressed chunk is shorter than its size".into()))?;
            if size > MAX_CHUNK_JSON {
                return Err(damaged(format!("the compressed chunk says it holds {size} bytes")));
            }
            unpacked = lz4_flex::decompress_size_prepended(packed).map_err(|e| damaged(e.to_string()))?;
            &unpacked
        }
    };
    let stored: Vec<StoredLine> = serde_json::from_slice(json)
        .map_err(|e| StoreError::Invalid(format!("a run's report lines: {e}")))?;
    Ok(stored
        .into_iter()
        .map(|(user, action, reason, dn)| ReportLine { user, action, reason: reason.into(), dn })
        .collect())
}

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
        error_code: row.try_get("error_code")?,
        phase: row.try_get::<Option<String>, _>("phase")?.as_deref().and_then(RunPhase::parse),
        cancel_requested_at: row.try_get::<Option<i64>, _>("cancel_requested_at")?.map(Timestamp),
        cancel_requested_by: row.try_get("cancel_requested_by")?,
        approved_in_run: row.try_get("approved_in_run")?,
        read_mode: row.try_get::<Option<String>, _>("read_mode")?.as_deref().and_then(ReadMode::parse),
    })
}

const RUN_COLUMNS: &str = "id, kind, triggered_by, actor, directory_type, status, started_at, finished_at, entries_read, counts, error, \
     error_code, phase, cancel_requested_at, cancel_requested_by, approved_in_run, read_mode";

/// What a run that another process takes for dead is recorded with. A sync's changes are committed with
/// its outcome (`apply_plan`), so a run still marked running has committed nothing.
const ABANDONED: &str = "the process running it stopped before the run finished (its heartbeat stopped); it applied nothing, since a synchronization's changes are committed together with its outcome";

async fn begin_run(store: &ThisStore, run: &NewRun, now: Timestamp, stale_before: Timestamp) -> Result<i64> {
    let mut tx = store.pool.begin().await?;
    sqlx::query::<Db>(
        "UPDATE sync_runs SET status = 'abandoned', finished_at = $1, error = $2 WHERE status = 'running' AND heartbeat_at < $3",
    )
    .bind(now.0)
    .bind(ABANDONED)
    .bind(stale_before.0)
    .execute(&mut *tx)
    .await?;
    let id: Option<i64> = sqlx::query_scalar::<Db, i64>(
        "INSERT INTO sync_runs (kind, triggered_by, actor, directory_type, status, started_at, heartbeat_at, phase) \
         VALUES ($1, $2, $3, $4, 'running', $5, $5, 'reading') ON CONFLICT DO NOTHING RETURNING id",
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

async fn heartbeat_run(
    store: &ThisStore,
    run_id: i64,
    entries_read: i64,
    phase: RunPhase,
    now: Timestamp,
) -> Result<RunControl> {
    let mut tx = store.pool.begin().await?;
    let row = sqlx::query::<Db>(
        "UPDATE sync_runs SET heartbeat_at = $1, entries_read = $2, phase = $3 WHERE id = $4 AND status = 'running' \
         RETURNING cancel_requested_by",
    )
    .bind(now.0)
    .bind(entries_read)
    .bind(phase.as_str())
    .bind(run_id)
    .fetch_optional(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(match row {
        None => RunControl::NotRunning,
        Some(row) => match row.try_get::<Option<String>, _>("cancel_requested_by")? {
            Some(by) => RunControl::CancelRequested { by },
            None => RunControl::Continue,
        },
    })
}

async fn request_cancel(
    store: &ThisStore,
    run_id: i64,
    actor: &Actor,
    now: Timestamp,
    stale_before: Timestamp,
) -> Result<CancelOutcome> {
    let mut tx = store.pool.begin().await?;
    // A run without a live process (its heartbeat is stale) has nobody to stop it: cancelled now. The
    // statements only touch a run that is still running, and lock its row: a sync that is committing holds
    // that lock until its outcome is recorded, so the cancel then finds it finished (the commit wins).
    let stopped = sqlx::query::<Db>(
        "UPDATE sync_runs SET status = 'cancelled', finished_at = $1, cancel_requested_at = $1, cancel_requested_by = $2, \
         error = $3, error_code = 'AP016-run-cancelled' WHERE id = $4 AND status = 'running' AND heartbeat_at < $5",
    )
    .bind(now.0)
    .bind(actor.as_str().to_owned())
    .bind(format!(
        "cancelled by {}; the process running it had already stopped (its heartbeat stopped); nothing was applied",
        actor.as_str()
    ))
    .bind(run_id)
    .bind(stale_before.0)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let outcome = if stopped > 0 {
        CancelOutcome::Cancelled
    } else {
        let requested = sqlx::query::<Db>(
            "UPDATE sync_runs SET cancel_requested_at = COALESCE(cancel_requested_at, $1), \
             cancel_requested_by = COALESCE(cancel_requested_by, $2) WHERE id = $3 AND status = 'running'",
        )
        .bind(now.0)
        .bind(actor.as_str().to_owned())
        .bind(run_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if requested == 0 {
            let status: Option<String> = sqlx::query_scalar::<Db, String>("SELECT status FROM sync_runs WHERE id = $1")
                .bind(run_id)
                .fetch_optional(&mut *tx)
                .await?;
            return Err(match status {
                None => StoreError::NotFound(format!("run #{run_id}")),
                Some(status) => StoreError::RunFinished { run_id, status: RunStatus::parse(&status).as_str() },
            });
        }
        CancelOutcome::Requested
    };
    write_audit(
        &mut tx,
        actor,
        "directory.run.cancel",
        &format!("run #{run_id}"),
        match outcome {
            CancelOutcome::Requested => "cancel requested; the run stops at its next check and applies nothing",
            CancelOutcome::Cancelled => "cancelled; the process running it had already stopped",
        },
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(outcome)
}

async fn finish_run(store: &ThisStore, run_id: i64, outcome: &RunOutcome<'_>, now: Timestamp) -> Result<()> {
    let mut tx = store.pool.begin().await?;
    record_outcome(&mut tx, run_id, outcome, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Writes a run's outcome and its report lines, in the caller's transaction.
async fn record_outcome(conn: &mut Conn, run_id: i64, outcome: &RunOutcome<'_>, now: Timestamp) -> Result<()> {
    let counts = outcome
        .counts
        .map(|c| serde_json::to_string(&c))
        .transpose()
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    let planned_deletions = outcome
        .planned_deletions
        .map(serde_json::to_string)
        .transpose()
        .map_err(|e| StoreError::Invalid(e.to_string()))?;
    sqlx::query::<Db>(
        "UPDATE sync_runs SET status = $1, finished_at = $2, heartbeat_at = $2, entries_read = $3, counts = $4, error = $5, \
         error_code = $6, phase = $7, planned_deletions = $8, read_mode = $10 WHERE id = $9",
    )
    .bind(outcome.status.as_str())
    .bind(now.0)
    .bind(outcome.entries_read)
    .bind(counts)
    .bind(outcome.error.clone())
    .bind(outcome.error_code.clone())
    .bind(outcome.phase.as_str())
    .bind(planned_deletions)
    .bind(run_id)
    .bind(outcome.read_mode.map(ReadMode::as_str))
    .execute(&mut *conn)
    .await?;
    if let Some(state) = outcome.read_state {
        sqlx::query::<Db>(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(crate::runs::DIRECTORY_READ_STATE)
        .bind(state.to_owned())
        .bind(now.0)
        .execute(&mut *conn)
        .await?;
    }
    let chunks: Vec<(i64, &[ReportLine])> = (0_i64..).zip(outcome.lines.chunks(LINES_PER_CHUNK)).collect();
    for batch in chunks.chunks(CHUNKS_PER_INSERT) {
        let rows = batch
            .iter()
            .map(|(n, lines)| {
                let count = i64::try_from(lines.len()).map_err(|e| StoreError::Invalid(e.to_string()))?;
                Ok((*n, count, encode_lines(lines)?))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut q =
            QueryBuilder::<Db>::new("INSERT INTO sync_run_line_chunks (run_id, chunk, line_count, lines, packed) ");
        q.push_values(rows, |mut b, (n, count, packed)| {
            b.push_bind(run_id).push_bind(n).push_bind(count).push_bind("").push_bind(packed);
        });
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

async fn list_runs(store: &ThisStore, offset: i64, limit: i64) -> Result<Page<RunSummary>> {
    let mut conn = store.pool.acquire().await?;
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

async fn get_run(store: &ThisStore, id: i64) -> Result<Option<RunSummary>> {
    let mut conn = store.pool.acquire().await?;
    let row = sqlx::query::<Db>(sqlx::AssertSqlSafe(format!("SELECT {RUN_COLUMNS} FROM sync_runs WHERE id = $1")))
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(run_from_row).transpose()
}

async fn planned_deletions(store: &ThisStore, id: i64) -> Result<Option<Vec<i64>>> {
    let mut conn = store.pool.acquire().await?;
    let raw: Option<Option<String>> =
        sqlx::query_scalar::<Db, Option<String>>("SELECT planned_deletions FROM sync_runs WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    raw.flatten()
        .map(|json| {
            serde_json::from_str::<Vec<i64>>(&json)
                .map_err(|e| StoreError::Invalid(format!("run #{id}'s planned deletions: {e}")))
        })
        .transpose()
}

/// Marks a stopped run approved by `run_id`, with its audit line, in the apply's transaction: fails if it
/// isn't a stopped run or was approved already (by another administrator, a moment earlier).
async fn mark_approved(conn: &mut Conn, stopped: i64, run_id: i64, actor: &Actor, now: Timestamp) -> Result<()> {
    let marked = sqlx::query::<Db>(
        "UPDATE sync_runs SET approved_in_run = $1 WHERE id = $2 AND status = 'stopped' AND approved_in_run IS NULL",
    )
    .bind(run_id)
    .bind(stopped)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if marked == 0 {
        return Err(StoreError::NotApprovable { run_id: stopped });
    }
    write_audit(
        conn,
        actor,
        "directory.run.approve",
        &format!("run #{stopped}"),
        &format!("the deletions the deletion guard stopped were approved and applied by run #{run_id}"),
        now,
    )
    .await
}

async fn run_lines(store: &ThisStore, id: i64, offset: i64, limit: i64) -> Result<Page<ReportLine>> {
    let mut conn = store.pool.acquire().await?;
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
        "SELECT chunk, lines, packed FROM sync_run_line_chunks WHERE run_id = $1 AND chunk >= $2 AND chunk <= $3 \
         ORDER BY chunk",
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
        let lines = decode_lines(&row.try_get::<String, _>("lines")?, row.try_get::<Option<Vec<u8>>, _>("packed")?.as_deref())?;
        // The chunk starts at line chunk * LINES_PER_CHUNK; only the first chunk read starts before `offset`.
        let skip = usize::try_from(offset.saturating_sub(chunk.saturating_mul(LINES_PER_CHUNK_I64))).unwrap_or(0);
        let room = wanted.saturating_sub(items.len());
        items.extend(lines.into_iter().skip(skip).take(room));
    }
    Ok(Page { items, total })
}

// The scheduled sync's state (issue 20): one row at most.

async fn schedule_state(store: &ThisStore) -> Result<Option<ScheduleState>> {
    let mut conn = store.pool.acquire().await?;
    let row: Option<(String, i64, i64)> = sqlx::query_as::<Db, (String, i64, i64)>(
        "SELECT schedule, next_due, failures FROM schedule_state WHERE id = 1",
    )
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|(schedule, next_due, failures)| ScheduleState { schedule, next_due: Timestamp(next_due), failures }))
}

async fn set_schedule_state(store: &ThisStore, state: Option<&ScheduleState>) -> Result<()> {
    let mut tx = store.pool.begin().await?;
    sqlx::query::<Db>("DELETE FROM schedule_state WHERE id = 1").execute(&mut *tx).await?;
    if let Some(s) = state {
        sqlx::query::<Db>("INSERT INTO schedule_state (id, schedule, next_due, failures) VALUES (1, $1, $2, $3)")
            .bind(s.schedule.clone())
            .bind(s.next_due.0)
            .bind(s.failures)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn move_schedule(store: &ThisStore, expected_due: Timestamp, next_due: Timestamp, failures: i64) -> Result<bool> {
    let mut conn = store.pool.acquire().await?;
    let moved = sqlx::query::<Db>("UPDATE schedule_state SET next_due = $1, failures = $2 WHERE id = 1 AND next_due = $3")
        .bind(next_due.0)
        .bind(failures)
        .bind(expected_due.0)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    Ok(moved == 1)
}
