//! Directory connectors: they read user entries and check passwords, and nothing else. What the
//! entries mean for Roster's users is the planner's business (`roster_core::plan`); connectors never
//! touch the user database.
//!
//! * [`connector`] turns [`DirectorySettings`] into a [`Connector`], checking everything that can be
//!   checked without a network first. Connections are opened lazily.
//! * `ldap_engine`: the LDAP protocol work (a paged subtree read with the service account, RFC 2696
//!   encoded by us; search-then-bind logons on a separate connection), configured by an
//!   [`ldap_engine::LdapEngineConfig`] that each LDAP-speaking type maps its settings into.
//! * `ldap`: generic LDAP settings → engine config. `ldif`: the same read from a file; no logons.
//! * `icewarp`: IceWarp Server's XML API over HTTPS (reqwest): read, `getauthtoken` logons, and the
//!   domains and groups for the settings' picker.
//! * `active_directory`: Active Directory through the LDAP engine, once the domain controller (DNS SRV,
//!   `dns`), base DN, schema and groups are known.
//! * `kerio`: Kerio Connect's JSON-RPC Administration API (reqwest): read, domains and groups for the
//!   picker; passwords checked by an IMAP login (`imap`: TLS only, PLAIN or LOGIN, never CRAM-MD5).

mod active_directory;
mod ber;
mod connector;
mod content_sync;
mod dirsync;
mod dns;
mod error;
#[cfg(test)]
mod fuzz;
mod http;
mod icewarp;
mod ids;
mod imap;
mod kerio;
mod ldap;
mod ldap_engine;
mod ldif;
mod logon;
mod mapping;
mod sasl;
mod tls;

use roster_core::directory::DirectorySettings;

pub use active_directory::DNS_SERVER_VARIABLE;
pub use connector::{
    AccountCheck, ChangeRead, Changes, Connector, ConnectorFactory, DirectoryListing,
    DirectoryRead, DirectoryReader, ListedDomain, ListedGroup, NoProgress, PasswordChecker,
    ReadProgress, RealConnectors,
};
pub use error::DirectoryError;
pub use logon::{LogonOutcome, LogonSubject, RejectReason};

/// Validates the settings (filter syntax etc.) BEFORE any network I/O and builds the connector for
/// their type. Connects lazily.
pub fn connector(settings: &DirectorySettings) -> Result<Connector, DirectoryError> {
    match settings {
        DirectorySettings::None => Err(DirectoryError::NotConfigured),
        DirectorySettings::Unsupported => Err(DirectoryError::UnsupportedType),
        DirectorySettings::Ldap(s) => ldap::connector(s),
        DirectorySettings::Ldif(s) => ldif::connector(s),
        DirectorySettings::Icewarp(s) => icewarp::connector(s),
        DirectorySettings::Kerio(s) => kerio::connector(s),
        DirectorySettings::ActiveDirectory(s) => active_directory::connector(s),
    }
}

/// Install the aws-lc-rs rustls provider as process default (idempotent); call from main and tests.
/// Our own TLS configs name the provider explicitly; this is for other rustls users in the process.
pub fn install_crypto_provider() {
    // Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
