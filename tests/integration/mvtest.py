"""mvtest — shared harness for meshvisor's real-process integration tests.

Each test script makes a Cluster: a temporary directory with a cluster CA
and certificates made by the product CLI (`meshvisor tls ...`), one JSON
config per agent, and real `meshvisor agent` processes on loopback ports
taken from the range the test was given (so tests can run in parallel).
The cluster is observed the way an operator would, through the client CLI
(`meshvisor members --json`, `meshvisor status --json`).

Whatever happens — assertion, exception, timeout, SIGTERM from ctest — every
process the test started is killed and the temporary directory removed.
Agents also get PR_SET_PDEATHSIG, so even a SIGKILLed test leaves no agent
behind. On failure the tail of every agent's log is printed first.

Usage in a test script:

    import mvtest
    def main(t):                       # t: mvtest.Test
        c = t.cluster(5)               # certs + configs for n1..n5
        c.start_all(seed="n1")
        c.wait_converged(timeout=20)
        ...
    mvtest.run(main)

Environment: MV_KEEP_TMP=1 keeps the temporary directory for a post-mortem.
"""
import argparse
import atexit
import ctypes
import glob
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback

import mvwire

T0 = time.monotonic()


def log(msg):
    print("[%7.2fs] %s" % (time.monotonic() - T0, msg), flush=True)


class TestFailure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def wait_until(pred, timeout, what, interval=0.1):
    """Polls pred() until it returns a true value (returned) or timeout
    seconds pass (TestFailure naming `what` and the last value seen)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = pred()
        except TestFailure as e:
            last = "error: %s" % e
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise TestFailure("timed out after %.1fs waiting for %s (last: %r)" %
                              (timeout, what, last))
        time.sleep(interval)


# ---- process hygiene -------------------------------------------------------

_PROCS = []
_DIRS = []
_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG = 1


def _child_setup():
    # The agent dies with the test, even when the test is SIGKILLed.
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _cleanup():
    for p in _PROCS:
        if p.poll() is None:
            try:
                p.kill()  # works on SIGSTOPped processes too
            except OSError:
                pass
    for p in _PROCS:
        try:
            p.wait(timeout=10)
        except Exception:
            pass
    _PROCS.clear()
    if os.environ.get("MV_KEEP_TMP"):
        for d in _DIRS:
            log("keeping %s (MV_KEEP_TMP)" % d)
    else:
        for d in _DIRS:
            shutil.rmtree(d, ignore_errors=True)
    _DIRS.clear()


atexit.register(_cleanup)


def _on_signal(signum, frame):
    log("got signal %d: cleaning up" % signum)
    _cleanup()
    os._exit(128 + signum)


for _s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_s, _on_signal)


# ---- the harness -----------------------------------------------------------

class Certs:
    """A cluster CA and certificates, made with `meshvisor tls` (and the
    mv_testcert helper for the deliberately broken ones)."""

    def __init__(self, binary, testcert, root):
        self.binary = binary
        self.testcert = testcert
        self.root = root
        self._other = {}
        self.ca_dir = os.path.join(root, "ca")
        os.makedirs(self.ca_dir, exist_ok=True)
        run_cmd([binary, "tls", "ca", "create", "--dir", self.ca_dir], "create CA")
        self.ca_cert = self._find_cert(self.ca_dir, prefer="ca")

    @staticmethod
    def _find_cert(d, prefer=None):
        files = sorted(f for f in glob.glob(os.path.join(d, "*"))
                       if os.path.isfile(f) and "key" not in os.path.basename(f))
        pem = [f for f in files if open(f, "rb").read(64).startswith(b"-----BEGIN CERT")]
        if prefer:
            pref = [f for f in pem if prefer in os.path.basename(f)]
            if pref:
                return pref[0]
        check(pem, "no certificate found in %s (files: %s)" % (d, os.listdir(d)))
        return pem[0]

    @staticmethod
    def _find_key(d):
        keys = [f for f in glob.glob(os.path.join(d, "*"))
                if open(f, "rb").read(64).startswith(b"-----BEGIN") and
                b"PRIVATE KEY" in open(f, "rb").read(64)]
        check(keys, "no private key found in %s (files: %s)" % (d, os.listdir(d)))
        return keys[0]

    def make(self, role, name, subdir=None, ip="127.0.0.1", ca_dir=None):
        """Issues a certificate; returns (cert_path, key_path)."""
        out = os.path.join(self.root, "certs", subdir or name)
        os.makedirs(out, exist_ok=True)
        cmd = [self.binary, "tls", "cert", "create", "--role", role, "--name", name,
               "--ca-dir", ca_dir or self.ca_dir, "--out-dir", out]
        if ip:
            cmd += ["--ip", ip]
        run_cmd(cmd, "create %s certificate %s" % (role, name))
        return self._find_cert(out, prefer=name), self._find_key(out)

    def other_ca(self, role, name):
        """A certificate of a valid shape signed by a different CA."""
        cached = self._other.get((role, name))
        if cached:
            return cached
        d = os.path.join(self.root, "other-ca")
        if not os.path.isdir(d):
            os.makedirs(d)
            run_cmd([self.binary, "tls", "ca", "create", "--dir", d], "create other CA")
        self._other[(role, name)] = self.make(role, name, subdir="other-" + name, ca_dir=d)
        return self._other[(role, name)]

    def special(self, kind, role, name):
        """Certificates the product CLI refuses to make, from the
        tests/unit/mv_testcert helper: kind "expired" (our CA, validity
        over) or "norole" (our CA, no role in the subject)."""
        check(self.testcert and os.access(self.testcert, os.X_OK),
              "mv_testcert helper not built (%r)" % self.testcert)
        out = os.path.join(self.root, "certs", "%s-%s" % (kind, name))
        os.makedirs(out, exist_ok=True)
        cert = os.path.join(out, name + ".pem")
        key = os.path.join(out, name + "-key.pem")
        cmd = [self.testcert, kind, "--name", name, "--ca-dir", self.ca_dir,
               "--cert", cert, "--key", key]
        if kind != "norole":
            cmd += ["--role", role]
        run_cmd(cmd, "mv_testcert %s" % kind)
        return cert, key


def run_cmd(cmd, what, timeout=30):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise TestFailure("%s failed (exit %d): %s\nstdout: %s\nstderr: %s" %
                          (what, r.returncode, " ".join(cmd), r.stdout, r.stderr))
    return r


class Agent:
    def __init__(self, cluster, name, peer_port, rpc_port, metrics_port=0):
        self.c = cluster
        self.name = name
        self.peer_port = peer_port
        self.rpc_port = rpc_port
        # 0: no metrics listener (the default here, so that tests with many
        # agents need no third port each; Cluster(metrics=True) gives one)
        self.metrics_port = metrics_port
        self.dir = os.path.join(cluster.root, "agents", name)
        os.makedirs(self.dir, exist_ok=True)
        self.cert, self.key = cluster.certs.make("node", name)
        self.proc = None
        self.log_path = None
        self.starts = 0
        self.binary = None  # the agent's own binary (another release); None: the cluster's

    @property
    def peer_addr(self):
        return "127.0.0.1:%d" % self.peer_port

    @property
    def rpc_addr(self):
        return "127.0.0.1:%d" % self.rpc_port

    def write_config(self, join=(), extra=None):
        cfg = {
            "name": self.name,
            "bind": "127.0.0.1",
            "advertise": "127.0.0.1",
            "peer_port": self.peer_port,
            "rpc_port": self.rpc_port,
            "join": list(join),
            "tls": {"ca": self.c.certs.ca_cert, "cert": self.cert, "key": self.key},
            "data_dir": os.path.join(self.dir, "data"),
            "log_level": "debug",
            "libvirt_uri": "test:///default",
        }
        # An agent of another release (a `binary` of its own: the mixed-version
        # test's previous release) may not know the metrics section, and
        # refuses unknown keys: it gets none (and has no listener to place)
        # unless its release has one (binary_has_metrics: 0.2.0 and later,
        # which listen on 7948 by default: each agent needs its own port or 0).
        if getattr(self, "binary", None) is None or getattr(self, "binary_has_metrics", False):
            cfg["metrics"] = {"bind": "127.0.0.1", "port": self.metrics_port}
        if not self.c.defaults:
            cfg["swim"] = dict(self.c.swim)
        cfg.update(self.c.agent_extra)
        if extra:
            cfg.update(extra)
        os.makedirs(cfg["data_dir"], exist_ok=True)
        self.config = os.path.join(self.dir, "config-%d.json" % self.starts)
        with open(self.config, "w") as f:
            json.dump(cfg, f, indent=2)

    def start(self, join=(), extra=None, wait=True, env=None, journal_stream=False):
        """env: variables added to the agent's environment; journal_stream:
        set $JOURNAL_STREAM to the log file, as systemd does for a service
        whose stderr is the journal."""
        check(self.proc is None or self.proc.poll() is not None,
              "%s already running" % self.name)
        self.write_config(join, extra)
        self.log_path = os.path.join(self.dir, "agent-%d.log" % self.starts)
        self.starts += 1
        logf = open(self.log_path, "w")
        penv = None
        if env or journal_stream:
            penv = dict(os.environ)
            penv.update(env or {})
            if journal_stream:
                st = os.fstat(logf.fileno())
                penv["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
        self.proc = subprocess.Popen([self.binary or self.c.binary, "agent", "--config",
                                      self.config],
                                     stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, preexec_fn=_child_setup,
                                     env=penv)
        logf.close()
        _PROCS.append(self.proc)
        log("started %s pid %d peer %s rpc %s join %s" %
            (self.name, self.proc.pid, self.peer_addr, self.rpc_addr, list(join)))
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=15):
        def ready():
            if self.proc.poll() is not None:
                raise TestFailure("%s exited with %s during start:\n%s" %
                                  (self.name, self.proc.returncode, self.log_tail()))
            try:
                with socket.create_connection(("127.0.0.1", self.rpc_port), timeout=0.5):
                    return True
            except OSError:
                return False
        wait_until(ready, timeout, "%s to listen on its RPC port" % self.name)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def scrape(self, path="/metrics", method="GET", timeout=5, creds=None):
        """One HTTP request to the agent's metrics listener: (status,
        content type, body text). creds (ca, cert, key): over TLS (a
        listener with metrics.tls), cert and key may be None."""
        import http.client
        if creds is not None:
            ca, cert, key = creds
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
            ctx.check_hostname = False
            ctx.load_verify_locations(ca)
            if cert:
                ctx.load_cert_chain(cert, key)
            conn = http.client.HTTPSConnection("127.0.0.1", self.metrics_port, timeout=timeout,
                                               context=ctx)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.metrics_port, timeout=timeout)
        try:
            conn.request(method, path)
            r = conn.getresponse()
            return r.status, r.getheader("Content-Type", ""), r.read().decode()
        finally:
            conn.close()

    def signal(self, sig):
        log("sending %s to %s (pid %d)" % (signal.Signals(sig).name, self.name, self.proc.pid))
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("%s did not exit within %.1fs" % (self.name, timeout))

    def log_text(self, all_starts=False):
        paths = sorted(glob.glob(os.path.join(self.dir, "agent-*.log"))) if all_starts \
            else [self.log_path]
        out = ""
        for p in paths:
            if p and os.path.exists(p):
                with open(p, errors="replace") as f:
                    out += f.read()
        return out

    def log_tail(self, n=40):
        lines = self.log_text().splitlines()
        return "\n".join(lines[-n:])

    # -- client CLI against this agent --

    def cli(self, *args, role="operator", creds=None, timeout=15, errors=None):
        """Runs `meshvisor ARGS --addr <this agent's RPC> --ca --cert --key`.
        creds: (ca, cert, key) to override the default client identity.
        errors: how undecodable output bytes are handled (default strict)."""
        ca, cert, key = creds or self.c.client_creds(role)
        cmd = [self.c.binary] + list(args) + ["--addr", self.rpc_addr]
        if ca:
            cmd += ["--ca", ca]
        if cert:
            cmd += ["--cert", cert]
        if key:
            cmd += ["--key", key]
        # flags only: MESHVISOR_* from the caller's shell must not leak in
        env = {k: v for k, v in os.environ.items() if not k.startswith("MESHVISOR_")}
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL, env=env, errors=errors)

    def members(self, role="viewer"):
        """{name: member dict} as this agent sees the cluster."""
        r = self.cli("members", "--json", role=role)
        if r.returncode != 0:
            raise TestFailure("members on %s failed (exit %d): %s" %
                              (self.name, r.returncode, r.stderr.strip()))
        try:
            doc = json.loads(r.stdout)
        except ValueError as e:
            raise TestFailure("members --json on %s is not JSON (%s): %r" %
                              (self.name, e, r.stdout[:400]))
        return {m["name"]: m for m in doc["members"]}

    def status(self, role="viewer"):
        r = self.cli("status", "--json", role=role)
        if r.returncode != 0:
            raise TestFailure("status on %s failed (exit %d): %s" %
                              (self.name, r.returncode, r.stderr.strip()))
        return json.loads(r.stdout)

    # -- hypervisor layer (issue 3): nodes, vms, vm operations --

    def cli_json(self, *args, role="viewer", timeout=15):
        """Runs `meshvisor ARGS --json`; returns the parsed document, or
        raises TestFailure with the exit status and stderr."""
        # undecodable bytes become U+FFFD, so a garbled field fails an
        # assertion that names it rather than the decoder
        r = self.cli(*(list(args) + ["--json"]), role=role, timeout=timeout, errors="replace")
        if r.returncode != 0:
            raise TestFailure("%s on %s failed (exit %d): %s" %
                              (" ".join(args), self.name, r.returncode, r.stderr.strip()))
        try:
            return json.loads(r.stdout)
        except ValueError as e:
            raise TestFailure("%s --json on %s is not JSON (%s): %r" %
                              (" ".join(args), self.name, e, r.stdout[:400]))

    def nodes(self, role="viewer"):
        """{host name: node dict} from `meshvisor nodes --json` on this agent."""
        return {n["name"]: n for n in self.cli_json("nodes", role=role)["nodes"]}

    def vms(self, node=None, role="viewer"):
        """{vm name: vm dict} from `meshvisor vms --json [--node NODE]`."""
        args = ["vms"] + (["--node", node] if node else [])
        return {v["name"]: v for v in self.cli_json(*args, role=role)["vms"]}

    # -- failover (issue 5) --

    def vm_copies(self, role="viewer"):
        """{vm name: [(host, state, owner_epoch), ...]}: every copy this agent
        knows of (a VM that moved or was restarted shows once per host)."""
        out = {}
        for v in self.cli_json("vms", role=role)["vms"]:
            out.setdefault(v["name"], []).append((v["node"], v["state"],
                                                  v.get("owner_epoch", 0)))
        return out

    def ha(self, role="viewer"):
        """`meshvisor ha --json` (its exit status 1 only says "not every HA VM
        survives the loss of one host")."""
        r = self.cli("ha", "--json", role=role)
        if r.returncode not in (0, 1) or not r.stdout.strip():
            raise TestFailure("ha on %s failed (exit %d): %s" %
                              (self.name, r.returncode, r.stderr.strip()))
        return json.loads(r.stdout)

    def events(self, backlog=300, seconds=1.5, role="viewer"):
        """The event stream (`meshvisor events --json`): the last `backlog`
        events and whatever arrives within `seconds`, as dicts."""
        ca, cert, key = self.c.client_creds(role)
        cmd = [self.c.binary, "events", "--backlog", str(backlog), "--json",
               "--addr", self.rpc_addr, "--ca", ca, "--cert", cert, "--key", key]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             stdin=subprocess.DEVNULL, preexec_fn=_child_setup)
        time.sleep(seconds)
        p.send_signal(signal.SIGINT)
        try:
            out, err = p.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        evs = [json.loads(l) for l in out.splitlines() if l.strip().startswith("{")]
        if not evs:
            raise TestFailure("no events from %s: %s" % (self.name, err.strip()[-300:]))
        return evs


class Cluster:
    def __init__(self, test, n, swim=None, agent_extra=None, defaults=False, metrics=False):
        """swim: overrides on top of FAST_SWIM; defaults=True writes no swim
        settings at all, so the agents run the shipped defaults; metrics=True
        gives each agent a metrics listener on a port of its own."""
        self.t = test
        self.metrics = metrics
        self.binary = test.binary
        self.root = test.tmp
        self.certs = test.certs
        self.defaults = defaults
        self.swim = dict(DEFAULT_SWIM if defaults else FAST_SWIM)
        if swim:
            self.swim.update(swim)
        self.agent_extra = agent_extra or {}
        self.agents = {}
        for i in range(1, n + 1):
            self.add("n%d" % i)

    def add(self, name):
        a = Agent(self, name, self.t.port(), self.t.port(),
                  self.t.port() if self.metrics else 0)
        self.agents[name] = a
        return a

    def client_creds(self, role):
        return self.t.client_creds(role)

    def __getitem__(self, name):
        return self.agents[name]

    def running(self):
        return [a for a in self.agents.values() if a.alive()]

    def wait_propagated(self, timeout=30):
        """A barrier for "nothing changed" checks: reads each running host's
        own record version (incarnation, version) from itself, then waits
        until every running agent holds at least that version of every one
        of them. Whatever any host had published before the call has then
        reached every view, so comparing views afterwards does not depend
        on how long gossip takes (no sleep-then-compare). A change a host
        publishes only later (its next libvirt refresh) is not covered."""
        own = {}

        def own_records():
            for a in self.running():
                d = a.nodes().get(a.name, {})
                if not d.get("version"):
                    return None  # not published yet: nothing to wait for would be a lie
                own[a.name] = (d.get("incarnation", 0), d.get("version", 0))
            return True

        wait_until(own_records, timeout, "every running agent to publish its own record")

        def seen_everywhere():
            behind = {}
            for b in self.running():
                view = b.nodes()
                for h, v in own.items():
                    got = (view.get(h, {}).get("incarnation", 0), view.get(h, {}).get("version", 0))
                    if got < v:
                        behind["%s sees %s" % (b.name, h)] = (got, v)
            return True if not behind else None

        wait_until(seen_everywhere, timeout, "every host's own record version reached every agent")

    def start_all(self, seed="n1"):
        s = self.agents[seed]
        s.start()
        for a in self.agents.values():
            if a is not s:
                a.start(join=[s.peer_addr], wait=False)
        for a in self.agents.values():
            a.wait_ready()

    def start_each(self, extras, seed="n1"):
        """Like start_all, with per-agent config overrides: extras maps an
        agent name to a dict merged into its config (e.g. libvirt_uri, node)."""
        s = self.agents[seed]
        s.start(extra=extras.get(seed))
        for a in self.agents.values():
            if a is not s:
                a.start(join=[s.peer_addr], extra=extras.get(a.name), wait=False)
        for a in self.agents.values():
            a.wait_ready()

    def wait_states(self, timeout=30):
        """Every running agent has every running agent's node state (from
        `meshvisor nodes --json`). Returns the seconds it took."""
        want = set(a.name for a in self.running())
        t0 = time.monotonic()

        def pred():
            bad = {}
            for a in self.running():
                ns = a.nodes()
                miss = sorted(n for n in want if n not in ns or not ns[n].get("known_state"))
                if miss:
                    bad[a.name] = miss
            return True if not bad else None
        wait_until(pred, timeout, "every agent to know every node state of %s" % sorted(want),
                   0.25)
        return time.monotonic() - t0

    def views(self, observers=None):
        """{observer: {member: dict}} from each running agent."""
        obs = observers or self.running()
        return {a.name: a.members() for a in obs}

    def wait_state(self, member, states, timeout, observers=None, addr=None):
        """Waits until every observer (default: every running agent but
        `member`) sees `member` in one of `states` (and at `addr` if given).
        Returns the seconds it took."""
        if isinstance(states, str):
            states = (states,)
        obs = observers or [a for a in self.running() if a.name != member]
        t0 = time.monotonic()

        def done():
            seen = {}
            for a in obs:
                m = a.members().get(member)
                seen[a.name] = (m["state"], m["addr"]) if m else None
            ok = all(s is not None and s[0] in states and (addr is None or s[1] == addr)
                     for s in seen.values())
            return True if ok else seen
        last = {}

        def pred():
            r = done()
            if r is True:
                return True
            last["seen"] = r
            return False
        try:
            wait_until(pred, timeout, "%s to be %s at %s" %
                       (member, "/".join(states), ",".join(a.name for a in obs)), 0.2)
        except TestFailure as e:
            raise TestFailure("%s; last seen: %s" % (e, last.get("seen")))
        return time.monotonic() - t0

    def wait_converged(self, timeout=30, names=None):
        """Every running agent sees every name in `names` (default: all
        running agents) alive."""
        want = set(names or [a.name for a in self.running()])
        t0 = time.monotonic()
        last = {}

        def pred():
            bad = {}
            for obs, ms in self.views().items():
                wrong = {n: (ms[n]["state"] if n in ms else "missing")
                         for n in want if n not in ms or ms[n]["state"] != "alive"}
                if wrong:
                    bad[obs] = wrong
            last["bad"] = bad
            return not bad
        try:
            wait_until(pred, timeout, "all of %s alive everywhere" % sorted(want), 0.25)
        except TestFailure as e:
            raise TestFailure("%s; disagreeing views: %s" % (e, last.get("bad")))
        dt = time.monotonic() - t0
        log("converged: %d agents see %s alive (%.1fs)" % (len(self.running()), sorted(want), dt))
        return dt

    def suspicion_bounds(self, n):
        """(min, max) suspicion timeout in seconds for an n-member cluster,
        per swim.h: min = mult*log10(n)*interval, max = max_mult*min."""
        import math
        s = self.swim
        mn = s["suspicion_min_mult"] * max(1.0, math.log10(n)) * s["probe_interval_ms"] / 1000.0
        return mn, mn * s["suspicion_max_mult"]

    def detection_bound(self, n):
        """A generous bound for 'crashed -> dead at every member': the time
        for someone to probe it (round robin: at most n intervals), the probe
        and indirect probe timeouts, the longest suspicion, and a few gossip
        rounds to spread the verdict; doubled for a loaded 2-core CI box."""
        s = self.swim
        iv = s["probe_interval_ms"] / 1000.0
        _, smax = self.suspicion_bounds(n)
        spread = 5 * s["gossip_interval_ms"] / 1000.0 + 2 * iv
        return 2.0 * (n * iv + iv + smax + spread)


# The shipped defaults (agent/core/swim.c swim_config_default), for arithmetic only.
DEFAULT_SWIM = {
    "probe_interval_ms": 1000,
    "probe_timeout_ms": 500,
    "indirect_probes": 3,
    "suspicion_min_mult": 4,
    "suspicion_max_mult": 6,
    "gossip_interval_ms": 200,
    "push_pull_interval_ms": 30000,
    "join_retry_ms": 1000,
}

# Faster than the shipped defaults so the suite stays quick; the benchmark
# (tests/bench/bench_agents.sh) measures the defaults.
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


class Test:
    def __init__(self, args):
        self.binary = os.path.abspath(args.meshvisor)
        self.testcert = os.path.abspath(args.testcert) if args.testcert else None
        self.port_base = args.port_base
        self.port_end = args.port_base + args.port_count
        self._next_port = args.port_base
        self.tmp = tempfile.mkdtemp(prefix="mvit-")
        _DIRS.append(self.tmp)
        self.certs = None
        self._creds = {}
        self.clusters = []

    def port(self):
        """Next free port of this test's range (skips ports in use)."""
        while self._next_port < self.port_end:
            p = self._next_port
            self._next_port += 1
            with socket.socket() as s:
                # like libuv: TIME_WAIT leftovers do not make a port busy
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", p))
                    return p
                except OSError:
                    log("port %d busy, skipping" % p)
        raise TestFailure("port range %d..%d exhausted" % (self.port_base, self.port_end))

    def setup_certs(self):
        if self.certs is None:
            self.certs = Certs(self.binary, self.testcert, self.tmp)
        return self.certs

    def client_creds(self, role):
        if role not in self._creds:
            cert, key = self.setup_certs().make(role, "test-" + role, ip=None)
            self._creds[role] = (self.certs.ca_cert, cert, key)
        return self._creds[role]

    def cluster(self, n, swim=None, agent_extra=None, defaults=False, metrics=False):
        self.setup_certs()
        c = Cluster(self, n, swim, agent_extra, defaults, metrics)
        self.clusters.append(c)
        return c

    def dump_logs(self):
        for c in self.clusters:
            for a in c.agents.values():
                if a.log_path:
                    print("----- log of %s (%s) -----" %
                          (a.name, "running" if a.alive() else "exited %s" %
                           (a.proc.returncode if a.proc else "-")))
                    print(log_tail(a.log_text(all_starts=True)))


# DEBUG lines a failure dump leaves out: each is one of hundreds alike (a
# test polling the CLI, heartbeats, a dead peer's refused port) and they
# would push out the lines that explain the failure.
_DUMP_NOISE = re.compile(
    r" DEBUG (net connection (established|closed) kind=rpc |failover sent type=(HEARTBEAT|HB_ACK|HB_NACK) |"
    r"agent peer port refused |net connection closed kind=peer .*reason=\"connection refused\")")


def log_tail(text, n=150):
    """The last n lines of an agent's log for a failure dump, without the
    repetitive DEBUG lines (_DUMP_NOISE); says how many it left out."""
    lines = text.splitlines()
    kept = [ln for ln in lines if not _DUMP_NOISE.search(ln)]
    head = "(last %d of %d lines; %d repetitive DEBUG lines left out)" % (
        min(n, len(kept)), len(lines), len(lines) - len(kept))
    return "\n".join([head] + kept[-n:])


def run(main, default_timeout=170):
    """Entry point of every test script: parses the common arguments, runs
    main(test) under a wall-clock limit, prints PASS/FAIL, cleans up."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--meshvisor", required=True, help="path of the meshvisor binary")
    ap.add_argument("--testcert", default=None, help="path of tests/unit mv_testcert")
    ap.add_argument("--port-base", type=int, required=True)
    ap.add_argument("--port-count", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=default_timeout,
                    help="give up (and clean up) after this many seconds")
    args = ap.parse_args()
    name = os.path.basename(sys.argv[0])

    def on_alarm(signum, frame):
        raise TestFailure("test exceeded its own limit of %.0fs" % args.timeout)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.timeout))

    t = Test(args)
    rc = 0
    try:
        main(t)
        log("PASS %s" % name)
    except Exception as e:
        rc = 1
        signal.alarm(0)
        log("FAIL %s: %s" % (name, e))
        if not isinstance(e, TestFailure):
            traceback.print_exc()
        try:
            t.dump_logs()
        except Exception:
            traceback.print_exc()
    finally:
        signal.alarm(0)
        _cleanup()
    sys.exit(rc)


# ---- libvirt test driver hosts (issue 3) -----------------------------------

def check_loop_lag(a, bound_us, cause):
    """Prints the agent's loop-lag figures (status) and checks that its loop
    never ran bound_us late; cause: what it would have waited for."""
    st = a.status()
    log("%s: loop lag p99 %.1f ms, max %.1f ms over 30 s, max ever %.1f ms, stalls %d" %
        (a.name, st["loop_lag_p99_us"] / 1000.0, st["loop_lag_max_us"] / 1000.0,
         st["loop_lag_max_ever_us"] / 1000.0, st["loop_stalls"]))
    check(st["loop_lag_max_ever_us"] < bound_us, "%s's loop ran %.1f ms late: it waited for %s" %
          (a.name, st["loop_lag_max_ever_us"] / 1000.0, cause))
    return st


def write_host_xml(path, cpus, memory_kib, domains, model="x86_64"):
    """Writes a libvirt test-driver host file (the `test:///PATH` URI):
    a host with `cpus` logical CPUs of CPU model `model` and `memory_kib`
    of memory, and the given domains, each a dict with name, uuid, vcpus,
    memory_kib, running (False: defined but shut off) and meshvisor (a
    dict of <meshvisor:vm/> metadata attributes, e.g. {"ha": "yes"})."""
    lines = ['<?xml version="1.0"?>', "<node>", "  <cpu>",
             "    <mhz>2400</mhz>", "    <model>%s</model>" % model, "    <nodes>1</nodes>",
             "    <sockets>1</sockets>", "    <cores>%d</cores>" % cpus,
             "    <threads>1</threads>", "    <active>%d</active>" % cpus, "  </cpu>",
             "  <memory>%d</memory>" % memory_kib]
    for d in domains:
        lines += ['  <domain type="test" '
                  'xmlns:test="http://libvirt.org/schemas/domain/test/1.0">',
                  "    <name>%s</name>" % d["name"], "    <uuid>%s</uuid>" % d["uuid"],
                  '    <memory unit="KiB">%d</memory>' % d["memory_kib"],
                  "    <vcpu>%d</vcpu>" % d["vcpus"], "    <os><type>hvm</type></os>"]
        if d.get("meshvisor"):
            attrs = "".join(' %s="%s"' % kv for kv in sorted(d["meshvisor"].items()))
            lines.append('    <metadata><meshvisor:vm xmlns:meshvisor='
                         '"https://meshvisor.dev/xmlns/vm/1"%s/></metadata>' % attrs)
        if not d.get("running", True):
            lines.append("    <test:runstate>5</test:runstate>")  # VIR_DOMAIN_SHUTOFF
        lines.append("  </domain>")
    lines.append("</node>")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path


def ha_trio(t, ha_uuid, failover):
    """A 3-voter cluster n1..n3 (test-driver hosts of 4 CPUs, 8 GiB) whose
    n2 runs one HA VM "ha-db" (ha_uuid, 512 MiB, priority 500), every agent
    quorate with 3 voters; returns (cluster, ha-db's epoch)."""
    mib = 1024
    doms = {n: [] for n in ("n1", "n2", "n3")}
    doms["n2"] = [dict(name="ha-db", uuid=ha_uuid, vcpus=1, memory_kib=512 * mib)]
    files = {n: write_host_xml(os.path.join(t.tmp, "%s.xml" % n), 4, 8 * 1024 * mib, doms[n])
             for n in doms}
    c = t.cluster(3, agent_extra={"failover": failover})
    c.start_each({n: {"libvirt_uri": "test://" + files[n]} for n in files})
    c.wait_converged(timeout=30)
    c.wait_states(timeout=30)
    r = c["n1"].cli("vm", "set-ha", "ha-db", "on", "--priority", "500")
    check(r.returncode == 0, "set-ha ha-db: %s" % r.stderr)
    wait_until(lambda: all(a.ha()["quorate"] and a.ha()["voters"] == 3
                           for a in c.running()) or None, 20,
               "every agent quorate with 3 voters")
    return c, c["n1"].vm_copies()["ha-db"][0][2]


def domain_xml(name, vcpus, memory_kib, uuid=None):
    """A minimal libvirt domain definition for `meshvisor vm create --xml`."""
    return ('<domain type="test">\n  <name>%s</name>\n%s'
            '  <memory unit="KiB">%d</memory>\n  <vcpu>%d</vcpu>\n'
            '  <os><type>hvm</type></os>\n</domain>\n' %
            (name, "  <uuid>%s</uuid>\n" % uuid if uuid else "", memory_kib, vcpus))


def json_stream(text, what="output"):
    """Parses output that is several JSON documents one after another (the
    one-line progress objects of `migrate --json`/`drain --json`, then the
    final, pretty-printed one); returns the list of documents."""
    dec = json.JSONDecoder()
    docs, i = [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return docs
        try:
            doc, i = dec.raw_decode(text, i)
        except ValueError as e:
            raise TestFailure("%s is not a sequence of JSON documents (%s): %r" %
                              (what, e, text[i:i + 400]))
        docs.append(doc)


# ---- raw TLS client (for the malformed-frame tests) ------------------------

def preload_env(t, lib_var, lib_name, settings):
    """The environment that makes an agent load the LD_PRELOAD shim built
    as lib_name (tests/integration; its path also in $lib_var), with the
    shim's own settings (a dict) added. An ASan build wants its runtime
    first."""
    lib = os.environ.get(lib_var) or os.path.join(
        os.path.dirname(t.binary), "tests", "integration", lib_name)
    if not os.path.exists(lib):
        raise TestFailure("shim %s not found (build it, or set %s)" % (lib, lib_var))
    preload = [lib]
    r = subprocess.run(["ldd", t.binary], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                       text=True)
    for line in r.stdout.splitlines():
        parts = line.split()
        if parts and parts[0].startswith("libasan") and len(parts) >= 3:
            preload.insert(0, parts[2])
    env = {"LD_PRELOAD": ":".join(preload)}
    env.update(settings)
    return env


def tls_client(host, port, ca=None, cert=None, key=None, timeout=5.0):
    """A TLS 1.3 connection to an agent, with or without a client
    certificate; returns the ssl socket after the handshake."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    if ca:
        ctx.load_verify_locations(ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    else:
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        ctx.load_cert_chain(cert, key)
    raw = socket.create_connection((host, port), timeout=timeout)
    s = ctx.wrap_socket(raw, server_hostname=None)
    s.settimeout(timeout)
    return s


def rpc_call(sock, id_, op, seeds=()):
    sock.sendall(mvwire.request_frame(id_, op, seeds))
    payload = mvwire.read_frame(sock.recv)
    if payload is None:
        raise TestFailure("connection closed before the reply to request %d" % id_)
    return mvwire.decode_response(payload)


def expect_closed(sock, what, timeout=5.0):
    """Asserts the peer closes the connection (EOF, reset or TLS alert)
    within timeout; returns how it ended."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                return "eof"
            # a reply to garbage is not acceptable either
            raise TestFailure("%s: the agent answered (%d bytes) instead of closing" %
                              (what, len(data)))
    except (ssl.SSLError, ConnectionError) as e:
        return "%s: %s" % (type(e).__name__, e)
    except socket.timeout:
        pass
    raise TestFailure("%s: the agent kept the connection open for %.0fs" % (what, timeout))


def left_proof(cert, key, name, incarnation):
    """name's SWIM proof of leaving at `incarnation`, as the agent makes it
    (agent/daemon/membership.c): the claim proof of agent/net/tls_claim.h,
    u16 BE length | certificate DER | signature (SHA-256) over
    "meshvisor left v1" NUL name NUL incarnation (u64 BE) 0 (u64 BE), made
    with the openssl CLI from the certificate and key files."""
    der = subprocess.run(["openssl", "x509", "-in", cert, "-outform", "DER"],
                         capture_output=True, check=True).stdout
    claim = (b"meshvisor left v1\0" + name.encode() + b"\0" +
             incarnation.to_bytes(8, "big") + bytes(8))
    sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", key], input=claim,
                         capture_output=True, check=True).stdout
    return len(der).to_bytes(2, "big") + der + sig


def grep(text, pattern):
    return re.search(pattern, text, re.I | re.M) is not None


def http_client_errors():
    """What http.client raises for a server that answers no HTTP."""
    import http.client
    return http.client.HTTPException
