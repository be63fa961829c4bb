//! The connector contract: what every directory connector does, whatever its type, checked against a
//! real server (or the project's emulator of one) for each type. A type's fixture says how to start its
//! server with the standard users and which settings read it, fail in the middle of a read, or reach
//! nothing; `connector_contract!` at the bottom runs every contract point for every fixture, one test
//! each, and fails when a [`DirectoryKind`] has no line there.
//!
//! The contract points:
//! * the connector is of its kind, and it has a password checker exactly when its type can check
//!   passwords (without one, asking for it is `LogonUnsupported`);
//! * a full read returns exactly the standard users, mapped, and calls the progress callback, last with
//!   the number of entries;
//! * ids are stable: the same across reads, not derived from the DN, and kept through a rename;
//! * a read that fails in the middle (after progress was reported) gives an error and no entries;
//! * `check_connection` succeeds on good settings and fails, promptly, when nothing is there;
//! * an empty password is refused before any network call (even with no server at all);
//! * logon by linked id (no DN), by DN and id, and by name only are accepted;
//! * a wrong password, or another entry's id, is not accepted.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use roster_core::directory::{
    ActiveDirectorySettings, AdProtocol, AttributeMapping, DirectoryEntry, DirectoryKind,
    DirectorySettings, Encryption, IcewarpSettings, KerioSettings, LdapSettings, LdifSettings,
    Secret, UsernameFormat,
};
use roster_directory::{
    Connector, DirectoryError, DirectoryRead, LogonOutcome, LogonSubject, NoProgress,
    PasswordChecker, RejectReason, connector, install_crypto_provider,
};
use roster_testkit::TestCa;
use roster_testkit::icewarp::{
    Account, AccountType, Domain, Fault, FaultKind, Fixture, IcewarpEmulator, TlsFiles,
};
use roster_testkit::ldif::push_attr;
use roster_testkit::{Slapd, SlapdConfig, TestUser, free_port, user_ldif};

use crate::common::Recorder;

// ---- The standard users ---------------------------------------------------------------------------

/// A user every fixture's directory holds, below its base DN and inside its filter.
pub struct StandardUser {
    pub uid: &'static str,
    pub cn: &'static str,
    pub mail: &'static str,
    pub password: &'static str,
}

pub const STANDARD_USERS: [StandardUser; 4] = [
    StandardUser {
        uid: "alice",
        cn: "Alice Liddell",
        mail: "alice@example.com",
        password: "alice-pw",
    },
    StandardUser {
        uid: "bob",
        cn: "Bob Brown",
        mail: "bob@example.com",
        password: "bob-pw",
    },
    StandardUser {
        uid: "carol",
        cn: "Carol Clark",
        mail: "carol@example.com",
        password: "carol-pw",
    },
    StandardUser {
        uid: "zoë",
        cn: "Zoë Ångström",
        mail: "zoe@example.com",
        password: "zoë-pw",
    },
];

/// The mapping every fixture's settings use: user name, full name and address of the standard users.
pub fn standard_mapping() -> AttributeMapping {
    AttributeMapping {
        filter: "(objectClass=inetOrgPerson)".into(),
        username_attribute: "uid".into(),
        full_name_attribute: Some("cn".into()),
        email_attributes: Some("mail".into()),
    }
}

// ---- The fixture ----------------------------------------------------------------------------------

/// A directory of one type, holding the standard users.
pub trait ContractFixture: Sized {
    const KIND: DirectoryKind;
    /// Whether users of this type log on with their directory password (the connector has a
    /// `PasswordChecker`).
    const CHECKS_PASSWORDS: bool;
    /// Whether entries have a stable id that survives a rename. A type without one (IceWarp: its API
    /// gives no permanent id) identifies entries by something a rename changes: then every entry is
    /// counted in `without_stable_id`, and a renamed entry gets a new id.
    const STABLE_IDS: bool = true;

    /// The user name the standard user (or a renamed one) with this uid gets: the uid itself for the
    /// LDAP-style types; the address for a type whose user names are addresses; the uid with the
    /// fixture's suffix for Active Directory, whose sAMAccountNames are unique in the whole domain that
    /// the tests share.
    fn user_name(&self, uid: &str) -> String {
        uid.to_owned()
    }

    /// Starts the server (or writes the file) with [`STANDARD_USERS`] in scope and nothing else.
    fn start() -> impl Future<Output = Self>;

    /// Settings that read exactly the standard users.
    fn settings(&self) -> DirectorySettings;

    /// Settings whose read fails in the middle: after entries were read and reported to the progress
    /// callback (which is told at least after each page and every 1000 entries).
    fn failing_read_settings(&self) -> DirectorySettings;

    /// Settings of this type that reach nothing (a closed port, a missing file).
    fn unreachable_settings(&self) -> DirectorySettings;

    /// Renames the standard user `from` to `to` (user name and DN), keeping the entry.
    fn rename(&mut self, from: &str, to: &str) -> impl Future<Output = ()>;
}

// ---- Helpers --------------------------------------------------------------------------------------

/// Nothing in the contract may hang: a minute is far beyond any honest answer.
async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within a minute"))
}

fn make(settings: &DirectorySettings) -> Connector {
    install_crypto_provider();
    connector(settings).unwrap_or_else(|e| panic!("building the connector: {e}"))
}

async fn read_all(connector: &Connector) -> DirectoryRead {
    within("a read", connector.reader.read_entries(&NoProgress))
        .await
        .unwrap_or_else(|e| panic!("a read of the standard users failed: {e}"))
}

fn by_name<'a>(read: &'a DirectoryRead, name: &str) -> &'a DirectoryEntry {
    read.entries
        .iter()
        .find(|e| e.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no entry named {name} in {:#?}", read.entries))
}

fn ids_by_name(read: &DirectoryRead) -> BTreeMap<String, String> {
    read.entries
        .iter()
        .map(|e| (e.name.clone().unwrap_or_default(), e.id.clone()))
        .collect()
}

/// The connector's password checker; for a type without one, the assertion that it says so, and
/// `None`: the logon points then hold trivially, because no logon is possible at all.
fn checker_or_unsupported<F: ContractFixture>(c: &Connector) -> Option<&dyn PasswordChecker> {
    if F::CHECKS_PASSWORDS {
        assert!(
            c.passwords.is_some(),
            "{}: the type checks passwords, but its connector has no checker",
            F::KIND
        );
        Some(c.password_checker().unwrap())
    } else {
        assert!(
            c.passwords.is_none(),
            "{}: the type can't check passwords, but its connector has a checker",
            F::KIND
        );
        match c.password_checker() {
            Err(DirectoryError::LogonUnsupported { kind }) => assert_eq!(kind, F::KIND),
            other => panic!("{}: expected LogonUnsupported, got {other:?}", F::KIND),
        }
        None
    }
}

async fn logon(
    checker: &dyn PasswordChecker,
    subject: LogonSubject<'_>,
    password: &str,
) -> LogonOutcome {
    within(
        "a logon",
        checker.authenticate(&subject, &Secret::new(password)),
    )
    .await
    .unwrap_or_else(|e| panic!("the logon {subject:?} failed with an error: {e}"))
}

// ---- The contract points --------------------------------------------------------------------------

/// An entry's user name, full name and addresses.
type Mapped<'a> = (Option<&'a str>, Option<&'a str>, Option<Vec<String>>);

pub async fn kind_and_logon_support<F: ContractFixture>() {
    let fixture = F::start().await;
    for settings in [
        fixture.settings(),
        fixture.failing_read_settings(),
        fixture.unreachable_settings(),
    ] {
        assert_eq!(settings.kind(), Some(F::KIND));
        let c = make(&settings);
        assert_eq!(c.kind, F::KIND);
        checker_or_unsupported::<F>(&c);
    }
}

pub async fn a_full_read_returns_exactly_the_standard_users_and_reports_progress<
    F: ContractFixture,
>() {
    let fixture = F::start().await;
    let c = make(&fixture.settings());
    let progress = Recorder::default();
    let read = within("a read", c.reader.read_entries(&progress))
        .await
        .unwrap_or_else(|e| panic!("a read of the standard users failed: {e}"));
    let mut got: Vec<Mapped<'_>> = read
        .entries
        .iter()
        .map(|e| (e.name.as_deref(), e.full_name.as_deref(), e.emails.clone()))
        .collect();
    got.sort();
    let names: Vec<String> = STANDARD_USERS
        .iter()
        .map(|u| fixture.user_name(u.uid))
        .collect();
    let mut expected: Vec<Mapped<'_>> = STANDARD_USERS
        .iter()
        .zip(&names)
        .map(|(u, name)| {
            (
                Some(name.as_str()),
                Some(u.cn),
                Some(vec![u.mail.to_owned()]),
            )
        })
        .collect();
    expected.sort();
    assert_eq!(got, expected, "{:#?}", read.entries);
    assert!(read.pages >= 1, "pages: {}", read.pages);
    assert_eq!(read.references_skipped, 0);
    let calls = progress.0.lock().unwrap().clone();
    assert!(!calls.is_empty(), "the progress callback was never called");
    assert!(calls.windows(2).all(|w| w[0] <= w[1]), "{calls:?}");
    assert_eq!(
        calls.last().copied(),
        Some(STANDARD_USERS.len() as u64),
        "{calls:?}"
    );
}

pub async fn ids_are_stable_across_reads_and_renames<F: ContractFixture>() {
    let mut fixture = F::start().await;
    let c = make(&fixture.settings());
    let first = read_all(&c).await;
    if F::STABLE_IDS {
        assert_eq!(first.without_stable_id, 0, "{:#?}", first.entries);
    } else {
        assert_eq!(
            first.without_stable_id,
            first.entries.len() as u64,
            "a type without stable ids counts every entry"
        );
    }
    for e in &first.entries {
        assert!(
            !e.id.is_empty() && !e.id.starts_with("dn:"),
            "{}: the id must not come from the DN: {:?}",
            e.dn,
            e.id
        );
    }
    let ids = ids_by_name(&first);
    assert_eq!(ids.len(), STANDARD_USERS.len(), "{ids:?}");
    let mut distinct: Vec<&String> = ids.values().collect();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), ids.len(), "ids must differ: {ids:?}");
    assert_eq!(ids_by_name(&read_all(&c).await), ids, "a second read");

    let bob = by_name(&first, &fixture.user_name("bob")).clone();
    within("renaming bob", fixture.rename("bob", "robert")).await;
    let renamed = read_all(&make(&fixture.settings())).await;
    let robert = by_name(&renamed, &fixture.user_name("robert"));
    assert_ne!(robert.dn, bob.dn, "the rename changed the DN");
    if F::STABLE_IDS {
        assert_eq!(robert.id, bob.id, "a rename keeps the id");
    } else {
        assert_ne!(
            robert.id, bob.id,
            "without stable ids, a rename is a new id"
        );
        assert!(renamed.entries.iter().all(|e| e.id != bob.id));
    }
    let bob_name = fixture.user_name("bob");
    assert!(
        renamed
            .entries
            .iter()
            .all(|e| e.name.as_deref() != Some(bob_name.as_str()))
    );
}

pub async fn a_read_that_fails_midway_gives_an_error_and_no_entries<F: ContractFixture>() {
    let fixture = F::start().await;
    let c = make(&fixture.failing_read_settings());
    let progress = Recorder::default();
    let result = within("a failing read", c.reader.read_entries(&progress)).await;
    let calls = progress.0.lock().unwrap().clone();
    // The failure must come in the middle: entries were read (and reported) before it.
    assert!(
        calls.iter().any(|&n| n > 0),
        "the read must have produced entries before failing; progress: {calls:?}, result: {result:?}"
    );
    match result {
        Err(e) => assert!(!e.code().is_empty()),
        Ok(read) => panic!(
            "a read that failed in the middle returned {} entries (progress {calls:?})",
            read.entries.len()
        ),
    }
}

pub async fn check_connection_succeeds_and_fails_promptly<F: ContractFixture>() {
    let fixture = F::start().await;
    within(
        "check_connection",
        make(&fixture.settings()).reader.check_connection(),
    )
    .await
    .unwrap_or_else(|e| panic!("check_connection on good settings: {e}"));
    let err = within(
        "check_connection on an unreachable directory",
        make(&fixture.unreachable_settings())
            .reader
            .check_connection(),
    )
    .await
    .expect_err("check_connection must fail when nothing is there");
    assert!(!err.to_string().is_empty());
}

pub async fn an_empty_password_is_refused_before_any_network_call<F: ContractFixture>() {
    let fixture = F::start().await;
    let alice_name = fixture.user_name("alice");
    let alice = LogonSubject {
        name: &alice_name,
        dn: None,
        id: None,
    };
    // Nothing answers at the unreachable settings: an answer at all proves nothing was asked.
    for settings in [fixture.unreachable_settings(), fixture.settings()] {
        let c = make(&settings);
        let Some(checker) = checker_or_unsupported::<F>(&c) else {
            return;
        };
        assert_eq!(
            logon(checker, alice, "").await,
            LogonOutcome::Rejected(RejectReason::EmptyPassword)
        );
    }
}

pub async fn logon_by_linked_id_by_dn_and_by_name<F: ContractFixture>() {
    let fixture = F::start().await;
    let c = make(&fixture.settings());
    let Some(checker) = checker_or_unsupported::<F>(&c) else {
        return;
    };
    let read = read_all(&c).await;
    for user in &STANDARD_USERS {
        let name = fixture.user_name(user.uid);
        let entry = by_name(&read, &name);
        let accepted = LogonOutcome::Accepted {
            dn: entry.dn.clone(),
        };
        for (how, subject) in [
            (
                "linked id",
                LogonSubject {
                    name: &name,
                    dn: None,
                    id: Some(&entry.id),
                },
            ),
            (
                "DN",
                LogonSubject {
                    name: &name,
                    dn: Some(&entry.dn),
                    id: Some(&entry.id),
                },
            ),
            (
                "name",
                LogonSubject {
                    name: &name,
                    dn: None,
                    id: None,
                },
            ),
        ] {
            assert_eq!(
                logon(checker, subject, user.password).await,
                accepted,
                "{} by {how}",
                user.uid
            );
        }
    }
}

pub async fn a_wrong_password_or_another_entrys_id_is_not_accepted<F: ContractFixture>() {
    let fixture = F::start().await;
    let c = make(&fixture.settings());
    let Some(checker) = checker_or_unsupported::<F>(&c) else {
        return;
    };
    let read = read_all(&c).await;
    let alice_name = fixture.user_name("alice");
    let alice = by_name(&read, &alice_name);
    let bob = by_name(&read, &fixture.user_name("bob"));
    for subject in [
        LogonSubject {
            name: &alice_name,
            dn: None,
            id: None,
        },
        LogonSubject {
            name: &alice_name,
            dn: Some(&alice.dn),
            id: Some(&alice.id),
        },
    ] {
        assert_eq!(
            logon(checker, subject, "not-alice-pw").await,
            LogonOutcome::Rejected(RejectReason::WrongPassword),
            "{subject:?}"
        );
    }
    // Alice's name (and DN) linked to bob's entry: neither password makes it bob or alice.
    for subject in [
        LogonSubject {
            name: &alice_name,
            dn: None,
            id: Some(&bob.id),
        },
        LogonSubject {
            name: &alice_name,
            dn: Some(&alice.dn),
            id: Some(&bob.id),
        },
    ] {
        for password in ["alice-pw", "bob-pw"] {
            let outcome = logon(checker, subject, password).await;
            assert!(
                !matches!(outcome, LogonOutcome::Accepted { .. }),
                "{subject:?} with {password}: {outcome:?}"
            );
        }
    }
}

// ---- The suite, one test per point and fixture ------------------------------------------------------

/// `connector_contract! { name: Fixture, ... }`: one module per type, one test per contract point, and a
/// test that every [`DirectoryKind`] has a line here.
macro_rules! connector_contract {
    ($($name:ident: $fixture:ty),+ $(,)?) => {
        $(
            mod $name {
                #[allow(unused_imports)]
                use super::*;

                #[tokio::test]
                async fn kind_and_logon_support() {
                    $crate::contract::kind_and_logon_support::<$fixture>().await;
                }
                #[tokio::test]
                async fn a_full_read_returns_exactly_the_standard_users_and_reports_progress() {
                    $crate::contract::a_full_read_returns_exactly_the_standard_users_and_reports_progress::<$fixture>().await;
                }
                #[tokio::test]
                async fn ids_are_stable_across_reads_and_renames() {
                    $crate::contract::ids_are_stable_across_reads_and_renames::<$fixture>().await;
                }
                #[tokio::test]
                async fn a_read_that_fails_midway_gives_an_error_and_no_entries() {
                    $crate::contract::a_read_that_fails_midway_gives_an_error_and_no_entries::<$fixture>().await;
                }
                #[tokio::test]
                async fn check_connection_succeeds_and_fails_promptly() {
                    $crate::contract::check_connection_succeeds_and_fails_promptly::<$fixture>().await;
                }
                #[tokio::test]
                async fn an_empty_password_is_refused_before_any_network_call() {
                    $crate::contract::an_empty_password_is_refused_before_any_network_call::<$fixture>().await;
                }
                #[tokio::test]
                async fn logon_by_linked_id_by_dn_and_by_name() {
                    $crate::contract::logon_by_linked_id_by_dn_and_by_name::<$fixture>().await;
                }
                #[tokio::test]
                async fn a_wrong_password_or_another_entrys_id_is_not_accepted() {
                    $crate::contract::a_wrong_password_or_another_entrys_id_is_not_accepted::<$fixture>().await;
                }
            }
        )+

        #[test]
        fn every_directory_kind_runs_the_contract() {
            let mut covered = vec![$(<$fixture as $crate::contract::ContractFixture>::KIND),+];
            covered.sort();
            covered.dedup();
            let mut all = roster_core::directory::DirectoryKind::ALL.to_vec();
            all.sort();
            assert_eq!(covered, all, "add a line to `connector_contract!` for each directory type");
        }
    };
}

connector_contract! {
    ldap: LdapFixture,
    ldif: LdifFixture,
    icewarp: IcewarpFixture,
    kerio: KerioFixture,
    active_directory: AdFixture,
}

// ---- Generic LDAP: a real slapd ---------------------------------------------------------------------

const SUFFIX: &str = "dc=example,dc=com";
/// The service account: ordinary (the root DN ignores limits), with no size limit of its own.
const SERVICE_DN: &str = "cn=roster,dc=example,dc=com";
const SERVICE_PASSWORD: &str = "roster-pw";
/// An account that the server stops after [`LIMITED_TO`] entries of a paged search.
const LIMITED_DN: &str = "cn=limited,dc=example,dc=com";
const LIMITED_PASSWORD: &str = "limited-pw";
const LIMITED_TO: usize = 3;

pub struct LdapFixture {
    slapd: Slapd,
}

fn service_account(dn: &str, cn: &str, password: &str) -> String {
    let mut out = String::new();
    push_attr(&mut out, "dn", dn);
    for class in ["organizationalRole", "simpleSecurityObject"] {
        push_attr(&mut out, "objectClass", class);
    }
    push_attr(&mut out, "cn", cn);
    push_attr(&mut out, "userPassword", password);
    out.push('\n');
    out
}

fn test_user(u: &StandardUser) -> TestUser<'static> {
    TestUser {
        uid: u.uid,
        cn: u.cn,
        mail: vec![u.mail],
        password: Some(u.password),
        ..Default::default()
    }
}

impl LdapFixture {
    fn ldap_settings(&self) -> LdapSettings {
        LdapSettings {
            schedule: Default::default(),
            server: "127.0.0.1".into(),
            port: Some(self.slapd.port()),
            encryption: Encryption::None,
            ignore_certificate_errors: false,
            ca_file: None,
            bind_dn: SERVICE_DN.into(),
            password: Some(Secret::new(SERVICE_PASSWORD)),
            base_dn: self.slapd.people_dn(),
            mapping: standard_mapping(),
            delete_users: false,
            guard: Default::default(),
            // Several pages even for the standard users.
            page_size: Some(2),
            timeout_seconds: Some(10),
        }
    }
}

impl ContractFixture for LdapFixture {
    const KIND: DirectoryKind = DirectoryKind::Ldap;
    const CHECKS_PASSWORDS: bool = true;

    async fn start() -> LdapFixture {
        assert!(LIMITED_TO < STANDARD_USERS.len());
        let mut ldif = service_account(SERVICE_DN, "roster", SERVICE_PASSWORD);
        ldif.push_str(&service_account(LIMITED_DN, "limited", LIMITED_PASSWORD));
        for u in &STANDARD_USERS {
            ldif.push_str(&user_ldif(SUFFIX, &test_user(u)));
        }
        let slapd = Slapd::start(SlapdConfig {
            // Paged searches stop after LIMITED_TO entries in total, with rc 4 (sizeLimitExceeded)...
            size_limit: Some(format!("size.prtotal={LIMITED_TO}")),
            // ...except the service account's.
            database_directives: Some(format!(
                "limits dn.exact=\"{SERVICE_DN}\" size.soft=unlimited size.hard=unlimited size.prtotal=unlimited"
            )),
            base_ldif: Some(ldif),
            ..Default::default()
        })
        .unwrap();
        LdapFixture { slapd }
    }

    fn settings(&self) -> DirectorySettings {
        DirectorySettings::Ldap(self.ldap_settings())
    }

    /// The limited account, one entry a page: pages of 1 entry until the server's limit stops it.
    fn failing_read_settings(&self) -> DirectorySettings {
        let mut s = self.ldap_settings();
        s.bind_dn = LIMITED_DN.into();
        s.password = Some(Secret::new(LIMITED_PASSWORD));
        s.page_size = Some(1);
        DirectorySettings::Ldap(s)
    }

    fn unreachable_settings(&self) -> DirectorySettings {
        let mut s = self.ldap_settings();
        s.port = Some(free_port());
        s.timeout_seconds = Some(2);
        DirectorySettings::Ldap(s)
    }

    async fn rename(&mut self, from: &str, to: &str) {
        let people = self.slapd.people_dn();
        self.slapd
            .modify(&format!(
                "dn: uid={from},{people}\nchangetype: modrdn\nnewrdn: uid={to}\ndeleteoldrdn: 1\n"
            ))
            .unwrap();
    }
}

// ---- LDIF: a file -----------------------------------------------------------------------------------

pub struct LdifFixture {
    dir: tempfile::TempDir,
    file: PathBuf,
    /// uid → new uid, applied when the file is written.
    renames: BTreeMap<String, String>,
}

/// A fixed entryUUID per standard user, as an export from a server would carry it.
fn entry_uuid(index: usize) -> String {
    format!("6c1f2d0a-0000-4000-8000-{index:012}")
}

impl LdifFixture {
    fn ldif_settings(&self, file: PathBuf) -> LdifSettings {
        LdifSettings {
            schedule: Default::default(),
            file,
            base_dn: format!("ou=People,{SUFFIX}"),
            mapping: standard_mapping(),
            delete_users: false,
            guard: Default::default(),
            limits: Default::default(),
        }
    }

    fn write(&self) {
        let mut text = String::from("version: 1\n\n");
        for (i, u) in STANDARD_USERS.iter().enumerate() {
            let uid = self.renames.get(u.uid).map_or(u.uid, String::as_str);
            let user = TestUser {
                uid,
                ..test_user(u)
            };
            text.push_str(&with_uuid(user_ldif(SUFFIX, &user), &entry_uuid(i)));
        }
        std::fs::write(&self.file, text).unwrap();
    }
}

/// `entry` (ending with its blank line) with an entryUUID.
fn with_uuid(entry: String, uuid: &str) -> String {
    let mut out = entry.trim_end_matches('\n').to_owned();
    out.push('\n');
    push_attr(&mut out, "entryUUID", uuid);
    out.push('\n');
    out
}

impl ContractFixture for LdifFixture {
    const KIND: DirectoryKind = DirectoryKind::Ldif;
    const CHECKS_PASSWORDS: bool = false;

    async fn start() -> LdifFixture {
        let dir = roster_testkit::common::temp_dir("roster-contract-").unwrap();
        let file = dir.path().join("users.ldif");
        let fixture = LdifFixture {
            dir,
            file,
            renames: BTreeMap::new(),
        };
        fixture.write();
        fixture
    }

    fn settings(&self) -> DirectorySettings {
        DirectorySettings::Ldif(self.ldif_settings(self.file.clone()))
    }

    /// 2500 good entries (progress is reported at least every 1000), then a file cut inside a line,
    /// the way an interrupted export or copy leaves it.
    fn failing_read_settings(&self) -> DirectorySettings {
        let path = self.dir.path().join("cut.ldif");
        if !path.exists() {
            let mut text = String::new();
            for i in 0..2500 {
                let uid = format!("filler{i}");
                let user = TestUser {
                    uid: &uid,
                    cn: "Filler",
                    ..Default::default()
                };
                text.push_str(&with_uuid(
                    user_ldif(SUFFIX, &user),
                    &format!("0f000000-0000-4000-8000-{i:012}"),
                ));
            }
            let last = user_ldif(SUFFIX, &test_user(&STANDARD_USERS[0]));
            let cut = last.find("uid: alice").unwrap() + "uid: al".len();
            text.push_str(&last[..cut]);
            std::fs::write(&path, text).unwrap();
        }
        DirectorySettings::Ldif(self.ldif_settings(path))
    }

    fn unreachable_settings(&self) -> DirectorySettings {
        DirectorySettings::Ldif(self.ldif_settings(self.dir.path().join("missing.ldif")))
    }

    async fn rename(&mut self, from: &str, to: &str) {
        self.renames.insert(from.to_owned(), to.to_owned());
        self.write();
    }
}

// ---- IceWarp: the project's emulator, over HTTPS with the test CA -----------------------------------------

/// The administrator Roster logs in as: in a domain of its own that the settings don't select, so it
/// is not one of the users read.
pub const ICEWARP_ADMIN: &str = "admin@admin.example";
pub const ICEWARP_ADMIN_PASSWORD: &str = "icewarp-admin-pw";
/// A domain after example.com whose account list always answers a 502 page.
const BROKEN_DOMAIN: &str = "zz-broken.example";

pub struct IcewarpFixture {
    emulator: IcewarpEmulator,
    ca: TestCa,
}

/// The standard users as accounts of example.com (mailbox = the address's local part), with a group
/// and a mailing list beside them that a read must leave out.
pub fn icewarp_standard_fixture() -> Fixture {
    let mut accounts: Vec<Account> = STANDARD_USERS
        .iter()
        .map(|u| Account {
            mailbox: u.mail.split('@').next().unwrap().to_owned(),
            name: u.cn.to_owned(),
            password: u.password.to_owned(),
            ..Default::default()
        })
        .collect();
    accounts.push(Account {
        mailbox: "everyone".into(),
        name: "Everyone".into(),
        account_type: AccountType::Group,
        members: vec!["[example.com]".into()],
        ..Default::default()
    });
    accounts.push(Account {
        mailbox: "news".into(),
        name: "Newsletter".into(),
        account_type: AccountType::List,
        members: vec!["alice@example.com".into()],
        ..Default::default()
    });
    Fixture {
        version: "14.3.0.3".into(),
        domains: vec![
            Domain {
                name: "admin.example".into(),
                accounts: vec![Account {
                    mailbox: "admin".into(),
                    name: "Administrator".into(),
                    password: ICEWARP_ADMIN_PASSWORD.into(),
                    admin: true,
                    ..Default::default()
                }],
                ..Default::default()
            },
            Domain {
                name: "example.com".into(),
                accounts,
                ..Default::default()
            },
        ],
    }
}

impl IcewarpFixture {
    fn icewarp_settings(&self) -> IcewarpSettings {
        IcewarpSettings {
            schedule: Default::default(),
            server: self.emulator.server_setting(),
            ignore_certificate_errors: false,
            ca_file: Some(self.ca.ca_cert_path().to_owned()),
            username: ICEWARP_ADMIN.into(),
            password: Some(Secret::new(ICEWARP_ADMIN_PASSWORD)),
            domains: vec!["example.com".into()],
            groups: vec![],
            username_format: UsernameFormat::Email,
            delete_users: false,
            guard: Default::default(),
        }
    }
}

impl ContractFixture for IcewarpFixture {
    const KIND: DirectoryKind = DirectoryKind::Icewarp;
    const CHECKS_PASSWORDS: bool = true;
    const STABLE_IDS: bool = false;

    fn user_name(&self, uid: &str) -> String {
        match STANDARD_USERS.iter().find(|u| u.uid == uid) {
            Some(u) => u.mail.to_owned(),
            None => format!("{uid}@example.com"),
        }
    }

    async fn start() -> IcewarpFixture {
        let ca = TestCa::generate().unwrap();
        let cert = ca.issue_server_cert("icewarp").unwrap();
        let mut fixture = icewarp_standard_fixture();
        fixture
            .domains
            .push(roster_testkit::icewarp::numbered_users(BROKEN_DOMAIN, 3));
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
        emulator.controls().inject(Fault {
            command: Some("getaccountsinfolist".into()),
            domain: Some(BROKEN_DOMAIN.into()),
            skip: 0,
            times: None,
            kind: FaultKind::HtmlErrorPage(502),
        });
        IcewarpFixture { emulator, ca }
    }

    fn settings(&self) -> DirectorySettings {
        DirectorySettings::Icewarp(self.icewarp_settings())
    }

    /// example.com is read (and reported) first; the next domain's list is a proxy's 502 page.
    fn failing_read_settings(&self) -> DirectorySettings {
        let mut s = self.icewarp_settings();
        s.domains.push(BROKEN_DOMAIN.into());
        DirectorySettings::Icewarp(s)
    }

    fn unreachable_settings(&self) -> DirectorySettings {
        let mut s = self.icewarp_settings();
        s.server = format!("127.0.0.1:{}", free_port());
        DirectorySettings::Icewarp(s)
    }

    async fn rename(&mut self, from: &str, to: &str) {
        let address = self.user_name(from);
        self.emulator.controls().edit(|f| {
            let account = f.find_mut(&address).unwrap();
            account.mailbox = to.to_owned();
        });
    }
}

// ---- Kerio Connect: the project's emulator over HTTPS, and a real Dovecot for the passwords --------------

/// The administrator Roster logs in as: in a domain of its own that the settings don't select, so it
/// is not one of the users read (and, that domain not being the primary one, named with its domain).
pub const KERIO_ADMIN: &str = "admin@admin.example";
pub const KERIO_ADMIN_PASSWORD: &str = "kerio-admin-pw";
const KERIO_BROKEN_DOMAIN_ID: &str = "keriodb://domain/zz-broken";

pub struct KerioFixture {
    emulator: roster_testkit::kerio::KerioEmulator,
    // Kept running for the logons.
    dovecot: roster_testkit::Dovecot,
    ca: TestCa,
}

/// The standard users in example.com, the primary domain (their IMAP login names are their login
/// names), a group beside them, the administrator in admin.example.
pub fn kerio_standard_fixture() -> roster_testkit::kerio::Fixture {
    use roster_testkit::kerio::{Domain, Group, Role, User};
    let users = STANDARD_USERS
        .iter()
        .map(|u| User {
            login_name: u.mail.split('@').next().unwrap().to_owned(),
            full_name: u.cn.to_owned(),
            password: u.password.to_owned(),
            ..Default::default()
        })
        .collect();
    roster_testkit::kerio::Fixture {
        version: "10.0.8.9228".into(),
        domains: vec![
            Domain {
                name: "example.com".into(),
                primary: true,
                users,
                groups: vec![Group {
                    name: "Sales".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            Domain {
                name: "admin.example".into(),
                users: vec![User {
                    login_name: "admin".into(),
                    full_name: "Administrator".into(),
                    password: KERIO_ADMIN_PASSWORD.into(),
                    role: Role::FullAdmin,
                    ..Default::default()
                }],
                ..Default::default()
            },
        ],
    }
}

impl KerioFixture {
    fn kerio_settings(&self) -> KerioSettings {
        KerioSettings {
            schedule: Default::default(),
            server: self.emulator.server_setting(),
            ignore_certificate_errors: false,
            ca_file: Some(self.ca.ca_cert_path().to_owned()),
            username: KERIO_ADMIN.into(),
            password: Some(Secret::new(KERIO_ADMIN_PASSWORD)),
            domains: vec!["example.com".into()],
            groups: vec![],
            username_format: UsernameFormat::Email,
            imap_server: self.dovecot.imaps_url().unwrap(),
            delete_users: false,
            guard: Default::default(),
        }
    }
}

impl ContractFixture for KerioFixture {
    const KIND: DirectoryKind = DirectoryKind::Kerio;
    const CHECKS_PASSWORDS: bool = true;

    fn user_name(&self, uid: &str) -> String {
        match STANDARD_USERS.iter().find(|u| u.uid == uid) {
            Some(u) => u.mail.to_owned(),
            None => format!("{uid}@example.com"),
        }
    }

    async fn start() -> KerioFixture {
        use roster_testkit::kerio::{Fault, FaultKind, KerioEmulator, TlsFiles};
        let ca = TestCa::generate().unwrap();
        let cert = ca.issue_server_cert("kerio").unwrap();
        let mut fixture = kerio_standard_fixture();
        let mut broken = roster_testkit::kerio::numbered_users("zz-broken.example", 3);
        broken.id = KERIO_BROKEN_DOMAIN_ID.into();
        fixture.domains.push(broken);
        let dovecot = roster_testkit::Dovecot::start(roster_testkit::DovecotConfig {
            users: fixture.imap_users(),
            tls: Some(ca.issue_server_cert("localhost").unwrap()),
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
        emulator.controls().inject(Fault {
            method: Some("Users.get".into()),
            domain_id: Some(KERIO_BROKEN_DOMAIN_ID.into()),
            skip: 0,
            times: None,
            kind: FaultKind::HtmlErrorPage(502),
        });
        KerioFixture {
            emulator,
            dovecot,
            ca,
        }
    }

    fn settings(&self) -> DirectorySettings {
        DirectorySettings::Kerio(self.kerio_settings())
    }

    /// example.com is read (and reported) first; the next domain's user list is a proxy's 502 page.
    fn failing_read_settings(&self) -> DirectorySettings {
        let mut s = self.kerio_settings();
        s.domains.push("zz-broken.example".into());
        DirectorySettings::Kerio(s)
    }

    fn unreachable_settings(&self) -> DirectorySettings {
        let mut s = self.kerio_settings();
        s.server = format!("127.0.0.1:{}", free_port());
        s.imap_server = format!("imaps://127.0.0.1:{}", free_port());
        DirectorySettings::Kerio(s)
    }

    async fn rename(&mut self, from: &str, to: &str) {
        let login = self.user_name(from).split('@').next().unwrap().to_owned();
        self.emulator.controls().edit(|f| {
            let user = f
                .domain_mut("example.com")
                .unwrap()
                .users
                .iter_mut()
                .find(|u| u.login_name == login)
                .unwrap();
            user.login_name = to.to_owned();
        });
    }
}

// ---- Active Directory: a real Samba AD domain controller, one per test process -------------------------

/// The standard users in an OU of their own (beside a disabled user and one without an address, whom
/// the seed's default filters leave out), and an OU of [`AD_BULK`] users read through a proxy that cuts
/// the connection in the middle.
pub struct AdFixture {
    /// Appended to every sAMAccountName of this fixture (`alice.3`): one domain serves every test.
    suffix: String,
    dc: &'static roster_testkit::SambaDc,
    ou: roster_testkit::Ou,
    bulk_dn: String,
    proxy: roster_testkit::CutProxy,
}

const AD_BULK: usize = 300;

fn ad_cn(uid: &str) -> String {
    STANDARD_USERS
        .iter()
        .find(|u| u.uid == uid)
        .map_or_else(|| uid.to_owned(), |u| u.cn.to_owned())
}

impl AdFixture {
    fn ad_settings(&self) -> ActiveDirectorySettings {
        ActiveDirectorySettings {
            schedule: Default::default(),
            domain: roster_testkit::samba::DNS_DOMAIN.into(),
            server: self.dc.ip().to_string(),
            dns_server: String::new(),
            port: None,
            protocol: AdProtocol::Ldap,
            ignore_certificate_errors: false,
            ca_file: Some(self.dc.ca_cert_path().to_owned()),
            base_dn: self.ou.dn().to_owned(),
            username: roster_testkit::samba::ADMIN_UPN.into(),
            password: Some(Secret::new(roster_testkit::samba::ADMIN_PASSWORD)),
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

impl ContractFixture for AdFixture {
    const KIND: DirectoryKind = DirectoryKind::ActiveDirectory;
    const CHECKS_PASSWORDS: bool = true;

    fn user_name(&self, uid: &str) -> String {
        format!("{uid}.{}", self.suffix)
    }

    async fn start() -> AdFixture {
        use roster_testkit::AdUser;
        let dc = tokio::task::spawn_blocking(roster_testkit::SambaDc::shared)
            .await
            .unwrap()
            .unwrap();
        static FIXTURES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let suffix = FIXTURES
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            .to_string();
        let ou = dc.new_ou("contract").await.unwrap();
        for u in &STANDARD_USERS {
            let mut user = AdUser::new(&format!("{}.{suffix}", u.uid));
            user.cn = Some(u.cn.into());
            user.display_name = Some(u.cn.into());
            user.mail = Some(u.mail.into());
            user.password = Some(u.password.into());
            ou.add_user(&user).await.unwrap();
        }
        let mut disabled = AdUser::new(&format!("dave.{suffix}"));
        disabled.mail = Some("dave@example.com".into());
        disabled.enabled = false;
        ou.add_user(&disabled).await.unwrap();
        ou.add_user(&AdUser::new(&format!("no-mail.{suffix}")))
            .await
            .unwrap();
        // One bulk OU for the whole process: only the failing read uses it, and nothing changes it.
        static BULK: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
        let bulk_dn = BULK
            .get_or_init(|| async {
                let bulk = dc.new_ou("contract-bulk").await.unwrap();
                let users: Vec<AdUser> = (0..AD_BULK)
                    .map(|i| {
                        let mut u = AdUser::new(&format!("bulk{i}"));
                        u.mail = Some(format!("bulk{i}@example.com"));
                        u.display_name = Some(format!("Bulk User Number {i} With A Long Name"));
                        u
                    })
                    .collect();
                bulk.add_users_bulk(&users, 4).await.unwrap();
                bulk.dn().to_owned()
            })
            .await
            .clone();
        // About a third of the bulk OU's answers, after the TLS handshake and the bind.
        let proxy =
            roster_testkit::CutProxy::start(std::net::SocketAddr::new(dc.ip().into(), 636), 40_000)
                .await
                .unwrap();
        AdFixture {
            suffix,
            dc,
            bulk_dn,
            ou,
            proxy,
        }
    }

    fn settings(&self) -> DirectorySettings {
        DirectorySettings::ActiveDirectory(self.ad_settings())
    }

    /// The bulk OU in pages of 20, over LDAPS through the proxy, which cuts the read's connection
    /// after about a third of the users.
    fn failing_read_settings(&self) -> DirectorySettings {
        let mut s = self.ad_settings();
        s.server = "127.0.0.1".into();
        s.port = Some(self.proxy.addr().port());
        s.protocol = AdProtocol::Ldaps;
        s.ca_file = None;
        // The certificate names the DC, not 127.0.0.1.
        s.ignore_certificate_errors = true;
        s.base_dn = self.bulk_dn.clone();
        s.page_size = Some(20);
        DirectorySettings::ActiveDirectory(s)
    }

    fn unreachable_settings(&self) -> DirectorySettings {
        let mut s = self.ad_settings();
        s.server = "127.0.0.1".into();
        s.port = Some(free_port());
        s.timeout_seconds = Some(5);
        DirectorySettings::ActiveDirectory(s)
    }

    async fn rename(&mut self, from: &str, to: &str) {
        let dn = format!(
            "CN={},{}",
            roster_testkit::samba::rdn_value(&ad_cn(from)),
            self.ou.dn()
        );
        let renamed = self.ou.rename(&dn, to).await.unwrap();
        let name = self.user_name(to);
        self.ou
            .replace(&renamed, "sAMAccountName", &[name.as_str()])
            .await
            .unwrap();
    }
}
