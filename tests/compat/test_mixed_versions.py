#!/usr/bin/env python3
"""A rolling upgrade's middle: agents of this release and of the previous
one (tests/compat/PREVIOUS_RELEASE, built from git by run-mixed.sh and
given as $MV_PREVIOUS_MESHVISOR) in one cluster, on libvirt's test driver.

n1, n3 and n5 run this release, n2, n4 and n6 the previous one.
  1. membership: all four converge, and each agent's `status` reports its
     own version (so the mix is real);
  2. node state: every agent holds every other's record (`nodes`), old and
     new alike;
  3. migration: a VM moves from an old host to a new one and from a new
     host to an old one (offline moves: the test driver cannot migrate),
     each asked through an agent of the other release;
  4. graceful leave: n6 (old) and n5 (new) stop with SIGTERM; every agent
     holds each `left`, not dead, and no failover opens for either (n6
     sends its LEFT once, so most take it relayed and unsigned);
  5. failover: kill -9 of an old host (n2) with HA VMs, then (after
     `force-leave n2`, which both releases take) of a new host (n3): each
     time the HA VMs run again on exactly one survivor, and `ha` on every
     survivor exits 0.
The CLI is this release's throughout (it talks to old agents too)."""
import os
import signal
import subprocess
import time

import mvtest
from mvtest import check, log

GIB = 1024 * 1024
MIB = 1024
FAILOVER = {"heartbeat_ms": 250, "fence_after_ms": 3000, "fence_margin_ms": 1500}
OLD = ("n2", "n4", "n6")


def uuid(i):
    return "6d657368-0014-0001-0000-%012d" % i


def host_files(t):
    files = {}
    k = 0
    for name in ("n1", "n2", "n3", "n4", "n5", "n6"):
        doms = []
        for vm in ("ha", "plain"):
            k += 1
            doms.append(dict(name="%s-%s" % (name, vm), uuid=uuid(k), vcpus=1,
                             memory_kib=512 * MIB))
        files[name] = mvtest.write_host_xml(os.path.join(t.tmp, "%s.xml" % name), 4, 8 * GIB,
                                            doms)
    return files


def where(c, vm, observer):
    """Hosts that run vm (running state) in observer's view."""
    out = []
    for v in observer.cli_json("vms")["vms"]:
        if v["name"] == vm and v["state"] == "running" and not v.get("stale"):
            out.append(v["node"])
    return out


def wait_for(pred, timeout, what):
    """pred() returns None when satisfied, else why not (shown on timeout)."""
    last = ["not checked"]

    def done():
        last[0] = pred()
        return last[0] is None
    try:
        mvtest.wait_until(done, timeout, what)
    except mvtest.TestFailure:
        raise mvtest.TestFailure("timed out after %ds waiting for %s: %s" %
                                 (timeout, what, last[0]))


def runs_once_on_survivor(c, vm, dead):
    def pred():
        for a in c.running():
            hosts = [h for h in where(c, vm, a) if h != dead]
            if len(hosts) != 1:
                return "%s sees %s on %s" % (a.name, vm, hosts)
        return None
    wait_for(pred, 60, "%s to run on exactly one survivor of %s" % (vm, dead))


def ha_ok_everywhere(c):
    def pred():
        for a in c.running():
            r = a.cli("ha", role="viewer")
            if r.returncode != 0:
                return "%s: ha exit %d: %s" % (a.name, r.returncode, r.stdout[-300:])
        return None
    wait_for(pred, 60, "`ha` to exit 0 on every survivor")


def move(c, via, vm, to):
    # a 0.1.0 target refuses every move for one lease (30 s) after its
    # start, even in a brand-new cluster ("starting"); 0.2.0 does not
    end = time.monotonic() + 45
    while True:
        r = via.cli("migrate", vm, "--to", to, "--json", errors="replace", timeout=60)
        if r.returncode == 0 or "starting" not in r.stderr or time.monotonic() > end:
            break
        time.sleep(1)
    check(r.returncode == 0, "migrate %s --to %s via %s: exit %d: %s %s" %
          (vm, to, via.name, r.returncode, r.stdout[-400:], r.stderr))
    final = mvtest.json_stream(r.stdout, "migrate")[-1]
    check(final["ok"] and final["target"] == to, "migrate %s: %s" % (vm, final))
    log("moved %s %s -> %s via %s (%s)" % (vm, final["source"], to, via.name, final["message"]))
    wait_for(lambda: next(("%s sees it on %s" % (a.name, where(c, vm, a))
                            for a in c.running() if where(c, vm, a) != [to]), None),
             30, "every agent to see %s on %s" % (vm, to))


def main(t):
    prev = os.environ.get("MV_PREVIOUS_MESHVISOR")
    check(prev and os.access(prev, os.X_OK),
          "MV_PREVIOUS_MESHVISOR must name the previous release's binary "
          "(tests/compat/run-mixed.sh builds it)")
    files = host_files(t)
    c = t.cluster(6, agent_extra={"failover": FAILOVER})
    # 0.2.0 and later have a metrics listener (on by default, 7948): they
    # are given port 0 like ours; 0.1.0 refuses the unknown section
    out = subprocess.run([prev, "version"], capture_output=True, text=True).stdout.split()
    prev_version = tuple(int(x) for x in out[-1].split(".")) if out else (0, 0, 0)
    for name in OLD:
        c[name].binary = prev
        c[name].binary_has_metrics = prev_version >= (0, 2, 0)
    extras = {n: {"libvirt_uri": "test://" + files[n]} for n in files}
    # n6 (old) sends its LEFT once (retransmit_mult 1): the others take it
    # relayed — signed by 0.2.0 and later; unsigned from 0.1.0, which an
    # upgraded agent takes because n6's own record says it signs no LEFTs
    # (NodeState.wire_rev below 2)
    extras["n6"]["swim"] = dict(c.swim, retransmit_mult=1)
    c.start_each(extras)
    c.wait_converged(timeout=40)

    # 1. versions
    versions = {a.name: a.status()["version"] for a in c.running()}
    log("versions: %s" % versions)
    check(len(set(versions.values())) == 2 and
          len({versions[n] for n in ("n1", "n3", "n5")}) == 1 and
          len({versions[n] for n in OLD}) == 1, "not a mixed cluster: %s" % versions)

    # 2. node state both ways
    c.wait_states(timeout=40)

    # 3. migrations old -> new via a new agent, new -> old via an old agent
    move(c, c["n1"], "n2-plain", "n3")
    move(c, c["n4"], "n1-plain", "n2")

    # 4. graceful leaves, old then new
    for name in ("n6", "n5"):
        a = c[name]
        a.signal(signal.SIGTERM)
        a.wait_exit(30)
        wait_for(lambda: next(("%s holds %s %s" % (o.name, name, o.members().get(name, {}).get(
            "state")) for o in c.running()
            if o.members().get(name, {}).get("state") != "left"), None),
            30, "every agent to hold %s (%s) left" % (name, versions[name]))
        log("%s (%s) left; every agent holds it left" % (name, versions[name]))
    for o in c.running():
        fo = o.cli_json("failovers")
        opened = [f for f in fo["failovers"] if f["dead"] in ("n5", "n6")]
        check(not opened, "%s opened a failover for a host that left: %s" % (o.name, opened))

    # 5. failover of an old host, then of a new one
    for name in ("n1", "n2", "n3", "n4"):
        r = c["n1"].cli("vm", "set-ha", "%s-ha" % name, "on", "--priority", "500")
        check(r.returncode == 0, "set-ha %s-ha: %s" % (name, r.stderr))
    ha_ok_everywhere(c)
    for victim in ("n2", "n3"):
        # the survivors restart from replicas of the definitions (failover.
        # replicas = 3 holders per HA VM): wait until every HA VM's are out
        running = c.running()
        want = 4 * min(3, len(running) - 1)
        wait_for(lambda: (lambda held: None if held >= want else
                          "%d of %d replicas held" % (held, want))(
            sum(x.ha().get("replicas_held", 0) for x in c.running())),
            30, "every HA VM's definition replicated")
        a = c[victim]
        log("before: %s-ha runs on %s" % (victim, {o.name: where(c, "%s-ha" % victim, o)
                                                   for o in c.running()}))
        log("kill -9 %s (%s)" % (victim, versions[victim]))
        a.signal(signal.SIGKILL)
        a.wait_exit(10)
        t0 = time.monotonic()
        runs_once_on_survivor(c, "%s-ha" % victim, victim)
        log("%s-ha runs again on one survivor %.1f s after the kill" %
            (victim, time.monotonic() - t0))
        ha_ok_everywhere(c)
        if victim == "n2":
            # gone for good: out of the voting set (4 -> 3 voters), so that the
            # three left keep a majority when the next one dies
            r = c["n1"].cli("force-leave", "n2", "--yes")
            check(r.returncode == 0, "force-leave n2: %s %s" % (r.stdout, r.stderr))
            wait_for(lambda: next(("%s: %s" % (a.name, a.cli("ha", role="viewer").stdout[-200:])
                                   for a in c.running()
                                   if "voters: 3," not in a.cli("ha", role="viewer").stdout),
                                  None), 30, "every survivor to count 3 voters")


mvtest.run(main, default_timeout=240)
