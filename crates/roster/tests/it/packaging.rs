//! The Debian package (issue 27), installed as an administrator would: `scripts/package.sh` packages the
//! binary this test run built (no release build of its own: CI's time), and the package goes into a
//! clean Debian root of the machine's own release (mmdebstrap, minbase, plus systemd for
//! `systemd-analyze` and man-db for the man page the unit names), with its dependencies from the Debian
//! mirror (`apt-get install ./roster.deb` in the root). Then: the files where Debian expects them, the
//! conffile, the system user and the data directory, the unit file valid (`systemd-analyze verify`) and
//! hardened (`systemd-analyze security` under a threshold), the binary runs, and `roster serve` started
//! as the user roster with the unit's own command line and the installed configuration answers
//! `GET /healthz` and keeps its database in /var/lib/roster.
//!
//! The clean root is made once per machine and kept as a tarball in the temporary directory,
//! `$TMPDIR/roster-package-root-<release>-<arch>-r<RECIPE>.tar` (~90 s to make, seconds to unpack), like
//! the test kit's Samba template. It needs root (chroot, device nodes), as the rest of the tests do; a
//! run without root fails rather than skips.
//!
//! There is no systemd running here (the root is a chroot, not a booted container), so the unit's
//! hardening is checked by `systemd-analyze`, and the server is started by `chroot --userspec`, not by
//! systemd.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_roster");

/// Bump when what goes into the clean root changes, so an old tarball isn't reused.
const RECIPE: u32 = 1;
/// What the clean root holds besides minbase: systemd for `systemd-analyze`, man-db for the
/// `Documentation=man:` link that `systemd-analyze verify` checks. Nothing the package needs: its
/// dependencies must come from its own `Depends`.
const ROOT_PACKAGES: &str = "systemd,man-db";
/// `systemd-analyze security`'s exposure, 0 to 100 (it prints a tenth of it: 1.1 is 11): the unit
/// must stay at "OK" or better (below 2.0); it is 1.1 today.
const EXPOSURE_THRESHOLD: u32 = 20;

fn text(o: &[u8]) -> String {
    String::from_utf8_lossy(o).into_owned()
}

fn ok(what: &str, o: Output) -> String {
    assert!(
        o.status.success(),
        "{what} failed ({}):\n{}\n{}",
        o.status,
        text(&o.stdout),
        text(&o.stderr)
    );
    text(&o.stdout)
}

/// A shell script inside the root, as root, with /proc mounted in a mount namespace of its own (it goes
/// away with the process: nothing stays mounted if the test stops).
fn in_root(root: &Path, script: &str) -> Output {
    Command::new("unshare")
        .args(["--mount", "--fork", "--", "sh", "-c"])
        .arg(r#"mount -t proc proc "$0/proc" && exec chroot "$0" /bin/sh -ec "$1""#)
        .arg(root)
        .arg(script)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// `KEY=value` lines of /etc/os-release.
fn os_release(key: &str) -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in /etc/os-release"))
        .trim_matches('"')
        .to_owned()
}

/// The clean root's tarball: made once per machine (under a lock, into `.partial`, then renamed).
fn clean_root_tarball() -> PathBuf {
    let release = os_release("VERSION_CODENAME");
    let arch = ok(
        "dpkg --print-architecture",
        Command::new("dpkg")
            .arg("--print-architecture")
            .output()
            .unwrap(),
    )
    .trim()
    .to_owned();
    let tarball = std::env::temp_dir().join(format!(
        "roster-package-root-{release}-{arch}-r{RECIPE}.tar"
    ));
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(tarball.with_extension("lock"))
        .unwrap();
    lock.lock().unwrap();
    if tarball.exists() {
        return tarball;
    }
    let partial = tarball.with_extension("partial");
    let started = Instant::now();
    // Without a mirror mmdebstrap takes deb.debian.org with the release's updates and security
    // suites. The package lists stay in the root, so that the test's `apt-get update` only fetches
    // what changed since.
    ok(
        "mmdebstrap (making the clean Debian root)",
        Command::new("mmdebstrap")
            .args(["--variant=minbase", "--quiet", "--skip=cleanup/apt/lists"])
            .arg(format!("--include={ROOT_PACKAGES}"))
            .arg("--format=tar")
            .arg(&release)
            .arg(&partial)
            .stdin(Stdio::null())
            .output()
            .unwrap(),
    );
    std::fs::rename(&partial, &tarball).unwrap();
    eprintln!(
        "packaging: made the clean root {} in {:.0?}",
        tarball.display(),
        started.elapsed()
    );
    tarball
}

/// The package, from the binary of this test run: `scripts/package.sh --no-build` with the profile and
/// target directory that binary was built in.
fn build_package(out: &Path) -> PathBuf {
    let bin = Path::new(BIN);
    let profile_dir = bin.parent().unwrap();
    let target_dir = profile_dir.parent().unwrap();
    let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
        "debug" => "dev",
        other => other,
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let deb = out.join("roster.deb");
    ok(
        "scripts/package.sh",
        Command::new(repo.join("scripts/package.sh"))
            .args(["--profile", profile, "--no-build", "--fast", "--output"])
            .arg(&deb)
            .env("CARGO_TARGET_DIR", target_dir)
            .stdin(Stdio::null())
            .output()
            .unwrap(),
    );
    deb
}

/// The uid and gid of `user` in the root's /etc/passwd.
fn ids(root: &Path, user: &str) -> (u32, u32) {
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    let line = passwd
        .lines()
        .find(|l| l.starts_with(&format!("{user}:")))
        .unwrap_or_else(|| panic!("no user {user} in the root's /etc/passwd:\n{passwd}"));
    let fields: Vec<&str> = line.split(':').collect();
    (fields[2].parse().unwrap(), fields[3].parse().unwrap())
}

/// The installed unit's `ExecStart=` as arguments.
fn exec_start(unit: &str) -> Vec<String> {
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart= in the unit");
    line.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn the_debian_package_installs_into_a_clean_root_and_serves() {
    assert!(
        std::fs::metadata("/proc/self").unwrap().uid() == 0,
        "the package test needs root (mmdebstrap, chroot, device nodes): run it as root, as CI does"
    );
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();
    let deb = build_package(work.path());
    let packaged = started.elapsed();
    let fields = ok(
        "dpkg-deb --field",
        Command::new("dpkg-deb")
            .args(["--field"])
            .arg(&deb)
            .output()
            .unwrap(),
    );
    for dependency in ["libgssapi-krb5-2", "libc6", "adduser"] {
        assert!(
            fields.contains(dependency),
            "Depends lacks {dependency}:\n{fields}"
        );
    }

    let tarball = clean_root_tarball();
    let root = work.path().join("root");
    std::fs::create_dir(&root).unwrap();
    ok(
        "unpacking the clean root",
        Command::new("tar")
            .arg("-C")
            .arg(&root)
            .arg("-xf")
            .arg(&tarball)
            .output()
            .unwrap(),
    );
    // The host's resolver, for apt in the root.
    std::fs::copy("/etc/resolv.conf", root.join("etc/resolv.conf")).unwrap();
    std::fs::copy(&deb, root.join("tmp/roster.deb")).unwrap();
    let prepared = started.elapsed();

    // Installed as an administrator would: apt resolves the package's Depends from the mirror.
    ok(
        "apt-get install ./roster.deb in the clean root",
        in_root(
            &root,
            "apt-get update -qq -o Acquire::Languages=none
             apt-get install -y -qq --no-install-recommends /tmp/roster.deb",
        ),
    );
    let installed = started.elapsed();

    // The files where Debian expects them.
    for (path, mode) in [
        ("usr/bin/roster", 0o755),
        ("lib/systemd/system/roster.service", 0o644),
        ("etc/roster/roster.toml", 0o640),
        ("usr/share/man/man1/roster.1.gz", 0o644),
        ("usr/share/man/man1/roster-serve.1.gz", 0o644),
        ("usr/share/man/man1/roster-users-add.1.gz", 0o644),
        ("usr/share/bash-completion/completions/roster", 0o644),
        ("usr/share/zsh/vendor-completions/_roster", 0o644),
        ("usr/share/fish/vendor_completions.d/roster.fish", 0o644),
        ("usr/share/doc/roster/README.md", 0o644),
        ("usr/share/doc/roster/copyright", 0o644),
    ] {
        let m = std::fs::metadata(root.join(path))
            .unwrap_or_else(|e| panic!("/{path} isn't installed: {e}"));
        assert_eq!(m.permissions().mode() & 0o7777, mode, "/{path}'s mode");
    }
    assert!(
        !root
            .join("usr/share/man/man1/roster-generate.1.gz")
            .exists(),
        "the hidden `generate` has no man page"
    );

    // The system user, its data directory, and the configuration readable by it and root only.
    let (uid, gid) = ids(&root, "roster");
    let passwd = std::fs::read_to_string(root.join("etc/passwd")).unwrap();
    let entry = passwd.lines().find(|l| l.starts_with("roster:")).unwrap();
    assert!(
        uid < 1000 && entry.ends_with(":/var/lib/roster:/usr/sbin/nologin"),
        "a system user without a shell, at home in its data directory: {entry}"
    );
    let data = std::fs::metadata(root.join("var/lib/roster")).unwrap();
    assert_eq!(
        (data.uid(), data.gid(), data.permissions().mode() & 0o7777),
        (uid, gid, 0o750),
        "/var/lib/roster"
    );
    let config = std::fs::metadata(root.join("etc/roster/roster.toml")).unwrap();
    assert_eq!(
        (config.uid(), config.gid()),
        (0, gid),
        "/etc/roster/roster.toml"
    );
    let config_text = std::fs::read_to_string(root.join("etc/roster/roster.toml")).unwrap();
    let settings: Vec<&str> = config_text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .collect();
    assert_eq!(
        settings,
        ["data_dir = \"/var/lib/roster\""],
        "everything but the data directory is commented out"
    );

    // The unit valid: `systemd-analyze verify` (which also runs `man roster-serve` for the unit's
    // Documentation=) exits 0 on a value it can't parse or an unknown key, with a warning: any output
    // at all fails the test.
    let verify = in_root(
        &root,
        "systemd-analyze verify /lib/systemd/system/roster.service 2>&1",
    );
    let said = text(&verify.stdout);
    assert!(
        verify.status.success() && said.trim().is_empty(),
        "systemd-analyze verify ({}):\n{said}",
        verify.status
    );
    // Hardened: exits non-zero over the threshold.
    let security = ok(
        "systemd-analyze security",
        in_root(
            &root,
            &format!(
                "systemd-analyze security --offline=true --threshold={EXPOSURE_THRESHOLD} \
                    /lib/systemd/system/roster.service"
            ),
        ),
    );
    let exposure = security
        .lines()
        .find(|l| l.contains("Overall exposure"))
        .unwrap_or_else(|| panic!("no overall exposure in:\n{security}"));
    eprintln!("packaging: {exposure}");

    // In the root: the conffile, the binary, the man page, the completions, the unit not enabled.
    let report = ok(
        "the checks inside the root",
        in_root(
            &root,
            "echo conffiles: $(dpkg-query -W -f='${Conffiles}' roster)
             echo version: $(roster --version)
             echo man: $(man -w roster-serve)
             echo bash: $(bash -c '. /usr/share/bash-completion/completions/roster && complete -p roster')
             echo enabled: $(systemctl is-enabled roster.service || true)",
        ),
    );
    eprintln!("packaging: {report}");
    assert!(
        report.contains("conffiles: /etc/roster/roster.toml "),
        "{report}"
    );
    assert!(
        report.contains(&format!("version: roster {}", env!("CARGO_PKG_VERSION"))),
        "{report}"
    );
    assert!(
        report.contains("man: /usr/share/man/man1/roster-serve.1.gz"),
        "{report}"
    );
    assert!(report.contains("-F _roster roster"), "{report}");
    assert!(
        report.contains("enabled: disabled"),
        "not enabled on install: {report}"
    );

    // `roster serve` as the unit starts it, as the user roster, on a port of this run's (the root
    // shares the machine's network); the environment wins over the file for the address.
    let unit = std::fs::read_to_string(root.join("lib/systemd/system/roster.service")).unwrap();
    let argv = exec_start(&unit);
    assert_eq!(
        argv,
        [
            "/usr/bin/roster",
            "serve",
            "--config",
            "/etc/roster/roster.toml"
        ]
    );
    let port = roster_testkit::free_port();
    let mut server = Command::new("chroot")
        .arg("--userspec=roster:roster")
        .arg(&root)
        .args(&argv)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("ROSTER_LISTEN", format!("127.0.0.1:{port}"))
        .env("ROSTER_ADMIN_PASSWORD", "packaging-admin-password")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        match reqwest::blocking::get(format!("http://127.0.0.1:{port}/healthz")) {
            Ok(r) => break r,
            Err(e) if Instant::now() < deadline => {
                if let Some(status) = server.try_wait().unwrap() {
                    let out = server.wait_with_output().unwrap();
                    panic!("roster serve exited with {status}:\n{}", text(&out.stderr));
                }
                let _ = e;
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("roster serve didn't answer on port {port} in 30 s: {e}"),
        }
    };
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().unwrap(), "ok\n");
    let db = std::fs::metadata(root.join("var/lib/roster/roster.db"))
        .expect("the database in the configured data directory, /var/lib/roster");
    assert_eq!((db.uid(), db.gid()), (uid, gid), "roster.db is roster's");
    // SIGTERM: `chroot` execs the server, so the child is roster itself.
    let pid = i32::try_from(server.id()).unwrap();
    // SAFETY: sending a signal to our own child process.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let out = server.wait_with_output().unwrap();
    let log = text(&out.stderr);
    assert!(out.status.success(), "roster serve on SIGTERM: {log}");
    assert!(
        log.contains("configuration from /etc/roster/roster.toml"),
        "{log}"
    );
    let served = started.elapsed();

    // The CLI as the service's user finds the same data through the default configuration file...
    let users = ok(
        "roster users list as roster",
        Command::new("chroot")
            .arg("--userspec=roster:roster")
            .arg(&root)
            .args(["/usr/bin/roster", "users", "list", "--json"])
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .output()
            .unwrap(),
    );
    assert!(users.contains("\"admin\""), "{users}");
    // ...and another user is told why it can't read it, and what to do.
    let refused = Command::new("chroot")
        .arg("--userspec=nobody:nogroup")
        .arg(&root)
        .args(["/usr/bin/roster", "users", "list"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let message = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{message}");
    assert!(
        message.contains("CL003-config-file-unreadable") && message.contains("sudo -u roster"),
        "{message}"
    );

    eprintln!(
        "packaging: packaged in {packaged:.1?}, root ready at {prepared:.1?}, installed at \
         {installed:.1?}, served and stopped at {served:.1?}, all in {:.1?}",
        started.elapsed()
    );
}
