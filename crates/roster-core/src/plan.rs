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
//!    entry was seen is never taken over by another entry with its name.
//! 4. Targets: the name, full name and addresses follow the directory (a missing full-name or email
//!    attribute setting leaves them as they are). Privileges are never changed for existing users; new users
//!    get the defaults when the plan is applied.
//! 5. Deletion (only with `delete_users`): users linked to this source, authenticated by the directory,
//!    whose id the read did not return. A folder with messages is kept.
//! 6. Uniqueness: after all of the above, any user name or address that two users would hold is a
//!    conflict for each change that would introduce it; those changes are withdrawn and the check repeats
//!    until the result is consistent. Everything else still goes ahead.

use crate::directory::DirectoryEntry;
use crate::names::{EmailAddress, UserName, dedup_emails};
use crate::user::{AuthMethod, DirectoryLink};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

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
    pub reason: String,
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

/// An entry that passed rule 1.
struct ValidEntry {
    id: String,
    dn: String,
    name: UserName,
    full_name: Option<String>,
    emails: Option<Vec<EmailAddress>>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum MatchKind {
    ById,
    ByName,
}

/// What will become of one entry.
#[derive(Clone, Debug)]
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

pub fn plan_sync(
    current: &[CurrentUser],
    entries: Vec<DirectoryEntry>,
    options: &PlanOptions,
) -> SyncPlan {
    let mut lines = Vec::new();
    let mut counts = ReportCounts::default();
    let mut seen_ids: HashSet<String> = HashSet::with_capacity(entries.len());

    // Rule 1.
    let mut valid: Vec<ValidEntry> = Vec::with_capacity(entries.len());
    for entry in entries {
        if !seen_ids.insert(entry.id.clone()) {
            counts.skipped += 1;
            lines.push(ReportLine {
                user: entry.name.clone().unwrap_or_else(|| entry.dn.clone()),
                action: ReportAction::Skipped,
                reason: format!("the directory returned the id {} twice", entry.id),
                dn: Some(entry.dn),
            });
            continue;
        }
        let raw_name = match entry.name.as_deref() {
            Some(n) if !n.trim().is_empty() => n,
            _ => {
                counts.skipped += 1;
                lines.push(ReportLine {
                    user: entry.dn.clone(),
                    action: ReportAction::Skipped,
                    reason: "the entry has no value for the user-name attribute".into(),
                    dn: Some(entry.dn),
                });
                continue;
            }
        };
        let name = match UserName::parse(raw_name) {
            Ok(n) => n,
            Err(e) => {
                counts.skipped += 1;
                lines.push(ReportLine {
                    user: entry.dn.clone(),
                    action: ReportAction::Skipped,
                    reason: e.to_string(),
                    dn: Some(entry.dn),
                });
                continue;
            }
        };
        let emails = entry.emails.map(|raw| {
            let mut ok = Vec::with_capacity(raw.len());
            for value in raw {
                match EmailAddress::parse(&value) {
                    Ok(a) => ok.push(a),
                    Err(e) => lines.push(ReportLine {
                        user: name.to_string(),
                        action: ReportAction::Warning,
                        reason: format!("address ignored: {e}"),
                        dn: Some(entry.dn.clone()),
                    }),
                }
            }
            dedup_emails(ok)
        });
        valid.push(ValidEntry {
            id: entry.id,
            dn: entry.dn,
            name,
            full_name: entry.full_name.map(|f| f.trim().to_owned()),
            emails,
        });
    }

    // Rule 2.
    let mut fates: Vec<Option<EntryFate>> = vec![None; valid.len()];
    {
        let mut by_name: HashMap<String, Vec<usize>> = HashMap::with_capacity(valid.len());
        for (i, e) in valid.iter().enumerate() {
            by_name.entry(e.name.key()).or_default().push(i);
        }
        for group in by_name.values().filter(|g| g.len() > 1) {
            let dns: Vec<&str> = group
                .iter()
                .filter_map(|&i| valid.get(i).map(|e| e.dn.as_str()))
                .collect();
            for &i in group {
                if let (Some(e), Some(f)) = (valid.get(i), fates.get_mut(i)) {
                    *f = Some(EntryFate::Conflict);
                    counts.conflicts += 1;
                    lines.push(ReportLine {
                        user: e.name.to_string(),
                        action: ReportAction::Conflict,
                        reason: format!(
                            "{} directory entries have this user name: {}",
                            group.len(),
                            dns.join("; ")
                        ),
                        dn: Some(e.dn.clone()),
                    });
                }
            }
        }
    }

    // Rule 3: by id.
    let mut by_link: HashMap<&str, usize> = HashMap::with_capacity(current.len());
    let mut by_name: HashMap<String, usize> = HashMap::with_capacity(current.len());
    for (i, u) in current.iter().enumerate() {
        if let Some(link) = &u.link
            && link.source == options.source
        {
            by_link.insert(link.id.as_str(), i);
        }
        by_name.insert(u.name.key(), i);
    }
    let mut claimed: Vec<bool> = vec![false; current.len()];
    for (i, e) in valid.iter().enumerate() {
        let Some(fate) = fates.get_mut(i) else {
            continue;
        };
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
    // Rule 3: by name.
    for (i, e) in valid.iter().enumerate() {
        let Some(fate) = fates.get_mut(i) else {
            continue;
        };
        if fate.is_some() {
            continue;
        }
        let candidate = by_name.get(&e.name.key()).copied().filter(|&u| {
            let own_entry_seen = current
                .get(u)
                .and_then(|c| c.link.as_ref())
                .is_some_and(|l| l.source == options.source && seen_ids.contains(&l.id));
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

    // Rule 4: targets. `targets[u]` is the planned new state of current user `u`, if it changes.
    let mut targets: Vec<Option<(usize, MatchKind)>> = vec![None; current.len()];
    for (i, fate) in fates.iter().enumerate() {
        if let Some(EntryFate::Existing { user, kind }) = fate
            && let Some(t) = targets.get_mut(*user)
        {
            *t = Some((i, *kind));
        }
    }

    // Rule 5.
    let mut deletions: Vec<UserDeletion> = Vec::new();
    let mut deleted: Vec<bool> = vec![false; current.len()];
    if options.delete_users {
        for (u, user) in current.iter().enumerate() {
            let gone = user
                .link
                .as_ref()
                .is_some_and(|l| l.source == options.source && !seen_ids.contains(&l.id));
            if gone
                && user.auth == AuthMethod::Directory
                && !user.builtin_admin
                && !claimed.get(u).copied().unwrap_or(true)
            {
                if let Some(d) = deleted.get_mut(u) {
                    *d = true;
                }
                deletions.push(UserDeletion {
                    user_id: user.id,
                    name: user.name.clone(),
                    keep_folder: user.folder_messages > 0,
                });
            }
        }
    }

    // Rule 6: withdraw changes that would make a name or an address ambiguous, until none is.
    loop {
        let mut withdrawn: Vec<(usize, String)> = Vec::new();
        {
            // key -> (claimant, introduces?)
            let mut names: HashMap<String, Vec<(Claimant, bool)>> = HashMap::new();
            let mut addresses: HashMap<String, Vec<(Claimant, bool)>> = HashMap::new();
            for (u, user) in current.iter().enumerate() {
                if deleted.get(u).copied().unwrap_or(false) {
                    continue;
                }
                let planned = targets
                    .get(u)
                    .copied()
                    .flatten()
                    .and_then(|(i, _)| valid.get(i));
                let name = planned.map_or(&user.name, |e| &e.name);
                names
                    .entry(name.key())
                    .or_default()
                    .push((Claimant::User(u), name.key() != user.name.key()));
                let emails = planned
                    .and_then(|e| e.emails.as_ref())
                    .unwrap_or(&user.emails);
                for a in emails {
                    let introduces = !user.emails.iter().any(|o| o.key() == a.key());
                    addresses
                        .entry(a.key())
                        .or_default()
                        .push((Claimant::User(u), introduces));
                }
            }
            for (i, fate) in fates.iter().enumerate() {
                if !matches!(fate, Some(EntryFate::Create)) {
                    continue;
                }
                let Some(e) = valid.get(i) else { continue };
                names
                    .entry(e.name.key())
                    .or_default()
                    .push((Claimant::Entry(i), true));
                for a in e.emails.iter().flatten() {
                    addresses
                        .entry(a.key())
                        .or_default()
                        .push((Claimant::Entry(i), true));
                }
            }
            let label = |c: Claimant| -> String {
                match c {
                    Claimant::User(u) => current
                        .get(u)
                        .map(|x| format!("user {}", x.name))
                        .unwrap_or_default(),
                    Claimant::Entry(i) => valid
                        .get(i)
                        .map(|x| format!("the new entry {}", x.dn))
                        .unwrap_or_default(),
                }
            };
            for (what, map) in [("user name", &names), ("address", &addresses)] {
                for (key, claimants) in map.iter().filter(|(_, c)| c.len() > 1) {
                    for (c, introduces) in claimants {
                        if !introduces {
                            continue;
                        }
                        let others: Vec<String> = claimants
                            .iter()
                            .filter(|(o, _)| o != c)
                            .map(|(o, _)| label(*o))
                            .collect();
                        let entry = match c {
                            Claimant::Entry(i) => Some(*i),
                            Claimant::User(u) => targets.get(*u).copied().flatten().map(|(i, _)| i),
                        };
                        if let Some(i) = entry {
                            withdrawn.push((
                                i,
                                format!("the {what} {key} is also held by {}", others.join(", ")),
                            ));
                        }
                    }
                }
            }
        }
        if withdrawn.is_empty() {
            break;
        }
        withdrawn.sort();
        withdrawn.dedup_by(|a, b| a.0 == b.0);
        for (i, reason) in withdrawn {
            let Some(fate) = fates.get_mut(i) else {
                continue;
            };
            if let Some(EntryFate::Existing { user, .. }) = fate
                && let Some(t) = targets.get_mut(*user)
            {
                *t = None;
            }
            *fate = Some(EntryFate::Conflict);
            counts.conflicts += 1;
            if let Some(e) = valid.get(i) {
                lines.push(ReportLine {
                    user: e.name.to_string(),
                    action: ReportAction::Conflict,
                    reason: format!("not applied: {reason}"),
                    dn: Some(e.dn.clone()),
                });
            }
        }
    }

    // Build the changes and the report.
    let mut changes = PlannedChanges::default();
    for (i, fate) in fates.iter().enumerate() {
        let Some(e) = valid.get(i) else { continue };
        let link = DirectoryLink {
            source: options.source.clone(),
            id: e.id.clone(),
            dn: Some(e.dn.clone()),
        };
        match fate {
            Some(EntryFate::Create) => {
                counts.created += 1;
                lines.push(ReportLine {
                    user: e.name.to_string(),
                    action: ReportAction::Created,
                    reason: "new in the directory".into(),
                    dn: Some(e.dn.clone()),
                });
                changes.create.push(NewUser {
                    name: e.name.clone(),
                    full_name: e.full_name.clone().unwrap_or_default(),
                    emails: e.emails.clone().unwrap_or_default(),
                    link,
                });
            }
            Some(EntryFate::Existing { user, kind }) => {
                let Some(u) = current.get(*user) else {
                    continue;
                };
                if targets.get(*user).copied().flatten().is_none() {
                    continue; // withdrawn
                }
                let rename = (e.name.as_str() != u.name.as_str()).then(|| e.name.clone());
                let full_name = e.full_name.clone().filter(|f| *f != u.full_name);
                let emails = e.emails.clone().filter(|new| *new != u.emails);
                let dn_changed = u.link.as_ref().and_then(|l| l.dn.as_deref()) != Some(&e.dn);
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
                let (action, reason) = if *kind == MatchKind::ByName && relinked {
                    counts.linked += 1;
                    let was = match &u.link {
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
                    (ReportAction::Linked, r)
                } else if let Some(new) = &rename {
                    counts.renamed += 1;
                    let mut r = format!("renamed in the directory from {}", u.name);
                    if !what.is_empty() {
                        r.push_str(&format!("; {} updated", what.join(" and ")));
                    }
                    let _ = new;
                    (ReportAction::Renamed, r)
                } else if !what.is_empty() {
                    counts.updated += 1;
                    (
                        ReportAction::Updated,
                        format!("{} changed in the directory", what.join(" and ")),
                    )
                } else if dn_changed || relinked {
                    counts.updated += 1;
                    (
                        ReportAction::Updated,
                        "moved in the directory (new DN)".to_owned(),
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
                    name: rename,
                    full_name,
                    emails,
                    link,
                });
            }
            Some(EntryFate::Conflict) | None => {}
        }
    }
    for d in &deletions {
        counts.deleted += 1;
        if d.keep_folder {
            counts.folders_kept += 1;
        }
        lines.push(ReportLine {
            user: d.name.to_string(),
            action: ReportAction::Deleted,
            reason: if d.keep_folder {
                "no longer in the directory; the archive folder holds messages and is kept".into()
            } else {
                "no longer in the directory; the empty archive folder is deleted too".into()
            },
            dn: current
                .iter()
                .find(|u| u.id == d.user_id)
                .and_then(|u| u.link.as_ref())
                .and_then(|l| l.dn.clone()),
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

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Claimant {
    User(usize),
    Entry(usize),
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
}
