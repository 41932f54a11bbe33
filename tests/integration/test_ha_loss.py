#!/usr/bin/env python3
"""Issue 9, case 2 — loss on every host: HA never loses a VM.

Five agents, each in a network namespace of its own on one bridge
(mvha.NetLab), two HA VMs on every host (10 in all). Failover timings as
in the other failover tests (heartbeat 250 ms, fence_after 3000 ms, margin
1500 ms), SWIM at the suite's fast settings.

1. Before: every HA VM on its own host; definitions replicated; `ha`
   exits 0 on every agent.
2. Every agent's namespace drops a random 15..25% (one rate per host, from
   a seed printed at the start; MV_HA_SEED replays it) of the packets
   arriving in it (nftables `numgen random mod 100 < P drop` on input; the
   test's own CLI traffic is exempt), so every path between two agents
   loses its receiver's rate, for 60 s (MV_HA_LOSS_S). Hosts may lose
   quorum and fence themselves without anyone declaring them dead. A
   sampler (mvha.HaWatch) checks about once a second, from the hosts' own
   reports, that no HA VM runs on two hosts.
3. The loss heals. Within 60 s every HA VM runs on exactly one host (the
   hosts' own reports, every agent's view agrees) and `ha` exits 0,
   listing nothing, on every agent.
4. `ha` told the truth meanwhile (as in test_ha_gray.py).

Needs root (namespaces, nftables)."""
import os

import mvha
import mvtest


def main(t):
    mvha.need_root()
    mvha.case_loss(t, n=5, vms_per_host=2, lo=15, hi=25,
                   loss_s=float(os.environ.get("MV_HA_LOSS_S", "60")), settle_s=60.0)


if __name__ == "__main__":
    mvtest.run(main, default_timeout=150)
