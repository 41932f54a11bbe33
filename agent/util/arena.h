/*
 * arena.h — the chunked arena the protocol cores build their output
 * messages and events in. Allocation bumps a pointer in the newest chunk;
 * pointers handed out stay valid until mv_arena_reset(), which the cores
 * call once everything built in the arena has been drained. A reset keeps
 * one standard chunk for reuse, so an idle core holds one small chunk
 * (1,000 cores in one simulator process each keep one).
 *
 * Ownership: the arena owns its chunks; mv_arena_free() releases them all.
 */
#ifndef MESHVISOR_ARENA_H
#define MESHVISOR_ARENA_H

#include <stddef.h>

#define MV_ARENA_CHUNK 4096

struct mv_arena_chunk;

struct mv_arena {
	struct mv_arena_chunk *head;
};

/* n bytes aligned to 16 (a zero-size request still gets 16); NULL when out
 * of memory. */
void *mv_arena_alloc(struct mv_arena *a, size_t n);
/* A copy of s in the arena; NULL when out of memory. */
const char *mv_arena_strdup(struct mv_arena *a, const char *s);
/* Forgets everything allocated, keeping one standard chunk. */
void mv_arena_reset(struct mv_arena *a);
void mv_arena_free(struct mv_arena *a);

#endif
