//! What a directory connector hands to the planner, and the settings an administrator gives.

use crate::filter::LdapFilter;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

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

/// Directory settings, as `roster directory set --file settings.toml` and `PUT /api/v1/directory` take them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum DirectorySettings {
    /// Manual users only.
    None,
    Ldap(LdapSettings),
    Ldif(LdifSettings),
    /// Planned (Active Directory, IceWarp, Kerio Connect); refused with a clear message until then.
    #[serde(other)]
    Unsupported,
}

impl DirectorySettings {
    pub fn type_name(&self) -> &'static str {
        match self {
            DirectorySettings::None => "none",
            DirectorySettings::Ldap(_) => "ldap",
            DirectorySettings::Ldif(_) => "ldif",
            DirectorySettings::Unsupported => "unsupported",
        }
    }

    pub fn delete_users(&self) -> bool {
        match self {
            DirectorySettings::Ldap(s) => s.delete_users,
            DirectorySettings::Ldif(s) => s.delete_users,
            DirectorySettings::None | DirectorySettings::Unsupported => false,
        }
    }

    pub fn password(&self) -> Option<&Secret> {
        match self {
            DirectorySettings::Ldap(s) => s.password.as_ref(),
            _ => None,
        }
    }

    pub fn set_password(&mut self, password: Option<Secret>) {
        if let DirectorySettings::Ldap(s) = self {
            s.password = password;
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encryption {
    #[default]
    None,
    Starttls,
    Ssl,
}

/// The seed's "LDAP Generic" page.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LdapSettings {
    /// Name or IP address.
    pub server: String,
    /// 389, or 636 for `ssl`, when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default)]
    pub encryption: Encryption,
    /// The seed's "Ignore SSL security warnings".
    #[serde(default)]
    pub ignore_certificate_errors: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub ca_file: Option<PathBuf>,
    pub bind_dn: String,
    /// The service account's password. Write-only: `GET /api/v1/directory` shows `password_set` instead.
    /// Left out, the stored password is kept if the server, port, encryption and bind DN are unchanged.
    // Never serialized. `skip_serializing_if` rather than `skip_serializing`, which would also drop the
    // field from the API's schema.
    #[serde(
        default,
        skip_serializing_if = "never_shown",
        serialize_with = "refuse_to_serialize"
    )]
    #[schema(value_type = Option<String>, write_only)]
    pub password: Option<Secret>,
    pub base_dn: String,
    pub filter: String,
    pub username_attribute: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_name_attribute: Option<String>,
    /// Comma-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_attributes: Option<String>,
    #[serde(default)]
    pub delete_users: bool,
    /// Entries per page of the paged read (at most 1000, the usual server maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
    /// Seconds to wait for the server to connect or answer one request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
}

/// Users from an LDIF file: the embedded default, for a first run without a server and for offline imports.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LdifSettings {
    #[schema(value_type = String)]
    pub file: PathBuf,
    /// Entries are kept only if their DN is at or below this DN (empty: all).
    #[serde(default)]
    pub base_dn: String,
    pub filter: String,
    pub username_attribute: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_name_attribute: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_attributes: Option<String>,
    #[serde(default)]
    pub delete_users: bool,
}

/// A settings problem, named by the key at fault so that a form can show it next to the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct SettingsError {
    pub key: &'static str,
    pub message: String,
}

/// A file named in the settings is read by whichever process connects (the server, or a CLI started
/// elsewhere): a relative path would mean a different file to each. The CLI makes a path in a settings
/// file absolute against that file's directory before it gets here.
fn require_absolute(
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

fn never_shown(_: &Option<Secret>) -> bool {
    true
}

/// Never called (`never_shown` skips the field); `Secret` has no `Serialize`, on purpose.
fn refuse_to_serialize<S: serde::Serializer>(_: &Option<Secret>, _: S) -> Result<S::Ok, S::Error> {
    Err(serde::ser::Error::custom("a password is never serialized"))
}

fn settings_error(key: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError {
        key,
        message: message.into(),
    }
}

/// Checks an attribute description (RFC 4512 `descr` or numeric OID, with options).
pub fn check_attribute_name(key: &'static str, name: &str) -> Result<(), SettingsError> {
    let base = name.split(';').next().unwrap_or_default();
    let valid_descr = base.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && base.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let valid_oid = !base.is_empty()
        && base
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if valid_descr || valid_oid {
        Ok(())
    } else {
        Err(settings_error(
            key,
            format!(
                "{name:?} is not an attribute name (letters, digits and '-', starting with a letter)"
            ),
        ))
    }
}

/// Splits and checks a comma-separated attribute list.
pub fn parse_attribute_list(
    key: &'static str,
    raw: Option<&str>,
) -> Result<Vec<String>, SettingsError> {
    let mut out = Vec::new();
    for part in raw.unwrap_or_default().split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        check_attribute_name(key, part)?;
        if !out.iter().any(|a: &String| a.eq_ignore_ascii_case(part)) {
            out.push(part.to_owned());
        }
    }
    Ok(out)
}

/// The filter and attribute mapping, which every directory type that reads entries shares.
fn check_mapping(
    filter: &str,
    username_attribute: &str,
    full_name_attribute: Option<&str>,
    email_attributes: Option<&str>,
) -> Result<LdapFilter, SettingsError> {
    check_attribute_name("username_attribute", username_attribute.trim())?;
    if let Some(a) = full_name_attribute.map(str::trim).filter(|a| !a.is_empty()) {
        check_attribute_name("full_name_attribute", a)?;
    }
    parse_attribute_list("email_attributes", email_attributes)?;
    LdapFilter::parse(filter).map_err(|e| settings_error("filter", e.to_string()))
}

impl LdapSettings {
    pub fn effective_port(&self) -> u16 {
        self.port.unwrap_or(match self.encryption {
            Encryption::Ssl => 636,
            Encryption::None | Encryption::Starttls => 389,
        })
    }

    pub fn page_size(&self) -> u32 {
        self.page_size.unwrap_or(1000).clamp(1, 1000)
    }

    pub fn timeout_seconds(&self) -> u32 {
        self.timeout_seconds.unwrap_or(30).max(1)
    }

    /// Everything that can be checked without a network: done before anything connects.
    pub fn validate(&self) -> Result<LdapFilter, SettingsError> {
        if let Some(ca_file) = &self.ca_file {
            require_absolute("ca_file", ca_file, "the CA file")?;
        }
        let server = self.server.trim();
        if server.is_empty() {
            return Err(settings_error(
                "server",
                "give the name or IP address of the LDAP server",
            ));
        }
        if server.contains("://") || server.contains('/') || server.chars().any(char::is_whitespace)
        {
            return Err(settings_error(
                "server",
                format!(
                    "{server:?} is not a host name or IP address; give the port in `port` and the encryption in `encryption`"
                ),
            ));
        }
        if self.port == Some(0) {
            return Err(settings_error("port", "0 is not a port"));
        }
        if self.bind_dn.trim().is_empty() {
            return Err(settings_error(
                "bind_dn",
                "give the DN of the account that reads the directory (the seed's Administrative DN)",
            ));
        }
        if self.base_dn.trim().is_empty() {
            return Err(settings_error(
                "base_dn",
                "give the DN under which users are searched, e.g. dc=example,dc=com",
            ));
        }
        if self.page_size == Some(0) || self.page_size.is_some_and(|p| p > 1000) {
            return Err(settings_error("page_size", "between 1 and 1000"));
        }
        check_mapping(
            &self.filter,
            &self.username_attribute,
            self.full_name_attribute.as_deref(),
            self.email_attributes.as_deref(),
        )
    }
}

impl LdifSettings {
    pub fn validate(&self) -> Result<LdapFilter, SettingsError> {
        if self.file.as_os_str().is_empty() {
            return Err(settings_error("file", "give the path of the LDIF file"));
        }
        require_absolute("file", &self.file, "the LDIF file")?;
        check_mapping(
            &self.filter,
            &self.username_attribute,
            self.full_name_attribute.as_deref(),
            self.email_attributes.as_deref(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_does_not_leak_through_debug() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?}").contains("hunter2"));
        let settings = DirectorySettings::Ldap(LdapSettings {
            server: "x".into(),
            port: None,
            encryption: Encryption::None,
            ignore_certificate_errors: false,
            ca_file: None,
            bind_dn: "cn=a".into(),
            password: Some(Secret::new("hunter2")),
            base_dn: "dc=x".into(),
            filter: "(uid=*)".into(),
            username_attribute: "uid".into(),
            full_name_attribute: None,
            email_attributes: None,
            delete_users: false,
            page_size: None,
            timeout_seconds: None,
        });
        assert!(!format!("{settings:?}").contains("hunter2"));
        assert!(
            !serde_json::to_string(&settings)
                .unwrap()
                .contains("hunter2")
        );
    }

    #[test]
    fn attribute_names() {
        assert!(check_attribute_name("k", "uid").is_ok());
        assert!(check_attribute_name("k", "cn;lang-en").is_ok());
        assert!(check_attribute_name("k", "2.5.4.3").is_ok());
        assert!(check_attribute_name("k", "u id").is_err());
        assert!(check_attribute_name("k", "").is_err());
        assert_eq!(
            parse_attribute_list("k", Some("mail, mailAlternateAddress,,MAIL")).unwrap(),
            vec!["mail", "mailAlternateAddress"]
        );
    }

    /// Regression (review of issue 4): a relative path set through the API was resolved against the
    /// server's working directory at run time.
    #[test]
    fn an_ldif_file_path_must_be_absolute() {
        let mut s = LdifSettings {
            file: "company.ldif".into(),
            base_dn: "dc=example,dc=com".into(),
            filter: "(uid=*)".into(),
            username_attribute: "uid".into(),
            full_name_attribute: None,
            email_attributes: None,
            delete_users: false,
        };
        assert_eq!(s.validate().map(|_| ()).unwrap_err().key, "file");
        s.file = "/srv/export/company.ldif".into();
        assert!(s.validate().is_ok());
    }
}
