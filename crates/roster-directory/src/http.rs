//! What the connectors that speak HTTP share (IceWarp's XML API, Kerio Connect's JSON-RPC): the client
//! (our rustls config, no redirects), reading a reply with a size limit, and turning what goes wrong into
//! a [`DirectoryError`] that names what came back (a transport error by its cause, an HTML page by its
//! title). Never the request: it may hold a password.

use std::time::Duration;

use crate::error::DirectoryError;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest reply read: a page of 500 accounts is about 250 KB.
pub(crate) const MAX_REPLY_BYTES: usize = 32 * 1024 * 1024;

/// The HTTP client: HTTPS with `tls` (our rustls config) when given; never follows a redirect (an API
/// doesn't redirect; a redirect is a web page in front of it).
pub(crate) fn client(tls: Option<rustls::ClientConfig>) -> Result<reqwest::Client, DirectoryError> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(30))
        .user_agent(concat!("roster/", env!("CARGO_PKG_VERSION")));
    if let Some(config) = tls {
        builder = builder.tls_backend_preconfigured(config);
    }
    builder.build().map_err(|e| DirectoryError::Internal {
        message: format!("building the HTTP client: {e}"),
    })
}

/// A request that failed before a reply: timeout, untrusted certificate, TLS, connect, or a lost
/// connection. `connect_hint` says which settings to check when nothing answered.
pub(crate) fn transport_error(
    error: &reqwest::Error,
    target: &str,
    operation: &'static str,
    timeout: Duration,
    connect_hint: &'static str,
) -> DirectoryError {
    let target = target.to_owned();
    let detail = chain(error);
    if error.is_timeout() {
        return DirectoryError::Timeout {
            target: target.clone(),
            operation,
            seconds: u32::try_from(timeout.as_secs()).unwrap_or(u32::MAX),
        };
    }
    // rustls's error is sometimes behind a wrapper that hides it from downcasting (the connector's
    // boxed errors); its text is then the sign ("invalid peer certificate: UnknownIssuer").
    if detail.contains("invalid peer certificate") || detail.contains("no certificates presented") {
        return DirectoryError::CertificateUntrusted {
            target: target.clone(),
            detail,
        };
    }
    if let Some(tls) = find_rustls_error(error) {
        if crate::tls::certificate_problem(tls) {
            return DirectoryError::CertificateUntrusted {
                target: target.clone(),
                detail,
            };
        }
        return DirectoryError::Tls {
            target: target.clone(),
            detail,
            hint: "check that the server speaks HTTPS on this port (write http:// in front of `server` for plain HTTP)",
        };
    }
    if error.is_connect() {
        return DirectoryError::Connect {
            target: target.clone(),
            detail,
            hint: connect_hint,
        };
    }
    DirectoryError::Disconnected {
        target: target.clone(),
        operation,
        entries: 0,
        detail,
        hint: "Try again; if it keeps happening, check the server and anything between (a proxy)",
    }
}

pub(crate) enum Limited {
    Transport(reqwest::Error),
    TooLarge,
}

pub(crate) async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, Limited> {
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Limited::Transport)? {
        if out.len() + chunk.len() > MAX_REPLY_BYTES {
            return Err(Limited::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Every message in an error's source chain, joined: reqwest's own says only "error sending request".
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

fn find_rustls_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(tls);
        }
        source = e.source();
    }
    None
}

pub(crate) fn looks_like_html(text: &str) -> bool {
    let start = text.trim_start().get(..15).unwrap_or(text.trim_start());
    let lower = start.to_ascii_lowercase();
    lower.starts_with("<!doctype html") || lower.starts_with("<html")
}

/// A short description of a body for an error message: an HTML page by its title, anything else by its
/// first characters.
pub(crate) fn describe_body(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    if let (Some(start), Some(end)) = (lower.find("<title>"), lower.find("</title>"))
        && let Some(title) = text.get(start + "<title>".len()..end)
    {
        return format!("titled {:?}", title.trim());
    }
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return "with an empty body".into();
    }
    let mut cut: String = trimmed.chars().take(80).collect();
    if cut.len() < trimmed.len() {
        cut.push('…');
    }
    format!("starting {cut:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_described_by_title_or_start() {
        assert_eq!(
            describe_body("<html><head><title> 502 Bad Gateway </title></head></html>"),
            "titled \"502 Bad Gateway\""
        );
        assert_eq!(describe_body(""), "with an empty body");
        assert!(describe_body(&"x".repeat(200)).ends_with("…\""));
        assert!(looks_like_html("\n<!DOCTYPE html>\n<html>"));
        assert!(!looks_like_html("<?xml version=\"1.0\"?><iq/>"));
    }
}
