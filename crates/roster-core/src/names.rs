//! User names and email addresses: the two things that must be unique, compared the way people expect.
//!
//! The limits below hold for every user, however made: by hand (API, CLI), through `roster_app`, which
//! parses with these types and functions, and by synchronization, whose rule 1 skips an entry over a limit
//! with a reason (issue 19, item 6). Values stored before a limit existed still load (`parse_existing`).

use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use unicode_normalization::UnicodeNormalization;

/// The most characters a user name may have. A user name names the user's archive folder and is in every
/// audit and report line about them; 256 holds any real account name, an address used as a name too.
pub const USER_NAME_MAX_CHARS: usize = 256;

/// The most characters a full name may have: Active Directory's `displayName` holds at most 256, and
/// LDAP's `cn` is usually held to 64. Nobody's name is longer; a longer one is an attack on the audit log,
/// which copies the full name at every change.
pub const FULL_NAME_MAX_CHARS: usize = 256;

/// The most bytes an address may have: an SMTP path is at most 256 octets with its angle brackets
/// (RFC 5321, section 4.5.3.1.3), which leaves 254 for the address. A longer one can't receive mail.
pub const EMAIL_MAX_BYTES: usize = 254;

/// The most addresses a user may have, counted as given. People have a handful (a primary address and a
/// few aliases, some shared mailboxes); a hundred leaves room for any real account.
pub const EMAILS_MAX: usize = 100;

/// What addresses could be before [`EMAIL_MAX_BYTES`] (issue 19): the limit for stored ones.
const EMAIL_MAX_BYTES_STORED: usize = 320;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the user name is empty")]
    EmptyUserName,
    #[error("the user name {0:?} is longer than {max} characters; choose a shorter one", max = USER_NAME_MAX_CHARS)]
    UserNameTooLong(String),
    #[error("the user name {0:?} contains a control character or a line break")]
    UserNameControlCharacter(String),
    #[error(
        "the user name {0:?} contains a slash or a backslash; user names name archive folders, so they can't hold path separators: choose another name"
    )]
    UserNamePathSeparator(String),
    #[error(
        "the user name {0:?} is not allowed: it names a folder relative to another (. or ..); choose another name"
    )]
    UserNameDots(String),
    #[error("the full name is {0} characters long, longer than {max}; shorten it", max = FULL_NAME_MAX_CHARS)]
    FullNameTooLong(usize),
    #[error(
        "{0:?} is not a valid email address: it needs one '@' with a local part before it and a domain after it, and no spaces"
    )]
    InvalidEmail(String),
    #[error(
        "the address {0:?} is longer than {max} bytes, the most an SMTP path can carry (RFC 5321); it can't receive mail: correct or remove it",
        max = EMAIL_MAX_BYTES
    )]
    EmailTooLong(String),
    #[error("{0} email addresses given, more than {max}; remove some", max = EMAILS_MAX)]
    TooManyEmails(usize),
}

impl NameError {
    /// A value over one of the limits above (as opposed to a malformed one): synchronization skips the
    /// entry that holds it rather than dropping the value.
    pub fn is_over_limit(&self) -> bool {
        matches!(
            self,
            NameError::UserNameTooLong(_)
                | NameError::FullNameTooLong(_)
                | NameError::EmailTooLong(_)
                | NameError::TooManyEmails(_)
        )
    }
}

/// The start of a value for an error message: a megabyte-long value must not be copied into every report
/// line and log record that mentions it.
fn excerpt(value: &str) -> String {
    const SHOWN: usize = 40;
    match value.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}…", value.get(..end).unwrap_or_default()),
        None => value.to_owned(),
    }
}

/// A user name: trimmed, in Unicode NFC, non-empty, without control characters, at most
/// [`USER_NAME_MAX_CHARS`] characters, and usable as a folder name as it is: no `/` or `\`, not `.` or
/// `..`. Equality and uniqueness use [`UserName::key`] (case-insensitive), while the name keeps the
/// spelling it was given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserName(String);

impl UserName {
    /// A new name, held to every rule above.
    pub fn parse(raw: &str) -> Result<UserName, NameError> {
        let name = UserName::parse_existing(raw)?;
        // A user's archive folder is named after the user (issue 19, item 11): a name that is a path, or
        // climbs out of one, must not become a folder name. Refused rather than mapped to a safe folder
        // name: a mapped name would be a second name for the same user, and two users could map to one.
        if name.0.contains(['/', '\\']) {
            return Err(NameError::UserNamePathSeparator(name.0));
        }
        if name.0 == "." || name.0 == ".." {
            return Err(NameError::UserNameDots(name.0));
        }
        Ok(name)
    }

    /// A name as the user database may hold it: the rules before issue 19 (without the path rules of
    /// [`UserName::parse`]), so that users stored earlier still load, and can be found, changed and
    /// deleted. Never for a name being given to a user.
    pub fn parse_existing(raw: &str) -> Result<UserName, NameError> {
        let name = nfc(raw.trim());
        if name.is_empty() {
            return Err(NameError::EmptyUserName);
        }
        if name.chars().count() > USER_NAME_MAX_CHARS {
            return Err(NameError::UserNameTooLong(excerpt(&name)));
        }
        if name
            .chars()
            .any(|c| c.is_control() || is_invisible_format(c))
        {
            return Err(NameError::UserNameControlCharacter(name));
        }
        Ok(UserName(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The comparison key: `Alice` and `alice` are the same user.
    pub fn key(&self) -> String {
        name_key(&self.0)
    }

    /// The built-in administrator's name.
    pub fn admin() -> UserName {
        UserName(ADMIN_NAME.to_owned())
    }

    pub fn is_admin(&self) -> bool {
        self.key() == ADMIN_NAME
    }

    /// The Unicode TR39 skeleton of the name's key: two names that look alike (`admin`, and `аdmin` with
    /// a Cyrillic `а`) have the same one. See [`skeleton`].
    pub fn skeleton(&self) -> String {
        skeleton(&self.key()).into_owned()
    }
}

pub const ADMIN_NAME: &str = "admin";

/// Case-insensitive key of a user name or address: NFC, then Unicode simple case folding, then NFC again
/// (folding can produce decomposed sequences). Folding is lowercasing plus [`fold_lowercase`]: Rust's
/// `to_lowercase` turns a word-final Σ into ς, and leaves a few letters (ſ, µ, ϐ, …) that are case
/// variants of others as they are, so "ΝΙΚΟΣ_Π" and "νικοσ_π" would be two users.
///
/// Stored keys depend on this function: a change to it needs the store to re-key (see `refold_keys` in
/// roster-store, and its `KEYS_FOLDED` version).
pub fn name_key(raw: &str) -> String {
    let raw = raw.trim();
    // ASCII is already in NFC and lowercases to ASCII: the common case costs one allocation.
    if raw.is_ascii() {
        return raw.to_ascii_lowercase();
    }
    let nfc: String = raw.nfc().collect();
    nfc.to_lowercase()
        .chars()
        .map(fold_lowercase)
        .nfc()
        .collect()
}

/// The letters whose simple case folding (Unicode's CaseFolding.txt, status C and S) differs from their
/// lowercase, mapped to their folding. The list is every such code point (generated with Perl's
/// `Unicode::UCD::casefold` against `lc`, Unicode 14; later versions added no more).
fn fold_lowercase(c: char) -> char {
    match c {
        '\u{00B5}' => '\u{03BC}',              // micro sign -> mu
        '\u{017F}' => 's',                     // long s
        '\u{0345}' | '\u{1FBE}' => '\u{03B9}', // ypogegrammeni, prosgegrammeni -> iota
        '\u{03C2}' => '\u{03C3}',              // final sigma -> sigma
        '\u{03D0}' => '\u{03B2}',
        '\u{03D1}' => '\u{03B8}',
        '\u{03D5}' => '\u{03C6}',
        '\u{03D6}' => '\u{03C0}',
        '\u{03F0}' => '\u{03BA}',
        '\u{03F1}' => '\u{03C1}',
        '\u{03F5}' => '\u{03B5}',
        '\u{1C80}' => '\u{0432}',
        '\u{1C81}' => '\u{0434}',
        '\u{1C82}' => '\u{043E}',
        '\u{1C83}' => '\u{0441}',
        '\u{1C84}' | '\u{1C85}' => '\u{0442}',
        '\u{1C86}' => '\u{044A}',
        '\u{1C87}' => '\u{0463}',
        '\u{1C88}' => '\u{A64B}',
        '\u{1E9B}' => '\u{1E61}',
        other => other,
    }
}

/// Whether a trimmed name or address is its own [`name_key`]: lowercase ASCII (no normalization can change
/// it). True for most, which lets the planner skip storing a second copy.
pub fn is_own_key(text: &str) -> bool {
    text.is_ascii()
        && !text.bytes().any(|b| b.is_ascii_uppercase())
        && text.trim().len() == text.len()
}

/// The Unicode TR39 skeleton (UTS #39, section 4) of a name or address key ([`name_key`]): names whose
/// skeletons are equal look alike, though their keys differ (`paypal` and `pаypal` with a Cyrillic `а`,
/// `admin` and `adrnin`). Computed on the case-folded key, so that the comparison is as case-insensitive
/// as the key's. The mapping is the `unicode-security` crate's (the Rust project's own, which rustc's
/// confusable-identifier lint uses), and follows the Unicode version of its tables.
///
/// A key that is already its skeleton is borrowed: most names are ASCII, and only eight ASCII characters
/// have a prototype (see [`ascii_prototype`], checked against the crate by a test).
pub fn skeleton(key: &str) -> Cow<'_, str> {
    if key.is_ascii() {
        if !key.chars().any(|c| ascii_prototype(c).is_some()) {
            return Cow::Borrowed(key);
        }
        let mut out = String::with_capacity(key.len() + 8);
        for c in key.chars() {
            match ascii_prototype(c) {
                Some(p) => out.push_str(p),
                None => out.push(c),
            }
        }
        return Cow::Owned(out);
    }
    Cow::Owned(unicode_security::skeleton(key).collect())
}

/// The skeleton as the store keeps it beside the key (`users.name_skeleton`): `None` when it is the key
/// itself, as for most names, so that only the names that could look like others hold a value. A store
/// finds the users whose names look like a skeleton `s` by `name_skeleton = s OR name_key = s`.
pub fn stored_skeleton(key: &str) -> Option<String> {
    match skeleton(key) {
        Cow::Borrowed(_) => None,
        Cow::Owned(s) if s == key => None,
        Cow::Owned(s) => Some(s),
    }
}

/// Whether two name keys ([`name_key`]) look alike: different keys with the same [`skeleton`], one of
/// them not all ASCII. Two ASCII names are never look-alikes: TR39 maps `rn` to `m` and `1` to `l`, and
/// `jdoe1` beside `jdoel` or `brn` beside `bm` are ordinary accounts in real directories, told apart by
/// anyone who reads them with care; the attack this guards against is a name in another script
/// (a Cyrillic `аdmin`) that can't be told apart at all.
pub fn look_alike(a: &str, b: &str) -> bool {
    a != b && !(a.is_ascii() && b.is_ascii()) && skeleton(a) == skeleton(b)
}

/// The TR39 prototypes of the ASCII characters that have one (confusables.txt); a prototype of ASCII
/// characters is already in NFD, so an ASCII key's skeleton needs no normalization.
fn ascii_prototype(c: char) -> Option<&'static str> {
    match c {
        '"' => Some("''"),
        '%' => Some("\u{B0}/\u{2080}"),
        '0' => Some("O"),
        '1' | 'I' | '|' => Some("l"),
        '`' => Some("'"),
        'm' => Some("rn"),
        _ => None,
    }
}

/// NFC, without the normalizer's cost for ASCII text (which is always in NFC).
fn nfc(raw: &str) -> String {
    if raw.is_ascii() {
        raw.to_owned()
    } else {
        raw.nfc().collect()
    }
}

/// Whether `s` holds white space, a control character or an invisible format character (none of which
/// an address may hold).
fn has_space_control_or_invisible(s: &str) -> bool {
    if s.is_ascii() {
        // Byte by byte for ASCII, the common case (every address is checked at every sync): ASCII's white
        // space is ' ' and controls, and no ASCII character is an invisible format character.
        s.bytes().any(|b| b <= b' ' || b == 0x7f)
    } else {
        s.chars()
            .any(|c| c.is_whitespace() || c.is_control() || is_invisible_format(c))
    }
}

/// Characters that print as nothing (zero-width space, joiners, direction marks, BOM): a name holding one
/// could pass for another (`admin` followed by U+200B).
fn is_invisible_format(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}')
}

impl TryFrom<String> for UserName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        UserName::parse(&value)
    }
}

impl From<UserName> for String {
    fn from(value: UserName) -> Self {
        value.0
    }
}

impl std::fmt::Display for UserName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address. Validation is deliberately simple (one `@`, non-empty parts, no whitespace or control
/// characters, a dot-free domain allowed for intranets): directories hold what mail servers accept, and a
/// stricter check would reject real addresses. Uniqueness uses the lowercase [`EmailAddress::key`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EmailAddress(String);

impl EmailAddress {
    /// A new address: see [`EMAIL_MAX_BYTES`].
    pub fn parse(raw: &str) -> Result<EmailAddress, NameError> {
        EmailAddress::parse_with_limit(raw, EMAIL_MAX_BYTES)
    }

    /// An address as the user database may hold it: up to 320 bytes, the limit before issue 19, so that
    /// users stored earlier still load. Never for an address being given to a user.
    pub fn parse_existing(raw: &str) -> Result<EmailAddress, NameError> {
        EmailAddress::parse_with_limit(raw, EMAIL_MAX_BYTES_STORED)
    }

    fn parse_with_limit(raw: &str, max_bytes: usize) -> Result<EmailAddress, NameError> {
        let trimmed = raw.trim();
        // Before anything else: a value over the limit is that, whatever else is wrong with it.
        if trimmed.len() > max_bytes {
            return Err(NameError::EmailTooLong(excerpt(trimmed)));
        }
        let addr = nfc(trimmed);
        let invalid = || NameError::InvalidEmail(excerpt(raw));
        let (local, domain) = addr.rsplit_once('@').ok_or_else(invalid)?;
        if local.is_empty()
            || domain.is_empty()
            || domain.contains('@') && !local.starts_with('"')
            || local.contains('@') && !local.starts_with('"')
            || has_space_control_or_invisible(&addr)
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(invalid());
        }
        if addr.len() > max_bytes {
            // NFC can lengthen a few scripts' text.
            return Err(NameError::EmailTooLong(excerpt(&addr)));
        }
        Ok(EmailAddress(addr))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn key(&self) -> String {
        name_key(&self.0)
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        EmailAddress::parse(&value)
    }
}

impl From<EmailAddress> for String {
    fn from(value: EmailAddress) -> Self {
        value.0
    }
}

impl std::fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A full name as given: trimmed, at most [`FULL_NAME_MAX_CHARS`] characters.
pub fn parse_full_name(raw: &str) -> Result<String, NameError> {
    let full_name = raw.trim();
    let chars = full_name.chars().count();
    if chars > FULL_NAME_MAX_CHARS {
        return Err(NameError::FullNameTooLong(chars));
    }
    Ok(full_name.to_owned())
}

/// A user's addresses as given: at most [`EMAILS_MAX`] values (counted before deduplication, so that a
/// huge list is refused before any of it is parsed), each valid, deduplicated as [`dedup_emails`] does.
pub fn parse_emails<S: AsRef<str>>(raw: &[S]) -> Result<Vec<EmailAddress>, NameError> {
    if raw.len() > EMAILS_MAX {
        return Err(NameError::TooManyEmails(raw.len()));
    }
    let parsed = raw
        .iter()
        .map(|e| EmailAddress::parse(e.as_ref()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(dedup_emails(parsed))
}

/// Deduplicates addresses case-insensitively, keeping the first spelling and the order.
pub fn dedup_emails(addresses: impl IntoIterator<Item = EmailAddress>) -> Vec<EmailAddress> {
    let mut seen = std::collections::BTreeSet::new();
    addresses
        .into_iter()
        .filter(|a| seen.insert(a.key()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ascii_test_for_space_and_controls_in_addresses_agrees_with_the_char_test() {
        let by_char = |s: &str| {
            s.chars()
                .any(|c| c.is_whitespace() || c.is_control() || is_invisible_format(c))
        };
        for c in (0..=u32::from(char::MAX)).filter_map(char::from_u32) {
            for s in [format!("a{c}b@example.com"), format!("{c}")] {
                assert_eq!(has_space_control_or_invisible(&s), by_char(&s), "{c:?}");
            }
        }
    }

    #[test]
    fn names_compare_case_insensitively_in_nfc() {
        let a = UserName::parse("Alice").unwrap();
        let b = UserName::parse(" alice ").unwrap();
        assert_eq!(a.key(), b.key());
        // "é" precomposed vs "e" + combining acute
        let c = UserName::parse("Ren\u{e9}").unwrap();
        let d = UserName::parse("rene\u{301}").unwrap();
        assert_eq!(c.key(), d.key());
        assert_eq!(d.as_str(), "rene\u{301}".nfc().collect::<String>());
        assert!(UserName::parse("  ").is_err());
        assert!(UserName::parse("a\nb").is_err());
        assert!(
            UserName::parse("admin\u{200B}").is_err(),
            "invisible characters"
        );
        assert_eq!(name_key(" MiXed "), "mixed");
    }

    /// Regression (planner review of issue 4): keys were lowercase, not case-folded, so names that are
    /// equal case-insensitively got different keys (a word-final Σ lowercases to ς).
    #[test]
    fn keys_are_case_folded() {
        for (a, b) in [
            (
                "\u{39d}\u{399}\u{39a}\u{39f}\u{3a3}_\u{3a0}",
                "\u{3bd}\u{3b9}\u{3ba}\u{3bf}\u{3c3}_\u{3c0}",
            ), // ΝΙΚΟΣ_Π, νικοσ_π
            (
                "\u{3bd}\u{3b9}\u{3ba}\u{3bf}\u{3c2}",
                "\u{3bd}\u{3b9}\u{3ba}\u{3bf}\u{3c3}",
            ), // final sigma
            ("\u{17f}am", "sam"),
            ("\u{b5}a", "\u{3bc}a"),
            ("\u{1c80}ова", "вова"),
        ] {
            assert_eq!(name_key(a), name_key(b), "{a} / {b}");
        }
        // Full folding is not simple folding: ß stays ß.
        assert_ne!(name_key("stra\u{df}e"), name_key("strasse"));
    }

    #[test]
    fn emails() {
        assert!(EmailAddress::parse("a@example.com").is_ok());
        assert!(EmailAddress::parse("a@localhost").is_ok());
        for bad in [
            "",
            "a",
            "@x",
            "a@",
            "a b@x.com",
            "a@@x",
            "a@x..com",
            "a@.x",
            "a@b@c",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad}");
        }
        let d = dedup_emails(
            ["A@x.com", "a@X.com", "b@x.com"]
                .iter()
                .map(|s| EmailAddress::parse(s).unwrap()),
        );
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].as_str(), "A@x.com");
    }

    /// Issue 19, item 6: there was no limit on a full name or the number of addresses, and addresses
    /// could be 320 bytes. Errors show the start of an over-long value, not all of it.
    #[test]
    fn issue_19_item_6_values_are_held_to_limits() {
        assert_eq!(parse_full_name(&"f".repeat(256)).unwrap().len(), 256);
        assert_eq!(
            parse_full_name(&"\u{e9}".repeat(257)),
            Err(NameError::FullNameTooLong(257))
        );
        assert_eq!(parse_full_name("  Ann Lee ").unwrap(), "Ann Lee");

        let at_limit = format!("{}@x.org", "a".repeat(254 - 6));
        assert!(EmailAddress::parse(&at_limit).is_ok());
        let over = format!("a{at_limit}");
        let err = EmailAddress::parse(&over).unwrap_err();
        assert!(matches!(err, NameError::EmailTooLong(_)) && err.is_over_limit());
        assert!(err.to_string().len() < 250, "{err}");
        // Stored before the limit: still loads.
        assert!(EmailAddress::parse_existing(&over).is_ok());
        // A megabyte that isn't an address at all is over the limit first.
        assert!(matches!(
            EmailAddress::parse(&"x".repeat(1 << 20)),
            Err(NameError::EmailTooLong(_))
        ));

        let hundred: Vec<String> = (0..100).map(|i| format!("u{i}@x.org")).collect();
        assert_eq!(parse_emails(&hundred).unwrap().len(), 100);
        let mut more = hundred.clone();
        more.push("U0@X.org".into());
        assert_eq!(parse_emails(&more), Err(NameError::TooManyEmails(101)));
        assert_eq!(parse_emails(&["A@x.org", "a@X.org"]).unwrap().len(), 1);

        let long = "n".repeat(1 << 20);
        let err = UserName::parse(&long).unwrap_err();
        assert!(err.is_over_limit() && err.to_string().len() < 200, "{err}");
        assert!(UserName::parse(&"\u{4e2d}".repeat(256)).is_ok());
    }

    /// Issue 19, item 11: a user name names its archive folder, and `../x` or `a/b` were accepted.
    #[test]
    fn issue_19_item_11_names_that_are_paths_are_refused() {
        for bad in [
            "a/b", "/", "../etc", "dom\\ann", ".", "..", " .. ", "x/../y",
        ] {
            let err = UserName::parse(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    NameError::UserNamePathSeparator(_) | NameError::UserNameDots(_)
                ),
                "{bad}: {err}"
            );
            // Stored before the rule: still loads, and can be found and deleted.
            assert!(UserName::parse_existing(bad).is_ok(), "{bad}");
        }
        for good in ["a.b", "..a", "a..", ".x", "j.doe", "admin"] {
            assert!(UserName::parse(good).is_ok(), "{good}");
        }
        // No NUL either (a control character).
        assert!(UserName::parse("a\0b").is_err());
    }

    /// Issue 19, item 11: a Cyrillic `аdmin` and `admin` were two unrelated names.
    #[test]
    fn issue_19_item_11_look_alike_names_share_a_skeleton() {
        let skel = |n: &str| UserName::parse(n).unwrap().skeleton();
        assert_eq!(skel("\u{430}dmin"), skel("admin"));
        assert_eq!(skel("\u{410}DMIN"), skel("Admin"), "compared case-folded");
        assert_eq!(skel("p\u{430}yp\u{430}l"), skel("paypal"));
        assert_eq!(skel("b\u{3bf}b"), skel("b\u{43e}b"), "Greek and Cyrillic o");
        assert_eq!(skel("adrnin"), skel("admin"));
        assert_eq!(skel("user1"), skel("userl"));
        assert_ne!(skel("bob"), skel("rob"));
        assert_ne!(
            skel("ren\u{e9}"),
            skel("rene"),
            "an accent is not a look-alike"
        );
        assert!(matches!(skeleton("plain"), Cow::Borrowed("plain")));
    }

    /// Two ASCII names share a skeleton often enough (`jdoe1`, `jdoel`) to be ordinary accounts; only a
    /// pair with a non-ASCII name counts as look-alikes.
    #[test]
    fn look_alikes_need_a_name_that_is_not_all_ascii() {
        assert!(look_alike("\u{430}dmin", "admin"));
        assert!(look_alike("admin", "\u{430}dmin"));
        assert!(look_alike("b\u{3bf}b", "b\u{43e}b"));
        assert!(
            look_alike("\u{430}drnin", "admin"),
            "one non-ASCII name is enough"
        );
        assert!(!look_alike("jdoe1", "jdoel"));
        assert!(!look_alike("adrnin", "admin"));
        assert!(
            !look_alike("admin", "admin"),
            "the same key is a duplicate, not a look-alike"
        );
        assert!(!look_alike("ren\u{e9}", "rene"));
    }

    /// The ASCII fast path of [`skeleton`] is the crate's mapping: checked for every ASCII character, so
    /// that an upgrade of the crate's tables that maps another one fails here.
    #[test]
    fn the_ascii_skeleton_is_the_crates() {
        for b in 0_u8..128 {
            let c = char::from(b).to_string();
            let theirs: String = unicode_security::skeleton(&c).collect();
            assert_eq!(skeleton(&c), theirs, "{b:#x}");
        }
        for text in ["admin", "m0ney%", "i|1`\"x", "user000123"] {
            let theirs: String = unicode_security::skeleton(text).collect();
            assert_eq!(skeleton(text), theirs, "{text}");
        }
    }
}
