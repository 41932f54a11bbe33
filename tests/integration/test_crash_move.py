#!/usr/bin/env python3
"""VM-level HA's move of an HA VM that crashed too often (README, "VM-level
HA"): it goes through the migration negotiation and ends up running on
another host, once.

Three hosts, failover.vm_restarts 1. n1 runs the HA VM "crashy"; its
libvirt crashes it on request (crashvirt.c, an LD_PRELOAD shim: the test
driver cannot crash a guest; the shim destroys it behind the agent's back
and libvirt then says CRASHED, as for a guest panic). The first crash: n1
restarts it there. The second, within 10 minutes: n1 moves it. The move
is the migration service's (n1's log: a proposal to the host placement
chose, announced to the voters, then "migration finished ... ok=1"), and
afterwards crashy runs on that host — one copy in the whole cluster, its
owner epoch above the one it had on n1 — and is no longer defined on n1;
n1 reported `vm-moved`, and `migrations` lists the move (offline, ok). (Before, the move sent the definition without a
reservation, every target refused it, and crashy stayed shut off on n1.)"""
import os
import re

import mvtest
from mvtest import check, log

GIB = 1024 * 1024
MIB = 1024
FAILOVER = {"vm_restarts": 1}
VM = "crashy"
UUID = "6d657368-0015-0001-0000-000000000001"


def main(t):
    ha_vm = dict(name=VM, uuid=UUID, vcpus=1, memory_kib=512 * MIB,
                 meshvisor={"ha": "yes", "priority": "10"})
    files = {n: mvtest.write_host_xml(os.path.join(t.tmp, "%s.xml" % n), 4, 8 * GIB,
                                      [ha_vm] if n == "n1" else [])
             for n in ("n1", "n2", "n3")}
    crash_dir = os.path.join(t.tmp, "crash")
    os.mkdir(crash_dir)
    c = t.cluster(3, agent_extra={"failover": FAILOVER})
    extras = {n: {"libvirt_uri": "test://" + files[n]} for n in files}
    n1, n2, n3 = c["n1"], c["n2"], c["n3"]
    env = mvtest.preload_env(t, "MV_CRASHVIRT_LIB", "libmv_crashvirt.so",
                             {"MV_CRASHVIRT_DIR": crash_dir})
    n1.start(extra=extras["n1"], env=env)
    n2.start(join=[n1.peer_addr], extra=extras["n2"])
    n3.start(join=[n1.peer_addr], extra=extras["n3"])
    c.wait_converged(timeout=30)
    c.wait_states(timeout=30)
    mvtest.wait_until(lambda: all(a.ha().get("quorate") and a.ha().get("voters") == 3
                                  for a in c.running()) or None, 20,
                      "every agent quorate with 3 voters")
    copies = n1.vm_copies()[VM]
    check(len(copies) == 1 and copies[0][:2] == ("n1", "running"),
          "%s should run on n1 only: %s" % (VM, copies))
    epoch = copies[0][2]

    def crash():
        open(os.path.join(crash_dir, VM), "w").close()

    # crash 1: restarted here
    crash()
    mvtest.wait_until(lambda: "ha vm restarted here name=%s crash=1 ok=1" % VM
                      in n1.log_text() or None, 20, "n1 to restart %s after crash 1" % VM)
    mvtest.wait_until(lambda: (n1.vms(node="n1").get(VM) or {}).get("state") == "running"
                      or None, 10, "%s running on n1 again" % VM)
    log("crash 1: restarted on n1")

    # crash 2: more than vm_restarts within the window, moved
    crash()

    def moved():
        for a in c.running():
            cp = a.vm_copies().get(VM, [])
            if len(cp) != 1 or cp[0][0] == "n1" or cp[0][1] != "running":
                return None
        return cp[0]
    where = mvtest.wait_until(moved, 40, "%s to run on another host, once" % VM)
    log("crash 2: moved to %s (epoch %d -> %d)" % (where[0], epoch, where[2]))
    check(where[2] > epoch, "owner epoch not bumped: %d -> %d" % (epoch, where[2]))
    text = n1.log_text()
    check(re.search(r"proposing id=\S+ vm=%s target=%s" % (VM, where[0]), text),
          "n1 proposed no move of %s to %s" % (VM, where[0]))
    check(re.search(r"HA move announced id=\S+ vm=%s target=%s" % (VM, where[0]), text),
          "n1 did not announce the move to the voters")
    check(re.search(r"migration finished id=\S+ vm=%s target=%s ok=1" % (VM, where[0]), text),
          "n1's migration of %s did not finish ok" % VM)
    check("crashed ha vm moved name=%s to=%s" % (VM, where[0]) in text,
          "n1 did not report the crash move")
    check(VM not in n1.vms(node="n1"), "%s still defined on n1" % VM)
    ev = [e for e in n1.events() if e.get("kind") == "vm-moved" and e.get("vm") == VM]
    check(ev, "no vm-moved event for %s" % VM)
    ms = [m for m in n2.cli_json("migrations")["migrations"]
          if m["vm"] == VM and m["target"] == where[0]]
    check(ms and ms[0]["done"] and ms[0]["ok"] and ms[0]["offline"],
          "migrations (through n2) does not list the move of %s: %s" % (VM, ms))


mvtest.run(main)
