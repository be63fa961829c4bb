-- Keep in step with ../sqlite/0011_sessions_expiry.sql.
-- Every logon first deletes the expired sessions (sql/sessions.rs, create_session): without an index on their
-- expiry that is a scan of every session at every logon, which grows with a day's logons (issue 27's load
-- benchmark found it).
CREATE INDEX sessions_expires ON sessions (expires_at);
