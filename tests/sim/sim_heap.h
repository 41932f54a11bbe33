/*
 * sim_heap.h — the simulated world's event queue (sim_net.c, which every
 * simulator runs on). The queue is a binary min-heap ordered by (at, seq),
 * so events due at the same virtual millisecond run in the order they were
 * scheduled, which keeps every run deterministic.
 *
 * SIM_HEAP_DEFINE(prefix, type, owner) defines, for an event struct `type`
 * with uint64_t fields `at` and `seq`, and an `owner` struct with fields
 * `type *heap; size_t heap_n, heap_cap; uint64_t seq;`:
 *     static void prefix_push(owner *s, type ev);   (stamps ev.seq)
 *     static type prefix_pop(owner *s);             (heap_n must be > 0)
 */
#ifndef MESHVISOR_SIM_HEAP_H
#define MESHVISOR_SIM_HEAP_H

#include <stdbool.h>
#include <stdlib.h>

#define SIM_HEAP_DEFINE(prefix, type, owner)                                          \
	static bool prefix##_less(const type *a, const type *b)                       \
	{                                                                             \
		return a->at < b->at || (a->at == b->at && a->seq < b->seq);          \
	}                                                                             \
                                                                                      \
	static void prefix##_push(owner *s, type ev)                                  \
	{                                                                             \
		if (s->heap_n == s->heap_cap) {                                       \
			s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 1024;           \
			s->heap = realloc(s->heap, s->heap_cap * sizeof(*s->heap));   \
			if (s->heap == NULL)                                          \
				abort();                                              \
		}                                                                     \
		ev.seq = s->seq++;                                                    \
		size_t i = s->heap_n++;                                               \
		while (i > 0) {                                                       \
			size_t p = (i - 1) / 2;                                       \
			if (!prefix##_less(&ev, &s->heap[p]))                         \
				break;                                                \
			s->heap[i] = s->heap[p];                                      \
			i = p;                                                        \
		}                                                                     \
		s->heap[i] = ev;                                                      \
	}                                                                             \
                                                                                      \
	static type prefix##_pop(owner *s)                                            \
	{                                                                             \
		type top = s->heap[0];                                                \
		type last = s->heap[--s->heap_n];                                     \
		size_t i = 0, n = s->heap_n;                                          \
		for (;;) {                                                            \
			size_t c = 2 * i + 1;                                         \
			if (c >= n)                                                   \
				break;                                                \
			if (c + 1 < n && prefix##_less(&s->heap[c + 1], &s->heap[c])) \
				c++;                                                  \
			if (!prefix##_less(&s->heap[c], &last))                       \
				break;                                                \
			s->heap[i] = s->heap[c];                                      \
			i = c;                                                        \
		}                                                                     \
		if (n > 0)                                                            \
			s->heap[i] = last;                                            \
		return top;                                                           \
	}

#endif
