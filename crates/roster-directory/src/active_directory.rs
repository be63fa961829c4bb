//! Active Directory (the seed's "Active Directory", issue 21): its settings mapped into the LDAP engine
//! once the domain controller, the base DN, the schema and the selected groups are known.
//!
//! Before each read (and before the first logon, then every [`PREPARED_FOR`]) the connector
//! *prepares*: it finds the domain controllers (the `server` setting, else the SRV records
//! `_ldap._tcp.dc._msdcs.<domain>` from `dns_server`, `ROSTER_DNS_SERVER` or the system's resolver,
//! tried in priority/weight order until one answers), reads the rootDSE (the base DN defaults to
//! `defaultNamingContext`; a mismatch with the configured domain is reported), looks in the schema for
//! `msExchHideFromAddressLists` (without it the "visible in address lists" filter has no effect, and the
//! preview says so instead of sending a filter on an unknown attribute), and resolves the selected
//! groups to their DNs (a missing one fails the read). The result is an [`LdapEngineConfig`] with:
//!
//! * the filter `(&(objectCategory=person)(objectClass=user)…)` plus, as selected, `(|(mail=*)
//!   (proxyAddresses=smtp:*))`, `(!(userAccountControl:1.2.840.113556.1.4.803:=2))`,
//!   `(!(msExchHideFromAddressLists=TRUE))` and `(|(memberOf:1.2.840.113556.1.4.1941:=<group DN>)…)`
//!   (members through nested groups);
//! * `sAMAccountName`, `displayName` else `cn`, the SMTP addresses, and `objectGUID` as the id
//!   (`AttributeMap::active_directory`);
//! * continuation references (Configuration, DomainDnsZones, ForestDnsZones in a search from the domain
//!   root) skipped and counted: subdomains and trusts are not supported (the seed);
//! * StartTLS before the bind with `protocol = "ldap"`, TLS from the start on 636 with `"ldaps"`.
//!
//! Logons are the engine's search-then-bind with these filters, so a user outside them (disabled, not in
//! a selected group) can't log on; Active Directory's reason for a refused bind (`data 52e`, `775`…) goes
//! to the log in words, the user sees the same answer for all of them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ldap3::Scope;
use roster_core::directory::{
    ActiveDirectorySettings, AdAuthentication, AdProtocol, DirectoryKind, Encryption, Secret,
    parse_dns_server,
};
use roster_core::filter::{LdapFilter, escape_value};
use rustls::ClientConfig;
use tokio::sync::Mutex;

use crate::connector::{
    AccountCheck, Changes, Connector, DirectoryListing, DirectoryRead, DirectoryReader,
    ListedDomain, ListedGroup, PasswordChecker, ReadProgress,
};
use crate::error::DirectoryError;
use crate::ldap_engine::{
    LdapEngine, LdapEngineConfig, Lookup, ReferencePolicy, ServiceAccount, Values, first_text,
};
use crate::logon::{LogonOutcome, LogonSubject};
use crate::mapping::AttributeMap;
use crate::tls;

mod incremental;

/// How long a preparation serves logons before it is made again.
const PREPARED_FOR: Duration = Duration::from_secs(600);
/// The OID of LDAP_MATCHING_RULE_IN_CHAIN: membership through nested groups.
const IN_CHAIN: &str = "1.2.840.113556.1.4.1941";
/// The environment variable that names the DNS server to ask when the settings don't.
pub const DNS_SERVER_VARIABLE: &str = "ROSTER_DNS_SERVER";

pub(crate) fn connector(settings: &ActiveDirectorySettings) -> Result<Connector, DirectoryError> {
    use roster_core::directory::TypeSettings;
    settings.validate()?;
    let account = match settings.authentication {
        AdAuthentication::Password => match &settings.password {
            Some(p) if !p.is_empty() => ServiceLogon::Password(p.clone()),
            // An empty password would be an anonymous bind, which Active Directory accepts.
            _ => {
                return Err(DirectoryError::settings(
                    "password",
                    "give the service account's password; an empty password would be an anonymous bind",
                ));
            }
        },
        AdAuthentication::Kerberos => {
            let Some(keytab) = &settings.keytab else {
                return Err(DirectoryError::settings(
                    "keytab",
                    "give the keytab of the service principal (an absolute path)",
                ));
            };
            // Reads the keytab now (no network): a missing file or principal shows when the settings
            // are saved, not at the first run.
            let principal = settings.principal.trim();
            ServiceLogon::Kerberos(
                roster_kerberos::ServiceCredentials::from_keytab(keytab, principal).map_err(
                    |e| DirectoryError::settings("keytab", format!("{e}; {}", e.hint())),
                )?,
            )
        }
    };
    let dns_server = match settings.dns_server.trim() {
        "" => match std::env::var(DNS_SERVER_VARIABLE) {
            Ok(v) if !v.trim().is_empty() => Some(parse_dns_server(&v).map_err(|e| {
                DirectoryError::settings(
                    "dns_server",
                    format!("{DNS_SERVER_VARIABLE}: {}", e.message),
                )
            })?),
            _ => None,
        },
        given => Some(parse_dns_server(given)?),
    };
    let tls = tls::client_config(
        settings.ca_file.as_deref(),
        settings.ignore_certificate_errors,
    )?;
    let ad = Arc::new(ActiveDirectory {
        settings: settings.clone(),
        account,
        dns_server,
        tls,
        prepared: Mutex::new(None),
        range_request: None,
    });
    Ok(Connector {
        kind: DirectoryKind::ActiveDirectory,
        reader: ad.clone(),
        passwords: Some(ad.clone()),
        listing: Some(ad.clone()),
        accounts: Some(ad),
    })
}

/// How the service account binds, checked.
#[derive(Clone)]
enum ServiceLogon {
    Password(Secret),
    Kerberos(roster_kerberos::ServiceCredentials),
}

pub(crate) struct ActiveDirectory {
    settings: ActiveDirectorySettings,
    account: ServiceLogon,
    dns_server: Option<SocketAddr>,
    tls: Arc<ClientConfig>,
    /// The last preparation and when it was made, for logons.
    prepared: Mutex<Option<(Instant, Arc<Prepared>)>>,
    /// Tests only: read this attribute in ranges of this size (see `LdapEngineConfig::range_request`).
    range_request: Option<(String, u32)>,
}

impl std::fmt::Debug for ActiveDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveDirectory")
            .field("domain", &self.settings.domain_name())
            .field("server", &self.settings.server)
            .field("protocol", &self.settings.protocol)
            .field("username", &self.settings.username)
            .finish_non_exhaustive()
    }
}

/// What a preparation found: the engine configured for it, lines for the report, and what an
/// incremental read needs.
struct Prepared {
    engine: LdapEngine,
    notes: Vec<String>,
    changes: incremental::Setup,
}

/// One domain controller to try.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Candidate {
    host: String,
    /// Its addresses, from `dns_server` when one is given (empty: the system resolves `host`).
    addresses: Vec<std::net::IpAddr>,
    /// How it was found, for the report.
    found: String,
}

impl ActiveDirectory {
    fn encryption(&self) -> Encryption {
        match self.settings.protocol {
            AdProtocol::Ldap => Encryption::Starttls,
            AdProtocol::Ldaps => Encryption::Ssl,
        }
    }

    /// Kerberos binds need plain LDAP: the configured port with `protocol = "ldap"`, else 389.
    fn kerberos_port(&self) -> u16 {
        match self.settings.protocol {
            AdProtocol::Ldap => self.settings.port(),
            AdProtocol::Ldaps => AdProtocol::Ldap.port(),
        }
    }

    /// The engine for `candidate` with `base_dn` and `filter`.
    fn engine(&self, candidate: &Candidate, base_dn: String, filter: LdapFilter) -> LdapEngine {
        LdapEngine::new(LdapEngineConfig {
            server: candidate.host.clone(),
            port: self.settings.port(),
            encryption: self.encryption(),
            tls: Some(self.tls.clone()),
            service_account: match &self.account {
                ServiceLogon::Password(password) => ServiceAccount::Password {
                    bind_dn: self.settings.username.trim().to_owned(),
                    account_key: "username",
                    password: password.clone(),
                },
                ServiceLogon::Kerberos(credentials) => ServiceAccount::Kerberos {
                    credentials: credentials.clone(),
                    realm: roster_kerberos::realm_of(credentials.principal())
                        .unwrap_or_default()
                        .to_owned(),
                    port: self.kerberos_port(),
                },
            },
            base_dn,
            filter,
            attributes: AttributeMap::active_directory(),
            page_size: self.settings.page_size(),
            timeout_seconds: self.settings.timeout_seconds(),
            references: ReferencePolicy::SkipAndCount,
            range_request: self.range_request.clone(),
            connect_to: candidate.addresses.clone(),
        })
    }

    /// The domain controllers to try, in order.
    async fn candidates(&self) -> Result<Vec<Candidate>, DirectoryError> {
        let server = self.settings.server.trim();
        if !server.is_empty() {
            return Ok(vec![Candidate {
                host: server.to_owned(),
                addresses: self.addresses_of(server).await?,
                found: "given in `server`".into(),
            }]);
        }
        let name = format!("_ldap._tcp.dc._msdcs.{}.", self.settings.domain_name());
        let asked = match self.dns_server {
            Some(addr) => format!("the DNS server {addr}"),
            None => "the system's DNS resolver".to_owned(),
        };
        let records = crate::dns::srv(&name, self.dns_server)
            .await
            .map_err(|detail| DirectoryError::Discovery {
                name: name.clone(),
                asked: asked.clone(),
                detail,
            })?;
        if records.is_empty() {
            return Err(DirectoryError::Discovery {
                name,
                asked,
                detail: "no SRV records".into(),
            });
        }
        let mut candidates = Vec::with_capacity(records.len());
        for r in records {
            candidates.push(Candidate {
                found: format!("found through DNS ({name} from {asked})"),
                addresses: self.addresses_of(&r.target).await?,
                host: r.target,
            });
        }
        Ok(candidates)
    }

    /// A host's addresses from the DNS server in the settings, which the system's resolver may not
    /// ask; empty without one (the system resolves the host when connecting).
    async fn addresses_of(&self, host: &str) -> Result<Vec<std::net::IpAddr>, DirectoryError> {
        let Some(dns) = self.dns_server else {
            return Ok(Vec::new());
        };
        let found =
            crate::dns::addresses(host, dns)
                .await
                .map_err(|detail| DirectoryError::Discovery {
                    name: host.to_owned(),
                    asked: format!("the DNS server {dns}"),
                    detail,
                })?;
        if found.is_empty() {
            return Err(DirectoryError::Discovery {
                name: host.to_owned(),
                asked: format!("the DNS server {dns}"),
                detail: "no address".into(),
            });
        }
        Ok(found)
    }

    /// The first domain controller that answers, with an engine bound to it for small searches, and
    /// its rootDSE.
    async fn connect(&self) -> Result<(Candidate, LdapEngine, Values), DirectoryError> {
        let candidates = self.candidates().await?;
        let mut last_error = None;
        for candidate in &candidates {
            let probe = self.engine(candidate, String::new(), any_object()?);
            match probe.root_dse().await {
                Ok(root) => return Ok((candidate.clone(), probe, root)),
                // Only a domain controller that can't be reached is passed over: a refused password
                // or an untrusted certificate would be the same on the next one.
                Err(
                    e @ (DirectoryError::Connect { .. }
                    | DirectoryError::Timeout { .. }
                    | DirectoryError::Disconnected { .. }),
                ) if candidates.len() > 1 => {
                    tracing::info!(dc = %candidate.host, error = %e, "a domain controller did not answer; trying the next");
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or(DirectoryError::Discovery {
            name: self.settings.domain_name(),
            asked: "DNS".into(),
            detail: "no domain controller to try".into(),
        }))
    }

    /// Finds a domain controller that answers and everything a read needs from it (see the module
    /// comment).
    async fn prepare(&self) -> Result<Arc<Prepared>, DirectoryError> {
        let (candidate, probe, root) = self.connect().await?;
        let mut notes = vec![format!(
            "Active Directory: domain controller {} ({}), {}",
            candidate.host,
            candidate.found,
            match self.settings.protocol {
                AdProtocol::Ldap => format!("LDAP with StartTLS on port {}", self.settings.port()),
                AdProtocol::Ldaps => format!("LDAPS on port {}", self.settings.port()),
            }
        )];
        if let ServiceLogon::Kerberos(credentials) = &self.account {
            notes.push(format!(
                "Active Directory: the service account {} bound with Kerberos (keytab {}) on plain LDAP port {}, the traffic encrypted by Kerberos; user passwords are checked over {}",
                credentials.principal(),
                credentials.keytab().display(),
                self.kerberos_port(),
                match self.settings.protocol {
                    AdProtocol::Ldap => "StartTLS",
                    AdProtocol::Ldaps => "LDAPS",
                }
            ));
        }
        let default_nc = first_text(&root, "defaultNamingContext").unwrap_or_default();
        let dirsync_offered = lookup_any(&root, "supportedControl", crate::dirsync::DIRSYNC_OID);
        let schema_nc = first_text(&root, "schemaNamingContext").unwrap_or_default();
        if !default_nc.is_empty() && !default_nc.eq_ignore_ascii_case(&self.settings.domain_dn()) {
            notes.push(format!(
                "Active Directory: the domain controller's domain is {default_nc}, not {} as `domain` says; check `domain` and `server`",
                self.settings.domain_dn()
            ));
        }
        let base_dn = match self.settings.base_dn.trim() {
            "" if default_nc.is_empty() => {
                return Err(DirectoryError::settings(
                    "base_dn",
                    format!(
                        "{} does not publish a defaultNamingContext; give `base_dn` (e.g. {})",
                        candidate.host,
                        self.settings.domain_dn()
                    ),
                ));
            }
            "" => default_nc.clone(),
            given => given.to_owned(),
        };
        let mut clauses = vec!["(objectCategory=person)(objectClass=user)".to_owned()];
        // The attributes the filter looks at, for DirSync (with the mapping's).
        let mut filtered_on = vec!["userAccountControl"];
        if self.settings.exchange_users_only {
            clauses.push("(|(mail=*)(proxyAddresses=smtp:*))".into());
        }
        if self.settings.enabled_users_only {
            clauses.push("(!(userAccountControl:1.2.840.113556.1.4.803:=2))".into());
        }
        if self.settings.visible_in_address_lists_only {
            let known = !schema_nc.is_empty()
                && !probe
                    .search_small(
                        &schema_nc,
                        Scope::OneLevel,
                        "(lDAPDisplayName=msExchHideFromAddressLists)",
                        &["lDAPDisplayName"],
                        1,
                    )
                    .await?
                    .is_empty();
            if known {
                clauses.push("(!(msExchHideFromAddressLists=TRUE))".into());
                filtered_on.push("msExchHideFromAddressLists");
            } else {
                notes.push("Active Directory: the schema has no msExchHideFromAddressLists (no Exchange), so \"users visible in address lists only\" hides nobody".into());
            }
        }
        let groups = self.settings.selected_groups();
        if !groups.is_empty() {
            let mut members = String::from("(|");
            for group in &groups {
                let dn = self.group_dn(&probe, &base_dn, &default_nc, group).await?;
                members.push_str(&format!("(memberOf:{IN_CHAIN}:={})", escape_value(&dn)));
            }
            members.push(')');
            clauses.push(members);
        }
        let filter = LdapFilter::parse(&format!("(&{})", clauses.concat())).map_err(|e| {
            DirectoryError::Protocol {
                message: format!("the filter made from the settings doesn't parse ({e})"),
            }
        })?;
        notes.push(format!(
            "Active Directory: base DN {base_dn}; {}",
            self.settings.filters_in_words()
        ));
        let changes = incremental::Setup {
            dirsync_offered,
            domain_root: default_nc,
            // Without dsServiceName (not seen in practice), the host stands for the DC.
            dc: first_text(&root, "dsServiceName")
                .filter(|d| !d.trim().is_empty())
                .unwrap_or_else(|| format!("host {}", candidate.host)),
            dc_host: candidate.host.clone(),
            base_dn: base_dn.clone(),
            filter: filter.as_str().to_owned(),
            filtered_on,
            groups_selected: !groups.is_empty(),
            dc_time: first_text(&root, "currentTime")
                .and_then(|t| incremental::generalized_time_seconds(&t)),
        };
        Ok(Arc::new(Prepared {
            engine: self.engine(&candidate, base_dn, filter),
            notes,
            changes,
        }))
    }

    /// The DN of a selected group, given by DN or by name.
    async fn group_dn(
        &self,
        probe: &LdapEngine,
        base_dn: &str,
        domain_root: &str,
        group: &str,
    ) -> Result<String, DirectoryError> {
        let missing = |why: &str| {
            DirectoryError::settings(
                "groups",
                format!(
                    "the group {group:?} {why}; check `groups` (`roster directory groups` lists the domain's groups)"
                ),
            )
        };
        let found = if group.contains('=') {
            probe
                .search_small(group, Scope::Base, "(objectClass=group)", &["1.1"], 2)
                .await?
        } else {
            let filter = format!(
                "(&(objectClass=group)(|(sAMAccountName={0})(cn={0})))",
                escape_value(group)
            );
            let root = if domain_root.is_empty() {
                base_dn
            } else {
                domain_root
            };
            probe
                .search_small(root, Scope::Subtree, &filter, &["1.1"], 2)
                .await?
        };
        match found.as_slice() {
            [] => Err(missing("does not exist in the domain")),
            [(dn, _)] => Ok(dn.clone()),
            _ => Err(missing("names more than one group; give its DN")),
        }
    }

    /// The preparation logons use: the last one while it is fresh, else a new one.
    async fn prepared(&self) -> Result<Arc<Prepared>, DirectoryError> {
        let mut slot = self.prepared.lock().await;
        if let Some((at, prepared)) = slot.as_ref()
            && at.elapsed() < PREPARED_FOR
        {
            return Ok(prepared.clone());
        }
        let prepared = self.prepare().await?;
        *slot = Some((Instant::now(), prepared.clone()));
        Ok(prepared)
    }
}

/// Whether `name` has the text value `wanted` (case-insensitively: OIDs and names).
fn lookup_any(values: &Values, name: &str, wanted: &str) -> bool {
    values
        .iter()
        .filter(|(attr, _)| attr.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.iter())
        .any(|v| v.eq_ignore_ascii_case(wanted.as_bytes()))
}

fn any_object() -> Result<LdapFilter, DirectoryError> {
    LdapFilter::parse("(objectClass=*)").map_err(|e| DirectoryError::Protocol {
        message: e.to_string(),
    })
}

#[async_trait::async_trait]
impl DirectoryReader for ActiveDirectory {
    async fn read_entries(
        &self,
        progress: &dyn ReadProgress,
    ) -> Result<DirectoryRead, DirectoryError> {
        // A read always prepares again: groups, the schema or the domain controller may have changed.
        let prepared = self.prepare().await?;
        *self.prepared.lock().await = Some((Instant::now(), prepared.clone()));
        let mut read = prepared.engine.read_entries(progress).await?;
        let mut notes = prepared.notes.clone();
        if read.references_skipped > 0 {
            notes.push(format!(
                "Active Directory: {} continuation reference(s) to other naming contexts skipped (subdomains and trusts are not read)",
                read.references_skipped
            ));
        }
        notes.append(&mut read.notes);
        read.notes = notes;
        Ok(read)
    }

    async fn check_connection(&self) -> Result<(), DirectoryError> {
        self.prepare().await.map(drop)
    }

    /// DirSync from the domain's root, then every changed object read again within the scope (see
    /// `incremental`).
    async fn read_changes(&self, cookie: Option<&[u8]>) -> Result<Changes, DirectoryError> {
        let prepared = self.prepare().await?;
        *self.prepared.lock().await = Some((Instant::now(), prepared.clone()));
        incremental::read_changes(&prepared.engine, &prepared.changes, cookie).await
    }

    async fn read_user(&self, subject: &LogonSubject<'_>) -> Result<DirectoryRead, DirectoryError> {
        let prepared = self.prepare().await?;
        *self.prepared.lock().await = Some((Instant::now(), prepared.clone()));
        let mut read = prepared.engine.read_user(subject).await?;
        let mut notes = prepared.notes.clone();
        notes.append(&mut read.notes);
        read.notes = notes;
        Ok(read)
    }
}

#[async_trait::async_trait]
impl PasswordChecker for ActiveDirectory {
    async fn authenticate(
        &self,
        subject: &LogonSubject<'_>,
        password: &Secret,
    ) -> Result<LogonOutcome, DirectoryError> {
        // Before any network call, as the engine does: an empty password is an anonymous bind.
        if password.is_empty() {
            return Ok(LogonOutcome::Rejected(
                crate::logon::RejectReason::EmptyPassword,
            ));
        }
        let prepared = self.prepared().await?;
        prepared.engine.authenticate(subject, password).await
    }
}

#[async_trait::async_trait]
impl AccountCheck for ActiveDirectory {
    fn realm(&self) -> String {
        self.settings.domain_name().to_ascii_uppercase()
    }

    async fn account_usable(
        &self,
        subject: &LogonSubject<'_>,
    ) -> Result<LogonOutcome, DirectoryError> {
        use crate::logon::RejectReason;
        let prepared = self.prepared().await?;
        let dn = match prepared.engine.locate(subject).await? {
            Lookup::Found(dn) => dn,
            Lookup::NotFound => return Ok(LogonOutcome::Rejected(RejectReason::NotFound)),
            Lookup::Ambiguous => return Ok(LogonOutcome::Rejected(RejectReason::Ambiguous)),
        };
        // Whatever `enabled_users_only` says about the read: a disabled account doesn't log on. (The
        // KDC stops issuing tickets to it, but one issued before stays valid for hours.)
        let enabled = prepared
            .engine
            .search_small(
                &dn,
                Scope::Base,
                "(!(userAccountControl:1.2.840.113556.1.4.803:=2))",
                &["1.1"],
                1,
            )
            .await?;
        Ok(if enabled.is_empty() {
            LogonOutcome::Rejected(RejectReason::DirectoryRefused(
                "account disabled in Active Directory",
            ))
        } else {
            LogonOutcome::Accepted { dn }
        })
    }
}

#[async_trait::async_trait]
impl DirectoryListing for ActiveDirectory {
    async fn domains(&self) -> Result<Vec<ListedDomain>, DirectoryError> {
        Err(DirectoryError::ListingUnsupported {
            kind: DirectoryKind::ActiveDirectory,
            what: "domains",
        })
    }

    /// The domain's groups (name and DN), for "Sync only these groups".
    async fn groups(&self) -> Result<Vec<ListedGroup>, DirectoryError> {
        // Not the full preparation: a selected group that is gone must not hide the list to choose from.
        let (_, probe, root_dse) = self.connect().await?;
        let root = match self.settings.base_dn.trim() {
            "" => first_text(&root_dse, "defaultNamingContext").unwrap_or_default(),
            given => given.to_owned(),
        };
        let mut groups: Vec<ListedGroup> = probe
            .search_small(
                &root,
                Scope::Subtree,
                "(objectClass=group)",
                &["cn", "sAMAccountName"],
                100_000,
            )
            .await?
            .into_iter()
            .map(|(dn, values)| ListedGroup {
                name: first_text(&values, "sAMAccountName")
                    .or_else(|| first_text(&values, "cn"))
                    .unwrap_or_default(),
                address: dn,
            })
            .collect();
        groups.sort_by_key(|g| g.name.to_lowercase());
        Ok(groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connector::NoProgress;
    use roster_testkit::samba::{ADMIN_PASSWORD, ADMIN_UPN, DNS_DOMAIN};
    use roster_testkit::{AdUser, SambaDc};

    fn ou_settings(
        dc: &SambaDc,
        base_dn: &str,
        user: &str,
        password: &str,
    ) -> ActiveDirectorySettings {
        ActiveDirectorySettings {
            domain: DNS_DOMAIN.into(),
            server: dc.ip().to_string(),
            dns_server: String::new(),
            port: None,
            protocol: AdProtocol::Ldaps,
            ignore_certificate_errors: false,
            ca_file: Some(dc.ca_cert_path().to_owned()),
            base_dn: base_dn.to_owned(),
            authentication: AdAuthentication::Password,
            username: user.into(),
            password: Some(Secret::new(password)),
            keytab: None,
            principal: String::new(),
            exchange_users_only: true,
            enabled_users_only: true,
            visible_in_address_lists_only: false,
            groups: vec![],
            delete_users: false,
            guard: Default::default(),
            schedule: Default::default(),
            page_size: None,
            timeout_seconds: None,
        }
    }

    /// DirSync as Samba answers it to a service account that is no administrator (issue 26): only with
    /// the object-security flag, only from the domain's root; it reads changes, but no tombstones, so
    /// deletions come from the ids in scope; a cookie the DC can't decode, or one of another DC, means a
    /// full read.
    #[tokio::test]
    async fn dirsync_for_a_service_account_without_rights() {
        use crate::connector::Changes;
        use crate::dirsync::{INCREMENTAL_VALUES, OBJECT_SECURITY, StoredCookie};
        use crate::ldap_engine::DirSyncAnswer;
        let dc = tokio::task::spawn_blocking(SambaDc::shared)
            .await
            .unwrap()
            .unwrap();
        let ou = dc.new_ou("dirsync-svc").await.unwrap();
        let name = dc.unique_name("dsync");
        let svc = dc
            .add_service_account(&name, "Svc-Password-1", &[])
            .await
            .unwrap();
        let user = |n: &str| {
            let mut u = AdUser::new(&format!("{n}.{name}"));
            u.mail = Some(format!("{n}.{name}@example.com"));
            u
        };
        let a = ou.add_user(&user("a")).await.unwrap();
        ou.add_user(&user("b")).await.unwrap();
        let settings = ou_settings(dc, ou.dn(), &svc.user_principal_name, &svc.password);
        let connector = connector(&settings).unwrap();
        let Changes::Read(now) = connector.reader.read_changes(None).await.unwrap() else {
            panic!("Samba offers DirSync");
        };
        assert!(now.changed.is_empty() && now.deleted.is_empty());
        let full = connector.reader.read_entries(&NoProgress).await.unwrap();
        assert_eq!(full.entries.len(), 2);
        let id_of = |n: &str| {
            full.entries
                .iter()
                .find(|e| e.name.as_deref() == Some(format!("{n}.{name}").as_str()))
                .unwrap()
                .id
                .clone()
        };
        let (a_id, b_id) = (id_of("a"), id_of("b"));

        // The raw control, as the service account: Samba's answers without the flag and off the root.
        let ad = ActiveDirectory {
            settings: settings.clone(),
            account: ServiceLogon::Password(Secret::new(&svc.password)),
            dns_server: None,
            tls: crate::tls::client_config(Some(dc.ca_cert_path()), false).unwrap(),
            prepared: Mutex::new(None),
            range_request: None,
        };
        let prepared = ad.prepare().await.unwrap();
        let domain_root = roster_testkit::samba::BASE_DN;
        let refused = |answer: DirSyncAnswer| match answer {
            DirSyncAnswer::Refused { rc, message } => (rc, message),
            DirSyncAnswer::Changes { .. } => panic!("accepted"),
        };
        let (rc, message) = refused(
            prepared
                .engine
                .dirsync(
                    domain_root,
                    "(objectClass=*)",
                    &["objectGUID"],
                    INCREMENTAL_VALUES,
                    &[],
                )
                .await
                .unwrap(),
        );
        assert_eq!(rc, 50, "no replication right: {message}");
        let (rc, message) = refused(
            prepared
                .engine
                .dirsync(
                    ou.dn(),
                    "(objectClass=*)",
                    &["objectGUID"],
                    OBJECT_SECURITY,
                    &[],
                )
                .await
                .unwrap(),
        );
        assert_eq!(rc, 53, "not a naming context's root: {message}");
        // Not critical: refused too (the control must be critical, MS-ADTS and Samba agree).
        let not_critical = ldap3::controls::RawControl {
            ctype: crate::dirsync::DIRSYNC_OID.into(),
            crit: false,
            val: Some(crate::dirsync::encode_request(OBJECT_SECURITY, 0, &[])),
        };
        let ldap3::SearchResult(_, result) = ou
            .ldap()
            .with_controls(vec![not_critical])
            .search(
                domain_root,
                Scope::Subtree,
                "(objectClass=*)",
                vec!["objectGUID"],
            )
            .await
            .unwrap();
        assert_eq!(result.rc, 1, "operationsError: {}", result.text);

        // Changes: c added, b's address changed, a deleted.
        ou.add_user(&user("c")).await.unwrap();
        let b_dn = format!("CN=b.{name},{}", ou.dn());
        ou.replace(&b_dn, "mail", &[&format!("bee.{name}@example.com")])
            .await
            .unwrap();
        ou.delete(&a).await.unwrap();
        let Changes::Read(changes) = connector
            .reader
            .read_changes(Some(&now.cookie))
            .await
            .unwrap()
        else {
            panic!("changes since the cookie");
        };
        let mut changed: Vec<&str> = changes
            .changed
            .iter()
            .map(|e| e.name.as_deref().unwrap())
            .collect();
        changed.sort();
        assert_eq!(changed, [format!("b.{name}"), format!("c.{name}")]);
        assert!(
            changes.how.contains("can't see deleted objects"),
            "{}",
            changes.how
        );
        let present = changes.present.as_ref().expect("the ids in scope");
        assert!(
            present.contains(&b_id) && !present.contains(&a_id),
            "{present:?}"
        );
        assert!(!changes.deleted.contains(&b_id));

        // Nothing since: no changes in this OU.
        let Changes::Read(again) = connector
            .reader
            .read_changes(Some(&changes.cookie))
            .await
            .unwrap()
        else {
            panic!("changes since the cookie");
        };
        assert!(
            again
                .changed
                .iter()
                .all(|e| !e.name.as_deref().unwrap_or_default().ends_with(&name)),
            "{:?}",
            again.changed
        );

        // A cookie Samba can't decode, and a cookie of another domain controller: full reads.
        let mut stored = StoredCookie::decode(&again.cookie).unwrap();
        stored.server = b"garbage".to_vec();
        let answer = connector
            .reader
            .read_changes(Some(&stored.encode()))
            .await
            .unwrap();
        assert!(
            matches!(&answer, Changes::RefreshRequired(why) if why.contains("result code 12")),
            "{answer:?}"
        );
        let mut stored = StoredCookie::decode(&again.cookie).unwrap();
        stored.dc = "CN=NTDS Settings,CN=DC2,CN=Servers".into();
        let answer = connector
            .reader
            .read_changes(Some(&stored.encode()))
            .await
            .unwrap();
        assert!(
            matches!(&answer, Changes::RefreshRequired(why) if why.contains("another domain controller")),
            "{answer:?}"
        );
        let answer = connector
            .reader
            .read_changes(Some(b"not ours"))
            .await
            .unwrap();
        assert!(matches!(answer, Changes::RefreshRequired(_)), "{answer:?}");
    }

    /// Active Directory sends an attribute with more than 1500 values in ranges; Samba never does by
    /// itself, so the read asks for ranges of 2 and must still see every value.
    #[tokio::test]
    async fn attributes_sent_in_ranges_are_read_to_the_end() {
        let dc = tokio::task::spawn_blocking(SambaDc::shared)
            .await
            .unwrap()
            .unwrap();
        let ou = dc.new_ou("ranges").await.unwrap();
        let mut user = AdUser::new("ranged.u1");
        user.mail = Some("ranged@example.com".into());
        user.proxy_addresses = (1..=7)
            .map(|i| format!("smtp:r{i}@example.com"))
            .chain(std::iter::once("SMTP:primary@example.com".to_owned()))
            .collect();
        let dn = ou.add_user(&user).await.unwrap();
        // Samba does answer an explicit range with a part, so the loop below is exercised.
        let ldap3::SearchResult(found, _) = ou
            .ldap()
            .search(
                &dn,
                Scope::Base,
                "(objectClass=*)",
                vec!["proxyAddresses;range=0-1"],
            )
            .await
            .unwrap();
        let entry = ldap3::SearchEntry::construct(found.into_iter().next().unwrap());
        assert!(
            entry.attrs.contains_key("proxyAddresses;range=0-1"),
            "{:?}",
            entry.attrs
        );
        let settings = ou_settings(dc, ou.dn(), ADMIN_UPN, ADMIN_PASSWORD);
        let connector = connector(&settings).unwrap();
        let plain = connector.reader.read_entries(&NoProgress).await.unwrap();
        let all = plain.entries[0].emails.clone().unwrap();
        assert_eq!(all.len(), 9, "{all:?}");
        assert_eq!(all[0], "primary@example.com");

        // The same read, asking for proxyAddresses two values at a time.
        let ad = ActiveDirectory {
            settings: settings.clone(),
            account: ServiceLogon::Password(Secret::new(ADMIN_PASSWORD)),
            dns_server: None,
            tls: crate::tls::client_config(Some(dc.ca_cert_path()), false).unwrap(),
            prepared: Mutex::new(None),
            range_request: Some(("proxyAddresses".into(), 2)),
        };
        let ranged = ad.read_entries(&NoProgress).await.unwrap();
        assert_eq!(ranged.entries[0].emails.clone().unwrap(), all);
    }
}
