//! Rules 2 and 3: which entries are conflicts among themselves, and which existing user each of the
//! others is.

use super::entries::ValidEntry;
use super::keys::{Current, FastMap, FastSet, Lookup, fast_map};
use super::report::{Report, listed};
use super::{CurrentUser, ReportAction};
use std::collections::hash_map::Entry;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum MatchKind {
    ById,
    ByName,
}

/// What will become of one entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum EntryFate {
    /// Matched to an existing user (index into the current users).
    Existing {
        user: usize,
        kind: MatchKind,
    },
    Create,
    /// Withdrawn; the reason is already reported.
    Conflict,
}

/// The fate of each valid entry (`None` until a phase decides it), and which current users an entry has
/// taken (by index).
pub(super) struct Matching {
    pub(super) fates: Vec<Option<EntryFate>>,
    pub(super) claimed: Vec<bool>,
}

impl Matching {
    pub(super) fn new(entries: usize, users: usize) -> Self {
        Matching {
            fates: vec![None; entries],
            claimed: vec![false; users],
        }
    }
}

/// A current user's link to this run's source, given the ids the read returned.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum LinkState {
    /// Not linked, or linked to another source: this run says nothing about its entry.
    Elsewhere,
    /// Its entry was returned (planned or not).
    Seen,
    /// Its entry was not returned: deleted by rule 5 (with `delete_users`), and named as such in a
    /// conflict line.
    Gone,
}

/// Phase "link states": whether each current user's own entry was returned. Rule 3 never lets another
/// entry take over a user whose entry was seen; rule 5 deletes users whose entry is gone. A user outside
/// a one-user read's scope counts as seen: the read said nothing about their entry.
pub(super) fn link_states(
    current: &[CurrentUser],
    source: &str,
    seen: &FastSet<&str>,
    scope: &super::PlanScope,
) -> Vec<LinkState> {
    let in_scope = |id: i64| match scope {
        super::PlanScope::All => true,
        super::PlanScope::Only(ids) => ids.contains(&id),
    };
    current
        .iter()
        .map(|user| match &user.link {
            Some(l) if l.source == source => {
                if seen.contains(l.id.as_str()) || !in_scope(user.id) {
                    LinkState::Seen
                } else {
                    LinkState::Gone
                }
            }
            Some(_) | None => LinkState::Elsewhere,
        })
        .collect()
}

/// Phase "duplicate names", rule 2: entries that share a user name (compared by key) are all conflicts,
/// and none is applied: which one is the user can't be told, and picking one by the order of the answer
/// would let the preview and the sync disagree. Each line lists the entries by DN, for the same reason.
pub(super) fn conflict_duplicate_names(
    valid: &[ValidEntry],
    matching: &mut Matching,
    report: &mut Report,
) {
    // The first entry with each name; groups only for names seen twice or more (rare), so there is no
    // per-name list.
    let mut first: FastMap<&str, usize> = fast_map(valid.len());
    let mut groups: FastMap<&str, Vec<usize>> = fast_map(0);
    for (i, e) in valid.iter().enumerate() {
        match first.entry(e.name_key()) {
            Entry::Vacant(v) => {
                v.insert(i);
            }
            Entry::Occupied(o) => groups
                .entry(e.name_key())
                .or_insert_with(|| vec![*o.get()])
                .push(i),
        }
    }
    drop(first);
    for group in groups.values_mut() {
        // By DN, not in the order of the answer: the preview and the sync are separate reads, and their
        // lines should name the same entries.
        group.sort_by(|&a, &b| {
            let dn = |i: usize| valid.get(i).map(|e| e.dn.as_str());
            dn(a).cmp(&dn(b))
        });
        let dns = listed(
            group
                .iter()
                .filter_map(|&i| valid.get(i).map(|e| e.dn.clone())),
            group.len(),
            "; ",
        );
        for &i in group.iter() {
            if let (Some(e), Some(f)) = (valid.get(i), matching.fates.get_mut(i)) {
                *f = Some(EntryFate::Conflict);
                report.push(
                    e.name.to_string(),
                    ReportAction::Conflict,
                    format!(
                        "{} directory entries have this user name: {dns}",
                        group.len()
                    ),
                    Some(e.dn.clone()),
                );
            }
        }
    }
}

/// Phase "match by id", rule 3's first step: an entry is the user linked to its id in this source. The
/// user is claimed even when the entry is a rule-2 conflict, so that no other entry takes it by name.
pub(super) fn match_by_id(valid: &[ValidEntry], lookup: &Lookup<'_>, matching: &mut Matching) {
    for (e, fate) in valid.iter().zip(matching.fates.iter_mut()) {
        if let Some(&u) = lookup.by_link.get(e.id.as_str()) {
            if let Some(c) = matching.claimed.get_mut(u) {
                *c = true;
            }
            if fate.is_none() {
                *fate = Some(EntryFate::Existing {
                    user: u,
                    kind: MatchKind::ById,
                });
            }
        }
    }
}

/// Phase "match by name", rule 3's second step: an entry not matched by id is the unclaimed user with its
/// name, unless that user's own entry was seen (it is someone else's user then); otherwise it is new. The
/// built-in administrator is never matched: the entry is a conflict.
pub(super) fn match_by_name(
    valid: &[ValidEntry],
    current: &Current<'_>,
    lookup: &Lookup<'_>,
    links: &[LinkState],
    matching: &mut Matching,
    report: &mut Report,
) {
    let Matching { fates, claimed } = matching;
    for (e, fate) in valid.iter().zip(fates.iter_mut()) {
        if fate.is_some() {
            continue;
        }
        let candidate = lookup.by_name.get(e.name_key()).copied().filter(|&u| {
            // A user whose linked entry is gone is matched by name, as the issue says ("by stable id
            // first, then by user name"): entries re-created with a new entryUUID (ldapadd after a
            // delete, provisioning tools, a move to another server) keep their users, privileges and
            // archives. The price: a new person given a departed user's name inherits that account;
            // the report line says so ("was linked to the entry …, which the directory no longer
            // returns"), and the preview shows it first.
            let own_entry_seen = links.get(u) == Some(&LinkState::Seen);
            !claimed.get(u).copied().unwrap_or(true) && !own_entry_seen
        });
        match candidate.and_then(|u| current.get(u).map(|c| (u, c))) {
            Some((_, user)) if user.builtin_admin => {
                *fate = Some(EntryFate::Conflict);
                report.push(
                    e.name.to_string(),
                    ReportAction::Conflict,
                    "the name belongs to Roster's built-in administrator, which synchronization never touches",
                    Some(e.dn.clone()),
                );
            }
            Some((u, _)) => {
                if let Some(c) = claimed.get_mut(u) {
                    *c = true;
                }
                *fate = Some(EntryFate::Existing {
                    user: u,
                    kind: MatchKind::ByName,
                });
            }
            None => *fate = Some(EntryFate::Create),
        }
    }
}

/// Phase "targets", rule 4: for each current user, the entry (index into the valid entries) that gives it
/// its new state. Rule 6 clears a target when it withdraws that user's change.
pub(super) fn targets(fates: &[Option<EntryFate>], users: usize) -> Vec<Option<usize>> {
    let mut targets: Vec<Option<usize>> = vec![None; users];
    for (i, fate) in fates.iter().enumerate() {
        if let Some(EntryFate::Existing { user, .. }) = fate
            && let Some(t) = targets.get_mut(*user)
        {
            *t = Some(i);
        }
    }
    targets
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::entries::{check_entries, seen_ids};
    use crate::plan::keys::index_current;
    use crate::plan::tests::{admin, entry, user};
    use crate::user::AuthMethod;

    fn valid(entries: Vec<crate::directory::DirectoryEntry>) -> Vec<ValidEntry> {
        check_entries(entries.into_iter().collect(), &mut Report::default()).valid
    }

    #[test]
    fn rule_2_makes_every_entry_of_a_shared_name_a_conflict() {
        let valid = valid(vec![
            entry("1", Some("Ann"), &[]),
            entry("2", Some("bob"), &[]),
            entry("3", Some("ANN"), &[]),
        ]);
        let mut matching = Matching::new(valid.len(), 0);
        let mut report = Report::default();
        conflict_duplicate_names(&valid, &mut matching, &mut report);
        assert_eq!(
            matching.fates,
            [Some(EntryFate::Conflict), None, Some(EntryFate::Conflict)]
        );
        assert_eq!(report.counts.conflicts, 2);
        assert_eq!(
            report.lines[0].reason,
            "2 directory entries have this user name: uid=ANN,ou=People; uid=Ann,ou=People"
        );
    }

    #[test]
    fn link_states_tell_seen_from_gone_within_the_source() {
        let mut elsewhere = user(4, "d", &[], AuthMethod::Directory, Some("x"));
        if let Some(l) = elsewhere.link.as_mut() {
            l.source = "ldif".into();
        }
        let current = [
            user(2, "a", &[], AuthMethod::Directory, Some("x")),
            user(3, "b", &[], AuthMethod::Directory, Some("y")),
            elsewhere,
            user(5, "e", &[], AuthMethod::Local, None),
        ];
        let seen = FastSet::from_iter(["x"]);
        assert_eq!(
            link_states(&current, "ldap", &seen, &crate::plan::PlanScope::All),
            [
                LinkState::Seen,
                LinkState::Gone,
                LinkState::Elsewhere,
                LinkState::Elsewhere
            ]
        );
    }

    #[test]
    fn match_by_id_claims_the_user_even_for_a_conflicting_entry() {
        let users = [
            user(2, "a", &[], AuthMethod::Directory, Some("1")),
            user(3, "b", &[], AuthMethod::Directory, Some("2")),
        ];
        let current = Current::new(&users);
        let lookup = index_current(&current, "ldap");
        let valid = valid(vec![entry("1", Some("x"), &[]), entry("2", Some("y"), &[])]);
        let mut matching = Matching::new(2, 2);
        matching.fates[1] = Some(EntryFate::Conflict);
        match_by_id(&valid, &lookup, &mut matching);
        assert_eq!(
            matching.fates,
            [
                Some(EntryFate::Existing {
                    user: 0,
                    kind: MatchKind::ById
                }),
                Some(EntryFate::Conflict)
            ]
        );
        assert_eq!(matching.claimed, [true, true]);
    }

    #[test]
    fn match_by_name_takes_free_users_only() {
        let users = [
            admin(),
            // Its entry "1" was seen (it lost its name): not free.
            user(2, "seen", &[], AuthMethod::Directory, Some("1")),
            // Its entry is gone: free.
            user(3, "gone", &[], AuthMethod::Directory, Some("old")),
            user(4, "Local", &[], AuthMethod::Local, None),
        ];
        let current = Current::new(&users);
        let lookup = index_current(&current, "ldap");
        let checked = check_entries(
            vec![
                entry("1", None, &[]),
                entry("a", Some("admin"), &[]),
                entry("b", Some("seen"), &[]),
                entry("c", Some("gone"), &[]),
                entry("d", Some("local"), &[]),
                entry("e", Some("new"), &[]),
            ]
            .into_iter()
            .collect(),
            &mut Report::default(),
        );
        let links = link_states(
            &users,
            "ldap",
            &seen_ids(&checked),
            &crate::plan::PlanScope::All,
        );
        let mut matching = Matching::new(checked.valid.len(), users.len());
        let mut report = Report::default();
        match_by_name(
            &checked.valid,
            &current,
            &lookup,
            &links,
            &mut matching,
            &mut report,
        );
        let by_name = |user| {
            Some(EntryFate::Existing {
                user,
                kind: MatchKind::ByName,
            })
        };
        assert_eq!(
            matching.fates,
            [
                Some(EntryFate::Conflict),
                Some(EntryFate::Create),
                by_name(2),
                by_name(3),
                Some(EntryFate::Create)
            ]
        );
        assert_eq!(matching.claimed, [false, false, true, true]);
        assert_eq!(report.counts.conflicts, 1, "the built-in administrator");
    }

    #[test]
    fn targets_point_each_matched_user_to_its_entry() {
        let fates = [
            Some(EntryFate::Create),
            Some(EntryFate::Existing {
                user: 2,
                kind: MatchKind::ById,
            }),
            Some(EntryFate::Conflict),
        ];
        assert_eq!(targets(&fates, 3), [None, None, Some(1)]);
    }
}
