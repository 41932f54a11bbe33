/*
 * sim_scenario.h — small helpers shared by the cmocka scenario binaries.
 *
 * Include after <cmocka.h>. MV_SIM_TEST=<glob> runs only the matching tests
 * of a binary (with MV_SIM_SEED=<n> that replays one failing scenario).
 * Each scenario runs MV_SIM_REPEAT times (default 3), each with a new seed.
 */
#ifndef MESHVISOR_SIM_SCENARIO_H
#define MESHVISOR_SIM_SCENARIO_H

#include <stdio.h>
#include <stdlib.h>

#include "sim.h"

/* The sim of the running scenario. A failed assertion longjmps out of the
 * test; scn_teardown() then frees what it left, so a failure is reported as
 * a failure and not also as a leak under ASan. */
static struct sim *scn_current;

static inline struct sim *scn_new(int n, const struct swim_config *cfg, uint64_t seed)
{
	scn_current = sim_new(n, cfg, seed);
	return scn_current;
}

static inline void scn_free(struct sim *s)
{
	if (s == scn_current)
		scn_current = NULL;
	sim_free(s);
}

static inline int scn_teardown(void **state)
{
	(void)state;
	sim_free(scn_current);
	scn_current = NULL;
	return 0;
}

#define scn_test(f) cmocka_unit_test_teardown(f, scn_teardown)

/* A cluster of n that joined through n0 (spread over 500 ms) and reached
 * one all-ALIVE view. This is a scenario's set-up, not what it tests (the
 * converge tests check join speed), so it waits up to two push-pull
 * periods: a slow join must not hide the fault a scenario is about. */
static inline struct sim *scn_cluster(int n, const struct swim_config *cfg)
{
	struct swim_config def;
	if (cfg == NULL) {
		swim_config_default(&def);
		cfg = &def;
	}
	uint64_t converge_ms = 2ull * cfg->push_pull_interval_ms + 10000;
	struct sim *s = scn_new(n, cfg, 0);
	sim_join_all(s, 0, 500);
	int64_t t = sim_run_until(s, sim_pred_all_alive, NULL, converge_ms);
	if (t < 0) {
		print_error("seed=%llu: %d nodes did not converge in %llu ms\n",
		            (unsigned long long)sim_seed(s), n, (unsigned long long)converge_ms);
		fail();
	}
	return s;
}

static inline const struct swim_config *scn_default_cfg(void)
{
	static struct swim_config cfg;
	static int done;
	if (!done) {
		swim_config_default(&cfg);
		done = 1;
	}
	return &cfg;
}

/* Fails with the seed when v is outside [lo, hi]. */
#define scn_assert_range(s, what, v, lo, hi)                                                 \
	do {                                                                                 \
		long long v_ = (long long)(v), lo_ = (long long)(lo), hi_ = (long long)(hi); \
		if (v_ < lo_ || v_ > hi_) {                                                  \
			print_error("seed=%llu: %s = %lld, expected [%lld, %lld]\n",         \
			            (unsigned long long)sim_seed(s), what, v_, lo_, hi_);    \
			fail();                                                              \
		}                                                                            \
	} while (0)

#define scn_assert(s, cond, ...)                                                     \
	do {                                                                         \
		if (!(cond)) {                                                       \
			print_error("seed=%llu: ", (unsigned long long)sim_seed(s)); \
			print_error(__VA_ARGS__);                                    \
			print_error("\n");                                           \
			fail_msg("%s", #cond);                                       \
		}                                                                    \
	} while (0)

static inline void scn_check_counters(struct sim *s)
{
	const struct sim_counters *c = sim_counters(s);
	scn_assert(s, c->bad_from == 0, "%llu messages with from != sender",
	           (unsigned long long)c->bad_from);
	scn_assert(s, c->rejected == 0, "%llu messages rejected by a core",
	           (unsigned long long)c->rejected);
	scn_assert(s, c->timer_spins == 0, "%llu timer spins (deadline <= now after timer)",
	           (unsigned long long)c->timer_spins);
}

/* How many times each scenario runs, each with a fresh seed: the runs take
 * milliseconds, and more seeds per CI run find rare interleavings sooner.
 * MV_SIM_REPEAT=<n> overrides; with MV_SIM_SEED set it is 1 (a replay). */
static inline int scn_repeats(void)
{
	const char *seed = getenv("MV_SIM_SEED");
	const char *rep = getenv("MV_SIM_REPEAT");
	if (seed != NULL && *seed)
		return 1;
	if (rep != NULL && atoi(rep) > 0)
		return atoi(rep);
	return 3;
}

/* Defines a cmocka test that runs its body scn_repeats() times. */
#define SCN_TEST(name)                                           \
	static void name##_once(void);                           \
	static void name(void **state)                           \
	{                                                        \
		(void)state;                                     \
		for (int rep_ = scn_repeats(); rep_ > 0; rep_--) \
			name##_once();                           \
	}                                                        \
	static void name##_once(void)

static inline void scn_filter_from_env(void)
{
	const char *f = getenv("MV_SIM_TEST");
	if (f != NULL && *f)
		cmocka_set_test_filter(f);
}

#endif
