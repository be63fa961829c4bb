//! Comparison keys, the maps the phases share, and the first phase: indexing the current users.

use super::CurrentUser;
use crate::names::EmailAddress;
use std::collections::HashMap;

/// The planner's maps are keyed by names, addresses and ids from the administrator's own directory, so
/// foldhash's speed (about a third of planning time went to SipHash) is worth more than SipHash's
/// resistance to crafted keys. Still randomly seeded per map.
pub(super) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
pub(super) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

pub(super) fn fast_map<K, V>(capacity: usize) -> FastMap<K, V> {
    HashMap::with_capacity_and_hasher(capacity, foldhash::fast::RandomState::default())
}

pub(super) fn fast_set<K>(capacity: usize) -> FastSet<K> {
    FastSet::with_capacity_and_hasher(capacity, foldhash::fast::RandomState::default())
}

/// A comparison key, stored only when it differs from the text it belongs to. Most names and addresses
/// are lowercase ASCII and are their own key, so 100,000 users need no second copy of them.
pub(super) fn distinct_key(text: &str) -> Option<Box<str>> {
    if crate::names::is_own_key(text) {
        None
    } else {
        Some(crate::names::name_key(text).into_boxed_str())
    }
}

/// The keys of a list of addresses: `None` when every address is its own key.
pub(super) fn distinct_email_keys(emails: &[EmailAddress]) -> Option<Vec<Box<str>>> {
    if emails.iter().all(|e| crate::names::is_own_key(e.as_str())) {
        None
    } else {
        Some(emails.iter().map(|e| e.key().into_boxed_str()).collect())
    }
}

/// The keys of `emails`, given what [`distinct_email_keys`] stored for them.
pub(super) fn email_keys<'a>(
    emails: &'a [EmailAddress],
    keys: Option<&'a [Box<str>]>,
) -> impl Iterator<Item = &'a str> + 'a {
    let (own, stored) = match keys {
        Some(k) => (None, Some(k.iter().map(|k| &**k))),
        None => (Some(emails.iter().map(EmailAddress::as_str)), None),
    };
    own.into_iter()
        .flatten()
        .chain(stored.into_iter().flatten())
}

/// The keys of a current user, stored only where they differ from the name and addresses.
struct UserKeys {
    name: Option<Box<str>>,
    emails: Option<Vec<Box<str>>>,
}

/// The current users with their comparison keys, computed once (rules 2, 3 and 6 compare them many
/// times). Users are referred to by their index in the snapshot, as everywhere in the planner.
pub(super) struct Current<'a> {
    pub(super) users: &'a [CurrentUser],
    keys: Vec<UserKeys>,
}

impl<'a> Current<'a> {
    pub(super) fn new(users: &'a [CurrentUser]) -> Self {
        let keys = users
            .iter()
            .map(|u| UserKeys {
                name: distinct_key(u.name.as_str()),
                emails: distinct_email_keys(&u.emails),
            })
            .collect();
        Current { users, keys }
    }

    pub(super) fn len(&self) -> usize {
        self.users.len()
    }

    pub(super) fn get(&self, u: usize) -> Option<&'a CurrentUser> {
        self.users.get(u)
    }

    /// The key of user `u`'s current name.
    pub(super) fn name_key(&self, u: usize) -> Option<&str> {
        let user = self.users.get(u)?;
        Some(
            self.keys
                .get(u)
                .and_then(|k| k.name.as_deref())
                .unwrap_or(user.name.as_str()),
        )
    }

    /// The keys of user `u`'s current addresses.
    pub(super) fn email_keys(&self, u: usize) -> impl Iterator<Item = &str> {
        email_keys(
            self.users
                .get(u)
                .map(|user| &user.emails[..])
                .unwrap_or_default(),
            self.keys.get(u).and_then(|k| k.emails.as_deref()),
        )
    }
}

/// The current users by stable id and by name key.
pub(super) struct Lookup<'k> {
    /// Users linked to this run's source, by the stable id of their entry (rule 3: ids are compared within
    /// one source).
    pub(super) by_link: FastMap<&'k str, usize>,
    /// Every user, by name key (rule 3's second match, and rule 6's current holder of a name).
    pub(super) by_name: FastMap<&'k str, usize>,
}

/// Phase "index the current users", for rule 3 (matching) and rule 6 (who holds a name now). The user
/// database is consistent, so each id (within one source) and each name key has one user.
pub(super) fn index_current<'k>(current: &'k Current<'_>, source: &str) -> Lookup<'k> {
    let mut by_link: FastMap<&str, usize> = fast_map(current.len());
    let mut by_name: FastMap<&str, usize> = fast_map(current.len());
    for (i, u) in current.users.iter().enumerate() {
        if let Some(link) = &u.link
            && link.source == source
        {
            by_link.insert(link.id.as_str(), i);
        }
        if let Some(k) = current.name_key(i) {
            by_name.insert(k, i);
        }
    }
    Lookup { by_link, by_name }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::user;
    use crate::user::AuthMethod;

    #[test]
    fn the_index_finds_users_by_link_within_the_source_and_by_folded_name() {
        let mut other_source = user(3, "Bob", &[], AuthMethod::Directory, Some("b"));
        if let Some(l) = other_source.link.as_mut() {
            l.source = "ldif".into();
        }
        let users = [
            user(2, "ΝΙΚΟΣ", &["A@X.com"], AuthMethod::Directory, Some("a")),
            other_source,
        ];
        let current = Current::new(&users);
        let lookup = index_current(&current, "ldap");
        assert_eq!(lookup.by_link.get("a"), Some(&0));
        assert_eq!(lookup.by_link.get("b"), None, "linked to another source");
        assert_eq!(lookup.by_name.get("νικοσ"), Some(&0));
        assert_eq!(lookup.by_name.get("bob"), Some(&1));
        assert_eq!(current.email_keys(0).collect::<Vec<_>>(), ["a@x.com"]);
        assert_eq!(current.email_keys(7).count(), 0);
    }
}
