//! The page around every console page: the header with the navigation, and small shared pieces.
//! Markup is maud's (checked when the binary is compiled, every value escaped unless marked).

use maud::{DOCTYPE, Markup, html};

use super::auth::Console;

fn head(title: &str) -> Markup {
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Roster" }
            link rel="stylesheet" href="/static/console.css";
            script src="/static/console.js" defer {}
        }
    }
}

/// The first thing a keyboard reaches: straight to the page's content, past the navigation (shown
/// only while it has the focus).
fn skip_link() -> Markup {
    html! { a class="skip" href="#main" { "Skip to the content" } }
}

/// A link of the main navigation; the one of the page shown (or of its parent) is marked as current.
fn nav_link(current: &str, href: &str, text: &str) -> Markup {
    let here = current == href || current.starts_with(&format!("{href}/"));
    html! { a href=(href) aria-current=[here.then_some("page")] { (text) } }
}

/// A page of a logged-on user.
pub(crate) fn page(console: &Console, title: &str, body: Markup) -> Markup {
    let current = console.path.as_str();
    let admin = console.caller.is_admin();
    let who = console.caller.actor().0;
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                (skip_link())
                header class="top" {
                    a class="brand" href="/" { "Roster" }
                    nav aria-label="Main" {
                        @if admin {
                            (nav_link(current, "/users", "Users and Privileges"))
                            (nav_link(current, "/directory", "Directory Services"))
                            (nav_link(current, "/runs", "Runs"))
                            (nav_link(current, "/audit", "Audit log"))
                        }
                        (nav_link(current, "/me", "My account"))
                    }
                    form class="logoff" method="post" action="/logout" {
                        input type="hidden" name="csrf" value=(console.csrf);
                        span class="who" { "Logged on as " (who) }
                        button type="submit" { "Log off" }
                    }
                }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page without a session (the logon page, refusals).
pub(crate) fn bare(title: &str, message: &str) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                (skip_link())
                header class="top" { a class="brand" href="/" { "Roster" } }
                main id="main" tabindex="-1" {
                    h1 { (title) }
                    (notice(message))
                }
            }
        }
    }
}

/// A page without a session, with its own body.
pub(crate) fn bare_with(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title))
            body {
                (skip_link())
                header class="top" { a class="brand" href="/" { "Roster" } }
                main id="main" class="narrow" tabindex="-1" {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

pub(crate) fn notice(text: &str) -> Markup {
    html! { p class="notice" role="status" { (text) } }
}

pub(crate) fn error(text: &str) -> Markup {
    html! { p class="error" role="alert" { (text) } }
}

/// The hidden CSRF field of a form.
pub(crate) fn csrf(console: &Console) -> Markup {
    html! { input type="hidden" name="csrf" value=(console.csrf); }
}

/// Previous / next links of a paged list.
pub(crate) fn pager(base: &str, query: &str, offset: i64, limit: i64, total: i64) -> Markup {
    let link = |offset: i64| {
        let sep = if query.is_empty() { "" } else { "&" };
        format!("{base}?{query}{sep}offset={offset}")
    };
    let last = (offset + limit).min(total);
    html! {
        nav class="pager" aria-label="Pages" {
            @if offset > 0 {
                a href=(link((offset - limit).max(0))) rel="prev" { "← Previous" }
            }
            span { (if total == 0 { 0 } else { offset + 1 }) "–" (last) " of " (total) }
            @if last < total {
                a href=(link(offset + limit)) rel="next" { "Next →" }
            }
        }
    }
}

/// A timestamp as people read it: `2026-12-02 18:38:28 UTC`.
pub(crate) fn when(at: roster_core::Timestamp) -> String {
    let text = at.to_rfc3339();
    let seconds = text
        .split('.')
        .next()
        .unwrap_or(&text)
        .trim_end_matches('Z');
    format!("{} UTC", seconds.replace('T', " "))
}
