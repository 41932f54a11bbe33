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
Through it all the HA VM runs once, on n2, at its first owner epoch.
4. A lying voter's FENCED. n2 is killed (-9: its VM dies with it, and its
   libvirt cannot be reached, so the survivors must wait out its fence
   deadline). While n1 and n3 fail it over, a second certificate the CA
   issued for "n3" tells n1, and one for "n1" tells n3, that n2's
   incarnation is fenced ("libvirt: destroyed", a lie a rogue voter could
   tell while n2 still ran the VM). Neither believes it: ha-db runs again
   once, at a higher epoch, on a host that confirmed the fence by the
   timed wait ("waited"), and no agent confirms it "reported by" anyone.
   The second certificate's handshakes do not disturb the real voters'
   datagrams: their keys are kept aside (logged once), and neither n1 nor
   n3 fences itself."""
import signal
import time

import mvtest
import mvwire
from mvtest import check, log

FAILOVER = {"heartbeat_ms": 250, "fence_after_ms": 3000, "fence_margin_ms": 1500}
HA_UUID = "6d657368-000d-0001-0000-000000000001"

FO_FENCE_ORDER, FO_CHOSEN, FO_FENCED = 3, 9, 10


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
    send_as(t, agent, t.n9, payload)


def send_as(t, agent, cred, payload):
    """One envelope over the agent's peer port with certificate `cred`."""
    ca = t.certs.ca_cert
    s = mvtest.tls_client("127.0.0.1", agent.peer_port, ca, *cred)
    try:
        s.sendall(mvwire.frame(payload))
        time.sleep(0.3)  # let it be read before the close
    finally:
        s.close()


def fo_envelope(msg, sender="n9"):
    return (mvwire.f_varint(1, 1) + mvwire.f_bytes(2, sender) +
            mvwire.f_bytes(13, msg, always=True))


def fenced_message(to, dead, dead_inc, text):
    """A FailoverMessage FENCED for (dead, dead_inc), round 0."""
    return (mvwire.f_varint(1, FO_FENCED) + mvwire.f_bytes(2, to) + mvwire.f_bytes(7, dead) +
            mvwire.f_varint(8, dead_inc) + mvwire.f_bytes(20, text))


def rogue_fenced(t, c, inc, epoch):
    """Step 4 (see the top): a lying voter's FENCED starts nothing."""
    n1, n2, n3 = c["n1"], c["n2"], c["n3"]
    liars = {"n1": t.certs.make("node", "n3", subdir="rogue-n3"),   # "n3" lies to n1
             "n3": t.certs.make("node", "n1", subdir="rogue-n1")}   # "n1" lies to n3
    mark = {a.name: len(a.log_text()) for a in (n1, n3)}
    n2.signal(signal.SIGKILL)
    n2.wait_exit(10)
    mvtest.wait_until(lambda: all("plan chosen dead=n2" in a.log_text()[mark[a.name]:]
                                  for a in (n1, n3)) or None, 30,
                      "n1 and n3 learn the plan for n2")
    # one lie each, at once (the timed wait has F + margin to run). A
    # connection under a voter's name used to install new datagram keys
    # for that name on the receiver, so the real voter's heartbeats were
    # lost until it rekeyed: n1 fenced itself meanwhile (ten lies made n3
    # declare n1 dead). Now a second certificate's keys go aside while the
    # one in use is heard (dgram_install_cert).
    lie = "libvirt: through its libvirt qemu+tls://n2/system"
    for a in (n1, n3):
        liar = "n3" if a.name == "n1" else "n1"
        check("fence confirmed dead=n2" not in a.log_text()[mark[a.name]:],
              "%s confirmed the fence before the lie was sent" % a.name)
        send_as(t, a, liars[a.name],
                fo_envelope(fenced_message(a.name, "n2", inc, lie), sender=liar))
    log("sent n1 and n3 a lying FENCED each")

    def runs_again():
        copies = n1.vm_copies().get("ha-db", [])
        running = [(h, e) for h, s, e in copies if s == "running" and h != "n2"]
        return running if len(running) == 1 else None
    running = mvtest.wait_until(runs_again, 30, "ha-db runs again once")
    check(running[0][1] > epoch, "ha-db runs at epoch %s, want above %d" % (running, epoch))
    log("ha-db runs again on %s at epoch %d" % running[0])
    # the host that started it confirmed the fence by the timed wait; no
    # agent on the liar's word (a learner that is no target may never
    # confirm it: its instance is done once the VM runs)
    for a in (n1, n3):
        ls = [l for l in a.log_text()[mark[a.name]:].splitlines()
              if "fence confirmed dead=n2" in l]
        for l in ls:
            log("%s: %s" % (a.name, l.split("failover ", 1)[-1]))
        check(all("waited" in l and "reported by" not in l for l in ls),
              "%s confirmed the fence of n2 on another's word: %s" % (a.name, ls))
        check(ls or a.name != running[0][0],
              "%s started ha-db without confirming the fence of n2" % a.name)
        liar = "n3" if a.name == "n1" else "n1"
        text = a.log_text()[mark[a.name]:]
        check("second certificate for peer=%s" % liar in text,
              "%s did not put the second certificate's datagram keys for %s aside"
              % (a.name, liar))
        check("fencing ourselves" not in text,
              "%s fenced itself after the second certificate's connection" % a.name)


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

    # 4. a lying voter's FENCED while n2's failover waits for its fence
    rogue_fenced(t, c, inc, epoch)


if __name__ == "__main__":
    mvtest.run(main, default_timeout=120)
