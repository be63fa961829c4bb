//! One Kerio Connect JSON-RPC call, and the session around calls: `Session.login` (its token and the
//! `SESSION_CONNECT_WEBADMIN` cookie, both sent on every later call), `Session.logout`. Every way an answer
//! can be wrong becomes a [`DirectoryError`] that names what came back, never the request (it may hold
//! a password). RPC errors come with HTTP 200 [V]: the `error` object's code and message are shown.

use std::time::Duration;

use serde_json::{Value, json};

use crate::error::DirectoryError;
use crate::http::{Limited, client, describe_body, looks_like_html, read_limited, transport_error};

/// How long one API request may take.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(60);
const COOKIE: &str = "SESSION_CONNECT_WEBADMIN";
const CONNECT_HINT: &str = "check `server` (name or address, and the port: 4040 for Kerio Connect's administration) and that the server is running";

/// An administrator's session: the cookie's value and the token (the `X-Token` header).
#[derive(Debug, Clone)]
pub(super) struct Session {
    cookie: String,
    token: String,
}

/// A well-formed answer: the result, or the `error` object's code and message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Reply {
    Result(Value),
    Error { code: i64, message: String },
}

#[derive(Debug, Clone)]
pub(super) struct Api {
    client: reqwest::Client,
    url: String,
    /// "the Kerio Connect server https://mail.example.com:4040", for messages.
    pub(super) target: String,
    next_id: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Api {
    pub(super) fn new(
        url: String,
        origin: &str,
        tls: Option<rustls::ClientConfig>,
    ) -> Result<Api, DirectoryError> {
        Ok(Api {
            client: client(tls)?,
            url,
            target: format!("the Kerio Connect server {origin}"),
            next_id: Default::default(),
        })
    }

    fn protocol(&self, method: &str, what: String) -> DirectoryError {
        DirectoryError::Protocol {
            message: format!("{} answered `{method}` with {what}", self.target),
        }
    }

    /// Posts `method` with `params` (an object) in `session`; the reply, and the session cookie if the
    /// answer set one.
    pub(super) async fn call(
        &self,
        session: Option<&Session>,
        method: &str,
        params: Value,
        operation: &'static str,
    ) -> Result<(Reply, Option<String>), DirectoryError> {
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        let mut request = self
            .client
            .post(&self.url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json-rpc; charset=UTF-8",
            )
            .header(reqwest::header::ACCEPT, "application/json-rpc")
            .timeout(CALL_TIMEOUT)
            .body(body.to_string());
        if let Some(s) = session {
            request = request
                .header(reqwest::header::COOKIE, format!("{COOKIE}={}", s.cookie))
                .header("X-Token", &s.token);
        }
        let response = request.send().await.map_err(|e| {
            transport_error(&e, &self.target, operation, CALL_TIMEOUT, CONNECT_HINT)
        })?;
        let status = response.status();
        let cookie = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == COOKIE)
            .map(|(_, value)| value.to_owned());
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("no content type")
            .to_owned();
        let bytes = read_limited(response).await.map_err(|e| match e {
            Limited::Transport(e) => {
                transport_error(&e, &self.target, operation, CALL_TIMEOUT, CONNECT_HINT)
            }
            Limited::TooLarge => self.protocol(
                method,
                format!(
                    "a reply of more than {} bytes",
                    crate::http::MAX_REPLY_BYTES
                ),
            ),
        })?;
        let text = String::from_utf8_lossy(&bytes);
        if !status.is_success() {
            return Err(self.protocol(
                method,
                format!("HTTP {status} ({content_type}) {}", describe_body(&text)),
            ));
        }
        if looks_like_html(&text) {
            return Err(self.protocol(
                method,
                format!(
                    "an HTML page ({content_type}) {} instead of the API's JSON",
                    describe_body(&text)
                ),
            ));
        }
        let reply = parse_reply(&text).map_err(|what| match what {
            ReplyError::Json(e) => self.protocol(
                method,
                format!(
                    "malformed or truncated JSON ({e}; {} bytes, {content_type})",
                    bytes.len()
                ),
            ),
            ReplyError::Shape(what) => self.protocol(method, what.into()),
        })?;
        Ok((reply, cookie))
    }

    /// [`Api::call`] for a method whose error answers have no meaning to the caller: the result, or
    /// the error as [`DirectoryError::KerioRpc`] with Kerio's code and message.
    pub(super) async fn call_ok(
        &self,
        session: &Session,
        method: &str,
        params: Value,
        operation: &'static str,
    ) -> Result<Value, DirectoryError> {
        match self.call(Some(session), method, params, operation).await?.0 {
            Reply::Result(result) => Ok(result),
            Reply::Error { code, message } => Err(DirectoryError::KerioRpc {
                target: self.target.clone(),
                method: method.to_owned(),
                code,
                message,
            }),
        }
    }

    /// `Session.login` as the administrator; any error there is a refused logon.
    pub(super) async fn login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Session, DirectoryError> {
        let params = json!({
            "userName": username,
            "password": password,
            "application": {"name": "Roster", "vendor": "Roster", "version": env!("CARGO_PKG_VERSION")},
        });
        let (reply, cookie) = self
            .call(None, "Session.login", params, "logging on")
            .await?;
        match reply {
            Reply::Error { code, message } => Err(DirectoryError::KerioServiceLogon {
                target: self.target.clone(),
                username: username.to_owned(),
                code,
                message,
            }),
            Reply::Result(result) => {
                let token = result.get("token").and_then(Value::as_str);
                match (token, cookie) {
                    (Some(token), Some(cookie)) if !token.is_empty() => Ok(Session {
                        cookie,
                        token: token.to_owned(),
                    }),
                    _ => Err(self.protocol(
                        "Session.login",
                        "a logon without a token or without the session cookie".into(),
                    )),
                }
            }
        }
    }

    /// `Session.logout`, best effort: the read's outcome doesn't depend on it.
    pub(super) async fn logout(&self, session: &Session) {
        if let Err(e) = self
            .call(Some(session), "Session.logout", json!({}), "logging out")
            .await
        {
            tracing::debug!(target = %self.target, error = %e, "Session.logout failed");
        }
    }
}

/// A message with `%1`, `%2`… filled from `data.messageParameters.positionalParameters`.
/// Why a reply's text is not a JSON-RPC answer.
#[derive(Debug)]
pub(crate) enum ReplyError {
    Json(serde_json::Error),
    Shape(&'static str),
}

/// A reply's text as a JSON-RPC answer: the result, or the error's code and message (filled from its
/// parameters). Pure, so that it is tested on any text (`fuzz.rs`).
pub(crate) fn parse_reply(text: &str) -> Result<Reply, ReplyError> {
    let value: Value = serde_json::from_str(text).map_err(ReplyError::Json)?;
    match (value.get("result"), value.get("error")) {
        (Some(result), None) => Ok(Reply::Result(result.clone())),
        (None, Some(error)) => {
            let code = error.get("code").and_then(Value::as_i64);
            let message = error.get("message").and_then(Value::as_str);
            match (code, message) {
                (Some(code), Some(message)) => Ok(Reply::Error {
                    code,
                    message: fill(message, error),
                }),
                _ => Err(ReplyError::Shape(
                    "an error object without a numeric code and a message",
                )),
            }
        }
        _ => Err(ReplyError::Shape(
            "JSON that has neither `result` nor `error`",
        )),
    }
}

/// The most bytes of an error message kept: it is shown to an administrator and stored in a run.
const MESSAGE_LIMIT: usize = 2000;

/// Kerio's message with its `%1`, `%2`… replaced by the error's positional parameters, cut at
/// [`MESSAGE_LIMIT`]. One pass over the message: replacing each parameter in turn would let a reply of
/// a few megabytes (a message of many `%1` and a long parameter) grow to gigabytes.
fn fill(message: &str, error: &Value) -> String {
    let parameters: &[Value] = error
        .pointer("/data/messageParameters/positionalParameters")
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice);
    let mut out = String::new();
    let mut rest = message;
    while out.len() < MESSAGE_LIMIT {
        let Some(at) = rest.find('%') else {
            out.push_str(rest);
            break;
        };
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        // The longest number that names a parameter (so `%10` is the tenth, not the first and a 0).
        let chosen = (1..=digits.min(6)).rev().find_map(|n| {
            let index: usize = after[..n].parse().ok()?;
            let p = parameters.get(index.checked_sub(1)?)?;
            Some((n, p))
        });
        match chosen {
            Some((n, p)) => {
                match p.as_str() {
                    Some(text) => out.push_str(text),
                    None => out.push_str(&p.to_string()),
                }
                rest = &after[n..];
            }
            None => {
                out.push('%');
                rest = after;
            }
        }
    }
    if out.len() > MESSAGE_LIMIT {
        let mut end = MESSAGE_LIMIT;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use roster_testkit::TestCa;
    use roster_testkit::kerio::{
        Domain, Fault, FaultKind, Fixture, KerioEmulator, Role, TlsFiles, User,
    };

    #[test]
    fn messages_are_filled_from_their_parameters() {
        let error = json!({"data": {"messageParameters": {"positionalParameters": ["x", "y"]}}});
        assert_eq!(fill("User %1 in %2 exists.", &error), "User x in y exists.");
        assert_eq!(fill("Session expired.", &json!({})), "Session expired.");
        let ten = json!({"data": {"messageParameters": {"positionalParameters": ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]}}});
        assert_eq!(fill("%10 %1 %11 100% %", &ten), "j a a1 100% %");
    }

    /// A reply of a few megabytes must not become gigabytes: a message of many `%1` and a long
    /// parameter is filled in one pass and cut at the limit.
    #[test]
    fn a_message_is_filled_within_its_limit() {
        let long = "x".repeat(1 << 20);
        let error = json!({"data": {"messageParameters": {"positionalParameters": [long]}}});
        let filled = fill(&"%1".repeat(1 << 19), &error);
        assert!(
            filled.len() <= MESSAGE_LIMIT + '…'.len_utf8(),
            "{}",
            filled.len()
        );
        assert!(filled.ends_with('…'));
    }

    fn fixture() -> Fixture {
        Fixture {
            version: "10.0.8.9228".into(),
            domains: vec![Domain {
                name: "example.com".into(),
                users: vec![User {
                    login_name: "admin".into(),
                    password: "admin-pw".into(),
                    role: Role::FullAdmin,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    async fn emulator(ca: &TestCa) -> (KerioEmulator, Api) {
        let cert = ca.issue_server_cert("localhost").unwrap();
        let emulator = KerioEmulator::start(
            fixture(),
            "127.0.0.1:0",
            Some(TlsFiles {
                cert: &cert.cert_path,
                key: &cert.key_path,
            }),
        )
        .await
        .unwrap();
        let tls = crate::tls::client_config(Some(ca.ca_cert_path()), false).unwrap();
        let origin = format!("https://{}", emulator.addr());
        let api = Api::new(emulator.url(), &origin, Some((*tls).clone())).unwrap();
        (emulator, api)
    }

    #[tokio::test]
    async fn a_session_logs_on_calls_and_logs_out() {
        let ca = TestCa::generate().unwrap();
        let (emulator, api) = emulator(&ca).await;
        let session = api.login("admin", "admin-pw").await.unwrap();
        let (reply, _) = api
            .call(
                Some(&session),
                "Domains.get",
                json!({"query": {}}),
                "reading",
            )
            .await
            .unwrap();
        let Reply::Result(result) = reply else {
            panic!("{reply:?}")
        };
        assert_eq!(result["totalItems"], 1);
        assert_eq!(emulator.controls().open_sessions(), 1);
        api.logout(&session).await;
        assert_eq!(emulator.controls().open_sessions(), 0);
        let (after, _) = api
            .call(
                Some(&session),
                "Domains.get",
                json!({"query": {}}),
                "reading",
            )
            .await
            .unwrap();
        assert!(
            matches!(after, Reply::Error { code: -32001, .. }),
            "{after:?}"
        );
    }

    #[tokio::test]
    async fn refusals_and_wrong_answers_are_named() {
        let ca = TestCa::generate().unwrap();
        let (emulator, api) = emulator(&ca).await;
        let err = api.login("admin", "wrong-pw").await.unwrap_err();
        assert_eq!(err.code(), "DI026-kerio-service-logon", "{err}");
        assert!(err.to_string().contains("error 1000"), "{err}");
        assert!(!err.to_string().contains("wrong-pw"), "{err}");

        let session = api.login("admin", "admin-pw").await.unwrap();
        let controls = emulator.controls();
        controls.inject(Fault::once("Domains.get", FaultKind::HtmlErrorPage(502)));
        let err = api
            .call(
                Some(&session),
                "Domains.get",
                json!({"query": {}}),
                "reading",
            )
            .await
            .unwrap_err();
        assert_eq!(err.code(), "DI015-protocol", "{err}");
        assert!(err.to_string().contains("502"), "{err}");
        assert!(err.to_string().contains("titled \"502 Error\""), "{err}");
        controls.inject(Fault::once("Domains.get", FaultKind::TruncatedJson));
        let err = api
            .call(
                Some(&session),
                "Domains.get",
                json!({"query": {}}),
                "reading",
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("truncated JSON"), "{err}");
        controls.inject(Fault::once(
            "Domains.get",
            FaultKind::RpcError(1004, "Insufficient rights.".into()),
        ));
        let (reply, _) = api
            .call(
                Some(&session),
                "Domains.get",
                json!({"query": {}}),
                "reading",
            )
            .await
            .unwrap();
        assert_eq!(
            reply,
            Reply::Error {
                code: 1004,
                message: "Insufficient rights.".into()
            }
        );
        controls.inject(Fault::once(
            "Domains.get",
            FaultKind::RpcError(1004, "Insufficient rights.".into()),
        ));
        let err = api
            .call_ok(&session, "Domains.get", json!({"query": {}}), "reading")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "DI027-kerio-rpc", "{err}");
        let text = err.to_string();
        assert!(
            text.contains("error 1004 (\"Insufficient rights.\")")
                && text.contains("full administration rights"),
            "{text}"
        );
        let domains = api
            .call_ok(&session, "Domains.get", json!({"query": {}}), "reading")
            .await
            .unwrap();
        assert_eq!(domains["list"][0]["name"], "example.com");

        // A self-signed certificate is refused.
        let other = TestCa::generate().unwrap();
        let tls = crate::tls::client_config(Some(other.ca_cert_path()), false).unwrap();
        let untrusting = Api::new(emulator.url(), "x", Some((*tls).clone())).unwrap();
        let err = untrusting.login("admin", "admin-pw").await.unwrap_err();
        assert_eq!(err.code(), "DI005-certificate-untrusted", "{err}");
    }
}
