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
// figures that look fine. It also sleeps between rounds, with no runtime to block.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use roster_bench::http::{Answer, Connection, logon_body, statuses};
use roster_bench::machine::{
    Busy, describe, load_average, ms, output_line, percentile, proc_kib, revision,
};
use roster_bench::serve::{self, Roster, Server};

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

fn parse_opts() -> Opts {
    let mut opts = Opts {
        roster: roster_bench::workspace_root().join("target/release/roster"),
        logons: 400,
        clients: 100,
        rounds: 3,
        users: 100,
        out: roster_bench::workspace_root().join("bench/results/logon-flood.md"),
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
            Scenario::DirectoryUsers => (serve::uid(i % users + 1), "wrong-password".into()),
        }
    }
}

/// Logons per client in the measured rate's baseline.
const RATE_LOGONS_PER_CLIENT: usize = 10;

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
    let cores = roster_bench::machine::cores();
    let load_before = load_average();
    eprintln!(
        "logon-flood: {} logons from {} clients, {} rounds, {} directory users, {cores} cores, load average {load_before}",
        opts.logons, opts.clients, opts.rounds, opts.users
    );

    let work = tempfile::Builder::new()
        .prefix("logon-flood-")
        .tempdir()
        .expect("a temporary directory");
    let (slapd, roster) = serve::directory_and_data(&opts.roster, opts.users, work.path());
    eprintln!(
        "logon-flood: slapd at {}, {} users synchronized",
        slapd.ldap_url(),
        opts.users
    );

    let busy = Busy::start();
    let results: Vec<Measured> = Scenario::ALL
        .iter()
        .map(|&scenario| measure(&opts, &roster, work.path(), scenario, cores))
        .collect();
    let busy = busy.stop();
    let load_after = load_average();

    let text = report(&opts, &results, cores);
    println!("{text}");
    let markdown = format!(
        "# Failed-logon flood ({})\n\n`{}`\n\n- machine: {}\n- revision: {}; binary {} ({})\n- load average before: {load_before}; after: {load_after}; CPU busy during the measurements: {:.1} CPU-seconds in {:.1} s ({:.0} % of {cores} CPUs)\n\n{text}\n",
        output_line(std::process::Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
        opts.command,
        describe(),
        revision(),
        opts.roster.display(),
        roster.version(),
        busy.cpu.as_secs_f64(),
        busy.wall.as_secs_f64(),
        100.0 * busy.share(),
    );
    if let Some(parent) = opts.out.parent() {
        fs::create_dir_all(parent).expect("creating the results directory");
    }
    fs::write(&opts.out, markdown).expect("writing the results");
    eprintln!("logon-flood: wrote {}", opts.out.display());
    drop(slapd);
}

fn measure(
    opts: &Opts,
    roster: &Roster,
    work: &Path,
    scenario: Scenario,
    cores: usize,
) -> Measured {
    let server = Server::start(
        roster,
        &work.join(format!("serve-{scenario:?}.log")),
        opts.rss_limit_kib,
    );
    let (port, pid) = (server.port, server.pid);

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
        statuses(rate_round.answers.iter().map(|a| a.status))
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

    let mut rounds = Vec::new();
    let mut peak_kib = start_kib;
    for round in 1..=opts.rounds {
        let r = flood(port, scenario, round, opts.logons, opts.clients, opts.users);
        if server.over_limit() {
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
    let stopped_over_limit = server.over_limit();
    let peak_kib = peak_kib.max(server.peak_kib());
    drop(server);
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

fn summary(r: &Round) -> String {
    let mut latencies: Vec<Duration> = r.answers.iter().map(|a| a.latency).collect();
    latencies.sort();
    let refused = r.answers.iter().filter(|a| a.status == 401).count();
    format!(
        "{} in {:.2} s ({:.1} refused logons/s), p50 {:.0} ms, p99 {:.0} ms",
        statuses(r.answers.iter().map(|a| a.status)),
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
                statuses(r.answers.iter().map(|a| a.status)),
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

/// `POST /api/v1/sessions` on a new connection, as a client of the API does it; status 0 when the
/// connection failed (the server was killed, or refused it).
fn logon(port: u16, name: &str, password: &str) -> Answer {
    Connection::new(port, false).post_json("/api/v1/sessions", &logon_body(name, password), None)
}
