//! The RFC 2696 paged-results control, encoded and decoded here rather than by ldap3: its built-in
//! parser panics on a malformed value, and a buggy or hostile server must not be able to crash the
//! process. Only what the control needs is implemented (SEQUENCE, INTEGER, OCTET STRING, definite
//! lengths in short and long form).

use crate::error::DirectoryError;

pub(crate) const PAGED_RESULTS_OID: &str = "1.2.840.113556.1.4.319";

const TAG_INTEGER: u8 = 0x02;
const TAG_OCTET_STRING: u8 = 0x04;
const TAG_SEQUENCE: u8 = 0x30;

/// `realSearchControlValue ::= SEQUENCE { size INTEGER (0..maxInt), cookie OCTET STRING }`.
pub(crate) fn encode_paged_request(size: u32, cookie: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(cookie.len() + 16);
    push_tlv(&mut body, TAG_INTEGER, &encode_unsigned(size));
    push_tlv(&mut body, TAG_OCTET_STRING, cookie);
    let mut out = Vec::with_capacity(body.len() + 6);
    push_tlv(&mut out, TAG_SEQUENCE, &body);
    out
}

/// The response value: the server's size estimate (ignored by callers; servers often send 0) and the
/// cookie, empty when the search is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PagedResponse {
    pub(crate) size: i64,
    pub(crate) cookie: Vec<u8>,
}

pub(crate) fn decode_paged_response(value: &[u8]) -> Result<PagedResponse, DirectoryError> {
    let (seq, rest) = read_tlv(value, TAG_SEQUENCE)?;
    if !rest.is_empty() {
        return Err(protocol("trailing bytes after the paged-results value"));
    }
    let (size, after_size) = read_tlv(seq, TAG_INTEGER)?;
    let (cookie, after_cookie) = read_tlv(after_size, TAG_OCTET_STRING)?;
    if !after_cookie.is_empty() {
        return Err(protocol("trailing bytes inside the paged-results value"));
    }
    Ok(PagedResponse {
        size: decode_integer(size)?,
        cookie: cookie.to_vec(),
    })
}

fn protocol(what: &str) -> DirectoryError {
    malformed(PAGED_RESULTS, what)
}

const PAGED_RESULTS: &str = "paged-results control";

fn malformed(subject: &str, what: &str) -> DirectoryError {
    DirectoryError::Protocol {
        message: format!("malformed {subject}: {what}"),
    }
}

/// Minimal two's-complement encoding of a non-negative integer.
pub(crate) fn encode_unsigned(value: u32) -> Vec<u8> {
    let bytes = value.to_be_bytes();
    let skip = bytes.iter().take(3).take_while(|&&b| b == 0).count();
    let mut out: Vec<u8> = bytes.iter().skip(skip).copied().collect();
    // A set high bit would read as negative: prefix a zero byte.
    if out.first().is_some_and(|&b| b & 0x80 != 0) {
        out.insert(0, 0);
    }
    out
}

pub(crate) fn push_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        // Fits in 7 bits: the short form.
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
}

/// Reads one TLV with the expected tag; returns (content, rest).
fn read_tlv(input: &[u8], expected_tag: u8) -> Result<(&[u8], &[u8]), DirectoryError> {
    read_tlv_of(input, expected_tag, PAGED_RESULTS)
}

/// [`read_tlv`] for other structures: `subject` names what was malformed in the error.
pub(crate) fn read_tlv_of<'a>(
    input: &'a [u8],
    expected_tag: u8,
    subject: &str,
) -> Result<(&'a [u8], &'a [u8]), DirectoryError> {
    let protocol = |what: &str| malformed(subject, what);
    let (&tag, after_tag) = input
        .split_first()
        .ok_or_else(|| protocol("value ends where a tag was expected"))?;
    if tag != expected_tag {
        return Err(protocol(&format!(
            "expected tag 0x{expected_tag:02x}, found 0x{tag:02x}"
        )));
    }
    let (&first, after_len_byte) = after_tag
        .split_first()
        .ok_or_else(|| protocol("value ends where a length was expected"))?;
    let (len, content_start) = if first < 0x80 {
        (usize::from(first), after_len_byte)
    } else if first == 0x80 {
        return Err(protocol("indefinite lengths are not allowed in LDAP"));
    } else {
        let count = usize::from(first & 0x7f);
        // More than 4 length bytes would describe a value larger than any LDAP message we accept.
        if count > 4 {
            return Err(protocol("length field too long"));
        }
        let len_bytes = after_len_byte
            .get(..count)
            .ok_or_else(|| protocol("value ends inside a length"))?;
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, after_len_byte.get(count..).unwrap_or_default())
    };
    let content = content_start
        .get(..len)
        .ok_or_else(|| protocol("length runs past the end of the value"))?;
    let rest = content_start.get(len..).unwrap_or_default();
    Ok((content, rest))
}

pub(crate) fn decode_integer(content: &[u8]) -> Result<i64, DirectoryError> {
    if content.is_empty() {
        return Err(protocol("empty INTEGER"));
    }
    if content.len() > 8 {
        return Err(protocol("INTEGER too large"));
    }
    let negative = content.first().is_some_and(|&b| b & 0x80 != 0);
    let mut value: i64 = if negative { -1 } else { 0 };
    for &b in content {
        value = (value << 8) | i64::from(b);
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_encoding_matches_known_bytes() {
        // SEQUENCE { INTEGER 20, OCTET STRING "" }
        assert_eq!(
            encode_paged_request(20, b""),
            vec![0x30, 0x05, 0x02, 0x01, 0x14, 0x04, 0x00]
        );
        // 1000 = 0x03e8; 200 needs a leading zero byte (0xc8 has the high bit set).
        assert_eq!(
            encode_paged_request(1000, b"ab"),
            vec![0x30, 0x08, 0x02, 0x02, 0x03, 0xe8, 0x04, 0x02, b'a', b'b']
        );
        assert_eq!(
            encode_paged_request(200, b""),
            vec![0x30, 0x06, 0x02, 0x02, 0x00, 0xc8, 0x04, 0x00]
        );
        assert_eq!(
            encode_paged_request(0, b""),
            vec![0x30, 0x05, 0x02, 0x01, 0x00, 0x04, 0x00]
        );
    }

    #[test]
    fn long_cookies_use_long_form_lengths_and_round_trip() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let cookie: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let encoded = encode_paged_request(100, &cookie);
            let decoded = decode_paged_response(&encoded).unwrap();
            assert_eq!(decoded.size, 100);
            assert_eq!(decoded.cookie, cookie, "len {len}");
        }
        let encoded = encode_paged_request(5, &[7u8; 200]);
        assert_eq!(&encoded[..2], &[0x30, 0x81]);
    }

    #[test]
    fn decodes_negative_and_multibyte_integers() {
        assert_eq!(
            decode_paged_response(&[0x30, 0x05, 0x02, 0x01, 0xff, 0x04, 0x00])
                .unwrap()
                .size,
            -1
        );
        assert_eq!(
            decode_paged_response(&[0x30, 0x07, 0x02, 0x03, 0x01, 0x00, 0x00, 0x04, 0x00])
                .unwrap()
                .size,
            65536
        );
    }

    #[test]
    fn malformed_values_are_protocol_errors_never_panics() {
        let bad: &[&[u8]] = &[
            &[],
            &[0x30],
            &[0x30, 0x80, 0x00, 0x00],
            &[0x30, 0x05],
            &[0x30, 0x03, 0x02, 0x01, 0x01],
            &[0x31, 0x05, 0x02, 0x01, 0x14, 0x04, 0x00],
            &[0x30, 0x05, 0x04, 0x01, 0x14, 0x04, 0x00],
            &[0x30, 0x04, 0x02, 0x00, 0x04, 0x00],
            &[0x30, 0x85, 0xff, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x82, 0x01],
            &[0x30, 0x05, 0x02, 0x01, 0x14, 0x04, 0x05],
            &[0x30, 0x05, 0x02, 0x01, 0x14, 0x04, 0x00, 0x00],
            &[0x30, 0x06, 0x02, 0x01, 0x14, 0x04, 0x00, 0x00],
            &[
                0x30, 0x0d, 0x02, 0x09, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x04, 0x00,
            ],
        ];
        for value in bad {
            let err = decode_paged_response(value).unwrap_err();
            assert_eq!(err.code(), "DI015-protocol", "{value:?}");
        }
        // Exhaustive-ish: every prefix and every single-byte corruption of a valid value is handled.
        let good = encode_paged_request(300, &[1u8; 140]);
        for cut in 0..good.len() {
            let _ = decode_paged_response(&good[..cut]);
        }
        for i in 0..good.len() {
            for b in [0x00, 0x7f, 0x80, 0x81, 0x84, 0xff] {
                let mut v = good.clone();
                v[i] = b;
                let _ = decode_paged_response(&v);
            }
        }
    }
}
