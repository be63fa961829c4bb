//! One throwaway PostgreSQL cluster per test process, with a fresh database
//! per test.
//!
//! Why one cluster: `initdb` takes seconds, creating a database takes tens of
//! milliseconds. Why `atexit`: the cluster lives in a `static`, and Rust never
//! drops statics, so without the hook every test run would leak a postmaster.
//! A process killed by a signal still leaks it (nothing runs then); such
//! leftovers are `postgres -D /tmp/roster-pg-*/data` processes.
//!
//! When the test runs as root (CI containers), initdb and postgres refuse to
//! run, so they are started as the `postgres` system user via
//! `Command::uid/gid` (like `runuser -u postgres`, but the server stays our
//! direct child, so we know its pid and get its exit status), in a temporary
//! directory chowned to that user.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::common::{
    START_TIMEOUT, ServerProcess, find_program, lock, log_tail, pause, run, temp_dir, try_free_port,
};

const INSTALL_HINT: &str = "install the Debian package postgresql (apt-get install -y postgresql), \
     or set ROSTER_TESTKIT_PG_BINDIR to a directory containing initdb, postgres and psql";

/// Overrides the search for the PostgreSQL binaries.
pub const BINDIR_ENV: &str = "ROSTER_TESTKIT_PG_BINDIR";

/// The cluster handed out by [`TestPostgres::shared`].
static SHARED: Mutex<Option<&'static TestPostgres>> = Mutex::new(None);

/// What the exit hook has to clean up. Kept apart from [`TestPostgres`] so
/// the shared handle can be a plain `&'static` without interior mutability.
struct Running {
    process: ServerProcess,
    dir: tempfile::TempDir,
    port: u16,
}

static RUNNING: Mutex<Vec<Running>> = Mutex::new(Vec::new());

static DB_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A running PostgreSQL cluster listening on 127.0.0.1 with `trust` auth for
/// the superuser `postgres`.
#[derive(Debug)]
pub struct TestPostgres {
    port: u16,
    bin_dir: PathBuf,
    dir: PathBuf,
    log_path: PathBuf,
    durability: Durability,
}

/// Whether the server flushes its writes to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `fsync`, `synchronous_commit` and `full_page_writes` off: durability is pointless for throwaway
    /// data, and tests' migrations and bulk inserts are much faster without it.
    Off,
    /// PostgreSQL's defaults, as an installation runs it: for benchmarks.
    Default,
}

impl TestPostgres {
    /// The cluster of this test process, started on first use and stopped
    /// (SIGQUIT, directory removed) when the process exits. If starting
    /// fails, the error is returned and the next call tries again.
    pub fn shared() -> io::Result<&'static TestPostgres> {
        let mut shared = lock(&SHARED);
        if let Some(pg) = *shared {
            return Ok(pg);
        }
        let pg: &'static TestPostgres = Box::leak(Box::new(start_cluster(Durability::Off)?));
        *shared = Some(pg);
        Ok(pg)
    }

    /// A cluster of the calling test's own (for a test that stops and starts it: the shared one serves
    /// the other tests of the process), stopped and removed at exit like the shared one.
    pub fn private() -> io::Result<TestPostgres> {
        start_cluster(Durability::Off)
    }

    /// A cluster of the caller's own with the durability it asks for (a benchmark measures PostgreSQL
    /// as an installation runs it: [`Durability::Default`]).
    pub fn private_with(durability: Durability) -> io::Result<TestPostgres> {
        start_cluster(durability)
    }

    /// Stops the server (SIGINT: PostgreSQL's fast shutdown, which drops every connection), keeps it
    /// down for `down`, and starts it again on the same port and data. For the shared cluster this would
    /// break the process' other tests: use it on a [`TestPostgres::private`] one.
    pub fn restart(&self, down: Duration) -> io::Result<()> {
        {
            let mut running = lock(&RUNNING);
            let entry = running
                .iter_mut()
                .find(|r| r.port == self.port)
                .ok_or_else(|| io::Error::other("this cluster is not running"))?;
            entry
                .process
                .stop_with(libc::SIGINT, Duration::from_secs(30));
        }
        pause(down);
        let user = server_user()?;
        let mut postgres =
            postgres_command(&self.bin_dir, &self.dir, self.port, user, self.durability);
        let mut process = ServerProcess::spawn("postgres", &mut postgres, &self.log_path)?;
        process.wait_for_ports(&[self.port], START_TIMEOUT)?;
        {
            let mut running = lock(&RUNNING);
            if let Some(entry) = running.iter_mut().find(|r| r.port == self.port) {
                entry.process = process;
            }
        }
        wait_until_ready(self)
    }

    /// Creates an empty database named from `prefix` (lowercased, other
    /// characters than `[a-z0-9_]` replaced), the process id and a counter,
    /// and returns `postgres://postgres@127.0.0.1:PORT/NAME`.
    pub fn create_database(&self, prefix: &str) -> io::Result<String> {
        let n = DB_COUNTER.fetch_add(1, Ordering::Relaxed);
        let suffix = format!("_{}_{n}", std::process::id());
        let mut name: String = prefix
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            name.insert_str(0, "db_");
        }
        // Identifiers are truncated at 63 bytes; keep the unique suffix.
        name.truncate(63 - suffix.len());
        name.push_str(&suffix);
        self.psql("postgres", &format!("CREATE DATABASE \"{name}\""))?;
        Ok(self.url(&name))
    }

    /// `postgres://postgres@127.0.0.1:PORT/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Runs SQL with `psql` as `postgres` in `database`, stopping at the
    /// first error; returns unaligned, tuples-only output.
    pub fn psql(&self, database: &str, sql: &str) -> io::Result<String> {
        let mut cmd = self.client("psql");
        cmd.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-p",
        ])
        .arg(self.port.to_string())
        .arg("-d")
        .arg(database)
        .arg("-c")
        .arg(sql);
        let out = run(&mut cmd)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A client program from the cluster's bin directory with libpq
    /// environment variables removed so a developer's settings cannot
    /// redirect it.
    pub fn client(&self, program: &str) -> Command {
        let mut cmd = Command::new(self.bin_dir.join(program));
        for var in [
            "PGHOST",
            "PGHOSTADDR",
            "PGPORT",
            "PGUSER",
            "PGDATABASE",
            "PGPASSWORD",
            "PGSERVICE",
            "PGOPTIONS",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("PGCONNECT_TIMEOUT", "10");
        cmd
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Where initdb, postgres, psql, createdb were found.
    pub fn bin_dir(&self) -> &Path {
        &self.bin_dir
    }

    /// The cluster's temporary directory (data/, sock/, postgres.log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }
}

/// The newest `/usr/lib/postgresql/<version>/bin` with initdb (Debian's
/// layout), else the directory of an `initdb` on PATH.
pub fn find_bin_dir() -> io::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(BINDIR_ENV) {
        let dir = PathBuf::from(dir);
        return if dir.join("initdb").exists() {
            Ok(dir)
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{BINDIR_ENV}={} has no initdb", dir.display()),
            ))
        };
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|p| p.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    find_program("initdb", &[], INSTALL_HINT)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("PostgreSQL initdb not found: {INSTALL_HINT}"),
            )
        })
}

/// The uid/gid to run the server as: `postgres` when we are root (initdb and
/// postgres refuse to run as root), else ourselves (`None`).
fn server_user() -> io::Result<Option<(u32, u32)>> {
    if effective_uid() != 0 {
        return Ok(None);
    }
    let id = |flag: &str| -> io::Result<u32> {
        let out = run(Command::new("id").arg(flag).arg("postgres")).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("running as root needs the `postgres` system user for initdb ({e}); {INSTALL_HINT}"),
            )
        })?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| io::Error::other("unexpected `id` output"))
    };
    Ok(Some((id("-u")?, id("-g")?)))
}

#[allow(unsafe_code)]
fn effective_uid() -> u32 {
    // SAFETY: geteuid(2) has no arguments, cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

fn as_server_user(cmd: &mut Command, user: Option<(u32, u32)>, dir: &Path) {
    use std::os::unix::process::CommandExt;
    // The server user may not be able to enter our working directory.
    cmd.current_dir(dir);
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
}

fn start_cluster(durability: Durability) -> io::Result<TestPostgres> {
    let bin_dir = find_bin_dir()?;
    let user = server_user()?;
    let dir = temp_dir("roster-pg-")?;
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))?;
    }
    let data = dir.path().join("data");
    let sock = dir.path().join("sock");
    fs::create_dir(&sock)?;
    if let Some((uid, gid)) = user {
        std::os::unix::fs::chown(&sock, Some(uid), Some(gid))?;
    }

    let mut initdb = Command::new(bin_dir.join("initdb"));
    initdb
        .arg("-D")
        .arg(&data)
        .args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
            "--no-instructions",
        ])
        .env("TZ", "UTC");
    as_server_user(&mut initdb, user, dir.path());
    run(&mut initdb).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("{e}\n(if this is a permission error, point TMPDIR at a directory the postgres user can enter)"),
        )
    })?;

    let port = try_free_port()?;
    let log_path = dir.path().join("postgres.log");
    let mut postgres = postgres_command(&bin_dir, dir.path(), port, user, durability);
    let mut process = ServerProcess::spawn("postgres", &mut postgres, &log_path)?;
    process.wait_for_ports(&[port], START_TIMEOUT)?;

    let pg = TestPostgres {
        port,
        bin_dir,
        dir: dir.path().to_owned(),
        log_path,
        durability,
    };
    // Register before waiting for readiness so a cluster that never becomes
    // ready is cleaned up too.
    register_for_exit(Running { process, dir, port })?;
    wait_until_ready(&pg)?;
    Ok(pg)
}

/// The server of the cluster in `dir` (data in `dir/data`, its socket in `dir/sock`) on `port`.
fn postgres_command(
    bin_dir: &Path,
    dir: &Path,
    port: u16,
    user: Option<(u32, u32)>,
    durability: Durability,
) -> Command {
    let mut postgres = Command::new(bin_dir.join("postgres"));
    postgres
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-p")
        .arg(port.to_string())
        .arg("-k")
        .arg(dir.join("sock"));
    for setting in [
        "listen_addresses=127.0.0.1",
        "max_connections=200",
        "timezone=UTC",
    ] {
        postgres.arg("-c").arg(setting);
    }
    if durability == Durability::Off {
        for setting in [
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
        ] {
            postgres.arg("-c").arg(setting);
        }
    }
    as_server_user(&mut postgres, user, dir);
    postgres
}

/// The port opens before recovery finishes ("the database system is
/// starting up"), so poll with a real query.
fn wait_until_ready(pg: &TestPostgres) -> io::Result<()> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        match pg.psql("postgres", "select 1") {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "PostgreSQL on port {} did not accept queries within {START_TIMEOUT:?}: {e}; {}",
                        pg.port,
                        log_tail(&pg.log_path, 4096)
                    ),
                ));
            }
            Err(_) => pause(Duration::from_millis(50)),
        }
    }
}

fn register_for_exit(running: Running) -> io::Result<()> {
    let mut list = lock(&RUNNING);
    if list.is_empty() {
        register_atexit()?;
    }
    list.push(running);
    Ok(())
}

/// Registers [`stop_all_at_exit`] once per process.
#[allow(unsafe_code)]
fn register_atexit() -> io::Result<()> {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    let mut rc = 0;
    REGISTERED.call_once(|| {
        // SAFETY: atexit(3) only stores the function pointer. The function is
        // `extern "C"`, never unwinds (it cannot panic: no indexing or
        // unwrap, and poisoned locks are recovered) and only uses statics
        // that live until the end of the process.
        rc = unsafe { libc::atexit(stop_all_at_exit) };
    });
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::other("atexit registration failed"))
    }
}

extern "C" fn stop_all_at_exit() {
    let running = std::mem::take(&mut *lock(&RUNNING));
    for Running {
        mut process, dir, ..
    } in running
    {
        // SIGQUIT is PostgreSQL's immediate shutdown: no checkpoint, but the
        // postmaster still reaps its backends and releases shared memory,
        // which SIGKILL would leak.
        process.stop_with(libc::SIGQUIT, Duration::from_secs(10));
        drop(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_cluster_creates_separate_databases() {
        let pg = TestPostgres::shared().unwrap();
        assert!(std::ptr::eq(pg, TestPostgres::shared().unwrap()));
        let a = pg.create_database("Roster-Test").unwrap();
        let b = pg.create_database("roster_test").unwrap();
        assert_ne!(a, b);
        let prefix = format!(
            "postgres://postgres@127.0.0.1:{}/roster_test_{}_",
            pg.port(),
            std::process::id()
        );
        assert!(a.starts_with(&prefix), "{a}");
        assert!(b.starts_with(&prefix), "{b}");

        for url in [&a, &b] {
            let out = pg
                .client("psql")
                .args(["-X", "-A", "-t", url, "-c", "select 1"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
        }
        let db_a = a.rsplit('/').next().unwrap();
        pg.psql(db_a, "create table t (x int); insert into t values (42)")
            .unwrap();
        let db_b = b.rsplit('/').next().unwrap();
        assert!(
            pg.psql(db_b, "select x from t").is_err(),
            "databases must be independent"
        );
        assert_eq!(pg.psql(db_a, "select x from t").unwrap().trim(), "42");

        let long = pg.create_database(&"x".repeat(100)).unwrap();
        assert!(long.rsplit('/').next().unwrap().len() <= 63);
        let odd = pg.create_database("9 lives!").unwrap();
        assert!(odd.contains("/db_9_lives_"), "{odd}");
    }
}
