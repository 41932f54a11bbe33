#!/usr/bin/env python3
"""bench_failover_agents.py — how fast real agents bring HA VMs back.
Measures; asserts nothing about timing. A run whose outcome is wrong (an HA
VM never back, one on two hosts at once) is counted FAILED, left out of
the figures, and its agents' logs are kept (the path is printed).

    python3 tests/bench/bench_failover_agents.py [--meshvisor build/meshvisor]
        [--runs 3] [--cases failover,gray,loss,reboot] [--vms 10]
        [--loss-seconds 60] [--sets default[,short]] [--fast]
        [--port-base 28600]

Every run starts a fresh cluster of real agents (real TLS, libvirt's test
driver, one host file per agent) with the SHIPPED defaults: no "swim" and
no "failover" section (SWIM probe 1000 ms; failover heartbeat_ms 1000,
fence_after_ms 10000, fence_margin_ms 3000). --fast uses the integration
tests' timings instead (FAST_SWIM; heartbeat 250, fence_after 3000, margin
1500) for gray, loss and reboot, and says so in every heading. gray and
loss need root (network namespaces, nftables).

  failover  kill -9 of a host (n5 of 5) that runs --vms HA VMs -> all of
            them running elsewhere (details below). Sets: "default"
            (shipped) and, optional, "short" (only fence_after/margin
            shortened, labelled).
  gray      issue 9 case 1, as tests/integration/test_ha_gray.py: one host
            of 5 (3 HA VMs there, 1 on each other host) drops 50% of its
            packets in and out for --loss-seconds, then heals.
  loss      issue 9 case 2, as test_ha_loss.py: each of 5 hosts (2 HA VMs
            each) drops 15..25% (one seeded rate per host) of the packets
            it receives for --loss-seconds, then heals.
  reboot    issue 9 case 4, as test_ha_reboot.py: a host is killed -9, its
            host file emptied, and it is started again within 2 s; three
            cycles per run (n2 with 3 HA VMs; a host with 1; n2 twice, 1 s
            apart, the figure from the second restart).
For gray, loss and reboot the figure is the time from the heal (or the
last restart) to every HA VM running on exactly one host by the hosts' own
reports (`meshvisor vms --node SELF` on each agent, polled every ~0.1 s);
then to every agent's view agreeing and `meshvisor ha` exiting 0 on every
agent. Beside them: what happened during the fault (events summed over the
agents, the longest stretch an HA VM ran nowhere). p50 and p99 are
nearest-rank over the samples (below 100 samples p99 is the maximum).

The failover case: n5 runs --vms HA VMs (set-ha, distinct priorities); the
others run none. Once every agent's `ha` reports them all, quorate, with
R = 3 replicas of each definition held, n5 is killed with SIGKILL: with
the test driver (an in-process hypervisor) that is the death of the whole
host, and nobody can reach its libvirt, so the survivors must wait out the
fence deadline (F + margin from learning the plan: by design).
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
import math
import os
import shutil
import signal
import statistics
import sys
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.dont_write_bytecode = True
import mvtest  # noqa: E402
import mvha  # noqa: E402

N = 5
DEAD = "n5"
GIB = 1024 * 1024
# margin: at least the quorate window, which three 1 s heartbeats raise to 3000 ms
SHORT_FENCE = {"fence_after_ms": 3000, "fence_margin_ms": 3000}
SETS = {
    "default": (None, "shipped defaults: heartbeat 1000 ms, fence_after 10000 ms, "
                      "margin 3000 ms"),
    "short": (SHORT_FENCE, "SHORTER FENCE (not the defaults): heartbeat 1000 ms, fence_after "
                           "%d ms, margin %d ms" % (SHORT_FENCE["fence_after_ms"],
                                                    SHORT_FENCE["fence_margin_ms"])),
}
CASES = ("failover", "gray", "loss", "reboot")
KEEP_DIR = "/tmp"


def uuid_of(i):
    return "6d657368-0005-00be-0000-%012d" % i


def make_test(a, run_no, count=50):
    class Args:
        meshvisor = a.meshvisor
        testcert = None
        port_base = a.port_base + 50 * run_no
        port_count = count
    return mvtest.Test(Args)


def keep_logs(t, tag):
    """Copies a failed run's agent directories (logs, configs, host files)
    out of its temporary directory before the cleanup removes it."""
    dst = os.path.join(KEEP_DIR, "mvbench-%s-%d" % (tag, os.getpid()))
    try:
        shutil.copytree(t.tmp, dst, ignore=shutil.ignore_patterns("*key*", "ca", "certs",
                                                                  "other-ca"))
        mvtest.log("kept the failed run's agent logs in %s" % dst)
    except Exception as e:
        mvtest.log("could not keep the logs of %s: %s" % (tag, e))


def one_run(a, run_no, fence, n_vms):
    t = make_test(a, run_no)
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
        keep_logs(t, "failover-run%d" % run_no)
        raise
    finally:
        mvtest._cleanup()


def fmt(ms):
    return "%8.0f" % ms


def pct(vals, p):
    """Nearest-rank percentile."""
    v = sorted(vals)
    return v[max(0, int(math.ceil(p / 100.0 * len(v))) - 1)]


def case_run(a, case, run_no):
    """One run of gray, loss or reboot; returns a list of samples (dicts)."""
    t = make_test(a, run_no)
    timing = (dict(failover=mvha.FAST_FAILOVER, defaults=False) if a.fast else
              dict(failover=None, defaults=True))
    try:
        if case == "gray":
            rs = [mvha.case_gray(t, loss_s=a.loss_seconds, settle_s=a.settle_seconds,
                                 log_level="info", **timing)]
        elif case == "loss":
            rs = [mvha.case_loss(t, loss_s=a.loss_seconds, settle_s=a.settle_seconds,
                                 log_level="info", **timing)]
        else:
            rs = mvha.case_reboot(t, cycles=3, settle_s=a.settle_seconds, log_level="info",
                                  **timing)
        return rs
    except BaseException:
        keep_logs(t, "%s-run%d" % (case, run_no))
        raise
    finally:
        mvtest._cleanup()


def longest_down(res):
    longest = 0.0
    for vm, s, e in res.get("stretches", []):
        if e is not None:
            longest = max(longest, e - s)
    return longest


def print_case(case, samples, failures, a):
    label = {"gray": "case 1, gray host: 1 host of 5 at 50%% loss in and out for %.0f s, "
                     "then healed" % a.loss_seconds,
             "loss": "case 2, loss on every host: 15..25%% of what each of 5 hosts receives, "
                     "for %.0f s, then healed" % a.loss_seconds,
             "reboot": "case 4, quick reboot: kill -9, host file emptied, restarted within 2 s "
                       "(4 hosts)"}[case]
    frm = "the last restart" if case == "reboot" else "the heal"
    print()
    print("%s" % label)
    print("  timings: %s" % ("FAST (the integration tests': FAST_SWIM, heartbeat 250 ms, "
                             "fence_after 3000 ms, margin 1500 ms) -- NOT the defaults"
                             if a.fast else "shipped defaults (no swim, no failover section)"))
    print("  samples: %d ok, %d FAILED" % (len(samples), len(failures)))
    for f in failures:
        print("    FAILED: %s" % f)
    if not samples:
        return
    keys = [("running_s", "%s -> every HA VM running on one host (hosts)" % frm),
            ("settled_s", "%s -> views agree, `ha` 0 everywhere" % frm)]
    print("  %-58s %s   %8s %8s" % ("s", " ".join("%7s" % ("#%d" % (i + 1))
                                                  for i in range(len(samples))),
                                    "p50", "p99"))
    for k, what in keys:
        vals = [r[k] for r in samples]
        print("  %-58s %s   %8.1f %8.1f" % (what, " ".join("%7.1f" % v for v in vals),
                                            pct(vals, 50), pct(vals, 99)))
    ld = [longest_down(r) for r in samples]
    print("  %-58s %s" % ("longest stretch an HA VM ran nowhere (s, ~1 s)",
                          " ".join("%7.0f" % v for v in ld)))
    ev = {}
    for r in samples:
        for k, v in r.get("events", {}).items():
            ev[k] = ev.get(k, 0) + v
    kinds = ("quorum-lost", "fenced-self", "member-dead", "plan-chosen", "vm-restarted",
             "vm-down")
    print("  during and after the fault, summed over agents and samples: %s" %
          ", ".join("%s %d" % (k, ev.get(k, 0)) for k in kinds))
    if case == "loss":
        print("  seeds: %s" % [r.get("seed") for r in samples])
    if case == "reboot":
        print("  per sample: %s" % ", ".join(
            "%s%s lost %d" % (r["victim"], " twice" if r.get("twice") else "", len(r["lost"]))
            for r in samples))


def main():
    ap = argparse.ArgumentParser()
    default_bin = ""
    for cand in ("build/meshvisor", "build-test/meshvisor"):
        if os.path.exists(os.path.join(ROOT, cand)):
            default_bin = os.path.join(ROOT, cand)
            break
    ap.add_argument("--meshvisor", default=default_bin)
    ap.add_argument("--runs", type=int, default=3, help="repetitions per case (N)")
    ap.add_argument("--cases", default=",".join(CASES),
                    help="comma-separated, of: %s" % ", ".join(CASES))
    ap.add_argument("--vms", type=int, default=10, help="HA VMs of the dead host (failover)")
    ap.add_argument("--sets", default="default",
                    help="failover case: default (shipped settings), short (shorter fence)")
    ap.add_argument("--loss-seconds", type=float, default=60.0)
    ap.add_argument("--settle-seconds", type=float, default=180.0,
                    help="give up on a sample after this long after the heal/restart")
    ap.add_argument("--fast", action="store_true",
                    help="gray/loss/reboot with the integration tests' timings, not defaults")
    ap.add_argument("--port-base", type=int, default=28600)
    a = ap.parse_args()
    if not a.meshvisor:
        sys.exit("build meshvisor first, or give --meshvisor")
    a.meshvisor = os.path.abspath(a.meshvisor)
    cases = [c.strip() for c in a.cases.split(",") if c.strip()]
    for c in cases:
        if c not in CASES:
            sys.exit("unknown case %r (%s)" % (c, ", ".join(CASES)))
    sets = [s.strip() for s in a.sets.split(",") if s.strip()]
    for s in sets:
        if s not in SETS:
            sys.exit("unknown set %r (default, short)" % s)
    if ("gray" in cases or "loss" in cases) and os.geteuid() != 0:
        sys.exit("gray and loss need root (network namespaces, nftables)")
    mvtest.log("bench: %s; cases %s; %d runs each; binary %s" %
               (" ".join(sys.argv), cases, a.runs, a.meshvisor))
    run_no = 0
    fo_results = {}
    fo_failed = {}
    case_samples = {}
    case_failed = {}
    for case in cases:
        if case == "failover":
            for s in sets:
                fence, _ = SETS[s]
                fo_results[s], fo_failed[s] = [], []
                for i in range(a.runs):
                    mvtest.log("failover, set %s, run %d/%d" % (s, i + 1, a.runs))
                    try:
                        r = one_run(a, run_no, fence, a.vms)
                    except Exception as e:
                        fo_failed[s].append("run %d: %s" % (i + 1, e))
                        traceback.print_exc()
                        run_no += 1
                        continue
                    run_no += 1
                    fo_results[s].append(r)
                    mvtest.log("  detect %.0f (all %.0f) plan %.0f fence %.0f restart %.0f "
                               "total %.0f ms (polled %.0f); fence_how %s; rounds %d; "
                               "coordinator %s; targets %s" %
                               (r["detect"], r["detect_all"], r["plan"], r["fence"],
                                r["restart"], r["total"], r["polled"], r["how"], r["rounds"],
                                r["coordinator"], r["targets"]))
            continue
        case_samples[case], case_failed[case] = [], []
        for i in range(a.runs):
            mvtest.log("case %s, run %d/%d" % (case, i + 1, a.runs))
            try:
                rs = case_run(a, case, run_no)
                case_samples[case].extend(rs)
                for r in rs:
                    mvtest.log("  %s: running %.1f s, settled %.1f s" %
                               (case, r["running_s"], r["settled_s"]))
            except Exception as e:
                case_failed[case].append("run %d: %s" % (i + 1, e))
                traceback.print_exc()
            run_no += 1

    print()
    print("=" * 78)
    print("meshvisor: how fast real agents bring HA VMs back (bench_failover_agents.py)")
    print("command: %s" % " ".join(sys.argv))
    print("binary %s; %d runs per case; all agents on this machine (%d cores), real TLS, "
          "libvirt test driver" % (a.meshvisor, a.runs, os.cpu_count() or 0))
    for case in cases:
        if case != "failover":
            print_case(case, case_samples[case], case_failed[case], a)
            continue
        print()
        print("failover: host death (kill -9 of n5, %d HA VMs; 5 agents on loopback) -> all "
              "its HA VMs running elsewhere" % a.vms)
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
            rs = fo_results[s]
            print()
            print("set %s: %s" % (s, label))
            print("  runs: %d ok, %d FAILED" % (len(rs), len(fo_failed[s])))
            for f in fo_failed[s]:
                print("    FAILED: %s" % f)
            if not rs:
                continue
            print("  %-40s %s   %s" % ("ms", " ".join("%8s" % ("run%d" % (i + 1))
                                                         for i in range(len(rs))),
                                       "  median      p99"))
            for key, what in cols:
                vals = [r[key] for r in rs]
                print("  %-40s %s   %s %s" % (what, " ".join(fmt(v) for v in vals),
                                              fmt(statistics.median(vals)),
                                              fmt(pct(vals, 99))))
            print("  fence_how: %s" % sorted(set(h for r in rs for h in r["how"])))
            f, m = (10000, 3000) if fence is None else (fence["fence_after_ms"],
                                                        fence["fence_margin_ms"])
            # the agent's quorate window (agent_options_quorate_ms in agent/daemon/config.c):
            # 3000 ms, at most F / 2, at least 3 heartbeats
            q = max(min(3000, f // 2), 3 * 1000)
            print("  design floor: restart no sooner than last ack + %d ms (quorate %d + F %d "
                  "+ margin %d), no later than plan + %d ms" % (q + f + m, q, f, m, f + m))
    bad = sum(len(v) for v in case_failed.values()) + sum(len(v) for v in fo_failed.values())
    print()
    print("FAILED samples: %d" % bad if bad else "every run ended with every HA VM running on "
          "exactly one host")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
