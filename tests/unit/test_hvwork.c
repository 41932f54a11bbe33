/*
 * test_hvwork.c — agent/hv/hvwork.c, the hypervisor worker's lanes:
 * completions on the loop thread in order; the critical lane runs while
 * the general lane is blocked by a job that sleeps and while migrations
 * fill their own lane; a full lane queue refuses; a stop cancels what is
 * queued and lets what runs finish; the loop keeps ticking while a job
 * blocks for a second.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "hvwork.h"

#define MAX_JOBS 16

struct tjob {
	struct hvwork_job j;
	struct env *env;
	int id;
	unsigned sleep_ms;  /* work sleeps this long */
	uv_sem_t *wait_for; /* work waits for this (at most 5 s: see below) */
	uv_sem_t *post_on_done;
	uv_thread_t done_thread;
};

struct env {
	uv_loop_t loop;
	struct hvwork *w;
	int order[MAX_JOBS];
	int status[MAX_JOBS];
	int n_done;
	uv_timer_t guard; /* stops a test that would hang */
	uv_timer_t tick;
	unsigned ticks;
};

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0)
		;
}

static void tjob_work(struct hvwork_job *j)
{
	struct tjob *t = j->data;
	if (t->sleep_ms)
		sleep_ms(t->sleep_ms);
	if (t->wait_for != NULL) {
		/* a job that never gets its release must not hang the suite */
		for (int i = 0; i < 500; i++) {
			if (uv_sem_trywait(t->wait_for) == 0)
				return;
			sleep_ms(10);
		}
	}
}

static void tjob_done(struct hvwork_job *j, int status)
{
	struct tjob *t = j->data;
	struct env *e = t->env;
	t->done_thread = uv_thread_self();
	e->order[e->n_done] = t->id;
	e->status[e->n_done] = status;
	e->n_done++;
	if (t->post_on_done != NULL)
		uv_sem_post(t->post_on_done);
}

static void on_guard(uv_timer_t *t)
{
	uv_stop(t->loop);
}

static void env_init(struct env *e, unsigned crit, unsigned gen, unsigned mig, unsigned max_queue)
{
	memset(e, 0, sizeof(*e));
	assert_int_equal(uv_loop_init(&e->loop), 0);
	struct hvwork_lane_config cfg[HVWORK_LANES] = {
	    [HVWORK_CRITICAL] = {crit, max_queue},
	    [HVWORK_GENERAL] = {gen, max_queue},
	    [HVWORK_MIGRATION] = {mig, max_queue},
	};
	e->w = hvwork_new(&e->loop, cfg);
	assert_non_null(e->w);
	uv_timer_init(&e->loop, &e->guard);
	uv_timer_init(&e->loop, &e->tick);
	uv_unref((uv_handle_t *)&e->guard);
}

static void tjob_init(struct tjob *t, struct env *e, int id)
{
	memset(t, 0, sizeof(*t));
	t->env = e;
	t->id = id;
	t->j.work = tjob_work;
	t->j.done = tjob_done;
	t->j.data = t;
}

/* Runs the loop until every job came back (the worker keeps the loop
 * alive exactly while jobs are in flight), bounded by 10 s. */
static void env_run(struct env *e)
{
	uv_timer_start(&e->guard, on_guard, 10000, 0);
	uv_run(&e->loop, UV_RUN_DEFAULT);
	uv_timer_stop(&e->guard);
}

static void env_close(struct env *e)
{
	assert_int_equal(hvwork_inflight(e->w), 0);
	hvwork_free(e->w);
	uv_close((uv_handle_t *)&e->guard, NULL);
	uv_close((uv_handle_t *)&e->tick, NULL);
	uv_run(&e->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&e->loop), 0);
}

/* One thread per lane: a lane's jobs finish in the order submitted, and
 * every done runs on the loop's thread. */
static void test_order_and_loop_thread(void **state)
{
	(void)state;
	struct env e;
	struct tjob t[5];
	env_init(&e, 1, 1, 1, 0);
	uv_thread_t self = uv_thread_self();
	for (int i = 0; i < 5; i++) {
		tjob_init(&t[i], &e, i);
		t[i].sleep_ms = (unsigned)(5 - i) * 5; /* later ones are quicker */
		assert_int_equal(hvwork_submit(e.w, HVWORK_GENERAL, &t[i].j), 0);
	}
	assert_int_equal(hvwork_inflight(e.w), 5);
	assert_int_equal(hvwork_lane_inflight(e.w, HVWORK_GENERAL), 5);
	env_run(&e);
	assert_int_equal(e.n_done, 5);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(e.order[i], i);
		assert_int_equal(e.status[i], 0);
		assert_true(uv_thread_equal(&t[i].done_thread, &self));
	}
	/* the lane's stats: five jobs timed, run 25+20+15+10+5 ms in all, and
	 * each waited for the ones before it (25, 45, 60, 70 ms) */
	const struct hvwork_lane_stats *st = hvwork_lane_stats(e.w, HVWORK_GENERAL);
	assert_int_equal(st->jobs, 5);
	assert_int_equal(st->cancelled, 0);
	assert_int_equal(st->run.count, 5);
	assert_int_equal(st->wait.count, 5);
	assert_true(st->run.sum >= 0.075 && st->run.sum < 5.0);
	assert_true(st->wait.sum >= 0.2 && st->wait.sum < 5.0);
	assert_int_equal(hvwork_lane_stats(e.w, HVWORK_CRITICAL)->jobs, 0);
	assert_int_equal(hvwork_lane_stats(e.w, HVWORK_CRITICAL)->run.count, 0);
	assert_null(hvwork_lane_stats(e.w, HVWORK_LANES));
	env_close(&e);
}

/* The general lane's only thread is held by a job that waits; a job
 * queued behind it waits too; a critical job submitted after both runs
 * and completes at once, and its completion is what releases the blocked
 * one: order critical, blocked, queued. */
static void test_critical_runs_while_general_blocked(void **state)
{
	(void)state;
	struct env e;
	struct tjob blocked, queued, crit;
	uv_sem_t release;
	assert_int_equal(uv_sem_init(&release, 0), 0);
	env_init(&e, 1, 1, 1, 0);
	tjob_init(&blocked, &e, 1);
	blocked.wait_for = &release;
	tjob_init(&queued, &e, 2);
	tjob_init(&crit, &e, 3);
	crit.post_on_done = &release;
	assert_int_equal(hvwork_submit(e.w, HVWORK_GENERAL, &blocked.j), 0);
	assert_int_equal(hvwork_submit(e.w, HVWORK_GENERAL, &queued.j), 0);
	assert_int_equal(hvwork_submit(e.w, HVWORK_CRITICAL, &crit.j), 0);
	env_run(&e);
	assert_int_equal(e.n_done, 3);
	assert_int_equal(e.order[0], 3);
	assert_int_equal(e.order[1], 1);
	assert_int_equal(e.order[2], 2);
	/* the blocked job was released, not timed out: it waited far less
	 * than its 5 s bound */
	assert_true(blocked.j.finished_ns - blocked.j.started_ns < 4000000000ull);
	env_close(&e);
	uv_sem_destroy(&release);
}

/* Migrations fill every thread of their lane and queue more; an HA
 * restart (critical) still completes at once, and an operator's start
 * (general) after it: the critical done releases the general job, whose
 * done releases the migrations one by one. */
static void test_migrations_cannot_take_critical(void **state)
{
	(void)state;
	struct env e;
	struct tjob mig[3], crit, gen;
	uv_sem_t release, release_gen;
	assert_int_equal(uv_sem_init(&release, 0), 0);
	assert_int_equal(uv_sem_init(&release_gen, 0), 0);
	env_init(&e, 1, 1, 2, 0);
	for (int i = 0; i < 3; i++) {
		tjob_init(&mig[i], &e, 10 + i);
		mig[i].wait_for = &release;
		mig[i].post_on_done = &release; /* the next one may go */
		assert_int_equal(hvwork_submit(e.w, HVWORK_MIGRATION, &mig[i].j), 0);
	}
	tjob_init(&crit, &e, 1);
	crit.post_on_done = &release_gen;
	tjob_init(&gen, &e, 2);
	gen.wait_for = &release_gen;
	gen.post_on_done = &release;
	assert_int_equal(hvwork_submit(e.w, HVWORK_CRITICAL, &crit.j), 0);
	assert_int_equal(hvwork_submit(e.w, HVWORK_GENERAL, &gen.j), 0);
	/* what the critical job's log line reports: 3 migrations in flight */
	assert_int_equal(crit.j.busy_at_submit[HVWORK_MIGRATION], 3);
	assert_int_equal(crit.j.busy_at_submit[HVWORK_CRITICAL], 0);
	assert_int_equal(gen.j.busy_at_submit[HVWORK_CRITICAL], 1);
	env_run(&e);
	assert_int_equal(e.n_done, 5);
	assert_int_equal(e.order[0], 1);
	assert_int_equal(e.order[1], 2);
	for (int i = 2; i < 5; i++)
		assert_true(e.order[i] >= 10);
	for (int i = 0; i < 3; i++)
		assert_true(mig[i].j.finished_ns - mig[i].j.started_ns < 4000000000ull);
	env_close(&e);
	uv_sem_destroy(&release);
	uv_sem_destroy(&release_gen);
}

/* A lane's queue is bounded (running jobs do not count); stop cancels
 * the queued ones, refuses new ones, and lets the running one finish. */
static void test_queue_bound_and_stop(void **state)
{
	(void)state;
	struct env e;
	struct tjob run, q[2], extra, other;
	env_init(&e, 1, 1, 1, 2);
	tjob_init(&run, &e, 1);
	run.sleep_ms = 200;
	assert_int_equal(hvwork_submit(e.w, HVWORK_GENERAL, &run.j), 0);
	sleep_ms(50); /* the thread took it */
	tjob_init(&q[0], &e, 2);
	tjob_init(&q[1], &e, 3);
	tjob_init(&extra, &e, 4);
	assert_int_equal(hvwork_submit(e.w, HVWORK_GENERAL, &q[0].j), 0);
	assert_int_equal(hvwork_submit(e.w, HVWORK_GENERAL, &q[1].j), 0);
	assert_int_equal(hvwork_submit(e.w, HVWORK_GENERAL, &extra.j), -EAGAIN);
	/* other lanes have their own bound */
	tjob_init(&other, &e, 5);
	assert_int_equal(hvwork_submit(e.w, HVWORK_CRITICAL, &other.j), 0);
	assert_int_equal(hvwork_submit(e.w, HVWORK_LANES, &extra.j), -EINVAL);
	sleep_ms(50); /* the critical thread took `other` */
	hvwork_stop(e.w);
	assert_int_equal(hvwork_submit(e.w, HVWORK_CRITICAL, &extra.j), -ESHUTDOWN);
	env_run(&e);
	assert_int_equal(e.n_done, 4);
	int st[6] = {0};
	for (int i = 0; i < e.n_done; i++)
		st[e.order[i]] = e.status[i];
	assert_int_equal(st[1], 0);
	assert_int_equal(st[5], 0);
	assert_int_equal(st[2], -ECANCELED);
	assert_int_equal(st[3], -ECANCELED);
	/* a cancelled job is counted as such, not timed */
	const struct hvwork_lane_stats *gs = hvwork_lane_stats(e.w, HVWORK_GENERAL);
	assert_int_equal(gs->jobs, 1);
	assert_int_equal(gs->cancelled, 2);
	assert_int_equal(gs->run.count, 1);
	assert_int_equal(hvwork_lane_stats(e.w, HVWORK_CRITICAL)->jobs, 1);
	env_close(&e);
}

static void on_tick(uv_timer_t *t)
{
	struct env *e = t->data;
	e->ticks++;
}

/* A libvirt call that blocks for a second on a worker: the loop keeps
 * running its timers meanwhile (100 ticks of 10 ms expected; at least 50
 * on a loaded machine), and the job's done comes after. */
static void test_loop_runs_while_job_blocks(void **state)
{
	(void)state;
	struct env e;
	struct tjob slow;
	env_init(&e, 1, 1, 1, 0);
	tjob_init(&slow, &e, 1);
	slow.sleep_ms = 1000;
	e.tick.data = &e;
	uv_unref((uv_handle_t *)&e.tick);
	uv_timer_start(&e.tick, on_tick, 10, 10);
	assert_int_equal(hvwork_submit(e.w, HVWORK_GENERAL, &slow.j), 0);
	env_run(&e);
	uv_timer_stop(&e.tick);
	print_message("ticks of 10 ms while a job blocked 1 s: %u\n", e.ticks);
	assert_int_equal(e.n_done, 1);
	assert_true(e.ticks >= 50);
	env_close(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_order_and_loop_thread),
	    cmocka_unit_test(test_critical_runs_while_general_blocked),
	    cmocka_unit_test(test_migrations_cannot_take_critical),
	    cmocka_unit_test(test_queue_bound_and_stop),
	    cmocka_unit_test(test_loop_runs_while_job_blocks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
