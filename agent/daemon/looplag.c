/*
 * looplag.c — the loop's lag, measured on the loop (looplag.h).
 *
 * Timer probe: armed for LOOPLAG_PERIOD_MS at uv_hrtime T; it runs at T'
 * and the sample is T' - T - period (0 when on time). libuv rearms
 * repeating timers from the loop's cached time, so the probe is a one-shot
 * armed again from its own callback, measured with uv_hrtime.
 *
 * I/O probe: prepare runs just before the poll, check just after the I/O
 * callbacks of that poll. check - prepare - (idle time spent waiting in
 * the poll) is the time those callbacks held the loop.
 *
 * One stall, two sightings: a callback that holds the loop for 5 s is
 * seen by the check first (when it was an I/O callback) and again by the
 * timer, which was due during it. A sighting whose interval began before
 * the end of the last reported stall is the same stall: counted in the
 * samples, not reported again.
 */
#include "looplag.h"

#include <string.h>

#define LOOPLAG_STALL_MS_DEFAULT 250u

static void looplag_report(struct looplag *l, uint64_t began_hr, uint64_t now_hr, uint64_t lag_us,
                           const char *where)
{
	if (lag_us < l->stall_us || began_hr < l->stall_end_hr)
		return;
	l->stall_end_hr = now_hr;
	l->stalls++;
	if (l->on_stall != NULL)
		l->on_stall(l, lag_us, where, l->ud);
}

static void looplag_on_timer(uv_timer_t *t)
{
	struct looplag *l = t->data;
	uint64_t now = uv_hrtime();
	uint64_t due = l->armed_hr + (uint64_t)LOOPLAG_PERIOD_MS * 1000000u;
	uint64_t lag_us = now > due ? (now - due) / 1000u : 0;
	mv_lagstat_add(&l->stat, lag_us);
	looplag_report(l, l->armed_hr, now, lag_us, "timer");
	l->armed_hr = uv_hrtime();
	uv_timer_start(&l->timer, looplag_on_timer, LOOPLAG_PERIOD_MS, 0);
}

static void looplag_on_prepare(uv_prepare_t *p)
{
	struct looplag *l = p->data;
	l->prepare_hr = uv_hrtime();
	l->prepare_idle = l->idle_metric ? uv_metrics_idle_time(l->loop) : 0;
	l->have_prepare = true;
}

static void looplag_on_check(uv_check_t *c)
{
	struct looplag *l = c->data;
	if (!l->have_prepare || !l->idle_metric)
		return;
	l->have_prepare = false;
	uint64_t now = uv_hrtime();
	uint64_t idle = uv_metrics_idle_time(l->loop) - l->prepare_idle;
	uint64_t span = now - l->prepare_hr;
	uint64_t busy_us = span > idle ? (span - idle) / 1000u : 0;
	/* the stall began at the poll's return at the latest */
	looplag_report(l, l->prepare_hr + idle, now, busy_us, "io");
}

int looplag_start(struct looplag *l, uv_loop_t *loop, unsigned stall_ms, looplag_stall_fn fn,
                  void *ud)
{
	memset(l, 0, sizeof(*l));
	l->loop = loop;
	l->stall_us = (uint64_t)(stall_ms ? stall_ms : LOOPLAG_STALL_MS_DEFAULT) * 1000u;
	l->on_stall = fn;
	l->ud = ud;
	mv_lagstat_init(&l->stat);
	/* without the idle metric only the timer probe runs */
	l->idle_metric = uv_loop_configure(loop, UV_METRICS_IDLE_TIME) == 0;
	int rc;
	if ((rc = uv_timer_init(loop, &l->timer)) < 0)
		return rc;
	uv_prepare_init(loop, &l->prepare);
	uv_check_init(loop, &l->check);
	l->timer.data = l->prepare.data = l->check.data = l;
	/* the probes alone must not keep a loop alive that has nothing else */
	uv_unref((uv_handle_t *)&l->timer);
	uv_unref((uv_handle_t *)&l->prepare);
	uv_unref((uv_handle_t *)&l->check);
	l->armed_hr = uv_hrtime();
	uv_timer_start(&l->timer, looplag_on_timer, LOOPLAG_PERIOD_MS, 0);
	uv_prepare_start(&l->prepare, looplag_on_prepare);
	uv_check_start(&l->check, looplag_on_check);
	l->running = true;
	return 0;
}

void looplag_close(struct looplag *l)
{
	if (!l->running)
		return;
	l->running = false;
	uv_close((uv_handle_t *)&l->timer, NULL);
	uv_close((uv_handle_t *)&l->prepare, NULL);
	uv_close((uv_handle_t *)&l->check, NULL);
}

void looplag_summary(const struct looplag *l, struct mv_lag_summary *out)
{
	mv_lagstat_summary(&l->stat, out);
}

uint64_t looplag_stalls(const struct looplag *l)
{
	return l->stalls;
}
