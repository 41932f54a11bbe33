/*
 * ratelimit.h — at most one log line per interval for a repetitive event,
 * and how many were held back meanwhile. Pure: now (ms, any monotonic
 * clock) is passed in. The caller keeps one struct per thing it limits
 * (e.g. per peer address) and writes the line only when allowed:
 *
 *   uint64_t held;
 *   if (mv_ratelimit_allow(&r, now, &held))
 *           MV_WARN("net", "connection refused addr=%s suppressed=%" PRIu64, addr, held);
 */
#ifndef MESHVISOR_RATELIMIT_H
#define MESHVISOR_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct mv_ratelimit {
	uint64_t interval_ms;
	uint64_t last;       /* when the last line was allowed */
	uint64_t suppressed; /* events held back since then */
	bool started;        /* a line was allowed at least once */
};

/* interval_ms 0 allows every event. */
void mv_ratelimit_init(struct mv_ratelimit *r, uint64_t interval_ms);
/* True when a line may be written now (the first event always may; then
 * once interval_ms has passed since the last allowed one). *held (may be
 * NULL) gets the number of events held back since the last allowed line;
 * the count restarts. False: the event is counted as held back. */
bool mv_ratelimit_allow(struct mv_ratelimit *r, uint64_t now, uint64_t *held);

#endif
