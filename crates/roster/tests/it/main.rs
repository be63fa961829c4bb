//! Roster's integration tests: one test binary (linking one binary is much faster than one per file).
//! Everything here runs against real servers that the test kit starts: PostgreSQL, slapd.
//!
//! - `support`: building a Roster on SQLite or PostgreSQL with a controlled clock; the consistency check
//!   every test ends with.
//! - `store`: the user database rules, on both backends.
//! - `logon`: local logon, tokens, expiry, who may see what.
//! - `api`: the REST API over real HTTP.
//! - `console`: the web console in a real headless Chromium against the binary and slapd.
//! - `e2e`: the compiled binary: serve, restart, CLI on the same data directory.
//! - `faults`: a sync killed in its apply, a disk that fills during a sync (through the binary).
//! - `backup`: `roster backup` while the server writes, `roster restore` and its refusals, `roster db check`.
//! - `directory_settings`: the settings of every directory kind and their secret.
//! - `ldap_sync`: Test Settings, Synchronize now and LDAP logon against a real slapd.
//! - `icewarp`: the same, and the domain and group pickers, against the IceWarp emulator over HTTPS.
//! - `active_directory`: the same against a real Samba AD domain controller (one per test process).
//! - `kerberos`: the Active Directory service account with a keytab, and single sign-on with curl and
//!   Chromium, against the Samba DC's KDC (through the binary: Kerberos reads `KRB5_CONFIG`).
//! - `kerio`: the same against the Kerio Connect emulator over HTTPS, logons against a real Dovecot.
//! - `fake_directory` and `runs_without_a_server`: the same use cases over a directory in memory (run
//!   bookkeeping, preview/sync equivalence, failure paths, directory logon), on a real SQLite store.
//! - `runs`: a run's deadline, and cancelling it from this process or another.
//! - `operations`: `roster serve`'s health, readiness and metrics endpoints, and JSON logs that hold no
//!   password, token or secret (through the binary).
//! - `packaging`: the Debian package from `scripts/package.sh`, installed into a clean Debian root
//!   (mmdebstrap): its files, user, unit (`systemd-analyze`), and `roster serve` as the unit starts it.
//! - `config_file`: `--config` / `ROSTER_CONFIG` / `/etc/roster/roster.toml` through the binary: the file
//!   below the command line and the environment, and its errors.
//! - `python_client`: a Python client generated from the OpenAPI document by openapi-python-client (from
//!   PyPI, cached by version) drives the binary: logon, LDIF settings, preview, sync, users.

// Test code: failing loudly is the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

mod fake_directory;
mod support;

mod active_directory;
mod api;
mod backup;
mod config_file;
mod console;
mod directory_settings;
mod e2e;
mod faults;
mod icewarp;
mod kerberos;
mod kerio;
mod ldap_sync;
mod logon;
mod operations;
mod packaging;
mod python_client;
mod runs;
mod runs_without_a_server;
mod store;
