-- A run's lifecycle (issue 19, items 3 and 7). Keep in step with ../postgres/0004_run_lifecycle.sql.
-- (PostgreSQL has no 0003: SQLite's 0003 changes storage only.)
-- phase: where a running run is (reading, planning, applying, recording), written by its heartbeat, so
-- another process sees it; kept when the run ends, to tell where it stopped.
-- cancel_requested_at/by: an administrator asked to cancel it (`roster runs cancel`, the API), possibly
-- from another process; the heartbeat of the process running it sees this and stops the run.
-- error_code: the stable code of the error that ended it (AP014-run-deadline, ...), for a client that
-- polls a run started through the API.
ALTER TABLE sync_runs ADD COLUMN phase TEXT;
ALTER TABLE sync_runs ADD COLUMN cancel_requested_at BIGINT;
ALTER TABLE sync_runs ADD COLUMN cancel_requested_by TEXT;
ALTER TABLE sync_runs ADD COLUMN error_code TEXT;
