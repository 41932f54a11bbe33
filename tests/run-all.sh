#!/usr/bin/env bash
# tests/run-all.sh — the whole meshvisor test suite, the README's test
# command and what CI runs (.ci/run). On a fresh Debian 12, as root:
#
#     sudo tests/run-all.sh        (or: bash tests/run-all.sh)
#
# Steps, each printed as it starts and timed:
#   1. deploy/install-deps.sh                (idempotent apt-get)
#   1b. deploy/install-lab-deps.sh           (libvirtd + QEMU for tests/lab)
#   1c. tests/check-format.sh                (clang-format, .clang-format)
#   2. build-test/  normal build, -Werror    ctest: unit, sim, integration, lab
#   2b. build-deb/  deploy/build-deb.sh     the Debian package, then
#                   tests/pkg/test-deb.sh    installed into a throwaway root
#   2c. tests/compat/run-mixed.sh             the previous release (built from
#                   git history) and this one in one cluster
#   3. build-asan/  -DMV_SANITIZE=ON         ctest -L 'unit|sim|shutdown' under ASan+UBSan
#   4. build-fuzz/  CC=clang -DMV_FUZZ=ON    ctest -L fuzz (seed replay), then
#                                            each fuzz target for a bounded time
# Every step runs even if an earlier one failed (a failed build skips its
# own tests); the script prints a summary and exits non-zero on any failure.
#
# Knobs (environment):
#   MV_JOBS=2           build and ctest parallelism
#   MV_FUZZ_SECONDS=20  fuzzing time per target (0 skips the timed runs)
#   MV_SKIP_DEPS=1      do not run install-deps (e.g. no network)
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1

JOBS="${MV_JOBS:-2}"
FUZZ_SECONDS="${MV_FUZZ_SECONDS:-20}"
SUITE_START=$(date +%s)

declare -a SUMMARY=()
FAILED=0

say() { printf '\n==> [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# step NAME CMD... — runs CMD, records NAME ok/FAILED with its duration.
step() {
	local name="$1"; shift
	say "$name"
	echo "    \$ $*"
	local t0=$(date +%s) rc
	"$@"
	rc=$?
	local dt=$(( $(date +%s) - t0 ))
	if [ "$rc" -eq 0 ]; then
		SUMMARY+=("$(printf '  %-8s %-58s %4ss' ok "$name" "$dt")")
	else
		SUMMARY+=("$(printf '  %-8s %-58s %4ss  (exit %s)' FAILED "$name" "$dt" "$rc")")
		FAILED=1
	fi
	return "$rc"
}

skip() {
	say "skipped: $1 ($2)"
	SUMMARY+=("$(printf '  %-8s %-58s        (%s)' skipped "$1" "$2")")
}

configure_and_build() { # DIR [cmake args...]
	local dir="$1"; shift
	cmake -S "$ROOT" -B "$ROOT/$dir" "$@" && cmake --build "$ROOT/$dir" -j "$JOBS"
}

run_ctest() { # DIR [ctest args...]  (600 s cap for tests that set no TIMEOUT)
	local dir="$1"; shift
	(cd "$ROOT/$dir" && ctest --output-on-failure -j "$JOBS" --timeout 600 "$@")
}

# ---- 1. dependencies -------------------------------------------------------
if [ "${MV_SKIP_DEPS:-0}" = 1 ]; then
	skip "install dependencies" "MV_SKIP_DEPS=1"
else
	step "install dependencies (deploy/install-deps.sh)" bash "$ROOT/deploy/install-deps.sh"
	step "install lab dependencies: libvirtd, QEMU (deploy/install-lab-deps.sh)" \
		bash "$ROOT/deploy/install-lab-deps.sh"
fi

# ---- 1c. layout -------------------------------------------------------------
step "format: clang-format --dry-run --Werror (tests/check-format.sh)" \
	bash "$ROOT/tests/check-format.sh"

# ---- 2. normal build: every test -------------------------------------------
if step "build-test: configure and build (-Werror)" \
	configure_and_build build-test -DCMAKE_BUILD_TYPE=RelWithDebInfo; then
	step "build-test: ctest (unit, sim, integration, lab)" run_ctest build-test
else
	skip "build-test: ctest" "build failed"
fi

# ---- 2b. the Debian package: built, installed into a throwaway root ----------
if step "package: build the .deb (deploy/build-deb.sh)" bash "$ROOT/deploy/build-deb.sh" "$ROOT/build-deb"; then
	step "package: install it into a throwaway root and check it (tests/pkg/test-deb.sh)" \
		bash "$ROOT/tests/pkg/test-deb.sh" "$(ls "$ROOT"/build-deb/meshvisor_*.deb | head -n 1)"
else
	skip "package: install and check" "package build failed"
fi

# ---- 2c. rolling upgrade: the previous release beside this one -------------
# (built from this checkout's git history: a clone without that commit, e.g.
# a shallow one, cannot build it, and the step says so instead of passing)
read -r _prev_version _prev_commit < <(grep -v '^#' "$ROOT/tests/compat/PREVIOUS_RELEASE")
if [ ! -x "$ROOT/build-test/meshvisor" ]; then
	skip "rolling upgrade: $_prev_version beside this release" "build failed"
elif ! git -C "$ROOT" cat-file -e "$_prev_commit^{commit}" 2>/dev/null; then
	skip "rolling upgrade: $_prev_version beside this release" \
		"commit $_prev_commit not in this clone's history (git fetch --unshallow)"
else
	step "rolling upgrade: $_prev_version beside this release (tests/compat/run-mixed.sh)" \
		bash "$ROOT/tests/compat/run-mixed.sh"
fi

# ---- 3. sanitizers: unit and simulator tests ---------------------------------
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
if step "build-asan: configure and build (-DMV_SANITIZE=ON)" \
	configure_and_build build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMV_SANITIZE=ON; then
	step "build-asan: ctest -L 'unit|sim|shutdown' (ASan+UBSan)" run_ctest build-asan -L 'unit|sim|shutdown'
else
	skip "build-asan: ctest" "build failed"
fi

# ---- 4. fuzzing ------------------------------------------------------------
fuzz_build() {
	CC=clang cmake -S "$ROOT" -B "$ROOT/build-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DMV_FUZZ=ON && cmake --build "$ROOT/build-fuzz" -j "$JOBS" --target fuzz
}

fuzz_run() { # NAME — fuzz one target for FUZZ_SECONDS from its seeds
	local name="$1" bin="$ROOT/build-fuzz/tests/fuzz/$1"
	local work="$ROOT/build-fuzz/fuzz-work/$name" seeds="$ROOT/tests/fuzz/corpus/$name"
	mkdir -p "$work/corpus" "$work/artifacts"
	local dirs=("$work/corpus")
	[ -d "$seeds" ] && dirs+=("$seeds")
	# the new-inputs corpus is first, so the checked-in seeds stay untouched
	"$bin" -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
		-print_final_stats=1 -artifact_prefix="$work/artifacts/" "${dirs[@]}" \
		>"$work/fuzz.log" 2>&1
	local rc=$?
	grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added)' "$work/fuzz.log" |
		sed 's/^/    /'
	if [ "$rc" -ne 0 ]; then
		echo "    $name FAILED (exit $rc); last lines of $work/fuzz.log:"
		tail -n 60 "$work/fuzz.log" | sed 's/^/    | /'
		ls "$work/artifacts" 2>/dev/null | sed "s|^|    crash input: $work/artifacts/|"
	fi
	return "$rc"
}

if ! command -v clang >/dev/null 2>&1; then
	skip "build-fuzz" "clang not installed"
elif step "build-fuzz: configure and build (CC=clang -DMV_FUZZ=ON)" fuzz_build; then
	step "build-fuzz: ctest -L fuzz (replay seed corpora)" run_ctest build-fuzz -L fuzz
	if [ "$FUZZ_SECONDS" -gt 0 ]; then
		for bin in "$ROOT"/build-fuzz/tests/fuzz/fuzz_*; do
			[ -x "$bin" ] && [ -f "$bin" ] || continue
			step "fuzz $(basename "$bin") for ${FUZZ_SECONDS}s" fuzz_run "$(basename "$bin")"
		done
	else
		skip "timed fuzzing" "MV_FUZZ_SECONDS=0"
	fi
else
	skip "build-fuzz: ctest and fuzzing" "build failed"
fi

# ---- summary ---------------------------------------------------------------
TOTAL=$(( $(date +%s) - SUITE_START ))
say "summary (wall time $((TOTAL / 60))m$((TOTAL % 60))s)"
printf '%s\n' "${SUMMARY[@]}"
if [ "$FAILED" -ne 0 ]; then
	echo "run-all: FAILED"
	exit 1
fi
echo "run-all: all steps passed"
exit 0
