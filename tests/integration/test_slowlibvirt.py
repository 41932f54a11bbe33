#!/usr/bin/env python3
"""A slow libvirtd does not stall the agent (issue 13, "every libvirt call on
a hypervisor worker"): the operator's VM commands run there.

Two hosts. On n1 every libvirt call that changes a VM (define, start,
shutdown, destroy, undefine, metadata writes) takes 3 s longer
(slowlibvirt.c, an LD_PRELOAD shim). `meshvisor vm start` on n1 (the start:
3 s; the desired state is already "running") still works and says so; while it
runs, `meshvisor status` on n1 answers every time, quickly. Then
`meshvisor vm destroy` of the same VM through n2 (forwarded to n1, whose
answer comes back through n2: 6 s again) works too. Then 40 `vm start` of
it at once on one connection: the first starts it (6 s), 32 wait their
turn and find it running, the rest are refused at once ("busy ... try
again"): every request gets its answer, by id. Last, n2 moves a running
VM to n1 offline: n1's side of it (define and start, 6 s) runs on its
worker too; moved back with n1's starts failing, n1 removes the definition
again and the VM runs on n2 again. Then n1 moves MOVER back to n2: the
source side's owner-epoch write, stop and undefine (9 s) run on n1's
worker too. Throughout, n1's loop
never ran 0.9 s late (status loop_lag_max_ever_us), n2 never suspected n1
and n1 never had to refute a suspicion. (With the calls on the loop, n1's
loop waited 3 s per call: the lag check fails, and n2 suspects n1.) The
commands' times, the status answer times and n1's loop lag are printed.
Last, n1 stops (SIGTERM) in the middle of a command and exits cleanly."""
import os
import re
import signal
import threading
import time

import mvtest
import mvwire
from mvtest import check, log

GIB = 1024 * 1024
MIB = 1024
SLOW_MS = 3000
LAG_BOUND_US = 900000  # the loop never ran this late (the old code: >= SLOW_MS per call)
STATUS_BOUND_S = 2.0   # a status answer (a CLI process, TLS and all) takes less
BURST = 40
OPQ_MAX = 32  # virt.h: VIRT_OPQ_MAX
RPC_ERR_UNAVAILABLE = 4
VM = "slow-vm"
MOVER = "mover"
MOVER_UUID = "6d657368-0013-0004-0000-000000000002"
BACK = "back"
BACK_UUID = "6d657368-0013-0004-0000-000000000003"
UUID = "6d657368-0013-0004-0000-000000000001"


def slowlibvirt_env(t):
    return mvtest.preload_env(t, "MV_SLOWLIBVIRT_LIB", "libmv_slowlibvirt.so",
                              {"MV_SLOW_LIBVIRT_MS": str(SLOW_MS),
                               "MV_SLOW_LIBVIRT_FAIL_START": fail_flag(t)})


def fail_flag(t):
    """While this file exists, n1's libvirt refuses every start."""
    return os.path.join(t.tmp, "fail-start")


def while_polling(n1, what, fn):
    """Runs fn() in a thread; meanwhile asks n1 for its status over and
    over. Returns (fn's result, seconds fn took, [status answer times])."""
    out = {}

    def run():
        t0 = time.time()
        out["r"] = fn()
        out["took"] = time.time() - t0
    th = threading.Thread(target=run)
    th.start()
    times = []
    while th.is_alive():
        t0 = time.time()
        n1.status()
        times.append(time.time() - t0)
        time.sleep(0.2)
    th.join()
    log("%s took %.1f s; meanwhile n1 answered status %d times, slowest %.2f s" %
        (what, out["took"], len(times), max(times) if times else 0))
    return out["r"], out["took"], times


def main(t):
    path = mvtest.write_host_xml(os.path.join(t.tmp, "n1.xml"), 4, 8 * GIB, [
        dict(name=VM, uuid=UUID, vcpus=1, memory_kib=512 * MIB, running=False)])
    c = t.cluster(2)
    n1, n2 = c["n1"], c["n2"]
    saved = dict(os.environ)
    os.environ.update(slowlibvirt_env(t))  # only n1 (its own environment, not the CLI's)
    try:
        n1.start(extra={"libvirt_uri": "test://" + path})
    finally:
        os.environ.clear()
        os.environ.update(saved)
    path2 = mvtest.write_host_xml(os.path.join(t.tmp, "n2.xml"), 4, 8 * GIB, [
        dict(name=MOVER, uuid=MOVER_UUID, vcpus=1, memory_kib=512 * MIB),
        dict(name=BACK, uuid=BACK_UUID, vcpus=1, memory_kib=512 * MIB)])
    n2.start(join=[n1.peer_addr], extra={"libvirt_uri": "test://" + path2})
    c.wait_converged(timeout=30)
    c.wait_states(timeout=30)
    log_start1, log_start2 = len(n1.log_text()), len(n2.log_text())

    r, took, times = while_polling(
        n1, "vm start on n1", lambda: n1.cli("vm", "start", VM, "--timeout", "30000",
                                             timeout=40))
    check(r.returncode == 0, "vm start failed (exit %d): %s" % (r.returncode, r.stderr.strip()))
    check("started" in r.stdout, "vm start said %r" % r.stdout.strip())
    check(took >= SLOW_MS / 1000.0 - 0.3, "vm start took %.1f s: the shim did not apply" % took)
    check(len(times) >= 3, "n1 answered status only %d times in %.1f s" % (len(times), took))
    check(max(times) < STATUS_BOUND_S, "a status on n1 took %.2f s" % max(times))
    mvtest.wait_until(lambda: n2.vms().get(VM, {}).get("state") == "running", 15,
                      "n2 to see %s running" % VM)

    r, took, times = while_polling(
        n1, "vm destroy through n2", lambda: n2.cli("vm", "destroy", VM, "--timeout", "30000",
                                                    timeout=40))
    check(r.returncode == 0,
          "vm destroy failed (exit %d): %s" % (r.returncode, r.stderr.strip()))
    check("destroyed" in r.stdout and "n1" in r.stdout, "vm destroy said %r" % r.stdout.strip())
    check(took >= 2 * SLOW_MS / 1000.0 - 0.3,
          "vm destroy took %.1f s: the shim did not apply" % took)
    check(max(times) < STATUS_BOUND_S, "a status on n1 took %.2f s" % max(times))
    st = n1.vms(node="n1")[VM]
    check(st["state"] == "shut off" and st["desired"] == "stopped",
          "n1 shows %s %s, desired %s" % (VM, st["state"], st["desired"]))

    # A burst: 40 `vm start` of that VM on one connection, all at once.
    # The first runs (a desired-state write and the start: 6 s); 32 wait
    # their turn behind it and then find the VM running; the rest are
    # refused at once: the host is busy.
    ca, cert, key = c.client_creds("operator")
    s = mvtest.tls_client("127.0.0.1", n1.rpc_port, ca, cert, key, timeout=30)
    start = mvwire.f_bytes(1, VM) + mvwire.f_varint(2, 0)  # VmActionRequest{vm, VM_START}
    burst = b"".join(mvwire.frame(mvwire.envelope(
        request=mvwire.f_varint(1, 100 + i) + mvwire.f_bytes(19, start, always=True)))
        for i in range(BURST))
    t0 = time.time()
    s.sendall(burst)
    answers = {}
    while len(answers) < BURST:
        p = mvwire.read_frame(s.recv)
        check(p is not None, "n1 closed the connection after %d answers" % len(answers))
        a = mvwire.decode_response(p)
        answers[a["id"]] = a
    s.close()
    busy = [a for a in answers.values() if a["code"] == RPC_ERR_UNAVAILABLE]
    ok = [a for a in answers.values() if a["code"] == 0]
    others = [a for a in answers.values() if a not in ok and a not in busy]
    log("a burst of %d vm start: %d answered in %.1f s, %d started, %d busy (%r), "
        "%d other (%r)" % (BURST, len(answers), time.time() - t0, len(ok), len(busy),
                           busy[0]["error"] if busy else "", len(others),
                           others[0]["error"] if others else ""))
    check(sorted(answers) == list(range(100, 100 + BURST)), "answers to ids %s" % sorted(answers))
    check(len(ok) == 1 and ok[0]["id"] == 100, "started: %s" % [a["id"] for a in ok])
    check(len(busy) >= BURST - 1 - OPQ_MAX and all("busy" in a["error"] for a in busy),
          "busy: %s" % [(a["id"], a["error"]) for a in busy])
    check(all("already running" in a["error"] for a in others),
          "the others: %s" % [(a["id"], a["error"]) for a in others])

    # The receiving side of an offline move: n2 moves a running VM to n1,
    # whose define and start (6 s) run on its worker.
    r, took, times = while_polling(
        n1, "migrate n2 -> n1 (offline)",
        lambda: n2.cli("migrate", MOVER, "--to", "n1", "--json", "--timeout", "30000",
                       timeout=40))
    check(r.returncode == 0, "migrate failed (exit %d): %s" % (r.returncode, r.stderr.strip()))
    final = mvtest.json_stream(r.stdout, "migrate")[-1]
    check(final["ok"] and "moved offline to n1" in final["message"], "migrate: %s" % final)
    check(took >= 2 * SLOW_MS / 1000.0 - 0.3, "migrate took %.1f s: the shim did not apply" % took)
    check(max(times) < STATUS_BOUND_S, "a status on n1 took %.2f s" % max(times))
    check(mvtest.grep(n1.log_text(), r"received vm=%s from=n2 started=1" % MOVER),
          "n1 did not log the arrival")
    check(n1.vms(node="n1").get(MOVER, {}).get("state") == "running",
          "%s does not run on n1" % MOVER)

    # The same move back fails on n1's side: its start fails, so n1
    # removes the definition again (nothing half-done) and says why; the
    # VM stays on n2 and runs there again.
    with open(fail_flag(t), "w"):
        pass
    path2_vms = n2.vms(node="n2")
    check(BACK not in path2_vms or path2_vms[BACK]["state"] == "running",
          "%s is not running on n2 before the move" % BACK)
    r, took, times = while_polling(
        n1, "migrate n2 -> n1 (offline), the start failing there",
        lambda: n2.cli("migrate", BACK, "--to", "n1", "--timeout", "30000", timeout=40))
    os.unlink(fail_flag(t))
    log("migrate said: %s" % (r.stderr.strip() or r.stdout.strip()))
    check(r.returncode != 0 and "could not take" in r.stderr,
          "the failed move: exit %d: %s %s" % (r.returncode, r.stdout, r.stderr))
    check(max(times) < STATUS_BOUND_S, "a status on n1 took %.2f s" % max(times))
    mvtest.wait_until(lambda: n2.vms(node="n2").get(BACK, {}).get("state") == "running", 15,
                      "%s to run on n2 again" % BACK)
    check(BACK not in n1.vms(node="n1"), "n1 kept a definition of %s" % BACK)

    # The source side of a move on n1: MOVER goes back to n2. n1's owner-epoch
    # write, stop and undefine (3 s each) run on n1's worker, not its loop.
    r, took, times = while_polling(
        n1, "migrate n1 -> n2 (offline), n1 the source",
        lambda: n1.cli("migrate", MOVER, "--to", "n2", "--json", "--timeout", "40000",
                       timeout=50))
    check(r.returncode == 0, "migrate failed (exit %d): %s" % (r.returncode, r.stderr.strip()))
    final = mvtest.json_stream(r.stdout, "migrate")[-1]
    check(final["ok"] and "moved offline to n2" in final["message"], "migrate: %s" % final)
    check(took >= 3 * SLOW_MS / 1000.0 - 0.3, "migrate took %.1f s: the shim did not apply" % took)
    check(len(times) >= 5, "n1 answered status only %d times in %.1f s" % (len(times), took))
    check(max(times) < STATUS_BOUND_S, "a status on n1 took %.2f s" % max(times))
    mvtest.wait_until(lambda: n2.vms(node="n2").get(MOVER, {}).get("state") == "running", 15,
                      "%s to run on n2" % MOVER)
    mvtest.wait_until(lambda: MOVER not in n1.vms(node="n1"), 15,
                      "n1 to forget %s" % MOVER)

    st = n1.status()
    log("n1: loop lag p99 %.1f ms, max ever %.1f ms, stalls %d" %
        (st["loop_lag_p99_us"] / 1000.0, st["loop_lag_max_ever_us"] / 1000.0,
         st["loop_stalls"]))
    check(st["loop_lag_max_ever_us"] < LAG_BOUND_US,
          "n1's loop ran %.1f ms late: it waited for libvirt" %
          (st["loop_lag_max_ever_us"] / 1000.0))
    text1, text2 = n1.log_text()[log_start1:], n2.log_text()[log_start2:]
    check(not re.search(r"member suspect name=n1 ", text2), "n2 suspected n1")
    check(not re.search(r"new incarnation of ours", text1),
          "n1 had to refute a suspicion about itself")
    check(n2.members()["n1"]["state"] == "alive", "n2 does not hold n1 alive")

    # Stopping with a command in flight: n1 is told to stop 1 s into a
    # destroy (a desired-state write, then the destroy: 6 s). The call
    # running finishes (libvirt calls cannot be interrupted), the rest of
    # the command is cancelled, and n1 exits cleanly.
    th = threading.Thread(target=lambda: n1.cli("vm", "destroy", VM, "--timeout", "30000",
                                                timeout=40))
    th.start()
    time.sleep(1.0)
    t0 = time.time()
    n1.signal(signal.SIGTERM)
    rc = n1.wait_exit(20)
    th.join()
    log("n1 stopped %.1f s after SIGTERM with a command in flight, exit %d" %
        (time.time() - t0, rc))
    check(rc == 0, "n1 exited %d" % rc)


mvtest.run(main)
