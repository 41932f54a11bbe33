/*
 * sim_heap.h — the simulators' event queue and virtual clock. The queue is
 * a binary min-heap ordered by (at, seq), so events due at the same
 * virtual millisecond run in the order they were scheduled, which keeps
 * every run deterministic.
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

/*
 * SIM_CLOCK_DEFINE(prefix, type, owner, dispatch, pred_t) defines the
 * virtual clock over that heap (owner also has `uint64_t now`):
 *     static void prefix_step(owner *s);   run every event due at the next instant
 *     void prefix_run_for(owner *s, uint64_t ms);
 *     int64_t prefix_run_until(owner *s, pred_t pred, void *arg, uint64_t timeout_ms);
 * run_until returns the virtual ms it took for pred to hold (0 if it held
 * already), or -1 with the clock at the deadline.
 */
#define SIM_CLOCK_DEFINE(prefix, type, owner, dispatch, pred_t)                           \
	static void prefix##_step(owner *s)                                               \
	{                                                                                 \
		uint64_t t = s->heap[0].at;                                               \
		if (t > s->now)                                                           \
			s->now = t;                                                       \
		while (s->heap_n > 0 && s->heap[0].at <= t) {                             \
			type ev = prefix##_heap_pop(s);                                   \
			dispatch(s, &ev);                                                 \
		}                                                                         \
	}                                                                                 \
                                                                                          \
	void prefix##_run_for(owner *s, uint64_t ms)                                      \
	{                                                                                 \
		uint64_t end = s->now + ms;                                               \
		while (s->heap_n > 0 && s->heap[0].at <= end)                             \
			prefix##_step(s);                                                 \
		s->now = end;                                                             \
	}                                                                                 \
                                                                                          \
	int64_t prefix##_run_until(owner *s, pred_t pred, void *arg, uint64_t timeout_ms) \
	{                                                                                 \
		uint64_t start = s->now, end = s->now + timeout_ms;                       \
		if (pred(s, arg))                                                         \
			return 0;                                                         \
		while (s->heap_n > 0 && s->heap[0].at <= end) {                           \
			prefix##_step(s);                                                 \
			if (pred(s, arg))                                                 \
				return (int64_t)(s->now - start);                         \
		}                                                                         \
		s->now = end;                                                             \
		return -1;                                                                \
	}

#endif
