#!/usr/bin/env bash
# Failed-logon flood benchmark (issue 19, item 1): starts `roster serve` (release build) against a
# throwaway slapd and sends it 400 failed logons from 100 concurrent clients, 3 rounds, for unknown names
# and for directory users with a wrong password. Reports the server's peak RSS and what it keeps, logons
# a second against the machine's Argon2id rate, and latency. Prints a table and writes
# bench/results/logon-flood.md. Needs slapd and ldap-utils (Debian packages).
#
#   bench/logon-flood.sh [logon-flood options: --logons L, --clients C, --rounds R, --users U,
#                         --roster PATH, --out FILE, --rss-limit-mib M]
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=bench/common.sh
source bench/common.sh
require_ldap_tools logon-flood.sh
build_release
# Timings mean little on a busy machine: wait up to LOGON_FLOOD_MAX_WAIT seconds (default 120) for the 1-minute
# load average to drop below LOGON_FLOOD_MAX_LOAD (default: half the CPUs), e.g. after the build above.
wait_for_quiet_machine "${LOGON_FLOOD_MAX_LOAD:-$(half_the_cpus)}" "${LOGON_FLOOD_MAX_WAIT:-120}"
exec "$target_dir/release/logon-flood" --roster "$target_dir/release/roster" \
  --command "bench/logon-flood.sh $*" "$@"
