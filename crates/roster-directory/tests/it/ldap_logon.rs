//! Logons: search-then-bind, by stored DN and by name, and never by injection.

use roster_core::directory::Secret;
use roster_directory::{LogonOutcome, LogonSubject, RejectReason};
use roster_testkit::{Slapd, SlapdConfig, TestUser, user_dn, user_ldif};

use crate::common::{connect, entry, person, settings};

fn linked<'a>(name: &'a str, dn: &'a str, id: &'a str) -> LogonSubject<'a> {
    LogonSubject {
        name,
        dn: Some(dn),
        id: Some(id),
    }
}

fn by_name(name: &str) -> LogonSubject<'_> {
    LogonSubject {
        name,
        dn: None,
        id: None,
    }
}

#[tokio::test]
async fn logons() {
    let mut slapd = Slapd::start(SlapdConfig::default()).unwrap();
    let suffix = slapd.suffix().to_owned();
    let people = slapd.people_dn();
    let user = |uid: &'static str, password: &'static str, ou: &'static str| TestUser {
        uid,
        cn: uid,
        password: Some(password),
        ou,
        ..Default::default()
    };
    let alice = user("alice", "alice-pw", "People");
    let outsider = user("outsider", "outsider-pw", "Groups");
    let disabled = user("disabled", "disabled-pw", "People");
    let mut ldif = String::new();
    for u in [&alice, &outsider, &disabled] {
        ldif.push_str(&user_ldif(&suffix, u));
    }
    ldif.push_str(&person(
        &format!("uid=zoë,{people}"),
        Some("zoë"),
        "Zoë Ångström",
        &[("userPassword", "zoë-pw")],
    ));
    ldif.push_str(&person(
        &format!("cn=Smith\\, John,{people}"),
        Some("jsmith"),
        "Smith, John",
        &[("userPassword", "smith-pw")],
    ));
    // Two entries with the same user name.
    ldif.push_str(&person(
        &format!("uid=dup,{people}"),
        Some("dup"),
        "Dup One",
        &[("userPassword", "dup-pw")],
    ));
    ldif.push_str(&person(
        &format!("cn=Dup Two,{people}"),
        Some("dup"),
        "Dup Two",
        &[("userPassword", "dup-pw")],
    ));
    slapd.add(&ldif).unwrap();
    slapd
        .modify(&format!(
            "dn: {}\nchangetype: modify\nadd: employeeType\nemployeeType: disabled\n",
            user_dn(&suffix, &disabled)
        ))
        .unwrap();

    let mut s = settings(&slapd);
    s.mapping.filter = "(&(objectClass=inetOrgPerson)(!(employeeType=disabled)))".into();
    let dir = connect(s);
    let alice_dn = user_dn(&suffix, &alice);
    let pw = |p: &str| Secret::new(p);

    // Right password, by name and by stored DN.
    assert_eq!(
        dir.password_checker()
            .unwrap()
            .authenticate(&by_name("alice"), &pw("alice-pw"))
            .await
            .unwrap(),
        LogonOutcome::Accepted {
            dn: alice_dn.clone()
        }
    );
    let stored = LogonSubject {
        name: "alice",
        dn: Some(&alice_dn),
        id: None,
    };
    assert_eq!(
        dir.password_checker()
            .unwrap()
            .authenticate(&stored, &pw("alice-pw"))
            .await
            .unwrap(),
        LogonOutcome::Accepted {
            dn: alice_dn.clone()
        }
    );
    // A stale stored DN (the entry was renamed since) falls back to the name.
    let stale = format!("uid=old-alice,{people}");
    let stale = LogonSubject {
        name: "alice",
        dn: Some(&stale),
        id: None,
    };
    assert!(matches!(
        dir.password_checker()
            .unwrap()
            .authenticate(&stale, &pw("alice-pw"))
            .await
            .unwrap(),
        LogonOutcome::Accepted { .. }
    ));

    let rejected = |r| LogonOutcome::Rejected(r);
    assert_eq!(
        dir.password_checker()
            .unwrap()
            .authenticate(&by_name("alice"), &pw("wrong"))
            .await
            .unwrap(),
        rejected(RejectReason::WrongPassword)
    );
    assert_eq!(
        dir.password_checker()
            .unwrap()
            .authenticate(&stored, &pw(""))
            .await
            .unwrap(),
        rejected(RejectReason::EmptyPassword)
    );
    assert_eq!(
        dir.password_checker()
            .unwrap()
            .authenticate(&by_name("nobody"), &pw("x"))
            .await
            .unwrap(),
        rejected(RejectReason::NotFound)
    );
    assert_eq!(
        dir.password_checker()
            .unwrap()
            .authenticate(&by_name("dup"), &pw("dup-pw"))
            .await
            .unwrap(),
        rejected(RejectReason::Ambiguous)
    );

    // Unicode names and DNs with escaped characters.
    assert!(matches!(
        dir.password_checker()
            .unwrap()
            .authenticate(&by_name("zoë"), &pw("zoë-pw"))
            .await
            .unwrap(),
        LogonOutcome::Accepted { .. }
    ));
    match dir
        .password_checker()
        .unwrap()
        .authenticate(&by_name("jsmith"), &pw("smith-pw"))
        .await
        .unwrap()
    {
        LogonOutcome::Accepted { dn } => assert!(dn.to_lowercase().starts_with("cn=smith"), "{dn}"),
        other => panic!("{other:?}"),
    }

    // Filter injection: with alice's password, none of these may log on as anyone.
    for name in [
        "*",
        "*)(uid=*",
        "admin)(|(uid=*",
        "alice)(uid=*",
        "alice*",
        "al*ce",
        "(uid=alice)",
        "alice\\",
        "",
    ] {
        let outcome = dir
            .password_checker()
            .unwrap()
            .authenticate(&by_name(name), &pw("alice-pw"))
            .await
            .unwrap();
        assert!(
            !matches!(outcome, LogonOutcome::Accepted { .. }),
            "{name:?} was accepted: {outcome:?}"
        );
    }

    // Outside base_dn or the filter: rejected by name and by stored DN, even with the right password.
    let outsider_dn = user_dn(&suffix, &outsider);
    let disabled_dn = user_dn(&suffix, &disabled);
    for (name, dn, password) in [
        ("outsider", &outsider_dn, "outsider-pw"),
        ("disabled", &disabled_dn, "disabled-pw"),
    ] {
        assert_eq!(
            dir.password_checker()
                .unwrap()
                .authenticate(&by_name(name), &pw(password))
                .await
                .unwrap(),
            rejected(RejectReason::NotFound),
            "{name}"
        );
        let subject = LogonSubject {
            name,
            dn: Some(dn),
            id: None,
        };
        assert_eq!(
            dir.password_checker()
                .unwrap()
                .authenticate(&subject, &pw(password))
                .await
                .unwrap(),
            rejected(RejectReason::NotFound),
            "{name}"
        );
    }
    // A stored DN pointing at another in-scope user only finds that user: the password decides.
    let wrong_user = LogonSubject {
        name: "zoë",
        dn: Some(&alice_dn),
        id: None,
    };
    assert_eq!(
        dir.password_checker()
            .unwrap()
            .authenticate(&wrong_user, &pw("zoë-pw"))
            .await
            .unwrap(),
        rejected(RejectReason::WrongPassword)
    );

    // After a server restart the cached service connection is dead: the logon reconnects once.
    slapd.restart().unwrap();
    assert!(matches!(
        dir.password_checker()
            .unwrap()
            .authenticate(&by_name("alice"), &pw("alice-pw"))
            .await
            .unwrap(),
        LogonOutcome::Accepted { .. }
    ));
    // And the service connection is still the service account: reads still see everything.
    let read = dir
        .reader
        .read_entries(&roster_directory::NoProgress)
        .await
        .unwrap();
    assert_eq!(read.entries.len(), 5, "{:#?}", read.entries);
}

/// A logon as the user a sync linked, by the stored entry id: a user moved or renamed in scope is
/// still found, and another person with the same user name never logs on in their place.
#[tokio::test]
async fn linked_logons_accept_only_the_linked_entry() {
    let slapd = Slapd::start(SlapdConfig::default()).unwrap();
    let people = slapd.people_dn();
    let sales = format!("ou=Sales,{people}");
    let contractors = format!("ou=Contractors,{people}");
    let support = format!("ou=Support,{people}");
    let mut ldif = String::new();
    for ou in [&sales, &contractors, &support] {
        let name = ou.split([',', '=']).nth(1).unwrap();
        ldif.push_str(&entry(
            ou,
            &[("objectClass", "organizationalUnit"), ("ou", name)],
        ));
    }
    let jdoe_dn = format!("uid=jdoe,{sales}");
    let mover_dn = format!("uid=mover,{sales}");
    let carol_dn = format!("uid=carol,{people}");
    let reused_dn = format!("uid=reused,{people}");
    let dup_one_dn = format!("uid=dup,{sales}");
    let dup_two_dn = format!("uid=dup,{support}");
    for (dn, uid, password) in [
        (&jdoe_dn, "jdoe", "jdoe-pw"),
        (&mover_dn, "mover", "mover-pw"),
        (&carol_dn, "carol", "carol-pw"),
        (&reused_dn, "reused", "reused-pw"),
        (&dup_one_dn, "dup", "dup-one-pw"),
        (&dup_two_dn, "dup", "dup-two-pw"),
    ] {
        ldif.push_str(&person(dn, Some(uid), uid, &[("userPassword", password)]));
    }
    slapd.add(&ldif).unwrap();

    let mut s = settings(&slapd);
    s.mapping.filter = "(&(objectClass=inetOrgPerson)(!(employeeType=disabled)))".into();
    let dir = connect(s);
    let pw = |p: &str| Secret::new(p);
    // What a sync stores: each entry's id and DN.
    let read = dir
        .reader
        .read_entries(&roster_directory::NoProgress)
        .await
        .unwrap();
    let id_of = |dn: &str| {
        let entry = read.entries.iter().find(|e| e.dn == dn).unwrap();
        assert!(!entry.id.starts_with("dn:"), "slapd gives entryUUIDs");
        entry.id.clone()
    };
    let (jdoe_id, mover_id, carol_id, reused_id, dup_one_id) = (
        id_of(&jdoe_dn),
        id_of(&mover_dn),
        id_of(&carol_dn),
        id_of(&reused_dn),
        id_of(&dup_one_dn),
    );
    let accepted = |dn: &str| LogonOutcome::Accepted { dn: dn.to_owned() };
    let rejected = LogonOutcome::Rejected;

    // While everything is in place, the linked logon works.
    let jdoe = linked("jdoe", &jdoe_dn, &jdoe_id);
    assert_eq!(
        dir.password_checker()
            .unwrap()
            .authenticate(&jdoe, &pw("jdoe-pw"))
            .await
            .unwrap(),
        accepted(&jdoe_dn)
    );

    // jdoe's entry leaves the filter, and another person with the user name jdoe appears in scope.
    slapd
        .modify(&format!(
            "dn: {jdoe_dn}\nchangetype: modify\nadd: employeeType\nemployeeType: disabled\n"
        ))
        .unwrap();
    let contractor_dn = format!("uid=jdoe,{contractors}");
    slapd
        .add(&person(
            &contractor_dn,
            Some("jdoe"),
            "Other Jdoe",
            &[("userPassword", "contractor-pw")],
        ))
        .unwrap();
    // The other person can't log on as Roster's jdoe, and neither can jdoe (out of scope).
    assert_eq!(
        dir.password_checker()
            .unwrap()
            .authenticate(&jdoe, &pw("contractor-pw"))
            .await
            .unwrap(),
        rejected(RejectReason::NotFound)
    );
    assert_eq!(
        dir.password_checker()
            .unwrap()
            .authenticate(&jdoe, &pw("jdoe-pw"))
            .await
            .unwrap(),
        rejected(RejectReason::NotFound)
    );
    // Linked without a stored DN: the same.
    let jdoe_no_dn = LogonSubject {
        name: "jdoe",
        dn: None,
        id: Some(&jdoe_id),
    };
    assert_eq!(
        dir.password_checker()
            .unwrap()
            .authenticate(&jdoe_no_dn, &pw("contractor-pw"))
            .await
            .unwrap(),
        rejected(RejectReason::NotFound)
    );
    // An unlinked user named jdoe (created in Roster, switched to directory authentication) is whoever
    // is the one jdoe in scope: that is what linking is for.
    assert_eq!(
        dir.password_checker()
            .unwrap()
            .authenticate(&by_name("jdoe"), &pw("contractor-pw"))
            .await
            .unwrap(),
        accepted(&contractor_dn)
    );

    // The entry at the stored DN is gone, and a new person was created at the very same DN: the DN
    // matches, the id doesn't.
    slapd
        .modify(&format!("dn: {reused_dn}\nchangetype: delete\n"))
        .unwrap();
    slapd
        .add(&person(
            &reused_dn,
            Some("reused"),
            "Someone Else",
            &[("userPassword", "new-pw")],
        ))
        .unwrap();
    assert_eq!(
        dir.password_checker()
            .unwrap()
            .authenticate(&linked("reused", &reused_dn, &reused_id), &pw("new-pw"))
            .await
            .unwrap(),
        rejected(RejectReason::NotFound)
    );

    // Moved to another OU inside base_dn: the stored DN is stale, the name search finds the entry, and
    // its id is the linked one.
    let moved_dn = format!("uid=mover,{support}");
    slapd
        .modify(&format!(
            "dn: {mover_dn}\nchangetype: moddn\nnewrdn: uid=mover\ndeleteoldrdn: 1\nnewsuperior: {support}\n"
        ))
        .unwrap();
    let mover = linked("mover", &mover_dn, &mover_id);
    assert_eq!(
        dir.password_checker()
            .unwrap()
            .authenticate(&mover, &pw("mover-pw"))
            .await
            .unwrap(),
        accepted(&moved_dn)
    );
    assert_eq!(
        dir.password_checker()
            .unwrap()
            .authenticate(&mover, &pw("wrong"))
            .await
            .unwrap(),
        rejected(RejectReason::WrongPassword)
    );

    // A stale stored DN while the entry itself is still there: a DN that no longer exists, one outside
    // base_dn, and one that now belongs to another user in scope.
    let groups_dn = format!("uid=carol,{}", slapd.groups_dn());
    for stale in [
        format!("uid=old-carol,{people}"),
        groups_dn,
        mover_dn.clone(),
    ] {
        let carol = linked("carol", &stale, &carol_id);
        assert_eq!(
            dir.password_checker()
                .unwrap()
                .authenticate(&carol, &pw("carol-pw"))
                .await
                .unwrap(),
            accepted(&carol_dn),
            "{stale}"
        );
    }
    // A stored DN that points at another in-scope user is not taken for the linked one, even with
    // that user's password.
    assert_eq!(
        dir.password_checker()
            .unwrap()
            .authenticate(&linked("carol", &moved_dn, &carol_id), &pw("mover-pw"))
            .await
            .unwrap(),
        rejected(RejectReason::WrongPassword)
    );

    // Two entries with the same user name in scope: linked, the id tells them apart; unlinked, it is
    // ambiguous.
    let dup_one = LogonSubject {
        name: "dup",
        dn: None,
        id: Some(&dup_one_id),
    };
    assert_eq!(
        dir.password_checker()
            .unwrap()
            .authenticate(&dup_one, &pw("dup-one-pw"))
            .await
            .unwrap(),
        accepted(&dup_one_dn)
    );
    assert_eq!(
        dir.password_checker()
            .unwrap()
            .authenticate(&dup_one, &pw("dup-two-pw"))
            .await
            .unwrap(),
        rejected(RejectReason::WrongPassword)
    );
    assert_eq!(
        dir.password_checker()
            .unwrap()
            .authenticate(&by_name("dup"), &pw("dup-one-pw"))
            .await
            .unwrap(),
        rejected(RejectReason::Ambiguous)
    );
}

/// Users' binds reuse a kept connection instead of opening one per logon (issue 27, Load), and each bind is
/// judged on its own: a connection last bound as alice lets nobody else in with a wrong password.
#[tokio::test]
async fn logons_in_a_row_bind_on_one_kept_connection() {
    let slapd = Slapd::start(SlapdConfig {
        debug_level: Some("stats".into()),
        ..Default::default()
    })
    .unwrap();
    let suffix = slapd.suffix().to_owned();
    let mut ldif = String::new();
    for (uid, password) in [("alice", "alice-pw"), ("bob", "bob-pw")] {
        ldif.push_str(&user_ldif(
            &suffix,
            &TestUser {
                uid,
                cn: uid,
                password: Some(password),
                ..Default::default()
            },
        ));
    }
    slapd.add(&ldif).unwrap();
    let dir = connect(settings(&slapd));
    let checker = dir.password_checker().unwrap();
    let logon = |name: &'static str, password: &'static str| async move {
        checker
            .authenticate(&by_name(name), &Secret::new(password))
            .await
            .unwrap()
    };
    assert!(matches!(
        logon("alice", "alice-pw").await,
        LogonOutcome::Accepted { .. }
    ));
    assert_eq!(
        logon("bob", "alice-pw").await,
        LogonOutcome::Rejected(RejectReason::WrongPassword)
    );
    assert_eq!(
        logon("alice", "bob-pw").await,
        LogonOutcome::Rejected(RejectReason::WrongPassword)
    );
    assert!(matches!(
        logon("bob", "bob-pw").await,
        LogonOutcome::Accepted { .. }
    ));
    // slapd's stats log: `conn=1002 op=1 BIND dn="uid=bob,..." method=128`. The users' four binds, one
    // connection.
    let log = std::fs::read_to_string(slapd.log_path()).unwrap();
    let user_bind_connections: std::collections::BTreeSet<&str> = log
        .lines()
        .filter(|l| l.contains(" BIND dn=\"uid="))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("conn=")))
        .collect();
    let binds = log
        .lines()
        .filter(|l| l.contains(" BIND dn=\"uid=") && l.contains(" method=128"))
        .count();
    assert_eq!(binds, 4, "{log}");
    assert_eq!(user_bind_connections.len(), 1, "{log}");
}
