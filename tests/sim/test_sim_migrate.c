/*
 * test_sim_migrate.c — the migration negotiation core (meshvisor/mig.h)
 * under thousands of randomized, seeded schedules.
 *
 * One schedule: 6..12 hosts with random capacity, overcommit, CPU model
 * and a random initial load of VMs. Every host runs one mig core and a
 * model of its caller:
 *   - as a source, every 0.5..3 s it picks an idle VM, chooses a target
 *     with mig_choose_target over the true loads (reservations are not
 *     gossiped, so choices collide) and proposes; on REFUSED it tries up to
 *     two more candidates; on GO it starts a "libvirt job" of 50 ms..8 s
 *     (the lease is 3 s, so long ones live on RENEWs) that fails 10% of
 *     the time; on LEASE_LOST it aborts the job, which takes effect within
 *     half the lease guard (so a job can still land meanwhile);
 *   - when a job lands, the VM moves (ground truth), the target's caller
 *     calls mig_vm_arrived + mig_set_capacity (3 times in 10 it misses
 *     the arrival: COMMIT or the lease must release it), the source's
 *     caller reports done (10% of successes as "landed anyway"); a failed
 *     or aborted job reports done(failed);
 *   - as a target, on MIG_EV_EXPIRED it kills the incoming job of that
 *     proposal if one still runs (the fence for a dead source agent).
 * The hosts run on the simulated world of sim_net.h (its clock, queue,
 * PRNG and network; this file's loop interleaves the cores' deadlines with
 * its events): the network loses 0..15% of messages, delays each by
 * 1 ms..300 ms (reordering) and duplicates 2%. Hosts crash at random, and some crashes
 * hit the source or target of a running job on purpose. Half the crashes
 * take the whole host (its jobs fail at once), half only the agent (its
 * core is lost; incoming jobs run on, and outgoing ones too in the
 * schedules where jobs are not tied to the agent's libvirt connection).
 * An agent restarts 0.2..6 s later: it aborts its outgoing jobs, kills
 * its incoming ones, and starts a fresh core in its quiet period; the
 * others hear mig_peer_down 0.5..1.5 s after the crash. Hosts toggle
 * draining now and then. After 20 s no new proposal starts and no host
 * crashes; the run goes on until every core is idle.
 *
 * Checked after every step (every delivery, timer, job end, crash):
 *   I1 never overbooked: for every live host, VMs actually on it plus the
 *      reservations its core holds for VMs not yet there fit its vCPU and
 *      memory capacity (a reservation whose VM has landed but whose
 *      arrival was missed is a double count, safe, and not added twice);
 *   I2 a job lands only on a target that still reserves room for it, or
 *      whose agent is down or in its quiet period (the room its previous
 *      life reserved is still free then; I1 checks it).
 * Checked at the end:
 *   I3 no leaks: no core holds a reservation or an outgoing negotiation,
 *      no job runs, and every reservation ever made ended in exactly one
 *      of commit/arrival, abort, expiry, or its target's crash.
 *
 * What the checks catch (mutations of mig.c tried by hand): room
 * checked without the reservations held -> I1 within a few schedules; the
 * source's lease dated from receipt instead of its own send stamp, with
 * no guard -> I2 within a few hundred; leases expiring early -> I2 at
 * once. (Dropping the quiet period is caught by test_migrate, not here:
 * an ACCEPT in flight across a target restart is too rare.)
 *
 * 3000 schedules per run (MV_SIM_SCHEDULES to change; about 3 s, 10 s
 * under ASan); the master seed is printed; MV_SIM_SEED=N replays the
 * single schedule N (as printed with a failure), MV_SIM_VERBOSE=1 logs
 * its events.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "meshvisor/mig.h"
#include "prng.h"
#include "sim_net.h"

#define GIB (1024ull * 1024)
#define MAXH 12
#define MAXVM 256
#define ACTIVE_MS 20000
#define END_LIMIT_MS 120000
#define LEASE_MS 3000

/* ------------------------------------------------------------------------ */
/* Totals over all schedules                                                */

struct totals {
	uint64_t schedules, steps, proposals, local_refusals, accepts, commits, aborts, expiries,
	    crash_dropped, arrivals, landed, jobs_failed, jobs_aborted, lease_lost, crashes, msgs,
	    lost, dups, double_counted_steps, arrivals_missed, jobs_killed;
	uint64_t refused[MIG_REASONS];
};

/* ------------------------------------------------------------------------ */
/* One schedule                                                             */

/* The world's events besides deliveries (SIMNET_EV_DELIVER, node = the
 * receiving host, p = a malloc'd struct mig_msg); node = host or job. */
enum ev_type {
	EV_JOB_END = SIMNET_EV_USER,
	EV_ABORT_EFFECT,
	EV_CRASH,
	EV_RESTART,
	EV_MEMBER_DOWN,
	EV_TICK,
	EV_DRAIN
};

struct vm {
	char name[16], uuid[40];
	int host;
	uint32_t vcpus;
	uint64_t mem;
	enum { VM_IDLE, VM_NEGOTIATING, VM_MIGRATING } st;
	char pid[MIG_ID_MAX];
	char tried[3][MIG_NAME_MAX];
	int n_tried;
};

struct job {
	int src, dst, vm;
	char pid[MIG_ID_MAX];
	bool active, fail;
};

struct host {
	char name[MIG_NAME_MAX];
	char cpu[MIG_CPU_MAX];
	struct mig *m; /* NULL while down */
	struct mig_capacity cap;
	bool draining;
	int restarts;
	bool host_down; /* the whole host (libvirt too), not only its agent */
	uint64_t down_at, started_at;
};

struct sched {
	uint64_t seed;
	struct simnet *net; /* clock, events, PRNG, network (hosts = endpoints) */
	bool verbose, active;
	int nh, nvm;
	struct host h[MAXH];
	struct vm vm[MAXVM];
	struct job *jobs;
	int njobs, capjobs;
	bool target_fence; /* see crash() */
	struct totals *tot;
	uint64_t reserved_events, ended_events;
	char fail[512];
};

static uint32_t rnd(struct sched *s, uint32_t n)
{
	return simnet_below(s->net, n);
}
static double rndf(struct sched *s)
{
	return simnet_unit(s->net);
}

static struct mig_msg *clone_msg(struct sched *s, const struct mig_msg *m)
{
	(void)s;
	struct mig_msg *p = malloc(sizeof(*p));
	assert_non_null(p);
	*p = *m;
	return p;
}

static void *clone_msg_cb(void *owner, const void *p)
{
	return clone_msg(owner, p);
}

static void vlog(struct sched *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void vlog(struct sched *s, const char *fmt, ...)
{
	if (!s->verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "%8" PRIu64 " ", simnet_now(s->net));
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void failf(struct sched *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failf(struct sched *s, const char *fmt, ...)
{
	if (s->fail[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->fail, sizeof(s->fail), fmt, ap);
	va_end(ap);
}

static void push(struct sched *s, uint64_t at, enum ev_type t, int node)
{
	simnet_at(s->net, (struct simnet_event){.at = at, .kind = (int)t, .node = node});
}

static int host_idx(struct sched *s, const char *name)
{
	for (int i = 0; i < s->nh; i++)
		if (strcmp(s->h[i].name, name) == 0)
			return i;
	return -1;
}

static struct vm *vm_by_pid(struct sched *s, const char *pid)
{
	for (int i = 0; i < s->nvm; i++)
		if (s->vm[i].st != VM_IDLE && strcmp(s->vm[i].pid, pid) == 0)
			return &s->vm[i];
	return NULL;
}

/* Ground truth: what runs on a host, fed to its core. */
static void refresh_capacity(struct sched *s, int i)
{
	struct host *h = &s->h[i];
	h->cap.vcpus_allocated = 0;
	h->cap.memory_allocated_kib = 0;
	for (int k = 0; k < s->nvm; k++)
		if (s->vm[k].host == i) {
			h->cap.vcpus_allocated += s->vm[k].vcpus;
			h->cap.memory_allocated_kib += s->vm[k].mem;
		}
	if (h->m)
		mig_set_capacity(h->m, &h->cap);
}

static struct placement_host as_placement(struct sched *s, int i)
{
	struct host *h = &s->h[i];
	return (struct placement_host){
	    .name = h->name,
	    .alive = h->m != NULL,
	    .healthy = true,
	    .draining = h->draining,
	    .cpus = h->cap.cpus,
	    .cpu_overcommit = h->cap.cpu_overcommit,
	    .vcpus_allocated = h->cap.vcpus_allocated,
	    .memory_kib = h->cap.memory_kib,
	    .memory_reserved_kib = h->cap.memory_reserved_kib,
	    .memory_overcommit = h->cap.memory_overcommit,
	    .memory_allocated_kib = h->cap.memory_allocated_kib,
	};
}

/* I1, for every live host. */
static void check_overbook(struct sched *s)
{
	for (int i = 0; i < s->nh; i++) {
		struct host *h = &s->h[i];
		if (!h->m)
			continue;
		struct placement_host p = as_placement(s, i);
		/* reservations for VMs not here yet: one whose VM has landed but
		 * whose arrival the caller missed is a double count (safe, until
		 * COMMIT or expiry), not room promised twice */
		uint32_t rv = 0;
		uint64_t rk = 0;
		for (size_t r = 0; r < mig_in_count(h->m); r++) {
			struct mig_in_info in;
			mig_in_at(h->m, r, &in);
			bool here = false;
			for (int k = 0; k < s->nvm && !here; k++)
				here = s->vm[k].host == i && strcmp(s->vm[k].uuid, in.vm_uuid) == 0;
			if (here) {
				s->tot->double_counted_steps++;
				continue;
			}
			rv += in.vcpus;
			rk += in.memory_kib;
		}
		uint64_t vcap = placement_vcpu_capacity(&p),
			 mcap = placement_memory_capacity_kib(&p);
		if ((uint64_t)h->cap.vcpus_allocated + rv > vcap ||
		    h->cap.memory_allocated_kib + rk > mcap)
			failf(s,
			      "I1 overbooked %s at %" PRIu64 ": vCPUs %u+%u > %" PRIu64
			      " or memory "
			      "%" PRIu64 "+%" PRIu64 " > %" PRIu64 " KiB",
			      h->name, simnet_now(s->net), h->cap.vcpus_allocated, rv, vcap,
			      h->cap.memory_allocated_kib, rk, mcap);
	}
}

static void process(struct sched *s, int i);

static bool try_propose(struct sched *s, int i, struct vm *v)
{
	struct host *h = &s->h[i];
	struct placement_host view[MAXH];
	for (int k = 0; k < s->nh; k++)
		view[k] = as_placement(s, k);
	/* the caller skips hosts with another CPU model (9 times in 10: the
	 * target's own check is exercised too) */
	const char *ex[3 + MAXH];
	size_t nex = 0;
	for (int k = 0; k < v->n_tried; k++)
		ex[nex++] = v->tried[k];
	for (int k = 0; k < s->nh; k++)
		if (s->h[k].cpu[0] && strcmp(s->h[k].cpu, h->cpu) != 0 && rnd(s, 10) != 0)
			ex[nex++] = s->h[k].name;
	struct placement_request req = {.vcpus = v->vcpus, .memory_kib = v->mem};
	int t = mig_choose_target(h->m, view, (size_t)s->nh, &req, ex, nex, NULL, 0);
	if (t < 0)
		return false;
	struct mig_vm mv = {
	    .name = v->name, .uuid = v->uuid, .vcpus = v->vcpus, .memory_kib = v->mem};
	enum mig_reason why;
	int rc = mig_propose(h->m, &mv, s->h[t].name, simnet_now(s->net), v->pid, &why);
	if (rc < 0) {
		s->tot->local_refusals++;
		return false;
	}
	s->tot->proposals++;
	v->st = VM_NEGOTIATING;
	snprintf(v->tried[v->n_tried++], MIG_NAME_MAX, "%s", s->h[t].name);
	vlog(s, "%s proposes %s -> %s (%s)", h->name, v->name, s->h[t].name, v->pid);
	return true;
}

static void job_done(struct sched *s, struct job *j, enum mig_outcome o)
{
	j->active = false;
	struct host *src = &s->h[j->src];
	if (!src->m)
		return;
	int rc = mig_migration_done(src->m, j->pid, o, simnet_now(s->net));
	if (rc != 0 && !(rc == -ENOENT && src->restarts > 0))
		failf(s, "done(%s) on %s refused", j->pid, src->name);
	process(s, j->src);
}

static void handle_event(struct sched *s, int i, const struct mig_event *e)
{
	struct totals *tot = s->tot;
	vlog(s, "%s event %s: %s", s->h[i].name, mig_event_name(e->type), e->text);
	struct vm *v;
	switch (e->type) {
	case MIG_EV_RESERVED:
		tot->accepts++;
		s->reserved_events++;
		break;
	case MIG_EV_COMMITTED:
		tot->commits++;
		s->ended_events++;
		break;
	case MIG_EV_RELEASED:
		tot->aborts++;
		s->ended_events++;
		break;
	case MIG_EV_EXPIRED:
		tot->expiries++;
		s->ended_events++;
		/* the target's caller kills an incoming job still running for it
		 * (its source stopped renewing: e.g. the source agent died) */
		for (int k = 0; k < s->njobs && s->target_fence; k++)
			if (s->jobs[k].active && s->jobs[k].dst == i &&
			    strcmp(s->jobs[k].pid, e->proposal_id) == 0) {
				tot->jobs_killed++;
				job_done(s, &s->jobs[k], MIG_DONE_FAILED);
			}
		break;
	case MIG_EV_REFUSED_IN:
		break;
	case MIG_EV_GO: {
		v = vm_by_pid(s, e->proposal_id);
		if (!v) {
			failf(s, "GO for unknown proposal %s", e->proposal_id);
			break;
		}
		v->st = VM_MIGRATING;
		if (s->njobs == s->capjobs) {
			s->capjobs = s->capjobs ? s->capjobs * 2 : 64;
			s->jobs = realloc(s->jobs, (size_t)s->capjobs * sizeof(*s->jobs));
			assert_non_null(s->jobs);
		}
		struct job *j = &s->jobs[s->njobs];
		*j = (struct job){.src = i,
		                  .dst = host_idx(s, e->peer),
		                  .vm = (int)(v - s->vm),
		                  .active = true,
		                  .fail = rnd(s, 10) == 0};
		snprintf(j->pid, sizeof(j->pid), "%s", e->proposal_id);
		push(s, simnet_now(s->net) + 50 + rnd(s, 7950), EV_JOB_END, s->njobs);
		s->njobs++;
		break;
	}
	case MIG_EV_REFUSED:
		tot->refused[e->reason < MIG_REASONS ? e->reason : 0]++;
		v = vm_by_pid(s, e->proposal_id);
		if (!v) {
			failf(s, "REFUSED for unknown proposal %s", e->proposal_id);
			break;
		}
		v->st = VM_IDLE;
		if (!(s->active && v->n_tried < 3 && try_propose(s, i, v)))
			v->n_tried = 0;
		break;
	case MIG_EV_LEASE_LOST:
		tot->lease_lost++;
		for (int k = 0; k < s->njobs; k++)
			if (s->jobs[k].active && s->jobs[k].src == i &&
			    strcmp(s->jobs[k].pid, e->proposal_id) == 0)
				push(s, simnet_now(s->net) + rnd(s, LEASE_MS / 20), EV_ABORT_EFFECT,
				     k);
		break;
	case MIG_EV_FINISHED:
		v = vm_by_pid(s, e->proposal_id);
		if (v) {
			v->st = VM_IDLE;
			v->n_tried = 0;
		}
		break;
	}
}

/* Drains a core: outputs onto the network, events to the caller model. */
static void process(struct sched *s, int i)
{
	struct host *h = &s->h[i];
	bool any = true;
	while (any && h->m) {
		any = false;
		struct mig_msg msg;
		while (h->m && mig_pop_output(h->m, &msg)) {
			any = true;
			s->tot->msgs++;
			int to = host_idx(s, msg.to);
			if (to < 0 || to == i) {
				failf(s, "%s sent %s to bad host '%s'", h->name,
				      mig_msg_type_name(msg.type), msg.to);
				continue;
			}
			simnet_send(s->net, i, to, clone_msg(s, &msg));
		}
		struct mig_event e;
		while (h->m && mig_pop_event(h->m, &e)) {
			any = true;
			handle_event(s, i, &e);
		}
	}
}

static void start_core(struct sched *s, int i)
{
	struct host *h = &s->h[i];
	struct mig_config c;
	mig_config_default(&c);
	snprintf(c.name, sizeof(c.name), "%s", h->name);
	snprintf(c.cpu_model, sizeof(c.cpu_model), "%s", h->cpu);
	c.seed = simnet_rand(s->net);
	c.lease_ms = LEASE_MS;
	c.propose_timeout_ms = 1000;
	c.propose_retry_ms = 250;
	c.startup_quiet_ms = h->restarts ? LEASE_MS : 0;
	c.max_incoming = 1 + rnd(s, 3);
	c.max_outgoing = 1 + rnd(s, 3);
	h->m = mig_new(&c, simnet_now(s->net));
	assert_non_null(h->m);
	h->started_at = simnet_now(s->net);
	mig_set_draining(h->m, h->draining);
	refresh_capacity(s, i);
}

static void crash(struct sched *s, int i)
{
	struct host *h = &s->h[i];
	if (!h->m)
		return;
	h->host_down = rnd(s, 2) == 0;
	vlog(s, "%s %s", h->name, h->host_down ? "crashes (host)" : "agent restarts (jobs go on)");
	s->tot->crashes++;
	s->tot->crash_dropped += mig_in_count(h->m);
	s->ended_events += mig_in_count(h->m);
	mig_free(h->m);
	h->m = NULL;
	h->restarts++;
	h->down_at = simnet_now(s->net);
	for (int k = 0; k < s->nvm; k++)
		if (s->vm[k].host == i)
			s->vm[k].st = VM_IDLE, s->vm[k].n_tried = 0;
	/* A dead agent's jobs: in half the schedules they die with it (the
	 * job is tied to its libvirt connection); in the others they run on
	 * until its restart aborts them, and only the target's fence (kill
	 * the incoming job when the reservation expires) keeps them from
	 * landing on room given away. */
	for (int k = 0; k < s->njobs && (h->host_down || !s->target_fence); k++) {
		struct job *j = &s->jobs[k];
		if (!j->active)
			continue;
		if (j->src == i)
			j->active = false; /* the job died with its host or agent */
		else if (!h->host_down)
			continue;
		else if (j->dst == i)
			job_done(s, j, MIG_DONE_FAILED); /* libvirt reports the failure */
	}
	push(s, simnet_now(s->net) + 200 + rnd(s, 5800), EV_RESTART, i);
	push(s, simnet_now(s->net) + 500 + rnd(s, 1000), EV_MEMBER_DOWN, i);
}

static void job_end(struct sched *s, int k)
{
	struct job *j = &s->jobs[k];
	if (!j->active)
		return;
	if (j->fail) {
		s->tot->jobs_failed++;
		job_done(s, j, MIG_DONE_FAILED);
		return;
	}
	struct host *dst = &s->h[j->dst];
	struct vm *v = &s->vm[j->vm];
	if (dst->host_down) { /* the target went down after its ACCEPT */
		s->tot->jobs_failed++;
		job_done(s, j, MIG_DONE_FAILED);
		return;
	}
	/* I2: the target still reserves room for it — or its agent is down or
	 * restarted since and still in its quiet period, accepting nothing, so
	 * the room its previous life reserved is still free (I1 checks it) */
	bool held =
	    !dst->m || (dst->restarts > 0 && simnet_now(s->net) < dst->started_at + LEASE_MS);
	for (size_t r = 0; dst->m && r < mig_in_count(dst->m); r++) {
		struct mig_in_info in;
		mig_in_at(dst->m, r, &in);
		held |= strcmp(in.proposal_id, j->pid) == 0;
	}
	if (!held) {
		failf(s, "I2 %s landed on %s without a reservation (%s)", v->name, dst->name,
		      j->pid);
		return;
	}
	s->tot->landed++;
	vlog(s, "%s lands on %s", v->name, dst->name);
	v->host = j->dst;
	/* the target's caller: arrival, then capacity, before anything else */
	if (!dst->m || rnd(s, 10) < 3) /* no agent, or libvirt's event is late:
	                                  COMMIT or the lease releases it */
		s->tot->arrivals_missed++;
	else if (mig_vm_arrived(dst->m, v->uuid, simnet_now(s->net)))
		s->tot->arrivals++;
	refresh_capacity(s, j->dst);
	process(s, j->dst);
	refresh_capacity(s, j->src);
	job_done(s, j, rnd(s, 10) == 0 ? MIG_DONE_LANDED_ANYWAY : MIG_DONE_OK);
	v->st = VM_IDLE;
	v->n_tried = 0;
}

static void tick(struct sched *s, int i)
{
	struct host *h = &s->h[i];
	if (!s->active)
		return;
	push(s, simnet_now(s->net) + 500 + rnd(s, 2500), EV_TICK, i);
	if (!h->m)
		return;
	int idle[MAXVM], n = 0;
	for (int k = 0; k < s->nvm; k++)
		if (s->vm[k].host == i && s->vm[k].st == VM_IDLE)
			idle[n++] = k;
	if (n == 0)
		return;
	struct vm *v = &s->vm[idle[rnd(s, (uint32_t)n)]];
	v->n_tried = 0;
	try_propose(s, i, v);
	process(s, i);
}

static void setup(struct sched *s)
{
	static const char *const cpus[] = {"Skylake", "Skylake", "Skylake", "EPYC", ""};
	static const double oc[] = {1.0, 1.0, 1.5, 2.0, 4.0};
	s->nh = 6 + (int)rnd(s, MAXH - 5);
	/* each message: 2% are duplicated, 0..15% lost, 1..300 ms late */
	simnet_set_dup(s->net, 0.02);
	simnet_set_loss(s->net, -1, -1, rndf(s) * 0.15);
	simnet_set_delay(s->net, -1, -1, 1, rnd(s, 300));
	s->target_fence = rnd(s, 2) == 0;
	for (int i = 0; i < s->nh; i++) {
		struct host *h = &s->h[i];
		snprintf(h->name, sizeof(h->name), "h%d", i);
		snprintf(h->cpu, sizeof(h->cpu), "%s", cpus[rnd(s, 5)]);
		h->cap.cpus = 4 + rnd(s, 13);
		h->cap.cpu_overcommit = oc[rnd(s, 5)];
		h->cap.memory_kib = (8 + rnd(s, 57)) * GIB;
		h->cap.memory_reserved_kib = rnd(s, 3) * GIB;
		h->cap.memory_overcommit = rnd(s, 3) ? 1.0 : 1.5;
		/* fill to 30..90% */
		struct placement_host p = as_placement(s, i);
		uint64_t mcap = placement_memory_capacity_kib(&p);
		uint32_t vcap = placement_vcpu_capacity(&p);
		double fill = 0.3 + 0.6 * rndf(s);
		uint64_t mused = 0;
		uint32_t vused = 0;
		for (int tries = 0; tries < 40 && s->nvm < MAXVM; tries++) {
			uint32_t vc = 1 + rnd(s, 4);
			uint64_t mem = (1ull << rnd(s, 4)) * GIB;
			if (mused + mem > (uint64_t)(fill * (double)mcap) || vused + vc > vcap)
				continue;
			struct vm *v = &s->vm[s->nvm];
			snprintf(v->name, sizeof(v->name), "vm%d", s->nvm);
			snprintf(v->uuid, sizeof(v->uuid), "00000000-0000-0000-0000-%012d", s->nvm);
			v->host = i;
			v->vcpus = vc;
			v->mem = mem;
			s->nvm++;
			mused += mem;
			vused += vc;
		}
	}
	for (int i = 0; i < s->nh; i++) {
		start_core(s, i);
		push(s, rnd(s, 2000), EV_TICK, i);
		if (rnd(s, 4) == 0)
			push(s, rnd(s, ACTIVE_MS), EV_CRASH, i);
		if (rnd(s, 5) == 0)
			push(s, rnd(s, ACTIVE_MS), EV_DRAIN, i);
	}
	/* a few more crashes, possibly of the same host twice, and some of
	 * the source or target of a running job (a = -1), mid-migration */
	for (uint32_t k = rnd(s, 3); k > 0; k--)
		push(s, rnd(s, ACTIVE_MS), EV_CRASH, (int)rnd(s, (uint32_t)s->nh));
	for (uint32_t k = rnd(s, 4); k > 0; k--)
		push(s, rnd(s, ACTIVE_MS), EV_CRASH, -1);
}

static void step_event(struct sched *s, struct simnet_event *e)
{
	switch (e->kind) {
	case SIMNET_EV_DELIVER: {
		struct host *h = &s->h[e->node];
		struct mig_msg *msg = e->p;
		if (h->m) {
			if (mig_handle_message(h->m, msg, simnet_now(s->net)) != 0)
				failf(s, "%s rejected a %s", h->name, mig_msg_type_name(msg->type));
			process(s, e->node);
		}
		free(msg);
		break;
	}
	case EV_JOB_END:
		job_end(s, e->node);
		break;
	case EV_ABORT_EFFECT:
		if (s->jobs[e->node].active) {
			s->tot->jobs_aborted++;
			job_done(s, &s->jobs[e->node], MIG_DONE_FAILED);
		}
		break;
	case EV_CRASH:
		if (!s->active)
			break;
		if (e->node >= 0) {
			crash(s, e->node);
			break;
		}
		int act[64], n = 0;
		for (int k = 0; k < s->njobs && n < 64; k++)
			if (s->jobs[k].active)
				act[n++] = k;
		if (n > 0) {
			const struct job *j = &s->jobs[act[rnd(s, (uint32_t)n)]];
			crash(s, rnd(s, 2) ? j->dst : j->src);
		}
		break;
	case EV_RESTART:
		vlog(s, "%s restarts", s->h[e->node].name);
		/* a restarted agent first aborts the outgoing jobs it finds and
		 * kills the incoming ones (their reservations are forgotten);
		 * the quiet period covers jobs whose ACCEPT was still in flight */
		for (int k = 0; k < s->njobs; k++) {
			struct job *j = &s->jobs[k];
			if (j->active && j->src == e->node) {
				s->tot->jobs_aborted++;
				j->active = false;
			} else if (j->active && j->dst == e->node) {
				s->tot->jobs_killed++;
				job_done(s, j, MIG_DONE_FAILED);
			}
		}
		s->h[e->node].host_down = false;
		start_core(s, e->node);
		break;
	case EV_MEMBER_DOWN:
		for (int i = 0; i < s->nh; i++)
			if (i != e->node && s->h[i].m) {
				mig_peer_down(s->h[i].m, s->h[e->node].name, simnet_now(s->net));
				process(s, i);
			}
		break;
	case EV_TICK:
		tick(s, e->node);
		break;
	case EV_DRAIN:
		s->h[e->node].draining = !s->h[e->node].draining;
		if (s->h[e->node].m)
			mig_set_draining(s->h[e->node].m, s->h[e->node].draining);
		if (s->active)
			push(s, simnet_now(s->net) + 1000 + rnd(s, 8000), EV_DRAIN, e->node);
		break;
	}
}

/* Runs one schedule; returns false (with s->fail) on a violation. */
static bool run_schedule(uint64_t seed, struct totals *tot, bool verbose, char *fail,
                         size_t faillen)
{
	struct sched *s = calloc(1, sizeof(*s));
	assert_non_null(s);
	s->seed = seed;
	s->tot = tot;
	s->verbose = verbose;
	s->active = true;
	s->net = simnet_new(MAXH, seed, &(struct simnet_ops){.clone_msg = clone_msg_cb}, s);
	setup(s);
	while (!s->fail[0]) {
		if (s->active && simnet_now(s->net) >= ACTIVE_MS)
			s->active = false;
		uint64_t next_core = UINT64_MAX;
		int core = -1;
		for (int i = 0; i < s->nh; i++)
			if (s->h[i].m) {
				uint64_t d = mig_next_deadline(s->h[i].m);
				if (d < next_core)
					next_core = d, core = i;
			}
		uint64_t next_ev = simnet_next_at(s->net);
		if (next_core == UINT64_MAX && next_ev == UINT64_MAX)
			break;
		uint64_t t = next_core < next_ev ? next_core : next_ev;
		if (t > END_LIMIT_MS) {
			failf(s, "still busy at %d ms", END_LIMIT_MS);
			break;
		}
		simnet_advance_to(s->net, t);
		if (next_core <= next_ev) {
			mig_handle_timer(s->h[core].m, simnet_now(s->net));
			process(s, core);
		} else {
			struct simnet_event e = simnet_pop(s->net);
			step_event(s, &e);
		}
		tot->steps++;
		check_overbook(s);
	}
	/* I3: nothing left anywhere */
	for (int i = 0; i < s->nh && !s->fail[0]; i++) {
		struct host *h = &s->h[i];
		if (!h->m)
			failf(s, "%s still down at the end", h->name);
		else if (mig_in_count(h->m) || mig_out_count(h->m))
			failf(s, "I3 leak on %s: %zu reservations, %zu outgoing", h->name,
			      mig_in_count(h->m), mig_out_count(h->m));
	}
	for (int k = 0; k < s->njobs && !s->fail[0]; k++)
		if (s->jobs[k].active)
			failf(s, "I3 job %s still running", s->jobs[k].pid);
	if (!s->fail[0] && s->reserved_events != s->ended_events)
		failf(s, "I3 %" PRIu64 " reservations made, %" PRIu64 " ended", s->reserved_events,
		      s->ended_events);
	tot->lost += simnet_counters(s->net)->dropped_loss;
	tot->dups += simnet_counters(s->net)->duplicated;
	simnet_free(s->net); /* and the messages still in flight */
	for (int i = 0; i < s->nh; i++)
		mig_free(s->h[i].m);
	bool ok = !s->fail[0];
	if (!ok)
		snprintf(fail, faillen, "%s", s->fail);
	tot->schedules++;
	free(s->jobs);
	free(s);
	return ok;
}

static void test_randomized_schedules(void **state)
{
	struct totals tot;
	memset(&tot, 0, sizeof(tot));
	const char *env = getenv("MV_SIM_SEED");
	const char *venv = getenv("MV_SIM_VERBOSE");
	bool verbose = venv && venv[0] == '1';
	const char *nenv = getenv("MV_SIM_SCHEDULES");
	long n = nenv ? strtol(nenv, NULL, 0) : 3000;
	uint64_t master;
	char fail[512];
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (env) {
		uint64_t seed = strtoull(env, NULL, 0);
		fprintf(stderr, "sim seed=%" PRIu64 " (one schedule)\n", seed);
		if (!run_schedule(seed, &tot, verbose, fail, sizeof(fail)))
			fail_msg("schedule seed=%" PRIu64 ": %s", seed, fail);
	} else {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t x0 = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
		master = mv_splitmix64(&x0) >> 1;
		fprintf(stderr,
		        "sim seed=%" PRIu64 " schedules=%ld (replay one: MV_SIM_SEED=<schedule "
		        "seed printed on failure>)\n",
		        master, n);
		uint64_t x = master;
		for (long k = 0; k < n; k++) {
			uint64_t seed = mv_splitmix64(&x) >> 1;
			if (!run_schedule(seed, &tot, false, fail, sizeof(fail)))
				fail_msg("schedule %ld failed: %s\n  replay: MV_SIM_SEED=%" PRIu64
				         " MV_SIM_VERBOSE=1",
				         k, fail, seed);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	fprintf(stderr,
	        "  %" PRIu64 " schedules, %" PRIu64 " steps in %.2f s\n"
	        "  proposals %" PRIu64 " (local refusals %" PRIu64 "), accepts %" PRIu64
	        ", commits %" PRIu64 " (by arrival %" PRIu64 "), aborts %" PRIu64
	        ", lease expiries %" PRIu64 ", dropped by target crash %" PRIu64 "\n"
	        "  jobs landed %" PRIu64 ", failed %" PRIu64 ", aborted %" PRIu64
	        " (lease lost %" PRIu64
	        ", or source agent restarted), killed by the target (expiry or"
	        " restart) %" PRIu64 "; crashes %" PRIu64 "\n"
	        "  messages %" PRIu64 ", lost %" PRIu64 ", duplicated %" PRIu64
	        "; arrivals not reported %" PRIu64 " (double-counted steps %" PRIu64 ")\n"
	        "  refusals:",
	        tot.schedules, tot.steps, secs, tot.proposals, tot.local_refusals, tot.accepts,
	        tot.commits, tot.arrivals, tot.aborts, tot.expiries, tot.crash_dropped, tot.landed,
	        tot.jobs_failed, tot.jobs_aborted, tot.lease_lost, tot.jobs_killed, tot.crashes,
	        tot.msgs, tot.lost, tot.dups, tot.arrivals_missed, tot.double_counted_steps);
	for (int r = 1; r < MIG_REASONS; r++)
		if (tot.refused[r])
			fprintf(stderr, " %s %" PRIu64, mig_reason_name((enum mig_reason)r),
			        tot.refused[r]);
	fprintf(stderr, "\n");
	assert_true(tot.accepts > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_randomized_schedules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
