//! The HTTP side (axum, optionally behind rustls) and the methods.

use std::cmp::Ordering;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Map, Value, json};

use super::{Fault, FaultKind, Fixture, Logged, Role, Session, State, TlsFiles};
use crate::http::html;

type Shared = Arc<Mutex<State>>;

/// The API's one path.
pub(super) const PATH: &str = "/admin/api/jsonrpc/";
/// The session cookie of the admin API.
pub(super) const COOKIE: &str = "SESSION_CONNECT_WEBADMIN";

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

pub(super) async fn spawn(
    state: Shared,
    listen: &str,
    tls: Option<&TlsFiles<'_>>,
) -> io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let app = Router::new()
        .route(PATH, any(api))
        .fallback(not_found)
        .with_state(state);
    crate::http::serve(app, listen, tls).await
}

async fn not_found() -> Response {
    html(StatusCode::NOT_FOUND, "404 Not Found")
}

/// An RPC error: code, message and the message's positional parameters.
#[derive(Debug)]
struct RpcError {
    code: i64,
    message: String,
}

impl RpcError {
    fn new(code: i64, message: &str) -> RpcError {
        RpcError {
            code,
            message: message.to_owned(),
        }
    }
    fn parse() -> RpcError {
        RpcError::new(-32700, "Parse error.")
    }
    fn request() -> RpcError {
        RpcError::new(-32600, "Invalid request.")
    }
    fn method() -> RpcError {
        RpcError::new(-32601, "Method not found.")
    }
    fn params() -> RpcError {
        RpcError::new(-32602, "Invalid params.")
    }
    fn expired() -> RpcError {
        RpcError::new(-32001, "Session expired.")
    }
    fn login() -> RpcError {
        RpcError::new(1000, "Invalid user name or password.")
    }
    fn no_domain() -> RpcError {
        RpcError::new(1002, "Domain does not exist.")
    }
    fn denied() -> RpcError {
        RpcError::new(
            1004,
            "Insufficient rights to perform the requested operation.",
        )
    }
}

fn reply(id: &Value, answer: Result<Value, RpcError>) -> String {
    let body = match answer {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(e) => json!({"jsonrpc": "2.0", "id": id, "error": {
            "code": e.code,
            "message": e.message,
            "data": {"messageParameters": {"positionalParameters": [], "plurality": 1}},
        }}),
    };
    body.to_string()
}

fn json_response(body: String, cookie: Option<String>) -> Response {
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response();
    if let Some(cookie) = cookie.and_then(|c| header::HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// `application/json` or `application/json-rpc`, with any parameters.
fn json_content_type(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|t| t == "application/json" || t == "application/json-rpc")
}

/// The session cookie's value, from any `Cookie` header.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// A request that is well-formed JSON-RPC: its id, method and params.
struct Call {
    id: Value,
    method: String,
    params: Map<String, Value>,
    token: Option<String>,
}

fn call_of(headers: &HeaderMap, body: &[u8]) -> Result<Call, (Value, RpcError)> {
    let value: Value = std::str::from_utf8(body)
        .ok()
        .and_then(|text| serde_json::from_str(text).ok())
        .ok_or((Value::Null, RpcError::parse()))?;
    let Value::Object(mut request) = value else {
        return Err((Value::Null, RpcError::request()));
    };
    let id = match request.remove("id") {
        Some(id @ (Value::Number(_) | Value::String(_))) => id,
        _ => return Err((Value::Null, RpcError::request())),
    };
    if !json_content_type(headers) || request.get("jsonrpc").and_then(Value::as_str) != Some("2.0")
    {
        return Err((id, RpcError::request()));
    }
    let Some(Value::String(method)) = request.remove("method") else {
        return Err((id, RpcError::request()));
    };
    let params = match request.remove("params") {
        None => Map::new(),
        Some(Value::Object(params)) => params,
        Some(_) => return Err((id, RpcError::params())),
    };
    let token = headers
        .get("x-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| {
            request
                .get("token")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
    Ok(Call {
        id,
        method,
        params,
        token,
    })
}

async fn api(
    AxumState(state): AxumState<Shared>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return html(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed");
    }
    let call = match call_of(&headers, &body) {
        Ok(call) => call,
        Err((id, e)) => {
            lock(&state).log.push(Logged {
                method: String::new(),
                in_session: false,
                subject: None,
                start: None,
                limit: None,
            });
            return json_response(reply(&id, Err(e)), None);
        }
    };
    let sid = session_cookie(&headers);
    let mut st = lock(&state);
    let subject = ["userName", "domainId"]
        .iter()
        .find_map(|k| call.params.get(*k).and_then(Value::as_str))
        .map(str::to_owned);
    let query = call.params.get("query");
    let number = |k: &str| query.and_then(|q| q.get(k)).and_then(Value::as_i64);
    let in_session = sid
        .as_deref()
        .and_then(|s| st.sessions.get(s))
        .is_some_and(|s| call.token.as_deref() == Some(s.token.as_str()));
    st.log.push(Logged {
        method: call.method.clone(),
        in_session,
        subject: subject.clone(),
        start: number("start"),
        limit: number("limit"),
    });
    let fault = take_fault(&mut st.faults, &call.method, subject.as_deref());
    match fault {
        Some(FaultKind::HtmlErrorPage(status)) => {
            return html(
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                &format!("{status} Error"),
            );
        }
        Some(FaultKind::RpcError(code, message)) => {
            return json_response(reply(&call.id, Err(RpcError::new(code, &message))), None);
        }
        _ => {}
    }
    let (answer, cookie) = handle(&mut st, &call, sid.as_deref());
    st.answered(&call.method);
    drop(st);
    let body = reply(&call.id, answer);
    if fault == Some(FaultKind::TruncatedJson) {
        let mut at = body.len() / 2;
        while !body.is_char_boundary(at) {
            at -= 1;
        }
        return json_response(body.get(..at).unwrap_or_default().to_owned(), cookie);
    }
    json_response(body, cookie)
}

fn take_fault(faults: &mut Vec<Fault>, method: &str, subject: Option<&str>) -> Option<FaultKind> {
    let index = faults.iter().position(|f| {
        f.method.as_deref().is_none_or(|m| m == method)
            && f.domain_id
                .as_deref()
                .is_none_or(|d| subject.is_some_and(|s| s == d))
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

/// A hex string no client can guess (the process's random hash keys over a counter).
fn unguessable(seed: u64) -> String {
    let keys = RandomState::new();
    format!(
        "{:016x}{:016x}",
        keys.hash_one(seed),
        keys.hash_one(seed ^ u64::MAX)
    )
}

fn string_param<'a>(params: &'a Map<String, Value>, key: &str) -> Result<&'a str, RpcError> {
    params
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(RpcError::params)
}

fn login(st: &mut State, params: &Map<String, Value>) -> (Result<Value, RpcError>, Option<String>) {
    let checked = (|| {
        let user_name = string_param(params, "userName")?;
        let password = string_param(params, "password")?;
        let application = params
            .get("application")
            .and_then(Value::as_object)
            .ok_or_else(RpcError::params)?;
        for key in ["name", "vendor", "version"] {
            string_param(application, key)?;
        }
        let (_, user) = st
            .fixture
            .user_for_login(user_name)
            .ok_or_else(RpcError::login)?;
        if !user.enabled || user.password.is_empty() || user.password != password {
            return Err(RpcError::login());
        }
        Ok(user.role)
    })();
    let role = match checked {
        Ok(role) => role,
        Err(e) => return (Err(e), None),
    };
    st.issued += 1;
    let sid = unguessable(st.issued);
    let token = unguessable(st.issued.rotate_left(32));
    let left = st.expiring.pop_front();
    st.sessions.insert(
        sid.clone(),
        Session {
            token: token.clone(),
            role,
            left,
        },
    );
    (
        Ok(json!({ "token": token })),
        Some(format!("{}={sid}; Path=/", COOKIE)),
    )
}

fn handle(
    st: &mut State,
    call: &Call,
    sid: Option<&str>,
) -> (Result<Value, RpcError>, Option<String>) {
    match call.method.as_str() {
        "Session.login" => return login(st, &call.params),
        "Session.logout" | "Session.whoAmI" | "Server.getVersion" | "Domains.get" | "Users.get"
        | "Groups.get" => {}
        _ => return (Err(RpcError::method()), None),
    }
    // Every other method needs the session's cookie and its token.
    let Some(sid) = sid else {
        return (Err(RpcError::expired()), None);
    };
    let Some(session) = st.sessions.get_mut(sid) else {
        return (Err(RpcError::expired()), None);
    };
    if call.token.as_deref() != Some(session.token.as_str()) {
        return (Err(RpcError::expired()), None);
    }
    if let Some(left) = session.left.as_mut() {
        if *left == 0 {
            st.sessions.remove(sid);
            return (Err(RpcError::expired()), None);
        }
        *left -= 1;
    }
    let role = session.role;
    let answer = match call.method.as_str() {
        "Session.logout" => {
            st.sessions.remove(sid);
            Ok(json!({"redirectUrl": "/admin/login/"}))
        }
        "Session.whoAmI" => {
            Ok(json!({"userDetails": {"effectiveRole": {"userRole": role.name()}}}))
        }
        "Server.getVersion" => Ok(version(&st.fixture.version)),
        method => directory(&st.fixture, method, role, &call.params),
    };
    (answer, None)
}

fn version(version: &str) -> Value {
    let mut parts = version.split('.').map(|p| p.parse::<u64>().unwrap_or(0));
    let mut next = || parts.next().unwrap_or(0);
    let (major, minor, revision, build) = (next(), next(), next(), next());
    json!({"product": "Kerio Connect", "version": version, "major": major, "minor": minor,
           "revision": revision, "build": build})
}

const DOMAIN_FIELDS: &[&str] = &[
    "id",
    "name",
    "description",
    "isPrimary",
    "aliasList",
    "isDistributed",
];
const USER_FIELDS: &[&str] = &[
    "id",
    "domainId",
    "loginName",
    "fullName",
    "description",
    "isEnabled",
    "itemSource",
    "authType",
    "isPasswordReversible",
    "role",
    "emailAddresses",
    "emailForwarding",
    "userGroups",
];
const GROUP_FIELDS: &[&str] = &[
    "id",
    "domainId",
    "name",
    "description",
    "emailAddresses",
    "itemSource",
    "role",
    "hasDomainRestriction",
    "publishInGal",
];

fn directory(
    fixture: &Fixture,
    method: &str,
    role: Role,
    params: &Map<String, Value>,
) -> Result<Value, RpcError> {
    let denied = match method {
        "Domains.get" => matches!(role, Role::UserRole | Role::Auditor),
        _ => role == Role::UserRole,
    };
    if denied {
        return Err(RpcError::denied());
    }
    let query = params
        .get("query")
        .and_then(Value::as_object)
        .ok_or_else(RpcError::params)?;
    if method == "Domains.get" {
        let primary = fixture.primary_domain().map(|d| d.id.as_str());
        let items = fixture
            .domains
            .iter()
            .map(|d| {
                json!({"id": d.id, "name": d.name, "description": d.description,
                       "isPrimary": Some(d.id.as_str()) == primary, "aliasList": d.aliases,
                       "isDistributed": false})
            })
            .collect();
        return search(items, query, DOMAIN_FIELDS, false);
    }
    let domain_id = string_param(params, "domainId")?;
    let domain = fixture
        .domains
        .iter()
        .find(|d| d.id == domain_id)
        .ok_or_else(RpcError::no_domain)?;
    let no_rights =
        json!({"userRole": "UserRole", "publicFolderRight": false, "archiveFolderRight": false});
    if method == "Groups.get" {
        let items = domain
            .groups
            .iter()
            .map(|g| {
                json!({"id": g.id, "domainId": domain.id, "name": g.name, "description": g.description,
                       "emailAddresses": g.email_addresses, "itemSource": "DSInternalSource",
                       "role": no_rights, "hasDomainRestriction": false, "publishInGal": true})
            })
            .collect();
        return search(items, query, GROUP_FIELDS, false);
    }
    let items = domain
        .users
        .iter()
        .map(|u| {
            let groups: Vec<Value> = domain
                .groups
                .iter()
                .filter(|g| u.groups.iter().any(|n| n.eq_ignore_ascii_case(&g.name)))
                .map(|g| {
                    json!({"id": g.id, "name": g.name, "description": g.description,
                           "itemSource": "DSInternalSource"})
                })
                .collect();
            json!({"id": u.id, "domainId": domain.id, "loginName": u.login_name,
                   "fullName": u.full_name, "description": u.description, "isEnabled": u.enabled,
                   "itemSource": "DSInternalSource", "authType": u.auth_type,
                   "isPasswordReversible": true,
                   "role": {"userRole": u.role.name(), "publicFolderRight": false, "archiveFolderRight": false},
                   "emailAddresses": u.email_addresses,
                   "emailForwarding": {"mode": "UForwardNone", "emailAddresses": []},
                   "userGroups": groups})
        })
        .collect();
    search(items, query, USER_FIELDS, true)
}

/// A condition of the SearchQuery.
struct Condition<'a> {
    field: &'a str,
    comparator: &'a str,
    value: &'a str,
}

/// Applies a SearchQuery to the items: conditions, order, paging, fields.
fn search(
    items: Vec<Value>,
    query: &Map<String, Value>,
    known: &[&str],
    quicksearch: bool,
) -> Result<Value, RpcError> {
    let strings = |key: &str| -> Result<Vec<&str>, RpcError> {
        match query.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(list)) => list
                .iter()
                .map(|v| v.as_str().ok_or_else(RpcError::params))
                .collect(),
            Some(_) => Err(RpcError::params()),
        }
    };
    let fields = strings("fields")?;
    if fields.iter().any(|f| !known.contains(f)) {
        return Err(RpcError::params());
    }
    let objects = |key: &str| -> Result<Vec<&Map<String, Value>>, RpcError> {
        match query.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(list)) => list
                .iter()
                .map(|v| v.as_object().ok_or_else(RpcError::params))
                .collect(),
            Some(_) => Err(RpcError::params()),
        }
    };
    let conditions = objects("conditions")?
        .into_iter()
        .map(|c| {
            let condition = Condition {
                field: string_param(c, "fieldName")?,
                comparator: string_param(c, "comparator")?,
                value: string_param(c, "value")?,
            };
            let field_ok = known.contains(&condition.field)
                || (quicksearch && condition.field == "QUICKSEARCH");
            let comparator_ok = [
                "Eq",
                "NotEq",
                "LessThan",
                "GreaterThan",
                "LessEq",
                "GreaterEq",
                "Like",
            ]
            .contains(&condition.comparator);
            if field_ok && comparator_ok {
                Ok(condition)
            } else {
                Err(RpcError::params())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let any = match query.get("combining").map(|c| c.as_str()) {
        None | Some(Some("And")) => false,
        Some(Some("Or")) => true,
        Some(_) => return Err(RpcError::params()),
    };
    let order = objects("orderBy")?
        .into_iter()
        .map(|o| {
            let column = string_param(o, "columnName")?;
            let descending = match o.get("direction").map(|d| d.as_str()) {
                None | Some(Some("Asc")) => false,
                Some(Some("Desc")) => true,
                Some(_) => return Err(RpcError::params()),
            };
            let case_sensitive = match o.get("caseSensitive") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(RpcError::params()),
            };
            if known.contains(&column) {
                Ok((column, descending, case_sensitive))
            } else {
                Err(RpcError::params())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let start = match query.get("start") {
        None => 0,
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(RpcError::params)?,
    };
    let limit = match query.get("limit").map(Value::as_i64) {
        None | Some(Some(-1)) => None,
        Some(Some(n)) if n >= 0 => Some(usize::try_from(n).map_err(|_| RpcError::params())?),
        Some(_) => return Err(RpcError::params()),
    };

    let mut matching: Vec<Value> = items
        .into_iter()
        .filter(|item| {
            if conditions.is_empty() {
                return true;
            }
            let mut results = conditions.iter().map(|c| holds(item, c));
            if any {
                results.any(|r| r)
            } else {
                results.all(|r| r)
            }
        })
        .collect();
    if !order.is_empty() {
        matching.sort_by(|a, b| {
            order
                .iter()
                .map(|(column, descending, case_sensitive)| {
                    let key = |v: &Value| {
                        let s = scalar(v.get(*column));
                        if *case_sensitive { s } else { s.to_lowercase() }
                    };
                    let ordering = key(a).cmp(&key(b));
                    if *descending {
                        ordering.reverse()
                    } else {
                        ordering
                    }
                })
                .find(|o| *o != Ordering::Equal)
                .unwrap_or(Ordering::Equal)
        });
    }
    let total = matching.len();
    let page = matching
        .into_iter()
        .skip(start)
        .take(limit.unwrap_or(usize::MAX))
        .map(|item| match item {
            Value::Object(mut object) if !fields.is_empty() => {
                object.retain(|k, _| fields.contains(&k.as_str()));
                Value::Object(object)
            }
            other => other,
        })
        .collect::<Vec<_>>();
    Ok(json!({"list": page, "totalItems": total}))
}

/// A field's value as text, for comparing (strings as they are, other values as JSON).
fn scalar(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn holds(item: &Value, condition: &Condition<'_>) -> bool {
    if condition.field == "QUICKSEARCH" {
        return ["loginName", "fullName"]
            .iter()
            .any(|f| like(&scalar(item.get(*f)), condition.value));
    }
    let text = scalar(item.get(condition.field)).to_lowercase();
    let value = condition.value.to_lowercase();
    match condition.comparator {
        "Eq" => text == value,
        "NotEq" => text != value,
        "LessThan" => text < value,
        "GreaterThan" => text > value,
        "LessEq" => text <= value,
        "GreaterEq" => text >= value,
        _ => like(&text, &value),
    }
}

/// `Like`: case-insensitive; `%` matches any run of characters; without `%`, a substring.
pub(super) fn like(text: &str, pattern: &str) -> bool {
    let text = text.to_lowercase();
    let pattern = pattern.to_lowercase();
    if !pattern.contains('%') {
        return text.contains(&pattern);
    }
    let parts: Vec<&str> = pattern.split('%').collect();
    let (Some(first), Some(last)) = (parts.first(), parts.last()) else {
        return true;
    };
    if !text.starts_with(first) {
        return false;
    }
    let mut rest = text.get(first.len()..).unwrap_or_default();
    let middle = parts
        .get(1..parts.len().saturating_sub(1))
        .unwrap_or_default();
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = rest.get(at + part.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    rest.ends_with(last)
}
