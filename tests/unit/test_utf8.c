/*
 * test_utf8.c — UTF-8 validation and in-place repair (agent/util/utf8.h),
 * what keeps libvirt's or a peer's words from making an RPC reply that a
 * client in another language refuses: every class of ill-formed input
 * (stray continuation, truncated sequence, overlong, surrogate, above
 * U+10FFFF, bytes that never occur) is found and replaced by '?', valid
 * text around it is kept byte for byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "utf8.h"

static void test_valid_text_untouched(void **state)
{
	(void)state;
	static const char *const ok[] = {
	    "",
	    "plain ASCII: domain 'db1' not found",
	    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x96\xa5",  /* 2, 3 and 4 bytes */
	    "\xed\x9f\xbf \xee\x80\x80 \xf4\x8f\xbf\xbf", /* U+D7FF, U+E000, U+10FFFF */
	    "\xe0\xa0\x80 \xf0\x90\x80\x80",              /* the smallest non-overlong */
	};
	char buf[128];
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_true(mv_utf8_valid(ok[i]));
		strcpy(buf, ok[i]);
		assert_int_equal(mv_utf8_sanitize(buf), 0);
		assert_string_equal(buf, ok[i]);
	}
}

static void test_ill_formed_replaced(void **state)
{
	(void)state;
	static const struct {
		const char *in, *out;
		size_t fixed;
	} cases[] = {
	    {"stray \x80 continuation", "stray ? continuation", 1},
	    {"truncated \xc3", "truncated ?", 1},
	    {"truncated \xe2\x82 then", "truncated ?? then", 2},
	    {"overlong \xc0\xaf slash", "overlong ?? slash", 2},
	    {"overlong \xe0\x80\xaf", "overlong ???", 3},
	    {"overlong \xf0\x80\x80\xaf", "overlong ????", 4},
	    {"surrogate \xed\xa0\x80", "surrogate ???", 3},
	    {"too big \xf4\x90\x80\x80", "too big ????", 4},
	    {"never \xf5\xff\xfe", "never ???", 3},
	    /* latin-1 from a libvirt locale, then a valid character kept */
	    {"Domaine introuvable: \xe9t\xe9 \xc3\xa9", "Domaine introuvable: ?t? \xc3\xa9", 2},
	};
	char buf[128];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_false(mv_utf8_valid(cases[i].in));
		strcpy(buf, cases[i].in);
		assert_int_equal(mv_utf8_sanitize(buf), cases[i].fixed);
		assert_string_equal(buf, cases[i].out);
		assert_true(mv_utf8_valid(buf));
		assert_int_equal(strlen(buf), strlen(cases[i].in));
	}
}

/* Every two-byte string: after repair always valid, and repair of valid
 * text changes nothing. */
static void test_all_byte_pairs(void **state)
{
	(void)state;
	char buf[4];
	for (int a = 1; a < 256; a++) {
		for (int b = 0; b < 256; b++) {
			buf[0] = (char)a;
			buf[1] = (char)b;
			buf[2] = '\0';
			bool was = mv_utf8_valid(buf);
			size_t fixed = mv_utf8_sanitize(buf);
			assert_true(mv_utf8_valid(buf));
			assert_int_equal(fixed == 0, was);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_text_untouched),
	    cmocka_unit_test(test_ill_formed_replaced),
	    cmocka_unit_test(test_all_byte_pairs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
