//! The filter and attribute mapping that every directory type reading LDAP-style entries shares (generic
//! LDAP, LDIF; Active Directory maps into it too). Written once and flattened into each type's settings,
//! so the keys stay at the top level of a settings file.

use serde::{Deserialize, Serialize};

use super::{SettingsError, settings_error};
use crate::filter::LdapFilter;

/// Which entries are users, and which attributes hold their name, full name and addresses.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
pub struct AttributeMapping {
    /// RFC 4515, e.g. `(&(objectClass=inetOrgPerson)(mail=*))`.
    pub filter: String,
    /// e.g. `uid` or `cn`.
    pub username_attribute: String,
    /// e.g. `displayName`; left out, full names are left as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_name_attribute: Option<String>,
    /// Comma-separated, e.g. `mail, mailAlternateAddress`; left out, addresses are left as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_attributes: Option<String>,
}

/// Attributes that hold passwords or their hashes. Mapped to a name, a full name or an address, a
/// preview would copy every user's password into the user database and the run's report, so they are
/// refused in every mapping. Compared case-insensitively.
const PASSWORD_ATTRIBUTES: &[&str] = &[
    "userPassword",
    "authPassword",
    "unicodePwd",
    "dBCSPwd",
    "ntPwdHistory",
    "lmPwdHistory",
    "supplementalCredentials",
    "sambaNTPassword",
    "sambaLMPassword",
    "sambaPasswordHistory",
    "krbPrincipalKey",
    "krbExtraData",
    "msDS-ManagedPassword",
    "ms-Mcs-AdmPwd",
    "msLAPS-Password",
    "msLAPS-EncryptedPassword",
    "userPKCS12",
];

impl AttributeMapping {
    /// Checks the attribute names and parses the filter.
    pub fn check(&self) -> Result<LdapFilter, SettingsError> {
        check_mapped_attribute("username_attribute", self.username_attribute.trim())?;
        if let Some(a) = self.full_name_attribute() {
            check_mapped_attribute("full_name_attribute", a)?;
        }
        for a in parse_attribute_list("email_attributes", self.email_attributes.as_deref())? {
            check_mapped_attribute("email_attributes", &a)?;
        }
        LdapFilter::parse(&self.filter).map_err(|e| settings_error("filter", e.to_string()))
    }

    /// The full-name attribute, if one is configured (blank counts as none).
    pub fn full_name_attribute(&self) -> Option<&str> {
        self.full_name_attribute
            .as_deref()
            .map(str::trim)
            .filter(|a| !a.is_empty())
    }

    /// The email attributes, split and checked.
    pub fn email_attribute_list(&self) -> Result<Vec<String>, SettingsError> {
        parse_attribute_list("email_attributes", self.email_attributes.as_deref())
    }
}

fn check_mapped_attribute(key: &'static str, name: &str) -> Result<(), SettingsError> {
    check_attribute_name(key, name)?;
    let base = name.split(';').next().unwrap_or_default();
    if PASSWORD_ATTRIBUTES
        .iter()
        .any(|p| p.eq_ignore_ascii_case(base))
    {
        return Err(settings_error(
            key,
            format!(
                "{base:?} holds passwords: Roster would copy them into its user database and reports; map another attribute"
            ),
        ));
    }
    Ok(())
}

/// Checks an attribute description (RFC 4512 `descr` or numeric OID, with options).
pub fn check_attribute_name(key: &'static str, name: &str) -> Result<(), SettingsError> {
    let base = name.split(';').next().unwrap_or_default();
    let valid_descr = base.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && base.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let valid_oid = !base.is_empty()
        && base
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    if valid_descr || valid_oid {
        Ok(())
    } else {
        Err(settings_error(
            key,
            format!(
                "{name:?} is not an attribute name (letters, digits and '-', starting with a letter)"
            ),
        ))
    }
}

/// Splits and checks a comma-separated attribute list.
pub fn parse_attribute_list(
    key: &'static str,
    raw: Option<&str>,
) -> Result<Vec<String>, SettingsError> {
    let mut out = Vec::new();
    for part in raw.unwrap_or_default().split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        check_attribute_name(key, part)?;
        if !out.iter().any(|a: &String| a.eq_ignore_ascii_case(part)) {
            out.push(part.to_owned());
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_names() {
        assert!(check_attribute_name("k", "uid").is_ok());
        assert!(check_attribute_name("k", "cn;lang-en").is_ok());
        assert!(check_attribute_name("k", "2.5.4.3").is_ok());
        assert!(check_attribute_name("k", "u id").is_err());
        assert!(check_attribute_name("k", "").is_err());
        assert_eq!(
            parse_attribute_list("k", Some("mail, mailAlternateAddress,,MAIL")).unwrap(),
            vec!["mail", "mailAlternateAddress"]
        );
    }

    /// Regression (issue 19, item 5): `username_attribute = "userPassword"` renamed 2,002 users to their
    /// directory passwords in a preview and stored them in the run's report.
    #[test]
    fn password_attributes_are_refused_in_every_mapping() {
        let ok = AttributeMapping {
            filter: "(uid=*)".into(),
            username_attribute: "uid".into(),
            full_name_attribute: Some("cn".into()),
            email_attributes: Some("mail".into()),
        };
        assert!(ok.check().is_ok());
        for attr in [
            "userPassword",
            "USERPASSWORD;binary",
            "unicodePwd",
            "sambaNTPassword",
        ] {
            let cases = [
                (
                    "username_attribute",
                    AttributeMapping {
                        username_attribute: attr.into(),
                        ..ok.clone()
                    },
                ),
                (
                    "full_name_attribute",
                    AttributeMapping {
                        full_name_attribute: Some(attr.into()),
                        ..ok.clone()
                    },
                ),
                (
                    "email_attributes",
                    AttributeMapping {
                        email_attributes: Some(format!("mail, {attr}")),
                        ..ok.clone()
                    },
                ),
            ];
            for (key, mapping) in cases {
                let err = mapping.check().unwrap_err();
                assert_eq!(err.key, key, "{attr}");
                assert!(err.message.contains("holds passwords"), "{err}");
            }
        }
    }
}
