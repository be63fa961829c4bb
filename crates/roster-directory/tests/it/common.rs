//! Shared set-up: settings for a testkit slapd, and LDIF builders for what `user_ldif` can't express.

use roster_core::directory::{DirectorySettings, Encryption, LdapSettings, Secret};
use roster_directory::{
    Connector, DirectoryError, ReadProgress, connector, install_crypto_provider,
};
use roster_testkit::Slapd;
use roster_testkit::ldif::push_attr;

/// Settings for `slapd`, bound as its root DN, reading inetOrgPersons below ou=People.
pub fn settings(slapd: &Slapd) -> LdapSettings {
    LdapSettings {
        schedule: Default::default(),
        server: "127.0.0.1".into(),
        port: Some(slapd.port()),
        encryption: Encryption::None,
        ignore_certificate_errors: false,
        ca_file: None,
        bind_dn: slapd.root_dn().into(),
        password: Some(Secret::new(slapd.root_password())),
        base_dn: slapd.people_dn(),
        mapping: roster_core::directory::AttributeMapping {
            filter: "(objectClass=inetOrgPerson)".into(),
            username_attribute: "uid".into(),
            full_name_attribute: Some("cn".into()),
            email_attributes: Some("mail".into()),
        },
        delete_users: false,
        guard: Default::default(),
        page_size: None,
        timeout_seconds: Some(10),
    }
}

pub fn connect(settings: LdapSettings) -> Connector {
    install_crypto_provider();
    connector(&DirectorySettings::Ldap(settings)).unwrap()
}

pub fn try_connect(settings: LdapSettings) -> Result<Connector, DirectoryError> {
    install_crypto_provider();
    connector(&DirectorySettings::Ldap(settings))
}

/// `count` users `u1..=count` below ou=People with password "pw", for `SlapdConfig::base_ldif`.
pub fn many_users(suffix: &str, count: usize) -> String {
    let mut out = String::with_capacity(count * 250);
    for i in 1..=count {
        let uid = format!("u{i}");
        let cn = format!("User {i}");
        let mail = format!("u{i}@example.com");
        out.push_str(&roster_testkit::user_ldif(
            suffix,
            &roster_testkit::TestUser {
                uid: &uid,
                cn: &cn,
                mail: vec![&mail],
                password: Some("pw"),
                ..Default::default()
            },
        ));
    }
    out
}

/// An entry with arbitrary attributes (values base64-encoded when needed).
pub fn entry(dn: &str, attrs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    push_attr(&mut out, "dn", dn);
    for (name, value) in attrs {
        push_attr(&mut out, name, value);
    }
    out.push('\n');
    out
}

pub fn person(dn: &str, uid: Option<&str>, cn: &str, extra: &[(&str, &str)]) -> String {
    let mut attrs: Vec<(&str, &str)> = vec![
        ("objectClass", "top"),
        ("objectClass", "person"),
        ("objectClass", "organizationalPerson"),
        ("objectClass", "inetOrgPerson"),
        ("cn", cn),
        ("sn", cn.split_whitespace().last().unwrap_or(cn)),
    ];
    if let Some(uid) = uid {
        attrs.push(("uid", uid));
    }
    attrs.extend_from_slice(extra);
    entry(dn, &attrs)
}

/// Records every progress call.
#[derive(Default)]
pub struct Recorder(pub std::sync::Mutex<Vec<u64>>);

impl ReadProgress for Recorder {
    fn entries_read(&self, total_so_far: u64) {
        self.0.lock().unwrap().push(total_so_far);
    }
}
