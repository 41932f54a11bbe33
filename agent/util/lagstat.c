/*
 * lagstat.c — a sliding window of loop-lag samples and its p99 (lagstat.h).
 */
#include "lagstat.h"

#include <stdlib.h>
#include <string.h>

void mv_lagstat_init(struct mv_lagstat *s)
{
	memset(s, 0, sizeof(*s));
}

void mv_lagstat_add(struct mv_lagstat *s, uint64_t lag_us)
{
	uint32_t v = lag_us > UINT32_MAX ? UINT32_MAX : (uint32_t)lag_us;
	s->us[s->next] = v;
	s->next = (s->next + 1) % LAGSTAT_WINDOW;
	if (s->n < LAGSTAT_WINDOW)
		s->n++;
	if (v > s->max_ever_us)
		s->max_ever_us = v;
	s->count++;
}

static int lagstat_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

void mv_lagstat_summary(const struct mv_lagstat *s, struct mv_lag_summary *out)
{
	memset(out, 0, sizeof(*out));
	out->max_ever_us = s->max_ever_us;
	out->count = s->count;
	out->n = s->n;
	if (s->n == 0)
		return;
	uint32_t sorted[LAGSTAT_WINDOW];
	memcpy(sorted, s->us, s->n * sizeof(sorted[0])); /* the ring's first n slots */
	qsort(sorted, s->n, sizeof(sorted[0]), lagstat_cmp);
	/* nearest rank: the smallest sample with at least 99% at or below it */
	uint32_t rank = (99u * s->n + 99u) / 100u; /* ceil(0.99 n), 1-based */
	out->p99_us = sorted[rank - 1];
	out->max_us = sorted[s->n - 1];
}
