//! The server side: SPNEGO (or raw Kerberos) tokens from browsers and `curl --negotiate`, accepted with
//! the keys of a keytab holding `HTTP/<host>`.

use std::path::{Path, PathBuf};

use libgssapi::context::{SecurityContext, ServerCtx};
use libgssapi::credential::Cred;

use crate::cred_store::{Usage, acquire_from};
use crate::error::{KerberosError, Problem};
use crate::keytab::read_keytab;

/// Acceptor credentials: every key of one keytab (the client names the service it has a ticket for).
#[derive(Clone)]
pub struct Acceptor {
    keytab: PathBuf,
    cred: Cred,
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("keytab", &self.keytab)
            .finish_non_exhaustive()
    }
}

/// A client the acceptor authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// `user@REALM`, as the ticket names the client.
    pub principal: String,
    /// The token for mutual authentication, to return in `WWW-Authenticate: Negotiate <token>`.
    pub token: Option<Vec<u8>>,
}

impl Acceptor {
    /// Checks that the keytab can be read and has keys, then acquires acceptor credentials from it
    /// (no network).
    pub fn from_keytab(keytab: &Path) -> Result<Acceptor, KerberosError> {
        let entries = read_keytab(keytab)?;
        if entries.is_empty() {
            return Err(KerberosError::KeytabMalformed {
                path: keytab.display().to_string(),
                detail: "it holds no keys".into(),
            });
        }
        let keytab_name = format!("FILE:{}", keytab.display());
        let cred = acquire_from(None, Usage::Accept, &[("keytab", &keytab_name)]).map_err(|e| {
            KerberosError::gssapi(
                format!("using the keytab {} to accept", keytab.display()),
                &e,
            )
        })?;
        Ok(Acceptor {
            keytab: keytab.to_owned(),
            cred,
        })
    }

    pub fn keytab(&self) -> &Path {
        &self.keytab
    }

    /// Accepts one client's first token. HTTP Negotiate with Kerberos inside SPNEGO finishes in one
    /// round; a context that wants another (NTLM offered through SPNEGO, say) is refused as a bad token.
    pub fn accept(&self, token: &[u8]) -> Result<Accepted, KerberosError> {
        let operation = "accepting a Kerberos ticket";
        let mut ctx = ServerCtx::new(Some(self.cred.clone()));
        let out = ctx
            .step(token, None)
            .map_err(|e| KerberosError::gssapi(operation, &e))?;
        if !ctx.is_complete() {
            return Err(KerberosError::Gssapi {
                operation: operation.into(),
                problem: Problem::BadToken,
                detail: "the client's mechanism needs more than one round (not Kerberos)".into(),
            });
        }
        let principal = ctx
            .source_name()
            .map_err(|e| KerberosError::gssapi(operation, &e))?
            .to_string();
        Ok(Accepted {
            principal,
            token: out.map(|b| b.to_vec()),
        })
    }
}
