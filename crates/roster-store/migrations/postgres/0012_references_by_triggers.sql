-- PostgreSQL only (storage, not content: the same references hold, checked another way). Issue 26, item 6.
--
-- The references from users' addresses, privileges, own folders and folder access to their users and
-- folders are checked by triggers instead of foreign keys, so that a synchronization's apply can leave
-- them out, as it does on SQLite (sqlite.rs, `apply_connection`). A foreign key runs a query per row (a
-- lookup that also locks the parent row and logs the lock): a first synchronization of 100,000 users
-- inserts about 450,000 such rows, all derived from the users it inserts in the same transaction, and
-- their checks took 1.8 s of a 2.9 s write (measured with and without the keys on the same rows; checks
-- per statement over a transition table still took 0.4 s, half of it to collect the rows). The apply
-- says what it is with `SET LOCAL roster.apply_plan = 'on'` (sql/sync.rs) and deletes the rows that
-- refer to the users and folders it deletes itself (`delete_users_rows`); every other writer is checked
-- row by row as before. The consistency check (`check_invariants`: every test, `roster db check`) looks
-- for rows that refer to nothing, on both backends. Sessions keep their foreign key: the apply doesn't
-- write them.
--
-- What a foreign key also guarantees is that no other transaction deletes the parent between the check
-- and the commit. Instead of a lock on the parent row, the check takes a share lock on the user database
-- version (meta.user_db_version), which every transaction that changes users (and so every one that
-- deletes users or folders) updates first: a writer of these rows waits for a transaction that may
-- delete users to end, and then checks against what it committed; a transaction that deletes users
-- waits for writers of these rows to end, and then deletes what they committed. Roster's own writers
-- update the version before anything else, so the lock is one they already hold.

ALTER TABLE user_emails DROP CONSTRAINT user_emails_user_id_fkey;
ALTER TABLE user_privileges DROP CONSTRAINT user_privileges_user_id_fkey;
ALTER TABLE folders DROP CONSTRAINT folders_owner_user_id_fkey;
ALTER TABLE folder_access DROP CONSTRAINT folder_access_user_id_fkey;
ALTER TABLE folder_access DROP CONSTRAINT folder_access_folder_id_fkey;

-- After a row was written: its column TG_ARGV[0] must hold the id of a row of users (TG_ARGV[1] =
-- 'users') or of folders.
CREATE FUNCTION roster_check_reference() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    target BIGINT := CAST(to_jsonb(NEW) ->> TG_ARGV[0] AS BIGINT);
    found BOOLEAN;
BEGIN
    PERFORM 1 FROM meta WHERE key = 'user_db_version' FOR SHARE;
    IF TG_ARGV[1] = 'users' THEN
        found := EXISTS (SELECT 1 FROM users WHERE id = target);
    ELSE
        found := EXISTS (SELECT 1 FROM folders WHERE id = target);
    END IF;
    IF NOT found THEN
        RAISE EXCEPTION '% of % refers to a row that does not exist: no % has the id %',
            TG_ARGV[0], TG_TABLE_NAME, TG_ARGV[1], target
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;

-- `WHEN` decides before the function is called or the row queued: the apply's rows cost next to nothing.
CREATE TRIGGER user_emails_user_id AFTER INSERT ON user_emails FOR EACH ROW
    WHEN (current_setting('roster.apply_plan', TRUE) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION roster_check_reference('user_id', 'users');
CREATE TRIGGER user_emails_user_id_changed AFTER UPDATE OF user_id ON user_emails FOR EACH ROW
    WHEN (NEW.user_id IS DISTINCT FROM OLD.user_id)
    EXECUTE FUNCTION roster_check_reference('user_id', 'users');
CREATE TRIGGER user_privileges_user_id AFTER INSERT ON user_privileges FOR EACH ROW
    WHEN (current_setting('roster.apply_plan', TRUE) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION roster_check_reference('user_id', 'users');
CREATE TRIGGER user_privileges_user_id_changed AFTER UPDATE OF user_id ON user_privileges FOR EACH ROW
    WHEN (NEW.user_id IS DISTINCT FROM OLD.user_id)
    EXECUTE FUNCTION roster_check_reference('user_id', 'users');
CREATE TRIGGER folders_owner_user_id AFTER INSERT ON folders FOR EACH ROW
    WHEN (NEW.owner_user_id IS NOT NULL AND current_setting('roster.apply_plan', TRUE) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION roster_check_reference('owner_user_id', 'users');
CREATE TRIGGER folders_owner_user_id_changed AFTER UPDATE OF owner_user_id ON folders FOR EACH ROW
    WHEN (NEW.owner_user_id IS NOT NULL AND NEW.owner_user_id IS DISTINCT FROM OLD.owner_user_id)
    EXECUTE FUNCTION roster_check_reference('owner_user_id', 'users');
CREATE TRIGGER folder_access_user_id AFTER INSERT ON folder_access FOR EACH ROW
    WHEN (current_setting('roster.apply_plan', TRUE) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION roster_check_reference('user_id', 'users');
CREATE TRIGGER folder_access_user_id_changed AFTER UPDATE OF user_id ON folder_access FOR EACH ROW
    WHEN (NEW.user_id IS DISTINCT FROM OLD.user_id)
    EXECUTE FUNCTION roster_check_reference('user_id', 'users');
CREATE TRIGGER folder_access_folder_id AFTER INSERT ON folder_access FOR EACH ROW
    WHEN (current_setting('roster.apply_plan', TRUE) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION roster_check_reference('folder_id', 'folders');
CREATE TRIGGER folder_access_folder_id_changed AFTER UPDATE OF folder_id ON folder_access FOR EACH ROW
    WHEN (NEW.folder_id IS DISTINCT FROM OLD.folder_id)
    EXECUTE FUNCTION roster_check_reference('folder_id', 'folders');

-- A referenced id never changes (a foreign key would refuse the change of a referenced one).
CREATE FUNCTION roster_refuse_id_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the id of a row of % can''t change (% to %)', TG_TABLE_NAME, OLD.id, NEW.id
        USING ERRCODE = 'foreign_key_violation';
END
$$;
CREATE TRIGGER users_id_unchanged BEFORE UPDATE OF id ON users FOR EACH ROW
    WHEN (NEW.id IS DISTINCT FROM OLD.id) EXECUTE FUNCTION roster_refuse_id_change();
CREATE TRIGGER folders_id_unchanged BEFORE UPDATE OF id ON folders FOR EACH ROW
    WHEN (NEW.id IS DISTINCT FROM OLD.id) EXECUTE FUNCTION roster_refuse_id_change();

-- What the foreign keys did when a user or folder was deleted, for every writer but the apply (which
-- deletes the rows itself, a statement per table for many users at once).
CREATE FUNCTION roster_user_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM user_emails WHERE user_id = OLD.id;
    DELETE FROM user_privileges WHERE user_id = OLD.id;
    DELETE FROM folder_access WHERE user_id = OLD.id;
    UPDATE folders SET owner_user_id = NULL WHERE owner_user_id = OLD.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER users_deleted AFTER DELETE ON users FOR EACH ROW
    WHEN (current_setting('roster.apply_plan', TRUE) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION roster_user_deleted();

CREATE FUNCTION roster_folder_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM folder_access WHERE folder_id = OLD.id;
    RETURN NULL;
END
$$;
CREATE TRIGGER folders_deleted AFTER DELETE ON folders FOR EACH ROW
    WHEN (current_setting('roster.apply_plan', TRUE) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION roster_folder_deleted();
