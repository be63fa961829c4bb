//! Incremental reads (RFC 4533 refreshOnly, issue 26 item 3) against a real slapd with the syncprov
//! overlay, in both of its ways to answer a refresh: the present phase (no session log: every entry
//! still in scope is named, the client infers deletions) and the delete phase (a session log: the
//! deletions are sent as such). Either way the same departures must come out.

use std::collections::BTreeSet;

use roster_directory::{ChangeRead, Changes, NoProgress};
use roster_testkit::{Slapd, SlapdConfig, SyncProv};

use crate::common::{connect, person, settings};

fn uid_of(read: &roster_directory::DirectoryRead, uid: &str) -> String {
    read.entries
        .iter()
        .find(|e| e.name.as_deref() == Some(uid))
        .unwrap_or_else(|| panic!("no {uid}"))
        .id
        .clone()
}

/// The ids that left since the cookie: named as deleted, or (present phase) in `before` and neither
/// present nor changed.
fn departed(before: &BTreeSet<String>, changes: &ChangeRead) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = changes.deleted.iter().cloned().collect();
    if let Some(present) = &changes.present {
        let still: BTreeSet<&String> = present
            .iter()
            .chain(changes.changed.iter().map(|e| &e.id))
            .collect();
        out.extend(before.iter().filter(|id| !still.contains(id)).cloned());
    }
    out
}

async fn changes_are_read(sessionlog: Option<u32>) {
    let slapd = Slapd::start(SlapdConfig {
        syncprov: Some(SyncProv { sessionlog }),
        ..Default::default()
    })
    .unwrap();
    let people = slapd.people_dn();
    let mut ldif = String::new();
    for uid in ["a", "b", "c", "e", "f"] {
        ldif.push_str(&person(
            &format!("uid={uid},{people}"),
            Some(uid),
            &format!("User {uid}"),
            &[("mail", &format!("{uid}@example.com"))],
        ));
    }
    // Outside the filter at first.
    ldif.push_str(&person(
        &format!("uid=g,{people}"),
        Some("g"),
        "User g",
        &[("description", "hidden")],
    ));
    slapd.add(&ldif).unwrap();
    let mut s = settings(&slapd);
    s.mapping.filter = "(&(objectClass=inetOrgPerson)(!(description=hidden)))".into();
    let dir = connect(s);

    // The cookie of now, then the full read (in that order: a change in between is read again, never
    // missed).
    let Changes::Read(initial) = dir.reader.read_changes(None).await.unwrap() else {
        panic!("slapd with syncprov offers content synchronization");
    };
    assert!(initial.changed.is_empty() && initial.deleted.is_empty());
    assert!(!initial.cookie.is_empty());
    let full = dir.reader.read_entries(&NoProgress).await.unwrap();
    let before: BTreeSet<String> = full.entries.iter().map(|e| e.id.clone()).collect();
    assert_eq!(before.len(), 5);

    // Add d; change b's address; rename c; delete a; e leaves the filter; g enters it; f unchanged.
    slapd
        .add(&person(
            &format!("uid=d,{people}"),
            Some("d"),
            "User d",
            &[("mail", "d@example.com")],
        ))
        .unwrap();
    slapd
        .modify(&format!(
            "dn: uid=b,{people}\nchangetype: modify\nreplace: mail\nmail: bee@example.com\n"
        ))
        .unwrap();
    slapd
        .modify(&format!(
            "dn: uid=c,{people}\nchangetype: modrdn\nnewrdn: uid=c2\ndeleteoldrdn: 1\n"
        ))
        .unwrap();
    slapd
        .modify(&format!("dn: uid=a,{people}\nchangetype: delete\n"))
        .unwrap();
    slapd
        .modify(&format!(
            "dn: uid=e,{people}\nchangetype: modify\nadd: description\ndescription: hidden\n"
        ))
        .unwrap();
    slapd
        .modify(&format!(
            "dn: uid=g,{people}\nchangetype: modify\ndelete: description\n"
        ))
        .unwrap();

    let Changes::Read(changes) = dir
        .reader
        .read_changes(Some(&initial.cookie))
        .await
        .unwrap()
    else {
        panic!("a fresh cookie is answered");
    };
    let changed: BTreeSet<String> = changes
        .changed
        .iter()
        .filter_map(|e| e.name.clone())
        .collect();
    assert_eq!(
        changed,
        ["b", "c2", "d", "g"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        "{changes:#?}"
    );
    let bee = changes
        .changed
        .iter()
        .find(|e| e.name.as_deref() == Some("b"))
        .unwrap();
    assert_eq!(
        bee.emails.as_deref(),
        Some(&["bee@example.com".to_owned()][..])
    );
    let c2 = changes
        .changed
        .iter()
        .find(|e| e.name.as_deref() == Some("c2"))
        .unwrap();
    assert_eq!(c2.id, uid_of(&full, "c"), "a rename keeps the entryUUID");
    let gone = departed(&before, &changes);
    assert_eq!(
        gone,
        [uid_of(&full, "a"), uid_of(&full, "e")]
            .into_iter()
            .collect(),
        "{changes:#?}"
    );
    assert_ne!(changes.cookie, initial.cookie);

    // Nothing since: nothing changed, nobody left.
    let Changes::Read(again) = dir
        .reader
        .read_changes(Some(&changes.cookie))
        .await
        .unwrap()
    else {
        panic!();
    };
    assert!(again.changed.is_empty(), "{again:#?}");
    let now: BTreeSet<String> = before
        .iter()
        .filter(|id| !gone.contains(*id))
        .cloned()
        .chain(changes.changed.iter().map(|e| e.id.clone()))
        .collect();
    assert!(departed(&now, &again).is_empty(), "{again:#?}");
    eprintln!(
        "sessionlog {sessionlog:?}: {} phase",
        if changes.present.is_some() {
            "present"
        } else {
            "delete"
        }
    );
}

#[tokio::test]
async fn changes_since_a_cookie_in_the_present_phase() {
    changes_are_read(None).await;
}

#[tokio::test]
async fn changes_since_a_cookie_in_the_delete_phase() {
    changes_are_read(Some(100)).await;
}

#[tokio::test]
async fn a_server_without_syncprov_says_unsupported_and_a_bad_cookie_is_not_trusted() {
    let slapd = Slapd::start(SlapdConfig::default()).unwrap();
    let dir = connect(settings(&slapd));
    let answer = dir.reader.read_changes(None).await.unwrap();
    assert!(
        matches!(&answer, Changes::Unsupported(why) if why.contains("content synchronization")),
        "{answer:?}"
    );

    let slapd = Slapd::start(SlapdConfig {
        syncprov: Some(SyncProv::default()),
        ..Default::default()
    })
    .unwrap();
    let dir = connect(settings(&slapd));
    let answer = dir
        .reader
        .read_changes(Some(
            b"rid=000,csn=19700101000000.000000Z#000000#000#000000",
        ))
        .await;
    eprintln!("an ancient cookie: {answer:?}");
    assert!(
        matches!(
            answer,
            Ok(Changes::RefreshRequired(_)) | Ok(Changes::Read(_)) | Err(_)
        ),
        "{answer:?}"
    );
}
