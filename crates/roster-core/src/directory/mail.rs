//! What the mail-server types (IceWarp, Kerio Connect) share, written once: the server as an HTTPS
//! endpoint, how user names are made, and the domains-or-groups scope rule.
//!
//! The scope rule (the seeds: "If no domains or groups are selected, all users will be synchronized"):
//! with neither set, every user of every domain; otherwise a user is synchronized when it is in a
//! selected domain **or** a member of a selected group.

use serde::{Deserialize, Deserializer, Serialize};
use std::path::PathBuf;

use super::{SettingsError, settings_error};

/// How a mail server user's Roster user name is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UsernameFormat {
    /// The primary address (`jdoe@example.com`): unique across domains, and what mail users type to
    /// log on.
    #[default]
    Email,
    /// The part of the primary address before `@` (`jdoe`), for installations with one domain. The same
    /// local part in two synchronized domains is a conflict.
    LocalPart,
}

impl UsernameFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            UsernameFormat::Email => "email",
            UsernameFormat::LocalPart => "local-part",
        }
    }
}

/// `ca_file = ""` is no CA file.
pub(crate) fn empty_path_is_none<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<PathBuf>, D::Error> {
    let value: Option<PathBuf> = Option::deserialize(d)?;
    Ok(value.filter(|p| !p.as_os_str().is_empty()))
}

/// Where a server's API is: scheme, host and port, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEndpoint {
    pub https: bool,
    /// A host name, an IPv4 address, or an IPv6 address in brackets.
    pub host: String,
    pub port: Option<u16>,
}

impl ServerEndpoint {
    /// `https://host[:port]`, without a path.
    pub fn origin(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        match self.port {
            Some(port) => format!("{scheme}://{}:{port}", self.host),
            None => format!("{scheme}://{}", self.host),
        }
    }

    /// The origin followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.origin())
    }

    /// Reads a `server` setting: a host name or IP address, optionally with `:port`; HTTPS unless it
    /// starts with `http://` (`https://` may be written too). A trailing slash, or the API's own path
    /// (`api_path`, like `/icewarpapi`), is forgiven: both name the same server. `product` and
    /// `examples` are for the message ("the IceWarp server", "mail.example.com, …").
    pub(crate) fn parse(
        raw: &str,
        api_path: &str,
        product: &str,
        examples: &str,
    ) -> Result<ServerEndpoint, SettingsError> {
        let raw = raw.trim();
        let (https, rest) = if let Some(rest) = strip_prefix_ignore_case(raw, "http://") {
            (false, rest)
        } else if let Some(rest) = strip_prefix_ignore_case(raw, "https://") {
            (true, rest)
        } else {
            (true, raw)
        };
        let rest = rest.trim_end_matches('/');
        let rest = strip_suffix_ignore_case(rest, api_path.trim_end_matches('/')).unwrap_or(rest);
        let rest = rest.trim_end_matches('/');
        let bad = |why: &str| {
            settings_error(
                "server",
                format!(
                    "{raw:?} {why}; give the name or IP address of {product}, optionally with :port ({examples})"
                ),
            )
        };
        if rest.is_empty() {
            return Err(bad("names no server"));
        }
        if rest.contains('/')
            || rest.contains('?')
            || rest.contains('#')
            || rest.contains('@')
            || rest.contains("://")
            || rest.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(bad("is not a host name with an optional port"));
        }
        let (host, port) = if let Some(after) = rest.strip_prefix('[') {
            // [IPv6] or [IPv6]:port
            let Some((addr, tail)) = after.split_once(']') else {
                return Err(bad("has an unclosed '['"));
            };
            if addr.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("has something other than an IPv6 address in brackets"));
            }
            let port = match tail {
                "" => None,
                t => Some(
                    t.strip_prefix(':')
                        .ok_or_else(|| bad("has text after ']'"))?,
                ),
            };
            (format!("[{addr}]"), port)
        } else if rest.matches(':').count() > 1 {
            if rest.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(bad("is neither a host name nor an IP address"));
            }
            (format!("[{rest}]"), None)
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (rest.to_owned(), None),
            }
        };
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(0) | Err(_) => {
                    return Err(bad("has a port that is not a number from 1 to 65535"));
                }
                Ok(n) => Some(n),
            },
        };
        if host.is_empty()
            || !host.starts_with('[')
                && !host
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '.' || c == '-' || c == '_')
        {
            return Err(bad("is not a host name with an optional port"));
        }
        Ok(ServerEndpoint {
            https,
            host: host.to_lowercase(),
            port,
        })
    }
}

/// The selected domains or groups, trimmed and lowercased, in the order given, without repeats.
pub(crate) fn selected(values: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in values.iter().map(|v| v.trim().to_lowercase()) {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// The scope rule in words, for the preview's header and the audit log; `one` and `many` name what is
/// synchronized ("user account", "user accounts").
pub(crate) fn scope_rule(domains: &[String], groups: &[String], one: &str, many: &str) -> String {
    let domains = selected(domains);
    let groups = selected(groups);
    match (domains.is_empty(), groups.is_empty()) {
        (true, true) => format!(
            "no domains or groups are selected: every {one} of every domain is synchronized"
        ),
        (false, true) => format!(
            "{many} of the domains {} are synchronized",
            domains.join(", ")
        ),
        (true, false) => format!(
            "{many} that are members of the groups {} are synchronized",
            groups.join(", ")
        ),
        (false, false) => format!(
            "a {one} is synchronized when it is in one of the domains {} or a member of one of the groups {}",
            domains.join(", "),
            groups.join(", ")
        ),
    }
}

fn check_domain(key: &'static str, what: &str, domain: &str) -> Result<(), SettingsError> {
    let ok = !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(settings_error(
            key,
            format!("{what} {domain:?} is not a domain name (like example.com)"),
        ))
    }
}

/// Checks `domains` (names, not addresses) and `groups` (`name@domain`; `group_form` says how groups
/// are given, e.g. "by address, e.g. sales@example.com").
pub(crate) fn check_scope(
    domains: &[String],
    groups: &[String],
    group_form: &str,
) -> Result<(), SettingsError> {
    for domain in domains {
        let d = domain.trim();
        if d.contains('@') {
            return Err(settings_error(
                "domains",
                format!(
                    "{d:?} is an address, not a domain; put groups in `groups`, and domains (example.com) in `domains`"
                ),
            ));
        }
        check_domain("domains", "the domain", d)?;
    }
    for group in groups {
        let g = group.trim();
        let not_a_group = || {
            settings_error(
                "groups",
                format!("{g:?} is not a group; give groups {group_form}"),
            )
        };
        let (local, domain) = g.rsplit_once('@').ok_or_else(not_a_group)?;
        if local.is_empty() || local.chars().any(|c| c.is_whitespace() || c == '@') {
            return Err(not_a_group());
        }
        check_domain("groups", "the group's domain", domain)?;
    }
    Ok(())
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| s.get(prefix.len()..))
        .flatten()
}

fn strip_suffix_ignore_case<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let at = s.len().checked_sub(suffix.len())?;
    let tail = s.get(at..)?;
    tail.eq_ignore_ascii_case(suffix)
        .then(|| s.get(..at))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_become_endpoints() {
        let parse = |s: &str| ServerEndpoint::parse(s, "/api/", "the server", "mail.example.com");
        let cases = [
            ("mail.example.com", "https://mail.example.com/api/"),
            (
                "Mail.Example.com:32001",
                "https://mail.example.com:32001/api/",
            ),
            ("http://10.0.0.5:32000", "http://10.0.0.5:32000/api/"),
            ("HTTP://10.0.0.5", "http://10.0.0.5/api/"),
            ("https://mail.example.com/", "https://mail.example.com/api/"),
            (
                "https://mail.example.com/api/",
                "https://mail.example.com/api/",
            ),
            ("::1", "https://[::1]/api/"),
            ("[::1]:8443", "https://[::1]:8443/api/"),
            ("127.0.0.1:1", "https://127.0.0.1:1/api/"),
        ];
        for (server, url) in cases {
            assert_eq!(parse(server).unwrap().url("/api/"), url, "{server}");
        }
        for bad in [
            "",
            "ftp://x",
            "mail.example.com:0",
            "mail.example.com:99999",
            "mail.example.com:abc",
            "a b",
            "mail.example.com/other",
            "user@mail.example.com",
            "[::1",
            "x:y:z",
        ] {
            let err = parse(bad).unwrap_err();
            assert_eq!(err.key, "server", "{bad}");
            assert!(err.message.contains("the server"), "{bad}: {}", err.message);
        }
    }

    #[test]
    fn domains_and_groups_are_checked_and_selected() {
        let domains = vec![" Example.com ".into(), "example.com".into(), "b.org".into()];
        let groups = vec!["Sales@Example.com".into()];
        check_scope(&domains, &groups, "by address").unwrap();
        assert_eq!(selected(&domains), ["example.com", "b.org"]);
        assert_eq!(selected(&groups), ["sales@example.com"]);
        let rule = scope_rule(&domains, &groups, "user", "users");
        assert!(rule.starts_with("a user is synchronized when"), "{rule}");
        assert!(rule.contains(" or a member of"), "{rule}");
        assert_eq!(
            scope_rule(&[], &[], "user account", "user accounts"),
            "no domains or groups are selected: every user account of every domain is synchronized"
        );
        for (domains, groups, key) in [
            (vec!["sales@example.com"], vec![], "domains"),
            (vec!["not a domain"], vec![], "domains"),
            (vec![""], vec![], "domains"),
            (vec![], vec!["sales"], "groups"),
            (vec![], vec!["@example.com"], "groups"),
            (vec![], vec!["sales@"], "groups"),
        ] {
            let domains: Vec<String> = domains.into_iter().map(Into::into).collect();
            let groups: Vec<String> = groups.into_iter().map(Into::into).collect();
            let err = check_scope(&domains, &groups, "as name@domain").unwrap_err();
            assert_eq!(err.key, key, "{domains:?} {groups:?}");
        }
    }
}
