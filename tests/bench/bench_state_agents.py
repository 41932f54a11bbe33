#!/usr/bin/env python3
"""bench_state_agents.py — how long a capacity change on one host takes to be
visible on every other node, with 5 real agents on loopback (real TLS,
default protocol settings, libvirt's test driver). Measures; asserts nothing.

    python3 tests/bench/bench_state_agents.py [--meshvisor build-test/meshvisor]
                                              [--changes 20] [--port-base 28500]

Each change is a VM started or destroyed on n1 (through n1's RPC port),
which moves n1's allocated vCPUs and memory: a significant change that n1
pushes at once. The times come from the agents' own logs (millisecond UTC
timestamps, one clock for all): n1's "published node state version=V"
line, and each observer's first "host state updated name=n1 ... version=V"
(or later) line. Figure per change: the slowest observer.
"""
import argparse
import datetime
import os
import re
import statistics
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import mvtest  # noqa: E402

N = 5
TS = r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z"


def ts(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%f").timestamp()


def published(log):
    out = {}
    for m in re.finditer(TS + r" DEBUG state published node state version=(\d+)", log, re.M):
        out.setdefault(int(m.group(2)), ts(m.group(1)))
    return out


def learned(log, name):
    out = []
    pat = TS + r" DEBUG state host state (?:learned|updated) name=%s incarnation=\d+ version=(\d+)"
    for m in re.finditer(pat % re.escape(name), log, re.M):
        out.append((ts(m.group(1)), int(m.group(2))))
    return out


def main():
    ap = argparse.ArgumentParser()
    default_bin = ""
    for cand in ("build-test/meshvisor", "build/meshvisor"):
        if os.path.exists(os.path.join(ROOT, cand)):
            default_bin = os.path.join(ROOT, cand)
            break
    ap.add_argument("--meshvisor", default=default_bin)
    ap.add_argument("--changes", type=int, default=20)
    ap.add_argument("--port-base", type=int, default=28500)
    a = ap.parse_args()
    if not a.meshvisor:
        sys.exit("build meshvisor first (tests/run-all.sh or deploy/local-cluster.sh)")

    class Args:
        meshvisor = a.meshvisor
        testcert = None
        port_base = a.port_base
        port_count = 100

    t = mvtest.Test(Args)
    try:
        c = t.cluster(N, defaults=True, agent_extra={"log_level": "debug"})
        c.start_all(seed="n1")
        c.wait_converged(timeout=60)
        time.sleep(3)  # initial state spread and anti-entropy settle
        n1 = c["n1"]
        marks = []
        for i in range(a.changes):
            op = "destroy" if i % 2 == 0 else "start"
            n1.cli("vm", op, "test")  # the test driver's own VM on n1
            marks.append(time.time())
            time.sleep(1.5)
        time.sleep(2)
        pub = published(n1.log_text())
        obs = {x.name: learned(x.log_text(), "n1") for x in c.running() if x.name != "n1"}
        spreads, per_obs = [], {o: [] for o in obs}
        for v, t_pub in sorted(pub.items()):
            if t_pub < marks[0] - 0.5:
                continue  # start-up publications
            worst = 0.0
            ok = True
            for o, events in obs.items():
                first = next((te for te, ver in events if ver >= v), None)
                if first is None:
                    ok = False
                    break
                per_obs[o].append(first - t_pub)
                worst = max(worst, first - t_pub)
            if ok:
                spreads.append(worst)
        if not spreads:
            sys.exit("no change was measured (is the agent logging at debug?)")
        spreads.sort()
        p99 = spreads[min(len(spreads) - 1, int(round(0.99 * (len(spreads) - 1))))]
        print()
        print("meshvisor node-state spread: %d real agents on loopback, default settings, %s" %
              (N, a.meshvisor))
        print("changes measured: %d (VM started/destroyed on n1; urgent push)" % len(spreads))
        print("per change, slowest observer (ms): %s" %
              " ".join("%.0f" % (s * 1000) for s in spreads))
        print("%-52s %s" % ("capacity change on n1 visible on all 4 others, median",
                            "%.1f ms" % (statistics.median(spreads) * 1000)))
        print("%-52s %s" % ("... max", "%.1f ms" % (max(spreads) * 1000)))
        print("%-52s %s" % ("... p99", "%.1f ms" % (p99 * 1000)))
        for o in sorted(per_obs):
            if per_obs[o]:
                print("  %s: median %.1f ms, max %.1f ms" %
                      (o, statistics.median(per_obs[o]) * 1000, max(per_obs[o]) * 1000))
    except Exception as e:
        mvtest.log("benchmark failed: %s" % e)
        t.dump_logs()
        raise
    finally:
        mvtest._cleanup()


if __name__ == "__main__":
    main()
