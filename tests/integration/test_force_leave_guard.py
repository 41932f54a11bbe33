#!/usr/bin/env python3
"""Issue 13: a node that does not hear a majority of its voting set refuses
to force-leave, unless the operator states that the majority is gone.

Three agents. n2 and n3 are killed (-9): n1, alone, hears 1 of 3 voters —
exactly what it would hear cut off by a partition with n2 and n3 alive.

1. The CLI: --majority-is-gone goes with force-leave only (exit 2, says
   so, before any connection).
2. `force-leave n2 --yes` on n1 is refused (exit 1): the error names the
   numbers (hears 1 of 3, majority 2), the minority side of a partition and
   --majority-is-gone; nothing is removed (the voting set stays 3) and n1
   logs the refusal with the certificate that asked.
3. `force-leave n2 --yes --majority-is-gone` is accepted: the voting set
   shrinks to 2, and n1 logs the override loudly (WARN, the certificate
   that asked).
(A quorate node's force-leave, accepted as before, is test_failover.py
step 4.)"""
import signal

import mvtest
from mvtest import check, log

FAILOVER = {"heartbeat_ms": 250, "fence_after_ms": 3000, "fence_margin_ms": 1500}
# n1 alone gets no confirmations of its suspicions: keep the longest
# suspicion short so that n2 and n3 are dead within seconds
SWIM = {"suspicion_min_mult": 3, "suspicion_max_mult": 2}


def main(t):
    c = t.cluster(3, swim=SWIM, agent_extra={"failover": FAILOVER})
    n1 = c["n1"]

    # 1. flag parsing: usage errors, before anything is sent
    r = n1.cli("members", "--majority-is-gone")
    check(r.returncode == 2 and "--majority-is-gone goes with 'force-leave'" in r.stderr,
          "members --majority-is-gone: exit %d %r" % (r.returncode, r.stderr))
    r = n1.cli("force-leave", "--yes", "--majority-is-gone")
    check(r.returncode == 2 and "host name" in r.stderr,
          "force-leave without a node: exit %d %r" % (r.returncode, r.stderr))

    c.start_all()
    c.wait_converged(timeout=30)
    mvtest.wait_until(lambda: n1.ha()["quorate"] and n1.ha()["voters"] == 3, 20,
                      "n1 to be quorate with 3 voters")

    for name in ("n2", "n3"):
        c[name].signal(signal.SIGKILL)
    for name in ("n2", "n3"):
        c[name].wait_exit(5)
    for name in ("n2", "n3"):
        c.wait_state(name, ["dead"], 30, observers=[n1])
    mvtest.wait_until(lambda: not n1.ha()["quorate"], 10, "n1 to lose quorum")

    # 2. refused: n1 hears 1 of 3
    r = n1.cli("force-leave", "n2", "--yes")
    check(r.returncode == 1, "force-leave on a node without a majority: exit %d %r" %
          (r.returncode, r.stderr))
    for want in ("n1 hears 1 of 3 voters", "not a majority (2)",
                 "minority side of a partition", "--majority-is-gone"):
        check(want in r.stderr, "the refusal does not say %r: %r" % (want, r.stderr))
    h = n1.ha()
    check(h["voters"] == 3, "a refused force-leave removed a voter: %r" % h)
    check("force-leave refused name=n2 client=test-operator" in n1.log_text(),
          "n1 did not log the refusal with who asked")
    log("refused: %s" % r.stderr.strip())

    # 3. the operator states that the majority is gone: removed, logged
    r = n1.cli("force-leave", "n2", "--yes", "--majority-is-gone")
    check(r.returncode == 0, "force-leave --majority-is-gone: exit %d %r" %
          (r.returncode, r.stderr))
    check(n1.ha()["voters"] == 2, "voters after the override: %r" % n1.ha())
    check("WARN  failover force-leave OVERRIDE: client=test-operator" in n1.log_text(),
          "n1 did not log the override loudly with who asked")
    log("override accepted: the voting set is 2")


mvtest.run(main, default_timeout=60)
