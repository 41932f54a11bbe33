/*
 * log.c — the single line-per-event logger described in log.h.
 * Formats the whole line into one buffer and writes it with one write(2),
 * so lines from concurrent processes sharing a file do not interleave.
 *
 * Held-back warnings: a table of LOG_SITES call sites keyed by the format
 * string's address (one per MV_WARN in the source), each with its window
 * start, lines written in it and lines held back. A site that finds the
 * table full is never held back. Guarded by one mutex (workers log too).
 */
#include "log.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum mv_log_level log_threshold = MV_LOG_INFO;

static const char *const log_level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
/* syslog priorities: debug 7, info 6, warning 4, err 3 */
static const char log_priority[] = {'7', '6', '4', '3'};

/* -1: not looked at yet; 0: plain lines; 1: "<N>" first */
static _Atomic int log_journal = -1;

void mv_log_set_journal(int on)
{
	log_journal = on < 0 ? -1 : on != 0;
}

/* Is stderr the journal's stream? $JOURNAL_STREAM is "DEVICE:INODE". */
static int log_journal_detect(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	struct stat st;
	unsigned long long dev, ino;
	char end;
	if (js == NULL || sscanf(js, "%llu:%llu%c", &dev, &ino, &end) != 2 ||
	    fstat(STDERR_FILENO, &st) != 0)
		return 0;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

#define LOG_SITES 256

struct log_site {
	const char *fmt; /* NULL: free slot */
	const char *component;
	uint64_t window_start;
	unsigned written;
	uint64_t held;
};

static pthread_mutex_t log_sites_lock = PTHREAD_MUTEX_INITIALIZER;
static struct log_site log_sites[LOG_SITES];
static unsigned log_warn_burst = MV_LOG_WARN_BURST, log_warn_window_ms = MV_LOG_WARN_WINDOW_MS;

void mv_log_set_warn_limit(unsigned burst, unsigned window_ms)
{
	pthread_mutex_lock(&log_sites_lock);
	log_warn_burst = burst ? burst : MV_LOG_WARN_BURST;
	log_warn_window_ms = window_ms ? window_ms : MV_LOG_WARN_WINDOW_MS;
	memset(log_sites, 0, sizeof(log_sites));
	pthread_mutex_unlock(&log_sites_lock);
}

static uint64_t log_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void log_write(enum mv_log_level lvl, const char *component, const char *fmt, va_list ap);

/* The message part of a format: up to its first key=value field. */
static void log_site_message(char *out, size_t len, const char *fmt)
{
	const char *eq = strchr(fmt, '=');
	size_t n = strlen(fmt);
	if (eq != NULL) {
		const char *sp = eq;
		while (sp > fmt && sp[-1] != ' ')
			sp--;
		n = (size_t)(sp > fmt ? sp - 1 - fmt : 0);
	}
	if (n >= len)
		n = len - 1;
	memcpy(out, fmt, n);
	out[n] = '\0';
}

static void log_summary(const char *component, const char *fmt, uint64_t held);

/* Under log_sites_lock: ends the site's window if it is over. Returns the
 * lines it held back (to be summarized), 0 if none or not over. */
static uint64_t log_site_roll(struct log_site *s, uint64_t now)
{
	if (now - s->window_start < log_warn_window_ms)
		return 0;
	uint64_t held = s->held;
	s->window_start = now;
	s->written = 0;
	s->held = 0;
	return held;
}

/* Whether a WARN of this site may be written now; *held_out gets a count
 * to summarize first (0: none). */
static int log_warn_allowed(const char *component, const char *fmt, uint64_t *held_out)
{
	*held_out = 0;
	uint64_t now = log_mono_ms();
	size_t h = ((uintptr_t)fmt >> 3) % LOG_SITES;
	int allowed = 1;
	pthread_mutex_lock(&log_sites_lock);
	for (size_t i = 0; i < LOG_SITES; i++) {
		struct log_site *s = &log_sites[(h + i) % LOG_SITES];
		if (s->fmt == NULL) {
			*s = (struct log_site){
			    .fmt = fmt, .component = component, .window_start = now};
		} else if (s->fmt != fmt) {
			continue;
		}
		*held_out = log_site_roll(s, now);
		if (s->written < log_warn_burst) {
			s->written++;
		} else {
			s->held++;
			allowed = 0;
		}
		break;
	}
	pthread_mutex_unlock(&log_sites_lock);
	return allowed;
}

void mv_log_flush_suppressed(void)
{
	struct {
		const char *component, *fmt;
		uint64_t held;
	} due[16];
	size_t n = 0;
	uint64_t now = log_mono_ms();
	pthread_mutex_lock(&log_sites_lock);
	for (size_t i = 0; i < LOG_SITES && n < sizeof(due) / sizeof(due[0]); i++) {
		struct log_site *s = &log_sites[i];
		if (s->fmt == NULL || s->held == 0)
			continue;
		uint64_t held = log_site_roll(s, now);
		if (held > 0) {
			due[n].component = s->component;
			due[n].fmt = s->fmt;
			due[n++].held = held;
		}
	}
	pthread_mutex_unlock(&log_sites_lock);
	for (size_t i = 0; i < n; i++)
		log_summary(due[i].component, due[i].fmt, due[i].held);
}

static void log_line(enum mv_log_level lvl, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void log_line(enum mv_log_level lvl, const char *component, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_write(lvl, component, fmt, ap);
	va_end(ap);
}

static void log_summary(const char *component, const char *fmt, uint64_t held)
{
	char msg[160], q[200];
	log_site_message(msg, sizeof(msg), fmt);
	log_line(MV_LOG_WARN, "log",
	         "repeated warning suppressed=%" PRIu64 " window_ms=%u component=%s message=%s",
	         held, log_warn_window_ms, component, mv_log_quote(q, sizeof(q), msg));
}

void mv_log_set_level(enum mv_log_level lvl)
{
	log_threshold = lvl;
}
enum mv_log_level mv_log_get_level(void)
{
	return log_threshold;
}

const char *mv_log_level_name(enum mv_log_level lvl)
{
	static const char *const lower[] = {"debug", "info", "warn", "error"};
	return (unsigned)lvl < 4 ? lower[lvl] : "unknown";
}

int mv_log_level_parse(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcasecmp(s, log_level_names[i]) == 0)
			return i;
	if (strcasecmp(s, "warning") == 0)
		return MV_LOG_WARN;
	return -1;
}

const char *mv_log_quote(char *buf, size_t len, const char *s)
{
	if (len == 0)
		return buf;
	if (s == NULL)
		s = "";
	int needs = (*s == '\0') || strpbrk(s, " \t\"=\\\n") != NULL;
	if (!needs) {
		snprintf(buf, len, "%s", s);
		return buf;
	}
	size_t o = 0;
	if (o + 1 < len)
		buf[o++] = '"';
	for (; *s && o + 3 < len; s++) {
		if (*s == '"' || *s == '\\')
			buf[o++] = '\\';
		buf[o++] = (*s == '\n') ? ' ' : *s;
	}
	if (o + 1 < len)
		buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

void mv_log(enum mv_log_level lvl, const char *component, const char *fmt, ...)
{
	if (lvl < log_threshold)
		return;
	if (lvl == MV_LOG_WARN) {
		uint64_t held;
		int allowed = log_warn_allowed(component, fmt, &held);
		if (held > 0)
			log_summary(component, fmt, held);
		if (!allowed)
			return;
	}
	va_list ap;
	va_start(ap, fmt);
	log_write(lvl, component, fmt, ap);
	va_end(ap);
}

void mv_log_always(enum mv_log_level lvl, const char *component, const char *fmt, ...)
{
	if (lvl < log_threshold)
		return;
	va_list ap;
	va_start(ap, fmt);
	log_write(lvl, component, fmt, ap);
	va_end(ap);
}

static void log_write(enum mv_log_level lvl, const char *component, const char *fmt, va_list ap)
{
	int journal = log_journal;
	if (journal < 0)
		log_journal = journal = log_journal_detect();
	char line[4096];
	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct tm tm;
	gmtime_r(&tv.tv_sec, &tm);
	int n = 0;
	if (journal) {
		line[0] = '<';
		line[1] = log_priority[lvl];
		line[2] = '>';
		n = 3;
	}
	n += snprintf(line + n, sizeof(line) - (size_t)n,
	              "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s %s ", tm.tm_year + 1900,
	              tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	              (int)(tv.tv_usec / 1000), log_level_names[lvl], component);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	size_t total = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (total > sizeof(line) - 2)
		total = sizeof(line) - 2;
	line[total++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, total);
	(void)w;
}
