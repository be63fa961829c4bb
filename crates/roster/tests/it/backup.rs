//! `roster backup`, `roster restore` and `roster db check` through the binary, as an administrator uses
//! them: a backup made while `roster serve` writes is a snapshot of one instant and restores into a data
//! directory whose directory password still works; a restore refuses what it can't restore and never
//! loses the database it replaces; the check names what is wrong, with exit code 1.

use crate::e2e::{ADMIN_PW, Server, http, logon, roster, run, stderr, stdout};
use roster_testkit::{Slapd, SlapdConfig, TestUser, user_ldif};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const SUFFIX: &str = "dc=example,dc=com";
/// base64 of 32 bytes: a key that is not the data directory's.
const OTHER_KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

fn slapd_with_users(n: usize) -> Slapd {
    let mut ldif = String::new();
    for i in 1..=n {
        let uid = format!("user{i:04}");
        let mail = format!("{uid}@example.com");
        let password = format!("pw-{uid}");
        ldif.push_str(&user_ldif(
            SUFFIX,
            &TestUser {
                uid: &uid,
                cn: &format!("User Number {i}"),
                mail: vec![mail.as_str()],
                password: Some(&password),
                ..Default::default()
            },
        ));
    }
    Slapd::start(SlapdConfig {
        base_ldif: Some(ldif),
        ..Default::default()
    })
    .unwrap()
}

/// LDAP settings whose service password Roster seals with the data directory's key.
fn ldap_settings(dir: &Path, slapd: &Slapd) -> PathBuf {
    let file = dir.join("ldap.toml");
    std::fs::write(
        &file,
        format!(
            "type = \"ldap\"\nserver = \"127.0.0.1\"\nport = {}\nencryption = \"none\"\n\
             bind_dn = \"{}\"\npassword = \"{}\"\nbase_dn = \"ou=People,{SUFFIX}\"\n\
             filter = \"(objectClass=inetOrgPerson)\"\nusername_attribute = \"uid\"\n",
            slapd.port(),
            slapd.root_dn(),
            slapd.root_password()
        ),
    )
    .unwrap();
    file
}

fn ok(o: &std::process::Output) -> String {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
    stdout(o)
}

fn fails(o: &std::process::Output, exit: i32, code: &str) -> String {
    assert_eq!(o.status.code(), Some(exit), "{}{}", stdout(o), stderr(o));
    let err = stderr(o);
    assert!(err.contains(code), "expected {code}: {err}");
    err
}

fn user_names(data: &Path) -> Vec<String> {
    let listed: Value =
        serde_json::from_str(&ok(&run(roster(data).args(["users", "list", "--json"])))).unwrap();
    let mut names: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// Runs SQL on a database file the way a bug or a hand would: without enforcing foreign keys.
fn sql(db: &Path, statements: &[&'static str]) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(
            &sqlx::sqlite::SqliteConnectOptions::new()
                .filename(db)
                .create_if_missing(true)
                .foreign_keys(false),
        )
        .await
        .unwrap();
        for statement in statements {
            sqlx::query(*statement).execute(&mut conn).await.unwrap();
        }
        sqlx::Connection::close(conn).await.unwrap();
    });
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Issue 27: backups made while the server creates users one after another (and runs a sync) are each a
/// snapshot of one instant (the users w00000… of a restored copy are exactly the first k, for a k that
/// grows from backup to backup), restore into new data directories that pass `db check`, and carry the key:
/// the restored directory password reads slapd again (a new hire is created and logs on with the
/// directory password). The restored database doesn't hold the key; the check notices a wrong key.
#[test]
fn a_backup_made_while_the_server_writes_restores_into_a_working_data_directory() {
    const LDAP_USERS: usize = 2000;
    let slapd = slapd_with_users(LDAP_USERS);
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let settings = ldap_settings(dir.path(), &slapd);
    ok(&run(roster(&live)
        .args(["directory", "set", "--file"])
        .arg(&settings)));
    let report: Value =
        serde_json::from_str(&ok(&run(roster(&live).args(["sync", "--json"])))).unwrap();
    assert_eq!(report["counts"]["created"], LDAP_USERS, "{report}");

    let server = Server::start(&live);
    let token = logon(&server.base, "admin", ADMIN_PW);
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, written) = (stop.clone(), written.clone());
        let (base, token) = (server.base.clone(), token.clone());
        std::thread::spawn(move || {
            let client = http();
            while !stop.load(Ordering::SeqCst) {
                let n = written.load(Ordering::SeqCst);
                let name = format!("w{n:05}");
                let r = client
                    .post(format!("{base}/users"))
                    .bearer_auth(&token)
                    .json(&json!({"name": name, "auth": "directory", "emails": [format!("{name}@example.org")]}))
                    .send()
                    .unwrap();
                assert_eq!(r.status(), 201, "{}", r.text().unwrap());
                written.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    wait_until("the first users", || written.load(Ordering::SeqCst) >= 20);
    let mut backups = Vec::new();
    let mut written_during_backups = 0;
    for i in 0..3 {
        if i == 1 {
            // A sync of the server's, in its own task, beside the writes and this backup.
            let r = http()
                .post(format!("{}/directory/sync", server.base))
                .bearer_auth(&token)
                .send()
                .unwrap();
            assert_eq!(r.status(), 202);
        }
        let file = dir.path().join(format!("backup-{i}.roster"));
        let before = written.load(Ordering::SeqCst);
        let out = ok(&run(roster(&live).arg("backup").arg(&file)));
        written_during_backups += written.load(Ordering::SeqCst) - before;
        assert!(
            out.contains("with the secret key (from secret.key)"),
            "{out}"
        );
        assert_eq!(mode(&file), 0o600, "the backup holds the key");
        backups.push(file);
        let now = written.load(Ordering::SeqCst);
        wait_until("more users", || written.load(Ordering::SeqCst) >= now + 20);
    }
    // A backup never overwrites a file.
    let before = std::fs::read(&backups[0]).unwrap();
    fails(
        &run(roster(&live).arg("backup").arg(&backups[0])),
        4,
        "ST020-backup-file-exists",
    );
    assert_eq!(std::fs::read(&backups[0]).unwrap(), before);
    assert!(
        written_during_backups > 0,
        "no user was written while a backup ran"
    );
    stop.store(true, Ordering::SeqCst);
    writer.join().unwrap();
    let written = written.load(Ordering::SeqCst);
    server.stop();

    let key = std::fs::read_to_string(live.join("secret.key")).unwrap();
    let mut previous = 0;
    for (i, file) in backups.iter().enumerate() {
        let restored = dir.path().join(format!("restored-{i}"));
        let out = ok(&run(roster(&restored).arg("restore").arg(file)));
        assert!(out.contains("with secret.key"), "{out}");
        let out = ok(&run(roster(&restored).args(["db", "check"])));
        assert!(out.contains("ok: the database is consistent"), "{out}");
        let names = user_names(&restored);
        let w: Vec<&String> = names.iter().filter(|n| n.starts_with('w')).collect();
        let k = w.len();
        let expected: Vec<String> = (0..k).map(|n| format!("w{n:05}")).collect();
        assert_eq!(w, expected.iter().collect::<Vec<_>>(), "backup {i}");
        assert!(
            k >= previous,
            "backup {i} has {k} users, an earlier one {previous}"
        );
        previous = k;
        assert_eq!(
            names.iter().filter(|n| n.starts_with("user")).count(),
            LDAP_USERS
        );
        assert_eq!(
            std::fs::read_to_string(restored.join("secret.key")).unwrap(),
            key
        );
        for file in ["roster.db", "secret.key"] {
            assert_eq!(mode(&restored.join(file)), 0o600, "{file}");
        }
        // The backup's own tables are gone, and their pages zeroed: the key is only in secret.key.
        let db = std::fs::read(restored.join("roster.db")).unwrap();
        assert!(
            !db.windows(key.trim().len())
                .any(|w| w == key.trim().as_bytes()),
            "the restored database holds the key"
        );
        let runs: Value = serde_json::from_str(&ok(&run(
            roster(&restored).args(["runs", "list", "--json"])
        )))
        .unwrap();
        assert!(
            runs.as_array()
                .unwrap()
                .iter()
                .all(|r| r["status"] != "running"),
            "{runs}"
        );
    }
    assert!(
        previous > 0 && previous < written,
        "the backups were made while users were written: the last has {previous} of {written}"
    );

    // The restored directory password reads slapd: a new hire is created, and logs on with the directory
    // password (checked with the service account).
    let restored = dir.path().join("restored-2");
    slapd
        .add(&user_ldif(
            SUFFIX,
            &TestUser {
                uid: "newhire",
                cn: "New Hire",
                mail: vec!["newhire@example.com"],
                password: Some("pw-newhire"),
                ..Default::default()
            },
        ))
        .unwrap();
    let report: Value =
        serde_json::from_str(&ok(&run(roster(&restored).args(["sync", "--json"])))).unwrap();
    assert_eq!(report["counts"]["created"], 1, "{report}");
    ok(&run(roster(&restored)
        .args(["logon", "newhire"])
        .env("ROSTER_PASSWORD", "pw-newhire")));

    // With another key, the check says the password can't be decrypted, and so does a restore made while
    // ROSTER_SECRET_KEY names another key.
    let restored = dir.path().join("restored-0");
    std::fs::write(restored.join("secret.key"), OTHER_KEY).unwrap();
    let o = run(roster(&restored).args(["db", "check"]));
    fails(&o, 1, "AP021-database-inconsistent");
    assert!(
        stdout(&o).contains("the stored directory password can't be decrypted"),
        "{}",
        stdout(&o)
    );
    let o = run(roster(&dir.path().join("restored-x"))
        .arg("restore")
        .arg(&backups[0])
        .env("ROSTER_SECRET_KEY", OTHER_KEY));
    ok(&o);
    assert!(
        stderr(&o).contains("ROSTER_SECRET_KEY is set and is not the backup's key"),
        "{}",
        stderr(&o)
    );
}

/// Issue 27: a restore refuses a file that isn't a Roster backup (random bytes, the live database), a
/// backup from a newer schema, and a data directory that a server uses or that holds a database (without
/// --force); each refusal leaves the data directory as it was. With --force, the previous database (with
/// its WAL) and key are kept aside, and nothing in them is lost.
#[test]
fn a_restore_refuses_what_it_cant_restore_and_keeps_what_it_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    ok(&run(roster(&live)
        .args(["users", "add", "before"])
        .env("ROSTER_NEW_PASSWORD", "pw-before")));
    let backup = dir.path().join("live.roster");
    ok(&run(roster(&live).arg("backup").arg(&backup)));
    // Who made which backup is in the audit log.
    let audit: Value =
        serde_json::from_str(&ok(&run(roster(&live).args(["audit", "--json"])))).unwrap();
    let line = &audit[0];
    assert_eq!(line["action"], "database.backup", "{audit}");
    assert_eq!(line["target"], backup.to_str().unwrap(), "{line}");
    assert!(
        line["details"]
            .as_str()
            .unwrap()
            .contains("carries secret.key"),
        "{line}"
    );
    ok(&run(roster(&live)
        .args(["users", "add", "after"])
        .env("ROSTER_NEW_PASSWORD", "pw-after")));
    let target = dir.path().join("target");

    // Not a Roster backup: random bytes, an SQLite file of another program, the live database itself.
    let random = dir.path().join("random.bin");
    let bytes: Vec<u8> = (0..4096_u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&random, bytes).unwrap();
    let err = fails(
        &run(roster(&target).arg("restore").arg(&random)),
        2,
        "ST017-not-a-backup",
    );
    assert!(err.contains("not an SQLite database"), "{err}");
    let foreign = dir.path().join("foreign.db");
    sql(&foreign, &["CREATE TABLE t (x)"]);
    let err = fails(
        &run(roster(&target).arg("restore").arg(&foreign)),
        2,
        "ST017-not-a-backup",
    );
    assert!(err.contains("without Roster's backup tables"), "{err}");
    fails(
        &run(roster(&target).arg("restore").arg(live.join("roster.db"))),
        2,
        "ST017-not-a-backup",
    );
    fails(
        &run(roster(&target)
            .arg("restore")
            .arg(dir.path().join("missing"))),
        3,
        "ST003-not-found",
    );
    // From a newer Roster: a copy whose last migration has a later number than this version knows.
    let newer = dir.path().join("newer.roster");
    std::fs::copy(&backup, &newer).unwrap();
    sql(
        &newer,
        &[
            "UPDATE _sqlx_migrations SET version = version + 1000 WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
        ],
    );
    let err = fails(
        &run(roster(&target).arg("restore").arg(&newer)),
        2,
        "ST019-backup-newer",
    );
    assert!(err.contains("newer version of Roster"), "{err}");
    assert!(
        !target.exists(),
        "a refused restore created the data directory"
    );

    // A data directory a server uses: refused, and the server goes on with its database.
    let server = Server::start(&live);
    let err = fails(
        &run(roster(&live).args(["restore", "--force"]).arg(&backup)),
        4,
        "ST021-data-dir-in-use",
    );
    assert!(err.contains("stop it first"), "{err}");
    let token = logon(&server.base, "admin", ADMIN_PW);
    let r = http()
        .get(format!("{}/users/after", server.base))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop();

    // A data directory with a database: only with --force.
    fails(
        &run(roster(&live).arg("restore").arg(&backup)),
        4,
        "ST023-database-exists",
    );
    assert!(user_names(&live).contains(&"after".to_owned()));
    let key = std::fs::read(live.join("secret.key")).unwrap();
    let out = ok(&run(roster(&live)
        .args(["restore", "--force"])
        .arg(&backup)));
    let names = user_names(&live);
    assert!(
        names.contains(&"before".to_owned()) && !names.contains(&"after".to_owned()),
        "{names:?}"
    );
    ok(&run(roster(&live)
        .args(["logon", "before"])
        .env("ROSTER_PASSWORD", "pw-before")));
    // The replaced files, as they were: a copy of them is a working data directory with "after".
    let aside: Vec<PathBuf> = std::fs::read_dir(&live)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("before-restore-")
        })
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert!(out.contains(aside[0].to_str().unwrap()), "{out}");
    assert_eq!(std::fs::read(aside[0].join("secret.key")).unwrap(), key);
    let again = dir.path().join("again");
    std::fs::create_dir(&again).unwrap();
    for entry in std::fs::read_dir(&aside[0]).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), again.join(entry.file_name())).unwrap();
    }
    assert!(user_names(&again).contains(&"after".to_owned()));
    ok(&run(roster(&again).args(["db", "check"])));
}

/// Issue 27: a sync that was running when the backup was made is recorded as abandoned by the restore
/// (nothing runs it there), so it doesn't hold off the restored directory's runs for two minutes.
#[test]
fn a_run_in_progress_at_the_backup_is_abandoned_in_the_restored_copy() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let settings = dir.path().join("silent.toml");
    std::fs::write(
        &settings,
        format!(
            "type = \"ldap\"\nserver = \"127.0.0.1\"\nport = {}\nencryption = \"none\"\n\
             bind_dn = \"cn=roster,{SUFFIX}\"\npassword = \"service-secret\"\n\
             base_dn = \"{SUFFIX}\"\nfilter = \"(objectClass=inetOrgPerson)\"\n\
             username_attribute = \"uid\"\ntimeout_seconds = 3600\n",
            crate::runs::silent_port()
        ),
    )
    .unwrap();
    ok(&run(roster(&live)
        .args(["directory", "set", "--file"])
        .arg(&settings)));
    let server = Server::start(&live);
    let token = logon(&server.base, "admin", ADMIN_PW);
    let r = http()
        .post(format!("{}/directory/sync", server.base))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().unwrap()["run_id"].as_i64().unwrap();
    let backup = dir.path().join("during-a-run.roster");
    ok(&run(roster(&live).arg("backup").arg(&backup)));
    // The live database's check notes the running run; it isn't a problem.
    let out = ok(&run(roster(&live).args(["db", "check"])));
    assert!(out.contains(&format!("note: run #{id}")), "{out}");
    server.stop();

    let restored = dir.path().join("restored");
    ok(&run(roster(&restored).arg("restore").arg(&backup)));
    let shown: Value = serde_json::from_str(&ok(&run(roster(&restored).args([
        "runs",
        "show",
        &id.to_string(),
        "--json",
    ]))))
    .unwrap();
    assert_eq!(shown["run"]["status"], "abandoned", "{shown}");
    assert!(
        shown["run"]["error"].as_str().unwrap().contains("backup"),
        "{shown}"
    );
    // The next run starts at once (and stops at its deadline: the directory never answers).
    let o = run(roster(&restored)
        .args(["sync", "--preview", "--run-deadline-seconds", "2"])
        .env_remove("ROSTER_RUN_DEADLINE_SECONDS"));
    fails(&o, 5, "AP015-run-deadline");
}

/// Issue 27: `roster db check` passes on a sound database and names each problem of a broken one (rows
/// that refer to nothing, a user without an archive folder, the access rows of a deleted folder) with exit
/// code 1; a file that isn't a database
/// is exit code 1 too, and a data directory without a database exit code 3.
#[test]
fn db_check_names_what_is_wrong_with_a_broken_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&run(roster(&data)
        .args(["users", "add", "tom"])
        .env("ROSTER_NEW_PASSWORD", "pw-tom")));
    let out = ok(&run(roster(&data).args(["db", "check"])));
    assert!(
        out.contains("ok: the database is consistent (sqlite, 2 users)"),
        "{out}"
    );

    sql(
        &data.join("roster.db"),
        &[
            "INSERT INTO user_emails (address_key, user_id, address, position) VALUES ('x@example.com', 4242, 'x@example.com', 0)",
            "DELETE FROM folders WHERE name = 'tom'",
        ],
    );
    let o = run(roster(&data).args(["db", "check"]));
    fails(&o, 1, "AP021-database-inconsistent");
    let out = stdout(&o);
    assert!(
        out.contains("problem: user_emails rows whose user_id refers to no users row: 4242"),
        "{out}"
    );
    // The folder's access rows are left referring to it.
    for problem in [
        "problem: users without an own archive folder: tom",
        "problem: folder_access rows whose folder_id refers to no folders row: 2",
    ] {
        assert!(out.contains(problem), "{out}");
    }
    let o = run(roster(&data).args(["db", "check", "--json"]));
    fails(&o, 1, "AP021-database-inconsistent");
    let check: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(check["ok"], false);
    assert_eq!(check["problems"].as_array().unwrap().len(), 3, "{check}");

    // Not a database at all; no database.
    let garbage = dir.path().join("garbage");
    std::fs::create_dir(&garbage).unwrap();
    std::fs::write(
        garbage.join("roster.db"),
        b"garbage garbage garbage garbage",
    )
    .unwrap();
    fails(
        &run(roster(&garbage).args(["db", "check"])),
        1,
        "ST008-database-corrupt",
    );
    let nothing = dir.path().join("nothing");
    fails(
        &run(roster(&nothing).args(["db", "check"])),
        3,
        "AP006-not-found",
    );
    assert!(!nothing.exists(), "the check created a data directory");
}

/// Issue 27: on PostgreSQL, `db check` works; backup and restore say to use pg_dump and pg_restore
/// (without connecting: the advice doesn't depend on the server being up), and the README's commands do
/// restore a working database, given the same ROSTER_SECRET_KEY (with another, the check says the
/// directory password can't be decrypted).
#[test]
fn on_postgresql_db_check_works_and_pg_dump_and_pg_restore_as_documented() {
    const KEY: &str = "c2VjcmV0LWtleS1vZi10aGUtcG9zdGdyZXMtdGVzdCE="; // base64 of 32 bytes
    let postgres = roster_testkit::TestPostgres::shared().unwrap();
    let url = postgres.create_database("backup").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pg = |url: &str| {
        let mut c = roster(&data);
        c.env("ROSTER_DATABASE_URL", url)
            .env("ROSTER_SECRET_KEY", KEY);
        c
    };
    ok(&run(pg(&url)
        .args(["users", "add", "pia"])
        .env("ROSTER_NEW_PASSWORD", "pw-pia")));
    // Settings with a service password, sealed with the key.
    let settings = dir.path().join("ldap.toml");
    std::fs::write(
        &settings,
        format!(
            "type = \"ldap\"\nserver = \"127.0.0.1\"\nport = 1\nencryption = \"none\"\n\
             bind_dn = \"cn=roster,{SUFFIX}\"\npassword = \"service-secret\"\nbase_dn = \"{SUFFIX}\"\n\
             filter = \"(objectClass=inetOrgPerson)\"\nusername_attribute = \"uid\"\n"
        ),
    )
    .unwrap();
    ok(&run(pg(&url)
        .args(["directory", "set", "--file"])
        .arg(&settings)));
    let out = ok(&run(pg(&url).args(["db", "check"])));
    assert!(
        out.contains("ok: the database is consistent (postgres, 2 users)"),
        "{out}"
    );

    let unreachable = "postgres://nobody@127.0.0.1:1/roster";
    for args in [["backup", "x.roster"], ["restore", "x.roster"]] {
        let err = fails(
            &run(pg(unreachable).args(args)),
            2,
            "ST024-backup-unsupported",
        );
        assert!(
            err.contains("pg_dump") && err.contains("pg_restore"),
            "{err}"
        );
    }

    // The README's commands.
    let dump = dir.path().join("roster.pgdump");
    let o = run(std::process::Command::new("pg_dump")
        .args(["--format=custom", "--file"])
        .arg(&dump)
        .arg(&url));
    assert!(o.status.success(), "{}", stderr(&o));
    let restored = postgres.create_database("restored").unwrap();
    let o = run(std::process::Command::new("pg_restore")
        .args(["--no-owner", "--dbname", &restored])
        .arg(&dump));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = ok(&run(pg(&restored).args(["db", "check"])));
    assert!(
        out.contains("ok: the database is consistent (postgres, 2 users)"),
        "{out}"
    );
    ok(&run(pg(&restored)
        .args(["logon", "pia"])
        .env("ROSTER_PASSWORD", "pw-pia")));
    let o = run(pg(&restored)
        .args(["db", "check"])
        .env("ROSTER_SECRET_KEY", OTHER_KEY));
    fails(&o, 1, "AP021-database-inconsistent");
    assert!(
        stdout(&o).contains("the stored directory password can't be decrypted"),
        "{}",
        stdout(&o)
    );
}
