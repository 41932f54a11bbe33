/*
 * migration.c — moving VMs between hosts, in the daemon (see migration.h).
 *
 * Source side, one struct migration per move:
 *
 *   choose a target (gossiped capacity, mig_choose_target) or take --to
 *     -> mig_propose: PROPOSE to the target      phase "proposing"
 *   REFUSE -> exclude it, choose the next one (with --to: give up)
 *   ACCEPT -> GO event: the VM is read (on the hypervisor worker,
 *     phase "starting"); an HA VM's move is first announced to the voters
 *     (ha.c, MOVES in agent/core/fo.c) and waits until a majority
 *     acknowledged it (at most 5 s, else it stays; a lost lease or no
 *     quorum calls it off)                                phase "announcing"
 *   then bump the VM's owner epoch and move it:
 *     live    (a hypervisor that migrates): virt_vm_migrate on the
 *             worker's migration lane, job progress polled every second; on
 *             failure ask both hosts where the VM really is (virt_vm_where)
 *             so a VM that landed anyway is committed, not lost
 *                                                            phase "migrating"
 *     offline (libvirt's test driver): export the definition, stop it here,
 *             hand it to the target (node-to-node VmReceive: define and
 *             start there), undefine it here only after that; on failure
 *             start it here again                            phase "moving"
 *   Every libvirt call of this side runs on the hypervisor worker, never
 *   on the loop ("the move's libvirt calls" below).
 *   -> mig_migration_done: COMMIT (moved) or ABORT (still here); the core
 *      releases the target's reservation either way.
 *
 * Target side is the core's: reservations under a lease, refusals with a
 * reason; an arriving VM (libvirt event or VmReceive) releases its
 * reservation and our next published capacity counts it. VmReceive's
 * define and start run on the hypervisor worker (see "an offline move
 * arriving" below), as does the look for a half-arrived copy when an
 * incoming move's lease runs out.
 *
 * Whoever asked (a client, or the agent that forwarded the request) gets a
 * progress frame at each step and a final one with the outcome. Every host
 * gossips its recent outgoing migrations in its node state, which is what
 * `meshvisor migrations` lists from any node.
 *
 * A VM that crashed too often here (ha.c, migration_move_crashed) moves
 * the same way, offline, and is started on the target.
 *
 * Drain: mark this host draining (placement and every target refuse it),
 * then move its VMs off, at most `parallel` at a time, each to the best
 * host that accepts; a VM no host takes stays where it is, reported.
 */
#include "migration.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/time.h>

#include "agent.h"
#include "core_driver.h"
#include "membership.h"
#include "peer_client.h"
#include "rpc_service.h"
#include "envelope.h"
#include "log.h"
#include "meshvisor/mig.h"
#include "mig_codec.h"
#include "mig_driver.h"
#include "nodestate.h"
#include "state_codec.h"

#define MIGRATION_KEEP_DONE 10     /* finished moves kept for `migrations` */
#define MIGRATION_PROGRESS_MS 1000 /* job progress poll and report */
#define MIGRATION_READY_POLL_MS 50 /* an announced HA move waits for a majority */
#define MIGRATION_READY_MS 5000    /* ... at most this long, then it stays */
#define MIGRATION_MAX_EXCLUDED 16  /* targets that refused, per move */
#define MIGRATION_MAX_SAME 4       /* label keys a target must share (--same) */

struct drain;
struct migration;

/* What comes after one of a move's libvirt calls on the hypervisor worker
 * (migration_step): on the loop, with the call's result. */
typedef void (*migration_step_fn)(struct agent *a, struct migration *m,
                                  const struct virt_op_result *res);

struct migration {
	struct migration *next;
	struct agent *a; /* for the worker's callbacks */
	char id[MIG_ID_MAX];
	char vm[MIG_NAME_MAX];
	char uuid[MIG_UUID_MAX];
	char target[MIG_NAME_MAX];
	char phase[16];
	bool done, ok, offline, explicit_target;
	char message[768];
	int64_t started_unix_ms, ended_unix_ms;
	uint64_t started_ms;
	uint32_t vcpus;
	uint64_t memory_kib;
	char excluded[MIGRATION_MAX_EXCLUDED][MIG_NAME_MAX];
	size_t n_excluded;
	char same[MIGRATION_MAX_SAME][MIG_NAME_MAX]; /* label keys to match */
	size_t n_same;
	char refusals[512];
	char dest_uri[512];
	char stream_uri[512];
	uint64_t sink; /* 0: nobody waits (a drain collects it instead) */
	struct drain *drain;
	/* live */
	struct hvwork_job work; /* on the worker's migration lane */
	bool work_running;
	struct virt_migrate_params params;
	struct virt_migrate_result result;
	int work_rc;
	char work_err[512];
	struct virt_where where;
	int where_rc;
	struct virt_job_stats stats;
	/* offline */
	bool was_running;
	bool start_there;          /* start it on the target even though it is stopped here */
	migration_done_fn on_done; /* who is told of the end (migration_move_crashed) */
	char *xml;                 /* its exported definition, until it is sent */
	/* the move's libvirt calls on the hypervisor worker (migration_step) */
	migration_step_fn step_fn; /* the step in flight's continuation, NULL when none */
	unsigned virt_pending;     /* steps, job-statistics reads in flight */
	bool stats_pending;
	bool lease_lost; /* the target's reservation was lost while a step ran */
	bool abort_owed; /* lease lost while migrating, its abort refused (critical lane
	                    full): retried by the progress timer until queued */
	int where_status;
	/* an HA VM's move, announced to the failover service (MOVES) */
	bool announced, moving;
	bool where_unknown; /* a failed move left it we do not know where */
	uint64_t move_epoch, ready_by;
};

struct drain_result {
	char vm[MIG_NAME_MAX];
	char target[MIG_NAME_MAX];
	char message[512];
	bool ok;
	struct migration move; /* the whole move's record, when one was started */
	bool have_move;
};

struct drain {
	uint64_t sink;
	uint32_t parallel;
	char (*vms)[MIG_NAME_MAX];
	size_t n_vms, next, running;
	struct drain_result *results;
	size_t n_results;
};

/* The service's state; the agent holds only a pointer to it
 * (a->migration). */
struct migration_service {
	struct mig *core;
	uv_timer_t core_timer;                         /* the core's next deadline */
	uv_timer_t progress_timer;                     /* job progress poll and report */
	uv_timer_t ready_timer;                        /* HA moves waiting for a majority */
	bool timers_on;                                /* all initialized (migration_close) */
	const struct migration_move_hooks *move_hooks; /* the failover service's (ha.c) */
	struct migration *moves;            /* outgoing, newest first; finished ones kept a while */
	struct migration_receive *receives; /* offline moves' VmReceive in flight here */
	struct drain *drain;                /* this host's drain in progress, if any */
	uint64_t jobs_running;              /* migration jobs on worker threads */
	bool draining;                      /* set by a drain, published in our record */
	/* migration_hold_incoming: why no VM moves in now ("" when it may) */
	char hold_why[MIG_TEXT_MAX / 2];

	/* finished outgoing moves (metrics.c) */
	struct migration_totals totals;
};

static int64_t migration_wall_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static bool migration_offline_host(const struct agent *a)
{
	return strncmp(virt_uri(a->virt), "test:", 5) == 0 ||
	       strncmp(virt_uri(a->virt), "test+", 5) == 0;
}

static struct migration *migration_find(struct agent *a, const char *id)
{
	for (struct migration *m = a->migration->moves; m != NULL; m = m->next)
		if (strcmp(m->id, id) == 0)
			return m;
	return NULL;
}

static struct migration *migration_find_vm(struct agent *a, const char *vm)
{
	for (struct migration *m = a->migration->moves; m != NULL; m = m->next)
		if (!m->done && (strcmp(m->vm, vm) == 0 || strcasecmp(m->uuid, vm) == 0))
			return m;
	return NULL;
}

/* ---- reporting -------------------------------------------------------------------- */

static void migration_info_fill(const struct migration *m, const char *source,
                                Mv__MigrationInfo *out)
{
	mv__migration_info__init(out);
	out->id = (char *)m->id;
	out->vm = (char *)m->vm;
	out->uuid = (char *)m->uuid;
	out->source = (char *)source;
	out->target = (char *)m->target;
	out->phase = (char *)m->phase;
	out->done = m->done;
	out->ok = m->ok;
	out->message = (char *)m->message;
	out->started_unix_ms = m->started_unix_ms;
	out->ended_unix_ms = m->ended_unix_ms;
	out->elapsed_ms =
	    (uint64_t)((m->done ? m->ended_unix_ms : migration_wall_ms()) - m->started_unix_ms);
	out->data_processed = m->stats.data_processed;
	out->data_remaining = m->stats.data_remaining;
	out->data_total = m->stats.data_total;
	out->downtime_ms = m->stats.have_downtime ? m->stats.downtime_ms : 0;
	out->offline = m->offline;
}

void migration_set_move_hooks(struct agent *a, const struct migration_move_hooks *hooks)
{
	if (a->migration != NULL)
		a->migration->move_hooks = hooks;
}

uint64_t migration_work_running(const struct agent *a)
{
	return a->migration != NULL ? a->migration->jobs_running : 0;
}

const struct migration_totals *migration_totals(const struct agent *a)
{
	return a->migration != NULL ? &a->migration->totals : NULL;
}

bool migration_draining(const struct agent *a)
{
	return a->migration != NULL && a->migration->draining;
}

/* The reservation held here for proposal `id`, or for the VM named `key`
 * (name or UUID); either may be NULL. */
static bool migration_find_incoming(struct agent *a, const char *id, const char *key,
                                    struct mig_in_info *out)
{
	for (size_t i = 0; a->migration != NULL && i < mig_in_count(a->migration->core); i++) {
		mig_in_at(a->migration->core, i, out);
		if ((id && strcmp(out->proposal_id, id) == 0) ||
		    (key && (strcmp(out->vm_name, key) == 0 || strcasecmp(out->vm_uuid, key) == 0)))
			return true;
	}
	return false;
}

bool migration_has_incoming(struct agent *a, const char *id)
{
	struct mig_in_info in;
	return migration_find_incoming(a, id, NULL, &in);
}

bool migration_incoming_source(struct agent *a, const char *key, char *source, size_t len)
{
	struct mig_in_info in;
	if (!migration_find_incoming(a, NULL, key, &in))
		return false;
	snprintf(source, len, "%s", in.source);
	return true;
}

static size_t migration_list(struct agent *a, Mv__MigrationInfo *out, size_t cap)
{
	size_t n = 0;
	for (struct migration *m = a->migration ? a->migration->moves : NULL; m != NULL && n < cap;
	     m = m->next)
		migration_info_fill(m, a->opt.name, &out[n++]);
	return n;
}

static void migration_progress(struct agent *a, struct migration *m)
{
	if (m->sink == 0)
		return;
	Mv__MigrationInfo info;
	migration_info_fill(m, a->opt.name, &info);
	Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
	resp.result_case = MV__RPC_RESPONSE__RESULT_MIGRATION;
	resp.migration = &info;
	rpc_sink_send(a, m->sink, &resp, false);
}

static void migration_prune(struct agent *a)
{
	size_t kept_done = 0;
	struct migration **pp = &a->migration->moves;
	while (*pp != NULL) {
		struct migration *m = *pp;
		if (m->done && !m->work_running && m->virt_pending == 0 &&
		    ++kept_done > MIGRATION_KEEP_DONE) {
			*pp = m->next;
			free(m);
			continue;
		}
		pp = &m->next;
	}
}

static void drain_on_finished(struct agent *a, struct migration *m);

/* The move is over (for the caller): report, publish, forget later. */
static void migration_finish(struct agent *a, struct migration *m, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void migration_finish(struct agent *a, struct migration *m, bool ok, const char *fmt, ...)
{
	if (m->done)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(m->message, sizeof(m->message), fmt, ap);
	va_end(ap);
	m->done = true;
	m->ok = ok;
	snprintf(m->phase, sizeof(m->phase), "done");
	m->ended_unix_ms = migration_wall_ms();
	struct migration_totals *tot = &a->migration->totals;
	*(ok ? &tot->ok : &tot->failed) += 1;
	tot->bytes += m->result.have_stats ? m->result.stats.data_processed : 0;
	mv_hist_observe(&tot->duration, (double)(m->ended_unix_ms - m->started_unix_ms) / 1000.0);
	char q[900];
	mv_log(ok ? MV_LOG_INFO : MV_LOG_WARN, "migrate",
	       "migration finished id=%s vm=%s target=%s ok=%d elapsed_ms=%" PRId64 " outcome=%s",
	       m->id[0] ? m->id : "-", m->vm, m->target[0] ? m->target : "-", ok,
	       m->ended_unix_ms - m->started_unix_ms, mv_log_quote(q, sizeof(q), m->message));
	if (m->sink != 0) {
		Mv__MigrationInfo info;
		migration_info_fill(m, a->opt.name, &info);
		Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
		resp.result_case = MV__RPC_RESPONSE__RESULT_MIGRATION;
		resp.migration = &info;
		if (!ok) {
			resp.code = MV__RPC_CODE__RPC_ERR_CONFLICT;
			resp.error = m->message;
		}
		rpc_sink_send(a, m->sink, &resp, true);
		m->sink = 0;
	}
	if (m->drain != NULL)
		drain_on_finished(a, m);
	if (m->on_done != NULL) {
		migration_done_fn fn = m->on_done;
		m->on_done = NULL;
		fn(a, m->uuid, m->vm, ok, m->target, m->message);
	}
	nodestate_refresh(a);
	migration_prune(a);
}

/* ---- core <-> network --------------------------------------------------------------- */

static void migration_on_timer(uv_timer_t *t);
static void migration_handle_events(struct agent *a);

static void migration_pump(struct agent *a)
{
	struct mig_msg msg;
	while (mig_pop_output(a->migration->core, &msg)) {
		if (a->net == NULL)
			continue;
		struct swim_member_info mi;
		if (!swim_member_find(membership_swim(a), msg.to, &mi)) {
			MV_WARN("migrate", "cannot send %s: unknown host name=%s",
			        mig_msg_type_name(msg.type), msg.to);
			continue;
		}
		const char *dest = NULL, *stream = NULL;
		if (msg.type == MIG_ACCEPT) {
			dest = a->opt.mig_libvirt_uri ? a->opt.mig_libvirt_uri : virt_uri(a->virt);
			stream = a->opt.mig_stream_uri;
		}
		uint8_t *frame = NULL;
		size_t len = 0;
		int rc = mig_codec_encode_frame(&msg, dest, stream, &frame, &len);
		core_driver_send(a, "migrate", mig_msg_type_name(msg.type), rc, frame, len, mi.addr,
		                 msg.to);
	}
	migration_handle_events(a);
	core_driver_rearm(a, &a->migration->core_timer, migration_on_timer,
	                  mig_next_deadline(a->migration->core));
}

static void migration_on_timer(uv_timer_t *t)
{
	struct agent *a = t->data;
	mig_handle_timer(a->migration->core, uv_now(a->loop));
	migration_pump(a);
}

void migration_handle_envelope(struct agent *a, const Mv__Envelope *env)
{
	struct mig_msg msg;
	const char *dest_uri, *stream_uri, *why;
	if (mig_codec_decode(env, &msg, &dest_uri, &stream_uri, &why) < 0) {
		MV_WARN("migrate", "rejected migration message from=%s reason=\"%s\"", env->from,
		        why);
		return;
	}
	if (msg.type == MIG_ACCEPT) {
		struct migration *m = migration_find(a, msg.proposal_id);
		if (m != NULL) {
			snprintf(m->dest_uri, sizeof(m->dest_uri), "%s", dest_uri);
			snprintf(m->stream_uri, sizeof(m->stream_uri), "%s", stream_uri);
		}
	}
	if (mig_handle_message(a->migration->core, &msg, uv_now(a->loop)) < 0)
		MV_WARN("migrate", "negotiation core rejected %s from=%s",
		        mig_msg_type_name(msg.type), env->from);
	migration_pump(a);
}

void migration_on_member_event(struct agent *a, const struct swim_event *e)
{
	/* the mapping is shared with the simulator (agent/wire/mig_driver.c) */
	if (mig_driver_member_event(a->migration->core, e, uv_now(a->loop)))
		migration_pump(a);
}

static void migration_set_capacity(struct agent *a, const Mv__NodeState *ns)
{
	if (a->migration == NULL)
		return;
	struct mig_capacity cap = {
	    .cpus = ns->cpus,
	    .cpu_overcommit = ns->cpu_overcommit,
	    .memory_kib = ns->memory_kib,
	    .memory_reserved_kib = ns->memory_reserved_kib,
	    .memory_overcommit = ns->memory_overcommit,
	    .vcpus_allocated = ns->vcpus_allocated,
	    .memory_allocated_kib = ns->memory_allocated_kib,
	};
	mig_set_capacity(a->migration->core, &cap);
	mig_set_draining(a->migration->core, ns->draining);
}

void migration_on_vm_event(struct agent *a, const char *vm_name)
{
	if (a->migration == NULL || vm_name == NULL)
		return;
	/* Only RUNNING is an arrival: an incoming live migration's domain exists
	 * here, paused, from its first second; taking that for arrival released
	 * the reservation early and made the source lose its lease mid-move.
	 * A VM moved while paused is released by the source's COMMIT instead.
	 * The event has just refreshed the cache: no libvirt call here. */
	size_t n;
	const struct virt_vm *vms = virt_vms(a->virt, &n);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(vms[i].name, vm_name) != 0 || vms[i].state != VIRT_VM_RUNNING)
			continue;
		if (mig_vm_arrived(a->migration->core, vms[i].uuid, uv_now(a->loop))) {
			nodestate_refresh(a);
			migration_pump(a);
		}
		return;
	}
}

/* ---- choosing a target and proposing ------------------------------------------------ */

static void migration_propose(struct agent *a, struct migration *m);

/* A host's value for a label key: zone, rack, or a free-form label; "" if
 * it has none. */
static const char *migration_label_of(const Mv__NodeState *s, const char *key)
{
	if (strcmp(key, "zone") == 0)
		return s->zone;
	if (strcmp(key, "rack") == 0)
		return s->rack;
	for (size_t i = 0; i < s->n_labels; i++)
		if (strcmp(s->labels[i]->key, key) == 0)
			return s->labels[i]->value;
	return "";
}

/* Does `host` share every --same label with `self`? If not, why. */
static bool migration_labels_match(const struct migration *m, const Mv__NodeState *self,
                                   const Mv__NodeState *host, char *why, size_t whylen)
{
	for (size_t i = 0; i < m->n_same; i++) {
		const char *want = migration_label_of(self, m->same[i]);
		const char *have = migration_label_of(host, m->same[i]);
		if (strcmp(want, have) != 0) {
			snprintf(why, whylen, "%s has %s=%s, %s has %s=%s", host->name, m->same[i],
			         have[0] ? have : "(none)", self->name, m->same[i],
			         want[0] ? want : "(none)");
			return false;
		}
	}
	return true;
}

/* Picks the best host that may take m (gossiped view), excluding refusers. */
static int migration_choose(struct agent *a, struct migration *m, char *why, size_t whylen)
{
	size_t n = nodestate_count(a);
	Mv__NodeState **states = calloc(n ? n : 1, sizeof(*states));
	struct placement_host *hosts = calloc(n ? n : 1, sizeof(*hosts));
	int rc = -ENOMEM;
	if (states == NULL || hosts == NULL)
		goto out;
	Mv__NodeState *self = m->n_same > 0 ? nodestate_unpack_name(a, a->opt.name) : NULL;
	char label_why[512] = "";
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		Mv__NodeState *s = nodestate_unpack_at(a, i);
		if (s == NULL)
			continue;
		char w[200];
		if (self != NULL && strcmp(s->name, a->opt.name) != 0 &&
		    !migration_labels_match(m, self, s, w, sizeof(w))) {
			size_t l = strlen(label_why);
			snprintf(label_why + l, sizeof(label_why) - l, "%s%s", l ? "; " : "", w);
			mv__node_state__free_unpacked(s, NULL);
			continue;
		}
		states[k] = s;
		struct swim_member_info mi;
		bool alive =
		    swim_member_find(membership_swim(a), s->name, &mi) && mi.state == SWIM_ALIVE;
		hosts[k] = state_codec_placement_host(s, alive);
		/* a witness votes but runs no VMs: never a target */
		hosts[k].draining = s->draining || s->witness;
		k++;
	}
	const char *excl[MIGRATION_MAX_EXCLUDED];
	for (size_t i = 0; i < m->n_excluded; i++)
		excl[i] = m->excluded[i];
	struct placement_request req = {.vcpus = m->vcpus, .memory_kib = m->memory_kib};
	int best =
	    mig_choose_target(a->migration->core, hosts, k, &req, excl, m->n_excluded, why, whylen);
	if (best >= 0) {
		snprintf(m->target, sizeof(m->target), "%s", hosts[best].name);
		rc = 0;
	} else {
		rc = -ENOSPC;
		if (label_why[0] != '\0') { /* say which hosts the labels ruled out */
			size_t l = strlen(why);
			snprintf(why + l, whylen > l ? whylen - l : 0, "; not sharing labels: %s",
			         label_why);
		}
	}
	if (self != NULL)
		mv__node_state__free_unpacked(self, NULL);
	for (size_t i = 0; i < k; i++)
		mv__node_state__free_unpacked(states[i], NULL);
out:
	free(states);
	free(hosts);
	return rc;
}

static void migration_propose(struct agent *a, struct migration *m)
{
	char why[512];
	if (!m->explicit_target && migration_choose(a, m, why, sizeof(why)) < 0) {
		if (m->refusals[0] != '\0')
			migration_finish(a, m, false,
			                 "no host accepted %s (refused: %s); it stays on %s", m->vm,
			                 m->refusals, a->opt.name);
		else
			migration_finish(a, m, false, "no host can take %s: %s; it stays on %s",
			                 m->vm, why, a->opt.name);
		return;
	}
	struct mig_vm vm = {
	    .name = m->vm, .uuid = m->uuid, .vcpus = m->vcpus, .memory_kib = m->memory_kib};
	enum mig_reason reason = MIG_R_NONE;
	int rc = mig_propose(a->migration->core, &vm, m->target, uv_now(a->loop), m->id, &reason);
	if (rc < 0) {
		migration_finish(a, m, false, "cannot move %s to %s: %s", m->vm, m->target,
		                 mig_reason_name(reason));
		return;
	}
	snprintf(m->phase, sizeof(m->phase), "proposing");
	MV_INFO("migrate", "proposing id=%s vm=%s target=%s vcpus=%u memory_kib=%" PRIu64, m->id,
	        m->vm, m->target, m->vcpus, m->memory_kib);
	migration_progress(a, m);
	migration_pump(a);
}

/* ---- a move's end ------------------------------------------------------------------------ */

static void migration_done(struct agent *a, struct migration *m, enum mig_outcome outcome)
{
	if (m->announced && a->migration->move_hooks != NULL) {
		/* the voters learn where the VM is before anything else — unless
		 * we do not know: then the move stays unsettled here, and its
		 * target settles it from what it runs (ha.c) */
		if (!(outcome == MIG_DONE_FAILED && m->where_unknown))
			a->migration->move_hooks->end(a, m->id, outcome != MIG_DONE_FAILED);
		else
			MV_WARN("migrate",
			        "HA move left unsettled id=%s vm=%s: where it runs is not known; "
			        "%s settles it",
			        m->id, m->vm, m->target);
		m->announced = false;
	}
	mig_migration_done(a->migration->core, m->id, outcome, uv_now(a->loop));
	migration_pump(a); /* COMMIT/ABORT out; FINISHED event finishes m */
}

/* ---- the move's libvirt calls, on the hypervisor worker --------------------------------
 *
 * Every libvirt call of the source side (the owner-epoch write, an offline
 * move's read, export, stop, undefine or restart, the checks after a live
 * migration, its job statistics and abort) is an operator job of the
 * hypervisor worker (virt.h: virt_vm_op_next), on the GENERAL lane: never
 * the critical one, which fences and HA restarts keep to themselves, and
 * never the loop, which answers SWIM while libvirtd takes its time. A
 * step's continuation runs on the loop when its call is back. Every step
 * (the first one too: it comes after the target accepted) goes in front
 * of the operators' queue, never refused for a full queue, so that a move
 * runs as one command, as it did on the loop, and a step after the target
 * accepted (the epoch write, the restart after a refused hand-over) is
 * never skipped for want of room (a first step, queued from no step's
 * answer, still lets a crash restart's retry go first: virt_vm_op_next).
 * The abort is the exception: a job of
 * its own on the critical lane (migration_abort_job). While a step is in
 * flight:
 *   - the move is not pruned (virt_pending);
 *   - a lost reservation (LEASE_LOST) is remembered (lease_lost) and the
 *     next continuation gives up before anything irreversible (stopping
 *     the VM, starting the migration);
 *   - an operator's abort is refused as for any phase but "proposing" and
 *     a running migration;
 *   - the agent stopping answers the step -ECANCELED, or the step comes
 *     back once a->stopping is set: nothing follows (the process is going
 *     away; the move's record with it).
 */
struct migration_abort {
	struct agent *a;
	char id[MIG_ID_MAX];
	char vm[MIG_NAME_MAX];
	uint64_t sink; /* an operator's abort waits for its answer; 0: none */
};

/* The reservation was lost while a step ran (nothing stopped, no
 * migration started yet): the move ends here, the VM stays. */
static bool migration_gave_up(struct agent *a, struct migration *m)
{
	if (!m->lease_lost)
		return false;
	free(m->xml);
	m->xml = NULL;
	snprintf(m->message, sizeof(m->message),
	         "the reservation on %s was lost before the move began: %s stays on %s", m->target,
	         m->vm, a->opt.name);
	migration_done(a, m, MIG_DONE_FAILED);
	return true;
}

static void migration_step_done(struct virt *v, int status, const struct virt_op_result *res,
                                void *ud)
{
	struct migration *m = ud;
	(void)v;
	migration_step_fn fn = m->step_fn;
	m->step_fn = NULL;
	m->virt_pending--;
	/* -ECANCELED: the agent is stopping (v may be gone); a step that was
	 * in flight when it began to stop comes back with 0: nothing follows
	 * either (the failover service and the timers are stopped) */
	if (status != 0 || fn == NULL || m->a->stopping)
		return;
	fn(m->a, m, res);
}

/* Queues the move's next libvirt call, in front of the queue (the target
 * accepted: the move holds its reservation, and each step is bounded by
 * the number of moves, not by VIRT_OPQ_MAX); fn runs on the loop with its
 * result, or at once with the refusal (res->rc < 0) when it could not be
 * queued. */
static void migration_step(struct agent *a, struct migration *m, const struct virt_op_req *req,
                           migration_step_fn fn)
{
	char err[512];
	m->a = a;
	m->step_fn = fn;
	int rc = virt_vm_op_next(a->virt, req, migration_step_done, m, err, sizeof(err));
	if (rc == 0) {
		m->virt_pending++;
		return;
	}
	m->step_fn = NULL;
	struct virt_op_result r = {.rc = rc};
	snprintf(r.err, sizeof(r.err), "%s", err);
	fn(a, m, &r);
}

static void migration_step_key(struct agent *a, struct migration *m, enum virt_op_kind kind,
                               migration_step_fn fn)
{
	struct virt_op_req req = {.kind = kind, .key = m->uuid};
	migration_step(a, m, &req, fn);
}

static void migration_abort_done(struct virt *v, int status, const struct virt_op_result *res,
                                 void *ud)
{
	struct migration_abort *ab = ud;
	struct agent *a = ab->a;
	(void)v;
	if (status != 0) { /* the agent is stopping */
		free(ab);
		return;
	}
	if (res->rc < 0)
		MV_WARN("migrate", "abort of the migration refused id=%s vm=%s error=\"%s\"",
		        ab->id, ab->vm, res->err);
	else
		MV_INFO("migrate", "abort requested vm=%s id=%s", ab->vm, ab->id);
	if (ab->sink != 0) {
		Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
		Mv__MigrationInfo info;
		struct migration *m = migration_find(a, ab->id);
		if (res->rc < 0) {
			resp.code = rpc_code_of_errno(res->rc);
			resp.error = (char *)res->err;
		} else if (m != NULL) {
			migration_info_fill(m, a->opt.name, &info);
			resp.result_case = MV__RPC_RESPONSE__RESULT_MIGRATION;
			resp.migration = &info;
		}
		rpc_sink_send(a, ab->sink, &resp, true);
	}
	free(ab);
}

/* Aborts m's running migration on the worker, as a job of its own on the
 * critical lane (virt_vm_abort_job_async): it waits neither for
 * operators' commands nor for the call in flight on the connection (a
 * listing, a host or event read), since after a lost reservation it must
 * land before the target's lease runs out (mig.h). sink: who waits for
 * the answer (0: nobody). 0, or -errno with err (nothing queued). */
static int migration_abort_job(struct agent *a, struct migration *m, uint64_t sink, char *err,
                               size_t errlen)
{
	struct migration_abort *ab = calloc(1, sizeof(*ab));
	if (ab == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	ab->a = a;
	ab->sink = sink;
	snprintf(ab->id, sizeof(ab->id), "%s", m->id);
	snprintf(ab->vm, sizeof(ab->vm), "%s", m->vm);
	int rc = virt_vm_abort_job_async(a->virt, m->uuid, HVWORK_CRITICAL, migration_abort_done,
	                                 ab, err, errlen);
	if (rc < 0)
		free(ab);
	return rc;
}

/* ---- the move: offline ---------------------------------------------------------------------
 *
 * read the VM (was it running?) -> export its definition -> stop it (when
 * it ran) -> VmReceive to the target -> undefine it here (received) or
 * start it here again (not). */

static void migration_offline_failed(struct agent *a, struct migration *m,
                                     const struct virt_op_result *res)
{
	/* the restart after a failed hand-over is back; m->message says why */
	if (res->rc < 0)
		MV_ERROR("migrate",
		         "could not restart the VM after a failed move vm=%s error=\"%s\"", m->vm,
		         res->err);
	migration_done(a, m, MIG_DONE_FAILED);
}

/* The hand-over failed: the VM runs here again (when it ran), then FAILED. */
static void migration_offline_back(struct agent *a, struct migration *m)
{
	if (!m->was_running) {
		migration_done(a, m, MIG_DONE_FAILED);
		return;
	}
	migration_step_key(a, m, VIRT_OPK_START, migration_offline_failed);
}

static void migration_offline_undefined(struct agent *a, struct migration *m,
                                        const struct virt_op_result *res)
{
	if (res->rc < 0)
		MV_ERROR("migrate",
		         "moved, but could not undefine the stopped copy here vm=%s "
		         "error=\"%s\"",
		         m->vm, res->err);
	migration_done(a, m, MIG_DONE_OK);
}

static void migration_offline_answer(struct agent *a, void *arg, Mv__RpcResponse *resp)
{
	struct migration *m = arg;
	if (resp->code == MV__RPC_CODE__RPC_OK) {
		snprintf(m->message, sizeof(m->message),
		         "moved offline to %s (stopped here, defined%s there, undefined here)",
		         m->target, m->was_running || m->start_there ? " and started" : "");
		migration_step_key(a, m, VIRT_OPK_UNDEFINE, migration_offline_undefined);
		return;
	}
	/* RPC_ERR_IN_DOUBT: the target's own (its start failed and it could
	 * not remove its copy), or one peer_client made up (no answer) */
	bool doubt = resp->code == MV__RPC_CODE__RPC_ERR_IN_DOUBT;
	if (doubt && (m->was_running || m->start_there)) {
		/* No answer (the target did not answer in time, died or left),
		 * or the target's start failed and it could not remove its copy
		 * (RPC_ERR_IN_DOUBT): it may have defined and started the VM. Starting it here again
		 * could run it twice; it stays stopped (and defined) here. An HA
		 * VM's move is not told STAYED from here (that would make this
		 * stopped copy owed while the target may run it): it stays
		 * MOVING, and the target settles it from what it runs (ha.c),
		 * as a live move that failed with the VM's place unknown. */
		snprintf(m->message, sizeof(m->message),
		         "%s gave no clear answer for %s (%s): it may run there; not started again "
		         "here (stopped and defined on %s; `meshvisor vm %s` shows where it runs)",
		         m->target, m->vm, resp->error, a->opt.name, m->vm);
		MV_WARN_ALWAYS("migrate", "offline move in doubt vm=%s target=%s: %s", m->vm,
		               m->target, m->message);
		m->where_unknown = true;
		migration_done(a, m, MIG_DONE_FAILED);
		return;
	}
	/* the target refused it: it must run here again */
	snprintf(m->message, sizeof(m->message), "%s could not take %s (%s); it stays on %s",
	         m->target, m->vm, resp->error, a->opt.name);
	migration_offline_back(a, m);
}

/* Stopped (or it was not running): hand the definition to the target. */
static void migration_offline_send(struct agent *a, struct migration *m)
{
	char err[512];
	Mv__RpcRequest req = MV__RPC_REQUEST__INIT;
	Mv__VmReceiveRequest rq = MV__VM_RECEIVE_REQUEST__INIT;
	rq.xml = m->xml;
	rq.start = m->was_running || m->start_there;
	rq.proposal_id = m->id;
	req.op_case = MV__RPC_REQUEST__OP_VM_RECEIVE;
	req.vm_receive = &rq;
	int rc =
	    peer_client_request(a, m->target, &req, migration_offline_answer, m, err, sizeof(err));
	free(m->xml);
	m->xml = NULL;
	if (rc < 0) {
		snprintf(m->message, sizeof(m->message), "cannot reach %s: %s; %s stays on %s",
		         m->target, err, m->vm, a->opt.name);
		migration_offline_back(a, m);
		return;
	}
	migration_progress(a, m);
}

static void migration_offline_stopped(struct agent *a, struct migration *m,
                                      const struct virt_op_result *res)
{
	if (res->rc < 0) {
		free(m->xml);
		m->xml = NULL;
		snprintf(m->message, sizeof(m->message), "cannot stop %s for the move: %s", m->vm,
		         res->err);
		migration_done(a, m, MIG_DONE_FAILED);
		return;
	}
	migration_offline_send(a, m);
}

static void migration_offline_exported(struct agent *a, struct migration *m,
                                       const struct virt_op_result *res)
{
	if (res->rc < 0 || res->xml == NULL || (m->xml = strdup(res->xml)) == NULL) {
		snprintf(m->message, sizeof(m->message), "cannot read %s's definition: %s", m->vm,
		         res->rc < 0 ? res->err : "out of memory");
		migration_done(a, m, MIG_DONE_FAILED);
		return;
	}
	if (migration_gave_up(a, m))
		return;
	if (m->was_running)
		migration_step_key(a, m, VIRT_OPK_DESTROY, migration_offline_stopped);
	else
		migration_offline_send(a, m);
}

static void migration_offline_found(struct agent *a, struct migration *m,
                                    const struct virt_op_result *res)
{
	if (res->rc < 0) {
		snprintf(m->message, sizeof(m->message), "cannot read %s's definition: %s", m->vm,
		         res->err);
		migration_done(a, m, MIG_DONE_FAILED);
		return;
	}
	m->was_running = res->vm.state == VIRT_VM_RUNNING || res->vm.state == VIRT_VM_PAUSED;
	migration_step_key(a, m, VIRT_OPK_EXPORT, migration_offline_exported);
}

static void migration_offline(struct agent *a, struct migration *m)
{
	snprintf(m->phase, sizeof(m->phase), "moving");
	migration_step_key(a, m, VIRT_OPK_FIND, migration_offline_found);
}

/* ---- an offline move arriving (VmReceive), on the hypervisor worker ------------------- */
/*
 * The last step of an offline move lands here: define the VM, start it
 * (when it ran on the source), and on a failed start undefine it again, so
 * nothing is left half-done. The three libvirt calls run on the hypervisor
 * worker as one operator job (virt.h: virt_vm_op_async, then
 * virt_vm_op_next), on the GENERAL lane, not MIGRATION: they take what an
 * operator's `vm create` takes (seconds at most), while the migration lane's
 * threads are held by live migrations for minutes, and the source waits
 * for this answer with its VM stopped. As one job they are ordered with
 * the operators' commands on this host, as they were on the loop. The
 * order of effects is today's: the reservation is checked first (on the
 * loop), the VM is in place (defined, started) before it counts as
 * arrived (mig_vm_arrived, which its start's lifecycle event may have done
 * already) and before the source hears "received" and undefines its copy;
 * any failure answers an error, and the source starts its copy again.
 */
struct migration_receive {
	struct agent *a;
	uint64_t sink;
	char from[SWIM_NAME_MAX];
	char proposal_id[MIG_ID_MAX];
	struct migration_receive *next; /* migration_service.receives */
	bool listed;                    /* in that list (until the service is freed) */
	/* the reservation ended while this ran: the voters are told how the
	 * move ended once it is done (migration_handle_events) */
	bool outcome_owed;
	char outcome_uuid[MIG_UUID_MAX];
	bool start;
	/* undoing: the start failed (or must not happen): DESTROY (only after
	 * a failed start: it may run all the same), then UNDEFINE */
	enum { RECV_DOING = 0, RECV_UNDO_DESTROY, RECV_UNDO_UNDEFINE } undoing;
	bool copy_may_run; /* the undo follows a START (failed, or ran under a hold):
	                      a copy may run here until the UNDEFINE says not */
	bool in_doubt;     /* answered RPC_ERR_IN_DOUBT: a copy may run here */
	struct virt_vm vm;
	int rc;
	char err[512];
};

static void migration_receive_unlist(struct migration_receive *rv)
{
	struct agent *a = rv->a;
	if (!rv->listed || a->migration == NULL)
		return;
	for (struct migration_receive **p = &a->migration->receives; *p != NULL; p = &(*p)->next)
		if (*p == rv) {
			*p = rv->next;
			break;
		}
	rv->listed = false;
	/* told only now: read before this receive is done, libvirt would show
	 * a VM about to start here as one that never landed (ha.c) */
	if (rv->outcome_owed && a->migration->move_hooks != NULL)
		a->migration->move_hooks->outcome(a, rv->proposal_id, rv->outcome_uuid, rv->from,
		                                  false);
}

/* A VmReceive for proposal id from source is in flight here. */
static struct migration_receive *migration_receive_find(struct agent *a, const char *id,
                                                        const char *source)
{
	for (struct migration_receive *rv = a->migration->receives; rv != NULL; rv = rv->next)
		if (strcmp(rv->proposal_id, id) == 0 && strcmp(rv->from, source) == 0)
			return rv;
	return NULL;
}

static void migration_receive_answer(struct migration_receive *rv, int rc, const char *err)
{
	struct agent *a = rv->a;
	Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
	Mv__VmOpReply op = MV__VM_OP_REPLY__INIT;
	if (rc < 0) {
		resp.code = rv->in_doubt ? MV__RPC_CODE__RPC_ERR_IN_DOUBT : rpc_code_of_errno(rc);
		resp.error = (char *)err;
	} else {
		mig_vm_arrived(a->migration->core, rv->vm.uuid, uv_now(a->loop));
		MV_INFO("migrate", "received vm=%s from=%s started=%d", rv->vm.name, rv->from,
		        rv->start);
		nodestate_refresh(a);
		migration_pump(a);
		op.vm = rv->vm.name;
		op.uuid = "";
		op.node = a->opt.name;
		op.message = "received";
		resp.result_case = MV__RPC_RESPONSE__RESULT_VM_OP;
		resp.vm_op = &op;
	}
	rpc_sink_send(a, rv->sink, &resp, true);
	migration_receive_unlist(rv);
	free(rv);
}

/* A start failed and its copy could not be removed (why): it may run here,
 * and the source must not run it again (RPC_ERR_IN_DOUBT). */
static void migration_receive_in_doubt(struct migration_receive *rv, const char *why)
{
	char start_err[200];
	snprintf(start_err, sizeof(start_err), "%.199s", rv->err);
	snprintf(rv->err, sizeof(rv->err),
	         "%.64s could not start %.64s (%s) nor remove it (%.100s): it may run there",
	         rv->a->opt.name, rv->vm.name, start_err, why);
	rv->in_doubt = true;
	MV_WARN_ALWAYS("migrate", "received vm=%s from=%s in doubt: %s", rv->vm.name, rv->from,
	               rv->err);
}

void migration_hold_incoming(struct agent *a, const char *why)
{
	if (a->migration == NULL)
		return;
	snprintf(a->migration->hold_why, sizeof(a->migration->hold_why), "%s", why ? why : "");
	if (a->migration->core != NULL)
		mig_set_hold(a->migration->core, why);
}

/* This host still holds proposal id's reservation for from. */
static bool migration_receive_held(struct agent *a, const char *id, const char *from)
{
	for (size_t i = 0; i < mig_in_count(a->migration->core); i++) {
		struct mig_in_info in;
		mig_in_at(a->migration->core, i, &in);
		if (strcmp(in.proposal_id, id) == 0 && strcmp(in.source, from) == 0)
			return true;
	}
	return false;
}

/* The VmReceive's HA VM is not taken while incoming moves are held
 * (migration_hold_incoming): the refusal, with the hold's reason, on
 * which the source runs it again. */
static void migration_receive_refuse_held(struct migration_receive *rv)
{
	rv->rc = -EAGAIN;
	snprintf(rv->err, sizeof(rv->err), "%s takes no HA VM now: %s", rv->a->opt.name,
	         rv->a->migration->hold_why);
}

static void migration_receive_step(struct virt *v, int status, const struct virt_op_result *res,
                                   void *ud)
{
	struct migration_receive *rv = ud;
	(void)v;
	if (status != 0) {
		/* The agent is stopping: the queued step never ran. After a
		 * failed start, a copy may run here (the start's failure may be
		 * a lost reply), as after one that ran under a hold (its undo;
		 * the DESTROY's result is not read, the UNDEFINE
		 * is what checks the VM is not active): whichever undo step was
		 * cancelled, the source must not run the VM again (a plain
		 * refusal would tell it to). */
		if (rv->copy_may_run) {
			migration_receive_in_doubt(rv, "the agent is stopping");
			migration_receive_answer(rv, rv->rc, rv->err);
		} else {
			migration_receive_answer(rv, -ENOTCONN, "the agent is stopping");
		}
		return;
	}
	char err[512];
	struct virt_op_req next = {.key = rv->vm.uuid};
	if (rv->undoing == RECV_UNDO_DESTROY) {
		/* whatever it said (a start that failed before QEMU ran leaves
		 * nothing to destroy): the UNDEFINE checks the VM is not active */
		rv->undoing = RECV_UNDO_UNDEFINE;
		next.kind = VIRT_OPK_UNDEFINE;
	} else if (rv->undoing == RECV_UNDO_UNDEFINE) {
		/* the start's error is a refusal only when no copy is left here:
		 * the source then runs the VM again */
		if (res->rc < 0 && rv->copy_may_run)
			migration_receive_in_doubt(rv, res->err);
		migration_receive_answer(rv, rv->rc, rv->err);
		return;
	} else if (res->rc < 0 && rv->vm.uuid[0] != '\0') { /* the start failed */
		/* its outcome may be unknown (libvirtd restarted during the
		 * start; QEMU runs on): leave nothing half-done */
		rv->rc = res->rc;
		snprintf(rv->err, sizeof(rv->err), "%s", res->err);
		rv->undoing = RECV_UNDO_DESTROY;
		rv->copy_may_run = true;
		next.kind = VIRT_OPK_DESTROY;
	} else if (res->rc < 0) { /* the define failed */
		migration_receive_answer(rv, res->rc, res->err);
		return;
	} else if (rv->vm.uuid[0] == '\0' &&
	           !migration_receive_held(rv->a, rv->proposal_id, rv->from)) {
		/* defined, but the reservation ended meanwhile (the source gave
		 * up: ABORT, or it expired) and the voters may have been told it
		 * never landed: it must not start here; the definition goes */
		rv->vm = res->vm;
		rv->rc = -ECANCELED;
		snprintf(rv->err, sizeof(rv->err),
		         "%s no longer holds the reservation for proposal %s from %s: not taken",
		         rv->a->opt.name, rv->proposal_id, rv->from);
		rv->undoing = RECV_UNDO_UNDEFINE;
		next.kind = VIRT_OPK_UNDEFINE;
	} else if (rv->vm.uuid[0] == '\0' && rv->start && res->vm.ha &&
	           rv->a->migration->hold_why[0] != '\0') {
		/* defined, but incoming moves are held (a fence order for every
		 * HA VM here waits for libvirt: its retry would destroy this VM
		 * once started, after the source reported it moved): it does
		 * not start here, the definition goes, and the refusal lets the
		 * source run it again */
		rv->vm = res->vm;
		migration_receive_refuse_held(rv);
		rv->undoing = RECV_UNDO_UNDEFINE;
		next.kind = VIRT_OPK_UNDEFINE;
	} else if (rv->vm.uuid[0] == '\0' && rv->start) { /* defined: start it */
		rv->vm = res->vm;
		next.kind = VIRT_OPK_START;
		next.needs_quorum = rv->vm.ha; /* checked again on the worker (virt.h) */
	} else if (rv->vm.uuid[0] != '\0' && rv->vm.ha && rv->a->migration->hold_why[0] != '\0') {
		/* started, but the hold began while the START ran: the copy is
		 * destroyed and its definition goes, as after a failed start
		 * (nothing removed: in doubt, not a refusal) */
		migration_receive_refuse_held(rv);
		rv->undoing = RECV_UNDO_DESTROY;
		rv->copy_may_run = true;
		next.kind = VIRT_OPK_DESTROY;
	} else { /* defined (and started) */
		if (rv->vm.uuid[0] == '\0')
			rv->vm = res->vm;
		migration_receive_answer(rv, 0, NULL);
		return;
	}
	if (virt_vm_op_next(rv->a->virt, &next, migration_receive_step, rv, err, sizeof(err)) < 0) {
		if (rv->copy_may_run)
			migration_receive_in_doubt(rv, err);
		migration_receive_answer(rv, rv->undoing ? rv->rc : -ENOMEM,
		                         rv->undoing ? rv->err : err);
	}
}

int migration_rpc_receive(struct agent *a, const Mv__VmReceiveRequest *q, const char *from,
                          uint64_t sink, char *err, size_t errlen)
{
	if (!migration_receive_held(a, q->proposal_id, from)) {
		snprintf(err, errlen, "%s holds no reservation for proposal %s from %s",
		         a->opt.name, q->proposal_id, from);
		return -EINVAL;
	}
	struct migration_receive *rv = calloc(1, sizeof(*rv));
	if (rv == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rv->a = a;
	rv->sink = sink;
	rv->start = q->start;
	snprintf(rv->from, sizeof(rv->from), "%s", from);
	snprintf(rv->proposal_id, sizeof(rv->proposal_id), "%s", q->proposal_id);
	struct virt_op_req d = {.kind = VIRT_OPK_DEFINE, .xml = q->xml};
	int rc = virt_vm_op_async(a->virt, &d, migration_receive_step, rv, err, errlen);
	if (rc < 0) {
		free(rv);
		return rc;
	}
	rv->next = a->migration->receives;
	a->migration->receives = rv;
	rv->listed = true;
	return 0;
}

/* ---- the move: live, on a worker thread ------------------------------------------------------ */

static void migration_live_work(struct hvwork_job *w)
{
	struct migration *m = w->data;
	struct agent *a = m->a;
	m->work_rc = virt_vm_migrate(a->virt, m->uuid, &m->params, &m->result, m->work_err,
	                             sizeof(m->work_err));
}

/* After a failure that left the VM not running here: ask both hosts where
 * it is (may block on a cut host until TCP gives up: it runs on a worker). */
static void migration_where_work(struct hvwork_job *w)
{
	struct migration *m = w->data;
	struct agent *a = m->a;
	char e[256];
	m->where_rc = virt_vm_where(a->virt, m->uuid, m->dest_uri, &m->where, e, sizeof(e));
}

/* The cache here is current again (the FIND of migration_where_after). */
static void migration_where_decided(struct agent *a, struct migration *m,
                                    const struct virt_op_result *res)
{
	(void)res;
	int status = m->where_status;
	if (status == 0 && m->where_rc == 0 && m->where.where == VIRT_LOC_DEST) {
		snprintf(m->message, sizeof(m->message),
		         "libvirt reported a failure (%s), but %s runs on %s: committed",
		         m->work_err, m->vm, m->target);
		migration_done(a, m, MIG_DONE_LANDED_ANYWAY);
		return;
	}
	snprintf(m->message, sizeof(m->message),
	         "live migration to %s failed: %s; %s is on %s (%s)", m->target, m->work_err, m->vm,
	         a->opt.name,
	         status == 0 && m->where_rc == 0 ? virt_location_name(m->where.where)
	                                         : "not re-checked");
	/* only where the target is known not to have it did it stay */
	m->where_unknown =
	    !(status == 0 && m->where_rc == 0 &&
	      (m->where.where == VIRT_LOC_SOURCE || m->where.where == VIRT_LOC_STOPPED_SOURCE ||
	       m->where.where == VIRT_LOC_NEITHER));
	migration_done(a, m, MIG_DONE_FAILED);
}

static void migration_where_after(struct hvwork_job *w, int status)
{
	struct migration *m = w->data;
	struct agent *a = m->a;
	m->work_running = false;
	a->migration->jobs_running--;
	m->where_status = status;
	/* the VM as it is here now, into the cache (on the worker: a gone VM
	 * is dropped), before the outcome is published */
	migration_step_key(a, m, VIRT_OPK_FIND, migration_where_decided);
}

static void migration_live_left(struct agent *a, struct migration *m,
                                const struct virt_op_result *res)
{
	(void)res; /* the VM left: the FIND dropped it from the cache */
	if (m->result.have_stats)
		m->stats = m->result.stats;
	snprintf(m->message, sizeof(m->message), "migrated live to %s in %" PRIu64 " ms%s%s",
	         m->target, m->result.elapsed_ms, m->stats.have_downtime ? ", guest downtime " : "",
	         m->stats.have_downtime ? "" : "");
	if (m->stats.have_downtime) {
		size_t l = strlen(m->message);
		snprintf(m->message + l, sizeof(m->message) - l, "%" PRIu64 " ms",
		         m->stats.downtime_ms);
	}
	migration_done(a, m, MIG_DONE_OK);
}

/* The failed migration's VM as read here now. */
static void migration_live_checked(struct agent *a, struct migration *m,
                                   const struct virt_op_result *res)
{
	/* Running here after the failure: it did not move (a completed move
	 * removes it here), no need to ask the target, which may be cut off. */
	if (res->rc == 0 && res->vm.state == VIRT_VM_RUNNING) {
		snprintf(m->message, sizeof(m->message),
		         "live migration to %s failed: %s; %s still runs on %s", m->target,
		         m->work_err, m->vm, a->opt.name);
		migration_done(a, m, MIG_DONE_FAILED);
		return;
	}
	/* paused or gone here: it may have landed; ask both hosts */
	m->work.data = m;
	m->work.work = migration_where_work;
	m->work.done = migration_where_after;
	if (hvwork_submit(a->hv, HVWORK_MIGRATION, &m->work) == 0) {
		m->work_running = true;
		a->migration->jobs_running++;
		return;
	}
	snprintf(m->message, sizeof(m->message),
	         "live migration to %s failed: %s; where %s is now could not be checked", m->target,
	         m->work_err, m->vm);
	migration_done(a, m, MIG_DONE_FAILED);
}

static void migration_live_after(struct hvwork_job *w, int status)
{
	struct migration *m = w->data;
	struct agent *a = m->a;
	m->work_running = false;
	m->abort_owed = false; /* the migration is over: nothing left to abort */
	a->migration->jobs_running--;
	/* the VM left (or did not): its entry here is read again on the worker */
	if (status == 0 && m->work_rc == 0)
		migration_step_key(a, m, VIRT_OPK_FIND, migration_live_left);
	else
		migration_step_key(a, m, VIRT_OPK_FIND, migration_live_checked);
}

static void migration_live(struct agent *a, struct migration *m)
{
	if (migration_gave_up(a, m))
		return;
	snprintf(m->phase, sizeof(m->phase), "migrating");
	memset(&m->params, 0, sizeof(m->params));
	m->params.dest_uri = m->dest_uri;
	m->params.migrate_uri = m->stream_uri[0] ? m->stream_uri : NULL;
	m->params.bandwidth_mib_s = a->opt.mig_bandwidth_mib_s;
	m->params.max_downtime_ms = a->opt.mig_max_downtime_ms;
	m->params.tls = a->opt.mig_tls;
	m->work.data = m;
	m->work.work = migration_live_work;
	m->work.done = migration_live_after;
	m->a = a;
	int rc = hvwork_submit(a->hv, HVWORK_MIGRATION, &m->work);
	if (rc < 0) {
		snprintf(m->message, sizeof(m->message), "cannot start the migration: %s",
		         strerror(-rc));
		migration_done(a, m, MIG_DONE_FAILED);
		return;
	}
	m->work_running = true;
	a->migration->jobs_running++;
	MV_INFO("migrate", "live migration started id=%s vm=%s target=%s dest_uri=%s", m->id, m->vm,
	        m->target, m->dest_uri);
	migration_progress(a, m);
}

static void migration_on_ready_timer(uv_timer_t *t);

/* The owner epoch is on the definition now: libvirt moves the VM. When
 * it could not be written, an HA move ends here (the voters were told the
 * VM moves at move_epoch: moved at the old one, its copy there would not
 * be the one they expect); any other move goes ahead, as it always did. */
static void migration_epoch_set(struct agent *a, struct migration *m,
                                const struct virt_op_result *res)
{
	if (res->rc < 0 && m->announced) {
		MV_WARN("migrate", "HA VM not moved: cannot write its owner epoch id=%s vm=%s: %s",
		        m->id, m->vm, res->err);
		snprintf(m->message, sizeof(m->message),
		         "cannot write %s's owner epoch %" PRIu64 " before the move (%s); it stays "
		         "on %s",
		         m->vm, m->move_epoch, res->err, a->opt.name);
		migration_done(a, m, MIG_DONE_FAILED);
		return;
	}
	if (res->rc < 0)
		MV_WARN("migrate", "cannot bump the owner epoch before the move id=%s vm=%s: %s",
		        m->id, m->vm, res->err);
	if (m->offline)
		migration_offline(a, m);
	else
		migration_live(a, m);
}

/* The move itself: the owner epoch is bumped on the definition (it travels
 * with it), then libvirt moves the VM. */
static void migration_move_now(struct agent *a, struct migration *m, uint64_t epoch)
{
	struct virt_op_req req = {.kind = VIRT_OPK_SET_EPOCH, .key = m->uuid, .epoch = epoch};
	migration_step(a, m, &req, migration_epoch_set);
}

/* The VM as read before the move (migration_go). */
static void migration_go_found(struct agent *a, struct migration *m,
                               const struct virt_op_result *res)
{
	char err[256];
	if (res->rc < 0) {
		MV_WARN("migrate", "cannot read the VM before moving it id=%s vm=%s: %s", m->id,
		        m->vm, res->err);
		snprintf(m->message, sizeof(m->message), "cannot read %s before moving it: %s",
		         m->vm, res->err);
		migration_done(a, m, MIG_DONE_FAILED);
		return;
	}
	if (migration_gave_up(a, m))
		return;
	const struct virt_vm vm = res->vm;
	const struct migration_move_hooks *h = a->migration->move_hooks;
	if (m->start_there && (vm.state == VIRT_VM_RUNNING || vm.state == VIRT_VM_PAUSED ||
	                       !vm.ha || vm.desired == VIRT_DESIRED_STOPPED)) {
		/* a crashed VM's move: left alone when that changed meanwhile */
		snprintf(m->message, sizeof(m->message), "%s not moved: %s meanwhile", m->vm,
		         !vm.ha                               ? "no longer HA"
		         : vm.desired == VIRT_DESIRED_STOPPED ? "stopped by an operator"
		                                              : "running again");
		migration_done(a, m, MIG_DONE_FAILED);
		return;
	}
	if (!vm.ha || h == NULL) {
		migration_move_now(a, m, vm.epoch + 1);
		return;
	}
	if (h->begin(a, m->id, m->uuid, m->target, vm.epoch + 1, err, sizeof(err)) < 0) {
		MV_WARN("migrate", "HA VM not moved id=%s vm=%s: %s", m->id, m->vm, err);
		snprintf(m->message, sizeof(m->message), "%s stays on %s: %s", m->vm, a->opt.name,
		         err);
		migration_done(a, m, MIG_DONE_FAILED);
		return;
	}
	m->announced = true;
	m->move_epoch = vm.epoch + 1;
	m->ready_by = uv_now(a->loop) + MIGRATION_READY_MS;
	snprintf(m->phase, sizeof(m->phase), "announcing");
	MV_INFO("migrate", "HA move announced id=%s vm=%s target=%s epoch=%" PRIu64, m->id, m->vm,
	        m->target, m->move_epoch);
	migration_progress(a, m);
	if (!uv_is_active((uv_handle_t *)&a->migration->ready_timer))
		uv_timer_start(&a->migration->ready_timer, migration_on_ready_timer,
		               MIGRATION_READY_POLL_MS, MIGRATION_READY_POLL_MS);
}

/* The target accepted. An HA VM is announced to the voters first and
 * moves once a majority acknowledged it (MOVES in agent/core/fo.c):
 * a failover of this host decided meanwhile then knows the VM may be on
 * the target, where this host's fence does not reach. The VM is read
 * first, on the worker (phase "starting"). */
static void migration_go(struct agent *a, struct migration *m)
{
	snprintf(m->phase, sizeof(m->phase), "starting");
	migration_step_key(a, m, VIRT_OPK_FIND, migration_go_found);
}

static void migration_on_ready_timer(uv_timer_t *t)
{
	struct agent *a = t->data;
	const struct migration_move_hooks *h = a->migration->move_hooks;
	bool waiting = false;
	uint64_t now = uv_now(a->loop);
	for (struct migration *m = a->migration->moves; m != NULL; m = m->next) {
		if (m->done || !m->announced || m->moving || h == NULL)
			continue;
		if (h->ready(a, m->id)) {
			m->moving = true;
			MV_INFO("migrate", "HA move acknowledged id=%s vm=%s", m->id, m->vm);
			migration_move_now(a, m, m->move_epoch);
		} else if (now >= m->ready_by) {
			snprintf(m->message, sizeof(m->message),
			         "no majority acknowledged the move of %s within %u ms (this host "
			         "may be cut off): it stays on %s",
			         m->vm, MIGRATION_READY_MS, a->opt.name);
			MV_WARN("migrate", "HA move not acknowledged id=%s vm=%s", m->id, m->vm);
			migration_done(a, m, MIG_DONE_FAILED);
		} else {
			waiting = true;
		}
	}
	if (!waiting)
		uv_timer_stop(&a->migration->ready_timer);
}

static void migration_stats_done(struct virt *v, int status, const struct virt_op_result *res,
                                 void *ud)
{
	struct migration *m = ud;
	(void)v;
	m->stats_pending = false;
	m->virt_pending--;
	if (status == 0 && m->work_running && res->rc == 0 && res->job.state == VIRT_JOB_RUNNING)
		m->stats = res->job;
}

/* Each running migration's progress: the statistics last read (the next
 * read is queued on the worker; a read still in flight is not doubled). */
static void migration_on_progress_timer(uv_timer_t *t)
{
	struct agent *a = t->data;
	bool any = false;
	for (struct migration *m = a->migration->moves; m != NULL; m = m->next) {
		if (!m->work_running)
			continue;
		char err[256];
		if (m->abort_owed && migration_abort_job(a, m, 0, err, sizeof(err)) == 0) {
			m->abort_owed = false; /* the lease-lost abort, queued at last */
			MV_INFO("migrate", "abort after a lost lease queued id=%s vm=%s", m->id,
			        m->vm);
		}
		struct virt_op_req req = {.kind = VIRT_OPK_JOB_STATS, .key = m->uuid};
		if (!m->stats_pending && virt_vm_op_async(a->virt, &req, migration_stats_done, m,
		                                          err, sizeof(err)) == 0) {
			m->stats_pending = true;
			m->virt_pending++;
		}
		migration_progress(a, m);
		any = true;
	}
	if (any)
		nodestate_refresh(a);
}

/* The lease of an incoming move ran out: its source went silent, so nothing
 * will COMMIT it. If its half-arrived (paused) domain is here, destroy it:
 * the source still has the VM, and a copy here must never start. The
 * look-up and the destroy run on the hypervisor worker, one job (virt.h). */
struct migration_kill {
	struct agent *a;
	char name[VIRT_NAME_MAX];
};

static void migration_kill_destroyed(struct virt *v, int status, const struct virt_op_result *res,
                                     void *ud)
{
	struct migration_kill *k = ud;
	(void)v;
	if (status == 0 && res->rc < 0)
		MV_ERROR("migrate",
		         "cannot destroy the half-arrived copy of an expired move vm=%s "
		         "error=\"%s\"",
		         k->name, res->err);
	else if (status == 0)
		MV_WARN("migrate", "destroyed the half-arrived copy of an expired move vm=%s",
		        k->name);
	free(k);
}

static void migration_kill_found(struct virt *v, int status, const struct virt_op_result *res,
                                 void *ud)
{
	struct migration_kill *k = ud;
	char err[256];
	if (status == 0 && res->rc == 0 && res->vm.state == VIRT_VM_PAUSED) {
		snprintf(k->name, sizeof(k->name), "%s", res->vm.name);
		struct virt_op_req d = {.kind = VIRT_OPK_DESTROY, .key = res->vm.uuid};
		if (virt_vm_op_next(v, &d, migration_kill_destroyed, k, err, sizeof(err)) == 0)
			return;
		struct virt_op_result failed = {.rc = -ENOMEM};
		snprintf(failed.err, sizeof(failed.err), "%s", err);
		migration_kill_destroyed(v, 0, &failed, k);
		return;
	}
	free(k);
}

static void migration_kill_incoming(struct agent *a, const char *uuid)
{
	struct migration_kill *k = calloc(1, sizeof(*k));
	char err[256];
	struct virt_op_req f = {.kind = VIRT_OPK_FIND, .key = uuid};
	if (k == NULL) {
		MV_WARN("migrate",
		        "out of memory: not checking for the half-arrived copy of an "
		        "expired move uuid=%s",
		        uuid);
		return;
	}
	k->a = a;
	if (virt_vm_op_async(a->virt, &f, migration_kill_found, k, err, sizeof(err)) < 0) {
		MV_WARN("migrate",
		        "cannot check for the half-arrived copy of an expired move uuid=%s "
		        "error=\"%s\"",
		        uuid, err);
		free(k);
	}
}

/* ---- core events ---------------------------------------------------------------------------- */

static void migration_handle_events(struct agent *a)
{
	struct mig_event e;
	while (mig_pop_event(a->migration->core, &e)) {
		char q[900];
		struct migration *m = migration_find(a, e.proposal_id);
		switch (e.type) {
		case MIG_EV_RESERVED:
		case MIG_EV_REFUSED_IN:
		case MIG_EV_RELEASED:
		case MIG_EV_EXPIRED:
		case MIG_EV_COMMITTED:
			mv_log(e.type == MIG_EV_EXPIRED ? MV_LOG_WARN : MV_LOG_INFO, "migrate",
			       "%s id=%s vm=%s source=%s cause=%s", mig_event_name(e.type),
			       e.proposal_id, e.vm_name, e.peer,
			       mv_log_quote(q, sizeof(q), e.text));
			if (e.type == MIG_EV_EXPIRED)
				migration_kill_incoming(a, e.vm_uuid);
			/* the voters learn how an incoming HA move ended (MOVES);
			 * one whose VmReceive still runs here, once it is done */
			struct migration_receive *rv = NULL;
			if (e.type == MIG_EV_RELEASED || e.type == MIG_EV_EXPIRED)
				rv = migration_receive_find(a, e.proposal_id, e.peer);
			if (rv != NULL) {
				rv->outcome_owed = true;
				snprintf(rv->outcome_uuid, sizeof(rv->outcome_uuid), "%s",
				         e.vm_uuid);
			} else if (a->migration->move_hooks != NULL &&
			           (e.type == MIG_EV_COMMITTED || e.type == MIG_EV_RELEASED ||
			            e.type == MIG_EV_EXPIRED))
				a->migration->move_hooks->outcome(a, e.proposal_id, e.vm_uuid,
				                                  e.peer,
				                                  e.type == MIG_EV_COMMITTED);
			if (e.type == MIG_EV_COMMITTED || e.type == MIG_EV_RELEASED ||
			    e.type == MIG_EV_EXPIRED)
				nodestate_refresh(a);
			break;
		case MIG_EV_GO:
			if (m != NULL && !m->done)
				migration_go(a, m);
			break;
		case MIG_EV_REFUSED:
			if (m == NULL || m->done)
				break;
			MV_INFO("migrate", "target refused id=%s vm=%s target=%s reason=%s",
			        e.proposal_id, e.vm_name, e.peer,
			        mv_log_quote(q, sizeof(q), e.text));
			if (m->explicit_target) {
				migration_finish(a, m, false, "%s; %s stays on %s", e.text, m->vm,
				                 a->opt.name);
				break;
			}
			{
				size_t l = strlen(m->refusals);
				snprintf(m->refusals + l, sizeof(m->refusals) - l, "%s%s",
				         l ? "; " : "", e.text);
				if (m->n_excluded < MIGRATION_MAX_EXCLUDED)
					snprintf(m->excluded[m->n_excluded++], MIG_NAME_MAX, "%s",
					         e.peer);
				m->id[0] = '\0';
				migration_propose(a, m);
			}
			break;
		case MIG_EV_LEASE_LOST:
			MV_WARN("migrate", "lease lost id=%s vm=%s target=%s cause=%s",
			        e.proposal_id, e.vm_name, e.peer,
			        mv_log_quote(q, sizeof(q), e.text));
			if (m != NULL && m->work_running) {
				char err[256];
				m->lease_lost = true;
				int arc = migration_abort_job(a, m, 0, err, sizeof(err));
				m->abort_owed = arc < 0;
				if (arc < 0)
					MV_ERROR("migrate",
					         "cannot abort the migration yet id=%s vm=%s: %s "
					         "(retried every %d ms)",
					         m->id, m->vm, err, MIGRATION_PROGRESS_MS);
			} else if (m != NULL && !m->done && m->step_fn != NULL) {
				/* a libvirt call of the move is on the worker: what
				 * follows it gives up before the VM is stopped or the
				 * migration starts */
				m->lease_lost = true;
			} else if (m != NULL && !m->done && m->announced && !m->moving) {
				/* still waiting for the voters: the target holds no room
				 * for it any more, so it does not move at all */
				snprintf(
				    m->message, sizeof(m->message),
				    "the reservation on %s was lost before the move began (%s): "
				    "%s stays on %s",
				    m->target, e.text, m->vm, a->opt.name);
				migration_done(a, m, MIG_DONE_FAILED);
			}
			break;
		case MIG_EV_FINISHED:
			if (m != NULL && !m->done) {
				char outcome[sizeof(
				    m->message)]; /* finish formats into m->message */
				snprintf(outcome, sizeof(outcome), "%s",
				         m->message[0] ? m->message : e.text);
				migration_finish(a, m, e.ok, "%s", outcome);
			}
			break;
		}
	}
}

/* ---- RPC ---------------------------------------------------------------------------------- */

static struct migration *migration_new(struct agent *a, const struct virt_vm *vm)
{
	struct migration *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return NULL;
	snprintf(m->vm, sizeof(m->vm), "%.*s", (int)sizeof(m->vm) - 1, vm->name);
	snprintf(m->uuid, sizeof(m->uuid), "%.*s", (int)sizeof(m->uuid) - 1, vm->uuid);
	m->vcpus = vm->vcpus;
	m->memory_kib = vm->memory_kib;
	m->offline = migration_offline_host(a) ||
	             !(vm->state == VIRT_VM_RUNNING || vm->state == VIRT_VM_PAUSED);
	m->started_unix_ms = migration_wall_ms();
	m->started_ms = uv_now(a->loop);
	snprintf(m->phase, sizeof(m->phase), "choosing");
	m->next = a->migration->moves;
	a->migration->moves = m;
	return m;
}

/* What starts a move besides the VM (migration_begin). */
struct migration_ask {
	const char *to; /* NULL or "": the best host */
	char *const *same;
	size_t n_same;
	uint64_t sink;
	struct drain *drain;
	bool start_there;
	migration_done_fn on_done;
};

static int migration_begin(struct agent *a, const char *key, const struct migration_ask *ask,
                           char *err, size_t errlen)
{
	const char *to = ask->to;
	char *const *same = ask->same;
	size_t n_same = ask->n_same;
	if (n_same > MIGRATION_MAX_SAME) {
		snprintf(err, errlen, "at most %d --same labels", MIGRATION_MAX_SAME);
		return -EINVAL;
	}
	for (size_t i = 0; i < n_same; i++) {
		if (same[i][0] == '\0' || strlen(same[i]) >= MIG_NAME_MAX) {
			snprintf(err, errlen,
			         "--same needs a label key (zone, rack or a label's key)");
			return -EINVAL;
		}
	}
	/* From the cache: the RPC's look-up on the worker has just refreshed
	 * it (rpc_server.c), a drain's keys come from it. */
	struct virt_vm vm;
	int rc = virt_vm_cached(a->virt, key, &vm, err, errlen);
	if (rc < 0)
		return rc;
	if (strlen(vm.name) >= MIG_NAME_MAX) {
		snprintf(err, errlen, "VM names longer than %d characters cannot be migrated yet",
		         MIG_NAME_MAX - 1);
		return -EINVAL;
	}
	if (migration_find_vm(a, vm.uuid) != NULL) {
		snprintf(err, errlen, "%s is already being moved", vm.name);
		return -EBUSY;
	}
	if (to != NULL && to[0] != '\0') {
		if (strcmp(to, a->opt.name) == 0) {
			snprintf(err, errlen, "%s already runs on %s: migration to itself", vm.name,
			         to);
			return -EINVAL;
		}
		struct swim_member_info mi;
		if (!swim_member_find(membership_swim(a), to, &mi)) {
			snprintf(err, errlen, "no host named '%s' in the cluster", to);
			return -ENOENT;
		}
		if (mi.state != SWIM_ALIVE) {
			snprintf(err, errlen, "host %s is %s", to, swim_state_name(mi.state));
			return -EHOSTUNREACH;
		}
	}
	struct migration *m = migration_new(a, &vm);
	if (m == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	m->sink = ask->sink;
	m->drain = ask->drain;
	m->start_there = ask->start_there;
	m->on_done = ask->on_done;
	for (size_t i = 0; i < n_same; i++)
		snprintf(m->same[m->n_same++], MIG_NAME_MAX, "%s", same[i]);
	if (to != NULL && to[0] != '\0' && n_same > 0) {
		Mv__NodeState *self = nodestate_unpack_name(a, a->opt.name);
		Mv__NodeState *host = nodestate_unpack_name(a, to);
		char w[200] = "";
		bool ok = self != NULL && host != NULL &&
		          migration_labels_match(m, self, host, w, sizeof(w));
		if (self)
			mv__node_state__free_unpacked(self, NULL);
		if (host)
			mv__node_state__free_unpacked(host, NULL);
		if (!ok) {
			migration_finish(a, m, false,
			                 "%s does not share the asked labels: %s; %s stays "
			                 "on %s",
			                 to, w[0] ? w : "its state is unknown here", m->vm,
			                 a->opt.name);
			return 0;
		}
	}
	if (to != NULL && to[0] != '\0') {
		m->explicit_target = true;
		snprintf(m->target, sizeof(m->target), "%s", to);
	}
	MV_INFO("migrate", "move requested vm=%s to=%s mode=%s", m->vm, to && to[0] ? to : "(best)",
	        m->offline ? "offline" : "live");
	migration_propose(a, m);
	return 0;
}

int migration_rpc_migrate(struct agent *a, const Mv__MigrateRequest *q, uint64_t sink, char *err,
                          size_t errlen)
{
	if (!q->abort) {
		struct migration_ask ask = {
		    .to = q->to, .same = q->same, .n_same = q->n_same, .sink = sink};
		return migration_begin(a, q->vm, &ask, err, errlen);
	}
	struct migration *m = migration_find_vm(a, q->vm);
	if (m == NULL) {
		snprintf(err, errlen, "no migration of '%s' is running on %s", q->vm, a->opt.name);
		return -ENOENT;
	}
	if (m->work_running) /* answered once libvirt has (migration_abort_done) */
		return migration_abort_job(a, m, sink, err, errlen);
	if (m->id[0] != '\0' && strcmp(m->phase, "proposing") == 0) {
		snprintf(m->message, sizeof(m->message),
		         "aborted by an operator before it started");
		mig_cancel(a->migration->core, m->id, uv_now(a->loop));
		migration_pump(a);
	} else {
		snprintf(err, errlen, "the move of %s is %s and cannot be aborted now", m->vm,
		         m->phase);
		return -EBUSY;
	}
	MV_INFO("migrate", "abort requested vm=%s id=%s", m->vm, m->id);
	Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
	Mv__MigrationInfo info;
	migration_info_fill(m, a->opt.name, &info);
	resp.result_case = MV__RPC_RESPONSE__RESULT_MIGRATION;
	resp.migration = &info;
	rpc_sink_send(a, sink, &resp, true);
	return 0;
}

int migration_move_crashed(struct agent *a, const char *uuid, migration_done_fn done, char *err,
                           size_t errlen)
{
	if (a->migration == NULL) {
		snprintf(err, errlen, "the migration service is not running");
		return -ENOTSUP;
	}
	struct virt_vm vm;
	int rc = virt_vm_cached(a->virt, uuid, &vm, err, errlen);
	if (rc < 0)
		return rc;
	if (vm.state == VIRT_VM_RUNNING || vm.state == VIRT_VM_PAUSED) {
		snprintf(err, errlen, "%s runs again", vm.name);
		return -EALREADY;
	}
	struct migration_ask ask = {.start_there = true, .on_done = done};
	return migration_begin(a, uuid, &ask, err, errlen);
}

/* ---- drain ------------------------------------------------------------------------------------- */

static void drain_pump(struct agent *a);
static void drain_result_info(struct agent *a, const struct drain_result *r,
                              Mv__MigrationInfo *out);

static void drain_finish(struct agent *a)
{
	struct drain *d = a->migration->drain;
	Mv__DrainReply dr = MV__DRAIN_REPLY__INIT;
	Mv__MigrationInfo *infos = calloc(d->n_results ? d->n_results : 1, sizeof(*infos));
	Mv__MigrationInfo **ptrs = calloc(d->n_results ? d->n_results : 1, sizeof(*ptrs));
	char msg[256];
	uint32_t moved = 0, stayed = 0;
	for (size_t i = 0; i < d->n_results && infos && ptrs; i++) {
		drain_result_info(a, &d->results[i], &infos[i]);
		ptrs[i] = &infos[i];
		if (d->results[i].ok)
			moved++;
		else
			stayed++;
	}
	snprintf(msg, sizeof(msg), "%s drained: %u moved, %u stayed", a->opt.name, moved, stayed);
	dr.node = a->opt.name;
	dr.moved = moved;
	dr.stayed = stayed;
	dr.n_results = infos && ptrs ? d->n_results : 0;
	dr.results = ptrs;
	dr.message = msg;
	Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
	resp.result_case = MV__RPC_RESPONSE__RESULT_DRAIN;
	resp.drain = &dr;
	MV_INFO("migrate", "drain finished moved=%u stayed=%u", moved, stayed);
	rpc_sink_send(a, d->sink, &resp, true);
	free(infos);
	free(ptrs);
	free(d->vms);
	free(d->results);
	free(d);
	a->migration->drain = NULL;
}

/* A drain's per-VM outcome as the wire shows it: the whole move record when
 * a move was started, else just the VM and why it did not start. */
static void drain_result_info(struct agent *a, const struct drain_result *r, Mv__MigrationInfo *out)
{
	if (r->have_move) {
		migration_info_fill(&r->move, a->opt.name, out);
		return;
	}
	mv__migration_info__init(out);
	out->vm = (char *)r->vm;
	out->source = a->opt.name;
	out->target = (char *)r->target;
	out->phase = "done";
	out->done = true;
	out->ok = r->ok;
	out->message = (char *)r->message;
}

static void drain_record(struct agent *a, const char *vm, const char *target, bool ok,
                         const char *message, const struct migration *m)
{
	struct drain *d = a->migration->drain;
	struct drain_result *r = &d->results[d->n_results++];
	snprintf(r->vm, sizeof(r->vm), "%s", vm);
	snprintf(r->target, sizeof(r->target), "%s", target);
	snprintf(r->message, sizeof(r->message), "%s", message);
	r->ok = ok;
	if (m != NULL) {
		r->move = *m;
		r->move.next = NULL;
		r->have_move = true;
	}
	/* progress: one frame per VM as it finishes */
	Mv__MigrationInfo info;
	drain_result_info(a, r, &info);
	Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
	resp.result_case = MV__RPC_RESPONSE__RESULT_MIGRATION;
	resp.migration = &info;
	rpc_sink_send(a, d->sink, &resp, false);
}

static void drain_on_finished(struct agent *a, struct migration *m)
{
	struct drain *d = a->migration->drain;
	m->drain = NULL;
	if (d == NULL)
		return;
	d->running--;
	drain_record(a, m->vm, m->ok ? m->target : "", m->ok, m->message, m);
	drain_pump(a);
}

static void drain_pump(struct agent *a)
{
	struct drain *d = a->migration->drain;
	while (d->running < d->parallel && d->next < d->n_vms) {
		const char *vm = d->vms[d->next++];
		char err[512];
		d->running++;
		struct migration_ask ask = {.drain = d};
		if (migration_begin(a, vm, &ask, err, sizeof(err)) < 0) {
			d->running--;
			drain_record(a, vm, "", false, err, NULL);
		}
		if (a->migration->drain != d)
			return; /* finished inside (cannot happen while running > 0) */
	}
	if (d->running == 0 && d->next == d->n_vms)
		drain_finish(a);
}

int migration_rpc_drain(struct agent *a, const Mv__DrainRequest *q, uint64_t sink, char *err,
                        size_t errlen)
{
	Mv__RpcResponse resp = MV__RPC_RESPONSE__INIT;
	Mv__DrainReply dr = MV__DRAIN_REPLY__INIT;
	char msg[256];
	struct migration_service *ms = a->migration;
	if (q->undrain) {
		if (ms->drain != NULL) {
			snprintf(err, errlen, "%s is still draining (%zu of %zu VMs started)",
			         a->opt.name, ms->drain->next, ms->drain->n_vms);
			return -EBUSY;
		}
		ms->draining = false;
		nodestate_refresh(a);
		MV_INFO("migrate", "undrained: back in service");
		snprintf(msg, sizeof(msg), "%s is back in service", a->opt.name);
		dr.node = a->opt.name;
		dr.message = msg;
		resp.result_case = MV__RPC_RESPONSE__RESULT_DRAIN;
		resp.drain = &dr;
		rpc_sink_send(a, sink, &resp, true);
		return 0;
	}
	if (ms->drain != NULL) {
		snprintf(err, errlen, "%s is already draining", a->opt.name);
		return -EBUSY;
	}
	size_t n = 0;
	const struct virt_vm *vms = virt_vms(a->virt, &n);
	struct drain *d = calloc(1, sizeof(*d));
	if (d == NULL || (n > 0 && ((d->vms = calloc(n, sizeof(*d->vms))) == NULL ||
	                            (d->results = calloc(n, sizeof(*d->results))) == NULL))) {
		if (d != NULL) {
			free(d->vms);
			free(d);
		}
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		snprintf(d->vms[i], MIG_NAME_MAX, "%.*s", MIG_NAME_MAX - 1, vms[i].uuid);
	d->n_vms = n;
	d->sink = sink;
	d->parallel = q->parallel ? q->parallel : a->opt.mig_max_outgoing;
	ms->drain = d;
	ms->draining = true;
	nodestate_refresh(a); /* no new placements here, now */
	MV_INFO("migrate", "draining vms=%zu parallel=%u", n, d->parallel);
	drain_pump(a);
	return 0;
}

/* ---- life ---------------------------------------------------------------------------------------- */

/* Migration's part of this host's record: the draining flag (a drain
 * sets it) and its recent moves; and every record built gives the core
 * our capacity and draining flag. */
static void migration_fill_state(struct agent *a, Mv__NodeState *ns)
{
	ns->draining = migration_draining(a);
}

static const struct nodestate_contributor migration_state_contributor = {
    .fill = migration_fill_state,
    .list_migrations = migration_list,
    .built = migration_set_capacity,
};

int migration_start(struct agent *a, char *err, size_t errlen)
{
	if (nodestate_add_contributor(&migration_state_contributor) < 0 ||
	    membership_add_listener(migration_on_member_event) < 0) {
		snprintf(err, errlen, "cannot register with node state and membership");
		return -ENOSPC;
	}
	struct mig_config cfg;
	mig_config_default(&cfg);
	snprintf(cfg.name, sizeof(cfg.name), "%s", a->opt.name);
	const struct virt_health *vh = virt_health(a->virt);
	snprintf(cfg.cpu_model, sizeof(cfg.cpu_model), "%s", vh->cpu_model);
	if (getrandom(&cfg.seed, sizeof(cfg.seed), 0) != (ssize_t)sizeof(cfg.seed))
		cfg.seed = (uint64_t)migration_wall_ms();
	cfg.max_incoming = a->opt.mig_max_incoming;
	cfg.max_outgoing = a->opt.mig_max_outgoing;
	cfg.lease_ms = a->opt.mig_lease_ms; /* renew, guard and quiet time derive from it */
	/* The startup quiet period (mig.c: refuse proposals for one lease)
	 * covers reservations a previous life of this agent accepted. At
	 * incarnation 1 this data_dir has no previous life (membership
	 * starts at the saved incarnation + 1): nothing to wait for, so a
	 * brand-new cluster accepts migrations at once. (A wiped data_dir
	 * counts as a new host; its agent still kills the incoming jobs it
	 * finds in libvirt at start.) */
	if (swim_incarnation(membership_swim(a)) == 1)
		cfg.startup_quiet_ms = 0;
	struct migration_service *ms = calloc(1, sizeof(*ms));
	if (ms == NULL || (ms->core = mig_new(&cfg, uv_now(a->loop))) == NULL) {
		free(ms);
		snprintf(err, errlen, "cannot create the migration core");
		return -ENOMEM;
	}
	a->migration = ms;
	mv_hist_init(&ms->totals.duration, mv_hist_phase_seconds, mv_hist_phase_seconds_n);
	/* A previous life of this agent may have left migration jobs running
	 * that nobody negotiates any more: abort them before feeding the core.
	 * Synchronous: this runs at the agent's start, before the loop runs
	 * (like its first connect), not from a loop callback. */
	size_t n = 0;
	const struct virt_vm *cached = virt_vms(a->virt, &n);
	char(*uuids)[MIG_UUID_MAX] = calloc(n ? n : 1, sizeof(*uuids));
	for (size_t i = 0; uuids != NULL && i < n; i++) /* the cache may change below */
		snprintf(uuids[i], MIG_UUID_MAX, "%.*s", MIG_UUID_MAX - 1, cached[i].uuid);
	for (size_t i = 0; uuids != NULL && i < n; i++) {
		struct virt_job_stats st;
		char e[256];
		if (virt_vm_job_stats(a->virt, uuids[i], false, &st, e, sizeof(e)) == 0 &&
		    st.state == VIRT_JOB_RUNNING && st.migration) {
			MV_WARN("migrate",
			        "aborting a migration left from before this start uuid=%s",
			        uuids[i]);
			virt_vm_abort_job(a->virt, uuids[i], e, sizeof(e));
		}
	}
	free(uuids);
	uv_timer_init(a->loop, &ms->core_timer);
	uv_timer_init(a->loop, &ms->progress_timer);
	uv_timer_init(a->loop, &ms->ready_timer);
	ms->core_timer.data = ms->progress_timer.data = ms->ready_timer.data = a;
	ms->timers_on = true;
	uv_timer_start(&ms->progress_timer, migration_on_progress_timer, MIGRATION_PROGRESS_MS,
	               MIGRATION_PROGRESS_MS);
	return 0;
}

void migration_stop(struct agent *a)
{
	struct migration_service *ms = a->migration;
	if (ms == NULL)
		return;
	uv_timer_stop(&ms->core_timer);
	uv_timer_stop(&ms->progress_timer);
	uv_timer_stop(&ms->ready_timer);
	/* Synchronous, on purpose: the agent is stopping (it has left the
	 * cluster, nobody probes it any more) and then waits for each
	 * migration to end; an abort queued on the worker would be cancelled
	 * by hvwork_stop right after this, leaving the migration running. */
	for (struct migration *m = ms->moves; m != NULL; m = m->next) {
		if (m->work_running) {
			char err[256];
			MV_WARN("migrate", "stopping: aborting the running migration vm=%s", m->vm);
			virt_vm_abort_job(a->virt, m->uuid, err, sizeof(err));
		}
	}
}

void migration_close(struct agent *a)
{
	struct migration_service *ms = a->migration;
	if (ms == NULL || !ms->timers_on)
		return;
	ms->timers_on = false;
	uv_close((uv_handle_t *)&ms->core_timer, NULL);
	uv_close((uv_handle_t *)&ms->progress_timer, NULL);
	uv_close((uv_handle_t *)&ms->ready_timer, NULL);
}

void migration_free_all(struct agent *a)
{
	struct migration_service *ms = a->migration;
	if (ms == NULL)
		return;
	for (struct migration_receive *rv = ms->receives; rv != NULL; rv = rv->next)
		rv->listed = false; /* freed when the worker calls them back */
	while (ms->moves != NULL) {
		struct migration *m = ms->moves;
		ms->moves = m->next;
		free(m->xml);
		free(m);
	}
	if (ms->drain != NULL) {
		free(ms->drain->vms);
		free(ms->drain->results);
		free(ms->drain);
	}
	mig_free(ms->core);
	free(ms);
	a->migration = NULL;
}
