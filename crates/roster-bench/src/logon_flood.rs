//! `logon-flood`: the failed-logon flood benchmark behind `bench/logon-flood.sh` (issue 19, item 1).
//!
//! It starts a throwaway slapd (roster-testkit) with U directory users, syncs them into a new SQLite data
//! directory with the release `roster` binary, then for each scenario starts `roster serve` afresh and
//! measures it from the outside:
//!
//! * **baseline**: 20 failed logons one after the other; the median is the time of one logon, whose cost
//!   is one Argon2id computation, and `cores / median` is the machine's Argon2id rate, the most failed
//!   logons a second the server can answer. Then, because the machine may be shared, the same rate as
//!   measured: `cores` clients sending 10 logons each, one after the other, so that exactly one
//!   computation per core runs at any time;
//! * **flood**: L failed logons from C concurrent clients (each its own thread, a new connection per
//!   logon, all starting at once), R rounds in a row on the same server: answers, logons a second,
//!   latency p50/p99/max, and the server's RSS (sampled every 10 ms, `VmHWM` at the end, `VmRSS` after
//!   each round: what the server keeps).
//!
//! Scenarios: unknown names (`nobody-<i>`), and directory users with a wrong password (a bind to slapd
//! beside the dummy Argon2id check). A server whose RSS passes `--rss-limit-mib` (default 8192) is
//! killed and the run reported as stopped, so that measuring an old build can't exhaust the machine.
//!
//! Usage: `logon-flood [--roster PATH] [--logons L] [--clients C] [--rounds R] [--users U] [--out FILE]
//! [--command TEXT] [--rss-limit-mib M]`.

// A measurement tool, not product code: anything unexpected must stop the run loudly rather than produce
// figures that look fine. It also sleeps between samples on threads of its own, with no runtime to block.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

use std::fmt::Write as _;
use std::fs;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use roster_testkit::{Slapd, SlapdConfig, TestUser, user_ldif};

const SUFFIX: &str = "dc=example,dc=com";
const SERVICE_DN: &str = "cn=roster,ou=Services,dc=example,dc=com";
const SERVICE_PASSWORD: &str = "bench-service-secret";
const ADMIN_PASSWORD: &str = "bench-admin-password";
const BASELINE_LOGONS: usize = 20;

#[derive(Debug)]
struct Opts {
    roster: PathBuf,
    logons: usize,
    clients: usize,
    rounds: usize,
    users: usize,
    out: PathBuf,
    command: String,
    rss_limit_kib: u64,
}

fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    fs::canonicalize(&root).unwrap_or(root)
}

fn parse_opts() -> Opts {
    let mut opts = Opts {
        roster: workspace_root().join("target/release/roster"),
        logons: 400,
        clients: 100,
        rounds: 3,
        users: 100,
        out: workspace_root().join("bench/results/logon-flood.md"),
        command: "bench/logon-flood.sh".into(),
        rss_limit_kib: 8192 * 1024,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        let number = |name: &str, v: String| -> usize {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: a number, not {v:?}"))
        };
        match arg.as_str() {
            "--roster" => opts.roster = PathBuf::from(value("--roster")),
            "--logons" => opts.logons = number("--logons", value("--logons")),
            "--clients" => opts.clients = number("--clients", value("--clients")),
            "--rounds" => opts.rounds = number("--rounds", value("--rounds")),
            "--users" => opts.users = number("--users", value("--users")),
            "--out" => opts.out = PathBuf::from(value("--out")),
            "--command" => opts.command = value("--command"),
            "--rss-limit-mib" => {
                opts.rss_limit_kib =
                    1024 * number("--rss-limit-mib", value("--rss-limit-mib")) as u64
            }
            "-h" | "--help" => {
                println!(
                    "usage: logon-flood [--roster PATH] [--logons L] [--clients C] [--rounds R] [--users U] [--out FILE] [--command TEXT] [--rss-limit-mib M]"
                );
                std::process::exit(0);
            }
            other => panic!("unknown argument {other:?}; try --help"),
        }
    }
    assert!(
        opts.logons > 0 && opts.clients > 0 && opts.rounds > 0 && opts.users > 0,
        "counts must be positive"
    );
    opts
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    UnknownNames,
    DirectoryUsers,
}

impl Scenario {
    const ALL: [Scenario; 2] = [Scenario::UnknownNames, Scenario::DirectoryUsers];

    fn label(self) -> &'static str {
        match self {
            Scenario::UnknownNames => "unknown names",
            Scenario::DirectoryUsers => "directory users, wrong password",
        }
    }

    /// The `i`th logon's name and password.
    fn logon(self, i: usize, users: usize) -> (String, String) {
        match self {
            Scenario::UnknownNames => (format!("nobody-{i}"), "guess-password".into()),
            Scenario::DirectoryUsers => {
                (format!("user{:04}", i % users + 1), "wrong-password".into())
            }
        }
    }
}

/// Logons per client in the measured rate's baseline.
const RATE_LOGONS_PER_CLIENT: usize = 10;

/// One logon's answer.
#[derive(Debug, Clone, Copy)]
struct Answer {
    status: u16,
    retry_after: bool,
    latency: Duration,
}

#[derive(Debug)]
struct Round {
    wall: Duration,
    answers: Vec<Answer>,
    /// The server's RSS once the round is over (what it keeps), KiB.
    rss_after_kib: u64,
}

#[derive(Debug)]
struct Measured {
    scenario: Scenario,
    baseline_logon: Duration,
    /// Refused logons a second from `cores` clients.
    measured_rate: f64,
    rounds: Vec<Round>,
    /// Peak RSS of the server over its life (baseline and all rounds), KiB.
    peak_kib: u64,
    /// The server's RSS after start and the baseline's logons, KiB.
    start_kib: u64,
    stopped_over_limit: bool,
}

fn main() {
    let opts = parse_opts();
    assert!(
        opts.roster.is_file(),
        "{} not found: build it with `cargo build --release -p roster` (bench/logon-flood.sh does)",
        opts.roster.display()
    );
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let load_before = load_average();
    eprintln!(
        "logon-flood: {} logons from {} clients, {} rounds, {} directory users, {cores} cores, load average {load_before}",
        opts.logons, opts.clients, opts.rounds, opts.users
    );

    let slapd = Slapd::start(SlapdConfig {
        suffix: SUFFIX.to_owned(),
        base_ldif: Some(directory_ldif(opts.users)),
        ..Default::default()
    })
    .expect("starting slapd");
    let work = tempfile::Builder::new()
        .prefix("logon-flood-")
        .tempdir()
        .expect("a temporary directory");
    let data = work.path().join("data");
    let settings = work.path().join("settings.toml");
    fs::write(&settings, settings_toml(slapd.port())).expect("writing settings.toml");
    run_roster(
        &opts,
        &data,
        &["directory", "set", "--file", settings.to_str().unwrap()],
    );
    run_roster(&opts, &data, &["sync", "--json"]);
    eprintln!(
        "logon-flood: slapd at {}, {} users synchronized",
        slapd.ldap_url(),
        opts.users
    );

    let busy_before = machine_busy();
    let started = Instant::now();
    let results: Vec<Measured> = Scenario::ALL
        .iter()
        .map(|&scenario| measure(&opts, &data, work.path(), scenario, cores))
        .collect();
    let busy = machine_busy().saturating_sub(busy_before).as_secs_f64();
    let wall = started.elapsed().as_secs_f64();
    let load_after = load_average();

    let text = report(&opts, &results, cores);
    println!("{text}");
    let revision = output_line(Command::new("git").args(["rev-parse", "--short", "HEAD"]));
    let dirty =
        !output_line(Command::new("git").args(["status", "--porcelain", "--untracked-files=no"]))
            .is_empty();
    let markdown = format!(
        "# Failed-logon flood ({})\n\n`{}`\n\n- machine: {cores} CPUs, {}, {}\n- revision: {revision}{}; binary {} ({})\n- load average before: {load_before}; after: {load_after}; CPU busy during the measurements: {busy:.1} CPU-seconds in {wall:.1} s ({:.0} % of {cores} CPUs)\n\n{text}\n",
        output_line(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
        opts.command,
        cpu_model(),
        memory_total(),
        if dirty {
            " (with uncommitted changes)"
        } else {
            ""
        },
        opts.roster.display(),
        output_line(Command::new(&opts.roster).arg("--version")),
        100.0 * busy / (wall * cores as f64),
    );
    if let Some(parent) = opts.out.parent() {
        fs::create_dir_all(parent).expect("creating the results directory");
    }
    fs::write(&opts.out, markdown).expect("writing the results");
    eprintln!("logon-flood: wrote {}", opts.out.display());
    drop(slapd);
}

fn roster_command(opts: &Opts, data: &Path) -> Command {
    let mut cmd = Command::new(&opts.roster);
    for var in [
        "ROSTER_DATA_DIR",
        "ROSTER_DATABASE_URL",
        "ROSTER_SECRET_KEY",
        "ROSTER_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("ROSTER_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .arg("--data-dir")
        .arg(data);
    cmd
}

fn run_roster(opts: &Opts, data: &Path, args: &[&str]) {
    let out = roster_command(opts, data)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running roster");
    assert!(
        out.status.success(),
        "roster {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn measure(opts: &Opts, data: &Path, work: &Path, scenario: Scenario, cores: usize) -> Measured {
    let port = roster_testkit::free_port();
    let log = fs::File::create(work.join(format!("serve-{scenario:?}.log"))).expect("a log file");
    let mut server: Child = roster_command(opts, data)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        // The per-address limit (issue 20) would answer most of a flood from one address 429 before
        // any password check: off, so that the flood measures the checks.
        .args(["--logon-limit-per-minute", "0", "--logon-limit-burst", "0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("starting roster serve");
    roster_testkit::wait_for_port(port, Duration::from_secs(30)).expect("roster serve listening");
    let pid = server.id();

    // Baseline: one logon at a time.
    let mut single: Vec<Duration> = (0..BASELINE_LOGONS)
        .map(|i| {
            let (name, password) = scenario.logon(i, opts.users);
            let a = logon(port, &name, &password);
            assert_eq!(a.status, 401, "{}: baseline logon {i}", scenario.label());
            a.latency
        })
        .collect();
    single.sort();
    let baseline_logon = single[single.len() / 2];
    let rate_round = flood(
        port,
        scenario,
        0,
        cores * RATE_LOGONS_PER_CLIENT,
        cores,
        opts.users,
    );
    assert!(
        rate_round.answers.iter().all(|a| a.status == 401),
        "{}: {cores} clients were not all refused: {}",
        scenario.label(),
        statuses(&rate_round)
    );
    let measured_rate = rate_round.answers.len() as f64 / rate_round.wall.as_secs_f64();
    let start_kib = proc_kib(pid, "VmRSS").unwrap();
    eprintln!(
        "logon-flood: {}: one logon takes {:.1} ms (median of {BASELINE_LOGONS}), so {:.1} logons/s on {cores} cores; {cores} clients got {measured_rate:.1} logons/s; RSS {:.1} MiB",
        scenario.label(),
        ms(baseline_logon),
        cores as f64 / baseline_logon.as_secs_f64(),
        start_kib as f64 / 1024.0
    );

    // The RSS watchdog: samples, and kills a server over the limit.
    let stop = Arc::new(AtomicBool::new(false));
    let over = Arc::new(AtomicBool::new(false));
    let max_sampled = Arc::new(AtomicU64::new(start_kib));
    let watchdog = {
        let (stop, over, max_sampled) = (stop.clone(), over.clone(), max_sampled.clone());
        let limit = opts.rss_limit_kib;
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let Some(rss) = proc_kib(pid, "VmRSS") else {
                    return;
                };
                max_sampled.fetch_max(rss, Ordering::SeqCst);
                if rss > limit {
                    over.store(true, Ordering::SeqCst);
                    // SAFETY: a signal to our own child process.
                    #[allow(unsafe_code)]
                    unsafe {
                        libc::kill(libc::pid_t::try_from(pid).unwrap(), libc::SIGKILL);
                    }
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };

    let mut rounds = Vec::new();
    let mut peak_kib = start_kib;
    for round in 1..=opts.rounds {
        let r = flood(port, scenario, round, opts.logons, opts.clients, opts.users);
        if over.load(Ordering::SeqCst) {
            rounds.push(r);
            break;
        }
        // What the server keeps: its RSS a moment after the last answer.
        std::thread::sleep(Duration::from_millis(500));
        let rss_after_kib = proc_kib(pid, "VmRSS").unwrap_or(0);
        peak_kib = peak_kib.max(proc_kib(pid, "VmHWM").unwrap_or(0));
        let r = Round { rss_after_kib, ..r };
        eprintln!(
            "logon-flood: {}: round {round}: {}; RSS now {:.1} MiB, peak {:.1} MiB",
            scenario.label(),
            summary(&r),
            r.rss_after_kib as f64 / 1024.0,
            peak_kib as f64 / 1024.0
        );
        rounds.push(r);
    }
    stop.store(true, Ordering::SeqCst);
    watchdog.join().unwrap();
    let stopped_over_limit = over.load(Ordering::SeqCst);
    let peak_kib = peak_kib.max(max_sampled.load(Ordering::SeqCst));
    let _ = server.kill();
    let _ = server.wait();
    Measured {
        scenario,
        baseline_logon,
        measured_rate,
        rounds,
        peak_kib,
        start_kib,
        stopped_over_limit,
    }
}

/// `logons` logons from `clients` client threads, started together; the logons are dealt out in turn.
fn flood(
    port: u16,
    scenario: Scenario,
    round: usize,
    logons: usize,
    clients: usize,
    users: usize,
) -> Round {
    let start = Arc::new(Barrier::new(clients + 1));
    let clients: Vec<_> = (0..clients)
        .map(|c| {
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                (c..logons)
                    .step_by(clients)
                    .map(|i| {
                        let (name, password) = scenario.logon(i + round * logons, users);
                        logon(port, &name, &password)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    start.wait();
    let started = Instant::now();
    let answers: Vec<Answer> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    Round {
        wall: started.elapsed(),
        answers,
        rss_after_kib: 0,
    }
}

/// `POST /api/v1/sessions` on a new connection, as a client of the API does it; status 0 when the
/// connection failed (the server was killed, or refused it).
fn logon(port: u16, name: &str, password: &str) -> Answer {
    let body = format!(r#"{{"name":"{name}","password":"{password}"}}"#);
    let request = format!(
        "POST /api/v1/sessions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let started = Instant::now();
    let response = (|| -> std::io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(300)))?;
        stream.write_all(request.as_bytes())?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        Ok(response)
    })();
    let latency = started.elapsed();
    let text = response
        .map(|r| String::from_utf8_lossy(&r).into_owned())
        .unwrap_or_default();
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let retry_after = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("retry-after:"));
    Answer {
        status,
        retry_after,
        latency,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Answers by status, e.g. "400 × 401" or "380 × 401, 20 × 503".
fn statuses(r: &Round) -> String {
    let mut counts: Vec<(u16, usize)> = Vec::new();
    for a in &r.answers {
        match counts.iter_mut().find(|(s, _)| *s == a.status) {
            Some((_, n)) => *n += 1,
            None => counts.push((a.status, 1)),
        }
    }
    counts.sort();
    counts
        .iter()
        .map(|(s, n)| {
            let s = if *s == 0 {
                "no answer".to_owned()
            } else {
                s.to_string()
            };
            format!("{n} × {s}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn summary(r: &Round) -> String {
    let mut latencies: Vec<Duration> = r.answers.iter().map(|a| a.latency).collect();
    latencies.sort();
    let refused = r.answers.iter().filter(|a| a.status == 401).count();
    format!(
        "{} in {:.2} s ({:.1} refused logons/s), p50 {:.0} ms, p99 {:.0} ms",
        statuses(r),
        r.wall.as_secs_f64(),
        refused as f64 / r.wall.as_secs_f64(),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0))
    )
}

fn report(opts: &Opts, results: &[Measured], cores: usize) -> String {
    let mut out = String::new();
    writeln!(
        out,
        "{} failed logons from {} concurrent clients, {} rounds on one server per scenario.\n",
        opts.logons, opts.clients, opts.rounds
    )
    .unwrap();
    writeln!(
        out,
        "| scenario | round | answers | wall (s) | refused logons/s | × Argon2id rate | × {cores} clients' rate | p50 (ms) | p99 (ms) | max (ms) | 503 with Retry-After | RSS after (MiB) |"
    )
    .unwrap();
    writeln!(
        out,
        "|:---|---:|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    .unwrap();
    for m in results {
        let rate = cores as f64 / m.baseline_logon.as_secs_f64();
        for (i, r) in m.rounds.iter().enumerate() {
            let mut latencies: Vec<Duration> = r.answers.iter().map(|a| a.latency).collect();
            latencies.sort();
            let refused = r.answers.iter().filter(|a| a.status == 401).count();
            let busy = r
                .answers
                .iter()
                .filter(|a| a.status == 503 && a.retry_after)
                .count();
            let per_second = refused as f64 / r.wall.as_secs_f64();
            writeln!(
                out,
                "| {} | {} | {} | {:.2} | {:.1} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} | {busy} | {} |",
                m.scenario.label(),
                i + 1,
                statuses(r),
                r.wall.as_secs_f64(),
                per_second,
                per_second / rate,
                per_second / m.measured_rate,
                ms(percentile(&latencies, 50.0)),
                ms(percentile(&latencies, 99.0)),
                ms(latencies.last().copied().unwrap_or_default()),
                if m.stopped_over_limit && i + 1 == m.rounds.len() {
                    "killed".to_owned()
                } else {
                    format!("{:.1}", r.rss_after_kib as f64 / 1024.0)
                },
            )
            .unwrap();
        }
    }
    writeln!(
        out,
        "\n| scenario | one logon alone (ms, median of {BASELINE_LOGONS}) | Argon2id rate: {cores} cores / that (logons/s) | {cores} clients' rate (logons/s) | RSS before the flood (MiB) | peak RSS (MiB) | peak RSS (MB) |"
    )
    .unwrap();
    writeln!(out, "|:---|---:|---:|---:|---:|---:|---:|").unwrap();
    for m in results {
        writeln!(
            out,
            "| {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1}{} | {:.1} |",
            m.scenario.label(),
            ms(m.baseline_logon),
            cores as f64 / m.baseline_logon.as_secs_f64(),
            m.measured_rate,
            m.start_kib as f64 / 1024.0,
            m.peak_kib as f64 / 1024.0,
            if m.stopped_over_limit {
                format!(" (killed at the {} MiB limit)", opts.rss_limit_kib / 1024)
            } else {
                String::new()
            },
            m.peak_kib as f64 * 1024.0 / 1e6,
        )
        .unwrap();
    }
    out
}

fn settings_toml(port: u16) -> String {
    format!(
        r#"type = "ldap"
server = "127.0.0.1"
port = {port}
encryption = "none"
bind_dn = "{SERVICE_DN}"
password = "{SERVICE_PASSWORD}"
base_dn = "ou=People,{SUFFIX}"
filter = "(objectClass=inetOrgPerson)"
username_attribute = "uid"
full_name_attribute = "displayName"
email_attributes = "mail"
delete_users = false
"#
    )
}

/// The service account and `user0001..` below `ou=People`, each with the password `pw-<uid>`.
fn directory_ldif(users: usize) -> String {
    let mut out = format!(
        "dn: ou=Services,{SUFFIX}\nobjectClass: top\nobjectClass: organizationalUnit\nou: Services\n\n\
         dn: {SERVICE_DN}\nobjectClass: top\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n\
         cn: roster\nuserPassword: {SERVICE_PASSWORD}\n\n"
    );
    for i in 1..=users {
        let uid = format!("user{i:04}");
        let mail = format!("{uid}@example.com");
        let password = format!("pw-{uid}");
        out.push_str(&user_ldif(
            SUFFIX,
            &TestUser {
                uid: &uid,
                cn: &format!("User {i}"),
                mail: vec![&mail],
                password: Some(&password),
                ou: "People",
            },
        ));
    }
    out
}

/// A `/proc/<pid>/status` line in KiB; `None` once the process is gone.
fn proc_kib(pid: u32, field: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time the whole machine has spent busy since boot, all CPUs (USER_HZ is 100 on Linux).
fn machine_busy() -> Duration {
    let stat = fs::read_to_string("/proc/stat").expect("reading /proc/stat");
    let fields: Vec<u64> = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .expect("a cpu line in /proc/stat")
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().expect("a tick count"))
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    let idle = fields[3] + fields[4];
    Duration::from_millis((total - idle) * 10)
}

fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into())
}

fn memory_total() -> String {
    fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| format!("{:.1} GiB RAM", kb / 1024.0 / 1024.0))
        .unwrap_or_else(|| "unknown RAM".into())
}

fn output_line(cmd: &mut Command) -> String {
    cmd.stderr(Stdio::null())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
