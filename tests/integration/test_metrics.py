#!/usr/bin/env python3
"""Prometheus metrics (issue 14): every agent serves GET /metrics on its
metrics listener, in the text exposition format 0.0.4, and what it says
agrees with the CLI.

Three hosts on libvirt's test driver (kill -9 of an agent is the death of
its host, as in test_failover.py); n2 runs two HA VMs.

1. Every agent's scrape parses: each family has one HELP and one TYPE line
   before its samples, counters end in _total, histograms have cumulative
   buckets ending in le="+Inf" equal to _count. Values agree with the CLI:
   members by state with `members --json`, quorate / voters / majority /
   acknowledging voters / HA VMs with `ha --json`, the RPC requests just
   made are counted by op and code. n2 migrates a plain VM to n3: its
   migrations by outcome agree with `migrations --json`, and the move's
   duration is observed once. Every metric deploy/grafana-dashboard.json
   queries is served. n3's listener has metrics.tls: scraped with a
   viewer's certificate (the same checks), plain HTTP and a client without
   a certificate get nothing, and are counted; of 40 connections that never
   start a handshake, 8 are closed at once (32 sessions at most) and the
   rest when the 10 s handshake deadline passes.
2. Hostile clients of the listener: a malformed request line and a 64 KiB
   header are refused with a 4xx (or the connection closed), POST gets 405,
   another path 404; 40 idle connections from one address are cut to the
   per-address limit (the rest closed at once), and while they are held the
   agent's RPC and SWIM go on (status answers, nobody suspected); once they
   go, a scrape answers again.
3. kill -9 n2: once its HA VMs run elsewhere, n1's and n3's scrapes say
   members alive 2 / dead 1 as `members --json` does, the failover
   instances by phase as `failovers --json` does, 0 HA VMs owed as `ha
   --json` does, a death counted, and the failover's phase durations in
   the histogram (one observation each). A trimmed scrape of n1 is logged.
4. An agent whose metrics port is taken does not start, and says which.
5. SIGTERM: n3 stops cleanly (exit 0, no handle left open).
"""
import json
import os
import re
import signal
import socket
import time

import mvtest
from mvtest import check, log

GIB = 1024 * 1024
MIB = 1024
FAILOVER = {"heartbeat_ms": 250, "fence_after_ms": 3000, "fence_margin_ms": 1500}
DEAD_URI = "qemu+tcp://127.0.0.1:1/system"
UUIDS = {"ha-a": "6d657368-0014-0001-0000-000000000001",
         "ha-b": "6d657368-0014-0001-0000-000000000002",
         "plain": "6d657368-0014-0001-0000-000000000003"}
HA_VMS = ("ha-a", "ha-b")
LEASE_MS = 1000  # a fresh agent takes migrations after its lease

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse(text, who):
    """{family: {"type", "help", "samples": [(name, {labels}, value)]}};
    checks the format's rules on the way (TestFailure naming the line)."""
    fams = {}
    cur = None
    for n, line in enumerate(text.splitlines(), 1):
        where = "%s line %d %r" % (who, n, line)
        if line.startswith("# HELP "):
            name, help_ = line[7:].split(" ", 1)
            check(name not in fams, "%s: family declared twice" % where)
            fams[name] = {"help": help_, "type": None, "samples": []}
            cur = name
        elif line.startswith("# TYPE "):
            name, typ = line[7:].split(" ", 1)
            check(name == cur and fams[name]["type"] is None,
                  "%s: TYPE not right after its HELP" % where)
            check(typ in ("counter", "gauge", "histogram"), "%s: type %s" % (where, typ))
            fams[name]["type"] = typ
        else:
            m = SAMPLE.match(line)
            check(m is not None, "%s: not a sample line" % where)
            name, labels, value = m.group(1), m.group(2) or "", m.group(3)
            fam = fams.get(cur)
            check(fam is not None and fam["type"] is not None, "%s: sample before HELP/TYPE" % where)
            base = cur
            if fam["type"] == "histogram":
                check(name in (cur + "_bucket", cur + "_sum", cur + "_count"),
                      "%s: not a sample of histogram %s" % (where, cur))
            else:
                check(name == base, "%s: sample of another family than %s" % (where, cur))
            if fam["type"] == "counter":
                check(name.endswith("_total"), "%s: a counter not named _total" % where)
            lab = {}
            pos = 0
            while pos < len(labels):
                lm = LABEL.match(labels, pos)
                check(lm is not None, "%s: bad labels" % where)
                lab[lm.group(1)] = lm.group(2)
                pos = lm.end()
            v = float(value)  # +Inf, NaN parse too
            fam["samples"].append((name, lab, v))
    for name, fam in fams.items():
        check(name.startswith("meshvisor_"), "%s: family %s without the prefix" % (who, name))
        if fam["type"] == "histogram":
            check_histogram(fam, "%s %s" % (who, name))
    return fams


def check_histogram(fam, what):
    series = {}
    for name, lab, v in fam["samples"]:
        key = tuple(sorted((k, x) for k, x in lab.items() if k != "le"))
        series.setdefault(key, {"buckets": [], "sum": None, "count": None})
        s = series[key]
        if name.endswith("_bucket"):
            s["buckets"].append((lab["le"], v))
        elif name.endswith("_sum"):
            s["sum"] = v
        else:
            s["count"] = v
    for key, s in series.items():
        b = s["buckets"]
        check(b and b[-1][0] == "+Inf", "%s %s: no +Inf bucket last" % (what, key))
        les = [float(le) for le, _ in b]
        check(les == sorted(les), "%s %s: buckets not in order" % (what, key))
        counts = [c for _, c in b]
        check(counts == sorted(counts), "%s %s: buckets not cumulative %s" % (what, key, counts))
        check(s["count"] == counts[-1], "%s %s: +Inf %s != _count %s" %
              (what, key, counts[-1], s["count"]))
        check(s["sum"] is not None, "%s %s: no _sum" % (what, key))


def value(fams, name, **labels):
    fam = fams.get(name) or fams.get(re.sub(r"_(bucket|sum|count)$", "", name))
    check(fam is not None, "no family %s" % name)
    for n, lab, v in fam["samples"]:
        if n == name and all(lab.get(k) == x for k, x in labels.items()):
            return v
    raise mvtest.TestFailure("no sample %s%s" % (name, labels))


TLS_AGENTS = set()  # agents whose listener has metrics.tls (scraped with a viewer's certificate)


def scrape(a):
    creds = a.c.client_creds("viewer") if a.name in TLS_AGENTS else None
    status, ctype, body = a.scrape(creds=creds)
    check(status == 200, "%s: GET /metrics answered %d" % (a.name, status))
    check(ctype.startswith("text/plain") and "version=0.0.4" in ctype,
          "%s: content type %r" % (a.name, ctype))
    return body, parse(body, a.name)


def raw_request(port, data, timeout=5):
    """Sends bytes, returns what comes back until the server closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def status_code(resp):
    m = re.match(rb"HTTP/1\.[01] (\d{3})", resp)
    return int(m.group(1)) if m else None


def check_against_cli(a, fams):
    members = a.members()
    for st in ("alive", "suspect", "dead", "left"):
        want = sum(1 for m in members.values() if m["state"] == st)
        got = value(fams, "meshvisor_members", state=st)
        check(got == want, "%s: meshvisor_members{state=%s} %s, members --json %d" %
              (a.name, st, got, want))
    ha = a.ha()
    check(value(fams, "meshvisor_quorate") == (1 if ha["quorate"] else 0),
          "%s: quorate %s vs ha %s" % (a.name, value(fams, "meshvisor_quorate"), ha["quorate"]))
    for metric, key in (("meshvisor_quorum_voters", "voters"),
                        ("meshvisor_quorum_majority", "majority"),
                        ("meshvisor_ha_vms", "ha_vms")):
        check(value(fams, metric) == ha.get(key, 0), "%s: %s %s vs ha %s %s" %
              (a.name, metric, value(fams, metric), key, ha.get(key)))
    check(value(fams, "meshvisor_ha_vms_owed") == len(ha.get("owed", [])),
          "%s: owed %s vs ha %s" % (a.name, value(fams, "meshvisor_ha_vms_owed"), ha.get("owed")))
    return members, ha


def scrape_agreeing(a, timeout=10):
    """A scrape that agrees with the CLI asked right after it. The two are
    read at different moments, so while the cluster still changes (a
    failover's last gossip) they may differ: read both again until they
    agree, and fail with the last difference if they never do."""
    deadline = time.monotonic() + timeout
    while True:
        body, fams = scrape(a)
        try:
            check_against_cli(a, fams)
            return body, fams
        except mvtest.TestFailure:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def main(t):
    files = {}
    for name in ("n1", "n2", "n3"):
        doms = []
        if name == "n2":
            doms = [dict(name=n, uuid=u, vcpus=1, memory_kib=512 * MIB) for n, u in UUIDS.items()]
        files[name] = mvtest.write_host_xml(os.path.join(t.tmp, "%s.xml" % name), 4, 8 * GIB,
                                            doms)
    c = t.cluster(3, agent_extra={"failover": FAILOVER}, metrics=True)
    extras = {n: {"libvirt_uri": "test://" + files[n], "migration": {"lease_ms": LEASE_MS}}
              for n in files}
    # n2's libvirt cannot be reached to fence it: the survivors wait the fence out
    extras["n2"]["migration"]["libvirt_uri"] = DEAD_URI
    # n3's listener speaks TLS with client certificates of the cluster CA
    extras["n3"]["metrics"] = {"bind": "127.0.0.1", "port": c["n3"].metrics_port, "tls": True}
    TLS_AGENTS.add("n3")
    c.start_each(extras)
    c.wait_converged(timeout=30)
    c.wait_states(timeout=30)
    n1, n2, n3 = c["n1"], c["n2"], c["n3"]
    for vm in HA_VMS:
        r = n1.cli("vm", "set-ha", vm, "on")
        check(r.returncode == 0, "set-ha %s: %s" % (vm, r.stderr))
    mvtest.wait_until(lambda: all(a.ha().get("ha_vms") == 2 and a.ha().get("quorate")
                                  for a in (n1, n2, n3)) or None,
                      20, "every agent's ha to count 2 HA VMs, quorate")

    # 1. every agent: the format, and the values the CLI reports
    for a in (n1, n2, n3):
        body, fams = scrape_agreeing(a)
        check(value(fams, "meshvisor_quorum_voters_acknowledging") >= 2,
              "%s: acknowledging voters %s" % (a.name,
                                               value(fams, "meshvisor_quorum_voters_acknowledging")))
        # members --json and ha --json were just asked: counted by op and code
        check(value(fams, "meshvisor_rpc_requests_total", op="members", code="ok") >= 1,
              "%s: members requests not counted" % a.name)
        check(value(fams, "meshvisor_build_info") == 1, "build_info")
        log("%s: %d families, %d bytes" % (a.name, len(fams), len(body)))
    # deploy/grafana-dashboard.json asks only for metrics that exist
    dash = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy",
                        "grafana-dashboard.json")
    with open(dash) as f:
        wanted = set(re.findall(r"meshvisor_[a-z0-9_]+", json.dumps(json.load(f))))
    unknown = sorted(n for n in wanted
                     if n not in fams and re.sub(r"_(bucket|sum|count)$", "", n) not in fams)
    check(not unknown, "the Grafana dashboard asks for metrics nobody serves: %s" % unknown)
    # a viewer may not change a VM: refused, and counted with its code
    r = n1.cli("vm", "set-ha", "ha-a", "off", role="viewer")
    check(r.returncode != 0 and "permission denied" in r.stderr, "viewer set-ha: %r" % r.stderr)
    # the periodic inventory ran on the general lane
    _, fams = scrape(n1)
    check(value(fams, "meshvisor_rpc_requests_total", op="vm set-ha", code="permission") == 1,
          "n1: the viewer's refused set-ha not counted as permission")
    check(value(fams, "meshvisor_rpc_requests_total", op="ha", code="deferred") >= 1,
          "n1: ha requests (answered through a stream) not counted")
    check(value(fams, "meshvisor_hv_call_duration_seconds_count", lane="general") >= 1,
          "n1: no hypervisor job timed on the general lane")
    check(value(fams, "meshvisor_libvirt_up") == 1, "n1: libvirt not up")

    # n2 moves its plain VM to n3 (offline: the test driver); once the
    # agents' lease has passed it is taken
    def migrate():
        r = n1.cli("migrate", "plain", "--to", "n3", "--json", timeout=30)
        return r if r.returncode == 0 else None
    mvtest.wait_until(migrate, 15, "migrate plain --to n3 to be taken", 0.5)
    _, fams = scrape(n2)
    moves = n2.cli_json("migrations")["migrations"]
    for outcome, ok in (("ok", True), ("failed", False)):
        want = sum(1 for m in moves if m["done"] and m["ok"] == ok)
        got = value(fams, "meshvisor_migrations_total", outcome=outcome)
        check(got == want, "n2: migrations %s %s vs migrations --json %d" % (outcome, got, want))
    check(value(fams, "meshvisor_migrations_total", outcome="ok") == 1 and
          value(fams, "meshvisor_migration_duration_seconds_count") == 1,
          "n2: the move of plain not counted once")

    # n3 (metrics.tls): plain HTTP gets no HTTP answer, a client without a
    # certificate no scrape; both counted; a viewer's certificate scraped above
    resp = raw_request(n3.metrics_port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    check(status_code(resp) is None, "n3 answered plain HTTP on its TLS port: %r" % resp[:80])
    ca = c.client_creds("viewer")[0]
    try:
        got = n3.scrape(creds=(ca, None, None))
    except (OSError, mvtest.http_client_errors()) as e:
        got = e
    check(isinstance(got, Exception), "n3 served a client without a certificate: %r" % (got,))
    log("n3 (TLS): plain HTTP got %r; no certificate: %s" % (resp[:16], got))
    _, fams = scrape(n3)
    check(value(fams, "meshvisor_metrics_refused_total", reason="tls") >= 2,
          "n3: refused TLS clients not counted")

    # 2. hostile clients of the listener
    port = n1.metrics_port
    resp = raw_request(port, b"GARBAGE\r\n\r\n")
    check(resp == b"" or 400 <= (status_code(resp) or 0) < 500,
          "malformed request answered %r" % resp[:80])
    resp = raw_request(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536 +
                       b"\r\n\r\n")
    check(resp == b"" or 400 <= (status_code(resp) or 0) < 500,
          "64 KiB header answered %r" % resp[:80])
    log("malformed: %r; 64 KiB header: %r" % (raw_request(port, b"GARBAGE\r\n\r\n")[:40],
                                              resp[:40]))
    status, _, _ = n1.scrape(method="POST")
    check(status == 405, "POST /metrics answered %d" % status)
    status, _, _ = n1.scrape(path="/secrets")
    check(status == 404, "GET /secrets answered %d" % status)

    held = []
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        held.append(s)
    # the server closes what is over the per-address limit at once
    closed = 0
    for s in held:
        s.settimeout(0.2)
        try:
            if s.recv(1) == b"":
                closed += 1
        except socket.timeout:
            pass
        except ConnectionResetError:
            closed += 1
    log("40 idle connections from one address: %d closed by the agent at once" % closed)
    check(closed >= 40 - 8, "only %d of 40 idle connections refused (limit 8 per address)"
          % closed)
    t0 = time.monotonic()
    st = n1.status()
    took = time.monotonic() - t0
    check(st["members_alive"] == 3 and st["members_suspect"] == 0,
          "while the listener is full: %s" % {k: st[k] for k in ("members_alive",
                                                                 "members_suspect")})
    log("status while the metrics listener is full: %.0f ms" % (took * 1000))
    for s in held:
        s.close()

    def scrape_again():
        # the agent learns of the closes on its next turn: until then a
        # new connection is still over the per-address limit and refused
        try:
            return scrape(n1)
        except ConnectionError as e:
            log("scrape right after the closes: %s" % e)
            return None
    body, fams = mvtest.wait_until(scrape_again, 10, "a scrape once the idle ones went")
    check(value(fams, "meshvisor_metrics_scrapes_total") >= 3, "scrapes not counted")

    # n3's TLS front: 40 connections that never say hello. 32 sessions at
    # most (the rest closed at once); the 32 are closed when their 10 s
    # handshake deadline passes, and n3 serves a scrape again
    t0 = time.monotonic()
    silent = [socket.create_connection(("127.0.0.1", n3.metrics_port), timeout=5)
              for _ in range(40)]

    def closed_by_agent(s, wait):
        s.settimeout(wait)
        try:
            return s.recv(1) == b""
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True
    at_once = sum(1 for s in silent if closed_by_agent(s, 0.2))
    check(at_once == 40 - 32, "n3 closed %d of 40 silent connections at once, want 8" % at_once)
    left = [s for s in silent if not closed_by_agent(s, 0.01)]

    def all_closed():
        return all(closed_by_agent(s, 0.1) for s in left) or None
    mvtest.wait_until(all_closed, 25, "n3 to close the silent TLS connections", 0.5)
    took = time.monotonic() - t0
    # not before the 10 s deadline (a slow connect only moves it later)
    check(took >= 9.5, "n3 closed silent handshakes after %.1f s, before the 10 s deadline"
          % took)
    log("n3's TLS front: %d of 40 silent connections closed at once, the other %d after "
        "%.1f s (handshake deadline)" % (at_once, len(left), took))
    for s in silent:
        s.close()
    body, fams = mvtest.wait_until(lambda: scrape(n3), 10, "n3 to serve a scrape again")
    check(value(fams, "meshvisor_metrics_refused_total", reason="tls") >= 2 + 40,
          "n3: the silent connections not counted as refused")

    # 3. kill -9 n2: its HA VMs restart on n1 or n3
    n2.signal(signal.SIGKILL)
    n2.wait_exit(5)

    def restarted():
        w = n1.vm_copies()
        return all(len([h for h, st, _ in w.get(vm, []) if st == "running" and h != "n2"]) == 1
                   for vm in HA_VMS) or None
    mvtest.wait_until(restarted, 40, "n2's HA VMs running on n1 or n3", 0.2)

    def settled(a):
        fos = [f for f in a.cli_json("failovers")["failovers"] if f["dead"] == "n2"]
        # done, and the fence confirmed here: a node with nothing to start
        # may see every VM run before its own timed fence is due (done
        # first, fenced F + margin after it learned the plan)
        return fos if fos and all(f["phase"] == "done" and f["fenced_unix_ms"] > 0
                                  for f in fos) else None
    for a in (n1, n3):
        fos = mvtest.wait_until(lambda: settled(a), 20, "%s's failover of n2 done" % a.name)
        body, fams = scrape_agreeing(a)
        check(value(fams, "meshvisor_members", state="dead") == 1 and
              value(fams, "meshvisor_members", state="alive") == 2,
              "%s: members after the kill" % a.name)
        check(value(fams, "meshvisor_ha_vms_owed") == 0, "%s: HA VMs still owed" % a.name)
        check(value(fams, "meshvisor_member_deaths_total") >= 1, "%s: no death" % a.name)
        check(value(fams, "meshvisor_member_suspicions_total") >= 1, "%s: no suspicion" % a.name)
        allf = a.cli_json("failovers")["failovers"]
        for ph in ("detected", "chosen", "fenced", "done"):
            want = sum(1 for f in allf if f["phase"] == ph)
            got = value(fams, "meshvisor_failover_instances", phase=ph)
            check(got == want, "%s: failover instances %s: %s vs failovers --json %d" %
                  (a.name, ph, got, want))
        h = "meshvisor_failover_phase_duration_seconds"
        n_cf = value(fams, h + "_count", phase="chosen_to_fenced")
        check(n_cf == len(fos), "%s: chosen_to_fenced observed %s times, %d failovers" %
              (a.name, n_cf, len(fos)))
        s_cf = value(fams, h + "_sum", phase="chosen_to_fenced")
        want = sum(f.get("chosen_to_fenced_ms", 0) for f in fos) / 1000.0
        check(abs(s_cf - want) < 0.002, "%s: chosen_to_fenced %.3f s vs failovers %.3f s" %
              (a.name, s_cf, want))
        # the fence was waited out: at least fence_after_ms after the plan
        check(s_cf >= FAILOVER["fence_after_ms"] / 1000.0, "%s: fence after %.3f s" %
              (a.name, s_cf))
        # scraping again observes nothing twice
        _, again = scrape(a)
        check(value(again, h + "_count", phase="chosen_to_fenced") == n_cf,
              "%s: a second scrape observed the phases again" % a.name)
        if a is n1:
            keep = re.compile(r"^(# (HELP|TYPE) )?meshvisor_(members|member_|quorate|quorum_|"
                              r"ha_vms|failover_|hv_call_duration_seconds( |_sum|_count)|"
                              r"loop_lag|tls_handshakes|datagrams_total|peer_connections|"
                              r"rpc_requests_total|migrations_total)")
            trimmed = [l for l in body.splitlines() if keep.match(l) and
                       ('le="' not in l or 'le="+Inf"' in l or 'le="5"' in l or
                        'le="10"' in l)]
            log("n1's scrape after n2's failover (trimmed):\n" + "\n".join(trimmed))
            took = [int(x) for x in re.findall(r"metrics scrape bytes=\d+ took_us=(\d+)",
                                               n1.log_text())]
            check(took, "n1 logged no scrape")
            took.sort()
            log("n1: %d scrapes rendered in %d us median, %d us max (loop time)" %
                (len(took), took[len(took) // 2], took[-1]))

    # 4. a metrics port already taken is a startup error that names it
    n4 = c.add("n4")
    n4.start(extra={"metrics": {"bind": "127.0.0.1", "port": n1.metrics_port}}, wait=False)
    rc = n4.wait_exit(10)
    check(rc != 0 and mvtest.grep(n4.log_text(), r"cannot listen for metrics on 127\.0\.0\.1:%d"
                                  % n1.metrics_port),
          "n4 on n1's metrics port: exit %s, log %r" % (rc, n4.log_tail(3)))
    log("n4 on n1's metrics port: exit %d, %s" % (rc, n4.log_tail(1).strip()))

    # 5. a graceful stop closes the listener and its handles like the rest
    n3.signal(signal.SIGTERM)
    rc = n3.wait_exit(15)
    text = n3.log_text()
    check(rc == 0 and "left open" not in text and mvtest.grep(text, r"agent stopped name=n3"),
          "n3 stopped with exit %s: %r" % (rc, n3.log_tail(5)))


if __name__ == "__main__":
    mvtest.run(main)
