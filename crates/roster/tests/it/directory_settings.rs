//! Directory settings of every kind through the use cases and a real store: the service secret is stored
//! sealed, kept when the settings are replaced for the same target, required again for a new target, and
//! never serialized (not in the stored settings, not in what is shown, not in the audit log).

use roster_app::AppError;
use roster_core::directory::{
    ActiveDirectorySettings, AdProtocol, AttributeMapping, DirectoryKind, DirectorySettings,
    Encryption, IcewarpSettings, KerioSettings, LdapSettings, LdifSettings, Secret, UsernameFormat,
};

use crate::support::Env;

const SECRET: &str = "s3rvice-Secret-that-must-not-leak";

/// Two settings of `kind` whose secret targets differ, the first with its secret set if the kind has one.
/// A `match` without a wildcard arm: a new kind doesn't compile until it has its examples here.
fn examples(kind: DirectoryKind) -> (DirectorySettings, DirectorySettings) {
    let mapping = AttributeMapping {
        filter: "(objectClass=inetOrgPerson)".into(),
        username_attribute: "uid".into(),
        full_name_attribute: Some("cn".into()),
        email_attributes: Some("mail".into()),
    };
    match kind {
        DirectoryKind::Ldap => {
            let first = LdapSettings {
                schedule: Default::default(),
                server: "127.0.0.1".into(),
                port: Some(10389),
                encryption: Encryption::None,
                ignore_certificate_errors: false,
                ca_file: None,
                bind_dn: "cn=roster,dc=example,dc=com".into(),
                password: Some(Secret::new(SECRET)),
                base_dn: "ou=People,dc=example,dc=com".into(),
                mapping,
                delete_users: false,
                guard: Default::default(),
                page_size: None,
                timeout_seconds: None,
            };
            let elsewhere = LdapSettings {
                server: "ldap.elsewhere.example".into(),
                password: None,
                ..first.clone()
            };
            (
                DirectorySettings::Ldap(first),
                DirectorySettings::Ldap(elsewhere),
            )
        }
        DirectoryKind::Ldif => {
            let first = LdifSettings {
                schedule: Default::default(),
                file: "/srv/export/company.ldif".into(),
                base_dn: "dc=example,dc=com".into(),
                mapping,
                delete_users: false,
                guard: Default::default(),
                limits: Default::default(),
            };
            let other = LdifSettings {
                file: "/srv/export/other.ldif".into(),
                ..first.clone()
            };
            (
                DirectorySettings::Ldif(first),
                DirectorySettings::Ldif(other),
            )
        }
        DirectoryKind::Icewarp => {
            let first = IcewarpSettings {
                schedule: Default::default(),
                server: "mail.example.com".into(),
                ignore_certificate_errors: false,
                ca_file: None,
                username: "admin@example.com".into(),
                password: Some(Secret::new(SECRET)),
                domains: vec!["example.com".into()],
                groups: vec![],
                username_format: UsernameFormat::Email,
                delete_users: false,
                guard: Default::default(),
            };
            let elsewhere = IcewarpSettings {
                server: "mail.elsewhere.example".into(),
                password: None,
                ..first.clone()
            };
            (
                DirectorySettings::Icewarp(first),
                DirectorySettings::Icewarp(elsewhere),
            )
        }
        DirectoryKind::Kerio => {
            let first = KerioSettings {
                schedule: Default::default(),
                server: "mail.example.com".into(),
                ignore_certificate_errors: false,
                ca_file: None,
                username: "admin".into(),
                password: Some(Secret::new(SECRET)),
                domains: vec![],
                groups: vec!["Sales@example.com".into()],
                username_format: UsernameFormat::Email,
                imap_server: String::new(),
                delete_users: false,
                guard: Default::default(),
            };
            let elsewhere = KerioSettings {
                server: "mail.elsewhere.example".into(),
                password: None,
                ..first.clone()
            };
            (
                DirectorySettings::Kerio(first),
                DirectorySettings::Kerio(elsewhere),
            )
        }
        DirectoryKind::ActiveDirectory => {
            let first = ActiveDirectorySettings {
                schedule: Default::default(),
                domain: "company.local".into(),
                server: String::new(),
                dns_server: String::new(),
                port: None,
                protocol: AdProtocol::Ldap,
                ignore_certificate_errors: false,
                ca_file: None,
                base_dn: String::new(),
                username: "Administrator@company.local".into(),
                password: Some(Secret::new(SECRET)),
                authentication: roster_core::directory::AdAuthentication::Password,
                keytab: None,
                principal: String::new(),
                exchange_users_only: true,
                enabled_users_only: true,
                visible_in_address_lists_only: false,
                groups: vec![],
                delete_users: false,
                guard: Default::default(),
                page_size: None,
                timeout_seconds: None,
            };
            let elsewhere = ActiveDirectorySettings {
                server: "dc2.company.local".into(),
                password: None,
                authentication: roster_core::directory::AdAuthentication::Password,
                keytab: None,
                principal: String::new(),
                ..first.clone()
            };
            (
                DirectorySettings::ActiveDirectory(first),
                DirectorySettings::ActiveDirectory(elsewhere),
            )
        }
    }
}

fn without_secret(mut settings: DirectorySettings) -> DirectorySettings {
    if let Some(slot) = settings
        .configured_mut()
        .and_then(|(_, typed)| typed.secret_slot())
    {
        *slot = None;
    }
    settings
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_stores_keeps_and_requires_its_secret_and_never_shows_it() {
    for &kind in DirectoryKind::ALL {
        let env = Env::sqlite().await;
        let admin = env.local_admin();
        let (first, elsewhere) = examples(kind);
        let has_secret = first.secret().is_some();

        let shown = env
            .roster
            .set_directory_settings(&admin, first.clone())
            .await
            .unwrap();
        assert_eq!(shown.password_set, has_secret.then_some(true), "{kind}");
        let stored_settings = env.store.get_setting("directory").await.unwrap().unwrap();
        let stored_secret = env
            .store
            .get_setting("directory_password")
            .await
            .unwrap()
            .unwrap();
        assert!(!stored_settings.contains(SECRET), "{kind}");
        assert!(!stored_secret.contains(SECRET), "{kind}: sealed, not plain");
        assert_eq!(stored_secret.is_empty(), !has_secret, "{kind}");

        // The same target without the secret: kept.
        let kept = env
            .roster
            .set_directory_settings(&admin, without_secret(first.clone()))
            .await
            .unwrap();
        assert_eq!(kept.password_set, has_secret.then_some(true), "{kind}");
        assert_eq!(
            env.store
                .get_setting("directory_password")
                .await
                .unwrap()
                .unwrap()
                .is_empty(),
            !has_secret,
            "{kind}"
        );

        // Another target without the secret: required again (kinds without a secret just take it).
        let moved = env
            .roster
            .set_directory_settings(&admin, elsewhere.clone())
            .await;
        if has_secret {
            match moved.unwrap_err() {
                AppError::InvalidSetting { key, message } => {
                    assert_eq!(key, "password", "{kind}");
                    assert!(message.contains("again"), "{kind}: {message}");
                }
                other => panic!("{kind}: expected InvalidSetting, got {other:?}"),
            }
        } else {
            moved.unwrap();
        }

        // Never shown: not by the view, not in the audit log.
        let view = env.roster.directory_settings(&admin).await.unwrap();
        let json = serde_json::to_string(&view).unwrap();
        assert!(!json.contains(SECRET), "{kind}: {json}");
        assert_eq!(view.settings.kind(), Some(kind));
        let audit = env.roster.audit_log(&admin, 0, 100).await.unwrap();
        for entry in &audit.items {
            assert!(!entry.details.contains(SECRET), "{kind}: {entry:?}");
        }
        env.check().await;
    }
}

/// A keytab file holding `principal` (MIT's version-2 format, one AES key of zeros): enough for the
/// settings' checks, which read the keytab's principals (no KDC here).
fn keytab_file(dir: &std::path::Path, principal: &str) -> std::path::PathBuf {
    let (name, realm) = principal.split_once('@').unwrap();
    let mut body = Vec::new();
    let components: Vec<&str> = name.split('/').collect();
    body.extend((components.len() as u16).to_be_bytes());
    body.extend((realm.len() as u16).to_be_bytes());
    body.extend(realm.as_bytes());
    for c in &components {
        body.extend((c.len() as u16).to_be_bytes());
        body.extend(c.as_bytes());
    }
    body.extend(1u32.to_be_bytes());
    body.extend(0u32.to_be_bytes());
    body.push(1);
    body.extend(18u16.to_be_bytes());
    body.extend(32u16.to_be_bytes());
    body.extend([0u8; 32]);
    let mut file = vec![5, 2];
    file.extend((body.len() as i32).to_be_bytes());
    file.extend(body);
    let path = dir.join("svc.keytab");
    std::fs::write(&path, file).unwrap();
    path
}

/// Issue 25: with Kerberos the settings store no password, and the keytab's path follows the password's
/// rule: left out, it is kept for the same target and asked for again when the target changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keytab_is_kept_or_asked_for_like_a_password() {
    let env = Env::sqlite().await;
    let admin = env.local_admin();
    let keytab = keytab_file(env.dir.path(), "roster-svc@COMPANY.LOCAL");
    let (DirectorySettings::ActiveDirectory(base), _) = examples(DirectoryKind::ActiveDirectory)
    else {
        panic!("AD settings expected");
    };
    let kerberos = ActiveDirectorySettings {
        server: "dc1.company.local".into(),
        username: String::new(),
        password: None,
        authentication: roster_core::directory::AdAuthentication::Kerberos,
        keytab: Some(keytab.clone()),
        principal: "roster-svc@COMPANY.LOCAL".into(),
        ..base
    };
    let shown = env
        .roster
        .set_directory_settings(&admin, DirectorySettings::ActiveDirectory(kerberos.clone()))
        .await
        .unwrap();
    assert_ne!(shown.password_set, Some(true), "no password is stored");
    assert_eq!(
        env.store
            .get_setting("directory_password")
            .await
            .unwrap()
            .unwrap(),
        ""
    );

    // Left out, same target: kept.
    let without = ActiveDirectorySettings {
        keytab: None,
        ..kerberos.clone()
    };
    env.roster
        .set_directory_settings(&admin, DirectorySettings::ActiveDirectory(without.clone()))
        .await
        .unwrap();
    let view = env.roster.directory_settings(&admin).await.unwrap();
    let DirectorySettings::ActiveDirectory(stored) = view.settings else {
        panic!("AD settings expected");
    };
    assert_eq!(stored.keytab.as_deref(), Some(keytab.as_path()));

    // Left out, another domain controller: asked for again.
    let moved = ActiveDirectorySettings {
        server: "dc2.company.local".into(),
        ..without
    };
    match env
        .roster
        .set_directory_settings(&admin, DirectorySettings::ActiveDirectory(moved))
        .await
        .unwrap_err()
    {
        AppError::InvalidSetting { key, message } => {
            assert_eq!(key, "keytab");
            assert!(message.contains("again"), "{message}");
        }
        other => panic!("expected InvalidSetting, got {other:?}"),
    }

    // A password beside a keytab is refused: one way to bind.
    let both = ActiveDirectorySettings {
        password: Some(Secret::new(SECRET)),
        ..kerberos
    };
    let e = env
        .roster
        .set_directory_settings(&admin, DirectorySettings::ActiveDirectory(both))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("keytab"), "{e}");
    env.check().await;
}
