#!/usr/bin/env python3
"""A self-fence whose destroys take 3 s does not hold the agent's loop,
and nothing the failover core produced after the fence leaves before the
destroys are done (issue 13, "a loop that never stalls"; EVENTS BEFORE
MESSAGES in docs/failover-protocol.md).

Four hosts; n3 runs one HA VM, and on n3 every libvirt destroy takes 3 s
longer (slowlibvirt.c, an LD_PRELOAD shim: a libvirtd slow to destroy). n1
and n2 are stopped (SIGSTOP): n3 and n4 hold 2 of 4 voters, lose quorum,
and after fence_after_ms n3 fences itself. Its destroy runs on the
hypervisor worker's critical lane, so while it runs:
  - n3 answers `meshvisor status` at once (timed, and the destroy is
    still running when it answers: its log has no end yet);
  - n3 answers SWIM: n4, which probes it, never suspects it;
  - n3's loop never ran 1 s late (status loop_lag_max_ever_us);
  - n3 sends no failover message from the fence until the destroy ended
    (its debug log: 'sent type=' lines), and sends again afterwards (the
    heartbeats resume: the check can see them).
With the destroys on the loop (before), status waited up to 3 s, the
loop lag was >= 3 s and n4 suspected n3. Without the hold, heartbeats
left during the destroy.

Then an HA restart that a fence overtakes: four more hosts, m2 runs an HA
VM that only m3 has room for, and on m3 starting a VM takes 8 s longer
and destroying one 3 s longer. m2 is killed; m3 is chosen to restart the
VM and starts it (on the worker); meanwhile m1 and m4 are stopped, m3
loses quorum and fences itself while the start runs. When the start
returns, the copy that started is destroyed (on the worker: 3 s) before
the restart is reported failed: m3 logs "vm start undone", the VM does
not run on m3, and m3's loop never ran 1 s late (with the cleanup's
destroy on the loop, as before, it ran 3 s late). The figures are
printed."""
import os
import re
import signal
import time

import mvtest
from mvtest import check, log

GIB = 1024 * 1024
MIB = 1024
SLOW_MS = 3000
LAG_BOUND_US = 1000000
FAILOVER = {"heartbeat_ms": 250, "fence_after_ms": 3000, "fence_margin_ms": 2250}
VM = "slowfence-ha"
UUID = "6d657368-0013-0005-0000-000000000001"
VM_B = "slowstart-ha"
UUID_B = "6d657368-0013-0005-0000-000000000002"
SLOW_CREATE_MS = 8000


def main(t):
    ha_vm = dict(name=VM, uuid=UUID, vcpus=1, memory_kib=512 * MIB,
                 meshvisor={"ha": "yes", "priority": "10"})
    files = {n: mvtest.write_host_xml(os.path.join(t.tmp, "%s.xml" % n), 4, 8 * GIB,
                                      [ha_vm] if n == "n3" else [])
             for n in ("n1", "n2", "n3", "n4")}
    c = t.cluster(4, agent_extra={"failover": FAILOVER})
    extras = {n: {"libvirt_uri": "test://" + files[n]} for n in files}
    n1, n2, n3, n4 = c["n1"], c["n2"], c["n3"], c["n4"]
    n1.start(extra=extras["n1"])
    n2.start(join=[n1.peer_addr], extra=extras["n2"])
    # only n3 gets the slow destroys
    env = mvtest.preload_env(t, "MV_SLOWLIBVIRT_LIB", "libmv_slowlibvirt.so",
                             {"MV_SLOW_DESTROY_MS": str(SLOW_MS)})
    n3.start(join=[n1.peer_addr], extra=extras["n3"], env=env)
    n4.start(join=[n1.peer_addr], extra=extras["n4"])
    c.wait_converged(timeout=30)
    c.wait_states(timeout=30)

    def quorate():
        return n3.ha().get("quorate") or None
    mvtest.wait_until(quorate, 20, "n3 to be quorate")
    check(n3.vms(node="n3")[VM]["state"] == "running", "%s does not run on n3" % VM)
    log_start = len(n3.log_text())
    n4_start = len(n4.log_text())

    n1.signal(signal.SIGSTOP)
    n2.signal(signal.SIGSTOP)
    try:
        run(t, n3, n4, log_start, n4_start)
    finally:
        n1.signal(signal.SIGCONT)
        n2.signal(signal.SIGCONT)
    for a in c.agents.values():
        a.signal(signal.SIGKILL)
    fenced_start(t)


def fenced_start(t):
    big = dict(name=VM_B, uuid=UUID_B, vcpus=1, memory_kib=2048 * MIB,
               meshvisor={"ha": "yes", "priority": "10"})
    # only m3 has room for the VM (m1 and m4: 1 GiB)
    files = {n: mvtest.write_host_xml(os.path.join(t.tmp, "%s.xml" % n), 4,
                                      8 * GIB if n in ("m2", "m3") else GIB,
                                      [big] if n == "m2" else [])
             for n in ("m1", "m2", "m3", "m4")}
    c = t.cluster(0, agent_extra={"failover": FAILOVER})
    for name in files:
        c.add(name)
    m1, m2, m3, m4 = c["m1"], c["m2"], c["m3"], c["m4"]
    extra = {n: {"libvirt_uri": "test://" + files[n]} for n in files}
    m1.start(extra=extra["m1"])
    m2.start(join=[m1.peer_addr], extra=extra["m2"])
    env = mvtest.preload_env(t, "MV_SLOWLIBVIRT_LIB", "libmv_slowlibvirt.so",
                             {"MV_SLOW_CREATE_MS": str(SLOW_CREATE_MS),
                              "MV_SLOW_DESTROY_MS": str(SLOW_MS)})
    m3.start(join=[m1.peer_addr], extra=extra["m3"], env=env)
    m4.start(join=[m1.peer_addr], extra=extra["m4"])
    c.wait_converged(timeout=30)
    c.wait_states(timeout=30)

    def replicated():
        return sum(a.ha().get("replicas_held", 0) for a in (m1, m3, m4)) >= 1 or None
    mvtest.wait_until(replicated, 20, "the HA VM replicated")
    log_start = len(m3.log_text())
    m2.signal(signal.SIGKILL)

    def restarting():
        return ("restarting vm name=%s" % VM_B) in m3.log_text()[log_start:] or None
    mvtest.wait_until(restarting, 40, "m3 to restart %s" % VM_B, 0.05)
    m1.signal(signal.SIGSTOP)
    m4.signal(signal.SIGSTOP)
    try:
        def undone():
            text = m3.log_text()[log_start:]
            return "vm start undone" in text or None
        mvtest.wait_until(undone, 40, "m3 to undo the start a fence overtook", 0.1)
        text = m3.log_text()[log_start:]
        check(text.index("fencing ourselves") < text.index("vm start undone"),
              "m3's start was undone before it fenced itself")
        log("m3: %s" % [l.split(" ", 3)[-1][:150] for l in text.splitlines()
                        if "vm start undone" in l or "fencing ourselves" in l])
        v = m3.vms(node="m3").get(VM_B)
        check(v is None or v["state"] != "running", "%s still runs on m3: %s" % (VM_B, v))
        mvtest.check_loop_lag(m3, LAG_BOUND_US, "the cleanup's destroy")
    finally:
        m1.signal(signal.SIGCONT)
        m4.signal(signal.SIGCONT)


def run(t, n3, n4, log_start, n4_start):
    def fence_started():
        text = n3.log_text()[log_start:]
        return "fencing ourselves" in text or None
    mvtest.wait_until(fence_started, 30, "n3 to fence itself", 0.05)
    t0 = time.time()
    st = n3.status()
    answered_s = time.time() - t0
    text = n3.log_text()[log_start:]
    log("n3 answered status %.0f ms into its self-fence's 3 s destroy" % (answered_s * 1000))
    check(answered_s < 1.0, "status took %.1f s during the destroy" % answered_s)
    check("self-fence done" not in text,
          "the destroy had ended before status answered: the shim did not apply")
    check("fence destroys started on the worker kind=self-fence" in text,
          "n3's self-fence did not destroy on the worker")

    def fence_done():
        m = re.search(r"self-fence done destroyed=(\d+) failed=(\d+).*took_ms=(\d+)",
                      n3.log_text()[log_start:])
        return m
    m = mvtest.wait_until(fence_done, 20, "n3's self-fence to end", 0.1)
    destroyed, failed, took = int(m.group(1)), int(m.group(2)), int(m.group(3))
    log("n3's self-fence: destroyed %d, failed %d, took %d ms" % (destroyed, failed, took))
    check(destroyed == 1 and failed == 0, "self-fence destroyed %d, failed %d" %
          (destroyed, failed))
    check(took >= SLOW_MS - 100, "the destroy took %d ms: the shim did not apply" % took)
    check(n3.vms(node="n3")[VM]["state"] != "running", "%s still runs on n3" % VM)

    # the order, from n3's log: nothing sent between the fence and its end,
    # sends again afterwards
    def sent_after():
        text = n3.log_text()[log_start:]
        end = text.index("self-fence done")
        return len(re.findall(r"failover.*sent type=", text[end:])) >= 2 or None
    mvtest.wait_until(sent_after, 10, "n3 to send failover messages after its fence")
    text = n3.log_text()[log_start:]
    begin = text.index("fencing ourselves")
    end = text.index("self-fence done")
    during = re.findall(r"failover.*sent type=(\w+) to=(\w+)", text[begin:end])
    before = re.findall(r"failover.*sent type=", text[:begin])
    log("n3 sent %d failover messages before the fence, %d during its destroy" %
        (len(before), len(during)))
    check(before, "no 'sent type=' line before the fence: the check sees nothing")
    check(not during, "n3 sent %s while its fence's destroy ran" % during[:5])

    mvtest.check_loop_lag(n3, LAG_BOUND_US, "the destroy")
    n4_text = n4.log_text()[n4_start:]
    check(not re.search(r"member suspect name=n3", n4_text),
          "n4 suspected n3 during its fence")
    check(n4.members()["n3"]["state"] == "alive", "n4 does not hold n3 alive")


mvtest.run(main)
