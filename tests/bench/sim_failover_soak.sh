#!/bin/sh
# Soak of the failover simulator: fresh batches of randomized schedules
# (crashes, partitions, loss, gray hosts, quick reboots, agent restarts,
# watchdog resets, force-leaves), each checked for safety (O1..O5, after
# every step) and liveness (every HA VM that should run runs within 150 s
# of the heal). The suite runs one fixed batch; this explores new ones and
# prints what it measured: schedules run, safety violations, liveness
# failures (each with its replay command), heal -> running p50/p99/max.
#   tests/bench/sim_failover_soak.sh [batches] [schedules per batch]
# (default 5 x 2000). BUILD_DIR (default build-bench, Release) is where it
# builds. A failing schedule replays with the printed MV_SIM_SEED=N.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$root/build-bench}
batches=${1:-5}
per=${2:-2000}
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DMV_WERROR=ON >/dev/null
cmake --build "$build" -j"${JOBS:-2}" --target test_sim_failover >/dev/null
bin="$build/tests/sim/test_sim_failover"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
total=0 bad=0 unsafe=0
i=0
while [ "$i" -lt "$batches" ]; do
	i=$((i + 1))
	MV_SIM_FRESH=1 MV_SIM_SCHEDULES="$per" MV_SIM_TEST=test_randomized_schedules "$bin" \
		>"$log" 2>&1 || true
	master=$(sed -n 's/^fw master seed=\([0-9]*\).*/\1/p' "$log")
	fails=$(grep -c "FAILED:" "$log" || true)
	viol=$(sed -n 's/.*safety violations \([0-9]*\).*/\1/p' "$log")
	heal=$(sed -n 's/^ *heal -> every HA VM that should run runs: //p' "$log")
	echo "batch $i: master $master, $per schedules: $fails failed ($viol safety violations); heal -> running $heal"
	grep -A1 "FAILED:" "$log" | sed -n 's/^ *\(schedule .*\)$/    \1/p; s/^ *replay: /      replay: /p'
	total=$((total + per))
	bad=$((bad + fails))
	unsafe=$((unsafe + ${viol:-0}))
done
echo "soak: $total schedules, $bad failed ($unsafe safety violations)"
