//! The configuration file through the binary (`crates/roster/src/config.rs`): `roster serve` takes its
//! options from it below the command line and the environment, every command reads it, and a file that
//! can't be used stops a command before it touches anything, with exit code 2 and what to do.

use crate::e2e::{http, stderr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_roster");

/// The binary with none of the options the file holds in its environment.
fn roster() -> Command {
    let mut c = Command::new(BIN);
    for var in [
        "ROSTER_CONFIG",
        "ROSTER_DATA_DIR",
        "ROSTER_DATABASE_URL",
        "ROSTER_LISTEN",
        "ROSTER_LOG",
        "ROSTER_LOG_FORMAT",
    ] {
        c.env_remove(var);
    }
    c.env("ROSTER_ADMIN_PASSWORD", "config-admin-password");
    c.stdin(Stdio::null());
    c
}

#[test]
fn roster_serve_takes_the_file_below_the_environment_and_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("roster.toml");
    let (file_port, env_port) = (roster_testkit::free_port(), roster_testkit::free_port());
    std::fs::write(
        &file,
        format!(
            "# relative to this file\ndata_dir = \"data\"\nlisten = \"127.0.0.1:{file_port}\"\n\
             log_format = \"json\"\nlog = \"info\"\n"
        ),
    )
    .unwrap();
    let mut server = roster()
        .arg("--config")
        .arg(&file)
        .arg("serve")
        .env("ROSTER_LISTEN", format!("127.0.0.1:{env_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let answered = roster_testkit::wait_for_port(env_port, Duration::from_secs(30));
    if answered.is_err() {
        let _ = server.kill();
        let out = server.wait_with_output().unwrap();
        panic!("no server on the environment's port: {}", stderr(&out));
    }
    let r = http()
        .get(format!("http://127.0.0.1:{env_port}/healthz"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", file_port)).is_err(),
        "the environment's address wins over the file's"
    );
    assert!(
        dir.path().join("data/roster.db").exists(),
        "the data directory from the file, relative to it"
    );
    // The CLI reads the same file (ROSTER_CONFIG this time): the same data directory.
    let o = roster()
        .env("ROSTER_CONFIG", &file)
        .args(["users", "list", "--json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"admin\""));
    // A flag wins over the file: a data directory of its own, a database of its own.
    let flag_data = tempfile::tempdir().unwrap();
    let o = roster()
        .env("ROSTER_CONFIG", &file)
        .arg("--data-dir")
        .arg(flag_data.path())
        .args(["users", "list"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(flag_data.path().join("roster.db").exists());

    let _ = server.kill();
    let out = server.wait_with_output().unwrap();
    let log = stderr(&out);
    // The file's log format: every line is JSON, the first says which file was read.
    let lines: Vec<&str> = log.lines().collect();
    assert!(!lines.is_empty());
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        assert!(v["level"].is_string(), "{line}");
    }
    assert!(
        log.contains(&format!("configuration from {}", file.display())),
        "{log}"
    );
}

#[test]
fn a_file_that_cannot_be_used_stops_any_command_with_exit_2_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("roster.toml");

    std::fs::write(&file, "data_dir = \"data\"\nlisen = \"0.0.0.0:8080\"\n").unwrap();
    let o = roster()
        .env("ROSTER_CONFIG", &file)
        .args(["users", "list"])
        .output()
        .unwrap();
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    for needed in [
        "CL004-config-file-invalid",
        &file.display().to_string(),
        "line 2",
        "unknown field `lisen`",
        "listen",
    ] {
        assert!(e.contains(needed), "{needed:?} in: {e}");
    }

    std::fs::write(&file, "log_format = \"xml\"\n").unwrap();
    let o = roster()
        .arg("--config")
        .arg(&file)
        .arg("serve")
        .output()
        .unwrap();
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("log_format") && e.contains("`json`"), "{e}");

    let o = roster()
        .arg("--config")
        .arg(dir.path().join("missing.toml"))
        .args(["serve"])
        .output()
        .unwrap();
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("CL002-config-file-missing") && e.contains("named by --config"),
        "{e}"
    );

    std::fs::write(&file, "tls_key = \"key.pem\"\n").unwrap();
    let o = roster()
        .arg("--config")
        .arg(&file)
        .arg("serve")
        .output()
        .unwrap();
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(
        e.contains("CL005-tls-incomplete") && e.contains("tls_cert"),
        "{e}"
    );

    assert!(
        !Path::new(&data).exists(),
        "nothing was created before the file was refused"
    );
}
