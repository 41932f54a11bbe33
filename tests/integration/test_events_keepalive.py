#!/usr/bin/env python3
"""`meshvisor events` streams stay open without traffic: the agent sends a
keepalive on each stream every third of its idle timeout
(peer_idle_timeout_ms, which closes RPC connections too), and clients skip
them.

  1. Two agents with a 1.5 s idle timeout. A raw subscriber (events,
     backlog 0) and `meshvisor events --json` on n1 get no event for
     4 idle periods: both stay connected, the raw one receives keepalives
     (more = true, no result), the CLI prints nothing.
  2. n2 leaves: both still receive that real event (member-left).
  3. (root, nftables) A subscriber whose acknowledgements stop (the
     agent's packets to it dropped) gets no more keepalives and is closed
     by the idle timeout: a dead subscriber is still dropped.

Without the keepalives, step 1 fails: the agent closes both streams as idle
after 1.5 s."""
import os
import shutil
import signal
import socket
import subprocess
import time

import mvtest
import mvwire
from mvtest import check, log

IDLE_MS = 1500


def events_frame(id_, backlog=0):
    body = mvwire.f_varint(1, backlog)
    req = mvwire.f_varint(1, id_) + mvwire.f_bytes(25, body, always=True)
    return mvwire.frame(mvwire.envelope(request=req))


def subscribe(agent, creds):
    s = mvtest.tls_client("127.0.0.1", agent.rpc_port, *creds, timeout=10)
    s.sendall(events_frame(7))
    return s


def read_quiet(s, seconds):
    """Reads frames for `seconds`; returns (keepalives, real frames, closed)."""
    keep, real = 0, []
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return keep, real, False
        s.settimeout(left)
        try:
            p = mvwire.read_frame(s.recv)
        except socket.timeout:
            return keep, real, False
        except (OSError, EOFError) as e:
            log("stream ended: %s" % e)
            return keep, real, True
        if p is None:
            return keep, real, True
        r = mvwire.decode_response(p)
        if r["keepalive"]:
            check(r["id"] == 7 and r["more"] and r["kind"] is None and r["code"] == 0,
                  "a keepalive that is not a bare progress frame of the stream: %s" % (r,))
            keep += 1
        else:
            real.append(r)


def main(t):
    c = t.cluster(2, agent_extra={"peer_idle_timeout_ms": IDLE_MS})
    c.start_all()
    c.wait_converged(timeout=30)
    n1, n2 = c["n1"], c["n2"]
    viewer = t.client_creds("viewer")

    # 1. quiet streams stay open
    raw = subscribe(n1, viewer)
    ca, cert, key = viewer
    # MV_OLD_CLI: an older release's binary (0.1.0, 0.2.0) streams beside ours
    clis = [c.binary] + ([os.environ["MV_OLD_CLI"]] if os.environ.get("MV_OLD_CLI") else [])
    procs = [subprocess.Popen([b, "events", "--backlog", "0", "--json", "--addr",
                               n1.rpc_addr, "--ca", ca, "--cert", cert, "--key", key],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              stdin=subprocess.DEVNULL) for b in clis]
    quiet_s = 4 * IDLE_MS / 1000.0
    keep, real, closed = read_quiet(raw, quiet_s)
    log("raw subscriber: %d keepalives, %d events in %.1f s quiet, closed=%s" %
        (keep, len(real), quiet_s, closed))
    check(not closed, "the agent closed a quiet event stream (idle timeout %d ms)" % IDLE_MS)
    check(keep >= 6, "only %d keepalives in %.1f s (one per %d ms expected)" %
          (keep, quiet_s, IDLE_MS // 3))
    for b, cli in zip(clis, procs):
        check(cli.poll() is None, "%s events ended while quiet: %s" %
              (b, cli.communicate()[1] if cli.poll() is not None else ""))

    # 2. a real event still arrives on both
    r = n2.cli("leave", role="operator")
    check(r.returncode == 0, "leave on n2: %s" % r.stderr)
    keep2, real, closed = read_quiet(raw, 10)
    kinds = [e["body"]["kind"] for e in real if e["kind"] == "event"]
    log("raw subscriber after n2 left: %s (%d keepalives)" % (kinds, keep2))
    check("member-left" in kinds, "the raw subscriber did not get member-left: %s" % kinds)
    for b, cli in zip(clis, procs):
        cli.send_signal(signal.SIGINT)
        try:
            out, err = cli.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            cli.kill()
            out, err = cli.communicate()
        lines = [l for l in out.splitlines() if l.strip()]
        log("%s printed %d lines: %s" % (b, len(lines), [l[:80] for l in lines]))
        check(lines and all(l.startswith("{") and '"kind"' in l for l in lines),
              "%s printed something other than events: %r" % (b, out[-500:]))
        check(any("member-left" in l for l in lines), "%s did not print member-left: %r" %
              (b, out[-500:]))
    raw.close()

    # 3. a subscriber that acknowledges nothing is closed by the idle timeout
    if os.geteuid() != 0 or shutil.which("nft") is None:
        log("step 3 skipped: needs root and nft")
        return
    dead = subscribe(n1, viewer)
    port = dead.getsockname()[1]
    keep, _, closed = read_quiet(dead, 1.0)
    check(not closed and keep >= 1, "the second subscriber got no keepalive")
    table = "mvka%d" % os.getpid()
    subprocess.run(["nft", "add", "table", "inet", table], check=True)
    try:
        subprocess.run(["nft", "add", "chain", "inet", table, "out",
                        "{ type filter hook output priority 0 ; }"], check=True)
        subprocess.run(["nft", "add", "rule", "inet", table, "out", "tcp", "sport",
                        str(n1.rpc_port), "tcp", "dport", str(port), "drop"], check=True)
        t0 = time.monotonic()
        pat = r"connection closed kind=rpc dir=in remote=127\.0\.0\.1:%d .*idle timeout" % port
        mvtest.wait_until(lambda: mvtest.grep(n1.log_text(), pat), 10 * IDLE_MS / 1000.0,
                          "n1 to close the subscriber that acknowledges nothing")
        log("the unacknowledging subscriber was closed as idle after %.1f s" %
            (time.monotonic() - t0))
    finally:
        subprocess.run(["nft", "delete", "table", "inet", table])
        dead.close()


mvtest.run(main, default_timeout=60)
