/*
 * test_migrate.c — the migration negotiation core, driven by hand.
 *
 * Two or three cores ("src", "dst", "src2") joined by an in-test pump that
 * delivers every queued message at once (FIFO), or drops those a test
 * says are lost; time is an integer the test advances, timers are run by
 * hand at the deadlines the cores ask for. Events are collected per core
 * and looked up by type.
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

#include "meshvisor/mig.h"

#define GIB (1024ull * 1024)
#define MAXN 3
#define MAXEV 256

struct node {
	struct mig *m;
	struct mig_event ev[MAXEV];
	size_t n_ev;
	bool down; /* messages to and from it are dropped */
};

struct net {
	struct node n[MAXN];
	int count;
	uint64_t now;
	uint32_t sent_by_type[MIG_MSG_TYPES];
	bool drop_type[MIG_MSG_TYPES];
};

static const char *const names[MAXN] = {"src", "dst", "src2"};

static void cfg_for(struct mig_config *c, int i)
{
	mig_config_default(c);
	snprintf(c->name, sizeof(c->name), "%s", names[i]);
	snprintf(c->cpu_model, sizeof(c->cpu_model), "Skylake");
	c->seed = 100 + (uint64_t)i;
	c->startup_quiet_ms = 0;
	c->lease_ms = 3000;
	c->propose_timeout_ms = 1000;
	c->propose_retry_ms = 300;
}

static void set_cap(struct mig *m, uint32_t cpus, uint64_t mem_kib, uint32_t vused, uint64_t mused)
{
	struct mig_capacity cap = {
	    .cpus = cpus,
	    .cpu_overcommit = 1.0,
	    .memory_kib = mem_kib,
	    .memory_overcommit = 1.0,
	    .vcpus_allocated = vused,
	    .memory_allocated_kib = mused,
	};
	mig_set_capacity(m, &cap);
}

static struct net *net_new(int count, void (*tweak)(struct mig_config *, int))
{
	struct net *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	t->count = count;
	t->now = 1000;
	for (int i = 0; i < count; i++) {
		struct mig_config c;
		cfg_for(&c, i);
		if (tweak)
			tweak(&c, i);
		t->n[i].m = mig_new(&c, t->now);
		assert_non_null(t->n[i].m);
		set_cap(t->n[i].m, 8, 16 * GIB, 0, 0);
	}
	return t;
}

static void net_free(struct net *t)
{
	for (int i = 0; i < t->count; i++)
		mig_free(t->n[i].m);
	free(t);
}

static int idx(const struct net *t, const char *name)
{
	for (int i = 0; i < t->count; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

static void drain_events(struct net *t)
{
	for (int i = 0; i < t->count; i++) {
		struct mig_event e;
		while (mig_pop_event(t->n[i].m, &e)) {
			assert_true(t->n[i].n_ev < MAXEV);
			t->n[i].ev[t->n[i].n_ev++] = e;
		}
	}
}

/* Delivers everything queued until quiet. */
static void pump(struct net *t)
{
	bool any = true;
	while (any) {
		any = false;
		drain_events(t);
		for (int i = 0; i < t->count; i++) {
			struct mig_msg msg;
			while (mig_pop_output(t->n[i].m, &msg)) {
				t->sent_by_type[msg.type]++;
				int j = idx(t, msg.to);
				assert_true(j >= 0);
				if (t->n[i].down || t->n[j].down || t->drop_type[msg.type])
					continue;
				assert_int_equal(mig_handle_message(t->n[j].m, &msg, t->now), 0);
				any = true;
			}
		}
	}
	drain_events(t);
}

/* Advances time to `until`, firing every core's timers on the way. */
static void run_until(struct net *t, uint64_t until)
{
	for (;;) {
		uint64_t d = UINT64_MAX;
		for (int i = 0; i < t->count; i++) {
			if (t->n[i].down)
				continue;
			uint64_t x = mig_next_deadline(t->n[i].m);
			if (x < d)
				d = x;
		}
		if (d > until)
			break;
		assert_true(d >= t->now);
		t->now = d;
		for (int i = 0; i < t->count; i++)
			if (!t->n[i].down)
				mig_handle_timer(t->n[i].m, t->now);
		pump(t);
	}
	t->now = until;
}

static const struct mig_event *find_ev(struct net *t, int node, enum mig_event_type type)
{
	for (size_t k = 0; k < t->n[node].n_ev; k++)
		if (t->n[node].ev[k].type == type)
			return &t->n[node].ev[k];
	return NULL;
}

static int count_ev(struct net *t, int node, enum mig_event_type type)
{
	int c = 0;
	for (size_t k = 0; k < t->n[node].n_ev; k++)
		c += t->n[node].ev[k].type == type;
	return c;
}

static void propose(struct net *t, int from, const char *vm, uint32_t vcpus, uint64_t mem,
                    char id[MIG_ID_MAX])
{
	char uuid[MIG_UUID_MAX];
	snprintf(uuid, sizeof(uuid), "uuid-%s", vm);
	struct mig_vm v = {.name = vm, .uuid = uuid, .vcpus = vcpus, .memory_kib = mem};
	enum mig_reason why;
	assert_int_equal(mig_propose(t->n[from].m, &v, "dst", t->now, id, &why), 0);
	assert_int_equal(why, MIG_R_NONE);
}

enum { SRC = 0, DST = 1, SRC2 = 2 };

/* ------------------------------------------------------------------------ */

static void test_accept_and_reserve(void **state)
{
	struct net *t = net_new(2, NULL);
	char id[MIG_ID_MAX];
	propose(t, SRC, "web1", 2, 4 * GIB, id);
	assert_int_equal(mig_out_count(t->n[SRC].m), 1);
	pump(t);
	const struct mig_event *go = find_ev(t, SRC, MIG_EV_GO);
	assert_non_null(go);
	assert_string_equal(go->proposal_id, id);
	assert_string_equal(go->peer, "dst");
	const struct mig_event *r = find_ev(t, DST, MIG_EV_RESERVED);
	assert_non_null(r);
	assert_string_equal(r->vm_name, "web1");
	assert_non_null(strstr(r->text, "reserved 2 vCPUs / 4096 MiB"));

	uint32_t v;
	uint64_t k;
	mig_reserved_total(t->n[DST].m, &v, &k);
	assert_int_equal(v, 2);
	assert_int_equal(k, 4 * GIB);
	assert_int_equal(mig_in_count(t->n[DST].m), 1);
	struct mig_in_info in;
	mig_in_at(t->n[DST].m, 0, &in);
	assert_string_equal(in.proposal_id, id);
	assert_string_equal(in.source, "src");
	assert_int_equal(in.expires_at, t->now + 3000);
	struct mig_out_info out;
	mig_out_at(t->n[SRC].m, 0, &out);
	assert_int_equal(out.state, MIG_OUT_MIGRATING);
	assert_string_equal(out.target, "dst");
	/* conservative: stamp + lease - guard (300) */
	assert_int_equal(out.lease_until, t->now + 3000 - 300);
	net_free(t);
}

static void tweak_small(struct mig_config *c, int i)
{
	if (i == DST)
		c->max_incoming = 1;
}

static void expect_refusal(struct net *t, int from, enum mig_reason reason, const char *text)
{
	const struct mig_event *e = find_ev(t, from, MIG_EV_REFUSED);
	assert_non_null(e);
	assert_int_equal(e->reason, reason);
	if (text && !strstr(e->text, text))
		fail_msg("refusal text \"%s\" lacks \"%s\"", e->text, text);
	assert_non_null(find_ev(t, DST, MIG_EV_REFUSED_IN));
	assert_int_equal(mig_in_count(t->n[DST].m), 0);
	assert_int_equal(mig_out_count(t->n[from].m), 0);
}

static void test_refuse_no_room(void **state)
{
	struct net *t = net_new(2, NULL);
	set_cap(t->n[DST].m, 8, 16 * GIB, 2, 14 * GIB);
	char id[MIG_ID_MAX];
	propose(t, SRC, "big", 2, 4 * GIB, id);
	pump(t);
	expect_refusal(t, SRC, MIG_R_NO_ROOM, "needs 4096 MiB, 2048 MiB free");
	net_free(t);

	t = net_new(2, NULL);
	set_cap(t->n[DST].m, 8, 16 * GIB, 7, 0);
	propose(t, SRC, "wide", 2, 1 * GIB, id);
	pump(t);
	expect_refusal(t, SRC, MIG_R_NO_ROOM, "needs 2 vCPUs, 1 free");
	net_free(t);
}

static void test_refuse_draining(void **state)
{
	struct net *t = net_new(2, NULL);
	mig_set_draining(t->n[DST].m, true);
	char id[MIG_ID_MAX];
	propose(t, SRC, "vm", 1, GIB, id);
	pump(t);
	expect_refusal(t, SRC, MIG_R_DRAINING, "host dst is draining");
	net_free(t);
}

/* A hold (the failover glue: a fence order waits for libvirt) refuses
 * with its reason; released, the same VM is taken. */
static void test_refuse_held(void **state)
{
	struct net *t = net_new(2, NULL);
	mig_set_hold(t->n[DST].m, "a fence order waits");
	char id[MIG_ID_MAX];
	propose(t, SRC, "vm", 1, GIB, id);
	pump(t);
	expect_refusal(t, SRC, MIG_R_DRAINING, "host dst takes no VM now: a fence order waits");
	mig_set_hold(t->n[DST].m, NULL);
	propose(t, SRC, "vm", 1, GIB, id);
	pump(t);
	assert_int_equal(mig_in_count(t->n[DST].m), 1);
	struct mig_out_info out;
	mig_out_at(t->n[SRC].m, 0, &out);
	assert_int_equal(out.state, MIG_OUT_MIGRATING);
	net_free(t);
}

static void tweak_cpu(struct mig_config *c, int i)
{
	if (i == SRC)
		snprintf(c->cpu_model, sizeof(c->cpu_model), "EPYC-Milan");
}

static void tweak_anycpu(struct mig_config *c, int i)
{
	if (i == DST)
		c->cpu_model[0] = '\0';
	else
		snprintf(c->cpu_model, sizeof(c->cpu_model), "EPYC-Milan");
}

static void test_refuse_cpu(void **state)
{
	struct net *t = net_new(2, tweak_cpu);
	char id[MIG_ID_MAX];
	propose(t, SRC, "vm", 1, GIB, id);
	pump(t);
	expect_refusal(t, SRC, MIG_R_CPU,
	               "CPU model EPYC-Milan is not compatible with this "
	               "host's Skylake");
	net_free(t);
	/* a target with no model accepts any */
	t = net_new(2, tweak_anycpu);
	propose(t, SRC, "vm", 1, GIB, id);
	pump(t);
	assert_non_null(find_ev(t, SRC, MIG_EV_GO));
	net_free(t);
}

static void test_refuse_too_many_incoming(void **state)
{
	struct net *t = net_new(3, tweak_small);
	char id1[MIG_ID_MAX], id2[MIG_ID_MAX];
	propose(t, SRC, "a", 1, GIB, id1);
	pump(t);
	assert_non_null(find_ev(t, SRC, MIG_EV_GO));
	propose(t, SRC2, "b", 1, GIB, id2);
	pump(t);
	const struct mig_event *e = find_ev(t, SRC2, MIG_EV_REFUSED);
	assert_non_null(e);
	assert_int_equal(e->reason, MIG_R_TOO_MANY);
	assert_non_null(strstr(e->text, "1 incoming migrations already (limit 1)"));
	assert_int_equal(mig_in_count(t->n[DST].m), 1);
	net_free(t);
}

static void test_refuse_self_duplicate_bad(void **state)
{
	struct net *t = net_new(2, NULL);
	/* locally: to itself */
	struct mig_vm v = {.name = "vm", .uuid = "u1", .vcpus = 1, .memory_kib = GIB};
	enum mig_reason why;
	char id[MIG_ID_MAX];
	assert_int_equal(mig_propose(t->n[SRC].m, &v, "src", t->now, id, &why), -EINVAL);
	assert_int_equal(why, MIG_R_SELF);
	v.memory_kib = 0;
	assert_int_equal(mig_propose(t->n[SRC].m, &v, "dst", t->now, id, &why), -EINVAL);
	assert_int_equal(why, MIG_R_BAD);
	assert_int_equal(mig_out_count(t->n[SRC].m), 0);

	/* on the wire: a PROPOSE from the target's own name is malformed (a
	 * host never negotiates with itself over the network): rejected, and
	 * nothing is sent (no message addressed to ourselves) */
	struct mig_msg p = {.type = MIG_PROPOSE, .vcpus = 1, .memory_kib = GIB};
	strcpy(p.from, "dst");
	strcpy(p.to, "dst");
	strcpy(p.proposal_id, "dst-1");
	strcpy(p.vm_name, "vm");
	strcpy(p.vm_uuid, "u1");
	strcpy(p.cpu_model, "Skylake");
	struct mig_msg out;
	assert_int_equal(mig_handle_message(t->n[DST].m, &p, t->now), -EINVAL);
	assert_false(mig_pop_output(t->n[DST].m, &out));
	assert_int_equal(mig_in_count(t->n[DST].m), 0);

	/* malformed: zero vCPUs */
	strcpy(p.from, "src");
	strcpy(p.proposal_id, "src-2");
	p.vcpus = 0;
	assert_int_equal(mig_handle_message(t->n[DST].m, &p, t->now), 0);
	assert_true(mig_pop_output(t->n[DST].m, &out));
	assert_int_equal(out.reason, MIG_R_BAD);

	/* duplicate: the same VM under another proposal id while reserved */
	p.vcpus = 1;
	strcpy(p.proposal_id, "src-3");
	assert_int_equal(mig_handle_message(t->n[DST].m, &p, t->now), 0);
	assert_true(mig_pop_output(t->n[DST].m, &out));
	assert_int_equal(out.type, MIG_ACCEPT);
	strcpy(p.proposal_id, "src-4");
	assert_int_equal(mig_handle_message(t->n[DST].m, &p, t->now), 0);
	assert_true(mig_pop_output(t->n[DST].m, &out));
	assert_int_equal(out.type, MIG_REFUSE);
	assert_int_equal(out.reason, MIG_R_DUPLICATE);
	assert_non_null(strstr(out.reason_text, "already incoming (proposal src-3)"));
	assert_int_equal(mig_in_count(t->n[DST].m), 1);

	/* malformed input is rejected outright */
	p.to[0] = 'x';
	assert_int_equal(mig_handle_message(t->n[DST].m, &p, t->now), -EINVAL);
	strcpy(p.to, "dst");
	memset(p.vm_name, 'a', sizeof(p.vm_name));
	assert_int_equal(mig_handle_message(t->n[DST].m, &p, t->now), -EINVAL);
	net_free(t);
}

static void tweak_quiet(struct mig_config *c, int i)
{
	if (i == DST)
		c->startup_quiet_ms = 3000;
}

static void test_refuse_starting(void **state)
{
	struct net *t = net_new(2, tweak_quiet);
	char id[MIG_ID_MAX];
	propose(t, SRC, "vm", 1, GIB, id);
	pump(t);
	expect_refusal(t, SRC, MIG_R_STARTING, "accepting migrations in 3000 ms");
	run_until(t, t->now + 3000);
	propose(t, SRC, "vm", 1, GIB, id);
	pump(t);
	assert_non_null(find_ev(t, SRC, MIG_EV_GO));
	net_free(t);
}

static void test_two_sources_never_overbook(void **state)
{
	/* room for one 8 GiB VM; two sources propose at the same instant */
	struct net *t = net_new(3, NULL);
	set_cap(t->n[DST].m, 8, 16 * GIB, 0, 6 * GIB);
	char a[MIG_ID_MAX], b[MIG_ID_MAX];
	propose(t, SRC, "a", 1, 8 * GIB, a);
	propose(t, SRC2, "b", 1, 8 * GIB, b);
	pump(t);
	assert_int_equal(count_ev(t, SRC, MIG_EV_GO) + count_ev(t, SRC2, MIG_EV_GO), 1);
	assert_int_equal(count_ev(t, SRC, MIG_EV_REFUSED) + count_ev(t, SRC2, MIG_EV_REFUSED), 1);
	uint64_t k;
	mig_reserved_total(t->n[DST].m, NULL, &k);
	assert_int_equal(k, 8 * GIB);
	net_free(t);
}

static void test_lease_expiry_releases(void **state)
{
	struct net *t = net_new(2, NULL);
	char id[MIG_ID_MAX];
	propose(t, SRC, "vm", 1, GIB, id);
	pump(t);
	assert_int_equal(mig_in_count(t->n[DST].m), 1);
	uint64_t accepted = t->now;
	t->n[SRC].down = true; /* the source crashes: no RENEW any more */
	run_until(t, accepted + 2999);
	assert_int_equal(mig_in_count(t->n[DST].m), 1);
	assert_null(find_ev(t, DST, MIG_EV_EXPIRED));
	run_until(t, accepted + 3000);
	assert_int_equal(mig_in_count(t->n[DST].m), 0);
	const struct mig_event *e = find_ev(t, DST, MIG_EV_EXPIRED);
	assert_non_null(e);
	assert_non_null(strstr(e->text, "lease expired: no word from the source for 3000 ms"));
	assert_int_equal(mig_next_deadline(t->n[DST].m), UINT64_MAX);
	net_free(t);
}

static void test_commit_and_abort_release(void **state)
{
	struct net *t = net_new(2, NULL);
	char a[MIG_ID_MAX], b[MIG_ID_MAX];
	propose(t, SRC, "a", 1, GIB, a);
	propose(t, SRC, "b", 1, GIB, b);
	pump(t);
	assert_int_equal(count_ev(t, SRC, MIG_EV_GO), 2);
	assert_int_equal(mig_in_count(t->n[DST].m), 2);

	assert_int_equal(mig_migration_done(t->n[SRC].m, a, MIG_DONE_OK, t->now), 0);
	pump(t);
	const struct mig_event *c = find_ev(t, DST, MIG_EV_COMMITTED);
	assert_non_null(c);
	assert_string_equal(c->proposal_id, a);
	assert_int_equal(mig_in_count(t->n[DST].m), 1);
	const struct mig_event *f = find_ev(t, SRC, MIG_EV_FINISHED);
	assert_non_null(f);
	assert_true(f->ok);

	assert_int_equal(mig_migration_done(t->n[SRC].m, b, MIG_DONE_FAILED, t->now), 0);
	pump(t);
	const struct mig_event *r = find_ev(t, DST, MIG_EV_RELEASED);
	assert_non_null(r);
	assert_string_equal(r->proposal_id, b);
	assert_int_equal(mig_in_count(t->n[DST].m), 0);
	assert_int_equal(mig_out_count(t->n[SRC].m), 0);
	assert_int_equal(mig_next_deadline(t->n[SRC].m), UINT64_MAX);
	assert_int_equal(mig_next_deadline(t->n[DST].m), UINT64_MAX);
	/* done twice: unknown now */
	assert_int_equal(mig_migration_done(t->n[SRC].m, b, MIG_DONE_OK, t->now), -ENOENT);
	net_free(t);
}

static void test_arrival_releases_and_landed_anyway_commits(void **state)
{
	struct net *t = net_new(2, NULL);
	char a[MIG_ID_MAX];
	propose(t, SRC, "a", 1, GIB, a);
	pump(t);
	assert_true(mig_vm_arrived(t->n[DST].m, "uuid-a", t->now));
	drain_events(t);
	assert_non_null(find_ev(t, DST, MIG_EV_COMMITTED));
	assert_int_equal(mig_in_count(t->n[DST].m), 0);
	assert_false(mig_vm_arrived(t->n[DST].m, "uuid-a", t->now));
	assert_int_equal(mig_migration_done(t->n[SRC].m, a, MIG_DONE_LANDED_ANYWAY, t->now), 0);
	pump(t);
	assert_int_equal(t->sent_by_type[MIG_COMMIT], 1);
	assert_int_equal(count_ev(t, DST, MIG_EV_COMMITTED), 1); /* the COMMIT was a no-op */
	net_free(t);
}

static void test_duplicate_propose_idempotent(void **state)
{
	struct net *t = net_new(2, NULL);
	char id[MIG_ID_MAX];
	propose(t, SRC, "vm", 2, 2 * GIB, id);
	struct mig_msg p;
	assert_true(mig_pop_output(t->n[SRC].m, &p));
	assert_int_equal(p.type, MIG_PROPOSE);
	struct mig_msg o1, o2;
	assert_int_equal(mig_handle_message(t->n[DST].m, &p, t->now), 0);
	assert_true(mig_pop_output(t->n[DST].m, &o1));
	assert_int_equal(mig_handle_message(t->n[DST].m, &p, t->now + 10), 0);
	assert_true(mig_pop_output(t->n[DST].m, &o2));
	assert_int_equal(o1.type, MIG_ACCEPT);
	assert_int_equal(o2.type, MIG_ACCEPT);
	assert_int_equal(o1.lease_ms, o2.lease_ms);
	assert_int_equal(mig_in_count(t->n[DST].m), 1);
	uint32_t v;
	mig_reserved_total(t->n[DST].m, &v, NULL);
	assert_int_equal(v, 2);

	/* a refused proposal repeated gets the same refusal, word for word */
	mig_set_draining(t->n[DST].m, true);
	strcpy(p.proposal_id, "src-x-9");
	strcpy(p.vm_uuid, "other");
	assert_int_equal(mig_handle_message(t->n[DST].m, &p, t->now), 0);
	assert_true(mig_pop_output(t->n[DST].m, &o1));
	mig_set_draining(t->n[DST].m, false);
	assert_int_equal(mig_handle_message(t->n[DST].m, &p, t->now + 5), 0);
	assert_true(mig_pop_output(t->n[DST].m, &o2));
	assert_int_equal(o1.type, MIG_REFUSE);
	assert_int_equal(o2.type, MIG_REFUSE);
	assert_int_equal(o2.reason, MIG_R_DRAINING);
	assert_string_equal(o1.reason_text, o2.reason_text);
	net_free(t);
}

static void test_late_commit_ignored(void **state)
{
	struct net *t = net_new(2, NULL);
	struct mig_msg c = {.type = MIG_COMMIT};
	strcpy(c.from, "src");
	strcpy(c.to, "dst");
	strcpy(c.proposal_id, "src-dead-7");
	assert_int_equal(mig_handle_message(t->n[DST].m, &c, t->now), 0);
	c.type = MIG_ABORT;
	assert_int_equal(mig_handle_message(t->n[DST].m, &c, t->now), 0);
	drain_events(t);
	assert_int_equal(t->n[DST].n_ev, 0);
	assert_int_equal(mig_in_count(t->n[DST].m), 0);
	struct mig_msg o;
	assert_false(mig_pop_output(t->n[DST].m, &o));
	/* the PROPOSE that was overtaken by its own COMMIT reserves nothing */
	struct mig_msg p = {.type = MIG_PROPOSE, .vcpus = 1, .memory_kib = GIB};
	strcpy(p.from, "src");
	strcpy(p.to, "dst");
	strcpy(p.proposal_id, "src-dead-7");
	strcpy(p.vm_name, "vm");
	strcpy(p.vm_uuid, "u");
	strcpy(p.cpu_model, "Skylake");
	assert_int_equal(mig_handle_message(t->n[DST].m, &p, t->now), 0);
	assert_true(mig_pop_output(t->n[DST].m, &o));
	assert_int_equal(o.type, MIG_REFUSE);
	assert_int_equal(o.reason, MIG_R_DUPLICATE);
	assert_non_null(strstr(o.reason_text, "already finished"));
	assert_int_equal(mig_in_count(t->n[DST].m), 0);

	/* a COMMIT from someone who is not the source changes nothing */
	char id[MIG_ID_MAX];
	struct net *u = net_new(3, NULL);
	propose(u, SRC, "vm", 1, GIB, id);
	pump(u);
	strcpy(c.from, "src2");
	strcpy(c.proposal_id, id);
	c.type = MIG_COMMIT;
	assert_int_equal(mig_handle_message(u->n[DST].m, &c, u->now), 0);
	assert_int_equal(mig_in_count(u->n[DST].m), 1);
	net_free(u);
	net_free(t);
}

static void tweak_out1(struct mig_config *c, int i)
{
	if (i == SRC)
		c->max_outgoing = 1;
}

static void test_outgoing_limit(void **state)
{
	struct net *t = net_new(2, NULL);
	char a[MIG_ID_MAX], b[MIG_ID_MAX], c[MIG_ID_MAX];
	propose(t, SRC, "a", 1, GIB, a);
	propose(t, SRC, "b", 1, GIB, b);
	struct mig_vm v = {.name = "c", .uuid = "uuid-c", .vcpus = 1, .memory_kib = GIB};
	enum mig_reason why;
	assert_int_equal(mig_propose(t->n[SRC].m, &v, "dst", t->now, c, &why), -EBUSY);
	assert_int_equal(why, MIG_R_TOO_MANY);
	v.uuid = "uuid-a";
	assert_int_equal(mig_propose(t->n[SRC].m, &v, "dst", t->now, c, &why), -EEXIST);
	assert_int_equal(why, MIG_R_DUPLICATE);
	assert_int_equal(mig_out_count(t->n[SRC].m), 2);
	assert_string_not_equal(a, b);
	pump(t);
	mig_migration_done(t->n[SRC].m, a, MIG_DONE_OK, t->now);
	v.uuid = "uuid-c";
	assert_int_equal(mig_propose(t->n[SRC].m, &v, "dst", t->now, c, &why), 0);
	net_free(t);

	t = net_new(2, tweak_out1);
	propose(t, SRC, "a", 1, GIB, a);
	assert_int_equal(mig_propose(t->n[SRC].m, &v, "dst", t->now, c, &why), -EBUSY);
	net_free(t);
}

static void test_propose_timeout(void **state)
{
	struct net *t = net_new(2, NULL);
	t->n[DST].down = true;
	char id[MIG_ID_MAX];
	uint64_t t0 = t->now;
	propose(t, SRC, "vm", 1, GIB, id);
	pump(t);
	run_until(t, t0 + 999);
	assert_null(find_ev(t, SRC, MIG_EV_REFUSED));
	assert_int_equal(t->sent_by_type[MIG_PROPOSE], 4); /* 0, 300, 600, 900 */
	run_until(t, t0 + 1000);
	const struct mig_event *e = find_ev(t, SRC, MIG_EV_REFUSED);
	assert_non_null(e);
	assert_int_equal(e->reason, MIG_R_TIMEOUT);
	assert_non_null(strstr(e->text, "target unreachable"));
	assert_int_equal(t->sent_by_type[MIG_ABORT], 1);
	assert_int_equal(mig_out_count(t->n[SRC].m), 0);

	/* the target was only slow: its late ACCEPT is answered with ABORT */
	t->n[DST].down = false;
	struct mig_msg p = {.type = MIG_PROPOSE, .vcpus = 1, .memory_kib = GIB};
	strcpy(p.from, "src");
	strcpy(p.to, "dst");
	strcpy(p.proposal_id, id);
	strcpy(p.vm_name, "vm");
	strcpy(p.vm_uuid, "uuid-vm");
	strcpy(p.cpu_model, "Skylake");
	assert_int_equal(mig_handle_message(t->n[DST].m, &p, t->now), 0);
	pump(t);
	assert_non_null(find_ev(t, DST, MIG_EV_RELEASED));
	assert_int_equal(mig_in_count(t->n[DST].m), 0);
	net_free(t);
}

static void test_renew_extends_lease(void **state)
{
	struct net *t = net_new(2, NULL);
	char id[MIG_ID_MAX];
	propose(t, SRC, "vm", 1, GIB, id);
	pump(t);
	uint64_t t0 = t->now;
	run_until(t, t0 + 20000); /* a migration of 20 s, lease 3 s */
	assert_int_equal(mig_in_count(t->n[DST].m), 1);
	assert_null(find_ev(t, DST, MIG_EV_EXPIRED));
	assert_null(find_ev(t, SRC, MIG_EV_LEASE_LOST));
	assert_true(t->sent_by_type[MIG_RENEW] >= 19);
	struct mig_in_info in;
	mig_in_at(t->n[DST].m, 0, &in);
	assert_true(in.last_renew >= t0 + 19000);
	assert_true(in.expires_at > t->now);
	struct mig_out_info out;
	mig_out_at(t->n[SRC].m, 0, &out);
	assert_true(out.lease_until > t->now);
	assert_true(out.lease_until < in.expires_at);
	mig_migration_done(t->n[SRC].m, id, MIG_DONE_OK, t->now);
	pump(t);
	assert_int_equal(mig_in_count(t->n[DST].m), 0);
	net_free(t);
}

static void test_renewals_lost_lease_lost_before_expiry(void **state)
{
	struct net *t = net_new(2, NULL);
	char id[MIG_ID_MAX];
	propose(t, SRC, "vm", 1, GIB, id);
	pump(t);
	uint64_t t0 = t->now;
	t->drop_type[MIG_RENEWED] = true;
	run_until(t, t0 + 2699);
	assert_null(find_ev(t, SRC, MIG_EV_LEASE_LOST));
	run_until(t, t0 + 2700);
	const struct mig_event *e = find_ev(t, SRC, MIG_EV_LEASE_LOST);
	assert_non_null(e);
	assert_int_equal(e->reason, MIG_R_TIMEOUT);
	/* the target still holds it (RENEWs arrive): the source lost it first */
	assert_int_equal(mig_in_count(t->n[DST].m), 1);
	mig_migration_done(t->n[SRC].m, id, MIG_DONE_FAILED, t->now);
	pump(t);
	assert_int_equal(mig_in_count(t->n[DST].m), 0);
	net_free(t);
}

static void test_target_dies_mid_migration(void **state)
{
	struct net *t = net_new(2, NULL);
	char id[MIG_ID_MAX], id2[MIG_ID_MAX];
	propose(t, SRC, "vm", 1, GIB, id);
	pump(t);
	assert_non_null(find_ev(t, SRC, MIG_EV_GO));
	t->n[DST].down = true;
	propose(t, SRC, "vm2", 1, GIB, id2); /* still proposing when it dies */
	mig_peer_down(t->n[SRC].m, "dst", t->now);
	drain_events(t);
	const struct mig_event *e = find_ev(t, SRC, MIG_EV_LEASE_LOST);
	assert_non_null(e);
	assert_int_equal(e->reason, MIG_R_PEER_DOWN);
	assert_string_equal(e->proposal_id, id);
	e = find_ev(t, SRC, MIG_EV_REFUSED);
	assert_non_null(e);
	assert_int_equal(e->reason, MIG_R_PEER_DOWN);
	assert_string_equal(e->proposal_id, id2);
	/* no renewing to a dead target; the caller aborts the job and reports */
	assert_int_equal(mig_next_deadline(t->n[SRC].m), UINT64_MAX);
	assert_int_equal(mig_migration_done(t->n[SRC].m, id, MIG_DONE_FAILED, t->now), 0);
	drain_events(t);
	e = find_ev(t, SRC, MIG_EV_FINISHED);
	assert_non_null(e);
	assert_false(e->ok);
	assert_int_equal(mig_out_count(t->n[SRC].m), 0);
	net_free(t);
}

static void test_target_restart_forgets_renew_refused(void **state)
{
	struct net *t = net_new(2, NULL);
	char id[MIG_ID_MAX];
	propose(t, SRC, "vm", 1, GIB, id);
	pump(t);
	/* a stale duplicate PROPOSE's refusal does not cost the lease */
	struct mig_msg r = {.type = MIG_REFUSE, .reason = MIG_R_DUPLICATE};
	strcpy(r.from, "dst");
	strcpy(r.to, "src");
	strcpy(r.proposal_id, id);
	assert_int_equal(mig_handle_message(t->n[SRC].m, &r, t->now), 0);
	drain_events(t);
	assert_null(find_ev(t, SRC, MIG_EV_LEASE_LOST));
	/* the target's agent restarts: a fresh core, in its quiet period */
	mig_free(t->n[DST].m);
	struct mig_config c;
	cfg_for(&c, DST);
	c.startup_quiet_ms = 3000;
	t->n[DST].m = mig_new(&c, t->now);
	set_cap(t->n[DST].m, 8, 16 * GIB, 0, 0);
	run_until(t, t->now + 1000); /* the first RENEW */
	const struct mig_event *e = find_ev(t, SRC, MIG_EV_LEASE_LOST);
	assert_non_null(e);
	assert_int_equal(e->reason, MIG_R_UNKNOWN);
	net_free(t);
}

static void test_cancel(void **state)
{
	struct net *t = net_new(2, NULL);
	char id[MIG_ID_MAX];
	propose(t, SRC, "vm", 1, GIB, id);
	pump(t);
	assert_int_equal(mig_cancel(t->n[SRC].m, id, t->now), 0);
	pump(t);
	assert_non_null(find_ev(t, DST, MIG_EV_RELEASED));
	assert_int_equal(mig_cancel(t->n[SRC].m, id, t->now), -ENOENT);
	net_free(t);
}

/* ------------------------------------------------------------------------ */
/* Target choice                                                            */

static void test_choose_target(void **state)
{
	struct mig_config c;
	cfg_for(&c, SRC);
	c.choose_top = 3;
	struct mig *m = mig_new(&c, 0);
	assert_non_null(m);
	struct placement_host h[8];
	for (int i = 0; i < 8; i++) {
		h[i] = (struct placement_host){
		    .alive = true,
		    .healthy = true,
		    .cpus = 16,
		    .cpu_overcommit = 1.0,
		    .memory_kib = 64 * GIB,
		    .memory_overcommit = 1.0,
		    .memory_allocated_kib = (uint64_t)i * 4 * GIB, /* h0 emptiest */
		};
	}
	h[0].name = "src"; /* ourselves */
	h[1].name = "h1";
	h[1].draining = true;
	h[2].name = "h2";
	h[2].healthy = false;
	h[3].name = "h3";
	h[3].alive = false;
	h[4].name = "h4";
	h[5].name = "h5";
	h[6].name = "h6";
	h[7].name = "h7";
	h[7].memory_allocated_kib = 62 * GIB; /* does not fit */
	struct placement_request req = {.vcpus = 2, .memory_kib = 4 * GIB};
	int hits[8] = {0};
	char why[512];
	for (int k = 0; k < 300; k++) {
		int i = mig_choose_target(m, h, 8, &req, NULL, 0, why, sizeof(why));
		assert_true(i >= 0);
		hits[i]++;
	}
	assert_int_equal(hits[0] + hits[1] + hits[2] + hits[3] + hits[7], 0);
	/* spread among the top three (h4, h5, h6), none starved */
	assert_true(hits[4] > 60 && hits[5] > 60 && hits[6] > 60);

	/* exclusions (already refused) and the reasons when nothing is left */
	const char *ex[] = {"h4", "h5"};
	assert_int_equal(mig_choose_target(m, h, 8, &req, ex, 2, why, sizeof(why)), 6);
	const char *ex3[] = {"h4", "h5", "h6"};
	assert_int_equal(mig_choose_target(m, h, 8, &req, ex3, 3, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "no host has room for 2 vCPUs / 4096 MiB: src is this host"));
	assert_non_null(strstr(why, "h1 draining"));
	assert_non_null(strstr(why, "h2 libvirt unreachable"));
	assert_non_null(strstr(why, "h3 not alive"));
	assert_non_null(strstr(why, "h4 already tried"));
	assert_non_null(strstr(why, "h7 needs 4096 MiB, 2048 MiB left"));
	assert_int_equal(mig_choose_target(m, h, 0, &req, NULL, 0, why, sizeof(why)), -1);
	assert_string_equal(why, "no hosts known");

	/* the same seed, the same picks */
	struct mig *m2 = mig_new(&c, 0), *m3 = mig_new(&c, 0);
	for (int k = 0; k < 50; k++)
		assert_int_equal(mig_choose_target(m2, h, 8, &req, NULL, 0, NULL, 0),
		                 mig_choose_target(m3, h, 8, &req, NULL, 0, NULL, 0));
	mig_free(m2);
	mig_free(m3);
	mig_free(m);
}

/* Random junk, half of it addressed properly and NUL-terminated: never a
 * crash (ASan), only 0 or -EINVAL, and the core stays within its limits. */
static void test_garbage_input(void **state)
{
	struct net *t = net_new(2, NULL);
	uint64_t x = 42;
	int reserved = 0;
	for (int k = 0; k < 20000; k++) {
		struct mig_msg m;
		unsigned char *b = (unsigned char *)&m;
		for (size_t i = 0; i < sizeof(m); i++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			b[i] = (unsigned char)(x >> 56);
		}
		if (k & 1) {
			m.type = (enum mig_msg_type)((x >> 20) % MIG_MSG_TYPES);
			m.reason = (enum mig_reason)((x >> 30) % MIG_REASONS);
			strcpy(m.to, (x >> 40) & 1 ? "dst" : "src");
			snprintf(m.from, sizeof(m.from), "h%u", (unsigned)((x >> 41) % 4));
			snprintf(m.proposal_id, sizeof(m.proposal_id), "p%u",
			         (unsigned)((x >> 44) % 16));
			m.vm_name[(x >> 8) % sizeof(m.vm_name)] = '\0';
			snprintf(m.vm_uuid, sizeof(m.vm_uuid), "u%u", (unsigned)((x >> 48) % 8));
			strcpy(m.cpu_model, (x >> 50) & 1 ? "Skylake" : "");
			m.reason_text[sizeof(m.reason_text) - 1] = '\0';
			m.vcpus %= 4;
			m.memory_kib %= 4 * GIB;
			m.stamp %= t->now + 1;
		}
		/* pure junk has no terminator anywhere: pick its receiver at random
		 * rather than reading m.to */
		int j = (k & 1) ? (strcmp(m.to, "src") == 0 ? SRC : DST) : (int)((x >> 33) & 1);
		int rc = mig_handle_message(t->n[j].m, &m, t->now);
		assert_true(rc == 0 || rc == -EINVAL);
		t->now += (x >> 60);
		mig_handle_timer(t->n[SRC].m, t->now);
		mig_handle_timer(t->n[DST].m, t->now);
		struct mig_msg o;
		struct mig_event e;
		for (int i = 0; i < 2; i++) {
			while (mig_pop_output(t->n[i].m, &o))
				;
			while (mig_pop_event(t->n[i].m, &e))
				reserved += e.type == MIG_EV_RESERVED;
		}
		assert_true(mig_in_count(t->n[DST].m) <= 2);
	}
	assert_true(reserved > 10); /* the junk reached the interesting paths */
	net_free(t);
}

static void test_names(void **state)
{
	assert_string_equal(mig_reason_name(MIG_R_NO_ROOM), "no-room");
	assert_string_equal(mig_reason_name((enum mig_reason)99), "?");
	assert_string_equal(mig_event_name(MIG_EV_EXPIRED), "expired");
	assert_string_equal(mig_msg_type_name(MIG_RENEWED), "RENEWED");
	struct mig_config c;
	mig_config_default(&c);
	assert_null(mig_new(&c, 0)); /* no name */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_accept_and_reserve),
	    cmocka_unit_test(test_refuse_no_room),
	    cmocka_unit_test(test_refuse_draining),
	    cmocka_unit_test(test_refuse_held),
	    cmocka_unit_test(test_refuse_cpu),
	    cmocka_unit_test(test_refuse_too_many_incoming),
	    cmocka_unit_test(test_refuse_self_duplicate_bad),
	    cmocka_unit_test(test_refuse_starting),
	    cmocka_unit_test(test_two_sources_never_overbook),
	    cmocka_unit_test(test_lease_expiry_releases),
	    cmocka_unit_test(test_commit_and_abort_release),
	    cmocka_unit_test(test_arrival_releases_and_landed_anyway_commits),
	    cmocka_unit_test(test_duplicate_propose_idempotent),
	    cmocka_unit_test(test_late_commit_ignored),
	    cmocka_unit_test(test_outgoing_limit),
	    cmocka_unit_test(test_propose_timeout),
	    cmocka_unit_test(test_renew_extends_lease),
	    cmocka_unit_test(test_renewals_lost_lease_lost_before_expiry),
	    cmocka_unit_test(test_target_dies_mid_migration),
	    cmocka_unit_test(test_target_restart_forgets_renew_refused),
	    cmocka_unit_test(test_cancel),
	    cmocka_unit_test(test_choose_target),
	    cmocka_unit_test(test_garbage_input),
	    cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
