#!/usr/bin/env python3
"""SIGSTOP of an agent gets it suspected; SIGCONT within the suspicion
window lets it refute: it is back to alive at every member with a higher
incarnation, and nobody ever declares it dead."""
import signal
import time

import mvtest
from mvtest import check, log

# A long minimum suspicion leaves room between "first suspected" and
# SIGCONT even when the 2-core CI box is slow.
SWIM = {"suspicion_min_mult": 16, "suspicion_max_mult": 3}


def main(t):
    c = t.cluster(5, swim=SWIM)
    c.start_all(seed="n1")
    c.wait_converged(timeout=30)
    smin, smax = c.suspicion_bounds(5)
    log("suspicion window %.2f..%.2fs" % (smin, smax))

    inc0 = {a: m["incarnation"] for a, m in
            ((a.name, a.members()["n2"]) for a in c.running() if a.name != "n2")}
    victim = c["n2"]
    others = [a for a in c.running() if a is not victim]
    victim.signal(signal.SIGSTOP)
    t_stop = time.monotonic()
    try:
        suspected_by = None
        while suspected_by is None:
            check(time.monotonic() - t_stop < 20, "n2 not suspected within 20s of SIGSTOP")
            for a in others:
                m = a.members()["n2"]
                check(m["state"] != "dead", "%s declared stopped n2 dead before SIGCONT" % a.name)
                if m["state"] == "suspect":
                    suspected_by = a.name
                    break
            time.sleep(0.05)
        log("n2 suspected by %s %.2fs after SIGSTOP" % (suspected_by, time.monotonic() - t_stop))
    finally:
        victim.signal(signal.SIGCONT)
    t_cont = time.monotonic()

    # back to alive everywhere, never dead on the way
    states = {}
    while True:
        check(time.monotonic() - t_cont < 20, "n2 not alive everywhere 20s after SIGCONT: %s" %
              states)
        for a in others:
            m = a.members()["n2"]
            check(m["state"] != "dead", "%s declared n2 dead after SIGCONT (cause: %s)" %
                  (a.name, m.get("cause")))
            states[a.name] = (m["state"], m["incarnation"])
        if all(s == "alive" and inc > inc0[n] for n, (s, inc) in states.items()):
            break
        time.sleep(0.1)
    log("n2 refuted: %s, %.2fs after SIGCONT" % (states, time.monotonic() - t_cont))
    # stay on watch a while longer
    end = time.monotonic() + 3
    while time.monotonic() < end:
        for a in others:
            check(a.members()["n2"]["state"] != "dead", "%s declared n2 dead late" % a.name)
        time.sleep(0.2)
    check(mvtest.grep(victim.log_text(), r"refut"), "n2's log does not mention the refutation")
    c.wait_converged(timeout=15)


mvtest.run(main)
