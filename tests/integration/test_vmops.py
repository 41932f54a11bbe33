#!/usr/bin/env python3
"""VM lifecycle from any node, forwarded to the host that owns the VM.

Through one node: `vm create` with --node and without (placed on the host
with the most memory left after placement; a VM no host has room for gets
"no host has room" and nothing changes), start, shutdown, destroy,
undefine and set-ha — each forwarded to the owner (the reply names it) and
each change visible in `vms` on every node. Error paths, each exit 1 with
a clear message and nothing changed anywhere: a duplicate VM name or
UUID, bad XML (malformed, no name, a type libvirt rejects on the owner),
undefine of a running VM, start of a running VM, an unknown VM, a viewer
doing a write, --node naming an unknown host; a priority out of range,
and --priority or --group anywhere but `vm set-ha` (they would be
ignored), are usage errors (exit 2). Then a host that has left: creating on it or
acting on its VMs is refused.

The desired state (issue 9), seen in `vms` on every node: create sets it
(running with start, stopped with --no-start), shutdown and destroy set it
to stopped, start to running, for HA VMs too; set-ha on keeps a stopped VM
stopped, set-ha off leaves it. Last, a host that is not quorate (an agent
alone, started with a seed nobody answers at): an HA VM's start is refused
there with the reason and the VM stays shut off (a plain VM starts), an HA
VM that should run and does not is marked in `vms`, and destroy of it only
records that it stays stopped.

(set-ha surviving an agent restart needs a real libvirtd, which keeps the
domain's metadata while the agent is down: test_libvirt_reconnect.py.)"""
import json
import os
import signal
import time

import mvtest
from mvtest import check, log

GIB = 1024 * 1024  # KiB
MIB = 1024

# name -> (cpus, memory KiB, VMs); all agents run the default node
# settings: vCPUs x4, memory x1, 1024 MiB reserved for the host
HOSTS = {
    "n1": (4, 8 * GIB, [
        dict(name="n1-web", uuid="6d657368-0003-0101-0000-000000000001", vcpus=2,
             memory_kib=1 * GIB)]),
    "n2": (8, 16 * GIB, [
        dict(name="n2-db", uuid="6d657368-0003-0102-0000-000000000001", vcpus=2,
             memory_kib=2 * GIB),
        dict(name="n2-off", uuid="6d657368-0003-0102-0000-000000000002", vcpus=1,
             memory_kib=512 * MIB, running=False)]),
    "n3": (4, 8 * GIB, []),
}
RESERVED = 1024 * MIB
VCPU_X = 4


def snapshot(agent):
    """{vm: (host, state, vcpus, memory, ha, priority, desired)} as agent sees
    it; a name listed twice (a second copy) maps to the sorted tuple of both,
    so a snapshot with a duplicate never equals one without."""
    seen = {}
    for v in agent.cli_json("vms")["vms"]:
        seen.setdefault(v["name"], []).append(
            (v["node"], v["state"], v["vcpus"], v["memory_kib"], v["ha"], v["priority"],
             v["desired"]))
    return {n: ts[0] if len(ts) == 1 else tuple(sorted(ts)) for n, ts in seen.items()}


def wait_vm(c, name, pred, what, timeout=10):
    """Waits until pred(vm dict or None) holds on every node; returns the
    seconds it took and the view of the last node."""
    t0 = time.monotonic()
    last = {}

    def ok():
        for a in c.running():
            v = a.vms().get(name)
            last[a.name] = v and (v["node"], v["state"], v["ha"], v["priority"],
                                  v.get("desired"))
            if not pred(v):
                return False
        return True
    try:
        mvtest.wait_until(ok, timeout, "%s: %s on every node" % (name, what), 0.1)
    except mvtest.TestFailure as e:
        raise mvtest.TestFailure("%s; last seen: %s" % (e, last))
    dt = time.monotonic() - t0
    log("%s: %s on every node after %.2fs" % (name, what, dt))
    return dt


def state_is(host, state, desired=None):
    """The VM is on host in state (and, if given, has that desired state)."""
    return lambda v: (v is not None and v["node"] == host and v["state"] == state and
                      (desired is None or v.get("desired") == desired))


def op(agent, *args, want_node, role="operator"):
    """A VM operation that must succeed; checks the reply's node field."""
    r = agent.cli(*(list(args) + ["--json"]), role=role, errors="replace")
    check(r.returncode == 0, "%s via %s failed (exit %d): %s" %
          (" ".join(args), agent.name, r.returncode, r.stderr.strip()))
    reply = json.loads(r.stdout)
    log("%s via %s -> %s" % (" ".join(args), agent.name, reply))
    check(reply.get("node") == want_node, "%s via %s ran on %r, want %s" %
          (" ".join(args), agent.name, reply.get("node"), want_node))
    return reply


def refused(c, agent, args, pattern, what, role="operator", want_rc=1):
    """An operation that must fail with exit want_rc (1: refused by the
    agent, 2: refused by the CLI as bad usage) and a message matching
    pattern, and leave every node's view as it was."""
    before = {a.name: snapshot(a) for a in c.running()}
    r = agent.cli(*args, role=role, errors="replace")
    log("%s: exit %d, stderr: %s" % (what, r.returncode, r.stderr.strip()))
    check(r.returncode == want_rc, "%s: exit %d, want %d (stdout %r, stderr %r)" %
          (what, r.returncode, want_rc, r.stdout, r.stderr))
    check(mvtest.grep(r.stderr, pattern), "%s: error %r does not match /%s/" %
          (what, r.stderr.strip(), pattern))
    c.wait_propagated()  # a wrong change has reached every view now
    after = {a.name: snapshot(a) for a in c.running()}
    check(after == before, "%s changed the inventory: before %s after %s" %
          (what, before, after))


def expected_place(view, vcpus, mem):
    """The placement rule (most memory left after placement, then most
    vCPUs left, then name), computed from a node's `vms` view."""
    best = None
    for host, (cpus, total, _) in HOSTS.items():
        running = [v for v in view.values() if v[0] == host and v[1] == "running"]
        mleft = total - RESERVED - sum(v[3] for v in running) - mem
        cleft = cpus * VCPU_X - sum(v[2] for v in running) - vcpus
        if mleft < 0 or cleft < 0:
            continue
        key = (mleft, cleft, [-ord(ch) for ch in host])
        if best is None or key > best[0]:
            best = (key, host)
    return best and best[1]


def main(t):
    c = t.cluster(3)
    extras = {}
    for name, (cpus, mem, vms) in HOSTS.items():
        path = mvtest.write_host_xml(os.path.join(c[name].dir, "host.xml"), cpus, mem, vms)
        extras[name] = {"libvirt_uri": "test://" + path}
    c.start_each(extras)
    c.wait_converged(timeout=30)
    c.wait_states(timeout=30)
    n1, n2, n3 = c["n1"], c["n2"], c["n3"]
    xml_dir = os.path.join(t.tmp, "xml")
    os.makedirs(xml_dir)

    def xml_file(name, vcpus, mem, uuid=None, text=None):
        p = os.path.join(xml_dir, "%s.xml" % name)
        with open(p, "w") as f:
            f.write(text if text is not None else mvtest.domain_xml(name, vcpus, mem, uuid))
        return p

    # 1. placement without --node, all through n1: each VM goes where the
    #    most memory is left after placing it (the expectation is computed
    #    from n1's own view, as the agent computes it)
    for name, vcpus, mem in (("place-a", 1, 1 * GIB), ("place-b", 2, 8 * GIB),
                             ("place-c", 1, 2 * GIB), ("place-d", 1, 1 * GIB)):
        view = snapshot(n1)
        want = expected_place(view, vcpus, mem)
        check(want is not None, "test bug: no host fits %s" % name)
        reply = op(n1, "vm", "create", "--xml", xml_file(name, vcpus, mem), want_node=want)
        check(reply.get("vm") == name, "create reply names %r, want %s" % (reply.get("vm"), name))
        wait_vm(c, name, state_is(want, "running"), "running on %s" % want)
    placed = {n: v[0] for n, v in snapshot(n1).items() if n.startswith("place-")}
    log("placement through n1: %s" % placed)
    check(len(set(placed.values())) == 3,
          "placement used only %s; the test expects every host chosen once" %
          sorted(set(placed.values())))

    # a VM no host has room for: refused, nothing anywhere changes
    refused(c, n1, ("vm", "create", "--xml", xml_file("too-big", 1, 15 * GIB)),
            r"no host has room", "too-big VM")
    # the message names each host's reason
    r = n2.cli("vm", "create", "--xml", xml_file("too-big", 1, 15 * GIB), errors="replace")
    check(all(h in r.stderr for h in HOSTS), "no-room error does not name every host: %r" %
          r.stderr.strip())

    # 2. --node: pinned to n3, created through n2, not started
    op(n2, "vm", "create", "--xml", xml_file("pin-1", 2, 512 * MIB), "--node", "n3",
       "--no-start", want_node="n3")
    wait_vm(c, "pin-1", state_is("n3", "shut off", "stopped"),
            "defined (shut off, desired stopped) on n3")
    # --node naming the entry node itself works too
    op(n2, "vm", "create", "--xml", xml_file("pin-2", 1, 256 * MIB), "--node", "n2",
       want_node="n2")
    wait_vm(c, "pin-2", state_is("n2", "running", "running"), "running on n2, desired running")

    # 3. lifecycle of pin-1 (owned by n3) driven from n1 and n2: forwarded;
    #    each action sets the desired state
    mark = len(n3.log_text())
    op(n1, "vm", "start", "pin-1", want_node="n3")
    wait_vm(c, "pin-1", state_is("n3", "running", "running"), "running, desired running")
    # the owner logs who asked, through whom (issue 13)
    who = r'forwarded request op="vm action" from=n1 caller=test-operator role=operator'
    check(who in n3.log_text()[mark:], "n3 did not log the forwarded request's caller")
    op(n2, "vm", "shutdown", "pin-1", want_node="n3")
    wait_vm(c, "pin-1", state_is("n3", "shut off", "stopped"),
            "shut off after shutdown, desired stopped")
    op(n1, "vm", "start", "pin-1", want_node="n3")
    wait_vm(c, "pin-1", state_is("n3", "running", "running"), "running again, desired running")
    uuid = n2.vms()["pin-1"]["uuid"]
    op(n1, "vm", "destroy", uuid, want_node="n3")  # by UUID
    wait_vm(c, "pin-1", state_is("n3", "shut off", "stopped"),
            "shut off after destroy, desired stopped")
    op(n1, "vm", "undefine", "pin-1", want_node="n3")
    wait_vm(c, "pin-1", lambda v: v is None, "gone")
    # a local one (n1's own VM through n1) for contrast
    op(n1, "vm", "destroy", "n1-web", want_node="n1")
    wait_vm(c, "n1-web", state_is("n1", "shut off"), "shut off")
    op(n1, "vm", "start", "n1-web", want_node="n1")
    wait_vm(c, "n1-web", state_is("n1", "running"), "running")

    # 4. set-ha through n1 for a VM on n2, then off again through n3
    op(n1, "vm", "set-ha", "n2-db", "on", "--priority", "7", want_node="n2")
    wait_vm(c, "n2-db", lambda v: (v is not None and v["ha"] and v["priority"] == 7 and
                                   v["desired"] == "running"),
            "HA on, priority 7, desired running (it runs)")
    op(n3, "vm", "set-ha", "n2-db", "on", want_node="n2")  # priority kept
    c.wait_propagated()
    for a in c.running():
        v = a.vms()["n2-db"]
        check(v["ha"] and v["priority"] == 7, "%s: set-ha without --priority changed it: %s" %
              (a.name, v))
    op(n3, "vm", "set-ha", "n2-db", "off", want_node="n2")
    wait_vm(c, "n2-db", lambda v: v is not None and not v["ha"], "HA off")
    r = n3.cli("vm", "n2-db", role="viewer", errors="replace")
    check(r.returncode == 0 and mvtest.grep(r.stdout, r"ha:\s+off, priority 7"),
          "vm n2-db text: %r" % r.stdout)
    op(n2, "vm", "set-ha", "place-a", "on", "--priority", "1000", want_node=placed["place-a"])
    wait_vm(c, "place-a", lambda v: v is not None and v["ha"] and v["priority"] == 1000,
            "HA on, priority 1000")

    # 4b. desired state of HA VMs: set-ha on a stopped VM keeps it stopped
    #     (enabling HA never starts a VM); off leaves the desired state
    op(n1, "vm", "set-ha", "n2-off", "on", want_node="n2")
    wait_vm(c, "n2-off", lambda v: (v is not None and v["ha"] and v["state"] == "shut off" and
                                    v["desired"] == "stopped"),
            "HA on, still shut off, desired stopped")
    op(n3, "vm", "set-ha", "n2-off", "off", want_node="n2")
    wait_vm(c, "n2-off", lambda v: (v is not None and not v["ha"] and v["state"] == "shut off" and
                                    v["desired"] == "stopped"),
            "HA off, desired still stopped")
    #     the operator's destroy, shutdown and start of an HA VM (through a
    #     node that does not own it) set it, and an HA VM the operator
    #     stopped is not marked as owed a restart
    pa = placed["place-a"]
    other = [h for h in HOSTS if h != pa][0]
    op(c[other], "vm", "destroy", "place-a", want_node=pa)
    wait_vm(c, "place-a", state_is(pa, "shut off", "stopped"), "HA VM destroyed, desired stopped")
    r = n1.cli("vms", role="viewer", errors="replace")
    row = [l for l in r.stdout.splitlines() if l.startswith("place-a ")]
    check(r.returncode == 0 and len(row) == 1 and "^" not in row[0] and
          "should be running" not in r.stdout,
          "vms marks an HA VM the operator stopped as owed a restart: %r" % r.stdout)
    op(c[other], "vm", "start", "place-a", want_node=pa)
    wait_vm(c, "place-a", state_is(pa, "running", "running"), "HA VM started, desired running")
    op(n1, "vm", "shutdown", "place-a", want_node=pa)
    wait_vm(c, "place-a", state_is(pa, "shut off", "stopped"), "HA VM shut down, desired stopped")
    op(n1, "vm", "start", "place-a", want_node=pa)
    wait_vm(c, "place-a", state_is(pa, "running", "running"), "HA VM running again")

    # 5. error paths, each through a node that does not own the VM
    c.wait_propagated()  # every view settled before comparing snapshots
    refused(c, n3, ("vm", "create", "--xml", xml_file("n2-db", 1, 256 * MIB)),
            r"already exists", "duplicate name")
    refused(c, n3, ("vm", "create", "--xml",
                    xml_file("dup-uuid", 1, 256 * MIB, uuid=HOSTS["n1"][2][0]["uuid"])),
            r"already exists|already used", "duplicate UUID")
    refused(c, n1, ("vm", "create", "--xml", xml_file("bad", 0, 0, text="<domain><name>bad")),
            r"xml|parse", "malformed XML")
    refused(c, n1, ("vm", "create", "--xml",
                    xml_file("noname", 0, 0, text="<domain type='test'><memory>1024</memory>"
                                                  "<vcpu>1</vcpu></domain>")),
            r"name", "domain XML without a name")
    refused(c, n1, ("vm", "create", "--xml", xml_file("ghost-host", 1, 256 * MIB),
                    "--node", "ghost"), r"no host named 'ghost'", "--node unknown host")
    refused(c, n1, ("vm", "undefine", "n2-db"), r"running.*(destroy|shut)", "undefine running")
    refused(c, n3, ("vm", "start", "no-such-vm"), r"no VM named 'no-such-vm'", "unknown VM")
    refused(c, n3, ("vm", "set-ha", "no-such-vm", "on"), r"no VM named 'no-such-vm'",
            "set-ha unknown VM")
    refused(c, n1, ("vm", "set-ha", "n2-db", "on", "--priority", "1001"), r"priority",
            "priority out of range (CLI usage error)", want_rc=2)
    refused(c, n1, ("vm", "start", "n2-db", "--priority", "5"), r"--priority goes with 'vm set-ha'",
            "--priority on a vm action (CLI usage error: it would be ignored)", want_rc=2)
    refused(c, n1, ("vm", "create", "--xml", xml_file("grouped", 1, 256 * MIB), "--group", "g"),
            r"--group goes with 'vm set-ha'",
            "--group on vm create (CLI usage error: it would be ignored)", want_rc=2)
    refused(c, n1, ("vm", "start", "n2-db"), r"already|running|active", "start a running VM")
    for args in (("vm", "destroy", "n2-db"), ("vm", "set-ha", "n2-db", "on"),
                 ("vm", "create", "--xml", xml_file("viewer-vm", 1, 256 * MIB))):
        refused(c, n1, args, r"permission denied", "viewer %s" % " ".join(args[:2]),
                role="viewer")

    # XML that parses but libvirt on the owner rejects: the owner's error
    # comes back through the forwarding node
    refused(c, n1, ("vm", "create", "--xml",
                    xml_file("badtype", 0, 0, text="<domain type='no-such-type'><name>badtype"
                                                   "</name><memory>262144</memory><vcpu>1</vcpu>"
                                                   "<os><type>hvm</type></os></domain>"),
                    "--node", "n3"), r"type|unsupported|invalid|cannot", "XML libvirt rejects")

    # nothing above changed anything: every view agrees once all has spread
    c.wait_propagated()
    before = snapshot(n1)
    for a in c.running():
        check(snapshot(a) == before, "%s's view differs from n1's: %s vs %s" %
              (a.name, snapshot(a), before))
    check(all(a.alive() for a in c.agents.values()), "an agent exited")

    # 6. a host that is down: n3 leaves; creating on it or acting on its
    #    VMs is refused with a clear message
    n3.signal(signal.SIGTERM)
    n3.wait_exit(15)
    c.wait_state("n3", ("left", "dead"), timeout=15)
    refused(c, n1, ("vm", "create", "--xml", xml_file("on-down", 1, 256 * MIB),
                    "--node", "n3"), r"n3.*not alive|n3.*(left|dead)", "create on a down host")
    refused(c, n2, ("vm", "destroy", "place-c"), r"n3.*(left|dead|not a member)|no VM",
            "destroy a VM of a down host")

    # 7. a host that is not quorate: n4 alone, started with a seed nobody
    #    answers at (so it expects a cluster and has no majority). Its HA VM
    #    solo-ha is shut off with metadata of an older version (no desired
    #    attribute: it should run), solo-plain is a plain VM.
    n4 = c.add("n4")
    nobody = "127.0.0.1:%d" % t.port()
    path = mvtest.write_host_xml(os.path.join(n4.dir, "host.xml"), 4, 8 * GIB, [
        dict(name="solo-ha", uuid="6d657368-0003-0104-0000-000000000001", vcpus=1,
             memory_kib=256 * MIB, running=False,
             meshvisor={"ha": "yes", "priority": "5", "epoch": "2"}),
        dict(name="solo-plain", uuid="6d657368-0003-0104-0000-000000000002", vcpus=1,
             memory_kib=256 * MIB, running=False)])
    n4.start(join=[nobody], extra={"libvirt_uri": "test://" + path})

    def solo(name):
        return mvtest.wait_until(lambda: n4.vms().get(name), 10, "%s in n4's vms" % name)
    v = solo("solo-ha")
    check(v["ha"] and v["state"] == "shut off" and v["desired"] == "running",
          "solo-ha on n4: %s" % v)
    check(n4.nodes()["n4"].get("quorate") is not True, "n4 alone says it is quorate")
    # `vms` marks it, and explains the mark; `vm` says it too
    r = n4.cli("vms", role="viewer", errors="replace")
    log("vms on n4:\n%s" % r.stdout)
    row = [l for l in r.stdout.splitlines() if l.startswith("solo-ha ")]
    check(r.returncode == 0 and len(row) == 1 and "shut off^" in row[0] and
          mvtest.grep(r.stdout, r"\(\^: an HA VM that should be running and is not"),
          "vms on n4 does not mark solo-ha as wanting to run: %r" % r.stdout)
    plain = [l for l in r.stdout.splitlines() if l.startswith("solo-plain ")]
    check(len(plain) == 1 and "^" not in plain[0], "a plain VM is marked: %r" % r.stdout)
    r = n4.cli("vm", "solo-ha", role="viewer", errors="replace")
    check(r.returncode == 0 and mvtest.grep(r.stdout, r"desired:\s+running \(NOT RUNNING"),
          "vm solo-ha text: %r" % r.stdout)
    # the start of the HA VM is refused with the reason, and changes nothing
    before = n4.vms()
    r = n4.cli("vm", "start", "solo-ha", errors="replace")
    log("vm start solo-ha on n4: exit %d, stderr: %s" % (r.returncode, r.stderr.strip()))
    check(r.returncode == 1 and
          mvtest.grep(r.stderr, r"n4 is not quorate.*HA VM starts only on a quorate host"),
          "HA start on a host without quorum: exit %d, %r" % (r.returncode, r.stderr.strip()))
    check(n4.vms() == before, "the refused start changed n4's VMs: %s -> %s" %
          (before, n4.vms()))
    check(not mvtest.grep(n4.log_text(), r"vm started name=solo-ha"),
          "n4 logged starting solo-ha")
    # so is creating and starting a VM whose XML says HA: defined, not started
    ha_xml = mvtest.domain_xml("solo-new", 1, 256 * MIB).replace(
        "<os>", '<metadata><meshvisor:vm xmlns:meshvisor="https://meshvisor.dev/xmlns/vm/1" '
        'ha="yes" priority="1" epoch="0"/></metadata>\n  <os>')
    r = n4.cli("vm", "create", "--xml", xml_file("solo-new", 0, 0, text=ha_xml),
               errors="replace")
    check(r.returncode == 1 and mvtest.grep(r.stderr, r"defined 'solo-new' on n4 but did not "
                                                      r"start it: n4 is not quorate"),
          "create --start of an HA VM on n4: exit %d, %r" % (r.returncode, r.stderr.strip()))
    v = solo("solo-new")
    check(v["ha"] and v["state"] == "shut off" and v["desired"] == "stopped",
          "solo-new after the refused start: %s" % v)
    # a plain VM starts there
    op(n4, "vm", "start", "solo-plain", want_node="n4")
    mvtest.wait_until(lambda: (n4.vms().get("solo-plain") or {}).get("state") == "running", 10,
                      "solo-plain running on n4")
    # destroy of the HA VM that is already stopped records that it stays
    # stopped: the mark goes away
    reply = op(n4, "vm", "destroy", "solo-ha", want_node="n4")
    check("stays stopped" in reply.get("message", ""), "destroy of stopped solo-ha: %s" % reply)
    mvtest.wait_until(lambda: (n4.vms().get("solo-ha") or {}).get("desired") == "stopped", 10,
                      "solo-ha desired stopped on n4")
    r = n4.cli("vms", role="viewer", errors="replace")
    check(r.returncode == 0 and "^" not in r.stdout, "vms on n4 still marks a VM: %r" % r.stdout)
    # a second destroy: nothing to do, refused as before
    r = n4.cli("vm", "destroy", "solo-ha", errors="replace")
    check(r.returncode == 1 and mvtest.grep(r.stderr, r"not running"),
          "second destroy of solo-ha: exit %d, %r" % (r.returncode, r.stderr.strip()))


mvtest.run(main)
