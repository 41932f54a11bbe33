#!/usr/bin/env python3
"""A host cut off in its own network namespace fences itself before the
others restart its HA VMs; after the link heals there is one view and
every VM runs on exactly one host.

n1 and n2 run in the test's namespace on the host side of a veth pair;
n3 runs inside a network namespace of its own behind the other end, with
two HA VMs on its test-driver host. The link is set down (both ends): n3
loses quorum (1 of 3 voters), destroys its HA VMs after fence_after_ms,
while n1 and n2 (2 of 3) declare it dead, choose a plan and restart the
VMs only after fence_after_ms + margin. The test compares the times each
side recorded in its event stream (same machine clock). Then the link
comes back: n3 rejoins (refuting its death), learns that its VMs now run
elsewhere with a higher epoch and undefines its copies.

n3 drives a fake watchdog device (tests/integration/fakewd.c, preloaded:
a plain file answering the watchdog ioctls, every operation logged with
its CLOCK_MONOTONIC time). From that log the test replays what a real
watchdog would have done: the device is configured with a timeout of
fence_margin_ms less 250 ms in whole seconds (2 s), petted while n3 is quorate and,
cut off, until its self-fence, then disarmed by the magic close once the
self-fence has destroyed n3's HA VMs, before it would have fired; petted
again after the heal; disarmed by the clean stop. It never fires. First,
an agent whose device rounds the timeout up beyond fence_margin_ms
refuses to start, naming the numbers, and leaves the device stopped.

Needs root (ip netns); the namespace and veth pair are removed at the end,
also on failure."""
import os
import signal
import subprocess
import time

import mvtest
from mvtest import check, log

GIB = 1024 * 1024
MIB = 1024
FENCE_AFTER_MS = 3000
FENCE_MARGIN_MS = 2250
FAILOVER = {"heartbeat_ms": 250, "fence_after_ms": FENCE_AFTER_MS,
            "fence_margin_ms": FENCE_MARGIN_MS}
UUIDS = {"iso-a": "6d657368-0005-0003-0000-000000000001",
         "iso-b": "6d657368-0005-0003-0000-000000000002"}
WD_TIMEOUT_S = (FENCE_MARGIN_MS - 250) // 1000  # what the agent must set: 2 s
WD_DEFAULT_S = 60                       # the fake device's timeout before a set


# ---- the fake watchdog (fakewd.c) ------------------------------------------

def fakewd_env(t, path, log_path, min_timeout=None):
    env = dict(os.environ, MV_FAKEWD_PATH=path, MV_FAKEWD_LOG=log_path,
               MV_FAKEWD_TIMEOUT=str(WD_DEFAULT_S))
    env.update(mvtest.preload_env(t, "MV_FAKEWD_LIB", "libmv_fakewd.so", "fake watchdog"))
    if min_timeout is not None:
        env["MV_FAKEWD_MIN_TIMEOUT"] = str(min_timeout)
    return env


def wd_ops(log_path):
    """The fake device's log: [(monotonic seconds, op, [args])]."""
    out = []
    if not os.path.exists(log_path):
        return out
    with open(log_path) as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2:
                out.append((float(parts[0]), parts[1], parts[2:]))
    return out


def wd_replay(ops, until):
    """Replays the log like the kernel's watchdog core would run it and
    returns (fired_at or None, armed at the end). Open starts a stopped
    timer; a set, a pet, a keepalive or a 'V' write pets; the close after
    a 'V' stops it; any other close (or the process exiting) leaves it
    running, and a later open does not restart its countdown."""
    armed, last, timeout = False, None, WD_DEFAULT_S
    for t, op, args in ops:
        if armed and t - last > timeout:
            return last + timeout, True
        if op == "open" and not armed:
            armed, last = True, t
        elif op == "settimeout":
            timeout, last = int(args[1]), t
        elif op in ("pet", "magic", "keepalive"):
            last = t
        elif op == "magic-close":
            armed = False
    if armed and until - last > timeout:
        return last + timeout, True
    return None, armed


def check_refusal(t, n3):
    """An agent whose device sets 30 s for the 3 s it asked for refuses to
    start (exit 1), says why with the numbers, and stops the device again."""
    wd = os.path.join(t.tmp, "refuse-watchdog")
    wd_log = wd + ".log"
    open(wd, "w").close()
    data = os.path.join(t.tmp, "refuse-data")
    n3.write_config([], {"data_dir": data, "failover": dict(FAILOVER, watchdog=wd)})
    r = subprocess.run([n3.c.binary, "agent", "--config", n3.config], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=30, stdin=subprocess.DEVNULL,
                       env=fakewd_env(t, wd, wd_log, min_timeout=30))
    want = ("failover.watchdog %s: the device set a 30 s timeout, but failover.fence_margin_ms "
            "%d needs one of at most %d s" % (wd, FENCE_MARGIN_MS, WD_TIMEOUT_S))
    check(r.returncode == 1, "an agent with a 30 s watchdog exited %d, not 1:\n%s" %
          (r.returncode, r.stderr[-2000:]))
    check(want in r.stderr, "its stderr lacks %r:\n%s" % (want, r.stderr[-2000:]))
    ops = wd_ops(wd_log)
    names = [op for _, op, _ in ops]
    check(("settimeout", ["%d" % WD_TIMEOUT_S, "30"]) in [(op, a) for _, op, a in ops],
          "the refusing agent did not ask for %d s: %s" % (WD_TIMEOUT_S, names))
    check(names[-2:] == ["magic", "magic-close"],
          "the refusing agent left its device armed: %s" % names)
    log("an agent whose watchdog rounds %d s up to 30 s refuses to start: %s" %
        (WD_TIMEOUT_S, want))



def sh(*cmd, check_rc=True):
    r = subprocess.run(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check_rc and r.returncode != 0:
        raise mvtest.TestFailure("%s: %s" % (" ".join(cmd), r.stderr.strip()))
    return r


class Netns:
    def __init__(self, tag):
        self.ns = "mvfo%s" % tag
        self.vh = "mvfoh%s" % tag
        self.vn = "mvfon%s" % tag
        octet = int(tag) % 200 + 20
        self.host_ip = "10.213.%d.1" % octet
        self.ns_ip = "10.213.%d.2" % octet

    def up(self):
        self.down()
        sh("ip", "netns", "add", self.ns)
        sh("ip", "link", "add", self.vh, "type", "veth", "peer", "name", self.vn)
        sh("ip", "link", "set", self.vn, "netns", self.ns)
        sh("ip", "addr", "add", self.host_ip + "/24", "dev", self.vh)
        sh("ip", "link", "set", self.vh, "up")
        sh("ip", "netns", "exec", self.ns, "ip", "addr", "add", self.ns_ip + "/24", "dev", self.vn)
        sh("ip", "netns", "exec", self.ns, "ip", "link", "set", self.vn, "up")
        sh("ip", "netns", "exec", self.ns, "ip", "link", "set", "lo", "up")

    def cut(self):
        sh("ip", "link", "set", self.vh, "down")
        sh("ip", "netns", "exec", self.ns, "ip", "link", "set", self.vn, "down")

    def heal(self):
        sh("ip", "link", "set", self.vh, "up")
        sh("ip", "netns", "exec", self.ns, "ip", "link", "set", self.vn, "up")

    def down(self):
        sh("ip", "link", "del", self.vh, check_rc=False)
        sh("ip", "netns", "del", self.ns, check_rc=False)


class NsAgent(mvtest.Agent):
    """An agent reached at its own IP (host side of the veth, or inside the
    namespace) rather than 127.0.0.1."""

    @property
    def peer_addr(self):
        return "%s:%d" % (self.ip, self.peer_port)

    @property
    def rpc_addr(self):
        return "%s:%d" % (self.ip, self.rpc_port)

    def wait_ready(self, timeout=15):
        def ready():
            if self.proc.poll() is not None:
                raise mvtest.TestFailure("%s exited with %s during start:\n%s" %
                                         (self.name, self.proc.returncode, self.log_tail()))
            return self.cli("status").returncode == 0
        mvtest.wait_until(ready, timeout, "%s to answer on its RPC port" % self.name, 0.2)






def main(t):
    if os.geteuid() != 0:
        raise mvtest.TestFailure("needs root for ip netns (run as root; CI does)")
    net = Netns(str(os.getpid() % 10000))
    try:
        run(t, net)
    finally:
        net.down()


def run(t, net):
    net.up()
    c = t.cluster(3, agent_extra={"failover": FAILOVER})
    check_refusal(t, c["n3"])
    # certificates carry the IP each agent is reached at
    for a in c.agents.values():
        ip = net.ns_ip if a.name == "n3" else net.host_ip
        a.__class__ = NsAgent
        a.ip = ip
        a.cert, a.key = c.certs.make("node", a.name, subdir=a.name + "-ns", ip=ip)
    n1, n2, n3 = c["n1"], c["n2"], c["n3"]
    f3 = mvtest.write_host_xml(os.path.join(t.tmp, "n3.xml"), 4, 8 * GIB,
                               [dict(name=n, uuid=u, vcpus=1, memory_kib=512 * MIB)
                                for n, u in sorted(UUIDS.items())])
    files = {n: mvtest.write_host_xml(os.path.join(t.tmp, "%s.xml" % n), 4, 8 * GIB, [])
             for n in ("n1", "n2")}
    files["n3"] = f3

    # n3 drives a fake watchdog device (fakewd.c: a plain file, every
    # operation logged with its monotonic time)
    wd = os.path.join(t.tmp, "n3-watchdog")
    wd_log = wd + ".log"
    open(wd, "w").close()

    def pets():
        return sum(1 for _, op, _ in wd_ops(wd_log) if op == "pet")

    def extra(a):
        ip = net.ns_ip if a.name == "n3" else net.host_ip
        e = {"bind": ip, "advertise": ip, "libvirt_uri": "test://" + files[a.name]}
        if a.name == "n3":
            e["failover"] = dict(FAILOVER, watchdog=wd)
        return e

    # n1 (seed) and n2 on the host side; n3 inside the namespace
    n1.start(extra=extra(n1))
    n2.start(join=[n1.peer_addr], extra=extra(n2))
    n3_start_netns(n3, net, join=[n1.peer_addr], extra=extra(n3),
                   env=fakewd_env(t, wd, wd_log))
    n3.wait_ready()
    c.wait_converged(timeout=30)
    c.wait_states(timeout=30)
    for vm in UUIDS:
        r = n1.cli("vm", "set-ha", vm, "on", "--priority", "50")
        check(r.returncode == 0, "set-ha %s: %s" % (vm, r.stderr))

    def replicated():
        return sum(a.ha().get("replicas_held", 0) for a in (n1, n2)) >= 4 or None
    mvtest.wait_until(replicated, 20, "both HA VMs replicated to n1 and n2")
    time.sleep(1.0)

    pets_before = pets()
    check(pets_before > 0, "n3 never petted its watchdog while quorate")
    ops = wd_ops(wd_log)
    sets = [(op, a) for _, op, a in ops if op == "settimeout"]
    check(sets and all(a == ["%d" % WD_TIMEOUT_S] * 2 for _, a in sets),
          "n3 did not configure a %d s timeout: %s" % (WD_TIMEOUT_S, sets))
    check(("gettimeout", ["%d" % WD_TIMEOUT_S]) in [(op, a) for _, op, a in ops],
          "n3 never read back its %d s timeout: %s" % (WD_TIMEOUT_S, [o for _, o, _ in ops]))
    check(wd_replay(ops, time.monotonic()) == (None, True),
          "n3's watchdog is not armed, or would have fired, before the cut: %s" %
          [(round(tt, 2), o) for tt, o, _ in ops])
    t_cut = time.time()
    m_cut = time.monotonic()
    net.cut()
    log("link cut at %.3f" % t_cut)

    def moved():
        for a in (n1, n2):
            w = a.vm_copies()
            for vm in UUIDS:
                run = [h for h, st, _ in w.get(vm, []) if st == "running" and h != "n3"]
                if len(run) != 1:
                    return None
        return True
    mvtest.wait_until(moved, 40, "n3's HA VMs running on n1 or n2", 0.25)
    log("n3's HA VMs restarted on the majority side %.2fs after the cut" % (time.time() - t_cut))
    # without quorum n3 pets until its self-fence; once that destroyed its
    # HA VMs it disarms with the magic close, before the watchdog fires
    s1 = pets()
    time.sleep(1.0)
    s2 = pets()
    check(s1 == s2, "n3 kept petting its watchdog after its self-fence (%d -> %d pets)" %
          (s1, s2))
    ops = wd_ops(wd_log)
    during = [(tt, op) for tt, op, _ in ops if tt > m_cut]
    check(any(op == "magic-close" for _, op in during),
          "n3 did not disarm its watchdog after fencing itself: %s" %
          [(round(tt - m_cut, 2), op) for tt, op in during])
    t_close = min(tt for tt, op in during if op == "magic-close")
    last_pet = max(tt for tt, op, _ in ops if op == "pet" and tt < t_close)
    check(t_close - last_pet <= WD_TIMEOUT_S,
          "n3 disarmed %.2fs after its last pet: a %d s watchdog had reset it by then" %
          (t_close - last_pet, WD_TIMEOUT_S))
    check(last_pet - m_cut >= FENCE_AFTER_MS / 1000.0 - 1.0,
          "n3 stopped petting %.2fs after the cut, long before its self-fence" %
          (last_pet - m_cut))
    check(wd_replay(ops, time.monotonic()) == (None, False),
          "n3's watchdog would have fired, or is still armed, during the cut: %s" %
          [(round(tt - m_cut, 2), op) for tt, op in during])
    log("watchdog: %d pets while quorate; cut off, petted until the self-fence: last pet "
        "%.2fs after the cut, disarmed %.2fs after it (timeout %d s)" %
        (pets_before, last_pet - m_cut, t_close - last_pet, WD_TIMEOUT_S))

    net.heal()
    log("link healed")
    c.wait_converged(timeout=40)

    def one_copy():
        for a in (n1, n2, n3):
            w = a.vm_copies()
            for vm in UUIDS:
                copies = w.get(vm, [])
                if len(copies) != 1 or copies[0][0] == "n3" or copies[0][1] != "running":
                    return None
        return True
    mvtest.wait_until(one_copy, 40, "every VM on exactly one host (not n3) in every view", 0.25)

    ev3 = n3.events()
    ev1 = n1.events() + n2.events()
    fenced = [e for e in ev3 if e["kind"] in ("fenced-self", "vm-fenced")]
    check(fenced, "n3 recorded no self-fence: %s" % [e["kind"] for e in ev3])
    t_fence = min(e["unix_ms"] for e in fenced)
    restarts = [e for e in ev1 if e["kind"] == "vm-restarted"]
    check(len({e["vm"] for e in restarts}) == 2, "restart events: %s" % restarts)
    t_restart = min(e["unix_ms"] for e in restarts)
    log("n3 fenced itself at +%.2fs, first restart at +%.2fs (after the cut)" %
        (t_fence / 1000.0 - t_cut, t_restart / 1000.0 - t_cut))
    check(t_fence < t_restart, "n3 fenced itself %.3fs AFTER the first restart" %
          ((t_fence - t_restart) / 1000.0))
    check(t_fence / 1000.0 - t_cut >= FENCE_AFTER_MS / 1000.0 - 1.0,
          "n3 fenced itself only %.2fs after the cut" % (t_fence / 1000.0 - t_cut))
    kinds3 = [e["kind"] for e in ev3]
    check("quorum-lost" in kinds3, "n3 never reported losing quorum: %s" % kinds3)
    disarms = [e for e in ev3 if e["kind"] == "watchdog-disarmed"]
    check(any("self-fence" in e["text"] for e in disarms),
          "n3 recorded no watchdog-disarmed after its self-fence: %s" % kinds3)
    check("watchdog-armed" in kinds3, "n3 recorded no watchdog-armed: %s" % kinds3)
    # quorate again after the heal: armed again and petted; a clean stop disarms
    s3 = pets()
    mvtest.wait_until(lambda: pets() > s3 or None, 10,
                      "n3 to pet its watchdog again once quorate")
    n3.signal(signal.SIGTERM)
    n3.wait_exit(10)
    ops = wd_ops(wd_log)
    names = [op for _, op, _ in ops]
    check(names[-2:] == ["magic", "magic-close"],
          "n3's clean stop did not end with the magic close: %s" % names[-6:])
    fired, armed = wd_replay(ops, time.monotonic())
    check(fired is None and not armed,
          "a real watchdog would have reset n3 at +%.2fs after the cut" %
          ((fired or 0) - m_cut))


def n3_start_netns(agent, net, join, extra, env=None):
    """Agent.start, but inside the namespace."""
    agent.write_config(join, extra)
    agent.log_path = os.path.join(agent.dir, "agent-%d.log" % agent.starts)
    agent.starts += 1
    logf = open(agent.log_path, "w")
    agent.proc = subprocess.Popen(["ip", "netns", "exec", net.ns, agent.c.binary, "agent",
                                   "--config", agent.config], stdout=logf,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  preexec_fn=mvtest._child_setup, env=env)
    logf.close()
    mvtest._PROCS.append(agent.proc)
    log("started %s in netns %s pid %d" % (agent.name, net.ns, agent.proc.pid))


if __name__ == "__main__":
    mvtest.run(main, default_timeout=170)
