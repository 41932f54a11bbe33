#!/usr/bin/env python3
"""Rotating the cluster CA without stopping the cluster, exactly as
docs/runbook.md ("Rotate the cluster CA") says:

  1. make the new CA (`meshvisor tls ca create`);
  2. every host's tls.ca becomes a bundle of the old and the new CA, and
     each agent reloads (SIGHUP);
  3. each host gets a node certificate from the new CA and reloads, one at
     a time; operators get new certificates too;
  4. the old CA leaves every tls.ca, and each agent reloads.

Throughout, every member stays alive in every view. After step 4 the
sessions still authenticated by the old CA's certificates are closed
("not signed by a CA in the CA file now in force") and rebuilt with the
new ones, an operator certificate of the old CA is refused, one of the new
CA works, and the cluster is whole."""
import os
import shutil
import signal
import time

import mvtest
from mvtest import check, log


def watch_alive(c, seconds, what):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for obs, ms in c.views().items():
            check(not isinstance(ms, str), "%s: %s does not answer: %s" % (what, obs, ms))
            bad = {n: m["state"] for n, m in ms.items() if m["state"] != "alive"}
            check(not bad, "%s: %s sees %s" % (what, obs, bad))
        time.sleep(0.3)


def put(src_text, dst):
    tmp = dst + ".new"
    with open(tmp, "w") as f:
        f.write(src_text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, dst)


def reload_all(c, what):
    marks = {a.name: len(a.log_text()) for a in c.running()}
    for a in c.running():
        a.signal(signal.SIGHUP)
    for a in c.running():
        mvtest.wait_until(lambda: "certificates reloaded" in a.log_text()[marks[a.name]:], 10,
                          "%s to reload (%s)" % (a.name, what))


def main(t):
    c = t.cluster(3)
    c.start_all(seed="n1")
    c.wait_converged(timeout=30)
    binary = c.binary
    ca_file = t.certs.ca_cert
    with open(ca_file) as f:
        old_ca = f.read()
    old_op = t.client_creds("operator")

    # 1. the new CA
    work = os.path.join(t.tmp, "ca-rotation")
    os.makedirs(work)
    mvtest.run_cmd([binary, "tls", "ca", "create", "--dir", os.path.join(work, "ca2"),
                    "--name", "meshvisor cluster CA 2027"], "tls ca create")
    with open(os.path.join(work, "ca2", "ca.pem")) as f:
        new_ca = f.read()

    # 2. bundle old + new on every host, reload
    put(old_ca + new_ca, ca_file)
    reload_all(c, "bundle")
    watch_alive(c, 3, "after the bundle")

    # 3. new node certificates, one host at a time
    for a in list(c.agents.values()):
        out = os.path.join(work, a.name)
        mvtest.run_cmd([binary, "tls", "cert", "create", "--role", "node", "--name", a.name,
                        "--ip", "127.0.0.1", "--ca-dir", os.path.join(work, "ca2"),
                        "--out-dir", out], "tls cert create %s" % a.name)
        with open(os.path.join(out, a.name + ".pem")) as f:
            put(f.read(), a.cert)
        with open(os.path.join(out, a.name + "-key.pem")) as f:
            put(f.read(), a.key)
        mark = len(a.log_text())
        a.signal(signal.SIGHUP)
        mvtest.wait_until(lambda: "certificates reloaded" in a.log_text()[mark:], 10,
                          "%s to reload its new certificate" % a.name)
        watch_alive(c, 2, "after %s's new certificate" % a.name)
    out = os.path.join(work, "ops")
    mvtest.run_cmd([binary, "tls", "cert", "create", "--role", "operator", "--name", "admin2027",
                    "--ca-dir", os.path.join(work, "ca2"), "--out-dir", out], "operator cert")
    new_op = (ca_file, os.path.join(out, "admin2027.pem"), os.path.join(out, "admin2027-key.pem"))
    mvtest.run_cmd([binary, "tls", "cert", "create", "--role", "viewer", "--name", "view2027",
                    "--ca-dir", os.path.join(work, "ca2"), "--out-dir", out], "viewer cert")
    # from here on the harness looks at the cluster with the new viewer
    t._creds["viewer"] = (ca_file, os.path.join(out, "view2027.pem"),
                          os.path.join(out, "view2027-key.pem"))
    for a in c.running():
        r = a.cli("members", "--json", creds=new_op)
        check(r.returncode == 0, "new operator refused by %s during the rotation: %s" %
              (a.name, r.stderr))

    # 4. the old CA leaves
    marks = {a.name: len(a.log_text()) for a in c.running()}
    put(new_ca, ca_file)
    reload_all(c, "new CA only")
    watch_alive(c, 5, "after the old CA left")
    closed = sum(a.log_text()[marks[a.name]:].count("not signed by a CA in the CA file now in force")
                 for a in c.running())
    log("sessions closed for the old CA's certificates after step 4: %d" % closed)
    # the peer connections made before step 3 were authenticated with the
    # old CA's certificates: the reload must have cut them (and the
    # cluster, watched above, rebuilt them with the new ones)
    check(closed >= 1, "no session of an old-CA certificate was closed after the old CA left")
    # an old operator whose own CA file still trusts both: the agent refuses it
    bundle = os.path.join(work, "bundle.pem")
    with open(bundle, "w") as f:
        f.write(old_ca + new_ca)
    r = c["n2"].cli("members", "--json", creds=(bundle, old_op[1], old_op[2]))
    check(r.returncode != 0, "an operator certificate of the removed CA still works: %s" % r.stdout)
    log("old operator refused by n2: %s" % r.stderr.strip().splitlines()[-1:])
    for a in c.running():
        r = a.cli("members", "--json", creds=new_op)
        check(r.returncode == 0, "new operator refused by %s: %s" % (a.name, r.stderr))
    # a restarted host joins with only the new CA's material
    n3 = c["n3"]
    n3.signal(signal.SIGTERM)
    n3.wait_exit(15)
    n3.start(join=[c["n1"].peer_addr])
    c.wait_converged(timeout=30)
    watch_alive(c, 2, "after n3 restarted")
    shutil.rmtree(work)


mvtest.run(main, default_timeout=120)
