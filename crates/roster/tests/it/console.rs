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

/// An administrator's API call to the console's server (to set up what a test needs, and to check what
/// the console did): the answer's status and JSON.
async fn api_call(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
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
    let mut request = client
        .request(method, format!("{}/api/v1{path}", server.base))
        .bearer_auth(token["token"].as_str().unwrap());
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A local user made through the API, with `log_on`.
async fn add_local_user(server: &Server, name: &str, password: &str) {
    let (status, v) = api_call(
        server,
        reqwest::Method::POST,
        "/users",
        Some(
            json!({"name": name, "full_name": format!("{name} Example"), "auth": "local",
            "password": password, "privileges": ["log_on"]}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{v}");
}

/// A user's folder access as the API shows it: `folder: rights` lines, sorted.
async fn folder_access(server: &Server, name: &str) -> Vec<String> {
    let (status, user) = api_call(
        server,
        reqwest::Method::GET,
        &format!("/users/{name}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{user}");
    let mut access: Vec<String> = user["folders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let rights: Vec<&str> = f["rights"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap())
                .collect();
            format!("{}: {}", f["folder"].as_str().unwrap(), rights.join(", "))
        })
        .collect();
    access.sort();
    access
}

/// Configures LDAP on the Directory Services page for `slapd`'s users, with the given options checked
/// or filled, and saves.
async fn configure_ldap(
    browser: &Browser,
    server: &Server,
    slapd: &Slapd,
    options: &[(&str, &str)],
) {
    browser
        .goto(&format!("{}/directory", server.base))
        .await
        .unwrap();
    for (field, value) in [
        ("Server Name", "127.0.0.1".to_owned()),
        ("Port (optional)", slapd.port().to_string()),
        ("Administrative DN", slapd.root_dn().to_owned()),
        ("Password", slapd.root_password().to_owned()),
        ("Base-DN", SUFFIX.to_owned()),
        ("Filter", "(objectClass=inetOrgPerson)".to_owned()),
        ("User Name", "uid".to_owned()),
        ("Full Name (opt.)", "cn".to_owned()),
        ("Email addresses", "mail".to_owned()),
    ] {
        browser.fill(label(field), &value).await.unwrap();
    }
    browser.fill(label("Encryption"), "None").await.unwrap();
    for (field, value) in options {
        if value.is_empty() {
            browser.click(label(field)).await.unwrap();
        } else {
            browser.fill(label(field), value).await.unwrap();
        }
    }
    browser.click(text("Save settings")).await.unwrap();
    saved(browser).await;
}

/// The page of a finished run (a running one reloads itself when done) with the status `status`.
async fn finished_run(browser: &Browser, status: &str) {
    browser
        .wait_for_text("#run-status", status, Duration::from_secs(60))
        .await
        .unwrap();
    browser
        .wait_for(text("Report"), Duration::from_secs(30))
        .await
        .unwrap();
}

/// Synchronize now with automatic deletion on: it first shows a test of what it would do, saying how
/// many users it would delete, and applies only once that number is confirmed (a form without it is
/// sent back to the test); a sync that deletes more than the deletion guard allows stops, and its
/// Approve button applies it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletions_are_confirmed_with_their_number_and_a_stopped_run_is_approved() {
    let slapd = slapd_with_users(10);
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path());
    let browser = Browser::start().await.unwrap();
    log_on(&browser, &server, "admin", ADMIN_PW).await;
    configure_ldap(
        &browser,
        &server,
        &slapd,
        &[
            ("Automatically delete users", ""),
            ("Deletion guard: at most this many deletions", "2"),
            ("Deletion guard: at most this share (%)", "100"),
        ],
    )
    .await;

    // The first Synchronize now: a test first (nothing to delete), then the sync from its page.
    browser.click(text("Synchronize now")).await.unwrap();
    browser
        .wait_for_text(
            ".notice",
            "Automatic deletion is on",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    finished_run(&browser, "succeeded").await;
    assert_eq!(
        api_user_names(&server).await,
        ["admin"],
        "a test commits nothing"
    );
    let confirm = browser.text("#confirm-sync").await.unwrap();
    assert!(confirm.contains("Nothing is committed"), "{confirm}");
    browser.click("#confirm-sync button").await.unwrap();
    browser
        .wait_for_text("dd", "Synchronize now", Duration::from_secs(10))
        .await
        .unwrap();
    finished_run(&browser, "succeeded").await;
    assert_eq!(api_user_names(&server).await.len(), 11);

    // user10 leaves: Synchronize now says that it would delete 1 user, and asks.
    slapd
        .modify(&format!(
            "dn: uid=user10,ou=People,{SUFFIX}\nchangetype: delete\n"
        ))
        .unwrap();
    browser
        .goto(&format!("{}/directory", server.base))
        .await
        .unwrap();
    browser.click(text("Synchronize now")).await.unwrap();
    browser
        .wait_for_text(
            ".notice",
            "Automatic deletion is on",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    finished_run(&browser, "succeeded").await;
    let confirm = browser.text("#confirm-sync").await.unwrap();
    assert!(
        confirm.contains("Synchronize now would delete 1 user (as this test shows)"),
        "{confirm}"
    );
    shot(&browser, "50-confirm-deletions").await;
    let preview_url = browser.current_url().await.unwrap();
    let preview_id: i64 = preview_url
        .rsplit('/')
        .next()
        .and_then(|tail| tail.split('?').next())
        .unwrap()
        .parse()
        .unwrap();
    // The box unchecked: the browser doesn't send the form (`required`)…
    browser.click("#confirm-sync button").await.unwrap();
    assert_eq!(browser.current_url().await.unwrap(), preview_url);
    // …and a form without the number (or with another) is sent back to the test, starting nothing.
    let cookie = browser
        .client()
        .unwrap()
        .get_named_cookie("roster_session")
        .await
        .unwrap();
    let csrf = browser
        .find("#confirm-sync input[name=csrf]")
        .await
        .unwrap()
        .attr("value")
        .await
        .unwrap()
        .unwrap();
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for extra in ["", "&confirm_deletions=5"] {
        let answer = no_redirects
            .post(format!("{}/directory/sync", server.base))
            .header("cookie", format!("roster_session={}", cookie.value()))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={csrf}&from_preview={preview_id}{extra}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 303, "{extra}");
        assert_eq!(
            answer.headers()["location"],
            format!("/runs/{preview_id}?confirm=1").as_str()
        );
    }
    let (_, runs) = api_call(&server, reqwest::Method::GET, "/directory/runs", None).await;
    assert_eq!(runs["items"][0]["id"], preview_id, "no run started: {runs}");
    browser.click(label("Yes, delete 1 user")).await.unwrap();
    browser.click("#confirm-sync button").await.unwrap();
    browser
        .wait_for_text("dd", "Synchronize now", Duration::from_secs(10))
        .await
        .unwrap();
    finished_run(&browser, "succeeded").await;
    let report = browser.text("table.report").await.unwrap();
    assert!(report.contains("user10"), "{report}");
    let names = api_user_names(&server).await;
    assert_eq!(names.len(), 10, "{names:?}");
    assert!(!names.contains(&"user10".to_owned()), "{names:?}");

    // Four more leave, more than the guard's 2: the test says so, the confirmed sync stops, and its
    // Approve button applies it.
    for i in 6..=9 {
        slapd
            .modify(&format!(
                "dn: uid=user{i},ou=People,{SUFFIX}\nchangetype: delete\n"
            ))
            .unwrap();
    }
    browser
        .goto(&format!("{}/directory", server.base))
        .await
        .unwrap();
    browser.click(text("Synchronize now")).await.unwrap();
    browser
        .wait_for_text(
            ".notice",
            "Automatic deletion is on",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    finished_run(&browser, "succeeded").await;
    let confirm = browser.text("#confirm-sync").await.unwrap();
    assert!(confirm.contains("would delete 4 users"), "{confirm}");
    let report = browser.text("table.report").await.unwrap();
    assert!(
        report.contains("Synchronize now would stop here"),
        "{report}"
    );
    browser.click(label("Yes, delete 4 users")).await.unwrap();
    browser.click("#confirm-sync button").await.unwrap();
    browser
        .wait_for_text("dd", "Synchronize now", Duration::from_secs(10))
        .await
        .unwrap();
    finished_run(&browser, "stopped").await;
    let approve = browser
        .wait_for_text(
            ".card.warn",
            "Approve the deletions",
            Duration::from_secs(10),
        )
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        approve.contains("it would delete 4 users. Nothing was applied."),
        "{approve}"
    );
    assert_eq!(api_user_names(&server).await.len(), 10, "nothing applied");
    shot(&browser, "51-stopped-run-approve").await;
    let stopped_url = browser.current_url().await.unwrap();
    browser.click(label("Delete these 4 users")).await.unwrap();
    browser.click(text("Approve")).await.unwrap();
    // The approval's own run.
    browser
        .wait_for_text("dd", "Synchronize now", Duration::from_secs(10))
        .await
        .unwrap();
    assert_ne!(browser.current_url().await.unwrap(), stopped_url);
    finished_run(&browser, "succeeded").await;
    let report = browser.text("table.report").await.unwrap();
    for i in 6..=9 {
        assert!(report.contains(&format!("user{i}")), "{report}");
    }
    shot(&browser, "52-approved-run").await;
    let names = api_user_names(&server).await;
    assert_eq!(
        names,
        ["admin", "user1", "user2", "user3", "user4", "user5"],
        "the approved deletions applied"
    );
    // The stopped run no longer offers Approve, and says which run applied it.
    let approval_url = browser.current_url().await.unwrap();
    browser.goto(&stopped_url).await.unwrap();
    finished_run(&browser, "stopped").await;
    assert!(browser.find_all(text("Approve")).await.unwrap().is_empty());
    let approved = browser.text("#run-approved").await.unwrap();
    let approval_id = approval_url.rsplit('/').next().unwrap();
    assert_eq!(approved, format!("Approved: applied by run #{approval_id}"));
    browser.close().await.unwrap();
    drop(slapd);
}

/// The folder rights checkboxes of `folder` on a user's edit page: the `fr-<folder id>` prefix of
/// their names (the hidden `folder-<id>` field carries the folder's name).
async fn rights_prefix(browser: &Browser, folder: &str) -> String {
    let marker = browser
        .find(format!("input[type=hidden][name^='folder-'][value='{folder}']").as_str())
        .await
        .unwrap();
    let name = marker.attr("name").await.unwrap().unwrap();
    format!("fr-{}", name.trim_start_matches("folder-"))
}

/// Scrolls the element matching `selector` to the top of the window (for a screenshot).
async fn scroll_to(browser: &Browser, selector: &str) {
    let element = browser.find(selector).await.unwrap();
    browser
        .client()
        .unwrap()
        .execute(
            "arguments[0].scrollIntoView({block: 'start'});",
            vec![serde_json::to_value(&element).unwrap()],
        )
        .await
        .unwrap();
}

async fn open_edit_page(browser: &Browser, server: &Server, name: &str) {
    browser
        .goto(&format!("{}/users/{name}", server.base))
        .await
        .unwrap();
    browser.click(text(&format!("Edit {name}"))).await.unwrap();
    browser
        .wait_for_text("h1", &format!("Edit {name}"), Duration::from_secs(10))
        .await
        .unwrap();
}

async fn save_user(browser: &Browser, name: &str) {
    browser.click(text("Save")).await.unwrap();
    browser
        .wait_for_text("h1", &format!("User {name}"), Duration::from_secs(10))
        .await
        .unwrap();
}

/// Folder access on the user edit page: the folders a user has access to, each with its rights, kept
/// when something else is saved, changed, removed by unchecking every right, and given on another
/// folder by its name; then the audit log filtered by who, what and which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_edits_folder_access_and_filters_the_audit_log() {
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path());
    for name in ["kim", "lee", "max"] {
        add_local_user(&server, name, "pw-console-1").await;
    }
    let (status, v) = api_call(
        &server,
        reqwest::Method::PUT,
        "/users/kim/privileges",
        Some(json!({"privileges": ["log_on"], "folders": [{"folder": "lee", "rights": ["read"]}]})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        folder_access(&server, "kim").await,
        ["kim: read", "lee: read"]
    );
    let browser = Browser::start().await.unwrap();
    log_on(&browser, &server, "admin", ADMIN_PW).await;

    // Saving the full name and a privilege keeps the folder access.
    open_edit_page(&browser, &server, "kim").await;
    let lee = rights_prefix(&browser, "lee").await;
    assert!(
        browser
            .find(format!("input[name='{lee}-read']").as_str())
            .await
            .unwrap()
            .is_selected()
            .await
            .unwrap()
    );
    scroll_to(&browser, "#folder-access").await;
    shot(&browser, "55-edit-folder-access").await;
    browser.fill(label("Full name"), "Kim Park").await.unwrap();
    browser.click("input[name=p-archive_email]").await.unwrap();
    save_user(&browser, "kim").await;
    assert_eq!(
        folder_access(&server, "kim").await,
        ["kim: read", "lee: read"]
    );

    // Write on lee's folder, and read and delete on max's, given by name.
    open_edit_page(&browser, &server, "kim").await;
    browser
        .click(format!("input[name='{lee}-write']").as_str())
        .await
        .unwrap();
    browser.fill(label("Folder"), "max").await.unwrap();
    browser.click("input[name=add-delete]").await.unwrap();
    save_user(&browser, "kim").await;
    let shown = browser.text("#folder-access").await.unwrap();
    assert!(
        shown.contains("lee: read, write") && shown.contains("max: read, delete"),
        "{shown}"
    );
    assert_eq!(
        folder_access(&server, "kim").await,
        ["kim: read", "lee: read, write", "max: read, delete"]
    );

    // Every right of lee's folder unchecked: that access goes, the others stay.
    open_edit_page(&browser, &server, "kim").await;
    let lee = rights_prefix(&browser, "lee").await;
    for right in ["read", "write"] {
        browser
            .click(format!("input[name='{lee}-{right}']").as_str())
            .await
            .unwrap();
    }
    save_user(&browser, "kim").await;
    assert_eq!(
        folder_access(&server, "kim").await,
        ["kim: read", "max: read, delete"]
    );

    // A folder that doesn't exist: the app's refusal on the form, nothing changed.
    open_edit_page(&browser, &server, "kim").await;
    browser.fill(label("Folder"), "nobody").await.unwrap();
    browser.click(text("Save")).await.unwrap();
    let error = browser
        .wait_for_text(".error", "nobody", Duration::from_secs(10))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(error.contains("no folder named"), "{error}");
    assert_eq!(
        browser
            .find("#add_folder")
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("nobody"),
        "the form keeps what was typed"
    );
    scroll_to(&browser, "#folder-access").await;
    shot(&browser, "56-folder-access-refused").await;
    assert_eq!(
        folder_access(&server, "kim").await,
        ["kim: read", "max: read, delete"]
    );

    // The audit log: kim's privilege changes by the administrator (the API's and the console's two).
    browser
        .goto(&format!("{}/audit", server.base))
        .await
        .unwrap();
    browser.fill(label("Who"), "ADMIN").await.unwrap();
    browser
        .fill(label("What"), "user.privileges")
        .await
        .unwrap();
    browser.fill(label("Which"), "kim").await.unwrap();
    browser.click(text("Filter")).await.unwrap();
    browser
        .wait_for("input#target[value='kim']", Duration::from_secs(10))
        .await
        .unwrap();
    let count = browser.text("#audit-count").await.unwrap();
    assert!(count.starts_with("4 lines match"), "{count}");
    let rows = browser.find_all("#audit tbody tr").await.unwrap();
    assert_eq!(rows.len(), 4);
    for row in rows {
        let row = row.text().await.unwrap();
        let row = row.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            row.contains("admin user.privileges kim"),
            "only admin's privilege changes of kim: {row}"
        );
    }
    let newest = browser.text("#audit tbody tr").await.unwrap();
    assert!(newest.contains("folder lee (#"), "{newest}");
    shot(&browser, "57-audit-filtered").await;
    // What alone, part of an action: the full name's change.
    browser.fill(label("Who"), "").await.unwrap();
    browser.fill(label("What"), "update").await.unwrap();
    browser.click(text("Filter")).await.unwrap();
    browser
        .wait_for("input#action[value='update']", Duration::from_secs(10))
        .await
        .unwrap();
    let rows = browser.text("#audit tbody").await.unwrap();
    let rows = rows.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        rows.contains("user.update kim") && rows.contains("Kim Park"),
        "{rows}"
    );
    assert_eq!(browser.find_all("#audit tbody tr").await.unwrap().len(), 1);
    // Nothing matches; then every line again.
    browser.fill(label("Which"), "nobody-at-all").await.unwrap();
    browser.click(text("Filter")).await.unwrap();
    browser
        .wait_for_text(
            ".notice",
            "No line matches this filter",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    browser.click(text("Show every line")).await.unwrap();
    browser
        .wait_for_text("#audit-count", "newest first", Duration::from_secs(10))
        .await
        .unwrap();
    assert!(browser.find_all("#audit tbody tr").await.unwrap().len() > 8);
    browser.close().await.unwrap();
}

/// What an accessibility walk finds wrong on the page shown: `lang` and a title, one `h1`, a label on
/// every field, an accessible name on every link and button, no `aria-describedby` to nothing, unique
/// ids, no positive `tabindex` (which breaks the tab order).
async fn accessibility_problems(browser: &Browser) -> Vec<String> {
    const CHECK: &str = r#"
        const problems = [];
        const short = el => el.outerHTML.slice(0, 140);
        const named = el => (el.getAttribute('aria-label') || '').trim() !== ''
            || (el.getAttribute('aria-labelledby') || '').split(/\s+/).some(id => id && document.getElementById(id));
        if (!document.documentElement.lang) problems.push('no lang on <html>');
        if (!document.title.trim()) problems.push('no page title');
        const h1 = document.querySelectorAll('h1').length;
        if (h1 !== 1) problems.push(h1 + ' h1 elements');
        for (const el of document.querySelectorAll('input, select, textarea')) {
            if (el.type === 'hidden') continue;
            const labelled = Array.from(el.labels || []).some(l => l.textContent.trim() !== '');
            if (!labelled && !named(el)) problems.push('field without a label: ' + short(el));
        }
        for (const el of document.querySelectorAll('a[href], button, summary, input[type=submit]')) {
            // textContent too: a control in a closed <details> has no rendered text.
            const name = (el.innerText || el.textContent || el.value || '').trim();
            if (!name && !named(el)) problems.push('control without a name: ' + short(el));
        }
        const seen = new Set();
        for (const el of document.querySelectorAll('[id]')) {
            if (seen.has(el.id)) problems.push('duplicate id ' + el.id);
            seen.add(el.id);
        }
        for (const el of document.querySelectorAll('[aria-describedby]')) {
            for (const id of el.getAttribute('aria-describedby').split(/\s+/)) {
                if (id && !document.getElementById(id)) problems.push('aria-describedby to nothing: ' + id);
            }
        }
        for (const el of document.querySelectorAll('[tabindex]')) {
            if (Number(el.getAttribute('tabindex')) > 0) problems.push('positive tabindex: ' + short(el));
        }
        return problems;
    "#;
    let found = browser
        .client()
        .unwrap()
        .execute(CHECK, Vec::new())
        .await
        .unwrap();
    found
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_owned())
        .collect()
}

/// The focused element's outline (style and width), which shows where the keyboard is.
async fn focus_ring(browser: &Browser) -> (String, f64) {
    let ring = browser
        .client()
        .unwrap()
        .execute(
            "const s = getComputedStyle(document.activeElement); return [s.outlineStyle, s.outlineWidth];",
            Vec::new(),
        )
        .await
        .unwrap();
    let style = ring[0].as_str().unwrap().to_owned();
    let width = ring[1]
        .as_str()
        .unwrap()
        .trim_end_matches("px")
        .parse()
        .unwrap();
    (style, width)
}

/// The focused element shows a focus ring.
async fn assert_focus_visible(browser: &Browser, what: &str) {
    let (style, width) = focus_ring(browser).await;
    assert!(
        style != "none" && width >= 2.0,
        "{what}: no visible focus ({style} {width}px)"
    );
}

/// Every page of the console passes the accessibility walk (labels, names, lang, title, ids), and an
/// administrator logs on and reaches Users and Privileges, a user's page and its edit page, and saves a
/// change, with the keyboard alone (Tab, Enter, Space), seeing where the focus is at each step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_usable_with_the_keyboard_alone() {
    use roster_testkit::browser::Key;
    let data = tempfile::tempdir().unwrap();
    let server = start_server(data.path());
    add_local_user(&server, "kim", "pw-console-1").await;
    let people = data.path().join("people.ldif");
    std::fs::write(
        &people,
        "dn: uid=a1,ou=People,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: a1\ncn: A One\nsn: One\nmail: a1@example.com\n",
    )
    .unwrap();
    let (status, v) = api_call(
        &server,
        reqwest::Method::PUT,
        "/directory",
        Some(
            json!({"type": "ldif", "file": people, "base_dn": "dc=example,dc=com",
            "filter": "(uid=*)", "username_attribute": "uid", "email_attributes": "mail"}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let browser = Browser::start().await.unwrap();

    // Log on: the name field has the focus, Tab goes to the password, Enter sends the form.
    browser
        .goto(&format!("{}/login", server.base))
        .await
        .unwrap();
    let problems = accessibility_problems(&browser).await;
    assert!(problems.is_empty(), "/login: {problems:#?}");
    let focused = browser.focused().await.unwrap();
    assert_eq!(focused.attr("id").await.unwrap().as_deref(), Some("name"));
    browser.type_text("admin").await.unwrap();
    browser.press(Key::Tab).await.unwrap();
    assert_eq!(
        browser
            .focused()
            .await
            .unwrap()
            .attr("id")
            .await
            .unwrap()
            .as_deref(),
        Some("password")
    );
    assert_focus_visible(&browser, "the password field").await;
    browser.type_text(ADMIN_PW).await.unwrap();
    browser.press(Key::Enter).await.unwrap();
    browser
        .wait_for_text("h1", "Users and Privileges", Duration::from_secs(30))
        .await
        .unwrap();

    // The first Tab reaches the skip link, which leads past the navigation.
    let presses = browser
        .tab_to(text("Skip to the content"), 1)
        .await
        .unwrap();
    assert_eq!(presses, 1);
    assert_focus_visible(&browser, "the skip link").await;
    shot(&browser, "60-keyboard-skip-link").await;
    browser.press(Key::Enter).await.unwrap();
    let to_kim = browser.tab_to(text("kim"), 12).await.unwrap();
    assert_focus_visible(&browser, "kim's link").await;
    browser.press(Key::Enter).await.unwrap();
    browser
        .wait_for_text("h1", "User kim", Duration::from_secs(10))
        .await
        .unwrap();
    // The skip link spared the navigation's links: without it, the same link is further.
    browser
        .goto(&format!("{}/users", server.base))
        .await
        .unwrap();
    let without_skip = browser.tab_to(text("kim"), 30).await.unwrap();
    assert!(
        to_kim + 5 <= without_skip,
        "{to_kim} presses after the skip link, {without_skip} without"
    );
    browser.press(Key::Enter).await.unwrap();
    browser
        .wait_for_text("h1", "User kim", Duration::from_secs(10))
        .await
        .unwrap();

    // From the user's page to the edit page, a privilege checked with Space, saved with Enter.
    browser.tab_to(text("Edit kim"), 15).await.unwrap();
    assert_focus_visible(&browser, "the Edit link").await;
    shot(&browser, "61-keyboard-edit-link").await;
    browser.press(Key::Enter).await.unwrap();
    browser
        .wait_for_text("h1", "Edit kim", Duration::from_secs(10))
        .await
        .unwrap();
    browser
        .tab_to("input[name=p-export_email]", 30)
        .await
        .unwrap();
    assert_focus_visible(&browser, "a privilege's checkbox").await;
    browser.press(Key::Space).await.unwrap();
    shot(&browser, "62-keyboard-edit-page").await;
    browser.tab_to(text("Save"), 20).await.unwrap();
    assert_focus_visible(&browser, "the Save button").await;
    browser.press(Key::Enter).await.unwrap();
    browser
        .wait_for_text("h1", "User kim", Duration::from_secs(10))
        .await
        .unwrap();
    let privileges = browser.text("dl.details").await.unwrap();
    assert!(privileges.contains("export_email"), "{privileges}");

    // A run to have a run's page; then the walk over every page.
    browser
        .goto(&format!("{}/directory", server.base))
        .await
        .unwrap();
    browser.click(text("Test Settings")).await.unwrap();
    finished_run(&browser, "succeeded").await;
    let run_page = browser.current_url().await.unwrap();
    let mut pages: Vec<String> = [
        "/users",
        "/users?q=kim",
        "/users/new",
        "/users/kim",
        "/users/kim/edit",
        "/runs",
        "/audit",
        "/audit?action=user.",
        "/me",
        "/directory",
    ]
    .iter()
    .map(|p| format!("{}{p}", server.base))
    .collect();
    for kind in ["ldap", "ldif", "active-directory", "icewarp", "kerio"] {
        pages.push(format!("{}/directory?type={kind}", server.base));
    }
    pages.push(run_page);
    for page in &pages {
        browser.goto(page).await.unwrap();
        let problems = accessibility_problems(&browser).await;
        assert!(problems.is_empty(), "{page}: {problems:#?}");
    }
    // A field's error is the field's description, and the field says it is invalid.
    browser
        .goto(&format!("{}/directory?type=ldap", server.base))
        .await
        .unwrap();
    browser.fill(label("Port (optional)"), "1.5").await.unwrap();
    browser.click(text("Save settings")).await.unwrap();
    let invalid = browser
        .wait_for("[aria-invalid=true]", Duration::from_secs(10))
        .await
        .unwrap();
    let described = invalid.attr("aria-describedby").await.unwrap().unwrap();
    let error_id = described.split_whitespace().last().unwrap().to_owned();
    let error = browser.text(format!("#{error_id}").as_str()).await.unwrap();
    assert!(
        !error.is_empty() && error_id.starts_with("e-"),
        "{described}: {error}"
    );
    let problems = accessibility_problems(&browser).await;
    assert!(problems.is_empty(), "the refused form: {problems:#?}");
    shot(&browser, "63-field-error-described").await;
    browser.close().await.unwrap();
}
