/*
 * name_index.c — string key -> caller's slot (contract in name_index.h).
 *
 * THE ALGORITHM
 * A table of 2^k entries, each a caller's slot number or NAME_INDEX_NONE.
 * A key's home is hash & (cap - 1); it sits at its home or after it, with
 * no empty entry in between (linear probing). So a find walks from the
 * home until it meets the key or an empty entry.
 *
 * Deletion shifts back instead of leaving a tombstone: after emptying
 * entry `hole`, each following entry up to the next empty one moves into
 * the hole unless its home lies cyclically in (hole, j], where moving it
 * would put it before its home. The invariant above holds after every
 * call, and a table never fills up with dead entries.
 *
 * Growth: an insert that would pass load 3/4 first doubles the table
 * (at least 16 entries) and re-places every entry from its hash. The new
 * table is allocated before the old one is touched, so an allocation
 * failure leaves the index as it was.
 *
 * Hashes come from the caller's cache (ops->hash_at) when it keeps one,
 * else from the key; with a cache, a probe compares hashes before keys.
 */
#include "name_index.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NAME_INDEX_MIN_CAP 16u

void name_index_init(struct name_index *ix, const struct name_index_ops *ops, const void *owner)
{
	ix->table = NULL;
	ix->cap = 0;
	ix->count = 0;
	ix->ops = ops;
	ix->owner = owner;
}

void name_index_free(struct name_index *ix)
{
	free(ix->table);
	ix->table = NULL;
	ix->cap = 0;
	ix->count = 0;
}

uint32_t name_index_hash(const char *key)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (; *key; key++) {
		h ^= (unsigned char)*key;
		h *= 16777619u;
	}
	/* murmur3's finaliser: FNV's low bits alone cluster on names that
	 * differ only in their last characters (node-0001, node-0002, ...) */
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	h *= 0xc2b2ae35u;
	h ^= h >> 16;
	return h;
}

static uint32_t slot_hash(const struct name_index *ix, uint32_t slot)
{
	if (ix->ops->hash_at != NULL)
		return ix->ops->hash_at(ix->owner, slot);
	return name_index_hash(ix->ops->key_at(ix->owner, slot));
}

uint32_t name_index_find_hashed(const struct name_index *ix, const char *key, uint32_t hash)
{
	if (ix->count == 0)
		return NAME_INDEX_NONE;
	uint32_t mask = ix->cap - 1;
	for (uint32_t k = hash & mask;; k = (k + 1) & mask) {
		uint32_t slot = ix->table[k];
		if (slot == NAME_INDEX_NONE)
			return NAME_INDEX_NONE;
		if (ix->ops->hash_at != NULL && ix->ops->hash_at(ix->owner, slot) != hash)
			continue;
		if (strcmp(ix->ops->key_at(ix->owner, slot), key) == 0)
			return slot;
	}
}

uint32_t name_index_find(const struct name_index *ix, const char *key)
{
	if (ix->count == 0)
		return NAME_INDEX_NONE;
	return name_index_find_hashed(ix, key, name_index_hash(key));
}

/* Places slot (hash h) in the first empty entry from its home. */
static void put(uint32_t *table, uint32_t cap, uint32_t h, uint32_t slot)
{
	uint32_t k = h & (cap - 1);
	while (table[k] != NAME_INDEX_NONE)
		k = (k + 1) & (cap - 1);
	table[k] = slot;
}

int name_index_reserve(struct name_index *ix, uint32_t n)
{
	uint64_t cap = ix->cap ? ix->cap : NAME_INDEX_MIN_CAP;
	while ((uint64_t)n * 4 > cap * 3)
		cap *= 2;
	if (cap == ix->cap)
		return 0;
	if (cap > (uint64_t)1 << 31)
		return -ENOMEM; /* slot numbers are 32-bit: never this many */
	size_t bytes = (size_t)cap * sizeof(uint32_t);
	uint32_t *table = ix->ops->alloc != NULL ? ix->ops->alloc(bytes) : malloc(bytes);
	if (table == NULL)
		return -ENOMEM;
	memset(table, 0xff, bytes); /* NAME_INDEX_NONE everywhere */
	for (uint32_t k = 0; k < ix->cap; k++)
		if (ix->table[k] != NAME_INDEX_NONE)
			put(table, (uint32_t)cap, slot_hash(ix, ix->table[k]), ix->table[k]);
	free(ix->table);
	ix->table = table;
	ix->cap = (uint32_t)cap;
	return 0;
}

int name_index_insert(struct name_index *ix, uint32_t slot)
{
	int rc = name_index_reserve(ix, ix->count + 1);
	if (rc < 0)
		return rc;
	put(ix->table, ix->cap, slot_hash(ix, slot), slot);
	ix->count++;
	return 0;
}

/* The entry holding slot, whose hash is h (the slot must be indexed). */
static uint32_t entry_of(const struct name_index *ix, uint32_t h, uint32_t slot)
{
	uint32_t mask = ix->cap - 1;
	uint32_t k = h & mask;
	while (ix->table[k] != slot)
		k = (k + 1) & mask;
	return k;
}

void name_index_remove(struct name_index *ix, uint32_t slot)
{
	uint32_t mask = ix->cap - 1;
	uint32_t hole = entry_of(ix, slot_hash(ix, slot), slot);
	for (uint32_t j = (hole + 1) & mask; ix->table[j] != NAME_INDEX_NONE; j = (j + 1) & mask) {
		uint32_t home = slot_hash(ix, ix->table[j]) & mask;
		/* table[j] may move back to the hole unless its home lies in
		 * (hole, j], cyclically */
		if (((j - home) & mask) >= ((j - hole) & mask)) {
			ix->table[hole] = ix->table[j];
			hole = j;
		}
	}
	ix->table[hole] = NAME_INDEX_NONE;
	ix->count--;
}

void name_index_move(struct name_index *ix, uint32_t from, uint32_t to)
{
	if (from != to)
		ix->table[entry_of(ix, slot_hash(ix, to), from)] = to;
}

size_t name_index_bytes(const struct name_index *ix)
{
	return (size_t)ix->cap * sizeof(uint32_t);
}
