//! A small blocking HTTP/1.1 client for `roster serve` on 127.0.0.1: one connection per client, kept
//! alive between requests as a browser keeps it, or a new one per request (`Connection: close`).
//!
//! Hand-written rather than a client library so that what a request costs the measuring process is
//! plain to see (a write and a read on a socket) and the tools stay free of an async runtime.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long a client waits for an answer before it counts as none.
const READ_TIMEOUT: Duration = Duration::from_secs(300);

/// One request's answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status; 0 when there was no answer (the connection failed or was closed).
    pub status: u16,
    pub retry_after: bool,
    /// From the first byte written (or the connection, when one was opened for it) to the last byte read.
    pub latency: Duration,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client's connection to the server.
#[derive(Debug)]
pub struct Connection {
    port: u16,
    keep_alive: bool,
    stream: Option<BufReader<TcpStream>>,
    /// Connections opened so far (1 for a client whose connection was kept alive throughout).
    pub opened: usize,
}

impl Connection {
    /// Not connected yet: the first request opens the connection (and its latency includes that).
    /// With `keep_alive` false, every request opens one and asks the server to close it.
    pub fn new(port: u16, keep_alive: bool) -> Connection {
        Connection {
            port,
            keep_alive,
            stream: None,
            opened: 0,
        }
    }

    /// `POST path` with a JSON body.
    pub fn post_json(&mut self, path: &str, body: &str, bearer: Option<&str>) -> Answer {
        self.send("POST", path, Some(body), bearer)
    }

    pub fn get(&mut self, path: &str, bearer: Option<&str>) -> Answer {
        self.send("GET", path, None, bearer)
    }

    /// Sends one request and reads its answer. A kept-alive connection that the server closed since the
    /// last answer is opened again once (a browser does the same); any other failure is status 0.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
        bearer: Option<&str>,
    ) -> Answer {
        let mut request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n",
            self.port
        );
        if let Some(token) = bearer {
            request.push_str(&format!("Authorization: Bearer {token}\r\n"));
        }
        if !self.keep_alive {
            request.push_str("Connection: close\r\n");
        }
        if let Some(body) = body {
            request.push_str(&format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ));
        } else {
            request.push_str("\r\n");
        }
        let started = Instant::now();
        let reused = self.stream.is_some();
        let mut result = self.exchange(request.as_bytes());
        if result.is_err() && reused {
            self.stream = None;
            result = self.exchange(request.as_bytes());
        }
        let latency = started.elapsed();
        match result {
            Ok((status, retry_after, body, close)) => {
                if close || !self.keep_alive {
                    self.stream = None;
                }
                Answer {
                    status,
                    retry_after,
                    latency,
                    body,
                }
            }
            Err(_) => {
                self.stream = None;
                Answer {
                    status: 0,
                    retry_after: false,
                    latency,
                    body: Vec::new(),
                }
            }
        }
    }

    /// Writes the request and reads the answer: status, `Retry-After` present, body, and whether the
    /// server closes the connection after it.
    fn exchange(&mut self, request: &[u8]) -> std::io::Result<(u16, bool, Vec<u8>, bool)> {
        if self.stream.is_none() {
            let stream = TcpStream::connect(("127.0.0.1", self.port))?;
            stream.set_read_timeout(Some(READ_TIMEOUT))?;
            stream.set_nodelay(true)?;
            self.opened += 1;
            self.stream = Some(BufReader::new(stream));
        }
        let reader = self.stream.as_mut().expect("a connection");
        reader.get_mut().write_all(request)?;
        read_answer(reader)
    }
}

fn read_answer(reader: &mut BufReader<TcpStream>) -> std::io::Result<(u16, bool, Vec<u8>, bool)> {
    let broken = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| broken("no status line"))?;
    let (mut length, mut chunked, mut close, mut retry_after) = (None, false, false, false);
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        let Some((name, value)) = header.split_once(':') else {
            return Err(broken("a header without a colon"));
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "content-length" => {
                length = Some(value.parse().map_err(|_| broken("Content-Length"))?);
            }
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            "retry-after" => retry_after = true,
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| broken("a chunk size"))?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            chunk.truncate(size);
            if size == 0 {
                // The trailer section ends with an empty line, which the chunk's CRLF was.
                break;
            }
            body.extend_from_slice(&chunk);
        }
    } else if let Some(length) = length {
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    } else {
        reader.read_to_end(&mut body)?;
        close = true;
    }
    Ok((status, retry_after, body, close))
}

/// A logon's JSON body. The names and passwords the tools use need no escaping.
pub fn logon_body(name: &str, password: &str) -> String {
    format!(r#"{{"name":"{name}","password":"{password}"}}"#)
}

/// Answers by status, e.g. "400 × 401" or "380 × 201, 20 × 503"; "no answer" for status 0.
pub fn statuses(answers: impl IntoIterator<Item = u16>) -> String {
    let mut counts: Vec<(u16, usize)> = Vec::new();
    for status in answers {
        match counts.iter_mut().find(|(s, _)| *s == status) {
            Some((_, n)) => *n += 1,
            None => counts.push((status, 1)),
        }
    }
    counts.sort();
    counts
        .iter()
        .map(|(s, n)| {
            let s = if *s == 0 {
                "no answer".to_owned()
            } else {
                s.to_string()
            };
            format!("{n} × {s}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A server that answers each connection's requests with the given raw responses, in turn.
    fn serve(responses: Vec<&'static str>) -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream);
            for response in responses {
                // Read one request: its head, and a body of Content-Length bytes.
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if line == "\r\n" {
                        break;
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                reader.get_mut().write_all(response.as_bytes()).unwrap();
            }
        });
        port
    }

    #[test]
    fn answers_are_read_on_one_kept_alive_connection() {
        let port = serve(vec![
            "HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\n{}",
            "HTTP/1.1 503 Service Unavailable\r\nretry-after: 5\r\ntransfer-encoding: chunked\r\n\r\n3\r\nbus\r\n1\r\ny\r\n0\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        ]);
        let mut c = Connection::new(port, true);
        let a = c.post_json("/api/v1/sessions", &logon_body("a", "b"), None);
        assert_eq!(
            (a.status, a.retry_after, a.body_text().as_str()),
            (201, false, "{}")
        );
        let b = c.get("/x", Some("token"));
        assert_eq!(
            (b.status, b.retry_after, b.body_text().as_str()),
            (503, true, "busy")
        );
        let d = c.get("/y", None);
        assert_eq!((d.status, d.body_text().as_str()), (200, "hello"));
        assert_eq!(c.opened, 1);
        assert_eq!(
            statuses([&a, &b, &d, &a].map(|a| a.status)),
            "1 × 200, 2 × 201, 1 × 503"
        );
    }

    #[test]
    fn no_server_is_no_answer() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let a = Connection::new(port, false).get("/", None);
        assert_eq!(a.status, 0);
        assert_eq!(statuses([a.status]), "1 × no answer");
    }
}
