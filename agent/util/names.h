/*
 * names.h — the one alphabet of names meshvisor accepts for nodes, labels,
 * anti-affinity groups and journal entries: A-Z a-z 0-9 . _ -
 */
#ifndef MESHVISOR_NAMES_H
#define MESHVISOR_NAMES_H

#include <stdbool.h>
#include <stddef.h>

static inline bool mv_name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

/* The len characters at s (no NUL needed) are 1..max of the alphabet. */
static inline bool mv_name_span_ok(const char *s, size_t len, size_t max)
{
	if (len < 1 || len > max)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!mv_name_char(s[i]))
			return false;
	return true;
}

#endif
