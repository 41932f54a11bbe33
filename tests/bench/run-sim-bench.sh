#!/bin/sh
# Builds and runs the membership simulator benchmark (virtual time).
#   tests/bench/run-sim-bench.sh [detect|false|traffic|big|all] [options]
# Options go to bench_sim_membership (--n, --runs, --minutes, --big, --full).
# BUILD_DIR (default build-bench, Release) is where it builds; JOBS the -j.
# A seed printed as "sim seed=N" replays with MV_SIM_SEED=N.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
jobs=${JOBS:-2}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMV_WERROR=ON >/dev/null
cmake --build "$build" -j"$jobs" --target bench_sim_membership >/dev/null
exec "$build/tests/bench/bench_sim_membership" "$@"
