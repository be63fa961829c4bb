//! `roster`: the server (`roster serve`) and the administrator's command line.
//!
//! Exit codes are part of the contract (scripts rely on them):
//! 0 success · 1 failure (database, internal) · 2 invalid command line or input (a run that fails on
//! its settings, too) · 3 not found · 4 conflict (duplicate name or address, another run in progress, users
//! changed by someone else while a run was planned, a run that finished before it could be cancelled) ·
//! 5 a directory or the database is unavailable (unreachable, refused the service account, a failed or
//! partial read, a run stopped at its deadline) · 6 logon refused or not permitted · 7 the run was
//! cancelled (`roster runs cancel`, the API, or the server stopping).
//! `roster sso check`: 0 every check passed · 2 the keytab can't be used · 5 the KDC check failed.

mod cli;
mod output;
mod sso_check;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // One rustls crypto provider for the whole process: two in one build make rustls panic at the first
    // handshake, and ldap3 asks for the process default.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let args = cli::Args::parse();
    cli::init_tracing(&args);
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
    match runtime.block_on(cli::run(args)) {
        Ok(code) => code,
        Err(e) => {
            let (code, exit) = cli::describe_error(&e);
            cli::notice(tracing::Level::ERROR, &format!("error [{code}]: {e:#}"));
            ExitCode::from(exit)
        }
    }
}
