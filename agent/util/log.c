/*
 * log.c — the single line-per-event logger described in meshvisor/log.h.
 * Formats the whole line into one buffer and writes it with one write(2),
 * so lines from concurrent processes sharing a file do not interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static enum mv_log_level log_threshold = MV_LOG_INFO;

static const char *const log_level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void mv_log_set_level(enum mv_log_level lvl)
{
	log_threshold = lvl;
}
enum mv_log_level mv_log_get_level(void)
{
	return log_threshold;
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
	char line[4096];
	struct timeval tv;
	gettimeofday(&tv, NULL);
	struct tm tm;
	gmtime_r(&tv.tv_sec, &tm);
	int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %-5s %s ",
	                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	                 tm.tm_sec, (int)(tv.tv_usec / 1000), log_level_names[lvl], component);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t total = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (total > sizeof(line) - 2)
		total = sizeof(line) - 2;
	line[total++] = '\n';
	ssize_t w = write(STDERR_FILENO, line, total);
	(void)w;
}
