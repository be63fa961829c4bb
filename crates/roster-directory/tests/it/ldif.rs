//! The LDIF connector: same mapping as LDAP, filtered offline, no logons.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use roster_core::directory::{DirectorySettings, LdifLimitSettings, LdifSettings};
use roster_directory::{DirectoryError, NoProgress, connector};

const SAMPLE: &str = "\
version: 1

# A comment between records.
dn: dc=example,dc=com
objectClass: dcObject
dc: example

dn: uid=zoe,ou=People,dc=example,dc=com
objectClass: inetOrgPerson
uid: zoe
cn:: Wm/DqyDDhW5nc3Ryw7Zt
entryUUID: 0A1B2C3D-0000-1111-2222-333344445555
mail: zoe@example.com
otherMailbox: ZOE@example.com
otherMailbox: zoe@other.exam
 ple

dn: cn=Smith\\, John,OU=people,DC=Example,DC=com
objectClass: inetOrgPerson
uid: jsmith
cn: Smith, John

dn: uid=skip,ou=People,dc=example,dc=com
objectClass: inetOrgPerson
uid: skip
cn: Skipped By Filter

dn: uid=other,ou=Other,dc=example,dc=com
objectClass: inetOrgPerson
uid: other
cn: Outside The Base
";

fn write(dir: &Path, name: &str, text: impl AsRef<[u8]>) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// A whole read with these settings.
async fn read(s: LdifSettings) -> Result<roster_directory::DirectoryRead, DirectoryError> {
    connector(&DirectorySettings::Ldif(s))
        .unwrap()
        .reader
        .read_entries(&NoProgress)
        .await
}

fn settings(file: std::path::PathBuf) -> LdifSettings {
    LdifSettings {
        schedule: Default::default(),
        file,
        base_dn: "ou=people,dc=example,dc=com".into(),
        mapping: roster_core::directory::AttributeMapping {
            filter: "(&(objectClass=inetOrgPerson)(!(uid=skip)))".into(),
            username_attribute: "uid".into(),
            full_name_attribute: Some("cn".into()),
            email_attributes: Some("mail,otherMailbox".into()),
        },
        delete_users: false,
        guard: Default::default(),
        limits: LdifLimitSettings::default(),
    }
}

#[tokio::test]
async fn reads_filters_and_maps_an_ldif_file() {
    let dir = roster_testkit::common::temp_dir("roster-ldif-").unwrap();
    let file = write(dir.path(), "users.ldif", SAMPLE);
    let ldif = connector(&DirectorySettings::Ldif(settings(file.clone()))).unwrap();
    assert_eq!(ldif.kind.name(), "ldif");
    ldif.reader.check_connection().await.unwrap();
    let progress = crate::common::Recorder::default();
    let read = ldif.reader.read_entries(&progress).await.unwrap();
    assert_eq!(read.entries.len(), 2, "{:#?}", read.entries);
    assert_eq!(progress.0.lock().unwrap().last(), Some(&2));
    let zoe = &read.entries[0];
    assert_eq!(zoe.name.as_deref(), Some("zoe"));
    assert_eq!(zoe.full_name.as_deref(), Some("Zoë Ångström"));
    assert_eq!(zoe.id, "0a1b2c3d-0000-1111-2222-333344445555");
    assert_eq!(
        zoe.emails.as_deref().unwrap(),
        ["zoe@example.com", "zoe@other.example"]
    );
    let smith = &read.entries[1];
    assert_eq!(smith.name.as_deref(), Some("jsmith"));
    assert_eq!(smith.dn, "cn=Smith\\, John,OU=people,DC=Example,DC=com");
    assert_eq!(smith.id, "dn:cn=smith\\, john,ou=people,dc=example,dc=com");
    assert_eq!(read.without_stable_id, 1);

    // An empty base DN keeps everything the filter matches.
    let mut s = settings(file.clone());
    s.base_dn = String::new();
    let all = connector(&DirectorySettings::Ldif(s)).unwrap();
    assert_eq!(
        all.reader
            .read_entries(&NoProgress)
            .await
            .unwrap()
            .entries
            .len(),
        3
    );

    // A file can't check passwords: the connector has no password checker, and says so.
    assert!(ldif.passwords.is_none());
    let err = ldif.password_checker().unwrap_err();
    assert!(
        matches!(err, DirectoryError::LogonUnsupported { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("local authentication"), "{err}");
}

#[tokio::test]
async fn ldif_errors() {
    let dir = roster_testkit::common::temp_dir("roster-ldif-").unwrap();
    let bad = write(
        dir.path(),
        "bad.ldif",
        "dn: uid=a,ou=People,dc=example,dc=com\nuid: a\n\ndn: uid=b,ou=People,dc=example,dc=com\nthis line has no colon\n",
    );
    let err = read(settings(bad)).await.unwrap_err();
    assert!(matches!(err, DirectoryError::Ldif { .. }), "{err:?}");
    assert!(err.to_string().contains("line 5"), "{err}");

    let missing = dir.path().join("missing.ldif");
    let ldif = connector(&DirectorySettings::Ldif(settings(missing))).unwrap();
    assert_eq!(
        ldif.reader.check_connection().await.unwrap_err().code(),
        "DI017-ldif"
    );
    assert_eq!(
        ldif.reader
            .read_entries(&NoProgress)
            .await
            .unwrap_err()
            .code(),
        "DI017-ldif"
    );

    // Regressions (review of issue 4): an empty file, a file of comments, and a file cut inside a line
    // were read as complete, so that every user after the cut looked deleted.
    let cut_at = SAMPLE.find("uid: jsmith").unwrap() + 7;
    for (name, text, fragment) in [
        ("empty.ldif", "", "no entries"),
        (
            "comments.ldif",
            "version: 1\n# nothing else\n",
            "no entries",
        ),
        ("cut.ldif", &SAMPLE[..cut_at], "truncated"),
    ] {
        let file = write(dir.path(), name, text);
        let err = read(settings(file)).await.unwrap_err();
        assert_eq!(err.code(), "DI017-ldif", "{name}: {err}");
        assert!(err.to_string().contains(fragment), "{name}: {err}");
    }

    // A base DN that nothing in the file is under (regression, diff review of issue 4): an error, as
    // an LDAP server's "no such object", not a read of nothing.
    let file = write(dir.path(), "sample.ldif", SAMPLE);
    let mut s = settings(file.clone());
    s.base_dn = "ou=Peple,dc=example,dc=com".into();
    let err = read(s).await.unwrap_err();
    assert_eq!(err.code(), "DI017-ldif", "{err}");
    assert!(err.to_string().contains("`base_dn`"), "{err}");
    // Bytes that are not UTF-8 where the filter looks fail the read; elsewhere they are left alone.
    let with_sample =
        |name: &str, extra: &[u8]| write(dir.path(), name, [SAMPLE.as_bytes(), extra].concat());
    let latin1 = with_sample(
        "latin1.ldif",
        b"\ndn: uid=l,ou=People,dc=example,dc=com\nobjectClass: inetOrgPers\xf6n\nuid: l\n",
    );
    let err = read(settings(latin1)).await.unwrap_err();
    assert!(
        err.to_string().contains("'objectClass'") && err.to_string().contains("UTF-8"),
        "{err}"
    );
    let photo = with_sample(
        "photo.ldif",
        b"\ndn: uid=p,ou=People,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: p\ndescription: caf\xe9\n",
    );
    let read = read(settings(photo)).await.unwrap();
    assert!(read.entries.iter().any(|e| e.name.as_deref() == Some("p")));

    // Extensible matches need a server: refused with the settings, not in the middle of a read.
    let mut s = settings(dir.path().join("x.ldif"));
    s.mapping.filter = "(cn:caseExactMatch:=x)".into();
    let err = connector(&DirectorySettings::Ldif(s)).unwrap_err();
    assert!(
        matches!(err, DirectoryError::InvalidSettings { key: "filter", .. }),
        "{err:?}"
    );
}

/// Regression (issue 19, item 2): a line, a record or a file over its limit fails the read with the
/// limit, the setting that raises it and the line; the file's size is checked before reading and while
/// reading (a /proc file says it is empty). Default limits: see `roster_core::ldif::LdifLimits`.
#[tokio::test]
async fn an_ldif_file_over_a_limit_fails_naming_the_setting() {
    let dir = roster_testkit::common::temp_dir("roster-ldif-").unwrap();
    let limited = |file: PathBuf, limits: LdifLimitSettings| LdifSettings {
        limits,
        ..settings(file)
    };
    let sample = write(dir.path(), "sample.ldif", SAMPLE);
    let fits = LdifLimitSettings {
        max_file_bytes: Some(SAMPLE.len() as u64),
        max_line_bytes: Some(47),
        max_record_bytes: Some(236),
    };
    assert_eq!(
        read(limited(sample.clone(), fits.clone()))
            .await
            .unwrap()
            .entries
            .len(),
        2
    );

    let cases = [
        (
            LdifLimitSettings {
                max_line_bytes: Some(46),
                ..fits.clone()
            },
            // "entryUUID: 0A1B2C3D-0000-1111-2222-333344445555", line 12, is the first of the longest.
            "LDIF line 12: this line is longer than `max_line_bytes` (46 bytes)",
        ),
        (
            LdifLimitSettings {
                max_record_bytes: Some(235),
                ..fits.clone()
            },
            "LDIF line 16: the record that starts at line 8 is larger than `max_record_bytes` (235 bytes)",
        ),
        (
            LdifLimitSettings {
                max_file_bytes: Some(SAMPLE.len() as u64 - 1),
                ..fits.clone()
            },
            &format!(
                "it is {} bytes, larger than `max_file_bytes` ({} bytes), so it was not read; if it is the \
                 right file, raise `max_file_bytes` in the directory settings",
                SAMPLE.len(),
                SAMPLE.len() - 1
            ),
        ),
    ];
    for (limits, expected) in cases {
        let s = limited(sample.clone(), limits);
        let err = read(s.clone()).await.unwrap_err();
        assert_eq!(err.code(), "DI017-ldif", "{err}");
        assert!(err.to_string().contains(expected), "{err}");
        assert!(err.to_string().contains("raise `max_"), "{err}");
    }
    // The size is known before reading: checking the connection finds it too.
    let too_small = limited(
        sample.clone(),
        LdifLimitSettings {
            max_file_bytes: Some(100),
            ..fits.clone()
        },
    );
    let ldif = connector(&DirectorySettings::Ldif(too_small)).unwrap();
    let err = ldif.reader.check_connection().await.unwrap_err();
    assert!(
        err.to_string().contains("`max_file_bytes` (100 bytes)"),
        "{err}"
    );

    // A file whose size says nothing (a /proc file is "0 bytes") is held to the limit while it is read.
    let proc_file = limited(
        "/proc/self/mountinfo".into(),
        LdifLimitSettings {
            max_file_bytes: Some(10),
            ..fits.clone()
        },
    );
    let err = read(proc_file).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("LDIF line 1: the file is larger than `max_file_bytes` (10 bytes)"),
        "{err}"
    );

    // The defaults: a line of 17 MiB without a break is no export.
    let endless = write(dir.path(), "endless.ldif", vec![b'x'; 17 << 20]);
    let err = read(settings(endless)).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("LDIF line 1: this line is longer than `max_line_bytes` (16777216 bytes)"),
        "{err}"
    );

    // A limit of 0 is refused with the settings.
    let zero = limited(
        sample,
        LdifLimitSettings {
            max_line_bytes: Some(0),
            ..fits
        },
    );
    let err = connector(&DirectorySettings::Ldif(zero)).unwrap_err();
    assert!(
        matches!(
            err,
            DirectoryError::InvalidSettings {
                key: "max_line_bytes",
                ..
            }
        ),
        "{err:?}"
    );
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// `work`'s answer, or a failed test if it takes 10 s: a regression fails rather than hangs. A read
/// stuck opening the FIFO is let go (a writer that comes and goes gives it an empty file), so that the
/// runtime can shut down after the failure.
async fn promptly<T>(fifo: &Path, what: &str, work: impl Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(10), work).await {
        Ok(answer) => answer,
        Err(_) => {
            use std::os::unix::fs::OpenOptionsExt as _;
            drop(
                std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(fifo),
            );
            panic!("{what} did not finish within 10 s");
        }
    }
}

/// Regression (issue 19, item 3, regular files only): an LDIF `file` that was a FIFO hung the run
/// forever, and /dev/zero read without end. Only regular files are read: a FIFO, a device, a directory
/// or a socket is refused at `directory set` and, since the path may change after, at every check and
/// read, without opening it. A symbolic link is followed; a missing file is still allowed at set.
#[tokio::test]
async fn only_regular_files_are_read() {
    let dir = roster_testkit::common::temp_dir("roster-ldif-").unwrap();
    let fifo = dir.path().join("fifo.ldif");
    mkfifo(&fifo);
    let socket = dir.path().join("socket.ldif");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let directory = dir.path().join("directory.ldif");
    std::fs::create_dir(&directory).unwrap();
    let link_to_fifo = dir.path().join("link-to-fifo.ldif");
    std::os::unix::fs::symlink(&fifo, &link_to_fifo).unwrap();
    let others = [
        (fifo.clone(), "is a FIFO (named pipe), not a regular file"),
        (
            PathBuf::from("/dev/zero"),
            "is a device, not a regular file",
        ),
        (directory, "is a directory, not a regular file"),
        (socket, "is a socket, not a regular file"),
        (link_to_fifo, "is a FIFO (named pipe), not a regular file"),
    ];

    // At `directory set`, where the connector is made.
    for (path, what) in &others {
        let err = connector(&DirectorySettings::Ldif(settings(path.clone()))).unwrap_err();
        match &err {
            DirectoryError::InvalidSettings {
                key: "file",
                message,
            } => {
                assert!(message.contains(what), "{err}");
                assert!(message.contains(&path.display().to_string()), "{err}");
            }
            other => panic!(
                "{}: expected InvalidSettings for `file`, got {other:?}",
                path.display()
            ),
        }
    }

    // A link to a regular file is followed.
    let sample = write(dir.path(), "sample.ldif", SAMPLE);
    let latest = dir.path().join("latest.ldif");
    std::os::unix::fs::symlink(&sample, &latest).unwrap();
    assert_eq!(read(settings(latest)).await.unwrap().entries.len(), 2);

    // At read time: the path names something else since the settings were saved.
    let swapped = dir.path().join("swapped.ldif");
    std::fs::copy(&sample, &swapped).unwrap();
    let ldif = connector(&DirectorySettings::Ldif(settings(swapped.clone()))).unwrap();
    promptly(&fifo, "the first check", ldif.reader.check_connection())
        .await
        .unwrap();
    for (path, what) in &others {
        std::fs::remove_file(&swapped).unwrap();
        std::os::unix::fs::symlink(path, &swapped).unwrap();
        let check = promptly(&fifo, "check_connection", ldif.reader.check_connection()).await;
        let read = promptly(&fifo, "read_entries", ldif.reader.read_entries(&NoProgress)).await;
        for err in [check.unwrap_err(), read.unwrap_err()] {
            assert_eq!(err.code(), "DI017-ldif", "{err}");
            let what = what.strip_prefix("is ").unwrap();
            assert!(err.to_string().contains(&format!("it is {what}")), "{err}");
        }
    }
}

/// Regression (issue 19, item 4): errors repeated the file's contents (`/etc/shadow` gave "found
/// 'root:'"; a database file and /proc/self/maps leaked too), and the run stores the message. Files
/// that hold a secret-looking marker, through each error the reader and the connector can give, get
/// messages with the line and what was expected, never the bytes.
#[tokio::test]
async fn ldif_errors_never_repeat_the_file_contents() {
    const MARKER: &str = "s3cretMarker";
    let dir = roster_testkit::common::temp_dir("roster-ldif-").unwrap();
    let person = |extra: &str| {
        format!(
            "{SAMPLE}\ndn: uid=m,ou=People,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: m\n{extra}"
        )
        .into_bytes()
    };
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "shadow",
            format!(
                "root:$6$salt{MARKER}$hash:19000:0:99999:7:::\n{MARKER}:*:19000:0:99999:7:::\n"
            )
            .into_bytes(),
        ),
        (
            "named",
            format!("{MARKER}:$6$salt$hash:19000:0:99999:7:::\n").into_bytes(),
        ),
        (
            "database",
            [
                &b"SQLite format 3\0\x10\0\x01\x01"[..],
                MARKER.as_bytes(),
                b"\0\0\ndn: x\n",
            ]
            .concat(),
        ),
        (
            "version",
            format!("version: {MARKER}\n\n{SAMPLE}").into_bytes(),
        ),
        (
            "changetype",
            format!("{SAMPLE}\ndn: uid=m,ou=People,dc=example,dc=com\nchangetype: {MARKER}\n")
                .into_bytes(),
        ),
        ("base64", person(&format!("{MARKER}:: {MARKER}!\n"))),
        ("name", person(&format!("{MARKER}_: x\n"))),
        ("no colon", person(&format!("{MARKER}\n"))),
        ("nul", person(&format!("{MARKER}: a\0b\n"))),
        (
            "no attributes",
            format!("{SAMPLE}\ndn: cn={MARKER}\n").into_bytes(),
        ),
        ("second dn", person(&format!("dn: cn={MARKER}\n"))),
        ("truncated", person(&format!("cn: {MARKER}"))),
        (
            "not UTF-8 where the filter looks",
            [
                person(&format!("objectClass: {MARKER}")).as_slice(),
                b"\xff\n",
            ]
            .concat(),
        ),
        ("long line", person(&format!("cn: {}\n", MARKER.repeat(10)))),
    ];
    let limits = LdifLimitSettings {
        max_line_bytes: Some(100),
        ..LdifLimitSettings::default()
    };
    for (name, text) in cases {
        let file = write(dir.path(), "secret.ldif", &text);
        let err = read(LdifSettings {
            limits: limits.clone(),
            ..settings(file)
        })
        .await
        .unwrap_err();
        let message = err.to_string();
        assert_eq!(err.code(), "DI017-ldif", "{name}: {message}");
        assert!(message.contains("line "), "{name}: {message}");
        for leak in [MARKER, "root", "$6$", "SQLite"] {
            assert!(!message.contains(leak), "{name}: {message}");
        }
    }

    // A /proc file: no piece of it in the message.
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut s = settings("/proc/self/maps".into());
    s.base_dn = String::new();
    let message = read(s).await.unwrap_err().to_string();
    assert!(message.contains("LDIF line 1"), "{message}");
    for piece in maps.split_whitespace().filter(|p| p.len() >= 8) {
        assert!(!message.contains(piece), "{piece:?} in {message}");
    }
}
