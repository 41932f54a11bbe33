#!/usr/bin/env bash
# Installs every build, run and test dependency of meshvisor from Debian 12's
# own packages. Idempotent: packages already present are not touched, and
# apt-get runs only when something is missing. Must run as root (or via sudo).
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git
  libuv1-dev libssl-dev openssl
  libprotobuf-c-dev protobuf-c-compiler
  libvirt-dev libvirt-clients libvirt-daemon
  libcmocka-dev libjson-c-dev libxml2-dev
  clang libclang-rt-14-dev
  procps iproute2 python3
)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PKGS[@]} packages already installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; fi
else SUDO=""; fi

echo "install-deps: installing ${#missing[@]} Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "install-deps: done"
