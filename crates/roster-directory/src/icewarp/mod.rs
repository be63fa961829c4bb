//! IceWarp Server (the seed's "IceWarp Server"): user accounts read through its XML API
//! (`POST /icewarpapi/`, `admin:iq:rpc`; `shared/reference/protocols.md` part 1), logons checked with
//! `getauthtoken`, and the domains and groups listed for the settings' picker.
//!
//! A read: `authenticate` as the administrator (the sid comes in `iq@sid`), `getserverproperties`
//! `C_Version` (below 10.4 is refused, naming both versions), `getdomainsinfolist`, the members of each
//! selected group (`getaccountmemberinfolist`), then per domain `getaccountsinfolist` with `typemask` 0
//! (user accounts only) in pages of [`PAGE`], and per user account `getaccountproperties` for its
//! aliases and its disabled state; `logout` at the end, also after a failure. A `session_invalid` in the
//! middle authenticates again once and restarts the read from the beginning; a second one fails the
//! run. Any reply that isn't the API's XML (an HTTP error, an HTML page, a truncated or malformed
//! document, an unknown error uid) fails the whole read: there is no partial result.
//!
//! Choices where protocols.md marks [I] or [?] (the most likely real behaviour, written down):
//! * **Identity.** The API gives no permanent account id (nothing in `apiconst.pas` or the account
//!   lists; checked), so an entry's id is its primary address in lowercase, and its "DN" the address as
//!   the server writes it. A rename on the server looks like a delete and a create; every entry is
//!   counted in `without_stable_id`, and the report says so once.
//! * **Domains read.** Standard (0) and distributed (4) domains; ETRN queues (1), domain aliases (2)
//!   and backup domains (3) hold no accounts of their own [I]. A selected domain or group the server
//!   doesn't have fails the run (`DI001`, naming it): a missing domain must not look like "all its users
//!   left".
//! * **Addresses.** The primary address (`email` in the list), then `U_AliasList` (full addresses,
//!   `;`-separated [I], domain-alias forms included), then `U_EmailAlias` (local parts, `;`-separated,
//!   completed with `@domain`), without repeats (compared without regard to case), primary first.
//! * **Disabled.** `accountstate/state` when the list has it (newer builds), and `U_AccountDisabled`
//!   always: any value but 0 skips the account (counted).
//! * **Group members.** `<val>` with anything after `;` removed [?]; `[domain]` means every account of
//!   that domain; a member may be an alias address; members that are no user account (other groups,
//!   lists, outside addresses) are ignored.
//! * **Logon.** `getauthtoken` with `authtype` 0 and the user's primary address (the linked id, or the
//!   user name when it is an address, or `name@domain` in `local-part` format: the one selected domain,
//!   else the domain whose user account has that local part, found with the administrator's session).
//!   `auth_login_invalid` (wrong password, unknown account: the server doesn't tell them apart, and
//!   neither do we) is a wrong password; `account_disabled_2` and `auth_two_factor_required` refuse the
//!   logon (Roster can't ask for a second factor, and an archive logon must not bypass it). No lock,
//!   transaction or shared connection is held while the server tarpits a wrong password: each check is
//!   its own HTTP request on reqwest's pool.
//! * **Scope at logon.** The linked id must agree with the user name (a user linked to another
//!   account's id is not that account). With only `domains` selected, the address must be in one of
//!   them; group membership is not re-checked at each logon (it would take an administrator session per
//!   logon), the sync removes users who left the groups.

mod api;
pub(crate) mod xml;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use roster_core::directory::{
    DirectoryEntry, DirectoryKind, IcewarpSettings, Secret, UsernameFormat,
};

use self::api::{Api, LOGON_TIMEOUT, READ_TIMEOUT, Reply};
use self::xml::{Element, esc};
use crate::connector::{
    Connector, DirectoryListing, DirectoryRead, DirectoryReader, ListedDomain, ListedGroup,
    PasswordChecker, ReadProgress,
};
use crate::error::DirectoryError;
use crate::logon::{LogonOutcome, LogonSubject, RejectReason};

/// Accounts per page of `getaccountsinfolist` (and domains per page, members per page).
const PAGE: u64 = 500;
/// `getaccountproperties` requests in flight at once during a read.
const CONCURRENT_PROPERTY_REQUESTS: usize = 8;
/// The oldest API the seed allows.
const REQUIRED_VERSION: (u64, u64) = (10, 4);
const REQUIRED_VERSION_TEXT: &str = "10.4";

const LOGGING_IN: &str = "logging in as the administrator";
const READING: &str = "reading the users";
const CHECKING_PASSWORD: &str = "checking the user's password";

pub(crate) fn connector(settings: &IcewarpSettings) -> Result<Connector, DirectoryError> {
    use roster_core::directory::TypeSettings;
    settings.validate()?;
    let endpoint = settings.endpoint()?;
    let password = match &settings.password {
        Some(p) if !p.is_empty() => p.clone(),
        _ => {
            return Err(DirectoryError::settings(
                "password",
                "give the IceWarp administrator's password",
            ));
        }
    };
    let tls = if endpoint.https {
        let config = crate::tls::client_config(
            settings.ca_file.as_deref(),
            settings.ignore_certificate_errors,
        )?;
        Some((*config).clone())
    } else {
        if settings.ignore_certificate_errors {
            tracing::warn!("ignore_certificate_errors has no effect with an http:// server");
        }
        None
    };
    let api = Api::new(
        endpoint.url(IcewarpSettings::API_PATH),
        &endpoint.origin(),
        tls,
    )?;
    let icewarp = Arc::new(Icewarp {
        api,
        username: settings.username.trim().to_owned(),
        password,
        domains: settings.selected_domains(),
        groups: settings.selected_groups(),
        username_format: settings.username_format,
        scope_rule: settings.scope_rule(),
    });
    Ok(Connector {
        kind: DirectoryKind::Icewarp,
        reader: icewarp.clone(),
        passwords: Some(icewarp.clone()),
        listing: Some(icewarp),
        accounts: None,
    })
}

pub(crate) struct Icewarp {
    api: Api,
    username: String,
    password: Secret,
    /// Lowercased, without repeats.
    domains: Vec<String>,
    groups: Vec<String>,
    username_format: UsernameFormat,
    scope_rule: String,
}

impl std::fmt::Debug for Icewarp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Icewarp")
            .field("target", &self.api.target)
            .field("username", &self.username)
            .field("domains", &self.domains)
            .field("groups", &self.groups)
            .field("username_format", &self.username_format)
            .finish_non_exhaustive()
    }
}

/// Why a read with one session stopped.
enum Stopped {
    /// `session_invalid`: authenticate again.
    Expired,
    Failed(DirectoryError),
}

impl From<DirectoryError> for Stopped {
    fn from(e: DirectoryError) -> Self {
        Stopped::Failed(e)
    }
}

/// A user account as the list gives it.
struct Listed {
    email: String,
    name: String,
    /// `accountstate/state`, when the build sends it.
    state: Option<String>,
}

/// The parts of a group member value.
enum Member {
    Address(String),
    WholeDomain(String),
}

impl Icewarp {
    /// Authenticates as the administrator: the new sid.
    async fn login(&self) -> Result<String, DirectoryError> {
        let params = credentials(&self.username, &self.password);
        match self
            .api
            .call(None, "authenticate", &params, READ_TIMEOUT, LOGGING_IN)
            .await?
        {
            Reply::Result { sid, result } => {
                let applied = result.text.trim() == "1";
                match sid.filter(|s| !s.is_empty()) {
                    Some(sid) if applied => Ok(sid),
                    _ => Err(DirectoryError::ServiceLogon {
                        target: self.api.target.clone(),
                        username: self.username.clone(),
                        uid: format!("result {:?} without a session", result.text.trim()),
                    }),
                }
            }
            Reply::Error { uid }
                if matches!(
                    uid.as_str(),
                    "auth_login_invalid" | "account_disabled_2" | "auth_two_factor_required"
                ) =>
            {
                Err(DirectoryError::ServiceLogon {
                    target: self.api.target.clone(),
                    username: self.username.clone(),
                    uid,
                })
            }
            Reply::Error { uid } => Err(DirectoryError::Api {
                target: self.api.target.clone(),
                command: "authenticate".into(),
                uid,
            }),
        }
    }

    /// Ends the session; failures are only logged (the server forgets idle sessions anyway).
    async fn logout(&self, sid: &str) {
        match self
            .api
            .call(Some(sid), "logout", "", READ_TIMEOUT, "logging out")
            .await
        {
            Ok(Reply::Result { .. }) => {}
            Ok(Reply::Error { uid }) => {
                tracing::debug!(%uid, "IceWarp logout answered an error");
            }
            Err(e) => tracing::debug!(error = %e, "IceWarp logout failed"),
        }
    }

    /// A command under the session: its `<result>`, `Expired` on `session_invalid`.
    async fn command(
        &self,
        sid: &str,
        command: &str,
        params: &str,
    ) -> Result<Result<Element, String>, Stopped> {
        match self
            .api
            .call(Some(sid), command, params, READ_TIMEOUT, READING)
            .await?
        {
            Reply::Result { result, .. } => Ok(Ok(result)),
            Reply::Error { uid } if uid == "session_invalid" => Err(Stopped::Expired),
            Reply::Error { uid } => Ok(Err(uid)),
        }
    }

    /// A command whose every error is a failure.
    async fn expect(&self, sid: &str, command: &str, params: &str) -> Result<Element, Stopped> {
        self.command(sid, command, params).await?.map_err(|uid| {
            Stopped::Failed(DirectoryError::Api {
                target: self.api.target.clone(),
                command: command.to_owned(),
                uid,
            })
        })
    }

    fn malformed(&self, command: &str, what: &str) -> Stopped {
        Stopped::Failed(DirectoryError::Protocol {
            message: format!("{} answered `{command}` with {what}", self.api.target),
        })
    }

    /// Runs `work` in an administrator session, with `logout` at the end whatever happened; one
    /// `session_invalid` authenticates again and starts `work` over.
    async fn in_session<T, F, Fut>(&self, work: F) -> Result<T, DirectoryError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, Stopped>>,
    {
        let mut expired = 0;
        loop {
            let sid = self.login().await?;
            let outcome = work(sid.clone()).await;
            self.logout(&sid).await;
            match outcome {
                Ok(value) => return Ok(value),
                Err(Stopped::Failed(e)) => return Err(e),
                Err(Stopped::Expired) if expired == 0 => {
                    expired += 1;
                    tracing::info!(target = %self.api.target, "the IceWarp session expired; starting again with a new one");
                }
                Err(Stopped::Expired) => {
                    return Err(DirectoryError::SessionExpired {
                        target: self.api.target.clone(),
                    });
                }
            }
        }
    }

    async fn check_version(&self, sid: &str) -> Result<(), Stopped> {
        let result = self
            .expect(
                sid,
                "getserverproperties",
                "<serverpropertylist><item><propname>c_version</propname></item></serverpropertylist>",
            )
            .await?;
        let version = property(&result, "c_version")
            .ok_or_else(|| self.malformed("getserverproperties", "no C_Version"))?;
        let Some(found) = parse_version(&version) else {
            return Err(self.malformed(
                "getserverproperties",
                &format!("a C_Version that is not a version number: {version:?}"),
            ));
        };
        if found < REQUIRED_VERSION {
            return Err(Stopped::Failed(DirectoryError::ApiVersion {
                target: self.api.target.clone(),
                found: version,
                required: REQUIRED_VERSION_TEXT,
            }));
        }
        Ok(())
    }

    /// Every domain: name, description, type, account count.
    async fn all_domains(&self, sid: &str) -> Result<Vec<(ListedDomain, u8)>, Stopped> {
        let mut out = Vec::new();
        let mut offset: u64 = 0;
        loop {
            let params = format!(
                "<filter><namemask>*</namemask></filter><offset>{offset}</offset><count>{PAGE}</count>"
            );
            let result = self.expect(sid, "getdomainsinfolist", &params).await?;
            let items: Vec<&Element> = result.children_named("item").collect();
            for item in &items {
                let name = item.child_text("name").unwrap_or_default().to_owned();
                if name.is_empty() {
                    return Err(self.malformed("getdomainsinfolist", "a domain without a name"));
                }
                let domain_type = item
                    .child_text("domaintype")
                    .and_then(|t| t.parse::<u8>().ok())
                    .unwrap_or(0);
                out.push((
                    ListedDomain {
                        name,
                        description: item.child_text("desc").unwrap_or_default().to_owned(),
                        accounts: item
                            .child_text("accountcount")
                            .and_then(|c| c.parse().ok())
                            .unwrap_or(0),
                    },
                    domain_type,
                ));
            }
            let total = overall_count(&result)
                .ok_or_else(|| self.malformed("getdomainsinfolist", "no <overallcount>"))?;
            offset += items.len() as u64;
            if items.is_empty() || offset >= total {
                return Ok(out);
            }
        }
    }

    /// Every account of one domain of one type, as listed.
    async fn list_accounts(
        &self,
        sid: &str,
        domain: &str,
        typemask: u8,
    ) -> Result<Vec<Listed>, Stopped> {
        let mut out = Vec::new();
        let mut offset = Some(0);
        let mut seen = BTreeSet::new();
        while let Some(at) = offset {
            let (page, next) = self
                .accounts_page(sid, domain, typemask, at, &mut seen)
                .await?;
            out.extend(page);
            offset = next;
        }
        Ok(out)
    }

    /// One page of the accounts of one domain of one type, from `offset`, and the next page's offset.
    /// `seen` (the lowercased addresses of the earlier pages) catches a server that repeats itself
    /// instead of paging.
    async fn accounts_page(
        &self,
        sid: &str,
        domain: &str,
        typemask: u8,
        offset: u64,
        seen: &mut BTreeSet<String>,
    ) -> Result<(Vec<Listed>, Option<u64>), Stopped> {
        let params = format!(
            "<domainstr>{}</domainstr><filter><namemask>*</namemask><typemask>{typemask}</typemask></filter><offset>{offset}</offset><count>{PAGE}</count>",
            esc(domain)
        );
        let result = self.expect(sid, "getaccountsinfolist", &params).await?;
        let items: Vec<&Element> = result.children_named("item").collect();
        let mut out = Vec::new();
        for item in &items {
            let email = item.child_text("email").unwrap_or_default();
            if !email.contains('@') {
                return Err(self.malformed(
                    "getaccountsinfolist",
                    &format!("an account without an address (email {email:?}) in {domain}"),
                ));
            }
            if !seen.insert(email.to_lowercase()) {
                return Err(self.malformed(
                    "getaccountsinfolist",
                    &format!(
                        "the account {email} twice while paging through {domain} (at offset {offset})"
                    ),
                ));
            }
            // The server filters by typemask; an account of another type is not a user all the same.
            let account_type = item.child_text("accounttype").unwrap_or_default();
            if account_type != typemask.to_string() {
                continue;
            }
            out.push(Listed {
                email: email.to_owned(),
                name: item.child_text("name").unwrap_or_default().to_owned(),
                state: item
                    .child("accountstate")
                    .and_then(|s| s.child_text("state"))
                    .map(str::to_owned),
            });
        }
        let total = overall_count(&result)
            .ok_or_else(|| self.malformed("getaccountsinfolist", "no <overallcount>"))?;
        let next = offset + items.len() as u64;
        Ok((out, (!items.is_empty() && next < total).then_some(next)))
    }

    /// The members of a selected group, as written on the server.
    async fn members(&self, sid: &str, group: &str) -> Result<Vec<Member>, Stopped> {
        let mut out = Vec::new();
        let mut offset: u64 = 0;
        loop {
            let params = format!(
                "<who>{}</who><offset>{offset}</offset><count>{PAGE}</count>",
                esc(group)
            );
            let result = match self
                .command(sid, "getaccountmemberinfolist", &params)
                .await?
            {
                Ok(result) => result,
                Err(uid) if uid == "account_invalid" => {
                    return Err(Stopped::Failed(DirectoryError::settings(
                        "groups",
                        format!(
                            "{} has no group {group}; remove it from `groups` or correct its address (`roster directory groups` lists them)",
                            self.api.target
                        ),
                    )));
                }
                Err(uid) => {
                    return Err(Stopped::Failed(DirectoryError::Api {
                        target: self.api.target.clone(),
                        command: "getaccountmemberinfolist".into(),
                        uid,
                    }));
                }
            };
            let items: Vec<&Element> = result.children_named("item").collect();
            for item in &items {
                let value = item.child_text("val").unwrap_or_default();
                let value = value.split(';').next().unwrap_or_default().trim();
                if let Some(domain) = value.strip_prefix('[').and_then(|v| v.strip_suffix(']')) {
                    out.push(Member::WholeDomain(domain.trim().to_lowercase()));
                } else if value.contains('@') {
                    out.push(Member::Address(value.to_lowercase()));
                }
            }
            let total = overall_count(&result)
                .ok_or_else(|| self.malformed("getaccountmemberinfolist", "no <overallcount>"))?;
            offset += items.len() as u64;
            if items.is_empty() || offset >= total {
                return Ok(out);
            }
        }
    }

    /// One account's further addresses and whether it is disabled.
    async fn details(&self, sid: &str, email: &str) -> Result<(Vec<String>, bool), Stopped> {
        let params = format!(
            "<accountemail>{}</accountemail><accountpropertylist><item><propname>u_aliaslist</propname></item><item><propname>u_emailalias</propname></item><item><propname>u_accountdisabled</propname></item></accountpropertylist>",
            esc(email)
        );
        let result = self.expect(sid, "getaccountproperties", &params).await?;
        let domain = email.rsplit_once('@').map_or("", |(_, d)| d);
        let mut addresses = Vec::new();
        for a in property(&result, "u_aliaslist")
            .unwrap_or_default()
            .split(';')
        {
            let a = a.trim();
            if a.contains('@') {
                addresses.push(a.to_owned());
            }
        }
        for local in property(&result, "u_emailalias")
            .unwrap_or_default()
            .split(';')
        {
            let local = local.trim();
            if !local.is_empty() {
                addresses.push(if local.contains('@') {
                    local.to_owned()
                } else {
                    format!("{local}@{domain}")
                });
            }
        }
        let disabled = property(&result, "u_accountdisabled")
            .is_some_and(|v| !v.trim().is_empty() && v.trim() != "0");
        Ok((addresses, disabled))
    }

    async fn read_once(
        &self,
        sid: String,
        progress: &dyn ReadProgress,
    ) -> Result<DirectoryRead, Stopped> {
        self.check_version(&sid).await?;
        let domains = self.all_domains(&sid).await?;
        let readable: BTreeMap<String, String> = domains
            .iter()
            .filter(|(_, t)| matches!(t, 0 | 4))
            .map(|(d, _)| (d.name.to_lowercase(), d.name.clone()))
            .collect();
        let all: BTreeSet<String> = domains.iter().map(|(d, _)| d.name.to_lowercase()).collect();
        for selected in &self.domains {
            if !all.contains(selected) {
                return Err(Stopped::Failed(DirectoryError::settings(
                    "domains",
                    format!(
                        "{} has no domain {selected}; remove it from `domains` (`roster directory domains` lists them)",
                        self.api.target
                    ),
                )));
            }
        }
        let mut member_addresses: BTreeSet<String> = BTreeSet::new();
        let mut member_domains: BTreeSet<String> = BTreeSet::new();
        for group in &self.groups {
            for member in self.members(&sid, group).await? {
                match member {
                    Member::Address(a) => {
                        member_addresses.insert(a);
                    }
                    Member::WholeDomain(d) => {
                        member_domains.insert(d);
                    }
                }
            }
        }
        let everything = self.domains.is_empty() && self.groups.is_empty();
        // The domains whose accounts can be in scope, in the server's order.
        let to_read: Vec<&String> = readable
            .iter()
            .filter(|(key, _)| {
                everything
                    || self.domains.contains(key)
                    || member_domains.contains(*key)
                    || member_addresses
                        .iter()
                        .any(|a| a.rsplit_once('@').is_some_and(|(_, d)| d == key.as_str()))
            })
            .map(|(_, name)| name)
            .collect();
        let mut read = DirectoryRead {
            identified_by: Some("their primary address (IceWarp has no permanent account id)"),
            ..Default::default()
        };
        for domain in to_read {
            let key = domain.to_lowercase();
            let whole = everything || self.domains.contains(&key) || member_domains.contains(&key);
            let mut offset = Some(0);
            let mut seen = BTreeSet::new();
            while let Some(at) = offset {
                let (listed, next) = self.accounts_page(&sid, domain, 0, at, &mut seen).await?;
                offset = next;
                read.pages += 1;
                let emails: Vec<String> = listed.iter().map(|l| l.email.clone()).collect();
                let sid_ref: &str = &sid;
                let details: Vec<(Vec<String>, bool)> = futures_util::stream::iter(emails)
                    .map(|email| async move { self.details(sid_ref, &email).await })
                    .buffered(CONCURRENT_PROPERTY_REQUESTS)
                    .try_collect()
                    .await?;
                for (account, (aliases, disabled_property)) in listed.into_iter().zip(details) {
                    let mut addresses = vec![account.email.clone()];
                    for a in aliases {
                        if !addresses.iter().any(|x| x.eq_ignore_ascii_case(&a)) {
                            addresses.push(a);
                        }
                    }
                    let in_scope = whole
                        || addresses
                            .iter()
                            .any(|a| member_addresses.contains(&a.to_lowercase()));
                    if !in_scope {
                        continue;
                    }
                    let disabled_state = account
                        .state
                        .as_deref()
                        .is_some_and(|s| !s.is_empty() && s != "0");
                    if disabled_state || disabled_property {
                        read.disabled_skipped += 1;
                        continue;
                    }
                    read.entries.push(self.entry(account, addresses));
                    read.without_stable_id += 1;
                }
                // After each page (at most PAGE entries, so also at least every 1000).
                progress.entries_read(read.entries.len() as u64);
            }
        }
        if read.pages == 0 {
            progress.entries_read(0);
        }
        read.notes.push(format!("IceWarp: {}", self.scope_rule));
        if read.disabled_skipped > 0 {
            read.notes.push(format!(
                "IceWarp: {} disabled account(s) skipped",
                read.disabled_skipped
            ));
        }
        Ok(read)
    }

    fn entry(&self, account: Listed, addresses: Vec<String>) -> DirectoryEntry {
        DirectoryEntry {
            id: account.email.to_lowercase(),
            name: Some(user_name(self.username_format, &account.email).to_owned()),
            dn: account.email,
            full_name: Some(account.name),
            emails: Some(addresses),
        }
    }
}

/// The user name an address gives in this format.
fn user_name(format: UsernameFormat, address: &str) -> &str {
    match format {
        UsernameFormat::Email => address,
        UsernameFormat::LocalPart => address.rsplit_once('@').map_or(address, |(l, _)| l),
    }
}

fn credentials(email: &str, password: &Secret) -> String {
    format!(
        "<authtype>0</authtype><email>{}</email><password>{}</password><digest></digest><persistentlogin>0</persistentlogin>",
        esc(email),
        esc(password.expose())
    )
}

/// The value of a `TPropertyString` item in a property answer, found by name without regard to case.
fn property(result: &Element, name: &str) -> Option<String> {
    result.children_named("item").find_map(|item| {
        let propname = item.child("apiproperty")?.child_text("propname")?;
        if !propname.eq_ignore_ascii_case(name) {
            return None;
        }
        let value = item.child("propertyval")?;
        Some(value.child_text("val").unwrap_or_default().to_owned())
    })
}

fn overall_count(result: &Element) -> Option<u64> {
    result.child_text("overallcount")?.parse().ok()
}

/// `14.3.0.3` → (14, 3); `10.4` → (10, 4); anything without two leading numbers → `None`.
fn parse_version(v: &str) -> Option<(u64, u64)> {
    let mut parts = v.trim().split(['.', ' ']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

#[async_trait::async_trait]
impl DirectoryReader for Icewarp {
    async fn read_entries(
        &self,
        progress: &dyn ReadProgress,
    ) -> Result<DirectoryRead, DirectoryError> {
        self.in_session(|sid| self.read_once(sid, progress)).await
    }

    async fn check_connection(&self) -> Result<(), DirectoryError> {
        self.in_session(|sid| async move { self.check_version(&sid).await })
            .await
    }
}

#[async_trait::async_trait]
impl DirectoryListing for Icewarp {
    async fn domains(&self) -> Result<Vec<ListedDomain>, DirectoryError> {
        self.in_session(|sid| async move {
            self.check_version(&sid).await?;
            Ok(self
                .all_domains(&sid)
                .await?
                .into_iter()
                .map(|(d, _)| d)
                .collect())
        })
        .await
    }

    async fn groups(&self) -> Result<Vec<ListedGroup>, DirectoryError> {
        self.in_session(|sid| async move {
            self.check_version(&sid).await?;
            let mut out = Vec::new();
            for (domain, domain_type) in self.all_domains(&sid).await? {
                if !matches!(domain_type, 0 | 4) {
                    continue;
                }
                for g in self.list_accounts(&sid, &domain.name, 7).await? {
                    out.push(ListedGroup {
                        address: g.email,
                        name: g.name,
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
    Address(String),
    Rejected(RejectReason),
}

impl Icewarp {
    /// The address to check the password of, from the subject (see the module comment).
    async fn resolve(&self, subject: &LogonSubject<'_>) -> Result<Resolved, DirectoryError> {
        let linked = subject
            .id
            .or(subject.dn)
            .map(str::trim)
            .filter(|s| !s.is_empty());
        let address = match linked {
            Some(address) => {
                if !user_name(self.username_format, address)
                    .eq_ignore_ascii_case(subject.name.trim())
                {
                    return Ok(Resolved::Rejected(RejectReason::NotFound));
                }
                address.to_owned()
            }
            None if subject.name.contains('@') => subject.name.trim().to_owned(),
            None if subject.name.trim().is_empty() => {
                return Ok(Resolved::Rejected(RejectReason::NotFound));
            }
            None => match self.domain_of_local_part(subject.name.trim()).await? {
                Resolved::Address(a) => a,
                rejected => return Ok(rejected),
            },
        };
        if self.groups.is_empty() && !self.domains.is_empty() {
            let domain = address
                .rsplit_once('@')
                .map_or("", |(_, d)| d)
                .to_lowercase();
            if !self.domains.contains(&domain) {
                return Ok(Resolved::Rejected(RejectReason::NotFound));
            }
        }
        Ok(Resolved::Address(address))
    }

    /// `local@domain` for a bare local part: the one selected domain, else the domains (selected, or
    /// all) where it is a user account.
    async fn domain_of_local_part(&self, local: &str) -> Result<Resolved, DirectoryError> {
        if let [only] = self.domains.as_slice()
            && self.groups.is_empty()
        {
            return Ok(Resolved::Address(format!("{local}@{only}")));
        }
        let found: Vec<String> = self
            .in_session(|sid| async move {
                let candidates: Vec<String> = if self.domains.is_empty() || !self.groups.is_empty() {
                    self.all_domains(&sid)
                        .await?
                        .into_iter()
                        .filter(|(_, t)| matches!(t, 0 | 4))
                        .map(|(d, _)| d.name)
                        .collect()
                } else {
                    self.domains.clone()
                };
                let mut found = Vec::new();
                for domain in candidates {
                    let address = format!("{local}@{domain}");
                    let params = format!(
                        "<accountemail>{}</accountemail><accountpropertylist><item><propname>u_type</propname></item></accountpropertylist>",
                        esc(&address)
                    );
                    match self.command(&sid, "getaccountproperties", &params).await? {
                        Ok(result) if property(&result, "u_type").as_deref() == Some("0") => {
                            found.push(address);
                        }
                        Ok(_) => {}
                        Err(uid) if uid == "account_invalid" => {}
                        Err(uid) => {
                            return Err(Stopped::Failed(DirectoryError::Api {
                                target: self.api.target.clone(),
                                command: "getaccountproperties".into(),
                                uid,
                            }));
                        }
                    }
                }
                Ok(found)
            })
            .await?;
        let mut found = found.into_iter();
        Ok(match (found.next(), found.next()) {
            (Some(only), None) => Resolved::Address(only),
            (None, _) => Resolved::Rejected(RejectReason::NotFound),
            (Some(_), Some(_)) => Resolved::Rejected(RejectReason::Ambiguous),
        })
    }
}

#[async_trait::async_trait]
impl PasswordChecker for Icewarp {
    async fn authenticate(
        &self,
        subject: &LogonSubject<'_>,
        password: &Secret,
    ) -> Result<LogonOutcome, DirectoryError> {
        if password.is_empty() {
            return Ok(LogonOutcome::Rejected(RejectReason::EmptyPassword));
        }
        let address = match self.resolve(subject).await? {
            Resolved::Address(a) => a,
            Resolved::Rejected(reason) => return Ok(LogonOutcome::Rejected(reason)),
        };
        // Its own request on the shared client: nothing else waits while the server tarpits.
        let reply = self
            .api
            .call(
                None,
                "getauthtoken",
                &credentials(&address, password),
                LOGON_TIMEOUT,
                CHECKING_PASSWORD,
            )
            .await?;
        Ok(match reply {
            Reply::Result { result, .. } => {
                if result
                    .child_text("authtoken")
                    .is_some_and(|t| !t.is_empty())
                {
                    let email = result
                        .child_text("email")
                        .filter(|e| e.eq_ignore_ascii_case(&address))
                        .unwrap_or(&address);
                    LogonOutcome::Accepted {
                        dn: email.to_owned(),
                    }
                } else {
                    tracing::warn!(target = %self.api.target, "getauthtoken answered without a token");
                    LogonOutcome::Rejected(RejectReason::WrongPassword)
                }
            }
            Reply::Error { uid } if uid == "auth_login_invalid" => {
                LogonOutcome::Rejected(RejectReason::WrongPassword)
            }
            Reply::Error { uid }
                if uid == "account_disabled_2" || uid == "auth_two_factor_required" =>
            {
                tracing::info!(%address, %uid, "IceWarp refused a logon for a reason other than the password");
                LogonOutcome::Rejected(RejectReason::AccountUnusable)
            }
            Reply::Error { uid } => {
                return Err(DirectoryError::Api {
                    target: self.api.target.clone(),
                    command: "getauthtoken".into(),
                    uid,
                });
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(parse_version("14.3.0.3"), Some((14, 3)));
        assert_eq!(parse_version("10.4"), Some((10, 4)));
        assert_eq!(parse_version("Epos Update 3"), None);
        assert!(parse_version("10.3.9").unwrap() < REQUIRED_VERSION);
        assert!(parse_version("10.4.0").unwrap() >= REQUIRED_VERSION);
        assert!(parse_version("9.12").unwrap() < REQUIRED_VERSION);
    }

    #[test]
    fn user_names() {
        assert_eq!(user_name(UsernameFormat::Email, "a@b.c"), "a@b.c");
        assert_eq!(user_name(UsernameFormat::LocalPart, "a@b.c"), "a");
    }
}
