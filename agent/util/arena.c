/*
 * arena.c — chunked bump allocator for the cores' outputs (see arena.h).
 */
#include "arena.h"

#include <stdlib.h>
#include <string.h>

struct mv_arena_chunk {
	struct mv_arena_chunk *next;
	size_t used, cap;
	max_align_t data[];
};

void *mv_arena_alloc(struct mv_arena *a, size_t n)
{
	n = (n + 15) & ~(size_t)15;
	if (n == 0)
		n = 16;
	if (a->head == NULL || a->head->used + n > a->head->cap) {
		size_t cap = n > MV_ARENA_CHUNK ? n : MV_ARENA_CHUNK;
		struct mv_arena_chunk *c = malloc(sizeof(*c) + cap);
		if (c == NULL)
			return NULL;
		c->next = a->head;
		c->used = 0;
		c->cap = cap;
		a->head = c;
	}
	void *p = (char *)a->head->data + a->head->used;
	a->head->used += n;
	return p;
}

const char *mv_arena_strdup(struct mv_arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = mv_arena_alloc(a, n);
	if (p != NULL)
		memcpy(p, s, n);
	return p;
}

void mv_arena_reset(struct mv_arena *a)
{
	struct mv_arena_chunk *keep = NULL;
	struct mv_arena_chunk *c = a->head;
	while (c != NULL) {
		struct mv_arena_chunk *next = c->next;
		if (keep == NULL && c->cap == MV_ARENA_CHUNK)
			keep = c;
		else
			free(c);
		c = next;
	}
	if (keep != NULL) {
		keep->next = NULL;
		keep->used = 0;
	}
	a->head = keep;
}

void mv_arena_free(struct mv_arena *a)
{
	while (a->head != NULL) {
		struct mv_arena_chunk *next = a->head->next;
		free(a->head);
		a->head = next;
	}
}
