#!/usr/bin/env python3
"""Issue 13: nothing destructive on one peer's word. A node certificate
"n9", signed by the cluster CA but never deployed, against a clean
3-voter cluster n1..n3 (n2 runs an HA VM), over the peer port's TLS
stream (the envelope's sender is checked against the certificate, so n9
speaks as itself):

1. n9 sends n2 a FENCE_ORDER for n2's incarnation: n2 destroys nothing,
   keeps its incarnation and its quorum, and logs one refusal.
2. n9 sends n1 and n3 a CHOSEN for the live n2 (a plan moving the HA VM
   to n1, ballot from n9): not learned — no "plan chosen" anywhere, no
   failover listed, n2 still acknowledged — one refusal logged on each.
3. n9 sends n1 one SWIM PING (SWIM takes in a stranger on one PING, as a
   joiner's first probes): n9 becomes a member, never heartbeats the
   failover core, and dies; the voting set stays 3 (majority 2) on every
   agent throughout.
Through it all the HA VM runs once, on n2, at its first owner epoch."""
import time

import mvtest
import mvwire
from mvtest import check, log

FAILOVER = {"heartbeat_ms": 250, "fence_after_ms": 3000, "fence_margin_ms": 1500}
HA_UUID = "6d657368-000d-0001-0000-000000000001"

FO_FENCE_ORDER, FO_CHOSEN = 3, 9


def fo_message(type_, to, dead, dead_inc, plan, ballot=0, proposer=""):
    """A FailoverMessage (proto/meshvisor.proto) with a plan."""
    out = (mvwire.f_varint(1, type_) + mvwire.f_bytes(2, to) + mvwire.f_bytes(7, dead) +
           mvwire.f_varint(8, dead_inc) + mvwire.f_varint(10, ballot) +
           mvwire.f_bytes(11, proposer) + mvwire.f_varint(14, 1))
    for e in plan:
        out += mvwire.f_bytes(15, e, always=True)
    return out


def send_as_n9(t, agent, payload):
    """One envelope from n9 over the agent's peer port, then close."""
    ca = t.certs.ca_cert
    s = mvtest.tls_client("127.0.0.1", agent.peer_port, ca, *t.n9)
    try:
        s.sendall(mvwire.frame(payload))
        time.sleep(0.3)  # let it be read before the close
    finally:
        s.close()


def fo_envelope(msg):
    return mvwire.f_varint(1, 1) + mvwire.f_bytes(2, "n9") + mvwire.f_bytes(13, msg, always=True)


def refusals(agent, since, what):
    return [l for l in agent.log_text()[since:].splitlines()
            if "refused failover message from=n9" in l and what in l]


def check_cluster(c, vm_epoch, why):
    for a in c.running():
        h = a.ha()
        check(h["voters"] == 3 and h["majority"] == 2 and h["quorate"],
              "%s (%s): voters %s, majority %s, quorate %s" %
              (a.name, why, h["voters"], h["majority"], h["quorate"]))
    copies = c["n1"].vm_copies().get("ha-db", [])
    check([(h, s) for h, s, _ in copies] == [("n2", "running")] and copies[0][2] == vm_epoch,
          "%s: ha-db copies %s, want one, running on n2 at epoch %d" % (why, copies, vm_epoch))


def main(t):
    c, epoch = mvtest.ha_trio(t, HA_UUID, FAILOVER)
    n1, n2, n3 = c["n1"], c["n2"], c["n3"]
    check_cluster(c, epoch, "before")
    t.n9 = t.setup_certs().make("node", "n9")
    inc = n1.members()["n2"]["incarnation"]
    log("n2 lives at incarnation %d; ha-db runs on n2 at epoch %d" % (inc, epoch))

    # 1. FENCE_ORDER to n2
    before = {a.name: len(a.log_text()) for a in c.running()}
    plan = [mvwire.fo_entry(HA_UUID, "ha-db", "n9", epoch + 1)]
    send_as_n9(t, n2, fo_envelope(fo_message(FO_FENCE_ORDER, "n2", "n2", inc, plan)))
    line = mvtest.wait_until(lambda: refusals(n2, before["n2"], "FENCE_ORDER"), 10,
                             "n2 logs the refused FENCE_ORDER")
    log("n2: %s" % line[0].split("failover: ", 1)[-1])

    # 2. CHOSEN for the live n2, to n1 and n3 (over a second apart: the
    # refusal log is limited to one a second per agent)
    plan = [mvwire.fo_entry(HA_UUID, "ha-db", "n1", epoch + 1)]
    for a in (n1, n3):
        send_as_n9(t, a, fo_envelope(fo_message(FO_CHOSEN, a.name, "n2", inc, plan, 7, "n9")))
    for a in (n1, n3):
        line = mvtest.wait_until(lambda: refusals(a, before[a.name], "CHOSEN"), 10,
                                 "%s logs the refused CHOSEN" % a.name)
        log("%s: %s" % (a.name, line[0].split("failover: ", 1)[-1]))

    # 3. one SWIM PING from n9 (an address nobody answers at)
    ping = mvwire.swim_message(mvwire.PING, 1, "127.0.0.1:9", "n1")
    send_as_n9(t, n1, mvwire.envelope("n9", swim=ping))
    mvtest.wait_until(lambda: "n9" in n1.members() or None, 10, "n1 takes n9 in (SWIM)")
    log("n1's members after the PING: %s" % sorted(n1.members()))
    deadline = time.monotonic() + 20
    seen_dead = False
    while time.monotonic() < deadline:
        check_cluster(c, epoch, "n9 a SWIM member")
        m = n1.members().get("n9")
        if m is None or m.get("state") in ("dead", "left", "DEAD", "LEFT"):
            seen_dead = True
            if time.monotonic() > deadline - 12:
                break
        time.sleep(1)
    log("n9 %s to n1's membership" % ("went dead or was dropped" if seen_dead else "still listed"))

    # nothing happened: one refusal per message, no plan, no fence, no new incarnation
    time.sleep(2)
    check_cluster(c, epoch, "after")
    check(n1.members()["n2"]["incarnation"] == inc,
          "n2 moved to incarnation %s" % n1.members()["n2"]["incarnation"])
    for a in c.running():
        text = a.log_text()[before[a.name]:]
        for bad in ("plan chosen", "fence-vms", "destroy", "failover opened", "fenced itself"):
            check(bad not in text, "%s logged %r after the attacks" % (a.name, bad))
    check(len(refusals(n2, before["n2"], "")) == 1,
          "n2 logged %d refusals, want 1" % len(refusals(n2, before["n2"], "")))
    for a in (n1, n3):
        check(len(refusals(a, before[a.name], "CHOSEN")) == 1,
              "%s logged %d CHOSEN refusals, want 1" %
              (a.name, len(refusals(a, before[a.name], "CHOSEN"))))
        fo = a.cli("failovers", "--json")
        check(fo.returncode == 0 and "n9" not in fo.stdout,
              "%s failovers: %s %s" % (a.name, fo.returncode, fo.stdout[:300]))


if __name__ == "__main__":
    mvtest.run(main, default_timeout=120)
