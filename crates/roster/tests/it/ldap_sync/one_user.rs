//! A sync of one user (`roster sync --user`, issue 26 item 5) against a real slapd: a new hire is
//! created without anyone else being read, a changed user is updated, a renamed one is found by its
//! link (entryUUID) under its new name, a user who left is deleted alone (the others' entries weren't
//! read, so they stay whatever the directory holds now), a preview commits nothing, and a name that is
//! nobody's is an error.

use super::*;

async fn sync_user(env: &Env, kind: RunKind, name: &str) -> Result<RunReport, AppError> {
    env.roster
        .run_directory_for_user(&env.local_admin(), kind, name, "test", &())
        .await
}

#[tokio::test]
async fn one_user_is_read_and_applied_and_nobody_else() {
    let env = Env::sqlite().await;
    let slapd = start(
        &[
            ldap_user("alice", "Alice Liddell", &["alice@example.com"], "alice-pw"),
            ldap_user("bob", "Bob Brown", &["bob@example.com"], "bob-pw"),
        ]
        .concat(),
    );
    let mut s = settings(&slapd);
    s.delete_users = true;
    s.guard = crate::support::unguarded();
    configure(&env, s).await;
    assert_eq!(sync(&env).await.counts, counts(|c| c.created = 2));

    // A new hire, carol; meanwhile alice left and bob changed, which a one-user run for carol ignores.
    slapd
        .add(&ldap_user(
            "carol",
            "Carol Danvers",
            &["carol@example.com"],
            "carol-pw",
        ))
        .unwrap();
    slapd
        .modify(&format!("dn: uid=alice,{PEOPLE}\nchangetype: delete\n"))
        .unwrap();
    slapd
        .modify(&format!(
            "dn: uid=bob,{PEOPLE}\nchangetype: modify\nreplace: mail\nmail: robert@example.com\n"
        ))
        .unwrap();

    let preview = sync_user(&env, RunKind::Preview, "carol").await.unwrap();
    assert_eq!(preview.counts, counts(|c| c.created = 1));
    assert_eq!(
        names(&users(&env).await),
        ["admin", "alice", "bob"],
        "a preview commits nothing"
    );

    let report = sync_user(&env, RunKind::Sync, "carol").await.unwrap();
    assert_eq!(
        report.counts,
        counts(|c| c.created = 1),
        "{:#?}",
        report.lines
    );
    assert!(
        report.lines[0].reason.contains("a run for this user only"),
        "{:#?}",
        report.lines
    );
    assert_eq!(
        names(&users(&env).await),
        ["admin", "alice", "bob", "carol"]
    );
    assert_eq!(
        emails(&stored(&env, "bob").await),
        ["bob@example.com"],
        "bob wasn't read"
    );
    // carol logs on at once.
    env.roster.verify_logon("carol", "carol-pw").await.unwrap();

    // bob alone: his new address.
    let report = sync_user(&env, RunKind::Sync, "bob").await.unwrap();
    assert_eq!(
        report.counts,
        counts(|c| c.updated = 1),
        "{:#?}",
        report.lines
    );
    assert_eq!(emails(&stored(&env, "bob").await), ["robert@example.com"]);
    assert!(
        names(&users(&env).await).contains(&"alice"),
        "alice wasn't read"
    );

    // alice alone: she left (delete_users), and only she goes.
    let report = sync_user(&env, RunKind::Sync, "alice").await.unwrap();
    assert_eq!(
        report.counts,
        counts(|c| c.deleted = 1),
        "{:#?}",
        report.lines
    );
    assert_eq!(names(&users(&env).await), ["admin", "bob", "carol"]);

    // Renamed in the directory: found by the link under the old name, renamed here.
    let uuid = entry_uuid(&slapd, "(uid=carol)");
    slapd
        .modify(&format!(
            "dn: uid=carol,{PEOPLE}\nchangetype: modrdn\nnewrdn: uid=carola\ndeleteoldrdn: 1\n"
        ))
        .unwrap();
    let report = sync_user(&env, RunKind::Sync, "carol").await.unwrap();
    assert_eq!(
        report.counts,
        counts(|c| c.renamed = 1),
        "{:#?}",
        report.lines
    );
    let carola = stored(&env, "carola").await;
    assert_eq!(carola.directory_id.as_deref(), Some(uuid.as_str()));

    // Nobody's name: an error, no run applied.
    let e = sync_user(&env, RunKind::Sync, "nobody").await.unwrap_err();
    assert_eq!(e.code(), "AP006-not-found", "{e}");
    env.check().await;
}
