#!/usr/bin/env python3
"""libvirt connection lost and regained shows in health while the agent
keeps answering; set-ha survives an agent restart.

A real libvirtd runs in the test's temporary directory: its own config
(unix_sock_dir there, no authentication), its own pid file, no loadable
drivers (LIBVIRT_DRIVER_DIR points at an empty directory, so only the
built-in test and remote drivers exist and nothing like the QEMU driver
takes system-wide locks), and, when `unshare` allows it, a private tmpfs on
/run so it touches nothing of the machine's. Agent n3 talks to it as
`test+unix:///default?socket=TMP/.../libvirt-sock`: the remote driver to
the daemon's test driver, so no QEMU is needed. n1 and n2 use the embedded
test driver.

1. Everyone sees n3 healthy; `status` on n3 says libvirt is reachable.
2. set-ha persists across an agent restart: a VM defined through n1 on
   n3, HA set through n2, the metadata visible to virsh in the project's
   XML namespace; n3's agent is killed -9 and restarted (the daemon keeps
   the domain); `vms` on every node shows HA on with the priority again.
   (The daemon's test:///default state lives while some connection holds
   it, so a virsh process keeps one open during the restart; a real
   hypervisor keeps persistent domains on disk.)
3. The daemon is killed -9: within a bound n3's `status` shows libvirt
   unreachable with libvirt's error, and `nodes` on n1 and n2 shows n3 as
   libvirt-down; n3 keeps answering every read, membership stays alive
   everywhere, and a create pinned to n3 is refused clearly.
4. The daemon is restarted on the same socket: n3 reconnects by itself
   (backoff) and is healthy again everywhere."""
import os
import shutil
import signal
import subprocess
import time

import mvtest
from mvtest import check, log

META_NS = "https://meshvisor.dev/xmlns/vm/1"


class Libvirtd:
    """A private libvirtd under dir; killed by the harness's cleanup."""

    def __init__(self, t, d):
        self.t = t
        self.dir = d
        self.sock_dir = os.path.join(d, "sock")
        self.sock = os.path.join(self.sock_dir, "libvirt-sock")
        self.pid_file = os.path.join(d, "libvirtd.pid")
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
            else:
                log("no private /run for libvirtd (unshare: %s)" % r.stdout.strip())
        for p in (self.sock_dir, self.no_drivers):
            os.makedirs(p, exist_ok=True)
        with open(self.conf, "w") as f:
            f.write('unix_sock_dir = "%s"\n' % self.sock_dir)
            f.write('unix_sock_rw_perms = "0700"\n')
            f.write('unix_sock_ro_perms = "0700"\n')
            f.write('auth_unix_rw = "none"\nauth_unix_ro = "none"\n')
            f.write('log_outputs = "3:stderr"\n')
            f.write("keepalive_interval = 1\nkeepalive_count = 3\n")

    @property
    def uri(self):
        return "test+unix:///default?socket=%s" % self.sock

    def start(self, timeout=20):
        self.log_path = os.path.join(self.dir, "libvirtd-%d.log" % self.starts)
        self.starts += 1
        cmd = [self.binary, "--config", self.conf, "--pid-file", self.pid_file]
        if self.unshare:
            # exec keeps one pid: what we kill is the daemon itself
            cmd = [self.unshare, "--mount", "--propagation", "private", "sh", "-c",
                   'mount -t tmpfs tmpfs /run && exec "$@"', "sh"] + cmd
        env = dict(os.environ, LIBVIRT_DRIVER_DIR=self.no_drivers)
        logf = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env,
                                     preexec_fn=mvtest._child_setup)
        logf.close()
        mvtest._PROCS.append(self.proc)
        log("started libvirtd pid %d (%s), socket %s" %
            (self.proc.pid, "private /run" if self.unshare else "shared /run", self.sock))

        def ready():
            if self.proc.poll() is not None:
                raise mvtest.TestFailure("libvirtd exited with %s during start:\n%s" %
                                         (self.proc.returncode, self.log_tail()))
            r = self.virsh("uri", check_rc=False)
            return r.returncode == 0
        t0 = time.monotonic()
        mvtest.wait_until(ready, timeout, "libvirtd to answer on %s" % self.sock, 0.1)
        log("libvirtd answers after %.2fs" % (time.monotonic() - t0))

    def kill(self):
        log("killing libvirtd (pid %d) with SIGKILL" % self.proc.pid)
        self.proc.kill()
        self.proc.wait(timeout=10)

    def virsh(self, *args, check_rc=True):
        r = subprocess.run(["virsh", "-q", "-c", self.uri] + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=15,
                           stdin=subprocess.DEVNULL)
        if check_rc and r.returncode != 0:
            raise mvtest.TestFailure("virsh %s failed (exit %d): %s" %
                                     (" ".join(args), r.returncode, r.stderr.strip()))
        return r

    def hold(self):
        """An idle virsh shell holding a connection, so the daemon's
        test:///default state outlives the agent's connection."""
        p = subprocess.Popen(["virsh", "-c", self.uri], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             preexec_fn=mvtest._child_setup)
        mvtest._PROCS.append(p)
        return p

    def log_tail(self, n=30):
        try:
            with open(self.log_path, errors="replace") as f:
                return "\n".join(f.read().splitlines()[-n:])
        except OSError:
            return "(no log)"


def nodeinfo(lv):
    out = {}
    for line in lv.virsh("nodeinfo").stdout.splitlines():
        k, _, v = line.partition(":")
        out[k.strip()] = v.strip()
    return int(out["CPU(s)"]), int(out["Memory size"].split()[0])


def health_everywhere(c, name, reachable):
    """Every running agent's `nodes` shows host `name` with the given
    libvirt health; returns {observer: (reachable, error)} when true."""
    seen = {}
    for a in c.running():
        n = a.nodes().get(name)
        seen[a.name] = n and (n.get("libvirt_reachable"), n.get("libvirt_error"))
        if not n or n.get("libvirt_reachable") != reachable:
            return None
    return seen


def main(t):
    lv = Libvirtd(t, os.path.join(t.tmp, "libvirtd"))
    lv.start()
    cpus, mem = nodeinfo(lv)
    log("libvirtd's test driver host: %d CPUs, %d KiB" % (cpus, mem))

    c = t.cluster(3)
    extras = {"n3": {"libvirt_uri": lv.uri}}
    for name in ("n1", "n2"):
        path = mvtest.write_host_xml(os.path.join(c[name].dir, "host.xml"), 4, 8 * 1024 * 1024, [
            dict(name="%s-vm" % name, uuid="6d657368-0003-02%02d-0000-000000000001" %
                 int(name[1:]), vcpus=1, memory_kib=512 * 1024)])
        extras[name] = {"libvirt_uri": "test://" + path}
    holder = lv.hold()
    c.start_each(extras)
    c.wait_converged(timeout=30)
    c.wait_states(timeout=30)
    n1, n2, n3 = c["n1"], c["n2"], c["n3"]

    # 1. healthy: status on n3 and nodes everywhere
    st = n3.status()
    check(st["libvirt_uri"] == lv.uri and st["libvirt_reachable"] is True and
          st["libvirt_error"] == "",
          "n3 status: uri %r reachable %r error %r" %
          (st["libvirt_uri"], st["libvirt_reachable"], st["libvirt_error"]))
    for a in c.running():
        n = a.nodes()["n3"]
        check(n["libvirt_reachable"] is True and n["cpus"] == cpus and n["memory_kib"] == mem,
              "%s sees n3 as %s" % (a.name, {k: n.get(k) for k in
                                             ("libvirt_reachable", "cpus", "memory_kib")}))
    log("n3 on libvirtd: reachable, %d CPUs, %d KiB, VMs %s" %
        (cpus, mem, sorted(n1.vms(node="n3"))))

    # 2. set-ha survives a restart of n3's agent
    xml = os.path.join(t.tmp, "ha-vm.xml")
    with open(xml, "w") as f:
        f.write(mvtest.domain_xml("ha-vm", 1, 256 * 1024))
    r = n1.cli("vm", "create", "--xml", xml, "--node", "n3", "--json")
    check(r.returncode == 0 and '"node":"n3"' in r.stdout.replace(" ", ""),
          "vm create on n3 through n1: exit %d %r %r" % (r.returncode, r.stdout, r.stderr))
    r = n2.cli("vm", "set-ha", "ha-vm", "on", "--priority", "42", "--json")
    check(r.returncode == 0 and '"node":"n3"' in r.stdout.replace(" ", ""),
          "set-ha through n2: exit %d %r %r" % (r.returncode, r.stdout, r.stderr))

    def ha_everywhere():
        for a in c.running():
            v = a.vms().get("ha-vm")
            if not v or v["node"] != "n3" or not v["ha"] or v["priority"] != 42:
                return None
        return True
    mvtest.wait_until(ha_everywhere, 10, "ha-vm on n3 with HA on, priority 42, everywhere")
    meta = lv.virsh("metadata", "ha-vm", META_NS).stdout.strip()
    log("virsh metadata ha-vm: %s" % meta)
    check('ha="yes"' in meta and 'priority="42"' in meta,
          "virsh does not show the HA metadata: %r" % meta)
    meta_cfg = lv.virsh("metadata", "ha-vm", META_NS, "--config").stdout.strip()
    check('ha="yes"' in meta_cfg, "HA metadata not in the persistent config: %r" % meta_cfg)

    n3.signal(signal.SIGKILL)
    n3.wait_exit(5)
    n3.start(join=[n1.peer_addr], extra=extras["n3"])
    c.wait_converged(timeout=30)
    t0 = time.monotonic()

    def ha_after_restart():
        inc = n3.status()["incarnation"]
        for a in c.running():
            n = a.nodes().get("n3")
            if not n or n.get("incarnation") != inc:
                return None  # still the old incarnation's state
        return ha_everywhere()
    mvtest.wait_until(ha_after_restart, 15,
                      "restarted n3's state (HA on, priority 42) on every node")
    log("after kill -9 and restart of n3's agent, ha-vm still HA, priority 42, everywhere "
        "(%.2fs after convergence)" % (time.monotonic() - t0))
    holder.stdin.close()
    holder.wait(timeout=10)

    # 3. the daemon dies
    before = n3.log_text()
    lv.kill()
    t_kill = time.monotonic()
    bound = 10.0

    def down_on_n3():
        s = n3.status()
        return s if s["libvirt_reachable"] is False else None
    st = mvtest.wait_until(down_on_n3, bound, "n3 status to show libvirt unreachable", 0.1)
    t_status = time.monotonic() - t_kill
    log("n3 status after %.2fs: reachable=%s error=%r" %
        (t_status, st["libvirt_reachable"], st["libvirt_error"]))
    check(st["libvirt_error"].strip() != "", "n3 status has no libvirt error text")
    seen = mvtest.wait_until(lambda: health_everywhere(c, "n3", False), bound,
                             "every node to see n3's libvirt down", 0.1)
    t_all = time.monotonic() - t_kill
    log("n3 libvirt-down seen everywhere after %.2fs: %s" % (t_all, seen))
    for obs, (_, err) in seen.items():
        check(err, "%s sees n3 down without libvirt's error text" % obs)
    for a in (n1, n2):
        r = a.cli("nodes", role="viewer", errors="replace")
        row = [l for l in r.stdout.splitlines() if l.split()[:1] == ["n3"]]
        check(row and "libvirt-down" in row[0], "%s's nodes table row for n3: %r" %
              (a.name, row))
    r = n1.cli("node", "n3", role="viewer", errors="replace")
    check(r.returncode == 0 and "UNREACHABLE" in r.stdout, "node n3 on n1: %r" % r.stdout)
    # n3's VMs are not forgotten while its libvirt is away: the last known
    # inventory stays, marked stale (they most likely still run)
    for a in (n1, n2):
        vms = a.vms(node="n3")
        check("ha-vm" in vms and vms["ha-vm"]["stale"] is True,
              "%s lost n3's VMs (or did not mark them stale) while n3's libvirt is down: %r" %
              (a.name, vms))
        check(vms["ha-vm"]["ha"] is True, "%s: ha-vm lost its HA flag while stale" % a.name)

    # n3 keeps answering, and nobody's membership suffers, for a while
    t_end = time.monotonic() + 2.5
    answered = 0
    while time.monotonic() < t_end:
        check(n3.status()["libvirt_reachable"] is False, "n3 reachable while libvirtd is dead")
        n3.vms()
        n3.nodes()
        for obs, ms in c.views().items():
            bad = {n: m["state"] for n, m in ms.items() if m["state"] != "alive"}
            check(not bad, "%s sees %s while n3's libvirt is down" % (obs, bad))
        answered += 1
    log("n3 answered status/vms/nodes/members %d times while libvirt was down" % answered)
    log("n3's VMs as n1 sees them while n3's libvirt is down: %s" % sorted(n1.vms(node="n3")))
    xml2 = os.path.join(t.tmp, "down-vm.xml")
    with open(xml2, "w") as f:
        f.write(mvtest.domain_xml("down-vm", 1, 256 * 1024))
    r = n1.cli("vm", "create", "--xml", xml2, "--node", "n3", errors="replace")
    log("create pinned to n3 while its libvirt is down: exit %d, %s" %
        (r.returncode, r.stderr.strip()))
    check(r.returncode == 1 and mvtest.grep(r.stderr, r"libvirt.*(not reachable|unreachable)"),
          "create on n3 while libvirt is down: exit %d %r" % (r.returncode, r.stderr))
    check("down-vm" not in n1.vms(), "down-vm appeared after a refused create")
    text = n3.log_text()[len(before):]
    check(mvtest.grep(text, r"libvirt unreachable"), "n3 did not log losing libvirt")

    # 4. the daemon comes back; n3 reconnects on its own
    lv.start()
    t_up = time.monotonic()
    st = mvtest.wait_until(lambda: (lambda s: s if s["libvirt_reachable"] else None)(
        n3.status()), 40, "n3 to reconnect to libvirtd", 0.1)
    t_n3 = time.monotonic() - t_up
    check(st["libvirt_error"] == "", "n3 reconnected but keeps the error %r" %
          st["libvirt_error"])
    mvtest.wait_until(lambda: health_everywhere(c, "n3", True), 15,
                      "every node to see n3's libvirt back", 0.1)
    log("libvirtd back: n3 reconnected after %.2fs, healthy everywhere after %.2fs "
        "(libvirt was down %.2fs)" % (t_n3, time.monotonic() - t_up, t_up - t_kill))
    for a in c.running():
        n = a.nodes()["n3"]
        check(n["cpus"] == cpus and n["libvirt_error"] == "",
              "%s: n3 after reconnect %s" % (a.name, {k: n.get(k) for k in
                                                        ("cpus", "libvirt_error")}))
    c.wait_converged(timeout=10)
    text = n3.log_text()[len(before):]
    check(mvtest.grep(text, r"libvirt reachable"), "n3 did not log the reconnect")
    lv.kill()


mvtest.run(main)
