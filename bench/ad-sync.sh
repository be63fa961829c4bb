#!/usr/bin/env bash
# Active Directory synchronization benchmark (issue 21): adds N users (default 20000) over LDAP to an OU of a
# throwaway Samba AD DC (roster-testkit; ~150 users/s, not measured) and measures `ldapsearch -ZZ` (the
# baseline: the same filter, attributes, paging and StartTLS as Roster), `roster sync --preview`, a full sync
# into an empty SQLite store and a re-sync with nothing changed: wall time, ratio to the baseline and peak
# memory, 3 times each. Prints a table and writes bench/results/ad-sync-<N>.md (…-<N>-proxy<K>.md with
# --proxy-addresses K). Needs ldap-utils and Samba's AD DC packages (see roster-testkit's samba module).
#
#   bench/ad-sync.sh [N] [roster-bench options: --proxy-addresses K, --reps R, --out FILE, --hold]
set -euo pipefail
cd "$(dirname "$0")/.."

n=${1:-20000}
shift || true

# shellcheck source=bench/common.sh
source bench/common.sh
for tool in ldapsearch samba; do
  command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin command -v "$tool" >/dev/null || {
    echo "ad-sync.sh: $tool not found: apt-get install -y ldap-utils samba samba-ad-dc samba-ad-provision winbind krb5-user ldb-tools" >&2
    exit 1
  }
done
build_release
# The measurements take minutes after the user load: run copies, so that a build in the same target directory
# meanwhile doesn't swap the binary under them.
bin=$(mktemp -d "${TMPDIR:-/tmp}/ad-sync-bin.XXXXXX")
trap 'rm -rf "$bin"' EXIT
cp "$target_dir/release/roster" "$target_dir/release/roster-bench" "$bin/"
# Timings mean little on a busy machine: wait up to AD_SYNC_MAX_WAIT seconds (default 120) for the 1-minute load
# average to drop below AD_SYNC_MAX_LOAD (default: half the CPUs), e.g. after the build above.
wait_for_quiet_machine "${AD_SYNC_MAX_LOAD:-$(half_the_cpus)}" "${AD_SYNC_MAX_WAIT:-120}"
args=("$@")
"$bin/roster-bench" "$n" --directory ad --roster "$bin/roster" \
  --command "bench/ad-sync.sh $n${args[*]:+ ${args[*]}}" "$@"
