//! `mail-sync`: the mail servers' synchronization benchmark behind `bench/icewarp-sync.sh` (issue 22) and
//! `bench/kerio-sync.sh` (issue 23).
//!
//! It writes a fixture of N users in four domains (every second one with an alias), serves it with the
//! release `roster-emulator icewarp|kerio` over HTTPS with a test CA certificate (a process of its own, so
//! its memory isn't counted as Roster's), and measures, round-robin, `roster sync --preview --json` on a
//! data directory that has only the settings, `roster sync --json` into an empty SQLite store and a
//! re-sync with nothing changed: wall time, peak resident memory (`wait4`'s `ru_maxrss`), Roster's CPU
//! time and the emulator's CPU time during the command. Each run is checked (status, entries, counts).
//!
//! Usage: `mail-sync icewarp|kerio [N] [--reps R] [--roster PATH] [--emulator PATH] [--out FILE] [--command TEXT]`

// A measurement tool: anything unexpected must stop the run loudly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use roster_bench::machine::{load_average, process_cpu};
use roster_testkit::{TestCa, free_port, wait_for_port};

const ADMIN: &str = "admin@admin.example";
const ADMIN_PASSWORD: &str = "bench-mail-admin";
const ROSTER_ADMIN_PASSWORD: &str = "bench-admin-password";
const DOMAINS: [&str; 4] = [
    "d1.example.com",
    "d2.example.com",
    "d3.example.org",
    "d4.example.net",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Preview,
    FullSync,
    Resync,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Preview => "preview (`roster sync --preview`)",
            Kind::FullSync => "full sync into an empty store",
            Kind::Resync => "re-sync, nothing changed",
        }
    }
}

struct Sample {
    wall: Duration,
    max_rss_kib: u64,
    cpu: Duration,
    emulator_cpu: Duration,
}

/// Which mail server is emulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Icewarp,
    Kerio,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Icewarp => "icewarp",
            Server::Kerio => "kerio",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Server::Icewarp => "IceWarp",
            Server::Kerio => "Kerio Connect",
        }
    }

    /// The emulator's data file for N users.
    fn fixture_toml(self, n: usize) -> String {
        match self {
            Server::Icewarp => icewarp_toml(&icewarp_fixture(n)),
            Server::Kerio => kerio_toml(n),
        }
    }
}

struct Opts {
    server: Server,
    n: usize,
    reps: usize,
    roster: PathBuf,
    emulator: PathBuf,
    out: PathBuf,
    command: String,
}

fn parse_opts() -> Opts {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut args = std::env::args().skip(1);
    let server = match args.next().as_deref() {
        Some("icewarp") => Server::Icewarp,
        Some("kerio") => Server::Kerio,
        other => panic!("usage: mail-sync icewarp|kerio [N] [options]; got {other:?}"),
    };
    let mut opts = Opts {
        server,
        n: 20_000,
        reps: 3,
        roster: root.join("target/release/roster"),
        emulator: root.join("target/release/roster-emulator"),
        out: PathBuf::new(),
        command: String::new(),
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--reps" => opts.reps = args.next().unwrap().parse().unwrap(),
            "--roster" => opts.roster = args.next().unwrap().into(),
            "--emulator" => opts.emulator = args.next().unwrap().into(),
            "--out" => opts.out = args.next().unwrap().into(),
            "--command" => opts.command = args.next().unwrap(),
            n => opts.n = n.parse().unwrap_or_else(|_| panic!("unknown argument {n}")),
        }
    }
    if opts.out.as_os_str().is_empty() {
        opts.out = root.join(format!(
            "bench/results/{}-sync-{}.md",
            server.name(),
            opts.n
        ));
    }
    if opts.command.is_empty() {
        opts.command = format!("bench/{}-sync.sh {}", server.name(), opts.n);
    }
    opts
}

/// N users spread over the four domains, every second with an alias, and the administrator in a domain
/// of its own (not selected).
fn icewarp_fixture(n: usize) -> roster_testkit::icewarp::Fixture {
    use roster_testkit::icewarp::{Account, Domain, Fixture};
    let mut domains: Vec<Domain> = DOMAINS
        .iter()
        .map(|d| Domain {
            name: (*d).to_owned(),
            ..Default::default()
        })
        .collect();
    for i in 0..n {
        let domain = &mut domains[i % DOMAINS.len()];
        domain.accounts.push(Account {
            mailbox: format!("user{i}"),
            name: format!("User Number {i}"),
            password: format!("pw-{i}"),
            aliases: if i % 2 == 0 {
                vec![format!("u{i}.alias")]
            } else {
                vec![]
            },
            ..Default::default()
        });
    }
    domains.push(Domain {
        name: "admin.example".into(),
        accounts: vec![Account {
            mailbox: "admin".into(),
            name: "Administrator".into(),
            password: ADMIN_PASSWORD.into(),
            admin: true,
            ..Default::default()
        }],
        ..Default::default()
    });
    Fixture {
        version: "14.3.0.3".into(),
        domains,
    }
}

/// The same for Kerio Connect (aliases are local parts in `emailAddresses`), written in the emulator's
/// format.
fn kerio_toml(n: usize) -> String {
    let mut out = String::from("version = \"10.0.8.9228\"\n");
    for (d, domain) in DOMAINS.iter().enumerate() {
        writeln!(
            out,
            "\n[[domains]]\nname = \"{domain}\"\nprimary = {}",
            d == 0
        )
        .unwrap();
        for i in (d..n).step_by(DOMAINS.len()) {
            let aliases = if i % 2 == 0 {
                format!("\"u{i}.alias\"")
            } else {
                String::new()
            };
            writeln!(
                out,
                "[[domains.users]]\nlogin_name = \"user{i}\"\nfull_name = \"User Number {i}\"\npassword = \"pw-{i}\"\nemail_addresses = [{aliases}]"
            )
            .unwrap();
        }
    }
    let (login, domain) = ADMIN.split_once('@').unwrap();
    writeln!(
        out,
        "\n[[domains]]\nname = \"{domain}\"\n[[domains.users]]\nlogin_name = \"{login}\"\nfull_name = \"Administrator\"\npassword = \"{ADMIN_PASSWORD}\"\nrole = \"FullAdmin\""
    )
    .unwrap();
    out
}

fn settings_toml(server: Server, port: u16, ca: &Path) -> String {
    format!(
        r#"type = "{}"
server = "127.0.0.1:{port}"
ca_file = "{}"
username = "{ADMIN}"
password = "{ADMIN_PASSWORD}"
domains = [{}]
username_format = "email"
delete_users = false
"#,
        server.name(),
        ca.display(),
        DOMAINS
            .iter()
            .map(|d| format!("\"{d}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

struct Ctx {
    opts: Opts,
    work: PathBuf,
    settings: PathBuf,
    emulator_pid: u32,
}

impl Ctx {
    fn roster(&self, data_dir: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.opts.roster);
        for var in [
            "ROSTER_DATA_DIR",
            "ROSTER_DATABASE_URL",
            "ROSTER_SECRET_KEY",
            "ROSTER_ADMIN_PASSWORD",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("ROSTER_ADMIN_PASSWORD", ROSTER_ADMIN_PASSWORD)
            .arg("--data-dir")
            .arg(data_dir)
            .args(args);
        cmd
    }

    fn prepared_data_dir(&self) -> tempfile::TempDir {
        let dir = tempfile::Builder::new()
            .prefix("data-")
            .tempdir_in(&self.work)
            .unwrap();
        let settings = self.settings.to_str().unwrap().to_owned();
        self.measure(
            &mut self.roster(dir.path(), &["directory", "set", "--file", &settings]),
            "directory set",
        );
        dir
    }

    fn measure(&self, cmd: &mut Command, what: &str) -> Sample {
        let stderr_path = self.work.join(format!("{}.stderr", what.replace(' ', "-")));
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr_path).unwrap());
        let emulator_before = process_cpu(self.emulator_pid);
        let started = Instant::now();
        #[allow(clippy::zombie_processes)] // reaped by wait4
        let child = cmd.spawn().unwrap();
        let (status, usage) = wait4(child.id()).unwrap();
        let wall = started.elapsed();
        let emulator_cpu = process_cpu(self.emulator_pid).saturating_sub(emulator_before);
        if !status.success() {
            let err = fs::read_to_string(&stderr_path).unwrap_or_default();
            panic!("{what} failed ({status}): {cmd:?}\n{err}");
        }
        Sample {
            wall,
            max_rss_kib: u64::try_from(usage.ru_maxrss).unwrap(),
            cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
            emulator_cpu,
        }
    }

    fn verify_last_run(&self, data_dir: &Path, kind: Kind) {
        let out = self
            .roster(data_dir, &["runs", "list", "--limit", "1", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success());
        let runs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let run = &runs[0];
        let n = self.opts.n as u64;
        let (want_kind, created, unchanged) = match kind {
            Kind::Preview => ("preview", n, 0),
            Kind::FullSync => ("sync", n, 0),
            Kind::Resync => ("sync", 0, n),
        };
        let counts = &run["counts"];
        let ok = run["status"] == "succeeded"
            && run["kind"] == want_kind
            && run["entries_read"] == n
            && counts["created"] == created
            && counts["unchanged"] == unchanged
            && counts["conflicts"] == 0
            && counts["skipped"] == 0;
        assert!(ok, "unexpected {} run: {run:#}", kind.label());
    }
}

fn main() {
    let opts = parse_opts();
    for (path, how) in [
        (&opts.roster, "cargo build --release -p roster"),
        (
            &opts.emulator,
            "cargo build --release -p roster-testkit --bin roster-emulator",
        ),
    ] {
        assert!(path.is_file(), "{} not found: {how}", path.display());
    }
    let load_before = load_average();
    let work_dir = tempfile::Builder::new()
        .prefix("mail-bench-")
        .tempdir()
        .unwrap();
    let work = work_dir.path().to_owned();
    let ca = TestCa::generate().unwrap();
    let cert = ca.issue_server_cert("localhost").unwrap();
    let data = work.join("fixture.toml");
    fs::write(&data, opts.server.fixture_toml(opts.n)).unwrap();
    let port = free_port();
    let log = File::create(work.join("emulator.log")).unwrap();
    let mut emulator: Child = Command::new(&opts.emulator)
        .args([opts.server.name(), "--data"])
        .arg(&data)
        .args(["--listen", &format!("127.0.0.1:{port}"), "--tls"])
        .arg(&cert.cert_path)
        .arg(&cert.key_path)
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_for_port(port, Duration::from_secs(30)).unwrap();
    let settings = work.join("settings.toml");
    fs::write(
        &settings,
        settings_toml(opts.server, port, ca.ca_cert_path()),
    )
    .unwrap();
    let ctx = Ctx {
        emulator_pid: emulator.id(),
        opts,
        work,
        settings,
    };
    eprintln!(
        "mail-sync {}: N = {}, {} repetitions, load average {load_before}",
        ctx.opts.server.name(),
        ctx.opts.n,
        ctx.opts.reps
    );

    let mut samples: Vec<(Kind, Sample)> = Vec::new();
    for round in 1..=ctx.opts.reps {
        let preview_dir = ctx.prepared_data_dir();
        let s = ctx.measure(
            &mut ctx.roster(preview_dir.path(), &["sync", "--preview", "--json"]),
            "preview",
        );
        ctx.verify_last_run(preview_dir.path(), Kind::Preview);
        report(ctx.opts.server, round, Kind::Preview, &s);
        samples.push((Kind::Preview, s));

        let dir = ctx.prepared_data_dir();
        let s = ctx.measure(
            &mut ctx.roster(dir.path(), &["sync", "--json"]),
            "full sync",
        );
        ctx.verify_last_run(dir.path(), Kind::FullSync);
        report(ctx.opts.server, round, Kind::FullSync, &s);
        samples.push((Kind::FullSync, s));

        let s = ctx.measure(&mut ctx.roster(dir.path(), &["sync", "--json"]), "re-sync");
        ctx.verify_last_run(dir.path(), Kind::Resync);
        report(ctx.opts.server, round, Kind::Resync, &s);
        samples.push((Kind::Resync, s));
    }
    let _ = emulator.kill();
    let _ = emulator.wait();

    let load_after = load_average();
    let mut md = String::new();
    writeln!(
        md,
        "# {} sync benchmark: {} users\n\n`{}` at {}, {} CPUs, load average {load_before} before and {load_after} after.\n",
        ctx.opts.server.title(),
        ctx.opts.n,
        ctx.opts.command,
        git_revision(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )
    .unwrap();
    writeln!(
        md,
        "The release `roster-emulator {}` serves {} users in {} domains (every second with an alias) over HTTPS with a test CA certificate, as a separate process. Medians of {} runs; memory is the largest peak resident set of the runs.\n",
        ctx.opts.server.name(),
        ctx.opts.n,
        DOMAINS.len(),
        ctx.opts.reps
    )
    .unwrap();
    writeln!(
        md,
        "| Run | Wall time (median) | Peak memory (roster) | CPU (roster) | CPU (emulator) |\n|---|---|---|---|---|"
    )
    .unwrap();
    for kind in [Kind::Preview, Kind::FullSync, Kind::Resync] {
        let of: Vec<&Sample> = samples
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, s)| s)
            .collect();
        let wall = median(of.iter().map(|s| s.wall).collect());
        let cpu = median(of.iter().map(|s| s.cpu).collect());
        let emu = median(of.iter().map(|s| s.emulator_cpu).collect());
        let rss = of.iter().map(|s| s.max_rss_kib).max().unwrap_or(0);
        writeln!(
            md,
            "| {} | {:.2} s | {:.1} MiB | {:.2} s | {:.2} s |",
            kind.label(),
            wall.as_secs_f64(),
            rss as f64 / 1024.0,
            cpu.as_secs_f64(),
            emu.as_secs_f64()
        )
        .unwrap();
    }
    print!("{md}");
    if let Some(parent) = ctx.opts.out.parent() {
        fs::create_dir_all(parent).unwrap();
    }
    fs::write(&ctx.opts.out, &md).unwrap();
    eprintln!("mail-sync: wrote {}", ctx.opts.out.display());
}

fn icewarp_toml(fixture: &roster_testkit::icewarp::Fixture) -> String {
    // The emulator's own format, written by hand to keep this tool's dependencies small.
    let mut out = format!("version = \"{}\"\n", fixture.version);
    for d in &fixture.domains {
        writeln!(out, "\n[[domains]]\nname = \"{}\"", d.name).unwrap();
        for a in &d.accounts {
            writeln!(
                out,
                "[[domains.accounts]]\nmailbox = \"{}\"\nname = \"{}\"\npassword = \"{}\"\nadmin = {}\naliases = [{}]",
                a.mailbox,
                a.name,
                a.password,
                a.admin,
                a.aliases
                    .iter()
                    .map(|x| format!("\"{x}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
            .unwrap();
        }
    }
    out
}

fn report(server: Server, round: usize, kind: Kind, s: &Sample) {
    eprintln!(
        "mail-sync {}: round {round}: {}: {:.2} s, {:.1} MiB, roster CPU {:.2} s, emulator CPU {:.2} s",
        server.name(),
        kind.label(),
        s.wall.as_secs_f64(),
        s.max_rss_kib as f64 / 1024.0,
        s.cpu.as_secs_f64(),
        s.emulator_cpu.as_secs_f64()
    );
}

#[allow(unsafe_code)]
fn wait4(pid: u32) -> io::Result<(ExitStatus, libc::rusage)> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is a plain C struct for which all-zero bytes is valid; wait4 overwrites it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid, exclusively borrowed locals; `pid` is our own child.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            return Ok((ExitStatus::from_raw(status), usage));
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
        + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn git_revision() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}
