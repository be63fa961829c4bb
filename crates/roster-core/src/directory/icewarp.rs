//! The seed's "IceWarp Server" settings: the server (HTTPS unless it starts with `http://`), an
//! administrator's name and password for the XML API, the domains and groups to synchronize, and how user
//! names are made.
//!
//! The scope rule (the seeds: "If no domains or groups are selected, all users will be synchronized"):
//! with neither set, every user account of every domain; otherwise a user account is synchronized when it
//! is in a selected domain **or** a member of a selected group.

use serde::{Deserialize, Deserializer, Serialize};
use std::path::PathBuf;

use super::{
    DeletionGuardSettings, ScheduleSettings, Secret, SecretSpec, SettingsError, TypeSettings,
    never_shown, refuse_to_serialize, require_absolute, settings_error,
};

/// How an IceWarp account's Roster user name is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UsernameFormat {
    /// The primary address (`jdoe@example.com`): unique across domains, and what IceWarp users type to
    /// log on.
    #[default]
    Email,
    /// The part of the primary address before `@` (`jdoe`), for installations with one domain. The same
    /// local part in two synchronized domains is a conflict.
    LocalPart,
}

impl UsernameFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            UsernameFormat::Email => "email",
            UsernameFormat::LocalPart => "local-part",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IcewarpSettings {
    /// Name or IP address of the IceWarp server, optionally with `:port`; HTTPS unless the value starts
    /// with `http://` (`https://` may be written too). The API is at `/icewarpapi/` there.
    pub server: String,
    /// The seed's "Ignore SSL Security Warnings": accept a self-signed certificate.
    #[serde(default)]
    pub ignore_certificate_errors: bool,
    /// The CA certificate (PEM) that issued the server's certificate, added to the system's; `""` or
    /// left out: none.
    #[serde(
        default,
        deserialize_with = "empty_path_is_none",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub ca_file: Option<PathBuf>,
    /// A user with administrative rights on the IceWarp server (`admin@example.com`).
    pub username: String,
    /// The administrator's password. Write-only: `GET /api/v1/directory` shows `password_set` instead.
    /// Left out, the stored password is kept if the server, certificate settings and user name are
    /// unchanged.
    #[serde(
        default,
        skip_serializing_if = "never_shown",
        serialize_with = "refuse_to_serialize"
    )]
    #[schema(value_type = Option<String>, write_only)]
    pub password: Option<Secret>,
    /// Domains whose user accounts are synchronized (empty: see `groups`).
    #[serde(default)]
    pub domains: Vec<String>,
    /// Group addresses (`sales@example.com`) whose member accounts are synchronized. With both empty,
    /// every user account is; with either set, an account in a selected domain **or** a selected group.
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub username_format: UsernameFormat,
    #[serde(default)]
    pub delete_users: bool,
    /// The deletion guard and grace period, as for every type (`max_deletions`, `max_deletions_percent`,
    /// `delete_after` at the top level).
    #[serde(flatten)]
    pub guard: DeletionGuardSettings,
    #[serde(flatten)]
    pub schedule: ScheduleSettings,
}

fn empty_path_is_none<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
    let value: Option<PathBuf> = Option::deserialize(d)?;
    Ok(value.filter(|p| !p.as_os_str().is_empty()))
}

/// Where the API is: scheme, host and port, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcewarpEndpoint {
    pub https: bool,
    /// A host name, an IPv4 address, or an IPv6 address in brackets.
    pub host: String,
    pub port: Option<u16>,
}

impl IcewarpEndpoint {
    /// `https://host[:port]`, without a path.
    pub fn origin(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        match self.port {
            Some(port) => format!("{scheme}://{}:{port}", self.host),
            None => format!("{scheme}://{}", self.host),
        }
    }

    /// The URL every API request is posted to.
    pub fn api_url(&self) -> String {
        format!("{}/icewarpapi/", self.origin())
    }
}

impl IcewarpSettings {
    /// The server as an endpoint, or what is wrong with it.
    pub fn endpoint(&self) -> Result<IcewarpEndpoint, SettingsError> {
        let raw = self.server.trim();
        let (https, rest) = if let Some(rest) = strip_prefix_ignore_case(raw, "http://") {
            (false, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(raw, "https://") {
            (true, rest)
        } else {
            (true, raw)
        };
        // A trailing slash, or the API path itself, is forgiven: both name the same server.
        let rest = rest.trim_end_matches('/');
        let rest = strip_suffix_ignore_case(rest, "/icewarpapi").unwrap_or(rest);
        let bad = |why: &str| {
            settings_error(
                "server",
                format!(
                    "{raw:?} {why}; give the name or IP address of the IceWarp server, optionally with :port (mail.example.com, mail.example.com:32001, http://10.0.0.5:32000)"
                ),
            )
        };
        if rest.is_empty() {
            return Err(bad("names no server"));
        }
        if rest.contains('/')
            || rest.contains('?')
            || rest.contains('#')
            || rest.contains('@')
            || rest.contains("://")
            || rest.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad("is not a host name with an optional port"));
        }
        let (host, port) = if let Some(after) = rest.strip_prefix('[') {
            // [IPv6] or [IPv6]:port
            let Some((addr, tail)) = after.split_once(']') else {
                return Err(bad("has an unclosed '['"));
            };
            if addr.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("has something other than an IPv6 address in brackets"));
            }
            let port = match tail {
                "" => None,
                t => Some(
                    t.strip_prefix(':')
                        .ok_or_else(|| bad("has text after ']'"))?,
                ),
            };
            (format!("[{addr}]"), port)
        } else if rest.matches(':').count() > 1 {
            if rest.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("is neither a host name nor an IP address"));
            }
            (format!("[{rest}]"), None)
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (rest.to_owned(), None),
            }
        };
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => {
                    return Err(bad("has a port that is not a number from 1 to 65535"));
                }
                Ok(n) => Some(n),
            },
        };
        if host.is_empty()
            || !host.starts_with('[')
                && !host
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '.' || c == '-' || c == '_')
        {
            return Err(bad("is not a host name with an optional port"));
        }
        Ok(IcewarpEndpoint {
            https,
            host: host.to_lowercase(),
            port,
        })
    }

    /// The selected domains, trimmed and lowercased, in the order given, without repeats.
    pub fn selected_domains(&self) -> Vec<String> {
        dedup(self.domains.iter().map(|d| d.trim().to_lowercase()))
    }

    /// The selected group addresses, trimmed and lowercased, in the order given, without repeats.
    pub fn selected_groups(&self) -> Vec<String> {
        dedup(self.groups.iter().map(|g| g.trim().to_lowercase()))
    }

    /// The scope rule in words, for the preview's header and the audit log.
    pub fn scope_rule(&self) -> String {
        let domains = self.selected_domains();
        let groups = self.selected_groups();
        match (domains.is_empty(), groups.is_empty()) {
            (true, true) => {
                "no domains or groups are selected: every user account of every domain is synchronized"
                    .to_owned()
            }
            (false, true) => format!(
                "user accounts of the domains {} are synchronized",
                domains.join(", ")
            ),
            (true, false) => format!(
                "user accounts that are members of the groups {} are synchronized",
                groups.join(", ")
            ),
            (false, false) => format!(
                "a user account is synchronized when it is in one of the domains {} or a member of one of the groups {}",
                domains.join(", "),
                groups.join(", ")
            ),
        }
    }
}

fn dedup(values: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

fn strip_suffix_ignore_case<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let at = s.len().checked_sub(suffix.len())?;
    let tail = s.get(at..)?;
    tail.eq_ignore_ascii_case(suffix)
        .then(|| s.get(..at))
        .flatten()
}

fn check_domain(key: &'static str, what: &str, domain: &str) -> Result<(), SettingsError> {
    let ok = !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(settings_error(
            key,
            format!("{what} {domain:?} is not a domain name (like example.com)"),
        ))
    }
}

impl TypeSettings for IcewarpSettings {
    fn validate(&self) -> Result<(), SettingsError> {
        self.endpoint()?;
        if let Some(ca_file) = &self.ca_file {
            require_absolute("ca_file", ca_file, "the CA file")?;
            if !self.endpoint()?.https {
                return Err(settings_error(
                    "ca_file",
                    "the server is reached over http://, so a CA certificate has no use; use https (leave out http://) or leave ca_file empty",
                ));
            }
        }
        if self.username.trim().is_empty() {
            return Err(settings_error(
                "username",
                "give the name of a user with administrative rights on the IceWarp server (e.g. admin@example.com)",
            ));
        }
        for domain in &self.domains {
            let d = domain.trim();
            if d.contains('@') {
                return Err(settings_error(
                    "domains",
                    format!(
                        "{d:?} is an address, not a domain; put group addresses in `groups`, and domains (example.com) in `domains`"
                    ),
                ));
            }
            check_domain("domains", "the domain", d)?;
        }
        for group in &self.groups {
            let g = group.trim();
            let Some((local, domain)) = g.rsplit_once('@') else {
                return Err(settings_error(
                    "groups",
                    format!(
                        "{g:?} is not a group address; give groups by address, e.g. sales@example.com"
                    ),
                ));
            };
            if local.is_empty() || local.chars().any(|c| c.is_whitespace() || c == '@') {
                return Err(settings_error(
                    "groups",
                    format!(
                        "{g:?} is not a group address; give groups by address, e.g. sales@example.com"
                    ),
                ));
            }
            check_domain("groups", "the group address's domain", domain)?;
        }
        self.guard.check()?;
        self.schedule.check()
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
            what: "the password of the IceWarp administrator (username)",
            bound_to: "the server, certificate settings or user name",
        })
    }

    fn secret_target(&self) -> Vec<String> {
        vec![
            self.endpoint()
                .map(|e| e.origin())
                .unwrap_or_else(|_| self.server.trim().to_lowercase()),
            self.ignore_certificate_errors.to_string(),
            self.ca_file
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            self.username.trim().to_lowercase(),
        ]
    }

    fn file_paths_mut(&mut self) -> Vec<(&'static str, &mut PathBuf)> {
        self.ca_file.iter_mut().map(|p| ("ca_file", p)).collect()
    }

    fn describe(&self) -> String {
        format!(
            "server {}, administrator {}, {}, user names {}, delete users {}{}{}",
            self.endpoint()
                .map(|e| e.origin())
                .unwrap_or_else(|_| self.server.clone()),
            self.username.trim(),
            self.scope_rule(),
            self.username_format.as_str(),
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
            "the IceWarp server {} ({})",
            self.endpoint()
                .map(|e| e.origin())
                .unwrap_or_else(|_| self.server.trim().to_owned()),
            self.scope_rule()
        )
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::directory) fn example() -> IcewarpSettings {
        IcewarpSettings {
            schedule: Default::default(),
            server: "mail.example.com".into(),
            ignore_certificate_errors: false,
            ca_file: None,
            username: "admin@example.com".into(),
            password: Some(Secret::new("admin-password")),
            domains: vec![],
            groups: vec![],
            username_format: UsernameFormat::Email,
            delete_users: false,
            guard: DeletionGuardSettings::default(),
        }
    }

    #[test]
    fn the_issue_s_example_parses_with_an_empty_ca_file() {
        let toml_text = r#"
            type = "icewarp"
            server = "mail.example.com"
            ignore_certificate_errors = false
            ca_file = ""
            username = "admin@example.com"
            password = "..."
            domains = []
            groups = []
            username_format = "email"
            delete_users = false
        "#;
        let json: serde_json::Value = serde_json::json!({
            "type": "icewarp", "server": "mail.example.com", "ignore_certificate_errors": false,
            "ca_file": "", "username": "admin@example.com", "password": "...", "domains": [],
            "groups": [], "username_format": "local-part", "delete_users": false
        });
        let s: super::super::DirectorySettings = serde_json::from_value(json).unwrap();
        let super::super::DirectorySettings::Icewarp(s) = s else {
            panic!("{s:?}")
        };
        assert_eq!(s.ca_file, None);
        assert_eq!(s.username_format, UsernameFormat::LocalPart);
        assert!(toml_text.contains("ca_file = \"\""));
    }

    #[test]
    fn servers_become_endpoints() {
        let cases = [
            ("mail.example.com", "https://mail.example.com/icewarpapi/"),
            (
                "Mail.Example.com:32001",
                "https://mail.example.com:32001/icewarpapi/",
            ),
            ("http://10.0.0.5:32000", "http://10.0.0.5:32000/icewarpapi/"),
            ("HTTP://10.0.0.5", "http://10.0.0.5/icewarpapi/"),
            (
                "https://mail.example.com/",
                "https://mail.example.com/icewarpapi/",
            ),
            (
                "https://mail.example.com/icewarpapi/",
                "https://mail.example.com/icewarpapi/",
            ),
            ("::1", "https://[::1]/icewarpapi/"),
            ("[::1]:8443", "https://[::1]:8443/icewarpapi/"),
            ("127.0.0.1:1", "https://127.0.0.1:1/icewarpapi/"),
        ];
        for (server, url) in cases {
            let s = IcewarpSettings {
                server: server.into(),
                ..example()
            };
            assert_eq!(s.endpoint().unwrap().api_url(), url, "{server}");
            s.validate().unwrap();
        }
        for bad in [
            "",
            "ftp://x",
            "mail.example.com:0",
            "mail.example.com:99999",
            "mail.example.com:abc",
            "a b",
            "mail.example.com/other",
            "user@mail.example.com",
            "[::1",
            "x:y:z",
        ] {
            let s = IcewarpSettings {
                server: bad.into(),
                ..example()
            };
            assert_eq!(s.validate().unwrap_err().key, "server", "{bad}");
        }
    }

    #[test]
    fn domains_and_groups_are_checked() {
        let ok = IcewarpSettings {
            domains: vec![" Example.com ".into(), "example.com".into(), "b.org".into()],
            groups: vec!["Sales@Example.com".into()],
            ..example()
        };
        ok.validate().unwrap();
        assert_eq!(ok.selected_domains(), ["example.com", "b.org"]);
        assert_eq!(ok.selected_groups(), ["sales@example.com"]);
        assert!(
            ok.scope_rule().contains(" or a member of"),
            "{}",
            ok.scope_rule()
        );
        for (domains, groups, key) in [
            (vec!["sales@example.com"], vec![], "domains"),
            (vec!["not a domain"], vec![], "domains"),
            (vec![""], vec![], "domains"),
            (vec![], vec!["sales"], "groups"),
            (vec![], vec!["@example.com"], "groups"),
            (vec![], vec!["sales@"], "groups"),
        ] {
            let s = IcewarpSettings {
                domains: domains.into_iter().map(Into::into).collect(),
                groups: groups.into_iter().map(Into::into).collect(),
                ..example()
            };
            assert_eq!(s.validate().unwrap_err().key, key, "{s:?}");
        }
        let no_user = IcewarpSettings {
            username: " ".into(),
            ..example()
        };
        assert_eq!(no_user.validate().unwrap_err().key, "username");
        let relative_ca = IcewarpSettings {
            ca_file: Some("ca.pem".into()),
            ..example()
        };
        assert_eq!(relative_ca.validate().unwrap_err().key, "ca_file");
    }

    #[test]
    fn the_secret_target_changes_with_each_field_it_is_bound_to() {
        let base = example();
        let same = IcewarpSettings {
            server: "https://MAIL.example.com/".into(),
            username: " Admin@example.com".into(),
            domains: vec!["other.org".into()],
            ..example()
        };
        assert_eq!(base.secret_target(), same.secret_target());
        for changed in [
            IcewarpSettings {
                server: "evil.example.net".into(),
                ..example()
            },
            IcewarpSettings {
                server: "http://mail.example.com".into(),
                ..example()
            },
            IcewarpSettings {
                server: "mail.example.com:32001".into(),
                ..example()
            },
            IcewarpSettings {
                ignore_certificate_errors: true,
                ..example()
            },
            IcewarpSettings {
                ca_file: Some("/etc/ca.pem".into()),
                ..example()
            },
            IcewarpSettings {
                username: "other@example.com".into(),
                ..example()
            },
        ] {
            assert_ne!(base.secret_target(), changed.secret_target(), "{changed:?}");
        }
    }
}
