//! The generic LDAP connector: a paged subtree read with the service account, and search-then-bind logons.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::time::Duration;

use ldap3::asn1::StructureTag;
use ldap3::controls::RawControl;
use ldap3::{
    Ldap, LdapConnAsync, LdapConnSettings, LdapError, LdapResult, Scope, SearchOptions,
    SearchResult, SearchStream,
};
use roster_core::directory::{Encryption, LdapSettings, Secret};
use roster_core::filter::{LdapFilter, escape_value};
use rustls::ClientConfig;
use tokio::sync::Mutex;

use crate::ber::{PAGED_RESULTS_OID, decode_paged_response, encode_paged_request};
use crate::error::DirectoryError;
use crate::mapping::{AttributeMap, ID_ATTRIBUTES, entry_id};
use crate::{DirectoryRead, LogonOutcome, LogonSubject, ReadProgress, RejectReason, dn, tls};

const READING: &str = "reading the users";
const BINDING: &str = "binding the service account";
const LOOKING_UP: &str = "looking up the user who logs on";
const CHECKING_PASSWORD: &str = "checking the user's password";

/// How a read treats what a generic LDAP server and Active Directory do differently.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadOptions {
    /// Active Directory returns continuation references (to DomainDnsZones etc.) in every subtree
    /// search from a domain root: skip and count them. Generic LDAP treats them as an error, since
    /// users behind a reference would be missing from the read.
    pub(crate) skip_references: bool,
}

pub(crate) struct LdapDirectory {
    server: String,
    port: u16,
    url: String,
    encryption: Encryption,
    tls: Option<Arc<ClientConfig>>,
    bind_dn: String,
    password: Secret,
    base_dn: String,
    filter: LdapFilter,
    attributes: AttributeMap,
    page_size: u32,
    timeout_seconds: u32,
    read_options: ReadOptions,
    /// The bound service connection, kept between reads and logons. `Ldap` multiplexes operations, so
    /// callers work on clones; the lock only guards (re)connecting.
    service: Mutex<Option<Ldap>>,
    /// Set when a read was dropped before it finished (a client gone, a run cancelled): the service
    /// connection may still be mid-search, so the next operation starts on a fresh one. A flag, not the
    /// lock, because it is set from `Drop`, which can't wait for the lock.
    service_interrupted: AtomicBool,
}

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

impl std::fmt::Debug for LdapDirectory {
    // By hand: the TLS config's Debug is long and the password must not appear (Secret hides itself,
    // but being explicit keeps it out even if the field type ever changes).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LdapDirectory")
            .field("url", &self.url)
            .field("encryption", &self.encryption)
            .field("bind_dn", &self.bind_dn)
            .field("base_dn", &self.base_dn)
            .field("filter", &self.filter.as_str())
            .field("attributes", &self.attributes)
            .field("page_size", &self.page_size)
            .field("timeout_seconds", &self.timeout_seconds)
            .finish_non_exhaustive()
    }
}

enum Lookup {
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

impl LdapDirectory {
    pub(crate) fn new(
        settings: &LdapSettings,
        read_options: ReadOptions,
    ) -> Result<LdapDirectory, DirectoryError> {
        let filter = settings.validate()?;
        // ldap3 encodes the filter with its own parser; a filter our parser accepts but ldap3's doesn't
        // must fail here, with the settings, not later in the middle of a sync.
        if ldap3::parse_filter(filter.as_str()).is_err() {
            return Err(DirectoryError::settings(
                "filter",
                "the LDAP client can't encode this filter; simplify it (e.g. avoid extensible matches) or report it",
            ));
        }
        let password = match &settings.password {
            Some(p) if !p.is_empty() => p.clone(),
            // ldap3 sends an empty password as an unauthenticated bind, which some servers accept as
            // anonymous: refuse it here rather than read the directory as nobody.
            _ => {
                return Err(DirectoryError::settings(
                    "password",
                    "give the service account's password; an empty password would be an anonymous bind",
                ));
            }
        };
        let server = settings.server.trim().to_owned();
        let port = settings.effective_port();
        let host = if server.contains(':') {
            format!("[{server}]")
        } else {
            server.clone()
        };
        let scheme = match settings.encryption {
            Encryption::Ssl => "ldaps",
            Encryption::None | Encryption::Starttls => "ldap",
        };
        let tls = match settings.encryption {
            Encryption::None => {
                if settings.ca_file.is_some() || settings.ignore_certificate_errors {
                    tracing::warn!(
                        "ca_file and ignore_certificate_errors have no effect with encryption = \"none\""
                    );
                }
                None
            }
            Encryption::Starttls | Encryption::Ssl => Some(tls::client_config(
                settings.ca_file.as_deref(),
                settings.ignore_certificate_errors,
            )?),
        };
        let email_attributes = roster_core::directory::parse_attribute_list(
            "email_attributes",
            settings.email_attributes.as_deref(),
        )?;
        Ok(LdapDirectory {
            url: format!("{scheme}://{host}:{port}"),
            server,
            port,
            encryption: settings.encryption,
            tls,
            bind_dn: settings.bind_dn.trim().to_owned(),
            password,
            base_dn: settings.base_dn.trim().to_owned(),
            filter,
            attributes: AttributeMap::new(
                &settings.username_attribute,
                settings.full_name_attribute.as_deref(),
                email_attributes,
            ),
            page_size: settings.page_size(),
            timeout_seconds: settings.timeout_seconds(),
            read_options,
            service: Mutex::new(None),
            service_interrupted: AtomicBool::new(false),
        })
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.timeout_seconds))
    }

    /// A new, unbound connection with the configured encryption.
    async fn open(&self) -> Result<Ldap, DirectoryError> {
        let mut settings = LdapConnSettings::new().set_conn_timeout(self.timeout());
        if self.encryption == Encryption::Starttls {
            settings = settings.set_starttls(true);
        }
        if let Some(config) = &self.tls {
            settings = settings.set_config(config.clone());
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

    fn connect_error(&self, error: LdapError) -> DirectoryError {
        let connect = |detail: String| DirectoryError::Connect {
            server: self.server.clone(),
            port: self.port,
            detail,
        };
        let tls_error = |e: &rustls::Error| {
            if tls::certificate_problem(e) {
                DirectoryError::CertificateUntrusted {
                    server: self.server.clone(),
                    port: self.port,
                    detail: e.to_string(),
                }
            } else {
                DirectoryError::Tls {
                    server: self.server.clone(),
                    port: self.port,
                    detail: e.to_string(),
                    hint: "check that the port and `encryption` match the server (ldaps is usually port 636, StartTLS uses the LDAP port 389)",
                }
            }
        };
        match error {
            LdapError::Timeout { .. } if self.encryption == Encryption::Starttls => {
                connect(format!(
                    "no answer within {} s: the server may be unreachable, or this may be an LDAPS port (usually 636), which waits for a TLS handshake and never answers the StartTLS request; then set `encryption = \"ssl\"`",
                    self.timeout_seconds
                ))
            }
            LdapError::Timeout { .. } => {
                connect(format!("no answer within {} s", self.timeout_seconds))
            }
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
                let tls_in_use = self.encryption != Encryption::None;
                let handshake_failure = matches!(
                    source.kind(),
                    std::io::ErrorKind::UnexpectedEof
                        | std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::InvalidData
                );
                if tls_in_use && handshake_failure {
                    DirectoryError::Tls {
                        server: self.server.clone(),
                        port: self.port,
                        detail: source.to_string(),
                        hint: "the server closed the connection during the TLS handshake: check that the port and `encryption` match the server (ldaps is usually port 636, StartTLS uses the LDAP port 389)",
                    }
                } else {
                    connect(source.to_string())
                }
            }
            LdapError::LdapResult { result } => DirectoryError::Tls {
                server: self.server.clone(),
                port: self.port,
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
                    self.server
                ),
            ),
            LdapError::UrlParsing { source } => DirectoryError::settings(
                "server",
                format!("{:?} is not a valid host name ({source})", self.server),
            ),
            other => connect(other.to_string()),
        }
    }

    /// Maps an ldap3 error from an operation on an open connection.
    fn op_error(&self, error: LdapError, operation: &'static str, entries: u64) -> DirectoryError {
        match error {
            LdapError::Timeout { .. } => DirectoryError::Timeout {
                operation,
                seconds: self.timeout_seconds,
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
                operation,
                entries,
                detail: other.to_string(),
                hint: if operation == BINDING && self.encryption != Encryption::Ssl {
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
        let mut ldap = self.open().await?;
        let result = ldap
            .with_timeout(self.timeout())
            .simple_bind(&self.bind_dn, self.password.expose())
            .await
            .map_err(|e| self.op_error(e, BINDING, 0))?;
        if result.rc != 0 {
            let _ = ldap.unbind().await;
            return Err(DirectoryError::ServiceBind {
                bind_dn: self.bind_dn.clone(),
                rc: result.rc,
                message: result.text,
            });
        }
        Ok(ldap)
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
        if let Some(ldap) = slot.as_mut()
            && !ldap.is_closed()
        {
            return Ok(ldap.clone());
        }
        *slot = None;
        let ldap = self.open_service().await?;
        *slot = Some(ldap.clone());
        Ok(ldap)
    }

    /// Drops the cached service connection after it failed, so the next operation reconnects.
    async fn forget_service(&self) {
        *self.service.lock().await = None;
    }

    pub(crate) async fn check_connection(&self) -> Result<(), DirectoryError> {
        // A fresh connection, not the cached one: the point is to test the settings as they are now.
        let mut ldap = self.open_service().await?;
        let _ = ldap.unbind().await;
        Ok(())
    }

    pub(crate) async fn read_entries(
        &self,
        progress: &dyn ReadProgress,
    ) -> Result<DirectoryRead, DirectoryError> {
        let mut guard = ReadGuard {
            interrupted: &self.service_interrupted,
            finished: false,
        };
        let result = self.read(progress).await;
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

    async fn read(&self, progress: &dyn ReadProgress) -> Result<DirectoryRead, DirectoryError> {
        // A read is never retried: the planner must see one consistent answer or none.
        let mut ldap = self.service().await?;
        let attrs = self.attributes.requested_attributes();
        let mut read = DirectoryRead {
            entries: Vec::new(),
            pages: 0,
            without_stable_id: 0,
            references_skipped: 0,
        };
        let mut cookie: Vec<u8> = Vec::new();
        let mut guard = PageGuard::default();
        loop {
            let entries_before = read.entries.len();
            let references_before = read.references_skipped;
            let control = RawControl {
                ctype: PAGED_RESULTS_OID.to_owned(),
                crit: true,
                val: Some(encode_paged_request(self.page_size, &cookie)),
            };
            let result = self
                .read_page(&mut ldap, control, &attrs, &mut read, progress)
                .await?;
            read.pages += 1;
            let count = read.entries.len() as u64;
            progress.entries_read(count);
            match result.rc {
                0 => {}
                3 => return Err(DirectoryError::TimeLimit { entries: count }),
                4 => return Err(DirectoryError::SizeLimit { entries: count }),
                10 => return Err(DirectoryError::Referral { refs: result.refs }),
                32 => {
                    return Err(DirectoryError::NoSuchBase {
                        base_dn: self.base_dn.clone(),
                    });
                }
                rc => {
                    return Err(DirectoryError::Search {
                        rc,
                        message: result.text,
                    });
                }
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
                first_dn: read.entries.get(entries_before).map(|e| e.dn.as_str()),
                progressed: read.entries.len() > entries_before
                    || read.references_skipped > references_before,
            };
            guard.check(&page)?;
        }
        Ok(read)
    }

    /// Reads one page into `read`, mapping each entry as it arrives (ldap3's per-entry maps would
    /// hold every attribute of 100k entries otherwise), and returns the page's result.
    async fn read_page(
        &self,
        ldap: &mut Ldap,
        control: RawControl,
        attrs: &[String],
        read: &mut DirectoryRead,
        progress: &dyn ReadProgress,
    ) -> Result<LdapResult, DirectoryError> {
        let entries_so_far = |read: &DirectoryRead| read.entries.len() as u64;
        let mut stream: SearchStream<'_, &str, Vec<&str>> = ldap
            .with_controls(vec![control])
            .with_timeout(self.timeout())
            .streaming_search(
                &self.base_dn,
                Scope::Subtree,
                self.filter.as_str(),
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
                if self.read_options.skip_references {
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
            let (entry_dn, values) = parse_entry(item.0)?;
            let (entry, stable) = self.attributes.map(&entry_dn, |name| lookup(&values, name));
            if !stable {
                read.without_stable_id += 1;
            }
            read.entries.push(entry);
            if read.entries.len().is_multiple_of(1000) {
                progress.entries_read(entries_so_far(read));
            }
        }
        Ok(stream.finish().await)
    }

    pub(crate) async fn authenticate(
        &self,
        subject: &LogonSubject<'_>,
        password: &Secret,
    ) -> Result<LogonOutcome, DirectoryError> {
        // Before any network call: ldap3 would turn an empty password into an unauthenticated bind,
        // which some servers answer with success.
        if password.is_empty() {
            return Ok(LogonOutcome::Rejected(RejectReason::EmptyPassword));
        }
        let lookup = match self.find_user(subject).await {
            Err(DirectoryError::Disconnected { .. }) => {
                // The cached connection went stale (server restart, idle timeout): one retry on a
                // fresh one, so that a logon doesn't fail just because nobody logged on for a while.
                self.forget_service().await;
                self.find_user(subject).await
            }
            other => other,
        };
        let lookup = match lookup {
            Ok(l) => l,
            Err(e) => {
                if matches!(
                    e,
                    DirectoryError::Disconnected { .. } | DirectoryError::Timeout { .. }
                ) {
                    self.forget_service().await;
                }
                return Err(e);
            }
        };
        let user_dn = match lookup {
            Lookup::Found(dn) => dn,
            Lookup::NotFound => return Ok(LogonOutcome::Rejected(RejectReason::NotFound)),
            Lookup::Ambiguous => return Ok(LogonOutcome::Rejected(RejectReason::Ambiguous)),
        };
        // A separate connection: a bind changes the identity of the whole connection, and the service
        // connection must stay the service account.
        let mut conn = self.open().await?;
        let bind = conn
            .with_timeout(self.timeout())
            .simple_bind(&user_dn, password.expose())
            .await;
        let _ = conn.with_timeout(self.timeout()).unbind().await;
        drop(conn);
        let result = bind.map_err(|e| self.op_error(e, CHECKING_PASSWORD, 0))?;
        Ok(match result.rc {
            0 => LogonOutcome::Accepted { dn: user_dn },
            49 => LogonOutcome::Rejected(RejectReason::WrongPassword),
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
            if dn::is_at_or_below(stored, &self.base_dn) {
                let found = self
                    .search_candidates(
                        &mut ldap,
                        stored,
                        Scope::Base,
                        self.filter.as_str(),
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
            self.attributes.username,
            escape_value(subject.name)
        );
        let Ok(clause) = LdapFilter::parse(&clause) else {
            // Only reachable with characters no user name can hold (escape_value handles the rest).
            return Ok(Lookup::NotFound);
        };
        let filter = self.filter.and(&clause);
        let found = self
            .search_candidates(
                &mut ldap,
                &self.base_dn,
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
            (LINKED_LOOKUP_LIMIT, ID_ATTRIBUTES.to_vec())
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
            32 => {
                return Err(DirectoryError::NoSuchBase {
                    base_dn: self.base_dn.clone(),
                });
            }
            rc => {
                return Err(DirectoryError::Search {
                    rc,
                    message: result.text,
                });
            }
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
            let id = with_ids.then(|| entry_id(&entry_dn, &|name| lookup(&values, name)).0);
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

/// Attribute values of one entry as sent by the server.
type Values = Vec<(String, Vec<Vec<u8>>)>;

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
fn parse_entry(tag: StructureTag) -> Result<(String, Values), DirectoryError> {
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
fn parse_reference(tag: StructureTag) -> Vec<String> {
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
            server: "127.0.0.1".into(),
            port: Some(slapd.port()),
            encryption: Encryption::None,
            ignore_certificate_errors: false,
            ca_file: None,
            bind_dn: slapd.root_dn().into(),
            password: Some(Secret::new(slapd.root_password())),
            base_dn: people,
            filter: "(objectClass=inetOrgPerson)".into(),
            username_attribute: "uid".into(),
            full_name_attribute: None,
            email_attributes: None,
            delete_users: false,
            page_size: Some(10),
            timeout_seconds: Some(10),
        };
        let dir = LdapDirectory::new(
            &settings,
            ReadOptions {
                skip_references: true,
            },
        )
        .unwrap();
        let read = dir.read_entries(&crate::NoProgress).await.unwrap();
        assert_eq!(read.entries.len(), 1);
        assert_eq!(read.references_skipped, 1);
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
