#!/usr/bin/env bash
# Runs Roster on the embedded default (SQLite in ./roster-data), with the example company directory from
# examples/company.ldif: Test Settings, Synchronize now, then the server on http://127.0.0.1:8080.
set -euo pipefail
cd "$(dirname "$0")/.."
# The build links the system's MIT GSSAPI (Kerberos single sign-on), bound with bindgen (clang).
scripts/install-packages.sh clang libclang-dev libkrb5-dev
cargo build --release -p roster
roster=target/release/roster
export ROSTER_DATA_DIR="${ROSTER_DATA_DIR:-./roster-data}"
# The first command creates the database and prints the administrator's password once.
if ! "$roster" directory show --json | grep -q '"type": "l'; then
  "$roster" directory set --file examples/ldif-directory.toml
fi
echo "==> Test Settings (a preview: nothing is committed)"
"$roster" sync --preview
echo "==> Synchronize now"
"$roster" sync
echo "==> roster serve (Ctrl-C stops it)"
exec "$roster" serve
