#!/usr/bin/env bash
# tests/bench/bench_fd_serf.sh — meshvisor's failure detector beside
# HashiCorp Serf, agents side by side in network namespaces (issue 11).
# Measures; asserts nothing. Needs root. Installs Debian's serf and
# nftables when missing (deploy/apt-ensure.sh), then runs
# tests/bench/bench_fd_serf.py against this checkout (its docstring and
# docs/bench-fd-serf.md say what it measures); every argument is passed on:
#
#   tests/bench/bench_fd_serf.sh [--meshvisor PATH] [--sizes 5,20]
#       [--scenarios idle,crash,silent,pause,gray,loss] [--runs 3]
#       [--loss 19,36] [--minutes M] [--json FILE]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ "$(id -u)" -ne 0 ]; then
	echo "bench_fd_serf: needs root (network namespaces, nftables)" >&2
	exit 2
fi
# shellcheck source=../../deploy/apt-ensure.sh
. "$ROOT/deploy/apt-ensure.sh"
apt_ensure bench_fd_serf serf nftables
export PYTHONDONTWRITEBYTECODE=1
exec python3 "$ROOT/tests/bench/bench_fd_serf.py" --root "$ROOT" "$@"
