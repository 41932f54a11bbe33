/*
 * lagstat.h — how late an event loop runs: the samples of a periodic
 * probe (each one how much later than asked it ran), kept in a sliding
 * window of the last LAGSTAT_WINDOW samples, summarized as the window's
 * p99 and maximum and the maximum since start. Pure: the caller measures
 * and passes samples in (daemon/looplag.c does it on the agent's loop).
 *
 * Why a window of samples and not a decaying average: a loop that stalls
 * for 5 s once a minute is exactly what must show, and an average over a
 * 50 ms probe hides it; the p99 of the last 30 s at 20 samples a second
 * (600 samples) moves when 6 of them are late.
 *
 * Ownership: the caller owns the struct (no heap). Not thread-safe.
 */
#ifndef MESHVISOR_LAGSTAT_H
#define MESHVISOR_LAGSTAT_H

#include <stdint.h>

#define LAGSTAT_WINDOW 600

struct mv_lagstat {
	uint32_t us[LAGSTAT_WINDOW]; /* ring of samples, microseconds */
	uint32_t next;               /* where the next sample goes */
	uint32_t n;                  /* samples in the ring (<= LAGSTAT_WINDOW) */
	uint32_t max_ever_us;        /* largest sample since init */
	uint64_t count;              /* samples since init */
};

struct mv_lag_summary {
	uint32_t p99_us; /* nearest-rank 99th percentile of the window; 0 when empty */
	uint32_t max_us; /* largest sample in the window */
	uint32_t max_ever_us;
	uint32_t n; /* samples in the window */
	uint64_t count;
};

void mv_lagstat_init(struct mv_lagstat *s);
/* Adds one sample (saturates at UINT32_MAX us, about 71 minutes). */
void mv_lagstat_add(struct mv_lagstat *s, uint64_t lag_us);
/* The window's summary (sorts a copy of it: call it per query, not per
 * sample). */
void mv_lagstat_summary(const struct mv_lagstat *s, struct mv_lag_summary *out);

#endif
