//! Rule 6: every user name and address has at most one holder once the plan is applied, and a name the
//! plan gives to a user doesn't look like another's (issue 19, item 11: a Cyrillic `аdmin` beside
//! `admin`): names with the same Unicode TR39 skeleton ([`crate::names::skeleton`]) but different keys.
//!
//! A change that would give a key to a second holder is withdrawn; the withdrawn user then claims their
//! current keys again, which may in turn clash, so the keys touched are re-checked in the next round
//! (each withdrawal costs only the keys of that user, so a long chain of renames stays linear).
//!
//! Only keys that the plan *introduces* (gives to a holder that doesn't have it yet) can clash: the user
//! database is consistent, so a key nobody introduces keeps its one current holder. The maps hold those
//! keys only, with every claim on them; a re-sync with nothing new builds empty maps.
//!
//! Look-alikes are claims on a name's skeleton, made with every name claim. The user database may hold
//! several users with one skeleton (stored before this rule), so a skeleton's current holders are every
//! user who keeps their name and has it; skeletons are computed only when some name is introduced
//! ([`Skeletons::new`]).

use super::ReportAction;
use super::entries::ValidEntry;
use super::keys::{Current, FastMap, FastSet, fast_map};
use super::matching::{EntryFate, LinkState};
use super::report::{Report, listed};

/// Who would hold a name or an address once the plan is applied.
/// Ordered: existing users before new entries, each by index (the order conflict lines list them).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
enum Claimant {
    /// An existing user (index into the current users).
    User(usize),
    /// A new user from an entry (index into the valid entries).
    Entry(usize),
}

/// One claim on a key; `introduced` when the plan gives the key to a holder that doesn't have it yet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Claim {
    who: Claimant,
    introduced: bool,
    /// On a skeleton: the claimant's name is not all ASCII. Two ASCII names never count as look-alikes
    /// ([`crate::names::look_alike`]).
    non_ascii: bool,
}

impl Claim {
    /// Whether `other` contests this claim on a key of `kind`: any other claimant does, except that on a
    /// skeleton, one of the two names must be non-ASCII.
    fn contested_by(&self, kind: KeyKind, other: &Claim) -> bool {
        other.who != self.who && (kind != KeyKind::LookAlike || self.non_ascii || other.non_ascii)
    }
}

/// Whether a list of claims on a key of `kind` may hold a clash (`judge` decides who loses).
fn may_clash(kind: KeyKind, list: &ClaimList) -> bool {
    list.len() > 1 && (kind != KeyKind::LookAlike || list.any_non_ascii())
}

/// The kinds of key that must stay unique. Ordered: names are judged first in a round, then look-alike
/// names (a claimant with the same name as another is that, not a look-alike), then addresses.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
enum KeyKind {
    Name,
    /// A name's skeleton.
    LookAlike,
    Address,
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

    fn any_non_ascii(&self) -> bool {
        match self {
            ClaimList::Empty => false,
            ClaimList::One(c) => c.non_ascii,
            ClaimList::Many(all) => all.iter().any(|c| c.non_ascii),
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

/// The name, skeleton and address claims.
#[derive(Default)]
struct KeyClaims<'k> {
    names: Claims<'k>,
    looks: Claims<'k>,
    addresses: Claims<'k>,
}

impl<'k> KeyClaims<'k> {
    fn of(&self, kind: KeyKind) -> &Claims<'k> {
        match kind {
            KeyKind::Name => &self.names,
            KeyKind::LookAlike => &self.looks,
            KeyKind::Address => &self.addresses,
        }
    }

    fn of_mut(&mut self, kind: KeyKind) -> &mut Claims<'k> {
        match kind {
            KeyKind::Name => &mut self.names,
            KeyKind::LookAlike => &mut self.looks,
            KeyKind::Address => &mut self.addresses,
        }
    }
}

/// A skeleton as [`Skeletons`] holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Skeleton {
    /// Not needed: the name is not introduced (entries), or no name is (users).
    NotComputed,
    /// The same as the name key (most ASCII names): not stored twice.
    OwnKey,
    Other(Box<str>),
}

impl Skeleton {
    fn of(key: &str) -> Skeleton {
        match crate::names::skeleton(key) {
            std::borrow::Cow::Borrowed(_) => Skeleton::OwnKey,
            std::borrow::Cow::Owned(s) => Skeleton::Other(s.into_boxed_str()),
        }
    }

    fn get<'s>(&'s self, key: Option<&'s str>) -> Option<&'s str> {
        match self {
            Skeleton::NotComputed => None,
            Skeleton::OwnKey => key,
            Skeleton::Other(s) => Some(s),
        }
    }
}

/// The skeletons of the names rule 6 compares: of every entry whose name the plan introduces, and, when
/// there is one, of every current user's name (their possible look-alikes). A re-sync that introduces no
/// name computes none.
pub(super) struct Skeletons {
    entries: Vec<Skeleton>,
    users: Vec<Skeleton>,
    /// How many names the plan introduces (the size of the skeleton claims).
    introduced: usize,
}

impl Skeletons {
    pub(super) fn new(
        valid: &[ValidEntry],
        current: &Current<'_>,
        targets: &[Option<usize>],
        fates: &[Option<EntryFate>],
        deleted: &[bool],
    ) -> Skeletons {
        let mut introduced = vec![false; valid.len()];
        for (i, fate) in fates.iter().enumerate() {
            if matches!(fate, Some(EntryFate::Create))
                && let Some(x) = introduced.get_mut(i)
            {
                *x = true;
            }
        }
        for (u, target) in targets.iter().enumerate() {
            if let Some(i) = *target
                && !deleted.get(u).copied().unwrap_or(false)
                && let Some(e) = valid.get(i)
                && current.name_key(u) != Some(e.name_key())
                && let Some(x) = introduced.get_mut(i)
            {
                *x = true;
            }
        }
        let count = introduced.iter().filter(|&&x| x).count();
        // Two ASCII names are never look-alikes (`names::look_alike`): when every introduced name and
        // every current one is ASCII, as in most directories, nothing is computed.
        let any_non_ascii = || {
            valid
                .iter()
                .zip(&introduced)
                .any(|(e, &new)| new && !e.name_key().is_ascii())
                || (0..current.len()).any(|u| current.name_key(u).is_some_and(|n| !n.is_ascii()))
        };
        if count == 0 || !any_non_ascii() {
            return Skeletons {
                entries: Vec::new(),
                users: Vec::new(),
                introduced: 0,
            };
        }
        let entries = valid
            .iter()
            .zip(&introduced)
            .map(|(e, &new)| {
                if new {
                    Skeleton::of(e.name_key())
                } else {
                    Skeleton::NotComputed
                }
            })
            .collect();
        let users = (0..current.len())
            .map(|u| {
                current
                    .name_key(u)
                    .map_or(Skeleton::NotComputed, Skeleton::of)
            })
            .collect();
        Skeletons {
            entries,
            users,
            introduced: count,
        }
    }
}

/// What rule 6 reads: the entries, the users and what the earlier phases decided about them.
pub(super) struct Holders<'a> {
    pub(super) valid: &'a [ValidEntry],
    pub(super) current: &'a Current<'a>,
    /// Current users by name key (see [`Lookup`](super::keys::Lookup)).
    pub(super) by_name: &'a FastMap<&'a str, usize>,
    pub(super) links: &'a [LinkState],
    /// Users rule 5 deletes: they hold nothing after the plan.
    pub(super) deleted: &'a [bool],
    pub(super) skeletons: &'a Skeletons,
    /// From how many entries and users together the maps of claims are built on two threads.
    pub(super) two_threads_from: usize,
}

impl<'a> Holders<'a> {
    /// The entry that gives current user `u` its new state, while the plan still has one.
    fn target(&self, targets: &[Option<usize>], u: usize) -> Option<&'a ValidEntry> {
        let valid: &'a [ValidEntry] = self.valid;
        targets.get(u).copied().flatten().and_then(|i| valid.get(i))
    }

    fn planned_name(&self, targets: &[Option<usize>], u: usize) -> Option<&'a str> {
        let current: &'a Current<'a> = self.current;
        self.target(targets, u)
            .map(ValidEntry::name_key)
            .or_else(|| current.name_key(u))
    }

    /// The skeleton of entry `i`'s name, when the plan introduces that name.
    fn entry_skeleton(&self, i: usize) -> Option<&'a str> {
        let skeletons: &'a Skeletons = self.skeletons;
        let valid: &'a [ValidEntry] = self.valid;
        let key = valid.get(i).map(ValidEntry::name_key);
        skeletons.entries.get(i).and_then(|s| s.get(key))
    }

    /// The skeleton of user `u`'s current name (computed when the plan introduces some name).
    fn user_skeleton(&self, u: usize) -> Option<&'a str> {
        let skeletons: &'a Skeletons = self.skeletons;
        let current: &'a Current<'a> = self.current;
        skeletons
            .users
            .get(u)
            .and_then(|s| s.get(current.name_key(u)))
    }

    /// Whether the plan gives user `u` a name with another key.
    fn introduces_name(&self, targets: &[Option<usize>], u: usize) -> bool {
        self.target(targets, u)
            .is_some_and(|e| self.current.name_key(u) != Some(e.name_key()))
    }

    /// The keys `u` holds once the plan is applied (`planned`), or holds now.
    fn user_claims(&self, targets: &[Option<usize>], u: usize, planned: bool) -> HeldKeys<'a> {
        let current: &'a Current<'a> = self.current;
        let target = if planned {
            targets.get(u).copied().flatten()
        } else {
            None
        };
        let entry = target.and_then(|i| self.valid.get(i));
        let name = entry
            .map(ValidEntry::name_key)
            .or_else(|| current.name_key(u));
        let skeleton = match target {
            Some(i) if self.introduces_name(targets, u) => self.entry_skeleton(i),
            _ => self.user_skeleton(u),
        };
        let emails = match entry {
            Some(e) if e.emails.is_some() => e.email_keys().collect(),
            _ => current.email_keys(u).collect(),
        };
        HeldKeys {
            name,
            skeleton,
            emails,
        }
    }

    fn keeps(&self, u: usize) -> bool {
        !self.deleted.get(u).copied().unwrap_or(true)
    }

    /// How a conflict line names another holder. "Gone" from what the read returned, not from the
    /// targets: a withdrawn change clears its target too.
    fn label(&self, c: Claimant) -> String {
        match c {
            Claimant::User(u) => self
                .current
                .get(u)
                .map(|x| {
                    if self.links.get(u) == Some(&LinkState::Gone) {
                        format!("user {} (linked to a directory entry the directory no longer returns; delete that user, or enable delete_users)", x.name)
                    } else {
                        format!("user {}", x.name)
                    }
                })
                .unwrap_or_default(),
            Claimant::Entry(i) => self
                .valid
                .get(i)
                .map(|x| format!("the new entry {}", x.dn))
                .unwrap_or_default(),
        }
    }
}

/// The keys a user or new entry holds: a name, its skeleton (when computed), addresses.
#[derive(Default)]
struct HeldKeys<'k> {
    name: Option<&'k str>,
    skeleton: Option<&'k str>,
    emails: Vec<&'k str>,
}

/// A withdrawn claimant, the first clashing key it lost, and the other holders of that key as listed.
struct Loser<'k> {
    who: Claimant,
    kind: KeyKind,
    key: &'k str,
    others: String,
}

/// Phase "withdraw conflicting changes", rule 6. Withdraws every planned change or new user that would
/// give a name or an address to a second holder, with a conflict line naming the key and its other
/// holders, and clears the targets and fates to match. Everything else still goes ahead.
pub(super) fn withdraw_conflicts(
    holders: &Holders<'_>,
    targets: &mut [Option<usize>],
    fates: &mut [Option<EntryFate>],
    report: &mut Report,
) {
    let mut claims = introduced_claims(holders, targets, fates);
    add_current_holders(holders, targets, &mut claims);
    // Rounds, so that the plan doesn't depend on the order keys are looked at: each round takes every key
    // that has two holders, withdraws *all* the claims introducing them at once, and only then lets the
    // withdrawn users claim their current keys again; the keys those reclaims land on are the next round.
    // (One at a time, a withdrawn new entry would drop its other claims before they were checked, and
    // which entries survived would follow hash order.)
    let mut round = clashing_keys(&claims);
    while !round.is_empty() {
        let losers = judge(holders, &mut round, &claims);
        round = withdraw(holders, losers, targets, fates, &mut claims, report);
    }
}

/// The claims that introduce a key: planned changes of existing users (not deleted), and new users. Names
/// (with their skeletons) and addresses are independent maps: a large plan builds them on two threads
/// (after the read the directory server no longer needs a core; at 100,000 new users the maps took half
/// of a first sync's planning on one).
fn introduced_claims<'k>(
    holders: &Holders<'k>,
    targets: &[Option<usize>],
    fates: &[Option<EntryFate>],
) -> KeyClaims<'k> {
    if holders.valid.len() + holders.current.len() < holders.two_threads_from {
        let (names, looks) = introduced_names(holders, targets, fates);
        let addresses = introduced_addresses(holders, targets, fates);
        return KeyClaims {
            names,
            looks,
            addresses,
        };
    }
    std::thread::scope(|scope| {
        let addresses = scope.spawn(|| introduced_addresses(holders, targets, fates));
        let (names, looks) = introduced_names(holders, targets, fates);
        let addresses = addresses
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        KeyClaims {
            names,
            looks,
            addresses,
        }
    })
}

/// The new users, and the existing users (not deleted) that the plan gives an entry, each with the
/// claim it makes: what [`introduced_names`] and [`introduced_addresses`] go through.
fn claimants<'a, 'k>(
    holders: &'a Holders<'k>,
    targets: &'a [Option<usize>],
    fates: &'a [Option<EntryFate>],
) -> (
    impl Iterator<Item = (usize, &'k ValidEntry, Claim)> + 'a,
    impl Iterator<Item = (usize, &'k ValidEntry, Claim)> + 'a,
) {
    let introduced = |who| Claim {
        who,
        introduced: true,
        non_ascii: false,
    };
    let current: &'k Current<'k> = holders.current;
    let valid: &'k [ValidEntry] = holders.valid;
    let users = (0..current.len()).filter_map(move |u| {
        if holders.deleted.get(u).copied().unwrap_or(false) {
            return None;
        }
        let e = holders.target(targets, u)?;
        Some((u, e, introduced(Claimant::User(u))))
    });
    let entries = fates.iter().enumerate().filter_map(move |(i, fate)| {
        if !matches!(fate, Some(EntryFate::Create)) {
            return None;
        }
        let e = valid.get(i)?;
        Some((i, e, introduced(Claimant::Entry(i))))
    });
    (users, entries)
}

/// How many claims of one kind the new users make: the maps' capacity, so that a first sync builds them
/// without growing. (Existing users introduce keys only where they change, which few do.)
fn claim_capacity(
    holders: &Holders<'_>,
    fates: &[Option<EntryFate>],
    per_entry: impl Fn(&ValidEntry) -> usize,
) -> usize {
    fates
        .iter()
        .zip(holders.valid)
        .filter(|(f, _)| matches!(f, Some(EntryFate::Create)))
        .map(|(_, e)| per_entry(e))
        .sum()
}

/// The names and their skeletons that the plan introduces.
fn introduced_names<'k>(
    holders: &Holders<'k>,
    targets: &[Option<usize>],
    fates: &[Option<EntryFate>],
) -> (Claims<'k>, Claims<'k>) {
    let current: &'k Current<'k> = holders.current;
    let mut names: Claims<'k> = fast_map(claim_capacity(holders, fates, |_| 1));
    let mut looks: Claims<'k> = fast_map(holders.skeletons.introduced);
    let (users, entries) = claimants(holders, targets, fates);
    for (u, e, me) in users {
        if current.name_key(u) == Some(e.name_key()) {
            continue;
        }
        names.entry(e.name_key()).or_default().push(me);
        if let Some(s) = targets
            .get(u)
            .copied()
            .flatten()
            .and_then(|i| holders.entry_skeleton(i))
        {
            looks.entry(s).or_default().push(Claim {
                non_ascii: !e.name_key().is_ascii(),
                ..me
            });
        }
    }
    for (i, e, me) in entries {
        names.entry(e.name_key()).or_default().push(me);
        if let Some(s) = holders.entry_skeleton(i) {
            looks.entry(s).or_default().push(Claim {
                non_ascii: !e.name_key().is_ascii(),
                ..me
            });
        }
    }
    (names, looks)
}

/// The addresses that the plan introduces.
fn introduced_addresses<'k>(
    holders: &Holders<'k>,
    targets: &[Option<usize>],
    fates: &[Option<EntryFate>],
) -> Claims<'k> {
    let current: &'k Current<'k> = holders.current;
    let mut addresses: Claims<'k> = fast_map(claim_capacity(holders, fates, |e| {
        e.emails.as_ref().map_or(0, Vec::len)
    }));
    let (users, entries) = claimants(holders, targets, fates);
    for (u, e, me) in users {
        if e.emails.is_some() {
            for a in e.email_keys() {
                if !current.email_keys(u).any(|k| k == a) {
                    addresses.entry(a).or_default().push(me);
                }
            }
        }
    }
    for (_, e, me) in entries {
        for a in e.email_keys() {
            addresses.entry(a).or_default().push(me);
        }
    }
    addresses
}

/// Adds the current holder of each introduced key, if the plan leaves the key with them.
fn add_current_holders<'k>(
    holders: &Holders<'k>,
    targets: &[Option<usize>],
    claims: &mut KeyClaims<'k>,
) {
    let current: &'k Current<'k> = holders.current;
    let mut by_address: FastMap<&str, usize> = fast_map(if claims.addresses.is_empty() {
        0
    } else {
        current.len()
    });
    if !claims.addresses.is_empty() {
        for u in 0..current.len() {
            for a in current.email_keys(u) {
                by_address.insert(a, u);
            }
        }
    }
    let held = Claim {
        who: Claimant::User(0),
        introduced: false,
        non_ascii: false,
    };
    for (key, list) in &mut claims.names {
        if let Some(&u) = holders.by_name.get(key)
            && holders.keeps(u)
            && holders.planned_name(targets, u) == Some(*key)
        {
            list.push(Claim {
                who: Claimant::User(u),
                ..held
            });
        }
    }
    // A skeleton may have several current holders. Users whose name the plan changes claimed theirs
    // above, as introduced.
    if !claims.looks.is_empty() {
        for u in 0..current.len() {
            if holders.keeps(u)
                && !holders.introduces_name(targets, u)
                && let Some(s) = holders.user_skeleton(u)
                && let Some(list) = claims.looks.get_mut(s)
            {
                list.push(Claim {
                    who: Claimant::User(u),
                    non_ascii: current.name_key(u).is_some_and(|n| !n.is_ascii()),
                    ..held
                });
            }
        }
    }
    for (key, list) in &mut claims.addresses {
        if let Some(&u) = by_address.get(key)
            && holders.keeps(u)
            && holders.user_claims(targets, u, true).emails.contains(key)
        {
            list.push(Claim {
                who: Claimant::User(u),
                ..held
            });
        }
    }
}

/// The keys with more than one claim: the first round.
fn clashing_keys<'k>(claims: &KeyClaims<'k>) -> Vec<(KeyKind, &'k str)> {
    let mut keys = Vec::new();
    for kind in [KeyKind::Name, KeyKind::LookAlike, KeyKind::Address] {
        keys.extend(
            claims
                .of(kind)
                .iter()
                .filter(|(_, c)| may_clash(kind, c))
                .map(|(k, _)| (kind, *k)),
        );
    }
    keys
}

/// One round's verdicts, against the claims as they stand at the start of the round: every claimant that
/// introduces a key with two holders loses. Each loser comes with the first clashing key (names first,
/// then addresses, each in key order, so that the key a loser's line names is always the same) and the
/// other holders of that key (existing users by index, then new entries by DN: not in the order of the
/// answer, so that a preview and a sync, two separate reads, name the same holders).
fn judge<'k>(
    holders: &Holders<'k>,
    round: &mut Vec<(KeyKind, &'k str)>,
    claims: &KeyClaims<'k>,
) -> Vec<Loser<'k>> {
    let valid = holders.valid;
    round.sort_unstable();
    round.dedup();
    let mut losers: Vec<Loser<'k>> = Vec::new();
    let mut judged: FastSet<Claimant> = FastSet::default();
    for &(kind, key) in round.iter() {
        let mut list: Vec<Claim> = claims
            .of(kind)
            .get(key)
            .map(ClaimList::to_vec)
            .unwrap_or_default();
        if list.len() < 2 {
            continue;
        }
        list.sort_unstable_by(|a, b| match (a.who, b.who) {
            (Claimant::Entry(x), Claimant::Entry(y)) => {
                let dn = |i: usize| valid.get(i).map(|e| e.dn.as_str());
                dn(x).cmp(&dn(y))
            }
            (x, y) => x.cmp(&y),
        });
        for c in list.iter().filter(|c| c.introduced) {
            let rivals: Vec<&Claim> = list.iter().filter(|o| c.contested_by(kind, o)).collect();
            if rivals.is_empty() || !judged.insert(c.who) {
                continue;
            }
            let others = listed(
                rivals.iter().map(|o| holders.label(o.who)),
                rivals.len(),
                ", ",
            );
            losers.push(Loser {
                who: c.who,
                kind,
                key,
                others,
            });
        }
    }
    losers
}

/// Withdraws a round's losers, all at once: their planned claims leave the maps, then the existing users
/// among them claim their current keys again (a key missing from the maps is introduced by nobody, so
/// the user stays its only holder), and each gets its conflict line. Returns the next round: the keys
/// those reclaims clash on.
fn withdraw<'k>(
    holders: &Holders<'k>,
    losers: Vec<Loser<'k>>,
    targets: &mut [Option<usize>],
    fates: &mut [Option<EntryFate>],
    claims: &mut KeyClaims<'k>,
    report: &mut Report,
) -> Vec<(KeyKind, &'k str)> {
    let valid = holders.valid;
    let current: &'k Current<'k> = holders.current;
    // One pass over each key the losers touch (one pass per loser would be quadratic when many entries
    // share a key), while the targets still say what each loser planned.
    let judged: FastSet<Claimant> = losers.iter().map(|l| l.who).collect();
    let mut touched: FastSet<(KeyKind, &str)> = FastSet::default();
    for loser in &losers {
        let old = match loser.who {
            Claimant::User(u) => holders.user_claims(targets, u, true),
            Claimant::Entry(i) => valid
                .get(i)
                .map(|e| HeldKeys {
                    name: Some(e.name_key()),
                    skeleton: holders.entry_skeleton(i),
                    emails: e.email_keys().collect(),
                })
                .unwrap_or_default(),
        };
        touched.extend(old.name.map(|n| (KeyKind::Name, n)));
        touched.extend(old.skeleton.map(|s| (KeyKind::LookAlike, s)));
        touched.extend(old.emails.into_iter().map(|a| (KeyKind::Address, a)));
    }
    for (kind, key) in touched {
        if let Some(list) = claims.of_mut(kind).get_mut(key) {
            list.retain(|c| !judged.contains(&c.who));
        }
    }
    drop(judged);
    let mut next: Vec<(KeyKind, &str)> = Vec::new();
    for Loser {
        who,
        kind,
        key,
        others,
    } in losers
    {
        let entry_index = match who {
            Claimant::Entry(i) => Some(i),
            Claimant::User(u) => targets.get(u).copied().flatten(),
        };
        if let Claimant::User(u) = who {
            if let Some(t) = targets.get_mut(u) {
                *t = None;
            }
            let HeldKeys {
                name,
                skeleton,
                emails,
            } = holders.user_claims(targets, u, false);
            let reclaim = Claim {
                who,
                introduced: false,
                non_ascii: false,
            };
            if let Some(n) = name
                && let Some(list) = claims.names.get_mut(n)
            {
                list.push(reclaim);
                if may_clash(KeyKind::Name, list) {
                    next.push((KeyKind::Name, n));
                }
            }
            if let Some(s) = skeleton
                && let Some(list) = claims.looks.get_mut(s)
            {
                list.push(Claim {
                    non_ascii: name.is_some_and(|n| !n.is_ascii()),
                    ..reclaim
                });
                if may_clash(KeyKind::LookAlike, list) {
                    next.push((KeyKind::LookAlike, s));
                }
            }
            for a in emails {
                if let Some(list) = claims.addresses.get_mut(a) {
                    list.push(reclaim);
                    if may_clash(KeyKind::Address, list) {
                        next.push((KeyKind::Address, a));
                    }
                }
            }
        }
        if let Some(i) = entry_index
            && let (Some(fate), Some(e)) = (fates.get_mut(i), valid.get(i))
        {
            *fate = Some(EntryFate::Conflict);
            // For a rename, say which user it was: the line carries the new name.
            let renamed = match who {
                Claimant::User(u) => current
                    .get(u)
                    .filter(|c| c.name.as_str() != e.name.as_str())
                    .map(|c| format!(" (user {} -> {})", c.name, e.name))
                    .unwrap_or_default(),
                Claimant::Entry(_) => String::new(),
            };
            let reason = match kind {
                KeyKind::Name => {
                    format!("not applied{renamed}: the user name {key} is also held by {others}")
                }
                KeyKind::LookAlike => format!(
                    "not applied{renamed}: the user name {} looks like the name of {others} (the same Unicode TR39 skeleton), and could pass for it; give one of them another name",
                    e.name
                ),
                KeyKind::Address => {
                    format!("not applied{renamed}: the address {key} is also held by {others}")
                }
            };
            report.push(
                e.name.to_string(),
                ReportAction::Conflict,
                reason,
                Some(e.dn.clone()),
            );
        }
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::DirectoryEntry;
    use crate::plan::CurrentUser;
    use crate::plan::entries::{check_entries, seen_ids};
    use crate::plan::keys::index_current;
    use crate::plan::matching::{Matching, link_states, match_by_id, match_by_name, targets};
    use crate::plan::tests::{entry, user};
    use crate::user::AuthMethod;

    /// Rules 1 to 4 as `plan_sync` runs them (no deletions), then rule 6.
    fn after_rule_6(
        users: &[CurrentUser],
        entries: Vec<DirectoryEntry>,
    ) -> (Vec<Option<EntryFate>>, Vec<Option<usize>>, Report) {
        let mut report = Report::default();
        let checked = check_entries(entries.into_iter().collect(), &mut report);
        let current = Current::new(users);
        let lookup = index_current(&current, "ldap");
        let links = link_states(
            users,
            "ldap",
            &seen_ids(&checked),
            &crate::plan::PlanScope::All,
        );
        let mut matching = Matching::new(checked.valid.len(), users.len());
        match_by_id(&checked.valid, &lookup, &mut matching);
        match_by_name(
            &checked.valid,
            &current,
            &lookup,
            &links,
            &mut matching,
            &mut report,
        );
        let mut targets = targets(&matching.fates, users.len());
        let deleted = vec![false; users.len()];
        let skeletons = Skeletons::new(
            &checked.valid,
            &current,
            &targets,
            &matching.fates,
            &deleted,
        );
        let holders = Holders {
            valid: &checked.valid,
            current: &current,
            by_name: &lookup.by_name,
            links: &links,
            deleted: &deleted,
            skeletons: &skeletons,
            two_threads_from: usize::MAX,
        };
        withdraw_conflicts(&holders, &mut targets, &mut matching.fates, &mut report);
        (matching.fates, targets, report)
    }

    #[test]
    fn a_chain_of_renames_into_a_held_name_is_withdrawn_round_by_round() {
        // a -> b, b -> c, and c is a local user: b's rename loses in the first round, b then holds "b"
        // again, and a's rename loses in the second.
        let users = [
            user(2, "a", &[], AuthMethod::Directory, Some("1")),
            user(3, "b", &[], AuthMethod::Directory, Some("2")),
            user(4, "c", &[], AuthMethod::Local, None),
        ];
        let (fates, targets, report) = after_rule_6(
            &users,
            vec![entry("1", Some("b"), &[]), entry("2", Some("c"), &[])],
        );
        assert_eq!(
            fates,
            [Some(EntryFate::Conflict), Some(EntryFate::Conflict)]
        );
        assert_eq!(targets, [None, None, None]);
        let reasons: Vec<&str> = report.lines.iter().map(|l| &*l.reason).collect();
        assert_eq!(
            reasons,
            [
                "not applied (user b -> c): the user name c is also held by user c",
                "not applied (user a -> b): the user name b is also held by user b",
            ]
        );
    }

    #[test]
    fn keys_that_change_hands_within_the_plan_are_not_conflicts() {
        let users = [
            user(2, "a", &["x@e.com"], AuthMethod::Directory, Some("1")),
            user(3, "b", &["y@e.com"], AuthMethod::Directory, Some("2")),
        ];
        let (_, targets, report) = after_rule_6(
            &users,
            vec![
                entry("1", Some("b"), &["y@e.com"]),
                entry("2", Some("a"), &["x@e.com"]),
            ],
        );
        assert_eq!(targets, [Some(0), Some(1)]);
        assert!(report.lines.is_empty(), "{:?}", report.lines);
    }

    #[test]
    fn new_entries_on_one_address_all_lose_and_list_each_other_by_dn() {
        let (fates, _, report) = after_rule_6(
            &[],
            vec![
                entry("2", Some("bo"), &["desk@x.com"]),
                entry("1", Some("al"), &["desk@x.com"]),
                entry("3", Some("cy"), &["own@x.com"]),
            ],
        );
        assert_eq!(
            fates,
            [
                Some(EntryFate::Conflict),
                Some(EntryFate::Conflict),
                Some(EntryFate::Create)
            ]
        );
        assert_eq!(report.counts.conflicts, 2);
        // Judged by DN: al's line comes first, and names bo.
        assert_eq!(report.lines[0].user, "al");
        assert_eq!(
            report.lines[0].reason,
            "not applied: the address desk@x.com is also held by the new entry uid=bo,ou=People"
        );
    }
}
