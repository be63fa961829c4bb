//! An emulator of Kerio Connect's Administration API (JSON-RPC 2.0 at `POST /admin/api/jsonrpc/`),
//! faithful to `shared/reference/protocols.md` part 2 and its checklist (§2.7), for tests, benchmarks
//! and newcomers (`roster-emulator kerio --data FIXTURE.toml --listen ADDR [--tls CERT KEY]`).
//!
//! What it does, as the real server does (the tags are protocols.md's):
//! * every API answer, errors included, is HTTP 200 with `{"jsonrpc":"2.0","id":<same>,"result"|"error"}`;
//!   an error is `{code, message, data: {messageParameters: {positionalParameters, plurality}}}` [V];
//! * `Session.login` needs `userName`, `password` and an `application` **object** with `name`, `vendor`
//!   and `version` (a string, or a missing member, gets `-32602 Invalid params`) [V]; it answers
//!   `{"token"}` and sets `SESSION_CONNECT_WEBADMIN=<sid>; Path=/` [V]; `userName` is `jdoe` for the
//!   primary domain or `jdoe@domain` [V];
//! * every other method needs that cookie **and** the session's token, in `X-Token` or as `token` at the
//!   top of the request [V]; otherwise `-32001 Session expired.` [V]; `Session.logout` ends the session,
//!   so a second logout gets `-32001` [V]; sessions can be made to expire after N requests
//!   ([`Controls::expire_sessions`]), as the server's timeouts do;
//! * `Domains.get`, `Users.get` and `Groups.get` (the last two need `domainId`) honour the SearchQuery:
//!   `fields` (`[]` or absent: all), `conditions` (`Eq`, `NotEq`, `Like` with `%`, the ordering
//!   comparators; `QUICKSEARCH` on `Users.get` matches `loginName` or `fullName`), `combining`,
//!   `orderBy`, `start`/`limit` (`-1`: all) and `totalItems` (the count before paging) [V];
//! * a user's `emailAddresses` are the other addresses, never `loginName@domain`, and are returned as
//!   the fixture writes them (local parts or whole addresses: protocols.md can't say which [?]);
//!   `userGroups` lists the user's groups as `{id, name, description, itemSource}` [V]; ids are KIds
//!   like `keriodb://user/<uuid>` [I], kept for the life of the entry (a rename keeps the id).
//!
//! Choices where protocols.md is silent ([?]/[I]), all on the strict side:
//! * `Session.login` with a wrong password, an unknown user or a disabled user: `1000` "Invalid user name
//!   or password." (protocols.md found no code [?]);
//! * a user whose role is `UserRole` may log on but gets `1004` "Insufficient rights…" from every
//!   directory method [I]; an `Auditor` gets it from `Domains.get` (seen on one server [V]) and may read
//!   users and groups [I]; an `AccountAdmin`'s domain restriction is not modelled;
//! * the request must be `POST` to exactly `/admin/api/jsonrpc/` (others: an HTML 404/405 page), with a
//!   JSON content type (`application/json` or `application/json-rpc`, any parameters; others `-32600`);
//!   it must be one object (no batches) with `"jsonrpc":"2.0"`, an `id` and a string `method` (else
//!   `-32600`); `params`, when present, must be an object; method names are case-sensitive (`-32601`);
//! * the get methods need `query` (an object; `start` ≥ 0, `limit` ≥ -1, `combining` `And`/`Or`, known
//!   comparators, and condition fields that exist, else `-32602`); an unknown `domainId` gets `1002`
//!   "Domain does not exist.".
//!
//! Faults for tests ([`Controls::inject`]): an HTML error page with any status (the method never ran),
//! a reply cut in the middle, an RPC error of any code and message in place of the result.

mod server;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

pub use crate::http::TlsFiles;

/// The data the emulated server holds (the `--data` TOML file).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// `Server.getVersion`'s `version`; `10.0.8.9228` when left out.
    #[serde(default = "default_version")]
    pub version: String,
    #[serde(default)]
    pub domains: Vec<Domain>,
}

fn default_version() -> String {
    "10.0.8.9228".into()
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Domain {
    /// The KId; given one when empty.
    #[serde(default)]
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// The primary domain (user names without `@domain` log on to it). When no domain says so, the
    /// first is.
    #[serde(default)]
    pub primary: bool,
    /// `aliasList`: other names of the domain.
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub users: Vec<User>,
    #[serde(default)]
    pub groups: Vec<Group>,
}

/// `UserRoleType`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum Role {
    #[default]
    UserRole,
    Auditor,
    AccountAdmin,
    FullAdmin,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::UserRole => "UserRole",
            Role::Auditor => "Auditor",
            Role::AccountAdmin => "AccountAdmin",
            Role::FullAdmin => "FullAdmin",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The KId; given one when empty.
    #[serde(default)]
    pub id: String,
    /// The user name without the domain; the primary address is `login_name@domain`.
    pub login_name: String,
    #[serde(default)]
    pub full_name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub password: String,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub role: Role,
    /// The other addresses, as the server returns them (local parts or whole addresses).
    #[serde(default)]
    pub email_addresses: Vec<String>,
    /// Names of groups of the same domain.
    #[serde(default)]
    pub groups: Vec<String>,
    /// `authType`: `UInternalAuth` when left out.
    #[serde(default = "internal_auth")]
    pub auth_type: String,
}

fn yes() -> bool {
    true
}

fn internal_auth() -> String {
    "UInternalAuth".into()
}

impl Default for User {
    fn default() -> User {
        User {
            id: String::new(),
            login_name: String::new(),
            full_name: String::new(),
            description: String::new(),
            password: String::new(),
            enabled: true,
            role: Role::UserRole,
            email_addresses: Vec::new(),
            groups: Vec::new(),
            auth_type: internal_auth(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    /// The KId; given one when empty.
    #[serde(default)]
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub email_addresses: Vec<String>,
}

impl Fixture {
    /// Reads a fixture file.
    pub fn load(path: &Path) -> io::Result<Fixture> {
        let text = std::fs::read_to_string(path)?;
        let fixture: Fixture = toml::from_str(&text).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        fixture.check().map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })?;
        Ok(fixture)
    }

    /// Every user's groups exist in its domain.
    pub fn check(&self) -> Result<(), String> {
        for d in &self.domains {
            for u in &d.users {
                for g in &u.groups {
                    if !d.groups.iter().any(|x| x.name.eq_ignore_ascii_case(g)) {
                        return Err(format!(
                            "user {}@{}: no group {g:?} in its domain",
                            u.login_name, d.name
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The primary domain: the one marked, else the first.
    pub fn primary_domain(&self) -> Option<&Domain> {
        self.domains
            .iter()
            .find(|d| d.primary)
            .or_else(|| self.domains.first())
    }

    /// The enabled users' IMAP login names and passwords, as Kerio Connect takes them (`jdoe` in the
    /// primary domain, `jdoe@domain` in the others: protocols.md §2.6), for a Dovecot that stands in
    /// for Kerio's IMAP service.
    pub fn imap_users(&self) -> Vec<(String, String)> {
        let primary = self.primary_domain().map(|d| d.name.clone());
        self.domains
            .iter()
            .flat_map(|d| {
                let is_primary = Some(&d.name) == primary.as_ref();
                d.users.iter().filter(|u| u.enabled).map(move |u| {
                    let login = if is_primary {
                        u.login_name.clone()
                    } else {
                        format!("{}@{}", u.login_name, d.name)
                    };
                    (login, u.password.clone())
                })
            })
            .collect()
    }

    /// The domain by name or alias (case-insensitive).
    pub fn domain(&self, name: &str) -> Option<&Domain> {
        self.domains.iter().find(|d| {
            d.name.eq_ignore_ascii_case(name)
                || d.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
        })
    }

    pub fn domain_mut(&mut self, name: &str) -> Option<&mut Domain> {
        self.domains
            .iter_mut()
            .find(|d| d.name.eq_ignore_ascii_case(name))
    }

    /// The user for a `Session.login` `userName`: `jdoe` in the primary domain, or `jdoe@domain`.
    pub fn user_for_login(&self, user_name: &str) -> Option<(&Domain, &User)> {
        let (local, domain) = match user_name.rsplit_once('@') {
            Some((local, domain)) => (local, self.domain(domain)?),
            None => (user_name, self.primary_domain()?),
        };
        let user = domain
            .users
            .iter()
            .find(|u| u.login_name.eq_ignore_ascii_case(local))?;
        Some((domain, user))
    }

    /// Gives every domain, user and group without a KId one (`keriodb://<kind>/<uuid>`).
    fn assign_ids(&mut self, next: &mut u64) {
        let mut kid = |kind: &str, id: &mut String| {
            if id.is_empty() {
                *next += 1;
                *id = format!("keriodb://{kind}/00000000-0000-4000-8000-{:012x}", *next);
            }
        };
        for d in &mut self.domains {
            kid("domain", &mut d.id);
            for u in &mut d.users {
                kid("user", &mut u.id);
            }
            for g in &mut d.groups {
                kid("group", &mut g.id);
            }
        }
    }
}

/// A fault the emulator answers with instead of the real reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultKind {
    /// An HTML error page with this HTTP status (a proxy's 502, the web server's 500…); the method
    /// never runs.
    HtmlErrorPage(u16),
    /// The method runs, and its reply is cut off in the middle.
    TruncatedJson,
    /// An RPC error with this code and message instead of the method's answer (the method never runs).
    RpcError(i64, String),
}

/// When a fault applies: to the requests of one method (any, when `None`), optionally only for one
/// `domainId`, after `skip` matching requests, `times` times (forever when `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub method: Option<String>,
    pub domain_id: Option<String>,
    pub skip: u32,
    pub times: Option<u32>,
    pub kind: FaultKind,
}

impl Fault {
    /// `kind` for the next request of `method`, once.
    pub fn once(method: &str, kind: FaultKind) -> Fault {
        Fault {
            method: Some(method.to_owned()),
            domain_id: None,
            skip: 0,
            times: Some(1),
            kind,
        }
    }
}

/// One request as the emulator saw it (never the password).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged {
    /// The method (empty when the request had none).
    pub method: String,
    /// Whether the request carried a live session's cookie and token.
    pub in_session: bool,
    /// `userName` of a `Session.login`, `domainId` of the others.
    pub subject: Option<String>,
    /// The query's `start` and `limit`, when given.
    pub start: Option<i64>,
    pub limit: Option<i64>,
}

#[derive(Debug)]
struct Session {
    token: String,
    role: Role,
    /// Requests this session may still make before it expires (`None`: no limit).
    left: Option<u32>,
}

#[derive(Debug, Default)]
struct State {
    fixture: Fixture,
    next_id: u64,
    /// By session id (the cookie's value).
    sessions: HashMap<String, Session>,
    issued: u64,
    /// For each of the next sessions issued, after how many requests it expires.
    expiring: VecDeque<u32>,
    faults: Vec<Fault>,
    log: Vec<Logged>,
    edits: Vec<PendingEdit>,
}

/// A change to the data made right after a number of answers to one method (a change on the server
/// between two pages of a read, at a known point).
struct PendingEdit {
    method: String,
    remaining: u32,
    edit: Box<dyn FnOnce(&mut Fixture) + Send>,
}

impl std::fmt::Debug for PendingEdit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingEdit")
            .field("method", &self.method)
            .field("remaining", &self.remaining)
            .finish_non_exhaustive()
    }
}

impl State {
    /// Counts an answer to `method`, and makes the edits that were waiting for it.
    fn answered(&mut self, method: &str) {
        for pending in self.edits.iter_mut().filter(|p| p.method == method) {
            pending.remaining = pending.remaining.saturating_sub(1);
        }
        let (due, waiting): (Vec<PendingEdit>, Vec<PendingEdit>) = std::mem::take(&mut self.edits)
            .into_iter()
            .partition(|p| p.remaining == 0);
        self.edits = waiting;
        if due.is_empty() {
            return;
        }
        for pending in due {
            (pending.edit)(&mut self.fixture);
        }
        let State {
            fixture, next_id, ..
        } = self;
        fixture.assign_ids(next_id);
    }
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

    /// The next `sessions` sessions issued by `Session.login` expire after `after_requests` requests
    /// each (the login not counted).
    pub fn expire_sessions(&self, after_requests: u32, sessions: u32) {
        let mut state = self.lock();
        for _ in 0..sessions {
            state.expiring.push_back(after_requests);
        }
    }

    pub fn inject(&self, fault: Fault) {
        self.lock().faults.push(fault);
    }

    /// Changes the data; entries added without a KId get one.
    pub fn edit<T>(&self, f: impl FnOnce(&mut Fixture) -> T) -> T {
        let mut state = self.lock();
        let out = f(&mut state.fixture);
        let State {
            fixture, next_id, ..
        } = &mut *state;
        fixture.assign_ids(next_id);
        out
    }

    /// Changes the data right after the next `answers` answers to `method` (before the answer after
    /// them is computed): a change on the server between two pages of a read, at a known point.
    pub fn edit_after(
        &self,
        method: &str,
        answers: u32,
        edit: impl FnOnce(&mut Fixture) + Send + 'static,
    ) {
        self.lock().edits.push(PendingEdit {
            method: method.to_owned(),
            remaining: answers.max(1),
            edit: Box::new(edit),
        });
    }

    /// The data as served (with the KIds given).
    pub fn fixture(&self) -> Fixture {
        self.lock().fixture.clone()
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
pub struct KerioEmulator {
    addr: SocketAddr,
    tls: bool,
    controls: Controls,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for KerioEmulator {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

impl KerioEmulator {
    /// Starts on `listen` (e.g. `127.0.0.1:0`) in the current tokio runtime.
    pub async fn start(
        mut fixture: Fixture,
        listen: &str,
        tls: Option<TlsFiles<'_>>,
    ) -> io::Result<KerioEmulator> {
        fixture
            .check()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let mut next_id = 0;
        fixture.assign_ids(&mut next_id);
        let state = Arc::new(Mutex::new(State {
            fixture,
            next_id,
            ..Default::default()
        }));
        let (addr, task) = server::spawn(state.clone(), listen, tls.as_ref()).await?;
        Ok(KerioEmulator {
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

    /// The API's URL.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}/admin/api/jsonrpc/", self.addr)
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

/// `count` users `u1..` (password `pw`) in a domain of that name, for the fixtures TOML can't express
/// compactly.
pub fn numbered_users(domain: &str, count: usize) -> Domain {
    Domain {
        name: domain.to_owned(),
        users: (1..=count)
            .map(|i| User {
                login_name: format!("u{i}"),
                full_name: format!("User {i}"),
                password: "pw".into(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
