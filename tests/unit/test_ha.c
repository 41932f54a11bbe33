/*
 * test_ha.c — agent/daemon/ha.h's quorate stamp: the one line that carries the
 * last quorate moment across an agent restart (format, strict parsing,
 * torn or foreign text refused) and its conversion into the core's clock;
 * and the force-leave guard (issue 13): a node that does not hear a
 * majority of its voting set removes nobody unless the operator states
 * that the majority is gone.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ha.h"
#include "fo_driver.h"

#define BOOT "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

static void test_round_trip(void **state)
{
	(void)state;
	char line[HA_STAMP_LINE_LEN + 1], boot[HA_STAMP_BOOT_LEN + 1];
	uint64_t ms = 0;
	const uint64_t values[] = {0, 1, 123456789, UINT64_MAX};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		assert_int_equal(ha_stamp_format(line, sizeof(line), BOOT, values[i]),
		                 HA_STAMP_LINE_LEN);
		assert_int_equal(strlen(line), HA_STAMP_LINE_LEN);
		assert_int_equal(ha_stamp_parse(line, strlen(line), boot, &ms), 0);
		assert_string_equal(boot, BOOT);
		assert_true(ms == values[i]);
	}
	ha_stamp_format(line, sizeof(line), BOOT, 42);
	assert_memory_equal(
	    line,
	    "meshvisor-quorate-stamp v1 boot=" BOOT " mono_ms=00000000000000000042 sum=", 102);
	assert_int_equal(line[HA_STAMP_LINE_LEN - 1], '\n');
}

static void test_format_refuses(void **state)
{
	(void)state;
	char line[HA_STAMP_LINE_LEN + 1];
	assert_int_equal(ha_stamp_format(line, sizeof(line), "short", 1), -EINVAL);
	assert_int_equal(
	    ha_stamp_format(line, sizeof(line), "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0", 1),
	    -EINVAL);
	assert_int_equal(ha_stamp_format(line, HA_STAMP_LINE_LEN, BOOT, 1), -EINVAL);
	assert_int_equal(ha_stamp_format(NULL, 0, BOOT, 1), -EINVAL);
}

static void test_parse_refuses(void **state)
{
	(void)state;
	char line[HA_STAMP_LINE_LEN + 1], bad[HA_STAMP_LINE_LEN + 8], boot[HA_STAMP_BOOT_LEN + 1];
	uint64_t ms = 7;
	ha_stamp_format(line, sizeof(line), BOOT, 5000);
	/* torn: any prefix, and any one byte changed (the checksum or the layout) */
	for (size_t n = 0; n < HA_STAMP_LINE_LEN; n++)
		assert_int_equal(ha_stamp_parse(line, n, boot, &ms), -EINVAL);
	for (size_t i = 0; i < HA_STAMP_LINE_LEN; i++) {
		memcpy(bad, line, sizeof(line));
		bad[i] = bad[i] == '1' ? '2' : '1';
		assert_int_equal(ha_stamp_parse(bad, HA_STAMP_LINE_LEN, boot, &ms), -EINVAL);
	}
	/* longer text (a stale longer file), a NUL inside */
	memcpy(bad, line, HA_STAMP_LINE_LEN);
	memcpy(bad + HA_STAMP_LINE_LEN, "xx", 3);
	assert_int_equal(ha_stamp_parse(bad, HA_STAMP_LINE_LEN + 2, boot, &ms), -EINVAL);
	memcpy(bad, line, sizeof(line));
	bad[40] = '\0';
	assert_int_equal(ha_stamp_parse(bad, HA_STAMP_LINE_LEN, boot, &ms), -EINVAL);
	/* a value above 2^64 - 1 with a matching checksum */
	char over[HA_STAMP_LINE_LEN + 1];
	ha_stamp_format(over, sizeof(over), BOOT, 0);
	memcpy(over + 77, "99999999999999999999", 20);
	assert_int_equal(ha_stamp_parse(over, HA_STAMP_LINE_LEN, boot, &ms), -EINVAL);
	assert_int_equal(ha_stamp_parse(NULL, 0, boot, &ms), -EINVAL);
	assert_true(ms == 7); /* untouched on error */
}

static void test_to_core(void **state)
{
	(void)state;
	/* written 1500 ms ago (CLOCK_MONOTONIC), the core's clock reads 10000 now */
	assert_true(ha_stamp_to_core(98500, 100000, 10000) == 8500);
	/* same clock: identity */
	assert_true(ha_stamp_to_core(4000, 5000, 5000) == 4000);
	/* longer ago than the core's clock goes back: 0 (fence at once) */
	assert_true(ha_stamp_to_core(1000, 100000, 10000) == 0);
	assert_true(ha_stamp_to_core(0, 10000, 10000) == 0);
	/* from the future (cannot happen within one boot): now */
	assert_true(ha_stamp_to_core(200000, 100000, 10000) == 10000);
}

/* The force-leave guard: allowed exactly when the node hears a majority
 * (or the operator states the majority is gone); the refusal says why,
 * with the numbers, and how to override. */
static void test_force_leave_guard(void **state)
{
	(void)state;
	char err[512] = "";
	/* a host cut off alone from 3 voters: refused, and it says why */
	assert_int_equal(fo_driver_force_leave_guard("n1", "n2", 1, 3, 2, false, err, sizeof(err)),
	                 -EBUSY);
	assert_non_null(strstr(err, "n1 hears 1 of 3 voters"));
	assert_non_null(strstr(err, "not a majority (2)"));
	assert_non_null(strstr(err, "minority side of a partition"));
	assert_non_null(strstr(err, "n2"));
	assert_non_null(strstr(err, "--majority-is-gone"));
	/* the whole text fits an answer's error (rpc_server.c: 512 bytes)
	 * even with the longest names */
	char big[64 + 1];
	memset(big, 'x', 64);
	big[64] = '\0';
	char full[2048];
	fo_driver_force_leave_guard(big, big, 9999, 99999, 50000, false, full, sizeof(full));
	assert_true(strlen(full) < 512);
	/* half of an even split is no majority: refused (each half removing
	 * one host of the other would make both quorate) */
	assert_int_equal(fo_driver_force_leave_guard("n1", "n3", 2, 4, 3, false, err, sizeof(err)),
	                 -EBUSY);
	/* a voting set of two that lost one host: refused (no witness) */
	assert_int_equal(fo_driver_force_leave_guard("n1", "n2", 1, 2, 2, false, err, sizeof(err)),
	                 -EBUSY);
	/* the operator's statement overrides */
	assert_int_equal(fo_driver_force_leave_guard("n1", "n2", 1, 3, 2, true, err, sizeof(err)),
	                 0);
	/* a node that hears a majority: allowed, with or without the flag */
	memset(err, 0, sizeof(err));
	assert_int_equal(fo_driver_force_leave_guard("n1", "n4", 3, 4, 3, false, err, sizeof(err)),
	                 0);
	assert_string_equal(err, "");
	assert_int_equal(fo_driver_force_leave_guard("n1", "n3", 2, 3, 2, false, err, sizeof(err)),
	                 0);
	assert_int_equal(fo_driver_force_leave_guard("n1", "n3", 2, 3, 2, true, err, sizeof(err)),
	                 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),        cmocka_unit_test(test_format_refuses),
	    cmocka_unit_test(test_parse_refuses),     cmocka_unit_test(test_to_core),
	    cmocka_unit_test(test_force_leave_guard),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
