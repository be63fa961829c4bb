-- Incremental reads (issue 26). Keep in step with ../sqlite/0010_name_skeleton.sql.
-- A run that read only what changed loads only the users the change can touch (roster_core::plan::Touched),
-- among them those whose names look like a changed entry's name: the TR39 skeleton of the name's key, kept
-- only where it differs from the key (most names are their own skeleton: they are found by name_key).
-- Filled at open for the users already here (refold_keys, version 2) and by every write of a name.
ALTER TABLE users ADD COLUMN name_skeleton TEXT;
CREATE INDEX users_name_skeleton ON users (name_skeleton) WHERE name_skeleton IS NOT NULL;
