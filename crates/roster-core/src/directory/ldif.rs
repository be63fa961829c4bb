//! Settings for users read from an LDIF export: the file, a base DN, and the shared filter and mapping.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use super::{
    AttributeMapping, Secret, SecretSpec, SettingsError, TypeSettings, require_absolute,
    settings_error,
};
use crate::filter::LdapFilter;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LdifSettings {
    #[schema(value_type = String)]
    pub file: PathBuf,
    /// Entries are kept only if their DN is at or below this DN (empty: all).
    #[serde(default)]
    pub base_dn: String,
    #[serde(flatten)]
    pub mapping: AttributeMapping,
    #[serde(default)]
    pub delete_users: bool,
}

impl LdifSettings {
    /// Everything that can be checked without reading the file, and the parsed filter.
    pub fn checked_filter(&self) -> Result<LdapFilter, SettingsError> {
        if self.file.as_os_str().is_empty() {
            return Err(settings_error("file", "give the path of the LDIF file"));
        }
        require_absolute("file", &self.file, "the LDIF file")?;
        let base_dn = self.base_dn.trim();
        if !base_dn.is_empty() && !crate::dn::is_valid(base_dn) {
            return Err(settings_error(
                "base_dn",
                format!(
                    "{base_dn:?} is not a DN; write it like ou=People,dc=example,dc=com, or leave it empty for the whole file"
                ),
            ));
        }
        self.mapping.check()
    }
}

impl TypeSettings for LdifSettings {
    fn validate(&self) -> Result<(), SettingsError> {
        self.checked_filter().map(drop)
    }

    /// A file has no service account.
    fn secret_slot(&mut self) -> Option<&mut Option<Secret>> {
        None
    }

    fn secret(&self) -> Option<&Secret> {
        None
    }

    fn secret_spec(&self) -> Option<SecretSpec> {
        None
    }

    fn secret_target(&self) -> Vec<String> {
        Vec::new()
    }

    fn file_paths_mut(&mut self) -> Vec<(&'static str, &mut PathBuf)> {
        vec![("file", &mut self.file)]
    }

    fn describe(&self) -> String {
        format!(
            "file {}, filter {}, delete users {}",
            self.file.display(),
            self.mapping.filter,
            self.delete_users
        )
    }

    fn delete_users(&self) -> bool {
        self.delete_users
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::directory) fn example() -> LdifSettings {
        LdifSettings {
            file: "/srv/export/company.ldif".into(),
            base_dn: "dc=example,dc=com".into(),
            mapping: AttributeMapping {
                filter: "(uid=*)".into(),
                username_attribute: "uid".into(),
                full_name_attribute: None,
                email_attributes: None,
            },
            delete_users: false,
        }
    }

    /// Regression (review of issue 4): a relative path set through the API was resolved against the
    /// server's working directory at run time.
    #[test]
    fn an_ldif_file_path_must_be_absolute() {
        let mut s = LdifSettings {
            file: "company.ldif".into(),
            ..example()
        };
        assert_eq!(s.validate().unwrap_err().key, "file");
        s.file = "/srv/export/company.ldif".into();
        assert!(s.validate().is_ok());
    }
}
