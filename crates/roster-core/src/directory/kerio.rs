//! The seed's "Kerio Connect" settings (issue 23): the server's Administration API (HTTPS, port 4040
//! unless given), an administrator's name and password for it, the domains and groups to synchronize,
//! how user names are made, and the IMAP server that checks users' passwords (the admin API can't).
//!
//! The domains-or-groups rule, the user name formats and the server's form are the mail servers' rules,
//! written once in `mail.rs`. Choices where the issue is silent:
//! * `server` may start with `http://`, as IceWarp's may (the rule is shared; it serves the emulator
//!   without TLS); the real server's admin API is HTTPS only, so a real set-up leaves it out. Without a
//!   port, the admin API's 4040 is used with either scheme.
//! * Groups are `name@domain` (`Sales@example.com`): a group's name has no spaces and no `@`, the
//!   same check as IceWarp's group addresses.
//! * `imap_server` must name its scheme: `imaps://host[:port]` (TLS from the start, port 993) or
//!   `imap://host[:port]` (STARTTLS, port 143); empty means `imaps://` on the API's host, port 993. The
//!   certificate settings (`ca_file`, `ignore_certificate_errors`) apply to both servers: they are
//!   normally one machine with one certificate.
//! * The stored password is bound to the API's origin, the certificate settings and the user name, not
//!   to `imap_server`: the administrator's password is never sent to the IMAP server (users' own
//!   passwords are).

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use super::mail::{self, ServerEndpoint, UsernameFormat, empty_path_is_none};
use super::{
    DeletionGuardSettings, ScheduleSettings, Secret, SecretSpec, SettingsError, TypeSettings,
    never_shown, refuse_to_serialize, require_absolute, settings_error,
};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KerioSettings {
    /// Name or IP address of the Kerio Connect server, optionally with `:port` (4040, the admin API's,
    /// when left out). The API is at `/admin/api/jsonrpc/` there, over HTTPS.
    pub server: String,
    /// The seed's "Ignore SSL Security Warnings": accept a self-signed certificate (the admin API's and
    /// the IMAP server's).
    #[serde(default)]
    pub ignore_certificate_errors: bool,
    /// The CA certificate (PEM) that issued the server's certificate, added to the system's; `""` or left
    /// out: none.
    #[serde(
        default,
        deserialize_with = "empty_path_is_none",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub ca_file: Option<PathBuf>,
    /// An administrator of Kerio Connect (`admin`, or `admin@example.com` outside the primary domain).
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
    /// Domains whose users are synchronized (empty: see `groups`).
    #[serde(default)]
    pub domains: Vec<String>,
    /// Groups as `name@domain` (`Sales@example.com`) whose members are synchronized. With both empty,
    /// every user is; with either set, a user in a selected domain **or** a selected group.
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub username_format: UsernameFormat,
    /// Where users' passwords are checked: `imaps://host[:port]` (TLS from the start) or
    /// `imap://host[:port]` (STARTTLS); empty: `imaps://` on the same host as `server`, port 993.
    #[serde(default)]
    pub imap_server: String,
    #[serde(default)]
    pub delete_users: bool,
    /// The deletion guard and grace period, as for every type (`max_deletions`, `max_deletions_percent`,
    /// `delete_after` at the top level).
    #[serde(flatten)]
    pub guard: DeletionGuardSettings,
    #[serde(flatten)]
    pub schedule: ScheduleSettings,
}

/// How the IMAP connection is secured: it always is, before any password is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImapSecurity {
    /// `imaps://`: TLS from the start (port 993).
    Tls,
    /// `imap://`: STARTTLS before logging in (port 143); a server that doesn't offer it is refused.
    StartTls,
}

/// The IMAP server that checks users' passwords.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImapEndpoint {
    pub security: ImapSecurity,
    /// A host name, an IPv4 address, or an IPv6 address in brackets.
    pub host: String,
    pub port: u16,
}

impl ImapEndpoint {
    /// `imaps://host:port` or `imap://host:port`.
    pub fn url(&self) -> String {
        let scheme = match self.security {
            ImapSecurity::Tls => "imaps",
            ImapSecurity::StartTls => "imap",
        };
        format!("{scheme}://{}:{}", self.host, self.port)
    }
}

impl KerioSettings {
    /// Where the Administration API is on the server.
    pub const API_PATH: &'static str = "/admin/api/jsonrpc/";
    /// The admin API's port when `server` gives none.
    pub const DEFAULT_PORT: u16 = 4040;

    /// The admin API's endpoint (port 4040 when none is given), or what is wrong with `server`.
    pub fn endpoint(&self) -> Result<ServerEndpoint, SettingsError> {
        let mut endpoint = ServerEndpoint::parse(
            &self.server,
            Self::API_PATH,
            "the Kerio Connect server",
            "mail.example.com, mail.example.com:4040, 10.0.0.5",
        )?;
        endpoint.port = Some(endpoint.port.unwrap_or(Self::DEFAULT_PORT));
        Ok(endpoint)
    }

    /// The IMAP server for password checks, or what is wrong with `imap_server` (or `server`, when it
    /// is empty).
    pub fn imap_endpoint(&self) -> Result<ImapEndpoint, SettingsError> {
        let raw = self.imap_server.trim();
        if raw.is_empty() {
            return Ok(ImapEndpoint {
                security: ImapSecurity::Tls,
                host: self.endpoint()?.host,
                port: 993,
            });
        }
        let lower = raw.to_ascii_lowercase();
        let (security, default_port, rest) = if lower.starts_with("imaps://") {
            (ImapSecurity::Tls, 993, raw.get("imaps://".len()..))
        } else if lower.starts_with("imap://") {
            (ImapSecurity::StartTls, 143, raw.get("imap://".len()..))
        } else {
            return Err(settings_error(
                "imap_server",
                format!(
                    "{raw:?} names no IMAP scheme; write imaps://host[:port] (TLS from the start) or imap://host[:port] (STARTTLS), or leave it empty for imaps:// on the server's host"
                ),
            ));
        };
        let parsed = ServerEndpoint::parse(
            rest.unwrap_or_default(),
            "/",
            "the IMAP server",
            "imaps://mail.example.com, imap://mail.example.com:143",
        )
        .map_err(|e| settings_error("imap_server", e.message))?;
        Ok(ImapEndpoint {
            security,
            host: parsed.host,
            port: parsed.port.unwrap_or(default_port),
        })
    }

    /// The selected domains, trimmed and lowercased, in the order given, without repeats.
    pub fn selected_domains(&self) -> Vec<String> {
        mail::selected(&self.domains)
    }

    /// The selected groups (`name@domain`), trimmed and lowercased, in the order given, without repeats.
    pub fn selected_groups(&self) -> Vec<String> {
        mail::selected(&self.groups)
    }

    /// The scope rule in words, for the preview's header and the audit log.
    pub fn scope_rule(&self) -> String {
        mail::scope_rule(&self.domains, &self.groups, "user", "users")
    }

    fn origin(&self) -> String {
        self.endpoint()
            .map(|e| e.origin())
            .unwrap_or_else(|_| self.server.trim().to_lowercase())
    }
}

impl TypeSettings for KerioSettings {
    fn validate(&self) -> Result<(), SettingsError> {
        self.endpoint()?;
        if let Some(ca_file) = &self.ca_file {
            require_absolute("ca_file", ca_file, "the CA file")?;
        }
        let username = self.username.trim();
        if username.is_empty() || username.chars().any(char::is_whitespace) {
            return Err(settings_error(
                "username",
                "give the user name of a Kerio Connect administrator (admin, or admin@example.com outside the primary domain)",
            ));
        }
        mail::check_scope(
            &self.domains,
            &self.groups,
            "as name@domain, e.g. Sales@example.com",
        )?;
        self.imap_endpoint()?;
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
            what: "the password of the Kerio Connect administrator (username)",
            bound_to: "the server, certificate settings or user name",
        })
    }

    fn secret_target(&self) -> Vec<String> {
        vec![
            self.origin(),
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
            "server {}, administrator {}, {}, user names {}, passwords checked by {}, delete users {}{}{}",
            self.origin(),
            self.username.trim(),
            self.scope_rule(),
            self.username_format.as_str(),
            self.imap_endpoint()
                .map(|e| e.url())
                .unwrap_or_else(|_| self.imap_server.trim().to_owned()),
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
            "the Kerio Connect server {} ({})",
            self.origin(),
            self.scope_rule()
        )
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::directory) fn example() -> KerioSettings {
        KerioSettings {
            server: "mail.example.com".into(),
            ignore_certificate_errors: false,
            ca_file: None,
            username: "admin".into(),
            password: Some(Secret::new("admin-password")),
            domains: vec![],
            groups: vec![],
            username_format: UsernameFormat::Email,
            imap_server: String::new(),
            delete_users: false,
            guard: DeletionGuardSettings::default(),
            schedule: Default::default(),
        }
    }

    #[test]
    fn the_issue_s_example_parses() {
        // The issue's TOML (without `type`, which belongs to DirectorySettings), as JSON.
        let json = serde_json::json!({
            "server": "mail.example.com", "ignore_certificate_errors": false, "ca_file": "",
            "username": "admin", "password": "...", "domains": [], "groups": [],
            "username_format": "email", "imap_server": "", "delete_users": false
        });
        let s: KerioSettings = serde_json::from_value(json).unwrap();
        s.validate().unwrap();
        assert_eq!(s.ca_file, None);
        assert_eq!(s.password.as_ref().map(Secret::expose), Some("..."));
        assert_eq!(
            s.endpoint().unwrap().url(KerioSettings::API_PATH),
            "https://mail.example.com:4040/admin/api/jsonrpc/"
        );
        assert_eq!(
            s.imap_endpoint().unwrap().url(),
            "imaps://mail.example.com:993"
        );
        let shown = serde_json::to_string(&s).unwrap();
        assert!(!shown.contains("\"password\""), "{shown}");
        let err = serde_json::from_value::<KerioSettings>(
            serde_json::json!({"server": "x", "username": "a", "colour": "blue"}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `colour`"), "{err}");
    }

    #[test]
    fn servers_become_kerio_endpoints() {
        for (server, url) in [
            (
                "mail.example.com",
                "https://mail.example.com:4040/admin/api/jsonrpc/",
            ),
            (
                "Mail.Example.com:8443",
                "https://mail.example.com:8443/admin/api/jsonrpc/",
            ),
            (
                "http://127.0.0.1:9000",
                "http://127.0.0.1:9000/admin/api/jsonrpc/",
            ),
            (
                "https://mail.example.com:4040/admin/api/jsonrpc/",
                "https://mail.example.com:4040/admin/api/jsonrpc/",
            ),
            ("[::1]", "https://[::1]:4040/admin/api/jsonrpc/"),
        ] {
            let s = KerioSettings {
                server: server.into(),
                ..example()
            };
            assert_eq!(s.endpoint().unwrap().url(KerioSettings::API_PATH), url);
            s.validate().unwrap();
        }
        let bad = KerioSettings {
            server: "mail.example.com/webmail".into(),
            ..example()
        }
        .validate()
        .unwrap_err();
        assert_eq!(bad.key, "server");
        assert!(
            bad.message.contains("Kerio Connect server"),
            "{}",
            bad.message
        );
    }

    #[test]
    fn imap_servers_name_their_security() {
        for (imap, url, security) in [
            ("", "imaps://mail.example.com:993", ImapSecurity::Tls),
            (
                "imaps://imap.example.com",
                "imaps://imap.example.com:993",
                ImapSecurity::Tls,
            ),
            (
                "IMAPS://imap.example.com:1993",
                "imaps://imap.example.com:1993",
                ImapSecurity::Tls,
            ),
            (
                "imap://imap.example.com",
                "imap://imap.example.com:143",
                ImapSecurity::StartTls,
            ),
            (
                "imap://127.0.0.1:1143/",
                "imap://127.0.0.1:1143",
                ImapSecurity::StartTls,
            ),
        ] {
            let s = KerioSettings {
                imap_server: imap.into(),
                ..example()
            };
            let endpoint = s.imap_endpoint().unwrap();
            assert_eq!(
                (endpoint.url().as_str(), endpoint.security),
                (url, security),
                "{imap}"
            );
            s.validate().unwrap();
            assert!(s.describe().contains(url), "{}", s.describe());
        }
        for bad in [
            "imap.example.com",
            "https://imap.example.com",
            "imaps://",
            "imaps://imap.example.com:0",
            "imap://user@imap.example.com",
        ] {
            let s = KerioSettings {
                imap_server: bad.into(),
                ..example()
            };
            let err = s.validate().unwrap_err();
            assert_eq!(err.key, "imap_server", "{bad}");
        }
    }

    #[test]
    fn the_rest_is_checked() {
        let ok = KerioSettings {
            domains: vec!["Example.com".into(), "example.com".into()],
            groups: vec!["Sales@Example.com".into()],
            ..example()
        };
        ok.validate().unwrap();
        assert_eq!(ok.selected_domains(), ["example.com"]);
        assert_eq!(ok.selected_groups(), ["sales@example.com"]);
        assert!(ok.read_scope().starts_with("the Kerio Connect server https://mail.example.com:4040 (a user is synchronized when"), "{}", ok.read_scope());
        // The rules are `mail::check_scope`'s, tested there; here that validate applies them.
        for (domains, groups, key) in [
            (vec!["sales@example.com"], vec![], "domains"),
            (vec![], vec!["Sales"], "groups"),
        ] {
            let s = KerioSettings {
                domains: domains.into_iter().map(Into::into).collect(),
                groups: groups.into_iter().map(Into::into).collect(),
                ..example()
            };
            assert_eq!(s.validate().unwrap_err().key, key, "{s:?}");
        }
        for username in ["", " ", "ad min"] {
            let s = KerioSettings {
                username: username.into(),
                ..example()
            };
            assert_eq!(s.validate().unwrap_err().key, "username", "{username:?}");
        }
        let relative_ca = KerioSettings {
            ca_file: Some("ca.pem".into()),
            ..example()
        };
        assert_eq!(relative_ca.validate().unwrap_err().key, "ca_file");
        let with_secret = format!("{:?} {}", example(), example().describe());
        assert!(!with_secret.contains("admin-password"), "{with_secret}");
    }

    #[test]
    fn the_secret_target_changes_with_each_field_it_is_bound_to() {
        let base = example();
        let same = KerioSettings {
            server: "https://MAIL.example.com:4040/".into(),
            username: " Admin".into(),
            domains: vec!["other.org".into()],
            imap_server: "imap://other.example.com".into(),
            ..example()
        };
        assert_eq!(base.secret_target(), same.secret_target());
        for changed in [
            KerioSettings {
                server: "evil.example.net".into(),
                ..example()
            },
            KerioSettings {
                server: "http://mail.example.com".into(),
                ..example()
            },
            KerioSettings {
                server: "mail.example.com:4041".into(),
                ..example()
            },
            KerioSettings {
                ignore_certificate_errors: true,
                ..example()
            },
            KerioSettings {
                ca_file: Some("/etc/ca.pem".into()),
                ..example()
            },
            KerioSettings {
                username: "other".into(),
                ..example()
            },
        ] {
            assert_ne!(base.secret_target(), changed.secret_target(), "{changed:?}");
        }
    }
}
