//! Kerio Connect (issue 23): Test Settings, Synchronize now, logon with the Kerio password and the domain
//! and group pickers, through `roster_app::Roster`, against the project's emulator of the Administration
//! API over HTTPS with the test CA, and a real Dovecot standing in for Kerio's IMAP service (CRAM-MD5
//! advertised before PLAIN). Every failure case checks that the user database is unchanged and that the
//! administrator session was logged out.

use crate::on_both_backends;
use crate::support::{Env, failed, run, state, sync, synced_names, warnings};
use roster_app::AppError;
use roster_core::directory::{DirectorySettings, KerioSettings, Secret, UsernameFormat};
use roster_core::user::AuthMethod;
use roster_store::RunKind;
use roster_testkit::kerio::{
    Domain, Fault, FaultKind, Fixture, Group, KerioEmulator, Role, TlsFiles, User as KerioUser,
};
use roster_testkit::{Dovecot, DovecotConfig, TestCa};

const ADMIN: &str = "admin@admin.example";
const ADMIN_PASSWORD: &str = "kerio-admin-pw";

fn user(login: &str, name: &str, password: &str) -> KerioUser {
    KerioUser {
        login_name: login.into(),
        full_name: name.into(),
        password: password.into(),
        ..Default::default()
    }
}

fn group(name: &str) -> Group {
    Group {
        name: name.into(),
        ..Default::default()
    }
}

/// example.com (the primary domain): alice (other addresses as a local part, a whole address and a
/// repeat of her primary one), bob (in Sales), carol (disabled, in Sales). admin.example: the
/// administrator. other.org: dave (in Staff), erin.
fn fixture() -> Fixture {
    let mut alice = user("alice", "Alice Liddell", "alice-pw");
    alice.email_addresses = vec![
        "al".into(),
        "alice.liddell@example.com".into(),
        "ALICE@example.com".into(),
    ];
    let mut bob = user("bob", "Bob Brown", "bob-pw");
    bob.groups = vec!["Sales".into()];
    let mut carol = user("carol", "Carol Clark", "carol-pw");
    carol.enabled = false;
    carol.groups = vec!["Sales".into()];
    let mut admin = user("admin", "Administrator", ADMIN_PASSWORD);
    admin.role = Role::FullAdmin;
    let mut dave = user("dave", "Dave Davis", "dave-pw");
    dave.groups = vec!["Staff".into()];
    Fixture {
        version: "10.0.8.9228".into(),
        domains: vec![
            Domain {
                name: "example.com".into(),
                primary: true,
                users: vec![alice, bob, carol],
                groups: vec![group("Sales")],
                ..Default::default()
            },
            Domain {
                name: "admin.example".into(),
                users: vec![admin],
                ..Default::default()
            },
            Domain {
                name: "other.org".into(),
                users: vec![dave, user("erin", "Erin Evans", "erin-pw")],
                groups: vec![group("Staff")],
                ..Default::default()
            },
        ],
    }
}

/// The emulator over HTTPS and Dovecot over IMAPS and STARTTLS, with certificates of the test CA.
struct Server {
    emulator: KerioEmulator,
    dovecot: Dovecot,
    ca: TestCa,
}

async fn start() -> Server {
    start_with(fixture(), false).await
}

async fn start_with(fixture: Fixture, self_signed: bool) -> Server {
    let ca = TestCa::generate().unwrap();
    let cert = if self_signed {
        ca.self_signed_server_cert("kerio").unwrap()
    } else {
        ca.issue_server_cert("kerio").unwrap()
    };
    let dovecot_cert = if self_signed {
        ca.self_signed_server_cert("localhost").unwrap()
    } else {
        ca.issue_server_cert("localhost").unwrap()
    };
    let dovecot = Dovecot::start(DovecotConfig {
        users: fixture.imap_users(),
        tls: Some(dovecot_cert),
        ..Default::default()
    })
    .unwrap();
    let emulator = KerioEmulator::start(
        fixture,
        "127.0.0.1:0",
        Some(TlsFiles {
            cert: &cert.cert_path,
            key: &cert.key_path,
        }),
    )
    .await
    .unwrap();
    Server {
        emulator,
        dovecot,
        ca,
    }
}

impl Server {
    fn settings(&self) -> KerioSettings {
        KerioSettings {
            schedule: Default::default(),
            server: self.emulator.server_setting(),
            ignore_certificate_errors: false,
            ca_file: Some(self.ca.ca_cert_path().to_owned()),
            username: ADMIN.into(),
            password: Some(Secret::new(ADMIN_PASSWORD)),
            domains: vec![],
            groups: vec![],
            username_format: UsernameFormat::Email,
            imap_server: self.dovecot.imaps_url().unwrap(),
            delete_users: false,
            guard: Default::default(),
        }
    }

    /// Every administrator session was logged out.
    fn all_logged_out(&self) {
        assert_eq!(
            self.emulator.controls().open_sessions(),
            0,
            "sessions left open; requests: {:?}",
            self.emulator.controls().requests()
        );
    }

    fn count(&self, method: &str) -> usize {
        self.emulator
            .controls()
            .requests()
            .iter()
            .filter(|r| r.method == method)
            .count()
    }

    fn remove(&self, domain: &str, login: &str) {
        self.emulator.controls().edit(|f| {
            f.domain_mut(domain)
                .unwrap()
                .users
                .retain(|u| u.login_name != login);
        });
    }
}

async fn configure(env: &Env, s: KerioSettings) {
    env.roster
        .set_directory_settings(&env.local_admin(), DirectorySettings::Kerio(s))
        .await
        .unwrap();
}

/// A sync fails with `code`, changes nothing, and logs out; the message is returned.
async fn fails_and_changes_nothing(env: &Env, server: &Server, code: &str) -> String {
    let before = state(env).await;
    let (got, message) = failed(run(env, RunKind::Sync).await);
    assert_eq!(got, code, "{message}");
    assert_eq!(state(env).await, before, "a failed run changed the users");
    server.all_logged_out();
    assert!(
        !message.contains(ADMIN_PASSWORD),
        "the message holds the password: {message}"
    );
    message
}

async fn all_domains(env: Env) {
    let server = start().await;
    configure(&env, server.settings()).await;
    let preview = run(&env, RunKind::Preview).await.unwrap();
    assert_eq!(preview.counts.created, 5, "{:#?}", preview.lines);
    assert!(
        synced_names(&env).await.is_empty(),
        "a preview commits nothing"
    );
    let notes = warnings(&preview);
    for expected in [
        "no domains or groups are selected",
        "1 disabled user(s) skipped",
        "(AUTHENTICATE PLAIN inside TLS)",
    ] {
        assert!(
            notes.iter().any(|n| n.contains(expected)),
            "the preview's header says {expected:?}: {notes:#?}"
        );
    }

    let report = sync(&env).await;
    assert_eq!(report.counts.created, 5);
    // carol is disabled; admin.example's administrator is a user like the others.
    assert_eq!(
        synced_names(&env).await,
        [
            "admin@admin.example",
            "alice@example.com",
            "bob@example.com",
            "dave@other.org",
            "erin@other.org"
        ]
    );
    let alice = env
        .roster
        .get_user(&env.local_admin(), "alice@example.com")
        .await
        .unwrap();
    assert_eq!(alice.full_name, "Alice Liddell");
    let emails: Vec<&str> = alice.emails.iter().map(|e| e.as_str()).collect();
    assert_eq!(
        emails,
        [
            "alice@example.com",
            "al@example.com",
            "alice.liddell@example.com"
        ],
        "the primary address first, then the others completed with the domain, no repeats"
    );
    assert_eq!(alice.auth, AuthMethod::Directory);
    let link = alice.directory.as_ref().unwrap();
    assert_eq!(link.source, "kerio");
    assert!(link.id.starts_with("keriodb://user/"), "{}", link.id);
    server.all_logged_out();
    assert_eq!(
        server.count("Session.login"),
        server.count("Session.logout")
    );

    // A second sync changes nothing.
    let before = state(&env).await;
    let again = sync(&env).await;
    assert_eq!(again.counts.created + again.counts.updated, 0);
    assert_eq!(state(&env).await, before);

    // A rename on the server keeps the user (the id is the KId), under the new name.
    server.emulator.controls().edit(|f| {
        let erin = f
            .domain_mut("other.org")
            .unwrap()
            .users
            .iter_mut()
            .find(|u| u.login_name == "erin")
            .unwrap();
        erin.login_name = "erin.evans".into();
    });
    let renamed = sync(&env).await;
    assert_eq!(
        (renamed.counts.created, renamed.counts.deleted),
        (0, 0),
        "{:#?}",
        renamed.lines
    );
    assert!(
        synced_names(&env)
            .await
            .contains(&"erin.evans@other.org".to_owned())
    );
    env.check().await;
}
on_both_backends!(all_domains);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domains_groups_and_both_select_by_domain_or_group() {
    let server = start().await;
    let cases: [(&[&str], &[&str], &[&str]); 5] = [
        (&["other.org"], &[], &["dave@other.org", "erin@other.org"]),
        // Sales: bob (carol is a member but disabled).
        (&[], &["Sales@example.com"], &["bob@example.com"]),
        (&[], &["staff@OTHER.org"], &["dave@other.org"]),
        // A domain or a group.
        (
            &["other.org"],
            &["sales@example.com"],
            &["bob@example.com", "dave@other.org", "erin@other.org"],
        ),
        (
            &["example.com"],
            &[],
            &["alice@example.com", "bob@example.com"],
        ),
    ];
    for (domains, groups, expected) in cases {
        let env = Env::sqlite().await;
        let mut s = server.settings();
        s.domains = domains.iter().map(|d| (*d).to_owned()).collect();
        s.groups = groups.iter().map(|g| (*g).to_owned()).collect();
        configure(&env, s).await;
        let report = sync(&env).await;
        assert_eq!(synced_names(&env).await, expected, "{domains:?} {groups:?}");
        if !domains.is_empty() && !groups.is_empty() {
            assert!(
                warnings(&report)
                    .iter()
                    .any(|w| w.contains(" or a member of")),
                "{:#?}",
                report.lines
            );
        }
        env.check().await;
    }
    server.all_logged_out();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_domain_or_group_fails_the_run() {
    let server = start().await;
    let env = Env::sqlite().await;
    let mut s = server.settings();
    s.domains = vec!["gone.example".into()];
    configure(&env, s).await;
    let message = fails_and_changes_nothing(&env, &server, "DI001-invalid-settings").await;
    assert!(message.contains("gone.example"), "{message}");
    let mut s = server.settings();
    s.groups = vec!["Nobody@example.com".into()];
    configure(&env, s).await;
    let message = fails_and_changes_nothing(&env, &server, "DI001-invalid-settings").await;
    assert!(message.contains("nobody@example.com"), "{message}");
}

/// 1,201 users are three pages of 500: every page is asked for with `start` and `limit`, and read
/// until `totalItems`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_over_several_pages() {
    let mut f = fixture();
    f.domains
        .push(roster_testkit::kerio::numbered_users("big.example", 1201));
    let server = start_with(f, false).await;
    let env = Env::sqlite().await;
    let mut s = server.settings();
    s.domains = vec!["big.example".into()];
    configure(&env, s).await;
    let report = sync(&env).await;
    assert_eq!(report.counts.created, 1201);
    assert_eq!(synced_names(&env).await.len(), 1201);
    let pages: Vec<(Option<i64>, Option<i64>)> = server
        .emulator
        .controls()
        .requests()
        .into_iter()
        .filter(|r| r.method == "Users.get")
        .map(|r| (r.start, r.limit))
        .collect();
    assert_eq!(
        pages,
        [
            (Some(0), Some(500)),
            (Some(500), Some(500)),
            (Some(1000), Some(500))
        ]
    );
    server.all_logged_out();
    env.check().await;
}

/// A user deleted on the server between two pages of the same listing shifts the later pages by one,
/// and a user would go unseen (and look as if they had left): the listing is read again, and only the
/// deleted user goes. A list that keeps changing fails the run, and nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_that_changes_during_the_read_is_read_again_or_fails() {
    let mut f = fixture();
    f.domains
        .push(roster_testkit::kerio::numbered_users("big.example", 1201));
    let server = start_with(f, false).await;
    let env = Env::sqlite().await;
    let mut s = server.settings();
    s.domains = vec!["big.example".into()];
    s.delete_users = true;
    configure(&env, s).await;
    sync(&env).await;
    let controls = server.emulator.controls();
    let remove = |login: &'static str| {
        move |f: &mut Fixture| {
            f.domain_mut("big.example")
                .unwrap()
                .users
                .retain(|u| u.login_name != login);
        }
    };
    // Right after the first page (which holds u1: logins are ordered as text).
    controls.edit_after("Users.get", 1, remove("u1"));
    let before = server.count("Users.get");
    let report = sync(&env).await;
    assert_eq!(
        server.count("Users.get") - before,
        2 + 3,
        "two pages, then the whole listing again"
    );
    assert_eq!(report.counts.deleted, 1, "{:#?}", report.counts);
    let names = synced_names(&env).await;
    assert_eq!(names.len(), 1200);
    assert!(!names.contains(&"u1@big.example".to_owned()));

    // Changed under every one of the three attempts.
    controls.edit_after("Users.get", 1, remove("u10"));
    controls.edit_after("Users.get", 3, remove("u100"));
    controls.edit_after("Users.get", 5, remove("u1000"));
    let message = fails_and_changes_nothing(&env, &server, "DI015-protocol").await;
    assert!(
        message.contains("changed while they were read"),
        "{message}"
    );
    env.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_deleted_on_the_server_go_and_folders_with_mail_stay() {
    let server = start().await;
    let env = Env::sqlite().await;
    let mut s = server.settings();
    s.domains = vec!["example.com".into(), "other.org".into()];
    s.delete_users = true;
    // 2 of 4 users go: over the deletion guard's default share, which is not what this tests.
    s.guard.max_deletions_percent = 100;
    configure(&env, s).await;
    sync(&env).await;
    env.roster
        .set_message_count(&env.local_admin(), "bob@example.com", 7)
        .await
        .unwrap();
    server.remove("example.com", "bob");
    server.remove("other.org", "dave");
    let report = sync(&env).await;
    assert_eq!(report.counts.deleted, 2, "{:#?}", report.lines);
    assert_eq!(report.counts.folders_kept, 1);
    assert_eq!(
        synced_names(&env).await,
        ["alice@example.com", "erin@other.org"]
    );
    let folders = env.store.list_folders().await.unwrap();
    let bob = folders
        .iter()
        .find(|f| f.name == "bob@example.com")
        .expect("bob's folder holds mail and stays");
    assert_eq!((bob.owner.as_deref(), bob.message_count), (None, 7));
    assert!(
        folders.iter().all(|f| f.name != "dave@other.org"),
        "dave's empty folder goes with him"
    );
    env.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_admin_password_is_refused_and_changes_nothing() {
    let server = start().await;
    let env = Env::sqlite().await;
    let mut s = server.settings();
    s.delete_users = true;
    s.guard.max_deletions_percent = 100;
    configure(&env, s.clone()).await;
    sync(&env).await;
    // Now a sync would delete bob: a refused run must not.
    server.remove("example.com", "bob");

    s.password = Some(Secret::new("not-the-admin-password"));
    configure(&env, s.clone()).await;
    let message = fails_and_changes_nothing(&env, &server, "DI026-kerio-service-logon").await;
    assert!(message.contains(ADMIN), "{message}");
    assert!(!message.contains("not-the-admin-password"), "{message}");

    // An ordinary user (UserRole) may log on, but not read: Kerio's 1004, shown as it comes.
    server.emulator.controls().edit(|f| {
        f.domain_mut("admin.example")
            .unwrap()
            .users
            .push(user("clerk", "Clerk", "clerk-pw"));
    });
    s.username = "clerk@admin.example".into();
    s.password = Some(Secret::new("clerk-pw"));
    configure(&env, s.clone()).await;
    let message = fails_and_changes_nothing(&env, &server, "DI027-kerio-rpc").await;
    assert!(message.contains("1004"), "{message}");

    s.username = ADMIN.into();
    s.password = Some(Secret::new(ADMIN_PASSWORD));
    configure(&env, s).await;
    assert_eq!(sync(&env).await.counts.deleted, 1);
    env.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_expiring_once_is_recovered_and_twice_fails_the_run() {
    let server = start().await;
    let env = Env::sqlite().await;
    configure(&env, server.settings()).await;
    let controls = server.emulator.controls();

    // Once: after 2 requests (the domains, then the first domain's users).
    controls.expire_sessions(2, 1);
    let report = sync(&env).await;
    assert_eq!(report.counts.created, 5);
    assert_eq!(server.count("Session.login"), 2, "one new session");
    server.all_logged_out();

    // Twice: the run fails and changes nothing.
    server.emulator.controls().edit(|f| {
        f.domain_mut("example.com")
            .unwrap()
            .users
            .push(user("frank", "Frank Fox", "frank-pw"));
    });
    controls.expire_sessions(2, 2);
    let before = server.count("Session.login");
    fails_and_changes_nothing(&env, &server, "DI022-session-expired").await;
    assert_eq!(server.count("Session.login") - before, 2);
    assert!(
        !synced_names(&env)
            .await
            .contains(&"frank@example.com".to_owned())
    );
    env.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_pages_truncated_json_and_rpc_errors_fail_the_run_naming_what_came_back() {
    let server = start().await;
    let env = Env::sqlite().await;
    let mut s = server.settings();
    s.delete_users = true;
    s.guard.max_deletions_percent = 100;
    configure(&env, s).await;
    sync(&env).await;
    server.emulator.controls().edit(|f| {
        f.domain_mut("other.org").unwrap().users.clear();
    });
    let controls = server.emulator.controls();
    let cases = [
        (
            Fault::once("Users.get", FaultKind::HtmlErrorPage(502)),
            "DI015-protocol",
            vec!["HTTP 502"],
        ),
        (
            Fault::once("Domains.get", FaultKind::TruncatedJson),
            "DI015-protocol",
            vec!["Domains.get"],
        ),
        (
            Fault {
                skip: 1,
                ..Fault::once(
                    "Users.get",
                    FaultKind::RpcError(1000, "Operation failed.".into()),
                )
            },
            "DI027-kerio-rpc",
            vec!["1000", "Operation failed.", "Users.get"],
        ),
        (
            Fault::once("Session.login", FaultKind::HtmlErrorPage(500)),
            "DI015-protocol",
            vec!["HTTP 500"],
        ),
    ];
    for (fault, code, words) in cases {
        controls.inject(fault.clone());
        let message = fails_and_changes_nothing(&env, &server, code).await;
        for w in words {
            assert!(message.contains(w), "{fault:?}: {w:?} not in {message}");
        }
    }
    // And then the deletions happen, once the server answers properly.
    assert_eq!(sync(&env).await.counts.deleted, 2);
    env.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_certificate_is_refused_then_accepted_when_told_to_ignore_it() {
    let server = start_with(fixture(), true).await;
    let env = Env::sqlite().await;
    let mut s = server.settings();
    configure(&env, s.clone()).await;
    let before = state(&env).await;
    let (code, message) = failed(run(&env, RunKind::Sync).await);
    assert_eq!(code, "DI005-certificate-untrusted", "{message}");
    assert_eq!(state(&env).await, before);
    assert_eq!(server.count("Session.login"), 0, "nothing was sent");
    let refused = env
        .roster
        .verify_logon("alice@example.com", "alice-pw")
        .await
        .unwrap_err();
    assert!(
        matches!(
            refused,
            AppError::LogonFailed | AppError::DirectoryUnavailableAtLogon
        ),
        "{refused:?}"
    );

    s.ca_file = None;
    s.ignore_certificate_errors = true;
    configure(&env, s).await;
    assert_eq!(sync(&env).await.counts.created, 5);
    server.all_logged_out();
    // The IMAP server's self-signed certificate is accepted too: one setting for one machine.
    env.roster
        .verify_logon("alice@example.com", "alice-pw")
        .await
        .unwrap();
    env.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logon_with_the_kerio_password_over_imaps_and_starttls_never_cram_md5() {
    let server = start().await;
    let env = Env::sqlite().await;
    let mut s = server.settings();
    configure(&env, s.clone()).await;
    sync(&env).await;
    for imap_server in [
        server.dovecot.imaps_url().unwrap(),
        server.dovecot.imap_url(),
    ] {
        s.imap_server = imap_server.clone();
        configure(&env, s.clone()).await;
        // The primary domain's user logs on to IMAP as "alice", another domain's as "dave@other.org".
        for (name, password) in [
            ("alice@example.com", "alice-pw"),
            ("dave@other.org", "dave-pw"),
        ] {
            let ok = env
                .roster
                .verify_logon(name, password)
                .await
                .unwrap_or_else(|e| panic!("{name} over {imap_server}: {e:?}"));
            assert_eq!(ok.name.as_str(), name);
        }
    }
    let log = server.dovecot.log();
    assert!(log.contains("user=<alice>"), "{log}");
    assert!(log.contains("user=<dave@other.org>"), "{log}");
    assert!(log.contains("method=PLAIN"), "{log}");
    assert!(
        !log.contains("method=CRAM-MD5") && !log.contains("method=DIGEST-MD5"),
        "{log}"
    );

    let wrong = env
        .roster
        .verify_logon("alice@example.com", "not-alice-pw")
        .await
        .unwrap_err();
    assert!(matches!(wrong, AppError::LogonFailed), "{wrong:?}");
    // A Roster user whose Kerio user is gone, a disabled one, and a name Roster doesn't know: the
    // same answer.
    server.remove("other.org", "erin");
    let gone = env
        .roster
        .verify_logon("erin@other.org", "erin-pw")
        .await
        .unwrap_err();
    let unknown = env
        .roster
        .verify_logon("nobody@example.com", "pw")
        .await
        .unwrap_err();
    for e in [&gone, &unknown] {
        assert_eq!(e.to_string(), wrong.to_string());
        assert_eq!(e.code(), wrong.code());
    }

    let logins = server.count("Session.login");
    let log_before = server.dovecot.log();
    let empty = env
        .roster
        .verify_logon("alice@example.com", "")
        .await
        .unwrap_err();
    assert!(matches!(empty, AppError::EmptyPassword), "{empty:?}");
    assert_eq!(server.count("Session.login"), logins, "no request");
    assert_eq!(server.dovecot.log(), log_before, "no IMAP connection");
    server.all_logged_out();
    env.check().await;
}

/// A user linked to a Kerio user that was deleted and created again under the same name is not that
/// user: the id must match, whatever the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recreated_user_of_the_same_name_is_not_the_linked_one() {
    let server = start().await;
    let env = Env::sqlite().await;
    configure(&env, server.settings()).await;
    sync(&env).await;
    server.emulator.controls().edit(|f| {
        let bob = f
            .domain_mut("example.com")
            .unwrap()
            .users
            .iter_mut()
            .find(|u| u.login_name == "bob")
            .unwrap();
        bob.id = "keriodb://user/another-bob".into();
    });
    let refused = env
        .roster
        .verify_logon("bob@example.com", "bob-pw")
        .await
        .unwrap_err();
    assert!(matches!(refused, AppError::LogonFailed), "{refused:?}");
    assert!(
        !server.dovecot.log().contains("user=<bob>"),
        "the password was never sent"
    );
    env.check().await;
}

/// A Dovecot without TLS would take the password in clear: Roster never sends it, says why at logon
/// (as the directory being unavailable) and in Test Settings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imap_server_without_tls_never_gets_the_password() {
    let server = start().await;
    let plain = Dovecot::start(DovecotConfig {
        users: fixture().imap_users(),
        tls: None,
        ..Default::default()
    })
    .unwrap();
    let env = Env::sqlite().await;
    let mut s = server.settings();
    s.imap_server = plain.imap_url();
    configure(&env, s).await;
    let preview = run(&env, RunKind::Preview).await.unwrap();
    assert!(
        warnings(&preview)
            .iter()
            .any(|w| w.contains("will fail") && w.contains("DI024") || w.contains("STARTTLS")),
        "{:#?}",
        warnings(&preview)
    );
    sync(&env).await;
    let refused = env
        .roster
        .verify_logon("alice@example.com", "alice-pw")
        .await
        .unwrap_err();
    assert!(
        matches!(refused, AppError::DirectoryUnavailableAtLogon),
        "{refused:?}"
    );
    let log = plain.log();
    assert!(
        !log.contains("user=<alice>") && !log.contains("method="),
        "no logon was tried: {log}"
    );
    env.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_part_user_names_and_their_conflicts() {
    let mut f = fixture();
    // alice in two domains: a conflict in local-part format.
    f.domains[2]
        .users
        .push(user("alice", "Other Alice", "other-alice-pw"));
    let server = start_with(f, false).await;
    let env = Env::sqlite().await;
    let mut s = server.settings();
    s.domains = vec!["example.com".into(), "other.org".into()];
    s.username_format = UsernameFormat::LocalPart;
    configure(&env, s.clone()).await;
    let report = sync(&env).await;
    assert!(report.counts.conflicts >= 1, "{:#?}", report.lines);
    assert_eq!(synced_names(&env).await, ["bob", "dave", "erin"]);
    // The primary domain's user and another domain's: the domain comes from the last sync.
    env.roster.verify_logon("bob", "bob-pw").await.unwrap();
    env.roster.verify_logon("dave", "dave-pw").await.unwrap();
    assert!(matches!(
        env.roster.verify_logon("bob", "dave-pw").await,
        Err(AppError::LogonFailed)
    ));
    server.all_logged_out();
    env.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pickers_list_domains_and_groups() {
    let server = start().await;
    let env = Env::sqlite().await;
    configure(&env, server.settings()).await;
    let admin = env.local_admin();
    let domains = env.roster.directory_domains(&admin).await.unwrap();
    let listed: Vec<(&str, u64)> = domains
        .iter()
        .map(|d| (d.name.as_str(), d.accounts))
        .collect();
    assert_eq!(
        listed,
        [("admin.example", 1), ("example.com", 3), ("other.org", 2)]
    );
    let groups = env.roster.directory_groups(&admin, None).await.unwrap();
    let addresses: Vec<&str> = groups.iter().map(|g| g.address.as_str()).collect();
    assert_eq!(addresses, ["Sales@example.com", "Staff@other.org"]);
    let searched = env
        .roster
        .directory_groups(&admin, Some("STAFF"))
        .await
        .unwrap();
    assert_eq!(searched.len(), 1, "{searched:?}");
    assert_eq!(searched[0].address, "Staff@other.org");
    server.all_logged_out();
}

/// The README's walk-through: the example settings against the emulator serving the example data over
/// plain HTTP, as a newcomer runs them (with a Dovecot holding the example's passwords for the logon).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_work_together_over_http() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = Fixture::load(&root.join("examples/kerio-emulator.toml")).unwrap();
    let ca = TestCa::generate().unwrap();
    let dovecot = Dovecot::start(DovecotConfig {
        users: data.imap_users(),
        tls: Some(ca.issue_server_cert("localhost").unwrap()),
        ..Default::default()
    })
    .unwrap();
    let emulator = KerioEmulator::start(data, "127.0.0.1:0", None)
        .await
        .unwrap();
    let text = std::fs::read_to_string(root.join("examples/kerio-directory.toml")).unwrap();
    let mut settings: DirectorySettings = toml::from_str(&text).unwrap();
    let DirectorySettings::Kerio(s) = &mut settings else {
        panic!("{settings:?}")
    };
    assert_eq!(s.server, "http://127.0.0.1:4040");
    s.server = emulator.server_setting();
    s.imap_server = dovecot.imaps_url().unwrap();
    s.ca_file = Some(ca.ca_cert_path().to_owned());
    let env = Env::sqlite().await;
    env.roster
        .set_directory_settings(&env.local_admin(), settings)
        .await
        .unwrap();
    sync(&env).await;
    assert_eq!(
        synced_names(&env).await,
        [
            "admin@example.com",
            "asmith@example.com",
            "bob@branch.example.com",
            "jdoe@example.com"
        ]
    );
    env.roster
        .verify_logon("jdoe@example.com", "jdoe-pw")
        .await
        .unwrap();
    assert_eq!(emulator.controls().open_sessions(), 0);
    env.check().await;
}
