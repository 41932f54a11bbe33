#!/usr/bin/env python3
"""SIGHUP reloads the CA, certificate and key without dropping the cluster:
a node's files are replaced by a new certificate from the same CA, the
agent logs the reload, new connections are served with the new
certificate, and every member stays alive throughout. A broken
replacement is refused on SIGHUP and the old material stays in use."""
import os
import shutil
import signal
import ssl
import time

import mvtest
from mvtest import check, log


def served_cert(agent, ca, creds):
    s = mvtest.tls_client("127.0.0.1", agent.rpc_port, ca, creds[1], creds[2])
    try:
        return s.getpeercert(binary_form=True)
    finally:
        s.close()


def pem_der(path):
    with open(path) as f:
        text = f.read()
    start = text.index("-----BEGIN CERTIFICATE-----")
    end = text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    return ssl.PEM_cert_to_DER_cert(text[start:end])


def replace(src, dst):
    tmp = dst + ".new"
    shutil.copyfile(src, tmp)
    os.chmod(tmp, 0o600)
    os.replace(tmp, dst)


def watch_alive(c, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for obs, ms in c.views().items():
            bad = {n: m["state"] for n, m in ms.items() if m["state"] != "alive"}
            check(not bad, "%s sees %s during the reload" % (obs, bad))
        time.sleep(0.3)


def main(t):
    c = t.cluster(3)
    c.start_all(seed="n1")
    c.wait_converged(timeout=30)
    n2 = c["n2"]
    ca, ocert, okey = t.client_creds("operator")
    creds = (ca, ocert, okey)

    old = served_cert(n2, ca, creds)
    check(old == pem_der(n2.cert), "n2 does not serve its configured certificate")
    new_cert, new_key = t.certs.make("node", "n2", subdir="n2-renewed")
    check(pem_der(new_cert) != old, "the renewed certificate equals the old one")
    replace(new_cert, n2.cert)
    replace(new_key, n2.key)
    before = len(n2.log_text())
    n2.signal(signal.SIGHUP)
    mvtest.wait_until(lambda: mvtest.grep(n2.log_text()[before:], r"reload"), 10,
                      "n2 to log the reload")
    log("n2 log: %s" % [l for l in n2.log_text()[before:].splitlines() if "reload" in l.lower()])
    check(n2.alive(), "n2 exited on SIGHUP")
    now = mvtest.wait_until(lambda: served_cert(n2, ca, creds) == pem_der(new_cert), 10,
                            "n2 to serve the renewed certificate")
    check(now, "n2 still serves the old certificate")
    watch_alive(c, 4)
    # the peers reach n2 with new handshakes too: restart n3, which must
    # reconnect to everyone
    c["n3"].signal(signal.SIGTERM)
    c["n3"].wait_exit(15)
    c["n3"].start(join=[n2.peer_addr])
    c.wait_converged(timeout=30)

    # a broken key: the reload fails, is logged, and nothing is dropped
    with open(n2.key, "w") as f:
        f.write("not a key\n")
    before = len(n2.log_text())
    n2.signal(signal.SIGHUP)
    mvtest.wait_until(lambda: mvtest.grep(n2.log_text()[before:], r"reload"), 10,
                      "n2 to log the failed reload")
    text = n2.log_text()[before:]
    log("n2 log after broken reload: %s" % [l for l in text.splitlines() if "reload" in l.lower()])
    check(mvtest.grep(text, r"fail|error|keep|invalid|cannot|could not"),
          "the failed reload is not reported as a failure")
    check(n2.alive(), "n2 exited on a failed reload")
    check(served_cert(n2, ca, creds) == pem_der(new_cert), "n2 lost its certificate")
    watch_alive(c, 2)


mvtest.run(main)
