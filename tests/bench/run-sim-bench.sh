#!/bin/sh
# Builds and runs the membership simulator benchmark (virtual time).
#   tests/bench/run-sim-bench.sh [detect|false|traffic|big|bootstrap|scale|all] [options]
# Options go to bench_sim_membership (--n, --runs, --minutes, --big,
# --big-secs, --window-s, --rss-cap-mib, --full). Issue 12's figures:
#   run-sim-bench.sh bootstrap            2,000 started at once -> one view
#   run-sim-bench.sh scale --n 10000      idle B/node/s at 1k, 2k, 5k, 10k
#   run-sim-bench.sh big --big-secs 600   10,000 nodes, 10 simulated minutes
# BUILD_DIR (default build-bench, Release) is where it builds; JOBS the -j.
# A seed printed as "sim seed=N" replays with MV_SIM_SEED=N.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
jobs=${JOBS:-2}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMV_WERROR=ON >/dev/null
cmake --build "$build" -j"$jobs" --target bench_sim_membership >/dev/null
exec "$build/tests/bench/bench_sim_membership" "$@"
