-- Roster's user database, SQLite flavour. Keep in step with ../postgres/0001_initial.sql.
CREATE TABLE meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO meta (key, value) VALUES ('user_db_version', 0), ('next_user_id', 1), ('next_folder_id', 1);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL UNIQUE,
    full_name TEXT NOT NULL DEFAULT '',
    auth TEXT NOT NULL CHECK (auth IN ('local', 'directory')),
    password_hash TEXT,
    builtin_admin BOOLEAN NOT NULL DEFAULT FALSE,
    dir_source TEXT,
    dir_id TEXT,
    dir_dn TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_dir_link ON users (dir_source, dir_id) WHERE dir_id IS NOT NULL;

CREATE TABLE user_emails (
    address_key TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    position INTEGER NOT NULL
);
CREATE INDEX user_emails_user ON user_emails (user_id);

CREATE TABLE user_privileges (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    privilege TEXT NOT NULL,
    PRIMARY KEY (user_id, privilege)
);

CREATE TABLE folders (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    owner_user_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    message_count BIGINT NOT NULL DEFAULT 0 CHECK (message_count >= 0),
    created_at BIGINT NOT NULL,
    orphaned_at BIGINT
);
CREATE UNIQUE INDEX folders_owner ON folders (owner_user_id) WHERE owner_user_id IS NOT NULL;

CREATE TABLE folder_access (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    folder_id BIGINT NOT NULL REFERENCES folders (id) ON DELETE CASCADE,
    can_read BOOLEAN NOT NULL,
    can_write BOOLEAN NOT NULL,
    can_delete BOOLEAN NOT NULL,
    PRIMARY KEY (user_id, folder_id)
);
CREATE INDEX folder_access_folder ON folder_access (folder_id);

CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at BIGINT NOT NULL);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    details TEXT NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE sync_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    triggered_by TEXT NOT NULL,
    actor TEXT NOT NULL,
    directory_type TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL,
    finished_at BIGINT,
    entries_read BIGINT NOT NULL DEFAULT 0,
    counts TEXT,
    error TEXT
);
-- Two runs never overlap, even between the server and the CLI: at most one row is 'running'.
CREATE UNIQUE INDEX sync_runs_one_running ON sync_runs (status) WHERE status = 'running';

CREATE TABLE sync_run_lines (
    run_id BIGINT NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    user_name TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    dn TEXT,
    PRIMARY KEY (run_id, seq)
);
