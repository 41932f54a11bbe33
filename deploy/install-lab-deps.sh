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

. "$(dirname "${BASH_SOURCE[0]}")/apt-ensure.sh"
apt_ensure install-lab-deps "${PKGS[@]}"
