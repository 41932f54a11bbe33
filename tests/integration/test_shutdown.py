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
   n2's answer; then n2 resumes. The client, whose request n1 forwarded
   to n4, is told at once that n4 left before it answered.
2. kill -9 n3, which runs two HA VMs and publishes a fence URI whose
   "libvirt" (a listener of this test) accepts and hangs up only after
   two seconds; the survivor that runs the remote fence gets SIGTERM as
   soon as the fence starts: it waits for the fence's worker thread (its
   log says how the fence ended before it says "stopped"), then exits 0."""
import os
import re
import signal
import socket
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


class SlowLibvirt:
    """A listener on loopback that accepts a connection and closes it two
    seconds later without a word: a remote fence through it takes that
    long on its worker thread, then fails."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(8)
        self.sock.settimeout(0.5)
        self.accepted = 0
        self.stop = False
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    def run(self):
        held = []
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
                self.accepted += 1
                held.append((time.monotonic() + 2.0, conn))
            except socket.timeout:
                pass
            now = time.monotonic()
            for due, conn in [h for h in held if h[0] <= now]:
                conn.close()
            held = [h for h in held if h[0] > now]
        for _, conn in held:
            conn.close()
        self.sock.close()


def main(t):
    files = host_files(t)
    c = t.cluster(4, agent_extra={"failover": dict(FAST_FAILOVER)})
    slow = SlowLibvirt(t.port())
    fence_uri = "qemu+tcp://127.0.0.1:%d/system" % slow.sock.getsockname()[1]
    extras = {n: {"libvirt_uri": "test://" + files[n], "migration": {"lease_ms": LEASE_MS}}
              for n in files}
    extras["n3"]["migration"]["libvirt_uri"] = fence_uri  # its fence URI too
    c.start_each(extras)
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
    # the client's request, forwarded by n1 to n4, is answered as soon as n1
    # sees n4 leave, not when the forward's 30-minute deadline passes
    th.join(30)
    r = result.get("r")
    check(r is not None, "migrate d0 through n1: no answer 30 s after n4 left")
    log("migrate d0 --to n2 through n1: exit %d %r" % (r.returncode, r.stderr.strip()[-200:]))
    check(r.returncode == 1 and "n4 left the cluster before it answered" in r.stderr,
          "migrate d0 through n1 after n4 left: exit %d, %r" % (r.returncode, r.stderr))
    c.wait_converged(timeout=30, names=["n1", "n2", "n3"])

    # 2. SIGTERM in the middle of a failover, while the remote fence runs
    #    on a worker thread
    n3.signal(signal.SIGKILL)
    n3.wait_exit(5)

    def fencer():
        for a in (n1, n2):
            if mvtest.grep(a.log_text(), r"remote fence started dead=n3"):
                return a
        return None
    f = mvtest.wait_until(fencer, 30, "a survivor to start the remote fence of n3")
    f.signal(signal.SIGTERM)
    stopped_cleanly(f, "stopped during a remote fence")
    text = f.log_text()
    ended = text.find("remote fence dead=n3")
    stopped = text.find("stopped name=%s" % f.name)
    check(ended >= 0 and ended < stopped,
          "%s stopped without waiting for its remote fence (fence ended at %d, stop at %d)" %
          (f.name, ended, stopped))
    check(slow.accepted >= 1, "the fence never reached n3's libvirt listener")
    slow.stop = True
    other = n2 if f is n1 else n1
    check(other.alive(), "%s exited" % other.name)


mvtest.run(main)
