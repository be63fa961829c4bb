//! The rustls configuration for LDAPS and StartTLS. Built by us rather than by ldap3 so that the crypto
//! provider is explicit (ldap3 would use the process default, which may not be installed) and so that
//! `ca_file` adds to the system's roots instead of replacing them.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::DirectoryError;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

pub(crate) fn client_config(
    ca_file: Option<&Path>,
    ignore_certificate_errors: bool,
) -> Result<Arc<ClientConfig>, DirectoryError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| DirectoryError::Internal {
            message: format!("the TLS provider rejected the default protocol versions: {e}"),
        })?;
    let config = if ignore_certificate_errors {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        // A missing or partly unreadable system store is not fatal: `ca_file` may be all that's needed,
        // and an untrusted server still fails with an error that names the remedies.
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::debug!(%error, "skipping part of the system's CA certificates");
        }
        roots.add_parsable_certificates(native.certs);
        if let Some(path) = ca_file {
            for cert in read_ca_file(path)? {
                roots.add(cert).map_err(|e| {
                    DirectoryError::settings(
                        "ca_file",
                        format!(
                            "{} holds a certificate that can't be used as a trust anchor ({e}); give the PEM certificate of the CA that issued the server's certificate",
                            path.display()
                        ),
                    )
                })?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, DirectoryError> {
    let shown = path.display();
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| {
        DirectoryError::settings(
            "ca_file",
            format!("cannot read {shown} ({e}); give the path of a readable PEM file with the CA certificate"),
        )
    })?;
    let mut certs = Vec::new();
    for cert in iter {
        certs.push(cert.map_err(|e| {
            DirectoryError::settings(
                "ca_file",
                format!("{shown} is not a valid PEM certificate file ({e}); give the CA certificate in PEM format (-----BEGIN CERTIFICATE-----)"),
            )
        })?);
    }
    if certs.is_empty() {
        return Err(DirectoryError::settings(
            "ca_file",
            format!(
                "{shown} contains no PEM certificate; give the CA certificate in PEM format (-----BEGIN CERTIFICATE-----)"
            ),
        ));
    }
    Ok(certs)
}

/// `ignore_certificate_errors`: any certificate is accepted, but the handshake signatures are still
/// checked, so the session is at least bound to the key of the certificate the server showed.
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Whether an error from a TLS handshake means "the certificate is not trusted". rustls errors reach
/// us wrapped in `io::Error` (tokio-rustls) or directly (ldap3's `Rustls` variant).
pub(crate) fn certificate_problem(error: &rustls::Error) -> bool {
    matches!(
        error,
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_problems_are_settings_errors() {
        let dir = std::env::temp_dir().join(format!("roster-dir-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing.pem");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let garbage = dir.join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\n!!!notbase64\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        for path in [&missing, &empty, &garbage] {
            let err = client_config(Some(path), false).unwrap_err();
            assert_eq!(err.code(), "DI001-invalid-settings", "{err}");
            assert!(err.to_string().contains("ca_file"), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(client_config(None, false).is_ok());
        assert!(client_config(None, true).is_ok());
    }
}
