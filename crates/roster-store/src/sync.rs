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
