-- The scheduled sync (issue 20). Keep in step with ../postgres/0008_schedule.sql.
-- At most one row: the schedule in force (as written in the settings), when its next run is due, and how
-- many scheduled runs failed in a row (for the backoff). Instances claim a due run by moving next_due
-- forward with a compare-and-swap on it: exactly one of several wins.
CREATE TABLE schedule_state (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    schedule TEXT NOT NULL,
    next_due BIGINT NOT NULL,
    failures BIGINT NOT NULL
);
