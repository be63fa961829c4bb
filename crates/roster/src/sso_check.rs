//! `roster sso check`: what an administrator needs to know when single sign-on doesn't work, one line
//! per check, `ok`, `warn` or `FAIL`, each failure with what to do.
//!
//! The end-to-end check asks the KDC for a ticket to each `HTTP/` principal and accepts it with the
//! keytab, exactly as a browser's ticket would be: it proves that the KDC is reachable, that the clocks
//! agree within the skew and that the keytab's key is the account's current one. The client is the
//! account's own principal when the keytab holds it (Samba and AD don't give an SPN tickets as a client:
//! "Client 'HTTP/…' not found in Kerberos database"), else whoever runs the check (`kinit` first).

use std::path::Path;
use std::process::ExitCode;

use roster_kerberos::{Acceptor, KerberosError, Problem, ServiceCredentials, read_keytab};

pub async fn run(keytab: &Path) -> ExitCode {
    let keytab = keytab.to_owned();
    match tokio::task::spawn_blocking(move || check(&keytab)).await {
        Ok(code) => code,
        Err(e) => {
            crate::cli::notice(tracing::Level::ERROR, &format!("the check stopped: {e}"));
            ExitCode::from(1)
        }
    }
}

fn fail(what: &str, e: &KerberosError) {
    println!("FAIL  {what}: {e}");
    println!("      what to do: {}", e.hint());
}

fn check(keytab: &Path) -> ExitCode {
    let entries = match read_keytab(keytab) {
        Ok(e) => e,
        Err(e) => {
            fail("reading the keytab", &e);
            return ExitCode::from(2);
        }
    };
    println!("keytab {}: {} keys", keytab.display(), entries.len());
    let principals = roster_kerberos::principals(&entries);
    for p in &principals {
        let keys: Vec<String> = entries
            .iter()
            .filter(|e| e.principal == *p)
            .map(|e| format!("{} (kvno {})", e.enctype_name(), e.kvno))
            .collect();
        println!("      {p}: {}", keys.join(", "));
    }
    if let Ok(name) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        println!("      this machine's name: {}", name.trim());
    }
    let http: Vec<&str> = principals
        .iter()
        .copied()
        .filter(|p| p.starts_with("HTTP/"))
        .collect();
    if http.is_empty() {
        println!(
            "FAIL  the keytab holds no HTTP/<host> key: browsers ask for a ticket to HTTP/<the host name in the URL>"
        );
        println!(
            "      what to do: register the SPN on the service account (setspn -S HTTP/roster.company.local roster-svc, or samba-tool spn add) and export its key (ktpass, samba-tool domain exportkeytab --principal=HTTP/…)"
        );
        return ExitCode::from(2);
    }
    let mut failed = false;
    for principal in &http {
        let host = principal
            .trim_start_matches("HTTP/")
            .split('@')
            .next()
            .unwrap_or_default();
        match std::net::ToSocketAddrs::to_socket_addrs(&(host, 443)) {
            Ok(addrs) => {
                let ips: Vec<String> = addrs.map(|a| a.ip().to_string()).collect();
                println!(
                    "ok    {host} resolves to {}: browsers reaching Roster by this name ask for {principal}",
                    ips.join(", ")
                );
            }
            Err(e) => println!(
                "warn  {host} does not resolve here ({e}): users must reach Roster by this name (a DNS A record, not a CNAME to another name, which browsers would use for the ticket instead)"
            ),
        }
    }
    let acceptor = match Acceptor::from_keytab(keytab) {
        Ok(a) => {
            println!("ok    acceptor credentials from the keytab");
            a
        }
        Err(e) => {
            fail("using the keytab to accept tickets", &e);
            return ExitCode::from(2);
        }
    };
    // The client that asks for the tickets: an account's own key in the keytab if there is one (an
    // SPN can't get tickets as a client from Active Directory or Samba), else the tickets of whoever
    // runs the check (after `kinit`).
    let client_principal = principals.iter().copied().find(|p| !p.contains('/'));
    let client = match client_principal {
        Some(p) => ServiceCredentials::from_keytab(keytab, p),
        None => ServiceCredentials::from_default_cache(),
    };
    let client = match client {
        Ok(c) => c,
        Err(e) => {
            println!(
                "warn  nothing to ask the KDC for a ticket with ({e}): the keytab holds only service principals; run `kinit user@REALM` first to test the keys end to end"
            );
            return ExitCode::SUCCESS;
        }
    };
    for principal in &http {
        match ticket_round_trip(&client, principal, &acceptor) {
            Ok(client) => println!(
                "ok    the KDC issued a ticket for {principal} and the keytab accepted it (as {client}): the KDC answers, the clocks agree and the key is current"
            ),
            Err(e) if e.problem() == Problem::ClientUnknown => println!(
                "warn  the KDC doesn't know {} as a client ({e}), so the key can't be tested from here; test as a user: kinit user@REALM, then `roster sso check` again",
                client.principal()
            ),
            Err(e) => {
                fail(
                    &format!("getting and accepting a ticket for {principal}"),
                    &e,
                );
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::from(5)
    } else {
        ExitCode::SUCCESS
    }
}

/// A ticket for `principal` asked for by `client`, accepted with the keytab.
fn ticket_round_trip(
    client: &ServiceCredentials,
    principal: &str,
    acceptor: &Acceptor,
) -> Result<String, KerberosError> {
    let (_ctx, token) = client.start(principal)?;
    Ok(acceptor.accept(&token)?.principal)
}
