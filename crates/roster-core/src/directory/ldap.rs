//! The seed's "LDAP Generic" settings: server, encryption, service account, base DN, filter, attributes.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use super::{
    AttributeMapping, DeletionGuardSettings, ScheduleSettings, Secret, SecretSpec, SettingsError,
    TypeSettings, never_shown, refuse_to_serialize, require_absolute, settings_error,
};
use crate::filter::LdapFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encryption {
    #[default]
    None,
    Starttls,
    Ssl,
}

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
    #[serde(
        default,
        skip_serializing_if = "never_shown",
        serialize_with = "refuse_to_serialize"
    )]
    #[schema(value_type = Option<String>, write_only)]
    pub password: Option<Secret>,
    pub base_dn: String,
    #[serde(flatten)]
    pub mapping: AttributeMapping,
    #[serde(default)]
    pub delete_users: bool,
    #[serde(flatten)]
    pub guard: DeletionGuardSettings,
    #[serde(flatten)]
    pub schedule: ScheduleSettings,
    /// Entries per page of the paged read (at most 1000, the usual server maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
    /// Seconds to wait for the server to connect or answer one request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
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

    /// Everything that can be checked without a network, and the parsed filter.
    pub fn checked_filter(&self) -> Result<LdapFilter, SettingsError> {
        if let Some(ca_file) = &self.ca_file {
            require_absolute("ca_file", ca_file, "the CA file")?;
        }
        check_server(&self.server)?;
        if self.port == Some(0) {
            return Err(settings_error("port", "0 is not a port"));
        }
        if self.bind_dn.trim().is_empty() {
            return Err(settings_error(
                "bind_dn",
                "give the DN of the account that reads the directory (the seed's Administrative DN)",
            ));
        }
        let base_dn = self.base_dn.trim();
        if base_dn.is_empty() {
            return Err(settings_error(
                "base_dn",
                "give the DN under which users are searched, e.g. dc=example,dc=com",
            ));
        }
        if !crate::dn::is_valid(base_dn) {
            return Err(settings_error(
                "base_dn",
                format!(
                    "{base_dn:?} is not a DN; write it like ou=People,dc=example,dc=com (attribute=value, separated by commas)"
                ),
            ));
        }
        if self.page_size == Some(0) || self.page_size.is_some_and(|p| p > 1000) {
            return Err(settings_error("page_size", "between 1 and 1000"));
        }
        self.guard.check()?;
        self.schedule.check()?;
        self.mapping.check()
    }
}

/// A host name or IP address, nothing else: the port and the encryption have keys of their own.
fn check_server(server: &str) -> Result<(), SettingsError> {
    let server = server.trim();
    if server.is_empty() {
        return Err(settings_error(
            "server",
            "give the name or IP address of the LDAP server",
        ));
    }
    if server.contains("://") || server.contains('/') || server.chars().any(char::is_whitespace) {
        return Err(settings_error(
            "server",
            format!(
                "{server:?} is not a host name or IP address; give the port in `port` and the encryption in `encryption`"
            ),
        ));
    }
    // `host:389` or `[::1]:389`: a colon is only allowed as part of an IPv6 address, which has at least
    // two. (Accepting `host:port` here would be ambiguous with IPv6 and give two places for the port.)
    let looks_like_host_port = server.starts_with('[')
        || (server.matches(':').count() == 1
            && server
                .rsplit(':')
                .next()
                .is_some_and(|p| p.chars().all(|c| c.is_ascii_digit())));
    if looks_like_host_port {
        let host = server
            .trim_start_matches('[')
            .rsplit_once(':')
            .map_or(server, |(h, _)| h)
            .trim_end_matches(']');
        return Err(settings_error(
            "server",
            format!(
                "{server:?} includes a port; give only the host name or address (server = {host:?}) and the port in `port`"
            ),
        ));
    }
    if server.contains(':') && server.parse::<std::net::Ipv6Addr>().is_err() {
        return Err(settings_error(
            "server",
            format!("{server:?} is neither a host name nor an IP address"),
        ));
    }
    Ok(())
}

impl TypeSettings for LdapSettings {
    fn validate(&self) -> Result<(), SettingsError> {
        self.checked_filter().map(drop)
    }

    fn secret_slot(&mut self) -> Option<&mut Option<Secret>> {
        Some(&mut self.password)
    }

    fn secret(&self) -> Option<&Secret> {
        self.password.as_ref()
    }

    fn secret_spec(&self) -> Option<SecretSpec> {
        Some(SecretSpec {
            key: "password",
            what: "the password of the service account (bind_dn)",
            bound_to: "the server, port, encryption, certificate settings or bind DN",
        })
    }

    fn secret_target(&self) -> Vec<String> {
        vec![
            self.server.trim().to_ascii_lowercase(),
            self.effective_port().to_string(),
            format!("{:?}", self.encryption),
            self.ignore_certificate_errors.to_string(),
            self.ca_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            self.bind_dn.trim().to_lowercase(),
        ]
    }

    fn file_paths_mut(&mut self) -> Vec<(&'static str, &mut PathBuf)> {
        self.ca_file.iter_mut().map(|p| ("ca_file", p)).collect()
    }

    fn describe(&self) -> String {
        format!(
            "server {}:{} ({:?}), bind DN {}, base DN {}, filter {}, delete users {}{}{}",
            self.server,
            self.effective_port(),
            self.encryption,
            self.bind_dn,
            self.base_dn,
            self.mapping.filter,
            self.delete_users,
            self.guard.describe(),
            self.schedule.describe()
        )
    }

    fn delete_users(&self) -> bool {
        self.delete_users
    }

    fn deletion_guard(&self) -> &DeletionGuardSettings {
        &self.guard
    }

    fn schedule(&self) -> &ScheduleSettings {
        &self.schedule
    }

    fn read_scope(&self) -> String {
        format!(
            "base DN {} and filter {}",
            self.base_dn.trim(),
            self.mapping.filter.trim()
        )
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::directory) fn example() -> LdapSettings {
        LdapSettings {
            schedule: Default::default(),
            server: "ldap.example.com".into(),
            port: None,
            encryption: Encryption::Starttls,
            ignore_certificate_errors: false,
            ca_file: Some("/etc/ssl/company-ca.pem".into()),
            bind_dn: "cn=roster,dc=example,dc=com".into(),
            password: Some(Secret::new("service-password")),
            base_dn: "ou=People,dc=example,dc=com".into(),
            mapping: AttributeMapping {
                filter: "(objectClass=inetOrgPerson)".into(),
                username_attribute: "uid".into(),
                full_name_attribute: Some("displayName".into()),
                email_attributes: Some("mail".into()),
            },
            delete_users: false,
            guard: DeletionGuardSettings::default(),
            page_size: None,
            timeout_seconds: None,
        }
    }

    #[test]
    fn secret_does_not_leak_through_debug() {
        let settings = super::super::DirectorySettings::Ldap(LdapSettings {
            password: Some(Secret::new("hunter2")),
            ..example()
        });
        assert!(!format!("{settings:?}").contains("hunter2"));
        assert!(
            !serde_json::to_string(&settings)
                .unwrap()
                .contains("hunter2")
        );
    }

    /// The mapping is flattened: a settings file keeps every key at the top level.
    #[test]
    fn keys_stay_at_the_top_level() {
        let json = serde_json::to_value(example()).unwrap();
        assert_eq!(json["username_attribute"], "uid");
        assert_eq!(json["filter"], "(objectClass=inetOrgPerson)");
        assert!(json.get("mapping").is_none());
    }

    /// Regression (issue 19, item 5): `server = "127.0.0.1:389"` was accepted and failed at the first
    /// run as an invalid IPv6 address.
    #[test]
    fn a_server_with_a_port_is_refused_at_set() {
        for bad in [
            "127.0.0.1:389",
            "ldap.example.com:636",
            "[::1]:389",
            "[::1]",
            "ldap://x",
            "a b",
            "x:y:z",
        ] {
            let s = LdapSettings {
                server: bad.into(),
                ..example()
            };
            assert_eq!(s.validate().unwrap_err().key, "server", "{bad}");
        }
        let err = LdapSettings {
            server: "127.0.0.1:389".into(),
            ..example()
        }
        .validate()
        .unwrap_err();
        assert!(err.message.contains("server = \"127.0.0.1\""), "{err}");
        for ok in ["127.0.0.1", "::1", "fe80::1", "ldap.example.com", "dc1"] {
            let s = LdapSettings {
                server: ok.into(),
                ..example()
            };
            assert!(s.validate().is_ok(), "{ok}");
        }
    }

    /// Regression (issue 19, item 5): `base_dn = "not a dn"` was accepted.
    #[test]
    fn a_base_dn_that_is_not_a_dn_is_refused_at_set() {
        let s = LdapSettings {
            base_dn: "not a dn".into(),
            ..example()
        };
        let err = s.validate().unwrap_err();
        assert_eq!(err.key, "base_dn");
        assert!(err.message.contains("is not a DN"), "{err}");
    }

    #[test]
    fn the_secret_target_changes_with_each_field_it_is_bound_to() {
        let base = example();
        let same = LdapSettings {
            server: " LDAP.example.com ".into(),
            bind_dn: "CN=roster,dc=example,dc=com".into(),
            mapping: AttributeMapping {
                filter: "(uid=*)".into(),
                ..base.mapping.clone()
            },
            ..example()
        };
        assert_eq!(base.secret_target(), same.secret_target());
        let changed = [
            LdapSettings {
                server: "evil.example.net".into(),
                ..example()
            },
            LdapSettings {
                port: Some(10389),
                ..example()
            },
            LdapSettings {
                encryption: Encryption::None,
                ..example()
            },
            LdapSettings {
                ignore_certificate_errors: true,
                ..example()
            },
            LdapSettings {
                ca_file: None,
                ..example()
            },
            LdapSettings {
                bind_dn: "cn=other".into(),
                ..example()
            },
        ];
        for c in changed {
            assert_ne!(base.secret_target(), c.secret_target(), "{c:?}");
        }
    }
}
