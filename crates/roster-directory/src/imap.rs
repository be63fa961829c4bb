//! A user's password checked by an IMAP login (issue 23: Kerio Connect's admin API can't check one;
//! protocols.md §2.6). The few commands needed are written by hand, each reply form with a test:
//! no maintained async IMAP client crate fits with our rustls provider and the STARTTLS step without
//! bringing in far more than four commands.
//!
//! The rules:
//! * only inside TLS: `imaps://` (TLS from the start) or `imap://` with STARTTLS; a server that doesn't
//!   offer STARTTLS is refused ([`DirectoryError::ImapWithoutTls`]) before the password is sent;
//! * `AUTHENTICATE PLAIN` (with SASL-IR when offered), else `AUTHENTICATE LOGIN`, else the `LOGIN`
//!   command (unless `LOGINDISABLED`); never CRAM-MD5 or DIGEST-MD5,
//!   whatever the server lists first: they fail for passwords Kerio keeps as SHA hashes or checks
//!   against Active Directory (the seed's "Important Notice"); a server with neither gets
//!   [`DirectoryError::ImapNoPlaintextLogon`];
//! * the tagged `OK` is a right password; `NO` a wrong one or an unknown user (the same answer);
//!   `BAD`, a closed connection or anything else is an error, never a rejection;
//! * the whole exchange has one deadline; the connection ends with `LOGOUT` when it can.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use roster_core::directory::{ImapEndpoint, ImapSecurity};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::error::DirectoryError;
use crate::tls::certificate_problem;

/// The longest reply line read (a CAPABILITY line is a few hundred bytes).
const MAX_LINE: u64 = 64 * 1024;

/// How long [`ImapChecker::probe`] may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how passwords are checked.
#[derive(Debug, Clone)]
pub(crate) struct ImapChecker {
    pub endpoint: ImapEndpoint,
    pub tls: Arc<ClientConfig>,
    pub timeout: Duration,
}

/// A tagged reply's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Ok,
    No,
    Bad,
}

/// One parsed reply line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// `* ...` (the text after `* `).
    Untagged(String),
    /// `+ ...`: the server waits for more.
    Continue,
    /// `tag OK|NO|BAD ...`.
    Tagged(String, Status),
}

fn parse_line(line: &str) -> Option<Line> {
    let line = line.trim_end_matches(['\r', '\n']);
    if let Some(rest) = line.strip_prefix("* ") {
        return Some(Line::Untagged(rest.to_owned()));
    }
    if line == "+" || line.starts_with("+ ") {
        return Some(Line::Continue);
    }
    let (tag, rest) = line.split_once(' ')?;
    let word = rest.split(' ').next().unwrap_or_default();
    let status = match word.to_ascii_uppercase().as_str() {
        "OK" => Status::Ok,
        "NO" => Status::No,
        "BAD" => Status::Bad,
        _ => return None,
    };
    Some(Line::Tagged(tag.to_owned(), status))
}

/// The capabilities in a `CAPABILITY ...` untagged reply or a greeting's `[CAPABILITY ...]` code,
/// upper-cased.
fn capabilities_in(untagged: &str) -> Option<Vec<String>> {
    let text = if let Some(rest) = untagged.strip_prefix("CAPABILITY ") {
        rest
    } else {
        let at = untagged.find("[CAPABILITY ")?;
        let rest = untagged.get(at + "[CAPABILITY ".len()..)?;
        rest.split(']').next()?
    };
    Some(
        text.split_ascii_whitespace()
            .map(str::to_ascii_uppercase)
            .collect(),
    )
}

/// How the password goes, given what the server offers inside TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    /// `AUTHENTICATE PLAIN <initial response>`.
    PlainInitial,
    /// `AUTHENTICATE PLAIN`, then the response after `+`.
    Plain,
    /// `AUTHENTICATE LOGIN`: the user name and the password after one `+` each.
    SaslLogin,
    /// The `LOGIN` command.
    Login,
}

fn choose(capabilities: &[String]) -> Option<Method> {
    let has = |c: &str| capabilities.iter().any(|x| x == c);
    if has("AUTH=PLAIN") {
        Some(if has("SASL-IR") {
            Method::PlainInitial
        } else {
            Method::Plain
        })
    } else if has("AUTH=LOGIN") {
        Some(Method::SaslLogin)
    } else if !has("LOGINDISABLED") {
        Some(Method::Login)
    } else {
        None
    }
}

/// An IMAP string for LOGIN: quoted when it can be, else a literal (`{n}` and the bytes after `+`).
enum Astring {
    Quoted(String),
    Literal(Vec<u8>),
}

fn astring(value: &str) -> Astring {
    let quotable = value
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) || b == b'\t');
    if quotable {
        Astring::Quoted(format!(
            "\"{}\"",
            value.replace('\\', "\\\\").replace('"', "\\\"")
        ))
    } else {
        Astring::Literal(value.as_bytes().to_vec())
    }
}

struct Session<S> {
    stream: BufReader<S>,
    target: String,
    next_tag: u32,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    fn lost(&self, detail: impl std::fmt::Display) -> DirectoryError {
        DirectoryError::Disconnected {
            target: self.target.clone(),
            operation: "checking a password",
            entries: 0,
            detail: detail.to_string(),
            hint: "Try again; check `imap_server`",
        }
    }

    fn garbled(&self, what: &str) -> DirectoryError {
        DirectoryError::Protocol {
            message: format!("{} answered {what:?}, which is not IMAP", self.target),
        }
    }

    async fn read_line(&mut self) -> Result<Line, DirectoryError> {
        let mut bytes = Vec::new();
        let read = (&mut self.stream)
            .take(MAX_LINE)
            .read_until(b'\n', &mut bytes)
            .await
            .map_err(|e| self.lost(e))?;
        if read == 0 {
            return Err(self.lost("the server closed the connection"));
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        parse_line(&text).ok_or_else(|| {
            let shown: String = text.trim_end().chars().take(80).collect();
            self.garbled(&shown)
        })
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<(), DirectoryError> {
        let stream = self.stream.get_mut();
        let sent = match stream.write_all(bytes).await {
            Ok(()) => stream.flush().await,
            Err(e) => Err(e),
        };
        sent.map_err(|e| self.lost(e))
    }

    fn tag(&mut self) -> String {
        self.next_tag += 1;
        format!("r{}", self.next_tag)
    }

    /// Reads to the tagged reply of `tag`, collecting capabilities on the way.
    async fn finish(
        &mut self,
        tag: &str,
        capabilities: &mut Vec<String>,
    ) -> Result<Status, DirectoryError> {
        loop {
            match self.read_line().await? {
                Line::Untagged(text) => {
                    if text.to_ascii_uppercase().starts_with("BYE") {
                        return Err(self.lost(format!("the server said {text:?}")));
                    }
                    if let Some(caps) = capabilities_in(&text) {
                        *capabilities = caps;
                    }
                }
                Line::Tagged(t, status) if t == tag => return Ok(status),
                Line::Tagged(t, _) => return Err(self.garbled(&format!("a reply to {t}"))),
                Line::Continue => return Err(self.garbled("+")),
            }
        }
    }

    /// The greeting's capabilities (empty when it lists none).
    async fn greeting(&mut self) -> Result<Vec<String>, DirectoryError> {
        match self.read_line().await? {
            Line::Untagged(greeting) if greeting.to_ascii_uppercase().starts_with("OK") => {
                Ok(capabilities_in(&greeting).unwrap_or_default())
            }
            Line::Untagged(other) => Err(self.lost(format!("the server said {other:?}"))),
            _ => Err(self.garbled("no greeting")),
        }
    }

    async fn capability(&mut self) -> Result<Vec<String>, DirectoryError> {
        let tag = self.tag();
        self.send(format!("{tag} CAPABILITY\r\n").as_bytes())
            .await?;
        let mut caps = Vec::new();
        match self.finish(&tag, &mut caps).await? {
            Status::Ok => Ok(caps),
            _ => Err(self.garbled("a refused CAPABILITY")),
        }
    }

    /// Waits for the server's `+`.
    async fn expect_continue(&mut self) -> Result<(), DirectoryError> {
        match self.read_line().await? {
            Line::Continue => Ok(()),
            Line::Tagged(_, _) => {
                Err(self.garbled("a refusal where it should have asked for more"))
            }
            Line::Untagged(text) => Err(self.garbled(&text)),
        }
    }

    async fn log_on(
        &mut self,
        method: Method,
        user: &str,
        password: &str,
    ) -> Result<Status, DirectoryError> {
        let tag = self.tag();
        let mut plain = Vec::with_capacity(user.len() + password.len() + 2);
        plain.push(0);
        plain.extend_from_slice(user.as_bytes());
        plain.push(0);
        plain.extend_from_slice(password.as_bytes());
        let encoded = base64::engine::general_purpose::STANDARD.encode(&plain);
        match method {
            Method::PlainInitial => {
                self.send(format!("{tag} AUTHENTICATE PLAIN {encoded}\r\n").as_bytes())
                    .await?;
            }
            Method::Plain => {
                self.send(format!("{tag} AUTHENTICATE PLAIN\r\n").as_bytes())
                    .await?;
                self.expect_continue().await?;
                self.send(format!("{encoded}\r\n").as_bytes()).await?;
            }
            Method::SaslLogin => {
                let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
                self.send(format!("{tag} AUTHENTICATE LOGIN\r\n").as_bytes())
                    .await?;
                for value in [user, password] {
                    self.expect_continue().await?;
                    self.send(format!("{}\r\n", b64(value)).as_bytes()).await?;
                }
            }
            Method::Login => {
                let mut line = format!("{tag} LOGIN ").into_bytes();
                for (value, end) in [(user, &b" "[..]), (password, &b"\r\n"[..])] {
                    match astring(value) {
                        Astring::Quoted(quoted) => line.extend_from_slice(quoted.as_bytes()),
                        Astring::Literal(bytes) => {
                            line.extend_from_slice(format!("{{{}}}\r\n", bytes.len()).as_bytes());
                            self.send(&line).await?;
                            self.expect_continue().await?;
                            line = bytes;
                        }
                    }
                    line.extend_from_slice(end);
                }
                self.send(&line).await?;
            }
        }
        let mut ignored = Vec::new();
        self.finish(&tag, &mut ignored).await
    }
}

impl ImapChecker {
    /// The server as messages name it.
    pub(crate) fn target(&self) -> String {
        format!("the IMAP server {}", self.endpoint.url())
    }

    /// Whether the server takes this password for this login name (`Ok(false)`: wrong password or
    /// unknown user). An empty password is refused here, before any connection.
    pub(crate) async fn check(&self, login: &str, password: &str) -> Result<bool, DirectoryError> {
        if password.is_empty() {
            return Ok(false);
        }
        let target = self.target();
        let seconds = u32::try_from(self.timeout.as_secs()).unwrap_or(u32::MAX);
        match tokio::time::timeout(self.timeout, self.exchange(login, password)).await {
            Ok(answer) => answer,
            Err(_) => Err(DirectoryError::Timeout {
                target,
                operation: "checking a password",
                seconds,
            }),
        }
    }

    async fn handshake(
        &self,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, DirectoryError> {
        let host = self
            .endpoint
            .host
            .trim_start_matches('[')
            .trim_end_matches(']');
        let name = ServerName::try_from(host.to_owned()).map_err(|e| {
            DirectoryError::settings(
                "imap_server",
                format!("{host:?} can't be checked against a certificate ({e})"),
            )
        })?;
        tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| {
                let rustls_error = e
                    .get_ref()
                    .and_then(|inner| inner.downcast_ref::<rustls::Error>());
                match rustls_error {
                    Some(r) if certificate_problem(r) => DirectoryError::CertificateUntrusted {
                        target: self.target(),
                        detail: r.to_string(),
                    },
                    _ => DirectoryError::Tls {
                        target: self.target(),
                        detail: e.to_string(),
                        hint: "check that `imap_server` names the right port: imaps:// for TLS from the start (993), imap:// for STARTTLS (143)",
                    },
                }
            })
    }

    /// Connects, is inside TLS (from the start, or after STARTTLS), and has chosen how to send a
    /// password: everything before the password, which is never sent without it.
    async fn open(
        &self,
    ) -> Result<(Session<tokio_rustls::client::TlsStream<TcpStream>>, Method), DirectoryError> {
        let host = self
            .endpoint
            .host
            .trim_start_matches('[')
            .trim_end_matches(']');
        let tcp = TcpStream::connect((host, self.endpoint.port))
            .await
            .map_err(|e| DirectoryError::Connect {
                target: self.target(),
                detail: e.to_string(),
                hint: "check `imap_server` (or `server`, whose host it uses when empty) and that the IMAP service runs",
            })?;
        let (mut session, mut capabilities) = match self.endpoint.security {
            ImapSecurity::Tls => {
                let mut session = self.session(self.handshake(tcp).await?);
                let capabilities = session.greeting().await?;
                (session, capabilities)
            }
            ImapSecurity::StartTls => {
                let mut plain = self.session(tcp);
                let mut capabilities = plain.greeting().await?;
                if capabilities.is_empty() {
                    capabilities = plain.capability().await?;
                }
                if !capabilities.iter().any(|c| c == "STARTTLS") {
                    return Err(DirectoryError::ImapWithoutTls {
                        target: self.target(),
                    });
                }
                let tag = plain.tag();
                plain.send(format!("{tag} STARTTLS\r\n").as_bytes()).await?;
                let mut ignored = Vec::new();
                if plain.finish(&tag, &mut ignored).await? != Status::Ok {
                    return Err(DirectoryError::ImapWithoutTls {
                        target: self.target(),
                    });
                }
                // What the server said before TLS is forgotten (RFC 3501 §6.2.1), capabilities too.
                let mut session = self.session(self.handshake(plain.stream.into_inner()).await?);
                session.next_tag = plain.next_tag;
                (session, Vec::new())
            }
        };
        if capabilities.is_empty() {
            capabilities = session.capability().await?;
        }
        let method = choose(&capabilities).ok_or_else(|| DirectoryError::ImapNoPlaintextLogon {
            target: self.target(),
        })?;
        Ok((session, method))
    }

    async fn exchange(&self, login: &str, password: &str) -> Result<bool, DirectoryError> {
        let (mut session, method) = self.open().await?;
        let status = session.log_on(method, login, password).await?;
        // Best effort: the answer is known.
        let tag = session.tag();
        let _ = session.send(format!("{tag} LOGOUT\r\n").as_bytes()).await;
        match status {
            Status::Ok => Ok(true),
            Status::No => Ok(false),
            Status::Bad => Err(session.garbled("BAD to a logon")),
        }
    }

    /// Whether passwords can be checked here, without sending one: connects, goes inside TLS, reads
    /// the capabilities and names the mechanism a logon would use; for Test Settings.
    pub(crate) async fn probe(&self) -> Result<&'static str, DirectoryError> {
        // Shorter than a logon's: a read waits for it.
        let limit = self.timeout.min(PROBE_TIMEOUT);
        let seconds = u32::try_from(limit.as_secs()).unwrap_or(u32::MAX);
        let opened = tokio::time::timeout(limit, self.open())
            .await
            .map_err(|_| DirectoryError::Timeout {
                target: self.target(),
                operation: "connecting",
                seconds,
            })?;
        let (mut session, method) = opened?;
        let tag = session.tag();
        let _ = session.send(format!("{tag} LOGOUT\r\n").as_bytes()).await;
        Ok(match method {
            Method::PlainInitial | Method::Plain => "AUTHENTICATE PLAIN",
            Method::SaslLogin => "AUTHENTICATE LOGIN",
            Method::Login => "LOGIN",
        })
    }

    fn session<S: AsyncRead>(&self, stream: S) -> Session<S> {
        Session {
            stream: BufReader::new(stream),
            target: self.target(),
            next_tag: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use roster_testkit::dovecot::HOST;
    use roster_testkit::{Dovecot, DovecotConfig, TestCa};

    #[test]
    fn reply_lines_are_read() {
        assert_eq!(
            parse_line("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n"),
            Some(Line::Untagged(
                "OK [CAPABILITY IMAP4rev1 STARTTLS] ready".into()
            ))
        );
        assert_eq!(parse_line("+ \r\n"), Some(Line::Continue));
        assert_eq!(parse_line("+\r\n"), Some(Line::Continue));
        assert_eq!(
            parse_line("r1 OK done\r\n"),
            Some(Line::Tagged("r1".into(), Status::Ok))
        );
        assert_eq!(
            parse_line("r2 no [AUTHENTICATIONFAILED] x"),
            Some(Line::Tagged("r2".into(), Status::No))
        );
        assert_eq!(
            parse_line("r3 BAD what"),
            Some(Line::Tagged("r3".into(), Status::Bad))
        );
        assert_eq!(parse_line("HTTP/1.1 400 Bad Request"), None);
        assert_eq!(parse_line(""), None);
    }

    #[test]
    fn capabilities_come_from_replies_and_greetings() {
        assert_eq!(
            capabilities_in("CAPABILITY IMAP4rev1 auth=plain SASL-IR").unwrap(),
            ["IMAP4REV1", "AUTH=PLAIN", "SASL-IR"]
        );
        assert_eq!(
            capabilities_in("OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] Dovecot ready.")
                .unwrap(),
            ["IMAP4REV1", "STARTTLS", "LOGINDISABLED"]
        );
        assert_eq!(capabilities_in("OK Dovecot ready."), None);
    }

    #[test]
    fn plaintext_mechanisms_are_chosen_never_challenge_response() {
        let caps = |list: &str| list.split(' ').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(
            choose(&caps("AUTH=CRAM-MD5 AUTH=DIGEST-MD5 AUTH=PLAIN SASL-IR")),
            Some(Method::PlainInitial)
        );
        assert_eq!(
            choose(&caps("AUTH=CRAM-MD5 AUTH=PLAIN")),
            Some(Method::Plain)
        );
        assert_eq!(
            choose(&caps("AUTH=CRAM-MD5 AUTH=DIGEST-MD5")),
            Some(Method::Login)
        );
        assert_eq!(choose(&caps("AUTH=CRAM-MD5 LOGINDISABLED")), None);
    }

    #[test]
    fn login_strings_are_quoted_or_literal() {
        let Astring::Quoted(q) = astring(r#"a "b" \c"#) else {
            panic!("quotable")
        };
        assert_eq!(q, r#""a \"b\" \\c""#);
        let Astring::Literal(bytes) = astring("wörd") else {
            panic!("not quotable")
        };
        assert_eq!(bytes, "wörd".as_bytes());
        assert!(matches!(astring("a\r\nb"), Astring::Literal(_)));
    }

    const SPECIAL: &str = "p\"a\\ss wörd";

    fn users() -> Vec<(String, String)> {
        vec![
            ("jdoe".into(), "right-pw".into()),
            ("special".into(), SPECIAL.into()),
        ]
    }

    fn checker(ca: Option<&TestCa>, ignore: bool, url: &str) -> ImapChecker {
        let (security, rest) = match url.strip_prefix("imaps://") {
            Some(rest) => (ImapSecurity::Tls, rest),
            None => (ImapSecurity::StartTls, url.strip_prefix("imap://").unwrap()),
        };
        let (host, port) = rest.rsplit_once(':').unwrap();
        ImapChecker {
            endpoint: ImapEndpoint {
                security,
                host: host.into(),
                port: port.parse().unwrap(),
            },
            tls: crate::tls::client_config(ca.map(TestCa::ca_cert_path), ignore).unwrap(),
            timeout: Duration::from_secs(20),
        }
    }

    fn with_tls(ca: &TestCa, mechanisms: &[&str]) -> Dovecot {
        Dovecot::start(DovecotConfig {
            users: users(),
            mechanisms: mechanisms.iter().map(|m| (*m).to_owned()).collect(),
            tls: Some(ca.issue_server_cert("localhost").unwrap()),
        })
        .unwrap()
    }

    #[tokio::test]
    async fn imaps_and_starttls_check_passwords_with_plain_though_cram_md5_comes_first() {
        let ca = TestCa::generate().unwrap();
        let dovecot = with_tls(&ca, &["cram-md5", "digest-md5", "plain", "login"]);
        for url in [dovecot.imaps_url().unwrap(), dovecot.imap_url()] {
            let imap = checker(Some(&ca), false, &url);
            assert!(imap.check("jdoe", "right-pw").await.unwrap(), "{url}");
            assert!(!imap.check("jdoe", "wrong-pw").await.unwrap(), "{url}");
            assert!(!imap.check("nobody", "right-pw").await.unwrap(), "{url}");
            assert!(imap.check("special", SPECIAL).await.unwrap(), "{url}");
        }
        let log = dovecot.log();
        assert!(log.contains("method=PLAIN"), "{log}");
        assert!(
            !log.contains("method=CRAM-MD5") && !log.contains("method=DIGEST-MD5"),
            "{log}"
        );
    }

    #[tokio::test]
    async fn authenticate_login_is_used_when_plain_is_not_offered() {
        let ca = TestCa::generate().unwrap();
        let dovecot = with_tls(&ca, &["cram-md5", "login"]);
        let imap = checker(Some(&ca), false, &dovecot.imap_url());
        assert!(imap.check("jdoe", "right-pw").await.unwrap());
        assert!(!imap.check("jdoe", "wrong-pw").await.unwrap());
        assert!(imap.check("special", SPECIAL).await.unwrap());
        let log = dovecot.log();
        assert!(log.contains("method=LOGIN"), "{log}");
        assert!(!log.contains("method=CRAM-MD5"), "{log}");
    }

    #[tokio::test]
    async fn a_server_with_only_challenge_response_is_refused() {
        let ca = TestCa::generate().unwrap();
        let dovecot = with_tls(&ca, &["cram-md5"]);
        let imap = checker(Some(&ca), false, &dovecot.imaps_url().unwrap());
        let err = imap.check("jdoe", "right-pw").await.unwrap_err();
        assert_eq!(err.code(), "DI025-imap-no-plaintext-logon", "{err}");
        let log = dovecot.log();
        assert!(!log.contains("jdoe"), "no logon was tried: {log}");
    }

    #[tokio::test]
    async fn without_tls_the_password_is_never_sent() {
        let dovecot = Dovecot::start(DovecotConfig {
            users: users(),
            ..Default::default()
        })
        .unwrap();
        let imap = checker(None, false, &dovecot.imap_url());
        let err = imap.check("jdoe", "right-pw").await.unwrap_err();
        assert_eq!(err.code(), "DI024-imap-without-tls", "{err}");
        assert!(err.to_string().contains("imaps://"), "{err}");
        let log = dovecot.log();
        assert!(!log.contains("jdoe"), "the server saw the user: {log}");
    }

    #[tokio::test]
    async fn untrusted_certificates_are_refused_unless_ignored() {
        let ca = TestCa::generate().unwrap();
        let dovecot = Dovecot::start(DovecotConfig {
            users: users(),
            tls: Some(ca.self_signed_server_cert("localhost").unwrap()),
            ..Default::default()
        })
        .unwrap();
        let url = dovecot.imaps_url().unwrap();
        let err = checker(Some(&ca), false, &url)
            .check("jdoe", "right-pw")
            .await
            .unwrap_err();
        assert_eq!(err.code(), "DI005-certificate-untrusted", "{err}");
        assert!(
            checker(None, true, &url)
                .check("jdoe", "right-pw")
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn empty_passwords_are_refused_before_connecting_and_unreachable_servers_are_errors() {
        let port = roster_testkit::free_port();
        let imap = checker(None, false, &format!("imaps://{HOST}:{port}"));
        assert!(!imap.check("jdoe", "").await.unwrap());
        let err = imap.check("jdoe", "pw").await.unwrap_err();
        assert_eq!(err.code(), "DI004-connect", "{err}");
        assert!(!err.to_string().contains("pw)"), "{err}");
    }
}

/// The `LOGIN` command and the reply forms Dovecot doesn't produce, against a scripted server over TLS.
#[cfg(test)]
mod scripted {
    use super::*;
    use roster_testkit::TestCa;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use tokio::net::TcpListener;

    /// Serves one connection over TLS: sends each `(expect, reply)`'s reply after reading a line that
    /// starts with `expect` (`""`: at once); returns what the client sent.
    async fn serve(
        ca: &TestCa,
        script: Vec<(&'static str, &'static str)>,
    ) -> (u16, tokio::task::JoinHandle<String>) {
        let cert = ca.issue_server_cert("localhost").unwrap();
        let certs = CertificateDer::pem_file_iter(&cert.cert_path)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(&cert.key_path).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let task = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut tls = BufReader::new(acceptor.accept(tcp).await.unwrap());
            let mut seen = String::new();
            for (expect, reply) in script {
                if !expect.is_empty() {
                    let mut line = String::new();
                    tls.read_line(&mut line).await.unwrap();
                    assert!(line.contains(expect), "expected {expect:?}, got {line:?}");
                    seen.push_str(&line);
                }
                tls.get_mut().write_all(reply.as_bytes()).await.unwrap();
            }
            seen
        });
        (port, task)
    }

    fn checker(ca: &TestCa, port: u16) -> ImapChecker {
        ImapChecker {
            endpoint: ImapEndpoint {
                security: ImapSecurity::Tls,
                host: "127.0.0.1".into(),
                port,
            },
            tls: crate::tls::client_config(Some(ca.ca_cert_path()), false).unwrap(),
            timeout: Duration::from_secs(10),
        }
    }

    #[tokio::test]
    async fn the_login_command_quotes_or_sends_literals() {
        let ca = TestCa::generate().unwrap();
        let (port, task) = serve(
            &ca,
            vec![
                ("", "* OK [CAPABILITY IMAP4rev1 AUTH=CRAM-MD5] ready\r\n"),
                ("r1 LOGIN \"jdoe\" {5}", "+ go on\r\n"),
                ("wörd", "r1 OK [CAPABILITY IMAP4rev1] logged in\r\n"),
                ("r2 LOGOUT", "* BYE\r\nr2 OK\r\n"),
            ],
        )
        .await;
        assert!(checker(&ca, port).check("jdoe", "wörd").await.unwrap());
        let seen = task.await.unwrap();
        assert!(seen.ends_with("r2 LOGOUT\r\n"), "{seen}");

        let (port, task) = serve(
            &ca,
            vec![
                ("", "* OK [CAPABILITY IMAP4rev1] ready\r\n"),
                (
                    "r1 LOGIN \"j\\\"d\" \"p w\"",
                    "r1 NO [AUTHENTICATIONFAILED] no\r\n",
                ),
                ("r2 LOGOUT", "r2 OK\r\n"),
            ],
        )
        .await;
        assert!(!checker(&ca, port).check("j\"d", "p w").await.unwrap());
        task.await.unwrap();
    }

    #[tokio::test]
    async fn bad_bye_and_garbage_are_errors_never_a_rejection() {
        let ca = TestCa::generate().unwrap();
        let cases: Vec<(Vec<(&'static str, &'static str)>, &str)> = vec![
            (
                vec![
                    ("", "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n"),
                    ("r1 AUTHENTICATE PLAIN", "+ \r\n"),
                    ("", ""),
                ],
                "DI014-disconnected",
            ),
            (
                vec![
                    (
                        "",
                        "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] ready\r\n",
                    ),
                    ("r1 AUTHENTICATE PLAIN ", "r1 BAD what\r\n"),
                ],
                "DI015-protocol",
            ),
            (vec![("", "* BYE too busy\r\n")], "DI014-disconnected"),
            (vec![("", "HTTP/1.1 400 Bad Request\r\n")], "DI015-protocol"),
        ];
        for (script, code) in cases {
            let (port, task) = serve(&ca, script).await;
            let err = checker(&ca, port).check("jdoe", "pw").await.unwrap_err();
            assert_eq!(err.code(), code, "{err}");
            assert!(!err.to_string().contains("cHc"), "{err}");
            task.abort();
        }
    }
}
