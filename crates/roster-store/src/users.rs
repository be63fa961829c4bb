//! What the user methods of [`crate::Store`] take and return, besides `roster_core`'s user types.

use roster_core::user::{AuthMethod, DirectoryLink};
use roster_core::{EmailAddress, FolderRight, Privilege, UserName};
use std::collections::BTreeSet;

/// A user to create by hand (API or CLI).
#[derive(Debug, Clone)]
pub struct NewUserRecord {
    pub name: UserName,
    pub full_name: String,
    pub emails: Vec<EmailAddress>,
    pub auth: AuthMethod,
    /// Argon2id PHC string, for local users.
    pub password_hash: Option<String>,
    pub privileges: BTreeSet<Privilege>,
    pub own_folder_rights: BTreeSet<FolderRight>,
}

/// Changes to a user's details; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserPatch {
    pub full_name: Option<String>,
    pub emails: Option<Vec<EmailAddress>>,
}

/// What logon needs to know about a user, and nothing the API shows.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user_id: i64,
    pub name: UserName,
    pub auth: AuthMethod,
    pub password_hash: Option<String>,
    pub can_log_on: bool,
    pub link: Option<DirectoryLink>,
    /// Suspended by a sync for the grace period: can't log on.
    pub departed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedUser {
    pub name: UserName,
    /// The folder held messages and stays, without an owner.
    pub folder_kept: bool,
}
