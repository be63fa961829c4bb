//! The LDAP protocol work that generic LDAP and Active Directory share: a paged subtree read with the
//! service account, and search-then-bind logons. Each type maps its settings into an
//! [`LdapEngineConfig`]; nothing here reads settings.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::time::Duration;

use ldap3::asn1::StructureTag;
use ldap3::controls::RawControl;
use ldap3::{
    Ldap, LdapConnAsync, LdapConnSettings, LdapError, LdapResult, Scope, SearchOptions,
    SearchResult, SearchStream,
};
use roster_core::directory::{Encryption, Secret};
use roster_core::dn;
use roster_core::filter::{LdapFilter, escape_value};
use rustls::ClientConfig;
use tokio::sync::Mutex;

use crate::ber::{PAGED_RESULTS_OID, decode_paged_response, encode_paged_request};
use crate::connector::{
    ChangeRead, Changes, DirectoryRead, DirectoryReader, PasswordChecker, ReadProgress,
};
use crate::error::DirectoryError;
use crate::logon::{LogonOutcome, LogonSubject, RejectReason};
use crate::mapping::AttributeMap;
use crate::tls;

const READING: &str = "reading the users";
const BINDING: &str = "binding the service account";
const LOOKING_UP: &str = "looking up the user who logs on";
const CHECKING_PASSWORD: &str = "checking the user's password";

/// What a subtree read does with a search result reference (a pointer to another naming context).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReferencePolicy {
    /// Generic LDAP: fail, since users behind a reference would be missing from the read.
    Fail,
    /// Active Directory returns continuation references (to DomainDnsZones etc.) in every subtree
    /// search from a domain root: skip and count them.
    SkipAndCount,
}

/// Everything the engine needs, already checked: what generic LDAP and Active Directory settings map
/// into.
#[derive(Debug)]
pub(crate) struct LdapEngineConfig {
    /// Name or IP address (IPv6 without brackets).
    pub(crate) server: String,
    pub(crate) port: u16,
    pub(crate) encryption: Encryption,
    /// `None` exactly when `encryption` is `None`.
    pub(crate) tls: Option<Arc<ClientConfig>>,
    /// How the service account binds.
    pub(crate) service_account: ServiceAccount,
    pub(crate) base_dn: String,
    pub(crate) filter: LdapFilter,
    /// Which attributes hold what, and the connector's id policy.
    pub(crate) attributes: AttributeMap,
    pub(crate) page_size: u32,
    pub(crate) timeout_seconds: u32,
    pub(crate) references: ReferencePolicy,
    /// Tests only: ask for this attribute in ranges of this many values (`attr;range=0-<n-1>`), as
    /// Active Directory sends attributes with more than 1500 values (Samba never cuts them by itself).
    pub(crate) range_request: Option<(String, u32)>,
    /// Addresses to connect to instead of resolving `server` with the system's resolver (Active
    /// Directory: a domain controller found through a DNS server the system doesn't use). TLS still
    /// checks the certificate against `server`.
    pub(crate) connect_to: Vec<std::net::IpAddr>,
}

/// The service account and how it binds. User logons always use a simple bind with the user's
/// password, over `encryption`. (Debug is safe: `Secret` prints no secret.)
#[derive(Debug)]
pub(crate) enum ServiceAccount {
    /// A simple bind with a DN (Active Directory: also a UPN or `DOMAIN\user`) and password, over
    /// `encryption`.
    Password {
        bind_dn: String,
        /// The settings key that holds `bind_dn` (`bind_dn`, or Active Directory's `username`), for
        /// messages.
        account_key: &'static str,
        /// Never empty: checked by whoever builds the config (an empty one would be an anonymous bind).
        password: Secret,
    },
    /// Active Directory with a keytab: SASL GSSAPI on plain LDAP at `port`, the traffic encrypted by
    /// Kerberos (`sasl`). The server's principal is `ldap/<dnsHostName>@<realm>`, `dnsHostName` read
    /// from the rootDSE anonymously first, so that neither DNS nor /etc/hosts must know the DC's name.
    Kerberos {
        credentials: roster_kerberos::ServiceCredentials,
        realm: String,
        port: u16,
    },
}

impl ServiceAccount {
    /// Who binds, for logs.
    fn name(&self) -> &str {
        match self {
            ServiceAccount::Password { bind_dn, .. } => bind_dn,
            ServiceAccount::Kerberos { credentials, .. } => credentials.principal(),
        }
    }
}

pub(crate) struct LdapEngine {
    config: LdapEngineConfig,
    /// `ldap://host:port` or `ldaps://…`, from the config.
    url: String,
    /// The bound service connection, kept between reads and logons, with when it was last handed out.
    /// `Ldap` multiplexes operations, so callers work on clones; the lock only guards (re)connecting.
    service: Mutex<Option<(Ldap, std::time::Instant)>>,
    /// A kept service connection idle this long is asked a question before it is used again
    /// ([`IDLE_CHECK_AFTER`]; shorter in tests).
    idle_check_after: Duration,
    /// Set when a read was dropped before it finished (a client gone, a run cancelled): the service
    /// connection may still be mid-search, so the next operation starts on a fresh one. A flag, not the
    /// lock, because it is set from `Drop`, which can't wait for the lock.
    service_interrupted: AtomicBool,
    /// Kerberos only: the DC's LDAP service principal, once read from its rootDSE.
    ldap_principal: tokio::sync::OnceCell<String>,
    /// Whether the server offers RFC 4533 content synchronization, once read from its rootDSE.
    content_sync: tokio::sync::OnceCell<bool>,
    /// Idle connections for users' binds, kept for the next logon (at most [`IDLE_BIND_CONNECTIONS`], each
    /// for at most `idle_check_after`): a
    /// new connection per logon cost a TCP (and, with TLS, a handshake's) setup on both sides. They are
    /// used for nothing but binds, so whose identity a connection has after one doesn't matter.
    bind_connections: std::sync::Mutex<Vec<(Ldap, std::time::Instant)>>,
}

/// A kept service connection that has been idle this long is checked (an empty read of the root DSE,
/// answered in a round trip) before a read or logon uses it. A firewall or NAT that drops idle connections
/// silently leaves a connection that ldap3 still thinks open; without the check the next run or logon
/// would wait for the whole timeout and fail once.
const IDLE_CHECK_AFTER: Duration = Duration::from_secs(30);

/// The longest the idle check waits for its answer (at most the configured timeout).
const IDLE_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// Idle connections kept for users' binds: enough for the logons of a busy moment on a few cores, few
/// enough not to matter to the server.
const IDLE_BIND_CONNECTIONS: usize = 8;

/// Marks the service connection as interrupted unless the read it guards ran to the end.
struct ReadGuard<'a> {
    interrupted: &'a AtomicBool,
    finished: bool,
}

impl Drop for ReadGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.interrupted.store(true, AtomicOrdering::Relaxed);
        }
    }
}

impl std::fmt::Debug for LdapEngine {
    // By hand: the TLS config's Debug is long and the password must not appear (Secret hides itself,
    // but being explicit keeps it out even if the field type ever changes).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapEngine")
            .field("url", &self.url)
            .field("encryption", &self.config.encryption)
            .field("service_account", &self.config.service_account.name())
            .field("base_dn", &self.config.base_dn)
            .field("filter", &self.config.filter.as_str())
            .field("attributes", &self.config.attributes)
            .field("page_size", &self.config.page_size)
            .field("timeout_seconds", &self.config.timeout_seconds)
            .field("references", &self.config.references)
            .finish_non_exhaustive()
    }
}

/// What a logon search found.
pub(crate) enum Lookup {
    Found(String),
    NotFound,
    Ambiguous,
}

/// How many entries with the user's name a logon of a linked user looks at to find the linked one.
const LINKED_LOOKUP_LIMIT: i32 = 100;

/// One entry found by a logon search.
struct Candidate {
    dn: String,
    /// The entry's id as a sync maps it; only asked for when the subject is linked to an id.
    id: Option<String>,
}

struct Candidates {
    entries: Vec<Candidate>,
    /// The server had more matching entries than the search's size limit.
    truncated: bool,
}

impl LdapEngine {
    pub(crate) fn new(config: LdapEngineConfig) -> LdapEngine {
        let host = url_host(&config.server);
        let scheme = match config.encryption {
            Encryption::Ssl => "ldaps",
            Encryption::None | Encryption::Starttls => "ldap",
        };
        LdapEngine {
            url: format!("{scheme}://{host}:{}", config.port),
            config,
            service: Mutex::new(None),
            service_interrupted: AtomicBool::new(false),
            ldap_principal: tokio::sync::OnceCell::new(),
            content_sync: tokio::sync::OnceCell::new(),
            bind_connections: std::sync::Mutex::new(Vec::new()),
            idle_check_after: IDLE_CHECK_AFTER,
        }
    }

    /// "the LDAP server ldap.example.com:389", for messages.
    fn target(&self) -> String {
        format!(
            "the LDAP server {}:{}",
            self.config.server, self.config.port
        )
    }

    /// The one mapping of a search's non-zero result code to an error, for reads and logon look-ups.
    fn search_failed(&self, result: LdapResult, entries: u64) -> DirectoryError {
        match result.rc {
            3 => DirectoryError::TimeLimit { entries },
            4 => DirectoryError::SizeLimit { entries },
            10 => DirectoryError::Referral { refs: result.refs },
            32 => DirectoryError::NoSuchBase {
                base_dn: self.config.base_dn.clone(),
            },
            rc => DirectoryError::Search {
                rc,
                message: result.text,
            },
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.config.timeout_seconds))
    }

    /// A new, unbound connection with the configured encryption.
    async fn open(&self) -> Result<Ldap, DirectoryError> {
        let mut settings = LdapConnSettings::new().set_conn_timeout(self.timeout());
        if self.config.encryption == Encryption::Starttls {
            settings = settings.set_starttls(true);
        }
        if let Some(config) = &self.config.tls {
            settings = settings.set_config(config.clone());
        }
        if !self.config.connect_to.is_empty() {
            settings =
                settings.set_std_stream(ldap3::StdStream::Tcp(self.tcp_to_addresses().await?));
        }
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &self.url)
            .await
            .map_err(|e| self.connect_error(e))?;
        tokio::spawn(async move {
            // The connection ends when the last handle is dropped or the server goes away; the
            // operation that was waiting reports the failure, so this is only worth a debug line.
            if let Err(error) = conn.drive().await {
                tracing::debug!(%error, "LDAP connection ended with an error");
            }
        });
        Ok(ldap)
    }

    /// A TCP connection to the first of `connect_to` that answers.
    async fn tcp_to_addresses(&self) -> Result<std::net::TcpStream, DirectoryError> {
        self.tcp_to(self.config.port).await
    }

    /// A TCP connection to `port` of the first of `connect_to` that answers, or of `server` resolved by
    /// the system.
    async fn tcp_to(&self, port: u16) -> Result<std::net::TcpStream, DirectoryError> {
        if self.config.connect_to.is_empty() {
            let host = self.config.server.as_str();
            return match tokio::time::timeout(
                self.timeout(),
                tokio::net::TcpStream::connect((host, port)),
            )
            .await
            {
                Ok(Ok(stream)) => stream.into_std().map_err(|e| DirectoryError::Connect {
                    target: self.target(),
                    detail: e.to_string(),
                    hint: "try again",
                }),
                Ok(Err(e)) => Err(DirectoryError::Connect {
                    target: self.target(),
                    detail: format!("{host}:{port}: {e}"),
                    hint: "check the server name, the port and any firewall in between",
                }),
                Err(_) => Err(DirectoryError::Connect {
                    target: self.target(),
                    detail: format!(
                        "{host}:{port}: no answer within {} s",
                        self.config.timeout_seconds
                    ),
                    hint: "check the server name, the port and any firewall in between",
                }),
            };
        }
        let mut last = String::from("no address");
        for ip in &self.config.connect_to {
            let addr = std::net::SocketAddr::new(*ip, port);
            match tokio::time::timeout(self.timeout(), tokio::net::TcpStream::connect(addr)).await {
                Ok(Ok(stream)) => {
                    return stream.into_std().map_err(|e| DirectoryError::Connect {
                        target: self.target(),
                        detail: e.to_string(),
                        hint: "try again",
                    });
                }
                Ok(Err(e)) => last = format!("{addr}: {e}"),
                Err(_) => {
                    last = format!("{addr}: no answer within {} s", self.config.timeout_seconds);
                }
            }
        }
        Err(DirectoryError::Connect {
            target: self.target(),
            detail: last,
            hint: "check the server name, the port, the encryption setting and any firewall in between",
        })
    }

    fn connect_error(&self, error: LdapError) -> DirectoryError {
        let connect = |detail: String| DirectoryError::Connect {
            target: self.target(),
            detail,
            hint: "check the server name, the port, the encryption setting and any firewall in between",
        };
        let tls_error = |e: &rustls::Error| {
            if tls::certificate_problem(e) {
                DirectoryError::CertificateUntrusted {
                    target: self.target(),
                    detail: e.to_string(),
                }
            } else {
                DirectoryError::Tls {
                    target: self.target(),
                    detail: e.to_string(),
                    hint: "check that the port and `encryption` match the server (ldaps is usually port 636, StartTLS uses the LDAP port 389)",
                }
            }
        };
        match error {
            LdapError::Timeout { .. } if self.config.encryption == Encryption::Starttls => {
                connect(format!(
                    "no answer within {} s: the server may be unreachable, or this may be an LDAPS port (usually 636), which waits for a TLS handshake and never answers the StartTLS request; then set `encryption = \"ssl\"`",
                    self.config.timeout_seconds
                ))
            }
            LdapError::Timeout { .. } => connect(format!(
                "no answer within {} s",
                self.config.timeout_seconds
            )),
            LdapError::Rustls { source } => tls_error(&source),
            LdapError::Io { source } => {
                // tokio-rustls reports handshake failures as io::Errors wrapping the rustls error.
                if let Some(e) = source
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                {
                    return tls_error(e);
                }
                // Once TCP is up, a peer that hangs up or sends garbage during the handshake is most
                // likely not speaking TLS on this port (ldaps:// to port 389, say).
                let tls_in_use = self.config.encryption != Encryption::None;
                let handshake_failure = matches!(
                    source.kind(),
                    std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::InvalidData
                );
                if tls_in_use && handshake_failure {
                    DirectoryError::Tls {
                        target: self.target(),
                        detail: source.to_string(),
                        hint: "the server closed the connection during the TLS handshake: check that the port and `encryption` match the server (ldaps is usually port 636, StartTLS uses the LDAP port 389)",
                    }
                } else {
                    connect(source.to_string())
                }
            }
            LdapError::LdapResult { result } => DirectoryError::Tls {
                target: self.target(),
                detail: format!(
                    "the server refused StartTLS with result code {}: {}",
                    result.rc, result.text
                ),
                hint: "enable TLS on the server, or choose `encryption = \"ssl\"` or \"none\"",
            },
            LdapError::DNSName { source } => DirectoryError::settings(
                "server",
                format!(
                    "{:?} can't be used as a TLS server name ({source})",
                    self.config.server
                ),
            ),
            LdapError::UrlParsing { source } => DirectoryError::settings(
                "server",
                format!(
                    "{:?} is not a valid host name ({source})",
                    self.config.server
                ),
            ),
            other => connect(other.to_string()),
        }
    }

    /// Maps an ldap3 error from an operation on an open connection.
    fn op_error(&self, error: LdapError, operation: &'static str, entries: u64) -> DirectoryError {
        match error {
            LdapError::Timeout { .. } => DirectoryError::Timeout {
                target: self.target(),
                operation,
                seconds: self.config.timeout_seconds,
            },
            LdapError::FilterParsing => DirectoryError::settings(
                "filter",
                "the LDAP client can't encode this filter; simplify it or report it",
            ),
            other @ (LdapError::Io { .. }
            | LdapError::EndOfStream
            | LdapError::OpSend { .. }
            | LdapError::ResultRecv { .. }
            | LdapError::IdScrubSend { .. }
            | LdapError::MiscSend { .. }) => DirectoryError::Disconnected {
                target: self.target(),
                operation,
                entries,
                detail: other.to_string(),
                hint: if operation == BINDING && self.config.encryption != Encryption::Ssl {
                    "If the server expects TLS from the first byte on this port (LDAPS, usually port 636), set `encryption = \"ssl\"`; otherwise try again, and check the server's logs if it keeps happening"
                } else {
                    "Try again; if it keeps happening, check the server's logs"
                },
            },
            other => DirectoryError::Protocol {
                message: other.to_string(),
            },
        }
    }

    async fn open_service(&self) -> Result<Ldap, DirectoryError> {
        let (bind_dn, account_key, password) = match &self.config.service_account {
            ServiceAccount::Password {
                bind_dn,
                account_key,
                password,
            } => (bind_dn, *account_key, password),
            ServiceAccount::Kerberos {
                credentials,
                realm,
                port,
            } => return self.open_kerberos(credentials, realm, *port).await,
        };
        let mut ldap = self.open().await?;
        let result = ldap
            .with_timeout(self.timeout())
            .simple_bind(bind_dn, password.expose())
            .await
            .map_err(|e| self.op_error(e, BINDING, 0))?;
        if result.rc != 0 {
            let _ = ldap.unbind().await;
            return Err(DirectoryError::ServiceBind {
                bind_dn: bind_dn.clone(),
                account_key,
                rc: result.rc,
                message: result.text,
            });
        }
        Ok(ldap)
    }

    /// A service connection bound with Kerberos and encrypted by it (see `sasl`).
    async fn open_kerberos(
        &self,
        credentials: &roster_kerberos::ServiceCredentials,
        realm: &str,
        port: u16,
    ) -> Result<Ldap, DirectoryError> {
        let target = format!("the domain controller {}:{port}", self.config.server);
        let principal = self
            .ldap_principal
            .get_or_try_init(|| self.read_ldap_principal(realm, port, &target))
            .await?
            .clone();
        let tcp = tokio::net::TcpStream::from_std(self.tcp_to(port).await?).map_err(|e| {
            DirectoryError::Connect {
                target: target.clone(),
                detail: e.to_string(),
                hint: "try again",
            }
        })?;
        let clear =
            crate::sasl::bind(tcp, credentials.clone(), principal, self.timeout(), &target).await?;
        let settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout())
            .set_std_stream(ldap3::StdStream::Unix(clear));
        // `ldapi` only makes ldap3 take the Unix socket it is given: the relay behind it is the TCP
        // connection to the DC.
        let (conn, ldap) = LdapConnAsync::with_settings(settings, "ldapi://kerberos-relay")
            .await
            .map_err(|e| self.connect_error(e))?;
        tokio::spawn(async move {
            if let Err(error) = conn.drive().await {
                tracing::debug!(%error, "LDAP connection ended with an error");
            }
        });
        Ok(ldap)
    }

    /// `ldap/<dnsHostName>@<realm>`, with `dnsHostName` from the rootDSE read anonymously over plain
    /// LDAP (allowed by Active Directory and Samba for the rootDSE only).
    async fn read_ldap_principal(
        &self,
        realm: &str,
        port: u16,
        target: &str,
    ) -> Result<String, DirectoryError> {
        let tcp = self.tcp_to(port).await?;
        let settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout())
            .set_std_stream(ldap3::StdStream::Tcp(tcp));
        let url = format!("ldap://{}:{port}", url_host(&self.config.server));
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &url)
            .await
            .map_err(|e| self.connect_error(e))?;
        tokio::spawn(async move {
            let _ = conn.drive().await;
        });
        let SearchResult(entries, result) = ldap
            .with_timeout(self.timeout())
            .search("", Scope::Base, "(objectClass=*)", vec!["dnsHostName"])
            .await
            .map_err(|e| self.op_error(e, BINDING, 0))?;
        let _ = ldap.unbind().await;
        let host = entries
            .into_iter()
            .filter(|e| !e.is_ref() && !e.is_intermediate())
            .map(|e| parse_entry(e.0))
            .next()
            .transpose()?
            .and_then(|(_, values)| first_text(&values, "dnsHostName"));
        match (result.rc, host) {
            (0, Some(host)) if !host.trim().is_empty() => {
                Ok(format!("ldap/{}@{realm}", host.trim().to_ascii_lowercase()))
            }
            (rc, _) => Err(DirectoryError::Kerberos {
                target: target.to_owned(),
                detail: format!(
                    "the rootDSE read without a bind gave no dnsHostName (result code {rc}{})",
                    if result.text.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", result.text)
                    }
                ),
                hint: "Roster asks for a ticket for ldap/<dnsHostName>; check that `server` is an Active Directory domain controller and the port is plain LDAP's (389)",
            }),
        }
    }

    /// The bound service connection, (re)connecting when there is none or it was closed.
    async fn service(&self) -> Result<Ldap, DirectoryError> {
        let mut slot = self.service.lock().await;
        if self
            .service_interrupted
            .swap(false, AtomicOrdering::Relaxed)
        {
            *slot = None;
        }
        if let Some((ldap, used_at)) = slot.as_mut()
            && !ldap.is_closed()
        {
            let now = std::time::Instant::now();
            let idle = now.duration_since(*used_at);
            if idle < self.idle_check_after || self.still_answers(ldap).await {
                *used_at = now;
                return Ok(ldap.clone());
            }
            tracing::info!(
                target = %self.target(),
                idle_seconds = idle.as_secs(),
                "the kept connection didn't answer after being idle; opening a new one"
            );
        }
        *slot = None;
        let ldap = self.open_service().await?;
        *slot = Some((ldap.clone(), std::time::Instant::now()));
        Ok(ldap)
    }

    /// Whether a kept connection still gets answers: an empty read of the root DSE, with a short
    /// timeout.
    async fn still_answers(&self, ldap: &mut Ldap) -> bool {
        let wait = IDLE_CHECK_TIMEOUT.min(self.timeout());
        let answer = ldap
            .with_timeout(wait)
            .search("", Scope::Base, "(objectClass=*)", vec!["1.1"])
            .await;
        // Any answer, a refusal included, says the connection works; no answer says it doesn't.
        answer.is_ok()
    }

    /// Reads the rest of every attribute the server sent in a range (`proxyAddresses;range=0-1499`,
    /// Active Directory's MaxValRange), asking for `attr;range=<next>-*` until the server names the last
    /// range (`…-*`), and stores the values under the attribute's plain name.
    async fn complete_ranges(
        &self,
        ldap: &mut Ldap,
        dn: &str,
        values: &mut Values,
        entries: u64,
    ) -> Result<(), DirectoryError> {
        let ranged: Vec<(String, RangeEnd)> = values
            .iter()
            .filter_map(|(name, _)| range_of(name).map(|(base, _, end)| (base.to_owned(), end)))
            .collect();
        for (base, mut end) in ranged {
            let mut all: Vec<Vec<u8>> = Vec::new();
            // The values so far, from every part already received under a ranged name of `base`.
            values.retain_mut(|(name, vals)| {
                if range_of(name).is_some_and(|(b, _, _)| b.eq_ignore_ascii_case(&base)) {
                    all.append(vals);
                    false
                } else {
                    true
                }
            });
            let mut rounds = 0u32;
            while let RangeEnd::Upto(high) = end {
                rounds += 1;
                if rounds > MAX_RANGE_ROUNDS {
                    return Err(DirectoryError::Protocol {
                        message: format!(
                            "{base} of {dn} came in more than {MAX_RANGE_ROUNDS} ranges, so the read would never end"
                        ),
                    });
                }
                let next = high.saturating_add(1);
                let wanted = format!("{base};range={next}-*");
                let SearchResult(entries_found, result) = ldap
                    .with_timeout(self.timeout())
                    .search(dn, Scope::Base, "(objectClass=*)", vec![wanted.as_str()])
                    .await
                    .map_err(|e| self.op_error(e, READING, entries))?;
                if result.rc != 0 {
                    return Err(self.search_failed(result, entries));
                }
                let part = entries_found
                    .into_iter()
                    .filter(|e| !e.is_ref() && !e.is_intermediate())
                    .map(|e| parse_entry(e.0))
                    .next()
                    .transpose()?
                    .and_then(|(_, vals)| {
                        vals.into_iter()
                            .find_map(|(name, v)| match range_of(&name) {
                                Some((b, low, e)) if b.eq_ignore_ascii_case(&base) => {
                                    Some((low, e, v))
                                }
                                _ => None,
                            })
                    });
                let Some((low, part_end, mut part_values)) = part else {
                    return Err(DirectoryError::Protocol {
                        message: format!(
                            "asked for {wanted} of {dn}, the server sent no such range"
                        ),
                    });
                };
                if low != next {
                    return Err(DirectoryError::Protocol {
                        message: format!(
                            "asked for {wanted} of {dn}, the server sent the range from {low}"
                        ),
                    });
                }
                all.append(&mut part_values);
                end = part_end;
            }
            values.push((base, all));
        }
        Ok(())
    }

    /// The rootDSE, read with the service connection (which proves the settings bind).
    pub(crate) async fn root_dse(&self) -> Result<Values, DirectoryError> {
        let found = self
            .search_small(
                "",
                Scope::Base,
                "(objectClass=*)",
                &[
                    "defaultNamingContext",
                    "schemaNamingContext",
                    "dnsHostName",
                    "dsServiceName",
                    "supportedControl",
                    "currentTime",
                ],
                1,
            )
            .await?;
        Ok(found.into_iter().next().map(|(_, v)| v).unwrap_or_default())
    }

    /// A small search with the service connection (at most `limit` entries, references ignored): for
    /// what a connector looks up besides the read (the rootDSE, the schema, groups).
    pub(crate) async fn search_small(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        limit: i32,
    ) -> Result<Vec<(String, Values)>, DirectoryError> {
        self.search_small_as(LOOKING_UP, base, scope, filter, attrs, limit, Vec::new())
            .await
    }

    /// [`Self::search_small`] with request controls (Active Directory's Show Deleted, say), as part of
    /// a read (which a broken connection's message names).
    pub(crate) async fn search_small_with(
        &self,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        limit: i32,
        controls: Vec<RawControl>,
    ) -> Result<Vec<(String, Values)>, DirectoryError> {
        self.search_small_as(READING, base, scope, filter, attrs, limit, controls)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn search_small_as(
        &self,
        operation: &'static str,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[&str],
        limit: i32,
        controls: Vec<RawControl>,
    ) -> Result<Vec<(String, Values)>, DirectoryError> {
        let mut ldap = self.service().await?;
        if !controls.is_empty() {
            // Only then: an empty list would still be sent, as an empty controls element.
            ldap.with_controls(controls);
        }
        let SearchResult(entries, result) = ldap
            .with_search_options(SearchOptions::new().sizelimit(limit))
            .with_timeout(self.timeout())
            .search(base, scope, filter, attrs.to_vec())
            .await
            .map_err(|e| self.op_error(e, operation, 0))?;
        match result.rc {
            0 | 4 => {}
            32 => return Ok(Vec::new()),
            _ => return Err(self.search_failed(result, 0)),
        }
        let mut out = Vec::with_capacity(entries.len());
        for entry in entries {
            if entry.is_ref() || entry.is_intermediate() {
                continue;
            }
            out.push(parse_entry(entry.0)?);
        }
        Ok(out)
    }

    /// Drops the cached service connection after it failed, so the next operation reconnects.
    async fn forget_service(&self) {
        *self.service.lock().await = None;
    }
}

#[async_trait::async_trait]
impl DirectoryReader for LdapEngine {
    async fn check_connection(&self) -> Result<(), DirectoryError> {
        // A fresh connection, not the cached one: the point is to test the settings as they are now.
        let mut ldap = self.open_service().await?;
        let _ = ldap.unbind().await;
        Ok(())
    }

    async fn read_entries(
        &self,
        progress: &dyn ReadProgress,
    ) -> Result<DirectoryRead, DirectoryError> {
        self.guarded(self.read(progress)).await
    }

    async fn read_changes(&self, cookie: Option<&[u8]>) -> Result<Changes, DirectoryError> {
        let offered = self
            .content_sync
            .get_or_try_init(|| async {
                let root = self
                    .search_small("", Scope::Base, "(objectClass=*)", &["supportedControl"], 1)
                    .await?;
                Ok::<bool, DirectoryError>(root.iter().any(|(_, values)| {
                    lookup(values, "supportedControl")
                        .iter()
                        .any(|v| *v == crate::content_sync::SYNC_REQUEST_OID.as_bytes())
                }))
            })
            .await?;
        if !offered {
            return Ok(Changes::Unsupported(
                "the server doesn't offer content synchronization (OpenLDAP's syncprov overlay)"
                    .into(),
            ));
        }
        self.guarded(self.content_sync_read(cookie)).await
    }

    async fn read_user(&self, subject: &LogonSubject<'_>) -> Result<DirectoryRead, DirectoryError> {
        self.guarded(self.read_one(subject)).await
    }
}

impl LdapEngine {
    /// Runs a read on the service connection so that a read cut off (dropped by a deadline or a cancel)
    /// or broken (disconnected, timed out, garbled) leaves that connection to be replaced, never reused
    /// mid-search.
    async fn guarded<T>(
        &self,
        read: impl std::future::Future<Output = Result<T, DirectoryError>>,
    ) -> Result<T, DirectoryError> {
        let mut guard = ReadGuard {
            interrupted: &self.service_interrupted,
            finished: false,
        };
        let result = read.await;
        if let Err(
            DirectoryError::Disconnected { .. }
            | DirectoryError::Timeout { .. }
            | DirectoryError::Protocol { .. },
        ) = &result
        {
            self.forget_service().await;
        }
        // Only now: dropped while waiting for the lock above, the connection must still be marked.
        guard.finished = true;
        result
    }

    /// A refreshOnly content synchronization search over the read's scope (see
    /// `DirectoryReader::read_changes`). No paging: the Sync Request control can't be combined with it,
    /// and from a recent cookie the answer is the changes (and, in the present phase, the ids of the
    /// unchanged entries, which are not entries and don't count against a size limit).
    async fn content_sync_read(&self, cookie: Option<&[u8]>) -> Result<Changes, DirectoryError> {
        use crate::content_sync::{
            SYNC_DONE_OID, SYNC_INFO_OID, SYNC_REFRESH_REQUIRED, SYNC_STATE_OID, SyncInfo,
            SyncState, decode_done, decode_info, decode_state,
        };
        let mut ldap = self.service().await?;
        let mut ranges = ldap.clone();
        let attrs: Vec<String> = match cookie {
            Some(_) => self.config.attributes.requested_attributes(),
            // The cookie of now only: no attributes ("1.1"), the entries themselves are skipped.
            None => vec!["1.1".to_owned()],
        };
        let request = RawControl::from(ldap3::controls::SyncRequest {
            mode: ldap3::controls::RefreshMode::RefreshOnly,
            cookie: cookie.map(<[u8]>::to_vec),
            reload_hint: false,
        });
        let request = RawControl {
            crit: true,
            ..request
        };
        let mut out = ChangeRead::default();
        let mut present: Vec<String> = Vec::new();
        let mut latest_cookie: Option<Vec<u8>> = None;
        let count = |out: &ChangeRead| out.changed.len() as u64;
        let mut stream: SearchStream<'_, &str, Vec<&str>> = ldap
            .with_controls(vec![request])
            .with_timeout(self.timeout())
            .streaming_search(
                &self.config.base_dn,
                Scope::Subtree,
                self.config.filter.as_str(),
                attrs.iter().map(String::as_str).collect(),
            )
            .await
            .map_err(|e| self.op_error(e, READING, 0))?;
        loop {
            let item = match stream.next().await {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(e) => return Err(self.op_error(e, READING, count(&out))),
            };
            if item.is_ref() {
                if self.config.references == ReferencePolicy::SkipAndCount {
                    continue;
                }
                let refs = parse_reference(item.0);
                abandon(&mut stream).await;
                return Err(DirectoryError::Referral { refs });
            }
            if item.is_intermediate() {
                let (name, value) = intermediate_parts(&item.0);
                if name.as_deref() != Some(SYNC_INFO_OID) {
                    continue;
                }
                match decode_info(&value.unwrap_or_default())? {
                    SyncInfo::NewCookie(c) => latest_cookie = Some(c),
                    SyncInfo::RefreshDelete { cookie } | SyncInfo::RefreshPresent { cookie } => {
                        if cookie.is_some() {
                            latest_cookie = cookie;
                        }
                    }
                    SyncInfo::IdSet {
                        cookie,
                        refresh_deletes,
                        ids,
                    } => {
                        if cookie.is_some() {
                            latest_cookie = cookie;
                        }
                        if refresh_deletes {
                            out.deleted.extend(ids);
                        } else {
                            present.extend(ids);
                        }
                    }
                }
                continue;
            }
            let state = item
                .1
                .iter()
                .find(|c| c.1.ctype == SYNC_STATE_OID)
                .map(|c| decode_state(c.1.val.as_deref().unwrap_or_default()))
                .transpose()?
                .ok_or_else(|| DirectoryError::Protocol {
                    message: "an entry of a content synchronization search came without its Sync State control".into(),
                })?;
            if state.cookie.is_some() {
                latest_cookie = state.cookie.clone();
            }
            match state.state {
                SyncState::Present => present.push(state.id),
                SyncState::Delete => out.deleted.push(state.id),
                SyncState::Add | SyncState::Modify => {
                    if cookie.is_none() {
                        continue;
                    }
                    let (entry_dn, mut values) = parse_entry(item.0)?;
                    if values.iter().any(|(name, _)| range_of(name).is_some()) {
                        self.complete_ranges(&mut ranges, &entry_dn, &mut values, count(&out))
                            .await?;
                    }
                    let (entry, stable) = self
                        .config
                        .attributes
                        .map(&entry_dn, |name| lookup(&values, name));
                    if !stable {
                        out.without_stable_id += 1;
                    }
                    out.changed.push(entry);
                }
            }
        }
        let result = stream.finish().await;
        if result.rc == SYNC_REFRESH_REQUIRED {
            return Ok(Changes::RefreshRequired(
                "the server can't continue from the last read (e-syncRefreshRequired)".into(),
            ));
        }
        if result.rc != 0 {
            return Err(self.search_failed(result, count(&out)));
        }
        let (done_cookie, refresh_deletes) =
            match result.ctrls.iter().find(|c| c.1.ctype == SYNC_DONE_OID) {
                Some(c) => decode_done(c.1.val.as_deref().unwrap_or_default())?,
                None => {
                    return Err(DirectoryError::Protocol {
                        message:
                            "the content synchronization search ended without its Sync Done control"
                                .into(),
                    });
                }
            };
        out.cookie = done_cookie
            .or(latest_cookie)
            .or_else(|| cookie.map(<[u8]>::to_vec))
            .unwrap_or_default();
        if out.cookie.is_empty() {
            return Err(DirectoryError::Protocol {
                message: "the content synchronization search gave no cookie".into(),
            });
        }
        if cookie.is_some() && !refresh_deletes {
            out.present = Some(present);
        }
        out.how = format!(
            "content synchronization, {} phase",
            if out.present.is_some() {
                "present"
            } else {
                "delete"
            }
        );
        Ok(Changes::Read(out))
    }
}

/// What a DirSync search answered.
#[derive(Debug)]
pub(crate) enum DirSyncAnswer {
    /// The objects changed since the cookie, each as the server sent it (only the changed attributes
    /// of those asked for, with objectGUID), and the cookie to continue from next time.
    Changes {
        entries: Vec<(String, Values)>,
        cookie: Vec<u8>,
    },
    /// The server answered the search with an error: its result code and message. Samba answers a
    /// cookie it can't decode with unavailableCriticalExtension ("Unable to unmarshall cookie"), a
    /// base that isn't a naming context's root with unwillingToPerform, a caller without the
    /// replication right (and without the object-security flag) with insufficientAccessRights; what
    /// Active Directory answers a cookie it can't use is not documented. Every code is returned here,
    /// not as an error, so that the caller can read everything instead: a cookie refused must never
    /// fail every run that follows. (A connection that breaks is an error.)
    Refused { rc: u32, message: String },
}

/// More DirSync rounds than any change set can need (each round is up to `MAX_BYTES`).
const MAX_DIRSYNC_ROUNDS: u32 = 100_000;

/// Ids per search when entries are read again by objectGUID (an OR of equality matches).
const IDS_PER_SEARCH: usize = 100;

impl LdapEngine {
    /// A DirSync search (critical, subtree from `base`, which must be a naming context's root), repeated
    /// with the new cookie while the server says it has more. All or nothing, like a read.
    pub(crate) async fn dirsync(
        &self,
        base: &str,
        filter: &str,
        attrs: &[&str],
        flags: u32,
        cookie: &[u8],
    ) -> Result<DirSyncAnswer, DirectoryError> {
        self.guarded(self.dirsync_rounds(base, filter, attrs, flags, cookie))
            .await
    }

    async fn dirsync_rounds(
        &self,
        base: &str,
        filter: &str,
        attrs: &[&str],
        flags: u32,
        cookie: &[u8],
    ) -> Result<DirSyncAnswer, DirectoryError> {
        use crate::dirsync::{DIRSYNC_OID, MAX_BYTES, decode_response, encode_request};
        let mut ldap = self.service().await?;
        let mut cookie = cookie.to_vec();
        let mut entries: Vec<(String, Values)> = Vec::new();
        for _ in 0..MAX_DIRSYNC_ROUNDS {
            let count = entries.len() as u64;
            let before = entries.len();
            let control = RawControl {
                ctype: DIRSYNC_OID.to_owned(),
                crit: true,
                val: Some(encode_request(flags, MAX_BYTES, &cookie)),
            };
            let mut stream: SearchStream<'_, &str, Vec<&str>> = ldap
                .with_controls(vec![control])
                .with_timeout(self.timeout())
                .streaming_search(base, Scope::Subtree, filter, attrs.to_vec())
                .await
                .map_err(|e| self.op_error(e, READING, count))?;
            loop {
                let item = match stream.next().await {
                    Ok(Some(item)) => item,
                    Ok(None) => break,
                    Err(e) => return Err(self.op_error(e, READING, entries.len() as u64)),
                };
                // Continuation references to the other naming contexts of a domain root: DirSync
                // covers one naming context, and the scope is in this one.
                if item.is_ref() || item.is_intermediate() {
                    continue;
                }
                entries.push(parse_entry(item.0)?);
            }
            let result = stream.finish().await;
            if result.rc != 0 {
                return Ok(DirSyncAnswer::Refused {
                    rc: result.rc,
                    message: result.text,
                });
            }
            let response = result
                .ctrls
                .iter()
                .find(|c| c.1.ctype == DIRSYNC_OID)
                .ok_or_else(|| DirectoryError::Protocol {
                    message: "the DirSync search ended without its DirSync control".into(),
                })?;
            let response = decode_response(response.1.val.as_deref().unwrap_or_default())?;
            if response.cookie.is_empty() {
                return Err(DirectoryError::Protocol {
                    message: "the DirSync search gave no cookie".into(),
                });
            }
            if !response.more {
                return Ok(DirSyncAnswer::Changes {
                    entries,
                    cookie: response.cookie,
                });
            }
            if entries.len() == before && response.cookie == cookie {
                return Err(DirectoryError::Protocol {
                    message: "the DirSync search said it had more but sent nothing new and the same cookie, so the read would never end".into(),
                });
            }
            cookie = response.cookie;
        }
        Err(DirectoryError::Protocol {
            message: format!(
                "the DirSync search still had more after {MAX_DIRSYNC_ROUNDS} rounds, so the read would never end"
            ),
        })
    }

    /// The entries with these objectGUIDs (16 bytes each) that are in scope (below `base_dn` and
    /// matching the filter), read as a full read reads them.
    pub(crate) async fn read_guids(
        &self,
        guids: &[Vec<u8>],
    ) -> Result<DirectoryRead, DirectoryError> {
        let mut read = DirectoryRead::default();
        for batch in guids.chunks(IDS_PER_SEARCH) {
            let ids: String = batch
                .iter()
                .map(|g| format!("(objectGUID={})", crate::dirsync::escape_bytes(g)))
                .collect();
            let filter = format!("(&{}(|{ids}))", self.config.filter.as_str());
            let within = ReadScope {
                base: &self.config.base_dn,
                scope: Scope::Subtree,
                filter: &filter,
                ids_only: false,
            };
            let mut part = self
                .guarded(self.read_in(&within, &crate::NoProgress))
                .await?;
            read.entries.append(&mut part.entries);
            read.pages += part.pages;
            read.without_stable_id += part.without_stable_id;
            read.references_skipped += part.references_skipped;
        }
        Ok(read)
    }

    /// The ids of the entries below `base` (subtree) that match `filter`, which may not be the
    /// configured one: a paged read of the id attributes alone.
    pub(crate) async fn ids_below(
        &self,
        base: &str,
        filter: &str,
    ) -> Result<Vec<String>, DirectoryError> {
        let within = ReadScope {
            base,
            scope: Scope::Subtree,
            filter,
            ids_only: true,
        };
        let read = self
            .guarded(self.read_in(&within, &crate::NoProgress))
            .await?;
        Ok(read.entries.into_iter().map(|e| e.id).collect())
    }
}

/// The name and value of an IntermediateResponse (`[APPLICATION 25] SEQUENCE { responseName [0]
/// OPTIONAL, responseValue [1] OPTIONAL }`), read without panicking.
fn intermediate_parts(tag: &StructureTag) -> (Option<String>, Option<Vec<u8>>) {
    let mut name = None;
    let mut value = None;
    if let ldap3::asn1::PL::C(inner) = &tag.payload {
        for part in inner {
            if let ldap3::asn1::PL::P(bytes) = &part.payload {
                match part.id {
                    0 => name = Some(String::from_utf8_lossy(bytes).into_owned()),
                    1 => value = Some(bytes.clone()),
                    _ => {}
                }
            }
        }
    }
    (name, value)
}

/// Where a read looks: the whole scope, or one entry of it.
struct ReadScope<'a> {
    base: &'a str,
    scope: Scope,
    filter: &'a str,
    /// Ask only for the id attributes (the entries found are wanted for their ids alone).
    ids_only: bool,
}

impl LdapEngine {
    /// The whole scope: `base_dn`, subtree, the filter.
    async fn read(&self, progress: &dyn ReadProgress) -> Result<DirectoryRead, DirectoryError> {
        let all = ReadScope {
            base: &self.config.base_dn,
            scope: Scope::Subtree,
            filter: self.config.filter.as_str(),
            ids_only: false,
        };
        self.read_in(&all, progress).await
    }

    /// One user's entry (see `DirectoryReader::read_user`): by the link's id where the id can be
    /// searched for (Active Directory's objectGUID as a `<GUID=…>` base, an entryUUID as a filter, a
    /// DN-derived id as a base), else by name; always within base and filter.
    async fn read_one(&self, subject: &LogonSubject<'_>) -> Result<DirectoryRead, DirectoryError> {
        if let Some(id) = subject.id {
            let found = match self.id_search(id) {
                Some((base, scope, filter)) => {
                    let by_id = ReadScope {
                        base: &base,
                        scope,
                        filter: &filter,
                        ids_only: false,
                    };
                    match self.read_in(&by_id, &crate::NoProgress).await {
                        // The linked entry is gone (an unknown GUID or DN is "no such object").
                        Err(DirectoryError::NoSuchBase { .. }) => None,
                        Err(e) => return Err(e),
                        // A GUID or DN base finds the entry anywhere in the domain: only one still
                        // below `base_dn` is in scope.
                        Ok(mut read) => {
                            read.entries
                                .retain(|e| dn::is_at_or_below(&e.dn, &self.config.base_dn));
                            Some(read)
                        }
                    }
                }
                None => None,
            };
            if let Some(read) = found
                && !read.entries.is_empty()
            {
                return Ok(read);
            }
        }
        let clause = format!(
            "({}={})",
            self.config.attributes.username,
            escape_value(subject.name)
        );
        let Ok(clause) = LdapFilter::parse(&clause) else {
            return Ok(DirectoryRead::default());
        };
        let filter = self.config.filter.and(&clause);
        let by_name = ReadScope {
            base: &self.config.base_dn,
            scope: Scope::Subtree,
            filter: filter.as_str(),
            ids_only: false,
        };
        let read = self.read_in(&by_name, &crate::NoProgress).await?;
        if read.entries.len() > 1 {
            return Err(DirectoryError::AmbiguousUser {
                name: subject.name.to_owned(),
            });
        }
        Ok(read)
    }

    /// How to search for an entry by the id a sync gave it, if that id's attribute can be searched.
    fn id_search(&self, id: &str) -> Option<(String, Scope, String)> {
        let filter = self.config.filter.as_str().to_owned();
        if let Some(dn) = id.strip_prefix("dn:") {
            return Some((dn.to_owned(), Scope::Base, filter));
        }
        let uuid_like = id.len() == 36 && id.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
        let first = self.config.attributes.ids.attribute_names().next()?;
        match first {
            "objectGUID" if uuid_like => Some((format!("<GUID={id}>"), Scope::Base, filter)),
            "entryUUID" if uuid_like => Some((
                self.config.base_dn.clone(),
                Scope::Subtree,
                format!("(&{filter}(entryUUID={id}))"),
            )),
            _ => None,
        }
    }

    async fn read_in(
        &self,
        within: &ReadScope<'_>,
        progress: &dyn ReadProgress,
    ) -> Result<DirectoryRead, DirectoryError> {
        // A read is never retried: the planner must see one consistent answer or none.
        let mut ldap = self.service().await?;
        // A second handle on the same connection for the follow-up requests of ranged attributes, made
        // while the page's search is still streaming.
        let mut ranges = ldap.clone();
        let wanted = if within.ids_only {
            self.config
                .attributes
                .ids
                .attribute_names()
                .map(str::to_owned)
                .collect()
        } else {
            self.config.attributes.requested_attributes()
        };
        let attrs: Vec<String> = wanted
            .into_iter()
            .map(|a| match &self.config.range_request {
                Some((name, n)) if name.eq_ignore_ascii_case(&a) => {
                    format!("{a};range=0-{}", n.saturating_sub(1))
                }
                _ => a,
            })
            .collect();
        let mut read = DirectoryRead {
            entries: Vec::new(),
            pages: 0,
            without_stable_id: 0,
            references_skipped: 0,
            ..Default::default()
        };
        let mut cookie: Vec<u8> = Vec::new();
        let mut guard = PageGuard::default();
        loop {
            let entries_before = read.entries.len();
            let total_before = read.entry_count();
            let references_before = read.references_skipped;
            let control = RawControl {
                ctype: PAGED_RESULTS_OID.to_owned(),
                crit: true,
                val: Some(encode_paged_request(self.config.page_size, &cookie)),
            };
            let result = self
                .read_page(
                    &mut ldap,
                    &mut ranges,
                    within,
                    control,
                    &attrs,
                    &mut read,
                    progress,
                )
                .await?;
            read.pages += 1;
            let count = read.entry_count();
            progress.entries_read(count);
            if result.rc != 0 {
                return Err(self.search_failed(result, count));
            }
            // What the page guard below needs of the page, before the page may be handed over.
            let first_dn = read.entries.get(entries_before).map(|e| e.dn.clone());
            // Offered only while every earlier entry was taken, so that the entries handed over always
            // come before those kept (a progress that leaves some is offered no more pages).
            if entries_before == 0 && !read.entries.is_empty() {
                let page_len = read.entries.len();
                progress.page_read(&mut read.entries);
                read.handed_over += (page_len - read.entries.len()) as u64;
            }
            let response = result
                .ctrls
                .iter()
                .find(|c| c.1.ctype == PAGED_RESULTS_OID)
                .map(|c| c.1.val.as_deref().unwrap_or_default());
            cookie = match response {
                Some(value) => decode_paged_response(value)?.cookie,
                // RFC 2696 requires the control in every response; without it there is no next page
                // to ask for, and rc 0 says the search is complete.
                None => Vec::new(),
            };
            if cookie.is_empty() {
                break;
            }
            let page = Page {
                cookie: &cookie,
                first_dn: first_dn.as_deref(),
                progressed: read.entry_count() > total_before
                    || read.references_skipped > references_before,
            };
            guard.check(&page)?;
        }
        Ok(read)
    }

    /// Reads one page into `read`, mapping each entry as it arrives (ldap3's per-entry maps would
    /// hold every attribute of 100k entries otherwise), and returns the page's result.
    #[allow(clippy::too_many_arguments)]
    async fn read_page(
        &self,
        ldap: &mut Ldap,
        ranges: &mut Ldap,
        within: &ReadScope<'_>,
        control: RawControl,
        attrs: &[String],
        read: &mut DirectoryRead,
        progress: &dyn ReadProgress,
    ) -> Result<LdapResult, DirectoryError> {
        let entries_so_far = |read: &DirectoryRead| read.entry_count();
        let mut stream: SearchStream<'_, &str, Vec<&str>> = ldap
            .with_controls(vec![control])
            .with_timeout(self.timeout())
            .streaming_search(
                within.base,
                within.scope,
                within.filter,
                attrs.iter().map(String::as_str).collect(),
            )
            .await
            .map_err(|e| self.op_error(e, READING, entries_so_far(read)))?;
        loop {
            let item = match stream.next().await {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(e) => return Err(self.op_error(e, READING, entries_so_far(read))),
            };
            if item.is_ref() {
                if self.config.references == ReferencePolicy::SkipAndCount {
                    read.references_skipped += 1;
                    continue;
                }
                let refs = parse_reference(item.0);
                abandon(&mut stream).await;
                return Err(DirectoryError::Referral { refs });
            }
            if item.is_intermediate() {
                continue;
            }
            let (entry_dn, mut values) = parse_entry(item.0)?;
            if values.iter().any(|(name, _)| range_of(name).is_some()) {
                self.complete_ranges(ranges, &entry_dn, &mut values, entries_so_far(read))
                    .await?;
            }
            let (entry, stable) = self
                .config
                .attributes
                .map(&entry_dn, |name| lookup(&values, name));
            if !stable {
                read.without_stable_id += 1;
            }
            read.entries.push(entry);
            if read.entry_count().is_multiple_of(1000) {
                progress.entries_read(entries_so_far(read));
            }
        }
        Ok(stream.finish().await)
    }
}

#[async_trait::async_trait]
impl PasswordChecker for LdapEngine {
    async fn authenticate(
        &self,
        subject: &LogonSubject<'_>,
        password: &Secret,
    ) -> Result<LogonOutcome, DirectoryError> {
        // Before any network call: ldap3 would turn an empty password into an unauthenticated bind,
        // which some servers answer with success.
        if password.is_empty() {
            return Ok(LogonOutcome::Rejected(RejectReason::EmptyPassword));
        }
        let lookup = self.locate(subject).await?;
        let user_dn = match lookup {
            Lookup::Found(dn) => dn,
            Lookup::NotFound => return Ok(LogonOutcome::Rejected(RejectReason::NotFound)),
            Lookup::Ambiguous => return Ok(LogonOutcome::Rejected(RejectReason::Ambiguous)),
        };
        // A separate connection: a bind changes the identity of the whole connection, and the service
        // connection must stay the service account.
        let result = self.bind_user(&user_dn, password).await?;
        Ok(match result.rc {
            0 => LogonOutcome::Accepted { dn: user_dn },
            49 => match ad_bind_reason(&result.text) {
                // Active Directory says why in `data XXX`: only 52e is the password (or the name).
                Some(why) if !why.contains("data 52e") => {
                    tracing::info!(dn = %user_dn, reason = why, "Active Directory refused the user's bind");
                    LogonOutcome::Rejected(RejectReason::DirectoryRefused(why))
                }
                _ => LogonOutcome::Rejected(RejectReason::WrongPassword),
            },
            rc => {
                tracing::info!(
                    dn = %user_dn,
                    rc,
                    server_message = %result.text,
                    "the directory refused a user's bind for a reason other than the password"
                );
                LogonOutcome::Rejected(RejectReason::AccountUnusable)
            }
        })
    }
}

impl LdapEngine {
    /// A user's simple bind, on an idle bind connection if there is one (once more on a new connection
    /// if that one went stale: a server restart, an idle timeout), else on a new one. The connection is
    /// kept for the next logon if the server answered the bind.
    async fn bind_user(
        &self,
        user_dn: &str,
        password: &Secret,
    ) -> Result<ldap3::LdapResult, DirectoryError> {
        if let Some(conn) = self.idle_bind_connection() {
            match self.bind_on(conn, user_dn, password).await {
                Err(DirectoryError::Disconnected { .. }) => {}
                other => return other,
            }
        }
        let conn = self.open().await?;
        self.bind_on(conn, user_dn, password).await
    }

    fn idle_bind_connection(&self) -> Option<Ldap> {
        let mut idle = self
            .bind_connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = std::time::Instant::now();
        // The most recently used first; older ones go as they come out of date.
        while let Some((mut conn, since)) = idle.pop() {
            // Kept no longer than a service connection goes unchecked ([`IDLE_CHECK_AFTER`]): reuse
            // matters when logons come in quick succession, and an older one may have been dropped
            // silently (a connection the server closed is seen closed, whatever its age).
            if !conn.is_closed() && now.duration_since(since) < self.idle_check_after {
                return Some(conn);
            }
        }
        None
    }

    /// Keeps `conn` for the next logon, or hands it back when enough are kept.
    fn keep_bind_connection(&self, conn: Ldap) -> Option<Ldap> {
        let mut idle = self
            .bind_connections
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if idle.len() < IDLE_BIND_CONNECTIONS {
            idle.push((conn, std::time::Instant::now()));
            None
        } else {
            Some(conn)
        }
    }

    async fn bind_on(
        &self,
        mut conn: Ldap,
        user_dn: &str,
        password: &Secret,
    ) -> Result<ldap3::LdapResult, DirectoryError> {
        let bind = conn
            .with_timeout(self.timeout())
            .simple_bind(user_dn, password.expose())
            .await;
        match bind {
            // Answered (accepted, refused, or anything else the server says): the connection works.
            Ok(result) => {
                if let Some(mut extra) = self.keep_bind_connection(conn) {
                    let _ = extra.with_timeout(self.timeout()).unbind().await;
                }
                Ok(result)
            }
            // Not answered (a timeout, a connection gone): this connection is done with.
            Err(e) => Err(self.op_error(e, CHECKING_PASSWORD, 0)),
        }
    }

    /// The user's entry, found as a logon finds it (by the link's DN and id, else by name, within base
    /// and filter), with one retry on a fresh connection when the cached one went stale.
    pub(crate) async fn locate(
        &self,
        subject: &LogonSubject<'_>,
    ) -> Result<Lookup, DirectoryError> {
        let lookup = match self.find_user(subject).await {
            Err(DirectoryError::Disconnected { .. }) => {
                // The cached connection went stale (server restart, idle timeout): one retry on a
                // fresh one, so that a logon doesn't fail just because nobody logged on for a while.
                self.forget_service().await;
                self.find_user(subject).await
            }
            other => other,
        };
        if let Err(DirectoryError::Disconnected { .. } | DirectoryError::Timeout { .. }) = &lookup {
            self.forget_service().await;
        }
        lookup
    }

    async fn find_user(&self, subject: &LogonSubject<'_>) -> Result<Lookup, DirectoryError> {
        let mut ldap = self.service().await?;
        // The id Roster linked the user to. With one, only the entry with that id is the user, whatever
        // its DN or name is now: another person who has (or was given) the same user name must not log
        // on as them. Without one (a user created by hand and switched to directory authentication),
        // the user name must match exactly one entry in scope.
        let linked_id = subject.id;
        let is_linked = |c: &Candidate| linked_id.is_none_or(|id| c.id.as_deref() == Some(id));
        if let Some(stored) = subject.dn.map(str::trim).filter(|d| !d.is_empty()) {
            // The stored DN is only a shortcut: it must still be under base_dn and match the filter,
            // so a user moved out of scope can't log on with a DN remembered from an earlier sync.
            if dn::is_at_or_below(stored, &self.config.base_dn) {
                let found = self
                    .search_candidates(
                        &mut ldap,
                        stored,
                        Scope::Base,
                        self.config.filter.as_str(),
                        linked_id.is_some(),
                    )
                    .await?;
                if let [only] = found.entries.as_slice()
                    && is_linked(only)
                {
                    return Ok(Lookup::Found(only.dn.clone()));
                }
            }
        }
        if subject.name.is_empty() {
            return Ok(Lookup::NotFound);
        }
        let clause = format!(
            "({}={})",
            self.config.attributes.username,
            escape_value(subject.name)
        );
        let Ok(clause) = LdapFilter::parse(&clause) else {
            // Only reachable with characters no user name can hold (escape_value handles the rest).
            return Ok(Lookup::NotFound);
        };
        let filter = self.config.filter.and(&clause);
        let found = self
            .search_candidates(
                &mut ldap,
                &self.config.base_dn,
                Scope::Subtree,
                filter.as_str(),
                linked_id.is_some(),
            )
            .await?;
        if linked_id.is_some() {
            let mut linked = found.entries.into_iter().filter(is_linked);
            return Ok(match (linked.next(), linked.next()) {
                (Some(only), None) => Lookup::Found(only.dn),
                (Some(_), Some(_)) => Lookup::Ambiguous,
                // More entries had the name than we looked at: the user's may be among the rest.
                (None, _) if found.truncated => Lookup::Ambiguous,
                (None, _) => Lookup::NotFound,
            });
        }
        let mut entries = found.entries.into_iter();
        Ok(match (entries.next(), entries.next()) {
            (None, _) => Lookup::NotFound,
            (Some(only), None) if !found.truncated => Lookup::Found(only.dn),
            _ => Lookup::Ambiguous,
        })
    }

    /// The entries a logon search finds: at most two without ids (two is enough to tell
    /// "ambiguous"), at most [`LINKED_LOOKUP_LIMIT`] with them.
    async fn search_candidates(
        &self,
        ldap: &mut Ldap,
        base: &str,
        scope: Scope,
        filter: &str,
        with_ids: bool,
    ) -> Result<Candidates, DirectoryError> {
        let (limit, attrs) = if with_ids {
            (
                LINKED_LOOKUP_LIMIT,
                self.config.attributes.ids.attribute_names().collect(),
            )
        } else {
            // "1.1": no attributes, only the DN.
            (2, vec!["1.1"])
        };
        let SearchResult(entries, result) = ldap
            .with_search_options(SearchOptions::new().sizelimit(limit))
            .with_timeout(self.timeout())
            .search(base, scope, filter, attrs)
            .await
            .map_err(|e| self.op_error(e, LOOKING_UP, 0))?;
        let truncated = match result.rc {
            0 => false,
            // 4: more matched than the limit.
            4 => true,
            32 if scope == Scope::Base => {
                return Ok(Candidates {
                    entries: Vec::new(),
                    truncated: false,
                });
            }
            _ => return Err(self.search_failed(result, 0)),
        };
        let mut found = Vec::with_capacity(entries.len());
        for entry in entries {
            if entry.is_ref() || entry.is_intermediate() {
                continue;
            }
            let (entry_dn, values) = parse_entry(entry.0)?;
            // An empty DN would make the user bind anonymous: never treat it as a user.
            if entry_dn.trim().is_empty() {
                continue;
            }
            // The same function as a sync's mapping, so the id compares equal to the stored link.
            let id = with_ids.then(|| {
                self.config
                    .attributes
                    .ids
                    .entry_id(&entry_dn, &|name| lookup(&values, name))
                    .0
            });
            found.push(Candidate { dn: entry_dn, id });
        }
        Ok(Candidates {
            entries: found,
            truncated,
        })
    }
}

/// Pages in a row without entries after which a paged read gives up. Servers may send an empty page
/// now and then (Active Directory does when a page's time runs out), never this many.
const MAX_EMPTY_PAGES_IN_A_ROW: u32 = 1000;

/// What the paging loop knows about the page it just read, which had a non-empty cookie.
struct Page<'a> {
    cookie: &'a [u8],
    /// The DN of the page's first entry.
    first_dn: Option<&'a str>,
    /// The page brought entries or skipped references.
    progressed: bool,
}

/// Stops a paged read that would never end. A repeated cookie alone is not an error: 389-DS's cookie
/// is its paged-results slot number, the same on every page of a search. A repeated cookie on a page
/// that brought nothing new (no entries, or the same first entry as the page before) is, and so are
/// [`MAX_EMPTY_PAGES_IN_A_ROW`] pages without entries whatever the cookies.
#[derive(Debug, Default)]
struct PageGuard {
    previous_cookie: Vec<u8>,
    previous_first_dn: Option<String>,
    empty_in_a_row: u32,
}

impl PageGuard {
    fn check(&mut self, page: &Page<'_>) -> Result<(), DirectoryError> {
        let repeated = page.cookie == self.previous_cookie.as_slice()
            && (!page.progressed
                || (page.first_dn.is_some() && page.first_dn == self.previous_first_dn.as_deref()));
        if repeated {
            return Err(DirectoryError::Protocol {
                message: "the server answered a paged search with the same page and cookie again, so the read would never end".into(),
            });
        }
        self.empty_in_a_row = if page.progressed {
            0
        } else {
            self.empty_in_a_row.saturating_add(1)
        };
        if self.empty_in_a_row >= MAX_EMPTY_PAGES_IN_A_ROW {
            return Err(DirectoryError::Protocol {
                message: format!(
                    "the server sent {MAX_EMPTY_PAGES_IN_A_ROW} pages in a row without entries and still offers more, so the read would never end"
                ),
            });
        }
        page.cookie.clone_into(&mut self.previous_cookie);
        self.previous_first_dn = page.first_dn.map(str::to_owned);
        Ok(())
    }
}

/// More ranges than any attribute can need (1500 values each: 15 million values).
const MAX_RANGE_ROUNDS: u32 = 10_000;

/// Where a ranged attribute's part ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeEnd {
    /// The last value's index: more follow.
    Upto(u64),
    /// `*`: the last part.
    Last,
}

/// `name;range=LOW-HIGH` (options may come before the range): the plain name, LOW and the end.
fn range_of(name: &str) -> Option<(&str, u64, RangeEnd)> {
    let (base, options) = name.split_once(';')?;
    let range = options.split(';').find_map(|o| {
        o.strip_prefix("range=")
            .or_else(|| o.strip_prefix("Range="))
    })?;
    let (low, high) = range.split_once('-')?;
    let low = low.parse().ok()?;
    let end = if high == "*" {
        RangeEnd::Last
    } else {
        RangeEnd::Upto(high.parse().ok()?)
    };
    Some((base, low, end))
}

/// Attribute values of one entry as sent by the server.
pub(crate) type Values = Vec<(String, Vec<Vec<u8>>)>;

/// The first value of `name` that is text.
/// A host for a URL: IPv6 addresses in brackets.
fn url_host(server: &str) -> String {
    if server.contains(':') {
        format!("[{server}]")
    } else {
        server.to_owned()
    }
}

pub(crate) fn first_text(values: &Values, name: &str) -> Option<String> {
    lookup(values, name)
        .into_iter()
        .find_map(|v| std::str::from_utf8(v).ok())
        .map(str::to_owned)
}

/// Active Directory's reason for a refused bind, from the `data XXX` part of its diagnostic message
/// (`80090308: LdapErr: DSID-…, comment: AcceptSecurityContext error, data 52e, v4563`), in words with the
/// code; `None` for other servers' messages.
pub(crate) fn ad_bind_reason(message: &str) -> Option<&'static str> {
    let after = message.split("data ").nth(1)?;
    let code: String = after
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect::<String>()
        .to_ascii_lowercase();
    Some(match code.as_str() {
        "525" => "no such user (AD data 525)",
        "52e" => "wrong password or no such user (AD data 52e)",
        "530" => "not permitted to log on at this time (AD data 530)",
        "531" => "not permitted to log on at this workstation (AD data 531)",
        "532" => "password expired (AD data 532)",
        "533" => "account disabled (AD data 533)",
        "701" => "account expired (AD data 701)",
        "773" => "the user must change the password (AD data 773)",
        "775" => "account locked out (AD data 775)",
        "" => return None,
        _ => "refused for another reason (AD data code not known)",
    })
}

/// Names in responses may differ in case from the request (`mail` vs `Mail`); options are part of the
/// name, so `cn;lang-de` never stands in for `cn`.
fn lookup<'a>(values: &'a Values, name: &str) -> Vec<&'a [u8]> {
    values
        .iter()
        .filter(|(attr, _)| attr.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.iter().map(Vec::as_slice))
        .collect()
}

fn malformed(what: &str) -> DirectoryError {
    DirectoryError::Protocol {
        message: format!("malformed search result entry: {what}"),
    }
}

/// `SearchResultEntry ::= [APPLICATION 4] SEQUENCE { objectName LDAPDN, attributes PartialAttributeList }`,
/// decoded without panicking (ldap3's `SearchEntry::construct` panics on malformed input).
pub(crate) fn parse_entry(tag: StructureTag) -> Result<(String, Values), DirectoryError> {
    let mut parts = tag
        .match_id(4)
        .and_then(StructureTag::expect_constructed)
        .ok_or_else(|| malformed("not a SearchResultEntry"))?
        .into_iter();
    let dn_bytes = parts
        .next()
        .and_then(StructureTag::expect_primitive)
        .ok_or_else(|| malformed("no DN"))?;
    let entry_dn = String::from_utf8(dn_bytes).map_err(|_| malformed("the DN is not UTF-8"))?;
    let attributes = parts
        .next()
        .and_then(StructureTag::expect_constructed)
        .ok_or_else(|| malformed("no attribute list"))?;
    let mut values: Values = Vec::with_capacity(attributes.len());
    for attribute in attributes {
        let mut items = attribute
            .expect_constructed()
            .ok_or_else(|| malformed("an attribute is not a sequence"))?
            .into_iter();
        let name = items
            .next()
            .and_then(StructureTag::expect_primitive)
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| malformed("an attribute has no valid name"))?;
        let vals = items
            .next()
            .and_then(StructureTag::expect_constructed)
            .ok_or_else(|| malformed("an attribute has no value set"))?
            .into_iter()
            .map(|v| {
                v.expect_primitive()
                    .ok_or_else(|| malformed("a value is not an octet string"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        values.push((name, vals));
    }
    Ok((entry_dn, values))
}

/// The URIs of a `SearchResultReference`, for the error message; undecodable parts are skipped.
pub(crate) fn parse_reference(tag: StructureTag) -> Vec<String> {
    tag.expect_constructed()
        .unwrap_or_default()
        .into_iter()
        .filter_map(StructureTag::expect_primitive)
        .filter_map(|b| String::from_utf8(b).ok())
        .collect()
}

/// Stops a search we no longer want: ldap3 drops its remaining results, and the server is asked to
/// stop sending them.
async fn abandon<'a>(stream: &mut SearchStream<'a, &'a str, Vec<&'a str>>) {
    let msgid = stream.ldap_handle().last_id();
    let _ = stream.finish().await;
    let _ = stream.ldap_handle().abandon(msgid).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3::asn1::{PL, TagClass};
    use roster_core::directory::{AttributeMapping, LdapSettings};

    fn prim(id: u64, bytes: &[u8]) -> StructureTag {
        StructureTag {
            class: TagClass::Universal,
            id,
            payload: PL::P(bytes.to_vec()),
        }
    }

    fn cons(class: TagClass, id: u64, inner: Vec<StructureTag>) -> StructureTag {
        StructureTag {
            class,
            id,
            payload: PL::C(inner),
        }
    }

    /// The Active Directory behaviour (skip and count references) is internal until that connector
    /// exists, so it is tested here rather than through `connector`.
    #[tokio::test]
    async fn references_can_be_skipped_and_counted() {
        use roster_testkit::{Slapd, SlapdConfig, TestUser, user_ldif};
        let slapd = Slapd::start(SlapdConfig::default()).unwrap();
        let people = slapd.people_dn();
        let mut ldif = user_ldif(
            slapd.suffix(),
            &TestUser {
                uid: "here",
                cn: "Here",
                ..Default::default()
            },
        );
        ldif.push_str(&format!(
            "\ndn: ou=Elsewhere,{people}\nobjectClass: referral\nobjectClass: extensibleObject\nou: Elsewhere\nref: ldap://other.example.com/ou=Elsewhere,dc=example,dc=com\n"
        ));
        slapd.add(&ldif).unwrap();
        let settings = LdapSettings {
            page_size: Some(10),
            timeout_seconds: Some(10),
            ..root_settings(&slapd, slapd.port(), people)
        };
        let mut config = crate::ldap::engine_config(&settings).unwrap();
        config.references = ReferencePolicy::SkipAndCount;
        let dir = LdapEngine::new(config);
        let read = dir.read_entries(&crate::NoProgress).await.unwrap();
        assert_eq!(read.entries.len(), 1);
        assert_eq!(read.references_skipped, 1);
    }

    /// A kept service connection that a firewall dropped silently (the proxy stalls it: open, but nothing
    /// comes back) is found out by the idle check and replaced: the next read and logon work, in the
    /// check's few seconds rather than after the whole timeout, and without failing once.
    #[tokio::test]
    async fn a_silently_dropped_kept_connection_is_replaced_after_an_idle_check() {
        use roster_testkit::{CutProxy, Slapd, SlapdConfig, TestUser, user_ldif};
        let slapd = Slapd::start(SlapdConfig::default()).unwrap();
        let ldif = user_ldif(
            slapd.suffix(),
            &TestUser {
                uid: "alice",
                cn: "Alice",
                password: Some("alice-pw"),
                ..Default::default()
            },
        );
        slapd.add(&ldif).unwrap();
        let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], slapd.port()));
        let proxy = CutProxy::start(upstream, u64::MAX).await.unwrap();
        let settings = LdapSettings {
            page_size: None,
            timeout_seconds: Some(60),
            ..root_settings(&slapd, proxy.addr().port(), slapd.people_dn())
        };
        let mut dir = LdapEngine::new(crate::ldap::engine_config(&settings).unwrap());
        dir.idle_check_after = Duration::from_millis(300);
        let alice = LogonSubject {
            name: "alice",
            dn: None,
            id: None,
        };
        let logon_ok = |outcome: Result<LogonOutcome, DirectoryError>| {
            matches!(outcome, Ok(LogonOutcome::Accepted { .. }))
        };
        assert_eq!(
            dir.read_entries(&crate::NoProgress)
                .await
                .unwrap()
                .entries
                .len(),
            1
        );
        assert!(logon_ok(
            dir.authenticate(&alice, &Secret::new("alice-pw")).await
        ));

        proxy.stall_open_connections();
        tokio::time::sleep(Duration::from_millis(400)).await;
        let started = std::time::Instant::now();
        assert_eq!(
            dir.read_entries(&crate::NoProgress)
                .await
                .unwrap()
                .entries
                .len(),
            1
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(logon_ok(
            dir.authenticate(&alice, &Secret::new("alice-pw")).await
        ));
        // Two idle checks of at most 5 s, not a 60 s timeout.
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );
        // In quick succession, no check: the same connection again.
        assert!(logon_ok(
            dir.authenticate(&alice, &Secret::new("alice-pw")).await
        ));
    }

    /// Settings that read `base_dn` on `port` (slapd's, or a proxy's) as slapd's root DN, user names only.
    fn root_settings(slapd: &roster_testkit::Slapd, port: u16, base_dn: String) -> LdapSettings {
        LdapSettings {
            schedule: Default::default(),
            server: "127.0.0.1".into(),
            port: Some(port),
            encryption: Encryption::None,
            ignore_certificate_errors: false,
            ca_file: None,
            bind_dn: slapd.root_dn().into(),
            password: Some(Secret::new(slapd.root_password())),
            base_dn,
            mapping: AttributeMapping {
                filter: "(objectClass=inetOrgPerson)".into(),
                username_attribute: "uid".into(),
                full_name_attribute: None,
                email_attributes: None,
            },
            delete_users: false,
            guard: Default::default(),
            page_size: None,
            timeout_seconds: None,
        }
    }

    #[test]
    fn paging_stops_when_the_server_repeats_itself() {
        let page = |cookie: &'static [u8], first_dn: Option<&'static str>| Page {
            cookie,
            first_dn,
            progressed: first_dn.is_some(),
        };
        let protocol = |r: Result<(), DirectoryError>| r.unwrap_err().code() == "DI015-protocol";

        // OpenLDAP and Active Directory: a new cookie on every page.
        let mut guard = PageGuard::default();
        guard.check(&page(b"a", Some("uid=1"))).unwrap();
        guard.check(&page(b"b", Some("uid=2"))).unwrap();
        // 389-DS: the same cookie on every page, with new entries each time.
        let mut guard = PageGuard::default();
        for dn in ["uid=1", "uid=2", "uid=3"] {
            guard.check(&page(b"0", Some(dn))).unwrap();
        }
        // The same cookie and the same page again, or the same cookie and nothing new.
        assert!(protocol(guard.check(&page(b"0", Some("uid=3")))));
        let mut guard = PageGuard::default();
        guard.check(&page(b"x", Some("uid=1"))).unwrap();
        guard.check(&page(b"y", None)).unwrap();
        assert!(protocol(guard.check(&page(b"y", None))));
        // A page of skipped references alone is progress.
        let mut guard = PageGuard::default();
        let refs = Page {
            cookie: b"r",
            first_dn: None,
            progressed: true,
        };
        guard.check(&refs).unwrap();
        guard.check(&page(b"s", Some("uid=1"))).unwrap();
        // New cookies forever, but no entries: stopped after MAX_EMPTY_PAGES_IN_A_ROW pages.
        let mut guard = PageGuard::default();
        let mut pages = 0u32;
        let error = loop {
            pages += 1;
            let cookie = pages.to_be_bytes();
            let empty = Page {
                cookie: &cookie,
                first_dn: None,
                progressed: false,
            };
            if let Err(e) = guard.check(&empty) {
                break e;
            }
            assert!(pages < 10 * MAX_EMPTY_PAGES_IN_A_ROW, "never stopped");
        };
        assert_eq!(error.code(), "DI015-protocol");
        assert_eq!(pages, MAX_EMPTY_PAGES_IN_A_ROW);
        // Entries in between reset the count.
        let mut guard = PageGuard::default();
        for i in 0..3 * MAX_EMPTY_PAGES_IN_A_ROW {
            let cookie = i.to_be_bytes();
            let dn = format!("uid={i}");
            let p = Page {
                cookie: &cookie,
                first_dn: (i % 500 == 0).then_some(dn.as_str()),
                progressed: i % 500 == 0,
            };
            guard.check(&p).unwrap();
        }
    }

    #[test]
    fn entries_are_parsed_without_panics() {
        let good = cons(
            TagClass::Application,
            4,
            vec![
                prim(4, b"uid=a,dc=x"),
                cons(
                    TagClass::Universal,
                    16,
                    vec![cons(
                        TagClass::Universal,
                        16,
                        vec![
                            prim(4, b"Mail"),
                            cons(
                                TagClass::Universal,
                                17,
                                vec![prim(4, b"a@x"), prim(4, b"b@x")],
                            ),
                        ],
                    )],
                ),
            ],
        );
        let (dn, values) = parse_entry(good).unwrap();
        assert_eq!(dn, "uid=a,dc=x");
        assert_eq!(lookup(&values, "mail"), vec![b"a@x".as_slice(), b"b@x"]);
        assert!(lookup(&values, "mail;x").is_empty());

        let bad = [
            prim(4, b"x"),
            cons(TagClass::Application, 5, vec![]),
            cons(TagClass::Application, 4, vec![]),
            cons(TagClass::Application, 4, vec![prim(4, b"\xff")]),
            cons(TagClass::Application, 4, vec![prim(4, b"dn")]),
            cons(
                TagClass::Application,
                4,
                vec![
                    prim(4, b"dn"),
                    cons(TagClass::Universal, 16, vec![prim(4, b"x")]),
                ],
            ),
            cons(
                TagClass::Application,
                4,
                vec![
                    prim(4, b"dn"),
                    cons(
                        TagClass::Universal,
                        16,
                        vec![cons(TagClass::Universal, 16, vec![prim(4, b"cn")])],
                    ),
                ],
            ),
        ];
        for tag in bad {
            assert_eq!(parse_entry(tag).unwrap_err().code(), "DI015-protocol");
        }
        assert_eq!(
            parse_reference(cons(
                TagClass::Application,
                19,
                vec![prim(4, b"ldap://other/dc=x"), prim(4, b"\xff")]
            )),
            vec!["ldap://other/dc=x"]
        );
        assert!(parse_reference(prim(4, b"x")).is_empty());
    }
}
