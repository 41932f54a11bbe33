/*
 * test_looplag.c — agent/daemon/looplag.c on a real libuv loop: a timer
 * callback and an I/O callback (an async's) that hold the loop are each
 * reported once as a stall, by the probe that sees them first, with the
 * time they held it; the I/O one before any timer of the next iteration
 * runs; short work is no stall; the samples show the stall.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "looplag.h"

#define STALL_MS 100

struct probe {
	struct looplag lag;
	unsigned stalls;
	uint64_t last_lag_us;
	char where[8];
	bool timer_ran_after_stall; /* a timer due during the I/O stall ran before the report */
	bool stall_reported;
	uv_timer_t hold, stop, witness;
	uv_async_t async;
	unsigned hold_ms;
};

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

static void on_stall(struct looplag *l, uint64_t lag_us, const char *where, void *ud)
{
	struct probe *p = ud;
	(void)l;
	p->stalls++;
	p->last_lag_us = lag_us;
	snprintf(p->where, sizeof(p->where), "%s", where);
	p->stall_reported = true;
}

static void on_stop(uv_timer_t *t)
{
	uv_stop(t->loop);
}

static void on_hold_timer(uv_timer_t *t)
{
	struct probe *p = t->data;
	sleep_ms(p->hold_ms);
}

static void on_witness(uv_timer_t *t)
{
	struct probe *p = t->data;
	if (!p->stall_reported)
		p->timer_ran_after_stall = true;
}

static void on_async(uv_async_t *a)
{
	struct probe *p = a->data;
	/* a timer that falls due during the stall: it must run only after
	 * the stall was reported */
	uv_timer_start(&p->witness, on_witness, 1, 0);
	sleep_ms(p->hold_ms);
}

static void run_case(struct probe *p, uv_loop_t *loop, bool io, unsigned hold_ms)
{
	memset(p, 0, sizeof(*p));
	p->hold_ms = hold_ms;
	assert_int_equal(uv_loop_init(loop), 0);
	assert_int_equal(looplag_start(&p->lag, loop, STALL_MS, on_stall, p), 0);
	uv_timer_init(loop, &p->hold);
	uv_timer_init(loop, &p->stop);
	uv_timer_init(loop, &p->witness);
	uv_async_init(loop, &p->async, on_async);
	p->hold.data = p->witness.data = p->async.data = p;
	/* 300 ms of a quiet loop first: samples, no stall */
	uv_timer_start(&p->stop, on_stop, 300, 0);
	uv_run(loop, UV_RUN_DEFAULT);
	assert_int_equal(p->stalls, 0);
	if (io)
		uv_async_send(&p->async);
	else
		uv_timer_start(&p->hold, on_hold_timer, 1, 0);
	uv_timer_start(&p->stop, on_stop, 200 + hold_ms, 0);
	uv_run(loop, UV_RUN_DEFAULT);
	looplag_close(&p->lag);
	uv_close((uv_handle_t *)&p->hold, NULL);
	uv_close((uv_handle_t *)&p->stop, NULL);
	uv_close((uv_handle_t *)&p->witness, NULL);
	uv_close((uv_handle_t *)&p->async, NULL);
	uv_run(loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(loop), 0);
}

static void test_timer_stall(void **state)
{
	(void)state;
	struct probe p;
	uv_loop_t loop;
	run_case(&p, &loop, false, 400);
	assert_int_equal(p.stalls, 1);
	assert_string_equal(p.where, "timer");
	assert_true(p.last_lag_us >= 350000);
	struct mv_lag_summary sum;
	looplag_summary(&p.lag, &sum);
	assert_true(sum.max_us >= 350000);
	assert_true(sum.max_ever_us >= 350000);
	assert_true(sum.n >= 5);
	print_message("timer stall of 400 ms: reported lag %.1f ms, p99 %.1f ms over %u samples\n",
	              p.last_lag_us / 1000.0, sum.p99_us / 1000.0, sum.n);
}

static void test_io_stall_reported_before_timers(void **state)
{
	(void)state;
	struct probe p;
	uv_loop_t loop;
	run_case(&p, &loop, true, 400);
	/* once, by the check after the I/O callback; the timer probe, late
	 * by the same stall, does not report it again */
	assert_int_equal(p.stalls, 1);
	assert_string_equal(p.where, "io");
	assert_true(p.last_lag_us >= 350000);
	assert_false(p.timer_ran_after_stall);
	assert_int_equal(looplag_stalls(&p.lag), 1);
	struct mv_lag_summary sum;
	looplag_summary(&p.lag, &sum);
	assert_true(sum.max_us >= 300000); /* the timer sample shows it too */
}

static void test_short_work_is_no_stall(void **state)
{
	(void)state;
	struct probe p;
	uv_loop_t loop;
	run_case(&p, &loop, true, 20);
	assert_int_equal(p.stalls, 0);
	run_case(&p, &loop, false, 20);
	assert_int_equal(p.stalls, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_timer_stall),
	    cmocka_unit_test(test_io_stall_reported_before_timers),
	    cmocka_unit_test(test_short_work_is_no_stall),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
