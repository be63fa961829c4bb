#!/usr/bin/env bash
# Installs the Debian packages given as arguments that are not installed yet (used by run.sh and test.sh).
set -euo pipefail
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
((${#missing[@]})) || exit 0
echo "==> installing ${missing[*]}"
sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
# sudo drops the environment: pass DEBIAN_FRONTEND explicitly.
[[ ${#sudo_cmd[@]} -eq 0 ]] || sudo_cmd+=(env DEBIAN_FRONTEND=noninteractive)
"${sudo_cmd[@]}" apt-get update -qq
# policy-rc.d 101: don't start the packaged system services; the tests start their own.
remove_policy=0
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo_cmd[@]}" tee /usr/sbin/policy-rc.d >/dev/null
  "${sudo_cmd[@]}" chmod +x /usr/sbin/policy-rc.d
  remove_policy=1
fi
"${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}"
if [[ $remove_policy == 1 ]]; then "${sudo_cmd[@]}" rm -f /usr/sbin/policy-rc.d; fi
