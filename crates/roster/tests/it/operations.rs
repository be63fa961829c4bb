//! Operations (issue 27), through the binary: `GET /healthz`, `GET /readyz` and `GET /metrics` of
//! `roster serve`, and `--log-format json` logs that carry no password, token or secret.

use crate::e2e::{ADMIN_PW, Server, http, logon, roster, run, stderr, stdout};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

/// The example LDIF directory's settings (12 users and one entry skipped).
fn example_ldif_settings() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ldif-directory.toml")
}

/// `POST <base>/directory/sync` and wait for the run to end; its `GET /directory/runs/{id}`.
fn sync_through_the_api(base: &str, token: &str) -> Value {
    let r = http()
        .post(format!("{base}/directory/sync"))
        .bearer_auth(token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 202);
    let id = r.json::<Value>().unwrap()["run_id"].as_i64().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v: Value = http()
            .get(format!("{base}/directory/runs/{id}"))
            .bearer_auth(token)
            .send()
            .unwrap()
            .json()
            .unwrap();
        if v["run"]["status"] != "running" {
            return v;
        }
        assert!(Instant::now() < deadline, "run #{id} still running: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn post_logon(base: &str, name: &str, password: &str) -> reqwest::blocking::Response {
    http()
        .post(format!("{base}/sessions"))
        .json(&json!({"name": name, "password": password}))
        .send()
        .unwrap()
}

/// The samples of `/metrics` by series (`name{labels}`), and the whole text.
fn metrics(origin: &str) -> (std::collections::HashMap<String, f64>, String) {
    let r = http().get(format!("{origin}/metrics")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()[reqwest::header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().unwrap();
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_owned(), value.parse::<f64>().unwrap())
        })
        .collect();
    (samples, text)
}

fn sample(samples: &std::collections::HashMap<String, f64>, series: &str, text: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no series {series} in:\n{text}"))
}

/// `/healthz` answers, `/readyz` shows the last run (of any process on the database) and `/metrics` counts
/// logons by method and outcome, runs, entries, users per action, the per-address logon limit and HTTP
/// requests by route template, never by path.
#[test]
fn health_readiness_and_metrics_of_roster_serve() {
    let data = tempfile::tempdir().unwrap();
    let d = data.path();
    let o = run(roster(d)
        .args(["directory", "set", "--file"])
        .arg(example_ldif_settings()));
    assert!(o.status.success(), "{}", stderr(&o));
    // Four logon attempts from one address, then 429.
    let mut command = roster(d);
    command.env("ROSTER_LOGON_LIMIT_BURST", "4");
    command.env("ROSTER_LOGON_LIMIT_PER_MINUTE", "1");
    let server = Server::spawn(command, Stdio::null());
    let (origin, base) = (server.origin.clone(), server.base.clone());

    let r = http().get(format!("{origin}/healthz")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "ok\n");
    let r = http().get(format!("{origin}/readyz")).send().unwrap();
    assert_eq!(r.status(), 200);
    let ready: Value = r.json().unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["database"], "ok", "{ready}");
    assert_eq!(ready["last_run"], Value::Null, "no run yet: {ready}");

    let token = logon(&base, "admin", ADMIN_PW);
    assert_eq!(post_logon(&base, "admin", "wrong-pw").status(), 401);
    assert_eq!(post_logon(&base, "ghost", "wrong-pw").status(), 401);
    assert_eq!(post_logon(&base, "ghost", "wrong-pw").status(), 401);
    let limited = post_logon(&base, "ghost", "wrong-pw");
    assert_eq!(limited.status(), 429);

    let synced = sync_through_the_api(&base, &token);
    assert_eq!(synced["run"]["status"], "succeeded", "{synced}");
    let r = http()
        .get(format!("{origin}/readyz"))
        .send()
        .unwrap()
        .json::<Value>()
        .unwrap();
    let last = &r["last_run"];
    assert_eq!(last["id"], synced["run"]["id"], "{r}");
    assert_eq!(last["kind"], "sync", "{r}");
    assert_eq!(last["status"], "succeeded", "{r}");
    assert!(last["age_seconds"].as_i64().unwrap() >= 0, "{r}");
    assert!(last["finished_at"].as_str().unwrap().ends_with('Z'), "{r}");
    assert!(last.get("error").is_none(), "no messages to anyone: {r}");

    // A user's page and a path that is no route: counted by template, never by path.
    for name in ["bbrown", "ddavis"] {
        let r = http()
            .get(format!("{base}/users/{name}"))
            .bearer_auth(&token)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(
        http()
            .get(format!("{origin}/no-such-page/bbrown"))
            .send()
            .unwrap()
            .status(),
        404
    );

    // A preview of the CLI, another process: /readyz shows it, this server's metrics don't count it.
    let o = run(roster(d).args(["sync", "--preview"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let r: Value = http()
        .get(format!("{origin}/readyz"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(r["last_run"]["kind"], "preview", "{r}");

    let (m, text) = metrics(&origin);
    for (series, value) in [
        (
            r#"roster_logons_total{method="password_local",outcome="accepted"}"#,
            1.0,
        ),
        (
            r#"roster_logons_total{method="password_local",outcome="rejected"}"#,
            1.0,
        ),
        (
            r#"roster_logons_total{method="password",outcome="rejected"}"#,
            2.0,
        ),
        (r#"roster_logons_throttled_total{limit="address"}"#, 1.0),
        (r#"roster_logons_throttled_total{limit="account"}"#, 0.0),
        (
            r#"roster_runs_total{kind="sync",outcome="succeeded",read_mode="full"}"#,
            1.0,
        ),
        (
            r#"roster_runs_total{kind="preview",outcome="succeeded",read_mode="full"}"#,
            0.0,
        ),
        (
            r#"roster_run_duration_seconds_count{kind="sync",outcome="succeeded",read_mode="full"}"#,
            1.0,
        ),
        (r#"roster_directory_entries_read_total{kind="sync"}"#, 13.0),
        (r#"roster_sync_users_total{action="created"}"#, 12.0),
        (r#"roster_sync_users_total{action="skipped"}"#, 1.0),
        ("roster_deletion_guard_stops_total", 0.0),
        (
            r#"roster_http_requests_total{route="/api/v1/users/{name}",method="GET",status="200"}"#,
            2.0,
        ),
        (
            r#"roster_http_requests_total{route="/api/v1/sessions",method="POST",status="429"}"#,
            1.0,
        ),
        (
            r#"roster_http_requests_total{route="/api/v1/sessions",method="POST",status="401"}"#,
            3.0,
        ),
        (
            r#"roster_http_requests_total{route="/readyz",method="GET",status="200"}"#,
            3.0,
        ),
        (
            r#"roster_http_requests_total{route="unmatched",method="GET",status="404"}"#,
            1.0,
        ),
    ] {
        assert_eq!(sample(&m, series, &text), value, "{series} in:\n{text}");
    }
    for raw in ["bbrown", "ddavis", "ghost", "admin"] {
        assert!(
            !text.contains(raw),
            "a label carries {raw:?}, from a path or a name:\n{text}"
        );
    }
    server.stop();
}

/// `/readyz` answers 503, and says why, when the database goes away under a running server (a
/// PostgreSQL database dropped); `/healthz` still answers: the process is up.
#[test]
fn readyz_answers_503_when_the_database_is_unreachable() {
    let pg = roster_testkit::TestPostgres::shared().unwrap();
    let url = pg.create_database("ready").unwrap();
    let database = url.rsplit('/').next().unwrap().to_owned();
    let data = tempfile::tempdir().unwrap();
    let mut command = roster(data.path());
    command.env("ROSTER_DATABASE_URL", &url);
    let server = Server::spawn(command, Stdio::null());
    let r = http()
        .get(format!("{}/readyz", server.origin))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);

    pg.psql(
        "postgres",
        &format!("DROP DATABASE \"{database}\" WITH (FORCE)"),
    )
    .unwrap();
    let started = Instant::now();
    let r = http()
        .get(format!("{}/readyz", server.origin))
        .send()
        .unwrap();
    assert_eq!(r.status(), 503);
    let v: Value = r.json().unwrap();
    assert_eq!(v["status"], "not_ready", "{v}");
    assert_eq!(v["database"], "unreachable", "{v}");
    let message = v["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("the database can't be reached: "),
        "{v}"
    );
    assert!(
        v["error"]["code"].as_str().unwrap().starts_with("ST"),
        "{v}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "a probe must answer quickly: {:?}",
        started.elapsed()
    );
    let r = http()
        .get(format!("{}/healthz", server.origin))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(server);
}

// ---- Logs -----------------------------------------------------------------------------------------------

const SUFFIX: &str = "dc=example,dc=com";
/// Every secret of the log test: none may appear in any log line.
const SERVICE_PW: &str = "ldap-service-secret-4Tw";
const ALICE_PW: &str = "alice-directory-pw-8Rk";
const RITA_PW: &str = "rita-local-pw-7Hx";
const WRONG_PW: &str = "wrong-guess-pw-2Fp";
const NEW_RITA_PW: &str = "rita-new-local-pw-5Lc";
/// base64 of `ops-test-secret-key-32-bytes-ok!`, the key that seals the service password.
const SECRET_KEY: &str = "b3BzLXRlc3Qtc2VjcmV0LWtleS0zMi1ieXRlcy1vayE=";
const SECRET_KEY_RAW: &str = "ops-test-secret-key-32-bytes-ok!";

/// `--log-format json` (and `ROSTER_LOG_FORMAT=json`) at `ROSTER_LOG=trace` (everything `debug` logs, and
/// more), through local logons (right and wrong), LDAP directory settings with a service password (CLI
/// and API), syncs (CLI and API), directory logons (right and wrong) and a password change: every line
/// of standard error, the server's and each command's, is a JSON object, and none holds a password, the
/// secret key or a session token.
#[test]
fn json_logs_hold_no_password_token_or_secret() {
    let mut config = roster_testkit::SlapdConfig {
        root_password: SERVICE_PW.to_owned(),
        ..Default::default()
    };
    config.base_ldif = Some(roster_testkit::user_ldif(
        SUFFIX,
        &roster_testkit::TestUser {
            uid: "alice",
            cn: "Alice Archer",
            mail: vec!["alice@example.com"],
            password: Some(ALICE_PW),
            ..Default::default()
        },
    ));
    let slapd = roster_testkit::Slapd::start(config).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("data");
    let mut logs: Vec<(String, String)> = Vec::new();
    let json_debug = |c: &mut std::process::Command| {
        c.env("ROSTER_LOG", "trace")
            .env("ROSTER_SECRET_KEY", SECRET_KEY);
    };
    let mut cli = |args: &[&str], env: &[(&str, &str)], flag: bool| -> Output {
        let mut c = roster(&d);
        json_debug(&mut c);
        if flag {
            c.args(["--log-format", "json"]);
        } else {
            c.env("ROSTER_LOG_FORMAT", "json");
        }
        c.args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        let o = run(&mut c);
        logs.push((format!("roster {args:?}"), stderr(&o)));
        o
    };

    let o = cli(
        &[
            "users",
            "add",
            "rita",
            "--privileges",
            "log_on,change_password",
        ],
        &[("ROSTER_NEW_PASSWORD", RITA_PW)],
        true,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let settings = dir.path().join("ldap.toml");
    std::fs::write(
        &settings,
        format!(
            "type = \"ldap\"\nserver = \"127.0.0.1\"\nport = {}\nencryption = \"none\"\n\
             bind_dn = \"{}\"\npassword = \"{SERVICE_PW}\"\nbase_dn = \"ou=People,{SUFFIX}\"\n\
             filter = \"(objectClass=inetOrgPerson)\"\nusername_attribute = \"uid\"\n\
             full_name_attribute = \"cn\"\nemail_attributes = \"mail\"\n",
            slapd.port(),
            slapd.root_dn()
        ),
    )
    .unwrap();
    let settings = settings.to_str().unwrap().to_owned();
    let o = cli(&["directory", "set", "--file", &settings], &[], false);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli(&["sync", "--json"], &[], true);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&o)).unwrap()["counts"]["created"],
        1
    );
    for (name, password, ok) in [
        ("rita", RITA_PW, true),
        ("rita", WRONG_PW, false),
        ("alice", ALICE_PW, true),
        ("alice", WRONG_PW, false),
        ("nobody", WRONG_PW, false),
    ] {
        let o = cli(&["logon", name], &[("ROSTER_PASSWORD", password)], false);
        assert_eq!(o.status.success(), ok, "{name}: {}", stderr(&o));
    }

    // The server, with the same logs.
    let server_log = dir.path().join("server.log");
    let mut command = roster(&d);
    json_debug(&mut command);
    command.args(["--log-format", "json"]);
    let server = Server::spawn(
        command,
        Stdio::from(std::fs::File::create(&server_log).unwrap()),
    );
    let base = server.base.clone();
    let admin = logon(&base, "admin", ADMIN_PW);
    assert_eq!(post_logon(&base, "admin", WRONG_PW).status(), 401);
    let rita = logon(&base, "rita", RITA_PW);
    let r = http()
        .put(format!("{base}/me/password"))
        .bearer_auth(&rita)
        .json(&json!({"current_password": RITA_PW, "new_password": NEW_RITA_PW}))
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text());
    let r = http()
        .put(format!("{base}/directory"))
        .bearer_auth(&admin)
        .json(&json!({
            "type": "ldap", "server": "127.0.0.1", "port": slapd.port(), "encryption": "none",
            "bind_dn": slapd.root_dn(), "password": SERVICE_PW, "base_dn": format!("ou=People,{SUFFIX}"),
            "filter": "(objectClass=inetOrgPerson)", "username_attribute": "uid",
            "full_name_attribute": "cn", "email_attributes": "mail"
        }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text());
    let synced = sync_through_the_api(&base, &admin);
    assert_eq!(synced["run"]["status"], "succeeded", "{synced}");
    let alice = logon(&base, "alice", ALICE_PW);
    assert_eq!(post_logon(&base, "alice", WRONG_PW).status(), 401);
    let r = http()
        .get(format!("{base}/me"))
        .bearer_auth(&alice)
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    // A body that isn't JSON, with a password in it: axum logs its rejection (target axum::rejection),
    // and must not log the password.
    let r = http()
        .post(format!("{base}/sessions"))
        .header("content-type", "application/json")
        .body(format!(
            "{{\"name\": \"admin\", \"password\": \"{ADMIN_PW}\""
        ))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    server.stop();
    logs.push((
        "roster serve".to_owned(),
        std::fs::read_to_string(&server_log).unwrap(),
    ));

    let secrets = [
        ADMIN_PW,
        SERVICE_PW,
        ALICE_PW,
        RITA_PW,
        NEW_RITA_PW,
        WRONG_PW,
        SECRET_KEY,
        SECRET_KEY_RAW,
        &admin,
        &rita,
        &alice,
    ];
    let mut lines = 0;
    let mut targets = std::collections::BTreeSet::new();
    for (what, log) in &logs {
        for line in log.lines() {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{what}: a line that isn't JSON ({e}): {line}"));
            assert!(
                v["timestamp"].is_string() && v["level"].is_string(),
                "{what}: {line}"
            );
            if let Some(t) = v["target"].as_str() {
                targets.insert(t.split("::").next().unwrap_or(t).to_owned());
            }
            for secret in secrets {
                assert!(
                    !line.contains(secret),
                    "{what}: a log line holds a secret ({}…): {line}",
                    &secret[..4]
                );
            }
            lines += 1;
        }
    }
    // The logs were there to look at: the database's statements, the app's run phases and logon
    // refusals, the binary's own notices, the server's access log; and they name the users, just not
    // their secrets.
    for target in ["sqlx", "roster_app", "roster", "roster_server"] {
        assert!(
            targets.contains(target),
            "no log line of {target} (targets: {targets:?})"
        );
    }
    assert!(
        logs.iter().any(|(_, log)| log.contains("alice")),
        "no log line names alice, whose directory logon was refused"
    );
    assert!(lines > 200, "only {lines} log lines");
}
