//! Property tests of the parsers that read untrusted text (issue 27, "Fuzzing"): the RFC 4515 filter
//! parser, the RFC 2849 LDIF reader and the DN comparison, fed arbitrary input and mutations of valid
//! input. They must never panic, and never hold more than their limits allow. `cargo fuzz` needs a
//! nightly toolchain, which CI can't install on a clean machine here; proptest runs on stable, in the
//! ordinary test run, for a bounded number of cases (`PROPTEST_CASES` raises it for a longer session).

use proptest::prelude::*;

use crate::filter::LdapFilter;
use crate::ldif::{LdifLimits, LdifReader};

/// A valid filter to mutate: nested, escaped, extensible and substring parts.
const FILTER: &str = "(&(objectClass=inetOrgPerson)(|(mail=*@example.com)(cn=J\\2a*n))(!(userAccountControl:1.2.840.113556.1.4.803:=2))(memberOf:1.2.840.113556.1.4.1941:=cn=Sales,dc=x))";

const LDIF: &str = "version: 1\n\ndn: uid=a,ou=People,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: a\ncn:: w4Z0aGVy\nmail: a@example.com\n description: folded\n\n# comment\ndn: cn=Smith\\, John,ou=People,dc=example,dc=com\nuid: js\n";

fn mutate(base: &[u8], edits: &[(usize, u8)]) -> Vec<u8> {
    let mut out = base.to_vec();
    for &(at, byte) in edits {
        if out.is_empty() {
            out.push(byte);
            continue;
        }
        let at = at % (out.len() + 1);
        match byte % 3 {
            0 => out.insert(at, byte),
            1 => {
                if at < out.len() {
                    out.remove(at);
                }
            }
            _ => {
                if let Some(b) = out.get_mut(at) {
                    *b = byte;
                }
            }
        }
    }
    out
}

fn read_all(bytes: &[u8]) -> usize {
    let limits = LdifLimits {
        max_line_bytes: 4096,
        max_record_bytes: 16 * 1024,
        max_file_bytes: 1 << 20,
    };
    LdifReader::with_limits(bytes, limits)
        .take(10_000)
        .map(|r| r.is_ok() as usize)
        .sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn filters_never_panic(text in "\\PC{0,200}") {
        let _ = LdapFilter::parse(&text);
    }

    #[test]
    fn mutated_filters_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..12)) {
        let bytes = mutate(FILTER.as_bytes(), &edits);
        // What parses, round-trips through its own text.
        if let Ok(text) = std::str::from_utf8(&bytes)
            && let Ok(f) = LdapFilter::parse(text)
        {
            prop_assert!(LdapFilter::parse(f.as_str()).is_ok());
        }
    }

    #[test]
    fn ldif_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        read_all(&bytes);
    }

    #[test]
    fn mutated_ldif_never_panics(edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..16)) {
        read_all(&mutate(LDIF.as_bytes(), &edits));
    }

    #[test]
    fn dns_never_panic(a in "\\PC{0,80}", b in "\\PC{0,80}") {
        let _ = crate::dn::is_valid(&a);
        let _ = crate::dn::is_at_or_below(&a, &b);
    }
}

#[test]
fn an_endless_line_stops_at_the_limit() {
    use std::io::Read as _;
    // `/dev/zero` as an LDIF file: no line break ever; the reader must fail, not grow.
    let zeros = std::io::BufReader::new(std::io::repeat(0).take(50 << 20));
    let limits = LdifLimits {
        max_line_bytes: 1 << 20,
        max_record_bytes: 1 << 20,
        max_file_bytes: 8 << 20,
    };
    let first = LdifReader::with_limits(zeros, limits).next();
    assert!(matches!(first, Some(Err(_))), "{first:?}");
}
