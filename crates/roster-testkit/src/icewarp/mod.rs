//! An emulator of IceWarp Server's XML API (`POST /icewarpapi/`, `admin:iq:rpc`), faithful to
//! `shared/reference/protocols.md` part 1 and its checklist (§1.9), for tests, benchmarks and newcomers
//! (`roster-emulator icewarp --data FIXTURE.toml --listen ADDR [--tls CERT KEY]`).
//!
//! What it does, as the real server does (the tags are protocols.md's):
//! * envelopes: `<iq [sid]><query xmlns="admin:iq:rpc"><commandname/><commandparams/></query></iq>`; the
//!   namespace must match exactly (`iq_query_xmlns_invalid`), the root must be `iq`
//!   (`iq_root_tag_invalid`), command names are compared in lowercase (`invoker_commandname_invalid`
//!   for others); every API answer, errors included, is HTTP 200 `application/xml` [V];
//! * `authenticate` / `getauthtoken` need no sid; the sid comes in the response's `iq@sid` [V]; a wrong
//!   password, an unknown account and an unknown domain all get `auth_login_invalid` after the tarpit
//!   delay (settable; 0 in most tests) [V]; a disabled account with the right password gets
//!   `account_disabled_2` at once [V];
//! * every other command needs a live sid (`session_invalid` otherwise) [V]; sessions can be made to
//!   expire after N requests ([`Controls::expire_sessions`]), as the server's idle/absolute timeouts do;
//! * the listing commands page with `offset`/`count`/`overallcount`, `namemask` is a case-insensitive
//!   glob on the local part and the name, `typemask` selects one `U_Type` [V];
//! * `getaccountproperties` echoes each `propname` in the case it was asked [V]; an unknown property
//!   gets `TPropertyNoValue` [?];
//! * group members are stored as written (the server doesn't check them), `[domain]` included [V];
//!   `U_GROUPS` is computed from the member lists [V].
//!
//! Choices where protocols.md is silent ([?]/[I]), all on the strict side:
//! * a session that isn't an administrator's gets `account_permission_denied` for admin commands [?]
//!   (the server rights-checks them; the uid is ours);
//! * `getaccountsinfolist` for a domain that doesn't exist gets `domain_invalid` [?];
//! * `getauthtoken`/`authenticate` accept the primary address or an alias address, never a bare user
//!   name (the stricter login policy) [I];
//! * the tarpit is a fixed delay, not one that grows with each failure.
//!
//! Faults for tests ([`Controls::inject`]): an HTML error page with any status, an HTML login page with
//! status 200, a truncated XML reply, an unknown error uid.

mod server;
pub mod xml;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use crate::http::TlsFiles;

/// The data the emulated server holds (the `--data` TOML file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// `C_Version` (the API version the connector checks); `14.3.0.3` when left out.
    #[serde(default = "default_version")]
    pub version: String,
    #[serde(default)]
    pub domains: Vec<Domain>,
}

fn default_version() -> String {
    "14.3.0.3".into()
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `D_Type`: 0 standard, 1 ETRN/ATRN queue, 2 domain alias, 3 backup, 4 distributed.
    #[serde(default, rename = "type")]
    pub domain_type: u8,
    #[serde(default)]
    pub accounts: Vec<Account>,
}

/// `U_Type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AccountType {
    #[default]
    User,
    List,
    Executable,
    Notification,
    Route,
    Catalog,
    Listserver,
    Group,
    Resource,
}

impl AccountType {
    pub fn code(self) -> u8 {
        match self {
            AccountType::User => 0,
            AccountType::List => 1,
            AccountType::Executable => 2,
            AccountType::Notification => 3,
            AccountType::Route => 4,
            AccountType::Catalog => 5,
            AccountType::Listserver => 6,
            AccountType::Group => 7,
            AccountType::Resource => 8,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// `U_Mailbox`, the user name; also the primary address's local part unless `alias` is given.
    pub mailbox: String,
    /// The primary address's local part (`U_Alias`), when it differs from the mailbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// `U_Name`.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub password: String,
    #[serde(default, rename = "type")]
    pub account_type: AccountType,
    /// Further addresses, as local parts (`U_EmailAlias`, `A_AliasList`).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `U_AccountDisabled`: 0 enabled, 1 login disabled, 2 login and receive, 3 tarpitting.
    #[serde(default)]
    pub disabled: u8,
    /// A server administrator (may call the admin commands).
    #[serde(default)]
    pub admin: bool,
    /// Members of a group or list, as the server stores them: addresses, `[domain]`, `addr;0`.
    #[serde(default)]
    pub members: Vec<String>,
}

impl Account {
    pub fn local_part(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.mailbox)
    }

    pub fn primary(&self, domain: &str) -> String {
        format!("{}@{domain}", self.local_part())
    }

    /// The primary address and every alias address, primary first.
    pub fn addresses(&self, domain: &str) -> Vec<String> {
        let mut out = vec![self.primary(domain)];
        out.extend(self.aliases.iter().map(|a| format!("{a}@{domain}")));
        out
    }
}

impl Fixture {
    /// Reads a fixture file.
    pub fn load(path: &Path) -> io::Result<Fixture> {
        let text = std::fs::read_to_string(path)?;
        toml::from_str(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })
    }

    /// The domain by name (case-insensitive).
    pub fn domain(&self, name: &str) -> Option<&Domain> {
        self.domains
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(name))
    }

    pub fn domain_mut(&mut self, name: &str) -> Option<&mut Domain> {
        self.domains
            .iter_mut()
            .find(|d| d.name.eq_ignore_ascii_case(name))
    }

    /// The account with this address (primary or alias), and its domain.
    pub fn find(&self, address: &str) -> Option<(&Domain, &Account)> {
        let (local, domain) = address.trim().rsplit_once('@')?;
        let d = self.domain(domain)?;
        let a = d.accounts.iter().find(|a| {
            a.local_part().eq_ignore_ascii_case(local)
                || a.aliases.iter().any(|x| x.eq_ignore_ascii_case(local))
        })?;
        Some((d, a))
    }

    pub fn find_mut(&mut self, address: &str) -> Option<&mut Account> {
        let (local, domain) = address.trim().rsplit_once('@')?;
        let d = self.domain_mut(domain)?;
        d.accounts.iter_mut().find(|a| {
            a.local_part().eq_ignore_ascii_case(local)
                || a.aliases.iter().any(|x| x.eq_ignore_ascii_case(local))
        })
    }
}

/// A fault the emulator answers with instead of the real reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// An HTML error page with this HTTP status (a proxy's 502, the web server's 500…).
    HtmlErrorPage(u16),
    /// HTTP 200 with the web client's HTML login page (a wrong path, or a proxy in front).
    HtmlLoginPage,
    /// A correct reply cut off in the middle.
    TruncatedXml,
    /// A well-formed error reply with an error uid no client knows.
    ErrorUid(String),
}

/// When a fault applies: to the requests of one command (any, when `None`), optionally only for one
/// `domainstr`, after `skip` matching requests, `times` times (forever when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub command: Option<String>,
    pub domain: Option<String>,
    pub skip: u32,
    pub times: Option<u32>,
    pub kind: FaultKind,
}

impl Fault {
    /// `kind` for the next request of `command`, once.
    pub fn once(command: &str, kind: FaultKind) -> Fault {
        Fault {
            command: Some(command.to_ascii_lowercase()),
            domain: None,
            skip: 0,
            times: Some(1),
            kind,
        }
    }
}

/// One request as the emulator saw it (never the password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// The command name in lowercase (empty when the request was not an API call).
    pub command: String,
    pub sid: Option<String>,
    /// The `email` of an authenticate/getauthtoken, the `domainstr` or `accountemail` or `who` of others.
    pub subject: Option<String>,
}

#[derive(Debug)]
struct Session {
    email: String,
    admin: bool,
    /// Requests this session may still make before it expires (`None`: no limit).
    left: Option<u32>,
}

#[derive(Debug, Default)]
struct State {
    fixture: Fixture,
    sessions: HashMap<String, Session>,
    issued: u64,
    /// For each of the next sessions issued, after how many requests it expires.
    expiring: VecDeque<u32>,
    faults: Vec<Fault>,
    log: Vec<Logged>,
    tarpit: Duration,
    /// Leave `displayemail` and `accountstate` out of account lists, as builds from 2016 do.
    old_account_lists: bool,
}

/// Changes the emulator's behaviour and data while it runs.
#[derive(Debug, Clone)]
pub struct Controls {
    state: Arc<Mutex<State>>,
}

impl Controls {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The delay before `auth_login_invalid` (the real server's is 24-30 s).
    pub fn set_tarpit(&self, delay: Duration) {
        self.lock().tarpit = delay;
    }

    /// The `C_Version` the server reports.
    pub fn set_version(&self, version: &str) {
        self.lock().fixture.version = version.to_owned();
    }

    /// The next `sessions` sessions issued by `authenticate` expire after `after_requests` requests each.
    pub fn expire_sessions(&self, after_requests: u32, sessions: u32) {
        let mut state = self.lock();
        for _ in 0..sessions {
            state.expiring.push_back(after_requests);
        }
    }

    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Account lists without `displayemail` and `accountstate`, as older builds answer.
    pub fn set_old_account_lists(&self, old: bool) {
        self.lock().old_account_lists = old;
    }

    /// Changes the data.
    pub fn edit<T>(&self, f: impl FnOnce(&mut Fixture) -> T) -> T {
        f(&mut self.lock().fixture)
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Logged> {
        self.lock().log.clone()
    }

    /// How many sessions are open (not logged out, not expired).
    pub fn open_sessions(&self) -> usize {
        self.lock().sessions.len()
    }
}

/// A running emulator; stops when dropped.
#[derive(Debug)]
pub struct IcewarpEmulator {
    addr: SocketAddr,
    tls: bool,
    controls: Controls,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for IcewarpEmulator {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl IcewarpEmulator {
    /// Starts on `listen` (e.g. `127.0.0.1:0`) in the current tokio runtime.
    pub async fn start(
        fixture: Fixture,
        listen: &str,
        tls: Option<TlsFiles<'_>>,
    ) -> io::Result<IcewarpEmulator> {
        let state = Arc::new(Mutex::new(State {
            fixture,
            ..Default::default()
        }));
        let (addr, task) = server::spawn(state.clone(), listen, tls.as_ref()).await?;
        Ok(IcewarpEmulator {
            addr,
            tls: tls.is_some(),
            controls: Controls { state },
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The value for the settings' `server`: `127.0.0.1:PORT`, with `http://` in front without TLS.
    pub fn server_setting(&self) -> String {
        if self.tls {
            self.addr.to_string()
        } else {
            format!("http://{}", self.addr)
        }
    }

    pub fn controls(&self) -> &Controls {
        &self.controls
    }

    /// Serves until the server task ends (for the binary: until the process is stopped).
    pub async fn wait(mut self) {
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

/// Groups of the fixture by address → members, for U_GROUPS.
fn groups_of(fixture: &Fixture, address: &str, domain: &str) -> Vec<String> {
    let mut out = Vec::new();
    let address = address.to_lowercase();
    let token = format!("[{}]", domain.to_lowercase());
    for d in &fixture.domains {
        for g in &d.accounts {
            if g.account_type != AccountType::Group {
                continue;
            }
            let hit = g.members.iter().any(|m| {
                let m = m
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_lowercase();
                m == address || m == token
            });
            if hit {
                out.push(g.primary(&d.name));
            }
        }
    }
    out
}

/// Case-insensitive glob with `*` and `?`.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || Some(&c) == t.get(ti) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
}

/// The accounts the fixture's TOML can't express compactly: `count` users `u1..` in `domain`.
pub fn numbered_users(domain: &str, count: usize) -> Domain {
    Domain {
        name: domain.to_owned(),
        accounts: (1..=count)
            .map(|i| Account {
                mailbox: format!("u{i}"),
                name: format!("User {i}"),
                password: "pw".into(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*", "anything"));
        assert!(glob("a*", "Alice"));
        assert!(glob("?ob", "bob"));
        assert!(!glob("b", "bob"));
        assert!(glob("*li*", "ALICE"));
    }

    #[test]
    fn fixture_parses_from_toml() {
        let f: Fixture = toml::from_str(
            r#"
            version = "13.0"
            [[domains]]
            name = "example.com"
            [[domains.accounts]]
            mailbox = "alice"
            name = "Alice"
            password = "pw"
            aliases = ["al"]
            [[domains.accounts]]
            mailbox = "sales"
            type = "group"
            members = ["alice@example.com", "[example.com]"]
            "#,
        )
        .unwrap();
        assert_eq!(f.find("AL@example.com").unwrap().1.mailbox, "alice");
        assert_eq!(
            groups_of(&f, "alice@example.com", "example.com"),
            ["sales@example.com"]
        );
    }
}

/// The emulator is never more forgiving than the real server: requests it must refuse, over raw HTTP.
#[cfg(test)]
mod wire_tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn post(addr: SocketAddr, method: &str, path: &str, body: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = String::new();
        stream.read_to_string(&mut out).await.unwrap();
        out
    }

    fn iq(sid: Option<&str>, xmlns: &str, command: &str, params: &str) -> String {
        let sid = sid.map(|s| format!(" sid=\"{s}\"")).unwrap_or_default();
        format!(
            "<iq{sid}><query xmlns=\"{xmlns}\"><commandname>{command}</commandname><commandparams>{params}</commandparams></query></iq>"
        )
    }

    fn fixture() -> Fixture {
        Fixture {
            version: "14.3.0.3".into(),
            domains: vec![Domain {
                name: "example.com".into(),
                accounts: vec![
                    Account {
                        mailbox: "admin".into(),
                        password: "pw".into(),
                        admin: true,
                        ..Default::default()
                    },
                    Account {
                        mailbox: "user".into(),
                        password: "pw".into(),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
        }
    }

    fn sid_of(response: &str) -> String {
        let at = response.find("sid=\"").unwrap() + 5;
        let rest = &response[at..];
        rest[..rest.find('"').unwrap()].to_owned()
    }

    #[tokio::test]
    async fn requests_the_real_server_refuses_are_refused() {
        let emulator = IcewarpEmulator::start(fixture(), "127.0.0.1:0", None)
            .await
            .unwrap();
        let a = emulator.addr();
        let rpc = "admin:iq:rpc";
        let creds = "<authtype>0</authtype><email>admin@example.com</email><password>pw</password>";
        let cases = [
            (
                iq(None, "admin:iq:RPC", "authenticate", creds),
                "iq_query_xmlns_invalid",
            ),
            (
                iq(None, "", "authenticate", creds),
                "iq_query_xmlns_invalid",
            ),
            ("<notiq/>".to_owned(), "iq_root_tag_invalid"),
            (
                "<iq><query xmlns=\"admin:iq:rpc\">".to_owned(),
                "iq_root_tag_invalid",
            ),
            (iq(None, rpc, "getdomainsinfolist", ""), "session_invalid"),
            (
                iq(Some("made-up"), rpc, "getdomainsinfolist", ""),
                "session_invalid",
            ),
            (
                iq(None, rpc, "nosuchcommand", ""),
                "invoker_commandname_invalid",
            ),
            (
                iq(
                    None,
                    rpc,
                    "authenticate",
                    "<email>admin@example.com</email><password>no</password>",
                ),
                "auth_login_invalid",
            ),
            (
                iq(
                    None,
                    rpc,
                    "getauthtoken",
                    "<email>admin</email><password>pw</password>",
                ),
                "auth_login_invalid",
            ),
        ];
        for (body, uid) in cases {
            let response = post(a, "POST", "/icewarpapi/", &body).await;
            assert!(response.starts_with("HTTP/1.1 200"), "{body}: {response}");
            assert!(
                response.contains(&format!("<error uid=\"{uid}\"/>")),
                "{body}: expected {uid}: {response}"
            );
        }
        assert!(
            post(a, "GET", "/icewarpapi/", "")
                .await
                .starts_with("HTTP/1.1 405")
        );
        assert!(
            post(a, "POST", "/other", "")
                .await
                .starts_with("HTTP/1.1 404")
        );

        // A user's session may not call admin commands; the admin's may, in any case of the name.
        let user = post(
            a,
            "POST",
            "/icewarpapi",
            &iq(
                None,
                rpc,
                "Authenticate",
                "<email>user@example.com</email><password>pw</password>",
            ),
        )
        .await;
        let sid = sid_of(&user);
        let denied = post(
            a,
            "POST",
            "/icewarpapi/",
            &iq(Some(&sid), rpc, "getdomainsinfolist", ""),
        )
        .await;
        assert!(denied.contains("account_permission_denied"), "{denied}");
        let admin = post(
            a,
            "POST",
            "/icewarpapi/Authenticate",
            &iq(None, rpc, "AUTHENTICATE", creds),
        )
        .await;
        let sid = sid_of(&admin);
        let listed = post(
            a,
            "POST",
            "/icewarpapi/",
            &iq(Some(&sid), rpc, "GetDomainsInfoList", ""),
        )
        .await;
        assert!(listed.contains("<name>example.com</name>"), "{listed}");
        assert!(
            listed.contains("<overallcount>1</overallcount>"),
            "{listed}"
        );
        let out = post(
            a,
            "POST",
            "/icewarpapi/",
            &iq(Some(&sid), rpc, "logout", ""),
        )
        .await;
        assert!(out.contains("<result>1</result>"), "{out}");
        let after = post(
            a,
            "POST",
            "/icewarpapi/",
            &iq(Some(&sid), rpc, "getdomainsinfolist", ""),
        )
        .await;
        assert!(
            after.contains("session_invalid"),
            "a logged-out sid is dead: {after}"
        );
    }
}
