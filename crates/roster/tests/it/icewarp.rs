//! IceWarp Server (issue 22): Test Settings, Synchronize now, logon with the IceWarp password and the
//! domain and group pickers, through `roster_app::Roster`, against the project's emulator of the XML API
//! over HTTPS with the test CA. Every failure case checks that the user database is unchanged and that
//! the administrator session was logged out.

use crate::on_both_backends;
use crate::support::{Env, failed, run, state, sync, synced_names, warnings};
use roster_app::AppError;
use roster_core::directory::{DirectorySettings, IcewarpSettings, Secret, UsernameFormat};
use roster_core::user::AuthMethod;
use roster_store::RunKind;
use roster_testkit::TestCa;
use roster_testkit::icewarp::{
    Account, AccountType, Domain, Fault, FaultKind, Fixture, IcewarpEmulator, TlsFiles,
};
use std::time::{Duration, Instant};

const ADMIN: &str = "admin@admin.example";
const ADMIN_PASSWORD: &str = "icewarp-admin-pw";

fn user(mailbox: &str, name: &str, password: &str) -> Account {
    Account {
        mailbox: mailbox.into(),
        name: name.into(),
        password: password.into(),
        ..Default::default()
    }
}

fn group(mailbox: &str, members: &[&str]) -> Account {
    Account {
        mailbox: mailbox.into(),
        name: format!("Group {mailbox}"),
        account_type: AccountType::Group,
        members: members.iter().map(|m| (*m).to_owned()).collect(),
        ..Default::default()
    }
}

/// admin.example: the administrator. example.com: alice (two aliases), bob, carol (disabled), the groups
/// sales (bob by address, alice by an alias, dave with a `;0` suffix) and everyone (`[other.org]`), a
/// mailing list and a resource. other.org: dave, erin. alias.example: a domain alias (no accounts).
fn fixture() -> Fixture {
    let mut alice = user("alice", "Alice Liddell", "alice-pw");
    alice.aliases = vec!["al".into(), "alice.liddell".into()];
    let mut carol = user("carol", "Carol Clark", "carol-pw");
    carol.disabled = 1;
    let mut admin = user("admin", "Administrator", ADMIN_PASSWORD);
    admin.admin = true;
    Fixture {
        version: "14.3.0.3".into(),
        domains: vec![
            Domain {
                name: "admin.example".into(),
                accounts: vec![admin],
                ..Default::default()
            },
            Domain {
                name: "example.com".into(),
                accounts: vec![
                    alice,
                    user("bob", "Bob Brown", "bob-pw"),
                    carol,
                    group(
                        "sales",
                        &["bob@example.com", "al@example.com", "dave@other.org;0"],
                    ),
                    group("everyone", &["[other.org]"]),
                    Account {
                        mailbox: "news".into(),
                        name: "Newsletter".into(),
                        password: "list-pw".into(),
                        account_type: AccountType::List,
                        members: vec!["alice@example.com".into()],
                        ..Default::default()
                    },
                    Account {
                        mailbox: "room1".into(),
                        name: "Meeting room".into(),
                        password: "room-pw".into(),
                        account_type: AccountType::Resource,
                        ..Default::default()
                    },
                ],
                ..Default::default()
            },
            Domain {
                name: "other.org".into(),
                accounts: vec![
                    user("dave", "Dave Davis", "dave-pw"),
                    user("erin", "Erin Evans", "erin-pw"),
                ],
                ..Default::default()
            },
            Domain {
                name: "alias.example".into(),
                domain_type: 2,
                ..Default::default()
            },
        ],
    }
}

/// The emulator over HTTPS with a certificate of the test CA (kept alive with it).
struct Server {
    emulator: IcewarpEmulator,
    ca: TestCa,
}

async fn start() -> Server {
    start_with(fixture(), false).await
}

async fn start_with(fixture: Fixture, self_signed: bool) -> Server {
    let ca = TestCa::generate().unwrap();
    let cert = if self_signed {
        ca.self_signed_server_cert("icewarp").unwrap()
    } else {
        ca.issue_server_cert("icewarp").unwrap()
    };
    let emulator = IcewarpEmulator::start(
        fixture,
        "127.0.0.1:0",
        Some(TlsFiles {
            cert: &cert.cert_path,
            key: &cert.key_path,
        }),
    )
    .await
    .unwrap();
    Server { emulator, ca }
}

impl Server {
    fn settings(&self) -> IcewarpSettings {
        IcewarpSettings {
            schedule: Default::default(),
            server: self.emulator.server_setting(),
            ignore_certificate_errors: false,
            ca_file: Some(self.ca.ca_cert_path().to_owned()),
            username: ADMIN.into(),
            password: Some(Secret::new(ADMIN_PASSWORD)),
            domains: vec![],
            groups: vec![],
            username_format: UsernameFormat::Email,
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

    fn count(&self, command: &str) -> usize {
        self.emulator
            .controls()
            .requests()
            .iter()
            .filter(|r| r.command == command)
            .count()
    }
}

async fn configure(env: &Env, s: IcewarpSettings) {
    env.roster
        .set_directory_settings(&env.local_admin(), DirectorySettings::Icewarp(s))
        .await
        .unwrap();
}

/// A sync with these settings fails with `code`, changes nothing, and logs out; the message is returned.
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
    assert!(
        notes
            .iter()
            .any(|n| n.contains("no domains or groups are selected")),
        "the preview's header says the scope rule: {notes:#?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("1 disabled account(s) skipped")),
        "{notes:#?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("primary address")),
        "{notes:#?}"
    );

    let report = sync(&env).await;
    assert_eq!(report.counts.created, 5);
    // Users only: no groups, lists or resources; carol is disabled; admin.example's admin is a user.
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
        "primary first, then the aliases"
    );
    assert_eq!(alice.auth, AuthMethod::Directory);
    let link = alice.directory.as_ref().unwrap();
    assert_eq!(link.source, "icewarp");
    assert_eq!(link.id, "alice@example.com");
    server.all_logged_out();
    assert_eq!(server.count("authenticate"), server.count("logout"));

    // A second sync changes nothing.
    let before = state(&env).await;
    let again = sync(&env).await;
    assert_eq!(again.counts.created + again.counts.updated, 0);
    assert_eq!(state(&env).await, before);
    env.check().await;
}
on_both_backends!(all_domains);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domains_groups_and_both_select_by_domain_or_group() {
    let server = start().await;
    let cases: [(&[&str], &[&str], &[&str]); 5] = [
        (&["other.org"], &[], &["dave@other.org", "erin@other.org"]),
        // sales: bob by address, alice by her alias, dave with a ";0" suffix.
        (
            &[],
            &["sales@example.com"],
            &["alice@example.com", "bob@example.com", "dave@other.org"],
        ),
        // everyone: "[other.org]", the whole domain.
        (
            &[],
            &["everyone@example.com"],
            &["dave@other.org", "erin@other.org"],
        ),
        // A domain or a group.
        (
            &["other.org"],
            &["SALES@example.com"],
            &[
                "alice@example.com",
                "bob@example.com",
                "dave@other.org",
                "erin@other.org",
            ],
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
    s.groups = vec!["nobody@example.com".into()];
    configure(&env, s).await;
    let message = fails_and_changes_nothing(&env, &server, "DI001-invalid-settings").await;
    assert!(message.contains("nobody@example.com"), "{message}");
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
    server.emulator.controls().edit(|f| {
        f.domain_mut("example.com")
            .unwrap()
            .accounts
            .retain(|a| a.mailbox != "bob");
        f.domain_mut("other.org")
            .unwrap()
            .accounts
            .retain(|a| a.mailbox != "dave");
    });
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
async fn version_10_3_and_a_wrong_admin_password_are_refused_and_change_nothing() {
    let server = start().await;
    let env = Env::sqlite().await;
    let mut s = server.settings();
    s.delete_users = true;
    s.guard.max_deletions_percent = 100;
    configure(&env, s.clone()).await;
    sync(&env).await;
    // Now a sync would delete bob: a refused run must not.
    server.emulator.controls().edit(|f| {
        f.domain_mut("example.com")
            .unwrap()
            .accounts
            .retain(|a| a.mailbox != "bob");
    });

    server.emulator.controls().set_version("10.3.2");
    let message = fails_and_changes_nothing(&env, &server, "DI020-api-version").await;
    assert!(
        message.contains("10.3.2") && message.contains("10.4"),
        "names both versions: {message}"
    );
    server.emulator.controls().set_version("10.4.0");

    s.password = Some(Secret::new("not-the-admin-password"));
    configure(&env, s.clone()).await;
    let message = fails_and_changes_nothing(&env, &server, "DI019-service-logon").await;
    assert!(message.contains(ADMIN), "{message}");
    assert!(!message.contains("not-the-admin-password"), "{message}");

    s.password = Some(Secret::new(ADMIN_PASSWORD));
    configure(&env, s).await;
    assert_eq!(sync(&env).await.counts.deleted, 1, "10.4 is accepted");
    env.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_expiring_once_is_recovered_and_twice_fails_the_run() {
    let server = start().await;
    let env = Env::sqlite().await;
    configure(&env, server.settings()).await;
    let controls = server.emulator.controls();

    // Once: after 4 requests (the version, the domains, then the middle of the accounts).
    controls.expire_sessions(4, 1);
    let report = sync(&env).await;
    assert_eq!(report.counts.created, 5);
    assert_eq!(server.count("authenticate"), 2, "one re-authentication");
    server.all_logged_out();

    // Twice: the run fails and changes nothing.
    server.emulator.controls().edit(|f| {
        f.domain_mut("example.com")
            .unwrap()
            .accounts
            .push(user("frank", "Frank Fox", "frank-pw"));
    });
    controls.expire_sessions(4, 2);
    let before_auth = server.count("authenticate");
    fails_and_changes_nothing(&env, &server, "DI022-session-expired").await;
    assert_eq!(server.count("authenticate") - before_auth, 2);
    assert!(
        !synced_names(&env)
            .await
            .contains(&"frank@example.com".to_owned())
    );
    env.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_pages_truncated_xml_and_unknown_errors_fail_the_run_naming_what_came_back() {
    let server = start().await;
    let env = Env::sqlite().await;
    let mut s = server.settings();
    s.delete_users = true;
    s.guard.max_deletions_percent = 100;
    configure(&env, s).await;
    sync(&env).await;
    server.emulator.controls().edit(|f| {
        f.domain_mut("other.org").unwrap().accounts.clear();
    });
    let controls = server.emulator.controls();
    let cases = [
        (
            Fault::once("getaccountsinfolist", FaultKind::HtmlErrorPage(502)),
            "DI015-protocol",
            vec!["HTTP 502", "502 Error"],
        ),
        (
            Fault::once("getdomainsinfolist", FaultKind::HtmlLoginPage),
            "DI015-protocol",
            vec!["an HTML page", "IceWarp WebClient - Login"],
        ),
        (
            Fault {
                skip: 2,
                ..Fault::once("getaccountproperties", FaultKind::TruncatedXml)
            },
            "DI015-protocol",
            vec!["malformed or truncated XML"],
        ),
        (
            Fault::once(
                "getaccountsinfolist",
                FaultKind::ErrorUid("quota_exploded".into()),
            ),
            "DI021-api-error",
            vec!["quota_exploded", "getaccountsinfolist"],
        ),
        (
            Fault::once("authenticate", FaultKind::HtmlErrorPage(500)),
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
    assert_eq!(server.count("authenticate"), 0, "nothing was sent");

    s.ca_file = None;
    s.ignore_certificate_errors = true;
    configure(&env, s).await;
    assert_eq!(sync(&env).await.counts.created, 5);
    server.all_logged_out();
    env.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logon_with_the_icewarp_password_right_wrong_and_empty() {
    let server = start().await;
    let env = Env::sqlite().await;
    configure(&env, server.settings()).await;
    sync(&env).await;
    let ok = env
        .roster
        .verify_logon("alice@example.com", "alice-pw")
        .await
        .unwrap();
    assert_eq!(ok.name.as_str(), "alice@example.com");
    assert_eq!(server.count("getauthtoken"), 1);

    let wrong = env
        .roster
        .verify_logon("alice@example.com", "not-alice-pw")
        .await
        .unwrap_err();
    assert!(matches!(wrong, AppError::LogonFailed), "{wrong:?}");
    // A user of Roster linked to IceWarp whose account is gone: the same answer.
    server.emulator.controls().edit(|f| {
        f.domain_mut("other.org")
            .unwrap()
            .accounts
            .retain(|a| a.mailbox != "erin");
    });
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

    let sent = server.count("getauthtoken");
    let empty = env
        .roster
        .verify_logon("alice@example.com", "")
        .await
        .unwrap_err();
    assert!(matches!(empty, AppError::EmptyPassword), "{empty:?}");
    assert_eq!(
        server.count("getauthtoken"),
        sent,
        "no request for an empty password"
    );
    env.check().await;
}

/// The tarpit as the real server has it (25 s): a wrong password for one user doesn't hold up another
/// user's logon, and the slow answer still comes within the connector's timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_delayed_by_the_server_holds_up_no_other_logon() {
    let server = start().await;
    let env = Env::sqlite().await;
    configure(&env, server.settings()).await;
    sync(&env).await;
    server
        .emulator
        .controls()
        .set_tarpit(Duration::from_secs(25));

    let roster = env.roster.clone();
    let started = Instant::now();
    let slow = tokio::spawn(async move {
        let result = roster.verify_logon("alice@example.com", "wrong").await;
        (result, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    for (name, password) in [("bob@example.com", "bob-pw"), ("dave@other.org", "dave-pw")] {
        let t = Instant::now();
        env.roster.verify_logon(name, password).await.unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{name} waited {:?} behind a tarpitted logon",
            t.elapsed()
        );
    }
    assert!(
        !slow.is_finished(),
        "the wrong password is still being tarpitted"
    );
    let (result, took) = slow.await.unwrap();
    assert!(matches!(result, Err(AppError::LogonFailed)), "{result:?}");
    assert!(took >= Duration::from_secs(25), "{took:?}");
    env.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_part_user_names_and_their_conflicts() {
    let mut f = fixture();
    // alice in two domains: a conflict in local-part format.
    f.domains[2]
        .accounts
        .push(user("alice", "Other Alice", "x"));
    let server = start_with(f, false).await;
    let env = Env::sqlite().await;
    let mut s = server.settings();
    s.domains = vec!["example.com".into(), "other.org".into()];
    s.username_format = UsernameFormat::LocalPart;
    configure(&env, s.clone()).await;
    let report = sync(&env).await;
    assert!(report.counts.conflicts >= 1, "{:#?}", report.lines);
    assert_eq!(synced_names(&env).await, ["bob", "dave", "erin"]);
    // A local part logs on: its domain is found through the administrator's session.
    env.roster.verify_logon("bob", "bob-pw").await.unwrap();
    assert!(matches!(
        env.roster.verify_logon("bob", "dave-pw").await,
        Err(AppError::LogonFailed)
    ));
    server.all_logged_out();

    // One domain: the local part is completed with it.
    s.domains = vec!["other.org".into()];
    configure(&env, s).await;
    env.roster.verify_logon("dave", "dave-pw").await.unwrap();
    env.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pickers_list_domains_and_groups_and_other_types_say_they_cannot() {
    let server = start().await;
    let env = Env::sqlite().await;
    configure(&env, server.settings()).await;
    let admin = env.local_admin();
    let domains = env.roster.directory_domains(&admin).await.unwrap();
    let names: Vec<&str> = domains.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(
        names,
        ["admin.example", "example.com", "other.org", "alias.example"]
    );
    assert_eq!(domains[1].accounts, 7);
    let groups = env.roster.directory_groups(&admin, None).await.unwrap();
    let addresses: Vec<&str> = groups.iter().map(|g| g.address.as_str()).collect();
    assert_eq!(addresses, ["sales@example.com", "everyone@example.com"]);
    server.all_logged_out();

    let ldif = env.dir.path().join("x.ldif");
    std::fs::write(&ldif, "version: 1\n").unwrap();
    env.roster
        .set_directory_settings(
            &admin,
            DirectorySettings::Ldif(roster_core::directory::LdifSettings {
                schedule: Default::default(),
                file: ldif,
                base_dn: String::new(),
                mapping: roster_core::directory::AttributeMapping {
                    filter: "(objectClass=*)".into(),
                    username_attribute: "uid".into(),
                    full_name_attribute: None,
                    email_attributes: None,
                },
                delete_users: false,
                guard: Default::default(),
                limits: Default::default(),
            }),
        )
        .await
        .unwrap();
    let e = env.roster.directory_groups(&admin, None).await.unwrap_err();
    assert_eq!(e.code(), "DI023-listing-unsupported", "{e}");
}

/// The README's walk-through: the example settings against the emulator serving the example data over
/// plain HTTP, as a newcomer runs them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_work_together_over_http() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data = Fixture::load(&root.join("examples/icewarp-emulator.toml")).unwrap();
    let emulator = IcewarpEmulator::start(data, "127.0.0.1:0", None)
        .await
        .unwrap();
    let text = std::fs::read_to_string(root.join("examples/icewarp-directory.toml")).unwrap();
    let mut settings: DirectorySettings = toml::from_str(&text).unwrap();
    let DirectorySettings::Icewarp(s) = &mut settings else {
        panic!("{settings:?}")
    };
    assert_eq!(s.server, "http://127.0.0.1:32000");
    assert_eq!(s.ca_file, None, "ca_file = \"\" is none");
    s.server = emulator.server_setting();
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
            "jdoe@example.com",
            "lmueller@example.com",
            "pk@example.org"
        ]
    );
    env.roster
        .verify_logon("jdoe@example.com", "john-pw")
        .await
        .unwrap();
    assert_eq!(emulator.controls().open_sessions(), 0);
    env.check().await;
}

/// Builds before 2016 leave `displayemail` and `accountstate` out of account lists: disabled accounts are
/// still found (by `U_AccountDisabled`) and skipped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_builds_without_account_states_still_skip_disabled_accounts() {
    let server = start().await;
    server.emulator.controls().set_old_account_lists(true);
    let env = Env::sqlite().await;
    let mut s = server.settings();
    s.domains = vec!["example.com".into()];
    configure(&env, s).await;
    let report = sync(&env).await;
    assert_eq!(
        synced_names(&env).await,
        ["alice@example.com", "bob@example.com"],
        "carol is disabled"
    );
    assert!(
        warnings(&report)
            .iter()
            .any(|w| w.contains("1 disabled account(s) skipped")),
        "{:#?}",
        report.lines
    );
    env.check().await;
}
