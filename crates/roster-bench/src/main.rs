//! `roster-bench`: the LDAP synchronization benchmark behind `bench/ldap-sync.sh`.
//!
//! It loads N generated `inetOrgPerson` users into a throwaway slapd (roster-testkit, mdb, `slapadd`),
//! then measures, round-robin so that any drift in the machine's load hits every measurement alike:
//!
//! * **baseline**: `ldapsearch` reading the same entries and attributes with the paged-results control,
//!   output to /dev/null;
//! * **preview**: `roster sync --preview --json` on a data directory that has only the settings;
//! * **full sync**: `roster sync --json` into an empty store;
//! * **re-sync**: `roster sync --json` again on that store, nothing changed in the directory.
//!
//! The store is SQLite in the data directory, or with `--database postgres` (issue 26, item 6) a database
//! of its own for each data directory in a throwaway PostgreSQL cluster that runs with PostgreSQL's
//! default durability (fsync, synchronous commit and full-page writes on, as an installation runs it);
//! the cluster's CPU time (the server and its backends) is measured beside slapd's. The store's size
//! after each step is reported too (the database's growth with N).
//!
//! Each measured command is a child process reaped with `wait4`, which gives its peak resident set size
//! (`ru_maxrss`) and CPU time; slapd's CPU time during the command comes from `/proc/<pid>/stat`. The
//! Argon2id hash of the first start (`roster directory set`) is timed separately and not counted.
//!
//! Usage: `roster-bench [N] [--directory ldap|ad] [--database sqlite|postgres] [--proxy-addresses K]
//! [--reps R] [--roster PATH] [--out FILE] [--command TEXT] [--hold]` (`--hold` keeps the server running after the measurements and
//! prints how to reach it, for profiling).
//!
//! `--directory ad` (behind `bench/ad-sync.sh`, issue 21) measures the same against a real Samba AD DC
//! instead of slapd; see the `ad` module.

// A measurement tool, not product code: anything unexpected (a failed command, a wrong count) must stop
// the run loudly rather than produce figures that look fine. Hence unwrap/expect/panic and indexing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{self, BufRead as _};
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use roster_bench::machine::{load_average, machine_busy, process_cpu, process_tree_cpu};
use roster_testkit::{Durability, Slapd, SlapdConfig, TestPostgres, TestUser, user_ldif};

mod ad;
mod incremental;

const SUFFIX: &str = "dc=example,dc=com";
const SERVICE_DN: &str = "cn=roster,ou=Services,dc=example,dc=com";
const SERVICE_PASSWORD: &str = "bench-service-secret";
const ADMIN_PASSWORD: &str = "bench-admin-password";
const FILTER: &str = "(&(objectClass=inetOrgPerson)(mail=*))";
/// What Roster asks for with the settings below: the user name, the full name, the email attribute and
/// the stable id (entryUUID).
const ATTRIBUTES: [&str; 4] = ["uid", "displayName", "mail", "entryUUID"];
const PAGE_SIZE: u32 = 1000;
/// The LDAP mode's default N; Active Directory's is smaller (Samba adds ~150 users/s).
const LDAP_DEFAULT_N: usize = 100_000;
const AD_DEFAULT_N: usize = 20_000;

const FIRST_NAMES: [&str; 16] = [
    "Anna", "Ben", "Chloé", "David", "Eva", "Finn", "Greta", "Hugo", "Ida", "Jürgen", "Karin",
    "Lars", "Mia", "Noah", "Olga", "Paul",
];
const LAST_NAMES: [&str; 17] = [
    "Müller", "Schmidt", "Smith", "Jones", "García", "Nowak", "Rossi", "Dubois", "Kowalski",
    "Larsen", "Novák", "Silva", "Tanaka", "Wang", "Kim", "Brown", "Öztürk",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Baseline,
    Preview,
    FullSync,
    Resync,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Baseline, Kind::Preview, Kind::FullSync, Kind::Resync];

    fn label(self) -> &'static str {
        match self {
            Kind::Baseline => "baseline: ldapsearch, paged",
            Kind::Preview => "roster sync --preview",
            Kind::FullSync => "roster sync, empty store",
            Kind::Resync => "roster sync, nothing changed",
        }
    }
}

/// One measured child process.
#[derive(Debug, Clone, Copy)]
struct Sample {
    wall: Duration,
    /// Peak resident set size of the child, in KiB (`ru_maxrss` on Linux).
    max_rss_kib: u64,
    /// User + system CPU time of the child.
    cpu: Duration,
    /// The directory server's (slapd's, samba's) user + system CPU time while the child ran.
    slapd_cpu: Duration,
    /// PostgreSQL's (the server's and its backends') user + system CPU time while the child ran; zero on
    /// SQLite.
    db_cpu: Duration,
    /// For Roster: the run's own duration as recorded in the store (finished_at - started_at), i.e.
    /// read + snapshot + plan + apply + recording the report, without process start, opening the store
    /// and printing the report.
    recorded: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Directory {
    Ldap,
    Ad,
}

/// Where Roster stores its users.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Database {
    Sqlite,
    Postgres,
}

#[derive(Debug)]
struct Opts {
    directory: Directory,
    database: Database,
    /// Active Directory only: every user with this many `proxyAddresses`; `None`: every second with two.
    proxy_addresses: Option<usize>,
    n: usize,
    reps: usize,
    roster: PathBuf,
    out: PathBuf,
    command: String,
    hold: bool,
    /// `--incremental`: issue 26's incremental measurement instead of the usual four (`incremental.rs`).
    incremental: bool,
    /// `--wide`: issue 26's second data shape: two `mail` values for every user (not every second one),
    /// read from the directory's root DN (not `ou=People`).
    wide: bool,
}

fn parse_opts() -> Opts {
    let mut n: Option<usize> = None;
    let mut reps = 3;
    let mut roster = roster_bench::workspace_root().join("target/release/roster");
    let mut out: Option<PathBuf> = None;
    let mut command: Option<String> = None;
    let mut hold = false;
    let mut incremental = false;
    let mut wide = false;
    let mut directory = Directory::Ldap;
    let mut database = Database::Sqlite;
    let mut proxy_addresses: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        match arg.as_str() {
            "--reps" => reps = value("--reps").parse().expect("--reps: a number"),
            "--roster" => roster = PathBuf::from(value("--roster")),
            "--out" => out = Some(PathBuf::from(value("--out"))),
            "--command" => command = Some(value("--command")),
            "--hold" => hold = true,
            "--incremental" => incremental = true,
            "--wide" => wide = true,
            "--directory" => {
                directory = match value("--directory").as_str() {
                    "ldap" => Directory::Ldap,
                    "ad" | "active-directory" => Directory::Ad,
                    other => panic!("--directory: ldap or ad, not {other:?}"),
                }
            }
            "--database" => {
                database = match value("--database").as_str() {
                    "sqlite" => Database::Sqlite,
                    "postgres" | "postgresql" => Database::Postgres,
                    other => panic!("--database: sqlite or postgres, not {other:?}"),
                }
            }
            "--proxy-addresses" => {
                proxy_addresses = Some(
                    value("--proxy-addresses")
                        .parse()
                        .expect("--proxy-addresses: a number"),
                );
            }
            "-h" | "--help" => {
                println!(
                    "usage: roster-bench [N] [--directory ldap|ad] [--database sqlite|postgres] [--proxy-addresses K (ad)] [--reps R] [--roster PATH] [--out FILE] [--command TEXT] [--hold] [--incremental] [--wide]"
                );
                std::process::exit(0);
            }
            other if n.is_none() && !other.starts_with('-') => {
                let digits: String = other.chars().filter(|c| *c != '_').collect();
                n = Some(digits.parse().expect("N: a number of users"));
            }
            other => panic!("unknown argument {other:?}; try --help"),
        }
    }
    assert!(
        proxy_addresses.is_none() || directory == Directory::Ad,
        "--proxy-addresses is for --directory ad"
    );
    let n = n.unwrap_or(match directory {
        Directory::Ldap => LDAP_DEFAULT_N,
        Directory::Ad => AD_DEFAULT_N,
    });
    assert!(n > 0 && reps > 0, "N and --reps must be positive");
    assert!(
        !(incremental || wide) || directory == Directory::Ldap,
        "--incremental and --wide are for --directory ldap"
    );
    assert!(
        database == Database::Sqlite || !incremental,
        "--database postgres is for the full and re-sync measurements, not --incremental"
    );
    let (name, mut shape) = match directory {
        Directory::Ldap => (
            "ldap-sync",
            format!(
                "{}{}",
                if incremental { "-incremental" } else { "" },
                if wide { "-wide" } else { "" }
            ),
        ),
        Directory::Ad => (
            "ad-sync",
            proxy_addresses.map_or(String::new(), |k| format!("-proxy{k}")),
        ),
    };
    if database == Database::Postgres {
        shape.push_str("-postgres");
    }
    Opts {
        directory,
        database,
        proxy_addresses,
        n,
        reps,
        out: out.unwrap_or_else(|| {
            roster_bench::workspace_root().join(format!("bench/results/{name}-{n}{shape}.md"))
        }),
        command: command.unwrap_or_else(|| {
            let k = proxy_addresses.map_or(String::new(), |k| format!(" --proxy-addresses {k}"));
            let i = if incremental { " --incremental" } else { "" };
            let w = if wide { " --wide" } else { "" };
            let d = if database == Database::Postgres {
                " --database postgres"
            } else {
                ""
            };
            format!("bench/{name}.sh {n}{k}{i}{w}{d}")
        }),
        roster,
        hold,
        incremental,
        wide,
    }
}

fn main() {
    let opts = parse_opts();
    assert!(
        opts.roster.is_file(),
        "{} not found: build it with `cargo build --release -p roster` (bench/ldap-sync.sh does)",
        opts.roster.display()
    );
    let load_before = load_average();
    eprintln!(
        "roster-bench: N = {}, {} repetitions, load average {load_before}",
        opts.n, opts.reps
    );

    let (mut source, slapd) = match opts.directory {
        Directory::Ldap => {
            let (source, slapd) = start_slapd(&opts);
            (source, Some(slapd))
        }
        Directory::Ad => (ad::start(&opts), None),
    };
    let postgres = (opts.database == Database::Postgres).then(|| {
        let started = Instant::now();
        let pg = TestPostgres::private_with(Durability::Default).expect("starting PostgreSQL");
        eprintln!(
            "roster-bench: PostgreSQL (initdb and start) in {:.1} s on port {}",
            started.elapsed().as_secs_f64(),
            pg.port()
        );
        pg
    });
    if postgres.is_some() {
        source.issue = "issue 26, item 6";
        source.full_sync_target = 3.0;
    }
    if opts.incremental {
        incremental::run(&opts, &source, slapd.as_ref().expect("slapd"));
        return;
    }

    let (_work, ctx) = context(&opts, &source, postgres.as_ref());

    // Warm-up, unmeasured: brings slapd's database into the page cache and checks that the service
    // account reads every entry with the attributes Roster needs.
    ctx.check_baseline_output();

    let mut samples: Vec<(Kind, Sample)> = Vec::new();
    let mut setups: Vec<Sample> = Vec::new();
    // The store's size in bytes after `directory set` (None) and after each measured kind.
    let mut sizes: Vec<(Option<Kind>, u64)> = Vec::new();
    let busy_before = machine_busy();
    let measuring = Instant::now();
    for round in 1..=opts.reps {
        for kind in Kind::ALL {
            let sample = match kind {
                Kind::Baseline => ctx.measure(&mut ctx.ldapsearch(), "baseline"),
                Kind::Preview => {
                    let (dir, setup) = ctx.prepared_data_dir();
                    setups.push(setup);
                    sizes.push((None, ctx.store_bytes(&dir)));
                    let mut s = ctx.measure(
                        &mut ctx.roster(dir.path(), &["sync", "--preview", "--json"]),
                        "preview",
                    );
                    s.recorded = Some(ctx.verify_last_run(dir.path(), kind));
                    sizes.push((Some(kind), ctx.store_bytes(&dir)));
                    s
                }
                // The re-sync runs on the full sync's store, so they are measured together.
                Kind::FullSync => continue,
                Kind::Resync => {
                    let (dir, setup) = ctx.prepared_data_dir();
                    setups.push(setup);
                    let mut full = ctx.measure(
                        &mut ctx.roster(dir.path(), &["sync", "--json"]),
                        "full sync",
                    );
                    full.recorded = Some(ctx.verify_last_run(dir.path(), Kind::FullSync));
                    sizes.push((Some(Kind::FullSync), ctx.store_bytes(&dir)));
                    report_sample(round, Kind::FullSync, &full);
                    samples.push((Kind::FullSync, full));
                    let mut s =
                        ctx.measure(&mut ctx.roster(dir.path(), &["sync", "--json"]), "re-sync");
                    s.recorded = Some(ctx.verify_last_run(dir.path(), kind));
                    sizes.push((Some(kind), ctx.store_bytes(&dir)));
                    s
                }
            };
            report_sample(round, kind, &sample);
            samples.push((kind, sample));
        }
    }
    let load_after = load_average();
    let contention = {
        let busy = machine_busy().saturating_sub(busy_before).as_secs_f64();
        let ours: f64 = samples
            .iter()
            .map(|(_, s)| s)
            .chain(&setups)
            .map(|s| (s.cpu + s.slapd_cpu + s.db_cpu).as_secs_f64())
            .sum();
        let wall = measuring.elapsed().as_secs_f64();
        let cpus = std::thread::available_parallelism().map_or(1, usize::from) as f64;
        let other = (busy - ours).max(0.0);
        format!(
            "{busy:.1} CPU-seconds busy in {wall:.1} s ({:.0} % of {cpus} CPUs); the measured commands and {}{}: {ours:.1}; everything else (this tool, the checks between runs, other work on the machine): {other:.1} ({:.0} % of one CPU)",
            100.0 * busy / (wall * cpus),
            source.server_name,
            if postgres.is_some() {
                " and PostgreSQL"
            } else {
                ""
            },
            100.0 * other / wall
        )
    };
    eprintln!("roster-bench: during the measurements: {contention}");

    // Unmeasured: where Roster's time goes, from one more run of each kind with SQL statement logging.
    let phases: Vec<(Kind, Option<Phases>)> = {
        let (preview_dir, _) = ctx.prepared_data_dir();
        let (sync_dir, _) = ctx.prepared_data_dir();
        vec![
            (
                Kind::Preview,
                ctx.phases(
                    preview_dir.path(),
                    &["sync", "--preview", "--json"],
                    Kind::Preview,
                ),
            ),
            (
                Kind::FullSync,
                ctx.phases(sync_dir.path(), &["sync", "--json"], Kind::FullSync),
            ),
            (
                Kind::Resync,
                ctx.phases(sync_dir.path(), &["sync", "--json"], Kind::Resync),
            ),
        ]
    };
    let phase_table = phase_table(&phases);

    let table = results_table(&samples, source.server_name, postgres.is_some());
    let size_table = size_table(&sizes, opts.n);
    let setup_median = median(setups.iter().map(|s| s.wall).collect());
    println!();
    println!(
        "{}, N = {} users, {} repetitions",
        source.title, opts.n, opts.reps
    );
    println!("{}", table.text);
    println!(
        "not counted above: `roster directory set` on a new data directory (creates the store, hashes the admin password with Argon2id): median {:.2} s",
        setup_median.as_secs_f64()
    );
    println!("load average before: {load_before}; after: {load_after}");
    println!();
    println!("The store's size (median over the repetitions):");
    println!("{}", size_table.text);
    println!(
        "Where Roster's time goes (seconds; one more run of each, with SQL statement logging):"
    );
    println!("{}", phase_table.text);

    let mut machine = Machine::probe(&opts.roster, load_before, load_after, contention);
    machine.postgres = postgres.as_ref().map(postgres_description);
    let markdown = markdown_report(
        &opts,
        &source,
        &machine,
        &Tables {
            results: table,
            sizes: size_table,
            phases: phase_table,
        },
        &phases,
        setup_median,
    );
    if let Some(parent) = opts.out.parent() {
        fs::create_dir_all(parent).expect("creating the results directory");
    }
    fs::write(&opts.out, markdown).expect("writing the results");
    eprintln!("roster-bench: wrote {}", opts.out.display());

    if opts.hold {
        eprintln!(
            "roster-bench: holding {} at {} (service account {} / {}, base {}, settings {}); press Enter to stop",
            source.server_name,
            source.url,
            source.bind_dn,
            source.password,
            source.base,
            ctx.settings.display()
        );
        let mut line = String::new();
        let _ = io::stdin().lock().read_line(&mut line);
    }
    drop(ctx);
    drop(postgres);
    drop(slapd);
}

/// The directory server under test and how it is read, by `ldapsearch` and by Roster.
struct Source {
    /// The server process' name in the tables ("slapd", "samba").
    server_name: &'static str,
    /// Its pid, for its CPU time.
    server_pid: u32,
    url: String,
    /// The base of the read.
    base: String,
    bind_dn: String,
    password: String,
    filter: &'static str,
    attributes: &'static [&'static str],
    /// StartTLS (`-ZZ`) trusting this CA certificate; `None`: plain LDAP.
    starttls_ca: Option<PathBuf>,
    settings_toml: String,
    /// LDIF prefixes every read entry must have once: the user name and the stable id.
    name_attribute: &'static str,
    id_attribute: &'static str,
    title: &'static str,
    /// Where the targets come from.
    issue: &'static str,
    /// The full sync's target, × baseline.
    full_sync_target: f64,
    /// Whether the 150 MB at 100,000 users target applies (issue 4's).
    memory_target: bool,
    /// The server's version, for the report.
    version: String,
    /// The report's first "What is measured" points: the directory, the read, the baseline.
    described: Vec<String>,
}

/// Loads the generated LDIF into a throwaway slapd and describes it.
fn start_slapd(opts: &Opts) -> (Source, Slapd) {
    let started = Instant::now();
    let ldif = directory_ldif(opts.n, opts.wide);
    eprintln!(
        "roster-bench: generated {:.1} MB of LDIF in {:.1} s",
        ldif.len() as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let slapd = Slapd::start(SlapdConfig {
        suffix: SUFFIX.to_owned(),
        base_ldif: Some(ldif),
        // The root DN ignores limits, so Roster reads as an ordinary service account, which needs its own
        // limits: slapd's default 500 entries would stop a paged read (size.prtotal defaults to the hard
        // limit). Unlimited paged reads for this account only, as an administrator would configure it.
        database_directives: Some(format!(
            "limits dn.exact=\"{SERVICE_DN}\" size.soft=unlimited size.hard=unlimited size.prtotal=unlimited time.soft=unlimited time.hard=unlimited"
        )),
        // Incremental reads: the content synchronization provider, with a session log long enough for
        // the changes between two runs, so that deletions come as such (the delete phase).
        syncprov: opts.incremental.then_some(roster_testkit::SyncProv {
            sessionlog: Some(incremental::SESSION_LOG),
        }),
        ..Default::default()
    })
    .expect("starting slapd");
    let load_secs = started.elapsed().as_secs_f64();
    let conf = fs::read_to_string(slapd.dir().join("slapd.conf")).expect("reading slapd.conf");
    assert!(
        conf.lines().any(|l| l.trim() == "index objectClass eq"),
        "slapd.conf has no objectClass index:\n{conf}"
    );
    let slapd_pid: u32 = fs::read_to_string(slapd.dir().join("slapd.pid"))
        .expect("reading slapd.pid")
        .trim()
        .parse()
        .expect("slapd.pid holds a pid");
    let url = slapd.ldap_url();
    let port: u16 = url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port in slapd's URL");
    eprintln!("roster-bench: slapd loaded with slapadd and started in {load_secs:.1} s at {url}");
    let source = Source {
        server_name: "slapd",
        server_pid: slapd_pid,
        url,
        base: if opts.wide {
            SUFFIX.to_owned()
        } else {
            slapd.people_dn()
        },
        bind_dn: SERVICE_DN.to_owned(),
        password: SERVICE_PASSWORD.to_owned(),
        filter: FILTER,
        attributes: &ATTRIBUTES,
        starttls_ca: None,
        settings_toml: if opts.incremental {
            incremental::settings_toml(port, opts.wide)
        } else {
            settings_toml(port, opts.wide)
        },
        name_attribute: "uid:",
        id_attribute: "entryUUID:",
        title: "LDAP synchronization benchmark",
        issue: "issue 4",
        full_sync_target: 1.5,
        memory_target: true,
        version: version_line(Command::new("/usr/sbin/slapd").arg("-VV"), "slapd"),
        described: vec![
            format!(
                "Directory: a throwaway OpenLDAP slapd (roster-testkit; mdb, `index objectClass eq`, `dbnosync`) \
                 on 127.0.0.1, loaded with `slapadd -q` (took {load_secs:.1} s including start) with {} \
                 `inetOrgPerson` users below `ou=People,{SUFFIX}` (uid, cn, sn, displayName, one `mail` value, a \
                 second one for {}; no userPassword). Read as the service account `{SERVICE_DN}` \
                 (not the root DN), which has `limits ... size.prtotal=unlimited` and unlimited soft/hard limits.",
                opts.n,
                if opts.wide {
                    "every user"
                } else {
                    "every other user"
                }
            ),
            format!(
                "Filter `{FILTER}`, attributes {}, paged-results control with page size {PAGE_SIZE}, plain LDAP.",
                ATTRIBUTES.map(|a| format!("`{a}`")).join(", ")
            ),
            format!(
                "baseline: `ldapsearch -x -LLL -H <url> -D <svc> -w <pw> -b {} -E pr={PAGE_SIZE}/noprompt '{FILTER}' {} > /dev/null`.",
                if opts.wide {
                    SUFFIX.to_owned()
                } else {
                    format!("ou=People,{SUFFIX}")
                },
                ATTRIBUTES.join(" ")
            ),
        ],
    };
    (source, slapd)
}

fn report_sample(round: usize, kind: Kind, s: &Sample) {
    eprintln!(
        "roster-bench: round {round}: {:<30} {:>7.2} s  {:>7.1} MiB  cpu {:>6.2} s  server cpu {:>6.2} s{}",
        kind.label(),
        s.wall.as_secs_f64(),
        mib(s.max_rss_kib),
        s.cpu.as_secs_f64(),
        s.slapd_cpu.as_secs_f64(),
        s.recorded
            .map(|r| format!("  (run recorded {:.2} s)", r.as_secs_f64()))
            .unwrap_or_default()
    );
}

/// A temporary directory holding the settings file, and the context that measures with them (the
/// directory goes when the first is dropped).
fn context<'a>(
    opts: &'a Opts,
    source: &'a Source,
    postgres: Option<&'a TestPostgres>,
) -> (tempfile::TempDir, Ctx<'a>) {
    let work = tempfile::Builder::new()
        .prefix("roster-bench-")
        .tempdir()
        .expect("a temporary directory");
    let settings = work.path().join("settings.toml");
    fs::write(&settings, &source.settings_toml).expect("writing settings.toml");
    let postmaster_pid = postgres.map(|pg| {
        // postmaster.pid: the server's pid on its first line.
        fs::read_to_string(pg.dir().join("data/postmaster.pid"))
            .expect("reading postmaster.pid")
            .lines()
            .next()
            .and_then(|l| l.trim().parse().ok())
            .expect("a pid in postmaster.pid")
    });
    let ctx = Ctx {
        opts,
        src: source,
        settings,
        work: work.path().to_owned(),
        postgres,
        postmaster_pid,
    };
    (work, ctx)
}

struct Ctx<'a> {
    opts: &'a Opts,
    src: &'a Source,
    settings: PathBuf,
    work: PathBuf,
    /// `--database postgres`: the cluster, and its server's pid (for its CPU time).
    postgres: Option<&'a TestPostgres>,
    postmaster_pid: Option<u32>,
}

/// A data directory for one measurement and, on PostgreSQL, its database, named after the directory
/// (so that [`Ctx::roster`] finds it from the path alone) and dropped with it.
struct DataDir<'a> {
    dir: tempfile::TempDir,
    postgres: Option<&'a TestPostgres>,
}

impl DataDir<'_> {
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for DataDir<'_> {
    fn drop(&mut self) {
        if let Some(pg) = self.postgres {
            // At a million users each database holds gigabytes: don't keep them until the end.
            let name = database_name(self.dir.path());
            if let Err(e) = pg.psql("postgres", &format!("DROP DATABASE \"{name}\"")) {
                eprintln!("roster-bench: warning: can't drop database {name}: {e}");
            }
        }
    }
}

/// The database of the data directory `dir` on PostgreSQL: the directory's own (unique) name, quoted.
fn database_name(dir: &Path) -> String {
    dir.file_name()
        .and_then(|n| n.to_str())
        .expect("a UTF-8 data directory name")
        .to_owned()
}

impl Ctx<'_> {
    fn ldapsearch(&self) -> Command {
        let src = self.src;
        let mut cmd = Command::new("ldapsearch");
        cmd.args(["-x", "-LLL"]);
        if let Some(ca) = &src.starttls_ca {
            // -ZZ: StartTLS, required to succeed, checking the server's certificate against the CA.
            // LDAPNOINIT would also drop the LDAPTLS_* variables ("all defaulting is disabled"), so the
            // user files are kept out by HOME and the working directory instead; the system ldap.conf is
            // read, but the variables override it (Debian's only sets TLS_CACERT).
            cmd.env_remove("LDAPNOINIT")
                .env("LDAPTLS_CACERT", ca)
                .env("LDAPTLS_REQCERT", "demand")
                .env("HOME", &self.work)
                .current_dir(&self.work)
                .arg("-ZZ");
        } else {
            // LDAPNOINIT: no ldap.conf or ~/.ldaprc (SIZELIMIT, for one) changes what is read.
            cmd.env("LDAPNOINIT", "1");
        }
        cmd.args(["-H", &src.url, "-D", &src.bind_dn, "-w", &src.password])
            .args([
                "-b",
                &src.base,
                "-E",
                &format!("pr={PAGE_SIZE}/noprompt"),
                src.filter,
            ])
            .args(src.attributes);
        cmd
    }

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
        // ROSTER_LOG passes through, for profiling runs (its output goes to the stderr file).
        cmd.env("ROSTER_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .arg("--data-dir")
            .arg(data_dir);
        if let Some(pg) = self.postgres {
            cmd.arg("--database-url")
                .arg(pg.url(&database_name(data_dir)));
        }
        cmd.args(args);
        cmd
    }

    /// The unmeasured first read: N entries (no more: Active Directory's users that the filter leaves out
    /// must not come back), each with a user name and a stable id.
    fn check_baseline_output(&self) {
        let started = Instant::now();
        let out = self.ldapsearch().output().expect("running ldapsearch");
        assert!(
            out.status.success(),
            "ldapsearch failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let count = |prefix: &str| text.lines().filter(|l| l.starts_with(prefix)).count();
        let (dns, uids, uuids) = (
            count("dn:"),
            count(self.src.name_attribute),
            count(self.src.id_attribute),
        );
        assert!(
            dns == self.opts.n && uids == self.opts.n && uuids == self.opts.n,
            "ldapsearch returned {dns} entries, {uids} {} and {uuids} {}; expected {} of each",
            self.src.name_attribute,
            self.src.id_attribute,
            self.opts.n
        );
        eprintln!(
            "roster-bench: warm-up read: {dns} entries (as expected), {} mail and {} proxyAddresses values, {:.1} MB of LDIF in {:.2} s",
            count("mail:"),
            count("proxyAddresses:"),
            out.stdout.len() as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
    }

    /// A new data directory with the directory settings stored, and the time that took (not counted: it
    /// creates the store and hashes the admin password).
    fn prepared_data_dir(&self) -> (DataDir<'_>, Sample) {
        let dir = DataDir {
            dir: tempfile::Builder::new()
                .prefix("data-")
                .tempdir_in(&self.work)
                .expect("a data directory"),
            postgres: self.postgres,
        };
        if let Some(pg) = self.postgres {
            pg.psql(
                "postgres",
                &format!("CREATE DATABASE \"{}\"", database_name(dir.path())),
            )
            .expect("creating the data directory's database");
        }
        let settings = self.settings.to_str().expect("a UTF-8 path").to_owned();
        let setup = self.measure(
            &mut self.roster(dir.path(), &["directory", "set", "--file", &settings]),
            "directory set",
        );
        (dir, setup)
    }

    /// The store's size in bytes: PostgreSQL's `pg_database_size`, or SQLite's files (the database, its
    /// write-ahead log and shared memory).
    fn store_bytes(&self, dir: &DataDir<'_>) -> u64 {
        match self.postgres {
            Some(pg) => pg
                .psql(
                    "postgres",
                    &format!("SELECT pg_database_size('{}')", database_name(dir.path())),
                )
                .expect("reading the database's size")
                .trim()
                .parse()
                .expect("a size in bytes"),
            None => ["roster.db", "roster.db-wal", "roster.db-shm"]
                .iter()
                .filter_map(|f| fs::metadata(dir.path().join(f)).ok())
                .map(|m| m.len())
                .sum(),
        }
    }

    /// PostgreSQL's CPU time so far: the server, its backends and the backends that have exited.
    fn db_cpu(&self) -> Duration {
        self.postmaster_pid.map_or(Duration::ZERO, process_tree_cpu)
    }

    /// Runs `cmd` with stdout to /dev/null and stderr to a file, and measures it.
    fn measure(&self, cmd: &mut Command, what: &str) -> Sample {
        let stderr_path = self.work.join(format!("{}.stderr", what.replace(' ', "-")));
        let stderr = File::create(&stderr_path).expect("creating the stderr file");
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let slapd_before = process_cpu(self.src.server_pid);
        let db_before = self.db_cpu();
        let started = Instant::now();
        // Reaped by `wait4` below, which std's `Child::wait` can't replace (no rusage).
        #[allow(clippy::zombie_processes)]
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what} ({cmd:?}): {e}"));
        let (status, usage) = wait4(child.id()).expect("waiting for the measured process");
        let wall = started.elapsed();
        let slapd_cpu = process_cpu(self.src.server_pid).saturating_sub(slapd_before);
        let db_cpu = self.db_cpu().saturating_sub(db_before);
        if !status.success() {
            let err = fs::read_to_string(&stderr_path).unwrap_or_default();
            panic!("{what} failed ({status}): {cmd:?}\n{err}");
        }
        Sample {
            wall,
            max_rss_kib: u64::try_from(usage.ru_maxrss).expect("ru_maxrss is not negative"),
            cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
            slapd_cpu,
            db_cpu,
            recorded: None,
        }
    }

    /// Runs `args` once with SQL statement logging and cuts its wall time into phases at the completion
    /// times of the statements that begin and end them. `None` (with a warning) if the log doesn't have
    /// the expected statements, e.g. after the store's queries changed.
    fn phases(&self, data_dir: &Path, args: &[&str], kind: Kind) -> Option<Phases> {
        let log_path = self.work.join("phases.log");
        let log = File::create(&log_path).expect("creating the log file");
        let mut cmd = self.roster(data_dir, args);
        cmd.env("ROSTER_LOG", STATEMENT_LOG)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        let spawned = wall_clock_seconds();
        #[allow(clippy::zombie_processes)] // reaped by wait4
        let child = cmd.spawn().expect("starting roster");
        let (status, _) = wait4(child.id()).expect("waiting for roster");
        let exited = wall_clock_seconds();
        assert!(
            status.success(),
            "{} failed ({status}) with logging on",
            kind.label()
        );
        self.verify_last_run(data_dir, kind);
        let text = fs::read_to_string(&log_path).expect("reading the log");
        let phases = Phases::from_log(&text, spawned, exited);
        if phases.is_none() {
            eprintln!(
                "roster-bench: warning: can't cut the {} run into phases: the SQL log doesn't have the statements this tool looks for",
                kind.label()
            );
        }
        phases
    }

    /// Checks the run just made (status, entries read, counts) and returns its recorded duration.
    fn verify_last_run(&self, data_dir: &Path, kind: Kind) -> Duration {
        let out = self
            .roster(data_dir, &["runs", "list", "--limit", "1", "--json"])
            .output()
            .expect("running roster runs list");
        assert!(
            out.status.success(),
            "roster runs list failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let runs: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("roster runs list --json gives JSON");
        let run = &runs[0];
        let n = self.opts.n as u64;
        let (want_kind, want_created, want_unchanged) = match kind {
            Kind::Preview => ("preview", n, 0),
            Kind::FullSync => ("sync", n, 0),
            Kind::Resync => ("sync", 0, n),
            Kind::Baseline => unreachable!("the baseline is not a Roster run"),
        };
        let counts = &run["counts"];
        let ok = run["status"] == "succeeded"
            && run["kind"] == want_kind
            && run["entries_read"] == n
            && counts["created"] == want_created
            && counts["unchanged"] == want_unchanged
            && [
                "updated",
                "renamed",
                "linked",
                "deleted",
                "conflicts",
                "skipped",
            ]
            .iter()
            .all(|k| counts[*k] == 0);
        assert!(ok, "unexpected {} run: {run:#}", kind.label());
        let ms = |key: &str| run[key].as_i64().expect("a timestamp in milliseconds");
        Duration::from_millis(u64::try_from(ms("finished_at") - ms("started_at")).unwrap_or(0))
    }
}

fn settings_toml(port: u16, wide: bool) -> String {
    let base_dn = if wide {
        SUFFIX.to_owned()
    } else {
        format!("ou=People,{SUFFIX}")
    };
    format!(
        r#"type = "ldap"
server = "127.0.0.1"
port = {port}
encryption = "none"
bind_dn = "{SERVICE_DN}"
password = "{SERVICE_PASSWORD}"
base_dn = "{base_dn}"
filter = "{FILTER}"
username_attribute = "uid"
full_name_attribute = "displayName"
email_attributes = "mail"
page_size = {PAGE_SIZE}
delete_users = false
"#
    )
}

/// The service account and N users below `ou=People`. Every second user has a second address; one
/// name in eight has a non-ASCII letter (base64 in LDIF). No userPassword: nothing here logs on.
fn directory_ldif(n: usize, wide: bool) -> String {
    let mut out = String::with_capacity(n * 330 + 512);
    out.push_str(&format!(
        "dn: ou=Services,{SUFFIX}\nobjectClass: top\nobjectClass: organizationalUnit\nou: Services\n\n\
         dn: {SERVICE_DN}\nobjectClass: top\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n\
         cn: roster\nuserPassword: {SERVICE_PASSWORD}\n\n"
    ));
    for i in 1..=n {
        let uid = format!("user{i:06}");
        let cn = format!(
            "{} {}",
            FIRST_NAMES[i % FIRST_NAMES.len()],
            LAST_NAMES[(i / FIRST_NAMES.len()) % LAST_NAMES.len()]
        );
        let primary = format!("{uid}@example.com");
        let alias = format!("alias.{uid}@mail.example.com");
        let mut mail = vec![primary.as_str()];
        if wide || i % 2 == 0 {
            mail.push(alias.as_str());
        }
        out.push_str(&user_ldif(
            SUFFIX,
            &TestUser {
                uid: &uid,
                cn: &cn,
                mail,
                password: None,
                ou: "People",
            },
        ));
    }
    out
}

/// Waits for child `pid` and returns its exit status and resource usage (peak RSS, CPU time). std's
/// `Child::wait` doesn't give the rusage, and `getrusage(RUSAGE_CHILDREN)` would give the maximum over
/// all children so far rather than this one's.
#[allow(unsafe_code)]
fn wait4(pid: u32) -> io::Result<(ExitStatus, libc::rusage)> {
    let pid = libc::pid_t::try_from(pid).map_err(io::Error::other)?;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is a plain C struct of integers and timevals, for which all-zero bytes is a valid
    // value; wait4 overwrites it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: `status` and `usage` are valid, exclusively borrowed locals for the duration of the
        // call; `pid` is our own child, which nothing else in this process waits for.
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
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let micros = u64::try_from(t.tv_usec).unwrap_or(0);
    Duration::from_secs(secs) + Duration::from_micros(micros)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn median(mut values: Vec<Duration>) -> Duration {
    assert!(!values.is_empty(), "median of nothing");
    values.sort();
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2
    }
}

/// Seconds of one Roster run, phase by phase (see `markdown_report` for what each covers).
#[derive(Debug, Clone, Default)]
struct Phases {
    /// SQL statements grouped by their summary: (summary, count, total seconds), longest first.
    statements: Vec<(String, usize, f64)>,
    start: f64,
    open: f64,
    /// The read, with the current users loaded at the same time.
    read: f64,
    /// When loading the users finished, counted from the start of the read (part of `read`, not added).
    users_loaded: f64,
    plan: f64,
    apply: f64,
    record: f64,
    output: f64,
}

impl Phases {
    const NAMES: [&str; 7] = ["start", "open", "read", "plan", "apply", "record", "output"];

    fn values(&self) -> [f64; 7] {
        [
            self.start,
            self.open,
            self.read,
            self.plan,
            self.apply,
            self.record,
            self.output,
        ]
    }

    /// `log` is roster's stderr with the store's per-statement debug lines (sqlx's, and those of the SQLite
    /// store's own synchronization paths, `roster_store::sqlite`, one per statement or per prepared
    /// statement's rows), written when a statement completes; `spawned` and `exited` are wall-clock seconds since the epoch, like the log's times.
    fn from_log(log: &str, spawned: f64, exited: f64) -> Option<Phases> {
        let statements: Vec<(f64, String)> = log
            .lines()
            .map(strip_ansi)
            .filter(|l| {
                l.contains("sqlx::query")
                    || l.contains("roster_store::sqlite")
                    || l.contains("roster_store::postgres")
            })
            .filter_map(|l| {
                let (time, rest) = l.split_once(' ')?;
                Some((rfc3339_seconds(time)?, rest.to_owned()))
            })
            .collect();
        let find = |after: f64, needle: &str| {
            statements
                .iter()
                .find(|(t, s)| *t >= after && s.contains(needle))
                .map(|(t, _)| *t)
        };
        let first = statements.first()?.0;
        // The SQLite store's checkpoint after an apply runs in the background while the report is
        // printed: the process's exit waits for it, in `output`.
        let last = statements
            .iter()
            .rev()
            .find(|(_, s)| !s.contains("wal_checkpoint"))?
            .0;
        let begun = find(first, "INSERT INTO sync_runs (")?;
        // The users are loaded while the directory is read; after both, the user database's version is
        // checked again (and the users loaded again if it moved).
        let loaded = find(begun, "FROM user_emails ORDER BY user_id, position")?;
        let read = find(loaded, "FROM meta WHERE key = 'user_db_version'")?;
        // `$1` through sqlx, `?1` through the SQLite store's own apply.
        let finish = find(read, "UPDATE sync_runs SET status = ")?;
        // A sync with changes reads the default privileges right before it applies them.
        let planned = find(read, "SELECT value FROM settings").filter(|t| *t <= finish);
        let mut groups: Vec<(String, usize, f64)> = Vec::new();
        for (_, line) in &statements {
            let summary = field(line, "summary=\"", '"');
            let elapsed = field(line, "elapsed_secs=", ' ').and_then(|e| e.parse::<f64>().ok());
            if let (Some(summary), Some(elapsed)) = (summary, elapsed) {
                match groups.iter_mut().find(|g| g.0 == summary) {
                    Some(g) => {
                        g.1 += 1;
                        g.2 += elapsed;
                    }
                    None => groups.push((summary.to_owned(), 1, elapsed)),
                }
            }
        }
        groups.sort_by(|a, b| b.2.total_cmp(&a.2));
        Some(Phases {
            statements: groups,
            start: first - spawned,
            open: begun - first,
            read: read - begun,
            users_loaded: loaded - begun,
            plan: planned.unwrap_or(finish) - read,
            apply: planned.map_or(0.0, |p| finish - p),
            record: last - finish,
            output: exited - last,
        })
    }
}

/// The text after `key` up to `end` (or the end of the line).
fn field<'a>(line: &'a str, key: &str, end: char) -> Option<&'a str> {
    let rest = line.split_once(key)?.1;
    Some(rest.split(end).next().unwrap_or(rest))
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters final-byte (a letter)
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Seconds since the epoch of tracing's `2026-01-02T03:04:05.123456Z` (UTC).
fn rfc3339_seconds(text: &str) -> Option<f64> {
    let text = text.strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.splitn(3, ':');
    let (hh, mm) = (
        t.next()?.parse::<f64>().ok()?,
        t.next()?.parse::<f64>().ok()?,
    );
    let ss = t.next()?.parse::<f64>().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days as f64 * 86_400.0 + hh * 3600.0 + mm * 60.0 + ss)
}

/// The log filter of the run that is cut into phases: sqlx's statements, and the SQLite store's own
/// synchronization paths (roster-store `sqlite/native.rs`), which log theirs under `roster_store::sqlite`.
const STATEMENT_LOG: &str =
    "warn,sqlx::query=debug,roster_store::sqlite=debug,roster_store::postgres=debug";

/// The wall clock, to line up the child's log times with its start and exit (the workspace bans
/// `SystemTime::now` in product code in favour of an injected clock; a benchmark has no clock to inject).
#[allow(clippy::disallowed_methods)]
fn wall_clock_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn phase_table(phases: &[(Kind, Option<Phases>)]) -> Table {
    let mut headers = vec!["run"];
    headers.extend(Phases::NAMES);
    headers.push("total");
    headers.push("users loaded at");
    let rows: Vec<Vec<String>> = phases
        .iter()
        .map(|(kind, p)| {
            let mut row = vec![kind.label().to_owned()];
            match p {
                Some(p) => {
                    row.extend(p.values().iter().map(|v| format!("{v:.3}")));
                    row.push(format!("{:.3}", p.values().iter().sum::<f64>()));
                    row.push(format!("{:.3}", p.users_loaded));
                }
                None => row.extend(std::iter::repeat_n("?".to_owned(), Phases::NAMES.len() + 2)),
            }
            row
        })
        .collect();
    render_table(&headers, &rows, Vec::new())
}

/// Aligned text and Markdown for one table; the first column is left-aligned, the others right-aligned.
fn render_table(
    headers: &[&str],
    rows: &[Vec<String>],
    checks: Vec<(Kind, Duration, f64)>,
) -> Table {
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain(std::iter::once(headers[i].chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| -> String {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = " ".repeat(widths[i].saturating_sub(c.chars().count()));
            if i == 0 {
                l.push_str(c);
                l.push_str(&pad);
            } else {
                l.push_str("  ");
                l.push_str(&pad);
                l.push_str(c);
            }
        }
        l
    };
    let mut text = line(headers.to_vec());
    text.push('\n');
    for r in rows {
        text.push_str(&line(r.iter().map(String::as_str).collect()));
        text.push('\n');
    }
    let mut markdown = format!("| {} |\n|:---|", headers.join(" | "));
    markdown.push_str(&"---:|".repeat(headers.len() - 1));
    markdown.push('\n');
    for r in rows {
        markdown.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    Table {
        text,
        markdown,
        rows: checks,
    }
}

/// The report's tables: the measurements, the store's size, the phases.
struct Tables {
    results: Table,
    sizes: Table,
    phases: Table,
}

struct Table {
    text: String,
    markdown: String,
    /// (kind, wall median, peak RSS MiB) for the targets' check.
    rows: Vec<(Kind, Duration, f64)>,
}

fn results_table(samples: &[(Kind, Sample)], server: &str, postgres: bool) -> Table {
    let of = |kind: Kind| -> Vec<Sample> {
        samples
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, s)| *s)
            .collect()
    };
    let baseline = median(of(Kind::Baseline).iter().map(|s| s.wall).collect());
    let server_cpu = format!("{server} CPU (s)");
    let mut headers = vec![
        "measurement",
        "wall median (s)",
        "wall min (s)",
        "× baseline",
        "peak RSS (MiB)",
        "CPU (s)",
        &server_cpu,
    ];
    if postgres {
        headers.push("PostgreSQL CPU (s)");
    }
    headers.push("run recorded (s)");
    let mut rows: Vec<Vec<String>> = Vec::new();
    let mut checks = Vec::new();
    for kind in Kind::ALL {
        let s = of(kind);
        let wall = median(s.iter().map(|s| s.wall).collect());
        let min = s.iter().map(|s| s.wall).min().expect("samples");
        let rss = mib(s.iter().map(|s| s.max_rss_kib).max().expect("samples"));
        let cpu = median(s.iter().map(|s| s.cpu).collect());
        let slapd = median(s.iter().map(|s| s.slapd_cpu).collect());
        let db = median(s.iter().map(|s| s.db_cpu).collect());
        let recorded: Vec<Duration> = s.iter().filter_map(|s| s.recorded).collect();
        let mut row = vec![
            kind.label().to_owned(),
            format!("{:.3}", wall.as_secs_f64()),
            format!("{:.3}", min.as_secs_f64()),
            format!("{:.2}", wall.as_secs_f64() / baseline.as_secs_f64()),
            format!("{rss:.1}"),
            format!("{:.2}", cpu.as_secs_f64()),
            format!("{:.2}", slapd.as_secs_f64()),
        ];
        if postgres {
            row.push(format!("{:.2}", db.as_secs_f64()));
        }
        row.push(if recorded.is_empty() {
            "–".to_owned()
        } else {
            format!("{:.2}", median(recorded).as_secs_f64())
        });
        rows.push(row);
        checks.push((kind, wall, rss));
    }
    render_table(&headers, &rows, checks)
}

/// The store's size after `directory set` and after each kind of run (medians over the repetitions), and
/// what the full sync added per user.
fn size_table(sizes: &[(Option<Kind>, u64)], n: usize) -> Table {
    let median_of = |kind: Option<Kind>| -> Option<u64> {
        let mut v: Vec<u64> = sizes
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, b)| *b)
            .collect();
        v.sort_unstable();
        (!v.is_empty()).then(|| v[v.len() / 2])
    };
    let empty = median_of(None).unwrap_or(0);
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (label, kind) in [
        ("after `roster directory set` (empty store)", None),
        ("after roster sync --preview", Some(Kind::Preview)),
        ("after roster sync, empty store", Some(Kind::FullSync)),
        ("after roster sync, nothing changed", Some(Kind::Resync)),
    ] {
        if let Some(bytes) = median_of(kind) {
            let grown = bytes.saturating_sub(empty);
            rows.push(vec![
                label.to_owned(),
                format!("{:.1}", bytes as f64 / 1e6),
                format!("{:.1}", grown as f64 / 1e6),
                format!("{:.0}", grown as f64 / n as f64),
            ]);
        }
    }
    render_table(
        &["store", "size (MB)", "grown (MB)", "grown per user (bytes)"],
        &rows,
        Vec::new(),
    )
}

/// The server's version and the settings that matter for the measurement.
fn postgres_description(pg: &TestPostgres) -> String {
    let show = |sql: &str| {
        pg.psql("postgres", sql)
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "?".into())
    };
    format!(
        "{}; a throwaway cluster (roster-testkit, `initdb --no-locale -E UTF8`) on 127.0.0.1, with \
         PostgreSQL's defaults but the port and `max_connections`: fsync {}, synchronous_commit {}, \
         full_page_writes {}, shared_buffers {}, wal_level {}, max_wal_size {}",
        show("SELECT version()").split(" on ").next().unwrap_or("?"),
        show("SHOW fsync"),
        show("SHOW synchronous_commit"),
        show("SHOW full_page_writes"),
        show("SHOW shared_buffers"),
        show("SHOW wal_level"),
        show("SHOW max_wal_size"),
    )
}

struct Machine {
    postgres: Option<String>,
    cpus: String,
    cpu_model: String,
    memory: String,
    kernel: String,
    os: String,
    date: String,
    load_before: String,
    load_after: String,
    contention: String,
    ldapsearch: String,
    roster: String,
    revision: String,
    tmp: String,
}

impl Machine {
    fn probe(
        roster: &Path,
        load_before: String,
        load_after: String,
        contention: String,
    ) -> Machine {
        let read = |path: &str| fs::read_to_string(path).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".into());
        let memory = read("/proc/meminfo")
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| format!("{:.1} GiB", kb / 1024.0 / 1024.0))
            .unwrap_or_else(|| "unknown".into());
        let os = read("/etc/os-release")
            .lines()
            .find_map(|l| l.strip_prefix("PRETTY_NAME="))
            .map(|v| v.trim_matches('"').to_owned())
            .unwrap_or_else(|| "unknown".into());
        let tmp = std::env::temp_dir();
        Machine {
            postgres: None,
            cpus: first_line(&mut Command::new("nproc")),
            cpu_model,
            memory,
            kernel: read("/proc/sys/kernel/osrelease").trim().to_owned(),
            os,
            date: first_line(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"])),
            load_before,
            load_after,
            contention,
            ldapsearch: version_line(Command::new("ldapsearch").arg("-VV"), "ldapsearch"),
            roster: first_line(Command::new(roster).arg("--version")),
            revision: git_revision(),
            // `df` prints a header line, then the file system type.
            tmp: format!(
                "{} ({})",
                tmp.display(),
                output_lines(Command::new("df").arg("--output=fstype").arg(&tmp))
                    .last()
                    .map_or("?", String::as_str)
            ),
        }
    }
}

/// The first non-empty line a command prints, or "unknown".
fn first_line(cmd: &mut Command) -> String {
    output_lines(cmd)
        .into_iter()
        .next()
        .unwrap_or_else(|| "unknown".into())
}

fn output_lines(cmd: &mut Command) -> Vec<String> {
    cmd.output()
        .map(|out| {
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// OpenLDAP tools print their version on stderr: "@(#) $OpenLDAP: slapd 2.5.13+dfsg-5 (...) $".
fn version_line(cmd: &mut Command, tool: &str) -> String {
    let Ok(out) = cmd.output() else {
        return "unknown".into();
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    text.lines()
        .filter(|l| l.contains(tool))
        .find_map(|l| {
            let rest = l.split_once("$OpenLDAP: ")?.1;
            Some(rest.split(" (").next().unwrap_or(rest).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn git_revision() -> String {
    let root = roster_bench::workspace_root();
    let head =
        first_line(
            Command::new("git")
                .arg("-C")
                .arg(&root)
                .args(["rev-parse", "--short", "HEAD"]),
        );
    let dirty = Command::new("git")
        .arg("-C")
        .arg(&root)
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    if dirty {
        format!("{head} with uncommitted changes")
    } else {
        head
    }
}

fn markdown_report(
    opts: &Opts,
    src: &Source,
    m: &Machine,
    Tables {
        results: table,
        sizes,
        phases,
    }: &Tables,
    phase_runs: &[(Kind, Option<Phases>)],
    setup_median: Duration,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# {}, N = {}\n", src.title, opts.n);
    let _ = writeln!(
        md,
        "Command: `{}` ({} repetitions of each measurement, round-robin).\n",
        opts.command, opts.reps
    );
    let _ = writeln!(md, "{}", table.markdown);
    let _ = writeln!(
        md,
        "Wall time median and minimum over the repetitions; × baseline = median / baseline median; peak \
         RSS = the largest `ru_maxrss` of the measured process over the repetitions (from `wait4`); CPU = \
         its user + system time (median); {server} CPU = {server}'s user + system time while it ran (median); \
         run recorded = the run's duration in Roster's run history (read, plan, apply, record the report; \
         without process start, opening the store and printing the report).\n",
        server = src.server_name
    );
    let _ = writeln!(
        md,
        "The store's size ({}; medians over the repetitions; grown = over the empty store's):\n",
        if m.postgres.is_some() {
            "`pg_database_size`"
        } else {
            "`roster.db` with its `-wal` and `-shm` files"
        }
    );
    let _ = writeln!(md, "{}", sizes.markdown);
    let baseline = table
        .rows
        .iter()
        .find(|r| r.0 == Kind::Baseline)
        .map(|r| r.1)
        .unwrap_or_default();
    let _ = writeln!(md, "Targets ({}):\n", src.issue);
    let verdict = |ok: bool| if ok { "met" } else { "missed" };
    for (kind, wall, _) in &table.rows {
        if *kind == Kind::FullSync {
            let ratio = wall.as_secs_f64() / baseline.as_secs_f64();
            let target = src.full_sync_target;
            let _ = writeln!(
                md,
                "- full sync ≤ {target:.1} × baseline: {ratio:.2}× ({})",
                verdict(ratio <= target)
            );
        }
    }
    let peaks: Vec<String> = table
        .rows
        .iter()
        .filter(|r| r.0 != Kind::Baseline)
        .map(|(kind, _, mib)| {
            let mb = mib * 1.048_576;
            if src.memory_target && opts.n == 100_000 {
                format!("{}: {mb:.1} MB ({})", kind.label(), verdict(mb <= 150.0))
            } else {
                format!("{}: {mb:.1} MB", kind.label())
            }
        })
        .collect();
    if src.memory_target {
        let _ = writeln!(
            md,
            "- peak memory ≤ 150 MB at 100,000 users (1 MB = 10⁶ bytes; the table is in MiB){}: {}\n",
            if opts.n == 100_000 {
                ""
            } else {
                " — this run has a different N, for the growth with N"
            },
            peaks.join("; ")
        );
    } else {
        let _ = writeln!(
            md,
            "- peak memory (no target for this directory; 1 MB = 10⁶ bytes, the table is in MiB): {}\n",
            peaks.join("; ")
        );
    }
    let _ = writeln!(md, "## Where Roster's time goes\n");
    let _ = writeln!(
        md,
        "One more run of each kind after the measurements, with `ROSTER_LOG={STATEMENT_LOG}`; the \
         phases are cut at the completion times of the SQL statements that start and end them (seconds):\n"
    );
    let _ = writeln!(md, "{}", phases.markdown);
    if let Some(full) = phase_runs
        .iter()
        .find(|(k, _)| *k == Kind::FullSync)
        .and_then(|(_, p)| p.as_ref())
    {
        let _ = writeln!(
            md,
            "The full sync's SQL statements by total time (their logged `elapsed_secs`, summed; sqlx doesn't \
             log a commit, the SQLite store's apply does, as `COMMIT`; nor a `COPY`, PostgreSQL's apply does):\n"
        );
        let _ = writeln!(md, "| statement | count | total (s) |\n|:---|---:|---:|");
        for (summary, count, secs) in full.statements.iter().take(10) {
            let _ = writeln!(md, "| `{summary}` | {count} | {secs:.3} |");
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(
        md,
        "start = process start to the first statement (runtime, opening the store); open = migrations check, \
         bootstrap check, settings, begin the run; read = the paged LDAP read and mapping the entries, \
         while the current users and their addresses are loaded from the store at the same time, up to \
         the check of the user database's version after both; plan = planning (pure CPU); apply = the \
         sync's write transaction (users, privileges, folders, folder access, addresses, audit line, \
         commit); record = finishing the run and storing the report's lines (1000 to a row); users loaded \
         at = when loading the users finished, from the start of the read (inside `read`, not added to the \
         total); output = the last statement to process exit (the JSON report to /dev/null, freeing memory; \
         on SQLite, meanwhile, the checkpoint that copies the apply's pages from the WAL into the database \
         file, `PRAGMA wal_checkpoint`, which the exit waits for).\n"
    );
    let _ = writeln!(md, "## What is measured\n");
    for point in &src.described {
        let _ = writeln!(md, "- {point}");
    }
    let _ = writeln!(
        md,
        "- Roster: `roster --data-dir <dir> sync [--preview] --json > /dev/null` on {} where `roster \
         directory set --file settings.toml` ran first (not timed here: it creates the store and hashes the \
         admin password with Argon2id; median {:.2} s). The preview and the full \
         sync start from an empty store; the re-sync runs on the full sync's store. Every run is checked \
         afterwards (`roster runs list --json`: succeeded, {} entries read, {} created or unchanged, nothing \
         else).",
        if m.postgres.is_some() {
            "PostgreSQL (`--database-url`, a new database for each new data directory)"
        } else {
            "SQLite in a new data directory"
        },
        setup_median.as_secs_f64(),
        opts.n,
        opts.n
    );
    let _ = writeln!(
        md,
        "- An unmeasured `ldapsearch` first warms {}'s database into the page cache and checks that it \
         returns exactly {} entries, each with {} and {}.\n",
        src.server_name,
        opts.n,
        src.name_attribute.trim_end_matches(':'),
        src.id_attribute.trim_end_matches(':')
    );
    let _ = writeln!(md, "## Machine\n");
    let _ = writeln!(md, "- CPUs (`nproc`): {}; {}", m.cpus, m.cpu_model);
    let _ = writeln!(md, "- Memory: {}", m.memory);
    let _ = writeln!(md, "- Kernel: {}; {}", m.kernel, m.os);
    let _ = writeln!(md, "- Temporary files (data directories): {}", m.tmp);
    let _ = writeln!(md, "- Date: {}", m.date);
    let _ = writeln!(
        md,
        "- Load average (1, 5, 15 min) before: {}; after: {}",
        m.load_before, m.load_after
    );
    let _ = writeln!(
        md,
        "- CPU use during the measurements (`/proc/stat`): {}",
        m.contention
    );
    let _ = writeln!(md, "- {}; {}", src.version, m.ldapsearch);
    if let Some(pg) = &m.postgres {
        let _ = writeln!(md, "- {pg}");
    }
    let _ = writeln!(
        md,
        "- {} (release build), revision {}",
        m.roster, m.revision
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        let s = Duration::from_secs;
        assert_eq!(median(vec![s(3), s(1), s(2)]), s(2));
        assert_eq!(
            median(vec![s(4), s(1), s(3), s(2)]),
            Duration::from_millis(2500)
        );
    }

    #[test]
    fn log_times_are_epoch_seconds() {
        assert_eq!(rfc3339_seconds("1970-01-02T00:00:01.5Z"), Some(86_401.5));
        assert_eq!(rfc3339_seconds("2000-03-01T00:00:00Z"), Some(951_868_800.0));
        assert_eq!(rfc3339_seconds("2000-03-01 00:00:00"), None);
    }

    #[test]
    fn a_sync_log_is_cut_into_phases() {
        let line = |t: &str, statement: &str| {
            format!(
                "\u{1b}[2m1970-01-01T00:00:{t}Z\u{1b}[0m \u{1b}[34mDEBUG\u{1b}[0m sqlx::query: summary=\"{} …\" db.statement=\"\\n\\n{statement}\\n\" rows_affected=1 elapsed=1ms elapsed_secs=0.25\n",
                statement.split(' ').next().unwrap_or("")
            )
        };
        let log = [
            line("01.0", "PRAGMA journal_mode = WAL;"),
            line("01.5", "INSERT INTO sync_runs (kind, triggered_by)"),
            line(
                "01.6",
                "SELECT value FROM meta WHERE key = 'user_db_version'",
            ),
            line(
                "02.5",
                "SELECT user_id, address FROM user_emails ORDER BY user_id, position",
            ),
            line(
                "04.0",
                "SELECT value FROM meta WHERE key = 'user_db_version'",
            ),
            line("05.0", "SELECT value FROM settings WHERE key = $1"),
            line("07.0", "UPDATE sync_runs SET status = $1, finished_at = $2"),
            line("07.5", "INSERT INTO sync_run_line_chunks (run_id, chunk)"),
        ]
        .concat();
        // The SQLite store's own synchronization paths log under their module, with `?1` placeholders.
        let native = log
            .replace("sqlx::query:", "roster_store::sqlite::native: statement")
            .replace("status = $1", "status = ?1");
        let p = Phases::from_log(&native, 0.5, 8.0).unwrap();
        assert_eq!(p.values(), [0.5, 0.5, 2.5, 1.0, 2.0, 0.5, 0.5]);
        let p = Phases::from_log(&log, 0.5, 8.0).unwrap();
        assert_eq!(p.values(), [0.5, 0.5, 2.5, 1.0, 2.0, 0.5, 0.5]);
        assert_eq!(p.users_loaded, 1.0);
        assert_eq!(p.statements[0], ("SELECT …".to_owned(), 4, 1.0));
        assert_eq!(p.statements.len(), 4);
        assert!(Phases::from_log("no statements here", 0.0, 1.0).is_none());
    }

    #[test]
    fn generated_directory_has_n_users_with_one_or_two_addresses() {
        let ldif = directory_ldif(10, false);
        assert_eq!(ldif.matches("\nuid: ").count(), 10);
        assert_eq!(ldif.matches("\nmail: ").count(), 15);
        assert_eq!(ldif.matches(&format!("dn: {SERVICE_DN}\n")).count(), 1);
    }
}
