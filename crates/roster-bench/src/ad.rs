//! `roster-bench --directory ad`: the Active Directory side of the synchronization benchmark (issue 21),
//! behind `bench/ad-sync.sh`. A real Samba AD DC from roster-testkit ([`SambaDc::shared`]), N users
//! added over LDAP into one OU of their own (not measured: Samba adds ~150 users/s), then the same
//! measurements as for generic LDAP, with `ldapsearch -ZZ` (StartTLS, like Roster) as the baseline.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use roster_testkit::samba::{ADMIN_PASSWORD, ADMIN_UPN, DNS_DOMAIN};
use roster_testkit::{AdUser, SambaDc};

use crate::{FIRST_NAMES, LAST_NAMES, Opts, PAGE_SIZE, Source};

/// Roster's read with the settings below: an address (`mail` or an SMTP `proxyAddresses` value) and not
/// disabled (`exchange_users_only`, `enabled_users_only`).
pub(crate) const FILTER: &str = "(&(objectCategory=person)(objectClass=user)(|(mail=*)(proxyAddresses=smtp:*))(!(userAccountControl:1.2.840.113556.1.4.803:=2)))";
pub(crate) const ATTRIBUTES: [&str; 6] = [
    "sAMAccountName",
    "displayName",
    "cn",
    "proxyAddresses",
    "mail",
    "objectGUID",
];
/// Users the filter must leave out, added besides the N: disabled ones with an address, and enabled
/// ones without any.
const LEFT_OUT_EACH: usize = 20;
/// Adds kept outstanding on the Administrator's connection (the single-process DC serialises them).
const IN_FLIGHT: usize = 4;

/// The N users: `user000001`…, a displayName, `mail`, and `proxyAddresses` as `shape` says.
pub(crate) fn users(n: usize, proxy_addresses: Option<usize>) -> Vec<AdUser> {
    (1..=n)
        .map(|i| {
            let sam = format!("user{i:06}");
            let mut user = AdUser::new(&sam);
            user.cn = Some(sam.clone());
            user.display_name = Some(format!(
                "{} {}",
                FIRST_NAMES[i % FIRST_NAMES.len()],
                LAST_NAMES[(i / FIRST_NAMES.len()) % LAST_NAMES.len()]
            ));
            let primary = format!("{sam}@{DNS_DOMAIN}");
            user.mail = Some(primary.clone());
            let count = match proxy_addresses {
                Some(k) => k,
                None if i % 2 == 0 => 2,
                None => 0,
            };
            if count > 0 {
                user.proxy_addresses.push(format!("SMTP:{primary}"));
                for a in 1..count {
                    user.proxy_addresses
                        .push(format!("smtp:alias{a}.{sam}@mail.{DNS_DOMAIN}"));
                }
            }
            user
        })
        .collect()
}

/// Users that must not be read: disabled with an address, enabled without one.
fn left_out_users() -> Vec<AdUser> {
    let mut out = Vec::new();
    for i in 1..=LEFT_OUT_EACH {
        let mut disabled = AdUser::new(&format!("disabled{i:03}"));
        disabled.mail = Some(format!("disabled{i:03}@{DNS_DOMAIN}"));
        disabled
            .proxy_addresses
            .push(format!("SMTP:disabled{i:03}@{DNS_DOMAIN}"));
        disabled.enabled = false;
        out.push(disabled);
        let mut no_mail = AdUser::new(&format!("nomail{i:03}"));
        no_mail.display_name = Some(format!("No Mail {i}"));
        out.push(no_mail);
    }
    out
}

/// The `proxy_addresses` shape in words.
pub(crate) fn shape(proxy_addresses: Option<usize>) -> String {
    match proxy_addresses {
        None => "every second one with two `proxyAddresses` (`SMTP:` the same address as `mail`, and an \
                 `smtp:` alias)"
            .to_owned(),
        Some(0) => "no `proxyAddresses`".to_owned(),
        Some(k) => format!(
            "every one with {k} `proxyAddresses` (`SMTP:` the same address as `mail`, and {} `smtp:` \
             aliases)",
            k - 1
        ),
    }
}

/// Starts (or provisions, then starts) the Samba DC, loads the users and describes the source.
pub(crate) fn start(opts: &Opts) -> Source {
    let started = Instant::now();
    let dc = SambaDc::shared().expect("starting the Samba AD DC");
    let timings = dc.timings();
    eprintln!(
        "roster-bench: Samba AD DC at {} in {:.1} s ({})",
        dc.ip(),
        started.elapsed().as_secs_f64(),
        timings
            .provisioned
            .map_or("template reused".to_owned(), |p| format!(
                "provisioned in {:.1} s",
                p.as_secs_f64()
            ))
    );
    let samba_pid = samba_pid(dc.smb_conf_path());
    let users = users(opts.n, opts.proxy_addresses);
    let left_out = left_out_users();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let loading = Instant::now();
    let ou_dn = runtime.block_on(async {
        let ou = dc.new_ou("bench").await.expect("creating the OU");
        let mut added = 0;
        for chunk in users.chunks(2000) {
            ou.add_users_bulk(chunk, IN_FLIGHT)
                .await
                .expect("adding users");
            added += chunk.len();
            eprintln!(
                "roster-bench: {added} of {} users added ({:.0}/s)",
                users.len(),
                added as f64 / loading.elapsed().as_secs_f64()
            );
        }
        ou.add_users_bulk(&left_out, IN_FLIGHT)
            .await
            .expect("adding the users the filter leaves out");
        ou.dn().to_owned()
    });
    drop(runtime);
    let load_secs = loading.elapsed().as_secs_f64();
    let total = users.len() + left_out.len();
    let rate = total as f64 / load_secs;
    eprintln!(
        "roster-bench: {total} users added over LDAP into {ou_dn} in {load_secs:.1} s ({rate:.0}/s)"
    );
    let ca = dc.ca_cert_path().to_owned();
    let settings = settings_toml(&dc.ip().to_string(), &ca, &ou_dn);
    let addresses = users
        .iter()
        .map(|u| u.proxy_addresses.len().max(1))
        .sum::<usize>();
    Source {
        server_name: "samba",
        server_pid: samba_pid,
        url: dc.ldap_url(),
        base: ou_dn.clone(),
        bind_dn: ADMIN_UPN.to_owned(),
        password: ADMIN_PASSWORD.to_owned(),
        filter: FILTER,
        attributes: &ATTRIBUTES,
        starttls_ca: Some(ca),
        settings_toml: settings,
        name_attribute: "sAMAccountName:",
        // objectGUID is binary: LDIF gives it in base64 (`::`).
        id_attribute: "objectGUID::",
        title: "Active Directory synchronization benchmark",
        issue: "issue 21",
        full_sync_target: 2.0,
        memory_target: false,
        version: samba_version(),
        described: vec![
            format!(
                "Directory: a real Samba AD DC (roster-testkit `SambaDc`: `samba -i -M single`, {} on \
                 {}; {}), users added over LDAPS as the Administrator into the OU `{ou_dn}`: {} users \
                 with sAMAccountName, cn, displayName and `mail`, {}; no passwords; plus {} users the \
                 filter must leave out ({LEFT_OUT_EACH} disabled with an address, {LEFT_OUT_EACH} \
                 enabled without any). Adding the {total} users took {load_secs:.1} s ({rate:.0} \
                 users/s; not measured). {addresses} addresses in all.",
                samba_version(),
                dc.ip(),
                timings.provisioned.map_or(
                    "a provisioned template copied".to_owned(),
                    |p| format!("provisioned for this run in {:.1} s", p.as_secs_f64())
                ),
                opts.n,
                shape(opts.proxy_addresses),
                2 * LEFT_OUT_EACH,
            ),
            format!(
                "Filter `{FILTER}` (Roster's with `exchange_users_only` and `enabled_users_only`), \
                 attributes {}, paged-results control with page size {PAGE_SIZE}, LDAP with StartTLS \
                 (the test CA's certificate), simple bind as `{ADMIN_UPN}`.",
                ATTRIBUTES.map(|a| format!("`{a}`")).join(", ")
            ),
            format!(
                "baseline: `LDAPTLS_CACERT=<ca> LDAPTLS_REQCERT=demand HOME=<work dir> ldapsearch -x -LLL -ZZ -H {} -D {ADMIN_UPN} \
                 -w <pw> -b <OU> -E pr={PAGE_SIZE}/noprompt '<filter>' {} > /dev/null` (run in the work directory, which has no ldaprc; not `LDAPNOINIT`, \
                 which would ignore the `LDAPTLS_*` variables too). Roster connects \
                 twice (its prepare step reads the rootDSE first), each with StartTLS.",
                dc.ldap_url(),
                ATTRIBUTES.join(" ")
            ),
        ],
    }
}

/// Roster's Active Directory settings for the OU.
fn settings_toml(ip: &str, ca: &Path, ou_dn: &str) -> String {
    format!(
        r#"type = "active-directory"
domain = "{DNS_DOMAIN}"
server = "{ip}"
protocol = "ldap"
ca_file = "{}"
base_dn = "{ou_dn}"
username = "{ADMIN_UPN}"
password = "{ADMIN_PASSWORD}"
exchange_users_only = true
enabled_users_only = true
visible_in_address_lists_only = false
page_size = {PAGE_SIZE}
delete_users = false
"#,
        ca.display()
    )
}

/// The samba process: its pid file in the `pid directory` of its smb.conf (`-M single`: one process).
fn samba_pid(smb_conf: &Path) -> u32 {
    let conf = fs::read_to_string(smb_conf).expect("reading smb.conf");
    let dir = conf
        .lines()
        .find_map(|l| {
            let (key, value) = l.split_once('=')?;
            (key.trim() == "pid directory").then(|| PathBuf::from(value.trim()))
        })
        .expect("a pid directory in smb.conf");
    fs::read_to_string(dir.join("samba.pid"))
        .expect("reading samba.pid")
        .trim()
        .parse()
        .expect("samba.pid holds a pid")
}

/// "Samba 4.17.12-Debian" from `samba -V`.
fn samba_version() -> String {
    std::process::Command::new("samba")
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(|l| format!("Samba {}", l.trim().trim_start_matches("Version ")))
        })
        .unwrap_or_else(|| "samba (version unknown)".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_second_user_has_two_proxy_addresses_by_default() {
        let u = users(4, None);
        assert_eq!(u.len(), 4);
        assert!(u[0].proxy_addresses.is_empty());
        assert_eq!(
            u[1].proxy_addresses,
            [
                "SMTP:user000002@roster.test",
                "smtp:alias1.user000002@mail.roster.test"
            ]
        );
        assert_eq!(u[1].mail.as_deref(), Some("user000002@roster.test"));
        assert!(
            users(3, Some(5))
                .iter()
                .all(|u| u.proxy_addresses.len() == 5)
        );
    }

    #[test]
    fn left_out_users_fail_the_filter() {
        let l = left_out_users();
        assert_eq!(l.len(), 2 * LEFT_OUT_EACH);
        assert!(
            l.iter()
                .all(|u| !u.enabled || (u.mail.is_none() && u.proxy_addresses.is_empty()))
        );
    }
}
