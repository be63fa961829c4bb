#!/usr/bin/env bash
# LDAP synchronization benchmark (issue 4): loads N users (default 100000) into a throwaway slapd and
# measures ldapsearch (the baseline), `roster sync --preview`, a full sync into an empty SQLite store and
# a re-sync with nothing changed: wall time, ratio to the baseline and peak memory, 3 times each.
# Prints a table and writes bench/results/ldap-sync-<N>.md. Needs slapd and ldap-utils (Debian packages).
#
#   bench/ldap-sync.sh [N] [roster-bench options: --reps R, --out FILE, --hold]
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-100000}
shift || true

for tool in /usr/sbin/slapd ldapsearch; do
  command -v "$tool" >/dev/null || {
    echo "ldap-sync.sh: $tool not found: apt-get install -y slapd ldap-utils" >&2
    exit 1
  }
done

echo "==> cargo build --release -p roster -p roster-bench" >&2
cargo build --release --quiet -p roster -p roster-bench

target_dir=$(cargo metadata --format-version 1 --no-deps | sed 's/.*"target_directory":"\([^"]*\)".*/\1/')

# Timings mean little on a busy machine: wait up to LDAP_SYNC_MAX_WAIT seconds (default 120) for the
# 1-minute load average to drop below LDAP_SYNC_MAX_LOAD (default: half the CPUs), e.g. after the build
# above. The load before and after and the CPU use during the run are recorded in the results either way.
max_load=${LDAP_SYNC_MAX_LOAD:-$(awk -v n="$(nproc)" 'BEGIN { print n / 2 }')}
max_wait=${LDAP_SYNC_MAX_WAIT:-120}
waited=0
while awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v m="$max_load" 'BEGIN { exit !(l >= m) }' &&
  ((waited < max_wait)); do
  ((waited % 30 == 0)) && echo "==> load average $(cut -d' ' -f1-3 /proc/loadavg): waiting for it to drop below $max_load" >&2
  sleep 5
  waited=$((waited + 5))
done
echo "==> load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs" >&2
exec "$target_dir/release/roster-bench" "$n" --roster "$target_dir/release/roster" \
  --command "bench/ldap-sync.sh $n" "$@"
