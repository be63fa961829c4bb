#!/usr/bin/env bash
# Load benchmark (issue 27): starts `roster serve` (release build) against a throwaway slapd with 100,000
# users (synchronized first, not measured) and measures 200 concurrent directory logons (6 rounds of 2 each,
# correct passwords, a kept-alive connection per client) against the machine's Argon2id rate measured
# before, between and after the rounds, then 2,000 `GET /api/v1/users` pages of 50 from 1 and from 4
# clients. Prints a table and writes bench/results/load.md. Needs slapd and ldap-utils (Debian packages).
#
#   bench/load.sh [load options: --users U, --clients C, --logons-per-client K, --rounds R,
#                  --new-connection-per-logon, --pages N, --page-size S, --page-clients P,
#                  --ceiling-seconds T, --idle-wait-seconds W, --roster PATH, --out FILE]
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=bench/common.sh
source bench/common.sh
require_ldap_tools load.sh
build_release
# Timings mean little on a busy machine: wait up to LOAD_MAX_WAIT seconds (default 600) for the 1-minute load
# average to drop below LOAD_MAX_LOAD (default: half the CPUs), e.g. after the build above. The tool records
# the load average before and after, and the CPU time everything else used while it measured.
wait_for_quiet_machine "${LOAD_MAX_LOAD:-$(half_the_cpus)}" "${LOAD_MAX_WAIT:-600}"
exec "$target_dir/release/load" --roster "$target_dir/release/roster" \
  --command "bench/load.sh $*" "$@"
