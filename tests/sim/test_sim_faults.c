/*
 * test_sim_faults.c — Lifeguard and partition scenarios on the simulator:
 * a slow (overloaded) host, sustained packet loss, a one-way block, and a
 * 3|2 partition that heals. The invariants are DESIGN.md's: a healthy host
 * is never declared dead by a slow or lossy peer, and after a partition
 * heals every member converges to one view.
 * A failure prints its seed; replay with MV_SIM_SEED=<seed> MV_SIM_TEST=<name>.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sim_scenario.h"

/*
 * One host is overloaded: everything it receives is processed, and
 * everything it sends leaves, 400..800 ms late — longer than the probe
 * timeout, so its own probes "fail". Lifeguard must raise its awareness
 * score (it blames itself) and stretch its timeouts so that no healthy
 * peer is ever declared DEAD, by it or by anyone.
 */
SCN_TEST(test_slow_node_kills_nobody)
{
	const int n = 10;
	struct sim *s = scn_cluster(n, NULL);
	sim_run_for(s, 3000);
	sim_stats_reset(s);
	int slow = 0;
	sim_set_slow(s, slow, 400, 800);
	sim_run_for(s, 120000);
	uint64_t sus_healthy = 0;
	for (int i = 0; i < n; i++)
		if (i != slow)
			sus_healthy += sim_stats(s, i)->suspected;
	print_message("slow n%d for 120 s: its max awareness %u; healthy peers suspected %llu "
	              "times, dead %llu; slow node suspected %u, dead %u\n",
	              slow, sim_stats(s, slow)->max_local_health, (unsigned long long)sus_healthy,
	              (unsigned long long)(sim_total_dead(s) - sim_stats(s, slow)->dead),
	              sim_stats(s, slow)->suspected, sim_stats(s, slow)->dead);
	for (int i = 0; i < n; i++)
		if (i != slow)
			scn_assert(s, sim_stats(s, i)->dead == 0,
			           "healthy n%d declared DEAD %u times while n%d was slow", i,
			           sim_stats(s, i)->dead, slow);
	scn_assert(s, sim_stats(s, slow)->max_local_health > 0,
	           "slow n%d never raised its awareness score", slow);
	/* Recovery: once the host is fast again everyone is ALIVE in one view. */
	sim_set_slow(s, slow, 0, 0);
	int64_t t = sim_run_until(s, sim_pred_all_alive, NULL, 30000);
	scn_assert(s, t >= 0, "no single all-ALIVE view 30 s after the slow node recovered");
	scn_check_counters(s);
	scn_free(s);
}

/* 10% loss on every link for 10 simulated minutes: suspicions are fine,
 * a single DEAD is a false death. */
SCN_TEST(test_loss_10pct_no_false_death)
{
	const int n = 20;
	struct sim *s = scn_cluster(n, NULL);
	sim_stats_reset(s);
	sim_set_loss(s, -1, -1, 0.10);
	sim_run_for(s, 600000);
	uint32_t max_lh = 0;
	for (int i = 0; i < n; i++)
		if (sim_stats(s, i)->max_local_health > max_lh)
			max_lh = sim_stats(s, i)->max_local_health;
	print_message("10%% loss, n=%d, 600 s: %llu suspicions, %llu DEAD, max awareness %u, "
	              "%llu msgs lost\n",
	              n, (unsigned long long)sim_total_suspected(s),
	              (unsigned long long)sim_total_dead(s), max_lh,
	              (unsigned long long)sim_counters(s)->dropped_loss);
	for (int i = 0; i < n; i++)
		scn_assert(s, sim_stats(s, i)->dead == 0,
		           "n%d falsely declared DEAD (%u times, first at %lld ms)", i,
		           sim_stats(s, i)->dead, (long long)sim_stats(s, i)->first_dead_at);
	sim_set_loss(s, -1, -1, 0.0);
	scn_assert(s, sim_run_until(s, sim_pred_all_alive, NULL, 30000) >= 0,
	           "no single all-ALIVE view 30 s after the loss stopped");
	scn_check_counters(s);
	scn_free(s);
}

/* a -> b blocked one way: b never hears a directly, but indirect probes
 * through the others get through, so nobody is declared DEAD. */
SCN_TEST(test_one_way_block_kills_nobody)
{
	const int n = 6;
	struct sim *s = scn_cluster(n, NULL);
	sim_stats_reset(s);
	sim_block(s, 1, 2);
	sim_run_for(s, 120000);
	print_message("one-way n1->n2 blocked for 120 s: %llu suspicions, %llu DEAD\n",
	              (unsigned long long)sim_total_suspected(s),
	              (unsigned long long)sim_total_dead(s));
	scn_assert(s, sim_total_dead(s) == 0, "a DEAD declaration with one one-way block");
	scn_assert(s, sim_all_alive(s), "not one all-ALIVE view under a one-way block");
	sim_heal(s);
	scn_check_counters(s);
	scn_free(s);
}

struct sides {
	const int *group;
};

/* Every live node sees every node of the other side DEAD. */
static bool pred_sides_dead(struct sim *s, void *arg)
{
	const struct sides *sd = arg;
	for (int i = 0; i < sim_size(s); i++)
		for (int j = 0; j < sim_size(s); j++)
			if (sd->group[i] != sd->group[j] && sim_state_of(s, i, j) != SWIM_DEAD)
				return false;
	return true;
}

/* Partitions s into `group` and runs until each side holds the other DEAD
 * (asserted): the ms it took. Not a detection bound (test_crash_* has
 * those): failed probes raise every node's awareness, which stretches its
 * probe period up to (awareness_max + 1) times, and a small side can never
 * gather the expected confirmations. Wait long enough for both to settle. */
static int64_t split_until_dead(struct sim *s, const int *group)
{
	const struct swim_config *cfg = scn_default_cfg();
	int n = sim_size(s);
	struct sides sd = {group};
	sim_partition(s, group);
	uint64_t bound = 2 * sim_suspicion_max_ms(cfg, n) +
	                 (uint64_t)(n + 1) * (cfg->awareness_max + 1) * cfg->probe_interval_ms;
	int64_t t_split = sim_run_until(s, pred_sides_dead, &sd, bound);
	scn_assert(s, t_split >= 0, "sides did not declare each other DEAD within %llu ms",
	           (unsigned long long)bound);
	return t_split;
}

/* 3|2 partition held until each side has the other DEAD, then healed:
 * one all-ALIVE view again, by push-pull / rejoin. */
SCN_TEST(test_partition_3_2_heals)
{
	const int n = 5;
	const struct swim_config *cfg = scn_default_cfg();
	struct sim *s = scn_cluster(n, NULL);
	sim_run_for(s, 2000);
	static const int group[5] = {0, 0, 0, 1, 1};
	int64_t t_split = split_until_dead(s, group);
	/* The minority side must not have declared its own members dead. */
	for (int i = 0; i < n; i++)
		for (int j = 0; j < n; j++)
			if (group[i] == group[j] && i != j)
				scn_assert(s, sim_state_of(s, i, j) == SWIM_ALIVE,
				           "n%d sees same-side n%d as %d", i, j,
				           sim_state_of(s, i, j));
	sim_run_for(s, 5000);
	sim_heal(s);
	/* Healing relies on the periodic push-pull (or rejoin of dead members);
	 * allow two push-pull periods plus dissemination. */
	uint64_t heal_bound = 2ull * cfg->push_pull_interval_ms + 10000;
	int64_t t_heal = sim_run_until(s, sim_pred_all_alive, NULL, heal_bound);
	print_message("partition 3|2: split (other side DEAD everywhere) after %lld ms, healed "
	              "into one view %lld ms after heal (bound %llu)\n",
	              (long long)t_split, (long long)t_heal, (unsigned long long)heal_bound);
	scn_assert(s, t_heal >= 0, "no single all-ALIVE view within %llu ms of healing",
	           (unsigned long long)heal_bound);
	sim_run_for(s, 30000);
	scn_assert(s, sim_all_alive(s), "view diverged after healing");
	scn_check_counters(s);
	scn_free(s);
}

/* 40|40 partition (4 digest buckets at n = 80) held until each side has
 * the other DEAD, then healed: push-pull by digest (no full tables after
 * the joins) brings one all-ALIVE view again. */
SCN_TEST(test_partition_heals_by_digest)
{
	const int n = 80;
	const struct swim_config *cfg = scn_default_cfg();
	struct sim *s = scn_cluster(n, NULL);
	sim_run_for(s, 2000);
	static int group[80];
	for (int i = 0; i < n; i++)
		group[i] = i % 2;
	int64_t t_split = split_until_dead(s, group);
	sim_run_for(s, 5000);
	sim_stats_reset(s);
	sim_heal(s);
	/* the scaled push-pull interval at n = 80 is 3 x the base, twice */
	uint64_t heal_bound = 6ull * cfg->push_pull_interval_ms + 10000;
	int64_t t_heal = sim_run_until(s, sim_pred_all_alive, NULL, heal_bound);
	scn_assert(s, t_heal >= 0, "no single all-ALIVE view within %llu ms of healing",
	           (unsigned long long)heal_bound);
	/* The heal may come before any push-pull (dead members are probed
	 * and told, and refute: issue 11); the push-pulls of the next 30 s
	 * then exchange digests only, never whole tables. */
	sim_run_for(s, 30000);
	scn_assert(s, sim_all_alive(s), "view diverged after healing");
	uint64_t digests = 0, full = 0;
	for (int i = 0; i < n; i++) {
		digests += sim_traffic(s, i)->pp_digests;
		full += sim_traffic(s, i)->pp_full;
	}
	print_message("partition 40|40: split after %lld ms, one view %lld ms after heal (bound "
	              "%llu); %llu digests, %llu full push-pulls in the 30 s after it\n",
	              (long long)t_split, (long long)t_heal, (unsigned long long)heal_bound,
	              (unsigned long long)digests, (unsigned long long)full);
	scn_assert(s, digests > 0 && full == 0,
	           "healed; then %llu digests and %llu full push-pulls",
	           (unsigned long long)digests, (unsigned long long)full);
	scn_check_counters(s);
	scn_free(s);
}

int main(void)
{
	scn_filter_from_env();
	const struct CMUnitTest tests[] = {
	    scn_test(test_slow_node_kills_nobody),     scn_test(test_loss_10pct_no_false_death),
	    scn_test(test_one_way_block_kills_nobody), scn_test(test_partition_3_2_heals),
	    scn_test(test_partition_heals_by_digest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
