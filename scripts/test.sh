#!/usr/bin/env bash
# Runs every check and test Roster has, installing what the tests need first.
# The tests start their own throwaway servers (slapd, PostgreSQL, Dovecot, a Samba AD DC, headless Chromium) on
# loopback, on ports chosen at run time, in temporary directories: nothing needs to be configured by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the build and the tests use. Only missing ones are installed.
# Build: the system's MIT GSSAPI for Kerberos (crates/roster-kerberos), bound with bindgen (clang).
# Samba AD DC (crates/roster-testkit/src/samba.rs): samba-ad-provision is only a Recommends of samba-ad-dc;
# krb5-user asks debconf questions (answered by DEBIAN_FRONTEND=noninteractive); dig is in bind9-dnsutils.
# Kerberos (crates/roster-testkit/src/samba/kerberos.rs): curl (with GSS-API) for Negotiate, Cyrus SASL's GSSAPI
# plugin for `ldapsearch -Y GSSAPI`, faketime for a skewed client clock.
# Browser tests (crates/roster-testkit/src/browser.rs): headless Chromium driven through chromedriver.
# The generated Python client (crates/roster/tests/it/python_client.rs): a virtual environment from PyPI.
# The Debian package (crates/roster/tests/it/packaging.rs): dpkg-dev for cargo-deb's dpkg-shlibdeps,
# mmdebstrap for the clean root it is installed into.
scripts/install-packages.sh clang libclang-dev libkrb5-dev \
  slapd ldap-utils postgresql openssl dovecot-imapd \
  samba samba-ad-dc samba-ad-provision winbind krb5-user ldb-tools bind9-dnsutils \
  curl libsasl2-modules-gssapi-mit faketime \
  chromium chromium-driver \
  python3 python3-venv \
  dpkg-dev mmdebstrap
# cargo-deb, which scripts/package.sh runs (pinned; installed once).
scripts/install-cargo-deb.sh

echo "==> cargo fmt --check"
cargo fmt --all --check

echo "==> one rustls crypto provider (aws-lc-rs) only"
# `cargo tree -i` exits 0 with "nothing to print" when the crate is absent: look at what it prints.
if cargo tree --workspace --edges normal,dev -i ring 2>/dev/null | grep -q '^ring v'; then
  echo "ring is in the dependency graph: two rustls providers panic at the first TLS handshake" >&2
  cargo tree --workspace -i ring >&2
  exit 1
fi

echo "==> cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

echo "==> cargo test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One summary line over all test binaries (cargo prints one "test result" per binary, the last of which
# is often a doc-test run with nothing in it).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
