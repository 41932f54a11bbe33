#!/usr/bin/env python3
"""kill -9 of one agent is seen as dead by every other member within the
bound computed from the configured timings, on proof (its host refuses the
peer port, confirmed by another member) rather than after a silence
suspicion; a restarted agent with the same name on a new port is
accepted back everywhere at its new address."""
import signal
import time

import mvtest
from mvtest import check, log


def main(t):
    c = t.cluster(5)
    c.start_all(seed="n1")
    c.wait_converged(timeout=30)

    smin, smax = c.suspicion_bounds(5)
    bound = c.detection_bound(5)
    log("timings %s -> suspicion %.2f..%.2fs, detection bound %.1fs" % (c.swim, smin, smax, bound))

    victim = c["n3"]
    others = [a for a in c.running() if a is not victim]
    victim.signal(signal.SIGKILL)
    t_kill = time.monotonic()
    victim.wait_exit(5)

    # watch every survivor; note when each first reports n3 dead
    first_dead = {}
    deadline = t_kill + bound
    while len(first_dead) < len(others):
        check(time.monotonic() < deadline,
              "n3 not dead at every member within %.1fs; dead at %s" % (bound, first_dead))
        for a in others:
            if a.name in first_dead:
                continue
            m = a.members().get("n3")
            check(m is not None, "%s forgot n3 (reaped too early?)" % a.name)
            if m["state"] == "dead":
                first_dead[a.name] = time.monotonic() - t_kill
                log("%s: n3 dead after %.2fs (cause: %s)" % (a.name, first_dead[a.name],
                                                              m.get("cause")))
        time.sleep(0.1)
    earliest, latest = min(first_dead.values()), max(first_dead.values())
    log("kill -9 -> dead at all %d members: first %.2fs, last %.2fs (bound %.1fs)" %
        (len(others), earliest, latest, bound))
    # kill -9 leaves n3's host up: its kernel refuses the peer port (ICMP
    # port unreachable for a probe datagram, or a reset for a connect).
    # That is proof, confirmed by another member's refused NACK: the death
    # comes on proof, not after a silence suspicion (whose minimum is
    # smin). At least one survivor says so in its cause; the others may
    # have heard it by gossip.
    causes = {a.name: (a.members().get("n3") or {}).get("cause", "") for a in others}
    check(any("connection refused" in c and "confirmed" in c for c in causes.values()),
          "no survivor declared n3 dead on refused-and-confirmed proof: %s" % causes)
    log("kill -9 is proof: first verdict after %.2fs (a silence suspicion needs %.2fs)" %
        (earliest, smin))

    # each survivor logged the change with its cause
    for a in others:
        lines = [l for l in a.log_text().splitlines()
                 if mvtest.grep(l, r"\bdead\b") and "n3" in l and "cause=" in l]
        check(lines, "%s did not log n3's death with a cause" % a.name)
    log("n1 logged: %s" % [l for l in c["n1"].log_text().splitlines()
                           if mvtest.grep(l, r"\bdead\b") and "n3" in l][:1])

    # restart under the same name on new ports
    victim.peer_port = t.port()
    victim.rpc_port = t.port()
    victim.start(join=[c["n1"].peer_addr])
    dt = c.wait_state("n3", "alive", timeout=30, addr=victim.peer_addr)
    log("restarted n3 at %s accepted by all in %.2fs" % (victim.peer_addr, dt))
    c.wait_converged(timeout=30)
    for obs, ms in c.views().items():
        check(ms["n3"]["addr"] == victim.peer_addr,
              "%s has n3 at %s, want the new %s" % (obs, ms["n3"]["addr"], victim.peer_addr))


mvtest.run(main)
