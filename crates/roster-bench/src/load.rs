//! `load`: the load benchmark behind `bench/load.sh` (issue 27, item "Load").
//!
//! It starts a throwaway slapd (roster-testkit) with U directory users (default 100,000), each with a
//! password, syncs them into a new SQLite data directory with the release `roster` binary (not measured),
//! starts `roster serve` on it (the per-address logon limit off) and measures it from the outside:
//!
//! * **one logon alone**: 20 directory logons one after the other (also the warm-up: the connector and
//!   the service connection to slapd are set up by the first);
//! * **the Argon2id ceiling**: `cores` threads of this process compute Argon2id with Roster's parameters
//!   in a loop for a few seconds (default 2) while the server is idle ([`argon2_rate`]). Every logon pays
//!   one verification (real or dummy), and the server runs at most one per core, so this is the most
//!   logons a second the machine can check. The machine's speed drifts (a shared host: from 108 to 141
//!   within one run, 178 in another), so it is measured before, between and after short rounds of
//!   logons, and each round is compared with the two next to it;
//! * **directory logons**, R rounds (default 6): C clients (default 200) log on at once, K times each one
//!   after the other (default 2; 6 × 200 × 2 = 2,400 logons), each logon a different directory user with
//!   the correct password, through `POST /api/v1/sessions`. Each client is a thread with its own HTTP/1.1
//!   connection, kept alive between its logons as a browser keeps it (`--new-connection-per-logon` for
//!   one connection per logon; the logon-flood benchmark measures that way). Answers, logons a second,
//!   latency p50/p99/max, and the CPU time of the server, slapd, this tool and everything else on the
//!   machine while they ran (from `/proc`);
//! * **users pages**: the administrator logs on, then 2,000 `GET /api/v1/users?offset=…&limit=50` pages,
//!   the console's page size, walking the list from the start (at 100,000 users, the whole list once):
//!   first from one client, then from P clients at once (default 4), each on its own kept-alive
//!   connection and taking every P-th page. Latency p50/p90/p99/max.
//!
//! Correct passwords never trip the account throttling (it counts failures only, and a success with no
//! failures before writes nothing), and every logon is a different user anyway.
//!
//! Usage: `load [--roster PATH] [--users U] [--clients C] [--logons-per-client K] [--rounds R]
//! [--new-connection-per-logon] [--pages N] [--page-size S] [--page-clients P] [--ceiling-seconds T]
//! [--out FILE] [--command TEXT] [--rss-limit-mib M] [--idle-wait-seconds W]`.
//!
//! On a shared machine, a load average under a threshold before the start says little about the minute
//! of the measurement: before the ceiling and before each measured phase the tool waits (at most W
//! seconds, default 600) for a 3-second window in which the machine's CPUs were busy under 5 %, and
//! reports what it found; the CPU time everything else used during each phase is in the results. (The
//! rounds and the ceilings between them follow each other without such a wait.)

// A measurement tool, not product code: anything unexpected must stop the run loudly rather than produce
// figures that look fine.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use roster_bench::http::{Answer, Connection, logon_body, statuses};
use roster_bench::machine::{
    Argon2Rate, Busy, argon2_rate, cores, describe, load_average, mib, ms, output_line, percentile,
    process_cpu, revision, wait_until_idle,
};
use roster_bench::serve::{self, ADMIN_PASSWORD, Server};

/// Logons one after the other before the load: the time of one logon alone, and the warm-up.
const SINGLE_LOGONS: usize = 20;
/// The target of issue 27: logons a second at least this share of the Argon2id ceiling.
const TARGET_CEILING_SHARE: f64 = 0.8;
/// The target of issue 27: a users page's p99 at most this.
const TARGET_PAGE_P99: Duration = Duration::from_millis(50);

#[derive(Debug)]
struct Opts {
    roster: PathBuf,
    users: usize,
    clients: usize,
    logons_per_client: usize,
    rounds: usize,
    keep_alive: bool,
    pages: usize,
    page_size: usize,
    page_clients: usize,
    ceiling: Duration,
    out: PathBuf,
    command: String,
    rss_limit_kib: u64,
    /// Before the logons and each pages phase, wait up to this long for the machine to be nearly idle.
    idle_wait: Duration,
}

/// Nearly idle: the machine's CPUs busy under this share over [`IDLE_WINDOW`] (the server and slapd idle,
/// so this is everything else on it).
const IDLE_SHARE: f64 = 0.05;
const IDLE_WINDOW: Duration = Duration::from_secs(3);

fn parse_opts() -> Opts {
    let mut opts = Opts {
        roster: roster_bench::workspace_root().join("target/release/roster"),
        users: 100_000,
        clients: 200,
        logons_per_client: 2,
        rounds: 6,
        keep_alive: true,
        pages: 2000,
        page_size: 50,
        page_clients: 4,
        ceiling: Duration::from_secs(2),
        out: roster_bench::workspace_root().join("bench/results/load.md"),
        command: "bench/load.sh".into(),
        rss_limit_kib: 8192 * 1024,
        idle_wait: Duration::from_secs(600),
    };
    let usage = "usage: load [--roster PATH] [--users U] [--clients C] [--logons-per-client K] [--rounds R] [--new-connection-per-logon] [--pages N] [--page-size S] [--page-clients P] [--ceiling-seconds T] [--out FILE] [--command TEXT] [--rss-limit-mib M] [--idle-wait-seconds W]";
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        let mut number = |name: &str| -> usize {
            let v = value(name);
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: a number, not {v:?}"))
        };
        match arg.as_str() {
            "--roster" => opts.roster = PathBuf::from(value("--roster")),
            "--users" => opts.users = number("--users"),
            "--clients" => opts.clients = number("--clients"),
            "--logons-per-client" => opts.logons_per_client = number("--logons-per-client"),
            "--rounds" => opts.rounds = number("--rounds"),
            "--new-connection-per-logon" => opts.keep_alive = false,
            "--pages" => opts.pages = number("--pages"),
            "--page-size" => opts.page_size = number("--page-size"),
            "--page-clients" => opts.page_clients = number("--page-clients"),
            "--ceiling-seconds" => {
                opts.ceiling = Duration::from_secs(number("--ceiling-seconds") as u64)
            }
            "--out" => opts.out = PathBuf::from(value("--out")),
            "--command" => opts.command = value("--command"),
            "--rss-limit-mib" => opts.rss_limit_kib = 1024 * number("--rss-limit-mib") as u64,
            "--idle-wait-seconds" => {
                opts.idle_wait = Duration::from_secs(number("--idle-wait-seconds") as u64)
            }
            "-h" | "--help" => {
                println!("{usage}");
                std::process::exit(0);
            }
            other => panic!("unknown argument {other:?}; {usage}"),
        }
    }
    assert!(
        [
            opts.users,
            opts.clients,
            opts.logons_per_client,
            opts.rounds,
            opts.pages,
            opts.page_size,
            opts.page_clients
        ]
        .iter()
        .all(|&n| n > 0)
            && !opts.ceiling.is_zero(),
        "counts must be positive"
    );
    assert!(
        opts.rounds * opts.clients * opts.logons_per_client + SINGLE_LOGONS <= opts.users,
        "every logon is a different user: --users must be at least rounds × clients × logons per client + {SINGLE_LOGONS}"
    );
    assert!(
        opts.page_size <= 1000,
        "the API's pages hold at most 1,000 users"
    );
    opts
}

/// One request's outcome, without its body.
#[derive(Debug, Clone, Copy)]
struct Sample {
    status: u16,
    /// The answer was what the request should get (a session token; a page of the expected users).
    ok: bool,
    latency: Duration,
}

/// CPU time used while a phase ran.
#[derive(Debug, Clone, Copy)]
struct Cpu {
    server: Duration,
    slapd: Duration,
    /// This tool (the clients).
    client: Duration,
    /// The whole machine: the above and anything else running on it.
    machine: Busy,
}

impl Cpu {
    /// Everything else on the machine (other users' builds, the kernel's own threads).
    fn others(&self) -> Duration {
        self.machine
            .cpu
            .saturating_sub(self.server + self.slapd + self.client)
    }
}

struct CpuMeter {
    server_pid: u32,
    slapd_pid: u32,
    server: Duration,
    slapd: Duration,
    client: Duration,
    machine: roster_bench::machine::BusyMeter,
}

impl CpuMeter {
    fn start(server_pid: u32, slapd_pid: u32) -> CpuMeter {
        CpuMeter {
            server_pid,
            slapd_pid,
            server: process_cpu(server_pid),
            slapd: process_cpu(slapd_pid),
            client: process_cpu(std::process::id()),
            machine: Busy::start(),
        }
    }

    fn stop(&self) -> Cpu {
        Cpu {
            machine: self.machine.stop(),
            server: process_cpu(self.server_pid).saturating_sub(self.server),
            slapd: process_cpu(self.slapd_pid).saturating_sub(self.slapd),
            client: process_cpu(std::process::id()).saturating_sub(self.client),
        }
    }
}

/// A measured phase: requests from several clients at once.
#[derive(Debug)]
struct Phase {
    clients: usize,
    wall: Duration,
    samples: Vec<Sample>,
    cpu: Cpu,
    /// HTTP connections the clients opened.
    connections: usize,
}

impl Phase {
    /// Phases one after the other as one: their samples, their walls and CPU times added up.
    fn merge(phases: &[Phase]) -> Phase {
        let add = |f: fn(&Cpu) -> Duration| phases.iter().map(|p| f(&p.cpu)).sum::<Duration>();
        Phase {
            clients: phases.first().map_or(0, |p| p.clients),
            wall: phases.iter().map(|p| p.wall).sum(),
            samples: phases.iter().flat_map(|p| p.samples.clone()).collect(),
            cpu: Cpu {
                server: add(|c| c.server),
                slapd: add(|c| c.slapd),
                client: add(|c| c.client),
                machine: Busy {
                    cpu: add(|c| c.machine.cpu),
                    wall: add(|c| c.machine.wall),
                },
            },
            connections: phases.iter().map(|p| p.connections).sum(),
        }
    }

    fn errors(&self) -> usize {
        self.samples.iter().filter(|s| !s.ok).count()
    }

    fn per_second(&self) -> f64 {
        self.samples.iter().filter(|s| s.ok).count() as f64 / self.wall.as_secs_f64()
    }

    fn latencies(&self) -> Vec<Duration> {
        let mut l: Vec<Duration> = self.samples.iter().map(|s| s.latency).collect();
        l.sort();
        l
    }

    fn p(&self, p: f64) -> Duration {
        percentile(&self.latencies(), p)
    }

    fn statuses(&self) -> String {
        let mut text = statuses(self.samples.iter().map(|s| s.status));
        let wrong = self
            .samples
            .iter()
            .filter(|s| s.status_ok_but_wrong())
            .count();
        if wrong > 0 {
            write!(text, " ({wrong} of them with an unexpected body)").unwrap();
        }
        text
    }
}

impl Sample {
    fn status_ok_but_wrong(&self) -> bool {
        !self.ok && (self.status == 200 || self.status == 201)
    }
}

/// `clients` threads, each with a connection of its own, started together; client `c` makes the
/// requests `c`, `c + clients`, `c + 2 × clients`, … of `requests`, one after the other.
fn run_clients(
    port: u16,
    keep_alive: bool,
    clients: usize,
    requests: usize,
    meter: impl Fn() -> CpuMeter,
    request: impl Fn(&mut Connection, usize) -> Sample + Send + Sync + 'static,
) -> Phase {
    let request = Arc::new(request);
    let start = Arc::new(Barrier::new(clients + 1));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (start, request) = (start.clone(), request.clone());
            std::thread::spawn(move || {
                let mut connection = Connection::new(port, keep_alive);
                start.wait();
                let samples: Vec<Sample> = (c..requests)
                    .step_by(clients)
                    .map(|i| request(&mut connection, i))
                    .collect();
                (samples, connection.opened)
            })
        })
        .collect();
    let cpu = meter();
    start.wait();
    let started = Instant::now();
    let mut samples = Vec::with_capacity(requests);
    let mut connections = 0;
    for t in threads {
        let (s, opened) = t.join().unwrap();
        samples.extend(s);
        connections += opened;
    }
    let wall = started.elapsed();
    Phase {
        clients,
        wall,
        samples,
        cpu: cpu.stop(),
        connections,
    }
}

/// A directory user's logon with their correct password: 201 with a session token.
fn directory_logon(connection: &mut Connection, user: usize) -> Sample {
    let uid = serve::uid(user);
    let a = connection.post_json(
        "/api/v1/sessions",
        &logon_body(&uid, &serve::directory_password(&uid)),
        None,
    );
    Sample {
        status: a.status,
        ok: a.status == 201 && session_token(&a).is_some(),
        latency: a.latency,
    }
}

fn session_token(a: &Answer) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(&a.body).ok()?;
    v.get("token")?.as_str().map(str::to_owned)
}

/// `GET /api/v1/users` at an offset: 200 with the expected number of users and the total.
fn users_page(
    connection: &mut Connection,
    token: &str,
    offset: usize,
    page_size: usize,
    total: usize,
) -> Sample {
    let a = connection.get(
        &format!("/api/v1/users?offset={offset}&limit={page_size}"),
        Some(token),
    );
    let ok = a.status == 200
        && serde_json::from_slice::<serde_json::Value>(&a.body).is_ok_and(|v| {
            v["total"].as_u64() == Some(total as u64)
                && v["items"].as_array().map(Vec::len) == Some(page_size.min(total - offset))
        });
    Sample {
        status: a.status,
        ok,
        latency: a.latency,
    }
}

struct Results {
    /// Before each measurement: what it waited for, the machine's busy share found, the time waited.
    idle: Vec<(String, f64, Duration)>,
    single: Vec<Duration>,
    /// The Argon2id ceiling before the first round, between rounds and after the last (`rounds + 1`).
    ceilings: Vec<Argon2Rate>,
    rounds: Vec<Phase>,
    rss_after_logons_kib: u64,
    peak_after_logons_kib: u64,
    pages: Vec<Phase>,
    peak_kib: u64,
    rss_end_kib: u64,
    killed: bool,
    total_users: usize,
    sync_wall: Duration,
}

fn main() {
    let opts = parse_opts();
    assert!(
        opts.roster.is_file(),
        "{} not found: build it with `cargo build --release -p roster` (bench/load.sh does)",
        opts.roster.display()
    );
    let cores = cores();
    let load_before = load_average();
    eprintln!(
        "load: {} directory users; {} rounds of {} clients × {} logons; {} pages of {} from 1 and {} clients; {cores} cores, load average {load_before}",
        opts.users,
        opts.rounds,
        opts.clients,
        opts.logons_per_client,
        opts.pages,
        opts.page_size,
        opts.page_clients
    );
    let work = tempfile::Builder::new()
        .prefix("load-")
        .tempdir()
        .expect("a temporary directory");
    let started = Instant::now();
    let (slapd, roster) = serve::directory_and_data(&opts.roster, opts.users, work.path());
    let sync_wall = started.elapsed();
    let slapd_pid = serve::slapd_pid(&slapd);
    eprintln!(
        "load: slapd at {} with {} users, synchronized in {:.1} s",
        slapd.ldap_url(),
        opts.users,
        sync_wall.as_secs_f64()
    );

    let busy = Busy::start();
    let results = measure(&opts, &roster, work.path(), slapd_pid, sync_wall);
    let busy = busy.stop();
    let load_after = load_average();

    let text = report(&opts, &results, cores);
    println!("{text}");
    let markdown = format!(
        "# Load: directory logons and users pages ({})\n\n`{}`\n\n- machine: {}\n- revision: {}; binary {} ({})\n- load average before: {load_before}; after: {load_after}; CPU busy from the server's start to its end: {:.1} CPU-seconds in {:.1} s ({:.0} % of {cores} CPUs)\n- directory: {} users in a throwaway slapd, synchronized into a new SQLite data directory in {:.1} s (not measured)\n\n{text}\n",
        output_line(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
        opts.command,
        describe(),
        revision(),
        opts.roster.display(),
        roster.version(),
        busy.cpu.as_secs_f64(),
        busy.wall.as_secs_f64(),
        100.0 * busy.share(),
        opts.users,
        results.sync_wall.as_secs_f64(),
    );
    if let Some(parent) = opts.out.parent() {
        fs::create_dir_all(parent).expect("creating the results directory");
    }
    fs::write(&opts.out, markdown).expect("writing the results");
    eprintln!("load: wrote {}", opts.out.display());
    drop(slapd);
}

fn measure(
    opts: &Opts,
    roster: &serve::Roster,
    work: &Path,
    slapd_pid: u32,
    sync_wall: Duration,
) -> Results {
    let cores = cores();
    let server = Server::start(roster, &work.join("serve.log"), opts.rss_limit_kib);
    let port = server.port;
    let meter = || CpuMeter::start(server.pid, slapd_pid);

    // One logon alone, the last users' (the load's are the first).
    let mut single: Vec<Duration> = (0..SINGLE_LOGONS)
        .map(|i| {
            let s = directory_logon(&mut Connection::new(port, true), opts.users - i);
            assert!(s.ok, "logon {i} alone failed: status {}", s.status);
            s.latency
        })
        .collect();
    single.sort();
    eprintln!(
        "load: one logon alone: median {:.1} ms of {SINGLE_LOGONS}",
        ms(single[SINGLE_LOGONS / 2])
    );

    let mut idle = Vec::new();
    let mut wait_idle = |before: &str| {
        let started = Instant::now();
        let share = wait_until_idle(IDLE_SHARE, IDLE_WINDOW, opts.idle_wait);
        eprintln!(
            "load: {before}: the machine {:.0} % busy over {} s (waited {:.0} s)",
            100.0 * share,
            IDLE_WINDOW.as_secs(),
            started.elapsed().as_secs_f64()
        );
        idle.push((before.to_owned(), share, started.elapsed()));
    };
    // The ceiling before, between and after the rounds of logons, each round between two: the machine's
    // speed drifts (a shared host), so a round is compared with the ceiling measured next to it.
    wait_idle("before the first ceiling and the logons");
    let ceiling = |when: &str| {
        let c = argon2_rate(cores, opts.ceiling);
        eprintln!(
            "load: Argon2id ceiling {when}: {:.1} verifications/s on {cores} threads ({:.1} ms of CPU each, {:.0} % of the CPUs)",
            c.per_second,
            ms(c.cpu_each),
            100.0 * c.cpu_share
        );
        c
    };
    let mut ceilings = vec![ceiling("before round 1")];
    let mut rounds = Vec::new();
    let per_round = opts.clients * opts.logons_per_client;
    for round in 0..opts.rounds {
        let first_user = 1 + round * per_round;
        let phase = run_clients(
            port,
            opts.keep_alive,
            opts.clients,
            per_round,
            meter,
            move |connection, i| directory_logon(connection, first_user + i),
        );
        eprintln!(
            "load: round {}: {per_round} logons from {} clients: {} in {:.2} s, {:.1} logons/s, p50 {:.0} ms, p99 {:.0} ms; others used {:.0} % of the CPUs",
            round + 1,
            opts.clients,
            phase.statuses(),
            phase.wall.as_secs_f64(),
            phase.per_second(),
            ms(phase.p(50.0)),
            ms(phase.p(99.0)),
            100.0 * phase.cpu.others().as_secs_f64() / (phase.wall.as_secs_f64() * cores as f64),
        );
        rounds.push(phase);
        ceilings.push(ceiling(&format!("after round {}", round + 1)));
    }
    let (rss_after_logons_kib, peak_after_logons_kib) = (server.rss_kib(), server.peak_kib());

    let admin = Connection::new(port, false).post_json(
        "/api/v1/sessions",
        &logon_body("admin", ADMIN_PASSWORD),
        None,
    );
    let token = Arc::new(session_token(&admin).unwrap_or_else(|| {
        panic!(
            "the administrator's logon: {} {}",
            admin.status,
            admin.body_text()
        )
    }));
    let first = Connection::new(port, false).get("/api/v1/users?limit=1", Some(&token));
    let total_users = serde_json::from_slice::<serde_json::Value>(&first.body)
        .ok()
        .and_then(|v| v["total"].as_u64())
        .unwrap_or_else(|| panic!("GET /api/v1/users: {} {}", first.status, first.body_text()))
        as usize;
    assert!(
        total_users > opts.users,
        "{total_users} users in the server, {} expected",
        opts.users + 1
    );
    let mut pages = Vec::new();
    for clients in [1, opts.page_clients] {
        wait_idle(&format!("before the pages from {clients} client(s)"));
        let (token, page_size) = (token.clone(), opts.page_size);
        let phase = run_clients(port, true, clients, opts.pages, meter, move |c, k| {
            let offset = (k * page_size) % total_users;
            users_page(c, &token, offset, page_size, total_users)
        });
        eprintln!(
            "load: {} users pages from {clients} clients: {} in {:.2} s, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            opts.pages,
            phase.statuses(),
            phase.wall.as_secs_f64(),
            ms(phase.p(50.0)),
            ms(phase.p(99.0)),
            ms(phase.p(100.0)),
        );
        pages.push(phase);
    }
    let (peak_kib, rss_end_kib, killed) =
        (server.peak_kib(), server.rss_kib(), server.over_limit());
    drop(server);
    Results {
        idle,
        single,
        ceilings,
        rounds,
        rss_after_logons_kib,
        peak_after_logons_kib,
        pages,
        peak_kib,
        rss_end_kib,
        killed,
        total_users,
        sync_wall,
    }
}

fn met(yes: bool) -> &'static str {
    if yes { "**met**" } else { "**not met**" }
}

fn cpu_row(out: &mut String, what: &str, cpu: Duration, per: usize, wall: Duration) {
    writeln!(
        out,
        "| {what} | {:.2} | {:.2} | {:.0} % |",
        cpu.as_secs_f64(),
        ms(cpu) / per as f64,
        100.0 * cpu.as_secs_f64() / (wall.as_secs_f64() * cores() as f64)
    )
    .unwrap();
}

fn report(opts: &Opts, r: &Results, cores: usize) -> String {
    let mut out = String::new();
    let l = Phase::merge(&r.rounds);
    let logons = l.samples.len();
    let mean_ceiling =
        r.ceilings.iter().map(|c| c.per_second).sum::<f64>() / r.ceilings.len() as f64;
    let highest_ceiling = r.ceilings.iter().map(|c| c.per_second).fold(0.0, f64::max);
    let share = l.per_second() / mean_ceiling;
    writeln!(
        out,
        "## Directory logons\n\n{} rounds; in each, {} clients at once log on {} times each, one logon after the other, each logon a different directory user with the correct password (`POST /api/v1/sessions`: an LDAP search and bind, one dummy Argon2id verification, a session and an audit line), {}: {logons} logons. The Argon2id ceiling is {cores} threads of the benchmark computing Argon2id with Roster's parameters (m = 19,456 KiB, t = 2, p = 1) for {} s while the server is idle, before the first round, between rounds and after the last; each round is compared with the mean of the two ceilings next to it, all rounds with the mean of all ceilings.\n",
        r.rounds.len(),
        opts.clients,
        opts.logons_per_client,
        if opts.keep_alive {
            "each client on its own HTTP connection kept alive between its logons"
        } else {
            "each logon on a new HTTP connection"
        },
        opts.ceiling.as_secs()
    )
    .unwrap();
    writeln!(
        out,
        "| round | logons | answers | wall (s) | logons/s | ceiling before, after (verifications/s) | × ceiling | p50 (ms) | p99 (ms) | max (ms) | others' share of the CPUs |"
    )
    .unwrap();
    writeln!(
        out,
        "|:---|---:|:---|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    .unwrap();
    let row = |out: &mut String, name: &str, p: &Phase, ceilings: String, ceiling: f64| {
        writeln!(
            out,
            "| {name} | {} | {} | {:.2} | {:.1} | {ceilings} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} % |",
            p.samples.len(),
            p.statuses(),
            p.wall.as_secs_f64(),
            p.per_second(),
            p.per_second() / ceiling,
            ms(p.p(50.0)),
            ms(p.p(99.0)),
            ms(p.p(100.0)),
            100.0 * p.cpu.others().as_secs_f64() / (p.wall.as_secs_f64() * cores as f64),
        )
        .unwrap();
    };
    for (i, p) in r.rounds.iter().enumerate() {
        let (before, after) = (r.ceilings[i].per_second, r.ceilings[i + 1].per_second);
        row(
            &mut out,
            &(i + 1).to_string(),
            p,
            format!("{before:.1}, {after:.1}"),
            (before + after) / 2.0,
        );
    }
    row(
        &mut out,
        "**all**",
        &l,
        format!("mean {mean_ceiling:.1}"),
        mean_ceiling,
    );
    let mut ratios: Vec<f64> = r
        .rounds
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.per_second() / ((r.ceilings[i].per_second + r.ceilings[i + 1].per_second) / 2.0)
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    writeln!(
        out,
        "\n- The rounds against the ceilings next to them: {:.2} to {:.2}, median {:.2}.",
        ratios.first().copied().unwrap_or_default(),
        ratios.last().copied().unwrap_or_default(),
        ratios[ratios.len() / 2],
    )
    .unwrap();
    writeln!(
        out,
        "- Argon2id ceilings (verifications/s; CPU time of one; the threads' share of the CPUs): {}. Against the highest, all rounds ran at {:.2} × the ceiling.",
        r.ceilings
            .iter()
            .map(|c| format!(
                "{:.1} ({:.1} ms, {:.0} %)",
                c.per_second,
                ms(c.cpu_each),
                100.0 * c.cpu_share
            ))
            .collect::<Vec<_>>()
            .join(", "),
        l.per_second() / highest_ceiling,
    )
    .unwrap();
    writeln!(
        out,
        "- One logon alone (median of {SINGLE_LOGONS}, one after the other, before the load): {:.1} ms; fastest {:.1} ms, slowest {:.1} ms.\n- HTTP connections the clients opened: {}. The server's RSS after the logons: {:.1} MiB, its peak until then {:.1} MiB.\n",
        ms(r.single[SINGLE_LOGONS / 2]),
        ms(r.single[0]),
        ms(r.single[SINGLE_LOGONS - 1]),
        l.connections,
        mib(r.rss_after_logons_kib),
        mib(r.peak_after_logons_kib),
    )
    .unwrap();
    writeln!(
        out,
        "CPU time while the logons ran ({:.2} s in all, {cores} CPUs = {:.2} CPU-seconds):\n",
        l.wall.as_secs_f64(),
        l.wall.as_secs_f64() * cores as f64
    )
    .unwrap();
    writeln!(
        out,
        "| process | CPU (s) | per logon (ms) | share of the CPUs |"
    )
    .unwrap();
    writeln!(out, "|:---|---:|---:|---:|").unwrap();
    let c = &l.cpu;
    cpu_row(&mut out, "roster serve", c.server, logons, l.wall);
    cpu_row(&mut out, "slapd", c.slapd, logons, l.wall);
    cpu_row(
        &mut out,
        "the benchmark's clients",
        c.client,
        logons,
        l.wall,
    );
    cpu_row(&mut out, "everything else", c.others(), logons, l.wall);
    cpu_row(&mut out, "the machine", c.machine.cpu, logons, l.wall);
    cpu_row(
        &mut out,
        "idle",
        (l.wall * cores as u32).saturating_sub(c.machine.cpu),
        logons,
        l.wall,
    );
    let argon2 = r.ceilings.iter().map(|c| c.cpu_each).sum::<Duration>() / r.ceilings.len() as u32;
    let ours = c.server + c.slapd + c.client;
    writeln!(
        out,
        "\nOf the server's {:.2} ms of CPU per logon, one Argon2id computation is about {:.2} ms (the ceilings' mean); the other {:.2} ms are HTTP, the database, the LDAP search and bind, and the rest of the logon. With slapd's and the clients', a logon costs {:.2} ms of CPU: Argon2id is {:.2} of it, which is what the logons would reach of the ceiling with every CPU busy and nothing else running.",
        ms(c.server) / logons as f64,
        ms(argon2),
        (ms(c.server) / logons as f64 - ms(argon2)).max(0.0),
        ms(ours) / logons as f64,
        ms(argon2) * logons as f64 / ms(ours),
    )
    .unwrap();
    let mut busy: Vec<Duration> = l
        .samples
        .iter()
        .filter(|s| s.status == 503)
        .map(|s| s.latency)
        .collect();
    if !busy.is_empty() {
        busy.sort();
        writeln!(
            out,
            "\n{} logons were answered 503 (too many password checks waiting), after {:.0} ms at the median and {:.0} ms at most: a 503 within about a second is the password pool's answer at once (the queue ahead, at the recent time of a computation, would take longer than its 5 s wait), one after about 5 s its answer after waiting.",
            busy.len(),
            ms(percentile(&busy, 50.0)),
            ms(percentile(&busy, 100.0)),
        )
        .unwrap();
    }
    writeln!(
        out,
        "\n## Users pages\n\n{} `GET /api/v1/users?offset=…&limit={}` pages (the console's page size), walking the list of {} users from the start; the clients take every n-th page, each on its own HTTP connection kept alive, all as the administrator.\n",
        opts.pages, opts.page_size, r.total_users
    )
    .unwrap();
    writeln!(
        out,
        "| clients at once | pages | answers | errors | wall (s) | pages/s | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) | server CPU per page (ms) | others' share of the CPUs |"
    )
    .unwrap();
    writeln!(
        out,
        "|---:|---:|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    )
    .unwrap();
    for p in &r.pages {
        writeln!(
            out,
            "| {} | {} | {} | {} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} | {:.0} % |",
            p.clients,
            p.samples.len(),
            p.statuses(),
            p.errors(),
            p.wall.as_secs_f64(),
            p.per_second(),
            ms(p.p(50.0)),
            ms(p.p(90.0)),
            ms(p.p(99.0)),
            ms(p.p(100.0)),
            ms(p.cpu.server) / p.samples.len() as f64,
            100.0 * p.cpu.others().as_secs_f64() / (p.wall.as_secs_f64() * cores as f64),
        )
        .unwrap();
    }
    writeln!(
        out,
        "\nThe server's peak RSS over its whole life: {:.1} MiB{}; RSS at the end: {:.1} MiB.\n",
        mib(r.peak_kib),
        if r.killed {
            format!(" (killed at the {} MiB limit)", opts.rss_limit_kib / 1024)
        } else {
            String::new()
        },
        mib(r.rss_end_kib)
    )
    .unwrap();
    let errors = l.errors() + r.pages.iter().map(Phase::errors).sum::<usize>();
    let worst_p99 = r.pages.iter().map(|p| p.p(99.0)).max().unwrap_or_default();
    writeln!(
        out,
        "Before each measurement the tool waited for a {}-second window with the machine's CPUs under {:.0} % busy (everything else: the server and slapd were idle): {}.\n",
        IDLE_WINDOW.as_secs(),
        100.0 * IDLE_SHARE,
        r.idle
            .iter()
            .map(|(what, share, waited)| format!(
                "{what}, {:.0} % after {:.0} s",
                100.0 * share,
                waited.as_secs_f64()
            ))
            .collect::<Vec<_>>()
            .join("; ")
    )
    .unwrap();
    writeln!(out, "## Targets (issue 27)\n").unwrap();
    writeln!(
        out,
        "- No errors: {errors} ({} of {logons} logons, {} of {} pages): {}",
        l.errors(),
        r.pages.iter().map(Phase::errors).sum::<usize>(),
        r.pages.iter().map(|p| p.samples.len()).sum::<usize>(),
        met(errors == 0)
    )
    .unwrap();
    writeln!(
        out,
        "- Logons a second ≥ {:.0} % of the Argon2id ceiling: {:.1} of {mean_ceiling:.1} (all rounds; the mean ceiling) = {:.0} %: {}",
        100.0 * TARGET_CEILING_SHARE,
        l.per_second(),
        100.0 * share,
        met(share >= TARGET_CEILING_SHARE)
    )
    .unwrap();
    writeln!(
        out,
        "- Users page p99 ≤ {} ms: {:.1} ms at worst ({}): {}",
        TARGET_PAGE_P99.as_millis(),
        ms(worst_p99),
        r.pages
            .iter()
            .map(|p| format!("{:.1} ms from {} client(s)", ms(p.p(99.0)), p.clients))
            .collect::<Vec<_>>()
            .join(", "),
        met(worst_p99 <= TARGET_PAGE_P99)
    )
    .unwrap();
    out
}
