/*
 * ratelimit.c — one line per interval, with a count of the rest
 * (ratelimit.h).
 */
#include "ratelimit.h"

#include <stddef.h>

void mv_ratelimit_init(struct mv_ratelimit *r, uint64_t interval_ms)
{
	r->interval_ms = interval_ms;
	r->last = 0;
	r->suppressed = 0;
	r->started = false;
}

bool mv_ratelimit_allow(struct mv_ratelimit *r, uint64_t now, uint64_t *held)
{
	/* a clock that went backwards (another clock source) opens the gate
	 * rather than closing it for good */
	if (r->started && now >= r->last && now - r->last < r->interval_ms) {
		r->suppressed++;
		return false;
	}
	if (held != NULL)
		*held = r->suppressed;
	r->suppressed = 0;
	r->last = now;
	r->started = true;
	return true;
}
