//! Just enough DN handling (RFC 4514) to answer "is this DN at or below that one?" without a server:
//! `CN=Smith\, John , OU=People` and `cn=smith\2c john,ou=people` must compare equal, and an escaped
//! comma must not split an RDN.

/// One attribute-value assertion, normalized: type lowercased, value unescaped, trimmed and lowercased.
/// Multi-valued RDNs (`a=1+b=2`) keep their parts sorted so that order doesn't matter.
type Rdn = Vec<(String, String)>;

/// Parses a DN into normalized RDNs, most specific first. `None` when the text isn't a DN.
pub fn normalize(dn: &str) -> Option<Vec<Rdn>> {
    // Only leading space: a trailing one may belong to an escape (`cn=x\ `); unescaped trailing
    // spaces of the last value are dropped below like those of any value.
    let dn = dn.trim_start();
    if dn.trim().is_empty() {
        return Some(Vec::new());
    }
    let mut rdns = Vec::new();
    let mut rdn: Rdn = Vec::new();
    let mut chars = dn.chars().peekable();
    loop {
        // Attribute type, up to '='.
        let mut attr = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            attr.push(c);
        }
        let attr = attr.trim().to_ascii_lowercase();
        if attr.is_empty() {
            return None;
        }
        // Value, up to an unescaped ',' / ';' / '+' or the end. Bytes, because `\XX` escapes encode UTF-8.
        let mut value: Vec<u8> = Vec::new();
        // Index up to which trailing spaces are significant (they were escaped).
        let mut keep = 0usize;
        let mut separator = None;
        let mut quoted = false;
        while let Some(c) = chars.next() {
            match c {
                '"' => quoted = !quoted,
                '\\' => {
                    let first = chars.next()?;
                    if first.is_ascii_hexdigit() {
                        let second = chars.next()?;
                        let hex: String = [first, second].iter().collect();
                        value.push(u8::from_str_radix(&hex, 16).ok()?);
                    } else {
                        let mut buf = [0u8; 4];
                        value.extend_from_slice(first.encode_utf8(&mut buf).as_bytes());
                    }
                    keep = value.len();
                }
                ',' | ';' | '+' if !quoted => {
                    separator = Some(c);
                    break;
                }
                _ => {
                    let mut buf = [0u8; 4];
                    value.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    if c != ' ' {
                        keep = value.len();
                    }
                }
            }
        }
        value.truncate(keep);
        let text = String::from_utf8(value).ok()?;
        let text = text.trim_start().to_lowercase();
        rdn.push((attr, text));
        if separator != Some('+') {
            rdn.sort();
            rdns.push(std::mem::take(&mut rdn));
        }
        if separator.is_none() {
            break;
        }
    }
    Some(rdns)
}

/// Whether `text` is a DN as an administrator would write one: RDNs of `type=value`, each type an
/// attribute name or OID. Checked for `base_dn` when settings are saved, so that a typo shows there and
/// not as a server's "invalid DN syntax" at the first run.
pub fn is_valid(text: &str) -> bool {
    let Some(rdns) = normalize(text) else {
        return false;
    };
    !rdns.is_empty()
        && rdns
            .iter()
            .flatten()
            .all(|(attr, _)| crate::directory::check_attribute_name("base_dn", attr).is_ok())
}

/// Whether `dn` is `base` or below it. An empty base contains everything. DNs that don't parse are
/// compared as lowercased text, so a server's odd DN still has a chance to match.
pub fn is_at_or_below(dn: &str, base: &str) -> bool {
    match (normalize(dn), normalize(base)) {
        (Some(dn), Some(base)) => dn.len() >= base.len() && dn.ends_with(&base),
        _ => {
            let dn = dn.trim().to_lowercase();
            let base = base.trim().to_lowercase();
            base.is_empty() || dn == base || dn.ends_with(&format!(",{base}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_matching_is_by_rdn_and_case_insensitive() {
        let base = "dc=Example,dc=COM";
        assert!(is_at_or_below("uid=a,ou=People,dc=example,dc=com", base));
        assert!(is_at_or_below("DC=example, DC=com", base));
        assert!(is_at_or_below("anything", ""));
        assert!(!is_at_or_below("uid=a,dc=example,dc=org", base));
        assert!(!is_at_or_below("dc=com", base));
        // An RDN value that merely ends with the base's text is not below it.
        assert!(!is_at_or_below("uid=a,dc=myexample,dc=com", base));
        assert!(!is_at_or_below("cn=x\\,dc=example\\,dc=com", base));
    }

    #[test]
    fn escapes_are_decoded_before_comparing() {
        assert_eq!(
            normalize("cn=Smith\\, John,ou=People"),
            normalize("CN=smith\\2C john , OU=people")
        );
        assert_eq!(
            normalize("ou=J\\C3\\BCrgen").unwrap(),
            vec![vec![("ou".to_owned(), "jürgen".to_owned())]]
        );
        assert!(is_at_or_below("uid=zoë,ou=Ünits,dc=x", "ou=ünits,dc=X"));
        assert_eq!(normalize("cn=a+sn=b"), normalize("sn=B+cn=A"));
        assert_eq!(
            normalize("cn=trailing\\ "),
            Some(vec![vec![("cn".into(), "trailing ".into())]])
        );
        assert!(normalize("=x").is_none());
        assert!(normalize("cn=bad\\").is_none());
        assert!(normalize("cn=bad\\zz").is_some());
        assert!(normalize("cn=bad\\4").is_none());
    }

    /// Regression (issue 19, item 5): `base_dn = "not a dn"` was accepted.
    #[test]
    fn what_is_a_valid_dn() {
        for ok in [
            "dc=example,dc=com",
            "ou=People, dc=example,dc=com",
            "2.5.4.3=x",
            "cn=Smith\\, John",
        ] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in [
            "not a dn",
            "",
            "dc=example,,dc=com",
            "=x",
            "dc example",
            "d c=x",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }
}
