//! What a read of changes can touch: the keys by which its entries, and the entries it says are gone, meet
//! existing users. A run that read only what changed since the last read loads only these users (the
//! store's `snapshot_touched`), so that its cost follows the size of the change and not of the directory.
//! Planned against them with [`PlanScope::Only`] (the users linked to those entries), the plan is the one
//! the whole snapshot would give: every rule that relates an entry to a user goes through one of these
//! keys (the tests below check it rule by rule), and a user no key reaches is out of the scope, so it
//! counts as seen and unchanged either way. Only the count of unchanged users differs: it counts the
//! users loaded.

use super::{CurrentUser, PlanScope};
use crate::directory::DirectoryEntry;
use crate::names::{EmailAddress, UserName, name_key, skeleton};
use std::collections::BTreeSet;

/// The keys of a change, each list sorted and without repeats.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Touched {
    /// The directory type the entries came from; links are compared within it.
    pub source: String,
    /// The ids of the entries changed and gone: the users linked to them (rules 3, 4 and 5).
    pub link_ids: Vec<String>,
    /// The changed entries' name keys: the users who hold the name (rule 3 matches by it, rule 6 guards
    /// it).
    pub name_keys: Vec<String>,
    /// The skeletons of those names: the users whose names look like them (rule 6). A store finds them
    /// by `name_skeleton` or, for names that are their own skeleton, by `name_key`
    /// ([`crate::names::stored_skeleton`]).
    pub skeletons: Vec<String>,
    /// The changed entries' address keys: the users who hold the address (rule 6).
    pub address_keys: Vec<String>,
}

impl Touched {
    /// The keys of `changed` entries and of the `gone` ids. Names and addresses that don't parse are left
    /// out: the planner skips their entries (rule 1), which then touch only the user linked to them.
    pub fn of<'a>(
        source: &str,
        changed: &[DirectoryEntry],
        gone: impl IntoIterator<Item = &'a str>,
    ) -> Touched {
        let mut link_ids = BTreeSet::new();
        let mut name_keys = BTreeSet::new();
        let mut skeletons = BTreeSet::new();
        let mut address_keys = BTreeSet::new();
        for entry in changed {
            link_ids.insert(entry.id.clone());
            if let Some(name) = entry.name.as_deref().and_then(|n| UserName::parse(n).ok()) {
                let key = name.key();
                skeletons.insert(skeleton(&key).into_owned());
                name_keys.insert(key);
            }
            for address in entry.emails.iter().flatten() {
                if let Ok(address) = EmailAddress::parse(address) {
                    address_keys.insert(address.key());
                }
            }
        }
        link_ids.extend(gone.into_iter().map(str::to_owned));
        Touched {
            source: source.to_owned(),
            link_ids: link_ids.into_iter().collect(),
            name_keys: name_keys.into_iter().collect(),
            skeletons: skeletons.into_iter().collect(),
            address_keys: address_keys.into_iter().collect(),
        }
    }

    /// How many keys there are: a store may load every user instead when there are many.
    pub fn len(&self) -> usize {
        self.link_ids.len() + self.name_keys.len() + self.skeletons.len() + self.address_keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a key reaches `user`: what a store's `snapshot_touched` selects, written out for tests
    /// and for stores without SQL.
    pub fn touches(&self, user: &CurrentUser) -> bool {
        let has =
            |list: &[String], value: &str| list.binary_search_by(|k| k.as_str().cmp(value)).is_ok();
        let key = name_key(user.name.as_str());
        user.link
            .as_ref()
            .is_some_and(|l| l.source == self.source && has(&self.link_ids, &l.id))
            || has(&self.name_keys, &key)
            || has(&self.skeletons, &skeleton(&key))
            || user
                .emails
                .iter()
                .any(|a| has(&self.address_keys, &a.key()))
    }

    /// The plan's scope for these users: those linked to one of the entries (changed or gone).
    pub fn scope(&self, users: &[CurrentUser]) -> PlanScope {
        PlanScope::Only(
            users
                .iter()
                .filter(|u| {
                    u.link.as_ref().is_some_and(|l| {
                        l.source == self.source
                            && self
                                .link_ids
                                .binary_search_by(|k| k.as_str().cmp(&l.id))
                                .is_ok()
                    })
                })
                .map(|u| u.id)
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{admin, entry, opts, user};
    use super::super::{SyncPlan, plan_sync};
    use super::*;
    use crate::Timestamp;
    use crate::user::AuthMethod::{Directory, Local};

    /// Plans `changed` and `gone` against every user and against the users [`Touched`] selects; the
    /// plans must be the same but for the count of unchanged users.
    fn same_plan(
        current: &[CurrentUser],
        changed: Vec<DirectoryEntry>,
        gone: &[&str],
        delete_after: u64,
    ) -> SyncPlan {
        let touched = Touched::of("ldap", &changed, gone.iter().copied());
        let mut options = opts(true);
        options.delete_after_seconds = delete_after;
        options.now = Timestamp(1_000_000);
        options.scope = touched.scope(current);
        let whole = plan_sync(current, changed.clone(), &options);
        let loaded: Vec<CurrentUser> = current
            .iter()
            .filter(|u| touched.touches(u))
            .cloned()
            .collect();
        assert_eq!(
            touched.scope(&loaded),
            options.scope,
            "the scope is among the loaded users"
        );
        let part = plan_sync(&loaded, changed, &options);
        assert_eq!(part.changes, whole.changes);
        assert_eq!(part.lines, whole.lines);
        assert_eq!(part.deleted_lines, whole.deleted_lines);
        let mut counts = part.counts;
        counts.unchanged = whole.counts.unchanged;
        assert_eq!(counts, whole.counts);
        assert!(
            loaded.len() < current.len(),
            "the test loads fewer users than there are"
        );
        whole
    }

    /// A directory of ordinary users linked to their entries, a local user and the administrator.
    fn directory() -> Vec<CurrentUser> {
        let mut users = vec![admin(), user(2, "local", &["local@x.com"], Local, None)];
        for i in 3..40 {
            users.push(user(
                i,
                &format!("u{i}"),
                &[&format!("u{i}@x.com")],
                Directory,
                Some(&format!("id{i}")),
            ));
        }
        users
    }

    #[test]
    fn added_changed_renamed_and_gone_entries() {
        let plan = same_plan(
            &directory(),
            vec![
                entry("new", Some("newcomer"), &["newcomer@x.com"]),
                entry("id5", Some("u5"), &["u5@x.com", "five@x.com"]),
                entry("id6", Some("six"), &["u6@x.com"]),
            ],
            &["id7", "id8"],
            0,
        );
        assert_eq!(plan.changes.create.len(), 1);
        assert_eq!(plan.changes.update.len(), 2);
        assert_eq!(plan.changes.delete.len(), 2);
    }

    #[test]
    fn a_new_entry_takes_an_unlinked_user_by_name() {
        let plan = same_plan(&directory(), vec![entry("new", Some("LOCAL"), &[])], &[], 0);
        assert_eq!(plan.counts.linked, 1);
    }

    #[test]
    fn a_new_entry_doesnt_take_a_linked_user_whose_entry_wasnt_read() {
        let plan = same_plan(&directory(), vec![entry("other", Some("u9"), &[])], &[], 0);
        assert_eq!(plan.counts.conflicts, 1, "{:?}", plan.lines);
    }

    #[test]
    fn a_re_created_entry_takes_over_the_user_of_the_entry_gone() {
        let plan = same_plan(
            &directory(),
            vec![entry("id10-again", Some("u10"), &[])],
            &["id10"],
            0,
        );
        assert_eq!(plan.changes.delete.len(), 0, "{:?}", plan.lines);
    }

    #[test]
    fn names_and_addresses_held_by_users_not_read_are_conflicts() {
        let plan = same_plan(
            &directory(),
            vec![
                entry("id11", Some("u12"), &["u11@x.com"]),
                entry("id13", Some("u13"), &["u14@x.com"]),
                entry("new", Some("someone"), &["local@x.com"]),
            ],
            &[],
            0,
        );
        assert_eq!(plan.counts.conflicts, 3, "{:?}", plan.lines);
    }

    #[test]
    fn a_look_alike_of_a_user_not_read_is_a_conflict() {
        // A Cyrillic а.
        let plan = same_plan(
            &directory(),
            vec![
                entry("new", Some("\u{430}dmin"), &[]),
                entry("id15", Some("u1\u{0455}"), &[]),
            ],
            &[],
            0,
        );
        assert!(plan.counts.conflicts >= 1, "{:?}", plan.lines);
    }

    #[test]
    fn a_swap_of_names_between_two_changed_entries() {
        let plan = same_plan(
            &directory(),
            vec![
                entry("id20", Some("u21"), &["u21@x.com"]),
                entry("id21", Some("u20"), &["u20@x.com"]),
            ],
            &[],
            0,
        );
        assert_eq!(plan.changes.update.len(), 2, "{:?}", plan.lines);
    }

    #[test]
    fn with_a_grace_period_gone_users_are_suspended_and_returning_ones_reactivated() {
        let mut users = directory();
        users[10].departed_at = Some(Timestamp(10));
        let returning = users[10].link.clone().unwrap().id;
        let name = users[10].name.to_string();
        let plan = same_plan(
            &users,
            vec![entry(&returning, Some(&name), &[&format!("{name}@x.com")])],
            &["id30"],
            3600,
        );
        assert_eq!(plan.counts.suspended, 1, "{:?}", plan.lines);
        assert_eq!(plan.counts.reactivated, 1, "{:?}", plan.lines);
    }

    #[test]
    fn an_entry_without_a_usable_name_touches_only_its_user() {
        let touched = Touched::of("ldap", &[entry("id3", None, &["not an address"])], []);
        assert_eq!(touched.link_ids, ["id3"]);
        assert!(touched.name_keys.is_empty() && touched.address_keys.is_empty());
        same_plan(&directory(), vec![entry("id3", None, &[])], &[], 0);
    }

    /// The same plan whatever the users and the change, on a small world where names, addresses and
    /// ids collide often (and a Cyrillic letter makes look-alikes).
    mod any_change {
        use super::*;
        use proptest::prelude::*;

        const NAMES: [&str; 6] = ["ann", "bob", "\u{430}nn", "ANN", "cy", "dee"];

        fn a_user(
            i: usize,
            (name, mail, linked, auth, departed): (usize, usize, Option<usize>, bool, bool),
        ) -> CurrentUser {
            let mut u = user(
                i64::try_from(i).unwrap() + 2,
                &format!("{}{i}", NAMES[name]),
                &[&format!("m{mail}@x.com")],
                if auth { Directory } else { Local },
                linked.map(|l| format!("id{l}")).as_deref(),
            );
            if departed {
                u.departed_at = Some(Timestamp(5));
            }
            u
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(300))]
            #[test]
            fn plans_agree(
                users in proptest::collection::vec((0..6usize, 0..12usize, proptest::option::of(0..12usize), any::<bool>(), any::<bool>()), 1..12),
                changed in proptest::collection::vec((0..14usize, 0..6usize, 0..12usize, 0..12usize), 0..5),
                gone in proptest::collection::vec(0..14usize, 0..3),
                grace in any::<bool>(),
            ) {
                // Distinct names and links, as the store guarantees; addresses by position.
                let mut current: Vec<CurrentUser> = vec![admin()];
                let mut links = BTreeSet::new();
                let mut mails = BTreeSet::new();
                for (i, u) in users.into_iter().enumerate() {
                    let (name, mail, linked, auth, departed) = u;
                    let linked = linked.filter(|l| links.insert(*l));
                    let mut made = a_user(i, (name, mail, linked, auth, departed));
                    if !mails.insert(mail) {
                        made.emails.clear();
                    }
                    current.push(made);
                }
                let changed: Vec<DirectoryEntry> = changed
                    .into_iter()
                    .map(|(id, name, suffix, mail)| {
                        entry(&format!("id{id}"), Some(&format!("{}{suffix}", NAMES[name])), &[&format!("m{mail}@x.com")])
                    })
                    .collect();
                let gone: Vec<String> = gone.into_iter().map(|g| format!("id{g}")).collect();
                let touched = Touched::of("ldap", &changed, gone.iter().map(String::as_str));
                let mut options = opts(true);
                options.delete_after_seconds = if grace { 3600 } else { 0 };
                options.now = Timestamp(1_000_000);
                options.scope = touched.scope(&current);
                let whole = plan_sync(&current, changed.clone(), &options);
                let loaded: Vec<CurrentUser> = current.iter().filter(|u| touched.touches(u)).cloned().collect();
                let part = plan_sync(&loaded, changed, &options);
                prop_assert_eq!(&part.changes, &whole.changes);
                prop_assert_eq!(&part.lines, &whole.lines);
                let mut counts = part.counts;
                counts.unchanged = whole.counts.unchanged;
                prop_assert_eq!(counts, whole.counts);
            }
        }
    }
}
