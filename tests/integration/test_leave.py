#!/usr/bin/env python3
"""SIGTERM makes an agent leave gracefully: it exits 0 and every other
member sees it `left`, never `dead`. `meshvisor leave` (operator) does the
same through the RPC port."""
import signal
import time

import mvtest
from mvtest import check, log


def watch_left(c, name, seconds):
    """Polls every running agent for `seconds`; fails if any reports `name`
    dead. Returns the set of agents that have seen it left."""
    seen_left = set()
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for a in c.running():
            m = a.members().get(name)
            if m is None:
                continue
            check(m["state"] != "dead", "%s sees %s dead after a graceful leave (cause: %s)" %
                  (a.name, name, m.get("cause")))
            if m["state"] == "left":
                seen_left.add(a.name)
        time.sleep(0.2)
    return seen_left


def main(t):
    c = t.cluster(5)
    c.start_all(seed="n1")
    c.wait_converged(timeout=30)
    smin, smax = c.suspicion_bounds(5)

    n4 = c["n4"]
    n4.signal(signal.SIGTERM)
    rc = n4.wait_exit(15)
    check(rc == 0, "n4 exited %d after SIGTERM, want 0" % rc)
    check(mvtest.grep(n4.log_text(), r"leav|left"), "n4's log does not mention leaving")
    dt = c.wait_state("n4", "left", timeout=15)
    log("SIGTERM: n4 left everywhere %.2fs after exit" % dt)
    # stay on watch past the longest suspicion: left must not turn dead
    seen = watch_left(c, "n4", smax + 2)
    check(len(seen) == len(c.running()), "n4 left only at %s" % sorted(seen))

    n5 = c["n5"]
    r = n5.cli("leave", role="operator")
    check(r.returncode == 0, "meshvisor leave failed (exit %d): %s" % (r.returncode, r.stderr))
    rc = n5.wait_exit(15)
    check(rc == 0, "n5 exited %d after `meshvisor leave`, want 0" % rc)
    dt = c.wait_state("n5", "left", timeout=15)
    log("meshvisor leave: n5 left everywhere %.2fs after exit" % dt)
    watch_left(c, "n5", 3)
    c.wait_converged(timeout=10, names=["n1", "n2", "n3"])


mvtest.run(main)
