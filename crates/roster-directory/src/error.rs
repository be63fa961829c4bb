//! The one error type of the connectors. Every variant has a stable code (for support and for the API)
//! and a message that says what went wrong and what to do about it.
//!
//! No variant carries a password: the service password and user passwords only ever reach ldap3's bind
//! calls or the body of an IceWarp `authenticate`/`getauthtoken`, and neither ldap3's errors nor the
//! IceWarp connector's messages (which quote the server's reply, never the request) echo them. Fields that hold server text (`message`, `detail`) come from
//! the server's diagnostic message or from ldap3/rustls errors, never from our own request.

use roster_core::directory::{DirectoryKind, SettingsError};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    #[error("directory settings, {key}: {message}")]
    InvalidSettings { key: &'static str, message: String },

    #[error(
        "no directory is configured; choose an LDAP server or an LDIF file in the directory settings"
    )]
    NotConfigured,

    #[error(
        "this directory type is not available in this version; use one of: none, {}",
        DirectoryKind::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
    )]
    UnsupportedType,

    /// `target` names the server as the connector knows it ("the LDAP server ldap.example.com:389"),
    /// `hint` says which settings to check for this type.
    #[error("cannot connect to {target} ({detail}); {hint}")]
    Connect {
        target: String,
        detail: String,
        hint: &'static str,
    },

    #[error(
        "the certificate of {target} is not trusted ({detail}); give the CA certificate that issued it in `ca_file` (PEM), or set `ignore_certificate_errors = true` if you accept the risk"
    )]
    CertificateUntrusted { target: String, detail: String },

    #[error("TLS with {target} failed ({detail}); {hint}")]
    Tls {
        target: String,
        detail: String,
        hint: &'static str,
    },

    #[error("{}", service_bind_message(bind_dn, account_key, *rc, message))]
    ServiceBind {
        bind_dn: String,
        /// The settings key that holds the account (`bind_dn`, or Active Directory's `username`).
        account_key: &'static str,
        rc: u32,
        message: String,
    },

    #[error(
        "{target} did not answer within {seconds} s while {operation}. Check the server's load, or raise `timeout_seconds`"
    )]
    Timeout {
        target: String,
        operation: &'static str,
        seconds: u32,
    },

    #[error(
        "the server stopped after {entries} entries because of its size limit, so the read was incomplete; raise the limit for the service account (OpenLDAP: `limits dn.exact=\"<bind_dn>\" size=unlimited` or `size.prtotal=unlimited`; Active Directory: MaxPageSize/MaxResultSetSize), or narrow `base_dn` or `filter`"
    )]
    SizeLimit { entries: u64 },

    #[error(
        "the server stopped the search after its time limit, after {entries} entries, so the read was incomplete; raise the time limit for the service account or narrow `base_dn` or `filter`"
    )]
    TimeLimit { entries: u64 },

    #[error(
        "the server answered with a referral to {} instead of entries; Roster does not follow referrals: set `server` and `base_dn` to the server that holds the users",
        if refs.is_empty() { "another server".to_owned() } else { refs.join(", ") }
    )]
    Referral { refs: Vec<String> },

    #[error(
        "the base DN {base_dn:?} does not exist on the server (or the service account may not see it); check `base_dn`"
    )]
    NoSuchBase { base_dn: String },

    #[error("the LDAP search failed with result code {rc} ({}); {}", if message.is_empty() { "no message from the server" } else { message.as_str() }, search_hint(*rc))]
    Search { rc: u32, message: String },

    #[error(
        "the connection to {target} was lost while {operation} ({detail}){}. {hint}",
        if *entries > 0 { format!("; the read was incomplete after {entries} entries") } else { String::new() }
    )]
    Disconnected {
        target: String,
        operation: &'static str,
        entries: u64,
        detail: String,
        /// What to do: most often "try again", but a plain connection that the server drops at the first
        /// request is the classic sign of an LDAPS port (the server waited for a TLS handshake).
        hint: &'static str,
    },

    #[error(
        "the server sent a response Roster cannot decode ({message}). Check that `server` and `port` point to a server of the configured directory type"
    )]
    Protocol { message: String },

    #[error(
        "users from {} can't log on with a directory password; set them to local authentication, or configure a directory server that checks passwords",
        match kind { DirectoryKind::Ldif => "an LDIF file", DirectoryKind::Ldap | DirectoryKind::Icewarp | DirectoryKind::Kerio | DirectoryKind::ActiveDirectory => "this directory" }
    )]
    LogonUnsupported { kind: DirectoryKind },

    #[error("cannot read the LDIF file {file}: {message}. Fix the file and try again")]
    Ldif { file: String, message: String },

    #[error("internal error in the directory connector ({message}); please report it")]
    Internal { message: String },

    /// The IceWarp API refused the administrator's `authenticate`.
    #[error(
        "{target} refused the administrator {username:?} ({uid}): the user name or password is wrong, the account is disabled or needs two-factor authentication; check `username` and `password` (a server administrator without two-factor authentication)"
    )]
    ServiceLogon {
        target: String,
        username: String,
        uid: String,
    },

    #[error(
        "{target} runs API version {found}, but Roster needs IceWarp Server API version {required} or newer. Update the IceWarp server"
    )]
    ApiVersion {
        target: String,
        found: String,
        required: &'static str,
    },

    /// An error answer the connector has no meaning for (an unknown uid, or a known one at the wrong
    /// place).
    #[error(
        "{target} answered `{command}` with the error {uid:?}. {}",
        api_error_hint(uid)
    )]
    Api {
        target: String,
        command: String,
        uid: String,
    },

    #[error(
        "the session with {target} expired twice during one read (the read was started again once). Try again; if it keeps happening, raise the server's session timeout for the administrator"
    )]
    SessionExpired { target: String },

    #[error(
        "{} can't list {what}; IceWarp and Kerio Connect have domains and groups to choose from, Active Directory has groups",
        match kind { DirectoryKind::Ldif => "an LDIF file", DirectoryKind::Ldap => "an LDAP directory", DirectoryKind::ActiveDirectory => "Active Directory", DirectoryKind::Icewarp | DirectoryKind::Kerio => "this directory" }
    )]
    ListingUnsupported {
        kind: DirectoryKind,
        what: &'static str,
    },

    /// Kerio Connect refused the administrator's `Session.login` (any error there: protocols.md found no
    /// code of its own for a wrong password).
    #[error(
        "{target} refused the administrator {username:?} (error {code}: {message:?}): the user name or password is wrong, or the account is disabled; check `username` (admin, or admin@example.com outside the primary domain) and `password`"
    )]
    KerioServiceLogon {
        target: String,
        username: String,
        code: i64,
        message: String,
    },

    /// A JSON-RPC error from Kerio Connect, with its code and message as the server gave them.
    #[error(
        "{target} answered `{method}` with error {code} ({message:?}). {}",
        kerio_error_hint(*code)
    )]
    KerioRpc {
        target: String,
        method: String,
        code: i64,
        message: String,
    },

    /// No domain controller was found through DNS.
    #[error(
        "no domain controller of the domain was found: {asked} answered the SRV lookup of {name} with {detail}; give a domain controller in `server`, or the domain's DNS server in `dns_server` (or ROSTER_DNS_SERVER), and check `domain`"
    )]
    Discovery {
        name: String,
        asked: String,
        detail: String,
    },

    /// A sync of one user whose name matches more than one entry in scope.
    #[error(
        "the name {name:?} matches more than one entry of the directory in scope; synchronize everyone (roster sync), which reports the conflict, or narrow the filter"
    )]
    AmbiguousUser { name: String },

    /// Kerberos failed (the service account's keytab, the KDC, the ticket, the security layer).
    #[error("Kerberos with {target} failed: {detail}; {hint}")]
    Kerberos {
        target: String,
        detail: String,
        hint: &'static str,
    },

    #[error(
        "{target} does not offer STARTTLS, so the password would cross the network in clear; it was not sent. Enable TLS on the IMAP server, or give its IMAPS port in `imap_server` (imaps://host[:port])"
    )]
    ImapWithoutTls { target: String },

    #[error(
        "{target} offers neither AUTHENTICATE PLAIN nor LOGIN, only challenge-response mechanisms such as CRAM-MD5, which fail for passwords kept as SHA hashes or checked against Active Directory; allow PLAIN and LOGIN on the mail server (Kerio Connect: Configuration > Advanced Options > Security Policy)"
    )]
    ImapNoPlaintextLogon { target: String },
}

fn kerio_error_hint(code: i64) -> &'static str {
    match code {
        1003 | 1004 => {
            "The administrator may not do this: give `username` full administration rights in Kerio Connect"
        }
        -32001 => "The server ended the session; try again",
        _ => {
            "Check the server's log, and that `server` points to Kerio Connect's administration port (4040)"
        }
    }
}

fn api_error_hint(uid: &str) -> &'static str {
    match uid {
        "account_permission_denied" | "access_denied" => {
            "The administrator may not do this: give `username` server administrator rights"
        }
        "session_invalid" => "The server ended the session; try again",
        _ => "Check the server's logs, and that `server` points to an IceWarp server",
    }
}

impl DirectoryError {
    /// A stable code per variant: shown with the message and searchable in the documentation.
    pub fn code(&self) -> &'static str {
        match self {
            DirectoryError::InvalidSettings { .. } => "DI001-invalid-settings",
            DirectoryError::NotConfigured => "DI002-not-configured",
            DirectoryError::UnsupportedType => "DI003-unsupported-type",
            DirectoryError::Connect { .. } => "DI004-connect",
            DirectoryError::CertificateUntrusted { .. } => "DI005-certificate-untrusted",
            DirectoryError::Tls { .. } => "DI006-tls",
            DirectoryError::ServiceBind { .. } => "DI007-service-bind",
            DirectoryError::Timeout { .. } => "DI008-timeout",
            DirectoryError::SizeLimit { .. } => "DI009-size-limit",
            DirectoryError::TimeLimit { .. } => "DI010-time-limit",
            DirectoryError::Referral { .. } => "DI011-referral",
            DirectoryError::NoSuchBase { .. } => "DI012-no-such-base",
            DirectoryError::Search { .. } => "DI013-search",
            DirectoryError::Disconnected { .. } => "DI014-disconnected",
            DirectoryError::Protocol { .. } => "DI015-protocol",
            DirectoryError::LogonUnsupported { .. } => "DI016-logon-unsupported",
            DirectoryError::Ldif { .. } => "DI017-ldif",
            DirectoryError::Internal { .. } => "DI018-internal",
            DirectoryError::ServiceLogon { .. } => "DI019-service-logon",
            DirectoryError::ApiVersion { .. } => "DI020-api-version",
            DirectoryError::Api { .. } => "DI021-api-error",
            DirectoryError::SessionExpired { .. } => "DI022-session-expired",
            DirectoryError::ListingUnsupported { .. } => "DI023-listing-unsupported",
            DirectoryError::ImapWithoutTls { .. } => "DI024-imap-without-tls",
            DirectoryError::ImapNoPlaintextLogon { .. } => "DI025-imap-no-plaintext-logon",
            DirectoryError::KerioServiceLogon { .. } => "DI026-kerio-service-logon",
            DirectoryError::KerioRpc { .. } => "DI027-kerio-rpc",
            DirectoryError::Discovery { .. } => "DI028-discovery",
            DirectoryError::Kerberos { .. } => "DI029-kerberos",
            DirectoryError::AmbiguousUser { .. } => "DI030-ambiguous-user",
        }
    }

    pub(crate) fn settings(key: &'static str, message: impl Into<String>) -> DirectoryError {
        DirectoryError::InvalidSettings {
            key,
            message: message.into(),
        }
    }
}

impl From<SettingsError> for DirectoryError {
    fn from(e: SettingsError) -> Self {
        DirectoryError::InvalidSettings {
            key: e.key,
            message: e.message,
        }
    }
}

fn service_bind_message(bind_dn: &str, key: &str, rc: u32, message: &str) -> String {
    let server = if message.is_empty() {
        String::new()
    } else {
        format!(" (server: {message})")
    };
    match rc {
        49 => format!(
            "the directory refused the service account or its password ({key} {bind_dn:?}){server}; check `{key}` and `password`"
        ),
        // 8 (strongerAuthRequired): Active Directory's and Samba's "Transport encryption required".
        8 | 13 => format!(
            "the directory requires an encrypted connection before the service account ({key} {bind_dn:?}) may bind{server}; set `encryption` to \"starttls\" or \"ssl\" (Active Directory: `protocol` \"ldap\" does StartTLS, \"ldaps\" TLS on 636)"
        ),
        _ => format!(
            "the directory refused the service account's bind ({key} {bind_dn:?}, result code {rc}){server}; check that the account exists, is enabled and may bind"
        ),
    }
}

fn search_hint(rc: u32) -> &'static str {
    match rc {
        1 | 2 => "the server rejected the request; check `filter` and `base_dn`",
        34 => "`base_dn` is not a valid DN; write it like ou=People,dc=example,dc=com",
        11 => {
            "an administrative limit was exceeded; the server may cap the page size: lower `page_size`"
        }
        12 => {
            "the server does not support the paged-results control (RFC 2696), which Roster needs to read large directories"
        }
        16 | 17 => "check the attribute names in the settings",
        50 => "the service account may not search here; grant it read access to the users",
        51 | 52 => "the server is busy or unavailable; try again later",
        _ => "check the server's logs",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 19, item 10: "Logon WARNs end with 'nothing was changed', which belongs to sync errors".
    /// A directory error is also what a logon logs, so it says what went wrong and what to do; the run
    /// that fails because of it adds "nothing was changed" (roster-app, `execute_run`).
    #[test]
    fn logon_warnings_do_not_say_nothing_was_changed() {
        let target = "the LDAP server ldap.example.com:389".to_owned();
        let errors = [
            DirectoryError::Timeout {
                target: target.clone(),
                operation: "checking the user's password",
                seconds: 30,
            },
            DirectoryError::Disconnected {
                target: target.clone(),
                operation: "checking the user's password",
                entries: 0,
                detail: "connection reset".into(),
                hint: "Try again",
            },
            DirectoryError::Protocol {
                message: "garbage".into(),
            },
            DirectoryError::Search {
                rc: 80,
                message: String::new(),
            },
            DirectoryError::SizeLimit { entries: 5 },
            DirectoryError::TimeLimit { entries: 5 },
            DirectoryError::SessionExpired {
                target: target.clone(),
            },
            DirectoryError::KerioRpc {
                target: target.clone(),
                method: "Users.get".into(),
                code: 1000,
                message: "Operation failed.".into(),
            },
        ];
        for e in errors {
            let text = e.to_string();
            assert!(!text.contains("nothing was changed"), "{text}");
        }
    }
}
