//! Issue 20, the deletion guard, against a real slapd on both backends: an empty read deletes nobody; a
//! plan over a limit applies nothing until approved; an approval applies only the deletions it approved.
//! Each failure case checks that the user database is exactly as it was.

use super::*;
use roster_core::directory::GuardLimit;

/// 30 users (u1..u30), synced with deletion on and the default guard (500, 10%).
async fn thirty_synced(env: &Env) -> (Slapd, LdapSettings) {
    let slapd = start(&many_users(30));
    let mut s = settings(&slapd);
    s.delete_users = true;
    configure(env, s.clone()).await;
    assert_eq!(sync(env).await.counts, counts(|c| c.created = 30));
    (slapd, s)
}

/// The filter that leaves out u21..u30 (a third of the users), and takes a new entry u2new.
fn two_thirds(s: &LdapSettings) -> LdapSettings {
    let mut s = s.clone();
    s.mapping.filter = "(&(objectClass=inetOrgPerson)(|(uid=u1*)(uid=u2)(uid=u2new)(uid=u3)(uid=u4)(uid=u5)(uid=u6)(uid=u7)(uid=u8)(uid=u9)(uid=u20)))".into();
    s
}

async fn audit_actions(env: &Env) -> Vec<(String, String, String)> {
    env.roster
        .audit_log(&env.local_admin(), 0, 1000)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| (e.action, e.target, e.details))
        .collect()
}

async fn an_empty_read_deletes_nobody_and_names_the_base_dn_and_filter(env: Env) {
    let (_slapd, mut s) = thirty_synced(&env).await;
    // Even with the guard off: an empty answer is never everybody leaving.
    s.guard = crate::support::unguarded();
    s.mapping.filter = "(&(objectClass=inetOrgPerson)(uid=nobody-has-this))".into();
    configure(&env, s).await;
    let before = state(&env).await;
    for kind in [RunKind::Preview, RunKind::Sync] {
        let (run_id, code, message) = failed(run(&env, kind).await);
        assert_eq!(code, "AP019-empty-read", "{message}");
        assert!(
            message.contains(&format!(
                "base DN {PEOPLE} and filter (&(objectClass=inetOrgPerson)(uid=nobody-has-this))"
            )) && message.contains("30 users are linked"),
            "{message}"
        );
        let run = env.store.get_run(run_id).await.unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(run.error_code.as_deref(), Some("AP019-empty-read"));
        assert_eq!(state(&env).await, before, "{kind:?}");
    }
    env.check().await;
}
on_both_backends!(an_empty_read_deletes_nobody_and_names_the_base_dn_and_filter);

async fn a_plan_over_the_limit_applies_nothing_until_approved(env: Env) {
    let (slapd, s) = thirty_synced(&env).await;
    slapd
        .add(&ldap_user(
            "u2new",
            "New User",
            &["u2new@example.com"],
            "pw",
        ))
        .unwrap();
    configure(&env, two_thirds(&s)).await;
    let before = state(&env).await;

    // Test Settings says that Synchronize now would stop.
    let p = preview(&env).await;
    assert_eq!(p.counts.deleted, 10);
    assert_eq!(p.counts.created, 1);
    let notice = p
        .deletion_guard
        .as_ref()
        .expect("the preview names the guard");
    assert_eq!(notice.deletions, 10);
    assert_eq!(
        notice.limit,
        GuardLimit::Percent {
            max: 10,
            linked: 30
        }
    );
    assert_eq!(p.lines[0].action, ReportAction::Warning);
    assert!(
        p.lines[0]
            .reason
            .starts_with("Synchronize now would stop here: this plan deletes 10 users, more than max_deletions_percent = 10% of the 30 users linked to this directory"),
        "{:?}",
        p.lines[0]
    );

    // Synchronize now stops: nothing applied, not even the new user.
    let result = run(&env, RunKind::Sync).await;
    let kind = match &result {
        Err(e) => e.kind(),
        Ok(r) => panic!("expected the guard to stop the sync: {r:?}"),
    };
    assert_eq!(kind, roster_app::ErrorKind::Guarded);
    let (stopped, code, message) = failed(result);
    assert_eq!(code, "AP018-deletion-guard");
    assert!(
        message.contains("would delete 10 users")
            && message.contains(&format!("roster sync --approve {stopped}")),
        "{message}"
    );
    assert_eq!(state(&env).await, before, "a stopped sync applies nothing");
    let (run, lines) = env
        .roster
        .get_run(&env.local_admin(), stopped, 0, 1000)
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Stopped);
    assert_eq!(run.approved_in_run, None);
    assert_eq!(run.counts.map(|c| (c.deleted, c.created)), Some((10, 1)));
    // The report is the full plan, with the guard's line on top.
    assert_eq!(lines.items[0].action, ReportAction::Warning);
    let deleted: Vec<&str> = lines
        .items
        .iter()
        .filter(|l| l.action == ReportAction::Deleted)
        .map(|l| l.user.as_str())
        .collect();
    assert_eq!(
        deleted,
        [
            "u21", "u22", "u23", "u24", "u25", "u26", "u27", "u28", "u29", "u30"
        ]
    );
    assert!(
        lines
            .items
            .iter()
            .any(|l| l.action == ReportAction::Created && l.user == "u2new")
    );

    // A run that wasn't stopped can't be approved.
    let first_sync = 1;
    let e = env
        .roster
        .approve_run(&env.local_admin(), first_sync, "test", &())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "ST016-not-approvable", "{e}");

    // The approval reads again and applies exactly that plan.
    let report = env
        .roster
        .approve_run(&env.local_admin(), stopped, "test", &())
        .await
        .unwrap_or_else(|e| panic!("approval failed: {e} ({})", e.code()));
    assert_eq!(
        report.counts,
        counts(|c| {
            c.deleted = 10;
            c.created = 1;
            c.unchanged = 20;
        })
    );
    let now_names = names(&users(&env).await)
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    assert_eq!(now_names.len(), 1 + 20 + 1, "{now_names:?}");
    assert!(now_names.contains(&"u2new".to_owned()) && !now_names.contains(&"u21".to_owned()));
    let run = env.store.get_run(stopped).await.unwrap().unwrap();
    assert_eq!(run.approved_in_run, Some(report.run_id));
    let approval = env.store.get_run(report.run_id).await.unwrap().unwrap();
    assert_eq!(approval.status, RunStatus::Succeeded);
    assert!(
        approval
            .triggered_by
            .contains(&format!("approving run #{stopped}")),
        "{}",
        approval.triggered_by
    );
    let audit = audit_actions(&env).await;
    assert!(
        audit.iter().any(
            |(action, target, details)| action == "directory.run.approve"
                && *target == format!("run #{stopped}")
                && details.contains(&format!("applied by run #{}", report.run_id))
        ),
        "{audit:#?}"
    );

    // Once only.
    let after = state(&env).await;
    let e = env
        .roster
        .approve_run(&env.local_admin(), stopped, "test", &())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "ST016-not-approvable", "{e}");
    assert_eq!(state(&env).await, after);
    env.check().await;
}
on_both_backends!(a_plan_over_the_limit_applies_nothing_until_approved);

async fn an_approval_after_the_directory_changed_again_is_refused(env: Env) {
    let (slapd, s) = thirty_synced(&env).await;
    // By count this time: at most 5 deletions, no limit by share.
    let mut s = two_thirds(&s);
    s.guard.max_deletions = 5;
    s.guard.max_deletions_percent = 100;
    configure(&env, s).await;
    let before = state(&env).await;
    let (stopped, code, message) = failed(run(&env, RunKind::Sync).await);
    assert_eq!(code, "AP018-deletion-guard");
    assert!(
        message.contains("would delete 10 users, more than max_deletions = 5"),
        "{message}"
    );
    assert_eq!(state(&env).await, before);

    // u5 leaves the directory too: the new plan deletes 11, not the 10 approved.
    slapd
        .modify(&format!("dn: uid=u5,{PEOPLE}\nchangetype: delete\n"))
        .unwrap();
    let (run_id, code, message) = failed(
        env.roster
            .approve_run(&env.local_admin(), stopped, "test", &())
            .await,
    );
    assert_eq!(code, "AP020-approval-mismatch", "{message}");
    assert!(
        message.contains(&format!("the directory changed since run #{stopped} was stopped: it would now also delete 1 user(s): u5; nothing was applied")),
        "{message}"
    );
    assert_eq!(
        state(&env).await,
        before,
        "a refused approval applies nothing"
    );
    let refused = env.store.get_run(run_id).await.unwrap().unwrap();
    assert_eq!(refused.status, RunStatus::Failed);
    assert_eq!(
        env.store
            .get_run(stopped)
            .await
            .unwrap()
            .unwrap()
            .approved_in_run,
        None
    );

    // u5 comes back (a new entry, matched by name): the plan deletes the stopped one's ten again, and
    // the approval goes through.
    slapd
        .add(&ldap_user("u5", "User 5", &["u5@example.com"], "pw-u5"))
        .unwrap();
    let report = env
        .roster
        .approve_run(&env.local_admin(), stopped, "test", &())
        .await
        .unwrap_or_else(|e| panic!("approval failed: {e} ({})", e.code()));
    assert_eq!(report.counts.deleted, 10);
    env.check().await;
}
on_both_backends!(an_approval_after_the_directory_changed_again_is_refused);
