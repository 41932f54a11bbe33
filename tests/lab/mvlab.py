#!/usr/bin/env python3
"""mvlab — the project's lab: N fake hypervisor hosts on one machine.

Each lab host is a real system-mode libvirtd with the QEMU driver (guests
run under TCG: domain type 'qemu', no /dev/kvm) living in its own network,
mount and UTS namespaces, built the way shared/LAB-NOTES.md describes:

  - network namespace  mvlab-<id>-hN, one veth (eth0, 10.77.0.N/24) to a
    bridge (br0) in the lab's bridge namespace mvlab-<id>-br, which also
    holds 10.77.0.254 (the "operator's workstation");
  - mount namespace with private /etc and /var (overlays whose writable
    layers are ROOT/hosts/hN/{etc,var}-upper) and a private /run
    bind-mounted from ROOT/hosts/hN/run, so the daemon's socket is
    reachable from outside as
        qemu+unix:///system?socket=ROOT/hosts/hN/run/libvirt/libvirt-sock
    and, inside the host's network namespace, as qemu+tcp://10.77.0.N/system
    (libvirtd --listen, auth none: the namespace is private);
  - UTS namespace with hostname hN;
  - its own libvirtd.conf (distinct host_uuid, keepalive 1 s x 3) and
    qemu.conf (QEMU as root, no security driver, no cgroups, no
    namespaces, migration_host = its own address, its own incoming
    migration port range, keepalive 1 s x 3), and Debian's libvirt-qemu
    user in its private /etc/passwd;
  - a small init process (this file, mode _hostinit) that is the parent of
    libvirtd and a child subreaper (PR_SET_CHILD_SUBREAPER), so the QEMU
    processes libvirt daemonizes are reaped at once (PID 1 here reaps
    orphans only every ~1.4 s, which makes every libvirt stop slow).

Everything a host runs (init, libvirtd, QEMUs, agents started with
host.spawn) lives in the host's mount namespace, so host.kill() and the
teardown find every one of them by namespace and kill them by pid.
ROOT lives under /tmp (not under /var or /run, which hosts overmount), so
every host sees every other host's socket and the shared guest files.

The guest (guest.S, assembled here with GNU as) is a 512-byte boot sector
on a 1 MiB read-only virtio disk: it prints "mvguest tick N" to its serial
port once a second and rewrites 256 KiB of RAM every ~110 ms. Its serial
port is a file shared by all hosts (ROOT/guests/NAME/serial.log, append
mode), so the counter can be followed across migrations and restarts.

Library use (tests):

    import mvlab
    lab = mvlab.Lab(2).up()            # hosts h1, h2; lab.down() at exit
    h1 = lab.hosts[0]
    print(h1.uri, h1.netns, h1.ip)
    h1.virsh("list", "--all")
    g = lab.start_guest(h1, "g1", vcpus=1, mem_mib=64)
    lab.wait_guest_ticks("g1", 2)
    lab.guest_counter("g1")            # last "tick N" printed, or None
    lab.down()

Agents (meshvisor) inside the hosts: see LabAgents / lab.agents(...).

Command line (for humans; as root):

    python3 tests/lab/mvlab.py up 2 [--dir /tmp/mvlab] [--guest h1:g1]
    python3 tests/lab/mvlab.py status [--dir /tmp/mvlab]
    python3 tests/lab/mvlab.py down [--dir /tmp/mvlab]

Environment: MV_KEEP_TMP=1 keeps the lab's directory after down().
"""
import argparse
import atexit
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid as uuidlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

LAB_NET = "10.77.0"            # hosts are .1 .. .N, the bridge namespace .254
BRIDGE_IP = LAB_NET + ".254"
MIGRATION_PORT_BASE = 49152    # host N: BASE + 100*N .. + 99
LIBVIRT_TCP_PORT = 16509
AGENT_PEER_PORT = 7946
AGENT_RPC_PORT = 7947

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

T0 = time.monotonic()


def log(msg):
    print("[%7.2fs] %s" % (time.monotonic() - T0, msg), flush=True)


try:  # share the integration harness's failure type when it is importable
    from mvtest import TestFailure  # noqa: E402
except Exception:  # pragma: no cover
    class TestFailure(Exception):
        pass


class LabError(TestFailure):
    """The lab could not be built or driven (not a product failure)."""


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def wait_until(pred, timeout, what, interval=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = pred()
        except LabError:
            raise  # the lab itself broke: waiting longer will not help
        except TestFailure as e:
            last = "error: %s" % e
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise TestFailure("timed out after %.1fs waiting for %s (last: %r)" %
                              (timeout, what, last))
        time.sleep(interval)


def sh(cmd, what=None, timeout=30, check_rc=True, input=None):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout, input=input,
                       stdin=None if input is not None else subprocess.DEVNULL)
    if check_rc and r.returncode != 0:
        raise LabError("%s failed (exit %d): %s\n%s%s" %
                       (what or cmd[0], r.returncode, " ".join(cmd), r.stdout, r.stderr))
    return r


def _pdeath_term():
    # the child gets SIGTERM when the process that started it dies; the
    # host init then tears its host down by itself
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _pdeath_kill():
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def ns_inode(pid, kind):
    """The inode of /proc/PID/ns/KIND, or None if the process is gone."""
    try:
        return os.stat("/proc/%d/ns/%s" % (pid, kind)).st_ino
    except (OSError, ValueError):
        return None


def pids_in_ns(kind, inode):
    """Every pid whose KIND namespace is the one with this inode."""
    out = []
    if not inode:
        return out
    for d in os.listdir("/proc"):
        if d.isdigit():
            pid = int(d)
            if pid != os.getpid() and ns_inode(pid, kind) == inode:
                out.append(pid)
    return out


def prerequisites():
    """Returns None when the lab can run here, else a reason to skip."""
    if os.geteuid() != 0:
        return "the lab needs root (namespaces, mounts)"
    for b in ("ip", "nsenter", "unshare", "virsh", "as", "ld"):
        if shutil.which(b) is None:
            return "%s not found (run deploy/install-lab-deps.sh)" % b
    for f in ("/usr/sbin/libvirtd", "/usr/bin/qemu-system-x86_64"):
        if not os.path.exists(f):
            return "%s not found (run deploy/install-lab-deps.sh)" % f
    drv = "/usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so"
    if not os.path.exists(drv):
        return "libvirt's QEMU driver is missing (libvirt-daemon-driver-qemu)"
    return None


# ---- the guest image -------------------------------------------------------

GUEST_SRC = os.path.join(HERE, "guest.S")
GUEST_DISK_BYTES = 1 << 20


def build_guest_image(out_dir):
    """Assembles guest.S into a 1 MiB raw disk image; returns its path."""
    os.makedirs(out_dir, exist_ok=True)
    obj = os.path.join(out_dir, "guest.o")
    binf = os.path.join(out_dir, "guest.bin")
    img = os.path.join(out_dir, "guest.img")
    sh(["as", "--32", "-o", obj, GUEST_SRC], "assemble guest.S")
    sh(["ld", "-m", "elf_i386", "-Ttext=0x7c00", "--oformat=binary", "-o", binf, obj],
       "link guest")
    data = open(binf, "rb").read()
    if len(data) != 512 or data[510:] != b"\x55\xaa":
        raise LabError("guest boot sector is %d bytes / bad signature" % len(data))
    with open(img, "wb") as f:
        f.write(data)
        f.truncate(GUEST_DISK_BYTES)
    return img


def guest_xml(name, image, serial, vcpus=1, mem_mib=64, uuid=None, metadata=""):
    """Domain XML of a lab guest (TCG, no NIC, read-only virtio boot disk,
    serial port appended to a file)."""
    uuid = uuid or str(uuidlib.uuid4())
    return """<domain type='qemu'>
  <name>{name}</name>
  <uuid>{uuid}</uuid>
  <metadata>{metadata}</metadata>
  <memory unit='MiB'>{mem}</memory>
  <currentMemory unit='MiB'>{mem}</currentMemory>
  <vcpu placement='static'>{vcpus}</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <cpu mode='custom' match='exact' check='none'><model fallback='forbid'>qemu64</model></cpu>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='{image}'/>
      <target dev='vda' bus='virtio'/>
      <readonly/>
    </disk>
    <controller type='usb' model='none'/>
    <serial type='file'>
      <source path='{serial}' append='on'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
""".format(name=name, uuid=uuid, mem=int(mem_mib), vcpus=int(vcpus), image=image,
           serial=serial, metadata=metadata)


TICK_RE = re.compile(r"mvguest (boot|tick (\d+))")


def parse_serial(text):
    """[(boot_index, tick)] from a guest's serial log; boot_index counts the
    "mvguest boot" lines (0 before the first)."""
    boots = 0
    out = []
    for m in TICK_RE.finditer(text):
        if m.group(1) == "boot":
            boots += 1
        else:
            out.append((boots, int(m.group(2))))
    return out


# ---- one host --------------------------------------------------------------

LIBVIRTD_CONF = """# written by tests/lab/mvlab.py for lab host {name}
host_uuid = "{host_uuid}"
listen_tls = 0
listen_tcp = 1
listen_addr = "{ip}"
tcp_port = "{tcp_port}"
auth_tcp = "none"
auth_unix_ro = "none"
auth_unix_rw = "none"
unix_sock_group = "root"
unix_sock_ro_perms = "0777"
unix_sock_rw_perms = "0770"
keepalive_interval = 1
keepalive_count = 3
log_outputs = "3:stderr"
"""

QEMU_CONF = """# written by tests/lab/mvlab.py for lab host {name}
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
migration_host = "{ip}"
migration_address = "{ip}"
migration_port_min = {mig_min}
migration_port_max = {mig_max}
keepalive_interval = 1
keepalive_count = 3
"""


class Host:
    def __init__(self, lab, index):
        self.lab = lab
        self.index = index
        self.name = "h%d" % index
        self.ip = "%s.%d" % (LAB_NET, index)
        self.dir = os.path.join(lab.root, "hosts", self.name)
        self.netns = "%s-%s" % (lab.prefix, self.name)
        self.host_uuid = str(uuidlib.uuid4())
        self.migration_ports = (MIGRATION_PORT_BASE + 100 * index,
                                MIGRATION_PORT_BASE + 100 * index + 99)
        self.init_proc = None     # Popen of the host init (this process started it)
        self.init_pid = None
        self.mnt_ino = None
        self.net_ino = None
        self.start_s = None       # seconds from spawn to libvirtd answering
        self.caps_s = None        # then seconds for its first `virsh capabilities`

    # -- addresses --
    @property
    def socket(self):
        return os.path.join(self.dir, "run", "libvirt", "libvirt-sock")

    @property
    def uri(self):
        """Reachable from the machine's root namespaces and from every host."""
        return "qemu+unix:///system?socket=%s" % self.socket

    @property
    def tcp_uri(self):
        """Reachable from inside the lab's network namespaces only."""
        return "qemu+tcp://%s/system" % self.ip

    @property
    def libvirtd_log(self):
        return os.path.join(self.dir, "libvirtd.log")

    def qemu_log(self, guest):
        return os.path.join(self.dir, "var-upper", "log", "libvirt", "qemu", guest + ".log")

    def to_json(self):
        return {"name": self.name, "index": self.index, "ip": self.ip, "netns": self.netns,
                "uri": self.uri, "tcp_uri": self.tcp_uri, "host_uuid": self.host_uuid,
                "init_pid": self.init_pid, "mnt_ino": self.mnt_ino, "net_ino": self.net_ino}

    # -- building --
    def prepare(self):
        """Writes the host's private /etc layer (configs, passwd) and dirs."""
        for d in ("etc-upper/libvirt", "etc-work", "var-upper", "var-work", "run"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        etc = os.path.join(self.dir, "etc-upper")
        fill = dict(name=self.name, ip=self.ip, host_uuid=self.host_uuid,
                    tcp_port=LIBVIRT_TCP_PORT, mig_min=self.migration_ports[0],
                    mig_max=self.migration_ports[1])
        with open(os.path.join(etc, "libvirt", "libvirtd.conf"), "w") as f:
            f.write(LIBVIRTD_CONF.format(**fill))
        with open(os.path.join(etc, "libvirt", "qemu.conf"), "w") as f:
            f.write(QEMU_CONF.format(**fill))
        with open(os.path.join(etc, "hostname"), "w") as f:
            f.write(self.name + "\n")
        with open(os.path.join(etc, "hosts"), "w") as f:
            f.write("127.0.0.1 localhost\n")
            for h in self.lab.hosts:
                f.write("%s %s\n" % (h.ip, h.name))
        # Debian's libvirt-qemu user and group: system-mode libvirtd looks
        # them up even when qemu.conf says root.
        passwd = open("/etc/passwd").read()
        group = open("/etc/group").read()
        if not re.search(r"^libvirt-qemu:", passwd, re.M):
            passwd += "libvirt-qemu:x:64055:64055:Libvirt Qemu,,,:/var/lib/libvirt:" \
                      "/usr/sbin/nologin\n"
        for g, gid in (("libvirt-qemu", 64055), ("kvm", 64056), ("libvirt", 64057)):
            if not re.search(r"^%s:" % g, group, re.M):
                group += "%s:x:%d:\n" % (g, gid)
        with open(os.path.join(etc, "passwd"), "w") as f:
            f.write(passwd)
        with open(os.path.join(etc, "group"), "w") as f:
            f.write(group)

    def start(self, detach=False):
        """Starts the host's init (which mounts, then runs libvirtd).
        detach: survive this process (for the CLI); otherwise the host
        tears itself down when this process dies."""
        check(self.init_proc is None or self.init_proc.poll() is not None,
              "%s already running" % self.name)
        logf = open(os.path.join(self.dir, "init.log"), "a")
        cmd = ["ip", "netns", "exec", self.netns,
               "unshare", "--mount", "--uts", "--propagation", "private",
               sys.executable, os.path.abspath(__file__), "_hostinit", self.dir, self.name]
        self._t_start = time.monotonic()
        self.init_proc = subprocess.Popen(
            cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=None if detach else _pdeath_term, start_new_session=detach,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})
        logf.close()
        self.init_pid = self.init_proc.pid
        return self

    def wait_ready(self, timeout=30):
        """Waits until libvirtd answers on its socket; records start_s."""
        def ready():
            if self.init_proc is not None and self.init_proc.poll() is not None:
                raise LabError("%s init exited with %s:\n%s\n%s" %
                               (self.name, self.init_proc.returncode,
                                self._tail(os.path.join(self.dir, "init.log")),
                                self._tail(self.libvirtd_log)))
            try:
                exited = "libvirtd exited" in open(os.path.join(self.dir, "init.log")).read()
            except OSError:
                exited = False
            if exited:
                raise LabError("libvirtd of %s exited during start:\n%s" %
                               (self.name, self._tail(self.libvirtd_log, 8)))
            if not os.path.exists(self.socket):
                return False
            r = subprocess.run(["virsh", "-c", self.uri, "-q", "uri"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=20,
                               stdin=subprocess.DEVNULL)
            return r.returncode == 0
        wait_until(ready, timeout, "libvirtd of %s to answer" % self.name, 0.05)
        self.start_s = time.monotonic() - self._t_start
        # the init is in the host's namespaces now (it unshared before exec)
        self.mnt_ino = ns_inode(self.init_pid, "mnt")
        self.net_ino = os.stat("/run/netns/" + self.netns).st_ino
        return self.start_s

    @staticmethod
    def _tail(path, n=30):
        try:
            with open(path, errors="replace") as f:
                return "\n".join(f.read().splitlines()[-n:])
        except OSError:
            return "(no %s)" % path

    # -- driving --
    def virsh(self, *args, timeout=60, check_rc=True):
        """Runs `virsh -c <this host's URI> ARGS`; returns stdout."""
        r = sh(["virsh", "-c", self.uri] + [str(a) for a in args],
               "virsh %s on %s" % (args[0] if args else "", self.name),
               timeout=timeout, check_rc=check_rc)
        return r.stdout if check_rc else r

    def domstate(self, name):
        r = self.virsh("domstate", name, check_rc=False)
        return r.stdout.strip() if r.returncode == 0 else None

    def nsenter_argv(self, argv, mount=True):
        """argv run inside this host: its network, UTS and (by default)
        mount namespaces."""
        pre = ["nsenter", "--target", str(self.init_pid), "--net", "--uts"]
        if mount:
            pre.append("--mount")
        return pre + ["--"] + list(argv)

    def spawn(self, argv, log_path, mount=True, env=None):
        """Starts argv inside this host (dies with this process); returns
        the Popen. Its output goes to log_path."""
        check(self.alive(), "%s is not running" % self.name)
        logf = open(log_path, "a")
        p = subprocess.Popen(self.nsenter_argv(argv, mount), stdout=logf,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             preexec_fn=_pdeath_kill, env=env)
        logf.close()
        return p

    def run(self, argv, timeout=30, mount=False, check_rc=False, input=None):
        """Runs argv in this host's network namespace (and mount namespace
        if asked) and waits; returns the CompletedProcess."""
        if self.alive():
            cmd = self.nsenter_argv(argv, mount)
        else:  # a killed host's network namespace outlives it
            check(not mount, "%s is not running (no mount namespace)" % self.name)
            cmd = ["nsenter", "--net=/run/netns/" + self.netns, "--"] + list(argv)
        return sh(cmd, " ".join(argv[:2]), timeout=timeout, check_rc=check_rc, input=input)

    def alive(self):
        return self.init_pid is not None and ns_inode(self.init_pid, "mnt") == self.mnt_ino \
            and self.mnt_ino is not None

    def pids(self):
        """Every process of this host: in its mount namespace or its
        network namespace."""
        s = set(pids_in_ns("mnt", self.mnt_ino))
        s.update(pids_in_ns("net", self.net_ino))
        return sorted(s)

    def link(self, up):
        """Cuts (up=False) or restores this host's link to the lab bridge."""
        sh(["ip", "-n", self.lab.bridge_ns, "link", "set", self.name,
            "up" if up else "down"], "link %s" % self.name)

    def kill(self):
        """SIGKILL to every process of the host (init, libvirtd, QEMUs,
        agents): the host "loses power". Its disk (overlay layers) stays,
        so start() + wait_ready() boots it again with its definitions."""
        for _ in range(20):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.05)
        if self.init_proc is not None:
            try:
                self.init_proc.wait(timeout=5)
            except Exception:
                pass
        left = self.pids()
        if left:
            raise LabError("%s: processes survive SIGKILL: %s" % (self.name, left))

    def stop(self, timeout=10):
        """Orderly: SIGTERM to the init (it stops libvirtd, then kills what
        is left in the host), then SIGKILL to anything remaining."""
        if self.init_pid and ns_inode(self.init_pid, "mnt") == self.mnt_ino:
            try:
                os.kill(self.init_pid, signal.SIGTERM)
            except OSError:
                pass
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and \
                    ns_inode(self.init_pid, "mnt") == self.mnt_ino:
                if self.init_proc is not None and self.init_proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.kill()


# ---- the lab ---------------------------------------------------------------

_LABS = []


class Lab:
    def __init__(self, n_hosts, root=None, lab_id=None, detach=False):
        check(1 <= n_hosts <= 50, "1..50 hosts")
        why = prerequisites()
        if why:
            raise LabError("lab cannot run here: " + why)
        self.id = lab_id or "%x" % (os.getpid() & 0xfffff)
        self.prefix = "mvlab-" + self.id
        self.bridge_ns = self.prefix + "-br"
        self.detach = detach
        self.root = root or tempfile.mkdtemp(prefix="mvlab-", dir="/tmp")
        self.root = os.path.abspath(self.root)
        for bad in ("/var", "/run", "/etc"):
            check(not (self.root + "/").startswith(bad + "/"),
                  "lab root must not be under %s (hosts overmount it)" % bad)
        os.makedirs(self.root, exist_ok=True)
        self.hosts = [Host(self, i) for i in range(1, n_hosts + 1)]
        self.guests = {}      # name -> dict(image, serial, xml)
        self.image = None
        self.timings = {}
        self._up = False

    def host(self, name):
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def __getitem__(self, i):
        return self.hosts[i]

    # -- network --
    def _netns_add(self, name):
        if os.path.exists("/run/netns/" + name):
            raise LabError("network namespace %s already exists (another lab? "
                           "`mvlab.py down` or `ip netns del %s`)" % (name, name))
        sh(["ip", "netns", "add", name], "ip netns add " + name)
        sh(["ip", "-n", name, "link", "set", "lo", "up"])

    def _build_network(self):
        br = self.bridge_ns
        self._netns_add(br)
        sh(["ip", "-n", br, "link", "add", "br0", "type", "bridge"])
        sh(["ip", "-n", br, "addr", "add", BRIDGE_IP + "/24", "dev", "br0"])
        sh(["ip", "-n", br, "link", "set", "br0", "up"])
        for h in self.hosts:
            self._netns_add(h.netns)
            # the pair is born inside the namespaces: nothing touches the
            # machine's own network namespace
            sh(["ip", "-n", br, "link", "add", h.name, "type", "veth", "peer", "name", "eth0",
                "netns", h.netns])
            sh(["ip", "-n", br, "link", "set", h.name, "master", "br0", "up"])
            sh(["ip", "-n", h.netns, "addr", "add", h.ip + "/24", "dev", "eth0"])
            sh(["ip", "-n", h.netns, "link", "set", "eth0", "up"])

    def exec_bridge(self, argv, timeout=30):
        """Runs argv in the bridge namespace (10.77.0.254, reaches every host)."""
        return sh(["ip", "netns", "exec", self.bridge_ns] + list(argv), argv[0],
                  timeout=timeout, check_rc=False)

    # -- lifecycle --
    def up(self, timeout=60):
        """Builds the network, writes every host, starts every libvirtd and
        waits until each answers. Returns self."""
        _LABS.append(self)
        t0 = time.monotonic()
        try:
            self.image = build_guest_image(os.path.join(self.root, "guest"))
            self.save()
            if not self.detach:
                self._start_guard()
            self._build_network()
            for h in self.hosts:
                h.prepare()
            for h in self.hosts:
                h.start(detach=self.detach)
            self.save()
            for h in self.hosts:
                h.wait_ready(timeout)
            # libvirt probes QEMU's capabilities on first use (~1 s cold);
            # do it now, on every host at once, so guests and agents start
            # at full speed
            errs = []

            def probe(h):
                try:
                    t = time.monotonic()
                    h.virsh("capabilities", timeout=timeout)
                    h.caps_s = time.monotonic() - t
                except Exception as e:
                    errs.append("%s: %s" % (h.name, e))
            ths = [threading.Thread(target=probe, args=(h,)) for h in self.hosts]
            for th in ths:
                th.start()
            for th in ths:
                th.join()
            if errs:
                raise LabError("capabilities: " + "; ".join(errs))
            for h in self.hosts:
                log("lab host %s up: %s, libvirtd answered %.2fs after start, "
                    "QEMU capabilities probed in %.2fs more" %
                    (h.name, h.ip, h.start_s, h.caps_s))
        except BaseException:
            self.down()
            raise
        self._up = True
        self.timings["up_s"] = time.monotonic() - t0
        self.save()
        log("lab %s up: %d hosts in %.2fs (root %s)" %
            (self.id, len(self.hosts), self.timings["up_s"], self.root))
        return self

    def _start_guard(self):
        """A guardian process that tears the lab down (namespaces, leftover
        processes, directory) if this process dies without doing it, even
        by SIGKILL: it gets SIGTERM through PR_SET_PDEATHSIG."""
        self._guard = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "_guard", self.root],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.root, "guard.log"), "a"),
            preexec_fn=_pdeath_term, start_new_session=True)

    def _stop_guard(self):
        g = getattr(self, "_guard", None)
        if g is not None and g.poll() is None:
            try:
                g.kill()
                g.wait(timeout=5)
            except Exception:
                pass
        self._guard = None

    def save(self):
        doc = {"id": self.id, "root": self.root, "image": self.image,
               "hosts": [h.to_json() for h in self.hosts],
               "guests": {n: {"serial": g["serial"]} for n, g in self.guests.items()}}
        with open(os.path.join(self.root, "lab.json"), "w") as f:
            json.dump(doc, f, indent=2)

    def down(self):
        """Kills every process of every host, deletes the namespaces and the
        lab directory (kept with MV_KEEP_TMP=1). Safe to call twice and on
        a half-built lab."""
        self._stop_guard()
        errors = []
        for h in self.hosts:
            try:
                if h.mnt_ino is None and h.init_pid:
                    h.mnt_ino = ns_inode(h.init_pid, "mnt")
                if h.net_ino is None and os.path.exists("/run/netns/" + h.netns):
                    h.net_ino = os.stat("/run/netns/" + h.netns).st_ino
                h.stop(timeout=5)
            except Exception as e:
                errors.append("%s: %s" % (h.name, e))
        for ns in [h.netns for h in self.hosts] + [self.bridge_ns]:
            if os.path.exists("/run/netns/" + ns):
                r = sh(["ip", "netns", "del", ns], check_rc=False)
                if r.returncode != 0:
                    errors.append("ip netns del %s: %s" % (ns, r.stderr.strip()))
        if self in _LABS:
            _LABS.remove(self)
        self._up = False
        if os.environ.get("MV_KEEP_TMP"):
            log("keeping %s (MV_KEEP_TMP)" % self.root)
        else:
            shutil.rmtree(self.root, ignore_errors=True)
        if errors:
            raise LabError("lab teardown: " + "; ".join(errors))

    # -- guests --
    def define_guest(self, host, name, vcpus=1, mem_mib=64, uuid=None, metadata=""):
        """Defines (does not start) a guest on host; returns its XML."""
        gdir = os.path.join(self.root, "guests", name)
        os.makedirs(gdir, exist_ok=True)
        serial = os.path.join(gdir, "serial.log")
        xml = guest_xml(name, self.image, serial, vcpus, mem_mib, uuid, metadata)
        path = os.path.join(gdir, "domain.xml")
        with open(path, "w") as f:
            f.write(xml)
        host.virsh("define", path)
        self.guests[name] = {"serial": serial, "xml": xml, "xml_path": path,
                             "vcpus": vcpus, "mem_mib": mem_mib}
        self.save()
        return xml

    def start_guest(self, host, name, vcpus=1, mem_mib=64, wait_boot=True, timeout=30):
        """Defines (persistent) and starts a guest on host. With wait_boot,
        waits for its "mvguest boot" line and records the seconds from
        `virsh start` to it in lab.timings['boot_s'][name]."""
        if name not in self.guests:
            self.define_guest(host, name, vcpus, mem_mib)
        t0 = time.monotonic()
        boots0 = self.guest_boots(name)
        host.virsh("start", name)
        t_started = time.monotonic() - t0
        if wait_boot:
            wait_until(lambda: self.guest_boots(name) > boots0, timeout,
                       "guest %s to print its boot line" % name, 0.02)
            dt = time.monotonic() - t0
            self.timings.setdefault("boot_s", {})[name] = dt
            log("guest %s started on %s (virsh start %.2fs, boot line after %.2fs)" %
                (name, host.name, t_started, dt))
        return name

    def guest_serial(self, name):
        try:
            with open(self.guests[name]["serial"], errors="replace") as f:
                return f.read()
        except (OSError, KeyError):
            return ""

    def guest_boots(self, name):
        return self.guest_serial(name).count("mvguest boot")

    def guest_counter(self, name):
        """The last counter the guest printed (after its latest boot), or
        None if it printed none yet."""
        ticks = parse_serial(self.guest_serial(name))
        return ticks[-1][1] if ticks else None

    def guest_mismatches(self, name):
        """How many times the guest found a page of its dirtied region not
        holding what it last wrote (0 unless memory was lost, e.g. by a
        migration that missed a dirty page)."""
        return self.guest_serial(name).count("mvguest MISMATCH")

    def wait_guest_ticks(self, name, n=1, timeout=20):
        """Waits until the guest prints n more ticks; returns the last. When
        it does not, the failure carries where the guest's CPU stands."""
        c0 = self.guest_counter(name) or 0
        boots = self.guest_boots(name)

        def pred():
            c = self.guest_counter(name)
            if self.guest_boots(name) != boots:
                return c if c and c >= n else None
            return c if c is not None and c >= c0 + n else None
        try:
            return wait_until(pred, timeout, "guest %s to count %d more" % (name, n), 0.1)
        except TestFailure as e:
            raise TestFailure("%s; last tick %r; %s" % (e, self.guest_counter(name),
                                                       self.guest_cpu_state(name)))

    def guest_cpu_state(self, name):
        """One line on where a guest's vCPU stands (QEMU monitor: run state,
        EIP, EFLAGS, halted, and the PIC's interrupt registers) on every
        host that runs it, for a guest that stopped counting."""
        out = []
        for h in self.hosts:
            if not h.alive() or h.domstate(name) is None:
                continue
            parts = [h.name + ":"]
            for cmd in ("info status", "info registers", "info pic"):
                r = h.virsh("qemu-monitor-command", name, "--hmp", cmd,
                            check_rc=False, timeout=10)
                text = r.stdout if r.returncode == 0 else r.stderr
                keep = [l.strip() for l in text.splitlines()
                        if cmd != "info registers" or
                        re.match(r"\s*(EIP|EFL|CS |SS |ESP|HLT|EAX)", l) or "HLT=" in l]
                parts.append("[%s] %s" % (cmd, " | ".join(keep)[:600]))
            out.append(" ".join(parts))
        return "guest CPU: " + (" ;; ".join(out) if out else "runs nowhere")

    def where(self, name):
        """{host name: virsh domstate} for every host that knows the guest."""
        out = {}
        for h in self.hosts:
            if h.alive():
                s = h.domstate(name)
                if s is not None:
                    out[h.name] = s
        return out


def _teardown_all():
    for lab in list(_LABS):
        if lab.detach:
            continue
        try:
            lab.down()
        except Exception as e:
            log("lab teardown: %s" % e)


atexit.register(_teardown_all)


def install_signal_handlers(extra_cleanup=None):
    """SIGTERM/SIGINT/SIGHUP (ctest's timeout, ^C): tear every lab down,
    run extra_cleanup, exit. Replaces handlers mvtest installed."""
    def on_signal(signum, frame):
        log("got signal %d: tearing the lab down" % signum)
        if extra_cleanup:
            try:
                extra_cleanup()
            except Exception as e:
                log("cleanup: %s" % e)
        _teardown_all()
        os._exit(128 + signum)
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)


# ---- meshvisor agents inside lab hosts ------------------------------------

FAST_SWIM = {
    "probe_interval_ms": 500,
    "probe_timeout_ms": 200,
    "indirect_probes": 3,
    "suspicion_min_mult": 4,
    "suspicion_max_mult": 6,
    "gossip_interval_ms": 100,
    "push_pull_interval_ms": 10000,
    "join_retry_ms": 500,
}


class LabAgent:
    """One `meshvisor agent` inside one lab host (its network, UTS and mount
    namespaces): bound to the host's address, talking to the host's own
    libvirtd over host.uri."""

    def __init__(self, agents, host):
        self.agents = agents
        self.host = host
        self.name = host.name
        self.dir = os.path.join(agents.root, host.name)
        os.makedirs(self.dir, exist_ok=True)
        self.cert, self.key = agents.certs.make("node", host.name, ip=host.ip)
        self.proc = None
        self.log_path = None
        self.starts = 0

    @property
    def peer_addr(self):
        return "%s:%d" % (self.host.ip, AGENT_PEER_PORT)

    @property
    def rpc_addr(self):
        return "%s:%d" % (self.host.ip, AGENT_RPC_PORT)

    def start(self, join=(), extra=None, wait=True):
        check(self.proc is None or self.proc.poll() is not None, "%s running" % self.name)
        cfg = {
            "name": self.name,
            "bind": self.host.ip,
            "advertise": self.host.ip,
            "peer_port": AGENT_PEER_PORT,
            "rpc_port": AGENT_RPC_PORT,
            "join": list(join),
            "tls": {"ca": self.agents.certs.ca_cert, "cert": self.cert, "key": self.key},
            "data_dir": os.path.join(self.dir, "data"),
            "log_level": "debug",
            "libvirt_uri": self.host.uri,
            "swim": dict(self.agents.swim),
        }
        cfg.update(self.agents.extra)
        if extra:
            cfg.update(extra)
        os.makedirs(cfg["data_dir"], exist_ok=True)
        self.config = os.path.join(self.dir, "config-%d.json" % self.starts)
        with open(self.config, "w") as f:
            json.dump(cfg, f, indent=2)
        self.log_path = os.path.join(self.dir, "agent-%d.log" % self.starts)
        self.starts += 1
        self.proc = self.host.spawn([self.agents.binary, "agent", "--config", self.config],
                                    self.log_path)
        self.agents.procs.append(self.proc)
        log("started agent %s in its host (pid %d) peer %s join %s" %
            (self.name, self.proc.pid, self.peer_addr, list(join)))
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=20):
        def ready():
            if self.proc.poll() is not None:
                raise TestFailure("agent %s exited with %s during start:\n%s" %
                                  (self.name, self.proc.returncode, self.log_tail()))
            r = self.host.run(["python3", "-c",
                               "import socket,sys; socket.create_connection"
                               "((sys.argv[1], int(sys.argv[2])), 0.5)",
                               self.host.ip, str(AGENT_RPC_PORT)], timeout=10)
            return r.returncode == 0
        wait_until(ready, timeout, "agent %s to listen" % self.name, 0.1)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_text(self):
        out = ""
        for i in range(self.starts):
            p = os.path.join(self.dir, "agent-%d.log" % i)
            if os.path.exists(p):
                with open(p, errors="replace") as f:
                    out += f.read()
        return out

    def log_tail(self, n=40):
        return "\n".join(self.log_text().splitlines()[-n:])

    def cli(self, *args, role="operator", timeout=15):
        """`meshvisor ARGS --addr <this agent>` run from this host's
        network namespace (an operator logged in on the host)."""
        ca, cert, key = self.agents.client_creds(role)
        cmd = [self.agents.binary] + list(args) + ["--addr", self.rpc_addr,
                                                   "--ca", ca, "--cert", cert, "--key", key]
        return self.host.run(cmd, timeout=timeout)

    def cli_json(self, *args, role="viewer"):
        r = self.cli(*(list(args) + ["--json"]), role=role)
        if r.returncode != 0:
            raise TestFailure("`meshvisor %s` on %s failed (exit %d): %s" %
                              (" ".join(args), self.name, r.returncode,
                               (r.stderr or r.stdout).strip()))
        try:
            return json.loads(r.stdout)
        except ValueError as e:
            raise TestFailure("`meshvisor %s --json` on %s is not JSON (%s): %r" %
                              (" ".join(args), self.name, e, r.stdout[:400]))

    def cli_argv(self, *args, role="operator"):
        """The argv of `meshvisor ARGS --addr <this agent>` run from this
        host's network namespace (for a long-running command: cli_popen)."""
        ca, cert, key = self.agents.client_creds(role)
        cmd = [self.agents.binary] + [str(a) for a in args] + [
            "--addr", self.rpc_addr, "--ca", ca, "--cert", cert, "--key", key]
        return self.host.nsenter_argv(cmd, mount=False)

    def cli_popen(self, *args, role="operator"):
        """Starts `meshvisor ARGS` from this host (as cli()) without waiting:
        a Popen with text stdout/stderr pipes, killed if the test dies.
        For commands that stream, e.g. `migrate --json` (one JSON object a
        line per progress frame)."""
        return subprocess.Popen(self.cli_argv(*args, role=role), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                preexec_fn=_pdeath_kill)

    def log_matches(self, pattern):
        """[re.Match] of pattern over every line of this agent's logs (all
        its starts), in order."""
        rx = re.compile(pattern)
        out = []
        for line in self.log_text().splitlines():
            m = rx.search(line)
            if m:
                out.append(m)
        return out

    def members(self):
        return {m["name"]: m for m in self.cli_json("members")["members"]}

    def vms(self):
        """[vm dict] from `meshvisor vms --json`."""
        return self.cli_json("vms")["vms"]


def migration_config(host, bandwidth_mib_s=5, lease_ms=3000, **more):
    """An agent's "migration" config section for a lab host: libvirt_uri is
    how the OTHER hosts' libvirtd reach this host's (qemu+tcp over the lab
    bridge, so a cut link cuts it), stream_uri where QEMU's migration stream
    lands. Use as LabAgent.start(extra=migration_config(host)). A freshly
    started agent refuses incoming migrations for one lease_ms ("starting")."""
    sec = {"libvirt_uri": host.tcp_uri, "stream_uri": "tcp://%s" % host.ip,
           "bandwidth_mib_s": bandwidth_mib_s, "lease_ms": lease_ms}
    sec.update(more)
    return {"migration": sec}


def parse_json_lines(text):
    """[dict] of the JSON objects in text, in order: one-line objects (e.g.
    `migrate --json` progress frames) and pretty-printed ones (its final
    object) alike; anything that is not JSON is skipped."""
    out, dec, i, text = [], json.JSONDecoder(), 0, text or ""
    while True:
        i = text.find("{", i)
        if i < 0:
            return out
        try:
            obj, end = dec.raw_decode(text, i)
        except ValueError:
            i += 1
            continue
        if isinstance(obj, dict):
            out.append(obj)
        i = end


class LabAgents:
    """meshvisor agents for a lab: a CA and node certificates (made with
    `meshvisor tls`), one agent per host."""

    def __init__(self, lab, binary, swim=None, extra=None):
        import mvtest  # the integration harness's certificate helper
        self.lab = lab
        self.binary = os.path.abspath(binary)
        self.root = os.path.join(lab.root, "agents")
        os.makedirs(self.root, exist_ok=True)
        self.certs = mvtest.Certs(self.binary, None, os.path.join(lab.root, "pki"))
        self.swim = dict(FAST_SWIM)
        if swim:
            self.swim.update(swim)
        self.extra = extra or {}
        self.procs = []
        self._creds = {}
        self.by_name = {h.name: LabAgent(self, h) for h in lab.hosts}

    def __getitem__(self, name):
        return self.by_name[name]

    def __iter__(self):
        return iter(self.by_name.values())

    def client_creds(self, role):
        if role not in self._creds:
            cert, key = self.certs.make(role, "lab-" + role, ip=None)
            self._creds[role] = (self.certs.ca_cert, cert, key)
        return self._creds[role]

    def start_all(self, seed=None):
        agents = list(self.by_name.values())
        s = self.by_name[seed] if seed else agents[0]
        s.start()
        for a in agents:
            if a is not s:
                a.start(join=[s.peer_addr], wait=False)
        for a in agents:
            a.wait_ready()
        return self

    def wait_converged(self, timeout=30):
        want = set(self.by_name)
        t0 = time.monotonic()
        last = {}

        def pred():
            bad = {}
            for a in self.by_name.values():
                if not a.alive():
                    continue
                ms = a.members()
                wrong = {n: ms[n]["state"] if n in ms else "missing" for n in want
                         if n not in ms or ms[n]["state"] != "alive"}
                if wrong:
                    bad[a.name] = wrong
            last["bad"] = bad
            return not bad
        try:
            wait_until(pred, timeout, "all lab agents alive everywhere", 0.25)
        except TestFailure as e:
            raise TestFailure("%s; disagreeing views: %s" % (e, last.get("bad")))
        dt = time.monotonic() - t0
        log("agents converged: %s (%.1fs)" % (sorted(want), dt))
        return dt

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.kill()
                except OSError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except Exception:
                pass

    def dump_logs(self, n=150):
        from mvtest import log_tail  # tests/integration: the same filter
        for a in self.by_name.values():
            if a.log_path:
                print("----- log of agent %s (%s) -----" %
                      (a.name, "running" if a.alive() else "exited %s" %
                       (a.proc.returncode if a.proc else "-")))
                print(log_tail(a.log_text(), n))


# ---- the host init (runs inside the host's namespaces) --------------------

def hostinit(hostdir, name):
    """PID-1-like parent of one lab host: mounts the private /etc, /var and
    /run, sets the hostname, becomes a child subreaper, runs libvirtd and
    reaps every child. SIGUSR1: start libvirtd again if it is not running.
    SIGTERM (or the death of whoever started it, via PDEATHSIG): stops
    libvirtd, kills everything left in the host, exits."""
    def mount(*args):
        r = subprocess.run(["mount"] + list(args), stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            sys.stderr.write("hostinit %s: mount %s failed: %s\n" % (name, args, r.stderr))
            sys.exit(2)

    # private mounts (this is a fresh mount namespace, propagation private)
    mount("-t", "overlay", "overlay", "-o", "lowerdir=/etc,upperdir=%s/etc-upper,workdir=%s/etc-work"
          % (hostdir, hostdir), "/etc")
    mount("-t", "overlay", "overlay", "-o", "lowerdir=/var,upperdir=%s/var-upper,workdir=%s/var-work"
          % (hostdir, hostdir), "/var")
    mount("--bind", os.path.join(hostdir, "run"), "/run")
    socket.sethostname(name)
    if _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.stderr.write("hostinit %s: PR_SET_CHILD_SUBREAPER failed\n" % name)
        sys.exit(2)
    my_mnt = ns_inode(os.getpid(), "mnt")
    state = {"libvirtd": None, "stopping": False}
    logpath = os.path.join(hostdir, "libvirtd.log")

    def start_libvirtd():
        logf = open(logpath, "a")
        p = subprocess.Popen(["/usr/sbin/libvirtd", "--listen"], stdout=logf,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                  "LANG": "C.UTF-8", "HOME": "/root"})
        logf.close()
        state["libvirtd"] = p.pid
        print("hostinit %s: libvirtd pid %d" % (name, p.pid), flush=True)

    def on_usr1(signum, frame):
        if state["libvirtd"] is None and not state["stopping"]:
            start_libvirtd()

    class Stop(Exception):
        pass

    def on_term(signum, frame):
        state["stopping"] = True
        raise Stop()  # out of a blocking waitpid (Python retries it otherwise)

    signal.signal(signal.SIGUSR1, on_usr1)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    signal.signal(signal.SIGHUP, on_term)
    print("hostinit %s: pid %d mounted, subreaper" % (name, os.getpid()), flush=True)
    start_libvirtd()

    try:
        while not state["stopping"]:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                time.sleep(0.05)
                continue
            if pid == state["libvirtd"]:
                print("hostinit %s: libvirtd exited (status %d)" % (name, status), flush=True)
                state["libvirtd"] = None
    except Stop:
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    # teardown: libvirtd first (it leaves guests running), then the rest
    if state["libvirtd"]:
        try:
            os.kill(state["libvirtd"], signal.SIGTERM)
        except OSError:
            pass
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == state["libvirtd"]:
                break
            if pid == 0:
                time.sleep(0.02)
    for _ in range(50):
        left = pids_in_ns("mnt", my_mnt)
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        time.sleep(0.02)
    # reap what is left (killed children must not become PID 1's zombies)
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                time.sleep(0.02)
        except ChildProcessError:
            break
    print("hostinit %s: stopped" % name, flush=True)
    sys.exit(0)


# ---- command line ----------------------------------------------------------

CLI_DIR = "/tmp/mvlab"


def _cli_up(args):
    root = args.dir
    if os.path.exists(os.path.join(root, "lab.json")):
        print("a lab is already up in %s (run `down` first)" % root, file=sys.stderr)
        return 1
    lab = Lab(args.n, root=root, lab_id="cli", detach=True)
    lab.up()
    for spec in args.guest or []:
        hname, _, gname = spec.partition(":")
        lab.start_guest(lab.host(hname), gname, vcpus=args.vcpus, mem_mib=args.mem)
    lab.save()
    _print_status(lab.root)
    return 0


def _print_status(root):
    with open(os.path.join(root, "lab.json")) as f:
        doc = json.load(f)
    print("lab %s in %s" % (doc["id"], doc["root"]))
    for h in doc["hosts"]:
        alive = h["init_pid"] and ns_inode(h["init_pid"], "mnt") == h["mnt_ino"]
        print("  %-4s %-12s %-8s netns %s" % (h["name"], h["ip"],
                                             "up" if alive else "DOWN", h["netns"]))
        print("       virsh -c '%s' list --all" % h["uri"])
        print("       nsenter --target %s --net --mount --uts -- bash   (a shell on it)" %
              h["init_pid"])
    for g, d in doc.get("guests", {}).items():
        ticks = []
        try:
            ticks = parse_serial(open(d["serial"], errors="replace").read())
        except OSError:
            pass
        print("  guest %s: serial %s (last tick %s)" % (g, d["serial"],
                                                       ticks[-1][1] if ticks else "-"))


def load_lab(root):
    """A Lab object for the lab described by ROOT/lab.json (to tear down)."""
    with open(os.path.join(root, "lab.json")) as f:
        doc = json.load(f)
    lab = Lab(len(doc["hosts"]), root=doc["root"], lab_id=doc["id"], detach=True)
    for h, d in zip(lab.hosts, doc["hosts"]):
        h.init_pid, h.mnt_ino, h.net_ino = d["init_pid"], d["mnt_ino"], d["net_ino"]
        if h.init_pid and h.mnt_ino is None:
            # saved before the host was ready: its init may still be in the
            # namespace it made; trust the pid only while it runs our init
            try:
                cmd = open("/proc/%d/cmdline" % h.init_pid, "rb").read()
            except OSError:
                cmd = b""
            if b"_hostinit" in cmd and h.dir.encode() in cmd:
                h.mnt_ino = ns_inode(h.init_pid, "mnt")
            else:
                h.init_pid = None
        # a recycled pid is not ours: only trust it while its namespace matches
        elif h.init_pid and ns_inode(h.init_pid, "mnt") != h.mnt_ino:
            h.init_pid = None
    return lab, doc


def _cli_down(args):
    if not os.path.exists(os.path.join(args.dir, "lab.json")):
        print("no lab in %s" % args.dir, file=sys.stderr)
        return 1
    lab, doc = load_lab(args.dir)
    lab.down()
    print("lab %s down" % doc["id"])
    return 0


def guard(root):
    """Waits for SIGTERM (its parent died: PDEATHSIG) and then tears the
    lab in ROOT down. SIGKILLed by Lab.down() in the normal case."""
    done = {"go": False}

    def on_term(signum, frame):
        done["go"] = True
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    if os.getppid() == 1:  # the parent died before we could arm PDEATHSIG
        done["go"] = True
    while not done["go"]:
        signal.pause()
    # the hosts' inits got their own PDEATHSIG and are tearing down; give
    # them a moment, then sweep what is left
    time.sleep(0.5)
    if os.path.exists(os.path.join(root, "lab.json")):
        lab, _ = load_lab(root)
        lab.down()
    sys.stderr.write("mvlab guard: tore down %s\n" % root)


def main(argv=None):
    ap = argparse.ArgumentParser(description="meshvisor lab: fake hypervisor hosts")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("up", help="build N hosts and leave them running")
    p.add_argument("n", type=int)
    p.add_argument("--dir", default=CLI_DIR)
    p.add_argument("--guest", action="append", metavar="HOST:NAME",
                   help="also start a lab guest NAME on HOST (repeatable)")
    p.add_argument("--vcpus", type=int, default=1)
    p.add_argument("--mem", type=int, default=64, help="guest memory, MiB")
    p = sub.add_parser("down", help="stop every host and remove the lab")
    p.add_argument("--dir", default=CLI_DIR)
    p = sub.add_parser("status")
    p.add_argument("--dir", default=CLI_DIR)
    p = sub.add_parser("_guard")
    p.add_argument("root")
    p = sub.add_parser("_hostinit")
    p.add_argument("hostdir")
    p.add_argument("name")
    args = ap.parse_args(argv)
    if args.cmd == "_guard":
        guard(args.root)
        return 0
    if args.cmd == "_hostinit":
        hostinit(args.hostdir, args.name)
        return 0
    if args.cmd == "up":
        return _cli_up(args)
    if args.cmd == "down":
        return _cli_down(args)
    if args.cmd == "status":
        _print_status(args.dir)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())


# ---- entry point of every lab test ------------------------------------------

SKIP = 77  # ctest SKIP_RETURN_CODE: the lab cannot run here (run-all counts it a failure)


def run_test(main, default_timeout, add_args=None, prepare=None):
    """Runs main(args) as a lab test: parses --meshvisor, --timeout and
    --install-deps (plus what add_args(parser) adds), installs the lab's
    packages when they are missing and we are root (MV_LAB_NO_INSTALL=1
    forbids it), exits SKIP when the lab still cannot run, calls
    prepare(args) (a returned string is a failure before the test), then
    runs main under its own time limit and exits 0 (PASS) or 1 (FAIL)."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--meshvisor", required=True)
    ap.add_argument("--timeout", type=float, default=default_timeout)
    ap.add_argument("--install-deps", default=os.path.join(HERE, "..", "..", "deploy",
                                                            "install-lab-deps.sh"))
    if add_args is not None:
        add_args(ap)
    args = ap.parse_args()
    name = os.path.basename(sys.argv[0])

    why = prerequisites()
    if why and os.geteuid() == 0 and os.environ.get("MV_LAB_NO_INSTALL") != "1":
        log("lab prerequisites missing (%s): running %s" % (why, args.install_deps))
        subprocess.run(["bash", args.install_deps], stdin=subprocess.DEVNULL, timeout=300)
        why = prerequisites()
    if why:
        log("SKIP %s: %s" % (name, why))
        sys.exit(SKIP)
    if prepare is not None:
        problem = prepare(args)
        if problem:
            log("FAIL %s: %s" % (name, problem))
            sys.exit(1)

    def on_alarm(signum, frame):
        raise TestFailure("test exceeded its own limit of %.0fs" % args.timeout)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.timeout))
    rc = 0
    try:
        main(args)
        log("PASS %s" % name)
    except Exception as e:
        rc = 1
        log("FAIL %s: %s" % (name, e))
        if not isinstance(e, TestFailure):
            traceback.print_exc()
    finally:
        signal.alarm(0)
    sys.exit(rc)
