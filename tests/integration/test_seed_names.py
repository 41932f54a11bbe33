#!/usr/bin/env python3
"""Seeds by host name (issue 14: host names wherever an operator types an
address). The names are resolved off the loop (uv_getaddrinfo) when the
agent joins.

  1. n2's config joins through "localhost:PORT" (n1's peer port): it
     resolves and n2 joins; n2 logs the resolution.
  2. n3 starts alone; `meshvisor join localhost:PORT` on it joins it.
  3. n4's config names only a seed that cannot resolve
     (no-such-host.invalid, RFC 2606): n4 serves, logs the failure and
     retries, warning on the first 3 lookups only (then at debug level);
     `meshvisor join` with a literal then joins it.
  4. A seed that is not a valid host name is refused by the config parser
     and by the join RPC, each with a clear error, and nothing changes."""
import mvtest
from mvtest import check, log


def main(t):
    c = t.cluster(4)
    n1, n2, n3, n4 = c["n1"], c["n2"], c["n3"], c["n4"]
    n1.start()
    port = n1.peer_port

    # 1. config seed by name
    n2.start(join=["localhost:%d" % port])
    c.wait_converged(timeout=30, names=["n1", "n2"])
    check("seed resolved seed=localhost:%d" % port in n2.log_text(),
          "n2 did not log resolving its seed")
    log("n2 joined through localhost:%d" % port)

    # 2. the join RPC with a name
    n3.start()
    r = n3.cli("join", "localhost:%d" % port)
    check(r.returncode == 0, "join localhost:%d on n3: %s" % (port, r.stderr))
    c.wait_converged(timeout=30, names=["n1", "n2", "n3"])
    log("n3 joined through `meshvisor join localhost:%d`" % port)

    # 3. a name that never resolves: the agent serves and retries
    n4.start(join=["no-such-host.invalid:%d" % port])
    mvtest.wait_until(lambda: n4.log_text().count("seed does not resolve") >= 2, 20,
                      "n4 to fail resolving its seed twice (a retry)")
    check(n4.status()["members_alive"] == 1, "n4 joined through a seed that does not resolve")
    # after a few failed lookups it says it keeps trying quietly (no WARN
    # every 30 s forever)
    mvtest.wait_until(lambda: "logged at debug level from now on" in n4.log_text(), 30,
                      "n4 to say it keeps looking its seed up at debug level")
    mvtest.wait_until(lambda: "DEBUG swim seed does not resolve" in n4.log_text(), 30,
                      "n4 to look its seed up again (at debug level)")
    warned = n4.log_text().count("WARN  swim seed does not resolve")
    check(warned == 3, "n4 warned %d times about its seed, not 3" % warned)
    r = n4.cli("join", n1.peer_addr)
    check(r.returncode == 0, "join %s on n4: %s" % (n1.peer_addr, r.stderr))
    c.wait_converged(timeout=30)
    log("n4 logged the unresolvable seed, kept serving, then joined by a literal")

    # 4. invalid names are refused
    r = n4.cli("join", "bad_name!:7946")
    check(r.returncode != 0 and "HOSTNAME:PORT" in (r.stderr + r.stdout),
          "join bad_name!:7946 was not refused clearly: %s %s" % (r.stdout, r.stderr))
    log("join RPC refused an invalid seed: %s" % r.stderr.strip()[:160])
    import subprocess
    p = subprocess.run([c.binary, "agent", "--name", "x", "--join", "bad_name!:7946"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=10)
    check(p.returncode == 2 and "HOSTNAME:PORT" in p.stderr,
          "the agent did not refuse --join bad_name!:7946 at start: %d %s" %
          (p.returncode, p.stderr))
    log("agent refused --join bad_name!:7946: %s" % p.stderr.strip()[:160])


mvtest.run(main, default_timeout=90)
