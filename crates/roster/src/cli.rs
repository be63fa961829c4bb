//! Command-line parsing and dispatch. Every command works on the data directory (or PostgreSQL) directly
//! through `roster_app::Roster`, as the local administrator; it is safe while `roster serve` runs on the same
//! data (SQLite WAL, one transaction per change, runs serialized in the database). The exception is
//! `roster restore`, which replaces the database and needs the data directory to itself (`database.rs`).

use crate::output;
use anyhow::{Context, Result, anyhow};
use clap::{Parser, Subcommand};
use roster_app::{
    AppError, Caller, ErrorKind, NewUserInput, PrivilegesInput, Roster, SessionPolicy,
};
use roster_app::{RunKind, RunStatus};
use roster_core::directory::DirectorySettings;
use roster_core::privileges::{DefaultPrivileges, parse_privilege_list, parse_right_list};
use roster_core::user::AuthMethod;
// Opening the store is the binary's job (it puts the parts together); everything else goes through Roster.
use roster_store::{StoreError, StoreLocation};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(
    name = "roster",
    version,
    about = "Users and privileges of the email archive, in step with your directory."
)]
pub struct Args {
    /// The configuration file: the options below and `roster serve`'s as TOML keys (`data_dir`,
    /// `database_url`, `listen`, `tls_cert`, `tls_key`, `keytab`, `log_format`…), each the long option
    /// with `_` for `-`. The command line and the environment win over it. Default:
    /// /etc/roster/roster.toml, when it exists.
    #[arg(long, global = true, env = "ROSTER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where the embedded database, the secret key and other state live.
    #[arg(
        long,
        global = true,
        env = "ROSTER_DATA_DIR",
        default_value = "./roster-data"
    )]
    pub data_dir: PathBuf,
    /// Use PostgreSQL instead of the embedded SQLite (postgres://user@host/db).
    #[arg(
        long,
        global = true,
        env = "ROSTER_DATABASE_URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// Log filter, e.g. `info` or `roster=debug`. The default keeps ldap3's own warnings (a socket error,
    /// already reported as Roster's coded error with advice) from appearing twice in raw form.
    #[arg(
        long,
        global = true,
        env = "ROSTER_LOG",
        default_value = "warn,ldap3=error"
    )]
    pub log: String,
    /// How log lines are written to standard error: `text`, for people, or `json`, one JSON object a
    /// line (tracing-subscriber's JSON format), for a log collector. In JSON, the binary's own messages
    /// ("serving on …", errors) are log events too, so that every line is JSON.
    #[arg(
        long,
        global = true,
        env = "ROSTER_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
    /// How long a preview or synchronization may take, in seconds: past it the run is stopped, fails
    /// with AP015-run-deadline and changes nothing (a sync that has begun to commit finishes).
    #[arg(
        long,
        global = true,
        env = "ROSTER_RUN_DEADLINE_SECONDS",
        default_value_t = roster_app::DEFAULT_RUN_DEADLINE_SECONDS,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub run_deadline_seconds: u64,
    /// Logon throttling per account: failed logons in a row after which each attempt must wait.
    #[arg(
        long,
        global = true,
        env = "ROSTER_LOGON_FREE_FAILURES",
        default_value_t = 3
    )]
    pub logon_free_failures: u32,
    /// The waits, in seconds, after those failures, comma-separated; the last repeats.
    #[arg(
        long,
        global = true,
        env = "ROSTER_LOGON_DELAYS",
        default_value = "1,3,5,10",
        value_delimiter = ','
    )]
    pub logon_delays: Vec<u32>,
    /// Failed logons in a row that lock the account.
    #[arg(
        long,
        global = true,
        env = "ROSTER_LOGON_LOCK_AFTER",
        default_value_t = 20
    )]
    pub logon_lock_after: u32,
    /// How long a lock lasts, in minutes.
    #[arg(
        long,
        global = true,
        env = "ROSTER_LOGON_LOCK_MINUTES",
        default_value_t = 15
    )]
    pub logon_lock_minutes: u32,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum SsoCommand {
    /// Check the keytab `roster serve --keytab` would use: readable, its principals, the DNS name of
    /// each HTTP/ host, and a ticket from the KDC accepted with the keytab's key (which also shows
    /// clock skew). Exit 0: all passed; 2: the keytab can't be used; 5: the KDC check failed.
    Check {
        /// The keytab; default: `keytab` in the configuration file.
        #[arg(long, env = "ROSTER_KEYTAB")]
        keytab: Option<PathBuf>,
    },
}

/// `roster serve`'s own options (each can also be a key of the configuration file).
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The address and port to listen on.
    #[arg(long, env = "ROSTER_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Logon attempts one client address may make a minute, after its burst (0: no limit); over it,
    /// POST /api/v1/sessions answers 429 with Retry-After.
    #[arg(long, env = "ROSTER_LOGON_LIMIT_PER_MINUTE", default_value_t = 120)]
    pub logon_limit_per_minute: u32,
    /// Logon attempts one client address may make at once (0: no limit).
    #[arg(long, env = "ROSTER_LOGON_LIMIT_BURST", default_value_t = 100)]
    pub logon_limit_burst: u32,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key. The console's session cookie is
    /// then `Secure`.
    // Not clap's `requires`: the key may come from the configuration file, which clap doesn't see;
    // `config::apply` checks the pair once every source is in.
    #[arg(long, env = "ROSTER_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "ROSTER_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Enable single sign-on (Kerberos, HTTP Negotiate at /api/v1/sessions/negotiate) with this
    /// keytab, holding the key of HTTP/<the name users reach this server by>.
    #[arg(long, env = "ROSTER_KEYTAB")]
    pub keytab: Option<PathBuf>,
}

/// `roster generate`: what packaging needs from the command line's own definitions.
#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Print the completion script for SHELL on standard output.
    Completions { shell: clap_complete::Shell },
    /// Write the man pages, roster.1 and one per subcommand (roster-serve.1…), into DIR.
    Man { dir: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: the web console at /, the REST API under /api/v1.
    Serve(ServeArgs),
    /// Single sign-on (Kerberos).
    #[command(subcommand)]
    Sso(SsoCommand),
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Default privileges for users created by synchronization.
    #[command(subcommand)]
    Privileges(PrivilegesCommand),
    /// Directory settings.
    #[command(subcommand)]
    Directory(DirectoryCommand),
    /// Synchronize now (or, with --preview, Test Settings: show what would happen and commit nothing).
    Sync {
        #[arg(long, conflicts_with = "approve")]
        preview: bool,
        /// Approve a sync that the deletion guard stopped (exit code 8): reads the directory again and
        /// applies only if the new plan deletes the same users.
        #[arg(long, value_name = "RUN_ID")]
        approve: Option<i64>,
        /// Only this user: read their entry (by their link, else by name, within the settings' scope)
        /// and apply only their part of the plan (create, update, or delete if they left). For a new
        /// hire who must log on now.
        #[arg(long, value_name = "NAME", conflicts_with = "approve")]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// The history of previews and synchronizations.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Archive folders.
    #[command(subcommand)]
    Folders(FoldersCommand),
    /// The audit log, newest first; --actor, --action and --target keep the lines whose field contains
    /// the text (ignoring the case of ASCII letters), e.g. `roster audit --action user. --target alice`.
    Audit {
        #[arg(long, default_value_t = 50)]
        limit: i64,
        #[arg(long, default_value_t = 0)]
        offset: i64,
        /// Who: a user name, cli:<os user>…
        #[arg(long)]
        actor: Option<String>,
        /// What: user.privileges, logon.failed, directory.sync…
        #[arg(long)]
        action: Option<String>,
        /// Which: a user name, "run #12", a setting's key…
        #[arg(long)]
        target: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Back up the embedded database while Roster runs: a consistent copy, with the secret key that
    /// decrypts the stored directory password, in one new file readable by you only (it holds password
    /// hashes and the key: keep it as safe as the data directory). Never overwrites a file. With
    /// PostgreSQL, use pg_dump instead (see the README).
    Backup {
        /// The backup file to create; it must not exist.
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Restore a backup into a stopped data directory (no roster serve or other roster command may use
    /// it). Refuses a file that isn't a Roster backup or comes from a newer version. A data directory that
    /// already holds a database is replaced only with --force, which keeps the previous database and key
    /// in a before-restore-<time> directory inside it.
    Restore {
        /// A file made by `roster backup`.
        file: PathBuf,
        /// Replace the database the data directory holds (it is kept in before-restore-<time>/, with
        /// its key, not deleted).
        #[arg(long)]
        force: bool,
        #[arg(long)]
        json: bool,
    },
    /// The database itself.
    #[command(subcommand)]
    Db(DbCommand),
    /// Test a logon: checks NAME's password (local or directory) and the log_on privilege. The password is
    /// read from ROSTER_PASSWORD, or from standard input.
    Logon {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Shell completions and man pages, generated from these definitions (for packaging:
    /// scripts/package.sh).
    #[command(subcommand, hide = true)]
    Generate(GenerateCommand),
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Check the database: the invariants the schema can't express (rows that refer to nothing, users
    /// without their folder, stale name keys…), SQLite's integrity check, and that the stored directory
    /// password can be decrypted with the key in use. Exit 0: consistent; 1: problems, each listed
    /// (AP021-database-inconsistent), or the database can't be read.
    Check {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// List users.
    List {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 0)]
        offset: i64,
        /// At most this many (default: all).
        #[arg(long)]
        limit: Option<i64>,
    },
    /// Show one user.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Clear a name's failed logons and lock (logon throttling), so the user can log on at once.
    Unlock { name: String },
    /// Add a user. A local user's password comes from ROSTER_NEW_PASSWORD or standard input.
    Add {
        name: String,
        #[arg(long, default_value = "")]
        full_name: String,
        /// An email address (repeat for more).
        #[arg(long = "email")]
        emails: Vec<String>,
        #[arg(long, value_parser = parse_auth, default_value = "local")]
        auth: AuthMethod,
        /// Comma-separated; default: the default privileges.
        #[arg(long)]
        privileges: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Change a user's full name or addresses.
    Update {
        name: String,
        #[arg(long)]
        full_name: Option<String>,
        /// Replaces the addresses (repeat for more; give --email "" to remove all).
        #[arg(long = "email")]
        emails: Option<Vec<String>>,
        #[arg(long)]
        json: bool,
    },
    /// Delete a user (an archive folder that holds messages is kept).
    Remove { name: String },
    /// Set global privileges (comma-separated) and folder access (--folder NAME=read,write).
    SetPrivileges {
        name: String,
        #[arg(long)]
        privileges: String,
        #[arg(long = "folder")]
        folders: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Set how a user logs on: local (Roster password) or directory.
    SetAuth {
        name: String,
        #[arg(value_parser = parse_auth)]
        auth: AuthMethod,
    },
    /// Set a user's local password (from ROSTER_NEW_PASSWORD or standard input).
    SetPassword { name: String },
}

#[derive(Debug, Subcommand)]
pub enum PrivilegesCommand {
    #[command(subcommand)]
    Defaults(DefaultsCommand),
}

#[derive(Debug, Subcommand)]
pub enum DefaultsCommand {
    Show {
        #[arg(long)]
        json: bool,
    },
    /// e.g. `--privileges log_on,archive_email --own-folder read`
    Set {
        #[arg(long)]
        privileges: String,
        #[arg(long, default_value = "read")]
        own_folder: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DirectoryCommand {
    /// Show the settings (never the password).
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Replace the settings with a TOML file (leave out `password` to keep the stored one).
    Set {
        #[arg(long)]
        file: PathBuf,
    },
    /// List the domains on the directory's server, for `domains` (IceWarp).
    Domains {
        #[arg(long)]
        json: bool,
    },
    /// List the groups on the directory's server, for `groups` (IceWarp, Kerio Connect, Active
    /// Directory).
    Groups {
        /// Only groups whose name or address (DN) contains this, ignoring case.
        #[arg(long)]
        search: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    List {
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a running run, whichever process runs it (the server, another `roster sync`). It stops
    /// without changing anything; a sync that is already committing finishes (exit code 4,
    /// ST014-run-finished). Waits up to 30 s for the run to stop and shows it.
    Cancel {
        id: i64,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum FoldersCommand {
    List {
        #[arg(long)]
        json: bool,
    },
    /// Set a folder's message count (no mail store yet: this exercises the deletion rules).
    SetCount { folder: String, count: i64 },
}

fn parse_auth(raw: &str) -> std::result::Result<AuthMethod, String> {
    AuthMethod::parse(raw).ok_or_else(|| format!("{raw:?}: use local or directory"))
}

/// The target of the binary's own messages to the administrator in JSON mode ([`notice`]): always
/// shown, whatever `--log` says.
const NOTICE_TARGET: &str = "roster::notice";

/// Whether log lines are JSON (set once, by [`init_tracing`]).
static JSON_LOGS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn init_tracing(args: &Args) {
    let mut filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // A run's phases (read, snapshot, plan, apply, record) are spans: at `ROSTER_LOG=info` each one's
    // end is a line with its time, which shows where a slow run spends it.
    let span_events = tracing_subscriber::fmt::format::FmtSpan::CLOSE;
    match args.log_format {
        LogFormat::Text => {
            // Colour codes only for a person at a terminal: in a file, a pipe or the journal they are
            // noise.
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let _ = tracing_subscriber::fmt()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_ansi(ansi)
                .with_span_events(span_events)
                .try_init();
        }
        LogFormat::Json => {
            if let Ok(notices) = format!("{NOTICE_TARGET}=info").parse() {
                filter = filter.add_directive(notices);
            }
            JSON_LOGS.store(true, std::sync::atomic::Ordering::Relaxed);
            let _ = tracing_subscriber::fmt()
                .json()
                .with_env_filter(filter)
                .with_writer(std::io::stderr)
                .with_span_events(span_events)
                .try_init();
        }
    }
}

/// A message of the binary's own to the administrator, on standard error: `roster: <text>`, or in JSON
/// mode a log event at `level` (target `roster::notice`), so that every line is JSON.
pub fn notice(level: tracing::Level, text: &str) {
    if !JSON_LOGS.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("roster: {text}");
    } else if level == tracing::Level::ERROR {
        tracing::error!(target: NOTICE_TARGET, "{text}");
    } else if level == tracing::Level::WARN {
        tracing::warn!(target: NOTICE_TARGET, "{text}");
    } else {
        tracing::info!(target: NOTICE_TARGET, "{text}");
    }
}

/// [`notice`] at `info`.
pub fn say(text: &str) {
    notice(tracing::Level::INFO, text);
}

/// The stable code and the exit code of an error.
pub fn describe_error(e: &anyhow::Error) -> (String, u8) {
    if let Some(app) = e.downcast_ref::<AppError>() {
        let exit = match app.kind() {
            ErrorKind::BadRequest => 2,
            ErrorKind::NotFound => 3,
            ErrorKind::Conflict => 4,
            ErrorKind::Unavailable => 5,
            ErrorKind::Unauthenticated | ErrorKind::Forbidden => 6,
            ErrorKind::Cancelled => 7,
            ErrorKind::Guarded => 8,
            ErrorKind::Internal => 1,
        };
        return (app.code().to_owned(), exit);
    }
    ("CL001-failed".to_owned(), 1)
}

/// The use cases on the database; `observer` hears about runs and logons (`roster serve`'s metrics).
async fn open(
    args: &Args,
    observer: Option<Arc<dyn roster_app::observe::Observer>>,
) -> Result<Arc<Roster>> {
    let location = match &args.database_url {
        Some(url) if !url.is_empty() => StoreLocation::Postgres(url.clone()),
        _ => StoreLocation::Sqlite(args.data_dir.clone()),
    };
    let store = roster_store::open(&location)
        .await
        .map_err(AppError::from)?;
    let secret_env = std::env::var("ROSTER_SECRET_KEY").ok();
    let secrets = roster_app::secrets::SecretBox::load(&args.data_dir, secret_env.as_deref())?;
    let roster = Roster::new(
        store,
        Arc::new(SystemClock),
        secrets,
        SessionPolicy::default(),
    )
    .with_run_deadline(std::time::Duration::from_secs(args.run_deadline_seconds))
    .with_throttle_policy(roster_core::throttle::ThrottlePolicy {
        free_failures: args.logon_free_failures,
        delays_seconds: args.logon_delays.clone(),
        lock_after: args.logon_lock_after,
        lock_seconds: args.logon_lock_minutes.saturating_mul(60),
    });
    let roster = match observer {
        Some(observer) => roster.with_observer(observer),
        None => roster,
    };
    let admin_password = std::env::var("ROSTER_ADMIN_PASSWORD").ok();
    let boot = roster.bootstrap(admin_password.as_deref()).await?;
    if let Some(p) = boot.generated_admin_password {
        say(&format!(
            "created the built-in administrator `admin` with the password:\n\n    {p}\n\nIt is shown only this once. Change it with `roster users set-password admin`."
        ));
    } else if boot.admin_created {
        say(
            "created the built-in administrator `admin` with the password from ROSTER_ADMIN_PASSWORD.",
        );
    }
    Ok(Arc::new(roster))
}

/// The wall clock: the one place that reads it.
#[derive(Debug)]
struct SystemClock;

impl roster_core::Clock for SystemClock {
    #[allow(clippy::disallowed_methods)]
    fn now(&self) -> roster_core::Timestamp {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        roster_core::Timestamp(ms)
    }
}

/// The administrator at the machine, named by the operating system's account of this process (the audit
/// log's `cli:<name>`): not `$USER`, which systemd units and containers leave unset (and anyone can set).
/// Without a passwd entry (a container started with a bare uid), the uid itself.
fn local_caller() -> Caller {
    let who = whoami::username().unwrap_or_else(|_| {
        // /proc/self belongs to the process's effective uid.
        match std::fs::metadata("/proc/self") {
            Ok(m) => format!("uid-{}", std::os::unix::fs::MetadataExt::uid(&m)),
            Err(_) => "unknown".into(),
        }
    });
    Caller::Local(who)
}

/// A secret from an environment variable or standard input (never from the command line, where other
/// users of the machine could read it in the process list).
fn read_secret(env: &str, prompt: &str) -> Result<String> {
    if let Ok(v) = std::env::var(env) {
        return Ok(v);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("{prompt}: ");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Runs the command; `config` is the configuration file that was read, if any.
pub async fn run(args: Args, config: Option<PathBuf>) -> Result<ExitCode> {
    // Needs no database: it only looks at the keytab and the KDC.
    if let Command::Sso(SsoCommand::Check { keytab }) = &args.command {
        let keytab = keytab.as_deref().ok_or_else(|| {
            AppError::Invalid(
                "no keytab to check: give --keytab FILE, ROSTER_KEYTAB, or keytab in the configuration file"
                    .into(),
            )
        })?;
        return Ok(crate::sso_check::run(keytab).await);
    }
    // Needs no database either: it describes the command line.
    if let Command::Generate(cmd) = &args.command {
        crate::generate::run(cmd)?;
        return Ok(ExitCode::SUCCESS);
    }
    match &args.command {
        // Before the store is opened: that would create a database, and hold the lock a restore takes.
        Command::Restore { file, force, json } => {
            let now = roster_core::Clock::now(&SystemClock);
            crate::database::restore(&args, file, *force, now, *json).await?;
            return Ok(ExitCode::SUCCESS);
        }
        Command::Backup { .. } => {
            crate::database::refuse_postgres(&args)?;
            crate::database::require_database(&args)?;
        }
        Command::Db(_) => crate::database::require_database(&args)?,
        _ => {}
    }
    // `roster serve` counts runs, logons and requests for GET /metrics.
    let metrics = Arc::new(roster_server::Metrics::new());
    let observer: Option<Arc<dyn roster_app::observe::Observer>> =
        matches!(args.command, Command::Serve(_)).then(|| metrics.clone() as _);
    let roster = open(&args, observer).await?;
    let me = local_caller();
    let outcome: Result<ExitCode> = async {
        match args.command {
            Command::Serve(ServeArgs {
                listen,
                logon_limit_per_minute,
                logon_limit_burst,
                tls_cert,
                tls_key,
                keytab,
            }) => {
                if let Some(path) = &config {
                    say(&format!("configuration from {}", path.display()));
                }
                let limits = roster_server::LogonLimits {
                    per_minute: logon_limit_per_minute,
                    burst: logon_limit_burst,
                };
                let tls = tls_cert.zip(tls_key);
                let sso = match keytab {
                    None => None,
                    Some(path) => Some(Arc::new(
                        roster_server::SingleSignOn::from_keytab(&path).map_err(|e| {
                            AppError::Invalid(format!(
                                "--keytab {}: {e}; {}",
                                path.display(),
                                e.hint()
                            ))
                        })?,
                    )),
                };
                serve(roster.clone(), &listen, limits, metrics, tls, sso).await?
            }
            Command::Sso(SsoCommand::Check { .. }) => {}
            Command::Generate(_) => {}
            Command::Restore { .. } => {}
            Command::Backup { file, json } => {
                crate::database::backup(&roster, &me, &args.data_dir, &file, json).await?
            }
            Command::Db(DbCommand::Check { json }) => {
                crate::database::check(&roster, &me, json).await?
            }
            Command::Users(cmd) => users(&roster, &me, cmd).await?,
            Command::Privileges(PrivilegesCommand::Defaults(cmd)) => match cmd {
                DefaultsCommand::Show { json } => {
                    let d = roster.default_privileges(&me).await?;
                    output::defaults(&d, json)?;
                }
                DefaultsCommand::Set {
                    privileges,
                    own_folder,
                } => {
                    let defaults = DefaultPrivileges {
                        privileges: parse_privilege_list(&privileges)
                            .map_err(|e| AppError::Invalid(e.to_string()))?,
                        own_folder: parse_right_list(&own_folder)
                            .map_err(|e| AppError::Invalid(e.to_string()))?,
                    };
                    let d = roster.set_default_privileges(&me, defaults).await?;
                    output::defaults(&d, false)?;
                }
            },
            Command::Directory(cmd) => match cmd {
                DirectoryCommand::Show { json } => {
                    let v = roster.directory_settings(&me).await?;
                    output::directory(&v, json)?;
                }
                DirectoryCommand::Set { file } => {
                    let text = std::fs::read_to_string(&file)
                        .with_context(|| format!("reading {}", file.display()))
                        .map_err(|e| AppError::Invalid(format!("{e:#}")))?;
                    let mut settings: DirectorySettings = toml::from_str(&text)
                        .map_err(|e| AppError::Invalid(format!("{}: {e}", file.display())))?;
                    // A relative path (the LDIF file, a CA file) is relative to the settings file, not to
                    // wherever the server runs.
                    let base = file.parent().unwrap_or(std::path::Path::new("."));
                    let resolve = |path: &mut std::path::PathBuf| {
                        if path.is_relative() {
                            *path = std::path::absolute(base.join(&*path))
                                .unwrap_or_else(|_| base.join(&*path));
                        }
                    };
                    if let Some((_, typed)) = settings.configured_mut() {
                        for (_, path) in typed.file_paths_mut() {
                            resolve(path);
                        }
                    }
                    let v = roster.set_directory_settings(&me, settings).await?;
                    say("directory settings saved.");
                    output::directory(&v, false)?;
                }
                DirectoryCommand::Domains { json } => {
                    let domains = roster.directory_domains(&me).await?;
                    output::directory_domains(&domains, json)?;
                }
                DirectoryCommand::Groups { search, json } => {
                    let groups = roster.directory_groups(&me, search.as_deref()).await?;
                    output::directory_groups(&groups, json)?;
                }
            },
            Command::Sync {
                preview,
                approve,
                user,
                json,
            } => {
                let kind = if preview {
                    RunKind::Preview
                } else {
                    RunKind::Sync
                };
                let progress = output::Progress::new();
                let report = match (approve, user) {
                    (Some(stopped), _) => roster.approve_run(&me, stopped, "cli", &progress).await,
                    (None, Some(name)) => {
                        roster
                            .run_directory_for_user(&me, kind, &name, "cli", &progress)
                            .await
                    }
                    (None, None) => roster.run_directory(&me, kind, "cli", &progress).await,
                };
                progress.finish();
                output::report(&report?, json)?;
            }
            Command::Runs(cmd) => match cmd {
                RunsCommand::List { limit, json } => {
                    let page = roster.list_runs(&me, 0, limit).await?;
                    output::runs(&page.items, json)?;
                }
                RunsCommand::Show { id, json } => {
                    let (run, lines) = roster.get_run(&me, id, 0, 100_000).await?;
                    output::run(&run, &lines.items, json)?;
                }
                RunsCommand::Cancel { id, json } => cancel_run(&roster, &me, id, json).await?,
            },
            Command::Folders(cmd) => match cmd {
                FoldersCommand::List { json } => {
                    output::folders(&roster.list_folders(&me).await?, json)?
                }
                FoldersCommand::SetCount { folder, count } => {
                    let f = roster.set_message_count(&me, &folder, count).await?;
                    output::folders(&[f], false)?;
                }
            },
            Command::Audit {
                limit,
                offset,
                actor,
                action,
                target,
                json,
            } => {
                let filter = roster_app::AuditFilter {
                    actor,
                    action,
                    target,
                };
                let page = roster.search_audit_log(&me, &filter, offset, limit).await?;
                output::audit(&page.items, json)?;
            }
            Command::Logon { name, json } => {
                let password = read_secret("ROSTER_PASSWORD", &format!("password for {name}"))?;
                let user = roster.verify_logon(&name, &password).await?;
                if json {
                    output::json(&serde_json::json!({"accepted": true, "user": user}))?;
                } else {
                    output::line(&format!(
                        "logon accepted for {} ({} authentication)",
                        user.name,
                        user.auth.as_str()
                    ))?;
                }
            }
        }
        Ok(ExitCode::SUCCESS)
    }
    .await;
    // Closed, not dropped at exit: a connection's thread may still hold the tracing span of the last
    // statement it ran (sqlx's SQLite worker does), and the span's close line (`apply{..}: close
    // time.busy=..`, issue 18 item 9) was lost when the process ended before that thread let it go.
    roster.store().close().await;
    outcome
}

async fn users(roster: &Roster, me: &Caller, cmd: UsersCommand) -> Result<()> {
    match cmd {
        UsersCommand::List {
            json,
            offset,
            limit,
        } => {
            // The API pages by at most 1000; the CLI lists everything unless told otherwise.
            let mut all = Vec::new();
            let mut at = offset;
            loop {
                let want = limit.map_or(1000, |l| (l - (at - offset)).clamp(0, 1000));
                if want == 0 {
                    break;
                }
                let page = roster.list_users(me, at, want).await?;
                let got = i64::try_from(page.items.len()).unwrap_or(i64::MAX);
                all.extend(page.items);
                at += got;
                if got < want || at >= page.total {
                    break;
                }
            }
            output::users(&all, json)?;
        }
        UsersCommand::Show { name, json } => {
            output::user(&roster.get_user(me, &name).await?, json)?;
            if !json && let Some(t) = roster.logon_throttle(me, &name).await? {
                output::line(&match t.locked_until {
                    Some(until) if until > roster.now() => format!(
                        "logon locked until {} after {} failed logons in a row (roster users unlock {name})",
                        until.to_rfc3339(),
                        t.failures
                    ),
                    _ => format!(
                        "{} failed logons in a row, the last at {}",
                        t.failures,
                        t.last_failure_at.to_rfc3339()
                    ),
                })?;
            }
        }
        UsersCommand::Unlock { name } => {
            if roster.clear_logon_throttle(me, &name).await? {
                say(&format!("failed logons and lock of {name} cleared."));
            } else {
                say(&format!("{name} had no failed logons to clear."));
            }
        }
        UsersCommand::Add {
            name,
            full_name,
            emails,
            auth,
            privileges,
            json,
        } => {
            let password = match auth {
                AuthMethod::Local => Some(read_secret(
                    "ROSTER_NEW_PASSWORD",
                    &format!("new password for {name}"),
                )?),
                AuthMethod::Directory => None,
            };
            let privileges = privileges
                .map(|p| parse_privilege_list(&p))
                .transpose()
                .map_err(|e| AppError::Invalid(e.to_string()))?;
            let user = roster
                .create_user(
                    me,
                    NewUserInput {
                        name,
                        full_name,
                        emails,
                        auth,
                        password,
                        privileges,
                    },
                )
                .await?;
            output::user(&user, json)?;
        }
        UsersCommand::Update {
            name,
            full_name,
            emails,
            json,
        } => {
            let emails = emails.map(|e| e.into_iter().filter(|a| !a.is_empty()).collect());
            let user = roster
                .update_user(me, &name, roster_app::UserUpdateInput { full_name, emails })
                .await?;
            output::user(&user, json)?;
        }
        UsersCommand::Remove { name } => {
            let d = roster.delete_user(me, &name).await?;
            if d.folder_kept {
                output::line(&format!(
                    "deleted user {}; the archive folder holds messages and was kept",
                    d.name
                ))?;
            } else {
                output::line(&format!(
                    "deleted user {} and the empty archive folder",
                    d.name
                ))?;
            }
        }
        UsersCommand::SetPrivileges {
            name,
            privileges,
            folders,
            json,
        } => {
            let privileges =
                parse_privilege_list(&privileges).map_err(|e| AppError::Invalid(e.to_string()))?;
            let folders = folders
                .iter()
                .map(|f| {
                    let (folder, rights) = f.split_once('=').ok_or_else(|| {
                        AppError::Invalid(format!("--folder {f:?}: write FOLDER=read,write,delete"))
                    })?;
                    Ok(roster_app::FolderRightsInput {
                        folder: folder.to_owned(),
                        rights: parse_right_list(rights)
                            .map_err(|e| AppError::Invalid(e.to_string()))?,
                    })
                })
                .collect::<std::result::Result<Vec<_>, AppError>>()?;
            let user = roster
                .set_privileges(
                    me,
                    &name,
                    PrivilegesInput {
                        privileges,
                        folders,
                    },
                )
                .await?;
            output::user(&user, json)?;
        }
        UsersCommand::SetAuth { name, auth } => {
            let user = roster.set_auth(me, &name, auth).await?;
            output::line(&format!(
                "{} now logs on with {} authentication",
                user.name,
                user.auth.as_str()
            ))?;
        }
        UsersCommand::SetPassword { name } => {
            let password = read_secret("ROSTER_NEW_PASSWORD", &format!("new password for {name}"))?;
            roster.set_password(me, &name, &password).await?;
            output::line(&format!("password set for {name}"))?;
        }
    }
    Ok(())
}

/// `roster runs cancel`: asks, then waits a while for the run to stop (its process sees the request at its
/// next heartbeat, every 5 s).
async fn cancel_run(roster: &Roster, me: &Caller, id: i64, json: bool) -> Result<()> {
    let mut run = roster.cancel_run(me, id).await?;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while run.status == RunStatus::Running && std::time::Instant::now() < until {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        run = roster.get_run(me, id, 0, 1).await?.0;
    }
    match run.status {
        RunStatus::Cancelled | RunStatus::Running => {}
        // It finished before it saw the request (a sync that was committing): too late.
        status => {
            return Err(AppError::from(StoreError::RunFinished {
                run_id: id,
                status: status.as_str(),
            })
            .into());
        }
    }
    if json {
        return output::json(&run);
    }
    output::runs(std::slice::from_ref(&run), false)?;
    if run.status == RunStatus::Running {
        say(&format!(
            "cancel requested; run #{id} has not stopped yet, it stops at its next check (`roster runs show {id}`)"
        ));
    }
    Ok(())
}

/// How often `roster serve` looks whether the scheduled sync is due.
const SCHEDULE_TICK_SECONDS: u64 = 5;

async fn serve(
    roster: Arc<Roster>,
    listen: &str,
    logon_limits: roster_server::LogonLimits,
    metrics: Arc<roster_server::Metrics>,
    tls: Option<(PathBuf, PathBuf)>,
    sso: Option<Arc<roster_server::SingleSignOn>>,
) -> Result<()> {
    let listener = std::net::TcpListener::bind(listen)
        .map_err(|e| anyhow!("can't listen on {listen}: {e}"))?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let mut app = roster_server::router_with_metrics(roster.clone(), logon_limits, metrics);
    if let Some(sso) = sso {
        say("single sign-on (Kerberos) at /api/v1/sessions/negotiate");
        app = app.layer(axum::Extension(sso));
    }
    // The scheduled sync: looked at every few seconds; the database decides which instance runs it.
    let scheduler = {
        let roster = roster.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(SCHEDULE_TICK_SECONDS)).await;
                if let Err(e) = roster.run_due_schedule().await {
                    tracing::warn!(code = e.code(), error = %e, "couldn't look at the schedule");
                }
            }
        })
    };
    let config = match tls {
        None => None,
        Some((cert, key)) => {
            // rustls with the process's one provider (aws-lc-rs, installed in main).
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .map_err(|e| {
                    anyhow!(
                        "can't use the TLS certificate {} and key {}: {e}; give a PEM certificate chain and its PEM private key",
                        cert.display(),
                        key.display()
                    )
                })?;
            app = app.layer(axum::Extension(roster_server::SecureCookies));
            Some(config)
        }
    };
    say(&format!(
        "serving on {}://{addr} (the console at /, the API under /api/v1, health at /healthz and /readyz, metrics at /metrics)",
        if config.is_some() { "https" } else { "http" }
    ));
    let handle = axum_server::Handle::new();
    let stopping = handle.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        stopping.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
    });
    roster_server::serve(listener, app, config, handle)
        .await
        .context("serving HTTP")?;
    // Runs started through the API go on in the server's tasks: stop them and let them record that,
    // rather than leave them running until another process takes them for dead.
    roster.stop_runs("the server stopping").await;
    scheduler.abort();
    say("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
