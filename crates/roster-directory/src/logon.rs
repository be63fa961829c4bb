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
    /// Active Directory refused the bind and said why (`data 533`: "account disabled (AD data 533)"),
    /// for the audit log; the user sees the same answer as for a wrong password.
    DirectoryRefused(&'static str),
}

impl RejectReason {
    /// In words, for the audit log.
    pub fn describe(self) -> &'static str {
        match self {
            RejectReason::EmptyPassword => "empty password",
            RejectReason::NotFound => "no such user in the directory's scope",
            RejectReason::Ambiguous => "the name matches more than one directory entry",
            RejectReason::WrongPassword => "wrong password",
            RejectReason::AccountUnusable => {
                "the directory refused the account (locked, expired or disabled)"
            }
            RejectReason::DirectoryRefused(why) => why,
        }
    }
}
