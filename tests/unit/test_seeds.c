/*
 * test_seeds.c — seeds by host name (agent/daemon/seeds.c) in process: an
 * agent on libvirt's test driver, no network (daemon_fixture.h). The
 * resolver is this file's getaddrinfo, which libuv's thread pool calls in
 * place of libc's: names under .test answer what the test says (a name
 * "down" fails with EAI_NONAME), others go to libc. swim_join is wrapped
 * (-Wl,--wrap=swim_join) to see what the agent joins through.
 *   - one name resolves, another does not: the agent joins through the
 *     first at once, looks the other up again with backoff, and once its
 *     DNS answers joins through both; then the lookups stop;
 *   - a literal and a name that never resolves: joined through the
 *     literal, the name retried (1 s, then 2 s), never joined again
 *     without a new address.
 */
#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "daemon_fixture.h"
#include "membership.h"
#include "seeds.h"

/* ---- the resolver --------------------------------------------------------------- */

static atomic_bool late_up;       /* late.test resolves */
static atomic_uint late_lookups;  /* lookups of late.test */
static atomic_uint never_lookups; /* lookups of never.test */

typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
	static gai_fn real;
	if (real == NULL)
		real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
	const char *ip = NULL;
	if (node != NULL && strcmp(node, "early.test") == 0) {
		ip = "127.0.0.2";
	} else if (node != NULL && strcmp(node, "late.test") == 0) {
		atomic_fetch_add(&late_lookups, 1);
		if (!atomic_load(&late_up))
			return EAI_NONAME;
		ip = "127.0.0.3";
	} else if (node != NULL && strcmp(node, "never.test") == 0) {
		atomic_fetch_add(&never_lookups, 1);
		return EAI_NONAME;
	}
	if (ip == NULL)
		return real(node, service, hints, res);
	struct addrinfo h = {
	    .ai_family = AF_INET, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICHOST};
	return real(ip, service, &h, res);
}

/* ---- swim_join, watched ------------------------------------------------------------ */

int __real_swim_join(struct swim *s, const char *const *seed_addrs, size_t n, uint64_t now);
int __wrap_swim_join(struct swim *s, const char *const *seed_addrs, size_t n, uint64_t now);

static struct {
	unsigned calls;
	char addrs[16][64];
	size_t n;
} joins;

int __wrap_swim_join(struct swim *s, const char *const *seed_addrs, size_t n, uint64_t now)
{
	joins.calls++;
	joins.n = n < 16 ? n : 16;
	for (size_t i = 0; i < joins.n; i++)
		snprintf(joins.addrs[i], sizeof(joins.addrs[i]), "%s", seed_addrs[i]);
	return __real_swim_join(s, seed_addrs, n, now);
}

static bool joined_through(const char *addr)
{
	for (size_t i = 0; i < joins.n; i++)
		if (strcmp(joins.addrs[i], addr) == 0)
			return true;
	return false;
}

static bool joins_at_least(void *arg)
{
	return joins.calls >= *(const unsigned *)arg;
}

static bool never_looked_up(void *arg)
{
	return atomic_load(&never_lookups) >= *(const unsigned *)arg;
}

static bool nothing(void *arg)
{
	(void)arg;
	return false;
}

static int setup(void **state)
{
	memset(&joins, 0, sizeof(joins));
	atomic_store(&late_up, false);
	atomic_store(&late_lookups, 0);
	atomic_store(&never_lookups, 0);
	return fixture_setup(state, "a", false, 0);
}

static int teardown(void **state)
{
	struct daemon_fixture *f = *state;
	seeds_close(&f->a);
	fixture_run_until(f, nothing, NULL, 200); /* lookups in flight end */
	return fixture_teardown(state);
}

static void test_late_name_joined(void **state)
{
	struct daemon_fixture *f = *state;
	const char *seeds[] = {"early.test:7946", "late.test:7946"};
	assert_int_equal(seeds_join(&f->a, seeds, 2), 0);
	unsigned want = 1;
	assert_true(fixture_run_until(f, joins_at_least, &want, 3000));
	assert_int_equal(joins.n, 1);
	assert_true(joined_through("127.0.0.2:7946"));
	unsigned failed = atomic_load(&late_lookups);
	assert_true(failed >= 1);

	/* its DNS comes back: the next round (1 s) resolves it and joins again */
	atomic_store(&late_up, true);
	want = 2;
	assert_true(fixture_run_until(f, joins_at_least, &want, 5000));
	assert_int_equal(joins.n, 2);
	assert_true(joined_through("127.0.0.2:7946"));
	assert_true(joined_through("127.0.0.3:7946"));

	/* every name resolved: no more lookups, no more joins */
	unsigned lookups = atomic_load(&late_lookups);
	fixture_run_until(f, nothing, NULL, 2500);
	assert_int_equal(atomic_load(&late_lookups), lookups);
	assert_int_equal(joins.calls, 2);
}

static void test_unresolved_name_retried_with_backoff(void **state)
{
	struct daemon_fixture *f = *state;
	const char *seeds[] = {"127.0.0.9:7946", "never.test:7946"};
	assert_int_equal(seeds_join(&f->a, seeds, 2), 0);
	unsigned want = 1;
	assert_true(fixture_run_until(f, joins_at_least, &want, 3000));
	assert_true(joined_through("127.0.0.9:7946"));
	assert_int_equal(joins.n, 1);
	/* looked up again after 1 s, then after 2 more */
	uint64_t t0 = uv_now(f->a.loop);
	want = 2;
	assert_true(fixture_run_until(f, never_looked_up, &want, 3000));
	uint64_t t1 = uv_now(f->a.loop);
	want = 3;
	assert_true(fixture_run_until(f, never_looked_up, &want, 4000));
	uint64_t t2 = uv_now(f->a.loop);
	assert_true(t1 - t0 >= 900);
	assert_true(t2 - t1 >= 1900);
	/* nothing new resolved: not joined again */
	assert_int_equal(joins.calls, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_late_name_joined, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unresolved_name_retried_with_backoff, setup,
	                                    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
