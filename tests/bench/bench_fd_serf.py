#!/usr/bin/env python3
"""bench_fd_serf.py — meshvisor's failure detector beside HashiCorp Serf's
(issue 11). Measures; asserts nothing. Needs root (network namespaces,
nftables) and Serf (`apt-get install -y serf`).

    python3 tests/bench/bench_fd_serf.py [--root REPO] [--meshvisor PATH]
        [--serf serf] [--sizes 5[,20]] [--scenarios idle,crash,silent,pause,gray,loss]
        [--runs 3] [--loss 19,36] [--loss-seconds 90] [--gray-seconds 90]
        [--minutes M] [--pauses 2,3,4,5] [--idle-seconds 30] [--poll 0.25]
        [--settle 90] [--json FILE|-]

The lab: one network namespace per host (mvb-PID-nK, address 10.77.X.(10+K)),
each with a veth into a bridge in a hub namespace (mvb-PID-hub), and the
benchmark itself (the observer) on a veth into the same bridge. Every host
runs BOTH a meshvisor agent (shipped defaults: no swim or failover section;
libvirt test:///default; real TLS; certificates and configs from the
integration harness tests/integration/mvtest.py and mvha.py) and a Serf
agent (`serf agent -node nK -bind IP:7946 -rpc-addr IP:7373 -join ...`,
LAN profile defaults), so both see the same faults at the same moments.
Faults are nftables rules inside a host's namespace, `numgen random mod 100
< P drop` (the kernel here has no netem); the observer's own traffic (the
RPC queries below) is never dropped, so observing does not depend on the
fault.

Observation: a sampler thread asks every running agent of both systems for
its member list every --poll seconds over persistent connections (meshvisor:
the members RPC over TLS, as `meshvisor members --json`, with each member's
since_unix_ms; Serf: its msgpack RPC `members`, as `serf members`). A member
is "dead" at an observer when meshvisor says dead, or Serf says failed.
Detection times: meshvisor's from the observer's own since_unix_ms (when it
is after the fault and not after the poll that saw it), Serf's from the
poll that first saw it (Serf keeps no timestamp): Serf's figures carry up
to one poll interval of extra delay, on average half of it.

Scenarios (at every size in --sizes; pick with --scenarios):
  idle    --idle-seconds with no fault: packets/s and bytes/s per agent,
          sent + received (what its veth would count), split between the
          two systems by nftables counters in each namespace (Serf: TCP/UDP
          to or from port 7946; meshvisor: all other traffic between hosts;
          bytes are IP lengths). The observer's queries are not counted.
  crash   kill -9 of both agents of one host (its namespace stays up, so
          its kernel answers RST / ICMP unreachable) -> dead at every
          survivor; median and max over --runs (a different victim each
          run, restarted between runs).
  silent  the victim's namespace drops everything in and out (but the
          observer) -> dead at every survivor; then healed, and the time
          until every agent sees it alive again is printed too.
  pause   SIGSTOP of both agents of one host for each of --pauses seconds,
          then SIGCONT; watched 10 s more: declared dead by whom.
  gray    one host drops 50% in and 50% out for --gray-seconds: the share
          of (observer, sample) pairs in which it is seen dead, its state
          changes (episodes), and what the gray host itself declares dead
          (peers, peer-seconds, longest).
  loss    every host drops X% of what it receives (so X% on every path)
          for --loss-seconds, for each X in --loss: false dead verdicts
          (an observer's view of a live member turning dead), episodes
          (a member dead at >= 1 observer) and the longest one.
Between scenarios the benchmark heals the fault and waits (--settle) until
every agent of both systems sees every host alive; a host still not seen
alive then has its agents restarted (said in the output).
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True


def _root_arg():
    """--root REPO (the harness and the default binary come from there)."""
    for i, x in enumerate(sys.argv):
        if x == "--root" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if x.startswith("--root="):
            return x.split("=", 1)[1]
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


sys.path.insert(0, os.path.join(os.path.abspath(_root_arg()), "tests", "integration"))
import mvtest  # noqa: E402
import mvwire  # noqa: E402
import mvha  # noqa: E402

SERF_PORT = 7946
SERF_RPC = 7373
MV, SERF = "meshvisor", "serf"
SYSTEMS = (MV, SERF)
SCENARIOS = ("idle", "crash", "silent", "pause", "gray", "loss")


# ---- a minimal msgpack codec (Serf's RPC) ------------------------------------

def mp_pack(v):
    if v is None:
        return b"\xc0"
    if v is True or v is False:
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if 0 <= v < 1 << 32:
            return b"\xce" + struct.pack(">I", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, str):
        b = v.encode()
        if len(b) < 32:
            return bytes([0xa0 | len(b)]) + b
        return b"\xda" + struct.pack(">H", len(b)) + b
    if isinstance(v, dict):
        out = b"\xde" + struct.pack(">H", len(v))
        for k, x in v.items():
            out += mp_pack(k) + mp_pack(x)
        return out
    raise TypeError("cannot pack %r" % type(v))


class MpReader:
    """Decodes msgpack objects one at a time from a socket."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def take(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("serf RPC closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def u(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def obj(self):
        b = self.take(1)[0]
        if b < 0x80:
            return b
        if b >= 0xe0:
            return b - 256
        if 0x80 <= b <= 0x8f:
            return self._map(b & 0x0f)
        if 0x90 <= b <= 0x9f:
            return [self.obj() for _ in range(b & 0x0f)]
        if 0xa0 <= b <= 0xbf:
            return self.take(b & 0x1f).decode("utf-8", "replace")
        simple = {0xc0: None, 0xc2: False, 0xc3: True}
        if b in simple:
            return simple[b]
        if b in (0xc4, 0xc5, 0xc6):  # bin
            return self.take(self.u({0xc4: ">B", 0xc5: ">H", 0xc6: ">I"}[b]))
        if b in (0xd9, 0xda, 0xdb):  # str
            n = self.u({0xd9: ">B", 0xda: ">H", 0xdb: ">I"}[b])
            return self.take(n).decode("utf-8", "replace")
        ints = {0xcc: ">B", 0xcd: ">H", 0xce: ">I", 0xcf: ">Q", 0xd0: ">b", 0xd1: ">h",
                0xd2: ">i", 0xd3: ">q", 0xca: ">f", 0xcb: ">d"}
        if b in ints:
            return self.u(ints[b])
        if b in (0xdc, 0xdd):
            return [self.obj() for _ in range(self.u(">H" if b == 0xdc else ">I"))]
        if b in (0xde, 0xdf):
            return self._map(self.u(">H" if b == 0xde else ">I"))
        if 0xd4 <= b <= 0xd8:  # fixext: type byte + 1..16 bytes
            self.take(1 + (1 << (b - 0xd4)))
            return None
        if b in (0xc7, 0xc8, 0xc9):
            n = self.u({0xc7: ">B", 0xc8: ">H", 0xc9: ">I"}[b])
            self.take(1 + n)
            return None
        raise ValueError("msgpack byte 0x%02x not understood" % b)

    def _map(self, n):
        d = {}
        for _ in range(n):
            k = self.obj()
            d[k.decode() if isinstance(k, bytes) else k] = self.obj()
        return d


class SerfRpc:
    def __init__(self, ip, timeout=2.0):
        self.sock = socket.create_connection((ip, SERF_RPC), timeout=timeout)
        self.sock.settimeout(timeout)
        self.rd = MpReader(self.sock)
        self.seq = 0
        self.call("handshake", {"Version": 1}, body=False)

    def call(self, cmd, args=None, body=True):
        self.seq += 1
        msg = mp_pack({"Command": cmd, "Seq": self.seq})
        if args is not None:
            msg += mp_pack(args)
        self.sock.sendall(msg)
        hdr = self.rd.obj()
        if hdr.get("Error"):
            raise RuntimeError("serf RPC %s: %s" % (cmd, hdr["Error"]))
        return self.rd.obj() if body else None

    def members(self):
        out = {}
        for m in self.call("members")["Members"]:
            st, name = m.get("Status", ""), m.get("Name", "")
            st = st.decode() if isinstance(st, bytes) else st
            name = name.decode() if isinstance(name, bytes) else name
            out[name] = ({"failed": "dead", "leaving": "left"}.get(st, st), 0)
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


class MvRpc:
    """The members RPC over TLS (what `meshvisor members --json` asks)."""
    STATES = {0: "alive", 1: "suspect", 2: "dead", 3: "left"}

    def __init__(self, ip, port, creds, timeout=2.0):
        ca, cert, key = creds
        self.sock = mvtest.tls_client(ip, port, ca, cert, key, timeout=timeout)
        self.id = 0

    def members(self):
        self.id += 1
        self.sock.sendall(mvwire.request_frame(self.id, "members"))
        payload = mvwire.read_frame(self.sock.recv)
        if payload is None:
            raise EOFError("meshvisor RPC closed")
        env = mvwire.parse(payload)
        r = mvwire.parse(env[21][-1])
        if 11 not in r:
            raise RuntimeError("members: %s" % mvwire._str(r, 3))
        out = {}
        for raw in mvwire.parse(r[11][-1]).get(1, []):
            m = mvwire.parse(raw)
            since = mvwire._one(m, 5, 0)
            if since >= 1 << 63:
                since -= 1 << 64
            out[mvwire._str(m, 1)] = (self.STATES.get(mvwire._one(m, 3, 0), "?"), since)
        return out

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---- the lab -------------------------------------------------------------------

def sh(*cmd, check_rc=True, input=None):
    return mvha.sh(*cmd, check_rc=check_rc, input=input)


def sweep_stale():
    """Namespaces mvb-PID-... of a benchmark that is gone."""
    for line in sh("ip", "netns", "list", check_rc=False).stdout.splitlines():
        m = re.match(r"^(mvb-(\d+)-\S+)", line)
        if m and not os.path.exists("/proc/%s" % m.group(2)):
            log("removing stale namespace %s" % m.group(1))
            sh("ip", "netns", "del", m.group(1), check_rc=False)


class Lab(mvha.NetLab):
    """mvha's NetLab (bridge in a hub namespace, the observer on it, loss by
    nftables) with this benchmark's names and 10.77.X.0/24."""

    def __init__(self, names):
        super().__init__(names)
        self.hub = "mvb-%d-hub" % self.pid
        used = sh("ip", "-o", "-4", "addr", "show", check_rc=False).stdout
        x = next((k for k in range(1, 250) if "10.77.%d." % ((self.pid + k) % 250) not in used),
                 None)
        mvtest.check(x is not None, "no free 10.77.X.0/24 subnet")
        self.net = "10.77.%d" % ((self.pid + x) % 250)
        self.obs_ip = self.net + ".1"
        self.ips = {n: "%s.%d" % (self.net, 11 + i) for i, n in enumerate(self.names)}

    def ns(self, name):
        return "mvb-%d-%s" % (self.pid, name)

    def _ifname(self, kind, i):
        return "mvb%s%s%s" % (self.tag, kind, i)

    def add_counters(self, name):
        text = "table inet mvbcount {\n"
        for chain, hook, iface, peer in (("cin", "input", "iifname", "saddr"),
                                         ("cout", "output", "oifname", "daddr")):
            text += ("  chain %s {\n    type filter hook %s priority -10; policy accept;\n"
                     '    %s "lo" accept\n    ip %s %s accept\n'
                     "    meta l4proto { tcp, udp } th sport %d counter accept\n"
                     "    meta l4proto { tcp, udp } th dport %d counter accept\n"
                     "    counter accept\n  }\n" % (chain, hook, iface, peer, self.obs_ip,
                                                    SERF_PORT, SERF_PORT))
        text += "}\n"
        nx = ["ip", "netns", "exec", self.ns(name)]
        sh(*nx, "nft", "delete", "table", "inet", "mvbcount", check_rc=False)
        sh(*nx, "nft", "-f", "-", input=text)

    def read_counters(self, name):
        """{system: [packets, bytes, packets sent, bytes sent]}: in + out,
        and out alone, since add_counters."""
        r = sh("ip", "netns", "exec", self.ns(name), "nft", "-j", "list", "table", "inet",
               "mvbcount")
        out = {MV: [0, 0, 0, 0], SERF: [0, 0, 0, 0]}
        for item in json.loads(r.stdout)["nftables"]:
            rule = item.get("rule")
            if not rule:
                continue
            sent = rule.get("chain") == "cout"
            cnt = [e["counter"] for e in rule["expr"] if "counter" in e]
            if not cnt:
                continue
            sysname = SERF if any("match" in e and e["match"]["right"] == SERF_PORT
                                  for e in rule["expr"]) else MV
            out[sysname][0] += cnt[0]["packets"]
            out[sysname][1] += cnt[0]["bytes"]
            if sent:
                out[sysname][2] += cnt[0]["packets"]
                out[sysname][3] += cnt[0]["bytes"]
        return out


# ---- the two clusters ----------------------------------------------------------

class Host:
    def __init__(self, name, ip, ns, mv):
        self.name, self.ip, self.ns, self.mv = name, ip, ns, mv
        self.serf = None
        self.serf_starts = 0


class Bench:
    def __init__(self, a, n, t):
        self.a, self.n, self.t = a, n, t
        self.names = ["n%d" % i for i in range(1, n + 1)]
        self.lab = Lab(self.names)
        self.lab.up()
        self.c = mvha.ns_cluster(t, self.lab, agent_extra={"log_level": "info"}, defaults=True)
        self.hosts = {nm: Host(nm, self.lab.ips[nm], self.lab.ns(nm), self.c[nm])
                      for nm in self.names}
        self.creds = self.c.client_creds("viewer")
        self.conns = {}
        self.rounds = []          # (t, {sys: {obs: view or None}})
        self.skip = set()         # hosts not to poll (paused)
        self.lock = threading.Lock()
        self.stop = False
        self.thread = None

    # -- processes --

    def start_serf(self, h, join):
        logf = open(os.path.join(self.t.tmp, "serf-%s-%d.log" % (h.name, h.serf_starts)), "w")
        h.serf_starts += 1
        cmd = ["ip", "netns", "exec", h.ns, self.a.serf, "agent", "-node", h.name,
               "-bind", "%s:%d" % (h.ip, SERF_PORT), "-rpc-addr", "%s:%d" % (h.ip, SERF_RPC),
               "-log-level", "info"]
        for j in join:
            cmd += ["-join", "%s:%d" % (j, SERF_PORT)]
        h.serf = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, preexec_fn=mvtest._child_setup)
        logf.close()
        mvtest._PROCS.append(h.serf)

        def ready():
            if h.serf.poll() is not None:
                raise mvtest.TestFailure("serf on %s exited with %s" % (h.name,
                                                                       h.serf.returncode))
            try:
                SerfRpc(h.ip).close()
                return True
            except OSError:
                return False
        mvtest.wait_until(ready, 20, "serf on %s to answer RPC" % h.name, 0.2)

    def start(self):
        seed = self.hosts["n1"]
        seed.mv.start()
        self.start_serf(seed, [])
        for h in self.hosts.values():
            if h is not seed:
                h.mv.start(join=[seed.mv.peer_addr], wait=False)
                self.start_serf(h, [seed.ip])
        for h in self.hosts.values():
            h.mv.wait_ready()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()
        self.wait_all_alive(self.a.settle, "start")

    def restart(self, h):
        """Starts whichever of h's agents is not running (both joining n1,
        or n2 when h is n1)."""
        seed = self.hosts["n2" if h.name == "n1" else "n1"]
        if not h.mv.alive():
            h.mv.start(join=[seed.mv.peer_addr], wait=True)
        if h.serf is None or h.serf.poll() is not None:
            self.start_serf(h, [seed.ip])
        self.drop_conns(h.name)

    def kill(self, h, sysname, sig=signal.SIGKILL):
        p = h.mv.proc if sysname == MV else h.serf
        os.kill(p.pid, sig)
        if sig == signal.SIGKILL:
            p.wait(10)

    def alive_procs(self):
        return {h.name: (h.mv.alive(), h.serf is not None and h.serf.poll() is None)
                for h in self.hosts.values()}

    # -- sampling --

    def drop_conns(self, name):
        for key in [k for k in self.conns if k[1] == name]:
            self.conns.pop(key).close()

    def _view(self, sysname, h):
        key = (sysname, h.name)
        try:
            c = self.conns.get(key)
            if c is None:
                c = (MvRpc(h.ip, h.mv.rpc_port, self.creds) if sysname == MV
                     else SerfRpc(h.ip))
                self.conns[key] = c
            return c.members()
        except Exception:
            c = self.conns.pop(key, None)
            if c:
                c.close()
            return None

    def _loop(self):
        while not self.stop:
            t0 = time.time()
            rnd = {MV: {}, SERF: {}}
            for h in self.hosts.values():
                if h.name in self.skip:
                    continue
                if h.mv.alive():
                    rnd[MV][h.name] = self._view(MV, h)
                if h.serf is not None and h.serf.poll() is None:
                    rnd[SERF][h.name] = self._view(SERF, h)
            with self.lock:
                self.rounds.append((time.time(), rnd))
            time.sleep(max(0.0, self.a.poll - (time.time() - t0)))

    def rounds_between(self, t0, t1):
        with self.lock:
            return [r for r in self.rounds if t0 <= r[0] <= t1]

    def latest(self):
        with self.lock:
            return self.rounds[-1] if self.rounds else (0, {MV: {}, SERF: {}})

    def not_alive(self, rnd):
        """{sys: {obs: [members not alive]}} for one round (every host
        expected, seen by every running agent)."""
        bad = {}
        procs = self.alive_procs()
        for s in SYSTEMS:
            for h in self.hosts.values():
                if not procs[h.name][0 if s == MV else 1] or h.name in self.skip:
                    continue
                v = rnd[1][s].get(h.name)
                if v is None:
                    bad.setdefault(s, {})[h.name] = ["(no answer)"]
                    continue
                wrong = [m for m in self.names if v.get(m, ("missing",))[0] != "alive"]
                if wrong:
                    bad.setdefault(s, {})[h.name] = wrong
        return bad

    def wait_all_alive(self, timeout, what):
        """Waits until every agent of both systems sees every host alive;
        returns {sys: seconds} (None: not within timeout)."""
        t0 = time.time()
        done = {}
        while time.time() - t0 < timeout and len(done) < 2:
            time.sleep(self.a.poll)
            rnd = self.latest()
            if rnd[0] < t0:
                continue
            bad = self.not_alive(rnd)
            for s in SYSTEMS:
                if s not in bad and s not in done:
                    done[s] = rnd[0] - t0
        if len(done) < 2:
            log("%s: not everyone sees everyone alive after %.0f s: %s" %
                (what, timeout, self.not_alive(self.latest())))
        return {s: done.get(s) for s in SYSTEMS}

    def recover(self, what):
        """Heals: waits --settle; restarts the agents of hosts still not
        seen alive (by either system), then waits again."""
        took = self.wait_all_alive(self.a.settle, what)
        if all(v is not None for v in took.values()):
            return took, []
        bad = self.not_alive(self.latest())
        victims = sorted(set(m for s in bad.values() for ms in s.values() for m in ms
                             if m in self.hosts))
        for m in victims:
            h = self.hosts[m]
            log("%s: restarting the agents of %s (still not seen alive)" % (what, m))
            for s in SYSTEMS:
                p = h.mv.proc if s == MV else h.serf
                if p is not None and p.poll() is None:
                    self.kill(h, s)
            self.restart(h)
        self.wait_all_alive(self.a.settle, what + " after restarts")
        return took, victims

    def close(self):
        self.stop = True
        if self.thread:
            self.thread.join(5)
        for c in self.conns.values():
            c.close()
        self.conns.clear()


def log(msg):
    mvtest.log(msg)


# ---- analysis --------------------------------------------------------------------

def dead_at(b, sysname, victim, t_fault, t_end):
    """{observer: seconds from t_fault until it saw victim dead}."""
    out = {}
    for t, rnd in b.rounds_between(t_fault, t_end):
        for obs, v in rnd[sysname].items():
            if obs == victim or obs in out or v is None:
                continue
            st, since = v.get(victim, ("missing", 0))
            if st == "dead":
                dt = t - t_fault
                if sysname == MV and t_fault * 1000 <= since <= t * 1000 + 50:
                    dt = since / 1000.0 - t_fault
                out[obs] = dt
    return out


def verdicts(b, sysname, t0, t1, members, observers=None):
    """False dead verdicts about `members` in [t0, t1]: (count, episodes,
    longest episode s, {member: count}). A verdict is an observer's view
    turning dead (for meshvisor also a new since_unix_ms while dead)."""
    prev = {}
    count, per = 0, {}
    ep = {m: None for m in members}
    episodes, longest = 0, 0.0
    for t, rnd in b.rounds_between(t0, t1):
        deadnow = {m: False for m in members}
        for obs, v in rnd[sysname].items():
            if v is None or (observers is not None and obs not in observers):
                continue
            for m in members:
                if m == obs:
                    continue
                st, since = v.get(m, ("missing", 0))
                p = prev.get((obs, m))
                if st == "dead":
                    deadnow[m] = True
                    if p is None or p[0] != "dead" or (sysname == MV and p[1] != since):
                        count += 1
                        per[m] = per.get(m, 0) + 1
                prev[(obs, m)] = (st, since)
        for m in members:
            if deadnow[m] and ep[m] is None:
                ep[m] = t
                episodes += 1
            elif not deadnow[m] and ep[m] is not None:
                longest = max(longest, t - ep[m])
                ep[m] = None
    for m in members:
        if ep[m] is not None:
            longest = max(longest, t1 - ep[m])
    return count, episodes, longest, per


def ratio(x, y):
    if x is None or y is None:
        return None
    if y == 0:
        return 0.0 if x == 0 else float("inf")
    return x / y


# ---- scenarios ---------------------------------------------------------------------

def sc_idle(b, a):
    for nm in b.names:
        b.lab.add_counters(nm)
    t0 = time.time()
    time.sleep(a.idle_seconds)
    dt = time.time() - t0
    per = {s: [] for s in SYSTEMS}
    for nm in b.names:
        c = b.lab.read_counters(nm)
        for s in SYSTEMS:
            per[s].append([v / dt for v in c[s]])
    res = {}
    for s in SYSTEMS:
        res[s] = {"pps": statistics.mean(p[0] for p in per[s]),
                  "Bps": statistics.mean(p[1] for p in per[s]),
                  "pps_sent": statistics.mean(p[2] for p in per[s]),
                  "Bps_sent": statistics.mean(p[3] for p in per[s]),
                  "pps_max": max(p[0] for p in per[s])}
    log("idle over %.0f s: %s" % (dt, res))
    return {"seconds": dt, "per_agent": res}


def detect_run(b, a, victim, kind):
    h = b.hosts[victim]
    survivors = [x for x in b.names if x != victim]
    t_fault = {}
    order = SYSTEMS if len(b.rounds) % 2 else SYSTEMS[::-1]
    if kind == "crash":
        for s in order:
            t_fault[s] = time.time()
            b.kill(h, s)
        b.drop_conns(victim)
    else:
        t = time.time()
        b.lab.set_silent(victim)
        t_fault = {s: t for s in SYSTEMS}
    res = {}
    deadline = time.time() + a.detect_timeout
    while time.time() < deadline:
        time.sleep(a.poll)
        got = {s: dead_at(b, s, victim, t_fault[s], time.time()) for s in SYSTEMS}
        if all(len(got[s]) == len(survivors) for s in SYSTEMS):
            break
    for s in SYSTEMS:
        per = dead_at(b, s, victim, t_fault[s], time.time())
        res[s] = {"all": max(per.values()) if len(per) == len(survivors) else None,
                  "first": min(per.values()) if per else None, "per": per}
    log("%s %s: %s" % (kind, victim, {s: (res[s]["first"], res[s]["all"]) for s in SYSTEMS}))
    if kind == "crash":
        b.restart(h)
        took, restarted = b.recover("after crash of %s" % victim)
    else:
        b.lab.clear_loss(victim)
        took, restarted = b.recover("after silencing %s" % victim)
        res["heal"] = took
        res["heal_restarted"] = restarted
        log("healed %s: alive everywhere after %s" % (victim, took))
    return res


def sc_detect(b, a, kind):
    runs = []
    for i in range(a.runs):
        victim = b.names[1 + i % (len(b.names) - 1)]
        log("%s run %d/%d: victim %s" % (kind, i + 1, a.runs, victim))
        runs.append(detect_run(b, a, victim, kind))
        time.sleep(2)
    out = {"runs": runs}
    for s in SYSTEMS:
        v = [r[s]["all"] for r in runs if r[s]["all"] is not None]
        out[s] = {"median": statistics.median(v) if v else None,
                  "max": max(v) if v else None, "missed": len(runs) - len(v),
                  "all": [r[s]["all"] for r in runs]}
    return out


def sc_pause(b, a):
    out = []
    victim = b.names[-1]
    h = b.hosts[victim]
    others = [x for x in b.names if x != victim]
    for d in a.pauses:
        log("pause %s for %.1f s" % (victim, d))
        b.skip.add(victim)
        b.drop_conns(victim)
        t0 = time.time()
        try:
            for s in SYSTEMS:
                b.kill(h, s, signal.SIGSTOP)
            time.sleep(d)
        finally:
            for s in SYSTEMS:
                b.kill(h, s, signal.SIGCONT)
            b.skip.discard(victim)
        time.sleep(10)
        row = {"seconds": d}
        for s in SYSTEMS:
            by = set()
            for t, rnd in b.rounds_between(t0, time.time()):
                for obs, v in rnd[s].items():
                    if obs in others and v and v.get(victim, ("?",))[0] == "dead":
                        by.add(obs)
            row[s] = sorted(by)
        log("pause %.1f s: dead at %s" % (d, {s: row[s] for s in SYSTEMS}))
        row["heal"], row["restarted"] = b.recover("after pause of %s" % victim)
        out.append(row)
    return out


def sc_gray(b, a):
    gray = b.names[-1]
    others = [x for x in b.names if x != gray]
    log("gray host %s: 50%% loss in and out for %.0f s" % (gray, a.gray_seconds))
    t0 = time.time()
    b.lab.set_loss(gray, 50, 50)
    time.sleep(a.gray_seconds)
    t1 = time.time()
    b.lab.clear_loss(gray)
    res = {"seconds": t1 - t0, "host": gray}
    rounds = b.rounds_between(t0, t1)
    for s in SYSTEMS:
        seen = total = anyone = nrounds = 0
        own_dead = {}
        own_peer_s = 0.0
        own_samples = 0
        own_any = 0.0
        own_longest, own_start = 0.0, None
        prev_t = t0
        for t, rnd in rounds:
            dt = t - prev_t
            prev_t = t
            views = [(o, v) for o, v in rnd[s].items() if o in others and v]
            if views:
                nrounds += 1
                d = [v.get(gray, ("?",))[0] == "dead" for _, v in views]
                seen += sum(d)
                total += len(d)
                anyone += any(d)
            gv = rnd[s].get(gray)
            if gv:
                own_samples += 1
                dead_peers = [m for m in others if gv.get(m, ("?",))[0] == "dead"]
                for m in dead_peers:
                    own_dead[m] = own_dead.get(m, 0.0) + dt
                own_peer_s += dt * len(dead_peers)
                if dead_peers:
                    own_any += dt
                    own_start = own_start if own_start is not None else t
                elif own_start is not None:
                    own_longest = max(own_longest, t - own_start)
                    own_start = None
        if own_start is not None:
            own_longest = max(own_longest, t1 - own_start)
        _, episodes, longest, _ = verdicts(b, s, t0, t1, [gray], others)
        res[s] = {"share_dead": seen / total if total else None,
                  "share_dead_anyone": anyone / nrounds if nrounds else None,
                  "episodes": episodes, "longest_episode": longest,
                  "own_dead_peers": len(own_dead), "own_peer_seconds": own_peer_s,
                  "own_any_dead_seconds": own_any, "own_longest": own_longest,
                  "own_view_samples": own_samples, "samples": len(rounds)}
    log("gray: %s" % {s: res[s] for s in SYSTEMS})
    res["heal"], res["restarted"] = b.recover("after gray host")
    return res


def sc_loss(b, a):
    out = []
    for x in a.loss:
        log("loss %d%% on every path for %.0f s" % (x, a.loss_seconds))
        for nm in b.names:
            b.lab.set_loss(nm, x, 0)
        t0 = time.time()
        time.sleep(a.loss_seconds)
        t1 = time.time()
        for nm in b.names:
            b.lab.clear_loss(nm)
        row = {"loss": x, "seconds": t1 - t0}
        for s in SYSTEMS:
            c, ep, longest, per = verdicts(b, s, t0, t1, b.names)
            row[s] = {"false_dead": c, "episodes": ep, "longest": longest, "per_member": per}
        log("loss %d%%: %s" % (x, {s: row[s] for s in SYSTEMS}))
        row["heal"], row["restarted"] = b.recover("after %d%% loss" % x)
        out.append(row)
    return out


# ---- output ------------------------------------------------------------------------

def f_s(v):
    return "-" if v is None else "%.2f s" % v


def f_r(v):
    if v is None:
        return "-"
    return "inf" if v == float("inf") else "%.2fx" % v


def table(title, rows):
    print()
    print(title)
    w = max(len(r[0]) for r in rows)
    print("  %-*s  %-22s  %-22s  %-8s  %s" % (w, "", "meshvisor", "Serf", "ratio", "goal"))
    for r in rows:
        print("  %-*s  %-22s  %-22s  %-8s  %s" % (w, r[0], r[1], r[2], r[3], r[4]))


def report(all_res, a):
    print()
    print("=" * 78)
    print("meshvisor vs HashiCorp Serf, side by side (bench_fd_serf.py)")
    print("command: %s" % " ".join(sys.argv))
    print("meshvisor %s (shipped defaults); %s; %d cores; poll %.2f s" %
          (a.meshvisor, a.serf_version, os.cpu_count() or 0, a.poll))
    for n, res in all_res.items():
        print()
        print("----- N = %d -----" % n)
        if "poll_mean_s" in res:
            print("  sampling rounds (every agent of both systems asked): every %.2f s on "
                  "average, longest gap %.2f s" % (res["poll_mean_s"], res["poll_max_s"]))
        if res.get("error"):
            print("  FAILED: %s" % res["error"])
        for e in res.get("errors", []):
            print("  FAILED scenario %s" % e)
        if "idle" in res:
            r = res["idle"]["per_agent"]
            m, s = r[MV], r[SERF]
            table("idle traffic per agent (mean of %d, %.0f s; IP bytes)" %
                  (n, res["idle"]["seconds"]), [
                ("sent packets/s", "%.1f" % m["pps_sent"], "%.1f" % s["pps_sent"],
                 f_r(ratio(m["pps_sent"], s["pps_sent"])), "<= 2.00x"),
                ("sent KB/s", "%.2f" % (m["Bps_sent"] / 1000), "%.2f" % (s["Bps_sent"] / 1000),
                 f_r(ratio(m["Bps_sent"], s["Bps_sent"])), "-"),
                ("sent+received packets/s", "%.1f" % m["pps"], "%.1f" % s["pps"],
                 f_r(ratio(m["pps"], s["pps"])), "<= 2.00x"),
                ("sent+received KB/s", "%.2f" % (m["Bps"] / 1000), "%.2f" % (s["Bps"] / 1000),
                 f_r(ratio(m["Bps"], s["Bps"])), "-")])
        for kind, goal in (("crash", "<= 0.40x"), ("silent", "<= 1.00x")):
            if kind not in res:
                continue
            r = res[kind]
            m, s = r[MV], r[SERF]
            rows = [("median (%d runs)" % len(r["runs"]), f_s(m["median"]), f_s(s["median"]),
                     f_r(ratio(m["median"], s["median"])), goal),
                    ("max", f_s(m["max"]), f_s(s["max"]), f_r(ratio(m["max"], s["max"])), goal),
                    ("runs", " ".join("%.2f" % v if v is not None else "miss"
                                      for v in m["all"]),
                     " ".join("%.2f" % v if v is not None else "miss" for v in s["all"]), "", "")]
            if kind == "silent":
                heal = [(x["heal"][MV], x["heal"][SERF]) for x in r["runs"]]
                rows.append(("heal -> alive everywhere",
                             " ".join(f_s(h[0]) for h in heal),
                             " ".join(f_s(h[1]) for h in heal), "", "seconds"))
            table("%s -> dead at every survivor" % ("kill -9" if kind == "crash" else
                                                    "silent host (all its packets dropped)"),
                  rows)
        if "pause" in res:
            rows = []
            for r in res["pause"]:
                rows.append(("SIGSTOP %.0f s: dead at" % r["seconds"],
                             ",".join(r[MV]) or "never", ",".join(r[SERF]) or "never", "",
                             "never (<= 4 s)"))
            table("pause of a live agent (both agents of %s), watched 10 s after SIGCONT" %
                  "n%d" % n, rows)
        if "gray" in res:
            r = res["gray"]
            m, s = r[MV], r[SERF]

            def pc(v):
                return "-" if v is None else "%.1f%%" % (100 * v)
            table("gray host %s: 50%% loss in and out, %.0f s" % (r["host"], r["seconds"]), [
                ("share of time seen dead", pc(m["share_dead"]), pc(s["share_dead"]),
                 f_r(ratio(m["share_dead"], s["share_dead"])), "<= Serf's"),
                ("  ... by anyone", pc(m["share_dead_anyone"]), pc(s["share_dead_anyone"]),
                 "", ""),
                ("state changes (episodes)", "%d" % m["episodes"], "%d" % s["episodes"], "",
                 "<= 1 per 5 min"),
                ("longest episode", f_s(m["longest_episode"]), f_s(s["longest_episode"]), "",
                 ""),
                ("peers it declares dead", "%d" % m["own_dead_peers"],
                 "%d" % s["own_dead_peers"], "", "0"),
                ("  peer-seconds dead", "%.0f" % m["own_peer_seconds"],
                 "%.0f" % s["own_peer_seconds"], "", ""),
                ("  longest with any dead", f_s(m["own_longest"]), f_s(s["own_longest"]), "",
                 ""),
                ("  its own view: samples", "%d of %d" % (m["own_view_samples"], m["samples"]),
                 "%d of %d" % (s["own_view_samples"], s["samples"]), "", "")])
        if "loss" in res:
            rows = []
            for r in res["loss"]:
                m, s = r[MV], r[SERF]
                rows.append(("%d%%: false dead verdicts" % r["loss"], "%d" % m["false_dead"],
                             "%d" % s["false_dead"],
                             f_r(ratio(m["false_dead"], s["false_dead"])),
                             "0 (Serf's or fewer)" if r["loss"] >= 36 else ""))
                rows.append(("     episodes / longest", "%d / %s" % (m["episodes"],
                                                                      f_s(m["longest"])),
                             "%d / %s" % (s["episodes"], f_s(s["longest"])), "", ""))
            table("loss on every path, %.0f s each" % res["loss"][0]["seconds"], rows)
        notes = res.get("restarts", [])
        if notes:
            print("  restarted after a scenario (not seen alive within --settle): %s" % notes)


def run_size(a, n):
    class Args:
        meshvisor = a.meshvisor
        testcert = None
        port_base = a.port_base
        port_count = 100
    t = mvtest.Test(Args)
    res = {}
    b = None
    try:
        b = Bench(a, n, t)
        b.start()
        for sc in a.scenarios:
            log("N=%d scenario %s" % (n, sc))
            try:
                if sc == "idle":
                    res["idle"] = sc_idle(b, a)
                elif sc in ("crash", "silent"):
                    res[sc] = sc_detect(b, a, sc)
                elif sc == "pause":
                    res["pause"] = sc_pause(b, a)
                elif sc == "gray":
                    res["gray"] = sc_gray(b, a)
                elif sc == "loss":
                    res["loss"] = sc_loss(b, a)
            except Exception as e:
                # one broken scenario does not cost the others: heal, go on
                import traceback
                traceback.print_exc()
                res.setdefault("errors", []).append("%s: %s" % (sc, e))
                for nm in b.names:
                    b.lab.clear_loss(nm)
                for h in b.hosts.values():
                    for p in (h.mv.proc, h.serf):
                        if p is not None and p.poll() is None:
                            os.kill(p.pid, signal.SIGCONT)
                b.skip.clear()
                for h in b.hosts.values():
                    b.restart(h)
                b.recover("after the failed scenario %s" % sc)
    except Exception as e:
        import traceback
        traceback.print_exc()
        res["error"] = str(e)
        t.dump_logs()
    finally:
        if b:
            b.close()
            if len(b.rounds) > 1:  # what the sampler achieved (a round asks every agent)
                gaps = [y[0] - x[0] for x, y in zip(b.rounds, b.rounds[1:])]
                res["poll_mean_s"] = statistics.mean(gaps)
                res["poll_max_s"] = max(gaps)
        mvtest._cleanup()
        if b:
            b.lab.down()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.abspath(os.path.join(os.path.dirname(__file__),
                                                                   "..", "..")))
    ap.add_argument("--meshvisor", default=None,
                    help="the binary (default ROOT/build-test/meshvisor)")
    ap.add_argument("--serf", default="serf")
    ap.add_argument("--sizes", default="5")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--runs", type=int, default=3, help="runs of crash and of silent")
    ap.add_argument("--loss", default="19,36", help="loss rates in %%, comma-separated")
    ap.add_argument("--loss-seconds", type=float, default=90)
    ap.add_argument("--gray-seconds", type=float, default=90)
    ap.add_argument("--minutes", type=float, default=None,
                    help="sets --loss-seconds and --gray-seconds (the issue: 10)")
    ap.add_argument("--pauses", default="2,3,4,5")
    ap.add_argument("--idle-seconds", type=float, default=30)
    ap.add_argument("--poll", type=float, default=0.25)
    ap.add_argument("--settle", type=float, default=90)
    ap.add_argument("--detect-timeout", type=float, default=60)
    ap.add_argument("--port-base", type=int, default=29400)
    ap.add_argument("--json", default=None, help="also write the figures as JSON (- stdout)")
    a = ap.parse_args()
    a.meshvisor = os.path.abspath(a.meshvisor or os.path.join(a.root, "build-test", "meshvisor"))
    if not os.access(a.meshvisor, os.X_OK):
        sys.exit("bench_fd_serf: no meshvisor binary at %s (build, or --meshvisor)" % a.meshvisor)
    if os.geteuid() != 0:
        sys.exit("bench_fd_serf: needs root (network namespaces, nftables)")
    if not shutil.which(a.serf):
        sys.exit("bench_fd_serf: no serf binary (apt-get install -y serf, or --serf PATH)")
    if a.minutes:
        a.loss_seconds = a.gray_seconds = 60 * a.minutes
    a.scenarios = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    for s in a.scenarios:
        if s not in SCENARIOS:
            sys.exit("unknown scenario %r (%s)" % (s, ", ".join(SCENARIOS)))
    try:
        a.sizes = [int(x) for x in a.sizes.split(",")]
        a.loss = [int(x) for x in a.loss.split(",") if x.strip()]
        a.pauses = [float(x) for x in a.pauses.split(",") if x.strip()]
    except ValueError as e:
        sys.exit("bad number in --sizes, --loss or --pauses: %s" % e)
    if any(n < 3 or n > 200 for n in a.sizes):
        sys.exit("--sizes: each between 3 and 200")
    if any(x < 0 or x > 100 for x in a.loss):
        sys.exit("--loss: percentages 0..100")
    v = subprocess.run([a.serf, "version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    pkg = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "serf"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    a.serf_version = "Serf %s%s" % (v.stdout.splitlines()[0] if v.stdout else "?",
                                    " (Debian package %s)" % pkg.stdout if pkg.stdout else "")
    mvha.ensure_nft()
    sweep_stale()
    log("bench: %s" % " ".join(sys.argv))
    all_res = {}
    for n in a.sizes:
        all_res[n] = run_size(a, n)
    report(all_res, a)
    if a.json:
        doc = {"command": sys.argv, "meshvisor": a.meshvisor, "serf": a.serf_version,
               "poll_s": a.poll, "sizes": {str(k): v for k, v in all_res.items()}}
        text = json.dumps(doc, indent=1, default=list)
        if a.json == "-":
            print(text)
        else:
            with open(a.json, "w") as f:
                f.write(text + "\n")
    sys.exit(1 if any(r.get("error") or r.get("errors") for r in all_res.values()) else 0)


if __name__ == "__main__":
    main()
