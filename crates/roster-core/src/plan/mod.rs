//! The sync planner: a pure function from (the users we have, the entries the directory returned, options)
//! to a [`SyncPlan`]. "Test Settings" shows the plan; "Synchronize now" applies the same plan in one
//! transaction. Keeping it pure means every rule below is tested with plain values, and the preview can't
//! drift from what the sync does.
//!
//! The rules, in order:
//! 1. An entry without a usable user name, or with a value over one of the limits of `names.rs` (a full
//!    name, an address, the number of addresses), is skipped and reported. Its id still counts as *seen*,
//!    so the user it belongs to is never deleted because of it.
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
//!    whose id the read did not return. A folder with messages is kept. With a grace period
//!    (`delete_after`), such a user is first *suspended* (departed since now: can't log on, keeps
//!    everything), and deleted only by a sync after the period that still doesn't see them; a suspended
//!    user whose entry comes back (rules 3 and 4) is reactivated.
//! 6. Uniqueness: after all of the above, any user name or address that two users would hold is a
//!    conflict for each change that would introduce it; those changes are withdrawn, all of a round's at
//!    once so that the result doesn't depend on the order keys are looked at, and the check repeats on
//!    the keys the withdrawn users fall back to until the result is consistent. Everything else still
//!    goes ahead. A name the plan gives to a user that looks like another user's or new entry's (the same
//!    Unicode TR39 skeleton, a different key: a Cyrillic `аdmin` beside `admin`) is such a conflict too.
//!
//! The planner runs as a sequence of phases, one per rule or step of a rule, each a function of its own
//! (in the files next to this one) with its own tests; `plan_sync` below is the order they run in.

mod changes;
mod deletions;
mod entries;
mod keys;
mod matching;
mod report;
#[cfg(test)]
mod tests;
mod touched;
mod uniqueness;

use crate::clock::Timestamp;
use crate::directory::DirectoryEntry;
use crate::names::{EmailAddress, UserName};
use crate::user::{AuthMethod, DirectoryLink};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

pub use entries::PreparedEntries;
pub use report::{correct_report_for_folders_decided_at_apply, deletion_reason};
pub use touched::Touched;

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
    /// Suspended since then: the directory stopped returning the user's entry, and the grace period
    /// before deletion is running.
    pub departed_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanOptions {
    /// The directory type the entries came from (`ldap`, `ldif`, …): ids are compared within one source.
    pub source: String,
    pub delete_users: bool,
    /// The grace period, in seconds: 0 deletes a departed user at once; more suspends them first.
    pub delete_after_seconds: u64,
    /// Now, for the grace period (the plan stays a function of its arguments).
    pub now: Timestamp,
    /// Which users the read speaks for.
    pub scope: PlanScope,
}

/// Which users a read speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PlanScope {
    /// A full read: a linked user whose entry was not returned has left (rule 5).
    #[default]
    All,
    /// A read of one user's entry (`roster sync --user`): only these users (by id) can have left. The
    /// entries of the others were not read, so they count as seen and unchanged: no other entry takes
    /// them over by name (rule 3), none is deleted, and their names and addresses stay taken.
    Only(Vec<i64>),
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
    /// A suspended user whose entry came back: can log on again.
    pub reactivate: bool,
}

/// A user whose entry the directory no longer returns, suspended for the grace period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSuspension {
    pub user_id: i64,
    pub name: UserName,
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
    pub suspend: Vec<UserSuspension>,
}

impl PlannedChanges {
    pub fn is_empty(&self) -> bool {
        self.create.is_empty()
            && self.update.is_empty()
            && self.delete.is_empty()
            && self.suspend.is_empty()
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
    /// Departed: suspended for the grace period before deletion.
    Suspended,
    /// A suspended user whose entry came back.
    Reactivated,
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
            ReportAction::Suspended => "suspended",
            ReportAction::Reactivated => "reactivated",
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
    /// Departed users suspended by this run (a grace period is set).
    #[serde(default)]
    pub suspended: u64,
    /// Suspended users whose entry came back.
    #[serde(default)]
    pub reactivated: u64,
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
    /// Where each deleted user's line is in `lines`, for
    /// [`correct_report_for_folders_decided_at_apply`]. Kept here rather than as a field of
    /// [`ReportLine`], which is stored and served as it is.
    pub deleted_lines: Vec<DeletedLine>,
}

/// A deleted user's line: `lines[line]` of its [`SyncPlan`] is about the user with id `user_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedLine {
    pub user_id: i64,
    pub line: usize,
}

/// Below this many entries and users together a plan is computed on one thread: a thread costs more than
/// it saves.
const TWO_THREADS_FROM: usize = 20_000;

/// Phase "check the entries" (rule 1, which starts the report) and phase "key the current users", on two
/// threads when the run is large. Pure like the rest: the result doesn't depend on which ends first.
fn checked_and_keyed(
    current: &[CurrentUser],
    entries: PreparedEntries,
    two_threads_from: usize,
) -> (entries::CheckedEntries, report::Report, keys::Current<'_>) {
    let large = current.len() + entries.len() >= two_threads_from && !current.is_empty();
    let check = move || {
        let mut report = report::Report::default();
        let checked = entries::check_entries(entries, &mut report);
        (checked, report)
    };
    if !large {
        let (checked, report) = check();
        return (checked, report, keys::Current::new(current));
    }
    std::thread::scope(|scope| {
        let checking = scope.spawn(check);
        let users = keys::Current::new(current);
        let (checked, report) = checking
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (checked, report, users)
    })
}

/// Plans a sync: the rules at the top of this file, one phase after the other. Pure: the same arguments
/// give the same plan, whatever order the directory answered in.
pub fn plan_sync(
    current: &[CurrentUser],
    entries: Vec<DirectoryEntry>,
    options: &PlanOptions,
) -> SyncPlan {
    plan_sync_prepared(current, entries.into_iter().collect(), options)
}

/// [`plan_sync`] of entries prepared as they were read ([`PreparedEntries::add`]): the same plan.
pub fn plan_sync_prepared(
    current: &[CurrentUser],
    entries: PreparedEntries,
    options: &PlanOptions,
) -> SyncPlan {
    plan_sync_threads_from(current, entries, options, TWO_THREADS_FROM)
}

/// [`plan_sync`], on two threads from `two_threads_from` entries and users (tests compare the two ways).
fn plan_sync_threads_from(
    current: &[CurrentUser],
    entries: PreparedEntries,
    options: &PlanOptions,
    two_threads_from: usize,
) -> SyncPlan {
    let source = options.source.as_str();

    // Rule 1, and the current users' comparison keys: neither needs the other, so a large run computes
    // them on two threads (after the read the directory server no longer needs a core; this was a fifth
    // of a re-sync's planning at 100,000 users). The report starts with rule 1's lines either way.
    let (checked, mut report, users) = checked_and_keyed(current, entries, two_threads_from);
    let links = {
        let seen = entries::seen_ids(&checked);
        matching::link_states(current, source, &seen, &options.scope)
    };
    let entries::CheckedEntries { valid, other_seen } = checked;
    drop(other_seen);
    let lookup = keys::index_current(&users, source);

    // Rules 2 and 3.
    let mut matched = matching::Matching::new(valid.len(), current.len());
    matching::conflict_duplicate_names(&valid, &mut matched, &mut report);
    matching::match_by_id(&valid, &lookup, &mut matched);
    matching::match_by_name(&valid, &users, &lookup, &links, &mut matched, &mut report);
    // Rule 4's pairing of users and entries.
    let mut targets = matching::targets(&matched.fates, current.len());

    // Rule 5.
    let departed =
        deletions::users_to_delete(current, &links, &matched.claimed, options.delete_users);
    let (to_delete, to_suspend) = deletions::split_by_grace_period(
        current,
        departed,
        options.delete_after_seconds,
        options.now,
    );
    let deleted = deletions::deleted_mask(&to_delete, current.len());

    // Rule 6.
    let skeletons = uniqueness::Skeletons::new(&valid, &users, &targets, &matched.fates, &deleted);
    let holders = uniqueness::Holders {
        valid: &valid,
        current: &users,
        by_name: &lookup.by_name,
        links: &links,
        deleted: &deleted,
        skeletons: &skeletons,
        two_threads_from,
    };
    uniqueness::withdraw_conflicts(&holders, &mut targets, &mut matched.fates, &mut report);
    drop(lookup);
    drop(users);

    // Rule 4's changes, then rule 5's, then the report in its order.
    let (create, update) = changes::plan_creates_and_updates(
        valid,
        matched.fates,
        &targets,
        current,
        source,
        &mut report,
    );
    let (delete, deletion_lines) =
        deletions::plan_deletions(current, &to_delete, &mut report.counts);
    let suspend = deletions::plan_suspensions(
        current,
        &to_suspend,
        options.delete_after_seconds,
        options.now,
        &mut report,
    );
    let (lines, deleted_lines) = report::order_report(report.lines, deletion_lines);
    SyncPlan {
        changes: PlannedChanges {
            create,
            update,
            delete,
            suspend,
        },
        counts: report.counts,
        lines,
        deleted_lines,
    }
}
