/*
 * queue.h — the first-in first-out queue the sans-I/O cores (mig.c,
 * fo.c) keep their outgoing messages and events in until the caller
 * pops them: a growable array read from its head, reset to empty whenever
 * it drains, and capped, so that a caller that never drains cannot make a
 * core eat all memory (items beyond the cap are dropped; the cores say
 * what that means for each queue).
 *
 * Items are copied in and out by value (memcpy of item_size bytes); what
 * they point to stays the business of the core and its caller.
 */
#ifndef MESHVISOR_QUEUE_H
#define MESHVISOR_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

struct mv_queue {
	unsigned char *items;
	size_t head, len, cap; /* in items */
};

/* A slot for one more item at the tail (uninitialised), or NULL when `max`
 * items already wait or memory ran out. The slot is valid until the next
 * push or pop. */
void *mv_queue_push(struct mv_queue *q, size_t item_size, size_t max);
/* Copies the oldest item to out and removes it; false when empty. */
bool mv_queue_pop(struct mv_queue *q, void *out, size_t item_size);
size_t mv_queue_count(const struct mv_queue *q);
/* Frees the array (pop and release what items own first). */
void mv_queue_free(struct mv_queue *q);

#endif
