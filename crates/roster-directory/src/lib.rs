//! Directory connectors: they read user entries and check passwords, and nothing else. What the
//! entries mean for Roster's users is the planner's business (`roster_core::plan`); connectors never
//! touch the user database.
//!
//! * [`connector`] turns [`DirectorySettings`] into a [`Directory`], checking everything that can be
//!   checked without a network first. Connections are opened lazily.
//! * LDAP (`ldap`): a paged subtree read with the service account (RFC 2696, encoded by us), and
//!   search-then-bind logons on a separate connection.
//! * LDIF (`ldif`): the same read from a file; no logons.

mod ber;
mod dn;
mod error;
mod ldap;
mod ldif;
mod mapping;
mod tls;

use std::sync::Arc;

use roster_core::directory::{DirectoryEntry, DirectorySettings, Secret};

pub use error::DirectoryError;

/// Told how many entries a read has produced so far: after each page, and at least every 1000 entries.
pub trait ReadProgress: Send + Sync {
    fn entries_read(&self, total_so_far: u64);
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
    pub entries: Vec<DirectoryEntry>,
    /// Paged-results pages (1 for an LDIF file).
    pub pages: u64,
    /// Entries whose id is derived from their DN, so a rename will look like delete + create.
    pub without_stable_id: u64,
    /// Search result references skipped (Active Directory only; generic LDAP fails on them).
    pub references_skipped: u64,
}

/// Who is logging on.
#[derive(Debug, Clone, Copy)]
pub struct LogonSubject<'a> {
    /// The Roster user name.
    pub name: &'a str,
    /// The DN last seen by a sync, if any: tried first, but only if still in scope.
    pub dn: Option<&'a str>,
    /// The id of the entry the user is linked to in this directory, exactly as a read gives it in
    /// [`DirectoryEntry::id`] (entryUUID, formatted GUID, nsUniqueId or `dn:...`). When given, only the
    /// entry with this id is accepted, whether found by `dn` or by name; when `None` (a user created in
    /// Roster and switched to directory authentication), the name must match exactly one entry.
    pub id: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogonOutcome {
    Accepted { dn: String },
    Rejected(RejectReason),
}

/// Why a logon was rejected: for the audit log only; the user always sees the same answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    EmptyPassword,
    NotFound,
    Ambiguous,
    WrongPassword,
    /// The directory knows the password check failed for another reason (locked, expired, disabled:
    /// LDAP result codes such as 50 or 53).
    AccountUnusable,
}

#[async_trait::async_trait]
pub trait Directory: Send + Sync + std::fmt::Debug {
    /// `"ldap"` or `"ldif"`: the settings' type name, used as the source of directory links.
    fn source(&self) -> &'static str;

    /// Reads every entry in scope. Fails as a whole (never a partial result) on any error.
    async fn read_entries(
        &self,
        progress: &dyn ReadProgress,
    ) -> Result<DirectoryRead, DirectoryError>;

    /// Checks a user's password against the directory.
    async fn authenticate(
        &self,
        subject: &LogonSubject<'_>,
        password: &Secret,
    ) -> Result<LogonOutcome, DirectoryError>;

    /// Connect and bind with the service account only (for "test connection" checks).
    async fn check_connection(&self) -> Result<(), DirectoryError>;
}

/// Validates the settings (filter syntax etc. BEFORE any network I/O) and builds the connector.
/// Connects lazily.
pub fn connector(settings: &DirectorySettings) -> Result<Arc<dyn Directory>, DirectoryError> {
    match settings {
        DirectorySettings::None => Err(DirectoryError::NotConfigured),
        DirectorySettings::Unsupported => Err(DirectoryError::UnsupportedType),
        DirectorySettings::Ldap(s) => Ok(Arc::new(ldap::LdapDirectory::new(
            s,
            ldap::ReadOptions {
                skip_references: false,
            },
        )?)),
        DirectorySettings::Ldif(s) => Ok(Arc::new(ldif::LdifDirectory::new(s)?)),
    }
}

/// Install the aws-lc-rs rustls provider as process default (idempotent); call from main and tests.
/// Our own TLS configs name the provider explicitly; this is for other rustls users in the process.
pub fn install_crypto_provider() {
    // Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

#[async_trait::async_trait]
impl Directory for ldap::LdapDirectory {
    fn source(&self) -> &'static str {
        "ldap"
    }

    async fn read_entries(
        &self,
        progress: &dyn ReadProgress,
    ) -> Result<DirectoryRead, DirectoryError> {
        ldap::LdapDirectory::read_entries(self, progress).await
    }

    async fn authenticate(
        &self,
        subject: &LogonSubject<'_>,
        password: &Secret,
    ) -> Result<LogonOutcome, DirectoryError> {
        ldap::LdapDirectory::authenticate(self, subject, password).await
    }

    async fn check_connection(&self) -> Result<(), DirectoryError> {
        ldap::LdapDirectory::check_connection(self).await
    }
}

#[async_trait::async_trait]
impl Directory for ldif::LdifDirectory {
    fn source(&self) -> &'static str {
        "ldif"
    }

    async fn read_entries(
        &self,
        progress: &dyn ReadProgress,
    ) -> Result<DirectoryRead, DirectoryError> {
        ldif::LdifDirectory::read_entries(self, progress).await
    }

    async fn authenticate(
        &self,
        _subject: &LogonSubject<'_>,
        _password: &Secret,
    ) -> Result<LogonOutcome, DirectoryError> {
        Err(DirectoryError::LogonUnsupported)
    }

    async fn check_connection(&self) -> Result<(), DirectoryError> {
        ldif::LdifDirectory::check_connection(self).await
    }
}
