/*
 * promtext.c — the Prometheus text exposition format (promtext.h).
 */
#include "promtext.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double mv_hist_call_seconds[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                       0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
const size_t mv_hist_call_seconds_n = sizeof(mv_hist_call_seconds) / sizeof(double);
const double mv_hist_phase_seconds[] = {0.1, 0.25, 0.5, 1,  2,  5,   10,  15,
                                        20,  30,   45,  60, 90, 120, 300, 600};
const size_t mv_hist_phase_seconds_n = sizeof(mv_hist_phase_seconds) / sizeof(double);

void mv_prom_init(struct mv_prom *p)
{
	memset(p, 0, sizeof(*p));
}

void mv_prom_free(struct mv_prom *p)
{
	free(p->buf);
	memset(p, 0, sizeof(*p));
}

bool mv_prom_failed(const struct mv_prom *p)
{
	return p->failed;
}

char *mv_prom_take(struct mv_prom *p, size_t *len)
{
	if (p->failed || p->buf == NULL) {
		bool failed = p->failed;
		mv_prom_free(p);
		*len = 0;
		return failed ? NULL : calloc(1, 1);
	}
	char *b = p->buf;
	*len = p->len;
	memset(p, 0, sizeof(*p));
	return b;
}

static bool prom_reserve(struct mv_prom *p, size_t more)
{
	if (p->failed)
		return false;
	if (p->len + more + 1 <= p->cap)
		return true;
	if (p->len + more + 1 > MV_PROM_MAX_BYTES) {
		p->failed = true;
		return false;
	}
	size_t cap = p->cap ? p->cap : 4096;
	while (cap < p->len + more + 1)
		cap *= 2;
	char *b = realloc(p->buf, cap);
	if (b == NULL) {
		p->failed = true;
		return false;
	}
	p->buf = b;
	p->cap = cap;
	return true;
}

static void prom_put(struct mv_prom *p, const char *s, size_t n)
{
	if (!prom_reserve(p, n))
		return;
	memcpy(p->buf + p->len, s, n);
	p->len += n;
	p->buf[p->len] = '\0';
}

static void prom_puts(struct mv_prom *p, const char *s)
{
	prom_put(p, s, strlen(s));
}

/* Escapes \ and newline, and " too when quote (label values). */
static void prom_escaped(struct mv_prom *p, const char *s, bool quote)
{
	for (; *s; s++) {
		if (*s == '\\')
			prom_puts(p, "\\\\");
		else if (*s == '\n')
			prom_puts(p, "\\n");
		else if (quote && *s == '"')
			prom_puts(p, "\\\"");
		else
			prom_put(p, s, 1);
	}
}

static void prom_value(struct mv_prom *p, double v)
{
	char b[40];
	if (isnan(v))
		snprintf(b, sizeof(b), "NaN");
	else if (isinf(v))
		snprintf(b, sizeof(b), v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) <= 9007199254740992.0)
		snprintf(b, sizeof(b), "%.0f", v);
	else
		snprintf(b, sizeof(b), "%.15g", v);
	prom_puts(p, b);
}

void mv_prom_family(struct mv_prom *p, const char *name, const char *type, const char *help)
{
	prom_puts(p, "# HELP ");
	prom_puts(p, name);
	prom_puts(p, " ");
	prom_escaped(p, help, false);
	prom_puts(p, "\n# TYPE ");
	prom_puts(p, name);
	prom_puts(p, " ");
	prom_puts(p, type);
	prom_puts(p, "\n");
}

/* name{labels[,le="..."]} value\n */
static void prom_line(struct mv_prom *p, const char *name, const char *suffix,
                      const struct mv_prom_label *labels, size_t n, const char *le, double v)
{
	prom_puts(p, name);
	prom_puts(p, suffix);
	if (n > 0 || le != NULL) {
		prom_puts(p, "{");
		for (size_t i = 0; i < n; i++) {
			if (i > 0)
				prom_puts(p, ",");
			prom_puts(p, labels[i].name);
			prom_puts(p, "=\"");
			prom_escaped(p, labels[i].value ? labels[i].value : "", true);
			prom_puts(p, "\"");
		}
		if (le != NULL) {
			prom_puts(p, n > 0 ? ",le=\"" : "le=\"");
			prom_puts(p, le);
			prom_puts(p, "\"");
		}
		prom_puts(p, "}");
	}
	prom_puts(p, " ");
	prom_value(p, v);
	prom_puts(p, "\n");
}

void mv_prom_sample(struct mv_prom *p, const char *name, const struct mv_prom_label *labels,
                    size_t n_labels, double value)
{
	prom_line(p, name, "", labels, n_labels, NULL, value);
}

void mv_prom_histogram(struct mv_prom *p, const char *name, const struct mv_prom_label *labels,
                       size_t n_labels, const struct mv_hist *h)
{
	uint64_t cum = 0;
	char le[40];
	for (size_t i = 0; i < h->n; i++) {
		cum += h->counts[i];
		snprintf(le, sizeof(le), "%.15g", h->bounds[i]);
		prom_line(p, name, "_bucket", labels, n_labels, le, (double)cum);
	}
	prom_line(p, name, "_bucket", labels, n_labels, "+Inf", (double)h->count);
	prom_line(p, name, "_sum", labels, n_labels, NULL, h->sum);
	prom_line(p, name, "_count", labels, n_labels, NULL, (double)h->count);
}

void mv_hist_init(struct mv_hist *h, const double *bounds, size_t n)
{
	memset(h, 0, sizeof(*h));
	h->bounds = bounds;
	h->n = n > MV_HIST_MAX_BUCKETS ? MV_HIST_MAX_BUCKETS : n;
}

void mv_hist_observe(struct mv_hist *h, double v)
{
	size_t i = 0;
	while (i < h->n && v > h->bounds[i])
		i++;
	h->counts[i]++;
	h->count++;
	h->sum += v;
}
