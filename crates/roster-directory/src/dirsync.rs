//! Active Directory's DirSync control (MS-ADTS 3.1.1.3.4.1.3, `1.2.840.113556.1.4.841`), encoded and
//! decoded here with the panic-free BER of `ber.rs` (ldap3 has no parser for it, and its parsers for
//! other controls can panic), and the cookie Roster stores for an Active Directory incremental read.
//!
//! `DirSyncRequestValue ::= SEQUENCE { Flags INTEGER, MaxBytes INTEGER, Cookie OCTET STRING }`; the
//! response control has the same OID and the same shape, its first INTEGER non-zero when the server
//! has more to send (then the search is repeated with the new cookie).
//!
//! The stored cookie wraps the server's with what it belongs to (see [`StoredCookie`]): DirSync
//! cookies (USNs) belong to one domain controller, and the scope is what the settings resolved to
//! (base DN and filter, with the selected groups' DNs in it) when the cookie was taken.

use crate::ber::{decode_integer, push_tlv, read_tlv_of};
use crate::error::DirectoryError;

pub(crate) const DIRSYNC_OID: &str = "1.2.840.113556.1.4.841";
/// `LDAP_SERVER_SHOW_DELETED_OID`: tombstones are found by searches too.
pub(crate) const SHOW_DELETED_OID: &str = "1.2.840.113556.1.4.417";
/// `LDAP_DIRSYNC_OBJECT_SECURITY`: the caller needs no replication right ("Replicating Directory
/// Changes") and sees only what it may read.
pub(crate) const OBJECT_SECURITY: u32 = 0x0000_0001;
/// `LDAP_DIRSYNC_INCREMENTAL_VALUES`: a changed linked attribute (a group's `member`) comes as the
/// values added (`member;range=1-1`) and removed (`member;range=0-0`), not as every value it has.
pub(crate) const INCREMENTAL_VALUES: u32 = 0x8000_0000;
/// What the request asks the server to send at most per round; the server may send less (and says
/// so with the "more data" flag).
pub(crate) const MAX_BYTES: u32 = 1 << 20;

const SUBJECT: &str = "DirSync control";
const COOKIE: &str = "stored DirSync cookie";

/// The request's value. Flags is a 32-bit field sent as an INTEGER: its top bit
/// ([`INCREMENTAL_VALUES`]) makes it a negative number in two's complement, as Windows' own clients
/// send it (four bytes, `80 00 00 01`).
pub(crate) fn encode_request(flags: u32, max_bytes: u32, cookie: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(cookie.len() + 16);
    push_tlv(
        &mut body,
        0x02,
        &encode_i32(i32::from_be_bytes(flags.to_be_bytes())),
    );
    push_tlv(
        &mut body,
        0x02,
        &encode_i32(i32::try_from(max_bytes).unwrap_or(i32::MAX)),
    );
    push_tlv(&mut body, 0x04, cookie);
    let mut out = Vec::with_capacity(body.len() + 6);
    push_tlv(&mut out, 0x30, &body);
    out
}

/// Minimal two's-complement bytes of `value`.
fn encode_i32(value: i32) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let mut start = 0;
    // A leading byte can go when it only repeats the sign of the next one.
    while start < 3 {
        let (Some(&b), Some(&next)) = (bytes.get(start), bytes.get(start + 1)) else {
            break;
        };
        let redundant = (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0);
        if !redundant {
            break;
        }
        start += 1;
    }
    bytes.get(start..).unwrap_or_default().to_vec()
}

/// The response's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    /// The server has more changes than it sent: search again with [`Response::cookie`].
    pub(crate) more: bool,
    pub(crate) cookie: Vec<u8>,
}

pub(crate) fn decode_response(value: &[u8]) -> Result<Response, DirectoryError> {
    let (seq, _) = read_tlv_of(value, 0x30, SUBJECT)?;
    let (more, rest) = read_tlv_of(seq, 0x02, SUBJECT)?;
    // The second INTEGER (MS-ADTS: unused; Samba sends 0) is read only to reach the cookie.
    let (_, rest) = read_tlv_of(rest, 0x02, SUBJECT)?;
    let (cookie, _) = read_tlv_of(rest, 0x04, SUBJECT)?;
    Ok(Response {
        more: decode_integer(more)? != 0,
        cookie: cookie.to_vec(),
    })
}

/// What Roster stores as an Active Directory read's cookie: the domain controller that gave the
/// DirSync cookie (its `dsServiceName`), the scope it was taken for, the server's cookie, and when it
/// was taken. Encoded as a version byte, three OCTET STRINGs and an INTEGER with the same BER code,
/// so that reading a damaged one can't panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredCookie {
    /// The rootDSE's `dsServiceName` of the domain controller (its NTDS Settings object's DN).
    pub(crate) dc: String,
    /// The base DN and the filter the read used, as one text.
    pub(crate) scope: String,
    /// The domain controller's DirSync cookie.
    pub(crate) server: Vec<u8>,
    /// When it was taken, in seconds since 1970 by the domain controller's clock (0: unknown).
    pub(crate) taken_at: i64,
}

/// Bumped if the layout changes: an older cookie then reads as not ours, and a full read follows.
const STORED_VERSION: u8 = 1;

impl StoredCookie {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = vec![STORED_VERSION];
        push_tlv(&mut out, 0x04, self.dc.as_bytes());
        push_tlv(&mut out, 0x04, self.scope.as_bytes());
        push_tlv(&mut out, 0x04, &self.server);
        push_tlv(&mut out, 0x02, &self.taken_at.to_be_bytes());
        out
    }

    /// `None` for anything this version didn't write (another layout, damage, another type's cookie).
    pub(crate) fn decode(bytes: &[u8]) -> Option<StoredCookie> {
        let (&version, rest) = bytes.split_first()?;
        if version != STORED_VERSION {
            return None;
        }
        let (dc, rest) = read_tlv_of(rest, 0x04, COOKIE).ok()?;
        let (scope, rest) = read_tlv_of(rest, 0x04, COOKIE).ok()?;
        let (server, rest) = read_tlv_of(rest, 0x04, COOKIE).ok()?;
        let (taken_at, rest) = read_tlv_of(rest, 0x02, COOKIE).ok()?;
        if !rest.is_empty() || server.is_empty() {
            return None;
        }
        Some(StoredCookie {
            dc: String::from_utf8(dc.to_vec()).ok()?,
            scope: String::from_utf8(scope.to_vec()).ok()?,
            server: server.to_vec(),
            taken_at: decode_integer(taken_at).ok()?,
        })
    }
}

/// An objectGUID's 16 bytes as an LDAP filter value (`\12\34…`), for an equality match.
pub(crate) fn escape_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("\\{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_encoded_as_windows_clients_send_them() {
        // Object security and incremental values: Flags 0x80000001 as a negative four-byte INTEGER.
        assert_eq!(
            encode_request(OBJECT_SECURITY | INCREMENTAL_VALUES, MAX_BYTES, b"ck"),
            vec![
                0x30, 0x0f, 0x02, 0x04, 0x80, 0x00, 0x00, 0x01, 0x02, 0x03, 0x10, 0x00, 0x00, 0x04,
                0x02, b'c', b'k'
            ]
        );
        assert_eq!(
            encode_request(OBJECT_SECURITY, 0, b""),
            vec![0x30, 0x08, 0x02, 0x01, 0x01, 0x02, 0x01, 0x00, 0x04, 0x00]
        );
        for (value, bytes) in [
            (0, vec![0x00]),
            (127, vec![0x7f]),
            (128, vec![0x00, 0x80]),
            (-1, vec![0xff]),
            (-128, vec![0x80]),
            (-129, vec![0xff, 0x7f]),
            (i32::MAX, vec![0x7f, 0xff, 0xff, 0xff]),
        ] {
            assert_eq!(encode_i32(value), bytes, "{value}");
            assert_eq!(decode_integer(&bytes).unwrap(), i64::from(value));
        }
    }

    #[test]
    fn responses_are_decoded() {
        let mut value = Vec::new();
        let mut body = Vec::new();
        push_tlv(&mut body, 0x02, &[0x01]);
        push_tlv(&mut body, 0x02, &[0x00]);
        push_tlv(&mut body, 0x04, &[7u8; 300]);
        push_tlv(&mut value, 0x30, &body);
        let r = decode_response(&value).unwrap();
        assert!(r.more);
        assert_eq!(r.cookie, vec![7u8; 300]);
        // A request has the same shape as a response.
        let r = decode_response(&encode_request(OBJECT_SECURITY, 0, b"x")).unwrap();
        assert!(r.more, "flags 1 read as more data");
        let r = decode_response(&encode_request(0, 0, b"x")).unwrap();
        assert!(!r.more);
    }

    #[test]
    fn damaged_values_and_cookies_are_errors_never_panics() {
        let good = encode_request(OBJECT_SECURITY | INCREMENTAL_VALUES, 5, &[9u8; 140]);
        for cut in 0..good.len() {
            assert!(decode_response(&good[..cut]).is_err());
        }
        for i in 0..good.len() {
            for b in [0x00, 0x7f, 0x80, 0x81, 0x84, 0xff] {
                let mut v = good.clone();
                v[i] = b;
                let _ = decode_response(&v);
            }
        }
        let stored = StoredCookie {
            dc: "CN=NTDS Settings,CN=DC1".into(),
            scope: "OU=x|(&(a=b))".into(),
            server: vec![1u8; 200],
            taken_at: 1_790_000_000,
        };
        let bytes = stored.encode();
        assert_eq!(StoredCookie::decode(&bytes), Some(stored));
        for cut in 0..bytes.len() {
            assert_eq!(StoredCookie::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        for i in 0..bytes.len() {
            let mut v = bytes.clone();
            v[i] ^= 0xff;
            let _ = StoredCookie::decode(&v);
        }
        // An OpenLDAP cookie, or base64 text: not ours.
        assert_eq!(StoredCookie::decode(b"rid=000,csn=20240101"), None);
        assert_eq!(StoredCookie::decode(b""), None);
    }

    #[test]
    fn guids_are_escaped_byte_by_byte() {
        assert_eq!(escape_bytes(&[0x00, 0xab, 0x2a]), "\\00\\ab\\2a");
    }
}
