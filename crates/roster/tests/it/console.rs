//! The web console in a real browser (issue 24): headless Chromium (the test kit's `Browser`) against the
//! compiled `roster serve` and a real slapd, as an administrator uses it. Screenshots of every page go to
//! `target/console-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use roster_testkit::browser::{Browser, label, text};
use roster_testkit::{Slapd, SlapdConfig, TestUser, user_ldif};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_roster");
const ADMIN_PW: &str = "console-admin-password";
const SUFFIX: &str = "dc=example,dc=com";

struct Server {
    child: Child,
    base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(data: &Path) -> Server {
    let port = roster_testkit::free_port();
    let child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .env("ROSTER_ADMIN_PASSWORD", ADMIN_PW)
        .env_remove("ROSTER_DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    roster_testkit::wait_for_port(port, Duration::from_secs(30)).unwrap();
    Server {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

/// `target/console-screenshots/`, next to the test binary's `target/debug/deps/`.
fn screenshots() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    target.join("console-screenshots")
}

async fn shot(browser: &Browser, name: &str) {
    browser
        .screenshot(screenshots().join(format!("{name}.png")))
        .await
        .unwrap();
}

fn slapd_with_users(n: usize) -> Slapd {
    let mut ldif = String::new();
    for i in 1..=n {
        let uid = format!("user{i}");
        let cn = format!("User Number {i}");
        let mail = format!("{uid}@example.com");
        let password = format!("pw-{uid}");
        ldif.push_str(&user_ldif(
            SUFFIX,
            &TestUser {
                uid: &uid,
                cn: &cn,
                mail: vec![mail.as_str()],
                password: Some(&password),
                ..Default::default()
            },
        ));
    }
    Slapd::start(SlapdConfig {
        base_ldif: Some(ldif),
        ..Default::default()
    })
    .unwrap()
}

/// The API's view of the users, to check what the console did (or didn't).
async fn api_user_names(server: &Server) -> Vec<String> {
    let client = reqwest::Client::new();
    let token: Value = client
        .post(format!("{}/api/v1/sessions", server.base))
        .json(&json!({"name": "admin", "password": ADMIN_PW}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let page: Value = client
        .get(format!("{}/api/v1/users?limit=1000", server.base))
        .bearer_auth(token["token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut names: Vec<String> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// The settings were saved, or the test fails with the errors the page shows.
async fn saved(browser: &Browser) {
    if browser
        .wait_for_text(".notice", "Settings saved", Duration::from_secs(10))
        .await
        .is_err()
    {
        let mut errors = Vec::new();
        for e in browser.find_all(".error").await.unwrap() {
            errors.push(e.text().await.unwrap());
        }
        panic!("the settings were not saved: {errors:?}");
    }
}

/// Directory Services with `kind` chosen in the type selector (the page reloads with its form), once
/// `field` of that form is shown.
async fn open_directory_form(browser: &Browser, server: &Server, kind: &str, field: &str) {
    browser
        .goto(&format!("{}/directory", server.base))
        .await
        .unwrap();
    browser
        .fill(label("Directory service type"), kind)
        .await
        .unwrap();
    browser
        .wait_for(label(field), Duration::from_secs(10))
        .await
        .unwrap();
}

async fn log_on(browser: &Browser, server: &Server, name: &str, password: &str) {
    browser.goto(&format!("{}/", server.base)).await.unwrap();
    browser.fill(label("User name"), name).await.unwrap();
    browser.fill(label("Password"), password).await.unwrap();
    browser.click("main button[type=submit]").await.unwrap();
    // Logged on when the page has the main navigation (the logon page has none); an Argon2id check
    // under load takes a while.
    browser
        .wait_for("header nav", Duration::from_secs(30))
        .await
        .unwrap();
}

/// Log on, configure LDAP, Test Settings (nothing committed), Synchronize now (with its progress), change
/// the default privileges and see them on the next new user, a wrong service password shown at its field,
/// a user without admin rights kept out, and a form without its CSRF token refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_configures_ldap_tests_and_synchronizes() {
    let slapd = slapd_with_users(40);
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path());
    let browser = Browser::start().await.unwrap();

    // A visitor without a session is sent to log on.
    browser
        .goto(&format!("{}/directory", server.base))
        .await
        .unwrap();
    assert!(browser.current_url().await.unwrap().contains("/login"));
    shot(&browser, "01-log-on").await;
    browser.fill(label("User name"), "admin").await.unwrap();
    browser.fill(label("Password"), "wrong").await.unwrap();
    browser.click("main button[type=submit]").await.unwrap();
    browser
        .wait_for_text(".error", "", Duration::from_secs(10))
        .await
        .unwrap();
    log_on(&browser, &server, "admin", ADMIN_PW).await;
    browser
        .goto(&format!("{}/directory", server.base))
        .await
        .unwrap();
    shot(&browser, "02-directory-empty").await;

    // Configure LDAP with a wrong service password first.
    browser
        .fill(label("Server Name"), "127.0.0.1")
        .await
        .unwrap();
    browser
        .fill(label("Port (optional)"), &slapd.port().to_string())
        .await
        .unwrap();
    browser.fill(label("Encryption"), "None").await.unwrap();
    browser
        .fill(label("Administrative DN"), slapd.root_dn())
        .await
        .unwrap();
    browser
        .fill(label("Password"), "not-the-password")
        .await
        .unwrap();
    browser.fill(label("Base-DN"), SUFFIX).await.unwrap();
    browser
        .fill(label("Filter"), "(objectClass=inetOrgPerson)")
        .await
        .unwrap();
    browser.fill(label("User Name"), "uid").await.unwrap();
    browser.fill(label("Full Name (opt.)"), "cn").await.unwrap();
    browser
        .fill(label("Email addresses"), "mail")
        .await
        .unwrap();
    browser.click(text("Save settings")).await.unwrap();
    saved(&browser).await;
    browser.click(text("Test Settings")).await.unwrap();
    browser
        .wait_for_text("#run-status", "failed", Duration::from_secs(30))
        .await
        .unwrap();
    shot(&browser, "03-test-settings-failed").await;
    browser
        .click(text("Open the settings, with this error at its field"))
        .await
        .unwrap();
    let at_field = browser.text(".field.invalid").await.unwrap();
    assert!(
        at_field.contains("Password") && at_field.contains("password"),
        "the error is at the password field: {at_field}"
    );
    shot(&browser, "04-error-at-the-field").await;

    // The right password (the other fields are kept), then Test Settings: nothing committed.
    browser
        .fill(label("Password"), slapd.root_password())
        .await
        .unwrap();
    browser.click(text("Save settings")).await.unwrap();
    saved(&browser).await;
    browser.click(text("Test Settings")).await.unwrap();
    browser
        .wait_for_text("#run-status", "succeeded", Duration::from_secs(30))
        .await
        .unwrap();
    // The finished page (a running one reloads itself when done): its report.
    browser
        .wait_for("table.report", Duration::from_secs(30))
        .await
        .unwrap();
    let report = browser.page_text().await.unwrap();
    assert!(
        report.contains("user1") && report.contains("user40"),
        "{report}"
    );
    assert_eq!(
        api_user_names(&server).await,
        ["admin"],
        "Test Settings commits nothing"
    );
    shot(&browser, "05-test-settings-report").await;

    // Default privileges: archive_email for new users.
    browser
        .goto(&format!("{}/directory", server.base))
        .await
        .unwrap();
    browser.click(text("Default Privileges...")).await.unwrap();
    browser.click("input[name=p-archive_email]").await.unwrap();
    shot(&browser, "06-default-privileges").await;
    browser
        .click(text("Save default privileges"))
        .await
        .unwrap();
    saved(&browser).await;

    // Synchronize now: progress, then the report; the users exist.
    browser.click(text("Synchronize now")).await.unwrap();
    browser
        .wait_for_text("#run-status", "succeeded", Duration::from_secs(60))
        .await
        .unwrap();
    // The finished page (a running one reloads itself when done): its report.
    browser
        .wait_for("table.report", Duration::from_secs(30))
        .await
        .unwrap();
    shot(&browser, "07-synchronized").await;
    let names = api_user_names(&server).await;
    assert_eq!(names.len(), 41, "{names:?}");
    browser
        .goto(&format!("{}/users/user7", server.base))
        .await
        .unwrap();
    let user7 = browser.page_text().await.unwrap();
    assert!(user7.contains("archive_email"), "{user7}");
    shot(&browser, "08-user").await;

    // Users and Privileges: search.
    browser
        .goto(&format!("{}/users", server.base))
        .await
        .unwrap();
    browser
        .fill(label("Search users"), "number 3")
        .await
        .unwrap();
    browser.click(text("Search")).await.unwrap();
    // The answer's page: its search field carries the search as its value attribute.
    browser
        .wait_for("input#q[value='number 3']", Duration::from_secs(10))
        .await
        .unwrap();
    let rows = browser.find_all("table.list tbody tr").await.unwrap();
    assert_eq!(rows.len(), 11, "user3 and user30 to user39");
    let found = browser.text("table.list tbody").await.unwrap();
    assert!(
        found.contains("user3") && found.contains("user39"),
        "{found}"
    );
    shot(&browser, "09-users-search").await;
    browser
        .goto(&format!("{}/runs", server.base))
        .await
        .unwrap();
    shot(&browser, "10-runs").await;
    browser
        .goto(&format!("{}/audit", server.base))
        .await
        .unwrap();
    shot(&browser, "11-audit").await;

    // A form without the CSRF token, sent with the session's cookie: refused.
    let cookie = browser
        .client()
        .unwrap()
        .get_named_cookie("roster_session")
        .await
        .unwrap();
    let refused = reqwest::Client::new()
        .post(format!("{}/directory/sync", server.base))
        .header("cookie", format!("roster_session={}", cookie.value()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("confirm_deletions=1")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    // A user without admin rights: their own page, and no admin page even by its URL.
    browser.click(text("Log off")).await.unwrap();
    browser
        .wait_for(label("User name"), Duration::from_secs(30))
        .await
        .unwrap();
    log_on(&browser, &server, "user7", "pw-user7").await;
    assert!(browser.current_url().await.unwrap().ends_with("/me"));
    shot(&browser, "12-my-account").await;
    for page in ["/users", "/directory", "/runs", "/audit", "/users/user8"] {
        browser
            .goto(&format!("{}{page}", server.base))
            .await
            .unwrap();
        let shown = browser.page_text().await.unwrap();
        assert!(shown.contains("for administrators"), "{page}: {shown}");
    }
    let nav = browser.text("header nav").await.unwrap();
    assert!(!nav.contains("Directory Services"), "{nav}");
    browser.close().await.unwrap();
    drop(slapd);
}

/// Active Directory from the console: the type selector shows its form (the seed's labels), the settings
/// are saved and Test Settings reads the users of an OU of the test kit's Samba DC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_configures_active_directory() {
    use roster_testkit::samba::{ADMIN_PASSWORD, ADMIN_UPN, DNS_DOMAIN};
    let dc = tokio::task::spawn_blocking(roster_testkit::SambaDc::shared)
        .await
        .unwrap()
        .unwrap();
    let ou = dc.new_ou("console").await.unwrap();
    for name in ["ann.c1", "ben.c1"] {
        let mut user = roster_testkit::AdUser::new(name);
        user.mail = Some(format!("{name}@example.com"));
        user.display_name = Some(format!("Console {name}"));
        ou.add_user(&user).await.unwrap();
    }
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path());
    let browser = Browser::start().await.unwrap();
    log_on(&browser, &server, "admin", ADMIN_PW).await;
    open_directory_form(&browser, &server, "Active Directory", "Domain").await;
    for (field, value) in [
        ("Domain", DNS_DOMAIN.to_owned()),
        ("Server (optional)", dc.ip().to_string()),
        (
            "CA certificate file (optional)",
            dc.ca_cert_path().display().to_string(),
        ),
        ("Base-DN (optional)", ou.dn().to_owned()),
        ("User Name", ADMIN_UPN.to_owned()),
        ("Password", ADMIN_PASSWORD.to_owned()),
    ] {
        browser.fill(label(field), &value).await.unwrap();
    }
    browser
        .fill(label("Protocol"), "LDAP (StartTLS)")
        .await
        .unwrap();
    shot(&browser, "20-active-directory-form").await;
    browser.click(text("Save settings")).await.unwrap();
    saved(&browser).await;
    browser.click(text("Test Settings")).await.unwrap();
    browser
        .wait_for_text("#run-status", "succeeded", Duration::from_secs(30))
        .await
        .unwrap();
    // The finished page (a running one reloads itself when done): its report.
    browser
        .wait_for("table.report", Duration::from_secs(30))
        .await
        .unwrap();
    let report = browser.page_text().await.unwrap();
    assert!(
        report.contains("ann.c1") && report.contains("ben.c1"),
        "{report}"
    );
    assert!(report.contains("active-directory"), "{report}");
    shot(&browser, "21-active-directory-test-settings").await;
    browser.close().await.unwrap();
}

/// `roster serve --tls-cert --tls-key`: the console and the API over HTTPS with the test CA's
/// certificate, and the session cookie marked `Secure`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_over_https_with_a_secure_cookie() {
    let ca = roster_testkit::TestCa::generate().unwrap();
    let cert = ca.issue_server_cert("localhost").unwrap();
    let data = tempfile::tempdir().unwrap();
    let port = roster_testkit::free_port();
    let child = Command::new(BIN)
        .arg("--data-dir")
        .arg(data.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--tls-cert")
        .arg(&cert.cert_path)
        .arg("--tls-key")
        .arg(&cert.key_path)
        .env("ROSTER_ADMIN_PASSWORD", ADMIN_PW)
        .env_remove("ROSTER_DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _server = Server {
        child,
        base: format!("https://localhost:{port}"),
    };
    roster_testkit::wait_for_port(port, Duration::from_secs(30)).unwrap();
    let ca_pem = std::fs::read(ca.ca_cert_path()).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca_pem).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let logon = client
        .post(format!("https://localhost:{port}/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("name=admin&password={ADMIN_PW}&next=%2Fusers"))
        .send()
        .await
        .unwrap();
    assert_eq!(logon.status(), 303);
    let cookie = logon
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Secure"),
        "{cookie}"
    );
    let api = client
        .get(format!("https://localhost:{port}/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 200);
    // Plain HTTP on the same port is not served.
    assert!(
        reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/login"))
            .send()
            .await
            .is_err()
    );
}

/// IceWarp from the console, with the domain picker reading the (emulated) server: one domain chosen,
/// stored in the settings, and Test Settings reads only its users.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_picks_icewarp_domains_from_the_server() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let data_file =
        roster_testkit::icewarp::Fixture::load(&root.join("examples/icewarp-emulator.toml"))
            .unwrap();
    let emulator = roster_testkit::icewarp::IcewarpEmulator::start(data_file, "127.0.0.1:0", None)
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path());
    let browser = Browser::start().await.unwrap();
    log_on(&browser, &server, "admin", ADMIN_PW).await;
    open_directory_form(&browser, &server, "IceWarp Server", "Server Name").await;
    browser
        .fill(label("Server Name"), &emulator.server_setting())
        .await
        .unwrap();
    browser
        .fill(label("User Name"), "admin@example.com")
        .await
        .unwrap();
    browser
        .fill(label("Password"), "icewarp-admin")
        .await
        .unwrap();
    browser.click(text("Save settings")).await.unwrap();
    saved(&browser).await;
    browser
        .click(text("Choose domains from the server…"))
        .await
        .unwrap();
    browser
        .wait_for(text("example.org"), Duration::from_secs(10))
        .await
        .unwrap();
    shot(&browser, "30-domain-picker").await;
    browser.click("input[name='v:example.org']").await.unwrap();
    browser.click(text("Use these")).await.unwrap();
    saved(&browser).await;
    let domains = browser.text("#f-domains").await.unwrap();
    assert_eq!(domains.trim(), "example.org");
    browser.click(text("Test Settings")).await.unwrap();
    browser
        .wait_for_text("#run-status", "succeeded", Duration::from_secs(30))
        .await
        .unwrap();
    // The finished page (a running one reloads itself when done): its report.
    browser
        .wait_for("table.report", Duration::from_secs(30))
        .await
        .unwrap();
    let report = browser.text("table.report").await.unwrap();
    assert!(report.contains("pk@example.org"), "{report}");
    assert!(
        !report.contains("jdoe@example.com"),
        "only example.org: {report}"
    );
    shot(&browser, "31-icewarp-test-settings").await;
    browser.close().await.unwrap();
}

/// Kerio Connect from the console, with the group picker reading the (emulated) server: one group chosen,
/// and Test Settings reads only its members.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_picks_kerio_groups_from_the_server() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let fixture =
        roster_testkit::kerio::Fixture::load(&root.join("examples/kerio-emulator.toml")).unwrap();
    let emulator = roster_testkit::kerio::KerioEmulator::start(fixture, "127.0.0.1:0", None)
        .await
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path());
    let browser = Browser::start().await.unwrap();
    log_on(&browser, &server, "admin", ADMIN_PW).await;
    open_directory_form(&browser, &server, "Kerio Connect", "IMAP server for logons").await;
    browser
        .fill(label("Server Name"), &emulator.server_setting())
        .await
        .unwrap();
    browser.fill(label("User Name"), "admin").await.unwrap();
    browser.fill(label("Password"), "admin-pw").await.unwrap();
    browser.click(text("Save settings")).await.unwrap();
    saved(&browser).await;
    browser
        .click(text("Choose groups from the server…"))
        .await
        .unwrap();
    browser
        .wait_for(text("Support"), Duration::from_secs(10))
        .await
        .unwrap();
    browser
        .click("input[name='v:Support@example.com']")
        .await
        .unwrap();
    shot(&browser, "40-kerio-group-picker").await;
    browser.click(text("Use these")).await.unwrap();
    saved(&browser).await;
    assert_eq!(
        browser.text("#f-groups").await.unwrap().trim(),
        "Support@example.com"
    );
    browser.click(text("Test Settings")).await.unwrap();
    browser
        .wait_for_text("#run-status", "succeeded", Duration::from_secs(30))
        .await
        .unwrap();
    // The finished page (a running one reloads itself when done): its report.
    browser
        .wait_for("table.report", Duration::from_secs(30))
        .await
        .unwrap();
    let report = browser.text("table.report").await.unwrap();
    assert!(report.contains("asmith@example.com"), "{report}");
    assert!(
        !report.contains("jdoe@example.com"),
        "only Support's member: {report}"
    );
    shot(&browser, "41-kerio-test-settings").await;
    browser.close().await.unwrap();
}
