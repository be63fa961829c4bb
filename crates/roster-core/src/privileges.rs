//! Global privileges and per-folder access rights, as the seeds' "Users and Privileges" page has them.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Privilege {
    LogOn,
    ChangePassword,
    ArchiveEmail,
    ModifyArchiveProfiles,
    DeleteArchiveProfiles,
    ExportEmail,
    DeleteEmail,
}

impl Privilege {
    pub const ALL: [Privilege; 7] = [
        Privilege::LogOn,
        Privilege::ChangePassword,
        Privilege::ArchiveEmail,
        Privilege::ModifyArchiveProfiles,
        Privilege::DeleteArchiveProfiles,
        Privilege::ExportEmail,
        Privilege::DeleteEmail,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Privilege::LogOn => "log_on",
            Privilege::ChangePassword => "change_password",
            Privilege::ArchiveEmail => "archive_email",
            Privilege::ModifyArchiveProfiles => "modify_archive_profiles",
            Privilege::DeleteArchiveProfiles => "delete_archive_profiles",
            Privilege::ExportEmail => "export_email",
            Privilege::DeleteEmail => "delete_email",
        }
    }

    pub fn parse(raw: &str) -> Result<Privilege, UnknownName> {
        let key = raw.trim().to_ascii_lowercase().replace('-', "_");
        Privilege::ALL
            .into_iter()
            .find(|p| p.as_str() == key)
            .ok_or_else(|| UnknownName {
                kind: "privilege",
                name: raw.to_owned(),
                known: Privilege::ALL.iter().map(|p| p.as_str()).collect(),
            })
    }
}

#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FolderRight {
    Read,
    Write,
    Delete,
}

impl FolderRight {
    pub const ALL: [FolderRight; 3] = [FolderRight::Read, FolderRight::Write, FolderRight::Delete];

    pub fn as_str(self) -> &'static str {
        match self {
            FolderRight::Read => "read",
            FolderRight::Write => "write",
            FolderRight::Delete => "delete",
        }
    }

    pub fn parse(raw: &str) -> Result<FolderRight, UnknownName> {
        let key = raw.trim().to_ascii_lowercase();
        FolderRight::ALL
            .into_iter()
            .find(|p| p.as_str() == key)
            .ok_or_else(|| UnknownName {
                kind: "folder access right",
                name: raw.to_owned(),
                known: FolderRight::ALL.iter().map(|p| p.as_str()).collect(),
            })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {name:?}; known: {}", known.join(", "))]
pub struct UnknownName {
    pub kind: &'static str,
    pub name: String,
    pub known: Vec<&'static str>,
}

/// What a user created by synchronization gets. Out of the box, as the seeds say: log on, and read access to
/// the user's own archive folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefaultPrivileges {
    pub privileges: BTreeSet<Privilege>,
    pub own_folder: BTreeSet<FolderRight>,
}

impl Default for DefaultPrivileges {
    fn default() -> Self {
        DefaultPrivileges {
            privileges: BTreeSet::from([Privilege::LogOn]),
            own_folder: BTreeSet::from([FolderRight::Read]),
        }
    }
}

/// Parses a comma-separated list such as `log_on,archive_email`; an empty string is the empty set.
pub fn parse_privilege_list(raw: &str) -> Result<BTreeSet<Privilege>, UnknownName> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Privilege::parse)
        .collect()
}

pub fn parse_right_list(raw: &str) -> Result<BTreeSet<FolderRight>, UnknownName> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(FolderRight::parse)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert_eq!(Privilege::parse("Log-On").unwrap(), Privilege::LogOn);
        let e = Privilege::parse("root").unwrap_err();
        assert!(e.to_string().contains("log_on"));
        assert_eq!(parse_privilege_list("").unwrap().len(), 0);
        assert_eq!(
            parse_right_list("read, write").unwrap(),
            BTreeSet::from([FolderRight::Read, FolderRight::Write])
        );
    }
}
