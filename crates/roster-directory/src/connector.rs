//! What a connector is: a reader of entries, and (for the types that can) a checker of passwords. The
//! two are separate traits so that a type that can't check passwords (an LDIF file) says so in its type,
//! not with an error at the first logon.

use std::sync::Arc;

use roster_core::directory::{DirectoryEntry, DirectoryKind, DirectorySettings};

use crate::error::DirectoryError;
use crate::logon::{LogonOutcome, LogonSubject};

/// Told how many entries a read has produced so far: after each page, and at least every 1000 entries.
pub trait ReadProgress: Send + Sync {
    fn entries_read(&self, total_so_far: u64);

    /// The entries of a page a full read has just read, handed over before the next page is asked for: a
    /// caller that works on entries as they come (a sync prepares them for its plan while the directory
    /// sends the next page, issue 26 item 2) takes them (`std::mem::take`, or some of them from the
    /// front), and the read then counts them in [`DirectoryRead::handed_over`] instead of returning them
    /// in [`DirectoryRead::entries`]. Called only by reads that need the page's entries no more. The read
    /// stays all or nothing: a read that fails after handing pages over returns its error, and the
    /// caller drops what it took. Default: leaves them.
    fn page_read(&self, _page: &mut Vec<DirectoryEntry>) {}
}

/// For callers that don't show progress.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl ReadProgress for NoProgress {
    fn entries_read(&self, _total_so_far: u64) {}
}

/// The result of a complete read. There is no partial result: a read that fails returns an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirectoryRead {
    /// The entries read, but for the first [`Self::handed_over`] ones, which the read's progress took as
    /// they came ([`ReadProgress::page_read`]).
    pub entries: Vec<DirectoryEntry>,
    /// How many entries, before [`Self::entries`], the read handed over to its progress.
    pub handed_over: u64,
    /// Paged-results pages (1 for an LDIF file).
    pub pages: u64,
    /// Entries whose id is derived from their DN, so a rename will look like delete + create.
    pub without_stable_id: u64,
    /// Search result references skipped (Active Directory only; generic LDAP fails on them).
    pub references_skipped: u64,
    /// Disabled accounts left out of the read (IceWarp).
    pub disabled_skipped: u64,
    /// What an entry without a stable id is identified by, for the report's warning ("their primary
    /// address"); `None`: their DN.
    pub identified_by: Option<&'static str>,
    /// Lines for the top of the run's report: the scope rule the read applied, what it left out.
    pub notes: Vec<String>,
}

impl DirectoryRead {
    /// Every entry the read found: those handed over as they came, and those returned.
    pub fn entry_count(&self) -> u64 {
        self.handed_over + self.entries.len() as u64
    }
}

/// What an incremental read found since a cookie (RFC 4533 refreshOnly against OpenLDAP's syncprov;
/// DirSync against Active Directory).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeRead {
    /// How the changes were read, for the run's report ("content synchronization, delete phase").
    pub how: String,
    /// Entries added or changed since the cookie (entering the filter's scope counts as added).
    pub changed: Vec<DirectoryEntry>,
    /// Ids of entries deleted (or gone out of scope) since the cookie. Only the ids of linked users
    /// mean anything: Active Directory's read also names every changed object of the domain that isn't
    /// in scope, whether it ever was or not.
    pub deleted: Vec<String>,
    /// The present phase: ids of every entry still in scope and unchanged; an entry neither here nor in
    /// `changed` has gone. `None`: the delete phase, where entries not mentioned are unchanged.
    pub present: Option<Vec<String>>,
    /// The cookie to ask from next time (stored with the apply).
    pub cookie: Vec<u8>,
    /// Changed entries without a stable id (counted as a full read counts them).
    pub without_stable_id: u64,
}

/// The answer to an incremental read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Changes {
    /// The changes since the cookie; without a cookie, no changes and the cookie of now.
    Read(ChangeRead),
    /// The changes since this cookie can't be read (`e-syncRefreshRequired`, a cookie the server
    /// refused, another domain controller, a change whose effect on the scope only a full read can
    /// tell): read everything. Why, in words, for the run's report.
    RefreshRequired(String),
    /// No incremental reads here: the server doesn't offer them, or the type has none. Why, in words.
    Unsupported(String),
}

/// Reads the users of a directory.
#[async_trait::async_trait]
pub trait DirectoryReader: Send + Sync + std::fmt::Debug {
    /// Reads every entry in scope. Fails as a whole (never a partial result) on any error.
    async fn read_entries(
        &self,
        progress: &dyn ReadProgress,
    ) -> Result<DirectoryRead, DirectoryError>;

    /// Connects and authenticates with the service account only (or opens the file): "test connection".
    async fn check_connection(&self) -> Result<(), DirectoryError>;

    /// An incremental read: what changed since `cookie` (without one: only the cookie of now, to be taken
    /// just before a full read, so that the next incremental read misses nothing). All or nothing, like a
    /// full read. Default: [`Changes::Unsupported`].
    async fn read_changes(&self, _cookie: Option<&[u8]>) -> Result<Changes, DirectoryError> {
        Ok(Changes::Unsupported(
            "this directory type has no incremental reads".into(),
        ))
    }

    /// One user's entry, for a sync of that user alone (`roster sync --user`): the entry with the link's
    /// id, else the one with the user's name, within the same scope as [`Self::read_entries`]; none if
    /// there is no such entry. A name that matches several entries is an error (the plan couldn't tell
    /// which is the user). The default reads everything and keeps the match, which is right for any
    /// type; the LDAP types search for the one entry.
    async fn read_user(&self, subject: &LogonSubject<'_>) -> Result<DirectoryRead, DirectoryError> {
        let mut read = self.read_entries(&NoProgress).await?;
        let by_id = subject
            .id
            .and_then(|id| read.entries.iter().position(|e| e.id == id));
        let wanted = roster_core::names::name_key(subject.name);
        let found: Vec<usize> = match by_id {
            Some(at) => vec![at],
            None => read
                .entries
                .iter()
                .enumerate()
                .filter(|(_, e)| {
                    e.name
                        .as_deref()
                        .is_some_and(|n| roster_core::names::name_key(n) == wanted)
                })
                .map(|(at, _)| at)
                .collect(),
        };
        if found.len() > 1 {
            return Err(DirectoryError::AmbiguousUser {
                name: subject.name.to_owned(),
            });
        }
        let entries = std::mem::take(&mut read.entries);
        read.entries = entries
            .into_iter()
            .enumerate()
            .filter(|(at, _)| found.contains(at))
            .map(|(_, e)| e)
            .collect();
        read.pages = 0;
        Ok(read)
    }
}

/// Checks a user's password against the directory.
#[async_trait::async_trait]
pub trait PasswordChecker: Send + Sync + std::fmt::Debug {
    /// An empty password is refused before any network call (a bind with one is anonymous).
    async fn authenticate(
        &self,
        subject: &LogonSubject<'_>,
        password: &roster_core::directory::Secret,
    ) -> Result<LogonOutcome, DirectoryError>;
}

/// Whether the account a Kerberos ticket names may log on (single sign-on, where there is no password
/// to check): the entry is still in scope (base and filter, found through the user's link when there
/// is one) and enabled. Active Directory only.
#[async_trait::async_trait]
pub trait AccountCheck: Send + Sync + std::fmt::Debug {
    /// The Kerberos realm of the directory's accounts (`COMPANY.LOCAL`).
    fn realm(&self) -> String;
    async fn account_usable(
        &self,
        subject: &LogonSubject<'_>,
    ) -> Result<LogonOutcome, DirectoryError>;
}

/// A domain on the directory's server, for the settings' picker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedDomain {
    pub name: String,
    pub description: String,
    /// As the server counts them (every account type).
    pub accounts: u64,
}

/// A group on the directory's server, for the settings' picker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedGroup {
    /// Its address, as the settings' `groups` take it.
    pub address: String,
    pub name: String,
}

/// Lists what a directory's server has to choose from (`roster directory domains|groups`).
#[async_trait::async_trait]
pub trait DirectoryListing: Send + Sync + std::fmt::Debug {
    async fn domains(&self) -> Result<Vec<ListedDomain>, DirectoryError>;
    async fn groups(&self) -> Result<Vec<ListedGroup>, DirectoryError>;
}

/// A directory as the use cases see it. Cheap to clone; connections are opened lazily and shared.
#[derive(Debug, Clone)]
pub struct Connector {
    pub kind: DirectoryKind,
    pub reader: Arc<dyn DirectoryReader>,
    /// `None` for a type whose users can't log on with a directory password.
    pub passwords: Option<Arc<dyn PasswordChecker>>,
    /// `None` for a type without domains and groups to choose from.
    pub listing: Option<Arc<dyn DirectoryListing>>,
    /// `None` for a type whose users can't log on by Kerberos (all but Active Directory).
    pub accounts: Option<Arc<dyn AccountCheck>>,
}

impl Connector {
    /// The password checker, or the error that says this type's users can't log on with a directory
    /// password.
    pub fn password_checker(&self) -> Result<&dyn PasswordChecker, DirectoryError> {
        self.passwords
            .as_deref()
            .ok_or(DirectoryError::LogonUnsupported { kind: self.kind })
    }

    /// The lister of domains and groups, or the error that says this type has none; `what` names
    /// what was asked for ("domains", "groups").
    pub fn listing(&self, what: &'static str) -> Result<&dyn DirectoryListing, DirectoryError> {
        self.listing
            .as_deref()
            .ok_or(DirectoryError::ListingUnsupported {
                kind: self.kind,
                what,
            })
    }
}

/// Makes connectors from settings. The use cases take one, so that their own tests can put a fake
/// directory behind the same run and logon code ([`RealConnectors`] everywhere else).
pub trait ConnectorFactory: Send + Sync + std::fmt::Debug {
    /// Validates the settings (filter syntax etc.) BEFORE any network I/O and builds the connector.
    fn connector(&self, settings: &DirectorySettings) -> Result<Connector, DirectoryError>;
}

/// The connectors of this crate, one per [`DirectoryKind`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RealConnectors;

impl ConnectorFactory for RealConnectors {
    fn connector(&self, settings: &DirectorySettings) -> Result<Connector, DirectoryError> {
        crate::connector(settings)
    }
}
