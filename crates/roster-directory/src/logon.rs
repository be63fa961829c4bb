//! Who logs on, and the directory's answer.

/// Who is logging on.
#[derive(Debug, Clone, Copy)]
pub struct LogonSubject<'a> {
    /// The Roster user name.
    pub name: &'a str,
    /// The DN last seen by a sync, if any: tried first, but only if still in scope.
    pub dn: Option<&'a str>,
    /// The id of the entry the user is linked to in this directory, exactly as a read gives it in
    /// [`roster_core::directory::DirectoryEntry::id`] (entryUUID, formatted GUID, nsUniqueId or
    /// `dn:...`). When given, only the entry with this id is accepted, whether found by `dn` or by name;
    /// when `None` (a user created in Roster and switched to directory authentication), the name must
    /// match exactly one entry.
    pub id: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogonOutcome {
    Accepted { dn: String },
    Rejected(RejectReason),
}

/// Why a logon was rejected: for the audit log only; the user always sees the same answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    EmptyPassword,
    NotFound,
    Ambiguous,
    WrongPassword,
    /// The directory knows the password check failed for another reason (locked, expired, disabled:
    /// LDAP result codes such as 50 or 53).
    AccountUnusable,
}
