//! What can go wrong with Kerberos, in words an administrator can act on. The GSSAPI library reports a
//! major status (what kind of failure) and a Kerberos error code as its minor status (why); the minor
//! codes we recognise become a [`Problem`] with a hint, and the library's own text is kept as the detail.

/// Why a Kerberos step failed, as far as Roster can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// No KDC answered for the realm.
    KdcUnreachable,
    /// The realm is not known to the Kerberos configuration and couldn't be found in DNS.
    RealmUnknown,
    /// This machine's clock and the KDC's differ by more than the allowed skew (5 minutes).
    ClockSkew,
    /// The KDC doesn't know the client principal (the service account or the user).
    ClientUnknown,
    /// The KDC doesn't know the service principal (`ldap/<host>`, `HTTP/<host>`).
    ServiceUnknown,
    /// The key in the keytab doesn't match the account's key (the password was changed since the
    /// export, or the keytab is for another account).
    WrongKey,
    /// The keytab holds no key for the principal (or none of the ticket's key version or type).
    KeyNotInKeytab,
    /// The account is disabled, locked or expired.
    ClientRevoked,
    /// The ticket or the credentials expired.
    Expired,
    /// A token that isn't what the other side should send (damaged, replayed, or another mechanism).
    BadToken,
    /// Anything else: the library's text says what.
    Other,
}

impl Problem {
    /// One line on what to do.
    pub fn hint(self) -> &'static str {
        match self {
            Problem::KdcUnreachable => {
                "check that the domain controller (the KDC, port 88) is reachable from this machine and that the realm's KDC is in krb5.conf or DNS (_kerberos._tcp SRV records)"
            }
            Problem::RealmUnknown => {
                "add the realm to krb5.conf ([realms] with its kdc) or make sure DNS has its _kerberos._tcp SRV records"
            }
            Problem::ClockSkew => {
                "this machine's clock differs from the domain controller's by more than Kerberos allows (5 minutes): synchronise it (NTP with the domain controller)"
            }
            Problem::ClientUnknown => {
                "the KDC doesn't know this principal: check the principal's spelling and realm (user@REALM, realm in capitals)"
            }
            Problem::ServiceUnknown => {
                "the KDC doesn't know the service principal: register the SPN on the service account (setspn -S, or samba-tool spn add) and check the host name"
            }
            Problem::WrongKey => {
                "the keytab's key doesn't match the account's: the password was probably changed after the keytab was exported; export the keytab again"
            }
            Problem::KeyNotInKeytab => {
                "the keytab has no key for this principal (or not of this key version): export the keytab again for this principal"
            }
            Problem::ClientRevoked => "the account is disabled, locked or expired in the directory",
            Problem::Expired => "the ticket or key expired: export a current keytab or try again",
            Problem::BadToken => {
                "the token was damaged or not a Kerberos token: try again; a browser that offers NTLM is not in the domain or doesn't trust this site for Negotiate"
            }
            Problem::Other => "see the detail; run `roster sso check` for a step-by-step check",
        }
    }

    /// The problem a Kerberos error code (the GSSAPI minor status) means.
    pub fn of_minor(minor: u32) -> Problem {
        // Kerberos codes are negative com_err numbers carried in an unsigned minor status.
        match minor as i32 {
            KRB5_KDC_UNREACH => Problem::KdcUnreachable,
            KRB5_REALM_UNKNOWN | KRB5_REALM_CANT_RESOLVE | KRB5_CONFIG_NODEFREALM => {
                Problem::RealmUnknown
            }
            KRB5KRB_AP_ERR_SKEW => Problem::ClockSkew,
            KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN => Problem::ClientUnknown,
            KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN => Problem::ServiceUnknown,
            KRB5KDC_ERR_PREAUTH_FAILED
            | KRB5_PREAUTH_FAILED
            | KRB5KRB_AP_ERR_BAD_INTEGRITY
            | KRB5KRB_AP_ERR_MODIFIED => Problem::WrongKey,
            KRB5_KT_NOTFOUND
            | KRB5_KT_KVNONOTFOUND
            | KRB5KRB_AP_ERR_BADKEYVER
            | KRB5KRB_AP_ERR_NOKEY => Problem::KeyNotInKeytab,
            KRB5KDC_ERR_CLIENT_REVOKED => Problem::ClientRevoked,
            KRB5KRB_AP_ERR_TKT_EXPIRED | KRB5KDC_ERR_KEY_EXP => Problem::Expired,
            _ => Problem::Other,
        }
    }

    /// A short name, for logs and audit lines.
    pub fn as_str(self) -> &'static str {
        match self {
            Problem::KdcUnreachable => "KDC unreachable",
            Problem::RealmUnknown => "realm unknown",
            Problem::ClockSkew => "clock skew",
            Problem::ClientUnknown => "client principal unknown",
            Problem::ServiceUnknown => "service principal unknown",
            Problem::WrongKey => "wrong key",
            Problem::KeyNotInKeytab => "key not in keytab",
            Problem::ClientRevoked => "account disabled or locked",
            Problem::Expired => "expired",
            Problem::BadToken => "bad token",
            Problem::Other => "other",
        }
    }
}

// From MIT krb5's krb5.h (krb5_err.et); stable across releases.
const KRB5KDC_ERR_C_PRINCIPAL_UNKNOWN: i32 = -1765328378;
const KRB5KDC_ERR_S_PRINCIPAL_UNKNOWN: i32 = -1765328377;
const KRB5KDC_ERR_CLIENT_REVOKED: i32 = -1765328366;
const KRB5KDC_ERR_KEY_EXP: i32 = -1765328361;
const KRB5KDC_ERR_PREAUTH_FAILED: i32 = -1765328360;
const KRB5KRB_AP_ERR_BAD_INTEGRITY: i32 = -1765328353;
const KRB5KRB_AP_ERR_TKT_EXPIRED: i32 = -1765328352;
const KRB5KRB_AP_ERR_SKEW: i32 = -1765328347;
const KRB5KRB_AP_ERR_MODIFIED: i32 = -1765328343;
const KRB5KRB_AP_ERR_BADKEYVER: i32 = -1765328340;
const KRB5KRB_AP_ERR_NOKEY: i32 = -1765328339;
const KRB5_REALM_UNKNOWN: i32 = -1765328230;
const KRB5_KDC_UNREACH: i32 = -1765328228;
const KRB5_KT_NOTFOUND: i32 = -1765328203;
const KRB5_PREAUTH_FAILED: i32 = -1765328174;
const KRB5_REALM_CANT_RESOLVE: i32 = -1765328164;
const KRB5_CONFIG_NODEFREALM: i32 = -1765328160;
const KRB5_KT_KVNONOTFOUND: i32 = -1765328154;

#[derive(Debug, thiserror::Error)]
pub enum KerberosError {
    #[error("the keytab {path} can't be read: {detail}")]
    KeytabUnreadable { path: String, detail: String },
    #[error("{path} is not a keytab file: {detail}")]
    KeytabMalformed { path: String, detail: String },
    #[error("the keytab {path} holds no key for {principal} (it holds: {held})")]
    PrincipalNotInKeytab {
        path: String,
        principal: String,
        held: String,
    },
    #[error("{operation}: {} ({detail})", problem.as_str())]
    Gssapi {
        /// "getting a ticket for ldap/dc1.company.local@COMPANY.LOCAL", …
        operation: String,
        problem: Problem,
        /// The GSSAPI library's own message.
        detail: String,
    },
}

impl KerberosError {
    pub(crate) fn gssapi(operation: impl Into<String>, error: &libgssapi::error::Error) -> Self {
        KerberosError::Gssapi {
            operation: operation.into(),
            problem: problem_of(error),
            detail: error.to_string().trim().to_owned(),
        }
    }

    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            KerberosError::KeytabUnreadable { .. } => {
                "check the path and that the user Roster runs as may read the file (mode 0600, owned by that user)"
            }
            KerberosError::KeytabMalformed { .. } => {
                "export the keytab again (ktpass, samba-tool domain exportkeytab or ktutil)"
            }
            KerberosError::PrincipalNotInKeytab { .. } => {
                "name a principal the keytab holds, or export the keytab again with this principal (--principal)"
            }
            KerberosError::Gssapi { problem, .. } => problem.hint(),
        }
    }

    pub fn problem(&self) -> Problem {
        match self {
            KerberosError::KeytabUnreadable { .. } | KerberosError::KeytabMalformed { .. } => {
                Problem::Other
            }
            KerberosError::PrincipalNotInKeytab { .. } => Problem::KeyNotInKeytab,
            KerberosError::Gssapi { problem, .. } => *problem,
        }
    }
}

/// The problem a GSSAPI error means: by its Kerberos code, else by its major status.
fn problem_of(error: &libgssapi::error::Error) -> Problem {
    use libgssapi::error::MajorFlags;
    match Problem::of_minor(error.minor) {
        Problem::Other => {
            let major = error.major;
            if major.contains(MajorFlags::GSS_S_DEFECTIVE_TOKEN)
                || major.contains(MajorFlags::GSS_S_BAD_MECH)
                || major.contains(MajorFlags::GSS_S_DUPLICATE_TOKEN)
                || major.contains(MajorFlags::GSS_S_BAD_SIG)
            {
                Problem::BadToken
            } else if major.contains(MajorFlags::GSS_S_CREDENTIALS_EXPIRED)
                || major.contains(MajorFlags::GSS_S_CONTEXT_EXPIRED)
            {
                Problem::Expired
            } else {
                Problem::Other
            }
        }
        known => known,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kerberos_codes_carried_as_unsigned_minor_statuses_are_recognised() {
        assert_eq!(
            Problem::of_minor(KRB5KRB_AP_ERR_SKEW as u32),
            Problem::ClockSkew
        );
        assert_eq!(
            Problem::of_minor(KRB5_KDC_UNREACH as u32),
            Problem::KdcUnreachable
        );
        assert_eq!(
            Problem::of_minor(KRB5KDC_ERR_PREAUTH_FAILED as u32),
            Problem::WrongKey
        );
        assert_eq!(Problem::of_minor(0), Problem::Other);
    }
}
