/*
 * sim_state.c — deterministic simulator for the node-state core: N nstate
 * cores, one virtual clock, one fake network, one PRNG.
 *
 * Why a sibling of sim.c rather than an extension: sim.c's packets, wire
 * sizes and statistics are the membership core's (struct swim_msg); the
 * node-state core has its own message type and its own questions (how long
 * until every node holds a change, how many bytes per node per second).
 * Both run on the same simulated world (sim_net.h: the virtual clock, the
 * event queue, the PRNG and the fake network, node i = endpoint i):
 *
 *   - events: TIMER (node i's nstate_next_deadline, one live timer per node
 *     with a generation number; stale entries are skipped), DELIVER (a deep
 *     copy of a message a core popped, carried by the world's network: loss
 *     and partitions decided at send, arrival = now + delay + jitter,
 *     dropped at arrival if the receiver is down or restarted since),
 *     MEMBER (what membership would tell every node: a peer down or up, a
 *     partition, a heal);
 *   - after every nstate_ call on a node the node is drained completely:
 *     outputs copied and scheduled, events counted, timer re-armed.
 *
 * Spread measurement: each tracked change (host, incarnation, version, t0)
 * counts the live nodes whose view reached it or something newer. The
 * count is driven by the cores' own events: an event at observer o about
 * host h moving from the version o held before (kept in an N x N table) to
 * a new one counts for every tracked change of h in between. When the
 * count reaches the number of live nodes the spread time is fixed.
 */
#include "sim_state.h"
#include "sim_net.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state_codec.h"

/* The world's events besides deliveries (SIMNET_EV_DELIVER, p = a struct
 * ssim_packet). TIMER: node, gen = timer generation. MEMBER: node = the
 * target (-1: all), gen = partition generation, arg = enum ssim_member_op. */
enum ssim_ev_kind { SSIM_EV_TIMER = SIMNET_EV_USER, SSIM_EV_MEMBER };
enum ssim_member_op { SSIM_OP_DOWN, SSIM_OP_UP, SSIM_OP_PARTITION, SSIM_OP_HEAL };

struct ssim_packet {
	struct nstate_msg msg; /* records and strings follow in the allocation */
};

struct ssim_vv {
	uint64_t inc, ver;
	bool has;
};

struct ssim_node {
	struct nstate *core;
	char name[NSTATE_NAME_MAX];
	char addr[NSTATE_ADDR_MAX];
	bool published;
	uint32_t timer_gen;
	uint64_t armed;
	uint64_t inc, ver; /* its current (last published) record */
	struct ssim_traffic tr;
};

struct ssim {
	struct nstate_config tmpl;
	int n;
	struct ssim_node *nodes;
	struct ssim_vv *seen; /* seen[o * n + h]: o's view of h */
	uint64_t seed;
	struct simnet *net; /* clock, events, PRNG, network; up = endpoint up */
	uint32_t part_gen;
	uint32_t member_delay;
	bool member_follows;
	uint32_t record_bytes;
	uint8_t *data; /* record_bytes of filler, the first 16 stamped per record */
	struct ssim_change *ch;
	size_t n_ch, cap_ch;
	uint32_t **open; /* per host: indices of changes not yet everywhere */
	uint32_t *n_open, *cap_open;
	bool verbose;
	struct ssim_counters ctr;
};

/* ------------------------------------------------------------------ PRNG */

uint64_t ssim_rand(struct ssim *s)
{
	return simnet_rand(s->net);
}

/* -------------------------------------------------------------- packets */

static size_t ssim_slen(const char *p)
{
	return (p ? strlen(p) : 0) + 1;
}

static const char *ssim_scopy(char **dst, const char *p)
{
	size_t len = p ? strlen(p) : 0;
	char *out = *dst;
	if (len)
		memcpy(out, p, len);
	out[len] = '\0';
	*dst += len + 1;
	return out;
}

/* One allocation: packet, tree hashes and nodes, version and record
 * arrays, strings, bytes. */
static struct ssim_packet *ssim_packet_new(const struct nstate_msg *m)
{
	size_t tail = ssim_slen(m->from) + ssim_slen(m->to) + ssim_slen(m->to_addr);
	for (size_t i = 0; i < m->n_versions; i++)
		tail += ssim_slen(m->versions[i].name);
	for (size_t i = 0; i < m->n_records; i++)
		tail += ssim_slen(m->records[i].name) + m->records[i].len;
	size_t head = sizeof(struct ssim_packet) + m->n_hashes * sizeof(uint64_t) +
	              m->n_nodes * sizeof(uint32_t) +
	              m->n_versions * sizeof(struct nstate_version) +
	              m->n_records * sizeof(struct nstate_record);
	/* the version and record arrays hold pointers: keep them aligned */
	head += (8 - (m->n_nodes * sizeof(uint32_t)) % 8) % 8;
	struct ssim_packet *p = malloc(head + tail);
	if (p == NULL)
		abort();
	memset(p, 0, sizeof(*p));
	uint64_t *hashes = (uint64_t *)(p + 1);
	uint32_t *nodes = (uint32_t *)(hashes + m->n_hashes);
	size_t nodes_bytes = m->n_nodes * sizeof(uint32_t);
	struct nstate_version *v =
	    (struct nstate_version *)((char *)nodes + nodes_bytes + (8 - nodes_bytes % 8) % 8);
	struct nstate_record *r = (struct nstate_record *)(v + m->n_versions);
	char *sp = (char *)p + head;
	p->msg = *m;
	p->msg.from = ssim_scopy(&sp, m->from);
	p->msg.to = ssim_scopy(&sp, m->to);
	p->msg.to_addr = ssim_scopy(&sp, m->to_addr);
	for (size_t i = 0; i < m->n_versions; i++) {
		v[i] = m->versions[i];
		v[i].name = ssim_scopy(&sp, m->versions[i].name);
	}
	for (size_t i = 0; i < m->n_records; i++) {
		r[i] = m->records[i];
		r[i].name = ssim_scopy(&sp, m->records[i].name);
		if (m->records[i].len)
			memcpy(sp, m->records[i].data, m->records[i].len);
		r[i].data = (const uint8_t *)sp;
		sp += m->records[i].len;
	}
	if (m->n_hashes)
		memcpy(hashes, m->hashes, m->n_hashes * sizeof(*hashes));
	if (m->n_nodes)
		memcpy(nodes, m->nodes, nodes_bytes);
	p->msg.hashes = m->n_hashes ? hashes : NULL;
	p->msg.nodes = m->n_nodes ? nodes : NULL;
	p->msg.versions = m->n_versions ? v : NULL;
	p->msg.records = m->n_records ? r : NULL;
	return p;
}

/* ------------------------------------------------------------ the nodes */

static int ssim_index(const struct ssim *s, const char *name)
{
	/* names are "n<i>": parse rather than look up */
	if (name == NULL || name[0] != 'n' || name[1] == '\0')
		return -1;
	char *end;
	long i = strtol(name + 1, &end, 10);
	if (*end != '\0' || i < 0 || i >= s->n || strcmp(s->nodes[i].name, name) != 0)
		return -1;
	return (int)i;
}

static int ssim_cmp(uint64_t ia, uint64_t va, uint64_t ib, uint64_t vb)
{
	if (ia != ib)
		return ia < ib ? -1 : 1;
	return va < vb ? -1 : va > vb;
}

static uint32_t ssim_n_up(const struct ssim *s)
{
	uint32_t n = 0;
	for (int i = 0; i < s->n; i++)
		n += simnet_is_up(s->net, i);
	return n;
}

/* Observer o's view of host h moved to (inc, ver): count it for every open
 * change of h it reaches. */
static void ssim_view_moved(struct ssim *s, int o, int h, uint64_t inc, uint64_t ver)
{
	struct ssim_vv *vv = &s->seen[(size_t)o * (size_t)s->n + (size_t)h];
	if (vv->has && ssim_cmp(inc, ver, vv->inc, vv->ver) <= 0) {
		s->ctr.regress++;
		return;
	}
	uint32_t live = ssim_n_up(s);
	uint32_t k = 0;
	while (k < s->n_open[h]) {
		struct ssim_change *c = &s->ch[s->open[h][k]];
		bool reached = ssim_cmp(c->incarnation, c->version, inc, ver) <= 0;
		bool before =
		    vv->has && ssim_cmp(c->incarnation, c->version, vv->inc, vv->ver) <= 0;
		if (reached && !before)
			c->have++;
		if (c->have >= live) {
			c->spread = (int64_t)(simnet_now(s->net) - c->at);
			s->open[h][k] = s->open[h][--s->n_open[h]];
			continue;
		}
		k++;
	}
	vv->has = true;
	vv->inc = inc;
	vv->ver = ver;
}

static void ssim_send(struct ssim *s, int src, const struct nstate_msg *m)
{
	struct ssim_node *sn = &s->nodes[src];
	size_t wire = state_codec_frame_size(m);
	sn->tr.msgs++;
	sn->tr.bytes += wire;
	if ((unsigned)m->type < SSIM_TYPES) {
		sn->tr.msgs_by_type[m->type]++;
		sn->tr.bytes_by_type[m->type] += wire;
	}
	s->ctr.sent++;
	int dst = ssim_index(s, m->to);
	if (dst < 0 || strcmp(s->nodes[dst].addr, m->to_addr ? m->to_addr : "") != 0) {
		s->ctr.unroutable++;
		return;
	}
	if (dst == src) {
		s->ctr.to_self++;
		return;
	}
	enum simnet_fate fate = simnet_send(s->net, src, dst, ssim_packet_new(m));
	if (fate == SIMNET_BLOCKED)
		s->ctr.dropped_block++;
	else if (fate == SIMNET_LOST)
		s->ctr.dropped_loss++;
}

static void ssim_rearm(struct ssim *s, int i)
{
	struct ssim_node *n = &s->nodes[i];
	uint64_t d = nstate_next_deadline(n->core);
	if (d == UINT64_MAX) {
		n->timer_gen++;
		n->armed = UINT64_MAX;
		return;
	}
	if (d <= simnet_now(s->net))
		d = simnet_now(s->net) + 1; /* the core never asks for this; do not spin */
	if (d == n->armed)
		return;
	n->timer_gen++;
	n->armed = d;
	simnet_at(s->net, (struct simnet_event){
			      .at = d, .kind = SSIM_EV_TIMER, .node = i, .gen = n->timer_gen});
}

static void ssim_flush(struct ssim *s, int i)
{
	struct ssim_node *n = &s->nodes[i];
	struct nstate_msg m;
	struct nstate_event ev;
	while (nstate_pop_output(n->core, &m))
		ssim_send(s, i, &m);
	while (nstate_pop_event(n->core, &ev)) {
		int h = ssim_index(s, ev.name);
		if (s->verbose)
			fprintf(stderr,
			        "ssim t=%" PRIu64 " %s: %s %s inc=%" PRIu64 " ver=%" PRIu64 "\n",
			        simnet_now(s->net), n->name, ev.is_new_host ? "new" : "newer",
			        ev.name, ev.incarnation, ev.version);
		if (h >= 0)
			ssim_view_moved(s, i, h, ev.incarnation, ev.version);
	}
	ssim_rearm(s, i);
}

static bool ssim_reachable(const struct ssim *s, int a, int b)
{
	return !(s->member_follows && simnet_partitioned(s->net) &&
	         simnet_group(s->net, a) != simnet_group(s->net, b));
}

static void ssim_node_stop(struct ssim *s, int i)
{
	struct ssim_node *n = &s->nodes[i];
	nstate_free(n->core);
	n->core = NULL;
	simnet_down(s->net, i);
	n->timer_gen++;
	n->armed = UINT64_MAX;
	memset(&s->seen[(size_t)i * (size_t)s->n], 0, (size_t)s->n * sizeof(*s->seen));
}

static void ssim_node_boot(struct ssim *s, int i)
{
	struct ssim_node *n = &s->nodes[i];
	struct nstate_config cfg = s->tmpl;
	snprintf(cfg.name, sizeof(cfg.name), "%s", n->name);
	cfg.seed = ssim_rand(s);
	n->core = nstate_new(&cfg, simnet_now(s->net));
	if (n->core == NULL) {
		fprintf(stderr, "ssim: nstate_new failed for %s\n", n->name);
		abort();
	}
	simnet_up(s->net, i);
	n->armed = UINT64_MAX;
	for (int j = 0; j < s->n; j++)
		if (j != i && simnet_is_up(s->net, j) && ssim_reachable(s, i, j))
			nstate_peer_up(n->core, s->nodes[j].name, s->nodes[j].addr);
	ssim_flush(s, i);
}

static void ssim_member(struct ssim *s, const struct simnet_event *ev)
{
	int t = ev->node;
	for (int o = 0; o < s->n; o++) {
		struct ssim_node *on = &s->nodes[o];
		if (!simnet_is_up(s->net, o) ||
		    (o == t && (ev->arg == SSIM_OP_DOWN || ev->arg == SSIM_OP_UP)))
			continue;
		switch (ev->arg) {
		case SSIM_OP_DOWN:
			nstate_peer_down(on->core, s->nodes[t].name);
			break;
		case SSIM_OP_UP:
			if (simnet_is_up(s->net, t) && ssim_reachable(s, o, t))
				nstate_peer_up(on->core, s->nodes[t].name, s->nodes[t].addr);
			break;
		case SSIM_OP_PARTITION:
			if (ev->gen != s->part_gen || !simnet_partitioned(s->net))
				return;
			for (int j = 0; j < s->n; j++)
				if (j != o && !ssim_reachable(s, o, j))
					nstate_peer_down(on->core, s->nodes[j].name);
			break;
		case SSIM_OP_HEAL:
			if (ev->gen != s->part_gen || simnet_partitioned(s->net))
				return;
			for (int j = 0; j < s->n; j++)
				if (j != o && simnet_is_up(s->net, j))
					nstate_peer_up(on->core, s->nodes[j].name,
					               s->nodes[j].addr);
			break;
		}
	}
}

static void ssim_schedule_member(struct ssim *s, int op, int target)
{
	simnet_at(s->net, (struct simnet_event){.at = simnet_now(s->net) + s->member_delay,
	                                        .kind = SSIM_EV_MEMBER,
	                                        .node = target,
	                                        .arg = op,
	                                        .gen = s->part_gen});
}

static void ssim_dispatch(void *owner, struct simnet_event *ev)
{
	struct ssim *s = owner;
	if (ev->kind == SSIM_EV_MEMBER) {
		ssim_member(s, ev);
		return;
	}
	struct ssim_node *n = &s->nodes[ev->node];
	if (ev->kind == SSIM_EV_TIMER) {
		if (!simnet_is_up(s->net, ev->node) || ev->gen != n->timer_gen)
			return;
		n->armed = UINT64_MAX;
		n->timer_gen++;
		nstate_handle_timer(n->core, simnet_now(s->net));
		ssim_flush(s, ev->node);
		return;
	}
	/* SIMNET_EV_DELIVER: the world dropped it if the node is down */
	struct ssim_packet *p = ev->p;
	if (nstate_handle_message(n->core, &p->msg, simnet_now(s->net)) < 0)
		s->ctr.rejected++;
	s->ctr.delivered++;
	free(p);
	ssim_flush(s, ev->node);
}

/* ---------------------------------------------------------- life cycle */

struct ssim *ssim_new(int n, const struct nstate_config *tmpl, uint64_t seed)
{
	assert(n > 0);
	struct ssim *s = calloc(1, sizeof(*s));
	if (s == NULL)
		abort();
	seed = simnet_pick_seed(seed);
	s->seed = seed;
	s->net = simnet_new(n, seed, &(struct simnet_ops){.dispatch = ssim_dispatch}, s);
	fprintf(stderr, "sim seed=%" PRIu64 " n=%d (replay: MV_SIM_SEED=%" PRIu64 ")\n", seed, n,
	        seed);
	const char *verbose = getenv("MV_SIM_VERBOSE");
	s->verbose = verbose != NULL && *verbose && *verbose != '0';
	if (tmpl)
		s->tmpl = *tmpl;
	else
		nstate_config_default(&s->tmpl);
	s->n = n;
	s->member_delay = 2000;
	s->member_follows = true;
	s->nodes = calloc((size_t)n, sizeof(*s->nodes));
	s->seen = calloc((size_t)n * (size_t)n, sizeof(*s->seen));
	s->open = calloc((size_t)n, sizeof(*s->open));
	s->n_open = calloc((size_t)n, sizeof(*s->n_open));
	s->cap_open = calloc((size_t)n, sizeof(*s->cap_open));
	if (!s->nodes || !s->seen || !s->open || !s->n_open || !s->cap_open)
		abort();
	ssim_set_record_bytes(s, 800);
	for (int i = 0; i < n; i++) {
		struct ssim_node *nd = &s->nodes[i];
		snprintf(nd->name, sizeof(nd->name), "n%d", i);
		snprintf(nd->addr, sizeof(nd->addr), "10.0.%d.%d:7950", i / 256, i % 256);
		nd->armed = UINT64_MAX;
	}
	/* every endpoint starts up, so that every boot sees every other */
	for (int i = 0; i < n; i++) {
		simnet_down(s->net, i);
		ssim_node_boot(s, i);
	}
	return s;
}

void ssim_free(struct ssim *s)
{
	if (s == NULL)
		return;
	for (int i = 0; i < s->n; i++) {
		nstate_free(s->nodes[i].core);
		free(s->open[i]);
	}
	simnet_free(s->net); /* and the packets in flight */
	free(s->nodes);
	free(s->seen);
	free(s->open);
	free(s->n_open);
	free(s->cap_open);
	free(s->ch);
	free(s->data);
	free(s);
}

uint64_t ssim_seed(const struct ssim *s)
{
	return s->seed;
}
uint64_t ssim_now(const struct ssim *s)
{
	return simnet_now(s->net);
}
int ssim_size(const struct ssim *s)
{
	return s->n;
}
struct nstate *ssim_core(struct ssim *s, int i)
{
	return s->nodes[i].core;
}
const char *ssim_name(const struct ssim *s, int i)
{
	return s->nodes[i].name;
}
bool ssim_is_up(const struct ssim *s, int i)
{
	return simnet_is_up(s->net, i);
}
uint64_t ssim_incarnation(const struct ssim *s, int i)
{
	return s->nodes[i].inc;
}
uint64_t ssim_version(const struct ssim *s, int i)
{
	return s->nodes[i].ver;
}

void ssim_set_loss(struct ssim *s, double p)
{
	simnet_set_loss(s->net, -1, -1, p);
}

void ssim_set_delay(struct ssim *s, uint32_t ms, uint32_t jitter_ms)
{
	simnet_set_delay(s->net, -1, -1, ms, jitter_ms);
}

void ssim_set_member_delay(struct ssim *s, uint32_t ms, bool follows_partition)
{
	s->member_delay = ms;
	s->member_follows = follows_partition;
}

void ssim_set_record_bytes(struct ssim *s, uint32_t bytes)
{
	if (bytes < 16)
		bytes = 16;
	free(s->data);
	s->data = malloc(bytes);
	if (s->data == NULL)
		abort();
	for (uint32_t k = 0; k < bytes; k++)
		s->data[k] = (uint8_t)(k * 131 + 17);
	s->record_bytes = bytes;
}

void ssim_partition(struct ssim *s, const int *group)
{
	simnet_partition(s->net, group);
	s->part_gen++;
	if (s->member_follows)
		ssim_schedule_member(s, SSIM_OP_PARTITION, -1);
}

void ssim_heal(struct ssim *s)
{
	simnet_heal(s->net);
	s->part_gen++;
	if (s->member_follows)
		ssim_schedule_member(s, SSIM_OP_HEAL, -1);
}

/* --------------------------------------------------------------- records */

static struct ssim_change *ssim_track(struct ssim *s, int i, bool urgent)
{
	if (s->n_ch == s->cap_ch) {
		s->cap_ch = s->cap_ch ? s->cap_ch * 2 : 256;
		s->ch = realloc(s->ch, s->cap_ch * sizeof(*s->ch));
		if (s->ch == NULL)
			abort();
	}
	if (s->n_open[i] == s->cap_open[i]) {
		s->cap_open[i] = s->cap_open[i] ? s->cap_open[i] * 2 : 4;
		s->open[i] = realloc(s->open[i], s->cap_open[i] * sizeof(**s->open));
		if (s->open[i] == NULL)
			abort();
	}
	struct ssim_change *c = &s->ch[s->n_ch];
	c->host = i;
	c->incarnation = s->nodes[i].inc;
	c->version = s->nodes[i].ver;
	c->at = simnet_now(s->net);
	c->spread = -1;
	c->have = 0;
	c->urgent = urgent;
	s->open[i][s->n_open[i]++] = (uint32_t)s->n_ch;
	s->n_ch++;
	return c;
}

static void ssim_publish(struct ssim *s, int i, bool urgent, bool track)
{
	struct ssim_node *n = &s->nodes[i];
	uint64_t stamp[2] = {n->inc, n->ver};
	memcpy(s->data, stamp, sizeof(stamp));
	if (track)
		ssim_track(s, i, urgent);
	int rc = nstate_set_local(n->core, n->inc, n->ver, s->data, s->record_bytes, urgent,
	                          simnet_now(s->net));
	if (rc != 0) {
		fprintf(stderr, "ssim: set_local %s failed: %d\n", n->name, rc);
		abort();
	}
	n->published = true;
	/* the host holds its own change */
	ssim_view_moved(s, i, i, n->inc, n->ver);
	ssim_flush(s, i);
}

void ssim_publish_all(struct ssim *s)
{
	for (int i = 0; i < s->n; i++) {
		struct ssim_node *n = &s->nodes[i];
		if (!simnet_is_up(s->net, i) || n->published)
			continue;
		if (n->inc == 0)
			n->inc = 1;
		ssim_publish(s, i, false, false);
	}
}

void ssim_prefill(struct ssim *s)
{
	ssim_publish_all(s);
	size_t rb = s->record_bytes;
	size_t hosts = s->n > 0 ? (size_t)s->n : 0; /* s->n is an int: never negative here */
	uint8_t *bytes = malloc(hosts * rb + 1);
	struct nstate_record *recs = calloc(hosts + 1, sizeof(*recs));
	if (bytes == NULL || recs == NULL)
		abort();
	size_t n = 0;
	for (int i = 0; i < s->n; i++) {
		struct ssim_node *h = &s->nodes[i];
		if (!h->published)
			continue;
		uint8_t *d = bytes + n * rb;
		memcpy(d, s->data, rb);
		uint64_t stamp[2] = {h->inc, h->ver};
		memcpy(d, stamp, sizeof(stamp));
		recs[n++] = (struct nstate_record){h->name, h->inc, h->ver, d, rb, NULL, 0};
	}
	for (int o = 0; o < s->n; o++) {
		if (!simnet_is_up(s->net, o))
			continue;
		struct nstate_msg m = {.type = NSTATE_DELTA,
		                       .from = s->nodes[o == 0 ? 1 % s->n : 0].name,
		                       .records = recs,
		                       .n_records = n};
		if (s->n > 1 && nstate_handle_message(s->nodes[o].core, &m, simnet_now(s->net)) < 0)
			s->ctr.rejected++;
		ssim_flush(s, o);
	}
	free(bytes);
	free(recs);
}

const struct ssim_change *ssim_change(struct ssim *s, int i, bool urgent)
{
	struct ssim_node *n = &s->nodes[i];
	if (!simnet_is_up(s->net, i))
		return NULL;
	if (n->inc == 0)
		n->inc = 1;
	if (n->published)
		n->ver++;
	size_t k = s->n_ch;
	ssim_publish(s, i, urgent, true);
	return &s->ch[k];
}

void ssim_crash(struct ssim *s, int i)
{
	if (!simnet_is_up(s->net, i))
		return;
	ssim_node_stop(s, i);
	ssim_schedule_member(s, SSIM_OP_DOWN, i);
}

void ssim_restart(struct ssim *s, int i)
{
	struct ssim_node *n = &s->nodes[i];
	if (simnet_is_up(s->net, i))
		ssim_node_stop(s, i);
	ssim_node_boot(s, i);
	n->inc++;
	n->ver = 0;
	ssim_publish(s, i, true, true);
	ssim_schedule_member(s, SSIM_OP_UP, i);
}

/* ----------------------------------------------------------------- clock */

struct ssim_pred_call {
	struct ssim *s;
	ssim_pred_f pred;
	void *arg;
};

static bool ssim_pred_call(void *arg)
{
	const struct ssim_pred_call *c = arg;
	return c->pred(c->s, c->arg);
}

void ssim_run_for(struct ssim *s, uint64_t ms)
{
	simnet_run_for(s->net, ms);
}

int64_t ssim_run_until(struct ssim *s, ssim_pred_f pred, void *arg, uint64_t timeout_ms)
{
	struct ssim_pred_call c = {s, pred, arg};
	return simnet_run_until(s->net, ssim_pred_call, &c, timeout_ms);
}

/* --------------------------------------------------------------- queries */

bool ssim_has(struct ssim *s, int observer, int target, uint64_t inc, uint64_t ver)
{
	struct ssim_node *o = &s->nodes[observer];
	if (!simnet_is_up(s->net, observer))
		return false;
	struct nstate_record r;
	if (!nstate_find(o->core, s->nodes[target].name, &r))
		return false;
	return ssim_cmp(r.incarnation, r.version, inc, ver) >= 0;
}

bool ssim_all_have(struct ssim *s, int i)
{
	struct ssim_node *h = &s->nodes[i];
	for (int o = 0; o < s->n; o++)
		if (simnet_is_up(s->net, o) && !ssim_has(s, o, i, h->inc, h->ver))
			return false;
	return true;
}

static bool ssim_pred_all_have(struct ssim *s, void *arg)
{
	return ssim_all_have(s, *(int *)arg);
}

int64_t ssim_run_until_all_have(struct ssim *s, int i, uint64_t timeout_ms)
{
	return ssim_run_until(s, ssim_pred_all_have, &i, timeout_ms);
}

bool ssim_converged(struct ssim *s)
{
	int ref = -1;
	uint64_t h = 0;
	for (int o = 0; o < s->n; o++) {
		if (!simnet_is_up(s->net, o))
			continue;
		uint64_t ho = nstate_hash(s->nodes[o].core);
		if (ref < 0) {
			ref = o;
			h = ho;
		} else if (ho != h) {
			return false;
		}
	}
	if (ref < 0)
		return true;
	/* equal hashes: check one view against the truth */
	size_t published = 0;
	for (int i = 0; i < s->n; i++) {
		if (!s->nodes[i].published)
			continue;
		published++;
		struct nstate_record r;
		if (!nstate_find(s->nodes[ref].core, s->nodes[i].name, &r) ||
		    r.incarnation != s->nodes[i].inc || r.version != s->nodes[i].ver)
			return false;
	}
	return nstate_count(s->nodes[ref].core) == published;
}

bool ssim_pred_converged(struct ssim *s, void *arg)
{
	return ssim_converged(s);
}

size_t ssim_changes(const struct ssim *s, const struct ssim_change **out)
{
	*out = s->ch;
	return s->n_ch;
}

void ssim_changes_reset(struct ssim *s)
{
	s->n_ch = 0;
	for (int i = 0; i < s->n; i++)
		s->n_open[i] = 0;
}

const struct ssim_traffic *ssim_traffic(const struct ssim *s, int i)
{
	return &s->nodes[i].tr;
}
const struct ssim_counters *ssim_counters(struct ssim *s)
{
	s->ctr.dropped_down = simnet_counters(s->net)->dropped_down; /* the world's count */
	return &s->ctr;
}

void ssim_traffic_reset(struct ssim *s)
{
	for (int i = 0; i < s->n; i++)
		memset(&s->nodes[i].tr, 0, sizeof(s->nodes[i].tr));
}

void ssim_rss_kib(long *rss, long *peak)
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
