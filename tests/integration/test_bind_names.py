#!/usr/bin/env python3
"""`bind` and `advertise` by host name: resolved once, before the agent's
loop runs, to the IP literal the agent listens on and gossips.

  1. Three agents with bind and advertise "localhost" (and so rpc_bind)
     form a cluster: each logs the resolution, listens on 127.0.0.1, and
     every member's advertised address is the literal 127.0.0.1:PORT.
  2. bind "no-such-host.invalid" (RFC 2606: never resolves): the agent
     does not start, exit 1, and says which key and name did not resolve.
  3. advertise "bad_name!" (not a host name): refused by the parser,
     exit 2, with the expected forms."""
import subprocess

import mvtest
from mvtest import check, log


def main(t):
    c = t.cluster(4)
    names = {"bind": "localhost", "advertise": "localhost"}
    n1, n2, n3, n4 = c["n1"], c["n2"], c["n3"], c["n4"]

    # 1. a cluster on names
    n1.start(extra=names)
    n2.start(join=[n1.peer_addr], extra=names)
    n3.start(join=[n1.peer_addr], extra=names)
    c.wait_converged(timeout=30, names=["n1", "n2", "n3"])
    for a in (n1, n2, n3):
        txt = a.log_text()
        for key in ("bind", "advertise", "rpc_bind"):
            check(mvtest.grep(txt, r"host name resolved key=%s name=localhost addr=127\.0\.0\.1"
                              % key), "%s did not log resolving %s" % (a.name, key))
    ms = n1.members()
    addrs = {n: ms[n]["addr"] for n in ("n1", "n2", "n3")}
    log("members as n1 sees them: %s" % addrs)
    for a in (n1, n2, n3):
        check(addrs[a.name] == a.peer_addr,
              "%s advertises %s, expected %s" % (a.name, addrs[a.name], a.peer_addr))
    log("3 agents with bind/advertise localhost formed a cluster")

    # 2. a name that does not resolve: a clear error, no start
    n4.start(extra={"bind": "no-such-host.invalid"}, wait=False)
    try:
        rc = n4.proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise mvtest.TestFailure("the agent with an unresolvable bind is still running")
    out = n4.log_text()
    check(rc == 1 and "bind: host name 'no-such-host.invalid' does not resolve" in out,
          "unresolvable bind: exit %s, said %r" % (rc, out[-400:]))
    log("bind no-such-host.invalid: exit 1, %s" % out.strip().splitlines()[-1][:160])

    # 3. not a host name at all: the parser refuses it
    p = subprocess.run([c.binary, "agent", "--name", "x", "--advertise", "bad_name!"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=10)
    check(p.returncode == 2 and "--advertise: expected an IPv4 or IPv6 address literal or a "
          "host name" in p.stderr,
          "--advertise bad_name! was not refused clearly: %d %s" % (p.returncode, p.stderr))
    log("--advertise bad_name!: %s" % p.stderr.strip()[:160])


mvtest.run(main, default_timeout=90)
