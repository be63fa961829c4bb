//! The browser kit against a tiny axum site, no Roster code: a form with labels, a link, and a status
//! line a script updates late (as the console's progress does).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Query;
use axum::response::Html;
use axum::routing::get;

use super::*;

const FORM_PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test kit page</title>
<style>body { font: 16px sans-serif; margin: 2em; } label { display: block; margin: .5em 0; }</style>
</head><body>
<h1>Test kit page</h1>
<p id="status">Working…</p>
<form action="/greet" method="get">
  <label for="name">Your name</label> <input id="name" name="name" value="to be replaced">
  <label>Colour <select name="colour"><option>Red</option><option>Blue</option></select></label>
  <button type="submit"><span>Greet</span></button>
</form>
<p><a href="/about">About this page</a></p>
<script>
  setTimeout(() => { document.getElementById('status').textContent = 'Working: 1 of 3'; }, 300);
  setTimeout(() => { document.getElementById('status').textContent = 'Done: 3 of 3'; }, 900);
</script>
</body></html>"#;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn greet(Query(q): Query<HashMap<String, String>>) -> Html<String> {
    let name = escape(q.get("name").map_or("", String::as_str));
    let colour = escape(q.get("colour").map_or("", String::as_str));
    Html(format!(
        "<!doctype html><title>Greeting</title><p id=\"result\">Hello, {name}! You chose {colour}.</p>"
    ))
}

/// Serves the site on a free loopback port; returns its base URL.
async fn site() -> (String, tokio::task::JoinHandle<()>) {
    let app = Router::new()
        .route("/", get(|| async { Html(FORM_PAGE) }))
        .route("/greet", get(greet))
        .route(
            "/about",
            get(|| async { Html("<!doctype html><title>About</title><h1>About</h1>") }),
        );
    let (addr, task) = crate::http::serve(app, "127.0.0.1:0", None).await.unwrap();
    (format!("http://{addr}"), task)
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(png: &[u8]) -> (u32, u32) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&png[16..20]), be(&png[20..24]))
}

#[test]
fn xpath_literals_survive_quotes() {
    assert_eq!(xpath_literal("plain"), "'plain'");
    assert_eq!(xpath_literal("it's"), "\"it's\"");
    assert_eq!(
        xpath_literal(r#"say "it's""#),
        r#"concat('say "it', "'", 's"')"#
    );
}

#[tokio::test]
async fn fills_a_form_follows_a_link_and_takes_a_screenshot() {
    let (base, _server) = site().await;
    let started = Instant::now();
    let browser = Browser::start().await.unwrap();
    eprintln!("Browser::start took {:?}", started.elapsed());

    browser.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(browser.text("h1").await.unwrap(), "Test kit page");
    // The status line changes twice after the page has loaded.
    browser
        .wait_for_text("#status", "Done: 3 of 3", Duration::from_secs(5))
        .await
        .unwrap();

    browser
        .fill(label("Your name"), "Ada <Lovelace>")
        .await
        .unwrap();
    browser.fill(label("Colour"), "Blue").await.unwrap();
    let shot = screenshot_dir("roster-testkit").join("browser-form.png");
    browser.screenshot(&shot).await.unwrap();
    let png = std::fs::read(&shot).unwrap();
    assert_eq!(
        png_size(&png),
        (WINDOW_WIDTH, WINDOW_HEIGHT),
        "{}",
        shot.display()
    );
    eprintln!("screenshot: {}", shot.display());

    browser.click(text("Greet")).await.unwrap();
    assert_eq!(
        browser.text("#result").await.unwrap(),
        "Hello, Ada <Lovelace>! You chose Blue."
    );
    let url = browser.current_url().await.unwrap();
    assert!(url.starts_with(&format!("{base}/greet?name=Ada")), "{url}");

    browser.goto(&format!("{base}/")).await.unwrap();
    browser.click(text("About this page")).await.unwrap();
    assert_eq!(browser.text(css("h1")).await.unwrap(), "About");
    assert_eq!(
        browser.current_url().await.unwrap(),
        format!("{base}/about")
    );
    assert!(browser.find_all("p").await.unwrap().is_empty());

    browser.close().await.unwrap();
}

#[tokio::test]
async fn a_missing_element_times_out_with_a_clear_error() {
    let (base, _server) = site().await;
    let mut browser = Browser::start().await.unwrap();
    browser.goto(&format!("{base}/about")).await.unwrap();
    browser.set_timeout(Duration::from_millis(300));

    let started = Instant::now();
    let err = browser.find("#no-such-thing").await.unwrap_err();
    let waited = started.elapsed();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("no CSS `#no-such-thing` appeared within 300ms"),
        "{msg}"
    );
    assert!(msg.contains(&format!("on {base}/about")), "{msg}");
    assert!(msg.contains("the page showed:\nAbout"), "{msg}");
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");

    let err = browser.click(label("Password")).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("no a form field labelled \"Password\" appeared"),
        "{err}"
    );
    let err = browser
        .wait_for_text("h1", "Contact", Duration::from_millis(200))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    assert!(
        err.to_string()
            .contains("CSS `h1` did not show \"Contact\" within 200ms (it last read \"About\")"),
        "{err}"
    );

    browser.close().await.unwrap();
}

/// Processes whose process group is `group` or whose command line mentions `dir`.
fn leftovers(group: u32, dir: &Path) -> Vec<String> {
    let dir = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // pid (comm) state ppid pgrp ...: comm may hold spaces, so count from the last ')'.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let pgrp: Option<u32> = after.split_whitespace().nth(2).and_then(|p| p.parse().ok());
        let cmdline = std::fs::read(entry.path().join("cmdline"))
            .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
            .unwrap_or_default();
        if pgrp == Some(group) || cmdline.contains(&dir) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

#[tokio::test]
async fn a_test_that_panics_leaves_no_browser_behind() {
    let (base, _server) = site().await;
    let seen: Arc<Mutex<Option<(u32, PathBuf)>>> = Arc::default();
    let seen_in_task = Arc::clone(&seen);
    let failed = tokio::spawn(async move {
        let browser = Browser::start().await.unwrap();
        let group = browser.group.unwrap();
        *seen_in_task.lock().unwrap() = Some((group, browser.dir.path().to_owned()));
        browser.goto(&format!("{base}/")).await.unwrap();
        assert!(!leftovers(group, browser.dir.path()).is_empty());
        panic!("deliberate panic with a browser open (this message is expected)");
    })
    .await;
    assert!(failed.unwrap_err().is_panic());
    let (group, dir) = seen.lock().unwrap().clone().unwrap();
    assert!(!dir.exists(), "{} was not removed", dir.display());
    // The group is killed at once; Chromium's crash handlers (in sessions of their own) notice that
    // the browser is gone and exit within a second or two.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = leftovers(group, &dir);
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still running: {left:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn screenshots_go_under_the_target_directory() {
    let dir = screenshot_dir("kit");
    if std::env::var_os("ROSTER_SCREENSHOTS").is_none() {
        assert!(dir.ends_with("screenshots/kit"), "{}", dir.display());
        let exe = std::env::current_exe().unwrap();
        assert!(exe.starts_with(dir.parent().unwrap().parent().unwrap()));
    }
}
