#!/usr/bin/env python3
"""Automatic failover between real agents on libvirt's test driver.

Each agent's hypervisor is its own in-process test driver (test:///PATH),
so `kill -9` of an agent is the death of a whole host: its VMs die with it
and its libvirt cannot be reached to fence it (the survivors wait out the
fence deadline instead). Four hosts; n2 runs three HA VMs of different
priorities and one that is not HA.

1. Before: `ha` says every HA VM survives the loss of any one host; every
   HA VM's definition is held by replicas on other hosts.
2. kill -9 n2: its three HA VMs run again, each on exactly one other host,
   with owner epoch + 1, within a bound; the non-HA VM is not restarted
   anywhere. `failovers` (on every survivor) shows one failover of n2 whose
   fence was waited out (no libvirt to confirm it) no earlier than
   fence_after_ms after the plan, restarts in priority order. The event
   stream shows detection, plan, fence and each restart.
3. n2 comes back (same host file: its VMs are defined again, running, with
   the old epoch): it destroys and undefines its stale copies; every VM
   runs on exactly one host in every node's view.
4. force-leave: refused for an alive host, for an unknown one and without
   confirmation; accepted for a dead host (the voting set shrinks).
5. The failover journal (data_dir/failover-journal): the survivors wrote
   "failed-over n2 INC" (step 2), except n4, whose journal cannot be
   written (it logs an error, and the failover goes on); n3 also wrote
   "failed-over n4 INC"; n3 killed
   and restarted reads both back and writes the same file; with a line
   made invalid it refuses to start, names the line and the reason, and
   leaves the file alone."""
import json
import os
import re
import signal
import time

import mvtest
import mvwire
from mvtest import check, log

GIB = 1024 * 1024
MIB = 1024
FENCE_AFTER_MS = 3000
FENCE_MARGIN_MS = 1000
DEAD_URI = "qemu+tcp://127.0.0.1:1/system"
FAILOVER = {"heartbeat_ms": 250, "fence_after_ms": FENCE_AFTER_MS,
            "fence_margin_ms": FENCE_MARGIN_MS}

HA_VMS = [("ha-db", 900), ("ha-web", 500), ("ha-cache", 100)]
UUIDS = {
    "ha-db": "6d657368-0005-0002-0000-000000000001",
    "ha-web": "6d657368-0005-0002-0000-000000000002",
    "ha-cache": "6d657368-0005-0002-0000-000000000003",
    "plain": "6d657368-0005-0002-0000-000000000004",
}



def host_files(t):
    files = {}
    for name in ("n1", "n2", "n3", "n4"):
        doms = []
        if name == "n2":
            doms = [dict(name=n, uuid=UUIDS[n], vcpus=1, memory_kib=512 * MIB)
                    for n in ("ha-db", "ha-web", "ha-cache", "plain")]
        files[name] = mvtest.write_host_xml(os.path.join(t.tmp, "%s.xml" % name), 4, 8 * GIB,
                                            doms)
    return files







def main(t):
    files = host_files(t)
    c = t.cluster(4, agent_extra={"failover": FAILOVER})
    extras = {n: {"libvirt_uri": "test://" + files[n]} for n in files}
    # n2 publishes a remote libvirt URI nobody can reach: its fence URI
    # defaults to it, the survivors' remote fence fails fast, and they fall
    # back to waiting out the fence deadline
    extras["n2"]["migration"] = {"libvirt_uri": DEAD_URI}
    # n4 cannot write its journal (the temporary file's name is taken by a
    # directory): it must say so and fail over all the same
    os.makedirs(os.path.join(c["n4"].dir, "data", "failover-journal.tmp"))
    c.start_each(extras)
    c.wait_converged(timeout=30)
    c.wait_states(timeout=30)
    n1, n2 = c["n1"], c["n2"]

    for vm, prio in HA_VMS:
        r = n1.cli("vm", "set-ha", vm, "on", "--priority", str(prio))
        check(r.returncode == 0, "set-ha %s: %s" % (vm, r.stderr))
    # anti-affinity group: a bad name is refused and changes nothing; a good one shows
    r = n1.cli("vm", "set-ha", "ha-db", "on", "--group", "no spaces!")
    check(r.returncode == 1 and "group" in r.stderr, "bad group accepted: %r" % r.stderr)
    r = n1.cli("vm", "set-ha", "ha-db", "on", "--group", "db")
    check(r.returncode == 0, "set-ha --group: %s" % r.stderr)
    r = n1.cli("vm", "set-ha", "ha-web", "on", "--group", "db")
    check(r.returncode == 0, "set-ha --group: %s" % r.stderr)
    r = n1.cli("vms", "--group", "db")
    check(r.returncode == 2, "--group outside set-ha should be a usage error: %r" % r.stderr)

    def grouped():
        v = n1.vms()
        ok = all(v[n]["ha_group"] == "db" and v[n]["ha"] and v[n]["priority"] == p
                 for n, p in (("ha-db", 900), ("ha-web", 500)))
        return ok or None
    mvtest.wait_until(grouped, 10, "ha-db and ha-web in group db, priorities kept")

    # 1. ha: every HA VM fits elsewhere; replicas reach other hosts
    def ha_ok():
        doc = n1.ha()
        return doc if doc.get("ok") and doc.get("ha_vms") == 3 else None
    doc = mvtest.wait_until(ha_ok, 15, "`ha` to report 3 HA VMs that survive any loss")
    log("ha: %s" % json.dumps(doc)[:400])
    check(doc["voters"] == 4 and doc["majority"] == 3, "voters/majority: %s" % doc)
    nodes = n1.nodes()
    check(nodes["n2"].get("fence_uri") == DEAD_URI and nodes["n1"].get("fence_uri") == "",
          "fence URIs: n2 %r, n1 %r" % (nodes["n2"].get("fence_uri"), nodes["n1"].get("fence_uri")))
    check(all(nodes[n].get("quorate") for n in nodes), "not every node quorate: %s" %
          {n: nodes[n].get("quorate") for n in nodes})

    def replicas():
        held = sum(a.ha().get("replicas_held", 0) for a in (c["n1"], c["n3"], c["n4"]))
        return held if held >= 9 else None
    held = mvtest.wait_until(replicas, 20, "9 replicas (3 HA VMs x 3 holders) on n1, n3, n4")
    log("replicas held on the survivors-to-be: %d" % held)
    check(n2.ha().get("replicas_held", 0) == 0, "n2 holds replicas of its own VMs")

    # replicas are between agents only: a client (even an operator) is refused
    ca, cert, key = c.client_creds("operator")
    s = mvtest.tls_client("127.0.0.1", n1.rpc_port, ca, cert, key)
    for i, op in enumerate(("replica_put", "replica_get")):
        r = mvtest.rpc_call(s, 100 + i, op)
        check(r["code"] == mvwire.RPC_ERR_INVALID and "between agents only" in r["error"],
              "%s from a client: %s" % (op, r))
    s.close()

    # 2. kill -9 n2: its HA VMs restart elsewhere, once each
    t_kill = time.time()
    n2.signal(signal.SIGKILL)
    n2.wait_exit(5)
    survivors = [c["n1"], c["n3"], c["n4"]]

    def all_restarted():
        for a in survivors:
            w = a.vm_copies()
            for vm, _ in HA_VMS:
                run = [h for h, st, _ in w.get(vm, []) if st == "running" and h != "n2"]
                if len(run) != 1:
                    return None
        return True
    mvtest.wait_until(all_restarted, 40, "the 3 HA VMs running on exactly one survivor, "
                      "in every survivor's view", 0.2)
    took = time.time() - t_kill
    log("kill -9 -> all HA VMs running elsewhere in %.2fs" % took)
    check(took >= FENCE_AFTER_MS / 1000.0,
          "restarted %.2fs after the kill, before the fence deadline %.1fs" %
          (took, FENCE_AFTER_MS / 1000.0))
    w = n1.vm_copies()
    for vm, _ in HA_VMS:
        copies = [x for x in w[vm] if x[0] != "n2"]
        check(len(copies) == 1 and copies[0][2] == 1,
              "%s: expected one copy with epoch 1, got %s" % (vm, w[vm]))
    check(not [x for x in w.get("plain", []) if x[0] != "n2"],
          "the non-HA VM was restarted: %s" % w.get("plain"))
    db_host = [x[0] for x in w["ha-db"] if x[0] != "n2"][0]
    web_host = [x[0] for x in w["ha-web"] if x[0] != "n2"][0]
    check(db_host != web_host, "ha-db and ha-web (anti-affinity group db) both on %s" % db_host)

    for a in survivors:
        fos = [f for f in a.cli_json("failovers")["failovers"] if f["dead"] == "n2"]
        check(len(fos) >= 1, "%s lists no failover of n2" % a.name)
        f = fos[0]
        log("%s: failover %s" % (a.name, json.dumps(f)[:600]))
        check(f["round"] == 0 and f["phase"] == "done", "%s: failover not done: %s" %
              (a.name, f))
        # nothing confirmed the fence: it is waited out, F + margin from the
        # last acknowledgement n2 can have had (at the latest, the kill)
        fenced_after_kill = f.get("fenced_unix_ms", 0) - t_kill * 1000.0
        check(fenced_after_kill >= FENCE_AFTER_MS,
              "%s: fenced %.0f ms after the kill, before fence_after_ms %d" %
              (a.name, fenced_after_kill, FENCE_AFTER_MS))
        check("wait" in f.get("fence_how", ""), "%s: fence_how %r" % (a.name, f.get("fence_how")))
        vms = {v["vm"]: v for v in f["vms"]}
        check(set(vms) == set(n for n, _ in HA_VMS), "%s: plan VMs %s" % (a.name, sorted(vms)))
        for v in vms.values():
            check(v["done"] and v["ok"] and v["target"] not in ("n2", ""),
                  "%s: %s" % (a.name, v))
            check(v["new_epoch"] == 1, "%s: epoch %s" % (a.name, v))

    evs = n1.events()
    kinds = [e["kind"] for e in evs]
    log("events on n1: %s" % kinds)
    for k in ("member-dead", "failover-detected", "plan-chosen", "fence-confirmed",
              "vm-restarted"):
        check(k in kinds, "no %s event on n1: %s" % (k, kinds))
    lost = [e for e in evs if e["kind"] == "vms-lost"]
    check(len(lost) == 1 and lost[0]["node"] == "n2" and "plain" in lost[0]["text"] and
          "ha-" not in lost[0]["text"], "the non-HA VM is not reported lost: %s" % lost)
    # the coordinator tried n2's libvirt first, and that failed
    coord = c[n1.cli_json("failovers")["failovers"][0]["coordinator"]]
    ckinds = [e["kind"] for e in coord.events()]
    check("fence-remote-failed" in ckinds, "the coordinator %s did not try (and fail) to "
          "fence n2 through %s: %s" % (coord.name, DEAD_URI, ckinds))
    restarted = [e for e in evs if e["kind"] == "vm-restarted" and e["node"] != ""]
    check(sorted(e["vm"] for e in restarted) == sorted(n for n, _ in HA_VMS),
          "n1's stream should show every restart, wherever it ran: %s" % restarted)
    # highest priority first, per target; the plan's order overall
    plan_order = [n for n, _ in HA_VMS]
    seen = [e["vm"] for e in restarted]
    by_target = {}
    for e in restarted:
        by_target.setdefault(e["node"], []).append(plan_order.index(e["vm"]))
    for tgt, idx in by_target.items():
        check(idx == sorted(idx), "restarts on %s out of priority order: %s" % (tgt, seen))

    # 2b. every survivor journalled (fsync before it voted) that it failed n2 over
    for a in (c["n1"], c["n3"]):
        jt = journal_text(a)
        check(re.search(r"^failed-over n2 [1-9][0-9]*$", jt, re.M),
              "%s's failover journal does not name n2: %r" % (a.name, jt[-300:]))
    check(not os.path.exists(journal_path(c["n4"])) and
          re.search(r"ERROR failover cannot write the failover journal .*Is a directory",
                    c["n4"].log_text()),
          "n4 should have logged that it cannot write its journal")

    # 3. n2 returns with stale copies (epoch 0): it removes them
    n2.start(join=[n1.peer_addr], extra={"libvirt_uri": "test://" + files["n2"]})

    def one_copy_each():
        for a in c.running():
            w = a.vm_copies()
            for vm, _ in HA_VMS:
                if len(w.get(vm, [])) != 1:
                    return None
            if len(w.get("plain", [])) != 1:
                return None
        return True
    mvtest.wait_until(one_copy_each, 30, "every VM defined on exactly one host in every view "
                      "after n2 came back", 0.25)
    w = n2.vm_copies()
    for vm, _ in HA_VMS:
        check(w[vm][0][0] != "n2" and w[vm][0][1] == "running", "%s: %s" % (vm, w[vm]))
    check(w["plain"][0][0] == "n2", "plain: %s" % w["plain"])
    text = n2.log_text()
    check("stale copy removed" in text or "fence order" in text,
          "n2 did not report removing its stale copies")

    # 4. force-leave
    r = n1.cli("force-leave", "n3", "--yes")
    check(r.returncode != 0 and "not dead" in r.stderr, "force-leave of an alive host: %r" %
          r.stderr)
    r = n1.cli("force-leave", "nosuch", "--yes")
    check(r.returncode != 0 and "nosuch" in r.stderr, "force-leave of an unknown host: %r" %
          r.stderr)
    c["n4"].signal(signal.SIGKILL)
    c["n4"].wait_exit(5)
    c.wait_state("n4", ["dead"], 20)
    r = n1.cli("force-leave", "n4")  # no tty, no --yes
    check(r.returncode != 0, "force-leave without confirmation succeeded")
    r = n1.cli("force-leave", "n4", "--yes", role="viewer")
    check(r.returncode != 0 and "permission" in r.stderr.lower(),
          "viewer force-leave: %r" % r.stderr)
    before = n1.ha()["voters"]
    r = n1.cli("force-leave", "n4", "--yes")
    check(r.returncode == 0, "force-leave n4: %s" % r.stderr)

    def shrunk():
        return all(a.ha()["voters"] == before - 1 for a in c.running())
    mvtest.wait_until(shrunk, 10, "the voting set to shrink to %d on every node" % (before - 1))

    # 5. the journal survives a restart: n3 (kill -9) reads it back
    n3 = c["n3"]
    jt = journal_text(n3)
    check(re.search(r"^failed-over n4 [1-9][0-9]*$", jt, re.M),
          "n3's journal does not name n4 (failed over before the force-leave): %r" % jt[-300:])
    n3.signal(signal.SIGKILL)
    n3.wait_exit(5)
    n3.start(join=[n1.peer_addr], extra={"libvirt_uri": "test://" + files["n3"]})
    m = mvtest.wait_until(lambda: re.search(r"failover journal restored path=\S+ entries=(\d+)",
                                             n3.log_text()), 10, "n3 to restore its journal")
    check(int(m.group(1)) == 2, "n3 restored %s entries, want 2 (n2, n4)" % m.group(1))
    check(journal_text(n3) == jt, "n3 rewrote its journal differently after the restart")
    # an invalid journal stops the agent with the reason, and is left as it was
    n3.signal(signal.SIGKILL)
    n3.wait_exit(5)
    bad = jt + "failed-over n5 007\n"
    with open(journal_path(n3), "w") as f:
        f.write(bad)
    n3.start(join=[n1.peer_addr], extra={"libvirt_uri": "test://" + files["n3"]}, wait=False)
    rc = n3.wait_exit(10)
    out = n3.log_text()
    check(rc != 0 and "failover journal" in out and "is invalid" in out and
          "without leading zeros" in out and "line %d" % (bad.count("\n")) in out,
          "n3 with an invalid journal: exit %s, log %r" % (rc, out[-600:]))
    check(journal_text(n3) == bad, "the invalid journal was changed")


def journal_path(a):
    return os.path.join(a.dir, "data", "failover-journal")


def journal_text(a):
    try:
        with open(journal_path(a)) as f:
            return f.read()
    except OSError as e:
        raise mvtest.TestFailure("%s has no failover journal: %s" % (a.name, e))


if __name__ == "__main__":
    mvtest.run(main, default_timeout=170)
