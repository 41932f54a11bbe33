#!/usr/bin/env python3
"""Migration and drain between real agents on libvirt's test driver.

The test driver cannot migrate, so every move is OFFLINE (stopped on the
source, defined — and started if it was running — on the target,
undefined on the source), and the outputs say so. Three hosts of
different sizes, each agent with a short migration lease (an agent
restarted on a data_dir it used before refuses incoming moves for one
lease, "starting"; a brand-new one accepts them at once).

1. `migrate VM --to HOST` through a third node, of a running and of a
   shut-off VM: the VM shows on the target in `vms` on every node, gone
   from the source, in the state it had; its owner_epoch went up by one;
   `migrations` on every node lists the move done/ok and offline.
   `migrate --json`: one object per progress frame, then the final one,
   all of the same move.
2. `migrate VM` without --to: it lands on another host that had room.
3. Refusals, each exit 1 with the reason on stderr and nothing changed on
   any node (hosts, states, owner epochs, draining flags): a target still
   in its first lease ("starting"), no room (the target's numbers in the
   message), a draining target, to itself, an unknown VM, an unknown --to
   host, a viewer, --abort with nothing running; a refused move is listed
   in `migrations` as not ok.
4. `drain HOST --json` of a host with several VMs (one too big for every
   other host): one progress object per VM, then the report; the others
   move off within each target's capacity, the big one is reported as
   stayed and keeps running there; the host shows draining on every node;
   placement (`vm create` without --node) avoids it; `undrain` returns it
   (draining=false everywhere, placement uses it again).
5. A text-mode drain with --parallel 1: one line per VM, then the
   summary; the host ends empty, every host within capacity.
6. An HA VM moves only once a majority of the voters acknowledged its
   announcement (MOVES in agent/core/fo.c): the source logs the
   announcement and the acknowledgement, in that order, before the move;
   the target logs that it landed; the VM runs on the target with its
   owner epoch bumped by one, as any move.
7. A restarted agent refuses incoming moves for one lease."""
import json
import os
import re
import signal
import time

import mvtest
from mvtest import check, log

GIB = 1024 * 1024  # KiB
MIB = 1024
LEASE_MS = 3000
# n3's lease when it restarts at the end: longer than any restart and
# convergence (their timeouts add up to 90 s), so the 'starting' refusal
# is always within it
RESTART_LEASE_MS = 120000

# name -> (cpus, memory KiB, VMs); all agents run the default node
# settings: vCPUs x4, memory x1, 1024 MiB reserved for the host, so the
# memory allowed is n1 9216, n2 23552, n3 6144 MiB
HOSTS = {
    "n1": (4, 10 * GIB, [
        dict(name="m-web", uuid="6d657368-0004-0001-0000-000000000001", vcpus=1,
             memory_kib=1 * GIB),
        dict(name="m-off", uuid="6d657368-0004-0001-0000-000000000002", vcpus=1,
             memory_kib=512 * MIB, running=False),
        # fits n1 and n2, never n3
        dict(name="m-big", uuid="6d657368-0004-0001-0000-000000000003", vcpus=2,
             memory_kib=7 * GIB)]),
    "n2": (8, 24 * GIB, [
        dict(name="d-a", uuid="6d657368-0004-0002-0000-000000000001", vcpus=1,
             memory_kib=1 * GIB),
        dict(name="d-b", uuid="6d657368-0004-0002-0000-000000000002", vcpus=1,
             memory_kib=2 * GIB),
        dict(name="d-c", uuid="6d657368-0004-0002-0000-000000000003", vcpus=2,
             memory_kib=1 * GIB),
        dict(name="d-off", uuid="6d657368-0004-0002-0000-000000000004", vcpus=1,
             memory_kib=512 * MIB, running=False),
        # fits only n2: stays when n2 is drained
        dict(name="d-huge", uuid="6d657368-0004-0002-0000-000000000005", vcpus=2,
             memory_kib=12 * GIB)]),
    "n3": (4, 7 * GIB, []),
}
SPREAD = 5.0  # loose bound for a move to show on every node (the goal is 1 s)
MIG_FIELDS = ("id", "vm", "uuid", "source", "target", "phase", "done", "ok", "offline",
              "message", "started_unix_ms", "ended_unix_ms", "elapsed_ms",
              "data_processed", "data_remaining", "data_total", "downtime_ms")


def snapshot(agent):
    """{vm: (host, state, vcpus, memory, owner_epoch)} and {host: draining}
    as agent sees them."""
    seen = {}
    for v in agent.cli_json("vms")["vms"]:
        seen.setdefault(v["name"], []).append(
            (v["node"], v["state"], v["vcpus"], v["memory_kib"], v["owner_epoch"]))
    # a name listed twice (a second copy) never compares equal to one copy
    vms = {n: ts[0] if len(ts) == 1 else tuple(sorted(ts)) for n, ts in seen.items()}
    return vms, {n: d["draining"] for n, d in agent.nodes().items()}


def wait_all(c, pred, what, timeout=SPREAD):
    """Waits until pred(agent) holds on every running node; returns the
    seconds it took."""
    t0 = time.monotonic()
    last = {}

    def ok():
        good = True
        for a in c.running():
            r = pred(a)
            last[a.name] = r
            good = good and r is True
        return good
    try:
        mvtest.wait_until(ok, timeout, "%s on every node" % what, 0.1)
    except mvtest.TestFailure as e:
        raise mvtest.TestFailure("%s; last seen: %s" % (e, last))
    dt = time.monotonic() - t0
    log("%s on every node after %.2fs" % (what, dt))
    return dt


def vm_is(name, host, state, epoch):
    def pred(a):
        v = a.vms().get(name)
        got = v and (v["node"], v["state"], v["owner_epoch"])
        return True if got == (host, state, epoch) else got
    return pred


def check_mig_shape(m, what):
    miss = [k for k in MIG_FIELDS if k not in m]
    check(not miss, "%s: migration object lacks %s: %s" % (what, miss, m))


def migrate_json(agent, vm, to=None, via_role="operator"):
    """`migrate VM [--to HOST] --json` that must succeed; checks the
    stream's shape; returns the final object."""
    args = ["migrate", vm] + (["--to", to] if to else []) + ["--json"]
    r = agent.cli(*args, role=via_role, errors="replace", timeout=60)
    check(r.returncode == 0, "%s via %s failed (exit %d): %s" %
          (" ".join(args), agent.name, r.returncode, r.stderr.strip()))
    docs = mvtest.json_stream(r.stdout, " ".join(args))
    check(len(docs) >= 2, "%s: want progress object(s) then the final one, got %s" %
          (" ".join(args), docs))
    for d in docs:
        check_mig_shape(d, " ".join(args))
    final, progress = docs[-1], docs[:-1]
    log("%s via %s: %d progress frame(s) (%s), final: %s" %
        (" ".join(args), agent.name, len(progress), [p["phase"] for p in progress],
         {k: final[k] for k in ("id", "source", "target", "phase", "ok", "message")}))
    for p in progress:
        check(not p["done"] and p["id"] == final["id"] and p["vm"] == vm,
              "%s: progress frame %s does not belong to the running move %s" %
              (" ".join(args), p, final["id"]))
    check(final["done"] and final["ok"] and final["phase"] == "done" and final["offline"]
          and final["vm"] == vm and final["id"],
          "%s: final object is not a finished offline move: %s" % (" ".join(args), final))
    check(mvtest.grep(final["message"], r"moved offline to %s" % final["target"]),
          "%s: message %r does not say 'moved offline to %s'" %
          (" ".join(args), final["message"], final["target"]))
    check(final["target"] != final["source"], "%s: moved to itself: %s" %
          (" ".join(args), final))
    if to:
        check(final["target"] == to, "%s: went to %s" % (" ".join(args), final["target"]))
    check(final["ended_unix_ms"] >= final["started_unix_ms"] > 0,
          "%s: bad timestamps: %s" % (" ".join(args), final))
    return final


def migrations_list_it(c, mig, ok=True):
    """`migrations --json` on every node lists move mig (by id) done, with
    the outcome ok, same source/target."""
    def pred(a):
        ms = a.cli_json("migrations")["migrations"]
        for m in ms:
            check_mig_shape(m, "migrations on %s" % a.name)
        got = [m for m in ms if m["id"] == mig["id"]]
        if not got:
            return "not listed"
        m = got[0]
        want = (mig["vm"], mig["source"], mig["target"], True, ok, True)
        have = (m["vm"], m["source"], m["target"], m["done"], m["ok"], m["offline"])
        return True if have == want else have
    wait_all(c, pred, "migrations lists %s %s (%s -> %s) %s" %
             (mig["id"], mig["vm"], mig["source"], mig["target"], "ok" if ok else "refused"))


def moved(c, mig, before, state):
    """After move mig of a VM that had owner_epoch before[4]: every node
    shows it on the target in `state` with the epoch bumped; gone from the
    source's own `vms --node` list; `vm NAME --json` agrees; migrations
    lists it."""
    name = mig["vm"]
    wait_all(c, vm_is(name, mig["target"], state, before + 1),
             "%s on %s, %s, owner_epoch %d" % (name, mig["target"], state, before + 1))
    for a in c.running():
        check(name not in a.vms(node=mig["source"]),
              "%s: %s still listed on its source %s" % (a.name, name, mig["source"]))
        v = a.cli_json("vm", name)
        check((v["node"], v["owner_epoch"]) == (mig["target"], before + 1),
              "%s: vm %s --json says %s epoch %s" % (a.name, name, v["node"], v["owner_epoch"]))
    migrations_list_it(c, mig)


def refused(c, agent, args, pattern, what, role="operator"):
    """A migrate/drain that must fail with exit 1 and a message matching
    pattern, and change nothing on any node."""
    before = {a.name: snapshot(a) for a in c.running()}
    r = agent.cli(*args, role=role, errors="replace", timeout=60)
    log("%s: exit %d, stderr: %s" % (what, r.returncode, r.stderr.strip()))
    check(r.returncode == 1, "%s: exit %d, want 1 (stdout %r, stderr %r)" %
          (what, r.returncode, r.stdout, r.stderr))
    check(mvtest.grep(r.stderr, pattern), "%s: error %r does not match /%s/" %
          (what, r.stderr.strip(), pattern))
    c.wait_propagated()  # a wrong change has reached every view now
    after = {a.name: snapshot(a) for a in c.running()}
    check(after == before, "%s changed the cluster: before %s after %s" %
          (what, before, after))
    return r


def room(node, vm):
    """Memory and vCPUs left on node (a `nodes --json` entry) after vm."""
    return (node["memory_allowed_kib"] - node["memory_allocated_kib"] - vm["memory_kib"],
            node["vcpus_allowed"] - node["vcpus_allocated"] - vm["vcpus"])


def within_capacity(c):
    def pred(a):
        over = {n: (d["vcpus_allocated"], d["vcpus_allowed"], d["memory_allocated_kib"],
                    d["memory_allowed_kib"])
                for n, d in a.nodes().items()
                if d["vcpus_allocated"] > d["vcpus_allowed"] or
                d["memory_allocated_kib"] > d["memory_allowed_kib"]}
        return True if not over else over
    return pred


def draining_is(host, flag):
    def pred(a):
        d = a.nodes()[host]["draining"]
        return True if d is flag else d
    return pred


def main(t):
    c = t.cluster(3)
    extras = {}
    for name, (cpus, mem, vms) in HOSTS.items():
        path = mvtest.write_host_xml(os.path.join(c[name].dir, "host.xml"), cpus, mem, vms)
        extras[name] = {"libvirt_uri": "test://" + path, "migration": {"lease_ms": LEASE_MS}}
    c.start_each(extras)
    t_start = time.monotonic()  # every agent listens: its lease began before this
    c.wait_converged(timeout=30)
    c.wait_states(timeout=30)
    n1, n2, n3 = c["n1"], c["n2"], c["n3"]

    xml_dir = os.path.join(t.tmp, "xml")
    os.makedirs(xml_dir)

    def xml_file(name, vcpus, mem):
        p = os.path.join(xml_dir, "%s.xml" % name)
        with open(p, "w") as f:
            f.write(mvtest.domain_xml(name, vcpus, mem))
        return p

    # a brand-new cluster (incarnation 1 everywhere: no previous life that
    # could have accepted a move) accepts migrations at once: no wait for
    # the startup lease here (step 1 fails with "starting" otherwise)
    log("first move %.1f s after the agents started (lease %d ms)" %
        (time.monotonic() - t_start, LEASE_MS))
    epoch0 = {n: v[4] for n, v in snapshot(n1)[0].items()}
    log("owner epochs at start: %s" % epoch0)

    # 1. --to, through a node that is neither source nor target
    mig = migrate_json(n2, "m-web", to="n3")
    check(mig["source"] == "n1", "m-web moved from %s, want n1" % mig["source"])
    moved(c, mig, epoch0["m-web"], "running")
    # a shut-off VM stays shut off; text output this time
    r = n3.cli("migrate", "m-off", "--to", "n2", errors="replace", timeout=60)
    log("migrate m-off --to n2 via n3: exit %d\n%s" % (r.returncode, r.stdout.rstrip()))
    check(r.returncode == 0, "migrate m-off --to n2: exit %d: %s" % (r.returncode, r.stderr))
    lines = r.stdout.strip().splitlines()
    check(lines and mvtest.grep(lines[-1], r"^m-off: moved offline to n2"),
          "migrate m-off: last line %r, want 'm-off: moved offline to n2 ...'" %
          (lines[-1:] or ""))
    check(all(mvtest.grep(l, r"^m-off: .*n1 -> n2.*offline") for l in lines[:-1]),
          "migrate m-off: progress lines %r" % lines[:-1])
    wait_all(c, vm_is("m-off", "n2", "shut off", epoch0["m-off"] + 1),
             "m-off shut off on n2, owner_epoch %d" % (epoch0["m-off"] + 1))

    # 2. no --to: the source picks a host that has room, never itself
    nodes = n1.nodes()
    vm = n1.vms()["m-web"]
    mig = migrate_json(n1, "m-web")
    check(mig["source"] == "n3" and mig["target"] in ("n1", "n2"),
          "m-web without --to: %s -> %s" % (mig["source"], mig["target"]))
    left = room(nodes[mig["target"]], vm)
    check(left[0] >= 0 and left[1] >= 0, "m-web went to %s, which had no room: %s "
          "(memory, vCPUs left after it)" % (mig["target"], left))
    moved(c, mig, epoch0["m-web"] + 1, "running")
    wait_all(c, within_capacity(c), "every host within capacity")

    # 3. refusals, through nodes that do not own the VM
    c.wait_propagated()
    r = refused(c, n2, ("migrate", "m-big", "--to", "n3"), r"n3.*no.room", "no room on n3")
    check(mvtest.grep(r.stderr, r"needs 7168 MiB.*6144"),
          "no-room message lacks the numbers (needs 7168 MiB, capacity 6144): %r" % r.stderr)
    ms = [m for m in n1.cli_json("migrations")["migrations"]
          if m["vm"] == "m-big" and m["target"] == "n3"]
    check(ms and ms[0]["done"] and not ms[0]["ok"] and mvtest.grep(ms[0]["message"], "no.room"),
          "migrations on n1 does not list the refused m-big -> n3: %s" % ms)
    # --json: the error still goes to stderr, exit 1
    r = refused(c, n3, ("migrate", "m-big", "--to", "n3", "--json"), r"no.room",
                "no room on n3 (--json)")
    for d in mvtest.json_stream(r.stdout, "migrate --json (refused)"):
        check_mig_shape(d, "migrate --json (refused)")
        check(not d["ok"], "refused migrate --json printed an ok object: %s" % d)

    # draining target: n3 (empty now) drained, then undrained
    r = n1.cli("drain", "n3", errors="replace", timeout=60)
    check(r.returncode == 0 and mvtest.grep(r.stdout, r"^n3 drained: 0 moved, 0 stayed"),
          "drain of empty n3: exit %d, %r %r" % (r.returncode, r.stdout, r.stderr))
    wait_all(c, draining_is("n3", True), "n3 draining")
    refused(c, n2, ("migrate", "m-web", "--to", "n3"), r"n3.*draining", "draining target")
    r = n2.cli("undrain", "n3", errors="replace")
    check(r.returncode == 0 and mvtest.grep(r.stdout, r"n3 is back in service"),
          "undrain n3: exit %d, %r %r" % (r.returncode, r.stdout, r.stderr))
    wait_all(c, draining_is("n3", False), "n3 not draining")

    host_of = {n: v[0] for n, v in snapshot(n1)[0].items()}
    refused(c, n3, ("migrate", "m-big", "--to", host_of["m-big"]), r"to itself",
            "migrate to its own host")
    refused(c, n3, ("migrate", "no-such-vm"), r"no VM named 'no-such-vm'", "unknown VM")
    refused(c, n3, ("migrate", "no-such-vm", "--to", "n1"), r"no VM named 'no-such-vm'",
            "unknown VM with --to")
    refused(c, n1, ("migrate", "d-a", "--to", "ghost"), r"no host named 'ghost'",
            "unknown --to host")
    refused(c, n1, ("migrate", "d-a", "--to", "n3"), r"permission denied", "viewer migrate",
            role="viewer")
    refused(c, n1, ("drain", "n2"), r"permission denied", "viewer drain", role="viewer")
    refused(c, n1, ("drain", "ghost"), r"ghost", "drain unknown host")
    refused(c, n3, ("migrate", "--abort", "m-big"),
            r"no migration of 'm-big' is running on %s" % host_of["m-big"],
            "abort with no migration running")

    # 4. drain n2 through n1: d-huge fits nowhere else
    before = snapshot(n1)[0]
    r = n1.cli("drain", "n2", "--json", errors="replace", timeout=60)
    check(r.returncode == 0, "drain n2 --json: exit %d: %s" % (r.returncode, r.stderr))
    docs = mvtest.json_stream(r.stdout, "drain --json")
    rep = docs[-1]
    log("drain n2 --json: %s; results %s" %
        (rep.get("message"), [(x["vm"], x["target"], x["ok"]) for x in rep.get("results", [])]))
    check(set(rep) >= {"node", "moved", "stayed", "message", "results"},
          "drain --json final object lacks fields: %s" % rep)
    for d in docs[:-1] + rep["results"]:
        check(set(d) >= {"vm", "source", "target", "done", "ok", "message"},
              "drain --json per-VM object lacks fields: %s" % d)
    on_n2 = sorted(n for n, v in before.items() if v[0] == "n2")
    res = {x["vm"]: x for x in rep["results"]}
    check(sorted(d["vm"] for d in docs[:-1]) == sorted(res),
          "drain --json: progress objects for %s, want one per VM of %s" %
          (sorted(d["vm"] for d in docs[:-1]), sorted(res)))
    check(sorted(res) == on_n2, "drain results name %s, want n2's VMs %s" %
          (sorted(res), on_n2))
    check(rep["node"] == "n2" and rep["moved"] == len(on_n2) - 1 and rep["stayed"] == 1,
          "drain n2: %s, want %d moved, 1 stayed" % (rep["message"], len(on_n2) - 1))
    check(mvtest.grep(rep["message"], r"n2 drained: %d moved, 1 stayed" % (len(on_n2) - 1)),
          "drain message %r" % rep["message"])
    check(not res["d-huge"]["ok"] and mvtest.grep(res["d-huge"]["message"], r"room"),
          "d-huge: %s, want stayed for lack of room" % res["d-huge"])
    for name, x in res.items():
        if name == "d-huge":
            continue
        check(x["ok"] and x["source"] == "n2" and x["target"] in ("n1", "n3") and
              mvtest.grep(x["message"], r"moved offline to " + x["target"]),
              "drain result for %s: %s" % (name, x))
        wait_all(c, vm_is(name, x["target"], before[name][1], before[name][4] + 1),
                 "%s %s on %s" % (name, before[name][1], x["target"]))
    wait_all(c, vm_is("d-huge", "n2", "running", before["d-huge"][4]),
             "d-huge still running on n2, epoch unchanged")
    wait_all(c, draining_is("n2", True), "n2 draining")
    wait_all(c, within_capacity(c), "every host within capacity after the drain")
    for a in c.running():
        check(sorted(a.vms(node="n2")) == ["d-huge"], "%s: n2 still lists %s" %
              (a.name, sorted(a.vms(node="n2"))))

    # placement avoids n2, though it has the most memory left
    nodes = n3.nodes()
    probe = {"vcpus": 1, "memory_kib": 256 * MIB}
    best = max(nodes, key=lambda h: room(nodes[h], probe))
    check(best == "n2", "test bug: n2 (%s) should have the most room: %s" %
          (room(nodes["n2"], probe), {h: room(d, probe) for h, d in nodes.items()}))
    rr = n3.cli_json("vm", "create", "--xml", xml_file("p-drain", 1, 256 * MIB),
                     role="operator")
    log("vm create p-drain while n2 drains -> %s" % rr)
    check(rr.get("node") in ("n1", "n3"), "p-drain placed on %r while n2 drains" %
          rr.get("node"))
    refused(c, n3, ("migrate", "p-drain", "--to", "n2"), r"n2.*draining",
            "migrate to draining n2")

    # undrain: back in service everywhere, placement uses it again
    r = n3.cli("undrain", "n2", "--json", errors="replace")
    check(r.returncode == 0, "undrain n2 --json: exit %d: %s" % (r.returncode, r.stderr))
    u = json.loads(r.stdout)
    check(u.get("node") == "n2" and u.get("moved") == 0 and u.get("results") == [] and
          mvtest.grep(u.get("message", ""), "back in service"), "undrain --json: %s" % u)
    wait_all(c, draining_is("n2", False), "n2 back in service")
    rr = n1.cli_json("vm", "create", "--xml", xml_file("p-back", 1, 256 * MIB),
                     role="operator")
    check(rr.get("node") == "n2", "p-back placed on %r after undrain, want n2 (most room)" %
          rr.get("node"))

    # 5. text-mode drain of n1 through n2, one at a time: one line per VM,
    #    then the summary; n2 (undrained) takes what does not fit n3
    before = snapshot(n2)[0]
    on_n1 = sorted(n for n, v in before.items() if v[0] == "n1")
    r = n2.cli("drain", "n1", "--parallel", "1", errors="replace", timeout=60)
    log("drain n1 --parallel 1 via n2: exit %d\n%s" % (r.returncode, r.stdout.rstrip()))
    check(r.returncode == 0, "drain n1: exit %d: %s" % (r.returncode, r.stderr))
    lines = r.stdout.strip().splitlines()
    check(lines and lines[-1] == "n1 drained: %d moved, 0 stayed" % len(on_n1),
          "drain n1 summary %r, want 'n1 drained: %d moved, 0 stayed'" %
          (lines[-1:], len(on_n1)))
    per_vm = {l.split(":", 1)[0]: l for l in lines[:-1]}
    check(sorted(per_vm) == on_n1, "drain n1 reported %s, want %s" % (sorted(per_vm), on_n1))
    for name, line in per_vm.items():
        check(mvtest.grep(line, r"moved offline to n[23]"), "drain n1: %r" % line)
    wait_all(c, lambda a: True if not a.vms(node="n1") else sorted(a.vms(node="n1")),
             "n1 empty")
    wait_all(c, within_capacity(c), "every host within capacity after draining n1")
    wait_all(c, draining_is("n1", True), "n1 draining")
    check(n3.cli("undrain", "n1").returncode == 0, "undrain n1 failed")
    wait_all(c, draining_is("n1", False), "n1 back in service")

    # 6. an HA VM's move is announced to the voters first
    c.wait_propagated()
    hv = min((v for v in n1.vms().values() if v["state"] == "running"),
             key=lambda v: (v["memory_kib"], v["vcpus"], v["name"]))
    r = n1.cli("vm", "set-ha", hv["name"], "on")
    check(r.returncode == 0, "set-ha %s: %s" % (hv["name"], r.stderr))
    wait_all(c, lambda a: True if a.vms()[hv["name"]]["ha"] else "not HA yet",
             "%s HA on every node" % hv["name"])
    epoch_hv = n1.vms()[hv["name"]]["owner_epoch"]
    mig = migrate_json(n1, hv["name"])
    moved(c, mig, epoch_hv, "running")
    src_log = c[mig["source"]].log_text()
    ann = re.search(r"HA move announced id=%s vm=%s target=%s epoch=%d" %
                    (re.escape(mig["id"]), re.escape(hv["name"]), mig["target"], epoch_hv + 1),
                    src_log)
    ack = re.search(r"HA move acknowledged id=%s" % re.escape(mig["id"]), src_log)
    check(ann and ack and ann.start() < ack.start(),
          "%s's log lacks 'HA move announced' then 'HA move acknowledged' for %s" %
          (mig["source"], mig["id"]))
    check(re.search(r"incoming move landed id=%s" % re.escape(mig["id"]),
                    c[mig["target"]].log_text()),
          "%s's log does not say the HA move %s landed" % (mig["target"], mig["id"]))

    # 7. a restarted agent refuses incoming moves for one lease: n3 again,
    #    with a lease far longer than its restart and the cluster's
    #    convergence can take, so that the check never depends on how fast
    #    the machine is (and is never skipped)
    n3.signal(signal.SIGTERM)
    n3.wait_exit(30)
    extra3 = dict(extras["n3"], migration={"lease_ms": RESTART_LEASE_MS})
    n3.start(join=[n1.peer_addr], extra=extra3)
    t_restart = time.monotonic()
    c.wait_converged(timeout=30)
    c.wait_states(timeout=30)
    # (the test driver keeps what was moved to n3 in memory only: its new
    # record, without those VMs, must reach every view before comparing)
    c.wait_propagated()
    small = min((v for v in n1.vms().values() if v["node"] != "n3" and v["state"] == "running"),
                key=lambda v: (v["memory_kib"], v["vcpus"], v["name"]))
    refused(c, n1, ("migrate", small["name"], "--to", "n3"),
            r"n3.*starting \(agent restarted \d+ ms ago", "target n3 restarted")
    check(time.monotonic() - t_restart < RESTART_LEASE_MS / 1000.0,
          "the 'starting' refusal was checked after n3's lease had run out")
    check(all(a.alive() for a in c.agents.values()), "an agent exited")


mvtest.run(main)
