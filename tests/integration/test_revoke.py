#!/usr/bin/env python3
"""Revocation (issue 13): a certificate listed in the CRL (tls.crl) loses
the cluster at the next SIGHUP.

Three agents start with an empty CRL from `meshvisor tls crl create`. Then
n3's certificate and a viewer's are revoked (`--revoke ... --keep` the list
in force) and n1 and n2 reload: each logs the CRL in force, closes n3's
connections with a WARN line that says why, forgets n3's datagram keys, and
refuses n3's new handshakes ("refused client 'n3': certificate revoked by
the cluster CRL"). n1 and n2 declare n3 dead, and n3 restarted with a join
through n1 cannot come back. n3's genuine proof of leaving, relayed by
another node certificate (n9, not revoked), is refused: the certificate it
carries is revoked, so n3 stays dead (a voter) instead of leaving every
voting set. The revoked viewer's CLI is refused with a
clear error. A broken CRL file at reload keeps the list in force (logged),
and at start is a configuration error naming the file."""
import os
import signal
import subprocess
import time

import mvtest
import mvwire as w
from mvtest import check, log


def crl(t, out, revoke=(), keep=False):
    cmd = [t.binary, "tls", "crl", "create", "--ca-dir", t.certs.ca_dir, "--out", out]
    for r in revoke:
        cmd += ["--revoke", r]
    if keep:
        cmd += ["--keep", out]
    mvtest.run_cmd(cmd, "tls crl create")


def tls_extra(a, crl_file):
    return {"tls": {"ca": a.c.certs.ca_cert, "cert": a.cert, "key": a.key, "crl": crl_file}}


def main(t):
    t.setup_certs()
    crl_file = os.path.join(t.tmp, "crl.pem")
    crl(t, crl_file)
    c = t.cluster(3)
    n1, n2, n3 = c["n1"], c["n2"], c["n3"]
    # n3 has no CRL of its own: what stops it is the others' list
    c.start_each({"n1": tls_extra(n1, crl_file), "n2": tls_extra(n2, crl_file)}, seed="n1")
    c.wait_converged(timeout=30)
    check(mvtest.grep(n1.log_text(), r"revocation list in force .*revoked=0"),
          "n1 did not log the (empty) CRL at start")
    viewer = t.certs.make("viewer", "revoked-viewer", ip=None)
    vcreds = (t.certs.ca_cert,) + viewer
    r = n1.cli("status", creds=vcreds)
    check(r.returncode == 0, "the viewer works before revocation: %r" % r.stderr)

    # revoke n3 and the viewer; reload n1 and n2
    crl(t, crl_file, revoke=(n3.cert, viewer[0]), keep=True)
    marks = {a.name: len(a.log_text()) for a in (n1, n2, n3)}
    t0 = time.monotonic()
    for a in (n1, n2):
        a.signal(signal.SIGHUP)
    for a in (n1, n2):
        mvtest.wait_until(lambda: mvtest.grep(a.log_text()[marks[a.name]:],
                                              r"revocation list in force .*revoked=2"), 10,
                          "%s to log the new CRL" % a.name)
    # n3 is cut off: its connections closed or its handshakes refused, logged
    gone = (r"(rejected connection .*peer=n3 reason=\"certificate revoked by the CRL now in "
            r"force\"|refused client 'n3': certificate revoked by the cluster CRL)")
    for a in (n1, n2):
        mvtest.wait_until(lambda: mvtest.grep(a.log_text()[marks[a.name]:], gone), 15,
                          "%s to log that n3 is revoked" % a.name)
        line = [l for l in a.log_text()[marks[a.name]:].splitlines() if mvtest.grep(l, gone)][0]
        log("%s: %s" % (a.name, line))
    # every datagram key n3's certificate made is wiped (with a connection
    # open or not: the CRL names the certificate), so nothing it seals
    # verifies any more
    for a in (n1, n2):
        mvtest.wait_until(lambda: mvtest.grep(a.log_text()[marks[a.name]:],
                                              r"datagram keys of distrusted certificates "
                                              r"wiped keys=[1-9]"), 10,
                          "%s to wipe n3's datagram keys" % a.name)
    took = c.wait_state("n3", "dead", 30, observers=[n1, n2])
    log("n1 and n2 see n3 dead %.1fs after the reload" % (time.monotonic() - t0))
    check(took >= 0, "n3 not dead")
    mvtest.wait_until(lambda: mvtest.grep(n3.log_text()[marks["n3"]:],
                                          r"certificate revoked"), 15,
                      "n3 to log that the others refuse its certificate")

    # n3's own proof of leaving (its key, its certificate: revoked), relayed
    # to n1 by n9 (a node certificate that is not revoked): refused, and n3
    # stays dead (a voter), not left
    inc3 = n1.members()["n3"]["incarnation"]
    proof = mvtest.left_proof(n3.cert, n3.key, "n3", inc3 + 1)
    cert9, key9 = t.certs.make("node", "n9")
    mark1 = len(n1.log_text())
    s = mvtest.tls_client("127.0.0.1", n1.peer_port, t.certs.ca_cert, cert9, key9)
    s.sendall(w.frame(w.envelope("n9", swim=w.swim_message(
        w.ACK, 0, "127.0.0.1:1", "n1", updates=[
            w.member_update("n3", n3.peer_addr, inc3 + 1, w.LEFT, "n3", left_proof=proof)]))))
    why = mvtest.wait_until(
        lambda: [l for l in n1.log_text()[mark1:].splitlines()
                 if mvtest.grep(l, r"left claim of n3 at %d not verified: .*revoked" % (inc3 + 1))],
        10, "n1 to refuse n3's proof of leaving")
    log("n1: %s" % why[0].split("DEBUG ", 1)[-1])
    s.close()
    m = n1.members()["n3"]
    check(m["state"] == "dead" and m["incarnation"] == inc3,
          "n1 holds n3 %s at %d after its revoked proof of leaving, want dead at %d" %
          (m["state"], m["incarnation"], inc3))

    # the revoked viewer is refused, with the reason
    r = n1.cli("status", creds=vcreds)
    log("revoked viewer: exit %d, %s" % (r.returncode, r.stderr.strip()))
    check(r.returncode == 1 and "certificate revoked" in r.stderr,
          "revoked viewer: exit %d, %r" % (r.returncode, r.stderr.strip()))

    # n3 restarted cannot rejoin
    n3.signal(signal.SIGKILL)
    n3.wait_exit(10)
    n3.start(join=[n1.peer_addr], wait=False)
    end = time.monotonic() + 6
    while time.monotonic() < end:
        for a in (n1, n2):
            m = a.members().get("n3")
            check(m is not None and m["state"] == "dead",
                  "%s sees n3 %s after its restart" % (a.name, m and m["state"]))
        time.sleep(0.5)
    check(n1.members()["n2"]["state"] == "alive", "n1 lost n2")

    # a broken CRL at reload: the list in force stays, and says so
    with open(crl_file, "w") as f:
        f.write("not a CRL\n")
    mark = len(n1.log_text())
    n1.signal(signal.SIGHUP)
    mvtest.wait_until(lambda: mvtest.grep(n1.log_text()[mark:], r"reload failed; keeping"), 10,
                      "n1 to log the failed reload")
    check(mvtest.grep(n1.log_text()[mark:], r"holds no PEM CRL"), "the reason is not logged")
    r = n1.cli("status", creds=vcreds)
    check(r.returncode == 1 and "certificate revoked" in r.stderr,
          "after a broken reload the viewer is no longer refused: %r" % r.stderr.strip())
    check(n1.alive(), "n1 exited on a broken CRL")

    # ... and at start it is a configuration error that names the file
    n2.signal(signal.SIGTERM)
    n2.wait_exit(15)
    n2.write_config(join=[n1.peer_addr], extra=tls_extra(n2, crl_file))
    r = subprocess.run([t.binary, "agent", "--config", n2.config], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=15,
                       stdin=subprocess.DEVNULL)
    log("n2 with a broken CRL: exit %d, %s" % (r.returncode, r.stdout.strip()[-300:]))
    check(r.returncode != 0 and "crl.pem' holds no PEM CRL" in r.stdout,
          "n2 started with a broken CRL or did not say why: exit %d" % r.returncode)


mvtest.run(main)
