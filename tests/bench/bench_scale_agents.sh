#!/usr/bin/env bash
# tests/bench/bench_scale_agents.sh — real agents at scale (issue 12).
# Not part of the test suite: it measures, it does not assert.
#
#   tests/bench/bench_scale_agents.sh [--n 20 --n 50 ...] [--idle-seconds 600]
#       [--port-base 30000] [--meshvisor build-test/meshvisor]
#       [--converge-timeout 300] [--json FILE]
#
# For each --n N (default: 20), a fresh cluster of N real agents on
# loopback (real mutual TLS, sealed datagrams, libvirt's test driver, one
# host file per agent with one HA VM), with the SHIPPED defaults: no swim
# and no failover section in the configs, log level info. Printed per N,
# each figure beside the issue's target:
#   converge     from the first agent's launch until every agent sees all
#                N members alive (`members` over one persistent RPC
#                connection per agent, polled)
#   then every VM is made HA (set-ha) and the benchmark waits until `ha`
#   on every agent counts N HA VMs, quorate, with 3 replicas of each.
#   idle window  --idle-seconds with no client traffic but the polling:
#                false deaths (members any agent showed suspect or dead
#                in the polls, and `member suspect`/`member dead` log
#                lines), CPU% per agent (utime+stime from /proc/PID/stat
#                over the window), private memory per agent at its end
#                (Private_Clean + Private_Dirty, /proc/PID/smaps_rollup),
#                peer-port TCP connections per agent (ESTABLISHED sockets
#                the agent owns to or from a peer port, /proc/net/tcp*),
#                and the status counters over the window (datagrams,
#                handshakes, evictions: what `status --json` reports).
#   kill -9      of the last agent: time until it is dead at every
#                survivor (their own since_unix_ms of the change), and
#                until its HA VM runs on another host (`vms` on n1).
# Figures that need the whole machine (N=100, 200) are meant to be taken
# with nothing else running; the box's load average is printed with them.
# Raises the open-files limit to the hard limit; needs only loopback.
# Every process it starts dies with it (mvtest: PR_SET_PDEATHSIG, killed
# by PID on exit, Ctrl-C or failure).
set -euo pipefail
# at N=200 an agent holds a few hundred descriptors, and the benchmark
# itself one RPC connection per agent
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
PYTHONDONTWRITEBYTECODE=1 exec python3 "$(dirname "${BASH_SOURCE[0]}")/bench_scale_agents.py" "$@"
