//! A throwaway slapd with users who have passwords, the release `roster` binary run against a data
//! directory synchronized from it, and `roster serve` started on that directory with its memory watched.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use roster_testkit::{Slapd, SlapdConfig, TestUser, user_ldif};

use crate::machine::proc_kib;

pub const SUFFIX: &str = "dc=example,dc=com";
pub const SERVICE_DN: &str = "cn=roster,ou=Services,dc=example,dc=com";
pub const SERVICE_PASSWORD: &str = "bench-service-secret";
/// The built-in administrator's password (`ROSTER_ADMIN_PASSWORD` at the first start).
pub const ADMIN_PASSWORD: &str = "bench-admin-password";

/// The `i`th directory user's name (from 1): `user000001`.
pub fn uid(i: usize) -> String {
    format!("user{i:06}")
}

/// A directory user's password in slapd.
pub fn directory_password(uid: &str) -> String {
    format!("pw-{uid}")
}

/// The service account and `users` users below `ou=People` (`uid(1)..=uid(users)`), each with the
/// password [`directory_password`], stored as cleartext (slapd compares it on bind).
pub fn directory_ldif(users: usize) -> String {
    let mut out = format!(
        "dn: ou=Services,{SUFFIX}\nobjectClass: top\nobjectClass: organizationalUnit\nou: Services\n\n\
         dn: {SERVICE_DN}\nobjectClass: top\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n\
         cn: roster\nuserPassword: {SERVICE_PASSWORD}\n\n"
    );
    for i in 1..=users {
        let uid = uid(i);
        let mail = format!("{uid}@example.com");
        let password = directory_password(&uid);
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

/// Roster's directory settings for the slapd on `port`: the users below `ou=People`, found and bound by
/// the service account.
pub fn settings_toml(port: u16) -> String {
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
page_size = 1000
delete_users = false
"#
    )
}

/// The release `roster` binary and the data directory it runs on (SQLite), with none of the caller's
/// `ROSTER_*` settings.
#[derive(Debug, Clone)]
pub struct Roster {
    pub binary: PathBuf,
    pub data: PathBuf,
}

impl Roster {
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        for var in [
            "ROSTER_CONFIG",
            "ROSTER_DATA_DIR",
            "ROSTER_DATABASE_URL",
            "ROSTER_SECRET_KEY",
            "ROSTER_LOG",
        ] {
            cmd.env_remove(var);
        }
        cmd.env("ROSTER_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .arg("--data-dir")
            .arg(&self.data);
        cmd
    }

    /// Runs `roster ARGS` to success.
    pub fn run(&self, args: &[&str]) {
        let out = self
            .command()
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

    /// `roster --version`.
    pub fn version(&self) -> String {
        crate::machine::output_line(Command::new(&self.binary).arg("--version"))
    }
}

/// A throwaway slapd with `users` users (see [`directory_ldif`]) and a new data directory in `work`
/// synchronized from it by `roster sync`.
pub fn directory_and_data(binary: &Path, users: usize, work: &Path) -> (Slapd, Roster) {
    let slapd = Slapd::start(SlapdConfig {
        suffix: SUFFIX.to_owned(),
        base_ldif: Some(directory_ldif(users)),
        // The root DN ignores limits, so Roster reads as an ordinary service account, which needs its own
        // limits: slapd's default of 500 entries would stop a paged read. Unlimited for this account
        // only, as an administrator would configure it (as bench/ldap-sync.sh does).
        database_directives: Some(format!(
            "limits dn.exact=\"{SERVICE_DN}\" size.soft=unlimited size.hard=unlimited size.prtotal=unlimited time.soft=unlimited time.hard=unlimited"
        )),
        ..Default::default()
    })
    .expect("starting slapd");
    let roster = Roster {
        binary: binary.to_owned(),
        data: work.join("data"),
    };
    let settings = work.join("settings.toml");
    fs::write(&settings, settings_toml(slapd.port())).expect("writing settings.toml");
    roster.run(&["directory", "set", "--file", settings.to_str().unwrap()]);
    roster.run(&["sync", "--json"]);
    (slapd, roster)
}

/// slapd's process id (from the pid file its configuration names).
pub fn slapd_pid(slapd: &Slapd) -> u32 {
    fs::read_to_string(slapd.dir().join("slapd.pid"))
        .expect("reading slapd.pid")
        .trim()
        .parse()
        .expect("a pid in slapd.pid")
}

/// `roster serve` on a free port of 127.0.0.1, its stderr in a log file, with a watchdog that samples
/// its RSS every 10 ms and kills it over a limit (so that measuring an old build can't exhaust the
/// machine). Killed when dropped.
pub struct Server {
    child: Child,
    pub port: u16,
    pub pid: u32,
    stop: Arc<AtomicBool>,
    over: Arc<AtomicBool>,
    max_sampled: Arc<AtomicU64>,
    watchdog: Option<JoinHandle<()>>,
}

impl Server {
    /// Starts `roster serve` and waits until it listens. The per-address logon limit (issue 20) is off:
    /// from one address, it would answer most of a benchmark's logons 429 before any password check.
    pub fn start(roster: &Roster, log: &Path, rss_limit_kib: u64) -> Server {
        let port = roster_testkit::free_port();
        let log = fs::File::create(log).expect("a log file");
        let child = roster
            .command()
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--logon-limit-per-minute", "0", "--logon-limit-burst", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting roster serve");
        roster_testkit::wait_for_port(port, Duration::from_secs(30))
            .expect("roster serve listening");
        let pid = child.id();
        let stop = Arc::new(AtomicBool::new(false));
        let over = Arc::new(AtomicBool::new(false));
        let max_sampled = Arc::new(AtomicU64::new(0));
        let watchdog = {
            let (stop, over, max_sampled) = (stop.clone(), over.clone(), max_sampled.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let Some(rss) = proc_kib(pid, "VmRSS") else {
                        return;
                    };
                    max_sampled.fetch_max(rss, Ordering::SeqCst);
                    if rss > rss_limit_kib {
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
        Server {
            child,
            port,
            pid,
            stop,
            over,
            max_sampled,
            watchdog: Some(watchdog),
        }
    }

    /// The server's RSS now, KiB (0 once it is gone).
    pub fn rss_kib(&self) -> u64 {
        proc_kib(self.pid, "VmRSS").unwrap_or(0)
    }

    /// The server's peak RSS so far, KiB: the kernel's `VmHWM`, or the largest sample if it is gone.
    pub fn peak_kib(&self) -> u64 {
        proc_kib(self.pid, "VmHWM")
            .unwrap_or(0)
            .max(self.max_sampled.load(Ordering::SeqCst))
    }

    /// Whether the watchdog killed the server for its memory.
    pub fn over_limit(&self) -> bool {
        self.over.load(Ordering::SeqCst)
    }

    /// User + system CPU time the server has used so far.
    pub fn cpu(&self) -> Duration {
        crate::machine::process_cpu(self.pid)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(watchdog) = self.watchdog.take() {
            let _ = watchdog.join();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
