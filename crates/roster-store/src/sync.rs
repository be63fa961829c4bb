//! What a synchronization reads from [`crate::Store`] and what applying its plan returns.

use roster_core::plan::CurrentUser;

/// What applying a plan decided that the plan could not know.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedPlan {
    /// Deleted users whose archive folder was decided otherwise than planned, with whether it was kept.
    /// A message count doesn't make a snapshot stale (the archive files messages all the time), so the
    /// count may change between the plan and the apply; the store keeps or deletes the folder by its
    /// count at the apply, and the run's report follows it.
    pub folders_decided_at_apply: Vec<(i64, bool)>,
}

/// The users as the planner sees them, and the version of the user database they were read at.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub version: i64,
    pub users: Vec<CurrentUser>,
}

/// The plan's new users in the order of their name keys, each with its key (computed once).
///
/// Why the order: the apply gives new users consecutive ids in this order, so the users table, its name
/// index and its skeleton index all grow at their right edge instead of taking 100,000 inserts at random
/// places of their B-trees. A directory hands entries out in its own order (creation, hash), which for
/// the indexes is as good as random: in SQLite, writing 100,000 users and their addresses in key order
/// took 0.29 s against 0.84 s in a random order (and 0.45 s in the benchmark's generated, nearly sorted,
/// directory). Ids carry no meaning beyond identity, so any order is as correct as any other.
pub(crate) fn new_users_in_key_order(
    create: &[roster_core::plan::NewUser],
) -> Vec<(String, &roster_core::plan::NewUser)> {
    let mut keyed: Vec<_> = create.iter().map(|u| (u.name.key(), u)).collect();
    keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    keyed
}

/// A row of `user_emails` to write: the address's key, its user, the address and its position among the
/// user's addresses.
pub(crate) struct AddressRow<'a> {
    pub key: String,
    pub user_id: i64,
    pub address: &'a str,
    pub position: i64,
}

/// These users' addresses as rows, in the order of their keys (the table's primary key), for the reason
/// given at [`new_users_in_key_order`].
pub(crate) fn addresses_in_key_order<'a>(
    users: impl Iterator<Item = (i64, &'a [roster_core::EmailAddress])>,
) -> Vec<AddressRow<'a>> {
    let mut rows: Vec<AddressRow<'a>> = users
        .flat_map(|(user_id, emails)| {
            (0_i64..).zip(emails).map(move |(position, e)| AddressRow {
                key: e.key(),
                user_id,
                address: e.as_str(),
                position,
            })
        })
        .collect();
    rows.sort_unstable_by(|a, b| a.key.cmp(&b.key));
    rows
}
