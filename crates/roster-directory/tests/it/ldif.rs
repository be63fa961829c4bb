//! The LDIF connector: same mapping as LDAP, filtered offline, no logons.

use std::path::Path;

use roster_core::directory::{DirectorySettings, LdifSettings};
use roster_directory::{DirectoryError, NoProgress, connector};

const SAMPLE: &str = "\
version: 1

# A comment between records.
dn: dc=example,dc=com
objectClass: dcObject
dc: example

dn: uid=zoe,ou=People,dc=example,dc=com
objectClass: inetOrgPerson
uid: zoe
cn:: Wm/DqyDDhW5nc3Ryw7Zt
entryUUID: 0A1B2C3D-0000-1111-2222-333344445555
mail: zoe@example.com
otherMailbox: ZOE@example.com
otherMailbox: zoe@other.exam
 ple

dn: cn=Smith\\, John,OU=people,DC=Example,DC=com
objectClass: inetOrgPerson
uid: jsmith
cn: Smith, John

dn: uid=skip,ou=People,dc=example,dc=com
objectClass: inetOrgPerson
uid: skip
cn: Skipped By Filter

dn: uid=other,ou=Other,dc=example,dc=com
objectClass: inetOrgPerson
uid: other
cn: Outside The Base
";

fn write(dir: &Path, name: &str, text: impl AsRef<[u8]>) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A whole read with these settings.
async fn read(s: LdifSettings) -> Result<roster_directory::DirectoryRead, DirectoryError> {
    connector(&DirectorySettings::Ldif(s))
        .unwrap()
        .reader
        .read_entries(&NoProgress)
        .await
}

fn settings(file: std::path::PathBuf) -> LdifSettings {
    LdifSettings {
        file,
        base_dn: "ou=people,dc=example,dc=com".into(),
        mapping: roster_core::directory::AttributeMapping {
            filter: "(&(objectClass=inetOrgPerson)(!(uid=skip)))".into(),
            username_attribute: "uid".into(),
            full_name_attribute: Some("cn".into()),
            email_attributes: Some("mail,otherMailbox".into()),
        },
        delete_users: false,
    }
}

#[tokio::test]
async fn reads_filters_and_maps_an_ldif_file() {
    let dir = roster_testkit::common::temp_dir("roster-ldif-").unwrap();
    let file = write(dir.path(), "users.ldif", SAMPLE);
    let ldif = connector(&DirectorySettings::Ldif(settings(file.clone()))).unwrap();
    assert_eq!(ldif.kind.name(), "ldif");
    ldif.reader.check_connection().await.unwrap();
    let progress = crate::common::Recorder::default();
    let read = ldif.reader.read_entries(&progress).await.unwrap();
    assert_eq!(read.entries.len(), 2, "{:#?}", read.entries);
    assert_eq!(progress.0.lock().unwrap().last(), Some(&2));
    let zoe = &read.entries[0];
    assert_eq!(zoe.name.as_deref(), Some("zoe"));
    assert_eq!(zoe.full_name.as_deref(), Some("Zoë Ångström"));
    assert_eq!(zoe.id, "0a1b2c3d-0000-1111-2222-333344445555");
    assert_eq!(
        zoe.emails.as_deref().unwrap(),
        ["zoe@example.com", "zoe@other.example"]
    );
    let smith = &read.entries[1];
    assert_eq!(smith.name.as_deref(), Some("jsmith"));
    assert_eq!(smith.dn, "cn=Smith\\, John,OU=people,DC=Example,DC=com");
    assert_eq!(smith.id, "dn:cn=smith\\, john,ou=people,dc=example,dc=com");
    assert_eq!(read.without_stable_id, 1);

    // An empty base DN keeps everything the filter matches.
    let mut s = settings(file.clone());
    s.base_dn = String::new();
    let all = connector(&DirectorySettings::Ldif(s)).unwrap();
    assert_eq!(
        all.reader
            .read_entries(&NoProgress)
            .await
            .unwrap()
            .entries
            .len(),
        3
    );

    // A file can't check passwords: the connector has no password checker, and says so.
    assert!(ldif.passwords.is_none());
    let err = ldif.password_checker().unwrap_err();
    assert!(
        matches!(err, DirectoryError::LogonUnsupported { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("local authentication"), "{err}");
}

#[tokio::test]
async fn ldif_errors() {
    let dir = roster_testkit::common::temp_dir("roster-ldif-").unwrap();
    let bad = write(
        dir.path(),
        "bad.ldif",
        "dn: uid=a,ou=People,dc=example,dc=com\nuid: a\n\ndn: uid=b,ou=People,dc=example,dc=com\nthis line has no colon\n",
    );
    let err = read(settings(bad)).await.unwrap_err();
    assert!(matches!(err, DirectoryError::Ldif { .. }), "{err:?}");
    assert!(err.to_string().contains("line 5"), "{err}");

    let missing = dir.path().join("missing.ldif");
    let ldif = connector(&DirectorySettings::Ldif(settings(missing))).unwrap();
    assert_eq!(
        ldif.reader.check_connection().await.unwrap_err().code(),
        "DI017-ldif"
    );
    assert_eq!(
        ldif.reader
            .read_entries(&NoProgress)
            .await
            .unwrap_err()
            .code(),
        "DI017-ldif"
    );

    // Regressions (review of issue 4): an empty file, a file of comments, and a file cut inside a line
    // were read as complete, so that every user after the cut looked deleted.
    let cut_at = SAMPLE.find("uid: jsmith").unwrap() + 7;
    for (name, text, fragment) in [
        ("empty.ldif", "", "no entries"),
        (
            "comments.ldif",
            "version: 1\n# nothing else\n",
            "no entries",
        ),
        ("cut.ldif", &SAMPLE[..cut_at], "truncated"),
    ] {
        let file = write(dir.path(), name, text);
        let err = read(settings(file)).await.unwrap_err();
        assert_eq!(err.code(), "DI017-ldif", "{name}: {err}");
        assert!(err.to_string().contains(fragment), "{name}: {err}");
    }

    // A base DN that nothing in the file is under (regression, diff review of issue 4): an error, as
    // an LDAP server's "no such object", not a read of nothing.
    let file = write(dir.path(), "sample.ldif", SAMPLE);
    let mut s = settings(file.clone());
    s.base_dn = "ou=Peple,dc=example,dc=com".into();
    let err = read(s).await.unwrap_err();
    assert_eq!(err.code(), "DI017-ldif", "{err}");
    assert!(err.to_string().contains("`base_dn`"), "{err}");
    // Bytes that are not UTF-8 where the filter looks fail the read; elsewhere they are left alone.
    let with_sample =
        |name: &str, extra: &[u8]| write(dir.path(), name, [SAMPLE.as_bytes(), extra].concat());
    let latin1 = with_sample(
        "latin1.ldif",
        b"\ndn: uid=l,ou=People,dc=example,dc=com\nobjectClass: inetOrgPers\xf6n\nuid: l\n",
    );
    let err = read(settings(latin1)).await.unwrap_err();
    assert!(
        err.to_string().contains("'objectClass'") && err.to_string().contains("UTF-8"),
        "{err}"
    );
    let photo = with_sample(
        "photo.ldif",
        b"\ndn: uid=p,ou=People,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: p\ndescription: caf\xe9\n",
    );
    let read = read(settings(photo)).await.unwrap();
    assert!(read.entries.iter().any(|e| e.name.as_deref() == Some("p")));

    // Extensible matches need a server: refused with the settings, not in the middle of a read.
    let mut s = settings(dir.path().join("x.ldif"));
    s.mapping.filter = "(cn:caseExactMatch:=x)".into();
    let err = connector(&DirectorySettings::Ldif(s)).unwrap_err();
    assert!(
        matches!(err, DirectoryError::InvalidSettings { key: "filter", .. }),
        "{err:?}"
    );
}
