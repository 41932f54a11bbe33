#!/usr/bin/env python3
"""The RPC port refuses, each with a clear error: a client with no
certificate, a certificate from another CA, an expired certificate, a
certificate without a role, and a viewer doing a write. None of them
changes anything, and the agent keeps serving good clients. A node
certificate on the RPC port may read but not do what an operator does."""
import ssl

import mvtest
import mvwire
from mvtest import check, log


def raw_refused(agent, creds, what):
    """Presents creds straight to the agent's RPC port (python's ssl does
    not check a client certificate locally, unlike the CLI) and asserts the
    agent refuses: a TLS alert or a closed connection, never a reply."""
    ca, cert, key = creds
    try:
        s = mvtest.tls_client("127.0.0.1", agent.rpc_port, ca, cert, key)
    except (ssl.SSLError, ConnectionError) as e:
        return "handshake refused: %s" % e
    try:
        try:
            s.sendall(mvwire.request_frame(1, "status"))
        except (ssl.SSLError, ConnectionError) as e:
            return "refused on send: %s" % e
        return mvtest.expect_closed(s, what)
    finally:
        s.close()


def refused(agent, creds, what, stderr_re, log_re):
    """The CLI fails with exit 1 and a clear error, and the agent itself
    refuses the same certificate with a logged reason."""
    r = agent.cli("status", creds=creds)
    log("%s: CLI exit %d, stderr: %s" % (what, r.returncode, r.stderr.strip()))
    check(r.returncode == 1, "%s: exit %d, want 1 (stdout %r)" % (what, r.returncode, r.stdout))
    check(mvtest.grep(r.stderr, stderr_re), "%s: error %r does not match /%s/" %
          (what, r.stderr.strip(), stderr_re))
    before = len(agent.log_text())
    how = raw_refused(agent, creds, what)
    log("%s: agent refused the raw client (%s)" % (what, how))
    mvtest.wait_until(lambda: mvtest.grep(agent.log_text()[before:], log_re), 5,
                      "%s: agent log line matching /%s/" % (what, log_re))
    line = [l for l in agent.log_text()[before:].splitlines() if mvtest.grep(l, log_re)][0]
    log("%s: agent log: %s" % (what, line))


def main(t):
    c = t.cluster(2)
    c.start_all(seed="n1")
    c.wait_converged(timeout=30)
    n1 = c["n1"]
    ca = t.certs.ca_cert

    # 1. no client certificate: the CLI will not even try (usage error)...
    r = n1.cli("status", creds=(ca, None, None))
    log("no certificate: CLI exit %d, stderr: %s" % (r.returncode, r.stderr.strip()))
    check(r.returncode in (1, 2) and mvtest.grep(r.stderr, r"cert"),
          "CLI without a certificate: exit %d, %r" % (r.returncode, r.stderr.strip()))
    # ...and the agent refuses a raw TLS client that sends none
    before = len(n1.log_text())
    got = None
    try:
        s = mvtest.tls_client("127.0.0.1", n1.rpc_port, ca=ca)
        try:
            s.sendall(mvwire.request_frame(1, "status"))
            got = mvtest.expect_closed(s, "client without certificate")
        finally:
            s.close()
    except (ssl.SSLError, ConnectionError) as e:
        got = "handshake refused: %s" % e
    log("no certificate: agent refused the raw client (%s)" % got)
    no_cert = (r"(no|without|missing|did not return a).{0,20}certificate|"
               r"certificate.{0,20}(required|missing)")
    mvtest.wait_until(lambda: mvtest.grep(n1.log_text()[before:], no_cert), 5,
                      "agent log line matching /%s/" % no_cert)

    # 2. a certificate signed by another CA (the client trusts our CA)
    cert, key = t.certs.other_ca("operator", "intruder")
    refused(n1, (ca, cert, key), "other CA",
            r"certificate.*(refused|rejected|unknown ca|not signed|verif)",
            r"refused.*(unknown ca|issuer|not signed|verif)|(unknown ca|issuer|verif).*refused")

    # 3. an expired certificate from our own CA
    cert, key = t.certs.special("expired", "operator", "late")
    refused(n1, (ca, cert, key), "expired certificate", r"expired", r"refused.*expired")

    # 4. a certificate from our CA with no role
    cert, key = t.certs.special("norole", "operator", "nobody")
    refused(n1, (ca, cert, key), "certificate without role", r"role", r"refused.*role")

    # 5. a viewer may read but not write
    r = n1.cli("status", role="viewer")
    check(r.returncode == 0, "viewer status failed: %s" % r.stderr)
    for args in (("leave",), ("join", c["n2"].peer_addr)):
        r = n1.cli(*args, role="viewer")
        log("viewer %s: exit %d, stderr: %s" % (args[0], r.returncode, r.stderr.strip()))
        check(r.returncode == 1, "viewer %s: exit %d, want 1" % (args[0], r.returncode))
        check(mvtest.grep(r.stderr, r"permission denied"),
              "viewer %s: error %r lacks 'permission denied'" % (args[0], r.stderr.strip()))
    check(n1.alive(), "n1 stopped after a viewer's leave")

    # 5b. a node certificate on the RPC port reads, and may not do what an
    #     operator does (issue 13: a stolen node key is no operator key)
    n2 = c["n2"]
    ncreds = (ca, n2.cert, n2.key)
    r = n1.cli("status", creds=ncreds)
    check(r.returncode == 0, "node certificate status failed: %s" % r.stderr)
    before = len(n1.log_text())
    for args in (("leave",), ("join", n2.peer_addr), ("drain", "n1")):
        r = n1.cli(*args, creds=ncreds)
        log("node certificate %s: exit %d, stderr: %s" % (args[0], r.returncode,
                                                          r.stderr.strip()))
        check(r.returncode == 1 and "has role node on the RPC port, which may not" in r.stderr,
              "node certificate %s on the RPC port: exit %d, %r" %
              (args[0], r.returncode, r.stderr.strip()))
    check(mvtest.grep(n1.log_text()[before:], r"refused request op=\"leave\" client=n2 role=node"),
          "n1 did not log the refused node request")
    check(n1.alive(), "n1 stopped after a node certificate's leave on the RPC port")

    # 6. the client refuses an agent it cannot verify: a client of another
    #    cluster (its own CA and certificate) reaching our agent
    other_ca = t.certs._find_cert(t.certs.root + "/other-ca", prefer="ca")
    cert, key = t.certs.other_ca("operator", "intruder")
    r = n1.cli("status", creds=(other_ca, cert, key))
    log("client of another cluster: exit %d, stderr: %s" % (r.returncode, r.stderr.strip()))
    check(r.returncode == 1 and mvtest.grep(r.stderr, r"certificate|verif"),
          "client of another cluster: exit %d, %r" % (r.returncode, r.stderr.strip()))

    # nothing changed and good clients are still served
    c.wait_converged(timeout=10)
    st = n1.status(role="operator")
    check(st.get("role") == "operator", "operator status role %r" % st.get("role"))


mvtest.run(main)
