//! Integration tests against real slapd servers and the IceWarp emulator (roster-testkit). One binary,
//! so it links once.

// clippy.toml allows these inside #[test] functions only; the helpers here are test code too, and a
// failing helper should fail the test loudly.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
mod content_sync;
mod contract;
mod ldap_errors;
mod ldap_logon;
mod ldap_read;
mod ldap_tls;
mod ldif;
