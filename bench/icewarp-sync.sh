#!/usr/bin/env bash
# IceWarp synchronization benchmark (issue 22): N user accounts (default 20000) served by the release
# `roster-emulator icewarp` over HTTPS with a test CA certificate; measures `roster sync --preview`, a full
# sync into an empty SQLite store and a re-sync with nothing changed: wall time, peak memory, CPU of Roster
# and of the emulator, 3 times each. Prints a table and writes bench/results/icewarp-sync-<N>.md. Needs
# openssl (for the test CA).
#
#   bench/icewarp-sync.sh [N] [mail-sync options: --reps R, --out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-20000}
shift || true

# shellcheck source=bench/common.sh
source bench/common.sh
build_release
echo "==> cargo build --release -p roster-testkit --bin roster-emulator" >&2
cargo build --release --quiet -p roster-testkit --bin roster-emulator
wait_for_quiet_machine "${ICEWARP_SYNC_MAX_LOAD:-$(half_the_cpus)}" "${ICEWARP_SYNC_MAX_WAIT:-120}"
exec "$target_dir/release/mail-sync" icewarp "$n" --roster "$target_dir/release/roster" \
  --emulator "$target_dir/release/roster-emulator" --command "bench/icewarp-sync.sh $n" "$@"
