//! A throwaway real Samba Active Directory domain controller (Debian `samba-ad-dc`), for the Active
//! Directory connector's tests and benchmarks: realm `ROSTER.TEST`, NetBIOS domain `ROSTER`, host
//! `dc1`, base DN `DC=roster,DC=test`, on a loopback address of its own (127.0.0.3 to 127.0.0.10:
//! Samba's LDAP ports 389/636 can't move, so one DC per address), with its internal DNS server on a
//! port chosen at run time and a TLS certificate from the test CA naming the address,
//! `dc1.roster.test` and `roster.test`.
//!
//! Why a template: `samba-tool domain provision` takes ~12 s on 2 cores, starting a provisioned DC
//! under a second. The first process of a test run provisions into
//! `$TMPDIR/roster-samba-template-<samba version>-r<recipe>-uid<uid>-<ip>` (under an `flock`, so
//! concurrent processes wait instead of racing; provisioned into a `.partial` directory renamed
//! when complete, so a killed provisioning is never reused) and adds the `msExchHideFromAddressLists`
//! schema extension offline; later processes reuse it. The template is per address because
//! provisioning writes the DC's A records into DNS.
//!
//! Why one DC per process: every process copies the template (`cp -a`, keeping sysvol's ACL
//! extended attributes), writes its own `smb.conf` and `krb5.conf` and starts one `samba -i -M
//! single` that all its tests share through [`SambaDc::shared`]; each test isolates itself in an
//! OU of its own ([`SambaDc::new_ou`]). The address is claimed by an `flock` held for the process'
//! lifetime. The CA is per process (made at start, ~1 s), so no CA key is left in a shared place.
//!
//! Why the DC can't outlive the process: `samba -i` exits when its stdin reaches end of file
//! (verified: "server_stdin_handler: samba: EOF on stdin - PID … terminating"), and its stdin is a
//! pipe whose writing end only this process holds; the kernel closes it even on SIGKILL. (Not
//! `PR_SET_PDEATHSIG`: it fires when the spawning *thread* ends, i.e. when the first test using
//! the DC finishes.) An `atexit` hook also stops it and deletes its directory; a process killed by
//! a signal leaves that directory (`/tmp/roster-samba-XXXXXX`, ~40 MB) behind, but no `samba`
//! (verified with SIGKILL during a bulk load).
//!
//! Samba never reads `/etc`: `-s` always points at our `smb.conf` (`--configfile` for the ldb
//! tools), `include system krb5 conf = no`, and [`SambaDc::krb5_conf_path`] is our own file. The
//! services Roster doesn't need (file server, NetBIOS, DNS updates, KCC, replication, NTP signing,
//! winbindd) are off: they only cost CPU. Provisioning needs root (it chowns and sets ACLs).
//!
//! Directory changes go over LDAPS as the Administrator with `ldap3` (async: call them from a tokio
//! runtime). `samba-tool user create` takes ~0.3 s per user; LDAP adds ~7 ms without a password
//! (~150/s) and ~33 ms with one (Samba derives Kerberos keys). [`Ou::add_users_bulk`] can keep several
//! adds in flight on one connection, but the single-process DC serialises them: measured no faster.
//!
//! Kerberos (service accounts with SPNs, keytabs, `kinit`, the environment for curl and Chromium)
//! is in [`kerberos`], with what was verified about Samba's KDC and MIT's tools.

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ChildStdin, Command};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, LdapResult, Mod, Scope, SearchEntry};

use crate::ca::TestCa;
use crate::common::{
    START_TIMEOUT, ServerProcess, describe, find_program, lock, run, temp_dir, try_free_port,
};

const INSTALL_HINT: &str = "install the Debian packages samba samba-ad-dc samba-ad-provision winbind \
     krb5-user ldb-tools (DEBIAN_FRONTEND=noninteractive apt-get install -y ...; scripts/test.sh does it)";
const SBIN_DIRS: &[&str] = &["/usr/sbin", "/usr/local/sbin"];

/// The Kerberos realm.
pub const REALM: &str = "ROSTER.TEST";
/// The NetBIOS domain name.
pub const NETBIOS_DOMAIN: &str = "ROSTER";
/// The DNS domain.
pub const DNS_DOMAIN: &str = "roster.test";
/// The domain's naming context.
pub const BASE_DN: &str = "DC=roster,DC=test";
/// The DC's host name; its FQDN is [`DC_FQDN`].
pub const HOST_NAME: &str = "dc1";
/// The DC's DNS name.
pub const DC_FQDN: &str = "dc1.roster.test";
/// The Administrator's password: meets AD's complexity rules, worth nothing outside tests.
pub const ADMIN_PASSWORD: &str = "Roster-Test-Admin-1";
/// The Administrator's DN.
pub const ADMIN_DN: &str = "CN=Administrator,CN=Users,DC=roster,DC=test";
/// The Administrator's userPrincipalName.
pub const ADMIN_UPN: &str = "Administrator@roster.test";
/// `userAccountControl` of an enabled normal account (`NORMAL_ACCOUNT`).
pub const UAC_NORMAL: u32 = 0x200;
/// `userAccountControl` bit `ACCOUNTDISABLE`.
pub const UAC_DISABLED: u32 = 0x2;
/// `userAccountControl` bit `PASSWD_NOTREQD` (set on accounts created without a password).
pub const UAC_PASSWD_NOTREQD: u32 = 0x20;
/// `groupType` of a global security group.
pub const GROUP_GLOBAL_SECURITY: i32 = -2_147_483_646;

/// Bump when the provisioning recipe changes, so old templates are not reused.
/// 3: `samba_spnupdate` (the DC's `ldap/…` SPNs).
const RECIPE: u32 = 3;
/// The loopback addresses tried in turn (127.0.0.1 is everyone's, Dovecot uses 127.0.0.2).
const ADDRESS_POOL: std::ops::RangeInclusive<u8> = 3..=10;

/// The schema extension: Exchange's `msExchHideFromAddressLists` (a Boolean). Two steps, run as
/// two `ldbmodify` calls: inside one transaction `schemaUpdateNow` doesn't make the new attribute
/// usable for the `mayContain` that follows.
const SCHEMA_ATTRIBUTE: &str = "\
dn: CN=ms-Exch-Hide-From-Address-Lists,CN=Schema,CN=Configuration,DC=roster,DC=test
changetype: add
objectClass: top
objectClass: attributeSchema
cn: ms-Exch-Hide-From-Address-Lists
lDAPDisplayName: msExchHideFromAddressLists
attributeID: 1.2.840.113556.1.4.7000.102.73
attributeSyntax: 2.5.5.8
oMSyntax: 1
isSingleValued: TRUE
searchFlags: 0

dn:
changetype: modify
add: schemaUpdateNow
schemaUpdateNow: 1
";
const SCHEMA_MAY_CONTAIN: &str = "\
dn: CN=User,CN=Schema,CN=Configuration,DC=roster,DC=test
changetype: modify
add: mayContain
mayContain: msExchHideFromAddressLists

dn:
changetype: modify
add: schemaUpdateNow
schemaUpdateNow: 1
";

/// How long the start of the shared DC took, for reports and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartTimings {
    /// Provisioning (and the schema extension) when this process made the template; `None` when it
    /// reused one.
    pub provisioned: Option<Duration>,
    /// Waiting for the template lock (another process provisioning).
    pub waited_for_template: Duration,
    /// Copying the template.
    pub copied: Duration,
    /// The test CA and the DC's certificate.
    pub certificate: Duration,
    /// From spawning `samba` to its LDAP, LDAPS and DNS ports accepting connections.
    pub started: Duration,
}

/// A running Samba AD DC shared by the tests of one process; see the module documentation.
#[derive(Debug)]
pub struct SambaDc {
    ip: Ipv4Addr,
    dns_port: u16,
    dir: PathBuf,
    smb_conf: PathBuf,
    krb5_conf: PathBuf,
    ca_cert: PathBuf,
    log: PathBuf,
    samba_tool: PathBuf,
    timings: StartTimings,
}

/// What the exit hook stops and deletes.
struct Running {
    process: ServerProcess,
    stdin: ChildStdin,
    dir: tempfile::TempDir,
    _ca: TestCa,
    _address_lock: File,
}

static SHARED: Mutex<Option<&'static SambaDc>> = Mutex::new(None);
static RUNNING: Mutex<Option<Running>> = Mutex::new(None);
static OU_COUNTER: AtomicU64 = AtomicU64::new(0);

impl SambaDc {
    /// The DC of this test process, started on first use (provisioning the template first if no
    /// process did yet) and stopped when the process exits. Blocks for up to ~15 s the first time.
    /// If starting fails, the error is returned and the next call tries again.
    pub fn shared() -> io::Result<&'static SambaDc> {
        let mut shared = lock(&SHARED);
        if let Some(dc) = *shared {
            return Ok(dc);
        }
        let dc: &'static SambaDc = Box::leak(Box::new(start()?));
        *shared = Some(dc);
        Ok(dc)
    }

    /// The DC's loopback address.
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// `ldap://IP:389` (StartTLS offered; simple binds need it).
    pub fn ldap_url(&self) -> String {
        format!("ldap://{}:389", self.ip)
    }

    /// `ldaps://IP:636`.
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://{}:636", self.ip)
    }

    /// Samba's internal DNS server (UDP and TCP), which serves the `roster.test` zone with
    /// `_ldap._tcp.dc._msdcs.roster.test` pointing at `dc1.roster.test` port 389.
    pub fn dns_server(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.dns_port))
    }

    /// PEM file of the CA that signed the DC's certificate.
    pub fn ca_cert_path(&self) -> &Path {
        &self.ca_cert
    }

    /// A krb5.conf for this realm with this DC as KDC (point `KRB5_CONFIG` at it).
    pub fn krb5_conf_path(&self) -> &Path {
        &self.krb5_conf
    }

    /// The DC's smb.conf (`-s` for samba-tool, `--configfile` for the ldb tools).
    pub fn smb_conf_path(&self) -> &Path {
        &self.smb_conf
    }

    /// The DC's directory (a copy of the template).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Samba's own log file (`log file`); its stdout and stderr are in `samba.out` beside it.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// How long this process took to get the DC running.
    pub fn timings(&self) -> StartTimings {
        self.timings
    }

    /// `samba-tool ARGS -s smb.conf`, with `KRB5_CONFIG` set; add `-H`/`-U` yourself or use
    /// [`SambaDc::samba_tool_remote`].
    pub fn samba_tool(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.samba_tool);
        cmd.args(args)
            .arg("-s")
            .arg(&self.smb_conf)
            .env("KRB5_CONFIG", &self.krb5_conf);
        cmd
    }

    /// `samba-tool ARGS` against the running DC over LDAP as the Administrator (SASL with
    /// sealing on port 389: Samba refuses SASL sign/seal inside TLS, so not `ldaps://`).
    pub fn samba_tool_remote(&self, args: &[&str]) -> Command {
        let mut cmd = self.samba_tool(args);
        cmd.arg("-H")
            .arg(self.ldap_url())
            .arg(format!("-UAdministrator%{ADMIN_PASSWORD}"));
        cmd
    }

    /// An ldb tool (`ldbsearch`, `ldbmodify`, `ldbadd`, …) against the running DC as the
    /// Administrator, like [`SambaDc::samba_tool_remote`]; add the tool's own arguments.
    pub fn ldb_tool(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.arg("-H")
            .arg(self.ldap_url())
            .arg(format!("-UAdministrator%{ADMIN_PASSWORD}"))
            .arg(format!("--configfile={}", self.smb_conf.display()))
            .env("KRB5_CONFIG", &self.krb5_conf);
        cmd
    }

    /// `ldbsearch` from `base` (subtree), returning its LDIF output.
    pub fn ldbsearch(&self, base: &str, filter: &str, attrs: &[&str]) -> io::Result<String> {
        let mut cmd = self.ldb_tool("ldbsearch");
        cmd.arg("-b").arg(base).arg(filter).args(attrs);
        let out = run(&mut cmd)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A rustls client configuration trusting the test CA (aws-lc-rs provider).
    pub fn tls_config(&self) -> io::Result<Arc<rustls::ClientConfig>> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca_cert)
            .map_err(|e| io::Error::other(format!("{}: {e}", self.ca_cert.display())))?
        {
            let cert =
                cert.map_err(|e| io::Error::other(format!("{}: {e}", self.ca_cert.display())))?;
            roots
                .add(cert)
                .map_err(|e| io::Error::other(format!("test CA certificate: {e}")))?;
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| io::Error::other(format!("rustls: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }

    /// An unbound LDAP connection: `url` is one of [`SambaDc::ldap_url`] (with `starttls`) or
    /// [`SambaDc::ldaps_url`]; TLS trusts the test CA.
    pub async fn connect(&self, url: &str, starttls: bool) -> io::Result<Ldap> {
        let settings = LdapConnSettings::new()
            .set_conn_timeout(Duration::from_secs(10))
            .set_config(self.tls_config()?)
            .set_starttls(starttls);
        let (conn, ldap) = LdapConnAsync::with_settings(settings, url)
            .await
            .map_err(|e| ldap_error(&format!("connect to {url}"), e))?;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    /// A simple bind over LDAPS; the raw result (rc 0 on success, 49 and an AD `data …` text on
    /// failure) so tests can look at refusals. `who` may be a DN, a UPN or `ROSTER\name`.
    pub async fn bind_ldaps(&self, who: &str, password: &str) -> io::Result<LdapResult> {
        let mut ldap = self.connect(&self.ldaps_url(), false).await?;
        let result = ldap
            .simple_bind(who, password)
            .await
            .map_err(|e| ldap_error("bind", e))?;
        let _ = ldap.unbind().await;
        Ok(result)
    }

    /// An LDAPS connection bound as the Administrator.
    pub async fn admin_ldap(&self) -> io::Result<Ldap> {
        let mut ldap = self.connect(&self.ldaps_url(), false).await?;
        ldap.simple_bind(ADMIN_DN, ADMIN_PASSWORD)
            .await
            .and_then(LdapResult::success)
            .map_err(|e| ldap_error("bind as Administrator", e))?;
        Ok(ldap)
    }

    /// A new, uniquely named OU under the domain root (`OU=<name>-<pid>-<n>,DC=roster,DC=test`),
    /// with an Administrator connection for creating things in it.
    pub async fn new_ou(&self, name: &str) -> io::Result<Ou> {
        let mut ldap = self.admin_ldap().await?;
        let n = OU_COUNTER.fetch_add(1, Ordering::Relaxed);
        let rdn = format!("{}-{}-{n}", rdn_value(name), std::process::id());
        let dn = format!("OU={rdn},{BASE_DN}");
        add(
            &mut ldap,
            &dn,
            vec![attr("objectClass", &["organizationalUnit"])],
        )
        .await?;
        Ok(Ou { dn, ldap })
    }
}

/// A user to create with [`Ou::add_user`]. `new` fills in an enabled account; set the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdUser {
    pub sam_account_name: String,
    /// Set as `unicodePwd` (over TLS). `None`: no password, `PASSWD_NOTREQD` set.
    pub password: Option<String>,
    /// The RDN value; defaults to `display_name`, else the sAMAccountName.
    pub cn: Option<String>,
    pub given_name: Option<String>,
    pub sn: Option<String>,
    pub display_name: Option<String>,
    pub mail: Option<String>,
    pub proxy_addresses: Vec<String>,
    pub enabled: bool,
    pub hide_from_address_lists: Option<bool>,
    /// Defaults to `<sAMAccountName>@roster.test`.
    pub user_principal_name: Option<String>,
}

impl AdUser {
    /// An enabled account without a password or other attributes.
    pub fn new(sam_account_name: &str) -> AdUser {
        AdUser {
            sam_account_name: sam_account_name.to_owned(),
            password: None,
            cn: None,
            given_name: None,
            sn: None,
            display_name: None,
            mail: None,
            proxy_addresses: Vec::new(),
            enabled: true,
            hide_from_address_lists: None,
            user_principal_name: None,
        }
    }

    fn rdn(&self) -> &str {
        self.cn
            .as_deref()
            .or(self.display_name.as_deref())
            .unwrap_or(&self.sam_account_name)
    }

    fn attributes(&self) -> Vec<(Vec<u8>, HashSet<Vec<u8>>)> {
        let mut uac = UAC_NORMAL;
        if !self.enabled {
            uac |= UAC_DISABLED;
        }
        if self.password.is_none() {
            uac |= UAC_PASSWD_NOTREQD;
        }
        let upn = self
            .user_principal_name
            .clone()
            .unwrap_or_else(|| format!("{}@{DNS_DOMAIN}", self.sam_account_name));
        let mut attrs = vec![
            attr("objectClass", &["user"]),
            attr("sAMAccountName", &[self.sam_account_name.as_str()]),
            attr("userPrincipalName", &[upn.as_str()]),
            attr("userAccountControl", &[uac.to_string().as_str()]),
        ];
        for (name, value) in [
            ("givenName", &self.given_name),
            ("sn", &self.sn),
            ("displayName", &self.display_name),
            ("mail", &self.mail),
        ] {
            if let Some(value) = value {
                attrs.push(attr(name, &[value.as_str()]));
            }
        }
        if !self.proxy_addresses.is_empty() {
            let values: Vec<&str> = self.proxy_addresses.iter().map(String::as_str).collect();
            attrs.push(attr("proxyAddresses", &values));
        }
        if let Some(hide) = self.hide_from_address_lists {
            attrs.push(attr(
                "msExchHideFromAddressLists",
                &[if hide { "TRUE" } else { "FALSE" }],
            ));
        }
        if let Some(password) = &self.password {
            attrs.push((
                b"unicodePwd".to_vec(),
                HashSet::from([unicode_pwd(password)]),
            ));
        }
        attrs
    }
}

/// An OU of one test, with an LDAPS connection bound as the Administrator. Nothing is deleted on
/// drop: the DC lives in the process' temporary directory.
#[derive(Debug, Clone)]
pub struct Ou {
    dn: String,
    ldap: Ldap,
}

impl Ou {
    /// The OU's DN.
    pub fn dn(&self) -> &str {
        &self.dn
    }

    /// The Administrator connection (a clone shares it), for searches and anything not covered here.
    pub fn ldap(&self) -> Ldap {
        self.ldap.clone()
    }

    /// Creates a user in this OU; returns its DN.
    pub async fn add_user(&self, user: &AdUser) -> io::Result<String> {
        let dn = format!("CN={},{}", rdn_value(user.rdn()), self.dn);
        add(&mut self.ldap.clone(), &dn, user.attributes()).await?;
        Ok(dn)
    }

    /// Creates many users, keeping up to `in_flight` adds outstanding on the one connection;
    /// returns their DNs in order. Stops at the first failure.
    pub async fn add_users_bulk(
        &self,
        users: &[AdUser],
        in_flight: usize,
    ) -> io::Result<Vec<String>> {
        let mut tasks = tokio::task::JoinSet::new();
        let mut dns = Vec::with_capacity(users.len());
        for user in users {
            if tasks.len() >= in_flight.max(1) {
                join_one(&mut tasks).await?;
            }
            let dn = format!("CN={},{}", rdn_value(user.rdn()), self.dn);
            let attrs = user.attributes();
            let mut ldap = self.ldap.clone();
            let task_dn = dn.clone();
            tasks.spawn(async move { add(&mut ldap, &task_dn, attrs).await });
            dns.push(dn);
        }
        while !tasks.is_empty() {
            join_one(&mut tasks).await?;
        }
        Ok(dns)
    }

    /// Creates a global security group in this OU with `members` (DNs of users or groups);
    /// returns its DN. `sAMAccountName` is the name.
    pub async fn add_group(&self, name: &str, members: &[&str]) -> io::Result<String> {
        let dn = format!("CN={},{}", rdn_value(name), self.dn);
        let mut attrs = vec![
            attr("objectClass", &["group"]),
            attr("sAMAccountName", &[name]),
            attr("groupType", &[GROUP_GLOBAL_SECURITY.to_string().as_str()]),
        ];
        if !members.is_empty() {
            attrs.push(attr("member", members));
        }
        add(&mut self.ldap.clone(), &dn, attrs).await?;
        Ok(dn)
    }

    /// Adds members (DNs) to a group.
    pub async fn add_members(&self, group_dn: &str, members: &[&str]) -> io::Result<()> {
        self.modify(
            group_dn,
            vec![Mod::Add(b"member".to_vec(), bytes_set(members))],
        )
        .await
    }

    /// Removes members (DNs) from a group.
    pub async fn remove_members(&self, group_dn: &str, members: &[&str]) -> io::Result<()> {
        self.modify(
            group_dn,
            vec![Mod::Delete(b"member".to_vec(), bytes_set(members))],
        )
        .await
    }

    /// Replaces attributes of any entry (`Mod::Replace` etc. with byte-string values).
    pub async fn modify(&self, dn: &str, mods: Vec<Mod<Vec<u8>>>) -> io::Result<()> {
        self.ldap
            .clone()
            .modify(dn, mods)
            .await
            .and_then(LdapResult::success)
            .map_err(|e| ldap_error(&format!("modify {dn}"), e))?;
        Ok(())
    }

    /// Replaces one attribute's values (string values; none deletes it).
    pub async fn replace(&self, dn: &str, attribute: &str, values: &[&str]) -> io::Result<()> {
        self.modify(
            dn,
            vec![Mod::Replace(
                attribute.as_bytes().to_vec(),
                bytes_set(values),
            )],
        )
        .await
    }

    /// Enables or disables an account (`userAccountControl`, keeping its other bits).
    pub async fn set_enabled(&self, dn: &str, enabled: bool) -> io::Result<()> {
        let (entries, _) = self
            .ldap
            .clone()
            .search(
                dn,
                Scope::Base,
                "(objectClass=*)",
                vec!["userAccountControl"],
            )
            .await
            .and_then(ldap3::SearchResult::success)
            .map_err(|e| ldap_error(&format!("read {dn}"), e))?;
        let uac = entries
            .into_iter()
            .next()
            .map(SearchEntry::construct)
            .and_then(|e| {
                e.attrs
                    .get("userAccountControl")
                    .and_then(|v| v.first().cloned())
            })
            .and_then(|v| v.parse::<u32>().ok())
            .ok_or_else(|| io::Error::other(format!("{dn} has no userAccountControl")))?;
        let uac = if enabled {
            uac & !UAC_DISABLED
        } else {
            uac | UAC_DISABLED
        };
        self.replace(dn, "userAccountControl", &[uac.to_string().as_str()])
            .await
    }

    /// Renames an entry in place (new `CN=`); returns the new DN.
    pub async fn rename(&self, dn: &str, new_cn: &str) -> io::Result<String> {
        let rdn = format!("CN={}", rdn_value(new_cn));
        let parent = parent_dn(dn)?;
        self.ldap
            .clone()
            .modifydn(dn, &rdn, true, None)
            .await
            .and_then(LdapResult::success)
            .map_err(|e| ldap_error(&format!("rename {dn}"), e))?;
        Ok(format!("{rdn},{parent}"))
    }

    /// Moves an entry under `new_parent` (e.g. another test OU), keeping its RDN; returns the new DN.
    pub async fn move_to(&self, dn: &str, new_parent: &str) -> io::Result<String> {
        let rdn = dn
            .split_once(',')
            .map(|(rdn, _)| rdn)
            .ok_or_else(|| io::Error::other(format!("{dn} has no parent")))?;
        self.ldap
            .clone()
            .modifydn(dn, rdn, true, Some(new_parent))
            .await
            .and_then(LdapResult::success)
            .map_err(|e| ldap_error(&format!("move {dn}"), e))?;
        Ok(format!("{rdn},{new_parent}"))
    }

    /// Deletes a leaf entry.
    pub async fn delete(&self, dn: &str) -> io::Result<()> {
        self.ldap
            .clone()
            .delete(dn)
            .await
            .and_then(LdapResult::success)
            .map_err(|e| ldap_error(&format!("delete {dn}"), e))?;
        Ok(())
    }

    /// Sets a user's password (`unicodePwd` replaced by the Administrator).
    pub async fn set_password(&self, dn: &str, password: &str) -> io::Result<()> {
        self.modify(
            dn,
            vec![Mod::Replace(
                b"unicodePwd".to_vec(),
                HashSet::from([unicode_pwd(password)]),
            )],
        )
        .await
    }
}

async fn join_one(tasks: &mut tokio::task::JoinSet<io::Result<()>>) -> io::Result<()> {
    match tasks.join_next().await {
        Some(Ok(result)) => result,
        Some(Err(e)) => Err(io::Error::other(format!("add task failed: {e}"))),
        None => Ok(()),
    }
}

/// `unicodePwd`'s value: the password in double quotes, UTF-16LE.
pub fn unicode_pwd(password: &str) -> Vec<u8> {
    format!("\"{password}\"")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect()
}

/// Escapes an RDN value (RFC 4514: `,+"\<>;=` and a leading `#` or space, a trailing space).
pub fn rdn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        if matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && matches!(c, '#' | ' '))
            || (i == last && c == ' ')
        {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn parent_dn(dn: &str) -> io::Result<&str> {
    // RDN values made here escape commas, so the first unescaped comma ends the RDN.
    let bytes = dn.as_bytes();
    let mut escaped = false;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\\' if !escaped => escaped = true,
            b',' if !escaped => return dn.get(i + 1..).ok_or_else(|| io::Error::other("bad DN")),
            _ => escaped = false,
        }
    }
    Err(io::Error::other(format!("{dn} has no parent")))
}

fn attr(name: &str, values: &[&str]) -> (Vec<u8>, HashSet<Vec<u8>>) {
    (name.as_bytes().to_vec(), bytes_set(values))
}

fn bytes_set(values: &[&str]) -> HashSet<Vec<u8>> {
    values.iter().map(|v| v.as_bytes().to_vec()).collect()
}

async fn add(ldap: &mut Ldap, dn: &str, attrs: Vec<(Vec<u8>, HashSet<Vec<u8>>)>) -> io::Result<()> {
    ldap.add(dn, attrs)
        .await
        .and_then(LdapResult::success)
        .map_err(|e| ldap_error(&format!("add {dn}"), e))?;
    Ok(())
}

fn ldap_error(what: &str, e: ldap3::LdapError) -> io::Error {
    io::Error::other(format!("Samba DC: {what}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Start-up: address, template, copy, configuration, process.

fn start() -> io::Result<SambaDc> {
    let samba = find_program("samba", SBIN_DIRS, INSTALL_HINT)?;
    let samba_tool = find_program("samba-tool", SBIN_DIRS, INSTALL_HINT)?;
    find_program("ldbmodify", &[], INSTALL_HINT)?;
    let version = samba_version(&samba)?;
    let (ip, address_lock) = claim_address()?;

    let template = template_path(&version, ip);
    let (provisioned, waited_for_template) = ensure_template(&samba_tool, &template, ip)?;

    let t = Instant::now();
    let dir = temp_dir("roster-samba-")?;
    let root = dir.path().to_owned();
    let mut cp = Command::new("cp");
    cp.arg("-a").arg(template.join(".")).arg(&root);
    run(&mut cp)?;
    let copied = t.elapsed();

    let t = Instant::now();
    let ca = TestCa::generate()?;
    let cert = ca.issue_server_cert_for(DC_FQDN, &[DC_FQDN, DNS_DOMAIN], &[IpAddr::V4(ip)])?;
    let tls = root.join("tls");
    fs::create_dir_all(&tls)?;
    let (key, certfile, cafile) = (
        tls.join("key.pem"),
        tls.join("cert.pem"),
        tls.join("ca.pem"),
    );
    fs::copy(&cert.key_path, &key)?;
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600))?;
    fs::copy(&cert.cert_path, &certfile)?;
    fs::copy(ca.ca_cert_path(), &cafile)?;
    let certificate = t.elapsed();

    let dns_port = try_free_port()?;
    for sub in ["log", "run", "cache", "ncalrpc", "winbindd", "ntp_signd"] {
        fs::create_dir_all(root.join(sub))?;
    }
    let smb_conf = root.join("etc/smb.conf");
    fs::write(&smb_conf, smb_conf_text(&root, ip, Some(dns_port), None))?;
    let krb5_conf = root.join("krb5.conf");
    fs::write(&krb5_conf, krb5_conf_text(ip))?;

    let t = Instant::now();
    let mut cmd = Command::new(&samba);
    cmd.args(["-i", "-M", "single", "-s"])
        .arg(&smb_conf)
        .env("KRB5_CONFIG", &krb5_conf);
    let (mut process, stdin) =
        ServerProcess::spawn_with_stdin_pipe("samba", &mut cmd, &root.join("samba.out"))?;
    let addrs: Vec<SocketAddr> = [389, 636, dns_port]
        .into_iter()
        .map(|port| SocketAddr::from((ip, port)))
        .collect();
    process.wait_for_addrs(&addrs, START_TIMEOUT)?;
    let started = t.elapsed();

    let dc = SambaDc {
        ip,
        dns_port,
        dir: root.clone(),
        smb_conf,
        krb5_conf,
        ca_cert: cafile,
        log: root.join("log/samba.log"),
        samba_tool,
        timings: StartTimings {
            provisioned,
            waited_for_template,
            copied,
            certificate,
            started,
        },
    };
    register_for_exit(Running {
        process,
        stdin,
        dir,
        _ca: ca,
        _address_lock: address_lock,
    })?;
    Ok(dc)
}

/// Provisions the template unless it exists; returns how long provisioning took (`None`: reused)
/// and how long we waited for another process holding the template lock.
fn ensure_template(
    samba_tool: &Path,
    template: &Path,
    ip: Ipv4Addr,
) -> io::Result<(Option<Duration>, Duration)> {
    let t = Instant::now();
    let template_lock = open_lock(&sibling(template, "lock"))?;
    flock(&template_lock, true)?;
    let waited = t.elapsed();
    if template.join("private/sam.ldb").exists() {
        return Ok((None, waited));
    }
    let t = Instant::now();
    provision(samba_tool, template, ip)?;
    Ok((Some(t.elapsed()), waited))
}

/// `<path>.<suffix>` (not `with_extension`: the template's name ends in an IP address).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

fn samba_version(samba: &Path) -> io::Result<String> {
    let out = run(Command::new(samba).arg("--version"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.trim().trim_start_matches("Version ").to_owned();
    if version.is_empty() {
        return Err(io::Error::other("`samba --version` printed nothing"));
    }
    Ok(crate::common::file_stem(&version))
}

#[allow(unsafe_code)]
fn uid() -> u32 {
    // SAFETY: getuid(2) has no arguments, cannot fail and touches no memory of ours.
    unsafe { libc::getuid() }
}

fn template_path(version: &str, ip: Ipv4Addr) -> PathBuf {
    std::env::temp_dir().join(format!(
        "roster-samba-template-{version}-r{RECIPE}-uid{}-{ip}",
        uid()
    ))
}

fn open_lock(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// `flock(LOCK_EX)`, waiting when `wait`; `Ok(false)` when not waiting and someone else holds it.
#[allow(unsafe_code)]
fn flock(file: &File, wait: bool) -> io::Result<bool> {
    use std::os::fd::AsRawFd;
    let op = if wait {
        libc::LOCK_EX
    } else {
        libc::LOCK_EX | libc::LOCK_NB
    };
    loop {
        // SAFETY: flock(2) on a descriptor `file` owns for the duration of the call; no memory
        // is passed. The lock is released when the file is closed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
        if rc == 0 {
            return Ok(true);
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) if !wait => return Ok(false),
            _ => return Err(err),
        }
    }
}

/// The first address of the pool whose lock is free and where nothing listens on port 389.
fn claim_address() -> io::Result<(Ipv4Addr, File)> {
    let locks = std::env::temp_dir().join(format!("roster-samba-locks-uid{}", uid()));
    fs::create_dir_all(&locks)?;
    for last in ADDRESS_POOL {
        let ip = Ipv4Addr::new(127, 0, 0, last);
        let file = open_lock(&locks.join(format!("{ip}.lock")))?;
        if !flock(&file, false)? {
            continue;
        }
        let busy =
            TcpStream::connect_timeout(&SocketAddr::from((ip, 389)), Duration::from_millis(200))
                .is_ok();
        if !busy {
            return Ok((ip, file));
        }
    }
    Err(io::Error::other(
        "no free address for a Samba DC in 127.0.0.3-127.0.0.10: other test processes hold them, \
         or something else listens on their port 389 (a leaked `samba -i -M single -s \
         /tmp/roster-samba-*/etc/smb.conf`? stop it)",
    ))
}

/// Provisions the template for `ip` into `<template>.partial`, extends the schema, then renames it.
fn provision(samba_tool: &Path, template: &Path, ip: Ipv4Addr) -> io::Result<()> {
    let partial = sibling(template, "partial");
    if partial.exists() {
        fs::remove_dir_all(&partial)?;
    }
    if template.exists() {
        fs::remove_dir_all(template)?;
    }
    fs::create_dir_all(&partial)?;
    let mut cmd = Command::new(samba_tool);
    cmd.current_dir(&partial)
        .args(["domain", "provision", "--server-role=dc"])
        .arg(format!("--targetdir={}", partial.display()))
        .arg(format!("--realm={REALM}"))
        .arg(format!("--domain={NETBIOS_DOMAIN}"))
        .arg("--dns-backend=SAMBA_INTERNAL")
        .arg(format!("--host-name={HOST_NAME}"))
        .arg(format!("--host-ip={ip}"))
        .arg(format!("--adminpass={ADMIN_PASSWORD}"))
        .env("KRB5_CONFIG", partial.join("krb5.conf"));
    for option in provision_options(&partial, ip) {
        cmd.arg(format!("--option={option}"));
    }
    run(&mut cmd).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("provisioning the Samba DC template failed (it needs root): {e}"),
        )
    })?;
    // Provision drops `include system krb5 conf`; the ldb tools below must not read /etc either.
    fs::write(
        partial.join("etc/smb.conf"),
        smb_conf_text(&partial, ip, None, Some("dsdb:schema update allowed = yes")),
    )?;
    for ldif in [SCHEMA_ATTRIBUTE, SCHEMA_MAY_CONTAIN] {
        let file = partial.join("schema.ldif");
        fs::write(&file, ldif)?;
        let mut cmd = Command::new("ldbmodify");
        cmd.arg("-H")
            .arg(partial.join("private/sam.ldb"))
            .arg(format!(
                "--configfile={}",
                partial.join("etc/smb.conf").display()
            ))
            .arg(&file);
        run(&mut cmd).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("extending the schema: {e} ({})", describe(&cmd)),
            )
        })?;
        fs::remove_file(&file)?;
    }
    // Test passwords ("alice-pw") needn't meet AD's complexity rules, and tests set passwords again
    // at once: no complexity, minimum length, history or ages.
    let mut cmd = Command::new(samba_tool);
    cmd.current_dir(&partial)
        .args([
            "domain",
            "passwordsettings",
            "set",
            "--complexity=off",
            "--min-pwd-length=1",
            "--history-length=0",
            "--min-pwd-age=0",
            "--max-pwd-age=0",
            "--account-lockout-threshold=0",
        ])
        .arg(format!("-H{}", partial.join("private/sam.ldb").display()))
        .arg(format!("-s{}", partial.join("etc/smb.conf").display()))
        .env("KRB5_CONFIG", partial.join("krb5.conf"));
    run(&mut cmd).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("relaxing the password settings: {e} ({})", describe(&cmd)),
        )
    })?;
    // The DC's own SPNs beyond HOST/: `ldap/dc1.roster.test`, `GC/…`, `ldap/DC1`…, which a GSSAPI
    // LDAP bind asks tickets for. The DC adds them at start from its `dnsupdate` service, which is
    // off here (without them: "Server not found in Kerberos database" for ldap/dc1.roster.test).
    // It writes to the local sam.ldb (~0.3 s).
    let spnupdate = find_program("samba_spnupdate", SBIN_DIRS, INSTALL_HINT)?;
    let mut cmd = Command::new(spnupdate);
    cmd.current_dir(&partial)
        .arg(format!("-s{}", partial.join("etc/smb.conf").display()))
        .env("KRB5_CONFIG", partial.join("krb5.conf"));
    run(&mut cmd).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("adding the DC's SPNs: {e} ({})", describe(&cmd)),
        )
    })?;
    // Run-time files of the provisioning's own processes; every DC makes its own.
    for leftover in ["msg.sock", "msg.lock"] {
        let path = partial.join(leftover);
        if path.is_dir() {
            fs::remove_dir_all(&path)?;
        } else if path.exists() {
            fs::remove_file(&path)?;
        }
    }
    fs::rename(&partial, template)
}

fn provision_options(dir: &Path, ip: Ipv4Addr) -> Vec<String> {
    let d = dir.display();
    vec![
        format!("interfaces = {ip}/8"),
        "bind interfaces only = yes".into(),
        "ldb:nosync = true".into(),
        format!("pid directory = {d}/run"),
        format!("ncalrpc dir = {d}/ncalrpc"),
        format!("winbindd socket directory = {d}/winbindd"),
        format!("ntp signd socket directory = {d}/ntp_signd"),
        format!("log file = {d}/log/samba.log"),
        "dreplsrv:periodic_startup_interval = 0".into(),
        "include system krb5 conf = no".into(),
        "dns forwarder = 127.0.0.1".into(),
    ]
}

/// Our smb.conf for a DC in `dir` (a template copy, or the template while it's extended).
fn smb_conf_text(dir: &Path, ip: Ipv4Addr, dns_port: Option<u16>, extra: Option<&str>) -> String {
    let d = dir.display();
    let dns = dns_port.map_or(String::new(), |p| format!("\tdns port = {p}\n"));
    let extra = extra.map_or(String::new(), |e| format!("\t{e}\n"));
    format!(
        "# Written by roster-testkit (src/samba.rs).\n[global]\n\
         \tnetbios name = {host}\n\tworkgroup = {NETBIOS_DOMAIN}\n\trealm = {REALM}\n\
         \tserver role = active directory domain controller\n\
         \tprivate dir = {d}/private\n\tbinddns dir = {d}/bind-dns\n\tlock directory = {d}\n\
         \tstate directory = {d}/state\n\tcache directory = {d}/cache\n\tpid directory = {d}/run\n\
         \tncalrpc dir = {d}/ncalrpc\n\twinbindd socket directory = {d}/winbindd\n\
         \tntp signd socket directory = {d}/ntp_signd\n\
         \tlog file = {d}/log/samba.log\n\tlogging = file\n\tlog level = 1\n\
         \tinterfaces = {ip}/8\n\tbind interfaces only = yes\n{dns}\
         \tldb:nosync = true\n\tdreplsrv:periodic_startup_interval = 0\n\
         \tinclude system krb5 conf = no\n\
         \tserver services = -s3fs -nbt -dnsupdate -kcc -drepl -ntp_signd -winbindd\n\
         \ttls enabled = yes\n\ttls keyfile = {d}/tls/key.pem\n\ttls certfile = {d}/tls/cert.pem\n\
         \ttls cafile = {d}/tls/ca.pem\n{extra}\
         [sysvol]\n\tpath = {d}/state/sysvol\n\tread only = No\n\
         [netlogon]\n\tpath = {d}/state/sysvol/{DNS_DOMAIN}/scripts\n\tread only = No\n",
        host = HOST_NAME.to_ascii_uppercase(),
    )
}

/// Our krb5.conf. `rdns = false` and `dns_canonicalize_hostname = false`: a service's principal
/// is built from the host name exactly as the client was given it (`http://web1.localhost/` asks
/// for `HTTP/web1.localhost`), whatever `/etc/hosts` says; with canonicalization a host file line
/// `127.0.0.1 localhost.localdomain localhost` would turn `localhost` into `localhost.localdomain`.
/// (On this machine both settings gave `HTTP/localhost` and `HTTP/web1.localhost`; false makes it
/// not depend on the machine.) `udp_preference_limit = 1`: Samba's replies carry a PAC and never
/// fit in UDP ("Response too big for UDP, retry with TCP" on every request), so go TCP at once.
fn krb5_conf_text(ip: Ipv4Addr) -> String {
    format!(
        "[libdefaults]\n\tdefault_realm = {REALM}\n\tdns_lookup_realm = false\n\
         \tdns_lookup_kdc = false\n\trdns = false\n\tdns_canonicalize_hostname = false\n\
         \tudp_preference_limit = 1\n\n\
         [realms]\n\t{REALM} = {{\n\t\tkdc = {ip}\n\t\tadmin_server = {ip}\n\t\tdefault_domain = {DNS_DOMAIN}\n\t}}\n\n\
         [domain_realm]\n\t.{DNS_DOMAIN} = {REALM}\n\t{DNS_DOMAIN} = {REALM}\n"
    )
}

fn register_for_exit(running: Running) -> io::Result<()> {
    register_atexit()?;
    *lock(&RUNNING) = Some(running);
    Ok(())
}

#[allow(unsafe_code)]
fn register_atexit() -> io::Result<()> {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    let mut rc = 0;
    REGISTERED.call_once(|| {
        // SAFETY: atexit(3) only stores the function pointer. The function is `extern "C"`, never
        // unwinds (no indexing or unwrap; poisoned locks are recovered) and only uses statics.
        rc = unsafe { libc::atexit(stop_at_exit) };
    });
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::other("atexit registration failed"))
    }
}

extern "C" fn stop_at_exit() {
    if let Some(Running {
        mut process,
        stdin,
        dir,
        ..
    }) = lock(&RUNNING).take()
    {
        // End of file on stdin makes `samba -i` terminate by itself; SIGTERM/SIGKILL after that.
        drop(stdin);
        process.stop();
        drop(dir);
    }
}

pub mod kerberos;
pub use kerberos::{
    ENCTYPES_AES, ENCTYPES_RC4, ServiceAccount, UAC_DONT_EXPIRE_PASSWORD, run_with_input,
    spn_principal,
};

#[cfg(test)]
mod tests;
