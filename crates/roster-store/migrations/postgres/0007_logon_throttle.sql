-- Logon throttling per account (issue 20). Keep in step with ../sqlite/0007_logon_throttle.sql.
-- One row per name that failed to log on since its last success, whether or not a user has that name (an
-- unknown name is throttled like a known one). name_key is the name as typed, case-folded.
CREATE TABLE logon_throttle (
    name_key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    last_failure_at BIGINT NOT NULL,
    locked_until BIGINT
);
