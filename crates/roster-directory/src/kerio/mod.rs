//! Kerio Connect (issue 23): the users of chosen domains and groups read through the Administration API
//! (JSON-RPC 2.0 at `/admin/api/jsonrpc/`, protocols.md part 2), passwords checked by an IMAP login
//! (`crate::imap`). So far the API client (`api.rs`) and the read; the `Connector` (its
//! `DirectoryReader`, `PasswordChecker` and picker) comes next.
//!
//! A read: `Session.login` (the application object, the cookie and token kept), `Domains.get`, the
//! selected groups' ids (`Groups.get` in the group's domain), then per domain to read `Users.get` in pages
//! of [`PAGE`] (`start`/`limit`, until `totalItems`), `Session.logout` at the end, also after a failure.
//! `-32001` in the middle logs on again once and restarts the read; a second fails the run (DI022).
//!
//! Choices where protocols.md marks [I] or [?] or the issue is silent:
//! * **Identity.** The user's `id` (KId), permanent [V]; the entry's "DN" is `loginName@domain`.
//! * **Addresses.** `loginName@domain` first, then `emailAddresses`: an entry without `@` gets
//!   `@domain` (protocols.md can't say whether they are local parts [?]); repeats left out (compared
//!   without regard to case).
//! * **Scope.** A user of a selected domain, or a member of a selected group (by the group's id in the
//!   user's `userGroups`); with neither selected, every user of every domain. A selected domain or group
//!   the server doesn't have fails the read (DI001 naming it): a missing domain must not look like "all
//!   its users left". Groups are `name@domain`, names compared without regard to case [I].
//! * **Disabled** (`isEnabled` false) users in scope are left out and counted.
//! * Every query sends all SearchQuery keys ([I]: "send every key explicitly").

// The connector that uses the client comes next; until then only its tests do.
#![cfg_attr(not(test), allow(dead_code))]

mod api;

use std::collections::BTreeSet;

use roster_core::directory::{DirectoryEntry, Secret, UsernameFormat};
use serde_json::{Value, json};

use self::api::{Api, Session};
use crate::connector::DirectoryRead;
use crate::error::DirectoryError;

/// Users per page of `Users.get`.
const PAGE: u64 = 500;
const READING: &str = "reading the users";

/// Why a read with one session stopped.
#[derive(Debug)]
enum Stopped {
    /// `-32001`: log on again.
    Expired,
    Failed(DirectoryError),
}

impl From<DirectoryError> for Stopped {
    fn from(e: DirectoryError) -> Self {
        Stopped::Failed(e)
    }
}

/// What the read needs from the settings.
#[derive(Clone)]
struct Kerio {
    api: Api,
    username: String,
    password: Secret,
    /// Selected domains and `name@domain` groups, lowercased.
    domains: Vec<String>,
    groups: Vec<String>,
    username_format: UsernameFormat,
}

impl std::fmt::Debug for Kerio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kerio")
            .field("target", &self.api.target)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

fn query(fields: &[&str], order_by: &str, start: u64, limit: i64) -> Value {
    json!({"fields": fields, "conditions": [], "combining": "And",
           "orderBy": [{"columnName": order_by, "direction": "Asc", "caseSensitive": false}],
           "start": start, "limit": limit})
}

fn text<'a>(item: &'a Value, key: &str) -> &'a str {
    item.get(key).and_then(Value::as_str).unwrap_or_default()
}

impl Kerio {
    fn malformed(&self, method: &str, what: &str) -> Stopped {
        Stopped::Failed(DirectoryError::Protocol {
            message: format!("{} answered `{method}` with {what}", self.api.target),
        })
    }

    /// A call in the session: its result; `Expired` on `-32001`, other errors fail.
    async fn get(&self, session: &Session, method: &str, params: Value) -> Result<Value, Stopped> {
        match self.api.call_ok(session, method, params, READING).await {
            Ok(result) => Ok(result),
            Err(DirectoryError::KerioRpc { code: -32001, .. }) => Err(Stopped::Expired),
            Err(e) => Err(Stopped::Failed(e)),
        }
    }

    /// Every item of a listing, page by page until `totalItems`.
    async fn list(
        &self,
        session: &Session,
        method: &str,
        params: impl Fn(Value) -> Value,
        fields: &[&str],
        order_by: &str,
    ) -> Result<Vec<Value>, Stopped> {
        let mut items = Vec::new();
        loop {
            let start = items.len() as u64;
            let page = self
                .get(
                    session,
                    method,
                    params(query(fields, order_by, start, PAGE as i64)),
                )
                .await?;
            let total = page
                .get("totalItems")
                .and_then(Value::as_u64)
                .ok_or_else(|| self.malformed(method, "no totalItems"))?;
            let list = page
                .get("list")
                .and_then(Value::as_array)
                .ok_or_else(|| self.malformed(method, "no list"))?;
            if list.is_empty() && start < total {
                return Err(self.malformed(method, "an empty page before totalItems"));
            }
            items.extend(list.iter().cloned());
            if items.len() as u64 >= total {
                return Ok(items);
            }
        }
    }

    /// Runs `work` in an administrator session, logging out whatever happened; one expiry logs on
    /// again and starts `work` over, a second fails.
    async fn in_session<T, F, Fut>(&self, work: F) -> Result<T, DirectoryError>
    where
        F: Fn(Session) -> Fut,
        Fut: std::future::Future<Output = Result<T, Stopped>>,
    {
        let mut expired = 0;
        loop {
            let session = self
                .api
                .login(&self.username, self.password.expose())
                .await?;
            let outcome = work(session.clone()).await;
            self.api.logout(&session).await;
            match outcome {
                Ok(value) => return Ok(value),
                Err(Stopped::Failed(e)) => return Err(e),
                Err(Stopped::Expired) if expired == 0 => {
                    expired += 1;
                    tracing::info!(target = %self.api.target, "the Kerio session expired; starting again with a new one");
                }
                Err(Stopped::Expired) => {
                    return Err(DirectoryError::SessionExpired {
                        target: self.api.target.clone(),
                    });
                }
            }
        }
    }

    async fn read(&self) -> Result<DirectoryRead, DirectoryError> {
        self.in_session(|session| async move { self.read_once(&session).await })
            .await
    }

    async fn read_once(&self, session: &Session) -> Result<DirectoryRead, Stopped> {
        let domains = self
            .list(
                session,
                "Domains.get",
                |q| json!({"query": q}),
                &["id", "name"],
                "name",
            )
            .await?;
        let id_of = |name: &str| {
            domains
                .iter()
                .find(|d| text(d, "name").eq_ignore_ascii_case(name))
                .map(|d| text(d, "id").to_owned())
        };
        for d in &self.domains {
            if id_of(d).is_none() {
                return Err(Stopped::Failed(DirectoryError::settings(
                    "domains",
                    format!(
                        "{} has no domain {d:?}; check `domains` (`roster directory domains` lists them)",
                        self.api.target
                    ),
                )));
            }
        }
        // The selected groups' ids, and the domains to read.
        let mut group_ids = BTreeSet::new();
        let mut to_read: Vec<String> = if self.domains.is_empty() && self.groups.is_empty() {
            domains
                .iter()
                .map(|d| text(d, "name").to_lowercase())
                .collect()
        } else {
            self.domains.clone()
        };
        for g in &self.groups {
            let (name, domain) = g.rsplit_once('@').unwrap_or((g.as_str(), ""));
            let missing = || {
                Stopped::Failed(DirectoryError::settings(
                    "groups",
                    format!(
                        "{} has no group {g:?}; check `groups` (name@domain; `roster directory groups` lists them)",
                        self.api.target
                    ),
                ))
            };
            let domain_id = id_of(domain).ok_or_else(missing)?;
            let groups = self
                .list(
                    session,
                    "Groups.get",
                    |q| json!({"query": q, "domainId": domain_id}),
                    &["id", "name"],
                    "name",
                )
                .await?;
            let group = groups
                .iter()
                .find(|x| text(x, "name").eq_ignore_ascii_case(name))
                .ok_or_else(missing)?;
            group_ids.insert(text(group, "id").to_owned());
            if !to_read.iter().any(|d| d == domain) {
                to_read.push(domain.to_owned());
            }
        }
        let whole: BTreeSet<String> = if self.domains.is_empty() && self.groups.is_empty() {
            to_read.iter().cloned().collect()
        } else {
            self.domains.iter().cloned().collect()
        };
        let mut read = DirectoryRead::default();
        for domain in &to_read {
            let Some(domain_id) = id_of(domain) else {
                continue;
            };
            let users = self
                .list(
                    session,
                    "Users.get",
                    |q| json!({"query": q, "domainId": domain_id}),
                    &[
                        "id",
                        "loginName",
                        "fullName",
                        "isEnabled",
                        "emailAddresses",
                        "userGroups",
                    ],
                    "loginName",
                )
                .await?;
            read.pages += (users.len() as u64).div_ceil(PAGE).max(1);
            for user in &users {
                let in_group = user
                    .get("userGroups")
                    .and_then(Value::as_array)
                    .is_some_and(|gs| gs.iter().any(|g| group_ids.contains(text(g, "id"))));
                if !whole.contains(domain) && !in_group {
                    continue;
                }
                if user.get("isEnabled").and_then(Value::as_bool) == Some(false) {
                    read.disabled_skipped += 1;
                    continue;
                }
                read.entries.push(self.entry(user, domain)?);
            }
        }
        Ok(read)
    }

    fn entry(&self, user: &Value, domain: &str) -> Result<DirectoryEntry, Stopped> {
        let id = text(user, "id");
        let login = text(user, "loginName");
        if id.is_empty() || login.is_empty() {
            return Err(self.malformed("Users.get", "a user without an id or a loginName"));
        }
        let primary = format!("{login}@{domain}");
        let mut emails = vec![primary.clone()];
        for other in user
            .get("emailAddresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            let address = if other.contains('@') {
                other.to_owned()
            } else {
                format!("{other}@{domain}")
            };
            if !emails.iter().any(|e| e.eq_ignore_ascii_case(&address)) {
                emails.push(address);
            }
        }
        let name = match self.username_format {
            UsernameFormat::Email => primary.clone(),
            UsernameFormat::LocalPart => login.to_owned(),
        };
        Ok(DirectoryEntry {
            id: id.to_owned(),
            dn: primary,
            name: Some(name),
            full_name: Some(text(user, "fullName").to_owned()),
            emails: Some(emails),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roster_testkit::TestCa;
    use roster_testkit::kerio::{Domain, Group, KerioEmulator, Role, TlsFiles, User};

    fn user(login: &str) -> User {
        User {
            login_name: login.into(),
            full_name: format!("Full {login}"),
            password: "pw".into(),
            ..Default::default()
        }
    }

    fn fixture() -> roster_testkit::kerio::Fixture {
        let mut admin = user("admin");
        admin.role = Role::FullAdmin;
        let mut jdoe = user("jdoe");
        jdoe.email_addresses = vec![
            "john.doe".into(),
            "JDOE@example.com".into(),
            "jd@other.org".into(),
        ];
        jdoe.groups = vec!["Sales".into()];
        let mut off = user("off");
        off.enabled = false;
        off.groups = vec!["Sales".into()];
        let mut branch = roster_testkit::kerio::numbered_users("branch.example.com", 1201);
        branch.groups = vec![Group {
            name: "Staff".into(),
            ..Default::default()
        }];
        branch.users[0].groups = vec!["Staff".into()];
        roster_testkit::kerio::Fixture {
            version: "10.0.8.9228".into(),
            domains: vec![
                Domain {
                    name: "example.com".into(),
                    primary: true,
                    users: vec![admin, jdoe, off, user("asmith")],
                    groups: vec![Group {
                        name: "Sales".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                branch,
            ],
        }
    }

    async fn start(ca: &TestCa) -> KerioEmulator {
        let cert = ca.issue_server_cert("localhost").unwrap();
        KerioEmulator::start(
            fixture(),
            "127.0.0.1:0",
            Some(TlsFiles {
                cert: &cert.cert_path,
                key: &cert.key_path,
            }),
        )
        .await
        .unwrap()
    }

    fn kerio(ca: &TestCa, emulator: &KerioEmulator, domains: &[&str], groups: &[&str]) -> Kerio {
        let tls = crate::tls::client_config(Some(ca.ca_cert_path()), false).unwrap();
        let origin = format!("https://{}", emulator.addr());
        Kerio {
            api: Api::new(emulator.url(), &origin, Some((*tls).clone())).unwrap(),
            username: "admin".into(),
            password: Secret::new("pw"),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            username_format: UsernameFormat::Email,
        }
    }

    fn names(read: &DirectoryRead) -> Vec<String> {
        read.entries.iter().filter_map(|e| e.name.clone()).collect()
    }

    #[tokio::test]
    async fn reads_all_one_domain_groups_and_pages() {
        let ca = TestCa::generate().unwrap();
        let emulator = start(&ca).await;

        let all = kerio(&ca, &emulator, &[], &[]).read().await.unwrap();
        assert_eq!(
            all.entries.len(),
            3 + 1201,
            "admin, jdoe, asmith and the branch"
        );
        assert_eq!(all.disabled_skipped, 1);
        assert_eq!(all.pages, 1 + 3, "1201 users are three pages of 500");
        let pages: Vec<_> = emulator
            .controls()
            .requests()
            .into_iter()
            .filter(|r| r.method == "Users.get")
            .map(|r| (r.start, r.limit))
            .collect();
        assert!(pages.contains(&(Some(1000), Some(500))), "{pages:?}");
        let jdoe = all
            .entries
            .iter()
            .find(|e| e.dn == "jdoe@example.com")
            .unwrap();
        assert_eq!(
            jdoe.emails.as_deref().unwrap(),
            ["jdoe@example.com", "john.doe@example.com", "jd@other.org"]
        );
        assert!(jdoe.id.starts_with("keriodb://user/"), "{}", jdoe.id);
        assert_eq!(jdoe.full_name.as_deref(), Some("Full jdoe"));
        assert_eq!(emulator.controls().open_sessions(), 0, "logged out");

        let one = kerio(&ca, &emulator, &["example.com"], &[])
            .read()
            .await
            .unwrap();
        assert_eq!(
            names(&one),
            [
                "admin@example.com",
                "asmith@example.com",
                "jdoe@example.com"
            ]
        );

        let group = kerio(&ca, &emulator, &[], &["sales@example.com"])
            .read()
            .await
            .unwrap();
        assert_eq!(names(&group), ["jdoe@example.com"]);
        assert_eq!(group.disabled_skipped, 1);

        let both = kerio(
            &ca,
            &emulator,
            &["example.com"],
            &["staff@branch.example.com"],
        )
        .read()
        .await
        .unwrap();
        assert_eq!(both.entries.len(), 4);
        assert!(names(&both).contains(&"u1@branch.example.com".to_owned()));

        for (domains, groups, key) in [
            (vec!["nowhere.com"], vec![], "domains"),
            (vec![], vec!["nobody@example.com"], "groups"),
            (vec![], vec!["sales@nowhere.com"], "groups"),
        ] {
            let err = kerio(&ca, &emulator, &domains, &groups)
                .read()
                .await
                .unwrap_err();
            assert!(
                matches!(&err, DirectoryError::InvalidSettings { key: k, .. } if *k == key),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn an_expired_session_restarts_the_read_once() {
        let ca = TestCa::generate().unwrap();
        let emulator = start(&ca).await;
        let controls = emulator.controls();
        controls.expire_sessions(2, 1);
        let read = kerio(&ca, &emulator, &[], &[]).read().await.unwrap();
        assert_eq!(read.entries.len(), 1204);
        let logins = |c: &roster_testkit::kerio::Controls| {
            c.requests()
                .iter()
                .filter(|r| r.method == "Session.login")
                .count()
        };
        assert_eq!(logins(controls), 2);

        controls.expire_sessions(2, 2);
        let err = kerio(&ca, &emulator, &[], &[]).read().await.unwrap_err();
        assert_eq!(err.code(), "DI022-session-expired", "{err}");
        assert_eq!(logins(controls), 4);
        assert_eq!(controls.open_sessions(), 0);
    }
}
