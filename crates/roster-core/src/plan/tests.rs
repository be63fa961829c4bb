//! The planner as a whole, against the rules at the top of `mod.rs`: each test gives users and entries and
//! checks the plan. The phases have tests of their own next to them.

use super::*;

pub(super) fn user(
    id: i64,
    name: &str,
    emails: &[&str],
    auth: AuthMethod,
    link: Option<&str>,
) -> CurrentUser {
    CurrentUser {
        departed_at: None,
        id,
        name: UserName::parse(name).unwrap(),
        full_name: String::new(),
        emails: emails
            .iter()
            .map(|e| EmailAddress::parse(e).unwrap())
            .collect(),
        auth,
        link: link.map(|id| DirectoryLink {
            source: "ldap".into(),
            id: id.into(),
            dn: Some(format!("uid={name},ou=People")),
        }),
        builtin_admin: false,
        folder_messages: 0,
    }
}

pub(super) fn entry(id: &str, name: Option<&str>, emails: &[&str]) -> DirectoryEntry {
    DirectoryEntry {
        id: id.into(),
        dn: format!("uid={},ou=People", name.unwrap_or("?")),
        name: name.map(Into::into),
        full_name: Some(format!("{} Full", name.unwrap_or("?"))),
        emails: Some(emails.iter().map(|e| e.to_string()).collect()),
    }
}

pub(super) fn opts(delete: bool) -> PlanOptions {
    PlanOptions {
        scope: crate::plan::PlanScope::All,
        now: crate::Timestamp(0),
        delete_after_seconds: 0,
        source: "ldap".into(),
        delete_users: delete,
    }
}

pub(super) fn admin() -> CurrentUser {
    CurrentUser {
        builtin_admin: true,
        ..user(1, "admin", &[], AuthMethod::Local, None)
    }
}

#[test]
fn creates_new_users_and_leaves_unchanged_ones() {
    let mut alice = user(
        2,
        "alice",
        &["alice@x.com"],
        AuthMethod::Directory,
        Some("id-a"),
    );
    alice.full_name = "alice Full".into();
    alice.link.as_mut().unwrap().dn = Some("uid=alice,ou=People".into());
    let plan = plan_sync(
        &[admin(), alice],
        vec![
            entry("id-a", Some("alice"), &["alice@x.com"]),
            entry("id-b", Some("bob"), &["bob@x.com", "BOB@x.com"]),
        ],
        &opts(false),
    );
    assert_eq!(plan.counts.created, 1);
    assert_eq!(plan.counts.unchanged, 1);
    assert_eq!(
        plan.changes.create[0].emails.len(),
        1,
        "addresses deduplicated"
    );
    assert_eq!(plan.lines.len(), 1);
}

#[test]
fn rename_by_id_keeps_the_user() {
    let plan = plan_sync(
        &[user(2, "alice", &[], AuthMethod::Directory, Some("id-a"))],
        vec![entry("id-a", Some("alicia"), &[])],
        &opts(true),
    );
    assert_eq!(plan.counts.renamed, 1);
    assert_eq!(plan.counts.deleted, 0);
    let u = &plan.changes.update[0];
    assert_eq!(u.user_id, 2);
    assert_eq!(u.name.as_ref().unwrap().as_str(), "alicia");
}

#[test]
fn swapped_names_are_not_a_conflict() {
    let plan = plan_sync(
        &[
            user(2, "a", &[], AuthMethod::Directory, Some("1")),
            user(3, "b", &[], AuthMethod::Directory, Some("2")),
        ],
        vec![entry("1", Some("b"), &[]), entry("2", Some("a"), &[])],
        &opts(true),
    );
    assert_eq!(plan.counts.renamed, 2, "{:?}", plan.lines);
    assert_eq!(plan.counts.conflicts, 0);
}

#[test]
fn manual_user_is_linked_by_name_and_keeps_its_auth() {
    let plan = plan_sync(
        &[user(2, "Carol", &[], AuthMethod::Local, None)],
        vec![entry("id-c", Some("carol"), &["carol@x.com"])],
        &opts(true),
    );
    assert_eq!(plan.counts.linked, 1);
    let u = &plan.changes.update[0];
    assert_eq!(u.link.id, "id-c");
    assert_eq!(u.name.as_ref().unwrap().as_str(), "carol");
    assert!(plan.lines[0].reason.contains("authentication stays local"));
}

#[test]
fn duplicate_names_in_the_directory_are_conflicts_and_protect_the_user() {
    let plan = plan_sync(
        &[user(2, "dave", &[], AuthMethod::Directory, Some("1"))],
        vec![entry("1", Some("dave"), &[]), entry("2", Some("DAVE"), &[])],
        &opts(true),
    );
    assert_eq!(plan.counts.conflicts, 2);
    assert!(plan.changes.is_empty(), "{:?}", plan.changes);
}

#[test]
fn an_address_held_by_another_user_is_a_conflict_and_the_rest_goes_on() {
    let plan = plan_sync(
        &[user(2, "erin", &["shared@x.com"], AuthMethod::Local, None)],
        vec![
            entry("1", Some("frank"), &["shared@x.com"]),
            entry("2", Some("gina"), &["g@x.com"]),
        ],
        &opts(false),
    );
    assert_eq!(plan.counts.conflicts, 1);
    assert_eq!(plan.counts.created, 1);
    assert_eq!(plan.changes.create[0].name.as_str(), "gina");
    let c = plan
        .lines
        .iter()
        .find(|l| l.action == ReportAction::Conflict)
        .unwrap();
    assert!(
        c.reason.contains("shared@x.com") && c.reason.contains("erin"),
        "{}",
        c.reason
    );
}

#[test]
fn two_new_entries_claiming_one_address_are_both_conflicts() {
    let plan = plan_sync(
        &[],
        vec![
            entry("1", Some("h"), &["s@x.com"]),
            entry("2", Some("i"), &["s@x.com"]),
        ],
        &opts(false),
    );
    assert_eq!(plan.counts.conflicts, 2);
    assert!(plan.changes.create.is_empty());
}

#[test]
fn deletion_rules() {
    let mut with_mail = user(3, "old2", &[], AuthMethod::Directory, Some("gone2"));
    with_mail.folder_messages = 5;
    let current = [
        admin(),
        user(2, "old1", &[], AuthMethod::Directory, Some("gone1")),
        with_mail,
        user(4, "local", &[], AuthMethod::Local, Some("gone3")),
        user(5, "manual", &[], AuthMethod::Directory, None),
        user(6, "skipped", &[], AuthMethod::Directory, Some("noname")),
    ];
    let entries = vec![entry("noname", None, &[])];
    let none = plan_sync(&current, entries.clone(), &opts(false));
    assert!(none.changes.delete.is_empty());
    let plan = plan_sync(&current, entries, &opts(true));
    let ids: Vec<i64> = plan.changes.delete.iter().map(|d| d.user_id).collect();
    assert_eq!(ids, vec![2, 3]);
    assert_eq!(plan.counts.deleted, 2);
    assert_eq!(plan.counts.folders_kept, 1);
    assert_eq!(plan.counts.skipped, 1);
    assert!(plan.changes.delete[1].keep_folder);
}

#[test]
fn a_one_user_read_speaks_only_for_that_user() {
    let a = user(2, "alice", &[], AuthMethod::Directory, Some("id-a"));
    let b = user(
        3,
        "bob",
        &["bob@x.com"],
        AuthMethod::Directory,
        Some("id-b"),
    );
    let only_alice = PlanOptions {
        scope: PlanScope::Only(vec![2]),
        ..opts(true)
    };
    // alice's entry is gone: she leaves; bob, whose entry wasn't read, stays.
    let plan = plan_sync(&[admin(), a.clone(), b.clone()], vec![], &only_alice);
    let deleted: Vec<i64> = plan.changes.delete.iter().map(|d| d.user_id).collect();
    assert_eq!(deleted, [2]);
    // A new entry with bob's name (another id) doesn't take bob over, nor his address.
    let only_new = PlanOptions {
        scope: PlanScope::Only(vec![]),
        ..opts(true)
    };
    let plan = plan_sync(
        &[admin(), a, b],
        vec![entry("id-new", Some("bob"), &["bob@x.com"])],
        &only_new,
    );
    assert!(plan.changes.delete.is_empty(), "{:?}", plan.changes);
    assert!(plan.changes.update.is_empty(), "{:?}", plan.changes);
    assert!(plan.changes.create.is_empty(), "{:?}", plan.changes);
    assert_eq!(plan.counts.conflicts, 1, "{:#?}", plan.lines);
}

#[test]
fn the_builtin_admin_is_never_touched() {
    let plan = plan_sync(
        &[admin()],
        vec![entry("1", Some("Admin"), &[])],
        &opts(true),
    );
    assert_eq!(plan.counts.conflicts, 1);
    assert!(plan.changes.is_empty());
}

#[test]
fn a_user_whose_own_entry_was_seen_is_not_taken_over_by_name() {
    // bob's entry lost its uid (skipped); another entry now calls itself bob.
    let plan = plan_sync(
        &[user(2, "bob", &[], AuthMethod::Directory, Some("1"))],
        vec![entry("1", None, &[]), entry("2", Some("bob"), &[])],
        &opts(true),
    );
    assert!(plan.changes.update.is_empty());
    assert!(plan.changes.delete.is_empty());
    assert_eq!(plan.counts.conflicts, 1, "{:?}", plan.lines);
}

/// An entry re-created with a new stable id (or a new person given a departed user's name) is
/// matched by name, as the issue says, and the report says which entry the user was linked to.
#[test]
fn a_user_whose_entry_is_gone_is_matched_by_name_and_the_report_says_so() {
    let mut old = user(2, "bob", &["bob@x.com"], AuthMethod::Directory, Some("id1"));
    old.folder_messages = 7;
    for delete in [false, true] {
        let plan = plan_sync(
            &[admin(), old.clone()],
            vec![entry("id2", Some("bob"), &[])],
            &opts(delete),
        );
        assert_eq!(plan.counts.linked, 1, "{:?}", plan.lines);
        assert!(plan.changes.delete.is_empty() && plan.changes.create.is_empty());
        assert!(
            plan.lines[0]
                .reason
                .contains("was linked to the entry id1, which the directory no longer returns"),
            "{:?}",
            plan.lines
        );
    }
}

/// Regression (planner review of issue 4): a manual user "νικοσ_π" was not linked by the entry
/// "ΝΙΚΟΣ_Π" (whose final Σ lowercased to ς), and a second, case-variant user was created.
#[test]
fn names_that_differ_only_in_case_match_under_case_folding() {
    let plan = plan_sync(
        &[user(
            2,
            "\u{3bd}\u{3b9}\u{3ba}\u{3bf}\u{3c3}_\u{3c0}",
            &[],
            AuthMethod::Local,
            None,
        )],
        vec![entry(
            "1",
            Some("\u{39d}\u{399}\u{39a}\u{39f}\u{3a3}_\u{3a0}"),
            &[],
        )],
        &opts(false),
    );
    assert_eq!(plan.counts.linked, 1, "{:?}", plan.lines);
    assert!(plan.changes.create.is_empty());
}

/// Regression (planner review of issue 4): an entry skipped for a control character in its DN didn't
/// count as seen, so its user was deleted.
#[test]
fn an_entry_skipped_for_a_control_character_still_counts_as_seen() {
    let mut e = entry("id1", Some("bob"), &[]);
    e.dn = "uid=bob\tx,ou=People".into();
    let plan = plan_sync(
        &[user(2, "bob", &[], AuthMethod::Directory, Some("id1"))],
        vec![e],
        &opts(true),
    );
    assert_eq!(plan.counts.skipped, 1);
    assert!(plan.changes.delete.is_empty(), "{:?}", plan.lines);
}

#[test]
fn invalid_addresses_are_dropped_with_a_warning() {
    let plan = plan_sync(
        &[],
        vec![entry("1", Some("j"), &["not an address", "j@x.com"])],
        &opts(false),
    );
    assert_eq!(plan.changes.create[0].emails.len(), 1);
    assert!(plan.lines.iter().any(|l| l.action == ReportAction::Warning));
}

#[test]
fn a_long_chain_of_renames_into_a_held_name_is_withdrawn_quickly() {
    // u0 -> u1 -> ... -> u(n-1) -> "held", where "held" is a local user: every rename is withdrawn,
    // one after the other. This must stay linear (it was quadratic: hours at 100,000).
    let n = 20_000;
    let mut current: Vec<CurrentUser> = (0..n)
        .map(|i| {
            user(
                i + 10,
                &format!("u{i}"),
                &[],
                AuthMethod::Directory,
                Some(&format!("id{i}")),
            )
        })
        .collect();
    current.push(user(5, "held", &[], AuthMethod::Local, None));
    let entries = (0..n)
        .map(|i| {
            let next = if i + 1 == n {
                "held".to_owned()
            } else {
                format!("u{}", i + 1)
            };
            entry(&format!("id{i}"), Some(&next), &[])
        })
        .collect();
    let started = std::time::Instant::now();
    let plan = plan_sync(&current, entries, &opts(false));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(plan.counts.conflicts, n as u64);
    assert!(plan.changes.is_empty());
}

#[test]
fn every_copy_of_a_duplicated_id_is_a_conflict() {
    let current = [user(2, "a", &[], AuthMethod::Directory, Some("1"))];
    for entries in [
        vec![entry("1", Some("z"), &[]), entry("1", Some("a"), &[])],
        vec![entry("1", Some("a"), &[]), entry("1", Some("z"), &[])],
    ] {
        let plan = plan_sync(&current, entries, &opts(true));
        assert!(plan.changes.is_empty(), "{:?}", plan.changes);
        assert_eq!(plan.counts.conflicts, 2);
    }
}

#[test]
fn control_characters_are_kept_out() {
    let mut bad_dn = entry("1", Some("a"), &[]);
    bad_dn.dn.push('\0');
    let mut bad_full = entry("2", Some("b"), &[]);
    bad_full.full_name = Some("B\0ob".into());
    let plan = plan_sync(&[], vec![bad_dn, bad_full], &opts(false));
    assert_eq!(plan.counts.skipped, 1);
    assert_eq!(plan.changes.create.len(), 1);
    assert_eq!(plan.changes.create[0].full_name, "Bob");
}

#[test]
fn an_address_can_move_between_users_in_one_run() {
    let plan = plan_sync(
        &[
            user(2, "a", &["x@e.com"], AuthMethod::Directory, Some("1")),
            user(3, "b", &["y@e.com"], AuthMethod::Directory, Some("2")),
        ],
        vec![
            entry("1", Some("a"), &["y@e.com"]),
            entry("2", Some("b"), &["x@e.com"]),
        ],
        &opts(false),
    );
    assert_eq!(plan.counts.conflicts, 0, "{:?}", plan.lines);
    assert_eq!(plan.changes.update.len(), 2);
}

/// Random small directories against random consistent user sets: whatever the plan is, applying it
/// leaves every name and address with one holder, and every entry is accounted for exactly once.
#[test]
fn any_plan_applied_keeps_names_and_addresses_unique() {
    // With look-alikes (issue 19, item 11): Cyrillic а in "аnn" and "аdmin", and "rn" for "m", which
    // looks like "admin" only beside the Cyrillic one (two ASCII names are never look-alikes).
    let names = [
        "ann",
        "Ann",
        "bob",
        "BOB",
        "cy",
        "\u{c4}sa",
        "\u{e4}sa",
        "dee",
        "admin",
        "\u{430}nn",
        "\u{430}dmin",
        "adrnin",
    ];
    let mails = ["a@x", "A@X", "b@x", "c@x", "\u{c4}@x", "\u{e4}@x", "d@x"];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| -> usize {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for round in 0..3000 {
        // A consistent current state: unique name keys and address keys.
        let mut current = vec![admin()];
        let mut taken_names = std::collections::HashSet::new();
        let mut taken_mails = std::collections::HashSet::new();
        taken_names.insert("admin".to_owned());
        for uid in 0..next(5) {
            let name = names[next(names.len())];
            if !taken_names.insert(crate::names::name_key(name)) {
                continue;
            }
            let mut emails = Vec::new();
            for _ in 0..next(3) {
                let m = mails[next(mails.len())];
                if taken_mails.insert(crate::names::name_key(m)) {
                    emails.push(m);
                }
            }
            let link = format!("id{}", next(6));
            let linked = next(3) > 0
                && !current
                    .iter()
                    .any(|u| u.link.as_ref().is_some_and(|l| l.id == link));
            let auth = if next(2) == 0 {
                AuthMethod::Local
            } else {
                AuthMethod::Directory
            };
            current.push(user(
                uid as i64 + 10,
                name,
                &emails,
                auth,
                linked.then_some(link.as_str()),
            ));
        }
        let entries: Vec<DirectoryEntry> = (0..next(6))
            .map(|_| {
                let id = format!("id{}", next(6));
                let name = names[next(names.len())];
                let emails: Vec<&str> = (0..next(3)).map(|_| mails[next(mails.len())]).collect();
                entry(&id, Some(name), &emails)
            })
            .collect();
        let n_entries = entries.len();
        let delete = next(2) == 0;
        let plan = plan_sync(&current, entries.clone(), &opts(delete));
        // The same input gives the same plan (the preview shows what the sync then does).
        assert_eq!(
            plan,
            plan_sync(&current, entries, &opts(delete)),
            "round {round}: a second planning of the same input differs"
        );

        // Apply in memory.
        let mut state: Vec<(i64, String, Vec<String>)> = current
            .iter()
            .filter(|u| !plan.changes.delete.iter().any(|d| d.user_id == u.id))
            .map(|u| {
                (
                    u.id,
                    u.name.key(),
                    u.emails.iter().map(EmailAddress::key).collect(),
                )
            })
            .collect();
        for up in &plan.changes.update {
            let Some(row) = state.iter_mut().find(|r| r.0 == up.user_id) else {
                panic!(
                    "round {round}: update of a deleted or unknown user {}",
                    up.user_id
                );
            };
            if let Some(n) = &up.name {
                row.1 = n.key();
            }
            if let Some(e) = &up.emails {
                row.2 = e.iter().map(EmailAddress::key).collect();
            }
        }
        for (i, c) in plan.changes.create.iter().enumerate() {
            assert!(!c.name.is_admin(), "round {round}: created admin");
            state.push((
                -(i as i64) - 1,
                c.name.key(),
                c.emails.iter().map(EmailAddress::key).collect(),
            ));
        }
        let mut seen_names = std::collections::HashSet::new();
        let mut seen_mails = std::collections::HashSet::new();
        for (_, n, es) in &state {
            assert!(
                seen_names.insert(n.clone()),
                "round {round}: name {n} held twice: {plan:#?}"
            );
            for e in es {
                assert!(
                    seen_mails.insert(e.clone()),
                    "round {round}: address {e} held twice: {plan:#?}"
                );
            }
        }
        // No name the plan gives looks like another holder's (the current state may hold look-alikes
        // already: stored before the rule, they are left alone).
        let given: Vec<String> = plan
            .changes
            .update
            .iter()
            .filter_map(|u| {
                u.name
                    .as_ref()
                    .map(UserName::key)
                    .filter(|n| *n != u.old_name.key())
            })
            .chain(plan.changes.create.iter().map(|c| c.name.key()))
            .collect();
        for n in &given {
            for (_, other, _) in &state {
                assert!(
                    !crate::names::look_alike(n, other),
                    "round {round}: {n} given beside its look-alike {other}: {plan:#?}"
                );
            }
        }
        let c = plan.counts;
        assert_eq!(
            c.created
                + c.updated
                + c.renamed
                + c.linked
                + c.reactivated
                + c.unchanged
                + c.conflicts
                + c.skipped,
            n_entries as u64,
            "round {round}: entries not accounted for once: {plan:#?}"
        );
    }
}

/// Review of 220154d: the claim maps now add a key's current holder after everyone who introduces it,
/// so the conflict line listed the other holders in a different order than before (users in their
/// order, then new entries). The current holder is the one the administrator must look at first.
#[test]
fn a_conflict_names_the_current_holder_before_new_entries() {
    let plan = plan_sync(
        &[user(2, "bob", &["shared@x.com"], AuthMethod::Local, None)],
        vec![
            entry("1", Some("carol"), &["shared@x.com"]),
            entry("2", Some("dave"), &["shared@x.com"]),
        ],
        &opts(false),
    );
    assert_eq!(plan.counts.conflicts, 2);
    let reason = |who: &str| {
        plan.lines
            .iter()
            .find(|l| l.user == who && l.action == ReportAction::Conflict)
            .map(|l| l.reason.to_string())
            .unwrap()
    };
    assert_eq!(
        reason("carol"),
        "not applied: the address shared@x.com is also held by user bob, the new entry uid=dave,ou=People"
    );
    assert_eq!(
        reason("dave"),
        "not applied: the address shared@x.com is also held by user bob, the new entry uid=carol,ou=People"
    );
}

/// Review of 220154d, an older bug (its parent behaves the same): rule 6 withdrew a new entry on the first
/// of its keys the worklist reached, and the withdrawn entry's other claims went with it. Here eve loses
/// a@x to bob; whether ann also lost d@x depended on whether d@x was checked before eve was withdrawn,
/// i.e. on hash-map order. The same entries could then give a different plan from one run (or from the
/// preview) to the next.
#[test]
fn rule_6_does_not_depend_on_hash_order() {
    let current = [user(2, "bob", &["a@x.com"], AuthMethod::Local, None)];
    let mut outcomes = std::collections::BTreeSet::new();
    for _ in 0..64 {
        let plan = plan_sync(
            &current,
            vec![
                entry("1", Some("ann"), &["d@x.com"]),
                entry("2", Some("eve"), &["a@x.com", "d@x.com"]),
            ],
            &opts(false),
        );
        let created: Vec<String> = plan
            .changes
            .create
            .iter()
            .map(|c| c.name.to_string())
            .collect();
        outcomes.insert((created, plan.counts.conflicts));
    }
    // Fixed in rounds: ann and eve both claim d@x in the first round, so both are withdrawn, as two
    // new entries on one address always are.
    assert_eq!(
        outcomes.into_iter().collect::<Vec<_>>(),
        vec![(Vec::<String>::new(), 2)]
    );
}

/// Review of f158e31: many entries on one address (a shared mailbox set on every entry without one of
/// its own is common) are all withdrawn in one round, and each loser's line lists every other holder:
/// the report grows with the square of the entries (and so does the work: one label per pair, and one
/// `retain` over the whole claim list per loser). At 1,500 entries that is ~2.2 million labels; at
/// 100,000 it is 10^10, which no server finishes or has the memory for.
#[test]
fn many_entries_on_one_address_give_a_report_linear_in_the_entries() {
    let n = 1_500;
    let current = [user(2, "desk", &["desk@x.com"], AuthMethod::Local, None)];
    let entries = (0..n)
        .map(|i| entry(&format!("id{i}"), Some(&format!("u{i}")), &["desk@x.com"]))
        .collect();
    let plan = plan_sync(&current, entries, &opts(false));
    assert_eq!(plan.counts.conflicts, n as u64);
    let longest = plan.lines.iter().map(|l| l.reason.len()).max().unwrap();
    let total: usize = plan.lines.iter().map(|l| l.reason.len()).sum();
    assert!(
        longest <= 1_000 && total <= 1_000 * n,
        "longest conflict reason {longest} bytes, all reasons {total} bytes for {n} entries"
    );
}

/// Review of f158e31: a conflict line labels a holder "linked to a directory entry the directory no
/// longer returns; delete that user, or enable delete_users" whenever the holder has no target, and a
/// holder whose own change was withdrawn in an earlier round has none any more. Here b's rename to c
/// (held by a local user) is withdrawn, b reclaims "b", and a's rename to b is then withdrawn: the line
/// tells the administrator to delete b, whose entry the directory did return.
#[test]
fn a_holder_whose_rename_was_withdrawn_is_not_called_gone_from_the_directory() {
    let plan = plan_sync(
        &[
            user(2, "a", &[], AuthMethod::Directory, Some("1")),
            user(3, "b", &[], AuthMethod::Directory, Some("2")),
            user(4, "c", &[], AuthMethod::Local, None),
        ],
        vec![entry("1", Some("b"), &[]), entry("2", Some("c"), &[])],
        &opts(false),
    );
    assert_eq!(plan.counts.conflicts, 2, "{:?}", plan.lines);
    let a_line = plan
        .lines
        .iter()
        .find(|l| l.action == ReportAction::Conflict && l.user == "b")
        .unwrap();
    assert!(
        !a_line.reason.contains("no longer returns"),
        "{}",
        a_line.reason
    );
}

/// Review of f158e31, rule 2's side of the same: twenty entries with one name give twenty lines that
/// each name five DNs and count the rest, not twenty lines of twenty DNs.
#[test]
fn duplicate_name_lines_name_a_few_dns_and_count_the_rest() {
    // Given in reverse: the line lists them by DN.
    let entries = (0..20)
        .rev()
        .map(|i| {
            let mut e = entry(&format!("id{i}"), Some("shared"), &[]);
            e.dn = format!("cn=s{i:02},ou=People");
            e
        })
        .collect();
    let plan = plan_sync(&[admin()], entries, &opts(false));
    assert_eq!(plan.counts.conflicts, 20);
    assert_eq!(plan.lines.len(), 20);
    for line in &plan.lines {
        assert_eq!(
            line.reason,
            "20 directory entries have this user name: cn=s00,ou=People; cn=s01,ou=People; \
             cn=s02,ou=People; cn=s03,ou=People; cn=s04,ou=People and 15 more"
        );
    }
}

/// The holders a conflict line names don't depend on the order the directory answered in.
#[test]
fn conflict_lines_list_new_entries_by_dn() {
    let plan = plan_sync(
        &[admin()],
        vec![
            entry("3", Some("cy"), &["desk@x.com"]),
            entry("1", Some("al"), &["desk@x.com"]),
            entry("2", Some("bo"), &["desk@x.com"]),
        ],
        &opts(false),
    );
    let cy = plan.lines.iter().find(|l| l.user == "cy").unwrap();
    assert_eq!(
        cy.reason,
        "not applied: the address desk@x.com is also held by the new entry uid=al,ou=People, \
         the new entry uid=bo,ou=People"
    );
}

/// Issue 19, item 6: a synced value over a limit (a 1 MB full name, a 255-byte address, 101 addresses) was
/// stored as it was. Now the entry is skipped with a reason, the run goes on, and, like every skipped
/// entry, its id counts as seen: with `delete_users` its user is neither changed nor deleted.
#[test]
fn issue_19_item_6_an_entry_over_a_limit_is_skipped_and_its_user_kept() {
    let mut huge_full_name = entry("1", Some("ann"), &["ann@x.com"]);
    huge_full_name.full_name = Some("A".repeat(1 << 20));
    let long_address = format!("{}@x.com", "b".repeat(255 - "@x.com".len()));
    let many: Vec<String> = (0..101).map(|i| format!("c{i}@x.com")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let mut at_the_limits = entry("4", Some(&"d".repeat(256)), &[]);
    at_the_limits.full_name = Some("D".repeat(256));
    at_the_limits.emails = Some(
        (0..100)
            .map(|i| format!("{}{i:03}@x.com", "d".repeat(254 - 9)))
            .collect(),
    );
    let current = [
        user(2, "ann", &["ann@x.com"], AuthMethod::Directory, Some("1")),
        user(3, "bea", &[], AuthMethod::Directory, Some("2")),
        user(4, "cy", &[], AuthMethod::Directory, Some("3")),
    ];
    let plan = plan_sync(
        &current,
        vec![
            huge_full_name,
            entry("2", Some("bea"), &["bea@x.com", &long_address]),
            entry("3", Some("cy"), &many),
            entry("5", Some("eve"), &[]),
            at_the_limits,
        ],
        &opts(true),
    );
    assert_eq!(plan.counts.skipped, 3, "{:#?}", plan.lines);
    assert!(plan.changes.delete.is_empty(), "{:#?}", plan.lines);
    assert!(plan.changes.update.is_empty(), "{:#?}", plan.changes.update);
    let created: Vec<usize> = plan
        .changes
        .create
        .iter()
        .map(|c| c.name.as_str().len())
        .collect();
    assert_eq!(
        created,
        [3, 256],
        "eve, and the entry exactly at the limits"
    );
    let reasons: Vec<(&str, &str)> = plan
        .lines
        .iter()
        .filter(|l| l.action == ReportAction::Skipped)
        .map(|l| (l.user.as_str(), &*l.reason))
        .collect();
    assert_eq!(reasons[0].0, "ann");
    assert_eq!(
        reasons[0].1,
        "not applied: the full name is 1048576 characters long, longer than 256; shorten it"
    );
    assert_eq!(reasons[1].0, "bea");
    assert!(
        reasons[1].1.starts_with("not applied: the address \"bbbb")
            && reasons[1].1.contains("…\" is longer than 254 bytes"),
        "{}",
        reasons[1].1
    );
    assert!(reasons[1].1.len() < 300, "the value is not copied whole");
    assert_eq!(
        reasons[2],
        (
            "cy",
            "not applied: 101 email addresses given, more than 100; remove some"
        )
    );
}

/// Issue 19, item 6: a user name over the limit was echoed whole in the skipped line's reason.
#[test]
fn issue_19_item_6_a_skipped_line_does_not_copy_an_over_long_value() {
    let plan = plan_sync(
        &[],
        vec![entry("1", Some(&"n".repeat(1 << 20)), &[])],
        &opts(false),
    );
    assert_eq!(plan.counts.skipped, 1);
    assert!(
        plan.lines[0].reason.len() < 200,
        "{}",
        plan.lines[0].reason.len()
    );
}

/// Issue 19, item 11: a Cyrillic `аdmin` was created beside `admin`. A name the plan introduces that has
/// the skeleton of another holder's name (an existing user's, or another new entry's) is a conflict
/// naming both, and withdrawn; the rest goes ahead.
#[test]
fn issue_19_item_11_look_alike_names_are_conflicts() {
    let current = [
        admin(),
        user(2, "bob", &[], AuthMethod::Directory, Some("b")),
        user(3, "carl", &[], AuthMethod::Directory, Some("c")),
        user(4, "dora", &[], AuthMethod::Directory, Some("d")),
    ];
    let plan = plan_sync(
        &current,
        vec![
            entry("a", Some("\u{430}dmin"), &[]), // Cyrillic а
            entry("b", Some("bob"), &[]),
            // carl renamed to a look-alike of bob: withdrawn, carl stays carl.
            entry("c", Some("B\u{43e}b"), &[]), // Cyrillic о
            // dora renamed to a look-alike of her own name: nobody else looks like it.
            entry("d", Some("d\u{43e}ra"), &[]),
            // Two new entries that look alike: both lose.
            entry("e", Some("eve"), &[]),
            entry("f", Some("\u{435}ve"), &[]), // Cyrillic е
            // TR39 also maps some ASCII ("rn" looks like "m"), but two ASCII names are never look-alikes:
            // "adrnin" is held up by the Cyrillic "аdmin" only, and "jdoe1" and "jdoel" are both created.
            entry("g", Some("adrnin"), &[]),
            entry("h", Some("hal"), &[]),
            entry("j1", Some("jdoe1"), &[]),
            entry("jl", Some("jdoel"), &[]),
        ],
        &opts(true),
    );
    let created: Vec<&str> = plan
        .changes
        .create
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(created, ["hal", "jdoe1", "jdoel"]);
    let renamed: Vec<(i64, &str)> = plan
        .changes
        .update
        .iter()
        .filter_map(|u| u.name.as_ref().map(|n| (u.user_id, n.as_str())))
        .collect();
    assert_eq!(renamed, [(4, "d\u{43e}ra")]);
    assert!(plan.changes.delete.is_empty());
    let conflicts: Vec<(&str, &str)> = plan
        .lines
        .iter()
        .filter(|l| l.action == ReportAction::Conflict)
        .map(|l| (l.user.as_str(), &*l.reason))
        .collect();
    assert_eq!(
        conflicts,
        [
            (
                "B\u{43e}b",
                "not applied (user carl -> B\u{43e}b): the user name B\u{43e}b looks like the name of user bob (the same Unicode TR39 skeleton), and could pass for it; give one of them another name"
            ),
            (
                "adrnin",
                "not applied: the user name adrnin looks like the name of the new entry uid=\u{430}dmin,ou=People (the same Unicode TR39 skeleton), and could pass for it; give one of them another name"
            ),
            (
                "eve",
                "not applied: the user name eve looks like the name of the new entry uid=\u{435}ve,ou=People (the same Unicode TR39 skeleton), and could pass for it; give one of them another name"
            ),
            (
                "\u{430}dmin",
                "not applied: the user name \u{430}dmin looks like the name of user admin, the new entry uid=adrnin,ou=People (the same Unicode TR39 skeleton), and could pass for it; give one of them another name"
            ),
            (
                "\u{435}ve",
                "not applied: the user name \u{435}ve looks like the name of the new entry uid=eve,ou=People (the same Unicode TR39 skeleton), and could pass for it; give one of them another name"
            ),
        ]
    );
    assert_eq!(plan.counts.conflicts, 5);
}

/// Issue 19, item 11: when a look-alike rename is withdrawn, the user falls back to its current name,
/// which may itself look like a name another change introduces: that change is withdrawn in the next
/// round. Users already in the database that look alike (stored before the rule) are left alone, but
/// a third name like theirs is not let in.
#[test]
fn look_alike_conflicts_follow_withdrawn_renames_and_spare_existing_pairs() {
    let current = [
        user(2, "ann", &[], AuthMethod::Directory, Some("a")),
        user(3, "b\u{43e}b", &[], AuthMethod::Directory, Some("b")), // Cyrillic о
        user(4, "carl", &[], AuthMethod::Local, None),
        user(5, "bob", &[], AuthMethod::Local, None), // looks like user 3: stored before the rule
    ];
    let plan = plan_sync(
        &current,
        vec![
            // ann -> "c\u{430}rl" looks like carl: withdrawn, so ann stays ann;
            entry("a", Some("c\u{430}rl"), &[]),
            // and a new "\u{430}nn" then looks like ann again.
            entry("n", Some("\u{430}nn"), &[]),
            entry("b", Some("b\u{43e}b"), &[]),
            entry("x", Some("b\u{3bf}b"), &[]), // Greek ο: a third look-alike of bob
        ],
        &opts(false),
    );
    assert!(plan.changes.create.is_empty(), "{:#?}", plan.changes.create);
    // The existing pair is left as it is: only its full name follows the entry.
    let updated: Vec<(i64, bool)> = plan
        .changes
        .update
        .iter()
        .map(|u| (u.user_id, u.name.is_some()))
        .collect();
    assert_eq!(updated, [(3, false)]);
    assert_eq!(plan.counts.conflicts, 3, "{:#?}", plan.lines);
}

/// Issue 19, item 11: names that are paths (`a/b`, `..`) must not become folder names; an entry with one
/// is skipped, and its user kept.
#[test]
fn issue_19_item_11_an_entry_whose_name_is_a_path_is_skipped() {
    let plan = plan_sync(
        &[user(2, "eve", &[], AuthMethod::Directory, Some("1"))],
        vec![
            entry("1", Some("../eve"), &[]),
            entry("2", Some(".."), &[]),
            entry("3", Some("dom\\ann"), &[]),
            entry("4", Some("a.b"), &[]),
        ],
        &opts(true),
    );
    assert_eq!(plan.counts.skipped, 3, "{:#?}", plan.lines);
    assert!(plan.changes.delete.is_empty() && plan.changes.update.is_empty());
    let created: Vec<&str> = plan
        .changes
        .create
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(created, ["a.b"]);
}

/// Issue 20, the grace period: a departed user is suspended first, stays suspended during the period,
/// is deleted by a sync after it, and is reactivated (same user) when the entry comes back.
#[test]
fn with_a_grace_period_departed_users_are_suspended_then_deleted_or_reactivated() {
    const DAY: i64 = 86_400;
    let t0 = crate::Timestamp(1_800_000_000_000);
    let grace = |now: crate::Timestamp| PlanOptions {
        scope: crate::plan::PlanScope::All,
        delete_after_seconds: 14 * 86_400,
        now,
        ..opts(true)
    };
    let mut gone = user(2, "gone", &[], AuthMethod::Directory, Some("g"));
    let mut full = user(3, "full", &[], AuthMethod::Directory, Some("f"));
    full.folder_messages = 4;
    let back = {
        let mut u = user(4, "back", &[], AuthMethod::Directory, Some("b"));
        u.departed_at = Some(t0);
        u
    };
    let mut stays = user(5, "stays", &[], AuthMethod::Directory, Some("s"));
    let entries = || {
        vec![
            entry("s", Some("stays"), &[]),
            entry("b", Some("back"), &[]),
        ]
    };

    // First sync without gone and full: both suspended; back is reactivated.
    let current = [
        admin(),
        gone.clone(),
        full.clone(),
        back.clone(),
        stays.clone(),
    ];
    let plan = plan_sync(&current, entries(), &grace(t0));
    let suspended: Vec<&str> = plan
        .changes
        .suspend
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(suspended, ["gone", "full"]);
    assert!(plan.changes.delete.is_empty());
    assert_eq!(plan.counts.suspended, 2);
    assert_eq!(plan.counts.reactivated, 1);
    assert_eq!(plan.counts.updated, 1, "stays: its full name");
    let reactivated: Vec<(i64, bool)> = plan
        .changes
        .update
        .iter()
        .map(|u| (u.user_id, u.reactivate))
        .collect();
    assert_eq!(reactivated, [(5, false), (4, true)]);
    let line = |name: &str| plan.lines.iter().find(|l| l.user == name).unwrap();
    assert_eq!(line("gone").action, ReportAction::Suspended);
    assert!(
        line("gone")
            .reason
            .contains(&t0.plus_seconds(14 * DAY).to_rfc3339()),
        "{:?}",
        line("gone")
    );
    assert_eq!(line("back").action, ReportAction::Reactivated);

    // During the grace period: nothing to do for them.
    stays.full_name = "stays Full".into();
    if let Some(l) = stays.link.as_mut() {
        l.dn = Some("uid=stays,ou=People".into());
    }
    gone.departed_at = Some(t0);
    full.departed_at = Some(t0);
    let current = [admin(), gone.clone(), full.clone(), stays.clone()];
    let entries = || vec![entry("s", Some("stays"), &[])];
    let plan = plan_sync(&current, entries(), &grace(t0.plus_seconds(14 * DAY - 1)));
    assert!(plan.changes.is_empty(), "{:#?}", plan.changes);
    assert!(plan.lines.is_empty(), "{:#?}", plan.lines);

    // After it: deleted, the folder with messages kept.
    let plan = plan_sync(&current, entries(), &grace(t0.plus_seconds(14 * DAY)));
    let deleted: Vec<(&str, bool)> = plan
        .changes
        .delete
        .iter()
        .map(|d| (d.name.as_str(), d.keep_folder))
        .collect();
    assert_eq!(deleted, [("gone", false), ("full", true)]);
    assert!(plan.changes.suspend.is_empty());

    // Without a grace period, a suspended user is deleted at once (the period was shortened to 0).
    let plan = plan_sync(&current, entries(), &opts(true));
    assert_eq!(plan.changes.delete.len(), 2);
    // And without delete_users, nobody is suspended or deleted.
    let plan = plan_sync(
        &[
            admin(),
            user(2, "gone", &[], AuthMethod::Directory, Some("g")),
        ],
        vec![],
        &PlanOptions {
            scope: crate::plan::PlanScope::All,
            delete_users: false,
            ..grace(t0)
        },
    );
    assert!(plan.changes.is_empty());
}

/// A large run checks its entries and keys its current users on two threads, and builds its claims on
/// names and on addresses on two: the plan is the same as on one, report order included, with renames,
/// conflicts (names and addresses, between users, new entries and both), skipped entries, look-alikes and
/// deletions in it.
#[test]
fn two_threads_plan_exactly_what_one_plans() {
    let mut current = vec![admin()];
    let mut entries = Vec::new();
    for i in 0..3000_i64 {
        let name = format!("User{i}");
        let mail = format!("user{i}@example.com");
        current.push(user(
            i + 2,
            &name,
            &[&mail],
            AuthMethod::Directory,
            Some(&format!("id{i}")),
        ));
        let (name, mail) = match i % 7 {
            0 => (format!("renamed{i}"), mail),
            1 => (name, format!("user{}@example.com", i + 1)),
            2 => ("bad name\u{7}".to_owned(), mail),
            3 => continue,
            _ => (name, mail),
        };
        entries.push(entry(&format!("id{i}"), Some(&name), &[&mail]));
    }
    for i in 0..500 {
        // New users: some take an existing user's address, some share one among themselves.
        let mail = match i % 5 {
            0 => format!("user{i}@example.com"),
            1 => format!("shared{}@example.com", i / 10),
            _ => format!("new{i}@example.com"),
        };
        entries.push(entry(
            &format!("new{i}"),
            Some(&format!("néw{i}")),
            &[&mail],
        ));
    }
    entries.push(entry("id5", Some("duplicate-id"), &[]));
    let one = plan_sync_threads_from(
        &current,
        entries.clone().into_iter().collect(),
        &opts(true),
        usize::MAX,
    );
    let two = plan_sync_threads_from(&current, entries.into_iter().collect(), &opts(true), 0);
    assert!(one.lines.len() > 1000, "{}", one.lines.len());
    assert!(!one.changes.delete.is_empty() && !one.changes.create.is_empty());
    assert_eq!(one, two);
}

/// Entries prepared a page at a time while the read goes on (issue 26, item 2) give the plan that all
/// of them at once give, report included: ids duplicated across pages (a valid copy, a copy without a
/// name, a name padded with spaces, a copy with a control character), skipped entries and warnings.
#[test]
fn entries_prepared_page_by_page_plan_exactly_what_all_at_once_plan() {
    let current = vec![
        admin(),
        user(
            2,
            "kept",
            &["kept@example.com"],
            AuthMethod::Directory,
            Some("k"),
        ),
        user(3, "twice", &[], AuthMethod::Directory, Some("dup")),
    ];
    let mut entries = vec![
        entry("k", Some("kept"), &["kept@example.com", "not an address"]),
        entry("dup", Some("twice"), &[]),
        entry("n1", Some("  padded  "), &["padded@example.com"]),
    ];
    for i in 0..40 {
        entries.push(entry(&format!("u{i}"), Some(&format!("user{i}")), &[]));
    }
    let mut nameless = entry("dup", None, &[]);
    nameless.dn = "uid=nameless,dc=example,dc=com".into();
    entries.push(nameless);
    entries.push(entry("n1", Some(" padded "), &[]));
    let mut control = entry("dup", Some("ctl"), &[]);
    control.dn.push('\u{85}');
    entries.push(control);
    let mut warned = entry("w", Some("warned"), &["w@example.com"]);
    warned.full_name = Some("W\u{7}".into());
    entries.push(warned);
    entries.push(entry("bad", Some("bad name\u{7}"), &[]));
    let whole = plan_sync(&current, entries.clone(), &opts(true));
    assert!(whole.counts.conflicts >= 4, "{:?}", whole.counts);
    for page in [1, 3, 7, entries.len()] {
        let mut prepared = PreparedEntries::default();
        for chunk in entries.chunks(page) {
            prepared.add(chunk.to_vec());
        }
        assert_eq!(prepared.len(), entries.len());
        assert_eq!(
            plan_sync_prepared(&current, prepared, &opts(true)),
            whole,
            "pages of {page}"
        );
    }
}
