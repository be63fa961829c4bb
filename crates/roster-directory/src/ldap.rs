//! Generic LDAP (the seed's "LDAP Generic"): its settings mapped into the LDAP engine, with the generic
//! id policy, and references treated as an error.

use std::sync::Arc;

use roster_core::directory::{DirectoryKind, Encryption, LdapSettings};

use crate::connector::Connector;
use crate::error::DirectoryError;
use crate::ids::IdPolicy;
use crate::ldap_engine::{LdapEngine, LdapEngineConfig, ReferencePolicy, ServiceAccount};
use crate::mapping::AttributeMap;
use crate::tls;

pub(crate) fn connector(settings: &LdapSettings) -> Result<Connector, DirectoryError> {
    let engine = Arc::new(LdapEngine::new(engine_config(settings)?));
    Ok(Connector {
        kind: DirectoryKind::Ldap,
        reader: engine.clone(),
        passwords: Some(engine),
        listing: None,
        accounts: None,
    })
}

/// Checks the settings (everything that can be checked without a network) and maps them.
pub(crate) fn engine_config(settings: &LdapSettings) -> Result<LdapEngineConfig, DirectoryError> {
    let filter = settings.checked_filter()?;
    // ldap3 encodes the filter with its own parser; a filter our parser accepts but ldap3's doesn't
    // must fail here, with the settings, not later in the middle of a sync.
    if ldap3::parse_filter(filter.as_str()).is_err() {
        return Err(DirectoryError::settings(
            "filter",
            "the LDAP client can't encode this filter; simplify it (e.g. avoid extensible matches) or report it",
        ));
    }
    let password = match &settings.password {
        Some(p) if !p.is_empty() => p.clone(),
        // ldap3 sends an empty password as an unauthenticated bind, which some servers accept as
        // anonymous: refuse it here rather than read the directory as nobody.
        _ => {
            return Err(DirectoryError::settings(
                "password",
                "give the service account's password; an empty password would be an anonymous bind",
            ));
        }
    };
    let tls = match settings.encryption {
        Encryption::None => {
            if settings.ca_file.is_some() || settings.ignore_certificate_errors {
                tracing::warn!(
                    "ca_file and ignore_certificate_errors have no effect with encryption = \"none\""
                );
            }
            None
        }
        Encryption::Starttls | Encryption::Ssl => Some(tls::client_config(
            settings.ca_file.as_deref(),
            settings.ignore_certificate_errors,
        )?),
    };
    Ok(LdapEngineConfig {
        server: settings.server.trim().to_owned(),
        port: settings.effective_port(),
        encryption: settings.encryption,
        tls,
        service_account: ServiceAccount::Password {
            bind_dn: settings.bind_dn.trim().to_owned(),
            account_key: "bind_dn",
            password,
        },
        base_dn: settings.base_dn.trim().to_owned(),
        filter,
        attributes: AttributeMap::new(&settings.mapping, IdPolicy::GENERIC_LDAP)?,
        page_size: settings.page_size(),
        timeout_seconds: settings.timeout_seconds(),
        references: ReferencePolicy::Fail,
        range_request: None,
        connect_to: Vec::new(),
    })
}
