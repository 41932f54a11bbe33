/*
 * test_failover.c — the failover core, driven by hand.
 *
 * Up to five cores ("n0".."n4") joined by an in-test pump that delivers
 * every queued message at once (FIFO) unless a node is down, a link is cut
 * or a message type is dropped; time is an integer the test advances and
 * timers fire exactly at the deadlines the cores ask for (which must never
 * be in the past after a timer). Events are collected per core, with their
 * plans, and looked up by type. n0 is the host that dies in most tests; it
 * runs the HA VMs of the gossiped view that set_view() feeds everyone.
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

#include "meshvisor/failover.h"

#define GIB (1024ull * 1024)
#define MAXN 5
#define MAXEV 8192

struct node {
	struct fo *f;
	struct fo_event *ev;
	size_t n_ev;
	size_t restarts_seen; /* RESTART events already answered */
	bool down;            /* messages to and from it are dropped */
};

struct net {
	struct node n[MAXN];
	int count;
	uint64_t now;
	bool cut[MAXN][MAXN];
	bool drop_type[FO_MSG_TYPES];
	size_t sent[FO_MSG_TYPES];
	/* optional: drop (true) a message in flight */
	bool (*filter)(struct net *t, int from, int to, const struct fo_msg *m);
};

static const char *const names[MAXN] = {"n0", "n1", "n2", "n3", "n4"};

static void cfg_for(struct fo_config *c, int i)
{
	fo_config_default(c);
	snprintf(c->name, sizeof(c->name), "%s", names[i]);
	c->seed = 7 + (uint64_t)i;
	c->dead_grace_ms = 0; /* test_dead_grace has it */
}

static struct net *net_new(int count, void (*tweak)(struct fo_config *, int))
{
	struct net *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	t->count = count;
	t->now = 100000;
	for (int i = 0; i < count; i++) {
		struct fo_config c;
		cfg_for(&c, i);
		if (tweak)
			tweak(&c, i);
		t->n[i].f = fo_new(&c, t->now);
		assert_non_null(t->n[i].f);
		t->n[i].ev = calloc(MAXEV, sizeof(struct fo_event));
		assert_non_null(t->n[i].ev);
		fo_set_incarnation(t->n[i].f, 1);
		fo_member(t->n[i].f, names[i], FO_ALIVE, 1, t->now);
		for (int j = 0; j < count; j++)
			if (j != i)
				fo_member(t->n[i].f, names[j], FO_ALIVE, 1, t->now);
	}
	return t;
}

static void clear_events(struct node *n)
{
	for (size_t k = 0; k < n->n_ev; k++)
		fo_event_clear(&n->ev[k]);
	n->n_ev = 0;
	n->restarts_seen = 0;
}

static void net_free(struct net *t)
{
	for (int i = 0; i < t->count; i++) {
		struct fo_msg m;
		while (fo_pop_output(t->n[i].f, &m))
			fo_msg_clear(&m);
		struct fo_event e;
		while (fo_pop_event(t->n[i].f, &e))
			fo_event_clear(&e);
		clear_events(&t->n[i]);
		free(t->n[i].ev);
		fo_free(t->n[i].f);
	}
	free(t);
}

static int idx(const char *name)
{
	for (int i = 0; i < MAXN; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	return -1;
}

static void drain_events(struct net *t)
{
	for (int i = 0; i < t->count; i++) {
		struct fo_event e;
		while (fo_pop_event(t->n[i].f, &e)) {
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
			struct fo_msg msg;
			while (fo_pop_output(t->n[i].f, &msg)) {
				t->sent[msg.type]++;
				int j = idx(msg.to);
				assert_true(j >= 0 && j != i);
				assert_string_equal(msg.from, names[i]);
				bool drop = j >= t->count || t->n[i].down || t->n[j].down || t->cut[i][j] ||
				            t->drop_type[msg.type] || (t->filter && t->filter(t, i, j, &msg));
				if (!drop) {
					assert_int_equal(fo_handle_message(t->n[j].f, &msg, t->now), 0);
					any = true;
				}
				fo_msg_clear(&msg);
			}
		}
	}
	drain_events(t);
}

/* Advances time to `until`, firing every (up) core's timer at its deadline. */
static void run_until(struct net *t, uint64_t until)
{
	pump(t);
	for (;;) {
		uint64_t next = UINT64_MAX;
		for (int i = 0; i < t->count; i++) {
			if (t->n[i].down)
				continue;
			uint64_t d = fo_next_deadline(t->n[i].f);
			if (d < next)
				next = d;
		}
		if (next > until)
			break;
		assert_true(next >= t->now);
		t->now = next;
		for (int i = 0; i < t->count; i++) {
			if (t->n[i].down || fo_next_deadline(t->n[i].f) > t->now)
				continue;
			assert_int_equal(fo_handle_timer(t->n[i].f, t->now), 0);
			/* never a deadline in the past (or now) after a timer */
			assert_true(fo_next_deadline(t->n[i].f) > t->now);
		}
		pump(t);
	}
	t->now = until;
}

static size_t count_ev(const struct node *n, enum fo_event_type ty)
{
	size_t c = 0;
	for (size_t k = 0; k < n->n_ev; k++)
		c += n->ev[k].type == ty;
	return c;
}

static const struct fo_event *find_ev(const struct node *n, enum fo_event_type ty, size_t nth)
{
	for (size_t k = 0; k < n->n_ev; k++)
		if (n->ev[k].type == ty && nth-- == 0)
			return &n->ev[k];
	return NULL;
}

/* Every node declares `dead` DEAD at incarnation `inc` (except itself and
 * down nodes). */
static void declare_dead(struct net *t, int dead, uint64_t inc)
{
	for (int i = 0; i < t->count; i++)
		if (i != dead && !t->n[i].down)
			fo_member(t->n[i].f, names[dead], FO_DEAD, inc, t->now);
	pump(t);
}

/* ---- the gossiped view ---------------------------------------------------- */

struct view {
	struct fo_vm vms[MAXN][32];
	size_t n_vms[MAXN];
	struct fo_host hosts[MAXN];
	char uuids[MAXN][32][FO_UUID_MAX];
	char vnames[MAXN][32][FO_NAME_MAX];
};

static void view_init(struct view *v, int count, uint32_t cpus, uint64_t mem_gib)
{
	memset(v, 0, sizeof(*v));
	for (int i = 0; i < count; i++) {
		struct fo_host *h = &v->hosts[i];
		h->cap.name = names[i];
		h->cap.alive = true;
		h->cap.healthy = true;
		h->cap.cpus = cpus;
		h->cap.cpu_overcommit = 1.0;
		h->cap.memory_kib = mem_gib * GIB;
		h->cap.memory_overcommit = 1.0;
	}
}

static struct fo_vm *view_vm(struct view *v, int host, const char *name, int32_t prio,
                             uint32_t vcpus, uint64_t mem_gib, const char *group)
{
	size_t k = v->n_vms[host]++;
	snprintf(v->uuids[host][k], FO_UUID_MAX, "00000000-0000-0000-0000-%012zu",
	         (size_t)host * 100 + k);
	snprintf(v->vnames[host][k], FO_NAME_MAX, "%s", name);
	struct fo_vm *vm = &v->vms[host][k];
	vm->uuid = v->uuids[host][k];
	vm->name = v->vnames[host][k];
	vm->priority = prio;
	vm->vcpus = vcpus;
	vm->memory_kib = mem_gib * GIB;
	vm->epoch = 5;
	vm->group = group;
	vm->running = true;
	v->hosts[host].cap.vcpus_allocated += vcpus;
	v->hosts[host].cap.memory_allocated_kib += mem_gib * GIB;
	return vm;
}

static void view_feed(struct net *t, struct view *v, int only)
{
	for (int i = 0; i < t->count; i++) {
		v->hosts[i].vms = v->vms[i];
		v->hosts[i].n_vms = v->n_vms[i];
	}
	for (int i = 0; i < t->count; i++)
		if (only < 0 || only == i)
			fo_set_hosts(t->n[i].f, v->hosts, (size_t)t->count);
}

/* Four VMs on n0; room for everything elsewhere. */
static void standard_view(struct net *t, struct view *v)
{
	view_init(v, t->count, 16, 64);
	view_vm(v, 0, "db", 100, 2, 4, NULL);
	view_vm(v, 0, "web1", 50, 1, 2, "web");
	view_vm(v, 0, "web2", 50, 1, 2, "web");
	view_vm(v, 0, "batch", 0, 1, 1, NULL);
	view_feed(t, v, -1);
}

/* Answers every unanswered RESTART event of node i. */
static size_t answer_restarts(struct net *t, int i, bool ok, const char *why)
{
	struct node *n = &t->n[i];
	size_t answered = 0, end = n->n_ev;
	while (n->restarts_seen < end) {
		const struct fo_event *e = &n->ev[n->restarts_seen++];
		if (e->type != FO_EV_RESTART)
			continue;
		struct fo_instance_id id = e->inst;
		char uuid[FO_UUID_MAX];
		snprintf(uuid, sizeof(uuid), "%s", e->entry.uuid);
		fo_restart_done(n->f, &id, uuid, ok, why, t->now);
		answered++;
		drain_events(t); /* may grow n->ev */
	}
	pump(t);
	return answered;
}

static void fast_cfg(struct fo_config *c, int i)
{
	(void)i;
	c->max_parallel = 8;
}

/* ---- quorum ----------------------------------------------------------------- */

static void ack_to(struct fo *f, const char *from, const char *to, uint64_t stamp, uint64_t now)
{
	struct fo_msg m;
	memset(&m, 0, sizeof(m));
	m.type = FO_HB_ACK;
	snprintf(m.from, sizeof(m.from), "%s", from);
	snprintf(m.to, sizeof(m.to), "%s", to);
	m.stamp = stamp;
	m.age_ms = 1000000; /* an old acker: counted */
	assert_int_equal(fo_handle_message(f, &m, now), 0);
}

static void ack(struct fo *f, const char *from, uint64_t stamp, uint64_t now)
{
	ack_to(f, from, "n0", stamp, now);
}

static struct fo *solo(bool expect_cluster, uint64_t now)
{
	struct fo_config c;
	cfg_for(&c, 0);
	c.expect_cluster = expect_cluster;
	struct fo *f = fo_new(&c, now);
	assert_non_null(f);
	return f;
}

static void drop_all(struct fo *f)
{
	struct fo_msg m;
	while (fo_pop_output(f, &m))
		fo_msg_clear(&m);
	struct fo_event e;
	while (fo_pop_event(f, &e))
		fo_event_clear(&e);
}

static void test_quorum_math(void **state)
{
	(void)state;
	/* 1 voter */
	struct fo *f = solo(false, 1000);
	assert_int_equal(fo_voters(f), 1);
	assert_int_equal(fo_majority(f), 1);
	assert_true(fo_quorate(f, 1000));
	assert_true(fo_quorate(f, 1000000));
	assert_int_equal(fo_acknowledged(f, 1000), 1);
	fo_handle_timer(f, 1000000);
	assert_false(fo_fenced(f));
	drop_all(f);
	fo_free(f);

	/* expect_cluster alone: never quorate, fences F after start */
	f = solo(true, 1000);
	assert_false(fo_quorate(f, 1000));
	assert_int_equal(fo_next_deadline(f), 1000);
	fo_handle_timer(f, 1000);
	assert_true(fo_next_deadline(f) <= 11000);
	fo_handle_timer(f, 10999);
	assert_false(fo_fenced(f));
	fo_handle_timer(f, 11000);
	assert_true(fo_fenced(f));
	assert_false(fo_quorate(f, 11000));
	drop_all(f);
	fo_free(f);

	/* 2 voters: both needed */
	f = solo(false, 1000);
	fo_member(f, "n1", FO_ALIVE, 1, 1000);
	assert_int_equal(fo_voters(f), 2);
	assert_int_equal(fo_majority(f), 2);
	assert_false(fo_quorate(f, 1000));
	ack(f, "n1", 1000, 1010);
	assert_true(fo_quorate(f, 1010));
	assert_int_equal(fo_acknowledged(f, 1010), 2);
	assert_true(fo_quorate(f, 3999));
	assert_false(fo_quorate(f, 4000)); /* quorate_ms 3000 from the stamp */
	drop_all(f);
	fo_free(f);

	/* 3 voters: one ack is enough; 5 voters: two acks */
	f = solo(false, 1000);
	fo_member(f, "n1", FO_ALIVE, 1, 1000);
	fo_member(f, "n2", FO_ALIVE, 1, 1000);
	assert_int_equal(fo_majority(f), 2);
	ack(f, "n2", 1000, 1005);
	assert_true(fo_quorate(f, 1005));
	fo_member(f, "n3", FO_ALIVE, 1, 1005);
	fo_member(f, "n4", FO_ALIVE, 1, 1005);
	assert_int_equal(fo_voters(f), 5);
	assert_int_equal(fo_majority(f), 3);
	assert_false(fo_quorate(f, 1005));
	ack(f, "n4", 900, 1006);
	assert_true(fo_quorate(f, 1006));
	assert_true(fo_quorate(f, 3899));
	assert_false(fo_quorate(f, 3900)); /* the 2nd highest stamp (900) rules */
	ack(f, "n3", 2000, 2001);
	assert_true(fo_quorate(f, 3900));
	assert_int_equal(fo_acknowledged(f, 3900), 3); /* n2's 1000 is stale at 4000 */
	/* a stamp from the future is not believed */
	ack(f, "n1", 999999, 3901);
	assert_int_equal(fo_acknowledged(f, 3901), 3);
	/* dead voters still count in the majority; LEFT ones do not */
	fo_member(f, "n4", FO_DEAD, 1, 3902);
	assert_int_equal(fo_voters(f), 5);
	fo_member(f, "n4", FO_LEFT, 2, 3903);
	assert_int_equal(fo_voters(f), 4);
	assert_int_equal(fo_majority(f), 3);
	drop_all(f);
	fo_free(f);
}

/* n0 is cut off from everyone: it loses quorum and fences itself once. */
static void test_self_fence_once(void **state)
{
	(void)state;
	struct net *t = net_new(3, NULL);
	run_until(t, t->now + 5000);
	for (int i = 0; i < 3; i++) {
		assert_true(fo_quorate(t->n[i].f, t->now));
		/* formed at once: no LOST, hence no REGAINED */
		assert_int_equal(count_ev(&t->n[i], FO_EV_QUORUM_REGAINED), 0);
		assert_int_equal(count_ev(&t->n[i], FO_EV_QUORUM_LOST), 0);
	}
	uint64_t cut_at = t->now; /* the last acknowledged heartbeat went out now */
	for (int j = 1; j < 3; j++)
		t->cut[0][j] = t->cut[j][0] = true;
	run_until(t, cut_at + 3000);
	assert_false(fo_quorate(t->n[0].f, t->now));
	/* the event waits 2 heartbeats without quorum */
	run_until(t, cut_at + 4999);
	assert_int_equal(count_ev(&t->n[0], FO_EV_QUORUM_LOST), 0);
	run_until(t, cut_at + 5000);
	assert_int_equal(count_ev(&t->n[0], FO_EV_QUORUM_LOST), 1);
	assert_non_null(strstr(find_ev(&t->n[0], FO_EV_QUORUM_LOST, 0)->text,
	                       "1 of 3 voters acknowledged us within 3000 ms; need 2"));
	run_until(t, cut_at + 9000);
	assert_false(fo_quorate(t->n[0].f, t->now));
	assert_int_equal(count_ev(&t->n[0], FO_EV_QUORUM_LOST), 1);
	assert_int_equal(count_ev(&t->n[0], FO_EV_FENCE_SELF), 0);
	run_until(t, cut_at + 10000 - 1);
	assert_int_equal(count_ev(&t->n[0], FO_EV_FENCE_SELF), 0);
	run_until(t, cut_at + 10000); /* F after the last acknowledged stamp */
	assert_int_equal(count_ev(&t->n[0], FO_EV_FENCE_SELF), 1);
	const struct fo_event *e = find_ev(&t->n[0], FO_EV_FENCE_SELF, 0);
	assert_non_null(strstr(e->text, "no majority acknowledged us for 10000 ms"));
	assert_true(fo_fenced(t->n[0].f));
	run_until(t, t->now + 60000);
	assert_int_equal(count_ev(&t->n[0], FO_EV_FENCE_SELF), 1);
	assert_int_equal(count_ev(&t->n[0], FO_EV_QUORUM_LOST), 1);
	/* the majority side kept its quorum */
	assert_true(fo_quorate(t->n[1].f, t->now));
	assert_int_equal(count_ev(&t->n[1], FO_EV_FENCE_SELF), 0);
	/* healed: quorum is back and the fenced flag clears; a new loss fences again */
	for (int j = 1; j < 3; j++)
		t->cut[0][j] = t->cut[j][0] = false;
	run_until(t, t->now + 2000);
	assert_true(fo_quorate(t->n[0].f, t->now));
	assert_false(fo_fenced(t->n[0].f));
	assert_int_equal(count_ev(&t->n[0], FO_EV_QUORUM_REGAINED), 1);
	t->n[1].down = t->n[2].down = true;
	run_until(t, t->now + 15000);
	assert_int_equal(count_ev(&t->n[0], FO_EV_FENCE_SELF), 2);
	net_free(t);
}

static void hb(struct fo *f, const char *from, const char *to, uint64_t inc, uint64_t stamp,
               uint64_t fenced_through, uint64_t now)
{
	struct fo_msg m;
	memset(&m, 0, sizeof(m));
	m.type = FO_HEARTBEAT;
	snprintf(m.from, sizeof(m.from), "%s", from);
	snprintf(m.to, sizeof(m.to), "%s", to);
	m.incarnation = inc;
	m.stamp = stamp;
	m.fenced_through = fenced_through;
	assert_int_equal(fo_handle_message(f, &m, now), 0);
}

static bool pop_type(struct fo *f, enum fo_msg_type ty, struct fo_msg *out)
{
	struct fo_msg m;
	bool found = false;
	while (fo_pop_output(f, &m)) {
		if (!found && m.type == ty) {
			*out = m;
			found = true;
		} else {
			fo_msg_clear(&m);
		}
	}
	return found;
}

/* A host considered dead (or with a failover pending) gets no ack. */
static void test_acks_refused_for_dead(void **state)
{
	(void)state;
	struct fo_config c;
	cfg_for(&c, 1);
	struct fo *r = fo_new(&c, 1000);
	fo_member(r, "n0", FO_ALIVE, 1, 1000);
	fo_member(r, "n2", FO_ALIVE, 1, 1000);
	drop_all(r);
	struct fo_msg m;
	hb(r, "n0", "n1", 1, 1000, 0, 1001);
	assert_true(pop_type(r, FO_HB_ACK, &m));
	assert_int_equal(m.stamp, 1000);
	fo_msg_clear(&m);
	/* an unknown sender is not a voter here */
	hb(r, "zz", "n1", 1, 1000, 0, 1001);
	assert_true(pop_type(r, FO_HB_NACK, &m));
	assert_non_null(strstr(m.text, "not a voter"));
	fo_msg_clear(&m);
	/* dead at incarnation 1 */
	fo_member(r, "n0", FO_DEAD, 1, 1002);
	drop_all(r);
	hb(r, "n0", "n1", 1, 1003, 0, 1003);
	assert_true(pop_type(r, FO_HB_NACK, &m));
	assert_non_null(strstr(m.text, "dead to me"));
	assert_string_equal(m.inst.dead, "n0");
	assert_int_equal(m.inst.incarnation, 1);
	fo_msg_clear(&m);
	/* refuted (incarnation 2): still no ack while failover 1 is not fenced */
	fo_member(r, "n0", FO_ALIVE, 2, 1004);
	drop_all(r);
	hb(r, "n0", "n1", 2, 1005, 0, 1005);
	assert_true(pop_type(r, FO_HB_NACK, &m));
	assert_non_null(strstr(m.text, "pending"));
	assert_int_equal(m.inst.incarnation, 1);
	fo_msg_clear(&m);
	/* once it reports fenced_through >= 1 it is acknowledged again */
	hb(r, "n0", "n1", 2, 1006, 1, 1006);
	assert_true(pop_type(r, FO_HB_ACK, &m));
	fo_msg_clear(&m);
	fo_free(r);
}

/* n0 is cut off while the others choose a plan; when it comes back its
 * heartbeat is answered with FENCE_ORDER, it destroys the VMs, reports
 * fenced_through and is acknowledged again. */
static void test_fence_order(void **state)
{
	(void)state;
	struct net *t = net_new(3, NULL);
	struct view v;
	standard_view(t, &v);
	run_until(t, t->now + 2000);
	for (int j = 1; j < 3; j++)
		t->cut[0][j] = t->cut[j][0] = true;
	run_until(t, t->now + 1000);
	declare_dead(t, 0, 1);
	run_until(t, t->now + 3000);
	struct fo_instance_id id = {.dead = "n0", .incarnation = 1, .round = 0};
	const struct fo_plan *p1, *p2;
	assert_true(fo_chosen_plan(t->n[1].f, &id, &p1));
	assert_true(fo_chosen_plan(t->n[2].f, &id, &p2));
	assert_true(fo_plan_equal(p1, p2));
	assert_int_equal(p1->n, 4);
	assert_int_equal(count_ev(&t->n[0], FO_EV_FENCE_VMS), 0);
	/* n0 refutes and the link heals */
	fo_set_incarnation(t->n[0].f, 2);
	fo_member(t->n[1].f, "n0", FO_ALIVE, 2, t->now);
	fo_member(t->n[2].f, "n0", FO_ALIVE, 2, t->now);
	for (int j = 1; j < 3; j++)
		t->cut[0][j] = t->cut[j][0] = false;
	size_t orders = t->sent[FO_FENCE_ORDER];
	run_until(t, t->now + 1000);
	assert_true(t->sent[FO_FENCE_ORDER] > orders);
	assert_int_equal(count_ev(&t->n[0], FO_EV_FENCE_VMS), 1);
	const struct fo_event *e = find_ev(&t->n[0], FO_EV_FENCE_VMS, 0);
	assert_true(fo_plan_equal(&e->plan, p1));
	assert_int_equal(e->inst.incarnation, 1);
	/* the fence is confirmed to the others (FENCED from the host itself) */
	assert_true(t->sent[FO_FENCED] >= 2);
	assert_int_equal(count_ev(&t->n[1], FO_EV_FENCE_CONFIRMED), 1);
	assert_non_null(strstr(find_ev(&t->n[1], FO_EV_FENCE_CONFIRMED, 0)->text, "host itself"));
	orders = t->sent[FO_FENCE_ORDER];
	run_until(t, t->now + 3000);
	assert_int_equal(t->sent[FO_FENCE_ORDER], orders); /* fenced_through clears it */
	assert_true(fo_quorate(t->n[0].f, t->now));
	assert_int_equal(count_ev(&t->n[0], FO_EV_FENCE_VMS), 1);
	net_free(t);
}

/* ---- force-leave -------------------------------------------------------------- */

static void test_force_leave(void **state)
{
	(void)state;
	struct net *t = net_new(5, NULL);
	run_until(t, t->now + 2000);
	assert_int_equal(fo_force_leave(t->n[1].f, "n1", t->now), -EINVAL);
	assert_int_equal(fo_force_leave(t->n[1].f, "nope", t->now), -ENOENT);
	assert_int_equal(fo_force_leave(t->n[1].f, "n3", t->now), -EBUSY);
	assert_int_equal(fo_force_leave(t->n[1].f, NULL, t->now), -EINVAL);
	/* n3 and n4 die: 3 of 5 remain, still a majority */
	t->n[3].down = t->n[4].down = true;
	declare_dead(t, 3, 1);
	declare_dead(t, 4, 1);
	assert_int_equal(fo_majority(t->n[1].f), 3);
	/* n2 dies too: 2 of 5, no majority */
	t->n[2].down = true;
	fo_member(t->n[0].f, "n2", FO_DEAD, 1, t->now);
	fo_member(t->n[1].f, "n2", FO_DEAD, 1, t->now);
	run_until(t, t->now + 5000);
	assert_false(fo_quorate(t->n[1].f, t->now));
	/* the operator removes n3, n4 on n1: 3 voters, majority 2 */
	assert_int_equal(fo_force_leave(t->n[1].f, "n3", t->now), 0);
	assert_int_equal(fo_force_leave(t->n[1].f, "n4", t->now), 0);
	assert_int_equal(fo_voters(t->n[1].f), 3);
	/* n0 still reports 5 voters in its heartbeats: n1 counts majorities
	 * over 5 until the removal has spread */
	assert_int_equal(fo_majority(t->n[1].f), 3);
	assert_int_equal(count_ev(&t->n[1], FO_EV_MEMBER_REMOVED), 0);
	drain_events(t);
	assert_int_equal(count_ev(&t->n[1], FO_EV_MEMBER_REMOVED), 2);
	/* spread: n0 learns the removals from n1's heartbeats */
	run_until(t, t->now + 2000);
	assert_int_equal(fo_voters(t->n[0].f), 3);
	assert_int_equal(fo_majority(t->n[0].f), 2);
	assert_int_equal(fo_majority(t->n[1].f), 2);
	assert_int_equal(count_ev(&t->n[0], FO_EV_MEMBER_REMOVED), 2);
	assert_true(fo_quorate(t->n[0].f, t->now));
	assert_true(fo_quorate(t->n[1].f, t->now));
	/* idempotent; a removed member back at a higher incarnation votes again */
	assert_int_equal(fo_force_leave(t->n[1].f, "n3", t->now), 0);
	fo_member(t->n[1].f, "n3", FO_ALIVE, 1, t->now);
	assert_int_equal(fo_voters(t->n[1].f), 3);
	fo_member(t->n[1].f, "n3", FO_ALIVE, 2, t->now);
	assert_int_equal(fo_voters(t->n[1].f), 4);
	net_free(t);
}

/* ---- consensus ------------------------------------------------------------------ */

static void check_single_plan(struct net *t, int dead, uint64_t inc, uint32_t round,
                              const struct fo_plan **out)
{
	struct fo_instance_id id = {.incarnation = inc, .round = round};
	snprintf(id.dead, sizeof(id.dead), "%s", names[dead]);
	const struct fo_plan *first = NULL;
	for (int i = 0; i < t->count; i++) {
		if (i == dead || t->n[i].down)
			continue;
		const struct fo_plan *p;
		assert_true(fo_chosen_plan(t->n[i].f, &id, &p));
		if (!first)
			first = p;
		assert_true(fo_plan_equal(first, p));
		size_t chosen = 0;
		for (size_t k = 0; k < t->n[i].n_ev; k++)
			chosen += t->n[i].ev[k].type == FO_EV_CHOSEN &&
			          strcmp(t->n[i].ev[k].inst.dead, names[dead]) == 0;
		assert_int_equal(chosen, round + 1);
	}
	if (out)
		*out = first;
}

static void exchange(int count)
{
	struct net *t = net_new(count, fast_cfg);
	struct view v;
	standard_view(t, &v);
	run_until(t, t->now + 2000);
	t->n[0].down = true;
	run_until(t, t->now + 1500);
	uint64_t det = t->now;
	declare_dead(t, 0, 1);
	run_until(t, det + 2000);
	const struct fo_plan *p;
	check_single_plan(t, 0, 1, 0, &p);
	assert_int_equal(p->n, 4);
	/* priority order; anti-affinity splits web1 and web2; epochs bumped */
	assert_string_equal(p->entries[0].name, "db");
	assert_string_equal(p->entries[3].name, "batch");
	assert_string_not_equal(p->entries[1].target, p->entries[2].target);
	for (size_t e = 0; e < p->n; e++) {
		assert_int_equal(p->entries[e].new_epoch, 6);
		assert_string_not_equal(p->entries[e].target, "n0");
		assert_true(p->entries[e].target[0]);
	}
	/* exactly one coordinator asked for a remote fence */
	size_t rf = 0;
	for (int i = 1; i < count; i++)
		rf += count_ev(&t->n[i], FO_EV_REMOTE_FENCE);
	assert_int_equal(rf, 1);
	/* nobody restarts before F + margin without a confirmed fence */
	size_t restarts = 0;
	for (int i = 1; i < count; i++)
		restarts += count_ev(&t->n[i], FO_EV_RESTART);
	assert_int_equal(restarts, 0);
	run_until(t, det + 12999);
	for (int i = 1; i < count; i++)
		restarts += count_ev(&t->n[i], FO_EV_RESTART);
	assert_int_equal(restarts, 0);
	run_until(t, det + 16000);
	for (int i = 1; i < count; i++) {
		restarts += count_ev(&t->n[i], FO_EV_RESTART);
		answer_restarts(t, i, true, NULL);
	}
	assert_int_equal(restarts, 4);
	run_until(t, t->now + 1000);
	for (int i = 1; i < count; i++) {
		struct fo_instance_info info;
		assert_int_equal(fo_instance_count(t->n[i].f), 1);
		fo_instance_at(t->n[i].f, 0, &info);
		assert_int_equal(info.phase, FO_PH_DONE);
		assert_int_equal(info.n_vms, 4);
		assert_int_equal(info.n_restarted, 4);
		assert_non_null(strstr(info.fence_how, "waited"));
		assert_true(info.detected_at == det);
	}
	net_free(t);
}

static void test_exchange_3(void **state)
{
	(void)state;
	exchange(3);
}

static void test_exchange_5(void **state)
{
	(void)state;
	exchange(5);
}

/* The first node to propose in a 5-node cluster is the top-ranked one. */
static int top_coordinator(void)
{
	struct net *t = net_new(5, NULL);
	struct view v;
	standard_view(t, &v);
	run_until(t, t->now + 2000);
	t->n[0].down = true;
	declare_dead(t, 0, 1);
	int top = -1;
	for (int i = 1; i < 5; i++)
		if (count_ev(&t->n[i], FO_EV_PROPOSING)) {
			assert_int_equal(top, -1);
			top = i;
		}
	assert_true(top > 0);
	net_free(t);
	return top;
}

static bool drop_accepted_to_top;
static int top_node;

static bool filter_accepted(struct net *t, int from, int to, const struct fo_msg *m)
{
	(void)t;
	(void)from;
	return drop_accepted_to_top && to == top_node &&
	       (m->type == FO_ACCEPTED || m->type == FO_CHOSEN);
}

/* The top coordinator gets its value accepted by a majority but never
 * learns it and dies; the next one, with a different view of the cluster,
 * must adopt the accepted value (Paxos safety). */
static void test_competing_proposer_adopts(void **state)
{
	(void)state;
	top_node = top_coordinator();
	struct net *t = net_new(5, NULL);
	struct view v;
	standard_view(t, &v);
	run_until(t, t->now + 2000);
	t->n[0].down = true;
	t->filter = filter_accepted;
	drop_accepted_to_top = true;
	declare_dead(t, 0, 1);
	assert_int_equal(count_ev(&t->n[top_node], FO_EV_PROPOSING), 1);
	/* the others accepted, nobody learned */
	struct fo_instance_id id = {.dead = "n0", .incarnation = 1};
	for (int i = 1; i < 5; i++)
		assert_false(fo_chosen_plan(t->n[i].f, &id, NULL));
	/* record the accepted value: the top's view */
	struct fo_plan accepted = {0};
	for (size_t k = 0; k < t->n[top_node].n_ev; k++)
		if (t->n[top_node].ev[k].type == FO_EV_PROPOSING)
			break;
	/* the top dies; the others now see a different cluster (n-other full) */
	t->n[top_node].down = true;
	struct view v2;
	standard_view(t, &v2);
	for (int i = 1; i < 5; i++)
		v2.hosts[i].cap.memory_allocated_kib = 60 * GIB; /* no room anywhere */
	view_feed(t, &v2, -1);
	for (int i = 1; i < 5; i++)
		if (i != top_node)
			fo_member(t->n[i].f, names[top_node], FO_DEAD, 1, t->now);
	run_until(t, t->now + 10000);
	const struct fo_plan *p = NULL;
	int proposers = 0;
	for (int i = 1; i < 5; i++) {
		if (i == top_node)
			continue;
		proposers += count_ev(&t->n[i], FO_EV_PROPOSING) > 0;
		const struct fo_plan *q;
		assert_true(fo_chosen_plan(t->n[i].f, &id, &q));
		if (p)
			assert_true(fo_plan_equal(p, q));
		p = q;
	}
	assert_true(proposers >= 1);
	/* the chosen plan has targets: it is the top's (accepted) value, not the
	 * "no room" plan the new coordinator would compute itself */
	assert_int_equal(p->n, 4);
	for (size_t e = 0; e < p->n; e++)
		assert_true(p->entries[e].target[0]);
	(void)accepted;
	net_free(t);
}

/* The top-ranked coordinator is silent: the next one takes over one step
 * later; when the top is declared dead the next moves up at once. */
static void test_coordinator_takeover(void **state)
{
	(void)state;
	int top = top_coordinator();
	struct net *t = net_new(5, NULL);
	struct view v;
	standard_view(t, &v);
	run_until(t, t->now + 2000);
	t->n[0].down = true;
	t->n[top].down = true;
	uint64_t det = t->now;
	declare_dead(t, 0, 1);
	run_until(t, det + 2999);
	for (int i = 1; i < 5; i++)
		assert_int_equal(count_ev(&t->n[i], FO_EV_PROPOSING), 0);
	run_until(t, det + 3000);
	int second = -1;
	for (int i = 1; i < 5; i++)
		if (count_ev(&t->n[i], FO_EV_PROPOSING)) {
			assert_int_equal(second, -1);
			second = i;
		}
	assert_true(second > 0 && second != top);
	run_until(t, det + 4000);
	check_single_plan(t, 0, 1, 0, NULL);
	net_free(t);

	/* the top is declared dead before its turn ends: the next moves up */
	t = net_new(5, NULL);
	standard_view(t, &v);
	run_until(t, t->now + 2000);
	t->n[0].down = true;
	t->n[top].down = true;
	det = t->now;
	declare_dead(t, 0, 1);
	run_until(t, det + 1000);
	for (int i = 1; i < 5; i++)
		if (i != top)
			fo_member(t->n[i].f, names[top], FO_DEAD, 1, t->now);
	pump(t);
	size_t props = 0;
	for (int i = 1; i < 5; i++)
		for (size_t k = 0; k < t->n[i].n_ev; k++) {
			const struct fo_event *e = &t->n[i].ev[k];
			if (e->type == FO_EV_PROPOSING && strcmp(e->inst.dead, "n0") == 0) {
				props++;
			}
		}
	assert_int_equal(props, 1);
	run_until(t, det + 2000);
	check_single_plan(t, 0, 1, 0, NULL);
	net_free(t);
}

static void prepare_msg(struct fo_msg *m, const char *from, const char *to, uint64_t n,
                        uint64_t age)
{
	memset(m, 0, sizeof(*m));
	m->type = FO_PREPARE;
	snprintf(m->from, sizeof(m->from), "%s", from);
	snprintf(m->to, sizeof(m->to), "%s", to);
	snprintf(m->inst.dead, sizeof(m->inst.dead), "n0");
	m->inst.incarnation = 1;
	m->ballot.number = n;
	snprintf(m->ballot.proposer, sizeof(m->ballot.proposer), "%s", from);
	m->age_ms = age;
}

/* An acceptor that does not consider the host dead refuses; a young one
 * refuses an older instance; the host itself refuses. */
static void test_acceptor_refusals(void **state)
{
	(void)state;
	struct fo_config c;
	cfg_for(&c, 1);
	struct fo *a = fo_new(&c, 50000);
	fo_member(a, "n0", FO_ALIVE, 1, 50000);
	fo_member(a, "n2", FO_ALIVE, 1, 50000);
	drop_all(a);
	struct fo_msg m, r;
	prepare_msg(&m, "n2", "n1", 1, 0);
	assert_int_equal(fo_handle_message(a, &m, 60000), 0);
	assert_true(pop_type(a, FO_REJECT, &r));
	assert_non_null(strstr(r.text, "not dead"));
	assert_int_equal(r.ballot.number, 0);
	fo_msg_clear(&r);
	/* dead now: promise; a lower ballot then gets REJECT with the promise */
	fo_member(a, "n0", FO_DEAD, 1, 60000);
	drop_all(a);
	prepare_msg(&m, "n2", "n1", 5, 100);
	assert_int_equal(fo_handle_message(a, &m, 60001), 0);
	assert_true(pop_type(a, FO_PROMISE, &r));
	assert_int_equal(r.ballot.number, 5);
	assert_int_equal(r.accepted_ballot.number, 0);
	assert_false(r.has_plan);
	fo_msg_clear(&r);
	prepare_msg(&m, "n2", "n1", 4, 100);
	assert_int_equal(fo_handle_message(a, &m, 60002), 0);
	assert_true(pop_type(a, FO_REJECT, &r));
	assert_int_equal(r.ballot.number, 5);
	fo_msg_clear(&r);
	/* young acceptor: started at 50000, asked about an instance 20 s old */
	prepare_msg(&m, "n2", "n1", 9, 20000);
	assert_int_equal(fo_handle_message(a, &m, 60003), 0);
	assert_true(pop_type(a, FO_REJECT, &r));
	assert_non_null(strstr(r.text, "younger"));
	fo_msg_clear(&r);
	fo_free(a);

	/* the host itself never votes on its own failover */
	cfg_for(&c, 0);
	a = fo_new(&c, 1000);
	fo_member(a, "n2", FO_ALIVE, 1, 1000);
	drop_all(a);
	prepare_msg(&m, "n2", "n0", 1, 0);
	assert_int_equal(fo_handle_message(a, &m, 2000), 0);
	assert_true(pop_type(a, FO_REJECT, &r));
	fo_msg_clear(&r);
	fo_free(a);
}

/* ---- fence, restart, hand back -------------------------------------------------- */

/* Everything goes to n1: only it has room (n2 is a witness). */
static void one_target_cfg(struct fo_config *c, int i)
{
	c->max_parallel = 2;
	c->witness = i == 2;
}

static void test_restart_order_parallel(void **state)
{
	(void)state;
	struct net *t = net_new(3, one_target_cfg);
	struct view v;
	view_init(&v, 3, 64, 256);
	v.hosts[2].witness = true;
	view_vm(&v, 0, "p10", 10, 1, 1, NULL);
	view_vm(&v, 0, "p90", 90, 1, 1, NULL);
	view_vm(&v, 0, "p50", 50, 1, 1, NULL);
	view_vm(&v, 0, "p70a", 70, 1, 1, NULL);
	view_vm(&v, 0, "p70b", 70, 1, 1, NULL);
	view_feed(t, &v, -1);
	run_until(t, t->now + 2000);
	t->n[0].down = true;
	uint64_t det = t->now;
	declare_dead(t, 0, 1);
	run_until(t, det + 1000);
	const struct fo_plan *p;
	check_single_plan(t, 0, 1, 0, &p);
	for (size_t e = 0; e < p->n; e++)
		assert_string_equal(p->entries[e].target, "n1");
	assert_int_equal(count_ev(&t->n[1], FO_EV_RESTART), 0);
	struct fo_instance_info info;
	fo_instance_at(t->n[1].f, 0, &info);
	assert_int_equal(info.phase, FO_PH_CHOSEN);
	/* fence wait: F + margin from learning the plan */
	uint64_t learned = find_ev(&t->n[1], FO_EV_CHOSEN, 0) ? det : 0;
	run_until(t, learned + 13000 - 1);
	assert_int_equal(count_ev(&t->n[1], FO_EV_RESTART), 0);
	run_until(t, learned + 13000);
	assert_int_equal(count_ev(&t->n[1], FO_EV_FENCE_CONFIRMED), 1);
	assert_int_equal(count_ev(&t->n[1], FO_EV_RESTART), 2); /* max_parallel */
	assert_string_equal(find_ev(&t->n[1], FO_EV_RESTART, 0)->entry.name, "p90");
	assert_string_equal(find_ev(&t->n[1], FO_EV_RESTART, 1)->entry.name, "p70a");
	fo_instance_at(t->n[1].f, 0, &info);
	assert_int_equal(info.phase, FO_PH_FENCED);
	run_until(t, t->now + 5000);
	assert_int_equal(count_ev(&t->n[1], FO_EV_RESTART), 2);
	answer_restarts(t, 1, true, NULL);
	assert_int_equal(count_ev(&t->n[1], FO_EV_RESTART), 4);
	assert_string_equal(find_ev(&t->n[1], FO_EV_RESTART, 2)->entry.name, "p70b");
	assert_string_equal(find_ev(&t->n[1], FO_EV_RESTART, 3)->entry.name, "p50");
	assert_int_equal(count_ev(&t->n[1], FO_EV_RESTARTED), 2);
	assert_int_equal(find_ev(&t->n[1], FO_EV_RESTARTED, 0)->took_ms, t->now - learned);
	answer_restarts(t, 1, true, NULL);
	answer_restarts(t, 1, true, NULL);
	assert_int_equal(count_ev(&t->n[1], FO_EV_RESTART), 5);
	assert_string_equal(find_ev(&t->n[1], FO_EV_RESTART, 4)->entry.name, "p10");
	/* the witness never restarts anything; the others learn the outcomes,
	 * report them as events and record the fence too */
	assert_int_equal(count_ev(&t->n[2], FO_EV_RESTART), 0);
	assert_int_equal(count_ev(&t->n[2], FO_EV_RESTARTED), 5);
	assert_string_equal(find_ev(&t->n[2], FO_EV_RESTARTED, 0)->peer, "n1");
	assert_string_equal(find_ev(&t->n[2], FO_EV_RESTARTED, 0)->entry.name, "p90");
	assert_int_equal(count_ev(&t->n[2], FO_EV_FENCE_CONFIRMED), 1);
	fo_instance_at(t->n[2].f, 0, &info);
	assert_int_equal(info.n_restarted, 5);
	assert_int_equal(info.phase, FO_PH_DONE);
	assert_int_equal(info.fenced_at, learned + 13000);
	assert_non_null(strstr(info.fence_how, "waited"));
	net_free(t);
}

/* A remote fence confirmed by the coordinator starts restarts at once. */
static void test_remote_fence(void **state)
{
	(void)state;
	struct net *t = net_new(3, fast_cfg);
	struct view v;
	standard_view(t, &v);
	run_until(t, t->now + 2000);
	t->n[0].down = true;
	declare_dead(t, 0, 1);
	run_until(t, t->now + 500);
	int coord = count_ev(&t->n[1], FO_EV_REMOTE_FENCE) ? 1 : 2;
	assert_int_equal(count_ev(&t->n[coord], FO_EV_REMOTE_FENCE), 1);
	assert_int_equal(count_ev(&t->n[3 - coord], FO_EV_REMOTE_FENCE), 0);
	struct fo_instance_id id = find_ev(&t->n[coord], FO_EV_REMOTE_FENCE, 0)->inst;
	assert_string_equal(id.dead, "n0");
	/* a failed remote fence changes nothing */
	fo_remote_fence_done(t->n[coord].f, &id, false, "unreachable", t->now);
	pump(t);
	assert_int_equal(count_ev(&t->n[1], FO_EV_RESTART) + count_ev(&t->n[2], FO_EV_RESTART), 0);
	fo_remote_fence_done(t->n[coord].f, &id, true, "virDomainDestroy ok", t->now);
	pump(t);
	for (int i = 1; i < 3; i++) {
		assert_int_equal(count_ev(&t->n[i], FO_EV_FENCE_CONFIRMED), 1);
		assert_non_null(strstr(find_ev(&t->n[i], FO_EV_FENCE_CONFIRMED, 0)->text, "libvirt"));
		struct fo_instance_info info;
		fo_instance_at(t->n[i].f, 0, &info);
		assert_int_equal(info.phase, FO_PH_FENCED);
		assert_int_equal(info.fenced_at, t->now);
	}
	assert_int_equal(count_ev(&t->n[1], FO_EV_RESTART) + count_ev(&t->n[2], FO_EV_RESTART), 4);
	/* no further fence-wait confirmation later */
	answer_restarts(t, 1, true, NULL);
	answer_restarts(t, 2, true, NULL);
	run_until(t, t->now + 20000);
	for (int i = 1; i < 3; i++)
		assert_int_equal(count_ev(&t->n[i], FO_EV_FENCE_CONFIRMED), 1);
	net_free(t);
}

static void handback_cfg(struct fo_config *c, int i)
{
	(void)i;
	c->max_parallel = 8;
	c->restart_attempts = 3;
	c->restart_backoff_ms = 1000;
}

/* n1 fails to start "db" 3 times (backoff 1 s, 2 s), hands it back; round 1
 * places it on another host with epoch + 2. */
static void test_handback(void **state)
{
	(void)state;
	struct net *t = net_new(4, handback_cfg);
	struct view v;
	view_init(&v, 4, 16, 64);
	view_vm(&v, 0, "db", 100, 2, 4, NULL);
	/* n1 has most room: it gets db in round 0 */
	v.hosts[2].cap.memory_allocated_kib = 20 * GIB;
	v.hosts[3].cap.memory_allocated_kib = 30 * GIB;
	view_feed(t, &v, -1);
	run_until(t, t->now + 2000);
	t->n[0].down = true;
	declare_dead(t, 0, 1);
	run_until(t, t->now + 1000);
	const struct fo_plan *p;
	check_single_plan(t, 0, 1, 0, &p);
	assert_string_equal(p->entries[0].target, "n1");
	assert_int_equal(p->entries[0].new_epoch, 6);
	struct fo_instance_id id = {.dead = "n0", .incarnation = 1};
	for (int i = 1; i < 4; i++) /* FENCED from anyone */
		if (count_ev(&t->n[i], FO_EV_REMOTE_FENCE)) {
			fo_remote_fence_done(t->n[i].f, &id, true, "ok", t->now);
			pump(t);
		}
	assert_int_equal(count_ev(&t->n[1], FO_EV_RESTART), 1);
	answer_restarts(t, 1, false, "no disk");
	assert_int_equal(count_ev(&t->n[1], FO_EV_RESTART_FAILED), 1);
	uint64_t failed = t->now;
	run_until(t, failed + 999);
	assert_int_equal(count_ev(&t->n[1], FO_EV_RESTART), 1);
	run_until(t, failed + 1000);
	assert_int_equal(count_ev(&t->n[1], FO_EV_RESTART), 2);
	answer_restarts(t, 1, false, "no disk");
	failed = t->now;
	run_until(t, failed + 1999);
	assert_int_equal(count_ev(&t->n[1], FO_EV_RESTART), 2);
	run_until(t, failed + 2000);
	assert_int_equal(count_ev(&t->n[1], FO_EV_RESTART), 3);
	answer_restarts(t, 1, false, "no disk");
	assert_int_equal(count_ev(&t->n[1], FO_EV_RESTART_FAILED), 3);
	assert_int_equal(count_ev(&t->n[1], FO_EV_HANDED_BACK), 1);
	run_until(t, t->now + 12000);
	const struct fo_plan *p1;
	check_single_plan(t, 0, 1, 1, &p1);
	assert_int_equal(p1->n, 1);
	assert_string_equal(p1->entries[0].name, "db");
	assert_string_not_equal(p1->entries[0].target, "n1");
	assert_string_not_equal(p1->entries[0].target, "n0");
	assert_int_equal(p1->entries[0].new_epoch, 7);
	int target = idx(p1->entries[0].target);
	/* round 1 needs no new fence */
	assert_int_equal(count_ev(&t->n[target], FO_EV_RESTART), 1);
	assert_int_equal(find_ev(&t->n[target], FO_EV_RESTART, 0)->inst.round, 1);
	answer_restarts(t, target, true, NULL);
	run_until(t, t->now + 1000);
	for (int i = 1; i < 4; i++) {
		struct fo_instance_info info;
		fo_instance_at(t->n[i].f, 0, &info);
		assert_int_equal(info.phase, FO_PH_DONE);
		assert_int_equal(info.n_restarted, 1);
		struct fo_vm_outcome o;
		fo_instance_vm_at(t->n[i].f, 0, 0, &o);
		assert_true(o.ok && o.done);
		assert_string_equal(o.entry.target, names[target]);
	}
	net_free(t);
}

/* ---- planning ---------------------------------------------------------------------- */

static struct fo_vm mkvm(const char *uuid, const char *name, int32_t prio, uint32_t vcpus,
                         uint64_t mem_gib, const char *group)
{
	struct fo_vm v = {.uuid = uuid, .name = name, .priority = prio, .vcpus = vcpus,
	                  .memory_kib = mem_gib * GIB, .epoch = 3, .group = group,
	                  .running = true};
	return v;
}

static struct fo_host mkhost(const char *name, uint32_t cpus, uint64_t mem_gib)
{
	struct fo_host h;
	memset(&h, 0, sizeof(h));
	h.cap.name = name;
	h.cap.alive = true;
	h.cap.healthy = true;
	h.cap.cpus = cpus;
	h.cap.cpu_overcommit = 1.0;
	h.cap.memory_kib = mem_gib * GIB;
	h.cap.memory_overcommit = 1.0;
	return h;
}

static void test_plan_compute(void **state)
{
	(void)state;
	struct fo_host h[7];
	h[0] = mkhost("dead", 64, 256);
	h[1] = mkhost("a", 8, 16);
	h[2] = mkhost("b", 8, 32);
	h[3] = mkhost("wit", 64, 256);
	h[3].witness = true;
	h[4] = mkhost("drain", 64, 256);
	h[4].cap.draining = true;
	h[5] = mkhost("sick", 64, 256);
	h[5].cap.healthy = false;
	h[6] = mkhost("gone", 64, 256);
	h[6].cap.alive = false;
	struct fo_vm g = mkvm("u-g", "g-on-a", 0, 1, 1, "grp");
	h[1].n_vms = 1;
	h[1].vms = &g;
	struct fo_vm vms[] = {
	    mkvm("u1", "low", 1, 1, 1, NULL),   mkvm("u2", "high", 9, 2, 8, NULL),
	    mkvm("u3", "mid-b", 5, 1, 4, NULL), mkvm("u4", "mid-a", 5, 1, 4, NULL),
	    mkvm("u5", "grp1", 3, 1, 1, "grp"), mkvm("u6", "huge", 2, 1, 100, NULL),
	    mkvm("u7", "grp2", 3, 1, 1, "grp"),
	};
	struct fo_plan p;
	assert_int_equal(fo_plan_compute(h, 7, "dead", vms, 7, 1, NULL, &p), 0);
	assert_int_equal(p.n, 7);
	const char *order[] = {"high", "mid-a", "mid-b", "grp1", "grp2", "huge", "low"};
	for (size_t i = 0; i < 7; i++)
		assert_string_equal(p.entries[i].name, order[i]);
	/* high (8 GiB) -> b (32 GiB has most left) */
	assert_string_equal(p.entries[0].target, "b");
	assert_int_equal(p.entries[0].new_epoch, 5); /* epoch 3 + 1 + round 1 */
	/* grp1 cannot go to a (runs g-on-a) -> b; grp2 then fits nowhere */
	assert_string_equal(p.entries[3].target, "b");
	assert_string_equal(p.entries[4].target, "");
	assert_string_equal(p.entries[4].group, "grp");
	/* huge: no room */
	assert_string_equal(p.entries[5].target, "");
	for (size_t i = 0; i < p.n; i++) {
		assert_string_not_equal(p.entries[i].target, "dead");
		assert_string_not_equal(p.entries[i].target, "wit");
		assert_string_not_equal(p.entries[i].target, "drain");
		assert_string_not_equal(p.entries[i].target, "sick");
		assert_string_not_equal(p.entries[i].target, "gone");
	}
	/* capacity taken by earlier entries: b 32 - 8 - 4 ... sums stay within */
	uint64_t on_a = 0, on_b = 0;
	for (size_t i = 0; i < p.n; i++) {
		if (!strcmp(p.entries[i].target, "a"))
			on_a += p.entries[i].memory_kib;
		if (!strcmp(p.entries[i].target, "b"))
			on_b += p.entries[i].memory_kib;
	}
	assert_true(on_a <= 16 * GIB && on_b <= 32 * GIB);
	struct fo_plan copy;
	assert_int_equal(fo_plan_copy(&copy, &p), 0);
	assert_true(fo_plan_equal(&copy, &p));
	copy.entries[0].new_epoch++;
	assert_false(fo_plan_equal(&copy, &p));
	fo_plan_clear(&copy);

	/* outstanding assignments count against their target: b is full */
	struct fo_plan_entry out_e;
	memset(&out_e, 0, sizeof(out_e));
	snprintf(out_e.target, sizeof(out_e.target), "b");
	out_e.memory_kib = 30 * GIB;
	out_e.vcpus = 1;
	snprintf(out_e.group, sizeof(out_e.group), "other");
	struct fo_plan outst = {.n = 1, .entries = &out_e};
	struct fo_plan p2;
	assert_int_equal(fo_plan_compute(h, 7, "dead", vms, 2, 0, &outst, &p2), 0);
	assert_string_equal(p2.entries[0].name, "high");
	assert_string_equal(p2.entries[0].target, "a");
	assert_int_equal(p2.entries[0].new_epoch, 4);
	fo_plan_clear(&p2);
	/* anti-affinity with an outstanding assignment of the group */
	snprintf(out_e.group, sizeof(out_e.group), "grp");
	out_e.memory_kib = 0;
	struct fo_vm gv = mkvm("u5", "grp1", 3, 1, 1, "grp");
	assert_int_equal(fo_plan_compute(h, 7, "dead", &gv, 1, 0, &outst, &p2), 0);
	assert_string_equal(p2.entries[0].target, ""); /* a runs g, b is promised one */
	fo_plan_clear(&p2);
	/* nothing to place; no hosts */
	assert_int_equal(fo_plan_compute(h, 7, "dead", vms, 0, 0, NULL, &p2), 0);
	assert_int_equal(p2.n, 0);
	assert_int_equal(fo_plan_compute(NULL, 0, "dead", vms, 1, 0, NULL, &p2), 0);
	assert_int_equal(p2.n, 1);
	assert_string_equal(p2.entries[0].target, "");
	fo_plan_clear(&p2);
	fo_plan_clear(&p);
}

/* ---- bad input ------------------------------------------------------------------------ */

static void base_msg(struct fo_msg *m, enum fo_msg_type ty)
{
	memset(m, 0, sizeof(*m));
	m->type = ty;
	snprintf(m->from, sizeof(m->from), "n2");
	snprintf(m->to, sizeof(m->to), "n1");
	snprintf(m->inst.dead, sizeof(m->inst.dead), "n0");
	m->inst.incarnation = 1;
	m->ballot.number = 1;
	snprintf(m->ballot.proposer, sizeof(m->ballot.proposer), "n2");
}

static void test_malformed(void **state)
{
	(void)state;
	struct fo_config c;
	cfg_for(&c, 1);
	struct fo *f = fo_new(&c, 1000);
	fo_member(f, "n0", FO_DEAD, 1, 1000);
	fo_member(f, "n2", FO_ALIVE, 1, 1000);
	struct fo_msg m;
	struct fo_plan_entry ent;
	memset(&ent, 0, sizeof(ent));
	assert_int_equal(fo_handle_message(f, NULL, 2000), -EINVAL);
	base_msg(&m, (enum fo_msg_type)FO_MSG_TYPES);
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	base_msg(&m, (enum fo_msg_type)-1);
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	base_msg(&m, FO_HEARTBEAT);
	memset(m.from, 'x', sizeof(m.from));
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	base_msg(&m, FO_HEARTBEAT);
	memset(m.to, 'x', sizeof(m.to));
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	base_msg(&m, FO_HEARTBEAT);
	snprintf(m.to, sizeof(m.to), "n3"); /* not for us */
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	base_msg(&m, FO_HEARTBEAT);
	m.from[0] = '\0';
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	base_msg(&m, FO_HEARTBEAT);
	snprintf(m.from, sizeof(m.from), "n1"); /* from ourselves */
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	base_msg(&m, FO_PREPARE);
	memset(m.inst.dead, 'd', sizeof(m.inst.dead));
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	base_msg(&m, FO_PREPARE);
	m.inst.dead[0] = '\0';
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	base_msg(&m, FO_PREPARE);
	m.inst.round = 99;
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	base_msg(&m, FO_PREPARE);
	memset(m.ballot.proposer, 'p', sizeof(m.ballot.proposer));
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	base_msg(&m, FO_PROMISE);
	memset(m.accepted_ballot.proposer, 'p', sizeof(m.accepted_ballot.proposer));
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	base_msg(&m, FO_RESTARTED);
	memset(m.vm_uuid, 'u', sizeof(m.vm_uuid));
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	base_msg(&m, FO_HB_NACK);
	memset(m.text, 't', sizeof(m.text));
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	/* removed list */
	struct fo_removed rem[2];
	memset(rem, 0, sizeof(rem));
	base_msg(&m, FO_HEARTBEAT);
	m.n_removed = FO_REMOVED_MAX + 1;
	m.removed = rem;
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	m.n_removed = 1;
	m.removed = NULL;
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	m.removed = rem;
	memset(rem[0].name, 'r', sizeof(rem[0].name));
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	/* plans */
	base_msg(&m, FO_ACCEPT);
	m.has_plan = true;
	m.plan.n = FO_PLAN_MAX + 1;
	m.plan.entries = &ent;
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	m.plan.n = 1;
	m.plan.entries = NULL;
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	m.plan.entries = &ent;
	memset(ent.uuid, 'u', sizeof(ent.uuid));
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	memset(&ent, 0, sizeof(ent));
	memset(ent.target, 't', sizeof(ent.target));
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	memset(&ent, 0, sizeof(ent));
	memset(ent.group, 'g', sizeof(ent.group));
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	memset(&ent, 0, sizeof(ent));
	memset(ent.name, 'n', sizeof(ent.name));
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	memset(&ent, 0, sizeof(ent));
	base_msg(&m, FO_CHOSEN); /* without a plan */
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	base_msg(&m, FO_ACCEPT);
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	base_msg(&m, FO_HEARTBEAT); /* a plan on any message is checked */
	m.plan.n = FO_PLAN_MAX + 1;
	assert_int_equal(fo_handle_message(f, &m, 2000), -EINVAL);
	/* well-formed but pointless: unknown instances, stale answers, dups */
	drop_all(f);
	base_msg(&m, FO_PROMISE);
	snprintf(m.inst.dead, sizeof(m.inst.dead), "ghost");
	assert_int_equal(fo_handle_message(f, &m, 2000), 0);
	base_msg(&m, FO_ACCEPTED);
	assert_int_equal(fo_handle_message(f, &m, 2000), 0);
	base_msg(&m, FO_REJECT);
	assert_int_equal(fo_handle_message(f, &m, 2000), 0);
	base_msg(&m, FO_RESTARTED);
	snprintf(m.vm_uuid, sizeof(m.vm_uuid), "nope");
	assert_int_equal(fo_handle_message(f, &m, 2000), 0);
	base_msg(&m, FO_HB_ACK);
	assert_int_equal(fo_handle_message(f, &m, 2000), 0);
	assert_int_equal(fo_handle_message(f, &m, 2000), 0);
	base_msg(&m, FO_FENCE_ORDER); /* about someone else */
	assert_int_equal(fo_handle_message(f, &m, 2000), 0);
	base_msg(&m, FO_CHOSEN);
	m.has_plan = true;
	assert_int_equal(fo_handle_message(f, &m, 2000), 0);
	assert_int_equal(fo_handle_message(f, &m, 2001), 0); /* duplicate */
	struct fo_instance_id id = {.dead = "n0", .incarnation = 1};
	assert_true(fo_chosen_plan(f, &id, NULL));
	/* a PREPARE for a chosen round gets CHOSEN back */
	drop_all(f);
	base_msg(&m, FO_PREPARE);
	m.ballot.number = 7;
	assert_int_equal(fo_handle_message(f, &m, 2002), 0);
	struct fo_msg r;
	assert_true(pop_type(f, FO_CHOSEN, &r));
	assert_true(r.has_plan);
	fo_msg_clear(&r);
	/* outcomes for unknown things are ignored */
	struct fo_instance_id ghost = {.dead = "ghost", .incarnation = 3};
	fo_remote_fence_done(f, &ghost, true, "x", 2003);
	fo_restart_done(f, &ghost, "u", true, NULL, 2003);
	fo_restart_done(f, &id, "u", true, NULL, 2003);
	fo_restart_done(f, NULL, "u", true, NULL, 2003);
	assert_false(fo_chosen_plan(f, &ghost, NULL));
	id.round = 99;
	assert_false(fo_chosen_plan(f, &id, NULL));
	/* config */
	struct fo_config bad;
	fo_config_default(&bad);
	assert_null(fo_new(&bad, 0));
	assert_null(fo_new(NULL, 0));
	memset(bad.name, 'x', sizeof(bad.name));
	assert_null(fo_new(&bad, 0));
	/* names */
	assert_string_equal(fo_msg_type_name(FO_FENCE_ORDER), "FENCE_ORDER");
	assert_string_equal(fo_msg_type_name((enum fo_msg_type)99), "?");
	assert_string_equal(fo_event_name(FO_EV_RESTART), "restart");
	assert_string_equal(fo_phase_name(FO_PH_DONE), "done");
	drop_all(f);
	fo_free(f);
	fo_free(NULL);
}

/* Deadlines drive everything: an idle 3-node cluster wakes once per
 * heartbeat, never in the past. */
static void test_deadlines(void **state)
{
	(void)state;
	struct net *t = net_new(3, NULL);
	run_until(t, t->now + 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(fo_next_deadline(t->n[i].f), t->now - 1 + 1000);
	size_t hb = t->sent[FO_HEARTBEAT];
	run_until(t, t->now + 10000);
	assert_int_equal(t->sent[FO_HEARTBEAT] - hb, 3 * 2 * 10);
	net_free(t);
}


/* ---- later additions: voting-set size, incarnations, target loss ------------- */

static void hb_voters(struct fo *f, const char *from, const char *to, uint32_t voters,
                      uint64_t now)
{
	struct fo_msg m;
	memset(&m, 0, sizeof(m));
	m.type = FO_HEARTBEAT;
	snprintf(m.from, sizeof(m.from), "%s", from);
	snprintf(m.to, sizeof(m.to), "%s", to);
	m.incarnation = 1;
	m.stamp = now;
	m.voters = voters;
	assert_int_equal(fo_handle_message(f, &m, now), 0);
}

/* A restarted agent that knows 3 voters hears of 5: it counts majorities
 * over 5 until that report is older than F (its sender dead or not), less
 * the force-leaves learned after a dead sender's report. */
static void test_voters_reported(void **state)
{
	(void)state;
	struct fo *f = solo(false, 1000);
	fo_member(f, "n1", FO_ALIVE, 1, 1000);
	fo_member(f, "n2", FO_ALIVE, 1, 1000);
	assert_int_equal(fo_majority(f), 2);
	hb_voters(f, "n1", "n0", 5, 1100);
	assert_int_equal(fo_voters(f), 3);
	assert_int_equal(fo_majority(f), 3);
	/* one ack is no longer a majority: both others must ack */
	ack(f, "n1", 1050, 1101);
	assert_false(fo_quorate(f, 1101));
	ack(f, "n2", 1050, 1102);
	assert_true(fo_quorate(f, 1102));
	/* the report expires F (10 s) after it arrived */
	fo_handle_timer(f, 11099);
	assert_int_equal(fo_majority(f), 3);
	fo_handle_timer(f, 11100);
	assert_int_equal(fo_majority(f), 2);
	/* a fresh report of the same size, then its sender dies */
	hb_voters(f, "n1", "n0", 5, 12000);
	assert_int_equal(fo_majority(f), 3);
	hb_voters(f, "n1", "n0", 3, 12500); /* it learned better */
	assert_int_equal(fo_majority(f), 2);
	hb_voters(f, "n2", "n0", 4, 13000);
	assert_int_equal(fo_majority(f), 3);
	fo_member(f, "n2", FO_DEAD, 1, 13001);
	/* dead members stay voters, and one held dead may be up: its report
	 * counts until it is older than F */
	assert_int_equal(fo_majority(f), 3);
	fo_handle_timer(f, 22999);
	assert_int_equal(fo_majority(f), 3);
	fo_handle_timer(f, 23000);
	assert_int_equal(fo_majority(f), 2);
	/* a dead sender's report, lowered by a force-leave learned after it */
	hb_voters(f, "n2", "n0", 4, 24000);
	assert_int_equal(fo_majority(f), 3);
	fo_member(f, "n1", FO_DEAD, 1, 24001);
	assert_int_equal(fo_force_leave(f, "n1", 24002), 0);
	assert_int_equal(fo_voters(f), 2);
	assert_int_equal(fo_majority(f), 2); /* over 4 - 1 = 3 */
	drop_all(f);
	fo_free(f);
}

/* Simulator schedule 6580312521565343895: a restarted agent (n1) knows 3
 * voters (itself, n0, n2) of 4 — it never heard of the fourth. n0 dies; n1
 * then holds n2 dead too, but n2 is up and answers. Had n1 dropped the 4
 * its (now dead) voters reported, it would count majorities over 3 and
 * choose a plan that only it and n2 accepted: 2 of 4. */
static void test_voters_reported_by_dead(void **state)
{
	(void)state;
	struct fo_config c;
	cfg_for(&c, 1);
	struct fo *f = fo_new(&c, 1000);
	assert_non_null(f);
	fo_member(f, "n0", FO_ALIVE, 1, 1000);
	fo_member(f, "n2", FO_ALIVE, 1, 1000);
	hb_voters(f, "n0", "n1", 4, 1100);
	hb_voters(f, "n2", "n1", 4, 1100);
	assert_int_equal(fo_voters(f), 3);
	assert_int_equal(fo_majority(f), 3);
	ack_to(f, "n0", "n1", 1100, 1101);
	ack_to(f, "n2", "n1", 1100, 1101);
	assert_true(fo_quorate(f, 1101));
	fo_member(f, "n0", FO_DEAD, 1, 1200);
	fo_member(f, "n2", FO_DEAD, 1, 1200);
	assert_int_equal(fo_majority(f), 3);
	/* n1, the only voter it holds alive, coordinates (n0, 1) at once */
	assert_int_equal(fo_handle_timer(f, 1201), 0);
	struct fo_msg prep, m, r;
	assert_true(pop_type(f, FO_PREPARE, &prep));
	assert_string_equal(prep.inst.dead, "n0");
	/* n2 (up after all) promises and accepts: 2 of 4, no majority */
	memset(&m, 0, sizeof(m));
	m.type = FO_PROMISE;
	snprintf(m.from, sizeof(m.from), "n2");
	snprintf(m.to, sizeof(m.to), "n1");
	m.inst = prep.inst;
	m.ballot = prep.ballot;
	assert_int_equal(fo_handle_message(f, &m, 1202), 0);
	assert_false(pop_type(f, FO_ACCEPT, &r));
	m.type = FO_ACCEPTED;
	assert_int_equal(fo_handle_message(f, &m, 1203), 0);
	assert_false(pop_type(f, FO_CHOSEN, &r));
	const struct fo_plan *p = NULL;
	assert_false(fo_chosen_plan(f, &prep.inst, &p));
	fo_msg_clear(&prep);
	drop_all(f);
	fo_free(f);
}

static void msg_plan(struct fo_msg *m, enum fo_msg_type ty, const char *from, const char *to,
                     uint64_t inc, uint32_t round, uint64_t ballot, struct fo_plan_entry *e,
                     size_t n)
{
	memset(m, 0, sizeof(*m));
	m->type = ty;
	snprintf(m->from, sizeof(m->from), "%s", from);
	snprintf(m->to, sizeof(m->to), "%s", to);
	snprintf(m->inst.dead, sizeof(m->inst.dead), "n0");
	m->inst.incarnation = inc;
	m->inst.round = round;
	m->ballot.number = ballot;
	snprintf(m->ballot.proposer, sizeof(m->ballot.proposer), "%s", from);
	m->has_plan = true;
	m->plan.n = n;
	m->plan.entries = e;
}

static struct fo_plan_entry entry(const char *uuid, const char *target, uint64_t new_epoch)
{
	struct fo_plan_entry e;
	memset(&e, 0, sizeof(e));
	snprintf(e.uuid, sizeof(e.uuid), "%s", uuid);
	snprintf(e.name, sizeof(e.name), "vm-%s", uuid);
	snprintf(e.target, sizeof(e.target), "%s", target);
	e.new_epoch = new_epoch;
	e.vcpus = 1;
	e.memory_kib = GIB;
	return e;
}

/* Nodes saw n0 die at incarnations 1 and 2: two instances. An acceptor
 * never accepts, in one, a VM it accepted (or learned chosen) in the other
 * at the same or a newer epoch; its PROMISEs report the other's chosen
 * plan (superseded). */
static void test_incarnations_never_share_a_vm(void **state)
{
	(void)state;
	struct fo_config c;
	cfg_for(&c, 1);
	struct fo *a = fo_new(&c, 1000);
	fo_member(a, "n0", FO_DEAD, 2, 1000);
	fo_member(a, "n2", FO_ALIVE, 1, 1000);
	drop_all(a);
	struct fo_plan_entry v1[2] = {entry("u1", "n2", 2), entry("u2", "n2", 2)};
	struct fo_msg m, r;
	msg_plan(&m, FO_ACCEPT, "n2", "n1", 1, 0, 1, v1, 2);
	assert_int_equal(fo_handle_message(a, &m, 2000), 0);
	assert_true(pop_type(a, FO_ACCEPTED, &r));
	fo_msg_clear(&r);
	/* (n0,2) with u2 at the same epoch: refused */
	struct fo_plan_entry v2[2] = {entry("u2", "n2", 2), entry("u3", "n2", 2)};
	msg_plan(&m, FO_ACCEPT, "n2", "n1", 2, 0, 1, v2, 2);
	assert_int_equal(fo_handle_message(a, &m, 2001), 0);
	assert_true(pop_type(a, FO_REJECT, &r));
	assert_non_null(strstr(r.text, "also in the plan"));
	fo_msg_clear(&r);
	/* without u2, or with u2 at a newer epoch (it came back since): fine */
	msg_plan(&m, FO_ACCEPT, "n2", "n1", 2, 0, 1, &v2[1], 1);
	assert_int_equal(fo_handle_message(a, &m, 2002), 0);
	assert_true(pop_type(a, FO_ACCEPTED, &r));
	fo_msg_clear(&r);
	v2[0].new_epoch = 4;
	msg_plan(&m, FO_ACCEPT, "n2", "n1", 2, 0, 2, v2, 2);
	assert_int_equal(fo_handle_message(a, &m, 2003), 0);
	assert_true(pop_type(a, FO_ACCEPTED, &r));
	fo_msg_clear(&r);
	/* (n0,1) is learned chosen: a PROMISE for (n0,2) carries its entries */
	msg_plan(&m, FO_CHOSEN, "n2", "n1", 1, 0, 1, v1, 2);
	assert_int_equal(fo_handle_message(a, &m, 2004), 0);
	drop_all(a);
	prepare_msg(&m, "n2", "n1", 7, 0);
	m.inst.incarnation = 2;
	assert_int_equal(fo_handle_message(a, &m, 2005), 0);
	assert_true(pop_type(a, FO_PROMISE, &r));
	assert_int_equal(r.superseded.n, 2);
	assert_string_equal(r.superseded.entries[0].uuid, "u1");
	assert_true(r.has_plan); /* what it accepted for (n0,2) */
	fo_msg_clear(&r);
	assert_null(r.superseded.entries);
	drop_all(a);
	fo_free(a);
}

/* A FENCE_ORDER covers every chosen instance up to its incarnation. */
static void test_fence_order_union(void **state)
{
	(void)state;
	struct fo_config c;
	cfg_for(&c, 1);
	struct fo *a = fo_new(&c, 1000);
	fo_member(a, "n0", FO_DEAD, 1, 1000);
	fo_member(a, "n0", FO_DEAD, 3, 1000);
	fo_member(a, "n0", FO_DEAD, 2, 1000);
	fo_member(a, "n0", FO_ALIVE, 4, 1000);
	fo_member(a, "n2", FO_ALIVE, 1, 1000);
	struct fo_plan_entry p1[1] = {entry("u1", "n2", 2)};
	struct fo_plan_entry p2[2] = {entry("u2", "n2", 2), entry("u1", "n2", 2)};
	struct fo_plan_entry p3[1] = {entry("u3", "n2", 2)};
	struct fo_msg m, r;
	msg_plan(&m, FO_CHOSEN, "n2", "n1", 1, 0, 1, p1, 1);
	assert_int_equal(fo_handle_message(a, &m, 2000), 0);
	msg_plan(&m, FO_CHOSEN, "n2", "n1", 3, 0, 1, p3, 1);
	assert_int_equal(fo_handle_message(a, &m, 2000), 0);
	drop_all(a);
	/* (n0,2) undecided: the order stops below it */
	hb(a, "n0", "n1", 4, 2001, 0, 2001);
	assert_true(pop_type(a, FO_FENCE_ORDER, &r));
	assert_int_equal(r.inst.incarnation, 1);
	assert_int_equal(r.plan.n, 1);
	fo_msg_clear(&r);
	/* fenced through 1: (n0,2) pending */
	hb(a, "n0", "n1", 4, 2002, 1, 2002);
	assert_true(pop_type(a, FO_HB_NACK, &r));
	assert_int_equal(r.inst.incarnation, 2);
	assert_non_null(strstr(r.text, "pending"));
	fo_msg_clear(&r);
	/* (n0,2) chosen: one order up to 3 with u1, u2, u3 once each */
	msg_plan(&m, FO_CHOSEN, "n2", "n1", 2, 0, 1, p2, 2);
	assert_int_equal(fo_handle_message(a, &m, 2003), 0);
	drop_all(a);
	hb(a, "n0", "n1", 4, 2004, 0, 2004);
	assert_true(pop_type(a, FO_FENCE_ORDER, &r));
	assert_int_equal(r.inst.incarnation, 3);
	assert_int_equal(r.plan.n, 3);
	fo_msg_clear(&r);
	hb(a, "n0", "n1", 4, 2005, 3, 2005);
	assert_true(pop_type(a, FO_HB_ACK, &r));
	fo_msg_clear(&r);
	fo_free(a);
}

/* An entry assigned to an incarnation of ours that was failed over since
 * is handed back, never started; one assigned to the new incarnation is. */
static void test_target_incarnation(void **state)
{
	(void)state;
	struct fo_config c;
	cfg_for(&c, 1);
	c.max_parallel = 8;
	struct fo *a = fo_new(&c, 1000);
	fo_set_incarnation(a, 2);
	fo_member(a, "n0", FO_DEAD, 1, 1000);
	fo_member(a, "n2", FO_ALIVE, 1, 1000);
	/* we (n1) were failed over at incarnation 1 */
	struct fo_msg m, r;
	memset(&m, 0, sizeof(m));
	m.type = FO_FENCE_ORDER;
	snprintf(m.from, sizeof(m.from), "n2");
	snprintf(m.to, sizeof(m.to), "n1");
	snprintf(m.inst.dead, sizeof(m.inst.dead), "n1");
	m.inst.incarnation = 1;
	m.has_plan = true;
	assert_int_equal(fo_handle_message(a, &m, 1500), 0);
	assert_true(pop_type(a, FO_FENCED, &r));
	fo_msg_clear(&r);
	ack_to(a, "n2", "n1", 1500, 1501);
	assert_true(fo_quorate(a, 1501));
	struct fo_plan_entry p[2] = {entry("old", "n1", 2), entry("new", "n1", 2)};
	p[0].target_incarnation = 1;
	p[1].target_incarnation = 2;
	msg_plan(&m, FO_CHOSEN, "n2", "n1", 1, 0, 1, p, 2);
	assert_int_equal(fo_handle_message(a, &m, 1600), 0);
	struct fo_event e;
	size_t handed = 0, restarts = 0;
	bool sent_back = false;
	while (fo_pop_output(a, &m)) {
		sent_back |= m.type == FO_RESTARTED && !m.ok && !strcmp(m.vm_uuid, "old");
		fo_msg_clear(&m);
	}
	/* the fence of (n0,1) is not known yet: only the hand-back */
	while (fo_pop_event(a, &e)) {
		handed += e.type == FO_EV_HANDED_BACK && !strcmp(e.entry.uuid, "old");
		restarts += e.type == FO_EV_RESTART;
		fo_event_clear(&e);
	}
	assert_int_equal(handed, 1);
	assert_int_equal(restarts, 0);
	assert_true(sent_back);
	struct fo_instance_id id = {.dead = "n0", .incarnation = 1};
	memset(&m, 0, sizeof(m));
	m.type = FO_FENCED;
	snprintf(m.from, sizeof(m.from), "n2");
	snprintf(m.to, sizeof(m.to), "n1");
	m.inst = id;
	ack_to(a, "n2", "n1", 1700, 1701);
	assert_int_equal(fo_handle_message(a, &m, 1702), 0);
	restarts = 0;
	while (fo_pop_event(a, &e)) {
		if (e.type == FO_EV_RESTART) {
			assert_string_equal(e.entry.uuid, "new");
			restarts++;
		}
		fo_event_clear(&e);
	}
	assert_int_equal(restarts, 1);
	drop_all(a);
	fo_free(a);
}

/* The only target of a plan dies before starting anything: once its own
 * failover was chosen F + margin ago, its entries are re-planned. */
static void reclaim_cfg(struct fo_config *c, int i)
{
	(void)i;
	c->max_parallel = 8;
}

static void test_dead_target_entries_replaced(void **state)
{
	(void)state;
	struct net *t = net_new(5, reclaim_cfg);
	struct view v;
	view_init(&v, 5, 16, 64);
	view_vm(&v, 0, "a", 10, 1, 2, NULL);
	view_vm(&v, 0, "b", 9, 1, 2, NULL);
	/* n4 has by far the most room: round 0 puts both there */
	for (int i = 1; i < 4; i++)
		v.hosts[i].cap.memory_allocated_kib = 50 * GIB;
	view_feed(t, &v, -1);
	run_until(t, t->now + 2000);
	t->n[0].down = true;
	declare_dead(t, 0, 1);
	run_until(t, t->now + 500);
	const struct fo_plan *p;
	check_single_plan(t, 0, 1, 0, &p);
	assert_string_equal(p->entries[0].target, "n4");
	assert_string_equal(p->entries[1].target, "n4");
	assert_int_equal(p->entries[0].target_incarnation, 1);
	/* n4 dies before its fence wait ends */
	t->n[4].down = true;
	run_until(t, t->now + 3000);
	declare_dead(t, 4, 1);
	uint64_t det4 = t->now;
	run_until(t, det4 + 1000);
	struct fo_instance_id id4 = {.dead = "n4", .incarnation = 1};
	assert_true(fo_chosen_plan(t->n[1].f, &id4, NULL));
	struct fo_instance_id r1 = {.dead = "n0", .incarnation = 1, .round = 1};
	run_until(t, det4 + 12000);
	assert_false(fo_chosen_plan(t->n[1].f, &r1, NULL));
	run_until(t, det4 + 30000);
	const struct fo_plan *q;
	assert_true(fo_chosen_plan(t->n[1].f, &r1, &q));
	assert_int_equal(q->n, 2);
	for (size_t e = 0; e < q->n; e++) {
		assert_string_not_equal(q->entries[e].target, "n4");
		assert_string_not_equal(q->entries[e].target, "n0");
		assert_true(q->entries[e].target[0]);
		assert_int_equal(q->entries[e].new_epoch, 7);
	}
	net_free(t);
}

static void rounds1_cfg(struct fo_config *c, int i)
{
	(void)i;
	c->max_rounds = 1;
	c->restart_attempts = 1;
}

/* Hand-back rounds used up: the VM is reported (NO_ROOM), the instance done. */
static void test_rounds_exhausted(void **state)
{
	(void)state;
	struct net *t = net_new(5, rounds1_cfg);
	struct view v;
	standard_view(t, &v);
	run_until(t, t->now + 2000);
	t->n[0].down = true;
	declare_dead(t, 0, 1);
	run_until(t, t->now + 14000); /* fence wait */
	for (int round = 0; round < 2; round++) {
		for (int i = 1; i < 5; i++)
			answer_restarts(t, i, false, "broken");
		run_until(t, t->now + 20000);
	}
	struct fo_instance_id r1 = {.dead = "n0", .incarnation = 1, .round = 1};
	const struct fo_plan *p1;
	assert_true(fo_chosen_plan(t->n[1].f, &r1, &p1));
	size_t placed1 = 0;
	for (size_t e = 0; e < p1->n; e++)
		placed1 += p1->entries[e].target[0] != '\0';
	assert_true(placed1 > 0);
	for (int i = 1; i < 5; i++) {
		struct fo_instance_info info;
		fo_instance_at(t->n[i].f, 0, &info);
		assert_int_equal(info.phase, FO_PH_DONE);
		assert_int_equal(info.n_restarted, 0);
		assert_int_equal(info.n_failed + info.n_no_room, 4);
		size_t gave_up = 0;
		for (size_t k = 0; k < t->n[i].n_ev; k++)
			gave_up += t->n[i].ev[k].type == FO_EV_NO_ROOM &&
			           strstr(t->n[i].ev[k].text, "rounds used") != NULL;
		assert_int_equal(gave_up, placed1);
	}
	net_free(t);
}


static void grace_cfg(struct fo_config *c, int i)
{
	(void)i;
	c->dead_grace_ms = 1500;
}

/* n0 is declared dead by mistake and refutes within the grace: nobody
 * proposes before it ends, the plan chosen is empty, n0 destroys nothing
 * and keeps its quorum. */
static void test_dead_grace(void **state)
{
	(void)state;
	struct net *t = net_new(3, grace_cfg);
	struct view v;
	standard_view(t, &v);
	run_until(t, t->now + 2000);
	uint64_t det = t->now;
	declare_dead(t, 0, 1);
	run_until(t, det + 1000);
	for (int i = 1; i < 3; i++)
		assert_int_equal(count_ev(&t->n[i], FO_EV_PROPOSING), 0);
	fo_set_incarnation(t->n[0].f, 2);
	for (int i = 1; i < 3; i++)
		fo_member(t->n[i].f, "n0", FO_ALIVE, 2, t->now);
	run_until(t, det + 1499);
	for (int i = 1; i < 3; i++)
		assert_int_equal(count_ev(&t->n[i], FO_EV_PROPOSING), 0);
	run_until(t, det + 1500);
	const struct fo_plan *p;
	check_single_plan(t, 0, 1, 0, &p);
	assert_int_equal(p->n, 0);
	run_until(t, det + 30000);
	assert_int_equal(count_ev(&t->n[0], FO_EV_FENCE_VMS), 0);
	assert_int_equal(count_ev(&t->n[0], FO_EV_FENCE_SELF), 0);
	assert_true(fo_quorate(t->n[0].f, t->now));
	for (int i = 1; i < 3; i++) {
		assert_int_equal(count_ev(&t->n[i], FO_EV_RESTART), 0);
		assert_int_equal(count_ev(&t->n[i], FO_EV_REMOTE_FENCE), 0);
		struct fo_instance_info info;
		fo_instance_at(t->n[i].f, 0, &info);
		assert_int_equal(info.phase, FO_PH_DONE);
	}
	net_free(t);
}


/* Random, mostly well-formed and often nonsensical messages at one core:
 * only 0 or -EINVAL, no crash, no leak (ASan), and the deadline after a
 * timer is never in the past. */
static uint64_t fz_state = 88172645463325252ull;

static uint64_t fz(uint64_t n)
{
	fz_state ^= fz_state << 13;
	fz_state ^= fz_state >> 7;
	fz_state ^= fz_state << 17;
	return n ? fz_state % n : 0;
}

static void fz_str(char *dst, size_t size)
{
	static const char *const pool[] = {"n0", "n1", "n2", "n3", "zz", "", "u1", "u2"};
	if (fz(20) == 0) {
		memset(dst, 'x', size); /* unterminated */
		return;
	}
	snprintf(dst, size, "%s", pool[fz(8)]);
}

static void test_random_garbage(void **state)
{
	(void)state;
	struct fo_config c;
	cfg_for(&c, 1);
	c.max_rounds = 2;
	struct fo *f = fo_new(&c, 1000);
	fo_set_incarnation(f, 1);
	fo_member(f, "n0", FO_ALIVE, 1, 1000);
	fo_member(f, "n2", FO_ALIVE, 1, 1000);
	fo_member(f, "n3", FO_ALIVE, 1, 1000);
	struct view v;
	view_init(&v, 4, 16, 64);
	view_vm(&v, 0, "a", 1, 1, 1, "g");
	view_vm(&v, 0, "b", 2, 1, 1, NULL);
	for (int i = 0; i < 4; i++) {
		v.hosts[i].vms = v.vms[i];
		v.hosts[i].n_vms = v.n_vms[i];
	}
	fo_set_hosts(f, v.hosts, 4);
	uint64_t now = 1000;
	struct fo_plan_entry ents[4];
	struct fo_removed rem[3];
	for (int k = 0; k < 30000; k++) {
		now += fz(300);
		int what = (int)fz(40);
		if (what == 0) {
			const char *who[] = {"n0", "n2", "n3"};
			fo_member(f, who[fz(3)], (enum fo_member_state)fz(4), 1 + fz(3), now);
		} else if (what == 1) {
			assert_int_equal(fo_handle_timer(f, now), 0);
			assert_true(fo_next_deadline(f) > now);
		} else if (what == 2) {
			struct fo_instance_id id = {.incarnation = 1 + fz(3), .round = (uint32_t)fz(3)};
			fz_str(id.dead, sizeof(id.dead));
			fo_restart_done(f, &id, fz(2) ? "u1" : "u2", fz(2), "x", now);
			fo_remote_fence_done(f, &id, fz(2), "y", now);
		} else {
			struct fo_msg m;
			memset(&m, 0, sizeof(m));
			m.type = (enum fo_msg_type)fz(FO_MSG_TYPES + 1);
			fz_str(m.from, sizeof(m.from));
			if (fz(10))
				snprintf(m.to, sizeof(m.to), "n1");
			else
				fz_str(m.to, sizeof(m.to));
			fz_str(m.inst.dead, sizeof(m.inst.dead));
			m.inst.incarnation = fz(4);
			m.inst.round = (uint32_t)fz(4);
			m.incarnation = fz(4);
			m.stamp = fz(now + 10);
			m.fenced_through = fz(4);
			m.voters = (uint32_t)fz(6);
			m.ballot.number = fz(5);
			fz_str(m.ballot.proposer, sizeof(m.ballot.proposer));
			m.accepted_ballot.number = fz(3);
			fz_str(m.accepted_ballot.proposer, sizeof(m.accepted_ballot.proposer));
			m.age_ms = fz(100000);
			m.ok = fz(2);
			fz_str(m.vm_uuid, sizeof(m.vm_uuid));
			m.has_plan = fz(2);
			m.plan.n = fz(5);
			m.plan.entries = m.plan.n ? ents : NULL;
			for (size_t e = 0; e < 4; e++) {
				memset(&ents[e], 0, sizeof(ents[e]));
				fz_str(ents[e].uuid, sizeof(ents[e].uuid));
				fz_str(ents[e].name, sizeof(ents[e].name));
				fz_str(ents[e].target, sizeof(ents[e].target));
				ents[e].new_epoch = fz(5);
				ents[e].target_incarnation = fz(3);
			}
			if (m.plan.n == 4 && fz(2))
				m.plan.n = FO_PLAN_MAX + 1;
			m.n_removed = fz(4);
			m.removed = m.n_removed ? rem : NULL;
			for (size_t r = 0; r < 3; r++) {
				fz_str(rem[r].name, sizeof(rem[r].name));
				rem[r].incarnation = fz(3);
			}
			int rc = fo_handle_message(f, &m, now);
			assert_true(rc == 0 || rc == -EINVAL);
		}
		if (fz(4) == 0)
			drop_all(f);
		struct fo_instance_info info;
		for (size_t i = 0; i < fo_instance_count(f); i++) {
			fo_instance_at(f, i, &info);
			for (size_t j = 0; j < fo_instance_vm_count(f, i); j++) {
				struct fo_vm_outcome o;
				fo_instance_vm_at(f, i, j, &o);
			}
		}
	}
	drop_all(f);
	fo_free(f);
}


/* A target that restarted a VM and is then failed over by a plan that does
 * not list it (stale view) destroys it with the order and hands it back;
 * one the order lists is destroyed and left to the order's plan. */
static void test_fence_order_destroys_unlisted(void **state)
{
	(void)state;
	struct fo_config c;
	cfg_for(&c, 1);
	c.max_parallel = 8;
	struct fo *a = fo_new(&c, 1000);
	fo_set_incarnation(a, 1);
	fo_member(a, "n0", FO_DEAD, 1, 1000);
	fo_member(a, "n2", FO_ALIVE, 1, 1000);
	ack_to(a, "n2", "n1", 1000, 1001);
	struct fo_plan_entry p[2] = {entry("kept", "n1", 2), entry("listed", "n1", 2)};
	struct fo_msg m;
	msg_plan(&m, FO_CHOSEN, "n2", "n1", 1, 0, 1, p, 2);
	assert_int_equal(fo_handle_message(a, &m, 1002), 0);
	memset(&m, 0, sizeof(m));
	m.type = FO_FENCED;
	snprintf(m.from, sizeof(m.from), "n2");
	snprintf(m.to, sizeof(m.to), "n1");
	snprintf(m.inst.dead, sizeof(m.inst.dead), "n0");
	m.inst.incarnation = 1;
	assert_int_equal(fo_handle_message(a, &m, 1003), 0);
	struct fo_instance_id id = {.dead = "n0", .incarnation = 1};
	fo_restart_done(a, &id, "kept", true, NULL, 1004);
	fo_restart_done(a, &id, "listed", true, NULL, 1004);
	drop_all(a);
	/* failed over: the order lists "listed" only */
	fo_set_incarnation(a, 2);
	struct fo_plan_entry o[1] = {entry("listed", "n2", 3)};
	msg_plan(&m, FO_FENCE_ORDER, "n2", "n1", 1, 0, 0, o, 1);
	snprintf(m.inst.dead, sizeof(m.inst.dead), "n1");
	assert_int_equal(fo_handle_message(a, &m, 2000), 0);
	struct fo_event e;
	size_t fence_vms = 0, handed = 0;
	while (fo_pop_event(a, &e)) {
		if (e.type == FO_EV_FENCE_VMS) {
			fence_vms++;
			assert_int_equal(e.plan.n, 2);
			assert_string_equal(e.plan.entries[0].uuid, "listed");
			assert_string_equal(e.plan.entries[1].uuid, "kept");
		}
		if (e.type == FO_EV_HANDED_BACK) {
			assert_string_equal(e.entry.uuid, "kept");
			handed++;
		}
		fo_event_clear(&e);
	}
	assert_int_equal(fence_vms, 1);
	assert_int_equal(handed, 1);
	bool back = false, fenced = false;
	while (fo_pop_output(a, &m)) {
		back |= m.type == FO_RESTARTED && !m.ok && !strcmp(m.vm_uuid, "kept") && m.has_plan &&
		        m.plan.n == 1;
		fenced |= m.type == FO_FENCED && !strcmp(m.inst.dead, "n1");
		fo_msg_clear(&m);
	}
	assert_true(back);
	assert_true(fenced);
	fo_free(a);
}

/* ---- the ack bound: the timed fence counted from the last ack ------------------ */

/* One core n1 of {n0, n1, n2} with n0's four VMs in its view. */
static struct fo *bound_core(int me, uint64_t now, struct view *v)
{
	struct fo_config c;
	cfg_for(&c, me);
	c.max_parallel = 8;
	struct fo *f = fo_new(&c, now);
	assert_non_null(f);
	fo_set_incarnation(f, 1);
	for (int i = 0; i < 3; i++)
		fo_member(f, names[i], FO_ALIVE, 1, now);
	view_init(v, 3, 16, 64);
	view_vm(v, 0, "db", 100, 2, 4, NULL);
	view_vm(v, 0, "web1", 50, 1, 2, "web");
	for (int i = 0; i < 3; i++) {
		v->hosts[i].vms = v->vms[i];
		v->hosts[i].n_vms = v->n_vms[i];
	}
	fo_set_hosts(f, v->hosts, 3);
	return f;
}

/* Runs f's timers up to `until` (n2 keeps acknowledging f, so that it
 * stays quorate); returns when FENCE_CONFIRMED was emitted, or 0. */
static uint64_t fence_time(struct fo *f, const char *me, uint64_t *now, uint64_t until,
                           char *how, size_t how_len)
{
	uint64_t at = 0;
	for (;;) {
		struct fo_event e;
		while (fo_pop_event(f, &e)) {
			if (e.type == FO_EV_FENCE_CONFIRMED && !at) {
				at = *now;
				if (how)
					snprintf(how, how_len, "%s", e.text);
			}
			fo_event_clear(&e);
		}
		struct fo_msg m;
		while (fo_pop_output(f, &m))
			fo_msg_clear(&m);
		uint64_t d = fo_next_deadline(f);
		if (at || d > until)
			break;
		*now = d > *now ? d : *now;
		ack_to(f, strcmp(me, "n2") ? "n2" : "n1", me, *now, *now);
		assert_int_equal(fo_handle_timer(f, *now), 0);
	}
	return at;
}

/* Drives core n1 through one round as proposer, n2 answering by hand:
 * n2's ACCEPTED carries `n2_ago` (has_n2). Returns the CHOSEN it
 * broadcast (to n2) and the time it was chosen. */
static void bound_propose(struct fo *f, uint64_t *now, bool has_n2, uint64_t n2_ago,
                          struct fo_msg *chosen)
{
	struct fo_msg m, r;
	bool prepared = false;
	for (int k = 0; k < 100 && !prepared; k++) {
		ack_to(f, "n2", "n1", *now, *now);
		assert_int_equal(fo_handle_timer(f, *now), 0);
		while (fo_pop_output(f, &m)) {
			if (m.type == FO_PREPARE && !strcmp(m.to, "n2") && !prepared) {
				prepared = true;
				r = m;
				continue;
			}
			fo_msg_clear(&m);
		}
		if (!prepared)
			*now = fo_next_deadline(f) > *now ? fo_next_deadline(f) : *now + 1;
	}
	assert_true(prepared);
	struct fo_msg p;
	memset(&p, 0, sizeof(p));
	p.type = FO_PROMISE;
	snprintf(p.from, sizeof(p.from), "n2");
	snprintf(p.to, sizeof(p.to), "n1");
	p.inst = r.inst;
	p.ballot = r.ballot;
	fo_msg_clear(&r);
	assert_int_equal(fo_handle_message(f, &p, *now), 0);
	assert_true(pop_type(f, FO_ACCEPT, &r));
	*now += 10;
	memset(&p, 0, sizeof(p));
	p.type = FO_ACCEPTED;
	snprintf(p.from, sizeof(p.from), "n2");
	snprintf(p.to, sizeof(p.to), "n1");
	p.inst = r.inst;
	p.ballot = r.ballot;
	p.has_ack_ago = has_n2;
	p.ack_ago_ms = n2_ago;
	fo_msg_clear(&r);
	assert_int_equal(fo_handle_message(f, &p, *now), 0);
	assert_true(pop_type(f, FO_CHOSEN, chosen));
	assert_true(chosen->has_plan && chosen->plan.n == 2);
}

/* An acceptor reports how long ago it last acked the dead host; it stops
 * acking once it opened the instance; a core that never acked it reports
 * nothing. */
static void test_ack_bound_acceptor(void **state)
{
	(void)state;
	struct view v;
	uint64_t now = 100000;
	struct fo *a = bound_core(1, now, &v);
	struct fo_msg m, r;
	hb(a, "n0", "n1", 1, 7, 0, 105000);
	assert_true(pop_type(a, FO_HB_ACK, &r));
	fo_msg_clear(&r);
	fo_member(a, "n0", FO_DEAD, 1, 106000);
	/* dead now (the instance is open): no ack, the last one stays 105000 */
	hb(a, "n0", "n1", 1, 8, 0, 106500);
	assert_false(pop_type(a, FO_HB_ACK, &r));
	/* a later incarnation gets no ack either while the instance is unfenced */
	hb(a, "n0", "n1", 2, 9, 0, 106600);
	assert_false(pop_type(a, FO_HB_ACK, &r));
	struct fo_plan_entry e[1] = {entry("u1", "n2", 6)};
	msg_plan(&m, FO_ACCEPT, "n2", "n1", 1, 0, 3, e, 1);
	assert_int_equal(fo_handle_message(a, &m, 108000), 0);
	assert_true(pop_type(a, FO_ACCEPTED, &r));
	assert_true(r.has_ack_ago);
	assert_int_equal(r.ack_ago_ms, 3000);
	fo_msg_clear(&r);
	fo_free(a);

	/* an instance learned (CHOSEN) before the member was known: once
	 * known, it gets no ack for that incarnation either */
	a = bound_core(1, now, &v);
	msg_plan(&m, FO_CHOSEN, "n2", "n1", 1, 0, 3, e, 1);
	snprintf(m.inst.dead, sizeof(m.inst.dead), "n4");
	assert_int_equal(fo_handle_message(a, &m, 101000), 0);
	fo_member(a, "n4", FO_ALIVE, 2, 101500);
	drop_all(a);
	hb(a, "n4", "n1", 2, 10, 0, 102000);
	assert_false(pop_type(a, FO_HB_ACK, &r));
	hb(a, "n4", "n1", 2, 11, 1, 102100); /* fenced through 1: acked */
	assert_true(pop_type(a, FO_HB_ACK, &r));
	fo_msg_clear(&r);
	fo_free(a);

	/* never acked n0 in this core's life (restarted): no age */
	a = bound_core(1, now, &v);
	fo_member(a, "n0", FO_DEAD, 1, 106000);
	drop_all(a);
	msg_plan(&m, FO_ACCEPT, "n2", "n1", 1, 0, 3, e, 1);
	assert_int_equal(fo_handle_message(a, &m, 108000), 0);
	assert_true(pop_type(a, FO_ACCEPTED, &r));
	assert_false(r.has_ack_ago);
	fo_msg_clear(&r);
	fo_free(a);
}

/* The proposer's bound: the latest of the counted acceptors' last acks
 * (itself included); none if one of them has no age. Its own fence wait
 * runs quorate + F + margin from the bound, when sooner than F + margin
 * from learning. */
static void test_ack_bound_proposer(void **state)
{
	(void)state;
	struct fo_config d;
	cfg_for(&d, 1);
	uint64_t quiet = (uint64_t)d.quorate_ms + d.fence_after_ms + d.fence_margin_ms;
	uint64_t full = (uint64_t)d.fence_after_ms + d.fence_margin_ms;
	for (int c = 0; c < 4; c++) {
		struct view v;
		uint64_t now = 100000;
		struct fo *f = bound_core(1, now, &v);
		if (c != 2) {
			/* n1 itself acked n0 at 101000 */
			hb(f, "n0", "n1", 1, 7, 0, 101000);
		}
		now = 109000; /* n0 silent since; declared dead late */
		fo_member(f, "n0", FO_DEAD, 1, now);
		drop_all(f);
		struct fo_msg ch;
		/* c 0: n2 acked n0 long before n1 -> n1's ack is the bound;
		 * c 1: n2 acked later (102000 in n1's clock) -> n2's;
		 * c 2: n1 never acked n0 -> no bound; c 3: n2 gives no age */
		uint64_t chosen_at = 0;
		switch (c) {
		case 0: bound_propose(f, &now, true, 50000, &ch); break;
		case 1: bound_propose(f, &now, true, 0, &ch); break;
		default: bound_propose(f, &now, c == 2, 1000, &ch); break;
		}
		chosen_at = now;
		uint64_t bound = c == 0 ? 101000 : c == 1 ? chosen_at : 0;
		if (c == 1) {
			/* n2's ACCEPTED said "acked just now": bound = receipt */
			bound = chosen_at;
		}
		if (c <= 1) {
			assert_true(ch.has_ack_ago);
			assert_int_equal(ch.ack_ago_ms, chosen_at - bound);
		} else {
			assert_false(ch.has_ack_ago);
		}
		fo_msg_clear(&ch);
		char how[FO_TEXT_MAX] = "";
		uint64_t at = fence_time(f, "n1", &now, chosen_at + full + 1000, how, sizeof(how));
		if (c == 0) {
			assert_int_equal(at, 101000 + quiet);
			assert_true(at < chosen_at + full);
			assert_non_null(strstr(how, "acknowledgement"));
		} else {
			/* c 1: the bound gives a later time than learning: min rule */
			assert_int_equal(at, chosen_at + full);
			assert_null(strstr(how, "acknowledgement"));
		}
		fo_free(f);
	}
}

/* A learner waits quorate + F + margin from receipt - ack age, never
 * longer than F + margin from learning; a later CHOSEN with a bound
 * shortens a wait; a node that learned with a bound answers a late
 * PREPARE/ACCEPT with CHOSEN carrying its own age of the bound, one
 * that learned without answers without. */
static void test_ack_bound_learner(void **state)
{
	(void)state;
	struct fo_config d;
	cfg_for(&d, 2);
	uint64_t quiet = (uint64_t)d.quorate_ms + d.fence_after_ms + d.fence_margin_ms;
	uint64_t full = (uint64_t)d.fence_after_ms + d.fence_margin_ms;
	struct fo_plan_entry e[2] = {entry("u1", "n2", 6), entry("u2", "n1", 6)};
	/* ack age, whether sent, expected wait from learning */
	const struct {
		bool has;
		uint64_t ago;
		uint64_t wait;
	} cases[] = {
	    {true, 6000, quiet - 6000},  /* bound well before: shorter */
	    {true, 1000, full},          /* bound too recent: F + margin */
	    {false, 6000, full},         /* no bound */
	    {true, UINT64_MAX, 0},       /* before our clock's origin: at once */
	};
	for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
		struct view v;
		uint64_t now = 100000;
		struct fo *f = bound_core(2, now, &v);
		now = 110000;
		fo_member(f, "n0", FO_DEAD, 1, now);
		drop_all(f);
		struct fo_msg m, r;
		msg_plan(&m, FO_CHOSEN, "n1", "n2", 1, 0, 4, e, 2);
		m.has_ack_ago = cases[c].has;
		m.ack_ago_ms = cases[c].ago;
		assert_int_equal(fo_handle_message(f, &m, now), 0);
		uint64_t learned = now;
		/* a late ACCEPT is answered with CHOSEN, with the bound's age */
		now += 2000;
		if (cases[c].wait >= 2000) {
			msg_plan(&m, FO_ACCEPT, "n1", "n2", 1, 0, 5, e, 2);
			drop_all(f);
			assert_int_equal(fo_handle_message(f, &m, now), 0);
			assert_true(pop_type(f, FO_CHOSEN, &r));
			assert_int_equal(r.has_ack_ago, cases[c].has);
			if (cases[c].has)
				assert_int_equal(r.ack_ago_ms, cases[c].ago + 2000);
			fo_msg_clear(&r);
		}
		now = learned;
		uint64_t at = fence_time(f, "n2", &now, learned + full + 1000, NULL, 0);
		assert_int_equal(at, learned + cases[c].wait);
		fo_free(f);
	}

	/* learned without a bound, then a CHOSEN with one: the wait shortens */
	struct view v;
	uint64_t now = 100000;
	struct fo *f = bound_core(2, now, &v);
	now = 110000;
	fo_member(f, "n0", FO_DEAD, 1, now);
	drop_all(f);
	struct fo_msg m;
	msg_plan(&m, FO_CHOSEN, "n1", "n2", 1, 0, 4, e, 2);
	assert_int_equal(fo_handle_message(f, &m, now), 0);
	now += 100;
	m.has_ack_ago = true;
	m.ack_ago_ms = 9000; /* the bound lies at 101100 */
	assert_int_equal(fo_handle_message(f, &m, now), 0);
	uint64_t at = fence_time(f, "n2", &now, 110000 + full + 1000, NULL, 0);
	assert_int_equal(at, 101100 + quiet);
	fo_free(f);
}

/* ---- the journal (RESTARTS) ------------------------------------------------- */

/* An acceptor that opened a failover of n0 writes it to its journal; a new
 * core restored from that text refuses to acknowledge n0 (it has no
 * instance record) until n0 reports itself fenced through it. Without the
 * journal, the new core would ack at once: the amnesia the journal closes. */
static void test_journal_survives_restart(void **state)
{
	(void)state;
	struct fo_config c;
	cfg_for(&c, 1);
	struct fo *r = fo_new(&c, 1000);
	fo_member(r, "n0", FO_ALIVE, 3, 1000);
	fo_member(r, "n2", FO_ALIVE, 1, 1000);
	drop_all(r);
	char *text;
	size_t len;
	assert_int_equal(fo_journal_encode(r, &text, &len), 0);
	assert_null(strstr(text, "\nfailed-over "));
	assert_int_equal(strlen(text), len);
	free(text);
	uint64_t v0 = fo_journal_version(r);
	fo_member(r, "n0", FO_DEAD, 3, 1001);
	assert_true(fo_journal_version(r) > v0);
	uint64_t v1 = fo_journal_version(r);
	fo_member(r, "n0", FO_DEAD, 3, 1002); /* nothing new: no rewrite owed */
	assert_int_equal(fo_journal_version(r), v1);
	assert_int_equal(fo_journal_encode(r, &text, &len), 0);
	assert_non_null(strstr(text, "\nfailed-over n0 3\n"));
	fo_free(r);

	/* the agent restarts: without the journal it acks n0 (now incarnation 4) */
	struct fo *amnesiac = fo_new(&c, 50000);
	fo_member(amnesiac, "n0", FO_ALIVE, 4, 50000);
	fo_member(amnesiac, "n2", FO_ALIVE, 1, 50000);
	drop_all(amnesiac);
	struct fo_msg m;
	hb(amnesiac, "n0", "n1", 4, 50001, 0, 50001);
	assert_true(pop_type(amnesiac, FO_HB_ACK, &m));
	fo_msg_clear(&m);
	fo_free(amnesiac);

	/* with it, the NACK says why, and carries the instance to fence for */
	struct fo *restored = fo_new(&c, 50000);
	char err[256];
	assert_int_equal(fo_journal_restore(restored, text, len, err, sizeof(err)), 1);
	fo_member(restored, "n0", FO_ALIVE, 4, 50000);
	fo_member(restored, "n2", FO_ALIVE, 1, 50000);
	drop_all(restored);
	hb(restored, "n0", "n1", 4, 50001, 0, 50001);
	assert_true(pop_type(restored, FO_HB_NACK, &m));
	assert_string_equal(m.inst.dead, "n0");
	assert_int_equal(m.inst.incarnation, 3);
	assert_non_null(strstr(m.text, "before my restart"));
	fo_msg_clear(&m);
	hb(restored, "n0", "n1", 4, 50002, 2, 50002); /* fenced through 2 only */
	assert_true(pop_type(restored, FO_HB_NACK, &m));
	fo_msg_clear(&m);
	hb(restored, "n0", "n1", 4, 50003, 3, 50003);
	assert_true(pop_type(restored, FO_HB_ACK, &m));
	assert_int_equal(m.stamp, 50003);
	fo_msg_clear(&m);
	/* the restored entry is written back unchanged */
	char *again;
	size_t alen;
	assert_int_equal(fo_journal_encode(restored, &again, &alen), 0);
	assert_string_equal(again, text);
	free(again);
	/* a journal entry does not make a voter: n3 was never reported */
	assert_int_equal(fo_journal_restore(restored, "failed-over n3 9\n", 17, err, sizeof(err)), 1);
	assert_int_equal(fo_voters(restored), 3);
	free(text);
	fo_free(restored);
}

/* Every malformed journal is refused whole, with the line and the reason;
 * nothing of it is applied. */
static void test_journal_errors(void **state)
{
	(void)state;
	static const struct {
		const char *text;
		const char *why;
	} bad[] = {
	    {"failed-over\n", "line 1: expected \"failed-over"},
	    {"# c\nfailed-over n0\n", "line 2: expected a name and an incarnation"},
	    {"failed-over n0 \n", "line 1: the incarnation must be a decimal"},
	    {"failed-over n0 0\n", "line 1: the incarnation must be a decimal"},
	    {"failed-over n0 007\n", "without leading zeros"},
	    {"failed-over n0 -1\n", "decimal digits only"},
	    {"failed-over n0 1x\n", "decimal digits only"},
	    {"failed-over n0 18446744073709551616\n", "larger than"},
	    {"failed-over n0 123456789012345678901\n", "the incarnation must be a decimal"},
	    {"failed-over  n0 1\n", "the name must be"},
	    {"failed-over n0 1 2\n", "decimal digits only"},
	    {"failed-over n/0 1\n", "the name must be"},
	    {"failed-over n0 1\r\n", "decimal digits only"},
	    {"Failed-over n0 1\n", "line 1: expected"},
	    {" failed-over n0 1\n", "line 1: expected"},
	    {"failed-over n0 2\nfailed-over n1 x\n", "line 2:"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct fo *f = solo(false, 1000);
		char err[256];
		int rc = fo_journal_restore(f, bad[i].text, strlen(bad[i].text), err, sizeof(err));
		if (rc != -EINVAL || !strstr(err, bad[i].why))
			fail_msg("journal %zu %s: rc %d, err \"%s\", want \"%s\"", i, bad[i].text, rc,
			         err, bad[i].why);
		uint64_t v = fo_journal_version(f);
		assert_int_equal(v, 0); /* nothing applied */
		fo_free(f);
	}
	/* a 64-character name is one too many; a NUL byte; too large */
	char longname[128];
	snprintf(longname, sizeof(longname), "failed-over %064d 1\n", 0);
	struct fo *f = solo(false, 1000);
	char err[256];
	assert_int_equal(fo_journal_restore(f, longname, strlen(longname), err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "the name must be"));
	assert_int_equal(fo_journal_restore(f, "failed-over n0 1\n\0", 18, err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "line 2: contains a NUL"));
	assert_int_equal(fo_journal_restore(f, "", FO_JOURNAL_MAX_BYTES + 1, err, sizeof(err)),
	                 -EINVAL);
	assert_non_null(strstr(err, "bytes, more than"));
	assert_int_equal(fo_journal_version(f), 0);
	/* valid: comments, blank lines, no final newline, repeats (highest
	 * wins), the largest incarnation, a 63-character name, our own name
	 * (skipped) */
	char good[512];
	snprintf(good, sizeof(good),
	         "# comment\n\nfailed-over n2 5\nfailed-over n2 7\nfailed-over n2 6\n"
	         "failed-over n0 4\nfailed-over n3 18446744073709551615\n"
	         "failed-over %063d 2",
	         0);
	assert_int_equal(fo_journal_restore(f, good, strlen(good), err, sizeof(err)), 6);
	char *text;
	size_t len;
	assert_int_equal(fo_journal_encode(f, &text, &len), 0);
	assert_non_null(strstr(text, "\nfailed-over n2 7\n"));
	assert_null(strstr(text, "failed-over n2 5"));
	assert_null(strstr(text, "failed-over n0 "));
	assert_non_null(strstr(text, "\nfailed-over n3 18446744073709551615\n"));
	/* sorted by name: the zeros come first */
	assert_true(strstr(text, "failed-over 000") < strstr(text, "failed-over n2"));
	/* and what it writes reads back the same */
	struct fo *g = solo(false, 1000);
	assert_int_equal(fo_journal_restore(g, text, len, err, sizeof(err)), 3);
	char *text2;
	size_t len2;
	assert_int_equal(fo_journal_encode(g, &text2, &len2), 0);
	assert_string_equal(text, text2);
	free(text);
	free(text2);
	fo_free(f);
	fo_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_quorum_math),
	    cmocka_unit_test(test_self_fence_once),
	    cmocka_unit_test(test_acks_refused_for_dead),
	    cmocka_unit_test(test_fence_order),
	    cmocka_unit_test(test_force_leave),
	    cmocka_unit_test(test_exchange_3),
	    cmocka_unit_test(test_exchange_5),
	    cmocka_unit_test(test_competing_proposer_adopts),
	    cmocka_unit_test(test_coordinator_takeover),
	    cmocka_unit_test(test_acceptor_refusals),
	    cmocka_unit_test(test_restart_order_parallel),
	    cmocka_unit_test(test_remote_fence),
	    cmocka_unit_test(test_handback),
	    cmocka_unit_test(test_plan_compute),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_deadlines),
	    cmocka_unit_test(test_voters_reported),
	    cmocka_unit_test(test_voters_reported_by_dead),
	    cmocka_unit_test(test_incarnations_never_share_a_vm),
	    cmocka_unit_test(test_fence_order_union),
	    cmocka_unit_test(test_target_incarnation),
	    cmocka_unit_test(test_dead_target_entries_replaced),
	    cmocka_unit_test(test_rounds_exhausted),
	    cmocka_unit_test(test_dead_grace),
	    cmocka_unit_test(test_random_garbage),
	    cmocka_unit_test(test_fence_order_destroys_unlisted),
	    cmocka_unit_test(test_ack_bound_acceptor),
	    cmocka_unit_test(test_ack_bound_proposer),
	    cmocka_unit_test(test_ack_bound_learner),
	    cmocka_unit_test(test_journal_survives_restart),
	    cmocka_unit_test(test_journal_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
