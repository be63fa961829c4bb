//! What a directory connector hands to the planner, and the settings an administrator gives.
//!
//! A directory type is one settings module here (`ldap.rs`, `ldif.rs`, `icewarp.rs`, `kerio.rs`, `active_directory.rs`: its struct, its checks, and its
//! [`TypeSettings`] implementation) plus one line in [`directory_types!`]. Everything the rest of Roster
//! does with settings (keep or require the service password, resolve file paths, describe them for the
//! audit log, pick the connector) goes through [`DirectorySettings::configured`], whose `match` has no
//! wildcard arm: a type that misses a behaviour doesn't compile.

mod active_directory;
mod guard;
mod icewarp;
mod kerio;
mod ldap;
mod ldif;
mod mail;
mod mapping;
mod schedule;

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

pub use active_directory::{
    ActiveDirectorySettings, AdAuthentication, AdProtocol, parse_dns_server,
};
pub use guard::{
    DEFAULT_MAX_DELETIONS, DEFAULT_MAX_DELETIONS_PERCENT, DeletionGuardSettings, GuardLimit,
};
pub use icewarp::IcewarpSettings;
pub use kerio::{ImapEndpoint, ImapSecurity, KerioSettings};
pub use ldap::{Encryption, LdapSettings};
pub use ldif::{LdifLimitSettings, LdifSettings};
pub use mail::{ServerEndpoint, UsernameFormat};
pub use mapping::{AttributeMapping, check_attribute_name, parse_attribute_list};
pub use schedule::{Schedule, ScheduleSettings};

/// One entry as read from a directory, before any validation. Connectors fill it; the planner judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryEntry {
    /// The stable identity (entryUUID, eDirectory GUID, objectGUID, …). Survives renames and moves.
    pub id: String,
    /// Where the entry is (an LDAP DN, or a line of an LDIF file): shown in reports, kept for logon.
    pub dn: String,
    /// The first value of the user-name attribute, if the entry has one.
    pub name: Option<String>,
    /// `None` when no full-name attribute is configured: the user's full name is then left as it is.
    pub full_name: Option<String>,
    /// `None` when no email attribute is configured: the user's addresses are then left as they are.
    pub emails: Option<Vec<String>>,
}

/// A secret given by the administrator. It has no `Serialize` and its `Debug` hides it, so it can't leak
/// into logs, API responses or error messages by accident.
#[derive(Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself, for the one place that sends it (a bind, an encryption).
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// What every directory type's settings can do. Implemented once per type, in its settings module.
pub trait TypeSettings: std::fmt::Debug + Send + Sync {
    /// Everything that can be checked without a network: done before anything is stored or connects.
    fn validate(&self) -> Result<(), SettingsError>;

    /// The service account's secret, if the type has one (`None` for a type that has no secret at all,
    /// `Some(None)` for a type whose secret wasn't given). Sealed at rest, never serialized.
    fn secret_slot(&mut self) -> Option<&mut Option<Secret>>;

    /// The secret, when the type has one and it was given.
    fn secret(&self) -> Option<&Secret>;

    /// What the secret is and what it is bound to, for messages; `None` for a type without a secret.
    fn secret_spec(&self) -> Option<SecretSpec>;

    /// The values the stored secret is bound to: the secret is kept when settings are replaced only if
    /// these are unchanged, so that pointing the settings at another server never sends it there.
    /// Compared as given, after the normalization each type applies (host names case-insensitively…).
    fn secret_target(&self) -> Vec<String>;

    /// A file that stands in for the secret (Active Directory's keytab): kept from the stored settings
    /// when left out, under the same rule as the secret ([`TypeSettings::secret_target`] unchanged).
    /// `None`: the type has none, or not with these settings.
    fn credential_file_spec(&self) -> Option<SecretSpec> {
        None
    }

    fn credential_file_slot(&mut self) -> Option<&mut Option<PathBuf>> {
        None
    }

    fn credential_file(&self) -> Option<&PathBuf> {
        None
    }

    /// Paths of files the settings name (an LDIF export, a CA certificate, a keytab), by key: a settings
    /// file may give them relative to itself, and the CLI makes them absolute.
    fn file_paths_mut(&mut self) -> Vec<(&'static str, &mut PathBuf)>;

    /// One line for the audit log: what the settings say, never the secret.
    fn describe(&self) -> String;

    /// The seed's "Automatically delete users".
    fn delete_users(&self) -> bool;

    /// How many deletions one sync may make without approval.
    fn deletion_guard(&self) -> &DeletionGuardSettings;

    /// When a sync runs by itself.
    fn schedule(&self) -> &ScheduleSettings;

    /// Where the read looks, in words, for a read that returned nobody: "base DN ou=People,dc=example,dc=com
    /// and filter (objectClass=inetOrgPerson)".
    fn read_scope(&self) -> String;
}

/// How a type's secret is named in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretSpec {
    /// The settings key (`password`).
    pub key: &'static str,
    /// "the service account's password (bind_dn)".
    pub what: &'static str,
    /// "the server, port, encryption, certificate settings or bind DN": what [`TypeSettings::secret_target`]
    /// holds, in words.
    pub bound_to: &'static str,
}

/// Lists the directory types, one line each: `Variant(SettingsType) = "type name"`. It defines
/// [`DirectorySettings`] (the settings as stored and as the API takes them, tagged by `type`),
/// [`DirectoryKind`] (the type on its own: the name of the settings' `type`, and the source of the links
/// that tie users to entries) and the one dispatch from a variant to its [`TypeSettings`].
macro_rules! directory_types {
    ($( $(#[$doc:meta])* $variant:ident($settings:ident) = $name:literal, )*) => {
        /// Directory settings, as `roster directory set --file settings.toml` and `PUT /api/v1/directory`
        /// take them.
        #[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
        #[serde(tag = "type")]
        pub enum DirectorySettings {
            /// Manual users only.
            #[serde(rename = "none")]
            None,
            $( $(#[$doc])* #[serde(rename = $name)] $variant($settings), )*
            /// A type this version doesn't have (a planned one, or a typo); refused with a clear message.
            #[serde(other, rename = "unsupported")]
            Unsupported,
        }

        /// A directory type.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum DirectoryKind {
            $( $variant, )*
        }

        impl DirectoryKind {
            pub const ALL: &'static [DirectoryKind] = &[$(DirectoryKind::$variant,)*];

            /// The settings' `type`, and the `source` of every link to an entry of this type.
            pub fn name(self) -> &'static str {
                match self {
                    $( DirectoryKind::$variant => $name, )*
                }
            }

            /// The name of the type's settings schema in the API document.
            pub fn schema_name(self) -> &'static str {
                match self {
                    $( DirectoryKind::$variant => stringify!($settings), )*
                }
            }
        }

        impl DirectorySettings {
            /// `none`, `unsupported`, or the kind's name.
            pub fn type_name(&self) -> &'static str {
                match self {
                    DirectorySettings::None => "none",
                    DirectorySettings::Unsupported => "unsupported",
                    $( DirectorySettings::$variant(_) => $name, )*
                }
            }

            /// The configured type and its settings; `None` when no directory is configured, or the type
            /// is one this version doesn't have.
            pub fn configured(&self) -> Option<(DirectoryKind, &dyn TypeSettings)> {
                match self {
                    DirectorySettings::None | DirectorySettings::Unsupported => None,
                    $( DirectorySettings::$variant(s) => Some((DirectoryKind::$variant, s)), )*
                }
            }

            pub fn configured_mut(&mut self) -> Option<(DirectoryKind, &mut dyn TypeSettings)> {
                match self {
                    DirectorySettings::None | DirectorySettings::Unsupported => None,
                    $( DirectorySettings::$variant(s) => Some((DirectoryKind::$variant, s)), )*
                }
            }
        }
    };
}

directory_types! {
    /// The seed's "LDAP Generic": OpenLDAP, eDirectory, 389-DS and any other LDAP server.
    Ldap(LdapSettings) = "ldap",
    /// Users from an LDIF export: for a first run without a server, and for offline imports.
    Ldif(LdifSettings) = "ldif",
    /// The seed's "IceWarp Server": user accounts of chosen domains and groups, through its XML API.
    Icewarp(IcewarpSettings) = "icewarp",
    /// The seed's "Kerio Connect": users of chosen domains and groups, through its Administration API;
    /// passwords checked by an IMAP login.
    Kerio(KerioSettings) = "kerio",
    /// The seed's "Active Directory": users of a Windows domain, found with its four filters and groups.
    ActiveDirectory(ActiveDirectorySettings) = "active-directory",
}

impl std::fmt::Display for DirectoryKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl DirectorySettings {
    pub fn kind(&self) -> Option<DirectoryKind> {
        self.configured().map(|(kind, _)| kind)
    }

    pub fn delete_users(&self) -> bool {
        self.configured().is_some_and(|(_, s)| s.delete_users())
    }

    /// The schedule (none when no directory is configured).
    pub fn schedule(&self) -> ScheduleSettings {
        self.configured()
            .map(|(_, s)| s.schedule().clone())
            .unwrap_or_default()
    }

    /// The deletion guard's limits (the defaults when no directory is configured).
    pub fn deletion_guard(&self) -> DeletionGuardSettings {
        self.configured()
            .map(|(_, s)| s.deletion_guard().clone())
            .unwrap_or_default()
    }

    /// The service secret, if the type has one and it is set.
    pub fn secret(&self) -> Option<&Secret> {
        self.configured().and_then(|(_, s)| s.secret())
    }

    /// For the audit log.
    pub fn describe(&self) -> String {
        match self.configured() {
            Some((kind, s)) => format!("directory type {kind}: {}", s.describe()),
            None => format!("directory type {} (manual users only)", self.type_name()),
        }
    }
}

/// A settings problem, named by the key at fault so that a form can show it next to the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SettingsError {
    pub key: &'static str,
    pub message: String,
}

pub(crate) fn settings_error(key: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError {
        key,
        message: message.into(),
    }
}

/// A file named in the settings is read by whichever process connects (the server, or a CLI started
/// elsewhere): a relative path would mean a different file to each. The CLI makes a path in a settings
/// file absolute against that file's directory before it gets here.
pub(crate) fn require_absolute(
    key: &'static str,
    path: &std::path::Path,
    what: &str,
) -> Result<(), SettingsError> {
    if path.is_absolute() {
        Ok(())
    } else {
        Err(settings_error(
            key,
            format!(
                "give {what}'s absolute path (a relative path would be resolved against the server's working directory)"
            ),
        ))
    }
}

/// `skip_serializing_if` for a secret: always skipped. `skip_serializing_if` rather than
/// `skip_serializing`, which would also drop the field from the API's schema.
pub(crate) fn never_shown(_: &Option<Secret>) -> bool {
    true
}

/// Never called (`never_shown` skips the field); `Secret` has no `Serialize`, on purpose.
pub(crate) fn refuse_to_serialize<S: serde::Serializer>(
    _: &Option<Secret>,
    _: S,
) -> Result<S::Ok, S::Error> {
    Err(serde::ser::Error::custom("a password is never serialized"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One example of each kind, with its secret set if it has one.
    fn example(kind: DirectoryKind) -> DirectorySettings {
        match kind {
            DirectoryKind::Ldap => DirectorySettings::Ldap(ldap::tests::example()),
            DirectoryKind::Ldif => DirectorySettings::Ldif(ldif::tests::example()),
            DirectoryKind::Icewarp => DirectorySettings::Icewarp(icewarp::tests::example()),
            DirectoryKind::Kerio => DirectorySettings::Kerio(kerio::tests::example()),
            DirectoryKind::ActiveDirectory => {
                DirectorySettings::ActiveDirectory(active_directory::tests::example())
            }
        }
    }

    #[test]
    fn every_kind_has_its_name_as_type_and_validates_its_example() {
        for &kind in DirectoryKind::ALL {
            let settings = example(kind);
            assert_eq!(settings.kind(), Some(kind));
            assert_eq!(settings.type_name(), kind.name());
            let json = serde_json::to_value(&settings).unwrap();
            assert_eq!(json["type"], kind.name(), "{kind}");
            let (_, s) = settings.configured().unwrap();
            s.validate().unwrap();
            assert!(
                settings
                    .describe()
                    .starts_with(&format!("directory type {kind}"))
            );
        }
    }

    /// The "done when" of the seam: for every kind with a secret, it is never serialized, a round trip
    /// through JSON (as stored) loses it, and changing any value it is bound to changes the target. The
    /// keep/require rule itself is tested in roster-app on these same examples.
    #[test]
    fn every_kind_keeps_its_secret_out_of_serialization() {
        for &kind in DirectoryKind::ALL {
            let mut settings = example(kind);
            let (_, s) = settings.configured_mut().unwrap();
            let Some(spec) = s.secret_spec() else {
                assert!(s.secret_slot().is_none(), "{kind}: a slot without a spec");
                assert!(s.secret().is_none());
                continue;
            };
            assert_eq!(spec.key, "password");
            *s.secret_slot().unwrap() = Some(Secret::new("hunter2-very-secret"));
            assert_eq!(s.secret().map(Secret::expose), Some("hunter2-very-secret"));
            let json = serde_json::to_string(&settings).unwrap();
            assert!(!json.contains("hunter2"), "{kind}: {json}");
            assert!(!format!("{settings:?}").contains("hunter2"), "{kind}");
            let back: DirectorySettings = serde_json::from_str(&json).unwrap();
            assert!(back.secret().is_none(), "{kind}");
        }
    }

    #[test]
    fn an_unknown_type_is_unsupported_and_none_is_none() {
        let s: DirectorySettings = serde_json::from_str(r#"{"type":"exchange"}"#).unwrap();
        assert_eq!(s, DirectorySettings::Unsupported);
        assert_eq!(s.kind(), None);
        let s: DirectorySettings = serde_json::from_str(r#"{"type":"none"}"#).unwrap();
        assert_eq!(s.type_name(), "none");
        assert!(!s.delete_users());
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        for &kind in DirectoryKind::ALL {
            let mut json = serde_json::to_value(example(kind)).unwrap();
            json["colour"] = "blue".into();
            let err = serde_json::from_value::<DirectorySettings>(json).unwrap_err();
            assert!(
                err.to_string().contains("unknown field `colour`"),
                "{kind}: {err}"
            );
        }
    }
}
