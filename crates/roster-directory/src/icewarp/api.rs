//! One IceWarp API call: the envelope out, the envelope back, and every way the answer can be wrong
//! turned into a [`DirectoryError`] that names what came back. Never the request: it may hold a password.

use std::time::Duration;

use super::xml::{Element, esc, parse};
use crate::error::DirectoryError;
use crate::http::{Limited, client, describe_body, looks_like_html, read_limited, transport_error};

/// How long one API request of a read may take.
pub(super) const READ_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a `getauthtoken` may take: IceWarp answers a wrong password after 24-30 s (longer after
/// repeated failures), so at least 60 s (the floor) plus room.
pub(super) const LOGON_TIMEOUT: Duration = Duration::from_secs(90);

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
        let client = client(tls)?;
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
                format!(
                    "a reply of more than {} bytes",
                    crate::http::MAX_REPLY_BYTES
                ),
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
        transport_error(
            error,
            &self.target,
            operation,
            timeout,
            "check `server` (name or address, and the port: 443, or 32001 for the WebAdmin's HTTPS) and that the server is running",
        )
    }
}
