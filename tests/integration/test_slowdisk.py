#!/usr/bin/env python3
"""A slow disk does not stall the agent (issue 13, "fsync off the loop").

Three hosts; n3 runs one HA VM. On n1 every fsync of a regular file takes
1.2 s longer (slowfsync.c, an LD_PRELOAD shim). n3 is killed -9: n1 and n2
fail it over, and n1 makes its failover journal durable (fsync) at each
step of the consensus. The writes run on n1's hypervisor worker and the
core's messages and actions wait for them (n1 votes only once its journal
is on disk), while n1's loop goes on answering probes: its log shows
journal writes of 1.2 s and more, yet its loop never ran 0.9 s late
(status loop_lag_max_ever_us), it never had to refute a suspicion, and
the VM runs again on exactly one of n1, n2. (With the write on the loop,
n1's loop waited 1.2 s per write: the lag check fails.) The loop lag p99
and max on n1 are printed.

A disk slower than the quorate window (failover.fence_margin_ms) still
costs quorum: the core's heartbeats wait for the journal like every other
message (fo.h: what is popped after a change leaves only once it is
stored), so the test runs with a 3 s window (fence_after_ms 6000)."""
import os
import re
import signal
import time

import mvtest
from mvtest import check, log

GIB = 1024 * 1024
MIB = 1024
SLOW_MS = 1200
LAG_BOUND_US = 900000  # the loop never ran this late (the old code: >= SLOW_MS per write)
# a 3 s quorate window (min(3000, F/2)): twice the slow disk's delay, which
# the core's heartbeats wait for like every other message
FAILOVER = {"heartbeat_ms": 250, "fence_after_ms": 6000, "fence_margin_ms": 3000}
DEAD_URI = "qemu+tcp://127.0.0.1:1/system"
VM = "slow-ha"
UUID = "6d657368-0013-0003-0000-000000000001"


def slowfsync_env(t):
    return mvtest.preload_env(t, "MV_SLOWFSYNC_LIB", "libmv_slowfsync.so",
                              {"MV_SLOW_FSYNC_MS": str(SLOW_MS)})


def main(t):
    files = {}
    for name in ("n1", "n2", "n3"):
        doms = []
        if name == "n3":
            doms = [dict(name=VM, uuid=UUID, vcpus=1, memory_kib=512 * MIB,
                         meshvisor={"ha": "yes", "priority": "10"})]
        files[name] = mvtest.write_host_xml(os.path.join(t.tmp, "%s.xml" % name), 4, 8 * GIB,
                                            doms)
    c = t.cluster(3, agent_extra={"failover": FAILOVER})
    extras = {n: {"libvirt_uri": "test://" + files[n]} for n in files}
    # n3's fence URI reaches nobody: the survivors wait out its fence deadline
    extras["n3"]["migration"] = {"libvirt_uri": DEAD_URI}
    n1, n2, n3 = c["n1"], c["n2"], c["n3"]
    # only n1 gets the slow disk (its own environment, not the CLI's)
    saved = dict(os.environ)
    os.environ.update(slowfsync_env(t))
    try:
        n1.start(extra=extras["n1"], wait=False)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    n1.wait_ready(timeout=30)  # (its incarnation file is written before it serves)
    n2.start(join=[n1.peer_addr], extra=extras["n2"])
    n3.start(join=[n1.peer_addr], extra=extras["n3"])
    c.wait_converged(timeout=30)
    c.wait_states(timeout=30)

    def replicated():
        # (and n3 a voter of both: a host that dies before the others
        # admitted it to the voting set is not failed over, and a loaded
        # machine can take longer than convergence to admit it)
        doc = n1.ha()
        held = sum(a.ha().get("replicas_held", 0) for a in (n1, n2))
        voters = all(a.ha().get("voters") == 3 for a in (n1, n2))
        return doc if doc.get("ok") and doc.get("ha_vms") == 1 and held >= 1 and voters else None
    mvtest.wait_until(replicated, 30, "the HA VM replicated to n1 or n2, n3 a voter of both")
    before = n1.status()
    log("n1 before: loop lag p99 %.1f ms, max ever %.1f ms" %
        (before["loop_lag_p99_us"] / 1000.0, before["loop_lag_max_ever_us"] / 1000.0))
    log_start = len(n1.log_text())

    t_kill = time.time()
    n3.signal(signal.SIGKILL)
    n3.wait_exit(5)

    def restarted():
        where = []
        for a in (n1, n2):
            v = a.vms(node=a.name)
            if VM in v and v[VM]["state"] == "running":
                where.append(a.name)
        return where or None
    where = mvtest.wait_until(restarted, 90, "%s to run again on n1 or n2" % VM, 0.5)
    log("%s runs again on %s, %.1f s after the kill" % (VM, where, time.time() - t_kill))
    check(len(where) == 1, "%s runs on %s" % (VM, where))

    text = n1.log_text()[log_start:]
    took = [int(m) for m in re.findall(r"failover journal written .*took_us=(\d+)", text)]
    log("n1's journal writes (ms): %s" % [round(x / 1000.0) for x in took])
    check(took and max(took) >= (SLOW_MS - 100) * 1000,
          "n1 wrote no slow journal (writes: %s): the shim did not apply" % took)
    st = n1.status()
    log("n1 after: loop lag p99 %.1f ms, max %.1f ms over 30 s, max ever %.1f ms, stalls %d" %
        (st["loop_lag_p99_us"] / 1000.0, st["loop_lag_max_us"] / 1000.0,
         st["loop_lag_max_ever_us"] / 1000.0, st["loop_stalls"]))
    check(st["loop_lag_max_ever_us"] < LAG_BOUND_US,
          "n1's loop ran %.1f ms late: it waited for its disk" %
          (st["loop_lag_max_ever_us"] / 1000.0))
    check(not re.search(r"new incarnation of ours", text),
          "n1 had to refute a suspicion about itself during the failover")
    check(n2.members()["n1"]["state"] == "alive", "n2 does not hold n1 alive")


mvtest.run(main)
