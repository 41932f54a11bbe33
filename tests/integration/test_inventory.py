#!/usr/bin/env python3
"""Every node knows every host's capacity, health, labels and VMs.

Three agents on libvirt test-driver hosts that differ in CPUs, memory, CPU
model and VMs, with different zone/rack/labels and overcommit settings.
On every node: `nodes --json` shows all three with the right CPUs, memory,
allocation (the sum over running VMs), capacity allowed by overcommit,
labels and health; `vms --json` lists every VM with its host, state,
vCPUs and memory; `node NAME`, `vm NAME` and `vm UUID` answer; an unknown
node or VM is exit 1 with a clear message. A capacity change on one host
(a shut-off VM started there) is visible on every node within a bound."""
import os
import time

import mvtest
from mvtest import check, log

GIB = 1024 * 1024  # KiB

# host name -> (cpus, memory KiB, cpu model, VMs, node config section)
HOSTS = {
    "n1": (4, 8 * GIB, "inv-model-one", [
        dict(name="n1-web", uuid="6d657368-0003-0001-0000-000000000001", vcpus=2,
             memory_kib=1 * GIB),
        dict(name="n1-db", uuid="6d657368-0003-0001-0000-000000000002", vcpus=1,
             memory_kib=2 * GIB),
        dict(name="n1-batch", uuid="6d657368-0003-0001-0000-000000000003", vcpus=1,
             memory_kib=512 * 1024, running=False),
    ], {"zone": "zone-a", "rack": "rack-1", "labels": ["role=compute", "tier=gold"],
        "cpu_overcommit": 3.0, "memory_overcommit": 1.0, "memory_reserved_mib": 512}),
    "n2": (8, 16 * GIB, "inv-model-two", [
        dict(name="n2-app", uuid="6d657368-0003-0002-0000-000000000001", vcpus=4,
             memory_kib=4 * GIB),
        dict(name="n2-idle", uuid="6d657368-0003-0002-0000-000000000002", vcpus=2,
             memory_kib=1 * GIB, running=False),
    ], {"zone": "zone-b", "labels": ["role=storage"],
        "cpu_overcommit": 1.5, "memory_overcommit": 1.5, "memory_reserved_mib": 2048}),
    # no node section: the shipped defaults (x4 CPU, x1 memory, 1024 MiB reserved)
    "n3": (2, 4 * GIB, "inv-model-three", [
        dict(name="n3-spare", uuid="6d657368-0003-0003-0000-000000000001", vcpus=1,
             memory_kib=256 * 1024, running=False),
    ], None),
}
DEFAULT_NODE = {"zone": "", "rack": "", "labels": [], "cpu_overcommit": 4.0,
                "memory_overcommit": 1.0, "memory_reserved_mib": 1024}


def expected_node(name, running_extra=()):
    """What every node must report for host `name`; running_extra: names
    of VMs that were started since (normally shut off)."""
    cpus, mem, model, vms, cfg = HOSTS[name]
    node = dict(DEFAULT_NODE)
    node.update(cfg or {})
    running = [v for v in vms if v.get("running", True) or v["name"] in running_extra]
    reserved = node["memory_reserved_mib"] * 1024
    vcpus_alloc = sum(v["vcpus"] for v in running)
    mem_alloc = sum(v["memory_kib"] for v in running)
    return {
        "state": "alive", "known_state": True,
        "cpus": cpus, "memory_kib": mem, "cpu_model": model,
        "vcpus_allocated": vcpus_alloc, "memory_allocated_kib": mem_alloc,
        "vcpus_allowed": int(cpus * node["cpu_overcommit"] + 1e-9),
        "memory_reserved_kib": reserved,
        "memory_allowed_kib": int((mem - reserved) * node["memory_overcommit"] + 1e-9),
        # the test driver has no real free memory: total less what runs
        "memory_free_kib": mem - mem_alloc,
        "cpu_overcommit": node["cpu_overcommit"],
        "memory_overcommit": node["memory_overcommit"],
        "zone": node["zone"], "rack": node.get("rack", ""),
        "labels": dict(l.split("=", 1) for l in node["labels"]),
        "libvirt_reachable": True, "libvirt_error": "", "draining": False,
        "vms": sorted(v["name"] for v in vms),
    }


def node_diff(got, want):
    """{field: (got, want)} for every field that differs."""
    out = {}
    for k, w in want.items():
        g = got.get(k)
        if k == "vms":
            g = sorted(v["name"] for v in (g or []))
        if isinstance(w, float):
            same = isinstance(g, (int, float)) and abs(g - w) < 1e-6
        else:
            same = g == w
        if not same:
            out[k] = (g, w)
    return out


def expected_vms(running_extra=()):
    out = {}
    for host, (_, _, _, vms, _) in HOSTS.items():
        for v in vms:
            up = v.get("running", True) or v["name"] in running_extra
            out[v["name"]] = {"node": host, "uuid": v["uuid"], "vcpus": v["vcpus"],
                              "memory_kib": v["memory_kib"],
                              "state": "running" if up else "shut off",
                              "ha": False}
    return out


def vms_diff(got, want):
    out = {}
    for name in sorted(set(got) | set(want)):
        if name not in got or name not in want:
            out[name] = ("present" if name in got else "missing",
                         "present" if name in want else "absent")
            continue
        bad = {k: (got[name].get(k), w) for k, w in want[name].items()
               if got[name].get(k) != w}
        if bad:
            out[name] = bad
    return out


def check_everywhere(c, running_extra=()):
    versions = {a.name: a.status()["version"] for a in c.running()}
    for obs in c.running():
        nodes = obs.nodes()
        check(sorted(nodes) == sorted(HOSTS),
              "%s: nodes lists %s, want %s" % (obs.name, sorted(nodes), sorted(HOSTS)))
        for name in HOSTS:
            d = node_diff(nodes[name], expected_node(name, running_extra))
            check(not d, "%s: nodes --json shows %s wrong: {field: (got, want)} %s" %
                  (obs.name, name, d))
            check(nodes[name].get("rpc_addr") == c[name].rpc_addr,
                  "%s: %s rpc_addr %r, want %r" % (obs.name, name, nodes[name].get("rpc_addr"),
                                                   c[name].rpc_addr))
            check(nodes[name].get("agent_version") == versions[name],
                  "%s: %s agent_version %r, want %r" %
                  (obs.name, name, nodes[name].get("agent_version"), versions[name]))
        d = vms_diff(obs.vms(), expected_vms(running_extra))
        check(not d, "%s: vms --json differs: %s" % (obs.name, d))


def failing(agent, args, pattern, what):
    r = agent.cli(*args, role="viewer", errors="replace")
    log("%s: exit %d, stderr: %s" % (what, r.returncode, r.stderr.strip()))
    check(r.returncode == 1, "%s: exit %d, want 1 (stdout %r)" % (what, r.returncode, r.stdout))
    check(mvtest.grep(r.stderr, pattern), "%s: error %r does not match /%s/" %
          (what, r.stderr.strip(), pattern))
    check(r.stdout.strip() == "", "%s: printed %r on stdout" % (what, r.stdout))


def main(t):
    c = t.cluster(3)
    extras = {}
    for name, (cpus, mem, model, vms, node) in HOSTS.items():
        path = mvtest.write_host_xml(os.path.join(c[name].dir, "host.xml"), cpus, mem, vms,
                                     model=model)
        extras[name] = {"libvirt_uri": "test://" + path}
        if node:
            extras[name]["node"] = node
    c.start_each(extras)
    c.wait_converged(timeout=30)
    dt = c.wait_states(timeout=30)
    log("every node knows every node state after %.2fs" % dt)

    # 1. the whole inventory, from every node
    check_everywhere(c)
    log("nodes --json and vms --json are right on all 3 nodes")
    text = c["n2"].cli("nodes", role="viewer", errors="replace")
    check(text.returncode == 0, "nodes (text) failed: %s" % text.stderr)
    log("nodes on n2:\n%s" % text.stdout.rstrip())
    for name in HOSTS:
        row = [l for l in text.stdout.splitlines() if l.split()[:1] == [name]]
        check(row and " ok " in row[0], "nodes text has no healthy row for %s: %r" % (name, row))
    check(mvtest.grep(text.stdout, r"zone=zone-a,rack=rack-1,role=compute,tier=gold"),
          "n1's labels missing from the nodes table")

    # 2. --node filter, one node, one VM by name and by UUID
    for obs in c.running():
        only = obs.vms(node="n2")
        check(sorted(only) == ["n2-app", "n2-idle"],
              "%s: vms --node n2 lists %s" % (obs.name, sorted(only)))
        one = obs.cli_json("node", "n1")
        d = node_diff(one, expected_node("n1"))
        check(not d, "%s: node n1 --json wrong: %s" % (obs.name, d))
        for key in ("n2-app", HOSTS["n2"][3][0]["uuid"]):
            vm = obs.cli_json("vm", key)
            check(vm.get("name") == "n2-app" and vm.get("node") == "n2" and
                  vm.get("uuid") == HOSTS["n2"][3][0]["uuid"] and vm.get("vcpus") == 4 and
                  vm.get("memory_kib") == 4 * GIB and vm.get("state") == "running",
                  "%s: vm %s --json is %s" % (obs.name, key, vm))
    r = c["n3"].cli("node", "n2", role="viewer", errors="replace")
    check(r.returncode == 0 and "n2-app" in r.stdout and "zone-b" in r.stdout,
          "node n2 (text) on n3: exit %d %r" % (r.returncode, r.stdout))
    r = c["n3"].cli("vm", "n1-db", role="viewer", errors="replace")
    check(r.returncode == 0 and mvtest.grep(r.stdout, r"host:\s+n1") and
          mvtest.grep(r.stdout, r"memory:\s+2048 MiB"),
          "vm n1-db (text) on n3: exit %d %r" % (r.returncode, r.stdout))
    log("node/vm by name and UUID answer on every node")

    # 3. unknown names: exit 1, a clear message, nothing on stdout
    failing(c["n1"], ("node", "no-such-host"), r"no-such-host", "unknown node")
    failing(c["n2"], ("vm", "no-such-vm"), r"no.*VM.*no-such-vm|no-such-vm.*not found",
            "unknown VM")
    failing(c["n3"], ("vm", "6d657368-0003-00ff-0000-000000000000"),
            r"no.*VM|not found", "unknown UUID")
    failing(c["n3"], ("vms", "--node", "no-such-host"), r"no-such-host", "vms --node unknown")
    check_everywhere(c)

    # 4. a capacity change on n1 (start its shut-off VM) reaches every node
    t0 = time.monotonic()
    r = c["n1"].cli("vm", "start", "n1-batch")
    t_done = time.monotonic()
    check(r.returncode == 0, "vm start n1-batch failed (exit %d): %s" %
          (r.returncode, r.stderr.strip()))
    want = expected_node("n1", running_extra=("n1-batch",))
    seen = {}

    def visible():
        for obs in c.running():
            if obs.name in seen:
                continue
            n1 = obs.nodes()["n1"]
            if (n1["vcpus_allocated"] == want["vcpus_allocated"] and
                    n1["memory_allocated_kib"] == want["memory_allocated_kib"]):
                seen[obs.name] = time.monotonic() - t0
        return len(seen) == 3
    bound = 5.0
    mvtest.wait_until(visible, bound, "n1's new allocation (%d vCPUs, %d KiB) on every node "
                      "(seen at %s)" % (want["vcpus_allocated"], want["memory_allocated_kib"],
                                        seen), 0.05)
    log("capacity change on n1 visible everywhere: %s (command took %.2fs; bound %.0fs)" %
        (", ".join("%s %.2fs" % kv for kv in sorted(seen.items())), t_done - t0, bound))
    check_everywhere(c, running_extra=("n1-batch",))


mvtest.run(main)
