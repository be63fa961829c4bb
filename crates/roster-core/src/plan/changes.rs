//! Rule 4: what is created and what changes for the entries that survived the other rules, with their
//! report lines. Entries are consumed here: their strings move into the plan.

use super::entries::ValidEntry;
use super::matching::{EntryFate, MatchKind};
use super::report::Report;
use super::{CurrentUser, NewUser, ReportAction, UserUpdate};
use crate::user::DirectoryLink;
use std::borrow::Cow;

/// Phase "plan creates and updates": one [`NewUser`] per entry left to create, one [`UserUpdate`] per
/// matched user whose entry changes something, each with its line; matched users with nothing to change
/// are only counted. A matched user whose target rule 6 cleared is left alone (its line is the conflict).
pub(super) fn plan_creates_and_updates(
    valid: Vec<ValidEntry>,
    fates: Vec<Option<EntryFate>>,
    targets: &[Option<usize>],
    current: &[CurrentUser],
    source: &str,
    report: &mut Report,
) -> (Vec<NewUser>, Vec<UserUpdate>) {
    let mut create = Vec::with_capacity(
        fates
            .iter()
            .filter(|f| matches!(f, Some(EntryFate::Create)))
            .count(),
    );
    let mut update = Vec::new();
    report
        .lines
        .reserve(valid.len().min(current.len().max(1) * 2 + 1024));
    for (e, fate) in valid.into_iter().zip(fates) {
        match fate {
            Some(EntryFate::Create) => create.push(plan_create(e, source, report)),
            Some(EntryFate::Existing { user, kind }) => {
                let Some(u) = current.get(user) else { continue };
                if targets.get(user).copied().flatten().is_none() {
                    continue; // withdrawn
                }
                update.extend(plan_update(e, u, kind, source, report));
            }
            Some(EntryFate::Conflict) | None => {}
        }
    }
    (create, update)
}

/// A new user from entry `e` (rule 4: name, full name and addresses from the directory; the store adds
/// the default privileges).
fn plan_create(e: ValidEntry, source: &str, report: &mut Report) -> NewUser {
    report.push(
        e.name.to_string(),
        ReportAction::Created,
        Cow::Borrowed("new in the directory"),
        Some(e.dn.clone()),
    );
    NewUser {
        name: e.name,
        full_name: e.full_name.unwrap_or_default(),
        emails: e.emails.unwrap_or_default(),
        link: DirectoryLink {
            source: source.to_owned(),
            id: e.id,
            dn: Some(e.dn),
        },
    }
}

/// What entry `e` changes for user `u` (rule 4): the name, full name and addresses follow the directory
/// (an attribute the settings don't map leaves its field as it is), and the link follows the entry.
/// Privileges and the authentication method are never changed. `None` when nothing changes.
///
/// The line says the most telling thing that happened: linked by name (with what the user was linked to
/// before), else renamed, else updated.
fn plan_update(
    e: ValidEntry,
    u: &CurrentUser,
    kind: MatchKind,
    source: &str,
    report: &mut Report,
) -> Option<UserUpdate> {
    let rename = e.name.as_str() != u.name.as_str();
    let full_name = e.full_name.filter(|f| *f != u.full_name);
    let emails = e.emails.filter(|new| *new != u.emails);
    let dn_changed = u.link.as_ref().and_then(|l| l.dn.as_deref()) != Some(e.dn.as_str());
    let relinked = u
        .link
        .as_ref()
        .is_none_or(|l| l.source != source || l.id != e.id);
    let reactivate = u.departed_at.is_some();
    let mut what = Vec::new();
    if full_name.is_some() {
        what.push("full name");
    }
    if emails.is_some() {
        what.push("email addresses");
    }
    let (action, reason): (ReportAction, Cow<'static, str>) = if let Some(since) = u.departed_at {
        let mut r = format!(
            "back in the directory (suspended since {}): can log on again, with the same privileges and folder",
            since.to_rfc3339()
        );
        if kind == MatchKind::ByName && relinked {
            r.push_str("; matched by user name");
        }
        if rename {
            r.push_str(&format!("; renamed from {}", u.name));
        }
        if !what.is_empty() {
            r.push_str(&format!("; {} updated", what.join(" and ")));
        }
        (ReportAction::Reactivated, r.into())
    } else if kind == MatchKind::ByName && relinked {
        let was = match &u.link {
            Some(l) if l.source == source => format!(
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
        let mut r = format!("renamed in the directory from {}", u.name);
        if !what.is_empty() {
            r.push_str(&format!("; {} updated", what.join(" and ")));
        }
        (ReportAction::Renamed, r.into())
    } else if !what.is_empty() {
        (
            ReportAction::Updated,
            format!("{} changed in the directory", what.join(" and ")).into(),
        )
    } else if dn_changed || relinked {
        (
            ReportAction::Updated,
            Cow::Borrowed("moved in the directory (new DN)"),
        )
    } else {
        report.unchanged();
        return None;
    };
    report.push(e.name.to_string(), action, reason, Some(e.dn.clone()));
    Some(UserUpdate {
        user_id: u.id,
        old_name: u.name.clone(),
        name: rename.then_some(e.name),
        full_name,
        emails,
        link: DirectoryLink {
            source: source.to_owned(),
            id: e.id,
            dn: Some(e.dn),
        },
        reactivate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::entries::check_entries;
    use crate::plan::tests::{entry, user};
    use crate::user::AuthMethod;

    fn valid(entries: Vec<crate::directory::DirectoryEntry>) -> Vec<ValidEntry> {
        check_entries(entries.into_iter().collect(), &mut Report::default()).valid
    }

    #[test]
    fn a_new_entry_becomes_a_new_user_linked_to_it() {
        let mut report = Report::default();
        let e = valid(vec![entry("id", Some("ann"), &["a@x.com"])]);
        let (create, update) = plan_creates_and_updates(
            e,
            vec![Some(EntryFate::Create)],
            &[],
            &[],
            "ldap",
            &mut report,
        );
        assert!(update.is_empty());
        assert_eq!(create[0].name.as_str(), "ann");
        assert_eq!(create[0].full_name, "ann Full");
        assert_eq!(create[0].link.id, "id");
        assert_eq!(report.counts.created, 1);
    }

    #[test]
    fn an_update_carries_only_what_changed_and_says_the_most_telling_thing() {
        let mut u = user(2, "bob", &["b@x.com"], AuthMethod::Directory, Some("1"));
        u.full_name = "bob Full".into();
        let by_id = |name: &str, emails: &[&str], report: &mut Report| {
            let e = valid(vec![entry("1", Some(name), emails)]).remove(0);
            plan_update(e, &u, MatchKind::ById, "ldap", report)
        };
        let mut report = Report::default();
        assert_eq!(by_id("bob", &["b@x.com"], &mut report), None);
        assert_eq!(report.counts.unchanged, 1);

        let up = by_id("Bob", &["b@x.com", "c@x.com"], &mut report).unwrap();
        assert_eq!(up.name.as_ref().map(|n| n.as_str()), Some("Bob"));
        assert_eq!(up.full_name.as_deref(), Some("Bob Full"));
        assert_eq!(up.emails.as_ref().map(Vec::len), Some(2));
        assert_eq!(report.lines[0].action, ReportAction::Renamed);
        assert_eq!(
            report.lines[0].reason,
            "renamed in the directory from bob; full name and email addresses updated"
        );

        let manual = user(3, "carol", &[], AuthMethod::Local, None);
        let e = valid(vec![entry("9", Some("carol"), &[])]).remove(0);
        let up = plan_update(e, &manual, MatchKind::ByName, "ldap", &mut report).unwrap();
        assert_eq!(up.link.id, "9");
        assert_eq!(report.lines[1].action, ReportAction::Linked);
        assert_eq!(report.counts.linked, 1);
    }

    #[test]
    fn a_withdrawn_user_gets_no_update() {
        let users = [user(2, "a", &[], AuthMethod::Directory, Some("1"))];
        let mut report = Report::default();
        let (create, update) = plan_creates_and_updates(
            valid(vec![entry("1", Some("b"), &[])]),
            vec![Some(EntryFate::Existing {
                user: 0,
                kind: MatchKind::ById,
            })],
            &[None],
            &users,
            "ldap",
            &mut report,
        );
        assert!(create.is_empty() && update.is_empty());
        assert!(report.lines.is_empty());
    }
}
