#!/usr/bin/env bash
# Installs cargo-deb (builds the Debian package: scripts/package.sh) unless this version is installed.
# Pinned: cargo-deb says packaging the dev profile, which CI's package test does to avoid a release build,
# "will be a hard error in the future"; a new version is taken on purpose, by changing this line.
set -euo pipefail
version=3.8.0
if [[ "$(cargo deb --version 2>/dev/null || true)" == "cargo-deb $version" ]]; then exit 0; fi
echo "==> installing cargo-deb $version"
cargo install --locked --quiet cargo-deb --version "$version"
