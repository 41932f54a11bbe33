/* test_frame.c — the stream frame decoder: splits, caps, errors. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "frame.h"

static size_t make_frame(uint8_t *out, const char *payload)
{
	size_t n = strlen(payload);
	frame_header_write(out, (uint32_t)n);
	memcpy(out + 4, payload, n);
	return 4 + n;
}

static void test_header_is_big_endian(void **state)
{
	(void)state;
	uint8_t h[4];
	frame_header_write(h, 0x01020304u);
	assert_int_equal(h[0], 1);
	assert_int_equal(h[1], 2);
	assert_int_equal(h[2], 3);
	assert_int_equal(h[3], 4);
}

static void test_two_frames_in_one_read(void **state)
{
	(void)state;
	uint8_t buf[64];
	size_t n = make_frame(buf, "hello");
	n += make_frame(buf + n, "world!");
	struct frame_decoder d;
	frame_decoder_init(&d, 0);
	const uint8_t *p = buf, *pl;
	size_t len = n, pll;
	assert_int_equal(frame_decoder_next(&d, &p, &len, &pl, &pll), 1);
	assert_int_equal(pll, 5);
	assert_memory_equal(pl, "hello", 5);
	assert_int_equal(frame_decoder_next(&d, &p, &len, &pl, &pll), 1);
	assert_int_equal(pll, 6);
	assert_memory_equal(pl, "world!", 6);
	assert_int_equal(frame_decoder_next(&d, &p, &len, &pl, &pll), 0);
	assert_int_equal(len, 0);
	frame_decoder_close(&d);
}

static void test_byte_by_byte(void **state)
{
	(void)state;
	uint8_t buf[64];
	size_t n = make_frame(buf, "split everywhere");
	struct frame_decoder d;
	frame_decoder_init(&d, 0);
	int frames = 0;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *p = buf + i, *pl;
		size_t len = 1, pll;
		int rc = frame_decoder_next(&d, &p, &len, &pl, &pll);
		if (i + 1 < n) {
			assert_int_equal(rc, 0);
		} else {
			assert_int_equal(rc, 1);
			assert_memory_equal(pl, "split everywhere", pll);
			frames++;
		}
	}
	assert_int_equal(frames, 1);
	frame_decoder_close(&d);
}

static void test_zero_length_rejected(void **state)
{
	(void)state;
	uint8_t buf[4] = {0, 0, 0, 0};
	struct frame_decoder d;
	frame_decoder_init(&d, 0);
	const uint8_t *p = buf, *pl;
	size_t len = 4, pll;
	assert_int_equal(frame_decoder_next(&d, &p, &len, &pl, &pll), -EMSGSIZE);
	/* sticky: nothing more is accepted on this stream */
	uint8_t more[8];
	size_t m = make_frame(more, "ok");
	p = more;
	len = m;
	assert_int_equal(frame_decoder_next(&d, &p, &len, &pl, &pll), -EMSGSIZE);
	frame_decoder_close(&d);
}

static void test_over_cap_rejected_before_allocating(void **state)
{
	(void)state;
	uint8_t buf[4];
	frame_header_write(buf, FRAME_MAX + 1);
	struct frame_decoder d;
	frame_decoder_init(&d, 0);
	const uint8_t *p = buf, *pl;
	size_t len = 4, pll;
	assert_int_equal(frame_decoder_next(&d, &p, &len, &pl, &pll), -EMSGSIZE);
	assert_null(d.buf);
	frame_decoder_close(&d);

	/* a smaller per-decoder cap is honoured too */
	frame_decoder_init(&d, 16);
	frame_header_write(buf, 17);
	p = buf;
	len = 4;
	assert_int_equal(frame_decoder_next(&d, &p, &len, &pl, &pll), -EMSGSIZE);
	frame_decoder_close(&d);
}

static void test_exactly_cap_accepted(void **state)
{
	(void)state;
	struct frame_decoder d;
	frame_decoder_init(&d, 8);
	uint8_t buf[12];
	size_t n = make_frame(buf, "12345678");
	const uint8_t *p = buf, *pl;
	size_t len = n, pll;
	assert_int_equal(frame_decoder_next(&d, &p, &len, &pl, &pll), 1);
	assert_int_equal(pll, 8);
	frame_decoder_close(&d);
}

static void test_truncated_frame_waits(void **state)
{
	(void)state;
	uint8_t buf[32];
	size_t n = make_frame(buf, "truncated");
	struct frame_decoder d;
	frame_decoder_init(&d, 0);
	const uint8_t *p = buf, *pl;
	size_t len = n - 3, pll;
	assert_int_equal(frame_decoder_next(&d, &p, &len, &pl, &pll), 0);
	assert_int_equal(len, 0);
	/* closing with a partial frame frees it (ASan checks) */
	frame_decoder_close(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_is_big_endian),
	    cmocka_unit_test(test_two_frames_in_one_read),
	    cmocka_unit_test(test_byte_by_byte),
	    cmocka_unit_test(test_zero_length_rejected),
	    cmocka_unit_test(test_over_cap_rejected_before_allocating),
	    cmocka_unit_test(test_exactly_cap_accepted),
	    cmocka_unit_test(test_truncated_frame_waits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
