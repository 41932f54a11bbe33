#!/usr/bin/env python3
"""The agent as a systemd service (Type=notify), against a fake systemd:
a unix datagram socket named by $NOTIFY_SOCKET that records what the agent
says, as sd_notify(3) specifies it.

  1. n1, the first host (no seeds), says READY=1 with a STATUS line once it
     serves, and pets the watchdog ($WATCHDOG_USEC) from its loop;
  2. its log lines carry journald priorities when $JOURNAL_STREAM names its
     stderr: "<6>" info, "<7>" debug;
  3. n2 (seed n1) says READY=1 only once it joined: its READY's STATUS
     already counts 2 members alive;
  4. SIGSTOP (a stalled loop, as systemd's watchdog sees it): no pets while
     stopped; they resume after SIGCONT;
  5. SIGHUP after the config's log_level changed from debug to info:
     RELOADING=1, then READY=1; the agent logs the change and writes no
     debug line afterwards;
  6. SIGTERM: STOPPING=1 before it leaves.
"""
import json
import os
import signal
import socket
import tempfile
import time

import mvtest
from mvtest import check, log


class FakeSystemd:
    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setblocking(False)
        self.msgs = []  # (monotonic time, {key: value})

    def poll(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except BlockingIOError:
                return
            kv = {}
            for line in data.decode().split("\n"):
                if "=" in line:
                    k, v = line.split("=", 1)
                    kv[k] = v
            self.msgs.append((time.monotonic(), kv))

    def wait_for(self, key, timeout, since=0.0, value=None):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.poll()
            for ts, kv in self.msgs:
                if ts >= since and key in kv and (value is None or kv[key] == value):
                    return ts, kv
            time.sleep(0.05)
        raise mvtest.TestFailure("no %s=%s within %.0fs; got %s" %
                                 (key, value or "*", timeout, self.msgs[-10:]))

    def pump(self, seconds):
        """Receives for this long, so that each message is stamped when it came."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.poll()
            time.sleep(0.02)

    def count(self, key, start, end):
        self.poll()
        return sum(1 for ts, kv in self.msgs if start <= ts < end and key in kv)

    def close(self):
        self.sock.close()


def main(t):
    c = t.cluster(2)
    sockdir = tempfile.mkdtemp(prefix="mv-sd-", dir="/tmp")
    sd1 = FakeSystemd(os.path.join(sockdir, "n1.sock"))
    sd2 = FakeSystemd(os.path.join(sockdir, "n2.sock"))
    try:
        n1, n2 = c["n1"], c["n2"]
        t0 = time.monotonic()
        n1.start(env={"NOTIFY_SOCKET": sd1.path, "WATCHDOG_USEC": "1000000"},
                 journal_stream=True)

        # 1. ready at once (no seeds), with a status line; the watchdog petted
        ts, kv = sd1.wait_for("READY", 15, since=t0)
        log("n1 READY after %.2fs: STATUS=%s" % (ts - t0, kv.get("STATUS")))
        check(kv.get("READY") == "1", "n1: READY=%s" % kv.get("READY"))
        check(kv.get("STATUS", "").startswith("serving; 1 members alive"),
              "n1's READY status: %r" % kv.get("STATUS"))
        sd1.pump(3.0)
        pets = sd1.count("WATCHDOG", ts, ts + 3.0)
        log("n1 petted the watchdog %d times in 3 s (WATCHDOG_USEC 1 s)" % pets)
        check(pets >= 3, "n1 petted the watchdog only %d times in 3 s" % pets)

        # 2. journald priorities
        lines = n1.log_text().splitlines()
        info = [l for l in lines if " INFO  " in l]
        debug = [l for l in lines if " DEBUG " in l]
        check(info and all(l.startswith("<6>") for l in info),
              "INFO lines without <6>: %s" % [l for l in info if not l.startswith("<6>")][:3])
        check(debug and all(l.startswith("<7>") for l in debug),
              "DEBUG lines without <7>: %s" % [l for l in debug if not l.startswith("<7>")][:3])

        # 3. n2 is ready only once joined
        t2 = time.monotonic()
        n2.start(join=[n1.peer_addr], env={"NOTIFY_SOCKET": sd2.path})
        ts2, kv2 = sd2.wait_for("READY", 30, since=t2)
        log("n2 READY after %.2fs: STATUS=%s" % (ts2 - t2, kv2.get("STATUS")))
        check(kv2.get("STATUS", "").startswith("serving; 2 members alive"),
              "n2 said READY before it joined: %r" % kv2.get("STATUS"))
        check(not n2.log_text().startswith("<"),
              "n2 (no JOURNAL_STREAM) writes priorities: %r" % n2.log_text()[:40])

        # 4. a stopped loop stops petting
        n1.signal(signal.SIGSTOP)
        stop_at = time.monotonic()
        sd1.pump(0.3)  # a datagram sent just before the stop may still be in flight
        quiet_from = time.monotonic()
        sd1.pump(2.5)
        n1.signal(signal.SIGCONT)
        cont_at = time.monotonic()
        stopped_pets = sd1.count("WATCHDOG", quiet_from, cont_at)
        check(stopped_pets == 0, "%d pets while n1 was stopped" % stopped_pets)
        sd1.wait_for("WATCHDOG", 5, since=cont_at)
        log("no pets during %.1fs of SIGSTOP; petting resumed after SIGCONT" %
            (cont_at - stop_at))

        # 5. SIGHUP reloads the log level
        with open(n1.config) as f:
            cfg = json.load(f)
        cfg["log_level"] = "info"
        with open(n1.config, "w") as f:
            json.dump(cfg, f)
        hup = time.monotonic()
        n1.signal(signal.SIGHUP)
        tr, _ = sd1.wait_for("RELOADING", 10, since=hup, value="1")
        trd, _ = sd1.wait_for("READY", 10, since=tr, value="1")
        mvtest.wait_until(lambda: "log level changed from=debug to=info" in n1.log_text(),
                          10, "n1 to log the new log level")
        time.sleep(2.0)  # SWIM and the failover heartbeats log at debug every second
        after = n1.log_text().split("log level changed from=debug to=info", 1)[1]
        dbg = [l for l in after.splitlines() if " DEBUG " in l]
        check(not dbg, "debug lines after the reload to info: %s" % dbg[:3])

        # 6. SIGTERM: STOPPING=1
        term = time.monotonic()
        n2.signal(signal.SIGTERM)
        _, kvs = sd2.wait_for("STOPPING", 10, since=term, value="1")
        n2.wait_exit(30)
        log("n2 said STOPPING=1 (%s) and exited" % kvs.get("STATUS"))
    finally:
        sd1.close()
        sd2.close()
        for f in os.listdir(sockdir):
            os.unlink(os.path.join(sockdir, f))
        os.rmdir(sockdir)


mvtest.run(main, default_timeout=90)
