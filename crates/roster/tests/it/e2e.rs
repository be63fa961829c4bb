//! The compiled binary, as an administrator uses it: `roster serve`, restarts, and the CLI on the same data
//! directory while the server runs. Exit codes are part of the contract and are checked here.

use serde_json::{Value, json};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_roster");
pub(crate) const ADMIN_PW: &str = "e2e-admin-password";

/// The binary on a data directory, as the built-in administrator would start it (`ROSTER_ADMIN_PASSWORD`
/// set, no database URL or password in the environment).
pub(crate) fn roster(data: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--data-dir").arg(data);
    c.env("ROSTER_ADMIN_PASSWORD", ADMIN_PW);
    c.env_remove("ROSTER_DATABASE_URL");
    c.env_remove("ROSTER_PASSWORD");
    c.env_remove("ROSTER_NEW_PASSWORD");
    c.stdin(Stdio::null());
    c
}

pub(crate) fn run(c: &mut Command) -> Output {
    c.output().unwrap()
}

pub(crate) fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub(crate) fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub(crate) struct Server {
    child: Child,
    /// `http://127.0.0.1:<port>`
    pub(crate) origin: String,
    /// `<origin>/api/v1`
    pub(crate) base: String,
}

impl Server {
    pub(crate) fn start(data: &Path) -> Server {
        Server::spawn(roster(data), Stdio::null())
    }

    /// `roster serve` on a free port, from `command` (`roster(data)` with more arguments or environment),
    /// its standard error to `stderr`.
    pub(crate) fn spawn(mut command: Command, stderr: Stdio) -> Server {
        let port = roster_testkit::free_port();
        let child = command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        roster_testkit::wait_for_port(port, Duration::from_secs(30)).unwrap();
        Server {
            child,
            origin: format!("http://127.0.0.1:{port}"),
            base: format!("http://127.0.0.1:{port}/api/v1"),
        }
    }

    /// SIGTERM, then wait: the server shuts down gracefully.
    pub(crate) fn stop(mut self) {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: sending a signal to our own child process.
        #[allow(unsafe_code)]
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "roster serve exited with {status}");
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("roster serve did not stop on SIGTERM");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::new()
}

pub(crate) fn logon(base: &str, name: &str, password: &str) -> String {
    let r = http()
        .post(format!("{base}/sessions"))
        .json(&json!({"name": name, "password": password}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json::<Value>().unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[test]
fn the_server_keeps_its_data_across_restarts_and_the_cli_works_beside_it() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path());
    let token = logon(&server.base, "admin", ADMIN_PW);
    let r = http()
        .post(format!("{}/users", server.base))
        .bearer_auth(&token)
        .json(&json!({"name": "rita", "full_name": "Rita Rossi", "emails": ["rita@example.com"], "password": "rita-pw"}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);

    // The CLI on the same data directory while the server runs.
    let o = run(roster(data.path()).args(["users", "list", "--json"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let users: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let rita = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "rita")
        .unwrap();
    for key in [
        "name",
        "full_name",
        "emails",
        "auth",
        "privileges",
        "directory_id",
    ] {
        assert!(
            rita.get(key).is_some(),
            "{key} missing from users list --json"
        );
    }
    assert_eq!(rita["emails"], json!(["rita@example.com"]));
    assert_eq!(rita["auth"], "local");
    let o = run(roster(data.path())
        .args(["users", "add", "sam", "--email", "sam@example.com"])
        .env("ROSTER_NEW_PASSWORD", "sam-pw"));
    assert!(o.status.success(), "{}", stderr(&o));
    // The server sees what the CLI wrote.
    let r = http()
        .get(format!("{}/users/sam", server.base))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);

    server.stop();
    let server = Server::start(data.path());
    // The old token still works (sessions are stored), and the data is there.
    let r = http()
        .get(format!("{}/users/rita", server.base))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap()["full_name"], "Rita Rossi");
    logon(&server.base, "sam", "sam-pw");
    server.stop();
}

#[test]
fn the_first_start_prints_a_generated_admin_password_once() {
    let data = tempfile::tempdir().unwrap();
    let mut c = roster(data.path());
    c.env_remove("ROSTER_ADMIN_PASSWORD");
    let o = run(c.args(["users", "list"]));
    assert!(o.status.success());
    let err = stderr(&o);
    let password = err
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 20 && l.chars().all(char::is_alphanumeric))
        .unwrap_or_else(|| panic!("no generated password in: {err}"))
        .to_owned();
    let mut c = roster(data.path());
    c.env_remove("ROSTER_ADMIN_PASSWORD");
    let o = run(c.args(["logon", "admin"]).env("ROSTER_PASSWORD", &password));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains(&password),
        "the password is shown only once"
    );
}

#[test]
fn exit_codes_are_part_of_the_contract() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let ok = run(roster(d)
        .args(["users", "add", "tom"])
        .env("ROSTER_NEW_PASSWORD", "tom-pw"));
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    // (arguments, environment, exit code, error code)
    type Case<'a> = (Vec<&'a str>, Option<(&'a str, &'a str)>, i32, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["users", "add", "TOM"],
            Some(("ROSTER_NEW_PASSWORD", "x")),
            4,
            "ST001-duplicate-user-name",
        ),
        (vec!["users", "show", "nobody"], None, 3, "AP006-not-found"),
        (
            vec!["users", "add", "bad", "--email", "no-at-sign"],
            Some(("ROSTER_NEW_PASSWORD", "x")),
            2,
            "AP007-invalid",
        ),
        (
            vec![
                "users",
                "set-privileges",
                "tom",
                "--privileges",
                "log_on,fly",
            ],
            None,
            2,
            "AP007-invalid",
        ),
        (
            vec!["users", "remove", "admin"],
            None,
            6,
            "ST004-builtin-admin",
        ),
        (
            vec!["logon", "tom"],
            Some(("ROSTER_PASSWORD", "wrong")),
            6,
            "AP001-logon-failed",
        ),
        (
            vec!["logon", "tom"],
            Some(("ROSTER_PASSWORD", "")),
            2,
            "AP002-empty-password",
        ),
        (vec!["sync", "--preview"], None, 2, "AP010-no-directory"),
        (vec!["users", "frobnicate"], None, 2, ""),
    ];
    for (args, env, code, err_code) in cases {
        let mut c = roster(d);
        c.args(&args);
        if let Some((k, v)) = env {
            c.env(k, v);
        }
        let o = run(&mut c);
        assert_eq!(
            o.status.code(),
            Some(code),
            "roster {args:?}: {}",
            stderr(&o)
        );
        assert!(
            stderr(&o).contains(err_code),
            "roster {args:?}: {}",
            stderr(&o)
        );
    }
    let o = run(roster(d)
        .args(["logon", "tom"])
        .env("ROSTER_PASSWORD", "tom-pw"));
    assert_eq!(o.status.code(), Some(0));
}

/// Regressions from the administrator's review of issue 4: a world-readable database, a closed pipe, a
/// Rust debug format in a message, a negative message count answered as a database error, and a CA file
/// that was only found missing at the first run, which then wasn't recorded.
#[test]
fn review_of_issue_4_output_and_input_errors() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    for name in ["tom", "ann", "joe"] {
        let o = run(roster(d)
            .args(["users", "add", name])
            .env("ROSTER_NEW_PASSWORD", "pw"));
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    // The database holds password hashes: readable by its owner only, whatever the umask.
    {
        use std::os::unix::fs::PermissionsExt;
        for file in ["roster.db", "secret.key"] {
            let mode = std::fs::metadata(d.join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}: {mode:o}");
        }
    }
    // `roster audit | head -1`: the reader is gone before roster writes; no panic, exit 0.
    for args in [&["audit"][..], &["folders", "list"], &["users", "list"]] {
        let mut child = roster(d)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
    }
    let o = run(roster(d).args(["users", "show", "nobody"]));
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("no user named \"nobody\"") && !stderr(&o).contains("UserName("),
        "{}",
        stderr(&o)
    );
    let o = run(roster(d).args(["folders", "set-count", "tom", "--", "-5"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("AP007-invalid"), "{}", stderr(&o));

    // A CA file that doesn't exist is refused when the settings are saved ...
    let ca = roster_testkit::TestCa::generate().unwrap();
    let ca_file = d.join("ca.pem");
    std::fs::copy(ca.ca_cert_path(), &ca_file).unwrap();
    let settings = |ca: &Path| {
        format!(
            "type = \"ldap\"\nserver = \"127.0.0.1\"\nport = 1\nencryption = \"ssl\"\nca_file = {:?}\n\
             bind_dn = \"cn=svc,dc=example,dc=com\"\npassword = \"svc-pw\"\nbase_dn = \"dc=example,dc=com\"\n\
             filter = \"(uid=*)\"\nusername_attribute = \"uid\"\n",
            ca.display().to_string()
        )
    };
    let file = d.join("settings.toml");
    std::fs::write(&file, settings(&d.join("missing.pem"))).unwrap();
    let o = run(roster(d).args(["directory", "set", "--file"]).arg(&file));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("DI001-invalid-settings") && stderr(&o).contains("ca_file"),
        "{}",
        stderr(&o)
    );
    // ... and one that went away after it was saved fails a run that the history shows. (Written
    // relative: it is resolved against the settings file's directory, not the working directory.)
    std::fs::write(&file, settings(Path::new("ca.pem"))).unwrap();
    let o = run(roster(d).args(["directory", "set", "--file"]).arg(&file));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::remove_file(&ca_file).unwrap();
    let o = run(roster(d).args(["sync", "--preview"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("ca_file") && stderr(&o).contains("(run #1)"),
        "{}",
        stderr(&o)
    );
    let o = run(roster(d).args(["runs", "list", "--json"]));
    let runs: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(runs[0]["status"], "failed", "{runs}");
    assert!(
        runs[0]["error"].as_str().unwrap().contains("ca_file"),
        "{runs}"
    );
}

#[test]
fn a_damaged_database_file_is_reported_not_overwritten() {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(
        data.path().join("roster.db"),
        b"garbage garbage garbage garbage",
    )
    .unwrap();
    let o = run(roster(data.path()).args(["users", "list"]));
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("ST008-database-corrupt"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(data.path().join("roster.db")).unwrap(),
        b"garbage garbage garbage garbage"
    );
}

/// The README's tour: the example LDIF directory, Test Settings, then Synchronize now.
#[test]
fn the_readme_tour_works_with_the_example_directory() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let settings = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ldif-directory.toml");
    let o = run(roster(d)
        .args(["directory", "set", "--file"])
        .arg(&settings));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(roster(d).args(["sync", "--preview", "--json"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let preview: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(preview["preview"], true);
    assert_eq!(preview["counts"]["created"], 12);
    assert_eq!(preview["counts"]["skipped"], 1);
    let o = run(roster(d).args(["users", "list", "--json"]));
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&o))
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1,
        "the preview committed nothing"
    );
    let o = run(roster(d).args(["sync", "--json"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(roster(d).args(["users", "show", "lmüller", "--json"]));
    let lena: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(lena["full_name"], "Lena Müller");
    assert_eq!(lena["auth"], "directory");
    assert_eq!(lena["privileges"], json!(["log_on"]));
    let o = run(roster(d).args(["users", "show", "jjohnson", "--json"]));
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&o)).unwrap()["directory"]["dn"],
        "cn=John Smith\\, Jr.,ou=People,dc=example,dc=com"
    );
    // Users from an LDIF file can't log on with a directory password: said clearly.
    let o = run(roster(d)
        .args(["logon", "bbrown"])
        .env("ROSTER_PASSWORD", "anything"));
    assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
    assert!(stderr(&o).contains("LDIF file"), "{}", stderr(&o));
    let o = run(roster(d).args(["runs", "list", "--json"]));
    let runs: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 2);
}

/// `--database-url`: the same binary on PostgreSQL, shared by two "instances" (two CLI processes here).
#[test]
fn the_binary_runs_on_postgresql() {
    let url = roster_testkit::TestPostgres::shared()
        .unwrap()
        .create_database("e2e")
        .unwrap();
    let key = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // base64 of 32 bytes, shared by instances
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let o = run(roster(a.path())
        .args([
            "--database-url",
            &url,
            "users",
            "add",
            "uma",
            "--email",
            "uma@example.com",
        ])
        .env("ROSTER_NEW_PASSWORD", "uma-pw")
        .env("ROSTER_SECRET_KEY", key));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(roster(b.path())
        .args(["users", "list", "--json"])
        .env("ROSTER_DATABASE_URL", &url)
        .env("ROSTER_SECRET_KEY", key));
    assert!(o.status.success(), "{}", stderr(&o));
    let users: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(users.as_array().unwrap().iter().any(|u| u["name"] == "uma"));
    assert!(
        !b.path().join("roster.db").exists(),
        "no SQLite file when PostgreSQL is used"
    );
    let o = run(roster(b.path())
        .args(["logon", "uma"])
        .env("ROSTER_DATABASE_URL", &url)
        .env("ROSTER_PASSWORD", "uma-pw"));
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Regression (issue 19, item 10): log lines written to a file or a pipe carried ANSI colour codes.
#[test]
fn logs_in_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // Debug logging, so that there are lines to look at (sqlx logs each statement at debug).
    let out = run(roster(&data).args(["--log", "debug", "users", "list"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("DEBUG"), "no log lines to check: {err}");
    assert!(!err.contains('\u{1b}'), "colour codes in a pipe: {err:?}");
}

/// Regression (issue 19, item 10): with `$USER` and `$LOGNAME` unset (systemd, containers) the audit log
/// named the CLI's administrator `cli:unknown`. It names the operating system's account of the process.
#[test]
fn the_cli_audit_actor_is_the_os_user_without_user_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let os_user = String::from_utf8(run(Command::new("id").arg("-un")).stdout)
        .unwrap()
        .trim()
        .to_owned();
    assert!(!os_user.is_empty());
    let out = run(roster(&data)
        .env_remove("USER")
        .env_remove("LOGNAME")
        .env("ROSTER_NEW_PASSWORD", "pw-of-kim")
        .args(["users", "add", "kim"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(roster(&data).args(["audit", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let audit: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let create = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "user.create")
        .unwrap_or_else(|| panic!("no user.create line: {audit}"));
    assert_eq!(create["actor"], format!("cli:{os_user}"), "{create}");
    // Filtered: `roster audit --actor --action --target`.
    let out = run(roster(&data).args([
        "audit",
        "--json",
        "--actor",
        &format!("CLI:{os_user}"),
        "--action",
        "user.",
        "--target",
        "KIM",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let filtered: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let actions: Vec<&str> = filtered
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["user.create"], "{filtered}");
    let out = run(roster(&data).args(["audit", "--json", "--target", "nobody"]));
    assert_eq!(stdout(&out).trim(), "[]", "{}", stderr(&out));
}

/// Issue 18, item 9: at `ROSTER_LOG=info` a run says how long each of its phases took.
#[test]
fn info_logging_shows_the_time_of_each_phase_of_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let settings = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ldif-directory.toml");
    let out = run(roster(&data)
        .args(["directory", "set", "--file"])
        .arg(&settings));
    assert!(out.status.success(), "{}", stderr(&out));
    // A sync records its outcome in the apply's transaction; a preview records it on its own.
    let out = run(roster(&data).args(["--log", "info", "sync", "--preview"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let preview = stderr(&out);
    assert!(
        preview
            .lines()
            .any(|l| l.contains(" record{") && l.contains("time.busy")),
        "no timing for record: {preview}"
    );
    let out = run(roster(&data).args(["--log", "info", "sync"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    for phase in ["read", "snapshot", "plan", "apply"] {
        assert!(
            err.lines()
                .any(|l| l.contains(&format!(" {phase}{{")) && l.contains("time.busy")),
            "no timing for {phase}: {err}"
        );
    }
}

/// Issue 19, item 3, with the binary: `roster runs cancel` stops a run of the server (another process),
/// and `--run-deadline-seconds` stops a CLI sync on a directory that never answers, each with its exit
/// code; `roster serve` also runs a sync in the background (202) and shows it running.
#[test]
fn runs_cancel_stops_a_run_of_the_server_and_a_deadline_stops_a_cli_sync() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let settings = d.join("silent.toml");
    std::fs::write(
        &settings,
        format!(
            "type = \"ldap\"\nserver = \"127.0.0.1\"\nport = {}\nencryption = \"none\"\n\
             bind_dn = \"cn=roster,dc=example,dc=com\"\npassword = \"service-secret\"\n\
             base_dn = \"dc=example,dc=com\"\nfilter = \"(objectClass=inetOrgPerson)\"\n\
             username_attribute = \"uid\"\ntimeout_seconds = 3600\n",
            crate::runs::silent_port()
        ),
    )
    .unwrap();
    let o = run(roster(d)
        .args(["directory", "set", "--file"])
        .arg(&settings));
    assert!(o.status.success(), "{}", stderr(&o));

    let server = Server::start(d);
    let token = logon(&server.base, "admin", ADMIN_PW);
    let r = http()
        .post(format!("{}/directory/sync", server.base))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().unwrap()["run_id"].as_i64().unwrap();
    let o = run(roster(d).args(["runs", "show", &id.to_string(), "--json"]));
    let shown: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(shown["run"]["status"], "running", "{shown}");
    // The CLI, another process, cancels it: the server's run sees it at its next heartbeat.
    let o = run(roster(d).args(["runs", "cancel", &id.to_string(), "--json"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let cancelled: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert_eq!(cancelled["error_code"], "AP016-run-cancelled");
    let o = run(roster(d).args(["runs", "cancel", &id.to_string()]));
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("ST014-run-finished"), "{}", stderr(&o));
    let o = run(roster(d).args(["runs", "cancel", "999"]));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    server.stop();

    // A CLI sync past its deadline: exit code 5, AP015, and the slot is free for the next run.
    for _ in 0..2 {
        let started = Instant::now();
        let o = run(roster(d)
            .args(["sync", "--run-deadline-seconds", "2"])
            .env_remove("ROSTER_RUN_DEADLINE_SECONDS"));
        assert_eq!(o.status.code(), Some(5), "{}", stderr(&o));
        assert!(stderr(&o).contains("AP015-run-deadline"), "{}", stderr(&o));
        assert!(started.elapsed() < Duration::from_secs(30));
    }
    let o = run(roster(d).args(["runs", "list", "--json"]));
    let runs: Value = serde_json::from_str(&stdout(&o)).unwrap();
    let statuses: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["failed", "failed", "cancelled"]);
}

/// The README's IceWarp walk-through with the binary: the example settings against the emulator serving
/// the example data, `directory domains|groups` on the CLI and the API, a sync and an IceWarp logon; the
/// pickers of another type answer with DI023 and exit code 2.
#[test]
fn the_readme_icewarp_walk_through_works_with_the_emulator() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let data = roster_testkit::icewarp::Fixture::load(&root.join("examples/icewarp-emulator.toml"))
        .unwrap();
    let emulator = runtime
        .block_on(roster_testkit::icewarp::IcewarpEmulator::start(
            data,
            "127.0.0.1:0",
            None,
        ))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let settings = dir.path().join("icewarp.toml");
    let text = std::fs::read_to_string(root.join("examples/icewarp-directory.toml")).unwrap();
    std::fs::write(
        &settings,
        text.replace("http://127.0.0.1:32000", &emulator.server_setting()),
    )
    .unwrap();
    let o = run(roster(&d)
        .args(["directory", "set", "--file"])
        .arg(&settings));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(roster(&d).args(["directory", "domains"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "example.com\t7 accounts\t\nexample.org\t2 accounts\t\n"
    );
    let o = run(roster(&d).args(["directory", "groups", "--json"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let groups: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        groups,
        json!([
            {"address": "sales@example.com", "name": "Sales"},
            {"address": "everyone@example.com", "name": "Everyone at example.org"}
        ])
    );
    let o = run(roster(&d).args(["sync", "--json"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let report: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["counts"]["created"], 4, "{report:#}");
    let o = run(roster(&d)
        .args(["logon", "jdoe@example.com"])
        .env("ROSTER_PASSWORD", "john-pw"));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(roster(&d)
        .args(["logon", "jdoe@example.com"])
        .env("ROSTER_PASSWORD", "wrong"));
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));

    let server = Server::start(&d);
    let token = logon(&server.base, "admin", ADMIN_PW);
    let r = http()
        .get(format!("{}/directory/domains", server.base))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let domains: Value = r.json().unwrap();
    assert_eq!(domains[0]["name"], "example.com", "{domains:#}");
    assert_eq!(domains[0]["accounts"], 7);
    let r = http()
        .get(format!("{}/directory/groups", server.base))
        .bearer_auth(&token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    server.stop();
    assert_eq!(emulator.controls().open_sessions(), 0);

    // Another type has nothing to pick from.
    let ldif = root.join("examples/ldif-directory.toml");
    let o = run(roster(&d).args(["directory", "set", "--file"]).arg(&ldif));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(roster(&d).args(["directory", "domains"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("DI023-listing-unsupported"),
        "{}",
        stderr(&o)
    );
}

/// Issue 20: the binary takes the logon throttling rules (here: locked after 2 failures for 1 minute),
/// a locked account is refused even with the right password (exit code 6), `users show` says so, and
/// `users unlock` lets the user in at once.
#[test]
fn the_binary_takes_the_throttling_rules_and_users_unlock_clears_a_lock() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let strict = |c: &mut Command| {
        c.env("ROSTER_LOGON_LOCK_AFTER", "2")
            .env("ROSTER_LOGON_LOCK_MINUTES", "1");
    };
    let add = run(roster(d)
        .args(["users", "add", "ida"])
        .env("ROSTER_NEW_PASSWORD", "ida-pw"));
    assert_eq!(add.status.code(), Some(0), "{}", stderr(&add));
    let logon = |password: &str| {
        let mut c = roster(d);
        strict(&mut c);
        run(c.args(["logon", "ida"]).env("ROSTER_PASSWORD", password))
    };
    for _ in 0..2 {
        let o = logon("wrong");
        assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    }
    let locked = logon("ida-pw");
    assert_eq!(locked.status.code(), Some(6), "{}", stderr(&locked));
    assert!(
        stderr(&locked).contains("AP001-logon-failed"),
        "{}",
        stderr(&locked)
    );
    let show = run(roster(d).args(["users", "show", "ida"]));
    assert!(
        stdout(&show).contains("logon locked until")
            && stdout(&show).contains("roster users unlock ida"),
        "{}",
        stdout(&show)
    );
    let unlock = run(roster(d).args(["users", "unlock", "ida"]));
    assert_eq!(unlock.status.code(), Some(0), "{}", stderr(&unlock));
    let ok = logon("ida-pw");
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
}

/// Issue 20: `roster serve` runs the scheduled sync by itself, recorded as started by the schedule
/// (`every 1m`, the shortest schedule: this test waits about a minute, beside the rest of the suite).
#[test]
fn roster_serve_runs_the_scheduled_sync() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ldif-directory.toml");
    let settings = d.join("scheduled.toml");
    let text = std::fs::read_to_string(&example)
        .unwrap()
        .replace("# schedule = \"daily at 02:00\"", "schedule = \"every 1m\"");
    assert!(text.contains("schedule = \"every 1m\""));
    // The example names its LDIF file relative to itself.
    let text = text.replace(
        "file = \"",
        &format!("file = \"{}/", example.parent().unwrap().display()),
    );
    std::fs::write(&settings, text).unwrap();
    let o = run(roster(d)
        .args(["directory", "set", "--file"])
        .arg(&settings));
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(roster(d).args(["directory", "show", "--json"]));
    let view: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(
        view["next_run_at"].is_number() || view["next_run_at"].is_string(),
        "{view}"
    );
    let server = Server::start(d);
    let deadline = Instant::now() + Duration::from_secs(120);
    let scheduled = loop {
        let o = run(roster(d).args(["runs", "list", "--json"]));
        let runs: Value = serde_json::from_str(&stdout(&o)).unwrap();
        if let Some(run) = runs
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["triggered_by"] == "schedule" && r["status"] != "running")
        {
            break run.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no scheduled run within 2 minutes: {runs}"
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    assert_eq!(scheduled["status"], "succeeded", "{scheduled}");
    assert_eq!(scheduled["actor"], "schedule", "{scheduled}");
    let o = run(roster(d).args(["users", "list", "--json"]));
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&o))
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        13,
        "admin and the example's 12 users"
    );
    server.stop();
}
