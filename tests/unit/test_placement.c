/* test_placement.c — capacity arithmetic under overcommit and host choice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "meshvisor/placement.h"

#define GIB (1024ull * 1024ull)

static struct placement_host host(const char *name, uint32_t cpus, uint64_t mem_gib,
                                  uint32_t vcpus_alloc, uint64_t mem_alloc_gib)
{
	struct placement_host h = {
	    .name = name,
	    .alive = true,
	    .healthy = true,
	    .draining = false,
	    .cpus = cpus,
	    .cpu_overcommit = 1.0,
	    .vcpus_allocated = vcpus_alloc,
	    .memory_kib = mem_gib * GIB,
	    .memory_reserved_kib = 0,
	    .memory_overcommit = 1.0,
	    .memory_allocated_kib = mem_alloc_gib * GIB,
	};
	return h;
}

static void test_capacity_with_overcommit(void **state)
{
	(void)state;
	struct placement_host h = host("a", 8, 64, 0, 0);
	h.cpu_overcommit = 4.0;
	h.memory_reserved_kib = 4 * GIB;
	h.memory_overcommit = 1.5;
	assert_int_equal(placement_vcpu_capacity(&h), 32);
	assert_int_equal(placement_memory_capacity_kib(&h), 90 * GIB);
	h.cpu_overcommit = 1.3; /* 10.4 -> 10: never round a fraction of a CPU up */
	assert_int_equal(placement_vcpu_capacity(&h), 10);
	h.memory_reserved_kib = 80 * GIB; /* reserve above total: nothing left */
	assert_int_equal(placement_memory_capacity_kib(&h), 0);
}

static void test_fits_exactly_and_not_beyond(void **state)
{
	(void)state;
	struct placement_host h = host("a", 4, 16, 2, 8);
	char why[96];
	struct placement_request r = {.vcpus = 2, .memory_kib = 8 * GIB};
	assert_true(placement_fits(&h, &r, why, sizeof(why)));
	r.memory_kib = 8 * GIB + 1;
	assert_false(placement_fits(&h, &r, why, sizeof(why)));
	assert_string_equal(why, "needs 8192 MiB, 8192 MiB left");
	r.memory_kib = GIB;
	r.vcpus = 3;
	assert_false(placement_fits(&h, &r, why, sizeof(why)));
	assert_string_equal(why, "needs 3 vCPUs, 2 left");
}

static void test_chooses_most_memory_left_after_placement(void **state)
{
	(void)state;
	struct placement_host hs[3] = {host("a", 8, 32, 0, 20), host("b", 8, 64, 0, 40),
	                               host("c", 8, 16, 0, 0)};
	/* left: a 12, b 24, c 16 GiB -> b */
	struct placement_request r = {.vcpus = 2, .memory_kib = 4 * GIB};
	char why[256];
	assert_int_equal(placement_choose(hs, 3, &r, why, sizeof(why)), 1);
	assert_string_equal(why, "");
}

static void test_skips_draining_unhealthy_and_dead(void **state)
{
	(void)state;
	struct placement_host hs[4] = {host("a", 8, 64, 0, 0), host("b", 8, 64, 0, 0),
	                               host("c", 8, 64, 0, 0), host("d", 8, 8, 0, 0)};
	hs[0].draining = true;
	hs[1].healthy = false;
	hs[2].alive = false;
	struct placement_request r = {.vcpus = 1, .memory_kib = GIB};
	char why[256];
	assert_int_equal(placement_choose(hs, 4, &r, why, sizeof(why)), 3);
	hs[3].draining = true;
	assert_int_equal(placement_choose(hs, 4, &r, why, sizeof(why)), -1);
	assert_string_equal(why, "no host has room for 1 vCPUs / 1024 MiB: a draining; "
	                         "b libvirt unreachable; c not alive; d draining");
}

static void test_no_room_names_each_host(void **state)
{
	(void)state;
	struct placement_host hs[2] = {host("a", 2, 4, 2, 0), host("b", 8, 4, 0, 3)};
	struct placement_request r = {.vcpus = 1, .memory_kib = 2 * GIB};
	char why[256];
	assert_int_equal(placement_choose(hs, 2, &r, why, sizeof(why)), -1);
	assert_string_equal(why, "no host has room for 1 vCPUs / 2048 MiB: a needs 1 vCPUs, 0 "
	                         "left; b needs 2048 MiB, 1024 MiB left");
	assert_int_equal(placement_choose(hs, 0, &r, why, sizeof(why)), -1);
	assert_string_equal(why, "no hosts known");
}

static void test_ties_are_deterministic(void **state)
{
	(void)state;
	struct placement_host hs[3] = {host("z", 8, 32, 0, 0), host("m", 8, 32, 0, 0),
	                               host("q", 16, 32, 0, 0)};
	struct placement_request r = {.vcpus = 1, .memory_kib = GIB};
	char why[256];
	/* equal memory: more vCPUs left wins (q) */
	assert_int_equal(placement_choose(hs, 3, &r, why, sizeof(why)), 2);
	hs[2].cpus = 8;
	/* all equal: smallest name (m) */
	assert_int_equal(placement_choose(hs, 3, &r, why, sizeof(why)), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_capacity_with_overcommit),
	    cmocka_unit_test(test_fits_exactly_and_not_beyond),
	    cmocka_unit_test(test_chooses_most_memory_left_after_placement),
	    cmocka_unit_test(test_skips_draining_unhealthy_and_dead),
	    cmocka_unit_test(test_no_room_names_each_host),
	    cmocka_unit_test(test_ties_are_deterministic),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
