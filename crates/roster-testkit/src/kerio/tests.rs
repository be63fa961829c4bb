use super::server::like;
use super::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn like_is_a_substring_or_a_percent_pattern() {
    assert!(like("John Doe", "doe"));
    assert!(like("John Doe", "j%e"));
    assert!(like("John Doe", "%DOE"));
    assert!(!like("John Doe", "j%x"));
    assert!(!like("John Doe", "doe%"));
    assert!(like("abc", "%"));
    assert!(!like("abc", "abcd"));
}

#[test]
fn fixture_parses_from_toml_and_checks_groups() {
    let f: Fixture = toml::from_str(
        r#"
        [[domains]]
        name = "example.com"
        aliases = ["example.org"]
        [[domains.users]]
        login_name = "jdoe"
        password = "pw"
        email_addresses = ["john.doe", "jd@example.com"]
        groups = ["Sales"]
        [[domains.groups]]
        name = "Sales"
        [[domains]]
        name = "other.com"
        primary = true
        "#,
    )
    .unwrap();
    f.check().unwrap();
    assert_eq!(f.primary_domain().unwrap().name, "other.com");
    assert_eq!(
        f.user_for_login("JDOE@example.org").unwrap().1.login_name,
        "jdoe"
    );
    assert!(
        f.user_for_login("jdoe").is_none(),
        "a bare name is the primary domain's"
    );
    let mut wrong = f.clone();
    wrong.domains[0].users[0].groups.push("Nobody".into());
    assert!(wrong.check().unwrap_err().contains("Nobody"));
}

#[test]
fn the_example_fixture_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/kerio-emulator.toml");
    let f = Fixture::load(&path).unwrap();
    let (domain, admin) = f.user_for_login("admin").unwrap();
    assert_eq!(
        (domain.name.as_str(), admin.role),
        ("example.com", Role::FullAdmin)
    );
}

struct Answer {
    status: String,
    head: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
    fn error_code(&self) -> i64 {
        let json = self.json();
        assert!(json.get("result").is_none(), "{}", self.body);
        json["error"]["code"].as_i64().unwrap()
    }
    fn result(&self) -> Value {
        let json = self.json();
        assert!(json.get("error").is_none(), "{}", self.body);
        json["result"].clone()
    }
}

async fn send(addr: SocketAddr, method: &str, path: &str, headers: &[&str], body: &str) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).await.unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap();
    Answer {
        status: head.lines().next().unwrap().to_owned(),
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

const JSON: &str = "Content-Type: application/json-rpc; charset=UTF-8";

async fn rpc(addr: SocketAddr, headers: &[&str], body: Value) -> Answer {
    let mut all = vec![JSON];
    all.extend_from_slice(headers);
    let answer = send(addr, "POST", "/admin/api/jsonrpc/", &all, &body.to_string()).await;
    assert!(answer.status.starts_with("HTTP/1.1 200"), "{}", answer.head);
    answer
}

fn call(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
}

fn login_params(user: &str, password: &str) -> Value {
    json!({"userName": user, "password": password,
           "application": {"name": "Roster", "vendor": "Roster", "version": "1"}})
}

fn fixture() -> Fixture {
    let mut sales = numbered_users("sales.example.com", 5);
    sales.users[0].enabled = false;
    Fixture {
        version: "10.0.8.9228".into(),
        domains: vec![
            Domain {
                name: "example.com".into(),
                primary: true,
                users: vec![
                    User {
                        login_name: "admin".into(),
                        password: "pw".into(),
                        role: Role::FullAdmin,
                        ..Default::default()
                    },
                    User {
                        login_name: "user".into(),
                        password: "pw".into(),
                        groups: vec!["Staff".into()],
                        email_addresses: vec!["u.ser".into()],
                        ..Default::default()
                    },
                    User {
                        login_name: "off".into(),
                        password: "pw".into(),
                        role: Role::FullAdmin,
                        enabled: false,
                        ..Default::default()
                    },
                ],
                groups: vec![Group {
                    name: "Staff".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
            sales,
        ],
    }
}

/// Logs on; the cookie header and the token.
async fn logon(addr: SocketAddr, user: &str) -> (String, String) {
    let answer = rpc(addr, &[], call("Session.login", login_params(user, "pw"))).await;
    let token = answer.result()["token"].as_str().unwrap().to_owned();
    let line = answer
        .head
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap();
    let value = line.split_once(':').unwrap().1.trim();
    assert!(value.starts_with("SESSION_CONNECT_WEBADMIN="), "{value}");
    assert!(value.ends_with("; Path=/"), "{value}");
    let cookie = format!("Cookie: {}", value.trim_end_matches("; Path=/"));
    (cookie, token)
}

#[tokio::test]
async fn requests_the_real_server_refuses_are_refused() {
    let emulator = KerioEmulator::start(fixture(), "127.0.0.1:0", None)
        .await
        .unwrap();
    let a = emulator.addr();

    // Not the API: HTML pages, not JSON-RPC.
    let get = send(a, "GET", "/admin/api/jsonrpc/", &[], "").await;
    assert!(get.status.starts_with("HTTP/1.1 405"), "{}", get.status);
    for path in ["/admin/api/jsonrpc", "/webmail/api/jsonrpc/", "/"] {
        let other = send(a, "POST", path, &[JSON], "{}").await;
        assert!(other.status.starts_with("HTTP/1.1 404"), "{path}");
        assert!(other.body.contains("<html>"), "{path}");
    }

    // Malformed requests.
    let login = call("Session.login", login_params("admin", "pw"));
    let plain = send(
        a,
        "POST",
        "/admin/api/jsonrpc/",
        &["Content-Type: text/plain"],
        &login.to_string(),
    )
    .await;
    assert_eq!(plain.error_code(), -32600, "a JSON content type is needed");
    assert_eq!(
        send(a, "POST", "/admin/api/jsonrpc/", &[JSON], "{\"jsonrpc\":")
            .await
            .error_code(),
        -32700
    );
    let cases = [
        (json!([login.clone()]), -32600),
        (
            json!({"id": 1, "method": "Session.login", "params": login_params("admin", "pw")}),
            -32600,
        ),
        (
            json!({"jsonrpc": "2.0", "method": "Session.login", "params": login_params("admin", "pw")}),
            -32600,
        ),
        (
            json!({"jsonrpc": "2.0", "id": 1, "method": "Session.login", "params": []}),
            -32602,
        ),
        (call("session.login", login_params("admin", "pw")), -32601),
        (call("Users.nosuch", json!({})), -32601),
        (
            call(
                "Session.login",
                json!({"userName": "admin", "password": "pw", "application": "Roster"}),
            ),
            -32602,
        ),
        (
            call(
                "Session.login",
                json!({"userName": "admin", "password": "pw"}),
            ),
            -32602,
        ),
        (call("Session.login", login_params("admin", "wrong")), 1000),
        (call("Session.login", login_params("nobody", "pw")), 1000),
        (call("Session.login", login_params("off", "pw")), 1000),
        (
            call("Session.login", login_params("admin@nowhere.com", "pw")),
            1000,
        ),
        (call("Domains.get", json!({"query": {}})), -32001),
    ];
    for (body, code) in cases {
        let answer = rpc(a, &[], body.clone()).await;
        assert_eq!(answer.error_code(), code, "{body}: {}", answer.body);
        let json = answer.json();
        assert_eq!(json["jsonrpc"], "2.0");
        assert!(
            json["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert!(json["error"]["data"]["messageParameters"].is_object());
    }
    // The id comes back as sent.
    let answer = rpc(
        a,
        &[],
        json!({"jsonrpc": "2.0", "id": "x-1", "method": "Nope.nope"}),
    )
    .await;
    assert_eq!(answer.json()["id"], "x-1");

    // The session needs its cookie and its token, together.
    let (cookie, token) = logon(a, "admin").await;
    let x_token = format!("X-Token: {token}");
    let domains = call("Domains.get", json!({"query": {}}));
    for headers in [
        vec![cookie.as_str()],
        vec![x_token.as_str()],
        vec![cookie.as_str(), "X-Token: made-up"],
        vec!["Cookie: SESSION_CONNECT_WEBADMIN=made-up", x_token.as_str()],
    ] {
        assert_eq!(rpc(a, &headers, domains.clone()).await.error_code(), -32001);
    }
    let listed = rpc(a, &[&cookie, &x_token], domains.clone()).await.result();
    assert_eq!(listed["totalItems"], 2);
    assert_eq!(listed["list"][0]["name"], "example.com");
    assert_eq!(listed["list"][0]["isPrimary"], true);
    let mut in_body = domains.clone();
    in_body["token"] = json!(token);
    assert_eq!(rpc(a, &[&cookie], in_body).await.result()["totalItems"], 2);
    let ids: Vec<String> = listed["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(ids[0].starts_with("keriodb://domain/"), "{ids:?}");

    // Users.get: domainId and query needed, a known domain, SearchQuery honoured.
    let s = [cookie.as_str(), x_token.as_str()];
    let users = |params: Value| call("Users.get", params);
    assert_eq!(
        rpc(a, &s, users(json!({"query": {}}))).await.error_code(),
        -32602
    );
    assert_eq!(
        rpc(a, &s, users(json!({"domainId": ids[0]})))
            .await
            .error_code(),
        -32602
    );
    assert_eq!(
        rpc(
            a,
            &s,
            users(json!({"domainId": "keriodb://domain/x", "query": {}}))
        )
        .await
        .error_code(),
        1002
    );
    for bad in [
        json!({"fields": ["nosuch"]}),
        json!({"start": -1}),
        json!({"limit": -2}),
        json!({"combining": "Xor"}),
        json!({"conditions": [{"fieldName": "loginName", "comparator": "Matches", "value": "u"}]}),
        json!({"conditions": [{"fieldName": "nosuch", "comparator": "Eq", "value": "u"}]}),
        json!({"orderBy": [{"columnName": "nosuch", "direction": "Asc"}]}),
    ] {
        let answer = rpc(a, &s, users(json!({"domainId": ids[1], "query": bad}))).await;
        assert_eq!(answer.error_code(), -32602, "{}", answer.body);
    }
    let page = rpc(
        a,
        &s,
        users(json!({"domainId": ids[1], "query": {
            "fields": ["id", "loginName", "isEnabled"], "conditions": [], "combining": "And",
            "orderBy": [{"columnName": "loginName", "direction": "Desc", "caseSensitive": false}],
            "start": 1, "limit": 2}})),
    )
    .await
    .result();
    assert_eq!(page["totalItems"], 5);
    let list = page["list"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["loginName"], "u4");
    assert_eq!(
        list[0].as_object().unwrap().len(),
        3,
        "only the fields asked"
    );
    let all = rpc(
        a,
        &s,
        users(json!({"domainId": ids[1], "query": {"start": 0, "limit": -1}})),
    )
    .await
    .result();
    assert_eq!(all["list"].as_array().unwrap().len(), 5);
    assert_eq!(all["list"][0]["isEnabled"], false);
    let found = rpc(
        a,
        &s,
        users(json!({"domainId": ids[0], "query": {"conditions": [
            {"fieldName": "QUICKSEARCH", "comparator": "Like", "value": "USE"}]}})),
    )
    .await
    .result();
    assert_eq!(found["totalItems"], 1);
    let user = &found["list"][0];
    assert_eq!(user["emailAddresses"], json!(["u.ser"]));
    assert_eq!(user["userGroups"][0]["name"], "Staff");
    assert!(
        user["userGroups"][0]["id"]
            .as_str()
            .unwrap()
            .starts_with("keriodb://group/")
    );
    let groups = rpc(
        a,
        &s,
        call("Groups.get", json!({"domainId": ids[0], "query": {}})),
    )
    .await
    .result();
    assert_eq!(groups["list"][0]["name"], "Staff");
    assert_eq!(groups["list"][0]["id"], user["userGroups"][0]["id"]);

    // An ordinary user may log on (with user@domain) but not read the directory.
    let (user_cookie, user_token) = logon(a, "user@EXAMPLE.com").await;
    let user_x = format!("X-Token: {user_token}");
    let answer = rpc(
        a,
        &[&user_cookie, &user_x],
        users(json!({"domainId": ids[0], "query": {}})),
    )
    .await;
    assert_eq!(answer.error_code(), 1004);

    // Logout ends the session; a second logout is refused.
    assert_eq!(emulator.controls().open_sessions(), 2);
    let out = rpc(a, &s, call("Session.logout", json!({}))).await.result();
    assert!(out["redirectUrl"].is_string());
    assert_eq!(
        rpc(a, &s, call("Session.logout", json!({})))
            .await
            .error_code(),
        -32001
    );
    assert_eq!(rpc(a, &s, domains).await.error_code(), -32001);
    assert_eq!(emulator.controls().open_sessions(), 1);
}

#[tokio::test]
async fn sessions_expire_and_faults_answer_instead() {
    let emulator = KerioEmulator::start(fixture(), "127.0.0.1:0", None)
        .await
        .unwrap();
    let a = emulator.addr();
    let controls = emulator.controls();
    controls.expire_sessions(1, 1);
    let (cookie, token) = logon(a, "admin").await;
    let x_token = format!("X-Token: {token}");
    let s = [cookie.as_str(), x_token.as_str()];
    let domains = call("Domains.get", json!({"query": {}}));
    assert!(rpc(a, &s, domains.clone()).await.result()["list"].is_array());
    assert_eq!(rpc(a, &s, domains.clone()).await.error_code(), -32001);

    let (cookie, token) = logon(a, "admin").await;
    let x_token = format!("X-Token: {token}");
    let s = [cookie.as_str(), x_token.as_str()];
    controls.inject(Fault::once("Domains.get", FaultKind::HtmlErrorPage(502)));
    let page = send(
        a,
        "POST",
        "/admin/api/jsonrpc/",
        &[JSON, &cookie, &x_token],
        &domains.to_string(),
    )
    .await;
    assert!(page.status.starts_with("HTTP/1.1 502"), "{}", page.status);
    assert!(page.body.contains("<title>502 Error</title>"));
    controls.inject(Fault::once("Domains.get", FaultKind::TruncatedJson));
    let cut = rpc(a, &s, domains.clone()).await;
    assert!(
        serde_json::from_str::<Value>(&cut.body).is_err(),
        "{}",
        cut.body
    );
    controls.inject(Fault::once(
        "Domains.get",
        FaultKind::RpcError(1000, "Operation failed.".into()),
    ));
    assert_eq!(rpc(a, &s, domains.clone()).await.error_code(), 1000);
    assert_eq!(rpc(a, &s, domains).await.result()["totalItems"], 2);

    // A rename keeps the KId; an added user gets one.
    let before = controls.fixture().domains[0].users[1].id.clone();
    controls.edit(|f| {
        f.domains[0].users[1].login_name = "renamed".into();
        f.domains[0].users.push(User {
            login_name: "new".into(),
            ..Default::default()
        });
    });
    let after = controls.fixture();
    assert_eq!(after.domains[0].users[1].id, before);
    assert!(after.domains[0].users[3].id.starts_with("keriodb://user/"));
    assert_ne!(after.domains[0].users[3].id, before);

    let log = controls.requests();
    assert!(log.iter().all(|l| !format!("{l:?}").contains("\"pw\"")));
    assert_eq!(
        log.iter().filter(|l| l.method == "Session.login").count(),
        2
    );
}
