#!/usr/bin/env python3
"""Two hypervisors and a witness survive the loss of either hypervisor.

n1 and n2 run VMs (test-driver hosts); w is `meshvisor agent --witness`:
it votes, holds no VMs and is never a placement or restart target.

1. `nodes` shows w as a witness; `vm create` without --node never lands on
   it; `ha` counts 3 voters, majority 2.
2. kill -9 n1: its HA VM restarts on n2 (n2 + w are a majority), epoch 1.
3. n1 comes back (its stale copy is removed); kill -9 n2: the VM restarts
   on n1 (n1 + w), epoch 2. Never on the witness."""
import os
import signal
import time

import mvtest
from mvtest import check, log

GIB = 1024 * 1024
MIB = 1024
# margin: at least the quorate window, min(3000, fence_after_ms / 2) = 1500 ms
FAILOVER = {"heartbeat_ms": 250, "fence_after_ms": 3000, "fence_margin_ms": 1500}
UUID = "6d657368-0005-0004-0000-000000000001"




def copies(agent, vm):
    return agent.vm_copies().get(vm, [])


def wait_on(c, vm, host, epoch, exclude=()):
    def pred():
        for a in c.running():
            cs = [x for x in copies(a, vm) if x[0] not in exclude]
            if cs != [(host, "running", epoch)]:
                return None
        return True
    t0 = time.monotonic()
    mvtest.wait_until(pred, 40, "%s running on %s with epoch %d in every view" %
                      (vm, host, epoch), 0.25)
    log("%s on %s (epoch %d) after %.2fs" % (vm, host, epoch, time.monotonic() - t0))


def main(t):
    files = {
        "n1": mvtest.write_host_xml(os.path.join(t.tmp, "n1.xml"), 4, 8 * GIB,
                                    [dict(name="prot", uuid=UUID, vcpus=1,
                                          memory_kib=512 * MIB)]),
        "n2": mvtest.write_host_xml(os.path.join(t.tmp, "n2.xml"), 4, 8 * GIB, []),
    }
    c = t.cluster(2, agent_extra={"failover": FAILOVER})
    w = c.add("w")
    n1, n2 = c["n1"], c["n2"]
    n1.start(extra={"libvirt_uri": "test://" + files["n1"]})
    n2.start(join=[n1.peer_addr], extra={"libvirt_uri": "test://" + files["n2"]})
    w.start(join=[n1.peer_addr], extra={"witness": True})
    c.wait_converged(timeout=30)
    c.wait_states(timeout=30)

    nodes = n1.nodes()
    check(nodes["w"].get("witness") is True,
          "w is not shown as a witness: %s" % nodes["w"])
    check(not nodes["n1"].get("witness"), "n1 shown as a witness")
    for i in range(4):
        xml = mvtest.domain_xml("placed-%d" % i, 1, 256 * MIB)
        path = os.path.join(t.tmp, "placed-%d.xml" % i)
        with open(path, "w") as f:
            f.write(xml)
        r = n1.cli("vm", "create", "--xml", path)
        check(r.returncode == 0, "vm create: %s" % r.stderr)
    vms = n1.cli_json("vms")["vms"]
    check(not [v for v in vms if v["node"] == "w"], "a VM was placed on the witness: %s" % vms)

    r = n1.cli("vm", "set-ha", "prot", "on", "--priority", "10")
    check(r.returncode == 0, "set-ha: %s" % r.stderr)
    # members join the voting set once they have been alive join_after_ms
    # (min(1 s, F / 3)) and heartbeated (issue 13): a moment after the start
    mvtest.wait_until(lambda: n1.ha()["voters"] == 3 or None, 10, "n1 to count 3 voters")
    doc = n1.ha()
    check(doc["voters"] == 3 and doc["majority"] == 2, "voters: %s" % doc)
    mvtest.wait_until(lambda: n2.ha().get("replicas_held", 0) >= 1 or None, 15,
                      "n2 to hold the replica of prot")
    check(w.ha().get("replicas_held", 0) == 0, "the witness holds replicas")

    # 2. lose n1
    n1.signal(signal.SIGKILL)
    n1.wait_exit(5)
    wait_on(c, "prot", "n2", 1, exclude=("n1",))

    # 3. n1 returns; lose n2
    n1.start(join=[w.peer_addr], extra={"libvirt_uri": "test://" + files["n1"]})
    c.wait_converged(timeout=30)
    wait_on(c, "prot", "n2", 1)  # n1's stale copy gone in every view
    mvtest.wait_until(lambda: n1.ha().get("replicas_held", 0) >= 1 or None, 20,
                      "n1 to hold the replica of prot")
    n2.signal(signal.SIGKILL)
    n2.wait_exit(5)
    wait_on(c, "prot", "n1", 2, exclude=("n2",))
    check(not [x for x in copies(w, "prot") if x[0] == "w"], "prot ran on the witness")


if __name__ == "__main__":
    mvtest.run(main, default_timeout=170)
