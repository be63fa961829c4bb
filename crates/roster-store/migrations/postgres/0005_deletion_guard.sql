-- The deletion guard (issue 20). Keep in step with ../sqlite/0005_deletion_guard.sql.
-- planned_deletions: for a run stopped by the deletion guard (status 'stopped'), the ids of the users its
-- plan would have deleted, as a JSON array: an approval applies only a new plan that deletes these users.
-- approved_in_run: the run that applied the approved plan (each stopped run is approved at most once).
ALTER TABLE sync_runs ADD COLUMN planned_deletions TEXT;
ALTER TABLE sync_runs ADD COLUMN approved_in_run BIGINT;
