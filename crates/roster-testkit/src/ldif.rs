//! LDIF builders for test data: correct DN escaping (RFC 4514) and value
//! encoding (RFC 2849) so tests can use awkward names without thinking.

use std::fmt::Write as _;

/// A user entry for [`user_ldif`]. `Default` gives `ou: "People"` so tests
/// can write `TestUser { uid: "jdoe", cn: "John Doe", ..Default::default() }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestUser<'a> {
    pub uid: &'a str,
    pub cn: &'a str,
    pub mail: Vec<&'a str>,
    /// Stored as given: cleartext (slapd compares cleartext values on bind)
    /// or a `{SSHA}...` hash from `slappasswd`.
    pub password: Option<&'a str>,
    /// The organizational unit below the suffix, e.g. "People".
    pub ou: &'a str,
}

impl Default for TestUser<'_> {
    fn default() -> Self {
        TestUser {
            uid: "",
            cn: "",
            mail: Vec::new(),
            password: None,
            ou: "People",
        }
    }
}

/// The DN [`user_ldif`] gives a user: `uid=<uid>,ou=<ou>,<suffix>`.
pub fn user_dn(suffix: &str, user: &TestUser) -> String {
    format!(
        "uid={},ou={},{suffix}",
        escape_dn_value(user.uid),
        escape_dn_value(user.ou)
    )
}

/// An `inetOrgPerson` entry (for `Slapd::add` or `SlapdConfig::base_ldif`),
/// ending with a blank line so several can be concatenated.
///
/// `sn` is the last word of `cn` (inetOrgPerson requires one), `displayName`
/// is `cn`.
pub fn user_ldif(suffix: &str, user: &TestUser) -> String {
    let sn = user.cn.split_whitespace().last().unwrap_or(user.cn);
    let sn = if sn.is_empty() { user.uid } else { sn };
    let mut out = String::new();
    push_attr(&mut out, "dn", &user_dn(suffix, user));
    for class in ["top", "person", "organizationalPerson", "inetOrgPerson"] {
        push_attr(&mut out, "objectClass", class);
    }
    push_attr(&mut out, "uid", user.uid);
    push_attr(&mut out, "cn", user.cn);
    push_attr(&mut out, "sn", sn);
    push_attr(&mut out, "displayName", user.cn);
    for mail in &user.mail {
        push_attr(&mut out, "mail", mail);
    }
    if let Some(password) = user.password {
        push_attr(&mut out, "userPassword", password);
    }
    out.push('\n');
    out
}

/// A `groupOfNames` entry `cn=<cn>,ou=Groups,<suffix>` with the given member
/// DNs. The schema requires at least one member, so an empty list gets the
/// conventional placeholder `member: ` (empty DN).
pub fn group_ldif(suffix: &str, cn: &str, member_dns: &[&str]) -> String {
    let mut out = String::new();
    push_attr(
        &mut out,
        "dn",
        &format!("cn={},ou=Groups,{suffix}", escape_dn_value(cn)),
    );
    push_attr(&mut out, "objectClass", "top");
    push_attr(&mut out, "objectClass", "groupOfNames");
    push_attr(&mut out, "cn", cn);
    if member_dns.is_empty() {
        push_attr(&mut out, "member", "");
    }
    for member in member_dns {
        push_attr(&mut out, "member", member);
    }
    out.push('\n');
    out
}

/// Escapes an attribute value for use in a DN string (RFC 4514 section 2.4):
/// `"Smith, John"` becomes `Smith\, John`.
pub fn escape_dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\0' => out.push_str("\\00"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '#' if i == 0 => out.push_str("\\#"),
            _ => out.push(c),
        }
    }
    out
}

/// Appends one `attr: value` line, switching to `attr:: base64` when the
/// value is not a SAFE-STRING (RFC 2849): non-ASCII, NUL/CR/LF, a leading
/// space, colon or `<`, or (as the RFC recommends) a trailing space.
pub fn push_attr(out: &mut String, attr: &str, value: &str) {
    if is_safe_string(value) {
        let _ = writeln!(out, "{attr}: {value}");
    } else {
        let _ = writeln!(out, "{attr}:: {}", base64(value.as_bytes()));
    }
}

fn is_safe_string(value: &str) -> bool {
    let bytes = value.as_bytes();
    let safe_char = |b: &u8| b.is_ascii() && !matches!(b, b'\0' | b'\n' | b'\r');
    let safe_init = |b: &u8| safe_char(b) && !matches!(b, b' ' | b':' | b'<');
    bytes.first().is_none_or(safe_init) && bytes.iter().all(safe_char) && !value.ends_with(' ')
}

/// Standard base64 with padding (RFC 4648), small enough not to need a crate.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let sym = |n: u32| char::from(ALPHABET.get((n & 63) as usize).copied().unwrap_or(b'='));
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (b(0) << 16) | (b(1) << 8) | b(2);
        out.push(sym(n >> 18));
        out.push(sym(n >> 12));
        out.push(if chunk.len() > 1 { sym(n >> 6) } else { '=' });
        out.push(if chunk.len() > 2 { sym(n) } else { '=' });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn dn_values_are_escaped() {
        assert_eq!(escape_dn_value("Smith, John"), "Smith\\, John");
        assert_eq!(escape_dn_value(" lead#"), "\\ lead#");
        assert_eq!(escape_dn_value("#hash"), "\\#hash");
        assert_eq!(escape_dn_value("trail "), "trail\\ ");
        assert_eq!(escape_dn_value("a+b=c;\"<>\\"), "a\\+b=c\\;\\\"\\<\\>\\\\");
        assert_eq!(escape_dn_value("Jürgen"), "Jürgen");
    }

    #[test]
    fn unsafe_values_are_base64() {
        let mut out = String::new();
        push_attr(&mut out, "cn", "plain value");
        push_attr(&mut out, "cn", "Jürgen");
        push_attr(&mut out, "cn", " leading");
        push_attr(&mut out, "cn", ":colon");
        push_attr(&mut out, "cn", "<angle");
        push_attr(&mut out, "cn", "trailing ");
        push_attr(&mut out, "cn", "in:side<ok");
        assert_eq!(
            out,
            "cn: plain value\ncn:: SsO8cmdlbg==\ncn:: IGxlYWRpbmc=\ncn:: OmNvbG9u\ncn:: PGFuZ2xl\ncn:: dHJhaWxpbmcg\ncn: in:side<ok\n"
        );
    }

    #[test]
    fn user_entry_has_required_attributes() {
        let user = TestUser {
            uid: "jsmith",
            cn: "Smith, John",
            mail: vec!["john@example.com", "js@example.com"],
            password: Some("secret"),
            ..Default::default()
        };
        assert_eq!(
            user_ldif("dc=example,dc=com", &user),
            "dn: uid=jsmith,ou=People,dc=example,dc=com\n\
             objectClass: top\nobjectClass: person\nobjectClass: organizationalPerson\nobjectClass: inetOrgPerson\n\
             uid: jsmith\ncn: Smith, John\nsn: John\ndisplayName: Smith, John\n\
             mail: john@example.com\nmail: js@example.com\nuserPassword: secret\n\n"
        );
        let odd = TestUser {
            uid: "a,b",
            cn: "Zoë",
            ..Default::default()
        };
        let ldif = user_ldif("dc=example,dc=com", &odd);
        assert!(
            ldif.starts_with("dn: uid=a\\,b,ou=People,dc=example,dc=com\n"),
            "{ldif}"
        );
        assert!(ldif.contains("cn:: Wm/Dqw==\n"), "{ldif}");
    }
}
