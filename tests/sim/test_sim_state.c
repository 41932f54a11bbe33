/*
 * test_sim_state.c — node-state gossip scenarios on the simulator
 * (sim_state.h): N = 100 nodes, 800-byte records, sync every 1000 ms,
 * push fanout 3, network delay 1 ms + 0..1 ms jitter.
 *
 * The bounds, and where they come from:
 *
 *  Push path. An urgent change goes to 3 peers, and each node that learns
 *  it relays once to 3 more, hops = ceil(log3 100) + 1 = 6. Each hop costs
 *  at most 2 ms, so the rumor is over within 6 * 2 = 12 ms. Since every
 *  informed node relays once, a node is missed with probability about
 *  e^-3 = 5% (Demers' residue). Measured over 2,000 changes at 1% loss
 *  (sync disabled): 5.5 nodes of 100 missed on average, at most 17, the
 *  tail halving with each further node. We assert that at least 75% of
 *  the nodes have it 50 ms after the change (25 missed: ~1e-6 per change).
 *
 *  Anti-entropy, for the rest. A node that missed the rumor learns it at
 *  its own next SYNC (within one interval) unless the peer it drew missed
 *  it too (5%) or one of the at most seven messages of the exchange (SYNC,
 *  three TREEs, DIGEST, two DELTAs) is lost (7% at 1% loss); other nodes'
 *  SYNCs to it help as well. So per interval a missing node stays missing
 *  with probability < 0.13, and after 4
 *  intervals < 3e-4: over ~5 missed nodes per change and a dozen changes
 *  per test the chance of exceeding 4 intervals + 50 ms is ~1e-2 at worst
 *  per run, and far lower in practice (incoming SYNCs). We assert
 *  5000 ms, a further interval of margin.
 *
 *  Partition heal. After the heal, membership brings peers back in 2 s;
 *  then anti-entropy is push-pull between random pairs: the fraction of
 *  nodes that lack the other side's news goes 1/2 -> ~1/4 -> ... roughly
 *  squaring each round, so ~5 rounds reach all 100. We assert convergence
 *  within 2 s + 10 rounds = 12 s.
 *
 *  Changes by anti-entropy alone (the bucket tree). Ten hosts change
 *  without a push: each node learns them only from differing SYNCs. A
 *  node lacking k of them heals at least one per exchange that reaches the
 *  leaves, and in practice all of those its peer has, so the epidemic of
 *  push-pull rounds above applies: ~log2(100) + ln(100) ~ 12 rounds with
 *  loss. We assert 20 s. What the exchange must not cost: a DIGEST lists
 *  only the records of differing buckets (of 4,096; ten changed hosts
 *  differ in at most ten), so it averages far below the whole version
 *  vector (100 versions, ~1.3 KB): we assert a quarter of it.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "sim_state.h"

#define N 100
#define PUSH_WINDOW_MS 50
#define AE_BOUND_MS 5000
#define HEAL_BOUND_MS 12000
#define LAZY_BOUND_MS 20000

static void check_counters(struct ssim *s)
{
	const struct ssim_counters *c = ssim_counters(s);
	assert_int_equal(c->rejected, 0);
	assert_int_equal(c->to_self, 0);
	assert_int_equal(c->regress, 0);
	assert_int_equal(c->unroutable, 0);
}

static struct ssim *cluster(double loss)
{
	struct ssim *s = ssim_new(N, NULL, 0);
	ssim_set_loss(s, loss);
	ssim_publish_all(s);
	/* start-up by anti-entropy alone: every record from one node to all */
	int64_t t = ssim_run_until(s, ssim_pred_converged, NULL, 60000);
	fprintf(stderr, "  initial convergence (anti-entropy only): %" PRId64 " ms\n", t);
	assert_true(t >= 0);
	return s;
}

static int count_having(struct ssim *s, int host)
{
	int n = 0;
	for (int o = 0; o < N; o++)
		n += ssim_has(s, o, host, ssim_incarnation(s, host), ssim_version(s, host));
	return n;
}

static void spread_changes(double loss, int changes)
{
	struct ssim *s = cluster(loss);
	int64_t worst = 0;
	int least_pushed = N;
	for (int k = 0; k < changes; k++) {
		int host = (int)(ssim_rand(s) % N);
		ssim_change(s, host, true);
		ssim_run_for(s, PUSH_WINDOW_MS);
		int pushed = count_having(s, host);
		if (pushed < least_pushed)
			least_pushed = pushed;
		assert_true(pushed >= N * 75 / 100);
		int64_t t = ssim_run_until_all_have(s, host, AE_BOUND_MS);
		assert_true(t >= 0);
		t += PUSH_WINDOW_MS;
		if (t > worst)
			worst = t;
		ssim_run_for(s, 500);
	}
	fprintf(stderr,
	        "  loss %.0f%%: %d changes, fewest holding after %d ms: %d/%d, "
	        "slowest to all: %" PRId64 " ms (bound %d)\n",
	        loss * 100, changes, PUSH_WINDOW_MS, least_pushed, N, worst, AE_BOUND_MS);
	assert_true(ssim_run_until(s, ssim_pred_converged, NULL, AE_BOUND_MS) >= 0);
	check_counters(s);
	ssim_free(s);
}

/* A change on one node reaches all 100, no loss. */
static void test_change_spreads_no_loss(void **state)
{
	spread_changes(0.0, 12);
}

/* The same with 1% loss on every message. */
static void test_change_spreads_with_loss(void **state)
{
	spread_changes(0.01, 12);
}

/* Each side of a partition changes; after the heal everyone holds the
 * newest of both, and during it nobody lost the other side's records. */
static void test_partition_heal(void **state)
{
	struct ssim *s = cluster(0.01);
	int group[N];
	for (int i = 0; i < N; i++)
		group[i] = i < N / 2 ? 0 : 1;
	const int a1 = 3, a2 = 10, b1 = 60, b2 = 99;
	uint64_t b_ver_before = ssim_version(s, b1);
	ssim_partition(s, group);
	ssim_run_for(s, 3000); /* membership has noticed (2 s) */
	ssim_change(s, a1, true);
	ssim_change(s, a1, false);
	ssim_change(s, a2, false);
	ssim_change(s, b1, true);
	ssim_run_for(s, 1000);
	ssim_change(s, b1, true);
	ssim_change(s, b2, false);
	ssim_change(s, a1, true);
	ssim_run_for(s, 8000);
	for (int o = 0; o < N; o++) {
		struct nstate *c = ssim_core(s, o);
		/* nothing lost: every host's record is still there */
		assert_int_equal(nstate_count(c), N);
		int own = group[o] == 0 ? a1 : b1;
		int other = group[o] == 0 ? b1 : a1;
		assert_true(ssim_has(s, o, own, ssim_incarnation(s, own), ssim_version(s, own)));
		assert_false(
		    ssim_has(s, o, other, ssim_incarnation(s, other), ssim_version(s, other)));
		/* the other side's pre-partition record is kept (its peers are down) */
		assert_true(ssim_has(s, o, b1, ssim_incarnation(s, b1), b_ver_before));
		assert_int_equal(nstate_peer_count(c), N / 2 - 1);
	}
	ssim_heal(s);
	int64_t t = ssim_run_until(s, ssim_pred_converged, NULL, HEAL_BOUND_MS);
	fprintf(stderr, "  converged %" PRId64 " ms after the heal (bound %d)\n", t, HEAL_BOUND_MS);
	assert_true(t >= 0);
	for (int o = 0; o < N; o++) {
		assert_true(ssim_has(s, o, a1, ssim_incarnation(s, a1), ssim_version(s, a1)));
		assert_true(ssim_has(s, o, b1, ssim_incarnation(s, b1), ssim_version(s, b1)));
		assert_true(ssim_has(s, o, a2, ssim_incarnation(s, a2), ssim_version(s, a2)));
		assert_true(ssim_has(s, o, b2, ssim_incarnation(s, b2), ssim_version(s, b2)));
	}
	check_counters(s);
	ssim_free(s);
}

/* A restarted host's new incarnation (version 0) replaces its old record
 * (a high version) everywhere; while it was down its record was kept. */
static void test_restart_new_incarnation(void **state)
{
	struct ssim *s = cluster(0.01);
	const int h = 5;
	for (int k = 0; k < 10; k++)
		ssim_change(s, h, false);
	assert_true(ssim_run_until_all_have(s, h, 10000) >= 0);
	uint64_t old_inc = ssim_incarnation(s, h), old_ver = ssim_version(s, h);
	assert_int_equal(old_ver, 10);
	ssim_crash(s, h);
	ssim_run_for(s, 5000); /* membership reported it down at 2 s */
	for (int o = 0; o < N; o++) {
		if (o == h)
			continue;
		assert_true(ssim_has(s, o, h, old_inc, old_ver));
		assert_int_equal(nstate_peer_count(ssim_core(s, o)), N - 2);
	}
	ssim_restart(s, h);
	assert_int_equal(ssim_incarnation(s, h), old_inc + 1);
	assert_int_equal(ssim_version(s, h), 0);
	/* the restarted node knows its peers at once and pushes; the others
	 * learn it is back 2 s later, which only matters for replies */
	int64_t t = ssim_run_until_all_have(s, h, AE_BOUND_MS);
	fprintf(stderr, "  new incarnation everywhere after %" PRId64 " ms\n", t);
	assert_true(t >= 0);
	for (int o = 0; o < N; o++) {
		struct nstate_record r;
		assert_true(nstate_find(ssim_core(s, o), "n5", &r));
		assert_int_equal(r.incarnation, old_inc + 1);
		assert_int_equal(r.version, 0);
	}
	/* and the new core got everyone else's records back */
	t = ssim_run_until(s, ssim_pred_converged, NULL, 30000);
	fprintf(stderr, "  restarted node caught up (all converged) after %" PRId64 " ms\n", t);
	assert_true(t >= 0);
	assert_int_equal(nstate_count(ssim_core(s, h)), N);
	check_counters(s);
	ssim_free(s);
}

/* Lazy changes reach everyone with 1% loss by the tree exchange alone,
 * whose DIGESTs list only the differing buckets' records. */
static void test_lazy_changes_converge_by_tree(void **state)
{
	struct ssim *s = cluster(0.01);
	ssim_traffic_reset(s);
	for (int h = 0; h < 10; h++)
		ssim_change(s, h * 7, false);
	int64_t t = ssim_run_until(s, ssim_pred_converged, NULL, LAZY_BOUND_MS);
	uint64_t trees = 0, digests = 0, digest_bytes = 0, pushes = 0;
	for (int i = 0; i < N; i++) {
		const struct ssim_traffic *tr = ssim_traffic(s, i);
		trees += tr->msgs_by_type[NSTATE_TREE];
		digests += tr->msgs_by_type[NSTATE_DIGEST];
		digest_bytes += tr->bytes_by_type[NSTATE_DIGEST];
		pushes += tr->msgs_by_type[NSTATE_PUSH];
	}
	fprintf(stderr,
	        "  10 lazy changes everywhere after %" PRId64 " ms (bound %d); %" PRIu64
	        " TREEs, %" PRIu64 " DIGESTs of %.0f B on average\n",
	        t, LAZY_BOUND_MS, trees, digests, digests ? (double)digest_bytes / digests : 0.0);
	assert_true(t >= 0);
	assert_int_equal(pushes, 0);
	assert_true(trees > 0 && digests > 0);
	/* a whole digest: N versions of ~13 bytes */
	assert_true(digest_bytes / digests < N * 13 / 4);
	check_counters(s);
	ssim_free(s);
}

/* Idle cost: one SYNC per node per interval, and nothing else. */
static void test_idle_is_one_sync(void **state)
{
	struct ssim *s = cluster(0.0);
	ssim_run_for(s, 2000);
	ssim_traffic_reset(s);
	ssim_run_for(s, 10000);
	uint64_t msgs = 0, syncs = 0, bytes = 0;
	for (int i = 0; i < N; i++) {
		const struct ssim_traffic *t = ssim_traffic(s, i);
		msgs += t->msgs;
		syncs += t->msgs_by_type[NSTATE_SYNC];
		bytes += t->bytes;
	}
	fprintf(stderr, "  idle: %.1f msgs, %.1f bytes per node per second\n",
	        (double)msgs / N / 10, (double)bytes / N / 10);
	assert_int_equal(msgs, syncs);
	assert_true(syncs >= N * 9 && syncs <= N * 11);
	assert_true(bytes / syncs < 40);
	check_counters(s);
	ssim_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_change_spreads_no_loss),
	    cmocka_unit_test(test_change_spreads_with_loss),
	    cmocka_unit_test(test_partition_heal),
	    cmocka_unit_test(test_restart_new_incarnation),
	    cmocka_unit_test(test_lazy_changes_converge_by_tree),
	    cmocka_unit_test(test_idle_is_one_sync),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
