/* test_name_index.c — the cores' string -> slot index (agent/core/name_index.h):
 * against a dense array kept the way the cores keep theirs (swap-remove),
 * with chains made to collide, growth, and failing allocations. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "name_index.h"

#define MAX_RECS 6000

/* The caller's records: a dense array of keys, each with a cached hash
 * (or one forced to collide). */
struct table {
	char key[MAX_RECS][24];
	uint32_t hash[MAX_RECS];
	uint32_t n;
	struct name_index ix;
};

static const char *key_at(const void *owner, uint32_t slot)
{
	return ((const struct table *)owner)->key[slot];
}

static uint32_t hash_at(const void *owner, uint32_t slot)
{
	return ((const struct table *)owner)->hash[slot];
}

/* Allocations left before alloc fails (-1: never fails). */
static long allocs_left = -1;

static void *test_alloc(size_t bytes)
{
	if (allocs_left == 0)
		return NULL;
	if (allocs_left > 0)
		allocs_left--;
	return malloc(bytes);
}

static const struct name_index_ops cached_ops = {key_at, hash_at, test_alloc};
static const struct name_index_ops uncached_ops = {key_at, NULL, test_alloc};

static struct table *table_new(const struct name_index_ops *ops)
{
	struct table *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	name_index_init(&t->ix, ops, t);
	allocs_left = -1;
	return t;
}

static void table_free(struct table *t)
{
	name_index_free(&t->ix);
	free(t);
}

/* Adds key with the given hash (the real one unless a test forces one). */
static int add_hashed(struct table *t, const char *key, uint32_t hash)
{
	assert_int_equal(name_index_find_hashed(&t->ix, key, hash), NAME_INDEX_NONE);
	uint32_t i = t->n;
	snprintf(t->key[i], sizeof(t->key[i]), "%s", key);
	t->hash[i] = hash;
	int rc = name_index_insert(&t->ix, i);
	if (rc == 0)
		t->n++;
	return rc;
}

static void add(struct table *t, const char *key)
{
	assert_int_equal(add_hashed(t, key, name_index_hash(key)), 0);
}

/* Removes the record in slot i the way the cores do: out of the index,
 * then the last record fills the hole. */
static void del(struct table *t, uint32_t i)
{
	name_index_remove(&t->ix, i);
	uint32_t last = --t->n;
	if (i != last) {
		memcpy(t->key[i], t->key[last], sizeof(t->key[i]));
		t->hash[i] = t->hash[last];
		name_index_move(&t->ix, last, i);
	}
}

/* Every record is found at its slot, under its hash; the index holds
 * exactly them, at load <= 3/4. */
static void check_all(const struct table *t)
{
	assert_int_equal(t->ix.count, t->n);
	if (t->ix.cap != 0) {
		assert_true((t->ix.cap & (t->ix.cap - 1)) == 0);
		assert_true((uint64_t)t->ix.count * 4 <= (uint64_t)t->ix.cap * 3);
	}
	for (uint32_t i = 0; i < t->n; i++)
		assert_int_equal(name_index_find_hashed(&t->ix, t->key[i], t->hash[i]), i);
	uint32_t used = 0;
	for (uint32_t k = 0; k < t->ix.cap; k++)
		used += t->ix.table[k] != NAME_INDEX_NONE;
	assert_int_equal(used, t->n);
}

static void test_empty_index_finds_nothing(void **state)
{
	(void)state;
	struct table *t = table_new(&cached_ops);
	assert_int_equal(name_index_find(&t->ix, "a"), NAME_INDEX_NONE);
	assert_int_equal(name_index_bytes(&t->ix), 0);
	add(t, "a");
	assert_int_equal(name_index_find(&t->ix, "a"), 0);
	assert_int_equal(name_index_find(&t->ix, "b"), NAME_INDEX_NONE);
	assert_int_equal(name_index_find(&t->ix, ""), NAME_INDEX_NONE);
	del(t, 0);
	assert_int_equal(name_index_find(&t->ix, "a"), NAME_INDEX_NONE);
	check_all(t);
	table_free(t);
}

/* Many keys in, a third out (from everywhere in the array), more in:
 * each step checked against the array. */
static void run_many(const struct name_index_ops *ops)
{
	struct table *t = table_new(ops);
	char key[24];
	for (uint32_t i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "node-%04u", i);
		add(t, key);
		assert_int_equal(name_index_find(&t->ix, key), i);
	}
	check_all(t);
	uint32_t cap = t->ix.cap;
	assert_true(cap >= 5000 * 4 / 3 && cap <= 2 * 5000 * 4 / 3);
	uint64_t x = 88172645463325252ull;
	for (int k = 0; k < 1700; k++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		uint32_t i = (uint32_t)(x % t->n);
		snprintf(key, sizeof(key), "%s", t->key[i]);
		del(t, i);
		assert_int_equal(name_index_find(&t->ix, key), NAME_INDEX_NONE);
	}
	check_all(t);
	for (uint32_t i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "node-%04u", i);
		uint32_t at = name_index_find(&t->ix, key);
		if (at == NAME_INDEX_NONE)
			add(t, key); /* put back what was deleted */
		else
			assert_string_equal(t->key[at], key);
	}
	assert_int_equal(t->n, 5000);
	assert_int_equal(t->ix.cap, cap); /* removals left no debris to grow for */
	check_all(t);
	table_free(t);
}

static void test_many_keys_cached_hash(void **state)
{
	(void)state;
	run_many(&cached_ops);
}

static void test_many_keys_recomputed_hash(void **state)
{
	(void)state;
	run_many(&uncached_ops);
}

/* Keys whose home is the same entry of a 16-entry table: one chain. */
static uint32_t same_home_keys(char keys[][24], uint32_t n, uint32_t home)
{
	uint32_t found = 0;
	for (uint32_t i = 0; found < n; i++) {
		snprintf(keys[found], 24, "k%u", i);
		if ((name_index_hash(keys[found]) & 15) == home)
			found++;
	}
	return found;
}

/* Deleting from the middle of a chain (and of a chain that wraps past the
 * table's end) keeps the entries after it reachable. */
static void test_delete_in_middle_of_chain(void **state)
{
	(void)state;
	for (uint32_t home = 0; home < 16; home += 15) { /* 0, and 15: wraps */
		for (uint32_t victim = 0; victim < 8; victim++) {
			struct table *t = table_new(&cached_ops);
			char keys[8][24];
			same_home_keys(keys, 8, home);
			for (uint32_t i = 0; i < 8; i++)
				add(t, keys[i]);
			/* and keys with other homes in between */
			add(t, "other-a");
			add(t, "other-b");
			assert_int_equal(t->ix.cap, 16);
			uint32_t at = name_index_find(&t->ix, keys[victim]);
			assert_int_equal(at, victim);
			del(t, at);
			assert_int_equal(name_index_find(&t->ix, keys[victim]), NAME_INDEX_NONE);
			check_all(t);
			for (uint32_t i = 0; i < 8; i++)
				if (i != victim)
					assert_int_not_equal(name_index_find(&t->ix, keys[i]),
					                     NAME_INDEX_NONE);
			table_free(t);
		}
	}
}

/* Every key with one hash: probes must compare the keys, and removal must
 * keep the chain whole. */
static void test_full_hash_collisions(void **state)
{
	(void)state;
	struct table *t = table_new(&cached_ops);
	char key[24];
	for (uint32_t i = 0; i < 40; i++) {
		snprintf(key, sizeof(key), "same-%u", i);
		assert_int_equal(add_hashed(t, key, 7), 0);
	}
	check_all(t);
	assert_int_equal(name_index_find_hashed(&t->ix, "same-40", 7), NAME_INDEX_NONE);
	/* out of the middle, the front and the back of the chain */
	for (uint32_t k = 0; k < 3; k++) {
		uint32_t i = k == 0 ? 20 : k == 1 ? 0 : t->n - 1;
		snprintf(key, sizeof(key), "%s", t->key[i]);
		del(t, i);
		assert_int_equal(name_index_find_hashed(&t->ix, key, 7), NAME_INDEX_NONE);
		check_all(t);
	}
	table_free(t);
}

/* The table doubles before passing 3/4 and only then. */
static void test_growth_keeps_load_under_three_quarters(void **state)
{
	(void)state;
	struct table *t = table_new(&cached_ops);
	char key[24];
	uint32_t grew = 0;
	for (uint32_t i = 0; i < 1000; i++) {
		uint32_t cap = t->ix.cap;
		snprintf(key, sizeof(key), "g%u", i);
		add(t, key);
		if (t->ix.cap != cap) {
			grew++;
			assert_true(cap == 0 ? t->ix.cap == 16 : t->ix.cap == cap * 2);
			assert_true(cap == 0 || (uint64_t)(t->n) * 4 > (uint64_t)cap * 3);
		}
		assert_true((uint64_t)t->n * 4 <= (uint64_t)t->ix.cap * 3);
	}
	assert_int_equal(grew, 8); /* 16 -> 2048 */
	assert_int_equal(name_index_bytes(&t->ix), 2048 * sizeof(uint32_t));
	check_all(t);
	/* reserve ahead: no allocation for the inserts it covered */
	struct table *r = table_new(&cached_ops);
	assert_int_equal(name_index_reserve(&r->ix, 1000), 0);
	allocs_left = 0;
	for (uint32_t i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "g%u", i);
		add(r, key);
	}
	check_all(r);
	table_free(r);
	table_free(t);
}

/* A failed allocation is reported and changes nothing; the next insert,
 * once memory is back, works. */
static void test_allocation_failure_leaves_index_intact(void **state)
{
	(void)state;
	struct table *t = table_new(&cached_ops);
	allocs_left = 0;
	assert_int_equal(add_hashed(t, "first", name_index_hash("first")), -ENOMEM);
	assert_int_equal(t->ix.cap, 0);
	assert_int_equal(name_index_find(&t->ix, "first"), NAME_INDEX_NONE);
	allocs_left = -1;
	char key[24];
	for (uint32_t i = 0; i < 12; i++) { /* 12 = 3/4 of 16: full */
		snprintf(key, sizeof(key), "f%u", i);
		add(t, key);
	}
	allocs_left = 0;
	assert_int_equal(add_hashed(t, "thirteenth", name_index_hash("thirteenth")), -ENOMEM);
	assert_int_equal(name_index_reserve(&t->ix, 13), -ENOMEM);
	assert_int_equal(t->ix.cap, 16);
	assert_int_equal(name_index_find(&t->ix, "thirteenth"), NAME_INDEX_NONE);
	check_all(t);
	/* removals need no memory */
	del(t, 3);
	check_all(t);
	allocs_left = -1;
	add(t, "thirteenth");
	add(t, "fourteenth");
	assert_int_equal(t->ix.cap, 32);
	check_all(t);
	table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty_index_finds_nothing),
	    cmocka_unit_test(test_many_keys_cached_hash),
	    cmocka_unit_test(test_many_keys_recomputed_hash),
	    cmocka_unit_test(test_delete_in_middle_of_chain),
	    cmocka_unit_test(test_full_hash_collisions),
	    cmocka_unit_test(test_growth_keeps_load_under_three_quarters),
	    cmocka_unit_test(test_allocation_failure_leaves_index_intact),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
