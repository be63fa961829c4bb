//! Fault injection (issue 27), through the binary: a sync killed in the middle of its apply leaves the
//! database entirely as it was before and `roster db check` passes; a disk that fills during a sync fails
//! the run cleanly, changes nothing, and logons still work.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::e2e::{roster, run, stderr, stdout};

/// An LDIF file of `count` people and settings that read it.
fn ldif_directory(dir: &Path, count: usize) -> std::path::PathBuf {
    let mut ldif = String::with_capacity(count * 200);
    for i in 0..count {
        ldif.push_str(&format!(
            "dn: uid=u{i},ou=People,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: u{i}\ncn: User {i}\nsn: {i}\nmail: u{i}@example.com\n\n"
        ));
    }
    std::fs::write(dir.join("people.ldif"), ldif).unwrap();
    let settings = dir.join("settings.toml");
    std::fs::write(
        &settings,
        format!(
            "type = \"ldif\"\nfile = \"{}\"\nbase_dn = \"ou=People,dc=example,dc=com\"\nfilter = \"(objectClass=inetOrgPerson)\"\nusername_attribute = \"uid\"\nemail_attributes = \"mail\"\n",
            dir.join("people.ldif").display()
        ),
    )
    .unwrap();
    settings
}

fn user_count(data: &Path) -> usize {
    let o = run(roster(data).args(["users", "list", "--json", "--limit", "100000"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: Value = serde_json::from_str(&stdout(&o)).unwrap();
    v.get("items").unwrap_or(&v).as_array().unwrap().len()
}

fn db_check(data: &Path) {
    let o = run(roster(data).args(["db", "check"]));
    assert!(
        o.status.success(),
        "db check: {}\n{}",
        stdout(&o),
        stderr(&o)
    );
}

#[test]
fn a_sync_killed_in_the_middle_of_its_apply_leaves_everything_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let settings = ldif_directory(dir.path(), 3000);
    let o = run(roster(&data)
        .args(["directory", "set", "--file"])
        .arg(&settings));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(user_count(&data), 1);

    // The apply writes its 3,000 users, then waits inside its transaction; it is killed there.
    let log = dir.path().join("sync.log");
    let mut sync = roster(&data)
        .args(["sync"])
        .env("ROSTER_TEST_APPLY_DELAY_MS", "60000")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // The hook says when the apply's rows are written and it waits before the commit (the run's phase
    // in the database can't say: the heartbeat waits for the apply's write lock).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("the apply waits before its commit")
    {
        assert!(
            Instant::now() < deadline,
            "the sync never reached its commit: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sync.kill().unwrap();
    sync.wait().unwrap();

    // Entirely before: only the built-in administrator, and the database's invariants hold.
    db_check(&data);
    assert_eq!(
        user_count(&data),
        1,
        "nothing of the killed apply was committed"
    );
    // The next process works on the same data: logons, and the users it can list.
    let o = run(roster(&data)
        .args(["logon", "admin"])
        .env("ROSTER_PASSWORD", crate::e2e::ADMIN_PW));
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Mounts a tmpfs of `size` at `at` for the test's lifetime (root only: CI runs as root).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "mounting a tmpfs needs root (CI runs as root): {}",
            String::from_utf8_lossy(&o.stderr)
        );
        Tmpfs(at.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_disk_that_fills_during_a_sync_fails_it_cleanly_and_logons_still_work() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let _disk = Tmpfs::mount(&data, "3m");
    let settings = ldif_directory(dir.path(), 20_000);
    let o = run(roster(&data)
        .args(["directory", "set", "--file"])
        .arg(&settings));
    assert!(o.status.success(), "{}", stderr(&o));

    let o = run(roster(&data).args(["sync"]));
    assert!(
        !o.status.success(),
        "a sync of 20,000 users can't fit in 3 MiB"
    );
    let err = stderr(&o);
    assert!(
        err.contains("ST026-disk-full") && err.contains("free space"),
        "the error says the disk is full and what to do: {err}"
    );
    assert_eq!(o.status.code(), Some(5), "{err}");
    eprintln!("disk full: {err}");
    assert_eq!(user_count(&data), 1, "nothing was applied");
    db_check(&data);
    let o = run(roster(&data)
        .args(["logon", "admin"])
        .env("ROSTER_PASSWORD", crate::e2e::ADMIN_PW));
    assert!(o.status.success(), "logons still work: {}", stderr(&o));
}

/// PostgreSQL restarted under a running server: while it is down, requests fail with a clear answer
/// (no hang, no crash); once it is back, the server recovers by itself.
#[test]
fn postgresql_restarted_under_a_running_server_fails_clearly_then_recovers() {
    let pg = roster_testkit::TestPostgres::private().unwrap();
    let url = pg.create_database("faults_restart").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = roster(dir.path());
    cmd.env("ROSTER_DATABASE_URL", &url);
    let server = crate::e2e::Server::spawn(cmd, Stdio::null());
    let logon = || {
        crate::e2e::http()
            .post(format!("{}/sessions", server.base))
            .json(&serde_json::json!({"name": "admin", "password": crate::e2e::ADMIN_PW}))
            .timeout(Duration::from_secs(60))
            .send()
    };
    assert_eq!(logon().unwrap().status(), 201);

    let restart = std::thread::spawn(move || {
        // Longer than the pool's 15 s wait for a connection.
        pg.restart(Duration::from_secs(20)).unwrap();
        pg
    });
    std::thread::sleep(Duration::from_millis(1500));
    let started = Instant::now();
    let down = logon().unwrap();
    let status = down.status();
    let body: Value = down.json().unwrap_or(Value::Null);
    eprintln!(
        "while PostgreSQL is down: {status} {body} after {:?}",
        started.elapsed()
    );
    assert!(status.is_server_error(), "{status} {body}");
    assert!(
        body["error"]["code"].as_str().is_some(),
        "a coded error: {body}"
    );
    let _pg = restart.join().unwrap();

    // Back: the pool reconnects by itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match logon() {
            Ok(r) if r.status() == 201 => break,
            other => {
                assert!(Instant::now() < deadline, "no recovery: {other:?}");
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    }
}
