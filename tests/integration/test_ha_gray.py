#!/usr/bin/env python3
"""Issue 9, case 1 — a gray host: HA never loses a VM.

Five agents, each in a network namespace of its own on one bridge
(mvha.NetLab). n5, the gray host, runs three HA VMs (gray-a, gray-b,
gray-c); n1..n4 run one HA VM each. Failover timings as in the other
failover tests (heartbeat 250 ms, fence_after 3000 ms, margin 1500 ms),
SWIM at the suite's fast settings.

1. Before: every HA VM runs on exactly one host (its own); every
   definition is replicated; `meshvisor ha` exits 0 on every agent (7 HA
   VMs, quorate).
2. n5 drops 50% of its packets in each direction (nftables `numgen random
   mod 100 < 50 drop` on input and output in n5's namespace; the test's
   own CLI traffic is exempt) for 60 s (MV_HA_LOSS_S). n5 may lose quorum,
   fence itself (destroy its HA VMs), be declared dead and come back at a
   higher incarnation; its VMs may move. A sampler (mvha.HaWatch) asks
   every host for its own VMs about once a second: no HA VM may ever run
   on two hosts (confirmed by a second look); while one runs nowhere, `ha`
   is asked as well.
3. The link heals. Within 50 s every HA VM runs on exactly one host (the
   hosts' own reports, and every agent's view agrees) and `ha` exits 0,
   listing nothing, on every agent.
4. `ha` told the truth meanwhile: in every stretch of at least 6 s in
   which an HA VM ran nowhere, a quorate agent's `ha` exited 1 and listed
   it at least once (asserted where `ha --json` has its "owed" list).

The log tells what happened (quorum lost, self-fences, deaths, restarts,
each VM's time running nowhere) and prints a FIGURE line: heal -> every HA
VM running. Needs root (namespaces, nftables)."""
import os

import mvha
import mvtest


def main(t):
    mvha.need_root()
    mvha.case_gray(t, n=5, loss_pct=50, loss_s=float(os.environ.get("MV_HA_LOSS_S", "60")),
                   settle_s=50.0)


if __name__ == "__main__":
    mvtest.run(main, default_timeout=150)
