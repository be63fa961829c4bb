//! Settings for users read from an LDIF export: the file, a base DN, the shared filter and mapping, and
//! how large a file, line and record may be.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use super::{
    AttributeMapping, DeletionGuardSettings, ScheduleSettings, Secret, SecretSpec, SettingsError,
    TypeSettings, require_absolute, settings_error,
};
use crate::filter::LdapFilter;
use crate::ldif::LdifLimits;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LdifSettings {
    /// The export, a regular file (a symbolic link to one is followed); FIFOs, devices, directories
    /// and sockets are refused.
    #[schema(value_type = String)]
    pub file: PathBuf,
    /// Entries are kept only if their DN is at or below this DN (empty: all).
    #[serde(default)]
    pub base_dn: String,
    #[serde(flatten)]
    pub mapping: AttributeMapping,
    #[serde(default)]
    pub delete_users: bool,
    #[serde(flatten)]
    pub guard: DeletionGuardSettings,
    #[serde(flatten)]
    pub schedule: ScheduleSettings,
    #[serde(flatten)]
    pub limits: LdifLimitSettings,
}

/// How large the file, a line and a record may be, in bytes; left out, the defaults. A read that meets
/// a limit fails and says which one to raise. Flattened: a settings file writes `max_file_bytes = ...`
/// at the top level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
pub struct LdifLimitSettings {
    /// The largest file read, checked before reading and while reading (4 GiB when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_file_bytes: Option<u64>,
    /// The longest line, without its line break (16 MiB when not given). Exporters fold lines at 76
    /// columns; an unfolded 1 MB photo is a 1.4 MB line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_line_bytes: Option<u64>,
    /// The largest record, its lines and line breaks from `dn:` to the blank line after it (64 MiB
    /// when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_record_bytes: Option<u64>,
}

impl LdifLimitSettings {
    /// The limits a read enforces: the given ones, defaults for the rest.
    pub fn limits(&self) -> LdifLimits {
        let default = LdifLimits::default();
        LdifLimits {
            max_file_bytes: self.max_file_bytes.unwrap_or(default.max_file_bytes),
            max_line_bytes: self.max_line_bytes.unwrap_or(default.max_line_bytes),
            max_record_bytes: self.max_record_bytes.unwrap_or(default.max_record_bytes),
        }
    }

    fn check(&self) -> Result<(), SettingsError> {
        for (key, value) in [
            ("max_file_bytes", self.max_file_bytes),
            ("max_line_bytes", self.max_line_bytes),
            ("max_record_bytes", self.max_record_bytes),
        ] {
            if value == Some(0) {
                return Err(settings_error(
                    key,
                    "give a number of bytes above 0, or leave it out for the default",
                ));
            }
        }
        Ok(())
    }

    fn describe(&self) -> String {
        [
            ("max_file_bytes", self.max_file_bytes),
            ("max_line_bytes", self.max_line_bytes),
            ("max_record_bytes", self.max_record_bytes),
        ]
        .into_iter()
        .filter_map(|(key, value)| value.map(|v| format!(", {key} {v}")))
        .collect()
    }
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
        self.limits.check()?;
        self.guard.check()?;
        self.schedule.check()?;
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
            "file {}, filter {}, delete users {}{}{}{}",
            self.file.display(),
            self.mapping.filter,
            self.delete_users,
            self.guard.describe(),
            self.limits.describe(),
            self.schedule.describe()
        )
    }

    fn delete_users(&self) -> bool {
        self.delete_users
    }

    fn deletion_guard(&self) -> &DeletionGuardSettings {
        &self.guard
    }

    fn schedule(&self) -> &ScheduleSettings {
        &self.schedule
    }

    fn read_scope(&self) -> String {
        format!(
            "the file {}, base DN {} and filter {}",
            self.file.display(),
            if self.base_dn.trim().is_empty() {
                "(the whole file)"
            } else {
                self.base_dn.trim()
            },
            self.mapping.filter.trim()
        )
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::directory) fn example() -> LdifSettings {
        LdifSettings {
            schedule: Default::default(),
            file: "/srv/export/company.ldif".into(),
            base_dn: "dc=example,dc=com".into(),
            mapping: AttributeMapping {
                filter: "(uid=*)".into(),
                username_attribute: "uid".into(),
                full_name_attribute: None,
                email_attributes: None,
            },
            delete_users: false,
            guard: DeletionGuardSettings::default(),
            limits: LdifLimitSettings::default(),
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

    /// The limits are optional, top-level keys, checked at set; left out, the reader's defaults.
    #[test]
    fn read_limits_are_optional_top_level_keys() {
        let json = serde_json::to_value(example()).unwrap();
        assert!(json.get("max_line_bytes").is_none(), "{json}");
        assert!(json.get("limits").is_none(), "{json}");
        assert_eq!(example().limits.limits(), LdifLimits::default());

        let mut json = json;
        json["max_line_bytes"] = 1000.into();
        json["max_file_bytes"] = 5_000_000_000_u64.into();
        let s: LdifSettings = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(s.limits.max_line_bytes, Some(1000));
        let limits = s.limits.limits();
        assert_eq!(limits.max_line_bytes, 1000);
        assert_eq!(limits.max_file_bytes, 5_000_000_000);
        assert_eq!(
            limits.max_record_bytes,
            LdifLimits::DEFAULT_MAX_RECORD_BYTES
        );
        assert_eq!(serde_json::to_value(&s).unwrap(), json);
        assert!(
            s.describe()
                .ends_with(", max_file_bytes 5000000000, max_line_bytes 1000")
        );

        json["max_lines"] = 3.into();
        let err = serde_json::from_value::<LdifSettings>(json).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `max_lines`"),
            "{err}"
        );

        let zero = LdifSettings {
            limits: LdifLimitSettings {
                max_record_bytes: Some(0),
                ..LdifLimitSettings::default()
            },
            ..example()
        };
        assert_eq!(zero.validate().unwrap_err().key, "max_record_bytes");
    }
}
