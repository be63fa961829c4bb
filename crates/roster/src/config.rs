//! The configuration file: `roster serve`'s options as TOML keys, for a server installed as a service
//! (the Debian package's `/etc/roster/roster.toml`, `crates/roster/debian/roster.toml`).
//!
//! Every command reads it, not only `roster serve`: an administrator who runs `roster users list` on the
//! server must reach the same data directory or database as the service, not create a new database in
//! `./roster-data`. The file is `--config FILE`, else `ROSTER_CONFIG`, else `/etc/roster/roster.toml` if
//! it exists. A key is the long option's name with `_` for `-` (`data_dir`, `listen`, `tls_cert`…).
//! Precedence, per key: the command line, then the environment (both clap's), then the file, then the
//! built-in default. Clap says where each value came from (`ArgMatches::value_source`), so the file
//! fills in exactly the options that were left at their defaults.
//!
//! The file is refused as a whole, before anything starts, when a named file is missing, a file can't be
//! read, a key is unknown (a misspelt key would otherwise be ignored silently) or a value is wrong: every
//! such error names the file and the key and exits 2 (invalid input).

use crate::cli::{Args, Command, LogFormat, ServeArgs, SsoCommand};
use clap::ArgMatches;
use clap::parser::ValueSource;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Where the Debian package installs the file; read when it exists and no other file is named.
pub const DEFAULT_PATH: &str = "/etc/roster/roster.toml";

/// What the file may hold: the options of `roster serve` (the global ones and its own). Environment-only
/// settings stay out: `ROSTER_SECRET_KEY` (the key lives in the data directory, or in the environment of
/// instances that share PostgreSQL) and `ROSTER_ADMIN_PASSWORD` (first start only).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    log: Option<String>,
    log_format: Option<LogFormat>,
    run_deadline_seconds: Option<u64>,
    logon_free_failures: Option<u32>,
    logon_delays: Option<Vec<u32>>,
    logon_lock_after: Option<u32>,
    logon_lock_minutes: Option<u32>,
    listen: Option<String>,
    logon_limit_per_minute: Option<u32>,
    logon_limit_burst: Option<u32>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    keytab: Option<PathBuf>,
}

/// Every key of [`ConfigFile`]: each is also the id of a clap argument (checked by a test), which is
/// what [`apply`] asks clap about.
#[cfg(test)]
const KEYS: [&str; 15] = [
    "data_dir",
    "database_url",
    "log",
    "log_format",
    "run_deadline_seconds",
    "logon_free_failures",
    "logon_delays",
    "logon_lock_after",
    "logon_lock_minutes",
    "listen",
    "logon_limit_per_minute",
    "logon_limit_burst",
    "tls_cert",
    "tls_key",
    "keytab",
];

/// What to do about a key or value that toml refused (toml's message names the line and, for a key, the
/// keys there are; for a value, the values there are).
const FIX_HINT: &str = "correct or remove that line: the packaged /etc/roster/roster.toml and the \
     README (Configuration file) describe every key";

/// A configuration that can't be used. Each says which file and what to do; all exit 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "the configuration file {} named by {named_by} doesn't exist; create it, or name the right file",
        path.display()
    )]
    Missing {
        path: PathBuf,
        named_by: &'static str,
    },
    #[error("can't read the configuration file {}: {error}; {hint}", path.display())]
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
        hint: &'static str,
    },
    #[error("the configuration file {}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error(
        "HTTPS needs both a certificate and its key, but only {given} is set: set {missing} too \
         (--{missing_flag}, ROSTER_{missing_env} or {missing} in the configuration file), or neither for plain HTTP"
    )]
    TlsIncomplete {
        given: &'static str,
        missing: &'static str,
        missing_flag: &'static str,
        missing_env: &'static str,
    },
}

impl ConfigError {
    /// The stable code printed with the error (the binary's own errors are `CL…`).
    pub fn code(&self) -> &'static str {
        match self {
            ConfigError::Missing { .. } => "CL002-config-file-missing",
            ConfigError::Unreadable { .. } => "CL003-config-file-unreadable",
            ConfigError::Invalid { .. } => "CL004-config-file-invalid",
            ConfigError::TlsIncomplete { .. } => "CL005-tls-incomplete",
        }
    }
}

/// Whether the option `id` was left at its default (or unset), so that the file may set it.
fn left_to_the_file(matches: &ArgMatches, id: &str) -> bool {
    match matches.value_source(id) {
        None | Some(ValueSource::DefaultValue) => true,
        Some(ValueSource::CommandLine | ValueSource::EnvVariable) => false,
        // `ValueSource` is non-exhaustive: a source clap adds later is something the administrator
        // gave for this run, which wins over the file.
        Some(_) => false,
    }
}

/// Reads the configuration file, if any, into `args` wherever the command line and the environment left
/// an option at its default. Returns the file that was read (`None`: no file). `roster generate` reads
/// none: it describes the command line itself, and runs where nothing is installed.
pub fn apply(args: &mut Args, matches: &ArgMatches) -> Result<Option<PathBuf>, ConfigError> {
    if matches!(args.command, Command::Generate(_)) {
        return Ok(None);
    }
    let Some((path, file)) = read(args.config.as_deref(), matches)? else {
        check_tls(args)?;
        return Ok(None);
    };
    // A relative path in the file is relative to the file, not to wherever the command runs (as in the
    // directory settings' files).
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let resolve = |p: PathBuf| if p.is_relative() { base.join(p) } else { p };
    let ConfigFile {
        data_dir,
        database_url,
        log,
        log_format,
        run_deadline_seconds,
        logon_free_failures,
        logon_delays,
        logon_lock_after,
        logon_lock_minutes,
        listen,
        logon_limit_per_minute,
        logon_limit_burst,
        tls_cert,
        tls_key,
        keytab,
    } = file;
    let invalid = |message: String| ConfigError::Invalid {
        path: path.clone(),
        message,
    };
    if run_deadline_seconds == Some(0) {
        return Err(invalid(
            "run_deadline_seconds = 0: a run needs at least 1 second; give the longest a \
             synchronization may take, e.g. 3600"
                .into(),
        ));
    }
    if logon_delays.as_ref().is_some_and(Vec::is_empty) {
        return Err(invalid(
            "logon_delays = []: give at least one wait in seconds, e.g. [1, 3, 5, 10], or remove the key"
                .into(),
        ));
    }

    // Each option, global or `roster serve`'s, only where nothing more specific set it.
    macro_rules! fill {
        ($matches:expr, $id:literal, $target:expr, $value:expr) => {
            if let Some(value) = $value
                && left_to_the_file($matches, $id)
            {
                $target = value;
            }
        };
    }
    fill!(matches, "data_dir", args.data_dir, data_dir.map(resolve));
    fill!(
        matches,
        "database_url",
        args.database_url,
        database_url.map(Some)
    );
    fill!(matches, "log", args.log, log);
    fill!(matches, "log_format", args.log_format, log_format);
    fill!(
        matches,
        "run_deadline_seconds",
        args.run_deadline_seconds,
        run_deadline_seconds
    );
    fill!(
        matches,
        "logon_free_failures",
        args.logon_free_failures,
        logon_free_failures
    );
    fill!(matches, "logon_delays", args.logon_delays, logon_delays);
    fill!(
        matches,
        "logon_lock_after",
        args.logon_lock_after,
        logon_lock_after
    );
    fill!(
        matches,
        "logon_lock_minutes",
        args.logon_lock_minutes,
        logon_lock_minutes
    );
    match &mut args.command {
        Command::Serve(serve) => {
            if let Some(m) = matches.subcommand_matches("serve") {
                fill!(m, "listen", serve.listen, listen);
                fill!(
                    m,
                    "logon_limit_per_minute",
                    serve.logon_limit_per_minute,
                    logon_limit_per_minute
                );
                fill!(
                    m,
                    "logon_limit_burst",
                    serve.logon_limit_burst,
                    logon_limit_burst
                );
                fill!(
                    m,
                    "tls_cert",
                    serve.tls_cert,
                    tls_cert.map(resolve).map(Some)
                );
                fill!(m, "tls_key", serve.tls_key, tls_key.map(resolve).map(Some));
                fill!(m, "keytab", serve.keytab, keytab.map(resolve).map(Some));
            }
        }
        // `roster sso check` checks the keytab the server would use.
        Command::Sso(SsoCommand::Check { keytab: checked }) => {
            if let Some(m) = matches
                .subcommand_matches("sso")
                .and_then(|m| m.subcommand_matches("check"))
            {
                fill!(m, "keytab", *checked, keytab.map(resolve).map(Some));
            }
        }
        // The other commands use the global options only.
        Command::Generate(_)
        | Command::Users(_)
        | Command::Privileges(_)
        | Command::Directory(_)
        | Command::Sync { .. }
        | Command::Runs(_)
        | Command::Folders(_)
        | Command::Audit { .. }
        | Command::Backup { .. }
        | Command::Restore { .. }
        | Command::Db(_)
        | Command::Logon { .. } => {}
    }
    check_tls(args)?;
    Ok(Some(path))
}

/// The file named by `--config` or `ROSTER_CONFIG`, else the default one if it exists, parsed.
fn read(
    named: Option<&Path>,
    matches: &ArgMatches,
) -> Result<Option<(PathBuf, ConfigFile)>, ConfigError> {
    let (path, named_by) = match named {
        Some(path) => {
            let named_by = match matches.value_source("config") {
                Some(ValueSource::EnvVariable) => "ROSTER_CONFIG",
                _ => "--config",
            };
            (path.to_path_buf(), Some(named_by))
        }
        None => (PathBuf::from(DEFAULT_PATH), None),
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return match named_by {
                // No file where the package would put one: the built-in defaults.
                None => Ok(None),
                Some(named_by) => Err(ConfigError::Missing { path, named_by }),
            };
        }
        Err(error) => {
            let hint = if error.kind() == std::io::ErrorKind::PermissionDenied {
                "it is readable by root and the group roster: run roster as the service's user \
                 (sudo -u roster roster …), or name another file with --config or ROSTER_CONFIG"
            } else {
                "give a readable TOML file with --config or ROSTER_CONFIG"
            };
            return Err(ConfigError::Unreadable { path, error, hint });
        }
    };
    let file = toml::from_str::<ConfigFile>(&text).map_err(|e| ConfigError::Invalid {
        // toml's message names the line, shows it, and says what is wrong with the key or value.
        message: format!("{}\n{FIX_HINT}", e.to_string().trim_end()),
        path: path.clone(),
    })?;
    Ok(Some((path, file)))
}

/// HTTPS needs both files, wherever each came from (the command line, the environment, the file).
fn check_tls(args: &Args) -> Result<(), ConfigError> {
    let Command::Serve(ServeArgs {
        tls_cert, tls_key, ..
    }) = &args.command
    else {
        return Ok(());
    };
    match (tls_cert, tls_key) {
        (Some(_), Some(_)) | (None, None) => Ok(()),
        (Some(_), None) => Err(ConfigError::TlsIncomplete {
            given: "tls_cert",
            missing: "tls_key",
            missing_flag: "tls-key",
            missing_env: "TLS_KEY",
        }),
        (None, Some(_)) => Err(ConfigError::TlsIncomplete {
            given: "tls_key",
            missing: "tls_cert",
            missing_flag: "tls-cert",
            missing_env: "TLS_CERT",
        }),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use clap::{CommandFactory, FromArgMatches};

    /// Parses `argv` with the file `text` as `--config`, the environment as it is.
    fn parse(text: &str, argv: &[&str]) -> Result<(Args, Option<PathBuf>), ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("roster.toml");
        std::fs::write(&file, text).unwrap();
        let mut full = vec!["roster".to_owned(), "--config".to_owned()];
        full.push(file.to_string_lossy().into_owned());
        full.extend(argv.iter().map(|s| (*s).to_owned()));
        let matches = Args::command().try_get_matches_from(full).unwrap();
        let mut args = Args::from_arg_matches(&matches).unwrap();
        let read = apply(&mut args, &matches)?;
        Ok((args, read))
    }

    fn serve(args: &Args) -> &ServeArgs {
        match &args.command {
            Command::Serve(s) => s,
            other => panic!("not serve: {other:?}"),
        }
    }

    #[test]
    fn every_key_is_an_option_of_roster_serve() {
        let command = Args::command();
        let serve = command.find_subcommand("serve").unwrap();
        for key in KEYS {
            assert!(
                command.get_arguments().any(|a| a.get_id() == key)
                    || serve.get_arguments().any(|a| a.get_id() == key),
                "{key} is no option of roster serve"
            );
        }
        // Every key parses, so KEYS lists the struct's fields.
        let all = KEYS.map(|k| format!("{k} = {}", sample(k))).join("\n");
        toml::from_str::<ConfigFile>(&all).unwrap();
    }

    fn sample(key: &str) -> &'static str {
        match key {
            "log_format" => "\"json\"",
            "logon_delays" => "[1]",
            k if k.starts_with("logon") || k == "run_deadline_seconds" => "1",
            _ => "\"x\"",
        }
    }

    #[test]
    fn the_file_fills_in_what_the_command_line_left_at_its_default() {
        let (args, read) = parse(
            "data_dir = \"data\"\nlisten = \"0.0.0.0:8443\"\nlog_format = \"json\"\n\
             tls_cert = \"/etc/ssl/roster.pem\"\ntls_key = \"key.pem\"\nlogon_delays = [2, 4]\n",
            &["serve", "--listen", "127.0.0.1:9000"],
        )
        .unwrap();
        let dir = read.unwrap().parent().unwrap().to_path_buf();
        assert_eq!(args.data_dir, dir.join("data"), "relative to the file");
        assert_eq!(args.log_format, LogFormat::Json);
        assert_eq!(args.logon_delays, [2, 4]);
        let s = serve(&args);
        assert_eq!(s.listen, "127.0.0.1:9000", "the command line wins");
        assert_eq!(
            s.tls_cert.as_deref(),
            Some(Path::new("/etc/ssl/roster.pem"))
        );
        assert_eq!(s.tls_key, Some(dir.join("key.pem")));
        assert_eq!(s.logon_limit_burst, 100, "the built-in default");
    }

    #[test]
    fn a_global_option_after_the_subcommand_still_wins() {
        let (args, _) = parse("data_dir = \"/srv/a\"", &["serve", "--data-dir", "/srv/b"]).unwrap();
        assert_eq!(args.data_dir, Path::new("/srv/b"));
        let (args, _) = parse("data_dir = \"/srv/a\"", &["users", "list"]).unwrap();
        assert_eq!(args.data_dir, Path::new("/srv/a"));
    }

    #[test]
    fn unknown_keys_and_wrong_values_name_the_file_and_the_key() {
        let e = parse("lisen = \"0.0.0.0:80\"", &["serve"]).unwrap_err();
        assert_eq!(e.code(), "CL004-config-file-invalid");
        let m = e.to_string();
        assert!(
            m.contains("roster.toml") && m.contains("lisen") && m.contains("listen"),
            "{m}"
        );
        let m = parse("log_format = \"xml\"", &["serve"])
            .unwrap_err()
            .to_string();
        assert!(m.contains("log_format") && m.contains("json"), "{m}");
        let m = parse("run_deadline_seconds = 0", &["serve"])
            .unwrap_err()
            .to_string();
        assert!(m.contains("run_deadline_seconds"), "{m}");
        let e = parse("tls_cert = \"c.pem\"", &["serve"]).unwrap_err();
        assert_eq!(e.code(), "CL005-tls-incomplete", "{e}");
        assert!(e.to_string().contains("--tls-key"), "{e}");
    }

    #[test]
    fn a_named_file_must_exist() {
        let matches = Args::command()
            .try_get_matches_from(["roster", "--config", "/nonexistent/roster.toml", "serve"])
            .unwrap();
        let mut args = Args::from_arg_matches(&matches).unwrap();
        let e = apply(&mut args, &matches).unwrap_err();
        assert_eq!(e.code(), "CL002-config-file-missing");
        assert!(e.to_string().contains("--config"), "{e}");
    }
}
