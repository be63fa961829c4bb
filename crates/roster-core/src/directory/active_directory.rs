//! The seed's "Active Directory" settings (issue 21): the domain, an optional domain controller (else
//! found through DNS), the protocol (LDAP with StartTLS, or LDAPS), an optional base DN (else the
//! domain's `defaultNamingContext`), the service account, the seed's four filters and the options.
//!
//! Choices where the issue is silent:
//! * `server` is a host name or an IP address without a port; the port follows `protocol` (389 or 636)
//!   unless `port` says otherwise, and a server found through DNS is used on the same ports (the SRV
//!   record's port is plain LDAP's). With `dns_server`, host names are resolved there too: a DNS
//!   server the system doesn't ask knows its domain controllers' addresses.
//! * `protocol = "ldap"` always does StartTLS before binding: Active Directory refuses a simple bind on
//!   plain LDAP ("Transport encryption required"), and a password must not cross in clear anyway.
//! * `dns_server` (`ip` or `ip:port`, optional) is the DNS server asked for the domain controllers;
//!   empty: `ROSTER_DNS_SERVER` if set, else the system's resolver.
//! * `groups` take a DN (`CN=Sales,OU=Groups,DC=company,DC=local`) or a group's name
//!   (sAMAccountName or cn); they are looked up at each read, and a group that doesn't exist fails
//!   the read (a missing group must not look like "all its members left").
//! * `page_size` and `timeout_seconds` as for generic LDAP (Active Directory's page limit is 1000).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use super::mail::empty_path_is_none;
use super::{
    DeletionGuardSettings, ScheduleSettings, Secret, SecretSpec, SettingsError, TypeSettings,
    never_shown, refuse_to_serialize, require_absolute, settings_error,
};

/// How Roster talks to a domain controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AdProtocol {
    /// LDAP on port 389, with StartTLS before the bind.
    #[default]
    Ldap,
    /// LDAP over TLS on port 636.
    Ldaps,
}

impl AdProtocol {
    pub fn port(self) -> u16 {
        match self {
            AdProtocol::Ldap => 389,
            AdProtocol::Ldaps => 636,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AdProtocol::Ldap => "ldap",
            AdProtocol::Ldaps => "ldaps",
        }
    }
}

/// How the service account proves who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AdAuthentication {
    /// `username` and `password`: a simple bind over TLS (`protocol`).
    #[default]
    Password,
    /// `keytab` and `principal`: a Kerberos (SASL GSSAPI) bind on plain LDAP, encrypted by Kerberos;
    /// no password is stored.
    Kerberos,
}

impl AdAuthentication {
    pub fn as_str(self) -> &'static str {
        match self {
            AdAuthentication::Password => "password",
            AdAuthentication::Kerberos => "kerberos",
        }
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActiveDirectorySettings {
    /// The Active Directory domain (its DNS name, e.g. `company.local`).
    pub domain: String,
    /// A domain controller (name or IP address, no port); empty: found through DNS
    /// (`_ldap._tcp.dc._msdcs.<domain>`).
    #[serde(default)]
    pub server: String,
    /// The DNS server asked for the domain controllers (`ip` or `ip:port`); empty: `ROSTER_DNS_SERVER`,
    /// else the system's resolver.
    #[serde(default)]
    pub dns_server: String,
    /// Another port than the protocol's (389, 636): a forwarded port, or the global catalog (3268,
    /// 3269).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default)]
    pub protocol: AdProtocol,
    /// The seed's "Ignore SSL security warnings".
    #[serde(default)]
    pub ignore_certificate_errors: bool,
    /// The CA certificate (PEM) that issued the domain controllers' certificates, added to the
    /// system's; `""` or left out: none.
    #[serde(
        default,
        deserialize_with = "empty_path_is_none",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub ca_file: Option<PathBuf>,
    /// Empty: the domain's `defaultNamingContext`.
    #[serde(default)]
    pub base_dn: String,
    /// `password` (default): `username` and `password`. `kerberos`: `keytab` and `principal` (the seed's
    /// "Windows Authentication" for the service account).
    #[serde(default)]
    pub authentication: AdAuthentication,
    /// The service account: a UPN (`Administrator@company.local`), `DOMAIN\user` or a DN. Not used with
    /// `authentication = "kerberos"`.
    #[serde(default)]
    pub username: String,
    /// Write-only: `GET /api/v1/directory` shows `password_set` instead.
    #[serde(
        default,
        skip_serializing_if = "never_shown",
        serialize_with = "refuse_to_serialize"
    )]
    #[schema(value_type = Option<String>, write_only)]
    pub password: Option<Secret>,
    /// With `authentication = "kerberos"`: the keytab holding the service principal's key (absolute
    /// path; read by the user Roster runs as). Left out when the settings are replaced, the stored one
    /// is kept under the same rule as a password.
    #[serde(
        default,
        deserialize_with = "empty_path_is_none",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub keytab: Option<PathBuf>,
    /// With `authentication = "kerberos"`: the service account's principal, `roster-svc@COMPANY.LOCAL`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub principal: String,
    /// "Synchronize Microsoft Exchange users only": users with an address (`mail`, or an SMTP
    /// `proxyAddresses` value).
    #[serde(default = "yes")]
    pub exchange_users_only: bool,
    /// "Synchronize enabled users only".
    #[serde(default = "yes")]
    pub enabled_users_only: bool,
    /// "Synchronize users visible in address lists only": `msExchHideFromAddressLists` not TRUE.
    #[serde(default)]
    pub visible_in_address_lists_only: bool,
    /// "Sync only these groups": members, directly or through nested groups, of any of these groups
    /// (DNs or names); empty: no group restriction.
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub delete_users: bool,
    #[serde(flatten)]
    pub guard: DeletionGuardSettings,
    #[serde(flatten)]
    pub schedule: ScheduleSettings,
    /// Entries per page of the paged read (at most 1000, Active Directory's maximum).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u32>,
    /// Seconds to wait for a domain controller to connect or answer one request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u32>,
}

impl ActiveDirectorySettings {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(self.protocol.port())
    }

    pub fn page_size(&self) -> u32 {
        self.page_size.unwrap_or(1000).clamp(1, 1000)
    }

    pub fn timeout_seconds(&self) -> u32 {
        self.timeout_seconds.unwrap_or(30).max(1)
    }

    /// The domain, trimmed, lowercased, without a trailing dot.
    pub fn domain_name(&self) -> String {
        self.domain
            .trim()
            .trim_end_matches('.')
            .to_ascii_lowercase()
    }

    /// The DN a domain's name gives (`company.local` → `DC=company,DC=local`), to compare with the
    /// server's `defaultNamingContext`.
    pub fn domain_dn(&self) -> String {
        self.domain_name()
            .split('.')
            .map(|label| format!("DC={label}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The selected groups, trimmed, without empty entries or repeats (compared without regard to case).
    pub fn selected_groups(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for g in &self.groups {
            let g = g.trim();
            if !g.is_empty() && !out.iter().any(|x| x.eq_ignore_ascii_case(g)) {
                out.push(g.to_owned());
            }
        }
        out
    }

    /// The four filters in words, for the preview's header and the audit log.
    pub fn filters_in_words(&self) -> String {
        let mut parts = Vec::new();
        if self.exchange_users_only {
            parts.push("Exchange users only".to_owned());
        }
        if self.enabled_users_only {
            parts.push("enabled users only".to_owned());
        }
        if self.visible_in_address_lists_only {
            parts.push("users visible in address lists only".to_owned());
        }
        let groups = self.selected_groups();
        if !groups.is_empty() {
            parts.push(format!(
                "members (also through nested groups) of {}",
                groups.join("; ")
            ));
        }
        if parts.is_empty() {
            "every user".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

/// A DNS name: labels of letters, digits and hyphens, at least two.
fn check_domain(domain: &str) -> Result<(), SettingsError> {
    let bad = |why: &str| {
        settings_error(
            "domain",
            format!("{domain:?} {why}; give the domain's DNS name, e.g. company.local"),
        )
    };
    if domain.is_empty() {
        return Err(settings_error(
            "domain",
            "give the Active Directory domain's DNS name, e.g. company.local",
        ));
    }
    let labels: Vec<&str> = domain.split('.').collect();
    if labels.len() < 2 {
        return Err(bad("has a single label"));
    }
    for label in labels {
        if label.is_empty()
            || label.len() > 63
            || label.starts_with('-')
            || label.ends_with('-')
            || !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(bad("is not a DNS name"));
        }
    }
    Ok(())
}

fn check_host(key: &'static str, host: &str, what: &str) -> Result<(), SettingsError> {
    if host.contains("://")
        || host.contains('/')
        || host.chars().any(char::is_whitespace)
        || (host.contains(':') && host.parse::<std::net::Ipv6Addr>().is_err())
    {
        return Err(settings_error(
            key,
            format!(
                "{host:?} is not a host name or IP address; give {what} without a scheme or port (the port follows `protocol`)"
            ),
        ));
    }
    Ok(())
}

/// `ip` or `ip:port` (IPv6 in brackets with a port).
pub fn parse_dns_server(value: &str) -> Result<std::net::SocketAddr, SettingsError> {
    let value = value.trim();
    if let Ok(addr) = value.parse::<std::net::SocketAddr>() {
        return Ok(addr);
    }
    value
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .map(|ip| std::net::SocketAddr::new(ip, 53))
        .map_err(|_| {
            settings_error(
                "dns_server",
                format!(
                    "{value:?} is not an IP address with an optional port (10.0.0.1, 10.0.0.1:53, [fd00::1]:53)"
                ),
            )
        })
}

impl TypeSettings for ActiveDirectorySettings {
    fn validate(&self) -> Result<(), SettingsError> {
        check_domain(&self.domain_name())?;
        let server = self.server.trim();
        if !server.is_empty() {
            check_host("server", server, "the domain controller")?;
        }
        if !self.dns_server.trim().is_empty() {
            parse_dns_server(&self.dns_server)?;
        }
        if self.port == Some(0) {
            return Err(settings_error("port", "0 is not a port"));
        }
        if let Some(ca_file) = &self.ca_file {
            require_absolute("ca_file", ca_file, "the CA file")?;
        }
        let base_dn = self.base_dn.trim();
        if !base_dn.is_empty() && !crate::dn::is_valid(base_dn) {
            return Err(settings_error(
                "base_dn",
                format!(
                    "{base_dn:?} is not a DN; write it like DC=company,DC=local, or leave it empty for the domain's"
                ),
            ));
        }
        match self.authentication {
            AdAuthentication::Password => {
                if self.username.trim().is_empty() {
                    return Err(settings_error(
                        "username",
                        "give the service account in UPN notation, e.g. Administrator@company.local",
                    ));
                }
            }
            AdAuthentication::Kerberos => {
                if self.password.is_some() {
                    return Err(settings_error(
                        "password",
                        "with authentication = \"kerberos\" the service account uses its keytab; leave the password out",
                    ));
                }
                let principal = self.principal.trim();
                match principal.rsplit_once('@') {
                    Some((name, realm))
                        if !name.is_empty()
                            && !realm.is_empty()
                            && !principal.chars().any(char::is_whitespace) => {}
                    _ => {
                        return Err(settings_error(
                            "principal",
                            format!(
                                "give the service account's Kerberos principal with its realm, e.g. roster-svc@{}",
                                self.domain_name().to_ascii_uppercase()
                            ),
                        ));
                    }
                }
                if let Some(keytab) = &self.keytab {
                    require_absolute("keytab", keytab, "the keytab")?;
                }
            }
        }
        for group in &self.groups {
            let g = group.trim();
            if g.contains('=') && !crate::dn::is_valid(g) {
                return Err(settings_error(
                    "groups",
                    format!(
                        "{g:?} looks like a DN but isn't one; give a group's DN (CN=Sales,OU=Groups,DC=company,DC=local) or its name"
                    ),
                ));
            }
            if g.contains(['(', ')', '*', '\0']) {
                return Err(settings_error(
                    "groups",
                    format!("{g:?} is not a group's name or DN"),
                ));
            }
        }
        if self.page_size == Some(0) || self.page_size.is_some_and(|p| p > 1000) {
            return Err(settings_error("page_size", "between 1 and 1000"));
        }
        self.guard.check()?;
        self.schedule.check()
    }

    fn secret_slot(&mut self) -> Option<&mut Option<Secret>> {
        match self.authentication {
            AdAuthentication::Password => Some(&mut self.password),
            AdAuthentication::Kerberos => None,
        }
    }

    fn secret(&self) -> Option<&Secret> {
        match self.authentication {
            AdAuthentication::Password => self.password.as_ref(),
            AdAuthentication::Kerberos => None,
        }
    }

    fn secret_spec(&self) -> Option<SecretSpec> {
        match self.authentication {
            AdAuthentication::Password => Some(SecretSpec {
                key: "password",
                what: "the password of the service account (username)",
                bound_to: "the domain, server, protocol, certificate settings or user name",
            }),
            AdAuthentication::Kerberos => None,
        }
    }

    fn credential_file_spec(&self) -> Option<SecretSpec> {
        match self.authentication {
            AdAuthentication::Password => None,
            AdAuthentication::Kerberos => Some(SecretSpec {
                key: "keytab",
                what: "the keytab of the service principal (keytab)",
                bound_to: "the domain, server, protocol, certificate settings or principal",
            }),
        }
    }

    fn credential_file_slot(&mut self) -> Option<&mut Option<PathBuf>> {
        match self.authentication {
            AdAuthentication::Password => None,
            AdAuthentication::Kerberos => Some(&mut self.keytab),
        }
    }

    fn credential_file(&self) -> Option<&PathBuf> {
        match self.authentication {
            AdAuthentication::Password => None,
            AdAuthentication::Kerberos => self.keytab.as_ref(),
        }
    }

    fn secret_target(&self) -> Vec<String> {
        vec![
            self.domain_name(),
            self.server.trim().to_ascii_lowercase(),
            self.dns_server.trim().to_owned(),
            self.protocol.as_str().to_owned(),
            self.port().to_string(),
            self.ignore_certificate_errors.to_string(),
            self.ca_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            self.username.trim().to_lowercase(),
            self.authentication.as_str().to_owned(),
            self.principal.trim().to_lowercase(),
        ]
    }

    fn file_paths_mut(&mut self) -> Vec<(&'static str, &mut PathBuf)> {
        let mut out: Vec<(&'static str, &mut PathBuf)> =
            self.ca_file.iter_mut().map(|p| ("ca_file", p)).collect();
        out.extend(self.keytab.iter_mut().map(|p| ("keytab", p)));
        out
    }

    fn describe(&self) -> String {
        format!(
            "domain {}, domain controller {}, protocol {}, base DN {}, service account {}, {}, delete users {}{}{}",
            self.domain_name(),
            match self.server.trim() {
                "" => "found through DNS",
                s => s,
            },
            self.protocol.as_str(),
            match self.base_dn.trim() {
                "" => "the domain's",
                b => b,
            },
            match self.authentication {
                AdAuthentication::Password => self.username.trim().to_owned(),
                AdAuthentication::Kerberos => format!(
                    "{} (Kerberos, keytab {})",
                    self.principal.trim(),
                    self.keytab
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default()
                ),
            },
            self.filters_in_words(),
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
            "the Active Directory domain {} ({})",
            self.domain_name(),
            self.filters_in_words()
        )
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::directory) fn example() -> ActiveDirectorySettings {
        ActiveDirectorySettings {
            domain: "company.local".into(),
            server: String::new(),
            dns_server: String::new(),
            port: None,
            protocol: AdProtocol::Ldap,
            ignore_certificate_errors: false,
            ca_file: None,
            base_dn: String::new(),
            authentication: AdAuthentication::Password,
            username: "Administrator@company.local".into(),
            password: Some(Secret::new("service-password")),
            keytab: None,
            principal: String::new(),
            exchange_users_only: true,
            enabled_users_only: true,
            visible_in_address_lists_only: false,
            groups: vec![],
            delete_users: false,
            guard: DeletionGuardSettings::default(),
            schedule: Default::default(),
            page_size: None,
            timeout_seconds: None,
        }
    }

    #[test]
    fn the_issue_s_example_parses_with_the_seed_s_defaults() {
        // The issue's TOML (without `type`, which belongs to DirectorySettings), as JSON.
        let json = serde_json::json!({
            "domain": "company.local", "server": "", "protocol": "ldap",
            "ignore_certificate_errors": false, "ca_file": "", "base_dn": "",
            "username": "Administrator@company.local", "password": "pw", "groups": [],
            "delete_users": false
        });
        let s: ActiveDirectorySettings = serde_json::from_value(json).unwrap();
        assert!(s.exchange_users_only && s.enabled_users_only);
        assert!(!s.visible_in_address_lists_only);
        assert_eq!(s.ca_file, None);
        s.validate().unwrap();
        assert_eq!(s.domain_dn(), "DC=company,DC=local");
        assert_eq!(
            s.filters_in_words(),
            "Exchange users only, enabled users only"
        );
    }

    #[test]
    fn bad_values_are_refused_naming_their_key() {
        type Change = fn(&mut ActiveDirectorySettings);
        let cases: [(&str, Change); 8] = [
            ("domain", |s| s.domain = "".into()),
            ("domain", |s| s.domain = "local".into()),
            ("domain", |s| s.domain = "comp any.local".into()),
            ("server", |s| s.server = "ldaps://dc1.company.local".into()),
            ("server", |s| s.server = "dc1:389".into()),
            ("dns_server", |s| s.dns_server = "dns.company.local".into()),
            ("username", |s| s.username = " ".into()),
            ("groups", |s| s.groups = vec!["CN=Sales,,".into()]),
        ];
        for (key, change) in cases {
            let mut s = example();
            change(&mut s);
            let err = s.validate().unwrap_err();
            assert_eq!(err.key, key, "{err:?}");
        }
        let mut s = example();
        s.server = "fd00::1".into();
        s.dns_server = "10.0.0.1:5353".into();
        s.groups = vec![
            "Sales".into(),
            "CN=Staff,OU=Groups,DC=company,DC=local".into(),
        ];
        s.validate().unwrap();
        assert_eq!(
            parse_dns_server("10.0.0.1").unwrap(),
            "10.0.0.1:53".parse().unwrap()
        );
    }
}
