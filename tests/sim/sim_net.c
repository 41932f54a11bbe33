/*
 * sim_net.c — the simulated world's clock, queue, PRNG and network (see
 * sim_net.h for the model and the order of the PRNG draws).
 *
 * The queue is sim_heap.h's binary min-heap keyed by (at, seq); seq is one
 * counter stamped at every push, so the order of same-instant events is
 * the order of scheduling. Per-link settings live in an open-addressing
 * table keyed by the directed pair and created only for links that differ
 * from the defaults (a 10,000-endpoint world has no n*n arrays); a missing
 * entry means "the defaults, not blocked". Invariants: an endpoint's epoch
 * changes at every simnet_down/simnet_up; a DELIVER event carries the
 * receiver's epoch at send time and reaches dispatch only if it still
 * matches and the receiver is up; every payload is either in the queue,
 * handed to dispatch, or handed to ops.free_payload — exactly once.
 */
#include "sim_net.h"
#include "prng.h"
#include "sim_heap.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

struct simnet_link {
	uint64_t key; /* (a << 32 | b) + 1; 0 = empty slot */
	double loss;
	uint32_t delay, jitter;
	bool has_loss, has_delay, blocked;
};

struct simnet_endpoint {
	bool up;
	uint32_t epoch;
	int group;
	uint32_t slow_min, slow_max;
};

struct simnet {
	struct simnet_ops ops;
	void *owner;
	int n;
	struct simnet_endpoint *ep;
	uint64_t rng[4];
	uint64_t now;
	/* the queue (names as sim_heap.h wants them) */
	struct simnet_event *heap;
	size_t heap_n, heap_cap;
	uint64_t seq;
	/* the default link */
	double loss, dup;
	uint32_t delay, jitter;
	bool partitioned;
	struct simnet_link *links;
	size_t links_cap, links_n;
	struct simnet_counters ctr;
};

SIM_HEAP_DEFINE(simnet_heap, struct simnet_event, struct simnet)

/* ------------------------------------------------------------------ PRNG */

uint64_t simnet_rand(struct simnet *net)
{
	return mv_xoshiro_next(net->rng);
}

double simnet_unit(struct simnet *net)
{
	return (double)(simnet_rand(net) >> 11) * 0x1.0p-53;
}

uint32_t simnet_below(struct simnet *net, uint32_t n)
{
	return n ? mv_xoshiro_below(net->rng, n) : 0;
}

uint32_t simnet_range(struct simnet *net, uint32_t lo, uint32_t hi)
{
	if (hi <= lo)
		return lo;
	return lo + simnet_below(net, hi - lo + 1);
}

/* ------------------------------------------------------------ life cycle */

uint64_t simnet_pick_seed(uint64_t seed)
{
	const char *env = getenv("MV_SIM_SEED");
	if (env != NULL && *env)
		seed = strtoull(env, NULL, 0);
	if (seed == 0) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		static uint64_t bump; /* two worlds in the same nanosecond differ */
		uint64_t x0 = ((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec) + bump++;
		seed = mv_splitmix64(&x0) >> 1;
		if (seed == 0)
			seed = 1;
	}
	return seed;
}

struct simnet *simnet_new(int n, uint64_t seed, const struct simnet_ops *ops, void *owner)
{
	struct simnet *net = calloc(1, sizeof(*net));
	if (net == NULL || n < 0)
		abort();
	net->ops = *ops;
	net->owner = owner;
	net->n = n;
	net->ep = calloc((size_t)n + 1, sizeof(*net->ep)); /* n may be 0 */
	if (net->ep == NULL)
		abort();
	for (int i = 0; i < n; i++)
		net->ep[i].up = true;
	uint64_t x = seed;
	for (int k = 0; k < 4; k++)
		net->rng[k] = mv_splitmix64(&x);
	net->delay = 1;
	net->jitter = 1;
	return net;
}

static void simnet_drop_payload(struct simnet *net, int kind, void *p)
{
	if (p == NULL)
		return;
	if (net->ops.free_payload)
		net->ops.free_payload(net->owner, kind, p);
	else
		free(p);
}

void simnet_free(struct simnet *net)
{
	if (net == NULL)
		return;
	for (size_t k = 0; k < net->heap_n; k++)
		simnet_drop_payload(net, net->heap[k].kind, net->heap[k].p);
	free(net->heap);
	free(net->links);
	free(net->ep);
	free(net);
}

int simnet_size(const struct simnet *net)
{
	return net->n;
}

const struct simnet_counters *simnet_counters(const struct simnet *net)
{
	return &net->ctr;
}

/* ------------------------------------------------------------ the clock */

uint64_t simnet_now(const struct simnet *net)
{
	return net->now;
}

void simnet_at(struct simnet *net, struct simnet_event ev)
{
	simnet_heap_push(net, ev);
}

uint64_t simnet_next_at(const struct simnet *net)
{
	return net->heap_n ? net->heap[0].at : UINT64_MAX;
}

size_t simnet_pending(const struct simnet *net)
{
	return net->heap_n;
}

struct simnet_event simnet_pop(struct simnet *net)
{
	return simnet_heap_pop(net);
}

void simnet_advance_to(struct simnet *net, uint64_t t)
{
	if (t > net->now)
		net->now = t;
}

/* The arrival checks of a message, then the owner's dispatch. */
static void simnet_run_event(struct simnet *net, struct simnet_event *ev)
{
	if (ev->kind == SIMNET_EV_DELIVER) {
		struct simnet_endpoint *e = &net->ep[ev->node];
		if (!e->up || e->epoch != ev->gen) {
			net->ctr.dropped_down++;
			simnet_drop_payload(net, ev->kind, ev->p);
			return;
		}
		if (e->slow_max > 0 && !ev->slowed) {
			ev->slowed = true;
			ev->at = net->now + simnet_range(net, e->slow_min, e->slow_max);
			simnet_heap_push(net, *ev);
			return;
		}
		net->ctr.delivered++;
	}
	net->ops.dispatch(net->owner, ev);
}

void simnet_step(struct simnet *net)
{
	uint64_t t = net->heap[0].at;
	if (t > net->now)
		net->now = t;
	while (net->heap_n > 0 && net->heap[0].at <= t) {
		struct simnet_event ev = simnet_heap_pop(net);
		simnet_run_event(net, &ev);
	}
}

void simnet_step_one(struct simnet *net)
{
	struct simnet_event ev = simnet_heap_pop(net);
	if (ev.at > net->now)
		net->now = ev.at;
	simnet_run_event(net, &ev);
}

void simnet_run_for(struct simnet *net, uint64_t ms)
{
	uint64_t end = net->now + ms;
	while (net->heap_n > 0 && net->heap[0].at <= end)
		simnet_step(net);
	net->now = end;
}

int64_t simnet_run_until(struct simnet *net, simnet_pred_f pred, void *arg, uint64_t timeout_ms)
{
	uint64_t start = net->now, end = net->now + timeout_ms;
	if (pred(arg))
		return 0;
	while (net->heap_n > 0 && net->heap[0].at <= end) {
		simnet_step(net);
		if (pred(arg))
			return (int64_t)(net->now - start);
	}
	net->now = end;
	return -1;
}

/* ---------------------------------------------------------------- links */

static size_t simnet_link_slot(uint64_t key, size_t cap)
{
	return (size_t)(key * 0x9e3779b97f4a7c15ULL >> 20) & (cap - 1);
}

static void simnet_links_grow(struct simnet *net)
{
	struct simnet_link *old = net->links;
	size_t old_cap = net->links_cap;
	net->links_cap = old_cap ? old_cap * 2 : 256;
	net->links = calloc(net->links_cap, sizeof(*net->links));
	if (net->links == NULL)
		abort();
	for (size_t j = 0; j < old_cap; j++) {
		if (old[j].key == 0)
			continue;
		size_t i = simnet_link_slot(old[j].key, net->links_cap);
		while (net->links[i].key != 0)
			i = (i + 1) & (net->links_cap - 1);
		net->links[i] = old[j];
	}
	free(old);
}

static uint64_t simnet_link_key(int a, int b)
{
	return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
}

/* The override for a -> b, NULL if none. */
static struct simnet_link *simnet_link_find(const struct simnet *net, int a, int b)
{
	uint64_t key = simnet_link_key(a, b);
	if (net->links_cap == 0)
		return NULL;
	size_t i = simnet_link_slot(key, net->links_cap);
	while (net->links[i].key != 0) {
		if (net->links[i].key == key)
			return &net->links[i];
		i = (i + 1) & (net->links_cap - 1);
	}
	return NULL;
}

/* The override for a -> b, created (as the defaults) if there is none. */
static struct simnet_link *simnet_link_make(struct simnet *net, int a, int b)
{
	struct simnet_link *l = simnet_link_find(net, a, b);
	if (l)
		return l;
	if ((net->links_n + 1) * 2 > net->links_cap)
		simnet_links_grow(net);
	uint64_t key = simnet_link_key(a, b);
	size_t i = simnet_link_slot(key, net->links_cap);
	while (net->links[i].key != 0)
		i = (i + 1) & (net->links_cap - 1);
	memset(&net->links[i], 0, sizeof(net->links[i]));
	net->links[i].key = key;
	net->links_n++;
	return &net->links[i];
}

/* Applies fn to every directed link matched by (a, b), -1 = any. */
static void simnet_links_each(struct simnet *net, int a, int b,
                              void (*fn)(struct simnet_link *, const void *), const void *arg)
{
	int a0 = a < 0 ? 0 : a, a1 = a < 0 ? net->n : a + 1;
	int b0 = b < 0 ? 0 : b, b1 = b < 0 ? net->n : b + 1;
	for (int i = a0; i < a1; i++)
		for (int j = b0; j < b1; j++)
			if (i != j)
				fn(simnet_link_make(net, i, j), arg);
}

static void simnet_link_set_loss(struct simnet_link *l, const void *arg)
{
	l->has_loss = true;
	l->loss = *(const double *)arg;
}

static void simnet_link_set_delay(struct simnet_link *l, const void *arg)
{
	const uint32_t *d = arg;
	l->has_delay = true;
	l->delay = d[0];
	l->jitter = d[1];
}

static void simnet_link_set_block(struct simnet_link *l, const void *arg)
{
	l->blocked = *(const bool *)arg;
}

void simnet_set_loss(struct simnet *net, int a, int b, double p)
{
	if (a < 0 && b < 0) {
		net->loss = p;
		for (size_t i = 0; i < net->links_cap; i++)
			net->links[i].has_loss = false;
		return;
	}
	simnet_links_each(net, a, b, simnet_link_set_loss, &p);
}

void simnet_set_delay(struct simnet *net, int a, int b, uint32_t ms, uint32_t jitter_ms)
{
	if (a < 0 && b < 0) {
		net->delay = ms;
		net->jitter = jitter_ms;
		for (size_t i = 0; i < net->links_cap; i++)
			net->links[i].has_delay = false;
		return;
	}
	uint32_t d[2] = {ms, jitter_ms};
	simnet_links_each(net, a, b, simnet_link_set_delay, d);
}

void simnet_set_dup(struct simnet *net, double p)
{
	net->dup = p;
}

void simnet_block(struct simnet *net, int a, int b)
{
	bool on = true;
	simnet_links_each(net, a, b, simnet_link_set_block, &on);
}

void simnet_unblock(struct simnet *net, int a, int b)
{
	bool off = false;
	simnet_links_each(net, a, b, simnet_link_set_block, &off);
}

void simnet_block_both(struct simnet *net, int a, int b)
{
	simnet_block(net, a, b);
	simnet_block(net, b, a);
}

void simnet_unblock_both(struct simnet *net, int a, int b)
{
	simnet_unblock(net, a, b);
	simnet_unblock(net, b, a);
}

void simnet_partition(struct simnet *net, const int *group)
{
	for (int i = 0; i < net->n; i++)
		net->ep[i].group = group[i];
	net->partitioned = true;
}

void simnet_heal(struct simnet *net)
{
	net->partitioned = false;
	for (size_t i = 0; i < net->links_cap; i++)
		net->links[i].blocked = false;
}

bool simnet_partitioned(const struct simnet *net)
{
	return net->partitioned;
}

int simnet_group(const struct simnet *net, int i)
{
	return net->ep[i].group;
}

/* Whether a -> b (a != b, l its override or NULL) is blocked or cut by
 * the partition. */
static bool simnet_link_cut(const struct simnet *net, int a, int b, const struct simnet_link *l)
{
	return (net->partitioned && net->ep[a].group != net->ep[b].group) || (l && l->blocked);
}

bool simnet_link_open(const struct simnet *net, int a, int b)
{
	return a == b || !simnet_link_cut(net, a, b, simnet_link_find(net, a, b));
}

/* ------------------------------------------------------------ endpoints */

void simnet_down(struct simnet *net, int i)
{
	net->ep[i].up = false;
	net->ep[i].epoch++;
}

void simnet_up(struct simnet *net, int i)
{
	net->ep[i].up = true;
	net->ep[i].epoch++;
}

bool simnet_is_up(const struct simnet *net, int i)
{
	return net->ep[i].up;
}

uint32_t simnet_epoch(const struct simnet *net, int i)
{
	return net->ep[i].epoch;
}

void simnet_set_slow(struct simnet *net, int i, uint32_t min_ms, uint32_t max_ms)
{
	net->ep[i].slow_min = min_ms;
	net->ep[i].slow_max = max_ms;
}

bool simnet_is_slow(const struct simnet *net, int i)
{
	return net->ep[i].slow_max > 0;
}

/* ------------------------------------------------------------- messages */

static void simnet_schedule_delivery(struct simnet *net, uint64_t at, int src, int dst, void *msg)
{
	struct simnet_event ev = {.at = at,
	                          .kind = SIMNET_EV_DELIVER,
	                          .node = dst,
	                          .gen = net->ep[dst].epoch,
	                          .arg = src,
	                          .p = msg};
	simnet_heap_push(net, ev);
}

/* One copy of a message: the loss draw, then the delay draws. */
static bool simnet_send_copy(struct simnet *net, int src, int dst, const struct simnet_link *l,
                             void *msg)
{
	double loss = l && l->has_loss ? l->loss : net->loss;
	if (loss > 0 && simnet_unit(net) < loss) {
		net->ctr.dropped_loss++;
		simnet_drop_payload(net, SIMNET_EV_DELIVER, msg);
		return false;
	}
	uint32_t delay = l && l->has_delay ? l->delay : net->delay;
	uint32_t jitter = l && l->has_delay ? l->jitter : net->jitter;
	uint64_t at = net->now + delay + simnet_below(net, jitter + 1);
	const struct simnet_endpoint *se = &net->ep[src];
	if (se->slow_max > 0)
		at += simnet_range(net, se->slow_min, se->slow_max);
	simnet_schedule_delivery(net, at, src, dst, msg);
	return true;
}

enum simnet_fate simnet_send(struct simnet *net, int src, int dst, void *msg)
{
	net->ctr.sent++;
	if (src == dst) {
		simnet_schedule_delivery(net, net->now, src, dst, msg);
		return SIMNET_SENT;
	}
	const struct simnet_link *l = simnet_link_find(net, src, dst);
	if (simnet_link_cut(net, src, dst, l)) { /* one look-up for both */
		net->ctr.dropped_block++;
		simnet_drop_payload(net, SIMNET_EV_DELIVER, msg);
		return SIMNET_BLOCKED;
	}
	void *second = NULL;
	if (net->dup > 0 && simnet_unit(net) < net->dup && net->ops.clone_msg) {
		net->ctr.duplicated++;
		second = net->ops.clone_msg(net->owner, msg);
	}
	bool any = simnet_send_copy(net, src, dst, l, msg);
	if (second)
		any |= simnet_send_copy(net, src, dst, l, second);
	return any ? SIMNET_SENT : SIMNET_LOST;
}
