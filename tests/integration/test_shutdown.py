#!/usr/bin/env python3
"""Orderly shutdown (issue 10): an agent stopped by SIGTERM in the middle of
a migration, and one stopped in the middle of a failover, each exit 0 after
waiting for its work on worker threads and closing every libuv handle
through the loop (agent_main: "Orderly shutdown"). Each log says
"stopped" and never "handle left open"; the suite's sanitizer step runs
this test against the ASan+UBSan build too (label "shutdown"), where a
leak or a use after free at exit would show as a sanitizer report in the
log and a non-zero exit status.

Four hosts on the test driver, failover at the suite's fast timings:
1. n2 is frozen (SIGSTOP); `migrate d0 --to n2` runs through n1, and n4
   (d0's host) gets SIGTERM once it has proposed the move and waits for
   n2's answer; then n2 resumes.
2. kill -9 n3, which runs two HA VMs; as soon as n2 holds n3 dead (its
   failover waits out the fence deadline: n3's libvirt died with it), n2
   gets SIGTERM."""
import os
import re
import signal
import threading
import time

import mvtest
from mvha import FAST_FAILOVER
from mvtest import check, log

MIB = 1024
LEASE_MS = 1000
GIB = 1024 * 1024


def host_files(t):
    files = {}
    for i, name in enumerate(("n1", "n2", "n3", "n4")):
        doms = []
        if name == "n4":
            doms = [{"name": "d%d" % k, "uuid": "4d000000-0000-4000-8000-00000000000%d" % k,
                     "vcpus": 1, "memory_kib": 256 * MIB} for k in range(4)]
        if name == "n3":
            doms = [{"name": "ha%d" % k, "uuid": "3a000000-0000-4000-8000-00000000000%d" % k,
                     "vcpus": 1, "memory_kib": 256 * MIB, "meshvisor": {"ha": "yes"}}
                    for k in range(2)]
        path = os.path.join(t.tmp, "host-%s.xml" % name)
        mvtest.write_host_xml(path, 8, 16 * GIB, doms)
        files[name] = path
    return files


def stopped_cleanly(agent, what):
    """agent was sent SIGTERM: it exits 0 and its log shows an orderly stop."""
    rc = agent.wait_exit(60)
    text = agent.log_text()
    log("%s: %s exited %d" % (what, agent.name, rc))
    check(rc == 0, "%s: %s exited %d:\n%s" % (what, agent.name, rc, agent.log_tail()))
    check(mvtest.grep(text, r"stopped name=%s" % agent.name),
          "%s: %s's log has no 'stopped' line" % (what, agent.name))
    left = [l for l in text.splitlines() if "left open" in l]
    check(not left, "%s: %s left handles open: %s" % (what, agent.name, left))
    bad = [l for l in text.splitlines()
           if re.search(r"Sanitizer|runtime error:|heap-use-after-free|leak", l)]
    check(not bad, "%s: sanitizer report in %s's log: %s" % (what, agent.name, bad[:5]))


def main(t):
    files = host_files(t)
    c = t.cluster(4, agent_extra={"failover": dict(FAST_FAILOVER)})
    c.start_each({n: {"libvirt_uri": "test://" + files[n], "migration": {"lease_ms": LEASE_MS}}
                  for n in files})
    c.wait_converged(timeout=30)
    c.wait_states(timeout=30)
    n1, n2, n3, n4 = c["n1"], c["n2"], c["n3"], c["n4"]
    # moves into a freshly started agent are refused for one lease (1 s here)
    time.sleep(LEASE_MS / 1000.0 + 0.5)
    mvtest.wait_until(lambda: all(n["quorate"] for n in n1.nodes().values()) or None, 30,
                      "every host quorate")

    # 1. SIGTERM in the middle of a move: its target n2 is frozen, so the
    #    move n4 proposed waits for an answer when n4 is told to stop
    n2.signal(signal.SIGSTOP)
    result = {}

    def move():
        result["r"] = n1.cli("migrate", "d0", "--to", "n2", errors="replace", timeout=90)

    th = threading.Thread(target=move, daemon=True)
    th.start()
    mvtest.wait_until(lambda: mvtest.grep(n4.log_text(), r"proposing id=\S+ vm=d0 target=n2") or
                      None, 30, "n4 to propose moving d0 to n2")
    check(th.is_alive(), "the move of d0 to the frozen n2 finished: %s" % result)
    n4.signal(signal.SIGTERM)
    stopped_cleanly(n4, "stopped mid-migration")
    n2.signal(signal.SIGCONT)
    # (the CLI's answer is not waited for: n1 answers a request forwarded to
    # an agent that stopped only when the RPC idle timeout closes it)
    c.wait_converged(timeout=30, names=["n1", "n2", "n3"])

    # 2. SIGTERM in the middle of a failover
    n3.signal(signal.SIGKILL)
    n3.wait_exit(5)
    mvtest.wait_until(lambda: n2.members().get("n3", {}).get("state") == "dead" or None, 30,
                      "n2 to hold n3 dead")
    n2.signal(signal.SIGTERM)
    stopped_cleanly(n2, "stopped mid-failover")
    check(n1.alive(), "n1 exited")
    r = result.get("r")
    log("migrate d0 --to n2 through n1: %s" %
        ("exit %d %r" % (r.returncode, (r.stdout + r.stderr)[-300:]) if r else "no answer yet"))


mvtest.run(main)
