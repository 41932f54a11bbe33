#!/usr/bin/env python3
"""A crash restart that a self-fence overtakes never starts the old copy
(README, "VM-level HA"): once the host fenced itself the VM may have been
failed over, so the pending restart is cancelled and reconciliation takes
the VM from there.

Four hosts; n3 runs the HA VM "crashy", which its libvirt crashes on
request (crashvirt.c). Crashes 1 to 3 are restarted on n3 (after 1, 2 and
4 s); crash 4 schedules a restart 8 s later. At once n1 and n2 are
stopped (SIGSTOP): n3 and n4 hold 2 of 4 voters, n3 loses quorum and,
after fence_after_ms (3 s), fences itself, well before the 8 s are up.
n1 and n2 then go on, n3 is quorate again, and the 8 s pass: n3 logs
"crash restart cancelled by a fence" and never "ha vm restarted here ...
crash=4". (Before, the pending restart survived the fence and started the
old copy once n3 was quorate again.)"""
import os
import signal
import time

import mvtest
from mvtest import check, log

GIB = 1024 * 1024
MIB = 1024
FAILOVER = {"vm_restarts": 10, "heartbeat_ms": 250, "fence_after_ms": 3000,
            "fence_margin_ms": 2250}
VM = "crashy"
UUID = "6d657368-0015-0002-0000-000000000001"


def main(t):
    ha_vm = dict(name=VM, uuid=UUID, vcpus=1, memory_kib=512 * MIB,
                 meshvisor={"ha": "yes", "priority": "10"})
    files = {n: mvtest.write_host_xml(os.path.join(t.tmp, "%s.xml" % n), 4, 8 * GIB,
                                      [ha_vm] if n == "n3" else [])
             for n in ("n1", "n2", "n3", "n4")}
    crash_dir = os.path.join(t.tmp, "crash")
    os.mkdir(crash_dir)
    c = t.cluster(4, agent_extra={"failover": FAILOVER})
    extras = {n: {"libvirt_uri": "test://" + files[n]} for n in files}
    n1, n2, n3, n4 = c["n1"], c["n2"], c["n3"], c["n4"]
    env = mvtest.preload_env(t, "MV_CRASHVIRT_LIB", "libmv_crashvirt.so",
                             {"MV_CRASHVIRT_DIR": crash_dir})
    n1.start(extra=extras["n1"])
    n2.start(join=[n1.peer_addr], extra=extras["n2"])
    n3.start(join=[n1.peer_addr], extra=extras["n3"], env=env)
    n4.start(join=[n1.peer_addr], extra=extras["n4"])
    c.wait_converged(timeout=30)
    c.wait_states(timeout=30)
    mvtest.wait_until(lambda: all(a.ha().get("quorate") and a.ha().get("voters") == 4
                                  for a in c.running()) or None, 20,
                      "every agent quorate with 4 voters")

    def crash():
        open(os.path.join(crash_dir, VM), "w").close()

    for n in (1, 2, 3):
        crash()
        mvtest.wait_until(lambda: "ha vm restarted here name=%s crash=%d ok=1" % (VM, n)
                          in n3.log_text() or None, 20, "n3 to restart %s after crash %d"
                          % (VM, n))
        mvtest.wait_until(lambda: (n3.vms(node="n3").get(VM) or {}).get("state") ==
                          "running" or None, 10, "%s running on n3 again" % VM)
    log("crashes 1-3: restarted on n3")

    log_start = len(n3.log_text())
    crash()
    mvtest.wait_until(lambda: "ha vm stopped unexpectedly name=%s" % VM
                      in n3.log_text()[log_start:] or None, 10, "n3 to see crash 4")
    t_crash = time.monotonic()
    n1.signal(signal.SIGSTOP)
    n2.signal(signal.SIGSTOP)
    try:
        mvtest.wait_until(lambda: "fencing ourselves" in n3.log_text()[log_start:] or None,
                          20, "n3 to fence itself", 0.05)
        log("n3 fenced itself %.1f s after crash 4" % (time.monotonic() - t_crash))
    finally:
        n1.signal(signal.SIGCONT)
        n2.signal(signal.SIGCONT)
    text = n3.log_text()[log_start:]
    check("ha vm restarted here name=%s crash=4" % VM not in text,
          "n3 restarted %s before it fenced itself: the test's timing did not hold" % VM)
    check("crash restart cancelled by a fence name=%s" % VM in text,
          "n3's self-fence did not cancel the pending crash restart")
    mvtest.wait_until(lambda: n3.ha().get("quorate") or None, 30, "n3 quorate again")
    # past the restart's time (8 s after crash 4), with n3 quorate
    while time.monotonic() < t_crash + 10:
        time.sleep(0.2)
    mvtest.wait_until(lambda: n3.ha().get("quorate") or None, 10, "n3 still quorate")
    time.sleep(1)
    text = n3.log_text()[log_start:]
    check("ha vm restarted here name=%s crash=4" % VM not in text,
          "n3's crash tick started the old copy of %s after its fence" % VM)
    log("n3: pending crash restart cancelled by the fence, never started")


mvtest.run(main)
