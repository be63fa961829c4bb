//! Incremental synchronization with Active Directory's DirSync (issue 26 item 4) against the real Samba
//! DC: after a full read, each change (add, modify, rename, delete, leaving and entering the filter,
//! leaving the base DN, joining and leaving a selected group directly and through a nested group, a
//! nested group deleted) is followed by a sync that reads incrementally and applies exactly that change,
//! once as the Administrator (who sees deleted objects: DirSync's tombstones) and once as a service
//! account that is no administrator (Samba hides tombstones from it, so deletions come from the ids in
//! scope). A cookie Samba refuses, a cookie of another domain controller, one older than the shortest
//! tombstone lifetime and one Roster didn't write mean a full read, said in the run; a read cut in the
//! middle changes nothing and keeps the cookie.
//!
//! DirSync reads the whole domain, which the other tests of this process change at the same time: the
//! assertions only look at this test's OU (the read again by objectGUID keeps to the base DN).

use super::*;
use roster_app::ReadMode;

async fn read_state(env: &Env) -> Option<String> {
    env.store
        .get_setting(roster_store::DIRECTORY_READ_STATE)
        .await
        .unwrap()
}

/// (created, updated, renamed, deleted) of a run.
fn changes(report: &roster_app::RunReport) -> (u64, u64, u64, u64) {
    let c = &report.counts;
    (c.created, c.updated, c.renamed, c.deleted)
}

/// A sync that must have read incrementally, with the first line saying so (and how deletions were
/// found: `deletions` is part of that line).
async fn incremental(env: &Env, deletions: &str) -> roster_app::RunReport {
    let report = sync(env).await;
    assert_eq!(
        report.read_mode,
        Some(ReadMode::Incremental),
        "{:#?}",
        report.lines
    );
    let first = report.lines[0].reason.to_string();
    assert!(
        first.contains("incremental read")
            && first.contains("DirSync")
            && first.contains(deletions),
        "{first}"
    );
    report
}

/// Who the service account is: the Administrator, or an account of its own without any right.
#[derive(Debug, Clone, Copy)]
enum Account {
    Administrator,
    WithoutRights,
}

impl Account {
    /// The settings' account, and how a deletion is found with it.
    async fn set(self, c: &Corner, s: &mut ActiveDirectorySettings) -> &'static str {
        match self {
            Account::Administrator => "deleted objects seen as such",
            Account::WithoutRights => {
                let name = c.dc.unique_name("dsync");
                let svc =
                    c.dc.add_service_account(&name, "Svc-Password-1", &[])
                        .await
                        .unwrap();
                s.username = svc.user_principal_name.clone();
                s.password = Some(Secret::new(&svc.password));
                "can't see deleted objects"
            }
        }
    }
}

async fn each_change_is_read_incrementally(account: Account) {
    let c = Corner::new("dirsync").await;
    let elsewhere = c.dc.new_ou("dirsync-elsewhere").await.unwrap();
    let mut dns = std::collections::BTreeMap::new();
    for name in ["a", "b", "c", "e", "f"] {
        dns.insert(name, c.add(&c.user(name)).await);
    }
    let mut g = c.user("g");
    g.enabled = false;
    dns.insert("g", c.add(&g).await);
    let env = Env::sqlite().await;
    let mut s = c.settings();
    s.delete_users = true;
    s.guard = crate::support::unguarded();
    let deletions = account.set(&c, &mut s).await;
    configure(&env, s).await;
    let first = sync(&env).await;
    assert_eq!(first.read_mode, Some(ReadMode::Full));
    assert_eq!(changes(&first), (5, 0, 0, 0), "{:#?}", first.lines);
    assert!(read_state(&env).await.is_some(), "the cookie is stored");

    // Added.
    c.add(&c.user("d")).await;
    // A preview reads the changes and keeps the cookie.
    let cookie = read_state(&env).await;
    let preview = run(&env, RunKind::Preview).await.unwrap();
    assert_eq!(preview.read_mode, Some(ReadMode::Incremental));
    assert_eq!(changes(&preview), (1, 0, 0, 0), "{:#?}", preview.lines);
    assert_eq!(read_state(&env).await, cookie, "a preview keeps the cookie");
    let report = incremental(&env, deletions).await;
    assert_eq!(changes(&report), (1, 0, 0, 0), "{:#?}", report.lines);
    assert_ne!(read_state(&env).await, cookie, "a sync moves it on");

    // Changed: an address.
    let bee = format!("bee.{}@example.com", c.tag);
    c.ou.replace(&dns["b"], "mail", &[bee.as_str()])
        .await
        .unwrap();
    let report = incremental(&env, deletions).await;
    assert_eq!(changes(&report), (0, 1, 0, 0), "{:#?}", report.lines);
    let b = env
        .roster
        .get_user(&env.local_admin(), &c.sam("b"))
        .await
        .unwrap();
    let emails: Vec<&str> = b.emails.iter().map(|e| e.as_str()).collect();
    assert_eq!(emails, [bee.as_str()]);

    // Renamed: the cn and the sAMAccountName.
    let renamed =
        c.ou.rename(&dns["c"], &format!("c2 {}", c.tag))
            .await
            .unwrap();
    c.ou.replace(&renamed, "sAMAccountName", &[c.sam("c2").as_str()])
        .await
        .unwrap();
    let report = incremental(&env, deletions).await;
    assert_eq!(changes(&report), (0, 0, 1, 0), "{:#?}", report.lines);

    // Deleted.
    c.ou.delete(&dns["a"]).await.unwrap();
    let report = incremental(&env, deletions).await;
    assert_eq!(changes(&report), (0, 0, 0, 1), "{:#?}", report.lines);

    // Leaves the filter (disabled), enters it (enabled).
    c.ou.set_enabled(&dns["e"], false).await.unwrap();
    let report = incremental(&env, deletions).await;
    assert_eq!(changes(&report), (0, 0, 0, 1), "{:#?}", report.lines);
    c.ou.set_enabled(&dns["g"], true).await.unwrap();
    let report = incremental(&env, deletions).await;
    assert_eq!(changes(&report), (1, 0, 0, 0), "{:#?}", report.lines);

    // Leaves the base DN (moved to another OU).
    elsewhere.move_to(&dns["f"], elsewhere.dn()).await.unwrap();
    let report = incremental(&env, deletions).await;
    assert_eq!(changes(&report), (0, 0, 0, 1), "{:#?}", report.lines);
    assert_eq!(
        synced_names(&env).await,
        sorted(&[c.sam("b"), c.sam("c2"), c.sam("d"), c.sam("g")])
    );

    // An OU with a user moved into the base DN: the user enters without changing itself.
    let outside = c.dc.new_ou("dirsync-outside").await.unwrap();
    let mut h = c.user("h");
    h.cn = Some(format!("h {}", c.tag));
    outside.add_user(&h).await.unwrap();
    let report = incremental(&env, deletions).await;
    assert_eq!(changes(&report), (0, 0, 0, 0), "{:#?}", report.lines);
    let moved_ou = outside.move_to(outside.dn(), c.ou.dn()).await.unwrap();
    let report = incremental(&env, deletions).await;
    assert_eq!(changes(&report), (1, 0, 0, 0), "{:#?}", report.lines);
    assert!(synced_names(&env).await.contains(&c.sam("h")));
    // And out again.
    outside.move_to(&moved_ou, elsewhere.dn()).await.unwrap();
    let report = incremental(&env, deletions).await;
    assert_eq!(changes(&report), (0, 0, 0, 1), "{:#?}", report.lines);

    // Nothing since.
    let report = incremental(&env, deletions).await;
    assert_eq!(changes(&report), (0, 0, 0, 0), "{:#?}", report.lines);
    assert_eq!(
        synced_names(&env).await,
        sorted(&[c.sam("b"), c.sam("c2"), c.sam("d"), c.sam("g")])
    );
    env.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_is_read_incrementally_as_the_administrator() {
    each_change_is_read_incrementally(Account::Administrator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_is_read_incrementally_as_an_account_without_rights() {
    each_change_is_read_incrementally(Account::WithoutRights).await;
}

/// With a selected group: members added and removed directly and through a nested group, the nested
/// group taken out and put back, then deleted (its members' memberships go with it: the ids in scope
/// are read).
async fn group_membership_is_read_incrementally(account: Account) {
    let c = Corner::new("dirsync-groups").await;
    let alice = c.add(&c.user("alice")).await;
    let bob = c.add(&c.user("bob")).await;
    let carol = c.add(&c.user("carol")).await;
    let dave = c.add(&c.user("dave")).await;
    let inner =
        c.ou.add_group(&c.sam("inner"), &[bob.as_str()])
            .await
            .unwrap();
    let outer =
        c.ou.add_group(&c.sam("outer"), &[alice.as_str(), inner.as_str()])
            .await
            .unwrap();
    let env = Env::sqlite().await;
    let mut s = c.settings();
    s.delete_users = true;
    s.guard = crate::support::unguarded();
    s.groups = vec![outer.clone()];
    // Not how deletions are found: another test's group deleted anywhere in the domain at the same
    // time makes this read the ids in scope too (any deleted group might have been nested).
    account.set(&c, &mut s).await;
    let deletions = "";
    configure(&env, s).await;
    let first = sync(&env).await;
    assert_eq!(changes(&first), (2, 0, 0, 0), "{:#?}", first.lines);

    c.ou.add_members(&outer, &[carol.as_str()]).await.unwrap();
    let report = incremental(&env, deletions).await;
    assert_eq!(changes(&report), (1, 0, 0, 0), "joins: {:#?}", report.lines);

    c.ou.remove_members(&outer, &[alice.as_str()])
        .await
        .unwrap();
    let report = incremental(&env, deletions).await;
    assert_eq!(
        changes(&report),
        (0, 0, 0, 1),
        "leaves: {:#?}",
        report.lines
    );

    c.ou.add_members(&inner, &[dave.as_str()]).await.unwrap();
    let report = incremental(&env, deletions).await;
    assert_eq!(
        changes(&report),
        (1, 0, 0, 0),
        "joins the nested group: {:#?}",
        report.lines
    );
    assert_eq!(
        synced_names(&env).await,
        sorted(&[c.sam("bob"), c.sam("carol"), c.sam("dave")])
    );

    c.ou.remove_members(&outer, &[inner.as_str()])
        .await
        .unwrap();
    let report = incremental(&env, deletions).await;
    assert_eq!(
        changes(&report),
        (0, 0, 0, 2),
        "the nested group taken out: {:#?}",
        report.lines
    );
    c.ou.add_members(&outer, &[inner.as_str()]).await.unwrap();
    let report = incremental(&env, deletions).await;
    assert_eq!(
        changes(&report),
        (2, 0, 0, 0),
        "the nested group put back: {:#?}",
        report.lines
    );

    // The nested group deleted: bob and dave were members only through it.
    c.ou.delete(&inner).await.unwrap();
    let report = incremental(&env, "reading the ids in scope").await;
    assert_eq!(
        changes(&report),
        (0, 0, 0, 2),
        "the nested group deleted: {:#?}",
        report.lines
    );
    assert_eq!(synced_names(&env).await, [c.sam("carol")]);
    env.check().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_membership_is_read_incrementally_as_the_administrator() {
    group_membership_is_read_incrementally(Account::Administrator).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_membership_is_read_incrementally_as_an_account_without_rights() {
    group_membership_is_read_incrementally(Account::WithoutRights).await;
}

/// The stored cookie's parts (Roster's own layout: a version byte, then the domain controller, the
/// scope and the server's cookie as BER OCTET STRINGs, and when it was taken as an INTEGER of eight
/// bytes), changed by `change` and put back.
async fn tamper(env: &Env, change: impl FnOnce(&mut [Vec<u8>; 4])) {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut st: serde_json::Value = serde_json::from_str(&read_state(env).await.unwrap()).unwrap();
    let bytes = b64.decode(st["cookie"].as_str().unwrap()).unwrap();
    assert_eq!(bytes[0], 1, "the layout's version");
    let tags = [0x04, 0x04, 0x04, 0x02];
    let mut parts: [Vec<u8>; 4] = Default::default();
    let mut at = 1;
    for (part, tag) in parts.iter_mut().zip(tags) {
        assert_eq!(bytes[at], tag);
        let (len, header) = match bytes[at + 1] {
            n if n < 0x80 => (usize::from(n), 2),
            0x81 => (usize::from(bytes[at + 2]), 3),
            0x82 => (
                usize::from(bytes[at + 2]) << 8 | usize::from(bytes[at + 3]),
                4,
            ),
            other => panic!("length form {other:#x}"),
        };
        *part = bytes[at + header..at + header + len].to_vec();
        at += header + len;
    }
    assert_eq!(at, bytes.len());
    change(&mut parts);
    let mut out = vec![1u8];
    for (part, tag) in parts.iter().zip(tags) {
        out.push(tag);
        match part.len() {
            n if n < 0x80 => out.push(n as u8),
            n if n < 0x100 => out.extend([0x81, n as u8]),
            n => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
        out.extend(part);
    }
    put_cookie(env, &mut st, &b64.encode(out)).await;
}

async fn put_cookie(env: &Env, st: &mut serde_json::Value, cookie: &str) {
    st["cookie"] = serde_json::json!(cookie);
    env.store
        .put_setting(
            roster_store::DIRECTORY_READ_STATE,
            &st.to_string(),
            &roster_store::Actor("test".into()),
            roster_core::Timestamp(0),
            "tampered",
        )
        .await
        .unwrap();
}

/// A full read with `why` in the report's first line, which changes nothing.
async fn full_read_because(env: &Env, why: &str) {
    let report = sync(env).await;
    assert_eq!(
        report.read_mode,
        Some(ReadMode::Full),
        "{:#?}",
        report.lines
    );
    let first = report.lines[0].reason.to_string();
    assert!(first.contains(why), "{first}");
    assert_eq!(changes(&report), (0, 0, 0, 0), "{:#?}", report.lines);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_read_keeps_the_cookie_and_a_cookie_that_cant_continue_means_a_full_read() {
    let c = Corner::new("dirsync-faults").await;
    c.add(&c.user("alice")).await;
    // LDAPS through a proxy that can cut the connection (the certificate names the DC, not 127.0.0.1).
    let proxy =
        roster_testkit::CutProxy::start(std::net::SocketAddr::new(c.dc.ip().into(), 636), u64::MAX)
            .await
            .unwrap();
    let env = Env::sqlite().await;
    let mut s = c.settings();
    s.server = "127.0.0.1".into();
    s.port = Some(proxy.addr().port());
    s.protocol = AdProtocol::Ldaps;
    s.ca_file = None;
    s.ignore_certificate_errors = true;
    s.delete_users = true;
    configure(&env, s).await;
    assert_eq!(changes(&sync(&env).await), (1, 0, 0, 0));

    // Bob joins, while 150 users are added elsewhere in the domain, which DirSync (from the domain's
    // root) sends too (~60 kB); connections are then cut after 20 kB: the preparation's (a few kB)
    // passes, the read's breaks in the middle of DirSync's answer.
    c.add(&c.user("bob")).await;
    let noise = c.dc.new_ou("dirsync-noise").await.unwrap();
    let others: Vec<AdUser> = (0..150)
        .map(|i| {
            let mut u = AdUser::new(&format!("noise{i}.{}", c.tag));
            u.mail = Some(format!("noise{i}.{}@example.com", c.tag));
            u.display_name = Some(format!("Somebody Elsewhere In The Domain Number {i}"));
            u
        })
        .collect();
    noise.add_users_bulk(&others, 4).await.unwrap();
    proxy.set_server_bytes(20_000);
    let cookie = read_state(&env).await;
    let before = state(&env).await;
    let cuts = proxy.cuts();
    let (code, message) = failed(run(&env, RunKind::Sync).await);
    assert_eq!(code, "DI014-disconnected", "{message}");
    assert!(
        message.contains("while reading the users"),
        "cut in the read, not the preparation: {message}"
    );
    assert!(proxy.cuts() > cuts, "the proxy cut the read");
    assert_eq!(state(&env).await, before, "a failed read changed the users");
    assert_eq!(
        read_state(&env).await,
        cookie,
        "a failed read moved the cookie"
    );

    // Whole again: the change is read incrementally.
    proxy.set_server_bytes(u64::MAX);
    let report = incremental(&env, "deleted objects seen as such").await;
    assert_eq!(changes(&report), (1, 0, 0, 0), "{:#?}", report.lines);

    // A cookie Samba can't decode, one of another domain controller, one Roster didn't write.
    tamper(&env, |parts| parts[2] = b"garbage".to_vec()).await;
    full_read_because(&env, "refused the cookie of the last read (result code 12").await;
    tamper(&env, |parts| {
        parts[0] = b"CN=NTDS Settings,CN=DC2,CN=Servers,CN=Default-First-Site-Name".to_vec()
    })
    .await;
    full_read_because(&env, "another domain controller answered").await;
    // Taken 61 days ago: deletions since may have left no tombstone.
    tamper(&env, |parts| {
        let taken = i64::from_be_bytes(parts[3].clone().try_into().unwrap());
        parts[3] = (taken - 61 * 86_400).to_be_bytes().to_vec();
    })
    .await;
    full_read_because(&env, "the last read is 61 days old").await;
    let mut st: serde_json::Value = serde_json::from_str(&read_state(&env).await.unwrap()).unwrap();
    put_cookie(&env, &mut st, "cmlkPTAwMCxjc249Z2FyYmFnZQ==").await;
    full_read_because(&env, "not a DirSync cookie").await;
    // And incremental again after each full read.
    let report = incremental(&env, "deleted objects seen as such").await;
    assert_eq!(changes(&report), (0, 0, 0, 0), "{:#?}", report.lines);
    env.check().await;
}
