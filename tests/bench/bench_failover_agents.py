#!/usr/bin/env python3
"""bench_failover_agents.py — host death to all its HA VMs running elsewhere,
with 5 real agents on loopback (real TLS, libvirt's test driver, one host
file per agent). Measures; asserts nothing about timing.

    python3 tests/bench/bench_failover_agents.py [--meshvisor build/meshvisor]
        [--runs 5] [--vms 10] [--sets default,short] [--port-base 28600]

Each run starts a fresh cluster of 5 agents (n1..n5) with the SHIPPED SWIM
defaults (no "swim" section) and, for the "default" set, no "failover"
section either (the shipped fence_after_ms 10000, fence_margin_ms 3000,
heartbeat_ms 1000). The "short" set (optional, clearly labelled) only
changes failover.fence_after_ms/fence_margin_ms to SHORT_FENCE.

n5 runs --vms HA VMs (set-ha, distinct priorities); the others run none.
Once every agent's `ha` reports them all, quorate, with R = 3 replicas of
each definition held, n5 is killed with SIGKILL: with the test driver (an
in-process hypervisor) that is the death of the whole host, and nobody can
reach its libvirt, so the survivors must wait out the fence deadline
(F + margin from learning the plan: by design).

Where the times come from (one clock: all agents on this machine):
  kill        the benchmark's time.time() just before kill(2)
  detection   first `member-dead n5` event (unix_ms) on any survivor, and
              on the last survivor to see it (`meshvisor events --json`)
  chosen      `failovers --json` chosen_unix_ms (earliest reporter)
  fenced      `failovers --json` fenced_unix_ms (latest reporter: the last
              target allowed to restart), fence_how
  restarted   first `vm-restarted` event per VM (unix_ms, any survivor);
              "last running" is the latest of those, checked against
              `vms --json` (every VM running on exactly one survivor)
Splits: detection = kill -> first member-dead; plan = first member-dead ->
chosen; fence wait = chosen -> fenced; restart = fenced -> last VM
restarted; total = kill -> last VM restarted.
"""
import argparse
import os
import signal
import statistics
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.dont_write_bytecode = True
import mvtest  # noqa: E402

N = 5
DEAD = "n5"
GIB = 1024 * 1024
SHORT_FENCE = {"fence_after_ms": 3000, "fence_margin_ms": 1000}
SETS = {
    "default": (None, "shipped defaults: heartbeat 1000 ms, fence_after 10000 ms, "
                      "margin 3000 ms"),
    "short": (SHORT_FENCE, "SHORTER FENCE (not the defaults): heartbeat 1000 ms, fence_after "
                           "%d ms, margin %d ms" % (SHORT_FENCE["fence_after_ms"],
                                                    SHORT_FENCE["fence_margin_ms"])),
}


def uuid_of(i):
    return "6d657368-0005-00be-0000-%012d" % i




def one_run(a, run_no, fence, n_vms):
    class Args:
        meshvisor = a.meshvisor
        testcert = None
        port_base = a.port_base + 20 * run_no
        port_count = 20

    t = mvtest.Test(Args)
    try:
        files = {}
        for i in range(1, N + 1):
            name = "n%d" % i
            doms = []
            if name == DEAD:
                doms = [dict(name="ha-%02d" % k, uuid=uuid_of(k), vcpus=1, memory_kib=GIB)
                        for k in range(n_vms)]
            files[name] = mvtest.write_host_xml(os.path.join(t.tmp, "%s.xml" % name), 32,
                                                64 * GIB, doms)
        extra = {"log_level": "info"}
        if fence:
            extra["failover"] = dict(fence)
        c = t.cluster(N, defaults=True, agent_extra=extra)
        c.start_each({n: {"libvirt_uri": "test://" + files[n]} for n in files})
        c.wait_converged(timeout=60)
        c.wait_states(timeout=60)
        n1 = c["n1"]
        vms = ["ha-%02d" % k for k in range(n_vms)]
        for k, vm in enumerate(vms):
            r = n1.cli("vm", "set-ha", vm, "on", "--priority", str(1000 - k))
            mvtest.check(r.returncode == 0, "set-ha %s: %s" % (vm, r.stderr))
        survivors = [c["n%d" % i] for i in range(1, N) if "n%d" % i != DEAD]

        def ready():
            docs = [x.ha() for x in c.running()]
            if not all(d.get("ha_vms") == n_vms and d.get("quorate") and
                       d.get("alive_voters") == N for d in docs):
                return None
            held = sum(x.ha().get("replicas_held", 0) for x in survivors)
            return held if held >= 3 * n_vms else None
        mvtest.wait_until(ready, 90, "`ha`: %d HA VMs, quorate, %d replicas on the others" %
                          (n_vms, 3 * n_vms), 0.5)
        time.sleep(1.0)

        dead = c[DEAD]
        t_kill = time.time()
        os.kill(dead.proc.pid, signal.SIGKILL)
        dead.wait_exit(5)

        def all_running():
            seen = {}
            for v in n1.cli_json("vms")["vms"]:
                if v["name"] in vms and v["state"] == "running" and v["node"] != DEAD:
                    seen.setdefault(v["name"], []).append(v["node"])
            if len(seen) == n_vms and all(len(h) == 1 for h in seen.values()):
                return seen
            return None
        placed = mvtest.wait_until(all_running, 180, "all %d HA VMs running on exactly one "
                                   "survivor (n1's view)" % n_vms, 0.1)
        t_seen = time.time()
        time.sleep(0.5)

        evs = {x.name: x.events() for x in survivors}
        fos = {}
        for x in survivors:
            rows = [f for f in x.cli_json("failovers")["failovers"] if f["dead"] == DEAD]
            mvtest.check(rows, "%s lists no failover of %s" % (x.name, DEAD))
            fos[x.name] = rows
        dead_ms = [min(e["unix_ms"] for e in ev if e["kind"] == "member-dead" and
                       e["node"] == DEAD and e["unix_ms"] >= t_kill * 1000)
                   for ev in evs.values()
                   if any(e["kind"] == "member-dead" and e["node"] == DEAD for e in ev)]
        mvtest.check(dead_ms, "no member-dead event for %s" % DEAD)
        round0 = [f for rows in fos.values() for f in rows if f["round"] == 0]
        chosen_ms = min(f["chosen_unix_ms"] for f in round0 if f["chosen_unix_ms"])
        fenced_ms = max(f["fenced_unix_ms"] for f in round0 if f["fenced_unix_ms"])
        hows = sorted(set(f["fence_how"] for f in round0))
        rounds = max(f["round"] for rows in fos.values() for f in rows)
        restarted = {}
        for ev in evs.values():
            for e in ev:
                if e["kind"] == "vm-restarted" and e["vm"] in vms and \
                        e["unix_ms"] >= t_kill * 1000:
                    restarted[e["vm"]] = min(restarted.get(e["vm"], 1 << 62), e["unix_ms"])
        mvtest.check(len(restarted) == n_vms, "vm-restarted events for %d of %d VMs" %
                     (len(restarted), n_vms))
        last_ms = max(restarted.values())
        k = t_kill * 1000.0
        r = {
            "detect": min(dead_ms) - k,
            "detect_all": max(dead_ms) - k,
            "plan": chosen_ms - min(dead_ms),
            "fence": fenced_ms - chosen_ms,
            "restart": last_ms - fenced_ms,
            "total": last_ms - k,
            "polled": (t_seen - t_kill) * 1000.0,
            "how": hows,
            "rounds": rounds,
            "targets": sorted(set(h[0] for h in placed.values())),
            "coordinator": sorted(set(f["coordinator"] for f in round0)),
        }
        return r
    except Exception:
        t.dump_logs()
        raise
    finally:
        mvtest._cleanup()


def fmt(ms):
    return "%8.0f" % ms


def main():
    ap = argparse.ArgumentParser()
    default_bin = ""
    for cand in ("build/meshvisor", "build-test/meshvisor"):
        if os.path.exists(os.path.join(ROOT, cand)):
            default_bin = os.path.join(ROOT, cand)
            break
    ap.add_argument("--meshvisor", default=default_bin)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--vms", type=int, default=10)
    ap.add_argument("--sets", default="default",
                    help="comma-separated: default (shipped settings), short (shorter fence)")
    ap.add_argument("--port-base", type=int, default=28600)
    a = ap.parse_args()
    if not a.meshvisor:
        sys.exit("build meshvisor first, or give --meshvisor")
    a.meshvisor = os.path.abspath(a.meshvisor)
    sets = [s.strip() for s in a.sets.split(",") if s.strip()]
    for s in sets:
        if s not in SETS:
            sys.exit("unknown set %r (default, short)" % s)
    results = {}
    run_no = 0
    for s in sets:
        fence, _ = SETS[s]
        results[s] = []
        for i in range(a.runs):
            mvtest.log("set %s, run %d/%d" % (s, i + 1, a.runs))
            r = one_run(a, run_no, fence, a.vms)
            run_no += 1
            results[s].append(r)
            mvtest.log("  detect %.0f (all %.0f) plan %.0f fence %.0f restart %.0f total %.0f "
                       "ms (polled %.0f); fence_how %s; rounds %d; coordinator %s; targets %s" %
                       (r["detect"], r["detect_all"], r["plan"], r["fence"], r["restart"],
                        r["total"], r["polled"], r["how"], r["rounds"], r["coordinator"],
                        r["targets"]))
    print()
    print("meshvisor failover: host death -> all its HA VMs running elsewhere")
    print("%d real agents on loopback (TLS, libvirt test driver), %d HA VMs on the dead host "
          "(%s),\nkill -9 of its agent = the whole host (its libvirt unreachable: the fence "
          "is waited out),\nSWIM at the shipped defaults; %d runs per set, fresh cluster each; "
          "binary %s" % (N, a.vms, DEAD, a.runs, a.meshvisor))
    print("goal (issue 5): within seconds; when the dead host's libvirt cannot be reached "
          "the fence is waited out by design:\nquorate window + F + margin after the last "
          "acknowledgement the dead host can have had (at most F + margin after the plan)")
    cols = [("detect", "kill -> first member-dead"),
            ("detect_all", "kill -> member-dead on all survivors"),
            ("plan", "first member-dead -> plan chosen"),
            ("fence", "plan chosen -> fenced (wait)"),
            ("restart", "fenced -> last VM restarted"),
            ("total", "kill -> all VMs running (events)"),
            ("polled", "kill -> all running seen by `vms` poll")]
    for s in sets:
        fence, label = SETS[s]
        rs = results[s]
        print()
        print("set %s: %s" % (s, label))
        print("  %-40s %s   %s" % ("ms", " ".join("%8s" % ("run%d" % (i + 1))
                                                     for i in range(len(rs))),
                                   "  median      max"))
        for key, what in cols:
            vals = [r[key] for r in rs]
            print("  %-40s %s   %s %s" % (what, " ".join(fmt(v) for v in vals),
                                          fmt(statistics.median(vals)), fmt(max(vals))))
        print("  fence_how: %s" % sorted(set(h for r in rs for h in r["how"])))
        f, m = (10000, 3000) if fence is None else (fence["fence_after_ms"],
                                                    fence["fence_margin_ms"])
        # the agent's quorate window (agent/ha.c): 3000 ms, at most F / 2, at least 3 heartbeats
        q = max(min(3000, f // 2), 3 * 1000)
        print("  design floor: restart no sooner than last ack + %d ms (quorate %d + F %d + "
              "margin %d), no later than plan + %d ms" % (q + f + m, q, f, m, f + m))


if __name__ == "__main__":
    main()
