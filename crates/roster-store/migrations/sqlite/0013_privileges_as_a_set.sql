-- A user's privileges as one value of their row (issue 26: "privileges as a set"). Keep in step with
-- ../postgres/0014_privileges_as_a_set.sql.
-- A row per user and privilege made a first sync of 100,000 users write 100,000 more rows and index entries
-- (on PostgreSQL 0.15-0.22 s of a 1.6-2.1 s apply, nearly all of it the primary key's index), for a set of
-- at most seven names that is only ever read and written whole with its user. `privileges` holds them
-- sorted and separated by commas (`archive_email,log_on`), '' for none; the store writes and reads it through
-- `sql/users.rs`'s `encode_privileges` and `decode_privileges`, and the consistency check reads every one.
ALTER TABLE users ADD COLUMN privileges TEXT NOT NULL DEFAULT '';
UPDATE users SET privileges = COALESCE(
    (SELECT group_concat(privilege, ',' ORDER BY privilege) FROM user_privileges p WHERE p.user_id = users.id),
    ''
);
DROP TABLE user_privileges;
