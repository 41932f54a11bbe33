#!/usr/bin/env bash
# Installs what the project's lab (tests/lab/) needs on top of
# deploy/install-deps.sh: a real system-mode libvirt daemon with the QEMU
# driver, QEMU for x86 (guests run under TCG, no /dev/kvm needed), iproute2
# for namespaces and veth pairs, binutils to assemble the lab guest, and
# util-linux for unshare/nsenter. About 18 MiB to download.
#
# Kept apart from install-deps.sh so the plain build and the default test
# suite stay light; the lab tests call this (or skip) themselves.
# Idempotent: apt-get runs only when something is missing. Must run as root.
# Note: installing libvirt-daemon does not need a running libvirtd on the
# machine itself; the lab starts its own daemons inside namespaces.
set -euo pipefail

PKGS=(
  qemu-system-x86 libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients
  iproute2 binutils util-linux python3
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-lab-deps: all ${#PKGS[@]} packages already installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "install-lab-deps: need root to install: ${missing[*]}" >&2; exit 1; fi
else SUDO=""; fi

echo "install-lab-deps: installing ${#missing[@]} Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Debian's maintainer scripts try to start libvirtd/virtlogd through
# systemd or invoke-rc.d; where there is no init system that fails harmlessly,
# but a policy-rc.d that says "no" keeps it quiet and fast.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod 755 "$policy"
  made_policy=1
fi
cleanup() { if [ "$made_policy" = 1 ]; then $SUDO rm -f "$policy"; fi; }
trap cleanup EXIT
if ! $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"; then
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
echo "install-lab-deps: done"
