/*
 * utf8.c — UTF-8 validation and in-place repair (utf8.h).
 *
 * A sequence is checked as RFC 3629 defines it (the table of well-formed
 * byte sequences in Unicode 15, 3.9, D92): the second byte of E0, ED, F0
 * and F4 leads has a narrower range, which is what excludes overlong
 * forms, UTF-16 surrogates and code points above U+10FFFF. An ill-formed
 * sequence is replaced one byte at a time by '?', then the scan resumes at
 * the next byte, so a valid character after garbage is kept.
 */
#include "utf8.h"

/* Length of the well-formed sequence at s, or 0 if the byte at s does not
 * start one. */
static size_t mv_utf8_seq(const unsigned char *s)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4;
	else
		return 0; /* continuation byte, C0/C1 (overlong) or F5..FF */
	if (c == 0xe0)
		lo = 0xa0; /* overlong */
	else if (c == 0xed)
		hi = 0x9f; /* surrogates */
	else if (c == 0xf0)
		lo = 0x90; /* overlong */
	else if (c == 0xf4)
		hi = 0x8f; /* above U+10FFFF */
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf) /* also stops at the NUL */
			return 0;
	return n;
}

bool mv_utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		size_t n = mv_utf8_seq(p);
		if (n == 0)
			return false;
		p += n;
	}
	return true;
}

size_t mv_utf8_sanitize(char *s)
{
	unsigned char *p = (unsigned char *)s;
	size_t fixed = 0;

	while (*p) {
		size_t n = mv_utf8_seq(p);
		if (n == 0) {
			*p++ = '?';
			fixed++;
		} else {
			p += n;
		}
	}
	return fixed;
}
