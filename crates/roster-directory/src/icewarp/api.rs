//! One IceWarp API call: the envelope out, the envelope back, and every way the answer can be wrong
//! turned into a [`DirectoryError`] that names what came back. Never the request: it may hold a password.

use std::time::Duration;

use super::xml::{Element, esc, parse};
use crate::error::DirectoryError;

/// How long one API request of a read may take.
pub(super) const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a `getauthtoken` may take: IceWarp answers a wrong password after 24-30 s (longer after
/// repeated failures), so at least 60 s (the floor) plus room.
pub(super) const LOGON_TIMEOUT: Duration = Duration::from_secs(90);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest reply read: a page of 500 accounts is about 250 KB.
const MAX_REPLY_BYTES: usize = 32 * 1024 * 1024;

/// A well-formed API answer.
#[derive(Debug)]
pub(super) enum Reply {
    /// `iq@type="result"`: the `<result>` element, and the `iq@sid` if any.
    Result {
        sid: Option<String>,
        result: Element,
    },
    /// `iq@type="error"`: the error's uid.
    Error { uid: String },
}

#[derive(Debug, Clone)]
pub(super) struct Api {
    client: reqwest::Client,
    url: String,
    /// "the IceWarp server https://mail.example.com", for messages.
    pub(super) target: String,
}

impl Api {
    pub(super) fn new(
        url: String,
        origin: &str,
        tls: Option<rustls::ClientConfig>,
    ) -> Result<Api, DirectoryError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            // The API never redirects; a redirect is a web page in front of it (a login, another site).
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(30))
            .user_agent(concat!("roster/", env!("CARGO_PKG_VERSION")));
        if let Some(config) = tls {
            builder = builder.tls_backend_preconfigured(config);
        }
        let client = builder.build().map_err(|e| DirectoryError::Internal {
            message: format!("building the HTTP client: {e}"),
        })?;
        Ok(Api {
            client,
            url,
            target: format!("the IceWarp server {origin}"),
        })
    }

    /// Posts `command` with `params` (already XML) under `sid`.
    pub(super) async fn call(
        &self,
        sid: Option<&str>,
        command: &str,
        params: &str,
        timeout: Duration,
        operation: &'static str,
    ) -> Result<Reply, DirectoryError> {
        let sid_attr = sid
            .map(|s| format!(" sid=\"{}\"", esc(s)))
            .unwrap_or_default();
        let body = format!(
            "<iq{sid_attr}><query xmlns=\"admin:iq:rpc\"><commandname>{command}</commandname><commandparams>{params}</commandparams></query></iq>"
        );
        let response = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "text/xml; charset=utf-8")
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error(&e, operation, timeout))?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("no content type")
            .to_owned();
        let bytes = read_limited(response).await.map_err(|e| match e {
            Limited::Transport(e) => self.transport_error(&e, operation, timeout),
            Limited::TooLarge => self.protocol(
                command,
                format!("a reply of more than {MAX_REPLY_BYTES} bytes"),
            ),
        })?;
        let text = String::from_utf8_lossy(&bytes);
        if !status.is_success() {
            return Err(self.protocol(
                command,
                format!("HTTP {status} ({content_type}) {}", describe_body(&text)),
            ));
        }
        if looks_like_html(&text) {
            return Err(self.protocol(
                command,
                format!(
                    "an HTML page ({content_type}) {} instead of the API's XML",
                    describe_body(&text)
                ),
            ));
        }
        let root = parse(&text).map_err(|why| {
            self.protocol(
                command,
                format!(
                    "a malformed or truncated XML reply ({why}; {} bytes, {content_type})",
                    bytes.len()
                ),
            )
        })?;
        if root.name != "iq" {
            return Err(self.protocol(
                command,
                format!("an XML document whose root is <{}>, not <iq>", root.name),
            ));
        }
        let query = root.child("query");
        match root.attr("type") {
            Some("result") => {
                let Some(result) = query.and_then(|q| q.child("result")) else {
                    return Err(self.protocol(command, "a result without <query><result>".into()));
                };
                Ok(Reply::Result {
                    sid: root.attr("sid").map(str::to_owned),
                    result: result.clone(),
                })
            }
            Some("error") => {
                let uid = query
                    .and_then(|q| q.child("error"))
                    .and_then(|e| e.attr("uid"))
                    .unwrap_or_default();
                if uid.is_empty() {
                    return Err(
                        self.protocol(command, "an error answer without an error uid".into())
                    );
                }
                Ok(Reply::Error {
                    uid: uid.to_owned(),
                })
            }
            other => Err(self.protocol(
                command,
                format!(
                    "an <iq> of type {:?}, neither result nor error",
                    other.unwrap_or("")
                ),
            )),
        }
    }

    fn protocol(&self, command: &str, what: String) -> DirectoryError {
        DirectoryError::Protocol {
            message: format!("{} answered `{command}` with {what}", self.target),
        }
    }

    fn transport_error(
        &self,
        error: &reqwest::Error,
        operation: &'static str,
        timeout: Duration,
    ) -> DirectoryError {
        let detail = chain(error);
        if error.is_timeout() {
            return DirectoryError::Timeout {
                target: self.target.clone(),
                operation,
                seconds: u32::try_from(timeout.as_secs()).unwrap_or(u32::MAX),
            };
        }
        // rustls's error is sometimes behind a wrapper that hides it from downcasting (the connector's
        // boxed errors); its text is then the sign ("invalid peer certificate: UnknownIssuer").
        if detail.contains("invalid peer certificate")
            || detail.contains("no certificates presented")
        {
            return DirectoryError::CertificateUntrusted {
                target: self.target.clone(),
                detail,
            };
        }
        if let Some(tls) = find_rustls_error(error) {
            if crate::tls::certificate_problem(tls) {
                return DirectoryError::CertificateUntrusted {
                    target: self.target.clone(),
                    detail,
                };
            }
            return DirectoryError::Tls {
                target: self.target.clone(),
                detail,
                hint: "check that the server speaks HTTPS on this port (write http:// in front of `server` for plain HTTP)",
            };
        }
        if error.is_connect() {
            return DirectoryError::Connect {
                target: self.target.clone(),
                detail,
                hint: "check `server` (name or address, and the port: 443, or 32001 for the WebAdmin's HTTPS) and that the server is running",
            };
        }
        DirectoryError::Disconnected {
            target: self.target.clone(),
            operation,
            entries: 0,
            detail,
            hint: "Try again; if it keeps happening, check the server and anything between (a proxy)",
        }
    }
}

enum Limited {
    Transport(reqwest::Error),
    TooLarge,
}

async fn read_limited(mut response: reqwest::Response) -> Result<Vec<u8>, Limited> {
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

fn looks_like_html(text: &str) -> bool {
    let start = text.trim_start().get(..15).unwrap_or(text.trim_start());
    let lower = start.to_ascii_lowercase();
    lower.starts_with("<!doctype html") || lower.starts_with("<html")
}

/// A short description of a body for an error message: an HTML page by its title, anything else by its
/// first characters.
fn describe_body(text: &str) -> String {
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
