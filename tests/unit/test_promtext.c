/*
 * test_promtext.c — agent/util/promtext.c: the Prometheus text format
 * (HELP/TYPE lines, escaping, values) and histograms (cumulative buckets
 * ending in +Inf, _sum and _count).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "promtext.h"

static char *render_done(struct mv_prom *p)
{
	size_t len = 0;
	char *body = mv_prom_take(p, &len);
	assert_non_null(body);
	assert_int_equal(strlen(body), len);
	return body;
}

static void test_family_and_samples(void **state)
{
	(void)state;
	struct mv_prom p;
	mv_prom_init(&p);
	mv_prom_family(&p, "meshvisor_members", "gauge", "Members by state.");
	struct mv_prom_label l[] = {{"state", "alive"}};
	mv_prom_sample(&p, "meshvisor_members", l, 1, 3);
	mv_prom_sample(&p, "meshvisor_up", NULL, 0, 1);
	mv_prom_sample(&p, "meshvisor_lag_seconds", NULL, 0, 0.0125);
	mv_prom_sample(&p, "meshvisor_big", NULL, 0, 18446744073709551615.0);
	mv_prom_sample(&p, "meshvisor_inf", NULL, 0, INFINITY);
	mv_prom_sample(&p, "meshvisor_ninf", NULL, 0, -INFINITY);
	mv_prom_sample(&p, "meshvisor_nan", NULL, 0, NAN);
	char *b = render_done(&p);
	assert_string_equal(b, "# HELP meshvisor_members Members by state.\n"
	                       "# TYPE meshvisor_members gauge\n"
	                       "meshvisor_members{state=\"alive\"} 3\n"
	                       "meshvisor_up 1\n"
	                       "meshvisor_lag_seconds 0.0125\n"
	                       "meshvisor_big 1.84467440737096e+19\n"
	                       "meshvisor_inf +Inf\n"
	                       "meshvisor_ninf -Inf\n"
	                       "meshvisor_nan NaN\n");
	free(b);
}

static void test_escaping(void **state)
{
	(void)state;
	struct mv_prom p;
	mv_prom_init(&p);
	/* HELP escapes \ and newline but not " ; label values escape all three */
	mv_prom_family(&p, "m", "counter", "a \\ b\nc \"q\"");
	struct mv_prom_label l[] = {{"op", "vm \"x\"\\\n"}, {"code", ""}};
	mv_prom_sample(&p, "m_total", l, 2, 7);
	char *b = render_done(&p);
	assert_string_equal(b, "# HELP m a \\\\ b\\nc \"q\"\n"
	                       "# TYPE m counter\n"
	                       "m_total{op=\"vm \\\"x\\\"\\\\\\n\",code=\"\"} 7\n");
	free(b);
}

static void test_histogram_cumulative(void **state)
{
	(void)state;
	static const double bounds[] = {0.1, 1, 10};
	struct mv_hist h;
	mv_hist_init(&h, bounds, 3);
	/* 0.05 and 0.1 (a bound is inclusive) in le=0.1, 0.5 in le=1, 20 in +Inf */
	mv_hist_observe(&h, 0.05);
	mv_hist_observe(&h, 0.1);
	mv_hist_observe(&h, 0.5);
	mv_hist_observe(&h, 20);
	struct mv_prom p;
	mv_prom_init(&p);
	struct mv_prom_label l[] = {{"lane", "critical"}};
	mv_prom_histogram(&p, "x_seconds", l, 1, &h);
	mv_prom_histogram(&p, "y_seconds", NULL, 0, &h);
	char *b = render_done(&p);
	assert_string_equal(b, "x_seconds_bucket{lane=\"critical\",le=\"0.1\"} 2\n"
	                       "x_seconds_bucket{lane=\"critical\",le=\"1\"} 3\n"
	                       "x_seconds_bucket{lane=\"critical\",le=\"10\"} 3\n"
	                       "x_seconds_bucket{lane=\"critical\",le=\"+Inf\"} 4\n"
	                       "x_seconds_sum{lane=\"critical\"} 20.65\n"
	                       "x_seconds_count{lane=\"critical\"} 4\n"
	                       "y_seconds_bucket{le=\"0.1\"} 2\n"
	                       "y_seconds_bucket{le=\"1\"} 3\n"
	                       "y_seconds_bucket{le=\"10\"} 3\n"
	                       "y_seconds_bucket{le=\"+Inf\"} 4\n"
	                       "y_seconds_sum 20.65\n"
	                       "y_seconds_count 4\n");
	free(b);
}

static void test_empty_histogram_and_shared_bounds(void **state)
{
	(void)state;
	struct mv_hist h;
	mv_hist_init(&h, mv_hist_phase_seconds, mv_hist_phase_seconds_n);
	assert_true(mv_hist_phase_seconds_n <= MV_HIST_MAX_BUCKETS);
	assert_true(mv_hist_call_seconds_n <= MV_HIST_MAX_BUCKETS);
	for (size_t i = 1; i < mv_hist_call_seconds_n; i++)
		assert_true(mv_hist_call_seconds[i] > mv_hist_call_seconds[i - 1]);
	for (size_t i = 1; i < mv_hist_phase_seconds_n; i++)
		assert_true(mv_hist_phase_seconds[i] > mv_hist_phase_seconds[i - 1]);
	struct mv_prom p;
	mv_prom_init(&p);
	mv_prom_histogram(&p, "z", NULL, 0, &h);
	char *b = render_done(&p);
	/* every bucket, +Inf, _sum, _count: all zero */
	size_t lines = 0;
	for (char *s = b; *s; s++)
		lines += *s == '\n';
	assert_int_equal(lines, mv_hist_phase_seconds_n + 3);
	assert_non_null(strstr(b, "z_bucket{le=\"+Inf\"} 0\nz_sum 0\nz_count 0\n"));
	free(b);
}

static void test_cap_fails_cleanly(void **state)
{
	(void)state;
	struct mv_prom p;
	mv_prom_init(&p);
	char *help = malloc(MV_PROM_MAX_BYTES / 4);
	assert_non_null(help);
	memset(help, 'h', MV_PROM_MAX_BYTES / 4 - 1);
	help[MV_PROM_MAX_BYTES / 4 - 1] = '\0';
	for (int i = 0; i < 5; i++)
		mv_prom_family(&p, "m", "gauge", help);
	free(help);
	assert_true(mv_prom_failed(&p));
	size_t len = 1;
	assert_null(mv_prom_take(&p, &len));
	assert_int_equal(len, 0);
	/* nothing written: an empty body, not NULL */
	mv_prom_init(&p);
	char *b = mv_prom_take(&p, &len);
	assert_non_null(b);
	assert_string_equal(b, "");
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_family_and_samples),
	    cmocka_unit_test(test_escaping),
	    cmocka_unit_test(test_histogram_cumulative),
	    cmocka_unit_test(test_empty_histogram_and_shared_bounds),
	    cmocka_unit_test(test_cap_fails_cleanly),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
