/* queue.c — see queue.h. */
#include "queue.h"

#include <stdlib.h>
#include <string.h>

void *mv_queue_push(struct mv_queue *q, size_t item_size, size_t max)
{
	if (q->head == q->len)
		q->head = q->len = 0;
	if (q->len - q->head >= max)
		return NULL;
	if (q->len == q->cap) {
		size_t nc = q->cap ? q->cap * 2 : 8;
		unsigned char *p = realloc(q->items, nc * item_size);
		if (p == NULL)
			return NULL;
		q->items = p;
		q->cap = nc;
	}
	return q->items + item_size * q->len++;
}

bool mv_queue_pop(struct mv_queue *q, void *out, size_t item_size)
{
	if (q->head == q->len)
		return false;
	memcpy(out, q->items + item_size * q->head++, item_size);
	if (q->head == q->len)
		q->head = q->len = 0;
	return true;
}

size_t mv_queue_count(const struct mv_queue *q)
{
	return q->len - q->head;
}

void mv_queue_free(struct mv_queue *q)
{
	free(q->items);
	memset(q, 0, sizeof(*q));
}
