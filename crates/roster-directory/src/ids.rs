//! Which attribute gives an entry its stable id, and how its value is written. Per connector: generic
//! LDAP servers use entryUUID (RFC 4530), eDirectory a 16-byte big-endian GUID, 389-DS nsUniqueId;
//! Active Directory's objectGUID is 16 bytes with its first three fields little-endian. The id is the
//! key of every stored link, so a policy never changes how it writes an id it has written before.

/// How the value of an id attribute becomes the id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IdFormat {
    /// Text, trimmed and lowercased (ids are case-insensitive hex, and a server that changes case
    /// between versions must not turn every user into a new one); bytes that aren't UTF-8 as hex.
    Text,
    /// 16 raw bytes in network order (eDirectory's GUID), as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`;
    /// any other length as [`IdFormat::Text`].
    BigEndianGuid,
    /// Active Directory's objectGUID: 16 bytes whose first three fields are little-endian (Microsoft's
    /// GUID layout), written in the usual string form; any other length as [`IdFormat::Text`].
    MixedEndianGuid,
}

/// The id attributes a connector asks for, in order of preference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IdPolicy {
    pub(crate) attributes: &'static [(&'static str, IdFormat)],
}

impl IdPolicy {
    /// OpenLDAP and most RFC 4530 servers, eDirectory, 389-DS. LDIF exports use it too: they carry
    /// the attributes of the server they came from.
    pub(crate) const GENERIC_LDAP: IdPolicy = IdPolicy {
        attributes: &[
            ("entryUUID", IdFormat::Text),
            ("GUID", IdFormat::BigEndianGuid),
            ("nsUniqueId", IdFormat::Text),
        ],
    };

    /// Active Directory: objectGUID only (every object has one; a DN-derived id would mean a read
    /// without the attribute, which is an error in the making, but stays the generic fallback).
    pub(crate) const ACTIVE_DIRECTORY: IdPolicy = IdPolicy {
        attributes: &[("objectGUID", IdFormat::MixedEndianGuid)],
    };

    pub(crate) fn attribute_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.attributes.iter().map(|(name, _)| *name)
    }

    /// The id a sync gives an entry, and whether it is stable: the first id attribute the entry has,
    /// else `dn:` and the lowercased DN. Logons compare against it, so it must stay the one function
    /// that makes ids.
    pub(crate) fn entry_id<'a, F>(&self, dn: &str, values: &F) -> (String, bool)
    where
        F: Fn(&str) -> Vec<&'a [u8]>,
    {
        match self.stable_id(values) {
            Some(id) => (id, true),
            None => (format!("dn:{}", dn.to_lowercase()), false),
        }
    }

    fn stable_id<'a, F>(&self, values: &F) -> Option<String>
    where
        F: Fn(&str) -> Vec<&'a [u8]>,
    {
        for &(attr, format) in self.attributes {
            let Some(value) = values(attr).into_iter().find(|v| !v.is_empty()) else {
                continue;
            };
            return Some(match format {
                IdFormat::BigEndianGuid if value.len() == 16 => format_uuid(value),
                IdFormat::MixedEndianGuid if value.len() == 16 => {
                    let mut bytes = value.to_vec();
                    for range in [0..4, 4..6, 6..8] {
                        if let Some(field) = bytes.get_mut(range) {
                            field.reverse();
                        }
                    }
                    format_uuid(&bytes)
                }
                IdFormat::Text | IdFormat::BigEndianGuid | IdFormat::MixedEndianGuid => {
                    match std::str::from_utf8(value) {
                        Ok(text) => text.trim().to_ascii_lowercase(),
                        Err(_) => hex(value),
                    }
                }
            });
        }
        None
    }
}

/// The 16 bytes of an objectGUID from the id [`IdFormat::MixedEndianGuid`] wrote for it (the inverse),
/// to search for the entry by its objectGUID; `None` for any other id.
pub(crate) fn object_guid_bytes(id: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = id.bytes().filter(|&b| b != b'-').collect();
    if id.len() != 36 || digits.len() != 32 {
        return None;
    }
    let mut bytes = digits
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(text, 16).ok()
        })
        .collect::<Option<Vec<u8>>>()?;
    for range in [0..4, 4..6, 6..8] {
        if let Some(field) = bytes.get_mut(range) {
            field.reverse();
        }
    }
    Some(bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn format_uuid(bytes: &[u8]) -> String {
    let h = hex(bytes);
    let part = |r: std::ops::Range<usize>| h.get(r).unwrap_or_default().to_owned();
    format!(
        "{}-{}-{}-{}-{}",
        part(0..8),
        part(8..12),
        part(12..16),
        part(16..20),
        part(20..32)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_guid_ids_turn_back_into_their_bytes() {
        let guid: [u8; 16] = [
            0xa6, 0x91, 0x17, 0x35, 0xd0, 0x1b, 0xe2, 0x4d, 0xa9, 0xa5, 0x6d, 0x18, 0x22, 0xe4,
            0xc0, 0x20,
        ];
        let (id, stable) = IdPolicy::ACTIVE_DIRECTORY.entry_id("cn=x", &|name: &str| {
            if name == "objectGUID" {
                vec![&guid[..]]
            } else {
                Vec::new()
            }
        });
        assert!(stable);
        // The form Samba puts in a tombstone's name (`DEL:351791a6-…`) and takes in `<GUID=…>`.
        assert_eq!(id, "351791a6-1bd0-4de2-a9a5-6d1822e4c020");
        assert_eq!(object_guid_bytes(&id).as_deref(), Some(&guid[..]));
        for not_a_guid in [
            "",
            "dn:cn=x",
            "351791a6-1bd0-4de2-a9a5-6d1822e4c02",
            "351791a6-1bd0-4de2-a9a5-6d1822e4c0zz",
            "351791a6x1bd0x4de2xa9a5x6d1822e4c020",
            "351791a6-1bd0-4de2-a9a5-6d1822e4c0\u{e9}",
        ] {
            assert_eq!(object_guid_bytes(not_a_guid), None, "{not_a_guid}");
        }
    }
}
