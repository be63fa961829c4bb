//! Logons: search-then-bind, by stored DN and by name, and never by injection.

use roster_core::directory::Secret;
use roster_directory::{LogonOutcome, LogonSubject, RejectReason};
use roster_testkit::{Slapd, SlapdConfig, TestUser, user_dn, user_ldif};

use crate::common::{connect, person, settings};

fn by_name(name: &str) -> LogonSubject<'_> {
    LogonSubject { name, dn: None }
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
    s.filter = "(&(objectClass=inetOrgPerson)(!(employeeType=disabled)))".into();
    let dir = connect(s);
    let alice_dn = user_dn(&suffix, &alice);
    let pw = |p: &str| Secret::new(p);

    // Right password, by name and by stored DN.
    assert_eq!(
        dir.authenticate(&by_name("alice"), &pw("alice-pw"))
            .await
            .unwrap(),
        LogonOutcome::Accepted {
            dn: alice_dn.clone()
        }
    );
    let stored = LogonSubject {
        name: "alice",
        dn: Some(&alice_dn),
    };
    assert_eq!(
        dir.authenticate(&stored, &pw("alice-pw")).await.unwrap(),
        LogonOutcome::Accepted {
            dn: alice_dn.clone()
        }
    );
    // A stale stored DN (the entry was renamed since) falls back to the name.
    let stale = format!("uid=old-alice,{people}");
    let stale = LogonSubject {
        name: "alice",
        dn: Some(&stale),
    };
    assert!(matches!(
        dir.authenticate(&stale, &pw("alice-pw")).await.unwrap(),
        LogonOutcome::Accepted { .. }
    ));

    let rejected = |r| LogonOutcome::Rejected(r);
    assert_eq!(
        dir.authenticate(&by_name("alice"), &pw("wrong"))
            .await
            .unwrap(),
        rejected(RejectReason::WrongPassword)
    );
    assert_eq!(
        dir.authenticate(&stored, &pw("")).await.unwrap(),
        rejected(RejectReason::EmptyPassword)
    );
    assert_eq!(
        dir.authenticate(&by_name("nobody"), &pw("x"))
            .await
            .unwrap(),
        rejected(RejectReason::NotFound)
    );
    assert_eq!(
        dir.authenticate(&by_name("dup"), &pw("dup-pw"))
            .await
            .unwrap(),
        rejected(RejectReason::Ambiguous)
    );

    // Unicode names and DNs with escaped characters.
    assert!(matches!(
        dir.authenticate(&by_name("zoë"), &pw("zoë-pw"))
            .await
            .unwrap(),
        LogonOutcome::Accepted { .. }
    ));
    match dir
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
            dir.authenticate(&by_name(name), &pw(password))
                .await
                .unwrap(),
            rejected(RejectReason::NotFound),
            "{name}"
        );
        let subject = LogonSubject { name, dn: Some(dn) };
        assert_eq!(
            dir.authenticate(&subject, &pw(password)).await.unwrap(),
            rejected(RejectReason::NotFound),
            "{name}"
        );
    }
    // A stored DN pointing at another in-scope user only finds that user: the password decides.
    let wrong_user = LogonSubject {
        name: "zoë",
        dn: Some(&alice_dn),
    };
    assert_eq!(
        dir.authenticate(&wrong_user, &pw("zoë-pw")).await.unwrap(),
        rejected(RejectReason::WrongPassword)
    );

    // After a server restart the cached service connection is dead: the logon reconnects once.
    slapd.restart().unwrap();
    assert!(matches!(
        dir.authenticate(&by_name("alice"), &pw("alice-pw"))
            .await
            .unwrap(),
        LogonOutcome::Accepted { .. }
    ));
    // And the service connection is still the service account: reads still see everything.
    let read = dir
        .read_entries(&roster_directory::NoProgress)
        .await
        .unwrap();
    assert_eq!(read.entries.len(), 5, "{:#?}", read.entries);
}
