//! Settings and connection problems: each must give its own error, with the fix in the message.

use roster_core::directory::{DirectorySettings, Secret};
use roster_directory::{DirectoryError, NoProgress, connector};
use roster_testkit::{Slapd, SlapdConfig, free_port};

use crate::common::{connect, settings, try_connect};

const SERVICE_SECRET: &str = "S3rvice-Secret-never-shown";

#[tokio::test]
async fn settings_errors_come_before_any_connection() {
    // Nothing listens on this port: a connection attempt would give DI004, not the errors below.
    let closed = free_port();
    let slapd = Slapd::start(SlapdConfig::default()).unwrap();
    let base = || {
        let mut s = settings(&slapd);
        s.port = Some(closed);
        s
    };

    let mut s = base();
    s.mapping.filter = "(uid=".into();
    let err = try_connect(s).unwrap_err();
    assert!(
        matches!(err, DirectoryError::InvalidSettings { key: "filter", .. }),
        "{err:?}"
    );
    assert_eq!(err.code(), "DI001-invalid-settings");

    let mut s = base();
    s.password = Some(Secret::new(""));
    let err = try_connect(s).unwrap_err();
    assert!(
        matches!(
            err,
            DirectoryError::InvalidSettings {
                key: "password",
                ..
            }
        ),
        "{err:?}"
    );
    let mut s = base();
    s.password = None;
    assert!(matches!(
        try_connect(s).unwrap_err(),
        DirectoryError::InvalidSettings {
            key: "password",
            ..
        }
    ));

    let mut s = base();
    s.encryption = roster_core::directory::Encryption::Ssl;
    s.ca_file = Some("/nonexistent/ca.pem".into());
    let err = try_connect(s).unwrap_err();
    assert!(
        matches!(err, DirectoryError::InvalidSettings { key: "ca_file", .. }),
        "{err:?}"
    );

    let mut s = base();
    s.page_size = Some(5000);
    assert!(matches!(
        try_connect(s).unwrap_err(),
        DirectoryError::InvalidSettings {
            key: "page_size",
            ..
        }
    ));

    let err = connector(&DirectorySettings::None).unwrap_err();
    assert_eq!(err.code(), "DI002-not-configured");
    assert!(
        err.to_string().contains("no directory is configured"),
        "{err}"
    );
    let err = connector(&DirectorySettings::Unsupported).unwrap_err();
    assert_eq!(err.code(), "DI003-unsupported-type");
    assert!(
        err.to_string().contains("not available in this version"),
        "{err}"
    );

    // The valid settings do connect lazily: building the connector touches no network, and the
    // closed port is only reported when used.
    let dir = try_connect(base()).unwrap();
    let err = dir.reader.check_connection().await.unwrap_err();
    assert_eq!(err.code(), "DI004-connect", "{err}");
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{closed}")),
        "{err}"
    );
    assert!(err.to_string().contains("firewall"), "{err}");
}

#[tokio::test]
async fn wrong_service_password_is_a_service_bind_error_without_the_password() {
    let slapd = Slapd::start(SlapdConfig::default()).unwrap();
    let mut s = settings(&slapd);
    s.password = Some(Secret::new(SERVICE_SECRET));
    let dir = connect(s);
    assert!(!format!("{dir:?}").contains(SERVICE_SECRET));
    for err in [
        dir.reader.check_connection().await.unwrap_err(),
        dir.reader.read_entries(&NoProgress).await.unwrap_err(),
    ] {
        assert!(
            matches!(err, DirectoryError::ServiceBind { rc: 49, .. }),
            "{err:?}"
        );
        assert_eq!(err.code(), "DI007-service-bind");
        let text = format!("{err} {err:?}");
        assert!(
            text.contains("refused the service account or its password (bind_dn"),
            "{text}"
        );
        assert!(text.contains(slapd.root_dn()), "{text}");
        assert!(!text.contains(SERVICE_SECRET), "{text}");
    }
    // The right password works with the same connector type.
    connect(settings(&slapd))
        .reader
        .check_connection()
        .await
        .unwrap();
}

#[tokio::test]
async fn server_down_and_missing_base() {
    let mut s = crate::common::settings(&Slapd::start(SlapdConfig::default()).unwrap());
    // The slapd above is already gone (dropped): nothing listens on its port any more.
    s.timeout_seconds = Some(2);
    let err = connect(s)
        .reader
        .read_entries(&NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::Connect { .. }), "{err:?}");

    let slapd = Slapd::start(SlapdConfig::default()).unwrap();
    let mut s = settings(&slapd);
    s.base_dn = format!("ou=Nowhere,{}", slapd.suffix());
    let err = connect(s)
        .reader
        .read_entries(&NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::NoSuchBase { .. }), "{err:?}");
    assert!(err.to_string().contains("ou=Nowhere"), "{err}");
    // A base DN that is not a DN at all (regression, review of issue 4: the message didn't name it).
    let mut s = settings(&slapd);
    s.base_dn = "garbage".into();
    let err = connect(s)
        .reader
        .read_entries(&NoProgress)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("`base_dn`"), "{err:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    // The kernel completes the TCP handshake for the backlog, but nobody ever reads or answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let slapd = Slapd::start(SlapdConfig::default()).unwrap();
    let mut s = settings(&slapd);
    s.port = Some(port);
    s.timeout_seconds = Some(1);
    let started = std::time::Instant::now();
    let err = connect(s)
        .reader
        .read_entries(&NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, DirectoryError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(err.to_string().contains("timeout_seconds"), "{err}");
    drop(listener);
}
