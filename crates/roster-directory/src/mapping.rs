//! From the attributes of one entry to a [`DirectoryEntry`]: the same rules for LDAP and LDIF.

use roster_core::directory::{AttributeMapping, DirectoryEntry};

use crate::error::DirectoryError;
use crate::ids::IdPolicy;

/// Where an entry's addresses come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EmailSource {
    /// Every value of the attribute.
    Attribute(String),
    /// Active Directory's `proxyAddresses`: the primary SMTP address (`SMTP:`), without its prefix.
    PrimarySmtp(String),
    /// The other SMTP addresses (`smtp:`), without their prefix; `X500:`, `SIP:` and the other types are
    /// not mail addresses.
    SecondarySmtp(String),
}

impl EmailSource {
    fn attribute(&self) -> &str {
        match self {
            EmailSource::Attribute(a)
            | EmailSource::PrimarySmtp(a)
            | EmailSource::SecondarySmtp(a) => a,
        }
    }

    /// The address a value gives, if any.
    fn address<'v>(&self, value: &'v str) -> Option<&'v str> {
        let typed = |prefix_is_primary: bool| {
            let (kind, address) = value.split_once(':')?;
            if !kind.eq_ignore_ascii_case("smtp") {
                return None;
            }
            // The prefix's case tells the primary (SMTP:) from the others (smtp:).
            ((kind == "SMTP") == prefix_is_primary).then_some(address)
        };
        match self {
            EmailSource::Attribute(_) => Some(value),
            EmailSource::PrimarySmtp(_) => typed(true),
            EmailSource::SecondarySmtp(_) => typed(false),
        }
    }
}

/// Which attributes hold what, as configured.
#[derive(Debug, Clone)]
pub(crate) struct AttributeMap {
    pub(crate) username: String,
    /// The full name: the first of these attributes that has a value; `None` when not configured.
    pub(crate) full_name: Option<Vec<String>>,
    /// `None` when not configured, so that the planner leaves addresses alone.
    pub(crate) emails: Option<Vec<EmailSource>>,
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
            full_name: mapping.full_name_attribute().map(|a| vec![a.to_owned()]),
            emails: if email_attributes.is_empty() {
                None
            } else {
                Some(
                    email_attributes
                        .into_iter()
                        .map(EmailSource::Attribute)
                        .collect(),
                )
            },
            ids,
        })
    }

    /// Active Directory's mapping (issue 21): `sAMAccountName`; `displayName`, else `cn`; the primary
    /// SMTP address, `mail`, then the other SMTP addresses; `objectGUID`.
    pub(crate) fn active_directory() -> AttributeMap {
        AttributeMap {
            username: "sAMAccountName".into(),
            full_name: Some(vec!["displayName".into(), "cn".into()]),
            emails: Some(vec![
                EmailSource::PrimarySmtp("proxyAddresses".into()),
                EmailSource::Attribute("mail".into()),
                EmailSource::SecondarySmtp("proxyAddresses".into()),
            ]),
            ids: IdPolicy::ACTIVE_DIRECTORY,
        }
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
        for f in self.full_name.iter().flatten() {
            add(f);
        }
        for e in self.emails.iter().flatten() {
            add(e.attribute());
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
        let full_name = self.full_name.as_ref().map(|attrs| {
            attrs
                .iter()
                .find_map(|attr| first_text(attr).filter(|t| !t.trim().is_empty()))
                .unwrap_or_default()
        });
        let emails = self.emails.as_ref().map(|sources| {
            let mut out: Vec<String> = Vec::new();
            let mut seen: Vec<String> = Vec::new();
            for source in sources {
                for value in values(source.attribute()) {
                    // An address that isn't text can't be an address; the planner reports what's left.
                    let Ok(text) = std::str::from_utf8(value) else {
                        continue;
                    };
                    let Some(text) = source.address(text.trim()) else {
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
    fn active_directory_names_addresses_and_guid() {
        let map = AttributeMap::active_directory();
        let guid: [u8; 16] = [
            0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff,
        ];
        let attrs: Vec<(&str, Vec<&[u8]>)> = vec![
            ("sAMAccountName", vec![b"jdoe"]),
            ("displayName", vec![b" "]),
            ("cn", vec![b"John Doe"]),
            ("mail", vec![b"john@example.com"]),
            (
                "proxyAddresses",
                vec![
                    b"smtp:jd@example.com",
                    b"X500:/o=ExchangeLabs/cn=jdoe",
                    b"SMTP:John.Doe@example.com",
                    b"sip:jdoe@example.com",
                    b"smtp:JOHN@example.com",
                    b"smtp:",
                ],
            ),
            ("objectGUID", vec![&guid]),
        ];
        let (e, stable) = map.map("CN=John Doe,OU=Staff,DC=example,DC=com", lookup(&attrs));
        assert!(stable);
        assert_eq!(e.name.as_deref(), Some("jdoe"));
        assert_eq!(
            e.full_name.as_deref(),
            Some("John Doe"),
            "cn when displayName is blank"
        );
        assert_eq!(
            e.emails.unwrap(),
            ["John.Doe@example.com", "john@example.com", "jd@example.com"],
            "the primary SMTP address, mail, the other SMTP addresses; no X500 or SIP; no repeats"
        );
        assert_eq!(e.id, "00112233-4455-6677-8899-aabbccddeeff");
        assert_eq!(
            map.requested_attributes(),
            [
                "sAMAccountName",
                "displayName",
                "cn",
                "proxyAddresses",
                "mail",
                "objectGUID"
            ]
        );
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
