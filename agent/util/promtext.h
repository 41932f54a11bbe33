/*
 * promtext.h — the Prometheus text exposition format, version 0.0.4
 * (what a Prometheus server scrapes from GET /metrics), and fixed-bucket
 * histograms to feed it.
 *
 * A writer appends to one growing buffer: a family's "# HELP" and
 * "# TYPE" lines once (mv_prom_family), then its samples
 * (mv_prom_sample, mv_prom_histogram). Escaping is the format's: in HELP
 * text a backslash and a newline are written \\ and \n; in a label value
 * also a double quote (\"). Values: integers exactly (up to 2^53), others
 * with 15 significant digits (%.15g), and +Inf, -Inf, NaN by name.
 *
 * A histogram (struct mv_hist) counts observations per bucket with fixed
 * upper bounds (le, inclusive: an observation equal to a bound falls in
 * that bucket); written, its buckets are cumulative and end with
 * le="+Inf", whose count equals _count, followed by _sum and _count.
 *
 * Ownership: the caller owns struct mv_prom (mv_prom_init / mv_prom_free;
 * the buffer is heap, mv_prom_take hands it over) and struct mv_hist (no
 * heap; bounds point at the caller's static array). Out of memory or past
 * MV_PROM_MAX_BYTES the writer stops appending and mv_prom_failed() says
 * so. Not thread-safe.
 */
#ifndef MESHVISOR_PROMTEXT_H
#define MESHVISOR_PROMTEXT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MV_PROM_MAX_BYTES (4u << 20) /* one scrape's body at most */
#define MV_HIST_MAX_BUCKETS 24       /* finite bounds per histogram */

struct mv_prom {
	char *buf;
	size_t len, cap;
	bool failed;
};

struct mv_prom_label {
	const char *name; /* [a-zA-Z_][a-zA-Z0-9_]*, not escaped */
	const char *value;
};

struct mv_hist {
	const double *bounds; /* ascending, finite; n of them */
	size_t n;
	uint64_t counts[MV_HIST_MAX_BUCKETS + 1]; /* per bucket, the last is +Inf */
	uint64_t count;
	double sum;
};

void mv_prom_init(struct mv_prom *p);
void mv_prom_free(struct mv_prom *p);
bool mv_prom_failed(const struct mv_prom *p);
/* Hands the NUL-terminated body (heap, the caller frees it) and its length
 * over; the writer is empty afterwards. NULL when the writer failed. */
char *mv_prom_take(struct mv_prom *p, size_t *len);

/* type: "counter", "gauge", "histogram", "summary" or "untyped". */
void mv_prom_family(struct mv_prom *p, const char *name, const char *type, const char *help);
void mv_prom_sample(struct mv_prom *p, const char *name, const struct mv_prom_label *labels,
                    size_t n_labels, double value);
/* name is the family's (without _bucket/_sum/_count); labels go on every
 * line, le after them. */
void mv_prom_histogram(struct mv_prom *p, const char *name, const struct mv_prom_label *labels,
                       size_t n_labels, const struct mv_hist *h);

/* bounds: ascending, at most MV_HIST_MAX_BUCKETS (more are ignored). */
void mv_hist_init(struct mv_hist *h, const double *bounds, size_t n);
void mv_hist_observe(struct mv_hist *h, double v);

/* Bounds shared by the agent's histograms, in seconds: for calls that take
 * milliseconds to a minute (libvirt calls, queue waits), and for phases
 * that take seconds to minutes (failovers, migrations). */
extern const double mv_hist_call_seconds[];
extern const size_t mv_hist_call_seconds_n;
extern const double mv_hist_phase_seconds[];
extern const size_t mv_hist_phase_seconds_n;

#endif
