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
