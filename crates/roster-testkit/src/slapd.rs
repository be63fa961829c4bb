//! A throwaway OpenLDAP `slapd` with an mdb database, configured through a
//! generated `slapd.conf` (no cn=config: a flat file is easier to read when a
//! test fails and needs no ldapmodify round trips to set up).
//!
//! # `sizelimit` and the paged-results control (slapd 2.5.13, Debian 12)
//!
//! Observed with 120 entries below `ou=People`, searching with
//! `ldapsearch -x -D uid=u1,ou=People,... '(uid=*)'` bound as an ordinary
//! user. The root DN is exempt from all limits: the same searches bound as
//! `rootdn` returned all 120 entries with rc 0 under every setting below, so
//! size-limit tests must bind as a normal user.
//!
//! | `sizelimit` | no control | `pr=20` | `pr=50` | `pr=100` | `pr=200` |
//! |---|---|---|---|---|---|
//! | `50` (soft = hard = 50) | 50, rc 4 | 50 (20+20+10), rc 4 | 50, rc 4 | 50, rc 4 | 50, rc 4 |
//! | `size.soft=50 size.hard=50 size.prtotal=50` | 50, rc 4 | 50, rc 4 | 50, rc 4 | 50, rc 4 | 50, rc 4 |
//! | `size.prtotal=50` (soft/hard default 500) | 120, rc 0 | 50, rc 4 | 50, rc 4 | 50, rc 4 | 50, rc 4 |
//! | `size.soft=50 size.hard=50 size.prtotal=unlimited` | 50, rc 4 | 120, rc 0 | 120, rc 0 | 120, rc 0 | 120, rc 0 |
//! | `size.soft=50 size.hard=50 size.pr=50 size.prtotal=unlimited` | 50, rc 4 | 120, rc 0 | 120, rc 0 | rc 11 | rc 11 |
//! | `size.soft=50 size.hard=50 size.pr=20` | 50, rc 4 | 50, rc 4 | rc 11 | rc 11 | rc 11 |
//! | `size.soft=50 size.hard=50 size.prtotal=disabled` | 50, rc 4 | rc 11 | rc 11 | rc 11 | rc 11 |
//! | `size.soft=50 size.hard=unlimited` | 50, rc 4 | 120, rc 0 | 120, rc 0 | 120, rc 0 | 120, rc 0 |
//!
//! In words:
//! * A plain `sizelimit 50` does NOT let paging get around the limit: a paged
//!   search returns full pages until 50 entries in total have been sent, and
//!   the page that crosses 50 is cut short and ends with rc 4
//!   (sizeLimitExceeded). With `pr=20` that is pages of 20, 20 and 10; with
//!   `pr=100` the first page has 50 entries and rc 4. This is because
//!   `size.prtotal` defaults to `hard` (the hard limit, which defaults to the
//!   soft limit), so the whole paged search is capped at 50.
//! * `size.prtotal=N` caps a paged search at N entries in total (rc 4 when
//!   more exist), whatever the page size, even when unpaged searches are
//!   allowed more. That is the setting to use for "a paged read fails with
//!   rc 4" tests.
//! * `size.prtotal=unlimited` (or `size.hard=unlimited`) lets paged searches
//!   return everything while unpaged ones still stop at the soft limit.
//! * `size.pr=N` rejects page sizes above N with rc 11 (adminLimitExceeded,
//!   "illegal pagedResults page size"); `size.prtotal=disabled` rejects the
//!   control ("pagedResults control not allowed").
//!
//! The `sizelimit_and_paged_results` test re-checks the key rows.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ca::{ServerCert, TestCa};
use crate::common::{START_TIMEOUT, ServerProcess, find_program, run, temp_dir, try_free_port};
use crate::ldif::{escape_dn_value, push_attr};

const INSTALL_HINT: &str =
    "install the Debian packages slapd and ldap-utils (apt-get install -y slapd ldap-utils)";
const SBIN_DIRS: &[&str] = &[
    "/usr/sbin",
    "/usr/local/sbin",
    "/sbin",
    "/usr/local/libexec",
    "/usr/libexec",
];
const SCHEMA_DIRS: &[&str] = &[
    "/etc/ldap/schema",
    "/etc/openldap/schema",
    "/usr/local/etc/openldap/schema",
];
const MODULE_DIRS: &[&str] = &[
    "/usr/lib/ldap",
    "/usr/lib/openldap",
    "/usr/lib64/openldap",
    "/usr/libexec/openldap",
    "/usr/local/libexec/openldap",
];
const SCHEMAS: &[&str] = &["core", "cosine", "nis", "inetorgperson"];

/// TLS material for slapd: a server certificate and the CA that clients
/// should trust. The files are copied into slapd's directory at start, so the
/// originals (e.g. a [`TestCa`]) may be dropped afterwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlapdTls {
    pub cert: ServerCert,
    pub ca_cert_path: PathBuf,
}

impl SlapdTls {
    /// Issues a `localhost` server certificate from `ca`.
    pub fn from_ca(ca: &TestCa) -> io::Result<SlapdTls> {
        Ok(SlapdTls {
            cert: ca.issue_server_cert("localhost")?,
            ca_cert_path: ca.ca_cert_path().to_owned(),
        })
    }
}

/// How to set up a [`Slapd`]. `Default` gives `dc=example,dc=com` with root
/// DN `cn=admin,dc=example,dc=com` / `admin-secret`, no size limit directive
/// (slapd's default is 500), no TLS.
#[derive(Debug, Clone)]
pub struct SlapdConfig {
    /// Base DN; its first RDN must be `dc=`, `o=` or `ou=` (the kit creates
    /// the entry with a matching object class).
    pub suffix: String,
    pub root_dn: String,
    /// Written as cleartext `rootpw`; must not contain `"` or newlines.
    pub root_password: String,
    /// Raw value of the global `sizelimit` directive, e.g. `"50"` or
    /// `"size.soft=50 size.hard=50 size.pr=50 size.prtotal=unlimited"`.
    /// The root DN ignores limits; see the module docs for how limits
    /// interact with paged results.
    pub size_limit: Option<String>,
    /// Enables StartTLS on the ldap:// port and an extra ldaps:// port.
    pub tls: Option<SlapdTls>,
    /// Extra entries loaded with `slapadd` before start (fast path for large
    /// directories). They come after the suffix entry, `ou=People` and
    /// `ou=Groups`, which the kit always creates, and must not repeat them;
    /// parents must precede children.
    pub base_ldif: Option<String>,
    /// Extra slapd.conf lines for the database section (indexes, overlays,
    /// `limits`), inserted before the default access rules so `access`
    /// lines given here take precedence.
    pub database_directives: Option<String>,
    /// slapd `-d` level, e.g. `"stats"` to log every operation to
    /// [`Slapd::log_path`]. Default `"none"`: start-up errors only.
    pub debug_level: Option<String>,
    /// The content synchronization provider (RFC 4533, the `syncprov` overlay), for incremental reads.
    pub syncprov: Option<SyncProv>,
}

/// How the `syncprov` overlay is set up.
#[derive(Debug, Clone, Default)]
pub struct SyncProv {
    /// `syncprov-sessionlog`: how many recent operations the overlay remembers. With it, a refresh from
    /// a recent cookie sends deletions as such (the delete phase); without it, syncprov sends every
    /// entry still present (the present phase) and the client infers the deletions.
    pub sessionlog: Option<u32>,
}

impl Default for SlapdConfig {
    fn default() -> Self {
        SlapdConfig {
            suffix: "dc=example,dc=com".to_owned(),
            root_dn: "cn=admin,dc=example,dc=com".to_owned(),
            root_password: "admin-secret".to_owned(),
            size_limit: None,
            tls: None,
            base_ldif: None,
            database_directives: None,
            debug_level: None,
            syncprov: None,
        }
    }
}

/// A running slapd on 127.0.0.1. Dropping it stops the server (SIGTERM, then
/// SIGKILL after a grace period) and removes its directory.
pub struct Slapd {
    // Declared first so it is dropped (server stopped) before `dir` is removed.
    process: ServerProcess,
    config: SlapdConfig,
    port: u16,
    ldaps_port: Option<u16>,
    slapd_bin: PathBuf,
    conf_path: PathBuf,
    log_path: PathBuf,
    ca_cert_path: Option<PathBuf>,
    op_counter: AtomicU64,
    dir: tempfile::TempDir,
}

impl fmt::Debug for Slapd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slapd")
            .field("url", &self.ldap_url())
            .field("ldaps_url", &self.ldaps_url())
            .field("suffix", &self.config.suffix)
            .field("dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Slapd {
    /// Writes slapd.conf, loads the base entries with slapadd and starts
    /// slapd, returning once its port(s) accept connections.
    pub fn start(config: SlapdConfig) -> io::Result<Slapd> {
        let slapd_bin = find_program("slapd", SBIN_DIRS, INSTALL_HINT)?;
        let slapadd = find_program("slapadd", SBIN_DIRS, INSTALL_HINT)?;
        find_program("ldapadd", &[], INSTALL_HINT)?;
        for value in [&config.suffix, &config.root_dn, &config.root_password] {
            if value.contains(['"', '\n', '\r']) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "SlapdConfig value {value:?} contains a quote or newline, which slapd.conf cannot hold"
                    ),
                ));
            }
        }
        let base_entries = base_entries_ldif(&config.suffix)?;

        let dir = temp_dir("roster-slapd-")?;
        let data_dir = dir.path().join("data");
        fs::create_dir(&data_dir)?;
        let ca_cert_path = match &config.tls {
            Some(tls) => Some(install_tls(dir.path(), tls)?),
            None => None,
        };
        let conf_path = dir.path().join("slapd.conf");
        fs::write(&conf_path, slapd_conf(&config, dir.path(), &data_dir)?)?;

        let ldif_path = dir.path().join("base.ldif");
        let mut ldif = base_entries;
        if let Some(extra) = &config.base_ldif {
            ldif.push('\n');
            ldif.push_str(extra);
        }
        fs::write(&ldif_path, ldif)?;
        // -q skips consistency checks, which is what makes loading 100k
        // entries take seconds rather than minutes.
        run(Command::new(&slapadd)
            .arg("-q")
            .arg("-f")
            .arg(&conf_path)
            .arg("-l")
            .arg(&ldif_path))
        .map_err(|e| io::Error::new(e.kind(), format!("loading the base entries failed: {e}")))?;
        // The LDIF may be large; it is not needed once loaded.
        let _ = fs::remove_file(&ldif_path);

        let port = try_free_port()?;
        let ldaps_port = if config.tls.is_some() {
            Some(try_free_port()?)
        } else {
            None
        };
        let log_path = dir.path().join("slapd.log");
        let process = spawn_slapd(
            &slapd_bin,
            &conf_path,
            &log_path,
            port,
            ldaps_port,
            config.debug_level.as_deref(),
        )?;
        let mut slapd = Slapd {
            process,
            config,
            port,
            ldaps_port,
            slapd_bin,
            conf_path,
            log_path,
            ca_cert_path,
            op_counter: AtomicU64::new(0),
            dir,
        };
        slapd.wait_ready()?;
        Ok(slapd)
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let ports: Vec<u16> = std::iter::once(self.port).chain(self.ldaps_port).collect();
        self.process.wait_for_ports(&ports, START_TIMEOUT)
    }

    /// `ldap://127.0.0.1:PORT` (StartTLS is available here when TLS is on).
    pub fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.port)
    }

    /// `ldaps://127.0.0.1:PORT` when TLS is configured.
    pub fn ldaps_url(&self) -> Option<String> {
        self.ldaps_port.map(|p| format!("ldaps://127.0.0.1:{p}"))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn ldaps_port(&self) -> Option<u16> {
        self.ldaps_port
    }

    pub fn suffix(&self) -> &str {
        &self.config.suffix
    }

    pub fn root_dn(&self) -> &str {
        &self.config.root_dn
    }

    pub fn root_password(&self) -> &str {
        &self.config.root_password
    }

    /// `ou=People,<suffix>`, created at start.
    pub fn people_dn(&self) -> String {
        format!("ou=People,{}", self.config.suffix)
    }

    /// `ou=Groups,<suffix>`, created at start.
    pub fn groups_dn(&self) -> String {
        format!("ou=Groups,{}", self.config.suffix)
    }

    /// The CA certificate clients should trust (slapd's copy), with TLS on.
    pub fn ca_cert_path(&self) -> Option<&Path> {
        self.ca_cert_path.as_deref()
    }

    /// slapd's stdout/stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The server's temporary directory (config, data, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Whether the slapd process is alive.
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Adds entries (`ldapadd` bound as the root DN over plain LDAP).
    pub fn add(&self, ldif: &str) -> io::Result<()> {
        self.ldap_tool("ldapadd", ldif)
    }

    /// Applies change records (`ldapmodify` bound as the root DN): records
    /// with `changetype: modify`, `add`, `delete`, `modrdn`/`moddn`.
    pub fn modify(&self, ldif: &str) -> io::Result<()> {
        self.ldap_tool("ldapmodify", ldif)
    }

    /// Subtree search bound as the root DN; returns LDIF (`-LLL`, unwrapped).
    pub fn search(&self, base: &str, filter: &str, attrs: &[&str]) -> io::Result<String> {
        self.search_as(
            &self.config.root_dn,
            &self.config.root_password,
            base,
            filter,
            attrs,
        )
    }

    /// Subtree search bound as `bind_dn`; returns LDIF (`-LLL`, unwrapped).
    pub fn search_as(
        &self,
        bind_dn: &str,
        password: &str,
        base: &str,
        filter: &str,
        attrs: &[&str],
    ) -> io::Result<String> {
        let tool = find_program("ldapsearch", &[], INSTALL_HINT)?;
        let mut cmd = client_command(&tool);
        cmd.args(["-x", "-LLL", "-o", "ldif-wrap=no", "-H"])
            .arg(self.ldap_url())
            .arg("-D")
            .arg(bind_dn)
            .arg("-w")
            .arg(password)
            .arg("-b")
            .arg(base)
            .arg(filter)
            .args(attrs);
        let out = run(&mut cmd)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn ldap_tool(&self, tool: &str, ldif: &str) -> io::Result<()> {
        let tool = find_program(tool, &[], INSTALL_HINT)?;
        // A file rather than stdin: no pipe buffer to deadlock on with large
        // LDIF, and it is left behind on failure for inspection.
        let n = self.op_counter.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.path().join(format!("op-{n}.ldif"));
        fs::write(&path, ldif)?;
        let mut cmd = client_command(&tool);
        cmd.arg("-x")
            .arg("-H")
            .arg(self.ldap_url())
            .arg("-D")
            .arg(&self.config.root_dn)
            .arg("-w")
            .arg(&self.config.root_password)
            .arg("-f")
            .arg(&path);
        run(&mut cmd)?;
        let _ = fs::remove_file(&path);
        Ok(())
    }

    /// SIGKILL now, simulating a crash (e.g. mid-read). Idempotent.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Graceful stop (SIGTERM, SIGKILL after a grace period). Idempotent.
    pub fn stop(&mut self) {
        self.process.stop();
    }

    /// Stops (if running) and starts again on the same ports with the same
    /// data. Also works after [`Slapd::kill`]: mdb is crash-safe.
    pub fn restart(&mut self) -> io::Result<()> {
        self.process.stop();
        self.process = spawn_slapd(
            &self.slapd_bin,
            &self.conf_path,
            &self.log_path,
            self.port,
            self.ldaps_port,
            self.config.debug_level.as_deref(),
        )?;
        self.wait_ready()
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.process.stop();
    }
}

/// ldap-utils with `LDAPNOINIT` so a developer's ldap.conf / ~/.ldaprc
/// (e.g. `SIZELIMIT`, `TLS_REQCERT`) cannot change what tests see.
fn client_command(tool: &Path) -> Command {
    let mut cmd = Command::new(tool);
    cmd.env("LDAPNOINIT", "1");
    cmd
}

fn spawn_slapd(
    slapd: &Path,
    conf: &Path,
    log: &Path,
    port: u16,
    ldaps_port: Option<u16>,
    debug_level: Option<&str>,
) -> io::Result<ServerProcess> {
    let mut urls = format!("ldap://127.0.0.1:{port}/");
    if let Some(p) = ldaps_port {
        urls.push_str(&format!(" ldaps://127.0.0.1:{p}/"));
    }
    let mut cmd = Command::new(slapd);
    // -d keeps slapd in the foreground so it stays our child (kill on drop).
    // Level "none" logs only uncategorised messages: start-up errors such as
    // "TLS init def ctx failed", which `-d 0` swallows, but nothing per
    // operation, so 100k-entry runs stay quiet.
    cmd.arg("-d")
        .arg(debug_level.unwrap_or("none"))
        .arg("-f")
        .arg(conf)
        .arg("-h")
        .arg(urls);
    ServerProcess::spawn("slapd", &mut cmd, log)
}

fn install_tls(dir: &Path, tls: &SlapdTls) -> io::Result<PathBuf> {
    let tls_dir = dir.join("tls");
    fs::create_dir(&tls_dir)?;
    let copy = |from: &Path, name: &str| -> io::Result<PathBuf> {
        let to = tls_dir.join(name);
        fs::copy(from, &to).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot copy {}: {e}", from.display()))
        })?;
        Ok(to)
    };
    copy(&tls.cert.cert_path, "server.pem")?;
    copy(&tls.cert.key_path, "server.key")?;
    copy(&tls.ca_cert_path, "ca.pem")
}

fn first_existing(dirs: &[&str], file: &str) -> Option<PathBuf> {
    dirs.iter()
        .map(PathBuf::from)
        .find(|d| d.join(file).exists())
}

fn slapd_conf(config: &SlapdConfig, dir: &Path, data_dir: &Path) -> io::Result<String> {
    let schema_dir = first_existing(SCHEMA_DIRS, "core.schema").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("OpenLDAP schema files (core.schema) not found: {INSTALL_HINT}"),
        )
    })?;
    let mut conf = String::from("# Generated by roster-testkit.\n");
    for schema in SCHEMAS {
        conf.push_str(&format!(
            "include {}\n",
            schema_dir.join(format!("{schema}.schema")).display()
        ));
    }
    conf.push_str(&format!("pidfile {}\n", dir.join("slapd.pid").display()));
    conf.push_str(&format!("argsfile {}\n", dir.join("slapd.args").display()));
    // Debian builds back_mdb as a module; other builds may link it in.
    if let Some(module_dir) = first_existing(MODULE_DIRS, "back_mdb.la")
        .or_else(|| first_existing(MODULE_DIRS, "back_mdb.so"))
    {
        conf.push_str(&format!(
            "modulepath {}\nmoduleload back_mdb\n",
            module_dir.display()
        ));
        if config.syncprov.is_some() {
            conf.push_str("moduleload syncprov\n");
        }
    }
    if let Some(limit) = &config.size_limit {
        conf.push_str(&format!("sizelimit {limit}\n"));
    }
    if config.tls.is_some() {
        let tls = dir.join("tls");
        conf.push_str(&format!(
            "TLSCACertificateFile {}\nTLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
            tls.join("ca.pem").display(),
            tls.join("server.pem").display(),
            tls.join("server.key").display(),
        ));
    }
    conf.push_str(&format!(
        "\ndatabase mdb\nsuffix \"{}\"\nrootdn \"{}\"\nrootpw \"{}\"\ndirectory {}\n",
        config.suffix,
        config.root_dn,
        config.root_password,
        data_dir.display()
    ));
    // maxsize is address space, not disk: the map file is sparse. 4 GiB fits
    // 100k+ users with room to spare. dbnosync skips fsync, which only
    // matters for OS crashes, not for kill -9 of slapd.
    conf.push_str("maxsize 4294967296\ndbnosync\nindex objectClass eq\nindex uid eq\n");
    if let Some(extra) = &config.database_directives {
        conf.push_str(extra);
        conf.push('\n');
    }
    if let Some(syncprov) = &config.syncprov {
        conf.push_str(
            "index entryCSN,entryUUID eq\noverlay syncprov\nsyncprov-checkpoint 100 10\n",
        );
        if let Some(n) = syncprov.sessionlog {
            conf.push_str(&format!("syncprov-sessionlog {n}\n"));
        }
    }
    // Like a real directory: anonymous may only bind, users may read.
    conf.push_str("access to attrs=userPassword by self =xw by anonymous auth by * none\n");
    conf.push_str("access to * by users read by * none\n");
    Ok(conf)
}

/// The suffix entry plus `ou=People` and `ou=Groups`.
fn base_entries_ldif(suffix: &str) -> io::Result<String> {
    let (attr, value) = first_rdn(suffix)?;
    let mut ldif = String::new();
    push_attr(&mut ldif, "dn", suffix);
    match attr.to_ascii_lowercase().as_str() {
        "dc" => {
            for class in ["top", "dcObject", "organization"] {
                push_attr(&mut ldif, "objectClass", class);
            }
            push_attr(&mut ldif, "dc", &value);
            push_attr(&mut ldif, "o", &value);
        }
        "o" => {
            push_attr(&mut ldif, "objectClass", "top");
            push_attr(&mut ldif, "objectClass", "organization");
            push_attr(&mut ldif, "o", &value);
        }
        "ou" => {
            push_attr(&mut ldif, "objectClass", "top");
            push_attr(&mut ldif, "objectClass", "organizationalUnit");
            push_attr(&mut ldif, "ou", &value);
        }
        other => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("suffix {suffix:?} starts with {other}=; use a dc=, o= or ou= suffix"),
            ));
        }
    }
    for ou in ["People", "Groups"] {
        ldif.push('\n');
        push_attr(
            &mut ldif,
            "dn",
            &format!("ou={},{suffix}", escape_dn_value(ou)),
        );
        push_attr(&mut ldif, "objectClass", "top");
        push_attr(&mut ldif, "objectClass", "organizationalUnit");
        push_attr(&mut ldif, "ou", ou);
    }
    Ok(ldif)
}

/// Splits the first RDN of a DN into attribute and unescaped value.
fn first_rdn(dn: &str) -> io::Result<(String, String)> {
    let invalid = || {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("suffix {dn:?} is not a DN like dc=example,dc=com"),
        )
    };
    let (attr, rest) = dn.split_once('=').ok_or_else(invalid)?;
    let mut value = Vec::new();
    let mut bytes = rest.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b',' | b'+' => break,
            b'\\' => {
                let next = bytes.next().ok_or_else(invalid)?;
                let hex = |c: u8| char::from(c).to_digit(16);
                match hex(next) {
                    Some(hi) => {
                        let lo = bytes.next().and_then(hex).ok_or_else(invalid)?;
                        value.push(u8::try_from(hi * 16 + lo).map_err(|_| invalid())?);
                    }
                    None => value.push(next),
                }
            }
            _ => value.push(b),
        }
    }
    let value = String::from_utf8(value).map_err(|_| invalid())?;
    let attr = attr.trim();
    if attr.is_empty() || value.is_empty() {
        return Err(invalid());
    }
    Ok((attr.to_owned(), value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ldif::{TestUser, user_dn, user_ldif};
    use std::process::Output;

    fn ldapsearch(envs: &[(&str, &str)], args: &[&str]) -> Output {
        let mut cmd = Command::new("ldapsearch");
        cmd.args(args);
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }

    fn text(out: &Output) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    #[test]
    fn first_rdn_is_parsed_and_unescaped() {
        assert_eq!(
            first_rdn("dc=example,dc=com").unwrap(),
            ("dc".into(), "example".into())
        );
        assert_eq!(
            first_rdn("o=Acme\\, Inc,c=US").unwrap(),
            ("o".into(), "Acme, Inc".into())
        );
        assert_eq!(
            first_rdn("ou=J\\C3\\BCrgen").unwrap(),
            ("ou".into(), "Jürgen".into())
        );
        assert!(first_rdn("nonsense").is_err());
        assert!(base_entries_ldif("cn=x").is_err());
    }

    #[test]
    fn slapd_plain_add_search_restart_kill() {
        let mut slapd = Slapd::start(SlapdConfig::default()).unwrap();
        assert!(slapd.ldaps_url().is_none());
        let user = TestUser {
            uid: "jsmith",
            cn: "Smith, John",
            mail: vec!["john@example.com"],
            password: Some("s3cret"),
            ..Default::default()
        };
        slapd.add(&user_ldif(slapd.suffix(), &user)).unwrap();
        let dn = user_dn(slapd.suffix(), &user);

        // The user can bind and read its own entry.
        let url = slapd.ldap_url();
        let out = ldapsearch(
            &[("LDAPNOINIT", "1")],
            &[
                "-x",
                "-LLL",
                "-H",
                &url,
                "-D",
                &dn,
                "-w",
                "s3cret",
                "-b",
                &slapd.people_dn(),
                "(uid=jsmith)",
                "mail",
            ],
        );
        assert!(out.status.success(), "{}", text(&out));
        assert!(
            text(&out).contains("mail: john@example.com"),
            "{}",
            text(&out)
        );

        // Wrong password: invalid credentials (49).
        let out = ldapsearch(
            &[("LDAPNOINIT", "1")],
            &[
                "-x",
                "-H",
                &url,
                "-D",
                &dn,
                "-w",
                "wrong",
                "-b",
                slapd.suffix(),
                "(uid=jsmith)",
            ],
        );
        assert_eq!(out.status.code(), Some(49), "{}", text(&out));

        // Anonymous sees nothing (no such object is hidden as 32 or empty).
        let out = ldapsearch(
            &[("LDAPNOINIT", "1")],
            &["-x", "-LLL", "-H", &url, "-b", slapd.suffix(), "(uid=*)"],
        );
        assert!(!text(&out).contains("jsmith"), "{}", text(&out));

        // Users cannot read passwords, not even their own.
        let own = slapd
            .search_as(
                &dn,
                "s3cret",
                &dn,
                "(objectClass=*)",
                &["userPassword", "cn"],
            )
            .unwrap();
        assert!(
            own.contains("cn: Smith, John") && !own.contains("userPassword"),
            "{own}"
        );

        slapd
            .modify(&format!(
                "dn: {dn}\nchangetype: modify\nreplace: mail\nmail: new@example.com\n"
            ))
            .unwrap();
        slapd.restart().unwrap();
        let found = slapd
            .search(slapd.suffix(), "(uid=jsmith)", &["mail"])
            .unwrap();
        assert!(found.contains("mail: new@example.com"), "{found}");

        slapd.kill();
        assert!(!slapd.is_running());
        assert!(slapd.search(slapd.suffix(), "(uid=jsmith)", &[]).is_err());
        slapd.kill();
        slapd.restart().unwrap();
        slapd
            .modify(&format!(
                "dn: {dn}\nchangetype: modrdn\nnewrdn: uid=jsmith2\ndeleteoldrdn: 1\n"
            ))
            .unwrap();
        let found = slapd
            .search(slapd.suffix(), "(uid=jsmith2)", &["uid"])
            .unwrap();
        assert!(found.contains("uid: jsmith2"), "{found}");
        slapd
            .modify(&format!(
                "dn: uid=jsmith2,{}\nchangetype: delete\n",
                slapd.people_dn()
            ))
            .unwrap();
        assert_eq!(
            slapd
                .search(slapd.suffix(), "(uid=jsmith2)", &[])
                .unwrap()
                .trim(),
            ""
        );

        // Bad LDIF is an error carrying ldapadd's message.
        let err = slapd
            .add("dn: uid=x,ou=Nowhere,dc=example,dc=com\nobjectClass: inetOrgPerson\n")
            .unwrap_err();
        assert!(err.to_string().contains("ldapadd"), "{err}");

        let dir = slapd.dir().to_owned();
        drop(slapd);
        assert!(!dir.exists());
    }

    #[test]
    fn slapd_tls_starttls_and_ldaps() {
        let ca = TestCa::generate().unwrap();
        let config = SlapdConfig {
            tls: Some(SlapdTls::from_ca(&ca).unwrap()),
            ..Default::default()
        };
        let slapd = Slapd::start(config).unwrap();
        drop(ca); // slapd keeps its own copies
        let ca_path = slapd.ca_cert_path().unwrap().to_str().unwrap().to_owned();
        let env = [
            ("LDAPTLS_CACERT", ca_path.as_str()),
            ("LDAPTLS_REQCERT", "demand"),
        ];
        let (root, pw) = (slapd.root_dn(), slapd.root_password());
        let ldap = slapd.ldap_url();
        let ldaps = slapd.ldaps_url().unwrap();

        let out = ldapsearch(
            &env,
            &[
                "-ZZ",
                "-x",
                "-H",
                &ldap,
                "-D",
                root,
                "-w",
                pw,
                "-b",
                slapd.suffix(),
                "-s",
                "base",
            ],
        );
        assert!(out.status.success(), "StartTLS: {}", text(&out));
        let out = ldapsearch(
            &env,
            &[
                "-x",
                "-H",
                &ldaps,
                "-D",
                root,
                "-w",
                pw,
                "-b",
                slapd.suffix(),
                "-s",
                "base",
            ],
        );
        assert!(out.status.success(), "ldaps: {}", text(&out));
        // No `ldaps://localhost` check here: libldap replaces "localhost" by
        // the reverse-DNS name of the peer before verifying the hostname, so
        // it fails on hosts where 127.0.0.1 has other names. The SAN entry
        // is for rustls clients, which use the name as given.

        // A client trusting a different CA must refuse the server.
        let other = TestCa::generate().unwrap();
        let other_path = other.ca_cert_path().to_str().unwrap();
        let env = [
            ("LDAPTLS_CACERT", other_path),
            ("LDAPTLS_REQCERT", "demand"),
        ];
        let out = ldapsearch(
            &env,
            &[
                "-x",
                "-H",
                &ldaps,
                "-D",
                root,
                "-w",
                pw,
                "-b",
                slapd.suffix(),
                "-s",
                "base",
            ],
        );
        assert!(
            !out.status.success(),
            "untrusted ldaps must fail: {}",
            text(&out)
        );
    }

    #[test]
    fn slapd_with_self_signed_certificate_is_untrusted() {
        let ca = TestCa::generate().unwrap();
        let rogue = ca.self_signed_server_cert("localhost").unwrap();
        let config = SlapdConfig {
            tls: Some(SlapdTls {
                cert: rogue,
                ca_cert_path: ca.ca_cert_path().into(),
            }),
            ..Default::default()
        };
        let slapd = Slapd::start(config).unwrap();
        let ca_path = ca.ca_cert_path().to_str().unwrap();
        let env = [("LDAPTLS_CACERT", ca_path), ("LDAPTLS_REQCERT", "demand")];
        let ldap = slapd.ldap_url();
        let out = ldapsearch(
            &env,
            &["-ZZ", "-x", "-H", &ldap, "-b", slapd.suffix(), "-s", "base"],
        );
        assert!(
            !out.status.success(),
            "StartTLS with an untrusted certificate must fail: {}",
            text(&out)
        );
    }

    #[test]
    fn slapd_rejects_unusable_config_with_a_clear_error() {
        let config = SlapdConfig {
            size_limit: Some("bogus-limit".into()),
            ..Default::default()
        };
        let err = Slapd::start(config).unwrap_err().to_string();
        assert!(
            err.contains("bogus-limit") || err.contains("sizelimit"),
            "{err}"
        );
    }

    #[test]
    fn slapd_start_failure_includes_the_log() {
        let ca = TestCa::generate().unwrap();
        let mut tls = SlapdTls::from_ca(&ca).unwrap();
        let garbage = ca.dir().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        tls.cert.cert_path = garbage;
        let err = Slapd::start(SlapdConfig {
            tls: Some(tls),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("slapd exited during start-up"), "{err}");
        assert!(err.contains("TLS init def ctx failed"), "{err}");
    }

    /// Counts entries and collects result codes of a paged/unpaged search
    /// bound as an ordinary user.
    fn sized_search(slapd: &Slapd, page: Option<u32>) -> (usize, Option<i32>) {
        let url = slapd.ldap_url();
        let dn = format!("uid=u1,{}", slapd.people_dn());
        let people = slapd.people_dn();
        let mut args = vec!["-x", "-H", &url, "-D", &dn, "-w", "pw", "-b", &people];
        let pr = page.map(|p| format!("pr={p}/noprompt"));
        if let Some(pr) = &pr {
            args.extend(["-E", pr]);
        }
        args.extend(["(uid=*)", "dn"]);
        let out = ldapsearch(&[("LDAPNOINIT", "1")], &args);
        let entries = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("dn:"))
            .count();
        (entries, out.status.code())
    }

    #[test]
    fn sizelimit_and_paged_results() {
        let mut users = String::new();
        for i in 1..=120 {
            let uid = format!("u{i}");
            let cn = format!("User {i}");
            let user = TestUser {
                uid: &uid,
                cn: &cn,
                password: Some("pw"),
                ..Default::default()
            };
            users.push_str(&user_ldif("dc=example,dc=com", &user));
        }
        let start = |limit: &str| {
            Slapd::start(SlapdConfig {
                size_limit: Some(limit.into()),
                base_ldif: Some(users.clone()),
                ..Default::default()
            })
            .unwrap()
        };

        // Plain soft=hard=50: paging does not get around the limit.
        let slapd = start("50");
        assert_eq!(sized_search(&slapd, None), (50, Some(4)));
        assert_eq!(sized_search(&slapd, Some(20)), (50, Some(4)));
        assert_eq!(sized_search(&slapd, Some(100)), (50, Some(4)));
        let all = slapd
            .search(&slapd.people_dn(), "(uid=*)", &["dn"])
            .unwrap();
        assert_eq!(
            all.lines().filter(|l| l.starts_with("dn:")).count(),
            120,
            "root DN is unlimited"
        );
        drop(slapd);

        // prtotal caps paged searches only.
        let slapd = start("size.prtotal=50");
        assert_eq!(sized_search(&slapd, None), (120, Some(0)));
        assert_eq!(sized_search(&slapd, Some(20)), (50, Some(4)));
        assert_eq!(sized_search(&slapd, Some(100)), (50, Some(4)));
        drop(slapd);

        // prtotal=unlimited lets paging read everything; size.pr caps pages.
        let slapd = start("size.soft=50 size.hard=50 size.pr=50 size.prtotal=unlimited");
        assert_eq!(sized_search(&slapd, None), (50, Some(4)));
        assert_eq!(sized_search(&slapd, Some(20)), (120, Some(0)));
        assert_eq!(sized_search(&slapd, Some(100)), (0, Some(11)));
    }
}
