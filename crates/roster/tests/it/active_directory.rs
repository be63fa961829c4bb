//! Active Directory (issue 21): Test Settings, Synchronize now, logon with the AD password and the
//! group picker, through `roster_app::Roster`, against a real Samba AD domain controller (one per test
//! process, from the test kit). Every test works in OUs of its own, and its sAMAccountNames carry a
//! suffix of their own (`alice.t3`): they are unique in the whole domain the tests share.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::on_both_backends;
use crate::support::{Env, failed, run, state, sync, synced_names, warnings};
use roster_app::AppError;
use roster_core::directory::{
    ActiveDirectorySettings, AdProtocol, DirectorySettings, Encryption, LdapSettings, Secret,
};
use roster_core::plan::ReportAction;
use roster_core::user::AuthMethod;
use roster_store::RunKind;
use roster_testkit::samba::{ADMIN_PASSWORD, ADMIN_UPN, BASE_DN, DNS_DOMAIN};
use roster_testkit::{AdUser, Ou, SambaDc};

mod incremental;

async fn dc() -> &'static SambaDc {
    tokio::task::spawn_blocking(SambaDc::shared)
        .await
        .unwrap()
        .unwrap()
}

/// One test's corner of the domain: an OU, and the suffix of its names.
struct Corner {
    dc: &'static SambaDc,
    ou: Ou,
    tag: String,
}

impl Corner {
    async fn new(name: &str) -> Corner {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dc = dc().await;
        let ou = dc.new_ou(name).await.unwrap();
        let tag = format!("t{}", N.fetch_add(1, Ordering::Relaxed));
        Corner { dc, ou, tag }
    }

    /// The sAMAccountName (and Roster user name) of `name` in this corner.
    fn sam(&self, name: &str) -> String {
        format!("{name}.{}", self.tag)
    }

    /// An enabled user with a password (`<name>-pw`), a display name and an address.
    fn user(&self, name: &str) -> AdUser {
        let mut u = AdUser::new(&self.sam(name));
        u.cn = Some(format!("{name} {}", self.tag));
        u.display_name = Some(format!("Display {name}"));
        u.mail = Some(format!("{name}.{}@example.com", self.tag));
        u.password = Some(format!("{name}-pw"));
        u
    }

    async fn add(&self, user: &AdUser) -> String {
        self.ou.add_user(user).await.unwrap()
    }

    /// Settings that read this corner's OU with the seed's default filters, over StartTLS with the
    /// test CA.
    fn settings(&self) -> ActiveDirectorySettings {
        ActiveDirectorySettings {
            schedule: Default::default(),
            domain: DNS_DOMAIN.into(),
            server: self.dc.ip().to_string(),
            dns_server: String::new(),
            port: None,
            protocol: AdProtocol::Ldap,
            ignore_certificate_errors: false,
            ca_file: Some(self.dc.ca_cert_path().to_owned()),
            base_dn: self.ou.dn().to_owned(),
            username: ADMIN_UPN.into(),
            password: Some(Secret::new(ADMIN_PASSWORD)),
            authentication: roster_core::directory::AdAuthentication::Password,
            keytab: None,
            principal: String::new(),
            exchange_users_only: true,
            enabled_users_only: true,
            visible_in_address_lists_only: false,
            groups: vec![],
            delete_users: false,
            guard: Default::default(),
            page_size: None,
            timeout_seconds: None,
        }
    }
}

async fn configure(env: &Env, s: ActiveDirectorySettings) {
    env.roster
        .set_directory_settings(&env.local_admin(), DirectorySettings::ActiveDirectory(s))
        .await
        .unwrap();
}

async fn fails_and_changes_nothing(env: &Env, code: &str) -> String {
    let before = state(env).await;
    let (got, message) = failed(run(env, RunKind::Sync).await);
    assert_eq!(got, code, "{message}");
    assert_eq!(state(env).await, before, "a failed run changed the users");
    assert!(!message.contains(ADMIN_PASSWORD), "{message}");
    message
}

fn sorted(names: &[String]) -> Vec<String> {
    let mut v = names.to_vec();
    v.sort();
    v
}

/// A preview, then a sync of an OU: names, display names, addresses from `mail` and `proxyAddresses`
/// (the primary SMTP first, X500 and SIP left out), objectGUID links; a second sync changes nothing.
async fn previews_and_syncs_an_ou(env: Env) {
    let c = Corner::new("sync").await;
    let mut alice = c.user("alice");
    alice.proxy_addresses = vec![
        format!("smtp:al.{}@example.com", c.tag),
        format!("SMTP:Alice.Primary.{}@example.com", c.tag),
        "X500:/o=ExchangeLabs/ou=Exchange/cn=alice".into(),
        format!("sip:alice.{}@example.com", c.tag),
        format!("smtp:ALICE.{}@example.com", c.tag),
    ];
    c.add(&alice).await;
    let mut no_display = c.user("bob");
    no_display.display_name = None;
    c.add(&no_display).await;
    configure(&env, c.settings()).await;
    let preview = run(&env, RunKind::Preview).await.unwrap();
    assert_eq!(preview.counts.created, 2, "{:#?}", preview.lines);
    assert!(
        synced_names(&env).await.is_empty(),
        "a preview commits nothing"
    );
    let notes = warnings(&preview);
    assert!(
        notes.iter().any(|n| n.contains("domain controller")
            && n.contains("given in `server`")
            && n.contains("StartTLS")),
        "{notes:#?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("Exchange users only, enabled users only")),
        "{notes:#?}"
    );

    sync(&env).await;
    assert_eq!(
        synced_names(&env).await,
        sorted(&[c.sam("alice"), c.sam("bob")])
    );
    let a = env
        .roster
        .get_user(&env.local_admin(), &c.sam("alice"))
        .await
        .unwrap();
    assert_eq!(a.full_name, "Display alice");
    let emails: Vec<&str> = a.emails.iter().map(|e| e.as_str()).collect();
    assert_eq!(
        emails,
        [
            format!("Alice.Primary.{}@example.com", c.tag),
            format!("alice.{}@example.com", c.tag),
            format!("al.{}@example.com", c.tag),
        ]
    );
    assert_eq!(a.auth, AuthMethod::Directory);
    let link = a.directory.as_ref().unwrap();
    assert_eq!(link.source, "active-directory");
    assert_eq!(link.id.len(), 36, "a GUID: {}", link.id);
    let b = env
        .roster
        .get_user(&env.local_admin(), &c.sam("bob"))
        .await
        .unwrap();
    assert_eq!(
        b.full_name,
        format!("bob {}", c.tag),
        "cn without displayName"
    );

    let before = state(&env).await;
    let again = sync(&env).await;
    assert_eq!(again.counts.created + again.counts.updated, 0);
    assert_eq!(state(&env).await, before);
    env.check().await;
}
on_both_backends!(previews_and_syncs_an_ou);

/// With no server, the domain controller is found through Samba's DNS; with no base DN, the read starts
/// at the domain's root (continuation references skipped and counted), limited here to a group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_domain_controller_and_base_dn_are_discovered() {
    let c = Corner::new("discovery").await;
    let alice = c.add(&c.user("alice")).await;
    let group =
        c.ou.add_group(&c.sam("staff"), &[alice.as_str()])
            .await
            .unwrap();
    let env = Env::sqlite().await;
    let mut s = c.settings();
    s.server = String::new();
    s.dns_server = c.dc.dns_server().to_string();
    s.base_dn = String::new();
    s.groups = vec![group.clone()];
    configure(&env, s.clone()).await;
    let report = sync(&env).await;
    assert_eq!(synced_names(&env).await, [c.sam("alice")]);
    let notes = warnings(&report);
    assert!(
        notes
            .iter()
            .any(|n| n.contains("dc1.roster.test") && n.contains("found through DNS")),
        "{notes:#?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains(&format!("base DN {BASE_DN}"))),
        "{notes:#?}"
    );
    // A domain nobody serves: a clear discovery error, nothing changed.
    s.domain = "nowhere.test".into();
    configure(&env, s).await;
    let message = fails_and_changes_nothing(&env, "DI028-discovery").await;
    assert!(
        message.contains("_ldap._tcp.dc._msdcs.nowhere.test"),
        "{message}"
    );
    env.check().await;
}

/// StartTLS and LDAPS, each refused without the CA, accepted with it or when told to ignore
/// certificate errors; the generic LDAP type without encryption gets Samba's refusal explained.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starttls_and_ldaps_with_and_without_the_ca_and_plain_ldap_refused() {
    let c = Corner::new("tls").await;
    c.add(&c.user("alice")).await;
    let env = Env::sqlite().await;
    for protocol in [AdProtocol::Ldap, AdProtocol::Ldaps] {
        let mut s = c.settings();
        s.protocol = protocol;
        s.ca_file = None;
        configure(&env, s.clone()).await;
        let message = fails_and_changes_nothing(&env, "DI005-certificate-untrusted").await;
        assert!(
            message.contains("ca_file") || message.contains("certificate"),
            "{message}"
        );
        s.ca_file = Some(c.dc.ca_cert_path().to_owned());
        configure(&env, s.clone()).await;
        let report = run(&env, RunKind::Preview).await.unwrap();
        assert_eq!(report.counts.created, 1, "{protocol:?}");
        s.ca_file = None;
        s.ignore_certificate_errors = true;
        configure(&env, s).await;
        assert_eq!(run(&env, RunKind::Preview).await.unwrap().counts.created, 1);
    }
    // Plain LDAP: Samba refuses the simple bind ("Transport encryption required"), and the message
    // says what to change.
    let plain = LdapSettings {
        schedule: Default::default(),
        server: c.dc.ip().to_string(),
        port: None,
        encryption: Encryption::None,
        ignore_certificate_errors: false,
        ca_file: None,
        bind_dn: ADMIN_UPN.into(),
        password: Some(Secret::new(ADMIN_PASSWORD)),
        base_dn: c.ou.dn().to_owned(),
        mapping: roster_core::directory::AttributeMapping {
            filter: "(objectClass=user)".into(),
            username_attribute: "sAMAccountName".into(),
            full_name_attribute: None,
            email_attributes: None,
        },
        delete_users: false,
        guard: Default::default(),
        page_size: None,
        timeout_seconds: None,
    };
    env.roster
        .set_directory_settings(&env.local_admin(), DirectorySettings::Ldap(plain))
        .await
        .unwrap();
    let message = fails_and_changes_nothing(&env, "DI007-service-bind").await;
    assert!(
        message.contains("Transport encryption required") && message.contains("starttls"),
        "{message}"
    );
    env.check().await;
}

/// The seed's filters, alone and together, on users who differ in one thing each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_filter_alone_and_together() {
    let c = Corner::new("filters").await;
    c.add(&c.user("plain")).await;
    let mut proxy_only = c.user("proxy");
    proxy_only.mail = None;
    proxy_only.proxy_addresses = vec![format!("SMTP:proxy.{}@example.com", c.tag)];
    c.add(&proxy_only).await;
    let mut no_address = c.user("nomail");
    no_address.mail = None;
    c.add(&no_address).await;
    let mut disabled = c.user("disabled");
    disabled.enabled = false;
    c.add(&disabled).await;
    let mut hidden = c.user("hidden");
    hidden.hide_from_address_lists = Some(true);
    c.add(&hidden).await;
    let mut shown = c.user("shown");
    shown.hide_from_address_lists = Some(false);
    c.add(&shown).await;
    let env = Env::sqlite().await;
    type Filters = (bool, bool, bool, &'static [&'static str]);
    let cases: [Filters; 6] = [
        (
            false,
            false,
            false,
            &["disabled", "hidden", "nomail", "plain", "proxy", "shown"],
        ),
        (
            true,
            false,
            false,
            &["disabled", "hidden", "plain", "proxy", "shown"],
        ),
        (
            false,
            true,
            false,
            &["hidden", "nomail", "plain", "proxy", "shown"],
        ),
        (
            false,
            false,
            true,
            &["disabled", "nomail", "plain", "proxy", "shown"],
        ),
        (true, true, false, &["hidden", "plain", "proxy", "shown"]),
        (true, true, true, &["plain", "proxy", "shown"]),
    ];
    for (exchange, enabled, visible, expected) in cases {
        let mut s = c.settings();
        s.exchange_users_only = exchange;
        s.enabled_users_only = enabled;
        s.visible_in_address_lists_only = visible;
        configure(&env, s).await;
        let report = run(&env, RunKind::Preview).await.unwrap();
        let mut got: Vec<String> = report
            .lines
            .iter()
            .filter(|l| l.action == ReportAction::Created)
            .map(|l| l.user.to_string())
            .collect();
        got.sort();
        let want: Vec<String> = expected.iter().map(|n| c.sam(n)).collect();
        assert_eq!(
            got,
            sorted(&want),
            "exchange {exchange}, enabled {enabled}, visible {visible}"
        );
    }
    env.check().await;
}

/// Members through nested groups, by DN and by name; a group that doesn't exist fails the run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_groups_by_dn_and_by_name() {
    let c = Corner::new("groups").await;
    let alice = c.add(&c.user("alice")).await;
    let bob = c.add(&c.user("bob")).await;
    c.add(&c.user("carol")).await;
    let inner =
        c.ou.add_group(&c.sam("inner"), &[bob.as_str()])
            .await
            .unwrap();
    let outer =
        c.ou.add_group(&c.sam("outer"), &[alice.as_str(), inner.as_str()])
            .await
            .unwrap();
    let env = Env::sqlite().await;
    for (groups, expected) in [
        (vec![outer.clone()], vec![c.sam("alice"), c.sam("bob")]),
        (vec![c.sam("inner")], vec![c.sam("bob")]),
        (
            vec![c.sam("outer").to_uppercase()],
            vec![c.sam("alice"), c.sam("bob")],
        ),
    ] {
        let mut s = c.settings();
        s.groups = groups.clone();
        configure(&env, s).await;
        let report = run(&env, RunKind::Preview).await.unwrap();
        let mut got: Vec<String> = report
            .lines
            .iter()
            .filter(|l| l.action == ReportAction::Created)
            .map(|l| l.user.to_string())
            .collect();
        got.sort();
        assert_eq!(got, expected, "{groups:?}");
    }
    let mut s = c.settings();
    s.groups = vec![c.sam("gone")];
    configure(&env, s).await;
    let message = fails_and_changes_nothing(&env, "DI001-invalid-settings").await;
    assert!(message.contains(&c.sam("gone")), "{message}");

    // The picker lists the domain's groups, and finds these by a search.
    let found = env
        .roster
        .directory_groups(&env.local_admin(), Some(&format!(".{}", c.tag)))
        .await
        .unwrap();
    let mut names: Vec<&str> = found.iter().map(|g| g.name.as_str()).collect();
    names.sort();
    assert_eq!(names, [c.sam("inner"), c.sam("outer")]);
    assert!(found.iter().any(|g| g.address == outer), "{found:?}");
    env.check().await;
}

/// A user renamed (cn and sAMAccountName) and a user moved to another OU keep their Roster user, its
/// folder and privileges: the link is the objectGUID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renamed_and_moved_users_keep_their_folder() {
    let c = Corner::new("rename").await;
    let elsewhere = c.dc.new_ou("rename-target").await.unwrap();
    let alice = c.add(&c.user("alice")).await;
    let bob = c.add(&c.user("bob")).await;
    let group =
        c.ou.add_group(&c.sam("all"), &[alice.as_str(), bob.as_str()])
            .await
            .unwrap();
    let env = Env::sqlite().await;
    let mut s = c.settings();
    s.base_dn = String::new();
    s.groups = vec![group];
    s.delete_users = true;
    configure(&env, s).await;
    sync(&env).await;
    env.roster
        .set_message_count(&env.local_admin(), &c.sam("alice"), 12)
        .await
        .unwrap();
    let renamed =
        c.ou.rename(&alice, &format!("alicia {}", c.tag))
            .await
            .unwrap();
    c.ou.replace(&renamed, "sAMAccountName", &[c.sam("alicia").as_str()])
        .await
        .unwrap();
    elsewhere.move_to(&bob, elsewhere.dn()).await.unwrap();
    let report = sync(&env).await;
    assert_eq!(
        (report.counts.created, report.counts.deleted),
        (0, 0),
        "{:#?}",
        report.lines
    );
    assert_eq!(
        synced_names(&env).await,
        sorted(&[c.sam("alicia"), c.sam("bob")])
    );
    let folders = env.store.list_folders().await.unwrap();
    let folder = folders
        .iter()
        .find(|f| f.message_count == 12)
        .expect("alice's folder");
    assert_eq!(folder.owner.as_deref(), Some(c.sam("alicia").as_str()));
    // The moved user logs on with the DN the last sync saw.
    env.roster
        .verify_logon(&c.sam("bob"), "bob-pw")
        .await
        .unwrap();
    env.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_deleted_in_the_directory_go_and_folders_with_mail_stay() {
    let c = Corner::new("delete").await;
    let alice = c.add(&c.user("alice")).await;
    let bob = c.add(&c.user("bob")).await;
    c.add(&c.user("carol")).await;
    let env = Env::sqlite().await;
    let mut s = c.settings();
    s.delete_users = true;
    s.guard.max_deletions_percent = 100;
    configure(&env, s).await;
    sync(&env).await;
    env.roster
        .set_message_count(&env.local_admin(), &c.sam("alice"), 3)
        .await
        .unwrap();
    c.ou.delete(&alice).await.unwrap();
    c.ou.delete(&bob).await.unwrap();
    let report = sync(&env).await;
    assert_eq!(report.counts.deleted, 2, "{:#?}", report.lines);
    assert_eq!(report.counts.folders_kept, 1);
    assert_eq!(synced_names(&env).await, [c.sam("carol")]);
    let folders = env.store.list_folders().await.unwrap();
    assert!(
        folders
            .iter()
            .any(|f| f.name == c.sam("alice") && f.owner.is_none())
    );
    assert!(folders.iter().all(|f| f.name != c.sam("bob")));
    env.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_service_password_is_refused_and_changes_nothing() {
    let c = Corner::new("svc").await;
    c.add(&c.user("alice")).await;
    let env = Env::sqlite().await;
    let mut s = c.settings();
    s.delete_users = true;
    s.guard.max_deletions_percent = 100;
    configure(&env, s.clone()).await;
    sync(&env).await;
    s.password = Some(Secret::new("not-the-password"));
    configure(&env, s).await;
    let message = fails_and_changes_nothing(&env, "DI007-service-bind").await;
    assert!(message.contains("`username`"), "{message}");
    assert!(!message.contains("not-the-password"), "{message}");
    env.check().await;
}

/// Logons: right, wrong, empty, unknown, injection attempts, a disabled account (AD's reason `533`
/// goes to the log; the user sees the same answer), and users outside the selected group.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logon_with_the_active_directory_password() {
    let c = Corner::new("logon").await;
    let alice = c.add(&c.user("alice")).await;
    let bob = c.add(&c.user("bob")).await;
    let group =
        c.ou.add_group(&c.sam("logon"), &[alice.as_str()])
            .await
            .unwrap();
    let env = Env::sqlite().await;
    let mut s = c.settings();
    configure(&env, s.clone()).await;
    sync(&env).await;
    let ok = env
        .roster
        .verify_logon(&c.sam("alice"), "alice-pw")
        .await
        .unwrap();
    assert_eq!(ok.name.as_str(), c.sam("alice"));
    let wrong = env
        .roster
        .verify_logon(&c.sam("alice"), "not-alice-pw")
        .await
        .unwrap_err();
    assert!(matches!(wrong, AppError::LogonFailed), "{wrong:?}");
    let empty = env
        .roster
        .verify_logon(&c.sam("alice"), "")
        .await
        .unwrap_err();
    assert!(matches!(empty, AppError::EmptyPassword), "{empty:?}");
    for name in [
        "*".to_owned(),
        format!("{}*", c.sam("ali")),
        format!("{})(|(sAMAccountName=*", c.sam("alice")),
        "nobody".to_owned(),
    ] {
        let e = env
            .roster
            .verify_logon(&name, "alice-pw")
            .await
            .unwrap_err();
        assert!(
            matches!(e, AppError::LogonFailed | AppError::Invalid(_)),
            "{name}: {e:?}"
        );
    }
    // Disabled after the sync: refused, like a wrong password.
    c.ou.set_enabled(&bob, false).await.unwrap();
    let disabled = env
        .roster
        .verify_logon(&c.sam("bob"), "bob-pw")
        .await
        .unwrap_err();
    assert_eq!(disabled.to_string(), wrong.to_string());
    // With the filters off the disabled account is found, and AD's bind refusal (data 533) is still
    // the same answer.
    s.enabled_users_only = false;
    configure(&env, s.clone()).await;
    let disabled = env
        .roster
        .verify_logon(&c.sam("bob"), "bob-pw")
        .await
        .unwrap_err();
    assert_eq!(disabled.to_string(), wrong.to_string());
    let audit = env
        .roster
        .audit_log(&env.local_admin(), 0, 5)
        .await
        .unwrap();
    let refusal = audit
        .items
        .iter()
        .find(|e| e.action == "logon.failed" && e.target == c.sam("bob"))
        .expect("the refusal is audited");
    assert!(
        refusal.details.contains("account disabled (AD data 533)"),
        "AD's reason in words: {}",
        refusal.details
    );
    // Outside the selected group: refused.
    c.ou.set_enabled(&bob, true).await.unwrap();
    s.enabled_users_only = true;
    s.groups = vec![group];
    configure(&env, s).await;
    let outside = env
        .roster
        .verify_logon(&c.sam("bob"), "bob-pw")
        .await
        .unwrap_err();
    assert_eq!(outside.to_string(), wrong.to_string());
    env.roster
        .verify_logon(&c.sam("alice"), "alice-pw")
        .await
        .unwrap();
    env.check().await;
}

/// A user created in Roster by hand and switched to directory authentication logs on when the names
/// match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manually_created_user_logs_on_with_the_directory_password() {
    let c = Corner::new("manual").await;
    c.add(&c.user("erin")).await;
    let env = Env::sqlite().await;
    configure(&env, c.settings()).await;
    let admin = env.local_admin();
    env.roster
        .create_user(
            &admin,
            roster_app::NewUserInput {
                name: c.sam("erin"),
                full_name: "Erin by hand".into(),
                emails: vec![],
                auth: AuthMethod::Directory,
                password: None,
                privileges: None,
            },
        )
        .await
        .unwrap();
    env.roster
        .verify_logon(&c.sam("erin"), "erin-pw")
        .await
        .unwrap();
    env.check().await;
}

/// Single sign-on's mapping of a ticket's principal to a Roster user (issue 25), without Kerberos: the
/// server hands `Roster::logon_with_kerberos` the principal the ticket named. (The tickets themselves are
/// tested through the binary in `kerberos.rs`.)
#[tokio::test]
async fn a_kerberos_principal_logs_on_only_as_the_active_directory_user_of_the_domain() {
    let c = Corner::new("sso-map").await;
    c.add(&c.user("alice")).await;
    let env = Env::sqlite().await;
    configure(&env, c.settings()).await;
    sync(&env).await;
    let realm = roster_testkit::samba::REALM;
    let alice = c.sam("alice");

    let session = env
        .roster
        .logon_with_kerberos(&format!("{alice}@{realm}"))
        .await
        .unwrap();
    assert_eq!(session.user.name.as_str(), alice);

    // Every refusal is a failed logon to the caller, with the reason in the audit log.
    for (principal, reason) in [
        (format!("{alice}@OTHER.EXAMPLE"), "is not the domain's"),
        (format!("HTTP/{alice}@{realm}"), "a service principal"),
        (format!("admin@{realm}"), "is not an Active Directory user"),
        (
            format!("nobody.{}@{realm}", c.tag),
            "no Roster user of that name",
        ),
    ] {
        let err = env
            .roster
            .logon_with_kerberos(&principal)
            .await
            .unwrap_err();
        assert!(matches!(err, AppError::LogonFailed), "{principal}: {err:?}");
        let audit = env
            .roster
            .audit_log(&env.local_admin(), 0, 20)
            .await
            .unwrap();
        assert!(
            audit.items.iter().any(|e| e.action == "logon.failed"
                && e.details.contains(&principal)
                && e.details.contains(reason)),
            "{principal}: {reason}: {:#?}",
            audit.items
        );
    }

    // Throttled by failed password logons: refused too, though the ticket is good.
    for _ in 0..3 {
        let _ = env.roster.verify_logon(&alice, "wrong-password").await;
    }
    let err = env
        .roster
        .logon_with_kerberos(&format!("{alice}@{realm}"))
        .await
        .unwrap_err();
    assert!(matches!(err, AppError::LogonFailed), "{err:?}");
    env.check().await;
}

/// A sync of one user (issue 26 item 5) finds the entry by its objectGUID (`<GUID=…>`) after a rename and
/// a move within scope, and a user moved out of the base is gone for that run, alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_user_is_found_by_guid_after_a_rename_and_a_move() {
    let c = Corner::new("one-user").await;
    let inner = c.dc.new_ou("one-user-elsewhere").await.unwrap();
    let alice = c.add(&c.user("alice")).await;
    let bob = c.add(&c.user("bob")).await;
    c.add(&c.user("carol")).await;
    let env = Env::sqlite().await;
    let mut s = c.settings();
    s.delete_users = true;
    s.guard = crate::support::unguarded();
    configure(&env, s).await;
    sync(&env).await;
    let renamed =
        c.ou.rename(&alice, &format!("alicia {}", c.tag))
            .await
            .unwrap();
    c.ou.replace(&renamed, "sAMAccountName", &[c.sam("alicia").as_str()])
        .await
        .unwrap();
    inner.move_to(&bob, inner.dn()).await.unwrap();

    let one = |name: String| {
        let env = &env;
        async move {
            env.roster
                .run_directory_for_user(&env.local_admin(), RunKind::Sync, &name, "test", &())
                .await
                .unwrap()
        }
    };
    let report = one(c.sam("alice")).await;
    assert_eq!(report.counts.renamed, 1, "{:#?}", report.lines);
    let report = one(c.sam("bob")).await;
    assert_eq!(report.counts.deleted, 1, "{:#?}", report.lines);
    assert_eq!(
        synced_names(&env).await,
        sorted(&[c.sam("alicia"), c.sam("carol")])
    );
    env.check().await;
}
