"""mvha — shared pieces of the HA availability tests (issue 9: "HA never
loses a VM"): test_ha_gray.py, test_ha_loss.py, test_ha_reboot.py, and the
benchmark tests/bench/bench_failover_agents.py.

  NetLab       every agent in a network namespace of its own, all on one
               bridge (in a namespace of its own too), and the test itself
               (the observer running the CLI) on a veth into that bridge.
               Packet loss is nftables `numgen random mod 100 < P drop`
               inside an agent's namespace (this kernel has no netem), and
               never touches the observer's traffic: what the test sees of
               the cluster is not degraded by the fault it injects.
  NsAgent      an mvtest.Agent that runs inside its namespace (`ip netns
               exec`) and is reached at its namespace's address.
  HaWatch      a sampler thread: every ~second each running agent is asked
               for its OWN VMs (`vms --node SELF --json`), so it sees the
               hosts' truth, not gossip. It records every HA VM that runs
               on two hosts at once (confirmed by a second look), and every
               stretch during which an HA VM runs nowhere; while one does,
               it asks `ha --json` (rotating over the agents) and keeps the
               exit status and whatever list of down VMs the reply has.
  wait_ha_settled   the end condition: every HA VM runs on exactly one
               host (by the hosts' own reports), every agent's view agrees
               on where, and `meshvisor ha` exits 0 on every agent.
  case_gray, case_loss, case_reboot   the scenarios of issue 9's cases 1,
               2 and 4, run by the tests with the suite's fast timings and
               by the benchmark with the shipped defaults; each returns a
               result dict (time from the heal or restart to every HA VM
               running, what the agents recorded, the watch's stretches).
               case_loss draws its per-host loss rates from a printed seed
               (MV_HA_SEED=N replays the rates; the drops themselves are
               nftables' random numbers).

Everything a NetLab makes is removed at the end, also on failure and on
SIGTERM/SIGINT/SIGHUP (after mvtest has killed the agents); namespaces left
by a test that was SIGKILLed are swept by the next one (their names carry
the pid of the test that made them).
"""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time

import mvtest
from mvtest import TestFailure, check, log

GIB = 1024 * 1024
MIB = 1024

# The failover timings of the other real-agent failover tests
# (test_failover.py): fast enough for a suite, consistent with the config
# rules (margin >= quorate window = max(min(3000, F/2), 3 heartbeats)).
FAST_FAILOVER = {"heartbeat_ms": 250, "fence_after_ms": 3000, "fence_margin_ms": 1500}

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

# ---- prerequisites ----------------------------------------------------------


def need_root(what="ip netns and nftables"):
    if os.geteuid() != 0:
        raise TestFailure("needs root for %s (run as root; CI does)" % what)


def ensure_nft():
    """nft is how the tests drop packets (the kernel has no netem). When it
    is missing and we are root, installs Debian's nftables through
    deploy/apt-ensure.sh (as the lab tests install theirs)."""
    if shutil.which("nft"):
        return
    need_root()
    script = os.path.join(ROOT, "deploy", "apt-ensure.sh")
    log("nft not found: installing Debian's nftables (%s)" % script)
    r = subprocess.run(["bash", "-c", '. "$1" && apt_ensure mvha nftables', "mvha", script],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=300)
    if not shutil.which("nft"):
        raise TestFailure("nft (Debian package nftables) is needed for packet loss and could "
                          "not be installed:\n%s" % r.stdout[-2000:])


def sh(*cmd, check_rc=True, input=None, timeout=30):
    r = subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       input=input, timeout=timeout)
    if check_rc and r.returncode != 0:
        raise TestFailure("%s: %s" % (" ".join(cmd), r.stderr.strip()))
    return r


# ---- network namespaces ------------------------------------------------------

_LABS = []
NS_PREFIX = "mvha-"


def _sweep_stale():
    """Removes namespaces named mvha-PID-... whose test process is gone."""
    r = sh("ip", "netns", "list", check_rc=False)
    for line in r.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        m = re.match(r"^%s(\d+)-" % re.escape(NS_PREFIX), name)
        if not m:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or os.path.exists("/proc/%d" % pid):
            continue
        log("removing stale namespace %s (its test, pid %d, is gone)" % (name, pid))
        sh("ip", "netns", "del", name, check_rc=False)


def _teardown_all():
    # agents first (mvtest kills and reaps them), then their namespaces
    try:
        mvtest._cleanup()
    except Exception:
        pass
    for lab in list(_LABS):
        lab.down()


def _on_signal(signum, frame):
    log("got signal %d: cleaning up (agents, namespaces)" % signum)
    _teardown_all()
    os._exit(128 + signum)


_handlers_installed = False


def _install_handlers():
    global _handlers_installed
    if _handlers_installed:
        return
    import atexit
    atexit.register(_teardown_all)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, _on_signal)
    _handlers_installed = True


class NetLab:
    """A bridge in namespace mvha-PID-hub, agent namespaces mvha-PID-NAME
    with a veth each into it, and the observer's veth (in the test's own
    namespace, address .1) into it. Subnet 10.215.X.0/24, X picked so that
    no interface here has an address in it already."""

    def __init__(self, names):
        need_root()
        ensure_nft()
        _install_handlers()
        _sweep_stale()
        self.pid = os.getpid()
        self.tag = "%05d" % (self.pid % 100000)
        self.hub = "%s%d-hub" % (NS_PREFIX, self.pid)
        self.names = list(names)
        used = sh("ip", "-o", "-4", "addr", "show", check_rc=False).stdout
        x = None
        start = self.pid % 200
        for k in range(200):
            cand = (start + k) % 200 + 20
            if "10.215.%d." % cand not in used:
                x = cand
                break
        check(x is not None, "no free 10.215.X.0/24 subnet")
        self.net = "10.215.%d" % x
        self.obs_ip = self.net + ".1"
        self.ips = {n: "%s.%d" % (self.net, 11 + i) for i, n in enumerate(self.names)}
        self.loss = {}
        self.made = False
        _LABS.append(self)

    def ns(self, name):
        return "%s%d-%s" % (NS_PREFIX, self.pid, name)

    def _ifname(self, kind, i):
        return "mha%s%s%s" % (self.tag, kind, i)   # at most 3+5+1+2 = 11 chars

    def up(self):
        self.made = True
        sh("ip", "netns", "add", self.hub)
        hx = ["ip", "netns", "exec", self.hub]
        sh(*hx, "ip", "link", "add", "br0", "type", "bridge")
        sh(*hx, "ip", "link", "set", "br0", "up")
        sh(*hx, "ip", "link", "set", "lo", "up")
        # the observer: the test's namespace, address .1
        o, p = self._ifname("o", ""), self._ifname("p", "")
        sh("ip", "link", "add", o, "type", "veth", "peer", "name", p)
        sh("ip", "link", "set", p, "netns", self.hub)
        sh(*hx, "ip", "link", "set", p, "master", "br0")
        sh(*hx, "ip", "link", "set", p, "up")
        sh("ip", "addr", "add", self.obs_ip + "/24", "dev", o)
        sh("ip", "link", "set", o, "up")
        for i, n in enumerate(self.names):
            ns = self.ns(n)
            a, b = self._ifname("a", i), self._ifname("b", i)
            sh("ip", "netns", "add", ns)
            sh("ip", "link", "add", a, "type", "veth", "peer", "name", b)
            sh("ip", "link", "set", a, "netns", ns)
            sh("ip", "link", "set", b, "netns", self.hub)
            sh(*hx, "ip", "link", "set", b, "master", "br0")
            sh(*hx, "ip", "link", "set", b, "up")
            nx = ["ip", "netns", "exec", ns]
            sh(*nx, "ip", "addr", "add", self.ips[n] + "/24", "dev", a)
            sh(*nx, "ip", "link", "set", a, "up")
            sh(*nx, "ip", "link", "set", "lo", "up")
        # every agent reachable from the observer
        for n in self.names:
            mvtest.wait_until(lambda: sh("ping", "-c1", "-W1", self.ips[n],
                                         check_rc=False).returncode == 0
                              if shutil.which("ping") else True, 10,
                              "%s reachable on the lab bridge" % n, 0.2)
        log("lab network %s.0/24: observer %s, %s" %
            (self.net, self.obs_ip, ", ".join("%s %s" % (n, self.ips[n]) for n in self.names)))

    def set_loss(self, name, pct_in, pct_out=0):
        """Drops pct_in % of the packets arriving in `name`'s namespace and
        pct_out % of those leaving it, except the observer's traffic and
        loopback. A packet between two agents crosses one agent's output
        and another's input: loss on input only gives each path exactly
        the receiver's rate."""
        rules = []
        for chain, hook, pct, fld, iface in (("lossin", "input", pct_in, "saddr", "iifname"),
                                             ("lossout", "output", pct_out, "daddr",
                                              "oifname")):
            body = ""
            if pct > 0:
                body = ('    %s "lo" accept\n    ip %s %s accept\n'
                        '    numgen random mod 100 < %d drop\n' % (iface, fld, self.obs_ip,
                                                                   int(pct)))
            rules.append("  chain %s {\n    type filter hook %s priority 0; policy accept;\n"
                         "%s  }\n" % (chain, hook, body))
        text = "table inet mvloss {\n%s}\n" % "".join(rules)
        nx = ["ip", "netns", "exec", self.ns(name)]
        sh(*nx, "nft", "delete", "table", "inet", "mvloss", check_rc=False)
        sh(*nx, "nft", "-f", "-", input=text)
        self.loss[name] = (pct_in, pct_out)

    def set_silent(self, name):
        """Drops everything in and out of `name`'s namespace but loopback and
        the observer's traffic: no RST, no ICMP, nothing (set_loss takes at
        most 99%). clear_loss undoes it (same table)."""
        chains = "".join(
            "  chain %s {\n    type filter hook %s priority 0; policy accept;\n"
            '    %s "lo" accept\n    ip %s %s accept\n    drop\n  }\n' %
            (c, hook, iface, fld, self.obs_ip)
            for c, hook, iface, fld in (("lossin", "input", "iifname", "saddr"),
                                        ("lossout", "output", "oifname", "daddr")))
        nx = ["ip", "netns", "exec", self.ns(name)]
        sh(*nx, "nft", "delete", "table", "inet", "mvloss", check_rc=False)
        sh(*nx, "nft", "-f", "-", input="table inet mvloss {\n%s}\n" % chains)
        self.loss[name] = (100, 100)

    def clear_loss(self, name):
        sh("ip", "netns", "exec", self.ns(name), "nft", "delete", "table", "inet", "mvloss",
           check_rc=False)
        self.loss.pop(name, None)

    def nft_counters(self, name):
        r = sh("ip", "netns", "exec", self.ns(name), "nft", "list", "table", "inet", "mvloss",
               check_rc=False)
        return r.stdout + r.stderr

    def down(self):
        if not self.made:
            return
        for n in self.names:
            sh("ip", "netns", "del", self.ns(n), check_rc=False)
        sh("ip", "link", "del", self._ifname("o", ""), check_rc=False)
        sh("ip", "netns", "del", self.hub, check_rc=False)
        self.made = False
        if self in _LABS:
            _LABS.remove(self)


class NsAgent(mvtest.Agent):
    """An agent in its own namespace, reached at its address there."""

    @property
    def peer_addr(self):
        return "%s:%d" % (self.ip, self.peer_port)

    @property
    def rpc_addr(self):
        return "%s:%d" % (self.ip, self.rpc_port)

    def start(self, join=(), extra=None, wait=True):
        check(self.proc is None or self.proc.poll() is not None,
              "%s already running" % self.name)
        e = {"bind": self.ip, "advertise": self.ip}
        e.update(extra or {})
        self.write_config(join, e)
        self.log_path = os.path.join(self.dir, "agent-%d.log" % self.starts)
        self.starts += 1
        logf = open(self.log_path, "w")
        # `ip netns exec` execs the agent: proc.pid is the agent itself
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.netns, self.c.binary, "agent",
                                      "--config", self.config], stdout=logf,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=mvtest._child_setup)
        logf.close()
        mvtest._PROCS.append(self.proc)
        log("started %s in %s pid %d peer %s join %s" %
            (self.name, self.netns, self.proc.pid, self.peer_addr, list(join)))
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20):
        def ready():
            if self.proc.poll() is not None:
                raise TestFailure("%s exited with %s during start:\n%s" %
                                  (self.name, self.proc.returncode, self.log_tail()))
            return self.cli("status", timeout=5).returncode == 0
        mvtest.wait_until(ready, timeout, "%s to answer on its RPC port" % self.name, 0.2)


def ns_cluster(t, lab, agent_extra=None, defaults=False):
    """An mvtest cluster of len(lab.names) agents n1..nN, each an NsAgent in
    its lab namespace with a certificate for its lab address."""
    c = t.cluster(len(lab.names), agent_extra=agent_extra, defaults=defaults)
    for a in c.agents.values():
        a.__class__ = NsAgent
        a.ip = lab.ips[a.name]
        a.netns = lab.ns(a.name)
        a.cert, a.key = c.certs.make("node", a.name, subdir=a.name + "-ns", ip=a.ip)
    return c


# ---- host files ----------------------------------------------------------------

def uuid_for(case, i):
    return "6d657368-0009-%04x-0000-%012d" % (case, i)


def write_hosts(t, layout, cpus=4, memory_kib=8 * GIB, vm_mem_kib=512 * MIB):
    """layout: {host: [(vm name, uuid), ...]} -> {host: test-driver file}."""
    files = {}
    for host, vms in layout.items():
        doms = [dict(name=n, uuid=u, vcpus=1, memory_kib=vm_mem_kib) for n, u in vms]
        files[host] = mvtest.write_host_xml(os.path.join(t.tmp, "%s.xml" % host), cpus,
                                            memory_kib, doms)
    return files


# ---- observing HA ----------------------------------------------------------------

# `ha --json` lists the HA VMs that should run and do not under "owed"; the
# other names are accepted in case the field is renamed.
DOWN_KEYS = ("owed", "down", "vms_down", "down_vms", "not_running")


def ha_down_listing(doc):
    """The names of the VMs an `ha --json` reply lists as down (should run,
    does not), or None when the reply has no such list (an agent that does
    not report it)."""
    for k in DOWN_KEYS:
        v = doc.get(k) if isinstance(doc, dict) else None
        if isinstance(v, list):
            out = []
            for e in v:
                if isinstance(e, str):
                    out.append(e)
                elif isinstance(e, dict):
                    out.append(e.get("name") or e.get("vm") or e.get("uuid") or json.dumps(e))
            return out
    return None


def ha_rc(agent, timeout=15):
    """(exit status, parsed --json document or None) of `meshvisor ha`."""
    try:
        r = agent.cli("ha", "--json", role="viewer", timeout=timeout, errors="replace")
    except subprocess.TimeoutExpired:
        return None, None
    doc = None
    try:
        doc = json.loads(r.stdout) if r.stdout.strip() else None
    except ValueError:
        doc = None
    return r.returncode, doc


def own_vms(agent, vms, timeout=10):
    """{vm: (state, epoch)} of the watched VMs defined on agent's own host,
    as the agent itself reports them; None when it does not answer."""
    try:
        r = agent.cli("vms", "--node", agent.name, "--json", role="viewer", timeout=timeout,
                      errors="replace")
    except subprocess.TimeoutExpired:
        return None
    if r.returncode != 0:
        return None
    try:
        doc = json.loads(r.stdout)
    except ValueError:
        return None
    return {v["name"]: (v["state"], v.get("owner_epoch", 0)) for v in doc.get("vms", [])
            if v["name"] in vms and v.get("node", agent.name) == agent.name}


def running_hosts(cluster, vms):
    """({vm: [host, ...]}, [silent agents]): where each running agent
    reports the VM running on itself."""
    out = {vm: [] for vm in vms}
    silent = []
    for a in cluster.running():
        own = own_vms(a, vms)
        if own is None:
            silent.append(a.name)
            continue
        for vm, (st, _) in own.items():
            if st == "running":
                out[vm].append(a.name)
    return out, silent


class HaWatch:
    """Samples where the watched HA VMs run, from the hosts' own reports,
    until stop(). See the module's doc."""

    def __init__(self, cluster, vms, interval=1.0):
        self.c = cluster
        self.vms = list(vms)
        self.interval = interval
        self.t0 = time.monotonic()
        self.samples = 0
        self.doubles = []          # (t, vm, [(host, epoch)]) confirmed
        self.down_since = {}       # vm -> when first seen running nowhere (open stretch)
        self.down = []             # (vm, start, end or None)
        self.ha_samples = []       # (t, agent, rc, listed or None, quorate, down set)
        self.listing_seen = False  # some `ha` reply had a down-VM list
        self.errors = []
        self._stop = threading.Event()
        self._rot = 0
        self._th = threading.Thread(target=self._loop, daemon=True)

    def start(self):
        self._th.start()
        return self

    def stop(self, all_running_at=None):
        """Stops sampling. all_running_at: when the test saw every watched
        VM running (monotonic), which closes the stretches still open."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._th.join(timeout=60)
        for vm, s in self.down_since.items():
            self.down.append((vm, s, all_running_at))
        self.down_since = {}

    def _loop(self):
        while not self._stop.is_set():
            t = time.monotonic()
            try:
                self._sweep()
            except Exception as e:  # never kill the test from here
                self.errors.append("+%.1fs: %r" % (t - self.t0, e))
            dt = time.monotonic() - t
            self._stop.wait(max(0.05, self.interval - dt))

    def _sweep(self):
        now = time.monotonic()
        where, silent = running_hosts(self.c, self.vms)
        self.samples += 1
        for vm, hosts in where.items():
            if len(hosts) > 1:
                # a second look at those hosts alone: a move can straddle a sweep
                again = []
                for h in hosts:
                    own = own_vms(self.c[h], [vm])
                    if own and own.get(vm, ("", 0))[0] == "running":
                        again.append((h, own[vm][1]))
                if len(again) > 1:
                    self.doubles.append((now - self.t0, vm, again))
                    log("!! %s runs on %s at once (the hosts' own reports, twice)" %
                        (vm, again))
        down = set()
        for vm, hosts in where.items():
            if hosts:
                if vm in self.down_since:
                    self.down.append((vm, self.down_since.pop(vm), now))
                continue
            if silent:
                continue  # a host that did not answer may run it
            down.add(vm)
            self.down_since.setdefault(vm, now)
        if down:
            running = self.c.running()
            if running:
                a = running[self._rot % len(running)]
                self._rot += 1
                rc, doc = ha_rc(a)
                listed = ha_down_listing(doc) if doc else None
                if listed is not None:
                    self.listing_seen = True
                quorate = bool(doc and doc.get("quorate"))
                self.ha_samples.append((time.monotonic(), a.name, rc, listed, quorate,
                                        frozenset(down)))

    # -- summaries --

    def stretches(self):
        """[(vm, start s, end s or None)], times since the watch started."""
        out = [(vm, s - self.t0, None if e is None else e - self.t0) for vm, s, e in self.down]
        out += [(vm, s - self.t0, None) for vm, s in self.down_since.items()]
        return sorted(out, key=lambda x: (x[1], x[0]))

    def down_now(self):
        return sorted(self.down_since)

    def summary(self):
        st = self.stretches()
        lines = ["%d sweeps of %d HA VMs; running on two hosts at once: %s" %
                 (self.samples, len(self.vms), self.doubles or "never")]
        if not st:
            lines.append("  no HA VM was ever seen running nowhere")
        for vm, s, e in st:
            lines.append("  %s ran nowhere from +%.1fs %s" %
                         (vm, s, "to +%.1fs (%.1fs)" % (e, e - s) if e is not None
                          else "until the end of the watch"))
        rcs = {}
        for x in self.ha_samples:
            rcs[x[2]] = rcs.get(x[2], 0) + 1
        lines.append("  `ha` asked %d times while some HA VM ran nowhere: exit statuses %s; "
                     "a down-VM list in its reply: %s" %
                     (len(self.ha_samples), rcs or "-",
                      "yes" if self.listing_seen else "absent"))
        if self.errors:
            lines.append("  sampler errors: %s" % self.errors[:5])
        return "\n".join(lines)

    def check_never_twice(self):
        check(not self.doubles, "HA VMs ran on two hosts at once: %s" % self.doubles)

    def check_ha_reported(self, listing_present, min_down_s=6.0, grace_s=2.5):
        """While an HA VM ran nowhere for at least min_down_s, `ha` on a
        quorate agent, asked at least grace_s into the stretch (views
        need a moment), must have exited 1 and listed the VM at least
        once. Asserted only when the agents' `ha` has the list
        (listing_present); otherwise the returned note says what `ha`
        did. Returns a note for the log."""
        bad, checked, quiet = [], 0, []
        for vm, s, e in self.down:
            end = e if e is not None else time.monotonic()
            if end - s < min_down_s:
                continue
            inside = [x for x in self.ha_samples
                      if s + grace_s <= x[0] <= end and vm in x[5] and x[4]]
            if not inside:
                quiet.append(vm)
                continue
            checked += 1
            ok = [x for x in inside if x[2] == 1 and x[3] is not None and vm in x[3]]
            if not ok:
                bad.append("%s (ran nowhere %.1fs from +%.1fs): `ha` said %s" %
                           (vm, end - s, s - self.t0,
                            [(round(x[0] - self.t0, 1), x[1], "exit %s" % x[2], x[3])
                             for x in inside[:6]]))
        if listing_present:
            check(not bad, "`ha` did not report an HA VM that ran nowhere: %s" % bad)
            return ("`ha` exited 1 and listed the VM in every stretch of >= %.0fs in which "
                    "an HA VM ran nowhere (%d stretches checked%s)" %
                    (min_down_s, checked, ", %d without a quorate sample" % len(quiet)
                     if quiet else ""))
        return ("NOTE: the agents' `ha --json` has no list of down VMs (no 'owed' field): "
                "not asserted; %d stretches of >= %.0fs, %s" %
                (checked, min_down_s, "in which `ha` never said so: %s" % bad if bad
                 else "each seen by `ha` (exit 1)"))


def ha_listing_present(cluster):
    """Whether the agents' `ha --json` reply has a down-VM list at all."""
    for a in cluster.running():
        rc, doc = ha_rc(a)
        if doc is not None:
            return ha_down_listing(doc) is not None
    return False


def wait_ha_settled(cluster, vms, timeout, what="every HA VM running on exactly one host"):
    """The end condition. Waits until (1) each VM in `vms` runs on exactly
    one host by the hosts' own reports (every running agent answering),
    (2) every running agent's view (`vms --json`) shows exactly that one
    running copy, and (3) `meshvisor ha` exits 0 (and lists no VM as down)
    on every running agent. Returns ({vm: host}, seconds until all three
    held, seconds until (1) first held: polled every ~0.1 s on its own
    first, for the benchmark's figures)."""
    t0 = time.monotonic()
    last = {}

    def running():
        where, silent = running_hosts(cluster, vms)
        if silent:
            last["why"] = "no answer from %s" % silent
            return None
        wrong = {vm: h for vm, h in where.items() if len(h) != 1}
        if wrong:
            last["why"] = "running copies (hosts' own reports): %s" % wrong
            return None
        return {vm: h[0] for vm, h in where.items()}

    def settled():
        place = running()
        if not place:
            return None
        for a in cluster.running():
            w = a.vm_copies()
            for vm in vms:
                run = [h for h, st, _ in w.get(vm, []) if st == "running"]
                if run != [place[vm]]:
                    last["why"] = "%s's view of %s: %s (the hosts say %s)" % (
                        a.name, vm, w.get(vm), place[vm])
                    return None
        for a in cluster.running():
            rc, doc = ha_rc(a)
            listed = ha_down_listing(doc) if doc else None
            if rc != 0 or listed:
                last["why"] = "`ha` on %s exits %s%s" % (
                    a.name, rc, ", lists as down: %s" % listed if listed else
                    ": %s" % (json.dumps(doc)[:300] if doc else ""))
                return None
        return place
    try:
        mvtest.wait_until(running, timeout, what, 0.1)
        t_run = time.monotonic() - t0
        place = mvtest.wait_until(settled, max(5.0, timeout - t_run),
                                  what + ", every view agreeing, `ha` 0 on every agent", 0.5)
    except TestFailure as e:
        raise TestFailure("%s; last: %s" % (e, last.get("why")))
    return place, time.monotonic() - t0, t_run


def check_ha_ok_everywhere(cluster, n_vms, timeout=40):
    """Before a fault: `ha` exits 0 on every agent, counts n_vms HA VMs,
    quorate."""
    last = {}

    def pred():
        bad = {}
        for a in cluster.running():
            rc, doc = ha_rc(a)
            if rc != 0 or not doc or doc.get("ha_vms") != n_vms or not doc.get("quorate"):
                bad[a.name] = (rc, doc and {k: doc.get(k) for k in ("ok", "ha_vms", "quorate",
                                                                    "owed")})
        last["bad"] = bad
        return True if not bad else None
    try:
        mvtest.wait_until(pred, timeout, "`ha` to exit 0 with %d HA VMs, quorate, on every "
                          "agent" % n_vms, 0.5)
    except TestFailure as e:
        raise TestFailure("%s; last: %s" % (e, last.get("bad")))


def set_ha(agent, vms):
    for i, vm in enumerate(vms):
        r = agent.cli("vm", "set-ha", vm, "on", "--priority", str(900 - 10 * i))
        check(r.returncode == 0, "set-ha %s: %s" % (vm, r.stderr))


def wait_replicas(cluster, n_vms, per_vm=3, timeout=60):
    """Every HA VM's definition held by min(per_vm, n-1) replicas."""
    want = n_vms * min(per_vm, len(cluster.agents) - 1)

    def pred():
        held = sum(a.ha().get("replicas_held", 0) for a in cluster.running())
        return held if held >= want else None
    return mvtest.wait_until(pred, timeout, "%d replicas of %d HA VMs" % (want, n_vms), 0.5)


def events_of(agent, backlog=1000):
    try:
        return agent.events(backlog=backlog, seconds=1.0)
    except TestFailure:
        return []


STORY_KINDS = ("quorum-lost", "quorum-regained", "fenced-self", "vm-fenced", "fence-order",
               "member-suspect", "member-dead", "member-alive", "self-refuted",
               "failover-detected", "plan-chosen", "fence-confirmed", "vm-restarted",
               "vm-restart-failed", "vm-down", "vm-recovered", "vm-no-room", "vm-handed-back",
               "stale-copy-removed")


def fault_story(cluster, t_start_unix, totals=None):
    """One line per running agent: how many of each notable event it
    recorded since t_start_unix (quorum, fences, deaths, restarts,
    vm-down/vm-recovered). totals (a dict), if given, gets the counts
    summed over the agents."""
    out = []
    for a in cluster.running():
        evs = [e for e in events_of(a) if e.get("unix_ms", 0) >= t_start_unix * 1000]
        counts = {}
        for e in evs:
            if e.get("kind") in STORY_KINDS:
                counts[e["kind"]] = counts.get(e["kind"], 0) + 1
                if totals is not None:
                    totals[e["kind"]] = totals.get(e["kind"], 0) + 1
        out.append("  %s: %s" % (a.name, ", ".join("%s x%d" % kv for kv in
                                                   sorted(counts.items())) or
                                 "nothing of note"))
    return "\n".join(out)


def failovers_story(agent):
    """One line per recovery `failovers --json` shows on agent."""
    try:
        rows = agent.cli_json("failovers")["failovers"]
    except TestFailure as e:
        return "  (failovers on %s: %s)" % (agent.name, e)
    out = []
    for f in rows:
        vms = f.get("vms", [])
        out.append("  %s inc %s round %s phase %s cause %r fence %r: %s" %
                   (f.get("dead"), f.get("incarnation"), f.get("round"), f.get("phase"),
                    f.get("cause", ""), f.get("fence_how", ""),
                    ", ".join("%s->%s%s" % (v.get("vm"), v.get("target") or "-",
                                            "" if v.get("ok") else "(not ok)") for v in vms)
                    or "empty plan"))
    return "\n".join(out) or "  (none)"


def seed_from_env():
    s = os.environ.get("MV_HA_SEED")
    if s:
        return int(s)
    return random.SystemRandom().randrange(1, 1 << 31)


# ---- the scenarios (tests and benchmark share them) ---------------------------------

def agent_names(n):
    return ["n%d" % i for i in range(1, n + 1)]


def start_cluster(t, layout, lab=None, failover=FAST_FAILOVER, defaults=False,
                  log_level=None, plain=None):
    """Host files from layout ({host: [(vm, uuid)]}, hosts n1..nN), agents
    started (in lab namespaces if lab), every VM made HA (set-ha), their
    definitions replicated, `ha` 0 everywhere, every VM on exactly one
    host. failover: the "failover" config section (None: shipped
    defaults); defaults: SWIM at the shipped defaults too; plain: more VMs
    ({host: [(vm, uuid)]}) defined and running there, not made HA.
    Returns (cluster, sorted HA VM names, host files, placement)."""
    names = agent_names(len(layout))
    check(sorted(layout) == sorted(names), "layout hosts must be n1..n%d" % len(names))
    plain = plain or {}
    files = write_hosts(t, {h: list(layout[h]) + list(plain.get(h, [])) for h in layout})
    extra = {}
    if failover:
        extra["failover"] = dict(failover)
    if log_level:
        extra["log_level"] = log_level
    if lab is not None:
        c = ns_cluster(t, lab, agent_extra=extra, defaults=defaults)
    else:
        c = t.cluster(len(names), agent_extra=extra, defaults=defaults)
    c.start_each({n: {"libvirt_uri": "test://" + files[n]} for n in names})
    c.wait_converged(timeout=60)
    c.wait_states(timeout=60)
    vms = sorted(vm for l in layout.values() for vm, _ in l)
    set_ha(c["n1"], vms)
    wait_replicas(c, len(vms))
    check_ha_ok_everywhere(c, len(vms))
    place, _, _ = wait_ha_settled(c, vms, 40, "every HA VM on exactly one host before the "
                                               "fault")
    for host, l in layout.items():
        for vm, _ in l:
            check(place[vm] == host, "%s runs on %s, not on its host %s, before the fault" %
                  (vm, place[vm], host))
    log("before the fault: `ha` exits 0 on every agent; %d HA VMs on %s" %
        (len(vms), ", ".join("%s: %d" % (h, len(l)) for h, l in sorted(layout.items()))))
    return c, vms, files, place


def _progress(watch, t_fault, seconds, every=10.0):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(min(every, max(0.0, end - time.monotonic())))
        log("  +%.0fs: %d sweeps; HA VMs running nowhere now: %s" %
            (time.time() - t_fault, watch.samples, watch.down_now() or "none"))


def _finish(c, vms, watch, t_fault, t_heal, settle_s, what):
    """After the heal (or restart): the end condition, the story, the
    checks. Returns the result dict."""
    res = {"ok": False}
    try:
        t_wait = time.monotonic()
        place, took, run_s = wait_ha_settled(c, vms, settle_s)
        done = time.monotonic()
        res.update(ok=True, place=place, settled_s=done - t_heal,
                   running_s=t_wait + run_s - t_heal)
        watch.stop(all_running_at=t_wait + run_s)
        log("FIGURE %s -> every HA VM running on exactly one host (the hosts' own reports): "
            "%.1fs; and every view agreeing, `ha` 0 on every agent: %.1fs (placement %s)" %
            (what, res["running_s"], res["settled_s"], place))
    finally:
        watch.stop()
        res["events"] = {}
        log("what the agents recorded since the fault:\n%s" %
            fault_story(c, t_fault, res["events"]))
        log("failovers on %s:\n%s" % (c.running()[0].name, failovers_story(c.running()[0])))
        log("watch: %s" % watch.summary())
        res["stretches"] = watch.stretches()
        res["doubles"] = list(watch.doubles)
    watch.check_never_twice()
    present = ha_listing_present(c)
    res["ha_listing"] = present
    res["ha_note"] = watch.check_ha_reported(present)
    log(res["ha_note"])
    return res


def case_gray(t, n=5, gray=None, loss_pct=50, loss_s=60.0, settle_s=50.0,
              failover=FAST_FAILOVER, defaults=False, log_level=None):
    """Issue 9 case 1: the last host (gray) runs 3 HA VMs, the others one
    each; gray drops loss_pct % of its packets in each direction for
    loss_s, then heals. Returns the result dict (settled_s: heal ->
    end condition)."""
    names = agent_names(n)
    gray = gray or names[-1]
    lab = NetLab(names)
    try:
        lab.up()
        layout = {h: [] for h in names}
        for k, vm in enumerate(("gray-a", "gray-b", "gray-c")):
            layout[gray].append((vm, uuid_for(1, k)))
        for i, h in enumerate(x for x in names if x != gray):
            layout[h].append(("vm-%s" % h, uuid_for(1, 10 + i)))
        c, vms, _, _ = start_cluster(t, layout, lab, failover, defaults, log_level)
        watch = HaWatch(c, vms).start()
        try:
            t_fault = time.time()
            lab.set_loss(gray, loss_pct, loss_pct)
            log("%s (gray): %d%% loss in and out for %.0fs" % (gray, loss_pct, loss_s))
            _progress(watch, t_fault, loss_s)
            log("nft on %s at the heal:\n%s" % (gray, lab.nft_counters(gray).strip()))
            lab.clear_loss(gray)
            t_heal = time.monotonic()
            log("healed")
            res = _finish(c, vms, watch, t_fault, t_heal, settle_s, "heal")
        finally:
            watch.stop()
        c.wait_converged(timeout=30)
        return res
    finally:
        lab.down()


def case_loss(t, n=5, vms_per_host=2, lo=15, hi=25, loss_s=60.0, settle_s=60.0, seed=None,
              failover=FAST_FAILOVER, defaults=False, log_level=None):
    """Issue 9 case 2: every agent drops a random lo..hi % (one rate per
    host, from seed) of the packets arriving in its namespace, so each
    path between two agents loses its receiver's rate, for loss_s; then
    heals. Returns the result dict (settled_s: heal -> end condition)."""
    seed = seed if seed is not None else seed_from_env()
    rng = random.Random(seed)
    names = agent_names(n)
    rates = {h: rng.randint(lo, hi) for h in names}
    log("seed %d (replay: MV_HA_SEED=%d): loss per host %s" % (seed, seed, rates))
    lab = NetLab(names)
    try:
        lab.up()
        layout = {h: [("%s-%s" % (h, chr(ord("a") + k)), uuid_for(2, 10 * i + k))
                      for k in range(vms_per_host)] for i, h in enumerate(names)}
        c, vms, _, _ = start_cluster(t, layout, lab, failover, defaults, log_level)
        watch = HaWatch(c, vms).start()
        try:
            t_fault = time.time()
            for h in names:
                lab.set_loss(h, rates[h], 0)
            log("loss on every host's input (%d..%d%%) for %.0fs" % (lo, hi, loss_s))
            _progress(watch, t_fault, loss_s)
            for h in names:
                lab.clear_loss(h)
            t_heal = time.monotonic()
            log("healed")
            res = _finish(c, vms, watch, t_fault, t_heal, settle_s, "heal")
        finally:
            watch.stop()
        res["seed"] = seed
        c.wait_converged(timeout=30)
        return res
    finally:
        lab.down()


def quick_reboot(c, a, files, t, join_from=None, within_s=2.0):
    """kill -9 agent a (with the test driver, its whole host: its VMs die
    with it), rewrite its host file without any VM (a rebooted host comes
    back empty), start it again at once; returns (t_kill, t_started)."""
    seed = join_from or next(x for x in c.running() if x is not a)
    t_kill = time.monotonic()
    a.signal(signal.SIGKILL)
    a.wait_exit(5)
    write_hosts(t, {a.name: []})
    files[a.name] = os.path.join(t.tmp, "%s.xml" % a.name)
    a.start(join=[seed.peer_addr], extra={"libvirt_uri": "test://" + files[a.name]},
            wait=False)
    t_started = time.monotonic()
    check(t_started - t_kill <= within_s, "%s restarted %.2fs after the kill, not within %.1fs"
          % (a.name, t_started - t_kill, within_s))
    log("%s killed (-9) and started again, empty, %.2fs later" % (a.name, t_started - t_kill))
    a.wait_ready(timeout=30)
    return t_kill, t_started


def case_reboot(t, n=4, cycles=3, settle_s=45.0, failover=FAST_FAILOVER, defaults=False,
                log_level=None, twice_gap_s=1.0):
    """Issue 9 case 4: n2 runs 3 HA VMs and a VM that is not HA, the
    others one HA VM each. A quick reboot: the agent is killed -9 (with
    the test driver, the whole host: its VMs die with it), its host file
    is rewritten without any VM, and it is started again within 2 s.
      cycle 1: n2;
      cycle 2: another host (not the seed n1), whichever runs the most HA
               VMs after cycle 1, n2 excepted;
      cycle 3: n2 again, and once more twice_gap_s after that restart,
               while the cluster is recovering its VMs;
    and so on, alternating (cycles: how many). Each cycle ends when every
    HA VM runs on exactly one host and `ha` exits 0 on every agent; the
    non-HA VM is never restarted anywhere. Loopback, no namespaces. Returns
    the per-cycle result dicts (settled_s: last restart -> end
    condition)."""
    names = agent_names(n)
    layout = {h: [] for h in names}
    for k, vm in enumerate(("rb-a", "rb-b", "rb-c")):
        layout["n2"].append((vm, uuid_for(4, k)))
    for i, h in enumerate(x for x in names if x != "n2"):
        layout[h].append(("vm-%s" % h, uuid_for(4, 10 + i)))
    plain = ("rb-plain", uuid_for(4, 99))
    c, vms, files, place = start_cluster(t, layout, None, failover, defaults, log_level,
                                         plain={"n2": [plain]})
    check(own_vms(c["n2"], [plain[0]]).get(plain[0], ("",))[0] == "running",
          "the non-HA VM %s does not run on n2 before the fault" % plain[0])
    results = []
    for cyc in range(cycles):
        twice = cyc % 3 == 2
        if cyc % 3 == 1:
            counts = {}
            for vm, h in place.items():
                counts[h] = counts.get(h, 0) + 1
            victim = max((h for h in names if h not in ("n1", "n2")),
                         key=lambda h: (counts.get(h, 0), h))
        else:
            victim = "n2"
        a = c[victim]
        lost = sorted(vm for vm, h in place.items() if h == victim)
        log("cycle %d: quick reboot of %s%s, which runs %s" %
            (cyc + 1, victim, " (twice, %.1fs apart)" % twice_gap_s if twice else "", lost))
        watch = HaWatch(c, vms).start()
        try:
            t_fault = time.time()
            _, t_started = quick_reboot(c, a, files, t, join_from=c["n1"])
            if twice:
                time.sleep(twice_gap_s)
                _, t_started = quick_reboot(c, a, files, t, join_from=c["n1"])
            res = _finish(c, vms, watch, t_fault, t_started, settle_s, "restart")
        finally:
            watch.stop()
        res["victim"] = victim
        res["lost"] = lost
        res["twice"] = twice
        if cyc == 0:
            # `failovers` shows the recovery that followed the reboot
            rows = [f for f in c["n1"].cli_json("failovers")["failovers"]
                    if f.get("dead") == victim and
                    f.get("detected_unix_ms", 0) >= t_fault * 1000 - 2000]
            done = {v.get("vm") for f in rows for v in f.get("vms", []) if v.get("ok")}
            check(set(lost) <= done, "`failovers` on n1 shows no recovery of %s's %s after its "
                  "reboot: %s" % (victim, sorted(set(lost) - done), json.dumps(rows)[:800]))
        results.append(res)
        place = res["place"]
        # the VM that is not HA died with n2 and stays lost
        where, _ = running_hosts(c, [plain[0]])
        check(not where[plain[0]], "%s (not HA) was restarted on %s" % (plain[0],
                                                                      where[plain[0]]))
        c.wait_converged(timeout=30)
    return results
