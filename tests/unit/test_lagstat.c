/*
 * test_lagstat.c — agent/util/lagstat.c: the sliding window of loop-lag
 * samples, its nearest-rank p99 and maxima.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "lagstat.h"

static void test_empty(void **state)
{
	(void)state;
	struct mv_lagstat s;
	struct mv_lag_summary sum;
	mv_lagstat_init(&s);
	mv_lagstat_summary(&s, &sum);
	assert_int_equal(sum.n, 0);
	assert_int_equal(sum.p99_us, 0);
	assert_int_equal(sum.max_us, 0);
	assert_int_equal(sum.count, 0);
}

/* 100 samples, one of them a 5 s stall: the p99 (rank 99 of 100) is the
 * largest ordinary sample, the max is the stall; 101 samples with two
 * stalls put a stall at rank 100 = ceil(0.99 * 101). */
static void test_p99_nearest_rank(void **state)
{
	(void)state;
	struct mv_lagstat s;
	struct mv_lag_summary sum;
	mv_lagstat_init(&s);
	for (uint32_t i = 0; i < 99; i++)
		mv_lagstat_add(&s, 100 + i); /* 100..198 us */
	mv_lagstat_add(&s, 5000000);
	mv_lagstat_summary(&s, &sum);
	assert_int_equal(sum.n, 100);
	assert_int_equal(sum.p99_us, 198);
	assert_int_equal(sum.max_us, 5000000);
	assert_int_equal(sum.max_ever_us, 5000000);
	mv_lagstat_add(&s, 4000000);
	mv_lagstat_summary(&s, &sum);
	assert_int_equal(sum.n, 101);
	assert_int_equal(sum.p99_us, 4000000);
}

/* The window forgets: after LAGSTAT_WINDOW quiet samples the stall is out
 * of the p99 and the window's max, but stays in max_ever. */
static void test_window_slides(void **state)
{
	(void)state;
	struct mv_lagstat s;
	struct mv_lag_summary sum;
	mv_lagstat_init(&s);
	mv_lagstat_add(&s, 3000000);
	for (uint32_t i = 0; i < LAGSTAT_WINDOW - 1; i++)
		mv_lagstat_add(&s, 50);
	mv_lagstat_summary(&s, &sum);
	assert_int_equal(sum.n, LAGSTAT_WINDOW);
	assert_int_equal(sum.max_us, 3000000);
	mv_lagstat_add(&s, 60); /* pushes the stall out */
	mv_lagstat_summary(&s, &sum);
	assert_int_equal(sum.n, LAGSTAT_WINDOW);
	assert_int_equal(sum.max_us, 60);
	assert_int_equal(sum.p99_us, 50);
	assert_int_equal(sum.max_ever_us, 3000000);
	assert_int_equal(sum.count, LAGSTAT_WINDOW + 1);
}

static void test_saturates(void **state)
{
	(void)state;
	struct mv_lagstat s;
	struct mv_lag_summary sum;
	mv_lagstat_init(&s);
	mv_lagstat_add(&s, UINT64_MAX);
	mv_lagstat_summary(&s, &sum);
	assert_int_equal(sum.max_us, UINT32_MAX);
	assert_int_equal(sum.p99_us, UINT32_MAX);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_p99_nearest_rank),
	    cmocka_unit_test(test_window_slides),
	    cmocka_unit_test(test_saturates),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
