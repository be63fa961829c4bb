//! Test Settings (preview), Synchronize now and logon with the LDAP password, through `roster_app::Roster`
//! (the code the API and the CLI call), against a real slapd that the test kit starts per test.
//!
//! Roster reads as an ordinary service account, `cn=roster,ou=People,...`: the root DN ignores size
//! limits, so reading as root would prove nothing about paging. The kit's ACLs (`access to * by users
//! read`) let any bound user read the entries (not the passwords).

use crate::on_both_backends;
use crate::support::Env;
use roster_app::{
    AppError, Caller, FolderRightsInput, NewUserInput, PrivilegesInput, RunReport, SyncProgress,
};
use roster_core::directory::{DirectorySettings, Encryption, LdapSettings, LdifSettings, Secret};
use roster_core::plan::{ReportAction, ReportCounts, ReportLine};
use roster_core::user::{AuthMethod, DirectoryLink, Folder, FolderAccess, User};
use roster_core::{FolderRight, Privilege};
use roster_store::{Actor, NewRun, RunKind, RunOutcome, RunStatus, StoreError};
use roster_testkit::ldif::{base64, push_attr};
use roster_testkit::{Slapd, SlapdConfig, SlapdTls, TestCa, TestUser, free_port, user_ldif};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

mod deletion_guard;
mod grace_period;
mod incremental;
mod one_user;
mod schedule;

const SUFFIX: &str = "dc=example,dc=com";
const PEOPLE: &str = "ou=People,dc=example,dc=com";
const SERVICE_DN: &str = "cn=roster,ou=People,dc=example,dc=com";
const SERVICE_PASSWORD: &str = "roster-service-secret";

// ---- LDIF for slapd ---------------------------------------------------------------------------------

fn entry(dn: &str, attrs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    push_attr(&mut out, "dn", dn);
    for (name, value) in attrs {
        push_attr(&mut out, name, value);
    }
    out.push('\n');
    out
}

/// The service account Roster binds as: not an inetOrgPerson, so no filter below ever returns it.
fn service_account() -> String {
    entry(
        SERVICE_DN,
        &[
            ("objectClass", "organizationalRole"),
            ("objectClass", "simpleSecurityObject"),
            ("cn", "roster"),
            ("userPassword", SERVICE_PASSWORD),
        ],
    )
}

fn ou(dn: &str, name: &str) -> String {
    entry(dn, &[("objectClass", "organizationalUnit"), ("ou", name)])
}

/// An inetOrgPerson at any DN, with or without a uid.
fn person(dn: &str, uid: Option<&str>, cn: &str, extra: &[(&str, &str)]) -> String {
    let sn = cn.split_whitespace().last().unwrap_or(cn);
    let mut attrs: Vec<(&str, &str)> = vec![
        ("objectClass", "top"),
        ("objectClass", "person"),
        ("objectClass", "organizationalPerson"),
        ("objectClass", "inetOrgPerson"),
        ("cn", cn),
        ("sn", sn),
    ];
    if let Some(uid) = uid {
        attrs.push(("uid", uid));
    }
    attrs.extend_from_slice(extra);
    entry(dn, &attrs)
}

/// `uid=<uid>,ou=People,...` with a password.
fn ldap_user(uid: &str, cn: &str, mails: &[&str], password: &str) -> String {
    user_ldif(
        SUFFIX,
        &TestUser {
            uid,
            cn,
            mail: mails.to_vec(),
            password: Some(password),
            ..Default::default()
        },
    )
}

/// `u1..=count` below ou=People, with `u<i>@example.com` and the password `pw-u<i>`.
fn many_users(count: usize) -> String {
    let mut out = String::with_capacity(count * 300);
    for i in 1..=count {
        let uid = format!("u{i}");
        out.push_str(&ldap_user(
            &uid,
            &format!("User {i}"),
            &[&format!("{uid}@example.com")],
            &format!("pw-{uid}"),
        ));
    }
    out
}

fn start(users: &str) -> Slapd {
    start_with(SlapdConfig::default(), users)
}

/// A slapd with the service account and `extra` loaded by slapadd before start.
fn start_with(mut config: SlapdConfig, extra: &str) -> Slapd {
    let mut ldif = service_account();
    ldif.push_str(extra);
    config.base_ldif = Some(ldif);
    Slapd::start(config).unwrap()
}

/// The entryUUID slapd gave the one entry matching `filter`.
fn entry_uuid(slapd: &Slapd, filter: &str) -> String {
    let out = slapd.search(SUFFIX, filter, &["entryUUID"]).unwrap();
    let uuids: Vec<String> = out
        .lines()
        .filter_map(|l| l.strip_prefix("entryUUID: "))
        .map(|v| v.trim().to_ascii_lowercase())
        .collect();
    assert_eq!(uuids.len(), 1, "{filter}: {out}");
    uuids[0].clone()
}

// ---- Roster -------------------------------------------------------------------------------------------

/// Plain LDAP, the service account, users below ou=People.
fn settings(slapd: &Slapd) -> LdapSettings {
    LdapSettings {
        schedule: Default::default(),
        server: "127.0.0.1".into(),
        port: Some(slapd.port()),
        encryption: Encryption::None,
        ignore_certificate_errors: false,
        ca_file: None,
        bind_dn: SERVICE_DN.into(),
        password: Some(Secret::new(SERVICE_PASSWORD)),
        base_dn: PEOPLE.into(),
        mapping: roster_core::directory::AttributeMapping {
            filter: "(objectClass=inetOrgPerson)".into(),
            username_attribute: "uid".into(),
            full_name_attribute: Some("cn".into()),
            email_attributes: Some("mail".into()),
        },
        delete_users: false,
        guard: Default::default(),
        page_size: None,
        timeout_seconds: Some(10),
    }
}

async fn configure(env: &Env, s: LdapSettings) {
    env.roster
        .set_directory_settings(&env.local_admin(), DirectorySettings::Ldap(s))
        .await
        .unwrap();
}

async fn run(env: &Env, kind: RunKind) -> Result<RunReport, AppError> {
    env.roster
        .run_directory(&env.local_admin(), kind, "test", &())
        .await
}

async fn preview(env: &Env) -> RunReport {
    run(env, RunKind::Preview)
        .await
        .unwrap_or_else(|e| panic!("preview failed: {e} ({})", e.code()))
}

async fn sync(env: &Env) -> RunReport {
    run(env, RunKind::Sync)
        .await
        .unwrap_or_else(|e| panic!("sync failed: {e} ({})", e.code()))
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
    env.store.list_users(0, 100_000).await.unwrap().items
}

fn names(users: &[User]) -> Vec<&str> {
    users.iter().map(|u| u.name.as_str()).collect()
}

async fn stored(env: &Env, name: &str) -> User {
    env.roster
        .get_user(&env.local_admin(), name)
        .await
        .unwrap_or_else(|e| panic!("user {name}: {e}"))
}

/// Each folder as (name, owner, message count).
fn folder_rows(folders: &[Folder]) -> Vec<(&str, Option<&str>, i64)> {
    folders
        .iter()
        .map(|f| (f.name.as_str(), f.owner.as_deref(), f.message_count))
        .collect()
}

fn emails(user: &User) -> Vec<&str> {
    user.emails.iter().map(|e| e.as_str()).collect()
}

/// Every user and every folder, as the API would show them: "nothing changed" means this is equal.
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

fn line(user: &str, action: ReportAction, reason: &str, dn: &str) -> ReportLine {
    ReportLine {
        user: user.into(),
        action,
        reason: reason.to_owned().into(),
        dn: Some(dn.into()),
    }
}

fn lines_with(report: &RunReport, action: ReportAction) -> Vec<&ReportLine> {
    report.lines.iter().filter(|l| l.action == action).collect()
}

fn default_privileges() -> BTreeSet<Privilege> {
    BTreeSet::from([Privilege::LogOn])
}

async fn logon_error(env: &Env, name: &str, password: &str) -> AppError {
    match env.roster.verify_logon(name, password).await {
        Ok(u) => panic!(
            "logon of {name:?} must fail, but was accepted as {}",
            u.name
        ),
        Err(e) => e,
    }
}

fn assert_logon_failed(e: &AppError, what: &str) {
    assert!(
        matches!(e, AppError::LogonFailed),
        "{what}: expected LogonFailed, got {e:?}"
    );
}

async fn create_manual(
    env: &Env,
    name: &str,
    auth: AuthMethod,
    password: Option<&str>,
    mails: &[&str],
) -> User {
    env.roster
        .create_user(
            &env.local_admin(),
            NewUserInput {
                name: name.into(),
                full_name: String::new(),
                emails: mails.iter().map(|m| m.to_string()).collect(),
                auth,
                password: password.map(Into::into),
                privileges: None,
            },
        )
        .await
        .unwrap()
}

// ---- 1. Preview, sync, re-sync ----------------------------------------------------------------------

async fn preview_commits_nothing_sync_creates_users_and_a_resync_changes_nothing(env: Env) {
    let slapd = start(
        &[
            ldap_user(
                "alice",
                "Alice Liddell",
                &["alice@example.com", "a.liddell@example.com"],
                "alice-pw",
            ),
            ldap_user("bob", "Bob Brown", &["bob@example.com"], "bob-pw"),
            ldap_user("dave", "Dave Davis", &[], "dave-pw"),
        ]
        .concat(),
    );
    configure(&env, settings(&slapd)).await;
    let empty = state(&env).await;
    assert_eq!(names(&users(&env).await), ["admin"]);

    let report = preview(&env).await;
    assert!(report.preview);
    assert_eq!(report.kind, RunKind::Preview);
    assert_eq!(report.directory_type, "ldap");
    assert_eq!(report.entries_read, 3);
    assert_eq!(report.counts, counts(|c| c.created = 3));
    let created = |u: &str| {
        line(
            u,
            ReportAction::Created,
            "new in the directory",
            &format!("uid={u},{PEOPLE}"),
        )
    };
    assert_eq!(
        report.lines,
        vec![created("alice"), created("bob"), created("dave")]
    );
    assert_eq!(state(&env).await, empty, "a preview commits nothing");
    let runs = env.store.list_runs(0, 10).await.unwrap();
    assert_eq!(runs.total, 1);
    let recorded = &runs.items[0];
    assert_eq!(recorded.id, report.run_id);
    assert_eq!(recorded.kind, RunKind::Preview);
    assert_eq!(recorded.status, RunStatus::Succeeded);
    assert_eq!(recorded.triggered_by, "test");
    assert_eq!(recorded.entries_read, 3);
    assert_eq!(recorded.counts, Some(report.counts));
    assert_eq!(recorded.error, None);
    assert!(recorded.finished_at.is_some());
    assert_eq!(
        env.store
            .run_lines(report.run_id, 0, 100)
            .await
            .unwrap()
            .items,
        report.lines
    );

    let synced_report = sync(&env).await;
    assert!(!synced_report.preview);
    assert_eq!(synced_report.kind, RunKind::Sync);
    assert_eq!(synced_report.counts, counts(|c| c.created = 3));
    assert_eq!(
        synced_report.lines, report.lines,
        "the preview showed the sync"
    );
    let all = users(&env).await;
    assert_eq!(names(&all), ["admin", "alice", "bob", "dave"]);
    let folders = env.store.list_folders().await.unwrap();
    assert_eq!(
        folders.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["admin", "alice", "bob", "dave"]
    );
    for (name, full_name, mails) in [
        (
            "alice",
            "Alice Liddell",
            vec!["alice@example.com", "a.liddell@example.com"],
        ),
        ("bob", "Bob Brown", vec!["bob@example.com"]),
        ("dave", "Dave Davis", vec![]),
    ] {
        let u = all.iter().find(|u| u.name.as_str() == name).unwrap();
        assert_eq!(u.auth, AuthMethod::Directory, "{name}");
        assert!(!u.builtin_admin);
        assert_eq!(u.full_name, full_name);
        assert_eq!(emails(u), mails, "{name}");
        assert_eq!(u.privileges, default_privileges(), "{name}");
        let folder = folders
            .iter()
            .find(|f| f.owner.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("no folder owned by {name}: {folders:#?}"));
        assert_eq!(folder.name, name);
        assert_eq!(folder.message_count, 0);
        assert_eq!(
            u.folders,
            vec![FolderAccess {
                folder_id: folder.id,
                folder: name.into(),
                rights: BTreeSet::from([FolderRight::Read]),
            }],
            "{name}: read access to the own folder, nothing else"
        );
        let uuid = entry_uuid(&slapd, &format!("(uid={name})"));
        assert_eq!(uuid.len(), 36);
        assert_eq!(u.directory_id.as_deref(), Some(uuid.as_str()), "{name}");
        assert_eq!(
            u.directory,
            Some(DirectoryLink {
                source: "ldap".into(),
                id: uuid,
                dn: Some(format!("uid={name},{PEOPLE}")),
            })
        );
    }

    let synced = state(&env).await;
    let again = sync(&env).await;
    assert_eq!(again.counts, counts(|c| c.unchanged = 3));
    assert!(again.lines.is_empty(), "{:#?}", again.lines);
    assert_eq!(again.entries_read, 3);
    assert_eq!(state(&env).await, synced, "a re-sync changes nothing");
    let runs = env.store.list_runs(0, 10).await.unwrap();
    assert_eq!(
        runs.items
            .iter()
            .map(|r| (r.kind, r.status))
            .collect::<Vec<_>>(),
        [
            (RunKind::Sync, RunStatus::Succeeded),
            (RunKind::Sync, RunStatus::Succeeded),
            (RunKind::Preview, RunStatus::Succeeded),
        ]
    );
    env.check().await;
}
on_both_backends!(preview_commits_nothing_sync_creates_users_and_a_resync_changes_nothing);

// ---- 2. Unicode, escaped DNs, several email attributes, nameless entries --------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unicode_names_escaped_dns_several_email_attributes_and_nameless_entries() {
    let env = Env::sqlite().await;
    let smith_dn = format!("cn=Smith\\, John,{PEOPLE}");
    let nameless_dn = format!("cn=No Uid,{PEOPLE}");
    let slapd = start("");
    // Added with ldapadd: `slapadd -q` can't derive the structural class of an entry that is also an
    // extensibleObject.
    slapd
        .add(
            &[
                // extensibleObject allows `email` (core.schema) next to inetOrgPerson's `mail`.
                person(
                    &format!("uid=zoë,{PEOPLE}"),
                    Some("zoë"),
                    "Zoë Ångström",
                    &[
                        ("objectClass", "extensibleObject"),
                        ("mail", "zoe@example.com"),
                        ("mail", "Z.Angstrom@example.com"),
                        ("email", "ZOE@EXAMPLE.COM"),
                        ("email", "zoe@other.example"),
                        ("userPassword", "zoe-pw"),
                    ],
                ),
                person(
                    &smith_dn,
                    Some("jsmith"),
                    "Smith, John",
                    &[
                        ("mail", "john.smith@example.com"),
                        ("userPassword", "smith-pw"),
                    ],
                ),
                person(
                    &nameless_dn,
                    None,
                    "No Uid",
                    &[("mail", "nouid@example.com")],
                ),
            ]
            .concat(),
        )
        .unwrap();
    let mut s = settings(&slapd);
    s.mapping.email_attributes = Some("mail,email".into());
    configure(&env, s).await;

    let report = sync(&env).await;
    assert_eq!(
        report.counts,
        counts(|c| {
            c.created = 2;
            c.skipped = 1;
        })
    );
    assert_eq!(report.entries_read, 3);
    let created = lines_with(&report, ReportAction::Created);
    assert_eq!(
        created.iter().map(|l| l.user.as_str()).collect::<Vec<_>>(),
        ["jsmith", "zoë"]
    );
    assert_eq!(
        lines_with(&report, ReportAction::Skipped),
        [&line(
            &nameless_dn,
            ReportAction::Skipped,
            "the entry has no value for the user-name attribute",
            &nameless_dn,
        )]
    );
    assert_eq!(report.lines.len(), 3, "{:#?}", report.lines);

    assert_eq!(names(&users(&env).await), ["admin", "jsmith", "zoë"]);
    let zoe = stored(&env, "zoë").await;
    assert_eq!(zoe.full_name, "Zoë Ångström");
    assert_eq!(
        emails(&zoe),
        [
            "zoe@example.com",
            "Z.Angstrom@example.com",
            "zoe@other.example"
        ],
        "every value of every email attribute, deduplicated without regard to case"
    );
    assert_eq!(
        zoe.directory.as_ref().and_then(|l| l.dn.as_deref()),
        Some(format!("uid=zoë,{PEOPLE}").as_str())
    );
    assert_eq!(
        zoe.directory_id.as_deref(),
        Some(entry_uuid(&slapd, "(uid=zoë)").as_str())
    );
    assert_eq!(zoe.folders.len(), 1);
    assert_eq!(zoe.folders[0].folder, "zoë");

    let smith = stored(&env, "jsmith").await;
    assert_eq!(smith.full_name, "Smith, John");
    assert_eq!(emails(&smith), ["john.smith@example.com"]);
    let dn = smith
        .directory
        .as_ref()
        .and_then(|l| l.dn.clone())
        .unwrap()
        .to_lowercase();
    assert!(
        dn == smith_dn.to_lowercase()
            || dn == format!("cn=smith\\2c john,{}", PEOPLE.to_lowercase()),
        "{dn}"
    );
    let folders = env.store.list_folders().await.unwrap();
    assert_eq!(
        folders.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(),
        ["admin", "jsmith", "zoë"]
    );

    // Both log on with their LDAP passwords: by the stored (escaped) DN, and with a Unicode name.
    assert_eq!(
        env.roster
            .verify_logon("jsmith", "smith-pw")
            .await
            .unwrap()
            .id,
        smith.id
    );
    assert_eq!(
        env.roster.verify_logon("zoë", "zoe-pw").await.unwrap().id,
        zoe.id
    );
    assert_eq!(
        env.roster.verify_logon("ZOË", "zoe-pw").await.unwrap().id,
        zoe.id
    );
    assert_logon_failed(&logon_error(&env, "zoë", "smith-pw").await, "zoë, wrong");

    // A re-sync: the nameless entry is reported again, nothing else.
    let synced = state(&env).await;
    let again = sync(&env).await;
    assert_eq!(
        again.counts,
        counts(|c| {
            c.unchanged = 2;
            c.skipped = 1;
        })
    );
    assert_eq!(again.lines.len(), 1, "{:#?}", again.lines);
    assert_eq!(state(&env).await, synced);
    env.check().await;
}

// ---- 3. Rename ----------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modrdn_rename_keeps_the_user_its_folder_and_its_privileges() {
    let env = Env::sqlite().await;
    let slapd = start(
        &[
            ldap_user("alice", "Alice Liddell", &["alice@example.com"], "alice-pw"),
            ldap_user("bob", "Bob Brown", &["bob@example.com"], "bob-pw"),
        ]
        .concat(),
    );
    let mut s = settings(&slapd);
    // A rename must not look like a deletion and a new user.
    s.delete_users = true;
    configure(&env, s).await;
    assert_eq!(sync(&env).await.counts, counts(|c| c.created = 2));

    let extra = BTreeSet::from([
        Privilege::LogOn,
        Privilege::ArchiveEmail,
        Privilege::ExportEmail,
    ]);
    env.roster
        .set_privileges(
            &env.local_admin(),
            "alice",
            PrivilegesInput {
                privileges: extra.clone(),
                folders: vec![FolderRightsInput {
                    folder: "alice".into(),
                    rights: BTreeSet::from([FolderRight::Read, FolderRight::Write]),
                }],
            },
        )
        .await
        .unwrap();
    env.roster
        .set_message_count(&env.local_admin(), "alice", 42)
        .await
        .unwrap();
    let before = stored(&env, "alice").await;
    let uuid = entry_uuid(&slapd, "(uid=alice)");
    assert_eq!(before.directory_id.as_deref(), Some(uuid.as_str()));

    slapd
        .modify(&format!(
            "dn: uid=alice,{PEOPLE}\nchangetype: modrdn\nnewrdn: uid=alicia\ndeleteoldrdn: 1\n"
        ))
        .unwrap();
    assert_eq!(entry_uuid(&slapd, "(uid=alicia)"), uuid);

    let report = sync(&env).await;
    assert_eq!(
        report.counts,
        counts(|c| {
            c.renamed = 1;
            c.unchanged = 1;
        })
    );
    assert_eq!(
        report.lines,
        [line(
            "alicia",
            ReportAction::Renamed,
            "renamed in the directory from alice",
            &format!("uid=alicia,{PEOPLE}"),
        )]
    );
    assert_eq!(names(&users(&env).await), ["admin", "alicia", "bob"]);
    assert!(
        env.store
            .get_user(&roster_core::UserName::parse("alice").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    let after = stored(&env, "alicia").await;
    assert_eq!(after.id, before.id, "the same user");
    assert_eq!(after.directory_id, before.directory_id);
    assert_eq!(
        after.directory.as_ref().and_then(|l| l.dn.as_deref()),
        Some(format!("uid=alicia,{PEOPLE}").as_str())
    );
    assert_eq!(after.privileges, extra, "privileges kept");
    assert_eq!(after.auth, AuthMethod::Directory);
    assert_eq!(emails(&after), ["alice@example.com"]);
    assert_eq!(after.full_name, "Alice Liddell");
    assert_eq!(
        after.folders,
        vec![FolderAccess {
            folder_id: before.folders[0].folder_id,
            folder: "alicia".into(),
            rights: BTreeSet::from([FolderRight::Read, FolderRight::Write]),
        }],
        "the same folder, renamed, with the same rights"
    );
    let folders = env.store.list_folders().await.unwrap();
    assert_eq!(
        folder_rows(&folders),
        [
            ("admin", Some("admin"), 0),
            ("alicia", Some("alicia"), 42),
            ("bob", Some("bob"), 0),
        ]
    );
    // The renamed user logs on under the new name only.
    assert_eq!(
        env.roster
            .verify_logon("alicia", "alice-pw")
            .await
            .unwrap()
            .id,
        before.id
    );
    assert_logon_failed(&logon_error(&env, "alice", "alice-pw").await, "old name");
    env.check().await;
}

// ---- 4. Deletion --------------------------------------------------------------------------------

async fn departed_users_are_deleted_only_with_delete_users_and_folders_with_messages_stay(
    env: Env,
) {
    let slapd = start(
        &[
            ldap_user("alice", "Alice Liddell", &["alice@example.com"], "alice-pw"),
            ldap_user("bob", "Bob Brown", &["bob@example.com"], "bob-pw"),
            ldap_user("dave", "Dave Davis", &["dave@example.com"], "dave-pw"),
            ldap_user("erin", "Erin Evans", &["erin@example.com"], "erin-pw"),
        ]
        .concat(),
    );
    let mut s = settings(&slapd);
    configure(&env, s.clone()).await;
    assert_eq!(sync(&env).await.counts, counts(|c| c.created = 4));
    // erin stays linked to the directory but logs on locally: never deleted by a sync.
    env.roster
        .set_auth(&env.local_admin(), "erin", AuthMethod::Local)
        .await
        .unwrap();
    env.roster
        .set_message_count(&env.local_admin(), "bob", 7)
        .await
        .unwrap();
    for uid in ["bob", "dave", "erin"] {
        slapd
            .modify(&format!("dn: uid={uid},{PEOPLE}\nchangetype: delete\n"))
            .unwrap();
    }
    let before = state(&env).await;

    // delete_users = false: nobody goes.
    let report = sync(&env).await;
    assert_eq!(report.counts, counts(|c| c.unchanged = 1));
    assert!(report.lines.is_empty(), "{:#?}", report.lines);
    assert_eq!(state(&env).await, before);

    s.delete_users = true;
    s.guard = crate::support::unguarded();
    configure(&env, s).await;
    let expected = counts(|c| {
        c.deleted = 2;
        c.folders_kept = 1;
        c.unchanged = 1;
    });
    let expected_lines = vec![
        line(
            "bob",
            ReportAction::Deleted,
            "no longer found under the base DN with the filter (deleted, moved or changed in the directory); the archive folder holds messages and is kept",
            &format!("uid=bob,{PEOPLE}"),
        ),
        line(
            "dave",
            ReportAction::Deleted,
            "no longer found under the base DN with the filter (deleted, moved or changed in the directory); the empty archive folder is deleted too",
            &format!("uid=dave,{PEOPLE}"),
        ),
    ];
    let p = preview(&env).await;
    assert_eq!(p.counts, expected);
    assert_eq!(p.lines, expected_lines);
    assert_eq!(state(&env).await, before, "a preview deletes nobody");

    let report = sync(&env).await;
    assert_eq!(report.counts, expected);
    assert_eq!(report.lines, expected_lines);
    let all = users(&env).await;
    assert_eq!(names(&all), ["admin", "alice", "erin"]);
    let erin = all.iter().find(|u| u.name.as_str() == "erin").unwrap();
    assert_eq!(erin.auth, AuthMethod::Local);
    assert!(erin.directory.is_some(), "erin is still linked");
    assert!(all[0].builtin_admin);
    let folders = env.store.list_folders().await.unwrap();
    assert_eq!(
        folder_rows(&folders),
        [
            ("admin", Some("admin"), 0),
            ("alice", Some("alice"), 0),
            ("bob", None, 7),
            ("erin", Some("erin"), 0),
        ]
    );
    let bob_folder = folders.iter().find(|f| f.name == "bob").unwrap();
    assert_eq!(bob_folder.orphaned_at, Some(env.roster.now()));

    // Nothing more to do: erin (local) and admin are never deleted.
    let synced = state(&env).await;
    let again = sync(&env).await;
    assert_eq!(again.counts, counts(|c| c.unchanged = 1));
    assert!(again.lines.is_empty());
    assert_eq!(state(&env).await, synced);

    // alice's entry is deleted and re-added (a new entryUUID): matched by name, as the issue says, so
    // she keeps her account and her archive; the report names the entry she was linked to. (The same
    // happens when a new person is given a departed user's uid: the preview shows it first.)
    env.roster
        .set_message_count(&env.local_admin(), "alice", 3)
        .await
        .unwrap();
    let old_alice = stored(&env, "alice").await;
    let old_id = old_alice.directory_id.clone().unwrap();
    slapd
        .modify(&format!("dn: uid=alice,{PEOPLE}\nchangetype: delete\n"))
        .unwrap();
    slapd
        .add(&ldap_user(
            "alice",
            "Alice Liddell",
            &["alice@example.com"],
            "alice-pw",
        ))
        .unwrap();
    let report = sync(&env).await;
    assert_eq!(
        report.counts,
        counts(|c| c.linked = 1),
        "{:#?}",
        report.lines
    );
    assert!(
        report.lines[0].reason.contains(&format!(
            "was linked to the entry {old_id}, which the directory no longer returns"
        )),
        "{:#?}",
        report.lines
    );
    let alice = stored(&env, "alice").await;
    assert_eq!(alice.id, old_alice.id);
    assert_ne!(alice.directory_id, old_alice.directory_id);
    let folders = env.store.list_folders().await.unwrap();
    assert!(
        folder_rows(&folders).contains(&("alice", Some("alice"), 3)),
        "{folders:?}"
    );
    env.check().await;
}
on_both_backends!(departed_users_are_deleted_only_with_delete_users_and_folders_with_messages_stay);

// ---- 5. Linking a manual user -------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_user_is_linked_keeps_local_auth_and_then_logs_on_with_the_ldap_password() {
    let env = Env::sqlite().await;
    let slapd = start(
        &[
            ldap_user(
                "carol",
                "Carol Clark",
                &["carol@example.com"],
                "carol-ldap-pw",
            ),
            ldap_user("dave", "Dave Davis", &["dave@example.com"], "dave-pw"),
        ]
        .concat(),
    );
    let carol = create_manual(
        &env,
        "carol",
        AuthMethod::Local,
        Some("carol-local-pw"),
        &[],
    )
    .await;
    configure(&env, settings(&slapd)).await;

    let report = sync(&env).await;
    assert_eq!(
        report.counts,
        counts(|c| {
            c.linked = 1;
            c.created = 1;
        })
    );
    let linked = lines_with(&report, ReportAction::Linked);
    assert_eq!(linked.len(), 1);
    assert_eq!(linked[0].user, "carol");
    assert_eq!(
        linked[0].reason,
        "matched by user name (was created manually); authentication stays local; full name and email addresses updated"
    );
    assert_eq!(
        lines_with(&report, ReportAction::Created)
            .iter()
            .map(|l| l.user.as_str())
            .collect::<Vec<_>>(),
        ["dave"]
    );

    let linked_carol = stored(&env, "carol").await;
    assert_eq!(linked_carol.id, carol.id);
    assert_eq!(linked_carol.auth, AuthMethod::Local, "auth stays as set");
    assert_eq!(linked_carol.full_name, "Carol Clark");
    assert_eq!(emails(&linked_carol), ["carol@example.com"]);
    assert_eq!(
        linked_carol.directory_id.as_deref(),
        Some(entry_uuid(&slapd, "(uid=carol)").as_str())
    );
    assert_eq!(linked_carol.privileges, carol.privileges);
    assert_eq!(linked_carol.folders, carol.folders, "same folder");

    // Still local: the local password works, the LDAP one doesn't.
    env.roster
        .verify_logon("carol", "carol-local-pw")
        .await
        .unwrap();
    assert_logon_failed(
        &logon_error(&env, "carol", "carol-ldap-pw").await,
        "LDAP password while local",
    );

    env.roster
        .set_auth(&env.local_admin(), "carol", AuthMethod::Directory)
        .await
        .unwrap();
    let session = env.roster.logon("carol", "carol-ldap-pw").await.unwrap();
    assert_eq!(session.user.id, carol.id);
    assert_eq!(session.user.auth, AuthMethod::Directory);
    assert!(matches!(
        env.roster.authenticate_token(&session.token).await.unwrap(),
        Caller::User(u) if u.id == carol.id
    ));
    assert_logon_failed(
        &logon_error(&env, "carol", "carol-local-pw").await,
        "old local password after switching to directory",
    );

    // Linked by id from now on.
    let synced = state(&env).await;
    assert_eq!(sync(&env).await.counts, counts(|c| c.unchanged = 2));
    assert_eq!(state(&env).await, synced);
    env.check().await;
}

// ---- 6. Conflicts -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_are_reported_and_not_applied_while_the_rest_goes_on() {
    let env = Env::sqlite().await;
    let sales = format!("uid=dup,ou=Sales,{SUFFIX}");
    let support = format!("uid=dup,ou=Support,{SUFFIX}");
    let slapd = start(
        &[
            ou(&format!("ou=Sales,{SUFFIX}"), "Sales"),
            ou(&format!("ou=Support,{SUFFIX}"), "Support"),
            person(
                &sales,
                Some("dup"),
                "Dup Sales",
                &[("mail", "dup.sales@example.com")],
            ),
            person(
                &support,
                Some("dup"),
                "Dup Support",
                &[("mail", "dup.support@example.com")],
            ),
            ldap_user("alice", "Alice Liddell", &["alice@example.com"], "alice-pw"),
            // Claims the address of a local user.
            ldap_user(
                "mallory",
                "Mallory Moe",
                &["erin@example.com"],
                "mallory-pw",
            ),
            // Claims the built-in administrator's name.
            ldap_user("admin", "Directory Admin", &["admin@example.com"], "x-pw"),
        ]
        .concat(),
    );
    let erin = create_manual(
        &env,
        "erin",
        AuthMethod::Local,
        Some("erin-pw"),
        &["erin@example.com"],
    )
    .await;
    let admin_before = stored(&env, "admin").await;
    let mut s = settings(&slapd);
    s.base_dn = SUFFIX.into();
    configure(&env, s).await;

    let report = sync(&env).await;
    assert_eq!(
        report.counts,
        counts(|c| {
            c.created = 1;
            c.conflicts = 4;
        })
    );
    let conflicts = lines_with(&report, ReportAction::Conflict);
    assert_eq!(
        conflicts
            .iter()
            .map(|l| l.user.as_str())
            .collect::<Vec<_>>(),
        ["admin", "dup", "dup", "mallory"]
    );
    assert!(
        conflicts[0].reason.contains("built-in administrator"),
        "{}",
        conflicts[0].reason
    );
    let mut dup_dns: Vec<&str> = conflicts[1..3]
        .iter()
        .map(|l| l.dn.as_deref().unwrap())
        .collect();
    dup_dns.sort_unstable();
    assert_eq!(dup_dns, [sales.as_str(), support.as_str()]);
    for l in &conflicts[1..3] {
        assert!(
            l.reason
                .starts_with("2 directory entries have this user name: ")
                && l.reason.contains(&sales)
                && l.reason.contains(&support),
            "{}",
            l.reason
        );
    }
    assert_eq!(
        conflicts[3].reason,
        "not applied: the address erin@example.com is also held by user erin"
    );
    assert_eq!(
        lines_with(&report, ReportAction::Created)
            .iter()
            .map(|l| l.user.as_str())
            .collect::<Vec<_>>(),
        ["alice"]
    );
    assert_eq!(names(&users(&env).await), ["admin", "alice", "erin"]);
    assert_eq!(stored(&env, "admin").await, admin_before, "admin untouched");
    assert_eq!(stored(&env, "erin").await, erin, "erin untouched");

    // Fix the directory: the rest is applied, the admin entry stays a conflict.
    slapd
        .modify(&format!(
            "dn: {support}\nchangetype: delete\n\ndn: uid=mallory,{PEOPLE}\nchangetype: modify\nreplace: mail\nmail: mallory@example.com\n"
        ))
        .unwrap();
    let report = sync(&env).await;
    assert_eq!(
        report.counts,
        counts(|c| {
            c.created = 2;
            c.unchanged = 1;
            c.conflicts = 1;
        })
    );
    assert_eq!(
        names(&users(&env).await),
        ["admin", "alice", "dup", "erin", "mallory"]
    );
    let dup = stored(&env, "dup").await;
    assert_eq!(
        dup.directory.as_ref().and_then(|l| l.dn.as_deref()),
        Some(sales.as_str())
    );
    assert_eq!(
        emails(&stored(&env, "mallory").await),
        ["mallory@example.com"]
    );
    assert_eq!(stored(&env, "admin").await, admin_before);
    env.check().await;
}

// ---- 7. Paging and size limits ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sync_pages_past_a_size_limit() {
    let env = Env::sqlite().await;
    let slapd = start_with(
        SlapdConfig {
            size_limit: Some("size.soft=50 size.hard=50 size.prtotal=unlimited".into()),
            ..Default::default()
        },
        &many_users(120),
    );
    // The limit applies to the service account: a search without paging stops at 50 (rc 4).
    let unpaged = slapd
        .search_as(SERVICE_DN, SERVICE_PASSWORD, PEOPLE, "(uid=*)", &["uid"])
        .unwrap_err()
        .to_string();
    assert!(unpaged.contains("Size limit exceeded"), "{unpaged}");

    let mut s = settings(&slapd);
    s.page_size = Some(20);
    configure(&env, s.clone()).await;
    let progress = Recorder::default();
    let report = env
        .roster
        .run_directory(&env.local_admin(), RunKind::Sync, "test", &progress)
        .await
        .unwrap();
    assert_eq!(report.entries_read, 120);
    assert_eq!(report.counts, counts(|c| c.created = 120));
    let seen = progress.0.lock().unwrap().clone();
    for page_end in [20, 40, 60, 80, 100, 120] {
        assert!(seen.contains(&page_end), "pages of 20: {seen:?}");
    }
    let all = users(&env).await;
    assert_eq!(all.len(), 121);
    assert_eq!(env.store.list_folders().await.unwrap().len(), 121);
    let recorded = env.store.get_run(report.run_id).await.unwrap().unwrap();
    assert_eq!(recorded.entries_read, 120);
    assert_eq!(recorded.status, RunStatus::Succeeded);

    // A page larger than the soft limit reads everything too: `size.prtotal=unlimited` lets any paged
    // search through (the kit's findings, src/slapd.rs).
    let synced = state(&env).await;
    s.page_size = Some(100);
    configure(&env, s).await;
    let report = preview(&env).await;
    assert_eq!(report.entries_read, 120);
    assert_eq!(report.counts, counts(|c| c.unchanged = 120));

    // A server that also caps the page size (`size.pr=50`) refuses a page of 100 (rc 11): the run
    // fails, says which setting to lower, and changes nothing, even with deletion on.
    let capped = start_with(
        SlapdConfig {
            size_limit: Some("size.soft=50 size.hard=50 size.pr=50 size.prtotal=unlimited".into()),
            ..Default::default()
        },
        &many_users(120),
    );
    let mut s = settings(&capped);
    s.page_size = Some(100);
    s.delete_users = true;
    configure(&env, s.clone()).await;
    let (_, code, message) = failed(run(&env, RunKind::Sync).await);
    assert_eq!(code, "DI013-search", "{message}");
    assert!(
        message.contains("result code 11") && message.contains("page_size"),
        "{message}"
    );
    assert_eq!(state(&env).await, synced);
    s.page_size = Some(50);
    configure(&env, s).await;
    assert_eq!(preview(&env).await.entries_read, 120);
    assert_eq!(state(&env).await, synced);
    env.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_hits_a_size_limit_fails_and_changes_nothing() {
    let env = Env::sqlite().await;
    // Paged searches are capped at 50 entries in total, whatever the page size.
    let slapd = start_with(
        SlapdConfig {
            size_limit: Some("size.prtotal=50".into()),
            ..Default::default()
        },
        &many_users(120),
    );
    // First, a narrower filter that stays under the cap: u1, u10..u19, u100..u120.
    let mut s = settings(&slapd);
    s.mapping.filter = "(&(objectClass=inetOrgPerson)(uid=u1*))".into();
    s.page_size = Some(20);
    configure(&env, s.clone()).await;
    assert_eq!(sync(&env).await.counts, counts(|c| c.created = 32));

    // Then everyone, with deletion on: a partial read would delete the users it didn't return.
    s.mapping.filter = "(objectClass=inetOrgPerson)".into();
    s.delete_users = true;
    let before = state(&env).await;
    for (page_size, kind) in [
        (20, RunKind::Sync),
        (100, RunKind::Sync),
        (20, RunKind::Preview),
    ] {
        s.page_size = Some(page_size);
        configure(&env, s.clone()).await;
        let (run_id, code, message) = failed(run(&env, kind).await);
        assert_eq!(code, "DI009-size-limit", "page size {page_size}: {message}");
        assert!(
            message.contains("size limit")
                && message.contains("after 50 entries")
                && message.contains("nothing was changed"),
            "{message}"
        );
        assert_eq!(state(&env).await, before, "page size {page_size}, {kind:?}");
        let recorded = env.store.get_run(run_id).await.unwrap().unwrap();
        assert_eq!(recorded.kind, kind);
        assert_eq!(recorded.status, RunStatus::Failed);
        assert_eq!(recorded.error.as_deref(), Some(message.as_str()));
        assert_eq!(recorded.counts, None);
        assert_eq!(recorded.entries_read, 50);
        assert!(recorded.finished_at.is_some());
        assert_eq!(env.store.run_lines(run_id, 0, 10).await.unwrap().total, 0);
    }
    env.check().await;
}

/// Records every progress report.
#[derive(Default)]
struct Recorder(Mutex<Vec<u64>>);

impl SyncProgress for Recorder {
    fn entries_read(&self, total: u64) {
        self.0.lock().unwrap().push(total);
    }
}

// ---- 8. A server killed mid-read, down, refusing the service account; bad filters ------------------

/// Kills slapd once a read has produced `at` entries.
struct KillAt {
    slapd: Arc<Mutex<Slapd>>,
    at: u64,
    killed_at: Mutex<Option<u64>>,
}

impl SyncProgress for KillAt {
    fn entries_read(&self, total: u64) {
        let mut killed = self.killed_at.lock().unwrap();
        if total >= self.at && killed.is_none() {
            self.slapd.lock().unwrap().kill();
            *killed = Some(total);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_in_the_middle_of_a_read_changes_nothing() {
    let env = Env::sqlite().await;
    // No size limit for the service account (slapd's default is 500): only the kill may stop this read.
    let slapd = start_with(
        SlapdConfig {
            size_limit: Some("unlimited".into()),
            ..Default::default()
        },
        &many_users(3000),
    );
    let mut s = settings(&slapd);
    s.page_size = Some(100);
    configure(&env, s.clone()).await;
    assert_eq!(sync(&env).await.counts, counts(|c| c.created = 3000));
    s.delete_users = true;
    configure(&env, s).await;
    let before = state(&env).await;

    let slapd = Arc::new(Mutex::new(slapd));
    let progress = KillAt {
        slapd: slapd.clone(),
        at: 500,
        killed_at: Mutex::new(None),
    };
    let result = env
        .roster
        .run_directory(&env.local_admin(), RunKind::Sync, "test", &progress)
        .await;
    let killed_at = progress
        .killed_at
        .lock()
        .unwrap()
        .expect("slapd was killed during the read");
    assert!((500..3000).contains(&killed_at), "{killed_at}");
    let (run_id, code, message) = failed(result);
    assert_eq!(code, "DI014-disconnected", "{message}");
    assert!(message.contains("nothing was changed"), "{message}");
    assert_eq!(
        state(&env).await,
        before,
        "nobody deleted after a partial read"
    );
    let recorded = env.store.get_run(run_id).await.unwrap().unwrap();
    assert_eq!(recorded.status, RunStatus::Failed);
    assert_eq!(recorded.error.as_deref(), Some(message.as_str()));
    assert!(
        (500..3000).contains(&recorded.entries_read),
        "{}",
        recorded.entries_read
    );

    // The server stays down: the next run can't connect, and changes nothing either.
    let (_, code, message) = failed(run(&env, RunKind::Sync).await);
    assert_eq!(code, "DI004-connect", "{message}");
    assert_eq!(state(&env).await, before);
    env.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_filter_wrong_service_password_and_server_down_change_nothing() {
    let env = Env::sqlite().await;
    let slapd = start(&ldap_user(
        "alice",
        "Alice Liddell",
        &["alice@example.com"],
        "alice-pw",
    ));
    let admin = env.local_admin();

    // A filter syntax error is refused with its position, before anything connects (nothing listens
    // on this port, so a connection attempt would be a different error).
    let mut s = settings(&slapd);
    s.port = Some(free_port());
    s.mapping.filter = "(uid=*".into();
    let e = env
        .roster
        .set_directory_settings(&admin, DirectorySettings::Ldap(s))
        .await
        .unwrap_err();
    match &e {
        AppError::InvalidSetting { key, message } => {
            assert_eq!(key, "filter");
            assert!(message.contains("position 7"), "{message}");
        }
        other => panic!("expected InvalidSetting, got {other:?}"),
    }
    assert_eq!(e.field(), Some("filter"));
    let shown = serde_json::to_value(env.roster.directory_settings(&admin).await.unwrap()).unwrap();
    assert_eq!(shown["type"], "none", "nothing stored: {shown}");
    assert_eq!(env.store.list_runs(0, 10).await.unwrap().total, 0);
    let before = state(&env).await;

    // A wrong service password: the service-bind error, without the password.
    let mut s = settings(&slapd);
    s.password = Some(Secret::new("not-the-service-password"));
    configure(&env, s).await;
    for kind in [RunKind::Preview, RunKind::Sync] {
        let (_, code, message) = failed(run(&env, kind).await);
        assert_eq!(code, "DI007-service-bind", "{message}");
        assert!(message.contains(SERVICE_DN), "{message}");
        assert!(!message.contains("not-the-service-password"), "{message}");
    }
    assert_eq!(state(&env).await, before);

    // A server that is down from the start.
    let mut s = settings(&slapd);
    s.port = Some(free_port());
    configure(&env, s).await;
    let (_, code, message) = failed(run(&env, RunKind::Sync).await);
    assert_eq!(code, "DI004-connect", "{message}");
    assert!(message.contains("nothing was changed"), "{message}");
    assert_eq!(state(&env).await, before);

    let runs = env.store.list_runs(0, 10).await.unwrap();
    assert_eq!(runs.total, 3);
    assert!(
        runs.items
            .iter()
            .all(|r| r.status == RunStatus::Failed && r.error.is_some()),
        "{:#?}",
        runs.items
    );

    // The same server with the right settings works: the failures were the settings'.
    configure(&env, settings(&slapd)).await;
    assert_eq!(sync(&env).await.counts, counts(|c| c.created = 1));
    env.check().await;
}

// ---- 9. TLS -------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_and_ldaps_with_the_test_ca_and_untrusted_certificates() {
    let env = Env::sqlite().await;
    let ca = TestCa::generate().unwrap();
    let directory = [
        ldap_user("alice", "Alice Liddell", &["alice@example.com"], "alice-pw"),
        ldap_user("bob", "Bob Brown", &["bob@example.com"], "bob-pw"),
    ]
    .concat();
    let slapd = start_with(
        SlapdConfig {
            tls: Some(SlapdTls::from_ca(&ca).unwrap()),
            ..Default::default()
        },
        &directory,
    );
    let ca_file = slapd.ca_cert_path().unwrap().to_owned();
    let ldaps_port: u16 = slapd
        .ldaps_url()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let starttls = LdapSettings {
        encryption: Encryption::Starttls,
        ca_file: Some(ca_file.clone()),
        ..settings(&slapd)
    };
    let ldaps = LdapSettings {
        encryption: Encryption::Ssl,
        port: Some(ldaps_port),
        ca_file: Some(ca_file.clone()),
        ..settings(&slapd)
    };

    configure(&env, starttls.clone()).await;
    assert_eq!(sync(&env).await.counts, counts(|c| c.created = 2));
    env.roster.verify_logon("alice", "alice-pw").await.unwrap();
    assert_logon_failed(
        &logon_error(&env, "alice", "bob-pw").await,
        "StartTLS, wrong",
    );

    configure(&env, ldaps.clone()).await;
    assert_eq!(sync(&env).await.counts, counts(|c| c.unchanged = 2));
    env.roster.verify_logon("bob", "bob-pw").await.unwrap();
    let synced = state(&env).await;

    for (what, mut s) in [("StartTLS", starttls), ("LDAPS", ldaps)] {
        // Without the CA, the test CA's certificate is not trusted.
        s.ca_file = None;
        configure(&env, s.clone()).await;
        let (_, code, message) = failed(run(&env, RunKind::Sync).await);
        assert_eq!(code, "DI005-certificate-untrusted", "{what}: {message}");
        assert!(
            message.contains("ca_file") && message.contains("ignore_certificate_errors"),
            "{what}: {message}"
        );
        let e = logon_error(&env, "alice", "alice-pw").await;
        assert!(
            matches!(e, AppError::DirectoryUnavailableAtLogon),
            "{what}: {e:?}"
        );
        assert_eq!(state(&env).await, synced);

        s.ignore_certificate_errors = true;
        configure(&env, s).await;
        assert_eq!(
            sync(&env).await.counts,
            counts(|c| c.unchanged = 2),
            "{what}, ignoring certificate errors"
        );
        env.roster.verify_logon("alice", "alice-pw").await.unwrap();
    }
    assert_eq!(state(&env).await, synced);

    // A self-signed server certificate: refused even with the CA, accepted when errors are ignored.
    let rogue = start_with(
        SlapdConfig {
            tls: Some(SlapdTls {
                cert: ca.self_signed_server_cert("localhost").unwrap(),
                ca_cert_path: ca.ca_cert_path().into(),
            }),
            ..Default::default()
        },
        &directory,
    );
    let mut s = LdapSettings {
        encryption: Encryption::Starttls,
        ca_file: Some(ca_file),
        ..settings(&rogue)
    };
    configure(&env, s.clone()).await;
    let (_, code, message) = failed(run(&env, RunKind::Preview).await);
    assert_eq!(code, "DI005-certificate-untrusted", "{message}");
    s.ignore_certificate_errors = true;
    configure(&env, s).await;
    let report = preview(&env).await;
    assert_eq!(report.entries_read, 2);
    assert_eq!(state(&env).await, synced);
    env.check().await;
}

// ---- 10. Logon with the LDAP password ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logon_with_the_ldap_password() {
    let env = Env::sqlite().await;
    let staff = format!("ou=Staff,{PEOPLE}");
    let slapd = start(
        &[
            ou(&staff, "Staff"),
            ldap_user("alice", "Alice Liddell", &["alice@example.com"], "alice-pw"),
            ldap_user("bob", "Bob Brown", &["bob@example.com"], "bob-pw"),
            ldap_user("carol", "Carol Clark", &["carol@example.com"], "carol-pw"),
            ldap_user("dave", "Dave Davis", &["dave@example.com"], "dave-pw"),
        ]
        .concat(),
    );
    let mut s = settings(&slapd);
    s.mapping.filter = "(&(objectClass=inetOrgPerson)(mail=*))".into();
    configure(&env, s).await;
    assert_eq!(sync(&env).await.counts, counts(|c| c.created = 4));
    let alice = stored(&env, "alice").await;

    // The right password.
    let user = env.roster.verify_logon("alice", "alice-pw").await.unwrap();
    assert_eq!(user.id, alice.id);
    assert_eq!(
        env.roster
            .verify_logon("ALICE", "alice-pw")
            .await
            .unwrap()
            .id,
        alice.id
    );
    let session = env.roster.logon("alice", "alice-pw").await.unwrap();
    assert_eq!(session.user.id, alice.id);
    assert!(matches!(
        env.roster.authenticate_token(&session.token).await.unwrap(),
        Caller::User(u) if u.id == alice.id
    ));

    // Wrong password, unknown user: the same answer.
    let wrong = logon_error(&env, "alice", "bob-pw").await;
    assert_logon_failed(&wrong, "wrong password");
    let unknown = logon_error(&env, "nobody", "alice-pw").await;
    assert_logon_failed(&unknown, "unknown user");
    assert_eq!(wrong.to_string(), unknown.to_string());
    assert_eq!(wrong.code(), unknown.code());
    assert!(matches!(
        env.roster.logon("alice", "bob-pw").await.unwrap_err(),
        AppError::LogonFailed
    ));
    // And in the same time (regression, review of issue 4: a wrong password for a directory user
    // answered in 2 ms, an unknown name in 21-39 ms, which gave the directory's users away). Fastest of
    // three each, so that a slow moment of the machine can't fail it; without the dummy Argon2 check
    // beside the bind, the directory user is about ten times faster.
    let (wrong_fastest, unknown_fastest) =
        fastest_refusals(&env, ("alice", "bob-pw"), ("nobody", "alice-pw")).await;
    assert!(
        wrong_fastest * 2 >= unknown_fastest,
        "a wrong directory password took {wrong_fastest:?}, an unknown name {unknown_fastest:?}"
    );
    // A directory user Roster knows but the directory doesn't.
    create_manual(&env, "ghost", AuthMethod::Directory, None, &[]).await;
    assert_logon_failed(&logon_error(&env, "ghost", "alice-pw").await, "ghost");

    // Empty passwords are refused before any bind.
    for name in ["alice", "nobody", "ghost"] {
        let e = logon_error(&env, name, "").await;
        assert!(matches!(e, AppError::EmptyPassword), "{name}: {e:?}");
    }

    // Injection: names with filter syntax are escaped. They exist in Roster (directory authentication,
    // created by hand) so that the name search in the directory really runs. Unescaped, the last three
    // would each find exactly alice and bind as her with her password.
    let injections = [
        "*",
        "*)(uid=*",
        "admin)(|(uid=*",
        "al*",
        "alice)(uid=*",
        "*)(uid=alice",
    ];
    for name in injections {
        create_manual(&env, name, AuthMethod::Directory, None, &[]).await;
    }
    for name in injections {
        for password in ["alice-pw", "bob-pw"] {
            assert_logon_failed(
                &logon_error(&env, name, password).await,
                &format!("injection {name:?}"),
            );
        }
    }

    // A user outside the filter (no mail any more) can't log on, though Roster still has them.
    slapd
        .modify(&format!(
            "dn: uid=bob,{PEOPLE}\nchangetype: modify\ndelete: mail\n"
        ))
        .unwrap();
    assert_logon_failed(
        &logon_error(&env, "bob", "bob-pw").await,
        "outside the filter",
    );
    // A user moved out of the base DN can't either, even with the DN stored by the last sync.
    slapd
        .modify(&format!(
            "dn: uid=carol,{PEOPLE}\nchangetype: modrdn\nnewrdn: uid=carol\ndeleteoldrdn: 1\nnewsuperior: ou=Groups,{SUFFIX}\n"
        ))
        .unwrap();
    assert_logon_failed(
        &logon_error(&env, "carol", "carol-pw").await,
        "outside the base DN",
    );
    // A user moved within the base DN: the stored DN is stale, the name search finds the new one.
    slapd
        .modify(&format!(
            "dn: uid=dave,{PEOPLE}\nchangetype: modrdn\nnewrdn: uid=dave\ndeleteoldrdn: 1\nnewsuperior: {staff}\n"
        ))
        .unwrap();
    let dave = stored(&env, "dave").await;
    assert_eq!(
        dave.directory.as_ref().and_then(|l| l.dn.as_deref()),
        Some(format!("uid=dave,{PEOPLE}").as_str()),
        "the stored DN is the old one"
    );
    assert_eq!(
        env.roster.verify_logon("dave", "dave-pw").await.unwrap().id,
        dave.id
    );
    assert_logon_failed(&logon_error(&env, "dave", "alice-pw").await, "moved, wrong");
    // The administrator still logs on locally.
    env.roster
        .verify_logon("admin", crate::support::ADMIN_PASSWORD)
        .await
        .unwrap();
    env.check().await;
}

/// The shortest of three refused logons.
/// The fastest of five refusals of each, taken in turns: a busy moment of the machine (the rest of the
/// suite runs beside this test) then slows both alike instead of only the one measured during it.
async fn fastest_refusals(
    env: &Env,
    a: (&str, &str),
    b: (&str, &str),
) -> (std::time::Duration, std::time::Duration) {
    let mut fastest = [std::time::Duration::MAX; 2];
    for _ in 0..5 {
        for (slot, (name, password)) in fastest.iter_mut().zip([a, b]) {
            // Each attempt a first failure: a throttled one answers without a check.
            env.store
                .clear_logon_throttle(&roster_core::names::name_key(name))
                .await
                .unwrap();
            let started = std::time::Instant::now();
            assert_logon_failed(&logon_error(env, name, password).await, name);
            *slot = (*slot).min(started.elapsed());
        }
    }
    (fastest[0], fastest[1])
}

// ---- 11. Runs never overlap ---------------------------------------------------------------------

/// Holds a run in its read until the test lets it go.
struct Gate {
    reached: mpsc::Sender<u64>,
    go: Mutex<mpsc::Receiver<()>>,
    held: AtomicBool,
}

impl SyncProgress for Gate {
    fn entries_read(&self, total: u64) {
        if total > 0 && !self.held.swap(true, Ordering::SeqCst) {
            let _ = self.reached.send(total);
            // Blocks this worker thread only; the test runs on another thread.
            let _ = self
                .go
                .lock()
                .unwrap()
                .recv_timeout(Duration::from_secs(60));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_never_overlap() {
    let env = Env::sqlite().await;
    let slapd = start(&many_users(300));
    let mut s = settings(&slapd);
    s.page_size = Some(20);
    configure(&env, s).await;

    // A sync held in the middle of its read; a preview meanwhile is refused.
    let (reached_tx, reached_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    let gate = Arc::new(Gate {
        reached: reached_tx,
        go: Mutex::new(go_rx),
        held: AtomicBool::new(false),
    });
    let task = {
        let roster = env.roster.clone();
        let caller = env.local_admin();
        let gate = gate.clone();
        tokio::spawn(async move {
            roster
                .run_directory(&caller, RunKind::Sync, "test", &*gate)
                .await
        })
    };
    let held_at = tokio::task::spawn_blocking(move || {
        reached_rx.recv_timeout(Duration::from_secs(60)).unwrap()
    })
    .await
    .unwrap();
    assert!(held_at < 300, "{held_at}");
    let refused = run(&env, RunKind::Preview).await.unwrap_err();
    assert_eq!(refused.code(), "ST005-run-in-progress", "{refused}");
    let blocking_run = match &refused {
        AppError::Store(StoreError::RunInProgress { run_id, kind, .. }) => {
            assert_eq!(kind, "sync");
            *run_id
        }
        other => panic!("expected RunInProgress, got {other:?}"),
    };
    assert_eq!(
        names(&users(&env).await),
        ["admin"],
        "the held sync hasn't applied"
    );
    go_tx.send(()).unwrap();
    let report = task.await.unwrap().unwrap();
    assert_eq!(report.run_id, blocking_run);
    assert_eq!(report.counts, counts(|c| c.created = 300));
    assert_eq!(env.store.list_runs(0, 10).await.unwrap().total, 1);

    // Deterministically: a run begun elsewhere (another process on the same database) blocks both.
    slapd
        .modify(&format!(
            "dn: uid=u1,{PEOPLE}\nchangetype: modify\nreplace: cn\ncn: Renamed One\n"
        ))
        .unwrap();
    let before = state(&env).await;
    let now = env.roster.now();
    let other = env
        .store
        .begin_run(
            &NewRun {
                kind: RunKind::Sync,
                triggered_by: "cli".into(),
                actor: Actor("cli:someone".into()),
                directory_type: "ldap".into(),
            },
            now,
            now.plus_seconds(-120),
        )
        .await
        .unwrap();
    for kind in [RunKind::Sync, RunKind::Preview] {
        let e = run(&env, kind).await.unwrap_err();
        match &e {
            AppError::Store(StoreError::RunInProgress { run_id, actor, .. }) => {
                assert_eq!(*run_id, other);
                assert_eq!(actor, "cli:someone");
            }
            other => panic!("{kind:?}: expected RunInProgress, got {other:?}"),
        }
        assert_eq!(e.code(), "ST005-run-in-progress");
        assert!(e.to_string().contains("in progress"), "{e}");
    }
    assert_eq!(state(&env).await, before, "a refused sync changes nothing");
    assert_eq!(env.store.list_runs(0, 10).await.unwrap().total, 2);
    env.store
        .finish_run(
            other,
            &RunOutcome {
                status: RunStatus::Failed,
                entries_read: 0,
                counts: None,
                error: Some("stopped".into()),
                error_code: None,
                phase: roster_store::RunPhase::Recording,
                lines: &[],
                planned_deletions: None,
                read_mode: None,
                read_state: None,
            },
            now,
        )
        .await
        .unwrap();
    // Once it is over, runs go ahead.
    let report = sync(&env).await;
    assert_eq!(
        report.counts,
        counts(|c| {
            c.updated = 1;
            c.unchanged = 299;
        })
    );
    assert_eq!(stored(&env, "u1").await.full_name, "Renamed One");
    env.check().await;
}

// ---- 12. LDIF file ------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ldif_file_previews_and_syncs_but_cannot_check_passwords() {
    let env = Env::sqlite().await;
    let zoe_dn = format!("uid=zoë,{PEOPLE}");
    let text = format!(
        "# An export with comments, base64 values and folded lines.\n\
         version: 1\n\
         \n\
         dn: {PEOPLE}\n\
         objectClass: organizationalUnit\n\
         ou: People\n\
         \n\
         dn:: {zoe_dn_b64}\n\
         objectClass: inetOrgPerson\n\
         uid:: {zoe_uid_b64}\n\
         cn:: {zoe_cn_b64}\n\
         sn: Angstrom\n\
         mail: zoe@example.com\n\
         mail: zoe@exa\n mple.org\n\
         entryUUID: 6f1e7f0a-0000-4000-8000-000000000001\n\
         \n\
         # between records\n\
         dn: uid=folded,{PEOPLE}\n\
         objectClass: inetOrgPerson\n\
         uid: fol\n ded\n\
         cn: Folded\n  Name\n\
         sn: Name\n\
         mail: folded@example.com\n\
         entryUUID: 6F1E7F0A-0000-4000-8000-000000000002\n\
         \n\
         dn: uid=nomail,{PEOPLE}\n\
         objectClass: inetOrgPerson\n\
         uid: nomail\n\
         cn: No Mail\n\
         sn: Mail\n\
         entryUUID: 6f1e7f0a-0000-4000-8000-000000000003\n\
         \n\
         dn: uid=outside,ou=Partners,{SUFFIX}\n\
         objectClass: inetOrgPerson\n\
         uid: outside\n\
         cn: Out Side\n\
         sn: Side\n\
         mail: outside@example.com\n\
         entryUUID: 6f1e7f0a-0000-4000-8000-000000000004\n",
        zoe_dn_b64 = base64(zoe_dn.as_bytes()),
        zoe_uid_b64 = base64("zoë".as_bytes()),
        zoe_cn_b64 = base64("Zoë Ångström".as_bytes()),
    );
    let file = env.dir.path().join("people.ldif");
    std::fs::write(&file, text).unwrap();
    let ldif = LdifSettings {
        schedule: Default::default(),
        file: file.clone(),
        base_dn: PEOPLE.into(),
        mapping: roster_core::directory::AttributeMapping {
            filter: "(&(objectClass=inetOrgPerson)(mail=*))".into(),
            username_attribute: "uid".into(),
            full_name_attribute: Some("cn".into()),
            email_attributes: Some("mail".into()),
        },
        delete_users: false,
        guard: Default::default(),
        limits: Default::default(),
    };
    env.roster
        .set_directory_settings(&env.local_admin(), DirectorySettings::Ldif(ldif.clone()))
        .await
        .unwrap();
    let empty = state(&env).await;

    let p = preview(&env).await;
    assert_eq!(p.directory_type, "ldif");
    assert_eq!(p.entries_read, 2, "the filter and the base DN apply");
    assert_eq!(p.counts, counts(|c| c.created = 2));
    assert_eq!(
        p.lines,
        [
            line(
                "folded",
                ReportAction::Created,
                "new in the directory",
                &format!("uid=folded,{PEOPLE}")
            ),
            line(
                "zoë",
                ReportAction::Created,
                "new in the directory",
                &zoe_dn
            ),
        ]
    );
    assert_eq!(state(&env).await, empty, "a preview commits nothing");

    let report = sync(&env).await;
    assert_eq!(report.counts, counts(|c| c.created = 2));
    assert_eq!(report.lines, p.lines);
    assert_eq!(names(&users(&env).await), ["admin", "folded", "zoë"]);
    let zoe = stored(&env, "zoë").await;
    assert_eq!(zoe.full_name, "Zoë Ångström");
    assert_eq!(emails(&zoe), ["zoe@example.com", "zoe@example.org"]);
    assert_eq!(zoe.auth, AuthMethod::Directory);
    assert_eq!(zoe.privileges, default_privileges());
    assert_eq!(
        zoe.directory,
        Some(DirectoryLink {
            source: "ldif".into(),
            id: "6f1e7f0a-0000-4000-8000-000000000001".into(),
            dn: Some(zoe_dn.clone()),
        })
    );
    let folded = stored(&env, "folded").await;
    assert_eq!(folded.full_name, "Folded Name");
    assert_eq!(
        folded.directory_id.as_deref(),
        Some("6f1e7f0a-0000-4000-8000-000000000002")
    );

    // No passwords in an LDIF file: said clearly.
    let e = logon_error(&env, "zoë", "anything").await;
    match &e {
        AppError::DirectoryLogonUnavailable(why) => {
            assert!(why.contains("LDIF"), "{why}")
        }
        other => panic!("expected DirectoryLogonUnavailable, got {other:?}"),
    }

    let synced = state(&env).await;
    assert_eq!(sync(&env).await.counts, counts(|c| c.unchanged = 2));
    assert_eq!(state(&env).await, synced);

    // Regression (review of issue 4): with delete_users, a file cut inside a line, or emptied, was read
    // as complete and the users after the cut were deleted. Now the run fails and changes nothing.
    env.roster
        .set_directory_settings(
            &env.local_admin(),
            DirectorySettings::Ldif(LdifSettings {
                delete_users: true,
                ..ldif
            }),
        )
        .await
        .unwrap();
    let full = std::fs::read_to_string(&file).unwrap();
    let cut = full.find("uid: fol").unwrap() + 6;
    for (text, fragment) in [(&full[..cut], "truncated"), ("", "no entries")] {
        std::fs::write(&file, text).unwrap();
        let before = state(&env).await;
        let (_, code, message) = failed(run(&env, RunKind::Sync).await);
        assert_eq!(code, "DI017-ldif", "{message}");
        assert!(message.contains(fragment), "{message}");
        assert_eq!(state(&env).await, before, "{fragment}: nothing changed");
    }
    env.check().await;
}

/// Entries without entryUUID (an LDIF export made without operational attributes) are identified by DN:
/// the report says so once, because renames can't be followed for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_without_a_stable_id_are_reported() {
    let env = Env::sqlite().await;
    let file = env.dir.path().join("no-uuid.ldif");
    std::fs::write(
        &file,
        "dn: uid=nina,ou=People,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: nina\ncn: Nina\nsn: N\nmail: nina@example.com\n\n\
         dn: uid=otto,ou=People,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: otto\ncn: Otto\nsn: O\nmail: otto@example.com\n",
    )
    .unwrap();
    env.roster
        .set_directory_settings(
            &env.local_admin(),
            DirectorySettings::Ldif(LdifSettings {
                schedule: Default::default(),
                file,
                base_dn: String::new(),
                mapping: roster_core::directory::AttributeMapping {
                    filter: "(objectClass=inetOrgPerson)".into(),
                    username_attribute: "uid".into(),
                    full_name_attribute: None,
                    email_attributes: Some("mail".into()),
                },
                delete_users: false,
                guard: Default::default(),
                limits: Default::default(),
            }),
        )
        .await
        .unwrap();
    let report = sync(&env).await;
    assert_eq!(report.counts.created, 2);
    let warnings: Vec<&ReportLine> = report
        .lines
        .iter()
        .filter(|l| l.action == ReportAction::Warning)
        .collect();
    assert_eq!(warnings.len(), 1, "{:?}", report.lines);
    assert_eq!(warnings[0].user, "2 entries");
    assert!(warnings[0].reason.contains("no stable id"));
    let nina = env
        .roster
        .get_user(&env.local_admin(), "nina")
        .await
        .unwrap();
    assert_eq!(
        nina.directory_id.as_deref(),
        Some("dn:uid=nina,ou=people,dc=example,dc=com")
    );
    env.check().await;
}

/// Creates a user by hand once a read has produced `at` entries, from inside the read.
struct CreateDuringRead {
    roster: Arc<roster_app::Roster>,
    at: u64,
    done: AtomicBool,
}

impl SyncProgress for CreateDuringRead {
    fn entries_read(&self, total: u64) {
        if total >= self.at && !self.done.swap(true, Ordering::SeqCst) {
            let roster = self.roster.clone();
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async move {
                    roster
                        .create_user(
                            &Caller::Local("test".into()),
                            NewUserInput {
                                name: "u250".into(),
                                full_name: String::new(),
                                emails: vec!["u250@example.com".into()],
                                auth: AuthMethod::Local,
                                password: Some("by-hand-1".into()),
                                privileges: None,
                            },
                        )
                        .await
                        .unwrap();
                })
            });
        }
    }
}

/// Review of 220154d: the users are now loaded while the directory is read. A user created by hand during
/// the read must be in the plan (loaded again because the version moved), and the plan must apply: the
/// entry u250 links to that user instead of trying to create a second u250.
async fn a_user_created_during_the_read_is_planned_from_and_the_plan_applies(env: Env) {
    let slapd = start_with(
        SlapdConfig {
            size_limit: Some("unlimited".into()),
            ..Default::default()
        },
        &many_users(300),
    );
    let mut s = settings(&slapd);
    s.page_size = Some(50);
    configure(&env, s).await;
    let progress = CreateDuringRead {
        roster: env.roster.clone(),
        at: 250,
        done: AtomicBool::new(false),
    };
    let report = env
        .roster
        .run_directory(&env.local_admin(), RunKind::Sync, "test", &progress)
        .await
        .unwrap_or_else(|e| panic!("sync failed: {e} ({})", e.code()));
    assert!(
        progress.done.load(Ordering::SeqCst),
        "created during the read"
    );
    assert_eq!(
        report.counts,
        counts(|c| {
            c.created = 299;
            c.linked = 1;
        })
    );
    let u250 = stored(&env, "u250").await;
    assert_eq!(u250.auth, AuthMethod::Local, "linked, auth kept");
    assert!(u250.directory_id.is_some());
    assert_eq!(users(&env).await.len(), 301);
    env.check().await;
}
on_both_backends!(a_user_created_during_the_read_is_planned_from_and_the_plan_applies);

/// Files messages (sets folder message counts) when the sync starts applying: after the plan was made,
/// before the store decides. The archive does this all the time.
struct FileMessagesBeforeApply {
    roster: Arc<roster_app::Roster>,
    counts: Vec<(&'static str, i64)>,
    done: AtomicBool,
}

impl SyncProgress for FileMessagesBeforeApply {
    fn phase(&self, phase: roster_app::SyncPhase) {
        if phase == roster_app::SyncPhase::Applying && !self.done.swap(true, Ordering::SeqCst) {
            let roster = self.roster.clone();
            let counts = self.counts.clone();
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current().block_on(async move {
                    for (folder, count) in counts {
                        roster
                            .set_message_count(&Caller::Local("archive".into()), folder, count)
                            .await
                            .unwrap();
                    }
                })
            });
        }
    }
}

/// A message count that changes between the plan and the apply neither fails the sync as stale (the
/// archive files messages all the time) nor loses a folder: the store decides each departed user's
/// folder by its count at the apply, and the report says what it did.
async fn folders_are_decided_by_their_message_count_when_the_sync_applies(env: Env) {
    let slapd = start(
        &[
            ldap_user("alice", "Alice Liddell", &["alice@example.com"], "alice-pw"),
            ldap_user("bob", "Bob Brown", &["bob@example.com"], "bob-pw"),
            ldap_user("dave", "Dave Davis", &["dave@example.com"], "dave-pw"),
        ]
        .concat(),
    );
    let mut s = settings(&slapd);
    s.delete_users = true;
    s.guard = crate::support::unguarded();
    configure(&env, s).await;
    assert_eq!(sync(&env).await.counts, counts(|c| c.created = 3));
    env.roster
        .set_message_count(&env.local_admin(), "bob", 7)
        .await
        .unwrap();
    for uid in ["bob", "dave"] {
        slapd
            .modify(&format!("dn: uid={uid},{PEOPLE}\nchangetype: delete\n"))
            .unwrap();
    }
    // Planned: bob's folder kept (7 messages), dave's deleted (empty). Before the apply, bob's folder is
    // emptied and dave's gets its first message.
    let progress = FileMessagesBeforeApply {
        roster: env.roster.clone(),
        counts: vec![("bob", 0), ("dave", 2)],
        done: AtomicBool::new(false),
    };
    let report = env
        .roster
        .run_directory(&env.local_admin(), RunKind::Sync, "test", &progress)
        .await
        .unwrap_or_else(|e| panic!("sync failed: {e} ({})", e.code()));
    assert!(progress.done.load(Ordering::SeqCst), "counts set mid-run");
    assert_eq!(
        report.counts,
        counts(|c| {
            c.deleted = 2;
            c.folders_kept = 1;
            c.unchanged = 1;
        })
    );
    assert_eq!(
        report.lines,
        vec![
            line(
                "bob",
                ReportAction::Deleted,
                "no longer found under the base DN with the filter (deleted, moved or changed in the directory); the empty archive folder is deleted too",
                &format!("uid=bob,{PEOPLE}"),
            ),
            line(
                "dave",
                ReportAction::Deleted,
                "no longer found under the base DN with the filter (deleted, moved or changed in the directory); the archive folder holds messages and is kept",
                &format!("uid=dave,{PEOPLE}"),
            ),
        ]
    );
    let recorded = env
        .store
        .run_lines(report.run_id, 0, 10)
        .await
        .unwrap()
        .items;
    assert_eq!(recorded, report.lines, "the recorded report says the same");
    assert_eq!(names(&users(&env).await), ["admin", "alice"]);
    let folders = env.store.list_folders().await.unwrap();
    assert_eq!(
        folder_rows(&folders),
        [
            ("admin", Some("admin"), 0),
            ("alice", Some("alice"), 0),
            ("dave", None, 2),
        ]
    );
    env.check().await;
}
on_both_backends!(folders_are_decided_by_their_message_count_when_the_sync_applies);
