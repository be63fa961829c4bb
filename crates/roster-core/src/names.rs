//! User names and email addresses: the two things that must be unique, compared the way people expect.

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the user name is empty")]
    EmptyUserName,
    #[error("the user name {0:?} is longer than 256 characters")]
    UserNameTooLong(String),
    #[error("the user name {0:?} contains a control character or a line break")]
    UserNameControlCharacter(String),
    #[error(
        "{0:?} is not a valid email address: it needs one '@' with a local part before it and a domain after it, and no spaces"
    )]
    InvalidEmail(String),
}

/// A user name: trimmed, in Unicode NFC, non-empty, without control characters. Equality and uniqueness use
/// [`UserName::key`] (case-insensitive), while the name keeps the spelling it was given.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct UserName(String);

impl UserName {
    pub fn parse(raw: &str) -> Result<UserName, NameError> {
        let name = nfc(raw.trim());
        if name.is_empty() {
            return Err(NameError::EmptyUserName);
        }
        if name.chars().count() > 256 {
            return Err(NameError::UserNameTooLong(name));
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

/// NFC, without the normalizer's cost for ASCII text (which is always in NFC).
fn nfc(raw: &str) -> String {
    if raw.is_ascii() {
        raw.to_owned()
    } else {
        raw.nfc().collect()
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
    pub fn parse(raw: &str) -> Result<EmailAddress, NameError> {
        let addr = nfc(raw.trim());
        let invalid = || NameError::InvalidEmail(raw.to_owned());
        let (local, domain) = addr.rsplit_once('@').ok_or_else(invalid)?;
        if local.is_empty()
            || domain.is_empty()
            || domain.contains('@') && !local.starts_with('"')
            || local.contains('@') && !local.starts_with('"')
            || addr
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || is_invisible_format(c))
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
            || addr.len() > 320
        {
            return Err(invalid());
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
}
