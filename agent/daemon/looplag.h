/*
 * looplag.h — how late the agent's loop runs, measured on the loop itself.
 *
 * Two probes on one uv loop:
 *   - a timer asked to fire every LOOPLAG_PERIOD_MS; each firing adds one
 *     sample, how much later than asked it ran (lagstat.h keeps the last
 *     30 s of them: p99, max). Any callback that holds the loop (a timer's,
 *     an I/O callback's) delays it;
 *   - a prepare/check pair around each poll: with the loop's idle-time
 *     metric (UV_METRICS_IDLE_TIME) the check callback knows how long this
 *     iteration's I/O callbacks ran, and reports a stall at once — after
 *     the callback that stalled and BEFORE the next iteration runs its
 *     timers (libuv runs timers first): SWIM's probe timeouts, expired
 *     during the stall, then fire only after we learned that the fault is
 *     ours.
 * A stall is a lag of stall_ms or more (seen by either probe; one stall
 * is reported once). on_stall gets it: the agent logs it (rate-limited)
 * and raises Lifeguard's local health (swim_local_health_add), so a slow
 * agent doubts itself before it doubts others.
 *
 * Ownership: the caller owns struct looplag (embedded, no heap);
 * looplag_close() closes its three handles, and its memory must stay
 * valid until their close callbacks ran (run the loop once more).
 * Loop thread only.
 */
#ifndef MESHVISOR_LOOPLAG_H
#define MESHVISOR_LOOPLAG_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "lagstat.h"

/* 50 ms: 20 samples a second, 600 in lagstat's 30 s window; cheap (one
 * timer), and fine enough that a 100 ms stall shows in the p99. */
#define LOOPLAG_PERIOD_MS 50u

struct looplag;
/* lag_us: how long the loop was held; where: "timer" or "io". */
typedef void (*looplag_stall_fn)(struct looplag *l, uint64_t lag_us, const char *where, void *ud);

struct looplag {
	uv_loop_t *loop;
	uv_timer_t timer;
	uv_prepare_t prepare;
	uv_check_t check;
	uint64_t stall_us;
	looplag_stall_fn on_stall;
	void *ud;
	uint64_t armed_hr;     /* uv_hrtime when the timer was armed */
	uint64_t prepare_hr;   /* uv_hrtime in this iteration's prepare */
	uint64_t prepare_idle; /* uv_metrics_idle_time then */
	bool have_prepare;     /* prepare ran since the last check */
	bool idle_metric;      /* UV_METRICS_IDLE_TIME is on */
	uint64_t stall_end_hr; /* when the last reported stall ended */
	uint64_t stalls;       /* reported so far */
	struct mv_lagstat stat;
	bool running;
};

/* Starts both probes on loop. stall_ms: what counts as a stall (0: 250).
 * 0 or a negative errno (from libuv). */
int looplag_start(struct looplag *l, uv_loop_t *loop, unsigned stall_ms, looplag_stall_fn fn,
                  void *ud);
/* Closes the handles (nothing after it). */
void looplag_close(struct looplag *l);
void looplag_summary(const struct looplag *l, struct mv_lag_summary *out);
uint64_t looplag_stalls(const struct looplag *l);

#endif
