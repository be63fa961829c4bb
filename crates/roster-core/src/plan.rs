//! The sync planner: a pure function from (the users we have, the entries the directory returned, options)
//! to a [`SyncPlan`]. "Test Settings" shows the plan; "Synchronize now" applies the same plan in one
//! transaction. Keeping it pure means every rule below is tested with plain values, and the preview can't
//! drift from what the sync does.
//!
//! The rules, in order:
//! 1. An entry without a usable user name is skipped and reported. Its id still counts as *seen*, so the
//!    user it belongs to is never deleted because of it.
//! 2. Two entries with the same user name (case-insensitive) are both reported as conflicts and neither is
//!    applied.
//! 3. Matching: by stable id within the same source first, then by user name. A user found by name is
//!    *linked*; its authentication method is left as the administrator set it. A user whose own linked
//!    entry was seen is never taken over by another entry with its name. A user whose linked entry is gone
//!    is (an entry re-created with a new id keeps its user), and the report says which entry it was.
//! 4. Targets: the name, full name and addresses follow the directory (a missing full-name or email
//!    attribute setting leaves them as they are). Privileges are never changed for existing users; new users
//!    get the defaults when the plan is applied.
//! 5. Deletion (only with `delete_users`): users linked to this source, authenticated by the directory,
//!    whose id the read did not return. A folder with messages is kept.
//! 6. Uniqueness: after all of the above, any user name or address that two users would hold is a
//!    conflict for each change that would introduce it; those changes are withdrawn, all of a round's at
//!    once so that the result doesn't depend on the order keys are looked at, and the check repeats on
//!    the keys the withdrawn users fall back to until the result is consistent. Everything else still
//!    goes ahead.

use crate::directory::DirectoryEntry;
use crate::names::{EmailAddress, UserName, dedup_emails};
use crate::user::{AuthMethod, DirectoryLink};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// The planner's maps are keyed by names, addresses and ids from the administrator's own directory, so
/// foldhash's speed (about a third of planning time went to SipHash) is worth more than SipHash's
/// resistance to crafted keys. Still randomly seeded per map.
type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
type FastSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;

fn fast_map<K, V>(capacity: usize) -> FastMap<K, V> {
    HashMap::with_capacity_and_hasher(capacity, foldhash::fast::RandomState::default())
}

/// A comparison key, stored only when it differs from the text it belongs to. Most names and addresses
/// are lowercase ASCII and are their own key, so 100,000 users need no second copy of them.
fn distinct_key(text: &str) -> Option<Box<str>> {
    if crate::names::is_own_key(text) {
        None
    } else {
        Some(crate::names::name_key(text).into_boxed_str())
    }
}

/// The keys of a list of addresses: `None` when every address is its own key.
fn distinct_email_keys(emails: &[EmailAddress]) -> Option<Vec<Box<str>>> {
    if emails.iter().all(|e| crate::names::is_own_key(e.as_str())) {
        None
    } else {
        Some(emails.iter().map(|e| e.key().into_boxed_str()).collect())
    }
}

/// The keys of `emails`, given what [`distinct_email_keys`] stored for them.
fn email_keys<'a>(
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

/// A user as the planner needs to see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentUser {
    pub id: i64,
    pub name: UserName,
    pub full_name: String,
    pub emails: Vec<EmailAddress>,
    pub auth: AuthMethod,
    pub link: Option<DirectoryLink>,
    pub builtin_admin: bool,
    /// Messages in the user's own archive folder.
    pub folder_messages: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanOptions {
    /// The directory type the entries came from (`ldap`, `ldif`, …): ids are compared within one source.
    pub source: String,
    pub delete_users: bool,
}

/// A user to create, with the directory link and the default privileges applied by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub name: UserName,
    pub full_name: String,
    pub emails: Vec<EmailAddress>,
    pub link: DirectoryLink,
}

/// Changes to an existing user. `None` fields stay as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserUpdate {
    pub user_id: i64,
    pub old_name: UserName,
    pub name: Option<UserName>,
    pub full_name: Option<String>,
    pub emails: Option<Vec<EmailAddress>>,
    pub link: DirectoryLink,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDeletion {
    pub user_id: i64,
    pub name: UserName,
    /// The folder holds messages: only the user goes, the folder stays.
    pub keep_folder: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlannedChanges {
    pub create: Vec<NewUser>,
    pub update: Vec<UserUpdate>,
    pub delete: Vec<UserDeletion>,
}

impl PlannedChanges {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty() && self.update.is_empty() && self.delete.is_empty()
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ReportAction {
    Created,
    Updated,
    Renamed,
    Linked,
    Deleted,
    Conflict,
    Skipped,
    /// Applied, but something in the entry was ignored (an invalid address, say).
    Warning,
}

impl ReportAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportAction::Created => "created",
            ReportAction::Updated => "updated",
            ReportAction::Renamed => "renamed",
            ReportAction::Linked => "linked",
            ReportAction::Deleted => "deleted",
            ReportAction::Conflict => "conflict",
            ReportAction::Skipped => "skipped",
            ReportAction::Warning => "warning",
        }
    }
}

/// One line per affected user (unchanged users are only counted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportLine {
    /// The user name (or, for an entry without one, its DN).
    pub user: String,
    pub action: ReportAction,
    #[schema(value_type = String)]
    pub reason: Cow<'static, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dn: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportCounts {
    pub created: u64,
    pub updated: u64,
    pub renamed: u64,
    pub linked: u64,
    pub deleted: u64,
    pub folders_kept: u64,
    pub unchanged: u64,
    pub conflicts: u64,
    pub skipped: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncPlan {
    pub changes: PlannedChanges,
    pub counts: ReportCounts,
    pub lines: Vec<ReportLine>,
}

/// An entry that passed rule 1, with its comparison keys computed once.
struct ValidEntry {
    id: String,
    dn: String,
    name: UserName,
    /// See [`distinct_key`].
    name_key: Option<Box<str>>,
    full_name: Option<String>,
    emails: Option<Vec<EmailAddress>>,
    /// See [`distinct_email_keys`].
    email_keys: Option<Vec<Box<str>>>,
}

impl ValidEntry {
    fn name_key(&self) -> &str {
        self.name_key.as_deref().unwrap_or(self.name.as_str())
    }

    /// The keys of the entry's addresses (none when the entry has no email attribute value).
    fn email_keys(&self) -> impl Iterator<Item = &str> {
        email_keys(
            self.emails.as_deref().unwrap_or_default(),
            self.email_keys.as_deref(),
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum MatchKind {
    ById,
    ByName,
}

/// What will become of one entry.
#[derive(Clone, Copy, Debug)]
enum EntryFate {
    /// Matched to an existing user (index into `current`).
    Existing {
        user: usize,
        kind: MatchKind,
    },
    Create,
    /// Withdrawn; the reason is already reported.
    Conflict,
}

/// Who would hold a name or an address once the plan is applied.
/// Ordered: existing users before new entries, each by index (the order conflict lines list them).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
enum Claimant {
    /// An existing user (index into `current`).
    User(usize),
    /// A new user from an entry (index into `valid`).
    Entry(usize),
}

/// One claim on a key; `introduced` when the plan gives the key to a holder that doesn't have it yet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Claim {
    who: Claimant,
    introduced: bool,
}

/// Key -> its claims. Keys borrow from the precomputed key vectors, and almost every key has exactly one
/// claim, held inline: building the maps for 100,000 users allocates no per-key lists.
type Claims<'k> = FastMap<&'k str, ClaimList>;

#[derive(Clone, Debug, Default)]
enum ClaimList {
    #[default]
    Empty,
    One(Claim),
    Many(Vec<Claim>),
}

impl ClaimList {
    fn push(&mut self, claim: Claim) {
        *self = match std::mem::take(self) {
            ClaimList::Empty => ClaimList::One(claim),
            ClaimList::One(first) => ClaimList::Many(vec![first, claim]),
            ClaimList::Many(mut all) => {
                all.push(claim);
                ClaimList::Many(all)
            }
        };
    }

    fn len(&self) -> usize {
        match self {
            ClaimList::Empty => 0,
            ClaimList::One(_) => 1,
            ClaimList::Many(all) => all.len(),
        }
    }

    fn retain(&mut self, keep: impl Fn(&Claim) -> bool) {
        match self {
            ClaimList::One(c) if !keep(c) => *self = ClaimList::Empty,
            ClaimList::Many(all) => all.retain(|c| keep(c)),
            ClaimList::Empty | ClaimList::One(_) => {}
        }
    }

    fn to_vec(&self) -> Vec<Claim> {
        match self {
            ClaimList::Empty => Vec::new(),
            ClaimList::One(c) => vec![*c],
            ClaimList::Many(all) => all.clone(),
        }
    }
}

/// The reason on a deleted user's line. Public because the store decides the folder again when it
/// applies the plan (see `AppliedPlan` in roster-store), and the line then follows.
pub fn deletion_reason(folder_kept: bool) -> &'static str {
    if folder_kept {
        "no longer found under the base DN with the filter (deleted, moved or changed in the directory); the archive folder holds messages and is kept"
    } else {
        "no longer found under the base DN with the filter (deleted, moved or changed in the directory); the empty archive folder is deleted too"
    }
}

/// How many holders or DNs a conflict line names; the rest are counted. Without a limit, k entries on
/// one address (a shared mailbox on every entry is common) would give k lines of k names each.
const LISTED: usize = 5;

/// `items` joined with `sep`, the first [`LISTED`] of `total`, then "and N more".
fn listed(items: impl Iterator<Item = String>, total: usize, sep: &str) -> String {
    let mut text = items.take(LISTED).collect::<Vec<_>>().join(sep);
    if total > LISTED {
        text.push_str(&format!(" and {} more", total - LISTED));
    }
    text
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

pub fn plan_sync(
    current: &[CurrentUser],
    entries: Vec<DirectoryEntry>,
    options: &PlanOptions,
) -> SyncPlan {
    let mut lines = Vec::new();
    let mut counts = ReportCounts::default();

    // Rule 1, and ids the directory returned more than once (all copies are conflicts: which one wins
    // must not depend on the order of the answer).
    let mut id_count: FastMap<&str, u32> = fast_map(entries.len());
    for e in &entries {
        *id_count.entry(e.id.as_str()).or_default() += 1;
    }
    let duplicated: FastSet<String> = id_count
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| (*id).to_owned())
        .collect();
    drop(id_count);
    // Ids of entries that don't become `valid` but still count as seen (their users must not be
    // deleted); the ids of valid entries are borrowed from them below instead of copied.
    let mut other_seen: Vec<String> = Vec::new();
    let mut valid: Vec<ValidEntry> = Vec::with_capacity(entries.len());
    for entry in entries {
        let DirectoryEntry {
            id,
            dn,
            name,
            full_name,
            emails,
        } = entry;
        if has_control(&id) || has_control(&dn) {
            counts.skipped += 1;
            lines.push(ReportLine {
                user: dn.escape_default().to_string(),
                action: ReportAction::Skipped,
                reason: "the entry's DN or id contains a control character".into(),
                dn: None,
            });
            // Seen all the same (rule 1): skipping an entry must never delete its user.
            other_seen.push(id);
            continue;
        }
        if duplicated.contains(&id) {
            counts.conflicts += 1;
            lines.push(ReportLine {
                user: name.unwrap_or_else(|| dn.clone()),
                action: ReportAction::Conflict,
                reason: format!("the directory returned more than one entry with the id {id}")
                    .into(),
                dn: Some(dn),
            });
            other_seen.push(id);
            continue;
        }
        let raw_name = match name.as_deref().map(str::trim) {
            Some(n) if !n.is_empty() => n,
            _ => {
                counts.skipped += 1;
                lines.push(ReportLine {
                    user: dn.clone(),
                    action: ReportAction::Skipped,
                    reason: "the entry has no value for the user-name attribute".into(),
                    dn: Some(dn),
                });
                other_seen.push(id);
                continue;
            }
        };
        let name = match UserName::parse(raw_name) {
            Ok(n) => n,
            Err(e) => {
                counts.skipped += 1;
                lines.push(ReportLine {
                    user: dn.clone(),
                    action: ReportAction::Skipped,
                    reason: e.to_string().into(),
                    dn: Some(dn),
                });
                other_seen.push(id);
                continue;
            }
        };
        let full_name = full_name.map(|f| {
            let f = f.trim();
            if has_control(f) {
                lines.push(ReportLine {
                    user: name.to_string(),
                    action: ReportAction::Warning,
                    reason: "control characters removed from the full name".into(),
                    dn: Some(dn.clone()),
                });
                f.chars().filter(|c| !c.is_control()).collect()
            } else {
                f.to_owned()
            }
        });
        let emails = emails.map(|raw| {
            let mut ok = Vec::with_capacity(raw.len());
            for value in raw {
                match EmailAddress::parse(&value) {
                    Ok(a) => ok.push(a),
                    Err(e) => lines.push(ReportLine {
                        user: name.to_string(),
                        action: ReportAction::Warning,
                        reason: format!("address ignored: {e}").into(),
                        dn: Some(dn.clone()),
                    }),
                }
            }
            dedup_emails(ok)
        });
        let email_keys = emails.as_deref().and_then(distinct_email_keys);
        valid.push(ValidEntry {
            id,
            dn,
            name_key: distinct_key(name.as_str()),
            name,
            full_name,
            emails,
            email_keys,
        });
    }
    drop(duplicated);
    let mut seen_ids: FastSet<&str> = FastSet::with_capacity_and_hasher(
        valid.len() + other_seen.len(),
        foldhash::fast::RandomState::default(),
    );
    seen_ids.extend(
        valid
            .iter()
            .map(|e| e.id.as_str())
            .chain(other_seen.iter().map(String::as_str)),
    );

    let cur_keys: Vec<UserKeys> = current
        .iter()
        .map(|u| UserKeys {
            name: distinct_key(u.name.as_str()),
            emails: distinct_email_keys(&u.emails),
        })
        .collect();
    let cur_name_key = |u: usize| -> Option<&str> {
        let user = current.get(u)?;
        Some(
            cur_keys
                .get(u)
                .and_then(|k| k.name.as_deref())
                .unwrap_or(user.name.as_str()),
        )
    };
    let cur_email_keys = |u: usize| -> Box<dyn Iterator<Item = &str> + '_> {
        match current.get(u) {
            Some(user) => Box::new(email_keys(
                &user.emails,
                cur_keys.get(u).and_then(|k| k.emails.as_deref()),
            )),
            None => Box::new(std::iter::empty()),
        }
    };

    // Rule 2.
    let mut fates: Vec<Option<EntryFate>> = vec![None; valid.len()];
    {
        // The first entry with each name; groups only for names seen twice or more (rare), so there is
        // no per-name list.
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
            // By DN, not in the order of the answer: the preview and the sync are separate reads, and
            // their lines should name the same entries.
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
                if let (Some(e), Some(f)) = (valid.get(i), fates.get_mut(i)) {
                    *f = Some(EntryFate::Conflict);
                    counts.conflicts += 1;
                    lines.push(ReportLine {
                        user: e.name.to_string(),
                        action: ReportAction::Conflict,
                        reason: format!(
                            "{} directory entries have this user name: {dns}",
                            group.len(),
                        )
                        .into(),
                        dn: Some(e.dn.clone()),
                    });
                }
            }
        }
    }

    // Rule 3: by id, then by name.
    let mut by_link: FastMap<&str, usize> = fast_map(current.len());
    let mut by_name: FastMap<&str, usize> = fast_map(current.len());
    for (i, u) in current.iter().enumerate() {
        if let Some(link) = &u.link
            && link.source == options.source
        {
            by_link.insert(link.id.as_str(), i);
        }
        if let Some(k) = cur_name_key(i) {
            by_name.insert(k, i);
        }
    }
    let mut claimed: Vec<bool> = vec![false; current.len()];
    for (e, fate) in valid.iter().zip(fates.iter_mut()) {
        if let Some(&u) = by_link.get(e.id.as_str()) {
            if let Some(c) = claimed.get_mut(u) {
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
    for (e, fate) in valid.iter().zip(fates.iter_mut()) {
        if fate.is_some() {
            continue;
        }
        let candidate = by_name.get(e.name_key()).copied().filter(|&u| {
            let own_entry_seen = current
                .get(u)
                .and_then(|c| c.link.as_ref())
                .is_some_and(|l| l.source == options.source && seen_ids.contains(l.id.as_str()));
            // A user whose linked entry is gone is matched by name, as the issue says ("by stable id
            // first, then by user name"): entries re-created with a new entryUUID (ldapadd after a
            // delete, provisioning tools, a move to another server) keep their users, privileges and
            // archives. The price: a new person given a departed user's name inherits that account;
            // the report line says so ("was linked to the entry …, which the directory no longer
            // returns"), and the preview shows it first.
            !claimed.get(u).copied().unwrap_or(true) && !own_entry_seen
        });
        match candidate.and_then(|u| current.get(u).map(|c| (u, c))) {
            Some((_, user)) if user.builtin_admin => {
                *fate = Some(EntryFate::Conflict);
                counts.conflicts += 1;
                lines.push(ReportLine {
                    user: e.name.to_string(),
                    action: ReportAction::Conflict,
                    reason: "the name belongs to Roster's built-in administrator, which synchronization never touches".into(),
                    dn: Some(e.dn.clone()),
                });
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

    // Rule 4: `targets[u]` is the entry that gives current user `u` its new state.
    let mut targets: Vec<Option<usize>> = vec![None; current.len()];
    for (i, fate) in fates.iter().enumerate() {
        if let Some(EntryFate::Existing { user, .. }) = fate
            && let Some(t) = targets.get_mut(*user)
        {
            *t = Some(i);
        }
    }

    // Users linked to this source whose entry the read didn't return (deleted by rule 5 or not); a
    // conflict line names them as such.
    let gone: Vec<bool> = current
        .iter()
        .map(|user| {
            user.link
                .as_ref()
                .is_some_and(|l| l.source == options.source && !seen_ids.contains(l.id.as_str()))
        })
        .collect();

    // Rule 5.
    let mut deletions: Vec<UserDeletion> = Vec::new();
    let mut deletion_dns: Vec<Option<String>> = Vec::new();
    let mut deleted: Vec<bool> = vec![false; current.len()];
    if options.delete_users {
        for (u, user) in current.iter().enumerate() {
            if gone.get(u).copied().unwrap_or(false)
                && user.auth == AuthMethod::Directory
                && !user.builtin_admin
                && !claimed.get(u).copied().unwrap_or(true)
            {
                if let Some(d) = deleted.get_mut(u) {
                    *d = true;
                }
                deletion_dns.push(user.link.as_ref().and_then(|l| l.dn.clone()));
                deletions.push(UserDeletion {
                    user_id: user.id,
                    name: user.name.clone(),
                    keep_folder: user.folder_messages > 0,
                });
            }
        }
    }
    drop(seen_ids);

    // Rule 6: every name and address has at most one holder after the plan. A change that would give a
    // key to a second holder is withdrawn; the withdrawn user then claims their current keys again, which
    // may in turn clash, so the keys touched are re-checked in the next round (each withdrawal costs only
    // the keys of that user, so a long chain of renames stays linear).
    //
    // Only keys that the plan *introduces* (gives to a holder that doesn't have it yet) can clash: the
    // user database is consistent, so a key nobody introduces keeps its one current holder. The maps
    // hold those keys only, with every claim on them; a re-sync with nothing new builds empty maps.
    {
        // The entry that gives current user `u` its new state, while the plan still has one.
        let target = |targets: &[Option<usize>], u: usize| -> Option<&ValidEntry> {
            targets.get(u).copied().flatten().and_then(|i| valid.get(i))
        };
        let planned_name = |targets: &[Option<usize>], u: usize| -> Option<&str> {
            target(targets, u)
                .map(ValidEntry::name_key)
                .or_else(|| cur_name_key(u))
        };
        // The keys `u` holds once the plan is applied (`planned`), or holds now.
        let user_claims =
            |targets: &[Option<usize>], u: usize, planned: bool| -> (Option<&str>, Vec<&str>) {
                let entry = if planned { target(targets, u) } else { None };
                let name = entry.map(ValidEntry::name_key).or_else(|| cur_name_key(u));
                let emails = match entry {
                    Some(e) if e.emails.is_some() => e.email_keys().collect(),
                    _ => cur_email_keys(u).collect(),
                };
                (name, emails)
            };
        let mut names: Claims = fast_map(0);
        let mut addresses: Claims = fast_map(0);
        // The claims that introduce a key: planned changes of existing users, and new users.
        for u in 0..current.len() {
            if deleted.get(u).copied().unwrap_or(false) {
                continue;
            }
            let Some(e) = target(&targets, u) else {
                continue;
            };
            let me = Claim {
                who: Claimant::User(u),
                introduced: true,
            };
            if cur_name_key(u) != Some(e.name_key()) {
                names.entry(e.name_key()).or_default().push(me);
            }
            if e.emails.is_some() {
                for a in e.email_keys() {
                    if !cur_email_keys(u).any(|k| k == a) {
                        addresses.entry(a).or_default().push(me);
                    }
                }
            }
        }
        for (i, fate) in fates.iter().enumerate() {
            if !matches!(fate, Some(EntryFate::Create)) {
                continue;
            }
            let Some(e) = valid.get(i) else { continue };
            let me = Claim {
                who: Claimant::Entry(i),
                introduced: true,
            };
            names.entry(e.name_key()).or_default().push(me);
            for a in e.email_keys() {
                addresses.entry(a).or_default().push(me);
            }
        }
        // The current holder of each introduced key, if the plan leaves the key with them.
        let mut by_address: FastMap<&str, usize> = fast_map(if addresses.is_empty() {
            0
        } else {
            current.len()
        });
        if !addresses.is_empty() {
            for u in 0..current.len() {
                for a in cur_email_keys(u) {
                    by_address.insert(a, u);
                }
            }
        }
        let keeps = |u: usize| !deleted.get(u).copied().unwrap_or(true);
        for (key, claims) in &mut names {
            if let Some(&u) = by_name.get(key)
                && keeps(u)
                && planned_name(&targets, u) == Some(*key)
            {
                claims.push(Claim {
                    who: Claimant::User(u),
                    introduced: false,
                });
            }
        }
        for (key, claims) in &mut addresses {
            if let Some(&u) = by_address.get(key)
                && keeps(u)
                && user_claims(&targets, u, true).1.contains(key)
            {
                claims.push(Claim {
                    who: Claimant::User(u),
                    introduced: false,
                });
            }
        }
        drop(by_address);
        // Rounds, so that the plan doesn't depend on the order keys are looked at: each round takes every
        // key that has two holders, withdraws *all* the claims introducing them at once, and only then
        // lets the withdrawn users claim their current keys again; the keys those reclaims land on are
        // the next round. (One at a time, a withdrawn new entry would drop its other claims before they
        // were checked, and which entries survived would follow hash order.) Sorted, so that the key a
        // loser's line names is always the same.
        let mut round: Vec<(bool, &str)> = names
            .iter()
            .filter(|(_, c)| c.len() > 1)
            .map(|(k, _)| (true, *k))
            .chain(
                addresses
                    .iter()
                    .filter(|(_, c)| c.len() > 1)
                    .map(|(k, _)| (false, *k)),
            )
            .collect();
        // "Gone" from what the read returned, not from `targets`: a withdrawn change clears its target too.
        let label = |c: Claimant| -> String {
            match c {
                Claimant::User(u) => current
                    .get(u)
                    .map(|x| {
                        if gone.get(u).copied().unwrap_or(false) {
                            format!("user {} (linked to a directory entry the directory no longer returns; delete that user, or enable delete_users)", x.name)
                        } else {
                            format!("user {}", x.name)
                        }
                    })
                    .unwrap_or_default(),
                Claimant::Entry(i) => valid
                    .get(i)
                    .map(|x| format!("the new entry {}", x.dn))
                    .unwrap_or_default(),
            }
        };
        while !round.is_empty() {
            // Names first, then addresses; each in key order.
            round.sort_unstable_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
            round.dedup();
            // Verdicts first, against the claims as they stand at the start of the round: each loser
            // with the first clashing key and the other holders of that key (existing users, then new
            // entries, each in their order).
            let mut losers: Vec<(Claimant, bool, &str, String)> = Vec::new();
            let mut judged: FastSet<Claimant> = FastSet::default();
            for &(is_name, key) in &round {
                let mut claims: Vec<Claim> = if is_name { &names } else { &addresses }
                    .get(key)
                    .map(ClaimList::to_vec)
                    .unwrap_or_default();
                if claims.len() < 2 {
                    continue;
                }
                // Existing users first, by id; then new entries by DN (not in the order of the answer,
                // so that a preview and a sync, two separate reads, name the same holders).
                claims.sort_unstable_by(|a, b| match (a.who, b.who) {
                    (Claimant::Entry(x), Claimant::Entry(y)) => {
                        let dn = |i: usize| valid.get(i).map(|e| e.dn.as_str());
                        dn(x).cmp(&dn(y))
                    }
                    (x, y) => x.cmp(&y),
                });
                for c in claims.iter().filter(|c| c.introduced) {
                    if !judged.insert(c.who) {
                        continue;
                    }
                    let others = listed(
                        claims
                            .iter()
                            .filter(|o| o.who != c.who)
                            .map(|o| label(o.who)),
                        claims.len() - 1,
                        ", ",
                    );
                    losers.push((c.who, is_name, key, others));
                }
            }
            // Withdraw every loser's planned claims: one pass over each key they touch (one pass per loser
            // would be quadratic when many entries share a key).
            let mut touched: FastSet<(bool, &str)> = FastSet::default();
            for &(loser, ..) in &losers {
                let (old_name, old_emails) = match loser {
                    Claimant::User(u) => user_claims(&targets, u, true),
                    Claimant::Entry(i) => valid
                        .get(i)
                        .map(|e| (Some(e.name_key()), e.email_keys().collect()))
                        .unwrap_or_default(),
                };
                touched.extend(old_name.map(|n| (true, n)));
                touched.extend(old_emails.into_iter().map(|a| (false, a)));
            }
            for (is_name, key) in touched {
                if let Some(cs) = if is_name { &mut names } else { &mut addresses }.get_mut(key) {
                    cs.retain(|c| !judged.contains(&c.who));
                }
            }
            drop(judged);
            // Then the existing users among them claim their current keys again. A key missing from the
            // maps is introduced by nobody, so the user stays its only holder.
            let mut next: Vec<(bool, &str)> = Vec::new();
            for (loser, is_name, key, others) in losers {
                let entry_index = match loser {
                    Claimant::Entry(i) => Some(i),
                    Claimant::User(u) => targets.get(u).copied().flatten(),
                };
                if let Claimant::User(u) = loser {
                    if let Some(t) = targets.get_mut(u) {
                        *t = None;
                    }
                    let (name, emails) = user_claims(&targets, u, false);
                    if let Some(n) = name
                        && let Some(cs) = names.get_mut(n)
                    {
                        cs.push(Claim {
                            who: loser,
                            introduced: false,
                        });
                        if cs.len() > 1 {
                            next.push((true, n));
                        }
                    }
                    for a in emails {
                        if let Some(cs) = addresses.get_mut(a) {
                            cs.push(Claim {
                                who: loser,
                                introduced: false,
                            });
                            if cs.len() > 1 {
                                next.push((false, a));
                            }
                        }
                    }
                }
                if let Some(i) = entry_index
                    && let (Some(fate), Some(e)) = (fates.get_mut(i), valid.get(i))
                {
                    *fate = Some(EntryFate::Conflict);
                    counts.conflicts += 1;
                    // For a rename, say which user it was: the line carries the new name.
                    let who = match loser {
                        Claimant::User(u) => current
                            .get(u)
                            .filter(|c| c.name.as_str() != e.name.as_str())
                            .map(|c| format!(" (user {} -> {})", c.name, e.name))
                            .unwrap_or_default(),
                        Claimant::Entry(_) => String::new(),
                    };
                    let what = if is_name { "user name" } else { "address" };
                    lines.push(ReportLine {
                        user: e.name.to_string(),
                        action: ReportAction::Conflict,
                        reason: format!(
                            "not applied{who}: the {what} {key} is also held by {others}"
                        )
                        .into(),
                        dn: Some(e.dn.clone()),
                    });
                }
            }
            round = next;
        }
    }

    // Build the changes and the report. Entries are consumed here: their strings move into the plan.
    let mut changes = PlannedChanges::default();
    changes.create.reserve(
        fates
            .iter()
            .filter(|f| matches!(f, Some(EntryFate::Create)))
            .count(),
    );
    lines.reserve(valid.len().min(current.len().max(1) * 2 + 1024));
    for (e, fate) in valid.into_iter().zip(fates) {
        match fate {
            Some(EntryFate::Create) => {
                counts.created += 1;
                lines.push(ReportLine {
                    user: e.name.to_string(),
                    action: ReportAction::Created,
                    reason: Cow::Borrowed("new in the directory"),
                    dn: Some(e.dn.clone()),
                });
                changes.create.push(NewUser {
                    name: e.name,
                    full_name: e.full_name.unwrap_or_default(),
                    emails: e.emails.unwrap_or_default(),
                    link: DirectoryLink {
                        source: options.source.clone(),
                        id: e.id,
                        dn: Some(e.dn),
                    },
                });
            }
            Some(EntryFate::Existing { user, kind }) => {
                let Some(u) = current.get(user) else { continue };
                if targets.get(user).copied().flatten().is_none() {
                    continue; // withdrawn
                }
                let rename = e.name.as_str() != u.name.as_str();
                let full_name = e.full_name.filter(|f| *f != u.full_name);
                let emails = e.emails.filter(|new| *new != u.emails);
                let dn_changed =
                    u.link.as_ref().and_then(|l| l.dn.as_deref()) != Some(e.dn.as_str());
                let relinked = u
                    .link
                    .as_ref()
                    .is_none_or(|l| l.source != options.source || l.id != e.id);
                let mut what = Vec::new();
                if full_name.is_some() {
                    what.push("full name");
                }
                if emails.is_some() {
                    what.push("email addresses");
                }
                let (action, reason): (ReportAction, Cow<'static, str>) =
                    if kind == MatchKind::ByName && relinked {
                        counts.linked += 1;
                        let was = match &u.link {
                            Some(l) if l.source == options.source => format!(
                                "was linked to the entry {}, which the directory no longer returns",
                                l.id
                            ),
                            Some(l) => format!("was linked to {} entry {}", l.source, l.id),
                            None => "was created manually".to_owned(),
                        };
                        let mut r = format!(
                            "matched by user name ({was}); authentication stays {}",
                            u.auth.as_str()
                        );
                        if !what.is_empty() {
                            r.push_str(&format!("; {} updated", what.join(" and ")));
                        }
                        (ReportAction::Linked, r.into())
                    } else if rename {
                        counts.renamed += 1;
                        let mut r = format!("renamed in the directory from {}", u.name);
                        if !what.is_empty() {
                            r.push_str(&format!("; {} updated", what.join(" and ")));
                        }
                        (ReportAction::Renamed, r.into())
                    } else if !what.is_empty() {
                        counts.updated += 1;
                        (
                            ReportAction::Updated,
                            format!("{} changed in the directory", what.join(" and ")).into(),
                        )
                    } else if dn_changed || relinked {
                        counts.updated += 1;
                        (
                            ReportAction::Updated,
                            Cow::Borrowed("moved in the directory (new DN)"),
                        )
                    } else {
                        counts.unchanged += 1;
                        continue;
                    };
                lines.push(ReportLine {
                    user: e.name.to_string(),
                    action,
                    reason,
                    dn: Some(e.dn.clone()),
                });
                changes.update.push(UserUpdate {
                    user_id: u.id,
                    old_name: u.name.clone(),
                    name: rename.then_some(e.name),
                    full_name,
                    emails,
                    link: DirectoryLink {
                        source: options.source.clone(),
                        id: e.id,
                        dn: Some(e.dn),
                    },
                });
            }
            Some(EntryFate::Conflict) | None => {}
        }
    }
    for (d, dn) in deletions.iter().zip(deletion_dns) {
        counts.deleted += 1;
        if d.keep_folder {
            counts.folders_kept += 1;
        }
        lines.push(ReportLine {
            user: d.name.to_string(),
            action: ReportAction::Deleted,
            reason: Cow::Borrowed(deletion_reason(d.keep_folder)),
            dn,
        });
    }
    changes.delete = deletions;
    lines.sort_by(|a, b| a.action.cmp(&b.action).then_with(|| a.user.cmp(&b.user)));
    SyncPlan {
        changes,
        counts,
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(
        id: i64,
        name: &str,
        emails: &[&str],
        auth: AuthMethod,
        link: Option<&str>,
    ) -> CurrentUser {
        CurrentUser {
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

    fn entry(id: &str, name: Option<&str>, emails: &[&str]) -> DirectoryEntry {
        DirectoryEntry {
            id: id.into(),
            dn: format!("uid={},ou=People", name.unwrap_or("?")),
            name: name.map(Into::into),
            full_name: Some(format!("{} Full", name.unwrap_or("?"))),
            emails: Some(emails.iter().map(|e| e.to_string()).collect()),
        }
    }

    fn opts(delete: bool) -> PlanOptions {
        PlanOptions {
            source: "ldap".into(),
            delete_users: delete,
        }
    }

    fn admin() -> CurrentUser {
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
        let names = [
            "ann", "Ann", "bob", "BOB", "cy", "\u{c4}sa", "\u{e4}sa", "dee", "admin",
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
                    let emails: Vec<&str> =
                        (0..next(3)).map(|_| mails[next(mails.len())]).collect();
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
            let c = plan.counts;
            assert_eq!(
                c.created
                    + c.updated
                    + c.renamed
                    + c.linked
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
}
