//! Each directory type's settings form: its fields with the seeds' labels and a line of help, in the
//! order the seeds show them. One `match` without a wildcard arm: a new type doesn't compile until it
//! has its form. The form's values become the same JSON the API takes (`PUT /api/v1/directory`), so the
//! console checks nothing the API doesn't.

use roster_core::directory::DirectoryKind;

/// How a field is edited and how its value becomes JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Input {
    Text,
    /// Never shown; an empty field keeps the stored one.
    Password,
    /// A whole number; empty leaves it out (the default).
    Number,
    Checkbox,
    /// One of these values, with labels.
    Select(&'static [(&'static str, &'static str)]),
    /// A list, one per line.
    Lines,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub(crate) key: &'static str,
    pub(crate) label: &'static str,
    pub(crate) help: &'static str,
    pub(crate) input: Input,
}

const fn f(key: &'static str, label: &'static str, help: &'static str, input: Input) -> Field {
    Field {
        key,
        label,
        help,
        input,
    }
}

const LDAP_ENCRYPTION: &[(&str, &str)] = &[
    ("none", "None"),
    ("starttls", "StartTLS"),
    ("ssl", "SSL/TLS (LDAPS)"),
];
const AD_PROTOCOL: &[(&str, &str)] = &[("ldap", "LDAP (StartTLS)"), ("ldaps", "LDAPS")];
const AD_AUTHENTICATION: &[(&str, &str)] = &[
    ("password", "User name and password"),
    ("kerberos", "Windows Authentication (Kerberos keytab)"),
];
const USERNAME_FORMAT: &[(&str, &str)] = &[
    ("email", "Email address (jdoe@example.com)"),
    ("local-part", "Local part (jdoe)"),
];

const CERTIFICATES: [Field; 2] = [
    f(
        "ignore_certificate_errors",
        "Ignore SSL security warnings",
        "Accept any certificate, a self-signed one too. Prefer the CA file below.",
        Input::Checkbox,
    ),
    f(
        "ca_file",
        "CA certificate file (optional)",
        "Absolute path of the PEM certificate of the CA that issued the server's certificate.",
        Input::Text,
    ),
];

const ATTRIBUTES: [Field; 4] = [
    f(
        "filter",
        "Filter",
        "RFC 4515 LDAP filter, e.g. (&(objectClass=inetOrgPerson)(mail=*))",
        Input::Text,
    ),
    f(
        "username_attribute",
        "User Name",
        "LDAP attribute of the user name, e.g. uid or cn.",
        Input::Text,
    ),
    f(
        "full_name_attribute",
        "Full Name (opt.)",
        "LDAP attribute of the display name, e.g. displayName.",
        Input::Text,
    ),
    f(
        "email_attributes",
        "Email addresses",
        "LDAP attributes of the addresses, e.g. mail; several separated by commas.",
        Input::Text,
    ),
];

const OPTIONS: [Field; 5] = [
    f(
        "delete_users",
        "Automatically delete users",
        "Delete users whose directory entry is gone. Their archive folder stays if it holds mail; only users with directory authentication are deleted.",
        Input::Checkbox,
    ),
    f(
        "max_deletions",
        "Deletion guard: at most this many deletions",
        "A sync that would delete more applies nothing and waits for your approval (default 500).",
        Input::Number,
    ),
    f(
        "max_deletions_percent",
        "Deletion guard: at most this share (%)",
        "Of the users linked to the directory (default 10).",
        Input::Number,
    ),
    f(
        "delete_after",
        "Delete after (grace period)",
        "e.g. 14d: a departed user is suspended first and deleted only after this long; 0d deletes at once.",
        Input::Text,
    ),
    f(
        "schedule",
        "Synchronize by itself",
        "e.g. every 30m, hourly, daily at 02:00 (UTC), or a cron expression; empty: only by hand.",
        Input::Text,
    ),
];

/// The fields of a type's form, without the common options.
pub(crate) fn fields(kind: DirectoryKind) -> Vec<Field> {
    let mut out = match kind {
        DirectoryKind::Ldap => {
            let mut v = vec![
                f(
                    "server",
                    "Server Name",
                    "Name or IP address of the LDAP server.",
                    Input::Text,
                ),
                f(
                    "port",
                    "Port (optional)",
                    "389, or 636 with SSL/TLS, when empty.",
                    Input::Number,
                ),
                f(
                    "encryption",
                    "Encryption",
                    "StartTLS or SSL/TLS protect the passwords on the way.",
                    Input::Select(LDAP_ENCRYPTION),
                ),
            ];
            v.extend(CERTIFICATES);
            v.extend([
                f(
                    "bind_dn",
                    "Administrative DN",
                    "DN of the LDAP user that reads the directory.",
                    Input::Text,
                ),
                f(
                    "password",
                    "Password",
                    "Password of the Administrative DN; leave empty to keep the stored one.",
                    Input::Password,
                ),
                f(
                    "base_dn",
                    "Base-DN",
                    "Where users are searched, e.g. dc=myfirm,dc=local",
                    Input::Text,
                ),
            ]);
            v.extend(ATTRIBUTES);
            v
        }
        DirectoryKind::Ldif => {
            let mut v = vec![
                f(
                    "file",
                    "LDIF file",
                    "Absolute path of an LDIF export on this server.",
                    Input::Text,
                ),
                f(
                    "base_dn",
                    "Base-DN (optional)",
                    "Only entries at or below this DN.",
                    Input::Text,
                ),
            ];
            v.extend(ATTRIBUTES);
            v
        }
        DirectoryKind::ActiveDirectory => {
            let mut v = vec![
                f(
                    "domain",
                    "Domain",
                    "The Active Directory domain's DNS name, e.g. company.local",
                    Input::Text,
                ),
                f(
                    "server",
                    "Server (optional)",
                    "A domain controller; empty: found through DNS.",
                    Input::Text,
                ),
                f(
                    "protocol",
                    "Protocol",
                    "LDAP does StartTLS before sending a password; LDAPS is TLS on port 636.",
                    Input::Select(AD_PROTOCOL),
                ),
            ];
            v.extend(CERTIFICATES);
            v.extend([
                f("base_dn", "Base-DN (optional)", "Empty: the domain's, e.g. dc=company,dc=local", Input::Text),
                f("authentication", "Authentication", "Windows Authentication binds with the service principal's keytab: no password is stored, and the connection is encrypted by Kerberos.", Input::Select(AD_AUTHENTICATION)),
                f("username", "User Name", "In UPN notation, e.g. Administrator@company.local", Input::Text),
                f("password", "Password", "Leave empty to keep the stored one.", Input::Password),
                f("principal", "Service principal (Windows Authentication)", "e.g. roster-svc@COMPANY.LOCAL", Input::Text),
                f("keytab", "Keytab file (Windows Authentication)", "Absolute path on the Roster server, readable by its user; leave empty to keep the stored one.", Input::Text),
                f("exchange_users_only", "Synchronize Microsoft Exchange users only", "Only users with email addresses.", Input::Checkbox),
                f("enabled_users_only", "Synchronize enabled users only", "Leave out disabled accounts.", Input::Checkbox),
                f("visible_in_address_lists_only", "Synchronize users visible in address lists only", "Leave out mailboxes hidden from Exchange address lists.", Input::Checkbox),
                f("groups", "Sync only these groups", "Group names or DNs, one per line; members of nested groups count. Empty: every user.", Input::Lines),
            ]);
            v
        }
        DirectoryKind::Icewarp => {
            let mut v = vec![f(
                "server",
                "Server Name",
                "Name or IP address of the IceWarp server, optionally with :port.",
                Input::Text,
            )];
            v.extend(CERTIFICATES);
            v.extend([
                f(
                    "username",
                    "User Name",
                    "Name of a user with administrative privileges.",
                    Input::Text,
                ),
                f(
                    "password",
                    "Password",
                    "Leave empty to keep the stored one.",
                    Input::Password,
                ),
                f(
                    "domains",
                    "Domains",
                    "One per line; empty with no groups: every user.",
                    Input::Lines,
                ),
                f(
                    "groups",
                    "Groups",
                    "Group addresses, one per line (sales@example.com).",
                    Input::Lines,
                ),
                f(
                    "username_format",
                    "User names",
                    "How a Roster user name is made from the account.",
                    Input::Select(USERNAME_FORMAT),
                ),
            ]);
            v
        }
        DirectoryKind::Kerio => {
            let mut v = vec![f(
                "server",
                "Server Name",
                "Name or IP address of the Kerio Connect server (administration port 4040 unless given).",
                Input::Text,
            )];
            v.extend(CERTIFICATES);
            v.extend([
                f("username", "User Name", "A Kerio Connect administrator.", Input::Text),
                f("password", "Password", "Leave empty to keep the stored one.", Input::Password),
                f("domains", "Domains", "One per line; empty with no groups: every user.", Input::Lines),
                f("groups", "Groups", "name@domain, one per line (Sales@example.com).", Input::Lines),
                f("username_format", "User names", "How a Roster user name is made from the account.", Input::Select(USERNAME_FORMAT)),
                f("imap_server", "IMAP server for logons", "imaps://host[:port] or imap://host[:port] (STARTTLS); empty: IMAPS on the same host. Passwords are sent with PLAIN or LOGIN inside TLS only.", Input::Text),
            ]);
            v
        }
    };
    out.extend(OPTIONS);
    out
}

/// Whether the field is filled from the server's list (a picker): the types whose connector lists
/// domains or groups (`DirectoryListing`).
pub(crate) fn pickable(kind: DirectoryKind, key: &str) -> bool {
    match kind {
        DirectoryKind::Ldap | DirectoryKind::Ldif => false,
        DirectoryKind::ActiveDirectory => key == "groups",
        DirectoryKind::Icewarp | DirectoryKind::Kerio => matches!(key, "domains" | "groups"),
    }
}

/// The types in the selector, with the seeds' names.
pub(crate) fn kinds() -> Vec<(DirectoryKind, &'static str)> {
    DirectoryKind::ALL
        .iter()
        .map(|&k| {
            (
                k,
                match k {
                    DirectoryKind::Ldap => "LDAP Generic",
                    DirectoryKind::Ldif => "LDIF file",
                    DirectoryKind::ActiveDirectory => "Active Directory",
                    DirectoryKind::Icewarp => "IceWarp Server",
                    DirectoryKind::Kerio => "Kerio Connect",
                },
            )
        })
        .collect()
}

/// The form's values as the API's JSON for `kind`.
pub(crate) fn to_json(
    kind: DirectoryKind,
    form: &std::collections::HashMap<String, String>,
) -> Result<serde_json::Value, (&'static str, String)> {
    let mut object = serde_json::Map::new();
    object.insert("type".into(), kind.name().into());
    for field in fields(kind) {
        let raw = form.get(field.key).map(|v| v.trim()).unwrap_or_default();
        let value = match field.input {
            Input::Text | Input::Select(_) => {
                // Empty is left out: the setting's default (no CA file, discovery, no schedule…), and
                // a required one is named by the error.
                if raw.is_empty() {
                    continue;
                }
                serde_json::Value::from(raw)
            }
            Input::Password => {
                if raw.is_empty() {
                    continue;
                }
                // Passwords are not trimmed: spaces can be part of one.
                serde_json::Value::from(form.get(field.key).cloned().unwrap_or_default())
            }
            Input::Number => {
                if raw.is_empty() {
                    continue;
                }
                match raw.parse::<u64>() {
                    Ok(n) => serde_json::Value::from(n),
                    Err(_) => return Err((field.key, format!("{raw:?} is not a whole number"))),
                }
            }
            Input::Checkbox => serde_json::Value::from(form.contains_key(field.key)),
            Input::Lines => serde_json::Value::from(
                raw.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            ),
        };
        object.insert(field.key.into(), value);
    }
    Ok(serde_json::Value::Object(object))
}
