//! Tests of the Samba AD DC against the real server. They share one DC (per test process).

use super::*;

fn dc() -> &'static SambaDc {
    let dc = SambaDc::shared().unwrap();
    let t = dc.timings();
    eprintln!(
        "samba DC on {} (dns {}): provisioned {:?}, waited for template {:?}, copied {:?}, certificate {:?}, started {:?}",
        dc.ip(),
        dc.dns_server(),
        t.provisioned,
        t.waited_for_template,
        t.copied,
        t.certificate,
        t.started
    );
    dc
}

async fn search(ldap: &mut Ldap, base: &str, filter: &str, attrs: &[&str]) -> Vec<SearchEntry> {
    let (entries, _) = ldap
        .search(base, Scope::Subtree, filter, attrs.to_vec())
        .await
        .unwrap()
        .success()
        .unwrap();
    entries
        .into_iter()
        .filter(|e| !e.is_ref())
        .map(SearchEntry::construct)
        .collect()
}

fn dig(dc: &SambaDc, name: &str, rtype: &str) -> String {
    let server = dc.dns_server();
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .args(["+short", "+tries=1", "+time=5", rtype, name])
        .output()
        .expect("dig (Debian bind9-dnsutils) must be installed");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test]
async fn dc_starts_once_per_process_and_the_template_is_reused() {
    let dc = dc();
    assert!(std::ptr::eq(dc, SambaDc::shared().unwrap()));
    assert!(ADDRESS_POOL.contains(&dc.ip().octets()[3]));
    assert_ne!(dc.ip(), Ipv4Addr::new(127, 0, 0, 2));
    // A second request for the template (what the next test process does) finds it.
    let samba = find_program("samba", SBIN_DIRS, INSTALL_HINT).unwrap();
    let template = template_path(&samba_version(&samba).unwrap(), dc.ip());
    let t = Instant::now();
    let (provisioned, _) = ensure_template(&dc.samba_tool, &template, dc.ip()).unwrap();
    eprintln!("second template request: {:?}", t.elapsed());
    assert_eq!(provisioned, None);
    assert!(t.elapsed() < Duration::from_secs(2));
    // Samba reads only our configuration.
    let conf = fs::read_to_string(dc.smb_conf_path()).unwrap();
    assert!(conf.contains("include system krb5 conf = no"), "{conf}");
    let krb5 = fs::read_to_string(dc.krb5_conf_path()).unwrap();
    assert!(krb5.contains(&format!("kdc = {}", dc.ip())), "{krb5}");
    // samba-tool and ldbsearch reach it.
    let out = run(&mut dc.samba_tool_remote(&["user", "list"])).unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Administrator"),
        "{out:?}"
    );
    let ldif = dc
        .ldbsearch(
            BASE_DN,
            "(sAMAccountName=Administrator)",
            &["userPrincipalName"],
        )
        .unwrap();
    assert!(
        ldif.contains("CN=Administrator,CN=Users,DC=roster,DC=test"),
        "{ldif}"
    );
}

#[tokio::test]
async fn simple_binds_need_tls() {
    let dc = dc();
    // Plain 389: refused with strongAuthRequired.
    let mut plain = dc.connect(&dc.ldap_url(), false).await.unwrap();
    let refused = plain.simple_bind(ADMIN_DN, ADMIN_PASSWORD).await.unwrap();
    eprintln!("plain bind: rc {} text {:?}", refused.rc, refused.text);
    assert_eq!(refused.rc, 8, "{refused:?}");
    assert!(
        refused.text.contains("Transport encryption required"),
        "{refused:?}"
    );
    // After StartTLS, and over LDAPS, with the test CA: accepted (DN, UPN and DOMAIN\name).
    let mut tls = dc.connect(&dc.ldap_url(), true).await.unwrap();
    let ok = tls.simple_bind(ADMIN_UPN, ADMIN_PASSWORD).await.unwrap();
    assert_eq!(ok.rc, 0, "{ok:?}");
    for who in [ADMIN_DN, ADMIN_UPN, "ROSTER\\Administrator"] {
        let ok = dc.bind_ldaps(who, ADMIN_PASSWORD).await.unwrap();
        assert_eq!(ok.rc, 0, "{who}: {ok:?}");
    }
    let wrong = dc.bind_ldaps(ADMIN_DN, "wrong-password").await.unwrap();
    assert_eq!(wrong.rc, 49, "{wrong:?}");
    assert!(wrong.text.contains("data 52e"), "{wrong:?}");
}

#[tokio::test]
async fn ldaps_certificate_is_checked() {
    let dc = dc();
    // A client that trusts nothing fails the handshake: the CA really is what makes it work.
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let empty = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
    let settings = LdapConnSettings::new().set_config(Arc::new(empty));
    let err = LdapConnAsync::with_settings(settings, &dc.ldaps_url()).await;
    assert!(err.is_err());
    // The certificate names the address and both DNS names.
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName", "-in"])
        .arg(dc.dir().join("tls/cert.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    for needle in [
        format!("IP Address:{}", dc.ip()),
        "DNS:dc1.roster.test".into(),
        "DNS:roster.test".into(),
    ] {
        assert!(text.contains(&needle), "{needle} missing: {text}");
    }
}

#[tokio::test]
async fn internal_dns_serves_the_dc_records() {
    let dc = dc();
    let srv = dig(dc, "_ldap._tcp.dc._msdcs.roster.test", "SRV");
    assert_eq!(srv, "0 100 389 dc1.roster.test.");
    assert_eq!(dig(dc, "dc1.roster.test", "A"), dc.ip().to_string());
    assert_eq!(dig(dc, "roster.test", "A"), dc.ip().to_string());
}

#[tokio::test]
async fn users_groups_renames_moves_and_deletes() {
    let dc = dc();
    let ou = dc.new_ou("people").await.unwrap();
    let other = dc.new_ou("elsewhere").await.unwrap();
    let mut jane = AdUser::new("jdoe");
    jane.password = Some("Jane-Pass-123".into());
    jane.given_name = Some("Jane".into());
    jane.sn = Some("Doe".into());
    jane.display_name = Some("Jane Doe".into());
    jane.mail = Some("jane.doe@example.test".into());
    jane.proxy_addresses = vec![
        "SMTP:jane.doe@example.test".into(),
        "smtp:jd@example.test".into(),
    ];
    let jane_dn = ou.add_user(&jane).await.unwrap();
    assert_eq!(jane_dn, format!("CN=Jane Doe,{}", ou.dn()));

    let mut bob = AdUser::new("bob, the second");
    bob.sam_account_name = "bsecond".into();
    bob.cn = Some("Bob, Second".into());
    bob.password = Some("Bob-Pass-123".into());
    bob.enabled = false;
    let bob_dn = ou.add_user(&bob).await.unwrap();

    // The user binds with its password: by UPN, DN and DOMAIN\name.
    for who in ["jdoe@roster.test", jane_dn.as_str(), "ROSTER\\jdoe"] {
        let ok = dc.bind_ldaps(who, "Jane-Pass-123").await.unwrap();
        assert_eq!(ok.rc, 0, "{who}: {ok:?}");
    }
    let disabled = dc
        .bind_ldaps("bsecond@roster.test", "Bob-Pass-123")
        .await
        .unwrap();
    assert_eq!(disabled.rc, 49, "{disabled:?}");
    assert!(disabled.text.contains("data 533"), "{disabled:?}");
    ou.set_enabled(&bob_dn, true).await.unwrap();
    let enabled = dc
        .bind_ldaps("bsecond@roster.test", "Bob-Pass-123")
        .await
        .unwrap();
    assert_eq!(enabled.rc, 0, "{enabled:?}");

    let mut ldap = ou.ldap();
    let found = search(
        &mut ldap,
        ou.dn(),
        "(sAMAccountName=jdoe)",
        &["proxyAddresses", "userAccountControl", "mail", "givenName"],
    )
    .await;
    assert_eq!(found.len(), 1);
    let mut proxies = found[0].attrs["proxyAddresses"].clone();
    proxies.sort();
    assert_eq!(
        proxies,
        ["SMTP:jane.doe@example.test", "smtp:jd@example.test"]
    );
    assert_eq!(found[0].attrs["userAccountControl"], ["512"]);
    let disabled = search(
        &mut ldap,
        ou.dn(),
        "(userAccountControl:1.2.840.113556.1.4.803:=2)",
        &["cn"],
    )
    .await;
    assert!(disabled.is_empty(), "{disabled:?}");

    // Nested groups: jane in inner, inner in outer; bob in outer directly.
    let inner = ou.add_group("inner", &[&jane_dn]).await.unwrap();
    let outer = ou.add_group("outer", &[&inner]).await.unwrap();
    ou.add_members(&outer, &[&bob_dn]).await.unwrap();
    let chain = format!("(memberOf:1.2.840.113556.1.4.1941:={outer})");
    let mut names: Vec<String> = search(&mut ldap, ou.dn(), &chain, &["sAMAccountName"])
        .await
        .into_iter()
        .map(|e| e.attrs["sAMAccountName"][0].clone())
        .collect();
    names.sort();
    assert_eq!(names, ["bsecond", "inner", "jdoe"]);
    let direct = search(&mut ldap, ou.dn(), &format!("(memberOf={outer})"), &["cn"]).await;
    assert_eq!(direct.len(), 2, "{direct:?}");

    // Rename, move to another OU, delete: memberships follow.
    let renamed = ou.rename(&jane_dn, "Jane Smith").await.unwrap();
    assert_eq!(renamed, format!("CN=Jane Smith,{}", ou.dn()));
    let moved = ou.move_to(&renamed, other.dn()).await.unwrap();
    assert_eq!(moved, format!("CN=Jane Smith,{}", other.dn()));
    let members = search(&mut ldap, &inner, "(objectClass=group)", &["member"]).await;
    assert_eq!(members[0].attrs["member"], [moved.as_str()]);
    ou.remove_members(&outer, &[&bob_dn]).await.unwrap();
    ou.delete(&bob_dn).await.unwrap();
    assert!(
        search(&mut ldap, ou.dn(), "(sAMAccountName=bsecond)", &["cn"])
            .await
            .is_empty()
    );
    // The other OU saw none of this except the moved user.
    let theirs = search(&mut ldap, other.dn(), "(objectClass=user)", &["cn"]).await;
    assert_eq!(theirs.len(), 1);
}

#[tokio::test]
async fn schema_has_ms_exch_hide_from_address_lists() {
    let dc = dc();
    let ou = dc.new_ou("hidden").await.unwrap();
    let mut hidden = AdUser::new("hidden1");
    hidden.hide_from_address_lists = Some(true);
    let mut shown = AdUser::new("shown1");
    shown.hide_from_address_lists = Some(false);
    let hidden_dn = ou.add_user(&hidden).await.unwrap();
    ou.add_user(&shown).await.unwrap();
    ou.add_user(&AdUser::new("plain1")).await.unwrap();
    let mut ldap = ou.ldap();
    let found = search(
        &mut ldap,
        ou.dn(),
        "(msExchHideFromAddressLists=TRUE)",
        &["sAMAccountName", "msExchHideFromAddressLists"],
    )
    .await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].attrs["msExchHideFromAddressLists"], ["TRUE"]);
    let not_hidden = search(
        &mut ldap,
        ou.dn(),
        "(&(objectClass=user)(!(msExchHideFromAddressLists=TRUE)))",
        &["cn"],
    )
    .await;
    assert_eq!(not_hidden.len(), 2);
    // Single-valued Boolean: a second value and a non-Boolean are refused.
    let err = ou
        .modify(
            &hidden_dn,
            vec![Mod::Add(
                b"msExchHideFromAddressLists".to_vec(),
                HashSet::from([b"FALSE".to_vec()]),
            )],
        )
        .await;
    assert!(err.is_err());
    let err = ou
        .replace(&hidden_dn, "msExchHideFromAddressLists", &["maybe"])
        .await;
    assert!(err.is_err());
    ou.replace(&hidden_dn, "msExchHideFromAddressLists", &["FALSE"])
        .await
        .unwrap();
}

/// The bulk path's speed; `cargo test -p roster-testkit samba_bulk -- --ignored --nocapture`
/// (ROSTER_SAMBA_BULK=N users, default 2000; with passwords when ROSTER_SAMBA_BULK_PASSWORDS=1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark"]
async fn samba_bulk_load_rate() {
    let dc = dc();
    let n: usize = std::env::var("ROSTER_SAMBA_BULK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let passwords = std::env::var("ROSTER_SAMBA_BULK_PASSWORDS").is_ok_and(|v| v == "1");
    for in_flight in [1, 8] {
        let ou = dc.new_ou("bulk").await.unwrap();
        let users: Vec<AdUser> = (0..n)
            .map(|i| {
                let mut u = AdUser::new(&format!("b{in_flight}u{i}"));
                u.given_name = Some(format!("Given{i}"));
                u.sn = Some(format!("Sur{i}"));
                u.display_name = Some(format!("Bulk User {i}"));
                u.mail = Some(format!("b{in_flight}u{i}@example.test"));
                u.proxy_addresses = vec![format!("SMTP:b{in_flight}u{i}@example.test")];
                if passwords {
                    u.password = Some(format!("Bulk-Pass-{i}"));
                }
                u
            })
            .collect();
        let t = Instant::now();
        let dns = ou.add_users_bulk(&users, in_flight).await.unwrap();
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(dns.len(), n);
        eprintln!(
            "bulk: {n} users, {in_flight} in flight, passwords {passwords}: {secs:.1} s, {:.0} users/s",
            n as f64 / secs
        );
    }
}

#[test]
fn rdn_values_and_passwords_are_encoded() {
    assert_eq!(rdn_value("Doe, Jane"), "Doe\\, Jane");
    assert_eq!(rdn_value("#x "), "\\#x\\ ");
    assert_eq!(parent_dn("CN=Doe\\, Jane,OU=a,DC=x").unwrap(), "OU=a,DC=x");
    assert_eq!(unicode_pwd("ab"), b"\"\0a\0b\0\"\0");
    assert_eq!(
        sibling(Path::new("/tmp/t-127.0.0.3"), "lock"),
        PathBuf::from("/tmp/t-127.0.0.3.lock")
    );
}

// ---------------------------------------------------------------------------------------------
// Kerberos (kerberos.rs): the real MIT tools against the DC's KDC.

fn stderr_of(result: io::Result<impl std::fmt::Debug>) -> String {
    match result {
        Ok(ok) => panic!("expected a failure, got {ok:?}"),
        Err(e) => e.to_string(),
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn service_account_keytabs_and_tickets() {
    let dc = dc();
    let tmp = temp_dir("roster-krb-").unwrap();
    let cc = |name: &str| tmp.path().join(format!("{name}.cc"));
    let http = format!("HTTP/{}", dc.unique_http_host());
    let http_principal = spn_principal(&http);
    let t = Instant::now();
    let svc = dc
        .add_service_account(&dc.unique_name("roster-svc"), "Svc-Pass-1", &[&http])
        .await
        .unwrap();
    eprintln!("service account added in {:?}", t.elapsed());
    assert_eq!(
        svc.principal,
        format!("{}@ROSTER.TEST", svc.sam_account_name)
    );

    // Keytabs for the account and for its SPN, mode 0600.
    let svc_kt = tmp.path().join("svc.keytab");
    let http_kt = tmp.path().join("http.keytab");
    dc.export_keytab(&svc.principal, &svc_kt).unwrap();
    dc.export_keytab(&http_principal, &http_kt).unwrap();
    assert_eq!(mode(&svc_kt), 0o600);
    assert_eq!(mode(&http_kt), 0o600);
    let entries = dc.keytab_entries(&svc_kt).unwrap();
    eprintln!("svc keytab: {entries:?}");
    for enctype in [
        "aes256-cts-hmac-sha1-96",
        "aes128-cts-hmac-sha1-96",
        "arcfour-hmac",
    ] {
        assert!(
            entries
                .iter()
                .any(|e| e.contains(&svc.principal) && e.contains(enctype)),
            "{enctype}: {entries:?}"
        );
    }
    // The SPN export follows msDS-SupportedEncryptionTypes (AES here).
    let entries = dc.keytab_entries(&http_kt).unwrap();
    eprintln!("http keytab: {entries:?}");
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert!(
        entries
            .iter()
            .all(|e| e.contains(&http_principal) && e.contains("aes")),
        "{entries:?}"
    );
    // exportkeytab is silent about principals it doesn't know.
    let nothing = dc.export_keytab(
        "HTTP/nowhere.localhost@ROSTER.TEST",
        &tmp.path().join("no.keytab"),
    );
    assert!(stderr_of(nothing).contains("wrote no keytab"));

    // kinit -k as the account into a private cache.
    let svc_cc = cc("svc");
    dc.kinit_keytab(&svc.principal, &svc_kt, &svc_cc).unwrap();
    let klist = run(&mut dc.kerberos_command("klist", &svc_cc)).unwrap();
    let klist = String::from_utf8_lossy(&klist.stdout);
    assert!(
        klist.contains(&format!("Default principal: {}", svc.principal)),
        "{klist}"
    );
    // An SPN is no client principal on Samba 4.17.
    let spn_client = dc.kinit_keytab(&http_principal, &http_kt, &cc("spn"));
    let text = stderr_of(spn_client);
    eprintln!("kinit as the SPN: {text}");
    assert!(text.contains("not found in Kerberos database"), "{text}");

    // End to end without a browser: a ticket for the SPN decrypts with the HTTP keytab, and with
    // the account's keytab too (same key, another name: MIT accepts any entry that fits).
    let kvno = dc.kvno(&svc_cc, &http_principal, Some(&http_kt)).unwrap();
    assert_eq!(
        dc.kvno(&svc_cc, &http_principal, Some(&svc_kt)).unwrap(),
        kvno
    );
    // The DC's LDAP service principal exists (samba_spnupdate at provisioning).
    assert_eq!(
        dc.ldap_service_principal(),
        "ldap/dc1.roster.test@ROSTER.TEST"
    );
    dc.kvno(&svc_cc, &dc.ldap_service_principal(), None)
        .unwrap();

    // Another account's keytab has no key for the SPN.
    let other = dc
        .add_service_account(&dc.unique_name("other-svc"), "Other-Pass-1", &[])
        .await
        .unwrap();
    let other_kt = tmp.path().join("other.keytab");
    dc.export_keytab(&other.principal, &other_kt).unwrap();
    let text = stderr_of(dc.kvno(&svc_cc, &http_principal, Some(&other_kt)));
    assert!(text.contains("keytab entry invalid"), "{text}");
    // An SPN is on one account only.
    let taken = dc
        .add_service_account(&dc.unique_name("dup-svc"), "Dup-Pass-1", &[&http])
        .await;
    let text = stderr_of(taken);
    eprintln!("duplicate SPN: {text}");
    // rc=19 (constraintViolation), "0000202F: samldb: spn[HTTP/web1.localhost] would cause a
    // conflict".
    assert!(text.contains("would cause a conflict"), "{text}");

    // A password change moves the kvno on: keytabs exported before are outdated.
    dc.set_password(&svc.dn, "Svc-Pass-2").await.unwrap();
    let new_cc = cc("new");
    dc.kinit(&svc.principal, "Svc-Pass-2", &new_cc).unwrap();
    assert_eq!(dc.kvno(&new_cc, &http_principal, None).unwrap(), kvno + 1);
    let text = stderr_of(dc.kvno(&new_cc, &http_principal, Some(&http_kt)));
    eprintln!("outdated keytab, kvno -k: {text}");
    assert!(text.contains("keytab entry invalid"), "{text}");
    let text = stderr_of(dc.kinit_keytab(&svc.principal, &svc_kt, &cc("old")));
    eprintln!("outdated keytab, kinit -k: {text}");
    assert!(text.contains("Preauthentication failed"), "{text}");
    assert!(
        stderr_of(dc.kinit(&svc.principal, "Svc-Pass-1", &cc("oldpw")))
            .contains("Password incorrect")
    );
    // Exporting again appends the new kvno; the file works again.
    dc.export_keytab(&http_principal, &http_kt).unwrap();
    assert_eq!(dc.keytab_entries(&http_kt).unwrap().len(), 4);
    dc.kvno(&new_cc, &http_principal, Some(&http_kt)).unwrap();

    // Right kvno, wrong enctype: exported while RC4-only, tickets AES again afterwards.
    dc.set_supported_enctypes(&svc.dn, Some(ENCTYPES_RC4))
        .await
        .unwrap();
    let rc4_kt = tmp.path().join("rc4.keytab");
    dc.export_keytab(&http_principal, &rc4_kt).unwrap();
    let entries = dc.keytab_entries(&rc4_kt).unwrap();
    assert!(
        entries.len() == 1 && entries[0].contains("arcfour-hmac"),
        "{entries:?}"
    );
    dc.set_supported_enctypes(&svc.dn, Some(ENCTYPES_AES))
        .await
        .unwrap();
    let aes_cc = cc("aes");
    dc.kinit(&svc.principal, "Svc-Pass-2", &aes_cc).unwrap();
    let text = stderr_of(dc.kvno(&aes_cc, &http_principal, Some(&rc4_kt)));
    eprintln!("RC4 keytab, AES ticket, kvno -k: {text}");
    assert!(text.contains("keytab entry invalid"), "{text}");
}

/// A site that asks for Negotiate and answers 200 to any `Authorization: Negotiate <token>`
/// (it doesn't check the token: Roster's acceptor is what the product tests check); returns the
/// port and the tokens seen.
async fn negotiate_site() -> (u16, Arc<Mutex<Vec<String>>>, tokio::task::JoinHandle<()>) {
    use axum::http::{HeaderMap, StatusCode, header};
    use axum::response::IntoResponse;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let tokens = seen.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap| {
        let tokens = tokens.clone();
        async move {
            let auth = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if let Some(token) = auth.strip_prefix("Negotiate ") {
                lock(&tokens).push(token.to_owned());
                (StatusCode::OK, "negotiated").into_response()
            } else {
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Negotiate")],
                    "no ticket",
                )
                    .into_response()
            }
        }
    });
    let (addr, task) = crate::http::serve(app, "127.0.0.1:0", None).await.unwrap();
    (addr.port(), seen, task)
}

fn tickets(dc: &SambaDc, ccache: &Path) -> String {
    let out = run(&mut dc.kerberos_command("klist", ccache)).unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_and_chromium_ask_for_the_http_spn_of_a_localhost_name() {
    let dc = dc();
    let tmp = temp_dir("roster-krb-").unwrap();
    let host = dc.unique_http_host();
    let http_principal = spn_principal(&format!("HTTP/{host}"));
    let svc = dc
        .add_service_account(
            &dc.unique_name("http-svc"),
            "Http-Pass-1",
            &[&format!("HTTP/{host}")],
        )
        .await
        .unwrap();
    let http_kt = tmp.path().join("http.keytab");
    dc.export_keytab(&http_principal, &http_kt).unwrap();
    let ou = dc.new_ou("kerberos").await.unwrap();
    let mut user = AdUser::new(&dc.unique_name("kuser"));
    user.password = Some("User-Pass-1".into());
    ou.add_user(&user).await.unwrap();
    let user_principal = format!("{}@ROSTER.TEST", user.sam_account_name);
    let (port, seen, site) = negotiate_site().await;
    let url = format!("http://{host}:{port}/");

    // curl: `web<n>.localhost` reaches 127.0.0.1 and curl asks the KDC for HTTP/web<n>.localhost.
    let curl_cc = tmp.path().join("curl.cc");
    dc.kinit(&user_principal, "User-Pass-1", &curl_cc).unwrap();
    let curl = |url: String| {
        let mut cmd = dc.kerberos_command("curl", &curl_cc);
        cmd.args(["-sS", "--negotiate", "-u", ":", "-w", " %{http_code}", &url]);
        tokio::task::spawn_blocking(move || run(&mut cmd))
    };
    let out = curl(url.clone()).await.unwrap().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "negotiated 200");
    let token = lock(&seen).pop().unwrap();
    // A SPNEGO token (GSS-API InitialContextToken, DER 0x60 …).
    assert!(token.starts_with("YII"), "{token}");
    let klist = tickets(dc, &curl_cc);
    assert!(klist.contains(&http_principal), "{klist}");
    // The ticket curl got is for the account's key.
    dc.kvno(&curl_cc, &http_principal, Some(&http_kt)).unwrap();
    // By address, curl asks for HTTP/127.0.0.1, which no account has: no token, the 401 stays.
    let out = curl(format!("http://127.0.0.1:{port}/"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "no ticket 401");

    // Chromium, with its own cache, allowed to answer Negotiate for *.localhost.
    let chromium_cc = tmp.path().join("chromium.cc");
    dc.kinit(&user_principal, "User-Pass-1", &chromium_cc)
        .unwrap();
    let browser = crate::Browser::start_with(crate::BrowserOptions {
        env: dc.kerberos_env(&chromium_cc),
        negotiate_allowlist: Some("*.localhost".into()),
    })
    .await
    .unwrap();
    browser.goto(&url).await.unwrap();
    let text = browser.page_text().await.unwrap();
    browser.close().await.unwrap();
    assert_eq!(text.trim(), "negotiated");
    assert!(lock(&seen).pop().unwrap().starts_with("YII"));
    let klist = tickets(dc, &chromium_cc);
    assert!(klist.contains(&http_principal), "{klist}");
    // Without the allow-list Chromium never answers Negotiate.
    let plain = crate::Browser::start_with(crate::BrowserOptions {
        env: dc.kerberos_env(&chromium_cc),
        negotiate_allowlist: None,
    })
    .await
    .unwrap();
    plain.goto(&url).await.unwrap();
    let text = plain.page_text().await.unwrap();
    plain.close().await.unwrap();
    assert_eq!(text.trim(), "no ticket");
    drop(svc);
    site.abort();
}

/// `ldapsearch -Y GSSAPI` (Cyrus SASL's GSSAPI plugin, Debian libsasl2-modules-gssapi-mit) as
/// a service account: Samba wants a SASL security layer on plain LDAP and none inside TLS.
#[tokio::test]
async fn ldapsearch_gssapi_needs_sealing_on_plain_ldap() {
    let dc = dc();
    let tmp = temp_dir("roster-krb-").unwrap();
    let svc = dc
        .add_service_account(&dc.unique_name("ldap-svc"), "Ldap-Pass-1", &[])
        .await
        .unwrap();
    let keytab = tmp.path().join("svc.keytab");
    dc.export_keytab(&svc.principal, &keytab).unwrap();
    let cc = tmp.path().join("svc.cc");
    dc.kinit_keytab(&svc.principal, &keytab, &cc).unwrap();
    // Anonymous rootDSE over plain LDAP names the DC (what a client builds ldap/<host> from).
    let mut anonymous = dc.kerberos_command("ldapsearch", &cc);
    anonymous.args([
        "-x",
        "-LLL",
        "-H",
        &dc.ldap_url(),
        "-b",
        "",
        "-s",
        "base",
        "dnsHostName",
    ]);
    let out = run(&mut anonymous).unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("dnsHostName: dc1.roster.test"),
        "{out:?}"
    );
    // ldapsearch builds the SPN from the URL's host, and 127.0.0.x has no name here: give the DC
    // an `ldap/<ip>` alias (ldap3 takes the host for the SPN separately and needs none).
    dc.add_spns(&dc.dc_account_dn(), &[&format!("ldap/{}", dc.ip())])
        .await
        .unwrap();
    let ldapsearch = |url: &str, extra: &[&str]| {
        let mut cmd = dc.kerberos_command("ldapsearch", &cc);
        cmd.env("LDAPTLS_CACERT", dc.ca_cert_path())
            .args(["-LLL", "-Y", "GSSAPI", "-H", url])
            .args(extra)
            .args(["-b", "", "-s", "base", "dnsHostName"]);
        let out = cmd.output().unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        eprintln!("ldapsearch -Y GSSAPI -H {url} {extra:?}: {text}");
        (out.status.success(), text)
    };
    let (ok, text) = ldapsearch(&dc.ldap_url(), &[]);
    assert!(ok && text.contains("SASL SSF: 256"), "{text}");
    assert!(text.contains("dnsHostName: dc1.roster.test"), "{text}");
    let (ok, text) = ldapsearch(&dc.ldap_url(), &["-O", "maxssf=0"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("Strong(er) authentication required (8)")
            && text.contains("SASL:[GSSAPI]: Sign or Seal are required."),
        "{text}"
    );
    let (ok, text) = ldapsearch(&dc.ldaps_url(), &[]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("Server is unwilling to perform (53)")
            && text.contains("SASL:[GSSAPI]: Sign or Seal are not allowed if TLS is used"),
        "{text}"
    );
    let (ok, text) = ldapsearch(&dc.ldaps_url(), &["-O", "maxssf=0"]);
    assert!(!ok && text.contains("Sign or Seal are required."), "{text}");
}

/// A client clock an hour ahead, with libfaketime (Debian `faketime`), no change to the system
/// clock. MIT corrects its offset from the KDC's first answer (`kdc_timesync`, on by default), so
/// the skew shows only with `kdc_timesync = 0`.
#[tokio::test]
async fn a_skewed_client_clock_with_faketime() {
    let dc = dc();
    let tmp = temp_dir("roster-krb-").unwrap();
    let svc = dc
        .add_service_account(&dc.unique_name("skew-svc"), "Skew-Pass-1", &[])
        .await
        .unwrap();
    let kinit_skewed = |conf: Option<&Path>| {
        let mut cmd = dc.kerberos_command("faketime", &tmp.path().join("skew.cc"));
        if let Some(conf) = conf {
            cmd.env("KRB5_CONFIG", conf);
        }
        cmd.args(["-f", "+1h", "kinit", &svc.principal]);
        run_with_input(&mut cmd, "Skew-Pass-1\n")
    };
    kinit_skewed(None).unwrap();
    let no_timesync = tmp.path().join("krb5-no-timesync.conf");
    dc.write_krb5_conf(&no_timesync, &["kdc_timesync = 0"])
        .unwrap();
    let text = stderr_of(kinit_skewed(Some(&no_timesync)));
    eprintln!("skewed kinit: {text}");
    assert!(
        text.contains("Clock skew too great while getting initial credentials"),
        "{text}"
    );
}
