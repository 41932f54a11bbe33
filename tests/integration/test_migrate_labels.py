#!/usr/bin/env python3
"""`migrate --same KEY`: the target must share the VM's host's label value.

Four hosts on libvirt's test driver: n1 and n3 in zone a (n3 in rack r2,
with ssd=yes), n2 and n4 in zone b; n2 has by far the most room, so
without a constraint it is the best target. Checks:
1. `migrate VM --same zone` from n1 lands on n3 (zone a), not on n2.
2. `--same zone --same rack` with no host left in the same zone and rack
   is refused, the reason names the hosts and their values, nothing moves.
3. `--to n2 --same zone` is refused (n2 is in zone b), nothing moves.
4. A free-form label key works like zone (`--same ssd`).
5. Usage: --same with another command is a usage error (exit 2)."""
import os
import time

import mvtest
from mvtest import check, log

GIB = 1024 * 1024
LEASE_MS = 3000

HOSTS = {  # name: cpus, memory, zone, rack, labels, vms
    "n1": (4, 8 * GIB, "a", "r1", [], [
        dict(name="l-web", uuid="6d657368-0005-0001-0000-000000000001", vcpus=1,
             memory_kib=1 * GIB)]),
    "n2": (16, 64 * GIB, "b", "r1", [], []),
    "n3": (4, 8 * GIB, "a", "r2", ["ssd=yes"], []),
    "n4": (4, 8 * GIB, "b", "r2", ["ssd=yes"], []),
}


def host_of(agent, vm):
    vms = agent.vms()
    return vms[vm]["node"] if vm in vms else None


def wait_host(c, vm, host, timeout=5.0):
    def pred():
        seen = {a.name: host_of(a, vm) for a in c.running()}
        return seen if all(h == host for h in seen.values()) else None
    return mvtest.wait_until(pred, timeout, "%s on %s everywhere" % (vm, host))


def main(t):
    c = t.cluster(4)
    extras = {}
    for name, (cpus, mem, zone, rack, labels, vms) in HOSTS.items():
        path = mvtest.write_host_xml(os.path.join(c[name].dir, "host.xml"), cpus, mem, vms)
        extras[name] = {"libvirt_uri": "test://" + path,
                        "migration": {"lease_ms": LEASE_MS},
                        "node": {"zone": zone, "rack": rack, "labels": labels}}
    c.start_each(extras)
    c.wait_converged(timeout=30)
    c.wait_states(timeout=30)
    time.sleep(LEASE_MS / 1000.0 + 0.5)  # past every agent's "starting" lease
    n1, n2 = c["n1"], c["n2"]

    # 1. zone a keeps it off n2 (the roomiest host, in zone b)
    r = n2.cli("migrate", "l-web", "--same", "zone", errors="replace", timeout=60)
    check(r.returncode == 0, "migrate --same zone failed: %r %r" % (r.stdout, r.stderr))
    wait_host(c, "l-web", "n3")
    log("--same zone: l-web moved n1 -> n3 (zone a), not to n2 (zone b, most room)")

    # 2. no host shares both zone a and rack r2 with n3 any more: refused
    before = {a.name: host_of(a, "l-web") for a in c.running()}
    r = n1.cli("migrate", "l-web", "--same", "zone", "--same", "rack", errors="replace",
               timeout=60)
    check(r.returncode == 1, "expected a refusal, got %d %r" % (r.returncode, r.stdout))
    check("not sharing labels" in r.stderr and "zone" in r.stderr and "rack" in r.stderr,
          "refusal does not explain the labels: %r" % r.stderr)
    check({a.name: host_of(a, "l-web") for a in c.running()} == before,
          "a refused move changed something")
    log("--same zone --same rack: refused: %s" % r.stderr.strip())

    # 3. an explicit target in another zone is refused
    r = n1.cli("migrate", "l-web", "--to", "n2", "--same", "zone", errors="replace",
               timeout=60)
    check(r.returncode == 1 and "does not share" in r.stderr and "zone=b" in r.stderr,
          "--to n2 --same zone: %d %r" % (r.returncode, r.stderr))
    check(host_of(n1, "l-web") == "n3", "l-web moved despite the refusal")

    # 4. a free-form label: ssd=yes is on n3 and n4 only
    r = n1.cli("migrate", "l-web", "--same", "ssd", errors="replace", timeout=60)
    check(r.returncode == 0, "migrate --same ssd failed: %r" % r.stderr)
    wait_host(c, "l-web", "n4")
    log("--same ssd: l-web moved n3 -> n4 (ssd=yes)")

    # 5. usage
    r = n1.cli("vms", "--same", "zone", errors="replace")
    check(r.returncode == 2 and "--same" in r.stderr, "--same with vms: %r" % r.stderr)


mvtest.run(main)
