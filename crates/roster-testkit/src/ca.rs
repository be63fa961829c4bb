//! A throwaway certificate authority driven by the `openssl` command line
//! tool, so the kit needs no crypto crate.
//!
//! Certificates are issued with `openssl ca` rather than `openssl x509 -req`
//! because only `ca` can backdate `notBefore` (OpenSSL 3.0 in Debian 12 has no
//! `-not_before`): a day of slack keeps tests working when the clocks of the
//! test process and a containerised server disagree slightly.
//!
//! The profiles satisfy both GnuTLS (slapd on Debian) and webpki (rustls):
//! X.509 v3, RSA 2048 + SHA-256, CA with critical `basicConstraints CA:TRUE`
//! and `keyUsage keyCertSign`; server certificates with
//! `subjectAltName DNS:localhost, IP:127.0.0.1, IP:127.0.0.2` (webpki ignores the CN; 127.0.0.2 is
//! for servers that must not see their clients as local, like Dovecot),
//! `extendedKeyUsage serverAuth`, `keyUsage digitalSignature, keyEncipherment`
//! and `basicConstraints CA:FALSE` (webpki rejects CA certificates as
//! end-entity certificates).

use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::{file_stem, find_program, lock, run, temp_dir};

const OPENSSL_HINT: &str = "install the Debian package openssl (apt-get install -y openssl)";

/// Validity: from one day ago for ten years.
const BACKDATE_DAYS: u64 = 1;
const VALID_DAYS: u64 = 3653;

/// `openssl ca` configuration. `unique_subject = no` lets a test issue several
/// certificates for the same name; `copy_extensions = none` makes the
/// extension sections below the only source of extensions.
const OPENSSL_CNF: &str = "\
[ ca ]
default_ca = testca

[ testca ]
database = index.txt
new_certs_dir = issued
serial = serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none

[ policy_any ]
commonName = supplied

[ req ]
distinguished_name = req_dn
prompt = no

[ req_dn ]
CN = unused

[ ext_ca ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ ext_server ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:127.0.0.2
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer

[ ext_self_signed_server ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:127.0.0.2
subjectKeyIdentifier = hash
";

/// A server certificate and its private key (PEM files; the key is PKCS#8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerCert {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

/// A test certificate authority living in a temporary directory that is
/// removed on drop. Keep it alive as long as its files are in use (servers
/// in this kit copy the files they need, so they do not depend on it).
#[derive(Debug)]
pub struct TestCa {
    dir: tempfile::TempDir,
    ca_cert: PathBuf,
    ca_key: PathBuf,
    openssl: PathBuf,
    /// `openssl ca` rewrites index.txt and serial in place; concurrent issues
    /// from parallel tests sharing one CA would corrupt them.
    issuing: Mutex<()>,
}

impl TestCa {
    /// Creates a CA key and self-signed CA certificate (CN "Roster Test CA").
    pub fn generate() -> io::Result<TestCa> {
        let openssl = find_program("openssl", &[], OPENSSL_HINT)?;
        let dir = temp_dir("roster-ca-")?;
        init_ca_dir(dir.path())?;
        let ca_key = dir.path().join("ca.key");
        let ca_cert = dir.path().join("ca.pem");
        let csr = dir.path().join("ca.csr");
        generate_key(&openssl, &ca_key)?;
        make_csr(&openssl, dir.path(), &ca_key, "Roster Test CA", &csr)?;
        sign(
            &openssl,
            dir.path(),
            Signer::SelfSigned { key: &ca_key },
            &csr,
            "ext_ca",
            &ca_cert,
        )?;
        Ok(TestCa {
            dir,
            ca_cert,
            ca_key,
            openssl,
            issuing: Mutex::new(()),
        })
    }

    /// PEM file with the CA certificate: give it to clients as the trust root.
    pub fn ca_cert_path(&self) -> &Path {
        &self.ca_cert
    }

    /// The directory holding the CA's files.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Issues a server certificate for localhost / 127.0.0.1 signed by this
    /// CA. `name` becomes the subject CN and the file names.
    pub fn issue_server_cert(&self, name: &str) -> io::Result<ServerCert> {
        let _guard = lock(&self.issuing);
        let out = self.dir.path().join("certs");
        fs::create_dir_all(&out)?;
        let stem = unique_stem(&out, name);
        let key_path = out.join(format!("{stem}.key"));
        let cert_path = out.join(format!("{stem}.pem"));
        let csr = out.join(format!("{stem}.csr"));
        generate_key(&self.openssl, &key_path)?;
        make_csr(&self.openssl, self.dir.path(), &key_path, name, &csr)?;
        let signer = Signer::Ca {
            cert: &self.ca_cert,
            key: &self.ca_key,
        };
        sign(
            &self.openssl,
            self.dir.path(),
            signer,
            &csr,
            "ext_server",
            &cert_path,
        )?;
        Ok(ServerCert {
            cert_path,
            key_path,
        })
    }

    /// Like [`TestCa::issue_server_cert`], but the subjectAltName holds exactly `dns_names` and
    /// `ips` (for servers known by other names than localhost, such as a Samba domain controller
    /// `dc1.roster.test` on 127.0.0.3).
    pub fn issue_server_cert_for(
        &self,
        name: &str,
        dns_names: &[&str],
        ips: &[IpAddr],
    ) -> io::Result<ServerCert> {
        let _guard = lock(&self.issuing);
        let out = self.dir.path().join("certs");
        fs::create_dir_all(&out)?;
        let stem = unique_stem(&out, name);
        let key_path = out.join(format!("{stem}.key"));
        let cert_path = out.join(format!("{stem}.pem"));
        let csr = out.join(format!("{stem}.csr"));
        let ext = out.join(format!("{stem}.ext"));
        let sans: Vec<String> = dns_names
            .iter()
            .map(|d| format!("DNS:{d}"))
            .chain(ips.iter().map(|ip| format!("IP:{ip}")))
            .collect();
        if sans.is_empty() || dns_names.iter().any(|d| d.contains([',', '\n'])) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a server certificate needs at least one name, without ',' or newlines",
            ));
        }
        fs::write(
            &ext,
            format!(
                "[ ext_server_for ]\nbasicConstraints = critical, CA:FALSE\n\
                 keyUsage = critical, digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n\
                 subjectAltName = {}\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid, issuer\n",
                sans.join(", ")
            ),
        )?;
        generate_key(&self.openssl, &key_path)?;
        make_csr(&self.openssl, self.dir.path(), &key_path, name, &csr)?;
        let signer = Signer::Ca {
            cert: &self.ca_cert,
            key: &self.ca_key,
        };
        sign_with(
            &self.openssl,
            self.dir.path(),
            signer,
            &csr,
            ("ext_server_for", Some(&ext)),
            &cert_path,
        )?;
        Ok(ServerCert {
            cert_path,
            key_path,
        })
    }

    /// A self-signed server certificate with the same names and usages as
    /// [`TestCa::issue_server_cert`] but NOT signed by this CA, for
    /// "untrusted certificate" tests. Stored in this CA's directory.
    pub fn self_signed_server_cert(&self, name: &str) -> io::Result<ServerCert> {
        let _guard = lock(&self.issuing);
        let dir = self.dir.path().join("self-signed");
        fs::create_dir_all(&dir)?;
        let stem = unique_stem(&dir, name);
        self_signed_server_cert_in(&self.openssl, &dir.join(stem), name)
    }
}

/// Creates a self-signed server certificate (see
/// [`TestCa::self_signed_server_cert`]) in `dir`, which must exist and
/// outlive the certificate's use.
pub fn self_signed_server_cert(dir: &Path, name: &str) -> io::Result<ServerCert> {
    let openssl = find_program("openssl", &[], OPENSSL_HINT)?;
    let work = dir.join(format!("{}-self-signed", file_stem(name)));
    self_signed_server_cert_in(&openssl, &work, name)
}

fn self_signed_server_cert_in(openssl: &Path, work: &Path, name: &str) -> io::Result<ServerCert> {
    // A separate mini-CA database so the self-signed certificate never
    // appears in (or takes serials from) the real CA's index.
    fs::create_dir_all(work)?;
    init_ca_dir(work)?;
    let key_path = work.join("server.key");
    let cert_path = work.join("server.pem");
    let csr = work.join("server.csr");
    generate_key(openssl, &key_path)?;
    make_csr(openssl, work, &key_path, name, &csr)?;
    sign(
        openssl,
        work,
        Signer::SelfSigned { key: &key_path },
        &csr,
        "ext_self_signed_server",
        &cert_path,
    )?;
    Ok(ServerCert {
        cert_path,
        key_path,
    })
}

fn unique_stem(dir: &Path, name: &str) -> String {
    let base = file_stem(name);
    let mut stem = base.clone();
    let mut n = 1;
    while dir.join(format!("{stem}.pem")).exists() || dir.join(stem.as_str()).exists() {
        n += 1;
        stem = format!("{base}-{n}");
    }
    stem
}

fn init_ca_dir(dir: &Path) -> io::Result<()> {
    fs::write(dir.join("openssl.cnf"), OPENSSL_CNF)?;
    fs::write(dir.join("index.txt"), "")?;
    fs::write(dir.join("serial"), "1000\n")?;
    fs::create_dir_all(dir.join("issued"))
}

fn generate_key(openssl: &Path, key: &Path) -> io::Result<()> {
    run(Command::new(openssl)
        .args([
            "genpkey",
            "-quiet",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(key))?;
    // genpkey honours the umask; keys should not be world-readable.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(key, fs::Permissions::from_mode(0o600))
}

fn make_csr(openssl: &Path, ca_dir: &Path, key: &Path, cn: &str, csr: &Path) -> io::Result<()> {
    run(Command::new(openssl)
        .arg("req")
        .arg("-new")
        .arg("-config")
        .arg(ca_dir.join("openssl.cnf"))
        .arg("-key")
        .arg(key)
        .arg("-subj")
        .arg(format!("/CN={}", escape_subject_value(cn)))
        .arg("-out")
        .arg(csr))?;
    Ok(())
}

enum Signer<'a> {
    SelfSigned { key: &'a Path },
    Ca { cert: &'a Path, key: &'a Path },
}

fn sign(
    openssl: &Path,
    ca_dir: &Path,
    signer: Signer<'_>,
    csr: &Path,
    ext: &str,
    out: &Path,
) -> io::Result<()> {
    sign_with(openssl, ca_dir, signer, csr, (ext, None), out)
}

/// [`sign`] with the extension section taken from `extfile` when given (else from openssl.cnf).
fn sign_with(
    openssl: &Path,
    ca_dir: &Path,
    signer: Signer<'_>,
    csr: &Path,
    (ext, extfile): (&str, Option<&Path>),
    out: &Path,
) -> io::Result<()> {
    let (start, end) = validity()?;
    let mut cmd = Command::new(openssl);
    // Relative paths in openssl.cnf resolve against the working directory.
    cmd.current_dir(ca_dir).args([
        "ca",
        "-batch",
        "-notext",
        "-config",
        "openssl.cnf",
        "-extensions",
        ext,
    ]);
    if let Some(file) = extfile {
        cmd.arg("-extfile").arg(file);
    }
    match signer {
        Signer::SelfSigned { key } => cmd.arg("-selfsign").arg("-keyfile").arg(key),
        Signer::Ca { cert, key } => cmd.arg("-cert").arg(cert).arg("-keyfile").arg(key),
    };
    cmd.arg("-startdate")
        .arg(start)
        .arg("-enddate")
        .arg(end)
        .arg("-in")
        .arg(csr)
        .arg("-out")
        .arg(out);
    run(&mut cmd)?;
    Ok(())
}

/// `notBefore`/`notAfter` as GeneralizedTime strings (YYYYMMDDHHMMSSZ).
#[allow(clippy::disallowed_methods)]
fn validity() -> io::Result<(String, String)> {
    // The workspace bans SystemTime::now so business logic takes a Clock;
    // a certificate for a real TLS handshake must match the real wall clock.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|_| io::Error::other("system clock is before 1970; fix the clock"))?;
    let day = Duration::from_secs(86_400);
    let start = now.saturating_sub(day * u32::try_from(BACKDATE_DAYS).unwrap_or(1));
    let end = start + day * u32::try_from(VALID_DAYS).unwrap_or(3653);
    Ok((
        generalized_time(start.as_secs()),
        generalized_time(end.as_secs()),
    ))
}

/// Formats seconds since the Unix epoch as UTC `YYYYMMDDHHMMSSZ`.
fn generalized_time(secs: u64) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day); Howard Hinnant's algorithm,
/// restricted to dates after the epoch.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// `openssl req -subj` treats `/`, `+` and `=` specially.
fn escape_subject_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '/' | '+' | '=' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openssl(args: &[&str]) -> (bool, String) {
        let out = Command::new("openssl").args(args).output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    #[test]
    fn dates_are_formatted_in_utc() {
        assert_eq!(generalized_time(0), "19700101000000Z");
        assert_eq!(generalized_time(951_782_400), "20000229000000Z");
        assert_eq!(generalized_time(1_700_000_000), "20231114221320Z");
        assert_eq!(generalized_time(4_102_444_799), "20991231235959Z");
    }

    #[test]
    fn ca_issues_verifiable_server_certificates() {
        let ca = TestCa::generate().unwrap();
        let ca_path = ca.ca_cert_path().to_str().unwrap().to_owned();
        let (_, ca_text) = openssl(&["x509", "-in", &ca_path, "-noout", "-text"]);
        assert!(ca_text.contains("Version: 3"), "{ca_text}");
        assert!(ca_text.contains("CA:TRUE"), "{ca_text}");
        assert!(ca_text.contains("Certificate Sign"), "{ca_text}");

        let server = ca.issue_server_cert("localhost").unwrap();
        let again = ca.issue_server_cert("localhost").unwrap();
        assert_ne!(server.cert_path, again.cert_path);
        let cert = server.cert_path.to_str().unwrap();
        let (ok, text) = openssl(&["verify", "-CAfile", &ca_path, "-purpose", "sslserver", cert]);
        assert!(ok, "{text}");
        let (_, text) = openssl(&["x509", "-in", cert, "-noout", "-text"]);
        for needle in [
            "Version: 3",
            "CA:FALSE",
            "DNS:localhost",
            "IP Address:127.0.0.1",
            "TLS Web Server Authentication",
            "Digital Signature, Key Encipherment",
        ] {
            assert!(text.contains(needle), "missing {needle} in {text}");
        }

        let rogue = ca.self_signed_server_cert("localhost").unwrap();
        let rogue_cert = rogue.cert_path.to_str().unwrap();
        let (ok, text) = openssl(&["verify", "-CAfile", &ca_path, rogue_cert]);
        assert!(
            !ok,
            "self-signed certificate must not chain to the CA: {text}"
        );
        let (_, text) = openssl(&["x509", "-in", rogue_cert, "-noout", "-text"]);
        assert!(text.contains("IP Address:127.0.0.1"), "{text}");

        let dir = tempfile::tempdir().unwrap();
        let standalone = self_signed_server_cert(dir.path(), "other").unwrap();
        assert!(standalone.cert_path.exists() && standalone.key_path.exists());
    }
}
