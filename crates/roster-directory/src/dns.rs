//! DNS SRV lookups for finding Active Directory's domain controllers, with hickory-resolver (a
//! maintained async resolver; the standard library resolves only addresses). The DNS server is the one
//! given, else the system's (`/etc/resolv.conf`).

use std::net::SocketAddr;

use hickory_resolver::Resolver;
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig};
use hickory_resolver::name_server::TokioConnectionProvider;

/// One SRV answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SrvRecord {
    /// The host, without the trailing dot.
    pub(crate) target: String,
    pub(crate) port: u16,
    pub(crate) priority: u16,
    pub(crate) weight: u16,
}

fn resolver(server: Option<SocketAddr>) -> Result<Resolver<TokioConnectionProvider>, String> {
    Ok(match server {
        Some(addr) => Resolver::builder_with_config(
            ResolverConfig::from_parts(
                None,
                vec![],
                NameServerConfigGroup::from_ips_clear(&[addr.ip()], addr.port(), true),
            ),
            TokioConnectionProvider::default(),
        )
        .build(),
        None => Resolver::builder_tokio()
            .map_err(|e| format!("the system's DNS configuration can't be read ({e})"))?
            .build(),
    })
}

/// The addresses of `host` from the DNS server given (an IP address is itself).
pub(crate) async fn addresses(
    host: &str,
    server: SocketAddr,
) -> Result<Vec<std::net::IpAddr>, String> {
    if let Ok(ip) = host.parse::<std::net::IpAddr>() {
        return Ok(vec![ip]);
    }
    let name = format!("{}.", host.trim_end_matches('.'));
    match resolver(Some(server))?.lookup_ip(name.as_str()).await {
        Ok(lookup) => Ok(lookup.iter().collect()),
        Err(e) if e.is_no_records_found() => Ok(Vec::new()),
        Err(e) => Err(e.to_string()),
    }
}

/// The SRV records of `name`, in the order to try them: lowest priority first, then highest weight
/// (RFC 2782 picks by weight at random; a fixed order keeps runs comparable and the report honest).
/// `Ok(empty)` when the name has none; `Err` says what went wrong with the lookup.
pub(crate) async fn srv(name: &str, server: Option<SocketAddr>) -> Result<Vec<SrvRecord>, String> {
    let lookup = match resolver(server)?.srv_lookup(name).await {
        Ok(lookup) => lookup,
        Err(e) if e.is_no_records_found() => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    let mut records: Vec<SrvRecord> = lookup
        .iter()
        .map(|r| SrvRecord {
            target: r.target().to_utf8().trim_end_matches('.').to_owned(),
            port: r.port(),
            priority: r.priority(),
            weight: r.weight(),
        })
        .filter(|r| !r.target.is_empty())
        .collect();
    records.sort_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then(b.weight.cmp(&a.weight))
            .then_with(|| a.target.cmp(&b.target))
    });
    Ok(records)
}
