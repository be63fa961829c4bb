//! Kerio Connect (issue 23): the users of chosen domains and groups read through the Administration API
//! (JSON-RPC 2.0 at `/admin/api/jsonrpc/`, protocols.md part 2), passwords checked by an IMAP login
//! (`crate::imap`), and the domains and groups listed for the settings' picker.
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
//! * **A list that changes during the read.** Pages are taken by offset, so a user deleted on the
//!   server between two pages would shift the rest by one and a user would go unseen, and look as
//!   if they had left. When a later page's `totalItems` differs from the first's, or a page repeats a
//!   user, that domain's listing starts over (up to [`LIST_ATTEMPTS`] times), then the read fails:
//!   no partial read.
//! * **Logon.** An administrator session finds the user: by the DN the last sync saw
//!   (`loginName@domain`), else by the user name (an address; or, in `local-part` format, the one
//!   selected domain, else the domains, selected or all, where that login name is a user: two is
//!   ambiguous). The user must still have the linked id (a deleted and re-created `jdoe` is another
//!   person), be enabled, and be in scope (a selected domain, or a member of a selected group: group
//!   membership is in the same answer, so it is checked at each logon). Then the IMAP login, with `loginName`
//!   for the primary domain and `loginName@domain` otherwise (protocols.md §2.6). A wrong password and an
//!   unknown user get the same answer; an IMAP server that can't be reached is the directory being
//!   unavailable. A user renamed on the server can log on again after the next sync (their DN is updated).

pub(crate) mod api;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use roster_core::directory::{
    DirectoryEntry, DirectoryKind, KerioSettings, Secret, UsernameFormat,
};
use serde_json::{Value, json};

use self::api::{Api, Session};
use crate::connector::{
    Connector, DirectoryListing, DirectoryRead, DirectoryReader, ListedDomain, ListedGroup,
    PasswordChecker, ReadProgress,
};
use crate::error::DirectoryError;
use crate::imap::ImapChecker;
use crate::logon::{LogonOutcome, LogonSubject, RejectReason};

/// Users per page of `Users.get`.
const PAGE: u64 = 500;
/// How often one domain's listing is started over when the server's list changes during it.
const LIST_ATTEMPTS: u32 = 3;
/// How long one IMAP password check may take (Kerio delays wrong passwords).
const IMAP_TIMEOUT: Duration = Duration::from_secs(60);
const READING: &str = "reading the users";
const USER_FIELDS: &[&str] = &[
    "id",
    "loginName",
    "fullName",
    "isEnabled",
    "emailAddresses",
    "userGroups",
];

pub(crate) fn connector(settings: &KerioSettings) -> Result<Connector, DirectoryError> {
    use roster_core::directory::TypeSettings;
    settings.validate()?;
    let endpoint = settings.endpoint()?;
    let password = match &settings.password {
        Some(p) if !p.is_empty() => p.clone(),
        _ => {
            return Err(DirectoryError::settings(
                "password",
                "give the Kerio Connect administrator's password",
            ));
        }
    };
    // The certificate settings serve both servers: they are normally one machine with one certificate.
    let tls = crate::tls::client_config(
        settings.ca_file.as_deref(),
        settings.ignore_certificate_errors,
    )?;
    let api_tls = if endpoint.https {
        Some((*tls).clone())
    } else {
        if settings.ignore_certificate_errors {
            tracing::warn!("ignore_certificate_errors has no effect on an http:// server");
        }
        None
    };
    let api = Api::new(
        endpoint.url(KerioSettings::API_PATH),
        &endpoint.origin(),
        api_tls,
    )?;
    let kerio = Arc::new(Kerio {
        api,
        imap: ImapChecker {
            endpoint: settings.imap_endpoint()?,
            tls,
            timeout: IMAP_TIMEOUT,
        },
        username: settings.username.trim().to_owned(),
        password,
        domains: settings.selected_domains(),
        groups: settings.selected_groups(),
        username_format: settings.username_format,
        scope_rule: settings.scope_rule(),
    });
    Ok(Connector {
        kind: DirectoryKind::Kerio,
        reader: kerio.clone(),
        passwords: Some(kerio.clone()),
        listing: Some(kerio),
        accounts: None,
    })
}

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

/// A Kerio Connect server, as the settings describe it.
pub(crate) struct Kerio {
    api: Api,
    imap: ImapChecker,
    username: String,
    password: Secret,
    /// Selected domains and `name@domain` groups, lowercased.
    domains: Vec<String>,
    groups: Vec<String>,
    username_format: UsernameFormat,
    scope_rule: String,
}

impl std::fmt::Debug for Kerio {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kerio")
            .field("target", &self.api.target)
            .field("imap", &self.imap.target())
            .field("username", &self.username)
            .field("domains", &self.domains)
            .field("groups", &self.groups)
            .field("username_format", &self.username_format)
            .finish_non_exhaustive()
    }
}

/// A domain as `Domains.get` gives it.
#[derive(Debug, Clone)]
struct KerioDomain {
    id: String,
    name: String,
    description: String,
    primary: bool,
}

fn query(fields: &[&str], conditions: Value, order_by: &str, start: u64, limit: i64) -> Value {
    json!({"fields": fields, "conditions": conditions, "combining": "And",
           "orderBy": [{"columnName": order_by, "direction": "Asc", "caseSensitive": false}],
           "start": start, "limit": limit})
}

fn text<'a>(item: &'a Value, key: &str) -> &'a str {
    item.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// The user name an address gives in this format.
fn user_name(format: UsernameFormat, address: &str) -> &str {
    match format {
        UsernameFormat::Email => address,
        UsernameFormat::LocalPart => address.rsplit_once('@').map_or(address, |(l, _)| l),
    }
}

/// Whether `user` is in one of the `groups` (`name@domain`, lowercased) of `domain`.
fn in_groups(user: &Value, groups: &[String], domain: &str) -> bool {
    let names: Vec<String> = user
        .get("userGroups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|g| text(g, "name").to_lowercase())
        .collect();
    groups.iter().any(|g| {
        g.rsplit_once('@').is_some_and(|(name, d)| {
            d.eq_ignore_ascii_case(domain) && names.iter().any(|n| n == name)
        })
    })
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

    /// Every item of a listing, page by page until `totalItems`, `on_page` told after each page.
    /// Started over when the list changes under it (see the module comment).
    async fn list(
        &self,
        session: &Session,
        method: &str,
        params: impl Fn(Value) -> Value,
        fields: &[&str],
        order_by: &str,
        on_page: &mut (dyn FnMut(usize) + Send),
    ) -> Result<Vec<Value>, Stopped> {
        let mut attempt = 0;
        'listing: loop {
            attempt += 1;
            let mut items: Vec<Value> = Vec::new();
            let mut ids = BTreeSet::new();
            let mut first_total = None;
            loop {
                let start = items.len() as u64;
                let page = self
                    .get(
                        session,
                        method,
                        params(query(fields, json!([]), order_by, start, PAGE as i64)),
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
                if list.len() as u64 > PAGE {
                    return Err(self.malformed(method, "more items than the page's limit"));
                }
                let repeated = list.iter().any(|item| {
                    !text(item, "id").is_empty() && !ids.insert(text(item, "id").to_owned())
                });
                let changed = *first_total.get_or_insert(total) != total;
                if repeated || changed {
                    if attempt < LIST_ATTEMPTS {
                        tracing::info!(target = %self.api.target, method, "the list changed while it was read; reading it again");
                        continue 'listing;
                    }
                    return Err(Stopped::Failed(DirectoryError::Protocol {
                        message: format!(
                            "{}'s answers to `{method}` changed while they were read, {LIST_ATTEMPTS} times (users added or deleted meanwhile); nothing was changed, try again when the server is quieter",
                            self.api.target
                        ),
                    }));
                }
                items.extend(list.iter().cloned());
                on_page(list.len());
                if items.len() as u64 >= total {
                    return Ok(items);
                }
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

    async fn all_domains(&self, session: &Session) -> Result<Vec<KerioDomain>, Stopped> {
        let listed = self
            .list(
                session,
                "Domains.get",
                |q| json!({"query": q}),
                &["id", "name", "description", "isPrimary"],
                "name",
                &mut |_| {},
            )
            .await?;
        listed
            .iter()
            .map(|d| {
                let (id, name) = (text(d, "id"), text(d, "name"));
                if id.is_empty() || name.is_empty() {
                    return Err(self.malformed("Domains.get", "a domain without an id or a name"));
                }
                Ok(KerioDomain {
                    id: id.to_owned(),
                    name: name.to_owned(),
                    description: text(d, "description").to_owned(),
                    primary: d.get("isPrimary").and_then(Value::as_bool) == Some(true),
                })
            })
            .collect()
    }

    fn no_domain(&self, name: &str) -> Stopped {
        Stopped::Failed(DirectoryError::settings(
            "domains",
            format!(
                "{} has no domain {name:?}; check `domains` (`roster directory domains` lists them)",
                self.api.target
            ),
        ))
    }

    fn no_group(&self, group: &str) -> Stopped {
        Stopped::Failed(DirectoryError::settings(
            "groups",
            format!(
                "{} has no group {group:?}; check `groups` (name@domain; `roster directory groups` lists them)",
                self.api.target
            ),
        ))
    }

    async fn groups_of(
        &self,
        session: &Session,
        domain: &KerioDomain,
    ) -> Result<Vec<Value>, Stopped> {
        let domain_id = domain.id.clone();
        self.list(
            session,
            "Groups.get",
            move |q| json!({"query": q, "domainId": domain_id}),
            &["id", "name"],
            "name",
            &mut |_| {},
        )
        .await
    }

    async fn read_once(
        &self,
        session: &Session,
        progress: &dyn ReadProgress,
    ) -> Result<DirectoryRead, Stopped> {
        let domains = self.all_domains(session).await?;
        let find = |name: &str| domains.iter().find(|d| d.name.eq_ignore_ascii_case(name));
        for d in &self.domains {
            if find(d).is_none() {
                return Err(self.no_domain(d));
            }
        }
        let everything = self.domains.is_empty() && self.groups.is_empty();
        // The selected groups' ids, and the domains whose users can be in scope.
        let mut group_ids = BTreeSet::new();
        let mut group_domains = BTreeSet::new();
        for g in &self.groups {
            let (name, domain_name) = g.rsplit_once('@').unwrap_or((g.as_str(), ""));
            let domain = find(domain_name).ok_or_else(|| self.no_group(g))?;
            let groups = self.groups_of(session, domain).await?;
            let group = groups
                .iter()
                .find(|x| text(x, "name").eq_ignore_ascii_case(name))
                .ok_or_else(|| self.no_group(g))?;
            group_ids.insert(text(group, "id").to_owned());
            group_domains.insert(domain.name.to_lowercase());
        }
        let whole = |d: &KerioDomain| everything || self.domains.contains(&d.name.to_lowercase());
        let mut read = DirectoryRead::default();
        let mut seen: u64 = 0;
        for domain in domains
            .iter()
            .filter(|d| whole(d) || group_domains.contains(&d.name.to_lowercase()))
        {
            let domain_id = domain.id.clone();
            let users = self
                .list(
                    session,
                    "Users.get",
                    move |q| json!({"query": q, "domainId": domain_id}),
                    USER_FIELDS,
                    "loginName",
                    &mut |n| {
                        seen += n as u64;
                        progress.entries_read(seen);
                    },
                )
                .await?;
            read.pages += (users.len() as u64).div_ceil(PAGE).max(1);
            for user in &users {
                let in_group = user
                    .get("userGroups")
                    .and_then(Value::as_array)
                    .is_some_and(|gs| gs.iter().any(|g| group_ids.contains(text(g, "id"))));
                if !whole(domain) && !in_group {
                    continue;
                }
                if user.get("isEnabled").and_then(Value::as_bool) == Some(false) {
                    read.disabled_skipped += 1;
                    continue;
                }
                read.entries.push(self.entry(user, &domain.name)?);
            }
        }
        progress.entries_read(seen);
        read.notes
            .push(format!("Kerio Connect: {}", self.scope_rule));
        if read.disabled_skipped > 0 {
            read.notes.push(format!(
                "Kerio Connect: {} disabled user(s) skipped",
                read.disabled_skipped
            ));
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
            .map(str::trim)
            .filter(|a| !a.is_empty())
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
        Ok(DirectoryEntry {
            id: id.to_owned(),
            name: Some(user_name(self.username_format, &primary).to_owned()),
            dn: primary,
            full_name: Some(text(user, "fullName").to_owned()),
            emails: Some(emails),
        })
    }
}

#[async_trait::async_trait]
impl DirectoryReader for Kerio {
    async fn read_entries(
        &self,
        progress: &dyn ReadProgress,
    ) -> Result<DirectoryRead, DirectoryError> {
        let mut read = self
            .in_session(|session| async move { self.read_once(&session, progress).await })
            .await?;
        // Test Settings tells now, not at the first logon, whether passwords can be checked.
        read.notes.push(match self.imap.probe().await {
            Ok(method) => format!(
                "Kerio Connect: passwords are checked by {} ({method} inside TLS)",
                self.imap.target()
            ),
            Err(e) => format!("Kerio Connect: logons with Kerio passwords will fail: {e}"),
        });
        Ok(read)
    }

    /// Logs on as the administrator and lists the domains (an Auditor can't: protocols.md §2.2).
    async fn check_connection(&self) -> Result<(), DirectoryError> {
        self.in_session(|session| async move { self.all_domains(&session).await.map(|_| ()) })
            .await
    }
}

#[async_trait::async_trait]
impl DirectoryListing for Kerio {
    async fn domains(&self) -> Result<Vec<ListedDomain>, DirectoryError> {
        self.in_session(|session| async move {
            let mut out = Vec::new();
            for d in self.all_domains(&session).await? {
                // The count costs one small request per domain (limit 1; totalItems counts them all).
                let count = self
                    .get(
                        &session,
                        "Users.get",
                        json!({"query": query(&["id"], json!([]), "loginName", 0, 1), "domainId": d.id}),
                    )
                    .await?
                    .get("totalItems")
                    .and_then(Value::as_u64)
                    .ok_or_else(|| self.malformed("Users.get", "no totalItems"))?;
                out.push(ListedDomain {
                    name: d.name,
                    description: d.description,
                    accounts: count,
                });
            }
            Ok(out)
        })
        .await
    }

    async fn groups(&self) -> Result<Vec<ListedGroup>, DirectoryError> {
        self.in_session(|session| async move {
            let mut out = Vec::new();
            for d in self.all_domains(&session).await? {
                for g in self.groups_of(&session, &d).await? {
                    let name = text(&g, "name");
                    out.push(ListedGroup {
                        address: format!("{name}@{}", d.name),
                        name: name.to_owned(),
                    });
                }
            }
            Ok(out)
        })
        .await
    }
}

/// Who a logon is for.
enum Resolved {
    /// The name for the IMAP login, and the user's `loginName@domain`.
    Found {
        imap_login: String,
        dn: String,
    },
    Rejected(RejectReason),
}

impl Kerio {
    /// The users of `domain` whose login name is `login` (one or none; Kerio compares them without
    /// regard to case, and so does this).
    async fn users_named(
        &self,
        session: &Session,
        domain: &KerioDomain,
        login: &str,
    ) -> Result<Vec<Value>, Stopped> {
        let conditions = json!([{"fieldName": "loginName", "comparator": "Eq", "value": login}]);
        let result = self
            .get(
                session,
                "Users.get",
                json!({"query": query(USER_FIELDS, conditions, "loginName", 0, 10), "domainId": domain.id}),
            )
            .await?;
        let list = result
            .get("list")
            .and_then(Value::as_array)
            .ok_or_else(|| self.malformed("Users.get", "no list"))?;
        Ok(list
            .iter()
            .filter(|u| text(u, "loginName").eq_ignore_ascii_case(login))
            .cloned()
            .collect())
    }

    /// The user to check the password of, from the subject (see the module comment).
    async fn resolve(
        &self,
        session: &Session,
        subject: &LogonSubject<'_>,
    ) -> Result<Resolved, Stopped> {
        let name = subject.name.trim();
        let linked = subject.dn.map(str::trim).filter(|s| !s.is_empty());
        if name.is_empty() {
            return Ok(Resolved::Rejected(RejectReason::NotFound));
        }
        if let Some(dn) = linked
            && !user_name(self.username_format, dn).eq_ignore_ascii_case(name)
        {
            return Ok(Resolved::Rejected(RejectReason::NotFound));
        }
        let domains = self.all_domains(session).await?;
        let address = linked
            .map(str::to_owned)
            .or_else(|| name.contains('@').then(|| name.to_owned()));
        let candidates: Vec<(&KerioDomain, String)> = match &address {
            Some(address) => {
                let Some((login, domain)) = address.rsplit_once('@') else {
                    return Ok(Resolved::Rejected(RejectReason::NotFound));
                };
                match domains.iter().find(|d| d.name.eq_ignore_ascii_case(domain)) {
                    Some(d) => vec![(d, login.to_owned())],
                    None => return Ok(Resolved::Rejected(RejectReason::NotFound)),
                }
            }
            None => {
                let group_domains: Vec<&str> = self
                    .groups
                    .iter()
                    .filter_map(|g| g.rsplit_once('@').map(|(_, d)| d))
                    .collect();
                domains
                    .iter()
                    .filter(|d| {
                        let key = d.name.to_lowercase();
                        (self.domains.is_empty() && self.groups.is_empty())
                            || self.domains.contains(&key)
                            || group_domains.contains(&key.as_str())
                    })
                    .map(|d| (d, name.to_owned()))
                    .collect()
            }
        };
        let mut found = Vec::new();
        for (domain, login) in candidates {
            for user in self.users_named(session, domain, &login).await? {
                found.push((domain, user));
            }
        }
        let (domain, user) = match found.len() {
            0 => return Ok(Resolved::Rejected(RejectReason::NotFound)),
            1 => found.remove(0),
            _ => return Ok(Resolved::Rejected(RejectReason::Ambiguous)),
        };
        if subject.id.is_some_and(|id| id != text(&user, "id")) {
            return Ok(Resolved::Rejected(RejectReason::NotFound));
        }
        let everything = self.domains.is_empty() && self.groups.is_empty();
        if !everything
            && !self.domains.contains(&domain.name.to_lowercase())
            && !in_groups(&user, &self.groups, &domain.name)
        {
            return Ok(Resolved::Rejected(RejectReason::NotFound));
        }
        if user.get("isEnabled").and_then(Value::as_bool) == Some(false) {
            return Ok(Resolved::Rejected(RejectReason::AccountUnusable));
        }
        let login = text(&user, "loginName");
        Ok(Resolved::Found {
            imap_login: if domain.primary {
                login.to_owned()
            } else {
                format!("{login}@{}", domain.name)
            },
            dn: format!("{login}@{}", domain.name),
        })
    }
}

#[async_trait::async_trait]
impl PasswordChecker for Kerio {
    async fn authenticate(
        &self,
        subject: &LogonSubject<'_>,
        password: &Secret,
    ) -> Result<LogonOutcome, DirectoryError> {
        if password.is_empty() {
            return Ok(LogonOutcome::Rejected(RejectReason::EmptyPassword));
        }
        let resolved = self
            .in_session(|session| async move { self.resolve(&session, subject).await })
            .await?;
        let (imap_login, dn) = match resolved {
            Resolved::Found { imap_login, dn } => (imap_login, dn),
            Resolved::Rejected(reason) => return Ok(LogonOutcome::Rejected(reason)),
        };
        Ok(if self.imap.check(&imap_login, password.expose()).await? {
            LogonOutcome::Accepted { dn }
        } else {
            LogonOutcome::Rejected(RejectReason::WrongPassword)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::NoProgress;
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
            scope_rule: String::new(),
            imap: ImapChecker {
                endpoint: roster_core::directory::ImapEndpoint {
                    security: roster_core::directory::ImapSecurity::Tls,
                    host: "127.0.0.1".into(),
                    port: 1,
                },
                tls,
                timeout: IMAP_TIMEOUT,
            },
        }
    }

    fn names(read: &DirectoryRead) -> Vec<String> {
        read.entries.iter().filter_map(|e| e.name.clone()).collect()
    }

    #[tokio::test]
    async fn reads_all_one_domain_groups_and_pages() {
        let ca = TestCa::generate().unwrap();
        let emulator = start(&ca).await;

        let all = kerio(&ca, &emulator, &[], &[])
            .read_entries(&NoProgress)
            .await
            .unwrap();
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
            .read_entries(&NoProgress)
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
            .read_entries(&NoProgress)
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
        .read_entries(&NoProgress)
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
                .read_entries(&NoProgress)
                .await
                .unwrap_err();
            assert!(
                matches!(&err, DirectoryError::InvalidSettings { key: k, .. } if key == *k),
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
        let read = kerio(&ca, &emulator, &[], &[])
            .read_entries(&NoProgress)
            .await
            .unwrap();
        assert_eq!(read.entries.len(), 1204);
        let logins = |c: &roster_testkit::kerio::Controls| {
            c.requests()
                .iter()
                .filter(|r| r.method == "Session.login")
                .count()
        };
        assert_eq!(logins(controls), 2);

        controls.expire_sessions(2, 2);
        let err = kerio(&ca, &emulator, &[], &[])
            .read_entries(&NoProgress)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "DI022-session-expired", "{err}");
        assert_eq!(logins(controls), 4);
        assert_eq!(controls.open_sessions(), 0);
    }
}
