//! StartTLS and LDAPS with the testkit CA, untrusted certificates, and the escape hatch.

use roster_core::directory::{Encryption, LdapSettings, Secret};
use roster_directory::{DirectoryError, LogonOutcome, LogonSubject, NoProgress};
use roster_testkit::{Slapd, SlapdConfig, SlapdTls, TestCa, TestUser, user_ldif};

use crate::common::{connect, settings, try_connect};

fn tls_settings(slapd: &Slapd, encryption: Encryption, ca_file: bool) -> LdapSettings {
    let mut s = settings(slapd);
    s.encryption = encryption;
    if encryption == Encryption::Ssl {
        s.port = slapd.ldaps_port();
    }
    if ca_file {
        s.ca_file = slapd.ca_cert_path().map(Into::into);
    }
    s
}

fn assert_untrusted(err: &DirectoryError) {
    assert!(
        matches!(err, DirectoryError::CertificateUntrusted { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains("ca_file") && text.contains("ignore_certificate_errors"),
        "{text}"
    );
}

#[tokio::test]
async fn starttls_and_ldaps_with_the_ca_file() {
    let ca = TestCa::generate().unwrap();
    let slapd = Slapd::start(SlapdConfig {
        tls: Some(SlapdTls::from_ca(&ca).unwrap()),
        ..Default::default()
    })
    .unwrap();
    slapd
        .add(&user_ldif(
            slapd.suffix(),
            &TestUser {
                uid: "tls",
                cn: "Tee Ell Ess",
                password: Some("tls-pw"),
                ..Default::default()
            },
        ))
        .unwrap();

    for encryption in [Encryption::Starttls, Encryption::Ssl] {
        let dir = connect(tls_settings(&slapd, encryption, true));
        dir.reader.check_connection().await.unwrap();
        let read = dir.reader.read_entries(&NoProgress).await.unwrap();
        assert_eq!(read.entries.len(), 1, "{encryption:?}");
        // The user's bind goes over a new connection with the same TLS settings.
        let outcome = dir
            .password_checker()
            .unwrap()
            .authenticate(
                &LogonSubject {
                    name: "tls",
                    dn: None,
                    id: Some(&read.entries[0].id),
                },
                &Secret::new("tls-pw"),
            )
            .await
            .unwrap();
        assert!(
            matches!(outcome, LogonOutcome::Accepted { .. }),
            "{encryption:?}: {outcome:?}"
        );

        // Without the CA, the server's certificate is not trusted (the system store doesn't know the
        // test CA)...
        let err = connect(tls_settings(&slapd, encryption, false))
            .reader
            .check_connection()
            .await
            .unwrap_err();
        assert_untrusted(&err);
        // ...unless the administrator accepts any certificate.
        let mut s = tls_settings(&slapd, encryption, false);
        s.ignore_certificate_errors = true;
        connect(s).reader.check_connection().await.unwrap();
    }

    // ldaps:// to the plain LDAP port: a clear error, not a hang.
    let mut s = tls_settings(&slapd, Encryption::Ssl, true);
    s.port = Some(slapd.port());
    s.timeout_seconds = Some(3);
    let err = connect(s).reader.check_connection().await.unwrap_err();
    assert!(matches!(err, DirectoryError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("636"), "{err}");

    // And the reverse (regression, review of issue 4): plain LDAP and StartTLS to the LDAPS port. The
    // server waits for a TLS handshake and drops the connection; the message must point at `encryption`.
    for encryption in [Encryption::None, Encryption::Starttls] {
        let mut s = tls_settings(&slapd, encryption, encryption == Encryption::Starttls);
        s.port = slapd.ldaps_port();
        s.timeout_seconds = Some(3);
        let err = connect(s).reader.check_connection().await.unwrap_err();
        assert!(
            err.to_string().contains("encryption = \"ssl\""),
            "{encryption:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn a_self_signed_certificate_is_refused_unless_ignored() {
    let ca = TestCa::generate().unwrap();
    let rogue = ca.self_signed_server_cert("localhost").unwrap();
    let slapd = Slapd::start(SlapdConfig {
        tls: Some(SlapdTls {
            cert: rogue,
            ca_cert_path: ca.ca_cert_path().into(),
        }),
        ..Default::default()
    })
    .unwrap();
    for encryption in [Encryption::Starttls, Encryption::Ssl] {
        // Even with the CA file: the certificate isn't from that CA.
        let err = connect(tls_settings(&slapd, encryption, true))
            .reader
            .read_entries(&NoProgress)
            .await
            .unwrap_err();
        assert_untrusted(&err);
        assert_eq!(err.code(), "DI005-certificate-untrusted");

        let mut s = tls_settings(&slapd, encryption, false);
        s.ignore_certificate_errors = true;
        let dir = try_connect(s).unwrap();
        dir.reader.check_connection().await.unwrap();
        dir.reader.read_entries(&NoProgress).await.unwrap();
    }
}

#[tokio::test]
async fn starttls_against_a_server_without_tls_is_a_tls_error() {
    let slapd = Slapd::start(SlapdConfig::default()).unwrap();
    let mut s = settings(&slapd);
    s.encryption = Encryption::Starttls;
    let err = connect(s).reader.check_connection().await.unwrap_err();
    assert!(matches!(err, DirectoryError::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains("StartTLS"), "{err}");
}
