#!/usr/bin/env bash
# tests/compat/run-mixed.sh — the rolling-upgrade test: builds the previous
# release (tests/compat/PREVIOUS_RELEASE, from this repository's git history)
# into build-prev/, this tree into build-test/ if it is not built, and runs
# tests/compat/test_mixed_versions.py: a cluster of both releases through
# membership, node state, migrations both ways and two failovers.
# Needs the history (not a shallow clone). Prints PASS or FAIL; exit 0/1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
read -r PREV_VERSION PREV_COMMIT < <(grep -v '^#' "$ROOT/tests/compat/PREVIOUS_RELEASE")
echo "run-mixed: previous release $PREV_VERSION ($PREV_COMMIT)"
bash "$ROOT/tests/compat/build-release.sh" "$PREV_COMMIT" "$ROOT/build-prev"
if [ ! -x "$ROOT/build-test/meshvisor" ]; then
	cmake -S "$ROOT" -B "$ROOT/build-test" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$ROOT/build-test" -j "${MV_JOBS:-2}" --target meshvisor
fi
echo "run-mixed: this release $("$ROOT/build-test/meshvisor" version)"
export MV_PREVIOUS_MESHVISOR="$ROOT/build-prev/meshvisor"
PYTHONPATH="$ROOT/tests/integration${PYTHONPATH:+:$PYTHONPATH}" \
	python3 "$ROOT/tests/compat/test_mixed_versions.py" \
	--meshvisor "$ROOT/build-test/meshvisor" --port-base "${MV_PORT_BASE:-29500}" --port-count 40
