//! Kerberos through the system's MIT GSSAPI (`libgssapi`, bindgen over `gssapi.h`): credentials from a
//! keytab with a private ticket cache ([`ServiceCredentials`]), the client side of a context (the Active
//! Directory service account's SASL GSSAPI bind, in `roster-directory`), the server side that takes
//! SPNEGO from browsers ([`Acceptor`]), and listing a keytab's keys ([`read_keytab`]) for checks and
//! messages.
//!
//! Every call here blocks: reading keytabs and talking to the KDC happen inside the library. Callers run
//! them on a blocking thread (`tokio::task::spawn_blocking`).
//!
//! The Kerberos configuration (realms, KDCs) is the system's: `/etc/krb5.conf`, or the file
//! `KRB5_CONFIG` names, or DNS SRV records for the realm. Roster never changes the process environment.

mod acceptor;
mod cred_store;
mod error;
mod initiator;
mod keytab;

pub use acceptor::{Accepted, Acceptor};
pub use error::{KerberosError, Problem};
pub use initiator::{ClientContext, ServiceCredentials};
pub use keytab::{KeytabEntry, parse_keytab, principals, read_keytab};

/// The realm of `user@REALM` or `service/host@REALM`, if it names one.
pub fn realm_of(principal: &str) -> Option<&str> {
    principal
        .rsplit_once('@')
        .map(|(_, realm)| realm)
        .filter(|r| !r.is_empty())
}
