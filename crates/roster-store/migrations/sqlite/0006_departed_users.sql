-- The grace period before a departed user is deleted (issue 20). Keep in step with
-- ../postgres/0006_departed_users.sql.
-- departed_at: when a sync found the user's entry gone and suspended them (they can't log on; privileges,
-- folders and the link stay); cleared when the entry comes back.
ALTER TABLE users ADD COLUMN departed_at BIGINT;
