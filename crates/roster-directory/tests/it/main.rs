//! Integration tests against real slapd servers (roster-testkit). One binary, so it links once.

mod common;
mod ldap_errors;
mod ldap_logon;
mod ldap_read;
mod ldap_tls;
mod ldif;
