//! From the attributes of one entry to a [`DirectoryEntry`]: the same rules for LDAP and LDIF.

use roster_core::directory::{AttributeMapping, DirectoryEntry};

use crate::error::DirectoryError;
use crate::ids::IdPolicy;

/// Which attributes hold what, as configured.
#[derive(Debug, Clone)]
pub(crate) struct AttributeMap {
    pub(crate) username: String,
    pub(crate) full_name: Option<String>,
    /// `None` when not configured, so that the planner leaves addresses alone.
    pub(crate) emails: Option<Vec<String>>,
    pub(crate) ids: IdPolicy,
}

impl AttributeMap {
    pub(crate) fn new(
        mapping: &AttributeMapping,
        ids: IdPolicy,
    ) -> Result<AttributeMap, DirectoryError> {
        let email_attributes = mapping.email_attribute_list()?;
        Ok(AttributeMap {
            username: mapping.username_attribute.trim().to_owned(),
            full_name: mapping.full_name_attribute().map(str::to_owned),
            emails: if email_attributes.is_empty() {
                None
            } else {
                Some(email_attributes)
            },
            ids,
        })
    }

    /// Everything a read asks the server for.
    pub(crate) fn requested_attributes(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut add = |name: &str| {
            if !out.iter().any(|a| a.eq_ignore_ascii_case(name)) {
                out.push(name.to_owned());
            }
        };
        add(&self.username);
        if let Some(f) = &self.full_name {
            add(f);
        }
        for e in self.emails.iter().flatten() {
            add(e);
        }
        for id in self.ids.attribute_names() {
            add(id);
        }
        out
    }

    /// Maps one entry. `values(attr)` returns every value of `attr`, names compared case-insensitively.
    /// Returns the entry and whether it had a stable id.
    pub(crate) fn map<'a, F>(&self, dn: &str, values: F) -> (DirectoryEntry, bool)
    where
        F: Fn(&str) -> Vec<&'a [u8]>,
    {
        let first_text = |attr: &str| {
            values(attr)
                .into_iter()
                .find_map(|v| std::str::from_utf8(v).ok())
                .map(str::to_owned)
        };
        let name = first_text(&self.username);
        let full_name = self
            .full_name
            .as_ref()
            .map(|attr| first_text(attr).unwrap_or_default());
        let emails = self.emails.as_ref().map(|attrs| {
            let mut out: Vec<String> = Vec::new();
            let mut seen: Vec<String> = Vec::new();
            for attr in attrs {
                for value in values(attr) {
                    // An address that isn't text can't be an address; the planner reports what's left.
                    let Ok(text) = std::str::from_utf8(value) else {
                        continue;
                    };
                    let text = text.trim();
                    if text.is_empty() {
                        continue;
                    }
                    let key = text.to_lowercase();
                    if !seen.contains(&key) {
                        seen.push(key);
                        out.push(text.to_owned());
                    }
                }
            }
            out
        });
        let (id, has_stable) = self.ids.entry_id(dn, &values);
        (
            DirectoryEntry {
                id,
                dn: dn.to_owned(),
                name,
                full_name,
                emails,
            },
            has_stable,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(attrs: &'a [(&'a str, Vec<&'a [u8]>)]) -> impl Fn(&str) -> Vec<&'a [u8]> {
        move |name: &str| {
            attrs
                .iter()
                .find(|(a, _)| a.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        }
    }

    fn map_of(username: &str, full_name: Option<&str>, emails: Option<&str>) -> AttributeMap {
        let mapping = AttributeMapping {
            filter: "(objectClass=*)".into(),
            username_attribute: username.into(),
            full_name_attribute: full_name.map(str::to_owned),
            email_attributes: emails.map(str::to_owned),
        };
        AttributeMap::new(&mapping, IdPolicy::GENERIC_LDAP).unwrap()
    }

    #[test]
    fn maps_names_emails_and_ids() {
        let map = map_of("uid", Some("cn"), Some("mail, otherMailbox"));
        let attrs: Vec<(&str, Vec<&[u8]>)> = vec![
            ("UID", vec![b"zo\xc3\xab"]),
            ("cn", vec!["Zoë Ångström".as_bytes()]),
            ("mail", vec![b"A@x.org", b"b@x.org"]),
            ("othermailbox", vec![b"a@X.ORG", b" c@x.org ", b"", b"\xff"]),
            ("entryUUID", vec![b"ABC-def"]),
        ];
        let (e, stable) = map.map("uid=zoë,dc=x", lookup(&attrs));
        assert!(stable);
        assert_eq!(e.name.as_deref(), Some("zoë"));
        assert_eq!(e.full_name.as_deref(), Some("Zoë Ångström"));
        assert_eq!(e.emails.unwrap(), vec!["A@x.org", "b@x.org", "c@x.org"]);
        assert_eq!(e.id, "abc-def");
    }

    #[test]
    fn missing_attributes_and_fallback_id() {
        let map = map_of("uid", Some("cn"), Some("mail"));
        let (e, stable) = map.map("CN=Smith\\, John,DC=X", lookup(&[]));
        assert!(!stable);
        assert_eq!(e.name, None);
        assert_eq!(e.full_name.as_deref(), Some(""));
        assert_eq!(e.emails, Some(vec![]));
        assert_eq!(e.id, "dn:cn=smith\\, john,dc=x");
        assert_eq!(e.dn, "CN=Smith\\, John,DC=X");

        let unconfigured = map_of("uid", Some("  "), None);
        let (e, _) = unconfigured.map("cn=a", lookup(&[]));
        assert_eq!(e.full_name, None);
        assert_eq!(e.emails, None);
    }

    #[test]
    fn edirectory_guid_is_formatted() {
        let map = map_of("uid", None, None);
        let guid: Vec<u8> = (0u8..16).collect();
        let attrs: Vec<(&str, Vec<&[u8]>)> =
            vec![("guid", vec![&guid]), ("nsUniqueId", vec![b"x"])];
        let (e, _) = map.map("cn=a", lookup(&attrs));
        assert_eq!(e.id, "00010203-0405-0607-0809-0a0b0c0d0e0f");
        let attrs: Vec<(&str, Vec<&[u8]>)> = vec![("nsuniqueid", vec![b"AA-BB"])];
        assert_eq!(map.map("cn=a", lookup(&attrs)).0.id, "aa-bb");
        assert_eq!(
            map.requested_attributes(),
            vec!["uid", "entryUUID", "GUID", "nsUniqueId"]
        );
    }
}
