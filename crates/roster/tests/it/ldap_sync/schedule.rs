//! Issue 20, the scheduled sync, against a real slapd on both backends, with the test's clock: a run
//! happens at its time, recorded as started by the schedule; a failing one is retried at later slots,
//! backing off; two instances on one database run each due sync once.

use super::*;
use roster_app::SessionPolicy;

const MINUTE: i64 = 60;

/// A second Roster on the same database and clock: another `roster serve` instance.
fn second_instance(env: &Env) -> Arc<roster_app::Roster> {
    let secrets = roster_app::secrets::SecretBox::load(env.dir.path(), None).unwrap();
    Arc::new(roster_app::Roster::new(
        env.store.clone(),
        env.clock.clone(),
        secrets,
        SessionPolicy { ttl_seconds: 3600 },
    ))
}

async fn view(env: &Env) -> roster_app::DirectorySettingsView {
    env.roster
        .directory_settings(&env.local_admin())
        .await
        .unwrap()
}

async fn a_scheduled_sync_runs_at_its_time_and_backs_off_when_it_fails(env: Env) {
    let slapd = start(&many_users(3));
    let mut s = settings(&slapd);
    s.schedule.schedule = Some("every 30m".into());
    configure(&env, s.clone()).await;
    let t0 = env.roster.now();
    assert_eq!(
        view(&env).await.next_run_at,
        Some(t0.plus_seconds(30 * MINUTE))
    );

    // Not yet.
    env.clock.advance_seconds(30 * MINUTE - 1);
    assert_eq!(env.roster.run_due_schedule().await.unwrap(), None);
    assert!(users(&env).await.len() == 1, "only admin so far");

    // Due: exactly one of two instances runs it.
    env.clock.advance_seconds(1);
    let other = second_instance(&env);
    let (a, b) = tokio::join!(env.roster.run_due_schedule(), other.run_due_schedule());
    let ran: Vec<i64> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert_eq!(ran.len(), 1, "one run for one due time");
    let run = env.store.get_run(ran[0]).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    assert_eq!(run.triggered_by, "schedule");
    assert_eq!(run.actor, "schedule");
    assert_eq!(users(&env).await.len(), 4);
    let due = env.roster.now().plus_seconds(30 * MINUTE);
    assert_eq!(view(&env).await.next_run_at, Some(due));
    assert_eq!(env.roster.run_due_schedule().await.unwrap(), None, "once");
    assert_eq!(
        other.run_due_schedule().await.unwrap(),
        None,
        "once, whichever instance asks"
    );

    // The directory goes away: each failure is recorded, and the next try waits more slots.
    let mut down = s.clone();
    down.port = Some(roster_testkit::free_port());
    configure(&env, down).await;
    // (Changing the settings keeps the schedule and its next run.)
    assert_eq!(view(&env).await.next_run_at, Some(due));
    let mut gaps = Vec::new();
    let mut at = due;
    for _ in 0..4 {
        env.clock.set(at);
        let run_id = env.roster.run_due_schedule().await.unwrap().expect("due");
        let run = env.store.get_run(run_id).await.unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        assert_eq!(run.triggered_by, "schedule");
        assert!(run.error.is_some() && run.error_code.is_some(), "{run:?}");
        let v = view(&env).await;
        let next = v.next_run_at.unwrap();
        gaps.push((next.0 - at.0) / 1000 / MINUTE);
        // Nothing runs before that.
        env.clock.set(next.minus_millis(1));
        assert_eq!(env.roster.run_due_schedule().await.unwrap(), None);
        at = next;
    }
    // 1, then 2, 4 and 8 slots of 30 minutes.
    assert_eq!(gaps, [30, 60, 120, 240]);
    assert_eq!(view(&env).await.scheduled_failures, Some(4));

    // Back up: the next scheduled run succeeds and the count starts again.
    configure(&env, s).await;
    env.clock.set(at);
    let run_id = env.roster.run_due_schedule().await.unwrap().expect("due");
    assert_eq!(
        env.store.get_run(run_id).await.unwrap().unwrap().status,
        RunStatus::Succeeded
    );
    let v = view(&env).await;
    assert_eq!(v.scheduled_failures, Some(0));
    assert_eq!(v.next_run_at, Some(at.plus_seconds(30 * MINUTE)));

    // No schedule: nothing is due, ever.
    let mut none = settings(&slapd);
    none.schedule.schedule = None;
    configure(&env, none).await;
    assert_eq!(view(&env).await.next_run_at, None);
    env.clock.advance_seconds(365 * 24 * 60 * MINUTE);
    assert_eq!(env.roster.run_due_schedule().await.unwrap(), None);
    env.check().await;
}
on_both_backends!(a_scheduled_sync_runs_at_its_time_and_backs_off_when_it_fails);

/// A schedule that can't be parsed is refused when the settings are stored, saying how to write one.
async fn a_bad_schedule_is_refused_with_the_forms_that_work(env: Env) {
    let slapd = start(&many_users(1));
    let mut s = settings(&slapd);
    s.schedule.schedule = Some("every now and then".into());
    let e = env
        .roster
        .set_directory_settings(&env.local_admin(), DirectorySettings::Ldap(s))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "AP008-invalid-setting", "{e}");
    assert!(e.to_string().contains("\"daily at 02:00\""), "{e}");
    env.check().await;
}
on_both_backends!(a_bad_schedule_is_refused_with_the_forms_that_work);
