#!/usr/bin/env python3
"""Issue 11 — the failure detector tells the truth, with real agents.

Five agents (n1..n5), each in a network namespace of its own on one bridge
(mvha.NetLab), the test:/// libvirt driver, SWIM at the SHIPPED defaults
(probe interval 1 s, suspicion_min_mult 4, ...). The cluster is observed
through `meshvisor members --json` from the test's own namespace, whose
traffic the injected faults never touch. Each phase checks behaviour with
generous bounds, polling with a deadline; timing goals are the
benchmark's (tests/bench/bench_fd_serf.sh), not this test's. Besides the
sampled views, each agent's own log (every verdict is logged, "member dead
name=X ...") is read for the phase's window, so a verdict that came and
went between two samples is still seen.

1. Pause: n2 is SIGSTOPped for 3 s, then SIGCONTed. Every other agent's
   member list is read every ~250 ms during the pause and for 10 s after:
   nobody ever reports n2 dead, and no agent logs any death in that window
   (rule: a pause of <= 4 s is never declared dead; 3 s leaves margin on a
   busy CI box). Then all five alive everywhere again. A pause nobody
   even suspected (no one probed n2 in time: seen once in 5 runs) proves
   nothing and is repeated, up to 3 times.
2. Gray host: n5 drops 50% of its packets in each direction (NetLab's
   per-host nftables loss) for 30 s. n5's own member list, read every
   ~250 ms, never shows a peer dead, and n5's log has no death verdict (a
   gray host doubts itself). What the others think of n5 is not asserted.
   The fault must bite (n5 suspects someone or its local health score
   rises). Heal; within 30 s every agent sees all five alive. This checks
   the outcome, not the gray-host rule alone: at the shipped timings n5's
   awareness soon stretches its protocol period (to 9 s) and it suspects
   only a few peers in 30 s, whose refutations reach it; the phase still
   passed with swim_poor_health() forced false.
3. False death heals: n4 drops everything in and out (nft drop both ways:
   no RST, no ICMP) until every other agent reports it dead (60 s
   deadline). Heal: within 30 s every agent, n4 included, reports n4 alive
   at a higher incarnation than before, and n4's log shows the refutation;
   the measured time is logged. Which path told n4 of its death is not
   asserted: in this lab n4's own probes, answered with its DEAD record,
   get there first (the phase still passed with the others' low-rate
   probes of dead members disabled); the simulator pins that path down.
4. Crash on proof: kill -9 of n3 (its namespace stays up, so its kernel
   refuses the peer port): every survivor reports it dead within 15 s,
   and at least one survivor's cause says "connection refused".

Needs root (namespaces, nftables); fails with a clear message otherwise,
as test_ha_gray.py and test_ha_loss.py do."""
import concurrent.futures
import re
import signal
import time

import mvha
import mvtest
from mvtest import TestFailure, check, log

PERIOD = 0.25          # sampling period of the member lists (s)
PAUSE_S = 3.0
PAUSE_WATCH_AFTER_S = 10.0
PAUSE_TRIES = 3
GRAY_S = 30.0
HEAL_S = 30.0
SILENT_DEAD_S = 60.0
CRASH_DEAD_S = 15.0


# ---- observing ---------------------------------------------------------------

_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=5)


def read_views(agents):
    """{observer name: {member: dict}} read in parallel; an observer that
    did not answer maps to the error text instead."""
    def one(a):
        try:
            return a.members()
        except (TestFailure, Exception) as e:
            return "error: %s" % e
    futs = {a.name: _POOL.submit(one, a) for a in agents}
    return {n: f.result() for n, f in futs.items()}


def sample_for(agents, seconds, on_sample, t_ref):
    """Reads the agents' member lists every PERIOD s for `seconds`, calling
    on_sample(seconds since t_ref, views). Returns (rounds, mean round
    time, {observer: failed reads})."""
    end = time.monotonic() + seconds
    rounds, spent, errors = 0, 0.0, {}
    while True:
        t = time.monotonic()
        if t >= end:
            break
        views = read_views(agents)
        for obs, v in views.items():
            if isinstance(v, str):
                errors[obs] = errors.get(obs, 0) + 1
        on_sample(t - t_ref, views)
        rounds += 1
        took = time.monotonic() - t
        spent += took
        time.sleep(max(0.0, min(PERIOD - took, end - time.monotonic())))
    return rounds, (spent / rounds if rounds else 0.0), errors


def check_sampled(rounds, errors, what):
    """Every observer answered in at least half of the rounds: a sample we
    could not take is not evidence of anything."""
    check(rounds >= 4, "%s: only %d sampling rounds" % (what, rounds))
    bad = {o: n for o, n in errors.items() if n * 2 > rounds}
    check(not bad, "%s: observers failed to answer `members` in most of %d rounds: %s" %
          (what, rounds, bad))


def log_marks(agents):
    return {a.name: len(a.log_text()) for a in agents}


def log_since(a, marks):
    return a.log_text()[marks.get(a.name, 0):]


DEAD_LINE = re.compile(r'member dead name="?([^" ]+)"?.*', re.M)


def deaths_logged(a, marks, member=None):
    """The 'member dead' lines a's log gained since marks (about member,
    if given)."""
    out = []
    for m in DEAD_LINE.finditer(log_since(a, marks)):
        if member is None or m.group(1) == member:
            out.append(m.group(0).strip())
    return out


def fmt_member(m):
    if m is None:
        return "absent"
    return "%s inc %s cause %r" % (m.get("state"), m.get("incarnation"), m.get("cause", ""))


def wait_views(agents, pred, timeout, what):
    """Polls every agent's member list (in parallel) until pred(views)
    returns None (done) or the deadline passes; pred returns a description
    of what is still wrong otherwise. Returns the seconds it took."""
    t0 = time.monotonic()
    last = {}

    def ok():
        views = read_views(agents)
        wrong = pred(views)
        last["wrong"] = wrong
        return wrong is None
    try:
        mvtest.wait_until(ok, timeout, what, PERIOD)
    except TestFailure:
        raise TestFailure("%s: not within %.0fs; last seen: %s" %
                          (what, timeout, last.get("wrong")))
    return time.monotonic() - t0


def all_alive(c, timeout, what):
    names = sorted(c.agents)

    def pred(views):
        bad = {}
        for obs, ms in views.items():
            if isinstance(ms, str):
                bad[obs] = ms
                continue
            wrong = {n: (ms[n]["state"] if n in ms else "absent") for n in names
                     if n not in ms or ms[n]["state"] != "alive"}
            if wrong:
                bad[obs] = wrong
        return bad or None
    dt = wait_views(c.running(), pred, timeout, what)
    log("%s: all five alive at every agent after %.1fs" % (what, dt))
    return dt


# ---- the phases --------------------------------------------------------------

def phase_pause(c):
    """Up to PAUSE_TRIES pauses: one that nobody even suspected (no
    observer happened to probe n2 in time) proves nothing, so it is tried
    again; every pause, noticed or not, must not be declared dead."""
    victim = c["n2"]
    others = [a for a in c.running() if a is not victim]
    for attempt in range(1, PAUSE_TRIES + 1):
        marks = log_marks(c.running())
        seen_dead, suspected = [], {}

        def on_sample(t, views):
            for obs, ms in views.items():
                if isinstance(ms, str):
                    continue
                m = ms.get(victim.name)
                if m is None or m["state"] in ("dead", "left"):
                    seen_dead.append("%+.2fs: %s sees n2 %s" % (t, obs, fmt_member(m)))
                elif m["state"] == "suspect":
                    suspected.setdefault(obs, t)

        log("phase 1 (try %d): SIGSTOP n2 for %.0fs, then watch %.0fs more" %
            (attempt, PAUSE_S, PAUSE_WATCH_AFTER_S))
        victim.signal(signal.SIGSTOP)
        t_stop = time.monotonic()
        try:
            r1, m1, e1 = sample_for(others, PAUSE_S, on_sample, t_stop)
        finally:
            victim.signal(signal.SIGCONT)
        paused = time.monotonic() - t_stop
        r2, m2, e2 = sample_for(others, PAUSE_WATCH_AFTER_S, on_sample, t_stop)
        errors = {o: e1.get(o, 0) + e2.get(o, 0) for o in set(e1) | set(e2)}
        noticed = sorted(a.name for a in others
                         if re.search(r'member suspect name="?n2"? ', log_since(a, marks)))
        log("phase 1: n2 paused %.2fs; %d sampling rounds (mean round %.0f ms); n2 seen "
            "suspect by %s; suspicions of n2 logged by %s" %
            (paused, r1 + r2, 1000 * (m1 * r1 + m2 * r2) / max(1, r1 + r2),
             {o: "%+.2fs" % t for o, t in sorted(suspected.items())} or "nobody",
             noticed or "nobody"))
        check(not seen_dead, "phase 1: a %.1fs pause of n2 was declared dead (samples, times "
              "from SIGSTOP): %s" % (paused, "; ".join(seen_dead[:8])))
        logged = {a.name: deaths_logged(a, marks) for a in c.running()}
        logged = {n: l for n, l in logged.items() if l}
        check(not logged, "phase 1: deaths logged during/after a %.1fs pause of n2: %s" %
              (paused, logged))
        check_sampled(r1 + r2, errors, "phase 1")
        all_alive(c, HEAL_S, "phase 1: after the pause")
        if noticed:
            return
    raise TestFailure("phase 1: %d pauses of %.0fs and nobody ever suspected n2: the pause "
                      "was never noticed, so the phase proved nothing" % (PAUSE_TRIES, PAUSE_S))


def phase_gray(c, lab):
    gray = c["n5"]
    peers = [n for n in c.agents if n != gray.name]
    marks = log_marks(c.running())
    seen_dead, suspect_samples = [], [0]

    def on_sample(t, views):
        ms = views[gray.name]
        if isinstance(ms, str):
            return
        for p in peers:
            m = ms.get(p)
            if m is None or m["state"] in ("dead", "left"):
                seen_dead.append("%+.2fs: n5 sees %s %s" % (t, p, fmt_member(m)))
            elif m["state"] == "suspect":
                suspect_samples[0] += 1

    log("phase 2: n5 gray (50%% loss in and out) for %.0fs" % GRAY_S)
    lab.set_loss(gray.name, 50, 50)
    t0 = time.monotonic()
    try:
        rounds, mean, errors = sample_for([gray], GRAY_S, on_sample, t0)
    finally:
        lab.clear_loss(gray.name)
    log("phase 2: healed after %.1fs; %d samples of n5's own view (mean %.0f ms), %d "
        "(sample, peer) pairs suspect" % (time.monotonic() - t0, rounds, 1000 * mean,
                                          suspect_samples[0]))
    gl = log_since(gray, marks)
    n_susp = len(re.findall(r"member suspect name=", gl))
    health = re.findall(r"local health changed score=(\d+)", gl)
    others_dead = {a.name: len(deaths_logged(a, marks, gray.name)) for a in c.running()
                   if a is not gray}
    log("phase 2: n5 logged %d suspicions, local health scores %s; others' death verdicts "
        "on n5 (not asserted): %s" % (n_susp, health[:20], others_dead))
    check(not seen_dead, "phase 2: the gray host n5 reported a peer dead in its own view: %s"
          % "; ".join(seen_dead[:8]))
    check_sampled(rounds, errors, "phase 2")
    check(n_susp > 0 or any(int(s) > 0 for s in health),
          "phase 2: the fault did not bite: n5 suspected nobody and its local health score "
          "never rose in %.0fs at 50%% loss" % GRAY_S)
    all_alive(c, HEAL_S, "phase 2: after healing the gray host")
    mine = deaths_logged(gray, marks)
    check(not mine, "phase 2: the gray host n5 logged death verdicts: %s" % mine[:6])


def phase_silent(c, lab):
    silent = c["n4"]
    others = [a for a in c.running() if a is not silent]
    inc0 = silent.members()[silent.name]["incarnation"]
    marks = log_marks([silent])
    log("phase 3: n4 silent (everything in and out dropped), incarnation %d" % inc0)
    lab.set_silent(silent.name)
    t0 = time.monotonic()
    first = {}
    try:
        def pred(views):
            wrong = {}
            for obs, ms in views.items():
                m = ms.get(silent.name) if isinstance(ms, dict) else None
                if m is not None and m["state"] == "dead":
                    first.setdefault(obs, (time.monotonic() - t0, m.get("cause", "")))
                else:
                    wrong[obs] = ms if isinstance(ms, str) else fmt_member(m)
            return wrong or None
        wait_views(others, pred, SILENT_DEAD_S, "phase 3: silent n4 dead at every other agent")
    finally:
        lab.clear_loss(silent.name)
    t_heal = time.monotonic()
    log("phase 3: n4 dead everywhere, first seen %s; healed %.1fs after silencing" %
        ({o: "%.1fs" % v[0] for o, v in sorted(first.items())}, t_heal - t0))

    def pred(views):
        wrong = {}
        for obs, ms in views.items():
            m = ms.get(silent.name) if isinstance(ms, dict) else None
            if m is None or m["state"] != "alive" or m["incarnation"] <= inc0:
                wrong[obs] = ms if isinstance(ms, str) else fmt_member(m)
        return wrong or None
    dt = wait_views(c.running(), pred, HEAL_S,
                    "phase 3: healed n4 alive at an incarnation above %d in every view "
                    "(its own included)" % inc0)
    inc1 = silent.members()[silent.name]["incarnation"]
    log("FIGURE phase 3: heal -> n4 alive again in every view after %.1fs (incarnation %d -> "
        "%d)" % (dt, inc0, inc1))
    check(mvtest.grep(log_since(silent, marks), r"new incarnation of ours"),
          "phase 3: n4 is alive again but its log does not show a refutation")
    all_alive(c, HEAL_S, "phase 3: after the false death")


def phase_crash(c):
    victim = c["n3"]
    survivors = [a for a in c.running() if a is not victim]
    log("phase 4: kill -9 n3 (its namespace stays up: its kernel refuses)")
    victim.signal(signal.SIGKILL)
    t0 = time.monotonic()
    victim.wait_exit(5)
    first = {}

    def pred(views):
        wrong = {}
        for obs, ms in views.items():
            m = ms.get(victim.name) if isinstance(ms, dict) else None
            if m is not None and m["state"] == "dead":
                first.setdefault(obs, (time.monotonic() - t0, m.get("cause", "")))
            else:
                wrong[obs] = ms if isinstance(ms, str) else fmt_member(m)
        return wrong or None
    wait_views(survivors, pred, CRASH_DEAD_S, "phase 4: killed n3 dead at every survivor")
    for o, (t, cause) in sorted(first.items()):
        log("phase 4: %s: n3 dead after %.2fs, cause %r" % (o, t, cause))
    views = read_views(survivors)
    causes = {o: (ms.get(victim.name) or {}).get("cause", "") if isinstance(ms, dict) else ms
              for o, ms in views.items()}
    check(any("connection refused" in str(x) for x in causes.values()),
          "phase 4: no survivor's cause for n3's death mentions a refused connection "
          "(proof): %s" % causes)
    log("FIGURE phase 4: kill -9 -> dead at every survivor after %.2fs" %
        max(t for t, _ in first.values()))


def main(t):
    mvha.need_root()
    names = mvha.agent_names(5)
    lab = mvha.NetLab(names)
    c = None
    try:
        lab.up()
        c = mvha.ns_cluster(t, lab, defaults=True)
        log("SWIM at the shipped defaults: %s" % c.swim)
        c.start_all(seed="n1")
        c.wait_converged(timeout=60)
        t0 = time.monotonic()
        phase_pause(c)
        phase_gray(c, lab)
        phase_silent(c, lab)
        phase_crash(c)
        log("all four phases in %.0fs" % (time.monotonic() - t0))
    finally:
        # the agents first (a SIGSTOPped one too), then their namespaces;
        # their logs stay for the failure dump
        if c is not None:
            for a in c.agents.values():
                if a.alive():
                    a.proc.kill()
                    a.proc.wait(10)
        lab.down()


if __name__ == "__main__":
    mvtest.run(main, default_timeout=240)
