/*
 * sim.c — deterministic simulator: N membership cores on the simulated
 * world of sim_net.h (one virtual clock, one event queue, one PRNG, one
 * fake network; node i is endpoint i).
 *
 * How it works
 * ------------
 * Everything that will happen is an event in the world's queue, keyed by
 * (virtual time in ms, sequence number stamped at push), so two events due
 * at the same millisecond always run in the order they were scheduled: a
 * run depends on nothing but the seed. There are four kinds of event:
 *
 *   TIMER    node i's deadline (swim_next_deadline) has come. Each node has
 *            at most one live timer; re-arming bumps a generation number and
 *            stale heap entries are skipped when they surface.
 *   DELIVER  a packet reaches node i. A packet is a deep copy of a message a
 *            core popped (the core's own copy dies at its next swim_ call),
 *            made when it is sent and carried by the world's network: loss,
 *            blocks and partitions are decided at send time; arrival time =
 *            now + link delay + jitter (so jitter reorders) + the sender's
 *            "slow" delay. At arrival the world drops it if the node is down
 *            or was restarted since it was sent (a TCP connection to a dead
 *            process is gone) and holds it once more if the receiver is
 *            slow; this file queues it if the node is paused.
 *   JOIN     node i calls swim_join() through node `via` (staggered joins).
 *   LEAVE_TIMEOUT  a leaving node gives up waiting for swim_leave_done().
 *
 * After every swim_ call on a node the simulator drains it completely —
 * outputs are copied and scheduled, events are counted (sim_member_stats)
 * and passed to an optional hook — then re-arms the node's timer. The clock
 * moves one instant at a time: every event due at the earliest time runs,
 * then sim_run_until() evaluates its predicate if some member table (swim_
 * view_version), event count or node liveness changed in that instant (the
 * predicates are over those; an O(N) check every simulated millisecond
 * would dominate at N = 10,000), so a returned time is the exact
 * millisecond a condition first held.
 *
 * Faults: a crash frees the core and drops its queue, silently (the host
 * is gone: every send to it is lost); a kill does the same but the host
 * stays up, so a send to it comes back refused (swim_peer_refused on the
 * sender, SIM_REFUSE_RTT_MS later; not subject to loss, since a transport
 * sees a refusal on retry anyway; none across a block or partition); a
 * restart creates a
 * brand-new core (incarnation 0) with the same name, maybe at a new
 * address, and joins. A pause stops timers and queues input; on resume the
 * timer runs first and then every queued message (the order libuv's loop
 * uses after SIGCONT). A slow node models an overloaded host (Lifeguard's
 * "local health"): its input is processed and its output leaves late.
 *
 * Replaying a run
 * ---------------
 * sim_new() prints "sim seed=<n>" on stderr. Re-run the failing binary with
 * MV_SIM_SEED=<n> (it overrides the seed of every sim created) to get the
 * same run; MV_SIM_VERBOSE=1 adds one line per member event, and
 * MV_SIM_VERBOSE=2 also one line per message sent (with its updates).
 *
 * Byte counts use the exact protobuf size of the Envelope the daemon would
 * send (sim_wire_size, checked against swim_codec_frame_size() by
 * test_sim_net) plus the 4-byte frame header.
 */
#include "sim.h"
#include "sim_net.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The world's events besides deliveries (SIMNET_EV_DELIVER, p = a struct
 * sim_packet): node i, gen = the timer generation (TIMER) or the node's
 * epoch (JOIN, LEAVE_TIMEOUT, REFUSED), arg = via (JOIN) or the node that
 * refused (REFUSED: node i's send to it came back refused). */
enum sim_ev_kind {
	SIM_EV_TIMER = SIMNET_EV_USER,
	SIM_EV_JOIN,
	SIM_EV_LEAVE_TIMEOUT,
	SIM_EV_REFUSED
};

/* A refusal (RST, ICMP port unreachable) reaches the sender this long
 * after its send: one round trip of the default link. */
#define SIM_REFUSE_RTT_MS 2

/* Seeds a node started by sim_start_all() may know. */
#define SIM_SEEDS_MAX 8

/* A message in flight: the swim_msg, its updates and all strings live in
 * this one allocation. */
struct sim_packet {
	struct swim_msg msg;
};

struct sim_node {
	struct swim *core;
	char name[SWIM_NAME_MAX];
	char addr[SWIM_ADDR_MAX];
	bool paused;
	bool leaving;
	bool refusing; /* killed on a live host: sends to it are refused */
	uint32_t timer_gen;
	uint64_t view_ver; /* swim_view_version() at the last flush */
	uint64_t armed;    /* deadline of the live TIMER event, UINT64_MAX none */
	uint64_t redue_at; /* instant of the last "still due after the timer" */
	uint32_t redue_n;
	struct sim_packet **pq; /* queued while paused */
	size_t pq_n, pq_cap;
	struct sim_member_stats st;
	struct sim_traffic tr;
};

/* String -> node index, open addressing. Entries are never removed: a
 * lookup is confirmed against the node's current name/address. */
struct sim_strmap {
	const char **keys; /* points into a node (or owned copy for addrs) */
	int *vals;
	size_t cap, n;
};

struct sim {
	struct swim_config tmpl;
	/* One string table for every core (names and addresses once, not once
	 * per core: what makes N = 10,000 fit); ours unless cfg brought one. */
	struct swim_strtab *strtab_own;
	int n;
	struct sim_node *nodes;
	uint64_t seed;
	struct simnet *net; /* clock, events, PRNG, network; up = endpoint up */
	struct sim_strmap names, addrs;
	char **addr_copies;
	size_t n_addr_copies, cap_addr_copies;
	uint32_t leave_timeout_ms;
	bool verbose;
	bool trace;
	struct sim_counters ctr;
	/* Bumped whenever a member table, an event count or a node's liveness
	 * changes: sim_run_until() re-evaluates its predicate only then. */
	uint64_t view_gen;
	sim_event_f cb;
	void *cb_arg;
};

/* ------------------------------------------------------------------ PRNG */

uint64_t sim_rand(struct sim *s)
{
	return simnet_rand(s->net);
}

/* --------------------------------------------------------------- strmap */

static uint64_t sim_hash_str(const char *p)
{
	uint64_t h = 1469598103934665603ULL;
	for (; *p; p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ULL;
	return h;
}

static void sim_strmap_put(struct sim_strmap *m, const char *key, int val);

static void sim_strmap_grow(struct sim_strmap *m)
{
	struct sim_strmap old = *m;
	m->cap = old.cap ? old.cap * 2 : 64;
	m->n = 0;
	m->keys = calloc(m->cap, sizeof(*m->keys));
	m->vals = calloc(m->cap, sizeof(*m->vals));
	if (m->keys == NULL || m->vals == NULL)
		abort();
	for (size_t i = 0; i < old.cap; i++)
		if (old.keys[i] != NULL)
			sim_strmap_put(m, old.keys[i], old.vals[i]);
	free(old.keys);
	free(old.vals);
}

static void sim_strmap_put(struct sim_strmap *m, const char *key, int val)
{
	if ((m->n + 1) * 2 > m->cap)
		sim_strmap_grow(m);
	size_t i = sim_hash_str(key) & (m->cap - 1);
	while (m->keys[i] != NULL && strcmp(m->keys[i], key) != 0)
		i = (i + 1) & (m->cap - 1);
	if (m->keys[i] == NULL)
		m->n++;
	m->keys[i] = key;
	m->vals[i] = val;
}

static int sim_strmap_get(const struct sim_strmap *m, const char *key)
{
	if (m->cap == 0 || key == NULL)
		return -1;
	size_t i = sim_hash_str(key) & (m->cap - 1);
	while (m->keys[i] != NULL) {
		if (strcmp(m->keys[i], key) == 0)
			return m->vals[i];
		i = (i + 1) & (m->cap - 1);
	}
	return -1;
}

static void sim_strmap_free(struct sim_strmap *m)
{
	free(m->keys);
	free(m->vals);
}

/* -------------------------------------------------------------- network */

void sim_set_loss(struct sim *s, int a, int b, double p)
{
	simnet_set_loss(s->net, a, b, p);
}

void sim_set_delay(struct sim *s, int a, int b, uint32_t ms, uint32_t jitter_ms)
{
	simnet_set_delay(s->net, a, b, ms, jitter_ms);
}

void sim_block(struct sim *s, int a, int b)
{
	simnet_block(s->net, a, b);
}

void sim_unblock(struct sim *s, int a, int b)
{
	simnet_unblock(s->net, a, b);
}

void sim_partition(struct sim *s, const int *group)
{
	simnet_partition(s->net, group);
}

void sim_heal(struct sim *s)
{
	simnet_heal(s->net);
}

/* ------------------------------------------------------------ wire size */

static size_t sim_varint_size(uint64_t v)
{
	size_t n = 1;
	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/* proto3: an empty string is not on the wire; field numbers here are < 16,
 * so every tag is one byte. */
static size_t sim_str_field(const char *p)
{
	size_t len = p ? strlen(p) : 0;
	return len ? 1 + sim_varint_size(len) + len : 0;
}

static size_t sim_u64_field(uint64_t v)
{
	return v ? 1 + sim_varint_size(v) : 0;
}

size_t sim_wire_size(const struct swim_msg *m)
{
	size_t sw = sim_u64_field((uint64_t)m->type) + sim_u64_field(m->seq) +
	            sim_str_field(m->from_addr) + sim_str_field(m->to) + sim_str_field(m->target) +
	            sim_str_field(m->target_addr) + (m->join ? 2 : 0) + (m->refused ? 2 : 0);
	for (size_t i = 0; i < m->n_updates; i++) {
		const struct swim_update *u = &m->updates[i];
		size_t us = sim_str_field(u->name) + sim_str_field(u->addr) +
		            sim_u64_field(u->incarnation) + sim_u64_field((uint64_t)u->state) +
		            sim_str_field(u->origin) +
		            (u->proof_len ? 1 + sim_varint_size(u->proof_len) + u->proof_len : 0);
		sw += 1 + sim_varint_size(us) + us;
	}
	/* Digest (field 10, packed fixed64), want (11, packed varints), buckets
	 * (12). */
	if (m->n_digest)
		sw += 1 + sim_varint_size(8 * m->n_digest) + 8 * m->n_digest;
	if (m->n_want) {
		size_t w = 0;
		for (size_t i = 0; i < m->n_want; i++)
			w += sim_varint_size(m->want[i]);
		sw += 1 + sim_varint_size(w) + w;
	}
	sw += sim_u64_field(m->buckets);
	/* Envelope: version = 1 (2 bytes), from, swim (field 10, a oneof member:
	 * present even when empty). */
	size_t env = 2 + sim_str_field(m->from) + 1 + sim_varint_size(sw) + sw;
	return 4 + env;
}

/* -------------------------------------------------------------- packets */

static size_t sim_slen(const char *p)
{
	return p ? strlen(p) + 1 : 1;
}

static const char *sim_scopy(char **dst, const char *p)
{
	size_t len = p ? strlen(p) : 0;
	char *out = *dst;
	if (len)
		memcpy(out, p, len);
	out[len] = '\0';
	*dst += len + 1;
	return out;
}

static struct sim_packet *sim_packet_new(const struct swim_msg *m)
{
	size_t strs = sim_slen(m->from) + sim_slen(m->from_addr) + sim_slen(m->to) +
	              sim_slen(m->to_addr) + sim_slen(m->target) + sim_slen(m->target_addr);
	for (size_t i = 0; i < m->n_updates; i++)
		strs += sim_slen(m->updates[i].name) + sim_slen(m->updates[i].addr) +
		        sim_slen(m->updates[i].origin);
	size_t ups_end = sizeof(struct sim_packet) + m->n_updates * sizeof(struct swim_update);
	size_t want_at = ups_end + m->n_digest * sizeof(uint64_t);
	size_t head = want_at + m->n_want * sizeof(uint32_t);
	struct sim_packet *p = malloc(head + strs);
	if (p == NULL)
		abort();
	struct swim_update *ups = (struct swim_update *)(p + 1);
	uint64_t *digest = (uint64_t *)((char *)p + ups_end);
	uint32_t *want = (uint32_t *)((char *)p + want_at);
	char *sp = (char *)p + head;
	memset(p, 0, sizeof(*p));
	p->msg.type = m->type;
	p->msg.seq = m->seq;
	p->msg.join = m->join;
	p->msg.refused = m->refused;
	p->msg.from = sim_scopy(&sp, m->from);
	p->msg.from_addr = sim_scopy(&sp, m->from_addr);
	p->msg.to = sim_scopy(&sp, m->to);
	p->msg.to_addr = sim_scopy(&sp, m->to_addr);
	p->msg.target = sim_scopy(&sp, m->target);
	p->msg.target_addr = sim_scopy(&sp, m->target_addr);
	for (size_t i = 0; i < m->n_updates; i++) {
		ups[i].incarnation = m->updates[i].incarnation;
		ups[i].state = m->updates[i].state;
		ups[i].name = sim_scopy(&sp, m->updates[i].name);
		ups[i].addr = sim_scopy(&sp, m->updates[i].addr);
		ups[i].origin = sim_scopy(&sp, m->updates[i].origin);
		ups[i].proof = NULL; /* no signed claims in this simulator */
		ups[i].proof_len = 0;
	}
	p->msg.updates = m->n_updates ? ups : NULL;
	p->msg.n_updates = m->n_updates;
	if (m->n_digest)
		memcpy(digest, m->digest, m->n_digest * sizeof(*digest));
	p->msg.digest = m->n_digest ? digest : NULL;
	p->msg.n_digest = m->n_digest;
	if (m->n_want)
		memcpy(want, m->want, m->n_want * sizeof(*want));
	p->msg.want = m->n_want ? want : NULL;
	p->msg.n_want = m->n_want;
	p->msg.buckets = m->buckets;
	return p;
}

/* ------------------------------------------------------------ the nodes */

static void sim_node_flush(struct sim *s, int i, bool after_timer);
static void sim_join_seeds(struct sim *s, int i, int n_seeds);

static const char *const sim_ev_names[] = {
    "joined",       "suspect",      "alive",          "dead",        "left",         "reaped",
    "addr_changed", "self_refuted", "joined_cluster", "join_failed", "local_health",
};

static void sim_record_event(struct sim *s, int i, const struct swim_event *ev)
{
	struct sim_node *n = &s->nodes[i];
	int t = ev->name && *ev->name ? sim_strmap_get(&s->names, ev->name) : -1;
	struct sim_member_stats *ts = t >= 0 ? &s->nodes[t].st : NULL;
	switch (ev->type) {
	case SWIM_EV_MEMBER_SUSPECT:
		if (ts) {
			ts->suspected++;
			if (ts->first_suspect_at < 0)
				ts->first_suspect_at = (int64_t)simnet_now(s->net);
		}
		break;
	case SWIM_EV_MEMBER_DEAD:
		if (ts) {
			ts->dead++;
			if (ts->first_dead_at < 0)
				ts->first_dead_at = (int64_t)simnet_now(s->net);
		}
		break;
	case SWIM_EV_MEMBER_LEFT:
		if (ts)
			ts->left++;
		break;
	case SWIM_EV_SELF_REFUTED:
		n->st.refuted++;
		break;
	case SWIM_EV_LOCAL_HEALTH:
		if (ev->local_health > n->st.max_local_health)
			n->st.max_local_health = ev->local_health;
		break;
	default:
		break;
	}
	if (s->verbose) {
		unsigned type = (unsigned)ev->type;
		fprintf(stderr,
		        "sim t=%" PRIu64 " %s: %s %s inc=%" PRIu64 " conf=%u lh=%u cause=\"%s\"\n",
		        simnet_now(s->net), n->name,
		        type < sizeof(sim_ev_names) / sizeof(sim_ev_names[0]) ? sim_ev_names[type]
		                                                              : "?",
		        ev->name ? ev->name : "", ev->incarnation, ev->confirmations,
		        ev->local_health, ev->cause ? ev->cause : "");
	}
	if (s->cb)
		s->cb(s, i, ev, s->cb_arg);
}

static void sim_trace_msg(const struct sim *s, int src, int dst, const struct swim_msg *m,
                          const char *fate)
{
	fprintf(stderr, "sim t=%" PRIu64 " %s -> %s (%s) %s seq=%" PRIu64 " target=%s%s [",
	        simnet_now(s->net), s->nodes[src].name, dst >= 0 ? s->nodes[dst].name : "?",
	        m->to_addr, swim_msg_type_name(m->type), m->seq, m->target ? m->target : "",
	        m->join ? " join" : "");
	for (size_t i = 0; i < m->n_updates; i++)
		fprintf(stderr, "%s%s:%s:%" PRIu64 "%s%s", i ? " " : "", m->updates[i].name,
		        swim_state_name(m->updates[i].state), m->updates[i].incarnation,
		        m->updates[i].origin && *m->updates[i].origin ? "@" : "",
		        m->updates[i].origin ? m->updates[i].origin : "");
	fprintf(stderr, "] %s\n", fate);
}

static void sim_send(struct sim *s, int src, const struct swim_msg *m)
{
	struct sim_node *sn = &s->nodes[src];
	size_t wire = sim_wire_size(m);
	sn->tr.msgs++;
	sn->tr.bytes += wire;
	if ((unsigned)m->type < 6)
		sn->tr.msgs_by_type[m->type]++;
	if (m->type == SWIM_MSG_PUSH_PULL) {
		sn->tr.pp_digests += m->n_digest > 0;
		sn->tr.pp_full += m->n_digest == 0;
	}
	s->ctr.sent++;
	if (m->from == NULL || strcmp(m->from, sn->name) != 0)
		s->ctr.bad_from++;
	int dst = sim_strmap_get(&s->addrs, m->to_addr);
	if (dst < 0 || strcmp(s->nodes[dst].addr, m->to_addr) != 0) {
		s->ctr.dropped_unroutable++;
		if (s->trace)
			sim_trace_msg(s, src, -1, m, "UNROUTABLE");
		return;
	}
	if (s->nodes[dst].refusing && !simnet_is_up(s->net, dst) &&
	    simnet_link_open(s->net, src, dst) && simnet_link_open(s->net, dst, src)) {
		/* The host is up, the agent is not: its kernel refuses. */
		s->ctr.refused++;
		if (s->trace)
			sim_trace_msg(s, src, dst, m, "REFUSED");
		simnet_at(s->net,
		          (struct simnet_event){.at = simnet_now(s->net) + SIM_REFUSE_RTT_MS,
		                                .kind = SIM_EV_REFUSED,
		                                .node = src,
		                                .gen = simnet_epoch(s->net, src),
		                                .arg = dst});
		return;
	}
	static const char *const fates[] = {
	    [SIMNET_SENT] = "sent", [SIMNET_BLOCKED] = "BLOCKED", [SIMNET_LOST] = "LOST"};
	struct sim_packet *p = sim_packet_new(m); /* the world owns it now */
	enum simnet_fate fate = simnet_send(s->net, src, dst, p);
	if (fate == SIMNET_BLOCKED)
		s->ctr.dropped_block++;
	else if (fate == SIMNET_LOST)
		s->ctr.dropped_loss++;
	if (s->trace)
		sim_trace_msg(s, src, dst, m, fates[fate]);
}

static void sim_node_stop(struct sim *s, int i)
{
	struct sim_node *n = &s->nodes[i];
	if (n->core)
		swim_free(n->core);
	n->core = NULL;
	s->view_gen++;
	simnet_down(s->net, i);
	n->paused = false;
	n->leaving = false;
	n->refusing = false;
	n->timer_gen++;
	n->armed = UINT64_MAX;
	for (size_t k = 0; k < n->pq_n; k++)
		free(n->pq[k]);
	n->pq_n = 0;
}

static void sim_node_rearm(struct sim *s, int i, bool after_timer)
{
	struct sim_node *n = &s->nodes[i];
	uint64_t d = swim_next_deadline(n->core);
	if (d == UINT64_MAX) {
		if (n->armed != UINT64_MAX) {
			n->timer_gen++;
			n->armed = UINT64_MAX;
		}
		return;
	}
	if (d <= simnet_now(s->net)) {
		if (after_timer && n->redue_at == simnet_now(s->net) && ++n->redue_n >= 3) {
			/* The core ran its timers at `now` three times and still
			 * wants to run now: a busy loop in a real event loop.
			 * Count it and move on a millisecond. */
			s->ctr.timer_spins++;
			fprintf(stderr,
			        "sim t=%" PRIu64 " %s: timer spin: deadline %" PRIu64
			        " still due after 3 swim_handle_timer calls\n",
			        simnet_now(s->net), n->name, d);
			d = simnet_now(s->net) + 1;
		} else {
			/* Already due (e.g. a timer shortened by what the last
			 * call did): run again in this instant, as a zero-timeout
			 * uv_timer would. */
			if (after_timer) {
				s->ctr.timer_redue++;
				if (n->redue_at != simnet_now(s->net)) {
					n->redue_at = simnet_now(s->net);
					n->redue_n = 0;
				}
			}
			d = simnet_now(s->net);
		}
	}
	if (d == n->armed)
		return;
	n->timer_gen++;
	n->armed = d;
	simnet_at(s->net, (struct simnet_event){
			      .at = d, .kind = SIM_EV_TIMER, .node = i, .gen = n->timer_gen});
}

static void sim_node_flush(struct sim *s, int i, bool after_timer)
{
	struct sim_node *n = &s->nodes[i];
	struct swim_msg m;
	struct swim_event ev;
	while (swim_pop_output(n->core, &m))
		sim_send(s, i, &m);
	while (swim_pop_event(n->core, &ev)) {
		sim_record_event(s, i, &ev);
		s->view_gen++;
	}
	uint64_t v = swim_view_version(n->core);
	if (v != n->view_ver) {
		n->view_ver = v;
		s->view_gen++;
	}
	if (n->leaving && swim_leave_done(n->core)) {
		sim_node_stop(s, i);
		return;
	}
	sim_node_rearm(s, i, after_timer);
}

static void sim_node_deliver(struct sim *s, int i, struct sim_packet *p)
{
	struct sim_node *n = &s->nodes[i];
	if (swim_handle_message(n->core, &p->msg, simnet_now(s->net)) < 0)
		s->ctr.rejected++;
	s->ctr.delivered++;
	free(p);
	sim_node_flush(s, i, false);
}

static void sim_node_timer(struct sim *s, int i)
{
	struct sim_node *n = &s->nodes[i];
	n->armed = UINT64_MAX;
	n->timer_gen++;
	swim_handle_timer(n->core, simnet_now(s->net));
	sim_node_flush(s, i, true);
}

static void sim_dispatch(void *owner, struct simnet_event *ev)
{
	struct sim *s = owner;
	struct sim_node *n = &s->nodes[ev->node];
	bool up = simnet_is_up(s->net, ev->node);
	uint32_t epoch = simnet_epoch(s->net, ev->node);
	switch (ev->kind) {
	case SIM_EV_TIMER:
		if (!up || n->paused || ev->gen != n->timer_gen)
			return;
		sim_node_timer(s, ev->node);
		return;
	case SIMNET_EV_DELIVER: { /* the world dropped it if the node is down */
		struct sim_packet *p = ev->p;
		if (n->paused) {
			if (n->pq_n == n->pq_cap) {
				n->pq_cap = n->pq_cap ? n->pq_cap * 2 : 64;
				n->pq = realloc(n->pq, n->pq_cap * sizeof(*n->pq));
				if (n->pq == NULL)
					abort();
			}
			n->pq[n->pq_n++] = p;
			s->ctr.queued_paused++;
			return;
		}
		sim_node_deliver(s, ev->node, p);
		return;
	}
	case SIM_EV_JOIN:
		if (up && epoch == ev->gen && ev->arg < 0)
			sim_join_seeds(s, ev->node, -ev->arg);
		else if (up && epoch == ev->gen)
			sim_join(s, ev->node, ev->arg);
		return;
	case SIM_EV_LEAVE_TIMEOUT:
		if (up && n->leaving && epoch == ev->gen)
			sim_node_stop(s, ev->node);
		return;
	case SIM_EV_REFUSED: /* lost if the sender stopped; a paused one misses it */
		if (up && !n->paused && epoch == ev->gen) {
			swim_peer_refused(n->core, s->nodes[ev->arg].name, simnet_now(s->net));
			sim_node_flush(s, ev->node, false);
		}
		return;
	}
}

/* ---------------------------------------------------------- life cycle */

static void sim_format_addr(char *out, size_t len, int i, int gen)
{
	unsigned v = (unsigned)i + 1;
	snprintf(out, len, "10.%u.%u.%u:7946", (unsigned)gen * 64 + (v >> 16), (v >> 8) & 0xff,
	         v & 0xff);
}

/* Address keys are owned copies: a node's address changes on restart, and
 * a stale key is harmless (lookups are confirmed against node->addr). */
static void sim_addr_register(struct sim *s, int i)
{
	if (s->n_addr_copies == s->cap_addr_copies) {
		size_t cap = s->cap_addr_copies ? s->cap_addr_copies * 2 : 64;
		char **arr = realloc(s->addr_copies, cap * sizeof(*arr));
		if (arr == NULL)
			abort();
		s->addr_copies = arr;
		s->cap_addr_copies = cap;
	}
	char *copy = strdup(s->nodes[i].addr);
	if (copy == NULL)
		abort();
	s->addr_copies[s->n_addr_copies++] = copy;
	sim_strmap_put(&s->addrs, copy, i);
}

static void sim_node_boot(struct sim *s, int i)
{
	struct sim_node *n = &s->nodes[i];
	struct swim_config cfg = s->tmpl;
	snprintf(cfg.name, sizeof(cfg.name), "%s", n->name);
	snprintf(cfg.addr, sizeof(cfg.addr), "%s", n->addr);
	cfg.seed = sim_rand(s);
	n->core = swim_new(&cfg, 0, simnet_now(s->net));
	if (n->core == NULL) {
		fprintf(stderr, "sim: swim_new failed for %s\n", n->name);
		abort();
	}
	simnet_up(s->net, i);
	s->view_gen++;
	n->view_ver = swim_view_version(n->core);
	n->paused = false;
	n->leaving = false;
	n->refusing = false;
	n->armed = UINT64_MAX;
	sim_node_flush(s, i, false);
}

struct sim *sim_new(int n, const struct swim_config *cfg, uint64_t seed)
{
	assert(n > 0);
	struct sim *s = calloc(1, sizeof(*s));
	if (s == NULL)
		abort();
	seed = simnet_pick_seed(seed);
	s->seed = seed;
	s->net = simnet_new(n, seed, &(struct simnet_ops){.dispatch = sim_dispatch}, s);
	fprintf(stderr, "sim seed=%" PRIu64 " n=%d (replay: MV_SIM_SEED=%" PRIu64 ")\n", seed, n,
	        seed);
	const char *verbose = getenv("MV_SIM_VERBOSE");
	s->verbose = verbose != NULL && *verbose && *verbose != '0';
	s->trace = verbose != NULL && strcmp(verbose, "2") == 0;
	if (cfg)
		s->tmpl = *cfg;
	else
		swim_config_default(&s->tmpl);
	if (s->tmpl.strtab == NULL) {
		s->strtab_own = swim_strtab_new();
		if (s->strtab_own == NULL)
			abort();
		s->tmpl.strtab = s->strtab_own;
	}
	s->n = n;
	s->leave_timeout_ms = 5000;
	s->nodes = calloc((size_t)n, sizeof(*s->nodes));
	if (s->nodes == NULL)
		abort();
	for (int i = 0; i < n; i++) {
		struct sim_node *nd = &s->nodes[i];
		snprintf(nd->name, sizeof(nd->name), "n%d", i);
		sim_format_addr(nd->addr, sizeof(nd->addr), i, 0);
		nd->st.first_suspect_at = -1;
		nd->st.first_dead_at = -1;
		nd->armed = UINT64_MAX;
		sim_strmap_put(&s->names, nd->name, i);
	}
	for (int i = 0; i < n; i++)
		sim_addr_register(s, i);
	for (int i = 0; i < n; i++)
		sim_node_boot(s, i);
	return s;
}

void sim_free(struct sim *s)
{
	if (s == NULL)
		return;
	for (int i = 0; i < s->n; i++) {
		sim_node_stop(s, i);
		free(s->nodes[i].pq);
	}
	simnet_free(s->net); /* and the packets in flight */
	sim_strmap_free(&s->names);
	sim_strmap_free(&s->addrs);
	for (size_t k = 0; k < s->n_addr_copies; k++)
		free(s->addr_copies[k]);
	free(s->addr_copies);
	free(s->nodes);
	swim_strtab_free(s->strtab_own); /* after every core */
	free(s);
}

uint64_t sim_seed(const struct sim *s)
{
	return s->seed;
}
int sim_size(const struct sim *s)
{
	return s->n;
}
uint64_t sim_now(const struct sim *s)
{
	return simnet_now(s->net);
}
struct swim *sim_core(struct sim *s, int i)
{
	return s->nodes[i].core;
}
const char *sim_name(const struct sim *s, int i)
{
	return s->nodes[i].name;
}
const char *sim_addr(const struct sim *s, int i)
{
	return s->nodes[i].addr;
}
int sim_index(const struct sim *s, const char *name)
{
	return sim_strmap_get(&s->names, name);
}
bool sim_is_up(const struct sim *s, int i)
{
	return simnet_is_up(s->net, i);
}
bool sim_is_live(const struct sim *s, int i)
{
	return sim_is_up(s, i) && !s->nodes[i].paused;
}

void sim_join(struct sim *s, int i, int via)
{
	struct sim_node *n = &s->nodes[i];
	if (!sim_is_live(s, i))
		return;
	const char *seed = s->nodes[via].addr;
	swim_join(n->core, &seed, 1, simnet_now(s->net));
	sim_node_flush(s, i, false);
}

/* Joins node i through nodes 0..n_seeds-1 (its own address is skipped by
 * the core; seed 0 alone has nothing to join). */
static void sim_join_seeds(struct sim *s, int i, int n_seeds)
{
	struct sim_node *n = &s->nodes[i];
	if (!sim_is_live(s, i) || n_seeds <= 0)
		return;
	const char *seeds[SIM_SEEDS_MAX];
	if (n_seeds > SIM_SEEDS_MAX)
		n_seeds = SIM_SEEDS_MAX;
	if (n_seeds > s->n)
		n_seeds = s->n;
	for (int k = 0; k < n_seeds; k++)
		seeds[k] = s->nodes[k].addr;
	swim_join(n->core, seeds, (size_t)n_seeds, simnet_now(s->net));
	sim_node_flush(s, i, false);
}

/* A JOIN event for node i at a random moment within spread_ms: through
 * node `via`, or (via < 0) through nodes 0..-via-1. */
static void sim_join_at(struct sim *s, int i, int via, uint32_t spread_ms)
{
	simnet_at(s->net, (struct simnet_event){.at = simnet_now(s->net) +
	                                              simnet_range(s->net, 0, spread_ms),
	                                        .kind = SIM_EV_JOIN,
	                                        .node = i,
	                                        .gen = simnet_epoch(s->net, i),
	                                        .arg = via});
}

void sim_join_all(struct sim *s, int via, uint32_t spread_ms)
{
	for (int i = 0; i < s->n; i++) {
		if (i == via)
			continue;
		sim_join_at(s, i, via, spread_ms);
	}
}

void sim_start_all(struct sim *s, int n_seeds, uint32_t spread_ms)
{
	for (int i = 0; i < s->n; i++)
		sim_join_at(s, i, -n_seeds, spread_ms);
}

void sim_crash(struct sim *s, int i)
{
	sim_node_stop(s, i);
}

void sim_kill(struct sim *s, int i)
{
	sim_node_stop(s, i);
	s->nodes[i].refusing = true;
}

void sim_restart(struct sim *s, int i, const char *new_addr, int via)
{
	struct sim_node *n = &s->nodes[i];
	if (sim_is_up(s, i))
		sim_node_stop(s, i);
	if (new_addr != NULL && strcmp(new_addr, n->addr) != 0) {
		snprintf(n->addr, sizeof(n->addr), "%s", new_addr);
		sim_addr_register(s, i);
	}
	sim_node_boot(s, i);
	if (via >= 0 && via != i)
		sim_join(s, i, via);
}

void sim_pause(struct sim *s, int i)
{
	if (sim_is_up(s, i))
		s->nodes[i].paused = true;
	s->view_gen++;
}

void sim_resume(struct sim *s, int i)
{
	struct sim_node *n = &s->nodes[i];
	if (!sim_is_up(s, i) || !n->paused)
		return;
	n->paused = false;
	s->view_gen++;
	/* libuv after SIGCONT: timers first, then the I/O that piled up. */
	if (n->armed != UINT64_MAX && n->armed <= simnet_now(s->net)) {
		sim_node_timer(s, i);
		if (!sim_is_up(s, i))
			return;
	}
	/* Detach the queue: delivering may stop the node (leave done). */
	struct sim_packet **q = n->pq;
	size_t qn = n->pq_n;
	n->pq = NULL;
	n->pq_n = n->pq_cap = 0;
	for (size_t k = 0; k < qn; k++) {
		if (sim_is_up(s, i))
			sim_node_deliver(s, i, q[k]);
		else
			free(q[k]);
	}
	free(q);
	if (sim_is_up(s, i))
		sim_node_rearm(s, i, false);
}

void sim_set_slow(struct sim *s, int i, uint32_t min_ms, uint32_t max_ms)
{
	simnet_set_slow(s->net, i, min_ms, max_ms < min_ms ? min_ms : max_ms);
}

void sim_leave(struct sim *s, int i)
{
	struct sim_node *n = &s->nodes[i];
	if (!sim_is_up(s, i))
		return;
	swim_leave(n->core, simnet_now(s->net));
	n->leaving = true;
	simnet_at(s->net, (struct simnet_event){.at = simnet_now(s->net) + s->leave_timeout_ms,
	                                        .kind = SIM_EV_LEAVE_TIMEOUT,
	                                        .node = i,
	                                        .gen = simnet_epoch(s->net, i)});
	sim_node_flush(s, i, false);
}

/* ----------------------------------------------------------------- clock */

struct sim_pred_call {
	struct sim *s;
	sim_pred_f pred;
	void *arg;
	uint64_t gen; /* view_gen at the last evaluation */
};

/* Event-driven: a predicate over member tables, events and liveness can
 * only change when one of them did, so an instant that changed none (most
 * of them at large N: probes and acks of a steady cluster) costs nothing,
 * instead of an O(N) check every simulated millisecond. */
static bool sim_pred_call(void *arg)
{
	struct sim_pred_call *c = arg;
	if (c->s->view_gen == c->gen)
		return false;
	c->gen = c->s->view_gen;
	return c->pred(c->s, c->arg);
}

void sim_run_for(struct sim *s, uint64_t ms)
{
	simnet_run_for(s->net, ms);
}

int64_t sim_run_until(struct sim *s, sim_pred_f pred, void *arg, uint64_t timeout_ms)
{
	struct sim_pred_call c = {s, pred, arg, s->view_gen - 1};
	return simnet_run_until(s->net, sim_pred_call, &c, timeout_ms);
}

/* --------------------------------------------------------------- queries */

bool sim_member_of(struct sim *s, int observer, int target, struct swim_member_info *out)
{
	struct sim_node *o = &s->nodes[observer];
	if (!sim_is_up(s, observer))
		return false;
	return swim_member_find(o->core, s->nodes[target].name, out);
}

int sim_state_of(struct sim *s, int observer, int target)
{
	struct swim_member_info mi;
	if (!sim_member_of(s, observer, target, &mi))
		return -1;
	return (int)mi.state;
}

bool sim_all_see(struct sim *s, int target, enum swim_state state, const char *addr)
{
	for (int i = 0; i < s->n; i++) {
		if (i == target || !sim_is_live(s, i))
			continue;
		struct swim_member_info mi;
		if (!swim_member_find(s->nodes[i].core, s->nodes[target].name, &mi))
			return false;
		if (mi.state != state)
			return false;
		if (addr != NULL && strcmp(mi.addr, addr) != 0)
			return false;
	}
	return true;
}

struct sim_all_see_arg {
	int target;
	enum swim_state state;
};

static bool sim_pred_all_see(struct sim *s, void *arg)
{
	const struct sim_all_see_arg *a = arg;
	return sim_all_see(s, a->target, a->state, NULL);
}

int64_t sim_run_until_all_see(struct sim *s, int target, enum swim_state state, uint64_t timeout_ms)
{
	struct sim_all_see_arg a = {target, state};
	return sim_run_until(s, sim_pred_all_see, &a, timeout_ms);
}

bool sim_one_view(struct sim *s)
{
	int ref = -1;
	uint32_t rc[4] = {0};
	size_t rn = 0;
	/* Cheap passes first (this runs after every instant): sizes, then
	 * per-state counts must agree before members are compared. */
	for (int i = 0; i < s->n; i++) {
		if (!sim_is_live(s, i))
			continue;
		size_t cnt = swim_member_count(s->nodes[i].core);
		if (ref < 0) {
			ref = i;
			rn = cnt;
		} else if (cnt != rn) {
			return false;
		}
	}
	if (ref >= 0)
		swim_state_counts(s->nodes[ref].core, rc);
	for (int i = ref + 1; ref >= 0 && i < s->n; i++) {
		if (!sim_is_live(s, i))
			continue;
		uint32_t c[4];
		swim_state_counts(s->nodes[i].core, c);
		if (memcmp(c, rc, sizeof(rc)) != 0)
			return false;
	}
	if (ref < 0)
		return true;
	struct swim *rcore = s->nodes[ref].core;
	for (size_t k = 0; k < rn; k++) {
		struct swim_member_info a;
		swim_member_at(rcore, k, &a);
		/* Copy what we compare: another core's calls may not touch a's
		 * strings, but keep it independent of that. */
		char name[SWIM_NAME_MAX], addr[SWIM_ADDR_MAX];
		snprintf(name, sizeof(name), "%s", a.name);
		snprintf(addr, sizeof(addr), "%s", a.addr);
		for (int i = 0; i < s->n; i++) {
			if (i == ref || !sim_is_live(s, i))
				continue;
			struct swim_member_info b;
			if (!swim_member_find(s->nodes[i].core, name, &b))
				return false;
			if (b.state != a.state || b.incarnation != a.incarnation ||
			    strcmp(b.addr, addr) != 0)
				return false;
		}
	}
	return true;
}

bool sim_all_alive(struct sim *s)
{
	int ref = -1;
	for (int i = 0; i < s->n && ref < 0; i++)
		if (sim_is_live(s, i))
			ref = i;
	if (ref < 0)
		return true;
	for (int i = 0; i < s->n; i++) {
		if (!sim_is_live(s, i))
			continue;
		struct swim_member_info mi;
		if (!swim_member_find(s->nodes[ref].core, s->nodes[i].name, &mi) ||
		    mi.state != SWIM_ALIVE || strcmp(mi.addr, s->nodes[i].addr) != 0)
			return false;
	}
	return sim_one_view(s);
}

bool sim_pred_one_view(struct sim *s, void *arg)
{
	return sim_one_view(s);
}
bool sim_pred_all_alive(struct sim *s, void *arg)
{
	return sim_all_alive(s);
}

/* ------------------------------------------------------------ statistics */

const struct sim_member_stats *sim_stats(const struct sim *s, int i)
{
	return &s->nodes[i].st;
}
const struct sim_traffic *sim_traffic(const struct sim *s, int i)
{
	return &s->nodes[i].tr;
}
const struct sim_counters *sim_counters(struct sim *s)
{
	s->ctr.dropped_down = simnet_counters(s->net)->dropped_down; /* the world's count */
	return &s->ctr;
}

void sim_stats_reset(struct sim *s)
{
	for (int i = 0; i < s->n; i++) {
		memset(&s->nodes[i].st, 0, sizeof(s->nodes[i].st));
		s->nodes[i].st.first_suspect_at = -1;
		s->nodes[i].st.first_dead_at = -1;
		memset(&s->nodes[i].tr, 0, sizeof(s->nodes[i].tr));
	}
}

uint64_t sim_total_dead(const struct sim *s)
{
	uint64_t t = 0;
	for (int i = 0; i < s->n; i++)
		t += s->nodes[i].st.dead;
	return t;
}

uint64_t sim_total_suspected(const struct sim *s)
{
	uint64_t t = 0;
	for (int i = 0; i < s->n; i++)
		t += s->nodes[i].st.suspected;
	return t;
}

void sim_set_event_cb(struct sim *s, sim_event_f cb, void *arg)
{
	s->cb = cb;
	s->cb_arg = arg;
}

static double sim_node_scale(int n)
{
	double l = log10(n > 1 ? (double)n : 1.0);
	return l < 1.0 ? 1.0 : l;
}

uint64_t sim_suspicion_min_ms(const struct swim_config *cfg, int n)
{
	return (uint64_t)(cfg->suspicion_min_mult * sim_node_scale(n) * cfg->probe_interval_ms);
}

uint64_t sim_suspicion_max_ms(const struct swim_config *cfg, int n)
{
	return sim_suspicion_min_ms(cfg, n) * cfg->suspicion_max_mult;
}

void sim_rss_kib(long *rss, long *peak)
{
	*rss = -1;
	*peak = -1;
	FILE *f = fopen("/proc/self/status", "r");
	if (f == NULL)
		return;
	char line[256];
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "VmRSS:", 6) == 0)
			*rss = strtol(line + 6, NULL, 10);
		else if (strncmp(line, "VmHWM:", 6) == 0)
			*peak = strtol(line + 6, NULL, 10);
	}
	fclose(f);
}
