/*
 * test_simnet.c — the simulated world itself (sim_net.h): the PRNG draw
 * order it promises per message (a replica world draws by hand what the
 * network should have drawn, and must end in the same state), blocks one
 * and two ways, partitions and heal, duplication, drops at a restarted
 * receiver, and the clock's run_until and step_one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sim_net.h"

struct got {
	int n;
	uint64_t at[64];
	int from[64], to[64], val[64];
};

static void record(void *owner, struct simnet_event *ev)
{
	struct got *g = owner;
	assert_int_equal(ev->kind, SIMNET_EV_DELIVER);
	assert_true(g->n < 64);
	g->at[g->n] = ev->at;
	g->from[g->n] = ev->arg;
	g->to[g->n] = ev->node;
	g->val[g->n] = *(int *)ev->p;
	g->n++;
	free(ev->p);
}

static void *clone_int(void *owner, const void *p)
{
	(void)owner;
	int *c = malloc(sizeof(*c));
	assert_non_null(c);
	*c = *(const int *)p;
	return c;
}

static int *msg(int v)
{
	int *p = malloc(sizeof(*p));
	assert_non_null(p);
	*p = v;
	return p;
}

static struct simnet *world(struct got *g, uint64_t seed)
{
	memset(g, 0, sizeof(*g));
	struct simnet_ops ops = {.dispatch = record, .clone_msg = clone_int};
	return simnet_new(4, seed, &ops, g);
}

/* Per message: dup draw, then per copy a loss draw and a delay draw. */
static void test_draw_order(void **state)
{
	(void)state;
	struct got g, h;
	struct simnet *net = world(&g, 42), *ref = world(&h, 42);
	simnet_set_dup(net, 0.5);
	simnet_set_loss(net, -1, -1, 0.3);
	simnet_set_delay(net, -1, -1, 10, 6);
	uint64_t expect_at[64];
	int expected = 0;
	for (int k = 0; k < 20; k++) {
		simnet_send(net, 0, 1, msg(k));
		int copies = simnet_unit(ref) < 0.5 ? 2 : 1;
		for (int c = 0; c < copies; c++) {
			if (simnet_unit(ref) < 0.3)
				continue;
			expect_at[expected++] = 10 + simnet_below(ref, 7);
		}
	}
	/* the two PRNGs are in the same place */
	assert_true(simnet_rand(net) == simnet_rand(ref));
	simnet_run_for(net, 100);
	assert_int_equal(g.n, expected);
	assert_true(simnet_counters(net)->duplicated > 0);
	assert_true(simnet_counters(net)->dropped_loss > 0);
	/* arrivals in time order, each time one the replica drew */
	for (int i = 0; i < g.n; i++) {
		if (i > 0)
			assert_true(g.at[i] >= g.at[i - 1]);
		bool found = false;
		for (int j = 0; j < expected && !found; j++)
			if (expect_at[j] == g.at[i]) {
				expect_at[j] = UINT64_MAX;
				found = true;
			}
		assert_true(found);
	}
	simnet_free(net);
	simnet_free(ref);
}

static void test_blocks_partition_heal(void **state)
{
	(void)state;
	struct got g;
	struct simnet *net = world(&g, 7);
	simnet_block(net, 0, 1); /* one way */
	assert_false(simnet_link_open(net, 0, 1));
	assert_true(simnet_link_open(net, 1, 0));
	assert_int_equal(simnet_send(net, 0, 1, msg(1)), SIMNET_BLOCKED);
	assert_int_equal(simnet_send(net, 1, 0, msg(2)), SIMNET_SENT);
	simnet_block_both(net, 2, 3);
	assert_int_equal(simnet_send(net, 2, 3, msg(3)), SIMNET_BLOCKED);
	assert_int_equal(simnet_send(net, 3, 2, msg(4)), SIMNET_BLOCKED);
	simnet_unblock_both(net, 2, 3);
	assert_int_equal(simnet_send(net, 3, 2, msg(5)), SIMNET_SENT);
	int groups[4] = {0, 0, 1, 1};
	simnet_partition(net, groups);
	assert_int_equal(simnet_send(net, 1, 2, msg(6)), SIMNET_BLOCKED);
	assert_int_equal(simnet_send(net, 2, 3, msg(7)), SIMNET_SENT);
	simnet_heal(net); /* lifts the partition and the block 0 -> 1 */
	assert_int_equal(simnet_send(net, 0, 1, msg(8)), SIMNET_SENT);
	assert_int_equal(simnet_send(net, 1, 2, msg(9)), SIMNET_SENT);
	simnet_run_for(net, 10);
	int want[] = {2, 5, 7, 8, 9};
	assert_int_equal(g.n, 5);
	for (int i = 0; i < 5; i++) {
		bool found = false;
		for (int j = 0; j < g.n; j++)
			found |= g.val[j] == want[i];
		assert_true(found);
	}
	assert_int_equal(simnet_counters(net)->dropped_block, 4);
	simnet_free(net);
}

/* A message to an endpoint that goes down and up before it arrives is
 * lost; the loopback arrives at once, with no draw. */
static void test_restart_drops_and_loopback(void **state)
{
	(void)state;
	struct got g, h;
	struct simnet *net = world(&g, 9), *ref = world(&h, 9);
	simnet_set_delay(net, -1, -1, 50, 0);
	simnet_send(net, 0, 1, msg(1));
	simnet_send(net, 0, 2, msg(2));
	simnet_send(net, 3, 3, msg(3));
	simnet_run_for(net, 10);
	simnet_down(net, 1);
	simnet_up(net, 1);
	simnet_run_for(net, 100);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.val[0], 3);
	assert_true(g.at[0] == 0);
	assert_int_equal(g.val[1], 2);
	assert_true(g.at[1] == 50);
	assert_int_equal(simnet_counters(net)->dropped_down, 1);
	/* two delay draws (below(1) still draws), none for the loopback */
	simnet_below(ref, 1);
	simnet_below(ref, 1);
	assert_true(simnet_rand(net) == simnet_rand(ref));
	simnet_free(net); /* nothing in flight: no leak under ASan */
	simnet_free(ref);
}

static bool got_two(void *arg)
{
	return ((struct got *)arg)->n >= 2;
}

static void test_run_until(void **state)
{
	(void)state;
	struct got g;
	struct simnet *net = world(&g, 3);
	simnet_set_delay(net, -1, -1, 30, 0);
	simnet_send(net, 0, 1, msg(1));
	simnet_run_for(net, 5);
	simnet_send(net, 1, 0, msg(2));
	assert_int_equal(simnet_run_until(net, got_two, &g, 100), 30); /* at t = 35 */
	assert_true(simnet_now(net) == 35);
	simnet_send(net, 1, 0, msg(3)); /* still in flight at simnet_free */
	assert_int_equal(simnet_run_until(net, got_two, &g, 0), 0);
	simnet_free(net);
}

/* step_one runs one event at a time, in (time, send) order, the clock
 * moving to each; a message to a restarted receiver is one step that
 * reaches no dispatch. */
static void test_step_one(void **state)
{
	(void)state;
	struct got g;
	struct simnet *net = world(&g, 5);
	simnet_set_delay(net, -1, -1, 10, 0);
	for (int to = 1; to <= 3; to++) /* all due at t = 10 */
		simnet_send(net, 0, to, msg(to));
	simnet_down(net, 2);
	simnet_up(net, 2);
	simnet_step_one(net);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.val[0], 1);
	assert_true(simnet_now(net) == 10);
	assert_int_equal(simnet_pending(net), 2);
	simnet_step_one(net);
	assert_int_equal(g.n, 1);
	assert_int_equal(simnet_counters(net)->dropped_down, 1);
	assert_int_equal(simnet_pending(net), 1);
	simnet_step_one(net);
	assert_int_equal(g.n, 2);
	assert_int_equal(g.val[1], 3);
	assert_int_equal(simnet_pending(net), 0);
	assert_true(simnet_now(net) == 10);
	simnet_free(net);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_draw_order),
	    cmocka_unit_test(test_blocks_partition_heal),
	    cmocka_unit_test(test_restart_drops_and_loopback),
	    cmocka_unit_test(test_run_until),
	    cmocka_unit_test(test_step_one),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
