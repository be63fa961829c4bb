//! The use cases of a run and of a directory logon over a fake directory (`fake_directory`), on a real
//! SQLite store: what a run records, that the preview shows exactly what the sync does, that a failed
//! read changes nothing, and that a directory logon asks the connector's checker as it should. The same
//! code runs against a real slapd in `ldap_sync`.

use crate::fake_directory::{FakeConnectors, FakeDirectory, PEOPLE, SeenLogon, person};
use crate::support::Env;
use roster_app::{AppError, NewUserInput, RunReport};
use roster_core::directory::{
    AttributeMapping, DirectorySettings, Encryption, LdapSettings, LdifSettings, Secret,
};
use roster_core::plan::{ReportAction, ReportCounts};
use roster_core::user::{AuthMethod, DirectoryLink, User};
use roster_directory::DirectoryError;
use roster_store::{RunKind, RunStatus};
use std::sync::Arc;

/// LDAP settings: the fake answers for any server, so this one need not exist.
fn ldap_settings(delete_users: bool) -> DirectorySettings {
    DirectorySettings::Ldap(LdapSettings {
        schedule: Default::default(),
        server: "ldap.invalid".into(),
        port: None,
        encryption: Encryption::None,
        ignore_certificate_errors: false,
        ca_file: None,
        bind_dn: "cn=roster,dc=example,dc=com".into(),
        password: Some(Secret::new("service-pw")),
        base_dn: PEOPLE.into(),
        mapping: AttributeMapping {
            filter: "(objectClass=inetOrgPerson)".into(),
            username_attribute: "uid".into(),
            full_name_attribute: Some("cn".into()),
            email_attributes: Some("mail".into()),
        },
        delete_users,
        // These tests are about runs, not the deletion guard: with deletion on, it is off.
        guard: if delete_users {
            crate::support::unguarded()
        } else {
            Default::default()
        },
        page_size: None,
        timeout_seconds: None,
    })
}

async fn env_with(fake: &Arc<FakeDirectory>, settings: DirectorySettings) -> Env {
    let env = Env::sqlite_with_connectors(Arc::new(FakeConnectors(fake.clone()))).await;
    configure(&env, settings).await;
    env
}

async fn configure(env: &Env, settings: DirectorySettings) {
    env.roster
        .set_directory_settings(&env.local_admin(), settings)
        .await
        .unwrap();
}

async fn run(env: &Env, kind: RunKind) -> Result<RunReport, AppError> {
    env.roster
        .run_directory(&env.local_admin(), kind, "test", &())
        .await
}

async fn ok(env: &Env, kind: RunKind) -> RunReport {
    run(env, kind)
        .await
        .unwrap_or_else(|e| panic!("{kind:?} failed: {e} ({})", e.code()))
}

/// The run id, code and message of a run that must have failed.
fn failed(result: Result<RunReport, AppError>) -> (i64, &'static str, String) {
    match result {
        Err(AppError::RunFailed {
            run_id,
            code,
            message,
            ..
        }) => (run_id, code, message),
        other => panic!("expected a failed run, got {other:?}"),
    }
}

async fn users(env: &Env) -> Vec<User> {
    env.store.list_users(0, 1000).await.unwrap().items
}

fn names(users: &[User]) -> Vec<&str> {
    users.iter().map(|u| u.name.as_str()).collect()
}

/// Every user and folder: "nothing changed" means this is equal.
async fn state(env: &Env) -> serde_json::Value {
    serde_json::json!({
        "users": users(env).await,
        "folders": env.store.list_folders().await.unwrap(),
    })
}

fn counts(f: impl FnOnce(&mut ReportCounts)) -> ReportCounts {
    let mut c = ReportCounts::default();
    f(&mut c);
    c
}

fn staff() -> Vec<roster_core::directory::DirectoryEntry> {
    vec![
        person("alice", "Alice Liddell", &["alice@example.com"]),
        person("bob", "Bob Brown", &["bob@example.com"]),
        person("carol", "Carol Clark", &["carol@example.com"]),
        person("dave", "Dave Davis", &[]),
        person("erin", "Erin Evans", &["erin@example.com"]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preview_and_a_sync_are_recorded_with_their_counts_and_lines() {
    let fake = FakeDirectory::new();
    fake.set_entries(staff()[..3].to_vec());
    let env = env_with(&fake, ldap_settings(false)).await;
    let admin = env.local_admin();
    let empty = state(&env).await;

    let preview = ok(&env, RunKind::Preview).await;
    assert!(preview.preview);
    assert_eq!(preview.directory_type, "ldap");
    assert_eq!(preview.entries_read, 3);
    assert_eq!(preview.counts, counts(|c| c.created = 3));
    assert_eq!(
        preview
            .lines
            .iter()
            .map(|l| (l.user.as_str(), l.action, l.dn.clone()))
            .collect::<Vec<_>>(),
        ["alice", "bob", "carol"].map(|u| (
            u,
            ReportAction::Created,
            Some(format!("uid={u},{PEOPLE}"))
        ))
    );
    assert_eq!(state(&env).await, empty, "a preview commits nothing");

    let sync = ok(&env, RunKind::Sync).await;
    assert!(!sync.preview);
    assert_eq!(sync.counts, preview.counts);
    assert_eq!(
        names(&users(&env).await),
        ["admin", "alice", "bob", "carol"]
    );
    let alice = env.roster.get_user(&admin, "alice").await.unwrap();
    assert_eq!(alice.auth, AuthMethod::Directory);
    assert_eq!(
        alice.directory,
        Some(DirectoryLink {
            source: "ldap".into(),
            id: "id-alice".into(),
            dn: Some(format!("uid=alice,{PEOPLE}")),
        })
    );

    // `roster runs list` and `roster runs show`: newest first, each with its counts and its lines.
    let runs = env.roster.list_runs(&admin, 0, 10).await.unwrap();
    assert_eq!(runs.total, 2);
    for (recorded, report) in runs.items.iter().zip([&sync, &preview]) {
        assert_eq!(recorded.id, report.run_id);
        assert_eq!(recorded.kind, report.kind);
        assert_eq!(recorded.status, RunStatus::Succeeded);
        assert_eq!(recorded.directory_type, "ldap");
        assert_eq!(recorded.triggered_by, "test");
        assert_eq!(recorded.actor, admin.actor().0);
        assert_eq!(recorded.entries_read, 3);
        assert_eq!(recorded.counts, Some(report.counts));
        assert_eq!(recorded.error, None);
        assert!(recorded.finished_at.is_some());
        let (shown, lines) = env
            .roster
            .get_run(&admin, report.run_id, 0, 100)
            .await
            .unwrap();
        assert_eq!(&shown, recorded);
        assert_eq!(lines.items, report.lines);
    }
    assert_eq!(fake.reads(), 2);
    env.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preview_shows_exactly_what_the_sync_does() {
    let fake = FakeDirectory::new();
    fake.set_entries(staff());
    let env = env_with(&fake, ldap_settings(true)).await;
    let admin = env.local_admin();
    assert_eq!(
        ok(&env, RunKind::Sync).await.counts,
        counts(|c| c.created = 5)
    );
    // A folder with messages outlives its owner.
    env.roster
        .set_message_count(&admin, "dave", 7)
        .await
        .unwrap();
    // A user made by hand, whom the directory's entry of the same name will link.
    env.roster
        .create_user(
            &admin,
            NewUserInput {
                name: "frank".into(),
                full_name: "Frank".into(),
                emails: vec![],
                auth: AuthMethod::Local,
                password: Some("frank-local-pw".into()),
                privileges: None,
            },
        )
        .await
        .unwrap();

    // Every kind of change at once: an update, a rename, a link, a create, two departures (one folder
    // kept), and an entry the planner skips (no user name).
    let mut entries = staff();
    entries[0].full_name = Some("Alice Pleasance Liddell".into());
    entries[1].name = Some("robert".into());
    entries[1].dn = format!("uid=robert,{PEOPLE}");
    entries.retain(|e| !matches!(e.name.as_deref(), Some("carol" | "dave")));
    entries.push(person("frank", "Frank Fisher", &["frank@example.com"]));
    entries.push(person("grace", "Grace Green", &["grace@example.com"]));
    let mut nameless = person("nameless", "No Name", &[]);
    nameless.name = None;
    entries.push(nameless);
    fake.set_entries(entries);

    let before = state(&env).await;
    let preview = ok(&env, RunKind::Preview).await;
    assert_eq!(state(&env).await, before, "a preview commits nothing");
    let sync = ok(&env, RunKind::Sync).await;
    assert_eq!(sync.entries_read, preview.entries_read);
    assert_eq!(sync.counts, preview.counts);
    assert_eq!(sync.lines, preview.lines);
    // The equivalence covers every kind of change, not an empty report.
    let c = sync.counts;
    assert_eq!(
        (
            c.created,
            c.updated,
            c.renamed,
            c.linked,
            c.deleted,
            c.folders_kept
        ),
        (1, 1, 1, 1, 2, 1),
        "{c:?} {:#?}",
        sync.lines
    );
    assert!(c.skipped + c.conflicts >= 1, "{c:?}");
    assert_eq!(
        names(&users(&env).await),
        ["admin", "alice", "erin", "frank", "grace", "robert"]
    );

    // After the sync, a preview finds nothing to change (the nameless entry is still reported).
    let after = state(&env).await;
    let again = ok(&env, RunKind::Preview).await;
    let c = again.counts;
    assert_eq!(
        (
            c.created,
            c.updated,
            c.renamed,
            c.linked,
            c.deleted,
            c.folders_kept
        ),
        (0, 0, 0, 0, 0, 0),
        "{c:?} {:#?}",
        again.lines
    );
    assert_eq!(c.unchanged, 5);
    assert!(
        again
            .lines
            .iter()
            .all(|l| matches!(l.action, ReportAction::Skipped | ReportAction::Conflict)),
        "{:#?}",
        again.lines
    );
    assert_eq!(state(&env).await, after);
    env.check().await;
}

fn disconnected(entries: u64) -> DirectoryError {
    DirectoryError::Disconnected {
        target: "the fake directory".into(),
        operation: "reading the directory",
        entries,
        detail: "connection reset".into(),
        hint: "try again",
    }
}

fn size_limit(entries: u64) -> DirectoryError {
    DirectoryError::SizeLimit { entries }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_fails_midway_records_a_failed_run_and_changes_nothing() {
    let fake = FakeDirectory::new();
    fake.set_entries(staff());
    let env = env_with(&fake, ldap_settings(false)).await;
    assert_eq!(
        ok(&env, RunKind::Sync).await.counts,
        counts(|c| c.created = 5)
    );

    // With deletion on and only two entries left, a partial read taken for whole would delete three.
    configure(&env, ldap_settings(true)).await;
    fake.set_entries(staff()[..2].to_vec());
    let before = state(&env).await;
    for (after, error, code) in [
        (
            Some(2),
            disconnected as fn(u64) -> DirectoryError,
            "DI014-disconnected",
        ),
        (Some(1), size_limit, "DI009-size-limit"),
        (None, disconnected, "DI014-disconnected"),
    ] {
        match after {
            Some(n) => fake.fail_reads_after(n, error),
            None => fake.fail_reads(error),
        }
        let after = after.unwrap_or(0);
        for kind in [RunKind::Sync, RunKind::Preview] {
            let (run_id, got, message) = failed(run(&env, kind).await);
            assert_eq!(got, code, "the directory's error code is kept: {message}");
            assert_eq!(
                message,
                format!("{}; nothing was changed", error(after as u64))
            );
            assert!(message.contains("nothing was changed"), "{message}");
            assert_eq!(state(&env).await, before, "{kind:?} after {after}");
            let recorded = env.store.get_run(run_id).await.unwrap().unwrap();
            assert_eq!(recorded.kind, kind);
            assert_eq!(recorded.status, RunStatus::Failed);
            assert_eq!(recorded.error.as_deref(), Some(message.as_str()));
            assert_eq!(recorded.counts, None);
            assert_eq!(
                recorded.entries_read, after as i64,
                "what the read reported"
            );
            assert!(recorded.finished_at.is_some());
            assert_eq!(env.store.run_lines(run_id, 0, 10).await.unwrap().total, 0);
        }
    }
    let runs = env
        .roster
        .list_runs(&env.local_admin(), 0, 100)
        .await
        .unwrap();
    assert_eq!(runs.total, 7);
    assert_eq!(
        runs.items
            .iter()
            .filter(|r| r.status == RunStatus::Failed)
            .count(),
        6
    );

    // The failure was all that held the deletions back.
    fake.read_normally();
    let report = ok(&env, RunKind::Sync).await;
    assert_eq!(
        report.counts,
        counts(|c| {
            c.deleted = 3;
            c.unchanged = 2;
        })
    );
    assert_eq!(names(&users(&env).await), ["admin", "alice", "bob"]);
    env.check().await;
}

async fn logon_error(env: &Env, name: &str, password: &str) -> AppError {
    match env.roster.verify_logon(name, password).await {
        Ok(u) => panic!(
            "the logon of {name:?} must fail, but was accepted as {}",
            u.name
        ),
        Err(e) => e,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directory_logons_go_through_the_connectors_checker() {
    let fake = FakeDirectory::with_passwords(&[
        ("alice", "alice-pw"),
        ("bob", "bob-pw"),
        ("carol", "carol-pw"),
        ("other-bob", "other-bob-pw"),
    ]);
    fake.set_entries(staff()[..2].to_vec());
    let env = env_with(&fake, ldap_settings(false)).await;
    ok(&env, RunKind::Sync).await;
    let admin = env.local_admin();
    let seen = |name: &str, linked: bool| SeenLogon {
        name: name.into(),
        dn: linked.then(|| format!("uid={name},{PEOPLE}")),
        id: linked.then(|| format!("id-{name}")),
    };

    // A linked user: asked by the link's id and DN.
    let alice = env.roster.verify_logon("alice", "alice-pw").await.unwrap();
    assert_eq!(alice.name.as_str(), "alice");
    assert_eq!(fake.logons(), [seen("alice", true)]);
    assert!(matches!(
        logon_error(&env, "alice", "bob-pw").await,
        AppError::LogonFailed
    ));
    // Empty: refused before the directory is asked.
    assert!(matches!(
        logon_error(&env, "alice", "").await,
        AppError::EmptyPassword
    ));
    assert_eq!(fake.logons().len(), 2);

    // A user made by hand and switched to directory authentication: asked by name, no link.
    env.roster
        .create_user(
            &admin,
            NewUserInput {
                name: "carol".into(),
                full_name: "Carol".into(),
                emails: vec![],
                auth: AuthMethod::Directory,
                password: None,
                privileges: None,
            },
        )
        .await
        .unwrap();
    fake.set_entries(staff()[..3].to_vec());
    env.roster.verify_logon("carol", "carol-pw").await.unwrap();
    assert_eq!(fake.logons().last(), Some(&seen("carol", false)));

    // The link decides: bob's entry moved in the directory (same id) and another person named bob
    // now at bob's stored DN. Bob still logs on; the other one, with their own password, doesn't.
    let mut entries = staff()[..3].to_vec();
    entries[1].dn = format!("uid=bob,ou=Sales,{PEOPLE}");
    let mut other_bob = person("bob", "Another Bob", &[]);
    other_bob.id = "id-other-bob".into();
    entries.push(other_bob);
    fake.set_entries(entries);
    env.roster.verify_logon("bob", "bob-pw").await.unwrap();
    assert_eq!(fake.logons().last(), Some(&seen("bob", true)));
    assert!(matches!(
        logon_error(&env, "bob", "other-bob-pw").await,
        AppError::LogonFailed
    ));

    // A directory that can't be reached: its own error, not a wrong password.
    fake.fail_logons(true);
    let e = logon_error(&env, "alice", "alice-pw").await;
    assert!(matches!(e, AppError::DirectoryUnavailableAtLogon), "{e:?}");
    fake.fail_logons(false);
    env.roster.verify_logon("alice", "alice-pw").await.unwrap();
    // Failed logons are in the audit log; the administrator still logs on locally.
    env.roster
        .verify_logon("admin", crate::support::ADMIN_PASSWORD)
        .await
        .unwrap();
    env.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_without_a_checker_refuses_directory_logons() {
    let fake = FakeDirectory::new();
    fake.set_entries(staff()[..1].to_vec());
    let env = env_with(
        &fake,
        DirectorySettings::Ldif(LdifSettings {
            schedule: Default::default(),
            file: "/nonexistent/users.ldif".into(),
            base_dn: PEOPLE.into(),
            mapping: AttributeMapping {
                filter: "(objectClass=inetOrgPerson)".into(),
                username_attribute: "uid".into(),
                full_name_attribute: Some("cn".into()),
                email_attributes: Some("mail".into()),
            },
            delete_users: false,
            guard: Default::default(),
            limits: Default::default(),
        }),
    )
    .await;
    ok(&env, RunKind::Sync).await;
    let alice = env
        .roster
        .get_user(&env.local_admin(), "alice")
        .await
        .unwrap();
    assert_eq!(alice.directory.as_ref().unwrap().source, "ldif");
    let e = logon_error(&env, "alice", "alice-pw").await;
    assert!(matches!(e, AppError::DirectoryLogonUnavailable(_)), "{e:?}");
    assert!(e.to_string().contains("local authentication"), "{e}");
    env.check().await;
}

/// Issue 20: a throttled directory user never causes a bind, so Roster can't lock the real directory
/// account out by passing on a flood of guesses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_directory_users_cause_no_bind() {
    let fake = FakeDirectory::with_passwords(&[("alice", "alice-pw"), ("bob", "bob-pw")]);
    fake.set_entries(staff()[..2].to_vec());
    let env = env_with(&fake, ldap_settings(false)).await;
    ok(&env, RunKind::Sync).await;
    for _ in 0..3 {
        assert!(matches!(
            logon_error(&env, "alice", "wrong").await,
            AppError::LogonFailed
        ));
    }
    assert_eq!(
        fake.logons().len(),
        3,
        "three checked failures, three binds"
    );
    // Too soon after the third failure: refused, the directory not asked, even with the right password.
    for _ in 0..5 {
        assert!(matches!(
            logon_error(&env, "alice", "alice-pw").await,
            AppError::LogonFailed
        ));
    }
    assert_eq!(fake.logons().len(), 3, "no bind while throttled");
    env.clock.advance_seconds(1);
    env.roster.verify_logon("alice", "alice-pw").await.unwrap();
    assert_eq!(fake.logons().len(), 4);
    env.check().await;
}

/// What an observer was told, in order.
#[derive(Debug, Default)]
struct Recorder {
    runs: std::sync::Mutex<Vec<roster_app::observe::RunFinished>>,
    logons: std::sync::Mutex<Vec<(&'static str, &'static str)>>,
}

impl roster_app::observe::Observer for Recorder {
    fn run_finished(&self, run: &roster_app::observe::RunFinished) {
        self.runs.lock().unwrap().push(run.clone());
    }
    fn logon(
        &self,
        method: roster_app::observe::LogonMethod,
        outcome: roster_app::observe::LogonOutcome,
    ) {
        self.logons
            .lock()
            .unwrap()
            .push((method.as_str(), outcome.as_str()));
    }
}

/// Issue 27: the app tells its observer (`roster serve`'s metrics) how every run ended (a sync, a
/// preview, a failed read, a deletion guard stop) and how every logon was answered, by method.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_observer_hears_every_run_and_logon() {
    use roster_app::observe::{ReadMode, RunEnd};
    let fake = FakeDirectory::with_passwords(&[("alice", "alice-pw"), ("bob", "bob-pw")]);
    fake.set_entries(staff());
    let recorder = Arc::new(Recorder::default());
    let env = Env::sqlite_observed(Arc::new(FakeConnectors(fake.clone())), recorder.clone()).await;
    // Deletions on, with the default deletion guard (at most 10 % of the linked users at once).
    let DirectorySettings::Ldap(mut settings) = ldap_settings(true) else {
        unreachable!()
    };
    settings.guard = Default::default();
    configure(&env, DirectorySettings::Ldap(settings)).await;

    ok(&env, RunKind::Preview).await;
    ok(&env, RunKind::Sync).await;
    fake.set_entries(staff()[..1].to_vec());
    let stopped = run(&env, RunKind::Sync).await;
    assert!(
        matches!(stopped, Err(AppError::RunFailed { .. })),
        "{stopped:?}"
    );
    fake.fail_reads_after(1, disconnected);
    failed(run(&env, RunKind::Sync).await);
    let runs: Vec<_> = recorder
        .runs
        .lock()
        .unwrap()
        .iter()
        .map(|r| (r.kind, r.outcome, r.read_mode, r.entries_read, r.applied))
        .collect();
    assert_eq!(
        runs,
        [
            (
                RunKind::Preview,
                RunEnd::Succeeded,
                Some(ReadMode::Full),
                5,
                None
            ),
            (
                RunKind::Sync,
                RunEnd::Succeeded,
                Some(ReadMode::Full),
                5,
                Some(counts(|c| c.created = 5))
            ),
            // Runs that end in an error don't say how they read.
            (RunKind::Sync, RunEnd::Stopped, None, 1, None),
            (RunKind::Sync, RunEnd::Failed, None, 1, None),
        ]
    );

    env.roster.verify_logon("alice", "alice-pw").await.unwrap();
    logon_error(&env, "alice", "bob-pw").await;
    logon_error(&env, "nobody", "pw").await;
    logon_error(&env, "alice", "").await;
    env.roster
        .verify_logon("admin", crate::support::ADMIN_PASSWORD)
        .await
        .unwrap();
    logon_error(&env, "admin", "wrong").await;
    fake.fail_logons(true);
    logon_error(&env, "bob", "bob-pw").await;
    // The default throttling: three failures in a row are free, the fourth comes too soon.
    for _ in 0..3 {
        logon_error(&env, "nobody", "pw").await;
    }
    assert_eq!(
        *recorder.logons.lock().unwrap(),
        [
            ("password_directory", "accepted"),
            ("password_directory", "rejected"),
            ("password", "rejected"),
            ("password", "rejected"),
            ("password_local", "accepted"),
            ("password_local", "rejected"),
            ("password_directory", "unavailable"),
            ("password", "rejected"),
            ("password", "rejected"),
            ("password", "throttled"),
        ]
    );
    env.check().await;
}
