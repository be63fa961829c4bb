//! Kerberos against the shared DC: service accounts with SPNs, keytabs, ticket caches, and the
//! environment for child processes (`curl --negotiate`, Chromium, `ldapsearch -Y GSSAPI`, `kvno`).
//!
//! Everything runs the real MIT tools (Debian `krb5-user`) with `KRB5_CONFIG` pointing at the DC's
//! own krb5.conf ([`SambaDc::krb5_conf_path`]) and `KRB5CCNAME=FILE:<ccache>` at a file the test
//! chooses, so no test touches `/etc/krb5.conf` or another test's tickets.
//!
//! Verified against Samba 4.17.12 and MIT krb5 1.20.1 (Debian 12):
//! - `samba-tool domain exportkeytab` works while the DC runs (it reads the local `sam.ldb`,
//!   ~0.25 s), writes mode 0600 and *appends* to an existing keytab.
//! - An SPN can't be a client principal on Samba: `kinit -k -t http.keytab HTTP/web1.localhost`
//!   fails with "Client 'HTTP/web1.localhost@ROSTER.TEST' not found in Kerberos database" (also
//!   with `-E` or `-C`). To test an HTTP keytab end to end, get a ticket as any principal, then
//!   `kvno -k http.keytab HTTP/web1.localhost` ([`SambaDc::kvno`]): "keytab entry valid", or
//!   "keytab entry invalid" plus "Wrong principal in request while decrypting ticket" when the
//!   keytab has no key of that kvno and enctype.
//! - Without `msDS-SupportedEncryptionTypes` the KDC encrypts service tickets with RC4
//!   (`arcfour-hmac`) and exports only the RC4 key for an SPN; [`SambaDc::add_service_account`]
//!   sets [`ENCTYPES_AES`], so tickets and SPN keytabs are AES (the principal `sam@REALM`
//!   always exports aes256, aes128 and arcfour).
//! - `kvno -k` decrypts with any keytab entry whose kvno and enctype fit, whatever its principal:
//!   a keytab exported for `roster-svc@ROSTER.TEST` is "valid" for that account's SPNs too (same
//!   key). (An acceptor with `GSS_C_NO_NAME` should behave alike; not run.) A keytab lacks the
//!   key only when it is another *account's*.
//! - Accounts made over LDAP with a password start at kvno 1 (`samba-tool user create`: 2).
//! - Service host names: `curl` 7.88 and Chromium resolve `localhost` and any `*.localhost` to
//!   loopback by themselves, so `http://web3.localhost:PORT/` needs no `/etc/hosts` line and each
//!   test gets its own SPN ([`SambaDc::unique_http_host`]); an SPN can be on one account only
//!   (LDAP add: rc 19, "0000202F: samldb: spn[HTTP/web1.localhost] would cause a conflict";
//!   samba-tool: "Service principal HTTP/localhost already affected to another user").
//!   `http://127.0.0.1:PORT/` makes them ask for `HTTP/127.0.0.1`, which no account has: no token.
//! - A skewed clock without touching the system's: `faketime -f +1h CMD` (Debian `faketime`,
//!   libfaketime) on the client. `kinit` still succeeds, since MIT corrects its offset from the
//!   KDC's first answer (`kdc_timesync`, default on); with `kdc_timesync = 0`
//!   ([`SambaDc::write_krb5_conf`]): "Clock skew too great while getting initial credentials".
//!   Against an acceptor, get the service ticket first (`kvno`, at the real time), then run the
//!   client under faketime: MIT's `gss-server` said "Clock skew too great".
//! - Chromium needs `--auth-server-allowlist` and, in a new profile, a Local State saying it has
//!   seen Negotiate before; [`BrowserOptions`](crate::BrowserOptions) does both.
//!
//! Broken keytabs, and what MIT's acceptor (`gss-server`, with `gss-client -spnego` as the
//! browser) and the MIT tools said about each:
//! - Outdated (kvno moved on): export, then [`SambaDc::set_password`]. Acceptor: "Request ticket
//!   server HTTP/localhost@ROSTER.TEST kvno 3 not found in keytab; keytab is likely out of
//!   date"; `kinit -k` with it: "Preauthentication failed while getting initial credentials";
//!   `kvno -k`: "keytab entry invalid" / "Wrong principal in request while decrypting ticket".
//! - Wrong enctype (right kvno): [`SambaDc::set_supported_enctypes`] to [`ENCTYPES_RC4`], export
//!   the SPN, set [`ENCTYPES_AES`] again. Acceptor: "Request ticket server
//!   HTTP/localhost@ROSTER.TEST kvno 3 found in keytab but not with enctype aes256-cts".
//! - No key for the SPN: another account's keytab (a second service account). An acceptor that
//!   names its principal (`HTTP@localhost`) fails before any request: "No key table entry found
//!   matching HTTP/localhost@".
//! - Missing file: any path that doesn't exist.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use ldap3::{LdapResult, Mod};

use super::{
    BASE_DN, DC_FQDN, DNS_DOMAIN, HOST_NAME, REALM, SambaDc, UAC_NORMAL, add, attr, unicode_pwd,
};
use crate::common::{command_failed, describe, run};

/// `msDS-SupportedEncryptionTypes` for AES128 and AES256 (0x8 | 0x10), what AD admins tick as
/// "This account supports Kerberos AES 128/256 bit encryption".
pub const ENCTYPES_AES: u32 = 0x18;
/// `msDS-SupportedEncryptionTypes` for RC4 only (0x4).
pub const ENCTYPES_RC4: u32 = 0x4;
/// `userAccountControl` bit `DONT_EXPIRE_PASSWORD`: service accounts' passwords don't expire.
pub const UAC_DONT_EXPIRE_PASSWORD: u32 = 0x1_0000;

/// Where service accounts go: not a test's OU, so a sync of that OU doesn't see them.
const USERS_CONTAINER: &str = "CN=Users,DC=roster,DC=test";

static NAME_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A service account made by [`SambaDc::add_service_account`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    pub sam_account_name: String,
    /// `<sAMAccountName>@ROSTER.TEST`: the client principal for `kinit` and an LDAP bind, and
    /// what [`SambaDc::export_keytab`] takes to export the account's own keys.
    pub principal: String,
    /// `<sAMAccountName>@roster.test`.
    pub user_principal_name: String,
    pub dn: String,
    pub password: String,
    /// As given (`HTTP/web1.localhost`); [`spn_principal`] adds the realm.
    pub spns: Vec<String>,
}

/// `SPN@ROSTER.TEST`, the form `exportkeytab --principal`, `kvno` and `klist` use.
pub fn spn_principal(spn: &str) -> String {
    format!("{spn}@{REALM}")
}

impl SambaDc {
    /// The Kerberos realm, `ROSTER.TEST`.
    pub fn realm(&self) -> &'static str {
        REALM
    }

    /// The DC's DNS name, `dc1.roster.test`: what the rootDSE's `dnsHostName` says (read
    /// anonymously over plain LDAP: verified) and the host of its LDAP service principal.
    pub fn dns_host_name(&self) -> &'static str {
        DC_FQDN
    }

    /// `ldap/dc1.roster.test@ROSTER.TEST`, the SPN a GSSAPI LDAP bind asks a ticket for. (It
    /// exists because provisioning runs `samba_spnupdate`: the DC's `dnsupdate` service, which
    /// normally adds it at start, is off here.) Clients that take the SPN's host from the URL
    /// (`ldapsearch -H ldap://127.0.0.3`) ask for `ldap/127.0.0.3` instead: add that as an alias
    /// with [`SambaDc::add_spns`] on `CN=DC1,OU=Domain Controllers,…` if a test needs it.
    pub fn ldap_service_principal(&self) -> String {
        spn_principal(&format!("ldap/{DC_FQDN}"))
    }

    /// `<prefix><n>`, unique in this process (whose DC no other process shares). Keep `prefix`
    /// to 15 characters: a `sAMAccountName` has at most 20.
    pub fn unique_name(&self, prefix: &str) -> String {
        let n = NAME_COUNTER.fetch_add(1, Ordering::Relaxed);
        format!("{prefix}{n}")
    }

    /// `web<n>.localhost`, a host name for an HTTP SPN unique in this process that curl and
    /// Chromium reach on 127.0.0.1 without any resolver set-up (see the module documentation).
    pub fn unique_http_host(&self) -> String {
        format!("{}.localhost", self.unique_name("web"))
    }

    /// Creates an enabled user in `CN=Users` with `password`, the SPNs (`HTTP/web1.localhost`,
    /// without realm) and AES enctypes ([`ENCTYPES_AES`]), in one LDAP add (~0.13 s with its
    /// LDAPS connection; samba-tool takes ~0.25 s for `user create` and ~0.12 s per `spn add`).
    /// Fails if the name or an SPN is taken: Samba checks SPN uniqueness. Pick names with
    /// [`SambaDc::unique_name`] and [`SambaDc::unique_http_host`].
    pub async fn add_service_account(
        &self,
        sam_account_name: &str,
        password: &str,
        spns: &[&str],
    ) -> io::Result<ServiceAccount> {
        let dn = format!(
            "CN={},{USERS_CONTAINER}",
            super::rdn_value(sam_account_name)
        );
        let upn = format!("{sam_account_name}@{DNS_DOMAIN}");
        let uac = UAC_NORMAL | UAC_DONT_EXPIRE_PASSWORD;
        let mut attrs = vec![
            attr("objectClass", &["user"]),
            attr("sAMAccountName", &[sam_account_name]),
            attr("userPrincipalName", &[upn.as_str()]),
            attr("userAccountControl", &[uac.to_string().as_str()]),
            attr(
                "msDS-SupportedEncryptionTypes",
                &[ENCTYPES_AES.to_string().as_str()],
            ),
            (
                b"unicodePwd".to_vec(),
                HashSet::from([unicode_pwd(password)]),
            ),
        ];
        if !spns.is_empty() {
            attrs.push(attr("servicePrincipalName", spns));
        }
        let mut ldap = self.admin_ldap().await?;
        add(&mut ldap, &dn, attrs).await?;
        let _ = ldap.unbind().await;
        Ok(ServiceAccount {
            sam_account_name: sam_account_name.to_owned(),
            principal: format!("{sam_account_name}@{REALM}"),
            user_principal_name: upn,
            dn,
            password: password.to_owned(),
            spns: spns.iter().map(|s| (*s).to_owned()).collect(),
        })
    }

    /// Adds SPNs (without realm) to any account, e.g. the DC's own
    /// (`CN=DC1,OU=Domain Controllers,DC=roster,DC=test`).
    pub async fn add_spns(&self, dn: &str, spns: &[&str]) -> io::Result<()> {
        self.admin_modify(
            dn,
            vec![Mod::Add(
                b"servicePrincipalName".to_vec(),
                spns.iter().map(|s| s.as_bytes().to_vec()).collect(),
            )],
        )
        .await
    }

    /// Sets an account's password as the Administrator. The account's kvno goes up by one, so
    /// keytabs exported before hold outdated keys (see "Broken keytabs" in the module documentation).
    pub async fn set_password(&self, dn: &str, password: &str) -> io::Result<()> {
        self.admin_modify(
            dn,
            vec![Mod::Replace(
                b"unicodePwd".to_vec(),
                HashSet::from([unicode_pwd(password)]),
            )],
        )
        .await
    }

    /// Sets (`Some`) or removes (`None`: the KDC's RC4 default) `msDS-SupportedEncryptionTypes`.
    /// It chooses the enctype of the account's service tickets and which keys an SPN export
    /// contains; the keys themselves and the kvno stay as they are.
    pub async fn set_supported_enctypes(&self, dn: &str, enctypes: Option<u32>) -> io::Result<()> {
        let values = enctypes
            .map(|e| HashSet::from([e.to_string().into_bytes()]))
            .unwrap_or_default();
        self.admin_modify(
            dn,
            vec![Mod::Replace(
                b"msDS-SupportedEncryptionTypes".to_vec(),
                values,
            )],
        )
        .await
    }

    async fn admin_modify(&self, dn: &str, mods: Vec<Mod<Vec<u8>>>) -> io::Result<()> {
        let mut ldap = self.admin_ldap().await?;
        ldap.modify(dn, mods)
            .await
            .and_then(LdapResult::success)
            .map_err(|e| super::ldap_error(&format!("modify {dn}"), e))?;
        let _ = ldap.unbind().await;
        Ok(())
    }

    /// `samba-tool domain exportkeytab PATH --principal=PRINCIPAL` against the running DC's
    /// `sam.ldb` (no need to stop it), then mode 0600. `principal` is `sam@ROSTER.TEST` (the
    /// account's aes256, aes128 and arcfour keys) or an SPN with realm (`HTTP/x@ROSTER.TEST`:
    /// only the enctypes of `msDS-SupportedEncryptionTypes`). Appends when `path` exists, so one
    /// file can hold several principals or kvnos.
    pub fn export_keytab(&self, principal: &str, path: &Path) -> io::Result<()> {
        let mut cmd = self.samba_tool(&["domain", "exportkeytab"]);
        cmd.arg(path).arg(format!("--principal={principal}"));
        run(&mut cmd)?;
        if !path.exists() {
            // exportkeytab exits 0 for a principal it doesn't know and writes nothing.
            return Err(io::Error::other(format!(
                "`{}` wrote no keytab: is {principal} an account or SPN of the domain?",
                describe(&cmd)
            )));
        }
        fs::set_permissions(path, fs::Permissions::from_mode(0o600))
    }

    /// `KRB5_CONFIG` (this DC's krb5.conf) and `KRB5CCNAME=FILE:<ccache>`, for any child process
    /// that should use Kerberos as the principal whose tickets are in `ccache` (curl, Chromium
    /// through chromedriver, ldapsearch, a `roster` binary).
    pub fn kerberos_env(&self, ccache: &Path) -> Vec<(String, String)> {
        vec![
            (
                "KRB5_CONFIG".into(),
                self.krb5_conf.to_string_lossy().into_owned(),
            ),
            ("KRB5CCNAME".into(), format!("FILE:{}", ccache.display())),
        ]
    }

    /// `program` with [`SambaDc::kerberos_env`], and without the keytab variables a test process
    /// might have inherited (`KRB5_KTNAME`, `KRB5_CLIENT_KTNAME`): add them yourself.
    pub fn kerberos_command(&self, program: &str, ccache: &Path) -> Command {
        let mut cmd = Command::new(program);
        cmd.envs(self.kerberos_env(ccache))
            .env_remove("KRB5_KTNAME")
            .env_remove("KRB5_CLIENT_KTNAME");
        cmd
    }

    /// `kinit PRINCIPAL` with the password on stdin, tickets into `ccache` (a file, created).
    pub fn kinit(&self, principal: &str, password: &str, ccache: &Path) -> io::Result<()> {
        let mut cmd = self.kerberos_command("kinit", ccache);
        cmd.arg(principal);
        run_with_input(&mut cmd, &format!("{password}\n")).map(drop)
    }

    /// `kinit -k -t KEYTAB PRINCIPAL`, tickets into `ccache`. `principal` must be an account
    /// (`sam@ROSTER.TEST`): Samba refuses SPNs as clients (see the module documentation).
    pub fn kinit_keytab(&self, principal: &str, keytab: &Path, ccache: &Path) -> io::Result<()> {
        let mut cmd = self.kerberos_command("kinit", ccache);
        cmd.arg("-k").arg("-t").arg(keytab).arg(principal);
        run(&mut cmd).map(drop)
    }

    /// `kvno PRINCIPAL` with the tickets in `ccache`: gets a service ticket and returns its kvno.
    /// With `keytab`, `kvno -k` also decrypts the ticket with it, so this fails unless the keytab
    /// holds that kvno and enctype: an end-to-end check of an HTTP keytab without a browser.
    pub fn kvno(&self, ccache: &Path, principal: &str, keytab: Option<&Path>) -> io::Result<u32> {
        let mut cmd = self.kerberos_command("kvno", ccache);
        if let Some(keytab) = keytab {
            cmd.arg("-k").arg(keytab);
        }
        cmd.arg(principal);
        let out = run(&mut cmd)?;
        // "HTTP/web1.localhost@ROSTER.TEST: kvno = 2, keytab entry valid"
        let text = String::from_utf8_lossy(&out.stdout);
        text.split("kvno = ")
            .nth(1)
            .and_then(|rest| {
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()
                    .and_then(|n| n.parse().ok())
            })
            .ok_or_else(|| io::Error::other(format!("`{}` printed {text:?}", describe(&cmd))))
    }

    /// `klist -k -e KEYTAB`: the keytab's entries, one line each (`2 HTTP/x@ROSTER.TEST
    /// (aes256-cts-hmac-sha1-96)`), headers left out.
    pub fn keytab_entries(&self, keytab: &Path) -> io::Result<Vec<String>> {
        let mut cmd = Command::new("klist");
        cmd.arg("-k")
            .arg("-e")
            .arg(keytab)
            .env("KRB5_CONFIG", &self.krb5_conf);
        let out = run(&mut cmd)?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
            .map(str::to_owned)
            .collect())
    }

    /// Writes a copy of this DC's krb5.conf to `path` with extra `[libdefaults]` lines, for
    /// clients that need other settings: e.g. `kdc_timesync = 0`, without which MIT corrects a
    /// skewed clock from the KDC's first answer, so `faketime -f +1h kinit` still succeeds.
    pub fn write_krb5_conf(&self, path: &Path, extra_libdefaults: &[&str]) -> io::Result<()> {
        let base = fs::read_to_string(&self.krb5_conf)?;
        let extra: String = extra_libdefaults
            .iter()
            .map(|l| format!("\t{l}\n"))
            .collect();
        let text = base.replacen("[libdefaults]\n", &format!("[libdefaults]\n{extra}"), 1);
        fs::write(path, text)
    }

    /// The DN of the DC's computer account, for [`SambaDc::add_spns`].
    pub fn dc_account_dn(&self) -> String {
        format!(
            "CN={},OU=Domain Controllers,{BASE_DN}",
            HOST_NAME.to_ascii_uppercase()
        )
    }
}

/// Runs `cmd` with `input` on its stdin (a password for `kinit`); its output, or an error with
/// its stderr if it fails.
pub fn run_with_input(cmd: &mut Command, input: &str) -> io::Result<Output> {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("cannot run `{}`: {e}", describe(cmd))))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if output.status.success() {
        Ok(output)
    } else {
        Err(command_failed(cmd, &output))
    }
}
