/*
 * mig.c — the migration core (prefix mig_): negotiation between a source
 * and a target host, as a pure state machine (contract in meshvisor/mig.h).
 *
 * THE PROTOCOL
 *
 *     source S                                   target T
 *     mig_propose()
 *     PROPOSE{id, vm, uuid, vcpus, mem, cpu, stamp=t0}  ->
 *                                     checks, in one handler call:
 *                                       draining? CPU model? incoming limit?
 *                                       free = capacity - allocated - reserved
 *                                     then reserves, expires_at = now + lease
 *                        <-  ACCEPT{id, lease_ms, stamp=t0}  (+ caller's URI)
 *                        or  REFUSE{id, reason, text}
 *     event GO: the caller migrates (libvirt)
 *     RENEW{id, stamp=t1} every renew_interval  ->  expires_at = now + lease
 *                        <-  RENEWED{id, lease_ms, stamp=t1}
 *     caller: mig_migration_done(ok | failed | landed-anyway)
 *     COMMIT{id} or ABORT{id}         ->  reservation released
 *
 * The proposal id is chosen by the source: its name, 32 random bits drawn
 * once per core life (so a restarted source never reuses an id a target
 * still remembers) and a counter. Everything on the target is keyed by it.
 *
 * WHY TWO SOURCES CAN NEVER OVERBOOK ONE TARGET
 * A target decides a PROPOSE and takes the reservation in the same call
 * (handle_propose): the room it checks is capacity minus the caller's
 * allocation minus every reservation it holds, and the new reservation is
 * added before the call returns. The daemon feeds one message at a time,
 * so two PROPOSEs racing for the last slot are serialised: the second sees
 * the first's reservation and is refused "no room". Nothing is promised in
 * advance of that check — a source's choice of target (from gossip) is
 * only a guess, and a stale guess costs one REFUSE.
 * A reservation stops counting exactly when the VM starts counting in the
 * allocation: on COMMIT or mig_vm_arrived(), both of which release it and
 * tell the caller (MIG_EV_COMMITTED), which calls mig_set_capacity() with
 * the VM before feeding anything else (header, "capacity contract"). If
 * COMMIT is lost the arrival still releases it; if both are missed the
 * lease does, and by then the caller's capacity already holds the VM, so
 * the error is a double count (safe), never a missing one.
 *
 * WHY LEASES
 * A target cannot tell a dead source from a slow one, and a reservation
 * that waits for a COMMIT that never comes would hold capacity forever.
 * So every reservation carries a lease: it lapses lease_ms after the last
 * PROPOSE or RENEW from its source, and the source RENEWs every
 * renew_interval_ms (a third of the lease: two consecutive losses are
 * survived) for as long as the caller migrates. A source that crashed,
 * was cut off or forgot stops renewing, and the reservation is released
 * (MIG_EV_EXPIRED, with the cause). Membership is deliberately not used to
 * drop reservations early: a falsely suspected source may still be
 * migrating, and its VM would land on capacity given away meanwhile.
 *
 * The source keeps its own, conservative, view of the lease: the lease it
 * was granted counts from the `stamp` (its own clock) of the PROPOSE or
 * RENEW that was answered, and the target's counts from when that message
 * arrived, which is later. Minus lease_guard_ms, that gives lease_until,
 * strictly before the target can expire the reservation. If no RENEWED
 * pushes lease_until on in time, or the target answers a RENEW with
 * REFUSE(unknown) (it forgot: restart), or membership says the target is
 * down, the source reports MIG_EV_LEASE_LOST and the caller must abort the
 * libvirt job before lease_until + guard: a VM thus never lands on a
 * target that no longer reserves room for it. No clocks are compared
 * across hosts; only durations are, and drift over a 30 s lease is
 * negligible next to the guard.
 *
 * The source's lease only helps while the source's agent lives. Two
 * fences on the target cover the rest (caller duties, both exercised by
 * tests/sim/test_sim_migrate.c):
 *  - on MIG_EV_EXPIRED the target's caller kills an incoming migration of
 *    that VM still in progress (destroys the paused incoming domain): a
 *    source whose agent died mid-migration cannot land a VM on room given
 *    away;
 *  - an agent that starts aborts the outgoing migration jobs it finds and
 *    kills the incoming ones (their reservations died with the previous
 *    life) before it feeds the core anything.
 * That leaves a job whose ACCEPT was still in flight when the target's
 * agent restarted: the source starts it after the restart. So a new core
 * refuses every PROPOSE (MIG_R_STARTING) for startup_quiet_ms (default:
 * one lease) after mig_new: by then every source of a forgotten
 * reservation has lost its lease (its RENEWs get REFUSE(unknown) or no
 * answer) and aborted, and until then the room it held is still free,
 * since nothing new was reserved.
 *
 * WHAT HAPPENS ON EVERY FAILURE
 *  - PROPOSE or its answer lost: the source resends PROPOSE every
 *    propose_retry_ms; the target answers a duplicate with the same answer
 *    (same reservation and a fresh lease, or the remembered refusal).
 *    After propose_timeout_ms the source gives up (MIG_EV_REFUSED, reason
 *    timeout: "target unreachable") and sends ABORT in case an ACCEPT was
 *    lost; a late ACCEPT for an id the source no longer has is answered
 *    with ABORT too. Either way the lease bounds the waste.
 *  - RENEW or RENEWED lost: the next one covers it; too many lost ->
 *    LEASE_LOST at the source, which aborts; expiry at the target.
 *  - COMMIT or ABORT lost: the arrival (COMMIT case) or the lease releases
 *    the reservation; the source has already finished.
 *  - COMMIT/ABORT/RENEW for an unknown id (late, duplicated, reordered
 *    before its PROPOSE): ignored; the id is remembered as finished so a
 *    PROPOSE that arrives after its own ABORT is refused "duplicate"
 *    rather than reserving again.
 *  - Source crashes: its reservations expire, and the target's caller
 *    kills a still-running incoming job (above). Its agent, on restart,
 *    aborts any migration job it finds before proposing anything.
 *  - Target crashes mid-migration: libvirt fails the job; membership's
 *    peer_down or the missing RENEWEDs give LEASE_LOST; the caller reports
 *    done(failed), the source sends ABORT (harmless if nobody listens).
 *  - Target restarts: its agent kills the incoming jobs it finds; the
 *    quiet period covers those whose ACCEPT was in flight (above).
 *  - Libvirt says "failed" but the VM is on the target: the caller
 *    reconciles and reports landed-anyway, which COMMITs.
 *
 * Finished ids (committed, released, expired, refused) are kept in a ring
 * of MIG_RECENT_MAX entries for recent_ms, so duplicates get the same
 * answer. Reservations and outgoing negotiations are small arrays searched
 * linearly: their number is bounded by the concurrency limits (default 2).
 */
#include "meshvisor/mig.h"
#include "prng.h"
#include "queue.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Finished ids remembered for idempotent answers: a few minutes of traffic
 * at the concurrency limits, and enough for a burst of refusals. */
#define MIG_RECENT_MAX 256
/* Undrained outputs/events kept; a caller that never drains must not make
 * us grow without bound (the oldest are kept, the newest dropped). */
#define MIG_QUEUE_MAX 4096
/* Hard caps on the configured limits: the arrays are scanned linearly. */
#define MIG_LIMIT_MAX 256

/* ------------------------------------------------------------------------ */
/* Types                                                                    */

struct mig_res {
	char id[MIG_ID_MAX];
	char source[MIG_NAME_MAX];
	char vm_name[MIG_NAME_MAX];
	char vm_uuid[MIG_UUID_MAX];
	uint32_t vcpus;
	uint64_t memory_kib;
	uint64_t since, last_renew, expires_at;
};

struct mig_out {
	char id[MIG_ID_MAX];
	char target[MIG_NAME_MAX];
	char vm_name[MIG_NAME_MAX];
	char vm_uuid[MIG_UUID_MAX];
	uint32_t vcpus;
	uint64_t memory_kib;
	enum mig_out_state state;
	uint64_t since, accepted_at, lease_until;
	uint64_t next_send; /* PROPOSE retry or RENEW */
	bool lease_lost;
};

enum mig_fin {
	FIN_REFUSED,   /* we answered REFUSE(reason, text) */
	FIN_COMMITTED, /* committed or arrived */
	FIN_RELEASED,  /* aborted */
	FIN_EXPIRED,
};

struct mig_recent {
	char id[MIG_ID_MAX];
	enum mig_fin fin;
	enum mig_reason reason;
	char text[MIG_TEXT_MAX];
	uint64_t until;
};

struct mig {
	struct mig_config cfg;
	uint64_t rng[4];
	uint32_t id_salt;
	uint64_t id_counter;
	uint64_t started;

	struct mig_capacity cap;
	bool draining;
	bool held; /* mig_set_hold */
	char hold_why[MIG_TEXT_MAX / 2];

	struct mig_res *res;
	size_t n_res;
	struct mig_out *out;
	size_t n_out;

	struct mig_recent recent[MIG_RECENT_MAX];
	size_t recent_next;

	struct mv_queue outq; /* struct mig_msg */
	struct mv_queue evq;  /* struct mig_event */
};

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

static void cpy(char *dst, size_t size, const char *src)
{
	if (!src)
		src = "";
	size_t n = strnlen(src, size - 1);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static bool fits_str(const char *s, size_t size)
{
	return s && strnlen(s, size) < size;
}

static bool terminated(const char *a, size_t size)
{
	return memchr(a, '\0', size) != NULL;
}

static uint64_t mib(uint64_t kib)
{
	return kib / 1024;
}

static void push_msg(struct mig *m, const struct mig_msg *msg)
{
	struct mig_msg *q = mv_queue_push(&m->outq, sizeof(*q), MIG_QUEUE_MAX);
	if (q)
		*q = *msg;
}

static struct mig_event *push_event(struct mig *m, enum mig_event_type t, const char *id,
                                    const char *peer, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static struct mig_event *push_event(struct mig *m, enum mig_event_type t, const char *id,
                                    const char *peer, const char *fmt, ...)
{
	static struct mig_event sink;
	struct mig_event *e = mv_queue_push(&m->evq, sizeof(*e), MIG_QUEUE_MAX);
	if (!e)
		e = &sink;
	memset(e, 0, sizeof(*e));
	e->type = t;
	cpy(e->proposal_id, sizeof(e->proposal_id), id);
	cpy(e->peer, sizeof(e->peer), peer);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
	return e;
}

static void ev_vm_res(struct mig_event *e, const struct mig_res *r)
{
	cpy(e->vm_name, sizeof(e->vm_name), r->vm_name);
	cpy(e->vm_uuid, sizeof(e->vm_uuid), r->vm_uuid);
	e->vcpus = r->vcpus;
	e->memory_kib = r->memory_kib;
}

static void ev_vm_out(struct mig_event *e, const struct mig_out *o)
{
	cpy(e->vm_name, sizeof(e->vm_name), o->vm_name);
	cpy(e->vm_uuid, sizeof(e->vm_uuid), o->vm_uuid);
	e->vcpus = o->vcpus;
	e->memory_kib = o->memory_kib;
}

static void msg_init(struct mig *m, struct mig_msg *msg, enum mig_msg_type t, const char *to,
                     const char *id)
{
	memset(msg, 0, sizeof(*msg));
	msg->type = t;
	cpy(msg->from, sizeof(msg->from), m->cfg.name);
	cpy(msg->to, sizeof(msg->to), to);
	cpy(msg->proposal_id, sizeof(msg->proposal_id), id);
}

static void send_simple(struct mig *m, enum mig_msg_type t, const char *to, const char *id)
{
	struct mig_msg msg;
	msg_init(m, &msg, t, to, id);
	push_msg(m, &msg);
}

/* ------------------------------------------------------------------------ */
/* Recently finished ids                                                    */

static struct mig_recent *recent_find(struct mig *m, const char *id, uint64_t now)
{
	for (size_t i = 0; i < MIG_RECENT_MAX; i++) {
		struct mig_recent *r = &m->recent[i];
		if (r->id[0] && r->until > now && strcmp(r->id, id) == 0)
			return r;
	}
	return NULL;
}

static void recent_add(struct mig *m, const char *id, enum mig_fin fin, enum mig_reason reason,
                       const char *text, uint64_t now)
{
	struct mig_recent *r = recent_find(m, id, now);
	if (!r) {
		r = &m->recent[m->recent_next];
		m->recent_next = (m->recent_next + 1) % MIG_RECENT_MAX;
	}
	cpy(r->id, sizeof(r->id), id);
	r->fin = fin;
	r->reason = reason;
	cpy(r->text, sizeof(r->text), text);
	r->until = now + m->cfg.recent_ms;
}

static const char *fin_name(enum mig_fin f)
{
	switch (f) {
	case FIN_COMMITTED:
		return "committed";
	case FIN_RELEASED:
		return "aborted";
	case FIN_EXPIRED:
		return "expired";
	default:
		return "refused";
	}
}

/* ------------------------------------------------------------------------ */
/* Names                                                                    */

const char *mig_reason_name(enum mig_reason r)
{
	static const char *const names[MIG_REASONS] = {
	    "none",      "no-room", "draining", "incompatible-cpu", "too-many", "to-itself",
	    "duplicate", "unknown", "starting", "bad-proposal",     "timeout",  "peer-down",
	};
	return (unsigned)r < MIG_REASONS ? names[r] : "?";
}

const char *mig_event_name(enum mig_event_type t)
{
	static const char *const names[MIG_EVENT_TYPES] = {
	    "reserved", "refused-in", "committed",  "released", "expired",
	    "go",       "refused",    "lease-lost", "finished",
	};
	return (unsigned)t < MIG_EVENT_TYPES ? names[t] : "?";
}

const char *mig_msg_type_name(enum mig_msg_type t)
{
	static const char *const names[MIG_MSG_TYPES] = {
	    "PROPOSE", "ACCEPT", "REFUSE", "RENEW", "RENEWED", "COMMIT", "ABORT",
	};
	return (unsigned)t < MIG_MSG_TYPES ? names[t] : "?";
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                               */

void mig_config_default(struct mig_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->seed = 1;
	cfg->max_incoming = 2;
	cfg->max_outgoing = 2;
	cfg->lease_ms = 30000;
	cfg->renew_interval_ms = 0; /* lease_ms / 3 */
	cfg->lease_guard_ms = 0;    /* lease_ms / 10 */
	cfg->propose_timeout_ms = 5000;
	cfg->propose_retry_ms = 1000;
	cfg->startup_quiet_ms = UINT32_MAX; /* = lease_ms */
	cfg->recent_ms = 0;                 /* 2 * lease_ms */
	cfg->choose_top = 3;
}

struct mig *mig_new(const struct mig_config *cfg, uint64_t now)
{
	if (!cfg || !cfg->name[0] || !terminated(cfg->name, sizeof(cfg->name)) ||
	    !terminated(cfg->cpu_model, sizeof(cfg->cpu_model)))
		return NULL;
	struct mig *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->cfg = *cfg;
	struct mig_config *c = &m->cfg;
	if (c->lease_ms == 0)
		c->lease_ms = 30000;
	if (c->renew_interval_ms == 0 || c->renew_interval_ms >= c->lease_ms)
		c->renew_interval_ms = c->lease_ms / 3 ? c->lease_ms / 3 : 1;
	if (c->lease_guard_ms == 0 || c->lease_guard_ms >= c->lease_ms - c->renew_interval_ms)
		c->lease_guard_ms = c->lease_ms / 10;
	if (c->propose_timeout_ms == 0)
		c->propose_timeout_ms = 5000;
	if (c->propose_retry_ms == 0)
		c->propose_retry_ms = c->propose_timeout_ms;
	if (c->startup_quiet_ms == UINT32_MAX)
		c->startup_quiet_ms = c->lease_ms;
	if (c->recent_ms == 0)
		c->recent_ms = 2 * c->lease_ms;
	if (c->max_incoming > MIG_LIMIT_MAX)
		c->max_incoming = MIG_LIMIT_MAX;
	if (c->max_outgoing > MIG_LIMIT_MAX)
		c->max_outgoing = MIG_LIMIT_MAX;
	if (c->choose_top == 0)
		c->choose_top = 1;
	uint64_t x = c->seed;
	for (int i = 0; i < 4; i++)
		m->rng[i] = mv_splitmix64(&x);
	m->id_salt = (uint32_t)(mv_xoshiro_next(m->rng) >> 32);
	m->started = now;
	m->res = calloc(c->max_incoming ? c->max_incoming : 1, sizeof(*m->res));
	m->out = calloc(c->max_outgoing ? c->max_outgoing : 1, sizeof(*m->out));
	if (!m->res || !m->out) {
		mig_free(m);
		return NULL;
	}
	return m;
}

void mig_free(struct mig *m)
{
	if (!m)
		return;
	free(m->res);
	free(m->out);
	mv_queue_free(&m->outq);
	mv_queue_free(&m->evq);
	free(m);
}

void mig_set_capacity(struct mig *m, const struct mig_capacity *cap)
{
	m->cap = *cap;
}

void mig_set_draining(struct mig *m, bool draining)
{
	m->draining = draining;
}

void mig_set_hold(struct mig *m, const char *why)
{
	m->held = why != NULL;
	snprintf(m->hold_why, sizeof(m->hold_why), "%s", why ? why : "");
}

/* ------------------------------------------------------------------------ */
/* Target role                                                              */

static struct mig_res *res_find(struct mig *m, const char *id)
{
	for (size_t i = 0; i < m->n_res; i++)
		if (strcmp(m->res[i].id, id) == 0)
			return &m->res[i];
	return NULL;
}

static void res_remove(struct mig *m, struct mig_res *r)
{
	size_t i = (size_t)(r - m->res);
	m->res[i] = m->res[--m->n_res];
}

void mig_reserved_total(const struct mig *m, uint32_t *vcpus, uint64_t *memory_kib)
{
	uint32_t v = 0;
	uint64_t k = 0;
	for (size_t i = 0; i < m->n_res; i++) {
		v += m->res[i].vcpus;
		k += m->res[i].memory_kib;
	}
	if (vcpus)
		*vcpus = v;
	if (memory_kib)
		*memory_kib = k;
}

static void send_accept(struct mig *m, const struct mig_res *r, uint64_t stamp)
{
	struct mig_msg a;
	msg_init(m, &a, MIG_ACCEPT, r->source, r->id);
	cpy(a.vm_name, sizeof(a.vm_name), r->vm_name);
	cpy(a.vm_uuid, sizeof(a.vm_uuid), r->vm_uuid);
	a.vcpus = r->vcpus;
	a.memory_kib = r->memory_kib;
	a.lease_ms = m->cfg.lease_ms;
	a.stamp = stamp;
	push_msg(m, &a);
}

static void send_refuse(struct mig *m, const struct mig_msg *p, enum mig_reason reason,
                        const char *text)
{
	struct mig_msg r;
	msg_init(m, &r, MIG_REFUSE, p->from, p->proposal_id);
	cpy(r.vm_name, sizeof(r.vm_name), p->vm_name);
	cpy(r.vm_uuid, sizeof(r.vm_uuid), p->vm_uuid);
	r.stamp = p->stamp;
	r.reason = reason;
	cpy(r.reason_text, sizeof(r.reason_text), text);
	push_msg(m, &r);
}

static void refuse(struct mig *m, const struct mig_msg *p, enum mig_reason reason, uint64_t now,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void refuse(struct mig *m, const struct mig_msg *p, enum mig_reason reason, uint64_t now,
                   const char *fmt, ...)
{
	char text[MIG_TEXT_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	send_refuse(m, p, reason, text);
	recent_add(m, p->proposal_id, FIN_REFUSED, reason, text, now);
	struct mig_event *e =
	    push_event(m, MIG_EV_REFUSED_IN, p->proposal_id, p->from,
	               "refused migration %s of %s from %s: %s (%s)", p->proposal_id, p->vm_name,
	               p->from, mig_reason_name(reason), text);
	e->reason = reason;
	cpy(e->vm_name, sizeof(e->vm_name), p->vm_name);
	cpy(e->vm_uuid, sizeof(e->vm_uuid), p->vm_uuid);
	e->vcpus = p->vcpus;
	e->memory_kib = p->memory_kib;
}

static void handle_propose(struct mig *m, const struct mig_msg *p, uint64_t now)
{
	/* 1. Same id again: the same answer. */
	struct mig_res *r = res_find(m, p->proposal_id);
	if (r) {
		if (strcmp(r->source, p->from) != 0)
			return; /* someone else's id: not theirs to extend */
		r->last_renew = now;
		if (now + m->cfg.lease_ms > r->expires_at)
			r->expires_at = now + m->cfg.lease_ms;
		send_accept(m, r, p->stamp);
		return;
	}
	struct mig_recent *rc = recent_find(m, p->proposal_id, now);
	if (rc) {
		char text[MIG_TEXT_MAX];
		if (rc->fin == FIN_REFUSED) {
			send_refuse(m, p, rc->reason, rc->text);
		} else {
			snprintf(text, sizeof(text), "proposal %.*s already finished (%s)", 80,
			         p->proposal_id, fin_name(rc->fin));
			send_refuse(m, p, MIG_R_DUPLICATE, text);
		}
		return;
	}

	/* 2. Checks, cheapest and most permanent first. */
	if (!p->vm_name[0] || !p->vm_uuid[0] || p->memory_kib == 0 || p->vcpus == 0) {
		refuse(m, p, MIG_R_BAD, now,
		       "malformed proposal: VM name, UUID, vCPUs and memory "
		       "are required");
		return;
	}
	if (strcmp(p->from, m->cfg.name) == 0) {
		refuse(m, p, MIG_R_SELF, now, "%s is already on this host", p->vm_name);
		return;
	}
	if (now < m->started + m->cfg.startup_quiet_ms) {
		refuse(m, p, MIG_R_STARTING, now,
		       "agent restarted %" PRIu64 " ms ago; accepting migrations in %" PRIu64 " ms",
		       now - m->started, m->started + m->cfg.startup_quiet_ms - now);
		return;
	}
	if (m->draining) {
		refuse(m, p, MIG_R_DRAINING, now, "host %s is draining", m->cfg.name);
		return;
	}
	if (m->held) {
		refuse(m, p, MIG_R_DRAINING, now, "host %s takes no VM now: %s", m->cfg.name,
		       m->hold_why);
		return;
	}
	if (m->cfg.cpu_model[0] && strcmp(m->cfg.cpu_model, p->cpu_model) != 0) {
		refuse(m, p, MIG_R_CPU, now, "CPU model %s is not compatible with this host's %s",
		       p->cpu_model[0] ? p->cpu_model : "(none)", m->cfg.cpu_model);
		return;
	}
	for (size_t i = 0; i < m->n_res; i++)
		if (strcmp(m->res[i].vm_uuid, p->vm_uuid) == 0) {
			refuse(m, p, MIG_R_DUPLICATE, now,
			       "VM %s is already incoming (proposal %.*s)", p->vm_uuid, 80,
			       m->res[i].id);
			return;
		}
	if (m->n_res >= m->cfg.max_incoming) {
		refuse(m, p, MIG_R_TOO_MANY, now, "%zu incoming migrations already (limit %u)",
		       m->n_res, m->cfg.max_incoming);
		return;
	}

	/* 3. Room, and the reservation, in the same call (no overbooking). */
	struct placement_host h = {
	    .cpus = m->cap.cpus,
	    .cpu_overcommit = m->cap.cpu_overcommit,
	    .memory_kib = m->cap.memory_kib,
	    .memory_reserved_kib = m->cap.memory_reserved_kib,
	    .memory_overcommit = m->cap.memory_overcommit,
	};
	uint64_t mcap = placement_memory_capacity_kib(&h);
	uint32_t vcap = placement_vcpu_capacity(&h);
	uint32_t rv;
	uint64_t rk;
	mig_reserved_total(m, &rv, &rk);
	uint64_t mused = m->cap.memory_allocated_kib + rk;
	uint64_t vused = (uint64_t)m->cap.vcpus_allocated + rv;
	uint64_t mleft = mcap > mused ? mcap - mused : 0;
	uint64_t vleft = vcap > vused ? vcap - vused : 0;
	if (p->memory_kib > mleft) {
		refuse(m, p, MIG_R_NO_ROOM, now,
		       "needs %" PRIu64 " MiB, %" PRIu64 " MiB free (capacity %" PRIu64
		       ", allocated %" PRIu64 ", reserved %" PRIu64 " for %zu incoming)",
		       mib(p->memory_kib), mib(mleft), mib(mcap), mib(m->cap.memory_allocated_kib),
		       mib(rk), m->n_res);
		return;
	}
	if (p->vcpus > vleft) {
		refuse(m, p, MIG_R_NO_ROOM, now,
		       "needs %u vCPUs, %" PRIu64 " free (capacity %u, allocated %u, reserved %u "
		       "for %zu incoming)",
		       p->vcpus, vleft, vcap, m->cap.vcpus_allocated, rv, m->n_res);
		return;
	}
	r = &m->res[m->n_res++];
	memset(r, 0, sizeof(*r));
	cpy(r->id, sizeof(r->id), p->proposal_id);
	cpy(r->source, sizeof(r->source), p->from);
	cpy(r->vm_name, sizeof(r->vm_name), p->vm_name);
	cpy(r->vm_uuid, sizeof(r->vm_uuid), p->vm_uuid);
	r->vcpus = p->vcpus;
	r->memory_kib = p->memory_kib;
	r->since = r->last_renew = now;
	r->expires_at = now + m->cfg.lease_ms;
	send_accept(m, r, p->stamp);
	struct mig_event *e = push_event(m, MIG_EV_RESERVED, r->id, r->source,
	                                 "reserved %u vCPUs / %" PRIu64 " MiB for %s from %s "
	                                 "(proposal %.*s, lease %u ms)",
	                                 r->vcpus, mib(r->memory_kib), r->vm_name, r->source, 80,
	                                 r->id, m->cfg.lease_ms);
	ev_vm_res(e, r);
}

static void release(struct mig *m, struct mig_res *r, enum mig_fin fin, uint64_t now,
                    const char *why)
{
	static const enum mig_event_type ev[] = {
	    [FIN_COMMITTED] = MIG_EV_COMMITTED,
	    [FIN_RELEASED] = MIG_EV_RELEASED,
	    [FIN_EXPIRED] = MIG_EV_EXPIRED,
	};
	struct mig_event *e =
	    push_event(m, ev[fin], r->id, r->source,
	               "%s %s from %s (proposal %.*s): %s; released %u vCPUs / %" PRIu64 " MiB",
	               fin == FIN_COMMITTED ? "committed" : "released", r->vm_name, r->source, 80,
	               r->id, why, r->vcpus, mib(r->memory_kib));
	ev_vm_res(e, r);
	recent_add(m, r->id, fin, MIG_R_NONE, why, now);
	res_remove(m, r);
}

static void handle_finish(struct mig *m, const struct mig_msg *msg, uint64_t now)
{
	bool commit = msg->type == MIG_COMMIT;
	struct mig_res *r = res_find(m, msg->proposal_id);
	if (!r) {
		/* Late, duplicated, or ahead of its PROPOSE: remember it so a
		 * PROPOSE arriving after its own ABORT reserves nothing. */
		if (!recent_find(m, msg->proposal_id, now))
			recent_add(m, msg->proposal_id, commit ? FIN_COMMITTED : FIN_RELEASED,
			           MIG_R_NONE, "finished before its proposal arrived", now);
		return;
	}
	if (strcmp(r->source, msg->from) != 0)
		return; /* only the source finishes its proposal */
	release(m, r, commit ? FIN_COMMITTED : FIN_RELEASED, now,
	        commit ? "source committed: VM now counts in allocation"
	               : "source aborted the migration");
}

static void handle_renew(struct mig *m, const struct mig_msg *msg, uint64_t now)
{
	struct mig_res *r = res_find(m, msg->proposal_id);
	if (!r || strcmp(r->source, msg->from) != 0) {
		send_refuse(m, msg, MIG_R_UNKNOWN,
		            "no reservation for this proposal here (lease expired, finished, or "
		            "target restarted)");
		return;
	}
	r->last_renew = now;
	if (now + m->cfg.lease_ms > r->expires_at)
		r->expires_at = now + m->cfg.lease_ms;
	struct mig_msg a;
	msg_init(m, &a, MIG_RENEWED, r->source, r->id);
	a.lease_ms = m->cfg.lease_ms;
	a.stamp = msg->stamp;
	push_msg(m, &a);
}

bool mig_vm_arrived(struct mig *m, const char *uuid, uint64_t now)
{
	if (!uuid)
		return false;
	for (size_t i = 0; i < m->n_res; i++)
		if (strcmp(m->res[i].vm_uuid, uuid) == 0) {
			release(m, &m->res[i], FIN_COMMITTED, now,
			        "VM arrived: now counts in allocation");
			return true;
		}
	return false;
}

/* ------------------------------------------------------------------------ */
/* Source role                                                              */

static struct mig_out *out_find(struct mig *m, const char *id)
{
	for (size_t i = 0; i < m->n_out; i++)
		if (strcmp(m->out[i].id, id) == 0)
			return &m->out[i];
	return NULL;
}

static void out_remove(struct mig *m, struct mig_out *o)
{
	size_t i = (size_t)(o - m->out);
	m->out[i] = m->out[--m->n_out];
}

static void send_propose(struct mig *m, struct mig_out *o, uint64_t now)
{
	struct mig_msg p;
	msg_init(m, &p, MIG_PROPOSE, o->target, o->id);
	cpy(p.vm_name, sizeof(p.vm_name), o->vm_name);
	cpy(p.vm_uuid, sizeof(p.vm_uuid), o->vm_uuid);
	p.vcpus = o->vcpus;
	p.memory_kib = o->memory_kib;
	cpy(p.cpu_model, sizeof(p.cpu_model), m->cfg.cpu_model);
	p.stamp = now;
	push_msg(m, &p);
	o->next_send = now + m->cfg.propose_retry_ms;
}

int mig_propose(struct mig *m, const struct mig_vm *vm, const char *target, uint64_t now,
                char id_out[MIG_ID_MAX], enum mig_reason *why)
{
	enum mig_reason dummy;
	if (!why)
		why = &dummy;
	*why = MIG_R_BAD;
	if (!vm || !target || !target[0] || !fits_str(target, MIG_NAME_MAX) || !vm->name ||
	    !vm->name[0] || !fits_str(vm->name, MIG_NAME_MAX) || !vm->uuid || !vm->uuid[0] ||
	    !fits_str(vm->uuid, MIG_UUID_MAX) || vm->vcpus == 0 || vm->memory_kib == 0)
		return -EINVAL;
	if (strcmp(target, m->cfg.name) == 0) {
		*why = MIG_R_SELF;
		return -EINVAL;
	}
	for (size_t i = 0; i < m->n_out; i++)
		if (strcmp(m->out[i].vm_uuid, vm->uuid) == 0) {
			*why = MIG_R_DUPLICATE;
			return -EEXIST;
		}
	if (m->n_out >= m->cfg.max_outgoing) {
		*why = MIG_R_TOO_MANY;
		return -EBUSY;
	}
	*why = MIG_R_NONE;
	struct mig_out *o = &m->out[m->n_out++];
	memset(o, 0, sizeof(*o));
	snprintf(o->id, sizeof(o->id), "%s-%08x-%" PRIu64, m->cfg.name, m->id_salt,
	         ++m->id_counter);
	cpy(o->target, sizeof(o->target), target);
	cpy(o->vm_name, sizeof(o->vm_name), vm->name);
	cpy(o->vm_uuid, sizeof(o->vm_uuid), vm->uuid);
	o->vcpus = vm->vcpus;
	o->memory_kib = vm->memory_kib;
	o->state = MIG_OUT_PROPOSING;
	o->since = now;
	send_propose(m, o, now);
	if (id_out)
		cpy(id_out, MIG_ID_MAX, o->id);
	return 0;
}

/* Ends a negotiation that never got to migrate (refused, timed out, target
 * down) with MIG_EV_REFUSED. */
static void out_refused(struct mig *m, struct mig_out *o, enum mig_reason reason, const char *text)
{
	struct mig_event *e = push_event(m, MIG_EV_REFUSED, o->id, o->target,
	                                 "%s refused %s (proposal %.*s): %s (%s)", o->target,
	                                 o->vm_name, 80, o->id, mig_reason_name(reason), text);
	e->reason = reason;
	ev_vm_out(e, o);
	out_remove(m, o);
}

static void lease_lost(struct mig *m, struct mig_out *o, enum mig_reason reason, const char *text)
{
	if (o->lease_lost)
		return;
	o->lease_lost = true;
	o->lease_until = 0;
	struct mig_event *e = push_event(m, MIG_EV_LEASE_LOST, o->id, o->target,
	                                 "lease on %s for %s lost (%s): abort the migration now",
	                                 o->target, o->vm_name, text);
	e->reason = reason;
	ev_vm_out(e, o);
}

/* A lease answered for a message we sent at `stamp` (our clock). */
static void lease_extend(struct mig *m, struct mig_out *o, const struct mig_msg *msg, uint64_t now)
{
	if (o->lease_lost || msg->stamp < o->since || msg->stamp > now || msg->lease_ms == 0)
		return;
	uint32_t lease = msg->lease_ms;
	if (lease <= m->cfg.lease_guard_ms)
		return;
	uint64_t until = msg->stamp + lease - m->cfg.lease_guard_ms;
	if (until > o->lease_until)
		o->lease_until = until;
}

static void handle_answer(struct mig *m, const struct mig_msg *msg, uint64_t now)
{
	struct mig_out *o = out_find(m, msg->proposal_id);
	if (!o || strcmp(o->target, msg->from) != 0) {
		/* An ACCEPT for something we gave up on: release it now rather
		 * than at lease expiry. */
		if (!o && msg->type == MIG_ACCEPT)
			send_simple(m, MIG_ABORT, msg->from, msg->proposal_id);
		return;
	}
	switch (msg->type) {
	case MIG_ACCEPT:
		if (o->state == MIG_OUT_PROPOSING) {
			o->state = MIG_OUT_MIGRATING;
			o->accepted_at = now;
			o->next_send = now + m->cfg.renew_interval_ms;
			lease_extend(m, o, msg, now);
			struct mig_event *e =
			    push_event(m, MIG_EV_GO, o->id, o->target,
			               "%s accepted %s (proposal %.*s, lease %u ms): migrate now",
			               o->target, o->vm_name, 80, o->id, msg->lease_ms);
			ev_vm_out(e, o);
			if (o->lease_until <= now) /* a stamp we cannot trust: no lease */
				lease_lost(m, o, MIG_R_TIMEOUT, "accepted too late to use");
		} else {
			lease_extend(m, o, msg, now);
		}
		break;
	case MIG_RENEWED:
		if (o->state == MIG_OUT_MIGRATING)
			lease_extend(m, o, msg, now);
		break;
	case MIG_REFUSE:
		if (o->state == MIG_OUT_PROPOSING)
			out_refused(m, o, msg->reason, msg->reason_text);
		else if (msg->reason == MIG_R_UNKNOWN)
			/* the answer to a RENEW: the target has no reservation.
			 * Other refusals while migrating answer a stale duplicate
			 * PROPOSE (e.g. "already finished" after the VM arrived). */
			lease_lost(m, o, msg->reason, msg->reason_text);
		break;
	default:
		break;
	}
}

static void out_finish(struct mig *m, struct mig_out *o, bool commit, const char *why)
{
	send_simple(m, commit ? MIG_COMMIT : MIG_ABORT, o->target, o->id);
	struct mig_event *e =
	    push_event(m, MIG_EV_FINISHED, o->id, o->target, "%s %s to %s (proposal %.*s): %s",
	               commit ? "committed" : "aborted", o->vm_name, o->target, 80, o->id, why);
	e->ok = commit;
	ev_vm_out(e, o);
	out_remove(m, o);
}

int mig_migration_done(struct mig *m, const char *proposal_id, enum mig_outcome outcome,
                       uint64_t now)
{
	struct mig_out *o = proposal_id ? out_find(m, proposal_id) : NULL;
	if (!o)
		return -ENOENT;
	if (o->state != MIG_OUT_MIGRATING)
		return -EINVAL;
	switch (outcome) {
	case MIG_DONE_OK:
		out_finish(m, o, true, "migration succeeded");
		break;
	case MIG_DONE_LANDED_ANYWAY:
		out_finish(m, o, true, "libvirt reported failure but the VM runs on the target");
		break;
	default:
		out_finish(m, o, false, "migration failed; VM stays on the source");
		break;
	}
	return 0;
}

int mig_cancel(struct mig *m, const char *proposal_id, uint64_t now)
{
	struct mig_out *o = proposal_id ? out_find(m, proposal_id) : NULL;
	if (!o)
		return -ENOENT;
	out_finish(m, o, false, "cancelled by the operator");
	return 0;
}

void mig_peer_down(struct mig *m, const char *name, uint64_t now)
{
	if (!name)
		return;
	for (size_t i = 0; i < m->n_out;) {
		struct mig_out *o = &m->out[i];
		if (strcmp(o->target, name) != 0) {
			i++;
			continue;
		}
		if (o->state == MIG_OUT_PROPOSING) {
			out_refused(m, o, MIG_R_PEER_DOWN, "target is down (membership)");
			continue; /* slot i now holds another entry */
		}
		lease_lost(m, o, MIG_R_PEER_DOWN, "target is down (membership)");
		i++;
	}
}

/* ------------------------------------------------------------------------ */
/* Driving                                                                  */

int mig_handle_message(struct mig *m, const struct mig_msg *msg, uint64_t now)
{
	if (!msg || (unsigned)msg->type >= MIG_MSG_TYPES ||
	    !terminated(msg->from, sizeof(msg->from)) || !terminated(msg->to, sizeof(msg->to)) ||
	    !terminated(msg->proposal_id, sizeof(msg->proposal_id)) ||
	    !terminated(msg->vm_name, sizeof(msg->vm_name)) ||
	    !terminated(msg->vm_uuid, sizeof(msg->vm_uuid)) ||
	    !terminated(msg->cpu_model, sizeof(msg->cpu_model)) ||
	    !terminated(msg->reason_text, sizeof(msg->reason_text)) ||
	    (unsigned)msg->reason >= MIG_REASONS || !msg->from[0] || !msg->proposal_id[0] ||
	    strcmp(msg->to, m->cfg.name) != 0 ||
	    /* a host never negotiates with itself over the network: answering
	     * would address a message to ourselves (found by fuzz_mig) */
	    strcmp(msg->from, m->cfg.name) == 0)
		return -EINVAL;
	switch (msg->type) {
	case MIG_PROPOSE:
		handle_propose(m, msg, now);
		break;
	case MIG_RENEW:
		handle_renew(m, msg, now);
		break;
	case MIG_COMMIT:
	case MIG_ABORT:
		handle_finish(m, msg, now);
		break;
	case MIG_ACCEPT:
	case MIG_REFUSE:
	case MIG_RENEWED:
		handle_answer(m, msg, now);
		break;
	}
	return 0;
}

int mig_handle_timer(struct mig *m, uint64_t now)
{
	for (size_t i = 0; i < m->n_res;) {
		struct mig_res *r = &m->res[i];
		if (r->expires_at > now) {
			i++;
			continue;
		}
		char why[MIG_TEXT_MAX];
		snprintf(why, sizeof(why),
		         "lease expired: no word from the source for %" PRIu64
		         " ms (crashed, cut off, or gave up)",
		         now - r->last_renew);
		release(m, r, FIN_EXPIRED, now, why);
	}
	for (size_t i = 0; i < m->n_out;) {
		struct mig_out *o = &m->out[i];
		if (o->state == MIG_OUT_PROPOSING) {
			if (now >= o->since + m->cfg.propose_timeout_ms) {
				char text[MIG_TEXT_MAX];
				snprintf(text, sizeof(text),
				         "no answer within %u ms: target unreachable",
				         m->cfg.propose_timeout_ms);
				/* in case its ACCEPT was lost: release it now */
				send_simple(m, MIG_ABORT, o->target, o->id);
				out_refused(m, o, MIG_R_TIMEOUT, text);
				continue;
			}
			if (now >= o->next_send)
				send_propose(m, o, now);
		} else if (!o->lease_lost) {
			if (now >= o->lease_until) {
				char text[MIG_TEXT_MAX];
				snprintf(text, sizeof(text),
				         "no RENEWED from %s in time; its lease ends within %u ms",
				         o->target, m->cfg.lease_guard_ms);
				lease_lost(m, o, MIG_R_TIMEOUT, text);
			} else if (now >= o->next_send) {
				struct mig_msg r;
				msg_init(m, &r, MIG_RENEW, o->target, o->id);
				r.stamp = now;
				push_msg(m, &r);
				o->next_send = now + m->cfg.renew_interval_ms;
			}
		}
		i++;
	}
	return 0;
}

uint64_t mig_next_deadline(const struct mig *m)
{
	uint64_t d = UINT64_MAX;
	for (size_t i = 0; i < m->n_res; i++)
		if (m->res[i].expires_at < d)
			d = m->res[i].expires_at;
	for (size_t i = 0; i < m->n_out; i++) {
		const struct mig_out *o = &m->out[i];
		uint64_t a = UINT64_MAX, b = UINT64_MAX;
		if (o->state == MIG_OUT_PROPOSING) {
			a = o->since + m->cfg.propose_timeout_ms;
			b = o->next_send;
		} else if (!o->lease_lost) {
			a = o->lease_until;
			b = o->next_send;
		}
		if (a < d)
			d = a;
		if (b < d)
			d = b;
	}
	return d;
}

bool mig_pop_output(struct mig *m, struct mig_msg *out)
{
	return mv_queue_pop(&m->outq, out, sizeof(*out));
}

bool mig_pop_event(struct mig *m, struct mig_event *out)
{
	return mv_queue_pop(&m->evq, out, sizeof(*out));
}

/* ------------------------------------------------------------------------ */
/* Listings                                                                 */

size_t mig_in_count(const struct mig *m)
{
	return m->n_res;
}

void mig_in_at(const struct mig *m, size_t i, struct mig_in_info *out)
{
	memset(out, 0, sizeof(*out));
	if (i >= m->n_res)
		return;
	const struct mig_res *r = &m->res[i];
	cpy(out->proposal_id, sizeof(out->proposal_id), r->id);
	cpy(out->source, sizeof(out->source), r->source);
	cpy(out->vm_name, sizeof(out->vm_name), r->vm_name);
	cpy(out->vm_uuid, sizeof(out->vm_uuid), r->vm_uuid);
	out->vcpus = r->vcpus;
	out->memory_kib = r->memory_kib;
	out->since = r->since;
	out->last_renew = r->last_renew;
	out->expires_at = r->expires_at;
}

size_t mig_out_count(const struct mig *m)
{
	return m->n_out;
}

void mig_out_at(const struct mig *m, size_t i, struct mig_out_info *out)
{
	memset(out, 0, sizeof(*out));
	if (i >= m->n_out)
		return;
	const struct mig_out *o = &m->out[i];
	cpy(out->proposal_id, sizeof(out->proposal_id), o->id);
	cpy(out->target, sizeof(out->target), o->target);
	cpy(out->vm_name, sizeof(out->vm_name), o->vm_name);
	cpy(out->vm_uuid, sizeof(out->vm_uuid), o->vm_uuid);
	out->vcpus = o->vcpus;
	out->memory_kib = o->memory_kib;
	out->state = o->state;
	out->since = o->since;
	out->accepted_at = o->accepted_at;
	out->lease_until = o->lease_until;
	out->lease_lost = o->lease_lost;
}

/* ------------------------------------------------------------------------ */
/* Target choice                                                            */

struct mig_cand {
	size_t idx;
	uint64_t mem_after;
	uint32_t cpu_after;
};

static bool cand_better(const struct mig_cand *a, const struct mig_cand *b,
                        const struct placement_host *hosts)
{
	if (a->mem_after != b->mem_after)
		return a->mem_after > b->mem_after;
	if (a->cpu_after != b->cpu_after)
		return a->cpu_after > b->cpu_after;
	return strcmp(hosts[a->idx].name, hosts[b->idx].name) < 0;
}

int mig_choose_target(struct mig *m, const struct placement_host *hosts, size_t n,
                      const struct placement_request *req, const char *const *exclude,
                      size_t n_exclude, char *why, size_t whylen)
{
	uint32_t top = m->cfg.choose_top;
	struct mig_cand best[MIG_LIMIT_MAX];
	if (top > MIG_LIMIT_MAX)
		top = MIG_LIMIT_MAX;
	size_t nb = 0, used = 0;
	bool first = true;
	if (why && whylen > 0) {
		int w = snprintf(why, whylen,
		                 "no host has room for %u vCPUs / %" PRIu64 " MiB:", req->vcpus,
		                 mib(req->memory_kib));
		used = w > 0 ? (size_t)w : 0;
	}
	for (size_t i = 0; i < n; i++) {
		const struct placement_host *h = &hosts[i];
		char reason[96];
		bool excluded = false;
		for (size_t k = 0; k < n_exclude && !excluded; k++)
			excluded = exclude[k] && h->name && strcmp(exclude[k], h->name) == 0;
		if (!h->name || strcmp(h->name, m->cfg.name) == 0)
			snprintf(reason, sizeof(reason), "is this host");
		else if (excluded)
			snprintf(reason, sizeof(reason), "already tried");
		else if (!h->alive)
			snprintf(reason, sizeof(reason), "not alive");
		else if (!h->healthy)
			snprintf(reason, sizeof(reason), "libvirt unreachable");
		else if (h->draining)
			snprintf(reason, sizeof(reason), "draining");
		else if (!placement_fits(h, req, reason, sizeof(reason)))
			;
		else {
			uint64_t mcap = placement_memory_capacity_kib(h);
			uint32_t vcap = placement_vcpu_capacity(h);
			struct mig_cand c = {
			    .idx = i,
			    .mem_after = mcap - h->memory_allocated_kib - req->memory_kib,
			    .cpu_after = vcap - h->vcpus_allocated - req->vcpus,
			};
			/* insertion into the sorted top list */
			size_t pos = nb;
			while (pos > 0 && cand_better(&c, &best[pos - 1], hosts))
				pos--;
			if (pos < top) {
				size_t last = nb < top ? nb : top - 1;
				memmove(&best[pos + 1], &best[pos], (last - pos) * sizeof(best[0]));
				best[pos] = c;
				if (nb < top)
					nb++;
			}
			continue;
		}
		if (why && used < whylen) {
			int w = snprintf(why + used, whylen - used, "%s %s %s", first ? "" : ";",
			                 h->name ? h->name : "?", reason);
			if (w > 0)
				used += (size_t)w;
			first = false;
		}
	}
	if (nb == 0) {
		if (why && whylen > 0 && n == 0)
			snprintf(why, whylen, "no hosts known");
		return -1;
	}
	if (why && whylen > 0)
		why[0] = '\0';
	return (int)best[mv_xoshiro_below(m->rng, (uint32_t)nb)].idx;
}
