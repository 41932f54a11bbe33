/*
 * hvwork.h — the hypervisor worker: libvirt calls (and anything else that
 * blocks) run on threads of their own, and their completions come back on
 * the agent's loop, so the loop that answers SWIM never waits on libvirt.
 *
 * Lanes. Each lane has its own threads and its own bounded queue, and a
 * job runs only on its lane's threads, so one kind of work can never take
 * the capacity another needs:
 *   HVWORK_CRITICAL   HA work that must not wait: remote fences of a dead
 *                     host, HA restarts, self-fence destroys, and the
 *                     abort of a migration whose reservation was lost
 *                     (it must land before the target's lease runs out);
 *   HVWORK_GENERAL    operators' define/start/destroy/..., full listings,
 *                     a migration's receiving side;
 *   HVWORK_MIGRATION  live migrations (each holds a thread for up to the
 *                     whole migration: minutes) and the where-is-it checks
 *                     after them;
 *   HVWORK_JOURNAL    the failover journal's durable write (one thread): while
 *                     it is in flight the failover core's messages wait, so
 *                     it must never queue behind libvirt calls (a remote
 *                     fence of a dead host can hold a thread for 10 s).
 * Before this module those ran on libuv's shared pool (4 threads): four
 * draining migrations queued every HA restart and remote fence behind them.
 *
 * A job: fill in work (runs on a lane thread) and done (runs on the loop
 * thread afterwards, once, with 0; or with -ECANCELED when the job was
 * still queued at hvwork_stop, its work never ran). Completions are
 * delivered in the order the jobs finished; jobs of one lane with one
 * thread finish in the order they were submitted.
 *
 * Ownership: the caller owns each job (embed struct hvwork_job in its own
 * struct) until its done callback ran; hvwork_submit's failure means done
 * will never run. struct hvwork is the module's (hvwork_new/hvwork_free).
 * hvwork_stop cancels what is queued; what runs finishes (libvirt calls
 * cannot be interrupted). hvwork_free may be called only when
 * hvwork_inflight() is 0 (it joins the threads and closes the async
 * handle: run the loop afterwards until its close callback ran).
 * Every function is for the loop thread, except what runs inside work.
 *
 * Every critical job's completion is logged (component hvwork, level
 * info): its label, how long it waited in the queue and ran, and how many
 * jobs each lane had in flight when it was submitted — the evidence that
 * an HA restart or a remote fence did not wait behind a drain
 * (tests/lab/test_lab_drain_failover.py reads it).
 */
#ifndef MESHVISOR_HVWORK_H
#define MESHVISOR_HVWORK_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "promtext.h"

enum hvwork_lane {
	HVWORK_CRITICAL = 0,
	HVWORK_GENERAL,
	HVWORK_MIGRATION,
	HVWORK_JOURNAL,
	HVWORK_LANES
};

struct hvwork_job;
typedef void (*hvwork_fn)(struct hvwork_job *j);
typedef void (*hvwork_done_fn)(struct hvwork_job *j, int status);

struct hvwork_job {
	hvwork_fn work;      /* on a lane thread */
	hvwork_done_fn done; /* on the loop thread, once */
	void *data;          /* the caller's */
	const char *what;    /* optional label (a static string) for the log */
	/* private */
	struct hvwork_job *next;
	int status;
	enum hvwork_lane lane;
	uint64_t queued_ns, started_ns, finished_ns; /* uv_hrtime */
	unsigned busy_at_submit[HVWORK_LANES];       /* each lane's jobs in flight then */
};

struct hvwork_lane_config {
	unsigned threads;   /* 1.. */
	unsigned max_queue; /* jobs waiting (not running) at most; 0: 256 */
};

struct hvwork;

/* Defaults: critical 2 threads (a remote fence of an unreachable host
 * can hold one for its whole timeout; the other still destroys and
 * restarts), general 2, migration as many as migrations may run at once
 * (the caller says: incoming + outgoing limits + 1 for where-checks). */
void hvwork_default_config(struct hvwork_lane_config cfg[HVWORK_LANES], unsigned migrations);
/* Starts every lane's threads. NULL on failure (nothing left running). */
struct hvwork *hvwork_new(uv_loop_t *loop, const struct hvwork_lane_config cfg[HVWORK_LANES]);
/* Queues j on lane. 0; -EAGAIN when that lane's queue is full;
 * -ESHUTDOWN after hvwork_stop; -EINVAL for a bad lane or missing fn. */
int hvwork_submit(struct hvwork *w, enum hvwork_lane lane, struct hvwork_job *j);
/* Jobs submitted whose done callback has not run yet (queued, running or
 * finished and not yet delivered), in all lanes or one. */
unsigned hvwork_inflight(const struct hvwork *w);
unsigned hvwork_lane_inflight(const struct hvwork *w, enum hvwork_lane lane);
/* Refuses new jobs and cancels the queued ones (their done runs with
 * -ECANCELED on the loop's next iteration). */
void hvwork_stop(struct hvwork *w);
void hvwork_free(struct hvwork *w);
const char *hvwork_lane_name(enum hvwork_lane lane);

/* Per lane, counted on the loop thread as each job's done is delivered
 * (the agent's metrics read them): jobs whose work ran, how long each
 * waited in the queue (queued -> started) and ran (started -> finished),
 * in seconds; jobs cancelled before they ran. */
struct hvwork_lane_stats {
	uint64_t jobs;
	uint64_t cancelled;
	struct mv_hist wait;
	struct mv_hist run;
};
const struct hvwork_lane_stats *hvwork_lane_stats(const struct hvwork *w, enum hvwork_lane lane);

#endif
