#!/usr/bin/env bash
# Kerio Connect synchronization benchmark (issue 23): N users (default 20000) served by the release
# `roster-emulator kerio` over HTTPS with a test CA certificate; measures `roster sync --preview`, a full
# sync into an empty SQLite store and a re-sync with nothing changed: wall time, peak memory, CPU of Roster
# and of the emulator, 3 times each. Prints a table and writes bench/results/kerio-sync-<N>.md. Needs
# openssl (for the test CA).
#
#   bench/kerio-sync.sh [N] [mail-sync options: --reps R, --out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-20000}
shift || true

# shellcheck source=bench/common.sh
source bench/common.sh
build_release
echo "==> cargo build --release -p roster-testkit --bin roster-emulator" >&2
cargo build --release --quiet -p roster-testkit --bin roster-emulator
wait_for_quiet_machine "${KERIO_SYNC_MAX_LOAD:-$(half_the_cpus)}" "${KERIO_SYNC_MAX_WAIT:-120}"
exec "$target_dir/release/mail-sync" kerio "$n" --roster "$target_dir/release/roster" \
  --emulator "$target_dir/release/roster-emulator" --command "bench/kerio-sync.sh $n" "$@"
