//! The report: lines and counts as the phases add them, their final order, and the correction made after
//! the store has applied the plan.

use super::keys::{FastMap, fast_map};
use super::{DeletedLine, PlannedChanges, ReportAction, ReportCounts, ReportLine};
use std::borrow::Cow;

/// The report as the phases build it. Every line is counted by its action as it is added, so a count and
/// its lines can't disagree.
#[derive(Debug, Default)]
pub(super) struct Report {
    pub(super) lines: Vec<ReportLine>,
    pub(super) counts: ReportCounts,
}

impl Report {
    pub(super) fn push(
        &mut self,
        user: String,
        action: ReportAction,
        reason: impl Into<Cow<'static, str>>,
        dn: Option<String>,
    ) {
        count(&mut self.counts, action);
        self.lines.push(ReportLine {
            user,
            action,
            reason: reason.into(),
            dn,
        });
    }

    /// A line made before, counted now (rule 1's lines, made while the entries were read).
    pub(super) fn push_line(&mut self, line: ReportLine) {
        count(&mut self.counts, line.action);
        self.lines.push(line);
    }

    /// An entry matched to a user that needs no change: counted, not listed.
    pub(super) fn unchanged(&mut self) {
        self.counts.unchanged += 1;
    }
}

/// Adds one line's action to the counts.
fn count(counts: &mut ReportCounts, action: ReportAction) {
    match action {
        ReportAction::Created => counts.created += 1,
        ReportAction::Updated => counts.updated += 1,
        ReportAction::Renamed => counts.renamed += 1,
        ReportAction::Linked => counts.linked += 1,
        ReportAction::Deleted => counts.deleted += 1,
        ReportAction::Suspended => counts.suspended += 1,
        ReportAction::Reactivated => counts.reactivated += 1,
        ReportAction::Conflict => counts.conflicts += 1,
        ReportAction::Skipped => counts.skipped += 1,
        // A warning goes with an entry that is counted by its own line or as unchanged.
        ReportAction::Warning => {}
    }
}

/// How many holders or DNs a conflict line names; the rest are counted. Without a limit, k entries on
/// one address (a shared mailbox on every entry is common) would give k lines of k names each.
const LISTED: usize = 5;

/// `items` joined with `sep`, the first [`LISTED`] of `total`, then "and N more".
pub(super) fn listed(items: impl Iterator<Item = String>, total: usize, sep: &str) -> String {
    let mut text = items.take(LISTED).collect::<Vec<_>>().join(sep);
    if total > LISTED {
        text.push_str(&format!(" and {} more", total - LISTED));
    }
    text
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

/// Phase "order the report": by action, then by user (the order the run's page shows), and where each
/// deleted user's line ends up. `deleted` holds the deletion lines with their user ids, in the order of
/// the plan's deletions.
///
/// The deletion lines are sorted apart and put where their action belongs, which gives the same order as
/// sorting them with the rest (a stable sort, and no other line is a deletion) while keeping track of
/// whose line each one is: [`correct_report_for_folders_decided_at_apply`] finds a user's line by that,
/// not by the name text.
pub(super) fn order_report(
    mut lines: Vec<ReportLine>,
    mut deleted: Vec<(i64, ReportLine)>,
) -> (Vec<ReportLine>, Vec<DeletedLine>) {
    lines.sort_by(|a, b| a.action.cmp(&b.action).then_with(|| a.user.cmp(&b.user)));
    if deleted.is_empty() {
        return (lines, Vec::new());
    }
    deleted.sort_by(|a, b| a.1.user.cmp(&b.1.user));
    let at = lines.partition_point(|l| l.action < ReportAction::Deleted);
    let positions = deleted
        .iter()
        .zip(at..)
        .map(|((user_id, _), line)| DeletedLine {
            user_id: *user_id,
            line,
        })
        .collect();
    lines.splice(at..at, deleted.into_iter().map(|(_, line)| line));
    (lines, positions)
}

/// Makes the report say what the store did with the folders it decided otherwise than planned: the store
/// decides a departed user's folder by its message count at the apply, which may have changed since the
/// snapshot (see `AppliedPlan::folders_decided_at_apply` in roster-store).
///
/// `decided` is (user id, folder kept); `deleted_lines` comes from the same [`SyncPlan`](super::SyncPlan)
/// as `changes`, and `lines` are that plan's lines in their order. A line is found by its user's id, not
/// by the name it shows. A decision that agrees with the plan, or about a user the plan doesn't delete,
/// changes nothing.
pub fn correct_report_for_folders_decided_at_apply(
    decided: &[(i64, bool)],
    changes: &PlannedChanges,
    deleted_lines: &[DeletedLine],
    counts: &mut ReportCounts,
    lines: &mut [ReportLine],
) {
    if decided.is_empty() {
        return;
    }
    let decided: FastMap<i64, bool> = decided.iter().copied().collect();
    // What the plan said, for the decided users only: there may be many deletions and few decisions.
    let mut planned: FastMap<i64, bool> = fast_map(decided.len());
    planned.extend(
        changes
            .delete
            .iter()
            .filter(|d| decided.contains_key(&d.user_id))
            .map(|d| (d.user_id, d.keep_folder)),
    );
    for at in deleted_lines {
        let (Some(&kept), Some(&was_kept)) = (decided.get(&at.user_id), planned.get(&at.user_id))
        else {
            continue;
        };
        let Some(line) = lines
            .get_mut(at.line)
            .filter(|l| l.action == ReportAction::Deleted)
        else {
            continue;
        };
        if kept == was_kept {
            continue;
        }
        if kept {
            counts.folders_kept += 1;
        } else {
            counts.folders_kept = counts.folders_kept.saturating_sub(1);
        }
        line.reason = deletion_reason(kept).into();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names::UserName;
    use crate::plan::UserDeletion;

    fn line(user: &str, action: ReportAction) -> ReportLine {
        ReportLine {
            user: user.into(),
            action,
            reason: "r".into(),
            dn: None,
        }
    }

    #[test]
    fn lines_are_counted_by_their_action() {
        let mut report = Report::default();
        report.push("a".into(), ReportAction::Conflict, "x", None);
        report.push("a".into(), ReportAction::Warning, "x", None);
        report.push("b".into(), ReportAction::Skipped, "x", None);
        report.unchanged();
        assert_eq!(
            report.counts,
            ReportCounts {
                conflicts: 1,
                skipped: 1,
                unchanged: 1,
                ..ReportCounts::default()
            }
        );
        assert_eq!(report.lines.len(), 3);
    }

    #[test]
    fn listed_names_a_few_and_counts_the_rest() {
        let items = (0..7).map(|i| i.to_string());
        assert_eq!(listed(items, 7, ", "), "0, 1, 2, 3, 4 and 2 more");
        assert_eq!(listed(["a".to_owned()].into_iter(), 1, ", "), "a");
    }

    #[test]
    fn deletion_lines_go_where_sorting_puts_them_and_are_tracked_by_user_id() {
        let lines = vec![
            line("z", ReportAction::Conflict),
            line("b", ReportAction::Created),
            line("a", ReportAction::Skipped),
        ];
        let deleted = vec![
            (7, line("y", ReportAction::Deleted)),
            (8, line("x", ReportAction::Deleted)),
        ];
        let mut all: Vec<ReportLine> = lines.clone();
        all.extend(deleted.iter().map(|(_, l)| l.clone()));
        all.sort_by(|a, b| a.action.cmp(&b.action).then_with(|| a.user.cmp(&b.user)));

        let (ordered, positions) = order_report(lines, deleted);
        assert_eq!(ordered, all);
        assert_eq!(
            positions,
            [
                DeletedLine {
                    user_id: 8,
                    line: 1
                },
                DeletedLine {
                    user_id: 7,
                    line: 2
                }
            ]
        );
    }

    /// The old correction (in roster-app) matched a deleted user's line by its name text. Here two
    /// deletion lines show the same text; only the decided user's line changes.
    #[test]
    fn a_folder_decided_at_apply_corrects_the_line_of_that_user_only() {
        let name = UserName::parse("bob").unwrap();
        let changes = PlannedChanges {
            delete: vec![
                UserDeletion {
                    user_id: 2,
                    name: name.clone(),
                    keep_folder: false,
                },
                UserDeletion {
                    user_id: 3,
                    name,
                    keep_folder: true,
                },
            ],
            ..PlannedChanges::default()
        };
        let mut lines = vec![
            line("alice", ReportAction::Created),
            ReportLine {
                reason: deletion_reason(false).into(),
                ..line("bob", ReportAction::Deleted)
            },
            ReportLine {
                reason: deletion_reason(true).into(),
                ..line("bob", ReportAction::Deleted)
            },
        ];
        let at = [
            DeletedLine {
                user_id: 2,
                line: 1,
            },
            DeletedLine {
                user_id: 3,
                line: 2,
            },
        ];
        let mut counts = ReportCounts {
            deleted: 2,
            folders_kept: 1,
            ..ReportCounts::default()
        };
        // User 2's folder got a message after the snapshot; user 3's decision agrees with the plan, and
        // user 9 isn't deleted by this plan.
        correct_report_for_folders_decided_at_apply(
            &[(2, true), (3, true), (9, false)],
            &changes,
            &at,
            &mut counts,
            &mut lines,
        );
        assert_eq!(counts.folders_kept, 2);
        assert_eq!(lines[1].reason, deletion_reason(true));
        assert_eq!(lines[2].reason, deletion_reason(true));
        assert_eq!(lines[0].reason, "r");

        // And back: a kept folder emptied before the apply is deleted.
        correct_report_for_folders_decided_at_apply(
            &[(3, false)],
            &changes,
            &at,
            &mut counts,
            &mut lines,
        );
        assert_eq!(counts.folders_kept, 1);
        assert_eq!(lines[2].reason, deletion_reason(false));
    }

    #[test]
    fn a_position_that_is_not_a_deletion_line_is_left_alone() {
        let changes = PlannedChanges {
            delete: vec![UserDeletion {
                user_id: 2,
                name: UserName::parse("bob").unwrap(),
                keep_folder: false,
            }],
            ..PlannedChanges::default()
        };
        let mut lines = vec![line("bob", ReportAction::Warning)];
        let mut counts = ReportCounts::default();
        correct_report_for_folders_decided_at_apply(
            &[(2, true)],
            &changes,
            &[DeletedLine {
                user_id: 2,
                line: 0,
            }],
            &mut counts,
            &mut lines,
        );
        assert_eq!(counts, ReportCounts::default());
        assert_eq!(lines[0].reason, "r");
    }
}
