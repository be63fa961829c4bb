#!/usr/bin/env bash
# LDAP synchronization benchmark (issue 4): loads N users (default 100000) into a throwaway slapd and
# measures ldapsearch (the baseline), `roster sync --preview`, a full sync into an empty store (SQLite, or
# with --database postgres a throwaway PostgreSQL cluster) and a re-sync with nothing changed: wall time, ratio
# to the baseline, peak memory and the store's size, 3 times each. Prints a table and writes
# bench/results/ldap-sync-<N>[-postgres].md. Needs slapd and ldap-utils (Debian packages), and for
# --database postgres the Debian package postgresql.
#
#   bench/ldap-sync.sh [N] [roster-bench options: --reps R, --out FILE, --hold, --incremental (issue 26),
#                           --database sqlite|postgres (issue 26, item 6)]
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-100000}
shift || true

# shellcheck source=bench/common.sh
source bench/common.sh
require_ldap_tools ldap-sync.sh
build_release
# Timings mean little on a busy machine: wait up to LDAP_SYNC_MAX_WAIT seconds (default 120) for the 1-minute
# load average to drop below LDAP_SYNC_MAX_LOAD (default: half the CPUs), e.g. after the build above.
wait_for_quiet_machine "${LDAP_SYNC_MAX_LOAD:-$(half_the_cpus)}" "${LDAP_SYNC_MAX_WAIT:-120}"
exec "$target_dir/release/roster-bench" "$n" --roster "$target_dir/release/roster" \
  --command "bench/ldap-sync.sh $n${*:+ $*}" "$@"
