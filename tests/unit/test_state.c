/*
 * test_state.c — the node-state gossip core, driven by hand.
 *
 * A single core fed hand-made messages (ordering rules, set_local, hashes,
 * PUSH relay and hop limit, peers, malformed input), and two or three
 * cores joined by a tiny in-test pump (`struct net`: FIFO delivery, every
 * message deep-copied out of its core at once, since the core's copy dies
 * at its next nstate_ call) for the SYNC -> DIGEST -> DELTA exchange and
 * DELTA splitting.
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

#include "meshvisor/nstate.h"
#include "state_codec.h"

/* ------------------------------------------------------------------------ */
/* Deep copies of messages                                                  */

struct pkt {
	struct nstate_msg m;
	char *blob;
};

static char *put(char **p, const void *src, size_t n)
{
	char *r = *p;
	if (n)
		memcpy(r, src, n);
	*p += n;
	return r;
}

static char *put_str(char **p, const char *s)
{
	return put(p, s ? s : "", strlen(s ? s : "") + 1);
}

static void pkt_copy(struct pkt *dst, const struct nstate_msg *m)
{
	size_t need = 4 * NSTATE_ADDR_MAX + (m->n_versions + 1) * sizeof(struct nstate_version) +
	              (m->n_records + 1) * sizeof(struct nstate_record) +
	              m->n_versions * NSTATE_NAME_MAX + 64 + m->n_hashes * sizeof(uint64_t) +
	              m->n_nodes * sizeof(uint32_t);
	for (size_t k = 0; k < m->n_records; k++)
		need += NSTATE_NAME_MAX + m->records[k].len + m->records[k].proof_len + 16;
	dst->blob = malloc(need);
	assert_non_null(dst->blob);
	uint64_t *h = (uint64_t *)dst->blob;
	struct nstate_version *v = (struct nstate_version *)(h + m->n_hashes);
	struct nstate_record *r = (struct nstate_record *)(v + m->n_versions + 1);
	char *p = (char *)(r + m->n_records + 1);
	dst->m = *m;
	dst->m.from = put_str(&p, m->from);
	dst->m.to = put_str(&p, m->to);
	dst->m.to_addr = put_str(&p, m->to_addr);
	for (size_t k = 0; k < m->n_versions; k++) {
		v[k] = m->versions[k];
		v[k].name = put_str(&p, m->versions[k].name);
	}
	for (size_t k = 0; k < m->n_records; k++) {
		r[k] = m->records[k];
		r[k].name = put_str(&p, m->records[k].name);
		r[k].data = (const uint8_t *)put(&p, m->records[k].data, m->records[k].len);
		r[k].proof = (const uint8_t *)put(&p, m->records[k].proof, m->records[k].proof_len);
	}
	dst->m.versions = v;
	dst->m.records = r;
	if (m->n_hashes)
		memcpy(h, m->hashes, m->n_hashes * sizeof(*h));
	dst->m.hashes = h;
	/* after the strings: align for uint32_t (need has 64 spare bytes) */
	p += (4 - ((uintptr_t)p & 3)) & 3;
	dst->m.nodes = (const uint32_t *)put(&p, m->nodes, m->n_nodes * sizeof(uint32_t));
}

/* Every output of a core, copied. */
struct outs {
	struct pkt p[4096];
	size_t n;
};

static void outs_drain(struct outs *o, struct nstate *ns)
{
	struct nstate_msg m;
	while (nstate_pop_output(ns, &m)) {
		assert_true(o->n < sizeof(o->p) / sizeof(o->p[0]));
		pkt_copy(&o->p[o->n++], &m);
	}
}

static void outs_clear(struct outs *o)
{
	for (size_t k = 0; k < o->n; k++)
		free(o->p[k].blob);
	o->n = 0;
}

static size_t drain_events(struct nstate *ns)
{
	struct nstate_event e;
	size_t n = 0;
	while (nstate_pop_event(ns, &e))
		n++;
	return n;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */

static struct nstate *core(const char *name, uint64_t seed)
{
	struct nstate_config cfg;
	nstate_config_default(&cfg);
	snprintf(cfg.name, sizeof(cfg.name), "%s", name);
	cfg.seed = seed;
	struct nstate *ns = nstate_new(&cfg, 0);
	assert_non_null(ns);
	return ns;
}

static struct nstate *core_cfg(const struct nstate_config *tmpl, const char *name)
{
	struct nstate_config cfg = *tmpl;
	snprintf(cfg.name, sizeof(cfg.name), "%s", name);
	struct nstate *ns = nstate_new(&cfg, 0);
	assert_non_null(ns);
	return ns;
}

static void addr_of(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s:7950", name);
}

static void up(struct nstate *ns, const char *name)
{
	char addr[NSTATE_ADDR_MAX];
	addr_of(addr, sizeof(addr), name);
	assert_int_equal(nstate_peer_up(ns, name, addr), 0);
}

/* One record message from `from` about `name`. */
static int feed(struct nstate *ns, enum nstate_msg_type type, const char *from, const char *name,
                uint64_t inc, uint64_t ver, const char *data, uint32_t hops)
{
	struct nstate_record r = {name, inc, ver, (const uint8_t *)data, strlen(data), NULL, 0};
	struct nstate_msg m = {
	    .type = type, .from = from, .records = &r, .n_records = 1, .hops = hops};
	return nstate_handle_message(ns, &m, 0);
}

/* A core "me" whose live peer "p" gave it record x (1, 1). */
static struct nstate *core_p_x(uint64_t seed)
{
	struct nstate *ns = core("me", seed);
	up(ns, "p");
	feed(ns, NSTATE_DELTA, "p", "x", 1, 1, "x", 0);
	struct nstate_event e;
	while (nstate_pop_event(ns, &e))
		;
	return ns;
}

static void expect_rec(struct nstate *ns, const char *name, uint64_t inc, uint64_t ver,
                       const char *data)
{
	struct nstate_record r;
	assert_true(nstate_find(ns, name, &r));
	assert_int_equal(r.incarnation, inc);
	assert_int_equal(r.version, ver);
	assert_int_equal(r.len, strlen(data));
	assert_memory_equal(r.data, data, r.len);
}

/* ------------------------------------------------------------------------ */
/* Ordering rules                                                           */

static void test_older_never_overwrites_newer(void **state)
{
	struct nstate *ns = core("me", 1);
	struct nstate_event e;
	assert_int_equal(feed(ns, NSTATE_DELTA, "p", "x", 1, 5, "v5", 0), 0);
	assert_true(nstate_pop_event(ns, &e));
	assert_string_equal(e.name, "x");
	assert_true(e.is_new_host);
	assert_int_equal(e.version, 5);
	/* older version, same incarnation: ignored, no event */
	assert_int_equal(feed(ns, NSTATE_DELTA, "p", "x", 1, 3, "v3", 0), 0);
	assert_false(nstate_pop_event(ns, &e));
	expect_rec(ns, "x", 1, 5, "v5");
	/* same version again (a duplicate): ignored */
	assert_int_equal(feed(ns, NSTATE_PUSH, "q", "x", 1, 5, "other", 0), 0);
	assert_false(nstate_pop_event(ns, &e));
	expect_rec(ns, "x", 1, 5, "v5");
	/* newer version: taken, event not "new host" */
	assert_int_equal(feed(ns, NSTATE_DELTA, "p", "x", 1, 6, "v6", 0), 0);
	assert_true(nstate_pop_event(ns, &e));
	assert_false(e.is_new_host);
	assert_int_equal(e.version, 6);
	expect_rec(ns, "x", 1, 6, "v6");
	/* an older incarnation with a huge version: ignored */
	assert_int_equal(feed(ns, NSTATE_DELTA, "p", "x", 0, 1000, "old life", 0), 0);
	expect_rec(ns, "x", 1, 6, "v6");
	assert_int_equal(nstate_count(ns), 1);
	nstate_free(ns);
}

static void test_new_incarnation_wins(void **state)
{
	struct nstate *ns = core("me", 1);
	assert_int_equal(feed(ns, NSTATE_DELTA, "p", "x", 3, 900, "before restart", 0), 0);
	drain_events(ns);
	/* restarted: incarnation 4, version 0 beats (3, 900) */
	assert_int_equal(feed(ns, NSTATE_PUSH, "p", "x", 4, 0, "after restart", 0), 0);
	struct nstate_event e;
	assert_true(nstate_pop_event(ns, &e));
	assert_int_equal(e.incarnation, 4);
	assert_int_equal(e.version, 0);
	expect_rec(ns, "x", 4, 0, "after restart");
	/* a late copy from the old life changes nothing */
	assert_int_equal(feed(ns, NSTATE_DELTA, "p", "x", 3, 901, "late", 0), 0);
	expect_rec(ns, "x", 4, 0, "after restart");
	assert_false(nstate_pop_event(ns, &e));
	nstate_free(ns);
}

static void test_own_record_not_taken_from_others(void **state)
{
	struct nstate *ns = core("me", 1);
	assert_int_equal(nstate_set_local(ns, 2, 1, (const uint8_t *)"mine", 4, false, 0), 0);
	uint64_t h = nstate_hash(ns);
	/* a previous life's record about us, newer by its numbers */
	assert_int_equal(feed(ns, NSTATE_DELTA, "p", "me", 5, 7, "ghost", 0), 0);
	expect_rec(ns, "me", 2, 1, "mine");
	assert_int_equal(nstate_hash(ns), h);
	assert_int_equal(drain_events(ns), 0);
	uint64_t i, v;
	nstate_self_seen(ns, &i, &v);
	assert_int_equal(i, 5);
	assert_int_equal(v, 7);
	nstate_free(ns);
}

static void test_set_local_monotonic(void **state)
{
	struct nstate *ns = core("me", 1);
	const uint8_t a[] = "a", b[] = "b";
	assert_int_equal(nstate_set_local(ns, 1, 1, a, 1, false, 0), 0);
	expect_rec(ns, "me", 1, 1, "a");
	uint64_t h = nstate_hash(ns);
	assert_int_equal(nstate_set_local(ns, 1, 1, b, 1, false, 0), -EINVAL);
	assert_int_equal(nstate_set_local(ns, 1, 0, b, 1, false, 0), -EINVAL);
	assert_int_equal(nstate_set_local(ns, 0, 99, b, 1, false, 0), -EINVAL);
	assert_int_equal(nstate_set_local(ns, 1, 2, NULL, 1, false, 0), -EINVAL);
	assert_int_equal(nstate_set_local(ns, 1, 2, b, NSTATE_RECORD_MAX + 1, false, 0), -EINVAL);
	expect_rec(ns, "me", 1, 1, "a");
	assert_int_equal(nstate_hash(ns), h);
	assert_int_equal(nstate_set_local(ns, 1, 2, b, 1, false, 0), 0);
	expect_rec(ns, "me", 1, 2, "b");
	/* a new incarnation may restart the version */
	assert_int_equal(nstate_set_local(ns, 2, 0, a, 1, false, 0), 0);
	expect_rec(ns, "me", 2, 0, "a");
	/* an empty record is fine */
	assert_int_equal(nstate_set_local(ns, 2, 1, NULL, 0, false, 0), 0);
	expect_rec(ns, "me", 2, 1, "");
	assert_int_equal(nstate_count(ns), 1);
	assert_int_equal(drain_events(ns), 0); /* our own change is no event */
	nstate_free(ns);
}

/* ------------------------------------------------------------------------ */
/* Hash                                                                     */

static void test_hash_equality_and_difference(void **state)
{
	struct nstate *a = core("a", 1), *b = core("b", 2);
	assert_int_equal(nstate_hash(a), nstate_hash(b)); /* both empty */
	/* same versions, different arrival orders and via different paths */
	feed(a, NSTATE_DELTA, "p", "x", 1, 1, "x1", 0);
	feed(a, NSTATE_DELTA, "p", "y", 1, 2, "y2", 0);
	feed(a, NSTATE_DELTA, "p", "x", 1, 3, "x3", 0);
	feed(b, NSTATE_PUSH, "q", "y", 1, 2, "y2", 0);
	feed(b, NSTATE_DELTA, "q", "x", 1, 3, "x3", 0);
	assert_int_equal(nstate_hash(a), nstate_hash(b));
	/* one version apart */
	feed(b, NSTATE_DELTA, "q", "x", 1, 4, "x4", 0);
	assert_int_not_equal(nstate_hash(a), nstate_hash(b));
	feed(a, NSTATE_DELTA, "q", "x", 1, 4, "x4", 0);
	assert_int_equal(nstate_hash(a), nstate_hash(b));
	/* the hash covers versions, not bytes: same version, other data */
	feed(a, NSTATE_DELTA, "q", "z", 7, 7, "za", 0);
	feed(b, NSTATE_DELTA, "q", "z", 7, 7, "zb", 0);
	assert_int_equal(nstate_hash(a), nstate_hash(b));
	/* swapped versions between two names differ */
	struct nstate *c = core("c", 3), *d = core("d", 4);
	feed(c, NSTATE_DELTA, "p", "x", 1, 1, "", 0);
	feed(c, NSTATE_DELTA, "p", "y", 1, 2, "", 0);
	feed(d, NSTATE_DELTA, "p", "x", 1, 2, "", 0);
	feed(d, NSTATE_DELTA, "p", "y", 1, 1, "", 0);
	assert_int_not_equal(nstate_hash(c), nstate_hash(d));
	/* incarnation and version are not interchangeable */
	struct nstate *e = core("e", 5), *f = core("f", 6);
	feed(e, NSTATE_DELTA, "p", "x", 1, 2, "", 0);
	feed(f, NSTATE_DELTA, "p", "x", 2, 1, "", 0);
	assert_int_not_equal(nstate_hash(e), nstate_hash(f));
	/* forget removes the term: back to the empty hash */
	nstate_forget(e, "x");
	assert_int_equal(nstate_count(e), 0);
	struct nstate *empty = core("g", 7);
	assert_int_equal(nstate_hash(e), nstate_hash(empty));
	nstate_free(a);
	nstate_free(b);
	nstate_free(c);
	nstate_free(d);
	nstate_free(e);
	nstate_free(f);
	nstate_free(empty);
}

/* ------------------------------------------------------------------------ */
/* Anti-entropy between cores                                               */

struct net {
	struct nstate *c[4];
	const char *names[4];
	int n;
	struct outs q;
	size_t by_type[5];
	size_t max_frame;
	size_t delivered;
};

static int net_index(struct net *net, const char *name)
{
	for (int i = 0; i < net->n; i++)
		if (strcmp(net->names[i], name) == 0)
			return i;
	return -1;
}

static void net_collect(struct net *net, int i)
{
	outs_drain(&net->q, net->c[i]);
}

/* Delivers queued messages FIFO until none is left; returns how many. */
static size_t net_run(struct net *net)
{
	size_t k = 0, delivered = 0;
	while (k < net->q.n) {
		struct pkt *p = &net->q.p[k++];
		int dst = net_index(net, p->m.to);
		assert_true(dst >= 0);
		assert_string_not_equal(p->m.to, p->m.from); /* never to self */
		net->by_type[p->m.type]++;
		size_t fs = state_codec_frame_size(&p->m);
		if (fs > net->max_frame)
			net->max_frame = fs;
		assert_int_equal(nstate_handle_message(net->c[dst], &p->m, 0), 0);
		net_collect(net, dst);
		delivered++;
	}
	outs_clear(&net->q);
	net->delivered += delivered;
	return delivered;
}

/* Runs core i's sync timer once (its next deadline). */
static void net_sync(struct net *net, int i)
{
	uint64_t dl = nstate_next_deadline(net->c[i]);
	assert_int_equal(nstate_handle_timer(net->c[i], dl), 0);
	net_collect(net, i);
}

static void net_free(struct net *net)
{
	outs_clear(&net->q);
	for (int i = 0; i < net->n; i++)
		nstate_free(net->c[i]);
}

/* Two cores "a" and "b" (seeds seed, seed + 1; messages split at
 * max_msg_bytes, 0 = the default), each the other's live peer. */
static void net_pair(struct net *net, uint32_t max_msg_bytes, uint64_t seed)
{
	struct nstate_config cfg;
	nstate_config_default(&cfg);
	if (max_msg_bytes > 0)
		cfg.max_msg_bytes = max_msg_bytes;
	*net = (struct net){.n = 2, .names = {"a", "b"}};
	cfg.seed = seed;
	net->c[0] = core_cfg(&cfg, "a");
	cfg.seed = seed + 1;
	net->c[1] = core_cfg(&cfg, "b");
	up(net->c[0], "b");
	up(net->c[1], "a");
}

static void assert_same_view(struct nstate *a, struct nstate *b)
{
	assert_int_equal(nstate_hash(a), nstate_hash(b));
	assert_int_equal(nstate_count(a), nstate_count(b));
	for (size_t i = 0; i < nstate_count(a); i++) {
		struct nstate_record ra, rb;
		nstate_record_at(a, i, &ra);
		assert_true(nstate_find(b, ra.name, &rb));
		assert_int_equal(ra.incarnation, rb.incarnation);
		assert_int_equal(ra.version, rb.version);
		assert_int_equal(ra.len, rb.len);
		assert_memory_equal(ra.data, rb.data, ra.len);
	}
}

static void test_sync_digest_delta_converges(void **state)
{
	struct net net = {.n = 2, .names = {"a", "b"}};
	net.c[0] = core("a", 11);
	net.c[1] = core("b", 12);
	up(net.c[0], "b");
	up(net.c[1], "a");
	/* a: own record, x (newer), w (only a); b: own record, x (older),
	 * y (only b), z (newer on b) */
	assert_int_equal(nstate_set_local(net.c[0], 1, 4, (const uint8_t *)"A4", 2, false, 0), 0);
	assert_int_equal(nstate_set_local(net.c[1], 1, 9, (const uint8_t *)"B9", 2, false, 0), 0);
	feed(net.c[0], NSTATE_DELTA, "p", "x", 2, 2, "x22", 0);
	feed(net.c[0], NSTATE_DELTA, "p", "w", 1, 1, "w11", 0);
	feed(net.c[0], NSTATE_DELTA, "p", "z", 1, 1, "z11", 0);
	feed(net.c[1], NSTATE_DELTA, "p", "x", 2, 1, "x21", 0);
	feed(net.c[1], NSTATE_DELTA, "p", "y", 5, 0, "y50", 0);
	feed(net.c[1], NSTATE_DELTA, "p", "z", 1, 8, "z18", 0);
	drain_events(net.c[0]);
	drain_events(net.c[1]);
	assert_int_not_equal(nstate_hash(net.c[0]), nstate_hash(net.c[1]));

	net_sync(&net, 0);
	assert_int_equal(net.q.n, 1);
	assert_int_equal(net.q.p[0].m.type, NSTATE_SYNC);
	assert_string_equal(net.q.p[0].m.to, "b");
	assert_string_equal(net.q.p[0].m.to_addr, "b:7950");
	/* six records: the whole digest is cheaper than a descent, so SYNC,
	 * DIGEST, DELTA with records and wants, DELTA back */
	assert_int_equal(net_run(&net), 4);
	assert_int_equal(net.by_type[NSTATE_SYNC], 1);
	assert_int_equal(net.by_type[NSTATE_TREE], 0);
	assert_int_equal(net.by_type[NSTATE_DIGEST], 1);
	assert_int_equal(net.by_type[NSTATE_DELTA], 2);
	assert_same_view(net.c[0], net.c[1]);
	assert_int_equal(nstate_count(net.c[0]), 6);
	expect_rec(net.c[0], "b", 1, 9, "B9");
	expect_rec(net.c[1], "a", 1, 4, "A4");
	expect_rec(net.c[1], "x", 2, 2, "x22");
	expect_rec(net.c[0], "z", 1, 8, "z18");
	expect_rec(net.c[0], "y", 5, 0, "y50");
	/* b learned a, w, x newer: 3 events; a learned b, y, z: 3 */
	assert_int_equal(drain_events(net.c[1]), 3);
	assert_int_equal(drain_events(net.c[0]), 3);

	/* converged: the next rounds, either way, are one SYNC each */
	memset(net.by_type, 0, sizeof(net.by_type));
	net.max_frame = 0;
	net_sync(&net, 0);
	net_sync(&net, 1);
	assert_int_equal(net_run(&net), 2);
	assert_int_equal(net.by_type[NSTATE_SYNC], 2);
	/* the idle SYNC is small */
	assert_true(net.max_frame < 64);
	net_free(&net);
}

static void test_sync_one_sided(void **state)
{
	/* b has nothing at all: a's SYNC -> b's empty DIGEST -> a sends all,
	 * wants nothing (reply = false): three messages. */
	struct net net = {.n = 2, .names = {"a", "b"}};
	net.c[0] = core("a", 21);
	net.c[1] = core("b", 22);
	up(net.c[0], "b");
	up(net.c[1], "a");
	nstate_set_local(net.c[0], 1, 1, (const uint8_t *)"A", 1, false, 0);
	feed(net.c[0], NSTATE_DELTA, "p", "x", 1, 1, "x", 0);
	net_sync(&net, 0);
	assert_int_equal(net_run(&net), 3);
	assert_int_equal(net.by_type[NSTATE_DELTA], 1);
	assert_same_view(net.c[0], net.c[1]);
	/* and the other way: b (now equal) syncing finds nothing to do */
	nstate_set_local(net.c[1], 1, 1, (const uint8_t *)"B", 1, false, 0);
	memset(net.by_type, 0, sizeof(net.by_type));
	net_sync(&net, 0); /* a asks; b answers DIGEST; a wants b's record */
	assert_int_equal(net_run(&net), 4);
	assert_same_view(net.c[0], net.c[1]);
	net_free(&net);
}

static void test_delta_split(void **state)
{
	struct net net;
	net_pair(&net, 4096, 5);
	static uint8_t blob[1000];
	for (size_t k = 0; k < sizeof(blob); k++)
		blob[k] = (uint8_t)(k * 7);
	/* 50 records of 1000 bytes on a: ~50 KB, at most 3 per DELTA */
	for (int i = 0; i < 50; i++) {
		char name[16];
		snprintf(name, sizeof(name), "h%02d", i);
		struct nstate_record r = {name, 1, (uint64_t)i, blob, sizeof(blob), NULL, 0};
		struct nstate_msg m = {
		    .type = NSTATE_DELTA, .from = "p", .records = &r, .n_records = 1};
		assert_int_equal(nstate_handle_message(net.c[0], &m, 0), 0);
	}
	/* 100 small ones on b, so that b's wants list is long too */
	for (int i = 0; i < 100; i++) {
		char name[16];
		snprintf(name, sizeof(name), "s%03d", i);
		feed(net.c[1], NSTATE_DELTA, "p", name, 1, 1, "s", 0);
	}
	/* b syncs: a answers DIGEST, b sends its 100 + wants 50, a sends 50 */
	net_sync(&net, 1);
	net_run(&net);
	assert_true(net.by_type[NSTATE_DELTA] >= 50 / 4 + 1);
	assert_true(net.max_frame <= 4096);
	assert_same_view(net.c[0], net.c[1]);
	assert_int_equal(nstate_count(net.c[0]), 150);

	/* a record larger than the limit still goes, alone */
	static uint8_t big[10000];
	struct nstate_record r = {"huge", 1, 1, big, sizeof(big), NULL, 0};
	struct nstate_msg m = {.type = NSTATE_DELTA, .from = "p", .records = &r, .n_records = 1};
	assert_int_equal(nstate_handle_message(net.c[0], &m, 0), 0);
	memset(net.by_type, 0, sizeof(net.by_type));
	net_sync(&net, 1);
	net_run(&net);
	struct nstate_record got;
	assert_true(nstate_find(net.c[1], "huge", &got));
	assert_int_equal(got.len, sizeof(big));
	net_free(&net);
}

/* ------------------------------------------------------------------------ */
/* Prompt push                                                              */

/* A core made from cfg with live peers p0 .. p(n_peers - 1). */
static struct nstate *core_cfg_peers(const struct nstate_config *cfg, const char *name, int n_peers)
{
	struct nstate *ns = core_cfg(cfg, name);
	for (int i = 0; i < n_peers; i++) {
		char p[16];
		snprintf(p, sizeof(p), "p%d", i);
		up(ns, p);
	}
	return ns;
}

static struct nstate *core_with_peers(const char *name, int n_peers, uint32_t hops)
{
	struct nstate_config cfg;
	nstate_config_default(&cfg);
	cfg.seed = 77;
	cfg.push_hops = hops;
	return core_cfg_peers(&cfg, name, n_peers);
}

static void test_push_relay_and_hop_limit(void **state)
{
	struct nstate *ns = core_with_peers("me", 8, 0);
	static struct outs o;
	/* news with hops 2: stored, relayed with hops 1 to 3 peers, none of
	 * them the sender or the record's owner */
	up(ns, "owner");
	assert_int_equal(feed(ns, NSTATE_PUSH, "p0", "owner", 1, 1, "r", 2), 0);
	outs_drain(&o, ns);
	assert_int_equal(o.n, 3);
	for (size_t k = 0; k < o.n; k++) {
		assert_int_equal(o.p[k].m.type, NSTATE_PUSH);
		assert_int_equal(o.p[k].m.hops, 1);
		assert_int_equal(o.p[k].m.n_records, 1);
		assert_string_equal(o.p[k].m.records[0].name, "owner");
		assert_int_equal(o.p[k].m.records[0].version, 1);
		assert_string_not_equal(o.p[k].m.to, "p0");
		assert_string_not_equal(o.p[k].m.to, "owner");
		assert_string_not_equal(o.p[k].m.to, "me");
		for (size_t j = 0; j < k; j++)
			assert_string_not_equal(o.p[k].m.to, o.p[j].m.to);
	}
	outs_clear(&o);
	expect_rec(ns, "owner", 1, 1, "r");
	/* news with hops 0: stored, not relayed */
	assert_int_equal(feed(ns, NSTATE_PUSH, "p1", "owner", 1, 2, "r2", 0), 0);
	outs_drain(&o, ns);
	assert_int_equal(o.n, 0);
	expect_rec(ns, "owner", 1, 2, "r2");
	assert_int_equal(drain_events(ns), 2);
	nstate_free(ns);
}

static void test_push_duplicate_not_relayed(void **state)
{
	struct nstate *ns = core_with_peers("me", 8, 0);
	static struct outs o;
	assert_int_equal(feed(ns, NSTATE_PUSH, "p0", "x", 1, 1, "r", 5), 0);
	outs_drain(&o, ns);
	assert_int_equal(o.n, 3);
	outs_clear(&o);
	/* the same rumor again, from another relay: nothing */
	assert_int_equal(feed(ns, NSTATE_PUSH, "p3", "x", 1, 1, "r", 5), 0);
	outs_drain(&o, ns);
	assert_int_equal(o.n, 0);
	/* an older one: nothing either */
	assert_int_equal(feed(ns, NSTATE_PUSH, "p3", "x", 1, 0, "r", 5), 0);
	outs_drain(&o, ns);
	assert_int_equal(o.n, 0);
	assert_int_equal(drain_events(ns), 1);
	nstate_free(ns);
}

static void test_push_local_urgent(void **state)
{
	/* derived hops: N = 8 peers + self = 9, fanout 3: ceil(log3 9) + 1 = 3 */
	struct nstate *ns = core_with_peers("me", 8, 0);
	static struct outs o;
	assert_int_equal(nstate_set_local(ns, 1, 1, (const uint8_t *)"cap", 3, true, 0), 0);
	outs_drain(&o, ns);
	assert_int_equal(o.n, 3);
	for (size_t k = 0; k < o.n; k++) {
		assert_int_equal(o.p[k].m.type, NSTATE_PUSH);
		assert_int_equal(o.p[k].m.hops, 3);
		assert_string_equal(o.p[k].m.from, "me");
		assert_string_equal(o.p[k].m.records[0].name, "me");
	}
	outs_clear(&o);
	/* not urgent: nothing now, anti-entropy carries it */
	assert_int_equal(nstate_set_local(ns, 1, 2, (const uint8_t *)"cap", 3, false, 0), 0);
	outs_drain(&o, ns);
	assert_int_equal(o.n, 0);
	nstate_free(ns);

	/* configured hops, and fewer peers than the fanout */
	ns = core_with_peers("me", 2, 7);
	assert_int_equal(nstate_set_local(ns, 1, 1, (const uint8_t *)"c", 1, true, 0), 0);
	outs_drain(&o, ns);
	assert_int_equal(o.n, 2);
	assert_int_equal(o.p[0].m.hops, 7);
	outs_clear(&o);
	nstate_free(ns);

	/* N = 100 (99 peers): ceil(log3 100) + 1 = 6 */
	ns = core_with_peers("me", 99, 0);
	assert_int_equal(nstate_set_local(ns, 1, 1, (const uint8_t *)"c", 1, true, 0), 0);
	outs_drain(&o, ns);
	assert_int_equal(o.n, 3);
	assert_int_equal(o.p[0].m.hops, 6);
	outs_clear(&o);
	nstate_free(ns);
}

static void test_push_spreads_in_three(void **state)
{
	/* a pushes to b and c (derived hops: ceil(log3 3) + 1 = 2); each
	 * relays once to the other (not back to a, the sender and owner),
	 * which already has it: two duplicates, no further relay. */
	struct net net = {.n = 3, .names = {"a", "b", "c"}};
	for (int i = 0; i < 3; i++) {
		net.c[i] = core(net.names[i], 30 + (uint64_t)i);
		for (int j = 0; j < 3; j++)
			if (j != i)
				up(net.c[i], net.names[j]);
	}
	assert_int_equal(nstate_set_local(net.c[0], 1, 1, (const uint8_t *)"A", 1, true, 0), 0);
	net_collect(&net, 0);
	net_run(&net);
	assert_int_equal(net.by_type[NSTATE_PUSH], 4);
	assert_int_equal(drain_events(net.c[1]), 1);
	assert_int_equal(drain_events(net.c[2]), 1);
	expect_rec(net.c[1], "a", 1, 1, "A");
	expect_rec(net.c[2], "a", 1, 1, "A");
	net_free(&net);
}

/* ------------------------------------------------------------------------ */
/* Peers                                                                    */

/* Runs `syncs` anti-entropy ticks; marks in `used` (one flag per peer
 * p0..p49) whom each SYNC went to; returns how many distinct peers. */
static int sync_targets(struct nstate *ns, int syncs, bool *used)
{
	static struct outs o;
	int distinct = 0;
	for (int k = 0; k < syncs; k++) {
		assert_int_equal(nstate_handle_timer(ns, nstate_next_deadline(ns)), 0);
		outs_drain(&o, ns);
		for (size_t j = 0; j < o.n; j++) {
			assert_int_equal(o.p[j].m.type, NSTATE_SYNC);
			int id = atoi(o.p[j].m.to + 1);
			assert_true(id >= 0 && id < 50);
			distinct += !used[id];
			used[id] = true;
		}
		outs_clear(&o);
	}
	return distinct;
}

/* STICKY PARTNERS: anti-entropy talks to 3 peers at a time, one redrawn
 * every 20 syncs (a TLS connection each, kept, not one per peer a
 * minute); over time it still reaches many peers; a partner that goes
 * down is replaced at once. */
static void test_sync_partners_sticky(void **state)
{
	(void)state;
	struct nstate *ns = core("me", 11);
	char name[16];
	for (int k = 0; k < 50; k++) {
		snprintf(name, sizeof(name), "p%d", k);
		up(ns, name);
	}
	bool used[50] = {false};
	/* 60 syncs: the first 3 partners, then 2 redraws (k = 20, 40) */
	int first = sync_targets(ns, 60, used);
	assert_true(first >= 1 && first <= 5);
	/* 600 syncs: 30 redraws reach many more */
	bool later[50] = {false};
	assert_true(sync_targets(ns, 600, later) > 15);
	/* a partner that goes down is never synced with again */
	static struct outs o;
	assert_int_equal(nstate_handle_timer(ns, nstate_next_deadline(ns)), 0);
	outs_drain(&o, ns);
	assert_int_equal(o.n, 1);
	char gone[NSTATE_NAME_MAX];
	snprintf(gone, sizeof(gone), "%s", o.p[0].m.to);
	outs_clear(&o);
	nstate_peer_down(ns, gone);
	for (int k = 0; k < 30; k++) {
		assert_int_equal(nstate_handle_timer(ns, nstate_next_deadline(ns)), 0);
		outs_drain(&o, ns);
		for (size_t j = 0; j < o.n; j++)
			assert_string_not_equal(o.p[j].m.to, gone);
		outs_clear(&o);
	}
	nstate_free(ns);
}

static void test_peers_down_and_forget(void **state)
{
	struct nstate *ns = core("me", 3);
	static struct outs o;
	/* no peers: the timer sends nothing, but keeps ticking */
	uint64_t dl = nstate_next_deadline(ns);
	assert_true(dl < 1000);
	assert_int_equal(nstate_handle_timer(ns, dl), 0);
	outs_drain(&o, ns);
	assert_int_equal(o.n, 0);
	assert_int_equal(nstate_next_deadline(ns), dl + 1000);
	/* ourselves as a peer is ignored; bad names are refused */
	assert_int_equal(nstate_peer_up(ns, "me", "me:1"), 0);
	assert_int_equal(nstate_peer_count(ns), 0);
	assert_int_equal(nstate_peer_up(ns, "", "x:1"), -EINVAL);
	assert_int_equal(nstate_peer_up(ns, "p", ""), -EINVAL);
	char longname[NSTATE_NAME_MAX + 8];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(nstate_peer_up(ns, longname, "x:1"), -EINVAL);
	up(ns, "p");
	up(ns, "q");
	assert_int_equal(nstate_peer_count(ns), 2);
	feed(ns, NSTATE_DELTA, "p", "p", 1, 1, "P", 0);
	feed(ns, NSTATE_DELTA, "q", "q", 1, 1, "Q", 0);
	/* q goes down: its record stays, we never send to it */
	nstate_peer_down(ns, "q");
	assert_int_equal(nstate_peer_count(ns), 1);
	expect_rec(ns, "q", 1, 1, "Q");
	for (int r = 0; r < 20; r++) {
		dl = nstate_next_deadline(ns);
		nstate_handle_timer(ns, dl);
		outs_drain(&o, ns);
	}
	assert_int_equal(o.n, 20);
	for (size_t k = 0; k < o.n; k++)
		assert_string_equal(o.p[k].m.to, "p");
	outs_clear(&o);
	/* a SYNC from a down peer is not answered (we cannot reach it)... */
	struct nstate_msg m = {.type = NSTATE_SYNC, .from = "q", .hash = 1};
	assert_int_equal(nstate_handle_message(ns, &m, 0), 0);
	outs_drain(&o, ns);
	assert_int_equal(o.n, 0);
	/* ...but its news is still taken */
	feed(ns, NSTATE_DELTA, "q", "q", 1, 2, "Q2", 0);
	expect_rec(ns, "q", 1, 2, "Q2");
	/* forget drops the record and its hash term */
	uint64_t h = nstate_hash(ns);
	nstate_forget(ns, "q");
	assert_false(nstate_find(ns, "q", NULL));
	assert_int_equal(nstate_count(ns), 1);
	assert_int_not_equal(nstate_hash(ns), h);
	/* forget of a live peer drops it from the peers too; the index still
	 * finds the others after the removals */
	for (int i = 0; i < 40; i++) {
		char nm[16];
		snprintf(nm, sizeof(nm), "h%d", i);
		up(ns, nm);
		feed(ns, NSTATE_DELTA, "p", nm, 1, 1, "h", 0);
	}
	for (int i = 0; i < 40; i += 2) {
		char nm[16];
		snprintf(nm, sizeof(nm), "h%d", i);
		nstate_forget(ns, nm);
	}
	for (int i = 0; i < 40; i++) {
		char nm[16];
		snprintf(nm, sizeof(nm), "h%d", i);
		assert_int_equal(nstate_find(ns, nm, NULL), i % 2 == 1);
	}
	assert_int_equal(nstate_peer_count(ns), 21);
	assert_true(nstate_find(ns, "p", NULL));
	/* peer_up again with a new address: replies go there */
	assert_int_equal(nstate_peer_up(ns, "p", "elsewhere:1"), 0);
	assert_int_equal(nstate_peer_count(ns), 21);
	m.from = "p";
	assert_int_equal(nstate_handle_message(ns, &m, 0), 0);
	outs_drain(&o, ns);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.p[0].m.type, NSTATE_DIGEST);
	assert_string_equal(o.p[0].m.to_addr, "elsewhere:1");
	outs_clear(&o);
	drain_events(ns);
	nstate_free(ns);
}

/* ------------------------------------------------------------------------ */
/* The bucket tree                                                          */

/* n records h0..h{n-1} (version 1) on every core of net. */
static void net_fill(struct net *net, int n)
{
	char name[16];
	for (int k = 0; k < n; k++) {
		snprintf(name, sizeof(name), "h%d", k);
		for (int i = 0; i < net->n; i++)
			feed(net->c[i], NSTATE_DELTA, "p", name, 1, 1, "d", 0);
	}
	for (int i = 0; i < net->n; i++)
		drain_events(net->c[i]);
}

/* Records carried by DELTAs and versions by DIGESTs, over one exchange. */
static void net_count(struct net *net, size_t *records, size_t *versions)
{
	*records = *versions = 0;
	size_t k = 0;
	while (k < net->q.n) {
		struct pkt *p = &net->q.p[k++];
		int dst = net_index(net, p->m.to);
		assert_true(dst >= 0);
		net->by_type[p->m.type]++;
		size_t fs = state_codec_frame_size(&p->m);
		if (fs > net->max_frame)
			net->max_frame = fs;
		if (p->m.type == NSTATE_DELTA)
			*records += p->m.n_records;
		if (p->m.type == NSTATE_DIGEST)
			*versions += p->m.n_versions;
		assert_int_equal(nstate_handle_message(net->c[dst], &p->m, 0), 0);
		net_collect(net, dst);
	}
	outs_clear(&net->q);
}

static void test_tree_equal_buckets_cost_nothing(void **state)
{
	struct net net;
	net_pair(&net, 0, 31);
	net_fill(&net, 2000);
	/* equal: one SYNC, nothing else */
	size_t recs, vers;
	net_sync(&net, 0);
	net_count(&net, &recs, &vers);
	assert_int_equal(net.by_type[NSTATE_SYNC], 1);
	assert_int_equal(net.by_type[NSTATE_TREE] + net.by_type[NSTATE_DIGEST], 0);
	/* one record newer on b: only the subtree above it is expanded, down
	 * to depth 2 or the leaf (a few versions, not 2000), and that one
	 * record travels */
	feed(net.c[1], NSTATE_DELTA, "p", "h77", 1, 2, "d2", 0);
	drain_events(net.c[1]);
	assert_int_equal(nstate_tree_hash(net.c[0], 1, nstate_leaf_of("h77") >> 8) ==
	                     nstate_tree_hash(net.c[1], 1, nstate_leaf_of("h77") >> 8),
	                 false);
	assert_int_equal(nstate_tree_hash(net.c[0], 3, (nstate_leaf_of("h77") + 1) % 4096),
	                 nstate_tree_hash(net.c[1], 3, (nstate_leaf_of("h77") + 1) % 4096));
	memset(net.by_type, 0, sizeof(net.by_type));
	net.max_frame = 0;
	net_sync(&net, 0);
	net_count(&net, &recs, &vers);
	assert_true(net.by_type[NSTATE_TREE] >= 2 && net.by_type[NSTATE_TREE] <= 3);
	assert_int_equal(net.by_type[NSTATE_DIGEST], 1);
	assert_true(vers >= 1 && vers <= 8);
	assert_int_equal(recs, 1);
	assert_true(net.max_frame < 512);
	expect_rec(net.c[0], "h77", 1, 2, "d2");
	assert_same_view(net.c[0], net.c[1]);
	net_free(&net);
}

static void test_tree_many_differences_split(void **state)
{
	/* a holds 1500 of 3000 shared records newer than b: most buckets
	 * differ; with 4 KiB messages the TREE and DIGEST parts split (and so
	 * the wants that answer each DIGEST part), and b gets all 1500 */
	struct net net;
	net_pair(&net, 4096, 41);
	net_fill(&net, 3000);
	char name[16];
	for (int k = 0; k < 3000; k += 2) {
		snprintf(name, sizeof(name), "h%d", k);
		feed(net.c[0], NSTATE_DELTA, "p", name, 1, 2, "d2", 0);
	}
	drain_events(net.c[0]);
	size_t recs, vers;
	net_sync(&net, 0);
	net_count(&net, &recs, &vers);
	assert_true(net.by_type[NSTATE_TREE] > 3);   /* split */
	assert_true(net.by_type[NSTATE_DIGEST] > 1); /* split */
	assert_true(vers >= 1500 && vers < 3000);    /* differing buckets only */
	assert_int_equal(recs, 1500);
	assert_true(net.max_frame <= 4096);
	assert_same_view(net.c[0], net.c[1]);
	net_free(&net);
}

static void test_tree_older_peer_gets_whole_digest(void **state)
{
	/* an agent older than the tree sends SYNC without `tree`: it is
	 * answered with the whole DIGEST, and the old exchange converges */
	struct nstate *b = core("b", 51);
	static struct outs o;
	up(b, "old");
	char name[16];
	for (int k = 0; k < 20; k++) {
		snprintf(name, sizeof(name), "x%d", k);
		feed(b, NSTATE_DELTA, "p", name, 1, 1, "x", 0);
	}
	drain_events(b);
	struct nstate_msg sync = {.type = NSTATE_SYNC, .from = "old", .hash = 1};
	assert_int_equal(nstate_handle_message(b, &sync, 0), 0);
	outs_drain(&o, b);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.p[0].m.type, NSTATE_DIGEST);
	assert_int_equal(o.p[0].m.n_versions, 20);
	assert_int_equal(o.p[0].m.n_nodes, 0); /* the whole vector */
	outs_clear(&o);
	/* the same SYNC from a peer that speaks the tree starts a descent */
	sync.tree = NSTATE_TREE_V1;
	assert_int_equal(nstate_handle_message(b, &sync, 0), 0);
	outs_drain(&o, b);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.p[0].m.type, NSTATE_TREE);
	assert_int_equal(o.p[0].m.level, 0);
	assert_int_equal(o.p[0].m.n_nodes, 1);
	assert_int_equal(o.p[0].m.n_hashes, NSTATE_TREE_FANOUT);
	/* and our own SYNC says we speak it */
	outs_clear(&o);
	assert_int_equal(nstate_handle_timer(b, nstate_next_deadline(b)), 0);
	outs_drain(&o, b);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.p[0].m.tree, NSTATE_TREE_V1);
	outs_clear(&o);
	nstate_free(b);
}

static void test_tree_malformed_rejected(void **state)
{
	struct nstate *ns = core_p_x(61);
	static struct outs o;
	static uint64_t hashes[4097];
	static uint32_t nodes[4097];
	for (uint32_t k = 0; k < 4097; k++)
		nodes[k] = k;
	static const uint32_t twice[2] = {3, 3};
	/* each refused with a reason that says why */
	static const struct {
		enum nstate_msg_type type;
		uint32_t level;
		const uint32_t *nodes;
		size_t n_nodes, n_hashes;
		const char *why;
	} bad[] = {
	    {NSTATE_TREE, 3, nodes, 1, 16, "level out of range"},
	    {NSTATE_TREE, 0, nodes, 1, 15, "not 16 per node"},
	    {NSTATE_TREE, 1, nodes, 0, 0, "no nodes"},
	    {NSTATE_TREE, 2, nodes, 257, 4097, "more nodes than its level has"},
	    {NSTATE_TREE, 1, nodes + 15, 2, 32, "out of range"},
	    {NSTATE_TREE, 1, twice, 2, 32, "out of order"},
	    {NSTATE_DIGEST, 3, nodes, 4097, 0, "digest bucket"},
	    {NSTATE_DIGEST, 3, nodes + 4095, 2, 0, "digest bucket"},
	    {NSTATE_DIGEST, 1, nodes + 15, 2, 0, "digest bucket"},
	    {NSTATE_DIGEST, 0, nodes, 1, 0, "digest level"},
	    {NSTATE_DIGEST, 4, nodes, 1, 0, "digest level"},
	    {NSTATE_DIGEST, 0, NULL, 0, 1, "outside a tree"},
	    {NSTATE_DELTA, 0, nodes, 1, 0, "outside a tree or digest"},
	    {NSTATE_TREE, 0, NULL, 1, 16, "no array"},
	};
	uint64_t h = nstate_hash(ns);
	for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
		struct nstate_msg m = {.type = bad[k].type,
		                       .from = "p",
		                       .level = bad[k].level,
		                       .nodes = bad[k].nodes,
		                       .n_nodes = bad[k].n_nodes,
		                       .hashes = hashes,
		                       .n_hashes = bad[k].n_hashes};
		const char *why = NULL;
		assert_int_equal(nstate_msg_check(&m, &why), -EINVAL);
		assert_non_null(why);
		if (strstr(why, bad[k].why) == NULL)
			fail_msg("case %zu: reason \"%s\" lacks \"%s\"", k, why, bad[k].why);
		assert_int_equal(nstate_handle_message(ns, &m, 0), -EINVAL);
		outs_drain(&o, ns);
		assert_int_equal(o.n, 0);
		assert_int_equal(nstate_hash(ns), h);
	}
	/* the largest well-formed TREE is accepted and answered */
	struct nstate_msg big = {.type = NSTATE_TREE,
	                         .from = "p",
	                         .level = 2,
	                         .nodes = nodes,
	                         .n_nodes = 256,
	                         .hashes = hashes,
	                         .n_hashes = 4096};
	assert_int_equal(nstate_msg_check(&big, NULL), 0);
	assert_int_equal(nstate_handle_message(ns, &big, 0), 0);
	outs_drain(&o, ns);
	assert_true(o.n >= 1);
	assert_int_equal(o.p[0].m.type, NSTATE_DIGEST); /* x's leaf differs from 0 */
	outs_clear(&o);
	nstate_free(ns);
}

/* ------------------------------------------------------------------------ */
/* Malformed input                                                          */

static void test_malformed_rejected(void **state)
{
	struct nstate *ns = core_p_x(4);
	static struct outs o;
	uint64_t h = nstate_hash(ns);
	char longname[NSTATE_NAME_MAX + 8];
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	static uint8_t dummy[4];
	struct nstate_record good = {"y", 1, 1, (const uint8_t *)"y", 1, NULL, 0};
	struct nstate_record recs[2] = {good, good};
	struct nstate_version vers[1] = {{"x", 1, 1}};

	struct nstate_msg bad[12];
	memset(bad, 0, sizeof(bad));
	for (size_t k = 0; k < 12; k++) {
		bad[k].type = NSTATE_DELTA;
		bad[k].from = "p";
	}
	bad[0].type = (enum nstate_msg_type)9; /* unknown type */
	bad[1].from = NULL;
	bad[2].from = "";
	bad[3].from = longname;
	bad[4].from = "me"; /* claims to be us */
	/* second record bad, first good: nothing of either may be applied */
	recs[1].name = longname;
	bad[5].records = recs;
	bad[5].n_records = 2;
	static struct nstate_record r6[2];
	r6[0] = good;
	r6[1] = good;
	r6[1].len = NSTATE_RECORD_MAX + 1;
	r6[1].data = dummy;
	bad[6].records = r6;
	bad[6].n_records = 2;
	static struct nstate_record r7[1];
	r7[0] = good;
	r7[0].data = NULL;
	bad[7].records = r7;
	bad[7].n_records = 1;
	bad[8].n_records = 3; /* records NULL */
	static struct nstate_version v9[1] = {{"", 1, 1}};
	bad[9].versions = v9;
	bad[9].n_versions = 1;
	bad[9].reply = true;
	bad[10].type = NSTATE_PUSH; /* a push with no record */
	bad[10].hops = 3;
	bad[11].to = longname;
	bad[11].records = &good;
	bad[11].n_records = 1;
	for (size_t k = 0; k < 12; k++) {
		assert_int_equal(nstate_handle_message(ns, &bad[k], 0), -EINVAL);
		assert_int_equal(nstate_hash(ns), h);
		assert_int_equal(nstate_count(ns), 1);
		outs_drain(&o, ns);
		assert_int_equal(o.n, 0);
		assert_int_equal(drain_events(ns), 0);
	}
	assert_int_equal(nstate_handle_message(ns, NULL, 0), -EINVAL);
	(void)vers;
	/* a message addressed to someone else is ignored, not an error */
	struct nstate_msg other = {
	    .type = NSTATE_DELTA, .from = "p", .to = "you", .records = &good, .n_records = 1};
	assert_int_equal(nstate_handle_message(ns, &other, 0), 0);
	assert_false(nstate_find(ns, "y", NULL));
	/* the core still works */
	assert_int_equal(nstate_handle_message(ns,
	                                       &(struct nstate_msg){.type = NSTATE_DELTA,
	                                                            .from = "p",
	                                                            .to = "me",
	                                                            .records = &good,
	                                                            .n_records = 1},
	                                       0),
	                 0);
	assert_true(nstate_find(ns, "y", NULL));
	drain_events(ns);
	nstate_free(ns);
}

/* Numbers have a ceiling far below wrap (issue 13): a record or version
 * numbered above NSTATE_NUMBER_MAX makes the whole message refused, with
 * its reason, and we never publish one. */
static void test_numbers_bounded(void **state)
{
	struct nstate *ns = core_p_x(5);
	uint64_t h = nstate_hash(ns);
	const uint64_t max = NSTATE_NUMBER_MAX;
	const char *why = NULL;
	/* a forged record for x at 2^64 - 1 (nothing could ever beat it) */
	assert_int_equal(feed(ns, NSTATE_PUSH, "p", "x", 1, UINT64_MAX, "fake", 3), -EINVAL);
	assert_int_equal(feed(ns, NSTATE_DELTA, "p", "x", max + 1, 0, "fake", 0), -EINVAL);
	expect_rec(ns, "x", 1, 1, "x");
	assert_int_equal(nstate_hash(ns), h);
	assert_int_equal(drain_events(ns), 0);
	struct nstate_record r = {"x", 1, max + 1, (const uint8_t *)"f", 1, NULL, 0};
	struct nstate_msg m = {.type = NSTATE_DELTA, .from = "p", .records = &r, .n_records = 1};
	assert_int_equal(nstate_msg_check(&m, &why), -EINVAL);
	assert_non_null(strstr(why, "NSTATE_NUMBER_MAX"));
	struct nstate_version v = {"x", max + 1, 0};
	struct nstate_msg d = {.type = NSTATE_DIGEST, .from = "p", .versions = &v, .n_versions = 1};
	why = NULL;
	assert_int_equal(nstate_msg_check(&d, &why), -EINVAL);
	assert_non_null(strstr(why, "NSTATE_NUMBER_MAX"));
	/* at the ceiling: taken */
	assert_int_equal(feed(ns, NSTATE_DELTA, "p", "x", 1, max, "top", 0), 0);
	expect_rec(ns, "x", 1, max, "top");
	drain_events(ns);
	/* our own record: never published above it */
	const uint8_t a[] = "a";
	assert_int_equal(nstate_set_local(ns, max + 1, 0, a, 1, false, 0), -EINVAL);
	assert_int_equal(nstate_set_local(ns, 1, max + 1, a, 1, false, 0), -EINVAL);
	assert_false(nstate_find(ns, "me", NULL));
	assert_int_equal(nstate_set_local(ns, max, max, a, 1, false, 0), 0);
	nstate_free(ns);
}

/* A fake signature for the core's tests: 8 bytes of a hash of the owner's
 * "key" (its name) and the record. Deterministic, like the simulator. */
static uint64_t fake_mac(const struct nstate_record *r)
{
	uint64_t h = 1469598103934665603ull;
	const char *k = r->name;
	for (size_t i = 0; k[i] != '\0'; i++)
		h = (h ^ (uint8_t)k[i]) * 1099511628211ull;
	h = (h ^ r->incarnation) * 1099511628211ull;
	h = (h ^ r->version) * 1099511628211ull;
	for (size_t i = 0; i < r->len; i++)
		h = (h ^ r->data[i]) * 1099511628211ull;
	return h;
}

static int fake_sign(void *ctx, const struct nstate_record *r, uint8_t *out, size_t cap)
{
	(void)ctx;
	uint64_t h = fake_mac(r);
	assert_true(cap >= sizeof(h));
	memcpy(out, &h, sizeof(h));
	return (int)sizeof(h);
}

static bool fake_verify(void *ctx, const struct nstate_record *r)
{
	(void)ctx;
	uint64_t h = fake_mac(r);
	return r->proof_len == sizeof(h) && memcmp(r->proof, &h, sizeof(h)) == 0;
}

static struct nstate *core_signed(const char *name, int n_peers)
{
	struct nstate_config cfg;
	nstate_config_default(&cfg);
	cfg.seed = 78;
	cfg.sign = fake_sign;
	cfg.verify = fake_verify;
	return core_cfg_peers(&cfg, name, n_peers);
}

/* The PUSH to `to` among o's messages. */
static const struct nstate_msg *push_to(const struct outs *o, const char *to)
{
	for (size_t k = 0; k < o->n; k++)
		if (o->p[k].m.type == NSTATE_PUSH && strcmp(o->p[k].m.to, to) == 0)
			return &o->p[k].m;
	fail_msg("no push to %s", to);
	return NULL;
}

/* A host speaks only for itself (issue 13): its record carries its proof
 * (nstate_config.sign), relays carry it unchanged, and a receiver takes a
 * record of another host only with a valid one (nstate_config.verify). A
 * forged record (n9 pushing fake values for a at version 2^40, under a's
 * replayed proof, or with none) is refused, counted, and relayed to
 * nobody. */
/* A sender cannot make us spend the loop on failing proofs: after the
 * first failed proof in a message the rest is refused unchecked, and past
 * 16 failed proofs in a second its records are refused unchecked until the
 * next second; proof-less records (older agents) are refused without a
 * check; another sender keeps its own budget. */
static void test_failed_proofs_bounded(void **state)
{
	(void)state;
	struct nstate *c = core_signed("c", 0);
	uint8_t bad[8] = {1, 2, 3, 4, 5, 6, 7, 8};
	enum { N = 100 };
	static struct nstate_record recs[N];
	static char names[N][16];
	for (int k = 0; k < N; k++) {
		snprintf(names[k], sizeof(names[k]), "h%d", k);
		recs[k] = (struct nstate_record){names[k], 1, 1, (const uint8_t *)"x", 1, bad, 8};
	}
	struct nstate_msg m = {
	    .type = NSTATE_PUSH, .from = "n9", .records = recs, .n_records = N, .hops = 1};
	/* one message of 100 forged records: one check */
	assert_int_equal(nstate_handle_message(c, &m, 10), 0);
	assert_int_equal(nstate_proofs_checked(c), 1);
	assert_int_equal(nstate_refused(c), N);
	/* 40 more messages in the same second: 16 checks in all */
	for (int k = 0; k < 40; k++)
		assert_int_equal(nstate_handle_message(c, &m, 20 + (uint64_t)k), 0);
	assert_int_equal(nstate_proofs_checked(c), 16);
	/* another sender has its own budget */
	m.from = "n8";
	assert_int_equal(nstate_handle_message(c, &m, 100), 0);
	assert_int_equal(nstate_proofs_checked(c), 17);
	/* the next second: n9 is checked again */
	m.from = "n9";
	assert_int_equal(nstate_handle_message(c, &m, 1010), 0);
	assert_int_equal(nstate_proofs_checked(c), 18);
	/* proof-less records are refused without a check, and do not stop a
	 * valid record later in the same message (an older agent's relay) */
	struct nstate *a = core_signed("a", 0);
	static struct outs oa;
	up(a, "c");
	assert_int_equal(nstate_set_local(a, 1, 1, (const uint8_t *)"cpus=8", 6, true, 0), 0);
	outs_drain(&oa, a);
	const struct nstate_msg *to_c = push_to(&oa, "c");
	struct nstate_record mixed[2] = {{"h1", 1, 1, (const uint8_t *)"x", 1, NULL, 0},
	                                 to_c->records[0]};
	struct nstate_msg mm = {
	    .type = NSTATE_PUSH, .from = "n7", .records = mixed, .n_records = 2, .hops = 1};
	assert_int_equal(nstate_handle_message(c, &mm, 1020), 0);
	assert_int_equal(nstate_proofs_checked(c), 19);
	expect_rec(c, "a", 1, 1, "cpus=8");
	outs_clear(&oa);
	nstate_free(a);
	nstate_free(c);
}

static void test_records_signed_by_owner(void **state)
{
	struct nstate *a = core_signed("a", 0), *b = core_signed("b", 0), *c = core_signed("c", 4);
	static struct outs oa, ob;
	up(a, "b");
	up(b, "c");
	assert_int_equal(nstate_set_local(a, 1, 1, (const uint8_t *)"cpus=8", 6, true, 0), 0);
	outs_drain(&oa, a);
	const struct nstate_msg *to_b = push_to(&oa, "b");
	assert_int_equal(to_b->records[0].proof_len, 8);
	uint8_t proof[8];
	memcpy(proof, to_b->records[0].proof, sizeof(proof));
	assert_int_equal(nstate_handle_message(b, to_b, 1), 0);
	struct nstate_record r;
	assert_true(nstate_find(b, "a", &r));
	assert_int_equal(r.proof_len, 8);
	assert_memory_equal(r.proof, proof, 8);
	/* b relays it to c with a's proof: c takes it */
	outs_drain(&ob, b);
	const struct nstate_msg *to_c = push_to(&ob, "c");
	assert_memory_equal(to_c->records[0].proof, proof, 8);
	assert_int_equal(nstate_handle_message(c, to_c, 2), 0);
	expect_rec(c, "a", 1, 1, "cpus=8");
	drain_events(c);
	static struct outs oc;
	outs_drain(&oc, c);
	outs_clear(&oc);
	/* forged: a's proof replayed on other values, or no proof at all */
	struct nstate_record forged[2] = {
	    {"a", 1, 1ull << 40, (const uint8_t *)"cpus=1", 6, proof, sizeof(proof)},
	    {"a", 1, 1ull << 40, (const uint8_t *)"cpus=1", 6, NULL, 0}};
	for (size_t k = 0; k < 2; k++) {
		struct nstate_msg m = {.type = NSTATE_PUSH,
		                       .from = "n9",
		                       .records = &forged[k],
		                       .n_records = 1,
		                       .hops = 3};
		assert_int_equal(nstate_handle_message(c, &m, 3), 0);
		assert_int_equal(nstate_refused(c), k + 1);
		expect_rec(c, "a", 1, 1, "cpus=8");
		assert_int_equal(drain_events(c), 0);
		outs_drain(&oc, c);
		assert_int_equal(oc.n, 0);
	}
	/* a's next record, signed, is taken */
	assert_int_equal(nstate_set_local(a, 1, 2, (const uint8_t *)"cpus=7", 6, true, 4), 0);
	outs_clear(&oa);
	outs_drain(&oa, a);
	struct pkt relay;
	pkt_copy(&relay, push_to(&oa, "b"));
	relay.m.to = "c";
	assert_int_equal(nstate_handle_message(c, &relay.m, 5), 0);
	expect_rec(c, "a", 1, 2, "cpus=7");
	free(relay.blob);
	outs_clear(&oa);
	outs_clear(&ob);
	outs_clear(&oc);
	nstate_free(a);
	nstate_free(b);
	nstate_free(c);
}

static void test_config_rejected(void **state)
{
	struct nstate_config cfg;
	nstate_config_default(&cfg);
	assert_null(nstate_new(&cfg, 0)); /* no name */
	snprintf(cfg.name, sizeof(cfg.name), "me");
	cfg.sync_interval_ms = 0;
	assert_null(nstate_new(&cfg, 0));
	nstate_config_default(&cfg);
	snprintf(cfg.name, sizeof(cfg.name), "me");
	cfg.max_msg_bytes = 10;
	assert_null(nstate_new(&cfg, 0));
	nstate_config_default(&cfg);
	snprintf(cfg.name, sizeof(cfg.name), "me");
	cfg.push_fanout = 1000;
	assert_null(nstate_new(&cfg, 0));
	assert_null(nstate_new(NULL, 0));
	nstate_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_older_never_overwrites_newer),
	    cmocka_unit_test(test_new_incarnation_wins),
	    cmocka_unit_test(test_own_record_not_taken_from_others),
	    cmocka_unit_test(test_set_local_monotonic),
	    cmocka_unit_test(test_hash_equality_and_difference),
	    cmocka_unit_test(test_sync_digest_delta_converges),
	    cmocka_unit_test(test_sync_one_sided),
	    cmocka_unit_test(test_delta_split),
	    cmocka_unit_test(test_push_relay_and_hop_limit),
	    cmocka_unit_test(test_push_duplicate_not_relayed),
	    cmocka_unit_test(test_push_local_urgent),
	    cmocka_unit_test(test_push_spreads_in_three),
	    cmocka_unit_test(test_sync_partners_sticky),
	    cmocka_unit_test(test_peers_down_and_forget),
	    cmocka_unit_test(test_tree_equal_buckets_cost_nothing),
	    cmocka_unit_test(test_tree_many_differences_split),
	    cmocka_unit_test(test_tree_older_peer_gets_whole_digest),
	    cmocka_unit_test(test_tree_malformed_rejected),
	    cmocka_unit_test(test_malformed_rejected),
	    cmocka_unit_test(test_numbers_bounded),
	    cmocka_unit_test(test_records_signed_by_owner),
	    cmocka_unit_test(test_failed_proofs_bounded),
	    cmocka_unit_test(test_config_rejected),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
