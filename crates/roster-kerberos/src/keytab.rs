//! Reading which principals a keytab holds, for checks (`roster sso check`) and for messages that say
//! what is in the file when the wanted key isn't. MIT's file format (`krb5/src/lib/krb5/keytab/kt_file.c`):
//! a version byte pair `05 01` or `05 02`, then entries, each preceded by a signed 32-bit length (negative:
//! a hole left by a deleted entry, skipped). Version 1 stores numbers in host order and counts the realm
//! among the components; every keytab written today is version 2 (big-endian). The GSSAPI library reads
//! the keys itself: this only lists names, versions and encryption types, and never panics on a damaged
//! file (it is untrusted input).

use std::path::Path;

use crate::error::KerberosError;

/// One key in a keytab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeytabEntry {
    /// `name/instance@REALM`.
    pub principal: String,
    /// The key version number: the account's password changes move it on, and a ticket made with a
    /// newer key can't be read with an older one.
    pub kvno: u32,
    /// The encryption type's number (17, 18: AES; 23: RC4).
    pub enctype: u16,
}

impl KeytabEntry {
    /// The encryption type by name, for messages.
    pub fn enctype_name(&self) -> String {
        match self.enctype {
            17 => "aes128-cts-hmac-sha1-96".into(),
            18 => "aes256-cts-hmac-sha1-96".into(),
            19 => "aes128-cts-hmac-sha256-128".into(),
            20 => "aes256-cts-hmac-sha384-192".into(),
            23 => "arcfour-hmac (RC4)".into(),
            3 => "des-cbc-md5".into(),
            1 => "des-cbc-crc".into(),
            other => format!("enctype {other}"),
        }
    }
}

/// Reads the keytab at `path`.
pub fn read_keytab(path: &Path) -> Result<Vec<KeytabEntry>, KerberosError> {
    let bytes = std::fs::read(path).map_err(|e| KerberosError::KeytabUnreadable {
        path: path.display().to_string(),
        detail: e.to_string(),
    })?;
    parse_keytab(&bytes).map_err(|detail| KerberosError::KeytabMalformed {
        path: path.display().to_string(),
        detail,
    })
}

/// The principals of `entries`, each once, in file order.
pub fn principals(entries: &[KeytabEntry]) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    for e in entries {
        if !out.contains(&e.principal.as_str()) {
            out.push(&e.principal);
        }
    }
    out
}

/// Parses a keytab file's bytes.
pub fn parse_keytab(bytes: &[u8]) -> Result<Vec<KeytabEntry>, String> {
    let mut r = Reader { bytes, pos: 0 };
    if r.u8()? != 5 {
        return Err("it doesn't start like a keytab (first byte is not 5)".into());
    }
    let (big_endian, version1) = match r.u8()? {
        2 => (true, false),
        1 => (cfg!(target_endian = "big"), true),
        v => {
            return Err(format!(
                "keytab format version {v} is unknown (1 and 2 are)"
            ));
        }
    };
    let mut entries = Vec::new();
    while r.remaining() > 0 {
        // A few zero bytes may pad the end of a file some tools wrote.
        if r.remaining() < 4 {
            break;
        }
        let size = r.i32(big_endian)?;
        if size == 0 {
            break;
        }
        let len = usize::try_from(size.unsigned_abs()).map_err(|_| "entry too large".to_owned())?;
        let body = r.take(len)?;
        if size < 0 {
            continue;
        }
        entries.push(parse_entry(body, big_endian, version1)?);
    }
    Ok(entries)
}

fn parse_entry(body: &[u8], big_endian: bool, version1: bool) -> Result<KeytabEntry, String> {
    let mut r = Reader {
        bytes: body,
        pos: 0,
    };
    let mut count = r.u16(big_endian)?;
    if version1 {
        count = count.saturating_sub(1);
    }
    let realm = r.counted_string(big_endian)?;
    let mut components = Vec::with_capacity(usize::from(count).min(16));
    for _ in 0..count {
        components.push(r.counted_string(big_endian)?);
    }
    if !version1 {
        let _name_type = r.u32(big_endian)?;
    }
    let _timestamp = r.u32(big_endian)?;
    let kvno8 = r.u8()?;
    let enctype = r.u16(big_endian)?;
    let key_len = usize::from(r.u16(big_endian)?);
    r.take(key_len)?;
    // A 32-bit key version follows when the 8-bit one overflowed (and 0 there means "use the 8-bit one").
    let kvno = match r.remaining() {
        n if n >= 4 => match r.u32(big_endian)? {
            0 => u32::from(kvno8),
            v => v,
        },
        _ => u32::from(kvno8),
    };
    Ok(KeytabEntry {
        principal: format!("{}@{realm}", components.join("/")),
        kvno,
        enctype,
    })
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| "the file ends in the middle of an entry (truncated?)".to_owned())?;
        let out = self.bytes.get(self.pos..end).unwrap_or_default();
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self, big: bool) -> Result<u16, String> {
        let a = self.array::<2>()?;
        Ok(if big {
            u16::from_be_bytes(a)
        } else {
            u16::from_le_bytes(a)
        })
    }

    fn u32(&mut self, big: bool) -> Result<u32, String> {
        let a = self.array::<4>()?;
        Ok(if big {
            u32::from_be_bytes(a)
        } else {
            u32::from_le_bytes(a)
        })
    }

    fn i32(&mut self, big: bool) -> Result<i32, String> {
        let a = self.array::<4>()?;
        Ok(if big {
            i32::from_be_bytes(a)
        } else {
            i32::from_le_bytes(a)
        })
    }

    fn counted_string(&mut self, big: bool) -> Result<String, String> {
        let len = usize::from(self.u16(big)?);
        let bytes = self.take(len)?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version-2 entry as MIT's ktutil writes it.
    fn entry(components: &[&str], realm: &str, kvno: u8, enctype: u16, key: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend((components.len() as u16).to_be_bytes());
        body.extend((realm.len() as u16).to_be_bytes());
        body.extend(realm.as_bytes());
        for c in components {
            body.extend((c.len() as u16).to_be_bytes());
            body.extend(c.as_bytes());
        }
        body.extend(1u32.to_be_bytes()); // KRB5_NT_PRINCIPAL
        body.extend(0x6000_0000u32.to_be_bytes());
        body.push(kvno);
        body.extend(enctype.to_be_bytes());
        body.extend((key.len() as u16).to_be_bytes());
        body.extend(key);
        body.extend(u32::from(kvno).to_be_bytes());
        let mut out = (body.len() as i32).to_be_bytes().to_vec();
        out.extend(body);
        out
    }

    #[test]
    fn entries_holes_and_principals_are_read() {
        let mut file = vec![5, 2];
        file.extend(entry(
            &["HTTP", "localhost"],
            "ROSTER.TEST",
            2,
            18,
            &[1; 32],
        ));
        // A hole: a deleted entry's space.
        file.extend((-6i32).to_be_bytes());
        file.extend([0; 6]);
        file.extend(entry(
            &["HTTP", "localhost"],
            "ROSTER.TEST",
            2,
            17,
            &[2; 16],
        ));
        file.extend(entry(&["roster-svc"], "ROSTER.TEST", 3, 23, &[3; 16]));
        let entries = parse_keytab(&file).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0].principal, "HTTP/localhost@ROSTER.TEST");
        assert_eq!(entries[0].kvno, 2);
        assert_eq!(entries[0].enctype_name(), "aes256-cts-hmac-sha1-96");
        assert_eq!(entries[2].principal, "roster-svc@ROSTER.TEST");
        assert_eq!(entries[2].kvno, 3);
        assert_eq!(
            principals(&entries),
            vec!["HTTP/localhost@ROSTER.TEST", "roster-svc@ROSTER.TEST"]
        );
    }

    #[test]
    fn damaged_files_are_errors_not_panics() {
        let mut file = vec![5, 2];
        file.extend(entry(&["roster-svc"], "ROSTER.TEST", 3, 23, &[3; 16]));
        for cut in 0..file.len() {
            let _ = parse_keytab(&file[..cut]);
        }
        assert!(parse_keytab(b"").is_err());
        assert!(parse_keytab(b"\x05\x09").is_err());
        assert!(parse_keytab(b"not a keytab").is_err());
        // A length that points past the end.
        assert!(parse_keytab(&[5, 2, 0x7f, 0xff, 0xff, 0xff, 1]).is_err());
        // Every byte flipped in turn: never a panic.
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0xff;
            let _ = parse_keytab(&bad);
        }
    }
}

/// Arbitrary bytes as a keytab (issue 27's fuzzing; see roster-core's `fuzz.rs` for why proptest): an
/// error or entries, never a panic.
#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1024))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = super::parse_keytab(&bytes);
        }

        #[test]
        fn keytab_shaped_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..600)) {
            let mut file = vec![5, 2];
            file.extend(body);
            let _ = super::parse_keytab(&file);
        }
    }
}
