//! A real, headless Chromium for testing web pages (the web console) the way a person uses them:
//! Debian's `chromium` driven through its `chromedriver` over WebDriver, both on loopback.
//!
//! Why a real browser: a DOM assertion on server-rendered HTML proves the markup, not that a form can
//! be filled and sent, that a script updates a progress line, or that a page is readable. A screenshot
//! ([`Browser::screenshot`]) shows what an assertion can't (overlapping text, a form without labels).
//!
//! [`Browser::start`] starts `chromedriver` on a free loopback port (its log in a temporary directory)
//! and opens a session with Chromium headless, the flags the closed test network needs (no background
//! connections, no component updates, no sync), a new empty profile and a fixed window size
//! ([`WINDOW_WIDTH`] x [`WINDOW_HEIGHT`]) so that screenshots of two runs are comparable.
//!
//! Elements are found by a [`Target`]: a CSS selector (`"#name"` converts), the text of a form
//! control's `<label>` ([`label`]), or an element's visible text ([`text`]). Lookups wait up to
//! [`Browser::timeout`] (default [`DEFAULT_TIMEOUT`]) for the element to appear, because pages update
//! themselves (the console polls for progress); a lookup that times out says what it looked for, on
//! which page, and what the page showed. [`Browser::client`] gives the `fantoccini` client for the rest.
//!
//! The keyboard: [`Browser::press`] and [`Browser::type_text`] send key presses (WebDriver actions) to
//! whatever has the focus, [`Browser::tab_to`] moves the focus with Tab to an element, as a person
//! without a mouse does.
//!
//! `chromedriver` runs in its own process group, which Chromium's processes join. [`Browser::close`]
//! ends the session and stops chromedriver; dropping a `Browser` (a test that failed or panicked)
//! SIGKILLs the whole group, so no browser outlives its test. (Chromium's crash handlers are in a
//! session of their own and exit by themselves once the browser is gone.)
//!
//! [`Browser::start_with`] takes [`BrowserOptions`]: an environment for chromedriver and Chromium
//! (a Kerberos ticket cache) and the hosts Chromium may answer HTTP Negotiate for.
//!
//! The WebDriver client is `fantoccini` without TLS features: chromedriver speaks plain HTTP on
//! loopback, and the workspace allows one rustls provider (aws-lc-rs) and no `ring`.

use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::elements::Element;
use fantoccini::error::{CmdError, ErrorStatus};
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};

/// The keys of [`Browser::press`] (Tab, Enter, arrows…).
pub use fantoccini::key::Key;

use crate::common::{
    START_TIMEOUT, ServerProcess, find_program, log_tail, temp_dir, try_free_port,
};

const INSTALL_HINT: &str = "install the Debian packages chromium chromium-driver \
     (apt-get install -y chromium chromium-driver; scripts/test.sh does)";
/// Debian's chromedriver is /usr/bin/chromedriver, a link into /usr/lib/chromium.
const DRIVER_DIRS: &[&str] = &["/usr/bin", "/usr/lib/chromium"];
const BROWSER_DIRS: &[&str] = &["/usr/bin", "/usr/lib/chromium"];

/// The browser window's size in pixels (and so a screenshot's).
pub const WINDOW_WIDTH: u32 = 1280;
/// See [`WINDOW_WIDTH`].
pub const WINDOW_HEIGHT: u32 = 900;

/// How long lookups wait for an element unless [`Browser::set_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often waits look again.
const POLL: Duration = Duration::from_millis(100);

/// Chromium's flags (besides `--user-data-dir` and `--window-size`). The background-networking ones
/// keep it from opening connections the closed network refuses, which makes it slow and noisy.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// What to look for on the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A CSS selector.
    Css(String),
    /// A form control (`input`, `select`, `textarea`) by its `<label>` (by `for` or wrapped), its
    /// `aria-label` or its placeholder; the text is compared whole, with whitespace normalized.
    Label(String),
    /// The innermost element whose visible text is this (whitespace normalized), or a submit or
    /// button `<input>` with this value: for buttons, links, headings, table cells.
    Text(String),
}

/// A [`Target`] by CSS selector.
pub fn css(selector: &str) -> Target {
    Target::Css(selector.to_owned())
}

/// A [`Target`] by label, see [`Target::Label`].
pub fn label(label: &str) -> Target {
    Target::Label(label.to_owned())
}

/// A [`Target`] by visible text, see [`Target::Text`].
pub fn text(text: &str) -> Target {
    Target::Text(text.to_owned())
}

impl From<&str> for Target {
    /// A CSS selector.
    fn from(selector: &str) -> Target {
        css(selector)
    }
}

impl From<&String> for Target {
    /// A CSS selector.
    fn from(selector: &String) -> Target {
        css(selector)
    }
}

impl From<&Target> for Target {
    fn from(target: &Target) -> Target {
        target.clone()
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Css(selector) => write!(f, "CSS `{selector}`"),
            Target::Label(label) => write!(f, "a form field labelled {label:?}"),
            Target::Text(text) => write!(f, "an element with the text {text:?}"),
        }
    }
}

/// A [`Target`] as WebDriver can look for it.
enum Selector {
    Css(String),
    XPath(String),
}

impl Selector {
    fn locator(&self) -> Locator<'_> {
        match self {
            Selector::Css(selector) => Locator::Css(selector),
            Selector::XPath(xpath) => Locator::XPath(xpath),
        }
    }
}

impl Target {
    fn selector(&self) -> Selector {
        match self {
            Target::Css(selector) => Selector::Css(selector.clone()),
            Target::Label(label) => {
                let l = xpath_literal(label);
                let control = "(self::input or self::select or self::textarea)";
                let labels =
                    format!("//label[normalize-space(.)={l} or normalize-space(text())={l}]");
                Selector::XPath(format!(
                    "//*[{control}][@id={labels}/@for] | {labels}//*[{control}] \
                     | //*[{control}][@aria-label={l} or @placeholder={l}]"
                ))
            }
            Target::Text(text) => {
                let l = xpath_literal(text);
                Selector::XPath(format!(
                    "//body//*[normalize-space(.)={l}][not(.//*[normalize-space(.)={l}])] \
                     | //input[(@type='submit' or @type='button' or @type='reset') and @value={l}]"
                ))
            }
        }
    }
}

/// `s` as an XPath 1.0 string literal (which has no escapes: quotes are joined with `concat`).
fn xpath_literal(s: &str) -> String {
    if !s.contains('\'') {
        format!("'{s}'")
    } else if !s.contains('"') {
        format!("\"{s}\"")
    } else {
        let parts: Vec<String> = s.split('\'').map(|p| format!("'{p}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}

/// A WebDriver error as an `io::Error` that says what we were doing.
fn wd_error(doing: &str, e: CmdError) -> io::Error {
    let kind = match &e {
        CmdError::Standard(wd) if wd.error == ErrorStatus::NoSuchElement => io::ErrorKind::NotFound,
        CmdError::WaitTimeout => io::ErrorKind::TimedOut,
        CmdError::Lost(_) | CmdError::Failed(_) | CmdError::FailedC(_) => {
            io::ErrorKind::ConnectionAborted
        }
        _ => io::ErrorKind::Other,
    };
    io::Error::new(kind, format!("browser: {doing}: {e}"))
}

/// Whether a lookup should simply be tried again (the page changed under it).
fn is_transient(e: &CmdError) -> bool {
    match e {
        CmdError::Standard(wd) => {
            matches!(
                wd.error,
                ErrorStatus::NoSuchElement | ErrorStatus::StaleElementReference
            ) || (wd.error == ErrorStatus::UnknownError
                // Chromium's way of saying "stale" when the page was replaced between finding an
                // element and reading it (seen under load in the full test run).
                && wd.message.contains("does not belong to the document"))
        }
        // chromedriver's answer to a command that the page's own navigation interrupted (a click's
        // form submission still loading while the poll reads the old page): not in the W3C shape, so
        // fantoccini can't classify it. Seen once in a full test run, reading `.notice` right after
        // "Synchronize now".
        CmdError::NotW3C(answer) => answer
            .as_str()
            .is_some_and(|s| s.contains("aborted by navigation")),
        _ => false,
    }
}

/// What [`Browser::start_with`] changes from [`Browser::start`]'s defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrowserOptions {
    /// Extra environment for chromedriver, which Chromium inherits: e.g.
    /// [`SambaDc::kerberos_env`](crate::SambaDc::kerberos_env) (`KRB5_CONFIG`, `KRB5CCNAME`) for
    /// HTTP Negotiate as the user whose tickets are in that cache.
    pub env: Vec<(String, String)>,
    /// `--auth-server-allowlist`: the hosts Chromium answers `WWW-Authenticate: Negotiate` for
    /// with the user's Kerberos tickets (`*.localhost`). `None`: never (on Linux the list is empty
    /// by default: verified, Chromium then shows the 401 page).
    pub negotiate_allowlist: Option<String>,
}

/// A running headless Chromium with its chromedriver; both stop on [`Browser::close`] or drop.
#[derive(Debug)]
pub struct Browser {
    /// `None` once closed.
    client: Option<Client>,
    // Declared before `dir`: the processes stop before the profile and log go.
    chromedriver: ServerProcess,
    /// chromedriver's pid, which is also the process group of it and Chromium.
    group: Option<u32>,
    dir: tempfile::TempDir,
    timeout: Duration,
}

impl Browser {
    /// Starts chromedriver and Chromium and opens a WebDriver session (about 1 s on 2 cores).
    pub async fn start() -> io::Result<Browser> {
        Browser::start_with(BrowserOptions::default()).await
    }

    /// [`Browser::start`] with options (environment, Negotiate).
    pub async fn start_with(options: BrowserOptions) -> io::Result<Browser> {
        let driver = find_program("chromedriver", DRIVER_DIRS, INSTALL_HINT)?;
        let chromium = find_program("chromium", BROWSER_DIRS, INSTALL_HINT)?;
        let dir = temp_dir("roster-browser-")?;
        let port = try_free_port()?;
        let log = dir.path().join("chromedriver.log");
        let mut cmd = Command::new(&driver);
        cmd.arg(format!("--port={port}"))
            // Chromium writes crash reports under $XDG_CONFIG_HOME/chromium whatever --user-data-dir
            // says: keep them (and its cache) in the temporary directory too.
            .env("XDG_CONFIG_HOME", dir.path().join("xdg-config"))
            .env("XDG_CACHE_HOME", dir.path().join("xdg-cache"))
            // Its own group (which Chromium joins), so that Drop can kill them all at once.
            .process_group(0)
            .envs(options.env.iter().map(|(k, v)| (k, v)));
        let log_for_spawn = log.clone();
        let chromedriver = tokio::task::spawn_blocking(move || -> io::Result<ServerProcess> {
            let mut process = ServerProcess::spawn("chromedriver", &mut cmd, &log_for_spawn)?;
            process.wait_for_ports(&[port], START_TIMEOUT)?;
            Ok(process)
        })
        .await
        .map_err(|e| io::Error::other(format!("starting chromedriver: {e}")))??;
        let group = chromedriver.pid();
        let mut browser = Browser {
            client: None,
            chromedriver,
            group,
            dir,
            timeout: DEFAULT_TIMEOUT,
        };
        let profile = browser.dir.path().join("profile");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.push(format!("--window-size={WINDOW_WIDTH},{WINDOW_HEIGHT}"));
        if let Some(allowlist) = &options.negotiate_allowlist {
            args.push(format!("--auth-server-allowlist={allowlist}"));
            // Chromium on Linux loads the GSSAPI library only once a profile has seen a Negotiate
            // challenge (`net.received_http_auth_negotiate_headers` in Local State): in a new
            // profile the first challenge fails with ERR_UNSUPPORTED_AUTH_SCHEME (net log:
            // AUTH_HANDLER_CREATE_RESULT -339) and the page shows the 401. Verified with Chromium
            // 156; a Local State saying so from the start makes the first page work.
            std::fs::create_dir_all(&profile)?;
            std::fs::write(
                profile.join("Local State"),
                r#"{"net":{"received_http_auth_negotiate_headers":true}}"#,
            )?;
        }
        let mut capabilities = Capabilities::new();
        capabilities.insert("browserName".into(), "chrome".into());
        capabilities.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({ "binary": chromium, "args": args }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let url = format!("http://127.0.0.1:{port}");
        // Again while the time lasts: under load chromedriver has been seen to take the connection (its
        // port is open) and drop the first request, with nothing in its log.
        let connect = async {
            let mut tries = 0;
            loop {
                tries += 1;
                match ClientBuilder::new(connector.clone())
                    .capabilities(capabilities.clone())
                    .connect(&url)
                    .await
                {
                    Err(
                        e @ (fantoccini::error::NewSessionError::FailedC(_)
                        | fantoccini::error::NewSessionError::Failed(_)
                        | fantoccini::error::NewSessionError::Lost(_)),
                    ) if tries < 4 => {
                        eprintln!("chromedriver dropped the new session's request ({e}); again");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    other => break other,
                }
            }
        };
        match tokio::time::timeout(START_TIMEOUT, connect).await {
            Ok(Ok(client)) => {
                fit_viewport(&client).await?;
                browser.client = Some(client);
            }
            Ok(Err(e)) => {
                return Err(io::Error::other(format!(
                    "chromedriver on {url} could not start Chromium ({}): {e}; {}",
                    chromium.display(),
                    log_tail(&log, 4096)
                )));
            }
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "chromedriver on {url} did not open a Chromium session within {START_TIMEOUT:?}; {}",
                        log_tail(&log, 4096)
                    ),
                ));
            }
        }
        Ok(browser)
    }

    /// The WebDriver client, for everything the helpers here don't do.
    pub fn client(&self) -> io::Result<&Client> {
        self.client
            .as_ref()
            .ok_or_else(|| io::Error::other("browser: the session is closed"))
    }

    /// chromedriver's log (its output; Chromium's goes nowhere).
    pub fn log_path(&self) -> &Path {
        self.chromedriver.log_path()
    }

    /// How long lookups wait for an element.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Changes how long lookups ([`Browser::find`], [`Browser::fill`], [`Browser::click`],
    /// [`Browser::text`]) wait for an element.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Loads `url` and waits for the page to load (the document's load event).
    pub async fn goto(&self, url: &str) -> io::Result<()> {
        self.client()?
            .goto(url)
            .await
            .map_err(|e| wd_error(&format!("loading {url}"), e))
    }

    /// The address of the page shown now.
    pub async fn current_url(&self) -> io::Result<String> {
        self.client()?
            .current_url()
            .await
            .map(String::from)
            .map_err(|e| wd_error("reading the current URL", e))
    }

    /// The visible text of the whole page.
    pub async fn page_text(&self) -> io::Result<String> {
        let body = self
            .client()?
            .find(Locator::Css("body"))
            .await
            .map_err(|e| wd_error("finding the page's body", e))?;
        body.text()
            .await
            .map_err(|e| wd_error("reading the page's text", e))
    }

    /// Saves a PNG of the window ([`WINDOW_WIDTH`] x [`WINDOW_HEIGHT`]) to `path`, creating its
    /// parent directories.
    pub async fn screenshot(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let path = path.as_ref();
        let png = self
            .client()?
            .screenshot()
            .await
            .map_err(|e| wd_error("taking a screenshot", e))?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| {
                io::Error::new(e.kind(), format!("creating {}: {e}", parent.display()))
            })?;
        }
        tokio::fs::write(path, png)
            .await
            .map_err(|e| io::Error::new(e.kind(), format!("writing {}: {e}", path.display())))
    }

    /// The first element matching `target`, waiting up to [`Browser::timeout`] for one.
    pub async fn find(&self, target: impl Into<Target>) -> io::Result<Element> {
        self.wait_for(target, self.timeout).await
    }

    /// Every element matching `target` now (none is not an error).
    pub async fn find_all(&self, target: impl Into<Target>) -> io::Result<Vec<Element>> {
        let target = target.into();
        let selector = target.selector();
        self.client()?
            .find_all(selector.locator())
            .await
            .map_err(|e| wd_error(&format!("looking for {target}"), e))
    }

    /// The first element matching `target`, waiting up to `timeout` for one to appear.
    pub async fn wait_for(
        &self,
        target: impl Into<Target>,
        timeout: Duration,
    ) -> io::Result<Element> {
        let target = target.into();
        let selector = target.selector();
        let client = self.client()?;
        let deadline = Instant::now() + timeout;
        loop {
            match client.find(selector.locator()).await {
                Ok(element) => return Ok(element),
                Err(e) if is_transient(&e) => {}
                Err(e) => return Err(wd_error(&format!("looking for {target}"), e)),
            }
            if Instant::now() >= deadline {
                return Err(self
                    .timed_out(format!("no {target} appeared within {timeout:?}"))
                    .await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits up to `timeout` for an element matching `target` whose text contains `expected`, and
    /// returns it (for pages that update themselves, such as a progress line).
    pub async fn wait_for_text(
        &self,
        target: impl Into<Target>,
        expected: &str,
        timeout: Duration,
    ) -> io::Result<Element> {
        let target = target.into();
        let selector = target.selector();
        let client = self.client()?;
        let deadline = Instant::now() + timeout;
        let mut last: Option<String> = None;
        loop {
            match client.find_all(selector.locator()).await {
                Ok(elements) => {
                    for element in elements {
                        match element.text().await {
                            Ok(text) if text.contains(expected) => return Ok(element),
                            Ok(text) => last = Some(text),
                            Err(e) if is_transient(&e) => {}
                            Err(e) => return Err(wd_error(&format!("reading {target}"), e)),
                        }
                    }
                }
                Err(e) if is_transient(&e) => {}
                Err(e) => return Err(wd_error(&format!("looking for {target}"), e)),
            }
            if Instant::now() >= deadline {
                let seen = match last {
                    Some(text) => format!("it last read {text:?}"),
                    None => "there was no such element".to_owned(),
                };
                return Err(self
                    .timed_out(format!(
                        "{target} did not show {expected:?} within {timeout:?} ({seen})"
                    ))
                    .await);
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The visible text of the first element matching `target` (waiting for it as [`Browser::find`]).
    pub async fn text(&self, target: impl Into<Target>) -> io::Result<String> {
        let target = target.into();
        let element = self.find(&target).await?;
        element
            .text()
            .await
            .map_err(|e| wd_error(&format!("reading {target}"), e))
    }

    /// Types `value` into the form field matching `target` after clearing it; for a `<select>`,
    /// chooses the option whose text is `value`.
    pub async fn fill(&self, target: impl Into<Target>, value: &str) -> io::Result<()> {
        let target = target.into();
        let element = self.find(&target).await?;
        let doing = format!("filling {target} with {value:?}");
        let tag = element.tag_name().await.map_err(|e| wd_error(&doing, e))?;
        if tag.eq_ignore_ascii_case("select") {
            return element
                .select_by_label(value)
                .await
                .map_err(|e| wd_error(&doing, e));
        }
        element.clear().await.map_err(|e| wd_error(&doing, e))?;
        element
            .send_keys(value)
            .await
            .map_err(|e| wd_error(&doing, e))
    }

    /// Clicks the element matching `target` (waiting for it as [`Browser::find`]). A click that
    /// loads a page returns once it has loaded.
    pub async fn click(&self, target: impl Into<Target>) -> io::Result<()> {
        let target = target.into();
        let element = self.find(&target).await?;
        element
            .click()
            .await
            .map_err(|e| wd_error(&format!("clicking {target}"), e))
    }

    /// Presses and releases `key` on the keyboard (WebDriver actions): it goes to whatever has the
    /// focus, as a person's key press does. A key that loads a page (Enter on a link) returns at once:
    /// wait for what the new page shows.
    pub async fn press(&self, key: Key) -> io::Result<()> {
        self.keys(&[char::from(key)]).await
    }

    /// Types `text` key by key into whatever has the focus (see [`Browser::press`]).
    pub async fn type_text(&self, text: &str) -> io::Result<()> {
        let keys: Vec<char> = text.chars().collect();
        self.keys(&keys).await
    }

    async fn keys(&self, keys: &[char]) -> io::Result<()> {
        let mut actions = KeyActions::new("keyboard".to_owned());
        for &value in keys {
            actions = actions
                .then(KeyAction::Down { value })
                .then(KeyAction::Up { value });
        }
        self.client()?
            .perform_actions(actions)
            .await
            .map_err(|e| wd_error("pressing keys", e))
    }

    /// The element that has the focus (the page's body when nothing does).
    pub async fn focused(&self) -> io::Result<Element> {
        self.client()?
            .active_element()
            .await
            .map_err(|e| wd_error("finding the focused element", e))
    }

    /// Presses Tab until the element matching `target` has the focus, at most `max_presses` times, as a
    /// keyboard user moves through a page; returns how many presses it took. An error names the
    /// elements the focus went through.
    pub async fn tab_to(&self, target: impl Into<Target>, max_presses: usize) -> io::Result<usize> {
        let target = target.into();
        let mut path = Vec::new();
        for presses in 1..=max_presses {
            self.press(Key::Tab).await?;
            let focused = self.focused().await?;
            let wanted = self.find_all(&target).await?;
            if wanted
                .iter()
                .any(|w| w.element_id() == focused.element_id())
            {
                return Ok(presses);
            }
            path.push(describe(&focused).await);
        }
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "browser: {target} did not get the focus within {max_presses} presses of Tab; the focus went through: {}",
                path.join(" → ")
            ),
        ))
    }

    /// Ends the session (Chromium quits) and stops chromedriver; the error is the session's.
    pub async fn close(mut self) -> io::Result<()> {
        let closed = match self.client.take() {
            Some(client) => client
                .close()
                .await
                .map_err(|e| wd_error("ending the session", e)),
            None => Ok(()),
        };
        // Then what Drop does: chromedriver and anything left of Chromium are killed.
        drop(self);
        closed
    }

    /// A time-out error that says where the browser was and what the page showed.
    async fn timed_out(&self, what: String) -> io::Error {
        let url = self
            .current_url()
            .await
            .unwrap_or_else(|e| format!("(unknown page: {e})"));
        let mut shown = self
            .page_text()
            .await
            .unwrap_or_else(|e| format!("(unreadable: {e})"));
        if let Some((cut, _)) = shown.char_indices().nth(600) {
            shown.truncate(cut);
            shown.push_str(" …");
        }
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!("browser: {what}, on {url}; the page showed:\n{shown}"),
        )
    }
}

/// An element in a few words for messages: its tag and its text, name or id.
async fn describe(element: &Element) -> String {
    let tag = element.tag_name().await.unwrap_or_default();
    let text = element.text().await.unwrap_or_default();
    let name = match text.trim() {
        "" => element
            .attr("name")
            .await
            .ok()
            .flatten()
            .or(element.attr("id").await.ok().flatten())
            .unwrap_or_default(),
        t => t.chars().take(40).collect(),
    };
    format!("<{tag}> {name:?}")
}

/// Makes the page area (and so a screenshot) [`WINDOW_WIDTH`] x [`WINDOW_HEIGHT`]: headless Chromium
/// reserves room for window decorations it doesn't draw, so `--window-size` alone gives a shorter page.
async fn fit_viewport(client: &Client) -> io::Result<()> {
    let doing = "sizing the window";
    let margins = client
        .execute(
            "return [window.outerWidth - window.innerWidth, window.outerHeight - window.innerHeight]",
            Vec::new(),
        )
        .await
        .map_err(|e| wd_error(doing, e))?;
    let margin = |i: usize| {
        margins
            .get(i)
            .and_then(serde_json::Value::as_u64)
            .and_then(|m| u32::try_from(m).ok())
            .ok_or_else(|| {
                io::Error::other(format!("{doing}: unexpected window margins {margins}"))
            })
    };
    let (width, height) = (WINDOW_WIDTH + margin(0)?, WINDOW_HEIGHT + margin(1)?);
    client
        .set_window_size(width, height)
        .await
        .map_err(|e| wd_error(doing, e))
}

/// SIGKILLs every process left in chromedriver's group (chromedriver and Chromium).
fn kill_group(group: Option<u32>) {
    if let Some(pgid) = group {
        // ESRCH (no such group) means everything is gone already.
        let _ = crate::common::send_signal_to_group(pgid, libc::SIGKILL);
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that failed before close(): no session to end politely, just no leftovers.
        // The group first, while chromedriver (its leader) is unreaped, so the id can't be reused.
        kill_group(self.group.take());
        self.chromedriver.kill();
    }
}

/// Where tests should save screenshots: `$ROSTER_SCREENSHOTS/<name>` if that is set, else
/// `<cargo target dir>/screenshots/<name>` (found from the test executable, which cargo puts in
/// `<target>/<profile>/deps/`), else a `roster-screenshots/<name>` in the temporary directory.
pub fn screenshot_dir(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("ROSTER_SCREENSHOTS") {
        return PathBuf::from(dir).join(name);
    }
    let target = std::env::current_exe().ok().and_then(|exe| {
        let deps = exe.parent()?;
        (deps.file_name()? == "deps").then_some(())?;
        Some(deps.parent()?.parent()?.to_path_buf())
    });
    match target {
        Some(target) => target.join("screenshots").join(name),
        None => std::env::temp_dir().join("roster-screenshots").join(name),
    }
}

#[cfg(test)]
mod tests;
