//! Rule 1: which entries can be planned at all, and which ids the read returned.

use super::keys::{
    FastMap, FastSet, distinct_email_keys, distinct_key, email_keys, fast_map, fast_set,
};
use super::report::Report;
use super::{ReportAction, ReportLine};
use crate::directory::DirectoryEntry;
use crate::names::{
    EMAIL_MAX_BYTES, EMAILS_MAX, EmailAddress, FULL_NAME_MAX_CHARS, NameError, UserName,
    dedup_emails, parse_full_name,
};

/// An entry that passed rule 1, with its comparison keys computed once.
pub(super) struct ValidEntry {
    pub(super) id: String,
    pub(super) dn: String,
    pub(super) name: UserName,
    /// See [`distinct_key`].
    name_key: Option<Box<str>>,
    pub(super) full_name: Option<String>,
    pub(super) emails: Option<Vec<EmailAddress>>,
    /// See [`distinct_email_keys`].
    email_keys: Option<Vec<Box<str>>>,
}

impl ValidEntry {
    pub(super) fn name_key(&self) -> &str {
        self.name_key.as_deref().unwrap_or(self.name.as_str())
    }

    /// The keys of the entry's addresses (none when the entry has no email attribute value).
    pub(super) fn email_keys(&self) -> impl Iterator<Item = &str> {
        email_keys(
            self.emails.as_deref().unwrap_or_default(),
            self.email_keys.as_deref(),
        )
    }
}

/// The entries after rule 1.
pub(super) struct CheckedEntries {
    /// In the order the directory returned them.
    pub(super) valid: Vec<ValidEntry>,
    /// Ids of entries that aren't planned but still count as seen (their users must not be deleted); the
    /// ids of valid entries are borrowed from `valid` instead of copied.
    pub(super) other_seen: Vec<String>,
}

/// What rule 1 makes of one entry.
enum Checked {
    Valid(ValidEntry),
    /// Not planned (reported); only its id counts, as seen.
    SeenOnly(String),
}

fn has_control(s: &str) -> bool {
    // `char::is_control` is Unicode's Cc: C0 (U+0000..U+001F), DEL and C1 (U+0080..U+009F). The first two
    // are single bytes and C1 is encoded as 0xC2 0x80..0x9F, so a string without any of those bytes (every
    // ASCII DN and id) is decided by one pass over its bytes instead of decoding it char by char: this
    // check ran over every entry's DN and id and was a tenth of a re-sync's planning at 100,000 users.
    s.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2) && s.chars().any(char::is_control)
}

/// Phase "check the entries", rule 1: an entry without a usable user name, or with a control character in
/// its DN or id, is skipped and reported; every copy of an id the directory returned more than once is a
/// conflict (which copy wins must not depend on the order of the answer). Every entry's id counts as
/// seen all the same, so skipping an entry never deletes its user. Invalid addresses and control
/// characters in a full name are dropped with a warning: the rest of the entry still applies.
///
/// The work on each entry that doesn't depend on the others is done by [`PreparedEntries::add`], as the
/// entries come (a sync does it on each page while the next is read); this decides the duplicated ids
/// once every entry is in, and writes the report's lines in the order of the entries.
pub(super) fn check_entries(prepared: PreparedEntries, report: &mut Report) -> CheckedEntries {
    let PreparedEntries { entries } = prepared;
    let duplicated = duplicated_ids(&entries);
    let mut other_seen: Vec<String> = Vec::new();
    // In place: a prepared entry's allocation holds its valid entry (no second buffer of 100,000 entries).
    let valid: Vec<ValidEntry> = entries
        .into_iter()
        .filter_map(|p| match p.finish(&duplicated, report) {
            Checked::Valid(e) => Some(e),
            Checked::SeenOnly(id) => {
                other_seen.push(id);
                None
            }
        })
        .collect();
    CheckedEntries { valid, other_seen }
}

/// Entries with rule 1's work on each of them done (all but the test of duplicated ids, which needs every
/// entry), in the order they were added: see [`check_entries`]. Public so that a sync can prepare the
/// entries of each page while the directory sends the next one, and plan with
/// [`super::plan_sync_prepared`] the moment the last page is in (issue 26, item 2).
#[derive(Default)]
pub struct PreparedEntries {
    entries: Vec<PreparedEntry>,
}

impl PreparedEntries {
    /// Prepares these entries, after the ones added before.
    pub fn add(&mut self, entries: impl IntoIterator<Item = DirectoryEntry>) {
        self.entries.extend(entries.into_iter().map(prepare_entry));
    }

    /// How many entries were added.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl std::fmt::Debug for PreparedEntries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PreparedEntries")
            .field("len", &self.entries.len())
            .finish()
    }
}

impl FromIterator<DirectoryEntry> for PreparedEntries {
    fn from_iter<I: IntoIterator<Item = DirectoryEntry>>(entries: I) -> Self {
        let mut prepared = PreparedEntries::default();
        prepared.add(entries);
        prepared
    }
}

/// One entry after rule 1's work on it alone.
struct PreparedEntry {
    /// What the entry is if its id turns out not to be duplicated.
    outcome: Checked,
    /// What is rarely there, boxed so that an ordinary entry costs one pointer more than its valid entry:
    /// the lines rule 1 reported about it, and what a conflict line would name.
    unusual: Option<Box<Unusual>>,
    /// A control character in its DN or id: skipped whether or not its id is duplicated.
    control: bool,
}

struct Unusual {
    lines: Vec<ReportLine>,
    /// The conflict line's user and DN, when they can't be taken from the valid entry: its user-name
    /// value as the directory gave it (the DN without one).
    conflict_user: Option<(String, String)>,
}

impl PreparedEntry {
    fn id(&self) -> &str {
        match &self.outcome {
            Checked::Valid(e) => &e.id,
            Checked::SeenOnly(id) => id,
        }
    }

    fn finish(self, duplicated: &FastSet<String>, report: &mut Report) -> Checked {
        let conflict = !self.control && duplicated.contains(self.id());
        let PreparedEntry {
            outcome, unusual, ..
        } = self;
        if conflict {
            let (user, dn, id) = match (outcome, unusual.and_then(|u| u.conflict_user)) {
                (Checked::Valid(e), None) => (e.name.into(), e.dn, e.id),
                (Checked::Valid(e), Some((user, dn))) => (user, dn, e.id),
                (Checked::SeenOnly(id), Some((user, dn))) => (user, dn, id),
                // Every entry that isn't valid keeps what its conflict line names (`prepare_entry`).
                (Checked::SeenOnly(id), None) => (id.clone(), String::new(), id),
            };
            report.push(
                user,
                ReportAction::Conflict,
                format!("the directory returned more than one entry with the id {id}"),
                Some(dn),
            );
            return Checked::SeenOnly(id);
        }
        if let Some(u) = unusual {
            for line in u.lines {
                report.push_line(line);
            }
        }
        outcome
    }
}

/// Ids that more than one entry carries.
fn duplicated_ids(entries: &[PreparedEntry]) -> FastSet<String> {
    let mut id_count: FastMap<&str, u32> = fast_map(entries.len());
    for e in entries {
        *id_count.entry(e.id()).or_default() += 1;
    }
    id_count
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| (*id).to_owned())
        .collect()
}

fn prepare_entry(entry: DirectoryEntry) -> PreparedEntry {
    let mut lines = Report::default();
    let (outcome, conflict_user) = check_entry(entry, &mut lines);
    // `check_entry` names no conflict user for exactly these: a valid entry names its own, and every other
    // entry skipped for what it holds keeps one.
    let control = matches!(outcome, Checked::SeenOnly(_)) && conflict_user.is_none();
    let unusual = (!lines.lines.is_empty() || conflict_user.is_some()).then(|| {
        Box::new(Unusual {
            lines: lines.lines,
            conflict_user,
        })
    });
    PreparedEntry {
        outcome,
        unusual,
        control,
    }
}

/// Rule 1 on one entry, but for duplicated ids; with what a conflict line would name when the outcome
/// doesn't hold it (`PreparedEntry::finish`).
fn check_entry(entry: DirectoryEntry, report: &mut Report) -> (Checked, Option<(String, String)>) {
    let DirectoryEntry {
        id,
        dn,
        name,
        full_name,
        emails,
    } = entry;
    if has_control(&id) || has_control(&dn) {
        report.push(
            dn.escape_default().to_string(),
            ReportAction::Skipped,
            "the entry's DN or id contains a control character",
            None,
        );
        // Never a conflict: skipped whether or not its id is duplicated.
        return (Checked::SeenOnly(id), None);
    }
    // The conflict line names the user-name value as the directory gave it, else the DN. Cloned only
    // on the rare paths: a valid entry holds its DN and (unless parsing changed it) its name.
    let conflict_user = |name: &Option<String>, dn: &String| {
        Some((name.clone().unwrap_or_else(|| dn.clone()), dn.clone()))
    };
    let raw_name = match name.as_deref().map(str::trim) {
        Some(n) if !n.is_empty() => n,
        _ => {
            let conflict = conflict_user(&name, &dn);
            report.push(
                dn.clone(),
                ReportAction::Skipped,
                "the entry has no value for the user-name attribute",
                Some(dn),
            );
            return (Checked::SeenOnly(id), conflict);
        }
    };
    let parsed = match UserName::parse(raw_name) {
        Ok(n) => n,
        Err(e) => {
            let conflict = conflict_user(&name, &dn);
            report.push(dn.clone(), ReportAction::Skipped, e.to_string(), Some(dn));
            return (Checked::SeenOnly(id), conflict);
        }
    };
    // Issue 19, item 6: a value over a limit skips the whole entry (its user stays as it is, and is still
    // seen), rather than being cut or dropped: a cut name or a lost address would be a change nobody made.
    if let Some(e) = over_limit(full_name.as_deref(), emails.as_deref()) {
        let conflict = conflict_user(&name, &dn);
        report.push(
            parsed.to_string(),
            ReportAction::Skipped,
            format!("not applied: {e}"),
            Some(dn),
        );
        return (Checked::SeenOnly(id), conflict);
    }
    let conflict = if name.as_deref() == Some(parsed.as_str()) {
        None
    } else {
        conflict_user(&name, &dn)
    };
    let name = parsed;
    let full_name = full_name.map(|f| {
        let f = f.trim();
        if has_control(f) {
            report.push(
                name.to_string(),
                ReportAction::Warning,
                "control characters removed from the full name",
                Some(dn.clone()),
            );
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
                Err(e) => report.push(
                    name.to_string(),
                    ReportAction::Warning,
                    format!("address ignored: {e}"),
                    Some(dn.clone()),
                ),
            }
        }
        dedup_emails(ok)
    });
    let email_keys = emails.as_deref().and_then(distinct_email_keys);
    (
        Checked::Valid(ValidEntry {
            id,
            dn,
            name_key: distinct_key(name.as_str()),
            name,
            full_name,
            emails,
            email_keys,
        }),
        conflict,
    )
}

/// The first of an entry's values that is over a limit of [`crate::names`]: the full name, the number of
/// addresses (counted before any is parsed, so that a huge list costs nothing), an address.
fn over_limit(full_name: Option<&str>, emails: Option<&[String]>) -> Option<NameError> {
    // Most full names are short in bytes, and so in characters: only a long one is parsed (and fails).
    if let Some(f) = full_name
        && f.len() > FULL_NAME_MAX_CHARS
        && let Err(e) = parse_full_name(f)
    {
        return Some(e);
    }
    let emails = emails.unwrap_or_default();
    if emails.len() > EMAILS_MAX {
        return Some(NameError::TooManyEmails(emails.len()));
    }
    // Only a value longer than the limit is parsed here (and fails on it); the rest are parsed once, below.
    emails
        .iter()
        .filter(|a| a.trim().len() > EMAIL_MAX_BYTES)
        .find_map(|a| EmailAddress::parse(a).err())
}

/// Every id the read returned, planned or not (rules 3 and 5 ask whether a user's own entry was seen).
pub(super) fn seen_ids(entries: &CheckedEntries) -> FastSet<&str> {
    let mut seen = fast_set(entries.valid.len() + entries.other_seen.len());
    seen.extend(
        entries
            .valid
            .iter()
            .map(|e| e.id.as_str())
            .chain(entries.other_seen.iter().map(String::as_str)),
    );
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::tests::entry;

    #[test]
    fn the_byte_test_for_control_characters_agrees_with_char_is_control_for_every_char() {
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            for s in [
                format!("{c}"),
                format!("uid=a{c}b,dc=x"),
                format!("\u{e9}{c}"),
            ] {
                assert_eq!(
                    has_control(&s),
                    s.chars().any(char::is_control),
                    "{c:?} in {s:?}"
                );
            }
        }
    }

    #[test]
    fn rule_1_skips_or_conflicts_unusable_entries_and_every_id_counts_as_seen() {
        let mut control = entry("c", Some("carl"), &[]);
        control.dn.push('\n');
        let mut bad_name = entry("n", Some("x"), &[]);
        bad_name.name = Some("   ".into());
        let mut warned = entry("w", Some(" wes "), &["no address", "w@x.com", "W@x.com"]);
        warned.full_name = Some(" W\u{7}es ".into());
        let entries = vec![
            control,
            entry("d", Some("dup1"), &[]),
            entry("d", Some("dup2"), &[]),
            bad_name,
            entry("no", None, &[]),
            warned,
        ];
        let mut report = Report::default();
        let checked = check_entries(entries.into_iter().collect(), &mut report);

        assert_eq!(report.counts.skipped, 3);
        assert_eq!(report.counts.conflicts, 2);
        let warnings = report
            .lines
            .iter()
            .filter(|l| l.action == ReportAction::Warning)
            .count();
        assert_eq!(warnings, 2, "{:?}", report.lines);

        assert_eq!(checked.valid.len(), 1);
        let wes = &checked.valid[0];
        assert_eq!(wes.name.as_str(), "wes");
        assert_eq!(wes.full_name.as_deref(), Some("Wes"));
        assert_eq!(wes.email_keys().collect::<Vec<_>>(), ["w@x.com"]);

        let mut seen: Vec<&str> = seen_ids(&checked).into_iter().collect();
        seen.sort_unstable();
        assert_eq!(seen, ["c", "d", "n", "no", "w"]);
    }
}
