# deploy/apt-ensure.sh — sourced by install-deps.sh and install-lab-deps.sh.
#
# apt_ensure WHO PKG... installs the Debian packages that are missing and
# says what it does, prefixed with WHO. Idempotent: with everything present
# it only prints one line. Needs root (or sudo). While it installs, a
# policy-rc.d that answers "no" keeps package scripts from starting daemons
# (libvirtd, virtlogd) on this machine; the project starts its own.
apt_ensure() {
  local who="$1"; shift
  local missing=() p
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$p")
    fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    echo "$who: all $# packages already installed"
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo=sudo; else
      echo "$who: need root to install: ${missing[*]}" >&2; return 1; fi
  fi
  echo "$who: installing ${#missing[@]} Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  local policy=/usr/sbin/policy-rc.d made_policy=0 rc=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
    $sudo chmod 755 "$policy"
    made_policy=1
  fi
  # an install from a stale package list fails: refresh it and try once more
  if ! $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    $sudo apt-get update -q && $sudo apt-get install -y -q --no-install-recommends \
      "${missing[@]}" || rc=$?
  fi
  if [ "$made_policy" = 1 ]; then $sudo rm -f "$policy"; fi
  [ "$rc" -eq 0 ] && echo "$who: done"
  return "$rc"
}
