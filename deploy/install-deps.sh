#!/usr/bin/env bash
# Installs every build, run and test dependency of meshvisor from Debian 12's
# own packages. Idempotent: packages already present are not touched, and
# apt-get runs only when something is missing (deploy/apt-ensure.sh). Must run
# as root (or via sudo).
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config git
  libuv1-dev libssl-dev openssl
  libprotobuf-c-dev protobuf-c-compiler
  libvirt-dev libvirt-clients libvirt-daemon
  libcmocka-dev libjson-c-dev libxml2-dev libmicrohttpd-dev
  clang libclang-rt-14-dev clang-format
  procps iproute2 nftables python3
  debhelper dpkg-dev fakeroot bash-completion man-db
)

. "$(dirname "${BASH_SOURCE[0]}")/apt-ensure.sh"
apt_ensure install-deps "${PKGS[@]}"
