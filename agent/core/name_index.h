/*
 * name_index.h — a hash index from a string key to a slot of the caller's
 * array, shared by the protocol cores (swim.c, nstate.c, fo.c).
 *
 * The caller owns the records (a dense array, say) and their keys; the
 * index stores only slot numbers, 4 bytes each, and reads a slot's key (and
 * its cached hash, if the caller keeps one) through the callbacks in
 * struct name_index_ops. Open addressing with linear probing, backward-shift
 * deletion (no tombstones), load at most 3/4 (the table doubles before an
 * insert would pass it). Allocation failure is reported (-ENOMEM) and
 * leaves the index as it was; nothing aborts.
 *
 * Contract: a key is in the index at most once (insert only after a find
 * missed), and a record keeps its key while it is in the index.
 */
#ifndef MESHVISOR_NAME_INDEX_H
#define MESHVISOR_NAME_INDEX_H

#include <stddef.h>
#include <stdint.h>

#define NAME_INDEX_NONE UINT32_MAX

struct name_index_ops {
	/* The key of the record in `slot` (NUL-terminated). */
	const char *(*key_at)(const void *owner, uint32_t slot);
	/* Its name_index_hash(), if the caller caches it; NULL: recomputed
	 * from the key when needed, and probes compare keys only. */
	uint32_t (*hash_at)(const void *owner, uint32_t slot);
	/* Allocates the slot table (tests inject failures here); NULL: malloc.
	 * The table goes back through free(). */
	void *(*alloc)(size_t bytes);
};

struct name_index {
	uint32_t *table; /* cap entries: a caller's slot, or NAME_INDEX_NONE */
	uint32_t cap;    /* 0 (nothing allocated yet) or a power of two */
	uint32_t count;  /* slots in the index */
	const struct name_index_ops *ops;
	const void *owner; /* passed to the callbacks */
};

/* An empty index (allocates nothing). */
void name_index_init(struct name_index *ix, const struct name_index_ops *ops, const void *owner);
void name_index_free(struct name_index *ix);

/* The hash every key is indexed by (FNV-1a, then mixed). */
uint32_t name_index_hash(const char *key);

/* The slot whose key is `key`, or NAME_INDEX_NONE. The _hashed form takes
 * name_index_hash(key), for a caller that has it already. */
uint32_t name_index_find(const struct name_index *ix, const char *key);
uint32_t name_index_find_hashed(const struct name_index *ix, const char *key, uint32_t hash);

/* Room for n slots in all without another allocation: 0 or -ENOMEM. */
int name_index_reserve(struct name_index *ix, uint32_t n);

/* Adds `slot`, whose record already holds its key (not in the index yet):
 * 0, or -ENOMEM with the index unchanged. */
int name_index_insert(struct name_index *ix, uint32_t slot);

/* Takes `slot` out; its record must still hold its key. */
void name_index_remove(struct name_index *ix, uint32_t slot);

/* The record in slot `from` was copied to slot `to` (a dense array filling
 * a hole with its last record): the index now says `to` for its key.
 * key_at(to) must give the key. */
void name_index_move(struct name_index *ix, uint32_t from, uint32_t to);

/* Bytes of the slot table. */
size_t name_index_bytes(const struct name_index *ix);

#endif
