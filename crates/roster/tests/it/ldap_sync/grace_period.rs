//! Issue 20, the grace period before a departed user is deleted, against a real slapd on both backends:
//! suspended on the first sync that doesn't see them (can't log on, though the directory would accept the
//! password), left alone during the period, reactivated as the same user when the entry comes back, and
//! deleted by a sync after the period (a folder with mail kept).

use super::*;

const DAY: i64 = 86_400;

fn without_bob(s: &LdapSettings) -> LdapSettings {
    let mut s = s.clone();
    s.mapping.filter = "(&(objectClass=inetOrgPerson)(!(uid=bob)))".into();
    s
}

async fn departed_users_are_suspended_reactivated_and_deleted_after_the_period(env: Env) {
    let slapd = start(
        &[
            ldap_user("alice", "Alice Liddell", &["alice@example.com"], "alice-pw"),
            ldap_user("bob", "Bob Brown", &["bob@example.com"], "bob-pw"),
            ldap_user("carol", "Carol King", &["carol@example.com"], "carol-pw"),
        ]
        .concat(),
    );
    let mut s = settings(&slapd);
    s.delete_users = true;
    s.guard = crate::support::unguarded();
    s.guard.delete_after = "14d".into();
    configure(&env, s.clone()).await;
    assert_eq!(sync(&env).await.counts, counts(|c| c.created = 3));
    env.roster
        .set_message_count(&env.local_admin(), "bob", 5)
        .await
        .unwrap();
    let bob = stored(&env, "bob").await;
    assert!(env.roster.verify_logon("bob", "bob-pw").await.is_ok());

    // bob is left out of the filter (his entry, and his password, stay in the directory): suspended.
    configure(&env, without_bob(&s)).await;
    let p = preview(&env).await;
    assert_eq!(p.counts.suspended, 1);
    let report = sync(&env).await;
    assert_eq!(
        report.counts,
        counts(|c| {
            c.suspended = 1;
            c.unchanged = 2;
        })
    );
    assert_eq!(report.lines.len(), 1, "{:#?}", report.lines);
    assert_eq!(report.lines[0].user, "bob");
    assert_eq!(report.lines[0].action, ReportAction::Suspended);
    let suspended_at = env.roster.now();
    assert!(
        report.lines[0]
            .reason
            .contains(&suspended_at.plus_seconds(14 * DAY).to_rfc3339()),
        "{:?}",
        report.lines[0]
    );
    let suspended = stored(&env, "bob").await;
    assert_eq!(suspended.departed_at, Some(suspended_at));
    assert_eq!(suspended.id, bob.id);
    assert_eq!(suspended.privileges, bob.privileges, "privileges kept");
    assert_eq!(suspended.folders, bob.folders, "folder kept");
    assert_eq!(suspended.directory, bob.directory, "link kept");
    // The directory would accept the password; Roster refuses, without asking it.
    let e = logon_error(&env, "bob", "bob-pw").await;
    assert_eq!(e.code(), "AP001-logon-failed", "{e}");
    assert!(env.roster.verify_logon("alice", "alice-pw").await.is_ok());

    // Ten days on: still suspended, nothing to do.
    env.clock.advance_seconds(10 * DAY);
    let before = state(&env).await;
    let report = sync(&env).await;
    assert_eq!(report.counts, counts(|c| c.unchanged = 2));
    assert_eq!(state(&env).await, before);

    // bob is back: reactivated, the same user with the same privileges and folder.
    configure(&env, s.clone()).await;
    let report = sync(&env).await;
    assert_eq!(
        report.counts,
        counts(|c| {
            c.reactivated = 1;
            c.unchanged = 2;
        })
    );
    assert_eq!(report.lines[0].action, ReportAction::Reactivated);
    let back = stored(&env, "bob").await;
    assert_eq!(back.departed_at, None);
    assert_eq!(
        (back.id, &back.privileges, &back.folders),
        (bob.id, &bob.privileges, &bob.folders)
    );
    assert!(env.roster.verify_logon("bob", "bob-pw").await.is_ok());

    // Gone again, and not back within 14 days: deleted; his folder holds mail and stays.
    configure(&env, without_bob(&s)).await;
    assert_eq!(sync(&env).await.counts.suspended, 1);
    env.clock.advance_seconds(14 * DAY - 1);
    assert!(sync(&env).await.lines.is_empty(), "not yet");
    env.clock.advance_seconds(1);
    let report = sync(&env).await;
    assert_eq!(
        report.counts,
        counts(|c| {
            c.deleted = 1;
            c.folders_kept = 1;
            c.unchanged = 2;
        })
    );
    assert_eq!(names(&users(&env).await), ["admin", "alice", "carol"]);
    let folders = env.store.list_folders().await.unwrap();
    assert!(
        folders
            .iter()
            .any(|f| f.name == "bob" && f.owner.is_none() && f.message_count == 5),
        "{folders:#?}"
    );
    env.check().await;
}
on_both_backends!(departed_users_are_suspended_reactivated_and_deleted_after_the_period);

/// A mistaken filter that drops most users suspends them: the deletion guard counts suspensions too, so
/// nobody is locked out without an approval.
async fn the_deletion_guard_counts_suspensions(env: Env) {
    let slapd = start(&many_users(10));
    let mut s = settings(&slapd);
    s.delete_users = true;
    s.guard.delete_after = "14d".into();
    configure(&env, s.clone()).await;
    sync(&env).await;
    s.mapping.filter = "(&(objectClass=inetOrgPerson)(uid=u1))".into();
    configure(&env, s).await;
    let before = state(&env).await;
    let (_, code, message) = failed(run(&env, RunKind::Sync).await);
    assert_eq!(code, "AP018-deletion-guard");
    assert!(
        message.contains(
            "would delete 9 users (9 of them suspended for the grace period rather than deleted at once)"
        ),
        "{message}"
    );
    assert_eq!(state(&env).await, before);
    env.check().await;
}
on_both_backends!(the_deletion_guard_counts_suspensions);
