//! The client side: the service account's credentials from its keytab, and contexts to services.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use libgssapi::context::{ClientCtx, CtxFlags, SecurityContext};
use libgssapi::credential::Cred;
use libgssapi::name::Name;
use libgssapi::oid::{GSS_MECH_KRB5, GSS_NT_KRB5_PRINCIPAL};

use crate::cred_store::{Usage, acquire_from};
use crate::error::KerberosError;
use crate::keytab::{principals, read_keytab};

/// A service account's initiator credentials: its keytab and a ticket cache of its own in this process'
/// memory (`MEMORY:`), so that neither a system-wide cache nor another program's tickets are used, and
/// the library gets (and renews) tickets from the keytab by itself when they run out.
///
/// Making one only reads the keytab; the library's credentials are acquired in [`Self::start`], which
/// may talk to the KDC (MIT gets the first ticket while acquiring) and so runs on a blocking thread.
#[derive(Clone)]
pub struct ServiceCredentials {
    keytab: PathBuf,
    principal: String,
    source: Source,
}

#[derive(Clone)]
enum Source {
    /// `client_keytab` and `ccache` for `gss_acquire_cred_from`.
    Keytab { keytab_name: String, ccache: String },
    /// Already acquired (the default cache of whoever runs the process).
    Acquired(Cred),
}

impl std::fmt::Debug for ServiceCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceCredentials")
            .field("keytab", &self.keytab)
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl ServiceCredentials {
    /// Checks that the keytab can be read and holds a key for `principal` (no network, no library call:
    /// cheap enough for a settings check).
    pub fn from_keytab(
        keytab: &Path,
        principal: &str,
    ) -> Result<ServiceCredentials, KerberosError> {
        let entries = read_keytab(keytab)?;
        let held = principals(&entries);
        if !held.iter().any(|p| p.eq_ignore_ascii_case(principal)) {
            return Err(KerberosError::PrincipalNotInKeytab {
                path: keytab.display().to_string(),
                principal: principal.to_owned(),
                held: if held.is_empty() {
                    "no keys".to_owned()
                } else {
                    held.join(", ")
                },
            });
        }
        // One cache per set of credentials: a keytab replaced under the same principal must not be
        // hidden by tickets the old one got.
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let ccache = format!(
            "MEMORY:roster-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        Ok(ServiceCredentials {
            keytab: keytab.to_owned(),
            principal: principal.to_owned(),
            source: Source::Keytab {
                keytab_name: format!("FILE:{}", keytab.display()),
                ccache,
            },
        })
    }

    /// The library's credentials: from the keytab into the private cache (a KDC round trip the first
    /// time and whenever the ticket runs out), or those already acquired.
    fn acquire(&self) -> Result<Cred, KerberosError> {
        match &self.source {
            Source::Acquired(cred) => Ok(cred.clone()),
            Source::Keytab {
                keytab_name,
                ccache,
            } => acquire_from(
                Some(&self.principal),
                Usage::Initiate,
                &[("client_keytab", keytab_name), ("ccache", ccache)],
            )
            .map_err(|e| {
                KerberosError::gssapi(
                    format!(
                        "getting a ticket for {} with the keytab {}",
                        self.principal,
                        self.keytab.display()
                    ),
                    &e,
                )
            }),
        }
    }

    /// The credentials of whoever runs the process (their default ticket cache, e.g. after `kinit`),
    /// for checks run by an administrator.
    pub fn from_default_cache() -> Result<ServiceCredentials, KerberosError> {
        let cred = Cred::acquire(None, None, libgssapi::credential::CredUsage::Initiate, None)
            .map_err(|e| KerberosError::gssapi("using your Kerberos tickets (kinit)", &e))?;
        let principal = cred
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "(your tickets)".into());
        Ok(ServiceCredentials {
            keytab: PathBuf::new(),
            principal,
            source: Source::Acquired(cred),
        })
    }

    pub fn principal(&self) -> &str {
        &self.principal
    }

    pub fn keytab(&self) -> &Path {
        &self.keytab
    }

    /// Starts a Kerberos context to `service` (`ldap/dc1.company.local@COMPANY.LOCAL`) asking for mutual
    /// authentication, integrity and confidentiality; returns the first token to send. This is where a
    /// ticket is fetched (KDC round trips).
    pub fn start(&self, service: &str) -> Result<(ClientContext, Vec<u8>), KerberosError> {
        let operation = || {
            format!(
                "getting a Kerberos ticket for {service} as {}",
                self.principal
            )
        };
        let target = Name::new(service.as_bytes(), Some(GSS_NT_KRB5_PRINCIPAL))
            .map_err(|e| KerberosError::gssapi(operation(), &e))?;
        let flags = CtxFlags::GSS_C_MUTUAL_FLAG
            | CtxFlags::GSS_C_SEQUENCE_FLAG
            | CtxFlags::GSS_C_CONF_FLAG
            | CtxFlags::GSS_C_INTEG_FLAG;
        let cred = self.acquire()?;
        let mut ctx = ClientCtx::new(Some(cred), target, flags, Some(GSS_MECH_KRB5));
        let token = ctx
            .step(None, None)
            .map_err(|e| KerberosError::gssapi(operation(), &e))?
            .map(|b| b.to_vec())
            .unwrap_or_default();
        Ok((
            ClientContext {
                ctx,
                service: service.to_owned(),
            },
            token,
        ))
    }
}

/// A context to one service, once started.
pub struct ClientContext {
    ctx: ClientCtx,
    service: String,
}

impl ClientContext {
    /// Feeds the service's token; returns the next token to send, if any.
    pub fn step(&mut self, token: &[u8]) -> Result<Option<Vec<u8>>, KerberosError> {
        self.ctx
            .step(Some(token), None)
            .map(|b| b.map(|b| b.to_vec()))
            .map_err(|e| {
                KerberosError::gssapi(
                    format!(
                        "checking the answer of {} (mutual authentication)",
                        self.service
                    ),
                    &e,
                )
            })
    }

    pub fn is_complete(&self) -> bool {
        self.ctx.is_complete()
    }

    /// Whether the finished context encrypts (`GSS_C_CONF_FLAG`) and protects integrity.
    pub fn protects_confidentiality(&self) -> bool {
        self.ctx.flags().is_ok_and(|f| {
            f.contains(CtxFlags::GSS_C_CONF_FLAG) && f.contains(CtxFlags::GSS_C_INTEG_FLAG)
        })
    }

    /// Encrypts `data` for the service.
    pub fn wrap(&mut self, data: &[u8]) -> Result<Vec<u8>, KerberosError> {
        self.ctx
            .wrap(true, data)
            .map(|b| b.to_vec())
            .map_err(|e| KerberosError::gssapi(format!("encrypting for {}", self.service), &e))
    }

    /// Checks and decrypts what the service sent.
    pub fn unwrap(&mut self, data: &[u8]) -> Result<Vec<u8>, KerberosError> {
        self.ctx
            .unwrap(data)
            .map(|b| b.to_vec())
            .map_err(|e| KerberosError::gssapi(format!("decrypting from {}", self.service), &e))
    }
}
