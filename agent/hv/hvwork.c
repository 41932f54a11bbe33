/*
 * hvwork.c — lanes of worker threads with completions on the loop
 * (hvwork.h).
 *
 * One mutex guards every lane's queue and the list of finished jobs; a
 * thread holds it only to take a job or hand one back, never while a job
 * runs. A finished job goes on the done list and the thread wakes the
 * loop (uv_async_send; several sends may coalesce into one callback,
 * which therefore empties the whole list, oldest first).
 *
 * The in-flight counts are the loop's alone (raised by submit, lowered
 * when done runs), so they need no lock. The async handle keeps the loop
 * alive exactly while something is in flight, as libuv's own work
 * requests do: a stopping agent that runs the loop until its jobs came
 * back does not spin, and an idle worker does not hold the loop open.
 */
#include "hvwork.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define HVWORK_MAX_QUEUE_DEFAULT 256u

struct hvwork;

struct hvwork_thread {
	struct hvwork *w;
	enum hvwork_lane lane;
	uv_thread_t tid;
	bool started;
};

struct hvwork_lane_state {
	struct hvwork_lane_config cfg;
	uv_cond_t cond;                 /* a job was queued, or quit */
	struct hvwork_job *head, *tail; /* queued, not started */
	unsigned queued;                /* length of that list */
	unsigned inflight;              /* loop thread only */
	struct hvwork_lane_stats stats; /* loop thread only */
	struct hvwork_thread *threads;
	unsigned n_threads;
};

struct hvwork {
	uv_loop_t *loop;
	uv_async_t async;
	uv_mutex_t mu;
	struct hvwork_lane_state lanes[HVWORK_LANES];
	struct hvwork_job *done_head, *done_tail; /* finished or cancelled, oldest first */
	unsigned inflight;                        /* loop thread only */
	bool stopping;                            /* no new jobs (loop thread only) */
	bool quit;                                /* threads exit (under mu) */
};

const struct hvwork_lane_stats *hvwork_lane_stats(const struct hvwork *w, enum hvwork_lane lane)
{
	return (unsigned)lane < HVWORK_LANES ? &w->lanes[lane].stats : NULL;
}

const char *hvwork_lane_name(enum hvwork_lane lane)
{
	switch (lane) {
	case HVWORK_CRITICAL:
		return "critical";
	case HVWORK_GENERAL:
		return "general";
	case HVWORK_MIGRATION:
		return "migration";
	case HVWORK_JOURNAL:
		return "journal";
	default:
		return "?";
	}
}

void hvwork_default_config(struct hvwork_lane_config cfg[HVWORK_LANES], unsigned migrations)
{
	cfg[HVWORK_CRITICAL] = (struct hvwork_lane_config){.threads = 2};
	cfg[HVWORK_GENERAL] = (struct hvwork_lane_config){.threads = 2};
	cfg[HVWORK_MIGRATION] = (struct hvwork_lane_config){.threads = migrations ? migrations : 1};
	cfg[HVWORK_JOURNAL] = (struct hvwork_lane_config){.threads = 1};
}

/* under mu */
static void hvwork_done_push(struct hvwork *w, struct hvwork_job *j)
{
	j->next = NULL;
	if (w->done_tail != NULL)
		w->done_tail->next = j;
	else
		w->done_head = j;
	w->done_tail = j;
}

static void hvwork_thread_main(void *arg)
{
	struct hvwork_thread *t = arg;
	struct hvwork *w = t->w;
	struct hvwork_lane_state *l = &w->lanes[t->lane];
	uv_mutex_lock(&w->mu);
	for (;;) {
		while (l->head == NULL && !w->quit)
			uv_cond_wait(&l->cond, &w->mu);
		if (l->head == NULL)
			break; /* quit, and nothing left */
		struct hvwork_job *j = l->head;
		l->head = j->next;
		if (l->head == NULL)
			l->tail = NULL;
		l->queued--;
		uv_mutex_unlock(&w->mu);
		j->started_ns = uv_hrtime();
		j->work(j);
		j->finished_ns = uv_hrtime();
		j->status = 0;
		uv_mutex_lock(&w->mu);
		hvwork_done_push(w, j);
		uv_async_send(&w->async);
	}
	uv_mutex_unlock(&w->mu);
}

/* A critical job came back: its queue wait is what the lanes are for. A
 * cancelled job never started (its wait runs to now). */
static void hvwork_log_critical(const struct hvwork_job *j)
{
	uint64_t start = j->started_ns ? j->started_ns : uv_hrtime();
	uint64_t end = j->finished_ns ? j->finished_ns : start;
	MV_INFO("hvwork",
	        "critical job done what=%s status=%d queued_us=%" PRIu64 " ran_us=%" PRIu64
	        " busy_at_submit critical=%u general=%u migration=%u journal=%u",
	        j->what ? j->what : "-", j->status, (start - j->queued_ns) / 1000,
	        (end - start) / 1000, j->busy_at_submit[HVWORK_CRITICAL],
	        j->busy_at_submit[HVWORK_GENERAL], j->busy_at_submit[HVWORK_MIGRATION],
	        j->busy_at_submit[HVWORK_JOURNAL]);
}

static void hvwork_on_async(uv_async_t *a)
{
	struct hvwork *w = a->data;
	uv_mutex_lock(&w->mu);
	struct hvwork_job *j = w->done_head;
	w->done_head = w->done_tail = NULL;
	uv_mutex_unlock(&w->mu);
	while (j != NULL) {
		struct hvwork_job *next = j->next; /* done may free j */
		struct hvwork_lane_state *l = &w->lanes[j->lane];
		l->inflight--;
		w->inflight--;
		if (j->status == 0) {
			l->stats.jobs++;
			mv_hist_observe(&l->stats.wait,
			                (double)(j->started_ns - j->queued_ns) / 1e9);
			mv_hist_observe(&l->stats.run,
			                (double)(j->finished_ns - j->started_ns) / 1e9);
		} else {
			l->stats.cancelled++;
		}
		if (w->inflight == 0)
			uv_unref((uv_handle_t *)&w->async);
		if (j->lane == HVWORK_CRITICAL)
			hvwork_log_critical(j);
		j->done(j, j->status);
		j = next;
	}
}

static void hvwork_join(struct hvwork *w)
{
	uv_mutex_lock(&w->mu);
	w->quit = true;
	for (int i = 0; i < HVWORK_LANES; i++)
		uv_cond_broadcast(&w->lanes[i].cond);
	uv_mutex_unlock(&w->mu);
	for (int i = 0; i < HVWORK_LANES; i++) {
		struct hvwork_lane_state *l = &w->lanes[i];
		for (unsigned k = 0; k < l->n_threads; k++)
			if (l->threads[k].started)
				uv_thread_join(&l->threads[k].tid);
	}
}

static void hvwork_release(struct hvwork *w)
{
	for (int i = 0; i < HVWORK_LANES; i++) {
		free(w->lanes[i].threads);
		uv_cond_destroy(&w->lanes[i].cond);
	}
	uv_mutex_destroy(&w->mu);
	free(w);
}

static void hvwork_on_close(uv_handle_t *h)
{
	hvwork_release(h->data);
}

struct hvwork *hvwork_new(uv_loop_t *loop, const struct hvwork_lane_config cfg[HVWORK_LANES])
{
	struct hvwork *w = calloc(1, sizeof(*w));
	if (w == NULL)
		return NULL;
	w->loop = loop;
	if (uv_mutex_init(&w->mu) != 0) {
		free(w);
		return NULL;
	}
	int conds = 0;
	bool ok = true;
	for (int i = 0; i < HVWORK_LANES && ok; i++) {
		struct hvwork_lane_state *l = &w->lanes[i];
		l->cfg = cfg[i];
		if (l->cfg.threads == 0)
			l->cfg.threads = 1;
		if (l->cfg.max_queue == 0)
			l->cfg.max_queue = HVWORK_MAX_QUEUE_DEFAULT;
		mv_hist_init(&l->stats.wait, mv_hist_call_seconds, mv_hist_call_seconds_n);
		mv_hist_init(&l->stats.run, mv_hist_call_seconds, mv_hist_call_seconds_n);
		ok = uv_cond_init(&l->cond) == 0;
		conds += ok;
		l->threads = ok ? calloc(l->cfg.threads, sizeof(*l->threads)) : NULL;
		ok = ok && l->threads != NULL;
	}
	if (ok && uv_async_init(loop, &w->async, hvwork_on_async) != 0)
		ok = false;
	if (!ok) {
		for (int i = 0; i < conds; i++)
			uv_cond_destroy(&w->lanes[i].cond);
		for (int i = 0; i < HVWORK_LANES; i++)
			free(w->lanes[i].threads);
		uv_mutex_destroy(&w->mu);
		free(w);
		return NULL;
	}
	w->async.data = w;
	uv_unref((uv_handle_t *)&w->async);
	for (int i = 0; i < HVWORK_LANES && ok; i++) {
		struct hvwork_lane_state *l = &w->lanes[i];
		for (unsigned k = 0; k < l->cfg.threads && ok; k++) {
			struct hvwork_thread *t = &l->threads[k];
			t->w = w;
			t->lane = (enum hvwork_lane)i;
			ok = uv_thread_create(&t->tid, hvwork_thread_main, t) == 0;
			t->started = ok;
			l->n_threads += ok;
		}
	}
	if (!ok) {
		hvwork_join(w);
		uv_close((uv_handle_t *)&w->async, hvwork_on_close);
		return NULL;
	}
	return w;
}

int hvwork_submit(struct hvwork *w, enum hvwork_lane lane, struct hvwork_job *j)
{
	if ((unsigned)lane >= HVWORK_LANES || j == NULL || j->work == NULL || j->done == NULL)
		return -EINVAL;
	if (w->stopping)
		return -ESHUTDOWN;
	struct hvwork_lane_state *l = &w->lanes[lane];
	uv_mutex_lock(&w->mu);
	if (l->queued >= l->cfg.max_queue) {
		uv_mutex_unlock(&w->mu);
		return -EAGAIN;
	}
	j->lane = lane;
	j->next = NULL;
	j->status = 0;
	j->queued_ns = uv_hrtime();
	j->started_ns = j->finished_ns = 0;
	for (int i = 0; i < HVWORK_LANES; i++)
		j->busy_at_submit[i] = w->lanes[i].inflight; /* loop thread's, no lock needed */
	if (l->tail != NULL)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
	l->queued++;
	uv_cond_signal(&l->cond);
	uv_mutex_unlock(&w->mu);
	if (w->inflight++ == 0)
		uv_ref((uv_handle_t *)&w->async);
	l->inflight++;
	return 0;
}

unsigned hvwork_inflight(const struct hvwork *w)
{
	return w != NULL ? w->inflight : 0;
}

unsigned hvwork_lane_inflight(const struct hvwork *w, enum hvwork_lane lane)
{
	return w != NULL && (unsigned)lane < HVWORK_LANES ? w->lanes[lane].inflight : 0;
}

void hvwork_stop(struct hvwork *w)
{
	if (w == NULL || w->stopping)
		return;
	w->stopping = true;
	uv_mutex_lock(&w->mu);
	bool any = false;
	for (int i = 0; i < HVWORK_LANES; i++) {
		struct hvwork_lane_state *l = &w->lanes[i];
		while (l->head != NULL) {
			struct hvwork_job *j = l->head;
			l->head = j->next;
			j->status = -ECANCELED;
			hvwork_done_push(w, j);
			any = true;
		}
		l->tail = NULL;
		l->queued = 0;
	}
	uv_mutex_unlock(&w->mu);
	if (any)
		uv_async_send(&w->async);
}

void hvwork_free(struct hvwork *w)
{
	if (w == NULL)
		return;
	hvwork_join(w);
	uv_close((uv_handle_t *)&w->async, hvwork_on_close);
}
