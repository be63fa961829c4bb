//! The user database rules, on SQLite and on a real PostgreSQL.

use crate::on_both_backends;
use crate::support::{Backend, Env, T0};
use roster_app::{AppError, NewUserInput, PrivilegesInput};
use roster_core::directory::DirectoryEntry;
use roster_core::plan::{PlanOptions, ReportAction, ReportLine, plan_sync};
use roster_core::privileges::DefaultPrivileges;
use roster_core::user::AuthMethod;
use roster_core::{FolderRight, Privilege};
use roster_store::{Actor, NewRun, RunKind, RunOutcome, RunRecord, RunStatus, StoreError};
use std::collections::BTreeSet;

fn local(name: &str, emails: &[&str]) -> NewUserInput {
    NewUserInput {
        name: name.into(),
        full_name: format!("{name} Example"),
        emails: emails.iter().map(|e| e.to_string()).collect(),
        auth: AuthMethod::Local,
        password: Some("secret-1".into()),
        privileges: None,
    }
}

fn store_code(e: &AppError) -> &'static str {
    e.code()
}

async fn names_are_unique_without_regard_to_case(env: Env) {
    let admin = env.local_admin();
    env.roster
        .create_user(&admin, local("Alice", &[]))
        .await
        .unwrap();
    let e = env
        .roster
        .create_user(&admin, local("alice", &[]))
        .await
        .unwrap_err();
    assert_eq!(store_code(&e), "ST001-duplicate-user-name", "{e}");
    // NFC: "é" precomposed and decomposed are the same name.
    env.roster
        .create_user(&admin, local("Ren\u{e9}", &[]))
        .await
        .unwrap();
    let e = env
        .roster
        .create_user(&admin, local("rene\u{301}", &[]))
        .await
        .unwrap_err();
    assert_eq!(store_code(&e), "ST001-duplicate-user-name");
    let e = env
        .roster
        .create_user(&admin, local("ADMIN", &[]))
        .await
        .unwrap_err();
    assert!(matches!(e, AppError::Invalid(_)), "{e}");
    env.check().await;
}
on_both_backends!(names_are_unique_without_regard_to_case);

/// The console's search: name, full name or an address, ignoring case; `%` and `_` are themselves; the
/// database pages the result.
async fn users_are_searched_by_name_full_name_and_address(env: Env) {
    let admin = env.local_admin();
    for (name, emails) in [
        ("alice", &["alice@example.com"][..]),
        ("bob", &["robert.b@Example.org"][..]),
        ("carol_x", &[][..]),
        ("carolx", &[][..]),
        ("dave", &["d100%@example.net"][..]),
    ] {
        env.roster
            .create_user(&admin, local(name, emails))
            .await
            .unwrap();
    }
    let names = |page: roster_app::Page<roster_core::user::User>| {
        page.items
            .iter()
            .map(|u| u.name.to_string())
            .collect::<Vec<_>>()
    };
    let search = |q: &'static str, offset: i64, limit: i64| {
        let env = &env;
        let admin = admin.clone();
        async move {
            env.roster
                .search_users(&admin, q, offset, limit)
                .await
                .unwrap()
        }
    };
    assert_eq!(names(search("ALICE", 0, 50).await), ["alice"]);
    assert_eq!(
        names(search("ROBERT.B@example", 0, 50).await),
        ["bob"],
        "by address"
    );
    assert_eq!(
        names(search("bob EXAMPLE", 0, 50).await),
        ["bob"],
        "by full name"
    );
    assert_eq!(
        names(search("carol_", 0, 50).await),
        ["carol_x"],
        "_ is itself"
    );
    assert_eq!(names(search("100%", 0, 50).await), ["dave"], "% is itself");
    let page = search("example", 1, 2).await;
    assert_eq!(page.total, 5, "every user's full name says Example");
    assert_eq!(names(page), ["bob", "carol_x"]);
    let past_the_end = search("example", 10, 2).await;
    assert!(past_the_end.items.is_empty());
    assert_eq!(
        past_the_end.total, 5,
        "a page past the end still counts the matches"
    );
    assert_eq!(
        search("", 0, 50).await.total,
        6,
        "empty: everyone, admin too"
    );
    assert!(search("nobody", 0, 50).await.items.is_empty());
    env.check().await;
}
on_both_backends!(users_are_searched_by_name_full_name_and_address);

async fn an_address_belongs_to_one_user(env: Env) {
    let admin = env.local_admin();
    env.roster
        .create_user(
            &admin,
            local(
                "bob",
                &["bob@example.com", "BOB@example.com", "b@example.com"],
            ),
        )
        .await
        .unwrap();
    let bob = env.roster.get_user(&admin, "bob").await.unwrap();
    assert_eq!(
        bob.emails.len(),
        2,
        "deduplicated case-insensitively: {:?}",
        bob.emails
    );
    let e = env
        .roster
        .create_user(&admin, local("carol", &["Bob@Example.com"]))
        .await
        .unwrap_err();
    assert_eq!(store_code(&e), "ST002-duplicate-email");
    assert!(e.to_string().contains("bob"), "names the owner: {e}");
    // Nothing half-written: carol doesn't exist.
    assert!(env.roster.get_user(&admin, "carol").await.is_err());
    let e = env
        .roster
        .create_user(&admin, local("dave", &["not an address"]))
        .await
        .unwrap_err();
    assert!(matches!(e, AppError::Invalid(_)), "{e}");
    // Bob may move his own address around.
    env.roster
        .update_user(
            &admin,
            "bob",
            roster_app::UserUpdateInput {
                full_name: None,
                emails: Some(vec!["b@example.com".into()]),
            },
        )
        .await
        .unwrap();
    env.roster
        .create_user(&admin, local("carol", &["bob@example.com"]))
        .await
        .unwrap();
    env.check().await;
}
on_both_backends!(an_address_belongs_to_one_user);

async fn the_builtin_admin_is_protected(env: Env) {
    let admin = env.local_admin();
    let a = env.roster.get_user(&admin, "admin").await.unwrap();
    assert!(a.builtin_admin);
    assert_eq!(a.privileges.len(), Privilege::ALL.len());
    let e = env.roster.delete_user(&admin, "admin").await.unwrap_err();
    assert_eq!(store_code(&e), "ST004-builtin-admin");
    let e = env
        .roster
        .set_privileges(
            &admin,
            "Admin",
            PrivilegesInput {
                privileges: BTreeSet::new(),
                folders: vec![],
            },
        )
        .await
        .unwrap_err();
    assert_eq!(store_code(&e), "ST004-builtin-admin");
    let e = env
        .roster
        .set_auth(&admin, "admin", AuthMethod::Directory)
        .await
        .unwrap_err();
    assert_eq!(store_code(&e), "ST004-builtin-admin");
    // A second bootstrap doesn't create a second admin or change the password.
    let boot = env.roster.bootstrap(Some("other")).await.unwrap();
    assert!(!boot.admin_created);
    env.roster
        .verify_logon("admin", crate::support::ADMIN_PASSWORD)
        .await
        .unwrap();
    env.check().await;
}
on_both_backends!(the_builtin_admin_is_protected);

async fn a_folder_with_messages_outlives_its_owner(env: Env) {
    let admin = env.local_admin();
    env.roster
        .create_user(&admin, local("erin", &[]))
        .await
        .unwrap();
    env.roster
        .create_user(&admin, local("frank", &[]))
        .await
        .unwrap();
    env.roster
        .set_message_count(&admin, "erin", 42)
        .await
        .unwrap();
    let d = env.roster.delete_user(&admin, "erin").await.unwrap();
    assert!(d.folder_kept);
    let d = env.roster.delete_user(&admin, "frank").await.unwrap();
    assert!(!d.folder_kept);
    let folders = env.roster.list_folders(&admin).await.unwrap();
    let erin = folders
        .iter()
        .find(|f| f.name == "erin")
        .expect("erin's folder stays");
    assert_eq!(erin.owner, None);
    assert_eq!(erin.message_count, 42);
    assert_eq!(erin.orphaned_at, Some(T0));
    assert!(!folders.iter().any(|f| f.name == "frank"));
    let e = env
        .roster
        .set_message_count(&admin, "erin", -1)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("negative"), "{e}");
    env.check().await;
}
on_both_backends!(a_folder_with_messages_outlives_its_owner);

async fn privileges_and_folder_access(env: Env) {
    let admin = env.local_admin();
    env.roster
        .create_user(&admin, local("gina", &[]))
        .await
        .unwrap();
    env.roster
        .create_user(&admin, local("hank", &[]))
        .await
        .unwrap();
    let g = env
        .roster
        .set_privileges(
            &admin,
            "gina",
            PrivilegesInput {
                privileges: BTreeSet::from([Privilege::LogOn, Privilege::ExportEmail]),
                folders: vec![roster_app::FolderRightsInput {
                    folder: "hank".into(),
                    rights: BTreeSet::from([FolderRight::Read, FolderRight::Write]),
                }],
            },
        )
        .await
        .unwrap();
    assert_eq!(
        g.privileges,
        BTreeSet::from([Privilege::LogOn, Privilege::ExportEmail])
    );
    let hank_access = g.folders.iter().find(|f| f.folder == "hank").unwrap();
    assert_eq!(
        hank_access.rights,
        BTreeSet::from([FolderRight::Read, FolderRight::Write])
    );
    // Unknown folder: nothing changes.
    let e = env
        .roster
        .set_privileges(
            &admin,
            "gina",
            PrivilegesInput {
                privileges: BTreeSet::new(),
                folders: vec![roster_app::FolderRightsInput {
                    folder: "nobody".into(),
                    rights: BTreeSet::new(),
                }],
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(e, AppError::NotFound(_)), "{e}");
    let g2 = env.roster.get_user(&admin, "gina").await.unwrap();
    assert_eq!(g2.privileges, g.privileges);
    // Unknown privilege names are refused when parsed (API and CLI both parse through this).
    assert!(roster_core::privileges::parse_privilege_list("log_on,fly").is_err());
    assert!(serde_json::from_str::<PrivilegesInput>(r#"{"privileges":["fly"]}"#).is_err());
    // Default privileges are a setting, log_on + read out of the box.
    assert_eq!(
        env.roster.default_privileges(&admin).await.unwrap(),
        DefaultPrivileges::default()
    );
    let d = DefaultPrivileges {
        privileges: BTreeSet::from([Privilege::LogOn, Privilege::ArchiveEmail]),
        own_folder: BTreeSet::from([FolderRight::Read, FolderRight::Write]),
    };
    env.roster
        .set_default_privileges(&admin, d.clone())
        .await
        .unwrap();
    assert_eq!(env.roster.default_privileges(&admin).await.unwrap(), d);
    env.check().await;
}
on_both_backends!(privileges_and_folder_access);

async fn every_change_is_audited(env: Env) {
    let admin = env.local_admin();
    env.roster
        .create_user(&admin, local("ivan", &["ivan@example.com"]))
        .await
        .unwrap();
    env.roster
        .set_auth(&admin, "ivan", AuthMethod::Directory)
        .await
        .unwrap();
    env.roster
        .set_password(&admin, "ivan", "new-secret")
        .await
        .unwrap();
    env.roster.delete_user(&admin, "ivan").await.unwrap();
    let log = env.roster.audit_log(&admin, 0, 100).await.unwrap();
    let actions: Vec<&str> = log.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        &actions[..4],
        ["user.delete", "user.password", "user.auth", "user.create"]
    );
    assert!(
        log.items
            .iter()
            .all(|e| e.actor == "cli:test" || e.actor == "roster")
    );
    let all = serde_json::to_string(&log.items).unwrap();
    assert!(
        !all.contains("new-secret") && !all.contains("secret-1"),
        "no password in the audit log"
    );
    env.check().await;
}
on_both_backends!(every_change_is_audited);

/// The plan is applied in one transaction and only to the snapshot it was made from.
async fn a_plan_applies_whole_and_only_to_its_snapshot(env: Env) {
    let admin = env.local_admin();
    env.roster
        .create_user(&admin, local("judy", &["judy@example.com"]))
        .await
        .unwrap();
    let snap = env.store.snapshot().await.unwrap();
    let entries: Vec<DirectoryEntry> = (0..2500)
        .map(|i| DirectoryEntry {
            id: format!("id-{i}"),
            dn: format!("uid=u{i},ou=People,dc=example,dc=com"),
            name: Some(format!("u{i}")),
            full_name: Some(format!("User {i}")),
            emails: Some(vec![format!("u{i}@example.com")]),
        })
        .collect();
    let opts = ldap_plan_options(true);
    let plan = plan_sync(&snap.users, entries.clone(), &opts);
    assert_eq!(plan.counts.created, 2500);
    let run = begin_sync_run(&env).await;
    // Someone changes a user after the snapshot: the plan is refused whole.
    env.roster
        .create_user(&admin, local("late", &[]))
        .await
        .unwrap();
    let e = env
        .store
        .apply_plan(
            run,
            snap.version,
            &plan.changes,
            &DefaultPrivileges::default(),
            &mut record(&plan),
            &Actor("t".into()),
            T0,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::StaleSnapshot), "{e}");
    assert_eq!(env.store.list_users(0, 10).await.unwrap().total, 3);
    // Planned again on a fresh snapshot it applies, in full.
    let snap = env.store.snapshot().await.unwrap();
    let plan = plan_sync(&snap.users, entries.clone(), &opts);
    env.store
        .apply_plan(
            run,
            snap.version,
            &plan.changes,
            &DefaultPrivileges::default(),
            &mut record(&plan),
            &Actor("t".into()),
            T0,
        )
        .await
        .unwrap();
    assert_eq!(env.store.list_users(0, 10).await.unwrap().total, 2503);
    let u = env
        .store
        .get_user(&roster_core::UserName::parse("u7").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.auth, AuthMethod::Directory);
    assert_eq!(u.directory_id.as_deref(), Some("id-7"));
    assert_eq!(u.privileges, BTreeSet::from([Privilege::LogOn]));
    assert_eq!(u.folders.len(), 1);
    assert_eq!(u.folders[0].rights, BTreeSet::from([FolderRight::Read]));
    // Re-planning the same entries: nothing to do.
    let snap = env.store.snapshot().await.unwrap();
    let again = plan_sync(&snap.users, entries, &opts);
    assert!(again.changes.is_empty(), "{:?}", again.counts);
    assert_eq!(again.counts.unchanged, 2500);
    // The apply recorded the run with its report.
    assert_eq!(
        env.store.get_run(run).await.unwrap().unwrap().status,
        RunStatus::Succeeded
    );
    assert_eq!(env.store.run_lines(run, 0, 10).await.unwrap().total, 2500);
    env.check().await;
}
on_both_backends!(a_plan_applies_whole_and_only_to_its_snapshot);

async fn two_runs_never_overlap(env: Env) {
    let first = env
        .store
        .begin_run(&new_run(RunKind::Sync), T0, T0.plus_seconds(-120))
        .await
        .unwrap();
    let e = env
        .store
        .begin_run(
            &new_run(RunKind::Preview),
            T0.plus_seconds(10),
            T0.plus_seconds(-110),
        )
        .await
        .unwrap_err();
    // The refusal says when a run whose process died would be taken for dead: its heartbeat (T0) plus the
    // stale limit (120 s).
    let text = e.to_string();
    match e {
        StoreError::RunInProgress {
            run_id, dead_after, ..
        } => {
            assert_eq!(run_id, first);
            assert_eq!(dead_after, T0.plus_seconds(120));
            assert!(text.contains(&T0.plus_seconds(120).to_string()), "{text}");
        }
        other => panic!("expected RunInProgress, got {other}"),
    }
    // A run whose process died (no heartbeat for longer than the stale limit) doesn't block forever.
    let later = T0.plus_seconds(600);
    let second = env
        .store
        .begin_run(&new_run(RunKind::Sync), later, later.plus_seconds(-120))
        .await
        .unwrap();
    assert_ne!(first, second);
    let old = env.store.get_run(first).await.unwrap().unwrap();
    assert_eq!(old.status, roster_store::RunStatus::Abandoned);
    env.store
        .finish_run(
            second,
            &roster_store::RunOutcome {
                status: roster_store::RunStatus::Failed,
                entries_read: 0,
                counts: None,
                error: Some("x".into()),
                error_code: None,
                phase: roster_store::RunPhase::Recording,
                lines: &[],
                planned_deletions: None,
                read_mode: None,
                read_state: None,
            },
            later,
        )
        .await
        .unwrap();
    env.check().await;
}
on_both_backends!(two_runs_never_overlap);

/// `n` made-up report lines: every action, every third without a DN, and reasons with quotes, a backslash and
/// non-ASCII text (the lines are stored as JSON).
fn made_up_lines(n: usize) -> Vec<ReportLine> {
    const ACTIONS: [ReportAction; 8] = [
        ReportAction::Created,
        ReportAction::Updated,
        ReportAction::Renamed,
        ReportAction::Linked,
        ReportAction::Deleted,
        ReportAction::Conflict,
        ReportAction::Skipped,
        ReportAction::Warning,
    ];
    (0..n)
        .map(|i| ReportLine {
            user: format!("user-{i}"),
            action: ACTIONS[i % ACTIONS.len()],
            reason: if i % 2 == 0 {
                format!("the \"mail\" value 'x\\y' of Zoë Ñúñez (名前) was ignored: {i}").into()
            } else {
                "created".into()
            },
            dn: (i % 3 != 0).then(|| format!("uid=user-{i},ou=People,dc=example,dc=com")),
        })
        .collect()
}

/// The run every test here starts: triggered by "test", actor "t", on an LDAP directory.
fn new_run(kind: RunKind) -> NewRun {
    NewRun {
        kind,
        triggered_by: "test".into(),
        actor: Actor("t".into()),
        directory_type: "ldap".into(),
    }
}

/// A plan's report, as `apply_plan` records it with the run.
fn record(plan: &roster_core::plan::SyncPlan) -> RunRecord {
    RunRecord {
        entries_read: 0,
        counts: plan.counts,
        lines: plan.lines.clone(),
        deleted_lines: plan.deleted_lines.clone(),
        approves: None,
        read_mode: None,
        read_state: None,
    }
}

/// Begins a sync run at `T0`.
async fn begin_sync_run(env: &Env) -> i64 {
    env.store
        .begin_run(&new_run(RunKind::Sync), T0, T0.plus_seconds(-60))
        .await
        .unwrap()
}

/// A sync run, finished with these lines.
async fn finished_run(env: &Env, lines: &[ReportLine]) -> i64 {
    let run = begin_sync_run(env).await;
    env.store
        .finish_run(
            run,
            &RunOutcome {
                status: RunStatus::Succeeded,
                entries_read: i64::try_from(lines.len()).unwrap(),
                counts: None,
                error: None,
                error_code: None,
                phase: roster_store::RunPhase::Recording,
                lines,
                planned_deletions: None,
                read_mode: None,
                read_state: None,
            },
            T0,
        )
        .await
        .unwrap();
    run
}

/// Pages of `run_lines` are the run's lines in order, wherever they fall in the stored chunks.
async fn assert_pages(env: &Env, run: i64, lines: &[ReportLine], pages: &[(i64, i64)]) {
    for &(offset, limit) in pages {
        let page = env.store.run_lines(run, offset, limit).await.unwrap();
        assert_eq!(
            page.total,
            i64::try_from(lines.len()).unwrap(),
            "({offset}, {limit})"
        );
        let from = usize::try_from(offset).unwrap().min(lines.len());
        let to = usize::try_from(offset + limit).unwrap().min(lines.len());
        assert_eq!(page.items.len(), to - from, "({offset}, {limit})");
        if let Some(i) = (0..to - from).find(|&i| page.items[i] != lines[from + i]) {
            panic!(
                "({offset}, {limit}): item {i} is {:?}, expected {:?}",
                page.items[i],
                lines[from + i]
            );
        }
    }
}

async fn a_runs_lines_read_back_page_by_page(env: Env) {
    let lines = made_up_lines(2500);
    let run = finished_run(&env, &lines).await;
    assert_pages(
        &env,
        run,
        &lines,
        &[
            (0, 100),
            // Across a chunk boundary.
            (950, 100),
            (999, 1002),
            // Past the end: the last 100; then nothing.
            (2400, 500),
            (3000, 10),
            (0, 100_000),
        ],
    )
    .await;
    let empty = finished_run(&env, &[]).await;
    let page = env.store.run_lines(empty, 0, 10).await.unwrap();
    assert_eq!(page.total, 0);
    assert!(page.items.is_empty());
    // The other run's lines are its own.
    assert_eq!(env.store.run_lines(run, 0, 10).await.unwrap().total, 2500);
    env.check().await;
}
on_both_backends!(a_runs_lines_read_back_page_by_page);

/// A database as Roster left it before migration 0002, when each report line had its own row: three
/// finished runs (ids 1, 2, 3 in a fresh database) with 1,500 lines (written in reverse order), 3 lines
/// (numbered with gaps) and none.
fn old_runs_sql(first: &[ReportLine], second: &[ReportLine]) -> String {
    let text = |s: &str| format!("'{}'", s.replace('\'', "''"));
    let mut sql = String::from(
        "INSERT INTO sync_runs (kind, triggered_by, actor, directory_type, status, started_at, heartbeat_at, finished_at) VALUES ",
    );
    let run = format!(
        "('sync', 'api', 'admin', 'ldap', 'succeeded', {0}, {0}, {0})",
        T0.0
    );
    sql += &[run.as_str(); 3].join(", ");
    sql += ";\nINSERT INTO sync_run_lines (run_id, seq, user_name, action, reason, dn) VALUES ";
    let rows: Vec<String> = (0..first.len())
        .rev()
        .map(|i| (1, i, &first[i]))
        .chain(second.iter().enumerate().map(|(i, l)| (2, 10 * (i + 1), l)))
        .map(|(run, seq, l)| {
            format!(
                "({run}, {seq}, {}, {}, {}, {})",
                text(&l.user),
                text(l.action.as_str()),
                text(&l.reason),
                l.dn.as_deref().map_or("NULL".into(), text)
            )
        })
        .collect();
    sql += &rows.join(", ");
    sql
}

/// For tests that prepare the database themselves (as an older Roster left it) and then open the store:
/// `$body(backend, url)` on SQLite (no url) and on a new PostgreSQL database.
macro_rules! on_both_databases {
    ($body:ident) => {
        mod $body {
            #[tokio::test]
            async fn sqlite() {
                crate::support::init();
                super::$body(crate::support::Backend::Sqlite, "").await;
            }
            #[tokio::test]
            async fn postgres() {
                crate::support::init();
                let url = roster_testkit::TestPostgres::shared()
                    .unwrap()
                    .create_database(stringify!($body))
                    .unwrap();
                super::$body(crate::support::Backend::Postgres, &url).await;
            }
        }
    };
}

/// The store on `dir`'s SQLite file or on the PostgreSQL database at `url`.
async fn open_store(
    backend: Backend,
    dir: &std::path::Path,
    url: &str,
) -> std::sync::Arc<dyn roster_store::Store> {
    match backend {
        Backend::Sqlite => std::sync::Arc::new(roster_store::SqliteStore::open(dir).await.unwrap()),
        Backend::Postgres => std::sync::Arc::new(roster_store::PgStore::open(url).await.unwrap()),
    }
}

/// Runs' report lines written before migration 0002 survive it.
async fn old_runs_keep_their_lines(backend: Backend, url: &str) {
    let first = made_up_lines(1500);
    let second = made_up_lines(3);
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../roster-store/migrations")
        .join(match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        });
    let migrator = sqlx::migrate::Migrator::new(migrations.as_path())
        .await
        .unwrap();
    let old = sqlx::raw_sql(sqlx::AssertSqlSafe(old_runs_sql(&first, &second)));
    let dir = tempfile::tempdir().unwrap();
    match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect_with(
                sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(dir.path().join("roster.db"))
                    .create_if_missing(true),
            )
            .await
            .unwrap();
            migrator.run_to(1, &pool).await.unwrap();
            old.execute(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            migrator.run_to(1, &pool).await.unwrap();
            old.execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
    let store = open_store(backend, dir.path(), url).await;
    let env = Env::with_store(store, dir).await;
    assert_pages(&env, 1, &first, &[(0, 100), (950, 100), (0, 2000)]).await;
    assert_pages(&env, 2, &second, &[(0, 10), (1, 1), (3, 1)]).await;
    assert_pages(&env, 3, &[], &[(0, 10)]).await;
    // New runs are written next to them.
    let lines = made_up_lines(1001);
    let run = finished_run(&env, &lines).await;
    assert_eq!(run, 4);
    assert_pages(&env, run, &lines, &[(0, 2000), (1000, 1)]).await;
    env.check().await;
}

on_both_databases!(old_runs_keep_their_lines);

/// A run's report lines are stored compressed (migration 0012 on SQLite, 0013 on PostgreSQL): `lines`
/// empty, `packed` a fraction of the JSON. A damaged chunk is an error that says so, for the pages that
/// read it only, and the consistency check names it.
async fn report_lines_are_stored_compressed(backend: Backend, url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(backend, dir.path(), url).await;
    let env = Env::with_store(store, dir).await;
    let lines = made_up_lines(2500);
    let run = finished_run(&env, &lines).await;
    let json: usize = lines
        .iter()
        .map(|l| l.user.len() + l.reason.len() + l.dn.as_deref().map_or(4, str::len) + 20)
        .sum();
    const SIZES: &str = "SELECT CAST(COALESCE(SUM(length(lines)), 0) AS BIGINT), COUNT(packed), \
         CAST(COALESCE(SUM(length(packed)), 0) AS BIGINT) FROM sync_run_line_chunks WHERE run_id = $1";
    const DAMAGE: &str =
        "UPDATE sync_run_line_chunks SET packed = $1 WHERE run_id = $2 AND chunk = 1";
    // The size in front says 2 GB: refused before anything is allocated.
    let damaged: Vec<u8> = vec![0x00, 0x00, 0x00, 0x80, 0x10, 0x41];
    let (text, packed_chunks, packed_bytes): (i64, i64, i64) = match backend {
        Backend::Sqlite => {
            let pool = sqlx_pool(&env.dir.path().join("roster.db")).await;
            let sizes = sqlx::query_as(SIZES)
                .bind(run)
                .fetch_one(&pool)
                .await
                .unwrap();
            sqlx::query(DAMAGE)
                .bind(&damaged)
                .bind(run)
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
            sizes
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let sizes = sqlx::query_as(SIZES)
                .bind(run)
                .fetch_one(&pool)
                .await
                .unwrap();
            sqlx::query(DAMAGE)
                .bind(&damaged)
                .bind(run)
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
            sizes
        }
    };
    assert_eq!((text, packed_chunks), (0, 3));
    let packed_bytes = usize::try_from(packed_bytes).unwrap();
    assert!(
        packed_bytes * 4 < json,
        "{packed_bytes} bytes packed for about {json} bytes of JSON"
    );
    // Chunk 0 and 2 still read; a page that needs chunk 1 fails, and says what is wrong.
    assert_pages(&env, run, &lines, &[(0, 1000), (2000, 500)]).await;
    let e = env.store.run_lines(run, 990, 20).await.unwrap_err();
    assert_eq!(e.code(), "ST012-invalid-value", "{e}");
    assert!(e.to_string().contains("report lines"), "{e}");
    let problems = env.store.check_consistency().await.unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.contains(&format!("run #{run}: chunk 1"))),
        "{problems:#?}"
    );
}

on_both_databases!(report_lines_are_stored_compressed);

/// Privileges stored a row each (before migration 0013 on SQLite, 0014 on PostgreSQL) move into their
/// user's row, and read back the same; a user without any keeps none. Users created afterwards are
/// written the new way, and a logon reads the new column.
async fn privileges_move_into_the_users_row(backend: Backend, url: &str) {
    let migrations = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../roster-store/migrations")
        .join(match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        });
    let migrator = sqlx::migrate::Migrator::new(migrations.as_path())
        .await
        .unwrap();
    let before = match backend {
        Backend::Sqlite => 12,
        Backend::Postgres => 13,
    };
    let old = "INSERT INTO users (id, name, name_key, full_name, auth, builtin_admin, created_at, updated_at) \
               VALUES (100, 'Old', 'old', 'Old Timer', 'local', FALSE, 0, 0), \
                      (101, 'Bare', 'bare', 'No Rights', 'local', FALSE, 0, 0); \
               INSERT INTO folders (id, name, owner_user_id, message_count, created_at) \
               VALUES (100, 'Old', 100, 0, 0), (101, 'Bare', 101, 0, 0); \
               INSERT INTO user_privileges (user_id, privilege) VALUES (100, 'log_on'), (100, 'archive_email'); \
               UPDATE meta SET value = 102 WHERE key = 'next_user_id'; \
               UPDATE meta SET value = 102 WHERE key = 'next_folder_id'";
    let dir = tempfile::tempdir().unwrap();
    match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect_with(
                sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(dir.path().join("roster.db"))
                    .create_if_missing(true),
            )
            .await
            .unwrap();
            migrator.run_to(before, &pool).await.unwrap();
            sqlx::raw_sql(old).execute(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            migrator.run_to(before, &pool).await.unwrap();
            sqlx::raw_sql(old).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
    let store = open_store(backend, dir.path(), url).await;
    let env = Env::with_store(store, dir).await;
    let old = env.store.get_user_by_id(100).await.unwrap().unwrap();
    assert_eq!(
        old.privileges,
        [Privilege::LogOn, Privilege::ArchiveEmail]
            .into_iter()
            .collect()
    );
    let bare = env.store.get_user_by_id(101).await.unwrap().unwrap();
    assert!(bare.privileges.is_empty(), "{:?}", bare.privileges);
    let name = |n: &str| roster_core::UserName::parse(n).unwrap();
    assert!(
        env.store
            .credentials(&name("old"))
            .await
            .unwrap()
            .unwrap()
            .can_log_on
    );
    assert!(
        !env.store
            .credentials(&name("bare"))
            .await
            .unwrap()
            .unwrap()
            .can_log_on
    );
    let admin = env.store.get_user(&name("admin")).await.unwrap().unwrap();
    assert_eq!(admin.privileges.len(), Privilege::ALL.len());
    env.check().await;
}

on_both_databases!(privileges_move_into_the_users_row);

#[tokio::test]
async fn a_database_from_a_newer_version_is_refused_with_advice() {
    let env = Env::sqlite().await;
    let path = env.dir.path().join("roster.db");
    drop(env.roster);
    drop(env.store);
    // Pretend a newer Roster applied migration 9999.
    let pool = sqlx_pool(&path).await;
    sqlx::query("INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time) VALUES (9999, 'future', CURRENT_TIMESTAMP, 1, X'00', 0)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let e = roster_store::SqliteStore::open(env.dir.path())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "ST009-database-newer", "{e}");
    assert!(e.to_string().contains("newer version of Roster"), "{e}");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("roster.db"),
        b"this is not sqlite at all, just some text",
    )
    .unwrap();
    let e = roster_store::SqliteStore::open(dir.path())
        .await
        .unwrap_err();
    assert_eq!(e.code(), "ST008-database-corrupt", "{e}");
    assert!(e.to_string().contains("restore it from a backup"), "{e}");
    // The file is left as it was.
    assert_eq!(
        std::fs::read(dir.path().join("roster.db")).unwrap(),
        b"this is not sqlite at all, just some text"
    );
}

#[tokio::test]
async fn a_locked_database_gives_a_clear_error_and_loses_nothing() {
    let env = Env::sqlite().await;
    let admin = env.local_admin();
    let path = env.dir.path().join("roster.db");
    // Another process holds the write lock for longer than the busy timeout.
    let pool = sqlx_pool(&path).await;
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut *conn)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let e = env
        .roster
        .create_user(&admin, local("kim", &[]))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "ST007-database-locked", "{e}");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(5),
        "it waits before giving up"
    );
    sqlx::query("ROLLBACK").execute(&mut *conn).await.unwrap();
    drop(conn);
    pool.close().await;
    assert!(env.roster.get_user(&admin, "kim").await.is_err());
    env.roster
        .create_user(&admin, local("kim", &[]))
        .await
        .unwrap();
    env.check().await;
}

async fn sqlx_pool(path: &std::path::Path) -> sqlx::SqlitePool {
    sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(
            sqlx::sqlite::SqliteConnectOptions::new()
                .filename(path)
                .busy_timeout(std::time::Duration::from_secs(1)),
        )
        .await
        .unwrap()
}

/// Review of 220154d/d7da6c3: the snapshot walks the addresses alongside the users (both in id order), and
/// apply_plan derives new users' privileges, own folders and folder access from their id range. Users with
/// and without addresses in every position (first, last, gaps left by deletions), a plan spanning more
/// than one insert chunk, and a second plan after a user was created outside it.
async fn the_snapshot_and_new_users_rows_match_each_user(env: Env) {
    let admin = env.local_admin();
    let people: [(&str, &[&str]); 7] = [
        ("first", &["f1@x.com", "F2@x.com"]),
        ("bare1", &[]),
        ("gone", &["g@x.com"]),
        ("mid", &["m@x.com"]),
        ("bare2", &[]),
        ("gone2", &[]),
        ("last", &["l3@x.com", "l1@x.com", "l2@x.com"]),
    ];
    for (name, emails) in people {
        env.roster
            .create_user(&admin, local(name, emails))
            .await
            .unwrap();
    }
    env.roster.delete_user(&admin, "gone").await.unwrap();
    env.roster.delete_user(&admin, "gone2").await.unwrap();
    let check_snapshot = |snap: &roster_store::Snapshot, expected_users: usize| {
        assert_eq!(snap.users.len(), expected_users);
        let ids: Vec<i64> = snap.users.iter().map(|u| u.id).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(ids, sorted, "one row per user, in id order");
    };
    let snap = env.store.snapshot().await.unwrap();
    check_snapshot(&snap, 6);
    for u in &snap.users {
        let stored = env.store.get_user(&u.name).await.unwrap().unwrap();
        assert_eq!(u.id, stored.id);
        assert_eq!(u.emails, stored.emails, "addresses of {}", u.name);
    }
    let last = snap
        .users
        .iter()
        .find(|u| u.name.as_str() == "last")
        .unwrap();
    assert_eq!(
        last.emails.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
        ["l3@x.com", "l1@x.com", "l2@x.com"]
    );

    let defaults = DefaultPrivileges {
        privileges: BTreeSet::from([
            Privilege::LogOn,
            Privilege::ArchiveEmail,
            Privilege::ChangePassword,
        ]),
        own_folder: BTreeSet::from([FolderRight::Read, FolderRight::Delete]),
    };
    let opts = ldap_plan_options(false);
    let entry = |i: usize, emails: usize| DirectoryEntry {
        id: format!("id-{i}"),
        dn: format!("uid=n{i},ou=People,dc=example,dc=com"),
        name: Some(format!("n{i}")),
        full_name: Some(format!("New {i}")),
        emails: Some((0..emails).map(|k| format!("n{i}.{k}@x.com")).collect()),
    };
    let mut entries: Vec<DirectoryEntry> = (0..1205).map(|i| entry(i, i % 3)).collect();
    for round in 0..2 {
        let plan = sync_entries(&env, entries.clone(), &opts, &defaults).await;
        assert!(plan.counts.created > 0, "round {round}");
        // A user made by hand between the runs takes the next id: the second run's range starts after it.
        env.roster
            .create_user(&admin, local(&format!("hand{round}"), &[]))
            .await
            .unwrap();
        entries.extend((1205 + round * 10..1215 + round * 10).map(|i| entry(i, 1)));
    }
    let folders = env.store.list_folders().await.unwrap();
    let snap = env.store.snapshot().await.unwrap();
    check_snapshot(&snap, 6 + 1205 + 10 + 2);
    for u in &snap.users {
        let stored = env.store.get_user(&u.name).await.unwrap().unwrap();
        assert_eq!(u.emails, stored.emails, "addresses of {}", u.name);
        let own: Vec<_> = folders
            .iter()
            .filter(|f| f.owner.as_deref() == Some(u.name.as_str()))
            .collect();
        assert_eq!(own.len(), 1, "{} owns one folder", u.name);
        assert_eq!(own[0].name, u.name.as_str());
        if u.name.as_str().starts_with('n') {
            assert_eq!(stored.privileges, defaults.privileges, "{}", u.name);
            assert_eq!(stored.folders.len(), 1, "{}: {:?}", u.name, stored.folders);
            assert_eq!(stored.folders[0].folder_id, own[0].id, "{}", u.name);
            assert_eq!(stored.folders[0].rights, defaults.own_folder, "{}", u.name);
        } else if !u.builtin_admin {
            // Made by hand: the defaults of their time (log_on + read), untouched by the runs.
            assert_eq!(
                stored.privileges,
                DefaultPrivileges::default().privileges,
                "{}",
                u.name
            );
            assert_eq!(stored.folders.len(), 1, "{}", u.name);
            assert_eq!(
                stored.folders[0].rights,
                DefaultPrivileges::default().own_folder,
                "{}",
                u.name
            );
        }
    }
    env.check().await;
}
on_both_backends!(the_snapshot_and_new_users_rows_match_each_user);

/// Plans `entries` against the current users and applies the plan in a sync run of its own, recording its
/// lines.
async fn sync_entries(
    env: &Env,
    entries: Vec<DirectoryEntry>,
    opts: &PlanOptions,
    defaults: &DefaultPrivileges,
) -> roster_core::plan::SyncPlan {
    let snap = env.store.snapshot().await.unwrap();
    let plan = plan_sync(&snap.users, entries, opts);
    let run = begin_sync_run(env).await;
    env.store
        .apply_plan(
            run,
            snap.version,
            &plan.changes,
            defaults,
            &mut record(&plan),
            &Actor("t".into()),
            T0,
        )
        .await
        .unwrap();
    plan
}

fn person(name: &str) -> DirectoryEntry {
    DirectoryEntry {
        id: format!("id-{name}"),
        dn: format!("uid={name},ou=People,dc=example,dc=com"),
        name: Some(name.into()),
        full_name: Some(format!("{name} Example")),
        emails: Some(vec![format!("{name}@example.com")]),
    }
}

/// SQLite applies a sync's plan on a connection that doesn't enforce foreign keys, so a user the sync
/// deletes must take every row that refers to it along explicitly: addresses, privileges, sessions, its
/// access to others' folders, and everyone's access to its own folder when that folder goes. (`check`
/// runs `PRAGMA foreign_key_check` on SQLite.)
async fn a_user_deleted_by_a_sync_takes_its_rows_with_it(env: Env) {
    let admin = env.local_admin();
    let opts = ldap_plan_options(true);
    let defaults = DefaultPrivileges::default();
    sync_entries(&env, vec![person("dora"), person("ed")], &opts, &defaults).await;
    env.roster
        .create_user(&admin, local("fay", &[]))
        .await
        .unwrap();
    let grant = |folder: &str| roster_app::FolderRightsInput {
        folder: folder.into(),
        rights: BTreeSet::from([FolderRight::Read]),
    };
    for (user, folders) in [
        ("dora", ["ed", "fay"]),
        ("ed", ["dora", "fay"]),
        ("fay", ["dora", "ed"]),
    ] {
        env.roster
            .set_privileges(
                &admin,
                user,
                PrivilegesInput {
                    privileges: BTreeSet::from([Privilege::LogOn, Privilege::ExportEmail]),
                    folders: folders.iter().map(|f| grant(f)).collect(),
                },
            )
            .await
            .unwrap();
    }
    // Ed's folder holds messages, so it stays when ed goes; dora's is empty and goes.
    env.roster.set_message_count(&admin, "ed", 3).await.unwrap();
    let dora = env.roster.get_user(&admin, "dora").await.unwrap();
    env.store
        .create_session("dora-session", dora.id, T0, T0.plus_seconds(3600))
        .await
        .unwrap();

    let plan = sync_entries(&env, vec![], &opts, &defaults).await;
    assert_eq!(plan.counts.deleted, 2, "{:?}", plan.lines);

    assert!(
        env.store
            .session_user("dora-session", T0)
            .await
            .unwrap()
            .is_none()
    );
    let fay = env.roster.get_user(&admin, "fay").await.unwrap();
    let fay_folders: Vec<&str> = fay.folders.iter().map(|f| f.folder.as_str()).collect();
    assert_eq!(
        fay_folders,
        ["ed", "fay"],
        "access to dora's deleted folder went with it"
    );
    let folders = env.roster.list_folders(&admin).await.unwrap();
    let names: Vec<&str> = folders.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["admin", "ed", "fay"]);
    // The addresses are free again.
    sync_entries(&env, vec![person("dora")], &opts, &defaults).await;
    let dora = env.roster.get_user(&admin, "dora").await.unwrap();
    assert_eq!(dora.privileges, BTreeSet::from([Privilege::LogOn]));
    assert_eq!(dora.folders.len(), 1);
    env.check().await;
}
on_both_backends!(a_user_deleted_by_a_sync_takes_its_rows_with_it);

/// SQLite applies a sync's plan on a connection of its own, through SQLite's own API rather than sqlx's
/// pool (roster-store `sqlite/native.rs`, issue 26): another process's write lock makes it wait up to the
/// busy timeout, not fail at once; held for longer, the apply fails as locked, applies nothing and leaves
/// the run running, so the same plan applies once the lock is let go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_waits_for_another_process_to_let_go_of_the_database() {
    let env = Env::sqlite().await;
    let opts = ldap_plan_options(true);
    let snap = env.store.snapshot().await.unwrap();
    let plan = plan_sync(&snap.users, vec![person("gil"), person("hal")], &opts);
    let run = begin_sync_run(&env).await;
    let pool = sqlx_pool(&env.dir.path().join("roster.db")).await;
    let mut holder = pool.acquire().await.unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let apply = || {
        let mut record = record(&plan);
        let changes = &plan.changes;
        let store = &env.store;
        async move {
            store
                .apply_plan(
                    run,
                    snap.version,
                    changes,
                    &DefaultPrivileges::default(),
                    &mut record,
                    &Actor("t".into()),
                    T0,
                )
                .await
        }
    };
    let started = std::time::Instant::now();
    let e = apply().await.unwrap_err();
    assert_eq!(e.code(), "ST007-database-locked", "{e}");
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(5),
        "it waited before giving up: {:?}",
        started.elapsed()
    );
    assert_eq!(env.store.list_users(0, 10).await.unwrap().total, 1);
    assert_eq!(
        env.store.get_run(run).await.unwrap().unwrap().status,
        RunStatus::Running
    );
    // Let go a moment after the apply begins this time: it waits, then applies.
    let release = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        sqlx::query("ROLLBACK").execute(&mut *holder).await.unwrap();
        drop(holder);
        pool.close().await;
    });
    let started = std::time::Instant::now();
    apply().await.unwrap();
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(1000),
        "it waited for the lock: {:?}",
        started.elapsed()
    );
    release.await.unwrap();
    assert_eq!(env.store.list_users(0, 10).await.unwrap().total, 3);
    let shown = env.store.get_run(run).await.unwrap().unwrap();
    assert_eq!(shown.status, RunStatus::Succeeded);
    assert_eq!(env.store.run_lines(run, 0, 10).await.unwrap().total, 2);
    env.check().await;
}

/// The check that `a_user_deleted_by_a_sync_takes_its_rows_with_it` relies on does find a row that refers
/// to nothing.
#[tokio::test]
async fn the_consistency_check_finds_rows_that_refer_to_nothing() {
    let env = Env::sqlite().await;
    env.check().await;
    // As the apply connection does: without enforcing foreign keys.
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(
        &sqlx::sqlite::SqliteConnectOptions::new()
            .filename(env.dir.path().join("roster.db"))
            .foreign_keys(false),
    )
    .await
    .unwrap();
    sqlx::query("INSERT INTO user_emails (address_key, user_id, address, position) VALUES ('x@example.com', 4242, 'x@example.com', 0)")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::Connection::close(conn).await.unwrap();
    let problems = env.store.check_consistency().await.unwrap();
    assert_eq!(
        problems,
        ["user_emails rows whose user_id refers to no users row: 4242"]
    );
}

/// Regression (planner review of issue 4): name and address keys were lowercase, not case-folded, so
/// "ΝΙΚΟΣ" (whose final Σ lowercases to ς) and "νικοσ" were two users. Keys stored before the change are
/// re-keyed once when the store opens; a user whose new key another already holds keeps the old one and
/// the store still opens.
async fn keys_made_before_case_folding_are_refolded_once(backend: Backend, url: &str) {
    const OLD_NAME_KEY: &str = "\u{3bd}\u{3b9}\u{3ba}\u{3bf}\u{3c2}"; // νικος, with the final ς
    const NEW_NAME_KEY: &str = "\u{3bd}\u{3b9}\u{3ba}\u{3bf}\u{3c3}"; // νικοσ
    let dir = tempfile::tempdir().unwrap();
    let open = || open_store(backend, dir.path(), url);
    // Raw SQL, as an older Roster would have left the rows.
    let db_file = dir.path().join("roster.db");
    let sql = |statement: String| {
        let db_file = db_file.clone();
        async move {
            match backend {
                Backend::Sqlite => {
                    let pool = sqlx_pool(&db_file).await;
                    sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                        .execute(&pool)
                        .await
                        .unwrap();
                    pool.close().await;
                }
                Backend::Postgres => {
                    let pool = sqlx::PgPool::connect(url).await.unwrap();
                    sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
                        .execute(&pool)
                        .await
                        .unwrap();
                    pool.close().await;
                }
            }
        }
    };
    {
        let env = Env::with_store(open().await, tempfile::tempdir().unwrap()).await;
        env.roster
            .create_user(
                &env.local_admin(),
                local(
                    "\u{39d}\u{399}\u{39a}\u{39f}\u{3a3}",
                    &["\u{3bd}\u{3b9}\u{3ba}\u{3bf}\u{3a3}@example.com"],
                ),
            )
            .await
            .unwrap();
    }
    sql(format!(
        "UPDATE users SET name_key = '{OLD_NAME_KEY}' WHERE name_key = '{NEW_NAME_KEY}'; \
         UPDATE user_emails SET address_key = '{OLD_NAME_KEY}@example.com'; \
         UPDATE users SET name_skeleton = NULL; \
         DELETE FROM meta WHERE key = 'keys_folded';"
    ))
    .await;
    // (The skeletons, issue 26, came with keys_folded 2: a database from before has none; `check`
    // below finds any user without the right one.)
    let store = open().await;
    let found = store
        .get_user(&roster_core::names::UserName::parse(NEW_NAME_KEY).unwrap())
        .await
        .unwrap()
        .expect("found by its case-folded name after the re-key");
    assert_eq!(found.name.as_str(), "\u{39d}\u{399}\u{39a}\u{39f}\u{3a3}");
    let env = Env::with_store(store, tempfile::tempdir().unwrap()).await;
    env.check().await;
    // Two users that only the old keys told apart: the one whose new key is taken keeps its old key,
    // and the store still opens (refusing to start would lock everyone out).
    env.roster
        .create_user(&env.local_admin(), local("other", &[]))
        .await
        .unwrap();
    drop(env);
    sql(format!(
        "UPDATE users SET name = 'nikos-twin', name_key = 'nikos-twin' WHERE name_key = '{NEW_NAME_KEY}'; \
         UPDATE users SET name = '{NEW_NAME_KEY}', name_key = '{NEW_NAME_KEY}' WHERE name_key = 'other'; \
         UPDATE users SET name = '\u{39d}\u{399}\u{39a}\u{39f}\u{3a3}', name_key = '{OLD_NAME_KEY}' WHERE name_key = 'nikos-twin'; \
         DELETE FROM meta WHERE key = 'keys_folded';"
    ))
    .await;
    let store = open().await;
    let found = store
        .get_user(&roster_core::names::UserName::parse(NEW_NAME_KEY).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        found.name.as_str(),
        NEW_NAME_KEY,
        "the user that held the key keeps it"
    );
}
on_both_databases!(keys_made_before_case_folding_are_refolded_once);

/// Issue 19, item 7: a SIGKILL after the apply's commit but before the run was recorded (a separate
/// transaction) left the users applied, the run shown as abandoned ("nothing … was applied") and an audit
/// line pointing to a report that didn't exist. The outcome and the report are now written in the apply's
/// transaction: the process dies right after `apply_plan` here, and the run is recorded all the same.
async fn issue_19_7_a_sync_is_recorded_in_the_transaction_that_applies_it(env: Env) {
    let snap = env.store.snapshot().await.unwrap();
    let opts = ldap_plan_options(false);
    let plan = plan_sync(&snap.users, vec![person("ann"), person("bob")], &opts);
    let run = begin_sync_run(&env).await;
    let mut report = RunRecord {
        entries_read: 2,
        ..record(&plan)
    };
    env.store
        .apply_plan(
            run,
            snap.version,
            &plan.changes,
            &DefaultPrivileges::default(),
            &mut report,
            &Actor("t".into()),
            T0,
        )
        .await
        .unwrap();
    // The process dies here: nothing after the apply runs. Later, another run takes over.
    let later = T0.plus_seconds(600);
    let next = env
        .store
        .begin_run(&new_run(RunKind::Preview), later, later.plus_seconds(-120))
        .await
        .unwrap();
    assert_eq!(env.store.list_users(0, 10).await.unwrap().total, 3);
    let recorded = env.store.get_run(run).await.unwrap().unwrap();
    assert_eq!(
        recorded.status,
        RunStatus::Succeeded,
        "{:?}",
        recorded.error
    );
    assert_eq!(recorded.entries_read, 2);
    assert_eq!(recorded.counts, Some(plan.counts));
    assert_eq!(recorded.finished_at, Some(T0));
    let lines = env.store.run_lines(run, 0, 10).await.unwrap();
    assert_eq!(lines.items, plan.lines);
    // The audit line's report exists.
    let audit = env.store.list_audit(0, 10).await.unwrap().items;
    assert!(
        audit
            .iter()
            .any(|a| a.action == "directory.sync" && a.target == format!("run #{run}")),
        "{audit:?}"
    );
    // A run that really was abandoned doesn't claim more than is known: it committed nothing, since a
    // sync's changes and its outcome are one transaction.
    let abandoned_at = later.plus_seconds(600);
    let last = env
        .store
        .begin_run(
            &new_run(RunKind::Preview),
            abandoned_at,
            abandoned_at.plus_seconds(-120),
        )
        .await
        .unwrap();
    let abandoned = env.store.get_run(next).await.unwrap().unwrap();
    assert_eq!(abandoned.status, RunStatus::Abandoned);
    assert!(
        abandoned
            .error
            .as_deref()
            .unwrap()
            .contains("applied nothing"),
        "{abandoned:?}"
    );
    env.store
        .finish_run(
            last,
            &RunOutcome {
                status: RunStatus::Failed,
                entries_read: 0,
                counts: None,
                error: Some("x".into()),
                error_code: None,
                phase: roster_store::RunPhase::Recording,
                lines: &[],
                planned_deletions: None,
                read_mode: None,
                read_state: None,
            },
            abandoned_at,
        )
        .await
        .unwrap();
    env.check().await;
}
on_both_backends!(issue_19_7_a_sync_is_recorded_in_the_transaction_that_applies_it);

/// Issue 19, item 3 (cancel, in the store): a cancel request is stored with its audit line and seen by
/// the run's heartbeat; the apply refuses a run whose cancel was asked for (nothing is applied); a run
/// that has finished can't be cancelled; a run whose process is gone is cancelled at once.
async fn a_cancel_request_is_stored_audited_and_stops_the_apply(env: Env) {
    use roster_store::{CancelOutcome, RunControl, RunPhase};
    let snap = env.store.snapshot().await.unwrap();
    let opts = ldap_plan_options(false);
    let plan = plan_sync(&snap.users, vec![person("ann")], &opts);
    let run = begin_sync_run(&env).await;
    assert_eq!(
        env.store
            .heartbeat_run(run, 7, RunPhase::Planning, T0.plus_seconds(5))
            .await
            .unwrap(),
        RunControl::Continue
    );
    let shown = env.store.get_run(run).await.unwrap().unwrap();
    assert_eq!(
        (shown.entries_read, shown.phase),
        (7, Some(RunPhase::Planning))
    );
    let who = Actor("cli:ops".into());
    assert_eq!(
        env.store
            .request_cancel(run, &who, T0.plus_seconds(6), T0.plus_seconds(-114))
            .await
            .unwrap(),
        CancelOutcome::Requested
    );
    assert_eq!(
        env.store
            .heartbeat_run(run, 7, RunPhase::Planning, T0.plus_seconds(10))
            .await
            .unwrap(),
        RunControl::CancelRequested {
            by: "cli:ops".into()
        }
    );
    let e = env
        .store
        .apply_plan(
            run,
            snap.version,
            &plan.changes,
            &DefaultPrivileges::default(),
            &mut record(&plan),
            &Actor("t".into()),
            T0.plus_seconds(11),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "ST015-cancel-requested", "{e}");
    assert_eq!(
        env.store.list_users(0, 10).await.unwrap().total,
        1,
        "nothing applied"
    );
    let shown = env.store.get_run(run).await.unwrap().unwrap();
    assert_eq!(shown.cancel_requested_by.as_deref(), Some("cli:ops"));
    assert_eq!(shown.cancel_requested_at, Some(T0.plus_seconds(6)));
    env.store
        .finish_run(
            run,
            &RunOutcome {
                status: RunStatus::Cancelled,
                entries_read: 7,
                counts: None,
                error: Some("cancelled by cli:ops".into()),
                error_code: Some("AP016-run-cancelled".into()),
                phase: roster_store::RunPhase::Recording,
                lines: &[],
                planned_deletions: None,
                read_mode: None,
                read_state: None,
            },
            T0.plus_seconds(12),
        )
        .await
        .unwrap();
    let shown = env.store.get_run(run).await.unwrap().unwrap();
    assert_eq!(shown.status, RunStatus::Cancelled);
    assert_eq!(shown.error_code.as_deref(), Some("AP016-run-cancelled"));
    // Too late once it has finished; an unknown run is not found.
    let e = env
        .store
        .request_cancel(run, &who, T0.plus_seconds(13), T0.plus_seconds(-107))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "ST014-run-finished", "{e}");
    assert!(e.to_string().contains("already cancelled"), "{e}");
    let e = env
        .store
        .request_cancel(999, &who, T0.plus_seconds(13), T0.plus_seconds(-107))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound(_)), "{e}");
    // The heartbeat of a run that isn't running any more says so.
    assert_eq!(
        env.store
            .heartbeat_run(run, 7, RunPhase::Planning, T0.plus_seconds(14))
            .await
            .unwrap(),
        RunControl::NotRunning
    );
    // A run whose process died (its heartbeat is stale) is cancelled at once.
    let orphan = env
        .store
        .begin_run(
            &new_run(RunKind::Preview),
            T0.plus_seconds(20),
            T0.plus_seconds(-100),
        )
        .await
        .unwrap();
    let at = T0.plus_seconds(500);
    assert_eq!(
        env.store
            .request_cancel(orphan, &who, at, at.plus_seconds(-120))
            .await
            .unwrap(),
        CancelOutcome::Cancelled
    );
    let shown = env.store.get_run(orphan).await.unwrap().unwrap();
    assert_eq!(shown.status, RunStatus::Cancelled);
    assert_eq!(shown.finished_at, Some(at));
    // Each accepted request has its audit line.
    let audit = env.store.list_audit(0, 10).await.unwrap().items;
    let cancels: Vec<&str> = audit
        .iter()
        .filter(|a| a.action == "directory.run.cancel" && a.actor == "cli:ops")
        .map(|a| a.target.as_str())
        .collect();
    assert_eq!(cancels, [format!("run #{orphan}"), format!("run #{run}")]);
    env.check().await;
}
on_both_backends!(a_cancel_request_is_stored_audited_and_stops_the_apply);

/// Issue 19: names and addresses stored before the rules for new ones (a `/` in a name, a 300-byte
/// address: the limit was 320 bytes) still load, and their users can still be found, changed, planned
/// and deleted. Refusing them on reading would fail every user list and every sync.
#[tokio::test]
async fn issue_19_values_stored_before_the_new_rules_still_load() {
    let env = Env::sqlite().await;
    env.roster
        .create_user(&env.local_admin(), local("pat", &["pat@example.com"]))
        .await
        .unwrap();
    let long = format!("{}@example.com", "a".repeat(300 - "@example.com".len()));
    // The name's skeleton as the store keeps it (issue 26): written with the name, as the store would.
    let skeleton = roster_core::names::stored_skeleton("dom/pat").expect("m has a prototype");
    let pool = sqlx_pool(&env.dir.path().join("roster.db")).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "UPDATE users SET name = 'dom/pat', name_key = 'dom/pat', name_skeleton = '{skeleton}' WHERE name_key = 'pat'; \
         UPDATE folders SET name = 'dom/pat' WHERE name = 'pat'; \
         UPDATE user_emails SET address = '{long}', address_key = '{long}';"
    )))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let snapshot = env.store.snapshot().await.unwrap();
    assert_eq!(snapshot.users.len(), 2);
    let plan = plan_sync(&snapshot.users, vec![], &ldap_plan_options(true));
    assert!(plan.changes.is_empty());
    let me = env.local_admin();
    assert_eq!(env.roster.list_users(&me, 0, 10).await.unwrap().total, 2);
    let pat = env.roster.get_user(&me, "DOM/Pat").await.unwrap();
    assert_eq!(pat.emails[0].as_str(), long);
    env.roster
        .update_user(
            &me,
            "dom/pat",
            roster_app::UserUpdateInput {
                full_name: Some("Pat".into()),
                emails: None,
            },
        )
        .await
        .unwrap();
    env.check().await;
    env.roster.delete_user(&me, "dom/pat").await.unwrap();
    env.check().await;
}

/// The audit log filtered in the database (the console's and the API's filter): who, what and which each
/// contain their text, ignoring the case of ASCII letters; `%` and `_` are themselves; the filters add
/// up; an empty text filters nothing; the database pages what is kept.
async fn audit_lines_are_filtered_by_who_what_and_which(env: Env) {
    let store = &env.store;
    let written = [
        ("alice", "user.privileges", "bob"),
        ("alice", "user.create", "carol"),
        ("cli:root", "user.privileges", "Bob"),
        ("bob", "logon", "bob"),
        ("bob", "logon.failed", "bob"),
        ("Zoë", "user.update", "100%_sure"),
        ("zoe", "user.update", "100x sure"),
    ];
    for (i, (actor, action, target)) in written.iter().enumerate() {
        store
            .audit(
                &Actor((*actor).to_owned()),
                action,
                target,
                "details",
                T0.plus_seconds(i64::try_from(i).unwrap()),
            )
            .await
            .unwrap();
    }
    let filter = |actor: &str, action: &str, target: &str| roster_store::AuditFilter {
        actor: Some(actor.to_owned()),
        action: Some(action.to_owned()),
        target: Some(target.to_owned()),
    };
    let lines = |page: roster_store::Page<roster_core::user::AuditEntry>| {
        (
            page.total,
            page.items
                .iter()
                .map(|e| format!("{} {} {}", e.actor, e.action, e.target))
                .collect::<Vec<_>>(),
        )
    };
    let search = |f: roster_store::AuditFilter, offset: i64, limit: i64| {
        let store = store.clone();
        async move { lines(store.search_audit(&f, offset, limit).await.unwrap()) }
    };
    // Who, ignoring case; newest first.
    assert_eq!(
        search(filter("ALICE", "", ""), 0, 100).await,
        (
            2,
            vec![
                "alice user.create carol".into(),
                "alice user.privileges bob".into()
            ]
        )
    );
    // What: a part of the action (every logon line) or the whole of it.
    assert_eq!(
        search(filter("", "logon", ""), 0, 100).await,
        (
            2,
            vec!["bob logon.failed bob".into(), "bob logon bob".into()]
        )
    );
    assert_eq!(
        search(filter("", "user.privileges", ""), 0, 100).await,
        (
            2,
            vec![
                "cli:root user.privileges Bob".into(),
                "alice user.privileges bob".into()
            ]
        )
    );
    // Which, ignoring case; with who, both must hold.
    assert_eq!(search(filter("", "", "bob"), 0, 100).await.0, 4);
    assert_eq!(
        search(filter(" alice ", "", "BOB"), 0, 100).await,
        (1, vec!["alice user.privileges bob".into()])
    );
    // `%` and `_` are themselves, not wildcards.
    for target in ["100%", "%", "_", "%_s"] {
        assert_eq!(
            search(filter("", "", target), 0, 100).await,
            (1, vec!["Zoë user.update 100%_sure".into()]),
            "{target}"
        );
    }
    // A name with a letter beyond ASCII matches as written, on both backends.
    assert_eq!(
        search(filter("zoë", "", ""), 0, 100).await,
        (1, vec!["Zoë user.update 100%_sure".into()])
    );
    // Nothing matches: an empty page.
    assert_eq!(search(filter("nobody", "", ""), 0, 100).await, (0, vec![]));
    // Empty texts and no texts filter nothing: the whole log (with the built-in administrator's line).
    let all = search(filter("", " ", ""), 0, 100).await;
    assert_eq!(all.0, 8, "{all:?}");
    assert_eq!(
        all,
        lines(store.list_audit(0, 100).await.unwrap()),
        "the same as the unfiltered listing"
    );
    assert_eq!(
        search(roster_store::AuditFilter::default(), 0, 100).await,
        all
    );
    // The database pages what the filter keeps: the total is of every match.
    assert_eq!(
        search(filter("", "", "bob"), 1, 2).await,
        (
            4,
            vec![
                "bob logon bob".into(),
                "cli:root user.privileges Bob".into()
            ]
        )
    );
    assert_eq!(search(filter("", "", "bob"), 10, 2).await, (4, vec![]));
    // Through the use case: for administrators only.
    let page = env
        .roster
        .search_audit_log(&env.local_admin(), &filter("alice", "create", ""), 0, 10)
        .await
        .unwrap();
    assert_eq!(page.total, 1);
    env.check().await;
}
on_both_backends!(audit_lines_are_filtered_by_who_what_and_which);

/// Issue 26: a run that read only what changed loads the users a change can touch by the link, the name,
/// the name's look-alikes and the addresses; the store's query must select exactly the users
/// `Touched::touches` selects (the planner's tests show that those are enough for the same plan), with
/// each user whole (addresses in order), over more than one chunk of ids.
async fn the_touched_snapshot_is_the_users_a_change_touches(env: Env) {
    let admin = env.local_admin();
    // Local users: one whose name is a look-alike of "admin" (Cyrillic а), one with two addresses.
    env.roster
        .create_user(&admin, local("\u{430}lice", &["a1@x.com", "a2@x.com"]))
        .await
        .unwrap();
    env.roster
        .create_user(&admin, local("rnary", &["m@x.com"]))
        .await
        .unwrap();
    let opts = ldap_plan_options(false);
    let entries: Vec<DirectoryEntry> = (0..2500).map(|i| person(&format!("p{i}"))).collect();
    sync_entries(&env, entries, &opts, &DefaultPrivileges::default()).await;
    let all = env.store.snapshot().await.unwrap();
    let changes: Vec<(Vec<DirectoryEntry>, Vec<&str>)> = vec![
        // Nothing.
        (vec![], vec![]),
        // Ids, changed and gone.
        (
            (0..600)
                .step_by(2)
                .map(|i| person(&format!("p{i}")))
                .collect(),
            vec!["id-p1", "id-p2499", "id-nobody"],
        ),
        // A new entry with a name held by a local user, in another case, and an address of hers.
        (
            vec![DirectoryEntry {
                emails: Some(vec!["A2@x.com".into()]),
                ..person("new")
            }],
            vec![],
        ),
        (vec![person("\u{410}LICE")], vec![]),
        // Look-alikes both ways: a Latin alice (the Cyrillic one's skeleton), and "mary" (rnary's).
        (vec![person("alice"), person("mary")], vec![]),
        // A look-alike of the built-in admin.
        (vec![person("adm\u{456}n")], vec![]),
    ];
    for (changed, gone) in changes {
        let touched = roster_core::plan::Touched::of("ldap", &changed, gone.iter().copied());
        let snap = env.store.snapshot_touched(&touched).await.unwrap();
        assert_eq!(snap.version, all.version);
        let expected: Vec<&roster_core::plan::CurrentUser> =
            all.users.iter().filter(|u| touched.touches(u)).collect();
        let got: Vec<&roster_core::plan::CurrentUser> = snap.users.iter().collect();
        assert_eq!(got, expected, "{touched:?}");
        assert!(changed.is_empty() || !got.is_empty(), "{touched:?}");
    }
    // Gone ids over more than one chunk of users.
    let gone: Vec<String> = (0..1500).map(|i| format!("id-p{i}")).collect();
    let touched = roster_core::plan::Touched::of("ldap", &[], gone.iter().map(String::as_str));
    let snap = env.store.snapshot_touched(&touched).await.unwrap();
    assert_eq!(snap.users.len(), 1500);
    assert!(snap.users.iter().all(|u| touched.touches(u)));
    assert_eq!(
        snap.users,
        all.users
            .iter()
            .filter(|u| touched.touches(u))
            .cloned()
            .collect::<Vec<_>>()
    );
    // A change with more keys than one statement takes loads everyone (a superset plans the same).
    let changed: Vec<DirectoryEntry> = (0..2500).map(|i| person(&format!("p{i}"))).collect();
    let touched = roster_core::plan::Touched::of("ldap", &changed, []);
    assert!(touched.len() > 4000);
    assert_eq!(
        env.store.snapshot_touched(&touched).await.unwrap().users,
        all.users
    );
    assert_eq!(env.store.count_linked("ldap").await.unwrap(), 2500);
    assert_eq!(env.store.count_linked("ldif").await.unwrap(), 0);
    env.check().await;
}
on_both_backends!(the_touched_snapshot_is_the_users_a_change_touches);

/// Issue 26, item 6: PostgreSQL writes a sync's rows in bulk (`COPY` sent a megabyte at a time, arrays of
/// 10,000 rows), SQLite in statements of 1000 rows. A sync of 10,050 users with none to three addresses
/// each, then one that changes every user (two of them swap names from different chunks, many get other
/// addresses), then one that deletes them all, cross every boundary on both; the store must hold exactly
/// what the plans said. Full names and DNs with a backslash, and a full name that reads `\N` (`COPY`'s
/// NULL), come back as they went in.
async fn syncs_of_many_users_cross_every_bulk_boundary(env: Env) {
    const N: usize = 10_050;
    let entry = |i: usize, round: usize| {
        let name = match (round, i) {
            (1, 3) => "n10040".to_owned(),
            (1, 10_040) => "n3".to_owned(),
            _ => format!("n{i}"),
        };
        DirectoryEntry {
            id: format!("id-{i}"),
            dn: if i.is_multiple_of(3) {
                format!("uid=n{i}\\,x,ou=People,dc=example,dc=com")
            } else {
                format!("uid=n{i},ou=People,dc=example,dc=com")
            },
            name: Some(name),
            full_name: Some(match i % 5 {
                0 => format!("Back\\slash {i} r{round}"),
                1 => "\\N".to_owned(),
                _ => format!("Person {i} r{round}"),
            }),
            emails: Some(
                (0..(i + round) % 4)
                    .map(|k| {
                        format!(
                            "n{i}.{k}.r{}@x.com",
                            if i.is_multiple_of(2) { round } else { 0 }
                        )
                    })
                    .collect(),
            ),
        }
    };
    let opts = ldap_plan_options(true);
    let defaults = DefaultPrivileges::default();
    let check_users = |snap: &roster_store::Snapshot, entries: &[DirectoryEntry]| {
        let synced: Vec<&roster_core::plan::CurrentUser> =
            snap.users.iter().filter(|u| u.link.is_some()).collect();
        assert_eq!(synced.len(), entries.len());
        let by_id: std::collections::HashMap<&str, &DirectoryEntry> =
            entries.iter().map(|e| (e.id.as_str(), e)).collect();
        for u in synced {
            let link = u.link.as_ref().unwrap();
            let e = by_id[link.id.as_str()];
            assert_eq!(Some(u.name.as_str()), e.name.as_deref(), "{}", e.id);
            assert_eq!(Some(&u.full_name), e.full_name.as_ref(), "{}", e.id);
            assert_eq!(link.dn.as_deref(), Some(e.dn.as_str()), "{}", e.id);
            let emails: Vec<&str> = u.emails.iter().map(|a| a.as_str()).collect();
            let expected: Vec<&str> = e.emails.iter().flatten().map(String::as_str).collect();
            assert_eq!(emails, expected, "{}", e.id);
        }
    };
    let first: Vec<DirectoryEntry> = (0..N).map(|i| entry(i, 0)).collect();
    let plan = sync_entries(&env, first.clone(), &opts, &defaults).await;
    assert_eq!(plan.counts.created, N as u64);
    check_users(&env.store.snapshot().await.unwrap(), &first);
    env.check().await;

    let second: Vec<DirectoryEntry> = (0..N).map(|i| entry(i, 1)).collect();
    let plan = sync_entries(&env, second.clone(), &opts, &defaults).await;
    assert_eq!(plan.counts.renamed, 2, "the swap");
    assert!(plan.counts.updated > 10_000, "{:?}", plan.counts);
    check_users(&env.store.snapshot().await.unwrap(), &second);
    let folders = env.store.list_folders().await.unwrap();
    for name in ["n3", "n10040"] {
        assert_eq!(
            folders
                .iter()
                .filter(|f| f.owner.as_deref() == Some(name))
                .map(|f| f.name.as_str())
                .collect::<Vec<_>>(),
            [name],
            "the own folder follows the rename"
        );
    }
    env.check().await;

    let plan = sync_entries(&env, Vec::new(), &opts, &defaults).await;
    assert_eq!(plan.counts.deleted, N as u64);
    check_users(&env.store.snapshot().await.unwrap(), &[]);
    assert_eq!(
        env.store.list_folders().await.unwrap().len(),
        1,
        "the admin's own"
    );
    env.check().await;
}
on_both_backends!(syncs_of_many_users_cross_every_bulk_boundary);

/// Issue 26, item 6: a plan whose rows the database refuses (two new users whose names differ only in
/// case; an address another user holds), coming after thousands of rows it accepted, fails the apply as a
/// whole: no user, address, folder or privilege of it stays, the version doesn't move, and the run can be
/// ended as failed. On PostgreSQL the refused row is in the middle of one bulk write (`COPY`).
async fn an_apply_the_database_refuses_writes_nothing(env: Env) {
    let opts = ldap_plan_options(false);
    let defaults = DefaultPrivileges::default();
    sync_entries(&env, vec![person("alice")], &opts, &defaults).await;
    let new_user = |name: &str, emails: &[&str]| roster_core::plan::NewUser {
        name: roster_core::UserName::parse(name).unwrap(),
        full_name: format!("{name} Example"),
        emails: emails
            .iter()
            .map(|e| roster_core::EmailAddress::parse(e).unwrap())
            .collect(),
        link: roster_core::user::DirectoryLink {
            source: "ldap".into(),
            id: format!("id-{name}"),
            dn: Some(format!("uid={name},ou=People,dc=example,dc=com")),
        },
    };
    let before = env.store.snapshot().await.unwrap();
    let folders_before = env.store.list_folders().await.unwrap();
    for (refused, code) in [
        (
            vec![
                new_user("Twin", &["t1@x.com"]),
                new_user("twin", &["t2@x.com"]),
            ],
            "ST011-database",
        ),
        (
            vec![new_user("carl", &["c@x.com", "ALICE@example.com"])],
            "ST002-duplicate-email",
        ),
    ] {
        let mut create: Vec<roster_core::plan::NewUser> = (0..3000)
            .map(|i| new_user(&format!("filler{i}"), &[&format!("filler{i}@x.com")]))
            .collect();
        create.splice(1500..1500, refused);
        let changes = roster_core::plan::PlannedChanges {
            create,
            update: Vec::new(),
            delete: Vec::new(),
            suspend: Vec::new(),
        };
        let run = begin_sync_run(&env).await;
        let e = env
            .store
            .apply_plan(
                run,
                before.version,
                &changes,
                &defaults,
                &mut RunRecord {
                    entries_read: 0,
                    counts: Default::default(),
                    lines: Vec::new(),
                    deleted_lines: Vec::new(),
                    approves: None,
                    read_mode: None,
                    read_state: None,
                },
                &Actor("t".into()),
                T0,
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), code, "{e}");
        env.store
            .finish_run(
                run,
                &RunOutcome {
                    status: RunStatus::Failed,
                    entries_read: 0,
                    counts: None,
                    error: Some(e.to_string()),
                    error_code: Some(e.code().into()),
                    phase: roster_store::RunPhase::Applying,
                    lines: &[],
                    planned_deletions: None,
                    read_mode: None,
                    read_state: None,
                },
                T0,
            )
            .await
            .unwrap();
        let after = env.store.snapshot().await.unwrap();
        assert_eq!(after.version, before.version, "{code}");
        assert_eq!(after.users, before.users, "{code}");
        assert_eq!(
            env.store.list_folders().await.unwrap(),
            folders_before,
            "{code}"
        );
        env.check().await;
    }
    // Nothing of the refused plans holds a name or an address: a plan without the refused rows applies.
    let plan = sync_entries(
        &env,
        vec![person("alice"), person("twin"), person("carl")],
        &opts,
        &defaults,
    )
    .await;
    assert_eq!(plan.counts.created, 2);
    env.check().await;
}
on_both_backends!(an_apply_the_database_refuses_writes_nothing);

/// Issue 26, item 6: on PostgreSQL the references of addresses, privileges, own folders and folder access
/// are checked by triggers rather than foreign keys (migration 0012), so that a sync's apply can leave
/// them out. Every other writer is still refused a reference to nothing, and deleting a user or a folder
/// still takes the rows that refer to it; the consistency check finds a row that refers to nothing.
#[tokio::test]
async fn postgres_checks_references_outside_the_apply() {
    crate::support::init();
    let url = roster_testkit::TestPostgres::shared()
        .unwrap()
        .create_database("references_outside_the_apply")
        .unwrap();
    let env = Env::with_store(
        open_store(Backend::Postgres, std::path::Path::new("."), &url).await,
        tempfile::tempdir().unwrap(),
    )
    .await;
    let admin = env.local_admin();
    env.roster
        .create_user(&admin, local("ann", &["ann@example.com"]))
        .await
        .unwrap();
    env.roster
        .create_user(&admin, local("ben", &[]))
        .await
        .unwrap();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let ids = |name: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (i64, i64)>(
                "SELECT u.id, f.id FROM users u JOIN folders f ON f.owner_user_id = u.id WHERE u.name = $1",
            )
            .bind(name)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let (ann, ann_folder) = ids("ann").await;
    let (ben, _) = ids("ben").await;
    let refused = |sql: String| {
        let pool = pool.clone();
        async move {
            let e = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&pool)
                .await
                .unwrap_err();
            let code = e
                .as_database_error()
                .and_then(|d| d.code())
                .map(|c| c.into_owned());
            assert_eq!(code.as_deref(), Some("23503"), "{sql}: {e}");
        }
    };
    refused("INSERT INTO user_emails (address_key, user_id, address, position) VALUES ('x@x.com', 4242, 'x@x.com', 0)".into()).await;
    refused("INSERT INTO folders (id, name, owner_user_id, message_count, created_at) VALUES (4242, 'x', 4242, 0, 0)".into()).await;
    refused(format!("INSERT INTO folder_access (user_id, folder_id, can_read, can_write, can_delete) VALUES ({ben}, 4242, TRUE, FALSE, FALSE)")).await;
    refused(format!("INSERT INTO folder_access (user_id, folder_id, can_read, can_write, can_delete) VALUES (4242, {ann_folder}, TRUE, FALSE, FALSE)")).await;
    refused(format!(
        "UPDATE user_emails SET user_id = 4242 WHERE user_id = {ann}"
    ))
    .await;
    refused(format!(
        "UPDATE folders SET owner_user_id = 4242 WHERE id = {ann_folder}"
    ))
    .await;
    refused(format!("UPDATE users SET id = 4242 WHERE id = {ann}")).await;
    env.check().await;

    // Deleting rows by hand: what the foreign keys' actions did, the triggers do.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO folder_access (user_id, folder_id, can_read, can_write, can_delete) VALUES ({ben}, {ann_folder}, TRUE, FALSE, FALSE); \
         UPDATE meta SET value = value + 1 WHERE key = 'user_db_version'; DELETE FROM users WHERE id = {ann}"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let count = |sql: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql))
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    for table in ["user_emails", "folder_access"] {
        assert_eq!(
            count(format!(
                "SELECT COUNT(*) FROM {table} WHERE user_id = {ann}"
            ))
            .await,
            0,
            "{table}"
        );
    }
    assert_eq!(
        count(format!(
            "SELECT COUNT(*) FROM folders WHERE id = {ann_folder} AND owner_user_id IS NULL"
        ))
        .await,
        1,
        "the folder stays, without an owner"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DELETE FROM folders WHERE id = {ann_folder}"
    )))
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(
        count(format!(
            "SELECT COUNT(*) FROM folder_access WHERE folder_id = {ann_folder}"
        ))
        .await,
        0
    );
    env.check().await;

    // The apply's transaction is left alone; a row that refers to nothing is then the consistency check's
    // to find.
    sqlx::raw_sql("BEGIN; SET LOCAL roster.apply_plan = 'on'; INSERT INTO user_emails (address_key, user_id, address, position) VALUES ('x@example.com', 4242, 'x@example.com', 0); COMMIT")
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        env.store.check_consistency().await.unwrap(),
        ["user_emails rows whose user_id refers to no users row: 4242"]
    );
    pool.close().await;
}

/// A plan of every LDAP user at time 0, deleting departed users or not.
fn ldap_plan_options(delete_users: bool) -> PlanOptions {
    PlanOptions {
        scope: roster_core::plan::PlanScope::All,
        now: roster_core::Timestamp(0),
        delete_after_seconds: 0,
        source: "ldap".into(),
        delete_users,
    }
}
