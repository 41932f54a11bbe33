#!/usr/bin/env python3
"""Lab test (issue 5, "Automatic failover" on real hypervisors): three lab
hosts (system-mode libvirtd + QEMU/TCG in namespaces), a meshvisor agent in
each with failover.fence_uri = the host's qemu+tcp URI on the lab bridge
(how the peers reach its libvirt to fence it) and short failover timings
(heartbeat FO_HEARTBEAT_MS, fence_after FENCE_AFTER_MS, margin
FENCE_MARGIN_MS). Three counter guests, one per host, marked HA (`meshvisor
vm set-ha G on --priority N`):

  lab-ha-a on h1, lab-ha-b on h2, lab-ha-c on h3.

Before the cases: `ha` on every agent sees 3 HA VMs, quorate, and every
HA VM's definition is held by replicas on both other hosts.

A sampler runs for the whole test: every ~30 ms a round of `virsh list
--all` on every living host (one interactive virsh per host, so a round is
a few libvirt calls, not process starts) and every ~20 ms a scan of /proc
for each guest's QEMU process (which host it belongs to, by mount
namespace), plus the guests' serial logs (boot lines). "Never running
twice" is checked on those samples: no virsh round and no process scan
ever finds a guest active on two hosts, and a guest's new copy is first
seen (virsh, QEMU process, new "mvguest boot" line) only after its old copy
was last seen active.

  C. VM-level HA: kill -9 the QEMU process of lab-ha-c on h3 (a healthy,
     quorate host) -> h3's agent restarts it there: events vm-crashed then
     vm-restarted-locally on h3; virsh: running on h3 again, on no other
     host; a new boot line and the counter ticking.
  B. agent death: kill -9 only h2's agent (its libvirtd and lab-ha-b keep
     running) -> the survivors fence h2 through its libvirt (virsh on h2:
     lab-ha-b shut off; `failovers`: fence_how names its libvirt, chosen ->
     fenced well below fence_after_ms), then lab-ha-b runs on exactly one
     other host with a new boot (restart, not migration) and counts; never
     on two hosts at once (samples above). Then h2's agent is started
     again (new incarnation) and the cluster is quorate with 3 voters.
  A. host death: host.kill() of h1 (its libvirtd, its guests, its agent)
     -> every HA guest that ran on h1 (lab-ha-a, and lab-ha-b if B put it
     there) runs on exactly one of h2/h3 with a new boot and counts;
     `failovers` on the survivors: fence_how says the fence was waited out
     (h1's libvirt is dead too), kill -> fenced >= fence_after_ms.

Collected as daemon bugs (the test goes on, then fails at the end): a
`failovers` took_ms (plan -> running on the target) well below what virsh
showed; a survivor whose `failovers` never shows the fence; a target that
its peers suspected (it had to refute) while it restarted the VMs.

FIGURE lines give the timings (kill -> member-dead, kill -> fenced, kill ->
running elsewhere). Every case runs even when an earlier one failed (as far
as the cluster allows); all failures are reported at the end.
Exit codes: 0 pass, 1 fail, 77 skipped.
"""
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import mvlab  # noqa: E402
from mvlab import check, log, wait_until, TestFailure  # noqa: E402

FO_HEARTBEAT_MS = 250
FENCE_AFTER_MS = 4000
FENCE_MARGIN_MS = 2000   # at least the quorate window, min(3000, F / 2) = 2000 ms
MEM_MIB = 64
GA, GB, GC = "lab-ha-a", "lab-ha-b", "lab-ha-c"
PLACE = {GA: "h1", GB: "h2", GC: "h3"}
PRIORITY = {GA: 900, GB: 500, GC: 100}
# bounds (generous: 2 cores, TCG guests, FAST_SWIM detection of 2-12 s)
CRASH_RESTART_BOUND_S = 15        # QEMU killed -> running again on the same host
AGENT_DEATH_BOUND_S = 40          # agent killed -> guest running elsewhere
HOST_DEATH_BOUND_S = 50           # host killed -> guests running elsewhere
REMOTE_FENCE_BOUND_MS = FENCE_AFTER_MS // 2   # chosen -> fenced through libvirt
INACTIVE = ("shut off", "crashed")
BUGS = []  # daemon shortcomings met that the rest of the test can go on past


def wall_ms():
    return int(time.time() * 1000)


# ---- ground truth: virsh rounds, QEMU processes, serial boot lines ----------

class VirshSession:
    """One interactive `virsh -c URI` kept open (a sample is one round trip
    to libvirtd, ~1 ms, instead of a process start per sample)."""

    LINE = re.compile(r"^\s*(\d+|-)\s+(\S+)\s+(\S.*?)\s*$")

    def __init__(self, uri):
        self.broken = False
        self.q = queue.Queue()
        self.p = subprocess.Popen(["virsh", "-c", uri], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  bufsize=1, preexec_fn=mvlab._pdeath_kill)
        self.th = threading.Thread(target=self._read, daemon=True)
        self.th.start()

    def _read(self):
        for line in self.p.stdout:
            self.q.put(line)
        self.q.put(None)

    def list_all(self, timeout=5.0):
        """{name: state} of every domain, or None (the session is then
        marked broken)."""
        try:
            self.p.stdin.write("list --all\necho __END__\n")
            self.p.stdin.flush()
        except OSError:
            self.close()
            return None
        out, ok = {}, False
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                break
            if line.strip() == "__END__":
                ok = True
                break
            if line.lstrip().startswith("error:"):
                self.broken = True
            m = self.LINE.match(line)
            if m and m.group(1) != "Id":
                out[m.group(2)] = m.group(3)
        if not ok or self.broken:
            self.close()
            return None
        return out

    def close(self):
        self.broken = True
        if self.p.poll() is None:
            try:
                self.p.kill()
            except OSError:
                pass
        try:
            self.p.wait(5)
        except Exception:
            pass


class Sampler:
    """Background sampling of where each guest is active (see the module
    docstring). All times are time.time() (wall clock, comparable with the
    agents' unix_ms)."""

    def __init__(self, lab, guests):
        self.lab = lab
        self.guests = list(guests)
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.rounds = []      # (t_start, t_end, {host: {guest: state}})
        self.scans = []       # (t, {guest: set(hosts with a QEMU process)})
        self.boots = {g: [] for g in self.guests}   # [(t first seen, boot count)]
        self.violations = []  # text
        self.errors = []
        self.threads = [threading.Thread(target=self._virsh_loop, daemon=True),
                        threading.Thread(target=self._proc_loop, daemon=True)]

    def start(self):
        for th in self.threads:
            th.start()
        return self

    def stop(self):
        self.stop_ev.set()
        for th in self.threads:
            th.join(10)

    # -- virsh --
    def _virsh_loop(self):
        sessions = {}
        try:
            while not self.stop_ev.is_set():
                t0 = time.time()
                res = {}
                for h in self.lab.hosts:
                    if not h.alive():
                        s = sessions.pop(h.name, None)
                        if s:
                            s.close()
                        continue
                    s = sessions.get(h.name)
                    if s is None or s.broken:
                        s = sessions[h.name] = VirshSession(h.uri)
                    doms = s.list_all()
                    if doms is not None:
                        res[h.name] = doms
                t1 = time.time()
                with self.lock:
                    self.rounds.append((t0, t1, dict(res)))
                for g in self.guests:
                    act = sorted(hn for hn, doms in res.items()
                                 if g in doms and doms[g] not in INACTIVE)
                    if len(act) > 1:
                        self.violations.append("virsh round at %.3f: %s active on %s (%s)" %
                                               (t0, g, act, {hn: res[hn].get(g) for hn in act}))
                self.stop_ev.wait(0.03)
        finally:
            for s in sessions.values():
                s.close()

    # -- QEMU processes and serial logs --
    def _proc_loop(self):
        while not self.stop_ev.is_set():
            t = time.time()
            try:
                by_mnt = {h.mnt_ino: h.name for h in self.lab.hosts if h.mnt_ino}
                found = {g: set() for g in self.guests}
                for d in os.listdir("/proc"):
                    if not d.isdigit():
                        continue
                    try:
                        with open("/proc/%s/cmdline" % d, "rb") as f:
                            cmd = f.read()
                    except OSError:
                        continue
                    if b"qemu-system" not in cmd:
                        continue
                    for g in self.guests:
                        if (b"guest=%s," % g.encode()) in cmd:
                            hn = by_mnt.get(mvlab.ns_inode(int(d), "mnt"))
                            if hn:
                                found[g].add(hn)
                with self.lock:
                    self.scans.append((t, found))
                for g, hs in found.items():
                    if len(hs) > 1:
                        self.violations.append("process scan at %.3f: QEMU of %s on %s" %
                                               (t, g, sorted(hs)))
                for g in self.guests:
                    n = self.lab.guest_boots(g)
                    b = self.boots[g]
                    if not b or b[-1][1] != n:
                        b.append((t, n))
            except Exception as e:  # keep sampling; report at the end
                if len(self.errors) < 5:
                    self.errors.append(repr(e))
            self.stop_ev.wait(0.02)

    # -- queries --
    def active_hosts_now(self, g):
        """Hosts whose latest virsh round shows g active."""
        with self.lock:
            if not self.rounds:
                return []
            res = self.rounds[-1][2]
        return sorted(hn for hn, doms in res.items() if g in doms and doms[g] not in INACTIVE)

    def last_active(self, g, host, since):
        """Wall time of the last sample (virsh round end or process scan)
        after `since` in which g was active on host; None if never."""
        last = None
        with self.lock:
            for t0, t1, res in self.rounds:
                if t0 >= since and host in res and res[host].get(g, "shut off") not in INACTIVE:
                    last = max(last or 0, t1)
            for t, found in self.scans:
                if t >= since and host in found.get(g, ()):
                    last = max(last or 0, t)
        return last

    def first_active_elsewhere(self, g, not_host, since):
        """(wall time, host) of the first sample after `since` in which g
        was active on a host other than not_host (virsh round start or
        process scan), or (None, None)."""
        best = (None, None)
        with self.lock:
            for t0, t1, res in self.rounds:
                if t0 < since:
                    continue
                for hn, doms in res.items():
                    if hn != not_host and g in doms and doms[g] not in INACTIVE:
                        if best[0] is None or t0 < best[0]:
                            best = (t0, hn)
            for t, found in self.scans:
                if t < since:
                    continue
                for hn in found.get(g, ()):
                    if hn != not_host and (best[0] is None or t < best[0]):
                        best = (t, hn)
        return best

    def first_virsh(self, g, host, state, since):
        with self.lock:
            for t0, t1, res in self.rounds:
                if t0 >= since and res.get(host, {}).get(g) == state:
                    return t1
        return None

    def boot_seen(self, g, since):
        """Wall time a new boot line of g was first seen after since."""
        b = self.boots[g]
        base = None
        for t, n in b:
            if t < since:
                base = n
        for t, n in b:
            if t >= since and (base is None or n > base):
                return t
        return None


# ---- agents' views ----------------------------------------------------------

def events(agent, backlog=500, seconds=1.0):
    """The agent's event backlog (`meshvisor events --backlog N --json`,
    interrupted after `seconds`): [dict]."""
    p = agent.cli_popen("events", "--backlog", str(backlog), "--json", role="viewer")
    time.sleep(seconds)
    try:
        p.send_signal(signal.SIGINT)
    except OSError:
        pass
    try:
        out, err = p.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    evs = mvlab.parse_json_lines(out)
    if not evs and err.strip():
        raise TestFailure("`meshvisor events` on %s: %s" % (agent.name, err.strip()[-300:]))
    return evs


def failovers_of(agent, dead):
    return [f for f in agent.cli_json("failovers").get("failovers", []) if f.get("dead") == dead]


def wait_failover_done(agent, dead, vms, timeout):
    """The latest failover of `dead` as agent knows it, once every VM in
    vms is done in it."""
    last = {}

    def pred():
        fos = last["fos"] = failovers_of(agent, dead)
        if not fos:
            return None
        f = max(fos, key=lambda x: (x.get("incarnation", 0), x.get("round", 0)))
        rows = {v.get("vm"): v for f2 in fos for v in f2.get("vms", [])}
        if all(g in rows and rows[g].get("done") for g in vms) and f.get("fenced_unix_ms"):
            return (f, fos)
        return None
    try:
        return wait_until(pred, timeout, "%s to list the failover of %s done for %s" %
                          (agent.name, dead, vms), 0.25)
    except TestFailure as e:
        raise TestFailure("%s; its `failovers`: %s" % (e, json.dumps(last.get("fos"))[:1500]))


def wait_ha_ready(agents, n_ha, replicas_each, timeout):
    alive = [a for a in agents if a.alive()]
    last = {}

    def pred():
        docs = last["docs"] = {a.name: a.cli_json("ha") for a in alive}
        for d in docs.values():
            if d.get("ha_vms") != n_ha or not d.get("quorate") or \
                    d.get("alive_voters") != len(alive):
                return None
        held = sum(d.get("replicas_held", 0) for d in docs.values())
        return docs if held >= n_ha * replicas_each else None
    try:
        docs = wait_until(pred, timeout, "`ha` on %s: %d HA VMs, quorate, %d replicas" %
                          ([a.name for a in alive], n_ha, n_ha * replicas_each), 0.3)
    except TestFailure as e:
        raise TestFailure("%s; last `ha`: %s" % (e, json.dumps(last.get("docs"))[:1500]))
    log("ha: %s" % {n: {k: d.get(k) for k in ("ok", "ha_vms", "voters", "majority",
                                              "alive_voters", "quorate", "replicas_held")}
                    for n, d in docs.items()})
    return docs


def qemu_pid(lab, host, guest):
    pids = []
    for pid in mvlab.pids_in_ns("mnt", host.mnt_ino):
        try:
            cmd = open("/proc/%d/cmdline" % pid, "rb").read()
        except OSError:
            continue
        if b"qemu-system" in cmd and (b"guest=%s," % guest.encode()) in cmd:
            pids.append(pid)
    check(len(pids) == 1, "QEMU process of %s on %s: %r" % (guest, host.name, pids))
    return pids[0]


def check_restarted_elsewhere(lab, smp, g, old, t_kill, timeout, what):
    """Waits until g runs (virsh) on exactly one host other than old and has
    printed a new boot line and two ticks; checks the ordering against the
    old copy. Returns (host name, t_running wall, t_boot wall)."""
    def pred():
        act = smp.active_hosts_now(g)
        if len(act) == 1 and act[0] != old:
            h = lab.host(act[0])
            if h.domstate(g) == "running":
                return act[0]
        return None
    new = wait_until(pred, timeout, "%s running on exactly one host other than %s" % (g, old),
                     0.05)
    t_run = smp.first_virsh(g, new, "running", t_kill) or time.time()
    # a restart: a new boot line, counting from 1 again
    t_boot = wait_until(lambda: smp.boot_seen(g, t_kill), 10, "%s's new boot line" % g, 0.05)
    after = wait_ticks_since_boot(lab, g, 2)
    check(after[:2] == [1, 2], "%s: %s: counter after the restart does not start at 1: %r" %
          (what, g, after[:10]))
    # ordering: the new copy appears only after the old one was last seen
    old_last = smp.last_active(g, old, t_kill - 5)
    t_first, where = smp.first_active_elsewhere(g, old, t_kill)
    log("%s: %s old copy on %s last seen active %s; new copy first seen on %s %s; "
        "new boot line seen %s (wall, relative to the kill)" %
        (what, g, old, "%+.3fs" % (old_last - t_kill) if old_last else "never",
         where, "%+.3fs" % (t_first - t_kill) if t_first else "never", "%+.3fs" % (t_boot - t_kill)))
    if old_last is not None:
        check(t_first is not None and t_first > old_last,
              "%s: %s was seen active on %s at %+.3fs, after the old copy on %s was last seen "
              "at %+.3fs" % (what, g, where, (t_first or 0) - t_kill, old, old_last - t_kill))
        check(t_boot > old_last, "%s: %s's new boot line (%+.3fs) came before its old copy was "
              "last seen active (%+.3fs)" % (what, g, t_boot - t_kill, old_last - t_kill))
    return new, t_run, t_boot


def wait_ticks_since_boot(lab, g, n, timeout=15):
    """Waits until g printed n ticks after its latest boot line; returns
    them (a restarted guest counts from 1 again)."""
    def pred():
        boots = lab.guest_boots(g)
        ticks = [t for b, t in mvlab.parse_serial(lab.guest_serial(g)) if b == boots]
        return ticks if len(ticks) >= n else None
    return wait_until(pred, timeout, "%s to print %d ticks after its latest boot" % (g, n), 0.1)


def check_took(f, row, t_run, what):
    """The failover row's took_ms (plan learned -> running on the target)
    against what virsh showed (first sample with the new copy running)."""
    seen_ms = t_run * 1000.0 - f.get("chosen_unix_ms", 0)
    log("%s. %s: `failovers` took_ms %s (fenced_to_last_restart_ms %s); virsh saw it running "
        "%.0f ms after chosen_unix_ms" % (what, row.get("vm"), row.get("took_ms"),
                                          f.get("fenced_to_last_restart_ms"), seen_ms))
    if row.get("took_ms", 0) + 200 < seen_ms:
        BUGS.append("%s. `failovers` took_ms %s for %s, but virsh first saw it running %.0f ms "
                    "after the plan was chosen (fenced_to_last_restart_ms %s): the restart's "
                    "own duration is not counted" %
                    (what, row.get("took_ms"), row.get("vm"), seen_ms,
                     f.get("fenced_to_last_restart_ms")))


LOG_TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z")


def log_lines_since(agent, pattern, since):
    """Lines of the agent's logs matching pattern, stamped at or after the
    wall time since."""
    import datetime
    rx = re.compile(pattern)
    out = []
    for line in agent.log_text().splitlines():
        m = LOG_TS.match(line)
        if not m or not rx.search(line):
            continue
        t = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
            tzinfo=datetime.timezone.utc).timestamp()
        if t >= since:
            out.append(line)
    return out


def check_targets_not_suspected(agents, targets, t_kill, what):
    """A survivor restarting VMs stays healthy: its peers should not
    suspect it meanwhile (a blocked event loop stops answering probes)."""
    for hn in sorted(targets):
        a = agents[hn]
        lines = log_lines_since(a, r"refuted suspicion about us", t_kill)
        restarts = log_lines_since(a, r"failover (restarting vm|vm restarted)", t_kill)
        if lines:
            BUGS.append("%s. target %s was suspected by its peers while it restarted the failed-"
                        "over VMs (an event loop blocked by synchronous define+start answers no "
                        "probe; or this machine was badly overloaded): "
                        "%s; its restarts: %s" % (what, hn, " / ".join(l[:220] for l in lines[:2]),
                                                  " / ".join(l[:160] for l in restarts[:4])))


def ev_find(evs, kind, node=None, vm=None, since_ms=0):
    return [e for e in evs if e.get("kind") == kind and e.get("unix_ms", 0) >= since_ms and
            (node is None or e.get("node") == node) and (vm is None or e.get("vm") == vm)]


# ---- the test ---------------------------------------------------------------

DUMP_RE = re.compile(r" (WARN|ERROR|INFO) | failover | swim |fence|restart|replica")


def dump_agent_logs(agents, n=120):
    """The failover-relevant lines of every agent's logs (not the RPC chatter)."""
    for a in agents:
        if a.log_path:
            lines = [l for l in a.log_text().splitlines()
                     if DUMP_RE.search(l) and "connection refused" not in l and
                     "kind=rpc" not in l]
            print("----- agent %s (%s), last %d failover-relevant lines -----" %
                  (a.name, "running" if a.alive() else "exited %s" %
                   (a.proc.returncode if a.proc else "-"), n))
            print("\n".join(l[:400] for l in lines[-n:]))

def failover_section(host):
    return {"failover": {"heartbeat_ms": FO_HEARTBEAT_MS, "fence_after_ms": FENCE_AFTER_MS,
                         "fence_margin_ms": FENCE_MARGIN_MS, "fence_uri": host.tcp_uri}}


def main(args):
    run_lab(args, run, PLACE)


def run_lab(args, run_fn, guests):
    """A three-host lab with an agent set, torn down however the test
    ends: run_fn(lab, agents, state) may put its sampler in state["smp"];
    on a failure the agents' failover lines, the libvirtd logs and the
    guests' serial tails are printed."""
    state = {}

    def cleanup():
        if "smp" in state:
            state["smp"].stop_ev.set()
        if "agents" in state:
            state["agents"].stop_all()
    mvlab.install_signal_handlers(cleanup)
    lab = mvlab.Lab(3).up()
    t_all = time.monotonic()
    try:
        agents = state["agents"] = mvlab.LabAgents(lab, args.meshvisor)
        run_fn(lab, agents, state)
    except BaseException:
        try:
            if "agents" in state:
                dump_agent_logs(state["agents"])
            for h in lab.hosts:
                print("----- libvirtd log of %s -----" % h.name)
                print(h._tail(h.libvirtd_log, 15))
            for g in guests:
                print("----- serial of %s (last 300 chars) -----" % g)
                print(lab.guest_serial(g)[-300:])
        except Exception:
            traceback.print_exc()
        raise
    finally:
        if "smp" in state:
            state["smp"].stop()
        if "agents" in state:
            state["agents"].stop_all()
        lab.down()
    log("lab part took %.1fs" % (time.monotonic() - t_all))


def start_agents(lab, agents, config_fn):
    """Every host's agent (h1 the seed), config_fn(host) its extra config;
    returns once all are alive everywhere."""
    seed = agents[lab.hosts[0].name]
    seed.start(extra=config_fn(lab.hosts[0]))
    for h in lab.hosts[1:]:
        agents[h.name].start(join=[seed.peer_addr], extra=config_fn(h), wait=False)
    for a in agents:
        a.wait_ready()
    agents.wait_converged(timeout=30)
    return seed


def run(lab, agents, state):
    seed = start_agents(lab, agents, failover_section)
    for g, hn in PLACE.items():
        lab.start_guest(lab.host(hn), g, vcpus=1, mem_mib=MEM_MIB)
    for g in PLACE:
        lab.wait_guest_ticks(g, 1, timeout=15)
    for g in PLACE:
        r = seed.cli("vm", "set-ha", g, "on", "--priority", str(PRIORITY[g]))
        check(r.returncode == 0, "vm set-ha %s on: exit %d %s %s" %
              (g, r.returncode, r.stdout.strip(), r.stderr.strip()))

    def all_ha():
        for a in agents:
            rows = {v["name"]: v for v in a.vms() if v.get("name") in PLACE}
            for g, hn in PLACE.items():
                v = rows.get(g)
                if not v or not v.get("ha") or v.get("node") != hn or v.get("state") != "running":
                    return None
        return True
    wait_until(all_ha, 15, "every agent to list the 3 guests HA and running where placed", 0.25)
    # each HA VM's definition on both other hosts (R = 3 > 2 peers)
    wait_ha_ready(list(agents), 3, 2, 30)

    smp = state["smp"] = Sampler(lab, PLACE).start()
    time.sleep(0.5)
    failures = []
    for name, fn in (("C", case_c), ("B", case_b), ("A", case_a)):
        try:
            fn(lab, agents, smp)
        except TestFailure as e:
            log("%s FAILED: %s" % (name, e))
            failures.append("%s: %s" % (name, e))
            if name == "B" and not agents["h2"].alive():
                # A needs a majority of 3 after h1 dies: bring h2's agent back
                try:
                    restore_h2(lab, agents)
                except TestFailure as e2:
                    failures.append("B (restoring h2's agent): %s" % e2)
                    break
    smp.stop()
    log("sampler: %d virsh rounds (%.0f ms apart on average), %d process scans" %
        (len(smp.rounds), 1000 * (smp.rounds[-1][0] - smp.rounds[0][0]) /
         max(1, len(smp.rounds) - 1) if smp.rounds else 0, len(smp.scans)))
    if smp.errors:
        log("sampler errors: %s" % smp.errors)
    if smp.violations:
        failures.append("a guest was active on two hosts at once (%d samples): %s" %
                        (len(smp.violations), " | ".join(smp.violations[:6])))
    else:
        log("never running twice: no virsh round and no process scan saw a guest active on "
            "two hosts")
    if BUGS:
        failures.append("daemon bug(s): " + " | ".join(BUGS))
    if failures:
        raise TestFailure(" || ".join(failures))


def case_c(lab, agents, smp):
    """kill -9 the QEMU of lab-ha-c on h3 -> restarted on h3 by its agent."""
    h3 = lab.host("h3")
    g = GC
    pid = qemu_pid(lab, h3, g)
    boots0 = lab.guest_boots(g)
    t_kill = time.time()
    os.kill(pid, signal.SIGKILL)
    log("C. kill -9 QEMU of %s on h3 (pid %d)" % (g, pid))
    wait_until(lambda: h3.domstate(g) in INACTIVE, 10, "%s to stop on h3" % g, 0.05)
    t_off = time.time()
    state_off = h3.domstate(g)

    def back():
        return lab.guest_boots(g) > boots0 and h3.domstate(g) == "running"
    wait_until(back, CRASH_RESTART_BOUND_S, "%s to run on h3 again (new boot line)" % g, 0.05)
    t_back = time.time()
    t_boot = smp.boot_seen(g, t_kill) or t_back
    after = wait_ticks_since_boot(lab, g, 2)
    check(after[:2] == [1, 2], "C. %s: counter after the restart does not start at 1: %r" %
          (g, after[:10]))
    w = lab.where(g)
    check(w.get("h3") == "running" and all(s in INACTIVE for hn, s in w.items() if hn != "h3"),
          "C. %s should run on h3 only, virsh says %r" % (g, w))
    evs = events(agents["h3"])
    crashed = ev_find(evs, "vm-crashed", vm=g, since_ms=int(t_kill * 1000) - 1000)
    restarted = ev_find(evs, "vm-restarted-locally", vm=g, since_ms=int(t_kill * 1000) - 1000)
    log("C. events on h3: %s" % [(e["kind"], e.get("vm"), e.get("text")) for e in crashed +
                                 restarted])
    check(crashed, "C. no vm-crashed event for %s on h3: %s" %
          (g, [(e.get("kind"), e.get("vm")) for e in evs[-15:]]))
    check(restarted, "C. no vm-restarted-locally event for %s on h3" % g)
    check(restarted[0]["unix_ms"] >= crashed[0]["unix_ms"],
          "C. vm-restarted-locally before vm-crashed: %r %r" % (crashed[0], restarted[0]))
    # an HA VM that merely crashed is not failed over: no other agent starts it
    for hn in ("h1", "h2"):
        check(lab.host(hn).domstate(g) is None, "C. %s is defined on %s too" % (g, hn))
    log("FIGURE VM-level HA (QEMU of a TCG guest killed on a healthy host): stopped (%s) "
        "seen %.2fs after the kill; running again on the same host %.2fs after the kill "
        "(agent's restart delay 1 s); new boot line %.2fs; vm-crashed -> "
        "vm-restarted-locally %d ms" %
        (state_off, t_off - t_kill, t_back - t_kill, t_boot - t_kill,
         restarted[0]["unix_ms"] - crashed[0]["unix_ms"]))


def agent_pid(agent):
    pid = agent.proc.pid
    cmd = open("/proc/%d/cmdline" % pid, "rb").read().split(b"\0")
    check(cmd[:2] == [agent.agents.binary.encode(), b"agent"],
          "pid %d of agent %s is not the agent: %r" % (pid, agent.name, cmd))
    return pid


def restore_h2(lab, agents):
    a = agents["h2"]
    if a.alive():
        return
    a.start(join=[agents["h1"].peer_addr, agents["h3"].peer_addr],
            extra=failover_section(lab.host("h2")))
    agents.wait_converged(timeout=40)
    wait_ha_ready([x for x in agents if x.host.alive()], 3, 2, 45)
    evs = ev_find(events(a), "stale-copy-removed")
    log("B'. h2's agent is back (new incarnation); its stale copies: %s; virsh on h2: %s" %
        ([(e.get("vm"), e.get("text")) for e in evs],
         lab.host("h2").virsh("list", "--all").strip().splitlines()[2:]))


def case_b(lab, agents, smp):
    """kill -9 h2's agent only -> h2 fenced through its libvirt, lab-ha-b
    restarted elsewhere, never running twice."""
    h2 = lab.host("h2")
    g = GB
    where0 = lab.where(g)
    check(where0.get("h2") == "running", "B. %s is not running on h2 before: %r" % (g, where0))
    a2 = agents["h2"]
    pid = agent_pid(a2)
    t_kill = time.time()
    os.kill(pid, signal.SIGKILL)
    a2.proc.wait(5)
    log("B. kill -9 h2's agent (pid %d); its libvirtd and %s keep running" % (pid, g))
    new, t_run, t_boot = check_restarted_elsewhere(lab, smp, g, "h2", t_kill,
                                                   AGENT_DEATH_BOUND_S, "B")
    st = h2.domstate(g)
    check(st == "shut off", "B. virsh on h2 says %s is %r, want shut off (fenced)" % (g, st))
    t_off = smp.first_virsh(g, "h2", "shut off", t_kill)
    survivors = [agents["h1"], agents["h3"]]
    rows = {}
    for a in survivors:
        f, fos = wait_failover_done(a, "h2", [g], 20)
        rows[a.name] = f
        log("B. failovers on %s: %s" % (a.name, json.dumps(fos)[:900]))
    f = rows[new] if new in rows else rows["h1"]
    how = f.get("fence_how", "")
    check("libvirt" in how, "B. fence_how %r does not name h2's libvirt" % how)
    check("wait" not in how, "B. the fence of h2 was waited out (%r), not done through its "
          "libvirt" % how)
    c2f = f.get("chosen_to_fenced_ms", 10 ** 9)
    check(c2f < REMOTE_FENCE_BOUND_MS, "B. chosen -> fenced took %s ms (bound %d ms: a fence "
          "through libvirt is not a wait of fence_after_ms %d)" % (c2f, REMOTE_FENCE_BOUND_MS,
                                                                  FENCE_AFTER_MS))
    vrow = [v for v in f.get("vms", []) if v.get("vm") == g]
    check(vrow and vrow[0].get("ok") and vrow[0].get("target") == new,
          "B. failover row for %s: %r (virsh: running on %s)" % (g, vrow, new))
    check_took(f, vrow[0], t_run, "B")
    check_targets_not_suspected(agents, [new], t_kill, "B")
    evs = events(agents[new])
    dead = ev_find(evs, "member-dead", node="h2", since_ms=int(t_kill * 1000))
    chosen = ev_find(evs, "plan-chosen", node="h2", since_ms=int(t_kill * 1000))
    fenced = [e for e in evs if e.get("kind") in ("fence-remote", "fence-confirmed") and
              e.get("node") == "h2" and e.get("unix_ms", 0) >= int(t_kill * 1000)]
    restarted = ev_find(evs, "vm-restarted", vm=g, since_ms=int(t_kill * 1000))
    log("B. events on %s: %s" % (new, [(e["kind"], e.get("node"), e.get("vm"), e.get("text"))
                                       for e in dead + chosen + fenced + restarted]))
    check(dead and chosen and restarted, "B. events on %s lack member-dead/plan-chosen/"
          "vm-restarted for h2: %s" % (new, [(e.get("kind"), e.get("node")) for e in evs[-20:]]))
    # the remote fence happened in h2's libvirt (the daemon there logs nothing
    # at level warning; the QEMU log names the shutdown reason)
    qlog = h2.qemu_log(g)
    qtail = h2._tail(qlog, 3)
    t_fenced = f.get("fenced_unix_ms", 0) / 1000.0
    log("B. h2's QEMU log of %s ends: %s" % (g, qtail.replace("\n", " / ")[-300:]))
    log("FIGURE agent death (kill -9 of h2's agent only; FAST_SWIM, heartbeat %d ms, "
        "fence_after %d ms): kill -> member-dead %.2fs; kill -> plan chosen %.2fs; "
        "chosen -> fenced through h2's libvirt %d ms (kill -> fenced %.2fs; virsh on h2 saw "
        "shut off at %s); kill -> running on %s %.2fs (new boot line %.2fs); "
        "fence_how %r" %
        (FO_HEARTBEAT_MS, FENCE_AFTER_MS, dead[0]["unix_ms"] / 1000.0 - t_kill,
         f.get("chosen_unix_ms", 0) / 1000.0 - t_kill, c2f, t_fenced - t_kill,
         "%.2fs" % (t_off - t_kill) if t_off else "-", new, t_run - t_kill,
         t_boot - t_kill, how))
    check(smp.last_active(g, "h2", t_kill) is None or
          smp.last_active(g, "h2", t_kill) <= t_fenced + 0.5,
          "B. %s was seen active on h2 after it was reported fenced" % g)
    restore_h2(lab, agents)


def case_a(lab, agents, smp):
    """host.kill() of h1 -> its HA guests restart on h2/h3 after the fence
    deadline (its libvirt is dead: nobody can confirm the fence)."""
    h1 = lab.host("h1")
    on_h1 = sorted(g for g in PLACE if lab.host("h1").domstate(g) == "running")
    check(GA in on_h1, "A. %s is not running on h1 before: %r" % (GA, lab.where(GA)))
    t_kill = time.time()
    h1.kill()
    log("A. h1 killed (every process: libvirtd, QEMU of %s, agent) in %.2fs" %
        (on_h1, time.time() - t_kill))
    res = {}
    for g in on_h1:
        res[g] = check_restarted_elsewhere(lab, smp, g, "h1", t_kill, HOST_DEATH_BOUND_S,
                                           "A")
    survivors = [agents["h2"], agents["h3"]]
    targets = set(r[0] for r in res.values())
    fo = {}
    # targets first (they learn the fence by their own wait), then the others
    survivors.sort(key=lambda a: a.name not in targets)
    for a in survivors:
        try:
            f, fos = wait_failover_done(a, "h1", on_h1, 20 if a.name in targets else 5)
        except TestFailure as e:
            if a.name in targets:
                raise
            # a survivor that restarts nothing never learns the waited fence
            BUGS.append("A. `failovers` on %s (a survivor that is no target) never shows the "
                        "fence of h1: %s" % (a.name, e))
            continue
        fo[a.name] = f
        log("A. failovers on %s: %s" % (a.name, json.dumps(fos)[:900]))
        how = f.get("fence_how", "")
        check("wait" in how, "A. %s: fence_how %r (h1's libvirt is dead: the fence must be "
              "waited out)" % (a.name, how))
        # waited out from the last acknowledgement h1 can have had (at
        # the latest, the kill): never less than fence_after_ms after it
        kill_to_fenced = f.get("fenced_unix_ms", 0) / 1000.0 - t_kill
        check(kill_to_fenced >= FENCE_AFTER_MS / 1000.0,
              "A. %s: kill -> fenced %.2fs, less than fence_after_ms %d" %
              (a.name, kill_to_fenced, FENCE_AFTER_MS))
        rows = {v.get("vm"): v for v in f.get("vms", [])}
        for g in on_h1:
            check(g in rows and rows[g].get("ok") and rows[g].get("target") == res[g][0],
                  "A. %s: failover row of %s %r, virsh has it on %s" %
                  (a.name, g, rows.get(g), res[g][0]))
    for g, r in res.items():
        row = [v for v in fo[r[0]].get("vms", []) if v.get("vm") == g]
        check_took(fo[r[0]], row[0], r[1], "A")
    check_targets_not_suspected(agents, targets, t_kill, "A")
    tgt = sorted(targets)[0]
    f = fo[tgt]
    evs = events(agents[tgt])
    dead = ev_find(evs, "member-dead", node="h1", since_ms=int(t_kill * 1000))
    check(dead, "A. no member-dead event for h1 on %s" % tgt)
    t_fenced = f.get("fenced_unix_ms", 0) / 1000.0
    last_run = max(r[1] for r in res.values())
    log("FIGURE host death (h1 killed: libvirtd, %d HA guest(s), agent; FAST_SWIM, heartbeat "
        "%d ms, fence_after %d + margin %d ms): kill -> member-dead %.2fs; kill -> plan chosen "
        "%.2fs; chosen -> fenced (waited) %d ms (kill -> fenced %.2fs); kill -> all running "
        "elsewhere %.2fs (%s); fence_how %r" %
        (len(on_h1), FO_HEARTBEAT_MS, FENCE_AFTER_MS, FENCE_MARGIN_MS,
         dead[0]["unix_ms"] / 1000.0 - t_kill, f.get("chosen_unix_ms", 0) / 1000.0 - t_kill,
         f.get("chosen_to_fenced_ms", -1), t_fenced - t_kill, last_run - t_kill,
         ", ".join("%s on %s %.2fs, boot line %.2fs" % (g, r[0], r[1] - t_kill, r[2] - t_kill)
                   for g, r in sorted(res.items())), f.get("fence_how")))
    for g, r in res.items():
        check(r[1] >= t_fenced - 0.05, "A. %s seen running on %s at %.2fs, before the fence "
              "(%.2fs)" % (g, r[0], r[1] - t_kill, t_fenced - t_kill))


if __name__ == "__main__":
    mvlab.run_test(main, 170)
