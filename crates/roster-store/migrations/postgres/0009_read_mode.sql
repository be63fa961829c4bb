-- Incremental reads (issue 26). Keep in step with ../sqlite/0009_read_mode.sql.
-- How a run read the directory: 'full' or 'incremental' (NULL for runs before this, and for runs that failed
-- before their read said).
ALTER TABLE sync_runs ADD COLUMN read_mode TEXT;
