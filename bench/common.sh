# Shared by the benchmark scripts (sourced, not run): the tools they need, the release build, and the wait
# for a quiet machine, since timings mean little on a busy one.

# require_ldap_tools SCRIPT: slapd and ldapsearch (Debian packages slapd and ldap-utils) are installed.
require_ldap_tools() {
  local tool
  for tool in /usr/sbin/slapd ldapsearch; do
    command -v "$tool" >/dev/null || {
      echo "$1: $tool not found: apt-get install -y slapd ldap-utils" >&2
      exit 1
    }
  done
}

# build_release: builds roster and the benchmark tools; sets target_dir.
build_release() {
  echo "==> cargo build --release -p roster -p roster-bench" >&2
  cargo build --release --quiet -p roster -p roster-bench
  target_dir=$(cargo metadata --format-version 1 --no-deps | sed 's/.*"target_directory":"\([^"]*\)".*/\1/')
}

# wait_for_quiet_machine MAX_LOAD MAX_WAIT: waits up to MAX_WAIT seconds for the 1-minute load average to
# drop below MAX_LOAD (e.g. after the build). The load before and after is recorded in the results either way.
wait_for_quiet_machine() {
  local max_load=$1 max_wait=$2 waited=0
  while awk -v l="$(cut -d' ' -f1 /proc/loadavg)" -v m="$max_load" 'BEGIN { exit !(l >= m) }' &&
    ((waited < max_wait)); do
    ((waited % 30 == 0)) && echo "==> load average $(cut -d' ' -f1-3 /proc/loadavg): waiting for it to drop below $max_load" >&2
    sleep 5
    waited=$((waited + 5))
  done
  echo "==> load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs" >&2
}

# half_the_cpus: the default load to wait for.
half_the_cpus() {
  awk -v n="$(nproc)" 'BEGIN { print n / 2 }'
}
