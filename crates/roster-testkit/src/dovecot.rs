//! A throwaway real Dovecot IMAP server (Debian `dovecot-imapd`) on loopback, for the Kerio Connect
//! password checks (issue 23): users and plaintext passwords in a passwd-file, the mechanisms advertised
//! in the order given (by default `CRAM-MD5` before `PLAIN`, so tests prove that a client doesn't pick
//! the first it sees), and either TLS with the test CA's certificate (IMAPS on one port, STARTTLS
//! offered on the other, plaintext logins refused before it) or no TLS at all (plaintext logins
//! accepted: a client that sent the password in clear would succeed, so a test can prove it doesn't).

use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ca::ServerCert;
use crate::common::{START_TIMEOUT, ServerProcess, find_program, temp_dir, try_free_port};

const INSTALL_HINT: &str =
    "install the Debian package dovecot-imapd (apt-get install -y dovecot-imapd)";
const SBIN_DIRS: &[&str] = &["/usr/sbin", "/usr/local/sbin"];
/// Where Dovecot listens. Not 127.0.0.1: Dovecot 2.3 counts a connection whose two ends have the same
/// address as secure, and would then take plaintext logins before STARTTLS. Clients on this machine
/// connect from 127.0.0.1, so here they are remote, as Roster is to a real server. The test CA's
/// certificates name this address too.
pub const HOST: &str = "127.0.0.2";
const LISTEN: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// What the server holds and offers.
#[derive(Debug, Clone)]
pub struct DovecotConfig {
    /// User names (as typed at LOGIN) and their passwords.
    pub users: Vec<(String, String)>,
    /// `auth_mechanisms`, advertised in this order; `LOGIN` (the IMAP command) is always there.
    pub mechanisms: Vec<String>,
    /// The certificate (from `TestCa::issue_server_cert`, or a self-signed one); `None`: no TLS at all.
    pub tls: Option<ServerCert>,
}

impl Default for DovecotConfig {
    fn default() -> DovecotConfig {
        DovecotConfig {
            users: Vec::new(),
            mechanisms: vec!["cram-md5".into(), "plain".into(), "login".into()],
            tls: None,
        }
    }
}

/// A running Dovecot; stopped and deleted on drop.
#[derive(Debug)]
pub struct Dovecot {
    // Declared before `dir`: the process stops before its files go.
    process: ServerProcess,
    dir: tempfile::TempDir,
    imap_port: u16,
    imaps_port: Option<u16>,
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.process.stop();
    }
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}

impl Dovecot {
    /// Starts Dovecot, returning once its ports accept connections.
    pub fn start(config: DovecotConfig) -> io::Result<Dovecot> {
        let dovecot = find_program("dovecot", SBIN_DIRS, INSTALL_HINT)?;
        for (name, password) in &config.users {
            if name.is_empty()
                || name.contains([':', '\n', '\r'])
                || password.contains(['\n', '\r'])
            {
                return Err(invalid(format!(
                    "Dovecot user {name:?}: a passwd-file can't hold an empty name, ':' in a name, or a newline"
                )));
            }
        }
        for m in &config.mechanisms {
            if m.is_empty() || !m.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
                return Err(invalid(format!("{m:?} is not a SASL mechanism name")));
            }
        }
        let dir = temp_dir("roster-dovecot-")?;
        let root = dir.path();
        // Dovecot's login and auth processes run as its own users: they must reach these files.
        fs::set_permissions(root, fs::Permissions::from_mode(0o755))?;
        let home = root.join("home");
        fs::create_dir(&home)?;
        fs::set_permissions(&home, fs::Permissions::from_mode(0o777))?;
        let passwd = root.join("passwd");
        let lines: String = config
            .users
            .iter()
            .map(|(name, password)| format!("{name}:{{PLAIN}}{password}\n"))
            .collect();
        fs::write(&passwd, lines)?;
        fs::set_permissions(&passwd, fs::Permissions::from_mode(0o644))?;

        let imap_port = try_free_port()?;
        let imaps_port = match config.tls {
            Some(_) => Some(try_free_port()?),
            None => None,
        };
        let ssl = match (&config.tls, imaps_port) {
            (Some(cert), Some(port)) => {
                let cert_path = copy(&cert.cert_path, &root.join("cert.pem"))?;
                let key_path = copy(&cert.key_path, &root.join("key.pem"))?;
                format!(
                    "ssl = yes\nssl_cert = <{}\nssl_key = <{}\nssl_min_protocol = TLSv1.2\ndisable_plaintext_auth = yes\n\
                     service imap-login {{\n  inet_listener imap {{\n    address = {HOST}\n    port = {imap_port}\n  }}\n  \
                     inet_listener imaps {{\n    address = {HOST}\n    port = {port}\n    ssl = yes\n  }}\n}}\n",
                    cert_path.display(),
                    key_path.display()
                )
            }
            _ => format!(
                "ssl = no\ndisable_plaintext_auth = no\n\
                 service imap-login {{\n  inet_listener imap {{\n    address = {HOST}\n    port = {imap_port}\n  }}\n  \
                 inet_listener imaps {{\n    port = 0\n  }}\n}}\n"
            ),
        };
        let conf = format!(
            "base_dir = {root}/run\nstate_dir = {root}/state\ninstance_name = roster-dovecot-{imap_port}\n\
             protocols = imap\nlisten = {HOST}\nlog_path = /dev/stderr\nauth_verbose = yes\n\
             auth_mechanisms = {mechanisms}\n{ssl}\
             passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {passwd}\n}}\n\
             userdb {{\n  driver = static\n  args = uid=65534 gid=65534 home={home}/%u\n}}\n\
             first_valid_uid = 1\nmail_location = maildir:~/Maildir\n",
            root = root.display(),
            mechanisms = config.mechanisms.join(" "),
            passwd = passwd.display(),
            home = home.display(),
        );
        let conf_path = root.join("dovecot.conf");
        fs::write(&conf_path, conf)?;
        let log = root.join("dovecot.log");
        let mut cmd = Command::new(dovecot);
        cmd.arg("-F").arg("-c").arg(&conf_path);
        let mut process = ServerProcess::spawn("dovecot", &mut cmd, &log)?;
        let addrs: Vec<SocketAddr> = std::iter::once(imap_port)
            .chain(imaps_port)
            .map(|port| SocketAddr::from((LISTEN, port)))
            .collect();
        process.wait_for_addrs(&addrs, START_TIMEOUT)?;
        Ok(Dovecot {
            process,
            dir,
            imap_port,
            imaps_port,
        })
    }

    /// The plain IMAP port (STARTTLS offered when TLS is on).
    pub fn imap_port(&self) -> u16 {
        self.imap_port
    }

    /// The IMAPS port, when TLS is on.
    pub fn imaps_port(&self) -> Option<u16> {
        self.imaps_port
    }

    /// `imap://127.0.0.2:PORT` (STARTTLS when TLS is on).
    pub fn imap_url(&self) -> String {
        format!("imap://{HOST}:{}", self.imap_port)
    }

    /// `imaps://127.0.0.2:PORT`, when TLS is on.
    pub fn imaps_url(&self) -> Option<String> {
        self.imaps_port.map(|port| format!("imaps://{HOST}:{port}"))
    }

    /// The server's log (logons and their failures).
    pub fn log(&self) -> String {
        fs::read_to_string(self.process.log_path()).unwrap_or_default()
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

fn copy(from: &Path, to: &Path) -> io::Result<PathBuf> {
    fs::copy(from, to).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", from.display())))?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o644))?;
    Ok(to.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestCa;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpStream;

    /// Sends `tag command` and reads up to the tagged reply; every line.
    fn exchange(reader: &mut BufReader<TcpStream>, tag: &str, command: &str) -> Vec<String> {
        reader
            .get_mut()
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .unwrap();
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "closed: {lines:?}"
            );
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line.trim_end().to_owned());
            if done {
                return lines;
            }
        }
    }

    fn connect(port: u16) -> BufReader<TcpStream> {
        let stream = TcpStream::connect((HOST, port)).unwrap();
        let mut reader = BufReader::new(stream);
        let mut greeting = String::new();
        reader.read_line(&mut greeting).unwrap();
        assert!(greeting.starts_with("* OK"), "{greeting}");
        reader
    }

    fn users() -> Vec<(String, String)> {
        vec![("jdoe".into(), "right-pw".into())]
    }

    type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

    fn tls_client(ca: &TestCa, stream: TcpStream) -> BufReader<Tls> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName};
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca.ca_cert_path()).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let name = ServerName::try_from(HOST).unwrap();
        let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
        BufReader::new(rustls::StreamOwned::new(conn, stream))
    }

    /// `tag command` over TLS, up to the tagged reply.
    fn tls_exchange(reader: &mut BufReader<Tls>, tag: &str, command: &str) -> Vec<String> {
        reader
            .get_mut()
            .write_all(format!("{tag} {command}\r\n").as_bytes())
            .unwrap();
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "closed: {lines:?}"
            );
            let done = line.starts_with(&format!("{tag} "));
            lines.push(line.trim_end().to_owned());
            if done {
                return lines;
            }
        }
    }

    fn cram_before_plain(caps: &str) {
        let cram = caps.find("AUTH=CRAM-MD5");
        let plain = caps.find("AUTH=PLAIN");
        assert!(
            cram.is_some() && plain.is_some() && cram < plain,
            "CRAM-MD5 before PLAIN: {caps}"
        );
    }

    #[test]
    fn with_tls_cram_md5_comes_first_and_plaintext_waits_for_tls() {
        let ca = TestCa::generate().unwrap();
        let dovecot = Dovecot::start(DovecotConfig {
            users: users(),
            tls: Some(ca.issue_server_cert("localhost").unwrap()),
            ..Default::default()
        })
        .unwrap();

        // Before STARTTLS: no plaintext, only CRAM-MD5 is offered.
        let mut imap = connect(dovecot.imap_port());
        let caps = exchange(&mut imap, "a", "CAPABILITY").join(" ");
        assert!(caps.contains("STARTTLS"), "{caps}");
        assert!(caps.contains("LOGINDISABLED"), "{caps}");
        assert!(
            caps.contains("AUTH=CRAM-MD5") && !caps.contains("AUTH=PLAIN"),
            "{caps}"
        );
        let refused = exchange(&mut imap, "b", "LOGIN jdoe right-pw");
        assert!(refused.last().unwrap().starts_with("b NO"), "{refused:?}");

        // After STARTTLS: CRAM-MD5 still first, and LOGIN checks the password.
        let started = exchange(&mut imap, "c", "STARTTLS");
        assert!(started.last().unwrap().starts_with("c OK"), "{started:?}");
        let mut tls = tls_client(&ca, imap.into_inner());
        let caps = tls_exchange(&mut tls, "d", "CAPABILITY").join(" ");
        cram_before_plain(&caps);
        assert!(!caps.contains("LOGINDISABLED"), "{caps}");
        let wrong = tls_exchange(&mut tls, "e", "LOGIN jdoe wrong-pw");
        assert!(wrong.last().unwrap().starts_with("e NO"), "{wrong:?}");
        let right = tls_exchange(&mut tls, "f", "LOGIN jdoe right-pw");
        assert!(right.last().unwrap().starts_with("f OK"), "{right:?}");

        // IMAPS: TLS from the start, the same offer.
        let stream = TcpStream::connect((HOST, dovecot.imaps_port().unwrap())).unwrap();
        let mut imaps = tls_client(&ca, stream);
        let mut greeting = String::new();
        imaps.read_line(&mut greeting).unwrap();
        assert!(greeting.starts_with("* OK"), "{greeting}");
        cram_before_plain(&tls_exchange(&mut imaps, "a", "CAPABILITY").join(" "));
        let right = tls_exchange(&mut imaps, "b", "LOGIN jdoe right-pw");
        assert!(right.last().unwrap().starts_with("b OK"), "{right:?}");
        assert!(dovecot.log().contains("user=<jdoe>"), "{}", dovecot.log());
    }

    #[test]
    fn without_tls_plaintext_logins_are_accepted_and_checked() {
        let dovecot = Dovecot::start(DovecotConfig {
            users: users(),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(dovecot.imaps_url(), None);
        let mut imap = connect(dovecot.imap_port());
        let caps = exchange(&mut imap, "a", "CAPABILITY").join(" ");
        assert!(!caps.contains("STARTTLS"), "{caps}");
        let wrong = exchange(&mut imap, "b", "LOGIN jdoe wrong-pw");
        assert!(wrong.last().unwrap().starts_with("b NO"), "{wrong:?}");
        let right = exchange(&mut imap, "c", "LOGIN jdoe right-pw");
        assert!(right.last().unwrap().starts_with("c OK"), "{right:?}");
        let mut other = connect(dovecot.imap_port());
        let unknown = exchange(&mut other, "d", "LOGIN nobody right-pw");
        assert!(unknown.last().unwrap().starts_with("d NO"), "{unknown:?}");
    }
}
