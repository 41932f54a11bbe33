#!/usr/bin/env python3
"""bench_scale_agents.py — run through tests/bench/bench_scale_agents.sh
(which raises the open-files limit first); what it measures is described
there."""
import argparse
import json
import os
import re
import resource
import signal
import statistics
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ap = argparse.ArgumentParser(prog="bench_scale_agents.sh")
ap.add_argument("--meshvisor", default=None, help="default: build-test/meshvisor, build/meshvisor")
ap.add_argument("--n", type=int, action="append", help="cluster size (repeatable)")
ap.add_argument("--idle-seconds", type=float, default=600.0)
ap.add_argument("--port-base", type=int, default=30000)
ap.add_argument("--converge-timeout", type=float, default=300.0)
ap.add_argument("--json", default=None, help="also write the figures to FILE")
ap.add_argument("--log-level", default="info", help="the agents' log level (default info)")
a = ap.parse_args()
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import mvtest  # noqa: E402
import mvwire  # noqa: E402
from mvtest import log, TestFailure  # noqa: E402

binary = a.meshvisor or next((p for p in (os.path.join(ROOT, d, "meshvisor")
                                          for d in ("build-test", "build"))
                               if os.access(p, os.X_OK)), None)
if not binary or not os.access(binary, os.X_OK):
    sys.exit("bench_scale_agents: no meshvisor binary (build first, or pass --meshvisor PATH)")
sizes = a.n or [20]
HZ = os.sysconf("SC_CLK_TCK")
GIB = 1024 * 1024  # KiB

TARGETS = {
    "converge_s": "<= 30 s",
    "false_deaths": "0 over 10 min idle",
    "cpu_pct": "<= 0.3% per agent, flat N=20..200 (ratio <= 1.3)",
    "private_mib": "<= 12 MiB per agent, flat N=20..200 (ratio <= 1.3)",
    "dead_everywhere_s": "<= 5 s",
    "ha_back_s": "HA VM running elsewhere",
    "peer_conns": "bounded by protocol degree, not by N",
    "handshakes_idle": "no churn (no handshake storms)",
}


def raise_nofile(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    need = 4 * n + 256  # per agent: two sockets per peer, libvirt, logs
    if want < need:
        log("WARNING: open-files hard limit %d is below the %d an agent may need at N=%d" %
            (want, need, n))
    return want


# ---- /proc ------------------------------------------------------------------------

def cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def private_kib(pid):
    tot = 0
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Private_Clean:") or line.startswith("Private_Dirty:"):
                tot += int(line.split()[1])
    return tot


def socket_inodes(pid):
    out = set()
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            t = os.readlink(os.path.join(d, fd))
        except OSError:
            continue
        if t.startswith("socket:["):
            out.add(t[8:-1])
    return out


def tcp_established():
    """{inode: (local port, remote port)} of every ESTABLISHED TCP socket."""
    out = {}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                next(f)
                for line in f:
                    p = line.split()
                    if p[3] != "01":  # TCP_ESTABLISHED
                        continue
                    out[p[9]] = (int(p[1].rsplit(":", 1)[1], 16),
                                 int(p[2].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return out


def peer_conns(c):
    """{agent: (outgoing, incoming)} peer-port TCP connections it holds."""
    est = tcp_established()
    peer_ports = set(x.peer_port for x in c.running())
    out = {}
    for x in c.running():
        o = i = 0
        for ino in socket_inodes(x.proc.pid):
            lr = est.get(ino)
            if lr is None:
                continue
            if lr[0] == x.peer_port:
                i += 1
            elif lr[1] in peer_ports:
                o += 1
        out[x.name] = (o, i)
    return out


def log_sizes(c):
    return {x.name: os.path.getsize(x.log_path) for x in c.running()}


LOG_PATTERNS = (("member suspect", "suspect lines"), ("member dead", "dead lines"),
                ("handshake timed out", "handshake timeouts"),
                ("quorum lost", "quorum lost"), ("fenced vm", "VMs fenced"))


# a warning that repeats more than 20 times in 10 s is held back, and one
# line says how many (agent/util/log.h): those count too
SUPPRESSED = re.compile(r'repeated warning suppressed=(\d+) .*message="?([^"]*)"?$')


def log_counts(c, since, until=None):
    """Lines of LOG_PATTERNS in each agent's log from byte since[name] (to
    byte until[name] if given), with the lines the agent held back."""
    counts = {label: 0 for _, label in LOG_PATTERNS}
    for x in c.agents.values():
        if x.log_path is None or x.name not in since:
            continue
        with open(x.log_path, errors="replace") as f:
            f.seek(since[x.name])
            text = f.read(until[x.name] - since[x.name]) if until else f.read()
            for line in text.splitlines():
                m = SUPPRESSED.search(line)
                for pat, label in LOG_PATTERNS:
                    if m is not None and m.group(2).startswith(pat):
                        counts[label] += int(m.group(1))
                    elif m is None and pat in line:
                        counts[label] += 1
    return counts


# ---- RPC: one persistent connection per agent ------------------------------------

class Rpc:
    def __init__(self, c):
        self.c = c
        self.creds = c.client_creds("viewer")
        self.socks = {}
        self.req = 0

    def _sock(self, x):
        s = self.socks.get(x.name)
        if s is None:
            # a saturated box (N=200 on 2 cores) can keep an agent's loop
            # busy for seconds: a slow answer is a figure, not a failure
            s = mvtest.tls_client("127.0.0.1", x.rpc_port, *self.creds, timeout=30.0)
            self.socks[x.name] = s
        return s

    def members(self, x):
        """[(name, state, since_unix_ms)] as agent x sees them."""
        for attempt in (0, 1):
            try:
                s = self._sock(x)
                self.req += 1
                s.sendall(mvwire.request_frame(self.req, "members"))
                payload = mvwire.read_frame(s.recv)
                if payload is None:
                    raise OSError("closed")
                break
            except (OSError, ValueError):
                self.close_one(x.name)
                if attempt:
                    raise TestFailure("members on %s: no answer" % x.name)
        env = mvwire.parse(payload)
        r = mvwire.parse(env[21][-1])
        out = []
        if 11 in r:
            for raw in mvwire.parse(r[11][-1]).get(1, []):
                m = mvwire.parse(raw)
                out.append((mvwire._str(m, 1), mvwire._one(m, 3, 0), mvwire._one(m, 5, 0)))
        return out

    def close_one(self, name):
        s = self.socks.pop(name, None)
        if s is not None:
            try:
                s.close()
            except OSError:
                pass

    def close(self):
        for name in list(self.socks):
            self.close_one(name)


def status_all(c):
    out = {}
    for x in c.running():
        try:
            out[x.name] = x.status()
        except (TestFailure, ValueError) as e:
            log("status on %s: %s" % (x.name, e))
    return out


COUNTERS = ("peer_connections", "peer_connections_out", "peer_connections_in",
            "peer_handshakes", "peer_handshake_failures", "peer_evictions",
            "peer_idle_closes", "peer_reused_in", "datagram_rekeys", "datagrams_in", "datagrams_out", "datagram_no_key",
            "datagram_auth_failures", "datagram_replays")


def counter_deltas(before, after):
    """{counter: (sum of deltas, max per agent delta)} over agents in both."""
    out = {}
    for k in COUNTERS:
        ds = [after[n].get(k, 0) - before[n].get(k, 0) for n in after
              if n in before and k in after[n]]
        if ds:
            out[k] = (sum(ds), max(ds))
    return out


def dist(vals):
    v = sorted(vals)
    return {"median": statistics.median(v), "max": v[-1], "min": v[0],
            "mean": sum(v) / len(v)}


# ---- one size -------------------------------------------------------------------------

def uuid_of(i):
    return "6d657368-0012-5ca1-0000-%012d" % i


def run_size(n, port_base):
    class Args:
        meshvisor = binary
        testcert = None
    Args.port_base = port_base
    Args.port_count = 2 * n + 20
    t = mvtest.Test(Args)
    res = {"n": n}
    files = {}
    for i in range(1, n + 1):
        name = "n%d" % i
        doms = [dict(name="ha-" + name, uuid=uuid_of(i), vcpus=1, memory_kib=512 * 1024)]
        files[name] = mvtest.write_host_xml(os.path.join(t.tmp, "%s.xml" % name), 8,
                                            16 * GIB, doms)
    log("N=%d: making %d certificates" % (n, n))
    c = t.cluster(n, defaults=True, agent_extra={"log_level": a.log_level})
    names = ["n%d" % i for i in range(1, n + 1)]
    rpc = Rpc(c)
    try:
        # ---- start and converge ----
        t0 = time.monotonic()
        c["n1"].start(extra={"libvirt_uri": "test://" + files["n1"]})
        for nm in names[1:]:
            c[nm].start(join=[c["n1"].peer_addr],
                        extra={"libvirt_uri": "test://" + files[nm]}, wait=False)
        for nm in names:
            c[nm].wait_ready(timeout=60)
        t_ready = time.monotonic() - t0
        want = set(names)
        last = {}
        while True:
            bad = {}
            for x in c.running():
                alive = set(m for m, st, _ in rpc.members(x) if st == mvwire.ALIVE)
                if not want <= alive:
                    bad[x.name] = len(want & alive)
            if not bad:
                break
            last = bad
            if time.monotonic() - t0 > a.converge_timeout:
                raise TestFailure("N=%d: not converged after %.0fs; agents seeing fewer than "
                                  "%d alive: %d (e.g. %s)" %
                                  (n, a.converge_timeout, n, len(bad),
                                   sorted(bad.items())[:5]))
            time.sleep(0.2)
        res["converge_s"] = time.monotonic() - t0
        res["ready_s"] = t_ready
        log("N=%d: converged %.1fs after the first launch (all listening after %.1fs)" %
            (n, res["converge_s"], t_ready))

        # ---- one HA VM per host, replicated, quorate everywhere ----
        t1 = time.monotonic()

        def vms_known():  # set-ha goes through n1: it must know every host's VM
            got = set(v["name"] for v in c["n1"].cli_json("vms", timeout=60)["vms"])
            return True if set("ha-" + nm for nm in names) <= got else None
        mvtest.wait_until(vms_known, 300, "n1 to know the VM of every host", 1.0)
        for i, nm in enumerate(names):
            r = c["n1"].cli("vm", "set-ha", "ha-" + nm, "on", "--priority",
                            str(1000 - i % 900), timeout=60)
            if r.returncode != 0:
                raise TestFailure("set-ha ha-%s: %s" % (nm, r.stderr.strip()))
        want_rep = n * min(3, n - 1)

        def ha_ready():
            held, bad = 0, []
            for x in c.running():
                d = x.ha()
                held += d.get("replicas_held", 0)
                if d.get("ha_vms") != n or not d.get("quorate"):
                    bad.append(x.name)
            return True if not bad and held >= want_rep else None
        mvtest.wait_until(ha_ready, 600, "`ha`: %d HA VMs, quorate, %d replicas" %
                          (n, want_rep), 2.0)
        res["ha_ready_s"] = time.monotonic() - t1
        log("N=%d: %d HA VMs set, quorate and replicated everywhere (%.1fs)" %
            (n, n, res["ha_ready_s"]))

        # ---- idle ----
        st0 = status_all(c)
        sizes0 = log_sizes(c)
        pids = {x.name: x.proc.pid for x in c.running()}
        ticks0 = {nm: cpu_ticks(p) for nm, p in pids.items()}
        tw0 = time.monotonic()
        seen_bad = set()
        polls = 0
        conn_samples = []
        next_conn = tw0
        while time.monotonic() - tw0 < a.idle_seconds:
            for x in c.running():
                for m, st, _ in rpc.members(x):
                    if st != mvwire.ALIVE:
                        seen_bad.add((x.name, m, st))
            polls += 1
            if time.monotonic() >= next_conn:
                conn_samples.append(peer_conns(c))
                next_conn += max(10.0, a.idle_seconds / 10)
            time.sleep(2.0)
        elapsed = time.monotonic() - tw0
        ticks1 = {nm: cpu_ticks(p) for nm, p in pids.items()}
        priv = {nm: private_kib(p) / 1024.0 for nm, p in pids.items()}
        conns = peer_conns(c)
        conn_samples.append(conns)
        st1 = status_all(c)
        cpu = {nm: 100.0 * (ticks1[nm] - ticks0[nm]) / HZ / elapsed for nm in pids}
        res["idle_s"] = elapsed
        res["idle_polls"] = polls
        res["false_deaths_polled"] = len(set((o, m) for o, m, _ in seen_bad))
        res["false_dead_polled"] = len(set((o, m) for o, m, s in seen_bad
                                           if s == mvwire.DEAD))
        res["log_counts"] = log_counts(c, sizes0)
        res["startup_log_counts"] = log_counts(c, {nm: 0 for nm in sizes0}, sizes0)
        res["cpu_pct"] = dist(cpu.values())
        res["private_mib"] = dist(priv.values())
        tot = [o + i for o, i in conns.values()]
        res["peer_conns"] = dist(tot)
        res["peer_conns_out"] = dist([o for o, _ in conns.values()])
        res["peer_conns_in"] = dist([i for _, i in conns.values()])
        res["peer_conns_max_any_sample"] = max(max(o + i for o, i in s.values())
                                               for s in conn_samples)
        res["counters_idle"] = counter_deltas(st0, st1)
        res["loadavg"] = os.getloadavg()

        # ---- kill -9 of the last agent ----
        victim = c[names[-1]]
        vm = "ha-" + victim.name
        others = [x for x in c.running() if x is not victim]
        t_kill_wall = time.time()
        tk = time.monotonic()
        os.kill(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait()
        dead_at = {}
        while len(dead_at) < len(others):
            if time.monotonic() - tk > 180:
                raise TestFailure("N=%d: %s dead at only %d of %d survivors after 180 s" %
                                  (n, victim.name, len(dead_at), len(others)))
            for x in others:
                if x.name in dead_at:
                    continue
                for m, st, since in rpc.members(x):
                    if m == victim.name and st == mvwire.DEAD:
                        polled = time.monotonic() - tk
                        exact = since / 1000.0 - t_kill_wall
                        dead_at[x.name] = exact if 0 < exact <= polled + 0.5 else polled
            time.sleep(0.05)
        res["dead_everywhere_s"] = max(dead_at.values())
        res["dead_first_s"] = min(dead_at.values())
        log("N=%d: kill -9 %s -> dead at all %d survivors: first %.2fs, last %.2fs" %
            (n, victim.name, len(others), res["dead_first_s"], res["dead_everywhere_s"]))

        def vm_elsewhere():
            for v in c["n1"].cli_json("vms", timeout=30)["vms"]:
                if v["name"] == vm and v["state"] == "running" and v["node"] != victim.name:
                    return v["node"]
            return None
        try:
            host = mvtest.wait_until(vm_elsewhere, 240, "%s running on a survivor" % vm, 0.3)
            res["ha_back_s"] = time.time() - t_kill_wall
            res["ha_back_on"] = host
            log("N=%d: %s running on %s %.1fs after the kill" % (n, vm, host, res["ha_back_s"]))
        except TestFailure as e:
            res["ha_back_s"] = None
            log("N=%d: %s" % (n, e))
    except Exception as e:
        res["error"] = str(e)
        log("N=%d FAILED: %s" % (n, e))
        try:
            t.dump_logs() if n <= 5 else None
        except Exception:
            pass
    finally:
        rpc.close()
        mvtest._cleanup()
    return res


def fmt(v, unit="", nd=2):
    return "-" if v is None else ("%.*f%s" % (nd, v, unit))


def report(r):
    n = r["n"]
    print("\n==== N=%d real agents (shipped defaults, test driver, 1 HA VM each) ====" % n)
    if "error" in r and "converge_s" not in r:
        print("  FAILED: %s" % r["error"])
        return
    row = "  %-40s %-48s target: %s"
    print(row % ("converge", fmt(r.get("converge_s"), " s", 1) +
                 " (all listening after %s)" % fmt(r.get("ready_s"), " s", 1),
                 TARGETS["converge_s"]))
    if "cpu_pct" not in r:
        print("  FAILED: %s" % r.get("error"))
        return
    lc = r["log_counts"]
    print(row % ("false deaths over %.0f s idle" % r["idle_s"],
                 "%d pairs polled non-alive (%d dead); log: %d suspect, %d dead lines" %
                 (r["false_deaths_polled"], r["false_dead_polled"], lc["suspect lines"],
                  lc["dead lines"]), TARGETS["false_deaths"]))
    print("  %-40s %s" % ("  also in the idle logs", ", ".join("%s %d" % (k, v) for k, v in
                                                             sorted(lc.items()))))
    print("  %-40s %s" % ("start to idle (converge, set-ha), logs",
                          ", ".join("%s %d" % kv for kv in
                                    sorted(r["startup_log_counts"].items()))))
    cp, pm = r["cpu_pct"], r["private_mib"]
    print(row % ("CPU per idle agent", "median %.2f%%, mean %.2f%%, max %.2f%%" %
                 (cp["median"], cp["mean"], cp["max"]), TARGETS["cpu_pct"]))
    print(row % ("private memory per agent", "median %.1f MiB, max %.1f MiB" %
                 (pm["median"], pm["max"]), TARGETS["private_mib"]))
    pc = r["peer_conns"]
    print(row % ("peer TCP connections per agent", "median %g (out %g, in %g), max %g; "
                 "max any sample %d" % (pc["median"], r["peer_conns_out"]["median"],
                                        r["peer_conns_in"]["median"], pc["max"],
                                        r["peer_conns_max_any_sample"]),
                 TARGETS["peer_conns"]))
    ci = r["counters_idle"]
    if ci:
        print("  %-40s %s" % ("status counters over the window",
                              "(sum over agents / max one agent)"))
        for k in COUNTERS:
            if k in ci and k != "peer_connections" and not k.startswith("peer_connections_"):
                print("  %-40s %d / %d%s" % ("  " + k, ci[k][0], ci[k][1],
                                            "   target: " + TARGETS["handshakes_idle"]
                                            if k == "peer_handshakes" else ""))
    print(row % ("kill -9 -> dead at every survivor", "last %s (first %s)" %
                 (fmt(r.get("dead_everywhere_s"), " s"), fmt(r.get("dead_first_s"), " s")),
                 TARGETS["dead_everywhere_s"]))
    print(row % ("kill -9 -> its HA VM running elsewhere",
                 fmt(r.get("ha_back_s"), " s", 1) + (" on %s" % r["ha_back_on"]
                                                     if r.get("ha_back_on") else ""),
                 TARGETS["ha_back_s"]))
    print("  load average during the run: %.2f %.2f %.2f" % tuple(r["loadavg"]))
    if "error" in r:
        print("  FAILED after the idle window: %s" % r["error"])


def check_port_range():
    """Agents' ports must lie outside the kernel's ephemeral range: an
    outgoing connection may take one between our check and the agent's
    bind (then the agent cannot listen)."""
    top = a.port_base + sum(2 * n + 20 for n in sizes)
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
    except (OSError, ValueError):
        return
    if a.port_base <= hi and top > lo:
        sys.exit("bench_scale_agents: ports %d..%d overlap the ephemeral range %d..%d "
                 "(ip_local_port_range); pick --port-base below %d" %
                 (a.port_base, top, lo, hi, lo - (top - a.port_base)))


def main():
    check_port_range()
    results = []
    base = a.port_base
    log("bench_scale_agents: sizes %s, idle window %.0f s, binary %s" %
        (sizes, a.idle_seconds, binary))
    for n in sizes:
        lim = raise_nofile(n)
        log("N=%d: open-files limit %d" % (n, lim))
        results.append(run_size(n, base))
        base += 2 * n + 20
        report(results[-1])
    ok = [r for r in results if "cpu_pct" in r]
    if len(ok) >= 2:
        lo, hi = ok[0], ok[-1]
        print("\n==== flatness N=%d -> N=%d (target ratio <= 1.3) ====" % (lo["n"], hi["n"]))
        for k, label in (("cpu_pct", "CPU per agent (median)"),
                         ("private_mib", "private memory per agent (median)"),
                         ("peer_conns", "peer connections per agent (median)")):
            x, y = lo[k]["median"], hi[k]["median"]
            print("  %-36s %.2f -> %.2f  ratio %s" % (label, x, y,
                                                     "%.2f" % (y / x) if x else "-"))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    return 0 if all("error" not in r for r in results) else 1


sys.exit(main())
