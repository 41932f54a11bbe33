#!/usr/bin/env bash
# tests/bench/bench_agents.sh — real-agent figures for the closing note.
# Not part of the test suite: it measures, it does not assert.
#
#   tests/bench/bench_agents.sh [--meshvisor build-test/meshvisor] [--runs 5]
#                               [--idle-seconds 30] [--port-base 28000]
#
# With 5 real agents on loopback, real TLS and the DEFAULT protocol settings
# (no swim section in the configs):
#   1. kill -9 to `dead` at every other member, --runs times (a different
#      victim each run; it is restarted under the same name on a new port
#      between runs). The time of death at each member is that member's own
#      record of the change (members --json since_unix_ms) minus the wall
#      time of the kill; the figure per run is the latest member. Median and
#      max over the runs, against the target "< 5 s at every member".
#      The first verdict's cause ("suspicion timeout after N ms") splits each
#      run into time-to-first-suspicion and the suspicion timeout.
#   2. RSS and CPU of idle agents in the 5-agent cluster, from /proc, over
#      --idle-seconds with no client traffic.
# Uses the integration-test harness (tests/integration/mvtest.py) for
# certificates, configs and process cleanup.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN=""
for cand in "$ROOT/build-test/meshvisor" "$ROOT/build/meshvisor"; do
	[ -x "$cand" ] && { BIN="$cand"; break; }
done
export PYTHONDONTWRITEBYTECODE=1
exec python3 - --root "$ROOT" --default-meshvisor "$BIN" "$@" <<'PY'
import argparse
import os
import re
import signal
import statistics
import sys
import time

ap = argparse.ArgumentParser(prog="bench_agents.sh")
ap.add_argument("--root", required=True)
ap.add_argument("--default-meshvisor", default="")
ap.add_argument("--meshvisor", default=None)
ap.add_argument("--runs", type=int, default=5)
ap.add_argument("--idle-seconds", type=float, default=30.0)
ap.add_argument("--port-base", type=int, default=28000)
a = ap.parse_args()
sys.path.insert(0, os.path.join(a.root, "tests", "integration"))
import mvtest  # noqa: E402
from mvtest import log  # noqa: E402

binary = a.meshvisor or a.default_meshvisor
if not binary or not os.access(binary, os.X_OK):
    sys.exit("bench_agents: no meshvisor binary (build first, or pass --meshvisor PATH)")

N = 5
TARGET_S = 5.0
HZ = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def rss_kib(pid, key="VmRSS:"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


class Args:
    meshvisor = binary
    testcert = None
    port_base = a.port_base
    port_count = 100


def detection_run(c, victim, others):
    """kill -9 victim; returns {observer: seconds to dead} from each
    observer's own since_unix_ms (polled over persistent RPC connections)."""
    ca, cert, key = c.client_creds("viewer")
    conns = {o.name: mvtest.tls_client("127.0.0.1", o.rpc_port, ca, cert, key) for o in others}
    try:
        t_kill_wall = time.time()
        t_kill = time.monotonic()
        os.kill(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait()
        dead_at = {}
        req = 1
        while len(dead_at) < len(others):
            if time.monotonic() - t_kill > 120:
                raise mvtest.TestFailure("%s not dead everywhere after 120 s: %s" %
                                         (victim.name, dead_at))
            for o in others:
                if o.name in dead_at:
                    continue
                req += 1
                r = mvtest.rpc_call(conns[o.name], req, "members")
                for m in r["body"]:
                    if m["name"] == victim.name and m["state"] == mvtest.mvwire.DEAD:
                        polled = time.monotonic() - t_kill
                        dead_at[o.name] = polled
            time.sleep(0.02)
    finally:
        for s in conns.values():
            s.close()
    # refine with the members' own timestamps of the change
    out, causes = {}, {}
    for o in others:
        m = o.members()[victim.name]
        since = m.get("since_unix_ms") or 0
        exact = since / 1000.0 - t_kill_wall
        out[o.name] = exact if 0 < exact <= dead_at[o.name] + 0.5 else dead_at[o.name]
        causes[o.name] = m.get("cause", "")
    return out, causes


def main(t):
    c = t.cluster(N, defaults=True, agent_extra={"log_level": "info"})
    c.start_all(seed="n1")
    c.wait_converged(timeout=60)
    time.sleep(3)

    runs = []
    suspect_at = []
    victims = ["n%d" % (2 + i % (N - 1)) for i in range(a.runs)]
    for i, vname in enumerate(victims):
        victim = c[vname]
        others = [x for x in c.running() if x is not victim]
        per, causes = detection_run(c, victim, others)
        last = max(per.values())
        runs.append(last)
        first = min(per, key=per.get)
        mt = re.search(r"after (\d+) ms", causes[first])
        if mt:  # where the time went: until the first suspicion, then the timeout
            suspect_at.append(per[first] - int(mt.group(1)) / 1000.0)
        log("run %d: kill -9 %s -> dead at all %d others: first %.2fs, last %.2fs (%s); "
            "first verdict by %s: %s" %
            (i + 1, vname, len(others), per[first], last,
             ", ".join("%s %.2f" % kv for kv in sorted(per.items())), first, causes[first]))
        victim.peer_port = t.port()
        victim.rpc_port = t.port()
        victim.start(join=[c["n1"].peer_addr])
        c.wait_converged(timeout=90)
        time.sleep(3)  # let the newcomer settle into everyone's probe order

    # idle: no client traffic while we watch /proc
    c.wait_converged(timeout=30)
    time.sleep(2)
    agents = c.running()
    t0 = time.monotonic()
    c0 = {x.name: cpu_ticks(x.proc.pid) for x in agents}
    time.sleep(a.idle_seconds)
    dt = time.monotonic() - t0
    cpu = {x.name: 100.0 * (cpu_ticks(x.proc.pid) - c0[x.name]) / HZ / dt for x in agents}
    rss = {x.name: rss_kib(x.proc.pid) for x in agents}
    hwm = {x.name: rss_kib(x.proc.pid, "VmHWM:") for x in agents}
    for x in agents:
        log("idle %s: CPU %.2f%%, RSS %d KiB (peak %d KiB)" %
            (x.name, cpu[x.name], rss[x.name], hwm[x.name]))
    c.wait_converged(timeout=30)

    med, mx = statistics.median(runs), max(runs)
    rows = [
        ("kill -9 -> first suspicion (derived), median / max",
         "%.2f / %.2f s" % (statistics.median(suspect_at), max(suspect_at))
         if suspect_at else "n/a", "-", ""),
        ("kill -9 -> dead at every member, median (%d runs)" % len(runs), "%.2f s" % med,
         "< %.0f s" % TARGET_S, "ok" if med < TARGET_S else "MISSED"),
        ("kill -9 -> dead at every member, max", "%.2f s" % mx, "< %.0f s" % TARGET_S,
         "ok" if mx < TARGET_S else "MISSED"),
        ("idle agent RSS (n1 / max of 5)", "%.1f / %.1f MiB" % (rss["n1"] / 1024.0,
                                                               max(rss.values()) / 1024.0),
         "-", ""),
        ("idle agent CPU over %.0f s (n1 / max of 5)" % dt,
         "%.2f%% / %.2f%%" % (cpu["n1"], max(cpu.values())), "-", ""),
    ]
    print()
    print("meshvisor real-agent benchmark: %d agents on loopback, default settings, %s" %
          (N, binary))
    print("runs (s): %s" % " ".join("%.2f" % r for r in runs))
    w = max(len(r[0]) for r in rows)
    print("%-*s  %-18s  %-8s  %s" % (w, "measure", "value", "target", ""))
    for r in rows:
        print("%-*s  %-18s  %-8s  %s" % (w, r[0], r[1], r[2], r[3]))


def run():
    t = mvtest.Test(Args)
    try:
        main(t)
    except Exception as e:
        log("benchmark failed: %s" % e)
        t.dump_logs()
        raise
    finally:
        mvtest._cleanup()


signal.alarm(0)
run()
PY
