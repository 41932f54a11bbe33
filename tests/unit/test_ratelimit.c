/*
 * test_ratelimit.c — agent/util/ratelimit.c: one line per interval, and
 * the count of the events held back in between.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "ratelimit.h"

static void test_first_allowed_then_held(void **state)
{
	(void)state;
	struct mv_ratelimit r;
	uint64_t held = 99;
	mv_ratelimit_init(&r, 30000);
	assert_true(mv_ratelimit_allow(&r, 1000, &held));
	assert_int_equal(held, 0);
	/* five times a second for 29.8 s: all held back */
	int allowed = 0;
	for (uint64_t t = 1200; t < 31000; t += 200)
		allowed += mv_ratelimit_allow(&r, t, NULL);
	assert_int_equal(allowed, 0);
	/* the next one after the interval says how many were held */
	assert_true(mv_ratelimit_allow(&r, 31000, &held));
	assert_int_equal(held, 149);
	/* and the count restarts */
	assert_false(mv_ratelimit_allow(&r, 31001, NULL));
	assert_true(mv_ratelimit_allow(&r, 61000, &held));
	assert_int_equal(held, 1);
}

static void test_exact_boundary(void **state)
{
	(void)state;
	struct mv_ratelimit r;
	mv_ratelimit_init(&r, 1000);
	assert_true(mv_ratelimit_allow(&r, 0, NULL)); /* now 0 is a real time */
	assert_false(mv_ratelimit_allow(&r, 999, NULL));
	assert_true(mv_ratelimit_allow(&r, 1000, NULL));
}

static void test_zero_interval_allows_all(void **state)
{
	(void)state;
	struct mv_ratelimit r;
	uint64_t held = 7;
	mv_ratelimit_init(&r, 0);
	for (int i = 0; i < 5; i++) {
		assert_true(mv_ratelimit_allow(&r, 5, &held));
		assert_int_equal(held, 0);
	}
}

static void test_clock_backwards_opens(void **state)
{
	(void)state;
	struct mv_ratelimit r;
	mv_ratelimit_init(&r, 1000);
	assert_true(mv_ratelimit_allow(&r, 5000, NULL));
	assert_true(mv_ratelimit_allow(&r, 10, NULL));
	assert_false(mv_ratelimit_allow(&r, 20, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_first_allowed_then_held),
	    cmocka_unit_test(test_exact_boundary),
	    cmocka_unit_test(test_zero_interval_allows_all),
	    cmocka_unit_test(test_clock_backwards_opens),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
