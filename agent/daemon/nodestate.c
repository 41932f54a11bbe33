/*
 * nodestate.c — node-state gossip in the daemon (see nodestate.h).
 *
 * Publishing: every NODESTATE_REFRESH_MS, and at once when libvirt reports
 * a change, we rebuild our mv.NodeState and decide what it is worth
 * (nodestate_policy):
 *   - urgent, pushed to peers at once: its "significant" form (everything
 *     except load, free memory and the timestamp) differs from the last
 *     published, or free memory moved by more than 5% of the total since
 *     the last publication;
 *   - lazy, spread by anti-entropy: the load average moved past the
 *     thresholds of config section "state" (by more than load_step, or
 *     load_step_pct % of the value last published if larger) and
 *     NODESTATE_LAZY_MS passed since the last publication; or, when
 *     state.republish_s is set, anything differs and that long passed;
 *   - otherwise nothing is published.
 * Both thresholds are bands around the value last published, not fixed
 * grid lines, so a value that jitters (even across a round number) costs
 * nothing: a hysteresis. Every record a cluster publishes costs every node
 * its bytes, so a periodic republication costs each node N / period
 * records per second: with republish_s at 0 (the default) an idle cluster
 * publishes nothing and its state traffic stays flat in N.
 *
 * What the cluster's view promises: every field but load and free memory
 * is exact as of the last change (pushed within a few round trips); free
 * memory within 5% of the host's total, load within max(load_step,
 * load_step_pct % of it), as of the time the record was published
 * (updated_unix_ms); a host's liveness is membership's, never inferred from
 * the age of its record.
 *
 * Versioning: the record's incarnation is the agent's incarnation (it grows
 * on every start, see agent.c), its version counts publications within it.
 */
#include "nodestate.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/time.h>

#include "agent.h"
#include "core_driver.h"
#include "membership.h"
#include "envelope.h"
#include "log.h"
#include "meshvisor/nstate.h"
#include "ratelimit.h"
#include "state_codec.h"
#include "state_driver.h"
#include "tls_claim.h"

#define NODESTATE_REFRESH_MS 5000 /* re-read libvirt for slow-moving values */
#define NODESTATE_LAZY_MS 10000   /* minimum gap between load-only publications */
#define NODESTATE_FREE_MEM_STEP_PCT 5
#define NODESTATE_MAX_MIGRATIONS 16 /* recent moves gossiped per host */

#define NODESTATE_CONTRIBUTORS_MAX 4
static const struct nodestate_contributor *ns_contrib[NODESTATE_CONTRIBUTORS_MAX];
static size_t ns_n_contrib;

int nodestate_add_contributor(const struct nodestate_contributor *c)
{
	for (size_t i = 0; i < ns_n_contrib; i++)
		if (ns_contrib[i] == c)
			return 0;
	if (ns_n_contrib == NODESTATE_CONTRIBUTORS_MAX)
		return -ENOSPC;
	ns_contrib[ns_n_contrib++] = c;
	return 0;
}

static void nodestate_changed(struct agent *a)
{
	for (size_t i = 0; i < ns_n_contrib; i++)
		if (ns_contrib[i]->changed != NULL)
			ns_contrib[i]->changed(a);
}

static bool nodestate_vm_restarting(struct agent *a, const char *uuid)
{
	for (size_t i = 0; i < ns_n_contrib; i++)
		if (ns_contrib[i]->vm_restarting != NULL && ns_contrib[i]->vm_restarting(a, uuid))
			return true;
	return false;
}

/* The service's state; the agent holds only a pointer to it
 * (a->nodestate). */
struct nodestate {
	struct nstate *core;
	uv_timer_t core_timer;    /* the core's next deadline */
	uv_timer_t refresh_timer; /* re-read libvirt */
	bool timers_on;           /* both initialized (nodestate_close) */
	uint64_t incarnation;     /* of our last published record */
	uint64_t version;         /* ... and its version under that incarnation */
	uint8_t *sig, *full;      /* last published, significant / full form */
	size_t sig_len, full_len;
	struct nodestate_last last;     /* what the policy compares with */
	struct mv_ratelimit reject_rl;  /* "rejected state message": one per 10 s */
	struct tls_claim_cache *claims; /* checked signers' certificates */
	struct mv_ratelimit refuse_rl;  /* "refused node-state record": one per 10 s */
	const char *from;               /* sender of the message being handled */
};

/* ---- signed records (issue 13: a host speaks only for itself) ------------------ */

#define NODESTATE_CLAIM_KIND "state record"

static int nodestate_sign(void *ctx, const struct nstate_record *r, uint8_t *out, size_t cap)
{
	struct agent *a = ctx;
	struct tls_claim c = {NODESTATE_CLAIM_KIND, r->name, r->incarnation,
	                      r->version,           r->data, r->len};
	return tls_claim_sign(a->tls_server, &c, out, cap);
}

/* A record of another host that would be new or newer here: only with its
 * owner's valid proof. A refusal is logged, at most once per 10 s. */
static bool nodestate_verify(void *ctx, const struct nstate_record *r)
{
	struct agent *a = ctx;
	struct nodestate *s = a->nodestate;
	struct tls_claim c = {NODESTATE_CLAIM_KIND, r->name, r->incarnation,
	                      r->version,           r->data, r->len};
	char why[256];
	uint64_t now = uv_now(a->loop), held;
	if (tls_claim_verify(s->claims, a->tls_server, &c, r->proof, r->proof_len, now, why,
	                     sizeof(why)) == 0)
		return true;
	if (mv_ratelimit_allow(&s->refuse_rl, now, &held)) {
		char qn[96];
		MV_WARN("state",
		        "refused node-state record name=%s incarnation=%" PRIu64 " version=%" PRIu64
		        " from=%s reason=\"%s\" suppressed=%" PRIu64,
		        mv_log_quote(qn, sizeof(qn), r->name), r->incarnation, r->version,
		        s->from != NULL ? s->from : "?", why, held);
	}
	return false;
}

static int64_t nodestate_wall_ms(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

/* ---- core <-> network ----------------------------------------------------- */

static void nodestate_on_timer(uv_timer_t *t);

static void nodestate_pump(struct agent *a)
{
	struct nodestate *s = a->nodestate;
	struct nstate_msg m;
	while (nstate_pop_output(s->core, &m)) {
		if (a->net == NULL)
			continue;
		uint8_t *frame = NULL;
		size_t len = 0;
		int rc = state_codec_encode_frame(&m, &frame, &len);
		core_driver_send(a, "state", "state", rc, frame, len, m.to_addr, m.to);
	}
	struct nstate_event e;
	bool changed = false;
	while (nstate_pop_event(s->core, &e)) {
		MV_DEBUG("state", "%s name=%s incarnation=%" PRIu64 " version=%" PRIu64,
		         e.is_new_host ? "host state learned" : "host state updated", e.name,
		         e.incarnation, e.version);
		changed = true;
	}
	if (changed)
		nodestate_changed(a);
	core_driver_rearm(a, &s->core_timer, nodestate_on_timer, nstate_next_deadline(s->core));
}

static void nodestate_on_timer(uv_timer_t *t)
{
	struct agent *a = t->data;
	nstate_handle_timer(a->nodestate->core, uv_now(a->loop));
	nodestate_pump(a);
}

void nodestate_handle_envelope(struct agent *a, const Mv__Envelope *env)
{
	struct nstate_msg m;
	struct nstate_version *versions;
	struct nstate_record *records;
	const char *why;
	if (state_codec_decode(env, &m, &versions, &records, &why) < 0) {
		uint64_t held;
		if (mv_ratelimit_allow(&a->nodestate->reject_rl, uv_now(a->loop), &held))
			MV_WARN("state",
			        "rejected state message from=%s reason=\"%s\" suppressed=%" PRIu64,
			        env->from, why, held);
		return;
	}
	a->nodestate->from = env->from;
	if (nstate_handle_message(a->nodestate->core, &m, uv_now(a->loop)) < 0)
		MV_WARN("state", "state core rejected a message from=%s", env->from);
	a->nodestate->from = NULL;
	free(versions);
	free(records);
	nodestate_pump(a);
}

void nodestate_on_member_event(struct agent *a, const struct swim_event *e)
{
	/* the mapping is shared with the simulator (agent/wire/state_driver.c) */
	if (state_driver_member_event(a->nodestate->core, a->opt.name, e))
		nodestate_pump(a);
}

/* ---- building our record ------------------------------------------------------ */

static Mv__VmState nodestate_vm_state(enum virt_vm_state s)
{
	switch (s) {
	case VIRT_VM_RUNNING:
		return MV__VM_STATE__VM_RUNNING;
	case VIRT_VM_PAUSED:
		return MV__VM_STATE__VM_PAUSED;
	case VIRT_VM_SHUTOFF:
		return MV__VM_STATE__VM_SHUTOFF;
	case VIRT_VM_CRASHED:
		return MV__VM_STATE__VM_CRASHED;
	default:
		return MV__VM_STATE__VM_OTHER;
	}
}

struct nodestate_build {
	Mv__NodeState ns;
	Mv__VmInfo *vms;
	Mv__VmInfo **vm_ptrs;
	Mv__Label *labels;
	Mv__Label **label_ptrs;
	char label_buf[AGENT_MAX_LABELS][2][SWIM_NAME_MAX];
	char cpu_model[64];
	Mv__MigrationInfo migs[NODESTATE_MAX_MIGRATIONS];
	Mv__MigrationInfo *mig_ptrs[NODESTATE_MAX_MIGRATIONS];
};

/* Fills b from libvirt and the config. Strings point into b, libvirt's
 * cached inventory and the options: valid until the next virt_ call. */
static int nodestate_build(struct agent *a, struct nodestate_build *b)
{
	memset(b, 0, sizeof(*b));
	mv__node_state__init(&b->ns);
	const struct agent_options *o = &a->opt;
	const struct virt_health *vh = virt_health(a->virt);
	struct virt_host hi;
	memset(&hi, 0, sizeof(hi));
	if (vh->reachable)
		virt_host_info(a->virt, &hi);
	/* While libvirt is unreachable the VMs most likely still run: publish
	 * the last inventory seen, marked stale, rather than none at all. */
	size_t nvm = 0;
	const struct virt_vm *vms = virt_vms(a->virt, &nvm);

	b->ns.name = o->name;
	b->ns.rpc_addr = a->rpc_addr;
	b->ns.cpus = hi.cpus;
	b->ns.memory_kib = hi.memory_kib;
	b->ns.memory_reserved_kib = (uint64_t)o->memory_reserved_mib * 1024;
	b->ns.memory_free_kib = hi.free_kib;
	b->ns.cpu_overcommit = o->cpu_overcommit;
	b->ns.memory_overcommit = o->memory_overcommit;
	b->ns.libvirt_reachable = vh->reachable;
	b->ns.inventory_stale = !vh->reachable && nvm > 0;
	b->ns.inventory_unknown = vh->connects == 0;
	b->ns.libvirt_error = (char *)vh->error;
	b->ns.load1 = hi.have_load ? hi.load[0] : 0;
	b->ns.agent_version = MV_VERSION;
	b->ns.wire_rev = MV_WIRE_REV;
	b->ns.zone = o->zone ? o->zone : "";
	b->ns.rack = o->rack ? o->rack : "";
	snprintf(b->cpu_model, sizeof(b->cpu_model), "%s", hi.cpu_model);
	b->ns.cpu_model = b->cpu_model;

	if (o->n_labels > 0) {
		b->labels = calloc(o->n_labels, sizeof(*b->labels));
		b->label_ptrs = calloc(o->n_labels, sizeof(*b->label_ptrs));
		if (b->labels == NULL || b->label_ptrs == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < o->n_labels; i++) {
			const char *eq = strchr(o->labels[i], '=');
			size_t kl = (size_t)(eq - o->labels[i]);
			snprintf(b->label_buf[i][0], SWIM_NAME_MAX, "%.*s", (int)kl, o->labels[i]);
			snprintf(b->label_buf[i][1], SWIM_NAME_MAX, "%s", eq + 1);
			mv__label__init(&b->labels[i]);
			b->labels[i].key = b->label_buf[i][0];
			b->labels[i].value = b->label_buf[i][1];
			b->label_ptrs[i] = &b->labels[i];
		}
		b->ns.n_labels = o->n_labels;
		b->ns.labels = b->label_ptrs;
	}
	if (nvm > 0) {
		b->vms = calloc(nvm, sizeof(*b->vms));
		b->vm_ptrs = calloc(nvm, sizeof(*b->vm_ptrs));
		if (b->vms == NULL || b->vm_ptrs == NULL)
			return -ENOMEM;
		for (size_t i = 0; i < nvm; i++) {
			const struct virt_vm *v = &vms[i];
			Mv__VmInfo *p = &b->vms[i];
			mv__vm_info__init(p);
			p->name = (char *)v->name;
			p->uuid = (char *)v->uuid;
			p->state = nodestate_vm_state(v->state);
			p->vcpus = v->vcpus;
			p->memory_kib = v->memory_kib;
			p->ha = v->ha;
			p->priority = v->priority;
			p->owner_epoch = v->epoch;
			p->ha_group = (char *)v->group;
			p->desired = v->desired == VIRT_DESIRED_STOPPED
			                 ? MV__VM_DESIRED__VM_DESIRED_STOPPED
			                 : MV__VM_DESIRED__VM_DESIRED_RUNNING;
			/* stopped, but this host restarts it itself (VM-level HA) */
			p->restarting = v->ha && v->state != VIRT_VM_RUNNING &&
			                v->state != VIRT_VM_PAUSED &&
			                nodestate_vm_restarting(a, v->uuid);
			b->vm_ptrs[i] = p;
			if (v->state == VIRT_VM_RUNNING || v->state == VIRT_VM_PAUSED) {
				b->ns.vcpus_allocated += v->vcpus;
				b->ns.memory_allocated_kib += v->memory_kib;
			}
		}
		b->ns.n_vms = nvm;
		b->ns.vms = b->vm_ptrs;
	}
	size_t nm = 0;
	for (size_t i = 0; i < ns_n_contrib; i++) {
		if (ns_contrib[i]->fill != NULL)
			ns_contrib[i]->fill(a, &b->ns);
		if (ns_contrib[i]->list_migrations != NULL && nm < NODESTATE_MAX_MIGRATIONS)
			nm += ns_contrib[i]->list_migrations(a, b->migs + nm,
			                                     NODESTATE_MAX_MIGRATIONS - nm);
	}
	for (size_t i = 0; i < nm; i++)
		b->mig_ptrs[i] = &b->migs[i];
	b->ns.n_migrations = nm;
	b->ns.migrations = b->mig_ptrs;
	return 0;
}

static void nodestate_build_free(struct nodestate_build *b)
{
	free(b->vms);
	free(b->vm_ptrs);
	free(b->labels);
	free(b->label_ptrs);
}

static uint8_t *nodestate_pack(const Mv__NodeState *ns, size_t *len)
{
	*len = mv__node_state__get_packed_size(ns);
	uint8_t *buf = malloc(*len ? *len : 1);
	if (buf != NULL)
		mv__node_state__pack(ns, buf);
	return buf;
}

/* Packs the form of the record whose changes are worth pushing at once. */
static uint8_t *nodestate_pack_significant(Mv__NodeState *ns, size_t *len)
{
	Mv__NodeState s = *ns;
	s.load1 = 0;
	s.updated_unix_ms = 0;
	s.version = 0;
	s.memory_free_kib = 0; /* its own threshold: nodestate_policy */
	return nodestate_pack(&s, len);
}

enum nodestate_publish nodestate_policy(const struct agent_options *o,
                                        const struct nodestate_last *last, bool sig_changed,
                                        bool full_changed, double load1, uint64_t memory_kib,
                                        uint64_t free_kib, uint64_t now_ms)
{
	if (!last->any || sig_changed)
		return NODESTATE_URGENT;
	const struct nstate_threshold mem = {.abs_step = (double)memory_kib *
	                                                 NODESTATE_FREE_MEM_STEP_PCT / 100};
	if (memory_kib > 0 &&
	    nstate_threshold_crossed(&mem, (double)last->free_kib, (double)free_kib))
		return NODESTATE_URGENT;
	uint64_t since = now_ms - last->at_ms;
	const struct nstate_threshold load = {.abs_step = o->state_load_step,
	                                      .rel_step = o->state_load_step_pct / 100.0};
	if (since >= NODESTATE_LAZY_MS && nstate_threshold_crossed(&load, last->load1, load1))
		return NODESTATE_LAZY;
	if (o->state_republish_s > 0 && full_changed &&
	    since >= (uint64_t)o->state_republish_s * 1000)
		return NODESTATE_LAZY;
	return NODESTATE_KEEP;
}

static bool nodestate_same(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	return a != NULL && b != NULL && al == bl && memcmp(a, b, al) == 0;
}

void nodestate_refresh(struct agent *a)
{
	struct nodestate *s = a->nodestate;
	if (s == NULL || a->stopping)
		return;
	struct nodestate_build b;
	if (nodestate_build(a, &b) < 0) {
		nodestate_build_free(&b);
		MV_ERROR("state", "out of memory building our node state");
		return;
	}
	for (size_t i = 0; i < ns_n_contrib; i++)
		if (ns_contrib[i]->built != NULL)
			ns_contrib[i]->built(a, &b.ns);
	size_t sig_len, full_len;
	uint8_t *sig = nodestate_pack_significant(&b.ns, &sig_len);
	b.ns.version = 0;
	b.ns.updated_unix_ms = 0;
	uint8_t *full = nodestate_pack(&b.ns, &full_len);
	uint64_t now = uv_now(a->loop);
	enum nodestate_publish worth =
	    nodestate_policy(&a->opt, &s->last, !nodestate_same(sig, sig_len, s->sig, s->sig_len),
	                     !nodestate_same(full, full_len, s->full, s->full_len), b.ns.load1,
	                     b.ns.memory_kib, b.ns.memory_free_kib, now);
	bool urgent = worth == NODESTATE_URGENT;
	if (sig != NULL && full != NULL && worth != NODESTATE_KEEP) {
		s->version++;
		b.ns.incarnation = swim_incarnation(membership_swim(a));
		if (b.ns.incarnation != s->incarnation) {
			/* a refutation bumped our incarnation: versions restart under it */
			s->incarnation = b.ns.incarnation;
			s->version = 1;
		}
		b.ns.version = s->version;
		b.ns.updated_unix_ms = nodestate_wall_ms();
		size_t rec_len;
		uint8_t *rec = nodestate_pack(&b.ns, &rec_len);
		int rc = rec ? nstate_set_local(s->core, s->incarnation, s->version, rec, rec_len,
		                                urgent, now)
		             : -ENOMEM;
		free(rec);
		if (rc < 0) {
			MV_ERROR("state", "cannot publish our node state error=%s", strerror(-rc));
		} else {
			MV_DEBUG("state",
			         "published node state version=%" PRIu64 " urgent=%d vms=%zu",
			         s->version, urgent, b.ns.n_vms);
			free(s->sig);
			free(s->full);
			s->sig = sig;
			s->sig_len = sig_len;
			s->full = full;
			s->full_len = full_len;
			sig = full = NULL;
			s->last = (struct nodestate_last){.any = true,
			                                  .at_ms = now,
			                                  .load1 = b.ns.load1,
			                                  .free_kib = b.ns.memory_free_kib};
			nodestate_changed(a);
		}
	}
	free(sig);
	free(full);
	nodestate_build_free(&b);
	nodestate_pump(a);
}

static void nodestate_on_refresh_timer(uv_timer_t *t)
{
	struct agent *a = t->data;
	virt_check(a->virt);
	nodestate_refresh(a);
}

/* ---- views for RPC ---------------------------------------------------------- */

void nodestate_recheck_signers(struct agent *a)
{
	if (a->nodestate != NULL)
		tls_claim_cache_clear(a->nodestate->claims);
}

size_t nodestate_count(const struct agent *a)
{
	return a->nodestate ? nstate_count(a->nodestate->core) : 0;
}

static Mv__NodeState *nodestate_decode(const struct nstate_record *r)
{
	Mv__NodeState *ns = mv__node_state__unpack(NULL, r->len, r->data);
	if (ns == NULL)
		MV_WARN("state", "undecodable node state name=%s version=%" PRIu64, r->name,
		        r->version);
	return ns;
}

Mv__NodeState *nodestate_unpack_at(const struct agent *a, size_t i)
{
	struct nstate_record r;
	nstate_record_at(a->nodestate->core, i, &r);
	return nodestate_decode(&r);
}

Mv__NodeState *nodestate_unpack_name(const struct agent *a, const char *name)
{
	struct nstate_record r;
	if (a->nodestate == NULL || !nstate_find(a->nodestate->core, name, &r))
		return NULL;
	return nodestate_decode(&r);
}

/* Member `name` signs no LEFTs: its record (held only once its proof
 * verified, so its own word) publishes a protocol revision below
 * MV_WIRE_REV_LEFT_PROOF, as an agent older than proofs of leaving does
 * (membership.h) — and that record is of the life the LEFT ends (its
 * incarnation at least the LEFT's minus one: a member leaves at its
 * incarnation + 1). A record of an earlier life vouches for nothing: the
 * member may have been upgraded and restarted since, and a rogue's
 * unsigned LEFT of its new life must be checked. No record: we cannot
 * tell. */
static bool nodestate_signs_no_left(const struct agent *a, const char *name,
                                    uint64_t left_incarnation)
{
	Mv__NodeState *ns = nodestate_unpack_name(a, name);
	bool older = ns != NULL && ns->wire_rev < MV_WIRE_REV_LEFT_PROOF &&
	             ns->incarnation + 1 >= left_incarnation;
	if (ns != NULL)
		mv__node_state__free_unpacked(ns, NULL);
	return older;
}

/* ---- life ---------------------------------------------------------------------- */

int nodestate_start(struct agent *a, char *err, size_t errlen)
{
	if (membership_add_listener(nodestate_on_member_event) < 0) {
		snprintf(err, errlen, "cannot subscribe to membership events");
		return -ENOSPC;
	}
	membership_set_signs_no_left(nodestate_signs_no_left);
	struct nstate_config cfg;
	nstate_config_default(&cfg);
	snprintf(cfg.name, sizeof(cfg.name), "%s", a->opt.name);
	if (getrandom(&cfg.seed, sizeof(cfg.seed), 0) != (ssize_t)sizeof(cfg.seed))
		cfg.seed = (uint64_t)nodestate_wall_ms();
	/* every record is signed by its owner, and checked by all (an agent
	 * without TLS, as the in-process test fixtures run, has no key) */
	if (a->tls_server != NULL) {
		cfg.sign = nodestate_sign;
		cfg.verify = nodestate_verify;
		cfg.proof_ctx = a;
	}
	struct nodestate *s = calloc(1, sizeof(*s));
	if (s == NULL || (s->claims = tls_claim_cache_new()) == NULL ||
	    (s->core = nstate_new(&cfg, uv_now(a->loop))) == NULL) {
		if (s != NULL)
			tls_claim_cache_free(s->claims);
		free(s);
		snprintf(err, errlen, "cannot create the node-state core");
		return -ENOMEM;
	}
	a->nodestate = s;
	a->claims = s->claims; /* membership checks signed ALIVE claims with it */
	mv_ratelimit_init(&s->reject_rl, 10000);
	mv_ratelimit_init(&s->refuse_rl, 10000);
	uv_timer_init(a->loop, &s->core_timer);
	uv_timer_init(a->loop, &s->refresh_timer);
	s->core_timer.data = s->refresh_timer.data = a;
	s->timers_on = true;
	s->incarnation = swim_incarnation(membership_swim(a));
	s->version = 0;
	uv_timer_start(&s->refresh_timer, nodestate_on_refresh_timer, NODESTATE_REFRESH_MS,
	               NODESTATE_REFRESH_MS);
	nodestate_refresh(a);
	return 0;
}

void nodestate_close(struct agent *a)
{
	struct nodestate *s = a->nodestate;
	if (s == NULL || !s->timers_on)
		return;
	s->timers_on = false;
	uv_close((uv_handle_t *)&s->core_timer, NULL);
	uv_close((uv_handle_t *)&s->refresh_timer, NULL);
}

void nodestate_stop(struct agent *a)
{
	struct nodestate *s = a->nodestate;
	if (s == NULL)
		return;
	uv_timer_stop(&s->core_timer);
	uv_timer_stop(&s->refresh_timer);
}

void nodestate_free(struct agent *a)
{
	struct nodestate *s = a->nodestate;
	if (s == NULL)
		return;
	nstate_free(s->core);
	a->claims = NULL;
	tls_claim_cache_free(s->claims);
	free(s->sig);
	free(s->full);
	free(s);
	a->nodestate = NULL;
}
