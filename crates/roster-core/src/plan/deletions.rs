//! Rule 5: which users the run deletes.

use super::matching::LinkState;
use super::report::Report;
use super::report::deletion_reason;
use super::{CurrentUser, ReportAction, ReportCounts, ReportLine, UserDeletion, UserSuspension};
use crate::clock::Timestamp;
use crate::user::AuthMethod;
use std::borrow::Cow;

/// Phase "choose deletions", rule 5: with `delete_users`, the users linked to this source and
/// authenticated by the directory whose entry the read did not return, unless an entry took them by name
/// (rule 3) or they are the built-in administrator. A user authenticated locally stays: someone made it
/// able to log on without the directory. Returns indexes into `current`, in its order.
pub(super) fn users_to_delete(
    current: &[CurrentUser],
    links: &[LinkState],
    claimed: &[bool],
    delete_users: bool,
) -> Vec<usize> {
    if !delete_users {
        return Vec::new();
    }
    current
        .iter()
        .enumerate()
        .filter(|&(u, user)| {
            links.get(u) == Some(&LinkState::Gone)
                && user.auth == AuthMethod::Directory
                && !user.builtin_admin
                && !claimed.get(u).copied().unwrap_or(true)
        })
        .map(|(u, _)| u)
        .collect()
}

/// Phase "grace period": of the departed users (from [`users_to_delete`]), those deleted now and those
/// suspended now. Without a grace period every one is deleted. With one, a user not yet suspended is
/// suspended, and a suspended one is deleted once the period since their departure has passed; the
/// others stay suspended, with nothing to do.
pub(super) fn split_by_grace_period(
    current: &[CurrentUser],
    departed: Vec<usize>,
    delete_after_seconds: u64,
    now: Timestamp,
) -> (Vec<usize>, Vec<usize>) {
    if delete_after_seconds == 0 {
        return (departed, Vec::new());
    }
    let period = i64::try_from(delete_after_seconds).unwrap_or(i64::MAX);
    let mut delete = Vec::new();
    let mut suspend = Vec::new();
    for u in departed {
        match current.get(u).and_then(|user| user.departed_at) {
            None => suspend.push(u),
            Some(since) if since.plus_seconds(period) <= now => delete.push(u),
            Some(_) => {}
        }
    }
    (delete, suspend)
}

/// Phase "plan suspensions": the users suspended for the grace period, each with a line that says when
/// they will be deleted if their entry doesn't come back.
pub(super) fn plan_suspensions(
    current: &[CurrentUser],
    to_suspend: &[usize],
    delete_after_seconds: u64,
    now: Timestamp,
    report: &mut Report,
) -> Vec<UserSuspension> {
    let period = i64::try_from(delete_after_seconds).unwrap_or(i64::MAX);
    let mut suspended = Vec::with_capacity(to_suspend.len());
    for user in to_suspend.iter().filter_map(|&u| current.get(u)) {
        report.push(
            user.name.to_string(),
            ReportAction::Suspended,
            Cow::Owned(format!(
                "no longer found under the base DN with the filter: suspended (can't log on; privileges, folder and link kept); deleted by the first sync after {} that still doesn't find them, reactivated if their entry comes back",
                now.plus_seconds(period).to_rfc3339()
            )),
            user.link.as_ref().and_then(|l| l.dn.clone()),
        );
        suspended.push(UserSuspension {
            user_id: user.id,
            name: user.name.clone(),
        });
    }
    suspended
}

/// `to_delete` as a mask over `current` (rule 6 leaves deleted users out of the keys they held).
pub(super) fn deleted_mask(to_delete: &[usize], users: usize) -> Vec<bool> {
    let mut deleted = vec![false; users];
    for &u in to_delete {
        if let Some(d) = deleted.get_mut(u) {
            *d = true;
        }
    }
    deleted
}

/// Phase "plan deletions": the deletions and their report lines, each line with its user's id (see
/// [`order_report`](super::report::order_report)). A folder with messages is kept (rule 5); the store
/// decides it again by its count at the apply.
pub(super) fn plan_deletions(
    current: &[CurrentUser],
    to_delete: &[usize],
    counts: &mut ReportCounts,
) -> (Vec<UserDeletion>, Vec<(i64, ReportLine)>) {
    let mut deletions = Vec::with_capacity(to_delete.len());
    let mut lines = Vec::with_capacity(to_delete.len());
    for user in to_delete.iter().filter_map(|&u| current.get(u)) {
        let keep_folder = user.folder_messages > 0;
        counts.deleted += 1;
        if keep_folder {
            counts.folders_kept += 1;
        }
        lines.push((
            user.id,
            ReportLine {
                user: user.name.to_string(),
                action: ReportAction::Deleted,
                reason: Cow::Borrowed(deletion_reason(keep_folder)),
                dn: user.link.as_ref().and_then(|l| l.dn.clone()),
            },
        ));
        deletions.push(UserDeletion {
            user_id: user.id,
            name: user.name.clone(),
            keep_folder,
        });
    }
    (deletions, lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::{admin, user};

    #[test]
    fn rule_5_deletes_only_free_directory_users_whose_entry_is_gone() {
        let gone_admin = {
            let mut a = admin();
            a.auth = AuthMethod::Directory;
            a
        };
        let current = [
            user(2, "gone", &[], AuthMethod::Directory, Some("1")),
            user(3, "local", &[], AuthMethod::Local, Some("2")),
            user(4, "seen", &[], AuthMethod::Directory, Some("3")),
            user(5, "taken", &[], AuthMethod::Directory, Some("4")),
            gone_admin,
        ];
        let links = [
            LinkState::Gone,
            LinkState::Gone,
            LinkState::Seen,
            LinkState::Gone,
            LinkState::Gone,
        ];
        let claimed = [false, false, false, true, false];
        assert_eq!(users_to_delete(&current, &links, &claimed, true), [0]);
        assert!(users_to_delete(&current, &links, &claimed, false).is_empty());
        assert_eq!(deleted_mask(&[0, 3], 5), [true, false, false, true, false]);
    }

    #[test]
    fn a_deleted_users_folder_is_kept_when_it_holds_messages() {
        let mut full = user(3, "full", &[], AuthMethod::Directory, Some("2"));
        full.folder_messages = 1;
        let current = [
            user(2, "empty", &[], AuthMethod::Directory, Some("1")),
            full,
        ];
        let mut counts = ReportCounts::default();
        let (deletions, lines) = plan_deletions(&current, &[0, 1], &mut counts);
        assert_eq!(
            deletions.iter().map(|d| d.keep_folder).collect::<Vec<_>>(),
            [false, true]
        );
        assert_eq!((counts.deleted, counts.folders_kept), (2, 1));
        assert_eq!(lines[1].0, 3);
        assert_eq!(lines[1].1.reason, deletion_reason(true));
        assert_eq!(lines[0].1.dn.as_deref(), Some("uid=empty,ou=People"));
    }
}
