#!/usr/bin/env bash
# Console search benchmark (issue 24): the Users and Privileges page with N users (default 100000) answers
# searches; prints the median and the slowest of 20 searches of each kind, measured by curl against the release
# `roster serve` on the embedded SQLite store. The users come from a generated LDIF file (a sync, not measured).
#
#   bench/console-search.sh [N]          (ROSTER=path/to/roster to use a binary already built)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
if [[ -z ${ROSTER:-} ]]; then
  # shellcheck source=bench/common.sh
  source bench/common.sh
  build_release
  ROSTER="$target_dir/release/roster"
fi
work=$(mktemp -d)
trap 'kill "${server:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
pw=bench-console-password
{
  for ((i = 1; i <= n; i++)); do
    printf 'dn: uid=user%d,ou=People,dc=example,dc=com\nobjectClass: inetOrgPerson\nuid: user%d\ncn: User Number %d\nsn: Number\nmail: user%d@example.com\n\n' "$i" "$i" "$i" "$i"
  done
} > "$work/users.ldif"
cat > "$work/settings.toml" <<TOML
type = "ldif"
file = "$work/users.ldif"
base_dn = "dc=example,dc=com"
filter = "(objectClass=inetOrgPerson)"
username_attribute = "uid"
full_name_attribute = "cn"
email_attributes = "mail"
max_deletions = 500
TOML
export ROSTER_ADMIN_PASSWORD=$pw
"$ROSTER" --data-dir "$work/data" directory set --file "$work/settings.toml" > /dev/null
"$ROSTER" --data-dir "$work/data" sync > /dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$ROSTER" --data-dir "$work/data" serve --listen "127.0.0.1:$port" 2> "$work/serve.log" &
server=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$port/login" && break; sleep 0.1; done
curl -s -o /dev/null -c "$work/cookies" -d "name=admin&password=$pw&next=/users" "http://127.0.0.1:$port/login"
echo "# Console search, N = $n users ($(git rev-parse --short HEAD), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| request | median (ms) | slowest (ms) |"
echo "|---|---:|---:|"
for q in "" "q=user4711" "q=number%2099" "q=user9999%40example" "q=nobody-matches" "offset=50000"; do
  times=()
  for _ in $(seq 20); do
    t=$(curl -s -o /dev/null -b "$work/cookies" -w '%{time_total}' "http://127.0.0.1:$port/users?$q")
    times+=("$t")
  done
  sorted=$(printf '%s\n' "${times[@]}" | sort -n)
  median=$(echo "$sorted" | sed -n '10p')
  slowest=$(echo "$sorted" | tail -1)
  awk -v q="$q" -v m="$median" -v s="$slowest" 'BEGIN { printf "| /users?%s | %.1f | %.1f |\n", q, m * 1000, s * 1000 }'
done
