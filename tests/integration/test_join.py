#!/usr/bin/env python3
"""5 agents join through one seed and all see 5 alive; the client CLI
reads the same view as JSON, as a table and from environment variables;
an agent started alone joins later through `meshvisor join`; bad flags and
an unreachable agent give exit codes 2 and 1 with plain-words errors.
Probes and heartbeats travel as sealed datagrams once the cluster formed:
every agent counts datagrams received, none failed authentication."""
import os
import re
import subprocess

import mvtest
from mvtest import check, log


STATUS_KEYS = ("name", "version", "peer_addr", "rpc_addr", "started_unix_ms", "uptime_ms",
               "incarnation", "local_health", "members_alive", "members_suspect",
               "members_dead", "members_left", "libvirt_uri", "libvirt_reachable",
               "libvirt_error", "peer_connections", "role", "datagrams_in", "datagrams_out",
               "datagram_auth_failures", "datagram_replays", "datagram_no_key",
               "peer_connections_out", "peer_connections_in", "peer_handshakes",
               "peer_handshake_failures", "peer_evictions", "peer_idle_closes",
               "datagram_rekeys", "peer_reused_in")
# one line per event: timestamp, level, component, message, key=value fields
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\s+"
                      r"(DEBUG|INFO|WARN|ERROR)\s+[a-z_]+\s+\S")


def main(t):
    c = t.cluster(5)
    c.start_all(seed="n1")
    c.wait_converged(timeout=30)

    for obs, ms in c.views().items():
        check(sorted(ms) == ["n1", "n2", "n3", "n4", "n5"],
              "%s sees members %s, want n1..n5" % (obs, sorted(ms)))
        for name, m in ms.items():
            check(m["addr"] == c[name].peer_addr,
                  "%s sees %s at %s, want %s" % (obs, name, m["addr"], c[name].peer_addr))
            for key in ("incarnation", "since_unix_ms", "cause"):
                check(key in m, "%s: member %s has no %r in members --json" % (obs, name, key))

    st = c["n3"].status()
    log("status of n3: %s" % st)
    # snake_case of every mv.StatusReply field
    for key in STATUS_KEYS:
        check(key in st, "status --json lacks %r" % key)
    check(st.get("name") == "n3", "status name %r, want n3" % st.get("name"))
    check(st.get("members_alive") == 5, "status members_alive %r, want 5" %
          st.get("members_alive"))
    check(st.get("role") == "viewer", "status role %r, want viewer (the caller's role)" %
          st.get("role"))
    check(st.get("peer_addr") == c["n3"].peer_addr, "status peer_addr %r" % st.get("peer_addr"))
    # n3 joined through n1 and has spoken TLS with it: at least one
    # completed peer handshake and one peer connection
    check(st["peer_handshakes"] >= 1, "status peer_handshakes %r, want >= 1" %
          st["peer_handshakes"])
    check(st["peer_connections_out"] + st["peer_connections_in"] >= 1,
          "status: no peer connection at n3: %s" % st)

    # the failure detector's probes ride datagrams: after a few probe
    # rounds every agent has opened some, and none failed authentication
    # (a key mismatch between two agents would show here)
    mvtest.wait_until(lambda: all(c[n].status().get("datagrams_in", 0) > 0
                                for n in ("n1", "n2", "n3", "n4", "n5")),
                    timeout=20, what="datagrams received at every agent")
    for n in ("n1", "n2", "n3", "n4", "n5"):
        s = c[n].status()
        log("%s datagrams: in=%s out=%s auth_failures=%s replays=%s no_key=%s" % (
            n, s["datagrams_in"], s["datagrams_out"], s["datagram_auth_failures"],
            s["datagram_replays"], s["datagram_no_key"]))
        check(s["datagrams_out"] > 0, "%s sent no datagrams" % n)
        check(s["datagram_auth_failures"] == 0,
              "%s: %s datagrams failed authentication" % (n, s["datagram_auth_failures"]))
        check(s["datagram_replays"] == 0, "%s: %s datagrams replayed" % (n, s["datagram_replays"]))

    r = c["n2"].cli("members")
    check(r.returncode == 0, "members (table) failed: %s" % r.stderr)
    for n in ("n1", "n2", "n3", "n4", "n5"):
        check(n in r.stdout, "members table lacks %s:\n%s" % (n, r.stdout))
    check("alive" in r.stdout, "members table shows no state:\n%s" % r.stdout)

    # client settings from the environment, as consul/serf do
    ca, cert, key = t.client_creds("viewer")
    env = dict(os.environ, MESHVISOR_ADDR=c["n4"].rpc_addr, MESHVISOR_CA=ca,
               MESHVISOR_CERT=cert, MESHVISOR_KEY=key)
    r = subprocess.run([t.binary, "status", "--json"], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, timeout=15)
    check(r.returncode == 0 and '"n4"' in r.stdout,
          "status with MESHVISOR_* env failed (exit %d): %s %s" %
          (r.returncode, r.stdout, r.stderr))

    # usage error -> 2; unreachable -> 1, said in plain words
    r = c["n1"].cli("members", "--no-such-flag")
    check(r.returncode == 2, "bad flag: exit %d, want 2 (stderr %r)" % (r.returncode, r.stderr))
    check(r.stderr.strip() != "", "bad flag: nothing on stderr")
    dead_port = t.port()
    r = subprocess.run([t.binary, "status", "--addr", "127.0.0.1:%d" % dead_port,
                        "--ca", ca, "--cert", cert, "--key", key],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30)
    check(r.returncode == 1, "unreachable agent: exit %d, want 1" % r.returncode)
    check(mvtest.grep(r.stderr, r"unreachable|connect|refused"),
          "unreachable agent: unclear error %r" % r.stderr)
    log("unreachable agent says: %s" % r.stderr.strip())

    # an agent started without seeds joins through the operator's `join`
    n6 = c.add("n6")
    n6.start()
    r = n6.cli("join", c["n2"].peer_addr, role="operator")
    check(r.returncode == 0, "join via CLI failed (exit %d): %s" % (r.returncode, r.stderr))
    c.wait_converged(timeout=30)
    check(len(c["n1"].members()) == 6, "n1 does not see 6 members after join")

    for a in c.running():
        lines = a.log_text().splitlines()
        check(lines, "%s logged nothing" % a.name)
        bad = [l for l in lines if not LOG_LINE.match(l)]
        check(not bad, "%s: log lines not in the one-line format: %s" % (a.name, bad[:3]))
        joined = [l for l in lines if "joined" in l and "cause=" in l]
        check(joined, "%s: no membership change logged with its cause" % a.name)


mvtest.run(main)
