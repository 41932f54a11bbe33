#!/usr/bin/env bash
# tests/compat/build-release.sh COMMIT OUTDIR — builds the `meshvisor` binary
# of an earlier commit (a previous release) from this repository's git
# history into OUTDIR/meshvisor, in a temporary copy of that commit's tree
# (git archive), with its own CMake configuration and no tests. Reuses
# OUTDIR/meshvisor when OUTDIR/COMMIT says it was built from COMMIT.
set -euo pipefail

COMMIT="${1:?usage: build-release.sh COMMIT OUTDIR}"
OUT="${2:?usage: build-release.sh COMMIT OUTDIR}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
JOBS="${MV_JOBS:-2}"

if [ -x "$OUT/meshvisor" ] && [ "$(cat "$OUT/COMMIT" 2>/dev/null)" = "$COMMIT" ]; then
	echo "build-release: $OUT/meshvisor is $COMMIT already"
	exit 0
fi
if ! git -C "$ROOT" cat-file -e "$COMMIT^{commit}" 2>/dev/null; then
	echo "build-release: commit $COMMIT is not in this checkout's history" >&2
	echo "  (a shallow clone? run: git fetch --unshallow)" >&2
	exit 1
fi
WORK="$(mktemp -d /tmp/meshvisor-release.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
git -C "$ROOT" archive "$COMMIT" | tar -x -C "$WORK"
cmake -S "$WORK" -B "$WORK/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMV_TESTS=OFF >/dev/null
cmake --build "$WORK/build" -j "$JOBS" --target meshvisor >/dev/null
mkdir -p "$OUT"
cp "$WORK/build/meshvisor" "$OUT/meshvisor"
echo "$COMMIT" >"$OUT/COMMIT"
echo "build-release: built $("$OUT/meshvisor" version) from $COMMIT into $OUT/meshvisor"
