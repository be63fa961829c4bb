//! Users as the archive knows them.

use crate::clock::Timestamp;
use crate::names::{EmailAddress, UserName};
use crate::privileges::{FolderRight, Privilege};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// How a user proves who they are at logon.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// A password kept in Roster (Argon2id hash).
    #[default]
    Local,
    /// The password of the configured directory (the seeds' "Directory Services").
    Directory,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Local => "local",
            AuthMethod::Directory => "directory",
        }
    }

    pub fn parse(raw: &str) -> Option<AuthMethod> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "local" => Some(AuthMethod::Local),
            "directory" | "directory-services" | "directory_services" => {
                Some(AuthMethod::Directory)
            }
            _ => None,
        }
    }
}

/// Where a synchronized user came from: the directory type (`ldap`, `ldif`, …), the entry's stable id
/// (entryUUID, objectGUID, …) and the DN it was last seen at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DirectoryLink {
    pub source: String,
    pub id: String,
    pub dn: Option<String>,
}

/// Access rights of one user to one archive folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FolderAccess {
    pub folder_id: i64,
    pub folder: String,
    pub rights: BTreeSet<FolderRight>,
}

/// A user with everything the API shows about them (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct User {
    pub id: i64,
    #[schema(value_type = String)]
    pub name: UserName,
    pub full_name: String,
    #[schema(value_type = Vec<String>)]
    pub emails: Vec<EmailAddress>,
    pub auth: AuthMethod,
    pub privileges: BTreeSet<Privilege>,
    pub folders: Vec<FolderAccess>,
    /// The directory entry's stable id, when the user is linked to a directory.
    pub directory_id: Option<String>,
    pub directory: Option<DirectoryLink>,
    /// The built-in administrator: every right, never deleted, demoted or synchronized.
    pub builtin_admin: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    /// Departed since then: the directory no longer returns the user's entry, and a sync suspended them
    /// for the grace period before deletion (`delete_after`). A suspended user can't log on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub departed_at: Option<Timestamp>,
}

/// An archive folder. It is named after its owner; one that holds messages outlives its owner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Folder {
    pub id: i64,
    pub name: String,
    pub owner: Option<String>,
    pub message_count: i64,
    pub created_at: Timestamp,
    /// When its owner was deleted while it held messages.
    pub orphaned_at: Option<Timestamp>,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub at: Timestamp,
    /// Who: a user name, or `cli:<os user>`.
    pub actor: String,
    /// What, as a stable dotted code, e.g. `user.create`.
    pub action: String,
    /// Which user, folder or setting.
    pub target: String,
    /// Details in words (never a password).
    pub details: String,
}
