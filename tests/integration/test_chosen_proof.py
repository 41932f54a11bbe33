#!/usr/bin/env python3
"""Issue 13: a CHOSEN about another host is obeyed only with proof that a
majority of the voters accepted it. A clean 3-voter cluster n1..n3 (n2
runs an HA VM); a rogue holding n3's node key (stolen: the real n3 keeps
running) speaks as n3, a voter, over n1's peer port:

  it sends n1 a CHOSEN for the live, quorate n2's incarnation — a plan
  moving the HA VM to n1, claiming that every acceptor last acknowledged
  n2 long ago (start at once) — and backs it with its own READ_REPLY.

n1 asks every voter what it accepted there (READ); n2 and the real n3
accepted nothing, nor did n1: the claim is refused and logged once, and
nothing else happens for longer than the timed fence (F + margin): no
plan learned, no failover, n1 keeps acknowledging n2, the HA VM runs
once, on n2, at its epoch. (Before the majority read, n1 took the plan
on n3's word, stopped acknowledging n2 and started the VM beside n2's
copy once its fence wait ran out.)"""
import time

import mvtest
import mvwire
from mvtest import check, log

FAILOVER = {"heartbeat_ms": 250, "fence_after_ms": 3000, "fence_margin_ms": 1500}
HA_UUID = "6d657368-000d-0002-0000-000000000001"

FO_CHOSEN, FO_READ_REPLY = 9, 13


def fo_message(type_, to, dead, dead_inc, plan, ballot, proposer, acc_ballot=0):
    """A FailoverMessage (proto/meshvisor.proto) with a plan and an ack
    age claiming the last acknowledgement of `dead` an hour ago."""
    out = (mvwire.f_varint(1, type_) + mvwire.f_bytes(2, to) + mvwire.f_bytes(7, dead) +
           mvwire.f_varint(8, dead_inc) + mvwire.f_varint(10, ballot) +
           mvwire.f_bytes(11, proposer) + mvwire.f_varint(12, acc_ballot) +
           mvwire.f_bytes(13, proposer if acc_ballot else "") + mvwire.f_varint(14, 1))
    for e in plan:
        out += mvwire.f_bytes(15, e, always=True)
    return out + mvwire.f_varint(23, 1) + mvwire.f_varint(24, 3600 * 1000)


def fo_envelope(from_, msg):
    return (mvwire.f_varint(1, 1) + mvwire.f_bytes(2, from_) +
            mvwire.f_bytes(13, msg, always=True))


def refusals(agent, since):
    return [l for l in agent.log_text()[since:].splitlines()
            if "refused failover message from=n3" in l and "CHOSEN for n2" in l]


def main(t):
    c, epoch = mvtest.ha_trio(t, HA_UUID, FAILOVER)
    n1, n2, n3 = c["n1"], c["n2"], c["n3"]
    inc = n1.members()["n2"]["incarnation"]
    log("n2 lives at incarnation %d; ha-db runs on n2 at epoch %d" % (inc, epoch))

    before = len(n1.log_text())
    plan = [mvwire.fo_entry(HA_UUID, "ha-db", "n1", epoch + 1)]
    s = mvtest.tls_client("127.0.0.1", n1.peer_port, t.certs.ca_cert, n3.cert, n3.key)
    try:
        s.sendall(mvwire.frame(fo_envelope("n3", fo_message(FO_CHOSEN, "n1", "n2", inc, plan,
                                                            7, "n3"))))
        s.sendall(mvwire.frame(fo_envelope("n3", fo_message(FO_READ_REPLY, "n1", "n2", inc,
                                                            plan, 7, "n3", acc_ballot=7))))
        time.sleep(0.3)  # let it be read before the close
    finally:
        s.close()
    def settled():
        text = n1.log_text()[before:]
        return refusals(n1, before) or ("plan chosen" in text and ["learned"]) or None
    mvtest.wait_until(settled, 10, "n1 refuses n3's CHOSEN (or learns it)")
    learned = [l for l in n1.log_text()[before:].splitlines() if "plan chosen" in l]
    check(not learned, "n1 took n3's word: %s" % (learned[:1],))
    line = refusals(n1, before)
    log("n1: %s" % line[0].split("failover: ", 1)[-1])
    check("not proven" in line[0], "n1's refusal: %s" % line[0])

    # longer than the timed fence: nothing learned, n2 acknowledged by both
    # others on every look, the VM once on n2
    deadline = time.monotonic() + (FAILOVER["fence_after_ms"] +
                                   FAILOVER["fence_margin_ms"]) / 1000.0 + 2.5
    looks = 0
    while time.monotonic() < deadline:
        h = n2.ha()
        check(h["quorate"] and h["voters"] == 3 and h["alive_voters"] == 3,
              "n2: quorate %s, voters %s, acknowledged by %s" %
              (h["quorate"], h["voters"], h["alive_voters"]))
        copies = n1.vm_copies().get("ha-db", [])
        check([(hn, st, ep) for hn, st, ep in copies] == [("n2", "running", epoch)],
              "ha-db copies %s, want one, running on n2 at epoch %d" % (copies, epoch))
        looks += 1
        time.sleep(0.5)
    log("%d looks over %.1f s: n2 quorate and acknowledged by n1 and n3, ha-db once on n2" %
        (looks, (FAILOVER["fence_after_ms"] + FAILOVER["fence_margin_ms"]) / 1000.0 + 2.5))
    text = n1.log_text()[before:]
    for bad in ("plan chosen", "fence-vms", "destroy", "failover opened", "restart"):
        check(bad not in text, "n1 logged %r after the forged CHOSEN" % bad)
    check(len(refusals(n1, before)) == 1,
          "n1 logged %d CHOSEN refusals, want 1" % len(refusals(n1, before)))
    fo = n1.cli("failovers", "--json")
    check(fo.returncode == 0 and '"n2"' not in fo.stdout,
          "n1 failovers: %s %s" % (fo.returncode, fo.stdout[:300]))
    check(n1.members()["n2"]["incarnation"] == inc,
          "n2 moved to incarnation %s" % n1.members()["n2"]["incarnation"])


if __name__ == "__main__":
    mvtest.run(main, default_timeout=90)
