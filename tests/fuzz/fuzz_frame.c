/*
 * fuzz_frame.c — libFuzzer target for the stream frame decoder.
 *
 * Input layout:
 *   byte 0     seed for how the stream is split into reads
 *   byte 1     selects the decoder's cap (a tiny cap reaches the
 *              "length above the cap" path with small inputs): its value
 *              modulo 10; bit 4 adds a per-frame cap function (the cap is
 *              the first payload byte times 4: refused frames are skipped);
 *              bit 5 a shared budget of 2 * FRAME_BUF_MIN bytes
 *   bytes 2..  the stream as a peer would send it
 *
 * The stream is decoded twice: once in a single read, once cut into reads
 * of pseudo-random sizes (1 byte up to the whole rest). Framing must not
 * depend on how TCP happened to split the bytes, so both runs have to
 * yield the same frames and end in the same state; any difference aborts.
 * ASan/UBSan catch out-of-bounds reads of the header or payload. The
 * clock advances with every read: the deadline must be set exactly while
 * a frame is in progress, and the budget must be all given back at close.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FRAMES 4096

struct frames {
	size_t n;
	size_t len[MAX_FRAMES];
	uint64_t hash[MAX_FRAMES];
	int end; /* 0 (incomplete or clean), or the sticky error */
};

static uint64_t hash_bytes(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a */
	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ull;
	}
	return h;
}

static uint32_t next_rand(uint32_t *x)
{
	/* xorshift32; never zero state */
	uint32_t v = *x;
	v ^= v << 13;
	v ^= v >> 17;
	v ^= v << 5;
	*x = v;
	return v;
}

static uint32_t cap_of_first_byte(const uint8_t *prefix, size_t n, uint32_t len, void *ud)
{
	(void)ud;
	if (n == 0 || n > FRAME_PEEK_LEN || (n < FRAME_PEEK_LEN && n != len))
		abort(); /* the cap function sees min(len, FRAME_PEEK_LEN) bytes */
	return (uint32_t)prefix[0] * 4u;
}

#define REFUSED ((size_t)-1)

/* Feeds one read; records every frame it completes (and every frame the
 * cap function refused). Returns the decoder's result for the read: 0, or
 * a negative error after which nothing more is fed. */
static int feed(struct frame_decoder *d, const uint8_t *p, size_t n, struct frames *out,
                uint32_t cap)
{
	static uint64_t now;
	const uint8_t *data = p;
	size_t len = n;
	now += 7;
	for (;;) {
		const uint8_t *payload = NULL;
		size_t payload_len = 0;
		size_t before = len;
		int r = frame_decoder_next_at(d, now, &data, &len, &payload, &payload_len);
		if (len > before || data != p + (n - len))
			abort(); /* cursor went backwards or out of step */
		if (r == -EFBIG) {
			if (d->cap_fn == NULL || payload == NULL || payload_len == 0 ||
			    payload_len > FRAME_PEEK_LEN || frame_decoder_deadline(d) == 0)
				abort();
			if (out->n < MAX_FRAMES) {
				out->len[out->n] = REFUSED;
				out->hash[out->n] = hash_bytes(payload, payload_len);
			}
			out->n++;
			continue;
		}
		if (r < 0)
			return r;
		if (r == 0) {
			if (len != 0)
				abort(); /* "0: all input consumed" */
			/* a deadline exactly while a frame is in progress */
			if ((frame_decoder_deadline(d) != 0) != (d->hdr_have > 0))
				abort();
			return 0;
		}
		if (r != 1 || payload == NULL || payload_len == 0 || payload_len > cap)
			abort();
		if (out->n < MAX_FRAMES) {
			out->len[out->n] = payload_len;
			out->hash[out->n] = hash_bytes(payload, payload_len);
		}
		out->n++;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	uint32_t rng = 0x9e3779b9u ^ ((uint32_t)data[0] * 0x01000193u);
	if (rng == 0)
		rng = 1;
	/* caps: a handful of small ones, and the real FRAME_MAX */
	static const uint32_t caps[] = {1, 2, 3, 7, 16, 64, 255, 1024, 65536, FRAME_MAX};
	uint32_t cap = caps[(data[1] & 15) % (sizeof(caps) / sizeof(caps[0]))];
	frame_cap_fn cap_fn = (data[1] & 16) ? cap_of_first_byte : NULL;
	struct frame_budget budget = {.max = (data[1] & 32) ? 2 * FRAME_BUF_MIN : 0};
	const uint8_t *stream = data + 2;
	size_t n = size - 2;

	static struct frames whole, split;
	memset(&whole, 0, sizeof(whole));
	memset(&split, 0, sizeof(split));

	struct frame_decoder d;
	frame_decoder_init(&d, cap);
	frame_decoder_limit(&d, &budget, cap_fn, NULL);
	whole.end = feed(&d, stream, n, &whole, cap);
	if (whole.end == 0 && n > 0) {
		/* all consumed; another empty read must change nothing */
		whole.end = feed(&d, stream + n, 0, &whole, cap);
	}
	frame_decoder_close(&d);
	if (budget.used != 0)
		abort(); /* all given back */

	frame_decoder_init(&d, cap);
	frame_decoder_limit(&d, &budget, cap_fn, NULL);
	size_t off = 0;
	split.end = 0;
	while (off < n && split.end == 0) {
		size_t chunk = 1 + next_rand(&rng) % (n - off);
		if (next_rand(&rng) % 4 != 0 && chunk > 8)
			chunk = 1 + chunk % 8; /* mostly small reads: split headers often */
		split.end = feed(&d, stream + off, chunk, &split, cap);
		off += chunk;
	}
	/* once an error is returned it must stick */
	if (split.end < 0) {
		const uint8_t *p = stream;
		size_t l = n;
		const uint8_t *pl;
		size_t pll;
		if (frame_decoder_next(&d, &p, &l, &pl, &pll) != split.end)
			abort();
	}
	frame_decoder_close(&d);
	if (budget.used != 0)
		abort();

	if (whole.n != split.n || whole.end != split.end)
		abort();
	size_t m = whole.n < MAX_FRAMES ? whole.n : MAX_FRAMES;
	for (size_t i = 0; i < m; i++)
		if (whole.len[i] != split.len[i] || whole.hash[i] != split.hash[i])
			abort();
	return 0;
}
