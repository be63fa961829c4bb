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

for tool in /usr/sbin/slapd ldapsearch; do
  command -v "$tool" >/dev/null || {
    echo "logon-flood.sh: $tool not found: apt-get install -y slapd ldap-utils" >&2
    exit 1
  }
done

echo "==> cargo build --release -p roster -p roster-bench" >&2
cargo build --release --quiet -p roster -p roster-bench

target_dir=$(cargo metadata --format-version 1 --no-deps | sed 's/.*"target_directory":"\([^"]*\)".*/\1/')

# As in ldap-sync.sh: wait up to LOGON_FLOOD_MAX_WAIT seconds (default 120) for the 1-minute load average
# to drop below LOGON_FLOOD_MAX_LOAD (default: half the CPUs). The load is recorded in the results.
max_load=${LOGON_FLOOD_MAX_LOAD:-$(awk -v n="$(nproc)" 'BEGIN { print n / 2 }')}
max_wait=${LOGON_FLOOD_MAX_WAIT:-120}
waited=0
while awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v m="$max_load" 'BEGIN { exit !(l >= m) }' &&
  ((waited < max_wait)); do
  ((waited % 30 == 0)) && echo "==> load average $(cut -d' ' -f1-3 /proc/loadavg): waiting for it to drop below $max_load" >&2
  sleep 5
  waited=$((waited + 5))
done
echo "==> load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs" >&2
exec "$target_dir/release/logon-flood" --roster "$target_dir/release/roster" \
  --command "bench/logon-flood.sh $*" "$@"
