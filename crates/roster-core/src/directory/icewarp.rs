//! The seed's "IceWarp Server" settings: the server (HTTPS unless it starts with `http://`), an
//! administrator's name and password for the XML API, the domains and groups to synchronize, and how user
//! names are made.
//!
//! The scope rule (the seeds: "If no domains or groups are selected, all users will be synchronized"):
//! with neither set, every user account of every domain; otherwise a user account is synchronized when it
//! is in a selected domain **or** a member of a selected group.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use super::mail::{self, ServerEndpoint, UsernameFormat, empty_path_is_none};
use super::{
    DeletionGuardSettings, ScheduleSettings, Secret, SecretSpec, SettingsError, TypeSettings,
    never_shown, refuse_to_serialize, require_absolute, settings_error,
};

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

impl IcewarpSettings {
    /// Where the API is posted to on the server.
    pub const API_PATH: &'static str = "/icewarpapi/";

    /// The server as an endpoint, or what is wrong with it.
    pub fn endpoint(&self) -> Result<ServerEndpoint, SettingsError> {
        ServerEndpoint::parse(
            &self.server,
            Self::API_PATH,
            "the IceWarp server",
            "mail.example.com, mail.example.com:32001, http://10.0.0.5:32000",
        )
    }

    /// The selected domains, trimmed and lowercased, in the order given, without repeats.
    pub fn selected_domains(&self) -> Vec<String> {
        mail::selected(&self.domains)
    }

    /// The selected group addresses, trimmed and lowercased, in the order given, without repeats.
    pub fn selected_groups(&self) -> Vec<String> {
        mail::selected(&self.groups)
    }

    /// The scope rule in words, for the preview's header and the audit log.
    pub fn scope_rule(&self) -> String {
        mail::scope_rule(&self.domains, &self.groups, "user account", "user accounts")
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
        mail::check_scope(
            &self.domains,
            &self.groups,
            "by address, e.g. sales@example.com",
        )?;
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

    /// The parsing itself is `mail::ServerEndpoint::parse`'s, tested there; here IceWarp's path and words.
    #[test]
    fn servers_become_icewarp_endpoints() {
        for (server, url) in [
            ("mail.example.com", "https://mail.example.com/icewarpapi/"),
            ("http://10.0.0.5:32000", "http://10.0.0.5:32000/icewarpapi/"),
            (
                "https://mail.example.com/IceWarpAPI/",
                "https://mail.example.com/icewarpapi/",
            ),
        ] {
            let s = IcewarpSettings {
                server: server.into(),
                ..example()
            };
            assert_eq!(
                s.endpoint().unwrap().url(IcewarpSettings::API_PATH),
                url,
                "{server}"
            );
            s.validate().unwrap();
        }
        let bad = IcewarpSettings {
            server: "mail.example.com/other".into(),
            ..example()
        }
        .validate()
        .unwrap_err();
        assert_eq!(bad.key, "server");
        assert!(bad.message.contains("IceWarp server"), "{}", bad.message);
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
        // The rules are `mail::check_scope`'s, tested there; here that validate applies them.
        for (domains, groups, key) in [
            (vec!["sales@example.com"], vec![], "domains"),
            (vec![], vec!["sales"], "groups"),
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
