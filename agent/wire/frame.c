/*
 * frame.c — incremental decoder for the length-prefixed stream framing
 * (diagram and limits in frame.h).
 *
 * State machine: collect the 4 header bytes (in any split; the first one
 * starts the frame's clock), check the declared length against the
 * decoder's cap *before* allocating, then collect that many payload bytes
 * into a buffer that grows with them (FRAME_BUF_MIN, doubling, never past
 * the declared length): memory follows what the sender actually sent.
 * With a cap function, the first min(len, FRAME_PEEK_LEN) bytes are
 * collected, the cap decided, and a frame over it is refused and then
 * skipped byte by byte (nothing more buffered). A frame that arrives whole
 * inside one read is still copied once into the decoder's buffer; this
 * keeps ownership simple (the payload is valid until the next decoder
 * call).
 *
 * Invariants: budget->used counts exactly the `alloc` of every live
 * decoder sharing it (added on growth, given back when a frame is dropped
 * or the decoder closed); in_frame is true from a frame's first header
 * byte until it is handed out, refused-and-skipped to its end, or the
 * stream fails.
 */
#include "frame.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void frame_decoder_init(struct frame_decoder *d, uint32_t max)
{
	memset(d, 0, sizeof(*d));
	d->max = (max == 0 || max > FRAME_MAX) ? FRAME_MAX : max;
}

void frame_decoder_limit(struct frame_decoder *d, struct frame_budget *budget, frame_cap_fn cap_fn,
                         void *cap_ud)
{
	d->budget = budget;
	d->cap_fn = cap_fn;
	d->cap_ud = cap_ud;
}

static void frame_drop_buf(struct frame_decoder *d)
{
	if (d->budget != NULL)
		d->budget->used -= d->alloc;
	free(d->buf);
	d->buf = NULL;
	d->alloc = 0;
}

/* Back to "expecting a header". */
static void frame_reset(struct frame_decoder *d)
{
	frame_drop_buf(d);
	d->hdr_have = 0;
	d->need = d->have = 0;
	d->in_frame = d->handed = d->skipping = false;
}

void frame_decoder_close(struct frame_decoder *d)
{
	frame_reset(d);
}

void frame_header_write(uint8_t out[FRAME_HEADER_LEN], uint32_t len)
{
	out[0] = (uint8_t)(len >> 24);
	out[1] = (uint8_t)(len >> 16);
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)len;
}

static int frame_fail(struct frame_decoder *d, int err)
{
	d->error = err;
	d->in_frame = false;
	return err;
}

/* Makes room for `want` payload bytes (want <= need), growing
 * geometrically within the shared budget. */
static int frame_reserve(struct frame_decoder *d, size_t want)
{
	if (want <= d->alloc)
		return 0;
	size_t n = d->alloc ? d->alloc : FRAME_BUF_MIN;
	while (n < want)
		n *= 2;
	if (n > d->need)
		n = d->need;
	size_t more = n - d->alloc;
	if (d->budget != NULL && d->budget->max != 0 && d->budget->used + more > d->budget->max)
		return frame_fail(d, -ENOBUFS);
	uint8_t *b = realloc(d->buf, n);
	if (b == NULL)
		return frame_fail(d, -ENOMEM);
	d->buf = b;
	d->alloc = n;
	if (d->budget != NULL)
		d->budget->used += more;
	return 0;
}

/* Copies up to `upto` payload bytes in; 0 or a negative errno. */
static int frame_take(struct frame_decoder *d, size_t upto, const uint8_t **data, size_t *len)
{
	size_t take = upto - d->have;
	if (take > *len)
		take = *len;
	if (take == 0)
		return 0;
	int rc = frame_reserve(d, d->have + take);
	if (rc < 0)
		return rc;
	memcpy(d->buf + d->have, *data, take);
	d->have += take;
	*data += take;
	*len -= take;
	return 0;
}

int frame_decoder_next_at(struct frame_decoder *d, uint64_t now, const uint8_t **data, size_t *len,
                          const uint8_t **payload, size_t *payload_len)
{
	if (d->error)
		return d->error;
	/* The previous frame was handed out: drop it now. */
	if (d->handed)
		frame_reset(d);
	for (;;) {
		while (d->hdr_have < FRAME_HEADER_LEN) {
			if (*len == 0)
				return 0;
			if (d->hdr_have == 0) {
				d->in_frame = true;
				d->started = now;
			}
			d->hdr[d->hdr_have++] = **data;
			(*data)++;
			(*len)--;
			if (d->hdr_have == FRAME_HEADER_LEN) {
				uint32_t n = ((uint32_t)d->hdr[0] << 24) |
				             ((uint32_t)d->hdr[1] << 16) |
				             ((uint32_t)d->hdr[2] << 8) | (uint32_t)d->hdr[3];
				if (n == 0 || n > d->max)
					return frame_fail(d, -EMSGSIZE);
				d->need = n;
				d->have = 0;
			}
		}
		if (d->skipping) {
			size_t take = d->need - d->have;
			if (take > *len)
				take = *len;
			d->have += take;
			*data += take;
			*len -= take;
			if (d->have < d->need)
				return 0;
			frame_reset(d);
			continue; /* the next frame may be in this read too */
		}
		if (d->cap_fn != NULL) {
			size_t peek = d->need < FRAME_PEEK_LEN ? d->need : FRAME_PEEK_LEN;
			if (d->have < peek) {
				int rc = frame_take(d, peek, data, len);
				if (rc < 0)
					return rc;
				if (d->have < peek)
					return 0;
				uint32_t cap =
				    d->cap_fn(d->buf, d->have, (uint32_t)d->need, d->cap_ud);
				if (d->need > cap) {
					d->refused_cap = cap;
					d->skipping = true;
					*payload = d->buf;
					*payload_len = d->have;
					/* the prefix stays readable until the next call */
					return -EFBIG;
				}
			}
		}
		int rc = frame_take(d, d->need, data, len);
		if (rc < 0)
			return rc;
		if (d->have < d->need)
			return 0;
		d->in_frame = false;
		d->handed = true;
		*payload = d->buf;
		*payload_len = d->need;
		return 1;
	}
}

int frame_decoder_next(struct frame_decoder *d, const uint8_t **data, size_t *len,
                       const uint8_t **payload, size_t *payload_len)
{
	return frame_decoder_next_at(d, 0, data, len, payload, payload_len);
}

uint64_t frame_decoder_deadline(const struct frame_decoder *d)
{
	if (!d->in_frame)
		return 0;
	uint64_t dl = d->started + FRAME_DEADLINE_MS;
	if (!d->skipping)
		dl += (uint64_t)d->need * 1000u / FRAME_MIN_RATE;
	return dl;
}

bool frame_decoder_overdue(const struct frame_decoder *d, uint64_t now)
{
	return d->in_frame && now >= frame_decoder_deadline(d);
}
