//! Throwaway REAL servers for integration tests and benchmarks: OpenLDAP
//! `slapd`, PostgreSQL, Dovecot, a Samba AD domain controller and a test
//! certificate authority, all on loopback with ports picked at run time (where
//! the server allows) and state in temporary directories.
//!
//! Everything here is synchronous and drives external programs with
//! `std::process`; call it from test set-up code (inside async tests, before
//! or via `spawn_blocking`). Servers stop when their handle is dropped; the
//! shared PostgreSQL cluster stops when the process exits.
//!
//! [`browser`] is the exception: a headless Chromium driven over WebDriver, async (its client is).
//!
//! See `README.md` for the list of required Debian packages and for how to
//! add another server.

pub mod browser;
pub mod ca;
pub mod common;
pub mod cut_proxy;
pub mod dovecot;
pub mod http;
pub mod icewarp;
pub mod kerio;
pub mod ldif;
pub mod postgres;
pub mod samba;
pub mod slapd;

pub use browser::{Browser, BrowserOptions};
pub use ca::{ServerCert, TestCa, self_signed_server_cert};
pub use common::{ServerProcess, free_port, try_free_port, wait_for_port};
pub use cut_proxy::CutProxy;
pub use dovecot::{Dovecot, DovecotConfig};
pub use ldif::{TestUser, escape_dn_value, group_ldif, user_dn, user_ldif};
pub use postgres::{Durability, TestPostgres};
pub use samba::{AdUser, Ou, SambaDc, ServiceAccount, StartTimings};
pub use slapd::{Slapd, SlapdConfig, SlapdTls, SyncProv};
