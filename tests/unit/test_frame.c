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

/* Issue 13: memory follows the bytes that came, not the declared length. */
static void test_buffer_grows_with_the_bytes(void **state)
{
	(void)state;
	struct frame_budget budget = {.max = 0};
	struct frame_decoder d;
	frame_decoder_init(&d, 0);
	frame_decoder_limit(&d, &budget, NULL, NULL);
	uint8_t hdr[4];
	frame_header_write(hdr, FRAME_MAX);
	const uint8_t *p = hdr, *pl;
	size_t len = 4, pll;
	assert_int_equal(frame_decoder_next_at(&d, 0, &p, &len, &pl, &pll), 0);
	assert_null(d.buf); /* a 4 MiB header alone costs nothing */
	assert_int_equal(budget.used, 0);
	static uint8_t chunk[10000];
	memset(chunk, 'x', sizeof(chunk));
	p = chunk;
	len = 10;
	assert_int_equal(frame_decoder_next_at(&d, 0, &p, &len, &pl, &pll), 0);
	assert_int_equal(d.alloc, FRAME_BUF_MIN);
	p = chunk;
	len = sizeof(chunk); /* 10,010 bytes in all: doubled twice */
	assert_int_equal(frame_decoder_next_at(&d, 0, &p, &len, &pl, &pll), 0);
	assert_int_equal(d.alloc, 4 * FRAME_BUF_MIN);
	assert_int_equal(budget.used, 4 * FRAME_BUF_MIN);
	frame_decoder_close(&d);
	assert_int_equal(budget.used, 0);

	/* never past the declared length */
	frame_decoder_init(&d, 0);
	frame_decoder_limit(&d, &budget, NULL, NULL);
	uint8_t buf[5000 + 4];
	frame_header_write(buf, 5000);
	memset(buf + 4, 'y', 5000);
	p = buf;
	len = sizeof(buf);
	assert_int_equal(frame_decoder_next_at(&d, 0, &p, &len, &pl, &pll), 1);
	assert_int_equal(pll, 5000);
	assert_int_equal(d.alloc, 5000);
	/* handed out: dropped (and given back) on the next call */
	assert_int_equal(frame_decoder_next_at(&d, 0, &p, &len, &pl, &pll), 0);
	assert_int_equal(budget.used, 0);
	frame_decoder_close(&d);
}

/* Decoders sharing a budget cannot buffer more than it together. */
static void test_shared_budget(void **state)
{
	(void)state;
	struct frame_budget budget = {.max = 3 * FRAME_BUF_MIN};
	struct frame_decoder a, b;
	frame_decoder_init(&a, 0);
	frame_decoder_init(&b, 0);
	frame_decoder_limit(&a, &budget, NULL, NULL);
	frame_decoder_limit(&b, &budget, NULL, NULL);
	static uint8_t buf[4 + 2 * FRAME_BUF_MIN];
	frame_header_write(buf, 1000000);
	const uint8_t *p = buf, *pl;
	size_t len = sizeof(buf), pll;
	assert_int_equal(frame_decoder_next_at(&a, 0, &p, &len, &pl, &pll), 0);
	assert_int_equal(budget.used, 2 * FRAME_BUF_MIN);
	p = buf;
	len = sizeof(buf);
	assert_int_equal(frame_decoder_next_at(&b, 0, &p, &len, &pl, &pll), -ENOBUFS);
	assert_int_equal(budget.used, 2 * FRAME_BUF_MIN); /* b could not grow to 8 KiB */
	/* sticky, and closing gives everything back */
	assert_int_equal(frame_decoder_next_at(&b, 0, &p, &len, &pl, &pll), -ENOBUFS);
	frame_decoder_close(&b);
	frame_decoder_close(&a);
	assert_int_equal(budget.used, 0);
}

/* The deadline runs from the first header byte; a large frame gets 1 s
 * more per FRAME_MIN_RATE bytes. */
static void test_deadline_bookkeeping(void **state)
{
	(void)state;
	struct frame_decoder d;
	frame_decoder_init(&d, 0);
	assert_int_equal(frame_decoder_deadline(&d), 0);
	assert_false(frame_decoder_overdue(&d, 1000000));
	uint8_t buf[4 + 8];
	frame_header_write(buf, 8);
	memcpy(buf + 4, "12345678", 8);
	const uint8_t *p = buf, *pl;
	size_t len = 1, pll;
	assert_int_equal(frame_decoder_next_at(&d, 5000, &p, &len, &pl, &pll), 0);
	assert_int_equal(frame_decoder_deadline(&d), 5000 + FRAME_DEADLINE_MS);
	len = 3 + 7; /* later bytes do not move the deadline */
	assert_int_equal(frame_decoder_next_at(&d, 9000, &p, &len, &pl, &pll), 0);
	assert_false(frame_decoder_overdue(&d, 5000 + FRAME_DEADLINE_MS - 1));
	assert_true(frame_decoder_overdue(&d, 5000 + FRAME_DEADLINE_MS));
	len = 1; /* whole: no deadline any more */
	assert_int_equal(frame_decoder_next_at(&d, 9500, &p, &len, &pl, &pll), 1);
	assert_false(frame_decoder_overdue(&d, 1000000));
	frame_decoder_close(&d);

	/* 2 MiB declared: 8 s more at 256 KiB/s */
	frame_decoder_init(&d, 0);
	frame_header_write(buf, 2u * 1024 * 1024);
	p = buf;
	len = 4;
	assert_int_equal(frame_decoder_next_at(&d, 100, &p, &len, &pl, &pll), 0);
	assert_int_equal(frame_decoder_deadline(&d),
	                 100 + FRAME_DEADLINE_MS + 2u * 1024 * 1024 * 1000 / FRAME_MIN_RATE);
	frame_decoder_close(&d);
}

static uint32_t cap_by_first_byte(const uint8_t *prefix, size_t n, uint32_t len, void *ud)
{
	(void)len;
	(*(int *)ud)++;
	assert_true(n >= 1);
	return prefix[0] == 'B' ? 100000 : 16;
}

/* A frame over its cap is refused after its first bytes, skipped to its
 * end, and the stream goes on with the next frame. */
static void test_cap_refuses_and_skips(void **state)
{
	(void)state;
	int calls = 0;
	struct frame_budget budget = {0};
	struct frame_decoder d;
	frame_decoder_init(&d, 0);
	frame_decoder_limit(&d, &budget, cap_by_first_byte, &calls);
	static uint8_t buf[3 * 4 + 20000 + 20 + 5];
	size_t n = 0;
	frame_header_write(buf, 20000); /* 'a...': cap 16, refused */
	memset(buf + 4, 'a', 20000);
	n = 4 + 20000;
	frame_header_write(buf + n, 20); /* 'B...': cap 100000, fine */
	memset(buf + n + 4, 'B', 20);
	n += 24;
	n += make_frame(buf + n, "small");
	const uint8_t *p = buf, *pl;
	size_t len = 100, pll; /* the first 100 bytes only */
	assert_int_equal(frame_decoder_next_at(&d, 7, &p, &len, &pl, &pll), -EFBIG);
	assert_int_equal(d.refused_cap, 16);
	assert_int_equal(pll, FRAME_PEEK_LEN);
	assert_int_equal(pl[0], 'a');
	assert_true(budget.used <= FRAME_BUF_MIN); /* only the peek was buffered */
	/* a skipped frame gets the base deadline only */
	assert_int_equal(frame_decoder_deadline(&d), 7 + FRAME_DEADLINE_MS);
	assert_int_equal(frame_decoder_next_at(&d, 8, &p, &len, &pl, &pll), 0);
	len = (size_t)(buf + n - p);
	assert_int_equal(frame_decoder_next_at(&d, 9, &p, &len, &pl, &pll), 1);
	assert_int_equal(pll, 20);
	assert_int_equal(pl[0], 'B');
	/* "small" (5 bytes) is under its cap of 16: the cap function saw all of it */
	assert_int_equal(frame_decoder_next_at(&d, 9, &p, &len, &pl, &pll), 1);
	assert_int_equal(pll, 5);
	assert_memory_equal(pl, "small", 5);
	assert_int_equal(frame_decoder_next_at(&d, 9, &p, &len, &pl, &pll), 0);
	assert_int_equal(len, 0);
	assert_int_equal(calls, 3);
	assert_false(frame_decoder_overdue(&d, 1000000));
	frame_decoder_close(&d);
	assert_int_equal(budget.used, 0);
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
	    cmocka_unit_test(test_buffer_grows_with_the_bytes),
	    cmocka_unit_test(test_shared_budget),
	    cmocka_unit_test(test_deadline_bookkeeping),
	    cmocka_unit_test(test_cap_refuses_and_skips),
	    cmocka_unit_test(test_truncated_frame_waits),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
