//! A run's lifecycle through `roster_app::Roster`: its deadline, and cancelling it from this process or
//! another (issue 19, item 3). The directory here never answers: a TCP listener that accepts connections
//! and says nothing, as a hung LDAP server (or an LDIF "file" that is a pipe) would.

use crate::support::Env;
use roster_app::SessionPolicy;
use roster_app::{AppError, ErrorKind, Roster};
use roster_core::directory::{
    AttributeMapping, DirectorySettings, Encryption, LdapSettings, Secret,
};
use roster_store::{RunKind, RunStatus, RunSummary, SqliteStore};
use std::sync::Arc;
use std::time::Duration;

/// A port that accepts connections and never answers on them (kept open for the test process's life).
pub fn silent_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
        }
    });
    port
}

/// LDAP settings for a server that never answers, with an operation timeout far beyond any deadline here:
/// only the run's deadline or a cancel ends such a run.
pub fn silent_ldap() -> DirectorySettings {
    DirectorySettings::Ldap(LdapSettings {
        schedule: Default::default(),
        server: "127.0.0.1".into(),
        port: Some(silent_port()),
        encryption: Encryption::None,
        ignore_certificate_errors: false,
        ca_file: None,
        bind_dn: "cn=roster,dc=example,dc=com".into(),
        password: Some(Secret::new("service-secret")),
        base_dn: "dc=example,dc=com".into(),
        mapping: AttributeMapping {
            filter: "(objectClass=inetOrgPerson)".into(),
            username_attribute: "uid".into(),
            full_name_attribute: None,
            email_attributes: Some("mail".into()),
        },
        delete_users: false,
        guard: Default::default(),
        page_size: None,
        timeout_seconds: Some(3600),
    })
}

/// Another Roster on the same data directory, as another process (the CLI beside the server) would be.
async fn another_process(env: &Env) -> Roster {
    let store = Arc::new(SqliteStore::open(env.dir.path()).await.unwrap());
    let secrets = roster_app::secrets::SecretBox::load(env.dir.path(), None).unwrap();
    Roster::new(
        store,
        env.clock.clone(),
        secrets,
        SessionPolicy { ttl_seconds: 3600 },
    )
}

/// The run once it has stopped running (within `seconds`).
async fn finished(env: &Env, run_id: i64, seconds: u64) -> RunSummary {
    let until = std::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        let run = env.store.get_run(run_id).await.unwrap().unwrap();
        if run.status != RunStatus::Running {
            return run;
        }
        assert!(
            std::time::Instant::now() < until,
            "run #{run_id} still running: {run:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Issue 19, item 3: a run on a directory that never answers hung forever, and its heartbeat kept every
/// other run refused (409, ST005-run-in-progress) until a restart. Now it fails at its deadline with a
/// coded error, changes nothing, and the next run goes ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_19_3_a_run_past_its_deadline_fails_changes_nothing_and_frees_the_slot() {
    let env = Env::sqlite().await;
    let admin = env.local_admin();
    env.roster
        .set_directory_settings(&admin, silent_ldap())
        .await
        .unwrap();
    let roster = another_process(&env)
        .await
        .with_run_deadline(Duration::from_secs(2));
    let users_before = env.store.list_users(0, 100).await.unwrap().items;
    let started = std::time::Instant::now();
    let e = roster
        .run_directory(&admin, RunKind::Sync, "test", &())
        .await
        .unwrap_err();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(2), "{waited:?}");
    assert!(waited < Duration::from_secs(30), "{waited:?}");
    assert_eq!(e.code(), "AP015-run-deadline", "{e}");
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    let AppError::RunFailed {
        run_id, message, ..
    } = &e
    else {
        panic!("expected a failed run, got {e:?}");
    };
    assert!(message.contains("deadline of 2 s"), "{message}");
    assert!(message.contains("nothing was changed"), "{message}");
    let run = env.store.get_run(*run_id).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.error_code.as_deref(), Some("AP015-run-deadline"));
    assert_eq!(
        env.store.list_users(0, 100).await.unwrap().items,
        users_before,
        "nothing changed"
    );
    // The slot is free: the next run begins (and meets the same silent directory).
    let again = roster
        .run_directory(&admin, RunKind::Preview, "test", &())
        .await
        .unwrap_err();
    assert_eq!(again.code(), "AP015-run-deadline", "{again}");
    env.check().await;
}

/// Issue 19, item 3: an administrator cancels a running run, from another process (stored request, seen
/// by the run's heartbeat) or from the one running it (at once). It stops, changes nothing, is recorded as
/// cancelled with its audit line, and the next run goes ahead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_19_3_an_administrator_cancels_a_running_run() {
    let env = Env::sqlite().await;
    let admin = env.local_admin();
    env.roster
        .set_directory_settings(&admin, silent_ldap())
        .await
        .unwrap();
    let users_before = env.store.list_users(0, 100).await.unwrap().items;

    // From another process: the server runs a sync, the CLI cancels it.
    let started = env
        .roster
        .start_directory_run(&admin, RunKind::Sync, "api")
        .await
        .unwrap();
    assert_eq!(started.status, RunStatus::Running);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (shown, _) = env
        .roster
        .get_run(&admin, started.run_id, 0, 10)
        .await
        .unwrap();
    assert_eq!(shown.status, RunStatus::Running);
    assert_eq!(shown.phase, Some(roster_store::RunPhase::Reading));
    let cli = another_process(&env).await;
    let other = roster_app::Caller::Local("ops".into());
    let answer = cli.cancel_run(&other, started.run_id).await.unwrap();
    assert_eq!(
        answer.status,
        RunStatus::Running,
        "stops at its next heartbeat"
    );
    assert_eq!(answer.cancel_requested_by.as_deref(), Some("cli:ops"));
    let run = finished(&env, started.run_id, 20).await;
    assert_eq!(run.status, RunStatus::Cancelled, "{run:?}");
    assert_eq!(run.error_code.as_deref(), Some("AP016-run-cancelled"));
    assert!(
        run.error
            .as_deref()
            .unwrap()
            .contains("cancelled by cli:ops"),
        "{run:?}"
    );
    // Too late for a second cancel.
    let e = cli.cancel_run(&other, started.run_id).await.unwrap_err();
    assert_eq!(e.code(), "ST014-run-finished", "{e}");
    assert_eq!(e.kind(), ErrorKind::Conflict);

    // From the process running it: at once.
    let task = {
        let roster = env.roster.clone();
        let admin = admin.clone();
        tokio::spawn(async move {
            roster
                .run_directory(&admin, RunKind::Preview, "test", &())
                .await
        })
    };
    let run_id = loop {
        let runs = env.store.list_runs(0, 1).await.unwrap().items;
        if let Some(r) = runs.first().filter(|r| r.status == RunStatus::Running) {
            break r.id;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let asked = std::time::Instant::now();
    env.roster.cancel_run(&admin, run_id).await.unwrap();
    let e = task.await.unwrap().unwrap_err();
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(e.code(), "AP016-run-cancelled", "{e}");
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    assert_eq!(
        env.store.get_run(run_id).await.unwrap().unwrap().status,
        RunStatus::Cancelled
    );

    assert_eq!(
        env.store.list_users(0, 100).await.unwrap().items,
        users_before,
        "nothing changed"
    );
    let audit = env.store.list_audit(0, 20).await.unwrap().items;
    let cancels: Vec<(&str, &str)> = audit
        .iter()
        .filter(|a| a.action == "directory.run.cancel")
        .map(|a| (a.actor.as_str(), a.target.as_str()))
        .collect();
    assert_eq!(
        cancels,
        [
            ("cli:test", format!("run #{run_id}").as_str()),
            ("cli:ops", format!("run #{}", started.run_id).as_str())
        ]
    );
    // Nothing holds the slot: the next run begins.
    let next = env
        .roster
        .start_directory_run(&admin, RunKind::Preview, "api")
        .await
        .unwrap();
    env.roster.cancel_run(&admin, next.run_id).await.unwrap();
    finished(&env, next.run_id, 10).await;
    env.check().await;
}
