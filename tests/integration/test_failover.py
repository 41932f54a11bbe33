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
5. The failover journal (data_dir/failover-journal, format 2): the
   survivors wrote "failed-over n2 INC" and the plan they accepted
   ("accepted n2 INC 0 ... 3" and its three "entry" lines) (step 2),
   except n4, whose journal cannot be written (it logs an error, and the
   failover goes on); n3 also wrote "failed-over n4 INC" (n4 ran ha-cache
   then); n3 killed and restarted reads every record back and writes the
   same file; with a line made invalid it refuses to start, names the line
   and the reason, and leaves the file alone.
`ha` along the way: exit 0 before; during the failover (before the
restarts) exit 1, listing the three HA VMs with their host, why ("its host
is dead") and what the cluster is doing; exit 0 again once they run. Events
vm-down / vm-recovered; `failovers` gives the cause ("declared dead ...").

Then a second cluster, m1 m2 m3 (fence_after_ms 6000), m3's HA VMs on a
private libvirtd (test driver reading m3's host file: VMs outlive the
agent, as under a real hypervisor), m3 with a fake watchdog device
(fakewd.c, as in test_failover_isolation.py):
6. The quorate stamp. m1 and m2 are frozen (SIGSTOP): m3 loses quorum. Two
   seconds after its quorum-lost, before its own self-fence, m3's agent is
   killed -9 and restarted at once; its HA VMs still run. The restarted
   agent (not quorate: `ha` on it says so, its view may be stale) resumes
   the previous agent's self-fence clock and destroys its HA VMs no later
   than fence_after_ms after the quorum loss, not fence_after_ms after the
   restart. m1 and m2 resume: `ha` on m1 exits 1 and lists the fenced VMs
   until the cluster runs them again, then exits 0.
7. A self-fence whose destroys fail. m1 and m2 are frozen again; once m3
   has lost quorum libvirtd is killed -9: the self-fence cannot destroy
   anything. m3 says the fence is incomplete, keeps its watchdog armed,
   no longer petted and hurried to a 1 s timeout (a real one would reset
   the host within a second: no magic close) and retries;
   libvirtd comes back (its VMs running again from the host file) and the
   retry destroys them: fence-completed, and only then the watchdog is
   disarmed."""
import json
import os
import re
import shutil
import signal
import subprocess
import time

import mvtest
import mvwire
from mvtest import check, log
from test_failover_isolation import fakewd_env, wd_ops, wd_replay

GIB = 1024 * 1024
MIB = 1024
FENCE_AFTER_MS = 3000
FENCE_MARGIN_MS = 1500   # at least the quorate window (min(3000, F / 2) = 1500 ms)
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







def proc_cpu_seconds(pid):
    """User + system CPU seconds of process pid so far (/proc/PID/stat)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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

    # replicas and a move's last step are between agents only: a client on
    # the RPC port is refused, an operator's and even a node certificate's
    for k, role in enumerate(("operator", "node")):
        ca, cert, key = c.client_creds(role)
        s = mvtest.tls_client("127.0.0.1", n1.rpc_port, ca, cert, key)
        for i, op in enumerate(("replica_put", "replica_get", "vm_receive")):
            r = mvtest.rpc_call(s, 100 + 10 * k + i, op)
            check(r["code"] == mvwire.RPC_ERR_INVALID and "between agents only" in r["error"],
                  "%s from a client (%s certificate): %s" % (op, role, r))
        s.close()

    r = n1.cli("ha")
    check(r.returncode == 0 and "every HA VM that should run is running (3 HA VMs)" in r.stdout,
          "`ha` before the failover: exit %d %r" % (r.returncode, r.stdout))

    # 2. kill -9 n2: its HA VMs restart elsewhere, once each
    t_kill = time.time()
    n2.signal(signal.SIGKILL)
    n2.wait_exit(5)
    survivors = [c["n1"], c["n3"], c["n4"]]

    # while the survivors wait out n2's fence, `ha` exits 1 and lists the
    # three HA VMs (host, since when, why, what the cluster is doing)
    def ha_lists_down():
        rc, doc = ha_status(n1)
        owed = {v["name"]: v for v in doc.get("owed", [])}
        if rc == 1 and set(owed) == set(n for n, _ in HA_VMS):
            return doc
        return None
    doc = mvtest.wait_until(ha_lists_down, 10, "`ha` on n1 to exit 1 listing n2's 3 HA VMs "
                            "as down", 0.1)
    log("ha during the failover: %s" % json.dumps(doc["owed"])[:600])
    check(doc["ok"] and doc["quorate"] and not doc["all_running"] and
          doc["reporter"] == "n1", "ha during the failover: %s" % doc)
    for v in doc["owed"]:
        check(v["host"] == "n2" and v["why"] == "its host is dead" and v["doing"] and
              v["uuid"] == UUIDS[v["name"]] and v["epoch"] == 0 and
              v["since_unix_ms"] >= t_kill * 1000 - 1000 and v["down_ms"] >= 0,
              "ha lists %s as %s" % (v["name"], v))
    r = n1.cli("ha")
    check(r.returncode == 1 and "should run and are NOT running" in r.stdout and
          all(n in r.stdout for n, _ in HA_VMS) and "its host is dead" in r.stdout and
          "WHAT THE CLUSTER IS DOING" in r.stdout,
          "`ha` (text) during the failover: exit %d %r" % (r.returncode, r.stdout))

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

    # every HA VM runs again: `ha` lists none and exits 0 on every survivor
    last = {}

    def ha_all_running():
        for a in survivors:
            rc, doc = ha_status(a)
            last[a.name] = (rc, doc)
            if rc != 0 or doc.get("owed"):
                return None
        return True
    try:
        mvtest.wait_until(ha_all_running, 10, "`ha` to exit 0 with no HA VM down on every "
                          "survivor", 0.2)
    except mvtest.TestFailure:
        log("last `ha` answers: %s" % json.dumps(last)[:2000])
        raise

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
        check(f.get("cause", "").startswith("declared dead"), "%s: cause %r" %
              (a.name, f.get("cause")))
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
              "vm-restarted", "vm-down", "vm-recovered"):
        check(k in kinds, "no %s event on n1: %s" % (k, kinds))
    # each HA VM went down with n2 once and recovered once, on its new host
    for k in ("vm-down", "vm-recovered"):
        got = sorted(e["vm"] for e in evs if e["kind"] == k)
        check(got == sorted(n for n, _ in HA_VMS), "%s events on n1: %s" % (k, got))
    down = [e for e in evs if e["kind"] == "vm-down"]
    check(all(e["node"] == "n2" and "its host is dead" in e["text"] for e in down),
          "vm-down events: %s" % down)
    rec = {e["vm"]: e for e in evs if e["kind"] == "vm-recovered"}
    check(rec["ha-db"]["node"] == db_host and rec["ha-web"]["node"] == web_host,
          "vm-recovered events name the wrong host: %s" % list(rec.values()))
    check(kinds.index("vm-down") < kinds.index("vm-restarted") <
          len(kinds) - 1 - kinds[::-1].index("vm-recovered"),
          "vm-down, vm-restarted, vm-recovered out of order: %s" % kinds)
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

    # 2b. every survivor journalled (fsync before it voted) that it failed n2
    # over, and the plan it accepted (format 2: "accepted DEAD INC ROUND
    # BALLOT PROPOSER COUNT", then COUNT "entry =UUID =NAME =TARGET ..." lines)
    for a in (c["n1"], c["n3"]):
        jt = journal_text(a)
        check(re.search(r"^format 2$", jt, re.M), "%s's journal is not format 2: %r" %
              (a.name, jt[:300]))
        m = re.search(r"^failed-over n2 ([1-9][0-9]*)$", jt, re.M)
        check(m, "%s's failover journal does not name n2: %r" % (a.name, jt[-300:]))
        inc = m.group(1)
        acc = re.search(r"^accepted n2 %s 0 [1-9][0-9]* [A-Za-z0-9._-]+ 3\n((?:entry .*\n){3})"
                        % inc, jt, re.M)
        check(acc, "%s's journal has no accepted plan of 3 VMs for n2 %s: %r" %
              (a.name, inc, jt[-600:]))
        for vm, _ in HA_VMS:
            check(re.search(r"^entry =%s =%s =n[134] " % (UUIDS[vm], vm), acc.group(1), re.M),
                  "%s's journalled plan for n2 lacks %s: %r" % (a.name, vm, acc.group(1)))
    check(not os.path.exists(journal_path(c["n4"])) and
          re.search(r"ERROR failover cannot write the failover journal .*Is a directory",
                    c["n4"].log_text()),
          "n4 should have logged that it cannot write its journal")
    # ... and retries it about once a second, not in a hot loop (the write
    # runs on the hypervisor worker; a failure used to start the next write
    # at once: one core busy for as long as the disk was bad)
    cpu0, t0 = proc_cpu_seconds(c["n4"].proc.pid), time.monotonic()
    time.sleep(3)
    busy = (proc_cpu_seconds(c["n4"].proc.pid) - cpu0) / (time.monotonic() - t0)
    log("n4 with a failing journal: %.1f%% of a core" % (100 * busy))
    check(busy < 0.3, "n4 spins while its journal write fails: %.0f%% of a core" % (100 * busy))

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

    # 5. the journal survives a restart: n3 (kill -9) reads it back. n4 ran
    # ha-cache: its plan (chosen around the force-leave) is journalled too
    n3 = c["n3"]
    mvtest.wait_until(lambda: re.search(r"^failed-over n4 [1-9][0-9]*$", journal_text(n3),
                                        re.M), 20, "n3's journal to name n4 (failed over)", 0.2)
    # the snapshot once the journal is quiet (the consensus around n4 may
    # still record promises: the write is asynchronous, a message waits for
    # it, so the last records land a little after the failed-over line)
    jt = journal_text(n3)
    for _ in range(20):
        time.sleep(0.5)
        now = journal_text(n3)
        if now == jt:
            break
        jt = now
    # what restore counts: every record but the format line and the entry
    # lines of an accepted plan (failed-over, forgotten, promised, accepted...)
    records = [l for l in jt.splitlines() if l.strip() and not l.startswith("#") and
               l.split(" ", 1)[0] not in ("format", "entry")]
    n3.signal(signal.SIGKILL)
    n3.wait_exit(5)
    n3.start(join=[n1.peer_addr], extra={"libvirt_uri": "test://" + files["n3"]})
    m = mvtest.wait_until(lambda: re.search(r"failover journal restored path=\S+ entries=(\d+)",
                                             n3.log_text()), 10, "n3 to restore its journal")
    check(int(m.group(1)) == len(records) and
          sum(1 for l in records if l.startswith("failed-over ")) == 2,
          "n3 restored %s entries, want %d (failed-over n2 and n4, and its promises): %r" %
          (m.group(1), len(records), jt))
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
    for a in c.running():
        a.signal(signal.SIGKILL)
        a.wait_exit(5)

    stamp_and_failed_fence(t)


# ---- 6, 7: the quorate stamp across a restart; a fence that cannot destroy ----

M_FENCE_AFTER_MS = 6000
M_QUORATE_MS = 3000      # min(3000, F / 2): the quorate window
M_FAILOVER = {"heartbeat_ms": 250, "fence_after_ms": M_FENCE_AFTER_MS,
              "fence_margin_ms": M_QUORATE_MS}
M_UUIDS = {"m3-a": "6d657368-0009-0005-0000-000000000001",
           "m3-b": "6d657368-0009-0005-0000-000000000002"}


class Libvirtd:
    """A private libvirtd under dir (the pattern of test_libvirt_reconnect.py,
    which runs its test when imported): its own config, socket and pid
    file, no loadable drivers (only the built-in test and remote ones), and
    a private /run where unshare allows it."""

    def __init__(self, t, d):
        self.dir = d
        self.sock = os.path.join(d, "sock", "libvirt-sock")
        self.conf = os.path.join(d, "libvirtd.conf")
        self.no_drivers = os.path.join(d, "no-drivers")
        self.proc = None
        self.starts = 0
        self.binary = shutil.which("libvirtd") or (
            "/usr/sbin/libvirtd" if os.access("/usr/sbin/libvirtd", os.X_OK) else None)
        check(self.binary, "libvirtd not found (Debian package libvirt-daemon; "
                           "deploy/install-deps.sh installs it)")
        self.unshare = None
        if os.geteuid() == 0 and shutil.which("unshare"):
            r = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                "mount -t tmpfs tmpfs /run"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
            if r.returncode == 0:
                self.unshare = shutil.which("unshare")
        for p in (os.path.dirname(self.sock), self.no_drivers):
            os.makedirs(p, exist_ok=True)
        with open(self.conf, "w") as f:
            f.write('unix_sock_dir = "%s"\n' % os.path.dirname(self.sock))
            f.write('unix_sock_rw_perms = "0700"\nunix_sock_ro_perms = "0700"\n')
            f.write('auth_unix_rw = "none"\nauth_unix_ro = "none"\n')
            f.write('log_outputs = "3:stderr"\n')

    def start(self, timeout=20):
        log_path = os.path.join(self.dir, "libvirtd-%d.log" % self.starts)
        self.starts += 1
        cmd = [self.binary, "--config", self.conf, "--pid-file",
               os.path.join(self.dir, "libvirtd.pid")]
        if self.unshare:
            cmd = [self.unshare, "--mount", "--propagation", "private", "sh", "-c",
                   'mount -t tmpfs tmpfs /run && exec "$@"', "sh"] + cmd
        logf = open(log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL,
                                     env=dict(os.environ, LIBVIRT_DRIVER_DIR=self.no_drivers),
                                     preexec_fn=mvtest._child_setup)
        logf.close()
        mvtest._PROCS.append(self.proc)
        log("started libvirtd pid %d, socket %s" % (self.proc.pid, self.sock))

        def ready():
            if self.proc.poll() is not None:
                raise mvtest.TestFailure("libvirtd exited with %s during start" %
                                         self.proc.returncode)
            return subprocess.run(["virsh", "-q", "-c", "test+unix:///default?socket=" +
                                   self.sock, "uri"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, timeout=15).returncode == 0
        mvtest.wait_until(ready, timeout, "libvirtd to answer on %s" % self.sock, 0.1)

    def kill(self):
        log("killing libvirtd (pid %d) with SIGKILL" % self.proc.pid)
        self.proc.kill()
        self.proc.wait(timeout=10)


def start_env(agent, join, extra, env):
    """Agent.start with an environment (the fake watchdog's preload)."""
    agent.write_config(join, extra)
    agent.log_path = os.path.join(agent.dir, "agent-%d.log" % agent.starts)
    agent.starts += 1
    logf = open(agent.log_path, "w")
    agent.proc = subprocess.Popen([agent.c.binary, "agent", "--config", agent.config],
                                  stdout=logf, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, preexec_fn=mvtest._child_setup,
                                  env=env)
    logf.close()
    mvtest._PROCS.append(agent.proc)
    log("started %s pid %d (fake watchdog)" % (agent.name, agent.proc.pid))
    agent.wait_ready()


def events_of(a, kind, after_ms=0):
    """a's events of this kind recorded after after_ms (unix ms)."""
    return [e for e in a.events(seconds=0.3) if e["kind"] == kind and e["unix_ms"] > after_ms]


def m3_vms(m3):
    """{vm: state} of m3's HA VMs, as m3 itself reports them."""
    doc = m3.cli_json("vms", "--node", "m3")
    return {v["name"]: v["state"] for v in doc["vms"] if v["name"] in M_UUIDS}


def freeze(agents):
    for a in agents:
        a.signal(signal.SIGSTOP)


def thaw(agents):
    for a in agents:
        if a.alive():
            a.signal(signal.SIGCONT)


def stamp_and_failed_fence(t):
    lv = Libvirtd(t, os.path.join(t.tmp, "libvirtd"))
    lv.start()
    host = mvtest.write_host_xml(
        os.path.join(t.tmp, "m3-host.xml"), 4, 8 * GIB,
        [dict(name=n, uuid=u, vcpus=1, memory_kib=256 * MIB,
              meshvisor={"ha": "yes", "priority": "10"}) for n, u in sorted(M_UUIDS.items())])
    c = t.cluster(0, agent_extra={"failover": M_FAILOVER})
    for name in ("m1", "m2", "m3"):
        c.add(name)
    m1, m2, m3 = c["m1"], c["m2"], c["m3"]
    wd = os.path.join(t.tmp, "m3-watchdog")
    wd_log = wd + ".log"
    open(wd, "w").close()
    env = fakewd_env(t, wd, wd_log)
    m3_extra = {"libvirt_uri": "test+unix://%s?socket=%s" % (host, lv.sock),
                "failover": dict(M_FAILOVER, watchdog=wd)}
    files = {n: mvtest.write_host_xml(os.path.join(t.tmp, "%s-host.xml" % n), 4, 8 * GIB, [])
             for n in ("m1", "m2")}
    m1.start(extra={"libvirt_uri": "test://" + files["m1"]})
    m2.start(join=[m1.peer_addr], extra={"libvirt_uri": "test://" + files["m2"]})
    start_env(m3, [m1.peer_addr], m3_extra, env)
    c.wait_converged(timeout=30)
    c.wait_states(timeout=30)
    mvtest.wait_until(lambda: m3_vms(m3) == {n: "running" for n in M_UUIDS} and
                      ha_status(m1)[0] == 0 and ha_status(m1)[1]["ha_vms"] == 2, 20,
                      "m3's two HA VMs running, `ha` on m1 exit 0")
    # the stamp is kept while quorate
    stamp = os.path.join(m3.dir, "data", "quorate-stamp")
    mvtest.wait_until(lambda: os.path.exists(stamp) and os.path.getsize(stamp) == 119, 10,
                      "m3 to write its quorate stamp")
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot = f.read().strip()
    with open(stamp) as f:
        line = f.read()
    check(line.startswith("meshvisor-quorate-stamp v1 boot=%s mono_ms=" % boot),
          "m3's stamp: %r" % line)
    try:
        stamp_restart(c, m1, m2, m3, m3_extra, env)
        failed_fence(lv, m1, m2, m3, wd_log)
    finally:
        thaw([m1, m2])


def stamp_restart(c, m1, m2, m3, m3_extra, env):
    # 6. cut m3 off (m1 and m2 frozen) and restart its agent quickly
    t_stop = time.time() * 1000
    freeze([m1, m2])
    lost = mvtest.wait_until(lambda: events_of(m3, "quorum-lost", t_stop), 10,
                             "m3 to lose quorum", 0.05)
    t_lost = lost[0]["unix_ms"]
    log("m3 lost quorum %.0f ms after m1 and m2 froze" % (t_lost - t_stop))
    # killed 2 s after the loss, before its own self-fence (F - quorate_ms = 3 s)
    time.sleep(max(0.0, (t_lost + 2000) / 1000.0 - time.time()))
    check(not events_of(m3, "fenced-self", t_stop), "m3 fenced itself before the kill")
    m3.signal(signal.SIGKILL)
    m3.wait_exit(5)
    t_restart = time.time() * 1000
    start_env(m3, [m1.peer_addr], m3_extra, env)
    check(m3_vms(m3) == {n: "running" for n in M_UUIDS},
          "m3's HA VMs do not run after the agent restart: %s" % m3_vms(m3))
    # not quorate: `ha` on m3 answers, and says its view may be stale
    r = m3.cli("ha")
    check("m3 is NOT quorate" in r.stdout and "may be stale" in r.stdout,
          "`ha` on the cut-off m3: exit %d %r" % (r.returncode, r.stdout))
    rc, doc = ha_status(m3)
    check(doc["quorate"] is False and doc["view_may_be_stale"] is True,
          "ha --json on m3: %s" % doc)
    fenced = mvtest.wait_until(lambda: events_of(m3, "fenced-self"), 15,
                               "the restarted m3 to fence itself", 0.05)
    t_fenced = fenced[0]["unix_ms"]
    resumed = [e for e in m3.events(seconds=0.3) if e["kind"] == "fence-clock-resumed"]
    log("m3: quorum lost at 0, restarted at +%.0f ms, fenced itself at +%.0f ms "
        "(fence_after_ms %d): %s" % (t_restart - t_lost, t_fenced - t_lost, M_FENCE_AFTER_MS,
                                      resumed and resumed[0]["text"]))
    check(resumed, "the restarted m3 did not resume the self-fence clock")
    check(t_fenced - t_lost <= M_FENCE_AFTER_MS + 700,
          "the restarted m3 fenced itself %.0f ms after its last quorate moment (> F = %d ms)" %
          (t_fenced - t_lost, M_FENCE_AFTER_MS))
    check(t_fenced < t_restart + M_FENCE_AFTER_MS - 1000,
          "the restarted m3 fenced itself F after the restart, not after the quorum loss")
    mvtest.wait_until(lambda: m3_vms(m3) == {n: "shut off" for n in M_UUIDS}, 5,
                      "m3's HA VMs destroyed by the self-fence")

    # m1 and m2 come back: `ha` lists the fenced VMs until they run again
    t_thaw = time.time()
    thaw([m1, m2])

    def ha_down():
        rc, doc = ha_status(m1)
        owed = {v["name"]: v for v in doc.get("owed", [])}
        return (rc, owed) if rc == 1 and set(owed) == set(M_UUIDS) else None
    rc, owed = mvtest.wait_until(ha_down, 15, "`ha` on m1 to exit 1 listing m3's fenced VMs",
                                 0.1)
    log("ha on m1 after the heal: %s" % json.dumps(list(owed.values()))[:600])
    for v in owed.values():
        check(v["host"] == "m3" and v["why"] and v["doing"], "ha lists %s" % v)

    def ha_ok():
        rc, doc = ha_status(m1)
        return doc if rc == 0 and not doc["owed"] and doc["ha_vms"] == 2 else None
    mvtest.wait_until(ha_ok, 45, "`ha` on m1 to exit 0 once m3's HA VMs run again", 0.25)
    log("`ha` exit 0 again %.1fs after the heal" % (time.time() - t_thaw))
    c.wait_converged(timeout=30)


def failed_fence(lv, m1, m2, m3, wd_log):
    # 7. cut m3 off again, and take libvirt away before it fences itself
    mvtest.wait_until(lambda: ha_status(m3)[1]["quorate"], 20, "m3 quorate again")
    t_stop = time.time() * 1000
    m_stop = time.monotonic()
    freeze([m1, m2])
    mvtest.wait_until(lambda: events_of(m3, "quorum-lost", t_stop), 10, "m3 to lose quorum",
                      0.05)
    lv.kill()
    inc = mvtest.wait_until(lambda: events_of(m3, "fence-incomplete", t_stop), 15,
                            "m3 to report its self-fence incomplete", 0.1)
    log("m3: %s" % inc[0]["text"])
    check("NOT fenced" in inc[0]["text"] and "watchdog stays armed" in inc[0]["text"],
          "fence-incomplete: %s" % inc[0]["text"])
    kinds = [e["kind"] for e in m3.events(seconds=0.3) if e["unix_ms"] > t_stop]
    check("fenced-self" in kinds, "m3 events since the cut: %s" % kinds)
    # petted until the self-fence, then hurried to 1 s and left unpetted:
    # a real one resets the host within a second
    time.sleep(2.0)
    ops = wd_ops(wd_log)
    during = [(tt, op, a) for tt, op, a in ops if tt > m_stop]
    hurry = [tt for tt, op, a in during if op == "settimeout" and a[:1] == ["1"]]
    check(hurry, "m3 did not hurry its watchdog after the incomplete self-fence: %s" %
          [(round(tt - m_stop, 2), op, a) for tt, op, a in during])
    check(not [op for tt, op, _ in during if op in ("magic-close", "pet") and tt > hurry[0]],
          "m3 petted or disarmed its watchdog although its fence is incomplete: %s" %
          [(round(tt - m_stop, 2), op) for tt, op, _ in during])
    check([op for tt, op, _ in during if op == "pet" and tt < hurry[0]],
          "m3 stopped petting before its self-fence: %s" %
          [(round(tt - m_stop, 2), op) for tt, op, _ in during])
    fired, armed = wd_replay(ops, time.monotonic())
    check(fired is not None and armed and fired - hurry[0] <= 1.01,
          "a real watchdog would not have reset m3 within 1 s of the hurry: %s" %
          [(round(tt - m_stop, 2), op) for tt, op, _ in during])
    log("watchdog: petted until the self-fence, hurried %.1fs after the cut: a real one "
        "resets m3 %.1fs after the cut; not disarmed" % (hurry[0] - m_stop, fired - m_stop))
    # libvirt back, its VMs running again: the retry destroys them
    t_back = time.time() * 1000
    lv.start()
    done = mvtest.wait_until(lambda: events_of(m3, "fence-completed", t_back), 40,
                             "m3 to complete its self-fence once libvirt answers", 0.25)
    retried = [e for e in m3.events(seconds=0.3)
               if e["kind"] == "vm-fenced" and e["unix_ms"] > t_back]
    log("m3: %s; destroyed on retry: %s" % (done[0]["text"], sorted(e["vm"] for e in retried)))
    check(sorted(e["vm"] for e in retried) == sorted(M_UUIDS),
          "the retry did not destroy both HA VMs: %s" % retried)
    check(m3_vms(m3) == {n: "shut off" for n in M_UUIDS}, "m3's HA VMs: %s" % m3_vms(m3))
    mvtest.wait_until(lambda: [op for tt, op, _ in wd_ops(wd_log) if tt > m_stop and
                               op == "magic-close"], 5,
                      "m3 to disarm its watchdog once the fence is complete")


def ha_status(a):
    """(exit status, `ha --json` document) of `meshvisor ha` on agent a."""
    r = a.cli("ha", "--json", role="viewer")
    if r.returncode not in (0, 1) or not r.stdout.strip():
        raise mvtest.TestFailure("ha on %s failed (exit %d): %s" %
                                 (a.name, r.returncode, r.stderr.strip()))
    return r.returncode, json.loads(r.stdout)


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
