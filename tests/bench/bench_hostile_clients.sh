#!/usr/bin/env bash
# tests/bench/bench_hostile_clients.sh — issue 13's closing-note figures:
# the victim agent's peak RSS and loop lag (p99, max) under each hostile
# client of tests/integration/test_hostile_clients.py.
# Not part of the test suite: it measures (the test still asserts what it
# always asserts).
#
#   tests/bench/bench_hostile_clients.sh [--meshvisor build-test/meshvisor]
#                                        [--gap 31] [--port-base 29500]
#
# It runs the test with MV_HOSTILE_GAP_S=GAP: GAP seconds of quiet before
# each attack, so the lag window that `status` reports (the last 30 s of
# 50 ms probes) holds that attack and quiet only, and each row's peak RSS
# is VmHWM reset as the attack begins. Prints the test's table (one row per
# attack). About 8 x GAP + 60 s.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN="$ROOT/build-test/meshvisor"
GAP=31
PORT_BASE=29500
while [ $# -gt 0 ]; do
	case "$1" in
	--meshvisor) BIN="$2"; shift 2 ;;
	--gap) GAP="$2"; shift 2 ;;
	--port-base) PORT_BASE="$2"; shift 2 ;;
	*) echo "usage: $0 [--meshvisor PATH] [--gap SECONDS] [--port-base N]" >&2; exit 2 ;;
	esac
done
[ -x "$BIN" ] || { echo "no meshvisor binary at $BIN (build first)" >&2; exit 2; }
export PYTHONDONTWRITEBYTECODE=1 MV_HOSTILE_GAP_S="$GAP"
out="$(mktemp)"
# the test's files in a directory of its own (a run takes minutes: a sweep
# of /tmp/mvit-* by something else on the machine once took its CA away)
TMPDIR="$(mktemp -d /tmp/mvbench-hostile.XXXXXX)"
export TMPDIR
trap 'rm -f "$out"; rm -rf "$TMPDIR"' EXIT
rc=0
python3 "$ROOT/tests/integration/test_hostile_clients.py" --meshvisor "$BIN" \
	--port-base "$PORT_BASE" --port-count 50 --timeout $((GAP * 9 + 120)) >"$out" 2>&1 || rc=$?
# the table (its title line and the rows after it), then the summary line
sed -n '/FIGURES per attack/,/^\[/p' "$out" | sed '$d'
grep -E 'FIGURES victim|PASS|FAIL' "$out" || true
[ "$rc" -eq 0 ] || { echo "the test failed (exit $rc); its output:" >&2; tail -40 "$out" >&2; }
exit "$rc"
