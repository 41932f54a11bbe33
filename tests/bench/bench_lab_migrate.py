#!/usr/bin/env python3
"""bench_lab_migrate.py — issue 4's "Figures": migrations between real lab
hosts (tests/lab: system-mode libvirtd + QEMU/TCG in namespaces, a meshvisor
agent in each, real TLS between the agents over the lab bridge — veth pairs
on this one machine). Measures; asserts nothing. Needs root.

    python3 tests/bench/bench_lab_migrate.py --meshvisor build-lab/meshvisor
                                             [--runs 10] [--drain-rounds 1]

Three hosts; four small lab guests (1 vCPU, 64 MiB, the counter guest) on h1.
Agents: migration bandwidth 5 MiB/s, lease 10 s (see "Caveats").

  1. end to end: `meshvisor migrate g1 --to h2|h1 --json`, back and forth,
     --runs times: the CLI's wall time, the agent's elapsed_ms and
     libvirt's downtime_ms (final JSON object); medians.
  2. drain: `meshvisor drain h1 --parallel 1`, then undrain, the guests moved
     back to h1 one by one, then `drain h1 --parallel 2`: wall time of the
     drain command, per --drain-rounds.
  3. negotiation latency, from the agents' own logs (millisecond UTC
     timestamps, one clock): for every proposal of 1 and 2, source
     "proposing id=X" -> target "reserved id=X" (PROPOSE delivered over TLS
     and the target's decision), and source "proposing id=X" -> the first
     source line after the GO (the ACCEPT came back: "virt vm metadata set
     ... epoch" — the epoch bump, which itself is a libvirt write of a few
     ms) and "live migration started id=X". p50/p99 over all proposals
     (p99 of a few dozen samples is about the max: n is printed).

Caveats printed with the figures: timestamps have 1 ms resolution; the
lab's "loopback" is a veth bridge on one 2-core machine running TCG guests.
"""
import argparse
import datetime
import json
import os
import re
import statistics
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(ROOT, "tests", "lab"))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import mvlab  # noqa: E402
from mvlab import log, wait_until  # noqa: E402

GUESTS = ["g1", "g2", "g3", "g4"]
BW_MIB_S = 5
LEASE_MS = 10000
TS = r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z"


def ts(s):
    return datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%f").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


def events(agents, pattern):
    """{id: first timestamp} of pattern (group 2 = proposal id) over all logs."""
    out = {}
    for a in agents:
        for m in re.finditer(TS + pattern, a.log_text(), re.M):
            out.setdefault(m.group(2), ts(m.group(1)))
    return out


def after_go(agent_logs, pid):
    """Timestamp of the source's first 'virt vm metadata set name=VM' line
    after its 'proposing id=PID vm=VM' line (the epoch bump on GO)."""
    for text in agent_logs:
        m = re.search(r"proposing id=%s vm=(\S+) " % re.escape(pid), text)
        if not m:
            continue
        g = re.compile(TS + r" INFO  virt vm metadata set name=%s " % re.escape(m.group(1)),
                       re.M).search(text, m.end())
        if g:
            return ts(g.group(1))
    return None


def migrate(agent, vm, to):
    t0 = time.monotonic()
    r = agent.cli("migrate", vm, "--to", to, "--json", "--timeout", "120000", timeout=150)
    wall = time.monotonic() - t0
    objs = mvlab.parse_json_lines(r.stdout)
    fin = objs[-1] if objs else {}
    if r.returncode != 0 or not fin.get("ok"):
        raise RuntimeError("migrate %s --to %s: exit %d %s %s" %
                           (vm, to, r.returncode, r.stderr.strip(), fin))
    return wall, fin


def where_all(lab):
    return {g: lab.where(g) for g in GUESTS}


def run(lab, agents, a):
    h1, h2, h3 = lab.hosts
    extra = {h.name: mvlab.migration_config(h, BW_MIB_S, LEASE_MS) for h in lab.hosts}
    s = agents["h1"]
    s.start(extra=extra["h1"])
    for h in (h2, h3):
        agents[h.name].start(join=[s.peer_addr], extra=extra[h.name], wait=False)
    for x in agents:
        x.wait_ready()
    t_ready = time.monotonic()
    agents.wait_converged(timeout=30)
    for g in GUESTS:
        lab.start_guest(h1, g, vcpus=1, mem_mib=64)
    lab.wait_guest_ticks("g1", 2, timeout=20)
    left = t_ready + LEASE_MS / 1000 + 0.5 - time.monotonic()
    if left > 0:
        log("waiting %.1fs: a fresh agent refuses incoming migrations for one lease" % left)
        time.sleep(left)

    # -- 1. end to end --
    walls, elapsed, downs = [], [], []
    src, dst = h1, h2
    for i in range(a.runs):
        c0 = lab.guest_counter("g1")
        wall, fin = migrate(agents[src.name], "g1", dst.name)
        lab.wait_guest_ticks("g1", 1, timeout=10)
        ticks = [n for b, n in mvlab.parse_serial(lab.guest_serial("g1")) if n >= c0]
        gap = "contiguous" if ticks == list(range(c0, ticks[-1] + 1)) else "GAP %r" % ticks
        walls.append(wall * 1000)
        elapsed.append(fin.get("elapsed_ms", 0))
        downs.append(fin.get("downtime_ms", 0))
        log("run %d %s->%s: cli %.0f ms, elapsed %d ms, downtime %d ms, %d KiB sent; "
            "counter %s" % (i + 1, src.name, dst.name, wall * 1000, fin.get("elapsed_ms", 0),
                            fin.get("downtime_ms", 0), fin.get("data_processed", 0) >> 10, gap))
        src, dst = dst, src
    if lab.where("g1") != {"h1": "running"}:
        migrate(agents[src.name], "g1", "h1")

    # -- 2. drain h1 (4 guests), parallel 1 vs 2 --
    drains = {1: [], 2: []}
    for rnd in range(a.drain_rounds):
        for par in (1, 2):
            check_on = where_all(lab)
            log("before drain --parallel %d: %s" % (par, check_on))
            t0 = time.monotonic()
            r = agents["h2"].cli("drain", "h1", "--parallel", str(par), "--json", "--timeout",
                                 "300000", timeout=320)
            dt = time.monotonic() - t0
            objs = mvlab.parse_json_lines(r.stdout)
            fin = objs[-1] if objs else {}
            log("drain h1 --parallel %d: exit %d in %.2fs: %s (moved %s stayed %s)" %
                (par, r.returncode, dt, fin.get("message"), fin.get("moved"),
                 fin.get("stayed")))
            for res in fin.get("results", []):
                log("   %s -> %s: %s (%d ms, downtime %d ms)" %
                    (res.get("vm"), res.get("target"), res.get("message"),
                     res.get("elapsed_ms", 0), res.get("downtime_ms", 0)))
            if r.returncode != 0:
                log("drain failed: %s" % r.stderr.strip())
            drains[par].append((dt, fin.get("moved"), fin.get("stayed")))
            log("after: %s" % where_all(lab))
            r = agents["h2"].cli("undrain", "h1")
            if r.returncode != 0:
                raise RuntimeError("undrain h1: %s" % r.stderr)
            time.sleep(1.0)  # the undrain spreads; h1 takes migrations again
            for g in GUESTS:
                w = lab.where(g)
                if list(w) != ["h1"]:
                    owner = [h for h, st in w.items() if st == "running"][0]
                    migrate(agents[owner], g, "h1")
            time.sleep(0.5)

    # -- 3. negotiation latency from the logs --
    prop = events(agents, r" INFO  migrate proposing id=(\S+) ")
    resv = events(agents, r" INFO  migrate reserved id=(\S+) ")
    live = events(agents, r" INFO  migrate live migration started id=(\S+) ")
    logs = [x.log_text() for x in agents]
    d_resv, d_go, d_live = [], [], []
    for pid, t in prop.items():
        if pid in resv:
            d_resv.append((resv[pid] - t) * 1000)
        g = after_go(logs, pid)
        if g is not None and pid in live:
            d_go.append((g - t) * 1000)
        if pid in live:
            d_live.append((live[pid] - t) * 1000)

    # what the source did while a slow ACCEPT was pending (up to 3 cases)
    slow = sorted(((g, pid) for pid, g in zip(prop, [None] * len(prop))), key=str)[:0]
    for pid, t in prop.items():
        g = after_go(logs, pid)
        if g is not None and (g - t) * 1000 > 100:
            slow.append(pid)
    for pid in slow[:3]:
        for text in logs:
            i = text.find("proposing id=%s " % pid)
            if i < 0:
                continue
            i = text.rfind("\n", 0, i) + 1
            lines = text[i:].splitlines()[:25]
            print("--- slow negotiation %s: source log from the proposal ---" % pid)
            print("\n".join(l[:200] for l in lines))

    print()
    print("meshvisor lab migration figures: 3 lab hosts (system-mode libvirtd + QEMU/TCG), "
          "agents with real TLS over the lab bridge, bandwidth cap %d MiB/s, lease %d ms" %
          (BW_MIB_S, LEASE_MS))
    print("machine: %d CPUs; guest: 1 vCPU / 64 MiB counter guest (tests/lab/guest.S)" %
          os.cpu_count())
    for name, xs in (("negotiation propose -> target reserved (one way + decision)", d_resv),
                     ("negotiation propose -> ACCEPT back (first line after GO)", d_go),
                     ("propose -> 'live migration started' (incl. epoch bump)", d_live)):
        if xs:
            print("%-60s p50 %5.1f ms  p99 %5.1f ms  max %5.1f ms  n=%d" %
                  (name, statistics.median(xs), pct(xs, 0.99), max(xs), len(xs)))
    if walls:
        print("%-60s median %.0f ms (min %.0f, max %.0f), n=%d" %
              ("end to end `meshvisor migrate` (CLI wall time)", statistics.median(walls),
               min(walls), max(walls), len(walls)))
        print("%-60s median %.0f ms (min %d, max %d)" %
              ("  agent's elapsed_ms (propose -> outcome)", statistics.median(elapsed),
               min(elapsed), max(elapsed)))
        print("%-60s median %.0f ms (min %d, max %d)" %
              ("  guest downtime (libvirt)", statistics.median(downs), min(downs), max(downs)))
    for par in (1, 2):
        for dt, moved, stayed in drains[par]:
            print("%-60s %.2f s (moved %s, stayed %s)" %
                  ("drain h1 (4 guests) --parallel %d" % par, dt, moved, stayed))
    print(json.dumps({"negotiation_reserved_ms": d_resv, "negotiation_go_ms": d_go,
                      "migrate_wall_ms": walls, "elapsed_ms": elapsed, "downtime_ms": downs,
                      "drain_s": drains}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--meshvisor", default=os.path.join(ROOT, "build-lab", "meshvisor"))
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--drain-rounds", type=int, default=1)
    a = ap.parse_args()
    why = mvlab.prerequisites()
    if why:
        sys.exit("the lab cannot run: %s (tests/lab/README.md)" % why)
    state = {}
    mvlab.install_signal_handlers(
        lambda: state["agents"].stop_all() if "agents" in state else None)
    lab = mvlab.Lab(3).up()
    try:
        agents = state["agents"] = mvlab.LabAgents(lab, a.meshvisor)
        run(lab, agents, a)
    except BaseException:
        if "agents" in state:
            state["agents"].dump_logs(40)
        raise
    finally:
        if "agents" in state:
            state["agents"].stop_all()
        lab.down()


if __name__ == "__main__":
    main()
