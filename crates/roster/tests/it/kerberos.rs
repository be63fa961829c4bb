//! Kerberos (issue 25) against the real Samba DC's KDC: the Active Directory service account binding with
//! a keytab (SASL GSSAPI on plain LDAP, sealed), and single sign-on (HTTP Negotiate) with curl and
//! Chromium. These run the `roster` binary: the Kerberos library reads `KRB5_CONFIG` from the process
//! environment, which a test process shared by many tests must not change, while a child gets its own.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use roster_testkit::samba::{ADMIN_PASSWORD, ADMIN_UPN, DNS_DOMAIN};
use roster_testkit::{AdUser, Ou, SambaDc};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_roster");

async fn dc() -> &'static SambaDc {
    tokio::task::spawn_blocking(SambaDc::shared)
        .await
        .unwrap()
        .unwrap()
}

/// One test's world: an OU of the shared domain, a data directory, and the krb5.conf the binary uses.
struct World {
    dc: &'static SambaDc,
    ou: Ou,
    dir: tempfile::TempDir,
    krb5_conf: PathBuf,
    tag: String,
}

impl World {
    async fn new(name: &str) -> World {
        let dc = dc().await;
        let ou = dc.new_ou(name).await.unwrap();
        let tag = dc.unique_name("k");
        World {
            dc,
            ou,
            dir: tempfile::tempdir().unwrap(),
            krb5_conf: dc.krb5_conf_path().to_owned(),
            tag,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `roster` on this world's data directory, with the DC's krb5.conf.
    fn roster(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--data-dir").arg(self.path("data"));
        c.env("ROSTER_ADMIN_PASSWORD", "kerberos-test-admin-pw");
        c.env("KRB5_CONFIG", &self.krb5_conf);
        // No ticket cache of anyone's: the service account's tickets live in the process' memory.
        c.env(
            "KRB5CCNAME",
            format!("FILE:{}", self.path("no-such-ccache").display()),
        );
        c.env_remove("ROSTER_DATABASE_URL");
        c.env_remove("KRB5_CLIENT_KTNAME");
        c.env_remove("KRB5_KTNAME");
        c.stdin(Stdio::null());
        c
    }

    fn sam(&self, name: &str) -> String {
        format!("{name}.{}", self.tag)
    }

    /// An enabled user with a password (`<name>-Pw1!`) and an address.
    async fn add_user(&self, name: &str) -> String {
        let mut u = AdUser::new(&self.sam(name));
        u.cn = Some(format!("{name} {}", self.tag));
        u.mail = Some(format!("{name}.{}@example.com", self.tag));
        u.password = Some(format!("{name}-Pw1!"));
        self.ou.add_user(&u).await.unwrap()
    }

    /// Active Directory settings for this OU; `account` is the service account's part.
    fn settings(&self, account: &str) -> String {
        format!(
            "type = \"active-directory\"\ndomain = \"{DNS_DOMAIN}\"\nserver = \"{}\"\nprotocol = \"ldap\"\nca_file = \"{}\"\nbase_dn = \"{}\"\n{account}",
            self.dc.ip(),
            self.dc.ca_cert_path().display(),
            self.ou.dn()
        )
    }

    fn kerberos_account(&self, keytab: &Path, principal: &str) -> String {
        format!(
            "authentication = \"kerberos\"\nkeytab = \"{}\"\nprincipal = \"{principal}\"\n",
            keytab.display()
        )
    }

    fn password_account(&self) -> String {
        format!("username = \"{ADMIN_UPN}\"\npassword = \"{ADMIN_PASSWORD}\"\n")
    }

    fn set_settings(&self, text: &str) -> Output {
        let file = self.path("settings.toml");
        std::fs::write(&file, text).unwrap();
        self.roster()
            .args(["directory", "set", "--file"])
            .arg(&file)
            .output()
            .unwrap()
    }

    fn sync(&self) -> Output {
        self.roster().args(["sync", "--json"]).output().unwrap()
    }

    fn user_names(&self) -> Vec<String> {
        let out = self
            .roster()
            .args(["users", "list", "--json"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let items = v.get("items").unwrap_or(&v).as_array().unwrap().clone();
        let mut names: Vec<String> = items
            .iter()
            .map(|u| u["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    }

    /// A service account with a keytab of its own principal.
    async fn service_account(&self, spns: &[&str]) -> (String, PathBuf, String) {
        let sam = self.dc.unique_name("rsvc");
        let account = self
            .dc
            .add_service_account(&sam, "Svc-Passw0rd!", spns)
            .await
            .unwrap();
        let keytab = self.path(&format!("{sam}.keytab"));
        self.dc.export_keytab(&account.principal, &keytab).unwrap();
        (account.principal, keytab, account.dn)
    }
}

impl World {
    /// A service account with the SPN `HTTP/<a host of its own>.localhost` and a keytab of that SPN's
    /// key: what `roster serve --keytab` takes. Returns the host, the SPN and the keytab.
    async fn http_service(&self) -> (String, String, PathBuf) {
        let host = self.dc.unique_http_host();
        let spn = format!("HTTP/{host}");
        self.service_account(&[&spn]).await;
        let keytab = self.path("http.keytab");
        self.dc
            .export_keytab(
                &roster_testkit::samba::kerberos::spn_principal(&spn),
                &keytab,
            )
            .unwrap();
        (host, spn, keytab)
    }

    /// Settings with the Administrator's password, then a sync: the OU's users become Roster users.
    fn sync_with_the_administrator(&self) {
        let out = self.set_settings(&self.settings(&self.password_account()));
        assert!(out.status.success(), "{}", text(&out));
        let out = self.sync();
        assert!(out.status.success(), "{}", text(&out));
    }
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keytab_service_account_binds_with_kerberos_and_synchronizes() {
    let w = World::new("krb-sync").await;
    w.add_user("alice").await;
    w.add_user("bob").await;
    let (principal, keytab, _) = w.service_account(&[]).await;

    // Through a relay that records what crosses the wire, to see that it is encrypted.
    let (relay_port, wire) =
        recording_relay(std::net::SocketAddr::new(w.dc.ip().into(), 389)).await;
    let settings = w
        .settings(&w.kerberos_account(&keytab, &principal))
        .replace(
            "protocol = \"ldap\"\n",
            &format!("protocol = \"ldap\"\nport = {relay_port}\n"),
        );
    let out = w.set_settings(&settings);
    assert!(out.status.success(), "{}", text(&out));
    // No password is stored or shown; the keytab path is.
    let show = w
        .roster()
        .args(["directory", "show", "--json"])
        .output()
        .unwrap();
    let shown: Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(shown["authentication"], "kerberos", "{shown}");
    assert!(shown.get("password").is_none(), "{shown}");
    assert_eq!(
        shown["keytab"].as_str().unwrap(),
        keytab.display().to_string()
    );

    let out = w.sync();
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let report_text = report.to_string();
    assert!(
        report_text.contains("bound with Kerberos"),
        "the report says how the service account bound: {report_text}"
    );
    let names = w.user_names();
    assert!(names.contains(&w.sam("alice")), "{names:?}");
    assert!(names.contains(&w.sam("bob")), "{names:?}");
    // The bind was SASL GSSAPI, and the entries crossed encrypted: no address of a user is readable.
    let wire = wire.lock().unwrap().clone();
    let seen = |needle: &str| wire.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(seen("GSSAPI"), "a SASL GSSAPI bind crossed the relay");
    assert!(
        !seen(&format!("alice.{}@example.com", w.tag)),
        "a user's address crossed in clear"
    );
    assert!(!seen(&w.sam("bob")), "a user's name crossed in clear");

    // Users still log on with their password (a simple bind over StartTLS, not Kerberos).
    let out = w
        .roster()
        .args(["logon", &w.sam("alice")])
        .env("ROSTER_PASSWORD", "alice-Pw1!")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_keytabs_and_skewed_clocks_are_clear_errors_that_change_nothing() {
    let w = World::new("krb-broken").await;
    w.add_user("alice").await;
    let (principal, keytab, svc_dn) = w.service_account(&[]).await;
    let (_, other_keytab, _) = w.service_account(&[]).await;

    // A keytab without the principal's key: refused when the settings are saved.
    let out = w.set_settings(&w.settings(&w.kerberos_account(&other_keytab, &principal)));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("holds no key for") && err.contains(&principal),
        "{err}"
    );

    // A missing keytab file: the same, and it says which file.
    let out =
        w.set_settings(&w.settings(&w.kerberos_account(&w.path("missing.keytab"), &principal)));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("missing.keytab"),
        "{}",
        text(&out)
    );

    // Good settings and a first sync.
    let out = w.set_settings(&w.settings(&w.kerberos_account(&keytab, &principal)));
    assert!(out.status.success(), "{}", text(&out));
    let out = w.sync();
    assert!(out.status.success(), "{}", text(&out));
    let before = w.user_names();
    w.add_user("late").await;

    // A clock an hour ahead, with MIT's correction from the KDC's answer off: clock skew, nothing changed.
    let skewed = w.path("krb5-no-timesync.conf");
    w.dc.write_krb5_conf(&skewed, &["kdc_timesync = 0"])
        .unwrap();
    let out = w
        .roster()
        .env("KRB5_CONFIG", &skewed)
        .env("FAKETIME", "+1h")
        .env("LD_PRELOAD", faketime_library())
        .args(["sync", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("DI029-kerberos") && err.contains("clock"),
        "{err}"
    );
    assert_eq!(w.user_names(), before);

    // The account's password changed after the export: the keytab's key is outdated.
    w.dc.set_password(&svc_dn, "Another-Passw0rd!")
        .await
        .unwrap();
    let out = w.sync();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        err.contains("DI029-kerberos") && err.contains("export the keytab again"),
        "{err}"
    );
    assert_eq!(w.user_names(), before, "a failed bind changes nothing");

    // The keytab removed after the settings were saved: the next run says which file.
    std::fs::remove_file(&keytab).unwrap();
    let out = w.sync();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&keytab.display().to_string()),
        "{}",
        text(&out)
    );
    assert_eq!(w.user_names(), before);
}

/// A TCP relay to `to` on a free port of the same address that keeps every byte sent either way.
async fn recording_relay(
    to: std::net::SocketAddr,
) -> (u16, std::sync::Arc<std::sync::Mutex<Vec<u8>>>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind((to.ip(), 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let wire = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorded = wire.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(to).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            for (mut from, mut to, wire) in [
                (
                    Box::new(cr) as Box<dyn tokio::io::AsyncRead + Send + Unpin>,
                    Box::new(sw) as Box<dyn tokio::io::AsyncWrite + Send + Unpin>,
                    recorded.clone(),
                ),
                (Box::new(sr), Box::new(cw), recorded.clone()),
            ] {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16384];
                    loop {
                        let n = match from.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        wire.lock().unwrap().extend_from_slice(&buf[..n]);
                        if to.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown().await;
                });
            }
        }
    });
    (port, wire)
}

/// libfaketime's preload library (Debian `faketime`).
fn faketime_library() -> &'static str {
    const CANDIDATES: &[&str] = &[
        "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
        "/usr/lib/faketime/libfaketime.so.1",
    ];
    CANDIDATES
        .iter()
        .copied()
        .find(|p| Path::new(p).exists())
        .expect("libfaketime (Debian package faketime; scripts/test.sh installs it)")
}

/// `roster serve --keytab` on a free port, stopped on drop.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(w: &World, keytab: &Path) -> Server {
    let port = roster_testkit::free_port();
    let child = w
        .roster()
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--keytab",
        ])
        .arg(keytab)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(w.path("serve.log")).unwrap())
        .spawn()
        .unwrap();
    roster_testkit::wait_for_port(port, Duration::from_secs(30)).unwrap();
    Server { child, port }
}

/// `curl --negotiate` as the holder of `ccache` (None: no tickets); returns (status, headers, body).
fn curl(w: &World, ccache: Option<&Path>, url: &str) -> (u16, String, String) {
    let none = w.path("empty-ccache");
    let mut c = w.dc.kerberos_command("curl", ccache.unwrap_or(&none));
    c.args(["-s", "-S", "--negotiate", "-u", ":", "-D", "-", "-o"])
        .arg(w.path("body"))
        .args(["-w", "%{http_code}\n"])
        .arg(url);
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (headers, code) = stdout.trim_end().rsplit_once('\n').unwrap_or(("", &stdout));
    let body = std::fs::read_to_string(w.path("body")).unwrap_or_default();
    (code.trim().parse().unwrap_or(0), headers.to_owned(), body)
}

#[tokio::test(flavor = "multi_thread")]
async fn single_sign_on_with_curl_gives_a_session_and_refuses_who_may_not_log_on() {
    let w = World::new("krb-sso").await;
    w.add_user("alice").await;
    let bob_dn = w.add_user("bob").await;
    w.add_user("carol").await;
    let (host, spn, http_keytab) = w.http_service().await;
    w.sync_with_the_administrator();

    // carol may not log on.
    let out = w
        .roster()
        .args([
            "users",
            "set-privileges",
            &w.sam("carol"),
            "--privileges",
            "",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));

    let server = serve(&w, &http_keytab);
    let url = format!("http://{host}:{}/api/v1/sessions/negotiate", server.port);

    // No ticket: 401 with the Negotiate challenge.
    let (status, headers, _) = curl(&w, None, &url);
    assert_eq!(status, 401, "{headers}");
    assert!(
        headers
            .to_lowercase()
            .contains("www-authenticate: negotiate"),
        "{headers}"
    );

    // alice with a ticket: a session, the console's cookie and the mutual-authentication token.
    let alice = w.path("alice.ccache");
    let realm = w.dc.realm();
    w.dc.kinit(&format!("{}@{realm}", w.sam("alice")), "alice-Pw1!", &alice)
        .unwrap();
    let (status, headers, body) = curl(&w, Some(&alice), &url);
    assert_eq!(status, 201, "{headers}\n{body}");
    let session: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(session["user"]["name"], w.sam("alice").as_str(), "{body}");
    let lower = headers.to_lowercase();
    assert!(lower.contains("set-cookie: roster_session="), "{headers}");
    assert!(
        lower.contains("www-authenticate: negotiate "),
        "mutual token: {headers}"
    );
    let token = session["token"].as_str().unwrap();
    let me = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/api/v1/me", server.port))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);

    // carol has a valid ticket but no log_on: refused as a password logon would be.
    let carol = w.path("carol.ccache");
    w.dc.kinit(&format!("{}@{realm}", w.sam("carol")), "carol-Pw1!", &carol)
        .unwrap();
    let (status, _, body) = curl(&w, Some(&carol), &url);
    assert_eq!(status, 403, "{body}");

    // bob got his tickets, then was disabled in the directory: his still-valid ticket is refused.
    let bob = w.path("bob.ccache");
    w.dc.kinit(&format!("{}@{realm}", w.sam("bob")), "bob-Pw1!", &bob)
        .unwrap();
    w.dc.kvno(&bob, &format!("{spn}@{realm}"), None).unwrap();
    w.ou.set_enabled(&bob_dn, false).await.unwrap();
    let (status, _, body) = curl(&w, Some(&bob), &url);
    assert_eq!(status, 401, "{body}");
    assert!(
        body.contains("logon-failed"),
        "the same refusal as a wrong password: {body}"
    );

    // A principal of the domain that is no Roster user (the service account itself).
    let svc = w.path("svc.ccache");
    let (svc_principal, svc_keytab, _) = w.service_account(&[]).await;
    w.dc.kinit_keytab(&svc_principal, &svc_keytab, &svc)
        .unwrap();
    let (status, _, body) = curl(&w, Some(&svc), &url);
    assert_eq!(status, 401, "{body}");

    // The reasons are in the audit log.
    let out = w.roster().args(["audit", "--json"]).output().unwrap();
    let audit = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(audit.contains("session started by Kerberos"), "{audit}");
    // bob: the default filter reads enabled users only, so his entry is out of scope now.
    assert!(
        audit.contains(&format!(
            "Kerberos logon of {}@{realm} refused: the directory refused",
            w.sam("bob")
        )),
        "{audit}"
    );
    assert!(audit.contains("no Roster user of that name"), "{audit}");
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_logs_on_to_the_console_with_no_password() {
    let w = World::new("krb-browser").await;
    w.add_user("dana").await;
    let (host, _, http_keytab) = w.http_service().await;
    w.sync_with_the_administrator();
    let server = serve(&w, &http_keytab);

    let ccache = w.path("dana.ccache");
    w.dc.kinit(
        &format!("{}@{}", w.sam("dana"), w.dc.realm()),
        "dana-Pw1!",
        &ccache,
    )
    .unwrap();
    let browser = roster_testkit::Browser::start_with(roster_testkit::BrowserOptions {
        env: w.dc.kerberos_env(&ccache),
        negotiate_allowlist: Some("*.localhost".into()),
    })
    .await
    .unwrap();
    let base = format!("http://{host}:{}", server.port);
    browser.goto(&format!("{base}/login")).await.unwrap();
    browser
        .click(roster_testkit::browser::text(
            "Log on with Windows (single sign-on)",
        ))
        .await
        .unwrap();
    // The console's pages for dana: her own page is reachable without ever typing a password.
    if let Err(e) = browser
        .wait_for_text("form.logoff", "Log off", Duration::from_secs(20))
        .await
    {
        let page = browser.page_text().await.unwrap_or_default();
        panic!("{e}; the page: {page}");
    }
    browser.goto(&format!("{base}/me")).await.unwrap();
    let page = browser.page_text().await.unwrap();
    assert!(page.contains(&w.sam("dana")), "{page}");
    browser
        .screenshot(roster_testkit::browser::screenshot_dir("kerberos").join("sso-me.png"))
        .await
        .unwrap();
    browser.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sso_check_says_what_is_wrong_with_the_keytab_the_kdc_or_the_clock() {
    let w = World::new("krb-check").await;
    let host = w.dc.unique_http_host();
    let spn = format!("HTTP/{host}");
    let (svc_principal, svc_keytab, svc_dn) = w.service_account(&[&spn]).await;
    // The HTTP key and the account's own (which lets the check ask for tickets) in one keytab.
    let keytab = w.path("http.keytab");
    w.dc.export_keytab(
        &roster_testkit::samba::kerberos::spn_principal(&spn),
        &keytab,
    )
    .unwrap();
    w.dc.export_keytab(&svc_principal, &keytab).unwrap();
    let check = |keytab: &Path| {
        w.roster()
            .args(["sso", "check", "--keytab"])
            .arg(keytab)
            .output()
            .unwrap()
    };

    let out = check(&keytab);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains(&format!("{spn}@")),
        "the keys are listed: {stdout}"
    );
    assert!(
        stdout.contains("ok    the KDC issued a ticket for HTTP/"),
        "{stdout}"
    );

    // Only the account's key, no HTTP/ one: the keytab can't serve browsers.
    let out = check(&svc_keytab);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("no HTTP/<host> key"));

    // A clock an hour ahead (MIT's correction off): clock skew, said as such.
    let skewed = w.path("krb5-no-timesync.conf");
    w.dc.write_krb5_conf(&skewed, &["kdc_timesync = 0"])
        .unwrap();
    let out = w
        .roster()
        .env("KRB5_CONFIG", &skewed)
        .env("FAKETIME", "+1h")
        .env("LD_PRELOAD", faketime_library())
        .args(["sso", "check", "--keytab"])
        .arg(&keytab)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        stdout.contains("FAIL") && stdout.contains("clock"),
        "{stdout}"
    );
    eprintln!("--- sso check with a skewed clock:\n{stdout}");

    // The password changed after the export: the keys are outdated.
    w.dc.set_password(&svc_dn, "Changed-Passw0rd!")
        .await
        .unwrap();
    let out = check(&keytab);
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.contains("export the keytab again"), "{stdout}");
    eprintln!("--- sso check with an outdated keytab:\n{stdout}");
}
