//! Reading: mapping, Unicode, escaped DNs, several email attributes, paging past a size limit,
//! renames, and a server killed in the middle of a read.

use std::sync::Mutex;

use roster_core::directory::{DirectoryEntry, Secret};
use roster_directory::{DirectoryError, NoProgress, ReadProgress};
use roster_testkit::{Slapd, SlapdConfig};

use crate::common::{Recorder, connect, entry, many_users, person, settings};

fn by_name<'a>(entries: &'a [DirectoryEntry], name: &str) -> &'a DirectoryEntry {
    entries
        .iter()
        .find(|e| e.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no entry named {name} in {entries:#?}"))
}

#[tokio::test]
async fn maps_unicode_escaped_dns_several_email_attributes_and_missing_names() {
    let slapd = Slapd::start(SlapdConfig::default()).unwrap();
    let people = slapd.people_dn();
    let mut ldif = String::new();
    // extensibleObject allows otherMailbox (cosine) next to inetOrgPerson's mail.
    ldif.push_str(&person(
        &format!("uid=zoë,{people}"),
        Some("zoë"),
        "Zoë Ångström",
        &[
            ("objectClass", "extensibleObject"),
            ("mail", "zoe@example.com"),
            ("mail", "z.angstrom@example.com"),
            ("otherMailbox", "ZOE@example.com"),
            ("otherMailbox", "zoe@other.example"),
        ],
    ));
    ldif.push_str(&person(
        &format!("cn=Smith\\, John,{people}"),
        Some("jsmith"),
        "Smith, John",
        &[],
    ));
    // No uid: reported by the planner, but still read (its id keeps its user from being deleted).
    ldif.push_str(&person(&format!("cn=No Uid,{people}"), None, "No Uid", &[]));
    // Not an inetOrgPerson: outside the filter.
    ldif.push_str(&entry(
        &format!("cn=Printer,{people}"),
        &[("objectClass", "organizationalRole"), ("cn", "Printer")],
    ));
    slapd.add(&ldif).unwrap();

    let mut s = settings(&slapd);
    // Requested in another case than the server's canonical names: lookups must not care.
    s.mapping.username_attribute = "UID".into();
    s.mapping.full_name_attribute = Some("CN".into());
    s.mapping.email_attributes = Some("MAIL, otherMailbox".into());
    let dir = connect(s);
    assert_eq!(dir.kind.name(), "ldap");
    let read = dir.reader.read_entries(&NoProgress).await.unwrap();
    assert_eq!(read.entries.len(), 3, "{:#?}", read.entries);
    assert_eq!(read.without_stable_id, 0);
    assert_eq!(read.references_skipped, 0);
    assert!(read.pages >= 1);

    let zoe = by_name(&read.entries, "zoë");
    assert_eq!(zoe.full_name.as_deref(), Some("Zoë Ångström"));
    assert_eq!(
        zoe.emails.as_deref().unwrap(),
        [
            "zoe@example.com",
            "z.angstrom@example.com",
            "zoe@other.example"
        ]
    );
    assert_eq!(zoe.id.len(), 36, "entryUUID: {}", zoe.id);
    assert_eq!(zoe.id, zoe.id.to_lowercase());

    let smith = by_name(&read.entries, "jsmith");
    assert_eq!(smith.full_name.as_deref(), Some("Smith, John"));
    assert_eq!(smith.emails.as_deref().unwrap(), [] as [&str; 0]);
    let smith_dn = smith.dn.to_lowercase();
    assert!(
        smith_dn.starts_with("cn=smith\\, john,") || smith_dn.starts_with("cn=smith\\2c john,"),
        "{}",
        smith.dn
    );

    let nameless = read.entries.iter().find(|e| e.name.is_none()).unwrap();
    assert!(nameless.dn.starts_with("cn=No Uid,"), "{}", nameless.dn);
    assert_eq!(nameless.full_name.as_deref(), Some("No Uid"));

    let mut ids: Vec<&str> = read.entries.iter().map(|e| e.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3);

    // Without full-name and email attributes, the planner must leave them alone: None, not empty.
    let mut s = settings(&slapd);
    s.mapping.full_name_attribute = None;
    s.mapping.email_attributes = None;
    s.mapping.username_attribute = "employeeNumber".into();
    let read = connect(s).reader.read_entries(&NoProgress).await.unwrap();
    assert_eq!(read.entries.len(), 3);
    for e in &read.entries {
        assert_eq!(e.name, None);
        assert_eq!(e.full_name, None);
        assert_eq!(e.emails, None);
    }
}

#[tokio::test]
async fn rename_keeps_the_entry_uuid_and_the_connection_is_reused() {
    let slapd = Slapd::start(SlapdConfig::default()).unwrap();
    let people = slapd.people_dn();
    slapd
        .add(&person(
            &format!("uid=before,{people}"),
            Some("before"),
            "Re Name",
            &[],
        ))
        .unwrap();
    let dir = connect(settings(&slapd));
    let first = dir.reader.read_entries(&NoProgress).await.unwrap();
    slapd
        .modify(&format!(
            "dn: uid=before,{people}\nchangetype: modrdn\nnewrdn: uid=after\ndeleteoldrdn: 1\n"
        ))
        .unwrap();
    let second = dir.reader.read_entries(&NoProgress).await.unwrap();
    let (a, b) = (&first.entries[0], &second.entries[0]);
    assert_eq!(a.id, b.id);
    assert_eq!(a.name.as_deref(), Some("before"));
    assert_eq!(b.name.as_deref(), Some("after"));
    assert_eq!(b.dn, format!("uid=after,{people}"));
}

const PAGED_LIMITS: &str = "size.soft=50 size.hard=50 size.prtotal=unlimited";

#[tokio::test]
async fn paging_reads_everything_past_a_size_limit() {
    let slapd = Slapd::start(SlapdConfig {
        size_limit: Some(PAGED_LIMITS.into()),
        base_ldif: Some(many_users("dc=example,dc=com", 120)),
        ..Default::default()
    })
    .unwrap();
    // An ordinary account: the root DN ignores size limits, which would prove nothing.
    let mut s = settings(&slapd);
    s.bind_dn = format!("uid=u1,{}", slapd.people_dn());
    s.password = Some(Secret::new("pw"));
    s.page_size = Some(20);
    let progress = Recorder::default();
    let read = connect(s.clone())
        .reader
        .read_entries(&progress)
        .await
        .unwrap();
    assert_eq!(read.entries.len(), 120);
    assert!(read.pages >= 6, "pages: {}", read.pages);
    let calls = progress.0.lock().unwrap().clone();
    assert!(calls.len() as u64 >= read.pages, "{calls:?}");
    assert!(calls.windows(2).all(|w| w[0] <= w[1]), "{calls:?}");
    assert_eq!(calls.last(), Some(&120));
    let mut names: Vec<String> = read.entries.iter().filter_map(|e| e.name.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 120);

    // Without paging below the limit (one page of 1000 > 50 entries) the same limits still allow it,
    // because prtotal is unlimited; what matters is that a page size above the soft limit isn't
    // required to succeed. A single-entry page size works too (many round trips).
    s.page_size = Some(1);
    let read = connect(s).reader.read_entries(&NoProgress).await.unwrap();
    assert_eq!(read.entries.len(), 120);
    assert!(read.pages >= 120);
}

#[tokio::test]
async fn a_size_limit_fails_the_whole_read() {
    let slapd = Slapd::start(SlapdConfig {
        size_limit: Some("size.prtotal=50".into()),
        base_ldif: Some(many_users("dc=example,dc=com", 120)),
        ..Default::default()
    })
    .unwrap();
    let mut s = settings(&slapd);
    s.bind_dn = format!("uid=u1,{}", slapd.people_dn());
    s.password = Some(Secret::new("pw"));
    s.page_size = Some(20);
    let err = connect(s)
        .reader
        .read_entries(&NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DirectoryError::SizeLimit { entries: 50 }),
        "{err:?}"
    );
    assert_eq!(err.code(), "DI009-size-limit");
    let text = err.to_string();
    assert!(
        text.contains("after 50 entries") && text.contains("size.prtotal=unlimited"),
        "{text}"
    );
}

/// Kills slapd once a read has produced 1000 entries.
struct KillAt {
    slapd: Mutex<Option<Slapd>>,
    killed_at: Mutex<Option<u64>>,
}

impl ReadProgress for KillAt {
    fn entries_read(&self, total_so_far: u64) {
        if total_so_far >= 1000
            && let Some(mut slapd) = self.slapd.lock().unwrap().take()
        {
            slapd.kill();
            *self.killed_at.lock().unwrap() = Some(total_so_far);
            // Dropped here: the data directory goes too, as after a crash and a lost disk.
        }
    }
}

#[tokio::test]
async fn a_server_killed_mid_read_fails_the_read() {
    let slapd = Slapd::start(SlapdConfig {
        base_ldif: Some(many_users("dc=example,dc=com", 5000)),
        ..Default::default()
    })
    .unwrap();
    let mut s = settings(&slapd);
    s.page_size = Some(100);
    let dir = connect(s);
    let progress = KillAt {
        slapd: Mutex::new(Some(slapd)),
        killed_at: Mutex::new(None),
    };
    let result = dir.reader.read_entries(&progress).await;
    let killed_at = progress
        .killed_at
        .lock()
        .unwrap()
        .expect("slapd was killed");
    assert!(killed_at < 5000, "{killed_at}");
    let err = result.expect_err("a read cut short must never succeed");
    assert!(
        matches!(err, DirectoryError::Disconnected { .. }),
        "expected Disconnected, got {err:?}"
    );
    assert!(err.to_string().contains("the read was incomplete"), "{err}");
    // The next read reconnects and reports the server as unreachable.
    let again = dir.reader.read_entries(&NoProgress).await.unwrap_err();
    assert_eq!(again.code(), "DI004-connect", "{again}");
}

#[tokio::test]
async fn a_referral_fails_a_generic_ldap_read() {
    let slapd = Slapd::start(SlapdConfig::default()).unwrap();
    let people = slapd.people_dn();
    slapd
        .add(&person(
            &format!("uid=here,{people}"),
            Some("here"),
            "Here",
            &[],
        ))
        .unwrap();
    slapd
        .add(&entry(
            &format!("ou=Elsewhere,{people}"),
            &[
                ("objectClass", "referral"),
                ("objectClass", "extensibleObject"),
                ("ou", "Elsewhere"),
                (
                    "ref",
                    "ldap://other.example.com/ou=Elsewhere,dc=example,dc=com",
                ),
            ],
        ))
        .unwrap();
    let err = connect(settings(&slapd))
        .reader
        .read_entries(&NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::Referral { .. }), "{err:?}");
    assert!(err.to_string().contains("other.example.com"), "{err}");
}
