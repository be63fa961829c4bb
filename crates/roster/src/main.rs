//! `roster`: the server (`roster serve`) and the administrator's command line.
//!
//! Exit codes are part of the contract (scripts rely on them):
//! 0 success · 1 failure (database, internal) · 2 invalid command line or input (a run that fails on
//! its settings, too) · 3 not found · 4 conflict (duplicate name or address, another run in progress, users
//! changed by someone else while a run was planned, a run that finished before it could be cancelled) ·
//! 5 a directory or the database is unavailable (unreachable, refused the service account, a failed or
//! partial read, a run stopped at its deadline; a restore in progress on the data directory) · 6 logon
//! refused or not permitted · 7 the run was cancelled (`roster runs cancel`, the API, or the server
//! stopping) · 8 the deletion guard stopped the sync (approve it or change the settings).
//! `roster sso check`: 0 every check passed · 2 the keytab can't be used · 5 the KDC check failed.
//! `roster db check`: 0 consistent · 1 a problem found (each listed on standard output;
//! AP021-database-inconsistent), or the database can't be read: an inconsistent database is a database
//! failure, so it takes code 1 like the others rather than a code of its own.
//! `roster backup`: 2 on PostgreSQL (use pg_dump) · 3 no database in the data directory · 4 the file exists.
//! `roster restore`: 2 a file that isn't a Roster backup, is damaged or is from a newer version (or
//! PostgreSQL) · 3 no such file · 4 a Roster process uses the data directory, or it holds a database and
//! --force wasn't given.
//! Every command: 2 when the configuration file can't be used (`config.rs`: a named file missing, a file
//! unreadable, an unknown key or a wrong value; CL002 to CL005), before anything else happens.

mod cli;
mod config;
mod database;
mod generate;
mod output;
mod sso_check;

use clap::{CommandFactory, FromArgMatches};
use std::process::ExitCode;

/// jemalloc for Rust's allocations. A sync of 100,000 users spent about a seventh of its samples in glibc's
/// malloc and free (the read's entries and ldap3's tag trees, the planner's keys, the apply's rows); with
/// jemalloc as set below the full sync and the re-sync took 7–8 % less, and their peak memory was lower
/// (BENCHMARKS.md, issue 26). Prefixed, so the C libraries (SQLite, GSSAPI) keep glibc's: jemalloc in
/// their place too was no faster, and its start deadlocks under an `LD_PRELOAD` that allocates in
/// `clock_gettime` (libfaketime, which the Kerberos tests use for a skewed clock).
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings, read when it starts. One arena for every thread: a sync frees on one thread what
/// the next phase allocates on another (the read's pages are prepared on a blocking thread, the plan runs
/// on one, the apply on a worker), and with an arena per thread, or two, the freed pages of one waited for
/// the decay while the other took new ones (a first sync's peak 141–143 MiB against 110–120 MiB). Freed
/// pages go back to the system after 300 ms (the default is 10 s; at 0 ms the apply's SQLite pages were
/// returned and faulted in again, and the full sync took up to 13 % longer).
#[allow(unsafe_code, non_upper_case_globals)]
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static malloc_conf: JemallocConf =
    JemallocConf(c"narenas:1,dirty_decay_ms:300,muzzy_decay_ms:0".as_ptr());

/// `const char *`, as jemalloc declares `malloc_conf`.
#[repr(transparent)]
pub struct JemallocConf(*const std::ffi::c_char);

// The pointer is to a string literal: 'static and never written.
#[allow(unsafe_code)]
unsafe impl Sync for JemallocConf {}

/// SQLite without its memory statistics (`SQLITE_CONFIG_MEMSTATUS`, on by default): with them, every
/// allocation SQLite makes takes a process-wide mutex to count itself, and a sync's apply makes several per
/// row (each bound text is copied). Nothing in Roster reads the statistics. `sqlite3_config` works only
/// before SQLite initializes, so this runs first in `main`; if it didn't take (SQLite already in use), the
/// statistics just stay on.
#[allow(unsafe_code)]
fn sqlite_without_memory_statistics() {
    // SAFETY: called once, at the start of `main`, before any thread or SQLite connection exists: nothing
    // else calls into SQLite at the same time. The option takes one `int`, passed as one.
    let off: std::ffi::c_int = 0;
    let rc = unsafe { rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, off) };
    debug_assert_eq!(rc, rusqlite::ffi::SQLITE_OK);
}

fn main() -> ExitCode {
    sqlite_without_memory_statistics();
    // One rustls crypto provider for the whole process: two in one build make rustls panic at the first
    // handshake, and ldap3 asks for the process default.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    // The matches, not only the parsed arguments: they say which options were given (command line,
    // environment) and which were left at their defaults, for the configuration file to fill in.
    let matches = cli::Args::command().get_matches();
    let mut args = cli::Args::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let config = config::apply(&mut args, &matches);
    // After the file, which may choose the log format; an error in the file is then logged as text.
    cli::init_tracing(&args);
    let config = match config {
        Ok(read) => read,
        Err(e) => {
            cli::notice(tracing::Level::ERROR, &format!("error [{}]: {e}", e.code()));
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            cli::notice(
                tracing::Level::ERROR,
                &format!("can't start the async runtime: {e}"),
            );
            return ExitCode::from(1);
        }
    };
    // The command runs on a worker thread, not on this one: `block_on`'s own thread is not a worker, so
    // every message ldap3's connection task (on a worker) hands it would wake it across threads, a
    // futex call per directory entry (100,000 in a sync of 100,000 users), and the entries allocated on
    // the worker would be freed here, under glibc's arena lock.
    let command = runtime.block_on(async move {
        tokio::spawn(cli::run(args, config))
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    });
    match command {
        Ok(code) => code,
        Err(e) => {
            let (code, exit) = cli::describe_error(&e);
            cli::notice(tracing::Level::ERROR, &format!("error [{code}]: {e:#}"));
            ExitCode::from(exit)
        }
    }
}
