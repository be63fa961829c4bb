//! RFC 4533 content synchronization (OpenLDAP's `syncprov`), refreshOnly: the values of the Sync State,
//! Sync Done and Sync Info messages, decoded here without panics (ldap3's own parsers for them use
//! `expect`), and the request encoded by ldap3's `SyncRequest`. Used for incremental reads: with the
//! cookie of the last read, the server sends only what changed since.

use crate::ber::{decode_integer, read_tlv_of};
use crate::error::DirectoryError;

pub(crate) const SYNC_REQUEST_OID: &str = "1.3.6.1.4.1.4203.1.9.1.1";
pub(crate) const SYNC_STATE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.2";
pub(crate) const SYNC_DONE_OID: &str = "1.3.6.1.4.1.4203.1.9.1.3";
pub(crate) const SYNC_INFO_OID: &str = "1.3.6.1.4.1.4203.1.9.1.4";
/// The result code `e-syncRefreshRequired`: the cookie is too old (or unknown); read everything.
pub(crate) const SYNC_REFRESH_REQUIRED: u32 = 4096;

const SUBJECT: &str = "content synchronization message";

/// What a Sync State control says about an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncState {
    /// Unchanged since the cookie (present phase): the entry is still in scope.
    Present,
    Add,
    Modify,
    Delete,
}

/// A Sync State control's value: the state, the entry's UUID and perhaps a cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StateValue {
    pub(crate) state: SyncState,
    /// The entryUUID as Roster writes ids: lowercase `8-4-4-4-12`.
    pub(crate) id: String,
    pub(crate) cookie: Option<Vec<u8>>,
}

/// A Sync Info message's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SyncInfo {
    NewCookie(Vec<u8>),
    /// The delete phase (ends the present phase, if any): entries not mentioned are unchanged.
    RefreshDelete {
        cookie: Option<Vec<u8>>,
    },
    /// The present phase ends: entries neither present nor changed were deleted.
    RefreshPresent {
        cookie: Option<Vec<u8>>,
    },
    /// Many entries at once: deleted (`refresh_deletes`) or present.
    IdSet {
        cookie: Option<Vec<u8>>,
        refresh_deletes: bool,
        ids: Vec<String>,
    },
}

fn malformed(what: &str) -> DirectoryError {
    DirectoryError::Protocol {
        message: format!("malformed {SUBJECT}: {what}"),
    }
}

/// The 16 bytes of a syncUUID, written as an entryUUID's text.
fn uuid_text(bytes: &[u8]) -> Result<String, DirectoryError> {
    if bytes.len() != 16 {
        return Err(malformed("a UUID that is not 16 bytes"));
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let part = |a: usize, b: usize| hex.get(a..b).unwrap_or_default();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    ))
}

fn boolean(content: &[u8]) -> Result<bool, DirectoryError> {
    match content {
        [b] => Ok(*b != 0),
        _ => Err(malformed("a BOOLEAN that is not one byte")),
    }
}

/// `syncStateValue ::= SEQUENCE { state ENUMERATED, entryUUID OCTET STRING (16), cookie OCTET STRING OPTIONAL }`.
pub(crate) fn decode_state(value: &[u8]) -> Result<StateValue, DirectoryError> {
    let (seq, _) = read_tlv_of(value, 0x30, SUBJECT)?;
    let (state, rest) = read_tlv_of(seq, 0x0a, SUBJECT)?;
    let state = match decode_integer(state)? {
        0 => SyncState::Present,
        1 => SyncState::Add,
        2 => SyncState::Modify,
        3 => SyncState::Delete,
        other => return Err(malformed(&format!("unknown sync state {other}"))),
    };
    let (uuid, rest) = read_tlv_of(rest, 0x04, SUBJECT)?;
    let cookie = if rest.first() == Some(&0x04) {
        Some(read_tlv_of(rest, 0x04, SUBJECT)?.0.to_vec())
    } else {
        None
    };
    Ok(StateValue {
        state,
        id: uuid_text(uuid)?,
        cookie,
    })
}

/// `syncDoneValue ::= SEQUENCE { cookie OCTET STRING OPTIONAL, refreshDeletes BOOLEAN DEFAULT FALSE }`:
/// the cookie, and whether the refresh used the delete phase (else the present phase).
pub(crate) fn decode_done(value: &[u8]) -> Result<(Option<Vec<u8>>, bool), DirectoryError> {
    let (mut seq, _) = read_tlv_of(value, 0x30, SUBJECT)?;
    let mut cookie = None;
    if seq.first() == Some(&0x04) {
        let (c, rest) = read_tlv_of(seq, 0x04, SUBJECT)?;
        cookie = Some(c.to_vec());
        seq = rest;
    }
    let refresh_deletes = if seq.first() == Some(&0x01) {
        boolean(read_tlv_of(seq, 0x01, SUBJECT)?.0)?
    } else {
        false
    };
    Ok((cookie, refresh_deletes))
}

/// `syncInfoValue ::= CHOICE { newcookie [0], refreshDelete [1], refreshPresent [2], syncIdSet [3] }`.
pub(crate) fn decode_info(value: &[u8]) -> Result<SyncInfo, DirectoryError> {
    let Some(&tag) = value.first() else {
        return Err(malformed("empty"));
    };
    match tag {
        0x80 => Ok(SyncInfo::NewCookie(
            read_tlv_of(value, 0x80, SUBJECT)?.0.to_vec(),
        )),
        0xa1 | 0xa2 => {
            let (seq, _) = read_tlv_of(value, tag, SUBJECT)?;
            let cookie = if seq.first() == Some(&0x04) {
                Some(read_tlv_of(seq, 0x04, SUBJECT)?.0.to_vec())
            } else {
                None
            };
            Ok(if tag == 0xa1 {
                SyncInfo::RefreshDelete { cookie }
            } else {
                SyncInfo::RefreshPresent { cookie }
            })
        }
        0xa3 => {
            let (mut seq, _) = read_tlv_of(value, 0xa3, SUBJECT)?;
            let mut cookie = None;
            if seq.first() == Some(&0x04) {
                let (c, rest) = read_tlv_of(seq, 0x04, SUBJECT)?;
                cookie = Some(c.to_vec());
                seq = rest;
            }
            let mut refresh_deletes = false;
            if seq.first() == Some(&0x01) {
                let (b, rest) = read_tlv_of(seq, 0x01, SUBJECT)?;
                refresh_deletes = boolean(b)?;
                seq = rest;
            }
            let (mut set, _) = read_tlv_of(seq, 0x31, SUBJECT)?;
            let mut ids = Vec::new();
            while !set.is_empty() {
                let (uuid, rest) = read_tlv_of(set, 0x04, SUBJECT)?;
                ids.push(uuid_text(uuid)?);
                set = rest;
            }
            Ok(SyncInfo::IdSet {
                cookie,
                refresh_deletes,
                ids,
            })
        }
        other => Err(malformed(&format!(
            "unknown sync info choice 0x{other:02x}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: [u8; 16] = [
        0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd,
        0xef,
    ];

    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        crate::ber::push_tlv(&mut out, tag, content);
        out
    }

    #[test]
    fn states_done_and_info_are_decoded() {
        let state = tlv(
            0x30,
            &[tlv(0x0a, &[2]), tlv(0x04, &UUID), tlv(0x04, b"rid=1")].concat(),
        );
        let v = decode_state(&state).unwrap();
        assert_eq!(v.state, SyncState::Modify);
        assert_eq!(v.id, "12345678-9abc-def0-0123-456789abcdef");
        assert_eq!(v.cookie.as_deref(), Some(&b"rid=1"[..]));

        let done = tlv(0x30, &[tlv(0x04, b"c"), tlv(0x01, &[0xff])].concat());
        assert_eq!(decode_done(&done).unwrap(), (Some(b"c".to_vec()), true));
        assert_eq!(decode_done(&tlv(0x30, &[])).unwrap(), (None, false));

        assert_eq!(
            decode_info(&tlv(0x80, b"new")).unwrap(),
            SyncInfo::NewCookie(b"new".to_vec())
        );
        let ids = tlv(0x31, &[tlv(0x04, &UUID), tlv(0x04, &UUID)].concat());
        let set = tlv(0xa3, &[tlv(0x01, &[0xff]), ids].concat());
        match decode_info(&set).unwrap() {
            SyncInfo::IdSet {
                refresh_deletes,
                ids,
                cookie,
            } => {
                assert!(refresh_deletes);
                assert_eq!(ids.len(), 2);
                assert_eq!(cookie, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn damaged_values_are_errors_never_panics() {
        let state = tlv(0x30, &[tlv(0x0a, &[1]), tlv(0x04, &UUID)].concat());
        let set = tlv(
            0xa3,
            &[tlv(0x04, b"ck"), tlv(0x31, &tlv(0x04, &UUID))].concat(),
        );
        for value in [&state, &set] {
            for cut in 0..value.len() {
                let _ = decode_state(&value[..cut]);
                let _ = decode_info(&value[..cut]);
                let _ = decode_done(&value[..cut]);
            }
            for i in 0..value.len() {
                let mut bad = value.clone();
                bad[i] ^= 0xff;
                let _ = decode_state(&bad);
                let _ = decode_info(&bad);
                let _ = decode_done(&bad);
            }
        }
        assert!(decode_state(&tlv(0x30, &[tlv(0x0a, &[1]), tlv(0x04, &[1, 2])].concat())).is_err());
    }
}
