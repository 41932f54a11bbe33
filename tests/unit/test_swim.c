/*
 * test_swim.c — the SWIM + Lifeguard membership core, driven by hand.
 *
 * Two kinds of test: a single core fed hand-made messages (precedence
 * rules, buddy system, awareness arithmetic, malformed input), and 2 to 4
 * cores joined by a tiny in-test pump (`struct net`: 1 ms latency, a
 * per-node "up" switch, virtual time in ms) for the end-to-end behaviours:
 * failure detection, refutation, join, leave, restart at a new address,
 * reaping. Every message is deep-copied out of its core at once, since the
 * core's copy dies at the next swim_ call.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "meshvisor/swim.h"

/* ------------------------------------------------------------------------ */
/* Deep copies of messages and events                                       */

struct pkt {
	struct swim_msg m;
	uint64_t at; /* delivery time */
	int src;
	char *blob;
};

static char *copy_str(char **p, const char *s)
{
	size_t n = strlen(s) + 1;
	char *r = *p;
	memcpy(r, s, n);
	*p += n;
	return r;
}

static void pkt_copy(struct pkt *dst, const struct swim_msg *m)
{
	size_t arrays = sizeof(struct swim_update) * (m->n_updates + 1) +
	                sizeof(uint64_t) * m->n_digest + sizeof(uint32_t) * m->n_want;
	size_t need = arrays + 6 * SWIM_ADDR_MAX +
	              m->n_updates * (SWIM_NAME_MAX * 2 + SWIM_ADDR_MAX + SWIM_PROOF_MAX);
	dst->blob = malloc(need);
	assert_non_null(dst->blob);
	struct swim_update *u = (struct swim_update *)dst->blob;
	uint64_t *digest = (uint64_t *)(u + m->n_updates + 1);
	uint32_t *want = (uint32_t *)(digest + m->n_digest);
	char *p = dst->blob + arrays;
	dst->m = *m;
	if (m->n_digest)
		memcpy(digest, m->digest, sizeof(*digest) * m->n_digest);
	dst->m.digest = digest;
	if (m->n_want)
		memcpy(want, m->want, sizeof(*want) * m->n_want);
	dst->m.want = want;
	dst->m.from = copy_str(&p, m->from);
	dst->m.from_addr = copy_str(&p, m->from_addr);
	dst->m.to = copy_str(&p, m->to);
	dst->m.to_addr = copy_str(&p, m->to_addr);
	dst->m.target = copy_str(&p, m->target);
	dst->m.target_addr = copy_str(&p, m->target_addr);
	for (size_t k = 0; k < m->n_updates; k++) {
		u[k] = m->updates[k];
		u[k].name = copy_str(&p, m->updates[k].name);
		u[k].addr = copy_str(&p, m->updates[k].addr);
		u[k].origin = copy_str(&p, m->updates[k].origin);
		if (m->updates[k].proof_len > 0) {
			u[k].proof = memcpy(p, m->updates[k].proof, m->updates[k].proof_len);
			p += m->updates[k].proof_len;
		}
	}
	dst->m.updates = u;
}

struct evrec {
	int node;
	uint64_t at;
	enum swim_event_type type;
	char name[SWIM_NAME_MAX];
	char addr[SWIM_ADDR_MAX];
	enum swim_state state;
	uint64_t incarnation;
	uint32_t confirmations, local_health;
	char cause[512];
};

#define MAX_EV 20000
#define MAX_PKT 20000
#define MAX_NODES 6

/* ------------------------------------------------------------------------ */
/* The pump                                                                  */

struct net {
	uint64_t now;
	int n;
	struct swim *core[MAX_NODES];
	char name[MAX_NODES][SWIM_NAME_MAX];
	char addr[MAX_NODES][SWIM_ADDR_MAX];
	bool up[MAX_NODES];
	int side[MAX_NODES]; /* with `partitioned`, sides do not hear each other */
	bool partitioned;
	struct pkt q[MAX_PKT];
	int nq;
	struct evrec *ev;
	int nev;
	/* every message sent, for assertions (type, from, to, updates) */
	struct pkt *sent;
	int nsent;
	bool keep_sent;
};

static struct net *net_new(void)
{
	struct net *net = calloc(1, sizeof(*net));
	assert_non_null(net);
	net->ev = calloc(MAX_EV, sizeof(*net->ev));
	assert_non_null(net->ev);
	net->now = 1000;
	return net;
}

static void net_free(struct net *net)
{
	for (int i = 0; i < net->n; i++)
		swim_free(net->core[i]);
	for (int k = 0; k < net->nq; k++)
		free(net->q[k].blob);
	for (int k = 0; k < net->nsent; k++)
		free(net->sent[k].blob);
	free(net->sent);
	free(net->ev);
	free(net);
}

static void test_config(struct swim_config *cfg, const char *name, const char *addr, uint64_t seed)
{
	swim_config_default(cfg);
	snprintf(cfg->name, sizeof(cfg->name), "%s", name);
	snprintf(cfg->addr, sizeof(cfg->addr), "%s", addr);
	cfg->seed = seed;
}

static void net_drain(struct net *net, int i)
{
	struct swim_msg m;
	struct swim_event e;
	while (swim_pop_event(net->core[i], &e)) {
		assert_true(net->nev < MAX_EV);
		struct evrec *r = &net->ev[net->nev++];
		r->node = i;
		r->at = net->now;
		r->type = e.type;
		snprintf(r->name, sizeof(r->name), "%s", e.name);
		snprintf(r->addr, sizeof(r->addr), "%s", e.addr);
		r->state = e.state;
		r->incarnation = e.incarnation;
		r->confirmations = e.confirmations;
		r->local_health = e.local_health;
		snprintf(r->cause, sizeof(r->cause), "%s", e.cause);
	}
	while (swim_pop_output(net->core[i], &m)) {
		if (net->keep_sent) {
			net->sent =
			    realloc(net->sent, sizeof(*net->sent) * (size_t)(net->nsent + 1));
			assert_non_null(net->sent);
			pkt_copy(&net->sent[net->nsent], &m);
			net->sent[net->nsent].src = i;
			net->nsent++;
		}
		if (!net->up[i])
			continue;
		assert_true(net->nq < MAX_PKT);
		struct pkt *p = &net->q[net->nq++];
		pkt_copy(p, &m);
		p->at = net->now + 1;
		p->src = i;
	}
}

static int net_add(struct net *net, const char *name, const char *addr, uint64_t inc,
                   const struct swim_config *base)
{
	struct swim_config cfg;
	if (base != NULL)
		cfg = *base;
	else
		swim_config_default(&cfg);
	snprintf(cfg.name, sizeof(cfg.name), "%s", name);
	snprintf(cfg.addr, sizeof(cfg.addr), "%s", addr);
	cfg.seed = 42 + (uint64_t)net->n;
	int i = net->n++;
	net->core[i] = swim_new(&cfg, inc, net->now);
	assert_non_null(net->core[i]);
	snprintf(net->name[i], sizeof(net->name[i]), "%s", name);
	snprintf(net->addr[i], sizeof(net->addr[i]), "%s", addr);
	net->up[i] = true;
	return i;
}

static int net_by_addr(const struct net *net, const char *addr)
{
	for (int i = net->n - 1; i >= 0; i--) /* newest first: restarts reuse nothing */
		if (strcmp(net->addr[i], addr) == 0)
			return i;
	return -1;
}

/* Advances virtual time by ms, 1 ms at a time. */
static void net_run(struct net *net, uint64_t ms)
{
	uint64_t end = net->now + ms;
	while (net->now < end) {
		net->now++;
		for (int k = 0; k < net->nq;) {
			if (net->q[k].at > net->now) {
				k++;
				continue;
			}
			struct pkt p = net->q[k];
			net->q[k] = net->q[--net->nq];
			int dst = net_by_addr(net, p.m.to_addr);
			bool cut =
			    net->partitioned && dst >= 0 && net->side[dst] != net->side[p.src];
			if (dst >= 0 && net->up[dst] && !cut) {
				assert_int_equal(
				    swim_handle_message(net->core[dst], &p.m, net->now), 0);
				net_drain(net, dst);
			}
			free(p.blob);
		}
		for (int i = 0; i < net->n; i++) {
			if (!net->up[i])
				continue;
			if (swim_next_deadline(net->core[i]) <= net->now) {
				assert_int_equal(swim_handle_timer(net->core[i], net->now), 0);
				net_drain(net, i);
			}
		}
	}
}

static enum swim_state state_of(struct net *net, int observer, int target, bool *known)
{
	struct swim_member_info mi;
	bool k = swim_member_find(net->core[observer], net->name[target], &mi);
	if (known != NULL)
		*known = k;
	return k ? mi.state : SWIM_ALIVE;
}

/* Runs until observer sees target in st, up to limit ms; returns elapsed or
 * -1. */
static int64_t run_until(struct net *net, int observer, int target, enum swim_state st,
                         uint64_t limit)
{
	uint64_t start = net->now;
	while (net->now - start < limit) {
		bool known;
		if (state_of(net, observer, target, &known) == st && known)
			return (int64_t)(net->now - start);
		net_run(net, 1);
	}
	return -1;
}

static const struct evrec *find_ev(const struct net *net, int node, enum swim_event_type t,
                                   const char *name)
{
	for (int k = 0; k < net->nev; k++)
		if ((node < 0 || net->ev[k].node == node) && net->ev[k].type == t &&
		    (name == NULL || strcmp(net->ev[k].name, name) == 0))
			return &net->ev[k];
	return NULL;
}

static int count_ev(const struct net *net, int node, enum swim_event_type t, const char *name)
{
	int c = 0;
	for (int k = 0; k < net->nev; k++)
		if ((node < 0 || net->ev[k].node == node) && net->ev[k].type == t &&
		    (name == NULL || strcmp(net->ev[k].name, name) == 0))
			c++;
	return c;
}

/* n nodes n0..n{n-1} at 10.0.0.i:7946, all joined through n0. */
static struct net *cluster(int n, const struct swim_config *base)
{
	struct net *net = net_new();
	for (int i = 0; i < n; i++) {
		char name[16], addr[32];
		snprintf(name, sizeof(name), "n%d", i);
		snprintf(addr, sizeof(addr), "10.0.0.%d:7946", i);
		net_add(net, name, addr, 0, base);
	}
	for (int i = 1; i < n; i++) {
		const char *seed = net->addr[0];
		assert_int_equal(swim_join(net->core[i], &seed, 1, net->now), 0);
		net_drain(net, i);
	}
	net_run(net, 3000);
	for (int i = 0; i < n; i++) {
		uint32_t c[4];
		swim_state_counts(net->core[i], c);
		assert_int_equal(c[SWIM_ALIVE], n);
	}
	return net;
}

/* ------------------------------------------------------------------------ */
/* Single-core helpers: hand-made messages                                  */

static struct swim_msg mkmsg(enum swim_msg_type t, const char *from, const char *to, uint64_t seq,
                             const struct swim_update *u, size_t n)
{
	static char addr[4][SWIM_NAME_MAX + 16];
	static int slot;
	char *a = addr[slot++ & 3];
	snprintf(a, sizeof(addr[0]), "%s:7946", from != NULL ? from : "");
	struct swim_msg m = {
	    .type = t,
	    .from = from,
	    .from_addr = a,
	    .to = to,
	    .to_addr = "",
	    .seq = seq,
	    .target = "",
	    .target_addr = "",
	    .join = false,
	    .updates = u,
	    .n_updates = n,
	};
	return m;
}

static struct swim_update upd(const char *name, enum swim_state st, uint64_t inc,
                              const char *origin)
{
	static char addr[8][SWIM_NAME_MAX + 16];
	static int slot;
	char *a = addr[slot++ & 7];
	snprintf(a, sizeof(addr[0]), "%s:7946", name);
	struct swim_update u = {
	    .name = name, .addr = a, .incarnation = inc, .state = st, .origin = origin};
	return u;
}

/* Gossip (unsolicited ACK) carrying one update, from `from` to core s. */
static void feed(struct swim *s, const char *from, struct swim_update u, uint64_t now)
{
	struct swim_msg m = mkmsg(SWIM_MSG_ACK, from, "", 0, &u, 1);
	assert_int_equal(swim_handle_message(s, &m, now), 0);
}

static void drop_all(struct swim *s)
{
	struct swim_msg m;
	struct swim_event e;
	while (swim_pop_output(s, &m))
		;
	while (swim_pop_event(s, &e))
		;
}

/* The config of a quiet solo core: only probes, no gossip rounds or
 * push-pulls of its own. */
static void solo_config(struct swim_config *cfg, const char *name)
{
	char addr[32];
	snprintf(addr, sizeof(addr), "%s:7946", name);
	test_config(cfg, name, addr, 7);
	cfg->gossip_interval_ms = 0;
	cfg->push_pull_interval_ms = 0;
}

static struct swim *solo(const char *name, struct swim_config *cfg_out)
{
	struct swim_config cfg;
	solo_config(&cfg, name);
	if (cfg_out != NULL)
		*cfg_out = cfg;
	struct swim *s = swim_new(&cfg, 0, 0);
	assert_non_null(s);
	return s;
}

/* A solo core with the arithmetic of the old defaults (suspicion_min_mult
 * 1) and an awareness cap high enough that the gray-host rule stays out of
 * the way of tests about the suspicion clock. */
static struct swim *solo_min1(const char *name)
{
	struct swim_config cfg;
	solo_config(&cfg, name);
	cfg.suspicion_min_mult = 1;
	cfg.awareness_max = 64;
	struct swim *s = swim_new(&cfg, 0, 0);
	assert_non_null(s);
	return s;
}

static enum swim_state mstate(struct swim *s, const char *name, uint64_t *inc)
{
	struct swim_member_info mi;
	assert_true(swim_member_find(s, name, &mi));
	if (inc != NULL)
		*inc = mi.incarnation;
	return mi.state;
}

/* Runs s's timers (its output dropped) until member `name` is in state
 * `want`, at most 50 deadlines. */
static void settle_state(struct swim *s, uint64_t *now, const char *name, enum swim_state want)
{
	for (int k = 0; k < 50 && mstate(s, name, NULL) != want; k++) {
		uint64_t at = swim_next_deadline(s);
		if (at > *now)
			*now = at;
		swim_handle_timer(s, *now);
		drop_all(s);
	}
	assert_int_equal(mstate(s, name, NULL), want);
}

/* A death that `from` gossips, taken at once: our own suspicion (its echo
 * from `from`) came first, so it rests on our evidence, not on one peer's
 * word (see test_dead_needs_our_own_check for the other case). */
static void dead_on_our_suspicion(struct swim *s, const char *from, const char *name, uint64_t inc,
                                  uint64_t now)
{
	feed(s, from, upd(name, SWIM_SUSPECT, inc, swim_get_config(s)->name), now);
	feed(s, from, upd(name, SWIM_DEAD, inc, from), now);
	assert_int_equal(mstate(s, name, NULL), SWIM_DEAD);
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                     */

static void test_suspicion_timeout_math(void **state)
{
	(void)state;
	/* no confirmations: max; k: min; k/2 on a log scale in between */
	assert_int_equal(swim_suspicion_timeout_ms(2000, 12000, 0, 4), 12000);
	assert_int_equal(swim_suspicion_timeout_ms(2000, 12000, 2, 4),
	                 5173); /* 12000-10000*ln3/ln5 */
	assert_int_equal(swim_suspicion_timeout_ms(2000, 12000, 4, 4), 2000);
	assert_int_equal(swim_suspicion_timeout_ms(1000, 6000, 1, 3), 3500); /* 6000-5000*ln2/ln4 */
	/* bounds: never below min, never above max */
	assert_int_equal(swim_suspicion_timeout_ms(2000, 12000, 9, 4), 2000);
	assert_int_equal(swim_suspicion_timeout_ms(2000, 12000, 0, 0), 2000); /* none expected */
	assert_int_equal(swim_suspicion_timeout_ms(5000, 3000, 0, 3), 5000);  /* max < min */
	uint64_t prev = UINT64_MAX;
	for (uint32_t c = 0; c <= 3; c++) {
		uint64_t t = swim_suspicion_timeout_ms(1000, 6000, c, 3);
		assert_true(t < prev);
		assert_true(t >= 1000 && t <= 6000);
		prev = t;
	}
}

static void test_config_default_and_bad_config(void **state)
{
	(void)state;
	struct swim_config cfg;
	swim_config_default(&cfg);
	assert_int_equal(cfg.probe_interval_ms, 1000);
	assert_int_equal(cfg.probe_timeout_ms, 500);
	assert_int_equal(cfg.indirect_probes, 3);
	assert_int_equal(cfg.retransmit_mult, 4);
	assert_int_equal(cfg.suspicion_max_mult, 6);
	assert_int_equal(cfg.awareness_max, 8);
	assert_int_equal(cfg.push_pull_interval_ms, 30000);
	assert_int_equal(cfg.gossip_interval_ms, 200);
	assert_int_equal(cfg.gossip_fanout, 3);
	assert_int_equal(cfg.join_retry_ms, 1000);
	assert_int_equal(cfg.reap_ms, 24u * 3600u * 1000u);
	assert_int_equal(cfg.max_updates_per_msg, 16);
	/* no name */
	assert_null(swim_new(&cfg, 0, 0));
	test_config(&cfg, "a", "a:1", 1);
	cfg.probe_timeout_ms = cfg.probe_interval_ms; /* timeout must fit the period */
	assert_null(swim_new(&cfg, 0, 0));
	test_config(&cfg, "a", "a:1", 1);
	struct swim *s = swim_new(&cfg, 5, 0);
	assert_non_null(s);
	assert_int_equal(swim_incarnation(s), 5);
	assert_int_equal(swim_member_count(s), 1);
	struct swim_member_info mi;
	swim_member_at(s, 0, &mi);
	assert_true(mi.is_self);
	assert_string_equal(mi.name, "a");
	assert_int_equal(mi.state, SWIM_ALIVE);
	swim_free(s);
}

static void test_precedence_rules(void **state)
{
	(void)state;
	struct swim *s = solo("me", NULL);
	uint64_t inc;
	uint64_t now = 10;
	/* suspect/dead about an unknown member: ignored */
	feed(s, "x", upd("b", SWIM_SUSPECT, 3, "x"), now);
	feed(s, "x", upd("b", SWIM_DEAD, 3, "x"), now);
	assert_int_equal(swim_member_count(s), 1);
	feed(s, "x", upd("b", SWIM_ALIVE, 5, ""), now);
	assert_int_equal(swim_member_count(s), 2);
	assert_int_equal(mstate(s, "b", &inc), SWIM_ALIVE);
	assert_int_equal(inc, 5);
	/* older alive ignored */
	feed(s, "x", upd("b", SWIM_ALIVE, 4, ""), now);
	mstate(s, "b", &inc);
	assert_int_equal(inc, 5);
	/* older suspect ignored; suspect at >= overrides alive */
	feed(s, "x", upd("b", SWIM_SUSPECT, 4, "x"), now);
	assert_int_equal(mstate(s, "b", NULL), SWIM_ALIVE);
	feed(s, "x", upd("b", SWIM_SUSPECT, 5, "x"), now);
	assert_int_equal(mstate(s, "b", NULL), SWIM_SUSPECT);
	/* alive at the same incarnation does not clear a suspicion ... */
	feed(s, "x", upd("b", SWIM_ALIVE, 5, ""), now);
	assert_int_equal(mstate(s, "b", NULL), SWIM_SUSPECT);
	/* ... a higher one does */
	feed(s, "x", upd("b", SWIM_ALIVE, 6, ""), now);
	assert_int_equal(mstate(s, "b", &inc), SWIM_ALIVE);
	assert_int_equal(inc, 6);
	/* dead overrides alive at ==, but not older; on another's word
	 * only once our own check of it failed */
	feed(s, "x", upd("b", SWIM_DEAD, 5, "x"), now);
	assert_int_equal(mstate(s, "b", NULL), SWIM_ALIVE);
	feed(s, "x", upd("b", SWIM_DEAD, 6, "x"), now);
	assert_int_equal(mstate(s, "b", NULL), SWIM_SUSPECT);
	settle_state(s, &now, "b", SWIM_DEAD);
	/* dead is final for that incarnation: no alive/suspect at <= */
	feed(s, "x", upd("b", SWIM_ALIVE, 6, ""), now);
	feed(s, "x", upd("b", SWIM_SUSPECT, 7, "x"), now);
	assert_int_equal(mstate(s, "b", NULL), SWIM_DEAD);
	/* alive with a higher incarnation brings it back */
	feed(s, "x", upd("b", SWIM_ALIVE, 8, ""), now);
	assert_int_equal(mstate(s, "b", &inc), SWIM_ALIVE);
	assert_int_equal(inc, 8);
	/* dead overrides suspect (after our check) */
	feed(s, "x", upd("b", SWIM_SUSPECT, 8, "x"), now);
	feed(s, "x", upd("b", SWIM_DEAD, 8, "y"), now);
	settle_state(s, &now, "b", SWIM_DEAD);
	/* LEFT said by someone else is a death, by the member itself a leave */
	feed(s, "x", upd("c", SWIM_ALIVE, 1, ""), now);
	feed(s, "x", upd("c", SWIM_LEFT, 1, "x"), now);
	assert_int_equal(mstate(s, "c", NULL), SWIM_SUSPECT);
	settle_state(s, &now, "c", SWIM_DEAD);
	feed(s, "x", upd("d", SWIM_ALIVE, 1, ""), now);
	feed(s, "x", upd("d", SWIM_LEFT, 2, "d"), now);
	assert_int_equal(mstate(s, "d", NULL), SWIM_LEFT);
	/* a DEAD never turns LEFT into DEAD */
	feed(s, "x", upd("d", SWIM_DEAD, 3, "x"), now);
	assert_int_equal(mstate(s, "d", NULL), SWIM_LEFT);
	uint32_t c[4];
	swim_state_counts(s, c);
	assert_int_equal(c[SWIM_ALIVE], 1);
	assert_int_equal(c[SWIM_SUSPECT], 0);
	assert_int_equal(c[SWIM_DEAD], 2);
	assert_int_equal(c[SWIM_LEFT], 1);
	swim_free(s);
}

static void test_events_and_causes(void **state)
{
	(void)state;
	struct swim *s = solo("me", NULL);
	struct swim_event e;
	drop_all(s);
	feed(s, "n3", upd("b", SWIM_ALIVE, 1, ""), 5);
	assert_true(swim_pop_event(s, &e));
	assert_int_equal(e.type, SWIM_EV_MEMBER_JOINED);
	assert_string_equal(e.name, "b");
	drop_all(s);
	feed(s, "n7", upd("b", SWIM_SUSPECT, 1, "n3"), 20);
	assert_true(swim_pop_event(s, &e));
	assert_int_equal(e.type, SWIM_EV_MEMBER_SUSPECT);
	assert_non_null(strstr(e.cause, "gossip from n7"));
	assert_non_null(strstr(e.cause, "n3"));
	drop_all(s);
	struct swim_member_info mi;
	assert_true(swim_member_find(s, "b", &mi));
	assert_int_equal(mi.since_ms, 20);
	assert_non_null(strstr(mi.cause, "gossip from n7"));
	feed(s, "n7", upd("b", SWIM_ALIVE, 5, ""), 30);
	assert_true(swim_pop_event(s, &e));
	assert_int_equal(e.type, SWIM_EV_MEMBER_ALIVE);
	assert_int_equal(e.incarnation, 5);
	assert_non_null(strstr(e.cause, "refuted with incarnation 5"));
	assert_true(swim_member_find(s, "b", &mi));
	assert_int_equal(mi.since_ms, 30);
	assert_non_null(strstr(mi.cause, "refuted with incarnation 5"));
	drop_all(s);
	feed(s, "n3", upd("b", SWIM_DEAD, 5, "n3"), 40);
	assert_true(swim_pop_event(s, &e));
	assert_int_equal(e.type, SWIM_EV_MEMBER_SUSPECT);
	assert_string_equal(e.cause, "reported dead (gossip from n3); checking it ourselves");
	bool dead = false;
	for (int k = 0; k < 20 && !dead; k++) {
		swim_handle_timer(s, swim_next_deadline(s));
		while (swim_pop_event(s, &e))
			if (e.type == SWIM_EV_MEMBER_DEAD) {
				dead = true;
				assert_string_equal(e.cause, "reported dead by n3, and our own "
				                             "probe failed; no confirmations");
			}
	}
	assert_true(dead);
	swim_free(s);
}

static void test_self_refutes_suspicion(void **state)
{
	(void)state;
	struct swim *s = solo("me", NULL);
	struct swim_event e;
	feed(s, "x", upd("b", SWIM_ALIVE, 0, ""), 1);
	drop_all(s);
	assert_int_equal(swim_incarnation(s), 0);
	/* suspected at our incarnation: bump above it, gossip ALIVE */
	feed(s, "b", upd("me", SWIM_SUSPECT, 0, "b"), 2);
	assert_int_equal(swim_incarnation(s), 1);
	assert_int_equal(swim_local_health(s), 1); /* Lifeguard: refuting costs 1 */
	bool refuted = false;
	while (swim_pop_event(s, &e))
		if (e.type == SWIM_EV_SELF_REFUTED) {
			refuted = true;
			assert_int_equal(e.incarnation, 1);
			assert_non_null(strstr(e.cause, "suspected by b"));
		}
	assert_true(refuted);
	/* reported dead at a higher one: bump above that */
	feed(s, "b", upd("me", SWIM_DEAD, 7, "b"), 3);
	assert_int_equal(swim_incarnation(s), 8);
	assert_int_equal(mstate(s, "me", NULL), SWIM_ALIVE);
	/* stale suspicion (older incarnation): no bump, but the sender gets our
	 * current incarnation straight back */
	drop_all(s);
	feed(s, "b", upd("me", SWIM_SUSPECT, 3, "b"), 4);
	assert_int_equal(swim_incarnation(s), 8);
	struct swim_msg m;
	bool told = false;
	while (swim_pop_output(s, &m)) {
		if (strcmp(m.to, "b") != 0)
			continue;
		for (size_t k = 0; k < m.n_updates; k++)
			if (strcmp(m.updates[k].name, "me") == 0 &&
			    m.updates[k].state == SWIM_ALIVE && m.updates[k].incarnation == 8)
				told = true;
	}
	assert_true(told);
	swim_free(s);
}

/* Takes suspect b's ACK (its refutation) out of b and hands it to a, which
 * must then hold b ALIVE at incarnation inc. */
static void deliver_refutation(struct swim *b, struct swim *a, uint64_t now, uint64_t inc)
{
	struct swim_msg m;
	struct pkt ack = {0};
	while (swim_pop_output(b, &m))
		if (m.type == SWIM_MSG_ACK && strcmp(m.to, swim_get_config(a)->name) == 0)
			pkt_copy(&ack, &m);
	assert_non_null(ack.blob);
	assert_int_equal(swim_handle_message(a, &ack.m, now), 0);
	uint64_t got;
	assert_int_equal(mstate(a, swim_get_config(b)->name, &got), SWIM_ALIVE);
	assert_int_equal(got, inc);
	free(ack.blob);
}

/* A PING to a member we hold SUSPECT carries the suspicion (buddy system),
 * and the suspect refutes in its ACK. */
static void test_buddy_system(void **state)
{
	(void)state;
	struct swim_config cfg;
	test_config(&cfg, "me", "me:7946", 3);
	cfg.gossip_interval_ms = 0;
	cfg.push_pull_interval_ms = 0;
	cfg.suspicion_min_mult = 30; /* a long suspicion: 30 s with N = 2 */
	struct swim *s = swim_new(&cfg, 0, 0);
	assert_non_null(s);
	feed(s, "x", upd("b", SWIM_ALIVE, 2, ""), 1);
	feed(s, "x", upd("b", SWIM_SUSPECT, 2, "x"), 1);
	drop_all(s);
	/* let the suspect update run out of retransmissions first, so only the
	 * buddy system can put it in the ping: run several probe rounds but
	 * answer none (b stays suspect; x is not a member) */
	uint64_t now = 1;
	bool seen = false;
	int pings = 0;
	while (pings < 8 && now < 60000) {
		now = swim_next_deadline(s);
		swim_handle_timer(s, now);
		struct swim_msg m;
		struct swim_event e;
		while (swim_pop_event(s, &e))
			;
		while (swim_pop_output(s, &m)) {
			if (m.type != SWIM_MSG_PING || strcmp(m.to, "b") != 0)
				continue;
			pings++;
			seen = false;
			for (size_t k = 0; k < m.n_updates; k++)
				if (strcmp(m.updates[k].name, "b") == 0 &&
				    m.updates[k].state == SWIM_SUSPECT &&
				    m.updates[k].incarnation == 2)
					seen = true;
			assert_true(seen);
		}
		if (mstate(s, "b", NULL) != SWIM_SUSPECT)
			break;
	}
	/* the suspect broadcast itself is spent after 4 sends (N = 2), so the
	 * later pings carried it by the buddy rule alone */
	assert_int_equal(pings, 8);
	swim_free(s);

	/* and end to end: b refutes on the ping itself */
	struct swim *a = solo("a", NULL);
	struct swim *b = solo("b", NULL);
	feed(a, "x", upd("b", SWIM_ALIVE, 0, ""), 1);
	feed(a, "x", upd("b", SWIM_SUSPECT, 0, "x"), 1);
	drop_all(a);
	now = swim_next_deadline(a);
	swim_handle_timer(a, now);
	struct swim_msg m, ping = {0};
	struct pkt cp = {0};
	while (swim_pop_output(a, &m))
		if (m.type == SWIM_MSG_PING)
			pkt_copy(&cp, &m);
	assert_non_null(cp.blob);
	ping = cp.m;
	assert_int_equal(swim_handle_message(b, &ping, now + 1), 0);
	assert_int_equal(swim_incarnation(b), 1);
	deliver_refutation(b, a, now + 2, 1);
	free(cp.blob);
	swim_free(a);
	swim_free(b);
}

/* Drives a solo core to its next deadline and returns its outputs (copied;
 * caller frees with free_pkts). */
static int step(struct swim *s, uint64_t *now, struct pkt *out, int max)
{
	*now = swim_next_deadline(s);
	assert_int_equal(swim_handle_timer(s, *now), 0);
	struct swim_msg m;
	struct swim_event e;
	while (swim_pop_event(s, &e))
		;
	int n = 0;
	while (swim_pop_output(s, &m)) {
		assert_true(n < max);
		pkt_copy(&out[n++], &m);
	}
	return n;
}

static void free_pkts(struct pkt *p, int n)
{
	for (int k = 0; k < n; k++)
		free(p[k].blob);
}

static void test_awareness(void **state)
{
	(void)state;
	struct swim_config cfg;
	struct swim *s = solo("me", &cfg);
	feed(s, "x", upd("b", SWIM_ALIVE, 0, ""), 0);
	feed(s, "x", upd("c", SWIM_ALIVE, 0, ""), 0);
	feed(s, "x", upd("d", SWIM_ALIVE, 0, ""), 0);
	drop_all(s);
	struct pkt out[32];
	uint64_t now = 0;
	/* 1: a probe nobody answers, helpers send no nack: +1 +2 missing */
	int n = step(s, &now, out, 32);
	assert_int_equal(n, 1);
	assert_int_equal(out[0].m.type, SWIM_MSG_PING);
	char target[SWIM_NAME_MAX];
	snprintf(target, sizeof(target), "%s", out[0].m.to);
	uint64_t start = now;
	free_pkts(out, n);
	n = step(s, &now, out, 32);
	assert_int_equal(now, start + cfg.probe_timeout_ms);
	assert_int_equal(n, 2); /* k = 3, but only two others */
	for (int k = 0; k < n; k++) {
		assert_int_equal(out[k].m.type, SWIM_MSG_PING_REQ);
		assert_string_equal(out[k].m.target, target);
	}
	free_pkts(out, n);
	n = step(s, &now, out, 32);
	assert_int_equal(now, start + cfg.probe_interval_ms);
	assert_int_equal(swim_local_health(s), 3);
	assert_int_equal(mstate(s, target, NULL), SWIM_SUSPECT);
	struct swim_member_info mi;
	swim_member_find(s, target, &mi);
	assert_string_equal(mi.cause, "probe failed: no ack direct or via 2 indirect");
	/* 2: the next probe is already out; its timeout and period scale by 4 */
	assert_int_equal(n, 1);
	assert_int_equal(out[0].m.type, SWIM_MSG_PING);
	start = now;
	assert_int_equal(swim_next_deadline(s), start + 4 * cfg.probe_timeout_ms);
	/* it is answered: -1 */
	struct swim_msg ack = mkmsg(SWIM_MSG_ACK, out[0].m.to, "me", out[0].m.seq, NULL, 0);
	ack.target = out[0].m.to;
	assert_int_equal(swim_handle_message(s, &ack, now + 10), 0);
	assert_int_equal(swim_local_health(s), 2);
	free_pkts(out, n);
	/* the next probe starts one scaled period (x3 now... no: scaled at start,
	 * x4) after the last one */
	n = step(s, &now, out, 32);
	assert_int_equal(now, start + 4 * cfg.probe_interval_ms);
	assert_int_equal(n, 1);
	assert_int_equal(out[0].m.type, SWIM_MSG_PING);
	start = now;
	snprintf(target, sizeof(target), "%s", out[0].m.to);
	uint64_t seq = out[0].m.seq;
	free_pkts(out, n);
	/* 3: unanswered, but every helper nacks: only +1 */
	n = step(s, &now, out, 32);
	assert_int_equal(now, start + 3 * cfg.probe_timeout_ms);
	assert_true(n >= 1);
	for (int k = 0; k < n; k++) {
		if (out[k].m.type != SWIM_MSG_PING_REQ)
			continue;
		struct swim_msg nack = mkmsg(SWIM_MSG_NACK, out[k].m.to, "me", seq, NULL, 0);
		nack.target = target;
		assert_int_equal(swim_handle_message(s, &nack, now + 5), 0);
	}
	free_pkts(out, n);
	/* (the first suspect's own timer may fire in between) */
	do {
		n = step(s, &now, out, 32);
		free_pkts(out, n);
	} while (now < start + 3 * cfg.probe_interval_ms);
	assert_int_equal(now, start + 3 * cfg.probe_interval_ms);
	assert_int_equal(swim_local_health(s), 3);
	n = 0;
	free_pkts(out, n);
	/* capped at awareness_max */
	for (int r = 0; r < 40; r++) {
		n = step(s, &now, out, 32);
		free_pkts(out, n);
	}
	assert_int_equal(swim_local_health(s), cfg.awareness_max);
	swim_free(s);
}

/* The glue's sign that our own loop stalled (swim_local_health_add)
 * raises the score like a failed probe, capped, with an event carrying the
 * cause; the next probe period then stretches by it. */
static void test_local_health_add(void **state)
{
	(void)state;
	struct swim_config cfg;
	struct swim *s = solo("me", &cfg);
	struct swim_event e;
	while (swim_pop_event(s, &e))
		;
	swim_local_health_add(s, 2, "own event loop stalled 1200 ms");
	assert_int_equal(swim_local_health(s), 2);
	assert_true(swim_pop_event(s, &e));
	assert_int_equal(e.type, SWIM_EV_LOCAL_HEALTH);
	assert_int_equal(e.local_health, 2);
	assert_string_equal(e.cause, "own event loop stalled 1200 ms");
	swim_local_health_add(s, 1000, "own event loop stalled 60000 ms");
	assert_int_equal(swim_local_health(s), cfg.awareness_max);
	/* nothing to add past the cap: no event */
	while (swim_pop_event(s, &e))
		;
	swim_local_health_add(s, 1, "again");
	assert_false(swim_pop_event(s, &e));
	swim_free(s);
}

/* A helper relays the ACK, or NACKs at 80% of the probe timeout. */
static void test_ping_req_helper(void **state)
{
	(void)state;
	struct swim_config cfg;
	struct swim *h = solo("h", &cfg);
	drop_all(h);
	struct swim_msg req = mkmsg(SWIM_MSG_PING_REQ, "r", "h", 77, NULL, 0);
	req.target = "t";
	req.target_addr = "t:7946";
	assert_int_equal(swim_handle_message(h, &req, 100), 0);
	struct swim_msg m;
	uint64_t seq = 0;
	while (swim_pop_output(h, &m)) {
		assert_int_equal(m.type, SWIM_MSG_PING);
		assert_string_equal(m.to_addr, "t:7946");
		seq = m.seq;
	}
	assert_int_not_equal(seq, 0);
	assert_int_equal(swim_next_deadline(h) <= 100 + cfg.probe_timeout_ms * 8 / 10, true);
	swim_handle_timer(h, 100 + cfg.probe_timeout_ms * 8 / 10);
	bool nacked = false;
	while (swim_pop_output(h, &m))
		if (m.type == SWIM_MSG_NACK) {
			nacked = true;
			assert_int_equal(m.seq, 77);
			assert_string_equal(m.to, "r");
			assert_string_equal(m.target, "t");
		}
	assert_true(nacked);
	/* a second request, answered in time: the ACK is relayed */
	req.seq = 78;
	assert_int_equal(swim_handle_message(h, &req, 1000), 0);
	while (swim_pop_output(h, &m))
		seq = m.seq;
	struct swim_msg ack = mkmsg(SWIM_MSG_ACK, "t", "h", seq, NULL, 0);
	ack.target = "t";
	assert_int_equal(swim_handle_message(h, &ack, 1010), 0);
	bool relayed = false;
	while (swim_pop_output(h, &m))
		if (m.type == SWIM_MSG_ACK && m.seq == 78 && strcmp(m.to, "r") == 0 &&
		    strcmp(m.target, "t") == 0)
			relayed = true;
	assert_true(relayed);
	swim_free(h);
}

/* Each update goes out at most λ·ceil(log10(N+1)) times, at most
 * max_updates_per_msg per message. */
static void test_retransmit_limit(void **state)
{
	(void)state;
	struct swim_config cfg;
	struct swim *s = solo("me", &cfg);
	feed(s, "x", upd("b", SWIM_ALIVE, 0, ""), 0);
	drop_all(s);
	/* N = 2 live: limit = 4 * 1 */
	for (int k = 0; k < 40; k++) {
		char name[16];
		snprintf(name, sizeof(name), "z%d", k);
		feed(s, "b", upd(name, SWIM_ALIVE, 0, ""), 1);
	}
	/* now N = 42 live: limit = 4 * 2 = 8 for each of the 40 */
	drop_all(s);
	int seen[40] = {0};
	uint64_t now = 1;
	for (int r = 0; r < 400; r++) {
		struct swim_msg ping = mkmsg(SWIM_MSG_PING, "b", "me", 1000 + (uint64_t)r, NULL, 0);
		assert_int_equal(swim_handle_message(s, &ping, now), 0);
		struct swim_msg m;
		while (swim_pop_output(s, &m)) {
			assert_true(m.n_updates <= cfg.max_updates_per_msg);
			for (size_t k = 0; k < m.n_updates; k++) {
				int z;
				if (sscanf(m.updates[k].name, "z%d", &z) == 1)
					seen[z]++;
			}
		}
		drop_all(s);
	}
	for (int k = 0; k < 40; k++)
		assert_int_equal(seen[k], 8);
	swim_free(s);
}

static void test_malformed_input(void **state)
{
	(void)state;
	struct swim *s = solo("me", NULL);
	feed(s, "x", upd("b", SWIM_ALIVE, 3, ""), 1);
	drop_all(s);
	char longname[SWIM_NAME_MAX + 8];
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	struct swim_update bad_state = upd("b", SWIM_DEAD, 9, "x");
	bad_state.state = (enum swim_state)7;
	struct swim_update null_name = upd("b", SWIM_DEAD, 9, "x");
	null_name.name = NULL;
	struct swim_update long_upd = upd("b", SWIM_DEAD, 9, "x");
	long_upd.name = longname;
	/* a good update first: a malformed message must change nothing at all */
	struct swim_update two[2] = {upd("b", SWIM_DEAD, 9, "x"), bad_state};

	struct swim_msg m = mkmsg(SWIM_MSG_PING, "x", "me", 1, NULL, 0);
	m.from = NULL;
	assert_int_equal(swim_handle_message(s, &m, 2), -EINVAL);
	m = mkmsg(SWIM_MSG_PING, longname, "me", 1, NULL, 0);
	assert_int_equal(swim_handle_message(s, &m, 2), -EINVAL);
	m = mkmsg((enum swim_msg_type)99, "x", "me", 1, NULL, 0);
	assert_int_equal(swim_handle_message(s, &m, 2), -EINVAL);
	m = mkmsg(SWIM_MSG_PING, "x", "me", 1, NULL, 3); /* updates NULL, count 3 */
	assert_int_equal(swim_handle_message(s, &m, 2), -EINVAL);
	m = mkmsg(SWIM_MSG_ACK, "x", "me", 0, two, 2);
	assert_int_equal(swim_handle_message(s, &m, 2), -EINVAL);
	m = mkmsg(SWIM_MSG_ACK, "x", "me", 0, &null_name, 1);
	assert_int_equal(swim_handle_message(s, &m, 2), -EINVAL);
	m = mkmsg(SWIM_MSG_ACK, "x", "me", 0, &long_upd, 1);
	assert_int_equal(swim_handle_message(s, &m, 2), -EINVAL);
	m = mkmsg(SWIM_MSG_PING_REQ, "x", "me", 1, NULL, 0); /* no target */
	assert_int_equal(swim_handle_message(s, &m, 2), -EINVAL);
	m = mkmsg(SWIM_MSG_PING, "x", "me", 1, NULL, 0);
	m.to = NULL;
	assert_int_equal(swim_handle_message(s, &m, 2), -EINVAL);
	assert_int_equal(swim_handle_message(s, NULL, 2), -EINVAL);

	uint64_t inc;
	assert_int_equal(mstate(s, "b", &inc), SWIM_ALIVE);
	assert_int_equal(inc, 3);
	assert_int_equal(swim_member_count(s), 2);
	struct swim_msg o;
	struct swim_event e;
	assert_false(swim_pop_output(s, &o));
	assert_false(swim_pop_event(s, &e));

	/* addressed to someone else: ignored, not an error */
	m = mkmsg(SWIM_MSG_PING, "x", "other", 1, two, 1);
	assert_int_equal(swim_handle_message(s, &m, 2), 0);
	assert_int_equal(mstate(s, "b", NULL), SWIM_ALIVE);
	assert_false(swim_pop_output(s, &o));
	/* bad API arguments */
	const char *seed = NULL;
	assert_int_equal(swim_join(s, &seed, 1, 3), -EINVAL);
	assert_int_equal(swim_join(s, NULL, 0, 3), -EINVAL);
	assert_false(swim_member_find(s, longname, NULL));
	swim_free(s);
}

static void test_join_backoff(void **state)
{
	(void)state;
	struct swim_config cfg;
	struct swim *s = solo("me", &cfg);
	drop_all(s);
	/* our own address is ignored: nothing to send, nothing to retry */
	const char *self_only[] = {"me:7946"};
	assert_int_equal(swim_join(s, self_only, 1, 0), 0);
	struct swim_msg m;
	assert_false(swim_pop_output(s, &m));
	const char *seeds[] = {"me:7946", "10.9.9.9:7946"};
	assert_int_equal(swim_join(s, seeds, 2, 0), 0);
	assert_true(swim_pop_output(s, &m));
	assert_int_equal(m.type, SWIM_MSG_PUSH_PULL);
	assert_true(m.join);
	assert_string_equal(m.to, "");
	assert_string_equal(m.to_addr, "10.9.9.9:7946");
	assert_false(swim_pop_output(s, &m));
	/* retries at +1 s, +2 s, +4 s ... capped at 30 s */
	uint64_t now = 0, expect_gap = cfg.join_retry_ms;
	uint64_t gaps[10];
	int fails = 0;
	for (int r = 0; r < 10; r++) {
		uint64_t at = now + expect_gap;
		/* run every other timer (probes) until the retry */
		for (;;) {
			uint64_t d = swim_next_deadline(s);
			assert_true(d <= at);
			swim_handle_timer(s, d);
			bool sent = false;
			while (swim_pop_output(s, &m))
				if (m.type == SWIM_MSG_PUSH_PULL && m.join)
					sent = true;
			struct swim_event e;
			while (swim_pop_event(s, &e))
				if (e.type == SWIM_EV_JOIN_FAILED)
					fails++;
			if (sent) {
				assert_int_equal(d, at);
				break;
			}
		}
		gaps[r] = at - now;
		now = at;
		expect_gap = expect_gap * 2 > 30000 ? 30000 : expect_gap * 2;
	}
	assert_int_equal(fails, 10);
	assert_int_equal(gaps[0], 1000);
	assert_int_equal(gaps[1], 2000);
	assert_int_equal(gaps[4], 16000);
	assert_int_equal(gaps[5], 30000);
	assert_int_equal(gaps[9], 30000);
	swim_free(s);
}

static void test_join_success(void **state)
{
	(void)state;
	struct net *net = net_new();
	int a = net_add(net, "a", "10.0.0.1:7946", 0, NULL);
	int b = net_add(net, "b", "10.0.0.2:7946", 0, NULL);
	int c = net_add(net, "c", "10.0.0.3:7946", 0, NULL);
	net->up[c] = false; /* a seed that is down */
	const char *seeds[] = {"10.0.0.3:7946", "10.0.0.1:7946"};
	assert_int_equal(swim_join(net->core[b], seeds, 2, net->now), 0);
	net_drain(net, b);
	net_run(net, 100);
	const struct evrec *j = find_ev(net, b, SWIM_EV_JOINED_CLUSTER, NULL);
	assert_non_null(j);
	assert_non_null(strstr(j->cause, "a"));
	assert_non_null(find_ev(net, a, SWIM_EV_MEMBER_JOINED, "b"));
	assert_int_equal(state_of(net, a, b, NULL), SWIM_ALIVE);
	assert_int_equal(state_of(net, b, a, NULL), SWIM_ALIVE);
	/* no more join attempts after success */
	net_run(net, 5000);
	assert_int_equal(count_ev(net, b, SWIM_EV_JOIN_FAILED, NULL), 0);
	net_free(net);
}

/* alive -> suspect -> dead, with timing both ways */
static void test_crash_detected(void **state)
{
	(void)state;
	struct net *net = cluster(4, NULL);
	int victim = 3;
	net->up[victim] = false;
	uint64_t crash = net->now;
	int64_t t = run_until(net, 0, victim, SWIM_DEAD, 30000);
	assert_true(t > 0);
	const struct evrec *s = find_ev(net, -1, SWIM_EV_MEMBER_SUSPECT, "n3");
	const struct evrec *d = find_ev(net, 0, SWIM_EV_MEMBER_DEAD, "n3");
	assert_non_null(s);
	assert_non_null(d);
	/* the first suspicion comes from a failed probe (at least one period
	 * after the crash), death no sooner than the minimum suspicion time */
	const char *cause = s != NULL ? s->cause : "";
	assert_non_null(strstr(cause, "probe failed: no ack direct or via"));
	assert_true(s->at >= crash + 1000);
	assert_true(d->at >= s->at + 1000); /* min = 1 * max(1, log10 4) * 1 s */
	/* everyone agrees */
	for (int i = 0; i < 3; i++)
		assert_true(run_until(net, i, victim, SWIM_DEAD, 10000) >= 0);
	/* dead cause names the timeout or the gossip */
	for (int k = 0; k < net->nev; k++)
		if (net->ev[k].type == SWIM_EV_MEMBER_DEAD)
			assert_true(strstr(net->ev[k].cause, "suspicion timeout after") != NULL ||
			            strstr(net->ev[k].cause, "gossip from") != NULL);
	/* never declared leaving */
	assert_int_equal(count_ev(net, -1, SWIM_EV_MEMBER_LEFT, "n3"), 0);
	net_free(net);
}

/* The minimum suspicion time holds: with confirmations from everyone the
 * suspect is not dead before min, and is dead soon after. */
static void test_suspicion_confirmations(void **state)
{
	(void)state;
	struct swim_config cfg;
	struct swim *s = solo("me", &cfg);
	/* 6 live members: min = 4 * 1 * 1000, max = 24000, k = 3 */
	const char *names[] = {"b", "c", "d", "e", "f"};
	for (int k = 0; k < 5; k++)
		feed(s, "x", upd(names[k], SWIM_ALIVE, 0, ""), 0);
	feed(s, "c", upd("b", SWIM_SUSPECT, 0, "c"), 100);
	drop_all(s);
	/* without confirmations it would take 24000 ms */
	feed(s, "d", upd("b", SWIM_SUSPECT, 0, "d"), 200);
	feed(s, "d", upd("b", SWIM_SUSPECT, 0, "d"), 210); /* same origin again: no count */
	feed(s, "e", upd("b", SWIM_SUSPECT, 0, "e"), 300);
	feed(s, "f", upd("b", SWIM_SUSPECT, 0, "f"), 400);
	/* 3 confirmations = k: timeout = min = 4000 from the start at 100
	 * (our own probes all fail, so our health is poor; k confirmations
	 * are what the gray-host rule asks for) */
	uint64_t now = 0;
	struct swim_event e;
	bool dead = false;
	while (!dead) {
		now = swim_next_deadline(s);
		assert_true(now <= 4100);
		swim_handle_timer(s, now);
		drop_all(s);
		dead = mstate(s, "b", NULL) == SWIM_DEAD;
		while (swim_pop_event(s, &e))
			;
	}
	assert_int_equal(now, 4100);
	struct swim_member_info mi;
	swim_member_find(s, "b", &mi);
	assert_string_equal(mi.cause, "suspicion timeout after 4000 ms, confirmed by d,e,f");
	swim_free(s);

	/* with one confirmation: 6000 - 5000 * ln 2 / ln 3 = 2845 (min 1 s,
	 * healthy enough not to wait for k); and with none the core asks for
	 * itself first (last-chance probe) */
	s = solo_min1("me");
	for (int k = 0; k < 5; k++)
		feed(s, "x", upd(names[k], SWIM_ALIVE, 0, ""), 0);
	feed(s, "c", upd("b", SWIM_SUSPECT, 0, "c"), 100);
	feed(s, "d", upd("b", SWIM_SUSPECT, 0, "d"), 200);
	drop_all(s);
	for (;;) {
		now = swim_next_deadline(s);
		swim_handle_timer(s, now);
		drop_all(s);
		if (mstate(s, "b", NULL) == SWIM_DEAD)
			break;
		assert_true(now < 3600);
	}
	/* (the formula expects SWIM_SUSPICION_CONFIRMATIONS = 2, as Serf) */
	assert_int_equal(now, 100 + 2845);
	swim_free(s);
}

/* When b dies (suspected, 3 confirmations) starting at `at`: the time of
 * its DEAD verdict. */
static uint64_t confirmed_death_at(struct swim *s, uint64_t inc, uint64_t at)
{
	feed(s, "c", upd("b", SWIM_SUSPECT, inc, "c"), at);
	feed(s, "d", upd("b", SWIM_SUSPECT, inc, "d"), at + 10);
	feed(s, "e", upd("b", SWIM_SUSPECT, inc, "e"), at + 20);
	feed(s, "f", upd("b", SWIM_SUSPECT, inc, "f"), at + 30);
	drop_all(s);
	uint64_t now = at;
	while (mstate(s, "b", NULL) != SWIM_DEAD) {
		now = swim_next_deadline(s);
		assert_true(now < at + 60000);
		swim_handle_timer(s, now);
		drop_all(s);
	}
	return now;
}

/* Flap damping: a member that refuted a suspicion or a death has the
 * minimum of its next suspicions doubled (then tripled, quadrupled, never
 * above the maximum), so a gray host is not declared dead and back every
 * minute; five quiet minutes and it starts afresh. */
static void test_flap_damping(void **state)
{
	(void)state;
	struct swim *s = solo("me", NULL);
	const char *names[] = {"b", "c", "d", "e", "f"};
	for (int k = 0; k < 5; k++)
		feed(s, "x", upd(names[k], SWIM_ALIVE, 0, ""), 0);
	drop_all(s);
	/* undamped: the minimum, 4000 ms after the suspicion */
	assert_int_equal(confirmed_death_at(s, 0, 1000), 1000 + 4000);
	/* it refutes its death (incarnation 1): the next minimum is 8000 */
	feed(s, "b", upd("b", SWIM_ALIVE, 1, ""), 6000);
	assert_int_equal(mstate(s, "b", NULL), SWIM_ALIVE);
	assert_int_equal(confirmed_death_at(s, 1, 7000), 7000 + 8000);
	/* again: 12000 */
	feed(s, "b", upd("b", SWIM_ALIVE, 2, ""), 16000);
	assert_int_equal(confirmed_death_at(s, 2, 17000), 17000 + 12000);
	/* again twice: 16000, and no more (SWIM_FLAPS_MAX) */
	feed(s, "b", upd("b", SWIM_ALIVE, 3, ""), 30000);
	assert_int_equal(confirmed_death_at(s, 3, 31000), 31000 + 16000);
	feed(s, "b", upd("b", SWIM_ALIVE, 4, ""), 48000);
	assert_int_equal(confirmed_death_at(s, 4, 49000), 49000 + 16000);
	/* five quiet minutes after its last refutation: afresh */
	feed(s, "b", upd("b", SWIM_ALIVE, 5, ""), 66000);
	assert_int_equal(confirmed_death_at(s, 5, 66000 + 300000), 366000 + 4000);
	swim_free(s);
}

/* Member `from` of net tells n0 (gossip) that n2 is `st` at inc. */
static void tell_n0_about_n2(struct net *net, int from, enum swim_state st, uint64_t inc)
{
	struct swim_update u = upd("n2", st, inc, st == SWIM_ALIVE ? "" : net->name[from]);
	u.addr = net->addr[2];
	struct swim_msg m = mkmsg(SWIM_MSG_ACK, net->name[from], "", 0, &u, 1);
	m.from_addr = net->addr[from];
	assert_int_equal(swim_handle_message(net->core[0], &m, net->now), 0);
	net_drain(net, 0);
}

/* n0 is told (by n1) that n2 is suspect at its incarnation 0; the
 * suspicion reaches n2, which refutes at 1, and n0 takes it back. */
static void suspect_n2_refuted(struct net *net)
{
	tell_n0_about_n2(net, 1, SWIM_SUSPECT, 0);
	assert_int_equal(state_of(net, 0, 2, NULL), SWIM_SUSPECT);
	assert_true(run_until(net, 0, 2, SWIM_ALIVE, 3000) >= 0);
	assert_int_equal(swim_incarnation(net->core[2]), 1);
}

static void test_false_suspicion_refuted(void **state)
{
	(void)state;
	struct net *net = cluster(3, NULL);
	suspect_n2_refuted(net);
	assert_non_null(find_ev(net, 2, SWIM_EV_SELF_REFUTED, NULL));
	const struct evrec *al = find_ev(net, 0, SWIM_EV_MEMBER_ALIVE, "n2");
	assert_non_null(al);
	assert_non_null(strstr(al->cause, "refuted with incarnation 1"));
	/* and nobody ever declares it dead */
	net_run(net, 20000);
	assert_int_equal(count_ev(net, -1, SWIM_EV_MEMBER_DEAD, "n2"), 0);
	net_free(net);
}

static void test_leave(void **state)
{
	(void)state;
	struct net *net = cluster(4, NULL);
	int leaver = 2;
	assert_false(swim_leave_done(net->core[leaver]));
	assert_int_equal(swim_leave(net->core[leaver], net->now), 0);
	assert_int_equal(swim_leave(net->core[leaver], net->now), -EALREADY);
	assert_int_equal(swim_incarnation(net->core[leaver]), 1);
	net_drain(net, leaver);
	int64_t spent = -1;
	for (int t = 0; t < 10000; t++) {
		if (swim_leave_done(net->core[leaver])) {
			spent = t;
			break;
		}
		net_run(net, 1);
	}
	assert_true(spent >= 0);
	net->up[leaver] = false; /* the process stops */
	for (int i = 0; i < 4; i++) {
		if (i == leaver)
			continue;
		assert_true(run_until(net, i, leaver, SWIM_LEFT, 5000) >= 0);
	}
	/* long after: still LEFT, never DEAD, never even suspected after */
	net_run(net, 30000);
	for (int i = 0; i < 4; i++)
		if (i != leaver)
			assert_int_equal(state_of(net, i, leaver, NULL), SWIM_LEFT);
	assert_int_equal(count_ev(net, -1, SWIM_EV_MEMBER_DEAD, "n2"), 0);
	assert_non_null(find_ev(net, 0, SWIM_EV_MEMBER_LEFT, "n2"));
	net_free(net);
}

static void test_restart_at_new_address(void **state)
{
	(void)state;
	struct net *net = cluster(3, NULL);
	net->up[2] = false;
	for (int i = 0; i < 2; i++)
		assert_true(run_until(net, i, 2, SWIM_DEAD, 30000) >= 0);
	struct swim_member_info mi;
	assert_true(swim_member_find(net->core[0], "n2", &mi));
	uint64_t dead_inc = mi.incarnation;
	/* same name, new address, incarnation 0 */
	int r = net_add(net, "n2", "10.0.1.2:7946", 0, NULL);
	const char *seed = net->addr[0];
	assert_int_equal(swim_join(net->core[r], &seed, 1, net->now), 0);
	net_drain(net, r);
	for (int i = 0; i < 2; i++) {
		int64_t t = run_until(net, i, r, SWIM_ALIVE, 10000);
		assert_true(t >= 0);
	}
	for (int i = 0; i < 2; i++) {
		assert_true(swim_member_find(net->core[i], "n2", &mi));
		assert_string_equal(mi.addr, "10.0.1.2:7946");
		assert_true(mi.incarnation > dead_inc);
		assert_non_null(find_ev(net, i, SWIM_EV_MEMBER_ADDR_CHANGED, "n2"));
	}
	assert_true(swim_incarnation(net->core[r]) > dead_inc);
	assert_non_null(find_ev(net, r, SWIM_EV_SELF_REFUTED, NULL));
	/* and it stays alive */
	net_run(net, 20000);
	for (int i = 0; i < 2; i++)
		assert_int_equal(state_of(net, i, r, NULL), SWIM_ALIVE);
	net_free(net);
}

static void test_partition_heals(void **state)
{
	(void)state;
	struct swim_config base;
	swim_config_default(&base);
	base.push_pull_interval_ms = 5000;
	struct net *net = cluster(4, &base);
	/* cut {n0,n1} from {n2,n3} until each side holds the other DEAD */
	net->side[2] = net->side[3] = 1;
	net->partitioned = true;
	for (int i = 0; i < 4; i++)
		for (int j = 0; j < 4; j++)
			if (net->side[i] != net->side[j])
				assert_true(run_until(net, i, j, SWIM_DEAD, 60000) >= 0);
	/* heal: only push-pull to a member held dead can bring them together */
	net->partitioned = false;
	bool healed = false;
	for (int t = 0; t < 120 && !healed; t++) {
		net_run(net, 1000);
		healed = true;
		for (int i = 0; i < 4; i++)
			for (int j = 0; j < 4; j++)
				if (state_of(net, i, j, NULL) != SWIM_ALIVE)
					healed = false;
	}
	assert_true(healed);
	net_free(net);
}

/* A node cut off alone suspects everyone, but its last-chance probes get no
 * answer from any helper, not even a NACK: the fault is its own, and it
 * must not declare anyone dead on its word alone (that verdict would spread
 * when it reconnects and kill healthy hosts). The others do declare IT
 * dead; once the link is back it refutes and the views converge. */
static void test_isolated_node_declares_nobody_dead(void **state)
{
	(void)state;
	struct net *net = cluster(5, NULL);
	net->side[4] = 1;
	net->partitioned = true;
	assert_true(run_until(net, 0, 4, SWIM_DEAD, 30000) >= 0);
	net_run(net, 30000); /* long past every suspicion timeout */
	for (int j = 0; j < 4; j++) {
		assert_int_equal(state_of(net, 4, j, NULL), SWIM_SUSPECT);
		assert_int_equal(count_ev(net, 4, SWIM_EV_MEMBER_DEAD, net->name[j]), 0);
	}
	assert_true(swim_local_health(net->core[4]) > 0);
	net->partitioned = false;
	bool healed = false;
	for (int t = 0; t < 90 && !healed; t++) {
		net_run(net, 1000);
		healed = true;
		for (int i = 0; i < 5; i++)
			for (int j = 0; j < 5; j++)
				if (state_of(net, i, j, NULL) != SWIM_ALIVE)
					healed = false;
	}
	assert_true(healed);
	net_free(net);
}

static void test_reap(void **state)
{
	(void)state;
	struct swim_config base;
	swim_config_default(&base);
	base.reap_ms = 5000;
	struct net *net = cluster(3, &base);
	net->up[2] = false;
	assert_true(run_until(net, 0, 2, SWIM_DEAD, 30000) >= 0);
	struct swim_member_info mi;
	assert_true(swim_member_find(net->core[0], "n2", &mi));
	uint64_t died = mi.since_ms;
	net_run(net, 4000);
	assert_true(swim_member_find(net->core[0], "n2", &mi));
	bool reaped = false;
	for (int t = 0; t < 3000 && !reaped; t++) {
		net_run(net, 1);
		reaped = !swim_member_find(net->core[0], "n2", &mi);
	}
	assert_true(reaped);
	assert_true(net->now >= died + 5000 && net->now <= died + 5002);
	const struct evrec *e = find_ev(net, 0, SWIM_EV_MEMBER_REAPED, "n2");
	assert_non_null(e);
	assert_int_equal(swim_member_count(net->core[0]), 2);
	uint32_t c[4];
	swim_state_counts(net->core[0], c);
	assert_int_equal(c[SWIM_DEAD], 0);
	assert_int_equal(c[SWIM_ALIVE], 2);
	net_free(net);
}

static void test_deterministic_replay(void **state)
{
	(void)state;
	uint64_t sums[2];
	for (int run = 0; run < 2; run++) {
		struct net *net = cluster(4, NULL);
		net->keep_sent = true;
		net->up[1] = false;
		net_run(net, 8000);
		uint64_t h = 1469598103934665603ULL;
		for (int k = 0; k < net->nsent; k++) {
			const struct swim_msg *m = &net->sent[k].m;
			h = (h ^ (uint64_t)m->type) * 1099511628211ULL;
			h = (h ^ m->seq) * 1099511628211ULL;
			for (const char *p = m->to_addr; *p; p++)
				h = (h ^ (uint64_t)(unsigned char)*p) * 1099511628211ULL;
		}
		h = (h ^ (uint64_t)net->nev) * 1099511628211ULL;
		sums[run] = h;
		assert_true(net->nsent > 30);
		net_free(net);
	}
	assert_true(sums[0] == sums[1]);
}

/* ------------------------------------------------------------------------ */
/* A string table shared by several cores (swim_config.strtab)             */

/* Hash of every message sent and event seen in a 4-node cluster whose n3
 * crashes (freed) and is detected; strtab NULL: private tables. */
static uint64_t shared_scenario(struct swim_strtab *t)
{
	struct swim_config base;
	swim_config_default(&base);
	base.strtab = t;
	struct net *net = cluster(4, &base);
	net->keep_sent = true;
	net->up[3] = false;
	swim_free(net->core[3]); /* a crash: its references go, n3 stays known */
	net->core[3] = NULL;
	assert_true(run_until(net, 0, 3, SWIM_DEAD, 30000) > 0);
	net_run(net, 2000);
	uint64_t h = 1469598103934665603ULL;
	for (int k = 0; k < net->nsent; k++) {
		const struct swim_msg *m = &net->sent[k].m;
		h = (h ^ (uint64_t)m->type) * 1099511628211ULL;
		h = (h ^ m->seq) * 1099511628211ULL;
		for (const char *p = m->to_addr; *p; p++)
			h = (h ^ (uint64_t)(unsigned char)*p) * 1099511628211ULL;
		h = (h ^ (uint64_t)m->n_updates) * 1099511628211ULL;
	}
	for (int k = 0; k < net->nev; k++) {
		h = (h ^ (uint64_t)net->ev[k].type) * 1099511628211ULL;
		h = (h ^ net->ev[k].at) * 1099511628211ULL;
		for (const char *p = net->ev[k].cause; *p; p++)
			h = (h ^ (uint64_t)(unsigned char)*p) * 1099511628211ULL;
	}
	net_free(net);
	return h;
}

static void test_shared_strtab(void **state)
{
	(void)state;
	struct swim_strtab *t = swim_strtab_new();
	assert_non_null(t);
	assert_int_equal(swim_strtab_count(t), 0);

	/* Two cores: each string once, however many cores hold it. */
	struct swim_config cfg;
	test_config(&cfg, "a", "10.0.0.1:7946", 1);
	cfg.strtab = t;
	struct net *net = net_new();
	int a = net_add(net, "a", "10.0.0.1:7946", 0, &cfg);
	assert_int_equal(swim_strtab_count(t), 2);
	int b = net_add(net, "b", "10.0.0.2:7946", 0, &cfg);
	assert_int_equal(swim_strtab_count(t), 4);
	assert_ptr_equal(swim_get_config(net->core[b])->strtab, t);
	const char *seed = net->addr[a];
	assert_int_equal(swim_join(net->core[b], &seed, 1, net->now), 0);
	net_drain(net, b);
	net_run(net, 3000);
	assert_int_equal(state_of(net, a, b, NULL), SWIM_ALIVE);
	assert_int_equal(state_of(net, b, a, NULL), SWIM_ALIVE);
	const char *names[] = {"a", "b"};
	for (int k = 0; k < 2; k++) {
		struct swim_member_info x, y;
		assert_true(swim_member_find(net->core[a], names[k], &x));
		assert_true(swim_member_find(net->core[b], names[k], &y));
		assert_ptr_equal(x.name, y.name); /* one copy, both cores */
		assert_ptr_equal(x.addr, y.addr);
	}
	size_t both = swim_strtab_count(t);
	assert_true(both >= 4);
	assert_true(swim_strtab_bytes(t) > 0);

	/* Freeing a gives back its references; b's strings stay valid. */
	swim_free(net->core[a]);
	net->core[a] = NULL;
	net->up[a] = false;
	assert_true(swim_strtab_count(t) <= both);
	struct swim_member_info mi;
	assert_true(swim_member_find(net->core[b], "a", &mi));
	assert_string_equal(mi.name, "a");
	assert_string_equal(mi.addr, "10.0.0.1:7946");
	assert_true(swim_member_find(net->core[b], "b", &mi));
	assert_string_equal(mi.addr, "10.0.0.2:7946");
	assert_true(run_until(net, b, a, SWIM_DEAD, 30000) > 0); /* b keeps working */
	assert_true(swim_member_find(net->core[b], "a", &mi));
	assert_string_equal(mi.addr, "10.0.0.1:7946");
	net_free(net);
	assert_int_equal(swim_strtab_count(t), 0); /* every reference given back */
	assert_int_equal(swim_strtab_bytes(t), 0);

	/* Sharing changes nothing in behaviour: same messages, same events. */
	uint64_t shared = shared_scenario(t);
	assert_int_equal(swim_strtab_count(t), 0);
	uint64_t priv = shared_scenario(NULL);
	assert_true(shared == priv);
	swim_strtab_free(t);
	swim_strtab_free(NULL);
}

/* ------------------------------------------------------------------------ */
/* Join announcements, refutations through helpers, verification probes    */

static bool has_upd(const struct swim_msg *m, const char *name, int st, int64_t inc,
                    const char *origin)
{
	for (size_t k = 0; k < m->n_updates; k++) {
		const struct swim_update *u = &m->updates[k];
		if (strcmp(u->name, name) == 0 && (st < 0 || (int)u->state == st) &&
		    (inc < 0 || u->incarnation == (uint64_t)inc) &&
		    (origin == NULL || strcmp(u->origin, origin) == 0))
			return true;
	}
	return false;
}

/* Pops and copies every output of s (caller frees with free_pkts). */
static int take(struct swim *s, struct pkt *out, int max)
{
	struct swim_msg m;
	struct swim_event e;
	int n = 0;
	while (swim_pop_event(s, &e))
		;
	while (swim_pop_output(s, &m)) {
		assert_true(n < max);
		pkt_copy(&out[n++], &m);
	}
	return n;
}

/* A joiner gossips its own ALIVE once the seed's table is in (before, it
 * only re-gossiped that table), and nobody spends a member's own ALIVE on
 * that member. */
static void test_joiner_announces_itself(void **state)
{
	(void)state;
	struct swim *j = solo("j", NULL);
	const char *seed = "s:7946";
	assert_int_equal(swim_join(j, &seed, 1, 0), 0);
	drop_all(j);
	struct swim_update tab[4] = {upd("s", SWIM_ALIVE, 0, ""), upd("b", SWIM_ALIVE, 0, ""),
	                             upd("c", SWIM_ALIVE, 3, ""), upd("d", SWIM_ALIVE, 0, "")};
	struct swim_msg r = mkmsg(SWIM_MSG_PUSH_PULL_REPLY, "s", "j", 0, tab, 4);
	assert_int_equal(swim_handle_message(j, &r, 10), 0);
	drop_all(j);
	uint64_t now = 10;
	int pings = 0;
	while (pings < 4) {
		struct pkt out[16];
		int n = step(j, &now, out, 16);
		for (int k = 0; k < n; k++) {
			if (out[k].m.type != SWIM_MSG_PING)
				continue;
			pings++;
			/* the first pings announce us; none wastes its target's
			 * own ALIVE on the target */
			if (pings <= 3)
				assert_true(has_upd(&out[k].m, "j", SWIM_ALIVE, 0, NULL));
			assert_false(has_upd(&out[k].m, out[k].m.to, SWIM_ALIVE, -1, NULL));
			/* answer, so that probes go on without suspicion */
			struct swim_msg ack =
			    mkmsg(SWIM_MSG_ACK, out[k].m.to, "j", out[k].m.seq, NULL, 0);
			assert_int_equal(swim_handle_message(j, &ack, now + 1), 0);
			drop_all(j);
		}
		free_pkts(out, n);
	}
	swim_free(j);
}

/* A PING or PING_REQ from a node we do not know teaches us about it
 * (ALIVE at incarnation 0), unless the message itself says otherwise. */
static void test_learns_unknown_sender(void **state)
{
	(void)state;
	struct swim *s = solo("me", NULL);
	drop_all(s);
	struct swim_msg ping = mkmsg(SWIM_MSG_PING, "x", "me", 5, NULL, 0);
	assert_int_equal(swim_handle_message(s, &ping, 10), 0);
	uint64_t inc = 99;
	assert_int_equal(mstate(s, "x", &inc), SWIM_ALIVE);
	assert_int_equal(inc, 0);
	struct swim_event e;
	bool joined = false;
	while (swim_pop_event(s, &e))
		if (e.type == SWIM_EV_MEMBER_JOINED && strcmp(e.name, "x") == 0)
			joined = strstr(e.cause, "directly") != NULL;
	assert_true(joined);
	drop_all(s);
	struct swim_msg req = mkmsg(SWIM_MSG_PING_REQ, "y", "me", 6, NULL, 0);
	req.target = "x";
	req.target_addr = "x:7946";
	assert_int_equal(swim_handle_message(s, &req, 11), 0);
	assert_int_equal(mstate(s, "y", NULL), SWIM_ALIVE);
	/* it says it left: the LEFT decides (unknown member: ignored) */
	struct swim_update left = upd("w", SWIM_LEFT, 2, "w");
	struct swim_msg lp = mkmsg(SWIM_MSG_PING, "w", "me", 7, &left, 1);
	assert_int_equal(swim_handle_message(s, &lp, 12), 0);
	struct swim_member_info mi;
	assert_false(swim_member_find(s, "w", &mi));
	/* a known sender is not touched: its incarnation stays */
	feed(s, "q", upd("z", SWIM_ALIVE, 7, ""), 13);
	struct swim_msg zp = mkmsg(SWIM_MSG_PING, "z", "me", 8, NULL, 0);
	assert_int_equal(swim_handle_message(s, &zp, 14), 0);
	assert_int_equal(mstate(s, "z", &inc), SWIM_ALIVE);
	assert_int_equal(inc, 7);
	swim_free(s);
}

/* Only a member raises its own incarnation (issue 13): a SUSPECT or DEAD
 * about another member above the incarnation we hold is refused, counted
 * and reported (rate-limited). A suspicion of a newer incarnation becomes
 * possible once the member's ALIVE at it is in: then it is a fresh start,
 * not a confirmation of the refuted one. The member's own LEFT comes at
 * its incarnation + 1 and is taken. */
static void test_suspect_above_held_refused(void **state)
{
	(void)state;
	struct swim *s = solo("me", NULL);
	/* 6 live: min 1000, max 6000, k 3 */
	const char *names[] = {"b", "c", "d", "e", "f"};
	for (int k = 0; k < 5; k++)
		feed(s, "x", upd(names[k], SWIM_ALIVE, 4, ""), 0);
	feed(s, "c", upd("b", SWIM_SUSPECT, 4, "c"), 100);
	drop_all(s);
	feed(s, "d", upd("b", SWIM_SUSPECT, 5, "d"), 3000);
	struct swim_member_info mi;
	assert_true(swim_member_find(s, "b", &mi));
	assert_int_equal(mi.state, SWIM_SUSPECT);
	assert_int_equal(mi.incarnation, 4);
	assert_int_equal(mi.since_ms, 100);
	assert_int_equal(swim_claims_refused(s), 1);
	struct swim_event e;
	assert_true(swim_pop_event(s, &e));
	assert_int_equal(e.type, SWIM_EV_CLAIM_REFUSED);
	assert_string_equal(e.name, "b");
	assert_int_equal(e.incarnation, 5);
	assert_non_null(strstr(e.cause, "above the incarnation we hold"));
	assert_non_null(strstr(e.cause, "from d"));
	/* a DEAD above it too, about a live member and a suspect alike:
	 * counted, no second event within SWIM_REFUSED_EVENT_MS */
	drop_all(s);
	feed(s, "d", upd("b", SWIM_DEAD, 9, "d"), 3001);
	feed(s, "d", upd("c", SWIM_DEAD, 5, "d"), 3002);
	assert_int_equal(mstate(s, "b", NULL), SWIM_SUSPECT);
	assert_int_equal(mstate(s, "c", NULL), SWIM_ALIVE);
	assert_int_equal(swim_claims_refused(s), 3);
	assert_false(swim_pop_event(s, &e));
	/* the member's own refutation, then a suspicion at it: fresh start */
	feed(s, "b", upd("b", SWIM_ALIVE, 5, ""), 3003);
	feed(s, "d", upd("b", SWIM_SUSPECT, 5, "d"), 3004);
	drop_all(s);
	assert_true(swim_member_find(s, "b", &mi));
	assert_int_equal(mi.state, SWIM_SUSPECT);
	assert_int_equal(mi.incarnation, 5);
	assert_int_equal(mi.since_ms, 3004);
	uint64_t now = 3004;
	while (swim_next_deadline(s) <= 3004 + 5999) {
		now = swim_next_deadline(s);
		swim_handle_timer(s, now);
		drop_all(s);
		assert_int_equal(mstate(s, "b", NULL), SWIM_SUSPECT);
	}
	/* and the same incarnation again is a confirmation */
	feed(s, "e", upd("b", SWIM_SUSPECT, 5, "e"), now);
	assert_true(swim_member_find(s, "b", &mi));
	assert_int_equal(mi.since_ms, 3004);
	/* a leave comes at the leaver's incarnation + 1, not above */
	feed(s, "x", upd("e", SWIM_LEFT, 6, "e"), now);
	assert_int_equal(mstate(s, "e", NULL), SWIM_ALIVE);
	feed(s, "x", upd("e", SWIM_LEFT, 5, "e"), now);
	assert_int_equal(mstate(s, "e", NULL), SWIM_LEFT);
	/* after SWIM_REFUSED_EVENT_MS the next refusal is reported, with the
	 * count of those held back */
	drop_all(s);
	feed(s, "d", upd("c", SWIM_SUSPECT, 7, "d"), 3000 + SWIM_REFUSED_EVENT_MS);
	assert_true(swim_pop_event(s, &e));
	assert_int_equal(e.type, SWIM_EV_CLAIM_REFUSED);
	assert_string_equal(e.name, "c");
	assert_non_null(strstr(e.cause, "(3 more since)"));
	swim_free(s);
}

/* One peer's word kills nobody (issue 13): a DEAD gossiped by another
 * member about one we hold ALIVE is taken as a suspicion, and we check
 * the member ourselves at once (a PING carrying the suspicion, PING_REQs
 * through helpers). A live member refutes in its ACK and is never DEAD
 * here; a silent one is DEAD after one protocol period, the cause naming
 * the reporter. A DEAD on top of our own suspicion is taken at once. */
/* a holds b, c, d, e alive at 3; b (at 3) holds a: a's check of b can
 * reach b. Outputs and events dropped. */
static void check_setup(struct swim *a, struct swim *b, uint64_t now)
{
	const char *names[] = {"b", "c", "d", "e"};
	for (int k = 0; k < 4; k++)
		feed(a, "x", upd(names[k], SWIM_ALIVE, 3, ""), now);
	feed(b, "x", upd("a", SWIM_ALIVE, 0, ""), now);
	assert_int_equal(swim_raise_incarnation(b, 3, "test", now), 0);
	drop_all(a);
	drop_all(b);
}

/* Drains a's output: its PING to `name` copied into *ping, and the number
 * of PING_REQs about `name` returned (a last-chance probe). */
static int check_probe_of(struct swim *a, const char *name, struct pkt *ping)
{
	struct swim_msg m;
	int ping_reqs = 0;
	while (swim_pop_output(a, &m)) {
		if (m.type == SWIM_MSG_PING && strcmp(m.to, name) == 0)
			pkt_copy(ping, &m);
		ping_reqs += m.type == SWIM_MSG_PING_REQ && strcmp(m.target, name) == 0;
	}
	return ping_reqs;
}

static void test_dead_needs_our_own_check(void **state)
{
	(void)state;
	struct swim *a = solo_min1("a"), *b = solo("b", NULL);
	uint64_t now = 10;
	check_setup(a, b, now);
	/* n9 says b is dead */
	feed(a, "n9", upd("b", SWIM_DEAD, 3, "n9"), now);
	assert_int_equal(mstate(a, "b", NULL), SWIM_SUSPECT);
	struct swim_msg m;
	struct pkt ping = {0};
	int ping_reqs = check_probe_of(a, "b", &ping);
	assert_non_null(ping.blob);
	assert_int_equal(ping_reqs, 3);
	/* b, alive, refutes in its ACK: never DEAD at a */
	assert_int_equal(swim_handle_message(b, &ping.m, now + 1), 0);
	assert_int_equal(swim_incarnation(b), 4);
	deliver_refutation(b, a, now + 2, 4);
	struct swim_event e;
	while (swim_pop_event(a, &e))
		assert_int_not_equal(e.type, SWIM_EV_MEMBER_DEAD);
	free(ping.blob);

	/* n9 says c is dead and c is silent; the helpers NACK: DEAD after
	 * one protocol period, on our own probe's failure */
	drop_all(a);
	now += 100;
	feed(a, "n9", upd("c", SWIM_DEAD, 3, "n9"), now);
	assert_int_equal(mstate(a, "c", NULL), SWIM_SUSPECT);
	uint64_t seq = 0;
	const char *helper[4];
	int n_helpers = 0;
	while (swim_pop_output(a, &m))
		if (m.type == SWIM_MSG_PING_REQ && strcmp(m.target, "c") == 0) {
			seq = m.seq;
			helper[n_helpers++] = strcmp(m.to, "b") == 0   ? "b"
			                      : strcmp(m.to, "d") == 0 ? "d"
			                                               : "e";
		}
	assert_true(n_helpers > 0);
	for (int k = 0; k < n_helpers; k++) {
		struct swim_msg nk = mkmsg(SWIM_MSG_NACK, helper[k], "a", seq, NULL, 0);
		nk.target = "c";
		assert_int_equal(swim_handle_message(a, &nk, now + 400), 0);
	}
	drop_all(a);
	assert_int_equal(mstate(a, "c", NULL), SWIM_SUSPECT);
	bool dead = false;
	while (!dead && now < 10000) {
		now = swim_next_deadline(a);
		swim_handle_timer(a, now);
		while (swim_pop_event(a, &e))
			if (e.type == SWIM_EV_MEMBER_DEAD) {
				dead = true;
				assert_string_equal(e.name, "c");
				assert_non_null(strstr(
				    e.cause, "reported dead by n9, and our own probe failed"));
			}
		while (swim_pop_output(a, &m))
			;
	}
	assert_true(dead);
	assert_true(now <= 110 + 1000); /* one protocol period */

	/* our own suspicion of d first: a DEAD from another is taken at once */
	feed(a, "x", upd("d", SWIM_SUSPECT, 3, "a"), now);
	feed(a, "n9", upd("d", SWIM_DEAD, 3, "n9"), now);
	assert_int_equal(mstate(a, "d", NULL), SWIM_DEAD);
	swim_free(a);
	swim_free(b);
}

/* Incarnations have a ceiling far below wrap (issue 13): a claim above it
 * is refused, a refutation stops at it instead of wrapping to 0, and a
 * claim about us may raise our incarnation by SWIM_INCARNATION_JUMP_MAX at
 * most. */
/* s has exactly one event: a SWIM_EV_CLAIM_REFUSED about name, for why. */
static void assert_one_refusal(struct swim *s, const char *name, const char *why)
{
	struct swim_event e;
	assert_true(swim_pop_event(s, &e));
	assert_int_equal(e.type, SWIM_EV_CLAIM_REFUSED);
	assert_string_equal(e.name, name);
	assert_non_null(strstr(e.cause, why));
	assert_false(swim_pop_event(s, &e));
}

static void test_incarnation_bounds(void **state)
{
	(void)state;
	const uint64_t max = SWIM_INCARNATION_MAX;
	struct swim *s = solo("me", NULL);
	feed(s, "x", upd("b", SWIM_ALIVE, 1, ""), 1);
	drop_all(s);
	/* DEAD(me, 2^64 - 1): no refutation to 0 (it could never win) */
	feed(s, "b", upd("me", SWIM_DEAD, UINT64_MAX, "b"), 2);
	assert_int_equal(swim_incarnation(s), 0);
	assert_int_equal(mstate(s, "me", NULL), SWIM_ALIVE);
	/* DEAD(b, 2^64 - 1) and an unknown member ALIVE above the ceiling */
	feed(s, "x", upd("b", SWIM_DEAD, UINT64_MAX, "x"), 3);
	feed(s, "x", upd("c", SWIM_ALIVE, max + 1, ""), 4);
	feed(s, "x", upd("b", SWIM_ALIVE, max + 1, ""), 5);
	uint64_t inc;
	assert_int_equal(mstate(s, "b", &inc), SWIM_ALIVE);
	assert_int_equal(inc, 1);
	assert_false(swim_member_find(s, "c", NULL));
	assert_int_equal(swim_claims_refused(s), 4);
	assert_one_refusal(s, "me", "above the ceiling"); /* one event for the four */
	/* a claim about us may raise us by the jump limit, not more */
	feed(s, "b", upd("me", SWIM_DEAD, SWIM_INCARNATION_JUMP_MAX + 1, "b"), 6);
	assert_int_equal(swim_incarnation(s), 0);
	assert_int_equal(swim_claims_refused(s), 5);
	feed(s, "b", upd("me", SWIM_DEAD, SWIM_INCARNATION_JUMP_MAX, "b"), 7);
	assert_int_equal(swim_incarnation(s), SWIM_INCARNATION_JUMP_MAX + 1);
	/* and an ALIVE about another member raises it by as much, not more
	 * (b is at 1; a member held at 0 was taken in unheard: any is news) */
	feed(s, "x", upd("b", SWIM_ALIVE, SWIM_INCARNATION_JUMP_MAX + 2, ""), 8);
	assert_int_equal(mstate(s, "b", &inc), SWIM_ALIVE);
	assert_int_equal(inc, 1);
	assert_int_equal(swim_claims_refused(s), 6);
	feed(s, "x", upd("b", SWIM_ALIVE, SWIM_INCARNATION_JUMP_MAX + 1, ""), 9);
	mstate(s, "b", &inc);
	assert_int_equal(inc, SWIM_INCARNATION_JUMP_MAX + 1);
	feed(s, "x", upd("c", SWIM_ALIVE, 0, ""), 10);
	feed(s, "x", upd("c", SWIM_ALIVE, 1ull << 40, ""), 11);
	mstate(s, "c", &inc);
	assert_int_equal(inc, 1ull << 40);
	swim_free(s);

	/* at the ceiling: a refutation, a raise and a leave stay there */
	struct swim_config cfg;
	test_config(&cfg, "me", "me:7946", 7);
	assert_null(swim_new(&cfg, max + 1, 0));
	s = swim_new(&cfg, max - 1, 0);
	assert_non_null(s);
	feed(s, "x", upd("b", SWIM_ALIVE, max, ""), 1); /* at the ceiling: taken */
	assert_int_equal(mstate(s, "b", &inc), SWIM_ALIVE);
	assert_int_equal(inc, max);
	feed(s, "b", upd("me", SWIM_SUSPECT, max - 1, "b"), 2);
	assert_int_equal(swim_incarnation(s), max);
	feed(s, "b", upd("me", SWIM_SUSPECT, max, "b"), 3);
	assert_int_equal(swim_incarnation(s), max);
	assert_int_equal(swim_raise_incarnation(s, UINT64_MAX, "test", 4), 0);
	assert_int_equal(swim_incarnation(s), max);
	assert_int_equal(swim_leave(s, 5), 0);
	assert_int_equal(mstate(s, "me", &inc), SWIM_LEFT);
	assert_int_equal(inc, max);
	swim_free(s);
}

/* A helper's NACK and relayed ACK carry the target's state, so a requester
 * holding a refuted suspicion learns the refutation from the helper. */
/* ------------------------------------------------------------------------ */
/* Signed ALIVE claims (swim.c, A HOST SPEAKS ONLY FOR ITSELF)               */

/* A fake signature: "name@incarnation" (what only the member may write). */
static int fake_sign(void *arg, const char *name, uint64_t inc, uint8_t *out, size_t cap)
{
	int *signs = arg;
	if (signs != NULL)
		(*signs)++;
	int n = snprintf((char *)out, cap, "%s@%llu", name, (unsigned long long)inc);
	return n > 0 && (size_t)n < cap ? n : -ENOSPC;
}

static int fake_verify(void *arg, const char *name, uint64_t inc, const uint8_t *proof, size_t len)
{
	(void)arg;
	if (strcmp(name, "nokey") == 0)
		return -ENOKEY; /* a member whose key the glue does not know yet */
	if (len == 0)           /* "oldagent" signs no LEFTs (the glue knows by its record) */
		return strcmp(name, "oldagent") == 0 && (inc & SWIM_LEFT_CLAIM) ? 0 : -EACCES;
	uint8_t want[SWIM_PROOF_MAX];
	int n = fake_sign(NULL, name, inc, want, sizeof(want));
	return n > 0 && (size_t)n == len && memcmp(want, proof, len) == 0 ? 0 : -EACCES;
}

static void signed_config(struct swim_config *cfg, int *signs)
{
	cfg->alive_sign = fake_sign;
	cfg->alive_verify = fake_verify;
	cfg->claim_arg = signs;
}

static struct swim *solo_signed(const char *name, int *signs)
{
	struct swim_config cfg;
	solo_config(&cfg, name);
	signed_config(&cfg, signs);
	struct swim *s = swim_new(&cfg, 0, 0);
	assert_non_null(s);
	return s;
}

/* u with proof (name, inc) made by the fake; buf holds it */
static struct swim_update signed_upd(const char *name, uint64_t inc, uint64_t signed_inc,
                                     uint8_t buf[SWIM_PROOF_MAX])
{
	struct swim_update u = upd(name, SWIM_ALIVE, inc, "");
	int n = fake_sign(NULL, name, signed_inc, buf, SWIM_PROOF_MAX);
	assert_true(n > 0);
	u.proof = buf;
	u.proof_len = (size_t)n;
	return u;
}

/* The update about `name` in the first output of s that has one. */
static bool find_out_upd(struct swim *s, const char *name, struct swim_update *out,
                         uint8_t proof[SWIM_PROOF_MAX])
{
	struct swim_msg m;
	bool found = false;
	while (swim_pop_output(s, &m))
		for (size_t k = 0; !found && k < m.n_updates; k++)
			if (strcmp(m.updates[k].name, name) == 0) {
				*out = m.updates[k];
				if (out->proof_len > 0)
					out->proof = memcpy(proof, out->proof, out->proof_len);
				found = true;
			}
	return found;
}

/* u as a LEFT (origin its member) with the fake's proof of leaving at
 * signed_inc (| SWIM_LEFT_CLAIM); buf holds it. */
static struct swim_update left_upd(const char *name, uint64_t inc, uint64_t signed_inc,
                                   uint8_t buf[SWIM_PROOF_MAX])
{
	struct swim_update u = signed_upd(name, inc, signed_inc | SWIM_LEFT_CLAIM, buf);
	u.state = SWIM_LEFT;
	u.origin = name;
	return u;
}

/* Only the member says it left (issue 13): a relayed LEFT needs the
 * member's proof of leaving, signed as (name, incarnation | 2^63) so that
 * an ALIVE proof cannot stand for it nor it for an ALIVE; the member's own
 * LEFT (its sender authenticated by the transport) is taken unsigned;
 * swim_leave signs ours and our LEFT carries it, which a core that never
 * heard from us takes relayed. */
static void test_signed_left(void **state)
{
	(void)state;
	int signs = 0;
	struct swim *a = solo_signed("a", &signs);
	uint8_t pb[SWIM_PROOF_MAX];
	uint64_t inc;
	feed(a, "x", upd("b", SWIM_ALIVE, 3, ""), 1);
	feed(a, "x", upd("c", SWIM_ALIVE, 3, ""), 1);
	drop_all(a);
	/* forged: no proof; b's ALIVE proof of that incarnation; b's proof of
	 * leaving at another incarnation */
	feed(a, "x", upd("b", SWIM_LEFT, 4, "b"), 2);
	struct swim_update alive_proof = signed_upd("b", 4, 4, pb);
	alive_proof.state = SWIM_LEFT;
	alive_proof.origin = "b";
	feed(a, "x", alive_proof, 3);
	feed(a, "x", left_upd("b", 4, 3, pb), 3);
	assert_int_not_equal(mstate(a, "b", &inc), SWIM_LEFT);
	assert_int_equal(inc, 3);
	assert_int_equal(swim_claims_refused(a), 3);
	/* b's proof of leaving, relayed by x: taken */
	feed(a, "x", left_upd("b", 4, 4, pb), 4);
	assert_int_equal(mstate(a, "b", &inc), SWIM_LEFT);
	assert_int_equal(inc, 4);
	/* c's proof of leaving is no ALIVE proof, at 4 | 2^63 nor at 4 */
	uint8_t pc[SWIM_PROOF_MAX];
	feed(a, "x", signed_upd("c", 4, 4 | SWIM_LEFT_CLAIM, pc), 5);
	assert_int_equal(mstate(a, "c", &inc), SWIM_ALIVE);
	assert_int_equal(inc, 3);
	assert_int_equal(swim_claims_refused(a), 4);
	/* c's own LEFT, from c itself, unsigned: its own word */
	feed(a, "c", upd("c", SWIM_LEFT, 4, "c"), 6);
	assert_int_equal(mstate(a, "c", &inc), SWIM_LEFT);
	assert_int_equal(swim_claims_refused(a), 4);
	/* our own leave is signed (as a leave), and our LEFT carries that
	 * proof; e, which never heard from us, takes it relayed by d */
	int before = signs;
	drop_all(a);
	assert_int_equal(swim_leave(a, 7), 0);
	assert_int_equal(signs, before + 1);
	struct swim_msg ping = mkmsg(SWIM_MSG_PING, "d", "a", 1, NULL, 0);
	feed(a, "x", upd("d", SWIM_ALIVE, 1, ""), 8);
	assert_int_equal(swim_handle_message(a, &ping, 9), 0);
	struct swim_update r;
	uint8_t rp[SWIM_PROOF_MAX];
	assert_true(find_out_upd(a, "a", &r, rp));
	assert_int_equal(r.state, SWIM_LEFT);
	assert_int_equal(r.incarnation, 1);
	uint8_t want[SWIM_PROOF_MAX];
	int wn = fake_sign(NULL, "a", 1 | SWIM_LEFT_CLAIM, want, sizeof(want));
	assert_int_equal(r.proof_len, (size_t)wn);
	assert_memory_equal(r.proof, want, (size_t)wn);
	struct swim *e = solo_signed("e", NULL);
	feed(e, "y", upd("a", SWIM_ALIVE, 0, ""), 1);
	feed(e, "d", r, 2); /* relayed by d, with a's proof */
	assert_int_equal(mstate(e, "a", &inc), SWIM_LEFT);
	assert_int_equal(inc, 1);
	assert_int_equal(swim_claims_refused(e), 0);
	/* ... and e relays it with the proof (a third member takes it) */
	drop_all(e);
	struct swim_msg ping2 = mkmsg(SWIM_MSG_PING, "y", "e", 1, NULL, 0);
	assert_int_equal(swim_handle_message(e, &ping2, 3), 0);
	assert_true(find_out_upd(e, "a", &r, rp));
	assert_int_equal(r.state, SWIM_LEFT);
	assert_int_equal(r.proof_len, (size_t)wn);
	assert_memory_equal(r.proof, want, (size_t)wn);
	drop_all(a);
	drop_all(e);
	swim_free(a);
	swim_free(e);
}

/* A LEFT may raise the incarnation we hold by more than one only as the
 * member's word (a host that leaves right after joining, which we took in
 * at 0 from its first PING): with its proof, or from itself, and within
 * the jump limit; unproven it is a check at the incarnation we hold. A
 * member the glue knows for an agent that signs no LEFTs (an older one)
 * is taken unsigned, as before. */
static void test_signed_left_raises(void **state)
{
	(void)state;
	struct swim *a = solo_signed("a", NULL);
	uint8_t pb[SWIM_PROOF_MAX];
	uint64_t inc;
	struct swim_msg ping = mkmsg(SWIM_MSG_PING, "f", "a", 1, NULL, 0);
	assert_int_equal(swim_handle_message(a, &ping, 1), 0); /* f taken in at 0 */
	assert_int_equal(mstate(a, "f", &inc), SWIM_ALIVE);
	assert_int_equal(inc, 0);
	feed(a, "x", upd("g", SWIM_ALIVE, 3, ""), 1);
	feed(a, "x", upd("h", SWIM_ALIVE, 3, ""), 1);
	feed(a, "x", upd("k", SWIM_ALIVE, 3, ""), 1);
	drop_all(a);
	feed(a, "x", left_upd("f", 2, 2, pb), 2); /* proven, relayed */
	assert_int_equal(mstate(a, "f", &inc), SWIM_LEFT);
	assert_int_equal(inc, 2);
	feed(a, "h", upd("h", SWIM_LEFT, 7, "h"), 2); /* h's own word */
	assert_int_equal(mstate(a, "h", &inc), SWIM_LEFT);
	assert_int_equal(inc, 7);
	assert_int_equal(swim_claims_refused(a), 0);
	/* an agent that signs no LEFTs (the glue vouches): its relayed LEFT is
	 * taken unsigned, as before; its unsigned ALIVE raise is not */
	feed(a, "x", upd("oldagent", SWIM_ALIVE, 3, ""), 2);
	feed(a, "x", upd("oldagent", SWIM_ALIVE, 4, ""), 2);
	assert_int_equal(swim_claims_refused(a), 1);
	feed(a, "x", upd("oldagent", SWIM_LEFT, 4, "oldagent"), 2);
	assert_int_equal(mstate(a, "oldagent", &inc), SWIM_LEFT);
	assert_int_equal(inc, 4);
	/* unproven: a check at the incarnation we hold */
	feed(a, "x", upd("g", SWIM_LEFT, 9, "g"), 3);
	assert_int_equal(mstate(a, "g", &inc), SWIM_SUSPECT);
	assert_int_equal(inc, 3);
	/* proven, but past the jump limit */
	uint64_t far = 3 + SWIM_INCARNATION_JUMP_MAX + 1;
	feed(a, "x", left_upd("k", far, far, pb), 4);
	assert_int_equal(mstate(a, "k", &inc), SWIM_ALIVE);
	assert_int_equal(inc, 3);
	assert_int_equal(swim_claims_refused(a), 3);
	drop_all(a);
	swim_free(a);
}

/* Failing proofs cannot eat the loop: one message of 40 forged LEFTs
 * (each with a bad proof) from n9 costs 16 checks, the rest are refused
 * unchecked (and are reports to check, as any unproven LEFT); the next
 * second n9 gets 16 more; another sender's proof is checked meanwhile. */
static void test_failed_proofs_bounded(void **state)
{
	(void)state;
	struct swim *a = solo_signed("a", NULL);
	static const char *const names[40] = {
	    "m0",  "m1",  "m2",  "m3",  "m4",  "m5",  "m6",  "m7",  "m8",  "m9",
	    "m10", "m11", "m12", "m13", "m14", "m15", "m16", "m17", "m18", "m19",
	    "m20", "m21", "m22", "m23", "m24", "m25", "m26", "m27", "m28", "m29",
	    "m30", "m31", "m32", "m33", "m34", "m35", "m36", "m37", "m38", "m39"};
	uint8_t pb[40][SWIM_PROOF_MAX];
	struct swim_update ups[40];
	for (int k = 0; k < 40; k++) {
		feed(a, "x", upd(names[k], SWIM_ALIVE, 3, ""), 1);
		ups[k] = left_upd(names[k], 4, 9, pb[k]); /* a proof of another incarnation */
	}
	drop_all(a);
	uint64_t checked = swim_proofs_checked(a);
	struct swim_msg m = mkmsg(SWIM_MSG_ACK, "n9", "", 0, ups, 40);
	assert_int_equal(swim_handle_message(a, &m, 1000), 0);
	assert_int_equal(swim_proofs_checked(a) - checked, 16);
	assert_int_equal(swim_claims_refused(a), 40);
	for (int k = 0; k < 40; k++)
		assert_int_equal(mstate(a, names[k], NULL), SWIM_SUSPECT);
	/* another sender's proof is checked (and taken) meanwhile */
	uint8_t ok[SWIM_PROOF_MAX];
	feed(a, "y", upd("z", SWIM_ALIVE, 3, ""), 1001);
	feed(a, "y", left_upd("z", 4, 4, ok), 1001);
	assert_int_equal(mstate(a, "z", NULL), SWIM_LEFT);
	assert_int_equal(swim_proofs_checked(a) - checked, 17);
	/* n9, the next second: 16 more checks */
	struct swim_update again[20];
	for (int k = 0; k < 20; k++) {
		again[k] = ups[k];
		again[k].state = SWIM_ALIVE;
		again[k].origin = "";
		again[k].incarnation = 5;
	}
	m = mkmsg(SWIM_MSG_ACK, "n9", "", 0, again, 20);
	assert_int_equal(swim_handle_message(a, &m, 2001), 0);
	assert_int_equal(swim_proofs_checked(a) - checked, 17 + 16);
	drop_all(a);
	swim_free(a);
}

/* A LEFT relayed without a valid proof is a report to check, as a DEAD
 * from another member is: a suspicion (from the relay, at the incarnation
 * we hold) and our own probe at once, carrying the suspicion; the live
 * member refutes in its ACK. Nobody holds it left or dead. */
static void test_unproven_left_checked(void **state)
{
	(void)state;
	struct swim_config cfg;
	solo_config(&cfg, "a");
	cfg.suspicion_min_mult = 1;
	cfg.awareness_max = 64;
	signed_config(&cfg, NULL);
	struct swim *a = swim_new(&cfg, 0, 0);
	assert_non_null(a);
	struct swim *b = solo_signed("b", NULL);
	uint64_t now = 10;
	check_setup(a, b, now);
	/* n9 relays LEFT(b, 4, origin b) with a proof that is not b's */
	uint8_t bad[SWIM_PROOF_MAX];
	struct swim_update forged = left_upd("c", 4, 4, bad);
	forged.name = "b";
	forged.origin = "b";
	struct swim_msg m;
	struct swim_event e;
	uint64_t inc;
	feed(a, "n9", forged, now);
	struct pkt ping = {0};
	int ping_reqs = check_probe_of(a, "b", &ping), refusals = 0;
	assert_int_equal(mstate(a, "b", &inc), SWIM_SUSPECT);
	assert_int_equal(inc, 3);
	assert_int_equal(swim_claims_refused(a), 1);
	while (swim_pop_event(a, &e)) {
		assert_int_not_equal(e.type, SWIM_EV_MEMBER_LEFT);
		assert_int_not_equal(e.type, SWIM_EV_MEMBER_DEAD);
		if (e.type == SWIM_EV_CLAIM_REFUSED) {
			refusals++;
			assert_non_null(strstr(e.cause, "bad proof of leaving"));
		}
		if (e.type == SWIM_EV_MEMBER_SUSPECT)
			assert_non_null(strstr(e.cause, "unproven LEFT by gossip from n9"));
	}
	assert_int_equal(refusals, 1);
	assert_non_null(ping.blob);
	assert_int_equal(ping_reqs, 3);
	assert_true(has_upd(&ping.m, "b", SWIM_SUSPECT, 3, "n9")); /* buddy */
	/* the same forgery again, and one without a proof: counted, no
	 * second report within SWIM_REFUSED_EVENT_MS, no LEFT */
	feed(a, "n9", forged, now + 1);
	feed(a, "n9", upd("b", SWIM_LEFT, 4, "b"), now + 1);
	assert_int_equal(swim_claims_refused(a), 3);
	assert_int_equal(mstate(a, "b", NULL), SWIM_SUSPECT);
	while (swim_pop_event(a, &e))
		assert_int_not_equal(e.type, SWIM_EV_CLAIM_REFUSED);
	/* b, alive, refutes in its ACK: alive at a, above the suspicion */
	assert_int_equal(swim_handle_message(b, &ping.m, now + 2), 0);
	assert_int_equal(swim_incarnation(b), 4);
	assert_int_equal(mstate(b, "b", NULL), SWIM_ALIVE);
	deliver_refutation(b, a, now + 3, 4);
	free(ping.blob);
	drop_all(a);
	/* and stays so past the check's window (one protocol period):
	 * nothing left of the forgery runs out into a death */
	uint64_t end = now + 3000;
	while ((now = swim_next_deadline(a)) <= end) {
		swim_handle_timer(a, now);
		while (swim_pop_event(a, &e))
			assert_string_not_equal(e.name, "b");
		while (swim_pop_output(a, &m))
			;
	}
	assert_int_equal(mstate(a, "b", &inc), SWIM_ALIVE);
	assert_int_equal(inc, 4);
	swim_free(a);
	swim_free(b);
}

static void test_signed_alive(void **state)
{
	(void)state;
	int signs = 0;
	struct swim *a = solo_signed("a", &signs);
	assert_int_equal(signs, 1); /* our incarnation 0, signed once */
	uint8_t pb[SWIM_PROOF_MAX];
	uint64_t inc;
	/* a first sighting is taken unsigned: it raises nothing we hold */
	feed(a, "x", upd("b", SWIM_ALIVE, 1, ""), 1);
	feed(a, "x", upd("d", SWIM_ALIVE, 1, ""), 1);
	assert_int_equal(mstate(a, "b", &inc), SWIM_ALIVE);
	assert_int_equal(inc, 1);
	drop_all(a);
	/* a forged raise: no proof, then b's proof of another incarnation */
	feed(a, "x", upd("b", SWIM_ALIVE, 5, ""), 2);
	feed(a, "x", signed_upd("b", 6, 4, pb), 3);
	/* and a proof of the right incarnation for another name */
	struct swim_update other = signed_upd("c", 7, 7, pb);
	other.name = "b";
	feed(a, "x", other, 4);
	mstate(a, "b", &inc);
	assert_int_equal(inc, 1);
	assert_int_equal(swim_claims_refused(a), 3);
	assert_one_refusal(a, "b", "no proof of its member"); /* one event for the three */
	/* a forged raise of ourselves: refused, no refutation */
	feed(a, "x", upd("a", SWIM_ALIVE, 9, ""), 5);
	assert_int_equal(swim_incarnation(a), 0);
	assert_int_equal(swim_claims_refused(a), 4);
	assert_int_equal(signs, 1);
	/* b's own signed raise, relayed by x: taken */
	feed(a, "x", signed_upd("b", 5, 5, pb), 6);
	mstate(a, "b", &inc);
	assert_int_equal(inc, 5);
	/* a relays it with the proof byte for byte (here in its ACK to d's
	 * PING): c takes it from a */
	struct swim_msg ping = mkmsg(SWIM_MSG_PING, "d", "a", 1, NULL, 0);
	assert_int_equal(swim_handle_message(a, &ping, 7), 0);
	struct swim_update r;
	uint8_t rp[SWIM_PROOF_MAX];
	assert_true(find_out_upd(a, "b", &r, rp));
	assert_int_equal(r.incarnation, 5);
	assert_int_equal(r.proof_len, 3);
	assert_memory_equal(r.proof, "b@5", 3);
	struct swim *c = solo_signed("c", NULL);
	feed(c, "y", upd("b", SWIM_ALIVE, 1, ""), 1);
	feed(c, "a", r, 2);
	mstate(c, "b", &inc);
	assert_int_equal(inc, 5);
	assert_int_equal(swim_claims_refused(c), 0);
	/* a DEAD member comes back only on its own word too */
	feed(c, "a", upd("b", SWIM_SUSPECT, 5, "a"), 3);
	feed(c, "b", upd("b", SWIM_DEAD, 5, "b"), 4);
	drop_all(c);
	enum swim_state st = mstate(c, "b", &inc);
	assert_true(st == SWIM_SUSPECT || st == SWIM_DEAD);
	feed(c, "x", upd("b", SWIM_ALIVE, 6, ""), 5);
	assert_int_equal(mstate(c, "b", &inc), st);
	assert_int_equal(inc, 5);
	feed(c, "x", signed_upd("b", 6, 6, pb), 6);
	assert_int_equal(mstate(c, "b", &inc), SWIM_ALIVE);
	assert_int_equal(inc, 6);
	/* a raise we cannot check yet (no key of its member): refused and
	 * counted, not reported (the report is kept for forgeries) */
	drop_all(c);
	uint64_t before = swim_claims_refused(c);
	feed(c, "x", upd("nokey", SWIM_ALIVE, 1, ""), 8);
	feed(c, "x", signed_upd("nokey", 2, 2, pb), 9);
	mstate(c, "nokey", &inc);
	assert_int_equal(inc, 1);
	assert_int_equal(swim_claims_refused(c), before + 1);
	struct swim_event ev;
	while (swim_pop_event(c, &ev))
		assert_int_not_equal(ev.type, SWIM_EV_CLAIM_REFUSED);
	/* but the member's own word, sent by itself, needs no proof (an
	 * agent older than proofs refutes so) */
	feed(c, "nokey", upd("nokey", SWIM_ALIVE, 3, ""), 10);
	mstate(c, "nokey", &inc);
	assert_int_equal(inc, 3);
	/* a proof longer than SWIM_PROOF_MAX: the message is malformed */
	uint8_t big[SWIM_PROOF_MAX + 1] = {0};
	struct swim_update u = upd("b", SWIM_ALIVE, 7, "");
	u.proof = big;
	u.proof_len = sizeof(big);
	struct swim_msg m = mkmsg(SWIM_MSG_ACK, "x", "", 0, &u, 1);
	assert_int_equal(swim_handle_message(c, &m, 7), -EINVAL);
	swim_free(c);
	swim_free(a);
}

/* A false suspicion is refuted end to end in a signed cluster: the suspect
 * signs its new incarnation once, the others take the signed refutation
 * (relayed or not), nobody refuses anything, nobody dies; and a forged
 * raise of n2 injected at n0 moves nobody's view of n2. */
static void test_signed_refutation_end_to_end(void **state)
{
	(void)state;
	struct swim_config base;
	test_config(&base, "", "", 1);
	int signs = 0;
	signed_config(&base, &signs);
	struct net *net = cluster(4, &base);
	assert_int_equal(signs, 4);
	suspect_n2_refuted(net);
	assert_int_equal(signs, 5); /* n2 signed its incarnation 1, once */
	net_run(net, 10000);
	for (int i = 0; i < 4; i++) {
		struct swim_member_info mi;
		assert_true(swim_member_find(net->core[i], "n2", &mi));
		assert_int_equal(mi.state, SWIM_ALIVE);
		assert_int_equal(mi.incarnation, 1);
		assert_int_equal(swim_claims_refused(net->core[i]), 0);
	}
	/* the forgery */
	tell_n0_about_n2(net, 3, SWIM_ALIVE, 50);
	net_run(net, 10000);
	assert_int_equal(swim_incarnation(net->core[2]), 1);
	assert_int_equal(swim_claims_refused(net->core[0]), 1);
	assert_int_equal(count_ev(net, -1, SWIM_EV_MEMBER_DEAD, "n2"), 0);
	net_free(net);
}

/* With proofs on, a message's gossip stays within SWIM_PIGGYBACK_BYTES
 * (about) even with a large update budget: a 1200-byte datagram. */
static void test_signed_piggyback_budget(void **state)
{
	(void)state;
	struct swim *a = solo_signed("a", NULL);
	uint8_t pb[SWIM_PROOF_MAX];
	char names[40][16];
	for (int k = 0; k < 40; k++) {
		snprintf(names[k], sizeof(names[k]), "member-%02d", k);
		/* first sightings carrying long (100-byte) valid proofs */
		struct swim_update u = upd(names[k], SWIM_ALIVE, 1, "");
		memset(pb, 'p', 100);
		int n = fake_sign(NULL, names[k], 1, pb, sizeof(pb));
		assert_true(n > 0);
		u.proof = pb;
		u.proof_len = (size_t)n;
		feed(a, "x", u, 1);
	}
	drop_all(a);
	/* a PING from member-00 is answered with an ACK carrying gossip */
	struct swim_msg ping = mkmsg(SWIM_MSG_PING, "member-00", "a", 1, NULL, 0);
	assert_int_equal(swim_handle_message(a, &ping, 2), 0);
	struct swim_msg m;
	bool acked = false;
	while (swim_pop_output(a, &m)) {
		if (m.type != SWIM_MSG_ACK)
			continue;
		acked = true;
		size_t bytes = 0, proofs = 0;
		for (size_t k = 0; k < m.n_updates; k++) {
			bytes += strlen(m.updates[k].name) + strlen(m.updates[k].addr) +
			         m.updates[k].proof_len + 24;
			proofs += m.updates[k].proof_len > 0;
		}
		assert_true(m.n_updates > 0);
		assert_int_equal(proofs, m.n_updates);
		assert_true(bytes <= SWIM_PIGGYBACK_BYTES);
	}
	assert_true(acked);
	swim_free(a);
}

static void test_relay_carries_target_state(void **state)
{
	(void)state;
	struct swim_config cfg;
	struct swim *h = solo("h", &cfg);
	feed(h, "x", upd("t", SWIM_ALIVE, 5, ""), 1);
	/* spend t's ALIVE broadcast, so only the new rule can carry it */
	for (int k = 0; k < 8; k++) {
		struct swim_msg ping = mkmsg(SWIM_MSG_PING, "t", "h", 100 + (uint64_t)k, NULL, 0);
		assert_int_equal(swim_handle_message(h, &ping, 2), 0);
		drop_all(h);
	}
	struct swim_msg req = mkmsg(SWIM_MSG_PING_REQ, "r", "h", 77, NULL, 0);
	req.target = "t";
	req.target_addr = "t:7946";
	assert_int_equal(swim_handle_message(h, &req, 100), 0);
	drop_all(h);
	swim_handle_timer(h, 100 + cfg.probe_timeout_ms * 8 / 10);
	struct pkt out[16];
	int n = take(h, out, 16);
	bool nack = false;
	for (int k = 0; k < n; k++)
		if (out[k].m.type == SWIM_MSG_NACK) {
			nack = true;
			assert_true(has_upd(&out[k].m, "t", SWIM_ALIVE, 5, NULL));
		}
	free_pkts(out, n);
	assert_true(nack);
	/* relayed ACK */
	req.seq = 78;
	assert_int_equal(swim_handle_message(h, &req, 1000), 0);
	n = take(h, out, 16);
	uint64_t seq = 0;
	for (int k = 0; k < n; k++)
		if (out[k].m.type == SWIM_MSG_PING)
			seq = out[k].m.seq;
	free_pkts(out, n);
	struct swim_msg ack = mkmsg(SWIM_MSG_ACK, "t", "h", seq, NULL, 0);
	ack.target = "t";
	assert_int_equal(swim_handle_message(h, &ack, 1010), 0);
	n = take(h, out, 16);
	bool relayed = false;
	for (int k = 0; k < n; k++)
		if (out[k].m.type == SWIM_MSG_ACK && out[k].m.seq == 78) {
			relayed = true;
			assert_true(has_upd(&out[k].m, "t", SWIM_ALIVE, 5, NULL));
		}
	free_pkts(out, n);
	assert_true(relayed);
	swim_free(h);

	/* the requester's side: it suspects t at 4, a NACK brings t at 5 */
	struct swim *r = solo("r", NULL);
	const char *names[] = {"t", "h", "c", "d"};
	for (int k = 0; k < 4; k++)
		feed(r, "x", upd(names[k], SWIM_ALIVE, 4, ""), 0);
	feed(r, "c", upd("t", SWIM_SUSPECT, 4, "c"), 10);
	struct swim_update u = upd("t", SWIM_ALIVE, 5, "");
	struct swim_msg nk = mkmsg(SWIM_MSG_NACK, "h", "r", 1234, &u, 1);
	nk.target = "t";
	assert_int_equal(swim_handle_message(r, &nk, 20), 0);
	uint64_t inc;
	assert_int_equal(mstate(r, "t", &inc), SWIM_ALIVE);
	assert_int_equal(inc, 5);
	swim_free(r);
}

/* Verification probe: a suspicion heard by gossip makes us probe the
 * suspect at once (here always: N - 2 <= 2k). No ACK and a helper's NACK:
 * our own suspicion, gossiped with us as origin, which shortens the
 * timeout. No NACK (we may be the one cut off) or an ACK: no evidence. */
static void verification_case(int outcome, uint64_t *dead_at)
{
	struct swim *s = solo_min1("me");
	const char *names[] = {"b", "c", "d", "e"};
	for (int k = 0; k < 4; k++)
		feed(s, "x", upd(names[k], SWIM_ALIVE, 0, ""), 0);
	drop_all(s);
	/* 5 live: min 1000, max 6000, k 3 */
	feed(s, "c", upd("b", SWIM_SUSPECT, 0, "c"), 100);
	struct pkt out[16];
	int n = take(s, out, 16);
	uint64_t seq = 0;
	int reqs = 0;
	for (int k = 0; k < n; k++) {
		if (out[k].m.type == SWIM_MSG_PING && strcmp(out[k].m.to, "b") == 0) {
			seq = out[k].m.seq;
			assert_true(has_upd(&out[k].m, "b", SWIM_SUSPECT, 0, NULL)); /* buddy */
		}
		if (out[k].m.type == SWIM_MSG_PING_REQ && strcmp(out[k].m.target, "b") == 0)
			reqs++;
	}
	free_pkts(out, n);
	assert_int_not_equal(seq, 0);
	assert_int_equal(reqs, 3);
	if (outcome == 1) {
		struct swim_msg nk = mkmsg(SWIM_MSG_NACK, "d", "me", seq, NULL, 0);
		nk.target = "b";
		assert_int_equal(swim_handle_message(s, &nk, 500), 0);
	} else if (outcome == 2) {
		struct swim_msg ack = mkmsg(SWIM_MSG_ACK, "b", "me", seq, NULL, 0);
		ack.target = "b";
		assert_int_equal(swim_handle_message(s, &ack, 300), 0);
	}
	bool own = false;
	uint64_t now = 500;
	*dead_at = 0;
	while (now < 20000 && *dead_at == 0) {
		n = step(s, &now, out, 16);
		for (int k = 0; k < n; k++)
			own |= has_upd(&out[k].m, "b", SWIM_SUSPECT, 0, "me");
		free_pkts(out, n);
		if (mstate(s, "b", NULL) == SWIM_DEAD)
			*dead_at = now;
	}
	/* (without the NACK our regular probe of b may confirm it later on) */
	if (outcome == 1) {
		/* our own suspicion: gossiped as ours, or (when the timeout came
		 * first) counted as our confirmation in the verdict */
		struct swim_member_info mi;
		assert_true(swim_member_find(s, "b", &mi));
		assert_true(own || strstr(mi.cause, "confirmed by me") != NULL);
	}
	swim_free(s);
}

static void test_verification_probe(void **state)
{
	(void)state;
	uint64_t dead_at;
	/* confirmed by ourselves: 6000 - 5000 * ln 2 / ln 3 = 2845 after 100 */
	verification_case(1, &dead_at);
	assert_int_equal(dead_at, 2945);
	/* no NACK: the full 6000, then a last-chance probe, which no helper
	 * answers either: we may be the one cut off (our probes all fail), so
	 * no verdict on our word alone for two maximum timeouts (gray rule) */
	verification_case(0, &dead_at);
	assert_true(dead_at == 0 || dead_at > 100 + 2 * 6000);
	/* an ACK: the deadline restarts the clock instead (6100 + 6000),
	 * then the same: no verdict before two maximum timeouts either */
	verification_case(2, &dead_at);
	assert_true(dead_at == 0 || dead_at > 100 + 2 * 6000);
}

/* Only about 2k of N members verify a given suspicion. */
static void test_verification_is_sampled(void **state)
{
	(void)state;
	int verifiers = 0;
	const int n = 52; /* 2k / (N - 2) = 6 / 50 */
	for (int run = 0; run < 200; run++) {
		struct swim_config cfg;
		char nm[16], addr[32];
		snprintf(nm, sizeof(nm), "me%d", run);
		snprintf(addr, sizeof(addr), "%s:7946", nm);
		test_config(&cfg, nm, addr, (uint64_t)run + 1);
		cfg.gossip_interval_ms = 0;
		cfg.push_pull_interval_ms = 0;
		struct swim *s = swim_new(&cfg, 0, 0);
		for (int k = 0; k < n - 1; k++) {
			char name[16];
			snprintf(name, sizeof(name), "m%d", k);
			feed(s, "x", upd(name, SWIM_ALIVE, 0, ""), 0);
		}
		drop_all(s);
		feed(s, "m1", upd("m0", SWIM_SUSPECT, 0, "m1"), 10);
		struct swim_msg m;
		bool v = false;
		while (swim_pop_output(s, &m))
			v |= m.type == SWIM_MSG_PING_REQ && strcmp(m.target, "m0") == 0;
		verifiers += v;
		swim_free(s);
	}
	/* expected 200 * 6 / 50 = 24 */
	assert_true(verifiers >= 10 && verifiers <= 45);
}

/* Learning a new member pulls the next push-pull to 2-5 s later (a join
 * storm heals in seconds), at most once per base interval. */
static uint64_t first_push_pull_at(struct swim *s, uint64_t *now, uint64_t until)
{
	struct pkt out[64];
	while (swim_next_deadline(s) <= until) {
		int n = step(s, now, out, 64);
		bool pp = false;
		for (int k = 0; k < n; k++)
			pp |= out[k].m.type == SWIM_MSG_PUSH_PULL;
		free_pkts(out, n);
		if (pp)
			return *now;
	}
	return UINT64_MAX;
}

static void test_new_member_brings_push_pull_forward(void **state)
{
	(void)state;
	struct swim_config cfg;
	char addr[32];
	snprintf(addr, sizeof(addr), "a:7946");
	test_config(&cfg, "a", addr, 7);
	cfg.gossip_interval_ms = 0;
	cfg.push_pull_interval_ms = 60000; /* regular one: 30-90 s after start */
	struct swim *s = swim_new(&cfg, 0, 0);
	assert_non_null(s);
	uint64_t now = 1000;
	feed(s, "b", upd("b", SWIM_ALIVE, 1, ""), now);
	drop_all(s);
	uint64_t at = first_push_pull_at(s, &now, 20000);
	assert_true(at >= 1000 + 2000 && at <= 1000 + 5000);
	/* another newcomer soon after does not bring the next one forward */
	feed(s, "c", upd("c", SWIM_ALIVE, 1, ""), now);
	drop_all(s);
	uint64_t again = first_push_pull_at(s, &now, at + 20000);
	assert_true(again == UINT64_MAX || again >= at + 20000);
	swim_free(s);
}

/* A member we hold DEAD that talks to us gets our DEAD record back, so it
 * can refute straight to us (its gossip may all have missed us). */
static void test_dead_sender_told(void **state)
{
	(void)state;
	struct swim *a = solo("a", NULL);
	uint64_t now = 1000;
	feed(a, "b", upd("b", SWIM_ALIVE, 0, ""), now);
	dead_on_our_suspicion(a, "c", "b", 0, now);
	drop_all(a);
	/* b, restarted, gossips something unrelated to a */
	struct swim_update u = upd("c", SWIM_ALIVE, 0, "");
	struct swim_msg g = mkmsg(SWIM_MSG_ACK, "b", "a", 0, &u, 1);
	assert_int_equal(swim_handle_message(a, &g, now), 0);
	struct swim_msg out;
	bool told = false;
	while (swim_pop_output(a, &out)) {
		if (strcmp(out.to, "b") != 0)
			continue;
		for (size_t k = 0; k < out.n_updates; k++)
			told |= strcmp(out.updates[k].name, "b") == 0 &&
			        out.updates[k].state == SWIM_DEAD;
	}
	assert_true(told);
	/* once b is alive again in a's view, nothing more is sent for it */
	feed(a, "b", upd("b", SWIM_ALIVE, 1, ""), now);
	drop_all(a);
	assert_int_equal(swim_handle_message(a, &g, now), 0);
	told = false;
	while (swim_pop_output(a, &out))
		told |= strcmp(out.to, "b") == 0;
	assert_false(told);
	swim_free(a);
}

/* ------------------------------------------------------------------------ */
/* Issue 11: refusals, dead members probed, the gray-host rule              */

/* A solo "me" knowing b, c, d, e, f (ALIVE, incarnation 0); outputs
 * dropped. k = 3 helpers of the 4 others: one member is never asked. */
static struct swim *five(void)
{
	struct swim *s = solo("me", NULL);
	const char *names[] = {"b", "c", "d", "e", "f"};
	for (int k = 0; k < 5; k++)
		feed(s, "x", upd(names[k], SWIM_ALIVE, 0, ""), 0);
	drop_all(s);
	return s;
}

/* The PING to b and the PING_REQs about b in out[]: the probe's seq and
 * its helpers' names (static storage). */
static int probe_of_b(struct pkt *out, int n, uint64_t *seq, char helpers[][SWIM_NAME_MAX])
{
	int h = 0;
	*seq = 0;
	for (int k = 0; k < n; k++) {
		if (out[k].m.type == SWIM_MSG_PING && strcmp(out[k].m.to, "b") == 0)
			*seq = out[k].m.seq;
		if (out[k].m.type == SWIM_MSG_PING_REQ && strcmp(out[k].m.target, "b") == 0)
			snprintf(helpers[h++], SWIM_NAME_MAX, "%s", out[k].m.to);
	}
	return h;
}

static struct swim_msg nack_about_b(const char *from, uint64_t seq, bool refused)
{
	struct swim_msg nk = mkmsg(SWIM_MSG_NACK, from, "me", seq, NULL, 0);
	nk.target = "b";
	nk.refused = refused;
	return nk;
}

/* Runs s's timers up to `until` (outputs dropped); the time b went DEAD,
 * or 0. */
static uint64_t run_solo(struct swim *s, uint64_t until)
{
	uint64_t dead = 0;
	while (swim_next_deadline(s) <= until) {
		uint64_t now = swim_next_deadline(s);
		assert_int_equal(swim_handle_timer(s, now), 0);
		drop_all(s);
		if (dead == 0 && mstate(s, "b", NULL) == SWIM_DEAD)
			dead = now;
	}
	return dead;
}

/* A refusal makes the member SUSPECT at once and sends an immediate probe
 * (PING carrying the suspicion + k PING_REQs); bad calls change nothing. */
static void test_refused_makes_suspect(void **state)
{
	(void)state;
	struct swim *s = five();
	assert_int_equal(swim_peer_refused(NULL, "b", 100), -EINVAL);
	assert_int_equal(swim_peer_refused(s, NULL, 100), -EINVAL);
	assert_int_equal(swim_peer_refused(s, "", 100), -EINVAL);
	assert_int_equal(swim_peer_refused(s, "me", 100), -EINVAL);
	char lng[SWIM_NAME_MAX + 8];
	memset(lng, 'x', sizeof(lng) - 1);
	lng[sizeof(lng) - 1] = '\0';
	assert_int_equal(swim_peer_refused(s, lng, 100), -EINVAL);
	assert_int_equal(swim_peer_refused(s, "stranger", 100), -ENOENT);
	struct swim_msg m;
	assert_false(swim_pop_output(s, &m));
	assert_int_equal(mstate(s, "b", NULL), SWIM_ALIVE);

	assert_int_equal(swim_peer_refused(s, "b", 100), 0);
	struct swim_member_info mi;
	assert_true(swim_member_find(s, "b", &mi));
	assert_int_equal(mi.state, SWIM_SUSPECT);
	assert_string_equal(mi.cause, "connection refused");
	struct pkt out[16];
	int n = take(s, out, 16);
	uint64_t seq;
	char helpers[4][SWIM_NAME_MAX];
	assert_int_equal(probe_of_b(out, n, &seq, helpers), 3);
	assert_int_not_equal(seq, 0);
	for (int k = 0; k < n; k++)
		if (out[k].m.type == SWIM_MSG_PING)
			assert_true(has_upd(&out[k].m, "b", SWIM_SUSPECT, 0, "me")); /* buddy */
	free_pkts(out, n);
	/* again (the glue reports every refused send): nothing more */
	assert_int_equal(swim_peer_refused(s, "b", 150), 0);
	assert_false(swim_pop_output(s, &m));
	swim_free(s);
}

/* Refused by us and by a helper we asked: DEAD half a period after the
 * helper's word, not after the silence timeout. Without that word (plain
 * NACKs) it is an ordinary suspicion. */
static void refused_case(int how, uint64_t *dead_at)
{
	struct swim *s = five();
	assert_int_equal(swim_peer_refused(s, "b", 100), 0);
	struct pkt out[16];
	int n = take(s, out, 16);
	uint64_t seq;
	char helpers[4][SWIM_NAME_MAX];
	assert_int_equal(probe_of_b(out, n, &seq, helpers), 3);
	free_pkts(out, n);
	struct swim_msg nk;
	switch (how) {
	case 0: /* a helper we asked was refused too */
		nk = nack_about_b(helpers[1], seq, true);
		break;
	case 1: /* plain NACKs: silence, not refusal */
		nk = nack_about_b(helpers[1], seq, false);
		break;
	case 2: /* refused=true from a member we did not ask */
	default: {
		const char *names[] = {"c", "d", "e", "f"};
		const char *stranger = "x";
		for (int k = 0; k < 4; k++) {
			bool asked = false;
			for (int h = 0; h < 3; h++)
				asked |= strcmp(helpers[h], names[k]) == 0;
			if (!asked)
				stranger = names[k];
		}
		assert_string_not_equal(stranger, "x");
		nk = nack_about_b(stranger, seq, true);
		break;
	}
	case 3: /* refused=true from a helper, for another probe (wrong seq) */
		nk = nack_about_b(helpers[0], seq + 100, true);
		break;
	}
	assert_int_equal(swim_handle_message(s, &nk, 110), 0);
	drop_all(s);
	*dead_at = run_solo(s, 20000);
	if (*dead_at != 0) {
		struct swim_member_info mi;
		assert_true(swim_member_find(s, "b", &mi));
		if (how == 0) {
			char want[128];
			snprintf(want, sizeof(want),
			         "connection refused, confirmed after 510 ms by %s", helpers[1]);
			assert_string_equal(mi.cause, want);
		}
	}
	swim_free(s);
}

static void test_refused_confirmed_dead_fast(void **state)
{
	(void)state;
	uint64_t dead_at;
	refused_case(0, &dead_at);
	assert_int_equal(dead_at, 110 + 500); /* SWIM_REFUSED_DEAD_PERCENT of 1 s */
}

static void test_refused_unconfirmed_is_suspicion(void **state)
{
	(void)state;
	uint64_t dead_at;
	/* plain NACK: the silence timeout (min 4 s at best), never the 500 ms */
	refused_case(1, &dead_at);
	assert_true(dead_at == 0 || dead_at >= 100 + 4000);
}

/* Attacks: a refused NACK from someone we did not ask, or for a probe we
 * did not send, is no evidence. */
static void test_refused_nack_hostile(void **state)
{
	(void)state;
	uint64_t dead_at;
	refused_case(2, &dead_at);
	assert_true(dead_at == 0 || dead_at >= 100 + 4000);
	refused_case(3, &dead_at);
	assert_true(dead_at == 0 || dead_at >= 100 + 4000);
	/* a refused NACK about a member nobody probed, and one about a member
	 * we do not know: nothing changes */
	struct swim *s = five();
	struct swim_msg nk = nack_about_b("c", 1, true);
	assert_int_equal(swim_handle_message(s, &nk, 100), 0);
	nk.target = "ghost";
	assert_int_equal(swim_handle_message(s, &nk, 100), 0);
	struct swim_msg m;
	assert_false(swim_pop_output(s, &m));
	assert_int_equal(mstate(s, "b", NULL), SWIM_ALIVE);
	assert_false(swim_member_find(s, "ghost", NULL));
	swim_free(s);
}

/* A helper whose relayed PING is refused says so at once: NACK, refused,
 * the requester's seq; one NACK only; and no suspicion of its own. */
static void test_helper_relays_refusal(void **state)
{
	(void)state;
	struct swim *s = five();
	struct swim_msg req = mkmsg(SWIM_MSG_PING_REQ, "c", "me", 77, NULL, 0);
	req.target = "b";
	req.target_addr = "b:7946";
	assert_int_equal(swim_handle_message(s, &req, 100), 0);
	struct pkt out[16];
	int n = take(s, out, 16);
	bool pinged = false;
	for (int k = 0; k < n; k++)
		pinged |= out[k].m.type == SWIM_MSG_PING && strcmp(out[k].m.to, "b") == 0;
	free_pkts(out, n);
	assert_true(pinged);
	assert_int_equal(swim_peer_refused(s, "b", 103), 0);
	n = take(s, out, 16);
	int nacks = 0;
	for (int k = 0; k < n; k++)
		if (out[k].m.type == SWIM_MSG_NACK) {
			nacks++;
			assert_string_equal(out[k].m.to, "c");
			assert_string_equal(out[k].m.target, "b");
			assert_int_equal(out[k].m.seq, 77);
			assert_true(out[k].m.refused);
		}
	free_pkts(out, n);
	assert_int_equal(nacks, 1);
	assert_int_equal(mstate(s, "b", NULL), SWIM_ALIVE);
	/* the NACK timer (80% of the probe timeout) sends no second one */
	uint64_t now = 103;
	while (now < 700) {
		n = step(s, &now, out, 16);
		for (int k = 0; k < n; k++)
			assert_false(out[k].m.type == SWIM_MSG_NACK);
		free_pkts(out, n);
	}
	/* a plain relay that is not refused NACKs with refused = false */
	req.seq = 78;
	assert_int_equal(swim_handle_message(s, &req, now), 0);
	drop_all(s);
	bool plain = false;
	uint64_t end = now + 600;
	while (now < end) {
		n = step(s, &now, out, 16);
		for (int k = 0; k < n; k++)
			if (out[k].m.type == SWIM_MSG_NACK && out[k].m.seq == 78) {
				plain = true;
				assert_false(out[k].m.refused);
			}
		free_pkts(out, n);
	}
	assert_true(plain);
	swim_free(s);
}

/* A member held DEAD is probed at a low rate (one PING carrying its DEAD
 * record every SWIM_DEAD_PROBE_PERIODS periods); an ACK at its old
 * incarnation revives nothing; its refutation (incarnation + 1) does. */
static void test_dead_member_probed_and_refutes(void **state)
{
	(void)state;
	struct swim *s = solo_min1("me"); /* awareness stays low: periods of 1 s */
	feed(s, "x", upd("b", SWIM_ALIVE, 0, ""), 0);
	feed(s, "x", upd("c", SWIM_ALIVE, 0, ""), 0);
	dead_on_our_suspicion(s, "c", "b", 0, 10);
	drop_all(s);
	struct pkt out[16];
	uint64_t now = 10, first = 0, seq = 0;
	int pings = 0;
	while (now < 30000) {
		int n = step(s, &now, out, 16);
		for (int k = 0; k < n; k++) {
			/* answer c's probes, so that our health stays good */
			if (out[k].m.type == SWIM_MSG_PING && strcmp(out[k].m.to, "c") == 0) {
				struct swim_msg a =
				    mkmsg(SWIM_MSG_ACK, "c", "me", out[k].m.seq, NULL, 0);
				assert_int_equal(swim_handle_message(s, &a, now), 0);
			}
			if (out[k].m.type != SWIM_MSG_PING || strcmp(out[k].m.to, "b") != 0)
				continue;
			assert_true(has_upd(&out[k].m, "b", SWIM_DEAD, 0, NULL)); /* told */
			if (first == 0)
				first = now;
			seq = out[k].m.seq;
			pings++;
		}
		free_pkts(out, n);
		drop_all(s);
	}
	assert_int_not_equal(first, 0);
	assert_true(first <= 10 + 3 * 1000 + 1000);
	/* low rate: about one per 3 periods (30 s at 1 s periods: ~10) */
	assert_true(pings >= 5 && pings <= 11);
	/* it answers at its old incarnation: still DEAD */
	struct swim_update same = upd("b", SWIM_ALIVE, 0, "");
	struct swim_msg a = mkmsg(SWIM_MSG_ACK, "b", "me", seq, &same, 1);
	assert_int_equal(swim_handle_message(s, &a, now), 0);
	assert_int_equal(mstate(s, "b", NULL), SWIM_DEAD);
	/* its refutation (it heard the DEAD we sent): ALIVE again */
	struct swim_update ref = upd("b", SWIM_ALIVE, 1, "");
	a = mkmsg(SWIM_MSG_ACK, "b", "me", seq, &ref, 1);
	assert_int_equal(swim_handle_message(s, &a, now + 1), 0);
	uint64_t inc;
	assert_int_equal(mstate(s, "b", &inc), SWIM_ALIVE);
	assert_int_equal(inc, 1);
	swim_free(s);
}

/* The member's side: a PING carrying its own DEAD record makes it refute
 * in the ACK itself (incarnation + 1, ALIVE). */
static void test_dead_ping_refuted_in_ack(void **state)
{
	(void)state;
	struct swim *s = solo("b", NULL);
	struct swim_update d = upd("b", SWIM_DEAD, 0, "c");
	struct swim_msg p = mkmsg(SWIM_MSG_PING, "me", "b", 5, &d, 1);
	assert_int_equal(swim_handle_message(s, &p, 100), 0);
	struct pkt out[8];
	int n = take(s, out, 8);
	bool refuted = false;
	for (int k = 0; k < n; k++)
		if (out[k].m.type == SWIM_MSG_ACK && out[k].m.seq == 5)
			refuted |= has_upd(&out[k].m, "b", SWIM_ALIVE, 1, NULL);
	free_pkts(out, n);
	assert_true(refuted);
	assert_int_equal(swim_incarnation(s), 1);
	swim_free(s);
}

/* The gray-host rule. A suspicion raised by someone else, that nobody
 * confirms, whose last-chance probe our helpers answer with NACKs: a
 * healthy node declares it DEAD; a node whose own probes mostly fail does
 * not (it waits for k confirmations). */
static uint64_t gray_case(bool healthy)
{
	struct swim *s = five();
	feed(s, "c", upd("b", SWIM_SUSPECT, 0, "c"), 100);
	struct pkt out[32];
	int n = take(s, out, 32);
	free_pkts(out, n); /* the verification probe (if any) goes unanswered */
	uint64_t now = 100, dead = 0;
	while (now < 120000 && dead == 0) {
		n = step(s, &now, out, 32);
		for (int k = 0; k < n; k++) {
			const struct swim_msg *m = &out[k].m;
			if (m->type == SWIM_MSG_PING_REQ && strcmp(m->target, "b") == 0) {
				struct swim_msg nk = nack_about_b(m->to, m->seq, false);
				assert_int_equal(swim_handle_message(s, &nk, now), 0);
			}
			if (healthy && m->type == SWIM_MSG_PING && strcmp(m->to, "b") != 0) {
				struct swim_msg a =
				    mkmsg(SWIM_MSG_ACK, m->to, "me", m->seq, NULL, 0);
				assert_int_equal(swim_handle_message(s, &a, now), 0);
			}
		}
		free_pkts(out, n);
		drop_all(s);
		if (mstate(s, "b", NULL) == SWIM_DEAD)
			dead = now;
	}
	if (!healthy)
		assert_true(swim_local_health(s) >= 4);
	swim_free(s);
	return dead;
}

static void test_gray_node_declares_nobody_dead(void **state)
{
	(void)state;
	uint64_t healthy = gray_case(true), gray = gray_case(false);
	/* the healthy node: max (24 s) + the last-chance probe */
	assert_int_not_equal(healthy, 0);
	assert_true(healthy < 100 + 24000 + 5000);
	/* the gray node waits for k confirmations, and concludes alone only
	 * after SWIM_GRAY_HOLD_MULT (2) maximum timeouts (liveness) */
	assert_true(gray == 0 || gray >= 100 + 2 * 24000);
}

/* ...but with k confirmations from others a gray node does conclude. */
static void test_gray_node_concludes_when_confirmed(void **state)
{
	(void)state;
	struct swim *s = five();
	feed(s, "c", upd("b", SWIM_SUSPECT, 0, "c"), 100);
	feed(s, "d", upd("b", SWIM_SUSPECT, 0, "d"), 110);
	feed(s, "e", upd("b", SWIM_SUSPECT, 0, "e"), 120);
	drop_all(s);
	assert_int_not_equal(run_solo(s, 60000), 0);
	swim_free(s);
}

/* ...and the gray-host rule is about silence: a gray node that holds
 * someone else's suspicion takes the others' DEAD once its own last-chance
 * probe fails too (fed_dead), or concludes on its own timeout when the
 * member's host refused it (refused). Before, both were held for two
 * maximum timeouts (48 s here): a real agent that had just healed from
 * being cut off held a killed peer SUSPECT while every other agent had it
 * DEAD (it_fd_truth, phase 4). Returns ms from the news to DEAD, 0 if
 * never within 60 s. */
/* Helpers NACK every probe of b through them; nobody ACKs anything. */
static void gray_helpers_nack(struct swim *s, struct pkt *out, int n, uint64_t now)
{
	for (int k = 0; k < n; k++) {
		const struct swim_msg *m = &out[k].m;
		if (m->type == SWIM_MSG_PING_REQ && strcmp(m->target, "b") == 0) {
			struct swim_msg nk = nack_about_b(m->to, m->seq, false);
			assert_int_equal(swim_handle_message(s, &nk, now), 0);
		}
	}
	free_pkts(out, n);
}

static uint64_t gray_news_case(bool refused)
{
	struct swim *s = five();
	feed(s, "c", upd("b", SWIM_SUSPECT, 0, "c"), 100);
	struct pkt out[32];
	gray_helpers_nack(s, out, take(s, out, 32), 100);
	uint64_t now = 100, news = 0, dead = 0;
	while (now < 70000 && dead == 0) {
		if (news == 0 && swim_local_health(s) >= 4) {
			news = now;
			if (refused)
				assert_int_equal(swim_peer_refused(s, "b", now), 0);
			else
				feed(s, "c", upd("b", SWIM_DEAD, 0, "c"), now);
			gray_helpers_nack(s, out, take(s, out, 32), now);
		}
		gray_helpers_nack(s, out, step(s, &now, out, 32), now);
		drop_all(s);
		if (news != 0 && mstate(s, "b", NULL) == SWIM_DEAD)
			dead = now;
	}
	assert_int_not_equal(news, 0); /* the node did become gray */
	assert_true(news < 24000);     /* ...before its own maximum timeout */
	swim_free(s);
	return dead ? dead - news : 0;
}

static void test_gray_node_takes_verdict_or_refusal(void **state)
{
	(void)state;
	uint64_t by_verdict = gray_news_case(false), by_refusal = gray_news_case(true);
	/* the verdict: one last-chance probe (a protocol period, stretched
	 * by the node's awareness: at most 9 s) */
	assert_int_not_equal(by_verdict, 0);
	assert_true(by_verdict < 10000);
	/* a refusal: the node's own suspicion clock (maximum 24 s from the
	 * suspicion's start), no longer held for a second one */
	assert_int_not_equal(by_refusal, 0);
	assert_true(by_refusal < 24000 + 10000);
}

/* ---- digest push-pull ---- */

/* A core "name" that knows `other` (incarnation 0) and n members
 * m0..m<n-1> ALIVE at incarnation 1. Push-pull every pp_ms; the first
 * probe is minutes away, so no suspicion changes the table meanwhile. */
static struct swim *pp_core(const char *name, const char *other, int n, uint32_t pp_ms)
{
	struct swim_config cfg;
	char addr[32];
	snprintf(addr, sizeof(addr), "%s:7946", name);
	test_config(&cfg, name, addr, 7);
	cfg.gossip_interval_ms = 0;
	cfg.push_pull_interval_ms = pp_ms;
	cfg.probe_interval_ms = 600000;
	struct swim *s = swim_new(&cfg, 0, 0);
	assert_non_null(s);
	char mn[16];
	for (int k = 0; k < n; k++) {
		snprintf(mn, sizeof(mn), "m%d", k);
		feed(s, "x", upd(mn, SWIM_ALIVE, 1, ""), 1);
	}
	feed(s, "x", upd(other, SWIM_ALIVE, 0, ""), 1);
	drop_all(s);
	return s;
}

/* Runs s until it sends a push-pull; copies it into *out, readdressed to
 * `to` (its digest does not depend on the partner drawn). */
static void pp_round(struct swim *s, uint64_t *now, const char *to, struct pkt *out)
{
	struct pkt o[64];
	for (int guard = 0; guard < 100; guard++) {
		int n = step(s, now, o, 64);
		for (int k = 0; k < n; k++)
			if (o[k].m.type == SWIM_MSG_PUSH_PULL) {
				pkt_copy(out, &o[k].m);
				out->m.to = to;
				free_pkts(o, n);
				return;
			}
		free_pkts(o, n);
	}
	fail_msg("no push-pull");
}

/* Hands m to s and copies s's push-pull answers (anything else dropped). */
static int pp_answer(struct swim *s, const struct swim_msg *m, uint64_t now, struct pkt *out,
                     int max)
{
	assert_int_equal(swim_handle_message(s, m, now), 0);
	struct pkt o[64];
	int n = take(s, o, 64), k = 0;
	for (int j = 0; j < n; j++)
		if (o[j].m.type == SWIM_MSG_PUSH_PULL_REPLY && k < max) {
			pkt_copy(&out[k], &o[j].m);
			out[k++].m.to = m->from;
		}
	free_pkts(o, n);
	return k;
}

/* The digest a core sends is the documented formula over its table. */
static void test_digest_formula(void **state)
{
	(void)state;
	struct swim *a = pp_core("a", "b", 100, 1000);
	uint64_t now = 1;
	struct pkt d;
	pp_round(a, &now, "b", &d);
	assert_int_equal(d.m.n_updates, 0);
	assert_int_equal(d.m.n_digest, 4); /* 102 members, a bucket per 32 */
	uint64_t want[4] = {0};
	for (size_t i = 0; i < swim_member_count(a); i++) {
		struct swim_member_info mi;
		swim_member_at(a, i, &mi);
		want[swim_digest_bucket(mi.name, 4)] ^=
		    swim_digest_entry(mi.name, mi.addr, mi.incarnation, mi.state);
	}
	for (int b = 0; b < 4; b++)
		assert_true(d.m.digest[b] == want[b]);
	free(d.blob);
	swim_free(a);
}

/* Equal tables: the digest and nothing else, not one member record. */
static void test_digest_equal_tables_cost_nothing(void **state)
{
	(void)state;
	struct swim *a = pp_core("a", "b", 100, 1000), *b = pp_core("b", "a", 100, 1000);
	uint64_t now = 1;
	struct pkt d, r[4];
	pp_round(a, &now, "b", &d);
	assert_int_equal(pp_answer(b, &d.m, now, r, 4), 0);
	free(d.blob);
	swim_free(a);
	swim_free(b);
}

/* Only the buckets that differ travel, both ways, and then the tables are
 * equal: a holds z (b does not) and m5 at incarnation 1, b holds m5 at 3. */
static void test_digest_exchanges_differing_buckets(void **state)
{
	(void)state;
	struct swim *a = pp_core("a", "b", 200, 1000), *b = pp_core("b", "a", 200, 1000);
	feed(a, "x", upd("z", SWIM_ALIVE, 4, ""), 2);
	feed(b, "x", upd("m5", SWIM_ALIVE, 3, ""), 2);
	drop_all(a);
	drop_all(b);
	uint64_t now = 2;
	struct pkt d, r[4], back[4], none[4];
	pp_round(a, &now, "b", &d);
	assert_int_equal(d.m.n_digest, 8); /* 203 members */
	assert_int_equal(pp_answer(b, &d.m, now, r, 4), 1);
	const struct swim_msg *rm = &r[0].m;
	uint32_t bz = swim_digest_bucket("z", 8), b5 = swim_digest_bucket("m5", 8);
	assert_int_equal(rm->buckets, 8);
	assert_int_equal(rm->n_want, bz == b5 ? 1 : 2);
	bool got_z = false, got_5 = false;
	for (size_t k = 0; k < rm->n_want; k++) {
		got_z |= rm->want[k] == bz;
		got_5 |= rm->want[k] == b5;
	}
	assert_true(got_z && got_5);
	/* b's members of those buckets and no others, m5 at 3 among them */
	size_t in_buckets = 0;
	for (size_t i = 0; i < swim_member_count(b); i++) {
		struct swim_member_info mi;
		swim_member_at(b, i, &mi);
		uint32_t bk = swim_digest_bucket(mi.name, 8);
		in_buckets += bk == bz || bk == b5;
	}
	assert_int_equal(rm->n_updates, in_buckets);
	assert_true(rm->n_updates < swim_member_count(b) / 2);
	assert_true(has_upd(rm, "m5", SWIM_ALIVE, 3, NULL));
	for (size_t k = 0; k < rm->n_updates; k++) {
		uint32_t bk = swim_digest_bucket(rm->updates[k].name, 8);
		assert_true(bk == bz || bk == b5);
	}
	/* a merges, then answers with its own members of those buckets (z) */
	assert_int_equal(pp_answer(a, rm, now, back, 4), 1);
	assert_int_equal(back[0].m.n_want, 0);
	assert_true(has_upd(&back[0].m, "z", SWIM_ALIVE, 4, NULL));
	uint64_t inc;
	assert_int_equal(mstate(a, "m5", &inc), SWIM_ALIVE);
	assert_int_equal(inc, 3);
	/* b merges and asks nothing more; the next digest finds them equal */
	assert_int_equal(pp_answer(b, &back[0].m, now, none, 4), 0);
	assert_int_equal(mstate(b, "z", &inc), SWIM_ALIVE);
	assert_int_equal(inc, 4);
	free(d.blob);
	pp_round(a, &now, "b", &d);
	assert_int_equal(pp_answer(b, &d.m, now, none, 4), 0);
	free(d.blob);
	free_pkts(r, 1);
	free_pkts(back, 1);
	swim_free(a);
	swim_free(b);
}

/* Tombstones do not keep two tables apart: a holds z DEAD and y LEFT, b
 * never heard of them (it joined after; the merge would not copy them
 * across anyway), so the digests are equal and b answers nothing. z ALIVE
 * at b against DEAD at a still differs (a healed partition finds itself). */
static void test_digest_ignores_tombstones(void **state)
{
	(void)state;
	struct swim *a = pp_core("a", "b", 100, 1000), *b = pp_core("b", "a", 100, 1000);
	feed(a, "x", upd("z", SWIM_ALIVE, 4, ""), 2);
	dead_on_our_suspicion(a, "x", "z", 4, 3);
	feed(a, "x", upd("y", SWIM_ALIVE, 1, ""), 4);
	feed(a, "x", upd("y", SWIM_LEFT, 2, "y"), 5);
	drop_all(a);
	uint64_t inc;
	assert_int_equal(mstate(a, "z", &inc), SWIM_DEAD);
	assert_int_equal(mstate(a, "y", &inc), SWIM_LEFT);
	uint64_t now = 6;
	struct pkt d, r[4];
	pp_round(a, &now, "b", &d);
	assert_int_equal(pp_answer(b, &d.m, now, r, 4), 0);
	free(d.blob);
	/* b learns z alive: now the bucket differs */
	feed(b, "x", upd("z", SWIM_ALIVE, 5, ""), now);
	drop_all(b);
	pp_round(a, &now, "b", &d);
	assert_int_equal(pp_answer(b, &d.m, now, r, 4), 1);
	assert_true(has_upd(&r[0].m, "z", SWIM_ALIVE, 5, NULL));
	free(d.blob);
	free_pkts(r, 1);
	swim_free(a);
	swim_free(b);
}

/* Gossips for `ms` of simulated time (draining the broadcast queue); how
 * many messages carried an update about `name` at state st, incarnation
 * inc. */
static int gossips(struct swim *s, uint64_t *now, uint64_t ms, const char *name, enum swim_state st,
                   uint64_t inc)
{
	int seen = 0;
	uint64_t end = *now + ms;
	struct pkt o[64];
	while (swim_next_deadline(s) <= end) {
		int n = step(s, now, o, 64);
		for (int k = 0; k < n; k++)
			seen += has_upd(&o[k].m, name, st, (int64_t)inc, NULL);
		free_pkts(o, n);
	}
	return seen;
}

/* Above SWIM_PP_REGOSSIP_MAX members, a member first learned by push-pull
 * is left to push-pulls, but a refutation of a suspicion we hold is
 * gossiped on: it must reach the others before their suspicion timeouts. */
static void test_pp_refutation_gossiped_in_large_table(void **state)
{
	(void)state;
	struct swim_config cfg;
	test_config(&cfg, "a", "a:7946", 7);
	cfg.gossip_interval_ms = 100;
	cfg.push_pull_interval_ms = 0;
	cfg.probe_interval_ms = 600000;
	struct swim *a = swim_new(&cfg, 0, 0);
	assert_non_null(a);
	char mn[16];
	for (int k = 0; k < 300; k++) {
		snprintf(mn, sizeof(mn), "m%d", k);
		feed(a, "x", upd(mn, SWIM_ALIVE, 1, ""), 1);
	}
	uint64_t now = 1;
	(void)gossips(a, &now, 120000, "", SWIM_ALIVE, 0); /* drain the joins */
	feed(a, "m7", upd("m5", SWIM_SUSPECT, 1, "m7"), now);
	(void)gossips(a, &now, 120000, "", SWIM_ALIVE, 0);
	assert_int_equal(mstate(a, "m5", NULL), SWIM_SUSPECT);
	struct swim_update u[2] = {upd("m5", SWIM_ALIVE, 2, ""), upd("zz", SWIM_ALIVE, 1, "")};
	struct swim_msg r = mkmsg(SWIM_MSG_PUSH_PULL_REPLY, "m9", "a", 0, u, 2);
	assert_int_equal(swim_handle_message(a, &r, now), 0);
	assert_int_equal(mstate(a, "m5", NULL), SWIM_ALIVE);
	assert_int_equal(mstate(a, "zz", NULL), SWIM_ALIVE);
	/* one window: m5's refutation goes out, zz does not; zz2, learned by
	 * gossip at the same time, goes out (the window gossips at all) */
	feed(a, "m9", upd("zz2", SWIM_ALIVE, 1, ""), now);
	struct pkt o[64];
	int m5 = 0, zz = 0, zz2 = 0;
	uint64_t end = now + 5000;
	while (swim_next_deadline(a) <= end) {
		int n = step(a, &now, o, 64);
		for (int k = 0; k < n; k++) {
			m5 += has_upd(&o[k].m, "m5", SWIM_ALIVE, 2, NULL);
			zz += has_upd(&o[k].m, "zz", SWIM_ALIVE, 1, NULL);
			zz2 += has_upd(&o[k].m, "zz2", SWIM_ALIVE, 1, NULL);
		}
		free_pkts(o, n);
	}
	assert_true(m5 > 0);
	assert_true(zz2 > 0);
	assert_int_equal(zz, 0);
	swim_free(a);
}

/* An older peer's full push-pull (no digest) gets our full table; its full
 * answer to our digest (no want) is merged and asks nothing back. */
static void test_digest_older_peer(void **state)
{
	(void)state;
	struct swim *b = pp_core("b", "a", 10, 1000);
	struct swim_update u = upd("old", SWIM_ALIVE, 2, "");
	struct swim_msg m = mkmsg(SWIM_MSG_PUSH_PULL, "old", "b", 0, &u, 1);
	struct pkt r[4];
	assert_int_equal(pp_answer(b, &m, 5, r, 4), 1);
	assert_int_equal(r[0].m.n_want, 0);
	assert_int_equal(r[0].m.n_updates, 12); /* b, a, m0..m9: the table before "old" */
	free_pkts(r, 1);
	struct swim_update v = upd("older", SWIM_ALIVE, 1, "");
	m = mkmsg(SWIM_MSG_PUSH_PULL_REPLY, "old", "b", 0, &v, 1);
	assert_int_equal(pp_answer(b, &m, 6, r, 4), 0);
	assert_int_equal(mstate(b, "older", NULL), SWIM_ALIVE);
	swim_free(b);
}

/* Malformed digest fields are rejected whole (nothing changes, nothing is
 * sent), and no digest makes us keep anything or answer beyond our table. */
static void test_digest_malformed_and_bounded(void **state)
{
	(void)state;
	struct swim *b = pp_core("b", "a", 40, 1000);
	size_t members = swim_member_count(b);
	static uint64_t big[2 * SWIM_DIGEST_MAX];
	static uint32_t want[2 * SWIM_DIGEST_MAX];
	struct swim_update u = upd("new", SWIM_ALIVE, 1, "");
	struct swim_msg m = mkmsg(SWIM_MSG_PUSH_PULL, "p", "b", 0, &u, 1);
	const size_t bad_n[] = {3, 6, 2 * SWIM_DIGEST_MAX};
	for (size_t k = 0; k < sizeof(bad_n) / sizeof(bad_n[0]); k++) {
		m.digest = big;
		m.n_digest = bad_n[k];
		assert_int_equal(swim_handle_message(b, &m, 5), -EINVAL);
	}
	m.digest = NULL;
	m.n_digest = 4;
	assert_int_equal(swim_handle_message(b, &m, 5), -EINVAL);
	m = mkmsg(SWIM_MSG_PUSH_PULL_REPLY, "p", "b", 0, &u, 1);
	m.want = want;
	m.n_want = 1;
	const uint32_t bad_buckets[] = {0, 3, 2 * SWIM_DIGEST_MAX};
	for (size_t k = 0; k < 3; k++) {
		m.buckets = bad_buckets[k];
		assert_int_equal(swim_handle_message(b, &m, 5), -EINVAL);
	}
	m.buckets = 4;
	want[0] = 4; /* out of range */
	assert_int_equal(swim_handle_message(b, &m, 5), -EINVAL);
	want[0] = 0;
	m.n_want = 5; /* more than there are */
	assert_int_equal(swim_handle_message(b, &m, 5), -EINVAL);
	m.want = NULL;
	m.n_want = 1;
	assert_int_equal(swim_handle_message(b, &m, 5), -EINVAL);
	struct swim_msg o;
	assert_false(swim_pop_output(b, &o));
	assert_false(swim_member_find(b, "new", NULL));
	assert_int_equal(swim_member_count(b), members);

	/* The largest digest, every bucket different, from 500 strangers: one
	 * answer each, never more than our table, and nothing kept. */
	for (size_t k = 0; k < SWIM_DIGEST_MAX; k++)
		big[k] = 0x5a5a5a5a5a5a5a5aULL + k;
	for (int p = 0; p < 500; p++) {
		char from[16];
		snprintf(from, sizeof(from), "p%d", p);
		m = mkmsg(SWIM_MSG_PUSH_PULL, from, "b", 0, NULL, 0);
		m.digest = big;
		m.n_digest = SWIM_DIGEST_MAX;
		assert_int_equal(swim_handle_message(b, &m, 6), 0);
		int answers = 0;
		while (swim_pop_output(b, &o)) {
			answers++;
			assert_true(o.n_updates <= members);
			assert_true(o.n_want <= SWIM_DIGEST_MAX);
		}
		assert_int_equal(answers, 1);
	}
	/* and wanting every bucket gets our table once, no more */
	for (uint32_t k = 0; k < SWIM_DIGEST_MAX; k++)
		want[k] = k;
	m = mkmsg(SWIM_MSG_PUSH_PULL_REPLY, "p", "b", 0, NULL, 0);
	m.want = want;
	m.n_want = SWIM_DIGEST_MAX;
	m.buckets = SWIM_DIGEST_MAX;
	assert_int_equal(swim_handle_message(b, &m, 7), 0);
	assert_true(swim_pop_output(b, &o));
	assert_int_equal(o.n_updates, members);
	assert_false(swim_pop_output(b, &o));
	assert_int_equal(swim_member_count(b), members);
	swim_free(b);
}

/* A join storm (many members learned between two push-pull rounds) brings
 * the rounds to about a second apart; a quiet cluster keeps the interval. */
static void test_join_storm_push_pulls_often(void **state)
{
	(void)state;
	struct swim *a = pp_core("a", "b", 0, 60000);
	uint64_t now = 1;
	struct pkt d;
	pp_round(a, &now, "b", &d); /* the first regular round */
	free(d.blob);
	uint64_t t0 = now;
	pp_round(a, &now, "b", &d);
	free(d.blob);
	assert_true(now - t0 >= 60000); /* quiet: the base interval */
	char mn[16];
	for (int k = 0; k < 20; k++) {
		snprintf(mn, sizeof(mn), "s%d", k);
		feed(a, "x", upd(mn, SWIM_ALIVE, 1, ""), now);
	}
	drop_all(a);
	pp_round(a, &now, "b", &d); /* this round sees the storm */
	free(d.blob);
	uint64_t t1 = now;
	pp_round(a, &now, "b", &d);
	free(d.blob);
	assert_true(now - t1 >= 500 && now - t1 < 1500);
	/* a trickle (one member a round) does not keep the storm going: the
	 * round at `now` was quiet, two more make SWIM_STORM_QUIET (3), and
	 * the base interval is back */
	for (int k = 0; k < 2; k++) {
		snprintf(mn, sizeof(mn), "t%d", k);
		feed(a, "x", upd(mn, SWIM_ALIVE, 1, ""), now);
		drop_all(a);
		uint64_t t = now;
		pp_round(a, &now, "b", &d);
		free(d.blob);
		assert_true(now - t < 1500);
	}
	uint64_t t2 = now;
	pp_round(a, &now, "b", &d);
	free(d.blob);
	assert_true(now - t2 >= 60000);
	swim_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_suspicion_timeout_math),
	    cmocka_unit_test(test_digest_formula),
	    cmocka_unit_test(test_digest_equal_tables_cost_nothing),
	    cmocka_unit_test(test_digest_exchanges_differing_buckets),
	    cmocka_unit_test(test_digest_ignores_tombstones),
	    cmocka_unit_test(test_pp_refutation_gossiped_in_large_table),
	    cmocka_unit_test(test_digest_older_peer),
	    cmocka_unit_test(test_digest_malformed_and_bounded),
	    cmocka_unit_test(test_join_storm_push_pulls_often),
	    cmocka_unit_test(test_config_default_and_bad_config),
	    cmocka_unit_test(test_precedence_rules),
	    cmocka_unit_test(test_events_and_causes),
	    cmocka_unit_test(test_self_refutes_suspicion),
	    cmocka_unit_test(test_buddy_system),
	    cmocka_unit_test(test_awareness),
	    cmocka_unit_test(test_local_health_add),
	    cmocka_unit_test(test_ping_req_helper),
	    cmocka_unit_test(test_retransmit_limit),
	    cmocka_unit_test(test_malformed_input),
	    cmocka_unit_test(test_join_backoff),
	    cmocka_unit_test(test_join_success),
	    cmocka_unit_test(test_crash_detected),
	    cmocka_unit_test(test_suspicion_confirmations),
	    cmocka_unit_test(test_flap_damping),
	    cmocka_unit_test(test_false_suspicion_refuted),
	    cmocka_unit_test(test_leave),
	    cmocka_unit_test(test_restart_at_new_address),
	    cmocka_unit_test(test_partition_heals),
	    cmocka_unit_test(test_isolated_node_declares_nobody_dead),
	    cmocka_unit_test(test_reap),
	    cmocka_unit_test(test_deterministic_replay),
	    cmocka_unit_test(test_shared_strtab),
	    cmocka_unit_test(test_joiner_announces_itself),
	    cmocka_unit_test(test_learns_unknown_sender),
	    cmocka_unit_test(test_suspect_above_held_refused),
	    cmocka_unit_test(test_incarnation_bounds),
	    cmocka_unit_test(test_signed_alive),
	    cmocka_unit_test(test_signed_left),
	    cmocka_unit_test(test_signed_left_raises),
	    cmocka_unit_test(test_failed_proofs_bounded),
	    cmocka_unit_test(test_unproven_left_checked),
	    cmocka_unit_test(test_signed_refutation_end_to_end),
	    cmocka_unit_test(test_signed_piggyback_budget),
	    cmocka_unit_test(test_dead_needs_our_own_check),
	    cmocka_unit_test(test_relay_carries_target_state),
	    cmocka_unit_test(test_verification_probe),
	    cmocka_unit_test(test_verification_is_sampled),
	    cmocka_unit_test(test_new_member_brings_push_pull_forward),
	    cmocka_unit_test(test_dead_sender_told),
	    cmocka_unit_test(test_refused_makes_suspect),
	    cmocka_unit_test(test_refused_confirmed_dead_fast),
	    cmocka_unit_test(test_refused_unconfirmed_is_suspicion),
	    cmocka_unit_test(test_refused_nack_hostile),
	    cmocka_unit_test(test_helper_relays_refusal),
	    cmocka_unit_test(test_dead_member_probed_and_refutes),
	    cmocka_unit_test(test_dead_ping_refuted_in_ack),
	    cmocka_unit_test(test_gray_node_declares_nobody_dead),
	    cmocka_unit_test(test_gray_node_concludes_when_confirmed),
	    cmocka_unit_test(test_gray_node_takes_verdict_or_refusal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
