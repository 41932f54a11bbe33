#!/usr/bin/env python3
"""Issue 9, case 4 — a quick reboot: HA never loses a VM.

Four agents on loopback (libvirt's test driver: an agent's death is its
whole host's). n2 runs three HA VMs (rb-a, rb-b, rb-c) and one that is not
HA (rb-plain); n1, n3, n4 one HA VM each. Failover timings as in the other
failover tests (heartbeat 250 ms, fence_after 3000 ms, margin 1500 ms).

1. Before: every HA VM on its own host; definitions replicated; `ha`
   exits 0 on every agent.
2. Cycle 1: n2 is killed with SIGKILL, its test-driver host file is
   rewritten without any VM (a rebooted host comes back with none running
   or defined; the agent reads the file on start) and n2 is started again,
   same name, data dir and ports, within 2 s of the kill: it comes back at
   a new incarnation, possibly before anyone declared it dead. Within 45 s
   every HA VM runs on exactly one host again (on n2 or elsewhere; the
   hosts' own reports, every agent's view agrees) and `ha` exits 0,
   listing nothing, on every agent. rb-plain (not HA) is never restarted.
   A sampler (mvha.HaWatch) checks about once a second that no HA VM runs
   on two hosts, and asks `ha` while some HA VM runs nowhere: it must exit
   1 and list it (asserted where `ha --json` has its "owed" list).
3. Cycle 2: the same for another host (not the seed n1, not n2), the one
   that runs the most HA VMs after cycle 1.
4. Cycle 3: n2 again, and again 1 s after that restart, while the cluster
   is recovering its VMs (an agent restarted mid-recovery).

FIGURE lines: restart -> every HA VM running, per cycle."""
import mvha
import mvtest


def main(t):
    mvha.case_reboot(t, n=4, cycles=3, settle_s=45.0)


if __name__ == "__main__":
    mvtest.run(main, default_timeout=150)
