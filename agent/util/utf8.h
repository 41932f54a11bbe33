/*
 * utf8.h — making text from outside (libvirt's messages, a peer's error
 * string) fit a protobuf `string` field, which must be valid UTF-8: a
 * client in another language refuses a whole reply that is not.
 *
 * Ownership: works in the caller's buffer; allocates nothing.
 */
#ifndef MESHVISOR_UTF8_H
#define MESHVISOR_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Whether s (NUL-terminated) is valid UTF-8: no overlong forms, no
 * surrogates, nothing above U+10FFFF, no stray continuation bytes. */
bool mv_utf8_valid(const char *s);

/* Replaces, in place, each byte of s that does not begin or continue a
 * valid UTF-8 sequence with '?' (so the length never changes and a valid
 * prefix stays as it was). Returns how many bytes were replaced. */
size_t mv_utf8_sanitize(char *s);

#endif
