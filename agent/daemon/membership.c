/*
 * membership.c — the daemon's side of the membership core (membership.h).
 *
 *   peer frame or datagram (swim body) --> swim_handle_message(now) --> membership_pump()
 *   timer (armed at swim_next_deadline) --> swim_handle_timer(now) --> pump
 *   pump: swim_pop_output --> swim_codec_encode_frame --> net_send_to(addr)
 *         (PING, ACK, PING_REQ, NACK: core_driver_send_dgram, a sealed UDP
 *         datagram when a key exists, else TLS; push-pull: TLS)
 *         swim_pop_event  --> one log line with the cause, then each listener
 *   leave: swim_leave --> poll swim_leave_done every 50 ms, bounded by
 *          leave_timeout_ms --> the agent's `left` callback, once
 *   incarnation: data_dir/incarnation holds the highest we may have
 *          announced. Written (temporary file, fsync, rename) at start
 *          before we serve, and whenever the core's incarnation rose
 *          (a refutation, a new incarnation the failover core asked for)
 *          on the hypervisor worker's journal lane, so a slow disk never
 *          holds the loop; until that write completed the pump sends no
 *          SWIM message (they stay queued in the core: each may carry
 *          the new incarnation), so an incarnation is durable before it
 *          is announced and a restart after a crash starts above anything
 *          the cluster heard from us. Events are still handled meanwhile.
 *          The hold is bounded: after half a probe timeout (a disk slower
 *          than that; the write may also queue behind the failover
 *          journal's on that lane) the messages leave anyway, logged, as
 *          they always did before this hold — a SWIM silence longer than
 *          a probe timeout would get this host suspected, refute again,
 *          and write again. Without a worker the write runs on the loop.
 *
 * Invariants: the service's state (struct membership) is private to this
 * file; the core exists from membership_start to membership_free; the
 * four timers are initialized together and closed together
 * (timers_on), and a leave, once started, stays started.
 */
#include "membership.h"
#include "agent.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>
#include <unistd.h>

#include "core_driver.h"
#include "fileio.h"
#include "hvwork.h"
#include "log.h"
#include "swim_codec.h"
#include "tls_claim.h"

#define MEMBERSHIP_LISTENERS_MAX 8
static membership_listener_fn listeners[MEMBERSHIP_LISTENERS_MAX];
static size_t n_listeners;

#define MEMBERSHIP_LEAVE_POLL_MS 50

struct membership {
	struct swim *core;
	uv_timer_t core_timer;     /* at swim_next_deadline */
	uv_timer_t leave_poll;     /* checks swim_leave_done() while leaving */
	uv_timer_t leave_deadline; /* leave_timeout_ms after the leave started */
	bool timers_on;            /* the four initialized, not yet closed */
	uv_timer_t inc_hold;       /* bounds how long an incarnation write holds output */
	bool leaving;              /* a graceful leave started */
	bool leave_requested;      /* by an RPC; the agent starts it after the answer */
	membership_left_fn on_left;
	uint64_t inc_saved;                 /* the incarnation last written (or tried) */
	struct membership_inc_job *inc_job; /* the write in flight: SWIM output waits */
	bool inc_hold_over;                 /* ... no longer: it took longer than the bound */
	uint64_t inc_held;                  /* the incarnation whose announcement the hold bounds */
	uint64_t inc_hold_until;            /* ... until then (loop time, ms) */
};

/* A write of data_dir/incarnation on the worker's journal lane. */
struct membership_inc_job {
	struct hvwork_job w;
	struct agent *a;
	char path[4096];
	char text[32];
	size_t len;
	uint64_t inc;
	int rc;
};

int membership_add_listener(membership_listener_fn fn)
{
	for (size_t i = 0; i < n_listeners; i++)
		if (listeners[i] == fn)
			return 0;
	if (n_listeners == MEMBERSHIP_LISTENERS_MAX)
		return -ENOSPC;
	listeners[n_listeners++] = fn;
	return 0;
}

/* The incarnation survives restarts in data_dir, so a restarted node starts
 * above anything its peers remember and needs no refutation round. */
static uint64_t membership_read_incarnation(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/incarnation", dir);
	FILE *f = fopen(path, "r");
	if (f == NULL)
		return 0;
	unsigned long long v = 0;
	if (fscanf(f, "%llu", &v) != 1)
		v = 0;
	fclose(f);
	if (v >= SWIM_INCARNATION_MAX) {
		MV_WARN("swim", "saved incarnation out of range path=%s incarnation=%llu", path, v);
		v = SWIM_INCARNATION_MAX - 1;
	}
	return (uint64_t)v;
}

static void membership_inc_written(const char *path, int rc)
{
	if (rc < 0)
		MV_WARN("swim", "cannot save incarnation path=%s error=\"%s\"", path,
		        strerror(-rc));
}

static void membership_write_incarnation(const char *dir, uint64_t inc)
{
	char path[4096], text[32];
	snprintf(path, sizeof(path), "%s/incarnation", dir);
	int n = snprintf(text, sizeof(text), "%llu\n", (unsigned long long)inc);
	membership_inc_written(path, mv_file_write_durable(path, text, (size_t)n));
}

static void membership_inc_work(struct hvwork_job *w)
{
	struct membership_inc_job *j = w->data;
	j->rc = mv_file_write_durable(j->path, j->text, j->len);
}

static void membership_inc_done(struct hvwork_job *w, int status)
{
	struct membership_inc_job *j = w->data;
	struct agent *a = j->a;
	if (status == 0)
		membership_inc_written(j->path, j->rc);
	struct membership *ms = a->membership;
	bool live = ms != NULL && !a->stopping;
	if (ms != NULL) {
		ms->inc_job = NULL;
		ms->inc_hold_over = false;
		if (ms->timers_on)
			uv_timer_stop(&ms->inc_hold);
	}
	free(j);
	if (live)
		membership_pump(a); /* what waited for the write (or the next one) */
}

static uint64_t membership_inc_hold_ms(const struct agent *a)
{
	uint64_t ms = a->opt.swim.probe_timeout_ms / 2;
	return ms > 0 ? ms : 250;
}

/* The write is slower than the bound: what waited leaves (said once per
 * rise). */
static void membership_on_inc_hold(uv_timer_t *t)
{
	struct agent *a = t->data;
	struct membership *ms = a->membership;
	if (ms == NULL || ms->inc_job == NULL || a->stopping)
		return;
	ms->inc_hold_over = true;
	MV_WARN("swim",
	        "incarnation not on disk after %" PRIu64 " ms: announced before it is "
	        "incarnation=%" PRIu64 " cause=\"a slow disk; the write goes on\"",
	        membership_inc_hold_ms(a), ms->inc_held);
	membership_pump(a);
}

/* Holds SWIM output for incarnation inc (a write of it, or of an older one,
 * in flight): a rise not held before is held for the bound from now, one
 * held before only for what is left of its bound (none left: not held). */
static void membership_inc_hold(struct agent *a, uint64_t inc)
{
	struct membership *ms = a->membership;
	uint64_t now = uv_now(a->loop), left = membership_inc_hold_ms(a);
	if (inc > ms->inc_held) {
		ms->inc_held = inc;
		ms->inc_hold_until = now + left;
	} else {
		left = ms->inc_hold_until > now ? ms->inc_hold_until - now : 0;
	}
	ms->inc_hold_over = left == 0;
	if (ms->timers_on) {
		if (left > 0)
			uv_timer_start(&ms->inc_hold, membership_on_inc_hold, left, 0);
		else
			uv_timer_stop(&ms->inc_hold);
	}
}

/* Makes the core's incarnation durable if it rose since the last write:
 * true while a write is in flight (then no SWIM message may leave). A
 * failed write is logged and not retried (as before: the next rise writes
 * again; at start the agent reads what the file holds). */
static bool membership_inc_busy(struct agent *a)
{
	struct membership *ms = a->membership;
	uint64_t inc = swim_incarnation(ms->core);
	if (ms->inc_job != NULL) {
		/* a rise while an older write is in flight: its announcement
		 * waits too (for that write, then its own), bounded from now */
		if (inc > ms->inc_held)
			membership_inc_hold(a, inc);
		return !ms->inc_hold_over;
	}
	if (inc <= ms->inc_saved)
		return false;
	ms->inc_saved = inc;
	struct membership_inc_job *j = a->hv != NULL ? calloc(1, sizeof(*j)) : NULL;
	if (j != NULL) {
		j->a = a;
		j->inc = inc;
		snprintf(j->path, sizeof(j->path), "%s/incarnation", a->opt.data_dir);
		j->len =
		    (size_t)snprintf(j->text, sizeof(j->text), "%llu\n", (unsigned long long)inc);
		j->w.work = membership_inc_work;
		j->w.done = membership_inc_done;
		j->w.data = j;
		j->w.what = "incarnation";
		if (hvwork_submit(a->hv, HVWORK_JOURNAL, &j->w) == 0) {
			ms->inc_job = j;
			membership_inc_hold(a, inc);
			return !ms->inc_hold_over;
		}
		free(j);
	}
	/* no worker, or it cannot take the job: written here, as before */
	membership_write_incarnation(a->opt.data_dir, inc);
	return false;
}

static void membership_log_event(struct agent *a, const struct swim_event *e)
{
	char qc[512], qn[96];
	const char *name = mv_log_quote(qn, sizeof(qn), e->name);
	const char *cause = mv_log_quote(qc, sizeof(qc), e->cause ? e->cause : "");
	switch (e->type) {
	case SWIM_EV_MEMBER_JOINED:
		MV_INFO("swim", "member joined name=%s addr=%s incarnation=%" PRIu64 " cause=%s",
		        name, e->addr, e->incarnation, cause);
		break;
	case SWIM_EV_MEMBER_SUSPECT:
		MV_WARN("swim", "member suspect name=%s incarnation=%" PRIu64 " cause=%s", name,
		        e->incarnation, cause);
		break;
	case SWIM_EV_MEMBER_ALIVE:
		MV_INFO("swim", "member alive name=%s incarnation=%" PRIu64 " cause=%s", name,
		        e->incarnation, cause);
		break;
	case SWIM_EV_MEMBER_DEAD:
		MV_WARN_ALWAYS(
		    "swim", "member dead name=%s incarnation=%" PRIu64 " confirmations=%u cause=%s",
		    name, e->incarnation, e->confirmations, cause);
		break;
	case SWIM_EV_MEMBER_LEFT:
		MV_INFO("swim", "member left name=%s incarnation=%" PRIu64 " cause=%s", name,
		        e->incarnation, cause);
		break;
	case SWIM_EV_MEMBER_REAPED:
		MV_INFO("swim", "member reaped name=%s cause=%s", name, cause);
		break;
	case SWIM_EV_MEMBER_ADDR_CHANGED:
		MV_INFO("swim",
		        "member address changed name=%s addr=%s incarnation=%" PRIu64 " cause=%s",
		        name, e->addr, e->incarnation, cause);
		break;
	case SWIM_EV_SELF_REFUTED:
		/* (made durable by the pump before anything announces it: a
		 * restart after a crash starts above it, and above anything the
		 * failover core fenced: it ends incarnations on purpose) */
		MV_WARN("swim", "new incarnation of ours incarnation=%" PRIu64 " cause=%s",
		        e->incarnation, cause);
		break;
	case SWIM_EV_JOINED_CLUSTER:
		MV_INFO("swim", "joined cluster cause=%s", cause);
		break;
	case SWIM_EV_JOIN_FAILED:
		MV_WARN("swim", "join attempt failed, will retry cause=%s", cause);
		break;
	case SWIM_EV_LOCAL_HEALTH:
		MV_INFO("swim", "local health changed score=%u cause=%s", e->local_health, cause);
		break;
	case SWIM_EV_CLAIM_REFUSED: /* rate-limited by the core */
		MV_WARN("swim", "claim refused name=%s incarnation=%" PRIu64 " cause=%s", name,
		        e->incarnation, cause);
		break;
	}
}

static void membership_on_timer(uv_timer_t *t);

/* ---- signed ALIVE claims (issue 13; swim.c, A HOST SPEAKS ONLY FOR ITSELF) ---- */

#define MEMBERSHIP_CLAIM_KIND "alive"
/* A LEFT, claimed as (name, incarnation | SWIM_LEFT_CLAIM): a full proof,
 * signature and certificate (tls_claim.h), so that a member that never
 * learned the leaver's certificate checks it too. A host that leaves a
 * second after it joined reached peers that held no record of it yet (so
 * no certificate): with a bare signature they refused its relayed LEFT
 * and found it dead instead (the reverted a4d4aa5). About 540 bytes with
 * a P-256 certificate: it still rides in one datagram (test_tls prints
 * the size); a larger one goes over TLS (core_driver_send_dgram). */
#define MEMBERSHIP_LEFT_KIND "left"

/* The claim the core's (name, inc) stands for: ("left", name, incarnation)
 * when inc carries SWIM_LEFT_CLAIM, else ("alive", name, inc). */
static struct tls_claim membership_claim(const char *name, uint64_t inc)
{
	bool left = (inc & SWIM_LEFT_CLAIM) != 0;
	struct tls_claim c = {left ? MEMBERSHIP_LEFT_KIND : MEMBERSHIP_CLAIM_KIND,
	                      name,
	                      inc & ~SWIM_LEFT_CLAIM,
	                      0,
	                      NULL,
	                      0};
	return c;
}

/* Our (name, incarnation), signed with our node key: the bare signature
 * (72 bytes at most with P-256), made once per incarnation change; our
 * LEFT's full proof once per leave. */
static int membership_alive_sign(void *ctx, const char *name, uint64_t inc, uint8_t *out,
                                 size_t cap)
{
	struct agent *a = ctx;
	bool left = (inc & SWIM_LEFT_CLAIM) != 0;
	struct tls_claim c = membership_claim(name, inc);
	int n = left ? tls_claim_sign(a->tls_server, &c, out, cap)
	             : tls_claim_sign_bare(a->tls_server, &c, out, cap);
	if (n < 0)
		MV_WARN("swim", "cannot sign our %s at incarnation %" PRIu64 ": %s", c.kind, c.a,
		        strerror(-n));
	return n;
}

static membership_signs_no_left_fn signs_no_left;

void membership_set_signs_no_left(membership_signs_no_left_fn fn)
{
	signs_no_left = fn;
}

/* A raise of member `name` to inc: checked with the certificate its
 * node-state record proofs taught us; a LEFT with the certificate its
 * proof carries (the reason of a refusal is in the core's rate-limited
 * "claim refused" line; the detail at debug level). */
static int membership_alive_verify(void *ctx, const char *name, uint64_t inc, const uint8_t *proof,
                                   size_t len)
{
	struct agent *a = ctx;
	struct tls_claim_cache *cc = a->claims; /* every host's record proof teaches it
	                                         * the host's certificate */
	if (cc == NULL)
		return -ENOKEY;
	struct tls_claim c = membership_claim(name, inc);
	if ((inc & SWIM_LEFT_CLAIM) != 0 && len == 0)
		return signs_no_left != NULL && signs_no_left(a, name, inc & ~SWIM_LEFT_CLAIM)
		           ? 0
		           : -EACCES;
	char why[256];
	uint64_t now = uv_now(a->loop);
	/* a proof of leaving carries its certificate: checked against the CA
	 * store (and CRL) whether or not we met the leaver */
	int rc =
	    (inc & SWIM_LEFT_CLAIM) != 0
		? tls_claim_verify(cc, a->tls_server, &c, proof, len, now, why, sizeof(why))
		: tls_claim_verify_bare(cc, a->tls_server, &c, proof, len, now, why, sizeof(why));
	if (rc < 0)
		MV_DEBUG("swim", "%s claim of %s at %" PRIu64 " not verified: %s", c.kind, name,
		         c.a, why);
	return rc;
}

struct swim *membership_swim(const struct agent *a)
{
	return a->membership != NULL ? a->membership->core : NULL;
}

void membership_peer_refused(struct agent *a, const char *name)
{
	struct membership *ms = a->membership;
	if (ms == NULL || ms->core == NULL || a->stopping)
		return;
	if (swim_peer_refused(ms->core, name, uv_now(a->loop)) == 0)
		membership_pump(a);
}

void membership_pump(struct agent *a)
{
	struct membership *ms = a->membership;
	struct swim_msg m;
	/* while our new incarnation is being written, nothing leaves */
	while (!membership_inc_busy(a) && swim_pop_output(ms->core, &m)) {
		if (a->net == NULL)
			continue;
		uint8_t *frame = NULL;
		size_t len = 0;
		int rc = swim_codec_encode_frame(&m, &frame, &len);
		/* probes and their answers go as datagrams; push-pull (state
		 * transfer, large) stays on TLS */
		bool probe = m.type == SWIM_MSG_PING || m.type == SWIM_MSG_ACK ||
		             m.type == SWIM_MSG_PING_REQ || m.type == SWIM_MSG_NACK;
		(probe ? core_driver_send_dgram : core_driver_send)(
		    a, "swim", swim_msg_type_name(m.type), rc, frame, len, m.to_addr, m.to);
	}
	struct swim_event e;
	while (swim_pop_event(ms->core, &e)) {
		membership_log_event(a, &e);
		for (size_t i = 0; i < n_listeners; i++)
			listeners[i](a, &e);
	}
	core_driver_rearm(a, &ms->core_timer, membership_on_timer, swim_next_deadline(ms->core));
}

static void membership_on_timer(uv_timer_t *t)
{
	struct agent *a = t->data;
	swim_handle_timer(a->membership->core, uv_now(a->loop));
	membership_pump(a);
}

int membership_start(struct agent *a, char *err, size_t errlen)
{
	const struct agent_options *o = &a->opt;
	struct swim_config sc = o->swim;
	snprintf(sc.name, sizeof(sc.name), "%s", o->name);
	snprintf(sc.addr, sizeof(sc.addr), "%s", a->peer_addr);
	if (getrandom(&sc.seed, sizeof(sc.seed), 0) != (ssize_t)sizeof(sc.seed)) {
		struct timeval tv;
		gettimeofday(&tv, NULL);
		sc.seed =
		    ((uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec) ^ (uint64_t)getpid();
	}
	/* our ALIVE is signed and others' raises checked (an agent without TLS,
	 * as the in-process test fixtures run, has no key) */
	if (a->tls_server != NULL) {
		sc.alive_sign = membership_alive_sign;
		sc.alive_verify = membership_alive_verify;
		sc.claim_arg = a;
	}
	struct membership *ms = calloc(1, sizeof(*ms));
	if (ms == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	uint64_t inc = membership_read_incarnation(o->data_dir) + 1;
	ms->core = swim_new(&sc, inc, uv_now(a->loop));
	if (ms->core == NULL) {
		free(ms);
		snprintf(err, errlen, "invalid membership settings");
		return -EINVAL;
	}
	a->membership = ms;
	membership_write_incarnation(o->data_dir, inc); /* (before we serve) */
	ms->inc_saved = inc;
	uv_timer_t *timers[] = {&ms->core_timer, &ms->leave_poll, &ms->leave_deadline,
	                        &ms->inc_hold};
	for (size_t i = 0; i < sizeof(timers) / sizeof(timers[0]); i++) {
		uv_timer_init(a->loop, timers[i]);
		timers[i]->data = a;
	}
	ms->timers_on = true;
	return 0;
}

void membership_stop(struct agent *a)
{
	struct membership *ms = a->membership;
	if (ms == NULL || !ms->timers_on)
		return;
	uv_timer_stop(&ms->core_timer);
	uv_timer_stop(&ms->leave_poll);
	uv_timer_stop(&ms->leave_deadline);
	uv_timer_stop(&ms->inc_hold);
}

void membership_close(struct agent *a)
{
	struct membership *ms = a->membership;
	if (ms == NULL || !ms->timers_on)
		return;
	ms->timers_on = false;
	uv_close((uv_handle_t *)&ms->core_timer, NULL);
	uv_close((uv_handle_t *)&ms->leave_poll, NULL);
	uv_close((uv_handle_t *)&ms->leave_deadline, NULL);
	uv_close((uv_handle_t *)&ms->inc_hold, NULL);
}

void membership_free(struct agent *a)
{
	struct membership *ms = a->membership;
	if (ms == NULL)
		return;
	swim_free(ms->core);
	free(ms);
	a->membership = NULL;
}

void membership_save_incarnation(struct agent *a)
{
	if (a->membership != NULL)
		membership_write_incarnation(a->opt.data_dir,
		                             swim_incarnation(a->membership->core));
}

/* ---- graceful leave ------------------------------------------------------------------ */

/* The leave ended (confirmed or timed out): its timers stop, the agent
 * hears of it. */
static void membership_leave_ended(struct agent *a, bool confirmed)
{
	struct membership *ms = a->membership;
	uv_timer_stop(&ms->leave_poll);
	uv_timer_stop(&ms->leave_deadline);
	ms->on_left(a, confirmed);
}

static void membership_on_leave_poll(uv_timer_t *t)
{
	struct agent *a = t->data;
	if (swim_leave_done(a->membership->core))
		membership_leave_ended(a, true);
}

static void membership_on_leave_deadline(uv_timer_t *t)
{
	membership_leave_ended(t->data, false);
}

int membership_leave(struct agent *a, membership_left_fn on_left)
{
	struct membership *ms = a->membership;
	if (ms->leaving)
		return -EALREADY;
	ms->leaving = true;
	ms->on_left = on_left;
	swim_leave(ms->core, uv_now(a->loop));
	membership_pump(a);
	uv_timer_start(&ms->leave_poll, membership_on_leave_poll, MEMBERSHIP_LEAVE_POLL_MS,
	               MEMBERSHIP_LEAVE_POLL_MS);
	uv_timer_start(&ms->leave_deadline, membership_on_leave_deadline, a->opt.leave_timeout_ms,
	               0);
	return 0;
}

bool membership_leaving(const struct agent *a)
{
	return a->membership != NULL && a->membership->leaving;
}

bool membership_left(const struct agent *a)
{
	return membership_leaving(a) && swim_leave_done(a->membership->core);
}

void membership_request_leave(struct agent *a)
{
	a->membership->leave_requested = true;
}

bool membership_leave_requested(const struct agent *a)
{
	return a->membership != NULL && a->membership->leave_requested;
}
