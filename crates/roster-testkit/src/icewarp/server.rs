//! The HTTP side (axum, optionally behind rustls) and the commands.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use crate::http::html;

use super::xml::{Element, esc, leaf, parse};
use super::{
    AccountType, Fault, FaultKind, Fixture, Logged, Session, State, TlsFiles, glob, groups_of,
};

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

pub(super) async fn spawn(
    state: Shared,
    listen: &str,
    tls: Option<&TlsFiles<'_>>,
) -> io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = Router::new()
        .route("/icewarpapi", any(api))
        .route("/icewarpapi/", any(api))
        .route("/icewarpapi/{*rest}", any(api))
        .fallback(not_found)
        .with_state(state);
    crate::http::serve(app, listen, tls).await
}

async fn not_found() -> Response {
    html(StatusCode::NOT_FOUND, "404 Not Found")
}

fn login_page() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<!DOCTYPE html>\n<html><head><title>IceWarp WebClient - Login</title></head><body><form method=\"post\" action=\"/webmail/\"><input name=\"username\"><input type=\"password\" name=\"password\"></form></body></html>\n",
    )
        .into_response()
}

fn xml(body: String) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/xml")],
        body,
    )
        .into_response()
}

fn envelope(kind: &str, sid: Option<&str>, inner: &str) -> String {
    let sid = sid
        .map(|s| format!(" sid=\"{}\"", esc(s)))
        .unwrap_or_default();
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<iq type=\"{kind}\"{sid}><query xmlns=\"admin:iq:rpc\">{inner}</query></iq>"
    )
}

fn error(sid: Option<&str>, uid: &str) -> String {
    envelope("error", sid, &format!("<error uid=\"{}\"/>", esc(uid)))
}

fn result(sid: Option<&str>, inner: &str) -> String {
    envelope("result", sid, &format!("<result>{inner}</result>"))
}

/// What a command answered, before faults.
enum Answer {
    Xml(String),
    /// Wrong credentials: answered `auth_login_invalid` after the tarpit.
    Tarpit(String),
}

async fn api(
    AxumState(state): AxumState<Shared>,
    method: axum::http::Method,
    body: Bytes,
) -> Response {
    if method != axum::http::Method::POST {
        return html(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed");
    }
    let text = String::from_utf8_lossy(&body);
    let parsed = parse(&text);
    let (command, subject, sid) = match &parsed {
        Ok(root) => {
            let query = root.child("query");
            let command = query
                .and_then(|q| q.child_text("commandname"))
                .unwrap_or_default()
                .to_ascii_lowercase();
            let params = query.and_then(|q| q.child("commandparams"));
            let subject = params.and_then(|p| {
                ["email", "domainstr", "accountemail", "who"]
                    .iter()
                    .find_map(|k| p.child_text(k))
                    .map(str::to_owned)
            });
            (command, subject, root.attr("sid").map(str::to_owned))
        }
        Err(_) => (String::new(), None, None),
    };
    let (fault, tarpit) = {
        let mut st = lock(&state);
        st.log.push(Logged {
            command: command.clone(),
            sid: sid.clone(),
            subject: subject.clone(),
        });
        (
            take_fault(&mut st.faults, &command, subject.as_deref()),
            st.tarpit,
        )
    };
    // An HTML page comes from in front of the API (a proxy, the web server): the command never ran.
    // A truncated reply or an unknown uid comes from the API: it did.
    if let Some(FaultKind::HtmlErrorPage(status)) = fault {
        return html(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &format!("{status} Error"),
        );
    }
    if let Some(FaultKind::HtmlLoginPage) = fault {
        return login_page();
    }
    let answer = match &parsed {
        Ok(root) => handle(&state, root),
        Err(_) => Answer::Xml(error(None, "iq_root_tag_invalid")),
    };
    let body = match answer {
        Answer::Xml(body) => body,
        Answer::Tarpit(body) => {
            tokio::time::sleep(tarpit).await;
            body
        }
    };
    match fault {
        None | Some(FaultKind::HtmlErrorPage(_) | FaultKind::HtmlLoginPage) => xml(body),
        Some(FaultKind::TruncatedXml) => {
            let cut = body.len() / 2;
            let mut at = cut;
            while !body.is_char_boundary(at) {
                at -= 1;
            }
            xml(body.get(..at).unwrap_or_default().to_owned())
        }
        Some(FaultKind::ErrorUid(uid)) => xml(error(sid.as_deref(), &uid)),
    }
}

fn take_fault(faults: &mut Vec<Fault>, command: &str, subject: Option<&str>) -> Option<FaultKind> {
    let index = faults.iter().position(|f| {
        f.command.as_deref().is_none_or(|c| c == command)
            && f.domain
                .as_deref()
                .is_none_or(|d| subject.is_some_and(|s| s.eq_ignore_ascii_case(d)))
    })?;
    let fault = faults.get_mut(index)?;
    if fault.skip > 0 {
        fault.skip -= 1;
        return None;
    }
    let kind = fault.kind.clone();
    if let Some(times) = fault.times.as_mut() {
        *times = times.saturating_sub(1);
        if *times == 0 {
            faults.remove(index);
        }
    }
    Some(kind)
}

fn handle(state: &Shared, root: &Element) -> Answer {
    if root.name != "iq" {
        return Answer::Xml(error(None, "iq_root_tag_invalid"));
    }
    let Some(query) = root.child("query").filter(|q| q.name == "query") else {
        return Answer::Xml(error(None, "iq_query_xmlns_invalid"));
    };
    if query.attr("xmlns") != Some("admin:iq:rpc") {
        return Answer::Xml(error(None, "iq_query_xmlns_invalid"));
    }
    let command = query
        .child_text("commandname")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let empty = Element::default();
    let params = query.child("commandparams").unwrap_or(&empty);
    let mut st = lock(state);
    match command.as_str() {
        "authenticate" | "getauthtoken" => return credentials(&mut st, &command, params),
        "getsessioninfo"
        | "logout"
        | "getserverproperties"
        | "getdomainsinfolist"
        | "getaccountsinfolist"
        | "getaccountproperties"
        | "getaccountmemberinfolist" => {}
        _ => return Answer::Xml(error(root.attr("sid"), "invoker_commandname_invalid")),
    }
    // Every other command needs a live session.
    let Some(sid) = root.attr("sid").filter(|s| !s.is_empty()) else {
        return Answer::Xml(error(None, "session_invalid"));
    };
    let Some(session) = st.sessions.get_mut(sid) else {
        return Answer::Xml(error(Some(sid), "session_invalid"));
    };
    if let Some(left) = session.left.as_mut() {
        if *left == 0 {
            st.sessions.remove(sid);
            return Answer::Xml(error(Some(sid), "session_invalid"));
        }
        *left -= 1;
    }
    let admin = session.admin;
    let email = session.email.clone();
    let sid_str = sid;
    let sid = Some(sid_str);
    let body = match command.as_str() {
        "logout" => {
            st.sessions.remove(sid_str);
            result(sid, "1")
        }
        "getsessioninfo" => result(
            sid,
            &format!(
                "{}{}{}",
                leaf("email", &email),
                leaf("domain", email.rsplit_once('@').map_or("", |(_, d)| d)),
                leaf("admintype", if admin { "2" } else { "0" })
            ),
        ),
        _ if !admin => error(sid, "account_permission_denied"),
        "getserverproperties" => result(sid, &server_properties(&st.fixture, params)),
        "getdomainsinfolist" => result(sid, &domains_list(&st.fixture, params)),
        "getaccountsinfolist" => match accounts_list(&st.fixture, params, st.old_account_lists) {
            Ok(inner) => result(sid, &inner),
            Err(uid) => error(sid, uid),
        },
        "getaccountproperties" => match account_properties(&st.fixture, params) {
            Ok(inner) => result(sid, &inner),
            Err(uid) => error(sid, uid),
        },
        "getaccountmemberinfolist" => match members_list(&st.fixture, params) {
            Ok(inner) => result(sid, &inner),
            Err(uid) => error(sid, uid),
        },
        _ => error(sid, "invoker_commandname_invalid"),
    };
    Answer::Xml(body)
}

fn credentials(st: &mut State, command: &str, params: &Element) -> Answer {
    let email = params.child_text("email").unwrap_or_default();
    let password = params
        .child("password")
        .map(|p| p.text.as_str())
        .unwrap_or_default();
    if params.child("email").is_none() {
        return Answer::Xml(error(None, "account_email_parameter_missing"));
    }
    let found = st
        .fixture
        .find(email)
        .filter(|(_, a)| !password.is_empty() && a.password == password)
        .map(|(d, a)| (a.primary(&d.name), a.name.clone(), a.disabled, a.admin));
    let Some((primary, name, disabled, admin)) = found else {
        return Answer::Tarpit(error(None, "auth_login_invalid"));
    };
    if disabled != 0 {
        return Answer::Xml(error(None, "account_disabled_2"));
    }
    if command == "getauthtoken" {
        let (given, family) = name.split_once(' ').unwrap_or((name.as_str(), ""));
        st.issued += 1;
        let token = format!(
            "{:032x}",
            u128::from(st.issued).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835)
        );
        return Answer::Xml(result(
            None,
            &format!(
                "{}<name><classname>TAccountName</classname>{}{}</name><avatartoken/>{}<avatarurl/>",
                leaf("email", &primary),
                leaf("name", given),
                leaf("surname", family),
                leaf("authtoken", &token)
            ),
        ));
    }
    st.issued += 1;
    let sid = format!(
        "{:032x}",
        u128::from(st.issued).wrapping_mul(0x2545_F491_4F6C_DD1D_9E37_79B9_7F4A_7C15)
    );
    let left = st.expiring.pop_front();
    st.sessions.insert(
        sid.clone(),
        Session {
            email: primary,
            admin,
            left,
        },
    );
    Answer::Xml(result(Some(&sid), "1"))
}

fn string_prop(name: &str, value: &str) -> String {
    format!(
        "<item><apiproperty><propname>{}</propname></apiproperty><propertyval><classname>TPropertyString</classname>{}</propertyval><propertyright>1</propertyright></item>",
        esc(name),
        leaf("val", value)
    )
}

fn no_value_prop(name: &str) -> String {
    format!(
        "<item><apiproperty><propname>{}</propname></apiproperty><propertyval><classname>TPropertyNoValue</classname></propertyval><propertyright>0</propertyright></item>",
        esc(name)
    )
}

fn list_prop(name: &str, values: &[String]) -> String {
    let items: String = values.iter().map(|v| leaf("item", v)).collect();
    format!(
        "<item><apiproperty><propname>{}</propname></apiproperty><propertyval><classname>TPropertyStringList</classname><val>{items}</val></propertyval><propertyright>2</propertyright></item>",
        esc(name)
    )
}

fn requested<'a>(params: &'a Element, list: &str) -> Vec<&'a str> {
    params
        .child(list)
        .map(|l| {
            l.children_named("item")
                .filter_map(|i| i.child_text("propname"))
                .collect()
        })
        .unwrap_or_default()
}

fn server_properties(fixture: &Fixture, params: &Element) -> String {
    requested(params, "serverpropertylist")
        .into_iter()
        .map(|name| {
            if name.eq_ignore_ascii_case("c_version") {
                string_prop(name, &fixture.version)
            } else {
                no_value_prop(name)
            }
        })
        .collect()
}

/// `offset` and `count` of a listing (count 0 or absent: all).
fn page(params: &Element, total: usize) -> (usize, usize) {
    let number = |k: &str| {
        params
            .child_text(k)
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0)
    };
    let offset = number("offset").min(total);
    let count = match number("count") {
        0 => total - offset,
        n => n.min(total - offset),
    };
    (offset, count)
}

fn domains_list(fixture: &Fixture, params: &Element) -> String {
    let filter = params.child("filter");
    let mask = filter.and_then(|f| f.child_text("namemask")).unwrap_or("*");
    let mask = if mask.is_empty() { "*" } else { mask };
    let typemask = filter
        .and_then(|f| f.child_text("typemask"))
        .and_then(|t| t.parse::<u8>().ok());
    let matching: Vec<_> = fixture
        .domains
        .iter()
        .filter(|d| glob(mask, &d.name) && typemask.is_none_or(|t| t == d.domain_type))
        .collect();
    let (offset, count) = page(params, matching.len());
    let mut out = String::new();
    for d in matching.iter().skip(offset).take(count) {
        out.push_str(&format!(
            "<item>{}{}{}{}</item>",
            leaf("name", &d.name),
            leaf("desc", &d.description),
            leaf("domaintype", &d.domain_type.to_string()),
            leaf("accountcount", &d.accounts.len().to_string())
        ));
    }
    out.push_str(&format!(
        "{}{}",
        leaf("offset", &offset.to_string()),
        leaf("overallcount", &matching.len().to_string())
    ));
    out
}

fn accounts_list(fixture: &Fixture, params: &Element, old: bool) -> Result<String, &'static str> {
    let domain = params.child_text("domainstr").unwrap_or_default();
    if domain.is_empty() {
        return Err("domain_parameter_empty");
    }
    let d = fixture.domain(domain).ok_or("domain_invalid")?;
    let filter = params.child("filter");
    let mask = filter.and_then(|f| f.child_text("namemask")).unwrap_or("*");
    let mask = if mask.is_empty() { "*" } else { mask };
    let typemask = filter
        .and_then(|f| f.child_text("typemask"))
        .filter(|t| !t.is_empty())
        .and_then(|t| t.parse::<u8>().ok());
    let matching: Vec<_> = d
        .accounts
        .iter()
        .filter(|a| glob(mask, a.local_part()) || glob(mask, &a.name))
        .filter(|a| typemask.is_none_or(|t| t == a.account_type.code()))
        .collect();
    let (offset, count) = page(params, matching.len());
    let mut out = String::new();
    for a in matching.iter().skip(offset).take(count) {
        let email = a.primary(&d.name);
        out.push_str("<item>");
        out.push_str(&leaf("name", &a.name));
        out.push_str(&leaf("email", &email));
        if !old {
            out.push_str(&leaf("displayemail", &email));
        }
        out.push_str(&leaf("accounttype", &a.account_type.code().to_string()));
        if !old {
            out.push_str(&format!(
                "<accountstate><classname>TAccountState</classname>{}</accountstate>",
                leaf("state", &a.disabled.to_string())
            ));
        }
        out.push_str(&leaf("admintype", if a.admin { "1" } else { "0" }));
        out.push_str("<quota><classname>TAccountQuota</classname><mailboxsize>0</mailboxsize><mailboxquota>0</mailboxquota></quota>");
        out.push_str("</item>");
    }
    out.push_str(&format!(
        "{}{}",
        leaf("offset", &offset.to_string()),
        leaf("overallcount", &matching.len().to_string())
    ));
    Ok(out)
}

fn account_properties(fixture: &Fixture, params: &Element) -> Result<String, &'static str> {
    let Some(email) = params.child_text("accountemail") else {
        return Err("account_email_parameter_missing");
    };
    let (d, a) = fixture.find(email).ok_or("account_invalid")?;
    let primary = a.primary(&d.name);
    let addresses = a.addresses(&d.name);
    let mut out = String::new();
    for name in requested(params, "accountpropertylist") {
        let item = match name.to_ascii_lowercase().as_str() {
            "u_type" => string_prop(name, &a.account_type.code().to_string()),
            "u_mailbox" => string_prop(name, &a.mailbox),
            "u_alias" => string_prop(name, a.local_part()),
            "u_name" => string_prop(name, &a.name),
            "u_emailalias" => string_prop(name, &a.aliases.join(";")),
            "u_aliaslist" => string_prop(name, &addresses.join(";")),
            "a_aliaslist" => list_prop(name, &a.aliases),
            "u_accountdisabled" => string_prop(name, &a.disabled.to_string()),
            "u_admin" => string_prop(name, if a.admin { "1" } else { "0" }),
            "u_groups" => {
                let groups = groups_of(fixture, &primary, &d.name);
                let joined: String = groups.iter().map(|g| format!("{g};")).collect();
                string_prop(name, &joined)
            }
            "g_name" if a.account_type == AccountType::Group => string_prop(name, &a.name),
            _ => no_value_prop(name),
        };
        out.push_str(&item);
    }
    Ok(out)
}

fn members_list(fixture: &Fixture, params: &Element) -> Result<String, &'static str> {
    let Some(who) = params.child_text("who").filter(|w| !w.is_empty()) else {
        return Err("account_email_parameter_missing");
    };
    let (_, a) = fixture.find(who).ok_or("account_invalid")?;
    if !matches!(a.account_type, AccountType::Group | AccountType::List) {
        return Err("account_invalid");
    }
    let mask = params
        .child("filter")
        .and_then(|f| f.child_text("namemask"))
        .filter(|m| !m.is_empty())
        .unwrap_or("*");
    let matching: Vec<&String> = a.members.iter().filter(|m| glob(mask, m)).collect();
    let (offset, count) = page(params, matching.len());
    let mut out = String::new();
    for m in matching.iter().skip(offset).take(count) {
        out.push_str(&format!(
            "<item>{}<default>0</default><recieve>0</recieve><post>0</post><digest>0</digest><params/></item>",
            leaf("val", m)
        ));
    }
    out.push_str(&format!(
        "{}{}",
        leaf("offset", &offset.to_string()),
        leaf("overallcount", &matching.len().to_string())
    ));
    Ok(out)
}
